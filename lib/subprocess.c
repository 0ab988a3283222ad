/*
 * Subprocesses: subprocess_exec and subprocess_shell, as asyncio's.  The
 * child is started by lib/spawn.c, its exit is noticed through a
 * pidfd watched by the loop (waitpid on our own pid, polled, where the
 * kernel has no pidfd), and its pipes are stream pipe transports whose
 * callbacks this module forwards to the subprocess protocol.
 */
#include "config.h"

#include <sys/types.h>
#ifdef HAVE_SYS_PIDFD_H
#include <sys/pidfd.h>
#endif
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <aloop/log.h>
#include <aloop/subprocess.h>

#include "loop-int.h"
#include "subprocess-int.h"
#include "transport-int.h"

/* Tests set it to exercise the polling fallback on a kernel with pidfds. */
int aloop__subprocess_force_poll;

/*
 * Without pidfds the child is polled with waitpid(pid, WNOHANG), first
 * often, then every POLL_MAX_USEC.  SIGCHLD is no option: libevent
 * delivers signals to one event base per process, so catching it here
 * would steal every signal from the loop that holds the signal handlers.
 */
#define POLL_FIRST_USEC		1000
#define POLL_MAX_USEC		100000

struct subproc;

/* One of the child's descriptors 0, 1 and 2, seen from the parent. */
struct subproc_pipe {
	struct subproc		*sp;
	int			 fd;		/* the child's 0, 1 or 2 */
	struct aloop_transport	*t;		/* until its connection_lost */
	int			 lost;		/* no pipe, or connection_lost seen */
};

struct subproc {
	struct aloop_transport	 t;		/* first: the shared object */
	const struct aloop_subprocess_protocol *proto;
	aloop_protocol_factory_fn factory;
	void			*factory_arg;
	struct aloop_future	*fut;		/* ours, until completed */
	pid_t			 pid;
	int			 pidfd;		/* -1 in the polling fallback */
	struct event		*exit_ev;	/* pidfd readable */
	struct event		*poll_ev;	/* fallback: the waitpid timer */
	long			 poll_usec;	/* its next interval */
	int			 returncode;
	int			 exited;	/* reaped; returncode valid */
	int			 failed;	/* start-up failed: no protocol */
	aloop_handle_t		 start;		/* the pending subproc_connected */
	struct subproc_pipe	 pipes[3];
};

static const struct aloop__transport_ops subproc_ops;

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		(void)close(*fd);
		*fd = -1;
	}
}

/* ------------------------------------------------------ exit watching */

static int
status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	return 255;
}

static void
stop_watch(struct subproc *sp)
{
	if (sp->exit_ev != NULL) {
		event_free(sp->exit_ev);
		sp->exit_ev = NULL;
	}
	if (sp->poll_ev != NULL) {
		event_free(sp->poll_ev);
		sp->poll_ev = NULL;
	}
	close_fd(&sp->pidfd);
}

static void try_finish(struct subproc *sp);

/* Reap the child if it has exited; 1 if it has. */
static int
reap(struct subproc *sp)
{
	pid_t r;
	int status;

	if (sp->exited)
		return 1;
	do
		r = waitpid(sp->pid, &status, WNOHANG);
	while (r == -1 && errno == EINTR);
	if (r == 0)
		return 0;
	if (r == -1) {
		/* Someone reaped it for us (SIGCHLD ignored, or a
		 * waitpid(-1) elsewhere): the status is lost.  asyncio
		 * reports 255 then, and so do we. */
		aloop_log_errno(ALOOP_LOG_WARNING,
		    "child process %ld: status unknown", (long)sp->pid);
		status = 255 << 8;
	}
	sp->returncode = status_code(status);
	sp->exited = 1;
	stop_watch(sp);
	return 1;
}

static void
exited_notify(struct subproc *sp)
{
	struct aloop_transport *t = &sp->t;

	if ((t->flags & ALOOP__T_MADE) && !aloop__transport_is_done(t) &&
	    sp->proto->process_exited != NULL) {
		aloop__transport_ref(t);
		sp->proto->process_exited(t, t->state);
		aloop__transport_unref(t);
	}
	try_finish(sp);
}

static void
on_pidfd(evutil_socket_t fd, short what, void *arg)
{
	struct subproc *sp = arg;

	(void)fd;
	(void)what;
	if (reap(sp))
		exited_notify(sp);
}

static int
sys_pidfd_open(pid_t pid)
{
#if defined(HAVE_PIDFD_OPEN) && defined(HAVE_SYS_PIDFD_H)
	return pidfd_open(pid, 0);
#elif defined(SYS_pidfd_open)
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct subproc *sp = arg;
	struct timeval tv;

	(void)fd;
	(void)what;
	if (reap(sp)) {
		exited_notify(sp);
		return;
	}
	/* Still running: back off, up to the longest interval. */
	sp->poll_usec = sp->poll_usec * 2 > POLL_MAX_USEC ? POLL_MAX_USEC :
	    sp->poll_usec * 2;
	tv.tv_sec = 0;
	tv.tv_usec = sp->poll_usec;
	if (event_add(sp->poll_ev, &tv) == -1)
		aloop_log(ALOOP_LOG_ERR, "child process %ld: cannot poll",
		    (long)sp->pid);
}

/*
 * Watch for the child's exit.  A pidfd names this very process, so nothing
 * races with other children; without one, waitpid on our own pid (never
 * -1) leaves other children to their owners.
 */
static int
start_watch(struct subproc *sp, struct event_base *base)
{
	struct timeval tv = { 0, POLL_FIRST_USEC };

	sp->pidfd = aloop__subprocess_force_poll ? -1 :
	    sys_pidfd_open(sp->pid);
	if (sp->pidfd >= 0) {
		sp->exit_ev = event_new(base, sp->pidfd, EV_READ | EV_PERSIST,
		    on_pidfd, sp);
		if (sp->exit_ev == NULL || event_add(sp->exit_ev, NULL) == -1)
			goto fail;
		return 0;
	}
	sp->poll_usec = POLL_FIRST_USEC;
	sp->poll_ev = evtimer_new(base, on_poll, sp);
	if (sp->poll_ev == NULL || event_add(sp->poll_ev, &tv) == -1)
		goto fail;
	return 0;
fail:
	stop_watch(sp);
	return ALOOP_ENOMEM;
}

/* --------------------------------------------------- pipe forwarding */

static void
pipe_data_received(struct aloop_transport *pt, void *state, const void *data,
    size_t len)
{
	struct subproc_pipe *p = state;
	struct aloop_transport *t = &p->sp->t;

	(void)pt;
	if (!(t->flags & ALOOP__T_MADE) || aloop__transport_is_done(t) ||
	    p->sp->proto->pipe_data_received == NULL)
		return;
	aloop__transport_ref(t);
	p->sp->proto->pipe_data_received(t, t->state, p->fd, data, len);
	aloop__transport_unref(t);
}

static void
pipe_connection_lost(struct aloop_transport *pt, void *state,
    const struct aloop_error *err)
{
	struct subproc_pipe *p = state;
	struct subproc *sp = p->sp;
	struct aloop_transport *t = &sp->t;

	(void)pt;
	p->t = NULL;
	p->lost = 1;
	aloop__transport_ref(t);
	if ((t->flags & ALOOP__T_MADE) && !aloop__transport_is_done(t) &&
	    sp->proto->pipe_connection_lost != NULL)
		sp->proto->pipe_connection_lost(t, t->state, p->fd, err);
	try_finish(sp);
	aloop__transport_unref(t);
}

/* The pipe transport is gone (after its connection_lost, or on loop
 * close): drop the reference it held on the subprocess. */
static void
pipe_finished(struct aloop_transport *pt, void *owner)
{
	struct subproc_pipe *p = owner;

	(void)pt;
	p->t = NULL;
	p->lost = 1;
	aloop__transport_unref(&p->sp->t);
}

/* The child's output: eof_received is NULL, so EOF closes the pipe. */
static const struct aloop_protocol pipe_proto = {
	.data_received = pipe_data_received,
	.connection_lost = pipe_connection_lost,
};

/* ------------------------------------------------------------ lifecycle */

/* connection_lost comes once the process has exited and every pipe is
 * closed, asyncio's rule. */
static void
try_finish(struct subproc *sp)
{
	int i;

	if (!sp->exited || aloop__transport_is_done(&sp->t))
		return;
	if (!(sp->t.flags & ALOOP__T_MADE) && !sp->failed)
		return;
	for (i = 0; i < 3; i++)
		if (!sp->pipes[i].lost)
			return;
	aloop__transport_lost(&sp->t, 0, NULL);
}

static void
kill_child(struct subproc *sp)
{
	if (!sp->exited && kill(sp->pid, SIGKILL) == -1 && errno != ESRCH)
		aloop_log_errno(ALOOP_LOG_WARNING, "kill %ld", (long)sp->pid);
}

/*
 * Start-up failed after fork: the protocol never hears of it.  The child
 * is killed and the transport ends by itself once reaped, without calling
 * connection_lost.
 */
static void
fail_start(struct subproc *sp, int code, const char *what)
{
	int i;

	sp->failed = 1;
	aloop__transport_mute(&sp->t);
	kill_child(sp);
	for (i = 0; i < 3; i++)
		if (sp->pipes[i].t != NULL)
			aloop_transport_abort(sp->pipes[i].t);
	if (sp->fut != NULL) {
		(void)aloop_future_set_error(sp->fut, code, "%s: %s", what,
		    aloop_strerror(code));
		aloop_future_release(sp->fut);
		sp->fut = NULL;
	}
	try_finish(sp);
}

/*
 * On the loop turn after the spawn: make the protocol state, run
 * connection_made, then let the pipes start, so that no pipe callback
 * precedes connection_made; then complete the future.
 */
static void
subproc_connected(void *arg)
{
	struct subproc *sp = arg;
	struct aloop_transport *t = &sp->t;
	void *state = NULL;
	int i, rc;

	sp->start = ALOOP_HANDLE_NONE;
	aloop__transport_ref(t);
	if (sp->factory != NULL &&
	    (rc = sp->factory(sp->factory_arg, &state)) < 0) {
		fail_start(sp, rc, "protocol factory");
		aloop__transport_unref(t);
		return;
	}
	aloop__transport_attach(t, NULL, state);
	/*
	 * The result first: its done-callbacks are queued before anything
	 * connection_made may schedule, so they see a live transport.
	 */
	(void)aloop__future_set_transport(sp->fut, t);
	aloop_future_release(sp->fut);
	sp->fut = NULL;
	(void)aloop__transport_made(t);
	for (i = 0; i < 3; i++)
		if (sp->pipes[i].t != NULL &&
		    !aloop_transport_is_closing(sp->pipes[i].t))
			aloop__stream_transport_made(sp->pipes[i].t);
	if (sp->exited && !aloop__transport_is_done(t) &&
	    sp->proto->process_exited != NULL)
		sp->proto->process_exited(t, t->state);
	try_finish(sp);
	aloop__transport_unref(t);
}

/* -------------------------------------------------------- transport ops */

static void
subproc_close(struct aloop_transport *t)
{
	struct subproc *sp = (struct subproc *)t;
	int i;

	for (i = 0; i < 3; i++)
		if (sp->pipes[i].t != NULL)
			aloop_transport_close(sp->pipes[i].t);
	kill_child(sp);
	try_finish(sp);
}

static void
subproc_abort(struct aloop_transport *t)
{
	struct subproc *sp = (struct subproc *)t;
	int i;

	for (i = 0; i < 3; i++)
		if (sp->pipes[i].t != NULL)
			aloop_transport_abort(sp->pipes[i].t);
	kill_child(sp);
}

/*
 * Nothing may outlive the transport: a child still running (abort, loop
 * close) is killed and reaped here.  The wait is for a SIGKILLed process,
 * so it is short.
 */
static void
subproc_teardown(struct aloop_transport *t)
{
	struct subproc *sp = (struct subproc *)t;
	int status;
	pid_t r;

	aloop_handle_cancel(t->loop, sp->start);
	sp->start = ALOOP_HANDLE_NONE;
	stop_watch(sp);
	if (!sp->exited && sp->pid > 0) {
		kill_child(sp);
		do
			r = waitpid(sp->pid, &status, 0);
		while (r == -1 && errno == EINTR);
		sp->returncode = r == sp->pid ? status_code(status) : 255;
		sp->exited = 1;
	}
	if (sp->fut != NULL) {
		aloop_future_release(sp->fut);
		sp->fut = NULL;
	}
}

static void
subproc_free(struct aloop_transport *t)
{
	free(t);
}

static void
subproc_adopt_protocol(struct aloop_transport *t, const void *table,
    struct aloop__protocol_common *cb)
{
	const struct aloop_subprocess_protocol *proto = table;

	((struct subproc *)t)->proto = proto;
	cb->connection_made = proto->connection_made;
	cb->connection_lost = proto->connection_lost;
	cb->pause_writing = NULL;
	cb->resume_writing = NULL;
}

static const struct aloop__transport_ops subproc_ops = {
	.name = "subprocess",
	.adopt_protocol = subproc_adopt_protocol,
	.close = subproc_close,
	.abort = subproc_abort,
	.teardown = subproc_teardown,
	.free = subproc_free,
};

/* --------------------------------------------------------------- public */

void
aloop_subprocess_options_init(struct aloop_subprocess_options *o)
{
	memset(o, 0, sizeof(*o));
	o->stdin_fd = ALOOP_SUBPROCESS_PIPE;
	o->stdout_fd = ALOOP_SUBPROCESS_PIPE;
	o->stderr_fd = ALOOP_SUBPROCESS_PIPE;
	o->uid = (uid_t)-1;
	o->gid = (gid_t)-1;
	o->process_group = -1;
}

static int
valid_fd_option(int v, int merge_ok)
{
	return v >= 0 || v == ALOOP_SUBPROCESS_PIPE ||
	    v == ALOOP_SUBPROCESS_INHERIT || v == ALOOP_SUBPROCESS_DEVNULL ||
	    (merge_ok && v == ALOOP_SUBPROCESS_STDOUT);
}

/*
 * A pipe transport for each parent end in @parentfd (taken over, closed on
 * every path), started only once the subprocess's connection_made ran.
 * Each holds a reference on the subprocess until it is finished.
 */
static int
open_pipes(struct subproc *sp, int parentfd[3])
{
	struct subproc_pipe *p;
	int i, rc = 0;

	for (i = 0; i < 3; i++) {
		p = &sp->pipes[i];
		if (parentfd[i] < 0 || rc < 0) {
			close_fd(&parentfd[i]);
			continue;
		}
		p->lost = 0;
		rc = aloop__stream_transport_new(sp->t.loop, parentfd[i],
		    i == 0 ? ALOOP__STREAM_WRITE_PIPE : ALOOP__STREAM_READ_PIPE,
		    &pipe_proto, p, 1, &p->t);
		parentfd[i] = -1;
		if (rc < 0) {
			p->lost = 1;
			p->t = NULL;
			continue;
		}
		aloop__transport_ref(&sp->t);
		aloop__transport_set_owner(p->t, pipe_finished, p);
	}
	return rc;
}

int
aloop_subprocess_exec(struct aloop_loop *loop,
    const struct aloop_subprocess_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg,
    const char *const *argv, const struct aloop_subprocess_options *o,
    struct aloop_future **fut)
{
	struct aloop_subprocess_options defaults;
	struct aloop__protocol_common cb;
	struct aloop_future *f;
	struct subproc *sp;
	const char *what;
	int parentfd[3] = { -1, -1, -1 };
	int i, rc;

	if (fut != NULL)
		*fut = NULL;
	if (loop == NULL || proto == NULL || argv == NULL || argv[0] == NULL ||
	    argv[0][0] == '\0' || fut == NULL)
		return ALOOP_EINVAL;
	if (o == NULL) {
		aloop_subprocess_options_init(&defaults);
		o = &defaults;
	}
	if (!valid_fd_option(o->stdin_fd, 0) ||
	    !valid_fd_option(o->stdout_fd, 0) ||
	    !valid_fd_option(o->stderr_fd, 1))
		return ALOOP_EINVAL;
	if ((o->start_new_session && o->process_group >= 0) ||
	    (o->npass_fds > 0 && o->pass_fds == NULL))
		return ALOOP_EINVAL;
	for (i = 0; i < (int)o->npass_fds; i++)
		if (o->pass_fds[i] < 3)
			return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "subprocess_exec")) < 0)
		return rc;
	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return ALOOP_ENOMEM;
	if ((rc = aloop_future_new(loop, &f)) < 0) {
		free(sp);
		return rc;
	}
	sp->proto = proto;
	sp->factory = factory;
	sp->factory_arg = factory_arg;
	sp->pidfd = -1;
	sp->pid = -1;
	for (i = 0; i < 3; i++) {
		sp->pipes[i].sp = sp;
		sp->pipes[i].fd = i;
		sp->pipes[i].lost = 1;
	}

	if ((rc = aloop__spawn(argv, o, &sp->pid, parentfd, &what)) < 0) {
		/* Nothing is left running: the future carries the errno. */
		free(sp);
		(void)aloop_future_set_error(f, rc, "%s: %s", what,
		    aloop_strerror(rc));
		*fut = f;
		return 0;
	}
	if ((rc = start_watch(sp, aloop__loop_base(loop))) < 0) {
		for (i = 0; i < 3; i++)
			close_fd(&parentfd[i]);
		(void)kill(sp->pid, SIGKILL);
		while (waitpid(sp->pid, NULL, 0) == -1 && errno == EINTR)
			;
		free(sp);
		aloop_future_release(f);
		return rc;
	}

	subproc_adopt_protocol(&sp->t, proto, &cb);
	aloop__transport_init(&sp->t, &subproc_ops, loop, proto, &cb, NULL);
	sp->fut = aloop_future_ref(f);
	*fut = f;

	if ((rc = open_pipes(sp, parentfd)) < 0) {
		fail_start(sp, rc, "subprocess pipe");
		return 0;
	}
	/* No reference for the pending call: teardown cancels it. */
	if ((rc = aloop_call_soon(loop, subproc_connected, sp,
	    &sp->start)) < 0)
		fail_start(sp, rc, "subprocess");
	return 0;
}

int
aloop_subprocess_shell(struct aloop_loop *loop,
    const struct aloop_subprocess_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg, const char *cmd,
    const struct aloop_subprocess_options *o, struct aloop_future **fut)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };

	if (fut != NULL)
		*fut = NULL;
	if (cmd == NULL)
		return ALOOP_EINVAL;
	return aloop_subprocess_exec(loop, proto, factory, factory_arg, argv,
	    o, fut);
}

static struct subproc *
as_subproc(const struct aloop_transport *t)
{
	if (t == NULL || t->ops != &subproc_ops)
		return NULL;
	return (struct subproc *)(uintptr_t)t;
}

pid_t
aloop_subprocess_get_pid(const struct aloop_transport *t)
{
	struct subproc *sp = as_subproc(t);

	return sp != NULL ? sp->pid : -1;
}

int
aloop_subprocess_get_returncode(const struct aloop_transport *t, int *rc)
{
	struct subproc *sp = as_subproc(t);

	if (sp == NULL || rc == NULL)
		return ALOOP_EINVAL;
	if (!sp->exited)
		return ALOOP_ESTATE;
	*rc = sp->returncode;
	return 0;
}

struct aloop_transport *
aloop_subprocess_get_pipe_transport(struct aloop_transport *t, int fd)
{
	struct subproc *sp = as_subproc(t);

	if (sp == NULL || fd < 0 || fd > 2)
		return NULL;
	return sp->pipes[fd].t;
}

int
aloop_subprocess_send_signal(struct aloop_transport *t, int signum)
{
	struct subproc *sp = as_subproc(t);

	if (sp == NULL || signum < 0 || signum >= NSIG)
		return ALOOP_EINVAL;
	/* Until we reap it the pid cannot be reused, so kill(2) is safe. */
	if (sp->exited)
		return 0;
	if (kill(sp->pid, signum) == -1)
		return errno == ESRCH ? 0 : -errno;
	return 0;
}

int
aloop_subprocess_terminate(struct aloop_transport *t)
{
	return aloop_subprocess_send_signal(t, SIGTERM);
}

int
aloop_subprocess_kill(struct aloop_transport *t)
{
	return aloop_subprocess_send_signal(t, SIGKILL);
}
