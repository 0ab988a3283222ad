/*
 * A worker process from fork to exit.  Everything a plugin does happens
 * here, so everything that can go wrong with a plugin ends here: the
 * master sees a dead or silent worker and replaces it.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "accesslog.h"
#include "config-int.h"
#include "listener.h"
#include "proc.h"
#include "logsink.h"
#include "scoreboard.h"
#include "sockets.h"
#include "worker.h"

/*
 * One line per listener per interval for a listener out of descriptors,
 * however many workers and sockets meet it: the library reports up to
 * ten times a second per socket, and every worker has its own.
 */
#define ACCEPT_REPORT_MS	10000
/* After an abort, how long connections get to report their loss. */
#define ABORT_GRACE	2.0
/* Exit statuses the master tells apart. */
#define EXIT_STARTUP	3	/* could not start serving */

struct worker {
	struct listener_host	 host;
	const struct worker_spec *ws;
	struct listener		**listeners;	/* [nlisteners]; NULL: freed */
	size_t			 nlisteners;
	size_t			 opening;	/* listener_open()s pending */
	int			 failed;
	int			 draining;
	int			 aborted;
	double			 beat_interval;
	aloop_handle_t		 beat;
	aloop_handle_t		 deadline;
	int			 sigfd;
};

static struct worker W;

/* ------------------------------------------------------------ set-up */

/*
 * Signals: the master owns the terminal's and the operator's (a Ctrl-C
 * reaches the whole process group; the master decides).  SIGTERM drains,
 * which is what systemd sends every process of the unit; it is read from
 * a signalfd so that the inherited libevent state is never involved.
 */
static int
setup_signals(void)
{
	sigset_t set;

	(void)signal(SIGINT, SIG_IGN);
	(void)signal(SIGHUP, SIG_IGN);
	(void)signal(SIGUSR1, SIG_IGN);
	(void)signal(SIGUSR2, SIG_IGN);
	(void)signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		return -errno;
	W.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return W.sigfd == -1 ? -1 : 0;
}

/* ------------------------------------------------------------- running */

static void
beat(void *arg)
{
	(void)arg;
	atomic_store_explicit(&W.ws->sb->heartbeat, sb_now_ms(),
	    memory_order_relaxed);
	if (aloop_call_later(W.host.loop, W.beat_interval, beat, NULL,
	    &W.beat) < 0)
		W.beat = ALOOP_HANDLE_NONE;
}

static void
give_up(void *arg)
{
	(void)arg;
	aloop_log(ALOOP_LOG_WARNING, "worker %u: stopping with %zu listeners "
	    "unfinished", W.ws->slot, W.host.nalive);
	aloop_stop(W.host.loop);
}

static void
abort_all(void)
{
	if (W.aborted)
		return;
	W.aborted = 1;
	for (size_t i = 0; i < W.nlisteners; i++)
		if (W.listeners[i] != NULL)
			listener_abort(W.listeners[i]);
	aloop_handle_cancel(W.host.loop, W.deadline);
	if (aloop_call_later(W.host.loop, ABORT_GRACE, give_up, NULL,
	    &W.deadline) < 0)
		aloop_stop(W.host.loop);
}

static void
drain_timeout(void *arg)
{
	(void)arg;
	W.deadline = ALOOP_HANDLE_NONE;
	abort_all();
}

static void
drain(const char *why)
{
	if (W.draining)
		return;
	W.draining = 1;
	atomic_store(&W.ws->sb->where, 0);
	aloop_log(ALOOP_LOG_DEBUG, "worker %u: %s: draining", W.ws->slot, why);
	for (size_t i = 0; i < W.nlisteners; i++)
		if (W.listeners[i] != NULL)
			listener_retire(W.listeners[i]);
	/* The master says "stopping" once no worker accepts any more. */
	if (send(W.ws->ctl, &(char){ WORKER_STOPPED }, 1, MSG_NOSIGNAL |
	    MSG_DONTWAIT) != 1 && errno != EPIPE)
		aloop_log_errno(ALOOP_LOG_DEBUG, "worker %u: cannot tell the "
		    "master", W.ws->slot);
	if (W.host.nalive == 0) {
		aloop_stop(W.host.loop);
		return;
	}
	/* The master aborts at the deadline; this is in case it cannot. */
	if (aloop_call_later(W.host.loop,
	    W.ws->cfg->daemon.shutdown_timeout + 0.5, drain_timeout, NULL,
	    &W.deadline) < 0)
		abort_all();
}

static void
listener_gone(struct listener_host *host, struct listener *l)
{
	for (size_t i = 0; i < W.nlisteners; i++)
		if (W.listeners[i] == l)
			W.listeners[i] = NULL;
	if (W.draining && host->nalive == 0)
		aloop_stop(host->loop);
}

static void
on_ctl(void *arg)
{
	char buf[16];
	ssize_t n;

	(void)arg;
	n = recv(W.ws->ctl, buf, sizeof(buf), MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The master is gone: finish what is open, then go too. */
		(void)aloop_remove_reader(W.host.loop, W.ws->ctl);
		drain("the master is gone");
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == WORKER_DRAIN)
			drain("told to stop");
		else if (buf[i] == WORKER_ABORT) {
			drain("told to abort");
			abort_all();
		}
	}
}

static void
on_signal(void *arg)
{
	struct signalfd_siginfo si;

	(void)arg;
	while (read(W.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		drain("SIGTERM");
}

static void
all_open(void)
{
	char r = WORKER_READY;

	if (W.failed) {
		aloop_log(ALOOP_LOG_ERR, "worker %u: a listener could not "
		    "start", W.ws->slot);
		drain("start-up failed");
		W.aborted = 1;
		return;
	}
	for (size_t i = 0; i < W.nlisteners; i++)
		if (W.listeners[i] != NULL)
			listener_serve(W.listeners[i]);
	if (send(W.ws->ctl, &r, 1, MSG_NOSIGNAL) != 1)
		aloop_log_errno(ALOOP_LOG_WARNING, "worker %u: cannot tell "
		    "the master", W.ws->slot);
}

static void
opened(struct listener *l, int result, void *arg)
{
	(void)l;
	(void)arg;
	if (result < 0)
		W.failed = 1;
	if (--W.opening == 0)
		all_open();
}

/* The listener one of whose servers listens on @fd, or NULL. */
static struct listener *
listener_of_socket(int fd)
{
	const int *fds;
	size_t i, j, k, n;

	for (i = 0; i < W.nlisteners; i++) {
		struct listener *l = W.listeners[i];

		if (l == NULL)
			continue;
		for (j = 0; j < l->nservers; j++) {
			if (l->servers[j] == NULL)
				continue;
			fds = aloop_server_sockets(l->servers[j], &n);
			for (k = 0; k < n; k++)
				if (fds[k] == fd)
					return l;
		}
	}
	return NULL;
}

/*
 * A server out of descriptors (or memory) for accept(): count what it
 * reset unserved, and log one line per listener per ACCEPT_REPORT_MS
 * across all workers (the scoreboard holds who reported last), with
 * every worker's count since then.  0 when handled, -1 when it was not
 * one of our listeners.
 */
static int
accept_exhausted(const struct aloop_context *ctx)
{
	struct listener *l;
	const char *name, *what;
	uint64_t count, since;

	if ((l = listener_of_socket(ctx->socket)) == NULL)
		return -1;
	name = W.ws->cfg->listeners[l->index].name;
	if (W.ws->sb != NULL)
		SB_COUNT(sb_counters(W.ws->sb, l->index), SB_DROPPED_FDS,
		    ctx->dropped);
	if (!sb_report_claim(name, ctx->dropped, ACCEPT_REPORT_MS, &count,
	    &since))
		return 0;
	what = ctx->error->code == -EMFILE || ctx->error->code == -ENFILE ?
	    "out of descriptors" : "out of memory";
	if (since > 0)
		aloop_log(ALOOP_LOG_WARNING, "listener \"%s\": %s (%s): %llu "
		    "connections reset in the last %llu s", name, what,
		    ctx->error->message, (unsigned long long)count,
		    (unsigned long long)((since + 500) / 1000));
	else
		aloop_log(ALOOP_LOG_WARNING, "listener \"%s\": %s (%s): %llu "
		    "connections reset", name, what, ctx->error->message,
		    (unsigned long long)count);
	return 0;
}

/*
 * Errors the loop reports (an exception in a plugin's callback, a future
 * whose error nobody retrieved) name the listener and the plugin whose
 * callback was running, from the scoreboard, unless they say already.
 */
static int
exception_handler(struct aloop_loop *loop, const struct aloop_context *ctx,
    void *arg)
{
	uint32_t where = atomic_load_explicit(&W.ws->sb->where,
	    memory_order_relaxed);
	size_t idx = SB_WHERE_INDEX(where);
	const struct config *cfg = W.ws->cfg;
	struct aloop_context c = *ctx;

	(void)arg;
	if (ctx->error != NULL && ctx->socket >= 0 && strcmp(ctx->message,
	    "socket.accept() out of system resource") == 0 &&
	    accept_exhausted(ctx) == 0)
		return 0;
	if (where != 0 && idx < cfg->nlisteners) {
		if (c.listener == NULL)
			c.listener = cfg->listeners[idx].name;
		if (c.plugin == NULL)
			c.plugin = cfg->listeners[idx].protocol;
	}
	aloop_default_exception_handler(loop, &c);
	return 0;
}

/* The scoreboard says which plugin is loading, for a crashing one. */
static void
loading(size_t listener, int step, const char *file, void *arg)
{
	(void)file;
	(void)arg;
	atomic_store(&W.ws->sb->where, SB_WHERE(listener, step ==
	    CONFIG_STEP_LOAD ? SB_LOAD : SB_INIT));
}

static int
open_listeners(void)
{
	const struct config *cfg = W.ws->cfg;
	struct config_plugin_hooks h = { .step = loading };
	int *fds;
	size_t nfds;

	if (config_load_plugins(W.ws->cfg, &h) != 0) {
		for (size_t i = 0; i < cfg->nerrors; i++)
			aloop_log(ALOOP_LOG_ERR, "%s", cfg->errors[i]);
		return ALOOP_ECONFIG;
	}
	atomic_store(&W.ws->sb->where, 0);
	W.nlisteners = cfg->nlisteners;
	if ((W.listeners = calloc(cfg->nlisteners + 1,
	    sizeof(*W.listeners))) == NULL)
		return ALOOP_ENOMEM;
	W.opening = 1;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		/* An address gives a few sockets ("*": two). */
		size_t cap = (cfg->listeners[i].nlisten + 1) * 16;

		if ((fds = malloc(cap * sizeof(*fds))) == NULL)
			return ALOOP_ENOMEM;
		nfds = sockets_fds(W.ws->socks, i, W.ws->slot, fds, cap);
		W.opening++;
		if (listener_open(&W.host, &cfg->listeners[i], i, fds, nfds,
		    opened, NULL, &W.listeners[i]) < 0) {
			W.opening--;
			W.failed = 1;
			free(fds);
			break;
		}
		free(fds);
	}
	opened(NULL, 0, NULL);
	return 0;
}

void
worker_run(const struct worker_spec *ws)
{
	const struct config_daemon *d = &ws->cfg->daemon;
	double stall = d->worker_stall_timeout;
	int r, status = 0;

	memset(&W, 0, sizeof(W));
	W.ws = ws;
	W.sigfd = -1;
	W.beat = W.deadline = ALOOP_HANDLE_NONE;
	/* A master that dies takes its workers along: no orphan keeps a port. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 || getppid() != ws->master)
		_exit(EXIT_STARTUP);
	logsink_open(d->log_target == CONFIG_LOG_SYSLOG ? LOGSINK_SYSLOG :
	    LOGSINK_STDERR, "aloopd");
	if (setup_signals() < 0) {
		aloop_log_errno(ALOOP_LOG_ERR, "worker %u: signals", ws->slot);
		_exit(EXIT_STARTUP);
	}
	if ((r = aloop_loop_new(&W.host.loop)) < 0) {
		aloop_log(ALOOP_LOG_ERR, "worker %u: cannot make a loop: %s",
		    ws->slot, aloop_strerror(r));
		_exit(EXIT_STARTUP);
	}
	aloop_set_event_loop(W.host.loop);
	aloop_set_debug(W.host.loop, ws->debug);
	aloop_set_exception_handler(W.host.loop, exception_handler, NULL);
	W.host.sb = ws->sb;
	sb_set_self(ws->sb);
	W.host.slot = ws->slot;
	W.host.nslots = ws->nslots;
	W.host.access_log = ws->cfg->daemon.access_log == ALOG_OFF ? -1 :
	    ws->cfg->daemon.access_log_format;
	W.host.gone = listener_gone;
	/* A quarter of the stall timeout: three missed beats are fine. */
	W.beat_interval = stall > 0 && stall / 4 < 1.0 ? stall / 4 : 1.0;
	beat(NULL);
	if (aloop_add_reader(W.host.loop, ws->ctl, on_ctl, NULL) < 0 ||
	    aloop_add_reader(W.host.loop, W.sigfd, on_signal, NULL) < 0 ||
	    open_listeners() < 0) {
		aloop_log(ALOOP_LOG_ERR, "worker %u: cannot start", ws->slot);
		_exit(EXIT_STARTUP);
	}
	/*
	 * Plugins are loaded and their instances made (init may read files
	 * only root can, as the plugin check did); from here on, before
	 * the loop serves anyone, the worker runs as `user` for good.
	 */
	if (proc_drop_privileges(d) < 0) {
		aloop_log(ALOOP_LOG_ERR, "worker %u: cannot drop privileges",
		    ws->slot);
		_exit(EXIT_STARTUP);
	}
	if ((r = aloop_run_forever(W.host.loop)) < 0) {
		aloop_log(ALOOP_LOG_ERR, "worker %u: loop failed: %s",
		    ws->slot, aloop_strerror(r));
		status = 1;
	}
	/*
	 * A plugin's fini aborts what it opened itself (upstream connections,
	 * children); their connection_lost comes on the next turns.  Give
	 * them a few, so that the plugin frees that state.
	 */
	for (int i = 0; i < 4; i++) {
		aloop_stop(W.host.loop);
		(void)aloop_run_forever(W.host.loop);
	}
	if (W.failed)
		status = EXIT_STARTUP;
	aloop_log(ALOOP_LOG_DEBUG, "worker %u: exiting", ws->slot);
	/*
	 * The rest of this process is the master's memory: nothing of it is
	 * the worker's to free or flush, so leave without running atexit.
	 */
	fflush(stderr);
	_exit(status);
}

int *
worker_keep_fds(const struct worker_spec *ws, size_t *n)
{
	const struct config *cfg = ws->cfg;
	size_t cap = 16, k = 0, got;
	int *fds = malloc(cap * sizeof(*fds)), *p;

	if (fds == NULL)
		return NULL;
	fds[k++] = ws->ctl;
	if (alog_pipe() >= 0)
		fds[k++] = alog_pipe();
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		for (;;) {
			got = sockets_fds(ws->socks, i, ws->slot, fds + k,
			    cap - k);
			if (k + got < cap)
				break;
			if ((p = realloc(fds, cap * 2 * sizeof(*fds))) == NULL) {
				free(fds);
				return NULL;
			}
			fds = p;
			cap *= 2;
		}
		k += got;
	}
	*n = k;
	return fds;
}
