/*
 * Texts for aloop's error codes: errno's for system errors, our own for the
 * asyncio errors that have no errno.
 */
#include "config.h"

#include <string.h>

#include <aloop/common.h>

const char *
aloop_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
	case ALOOP_ESTATE:
		return "operation not allowed in the current state";
	case ALOOP_ETLS:
		return "TLS error";
	case ALOOP_ECERT:
		return "certificate verification failed";
	case ALOOP_EHOSTNAME:
		return "certificate does not match the host name";
	case ALOOP_EMULTI:
		return "multiple errors";
	case ALOOP_EGAI:
		return "name resolution failed";
	case ALOOP_EPLUGIN:
		return "plugin error";
	case ALOOP_ECONFIG:
		return "configuration error";
	case ALOOP_EINCOMPLETE:
		return "end of stream before the expected data";
	case ALOOP_ELIMIT:
		return "stream buffer limit exceeded";
	}
	if (code < 0 && code > -4000)
		/*
		 * strerror() returns static text on glibc for every valid
		 * errno and "Unknown error N" otherwise, from a thread-local
		 * buffer; the codes we pass are valid errnos.
		 */
		return strerror(-code);
	return "unknown error";
}
