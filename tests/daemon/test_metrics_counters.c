/*
 * aloopd's counters (the scoreboard and daemon/metrics.c's readers that
 * plugins use), plus the transport byte count they are fed from: series
 * by slot and name, walked in order, read consistently while a worker --
 * a thread or another process -- writes them, a dead worker's totals
 * kept, and the process figures following real descriptors.
 */
#include "config.h"

#include <sys/wait.h>

#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "metrics.h"
#include "scoreboard.h"
#include "runner.h"
#include "stream_util.h"

struct seen {
	char		 names[16][32];
	unsigned	 workers[16];
	uint64_t	 accepted[16];
	size_t		 n;
	size_t		 stop_at;	/* return 7 at this call, 0: never */
};

static int
collect(const struct aloop_metrics_listener *m, void *arg)
{
	struct seen *s = arg;

	CU_ASSERT(m->size >= sizeof(*m));
	if (s->n < 16) {
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s",
		    m->listener);
		s->workers[s->n] = m->worker;
		s->accepted[s->n] = m->connections_accepted;
	}
	s->n++;
	return s->stop_at != 0 && s->n == s->stop_at ? 7 : 0;
}

/* As collect, with the dropped connections where accepted went. */
static int
collect_dropped(const struct aloop_metrics_listener *m, void *arg)
{
	struct seen *s = arg;

	if (s->n < 16)
		s->accepted[s->n] = m->connections_dropped_descriptors;
	s->n++;
	return 0;
}

static void
test_sets(void)
{
	static const char *const ab[] = { "a", "b" }, *const a[] = { "a" };
	struct sb_worker *w0, *w1, *w0b;
	struct seen s;

	CU_ASSERT_EQUAL_FATAL(sb_open(), 0);
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL(aloop_daemon_metrics_listeners(NULL, NULL),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_daemon_metrics_listeners(collect, &s), 0);
	CU_ASSERT_EQUAL(s.n, 0);

	/* Slot 1 first: the walk still goes slot by slot. */
	w1 = sb_worker_new(1, 1, a, 1);
	w0 = sb_worker_new(0, 1, ab, 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w1);
	CU_ASSERT(w0 != w1);
	sb_add(&sb_counters(w0, 0)->v[SB_ACCEPTED], 3);
	sb_add(&sb_counters(w1, 0)->v[SB_ACCEPTED], 5);
	sb_add(&sb_counters(w0, 1)->v[SB_ACCEPTED], 1);
	sb_add(&sb_counters(w0, 1)->v[SB_ACCEPTED], 1);
	CU_ASSERT_EQUAL(aloop_daemon_metrics_listeners(collect, &s), 0);
	CU_ASSERT_EQUAL_FATAL(s.n, 3);
	CU_ASSERT_STRING_EQUAL(s.names[0], "a");
	CU_ASSERT_EQUAL(s.workers[0], 0);
	CU_ASSERT_EQUAL(s.accepted[0], 3);
	CU_ASSERT_STRING_EQUAL(s.names[1], "b");
	CU_ASSERT_EQUAL(s.workers[1], 0);
	CU_ASSERT_EQUAL(s.accepted[1], 2);
	CU_ASSERT_STRING_EQUAL(s.names[2], "a");
	CU_ASSERT_EQUAL(s.workers[2], 1);
	CU_ASSERT_EQUAL(s.accepted[2], 5);

	/*
	 * A second process on slot 0 (a new generation) adds to the same
	 * series, and what an old one held open counts against a quota.
	 */
	w0b = sb_worker_new(0, 2, a, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w0b);
	sb_add(&sb_counters(w0b, 0)->v[SB_ACCEPTED], 10);
	sb_add(&sb_counters(w0, 0)->v[SB_ACTIVE], 2);
	CU_ASSERT_EQUAL(sb_active_elsewhere(w0b, 0), 2);
	CU_ASSERT_EQUAL(sb_active_elsewhere(w0, 0), 0);
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL(aloop_daemon_metrics_listeners(collect, &s), 0);
	CU_ASSERT_EQUAL_FATAL(s.n, 3);
	CU_ASSERT_EQUAL(s.accepted[0], 13);

	/* A worker that dies keeps its totals; its open ones count closed. */
	sb_worker_free(w0);
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL(aloop_daemon_metrics_listeners(collect, &s), 0);
	CU_ASSERT_EQUAL_FATAL(s.n, 3);
	CU_ASSERT_EQUAL(s.accepted[0], 13);
	CU_ASSERT_EQUAL(s.accepted[1], 2);
	CU_ASSERT_EQUAL(sb_active_elsewhere(w0b, 0), 0);

	/* A nonzero return stops the walk and comes back. */
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	CU_ASSERT_EQUAL(aloop_daemon_metrics_listeners(collect, &s), 7);
	CU_ASSERT_EQUAL(s.n, 2);
	sb_worker_free(w0b);
	sb_worker_free(w1);
	sb_close();
}

/* ------------------------------------------ a worker writing, a reader */

#define ROUNDS	2000000

struct race {
	struct sb_counters	*m;
	_Atomic int		 done;
};

/* A worker's connections: each accepted, then closed. */
static void *
race_writer(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < ROUNDS; i++) {
		sb_add(&r->m->v[SB_ACCEPTED], 1);
		sb_add(&r->m->v[SB_ACTIVE], 1);
		sb_add(&r->m->v[SB_BYTES_IN], 10);
		sb_sub(&r->m->v[SB_ACTIVE], 1);
		sb_add(&r->m->v[SB_CLOSED], 1);
	}
	atomic_store(&r->done, 1);
	return NULL;
}

struct race_read {
	uint64_t	 last_closed, last_accepted;
	int		 bad;
};

static int
race_check(const struct aloop_metrics_listener *m, void *arg)
{
	struct race_read *rr = arg;

	/* Never more closed than accepted, and nothing goes backwards. */
	if (m->connections_closed > m->connections_accepted ||
	    m->connections_closed < rr->last_closed ||
	    m->connections_accepted < rr->last_accepted ||
	    m->connections_accepted > ROUNDS)
		rr->bad++;
	rr->last_closed = m->connections_closed;
	rr->last_accepted = m->connections_accepted;
	return 0;
}

static void
test_reader_while_writing(void)
{
	static const char *const names[] = { "race" };
	struct sb_worker *w;
	struct race r;
	struct race_read rr;
	pthread_t th;

	CU_ASSERT_EQUAL_FATAL(sb_open(), 0);
	memset(&rr, 0, sizeof(rr));
	w = sb_worker_new(3, 1, names, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	r.m = sb_counters(w, 0);
	atomic_init(&r.done, 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, race_writer, &r), 0);
	while (!atomic_load(&r.done))
		(void)aloop_daemon_metrics_listeners(race_check, &rr);
	CU_ASSERT_EQUAL(pthread_join(th, NULL), 0);
	(void)aloop_daemon_metrics_listeners(race_check, &rr);
	CU_ASSERT_EQUAL(rr.bad, 0);
	CU_ASSERT_EQUAL(rr.last_accepted, ROUNDS);
	CU_ASSERT_EQUAL(rr.last_closed, ROUNDS);
	CU_ASSERT_EQUAL(atomic_load(&r.m->v[SB_ACTIVE]), 0);
	CU_ASSERT_EQUAL(atomic_load(&r.m->v[SB_BYTES_IN]), 10ull * ROUNDS);
	sb_worker_free(w);
	sb_close();
}

/*
 * The point of the scoreboard: a worker process counts, another process
 * reads, and the totals of a worker that died stay, with no jump while
 * the master folds them.
 */
static void
test_across_processes(void)
{
	static const char *const names[] = { "x" };
	struct sb_worker *w;
	struct race_read rr;
	pid_t pid;
	int status;

	CU_ASSERT_EQUAL_FATAL(sb_open(), 0);
	w = sb_worker_new(0, 1, names, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct sb_counters *m = sb_counters(w, 0);

		for (int i = 0; i < ROUNDS - 1; i++) {
			sb_add(&m->v[SB_ACCEPTED], 1);
			sb_add(&m->v[SB_ACTIVE], 1);
			sb_sub(&m->v[SB_ACTIVE], 1);
			sb_add(&m->v[SB_CLOSED], 1);
		}
		sb_add(&m->v[SB_ACCEPTED], 1);	/* one left open */
		sb_add(&m->v[SB_ACTIVE], 1);
		_exit(0);
	}
	memset(&rr, 0, sizeof(rr));
	while (waitpid(pid, &status, WNOHANG) == 0)
		(void)aloop_daemon_metrics_listeners(race_check, &rr);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	(void)aloop_daemon_metrics_listeners(race_check, &rr);
	CU_ASSERT_EQUAL(rr.last_accepted, ROUNDS);
	CU_ASSERT_EQUAL(rr.last_closed, ROUNDS - 1);
	/* The master folds the dead worker: its open one counts closed. */
	sb_worker_free(w);
	(void)aloop_daemon_metrics_listeners(race_check, &rr);
	CU_ASSERT_EQUAL(rr.bad, 0);
	CU_ASSERT_EQUAL(rr.last_accepted, ROUNDS);
	CU_ASSERT_EQUAL(rr.last_closed, ROUNDS);
	sb_close();
}

/* -------------------------------------------- rate-limited reports */

/*
 * Several processes meeting the same condition make one report per
 * interval between them, and the report counts what every one added;
 * the dropped-connection counter reaches the metrics reader.
 */
static void
test_report_claim(void)
{
	static const char *const names[] = { "echo" };
	uint64_t count, since;
	struct sb_worker *w;
	struct seen s;
	int status, claims = 0, i, n;
	pid_t pid[4];

	CU_ASSERT_EQUAL_FATAL(sb_open(), 0);
	CU_ASSERT_EQUAL(sb_report_claim("echo", 3, 10000, &count, &since), 1);
	CU_ASSERT_EQUAL(count, 3);
	CU_ASSERT_EQUAL(since, 0);
	for (i = 0; i < 4; i++) {
		CU_ASSERT_FATAL((pid[i] = fork()) >= 0);
		if (pid[i] == 0) {
			n = 0;
			for (int k = 0; k < 100; k++)
				n += sb_report_claim("echo", 1, 10000, &count,
				    &since);
			_exit(n);
		}
	}
	for (i = 0; i < 4; i++) {
		CU_ASSERT(waitpid(pid[i], &status, 0) == pid[i]);
		CU_ASSERT(WIFEXITED(status));
		claims += WEXITSTATUS(status);
	}
	/* Within the interval nobody reports, and nothing is lost. */
	CU_ASSERT_EQUAL(claims, 0);
	usleep(20000);
	CU_ASSERT_EQUAL(sb_report_claim("echo", 1, 10, &count, &since), 1);
	CU_ASSERT_EQUAL(count, 401);
	CU_ASSERT(since >= 10);
	/* Another listener has its own limit. */
	CU_ASSERT_EQUAL(sb_report_claim("other", 2, 10000, &count, &since), 1);
	CU_ASSERT_EQUAL(count, 2);

	w = sb_worker_new(0, 1, names, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	sb_add(&sb_counters(w, 0)->v[SB_DROPPED_FDS], 5);
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL(aloop_daemon_metrics_listeners(collect_dropped, &s),
	    0);
	CU_ASSERT_EQUAL(s.accepted[0], 5);
	sb_worker_free(w);
	sb_close();
}

/* -------------------------------------------------- process figures */

static void
test_process(void)
{
	struct aloop_metrics_process p, q;
	size_t short_size;
	int fds[2];

	CU_ASSERT_EQUAL_FATAL(sb_open(), 0);
	memset(&p, 0, sizeof(p));
	CU_ASSERT_EQUAL(aloop_daemon_metrics_process(&p), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_daemon_metrics_process(NULL), ALOOP_EINVAL);

	p.size = sizeof(p);
	CU_ASSERT_EQUAL_FATAL(aloop_daemon_metrics_process(&p), 0);
	CU_ASSERT_EQUAL(p.size, sizeof(p));
	CU_ASSERT(p.start_time > 1.6e9);
	CU_ASSERT(p.uptime >= 0);
	CU_ASSERT(p.resident_bytes > 0);
	CU_ASSERT_EQUAL(p.open_fds, (uint64_t)count_fds());

	/* Two more descriptors show as two more. */
	CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC), 0);
	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	CU_ASSERT_EQUAL(aloop_daemon_metrics_process(&q), 0);
	CU_ASSERT_EQUAL(q.open_fds, p.open_fds + 2);
	CU_ASSERT(q.uptime >= p.uptime);
	CU_ASSERT_EQUAL(q.start_time, p.start_time);
	close(fds[0]);
	close(fds[1]);

	/* Reloads and restarts, as the master reports them. */
	metrics_reload(1);
	metrics_reload(1);
	metrics_reload(0);
	metrics_restart("signal");
	metrics_restart("stall");
	metrics_restart("stall");
	metrics_restart("exit");
	CU_ASSERT_EQUAL(aloop_daemon_metrics_process(&q), 0);
	CU_ASSERT_EQUAL(q.reloads, p.reloads + 2);
	CU_ASSERT_EQUAL(q.reload_failures, p.reload_failures + 1);
	CU_ASSERT_EQUAL(q.worker_restarts_signal, 1);
	CU_ASSERT_EQUAL(q.worker_restarts_stall, 2);
	CU_ASSERT_EQUAL(q.worker_restarts_exit, 1);

	/* A plugin built against an older, shorter struct gets only that. */
	short_size = offsetof(struct aloop_metrics_process, reloads);
	memset(&q, 0xa5, sizeof(q));
	q.size = short_size;
	CU_ASSERT_EQUAL(aloop_daemon_metrics_process(&q), 0);
	CU_ASSERT_EQUAL(q.size, short_size);
	CU_ASSERT_EQUAL(q.start_time, p.start_time);
	CU_ASSERT_EQUAL(q.reloads, 0xa5a5a5a5a5a5a5a5ull);
	sb_close();
}

/* ------------------------------------- the transport's bytes_written */

static uint64_t
written(struct aloop_transport *t)
{
	const uint64_t *n;
	size_t len;

	n = aloop_transport_get_extra_info(t, "bytes_written", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(n);
	CU_ASSERT_EQUAL(len, sizeof(uint64_t));
	return *n;
}

static void
test_bytes_written(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool spool, cpool;
	struct aloop_server *srv;
	struct aloop_transport *c, *s;
	struct iovec iov[2] = {
		{ (void *)"abc", 3 }, { (void *)"defg", 4 },
	};
	int port;

	memset(&spool, 0, sizeof(spool));
	memset(&cpool, 0, sizeof(cpool));
	spool.tmpl.echo = 1;
	srv = start_server(loop, &spool, "127.0.0.1", &port);
	c = connect_to(loop, &cpool, "127.0.0.1", port);
	CU_ASSERT_EQUAL(written(c), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(c, "hello", 5), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(c, "", 0), 0);
	CU_ASSERT_EQUAL(aloop_transport_writelines(c, iov, 2), 0);
	/* Counted as accepted, before any of it left. */
	CU_ASSERT_EQUAL(written(c), 12);
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, cpool.r[0].nrecv == 12, 10));
	CU_ASSERT_EQUAL_FATAL(spool.n, 1);
	s = spool.r[0].t;
	CU_ASSERT_EQUAL(written(s), 12);
	CU_ASSERT_EQUAL(memcmp(cpool.r[0].data, "helloabcdefg", 12), 0);

	/* Writes after close are dropped, and not counted. */
	aloop_transport_close(c);
	CU_ASSERT_EQUAL(aloop_transport_write(c, "zz", 2), 0);
	CU_ASSERT_EQUAL(written(c), 12);
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, cpool.r[0].lost &&
	    spool.r[0].lost, 10));
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_sets),
	TEST(test_reader_while_writing),
	TEST(test_across_processes),
	TEST(test_process),
	TEST(test_report_claim),
	TEST(test_bytes_written),
};

TEST_MAIN("metrics", cases)
