/*
 * Worker threads.  Each runs its own loop; the main thread hands it work
 * with worker_call(), which schedules a function on the worker's loop
 * (call_soon_threadsafe) and waits for its answer, so every change to a
 * worker's listeners happens on the worker's own thread and needs no lock.
 * A reload is prepare (open the new generation's listeners, not accepting
 * yet) on every worker, then commit (start them, retire the old ones) or
 * rollback (drop what was prepared).  Start-up is a reload from nothing.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>

#include "config-int.h"
#include "listener.h"
#include "worker.h"

/* What an fn passed to worker_call returns when it answers later. */
#define WORKER_PENDING	1

struct worker_job {
	struct worker	*w;
	int		(*fn)(struct worker *, void *);
	void		*arg;
	int		 wait;		/* worker_call: main waits for it */
	int		 result;
	int		 done;
};

/* The one job main is waiting for (worker_call is main-thread only). */
static struct worker_job *waiting;

static void
worker_reply(struct worker *w, int result)
{
	struct runtime *rt = w->rt;

	pthread_mutex_lock(&rt->mu);
	if (waiting != NULL && waiting->w == w && !waiting->done) {
		waiting->result = result;
		waiting->done = 1;
		pthread_cond_broadcast(&rt->cv);
	}
	pthread_mutex_unlock(&rt->mu);
}

static void
job_run(void *arg)
{
	struct worker_job *job = arg;
	int r;

	r = job->fn(job->w, job->arg);
	if (!job->wait) {
		free(job);
		return;
	}
	if (r != WORKER_PENDING)
		worker_reply(job->w, r);
}

int
worker_call(struct worker *w, int (*fn)(struct worker *, void *), void *arg)
{
	struct runtime *rt = w->rt;
	struct worker_job job = { .w = w, .fn = fn, .arg = arg, .wait = 1 };
	int r;

	pthread_mutex_lock(&rt->mu);
	waiting = &job;
	pthread_mutex_unlock(&rt->mu);
	r = aloop_call_soon_threadsafe(w->loop, job_run, &job, NULL);
	pthread_mutex_lock(&rt->mu);
	if (r == 0) {
		while (!job.done)
			pthread_cond_wait(&rt->cv, &rt->mu);
		r = job.result;
	}
	waiting = NULL;
	pthread_mutex_unlock(&rt->mu);
	return r;
}

int
worker_post(struct worker *w, int (*fn)(struct worker *, void *), void *arg)
{
	struct worker_job *job;
	int r;

	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return ALOOP_ENOMEM;
	job->w = w;
	job->fn = fn;
	job->arg = arg;
	r = aloop_call_soon_threadsafe(w->loop, job_run, job, NULL);
	if (r < 0)
		free(job);
	return r;
}

/* ------------------------------------------------------------- threads */

static void
retire_all(struct listener **head)
{
	while (*head != NULL)
		listener_retire(*head);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct runtime *rt = w->rt;
	struct aloop_loop *loop = NULL;
	int r;

	r = aloop_loop_new(&loop);
	if (r < 0)
		aloop_log(ALOOP_LOG_ERR, "worker %u: cannot make a loop: %s",
		    w->id, aloop_strerror(r));
	pthread_mutex_lock(&rt->mu);
	w->loop = loop;
	w->started = r < 0 ? -1 : 1;
	pthread_cond_broadcast(&rt->cv);
	pthread_mutex_unlock(&rt->mu);
	if (r < 0)
		return NULL;

	aloop_set_event_loop(loop);
	aloop_set_debug(loop, rt->debug);
	r = aloop_run_forever(loop);
	if (r < 0)
		aloop_log(ALOOP_LOG_ERR, "worker %u: loop failed: %s", w->id,
		    aloop_strerror(r));

	/*
	 * Normally every listener is gone by now (the drain waits for it).
	 * If not, close and abort what is left and give the loop a few
	 * turns, so that plugins still see connection_lost and fini.
	 */
	retire_all(&w->prepared);
	retire_all(&w->active);
	for (struct listener *l = w->retired; l != NULL; l = l->next)
		listener_abort(l);
	for (int i = 0; i < 100 && w->nalive > 0; i++) {
		aloop_stop(loop);
		aloop_run_forever(loop);
	}
	if (w->nalive > 0)
		aloop_log(ALOOP_LOG_WARNING, "worker %u: %zu listeners did "
		    "not finish", w->id, w->nalive);
	/*
	 * A plugin's fini aborts what it opened itself (upstream connections,
	 * children); their connection_lost is scheduled for the next turn.
	 * Run a few non-blocking turns so that it runs and the plugin frees
	 * that state, instead of the loop's close discarding it.
	 */
	for (int i = 0; i < 4; i++) {
		aloop_stop(loop);
		aloop_run_forever(loop);
	}
	aloop_set_event_loop(NULL);
	r = aloop_loop_free(loop);
	if (r < 0)
		aloop_log(ALOOP_LOG_ERR, "worker %u: cannot free its loop: %s",
		    w->id, aloop_strerror(r));
	return NULL;
}

int
worker_start(struct worker *w)
{
	struct runtime *rt = w->rt;
	sigset_t all, old;
	int r;

	/*
	 * Signals are the main thread's business (its loop handles them):
	 * workers start with every signal blocked, so the kernel never
	 * delivers one to a worker.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		errno = r;
		aloop_log_errno(ALOOP_LOG_ERR, "worker %u: pthread_create",
		    w->id);
		return -1;
	}
	pthread_mutex_lock(&rt->mu);
	while (w->started == 0)
		pthread_cond_wait(&rt->cv, &rt->mu);
	pthread_mutex_unlock(&rt->mu);
	if (w->started < 0) {
		pthread_join(w->thread, NULL);
		return -1;
	}
	w->started = 2;	/* running: joined by worker_join */
	return 0;
}

static int
stop_loop(struct worker *w, void *unused)
{
	(void)unused;
	aloop_stop(w->loop);
	return 0;
}

void
worker_join(struct worker *w)
{
	if (w->started != 2)
		return;
	if (worker_post(w, stop_loop, NULL) < 0)
		aloop_log(ALOOP_LOG_ERR, "worker %u: cannot stop its loop",
		    w->id);
	pthread_join(w->thread, NULL);
	w->started = 0;
}

/* ---------------------------------------------------- prepare and commit */

struct prepare {
	struct worker	*w;
	size_t		 pending;
	int		 failed;
};

static void
prepare_step_done(struct prepare *p)
{
	struct worker *w = p->w;

	if (--p->pending > 0)
		return;
	worker_reply(w, p->failed ? -1 : 0);
	free(p);
}

static void
prepared(struct listener *l, int result, void *arg)
{
	struct prepare *p = arg;
	struct worker *w = l->w;

	if (result < 0) {
		p->failed = 1;
		listener_retire(l);
	} else {
		l->next = w->prepared;
		w->prepared = l;
	}
	prepare_step_done(p);
}

/*
 * Whether workers share one socket for @cl instead of each binding its
 * own: UNIX sockets (a path binds once), listeners without reuse_port,
 * and port 0 (each worker would get another port).
 */
static int
shared_socket(const struct config_listener *cl)
{
	if (!cl->reuse_port)
		return 1;
	for (size_t i = 0; i < cl->nlisten; i++)
		if (cl->listen[i].kind == CONFIG_ADDR_UNIX ||
		    strcmp(cl->listen[i].port, "0") == 0)
			return 1;
	return 0;
}

static struct listener *
find_kept(struct worker *w, const struct config_listener *cl,
    struct listener **taken, size_t ntaken)
{
	for (struct listener *l = w->active; l != NULL; l = l->next) {
		int used = 0;

		for (size_t i = 0; i < ntaken; i++)
			used |= taken[i] == l;
		if (!used && listener_same_sockets(l->cl, cl))
			return l;
	}
	return NULL;
}

static struct listener *
find_prepared(struct worker *w, size_t index)
{
	for (struct listener *l = w->prepared; l != NULL; l = l->next)
		if (l->index == index)
			return l;
	return NULL;
}

int
worker_prepare(struct worker *w, void *arg)
{
	struct rtconfig *rc = arg;
	const struct config *cfg = rc->cfg;
	struct listener **taken;
	struct prepare *p;
	const struct listener *from;

	p = calloc(1, sizeof(*p));
	taken = calloc(cfg->nlisteners + 1, sizeof(*taken));
	if (p == NULL || taken == NULL) {
		free(p);
		free(taken);
		return ALOOP_ENOMEM;
	}
	p->w = w;
	p->pending = 1;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *cl = &cfg->listeners[i];

		/*
		 * A listener on the same addresses keeps its sockets, so no
		 * client is refused during the reload; otherwise workers
		 * after the first may share worker 0's new socket.
		 */
		from = taken[i] = find_kept(w, cl, taken, i);
		if (from == NULL && w->id > 0 && shared_socket(cl))
			from = find_prepared(&w->rt->workers[0], i);
		p->pending++;
		if (listener_open(w, rc, i, from, prepared, p) < 0) {
			p->pending--;
			p->failed = 1;
			break;
		}
	}
	free(taken);
	/* Answered by the last prepared() (or just below). */
	if (p->pending == 1) {
		int r = p->failed ? -1 : 0;

		free(p);
		return r;
	}
	prepare_step_done(p);
	return WORKER_PENDING;
}

int
worker_commit(struct worker *w, void *unused)
{
	struct listener *l;

	(void)unused;
	/* The new ones accept first; the old ones' sockets live on in them. */
	for (l = w->prepared; l != NULL; l = l->next) {
		if (l->kept_from != NULL)
			l->kept_from->successor = l;
		l->kept_from = NULL;
		listener_serve(l);
	}
	retire_all(&w->active);
	w->active = w->prepared;
	w->prepared = NULL;
	return 0;
}

int
worker_rollback(struct worker *w, void *unused)
{
	(void)unused;
	for (struct listener *l = w->prepared; l != NULL; l = l->next)
		l->kept_from = NULL;
	retire_all(&w->prepared);
	return 0;
}

/* ------------------------------------------------------------------ stop */

int
worker_stop_accepting(struct worker *w, void *unused)
{
	(void)unused;
	w->stopping = 1;
	retire_all(&w->prepared);
	retire_all(&w->active);
	runtime_worker_drained(w->rt, w);
	return 0;
}

int
worker_abort(struct worker *w, void *unused)
{
	(void)unused;
	for (struct listener *l = w->retired; l != NULL; l = l->next)
		listener_abort(l);
	return 0;
}

int
worker_pong(struct worker *w, void *gen)
{
	atomic_store(&w->pong, (unsigned)(uintptr_t)gen);
	return 0;
}
