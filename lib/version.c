/*
 * Version strings of the library and of what it runs on, for
 * `aloopd --version` and for bug reports.
 */
#include "config.h"

#include <event2/event.h>
#include <openssl/crypto.h>

#include <aloop/common.h>

const char *
aloop_version(void)
{
	return VERSION;
}

const char *
aloop_libevent_version(void)
{
	return event_get_version();
}

const char *
aloop_openssl_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION_STRING);
}
