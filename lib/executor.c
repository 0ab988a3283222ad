/*
 * The executor: a pool of threads for blocking work, as asyncio's
 * ThreadPoolExecutor, and run_in_executor, which hands a job to a pool and
 * completes a future with its outcome back on the loop's thread.
 *
 * A job is shared by two sides.  The worker side belongs to the pool from
 * submission until the job has run; it passes to the delivery call when the
 * outcome is sent to the loop with call_soon_threadsafe.  The loop side
 * belongs to the loop's thread while the job sits on its loop's list of
 * jobs in flight; it holds the future.  Delivery, a cancel and the loop's
 * close each end the loop side; the job is freed when both sides are done.
 * The per-loop record (struct exec_loop) is the liveness token: its mutex
 * guards the job list and the sides, and once it says closed no job calls
 * into the loop again.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/future.h>
#include <aloop/log.h>
#include <aloop/loop.h>

#include "executor-int.h"
#include "future-int.h"
#include "loop-int.h"

/* asyncio's default: min(32, os.cpu_count() + 4). */
#define EXECUTOR_DEFAULT_CAP	32
#define EXECUTOR_DEFAULT_EXTRA	4

struct exec_loop;

enum job_state {
	JOB_QUEUED,		/* waiting in the pool's queue */
	JOB_RUNNING,		/* a pool thread runs fn */
	JOB_DELIVERING,		/* outcome sent with call_soon_threadsafe */
	JOB_STRANDED		/* finished, but could not be sent */
};

struct job {
	struct job		*qnext;		/* the pool's queue */
	struct job		*prev, *next;	/* the loop's jobs in flight */
	struct exec_loop	*el;		/* a reference */
	struct aloop_future	*fut;		/* loop side: a reference */
	aloop_executor_fn	 fn;
	void			*arg;
	aloop_free_fn		 free_result;
	void			*result;	/* owned until handed to fut */
	int			 rc;
	/* Under el->mtx: */
	enum job_state		 state;
	int			 detached;	/* loop side done */
	int			 sides;		/* 2, 1, 0: then freed */
};

/*
 * What the executor keeps per loop.  Found through a small registry keyed
 * by the loop's address; the entry leaves the registry when the loop
 * closes, so a later loop at the same address starts afresh.
 */
struct exec_loop {
	struct aloop__resource	 res;		/* tracked on the loop */
	struct exec_loop	*rnext;		/* the registry */
	struct aloop_loop	*loop;		/* never used once closed */
	pthread_mutex_t		 mtx;
	/* Under mtx: */
	unsigned long		 refs;		/* the loop's + one per job */
	int			 closed;
	struct job		*jobs;		/* loop sides in flight */
};

struct worker {
	pthread_t		 tid;
	struct worker		*next;
};

struct aloop_executor {
	pthread_mutex_t		 mtx;
	pthread_cond_t		 work;		/* a job queued, or shutdown */
	unsigned		 max_workers;
	/* Under mtx: */
	unsigned		 nthreads;
	unsigned		 nidle;		/* waiting on work */
	unsigned		 nqueued;
	struct job		*qhead, *qtail;
	struct worker		*workers;	/* threads to join */
	int			 shutdown;
	unsigned long		 refs;		/* the owner's + one per thread */
};

static pthread_mutex_t registry_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct exec_loop *registry;

/* Pool threads alive in the process, for aloop__executor_live_threads. */
static atomic_uint live_threads;

#define EXEC_LOOP_OF(r) \
	((struct exec_loop *)((char *)(r) - offsetof(struct exec_loop, res)))

/*
 * pthread functions report errors as return values; a failure of lock or
 * unlock on a mutex we initialised means memory corruption, and going on
 * would only make it worse.
 */
static void
lock(pthread_mutex_t *m)
{
	int rc;

	if ((rc = pthread_mutex_lock(m)) != 0) {
		aloop_log(ALOOP_LOG_ERR, "pthread_mutex_lock: %s", strerror(rc));
		abort();
	}
}

static void
unlock(pthread_mutex_t *m)
{
	int rc;

	if ((rc = pthread_mutex_unlock(m)) != 0) {
		aloop_log(ALOOP_LOG_ERR, "pthread_mutex_unlock: %s",
		    strerror(rc));
		abort();
	}
}

/* ------------------------------------------------------------ the pool */

static void
executor_destroy(struct aloop_executor *ex)
{
	assert(ex->nthreads == 0 && ex->qhead == NULL);
	pthread_cond_destroy(&ex->work);
	pthread_mutex_destroy(&ex->mtx);
	free(ex);
}

static void job_run(struct job *job);

static void *
executor_worker(void *arg)
{
	struct aloop_executor *ex = arg;
	struct job *job;
	int last;

	lock(&ex->mtx);
	for (;;) {
		while (ex->qhead == NULL && !ex->shutdown) {
			ex->nidle++;
			pthread_cond_wait(&ex->work, &ex->mtx);
			ex->nidle--;
		}
		/* After a shutdown the queue is still drained first. */
		if ((job = ex->qhead) == NULL)
			break;
		if ((ex->qhead = job->qnext) == NULL)
			ex->qtail = NULL;
		job->qnext = NULL;
		ex->nqueued--;
		unlock(&ex->mtx);
		job_run(job);
		lock(&ex->mtx);
	}
	ex->nthreads--;
	last = --ex->refs == 0;
	unlock(&ex->mtx);
	/* Only a pool shut down without waiting is freed by its last thread. */
	if (last)
		executor_destroy(ex);
	atomic_fetch_sub(&live_threads, 1);
	return NULL;
}

/* Start one more pool thread.  Called with ex->mtx held. */
static int
executor_spawn(struct aloop_executor *ex)
{
	struct worker *w;
	sigset_t all, old;
	int rc, rc2;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return ALOOP_ENOMEM;
	/*
	 * Pool threads block every signal, so that a signal meant for the
	 * loop (SIGINT, SIGCHLD, ...) is never delivered to a thread that
	 * is busy with somebody's blocking work.  The mask is inherited.
	 */
	sigfillset(&all);
	if ((rc = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0) {
		free(w);
		return -rc;
	}
	rc = pthread_create(&w->tid, NULL, executor_worker, ex);
	if ((rc2 = pthread_sigmask(SIG_SETMASK, &old, NULL)) != 0)
		aloop_log(ALOOP_LOG_ERR, "pthread_sigmask: %s", strerror(rc2));
	if (rc != 0) {
		free(w);
		return -rc;
	}
	atomic_fetch_add(&live_threads, 1);
	w->next = ex->workers;
	ex->workers = w;
	ex->nthreads++;
	ex->refs++;
	return 0;
}

/* Queue @job, starting a thread when none is idle for it.  Any thread. */
static int
executor_submit(struct aloop_executor *ex, struct job *job)
{
	int rc;

	lock(&ex->mtx);
	if (ex->shutdown) {
		unlock(&ex->mtx);
		return ALOOP_ESTATE;
	}
	job->qnext = NULL;
	if (ex->qtail != NULL)
		ex->qtail->qnext = job;
	else
		ex->qhead = job;
	ex->qtail = job;
	ex->nqueued++;
	/*
	 * An idle thread that was signalled but has not woken yet still
	 * counts as idle while its job still counts as queued, so comparing
	 * the two spawns exactly when no sleeper is left for this job.
	 */
	if (ex->nqueued > ex->nidle && ex->nthreads < ex->max_workers &&
	    (rc = executor_spawn(ex)) != 0) {
		if (ex->nthreads == 0) {
			/*
			 * No thread will ever run it.  With no thread, no
			 * earlier job can be queued: each one failed here.
			 */
			assert(ex->qhead == job);
			ex->qhead = ex->qtail = NULL;
			ex->nqueued--;
			unlock(&ex->mtx);
			return rc;
		}
		aloop_log(ALOOP_LOG_WARNING, "executor: cannot start a "
		    "thread, %u running: %s", ex->nthreads,
		    aloop_strerror(rc));
	}
	pthread_cond_signal(&ex->work);
	unlock(&ex->mtx);
	return 0;
}

int
aloop_executor_new(unsigned max_workers, struct aloop_executor **exp)
{
	struct aloop_executor *ex;
	long ncpu;
	int rc;

	if (exp == NULL)
		return ALOOP_EINVAL;
	*exp = NULL;
	if (max_workers == 0) {
		if ((ncpu = sysconf(_SC_NPROCESSORS_ONLN)) < 1)
			ncpu = 1;
		if (ncpu > EXECUTOR_DEFAULT_CAP - EXECUTOR_DEFAULT_EXTRA)
			ncpu = EXECUTOR_DEFAULT_CAP - EXECUTOR_DEFAULT_EXTRA;
		max_workers = (unsigned)ncpu + EXECUTOR_DEFAULT_EXTRA;
	}
	if ((ex = calloc(1, sizeof(*ex))) == NULL)
		return ALOOP_ENOMEM;
	if ((rc = pthread_mutex_init(&ex->mtx, NULL)) != 0) {
		free(ex);
		return -rc;
	}
	if ((rc = pthread_cond_init(&ex->work, NULL)) != 0) {
		pthread_mutex_destroy(&ex->mtx);
		free(ex);
		return -rc;
	}
	ex->max_workers = max_workers;
	ex->refs = 1;
	*exp = ex;
	return 0;
}

void
aloop_executor_shutdown(struct aloop_executor *ex, int wait)
{
	struct worker *w, *next;
	int rc, last;

	if (ex == NULL)
		return;
	lock(&ex->mtx);
	assert(!ex->shutdown);
	ex->shutdown = 1;
	pthread_cond_broadcast(&ex->work);
	w = ex->workers;
	ex->workers = NULL;
	if (!wait) {
		/* The threads free the pool; nobody will join them. */
		for (; w != NULL; w = next) {
			next = w->next;
			if ((rc = pthread_detach(w->tid)) != 0)
				aloop_log(ALOOP_LOG_ERR, "pthread_detach: %s",
				    strerror(rc));
			free(w);
		}
		last = --ex->refs == 0;
		unlock(&ex->mtx);
		if (last)
			executor_destroy(ex);
		return;
	}
	/* No thread starts after shutdown, so the list is complete. */
	unlock(&ex->mtx);
	for (; w != NULL; w = next) {
		next = w->next;
		if ((rc = pthread_join(w->tid, NULL)) != 0)
			aloop_log(ALOOP_LOG_ERR, "pthread_join: %s",
			    strerror(rc));
		free(w);
	}
	lock(&ex->mtx);
	last = --ex->refs == 0;
	unlock(&ex->mtx);
	if (last)
		executor_destroy(ex);
}

void
aloop__executor_stats(struct aloop_executor *ex, unsigned *max_workers,
    unsigned *nthreads, unsigned *nqueued)
{
	lock(&ex->mtx);
	if (max_workers != NULL)
		*max_workers = ex->max_workers;
	if (nthreads != NULL)
		*nthreads = ex->nthreads;
	if (nqueued != NULL)
		*nqueued = ex->nqueued;
	unlock(&ex->mtx);
}

unsigned
aloop__executor_live_threads(void)
{
	return atomic_load(&live_threads);
}

/* --------------------------------------------------- the per-loop record */

static void
exec_loop_unref(struct exec_loop *el)
{
	int last;

	lock(&el->mtx);
	last = --el->refs == 0;
	unlock(&el->mtx);
	if (last) {
		assert(el->jobs == NULL);
		pthread_mutex_destroy(&el->mtx);
		free(el);
	}
}

static void
job_free(struct job *job)
{
	assert(job->fut == NULL && job->sides == 0);
	if (job->result != NULL && job->free_result != NULL)
		job->free_result(job->result);
	exec_loop_unref(job->el);
	free(job);
}

static void
exec_loop_unlink(struct exec_loop *el, struct job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		el->jobs = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	job->prev = job->next = NULL;
}

/*
 * The loop is closing.  From now on no job may call into it: mark the
 * token closed and end the loop side of every job in flight (their futures
 * are released: they will never complete).  The loop itself shuts its
 * default pool down afterwards, through the shutdown function we gave it.
 */
static void
exec_loop_on_close(struct aloop__resource *res)
{
	struct exec_loop *el = EXEC_LOOP_OF(res), **pp;
	struct aloop_future *fut;
	struct job *job, *next;
	int sides, last;

	lock(&registry_mtx);
	for (pp = &registry; *pp != NULL; pp = &(*pp)->rnext)
		if (*pp == el) {
			*pp = el->rnext;
			break;
		}
	unlock(&registry_mtx);

	lock(&el->mtx);
	el->closed = 1;
	job = el->jobs;
	el->jobs = NULL;
	for (next = job; next != NULL; next = next->next)
		next->detached = 1;
	unlock(&el->mtx);

	/*
	 * Our loop side keeps each job alive until we drop it, so the list
	 * can be walked without the lock; workers no longer touch it.
	 */
	for (; job != NULL; job = next) {
		next = job->next;
		job->prev = job->next = NULL;
		fut = job->fut;
		job->fut = NULL;
		aloop__future_set_cancel_hook(fut, NULL, NULL);
		aloop_future_release(fut);
		lock(&el->mtx);
		/* A delivery that was queued on the loop will never run. */
		sides = job->state == JOB_DELIVERING ? 2 : 1;
		job->sides -= sides;
		last = job->sides == 0;
		unlock(&el->mtx);
		if (last)
			job_free(job);
	}

	exec_loop_unref(el);
}

/* The record for @loop, made on first use.  The loop's thread. */
static int
exec_loop_get(struct aloop_loop *loop, struct exec_loop **elp)
{
	struct exec_loop *el;
	int rc;

	lock(&registry_mtx);
	for (el = registry; el != NULL; el = el->rnext)
		if (el->loop == loop)
			break;
	if (el == NULL) {
		if ((el = calloc(1, sizeof(*el))) == NULL) {
			unlock(&registry_mtx);
			return ALOOP_ENOMEM;
		}
		if ((rc = pthread_mutex_init(&el->mtx, NULL)) != 0) {
			unlock(&registry_mtx);
			free(el);
			return -rc;
		}
		el->loop = loop;
		el->refs = 1;
		el->res.on_loop_close = exec_loop_on_close;
		el->rnext = registry;
		registry = el;
		aloop__loop_track(loop, &el->res);
	}
	unlock(&registry_mtx);
	*elp = el;
	return 0;
}

/* What the loop calls when it closes or replaces its default pool. */
static void
executor_shutdown_nowait(struct aloop_executor *ex)
{
	aloop_executor_shutdown(ex, 0);
}

/* ---------------------------------------------------------------- jobs */

/*
 * The delivery call, on the loop's thread: complete the future with the
 * job's outcome, unless a cancel ended the loop side meanwhile.
 */
static void
job_deliver(void *arg)
{
	struct job *job = arg;
	struct exec_loop *el = job->el;
	struct aloop_future *fut;
	int last;

	lock(&el->mtx);
	if (job->detached) {
		last = --job->sides == 0;
		unlock(&el->mtx);
		if (last)
			job_free(job);
		return;
	}
	exec_loop_unlink(el, job);
	job->detached = 1;
	job->sides = 0;
	unlock(&el->mtx);

	fut = job->fut;
	job->fut = NULL;
	aloop__future_set_cancel_hook(fut, NULL, NULL);
	if (job->rc < 0)
		aloop_future_set_error(fut, job->rc, NULL);
	else if (aloop_future_set_result(fut, job->result,
	    job->free_result) == 0)
		job->result = NULL;
	/* Otherwise somebody completed the future: job_free drops it. */
	aloop_future_release(fut);
	job_free(job);
}

/*
 * The future was cancelled (the loop's thread, inside aloop_future_cancel):
 * end the loop side now.  The job still runs, or finishes, and its result
 * is freed.
 */
static void
job_on_cancel(struct aloop_future *fut, void *arg)
{
	struct job *job = arg;
	struct exec_loop *el = job->el;
	int last;

	lock(&el->mtx);
	exec_loop_unlink(el, job);
	job->detached = 1;
	job->fut = NULL;
	last = --job->sides == 0;
	unlock(&el->mtx);
	aloop_future_release(fut);
	if (last)
		job_free(job);
}

/* A pool thread runs @job and sends the outcome to the loop. */
static void
job_run(struct job *job)
{
	struct exec_loop *el = job->el;
	void *result = NULL;
	int rc, last;

	/*
	 * Every job accepted runs, also after a cancel or its loop's close:
	 * that is what lets @fn own @arg (free it, or hand it back as the
	 * result) without a way to learn that it was skipped.  asyncio skips
	 * a cancelled job that has not started, but it has a collector to
	 * reclaim the argument.
	 */
	lock(&el->mtx);
	job->state = JOB_RUNNING;
	unlock(&el->mtx);

	rc = job->fn(job->arg, &result);
	if (rc < 0 && result != NULL && job->free_result != NULL) {
		/* A failed job's result would go nowhere. */
		job->free_result(result);
		result = NULL;
	}
	job->rc = rc < 0 ? rc : 0;
	job->result = result;

	lock(&el->mtx);
	if (job->detached) {
		last = --job->sides == 0;
		unlock(&el->mtx);
		if (last)
			job_free(job);
		return;
	}
	/*
	 * Still under the lock: the loop cannot close between our look at
	 * the token and the call, and it is the close that makes the loop's
	 * memory go away.  The worker side passes to the delivery call.
	 */
	job->state = JOB_DELIVERING;
	rc = aloop_call_soon_threadsafe(el->loop, job_deliver, job, NULL);
	if (rc != 0) {
		/* The loop side stays; cancel or close will free the job. */
		job->state = JOB_STRANDED;
		job->sides--;
		unlock(&el->mtx);
		/* ESTATE: the loop is closing and about to tell us. */
		if (rc != ALOOP_ESTATE)
			aloop_log(ALOOP_LOG_ERR, "executor: cannot deliver a "
			    "job's outcome to its loop: %s",
			    aloop_strerror(rc));
		return;
	}
	unlock(&el->mtx);
}

int
aloop_run_in_executor(struct aloop_loop *loop, struct aloop_executor *ex,
    aloop_executor_fn fn, void *arg, aloop_free_fn free_result,
    struct aloop_future **futp)
{
	struct exec_loop *el;
	struct aloop_future *fut;
	struct job *job;
	int rc;

	if (loop == NULL || fn == NULL || futp == NULL)
		return ALOOP_EINVAL;
	*futp = NULL;
	if ((rc = aloop__loop_check(loop, "aloop_run_in_executor")) != 0)
		return rc;
	if ((rc = exec_loop_get(loop, &el)) != 0)
		return rc;
	/* asyncio: "Executor shutdown has been called". */
	if (ex == NULL && aloop__loop_executor_refused(loop))
		return ALOOP_ESTATE;
	if (ex == NULL && (ex = aloop__loop_executor(loop)) == NULL) {
		if ((rc = aloop_executor_new(0, &ex)) != 0)
			return rc;
		aloop__loop_set_executor(loop, ex, executor_shutdown_nowait);
	}
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return ALOOP_ENOMEM;
	if ((rc = aloop_future_new(loop, &fut)) != 0) {
		free(job);
		return rc;
	}
	job->fn = fn;
	job->arg = arg;
	job->free_result = free_result;
	job->el = el;
	job->fut = aloop_future_ref(fut);
	job->state = JOB_QUEUED;
	job->sides = 2;

	lock(&el->mtx);
	el->refs++;
	job->next = el->jobs;
	if (el->jobs != NULL)
		el->jobs->prev = job;
	el->jobs = job;
	unlock(&el->mtx);
	aloop__future_set_cancel_hook(fut, job_on_cancel, job);

	if ((rc = executor_submit(ex, job)) != 0) {
		aloop__future_set_cancel_hook(fut, NULL, NULL);
		lock(&el->mtx);
		exec_loop_unlink(el, job);
		job->sides = 0;
		unlock(&el->mtx);
		job->fut = NULL;
		aloop_future_release(fut);	/* the job's */
		aloop_future_release(fut);	/* the caller's */
		job_free(job);
		return rc;
	}
	*futp = fut;
	return 0;
}

/* -------------------------------------------- shutdown_default_executor */

/*
 * The wait of shutdown_default_executor: the joining runs as a job on a
 * one-thread pool of its own (so the loop never blocks and the job
 * machinery keeps the loop safe from a late thread), and a timer bounds
 * the wait.  Whichever comes first completes the caller's future.
 */
struct exec_shutdown {
	struct aloop_loop	*loop;
	struct aloop_future	*fut;		/* the caller's, a reference */
	struct aloop_future	*join;		/* the joining job's */
	aloop_handle_t		 timer;
	double			 timeout;
	struct aloop__resource	 res;
};

static int
exec_shutdown_join(void *arg, void **result)
{
	(void)result;
	aloop_executor_shutdown(arg, 1);
	return 0;
}

static void
exec_shutdown_free(struct exec_shutdown *sd)
{
	aloop__loop_untrack(sd->loop, &sd->res);
	aloop_handle_cancel(sd->loop, sd->timer);
	aloop_future_release(sd->join);
	aloop_future_release(sd->fut);
	free(sd);
}

static void
exec_shutdown_joined(struct aloop_future *join, void *arg)
{
	struct exec_shutdown *sd = arg;

	(void)join;
	if (!aloop_future_done(sd->fut))
		(void)aloop_future_set_result(sd->fut, NULL, NULL);
	exec_shutdown_free(sd);
}

static void
exec_shutdown_timeout(void *arg)
{
	struct exec_shutdown *sd = arg;

	sd->timer = ALOOP_HANDLE_NONE;
	/* asyncio warns and stops waiting; the threads finish unseen. */
	aloop_log(ALOOP_LOG_WARNING, "the default executor did not finish "
	    "joining its threads within %g seconds", sd->timeout);
	if (!aloop_future_done(sd->fut))
		(void)aloop_future_set_result(sd->fut, NULL, NULL);
}

static void
exec_shutdown_on_loop_close(struct aloop__resource *res)
{
	struct exec_shutdown *sd = (struct exec_shutdown *)(void *)
	    ((char *)res - offsetof(struct exec_shutdown, res));

	/* The joining goes on in its thread; nobody waits for it here. */
	(void)aloop_future_remove_done_callback(sd->join,
	    exec_shutdown_joined, sd);
	sd->timer = ALOOP_HANDLE_NONE;
	aloop_future_release(sd->join);
	aloop_future_release(sd->fut);
	free(sd);
}

int
aloop_shutdown_default_executor(struct aloop_loop *loop, double timeout,
    struct aloop_future **futp)
{
	struct aloop_executor *ex, *joiner = NULL;
	struct exec_shutdown *sd;
	struct aloop_future *fut;
	int rc;

	if (loop == NULL || futp == NULL || timeout != timeout)
		return ALOOP_EINVAL;
	*futp = NULL;
	if ((rc = aloop__loop_check(loop,
	    "aloop_shutdown_default_executor")) != 0)
		return rc;
	if ((rc = aloop_future_new(loop, &fut)) != 0)
		return rc;
	if ((ex = aloop__loop_take_executor(loop)) == NULL) {
		(void)aloop_future_set_result(fut, NULL, NULL);
		*futp = fut;
		return 0;
	}
	if ((sd = calloc(1, sizeof(*sd))) == NULL ||
	    (rc = aloop_executor_new(1, &joiner)) != 0 ||
	    (rc = aloop_run_in_executor(loop, joiner, exec_shutdown_join, ex,
	    NULL, &sd->join)) != 0) {
		/* Without a thread to join in, stop the pool without it. */
		if (joiner != NULL)
			aloop_executor_shutdown(joiner, 0);
		aloop_executor_shutdown(ex, 0);
		free(sd);
		aloop_future_release(fut);
		return rc != 0 ? rc : ALOOP_ENOMEM;
	}
	/* The job owns @ex now; the pool frees itself after it. */
	aloop_executor_shutdown(joiner, 0);
	sd->loop = loop;
	sd->fut = aloop_future_ref(fut);
	sd->timer = ALOOP_HANDLE_NONE;
	sd->timeout = timeout;
	sd->res.on_loop_close = exec_shutdown_on_loop_close;
	aloop__loop_track(loop, &sd->res);
	if (aloop_future_add_done_callback(sd->join, exec_shutdown_joined,
	    sd) != 0 || (timeout >= 0 && aloop_call_later(loop, timeout,
	    exec_shutdown_timeout, sd, &sd->timer) != 0)) {
		/* The join still runs; only the wait is given up. */
		(void)aloop_future_remove_done_callback(sd->join,
		    exec_shutdown_joined, sd);
		exec_shutdown_free(sd);
		(void)aloop_future_set_error(fut, ALOOP_ENOMEM, NULL);
	}
	*futp = fut;
	return 0;
}

int
aloop_set_default_executor(struct aloop_loop *loop, struct aloop_executor *ex)
{
	int rc;

	if (loop == NULL)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "aloop_set_default_executor")) != 0)
		return rc;
	/* The loop shuts a previous default down, without waiting. */
	aloop__loop_set_executor(loop, ex, executor_shutdown_nowait);
	return 0;
}
