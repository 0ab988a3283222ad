/*
 * The master's upper half: start-up (detach, the first generation, the
 * pidfile, READY=1), the signals (stop, reload, binary upgrade), systemd's
 * watchdog and STATUS=, and the orderly end.  The workers themselves, as
 * generations of processes, are generation.c's.
 */
#include "config.h"

#include <sys/file.h>
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

#include "accesslog.h"
#include "activation.h"
#include "admission.h"
#include "check.h"
#include "config-int.h"
#include "generation.h"
#include "logsink.h"
#include "master.h"
#include "metrics.h"
#include "notify.h"
#include "proc.h"
#include "scoreboard.h"
#include "sockets.h"
#include "ticket_secret.h"
#include "tls_cache.h"

/* How long a new generation may take to serve before it is given up. */
#define START_TIMEOUT		30.0
/* After an abort, how long workers get before SIGKILL. */
#define ABORT_GRACE		1.0
/* STATUS= at most this often (seconds). */
#define STATUS_INTERVAL		5.0
/* How long a new binary may take to take over. */
#define UPGRADE_TIMEOUT		60.0

struct master {
	struct aloop_loop	*loop;
	struct master_options	 o;
	struct gen		*current;	/* serving */
	struct gen		*next;		/* starting */
	int			 status;	/* the exit status */
	int			 started;
	int			 stopping;
	int			 aborting;
	int			 checking;	/* a reload's plugin check */
	int			 reload_again;	/* SIGHUP while reloading */
	aloop_handle_t		 stop_timer;
	double			 shutdown_timeout; /* of the stop under way */
	int			 stop_signal;
	int			 ready_fd;	/* detach()'s pipe, or -1 */
	int			 upgrade_fd;	/* to the old master, or -1 */
	int			 pid_fd;	/* the locked pidfile, or -1 */
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

static void	stop(int signum);
static void	reload(void);

/* --------------------------------------------------------- generations */

/* Whether @s is the same user, group and pidfile as what runs now. */
static int
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/*
 * The pidfile is also the lock that keeps a second aloopd off the same
 * configuration: SO_REUSEPORT would let it bind next to this one.  It is
 * taken before anything is bound and held (flock, on the open file, so
 * that the detached child and a binary upgrade's new master share it)
 * for the daemon's life; the pid is written once the daemon serves.
 */
static int
lock_pidfile(const char *path)
{
	const char *s = getenv("ALOOPD_PIDFILE_FD");
	char buf[32];
	ssize_t n;
	long pid;

	M.pid_fd = -1;
	if (s != NULL) {
		/* A binary upgrade: the old master's lock, now ours too. */
		M.pid_fd = (int)strtol(s, NULL, 10);
		(void)unsetenv("ALOOPD_PIDFILE_FD");
		if (M.pid_fd < 3 || fcntl(M.pid_fd, F_SETFD, FD_CLOEXEC) == -1)
			M.pid_fd = -1;
		else
			return 0;
	}
	if (path == NULL)
		return 0;
	M.pid_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (M.pid_fd == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "pidfile %s", path);
		return -1;
	}
	if (flock(M.pid_fd, LOCK_EX | LOCK_NB) == 0) {
		/* Ours from now on: removed at exit even if start-up fails. */
		if ((M.pidfile = strdup(path)) == NULL) {
			close(M.pid_fd);
			M.pid_fd = -1;
			return -1;
		}
		return 0;
	}
	if (errno == EWOULDBLOCK) {
		n = pread(M.pid_fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		pid = strtol(buf, NULL, 10);
		if (pid > 0)
			aloop_log(ALOOP_LOG_ERR, "already running as pid %ld "
			    "(pidfile %s is locked)", pid, path);
		else
			aloop_log(ALOOP_LOG_ERR, "already running: pidfile %s "
			    "is locked", path);
	} else
		aloop_log_errno(ALOOP_LOG_ERR, "pidfile %s: flock", path);
	close(M.pid_fd);
	M.pid_fd = -1;
	return -1;
}

static int
write_pidfile(const char *path)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(M.pid_fd, 0) == -1 ||
	    pwrite(M.pid_fd, buf, (size_t)n, 0) != n) {
		aloop_log_errno(ALOOP_LOG_ERR, "pidfile %s", path);
		return -errno;
	}
	return 0;
}

/*
 * Remove the pidfile and let go of its lock, unless a binary upgrade's
 * new master holds them now.
 */
static void
remove_pidfile(void)
{
	if (M.pid_fd < 0)
		return;
	if (!M.handed_over && M.pidfile != NULL)
		(void)unlink(M.pidfile);
	close(M.pid_fd);
	M.pid_fd = -1;
}

/*
 * How many TLS contexts the listeners share, and how many of them this
 * configuration built rather than kept from the one before.
 */
static void
log_tls(const struct config *cfg)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->nlisteners; i++)
		n += cfg->listeners[i].tls != NULL;
	if (n == 0)
		return;
	aloop_log(ALOOP_LOG_INFO, "TLS: %zu listener%s, %zu context%s: %zu "
	    "built, %zu kept", n, n == 1 ? "" : "s", cfg->tls.contexts,
	    cfg->tls.contexts == 1 ? "" : "s", cfg->tls.built,
	    cfg->tls.contexts - cfg->tls.built);
}

/* Start-up is done: the first generation serves. */
static void
started(struct gen *g)
{
	const struct config *cfg = gen_config(g);
	unsigned nw = gen_workers(g);
	char r = 'R';

	M.started = 1;
	sockets_drop_unclaimed();
	if (cfg->daemon.pidfile != NULL && M.pid_fd >= 0) {
		if ((M.pidfile == NULL &&
		    (M.pidfile = strdup(cfg->daemon.pidfile)) == NULL) ||
		    write_pidfile(M.pidfile) < 0) {
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
	log_tls(cfg);
	aloop_log(ALOOP_LOG_NOTICE, "aloopd %s started: %zu listener%s, %u "
	    "worker%s", PACKAGE_VERSION, cfg->nlisteners,
	    cfg->nlisteners == 1 ? "" : "s", nw, nw == 1 ? "" : "s");
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
	const struct config *cfg;
	unsigned nw;

	if (M.current == NULL)
		return;
	cfg = gen_config(M.current);
	nw = gen_workers(M.current);
	log_tls(cfg);
	aloop_log(ALOOP_LOG_NOTICE, "reloaded %s: %zu listener%s, %u "
	    "worker%s", M.o.config_path, cfg->nlisteners,
	    cfg->nlisteners == 1 ? "" : "s", nw, nw == 1 ? "" : "s");
	metrics_reload(1);
	(void)notify_ready();
	if (M.reload_again) {
		M.reload_again = 0;
		reload();
	}
}

static void started(struct gen *g);
static void reap_heir(void);

/* A new generation serves: it becomes current, the old one drains. */
static void
gen_serving(struct gen *g, void *arg)
{
	(void)arg;
	if (M.next == g)
		M.next = NULL;
	gen_promote(g);
	M.current = g;
	if (!M.started) {
		started(g);
		return;
	}
	aloop_log_set_level(M.o.debug ? ALOOP_LOG_DEBUG :
	    gen_config(g)->daemon.log_level);
	(void)alog_configure(gen_config(g));
	gens_after_quiet(reloaded);
}

/* A new generation cannot serve: a start fails, a reload is refused. */
static void
gen_failed(struct gen *g, const char *why, void *arg)
{
	(void)arg;
	if (M.next == g)
		M.next = NULL;
	if (M.stopping)
		return;		/* a reload cut short by the stop */
	if (!M.started) {
		aloop_log(ALOOP_LOG_ERR, "start-up failed: %s", why);
		M.status = 1;
		stop(0);
		return;
	}
	aloop_log(ALOOP_LOG_ERR, "reload failed: %s; keeping the running "
	    "configuration", why);
	metrics_reload(0);
	(void)notify_ready();
}

static const struct gen_hooks gen_hooks = {
	.serving = gen_serving,
	.failed = gen_failed,
};

/* Start a generation of @cfg (taken) as the next one. */
static int
next_generation(struct config *cfg)
{
	int r;

	if ((r = gen_start(cfg, &gen_hooks, &M.next)) < 0)
		aloop_log(ALOOP_LOG_ERR, "cannot start workers: %s",
		    aloop_strerror(r));
	return r;
}

static void
on_sigchld(void *arg)
{
	(void)arg;
	gens_reap();
	reap_heir();
}

/* ------------------------------------------------------------ reload */

static void
warn_restart_only(const struct config *cfg)
{
	const struct config_daemon *old = &gen_config(M.current)->daemon;
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
	if (next_generation(cfg) < 0) {
		aloop_log(ALOOP_LOG_ERR, "reload failed; keeping the running "
		    "configuration");
		metrics_reload(0);
		(void)notify_ready();
		return;
	}
	tls_cache_commit();
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
abort_all(void)
{
	size_t conns = gens_connections();

	if (M.aborting)
		return;
	M.aborting = 1;
	aloop_handle_cancel(M.loop, M.stop_timer);
	M.stop_timer = ALOOP_HANDLE_NONE;
	if (gens_alive())
		aloop_log(ALOOP_LOG_NOTICE, "closing %zu remaining "
		    "connection%s", conns, conns == 1 ? "" : "s");
	gens_abort();
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
	size_t conns = gens_connections();

	if (M.stop_signal != 0)
		aloop_log(ALOOP_LOG_NOTICE, "%s: stopping; %zu connection%s "
		    "may finish within %g s", strsignal(M.stop_signal), conns,
		    conns == 1 ? "" : "s", M.shutdown_timeout);
}

/* The last worker is gone: the master's loop may end. */
static void
all_gone(void)
{
	if (!M.aborting)
		aloop_log(ALOOP_LOG_NOTICE, "every connection is closed");
	aloop_stop(M.loop);
}

/* Stop: every generation drains; @signum 0 for a failed start. */
static void
stop(int signum)
{
	double timeout = M.current != NULL ?
	    gen_config(M.current)->daemon.shutdown_timeout : 0;

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
	M.current = M.next = NULL;
	(void)notify_stopping();
	gens_stop();
	/*
	 * The master's copies go first, so that a socket closes (and a
	 * client is refused rather than left in a backlog nobody reads) as
	 * soon as the last worker stops accepting on it.
	 */
	if (!M.handed_over)
		sockets_close_all();
	if (!gens_alive()) {
		stopping_said();
		aloop_stop(M.loop);
		return;
	}
	gens_after_quiet(stopping_said);
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

/* The new master of a binary upgrade, if it ended. */
static void
reap_heir(void)
{
	char how[64];
	int status;

	if (M.heir <= 0 || waitpid(M.heir, &status, WNOHANG) != M.heir)
		return;
	if (!M.handed_over)
		aloop_log(ALOOP_LOG_ERR, "binary upgrade failed: the new master "
		    "%s", proc_status(status, how, sizeof(how)));
	M.heir = 0;
}


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
		reap_heir();
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
	char buf[16], pbuf[16];

	snprintf(buf, sizeof(buf), "%d", fd);
	snprintf(pbuf, sizeof(pbuf), "%d", M.pid_fd);
	if (setenv("ALOOPD_INHERIT", inherit, 1) == -1 ||
	    setenv("ALOOPD_UPGRADE_FD", buf, 1) == -1 ||
	    (M.pid_fd >= 0 && setenv("ALOOPD_PIDFILE_FD", pbuf, 1) == -1))
		_exit(127);
	/*
	 * The pipe's end and the pidfile's lock cross the exec; the sockets
	 * were made to.
	 */
	(void)fcntl(fd, F_SETFD, 0);
	if (M.pid_fd >= 0)
		(void)fcntl(M.pid_fd, F_SETFD, 0);
	/* Without it the new master's tickets are new: only a cost. */
	if (ticket_secret_hand_over() == -1)
		aloop_log(ALOOP_LOG_WARNING, "binary upgrade: the session "
		    "ticket secret is not passed on");
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
	/*
	 * What the new master keeps: the exported sockets, the pipe and the
	 * pidfile's lock.
	 */
	if ((inherit = sockets_export(&keep, &nkeep)) == NULL)
		goto fail;
	keep[nkeep++] = p[1];
	if (M.pid_fd >= 0)
		keep[nkeep++] = M.pid_fd;
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

/* logrotate's signal: the access log reopens its file. */
static void
on_sigusr1(void *arg)
{
	(void)arg;
	alog_reopen();
}

/* ------------------------------------------------------- housekeeping */

static void
housekeeping(void *arg)
{
	double now = aloop_time(M.loop);
	size_t conns;

	(void)arg;
	/* SIGCHLD may have been coalesced with another: look anyway. */
	gens_reap();
	reap_heir();
	gens_check_stalls();
	if (M.watchdog > 0)
		(void)notify_watchdog();
	conns = gens_connections();
	if (M.current != NULL && now >= M.next_status && (!M.status_sent ||
	    conns != M.last_conns)) {
		size_t nl = gen_config(M.current)->nlisteners;
		unsigned nw = gen_workers(M.current);

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
		return -errno;
	}
	if ((pid = fork()) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "fork");
		return -errno;
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
		return -errno;
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
		{ SIGHUP, on_sighup }, { SIGUSR1, on_sigusr1 },
		{ SIGUSR2, on_sigusr2 }, { SIGCHLD, on_sigchld },
	};
	int r;

	/* A peer that goes away mid-write is an error code, not a death. */
	(void)signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if ((r = aloop_add_signal_handler(M.loop, table[i].sig,
		    table[i].fn, NULL)) < 0) {
			aloop_log(ALOOP_LOG_ERR, "cannot handle %s: %s",
			    strsignal(table[i].sig), aloop_strerror(r));
			return r;
		}
	return 0;
}

static void
remove_signals(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1,
	    SIGUSR2, SIGCHLD };

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
		return -1;	/* not an upgrade: no descriptor */
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
	M.pid_fd = -1;
	M.heir_fd = -1;
	M.stop_timer = M.heir_timer = ALOOP_HANDLE_NONE;
	M.exe = realpath("/proc/self/exe", NULL);
	M.upgrade_fd = upgrade_fd();

	logsink_open(cfg->daemon.log_target == CONFIG_LOG_SYSLOG ?
	    LOGSINK_SYSLOG : LOGSINK_STDERR, "aloopd");
	aloop_log_set_level(o->debug ? ALOOP_LOG_DEBUG : cfg->daemon.log_level);
	if (M.upgrade_fd >= 0)
		aloop_log(ALOOP_LOG_NOTICE, "binary upgrade: taking over from "
		    "pid %d", (int)getppid());
	/* Before any socket is bound: a second aloopd stops here. */
	if (lock_pidfile(M.upgrade_fd >= 0 ? NULL : cfg->daemon.pidfile) < 0)
		goto fail;
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
	if ((n = adm_open()) < 0) {
		aloop_log(ALOOP_LOG_ERR, "cannot map the admission tables: %s",
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
	/* Before the first fork: the workers inherit the pipe. */
	if ((n = alog_init(M.loop)) < 0) {
		aloop_log(ALOOP_LOG_ERR, "access log: %s", aloop_strerror(n));
		goto fail;
	}
	if (alog_configure(cfg) < 0)
		goto fail;
	gens_init(M.loop, o->debug, all_gone);
	housekeeping_start(cfg);
	n = next_generation(cfg);
	cfg = NULL;
	if (n < 0)
		goto fail;
	tls_cache_commit();
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
	gens_free_all();
	tls_cache_clear();
	if (!M.handed_over)
		sockets_close_all();
	if (M.ready_fd >= 0)
		close(M.ready_fd);	/* the waiting parent exits 1 */
	if (M.upgrade_fd >= 0)
		close(M.upgrade_fd);	/* the old master keeps serving */
	heir_end();
	/* It removes its reader from the loop: before the loop goes. */
	alog_shutdown();
	if (M.loop != NULL) {
		remove_signals();
		aloop_loop_free(M.loop);
	}
	activation_free();
	remove_pidfile();
	free(M.pidfile);
	free(M.exe);
	sb_close();
	adm_close();
	if (M.status == 0)
		aloop_log(ALOOP_LOG_NOTICE, "stopped");
	logsink_close();
	return M.status;
}
