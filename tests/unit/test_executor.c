/*
 * The executor: jobs run on pool threads and their outcome comes back on
 * the loop's thread; many jobs on a small pool; cancel before and after a
 * job starts; shutdown with and without waiting, also racing the loop's
 * close; the default pool and its size.
 */
#include "config.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "executor-int.h"
#include "loop-int.h"
#include "runner.h"

#define WATCHDOG_SECS	20.0

#include "loop-test.h"

static void
run_once(struct aloop_loop *loop)
{
	aloop_stop(loop);
	CU_ASSERT_EQUAL(aloop_run_forever(loop), 0);
}

/* Waits for a semaphore, bounded: a hang fails the test instead. */
static int
sem_wait_bounded(sem_t *sem)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)WATCHDOG_SECS;
	while (sem_timedwait(sem, &ts) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* Waits until no pool thread is left; threads of pools being shut down. */
static int
wait_no_pool_threads(void)
{
	struct timespec pause = { 0, 1000000 };
	int i;

	for (i = 0; i < (int)WATCHDOG_SECS * 1000; i++) {
		if (aloop__executor_live_threads() == 0)
			return 0;
		nanosleep(&pause, NULL);
	}
	return -1;
}

static atomic_int freed;

static void
count_free(void *p)
{
	atomic_fetch_add(&freed, 1);
	free(p);
}

/* ------------------------------------------------ result on loop thread */

static pthread_t job_thread;
static pthread_t done_thread;

static int
job_thread_id(void *arg, void **result)
{
	int *v;

	job_thread = pthread_self();
	if ((v = malloc(sizeof(*v))) == NULL)
		return ALOOP_ENOMEM;
	*v = *(int *)arg * 2;
	*result = v;
	return 0;
}

static void
note_done_thread(struct aloop_future *fut, void *arg)
{
	(void)fut;
	(void)arg;
	done_thread = pthread_self();
}

static void
test_result_on_loop_thread(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut = NULL;
	struct watchdog wd;
	void *res = NULL;
	int in = 21;

	loop = new_loop(&wd);
	atomic_store(&freed, 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, NULL, job_thread_id,
	    &in, count_free, &fut), 0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, note_done_thread,
	    NULL), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, fut, &res), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	CU_ASSERT_EQUAL(*(int *)res, 42);
	CU_ASSERT_FALSE(pthread_equal(job_thread, pthread_self()));
	/* The done-callback runs an iteration after completion. */
	run_once(loop);
	CU_ASSERT_TRUE(pthread_equal(done_thread, pthread_self()));
	CU_ASSERT_EQUAL(atomic_load(&freed), 0);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);
	free_loop(loop, &wd);
	/* The default pool went with the loop, its thread too. */
	CU_ASSERT_EQUAL(wait_no_pool_threads(), 0);
}

/* ------------------------------------------------------- errors, input */

static int
job_fails(void *arg, void **result)
{
	int *leftover;

	(void)arg;
	/* A failing job's result must not leak. */
	if ((leftover = malloc(sizeof(*leftover))) != NULL)
		*result = leftover;
	return -EIO;
}

static int
job_nothing(void *arg, void **result)
{
	(void)arg;
	(void)result;
	return 0;
}

static void
test_errors_propagate(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut = NULL;
	const struct aloop_error *err;
	struct watchdog wd;
	void *res = (void *)1;

	loop = new_loop(&wd);
	atomic_store(&freed, 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, NULL, job_fails,
	    NULL, count_free, &fut), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, fut, &res), -EIO);
	CU_ASSERT_PTR_NULL(res);
	err = aloop_future_error(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_EQUAL(err->code, -EIO);
	CU_ASSERT_STRING_EQUAL(err->message, aloop_strerror(-EIO));
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);
	aloop_future_release(fut);

	/* No result at all is a NULL result. */
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, NULL, job_nothing,
	    NULL, NULL, &fut), 0);
	res = (void *)1;
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, fut, &res), 0);
	CU_ASSERT_PTR_NULL(res);
	aloop_future_release(fut);

	CU_ASSERT_EQUAL(aloop_run_in_executor(loop, NULL, NULL, NULL, NULL,
	    &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_run_in_executor(loop, NULL, job_nothing, NULL,
	    NULL, NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_executor_new(1, NULL), ALOOP_EINVAL);
	aloop_handle_cancel(loop, wd.handle);
	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	fut = (void *)1;
	CU_ASSERT_EQUAL(aloop_run_in_executor(loop, NULL, job_nothing, NULL,
	    NULL, &fut), ALOOP_ESTATE);
	CU_ASSERT_PTR_NULL(fut);
	CU_ASSERT_EQUAL(aloop_set_default_executor(loop, NULL), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* ------------------------------------------------------- many, bounded */

#define MANY_JOBS	1000
#define MANY_WORKERS	4

static pthread_mutex_t seen_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_t seen[MANY_JOBS];
static int nseen;
static atomic_int running, max_running;
static int completed;

static int
job_many(void *arg, void **result)
{
	int i, now, max;

	now = atomic_fetch_add(&running, 1) + 1;
	max = atomic_load(&max_running);
	while (now > max &&
	    !atomic_compare_exchange_weak(&max_running, &max, now))
		;
	pthread_mutex_lock(&seen_mtx);
	for (i = 0; i < nseen; i++)
		if (pthread_equal(seen[i], pthread_self()))
			break;
	if (i == nseen)
		seen[nseen++] = pthread_self();
	pthread_mutex_unlock(&seen_mtx);
	*result = arg;
	atomic_fetch_sub(&running, 1);
	return 0;
}

static void
count_done(struct aloop_future *fut, void *arg)
{
	(void)fut;
	if (++completed == MANY_JOBS)
		aloop_stop(arg);
}

static void
test_many_jobs_few_threads(void)
{
	static struct aloop_future *futs[MANY_JOBS];
	static long values[MANY_JOBS];
	struct aloop_executor *ex = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;
	unsigned max, nthreads, nqueued;
	void *res;
	int i, ok;

	loop = new_loop(&wd);
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(MANY_WORKERS, &ex), 0);
	nseen = 0;
	completed = 0;
	atomic_store(&running, 0);
	atomic_store(&max_running, 0);
	for (i = 0; i < MANY_JOBS; i++) {
		values[i] = i;
		CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_many,
		    &values[i], NULL, &futs[i]), 0);
		CU_ASSERT_EQUAL(aloop_future_add_done_callback(futs[i],
		    count_done, loop), 0);
	}
	CU_ASSERT_EQUAL(aloop_run_forever(loop), 0);
	CU_ASSERT_FALSE(wd.fired);
	CU_ASSERT_EQUAL(completed, MANY_JOBS);
	for (i = 0, ok = 0; i < MANY_JOBS; i++) {
		if (aloop_future_result(futs[i], &res) == 0 &&
		    res == &values[i])
			ok++;
		aloop_future_release(futs[i]);
	}
	CU_ASSERT_EQUAL(ok, MANY_JOBS);
	aloop__executor_stats(ex, &max, &nthreads, &nqueued);
	CU_ASSERT_EQUAL(max, MANY_WORKERS);
	CU_ASSERT(nthreads >= 1 && nthreads <= MANY_WORKERS);
	CU_ASSERT_EQUAL(nqueued, 0);
	CU_ASSERT(nseen >= 1 && nseen <= MANY_WORKERS);
	CU_ASSERT(atomic_load(&max_running) <= MANY_WORKERS);
	aloop_executor_shutdown(ex, 1);
	free_loop(loop, &wd);
}

/* ---------------------------------------------------------------- FIFO */

static int order[16];
static atomic_int norder;

static int
job_order(void *arg, void **result)
{
	(void)result;
	order[atomic_fetch_add(&norder, 1)] = (int)(long)arg;
	return 0;
}

static void
test_single_thread_runs_in_order(void)
{
	struct aloop_future *futs[16];
	struct aloop_executor *ex = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;
	int i;

	loop = new_loop(&wd);
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(1, &ex), 0);
	atomic_store(&norder, 0);
	for (i = 0; i < 16; i++)
		CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex,
		    job_order, (void *)(long)i, NULL, &futs[i]), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, futs[15], NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&norder), 16);
	for (i = 0; i < 16; i++) {
		CU_ASSERT_EQUAL(order[i], i);
		/* Delivered in order: everything before the last is done. */
		CU_ASSERT_TRUE(aloop_future_done(futs[i]));
		aloop_future_release(futs[i]);
	}
	aloop_executor_shutdown(ex, 1);
	free_loop(loop, &wd);
}

/* ------------------------------------------------------------- cancel */

/* A job that says it started, then blocks until the test lets it go. */
static sem_t started, gate;
static atomic_int ran;

static int
job_gated(void *arg, void **result)
{
	int *v;

	(void)arg;
	atomic_fetch_add(&ran, 1);
	sem_post(&started);
	sem_wait_bounded(&gate);
	if ((v = malloc(sizeof(*v))) == NULL)
		return ALOOP_ENOMEM;
	*v = 7;
	*result = v;
	return 0;
}

static void
gates_init(void)
{
	CU_ASSERT_FATAL(sem_init(&started, 0, 0) == 0);
	CU_ASSERT_FATAL(sem_init(&gate, 0, 0) == 0);
	atomic_store(&ran, 0);
	atomic_store(&freed, 0);
}

static void
gates_destroy(void)
{
	sem_destroy(&started);
	sem_destroy(&gate);
}

static void
test_cancel_before_start(void)
{
	struct aloop_future *first = NULL, *second = NULL;
	struct aloop_executor *ex = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;
	unsigned nqueued;

	loop = new_loop(&wd);
	gates_init();
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(1, &ex), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_gated, NULL,
	    count_free, &first), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_gated, NULL,
	    count_free, &second), 0);
	/* The one thread is busy with the first: the second waits. */
	CU_ASSERT_EQUAL_FATAL(sem_wait_bounded(&started), 0);
	aloop__executor_stats(ex, NULL, NULL, &nqueued);
	CU_ASSERT_EQUAL(nqueued, 1);
	CU_ASSERT_EQUAL(aloop_future_cancel(second), 1);
	CU_ASSERT_TRUE(aloop_future_cancelled(second));
	CU_ASSERT_EQUAL(aloop_future_result(second, NULL), ALOOP_ECANCELLED);
	sem_post(&gate);
	sem_post(&gate);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, first, NULL), 0);
	/*
	 * Drain the pool.  The cancelled job still ran, as the header
	 * promises (its function may own its argument), and its result was
	 * freed since nobody can take it.
	 */
	aloop_executor_shutdown(ex, 1);
	CU_ASSERT_EQUAL(atomic_load(&ran), 2);
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);
	run_once(loop);
	CU_ASSERT_TRUE(aloop_future_cancelled(second));
	aloop_future_release(first);
	aloop_future_release(second);
	CU_ASSERT_EQUAL(atomic_load(&freed), 2);
	free_loop(loop, &wd);
	gates_destroy();
}

static void
test_cancel_while_running(void)
{
	struct aloop_future *fut = NULL;
	struct aloop_executor *ex = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;

	loop = new_loop(&wd);
	gates_init();
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(2, &ex), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_gated, NULL,
	    count_free, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(sem_wait_bounded(&started), 0);
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 1);
	sem_post(&gate);
	/* The job finishes; its result has nowhere to go and is freed. */
	aloop_executor_shutdown(ex, 1);
	CU_ASSERT_EQUAL(atomic_load(&ran), 1);
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);
	run_once(loop);
	run_once(loop);
	CU_ASSERT_TRUE(aloop_future_cancelled(fut));
	CU_ASSERT_EQUAL(aloop_future_result(fut, NULL), ALOOP_ECANCELLED);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);
	free_loop(loop, &wd);
	gates_destroy();
}

static void
test_cancel_after_finish_before_delivery(void)
{
	struct aloop_future *fut = NULL;
	struct aloop_executor *ex = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;

	loop = new_loop(&wd);
	gates_init();
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(1, &ex), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_gated, NULL,
	    count_free, &fut), 0);
	sem_post(&gate);
	/* After the join the outcome is queued on the loop, not yet run. */
	aloop_executor_shutdown(ex, 1);
	CU_ASSERT_EQUAL(atomic_load(&ran), 1);
	CU_ASSERT_FALSE(aloop_future_done(fut));
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 1);
	CU_ASSERT_EQUAL(atomic_load(&freed), 0);
	run_once(loop);
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);
	CU_ASSERT_TRUE(aloop_future_cancelled(fut));
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);
	free_loop(loop, &wd);
	gates_destroy();
}

/* ----------------------------------------------------------- shutdown */

static atomic_int finished;

static int
job_slow(void *arg, void **result)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	(void)arg;
	(void)result;
	nanosleep(&ts, NULL);
	atomic_fetch_add(&finished, 1);
	return 0;
}

static void
test_shutdown_wait_drains_queue(void)
{
	struct aloop_future *futs[6];
	struct aloop_executor *ex = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;
	int i;

	/* Earlier tests' pools, shut down without waiting, are gone. */
	CU_ASSERT_EQUAL_FATAL(wait_no_pool_threads(), 0);
	loop = new_loop(&wd);
	atomic_store(&finished, 0);
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(2, &ex), 0);
	for (i = 0; i < 6; i++)
		CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_slow,
		    NULL, NULL, &futs[i]), 0);
	aloop_executor_shutdown(ex, 1);
	/* Every queued job ran and every thread was joined. */
	CU_ASSERT_EQUAL(atomic_load(&finished), 6);
	CU_ASSERT_EQUAL(aloop__executor_live_threads(), 0);
	/* The outcomes still reach the loop. */
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, futs[5], NULL), 0);
	for (i = 0; i < 6; i++) {
		CU_ASSERT_TRUE(aloop_future_done(futs[i]));
		aloop_future_release(futs[i]);
	}
	free_loop(loop, &wd);
}

static void
test_shutdown_nowait_then_loop_close(void)
{
	struct aloop_future *fut = NULL, *queued = NULL;
	struct aloop_executor *ex = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;

	loop = new_loop(&wd);
	gates_init();
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(1, &ex), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_gated, NULL,
	    count_free, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_gated, NULL,
	    count_free, &queued), 0);
	CU_ASSERT_EQUAL_FATAL(sem_wait_bounded(&started), 0);
	/* Returns at once although a job runs and another waits. */
	aloop_executor_shutdown(ex, 0);
	CU_ASSERT_EQUAL(atomic_load(&freed), 0);

	/*
	 * The loop goes away while both jobs are in flight.  They still run
	 * to completion, but must not call into the freed loop: ASan would
	 * catch it.  Their results are freed instead.
	 */
	aloop_handle_cancel(loop, wd.handle);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_FALSE(aloop_future_done(fut));
	sem_post(&gate);
	sem_post(&gate);
	/* The pool frees itself with its last thread. */
	CU_ASSERT_EQUAL(wait_no_pool_threads(), 0);
	CU_ASSERT_EQUAL(atomic_load(&ran), 2);
	CU_ASSERT_EQUAL(atomic_load(&freed), 2);
	CU_ASSERT_FALSE(aloop_future_done(fut));
	CU_ASSERT_FALSE(aloop_future_done(queued));
	aloop_future_release(fut);
	aloop_future_release(queued);
	gates_destroy();
}

static void
test_close_with_delivery_queued(void)
{
	struct aloop_future *fut = NULL;
	struct aloop_executor *ex = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;

	loop = new_loop(&wd);
	gates_init();
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(1, &ex), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, ex, job_gated, NULL,
	    count_free, &fut), 0);
	sem_post(&gate);
	aloop_executor_shutdown(ex, 1);
	/* The outcome waits on the loop; the close discards it. */
	aloop_handle_cancel(loop, wd.handle);
	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	CU_ASSERT_EQUAL(atomic_load(&freed), 1);
	CU_ASSERT_FALSE(aloop_future_done(fut));
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	aloop_future_release(fut);
	gates_destroy();
}

/* ---------------------------------------------------- default executor */

static pthread_t default_threads[3];

static int
job_note_thread(void *arg, void **result)
{
	(void)result;
	default_threads[(long)arg] = pthread_self();
	return 0;
}

static void
test_default_executor_sizing(void)
{
	struct aloop_executor *ex = NULL, *def;
	struct aloop_future *fut = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;
	unsigned max, expect;
	long ncpu;

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	CU_ASSERT_FATAL(ncpu >= 1);
	expect = ncpu + 4 < 32 ? (unsigned)ncpu + 4 : 32;
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(0, &ex), 0);
	aloop__executor_stats(ex, &max, NULL, NULL);
	CU_ASSERT_EQUAL(max, expect);
	aloop_executor_shutdown(ex, 1);

	/* The loop's own pool is made on first use, with the same size. */
	loop = new_loop(&wd);
	CU_ASSERT_PTR_NULL(aloop__loop_executor(loop));
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, NULL, job_nothing,
	    NULL, NULL, &fut), 0);
	def = aloop__loop_executor(loop);
	CU_ASSERT_PTR_NOT_NULL_FATAL(def);
	aloop__executor_stats(def, &max, NULL, NULL);
	CU_ASSERT_EQUAL(max, expect);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, fut, NULL), 0);
	aloop_future_release(fut);
	free_loop(loop, &wd);
}

static void
test_set_default_executor(void)
{
	struct aloop_executor *one = NULL, *two = NULL;
	struct aloop_future *fut = NULL;
	struct aloop_loop *loop;
	struct watchdog wd;
	unsigned nthreads;
	long i;

	loop = new_loop(&wd);
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(1, &one), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(1, &two), 0);
	CU_ASSERT_EQUAL(aloop_set_default_executor(NULL, one), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_set_default_executor(loop, one), 0);
	CU_ASSERT_PTR_EQUAL(aloop__loop_executor(loop), one);
	for (i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, NULL,
		    job_note_thread, (void *)i, NULL, &fut), 0);
		CU_ASSERT_EQUAL(aloop_run_until_complete(loop, fut, NULL), 0);
		aloop_future_release(fut);
	}
	/* One pool of one thread ran all three. */
	aloop__executor_stats(one, NULL, &nthreads, NULL);
	CU_ASSERT_EQUAL(nthreads, 1);
	CU_ASSERT_TRUE(pthread_equal(default_threads[0], default_threads[1]));
	CU_ASSERT_TRUE(pthread_equal(default_threads[1], default_threads[2]));

	/* Replacing it shuts the first down; its thread goes. */
	CU_ASSERT_EQUAL(aloop_set_default_executor(loop, two), 0);
	CU_ASSERT_PTR_EQUAL(aloop__loop_executor(loop), two);
	CU_ASSERT_EQUAL(wait_no_pool_threads(), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, NULL,
	    job_note_thread, (void *)0, NULL, &fut), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, fut, NULL), 0);
	aloop_future_release(fut);
	aloop__executor_stats(two, NULL, &nthreads, NULL);
	CU_ASSERT_EQUAL(nthreads, 1);
	/* The loop's close shuts the one it owns down. */
	free_loop(loop, &wd);
	CU_ASSERT_EQUAL(wait_no_pool_threads(), 0);
}

static int
job_echo(void *arg, void **result)
{
	*result = arg;
	return 0;
}

/* One pool serves two loops; each outcome goes to its own loop. */
static void
test_pool_shared_by_two_loops(void)
{
	struct aloop_future *fa = NULL, *fb = NULL;
	struct aloop_executor *ex = NULL;
	struct aloop_loop *a, *b;
	struct watchdog wda, wdb;
	void *res = NULL;

	a = new_loop(&wda);
	b = new_loop(&wdb);
	CU_ASSERT_EQUAL_FATAL(aloop_executor_new(2, &ex), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(a, ex, job_echo, "a",
	    NULL, &fa), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(b, ex, job_echo, "b",
	    NULL, &fb), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(b, fb, &res), 0);
	CU_ASSERT_STRING_EQUAL(res, "b");
	CU_ASSERT_EQUAL(aloop_run_until_complete(a, fa, &res), 0);
	CU_ASSERT_STRING_EQUAL(res, "a");
	aloop_future_release(fa);
	aloop_future_release(fb);

	/* Closing one loop leaves the pool working for the other. */
	free_loop(a, &wda);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(b, ex, job_echo, "c",
	    NULL, &fb), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(b, fb, &res), 0);
	CU_ASSERT_STRING_EQUAL(res, "c");
	aloop_future_release(fb);
	aloop_executor_shutdown(ex, 1);
	free_loop(b, &wdb);
}

/* --------------------------------------- shutdown_default_executor */

static int
job_sleep_ms(void *arg, void **result)
{
	struct timespec ts = { 0, (long)(intptr_t)arg * 1000000L };

	(void)result;
	nanosleep(&ts, NULL);
	return 0;
}

/*
 * asyncio's shutdown_default_executor: the jobs finish, the threads are
 * joined, and the loop makes no new default pool after; with a timeout
 * shorter than a job, the wait ends first and the job still completes.
 */
static void
test_shutdown_default_executor(void)
{
	struct watchdog wd;
	struct aloop_loop *loop = new_loop(&wd);
	struct aloop_future *job, *f, *g;
	struct timespec ms = { 0, 1000000 };
	double t0;
	int i;

	/* No pool yet: done at once. */
	CU_ASSERT_EQUAL_FATAL(aloop_shutdown_default_executor(loop, 1.0, &f),
	    0);
	CU_ASSERT(aloop_future_done(f));
	aloop_future_release(f);
	CU_ASSERT_EQUAL(aloop_run_in_executor(loop, NULL, job_nothing, NULL,
	    NULL, &g), ALOOP_ESTATE);
	free_loop(loop, &wd);

	loop = new_loop(&wd);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, NULL, job_sleep_ms,
	    (void *)(intptr_t)50, NULL, &job), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_shutdown_default_executor(loop, 10.0,
	    &f), 0);
	CU_ASSERT_FALSE(aloop_future_done(f));
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, f, NULL), 0);
	/* The job ran to its end before the threads were joined. */
	run_once(loop);
	CU_ASSERT(aloop_future_done(job));
	CU_ASSERT_EQUAL(aloop_future_result(job, NULL), 0);
	aloop_future_release(job);
	aloop_future_release(f);
	CU_ASSERT_EQUAL(aloop_run_in_executor(loop, NULL, job_nothing, NULL,
	    NULL, &g), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_shutdown_default_executor(loop, 1.0, NULL),
	    ALOOP_EINVAL);
	free_loop(loop, &wd);

	/* The bound: a 400 ms job against a 50 ms timeout. */
	loop = new_loop(&wd);
	CU_ASSERT_EQUAL_FATAL(aloop_run_in_executor(loop, NULL, job_sleep_ms,
	    (void *)(intptr_t)400, NULL, &job), 0);
	t0 = aloop_time(loop);
	CU_ASSERT_EQUAL_FATAL(aloop_shutdown_default_executor(loop, 0.05,
	    &f), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, f, NULL), 0);
	CU_ASSERT(aloop_time(loop) - t0 < 0.35);
	CU_ASSERT_FALSE(aloop_future_done(job));
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, job, NULL), 0);
	aloop_future_release(job);
	aloop_future_release(f);
	/* Let the joining job deliver before the loop goes (bounded). */
	for (i = 0; i < 5000 && aloop__executor_live_threads() > 0; i++) {
		run_once(loop);
		nanosleep(&ms, NULL);
	}
	run_once(loop);
	free_loop(loop, &wd);
	CU_ASSERT_EQUAL(wait_no_pool_threads(), 0);
}

static const struct test_case cases[] = {
	TEST(test_result_on_loop_thread),
	TEST(test_shutdown_default_executor),
	TEST(test_errors_propagate),
	TEST(test_many_jobs_few_threads),
	TEST(test_single_thread_runs_in_order),
	TEST(test_cancel_before_start),
	TEST(test_cancel_while_running),
	TEST(test_cancel_after_finish_before_delivery),
	TEST(test_shutdown_wait_drains_queue),
	TEST(test_shutdown_nowait_then_loop_close),
	TEST(test_close_with_delivery_queued),
	TEST(test_default_executor_sizing),
	TEST(test_set_default_executor),
	TEST(test_pool_shared_by_two_loops),
};

TEST_MAIN("executor", cases)
