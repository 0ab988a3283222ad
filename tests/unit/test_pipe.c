/*
 * connect_read_pipe and connect_write_pipe over pipe2() pipes (SEMANTICS
 * items 46 and 47).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <termios.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "stream_util.h"

static struct aloop_transport *
connect_pipe(struct aloop_loop *loop, struct rec_pool *pool, int fd,
    int writer)
{
	struct aloop_transport *t = NULL;
	struct aloop_future *fut;

	CU_ASSERT_EQUAL_FATAL((writer ? aloop_connect_write_pipe :
	    aloop_connect_read_pipe)(loop, &rec_proto, rec_factory, pool, fd,
	    &fut), 0);
	/* connection_made comes on a later turn. */
	CU_ASSERT_EQUAL(pool->n, 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&t), 0);
	aloop_future_release(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	return t;
}

static void
test_read_pipe(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool pool = { 0 };
	struct aloop_transport *t;
	const int *pfd;
	int p[2];

	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	t = connect_pipe(loop, &pool, p[0], 0);
	CU_ASSERT_EQUAL(pool.r[0].made, 1);
	pfd = aloop_transport_get_extra_info(t, "pipe", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pfd);
	CU_ASSERT_EQUAL(*pfd, p[0]);
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(t, "peername",
	    NULL));
	CU_ASSERT(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	CU_ASSERT_FALSE(aloop_transport_can_write_eof(t));
	CU_ASSERT_EQUAL(aloop_transport_write(t, "x", 1), ALOOP_ENOTSUP);
	CU_ASSERT_EQUAL(write(p[1], "abc", 3), 3);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].nrecv == 3, 5.0));
	CU_ASSERT_EQUAL(memcmp(pool.r[0].data, "abc", 3), 0);
	/* pause/resume reading work on pipes too. */
	aloop_transport_pause_reading(t);
	CU_ASSERT_EQUAL(write(p[1], "de", 2), 2);
	run_for(loop, 0.02);
	CU_ASSERT_EQUAL(pool.r[0].nrecv, 3);
	aloop_transport_resume_reading(t);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].nrecv == 5, 5.0));
	/* The writer closes: eof_received, then connection_lost. */
	close(p[1]);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].lost == 1, 5.0));
	CU_ASSERT_EQUAL(pool.r[0].eofs, 1);
	CU_ASSERT_EQUAL(pool.r[0].lost_code, 0);
	CU_ASSERT_EQUAL(pool.r[0].bad, 0);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_write_pipe(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool pool = { 0 };
	struct aloop_transport *t;
	struct pollfd pf;
	char buf[16];
	int p[2];

	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	t = connect_pipe(loop, &pool, p[1], 1);
	CU_ASSERT(aloop_transport_can_write_eof(t));
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(t, "pipe",
	    NULL));
	CU_ASSERT_EQUAL(aloop_transport_write(t, "xyz", 3), 0);
	pf.fd = p[0];
	pf.events = POLLIN;
	CU_ASSERT_EQUAL(poll(&pf, 1, 5000), 1);
	CU_ASSERT_EQUAL(read(p[0], buf, sizeof(buf)), 3);
	CU_ASSERT_EQUAL(memcmp(buf, "xyz", 3), 0);
	/* The reader goes away: connection_lost, without a write. */
	close(p[0]);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].lost == 1, 5.0));
	CU_ASSERT_EQUAL(pool.r[0].lost_code, 0);
	CU_ASSERT_EQUAL(pool.r[0].bad, 0);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_write_pipe_flush_and_eof(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool pool = { 0 };
	struct aloop_transport *t;
	unsigned char *big, buf[65536];
	size_t got = 0;
	const size_t n = 1024 * 1024;
	ssize_t r;
	int p[2];

	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	t = connect_pipe(loop, &pool, p[1], 1);
	big = malloc(n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'p', n);
	CU_ASSERT_EQUAL(aloop_transport_write(t, big, n), 0);
	CU_ASSERT(aloop_transport_get_write_buffer_size(t) > 0);
	/* write_eof on a pipe closes it once everything is written. */
	CU_ASSERT_EQUAL(aloop_transport_write_eof(t), 0);
	while (got < n + 1 && pool.r[0].lost == 0) {
		r = read(p[0], buf, sizeof(buf));
		if (r > 0)
			got += (size_t)r;
		else
			run_for(loop, 0.001);
	}
	while ((r = read(p[0], buf, sizeof(buf))) > 0)
		got += (size_t)r;
	CU_ASSERT_EQUAL(got, n);
	CU_ASSERT_EQUAL(r, 0);	/* EOF: the transport closed its end */
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].lost == 1, 5.0));
	CU_ASSERT_EQUAL(pool.r[0].lost_code, 0);
	close(p[0]);
	free(big);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_write_pipe_broken(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool pool = { 0 };
	struct aloop_transport *t;
	unsigned char *big;
	const size_t n = 1024 * 1024;
	int p[2];

	/* Data buffered when the reader goes: lost with EPIPE. */
	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	t = connect_pipe(loop, &pool, p[1], 1);
	big = calloc(1, n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	CU_ASSERT_EQUAL(aloop_transport_write(t, big, n), 0);
	CU_ASSERT(aloop_transport_get_write_buffer_size(t) > 0);
	close(p[0]);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].lost == 1, 5.0));
	CU_ASSERT_EQUAL(pool.r[0].lost_code, -EPIPE);
	CU_ASSERT_EQUAL(pool.r[0].bad, 0);
	free(big);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_write_pipe_no_sigpipe(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool pool = { 0 };
	struct aloop_transport *t;
	void (*old)(int);
	int p[2];

	/*
	 * With SIGPIPE at its default (death), a write to a pipe whose
	 * reader is gone must end the transport with EPIPE, not the process.
	 */
	old = signal(SIGPIPE, SIG_DFL);
	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	t = connect_pipe(loop, &pool, p[1], 1);
	close(p[0]);
	CU_ASSERT_EQUAL(aloop_transport_write(t, "lost", 4), 0);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].lost == 1, 5.0));
	CU_ASSERT_EQUAL(pool.r[0].lost_code, -EPIPE);
	signal(SIGPIPE, old);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static int reports;

static int
count_reports(struct aloop_loop *loop, const struct aloop_context *ctx,
    void *arg)
{
	(void)loop;
	(void)ctx;
	(void)arg;
	reports++;
	return 0;
}

static void
test_read_pty(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool pool = { 0 };
	struct termios tio;
	int master, slave;

	/* A terminal's output through a read pipe transport (SEMANTICS 46). */
	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	CU_ASSERT_FATAL(master >= 0);
	CU_ASSERT_EQUAL_FATAL(grantpt(master), 0);
	CU_ASSERT_EQUAL_FATAL(unlockpt(master), 0);
	slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	CU_ASSERT_FATAL(slave >= 0);
	/* Raw output: the bytes arrive as written. */
	CU_ASSERT_EQUAL(tcgetattr(slave, &tio), 0);
	cfmakeraw(&tio);
	CU_ASSERT_EQUAL(tcsetattr(slave, TCSANOW, &tio), 0);
	reports = 0;
	aloop_set_exception_handler(loop, count_reports, NULL);
	(void)connect_pipe(loop, &pool, master, 0);
	CU_ASSERT_EQUAL(write(slave, "tty", 3), 3);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].nrecv == 3, 5.0));
	CU_ASSERT_EQUAL(memcmp(pool.r[0].data, "tty", 3), 0);
	/* Closing the terminal's side ends the transport (EOF or EIO). */
	close(slave);
	CU_ASSERT(WAIT_UNTIL(loop, pool.r[0].lost == 1, 5.0));
	CU_ASSERT(pool.r[0].lost_code == 0 || pool.r[0].lost_code == -EIO);
	/* Nothing worth an error report: the terminal just went away. */
	CU_ASSERT_EQUAL(reports, 0);
	CU_ASSERT_EQUAL(pool.r[0].bad, 0);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_pipe_arguments(void)
{
	struct aloop_loop *loop = test_loop();
	struct rec_pool pool = { 0 };
	struct aloop_future *fut;
	int p[2];

	CU_ASSERT_EQUAL(aloop_connect_read_pipe(loop, &rec_proto, rec_factory,
	    &pool, -1, &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_connect_read_pipe(loop, NULL, rec_factory,
	    &pool, 0, &fut), ALOOP_EINVAL);
	/* A refused factory fails the future and closes the descriptor. */
	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	pool.refuse = ALOOP_EPLUGIN;
	CU_ASSERT_EQUAL_FATAL(aloop_connect_read_pipe(loop, &rec_proto,
	    rec_factory, &pool, p[0], &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), ALOOP_EPLUGIN);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(fcntl(p[0], F_GETFD), -1);
	close(p[1]);
	test_loop_done(loop);
}

static const struct test_case cases[] = {
	TEST(test_read_pipe),
	TEST(test_write_pipe),
	TEST(test_write_pipe_flush_and_eof),
	TEST(test_write_pipe_broken),
	TEST(test_write_pipe_no_sigpipe),
	TEST(test_read_pty),
	TEST(test_pipe_arguments),
};

TEST_MAIN("pipe", cases)
