/*
 * Generations of worker processes and their supervision: forking,
 * telling, reaping, replacing and killing workers, by the state of the
 * generation they belong to.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "config-int.h"
#include "generation.h"
#include "metrics.h"
#include "proc.h"
#include "scoreboard.h"
#include "sockets.h"
#include "worker.h"

/* How long a new generation may take to serve before it is given up. */
#define START_TIMEOUT		30.0
/* After an abort, how long workers get before SIGKILL. */
#define ABORT_GRACE		1.0
/* A worker dying this often (deaths, seconds) is restarted with back-off. */
#define CRASH_BURST		5
#define CRASH_WINDOW		10.0
#define BACKOFF_FIRST		1.0
#define BACKOFF_MAX		30.0
/* How long "stopped accepting" is awaited from every worker. */
#define QUIET_TIMEOUT		2.0

enum gen_state { GEN_STARTING, GEN_ACTIVE, GEN_DRAINING };

/* One worker process. */
struct wproc {
	struct wproc		*next;
	struct gen		*g;
	unsigned		 slot;
	pid_t			 pid;
	int			 ctl;		/* the master's end */
	struct sb_worker	*sb;
	int			 ready;
	int			 told;		/* to stop accepting */
	int			 acked;		/* it has */
	int			 stalled;	/* killed for silence */
};

/* A slot of a generation: its process and its restart history. */
struct slot {
	struct wproc		*w;		/* NULL while none runs */
	double			 deaths[CRASH_BURST];
	unsigned		 ndeaths;
	double			 backoff;	/* 0: restart at once */
	double			 died;		/* loop time of the last death */
	aloop_handle_t		 restart;
};

struct gen {
	struct gen		*next;
	unsigned		 id;
	int			 state;
	struct config		*cfg;
	const char		**names;	/* listener names */
	struct socktab		*socks;		/* NULL while binding */
	unsigned		 nslots;
	struct slot		*slots;
	unsigned		 nready;
	unsigned		 nprocs;	/* live processes */
	aloop_handle_t		 timer;		/* start or drain deadline */
	int			 aborted;
	int			 binding;	/* sockets_bind() answers later */
	struct gen_hooks	 hooks;		/* while starting */
};

static struct {
	struct aloop_loop	*loop;
	int			 debug;
	void			(*all_gone)(void);
	struct gen		*gens;		/* every live generation */
	struct gen		*current;
	struct wproc		*procs;
	unsigned		 ids;
	int			 stopping;
	aloop_handle_t		 kill_timer;
	void			(*quiet_fn)(void);
	aloop_handle_t		 quiet_timer;
} G;

static const char *const callback_names[] = {
	[SB_NONE] = NULL,
	[SB_INIT] = "init",
	[SB_FINI] = "fini",
	[SB_FACTORY] = "the protocol factory",
	[SB_CONNECTION_MADE] = "connection_made",
	[SB_DATA_RECEIVED] = "data_received",
	[SB_EOF_RECEIVED] = "eof_received",
	[SB_CONNECTION_LOST] = "connection_lost",
	[SB_PAUSE_WRITING] = "pause_writing",
	[SB_RESUME_WRITING] = "resume_writing",
	[SB_DATAGRAM_RECEIVED] = "datagram_received",
	[SB_ERROR_RECEIVED] = "error_received",
	[SB_LOAD] = "its constructor (loading)",
	[SB_TASK] = "stream_task (in its task)",
};

static void	spawn(struct gen *g, unsigned slot);

void
gens_init(struct aloop_loop *loop, int debug, void (*all_gone)(void))
{
	memset(&G, 0, sizeof(G));
	G.loop = loop;
	G.debug = debug;
	G.all_gone = all_gone;
	G.kill_timer = G.quiet_timer = ALOOP_HANDLE_NONE;
}

const struct config *
gen_config(const struct gen *g)
{
	return g->cfg;
}

unsigned
gen_workers(const struct gen *g)
{
	return g->nslots;
}

/* ------------------------------------------------------------ reports */

/*
 * Where worker @w was, from the scoreboard: `in listener "x", plugin echo
 * (/usr/lib/aloop/plugins/echo.so), callback data_received`.
 */
static void
describe_where(const struct wproc *w, char *buf, size_t len)
{
	uint32_t where = atomic_load(&w->sb->where);
	const struct config *cfg = w->g->cfg;
	uint32_t idx = SB_WHERE_INDEX(where);
	unsigned cb = SB_WHERE_CALLBACK(where);
	char *file = NULL;

	if (where == 0 || idx >= cfg->nlisteners ||
	    cb >= sizeof(callback_names) / sizeof(callback_names[0]) ||
	    callback_names[cb] == NULL) {
		snprintf(buf, len, "outside any plugin callback");
		return;
	}
	(void)config_plugin_file(cfg, idx, &file);
	snprintf(buf, len, "in listener \"%s\", plugin %s (%s), callback %s",
	    cfg->listeners[idx].name, cfg->listeners[idx].protocol,
	    file != NULL ? file : "not found", callback_names[cb]);
	free(file);
}

int
gens_alive(void)
{
	return G.procs != NULL;
}

size_t
gens_connections(void)
{
	size_t n = 0;

	for (struct wproc *w = G.procs; w != NULL; w = w->next)
		n += atomic_load(&w->sb->nconns);
	return n;
}

static void
quiet_fire(void *arg)
{
	void (*fn)(void) = G.quiet_fn;

	(void)arg;
	aloop_handle_cancel(G.loop, G.quiet_timer);
	G.quiet_timer = ALOOP_HANDLE_NONE;
	G.quiet_fn = NULL;
	if (fn != NULL)
		fn();
}

static void
quiet_check(void)
{
	if (G.quiet_fn == NULL)
		return;
	for (struct wproc *w = G.procs; w != NULL; w = w->next)
		if (w->told && !w->acked)
			return;
	quiet_fire(NULL);
}

void
gens_after_quiet(void (*fn)(void))
{
	if (G.quiet_fn != NULL)
		quiet_fire(NULL);
	G.quiet_fn = fn;
	if (aloop_call_later(G.loop, QUIET_TIMEOUT, quiet_fire, NULL,
	    &G.quiet_timer) < 0)
		G.quiet_timer = ALOOP_HANDLE_NONE;
	quiet_check();
}

static void
tell(struct wproc *w, char what)
{
	if (what == WORKER_DRAIN)
		w->told = 1;
	if (w->ctl >= 0 && send(w->ctl, &what, 1, MSG_NOSIGNAL |
	    MSG_DONTWAIT) != 1)
		aloop_log(ALOOP_LOG_DEBUG, "worker %u (pid %d): not told: %s",
		    w->slot, (int)w->pid, strerror(errno));
}

static void
kill_proc(struct wproc *w)
{
	if (w->pid > 0)
		(void)kill(w->pid, SIGKILL);
}

/* ----------------------------------------------------------- generations */

/* The live generation @id, or NULL: what a call that may free one uses. */
static struct gen *
gen_by_id(unsigned id)
{
	for (struct gen *g = G.gens; g != NULL; g = g->next)
		if (g->id == id)
			return g;
	return NULL;
}

static void
gen_free(struct gen *g)
{
	for (struct gen **pp = &G.gens; *pp != NULL; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	if (G.current == g)
		G.current = NULL;
	aloop_handle_cancel(G.loop, g->timer);
	for (unsigned i = 0; g->slots != NULL && i < g->nslots; i++)
		aloop_handle_cancel(G.loop, g->slots[i].restart);
	sockets_free(g->socks);
	config_free(g->cfg);
	free(g->names);
	free(g->slots);
	free(g);
}

/* Free @g once it is neither current nor starting and has no process. */
static void
gen_maybe_free(struct gen *g)
{
	if (g->nprocs > 0 || g == G.current || g->state == GEN_STARTING ||
	    g->binding)
		return;
	aloop_log(ALOOP_LOG_DEBUG, "generation %u: every worker has exited",
	    g->id);
	gen_free(g);
	if (G.stopping && G.procs == NULL && G.all_gone != NULL)
		G.all_gone();
}

static void
gen_kill_timeout(void *arg)
{
	struct gen *g = arg;

	g->timer = ALOOP_HANDLE_NONE;
	for (struct wproc *w = G.procs; w != NULL; w = w->next)
		if (w->g == g) {
			aloop_log(ALOOP_LOG_WARNING, "worker %u (pid %d) of "
			    "generation %u did not finish; killing it",
			    w->slot, (int)w->pid, g->id);
			kill_proc(w);
		}
}

/* Abort @g's connections; SIGKILL what is left ABORT_GRACE later. */
static void
gen_abort(struct gen *g)
{
	if (g->aborted)
		return;
	g->aborted = 1;
	aloop_handle_cancel(G.loop, g->timer);
	for (struct wproc *w = G.procs; w != NULL; w = w->next)
		if (w->g == g)
			tell(w, WORKER_ABORT);
	if (aloop_call_later(G.loop, ABORT_GRACE, gen_kill_timeout, g,
	    &g->timer) < 0)
		gen_kill_timeout(g);
}

static void
gen_drain_timeout(void *arg)
{
	struct gen *g = arg;

	g->timer = ALOOP_HANDLE_NONE;
	aloop_log(ALOOP_LOG_NOTICE, "generation %u: shutdown_timeout of %g s "
	    "reached; closing its remaining connections", g->id,
	    g->cfg->daemon.shutdown_timeout);
	gen_abort(g);
}

/*
 * Stop @g accepting; its workers exit once their connections are done.
 * The workers keep their copies of the sockets while they drain; the
 * master lets go of its own now, so that a socket no generation serves
 * closes as soon as the last old worker stops accepting on it.
 */
static void
gen_stop_accepting(struct gen *g)
{
	g->state = GEN_DRAINING;
	sockets_free(g->socks);
	g->socks = NULL;
	aloop_handle_cancel(G.loop, g->timer);
	g->timer = ALOOP_HANDLE_NONE;
	for (unsigned i = 0; i < g->nslots; i++) {
		aloop_handle_cancel(G.loop, g->slots[i].restart);
		g->slots[i].restart = ALOOP_HANDLE_NONE;
	}
	for (struct wproc *w = G.procs; w != NULL; w = w->next)
		if (w->g == g) {
			atomic_store(&w->sb->state, SB_DRAINING);
			tell(w, WORKER_DRAIN);
		}
}

/* A generation a newer one replaced: drain, within shutdown_timeout. */
static void
gen_drain(struct gen *g)
{
	if (g->state == GEN_DRAINING)
		return;
	gen_stop_accepting(g);
	if (g->nprocs == 0) {
		gen_maybe_free(g);
		return;
	}
	if (aloop_call_later(G.loop, g->cfg->daemon.shutdown_timeout,
	    gen_drain_timeout, g, &g->timer) < 0)
		gen_abort(g);
}

/* A new generation that cannot serve: kill what it started. */
static void
gen_fail(struct gen *g, const char *why)
{
	struct gen_hooks h = g->hooks;
	unsigned id = g->id;

	g->state = GEN_DRAINING;
	aloop_handle_cancel(G.loop, g->timer);
	g->timer = ALOOP_HANDLE_NONE;
	for (struct wproc *w = G.procs; w != NULL; w = w->next)
		if (w->g == g)
			kill_proc(w);
	h.failed(g, why, h.arg);
	/* The caller may have stopped everything, this one included. */
	if ((g = gen_by_id(id)) != NULL)
		gen_maybe_free(g);
}

static void
gen_start_timeout(void *arg)
{
	struct gen *g = arg;

	g->timer = ALOOP_HANDLE_NONE;
	gen_fail(g, "the new workers did not start serving in time");
}

void
gen_promote(struct gen *g)
{
	struct gen *old = G.current;

	g->state = GEN_ACTIVE;
	G.current = g;
	if (old != NULL && old != g)
		gen_drain(old);
}

static void
gen_bound(struct socktab *tab, int result, void *arg)
{
	struct gen *g = arg;
	unsigned id = g->id;

	g->binding = 0;
	g->socks = tab;
	if (result < 0) {
		gen_fail(g, "a listener could not be opened");
		return;
	}
	if (G.stopping || g->state != GEN_STARTING) {
		gen_fail(g, "stopping");
		return;
	}
	for (unsigned i = 0; i < g->nslots; i++) {
		spawn(g, i);
		/* A failed spawn fails the generation, which may be gone. */
		if ((g = gen_by_id(id)) == NULL || g->state != GEN_STARTING)
			return;
	}
	if (aloop_call_later(G.loop, START_TIMEOUT, gen_start_timeout, g,
	    &g->timer) < 0)
		gen_fail(g, "out of memory");
}

int
gen_start(struct config *cfg, const struct gen_hooks *h, struct gen **out)
{
	struct socktab *tab = NULL;
	struct gen *g;
	int r;

	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		config_free(cfg);
		return ALOOP_ENOMEM;
	}
	g->id = ++G.ids;
	g->cfg = cfg;
	g->state = GEN_STARTING;
	g->nslots = cfg->daemon.workers;
	g->timer = ALOOP_HANDLE_NONE;
	g->hooks = *h;
	g->slots = calloc(g->nslots, sizeof(*g->slots));
	g->names = calloc(cfg->nlisteners + 1, sizeof(*g->names));
	if (g->slots == NULL || g->names == NULL) {
		free(g->slots);
		free(g->names);
		config_free(cfg);
		free(g);
		return ALOOP_ENOMEM;
	}
	for (unsigned i = 0; i < g->nslots; i++)
		g->slots[i].restart = ALOOP_HANDLE_NONE;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		g->names[i] = cfg->listeners[i].name;
	g->next = G.gens;
	G.gens = g;
	g->binding = 1;
	if ((r = sockets_bind(G.loop, cfg, g->nslots, gen_bound, g,
	    &tab)) < 0) {
		g->state = GEN_DRAINING;
		gen_free(g);
		return r;
	}
	*out = g;
	return 0;
}

/* ------------------------------------------------------------- workers */

static void
on_worker_msg(void *arg)
{
	struct wproc *w = arg;
	struct gen *g = w->g;
	char buf[16];
	ssize_t n;

	n = recv(w->ctl, buf, sizeof(buf), MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Dying; SIGCHLD tells the rest. */
		(void)aloop_remove_reader(G.loop, w->ctl);
		close(w->ctl);
		w->ctl = -1;
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == WORKER_STOPPED) {
			w->acked = 1;
			quiet_check();
			continue;
		}
		if (buf[i] != WORKER_READY || w->ready)
			continue;
		w->ready = 1;
		if (g->state == GEN_STARTING) {
			if (++g->nready == g->nslots) {
				aloop_handle_cancel(G.loop, g->timer);
				g->timer = ALOOP_HANDLE_NONE;
				g->hooks.serving(g, g->hooks.arg);
			}
		} else if (g->slots[w->slot].died > 0)
			aloop_log(ALOOP_LOG_NOTICE, "worker %u (pid %d) serves, "
			    "%.0f ms after its predecessor died", w->slot,
			    (int)w->pid, (aloop_time(G.loop) -
			    g->slots[w->slot].died) * 1000);
	}
}

static void
spawn(struct gen *g, unsigned slot)
{
	struct worker_spec ws;
	struct wproc *w;
	int sv[2], *keep;
	size_t nkeep;
	pid_t pid;
	int r;

	g->slots[slot].restart = ALOOP_HANDLE_NONE;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto fail;
	w->g = g;
	w->slot = slot;
	w->ctl = -1;
	if ((w->sb = sb_worker_new(slot, g->id, g->names,
	    g->cfg->nlisteners)) == NULL)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "socketpair");
		goto fail;
	}
	memset(&ws, 0, sizeof(ws));
	ws.cfg = g->cfg;
	ws.socks = g->socks;
	ws.sb = w->sb;
	ws.slot = slot;
	ws.nslots = g->nslots;
	ws.ctl = sv[1];
	ws.debug = G.debug;
	ws.master = getpid();
	if ((keep = worker_keep_fds(&ws, &nkeep)) == NULL) {
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	r = proc_fork(keep, nkeep, &pid);
	free(keep);
	if (r < 0) {
		aloop_log(ALOOP_LOG_ERR, "worker %u: fork: %s", slot,
		    aloop_strerror(r));
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	if (pid == 0)
		worker_run(&ws);
	close(sv[1]);
	w->ctl = sv[0];
	w->pid = pid;
	w->sb->pid = pid;
	w->next = G.procs;
	G.procs = w;
	g->nprocs++;
	g->slots[slot].w = w;
	if (aloop_add_reader(G.loop, w->ctl, on_worker_msg, w) < 0)
		aloop_log(ALOOP_LOG_ERR, "worker %u (pid %d): cannot listen "
		    "to it", slot, (int)pid);
	aloop_log(ALOOP_LOG_DEBUG, "generation %u: worker %u is pid %d",
	    g->id, slot, (int)pid);
	return;
fail:
	if (w != NULL && w->sb != NULL)
		sb_worker_free(w->sb);
	free(w);
	if (g->state == GEN_STARTING)
		gen_fail(g, "cannot start a worker");
	else
		aloop_log(ALOOP_LOG_ERR, "worker %u: cannot start a "
		    "replacement", slot);
}

static void
respawn(void *arg)
{
	struct slot *s = arg;
	struct gen *g = G.current;

	s->restart = ALOOP_HANDLE_NONE;
	if (g == NULL || s < g->slots || s >= g->slots + g->nslots ||
	    G.stopping)
		return;
	spawn(g, (unsigned)(s - g->slots));
}

/* A current worker died: replace it now, or later if it keeps dying. */
static void
replace(struct gen *g, unsigned slot)
{
	struct slot *s = &g->slots[slot];
	double now = aloop_time(G.loop);
	unsigned recent = 0;

	s->died = now;
	s->deaths[s->ndeaths++ % CRASH_BURST] = now;
	for (unsigned i = 0; i < CRASH_BURST && i < s->ndeaths; i++)
		if (now - s->deaths[i] <= CRASH_WINDOW)
			recent++;
	if (recent < CRASH_BURST) {
		s->backoff = 0;
		spawn(g, slot);
		return;
	}
	s->backoff = s->backoff > 0 ? s->backoff * 2 : BACKOFF_FIRST;
	if (s->backoff > BACKOFF_MAX)
		s->backoff = BACKOFF_MAX;
	aloop_log(ALOOP_LOG_ERR, "worker %u died %u times in %g s: starting "
	    "it again in %g s", slot, recent, CRASH_WINDOW, s->backoff);
	if (aloop_call_later(G.loop, s->backoff, respawn, s, &s->restart) < 0)
		spawn(g, slot);
}

static void
worker_died(struct wproc *w, int status)
{
	struct gen *g = w->g;
	char how[64], where[PATH_MAX + 256];
	const char *reason = NULL;

	describe_where(w, where, sizeof(where));
	proc_status(status, how, sizeof(how));
	if (w->stalled)
		reason = "stall";
	else if (WIFSIGNALED(status))
		reason = "signal";
	else if (!proc_exited_cleanly(status))
		reason = "exit";
	for (struct wproc **pp = &G.procs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	if (w->ctl >= 0) {
		(void)aloop_remove_reader(G.loop, w->ctl);
		close(w->ctl);
	}
	/* Its counters stay counted, its open connections as closed. */
	sb_worker_free(w->sb);
	g->nprocs--;
	if (g->slots[w->slot].w == w)
		g->slots[w->slot].w = NULL;

	if (g->state == GEN_STARTING && !G.stopping) {
		char why[PATH_MAX + 384];

		snprintf(why, sizeof(why), "worker %u (pid %d) %s %s", w->slot,
		    (int)w->pid, how, where);
		free(w);
		gen_fail(g, why);
		return;
	}
	if (g == G.current && !G.stopping) {
		/* One line says it all: who, how, and in which plugin. */
		aloop_log(ALOOP_LOG_ERR, "worker %u (pid %d) %s %s; starting a "
		    "new one", w->slot, (int)w->pid, w->stalled ?
		    "was killed for stalling" : how, where);
		metrics_restart(reason != NULL ? reason : "exit");
		replace(g, w->slot);
	} else if (reason != NULL)
		aloop_log(ALOOP_LOG_WARNING, "worker %u (pid %d) of generation "
		    "%u %s %s", w->slot, (int)w->pid, g->id, how, where);
	else
		aloop_log(ALOOP_LOG_DEBUG, "worker %u (pid %d) of generation "
		    "%u exited", w->slot, (int)w->pid, g->id);
	free(w);
	quiet_check();
	gen_maybe_free(g);
}

void
gens_reap(void)
{
	struct wproc *w, *next;
	int status;
	pid_t p;

	/* Only our own, by pid: other children have their own reapers. */
	for (w = G.procs; w != NULL; w = next) {
		next = w->next;
		do {
			p = waitpid(w->pid, &status, WNOHANG);
		} while (p == -1 && errno == EINTR);
		if (p == w->pid)
			worker_died(w, status);
	}
}

void
gens_check_stalls(void)
{
	uint64_t now = sb_now_ms();

	for (struct wproc *w = G.procs; w != NULL; w = w->next) {
		double stall = w->g->cfg->daemon.worker_stall_timeout;
		uint64_t beat = atomic_load(&w->sb->heartbeat);
		char where[PATH_MAX + 256];

		if (stall <= 0 || w->stalled || now < beat ||
		    (double)(now - beat) < stall * 1000)
			continue;
		describe_where(w, where, sizeof(where));
		aloop_log(ALOOP_LOG_ERR, "worker %u (pid %d) stalled for %.1f s "
		    "%s; killing it", w->slot, (int)w->pid,
		    (double)(now - beat) / 1000, where);
		w->stalled = 1;
		kill_proc(w);
	}
}

/* -------------------------------------------------------------- stop */

void
gens_stop(void)
{
	struct gen *g, *next;

	G.stopping = 1;
	G.current = NULL;
	for (g = G.gens; g != NULL; g = g->next)
		gen_stop_accepting(g);
	for (g = G.gens; g != NULL; g = next) {
		next = g->next;
		gen_maybe_free(g);
	}
}

static void
kill_all(void *arg)
{
	(void)arg;
	G.kill_timer = ALOOP_HANDLE_NONE;
	for (struct wproc *w = G.procs; w != NULL; w = w->next) {
		aloop_log(ALOOP_LOG_WARNING, "worker %u (pid %d) did not "
		    "finish; killing it", w->slot, (int)w->pid);
		kill_proc(w);
	}
}

void
gens_abort(void)
{
	for (struct gen *g = G.gens; g != NULL; g = g->next) {
		g->aborted = 1;
		aloop_handle_cancel(G.loop, g->timer);
		g->timer = ALOOP_HANDLE_NONE;
	}
	for (struct wproc *w = G.procs; w != NULL; w = w->next)
		tell(w, WORKER_ABORT);
	aloop_handle_cancel(G.loop, G.kill_timer);
	if (aloop_call_later(G.loop, ABORT_GRACE, kill_all, NULL,
	    &G.kill_timer) < 0)
		kill_all(NULL);
}

void
gens_free_all(void)
{
	struct wproc *w;
	int status;

	for (w = G.procs; w != NULL; w = w->next)
		kill_proc(w);
	while ((w = G.procs) != NULL) {
		/* SIGKILLed: the wait is as long as the kernel's teardown. */
		if (waitpid(w->pid, &status, 0) == -1 && errno == EINTR)
			continue;
		G.procs = w->next;
		if (w->ctl >= 0)
			close(w->ctl);
		free(w);
	}
	while (G.gens != NULL) {
		struct gen *g = G.gens;

		G.gens = g->next;
		aloop_handle_cancel(G.loop, g->timer);
		sockets_free(g->socks);
		config_free(g->cfg);
		free(g->names);
		free(g->slots);
		free(g);
	}
	G.current = NULL;
}
