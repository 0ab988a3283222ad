/*
 * aloopd from a valid configuration to exit: the log sink, detaching,
 * socket activation, the control loop, workers and their listeners, the
 * pidfile, the privilege drop, systemd's READY/STATUS/WATCHDOG, and the
 * orderly end.  The signal-driven parts (stop, reload) are in signals.c.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "activation.h"
#include "config-int.h"
#include "listener.h"
#include "logsink.h"
#include "metrics.h"
#include "notify.h"
#include "runtime.h"
#include "signals.h"
#include "worker.h"

/* STATUS= is refreshed at most this often (seconds). */
#define STATUS_INTERVAL	5.0

/* ------------------------------------------------------------ generations */

static int
tls_fail(const struct config_listener *cl, struct aloop_tls_context *ctx,
    const char *what, int r)
{
	const char *detail = ctx != NULL ? aloop_tls_context_last_error(ctx) :
	    "";

	aloop_log(ALOOP_LOG_ERR, "listener %s: tls: %s: %s", cl->name, what,
	    detail[0] != '\0' ? detail : aloop_strerror(r));
	return -1;
}

static int
tls_context_for(const struct config_listener *cl,
    struct aloop_tls_context **out)
{
	const struct config_tls *t = cl->tls;
	struct aloop_tls_context *ctx = NULL;
	int r;

	*out = NULL;
	if (t == NULL)
		return 0;
	if ((r = aloop_tls_context_new(ALOOP_TLS_SERVER, &ctx)) < 0)
		return tls_fail(cl, NULL, "new context", r);
	if ((r = aloop_tls_context_load_cert_chain(ctx, t->certificate,
	    t->key)) < 0) {
		tls_fail(cl, ctx, t->certificate, r);
		goto fail;
	}
	for (size_t i = 0; i < t->nsni; i++) {
		if ((r = aloop_tls_context_add_sni_cert(ctx,
		    t->sni[i].certificate, t->sni[i].key)) < 0) {
			tls_fail(cl, ctx, t->sni[i].certificate, r);
			goto fail;
		}
	}
	if (t->ca != NULL && (r = aloop_tls_context_load_verify_locations(ctx,
	    t->ca, NULL)) < 0) {
		tls_fail(cl, ctx, t->ca, r);
		goto fail;
	}
	if ((r = aloop_tls_context_set_verify(ctx, t->verify)) < 0) {
		tls_fail(cl, ctx, "verify", r);
		goto fail;
	}
	if (t->min_version != NULL &&
	    (r = aloop_tls_context_set_min_version(ctx, t->min_version)) < 0) {
		tls_fail(cl, ctx, "min_version", r);
		goto fail;
	}
	if (t->ciphers != NULL &&
	    (r = aloop_tls_context_set_ciphers(ctx, t->ciphers)) < 0) {
		tls_fail(cl, ctx, "ciphers", r);
		goto fail;
	}
	if (t->ciphersuites != NULL && (r =
	    aloop_tls_context_set_ciphersuites(ctx, t->ciphersuites)) < 0) {
		tls_fail(cl, ctx, "ciphersuites", r);
		goto fail;
	}
	if (t->nalpn > 0 && (r = aloop_tls_context_set_alpn_protocols(ctx,
	    (const char *const *)t->alpn, t->nalpn)) < 0) {
		tls_fail(cl, ctx, "alpn", r);
		goto fail;
	}
	*out = ctx;
	return 0;
fail:
	aloop_tls_context_release(ctx);
	return -1;
}

static void
rtconfig_destroy(struct rtconfig *rc)
{
	for (size_t i = 0; rc->tls != NULL && i < rc->cfg->nlisteners; i++)
		if (rc->tls[i] != NULL)
			aloop_tls_context_release(rc->tls[i]);
	free(rc->tls);
	config_free(rc->cfg);
	free(rc);
}

int
rtconfig_new(struct runtime *rt, struct config *cfg, struct rtconfig **rcp)
{
	struct rtconfig *rc;
	int failed = 0;

	*rcp = NULL;
	rc = calloc(1, sizeof(*rc));
	if (rc == NULL) {
		config_free(cfg);
		return -1;
	}
	rc->cfg = cfg;
	rc->tls = calloc(cfg->nlisteners + 1, sizeof(*rc->tls));
	if (rc->tls == NULL) {
		rtconfig_destroy(rc);
		return -1;
	}
	/*
	 * Certificates are read here, once per generation, and the contexts
	 * shared by every worker: a reload re-reads them for new connections
	 * while the old contexts serve the old ones to their end.
	 */
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (tls_context_for(&cfg->listeners[i], &rc->tls[i]) < 0)
			failed = 1;
	if (failed) {
		rtconfig_destroy(rc);
		return -1;
	}
	atomic_init(&rc->refs, 1);
	rc->next = rt->configs;
	rt->configs = rc;
	*rcp = rc;
	return 0;
}

struct rtconfig *
rtconfig_ref(struct rtconfig *rc)
{
	atomic_fetch_add(&rc->refs, 1);
	return rc;
}

static void
collect_cb(void *arg)
{
	runtime_collect(arg);
}

void
rtconfig_unref(struct runtime *rt, struct rtconfig *rc)
{
	if (rc == NULL || atomic_fetch_sub(&rc->refs, 1) != 1)
		return;
	/*
	 * The config holds the plugins, which only the main thread may
	 * unload: let it sweep.  If its loop is gone, the final sweep in
	 * runtime_run() frees this one.
	 */
	if (rt->loop != NULL && aloop_get_running_loop() != rt->loop)
		(void)aloop_call_soon_threadsafe(rt->loop, collect_cb, rt,
		    NULL);
}

void
runtime_collect(struct runtime *rt)
{
	struct rtconfig **pp = &rt->configs, *rc;

	while ((rc = *pp) != NULL) {
		if (atomic_load(&rc->refs) == 0) {
			*pp = rc->next;
			rtconfig_destroy(rc);
		} else
			pp = &rc->next;
	}
}

/* ---------------------------------------------------------------- process */

/*
 * Detach as a classic daemon.  The parent stays until the child has bound
 * every listener, so that a failing start is still the exit status the
 * operator sees; @ready_fd is the child's end of that pipe.
 */
static int
detach(int *ready_fd)
{
	int p[2], devnull;
	pid_t pid;
	char c;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "pipe");
		return -1;
	}
	pid = fork();
	if (pid == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "fork");
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		do {
			n = read(p[0], &c, 1);
		} while (n == -1 && errno == EINTR);
		_exit(n == 1 ? 0 : 1);
	}
	close(p[0]);
	if (setsid() == -1)
		aloop_log_errno(ALOOP_LOG_WARNING, "setsid");
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull == -1 || dup2(devnull, STDIN_FILENO) == -1 ||
	    dup2(devnull, STDOUT_FILENO) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "/dev/null");
		return -1;
	}
	if (devnull > STDERR_FILENO)
		close(devnull);
	*ready_fd = p[1];
	return 0;
}

static int
write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "pidfile %s", path);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		aloop_log_errno(ALOOP_LOG_ERR, "pidfile %s", path);
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "pidfile %s", path);
		return -1;
	}
	return 0;
}

/*
 * Become `user`/`group` once every socket is bound.  glibc applies
 * setuid/setgid to every thread of the process, workers included.
 */
static int
drop_privileges(const struct config_daemon *d)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	if (d->user == NULL && d->group == NULL)
		return 0;
	if (geteuid() != 0) {
		aloop_log(ALOOP_LOG_INFO, "not started as root: keeping the "
		    "current user");
		return 0;
	}
	pw = d->user != NULL ? getpwnam(d->user) : NULL;
	if (d->user != NULL && pw == NULL) {
		aloop_log(ALOOP_LOG_ERR, "user %s: no such user", d->user);
		return -1;
	}
	gid = pw != NULL ? pw->pw_gid : getegid();
	if (d->group != NULL) {
		gr = getgrnam(d->group);
		if (gr == NULL) {
			aloop_log(ALOOP_LOG_ERR, "group %s: no such group",
			    d->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if ((pw != NULL ? initgroups(pw->pw_name, gid) :
	    setgroups(1, &gid)) == -1 || setgid(gid) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "cannot change group");
		return -1;
	}
	if (pw != NULL && setuid(pw->pw_uid) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "cannot become %s", d->user);
		return -1;
	}
	/* Paranoia, as OpenBSD daemons do: root must be gone for good. */
	if (pw != NULL && pw->pw_uid != 0 && setuid(0) != -1) {
		aloop_log(ALOOP_LOG_ERR, "could regain root after dropping it");
		return -1;
	}
	aloop_log(ALOOP_LOG_INFO, "running as %s", d->user != NULL ? d->user :
	    d->group);
	return 0;
}

/* --------------------------------------------------- watchdog and status */

struct housekeeping {
	struct runtime	*rt;
	double		 interval;
	double		 next_status;
	double		 watchdog;	/* ping period, 0: no watchdog */
	size_t		 last_conns;
	size_t		 last_listeners;
	int		 status_sent;
};

static void
housekeeping(void *arg)
{
	struct housekeeping *hk = arg;
	struct runtime *rt = hk->rt;
	double now = aloop_time(rt->loop);
	size_t conns = 0;
	int alive = 1;

	for (unsigned i = 0; i < rt->nworkers; i++) {
		conns += atomic_load(&rt->workers[i].nconns);
		if (atomic_load(&rt->workers[i].pong) != rt->ping)
			alive = 0;
	}
	if (hk->watchdog > 0) {
		/*
		 * Ping only when every worker's loop answered the last
		 * round: a stuck worker then lets systemd's watchdog fire.
		 */
		if (alive)
			(void)notify_watchdog();
		else
			aloop_log(ALOOP_LOG_WARNING, "a worker did not answer "
			    "the watchdog in %.1f s", hk->interval);
		if (alive) {
			rt->ping++;
			for (unsigned i = 0; i < rt->nworkers; i++)
				(void)worker_post(&rt->workers[i], worker_pong,
				    (void *)(uintptr_t)rt->ping);
		}
	}
	if (now >= hk->next_status && (!hk->status_sent ||
	    conns != hk->last_conns ||
	    rt->current->cfg->nlisteners != hk->last_listeners)) {
		(void)notify_status("%zu connection%s, %zu listener%s, %u "
		    "worker%s", conns, conns == 1 ? "" : "s",
		    rt->current->cfg->nlisteners,
		    rt->current->cfg->nlisteners == 1 ? "" : "s",
		    rt->nworkers, rt->nworkers == 1 ? "" : "s");
		hk->status_sent = 1;
		hk->last_conns = conns;
		hk->last_listeners = rt->current->cfg->nlisteners;
		hk->next_status = now + STATUS_INTERVAL;
	}
	(void)aloop_call_later(rt->loop, hk->interval, housekeeping, hk,
		    NULL);
}

/* ------------------------------------------------------------ start, stop */

static int
start_workers(struct runtime *rt)
{
	unsigned i;

	for (i = 0; i < rt->nworkers; i++) {
		rt->workers[i].id = i;
		rt->workers[i].rt = rt;
		atomic_init(&rt->workers[i].nconns, 0);
		atomic_init(&rt->workers[i].pong, 0);
		if (worker_start(&rt->workers[i]) < 0)
			return -1;
	}
	/* Worker 0 first: the others may share the sockets it binds. */
	for (i = 0; i < rt->nworkers; i++)
		if (worker_call(&rt->workers[i], worker_prepare,
		    rt->current) != 0)
			break;
	if (i < rt->nworkers) {
		for (unsigned j = 0; j < rt->nworkers; j++)
			(void)worker_call(&rt->workers[j], worker_rollback,
			    NULL);
		return -1;
	}
	for (i = 0; i < rt->nworkers; i++)
		(void)worker_call(&rt->workers[i], worker_commit, NULL);
	return 0;
}

static void
warn_unused_activation(void)
{
	for (size_t i = 0; i < activation_count(); i++)
		if (!activation_claimed(i))
			aloop_log(ALOOP_LOG_WARNING, "socket activation: no "
			    "listener is named \"%s\"; that socket is unused",
			    activation_name(i));
}

int
runtime_run(struct config *cfg, const struct runtime_options *o)
{
	struct runtime rt;
	struct housekeeping hk;
	char *pidfile = NULL;
	int ready_fd = -1, status = 1, n;
	uint64_t wd;

	memset(&rt, 0, sizeof(rt));
	pthread_mutex_init(&rt.mu, NULL);
	pthread_cond_init(&rt.cv, NULL);
	rt.config_path = o->config_path;
	rt.debug = o->debug;
	rt.nworkers = cfg->daemon.workers;

	logsink_open(cfg->daemon.log_target == CONFIG_LOG_SYSLOG ?
	    LOGSINK_SYSLOG : LOGSINK_STDERR, "aloopd");
	aloop_log_set_level(o->debug ? ALOOP_LOG_DEBUG : cfg->daemon.log_level);
	if (cfg->daemon.pidfile != NULL &&
	    (pidfile = strdup(cfg->daemon.pidfile)) == NULL) {
		config_free(cfg);
		goto out;
	}
	if (rtconfig_new(&rt, cfg, &rt.current) < 0)
		goto out;
	/* Before any thread exists: fork() keeps only the calling thread. */
	if (!o->foreground && detach(&ready_fd) < 0)
		goto out;
	n = activation_init();
	if (n < 0)
		aloop_log(ALOOP_LOG_ERR, "socket activation: %s",
		    aloop_strerror(n));
	else if (n > 0)
		aloop_log(ALOOP_LOG_INFO, "socket activation: %d sockets", n);

	if ((n = aloop_loop_new(&rt.loop)) < 0) {
		aloop_log(ALOOP_LOG_ERR, "cannot make the main loop: %s",
		    aloop_strerror(n));
		goto out;
	}
	aloop_set_debug(rt.loop, o->debug);
	if (signals_install(&rt) < 0)
		goto out;
	rt.workers = calloc(rt.nworkers, sizeof(*rt.workers));
	if (rt.workers == NULL)
		goto out;
	if (start_workers(&rt) < 0) {
		aloop_log(ALOOP_LOG_ERR, "start-up failed");
		goto out;
	}
	warn_unused_activation();
	if (pidfile != NULL && write_pidfile(pidfile) < 0) {
		free(pidfile);
		pidfile = NULL;
		goto out;
	}
	if (drop_privileges(&rt.current->cfg->daemon) < 0)
		goto out;

	aloop_log(ALOOP_LOG_NOTICE, "aloopd %s started: %zu listener%s, %u "
	    "worker%s", PACKAGE_VERSION, rt.current->cfg->nlisteners,
	    rt.current->cfg->nlisteners == 1 ? "" : "s", rt.nworkers,
	    rt.nworkers == 1 ? "" : "s");
	(void)notify_ready();
	if (ready_fd != -1) {
		(void)write(ready_fd, "R", 1);
		close(ready_fd);
		ready_fd = -1;
	}

	memset(&hk, 0, sizeof(hk));
	hk.rt = &rt;
	hk.interval = STATUS_INTERVAL;
	wd = notify_watchdog_usec();
	if (wd > 0) {
		/* systemd's advice: ping at half the interval. */
		hk.watchdog = (double)wd / 2e6;
		if (hk.watchdog < hk.interval)
			hk.interval = hk.watchdog;
		aloop_log(ALOOP_LOG_INFO, "watchdog: pinging every %.1f s",
		    hk.watchdog);
	}
	housekeeping(&hk);

	if ((n = aloop_run_forever(rt.loop)) < 0)
		aloop_log(ALOOP_LOG_ERR, "main loop failed: %s",
		    aloop_strerror(n));
	else
		status = 0;
out:
	if (ready_fd != -1)
		close(ready_fd);	/* the waiting parent exits 1 */
	for (unsigned i = 0; rt.workers != NULL && i < rt.nworkers; i++)
		worker_join(&rt.workers[i]);
	free(rt.workers);
	metrics_free();
	if (rt.current != NULL)
		rtconfig_unref(&rt, rt.current);
	runtime_collect(&rt);
	if (rt.configs != NULL)
		aloop_log(ALOOP_LOG_WARNING, "a configuration was still in use "
		    "at exit");
	if (rt.loop != NULL) {
		signals_remove(&rt);
		aloop_loop_free(rt.loop);
	}
	activation_free();
	if (pidfile != NULL) {
		unlink(pidfile);
		free(pidfile);
	}
	if (status == 0)
		aloop_log(ALOOP_LOG_NOTICE, "stopped");
	logsink_close();
	pthread_cond_destroy(&rt.cv);
	pthread_mutex_destroy(&rt.mu);
	return status;
}
