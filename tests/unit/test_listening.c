/*
 * aloop_daemon_listener_at(): which listener of a parsed configuration an
 * address reaches -- exact addresses, wildcard and unspecified ones,
 * IPv4-mapped IPv6, names, UNIX paths and the socket type -- asked through
 * a settings node, as a plugin asks.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "config-int.h"
#include "daemon_test.h"
#include "runner.h"

static struct config *cfg;

static void
load(const char *text)
{
	td_enter();
	td_write("aloop.conf", text);
	CU_ASSERT_EQUAL_FATAL(config_parse("aloop.conf", &cfg), 0);
}

static void
unload(void)
{
	config_free(cfg);
	cfg = NULL;
	td_leave();
}

/* The listener @host (numeric) port @port reaches, asked from listener 0. */
static const char *
at(int type, const char *host, unsigned port)
{
	struct sockaddr_in in;
	struct sockaddr_in6 in6;

	memset(&in, 0, sizeof(in));
	memset(&in6, 0, sizeof(in6));
	if (inet_pton(AF_INET, host, &in.sin_addr) == 1) {
		in.sin_family = AF_INET;
		in.sin_port = htons(port);
		return aloop_daemon_listener_at(cfg->listeners[0].settings,
		    type, (struct sockaddr *)&in, sizeof(in));
	}
	CU_ASSERT_EQUAL_FATAL(inet_pton(AF_INET6, host, &in6.sin6_addr), 1);
	in6.sin6_family = AF_INET6;
	in6.sin6_port = htons(port);
	return aloop_daemon_listener_at(cfg->listeners[0].settings, type,
	    (struct sockaddr *)&in6, sizeof(in6));
}

#define STREAM	ALOOP_PLUGIN_STREAM
#define DGRAM	ALOOP_PLUGIN_DATAGRAM

static int
is(const char *got, const char *want)
{
	return want == NULL ? got == NULL :
	    got != NULL && strcmp(got, want) == 0;
}

static void
test_exact_addresses(void)
{
	load("listeners = (\n"
	    "  { name = \"a\"; protocol = \"echo\";\n"
	    "    listen = [ \"127.0.0.1:7101\", \"[::1]:7102\" ];\n"
	    "    settings = { upstream = \"x\"; }; },\n"
	    "  { name = \"u\"; protocol = \"echo\"; type = \"udp\";\n"
	    "    listen = [ \"127.0.0.1:7103\" ]; }\n"
	    ");\n");
	CU_ASSERT(is(at(STREAM, "127.0.0.1", 7101), "a"));
	CU_ASSERT(is(at(STREAM, "::ffff:127.0.0.1", 7101), "a"));
	CU_ASSERT(is(at(STREAM, "::1", 7102), "a"));
	/* Connecting to the unspecified address reaches a local one. */
	CU_ASSERT(is(at(STREAM, "0.0.0.0", 7101), "a"));
	CU_ASSERT(is(at(STREAM, "127.0.0.2", 7101), NULL));
	CU_ASSERT(is(at(STREAM, "127.0.0.1", 7102), NULL));
	CU_ASSERT(is(at(STREAM, "::1", 7101), NULL));
	/* Of the type asked for only. */
	CU_ASSERT(is(at(STREAM, "127.0.0.1", 7103), NULL));
	CU_ASSERT(is(at(DGRAM, "127.0.0.1", 7103), "u"));
	CU_ASSERT(is(at(DGRAM, "127.0.0.1", 7101), NULL));
	CU_ASSERT(is(at(0, "127.0.0.1", 7101), NULL));
	unload();
}

static void
test_wildcards_and_names(void)
{
	load("listeners = (\n"
	    "  { name = \"any\"; protocol = \"echo\"; listen = [ \"*:7111\" ]; },\n"
	    "  { name = \"v4\"; protocol = \"echo\";\n"
	    "    listen = [ \"0.0.0.0:7112\" ]; },\n"
	    "  { name = \"named\"; protocol = \"echo\";\n"
	    "    listen = [ \"localhost:7113\" ]; }\n"
	    ");\n");
	CU_ASSERT(is(at(STREAM, "127.0.0.1", 7111), "any"));
	CU_ASSERT(is(at(STREAM, "127.3.2.1", 7111), "any"));
	CU_ASSERT(is(at(STREAM, "::1", 7111), "any"));
	CU_ASSERT(is(at(STREAM, "::", 7111), "any"));
	/* Not an address of this host (TEST-NET-3). */
	CU_ASSERT(is(at(STREAM, "203.0.113.7", 7111), NULL));
	CU_ASSERT(is(at(STREAM, "127.0.0.1", 7112), "v4"));
	CU_ASSERT(is(at(STREAM, "::1", 7112), NULL));
	CU_ASSERT(is(at(STREAM, "127.0.0.1", 7113), "named"));
	unload();
}

static void
test_unix_paths(void)
{
	struct sockaddr_un sun;
	const struct aloop_settings *s;

	load("listeners = (\n"
	    "  { name = \"sock\"; protocol = \"echo\";\n"
	    "    listen = [ \"unix:/tmp/aloop-test-listening.sock\" ]; }\n"
	    ");\n");
	s = cfg->listeners[0].settings;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, "/tmp/aloop-test-listening.sock");
	CU_ASSERT(is(aloop_daemon_listener_at(s, STREAM,
	    (struct sockaddr *)&sun, sizeof(sun)), "sock"));
	strcpy(sun.sun_path, "/tmp/aloop-test-listening.sockx");
	CU_ASSERT(is(aloop_daemon_listener_at(s, STREAM,
	    (struct sockaddr *)&sun, sizeof(sun)), NULL));
	/* No configuration, no address: nothing, and no crash. */
	CU_ASSERT(is(aloop_daemon_listener_at(NULL, STREAM,
	    (struct sockaddr *)&sun, sizeof(sun)), NULL));
	CU_ASSERT(is(aloop_daemon_listener_at(s, STREAM, NULL, 0), NULL));
	unload();
}

static const struct test_case cases[] = {
	TEST(test_exact_addresses),
	TEST(test_wildcards_and_names),
	TEST(test_unix_paths),
};

TEST_MAIN("listening", cases)
