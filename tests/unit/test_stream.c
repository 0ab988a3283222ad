/*
 * The stream transport over real loopback TCP: the protocol order, echo,
 * close flushing and abort dropping, write flow control with its exact
 * thresholds, half-close, pause/resume reading and connection resets
 * (SEMANTICS section F).
 */
#include "config.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "stream_util.h"

struct pair {
	struct aloop_loop	*loop;
	struct aloop_server	*srv;
	struct rec_pool		 sp, cp;	/* server and client sides */
	struct aloop_transport	*ct;		/* the client's transport */
	struct rec		*s, *c;
	int			 port;
	int			 fds;
};

/* A server and one connected client, both driven by rec_proto. */
static void
pair_open(struct pair *p)
{
	p->fds = count_fds();
	p->loop = test_loop();
	p->srv = start_server(p->loop, &p->sp, NULL, &p->port);
	p->ct = connect_to(p->loop, &p->cp, "127.0.0.1", p->port);
	CU_ASSERT_FATAL(WAIT_UNTIL(p->loop, p->sp.n == 1 &&
	    p->sp.r[0].made == 1, 5.0));
	p->s = &p->sp.r[0];
	p->c = &p->cp.r[0];
	CU_ASSERT_EQUAL(p->c->made, 1);
	CU_ASSERT_PTR_EQUAL(p->c->t, p->ct);
}

/* Close what is left, check the order held, and that nothing leaked. */
static void
pair_close(struct pair *p)
{
	int i;

	if (p->c->lost == 0)
		aloop_transport_abort(p->ct);
	if (p->s->lost == 0 && p->s->t != NULL)
		aloop_transport_abort(p->s->t);
	CU_ASSERT(WAIT_UNTIL(p->loop, p->c->lost == 1 && p->s->lost == 1,
	    5.0));
	aloop_server_close(p->srv);
	aloop_server_release(p->srv);
	for (i = 0; i < p->sp.n; i++)
		CU_ASSERT_EQUAL(p->sp.r[i].bad, 0);
	for (i = 0; i < p->cp.n; i++)
		CU_ASSERT_EQUAL(p->cp.r[i].bad, 0);
	test_loop_done(p->loop);
	CU_ASSERT_EQUAL(count_fds(), p->fds);
}

static void
test_echo_round_trip(void)
{
	struct pair p = { 0 };
	const struct sockaddr_in *sin;
	size_t len;
	const int *fd;
	int on = 0;
	socklen_t ol = sizeof(on);

	p.sp.tmpl.echo = 1;
	pair_open(&p);
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, "hello", 5), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->nrecv == 5, 5.0));
	CU_ASSERT_EQUAL(memcmp(p.c->data, "hello", 5), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, "", 0), 0);

	/* Extra information, by asyncio's names. */
	sin = aloop_transport_get_extra_info(p.s->t, "peername", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sin);
	CU_ASSERT_EQUAL(len, sizeof(*sin));
	CU_ASSERT_EQUAL(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	sin = aloop_transport_get_extra_info(p.ct, "peername", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sin);
	CU_ASSERT_EQUAL(ntohs(sin->sin_port), p.port);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(p.ct,
	    "sockname", NULL));
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(p.ct, "pipe", NULL));
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(p.ct, "cipher",
	    NULL));
	fd = aloop_transport_get_extra_info(p.ct, "socket", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fd);
	/* TCP connections turn Nagle off by default. */
	CU_ASSERT_EQUAL(getsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &on, &ol), 0);
	CU_ASSERT_EQUAL(on, 1);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_loop(p.ct), p.loop);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol_state(p.ct), p.c);
	CU_ASSERT(aloop_transport_can_write_eof(p.ct));

	/* A clean close: both sides end with connection_lost(NULL), once. */
	aloop_transport_close(p.ct);
	CU_ASSERT(aloop_transport_is_closing(p.ct));
	CU_ASSERT_EQUAL(p.c->lost, 0);	/* never synchronously */
	aloop_transport_close(p.ct);	/* idempotent */
	aloop_transport_abort(p.ct);
	/* The abort after the close found nothing left to abort. */
	CU_ASSERT_EQUAL(*(const int *)aloop_transport_get_extra_info(p.ct,
	    "aborted", NULL), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->lost == 1 && p.s->lost == 1, 5.0));
	CU_ASSERT_EQUAL(p.c->lost_code, 0);
	CU_ASSERT_EQUAL(p.s->eofs, 1);
	CU_ASSERT_EQUAL(p.s->lost_code, 0);
	pair_close(&p);
}

#define BIG	(8 * 1024 * 1024)

static void
test_close_flushes_large_buffer(void)
{
	struct pair p = { 0 };
	unsigned char *buf = malloc(BIG);

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	memset(buf, 'x', BIG);
	pair_open(&p);
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, buf, BIG), 0);
	CU_ASSERT(aloop_transport_get_write_buffer_size(p.ct) > 0);
	aloop_transport_close(p.ct);
	/* Writes after close are dropped silently. */
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, "late", 4), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->lost == 1 && p.s->eofs == 1, 20.0));
	CU_ASSERT_EQUAL(p.s->nrecv, (size_t)BIG);
	CU_ASSERT_EQUAL(p.c->lost_code, 0);
	pair_close(&p);
	free(buf);
}

static void
test_abort_drops_buffer(void)
{
	struct pair p = { 0 };
	unsigned char *buf = malloc(4 * BIG);

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	memset(buf, 'y', 4 * BIG);
	p.sp.tmpl.pause_in_made = 1;	/* the peer reads nothing yet */
	pair_open(&p);
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, buf, 4 * BIG), 0);
	CU_ASSERT(aloop_transport_get_write_buffer_size(p.ct) > 0);
	aloop_transport_abort(p.ct);
	CU_ASSERT_EQUAL(aloop_transport_get_write_buffer_size(p.ct), 0);
	CU_ASSERT_EQUAL(*(const int *)aloop_transport_get_extra_info(p.ct,
	    "aborted", NULL), 1);
	CU_ASSERT_EQUAL(p.c->lost, 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->lost == 1, 5.0));
	CU_ASSERT_EQUAL(p.c->lost_code, 0);
	aloop_transport_resume_reading(p.s->t);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.s->lost == 1, 10.0));
	CU_ASSERT(p.s->nrecv < (size_t)4 * BIG);
	pair_close(&p);
	free(buf);
}

static void
test_flow_control_thresholds(void)
{
	struct pair p = { 0 };
	static unsigned char chunk[1024];
	size_t size, low, high;
	int i;

	p.sp.tmpl.pause_in_made = 1;
	pair_open(&p);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct, 8192,
	    2048), 0);
	aloop_transport_get_write_buffer_limits(p.ct, &low, &high);
	CU_ASSERT_EQUAL(low, 2048);
	CU_ASSERT_EQUAL(high, 8192);
	/* Fill the kernel's buffers, then watch the transport's. */
	for (i = 0; i < 200000 && p.c->pauses == 0; i++) {
		CU_ASSERT_EQUAL_FATAL(aloop_transport_write(p.ct, chunk,
		    sizeof(chunk)), 0);
		size = aloop_transport_get_write_buffer_size(p.ct);
		/* pause_writing exactly when the size went past high. */
		CU_ASSERT_EQUAL_FATAL(p.c->pauses, size > 8192 ? 1 : 0);
	}
	CU_ASSERT_EQUAL(p.c->pauses, 1);
	CU_ASSERT(p.c->size_at_pause > 8192);
	CU_ASSERT(p.c->size_at_pause <= 8192 + sizeof(chunk));
	/* Still paused: more writes call nothing again. */
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, chunk, sizeof(chunk)), 0);
	CU_ASSERT_EQUAL(p.c->pauses, 1);
	CU_ASSERT_EQUAL(p.c->resumes, 0);
	/* The reader drains: resume once the buffer is at low or below. */
	aloop_transport_resume_reading(p.s->t);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->resumes == 1, 10.0));
	CU_ASSERT(p.c->size_at_resume <= 2048);
	CU_ASSERT_EQUAL(p.c->pauses, 1);
	pair_close(&p);
}

static void
test_write_buffer_limits(void)
{
	struct pair p = { 0 };
	static unsigned char chunk[65536];
	size_t low, high;
	int i;

	p.sp.tmpl.pause_in_made = 1;
	pair_open(&p);
	aloop_transport_get_write_buffer_limits(p.ct, &low, &high);
	CU_ASSERT_EQUAL(high, 65536);
	CU_ASSERT_EQUAL(low, 16384);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct, 1, 2),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct, -2, -1),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct, -1, -5),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct, -1, 100),
	    0);
	aloop_transport_get_write_buffer_limits(p.ct, &low, &high);
	CU_ASSERT_EQUAL(high, 400);
	CU_ASSERT_EQUAL(low, 100);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct, 1000,
	    -1), 0);
	aloop_transport_get_write_buffer_limits(p.ct, &low, &high);
	CU_ASSERT_EQUAL(high, 1000);
	CU_ASSERT_EQUAL(low, 250);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct, -1, -1),
	    0);
	/*
	 * Buffer something below the default high mark...  The kernel may
	 * take tens of MiB first (tcp_rmem's maximum, autotuned), so the
	 * bound is generous; the loop stops at the first buffered byte.
	 */
	for (i = 0; i < 20000 &&
	    aloop_transport_get_write_buffer_size(p.ct) == 0; i++)
		CU_ASSERT_EQUAL_FATAL(aloop_transport_write(p.ct, chunk, 4096),
		    0);
	CU_ASSERT(aloop_transport_get_write_buffer_size(p.ct) > 0);
	CU_ASSERT(aloop_transport_get_write_buffer_size(p.ct) <= 65536);
	CU_ASSERT_EQUAL(p.c->pauses, 0);
	/* ...then high = 0 pauses at once, as the buffer is not empty. */
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct, 0, 0), 0);
	CU_ASSERT_EQUAL(p.c->pauses, 1);
	pair_close(&p);
}

static void
test_writelines_flow_control(void)
{
	struct pair p = { 0 };
	static unsigned char chunk[65536];
	struct iovec iov[3];
	size_t size;
	int i;

	p.sp.tmpl.pause_in_made = 1;
	pair_open(&p);
	/* Fill the kernel's buffers first so the next write is buffered. */
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct,
	    1 << 20, 0), 0);
	for (i = 0; i < 10000 &&
	    aloop_transport_get_write_buffer_size(p.ct) == 0; i++)
		CU_ASSERT_EQUAL_FATAL(aloop_transport_write(p.ct, chunk,
		    sizeof(chunk)), 0);
	size = aloop_transport_get_write_buffer_size(p.ct);
	CU_ASSERT_FATAL(size > 0);
	/* Room for exactly 4 KiB more before the high mark. */
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(p.ct,
	    (ssize_t)size + 4096, (ssize_t)size), 0);
	CU_ASSERT_EQUAL(p.c->pauses, 0);
	for (i = 0; i < 3; i++) {
		iov[i].iov_base = chunk;
		iov[i].iov_len = 2048;
	}
	CU_ASSERT_EQUAL(aloop_transport_writelines(p.ct, iov, 3), 0);
	CU_ASSERT_EQUAL(p.c->pauses, 1);
	CU_ASSERT_EQUAL(p.c->size_at_pause, size + 3 * 2048);
	CU_ASSERT_EQUAL(aloop_transport_writelines(p.ct, iov, 0), 0);
	aloop_transport_resume_reading(p.s->t);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->resumes == 1, 10.0));
	pair_close(&p);
}

static void
server_writes_bye_and_closes(struct rec *r)
{
	(void)aloop_transport_write(r->t, "bye", 3);
	aloop_transport_close(r->t);
}

static void
test_half_close_keep_open(void)
{
	struct pair p = { 0 };

	/* eof_received returning 1 keeps the transport writable. */
	p.sp.tmpl.keep_open = 1;
	p.sp.tmpl.on_eof = server_writes_bye_and_closes;
	pair_open(&p);
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, "hi", 2), 0);
	CU_ASSERT_EQUAL(aloop_transport_write_eof(p.ct), 0);
	CU_ASSERT_EQUAL(aloop_transport_write_eof(p.ct), 0);	/* idempotent */
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, "x", 1), ALOOP_ESTATE);
	CU_ASSERT_FALSE(aloop_transport_is_closing(p.ct));
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->eofs == 1, 5.0));
	CU_ASSERT_EQUAL(p.s->nrecv, 2);
	CU_ASSERT_EQUAL(p.c->nrecv, 3);
	CU_ASSERT_EQUAL(memcmp(p.c->data, "bye", 3), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->lost == 1 && p.s->lost == 1, 5.0));
	pair_close(&p);
}

static void
test_half_close_eof_closes(void)
{
	struct pair p = { 0 };

	/* eof_received returning 0 closes: the client then reads EOF too. */
	pair_open(&p);
	CU_ASSERT_EQUAL(aloop_transport_write_eof(p.ct), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.s->lost == 1, 5.0));
	CU_ASSERT_EQUAL(p.s->eofs, 1);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->eofs == 1 && p.c->lost == 1, 5.0));
	CU_ASSERT_EQUAL(p.c->nrecv, 0);
	pair_close(&p);
}

static void
test_write_eof_after_buffer_drains(void)
{
	struct pair p = { 0 };
	unsigned char *buf = malloc(BIG);

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	memset(buf, 'z', BIG);
	p.sp.tmpl.keep_open = 1;
	pair_open(&p);
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, buf, BIG), 0);
	CU_ASSERT(aloop_transport_get_write_buffer_size(p.ct) > 0);
	CU_ASSERT_EQUAL(aloop_transport_write_eof(p.ct), 0);
	/* The EOF reaches the peer only after every byte. */
	CU_ASSERT(WAIT_UNTIL(p.loop, p.s->eofs == 1, 20.0));
	CU_ASSERT_EQUAL(p.s->nrecv, (size_t)BIG);
	CU_ASSERT_EQUAL(p.c->lost, 0);
	/* Reading goes on after write_eof. */
	CU_ASSERT_EQUAL(aloop_transport_write(p.s->t, "ok", 2), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->nrecv == 2, 5.0));
	pair_close(&p);
	free(buf);
}

static void
test_pause_resume_reading(void)
{
	struct pair p = { 0 };

	pair_open(&p);
	CU_ASSERT(aloop_transport_is_reading(p.s->t));
	aloop_transport_pause_reading(p.s->t);
	aloop_transport_pause_reading(p.s->t);	/* idempotent */
	CU_ASSERT_FALSE(aloop_transport_is_reading(p.s->t));
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, "abc", 3), 0);
	run_for(p.loop, 0.05);
	CU_ASSERT_EQUAL(p.s->nrecv, 0);
	aloop_transport_resume_reading(p.s->t);
	aloop_transport_resume_reading(p.s->t);
	CU_ASSERT(aloop_transport_is_reading(p.s->t));
	CU_ASSERT(WAIT_UNTIL(p.loop, p.s->nrecv == 3, 5.0));
	/* Closing leaves no reader, even after resume. */
	aloop_transport_close(p.s->t);
	aloop_transport_resume_reading(p.s->t);
	CU_ASSERT_FALSE(aloop_transport_is_reading(p.s->t));
	aloop_transport_pause_reading(p.s->t);
	pair_close(&p);
}

static void
test_connection_reset(void)
{
	struct aloop_loop *loop;
	struct aloop_server *srv;
	struct rec_pool sp = { 0 };
	struct linger lg = { 1, 0 };
	int fds = count_fds(), port, fd;

	loop = test_loop();
	srv = start_server(loop, &sp, NULL, &port);
	fd = raw_connect(AF_INET, "127.0.0.1", port);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made == 1, 5.0));
	CU_ASSERT_EQUAL(write(fd, "x", 1), 1);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].nrecv == 1, 5.0));
	/* A zero linger time makes close() send a reset. */
	CU_ASSERT_EQUAL(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg,
	    sizeof(lg)), 0);
	close(fd);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1, 5.0));
	CU_ASSERT_EQUAL(sp.r[0].lost_code, -ECONNRESET);
	CU_ASSERT_EQUAL(sp.r[0].bad, 0);
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static int handler_calls;

static int
count_handler(struct aloop_loop *loop, const struct aloop_context *ctx,
    void *arg)
{
	(void)loop;
	(void)ctx;
	(void)arg;
	handler_calls++;
	return 0;
}

static void
test_reset_while_writing(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool cp = { 0 };
	struct aloop_transport *t;
	struct sockaddr_in sin;
	struct linger lg = { 1, 0 };
	static unsigned char chunk[65536];
	int lfd, afd, i;
	socklen_t len = sizeof(sin);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	CU_ASSERT_EQUAL_FATAL(listen(lfd, 1), 0);
	handler_calls = 0;
	aloop_set_exception_handler(loop, count_handler, NULL);
	t = connect_to(loop, &cp, "127.0.0.1", sock_port(lfd));
	afd = accept(lfd, (struct sockaddr *)&sin, &len);
	CU_ASSERT_FATAL(afd >= 0);
	/* The peer resets while the transport keeps writing. */
	CU_ASSERT_EQUAL(setsockopt(afd, SOL_SOCKET, SO_LINGER, &lg,
	    sizeof(lg)), 0);
	close(afd);
	for (i = 0; i < 64 && cp.r[0].lost == 0; i++) {
		CU_ASSERT_EQUAL(aloop_transport_write(t, chunk, sizeof(chunk)),
		    0);
		run_for(loop, 0.002);
	}
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost == 1, 5.0));
	/* The peer going away ends the transport with the error... */
	CU_ASSERT(cp.r[0].lost_code == -ECONNRESET ||
	    cp.r[0].lost_code == -EPIPE);
	/* ...and is no bug worth the exception handler. */
	CU_ASSERT_EQUAL(handler_calls, 0);
	CU_ASSERT_EQUAL(cp.r[0].bad, 0);
	close(lfd);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static int log_lines;

static void
count_sink(int level, const char *line, void *arg)
{
	(void)arg;
	if (level == ALOOP_LOG_WARNING && strstr(line, "write after close"))
		log_lines++;
}

static void
close_in_made(struct rec *r)
{
	aloop_transport_close(r->t);
}

static void
test_close_inside_callbacks(void)
{
	struct pair p = { 0 };

	/* The server's protocol closes its transport in connection_made. */
	p.sp.tmpl.on_made = close_in_made;
	pair_open(&p);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.s->lost == 1 && p.c->lost == 1, 5.0));
	CU_ASSERT_EQUAL(p.s->nrecv, 0);
	CU_ASSERT_EQUAL(p.s->eofs, 0);
	CU_ASSERT_EQUAL(p.c->eofs, 1);
	pair_close(&p);
}

static void
test_abort_inside_data_received(void)
{
	struct pair p = { 0 };

	p.sp.tmpl.abort_on_data = 1;
	pair_open(&p);
	CU_ASSERT_EQUAL(aloop_transport_write(p.ct, "boom", 4), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.s->lost == 1 && p.c->lost == 1, 5.0));
	CU_ASSERT_EQUAL(p.s->nrecv, 4);
	CU_ASSERT_EQUAL(p.s->lost_code, 0);
	pair_close(&p);
}

static void
test_writes_after_close(void)
{
	struct pair p = { 0 };
	int i;

	pair_open(&p);
	aloop_transport_close(p.ct);
	/* Dropped without an error; one warning once there were five. */
	log_lines = 0;
	aloop_log_set_sink(count_sink, NULL);
	for (i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(aloop_transport_write(p.ct, "x", 1), 0);
	aloop_log_set_sink(NULL, NULL);
	CU_ASSERT_EQUAL(log_lines, 1);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.s->lost == 1 && p.c->lost == 1, 5.0));
	CU_ASSERT_EQUAL(p.s->nrecv, 0);
	pair_close(&p);
}

/* A temporary regular file of @n bytes: byte i is (i * 7 + 3) & 0xff. */
static int
pattern_file(size_t n)
{
	char path[] = "/tmp/aloop-stream-XXXXXX";
	unsigned char buf[4096];
	size_t i, j, k;
	int fd;

	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	(void)unlink(path);
	for (i = 0; i < n; i += k) {
		k = n - i < sizeof(buf) ? n - i : sizeof(buf);
		for (j = 0; j < k; j++)
			buf[j] = (unsigned char)((i + j) * 7 + 3);
		CU_ASSERT_FATAL(write(fd, buf, k) == (ssize_t)k);
	}
	return fd;
}

static int
pattern_ok(const unsigned char *p, size_t n, size_t from)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != (unsigned char)((from + i) * 7 + 3))
			return 0;
	return 1;
}

/*
 * CPython's test_sendfile over a transport: what was written before goes
 * first, writes are refused while it runs, the whole file arrives (more
 * than the socket buffers hold), then an offset and a count.
 */
static void
test_transport_sendfile(void)
{
	struct pair p = { 0 };
	const size_t n = 2 * 1024 * 1024 + 5;
	struct aloop_future *f, *g;
	struct aloop_nbytes *r = NULL;
	int file;

	pair_open(&p);
	file = pattern_file(n);
	CU_ASSERT_EQUAL(aloop_transport_write(p.s->t, "hdr", 3), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_transport_sendfile(p.s->t, file, 0, 0,
	    &f), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(p.s->t, "x", 1), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_transport_sendfile(p.s->t, file, 0, 0, &g),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(wait_future(p.loop, f, (void **)&r), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->nbytes, n);
	CU_ASSERT_EQUAL(lseek(file, 0, SEEK_CUR), (off_t)n);
	aloop_future_release(f);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->nrecv == 3 + n, 10.0));
	CU_ASSERT_EQUAL(memcmp(p.c->data, "hdr", 3), 0);
	CU_ASSERT(pattern_ok(p.c->data + 3, sizeof(p.c->data) - 3, 0));
	CU_ASSERT_EQUAL(*(const uint64_t *)aloop_transport_get_extra_info(
	    p.s->t, "bytes_written", NULL), 3 + n);
	/* Writing works again. */
	CU_ASSERT_EQUAL(aloop_transport_write(p.s->t, "y", 1), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->nrecv == 4 + n, 5.0));

	/* An offset and a count. */
	CU_ASSERT_EQUAL_FATAL(aloop_transport_sendfile(p.s->t, file, 100,
	    1000, &f), 0);
	CU_ASSERT_EQUAL(wait_future(p.loop, f, (void **)&r), 0);
	CU_ASSERT_EQUAL(r->nbytes, 1000);
	CU_ASSERT_EQUAL(lseek(file, 0, SEEK_CUR), 1100);
	aloop_future_release(f);
	CU_ASSERT(WAIT_UNTIL(p.loop, p.c->nrecv == 1004 + n, 5.0));

	/* Argument and state checks. */
	CU_ASSERT_EQUAL(aloop_transport_sendfile(p.s->t, file, -1, 0, &g),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_sendfile(p.s->t, file, 0, 0, NULL),
	    ALOOP_EINVAL);
	aloop_transport_close(p.s->t);
	CU_ASSERT_EQUAL(aloop_transport_sendfile(p.s->t, file, 0, 0, &g),
	    ALOOP_ESTATE);
	(void)close(file);
	pair_close(&p);
}

/* The transport closes under a running sendfile: the future fails. */
static void
test_transport_sendfile_lost(void)
{
	struct pair p = { 0 };
	const size_t n = 8 * 1024 * 1024;
	struct aloop_future *f;
	int file;

	pair_open(&p);
	file = pattern_file(n);
	/* The client reads nothing, so the file cannot all go. */
	aloop_transport_pause_reading(p.ct);
	CU_ASSERT_EQUAL_FATAL(aloop_transport_sendfile(p.s->t, file, 0, 0,
	    &f), 0);
	run_for(p.loop, 0.05);
	CU_ASSERT_FALSE(aloop_future_done(f));
	aloop_transport_abort(p.s->t);
	CU_ASSERT_EQUAL(wait_future(p.loop, f, NULL), -EPIPE);
	aloop_future_release(f);
	(void)close(file);
	pair_close(&p);
}

/* Another protocol takes over the connection (asyncio's set_protocol). */
struct other {
	size_t	nrecv;
	int	lost;
};

static void
other_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct other *o = state;

	(void)t;
	(void)data;
	o->nrecv += len;
}

static void
other_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct other *o = state;

	(void)t;
	(void)err;
	o->lost++;
}

static const struct aloop_protocol other_proto = {
	.data_received = other_data,
	.connection_lost = other_lost,
};

static void
test_set_protocol(void)
{
	struct pair p = { 0 };
	struct other o = { 0, 0 };

	pair_open(&p);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol(p.ct), &rec_proto);
	CU_ASSERT_EQUAL(aloop_transport_set_protocol(p.ct, NULL, &o),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_set_protocol(p.ct, &other_proto, &o),
	    0);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol(p.ct), &other_proto);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol_state(p.ct), &o);
	CU_ASSERT_EQUAL(aloop_transport_write(p.s->t, "12345", 5), 0);
	CU_ASSERT(WAIT_UNTIL(p.loop, o.nrecv == 5, 5.0));
	CU_ASSERT_EQUAL(p.c->nrecv, 0);
	/* Held, so that it can still be asked after connection_lost. */
	aloop_transport_ref(p.ct);
	aloop_transport_close(p.ct);
	CU_ASSERT(WAIT_UNTIL(p.loop, o.lost == 1, 5.0));
	CU_ASSERT_EQUAL(aloop_transport_set_protocol(p.ct, &rec_proto, p.c),
	    ALOOP_ESTATE);
	aloop_transport_release(p.ct);
	/* The recording protocol never saw the end: pair_close expects it. */
	p.c->lost = 1;
	pair_close(&p);
}

/* asyncio's connect_accepted_socket on one end of a socketpair. */
static void
test_connect_accepted_socket(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool pool = { 0 };
	struct aloop_transport *t = NULL;
	struct aloop_future *f;
	char buf[8];
	int sv[2], u;

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
	    0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_connect_accepted_socket(loop, &rec_proto,
	    rec_factory, &pool, sv[0], NULL, &f), 0);
	/* connection_made comes on a later turn. */
	CU_ASSERT_EQUAL(pool.n, 0);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&t), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(pool.r[0].made, 1);
	CU_ASSERT_EQUAL(write(sv[1], "ping", 4), 4);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].nrecv == 4, 5.0));
	CU_ASSERT_EQUAL(aloop_transport_write(t, "pong", 4), 0);
	CU_ASSERT_EQUAL(read(sv[1], buf, sizeof(buf)), 4);
	aloop_transport_close(t);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].lost == 1, 5.0));
	aloop_future_release(f);
	CU_ASSERT_EQUAL(pool.r[0].bad, 0);
	(void)close(sv[1]);

	/* Only stream sockets. */
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(u >= 0);
	CU_ASSERT_EQUAL(aloop_connect_accepted_socket(loop, &rec_proto,
	    rec_factory, &pool, u, NULL, &f), ALOOP_EINVAL);
	(void)close(u);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_echo_round_trip),
	TEST(test_close_flushes_large_buffer),
	TEST(test_abort_drops_buffer),
	TEST(test_flow_control_thresholds),
	TEST(test_write_buffer_limits),
	TEST(test_writelines_flow_control),
	TEST(test_half_close_keep_open),
	TEST(test_half_close_eof_closes),
	TEST(test_write_eof_after_buffer_drains),
	TEST(test_pause_resume_reading),
	TEST(test_connection_reset),
	TEST(test_reset_while_writing),
	TEST(test_close_inside_callbacks),
	TEST(test_abort_inside_data_received),
	TEST(test_writes_after_close),
	TEST(test_transport_sendfile),
	TEST(test_transport_sendfile_lost),
	TEST(test_set_protocol),
	TEST(test_connect_accepted_socket),
};

TEST_MAIN("stream", cases)
