/*
 * The plugin check in a child process.  The child runs the very code a
 * worker runs to load plugins (config_load_plugins) plus each plugin's
 * init on its settings, and writes one line per event to a pipe:
 *
 *	E <text>			a configuration error
 *	D				done
 *
 * The parent turns them into errors of its own copy of the config.  A
 * child that ends without "D" crashed in the last step it announced: the
 * step it is at (about to load a plugin, or to init it) is kept in memory
 * shared with the parent, not written down the pipe, since a config of
 * 100,000 listeners would otherwise cost 100,000 writes and as many wakes
 * of the parent.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "check.h"
#include "config-int.h"
#include "proc.h"

/* How often a finished child is looked for, and for how long at most. */
#define REAP_INTERVAL	0.005
#define REAP_GRACE	5.0

/* Where the child is, written by it and read by the parent once it ended. */
struct progress {
	long			 listener;	/* -1: none yet */
	int			 step;
	char			 file[PATH_MAX];
};

struct check {
	struct config		*cfg;
	pid_t			 pid;
	int			 fd;		/* the pipe's read end */
	char			 line[4096];
	size_t			 len;
	int			 finished;	/* "D" seen */
	int			 timed_out;
	struct progress		*at;		/* shared with the child */
	/* Driven by a loop (check_plugins_async). */
	struct aloop_loop	*loop;
	aloop_handle_t		 timer;
	double			 reap_until;
	void			(*done)(struct config *, int, void *);
	void			*arg;
};

/* ------------------------------------------------------------ the child */

static void
child_step(size_t listener, int step, const char *file, void *arg)
{
	struct progress *at = arg;

	/* Killed in the middle of this, the child is at no listener. */
	__atomic_store_n(&at->listener, -1L, __ATOMIC_RELEASE);
	snprintf(at->file, sizeof(at->file), "%s", file);
	at->step = step;
	__atomic_store_n(&at->listener, (long)listener, __ATOMIC_RELEASE);
}

static void __attribute__((noreturn))
child_main(struct config *cfg, int fd, struct progress *at)
{
	struct config_plugin_hooks h = {
		.validate = 1, .step = child_step, .arg = at,
	};
	size_t before = cfg->nerrors;

	(void)config_load_plugins(cfg, &h);
	for (size_t i = before; i < cfg->nerrors; i++) {
		/* One line each, whatever a plugin put in its message. */
		for (char *p = cfg->errors[i]; *p != '\0'; p++)
			if (*p == '\n')
				*p = ' ';
		dprintf(fd, "E %s\n", cfg->errors[i]);
	}
	dprintf(fd, "D\n");
	/*
	 * Nothing of the parent's may run here at exit (its atexit handlers,
	 * stdio buffers it had not flushed): leave at once.
	 */
	_exit(0);
}

/* ----------------------------------------------------------- the parent */

static void
take_line(struct check *c, char *s)
{
	if (s[0] == 'D' && s[1] == '\0')
		c->finished = 1;
	else if (s[0] == 'E' && s[1] == ' ')
		config_add_error(c->cfg, s + 2);
}

/* Read what the child wrote; 1 at end of file, 0 for more, -1 on error. */
static int
feed(struct check *c)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(c->fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno == EAGAIN ? 0 : -1;
		if (n == 0)
			return 1;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (c->len < sizeof(c->line) - 1)
					c->line[c->len++] = buf[i];
				continue;
			}
			c->line[c->len] = '\0';
			take_line(c, c->line);
			c->len = 0;
		}
	}
}

/* The error line for a child that did not finish. */
static void
report_failure(struct check *c, int status)
{
	const struct config_listener *cl = NULL;
	char how[64], line[PATH_MAX + 512], file[PATH_MAX];
	long listener;
	const char *in;
	int step;

	/* The child is gone: what it left is read once, and trusted little. */
	listener = __atomic_load_n(&c->at->listener, __ATOMIC_ACQUIRE);
	step = c->at->step;
	memcpy(file, c->at->file, sizeof(file));
	file[sizeof(file) - 1] = '\0';
	if (listener >= 0 && (size_t)listener < c->cfg->nlisteners)
		cl = &c->cfg->listeners[listener];
	in = step == CONFIG_STEP_LOAD ? "its constructor" : "init";
	if (c->timed_out)
		snprintf(how, sizeof(how), "did not finish %s within %g s",
		    step == CONFIG_STEP_LOAD ? "loading" : "init",
		    CHECK_TIMEOUT);
	else if (WIFSIGNALED(status) && sigabbrev_np(WTERMSIG(status)))
		snprintf(how, sizeof(how), "crashed in %s: SIG%s", in,
		    sigabbrev_np(WTERMSIG(status)));
	else if (WIFEXITED(status))
		snprintf(how, sizeof(how), "crashed in %s: exit status %d", in,
		    WEXITSTATUS(status));
	else
		snprintf(how, sizeof(how), "crashed in %s", in);
	if (cl == NULL)
		snprintf(line, sizeof(line), "%s: the plugin check %s",
		    c->cfg->path, how);
	else
		snprintf(line, sizeof(line), "%s:%d: listener \"%s\": plugin "
		    "\"%s\" (%s) %s", cl->file != NULL ? cl->file :
		    c->cfg->path, cl->line, cl->name, cl->protocol, file,
		    how);
	config_add_error(c->cfg, line);
}

static int
result(struct check *c, int status, int reaped)
{
	if (!reaped || !c->finished || !proc_exited_cleanly(status))
		report_failure(c, reaped ? status : 0);
	(void)munmap(c->at, sizeof(*c->at));
	c->at = NULL;
	return c->cfg->nerrors > 0 ? ALOOP_ECONFIG : 0;
}

static int
start(struct check *c, struct config *cfg)
{
	int p[2], r;
	pid_t pid;

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->fd = -1;
	if ((c->at = mmap(NULL, sizeof(*c->at), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED) {
		c->at = NULL;
		return -errno;
	}
	c->at->listener = -1;
	if (pipe2(p, O_CLOEXEC) == -1) {
		r = -errno;
		(void)munmap(c->at, sizeof(*c->at));
		return r;
	}
	if ((r = proc_fork(&p[1], 1, &pid)) < 0) {
		close(p[0]);
		close(p[1]);
		(void)munmap(c->at, sizeof(*c->at));
		return r;
	}
	if (pid == 0)
		child_main(cfg, p[1], c->at);
	close(p[1]);
	c->pid = pid;
	c->fd = p[0];
	(void)fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

static double
now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
check_plugins(struct config *cfg)
{
	struct check c;
	double deadline = now() + CHECK_TIMEOUT;
	struct pollfd pfd;
	int r, status = 0, reaped = 0;

	if ((r = start(&c, cfg)) < 0) {
		config_add_error(cfg, "cannot start the plugin check");
		return r;
	}
	pfd.fd = c.fd;
	pfd.events = POLLIN;
	for (;;) {
		double left = deadline - now();

		if (left <= 0) {
			c.timed_out = 1;
			break;
		}
		r = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (r == -1 && errno != EINTR)
			break;
		if (r > 0 && feed(&c) != 0)
			break;
	}
	close(c.fd);
	if (c.timed_out)
		(void)kill(c.pid, SIGKILL);
	/* The pipe closed as the child ended: it is reaped at once. */
	for (double until = now() + REAP_GRACE; !reaped && now() < until; ) {
		pid_t w = waitpid(c.pid, &status, WNOHANG);

		if (w == c.pid)
			reaped = 1;
		else if (w == -1 && errno != EINTR)
			break;
		else
			(void)nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return result(&c, status, reaped);
}

/* ----------------------------------------------------- driven by a loop */

static void async_reap(void *arg);

static void
async_finish(struct check *c, int status, int reaped)
{
	int r = result(c, status, reaped);

	c->done(c->cfg, r, c->arg);
	free(c);
}

static void
async_reap(void *arg)
{
	struct check *c = arg;
	int status = 0;
	pid_t w;

	c->timer = ALOOP_HANDLE_NONE;
	do {
		w = waitpid(c->pid, &status, WNOHANG);
	} while (w == -1 && errno == EINTR);
	if (w == c->pid || w == -1 || aloop_time(c->loop) >= c->reap_until) {
		async_finish(c, status, w == c->pid);
		return;
	}
	if (aloop_call_later(c->loop, REAP_INTERVAL, async_reap, c,
	    &c->timer) < 0)
		async_finish(c, 0, 0);
}

static void
async_end(struct check *c)
{
	aloop_handle_cancel(c->loop, c->timer);
	c->timer = ALOOP_HANDLE_NONE;
	(void)aloop_remove_reader(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->timed_out)
		(void)kill(c->pid, SIGKILL);
	c->reap_until = aloop_time(c->loop) + REAP_GRACE;
	async_reap(c);
}

static void
async_readable(void *arg)
{
	struct check *c = arg;

	if (feed(c) != 0)
		async_end(c);
}

static void
async_timeout(void *arg)
{
	struct check *c = arg;

	c->timer = ALOOP_HANDLE_NONE;
	c->timed_out = 1;
	async_end(c);
}

int
check_plugins_async(struct aloop_loop *loop, struct config *cfg,
    void (*done)(struct config *, int, void *), void *arg)
{
	struct check *c;
	int r;

	if ((c = malloc(sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	if ((r = start(c, cfg)) < 0) {
		free(c);
		return r;
	}
	c->loop = loop;
	c->done = done;
	c->arg = arg;
	c->timer = ALOOP_HANDLE_NONE;
	if ((r = aloop_add_reader(loop, c->fd, async_readable, c)) < 0 ||
	    (r = aloop_call_later(loop, CHECK_TIMEOUT, async_timeout, c,
	    &c->timer)) < 0) {
		(void)aloop_remove_reader(loop, c->fd);
		(void)kill(c->pid, SIGKILL);
		(void)waitpid(c->pid, NULL, 0);
		close(c->fd);
		(void)munmap(c->at, sizeof(*c->at));
		free(c);
		return r;
	}
	return 0;
}
