/*
 * Starting a child for the subprocess transport: fork and execve with
 * everything the child needs prepared beforehand, descriptors wired as
 * asked, and a close-on-exec pipe that reports a failure before or in
 * execve to the parent.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/subprocess.h>

#include "subprocess-int.h"

extern char **environ;

/*
 * What the child must do between fork and exec, all prepared by the parent
 * so that the child makes only async-signal-safe system calls: after fork
 * in a threaded program, malloc and stdio may hold locks that no thread of
 * the child will ever release.
 */
struct spawn_req {
	char *const	*argv;
	char *const	*envp;
	char		**paths;	/* candidate files for argv[0] */
	size_t		 npaths;
	const char	*cwd;
	uid_t		 uid;
	gid_t		 gid;
	int		 childfd[3];	/* >= 3, or -1: leave fd i alone */
	int		 merge_stderr;
	int		 maxfd;		/* fallback bound for mark_cloexec */
	int		 new_session;	/* setsid() */
	pid_t		 pgid;		/* setpgid(0, pgid) when >= 0 */
	const int	*pass_fds;	/* kept open across exec */
	size_t		 npass_fds;
};

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC	(1U << 2)
#endif

/*
 * In the child: every descriptor from 3 up closes on exec, also those the
 * application opened without O_CLOEXEC, so that the child gets exactly the
 * three it was given (Python's close_fds).  Marking instead of closing
 * keeps the error pipe open until execve succeeds.
 */
static void
mark_cloexec(int maxfd)
{
	int fd;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
#endif
	for (fd = 3; fd < maxfd; fd++)
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* What a failing child reports through the error pipe. */
enum spawn_stage {
	STAGE_DUP = 1, STAGE_CHDIR, STAGE_SETGROUPS, STAGE_SETGID,
	STAGE_SETUID, STAGE_EXEC, STAGE_SETSID, STAGE_SETPGID, STAGE_PASS_FDS,
	STAGE_LAST = STAGE_PASS_FDS
};
static const char *const stage_names[] = {
	"", "dup2", "chdir", "setgroups", "setgid", "setuid", "execve",
	"setsid", "setpgid", "pass_fds",
};
struct spawn_report {
	int	stage;
	int	err;
};

static void __attribute__((noreturn))
child_fail(int fd, int stage, int err)
{
	struct spawn_report rep = { stage, err };
	ssize_t n;

	do
		n = write(fd, &rep, sizeof(rep));
	while (n == -1 && errno == EINTR);
	_exit(127);
}

static void __attribute__((noreturn))
child_run(const struct spawn_req *r, int errfd)
{
	struct sigaction sa, old;
	sigset_t none;
	int i, err, saw_eacces = 0;
	size_t k;

	/*
	 * A handler the parent installed would run the parent's code here
	 * (libevent's writes to the parent's wake-up socket), so every caught
	 * signal goes back to its default before signals are unblocked.
	 * SIGPIPE is reset too: a daemon ignores it, its children should not.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (i = 1; i < NSIG; i++) {
		if (i == SIGKILL || i == SIGSTOP)
			continue;
		if (sigaction(i, NULL, &old) == -1)
			continue;
		if (old.sa_handler == SIG_DFL ||
		    (old.sa_handler == SIG_IGN && i != SIGPIPE))
			continue;
		(void)sigaction(i, &sa, NULL);
	}
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);

	/* The parent moved every source to fd 3 or above, so no dup2 here
	 * clobbers a source that a later one still needs. */
	for (i = 0; i < 3; i++)
		if (r->childfd[i] >= 0 && dup2(r->childfd[i], i) == -1)
			child_fail(errfd, STAGE_DUP, errno);
	if (r->merge_stderr && dup2(1, 2) == -1)
		child_fail(errfd, STAGE_DUP, errno);
	mark_cloexec(r->maxfd);
	for (k = 0; k < r->npass_fds; k++)
		if (fcntl(r->pass_fds[k], F_SETFD, 0) == -1)
			child_fail(errfd, STAGE_PASS_FDS, errno);
	if (r->new_session && setsid() == -1)
		child_fail(errfd, STAGE_SETSID, errno);
	if (r->pgid >= 0 && setpgid(0, r->pgid) == -1)
		child_fail(errfd, STAGE_SETPGID, errno);

	if (r->cwd != NULL && chdir(r->cwd) == -1)
		child_fail(errfd, STAGE_CHDIR, errno);
	if (r->gid != (gid_t)-1 || r->uid != (uid_t)-1) {
		/* Keep no supplementary group of a privileged parent. */
		if (geteuid() == 0) {
			gid_t g = r->gid != (gid_t)-1 ? r->gid : getegid();

			if (setgroups(1, &g) == -1)
				child_fail(errfd, STAGE_SETGROUPS, errno);
		}
		if (r->gid != (gid_t)-1 && setgid(r->gid) == -1)
			child_fail(errfd, STAGE_SETGID, errno);
		if (r->uid != (uid_t)-1 && setuid(r->uid) == -1)
			child_fail(errfd, STAGE_SETUID, errno);
	}

	/* execvp's rules: skip what is not there, remember EACCES. */
	err = ENOENT;
	for (k = 0; k < r->npaths; k++) {
		execve(r->paths[k], r->argv, r->envp);
		err = errno;
		if (err == EACCES)
			saw_eacces = 1;
		else if (err != ENOENT && err != ENOTDIR && err != ESTALE &&
		    err != ELOOP && err != ENAMETOOLONG && err != ENODEV &&
		    err != ETIMEDOUT)
			break;
	}
	if (k == r->npaths && saw_eacces)
		err = EACCES;
	child_fail(errfd, STAGE_EXEC, err);
}

static void
free_paths(char **paths, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/*
 * The files execvp would try for @prog, in order: @prog itself if it names
 * a path, else each directory of PATH (the child's environment's if it has
 * one, else ours).
 */
static int
exec_candidates(const char *prog, char *const *envp, char ***out, size_t *nout)
{
	const char *path = NULL, *p, *end;
	char **v;
	size_t n = 0, cap = 1, plen = strlen(prog), dlen;
	size_t i;

	if (strchr(prog, '/') != NULL) {
		if ((v = calloc(1, sizeof(*v))) == NULL ||
		    (v[0] = strdup(prog)) == NULL) {
			free(v);
			return ALOOP_ENOMEM;
		}
		*out = v;
		*nout = 1;
		return 0;
	}
	for (i = 0; envp != NULL && envp[i] != NULL; i++)
		if (strncmp(envp[i], "PATH=", 5) == 0) {
			path = envp[i] + 5;
			break;
		}
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p != '\0'; p++)
		if (*p == ':')
			cap++;
	if ((v = calloc(cap, sizeof(*v))) == NULL)
		return ALOOP_ENOMEM;
	for (p = path;; p = end + 1) {
		end = strchrnul(p, ':');
		dlen = (size_t)(end - p);
		/* An empty element means the current directory. */
		if ((v[n] = malloc(dlen + plen + 3)) == NULL) {
			free_paths(v, n);
			return ALOOP_ENOMEM;
		}
		if (dlen == 0)
			snprintf(v[n], dlen + plen + 3, "./%s", prog);
		else
			snprintf(v[n], dlen + plen + 3, "%.*s/%s", (int)dlen,
			    p, prog);
		n++;
		if (*end == '\0')
			break;
	}
	*out = v;
	*nout = n;
	return 0;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		(void)close(*fd);
		*fd = -1;
	}
}

/* A close-on-exec copy of @fd at 3 or above, so the child's dup2 of one
 * source onto 0..2 can never clobber another. */
static int
dup_high(int fd, int *out)
{
	if ((*out = fcntl(fd, F_DUPFD_CLOEXEC, 3)) == -1)
		return -errno;
	return 0;
}

static int
set_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -errno;
	return 0;
}

/*
 * Prepare the child's descriptors per @o: for each of 0..2, the source the
 * child dup2s (childfd, -1 to inherit) and the parent's end of a pipe
 * (parentfd, -1 when not a pipe).  Everything is close-on-exec.
 */
static int
setup_fds(const struct aloop_subprocess_options *o, int childfd[3],
    int parentfd[3], int *merge)
{
	const int want[3] = { o->stdin_fd, o->stdout_fd, o->stderr_fd };
	int i, p[2], rc, devnull = -1;

	*merge = 0;
	for (i = 0; i < 3; i++) {
		switch (want[i]) {
		case ALOOP_SUBPROCESS_INHERIT:
			break;
		case ALOOP_SUBPROCESS_STDOUT:
			*merge = 1;
			break;
		case ALOOP_SUBPROCESS_DEVNULL:
			if (devnull == -1 &&
			    (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
				return -errno;
			if ((rc = dup_high(devnull, &childfd[i])) < 0)
				goto fail;
			break;
		case ALOOP_SUBPROCESS_PIPE:
			if (pipe2(p, O_CLOEXEC) == -1) {
				rc = -errno;
				goto fail;
			}
			/* The child's end is p[0] for stdin, p[1] otherwise. */
			parentfd[i] = i == 0 ? p[1] : p[0];
			rc = dup_high(i == 0 ? p[0] : p[1], &childfd[i]);
			(void)close(i == 0 ? p[0] : p[1]);
			if (rc < 0 || (rc = set_nonblock(parentfd[i])) < 0)
				goto fail;
			break;
		default:
			if ((rc = dup_high(want[i], &childfd[i])) < 0)
				goto fail;
			break;
		}
	}
	close_fd(&devnull);
	return 0;
fail:
	close_fd(&devnull);
	return rc;
}

/*
 * Fork and exec per @r.  The child reports a failure before or in execve
 * through a close-on-exec pipe; reading it to EOF tells that execve
 * succeeded.  A failed child is reaped here, so none is left behind.
 * Returns 0, or the negated errno with *@stage set.
 */
static int
spawn(const struct spawn_req *r, pid_t *pidp, int *stage)
{
	struct spawn_report rep;
	sigset_t all, old;
	pid_t pid;
	ssize_t n;
	size_t got = 0;
	int ep[2], err;

	*stage = 0;
	if (pipe2(ep, O_CLOEXEC) == -1)
		return -errno;
	/* No handler of ours may run in the child before it resets them. */
	sigfillset(&all);
	if ((err = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0) {
		(void)close(ep[0]);
		(void)close(ep[1]);
		return -err;
	}
	pid = fork();
	if (pid == 0)
		child_run(r, ep[1]);
	err = errno;
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	(void)close(ep[1]);
	if (pid == -1) {
		(void)close(ep[0]);
		return -err;
	}
	while (got < sizeof(rep)) {
		n = read(ep[0], (char *)&rep + got, sizeof(rep) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	(void)close(ep[0]);
	if (got == 0) {
		*pidp = pid;
		return 0;
	}
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	if (got < sizeof(rep) || rep.err <= 0)
		return -EIO;
	*stage = rep.stage;
	return -rep.err;
}

/* The bound of the descriptor table, for the child's fallback loop. */
static int
max_fd(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > INT_MAX)
		return 65536;
	return (int)rl.rlim_cur;
}

int
aloop__spawn(const char *const *argv,
    const struct aloop_subprocess_options *o, pid_t *pid, int parentfd[3],
    const char **what)
{
	struct spawn_req r;
	int childfd[3] = { -1, -1, -1 };
	int i, rc, stage;

	memset(&r, 0, sizeof(r));
	r.argv = (char *const *)argv;
	r.envp = o->env != NULL ? (char *const *)o->env : environ;
	r.cwd = o->cwd;
	r.uid = o->uid;
	r.gid = o->gid;
	r.new_session = o->start_new_session;
	r.pgid = o->process_group;
	r.pass_fds = o->pass_fds;
	r.npass_fds = o->npass_fds;
	*what = "subprocess";
	if ((rc = exec_candidates(argv[0], r.envp, &r.paths, &r.npaths)) < 0)
		return rc;
	if ((rc = setup_fds(o, childfd, parentfd, &r.merge_stderr)) < 0)
		goto out;
	memcpy(r.childfd, childfd, sizeof(childfd));
	r.maxfd = max_fd();
	rc = spawn(&r, pid, &stage);
	if (rc < 0) {
		*what = stage_names[stage >= 0 && stage <= STAGE_LAST ?
		    stage : 0];
		if (stage == STAGE_EXEC || stage == 0)
			*what = argv[0];
	}
out:
	for (i = 0; i < 3; i++) {
		close_fd(&childfd[i]);
		if (rc < 0)
			close_fd(&parentfd[i]);
	}
	free_paths(r.paths, r.npaths);
	return rc;
}

