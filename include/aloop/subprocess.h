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
};
ALOOP_API void aloop_subprocess_options_init(struct aloop_subprocess_options *o);

/**
 * Start @argv[0] (searched in PATH) with @argv.  The future's result is the
 * subprocess struct aloop_transport *; the protocol has seen
 * connection_made.  A program that cannot be started completes the future
 * with the errno of execve.  No descriptor of the parent leaks into the
 * child but the three it is given.
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

ALOOP_API pid_t aloop_subprocess_get_pid(const struct aloop_transport *t);
/**
 * 0 and *@rc (exit status, or -signal if killed by one) once the process
 * has exited; ALOOP_ESTATE while it runs.
 */
ALOOP_API int aloop_subprocess_get_returncode(const struct aloop_transport *t, int *rc);
/** The pipe transport for the child's fd 0, 1 or 2, or NULL if not a pipe. */
ALOOP_API struct aloop_transport *aloop_subprocess_get_pipe_transport(
    struct aloop_transport *t, int fd);
/** ALOOP_ESTATE-free no-op once the child has exited (0 returned). */
ALOOP_API int aloop_subprocess_send_signal(struct aloop_transport *t, int signum);
ALOOP_API int aloop_subprocess_terminate(struct aloop_transport *t);
ALOOP_API int aloop_subprocess_kill(struct aloop_transport *t);
/* aloop_transport_close() on a subprocess transport closes its pipes and
 * kills the child if it still runs. */

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_SUBPROCESS_H */
