/*
 * The master: generations of workers and their supervision.
 *
 * A generation is one configuration with its sockets and one worker
 * process per slot.  Start-up and every reload make a generation: bind
 * (or keep) its sockets, fork its workers, wait until each says it
 * serves, and only then let the previous generation drain.  While a
 * generation is current, a worker that dies is replaced at once (with a
 * back-off for one that keeps dying), and a worker whose heartbeat stops
 * is killed and replaced.  Every wait has a timer behind it.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "activation.h"
#include "check.h"
#include "config-int.h"
#include "logsink.h"
#include "master.h"
#include "metrics.h"
#include "notify.h"
#include "proc.h"
#include "scoreboard.h"
#include "sockets.h"
#include "worker.h"

/* How long a new generation may take to serve before it is given up. */
#define START_TIMEOUT		30.0
/* After an abort, how long workers get before SIGKILL. */
#define ABORT_GRACE		1.0
/* STATUS= at most this often (seconds). */
#define STATUS_INTERVAL		5.0
/* A worker dying this often (deaths, seconds) is restarted with back-off. */
#define CRASH_BURST		5
#define CRASH_WINDOW		10.0
#define BACKOFF_FIRST		1.0
#define BACKOFF_MAX		30.0
/* How long "stopped accepting" is awaited from every worker. */
#define QUIET_TIMEOUT		2.0
/* How long a new binary may take to take over. */
#define UPGRADE_TIMEOUT		60.0

enum gen_state { GEN_STARTING, GEN_ACTIVE, GEN_DRAINING };

struct gen;

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
	double			 forked;	/* loop time */
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
};

struct master {
	struct aloop_loop	*loop;
	struct master_options	 o;
	struct gen		*gens;		/* every live generation */
	struct gen		*current;	/* serving */
	struct gen		*next;		/* starting */
	struct wproc		*procs;
	unsigned		 gen_ids;
	int			 status;	/* the exit status */
	int			 started;
	int			 stopping;
	int			 aborting;
	int			 checking;	/* a reload's plugin check */
	int			 reload_again;	/* SIGHUP while reloading */
	aloop_handle_t		 stop_timer;
	double			 shutdown_timeout; /* of the stop under way */
	int			 stop_signal;
	/* What to say once every worker told to stop accepting has. */
	void			(*quiet_fn)(void);
	aloop_handle_t		 quiet_timer;
	int			 ready_fd;	/* detach()'s pipe, or -1 */
	int			 upgrade_fd;	/* to the old master, or -1 */
	char			*pidfile;
	char			*exe;		/* for a binary upgrade */
	/* A binary upgrade in progress, or done. */
	pid_t			 heir;
	int			 heir_fd;
	aloop_handle_t		 heir_timer;
	int			 handed_over;
	/* Housekeeping. */
	double			 tick;
	double			 watchdog;	/* ping period; 0: none */
	double			 next_status;
	size_t			 last_conns;
	int			 status_sent;
};

static struct master M;

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
};

static void	spawn(struct gen *g, unsigned slot);
static void	gen_maybe_free(struct gen *g);
static void	stop(int signum);
static void	reload(void);

/* ------------------------------------------------------------ reports */

/*
 * Where worker @w was, from the scoreboard: `listener "x", plugin echo
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

static size_t
total_connections(void)
{
	size_t n = 0;

	for (struct wproc *w = M.procs; w != NULL; w = w->next)
		n += atomic_load(&w->sb->nconns);
	return n;
}

/*
 * Reports wait until workers have stopped accepting, so that what they
 * say ("stopping", "reloaded") is true when read: a client that connects
 * after the line is refused by a removed listener.  A worker that does
 * not answer (stuck in a plugin) holds the report back QUIET_TIMEOUT.
 */
static void
quiet_fire(void *arg)
{
	void (*fn)(void) = M.quiet_fn;

	(void)arg;
	aloop_handle_cancel(M.loop, M.quiet_timer);
	M.quiet_timer = ALOOP_HANDLE_NONE;
	M.quiet_fn = NULL;
	if (fn != NULL)
		fn();
}

static void
quiet_check(void)
{
	if (M.quiet_fn == NULL)
		return;
	for (struct wproc *w = M.procs; w != NULL; w = w->next)
		if (w->told && !w->acked)
			return;
	quiet_fire(NULL);
}

static void
after_quiet(void (*fn)(void))
{
	if (M.quiet_fn != NULL)
		quiet_fire(NULL);
	M.quiet_fn = fn;
	if (aloop_call_later(M.loop, QUIET_TIMEOUT, quiet_fire, NULL,
	    &M.quiet_timer) < 0)
		M.quiet_timer = ALOOP_HANDLE_NONE;
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

static void
gen_free(struct gen *g)
{
	for (struct gen **pp = &M.gens; *pp != NULL; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	if (M.current == g)
		M.current = NULL;
	if (M.next == g)
		M.next = NULL;
	aloop_handle_cancel(M.loop, g->timer);
	for (unsigned i = 0; g->slots != NULL && i < g->nslots; i++)
		aloop_handle_cancel(M.loop, g->slots[i].restart);
	sockets_free(g->socks);
	config_free(g->cfg);
	free(g->names);
	free(g->slots);
	free(g);
}

/* Free @g once it is no longer current and its last process is gone. */
static void
gen_maybe_free(struct gen *g)
{
	if (g->nprocs > 0 || g == M.current || g == M.next)
		return;
	aloop_log(ALOOP_LOG_DEBUG, "generation %u: every worker has exited",
	    g->id);
	gen_free(g);
	if (M.stopping && M.procs == NULL) {
		if (!M.aborting)
			aloop_log(ALOOP_LOG_NOTICE, "every connection is "
			    "closed");
		aloop_stop(M.loop);
	}
}

static void
gen_kill_timeout(void *arg)
{
	struct gen *g = arg;

	g->timer = ALOOP_HANDLE_NONE;
	for (struct wproc *w = M.procs; w != NULL; w = w->next)
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
	aloop_handle_cancel(M.loop, g->timer);
	for (struct wproc *w = M.procs; w != NULL; w = w->next)
		if (w->g == g)
			tell(w, WORKER_ABORT);
	if (aloop_call_later(M.loop, ABORT_GRACE, gen_kill_timeout, g,
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

/* Stop @g accepting; its workers exit once their connections are done. */
static void
gen_drain(struct gen *g)
{
	if (g->state == GEN_DRAINING)
		return;
	g->state = GEN_DRAINING;
	/*
	 * The workers keep their copies while they drain; the master lets
	 * go of its own now, so that a socket no generation serves closes as
	 * soon as the last old worker stops accepting on it.
	 */
	sockets_free(g->socks);
	g->socks = NULL;
	aloop_handle_cancel(M.loop, g->timer);
	g->timer = ALOOP_HANDLE_NONE;
	for (unsigned i = 0; i < g->nslots; i++) {
		aloop_handle_cancel(M.loop, g->slots[i].restart);
		g->slots[i].restart = ALOOP_HANDLE_NONE;
	}
	for (struct wproc *w = M.procs; w != NULL; w = w->next)
		if (w->g == g) {
			atomic_store(&w->sb->state, SB_DRAINING);
			tell(w, WORKER_DRAIN);
		}
	if (g->nprocs == 0) {
		gen_maybe_free(g);
		return;
	}
	if (aloop_call_later(M.loop, g->cfg->daemon.shutdown_timeout,
	    gen_drain_timeout, g, &g->timer) < 0)
		gen_abort(g);
}

/* A new generation that cannot serve: kill what it started. */
static void
gen_fail(struct gen *g, const char *why)
{
	int starting = !M.started;

	if (starting)
		aloop_log(ALOOP_LOG_ERR, "start-up failed: %s", why);
	else
		aloop_log(ALOOP_LOG_ERR, "reload failed: %s; keeping the running "
		    "configuration", why);
	if (M.next == g)
		M.next = NULL;
	g->state = GEN_DRAINING;
	for (struct wproc *w = M.procs; w != NULL; w = w->next)
		if (w->g == g)
			kill_proc(w);
	if (starting) {
		/* stop() frees @g, now or once its processes are reaped. */
		M.status = 1;
		stop(0);
		return;
	}
	metrics_reload(0);
	(void)notify_ready();
	gen_maybe_free(g);
}

static void
gen_start_timeout(void *arg)
{
	struct gen *g = arg;

	g->timer = ALOOP_HANDLE_NONE;
	gen_fail(g, "the new workers did not start serving in time");
}

/* Whether @s is the same user, group and pidfile as what runs now. */
static int
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
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
	if (write(fd, buf, (size_t)n) != n || close(fd) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "pidfile %s", path);
		(void)unlink(path);
		return -1;
	}
	return 0;
}

/* Unlink the pidfile only if it still names this process. */
static void
remove_pidfile(void)
{
	char buf[32];
	ssize_t n;
	int fd;

	if (M.pidfile == NULL)
		return;
	if ((fd = open(M.pidfile, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (strtol(buf, NULL, 10) == (long)getpid())
				(void)unlink(M.pidfile);
		}
	}
}

/* Start-up is done: the first generation serves. */
static void
started(struct gen *g)
{
	const struct config *cfg = g->cfg;
	char r = 'R';

	M.started = 1;
	sockets_drop_unclaimed();
	if (cfg->daemon.pidfile != NULL) {
		if ((M.pidfile = strdup(cfg->daemon.pidfile)) == NULL ||
		    write_pidfile(M.pidfile) < 0) {
			free(M.pidfile);
			M.pidfile = NULL;
			M.status = 1;
			stop(0);
			return;
		}
	}
	if (cfg->daemon.user != NULL || cfg->daemon.group != NULL) {
		if (geteuid() != 0)
			aloop_log(ALOOP_LOG_INFO, "not started as root: workers "
			    "keep the current user");
		else
			aloop_log(ALOOP_LOG_INFO, "workers run as %s%s%s",
			    cfg->daemon.user != NULL ? cfg->daemon.user : "",
			    cfg->daemon.group != NULL ? ":" : "",
			    cfg->daemon.group != NULL ? cfg->daemon.group : "");
	}
	aloop_log(ALOOP_LOG_NOTICE, "aloopd %s started: %zu listener%s, %u "
	    "worker%s", PACKAGE_VERSION, cfg->nlisteners,
	    cfg->nlisteners == 1 ? "" : "s", g->nslots,
	    g->nslots == 1 ? "" : "s");
	if (M.upgrade_fd >= 0) {
		char state[64];

		/* The old master learns it may go; systemd, who is main. */
		snprintf(state, sizeof(state), "MAINPID=%ld", (long)getpid());
		(void)notify_send(state);
		if (write(M.upgrade_fd, &r, 1) != 1)
			aloop_log_errno(ALOOP_LOG_WARNING, "cannot tell the "
			    "old master");
		close(M.upgrade_fd);
		M.upgrade_fd = -1;
	}
	(void)notify_ready();
	if (M.ready_fd >= 0) {
		if (write(M.ready_fd, &r, 1) != 1)
			aloop_log_errno(ALOOP_LOG_WARNING, "detach");
		close(M.ready_fd);
		M.ready_fd = -1;
	}
}

/* A reload took: the new generation serves, the old one accepts no more. */
static void
reloaded(void)
{
	const struct gen *g = M.current;

	if (g == NULL)
		return;
	aloop_log(ALOOP_LOG_NOTICE, "reloaded %s: %zu listener%s, %u "
	    "worker%s", M.o.config_path, g->cfg->nlisteners,
	    g->cfg->nlisteners == 1 ? "" : "s", g->nslots,
	    g->nslots == 1 ? "" : "s");
	metrics_reload(1);
	(void)notify_ready();
	if (M.reload_again) {
		M.reload_again = 0;
		reload();
	}
}

/* Every slot of @g serves: it becomes current, the old one drains. */
static void
gen_commit(struct gen *g)
{
	struct gen *old = M.current;

	aloop_handle_cancel(M.loop, g->timer);
	g->timer = ALOOP_HANDLE_NONE;
	g->state = GEN_ACTIVE;
	M.current = g;
	if (M.next == g)
		M.next = NULL;
	if (!M.started) {
		started(g);
		return;
	}
	aloop_log_set_level(M.o.debug ? ALOOP_LOG_DEBUG :
	    g->cfg->daemon.log_level);
	if (old != NULL)
		gen_drain(old);
	after_quiet(reloaded);
}

static void
gen_bound(struct socktab *tab, int result, void *arg)
{
	struct gen *g = arg;

	g->socks = tab;
	if (result < 0) {
		gen_fail(g, "a listener could not be opened");
		return;
	}
	if (M.stopping) {
		gen_fail(g, "stopping");
		return;
	}
	for (unsigned i = 0; i < g->nslots; i++) {
		spawn(g, i);
		if (M.next != g)
			return;	/* failed, and maybe freed */
	}
	if (aloop_call_later(M.loop, START_TIMEOUT, gen_start_timeout, g,
	    &g->timer) < 0)
		gen_fail(g, "out of memory");
}

/* Make a generation of @cfg (taking it) and start binding its sockets. */
static int
gen_new(struct config *cfg)
{
	struct socktab *tab = NULL;
	struct gen *g;

	if ((g = calloc(1, sizeof(*g))) == NULL) {
		config_free(cfg);
		return -1;
	}
	g->id = ++M.gen_ids;
	g->cfg = cfg;
	g->state = GEN_STARTING;
	g->nslots = cfg->daemon.workers;
	g->timer = ALOOP_HANDLE_NONE;
	g->slots = calloc(g->nslots, sizeof(*g->slots));
	g->names = calloc(cfg->nlisteners + 1, sizeof(*g->names));
	if (g->slots == NULL || g->names == NULL) {
		free(g->slots);
		free(g->names);
		config_free(cfg);
		free(g);
		return -1;
	}
	for (unsigned i = 0; i < g->nslots; i++)
		g->slots[i].restart = ALOOP_HANDLE_NONE;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		g->names[i] = cfg->listeners[i].name;
	g->next = M.gens;
	M.gens = g;
	M.next = g;
	if (sockets_bind(M.loop, cfg, g->nslots, gen_bound, g, &tab) < 0) {
		M.next = NULL;
		gen_free(g);
		return -1;
	}
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
		(void)aloop_remove_reader(M.loop, w->ctl);
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
			if (++g->nready == g->nslots)
				gen_commit(g);
		} else if (g->slots[w->slot].died > 0)
			aloop_log(ALOOP_LOG_NOTICE, "worker %u (pid %d) serves, "
			    "%.0f ms after its predecessor died", w->slot,
			    (int)w->pid, (aloop_time(M.loop) -
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
	ws.generation = g->id;
	ws.ctl = sv[1];
	ws.debug = M.o.debug;
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
	w->forked = aloop_time(M.loop);
	w->next = M.procs;
	M.procs = w;
	g->nprocs++;
	g->slots[slot].w = w;
	if (aloop_add_reader(M.loop, w->ctl, on_worker_msg, w) < 0)
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
	struct gen *g = M.current;

	s->restart = ALOOP_HANDLE_NONE;
	if (g == NULL || s < g->slots || s >= g->slots + g->nslots ||
	    M.stopping)
		return;
	spawn(g, (unsigned)(s - g->slots));
}

/* A current worker died: replace it now, or later if it keeps dying. */
static void
replace(struct gen *g, unsigned slot)
{
	struct slot *s = &g->slots[slot];
	double now = aloop_time(M.loop);
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
	if (aloop_call_later(M.loop, s->backoff, respawn, s, &s->restart) < 0)
		spawn(g, slot);
}

static void
worker_died(struct wproc *w, int status)
{
	struct gen *g = w->g;
	char how[64], where[PATH_MAX + 256];
	const char *reason = NULL;
	int clean = proc_exited_cleanly(status);

	describe_where(w, where, sizeof(where));
	proc_status(status, how, sizeof(how));
	if (w->stalled)
		reason = "stall";
	else if (WIFSIGNALED(status))
		reason = "signal";
	else if (!clean)
		reason = "exit";
	for (struct wproc **pp = &M.procs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	if (w->ctl >= 0) {
		(void)aloop_remove_reader(M.loop, w->ctl);
		close(w->ctl);
	}
	sb_worker_free(w->sb);
	g->nprocs--;
	if (g->slots[w->slot].w == w)
		g->slots[w->slot].w = NULL;

	if (g->state == GEN_STARTING && !M.stopping) {
		char why[PATH_MAX + 384];

		snprintf(why, sizeof(why), "worker %u (pid %d) %s %s", w->slot,
		    (int)w->pid, how, where);
		free(w);
		gen_fail(g, why);
		return;
	} else if (g == M.current && !M.stopping) {
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

/* Reap every child that has ended; only our own, by pid. */
static void
reap(void)
{
	struct wproc *w, *next;
	int status;
	pid_t p;

	for (w = M.procs; w != NULL; w = next) {
		next = w->next;
		do {
			p = waitpid(w->pid, &status, WNOHANG);
		} while (p == -1 && errno == EINTR);
		if (p == w->pid)
			worker_died(w, status);
	}
	if (M.heir > 0) {
		p = waitpid(M.heir, &status, WNOHANG);
		if (p == M.heir) {
			char how[64];

			if (!M.handed_over)
				aloop_log(ALOOP_LOG_ERR, "binary upgrade failed: "
				    "the new master %s", proc_status(status,
				    how, sizeof(how)));
			M.heir = 0;
		}
	}
}

static void
on_sigchld(void *arg)
{
	(void)arg;
	reap();
}

/* Kill workers whose loop has not beaten for worker_stall_timeout. */
static void
check_stalls(void)
{
	uint64_t now = sb_now_ms();

	for (struct wproc *w = M.procs; w != NULL; w = w->next) {
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

/* ------------------------------------------------------------ reload */

static void
warn_restart_only(const struct config *cfg)
{
	const struct config_daemon *old = &M.current->cfg->daemon;
	const struct config_daemon *new = &cfg->daemon;

	if (new->log_target != old->log_target)
		aloop_log(ALOOP_LOG_WARNING, "reload: log_target changed; "
		    "that takes a restart");
	if (str_differs(new->pidfile, old->pidfile))
		aloop_log(ALOOP_LOG_WARNING, "reload: a pidfile change takes "
		    "a restart");
}

static void
reload_checked(struct config *cfg, int r, void *arg)
{
	(void)arg;
	M.checking = 0;
	if (r != 0 || M.stopping) {
		for (size_t e = 0; e < cfg->nerrors; e++)
			aloop_log(ALOOP_LOG_ERR, "%s", cfg->errors[e]);
		config_free(cfg);
		if (M.stopping)
			return;
		aloop_log(ALOOP_LOG_ERR, "reload failed: %s; keeping the "
		    "running configuration", aloop_strerror(r));
		metrics_reload(0);
		(void)notify_ready();
		return;
	}
	warn_restart_only(cfg);
	if (gen_new(cfg) < 0) {
		aloop_log(ALOOP_LOG_ERR, "reload failed; keeping the running "
		    "configuration");
		metrics_reload(0);
		(void)notify_ready();
	}
}

static void
reload(void)
{
	struct config *cfg = NULL;
	int r;

	if (M.stopping || M.handed_over)
		return;
	if (M.checking || M.next != NULL || M.heir > 0) {
		/* Once the one in progress is done, from the file as it is. */
		aloop_log(ALOOP_LOG_NOTICE, "reload requested while another "
		    "is in progress: it follows");
		M.reload_again = 1;
		return;
	}
	(void)notify_reloading();
	aloop_log(ALOOP_LOG_NOTICE, "reloading %s", M.o.config_path);
	r = config_parse(M.o.config_path, &cfg);
	if (r == 0) {
		/* The plugins are checked in a child, as `aloopd -t` does. */
		M.checking = 1;
		if ((r = check_plugins_async(M.loop, cfg, reload_checked,
		    NULL)) == 0)
			return;
		M.checking = 0;
	}
	for (size_t e = 0; cfg != NULL && e < cfg->nerrors; e++)
		aloop_log(ALOOP_LOG_ERR, "%s", cfg->errors[e]);
	aloop_log(ALOOP_LOG_ERR, "reload failed: %s; keeping the running "
	    "configuration", aloop_strerror(r));
	config_free(cfg);
	metrics_reload(0);
	(void)notify_ready();
}

static void
on_sighup(void *arg)
{
	(void)arg;
	reload();
}

/* -------------------------------------------------------------- stop */

static void
stop_kill(void *arg)
{
	(void)arg;
	M.stop_timer = ALOOP_HANDLE_NONE;
	for (struct wproc *w = M.procs; w != NULL; w = w->next) {
		aloop_log(ALOOP_LOG_WARNING, "worker %u (pid %d) did not "
		    "finish; killing it", w->slot, (int)w->pid);
		kill_proc(w);
	}
}

static void
abort_all(void)
{
	if (M.aborting)
		return;
	M.aborting = 1;
	aloop_handle_cancel(M.loop, M.stop_timer);
	M.stop_timer = ALOOP_HANDLE_NONE;
	if (M.procs != NULL)
		aloop_log(ALOOP_LOG_NOTICE, "closing %zu remaining "
		    "connection%s", total_connections(),
		    total_connections() == 1 ? "" : "s");
	for (struct gen *g = M.gens; g != NULL; g = g->next)
		g->aborted = 1;
	for (struct wproc *w = M.procs; w != NULL; w = w->next)
		tell(w, WORKER_ABORT);
	if (aloop_call_later(M.loop, ABORT_GRACE, stop_kill, NULL,
	    &M.stop_timer) < 0)
		stop_kill(NULL);
}

static void
stop_timeout(void *arg)
{
	(void)arg;
	M.stop_timer = ALOOP_HANDLE_NONE;
	aloop_log(ALOOP_LOG_NOTICE, "shutdown_timeout of %g s reached",
	    M.shutdown_timeout);
	abort_all();
}

static void
stopping_said(void)
{
	size_t conns = total_connections();

	if (M.stop_signal != 0)
		aloop_log(ALOOP_LOG_NOTICE, "%s: stopping; %zu connection%s "
		    "may finish within %g s", strsignal(M.stop_signal), conns,
		    conns == 1 ? "" : "s", M.shutdown_timeout);
}

/* Stop: every generation drains; @signum 0 for a failed start. */
static void
stop(int signum)
{
	double timeout = M.current != NULL ?
	    M.current->cfg->daemon.shutdown_timeout : 0;

	if (M.stopping) {
		if (signum != 0) {
			aloop_log(ALOOP_LOG_NOTICE, "%s again: stopping now",
			    strsignal(signum));
			abort_all();
		}
		return;
	}
	M.stopping = 1;
	M.shutdown_timeout = timeout;
	M.stop_signal = signum;
	(void)notify_stopping();
	/*
	 * The master's copies go first, so that a socket closes (and a
	 * client is refused rather than left in a backlog nobody reads) as
	 * soon as the last worker stops accepting on it.
	 */
	for (struct gen *g = M.gens; g != NULL; g = g->next) {
		sockets_free(g->socks);
		g->socks = NULL;
	}
	if (!M.handed_over)
		sockets_close_all();
	for (struct gen *g = M.gens; g != NULL; g = g->next) {
		g->state = GEN_DRAINING;
		aloop_handle_cancel(M.loop, g->timer);
		g->timer = ALOOP_HANDLE_NONE;
		for (unsigned i = 0; i < g->nslots; i++) {
			aloop_handle_cancel(M.loop, g->slots[i].restart);
			g->slots[i].restart = ALOOP_HANDLE_NONE;
		}
	}
	M.current = M.next = NULL;
	for (struct wproc *w = M.procs; w != NULL; w = w->next) {
		atomic_store(&w->sb->state, SB_DRAINING);
		tell(w, WORKER_DRAIN);
	}
	/* Generations without a process left go now. */
	for (struct gen *g = M.gens, *next; g != NULL; g = next) {
		next = g->next;
		gen_maybe_free(g);
	}
	if (M.procs == NULL) {
		stopping_said();
		aloop_stop(M.loop);
		return;
	}
	after_quiet(stopping_said);
	if (aloop_call_later(M.loop, timeout, stop_timeout, NULL,
	    &M.stop_timer) < 0)
		abort_all();
}

static void
on_sigterm(void *arg)
{
	(void)arg;
	stop(SIGTERM);
}

static void
on_sigint(void *arg)
{
	(void)arg;
	stop(SIGINT);
}

/* ------------------------------------------------------ binary upgrade */

static void
heir_end(void)
{
	aloop_handle_cancel(M.loop, M.heir_timer);
	M.heir_timer = ALOOP_HANDLE_NONE;
	if (M.heir_fd >= 0) {
		(void)aloop_remove_reader(M.loop, M.heir_fd);
		close(M.heir_fd);
		M.heir_fd = -1;
	}
}

static void
on_heir(void *arg)
{
	char c;
	ssize_t n;
	char state[64];

	(void)arg;
	n = read(M.heir_fd, &c, 1);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	heir_end();
	if (n != 1 || c != 'R') {
		aloop_log(ALOOP_LOG_ERR, "binary upgrade failed: the new master "
		    "(pid %d) did not start; still serving", (int)M.heir);
		reap();
		return;
	}
	/*
	 * The new master serves on the same sockets: let this one's workers
	 * finish what they hold and go, leaving the socket files, the
	 * pidfile and systemd's main process to the new one.
	 */
	M.handed_over = 1;
	aloop_log(ALOOP_LOG_NOTICE, "binary upgrade: pid %d took over; "
	    "finishing this master's connections", (int)M.heir);
	snprintf(state, sizeof(state), "MAINPID=%ld", (long)M.heir);
	(void)notify_send(state);
	sockets_disown_paths();
	free(M.pidfile);
	M.pidfile = NULL;
	stop(SIGUSR2);
}

static void
heir_timeout(void *arg)
{
	(void)arg;
	M.heir_timer = ALOOP_HANDLE_NONE;
	aloop_log(ALOOP_LOG_ERR, "binary upgrade failed: the new master did "
	    "not serve within %g s; killing it", UPGRADE_TIMEOUT);
	heir_end();
	if (M.heir > 0)
		(void)kill(M.heir, SIGKILL);
}

static void __attribute__((noreturn))
heir_exec(char *inherit, int fd)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", fd);
	if (setenv("ALOOPD_INHERIT", inherit, 1) == -1 ||
	    setenv("ALOOPD_UPGRADE_FD", buf, 1) == -1)
		_exit(127);
	/* The pipe's end crosses the exec; the sockets were made to. */
	(void)fcntl(fd, F_SETFD, 0);
	execv(M.exe, M.o.argv);
	aloop_log_errno(ALOOP_LOG_ERR, "binary upgrade: exec %s", M.exe);
	_exit(127);
}

static void
upgrade(void)
{
	char *inherit = NULL;
	int p[2], *keep = NULL, r;
	size_t nkeep = 0;
	pid_t pid;

	if (M.stopping || M.handed_over || M.heir > 0 || !M.started) {
		aloop_log(ALOOP_LOG_WARNING, "binary upgrade refused: %s",
		    M.heir > 0 ? "one is in progress" : "not serving");
		return;
	}
	if (M.exe == NULL) {
		aloop_log(ALOOP_LOG_ERR, "binary upgrade: the path of the "
		    "aloopd binary is unknown");
		return;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "binary upgrade: pipe");
		return;
	}
	/* What the new master keeps: the exported sockets and the pipe. */
	if ((inherit = sockets_export(&keep, &nkeep)) == NULL)
		goto fail;
	keep[nkeep++] = p[1];
	r = proc_fork(keep, nkeep, &pid);
	if (r == 0 && pid == 0)
		heir_exec(inherit, p[1]);
	sockets_unexport();
	free(keep);
	keep = NULL;
	if (r < 0) {
		aloop_log(ALOOP_LOG_ERR, "binary upgrade: fork: %s",
		    aloop_strerror(r));
		goto fail;
	}
	free(inherit);
	close(p[1]);
	M.heir = pid;
	M.heir_fd = p[0];
	aloop_log(ALOOP_LOG_NOTICE, "binary upgrade: started %s as pid %d",
	    M.exe, (int)pid);
	if (aloop_add_reader(M.loop, M.heir_fd, on_heir, NULL) < 0 ||
	    aloop_call_later(M.loop, UPGRADE_TIMEOUT, heir_timeout, NULL,
	    &M.heir_timer) < 0)
		heir_timeout(NULL);
	return;
fail:
	sockets_unexport();
	free(keep);
	free(inherit);
	close(p[0]);
	close(p[1]);
	aloop_log(ALOOP_LOG_ERR, "binary upgrade failed; still serving");
}

static void
on_sigusr2(void *arg)
{
	(void)arg;
	upgrade();
}

/* ------------------------------------------------------- housekeeping */

static void
housekeeping(void *arg)
{
	double now = aloop_time(M.loop);
	size_t conns;

	(void)arg;
	reap();
	check_stalls();
	if (M.watchdog > 0)
		(void)notify_watchdog();
	conns = total_connections();
	if (M.current != NULL && now >= M.next_status && (!M.status_sent ||
	    conns != M.last_conns)) {
		size_t nl = M.current->cfg->nlisteners;
		unsigned nw = M.current->nslots;

		(void)notify_status("%zu connection%s, %zu listener%s, %u "
		    "worker%s", conns, conns == 1 ? "" : "s", nl,
		    nl == 1 ? "" : "s", nw, nw == 1 ? "" : "s");
		M.status_sent = 1;
		M.last_conns = conns;
		M.next_status = now + STATUS_INTERVAL;
	}
	(void)aloop_call_later(M.loop, M.tick, housekeeping, NULL, NULL);
}

static void
housekeeping_start(const struct config *cfg)
{
	double stall = cfg->daemon.worker_stall_timeout;
	uint64_t wd = notify_watchdog_usec();

	M.tick = 1.0;
	/* Stalls are seen within a quarter of the timeout. */
	if (stall > 0 && stall / 4 < M.tick)
		M.tick = stall / 4;
	if (wd > 0) {
		/* systemd's advice: ping at half the interval. */
		M.watchdog = (double)wd / 2e6;
		if (M.watchdog < M.tick)
			M.tick = M.watchdog;
		aloop_log(ALOOP_LOG_INFO, "watchdog: pinging every %.1f s",
		    M.watchdog);
	}
	housekeeping(NULL);
}

/* ---------------------------------------------------------------- run */

/*
 * Detach as a classic daemon.  The parent stays until the master serves,
 * so that a failing start is still the exit status the operator sees.
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
	if ((pid = fork()) == -1) {
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
install_signals(void)
{
	static const struct {
		int	 sig;
		void	(*fn)(void *);
	} table[] = {
		{ SIGTERM, on_sigterm }, { SIGINT, on_sigint },
		{ SIGHUP, on_sighup }, { SIGUSR2, on_sigusr2 },
		{ SIGCHLD, on_sigchld },
	};
	int r;

	/* A peer that goes away mid-write is an error code, not a death. */
	(void)signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if ((r = aloop_add_signal_handler(M.loop, table[i].sig,
		    table[i].fn, NULL)) < 0) {
			aloop_log(ALOOP_LOG_ERR, "cannot handle %s: %s",
			    strsignal(table[i].sig), aloop_strerror(r));
			return -1;
		}
	return 0;
}

static void
remove_signals(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR2,
	    SIGCHLD };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)aloop_remove_signal_handler(M.loop, sigs[i]);
}

/* The previous master's pipe, when this one is a binary upgrade. */
static int
upgrade_fd(void)
{
	const char *s = getenv("ALOOPD_UPGRADE_FD");
	char *end;
	long fd;

	if (s == NULL)
		return -1;
	fd = strtol(s, &end, 10);
	(void)unsetenv("ALOOPD_UPGRADE_FD");
	if (*end != '\0' || fd < 3 || fcntl((int)fd, F_SETFD,
	    FD_CLOEXEC) == -1)
		return -1;
	return (int)fd;
}

int
master_run(struct config *cfg, const struct master_options *o)
{
	int n;

	memset(&M, 0, sizeof(M));
	M.o = *o;
	M.ready_fd = -1;
	M.heir_fd = -1;
	M.stop_timer = M.heir_timer = M.quiet_timer = ALOOP_HANDLE_NONE;
	M.exe = realpath("/proc/self/exe", NULL);
	M.upgrade_fd = upgrade_fd();

	logsink_open(cfg->daemon.log_target == CONFIG_LOG_SYSLOG ?
	    LOGSINK_SYSLOG : LOGSINK_STDERR, "aloopd");
	aloop_log_set_level(o->debug ? ALOOP_LOG_DEBUG : cfg->daemon.log_level);
	if (M.upgrade_fd >= 0)
		aloop_log(ALOOP_LOG_NOTICE, "binary upgrade: taking over from "
		    "pid %d", (int)getppid());
	/* Before any thread exists; an upgraded master is detached already. */
	if (!o->foreground && M.upgrade_fd < 0 && detach(&M.ready_fd) < 0)
		goto fail;
	if ((n = activation_init()) < 0)
		aloop_log(ALOOP_LOG_ERR, "socket activation: %s",
		    aloop_strerror(n));
	else if (n > 0)
		aloop_log(ALOOP_LOG_INFO, "socket activation: %d sockets", n);
	if ((n = sb_open()) < 0) {
		aloop_log(ALOOP_LOG_ERR, "cannot map the scoreboard: %s",
		    aloop_strerror(n));
		goto fail;
	}
	if ((n = aloop_loop_new(&M.loop)) < 0) {
		aloop_log(ALOOP_LOG_ERR, "cannot make the master's loop: %s",
		    aloop_strerror(n));
		goto fail;
	}
	aloop_set_debug(M.loop, o->debug);
	if (install_signals() < 0 || sockets_inherit() < 0)
		goto fail;
	housekeeping_start(cfg);
	if (gen_new(cfg) < 0) {
		cfg = NULL;
		aloop_log(ALOOP_LOG_ERR, "start-up failed");
		goto fail;
	}
	cfg = NULL;
	if ((n = aloop_run_forever(M.loop)) < 0) {
		aloop_log(ALOOP_LOG_ERR, "the master's loop failed: %s",
		    aloop_strerror(n));
		M.status = 1;
	}
	goto out;
fail:
	config_free(cfg);
	M.status = 1;
out:
	/* Normally every worker has exited; not if the loop failed. */
	for (struct wproc *w = M.procs; w != NULL; w = w->next)
		kill_proc(w);
	while (M.procs != NULL) {
		struct wproc *w = M.procs;
		int status;

		if (waitpid(w->pid, &status, 0) == -1 && errno == EINTR)
			continue;
		M.procs = w->next;
		if (w->ctl >= 0)
			close(w->ctl);
		free(w);
	}
	while (M.gens != NULL) {
		struct gen *g = M.gens;

		M.gens = g->next;
		aloop_handle_cancel(M.loop, g->timer);
		sockets_free(g->socks);
		config_free(g->cfg);
		free(g->names);
		free(g->slots);
		free(g);
	}
	if (!M.handed_over)
		sockets_close_all();
	if (M.ready_fd >= 0)
		close(M.ready_fd);	/* the waiting parent exits 1 */
	if (M.upgrade_fd >= 0)
		close(M.upgrade_fd);	/* the old master keeps serving */
	heir_end();
	if (M.loop != NULL) {
		remove_signals();
		aloop_loop_free(M.loop);
	}
	activation_free();
	remove_pidfile();
	free(M.pidfile);
	free(M.exe);
	sb_close();
	if (M.status == 0)
		aloop_log(ALOOP_LOG_NOTICE, "stopped");
	logsink_close();
	return M.status;
}
