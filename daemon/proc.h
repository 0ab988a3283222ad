/*
 * The master's children: forking one that starts clean (no handler or
 * descriptor of the master's), and saying how one ended.
 */
#ifndef ALOOPD_PROC_H
#define ALOOPD_PROC_H

#include <sys/types.h>

#include <stddef.h>

/*
 * Fork.  In the child (*@pid == 0 on return) every signal has its default
 * disposition, the signal mask is the one the caller had, and every
 * descriptor but 0, 1, 2 and the @nkeep in @keep is closed, the master's
 * event loop's included: the child must make its own loop and never touch
 * the caller's.  0, or a negative ALOOP_E* code (nothing forked).
 */
int	proc_fork(const int *keep, size_t nkeep, pid_t *pid);

/* "killed by SIGSEGV", "exited with status 3", "exited" into @buf. */
const char *proc_status(int status, char *buf, size_t len);

/*
 * In a worker, once its plugins are loaded and initialised and before it
 * serves: set no-new-privileges and, when running as root with
 * `user`/`group` set, become them for good.  The master keeps its own
 * privileges to bind what a reload adds.  0, or a negative ALOOP_E* code
 * (logged).
 */
struct config_daemon;
int	proc_drop_privileges(const struct config_daemon *d);

/* Whether @status is a clean exit (status 0). */
int	proc_exited_cleanly(int status);

#endif /* ALOOPD_PROC_H */
