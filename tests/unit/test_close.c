/*
 * How a stream connection ends when the peer stops reading: an abort
 * resets at once, a graceful close waits for the kernel's send queue no
 * longer than the close timeout, and a closing loop does not wait at all.
 * Each case ends by looking for what the kernel might still hold for the
 * port (a socket in FIN_WAIT1 and its send queue, from /proc/net/tcp).
 */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <linux/sockios.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "stream_util.h"

#define BIG		(8 * 1024 * 1024)
#define SMALL		(64 * 1024)

/* /proc/net/tcp's code for FIN_WAIT1. */
#define PROC_FIN_WAIT1	4

/*
 * The sockets with local port @port in FIN_WAIT1, and (in *@queued) the
 * bytes their send queues hold: what an orphaned close leaves behind.
 */
static int
fin_wait1(int port, unsigned long *queued)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char line[512], local[64];
	unsigned long tx, rx;
	unsigned st, lport;
	size_t i;
	int n = 0;
	FILE *f;

	*queued = 0;
	for (i = 0; i < 2; i++) {
		if ((f = fopen(files[i], "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL) {
			if (sscanf(line, " %*d: %63s %*s %x %lx:%lx", local, &st,
			    &tx, &rx) != 4)
				continue;
			if (sscanf(strchr(local, ':') + 1, "%x", &lport) != 1 ||
			    (int)lport != port || st != PROC_FIN_WAIT1)
				continue;
			n++;
			*queued += tx;
		}
		fclose(f);
	}
	return n;
}

/* Nothing left for @port, after a bounded wait for the kernel to settle. */
static int
nothing_lingers(int port)
{
	unsigned long queued = 0;
	int i, n = 0;

	for (i = 0; i < 100; i++) {
		if ((n = fin_wait1(port, &queued)) == 0)
			return 1;
		usleep(10000);
	}
	fprintf(stderr, "\n    %d sockets in FIN_WAIT1 holding %lu bytes\n", n,
	    queued);
	return 0;
}

/* Read everything @fd has until it ends; the error it ended with, or 0. */
static int
drain_until_end(int fd, size_t *total)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	static char buf[65536];
	ssize_t n;

	*total = 0;
	for (;;) {
		if (poll(&pfd, 1, 5000) != 1)
			return -ETIMEDOUT;
		if ((n = read(fd, buf, sizeof(buf))) > 0) {
			*total += (size_t)n;
			continue;
		}
		return n == 0 ? 0 : -errno;
	}
}

/* A client that reads nothing, with a small window so the queue stays. */
static int
silent_client(int port)
{
	struct sockaddr_in sin;
	int fd, small = 4096;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sin,
	    sizeof(sin)) == 0);
	return fd;
}

struct fixture {
	struct aloop_loop	*loop;
	struct aloop_server	*srv;
	struct rec_pool		 sp;
	struct rec		*s;	/* the server's side */
	int			 port, client, fds;
};

static void
fixture_open(struct fixture *x, double close_timeout)
{
	struct aloop_server_options o;
	struct aloop_future *fut = NULL;
	const int *fd;

	memset(x, 0, sizeof(*x));
	x->fds = count_fds();
	x->loop = test_loop();
	aloop_server_options_init(&o);
	o.close_timeout = close_timeout;
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(x->loop, &rec_proto,
	    rec_factory, &x->sp, "127.0.0.1", "0", &o, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(x->loop, fut, (void **)&x->srv), 0);
	aloop_future_release(fut);
	fd = aloop_server_sockets(x->srv, &(size_t){ 0 });
	x->port = sock_port(fd[0]);
	x->client = silent_client(x->port);
	CU_ASSERT_FATAL(WAIT_UNTIL(x->loop, x->sp.n == 1 &&
	    x->sp.r[0].made == 1, 5.0));
	x->s = &x->sp.r[0];
	CU_ASSERT_EQUAL(aloop_transport_get_close_timeout(x->s->t),
	    close_timeout);
}

/* The bytes the kernel holds unacknowledged on the server's socket. */
static int
server_outq(struct fixture *x)
{
	const int *fd;
	int outq = 0;

	fd = aloop_transport_get_extra_info(x->s->t, "socket", NULL);
	if (fd == NULL || ioctl(*fd, SIOCOUTQ, &outq) == -1)
		return -1;
	return outq;
}

/*
 * Write @len bytes to the silent client and run until the transport's
 * buffer is empty and the kernel holds the rest (@len small enough), or
 * until the kernel is full (@len large).
 */
static void
fixture_fill(struct fixture *x, size_t len)
{
	unsigned char *buf = malloc(len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	memset(buf, 'z', len);
	CU_ASSERT_EQUAL(aloop_transport_write(x->s->t, buf, len), 0);
	free(buf);
	if (len <= SMALL) {
		CU_ASSERT(WAIT_UNTIL(x->loop,
		    aloop_transport_get_write_buffer_size(x->s->t) == 0, 5.0));
	} else
		run_for(x->loop, 0.05);
	CU_ASSERT(server_outq(x) > 0);
}

static void
fixture_close(struct fixture *x)
{
	if (x->client >= 0)
		close(x->client);
	aloop_server_close(x->srv);
	aloop_server_release(x->srv);
	CU_ASSERT_EQUAL(x->s->bad, 0);
	test_loop_done(x->loop);
	CU_ASSERT_EQUAL(count_fds(), x->fds);
}

static void
test_abort_resets(void)
{
	struct fixture x;
	size_t got;

	fixture_open(&x, 5.0);
	fixture_fill(&x, BIG);
	CU_ASSERT(aloop_transport_get_write_buffer_size(x.s->t) > 0);
	aloop_transport_abort(x.s->t);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.s->lost == 1, 5.0));
	CU_ASSERT_EQUAL(x.s->lost_code, 0);
	/* The peer sees a reset, and the kernel kept nothing to send. */
	CU_ASSERT(nothing_lingers(x.port));
	CU_ASSERT_EQUAL(drain_until_end(x.client, &got), -ECONNRESET);
	CU_ASSERT(got < (size_t)BIG);
	fixture_close(&x);
}

static void
test_abort_clients_resets(void)
{
	struct fixture x;
	size_t got;

	fixture_open(&x, 5.0);
	fixture_fill(&x, SMALL);
	aloop_server_abort_clients(x.srv);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.s->lost == 1, 5.0));
	CU_ASSERT(nothing_lingers(x.port));
	CU_ASSERT_EQUAL(drain_until_end(x.client, &got), -ECONNRESET);
	fixture_close(&x);
}

/* A peer that never takes the buffer: the flush ends at the deadline. */
static void
test_close_flush_bounded(void)
{
	struct fixture x;
	double t0, took;
	size_t got;

	fixture_open(&x, 0.3);
	fixture_fill(&x, BIG);
	t0 = now_mono();
	aloop_transport_close(x.s->t);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.s->lost == 1, 5.0));
	took = now_mono() - t0;
	fprintf(stderr, "\n    flush: connection_lost %.0f ms after close "
	    "(close_timeout 300 ms)\n", took * 1e3);
	CU_ASSERT(took >= 0.25 && took < 3.0);
	CU_ASSERT_EQUAL(x.s->lost_code, ALOOP_ETIMEDOUT);
	CU_ASSERT(nothing_lingers(x.port));
	CU_ASSERT_EQUAL(drain_until_end(x.client, &got), -ECONNRESET);
	fixture_close(&x);
}

/*
 * The buffer flushed into the kernel, the peer takes none of it: the
 * socket lingers (connection_lost waits), then is reset at the deadline.
 */
static void
test_close_linger_bounded(void)
{
	struct fixture x;
	double t0, took;
	size_t got;

	fixture_open(&x, 0.3);
	fixture_fill(&x, SMALL);
	t0 = now_mono();
	aloop_transport_close(x.s->t);
	run_for(x.loop, 0.1);
	CU_ASSERT_EQUAL(x.s->lost, 0);
	CU_ASSERT_EQUAL(aloop_server_connection_count(x.srv), 1);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.s->lost == 1, 5.0));
	took = now_mono() - t0;
	fprintf(stderr, "\n    linger: connection_lost %.0f ms after close "
	    "(close_timeout 300 ms)\n", took * 1e3);
	CU_ASSERT(took >= 0.25 && took < 3.0);
	CU_ASSERT_EQUAL(x.s->lost_code, ALOOP_ETIMEDOUT);
	CU_ASSERT_EQUAL(aloop_server_connection_count(x.srv), 0);
	CU_ASSERT(nothing_lingers(x.port));
	CU_ASSERT_EQUAL(drain_until_end(x.client, &got), -ECONNRESET);
	fixture_close(&x);
}

/*
 * A peer that reads slowly but steadily, for longer than the close
 * timeout, still gets every byte and a clean end: the bound is on a
 * stall, not on the whole transfer.
 */
static void
test_close_slow_reader_completes(void)
{
	struct fixture x;
	static char buf[16384];
	unsigned char *big;
	size_t got = 0, len = 256 * 1024;
	double t0;
	ssize_t n;

	fixture_open(&x, 0.3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big = malloc(len));
	memset(big, 's', len);
	CU_ASSERT_EQUAL(aloop_transport_write(x.s->t, big, len), 0);
	free(big);
	aloop_transport_close(x.s->t);
	(void)fcntl(x.client, F_SETFL, O_NONBLOCK);
	t0 = now_mono();
	while (now_mono() - t0 < 20) {
		run_for(x.loop, 0.02);
		if ((n = read(x.client, buf, sizeof(buf))) > 0)
			got += (size_t)n;
		else if (n == 0 || errno != EAGAIN)
			break;
		/* At most 16 KiB per 40 ms: several close_timeouts long. */
		usleep(20000);
	}
	fprintf(stderr, "\n    slow reader: %zu bytes in %.1f s, "
	    "close_timeout 0.3 s\n", got, now_mono() - t0);
	CU_ASSERT_EQUAL(got, len);
	CU_ASSERT(now_mono() - t0 > 0.6);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.s->lost == 1, 5.0));
	CU_ASSERT_EQUAL(x.s->lost_code, 0);
	CU_ASSERT(nothing_lingers(x.port));
	fixture_close(&x);
}

/* A peer that reads late but in time gets every byte and a clean end. */
static void
test_close_linger_delivers(void)
{
	struct fixture x;
	size_t got = 0;
	int rc;

	fixture_open(&x, 5.0);
	fixture_fill(&x, SMALL);
	aloop_transport_close(x.s->t);
	run_for(x.loop, 0.1);
	CU_ASSERT_EQUAL(x.s->lost, 0);
	/* Reading on this thread: the loop only has to notice the acks. */
	rc = drain_until_end(x.client, &got);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(got, (size_t)SMALL);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.s->lost == 1, 5.0));
	CU_ASSERT_EQUAL(x.s->lost_code, 0);
	CU_ASSERT(nothing_lingers(x.port));
	fixture_close(&x);
}

/* An abort while lingering resets at once. */
static void
test_abort_while_lingering(void)
{
	struct fixture x;
	size_t got;

	fixture_open(&x, 30.0);
	fixture_fill(&x, SMALL);
	aloop_transport_close(x.s->t);
	run_for(x.loop, 0.05);
	CU_ASSERT_EQUAL(x.s->lost, 0);
	aloop_server_abort_clients(x.srv);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.s->lost == 1, 1.0));
	CU_ASSERT_EQUAL(x.s->lost_code, 0);
	CU_ASSERT(nothing_lingers(x.port));
	CU_ASSERT_EQUAL(drain_until_end(x.client, &got), -ECONNRESET);
	fixture_close(&x);
}

/* Closing the loop does not wait for a lingering socket, nor leak it. */
static void
test_loop_close_while_lingering(void)
{
	struct fixture x;
	double t0, took;
	size_t got;

	fixture_open(&x, 30.0);
	fixture_fill(&x, SMALL);
	aloop_transport_close(x.s->t);
	run_for(x.loop, 0.05);
	CU_ASSERT_EQUAL(x.s->lost, 0);
	aloop_server_close(x.srv);
	aloop_server_release(x.srv);
	t0 = now_mono();
	CU_ASSERT_EQUAL(aloop_close(x.loop), 0);
	took = now_mono() - t0;
	fprintf(stderr, "\n    loop close with a lingering socket: %.1f ms\n",
	    took * 1e3);
	CU_ASSERT(took < 1.0);
	aloop_loop_free(x.loop);
	CU_ASSERT(nothing_lingers(x.port));
	CU_ASSERT_EQUAL(drain_until_end(x.client, &got), -ECONNRESET);
	close(x.client);
	CU_ASSERT_EQUAL(count_fds(), x.fds);
}

static void
test_close_timeout_argument(void)
{
	struct fixture x;
	struct aloop_server_options o;
	struct aloop_future *fut = NULL;

	fixture_open(&x, 5.0);
	CU_ASSERT_EQUAL(aloop_transport_set_close_timeout(x.s->t, -1),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_get_close_timeout(x.s->t), 5.0);
	CU_ASSERT_EQUAL(aloop_transport_set_close_timeout(x.s->t, 0.5), 0);
	CU_ASSERT_EQUAL(aloop_transport_get_close_timeout(x.s->t), 0.5);
	aloop_server_options_init(&o);
	CU_ASSERT_EQUAL(o.close_timeout, 5.0);
	o.close_timeout = -2;
	CU_ASSERT_EQUAL(aloop_create_server(x.loop, &rec_proto, rec_factory,
	    &x.sp, "127.0.0.1", "0", &o, &fut), ALOOP_EINVAL);
	aloop_transport_close(x.s->t);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.s->lost == 1, 5.0));
	fixture_close(&x);
}

static const struct test_case cases[] = {
	TEST(test_abort_resets),
	TEST(test_abort_clients_resets),
	TEST(test_close_flush_bounded),
	TEST(test_close_linger_bounded),
	TEST(test_close_linger_delivers),
	TEST(test_close_slow_reader_completes),
	TEST(test_abort_while_lingering),
	TEST(test_loop_close_while_lingering),
	TEST(test_close_timeout_argument),
};

TEST_MAIN("close", cases)
