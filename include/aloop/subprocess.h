/*
 * Pipes and subprocesses: connect_read_pipe, connect_write_pipe,
 * subprocess_exec and subprocess_shell, as asyncio's.
 */
#ifndef ALOOP_SUBPROCESS_H
#define ALOOP_SUBPROCESS_H

#include <sys/types.h>

#include <aloop/common.h>
#include <aloop/future.h>
#include <aloop/protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_loop;
struct aloop_transport;

/**
 * Drive @fd (made non-blocking; the transport owns and closes it) as a read
 * pipe (data_received, eof_received, connection_lost) or a write pipe
 * (write, write_eof, connection_lost when the reader goes away).  The
 * future's result is the struct aloop_transport *.
 */
ALOOP_API int aloop_connect_read_pipe(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, int fd, struct aloop_future **fut);
ALOOP_API int aloop_connect_write_pipe(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, int fd, struct aloop_future **fut);

/* What each of the child's stdin, stdout and stderr is. */
#define ALOOP_SUBPROCESS_PIPE		(-1)	/* a pipe to the transport */
#define ALOOP_SUBPROCESS_INHERIT	(-2)	/* the parent's descriptor */
#define ALOOP_SUBPROCESS_DEVNULL	(-3)	/* /dev/null */
#define ALOOP_SUBPROCESS_STDOUT		(-4)	/* stderr only: merged into stdout */
/* A value >= 0 is a descriptor of the caller's, duplicated for the child. */

struct aloop_subprocess_options {
	int			 stdin_fd;	/* ALOOP_SUBPROCESS_PIPE */
	int			 stdout_fd;	/* ALOOP_SUBPROCESS_PIPE */
	int			 stderr_fd;	/* ALOOP_SUBPROCESS_PIPE */
	const char *const	*env;		/* NULL: inherit */
	const char		*cwd;		/* NULL: inherit */
	uid_t			 uid;		/* (uid_t)-1: unchanged */
	gid_t			 gid;		/* (gid_t)-1: unchanged */
	/* Appended fields (always set them through options_init first). */
	int			 start_new_session; /* 0; 1: setsid() in the child */
	pid_t			 process_group;	/* -1: unchanged; 0: its own */
	const int		*pass_fds;	/* NULL: none */
	size_t			 npass_fds;
};
ALOOP_API void aloop_subprocess_options_init(struct aloop_subprocess_options *o);

/**
 * Start @argv[0] (searched in PATH, the child's own if @o->env sets one)
 * with @argv.  The future's result is the subprocess struct
 * aloop_transport *; the protocol has seen connection_made.  A program
 * that cannot be started (or a cwd, uid or gid that cannot be set)
 * completes the future with that errno, and no child is left behind.  No
 * descriptor of the parent leaks into the child but the three it is
 * given, not even one opened without O_CLOEXEC, except the @o->pass_fds
 * (descriptors of the caller's, 3 or above, kept open in the child under
 * the same numbers, as Python's pass_fds).  @o->start_new_session runs the
 * child in a session of its own (setsid), @o->process_group >= 0 puts it
 * in that process group (0: a new group it leads; setpgid), as Python's
 * start_new_session and process_group; both together are ALOOP_EINVAL.  Caught signals are reset
 * to their default and none is blocked in the child; SIGPIPE is reset too.
 * The child's exit is noticed through a pidfd (waitpid on its own pid,
 * polled, on kernels without one), so other children are never reaped.
 * @o may be NULL (three pipes).  ALOOP_EINVAL for an empty @argv, a bad
 * descriptor choice (ALOOP_SUBPROCESS_STDOUT is for stderr only) or a
 * pass_fds entry below 3.
 */
ALOOP_API int aloop_subprocess_exec(struct aloop_loop *loop,
    const struct aloop_subprocess_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg,
    const char *const *argv, const struct aloop_subprocess_options *o,
    struct aloop_future **fut);

/** Run @cmd with /bin/sh -c. */
ALOOP_API int aloop_subprocess_shell(struct aloop_loop *loop,
    const struct aloop_subprocess_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg, const char *cmd,
    const struct aloop_subprocess_options *o, struct aloop_future **fut);

/** The child's pid; -1 if @t is no subprocess transport. */
ALOOP_API pid_t aloop_subprocess_get_pid(const struct aloop_transport *t);
/**
 * 0 and *@rc (exit status, or -signal if killed by one) once the process
 * has exited; ALOOP_ESTATE while it runs; ALOOP_EINVAL if @t is no
 * subprocess transport.
 */
ALOOP_API int aloop_subprocess_get_returncode(const struct aloop_transport *t, int *rc);
/**
 * The pipe transport for the child's fd 0, 1 or 2, or NULL if not a pipe
 * (or once that pipe's connection is lost).  Owned by the subprocess
 * transport; write to fd 0's, or close it to send EOF.
 */
ALOOP_API struct aloop_transport *aloop_subprocess_get_pipe_transport(
    struct aloop_transport *t, int fd);
/**
 * Send @signum to the child.  A no-op returning 0 once the child has
 * exited (it is reaped, so its pid cannot have been reused).  ALOOP_EINVAL
 * for an invalid signal or a transport that is no subprocess.
 */
ALOOP_API int aloop_subprocess_send_signal(struct aloop_transport *t, int signum);
ALOOP_API int aloop_subprocess_terminate(struct aloop_transport *t);
ALOOP_API int aloop_subprocess_kill(struct aloop_transport *t);
/* aloop_transport_close() on a subprocess transport closes its pipes and
 * kills the child (SIGKILL) if it still runs; process_exited and
 * connection_lost follow as usual.  aloop_transport_abort() also kills it,
 * and closing the loop kills and reaps a child still running. */

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_SUBPROCESS_H */
