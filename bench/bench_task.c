/*
 * Tasks against their references, in one run: a task suspending and
 * resuming through the loop (aloop_sleep(0): one call_soon and two stack
 * switches per pair), a task awaiting futures that are already done (no
 * suspension, as in asyncio), two ucontexts ping-ponging with
 * swapcontext(3), and a plain call_soon chain.  Prints each rate.
 *
 * Usage: bench_task [scale]
 *   scale multiplies the iteration counts (0.1 for a short pass).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

#include <aloop/aloop.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
die(const char *what)
{
	fprintf(stderr, "bench_task: %s failed\n", what);
	exit(1);
}

static double
run_task(aloop_task_fn fn, void *arg)
{
	struct aloop_loop *loop;
	struct aloop_future *fut;
	double t0, t;

	if (aloop_loop_new(&loop) != 0)
		die("aloop_loop_new");
	if (aloop_create_task(loop, fn, arg, NULL, &fut) != 0)
		die("aloop_create_task");
	t0 = now();
	if (aloop_run_until_complete(loop, fut, NULL) != 0)
		die("the task");
	t = now() - t0;
	aloop_future_release(fut);
	aloop_loop_free(loop);
	return t;
}

/* ---------------------------------------------- suspend and resume */

static int
yield_task(void *arg, void **result)
{
	long n = *(long *)arg;

	(void)result;
	for (long i = 0; i < n; i++)
		if (aloop_sleep(0) != 0)
			return -1;
	return 0;
}

/* -------------------------------------------------- done futures */

struct await_arg {
	long			 n;
	struct aloop_future	*fut;
};

static int
await_task(void *arg, void **result)
{
	struct await_arg *a = arg;
	void *res;

	(void)result;
	for (long i = 0; i < a->n; i++)
		if (aloop_await(a->fut, &res) != 0)
			return -1;
	return 0;
}

static double
bench_await_done(long n)
{
	struct aloop_loop *loop;
	struct aloop_future *fut, *t;
	struct await_arg a;
	double t0, el;

	if (aloop_loop_new(&loop) != 0 || aloop_future_new(loop, &fut) != 0)
		die("setup");
	(void)aloop_future_set_result(fut, NULL, NULL);
	a.n = n;
	a.fut = fut;
	if (aloop_create_task(loop, await_task, &a, NULL, &t) != 0)
		die("aloop_create_task");
	t0 = now();
	if (aloop_run_until_complete(loop, t, NULL) != 0)
		die("the task");
	el = now() - t0;
	aloop_future_release(t);
	aloop_future_release(fut);
	aloop_loop_free(loop);
	return el;
}

/* ------------------------------------------------------ swapcontext */

static ucontext_t uc_main, uc_co;
static long uc_n;

static void
uc_body(void)
{
	for (;;)
		if (swapcontext(&uc_co, &uc_main) != 0)
			die("swapcontext");
}

static double
bench_swapcontext(long n)
{
	static char stack[64 * 1024];
	double t0;

	if (getcontext(&uc_co) != 0)
		die("getcontext");
	uc_co.uc_stack.ss_sp = stack;
	uc_co.uc_stack.ss_size = sizeof(stack);
	uc_co.uc_link = NULL;
	makecontext(&uc_co, uc_body, 0);
	uc_n = n;
	t0 = now();
	for (long i = 0; i < uc_n; i++)
		if (swapcontext(&uc_main, &uc_co) != 0)
			die("swapcontext");
	return now() - t0;
}

/* -------------------------------------------------- call_soon chain */

struct chain {
	struct aloop_loop	*loop;
	long			 left;
};

static void
chain_cb(void *arg)
{
	struct chain *c = arg;

	if (--c->left > 0)
		(void)aloop_call_soon(c->loop, chain_cb, c, NULL);
	else
		aloop_stop(c->loop);
}

static double
bench_call_soon(long n)
{
	struct chain c;
	double t0;

	if (aloop_loop_new(&c.loop) != 0)
		die("aloop_loop_new");
	c.left = n;
	(void)aloop_call_soon(c.loop, chain_cb, &c, NULL);
	t0 = now();
	(void)aloop_run_forever(c.loop);
	t0 = now() - t0;
	aloop_loop_free(c.loop);
	return t0;
}

static void
report(const char *what, long n, double secs)
{
	printf("%-40s %12.0f/s  (%ld in %.3f s)\n", what, (double)n / secs,
	    n, secs);
}

int
main(int argc, char **argv)
{
	double scale = argc > 1 ? atof(argv[1]) : 1.0;
	long n;

	if (!(scale > 0)) {
		fprintf(stderr, "usage: bench_task [scale]\n");
		return 2;
	}
	n = (long)(20e6 * scale);
	printf("bench_task: aloop %s, %ld iterations per row\n",
	    aloop_version(), n);
	report("task suspend/resume pairs (sleep 0)", n, run_task(yield_task,
	    &n));
	report("task awaits of done futures", n, bench_await_done(n));
	/* A system call per switch: a tenth of the work keeps it short. */
	report("swapcontext pairs", n / 10, bench_swapcontext(n / 10));
	report("call_soon chain", n, bench_call_soon(n));
	return 0;
}
