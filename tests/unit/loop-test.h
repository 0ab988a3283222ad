/*
 * Helpers every unit test shares: a watchdog that stops a loop that would
 * otherwise hang (or cancels the future a test waits for), and a count of
 * open descriptors to prove that a closed loop left nothing open.
 */
#ifndef ALOOP_LOOP_TEST_H
#define ALOOP_LOOP_TEST_H

#include <dirent.h>
#include <time.h>

#include <aloop/future.h>
#include <aloop/loop.h>

#include "runner.h"

/* Generous: only a broken loop ever gets there.  A test may set its own. */
#ifndef WATCHDOG_SECS
#define WATCHDOG_SECS	10.0
#endif

struct watchdog {
	struct aloop_loop	*loop;
	aloop_handle_t		 handle;
	int			 fired;
};

static inline void
watchdog_cb(void *arg)
{
	struct watchdog *wd = arg;

	wd->fired = 1;
	aloop_stop(wd->loop);
}

static inline void
watchdog_arm(struct watchdog *wd, struct aloop_loop *loop)
{
	wd->loop = loop;
	wd->fired = 0;
	CU_ASSERT_FATAL(aloop_call_later(loop, WATCHDOG_SECS, watchdog_cb, wd,
	    &wd->handle) == 0);
}

static inline void
watchdog_disarm(struct watchdog *wd)
{
	CU_ASSERT(!wd->fired);
	aloop_handle_cancel(wd->loop, wd->handle);
}

/* A new loop with @wd armed on it. */
static inline struct aloop_loop *
new_loop(struct watchdog *wd)
{
	struct aloop_loop *loop = NULL;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	watchdog_arm(wd, loop);
	return loop;
}

/* Disarm @wd (the test fails if it fired) and free @loop. */
static inline void
free_loop(struct aloop_loop *loop, struct watchdog *wd)
{
	watchdog_disarm(wd);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static inline void
future_watchdog_cb(void *arg)
{
	(void)aloop_future_cancel(arg);
}

/*
 * Run @loop until @f is done, for @secs seconds at most: then @f is
 * cancelled and the test fails.  @f's outcome, its result in *@result.
 */
static inline int
run_bounded(struct aloop_loop *loop, struct aloop_future *f, void **result,
    double secs)
{
	aloop_handle_t h;
	int rc;

	CU_ASSERT_EQUAL_FATAL(aloop_call_later(loop, secs, future_watchdog_cb,
	    f, &h), 0);
	rc = aloop_run_until_complete(loop, f, result);
	aloop_handle_cancel(loop, h);
	CU_ASSERT_NOT_EQUAL(rc, ALOOP_ECANCELLED);
	return rc;
}

/* Open descriptors of this process, from /proc/self/fd. */
static inline int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

/*
 * count_fds(), once it is @want or @secs have passed: a thread a closed
 * loop left to finish on its own (a name lookup, detached) may hold a
 * socket for a moment after the loop is gone.
 */
static inline int
count_fds_settled(int want, double secs)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	int n;

	for (double waited = 0; (n = count_fds()) != want && waited < secs;
	    waited += 0.01)
		nanosleep(&pause, NULL);
	return n;
}

/*
 * A loop with a watchdog armed on it, and the descriptors open before it,
 * which teardown finds again: what most loop tests start and end with.
 */
struct loop_fixture {
	struct aloop_loop	*loop;
	struct watchdog		 wd;
	int			 fds;
};

static inline void
loop_fixture_setup(struct loop_fixture *f)
{
	f->fds = count_fds();
	CU_ASSERT_FATAL(aloop_loop_new(&f->loop) == 0);
	watchdog_arm(&f->wd, f->loop);
}

static inline void
loop_fixture_teardown(struct loop_fixture *f)
{
	watchdog_disarm(&f->wd);
	CU_ASSERT_EQUAL(aloop_loop_free(f->loop), 0);
	CU_ASSERT_EQUAL(count_fds(), f->fds);
}

#endif /* ALOOP_LOOP_TEST_H */
