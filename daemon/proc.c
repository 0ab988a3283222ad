/*
 * Forking the master's children.  The master runs an event loop whose
 * signal handlers write into its own descriptors; a child that kept them
 * would wake the master with its own signals, so a child resets every
 * handler before it unblocks a signal, and closes what it did not ask to
 * keep.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/wait.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "config-int.h"
#include "proc.h"

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return x < y ? -1 : x > y;
}

/* Close every descriptor above 2 that is not in @keep (sorted). */
static void
close_others(const int *keep, size_t nkeep)
{
	unsigned int from = 3;

	for (size_t i = 0; i < nkeep; i++) {
		if (keep[i] < (int)from)
			continue;
		if ((unsigned int)keep[i] > from)
			(void)close_range(from, (unsigned int)keep[i] - 1, 0);
		from = (unsigned int)keep[i] + 1;
	}
	(void)close_range(from, ~0u, 0);
}

int
proc_fork(const int *keep, size_t nkeep, pid_t *pid)
{
	sigset_t all, old;
	int *sorted;
	pid_t p;

	if ((sorted = malloc((nkeep + 1) * sizeof(*sorted))) == NULL)
		return ALOOP_ENOMEM;
	memcpy(sorted, keep, nkeep * sizeof(*keep));
	qsort(sorted, nkeep, sizeof(*sorted), cmp_int);
	/* No handler of the master's may run in the child. */
	sigfillset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, &old);
	p = fork();
	if (p == -1) {
		int e = errno;

		(void)sigprocmask(SIG_SETMASK, &old, NULL);
		free(sorted);
		return -e;
	}
	if (p == 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		for (int sig = 1; sig < NSIG; sig++)
			(void)sigaction(sig, &sa, NULL);
		close_others(sorted, nkeep);
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
	} else
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
	free(sorted);
	*pid = p;
	return 0;
}

const char *
proc_status(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(status));

		if (abbrev != NULL)
			snprintf(buf, len, "killed by SIG%s%s", abbrev,
			    WCOREDUMP(status) ? " (core dumped)" : "");
		else
			snprintf(buf, len, "killed by signal %d",
			    WTERMSIG(status));
	} else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else
		snprintf(buf, len, "exited");
	return buf;
}

int
proc_exited_cleanly(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int
proc_drop_privileges(const struct config_daemon *d)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	/* Whatever the user: no exec may gain privileges back. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return -errno;
	if (d->user == NULL && d->group == NULL)
		return 0;
	if (geteuid() != 0)
		return 0;	/* the master said so at start */
	pw = d->user != NULL ? getpwnam(d->user) : NULL;
	if (d->user != NULL && pw == NULL) {
		aloop_log(ALOOP_LOG_ERR, "user %s: no such user", d->user);
		return ALOOP_ENOENT;
	}
	gid = pw != NULL ? pw->pw_gid : getegid();
	if (d->group != NULL) {
		if ((gr = getgrnam(d->group)) == NULL) {
			aloop_log(ALOOP_LOG_ERR, "group %s: no such group",
			    d->group);
			return ALOOP_ENOENT;
		}
		gid = gr->gr_gid;
	}
	if ((pw != NULL ? initgroups(pw->pw_name, gid) :
	    setgroups(1, &gid)) == -1 || setgid(gid) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "cannot change group");
		return -errno;
	}
	if (pw != NULL && setuid(pw->pw_uid) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "cannot become %s", d->user);
		return -errno;
	}
	/* Paranoia, as OpenBSD daemons do: root must be gone for good. */
	if (pw != NULL && pw->pw_uid != 0 && setuid(0) != -1) {
		aloop_log(ALOOP_LOG_ERR, "could regain root after dropping it");
		return -EPERM;
	}
	return 0;
}
