/*
 * The shipped plugins, loaded through the plugin loader as aloopd loads
 * them and driven by a real loop on loopback: each protocol over TCP and
 * UDP, and chargen's flow control (a client that stops reading stops the
 * generator, so the server's buffer stays bounded).
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "plugin_loader.h"
#include "runner.h"
#include "stream_util.h"

/* A loaded plugin with one instance on the test's loop. */
struct fixture {
	struct aloop_loop		*loop;
	struct plugin			*p;
	const struct aloop_plugin	*d;
	void				*inst;
	int				 fds;
};

static void
setup(struct fixture *f, const char *name, int type)
{
	const char *build = getenv("top_builddir");
	struct aloop_plugin_env env;
	char file[PATH_MAX], err[1024];

	f->fds = count_fds();
	snprintf(file, sizeof(file), "%s/plugins/.libs/%s.so",
	    build != NULL ? build : ABS_TOP_BUILDDIR, name);
	if (plugin_open(file, &f->p, err, sizeof(err)) != 0)
		fprintf(stderr, "\n%s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->p);
	f->d = plugin_descriptor(f->p);
	CU_ASSERT_STRING_EQUAL(f->d->name, name);
	f->loop = test_loop();
	memset(&env, 0, sizeof(env));
	env.size = sizeof(env);
	env.loop = f->loop;
	env.listener = name;
	env.type = type;
	env.workers = 1;
	/* No settings: every shipped plugin has defaults for all of them. */
	CU_ASSERT_EQUAL_FATAL(plugin_instance_new(f->p, &env, NULL, &f->inst),
	    0);
}

static void
teardown(struct fixture *f)
{
	test_loop_done(f->loop);
	plugin_instance_free(f->p, f->inst);
	plugin_release(f->p);
	CU_ASSERT_EQUAL(count_fds(), f->fds);
}

/*
 * The plugin's stream protocol, seen through a wrapper that remembers the
 * server side's transport, so that a test can look at its write buffer.
 */
static const struct aloop_protocol *wrapped;
static struct aloop_transport *server_t;

static void
w_made(struct aloop_transport *t, void *state)
{
	server_t = t;
	if (wrapped->connection_made != NULL)
		wrapped->connection_made(t, state);
}

static void
w_data(struct aloop_transport *t, void *state, const void *data, size_t len)
{
	if (wrapped->data_received != NULL)
		wrapped->data_received(t, state, data, len);
}

static int
w_eof(struct aloop_transport *t, void *state)
{
	return wrapped->eof_received != NULL ?
	    wrapped->eof_received(t, state) : 0;
}

static void
w_lost(struct aloop_transport *t, void *state, const struct aloop_error *e)
{
	server_t = NULL;
	if (wrapped->connection_lost != NULL)
		wrapped->connection_lost(t, state, e);
}

static void
w_pause(struct aloop_transport *t, void *state)
{
	if (wrapped->pause_writing != NULL)
		wrapped->pause_writing(t, state);
}

static void
w_resume(struct aloop_transport *t, void *state)
{
	if (wrapped->resume_writing != NULL)
		wrapped->resume_writing(t, state);
}

static const struct aloop_protocol wrapper = {
	.connection_made = w_made,
	.data_received = w_data,
	.eof_received = w_eof,
	.connection_lost = w_lost,
	.pause_writing = w_pause,
	.resume_writing = w_resume,
};

/* Serve the plugin's stream protocol on 127.0.0.1; the port. */
static struct aloop_server *
serve(struct fixture *f, int *port)
{
	struct aloop_server *srv = NULL;
	struct aloop_future *fut = NULL;
	const int *socks;
	size_t n;

	wrapped = f->d->stream;
	CU_ASSERT_PTR_NOT_NULL_FATAL(wrapped);
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(f->loop, &wrapper,
	    f->d->stream_factory, f->inst, "127.0.0.1", "0", NULL, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(f->loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	socks = aloop_server_sockets(srv, &n);
	CU_ASSERT_FATAL(n == 1);
	*port = sock_port(socks[0]);
	return srv;
}

static void
unserve(struct fixture *f, struct aloop_server *srv)
{
	aloop_server_close(srv);
	aloop_server_close_clients(srv);
	CU_ASSERT(WAIT_UNTIL(f->loop, aloop_server_connection_count(srv) == 0,
	    5.0));
	aloop_server_release(srv);
}

/* The plugin's datagram endpoint on 127.0.0.1; its port. */
static struct aloop_transport *
endpoint(struct fixture *f, int *port)
{
	struct aloop_datagram_options o;
	struct aloop_transport *t = NULL;
	struct aloop_future *fut = NULL;
	const int *fd;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f->d->datagram);
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(aloop_create_datagram_endpoint(f->loop,
	    f->d->datagram, f->d->datagram_factory, f->inst, &o, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(f->loop, fut, (void **)&t), 0);
	aloop_future_release(fut);
	fd = aloop_transport_get_extra_info(t, "socket", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fd);
	*port = sock_port(*fd);
	return t;
}

static void
unendpoint(struct fixture *f, struct aloop_transport *t)
{
	aloop_transport_close(t);
	run_for(f->loop, 0.01);
}

/*
 * Send @msg from a plain UDP socket to @port and wait (bounded by @secs,
 * running the loop) for one reply into @buf; its length, or -1 if none.
 */
static ssize_t
udp_ask(struct fixture *f, int port, const char *msg, char *buf, size_t size,
    double secs)
{
	struct sockaddr_in sin;
	ssize_t n = -1;
	int s;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(s >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(sendto(s, msg, strlen(msg), 0,
	    (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)strlen(msg));
	/* Not WAIT_UNTIL: it evaluates its condition once more at the end. */
	for (double end = now_mono() + secs; now_mono() < end;) {
		run_for(f->loop, 0.002);
		if ((n = recv(s, buf, size, MSG_DONTWAIT)) >= 0)
			break;
	}
	close(s);
	return n;
}

static void
test_echo(void)
{
	struct fixture f;
	struct rec_pool cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *ct, *ep;
	char buf[600];
	int port;

	setup(&f, "echo", ALOOP_PLUGIN_STREAM);
	srv = serve(&f, &port);
	ct = connect_to(f.loop, &cp, "127.0.0.1", port);
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "hello, echo", 11), 0);
	CU_ASSERT(WAIT_UNTIL(f.loop, cp.r[0].nrecv == 11, 5.0));
	CU_ASSERT_EQUAL(memcmp(cp.r[0].data, "hello, echo", 11), 0);
	/* A half-close is answered by a close once everything is back. */
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "!", 1), 0);
	CU_ASSERT_EQUAL(aloop_transport_write_eof(ct), 0);
	CU_ASSERT(WAIT_UNTIL(f.loop, cp.r[0].lost, 5.0));
	CU_ASSERT_EQUAL(cp.r[0].nrecv, 12);
	CU_ASSERT_EQUAL(cp.r[0].bad, 0);
	unserve(&f, srv);

	ep = endpoint(&f, &port);
	CU_ASSERT_EQUAL(udp_ask(&f, port, "ping", buf, sizeof(buf), 5.0), 4);
	CU_ASSERT_EQUAL(memcmp(buf, "ping", 4), 0);
	unendpoint(&f, ep);
	teardown(&f);
}

static void
test_discard(void)
{
	struct fixture f;
	struct rec_pool cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *ct, *ep;
	char buf[600];
	int port;

	setup(&f, "discard", ALOOP_PLUGIN_STREAM);
	srv = serve(&f, &port);
	ct = connect_to(f.loop, &cp, "127.0.0.1", port);
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "into the void", 13), 0);
	CU_ASSERT(WAIT_UNTIL(f.loop, aloop_server_connection_count(srv) == 1,
	    5.0));
	run_for(f.loop, 0.1);
	CU_ASSERT_EQUAL(cp.r[0].nrecv, 0);
	CU_ASSERT_EQUAL(cp.r[0].lost, 0);
	aloop_transport_close(ct);
	CU_ASSERT(WAIT_UNTIL(f.loop, cp.r[0].lost, 5.0));
	unserve(&f, srv);

	ep = endpoint(&f, &port);
	CU_ASSERT_EQUAL(udp_ask(&f, port, "void", buf, sizeof(buf), 0.2), -1);
	unendpoint(&f, ep);
	teardown(&f);
}

/* RFC 864's pattern: line i is 72 characters from ' ' + i on, CR LF. */
static int
chargen_line_ok(const unsigned char *p, unsigned i)
{
	for (unsigned k = 0; k < 72; k++)
		if (p[k] != ' ' + (i + k) % 95)
			return 0;
	return p[72] == '\r' && p[73] == '\n';
}

static void
test_chargen(void)
{
	struct fixture f;
	struct rec_pool cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *ct, *ep;
	size_t size, before;
	char buf[600];
	ssize_t n;
	int port;

	setup(&f, "chargen", ALOOP_PLUGIN_STREAM);
	srv = serve(&f, &port);
	ct = connect_to(f.loop, &cp, "127.0.0.1", port);
	CU_ASSERT(WAIT_UNTIL(f.loop, cp.r[0].nrecv >= sizeof(cp.r[0].data),
	    5.0));
	for (unsigned i = 0; i < sizeof(cp.r[0].data) / 74; i++)
		CU_ASSERT(chargen_line_ok(cp.r[0].data + i * 74, i));

	/*
	 * A client that stops reading: the kernel's buffers fill, the
	 * server's transport pauses chargen, and its buffer stops growing at
	 * the high-water mark plus at most one block.
	 */
	aloop_transport_pause_reading(ct);
	run_for(f.loop, 0.5);
	CU_ASSERT_PTR_NOT_NULL_FATAL(server_t);
	size = aloop_transport_get_write_buffer_size(server_t);
	CU_ASSERT(size > 0);
	CU_ASSERT(size <= 64 * 1024 + 16384 + 74);
	before = cp.r[0].nrecv;
	run_for(f.loop, 0.2);
	CU_ASSERT_EQUAL(aloop_transport_get_write_buffer_size(server_t), size);
	CU_ASSERT_EQUAL(cp.r[0].nrecv, before);
	/* Reading again resumes the stream. */
	aloop_transport_resume_reading(ct);
	CU_ASSERT(WAIT_UNTIL(f.loop, cp.r[0].nrecv > before + 1024 * 1024,
	    10.0));
	aloop_transport_close(ct);
	CU_ASSERT(WAIT_UNTIL(f.loop, cp.r[0].lost && server_t == NULL, 5.0));
	unserve(&f, srv);

	ep = endpoint(&f, &port);
	n = udp_ask(&f, port, "x", buf, sizeof(buf), 5.0);
	CU_ASSERT(n >= 0 && n <= 512);
	for (ssize_t i = 0; i < n; i++)
		CU_ASSERT(buf[i] >= ' ' && buf[i] <= '~');
	unendpoint(&f, ep);
	teardown(&f);
}

static void
test_daytime(void)
{
	struct fixture f;
	struct rec_pool cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *ep;
	char buf[600], year[16];
	time_t now = time(NULL);
	struct tm tm;
	ssize_t n;
	int port;

	localtime_r(&now, &tm);
	snprintf(year, sizeof(year), "%d", tm.tm_year + 1900);
	setup(&f, "daytime", ALOOP_PLUGIN_STREAM);
	srv = serve(&f, &port);
	(void)connect_to(f.loop, &cp, "127.0.0.1", port);
	/* One line, then the server closes. */
	CU_ASSERT(WAIT_UNTIL(f.loop, cp.r[0].lost, 5.0));
	CU_ASSERT_FATAL(cp.r[0].nrecv > 2 && cp.r[0].nrecv < 256);
	CU_ASSERT_EQUAL(memcmp(cp.r[0].data + cp.r[0].nrecv - 2, "\r\n", 2), 0);
	cp.r[0].data[cp.r[0].nrecv] = '\0';
	CU_ASSERT_PTR_NOT_NULL(strstr((char *)cp.r[0].data, year));
	unserve(&f, srv);

	ep = endpoint(&f, &port);
	n = udp_ask(&f, port, "", buf, sizeof(buf) - 1, 5.0);
	CU_ASSERT_FATAL(n > 2);
	CU_ASSERT_EQUAL(memcmp(buf + n - 2, "\r\n", 2), 0);
	buf[n] = '\0';
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, year));
	unendpoint(&f, ep);
	teardown(&f);
}

/* RFC 868's value: seconds since 1900, 32 bits, big-endian. */
static int
time_close_to_now(const unsigned char *p)
{
	uint32_t got = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
	uint32_t want = (uint32_t)((uint64_t)time(NULL) + 2208988800u);

	return (uint32_t)(want - got) <= 5;
}

static void
test_time(void)
{
	struct fixture f;
	struct rec_pool cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *ep;
	char buf[600];
	int port;

	setup(&f, "time", ALOOP_PLUGIN_STREAM);
	srv = serve(&f, &port);
	(void)connect_to(f.loop, &cp, "127.0.0.1", port);
	CU_ASSERT(WAIT_UNTIL(f.loop, cp.r[0].lost, 5.0));
	CU_ASSERT_EQUAL_FATAL(cp.r[0].nrecv, 4);
	CU_ASSERT(time_close_to_now(cp.r[0].data));
	unserve(&f, srv);

	ep = endpoint(&f, &port);
	CU_ASSERT_EQUAL_FATAL(udp_ask(&f, port, "", buf, sizeof(buf), 5.0), 4);
	CU_ASSERT(time_close_to_now((unsigned char *)buf));
	unendpoint(&f, ep);
	teardown(&f);
}

static const struct test_case cases[] = {
	TEST(test_echo),
	TEST(test_discard),
	TEST(test_chargen),
	TEST(test_daytime),
	TEST(test_time),
};

TEST_MAIN("plugins", cases)
