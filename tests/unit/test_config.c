/*
 * aloop.conf: good files become the expected structs; bad ones produce
 * exactly the expected lines, `file:line: path "value": what`, all of them
 * at once.  Files are written to a scratch directory at test time.
 */
#include "config.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "config-int.h"
#include "daemon_test.h"
#include "runner.h"

/* Parse @text as aloop.conf (no plugins) and check its errors. */
static void
expect(const char *text, const char *const *errors)
{
	struct config *cfg;
	int rc;

	td_enter();
	td_write("aloop.conf", text);
	rc = config_parse("aloop.conf", &cfg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(rc, errors[0] == NULL ? 0 : ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, errors));
	config_free(cfg);
	td_leave();
}

#define ERRORS(...)	((const char *const []){ __VA_ARGS__, NULL })
#define NO_ERRORS	((const char *const []){ NULL })

static void
test_good_config_fills_structs(void)
{
	const struct config_listener *l;
	struct config *cfg;

	td_enter();
	td_write("aloop.conf",
	    "daemon = {\n"
	    "  workers = 3;\n"
	    "  log_level = \"debug\";\n"
	    "  log_target = \"syslog\";\n"
	    "  pidfile = \"run/aloopd.pid\";\n"
	    "  user = \"nobody\";\n"
	    "  plugin_path = [ \"plugins\", \"/opt/aloop\" ];\n"
	    "  shutdown_timeout = 2.5;\n"
	    "};\n"
	    "listeners = (\n"
	    "  { name = \"a\"; protocol = \"echo\";\n"
	    "    listen = [ \"127.0.0.1:7007\", \"[::1]:7008\", \"*:7009\",\n"
	    "               \"localhost:7010\" ];\n"
	    "    backlog = 64; reuse_port = false; tcp_nodelay = false;\n"
	    "    keepalive = true; max_connections = 10; idle_timeout = 7;\n"
	    "    settings = { x = 1; }; },\n"
	    "  { name = \"b\"; protocol = \"./x.so\"; type = \"udp\";\n"
	    "    listen = [ \"127.0.0.1:7007\" ]; },\n"
	    "  { name = \"c\"; protocol = \"echo\";\n"
	    "    listen = [ \"unix:/tmp/c.sock\" ]; mode = \"0660\";\n"
	    "    owner = \"nobody:root\"; }\n"
	    ");\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT_FATAL(td_errors_are(cfg, NO_ERRORS));
	CU_ASSERT_EQUAL(cfg->daemon.workers, 3);
	CU_ASSERT_EQUAL(cfg->daemon.log_level, ALOOP_LOG_DEBUG);
	CU_ASSERT_EQUAL(cfg->daemon.log_target, CONFIG_LOG_SYSLOG);
	CU_ASSERT_STRING_EQUAL(cfg->daemon.user, "nobody");
	CU_ASSERT_PTR_NULL(cfg->daemon.group);
	CU_ASSERT_DOUBLE_EQUAL(cfg->daemon.shutdown_timeout, 2.5, 1e-9);
	/* Relative paths are the config directory's, made absolute. */
	CU_ASSERT_EQUAL(strncmp(cfg->daemon.pidfile, td_dir(),
	    strlen(td_dir())), 0);
	CU_ASSERT_STRING_EQUAL(cfg->daemon.pidfile + strlen(td_dir()),
	    "/run/aloopd.pid");
	CU_ASSERT_EQUAL_FATAL(cfg->daemon.nplugin_path, 2);
	CU_ASSERT_STRING_EQUAL(cfg->daemon.plugin_path[0] + strlen(td_dir()),
	    "/plugins");
	CU_ASSERT_STRING_EQUAL(cfg->daemon.plugin_path[1], "/opt/aloop");

	CU_ASSERT_EQUAL_FATAL(cfg->nlisteners, 3);
	l = &cfg->listeners[0];
	CU_ASSERT_STRING_EQUAL(l->name, "a");
	CU_ASSERT_STRING_EQUAL(l->protocol, "echo");
	CU_ASSERT_EQUAL(l->type, CONFIG_TCP);
	CU_ASSERT_EQUAL(l->line, 11);
	CU_ASSERT_EQUAL_FATAL(l->nlisten, 4);
	CU_ASSERT_EQUAL(l->listen[0].kind, CONFIG_ADDR_INET);
	CU_ASSERT_STRING_EQUAL(l->listen[0].host, "127.0.0.1");
	CU_ASSERT_STRING_EQUAL(l->listen[0].port, "7007");
	CU_ASSERT_EQUAL(l->listen[0].port_num, 7007);
	CU_ASSERT_STRING_EQUAL(l->listen[0].text, "127.0.0.1:7007");
	CU_ASSERT_STRING_EQUAL(l->listen[1].host, "::1");
	CU_ASSERT_STRING_EQUAL(l->listen[1].port, "7008");
	CU_ASSERT_PTR_NULL(l->listen[2].host);
	CU_ASSERT_STRING_EQUAL(l->listen[2].port, "7009");
	CU_ASSERT_STRING_EQUAL(l->listen[3].host, "localhost");
	CU_ASSERT_EQUAL(l->backlog, 64);
	CU_ASSERT_EQUAL(l->reuse_port, 0);
	CU_ASSERT_EQUAL(l->tcp_nodelay, 0);
	CU_ASSERT_EQUAL(l->keepalive, 1);
	CU_ASSERT_EQUAL(l->max_connections, 10);
	CU_ASSERT_DOUBLE_EQUAL(l->idle_timeout, 7.0, 1e-9);
	CU_ASSERT_EQUAL(l->mode, -1);
	CU_ASSERT_PTR_NULL(l->tls);
	CU_ASSERT_PTR_NULL(l->plugin);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l->settings);
	CU_ASSERT_EQUAL(aloop_settings_count(l->settings), 1);

	/* The defaults. */
	l = &cfg->listeners[1];
	CU_ASSERT_EQUAL(l->type, CONFIG_UDP);
	CU_ASSERT_EQUAL(l->backlog, 511);
	CU_ASSERT_EQUAL(l->reuse_port, 1);
	CU_ASSERT_EQUAL(l->tcp_nodelay, 1);
	CU_ASSERT_EQUAL(l->keepalive, 0);
	CU_ASSERT_EQUAL(l->max_connections, 0);
	CU_ASSERT_DOUBLE_EQUAL(l->idle_timeout, 0.0, 1e-9);
	/* An absent settings group is an empty one. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(l->settings);
	CU_ASSERT_EQUAL(aloop_settings_type(l->settings), ALOOP_SETTINGS_GROUP);
	CU_ASSERT_EQUAL(aloop_settings_count(l->settings), 0);

	l = config_find_listener(cfg, "c");
	CU_ASSERT_PTR_EQUAL_FATAL(l, &cfg->listeners[2]);
	CU_ASSERT_EQUAL(l->listen[0].kind, CONFIG_ADDR_UNIX);
	CU_ASSERT_STRING_EQUAL(l->listen[0].path, "/tmp/c.sock");
	CU_ASSERT_EQUAL(l->mode, 0660);
	CU_ASSERT_STRING_EQUAL(l->owner, "nobody:root");
	CU_ASSERT_PTR_NULL(config_find_listener(cfg, "zz"));
	config_free(cfg);
	td_leave();
}

static void
test_daemon_defaults(void)
{
	struct config *cfg;

	td_enter();
	td_write("aloop.conf", "listeners = ( { name = \"a\"; "
	    "protocol = \"p\"; listen = [ \"*:1\" ]; } );\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT_EQUAL(cfg->daemon.workers, 1);
	CU_ASSERT_EQUAL(cfg->daemon.log_level, ALOOP_LOG_INFO);
	CU_ASSERT_EQUAL(cfg->daemon.log_target, CONFIG_LOG_STDERR);
	CU_ASSERT_PTR_NULL(cfg->daemon.pidfile);
	CU_ASSERT_PTR_NULL(cfg->daemon.user);
	CU_ASSERT_EQUAL(cfg->daemon.nplugin_path, 0);
	CU_ASSERT_DOUBLE_EQUAL(cfg->daemon.shutdown_timeout, 30.0, 1e-9);
	config_free(cfg);
	td_leave();
}

#define ONE_LISTENER	"listeners = ( { name = \"a\"; protocol = \"p\"; " \
			"listen = [ \"*:1\" ]; } );\n"

static void
test_workers(void)
{
	struct config *cfg;

	td_enter();
	td_write("aloop.conf", "daemon = { workers = \"auto\"; };\n"
	    ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT(cfg->daemon.workers >= 1);
	CU_ASSERT(cfg->daemon.workers <= CONFIG_WORKERS_MAX);
	config_free(cfg);
	td_leave();

	expect("daemon = { workers = 0; };\n" ONE_LISTENER,
	    ERRORS("aloop.conf:1: daemon.workers \"0\": out of range "
	    "(1..1024)"));
	expect("daemon = {\n workers = 5000; };\n" ONE_LISTENER,
	    ERRORS("aloop.conf:2: daemon.workers \"5000\": out of range "
	    "(1..1024)"));
	expect("daemon = { workers = \"two\"; };\n" ONE_LISTENER,
	    ERRORS("aloop.conf:1: daemon.workers \"two\": expected a number "
	    "or \"auto\""));
}

static void
test_bad_port(void)
{
	expect("listeners = (\n"
	    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:1\" ]; },\n"
	    "  { name = \"b\"; protocol = \"p\";\n"
	    "    listen = [\n"
	    "      \"127.0.0.1:99999\", \"127.0.0.1:0\", \"127.0.0.1:http\",\n"
	    "      \"127.0.0.1:\" ]; }\n"
	    ");\n",
	    ERRORS(
	    "aloop.conf:5: listeners[1].listen[0] \"127.0.0.1:99999\": "
	    "port out of range",
	    "aloop.conf:5: listeners[1].listen[1] \"127.0.0.1:0\": "
	    "port out of range",
	    "aloop.conf:5: listeners[1].listen[2] \"127.0.0.1:http\": "
	    "port must be a number",
	    "aloop.conf:6: listeners[1].listen[3] \"127.0.0.1:\": "
	    "port must be a number"));
}

/* One byte too long for sun_path with its terminating NUL. */
#define A10	"aaaaaaaaaa"
#define A107	A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 "aaaaaaa"

static void
test_bad_addresses(void)
{
	expect("listeners = ( { name = \"a\"; protocol = \"p\";\n"
	    "listen = ( \"::1:80\", \"[::1:80\", \"[::g]:80\", \"[::1]80\",\n"
	    "\"127.0.0.1\", \":80\", \"999.1.1.1:80\", \"bad_host:80\",\n"
	    "\"unix:sock\", \"unix:/" A107 "\",\n"
	    "\"\", 80 ); } );\n",
	    ERRORS(
	    "aloop.conf:2: listeners[0].listen[0] \"::1:80\": an IPv6 "
	    "address needs brackets: \"[::1]:port\"",
	    "aloop.conf:2: listeners[0].listen[1] \"[::1:80\": missing \"]\" "
	    "after the IPv6 address",
	    "aloop.conf:2: listeners[0].listen[2] \"[::g]:80\": not an IPv6 "
	    "address",
	    "aloop.conf:2: listeners[0].listen[3] \"[::1]80\": missing "
	    "\":port\"",
	    "aloop.conf:3: listeners[0].listen[4] \"127.0.0.1\": missing "
	    "\":port\"",
	    "aloop.conf:3: listeners[0].listen[5] \":80\": missing host "
	    "(\"*:port\" is every interface)",
	    "aloop.conf:3: listeners[0].listen[6] \"999.1.1.1:80\": not an "
	    "IPv4 address or a host name",
	    "aloop.conf:3: listeners[0].listen[7] \"bad_host:80\": not an "
	    "IPv4 address or a host name",
	    "aloop.conf:4: listeners[0].listen[8] \"unix:sock\": a unix "
	    "socket path must be absolute",
	    "aloop.conf:4: listeners[0].listen[9] \"unix:/" A107 "\": unix "
	    "socket path too long",
	    "aloop.conf:5: listeners[0].listen[10] \"\": must not be empty",
	    "aloop.conf:5: listeners[0].listen[11] \"80\": expected a "
	    "string"));
}

static void
test_unknown_settings(void)
{
	expect("daemon = {\n"
	    "  wrokers = 2;\n"
	    "};\n"
	    "listeners = ( { name = \"a\"; protocol = \"p\";\n"
	    "  listen = [ \"*:1\" ];\n"
	    "  tcp_nodelai = true;\n"
	    "  tls = { certificate = \"c\"; key = \"k\"; cert = \"x\"; };\n"
	    "} );\n"
	    "listners = 1;\n",
	    ERRORS(
	    "aloop.conf:2: daemon.wrokers \"2\": unknown setting",
	    "aloop.conf:6: listeners[0].tcp_nodelai \"true\": unknown "
	    "setting",
	    "aloop.conf:7: listeners[0].tls.cert \"x\": unknown setting",
	    "aloop.conf:9: listners \"1\": unknown setting"));
}

static void
test_duplicate_names_and_addresses(void)
{
	expect("listeners = (\n"
	    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:7000\" ]; },\n"
	    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:7001\" ]; },\n"
	    "  { name = \"c\"; protocol = \"p\";\n"
	    "    listen = [ \"127.0.0.1:7000\", \"*:7002\", \"*:7002\" ]; },\n"
	    "  { name = \"d\"; protocol = \"p\"; type = \"udp\";\n"
	    "    listen = [ \"127.0.0.1:7000\" ]; },\n"
	    "  { name = \"e:f\"; protocol = \"p\"; listen = [ \"*:7003\" ]; }\n"
	    ");\n",
	    ERRORS(
	    "aloop.conf:3: listeners[1].name \"a\": name already used by "
	    "listeners[0]",
	    "aloop.conf:5: listeners[2].listen[0] \"127.0.0.1:7000\": "
	    "already used by listener \"a\"",
	    "aloop.conf:5: listeners[2].listen[2] \"*:7002\": listed twice",
	    "aloop.conf:8: listeners[4].name \"e:f\": use letters, digits, "
	    "'-', '_' and '.'"));
}

/*
 * The duplicate checks at scale: among 30,000 listeners (the tables grow
 * past their first sizes, the keys past one block), a clash between the
 * last and the first is found and named, and nothing else is reported.
 */
static void
test_duplicates_among_many(void)
{
	enum { N = 30000 };
	size_t cap = (size_t)N * 96 + 512, len = 0;
	char *text = malloc(cap);
	struct config *cfg;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	len += (size_t)snprintf(text + len, cap - len, "listeners = (\n");
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(text + len, cap - len,
		    "{ name = \"l%d\"; protocol = \"p\"; listen = "
		    "[ \"127.0.%d.1:%d\" ]; },\n", i, i / 20000,
		    1024 + i % 20000);
	/* The first's name; a host of a port that "*" of the second took. */
	len += (size_t)snprintf(text + len, cap - len,
	    "{ name = \"l0\"; protocol = \"p\"; listen = [ \"*:1025\" ]; },\n"
	    "{ name = \"last\"; protocol = \"p\"; listen = "
	    "[ \"127.0.0.1:1025\" ]; }\n);\n");
	CU_ASSERT_FATAL(len < cap);
	td_enter();
	td_write("aloop.conf", text);
	free(text);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	CU_ASSERT_EQUAL(cfg->nlisteners, N + 2);
	CU_ASSERT(td_errors_are(cfg, ERRORS(
	    "aloop.conf:30002: listeners[30000].name \"l0\": name already "
	    "used by listeners[0]",
	    "aloop.conf:30002: listeners[30000].listen[0] \"*:1025\": "
	    "already used by listener \"l1\"",
	    "aloop.conf:30003: listeners[30001].listen[0] "
	    "\"127.0.0.1:1025\": already used by listener \"l1\"")));
	config_free(cfg);
	td_leave();
}

static void
test_bad_types(void)
{
	expect("daemon = { log_level = \"loud\"; log_target = 1;\n"
	    "  shutdown_timeout = \"soon\"; plugin_path = \"x\"; };\n"
	    "listeners = ( { name = \"a\"; protocol = \"p\"; type = \"sctp\";\n"
	    "  listen = [ \"*:1\" ]; backlog = \"x\"; reuse_port = 1;\n"
	    "  max_connections = -1; idle_timeout = 1e9; mode = 660;\n"
	    "  settings = [ 1 ]; } );\n",
	    ERRORS(
	    "aloop.conf:1: daemon.log_level \"loud\": expected one of "
	    "\"error\", \"err\", \"warning\", \"notice\", \"info\", \"debug\"",
	    "aloop.conf:1: daemon.log_target \"1\": expected one of "
	    "\"stderr\", \"syslog\"",
	    "aloop.conf:2: daemon.shutdown_timeout \"soon\": expected a "
	    "number of seconds",
	    "aloop.conf:2: daemon.plugin_path \"x\": expected a list of "
	    "directories",
	    "aloop.conf:3: listeners[0].type \"sctp\": expected one of "
	    "\"tcp\", \"udp\"",
	    "aloop.conf:4: listeners[0].backlog \"x\": expected an integer",
	    "aloop.conf:4: listeners[0].reuse_port \"1\": expected true or "
	    "false",
	    "aloop.conf:5: listeners[0].max_connections \"-1\": out of range "
	    "(0..10000000)",
	    "aloop.conf:5: listeners[0].idle_timeout \"1e+09\": out of range "
	    "(0..86400 seconds)",
	    "aloop.conf:5: listeners[0].mode \"660\": expected an octal mode "
	    "in a string, like \"0660\"",
	    "aloop.conf:6: listeners[0].settings: expected a group { ... }"));
}

/* The bounds on peers: their defaults, and where each one belongs. */
static void
test_peer_bounds(void)
{
	const struct config_listener *l;
	struct config *cfg;

	td_enter();
	td_write("aloop.conf",
	    "listeners = (\n"
	    "  { name = \"a\"; protocol = \"echo\"; listen = [ \"*:1\" ]; },\n"
	    "  { name = \"b\"; protocol = \"echo\"; listen = [ \"*:2\" ];\n"
	    "    first_byte_timeout = 2.5; write_timeout = 0;\n"
	    "    overflow = \"wait\"; max_connections_per_source = 4;\n"
	    "    connection_rate = 100; connection_rate_per_source = 5; },\n"
	    "  { name = \"c\"; protocol = \"echo\"; listen = [ \"*:3\" ];\n"
	    "    type = \"udp\"; datagram_rate_per_source = 50; } );\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	l = &cfg->listeners[0];
	CU_ASSERT_DOUBLE_EQUAL(l->handshake_timeout, 10.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(l->first_byte_timeout, 0.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(l->write_timeout, 60.0, 1e-9);
	CU_ASSERT_EQUAL(l->overflow, CONFIG_OVERFLOW_CLOSE);
	CU_ASSERT_EQUAL(l->max_per_source, 0);
	CU_ASSERT_EQUAL(l->connection_rate, 0);
	l = &cfg->listeners[1];
	CU_ASSERT_DOUBLE_EQUAL(l->first_byte_timeout, 2.5, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(l->write_timeout, 0.0, 1e-9);
	CU_ASSERT_EQUAL(l->overflow, CONFIG_OVERFLOW_WAIT);
	CU_ASSERT_EQUAL(l->max_per_source, 4);
	CU_ASSERT_EQUAL(l->connection_rate, 100);
	CU_ASSERT_EQUAL(l->connection_rate_per_source, 5);
	CU_ASSERT_EQUAL(cfg->listeners[2].datagram_rate_per_source, 50);
	config_free(cfg);
	td_leave();

	expect("listeners = (\n"
	    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:1\" ];\n"
	    "    handshake_timeout = 5; datagram_rate_per_source = 1;\n"
	    "    overflow = \"drop\"; },\n"
	    "  { name = \"b\"; protocol = \"p\"; listen = [ \"*:2\" ];\n"
	    "    type = \"udp\"; write_timeout = 1; connection_rate = 1;\n"
	    "    handshake_timeout = 0; } );\n",
	    ERRORS(
	    "aloop.conf:4: listeners[0].overflow \"drop\": expected one of "
	    "\"close\", \"wait\"",
	    "aloop.conf:3: listeners[0].datagram_rate_per_source \"1\": only "
	    "for type \"udp\"",
	    "aloop.conf:3: listeners[0].handshake_timeout \"5\": only with "
	    "tls",
	    "aloop.conf:7: listeners[1].handshake_timeout \"0\": out of range "
	    "(1..3600 seconds)",
	    "aloop.conf:7: listeners[1].handshake_timeout \"0\": only for "
	    "type \"tcp\"",
	    "aloop.conf:6: listeners[1].write_timeout \"1\": only for type "
	    "\"tcp\"",
	    "aloop.conf:6: listeners[1].connection_rate \"1\": only for type "
	    "\"tcp\""));
}

static int
allows4(const struct config_listener *l, const char *ip)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	CU_ASSERT_EQUAL_FATAL(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	return access_allows(&l->access, -1, (struct sockaddr *)&a, sizeof(a));
}

static int
allows6(const struct config_listener *l, const char *ip)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

	CU_ASSERT_EQUAL_FATAL(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
	return access_allows(&l->access, -1, (struct sockaddr *)&a, sizeof(a));
}

/*
 * allow and deny: the lists in the order written, the first match
 * deciding, and what matches nothing getting the opposite of the last
 * list; IPv4 clients seen through IPv6 sockets are the same addresses.
 */
static void
test_access_rules(void)
{
	const struct config_listener *l;
	struct config *cfg;

	td_enter();
	td_write("aloop.conf",
	    "listeners = (\n"
	    "  { name = \"only\"; protocol = \"echo\"; listen = [ \"*:1\" ];\n"
	    "    allow = [ \"127.0.0.0/8\", \"2001:db8::/32\" ]; },\n"
	    "  { name = \"but\"; protocol = \"echo\"; listen = [ \"*:2\" ];\n"
	    "    deny = [ \"10.0.0.1\", \"10.2.0.0/16\" ]; },\n"
	    "  { name = \"hole\"; protocol = \"echo\"; listen = [ \"*:3\" ];\n"
	    "    allow = [ \"10.1.2.3\" ]; deny = [ \"10.1.0.0/16\" ]; },\n"
	    "  { name = \"none\"; protocol = \"echo\"; listen = [ \"*:4\" ];\n"
	    "    deny = [ \"all\" ]; },\n"
	    "  { name = \"odd\"; protocol = \"echo\"; listen = [ \"*:5\" ];\n"
	    "    allow = [ \"192.168.1.128/25\" ]; },\n"
	    "  { name = \"hex\"; protocol = \"echo\"; listen = [ \"*:6\" ];\n"
	    "    allow = [ \"abcd::1\", \"fd00::/8\" ]; } );\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	l = &cfg->listeners[0];
	CU_ASSERT(allows4(l, "127.0.0.1"));
	CU_ASSERT(allows4(l, "127.255.0.9"));
	CU_ASSERT(allows6(l, "::ffff:127.0.0.1"));
	CU_ASSERT(allows6(l, "2001:db8:1::5"));
	CU_ASSERT_FALSE(allows4(l, "128.0.0.1"));
	CU_ASSERT_FALSE(allows6(l, "2001:db9::1"));
	CU_ASSERT_FALSE(allows6(l, "::1"));
	l = &cfg->listeners[1];
	CU_ASSERT_FALSE(allows4(l, "10.0.0.1"));
	CU_ASSERT(allows4(l, "10.0.0.2"));
	CU_ASSERT_FALSE(allows6(l, "::ffff:10.2.200.1"));
	CU_ASSERT(allows6(l, "::1"));
	l = &cfg->listeners[2];
	CU_ASSERT(allows4(l, "10.1.2.3"));
	CU_ASSERT_FALSE(allows4(l, "10.1.2.4"));
	CU_ASSERT(allows4(l, "10.3.0.1"));
	l = &cfg->listeners[3];
	CU_ASSERT_FALSE(allows4(l, "127.0.0.1"));
	CU_ASSERT_FALSE(allows6(l, "::1"));
	l = &cfg->listeners[4];
	CU_ASSERT(allows4(l, "192.168.1.128"));
	CU_ASSERT(allows4(l, "192.168.1.255"));
	CU_ASSERT_FALSE(allows4(l, "192.168.1.127"));
	/* IPv6 written with letters before a colon is no credential. */
	l = &cfg->listeners[5];
	CU_ASSERT(allows6(l, "abcd::1"));
	CU_ASSERT(allows6(l, "fd12::7"));
	CU_ASSERT_FALSE(allows6(l, "abcd::2"));
	config_free(cfg);
	td_leave();

	expect("listeners = (\n"
	    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:1\" ];\n"
	    "    allow = ( \"10.0.0.1/8\", \"10.0.0.0/33\", \"::1/129\",\n"
	    "      \"example.com\", \"uid:x\", 7 ); deny = [ ]; },\n"
	    "  { name = \"b\"; protocol = \"p\"; listen = [ \"*:2\" ];\n"
	    "    deny = [ \"uid:0\" ]; },\n"
	    "  { name = \"c\"; protocol = \"p\"; listen = [ \"unix:/x\" ];\n"
	    "    allow = [ \"user:nosuchuserhere\", \"::1\" ]; } );\n",
	    ERRORS(
	    "aloop.conf:3: listeners[0].allow[0] \"10.0.0.1/8\": host bits "
	    "set past the /8 prefix",
	    "aloop.conf:3: listeners[0].allow[1] \"10.0.0.0/33\": prefix "
	    "length must be 0 to 32",
	    "aloop.conf:3: listeners[0].allow[2] \"::1/129\": prefix length "
	    "must be 0 to 128",
	    "aloop.conf:4: listeners[0].allow[3] \"example.com\": expected "
	    "\"all\", an IPv4 or IPv6 address or prefix (\"10.0.0.0/8\"), or "
	    "for unix sockets \"uid:N\", \"gid:N\", \"user:NAME\", "
	    "\"group:NAME\"",
	    "aloop.conf:4: listeners[0].allow[4] \"uid:x\": expected a number "
	    "after \"uid:\"",
	    "aloop.conf:4: listeners[0].allow[5] \"7\": expected a string",
	    "aloop.conf:4: listeners[0].deny: empty: leave it out instead",
	    "aloop.conf:6: listeners[1].deny: uid, gid, user and group need a "
	    "\"unix:\" address to listen on",
	    "aloop.conf:8: listeners[2].allow[0] \"user:nosuchuserhere\": no "
	    "user \"nosuchuserhere\"",
	    "aloop.conf:8: listeners[2].allow: addresses and prefixes need an "
	    "IP address to listen on"));
}

static void
test_missing_settings(void)
{
	expect("listeners = (\n"
	    "  { name = \"a\"; listen = [ \"*:1\" ]; },\n"
	    "  { protocol = \"p\"; listen = [ ]; },\n"
	    "  \"x\" );\n",
	    ERRORS(
	    "aloop.conf:2: listeners[0].protocol: missing",
	    "aloop.conf:3: listeners[1].listen: needs at least one address",
	    "aloop.conf:3: listeners[1].name: missing",
	    "aloop.conf:4: listeners[2] \"x\": expected a group { ... }"));
	expect("daemon = { workers = 1; };\n",
	    ERRORS("aloop.conf: listeners: missing"));
	expect("listeners = ( );\n",
	    ERRORS("aloop.conf:1: listeners: empty: aloopd needs at least "
	    "one listener"));
	expect("listeners = { };\n",
	    ERRORS("aloop.conf:1: listeners: expected a list of groups "
	    "( { name = ...; ... }, ... )"));
}

static void
test_listener_combinations(void)
{
	expect("daemon = { group = \"root\"; };\n"
	    "listeners = (\n"
	    "  { name = \"a\"; protocol = \"p\"; type = \"udp\";\n"
	    "    listen = [ \"unix:/tmp/a\" ]; },\n"
	    "  { name = \"b\"; protocol = \"p\"; listen = [ \"*:1\" ];\n"
	    "    mode = \"0600\"; owner = \"u\"; }\n"
	    ");\n",
	    ERRORS(
	    "aloop.conf:1: daemon.group \"root\": needs a user to switch to",
	    "aloop.conf:4: listeners[0].listen[0] \"unix:/tmp/a\": unix "
	    "sockets are served with type \"tcp\" only",
	    "aloop.conf:6: listeners[1].mode \"0600\": only for \"unix:\" "
	    "addresses",
	    "aloop.conf:6: listeners[1].owner \"u\": only for \"unix:\" "
	    "addresses"));
}

static void
test_unknown_users(void)
{
	expect("daemon = { user = \"no-such-user-x\"; "
	    "group = \"no-such-gr\"; };\n"
	    "listeners = ( { name = \"a\"; protocol = \"p\";\n"
	    "  listen = [ \"unix:/tmp/x\" ]; "
	    "owner = \"root:no-such-gr\"; } );\n",
	    ERRORS(
	    "aloop.conf:1: daemon.user \"no-such-user-x\": no user "
	    "\"no-such-user-x\"",
	    "aloop.conf:1: daemon.group \"no-such-gr\": no group "
	    "\"no-such-gr\"",
	    "aloop.conf:3: listeners[0].owner \"root:no-such-gr\": no group "
	    "\"no-such-gr\""));
}

static void
test_syntax_error_and_missing_file(void)
{
	struct config *cfg;

	expect("daemon = {\n  workers = = 1;\n};\n",
	    ERRORS("aloop.conf:2: syntax error"));
	td_enter();
	CU_ASSERT_EQUAL(config_load("nope.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg,
	    ERRORS("nope.conf: No such file or directory")));
	config_free(cfg);
	CU_ASSERT_EQUAL(config_load(".", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS(".: is a directory")));
	config_free(cfg);
	td_leave();
	expect("@include \"missing.conf\"\n" ONE_LISTENER,
	    ERRORS("aloop.conf:1: @include \"missing.conf\": No such file "
	    "or directory"));

	/* Includes are found beside the file and keep their own names. */
	td_enter();
	CU_ASSERT_FATAL(mkdir("sub", 0700) == 0);
	td_write("sub/daemon.conf", "daemon = {\n  workers = 0;\n};\n");
	td_write("sub/aloop.conf", "@include \"daemon.conf\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("sub/aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("sub/daemon.conf:2: daemon.workers "
	    "\"0\": out of range (1..1024)")));
	config_free(cfg);
	td_leave();
}

/* The TLS group: files exist, parse, and the key is the certificate's. */
static void
test_tls(void)
{
	const struct config_tls *t;
	struct config *cfg;

	td_enter();
	CU_ASSERT_FATAL(td_make_cert("one") == 0);
	CU_ASSERT_FATAL(td_make_cert("two") == 0);
	td_write("aloop.conf",
	    "listeners = ( { name = \"a\"; protocol = \"p\";\n"
	    "  listen = [ \"*:1\" ];\n"
	    "  tls = {\n"
	    "    certificate = \"one/server.crt\"; key = \"one/server.key\";\n"
	    "    ca = \"two/server.crt\"; verify = \"required\";\n"
	    "    min_version = \"TLSv1.3\"; alpn = [ \"h2\", \"echo\" ];\n"
	    "    ciphers = \"ECDHE+AESGCM\";\n"
	    "    sni = ( { certificate = \"two/server.crt\";\n"
	    "              key = \"two/server.key\"; } );\n"
	    "  }; } );\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT_FATAL(td_errors_are(cfg, NO_ERRORS));
	t = cfg->listeners[0].tls;
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_STRING_EQUAL(t->certificate + strlen(td_dir()),
	    "/one/server.crt");
	CU_ASSERT_STRING_EQUAL(t->ca + strlen(td_dir()), "/two/server.crt");
	CU_ASSERT_EQUAL(t->verify, ALOOP_TLS_VERIFY_REQUIRED);
	CU_ASSERT_STRING_EQUAL(t->min_version, "TLSv1.3");
	CU_ASSERT_EQUAL_FATAL(t->nalpn, 2);
	CU_ASSERT_STRING_EQUAL(t->alpn[1], "echo");
	CU_ASSERT_STRING_EQUAL(t->ciphers, "ECDHE+AESGCM");
	CU_ASSERT_PTR_NULL(t->ciphersuites);
	CU_ASSERT_EQUAL_FATAL(t->nsni, 1);
	CU_ASSERT_STRING_EQUAL(t->sni[0].key + strlen(td_dir()),
	    "/two/server.key");
	config_free(cfg);

	/* Default min_version. */
	td_write("aloop.conf",
	    "listeners = ( { name = \"a\"; protocol = \"p\";\n"
	    "  listen = [ \"*:1\" ]; "
	    "tls = { certificate = \"one/server.crt\";\n"
	    "  key = \"one/server.key\"; }; } );\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT_STRING_EQUAL(cfg->listeners[0].tls->min_version, "TLSv1.2");
	CU_ASSERT_EQUAL(cfg->listeners[0].tls->verify, ALOOP_TLS_VERIFY_NONE);
	config_free(cfg);
	td_leave();
}

/*
 * What the library refuses the config refuses: the context is built by
 * the same calls a start makes, so `aloopd -t` cannot pass a cipher list
 * that only fails later (here: no AEAD cipher for TLS 1.2).
 */
static void
test_tls_library_refuses(void)
{
	struct config *cfg;

	td_enter();
	CU_ASSERT_FATAL(td_make_cert("one") == 0);
	td_write("aloop.conf",
	    "listeners = (\n"
	    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:1\" ];\n"
	    "    tls = { certificate = \"one/server.crt\";\n"
	    "            key = \"one/server.key\";\n"
	    "            ciphers = \"AES128-SHA\"; }; }\n"
	    ");\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT_EQUAL_FATAL(cfg->nerrors, 1);
	CU_ASSERT_STRING_EQUAL(cfg->errors[0],
	    "aloop.conf:5: listeners[0].tls.ciphers \"AES128-SHA\": no AEAD "
	    "cipher for TLS 1.2 in the list");
	CU_ASSERT_PTR_NULL(cfg->listeners[0].tls->ctx);
	config_free(cfg);
	td_leave();
}

static void
test_tls_errors(void)
{
	struct config *cfg;
	char line[1024];

	td_enter();
	CU_ASSERT_FATAL(td_make_cert("one") == 0);
	CU_ASSERT_FATAL(td_make_cert("two") == 0);
	td_write("garbage.pem", "not a certificate\n");
	td_write("aloop.conf",
	    "listeners = (\n"
	    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:1\" ];\n"
	    "    tls = { certificate = \"one/server.crt\";\n"
	    "            key = \"two/server.key\"; }; },\n"
	    "  { name = \"b\"; protocol = \"p\"; listen = [ \"*:2\" ];\n"
	    "    tls = { certificate = \"missing.crt\";\n"
	    "            key = \"one/server.key\"; "
	    "verify = \"optional\"; }; },\n"
	    "  { name = \"c\"; protocol = \"p\"; listen = [ \"*:3\" ];\n"
	    "    tls = { certificate = \"garbage.pem\";\n"
	    "            key = \"one/server.key\";\n"
	    "            ciphers = \"NOTHING-AT-ALL\"; }; },\n"
	    "  { name = \"d\"; protocol = \"p\"; listen = [ \"*:4\" ];\n"
	    "    type = \"udp\"; tls = { key = \"k\"; "
	    "min_version = \"SSLv3\";\n"
	    "    }; }\n"
	    ");\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT_EQUAL_FATAL(cfg->nerrors, 8);
	CU_ASSERT_STRING_EQUAL(cfg->errors[0],
	    "aloop.conf:4: listeners[0].tls.key \"two/server.key\": key "
	    "values mismatch");
	snprintf(line, sizeof(line), "aloop.conf:6: listeners[1].tls."
	    "certificate \"missing.crt\": cannot read %s/missing.crt: No such "
	    "file or directory", td_dir());
	CU_ASSERT_STRING_EQUAL(cfg->errors[1], line);
	CU_ASSERT_STRING_EQUAL(cfg->errors[2],
	    "aloop.conf:7: listeners[1].tls.verify \"optional\": needs a "
	    "\"ca\" to check client certificates against");
	CU_ASSERT_STRING_EQUAL(cfg->errors[3],
	    "aloop.conf:9: listeners[2].tls.certificate \"garbage.pem\": no "
	    "start line");
	CU_ASSERT_STRING_EQUAL(cfg->errors[4],
	    "aloop.conf:11: listeners[2].tls.ciphers \"NOTHING-AT-ALL\": no "
	    "cipher match");
	CU_ASSERT_STRING_EQUAL(cfg->errors[5],
	    "aloop.conf:13: listeners[3].tls.min_version \"SSLv3\": expected "
	    "\"TLSv1.2\" or \"TLSv1.3\"");
	CU_ASSERT_STRING_EQUAL(cfg->errors[6],
	    "aloop.conf:13: listeners[3].tls.certificate: missing");
	CU_ASSERT_STRING_EQUAL(cfg->errors[7],
	    "aloop.conf:13: listeners[3].tls: TLS needs type \"tcp\" (there "
	    "is no DTLS)");
	config_free(cfg);
	td_leave();
}

/* Every error of a file comes out, not just the first. */
static void
test_all_errors_collected(void)
{
	struct config *cfg;
	char *text, *p;
	size_t size = 64 + 300 * 80;

	td_enter();
	/* 300 bad listeners: the list stops at a bounded length. */
	CU_ASSERT_FATAL((text = malloc(size)) != NULL);
	p = text + sprintf(text, "listeners = (\n");
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "{ name = \"l%d\"; protocol = \"p\"; "
		    "listen = [ \"*:0\" ]; }%s\n", i, i < 299 ? "," : "");
	strcpy(p, ");\n");
	td_write("aloop.conf", text);
	free(text);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT_EQUAL_FATAL(cfg->nerrors, 101);
	CU_ASSERT_STRING_EQUAL(cfg->errors[0], "aloop.conf:2: listeners[0]."
	    "listen[0] \"*:0\": port out of range");
	CU_ASSERT_STRING_EQUAL(cfg->errors[99], "aloop.conf:101: "
	    "listeners[99].listen[0] \"*:0\": port out of range");
	CU_ASSERT_STRING_EQUAL(cfg->errors[100],
	    "aloop.conf: too many errors, giving up on the rest");
	config_free(cfg);
	td_leave();
}

/* An error in an included file, with the main file beside it. */
static void
test_include_beside(void)
{
	struct config *cfg;

	td_enter();
	td_write("daemon.conf", "daemon = {\n  workers = 0;\n};\n");
	td_write("aloop.conf", "@include \"daemon.conf\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("daemon.conf:2: daemon.workers "
	    "\"0\": out of range (1..1024)")));
	config_free(cfg);
	td_leave();
}


/*
 * Every file an @include names is checked before anything reads it: a
 * directory once made libconfig exit, a FIFO made it block for good.
 * Each case must come back, with the file and line of the @include.
 */
static void
test_include_checked(void)
{
	struct config *cfg;
	FILE *f;

	td_enter();
	CU_ASSERT_FATAL(mkdir("dir", 0700) == 0);
	CU_ASSERT_FATAL(mkfifo("fifo", 0600) == 0);
	td_write("aloop.conf", "\n@include \"dir\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("aloop.conf:2: @include \"dir\": "
	    "not a regular file (a directory)")));
	config_free(cfg);
	/* Nobody writes to it: opening it for reading would block. */
	td_write("aloop.conf", "@include \"fifo\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("aloop.conf:1: @include \"fifo\": "
	    "not a regular file (a FIFO)")));
	config_free(cfg);
	/* Absolute names are taken as they are, as libconfig 1.7 does. */
	td_write("aloop.conf", "x = 1;\n  @include \"/dev/zero\"\n"
	    ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("aloop.conf:2: @include "
	    "\"/dev/zero\": not a regular file (a device)")));
	config_free(cfg);
	/* Past 16 MiB, without reading it: a sparse file. */
	CU_ASSERT_FATAL((f = fopen("big.conf", "w")) != NULL);
	CU_ASSERT(ftruncate(fileno(f), (16 << 20) + 1) == 0);
	fclose(f);
	td_write("aloop.conf", "@include \"big.conf\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("aloop.conf:1: @include "
	    "\"big.conf\": larger than 16 MiB")));
	config_free(cfg);
	CU_ASSERT_EQUAL(config_parse("big.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("big.conf: larger than 16 MiB")));
	config_free(cfg);
	/* libconfig would read up to the NUL and take that for all. */
	CU_ASSERT_FATAL((f = fopen("nul.conf", "w")) != NULL);
	fwrite("a = 1;\n\0b = 2;\n", 1, 15, f);
	fclose(f);
	td_write("aloop.conf", "@include \"nul.conf\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("nul.conf:2: a NUL byte")));
	config_free(cfg);
	td_write("aloop.conf", "@include \"a\\\\b\\q\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("aloop.conf:1: @include: only \\\\ "
	    "and \\\" are escapes in a file name")));
	config_free(cfg);
	td_leave();
}

/* Read permission is checked by open(2), which root passes anyway. */
static void
test_include_unreadable(void)
{
	struct config *cfg;

	if (geteuid() == 0) {
		printf("(skipped: root reads any file) ");
		return;
	}
	td_enter();
	td_write("secret.conf", "x = 1;\n");
	CU_ASSERT_FATAL(chmod("secret.conf", 0) == 0);
	td_write("aloop.conf", "@include \"secret.conf\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("aloop.conf:1: @include "
	    "\"secret.conf\": Permission denied")));
	config_free(cfg);
	td_leave();
}

/* Cycles are refused where they close; nesting stops at 10 levels. */
static void
test_include_cycles_and_depth(void)
{
	struct config *cfg;
	char name[32], text[64];

	td_enter();
	td_write("aloop.conf", "@include \"a.conf\"\n" ONE_LISTENER);
	td_write("a.conf", "x = 1;\n@include \"b.conf\"\n");
	td_write("b.conf", "\n\n@include \"a.conf\"\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("b.conf:3: @include \"a.conf\": "
	    "includes itself (an @include cycle)")));
	config_free(cfg);
	td_write("self.conf", "@include \"self.conf\"\n");
	CU_ASSERT_EQUAL(config_parse("self.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("self.conf:1: @include "
	    "\"self.conf\": includes itself (an @include cycle)")));
	config_free(cfg);
	/* Ten levels below the main file are fine, an eleventh is not. */
	for (int i = 1; i < 10; i++) {
		snprintf(name, sizeof(name), "d%d.conf", i);
		snprintf(text, sizeof(text), "@include \"d%d.conf\"\n", i + 1);
		td_write(name, text);
	}
	td_write("d10.conf", "# the last\n");
	td_write("aloop.conf", "@include \"d1.conf\"\n" ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT(td_errors_are(cfg, NO_ERRORS));
	config_free(cfg);
	td_write("d10.conf", "@include \"d11.conf\"\n");
	td_write("d11.conf", "x = 1;\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS("d10.conf:1: @include "
	    "\"d11.conf\": nested too deeply (more than 10 levels of "
	    "@include)")));
	config_free(cfg);
	/* The same file twice, not nested, is no cycle. */
	td_write("x.conf", "\n");
	td_write("aloop.conf", "@include \"x.conf\"\n@include \"x.conf\"\n"
	    ONE_LISTENER);
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), 0);
	config_free(cfg);
	td_leave();
}

/*
 * A good include: its settings count, and every line after it, in it and
 * in the main file, is still reported where it was written.  Comments and
 * strings hide @include as they do from libconfig.
 */
static void
test_include_lines(void)
{
	const struct config_listener *l;
	struct config *cfg;

	td_enter();
	td_write("l.conf", "\n  { name = \"b\"; protocol = \"p\";\n"
	    "    listen = [ \"*:2\" ]; },\n"
	    "  { name = \"c\"; protocol = \"p\"; listen = [ \"*:x\" ]; }");
	td_write("aloop.conf",
	    "/* a comment\n"
	    "@include \"nothing\" */\n"
	    "daemon = { user = \"x\n"
	    "@include \\\"nothing\\\"\"; };  # not one either\n"
	    "listeners = (\n"
	    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:1\" ]; },\n"
	    "\t @include \"l.conf\" , { name = \"d\"; protocol = \"p\";\n"
	    "    listen = [ \"*:0\" ]; }\n"
	    ");\n");
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS(
	    "aloop.conf:3: daemon.user \"x\n@include \"nothing\"\": no user "
	    "\"x\n@include \"nothing\"\"",
	    "l.conf:4: listeners[2].listen[0] \"*:x\": port must be a number",
	    "aloop.conf:8: listeners[3].listen[0] \"*:0\": port out of "
	    "range")));
	CU_ASSERT_EQUAL(cfg->nlisteners, 4);
	l = config_find_listener(cfg, "b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	CU_ASSERT_STRING_EQUAL(l->file, "l.conf");
	CU_ASSERT_EQUAL(l->line, 2);
	l = config_find_listener(cfg, "d");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	CU_ASSERT_STRING_EQUAL(l->file, "aloop.conf");
	CU_ASSERT_EQUAL(l->line, 7);
	config_free(cfg);
	td_leave();
}

/* OpenSSL would block on a FIFO named as a TLS file, so it is refused. */
static void
test_tls_file_not_regular(void)
{
	struct config *cfg;
	char want[1024];

	td_enter();
	CU_ASSERT_FATAL(mkfifo("fifo", 0600) == 0);
	td_write("aloop.conf", "listeners = ( { name = \"a\"; protocol = "
	    "\"p\";\n  listen = [ \"*:1\" ];\n"
	    "  tls = { certificate = \"fifo\"; key = \"fifo\"; }; } );\n");
	snprintf(want, sizeof(want), "aloop.conf:3: listeners[0].tls."
	    "certificate \"fifo\": cannot read %s/fifo: not a regular file",
	    td_dir());
	CU_ASSERT_EQUAL(config_parse("aloop.conf", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS(want)));
	config_free(cfg);
	td_leave();
}

/* Copy @from over @to, in place (the same inode, maybe the same size). */
static void
copy_file(const char *from, const char *to)
{
	char buf[16384];
	size_t n;
	FILE *in = fopen(from, "r"), *out = fopen(to, "r+");

	CU_ASSERT_FATAL(in != NULL && out != NULL);
	n = fread(buf, 1, sizeof(buf), in);
	CU_ASSERT_FATAL(n > 0 && n < sizeof(buf));
	CU_ASSERT_FATAL(fwrite(buf, 1, n, out) == n);
	CU_ASSERT_FATAL(ftruncate(fileno(out), (off_t)n) == 0);
	fclose(in);
	fclose(out);
}

static const char shared_conf[] =
    "listeners = (\n"
    "  { name = \"a\"; protocol = \"p\"; listen = [ \"*:1\" ];\n"
    "    tls = { certificate = \"one/server.crt\";\n"
    "            key = \"one/server.key\"; }; },\n"
    "  { name = \"b\"; protocol = \"p\"; listen = [ \"*:2\" ];\n"
    "    tls = { key = \"one/server.key\";\n"
    "            certificate = \"one/server.crt\"; }; },\n"
    "  { name = \"c\"; protocol = \"p\"; listen = [ \"*:3\" ];\n"
    "    tls = { certificate = \"two/server.crt\";\n"
    "            key = \"two/server.key\"; }; },\n"
    "  { name = \"d\"; protocol = \"p\"; listen = [ \"*:4\" ];\n"
    "    tls = { certificate = \"one/server.crt\";\n"
    "            key = \"one/server.key\"; alpn = [ \"x\" ]; }; }\n"
    ");\n";

#define CTX(cfg, i)	((cfg)->listeners[i].tls->ctx)

/*
 * Listeners with the same TLS settings and files share one context;
 * another file or another setting is another context.  A parse keeps the
 * contexts of the last valid one whose files still hold what they held,
 * and builds those whose files changed, even in place.
 */
static void
test_tls_contexts_shared_and_kept(void)
{
	struct config *run, *cfg;

	td_enter();
	CU_ASSERT_FATAL(td_make_cert("one") == 0);
	CU_ASSERT_FATAL(td_make_cert("two") == 0);
	CU_ASSERT_FATAL(td_make_cert("three") == 0);
	td_write("aloop.conf", shared_conf);
	CU_ASSERT_EQUAL_FATAL(config_parse("aloop.conf", &run), 0);
	tls_cache_commit();
	CU_ASSERT_PTR_NOT_NULL_FATAL(CTX(run, 0));
	CU_ASSERT_PTR_EQUAL(CTX(run, 0), CTX(run, 1));
	CU_ASSERT_PTR_NOT_EQUAL(CTX(run, 0), CTX(run, 2));
	CU_ASSERT_PTR_NOT_EQUAL(CTX(run, 0), CTX(run, 3));
	CU_ASSERT_PTR_NOT_EQUAL(CTX(run, 2), CTX(run, 3));
	CU_ASSERT_EQUAL(run->tls.contexts, 3);
	CU_ASSERT_EQUAL(run->tls.built, 3);

	/* A reload of the same files builds nothing. */
	CU_ASSERT_EQUAL_FATAL(config_parse("aloop.conf", &cfg), 0);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_PTR_EQUAL(CTX(cfg, i), CTX(run, i));
	CU_ASSERT_EQUAL(cfg->tls.contexts, 3);
	CU_ASSERT_EQUAL(cfg->tls.built, 0);
	config_free(run);
	run = cfg;
	tls_cache_commit();

	/* The first pair rewritten in place: its three listeners' anew. */
	copy_file("three/server.crt", "one/server.crt");
	copy_file("three/server.key", "one/server.key");
	CU_ASSERT_EQUAL_FATAL(config_parse("aloop.conf", &cfg), 0);
	CU_ASSERT_PTR_NOT_EQUAL(CTX(cfg, 0), CTX(run, 0));
	CU_ASSERT_PTR_EQUAL(CTX(cfg, 0), CTX(cfg, 1));
	CU_ASSERT_PTR_NOT_EQUAL(CTX(cfg, 3), CTX(run, 3));
	CU_ASSERT_PTR_EQUAL(CTX(cfg, 2), CTX(run, 2));
	CU_ASSERT_EQUAL(cfg->tls.contexts, 3);
	CU_ASSERT_EQUAL(cfg->tls.built, 2);
	config_free(run);
	run = cfg;
	tls_cache_commit();

	/*
	 * A valid configuration that never runs (its plugin check or its
	 * workers refused it) takes nothing from the running one's.
	 */
	td_write("other.conf", "listeners = ( { name = \"z\"; protocol = "
	    "\"p\"; listen = [ \"*:9\" ];\n  tls = { certificate = "
	    "\"three/server.crt\"; key = \"three/server.key\"; }; } );\n");
	CU_ASSERT_EQUAL_FATAL(config_parse("other.conf", &cfg), 0);
	config_free(cfg);

	/* A broken file fails the parse where it is named ... */
	copy_file("two/server.key", "one/server.crt");
	CU_ASSERT_EQUAL_FATAL(config_parse("aloop.conf", &cfg),
	    ALOOP_ECONFIG);
	CU_ASSERT(cfg->nerrors >= 1 && strncmp(cfg->errors[0],
	    "aloop.conf:3: listeners[0].tls.certificate", 42) == 0);
	CU_ASSERT_PTR_NULL(CTX(cfg, 0));
	config_free(cfg);
	/* ... and the running configuration's contexts are still there. */
	copy_file("three/server.crt", "one/server.crt");
	CU_ASSERT_EQUAL_FATAL(config_parse("aloop.conf", &cfg), 0);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_PTR_EQUAL(CTX(cfg, i), CTX(run, i));
	CU_ASSERT_EQUAL(cfg->tls.built, 0);
	config_free(cfg);
	config_free(run);
	tls_cache_clear();
	td_leave();
}

static const struct test_case cases[] = {
	TEST(test_good_config_fills_structs),
	TEST(test_daemon_defaults),
	TEST(test_workers),
	TEST(test_bad_port),
	TEST(test_bad_addresses),
	TEST(test_unknown_settings),
	TEST(test_duplicate_names_and_addresses),
	TEST(test_duplicates_among_many),
	TEST(test_bad_types),
	TEST(test_peer_bounds),
	TEST(test_access_rules),
	TEST(test_missing_settings),
	TEST(test_listener_combinations),
	TEST(test_unknown_users),
	TEST(test_syntax_error_and_missing_file),
	TEST(test_tls),
	TEST(test_tls_errors),
	TEST(test_tls_library_refuses),
	TEST(test_all_errors_collected),
	TEST(test_include_beside),
	TEST(test_include_checked),
	TEST(test_include_unreadable),
	TEST(test_include_cycles_and_depth),
	TEST(test_include_lines),
	TEST(test_tls_file_not_regular),
	TEST(test_tls_contexts_shared_and_kept),
};

TEST_MAIN("config", cases)
