/*
 * What the main thread's control loop does on signals: SIGTERM/SIGINT stop
 * gracefully (stop accepting at once, drain for up to shutdown_timeout,
 * then abort what is left; a second signal aborts at once), SIGHUP reloads
 * the configuration (all or nothing: an invalid file, or a listener that
 * cannot bind, leaves the running configuration untouched).
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>

#include "config-int.h"
#include "listener.h"
#include "metrics.h"
#include "notify.h"
#include "signals.h"
#include "worker.h"

/* After an abort, how long the connections get to report their loss. */
#define ABORT_GRACE	5.0

static aloop_handle_t drain_timer = ALOOP_HANDLE_NONE;

static void
call_all(struct runtime *rt, int (*fn)(struct worker *, void *), void *arg)
{
	for (unsigned i = 0; i < rt->nworkers; i++)
		(void)worker_call(&rt->workers[i], fn, arg);
}

static size_t
total_connections(const struct runtime *rt)
{
	size_t n = 0;

	for (unsigned i = 0; i < rt->nworkers; i++)
		n += atomic_load(&rt->workers[i].nconns);
	return n;
}

static void
give_up(void *arg)
{
	struct runtime *rt = arg;

	aloop_log(ALOOP_LOG_WARNING, "stopping without waiting for %zu "
	    "connections", total_connections(rt));
	aloop_stop(rt->loop);
}

static void
abort_all(struct runtime *rt)
{
	if (rt->aborting)
		return;
	rt->aborting = 1;
	aloop_handle_cancel(rt->loop, drain_timer);
	aloop_log(ALOOP_LOG_NOTICE, "closing %zu remaining connections",
	    total_connections(rt));
	call_all(rt, worker_abort, NULL);
	/* Aborted connections report their loss on the workers' next turn. */
	if (aloop_call_later(rt->loop, ABORT_GRACE, give_up, rt, NULL) < 0)
		aloop_stop(rt->loop);
}

static void
drain_timeout(void *arg)
{
	struct runtime *rt = arg;

	drain_timer = ALOOP_HANDLE_NONE;
	aloop_log(ALOOP_LOG_NOTICE, "shutdown_timeout of %g s reached",
	    rt->current->cfg->daemon.shutdown_timeout);
	abort_all(rt);
}

static void
on_stop_signal(struct runtime *rt, int signum)
{
	double timeout = rt->current->cfg->daemon.shutdown_timeout;

	if (rt->stopping) {
		aloop_log(ALOOP_LOG_NOTICE, "%s again: stopping now",
		    strsignal(signum));
		abort_all(rt);
		return;
	}
	rt->stopping = 1;
	(void)notify_stopping();
	/* Logged once no listener accepts any more, which it then says. */
	call_all(rt, worker_stop_accepting, NULL);
	aloop_log(ALOOP_LOG_NOTICE, "%s: stopping; %zu connections may "
	    "finish within %g s", strsignal(signum), total_connections(rt),
	    timeout);
	if (rt->drained == rt->nworkers)
		return;
	if (aloop_call_later(rt->loop, timeout, drain_timeout, rt,
	    &drain_timer) < 0)
		abort_all(rt);
}

static void
on_sigterm(void *arg)
{
	on_stop_signal(arg, SIGTERM);
}

static void
on_sigint(void *arg)
{
	on_stop_signal(arg, SIGINT);
}

static void
reload_done(struct runtime *rt)
{
	(void)notify_ready();
	runtime_collect(rt);
}

static int
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/*
 * What a reload cannot change: the threads, where logs go (the sink is
 * not switched while threads log), the pidfile and the user, which were
 * set up before the privilege drop.  Say so rather than pretend.
 */
static void
warn_restart_only(const struct runtime *rt, const struct config *cfg)
{
	const struct config_daemon *old = &rt->current->cfg->daemon;
	const struct config_daemon *new = &cfg->daemon;

	if (new->workers != rt->nworkers)
		aloop_log(ALOOP_LOG_WARNING, "reload: workers changed from %u "
		    "to %u; that takes a restart", rt->nworkers, new->workers);
	if (new->log_target != old->log_target)
		aloop_log(ALOOP_LOG_WARNING, "reload: log_target changed; "
		    "that takes a restart");
	if (str_differs(new->pidfile, old->pidfile) ||
	    str_differs(new->user, old->user) ||
	    str_differs(new->group, old->group))
		aloop_log(ALOOP_LOG_WARNING, "reload: pidfile, user and group "
		    "changes take a restart");
}

void
runtime_reload(struct runtime *rt)
{
	struct config *cfg = NULL;
	struct rtconfig *rc;
	unsigned i;
	int r;

	if (rt->stopping)
		return;
	(void)notify_reloading();
	aloop_log(ALOOP_LOG_NOTICE, "reloading %s", rt->config_path);
	r = config_load(rt->config_path, &cfg);
	if (r != 0) {
		for (size_t e = 0; cfg != NULL && e < cfg->nerrors; e++)
			aloop_log(ALOOP_LOG_ERR, "%s", cfg->errors[e]);
		aloop_log(ALOOP_LOG_ERR, "reload failed: %s; keeping the "
		    "running configuration", aloop_strerror(r));
		config_free(cfg);
		metrics_reload(0);
		reload_done(rt);
		return;
	}
	warn_restart_only(rt, cfg);
	if (rtconfig_new(rt, cfg, &rc) < 0) {
		aloop_log(ALOOP_LOG_ERR, "reload failed; keeping the running "
		    "configuration");
		metrics_reload(0);
		reload_done(rt);
		return;
	}
	for (i = 0; i < rt->nworkers; i++)
		if (worker_call(&rt->workers[i], worker_prepare, rc) != 0)
			break;
	if (i < rt->nworkers) {
		call_all(rt, worker_rollback, NULL);
		rtconfig_unref(rt, rc);
		aloop_log(ALOOP_LOG_ERR, "reload failed: a listener could not "
		    "be opened; keeping the running configuration");
		metrics_reload(0);
		reload_done(rt);
		return;
	}
	call_all(rt, worker_commit, NULL);
	rtconfig_unref(rt, rt->current);
	rt->current = rc;
	aloop_log_set_level(cfg->daemon.log_level);
	aloop_log(ALOOP_LOG_NOTICE, "reloaded %s: %zu listeners",
	    rt->config_path, cfg->nlisteners);
	metrics_reload(1);
	reload_done(rt);
}

static void
on_sighup(void *arg)
{
	runtime_reload(arg);
}

/* On the main thread: one more worker has no listener left. */
static void
worker_drained_main(void *arg)
{
	struct worker *w = arg;
	struct runtime *rt = w->rt;

	if (++rt->drained < rt->nworkers)
		return;
	aloop_handle_cancel(rt->loop, drain_timer);
	aloop_log(ALOOP_LOG_NOTICE, "every connection is closed");
	aloop_stop(rt->loop);
}

void
runtime_worker_drained(struct runtime *rt, struct worker *w)
{
	if (w->stopping != 1 || w->nalive > 0)
		return;
	w->stopping = 2;	/* reported */
	if (aloop_call_soon_threadsafe(rt->loop, worker_drained_main, w,
	    NULL) < 0)
		aloop_log(ALOOP_LOG_ERR, "worker %u: cannot report its drain",
		    w->id);
}

int
signals_install(struct runtime *rt)
{
	int r;

	/* A peer that goes away mid-write is an error code, not a death. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		aloop_log_errno(ALOOP_LOG_ERR, "signal(SIGPIPE)");
		return -1;
	}
	if ((r = aloop_add_signal_handler(rt->loop, SIGTERM, on_sigterm,
	    rt)) < 0 ||
	    (r = aloop_add_signal_handler(rt->loop, SIGINT, on_sigint,
	    rt)) < 0 ||
	    (r = aloop_add_signal_handler(rt->loop, SIGHUP, on_sighup,
	    rt)) < 0) {
		aloop_log(ALOOP_LOG_ERR, "cannot handle signals: %s",
		    aloop_strerror(r));
		return -1;
	}
	return 0;
}

void
signals_remove(struct runtime *rt)
{
	aloop_remove_signal_handler(rt->loop, SIGTERM);
	aloop_remove_signal_handler(rt->loop, SIGINT);
	aloop_remove_signal_handler(rt->loop, SIGHUP);
}
