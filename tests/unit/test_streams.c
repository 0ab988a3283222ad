/*
 * Streams: the reader's reads by size, line and separator, its limit and
 * EOF, after CPython's test_streams.py; then servers and connections over
 * TCP, UNIX and TLS, drain under flow control, wait_closed, and a loop
 * closed on suspended stream tasks.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "loop-test.h"
#include "tls_certs.h"

static int
run_task(struct loop_fixture *f, aloop_task_fn fn, void *arg)
{
	struct aloop_future *fut;
	int rc;

	CU_ASSERT_FATAL(aloop_create_task(f->loop, fn, arg, NULL, &fut) == 0);
	rc = aloop_run_until_complete(f->loop, fut, NULL);
	aloop_future_release(fut);
	return rc;
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Whether @b holds exactly the text @s; frees @b. */
static int
bytes_is(struct aloop_bytes *b, const char *s)
{
	int ok = b != NULL && b->len == strlen(s) &&
	    memcmp(b->data, s, b->len) == 0;

	free(b);
	return ok;
}

static void
feed(struct aloop_stream_reader *r, const char *s)
{
	CU_ASSERT_EQUAL(aloop_stream_reader_feed_data(r, s, strlen(s)), 0);
}

/* ---------------------------------------------------- reader by hand */

struct rctx {
	struct aloop_loop		*loop;
	struct aloop_stream_reader	*r;
};

static struct aloop_stream_reader *
reader(struct loop_fixture *f, size_t limit)
{
	struct aloop_stream_reader *r = NULL;

	CU_ASSERT_FATAL(aloop_stream_reader_new(f->loop, limit, &r) == 0);
	return r;
}

static void
feed_later_cb(void *arg)
{
	struct rctx *c = arg;

	feed(c->r, "chunk2\nrest");
	aloop_stream_reader_feed_eof(c->r);
}

static int
readline_task(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;

	(void)result;
	feed(c->r, "line1\nchu");
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), 0);
	CU_ASSERT(bytes_is(b, "line1\n"));
	/* Waits for the rest of the line. */
	CU_ASSERT(aloop_call_later(c->loop, 0.005, feed_later_cb, c,
	    NULL) == 0);
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), 0);
	CU_ASSERT(bytes_is(b, "chuchunk2\n"));
	CU_ASSERT_FALSE(aloop_stream_reader_at_eof(c->r));
	/* The partial last line at EOF, then empty lines. */
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), 0);
	CU_ASSERT(bytes_is(b, "rest"));
	CU_ASSERT(aloop_stream_reader_at_eof(c->r));
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	return 0;
}

static void
test_readline(void)
{
	struct loop_fixture f;
	struct rctx c;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(run_task(&f, readline_task, &c), 0);
	aloop_stream_reader_release(c.r);
	loop_fixture_teardown(&f);
}

static int
view_and_text_task(void *arg, void **result)
{
	struct rctx *c = arg;
	const void *p;
	size_t len;

	(void)result;
	CU_ASSERT_EQUAL(aloop_stream_read_view(c->r, 4, NULL, &len),
	    ALOOP_EINVAL);
	feed(c->r, "0123456789");
	/* Up to n, consumed, the buffer's own bytes. */
	CU_ASSERT_EQUAL(aloop_stream_read_view(c->r, 4, &p, &len), 0);
	CU_ASSERT(len == 4 && memcmp(p, "0123", 4) == 0);
	CU_ASSERT_EQUAL(aloop_stream_reader_buffered(c->r), 6);
	CU_ASSERT_EQUAL(aloop_stream_read_view(c->r, 100, &p, &len), 0);
	CU_ASSERT(len == 6 && memcmp(p, "456789", 6) == 0);
	/* Bytes fed from inside the reader's own buffer are copied right. */
	feed(c->r, "abcdef");
	CU_ASSERT_EQUAL(aloop_stream_read_view(c->r, 3, &p, &len), 0);
	CU_ASSERT_EQUAL(aloop_stream_reader_feed_data(c->r, p, len), 0);
	CU_ASSERT_EQUAL(aloop_stream_read_view(c->r, 100, &p, &len), 0);
	CU_ASSERT(len == 6 && memcmp(p, "defabc", 6) == 0);
	/* Waits for data like read(). */
	CU_ASSERT(aloop_call_later(c->loop, 0.005, feed_later_cb, c,
	    NULL) == 0);
	CU_ASSERT_EQUAL(aloop_stream_read_view(c->r, 100, &p, &len), 0);
	CU_ASSERT(len == 11 && memcmp(p, "chunk2\nrest", 11) == 0);
	CU_ASSERT(aloop_stream_reader_at_eof(c->r));
	CU_ASSERT_EQUAL(aloop_stream_read_view(c->r, 100, &p, &len), 0);
	CU_ASSERT_EQUAL(len, 0);
	return 0;
}

static int
text_task(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;

	(void)result;
	feed(c->r, "one\r\ntwo\n\r\n\nlong line\nlast");
	aloop_stream_reader_feed_eof(c->r);
	CU_ASSERT_EQUAL(aloop_stream_readline_text(c->r, &b), 0);
	CU_ASSERT(bytes_is(b, "one"));
	CU_ASSERT_EQUAL(aloop_stream_readline_text(c->r, &b), 0);
	CU_ASSERT_FATAL(b != NULL);
	CU_ASSERT(b->data[b->len] == '\0' && strcmp((char *)b->data,
	    "two") == 0);
	free(b);
	CU_ASSERT_EQUAL(aloop_stream_readline_text(c->r, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	CU_ASSERT_EQUAL(aloop_stream_readline_text(c->r, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	/* Over the limit: dropped, as readline drops it. */
	aloop_stream_reader_set_limit(c->r, 5);
	CU_ASSERT_EQUAL(aloop_stream_readline_text(c->r, &b), ALOOP_ELIMIT);
	CU_ASSERT_PTR_NULL(b);
	aloop_stream_reader_set_limit(c->r, 0);
	/* EOF: the partial last line goes along with the error. */
	CU_ASSERT_EQUAL(aloop_stream_readline_text(c->r, &b),
	    ALOOP_EINCOMPLETE);
	CU_ASSERT(bytes_is(b, "last"));
	CU_ASSERT_EQUAL(aloop_stream_readline_text(c->r, &b),
	    ALOOP_EINCOMPLETE);
	CU_ASSERT(bytes_is(b, ""));
	return 0;
}

static void
test_read_view_and_text(void)
{
	struct loop_fixture f;
	struct rctx c;
	struct aloop_bytes *b;
	const void *p;
	size_t len;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(run_task(&f, view_and_text_task, &c), 0);
	aloop_stream_reader_release(c.r);
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(run_task(&f, text_task, &c), 0);
	aloop_stream_reader_release(c.r);
	/* Outside a task. */
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(aloop_stream_read_view(c.r, 1, &p, &len), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_stream_readline_text(c.r, &b), ALOOP_ESTATE);
	aloop_stream_reader_release(c.r);
	loop_fixture_teardown(&f);
}

static int
readline_limit_task(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;

	(void)result;
	/* test_readline_limit_with_existing_data: limit 3. */
	feed(c->r, "li");
	feed(c->r, "ne1\nline2\n");
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), ALOOP_ELIMIT);
	CU_ASSERT_PTR_NULL(b);
	/* The long line went, up to its newline; the rest stays. */
	CU_ASSERT_EQUAL(aloop_stream_reader_buffered(c->r), 6);
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), ALOOP_ELIMIT);
	CU_ASSERT_EQUAL(aloop_stream_reader_buffered(c->r), 0);
	/* No separator within the limit: everything buffered goes. */
	feed(c->r, "1234567890");
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), ALOOP_ELIMIT);
	CU_ASSERT_EQUAL(aloop_stream_reader_buffered(c->r), 0);
	/* A line that fits (its newline may pass the limit). */
	feed(c->r, "ab\n");
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), 0);
	CU_ASSERT(bytes_is(b, "ab\n"));
	return 0;
}

static void
test_readline_limit(void)
{
	struct loop_fixture f;
	struct rctx c;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	c.r = reader(&f, 3);
	CU_ASSERT_EQUAL(run_task(&f, readline_limit_task, &c), 0);
	aloop_stream_reader_release(c.r);
	loop_fixture_teardown(&f);
}

static int
readexactly_task(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;

	(void)result;
	feed(c->r, "chunk1");
	CU_ASSERT(aloop_call_later(c->loop, 0.005, feed_later_cb, c,
	    NULL) == 0);
	/* Spans both chunks. */
	CU_ASSERT_EQUAL(aloop_stream_readexactly(c->r, 9, &b), 0);
	CU_ASSERT(bytes_is(b, "chunk1chu"));
	CU_ASSERT_EQUAL(aloop_stream_readexactly(c->r, 0, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	/* An early EOF: the partial data comes with the error. */
	CU_ASSERT_EQUAL(aloop_stream_readexactly(c->r, 100, &b),
	    ALOOP_EINCOMPLETE);
	CU_ASSERT(bytes_is(b, "nk2\nrest"));
	CU_ASSERT(aloop_stream_reader_at_eof(c->r));
	return 0;
}

static void
test_readexactly_eof(void)
{
	struct loop_fixture f;
	struct rctx c;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(run_task(&f, readexactly_task, &c), 0);
	aloop_stream_reader_release(c.r);
	loop_fixture_teardown(&f);
}

static int
readuntil_task(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;
	struct iovec seps[2] = {
		{ (void *)(uintptr_t)"AAA", 3 }, { (void *)(uintptr_t)"BB", 2 }
	};

	(void)result;
	feed(c->r, "lineAA");
	feed(c->r, "Amore");
	CU_ASSERT_EQUAL(aloop_stream_readuntil(c->r, "AAA", 3, &b), 0);
	CU_ASSERT(bytes_is(b, "lineAAA"));
	/* Several separators: whichever match ends first. */
	feed(c->r, "BBxAAA");
	CU_ASSERT_EQUAL(aloop_stream_readuntil_any(c->r, seps, 2, &b), 0);
	CU_ASSERT(bytes_is(b, "moreBB"));
	CU_ASSERT_EQUAL(aloop_stream_readuntil_any(c->r, seps, 2, &b), 0);
	CU_ASSERT(bytes_is(b, "xAAA"));
	/* A match split over two chunks is found. */
	feed(c->r, "yA");
	feed(c->r, "B");
	feed(c->r, "B");
	CU_ASSERT_EQUAL(aloop_stream_readuntil_any(c->r, seps, 2, &b), 0);
	CU_ASSERT(bytes_is(b, "yABB"));
	/* Bad separators. */
	CU_ASSERT_EQUAL(aloop_stream_readuntil(c->r, "", 0, &b),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_stream_readuntil_any(c->r, seps, 0, &b),
	    ALOOP_EINVAL);
	/* EOF without the separator. */
	feed(c->r, "some dataAA");
	aloop_stream_reader_feed_eof(c->r);
	CU_ASSERT_EQUAL(aloop_stream_readuntil(c->r, "AAA", 3, &b),
	    ALOOP_EINCOMPLETE);
	CU_ASSERT(bytes_is(b, "some dataAA"));
	CU_ASSERT(aloop_stream_reader_at_eof(c->r));
	return 0;
}

static void
test_readuntil(void)
{
	struct loop_fixture f;
	struct rctx c;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(run_task(&f, readuntil_task, &c), 0);
	aloop_stream_reader_release(c.r);
	loop_fixture_teardown(&f);
}

static int
readuntil_limit_task(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;

	(void)result;
	/* test_readuntil_limit_found_sep: limit 3. */
	feed(c->r, "some dataAA");
	CU_ASSERT_EQUAL(aloop_stream_readuntil(c->r, "AAA", 3, &b),
	    ALOOP_ELIMIT);
	CU_ASSERT_EQUAL(aloop_stream_reader_buffered(c->r), 11);
	feed(c->r, "A");
	CU_ASSERT_EQUAL(aloop_stream_readuntil(c->r, "AAA", 3, &b),
	    ALOOP_ELIMIT);
	/* The data stays, unlike readline's. */
	CU_ASSERT_EQUAL(aloop_stream_reader_buffered(c->r), 12);
	return 0;
}

static void
test_readuntil_limit(void)
{
	struct loop_fixture f;
	struct rctx c;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	c.r = reader(&f, 3);
	CU_ASSERT_EQUAL(run_task(&f, readuntil_limit_task, &c), 0);
	aloop_stream_reader_release(c.r);
	loop_fixture_teardown(&f);
}

static void
exception_cb(void *arg)
{
	aloop_stream_reader_set_exception(arg, -ECONNRESET);
}

static int
read_task(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;
	char buf[4];
	size_t got;

	(void)result;
	CU_ASSERT_FALSE(aloop_stream_reader_at_eof(c->r));
	feed(c->r, "0123456789");
	CU_ASSERT_EQUAL(aloop_stream_read(c->r, 4, &b), 0);
	CU_ASSERT(bytes_is(b, "0123"));
	CU_ASSERT_EQUAL(aloop_stream_readinto(c->r, buf, sizeof(buf), &got), 0);
	CU_ASSERT(got == 4 && memcmp(buf, "4567", 4) == 0);
	CU_ASSERT_EQUAL(aloop_stream_read(c->r, 0, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	feed(c->r, "ab");
	aloop_stream_reader_feed_eof(c->r);
	CU_ASSERT_FALSE(aloop_stream_reader_at_eof(c->r));
	CU_ASSERT_EQUAL(aloop_stream_reader_feed_data(c->r, "x", 1),
	    ALOOP_ESTATE);
	/* Up to EOF. */
	CU_ASSERT_EQUAL(aloop_stream_read(c->r, -1, &b), 0);
	CU_ASSERT(bytes_is(b, "89ab"));
	CU_ASSERT(aloop_stream_reader_at_eof(c->r));
	CU_ASSERT_EQUAL(aloop_stream_read(c->r, 10, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	return 0;
}

static int
read_exception_task(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;

	(void)result;
	CU_ASSERT(aloop_call_later(c->loop, 0.005, exception_cb, c->r,
	    NULL) == 0);
	/* The error wakes the waiting read. */
	CU_ASSERT_EQUAL(aloop_stream_read(c->r, 10, &b), -ECONNRESET);
	CU_ASSERT_EQUAL(aloop_stream_reader_exception(c->r), -ECONNRESET);
	CU_ASSERT_EQUAL(aloop_stream_readline(c->r, &b), -ECONNRESET);
	return 0;
}

static void
test_read_and_at_eof(void)
{
	struct loop_fixture f;
	struct rctx c;
	struct aloop_bytes *b;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(run_task(&f, read_task, &c), 0);
	aloop_stream_reader_release(c.r);
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(run_task(&f, read_exception_task, &c), 0);
	/* Reads are task only. */
	CU_ASSERT_EQUAL(aloop_stream_read(c.r, 1, &b), ALOOP_ESTATE);
	aloop_stream_reader_release(c.r);
	loop_fixture_teardown(&f);
}

/* Two tasks may not wait on one reader at once. */
static int
second_reader(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_bytes *b;

	(void)result;
	CU_ASSERT_EQUAL(aloop_stream_read(c->r, 1, &b), ALOOP_ESTATE);
	feed(c->r, "z");
	return 0;
}

static int
first_reader(void *arg, void **result)
{
	struct rctx *c = arg;
	struct aloop_future *t;
	struct aloop_bytes *b;

	(void)result;
	CU_ASSERT_FATAL(aloop_create_task(c->loop, second_reader, c, NULL,
	    &t) == 0);
	aloop_future_release(t);
	CU_ASSERT_EQUAL(aloop_stream_read(c->r, 1, &b), 0);
	CU_ASSERT(bytes_is(b, "z"));
	return 0;
}

static void
test_one_waiter(void)
{
	struct loop_fixture f;
	struct rctx c;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	c.r = reader(&f, 0);
	CU_ASSERT_EQUAL(run_task(&f, first_reader, &c), 0);
	aloop_stream_reader_release(c.r);
	loop_fixture_teardown(&f);
}

/* ------------------------------------------------------------ network */

static struct tls_certs certs;
static int certs_ok;

struct net {
	struct aloop_loop		*loop;
	struct aloop_server		*srv;
	char				 port[16];
	char				 path[108];
	struct aloop_tls_context	*client_ssl;
	int				 served;
	int				 server_cleanup;
	struct aloop_future		*go;	/* the slow reader starts */
	uint64_t			 total;
	int				 peer_ok;
};

/* Everything back, through read_view, until EOF. */
static void
bulk_echo(struct aloop_stream_reader *r, struct aloop_stream_writer *w)
{
	const void *data;
	size_t len;

	while (aloop_stream_read_view(r, 65536, &data, &len) == 0 &&
	    len > 0)
		if (aloop_stream_write(w, data, len) != 0 ||
		    aloop_stream_drain(w) != 0)
			break;
}

/* A line echo: each line back, "quit" ends it; "bulk" starts bulk_echo. */
static int
echo_client(struct aloop_stream_reader *r, struct aloop_stream_writer *w,
    void *arg)
{
	struct net *n = arg;
	struct aloop_bytes *line;
	int rc;

	n->served++;
	n->peer_ok = aloop_stream_get_extra_info(w, "peername", NULL) != NULL;
	for (;;) {
		/* EOF is ALOOP_EINCOMPLETE with what followed the last line. */
		if ((rc = aloop_stream_readline_text(r, &line)) != 0) {
			free(line);
			break;
		}
		if (strcmp((char *)line->data, "quit") == 0) {
			free(line);
			break;
		}
		if (strcmp((char *)line->data, "bulk") == 0) {
			free(line);
			bulk_echo(r, w);
			break;
		}
		/* "big": more than printf's stack buffer holds. */
		if (strcmp((char *)line->data, "big") == 0)
			rc = aloop_stream_printf(w, "%0300d\n", 7);
		else
			rc = aloop_stream_printf(w, "%s\n", line->data);
		free(line);
		if (rc != 0 || (rc = aloop_stream_drain(w)) != 0)
			break;
	}
	n->server_cleanup++;
	return 0;
}

static void
start(struct loop_fixture *f, struct net *n, int unix_socket, int tls)
{
	struct aloop_server_options o;
	struct aloop_tls_context *ctx = NULL;
	struct aloop_future *fut;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	const int *fds;
	size_t nfds;

	memset(n, 0, sizeof(*n));
	n->loop = f->loop;
	aloop_server_options_init(&o);
	if (tls) {
		if (!certs_ok)
			certs_ok = tls_certs_make(&certs) == 0;
		CU_ASSERT_FATAL(certs_ok);
		CU_ASSERT_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER,
		    &ctx) == 0);
		CU_ASSERT_FATAL(aloop_tls_context_load_cert_chain(ctx,
		    certs.server_cert, certs.server_key) == 0);
		o.ssl = ctx;
		CU_ASSERT_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT,
		    &n->client_ssl) == 0);
		CU_ASSERT_FATAL(aloop_tls_context_load_verify_locations(
		    n->client_ssl, certs.ca, NULL) == 0);
	}
	if (unix_socket) {
		snprintf(n->path, sizeof(n->path), "/tmp/aloop-streams-%d.sock",
		    (int)getpid());
		(void)unlink(n->path);
		CU_ASSERT_FATAL(aloop_start_unix_server(f->loop, echo_client,
		    n, n->path, &o, NULL, &fut) == 0);
	} else
		CU_ASSERT_FATAL(aloop_start_server(f->loop, echo_client, n,
		    "127.0.0.1", "0", &o, NULL, &fut) == 0);
	aloop_tls_context_release(ctx);
	CU_ASSERT_FATAL(aloop_run_until_complete(f->loop, fut,
	    (void **)&n->srv) == 0);
	aloop_future_release(fut);
	if (!unix_socket) {
		fds = aloop_server_sockets(n->srv, &nfds);
		CU_ASSERT_FATAL(nfds >= 1);
		CU_ASSERT_FATAL(getsockname(fds[0], (struct sockaddr *)&sin,
		    &len) == 0);
		snprintf(n->port, sizeof(n->port), "%d", ntohs(sin.sin_port));
	}
}

static void
stop(struct loop_fixture *f, struct net *n)
{
	struct aloop_future *fut;

	aloop_server_close(n->srv);
	CU_ASSERT_FATAL(aloop_server_wait_closed(n->srv, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f->loop, fut, NULL), 0);
	aloop_future_release(fut);
	aloop_server_release(n->srv);
	aloop_tls_context_release(n->client_ssl);
}

static int
connect_streams(struct net *n, struct aloop_stream_reader **r,
    struct aloop_stream_writer **w)
{
	struct aloop_connection_options o;

	aloop_connection_options_init(&o);
	o.ssl = n->client_ssl;
	if (n->path[0] != '\0') {
		if (n->client_ssl != NULL)
			o.server_hostname = "localhost";
		return aloop_open_unix_connection(n->loop, n->path, &o, NULL,
		    r, w);
	}
	return aloop_open_connection(n->loop, "127.0.0.1", n->port, &o, NULL,
	    r, w);
}

static int
echo_session(void *arg, void **result)
{
	struct net *n = arg;
	struct aloop_stream_reader *r;
	struct aloop_stream_writer *w;
	struct aloop_bytes *b;
	struct iovec iov[2] = {
		{ (void *)(uintptr_t)"two ", 4 },
		{ (void *)(uintptr_t)"lines\n", 6 }
	};
	int rc;

	(void)result;
	if ((rc = connect_streams(n, &r, &w)) != 0)
		return rc;
	CU_ASSERT_EQUAL(aloop_stream_write(w, "hello\n", 6), 0);
	CU_ASSERT_EQUAL(aloop_stream_drain(w), 0);
	CU_ASSERT_EQUAL(aloop_stream_readline(r, &b), 0);
	CU_ASSERT(bytes_is(b, "hello\n"));
	CU_ASSERT_EQUAL(aloop_stream_writelines(w, iov, 2), 0);
	CU_ASSERT_EQUAL(aloop_stream_readexactly(r, 10, &b), 0);
	CU_ASSERT(bytes_is(b, "two lines\n"));
	/* A CR LF line comes back as LF; a long printf whole. */
	CU_ASSERT_EQUAL(aloop_stream_write(w, "crlf\r\nbig\n", 10), 0);
	CU_ASSERT_EQUAL(aloop_stream_readline(r, &b), 0);
	CU_ASSERT(bytes_is(b, "crlf\n"));
	CU_ASSERT_EQUAL(aloop_stream_readline(r, &b), 0);
	CU_ASSERT_FATAL(b != NULL);
	CU_ASSERT(b->len == 301 && b->data[0] == '0' &&
	    memcmp(b->data + 298, "07\n", 3) == 0);
	free(b);
	CU_ASSERT_EQUAL(aloop_stream_write(w, "quit\n", 5), 0);
	/* The server returns: the connection ends, we see EOF. */
	CU_ASSERT_EQUAL(aloop_stream_read(r, 100, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	CU_ASSERT(aloop_stream_reader_at_eof(r));
	/* Half-open after EOF, but TLS closes at once (no half-close). */
	if (n->client_ssl == NULL)
		CU_ASSERT_FALSE(aloop_stream_writer_is_closing(w));
	aloop_stream_writer_close(w);
	CU_ASSERT(aloop_stream_writer_is_closing(w));
	CU_ASSERT_EQUAL(aloop_stream_wait_closed(w), 0);
	CU_ASSERT_PTR_NULL(aloop_stream_writer_transport(w));
	CU_ASSERT_EQUAL(aloop_stream_write(w, "x", 1), ALOOP_ESTATE);
	aloop_stream_reader_release(r);
	aloop_stream_writer_release(w);
	return 0;
}

/*
 * 4 MiB of a pattern through the server's read_view echo, in pieces of
 * odd sizes: whatever a plain transport reads in place into the reader's
 * buffer must come back byte for byte.
 */
#define BULK_TOTAL	(4u << 20)
#define BULK_PIECE	49999u

static unsigned char
bulk_byte(size_t i)
{
	return (unsigned char)(i * 7 + i / 251);
}

static int
bulk_session(void *arg, void **result)
{
	struct net *n = arg;
	struct aloop_stream_reader *r;
	struct aloop_stream_writer *w;
	struct aloop_bytes *b;
	unsigned char *piece;
	size_t sent = 0, bad = 0;
	int rc;

	(void)result;
	if ((rc = connect_streams(n, &r, &w)) != 0)
		return rc;
	CU_ASSERT_FATAL((piece = malloc(BULK_PIECE)) != NULL);
	CU_ASSERT_EQUAL(aloop_stream_write(w, "bulk\n", 5), 0);
	while (sent < BULK_TOTAL) {
		size_t len = BULK_TOTAL - sent < BULK_PIECE ?
		    BULK_TOTAL - sent : BULK_PIECE;

		for (size_t i = 0; i < len; i++)
			piece[i] = bulk_byte(sent + i);
		if ((rc = aloop_stream_write(w, piece, len)) != 0 ||
		    (rc = aloop_stream_drain(w)) != 0 ||
		    (rc = aloop_stream_readexactly(r, len, &b)) != 0)
			break;
		for (size_t i = 0; i < len; i++)
			if (b->data[i] != bulk_byte(sent + i))
				bad++;
		free(b);
		sent += len;
	}
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(sent, BULK_TOTAL);
	CU_ASSERT_EQUAL(bad, 0);
	free(piece);
	aloop_stream_writer_close(w);
	(void)aloop_stream_wait_closed(w);
	aloop_stream_reader_release(r);
	aloop_stream_writer_release(w);
	return 0;
}

static void
test_bulk_read_view(void)
{
	struct loop_fixture f;
	struct net n;

	for (int tls = 0; tls <= 1; tls++) {
		loop_fixture_setup(&f);
		start(&f, &n, 0, tls);
		CU_ASSERT_EQUAL(run_task(&f, bulk_session, &n), 0);
		stop(&f, &n);
		CU_ASSERT_EQUAL(n.served, 1);
		loop_fixture_teardown(&f);
	}
}

static void
echo_over(int unix_socket, int tls)
{
	struct loop_fixture f;
	struct net n;

	loop_fixture_setup(&f);
	start(&f, &n, unix_socket, tls);
	CU_ASSERT_EQUAL(run_task(&f, echo_session, &n), 0);
	stop(&f, &n);
	CU_ASSERT_EQUAL(n.served, 1);
	CU_ASSERT_EQUAL(n.server_cleanup, 1);
	CU_ASSERT(n.peer_ok);
	if (n.path[0] != '\0')
		(void)unlink(n.path);
	loop_fixture_teardown(&f);
}

static void
test_echo_tcp(void)
{
	echo_over(0, 0);
}

static void
test_echo_unix(void)
{
	echo_over(1, 0);
}

static void
test_echo_tls(void)
{
	echo_over(0, 1);
}

/*
 * STARTTLS over streams: the server answers in clear with more than the
 * socket buffers hold, then both writers upgrade; the clear bytes all
 * arrive first, and the same reader and writer carry on over TLS.
 */
#define STARTTLS_CLEAR	(1024u * 1024u)

static struct aloop_tls_context *starttls_server_ctx, *starttls_client_ctx;

static int
starttls_client(struct aloop_stream_reader *r, struct aloop_stream_writer *w,
    void *arg)
{
	struct net *n = arg;
	struct aloop_connection_options o;
	struct aloop_bytes *line;
	unsigned char *clear;
	int rc;

	n->served++;
	if ((rc = aloop_stream_readline(r, &line)) != 0)
		return rc;
	CU_ASSERT(bytes_is(line, "STARTTLS\n"));
	clear = malloc(STARTTLS_CLEAR);
	CU_ASSERT_PTR_NOT_NULL_FATAL(clear);
	memset(clear, 'c', STARTTLS_CLEAR);
	CU_ASSERT_EQUAL(aloop_stream_write(w, "GO\n", 3), 0);
	CU_ASSERT_EQUAL(aloop_stream_write(w, clear, STARTTLS_CLEAR), 0);
	free(clear);
	aloop_connection_options_init(&o);
	o.ssl = starttls_server_ctx;
	CU_ASSERT_EQUAL(aloop_stream_writer_start_tls(w, NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL_FATAL(aloop_stream_writer_start_tls(w, &o), 0);
	CU_ASSERT_PTR_NOT_NULL(aloop_stream_get_extra_info(w, "cipher",
	    NULL));
	if ((rc = aloop_stream_readline(r, &line)) != 0)
		return rc;
	rc = aloop_stream_write(w, line->data, line->len);
	CU_ASSERT(bytes_is(line, "secret\n"));
	if (rc == 0)
		rc = aloop_stream_drain(w);
	n->server_cleanup++;
	return rc;
}

static int
starttls_session(void *arg, void **result)
{
	struct net *n = arg;
	struct aloop_connection_options o;
	struct aloop_stream_reader *r;
	struct aloop_stream_writer *w;
	struct aloop_bytes *b;
	size_t i;
	int rc, same = 1;

	(void)result;
	if ((rc = connect_streams(n, &r, &w)) != 0)
		return rc;
	CU_ASSERT_EQUAL(aloop_stream_write(w, "STARTTLS\n", 9), 0);
	CU_ASSERT_EQUAL(aloop_stream_readline(r, &b), 0);
	CU_ASSERT(bytes_is(b, "GO\n"));
	CU_ASSERT_EQUAL_FATAL(aloop_stream_readexactly(r, STARTTLS_CLEAR, &b),
	    0);
	for (i = 0; i < b->len; i++)
		same &= b->data[i] == 'c';
	CU_ASSERT(same);
	free(b);
	aloop_connection_options_init(&o);
	o.ssl = starttls_client_ctx;
	o.server_hostname = "localhost";
	CU_ASSERT_EQUAL_FATAL(aloop_stream_writer_start_tls(w, &o), 0);
	CU_ASSERT_PTR_NOT_NULL(aloop_stream_get_extra_info(w, "cipher",
	    NULL));
	CU_ASSERT_EQUAL(aloop_stream_write(w, "secret\n", 7), 0);
	CU_ASSERT_EQUAL(aloop_stream_readline(r, &b), 0);
	CU_ASSERT(bytes_is(b, "secret\n"));
	/* The server returns: TLS closes, we see EOF. */
	CU_ASSERT_EQUAL(aloop_stream_read(r, 100, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	aloop_stream_writer_close(w);
	CU_ASSERT_EQUAL(aloop_stream_wait_closed(w), 0);
	aloop_stream_reader_release(r);
	aloop_stream_writer_release(w);
	return 0;
}

static void
test_starttls(void)
{
	struct loop_fixture f;
	struct aloop_server_options o;
	struct aloop_future *fut;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	const int *fds;
	size_t nfds;
	struct net n;

	if (!certs_ok)
		certs_ok = tls_certs_make(&certs) == 0;
	CU_ASSERT_FATAL(certs_ok);
	loop_fixture_setup(&f);
	memset(&n, 0, sizeof(n));
	n.loop = f.loop;
	CU_ASSERT_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER,
	    &starttls_server_ctx) == 0);
	CU_ASSERT_FATAL(aloop_tls_context_load_cert_chain(starttls_server_ctx,
	    certs.server_cert, certs.server_key) == 0);
	aloop_server_options_init(&o);
	CU_ASSERT_FATAL(aloop_start_server(f.loop, starttls_client, &n,
	    "127.0.0.1", "0", &o, NULL, &fut) == 0);
	CU_ASSERT_FATAL(aloop_run_until_complete(f.loop, fut,
	    (void **)&n.srv) == 0);
	aloop_future_release(fut);
	fds = aloop_server_sockets(n.srv, &nfds);
	CU_ASSERT_FATAL(getsockname(fds[0], (struct sockaddr *)&sin,
	    &len) == 0);
	snprintf(n.port, sizeof(n.port), "%d", ntohs(sin.sin_port));
	/* The client connects plain (no n.client_ssl) and upgrades. */
	CU_ASSERT_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT,
	    &starttls_client_ctx) == 0);
	CU_ASSERT_FATAL(aloop_tls_context_load_verify_locations(
	    starttls_client_ctx, certs.ca, NULL) == 0);
	CU_ASSERT_EQUAL(run_task(&f, starttls_session, &n), 0);
	stop(&f, &n);
	aloop_tls_context_release(starttls_server_ctx);
	aloop_tls_context_release(starttls_client_ctx);
	starttls_server_ctx = starttls_client_ctx = NULL;
	CU_ASSERT_EQUAL(n.served, 1);
	CU_ASSERT_EQUAL(n.server_cleanup, 1);
	loop_fixture_teardown(&f);
}

static int
refused_task(void *arg, void **result)
{
	struct net *n = arg;
	struct aloop_stream_reader *r = (void *)1;
	struct aloop_stream_writer *w = (void *)1;
	int rc;

	(void)result;
	rc = aloop_open_connection(n->loop, "127.0.0.1", n->port, NULL, NULL,
	    &r, &w);
	CU_ASSERT(r == NULL && w == NULL);
	return rc;
}

static void
test_open_connection_refused(void)
{
	struct loop_fixture f;
	struct net n;
	struct aloop_stream_reader *r;
	struct aloop_stream_writer *w;

	loop_fixture_setup(&f);
	start(&f, &n, 0, 0);
	stop(&f, &n);
	/* The port is free again: the connection is refused. */
	CU_ASSERT_EQUAL(run_task(&f, refused_task, &n), -ECONNREFUSED);
	/* Task only. */
	CU_ASSERT_EQUAL(aloop_open_connection(f.loop, "127.0.0.1", n.port,
	    NULL, NULL, &r, &w), ALOOP_ESTATE);
	loop_fixture_teardown(&f);
}

/* ------------------------------------------------- drain, slow peer */

/* Reads nothing until told, then counts all to EOF and answers. */
static int
slow_reader(struct aloop_stream_reader *r, struct aloop_stream_writer *w,
    void *arg)
{
	struct net *n = arg;
	char buf[65536];
	uint64_t total = 0;
	size_t got;
	int rc;

	if ((rc = aloop_await(n->go, NULL)) != 0)
		return rc;
	for (;;) {
		if ((rc = aloop_stream_readinto(r, buf, sizeof(buf), &got)) != 0)
			return rc;
		if (got == 0)
			break;
		total += got;
	}
	n->total = total;
	CU_ASSERT_EQUAL(aloop_stream_write(w, &total, sizeof(total)), 0);
	return aloop_stream_drain(w);
}

static void
go_cb(void *arg)
{
	(void)aloop_future_set_result(arg, NULL, NULL);
}

static int
drain_session(void *arg, void **result)
{
	static char chunk[256 * 1024];
	struct net *n = arg;
	struct aloop_stream_reader *r;
	struct aloop_stream_writer *w;
	struct aloop_transport *t;
	struct aloop_bytes *b;
	uint64_t sent = 0, echoed;
	double t0, go_at;
	const int *fd;
	int rc, small = 4096;

	(void)result;
	if ((rc = connect_streams(n, &r, &w)) != 0)
		return rc;
	t = aloop_stream_writer_transport(w);
	fd = aloop_stream_get_extra_info(w, "socket", NULL);
	CU_ASSERT_FATAL(fd != NULL);
	CU_ASSERT(setsockopt(*fd, SOL_SOCKET, SO_SNDBUF, &small,
	    sizeof(small)) == 0);
	CU_ASSERT_FATAL(aloop_transport_set_write_buffer_limits(t, 16384,
	    4096) == 0);
	/*
	 * Fill the socket and our buffer until flow control pauses and
	 * stays paused: the kernel took all it will.
	 */
	for (;;) {
		CU_ASSERT_FATAL(aloop_stream_write(w, chunk,
		    sizeof(chunk)) == 0);
		sent += sizeof(chunk);
		CU_ASSERT_EQUAL(aloop_sleep(0.005), 0);
		if (aloop_transport_get_write_buffer_size(t) > 16384 ||
		    sent >= 64u * 1024 * 1024)
			break;
	}
	CU_ASSERT_FATAL(aloop_transport_get_write_buffer_size(t) > 16384);
	go_at = 0.05;
	CU_ASSERT(aloop_call_later(n->loop, go_at, go_cb, n->go, NULL) == 0);
	t0 = now_mono();
	/* Blocked while paused; resumed once the peer reads. */
	CU_ASSERT_EQUAL(aloop_stream_drain(w), 0);
	CU_ASSERT(now_mono() - t0 >= go_at - 1e-3);
	CU_ASSERT(aloop_transport_get_write_buffer_size(t) <= 4096);
	CU_ASSERT(aloop_stream_can_write_eof(w));
	CU_ASSERT_EQUAL(aloop_stream_write_eof(w), 0);
	CU_ASSERT_EQUAL(aloop_stream_readexactly(r, sizeof(echoed), &b), 0);
	if (b != NULL) {
		memcpy(&echoed, b->data, sizeof(echoed));
		CU_ASSERT_EQUAL(echoed, sent);
		free(b);
	}
	aloop_stream_writer_close(w);
	CU_ASSERT_EQUAL(aloop_stream_wait_closed(w), 0);
	/* Lost: drain says so. */
	CU_ASSERT_EQUAL(aloop_stream_drain(w), -ECONNRESET);
	aloop_stream_reader_release(r);
	aloop_stream_writer_release(w);
	return 0;
}

static void
test_drain_paused(void)
{
	struct loop_fixture f;
	struct aloop_server_options o;
	struct aloop_future *fut;
	struct net n;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	const int *fds;
	size_t nfds;
	int small = 4096;

	loop_fixture_setup(&f);
	memset(&n, 0, sizeof(n));
	n.loop = f.loop;
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &n.go) == 0);
	aloop_server_options_init(&o);
	CU_ASSERT_FATAL(aloop_start_server(f.loop, slow_reader, &n,
	    "127.0.0.1", "0", &o, NULL, &fut) == 0);
	CU_ASSERT_FATAL(aloop_run_until_complete(f.loop, fut,
	    (void **)&n.srv) == 0);
	aloop_future_release(fut);
	fds = aloop_server_sockets(n.srv, &nfds);
	CU_ASSERT_FATAL(getsockname(fds[0], (struct sockaddr *)&sin,
	    &len) == 0);
	snprintf(n.port, sizeof(n.port), "%d", ntohs(sin.sin_port));
	/* Accepted sockets inherit a small receive buffer. */
	CU_ASSERT(setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &small,
	    sizeof(small)) == 0);
	CU_ASSERT_EQUAL(run_task(&f, drain_session, &n), 0);
	CU_ASSERT(n.total > 0);
	stop(&f, &n);
	aloop_future_release(n.go);
	loop_fixture_teardown(&f);
}

/* The reader stops the transport past twice its limit. */
static int
flood_client(void *arg, void **result)
{
	struct net *n = arg;
	struct aloop_stream_reader *r;
	struct aloop_stream_writer *w;
	struct aloop_stream_options so;
	struct aloop_bytes *b;
	size_t buffered;
	int rc;

	(void)result;
	aloop_stream_options_init(&so);
	so.limit = 1024;
	if ((rc = aloop_open_connection(n->loop, "127.0.0.1", n->port, NULL,
	    &so, &r, &w)) != 0)
		return rc;
	/* The server floods us; nobody reads for a while. */
	CU_ASSERT_EQUAL(aloop_sleep(0.05), 0);
	buffered = aloop_stream_reader_buffered(r);
	CU_ASSERT(buffered > 2 * so.limit);
	/* Paused past 2 * limit: at most one more read's worth arrived. */
	CU_ASSERT(buffered <= 2 * so.limit + 256 * 1024);
	CU_ASSERT_FALSE(aloop_transport_is_reading(
	    aloop_stream_writer_transport(w)));
	/* No newline within the limit: dropped, reading goes on. */
	CU_ASSERT_EQUAL(aloop_stream_readline(r, &b), ALOOP_ELIMIT);
	CU_ASSERT_EQUAL(aloop_stream_reader_buffered(r), 0);
	CU_ASSERT(aloop_transport_is_reading(aloop_stream_writer_transport(w)));
	aloop_stream_reader_release(r);
	aloop_stream_writer_release(w);
	return 0;
}

/* A server that floods whoever connects with data without newlines. */
static int
flooder(struct aloop_stream_reader *r, struct aloop_stream_writer *w,
    void *arg)
{
	static char chunk[16 * 1024];
	int rc;

	(void)r;
	(void)arg;
	memset(chunk, 'a', sizeof(chunk));
	for (int i = 0; i < 64; i++) {
		if ((rc = aloop_stream_write(w, chunk, sizeof(chunk))) != 0 ||
		    (rc = aloop_stream_drain(w)) != 0)
			return 0;	/* the client went */
	}
	return 0;
}

static void
test_reader_limit_pauses(void)
{
	struct loop_fixture f;
	struct aloop_future *fut;
	struct net n;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	const int *fds;
	size_t nfds;

	loop_fixture_setup(&f);
	memset(&n, 0, sizeof(n));
	n.loop = f.loop;
	CU_ASSERT_FATAL(aloop_start_server(f.loop, flooder, &n, "127.0.0.1",
	    "0", NULL, NULL, &fut) == 0);
	CU_ASSERT_FATAL(aloop_run_until_complete(f.loop, fut,
	    (void **)&n.srv) == 0);
	aloop_future_release(fut);
	fds = aloop_server_sockets(n.srv, &nfds);
	CU_ASSERT_FATAL(getsockname(fds[0], (struct sockaddr *)&sin,
	    &len) == 0);
	snprintf(n.port, sizeof(n.port), "%d", ntohs(sin.sin_port));
	CU_ASSERT_EQUAL(run_task(&f, flood_client, &n), 0);
	stop(&f, &n);
	loop_fixture_teardown(&f);
}

/* A client callback's error goes to the exception handler. */
static int
failing_client(struct aloop_stream_reader *r, struct aloop_stream_writer *w,
    void *arg)
{
	(void)r;
	(void)w;
	(void)arg;
	return -EPROTO;
}

static int
record_handler(struct aloop_loop *loop, const struct aloop_context *ctx,
    void *arg)
{
	struct net *n = arg;

	(void)loop;
	if (strcmp(ctx->message, "Unhandled error in client_connected_cb") == 0 &&
	    ctx->error != NULL && ctx->error->code == -EPROTO)
		n->served++;
	return 0;
}

static int
see_eof(void *arg, void **result)
{
	struct net *n = arg;
	struct aloop_stream_reader *r;
	struct aloop_stream_writer *w;
	struct aloop_bytes *b;
	int rc;

	(void)result;
	if ((rc = connect_streams(n, &r, &w)) != 0)
		return rc;
	/* The callback returned: its connection is closed. */
	CU_ASSERT_EQUAL(aloop_stream_read(r, 10, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	aloop_stream_reader_release(r);
	aloop_stream_writer_release(w);
	return 0;
}

static void
test_client_error_reported(void)
{
	struct loop_fixture f;
	struct aloop_future *fut;
	struct net n;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	const int *fds;
	size_t nfds;

	loop_fixture_setup(&f);
	memset(&n, 0, sizeof(n));
	n.loop = f.loop;
	aloop_set_exception_handler(f.loop, record_handler, &n);
	CU_ASSERT_FATAL(aloop_start_server(f.loop, failing_client, &n,
	    "127.0.0.1", "0", NULL, NULL, &fut) == 0);
	CU_ASSERT_FATAL(aloop_run_until_complete(f.loop, fut,
	    (void **)&n.srv) == 0);
	aloop_future_release(fut);
	fds = aloop_server_sockets(n.srv, &nfds);
	CU_ASSERT_FATAL(getsockname(fds[0], (struct sockaddr *)&sin,
	    &len) == 0);
	snprintf(n.port, sizeof(n.port), "%d", ntohs(sin.sin_port));
	CU_ASSERT_EQUAL(run_task(&f, see_eof, &n), 0);
	stop(&f, &n);
	CU_ASSERT_EQUAL(n.served, 1);
	loop_fixture_teardown(&f);
}

/* -------------------------------------------- the loop closes on them */

static int
hold_open(void *arg, void **result)
{
	struct net *n = arg;
	struct aloop_stream_reader *r;
	struct aloop_stream_writer *w;
	struct aloop_bytes *b;

	(void)result;
	if (connect_streams(n, &r, &w) != 0)
		return -1;
	/* Suspended here when the loop closes. */
	CU_ASSERT_EQUAL(aloop_stream_readline(r, &b), ALOOP_ECANCELLED);
	aloop_stream_reader_release(r);
	aloop_stream_writer_release(w);
	n->total = 1;
	return ALOOP_ECANCELLED;
}

static void
test_close_with_stream_tasks(void)
{
	struct loop_fixture f;
	struct aloop_future *t;
	struct net n;
	double deadline;

	loop_fixture_setup(&f);
	start(&f, &n, 0, 0);
	CU_ASSERT_FATAL(aloop_create_task(f.loop, hold_open, &n, NULL,
	    &t) == 0);
	deadline = now_mono() + 5;
	while (n.served == 0 && now_mono() < deadline) {
		aloop_stop(f.loop);
		(void)aloop_run_forever(f.loop);
	}
	CU_ASSERT_EQUAL(n.served, 1);
	aloop_server_release(n.srv);
	aloop_tls_context_release(n.client_ssl);
	/* Both ends' tasks are suspended in readline. */
	watchdog_disarm(&f.wd);
	CU_ASSERT_EQUAL(aloop_close(f.loop), 0);
	CU_ASSERT_EQUAL(n.total, 1);
	CU_ASSERT_EQUAL(n.server_cleanup, 1);
	CU_ASSERT(aloop_future_cancelled(t));
	aloop_future_release(t);
	CU_ASSERT_EQUAL(aloop_loop_free(f.loop), 0);
	CU_ASSERT_EQUAL(count_fds(), f.fds);
}

static void
cleanup_certs(void)
{
	if (certs_ok)
		tls_certs_remove(&certs);
}

/* ------------------------------------------- a host's own protocol */

struct hctx {
	const struct aloop_protocol	*proto;
	void				*state;
	struct aloop_stream_reader	*r;
	struct aloop_stream_writer	*w;
	int				 ran, stopped;
};

static void
host_feed_cb(void *arg)
{
	struct hctx *h = arg;

	/* What a host's data_received passes on; no transport here. */
	h->proto->data_received(NULL, h->state, "much too long\nok\n", 17);
	(void)h->proto->eof_received(NULL, h->state);
}

static void
host_switch(void *arg, int running)
{
	struct hctx *h = arg;

	if (running)
		h->ran++;
	else
		h->stopped++;
}

static int
host_task(void *arg, void **result)
{
	struct hctx *h = arg;
	struct aloop_bytes *b;

	(void)result;
	aloop_stream_reader_set_limit(h->r, 4);
	CU_ASSERT(aloop_call_soon(aloop_get_running_loop(), host_feed_cb, h,
	    NULL) == 0);
	CU_ASSERT_EQUAL(aloop_stream_readline(h->r, &b), ALOOP_ELIMIT);
	CU_ASSERT_EQUAL(aloop_stream_readline(h->r, &b), 0);
	CU_ASSERT(bytes_is(b, "ok\n"));
	CU_ASSERT_EQUAL(aloop_stream_readline(h->r, &b), 0);
	CU_ASSERT(bytes_is(b, ""));
	CU_ASSERT(aloop_stream_reader_at_eof(h->r));
	/* No transport: writing is a state error, not a crash. */
	CU_ASSERT_EQUAL(aloop_stream_write(h->w, "x", 1), ALOOP_ESTATE);
	return 0;
}

/*
 * aloop_stream_protocol_new: a reader and a writer fed by the host's own
 * calls; set_limit bounds readline; on_switch sees each run of the task.
 */
static void
test_host_protocol(void)
{
	struct aloop_connection_options co;
	struct loop_fixture f;
	struct aloop_task_options to;
	struct aloop_future *fut;
	struct hctx h = { 0 };

	loop_fixture_setup(&f);
	CU_ASSERT_EQUAL(aloop_stream_protocol_new(NULL, NULL, &h.proto,
	    &h.state, &h.r, &h.w), ALOOP_EINVAL);
	CU_ASSERT_PTR_NULL(h.r);
	CU_ASSERT_FATAL(aloop_stream_protocol_new(f.loop, NULL, &h.proto,
	    &h.state, &h.r, &h.w) == 0);
	aloop_task_options_init(&to);
	to.on_switch = host_switch;
	to.switch_arg = &h;
	CU_ASSERT_FATAL(aloop_create_task(f.loop, host_task, &h, &to,
	    &fut) == 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, fut, NULL), 0);
	aloop_future_release(fut);
	/* Started, then resumed at least once for the data. */
	CU_ASSERT(h.ran >= 2);
	CU_ASSERT_EQUAL(h.ran, h.stopped);
	/* The host owns the transport's protocol: no upgrade under it. */
	aloop_connection_options_init(&co);
	co.ssl = ALOOP_TLS_DEFAULT;
	CU_ASSERT_EQUAL(aloop_stream_writer_start_tls(h.w, &co),
	    ALOOP_ENOTSUP);
	/* The host's connection_lost drops the protocol's reference. */
	h.proto->connection_lost(NULL, h.state, NULL);
	aloop_stream_reader_release(h.r);
	aloop_stream_writer_release(h.w);
	loop_fixture_teardown(&f);
}

static void
test_zz_cleanup(void)
{
	cleanup_certs();
	CU_PASS("certificates removed");
}

static const struct test_case cases[] = {
	TEST(test_readline),
	TEST(test_readline_limit),
	TEST(test_read_view_and_text),
	TEST(test_readexactly_eof),
	TEST(test_readuntil),
	TEST(test_readuntil_limit),
	TEST(test_read_and_at_eof),
	TEST(test_one_waiter),
	TEST(test_echo_tcp),
	TEST(test_echo_unix),
	TEST(test_echo_tls),
	TEST(test_starttls),
	TEST(test_bulk_read_view),
	TEST(test_open_connection_refused),
	TEST(test_drain_paused),
	TEST(test_reader_limit_pauses),
	TEST(test_client_error_reported),
	TEST(test_close_with_stream_tasks),
	TEST(test_host_protocol),
	TEST(test_zz_cleanup),
};

TEST_MAIN("streams", cases)
