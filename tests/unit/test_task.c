/*
 * Tasks: awaiting results and errors, cancellation with cleanup, tasks
 * left suspended when the loop closes, nested awaits, gather, wait_for,
 * sleep, aloop_run, awaiting outside a task, and the stack's guard page;
 * after asyncio's test_tasks.py.
 */
#include "config.h"

#include <sys/wait.h>

#include <fcntl.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "loop-test.h"

static void
stop_cb(void *arg)
{
	aloop_stop(arg);
}

/* Run the loop for about @secs seconds. */
static void
run_for(struct aloop_loop *loop, double secs)
{
	CU_ASSERT(aloop_call_later(loop, secs, stop_cb, loop, NULL) == 0);
	CU_ASSERT(aloop_run_forever(loop) == 0);
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Run @fn as a task to its end; its code, *@res its result (borrowed). */
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

static void
complete_cb(void *arg)
{
	(void)aloop_future_set_result(arg, (void *)(uintptr_t)42, NULL);
}

static void
fail_cb(void *arg)
{
	(void)aloop_future_set_error(arg, -EPIPE, "the pipe broke");
}

struct ctx {
	struct aloop_loop	*loop;
	struct aloop_future	*fut;
	int			 rc, rc2;
	int			 cleanup;
	int			 ran;
	int			 step;
	double			 elapsed;
	void			*res;
};

/* --------------------------------------------------------- await */

static int
await_later(void *arg, void **result)
{
	struct ctx *c = arg;

	CU_ASSERT(aloop_current_task() != NULL);
	c->rc = aloop_await(c->fut, &c->res);
	*result = (void *)(uintptr_t)7;
	return 0;
}

static void
test_await_result(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };
	struct aloop_future *t;
	void *res;

	loop_fixture_setup(&f);
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT(aloop_call_later(f.loop, 0.01, complete_cb, c.fut, NULL) == 0);
	CU_ASSERT_FATAL(aloop_create_task(f.loop, await_later, &c, NULL,
	    &t) == 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, t, &res), 0);
	CU_ASSERT_EQUAL((uintptr_t)res, 7);
	CU_ASSERT_EQUAL(c.rc, 0);
	CU_ASSERT_EQUAL((uintptr_t)c.res, 42);
	aloop_future_release(t);
	aloop_future_release(c.fut);
	loop_fixture_teardown(&f);
}

static int
await_error(void *arg, void **result)
{
	struct ctx *c = arg;
	const struct aloop_error *e;

	(void)result;
	c->rc = aloop_await(c->fut, NULL);
	e = aloop_future_error(c->fut);
	CU_ASSERT(e != NULL && strcmp(e->message, "the pipe broke") == 0);
	return c->rc;
}

static void
test_await_error(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };

	loop_fixture_setup(&f);
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT(aloop_call_later(f.loop, 0.01, fail_cb, c.fut, NULL) == 0);
	/* The task's error becomes its future's. */
	CU_ASSERT_EQUAL(run_task(&f, await_error, &c), -EPIPE);
	CU_ASSERT_EQUAL(c.rc, -EPIPE);
	aloop_future_release(c.fut);
	loop_fixture_teardown(&f);
}

static void
mark_cb(void *arg)
{
	*(int *)arg = 1;
}

/* A done future returns at once: nothing else runs in between. */
static int
await_done(void *arg, void **result)
{
	struct ctx *c = arg;
	int flag = 0;

	(void)result;
	CU_ASSERT(aloop_call_soon(c->loop, mark_cb, &flag, NULL) == 0);
	c->rc = aloop_await(c->fut, &c->res);
	CU_ASSERT_EQUAL(flag, 0);
	/* sleep(0) does yield: the callback runs first. */
	CU_ASSERT_EQUAL(aloop_sleep(0), 0);
	CU_ASSERT_EQUAL(flag, 1);
	return 0;
}

static void
test_await_done_future(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };

	loop_fixture_setup(&f);
	c.loop = f.loop;
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT(aloop_future_set_result(c.fut, (void *)(uintptr_t)5,
	    NULL) == 0);
	CU_ASSERT_EQUAL(run_task(&f, await_done, &c), 0);
	CU_ASSERT_EQUAL(c.rc, 0);
	CU_ASSERT_EQUAL((uintptr_t)c.res, 5);
	aloop_future_release(c.fut);
	loop_fixture_teardown(&f);
}

static void
test_await_outside_task(void)
{
	struct loop_fixture f;
	struct aloop_future *fut;
	void *res = (void *)1;

	loop_fixture_setup(&f);
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_await(fut, &res), ALOOP_ESTATE);
	CU_ASSERT_PTR_NULL(res);
	CU_ASSERT_EQUAL(aloop_sleep(0.01), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_wait_for(fut, 1, NULL), ALOOP_ESTATE);
	CU_ASSERT_PTR_NULL(aloop_current_task());
	CU_ASSERT_FALSE(aloop_future_done(fut));
	aloop_future_release(fut);
	loop_fixture_teardown(&f);
}

/* Awaiting the executor: any future-returning call is awaitable. */
static int
job(void *arg, void **result)
{
	(void)arg;
	*result = (void *)(uintptr_t)99;
	return 0;
}

static int
await_executor(void *arg, void **result)
{
	struct ctx *c = arg;
	struct aloop_future *fut;
	int rc;

	(void)result;
	CU_ASSERT_FATAL(aloop_run_in_executor(c->loop, NULL, job, NULL, NULL,
	    &fut) == 0);
	rc = aloop_await(fut, &c->res);
	aloop_future_release(fut);
	return rc;
}

static void
test_await_executor(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };

	loop_fixture_setup(&f);
	c.loop = f.loop;
	CU_ASSERT_EQUAL(run_task(&f, await_executor, &c), 0);
	CU_ASSERT_EQUAL((uintptr_t)c.res, 99);
	loop_fixture_teardown(&f);
}

/* ---------------------------------------------------- cancellation */

static int
wait_forever(void *arg, void **result)
{
	struct ctx *c = arg;

	(void)result;
	c->ran = 1;
	c->rc = aloop_await(c->fut, NULL);
	c->cleanup = 1;		/* the cleanup after a failed await */
	/* Later awaits work again, as after a caught CancelledError. */
	c->rc2 = aloop_sleep(0.001);
	return c->rc;
}

static void
cancel_task_cb(void *arg)
{
	struct ctx *c = arg;

	CU_ASSERT_EQUAL(aloop_task_cancel(c->res), 1);
}

static void
test_cancel_while_awaiting(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };
	struct aloop_future *t;

	loop_fixture_setup(&f);
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT_FATAL(aloop_create_task(f.loop, wait_forever, &c, NULL,
	    &t) == 0);
	c.res = t;
	CU_ASSERT(aloop_call_later(f.loop, 0.01, cancel_task_cb, &c,
	    NULL) == 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, t, NULL),
	    ALOOP_ECANCELLED);
	CU_ASSERT(aloop_future_cancelled(t));
	CU_ASSERT_EQUAL(c.rc, ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(c.cleanup, 1);
	CU_ASSERT_EQUAL(c.rc2, 0);
	/* The awaited future was cancelled with the task, as in asyncio. */
	CU_ASSERT(aloop_future_cancelled(c.fut));
	/* Done: cancelling again is a no-op. */
	CU_ASSERT_EQUAL(aloop_task_cancel(t), 0);
	aloop_future_release(t);
	aloop_future_release(c.fut);
	loop_fixture_teardown(&f);
}

static void
test_cancel_before_start(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };
	struct aloop_future *t;

	loop_fixture_setup(&f);
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT_FATAL(aloop_create_task(f.loop, wait_forever, &c, NULL,
	    &t) == 0);
	CU_ASSERT_EQUAL(aloop_task_cancel(t), 1);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, t, NULL),
	    ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(c.ran, 0);
	CU_ASSERT_EQUAL(aloop_task_cancel(c.fut), ALOOP_EINVAL);
	aloop_future_release(t);
	aloop_future_release(c.fut);
	loop_fixture_teardown(&f);
}

/* aloop_future_cancel on a task's future cancels the task too. */
static void
test_future_cancel_cancels_task(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };
	struct aloop_future *t;

	loop_fixture_setup(&f);
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT_FATAL(aloop_create_task(f.loop, wait_forever, &c, NULL,
	    &t) == 0);
	run_for(f.loop, 0.005);
	CU_ASSERT_EQUAL(c.ran, 1);
	CU_ASSERT_EQUAL(aloop_future_cancel(t), 1);
	CU_ASSERT(aloop_future_cancelled(t));
	/* The cleanup still runs, on later turns. */
	CU_ASSERT_EQUAL(c.cleanup, 0);
	run_for(f.loop, 0.05);
	CU_ASSERT_EQUAL(c.rc2, 0);
	CU_ASSERT_EQUAL(c.rc, ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(c.cleanup, 1);
	aloop_future_release(t);
	aloop_future_release(c.fut);
	loop_fixture_teardown(&f);
}

/* A task that cancels itself: its next await fails, once. */
static int
self_cancel(void *arg, void **result)
{
	struct ctx *c = arg;

	(void)result;
	CU_ASSERT_EQUAL(aloop_task_cancel(aloop_current_task()), 1);
	c->rc = aloop_sleep(0);
	c->rc2 = aloop_sleep(0);
	return 0;
}

static void
test_self_cancel(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };

	loop_fixture_setup(&f);
	/* It chose to go on: its future completes normally. */
	CU_ASSERT_EQUAL(run_task(&f, self_cancel, &c), 0);
	CU_ASSERT_EQUAL(c.rc, ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(c.rc2, 0);
	loop_fixture_teardown(&f);
}

/* -------------------------------------------------------- nesting */

static int
inner(void *arg, void **result)
{
	struct ctx *c = arg;
	int rc;

	c->step++;
	if ((rc = aloop_sleep(0.01)) != 0) {
		c->cleanup++;
		return rc;
	}
	*result = (void *)(uintptr_t)123;
	return 0;
}

static int
outer(void *arg, void **result)
{
	struct ctx *c = arg;
	struct aloop_future *t;
	void *res;
	int rc;

	CU_ASSERT_FATAL(aloop_create_task(c->loop, inner, c, NULL, &t) == 0);
	c->fut = t;
	rc = aloop_await(t, &res);
	if (rc == 0)
		*result = (void *)((uintptr_t)res + 1);
	else
		c->cleanup++;
	aloop_future_release(t);
	return rc;
}

static void
test_nested_await(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };
	struct aloop_future *t;
	void *res;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	CU_ASSERT_FATAL(aloop_create_task(f.loop, outer, &c, NULL, &t) == 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, t, &res), 0);
	CU_ASSERT_EQUAL((uintptr_t)res, 124);
	aloop_future_release(t);
	loop_fixture_teardown(&f);
}

static void
cancel_outer_cb(void *arg)
{
	CU_ASSERT_EQUAL(aloop_task_cancel(arg), 1);
}

/* Cancelling the outer task cancels the inner one it awaits. */
static void
test_nested_cancel(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };
	struct aloop_future *t;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	CU_ASSERT_FATAL(aloop_create_task(f.loop, outer, &c, NULL, &t) == 0);
	CU_ASSERT(aloop_call_later(f.loop, 0.002, cancel_outer_cb, t,
	    NULL) == 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, t, NULL),
	    ALOOP_ECANCELLED);
	/* Both ran their cleanup. */
	CU_ASSERT_EQUAL(c.cleanup, 2);
	aloop_future_release(t);
	loop_fixture_teardown(&f);
}

/* --------------------------------------------------------- gather */

struct sleeper {
	double	delay;
	int	rc;
	int	cancelled;
};

static int
sleeper(void *arg, void **result)
{
	struct sleeper *s = arg;
	int rc;

	if ((rc = aloop_sleep(s->delay)) != 0) {
		s->cancelled = 1;
		return rc;
	}
	*result = s;
	return s->rc;
}

static void
test_gather(void)
{
	struct loop_fixture f;
	struct sleeper s[3] = { { 0.03, 0, 0 }, { 0.01, 0, 0 }, { 0.02, 0, 0 } };
	struct aloop_future *t[3], *g;
	void *res;
	double t0;

	loop_fixture_setup(&f);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_FATAL(aloop_create_task(f.loop, sleeper, &s[i], NULL,
		    &t[i]) == 0);
	CU_ASSERT_FATAL(aloop_gather(f.loop, t, 3, &g) == 0);
	t0 = aloop_time(f.loop);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, g, NULL), 0);
	CU_ASSERT(aloop_time(f.loop) - t0 >= 0.029);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(aloop_future_result(t[i], &res), 0);
		CU_ASSERT_PTR_EQUAL(res, &s[i]);
		aloop_future_release(t[i]);
	}
	aloop_future_release(g);

	/* Nothing to gather: done at once. */
	CU_ASSERT_FATAL(aloop_gather(f.loop, NULL, 0, &g) == 0);
	CU_ASSERT(aloop_future_done(g));
	aloop_future_release(g);
	loop_fixture_teardown(&f);
}

static void
test_gather_error_and_cancel(void)
{
	struct loop_fixture f;
	struct sleeper s[2] = { { 0.01, -EIO, 0 }, { 5, 0, 0 } };
	struct aloop_future *t[2], *g;

	loop_fixture_setup(&f);
	for (int i = 0; i < 2; i++)
		CU_ASSERT_FATAL(aloop_create_task(f.loop, sleeper, &s[i], NULL,
		    &t[i]) == 0);
	CU_ASSERT_FATAL(aloop_gather(f.loop, t, 2, &g) == 0);
	/* The first failure fails the gather; the other goes on. */
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, g, NULL), -EIO);
	CU_ASSERT_FALSE(aloop_future_done(t[1]));
	aloop_future_release(g);

	/* Cancelling a gather cancels what it waits for. */
	CU_ASSERT_FATAL(aloop_gather(f.loop, &t[1], 1, &g) == 0);
	CU_ASSERT_EQUAL(aloop_future_cancel(g), 1);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, t[1], NULL),
	    ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(s[1].cancelled, 1);
	aloop_future_release(g);
	for (int i = 0; i < 2; i++)
		aloop_future_release(t[i]);
	loop_fixture_teardown(&f);
}

/* ------------------------------------------------- wait_for, sleep */

static int
wait_for_task(void *arg, void **result)
{
	struct ctx *c = arg;
	double t0 = aloop_time(c->loop);

	(void)result;
	c->rc = aloop_wait_for(c->fut, 0.05, &c->res);
	c->elapsed = aloop_time(c->loop) - t0;
	return 0;
}

static void
test_wait_for_timeout(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };

	loop_fixture_setup(&f);
	c.loop = f.loop;
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT_EQUAL(run_task(&f, wait_for_task, &c), 0);
	CU_ASSERT_EQUAL(c.rc, ALOOP_ETIMEDOUT);
	CU_ASSERT(c.elapsed >= 0.049);
	CU_ASSERT(aloop_future_cancelled(c.fut));
	aloop_future_release(c.fut);

	/* In time: the result. */
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT(aloop_call_later(f.loop, 0.005, complete_cb, c.fut,
	    NULL) == 0);
	CU_ASSERT_EQUAL(run_task(&f, wait_for_task, &c), 0);
	CU_ASSERT_EQUAL(c.rc, 0);
	CU_ASSERT_EQUAL((uintptr_t)c.res, 42);
	/* No bound from above: a loaded machine may run both timers late. */
	aloop_future_release(c.fut);
	loop_fixture_teardown(&f);
}

static int
wait_for_zero(void *arg, void **result)
{
	struct ctx *c = arg;

	(void)result;
	c->rc = aloop_wait_for(c->fut, 0, NULL);
	return 0;
}

static void
test_wait_for_zero(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };

	loop_fixture_setup(&f);
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT_EQUAL(run_task(&f, wait_for_zero, &c), 0);
	CU_ASSERT_EQUAL(c.rc, ALOOP_ETIMEDOUT);
	CU_ASSERT(aloop_future_cancelled(c.fut));
	aloop_future_release(c.fut);
	loop_fixture_teardown(&f);
}

static int
sleep_task(void *arg, void **result)
{
	struct ctx *c = arg;
	static const double delays[] = { 0.07, 0.01, 1e-4, 1e-6 };

	(void)result;
	for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		double t0 = now_mono();

		CU_ASSERT_EQUAL(aloop_sleep(delays[i]), 0);
		/* Never early, by the monotonic clock itself. */
		CU_ASSERT(now_mono() - t0 >= delays[i] - 1e-3);
		if (i == 0)
			c->elapsed = now_mono() - t0;
	}
	return 0;
}

static void
test_sleep_never_early(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };

	loop_fixture_setup(&f);
	CU_ASSERT_EQUAL(run_task(&f, sleep_task, &c), 0);
	CU_ASSERT(c.elapsed >= 0.069);
	CU_ASSERT(c.elapsed < 1.0);
	loop_fixture_teardown(&f);
}

/* ------------------------------------------ the loop closes on tasks */

static int
sleep_long(void *arg, void **result)
{
	struct ctx *c = arg;
	char *mem = malloc(100);	/* freed by the cleanup, or leaked */

	(void)result;
	c->ran++;
	c->rc = aloop_sleep(30);
	/* Later awaits fail at once too: the loop is going. */
	c->rc2 = aloop_sleep(30);
	free(mem);
	c->cleanup++;
	return c->rc;
}

static int
await_long(void *arg, void **result)
{
	struct ctx *c = arg;
	char *mem = malloc(100);

	(void)result;
	c->ran++;
	c->step = aloop_await(c->fut, NULL);
	free(mem);
	c->cleanup++;
	return 0;
}

static void
test_close_cancels_suspended(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 }, never = { 0 };
	struct aloop_future *t[3];

	loop_fixture_setup(&f);
	CU_ASSERT_FATAL(aloop_future_new(f.loop, &c.fut) == 0);
	CU_ASSERT_FATAL(aloop_create_task(f.loop, sleep_long, &c, NULL,
	    &t[0]) == 0);
	CU_ASSERT_FATAL(aloop_create_task(f.loop, await_long, &c, NULL,
	    &t[1]) == 0);
	run_for(f.loop, 0.02);
	CU_ASSERT_EQUAL(c.ran, 2);
	/* This one never starts. */
	CU_ASSERT_FATAL(aloop_create_task(f.loop, sleep_long, &never, NULL,
	    &t[2]) == 0);
	watchdog_disarm(&f.wd);
	CU_ASSERT_EQUAL(aloop_close(f.loop), 0);
	CU_ASSERT_EQUAL(c.cleanup, 2);
	CU_ASSERT_EQUAL(c.rc, ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(c.rc2, ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(c.step, ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(never.ran, 0);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT(aloop_future_done(t[i]));
		aloop_future_release(t[i]);
	}
	CU_ASSERT(aloop_future_cancelled(c.fut));
	aloop_future_release(c.fut);
	/* No new task on a closed loop. */
	CU_ASSERT_EQUAL(aloop_create_task(f.loop, sleep_long, &c, NULL,
	    &t[0]), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_loop_free(f.loop), 0);
	CU_ASSERT_EQUAL(count_fds(), f.fds);
}

/* A task can neither run nor close its loop, not even in its cleanup. */
static int
close_inside(void *arg, void **result)
{
	struct ctx *c = arg;
	struct aloop_future *fut;

	(void)result;
	CU_ASSERT_EQUAL(aloop_close(c->loop), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_run_forever(c->loop), ALOOP_ESTATE);
	CU_ASSERT_FATAL(aloop_future_new(c->loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(c->loop, fut, NULL),
	    ALOOP_ESTATE);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(aloop_run(self_cancel, c, NULL, NULL), ALOOP_ESTATE);
	c->ran = 1;
	if (aloop_sleep(30) == ALOOP_ECANCELLED) {
		c->rc = aloop_close(c->loop);
		c->rc2 = aloop_run_forever(c->loop);
		c->cleanup = 1;
	}
	return 0;
}

static void
test_close_from_task(void)
{
	struct loop_fixture f;
	struct ctx c = { 0 };
	struct aloop_future *t;

	loop_fixture_setup(&f);
	c.loop = f.loop;
	CU_ASSERT_FATAL(aloop_create_task(f.loop, close_inside, &c, NULL,
	    &t) == 0);
	run_for(f.loop, 0.01);
	CU_ASSERT_EQUAL(c.ran, 1);
	watchdog_disarm(&f.wd);
	CU_ASSERT_EQUAL(aloop_close(f.loop), 0);
	CU_ASSERT_EQUAL(c.cleanup, 1);
	CU_ASSERT_EQUAL(c.rc, ALOOP_ESTATE);
	CU_ASSERT_EQUAL(c.rc2, ALOOP_ESTATE);
	aloop_future_release(t);
	CU_ASSERT_EQUAL(aloop_loop_free(f.loop), 0);
	CU_ASSERT_EQUAL(count_fds(), f.fds);
}

/* Many tasks in turn: stacks are reused, nothing is left. */
static int
yielder(void *arg, void **result)
{
	int *n = arg;

	(void)result;
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(aloop_sleep(0), 0);
	(*n)++;
	return 0;
}

static void
test_many_tasks(void)
{
	struct loop_fixture f;
	struct aloop_future *t[500], *g;
	struct aloop_task_options o;
	int n = 0;

	loop_fixture_setup(&f);
	aloop_task_options_init(&o);
	for (int i = 0; i < 500; i++) {
		/* Some with a stack size of their own. */
		o.stack_size = i % 3 == 0 ? 64 * 1024 : 0;
		CU_ASSERT_FATAL(aloop_create_task(f.loop, yielder, &n, &o,
		    &t[i]) == 0);
	}
	CU_ASSERT_FATAL(aloop_gather(f.loop, t, 500, &g) == 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(f.loop, g, NULL), 0);
	CU_ASSERT_EQUAL(n, 500);
	aloop_future_release(g);
	for (int i = 0; i < 500; i++)
		aloop_future_release(t[i]);
	loop_fixture_teardown(&f);
}

/* ----------------------------------------------------------- run */

static int
leftover(void *arg, void **result)
{
	struct ctx *c = arg;

	(void)result;
	c->rc = aloop_sleep(30);
	/* The cleanup may still await: the loop runs until it is done. */
	c->rc2 = aloop_sleep(0.001);
	c->cleanup = 1;
	return c->rc;
}

static int
main_task(void *arg, void **result)
{
	struct ctx *c = arg;
	struct aloop_future *t;
	int *v;

	CU_ASSERT_FATAL(aloop_create_task(aloop_get_running_loop(), leftover,
	    c, NULL, &t) == 0);
	aloop_future_release(t);
	CU_ASSERT_EQUAL(aloop_sleep(0.005), 0);
	if ((v = malloc(sizeof(*v))) == NULL)
		return ALOOP_ENOMEM;
	*v = 31;
	*result = v;
	return 0;
}

static int
failing_main(void *arg, void **result)
{
	(void)arg;
	(void)result;
	return -EIO;
}

static void
test_run(void)
{
	struct ctx c = { 0 };
	int fds = count_fds();
	void *res = NULL;

	CU_ASSERT_EQUAL(aloop_run(main_task, &c, NULL, &res), 0);
	CU_ASSERT_FATAL(res != NULL);
	CU_ASSERT_EQUAL(*(int *)res, 31);
	free(res);
	CU_ASSERT_EQUAL(c.rc, ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(c.rc2, 0);
	CU_ASSERT_EQUAL(c.cleanup, 1);
	CU_ASSERT_EQUAL(aloop_run(failing_main, NULL, NULL, NULL), -EIO);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* ----------------------------------------------------- the guard page */

static volatile int depth_sink;
/* Never 0: the compiler cannot tell the recursion has no end. */
static volatile int depth_limit = 1 << 30;

static int __attribute__((noinline))
recurse(int n)
{
	volatile char frame[512];

	frame[0] = (char)n;
	frame[sizeof(frame) - 1] = (char)n;
	if (n >= depth_limit)
		return 0;
	return recurse(n + 1) + frame[0] + frame[sizeof(frame) - 1];
}

static int
overflow(void *arg, void **result)
{
	(void)arg;
	(void)result;
	depth_sink = recurse(0);
	return 0;
}

static void
test_stack_overflow_hits_guard(void)
{
	struct aloop_task_options o;
	pid_t pid;
	int status = 0;

	aloop_task_options_init(&o);
	o.stack_size = 32 * 1024;
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/* The expected crash report would only clutter the log. */
		int devnull = open("/dev/null", O_WRONLY);

		if (devnull >= 0)
			(void)dup2(devnull, STDERR_FILENO);
		alarm(10);
		(void)aloop_run(overflow, NULL, &o, NULL);
		_exit(0);	/* not reached */
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
#ifdef ALOOP_SANITIZERS
	/* ASan catches the SIGSEGV itself, reports and exits non-zero. */
	CU_ASSERT((WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) ||
	    (WIFEXITED(status) && WEXITSTATUS(status) != 0));
#else
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
#endif
}

static const struct test_case cases[] = {
	TEST(test_await_result),
	TEST(test_await_error),
	TEST(test_await_done_future),
	TEST(test_await_outside_task),
	TEST(test_await_executor),
	TEST(test_cancel_while_awaiting),
	TEST(test_cancel_before_start),
	TEST(test_future_cancel_cancels_task),
	TEST(test_self_cancel),
	TEST(test_nested_await),
	TEST(test_nested_cancel),
	TEST(test_gather),
	TEST(test_gather_error_and_cancel),
	TEST(test_wait_for_timeout),
	TEST(test_wait_for_zero),
	TEST(test_sleep_never_early),
	TEST(test_close_cancels_suspended),
	TEST(test_close_from_task),
	TEST(test_many_tasks),
	TEST(test_run),
	TEST(test_stack_overflow_hits_guard),
};

TEST_MAIN("task", cases)
