/*
 * What the subprocess module shares with its tests beyond the public API.
 * Private to lib/.
 */
#ifndef ALOOP_SUBPROCESS_INT_H
#define ALOOP_SUBPROCESS_INT_H

/*
 * Non-zero: watch new children by polling waitpid, as on a kernel without
 * pidfd_open, so that tests can exercise the fallback anywhere.
 * Read when a child starts; loop thread only.
 */
extern int aloop__subprocess_force_poll;

#include <sys/types.h>

struct aloop_subprocess_options;

/*
 * lib/spawn.c.  Fork and execve @argv (argv[0] searched in PATH) with the
 * descriptors, environment, directory and ids of @o.  On success *@pid is
 * the running child and parentfd[i] the parent's non-blocking,
 * close-on-exec end of the pipe for the child's fd i (-1 where @o asks for
 * no pipe), owned by the caller.  On failure no child is left (a child
 * that failed is reaped), no descriptor stays open, and *@what names the
 * step or program for the message; returns the negated errno.
 */
int	aloop__spawn(const char *const *argv,
	    const struct aloop_subprocess_options *o, pid_t *pid,
	    int parentfd[3], const char **what);

#endif /* ALOOP_SUBPROCESS_INT_H */
