/*
 * Subprocesses: exit codes and signals, pipes, merged and discarded
 * streams, exec failures, descriptor hygiene, callback order, many
 * children at once and the polling fallback, with real /bin/sh children.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "loop-test.h"
#include "runner.h"
#include "subprocess-int.h"

/* Seconds a single test may take before its watchdog fails it. */
#define WATCHDOG	20.0

/* Run until the future is done, for WATCHDOG seconds at most. */
#define run(loop, f, result)	run_bounded((loop), (f), (result), WATCHDOG)

struct proc {
	struct aloop_loop	*loop;
	struct aloop_transport	*t;
	struct aloop_future	*done;		/* completed in connection_lost */
	char			 events[32];	/* M 0 1 2 X L, in order */
	size_t			 nev;
	char			 out[16384];
	size_t			 outlen;
	char			 err[4096];
	size_t			 errlen;
	int			 made, exited, lost, pipe_lost[3];
	int			 rc_at_exit;
	int			 data_after_lost;
	const char		*write_on_made;	/* sent to stdin, then EOF */
	int			 count_only;	/* keep totals, not the bytes */
	size_t			 total;
	unsigned long		 sum;
	unsigned		 order_errors;	/* bytes not in 'a'..'z' order */
	int			 close_on_made;
	int			 close_on_exit;
};

static void
ev(struct proc *p, char c)
{
	if (p->nev + 1 < sizeof(p->events))
		p->events[p->nev++] = c;
}

static int
proc_factory(void *arg, void **state)
{
	*state = arg;
	return 0;
}

static int
refusing_factory(void *arg, void **state)
{
	(void)arg;
	(void)state;
	return -EPERM;
}

static void
proc_made(struct aloop_transport *t, void *state)
{
	struct proc *p = state;
	struct aloop_transport *in;

	p->made++;
	p->t = t;
	ev(p, 'M');
	if (p->write_on_made != NULL &&
	    (in = aloop_subprocess_get_pipe_transport(t, 0)) != NULL) {
		CU_ASSERT_EQUAL(aloop_transport_write(in, p->write_on_made,
		    strlen(p->write_on_made)), 0);
		CU_ASSERT_EQUAL(aloop_transport_write_eof(in), 0);
	}
	if (p->close_on_made)
		aloop_transport_close(t);
}

static void
proc_data(struct aloop_transport *t, void *state, int fd, const void *data,
    size_t len)
{
	struct proc *p = state;
	char *buf = fd == 1 ? p->out : p->err;
	size_t *n = fd == 1 ? &p->outlen : &p->errlen;
	size_t cap = fd == 1 ? sizeof(p->out) : sizeof(p->err);

	(void)t;
	CU_ASSERT(fd == 1 || fd == 2);
	CU_ASSERT(len > 0);
	if (p->count_only) {
		const unsigned char *b = data;
		size_t i;

		for (i = 0; i < len; i++, p->total++) {
			p->sum += b[i];
			if (b[i] != 'a' + p->total % 26)
				p->order_errors++;
		}
		return;
	}
	if (fd == 1 || fd == 2) {
		if (p->pipe_lost[fd])
			p->data_after_lost++;
		if (*n + len < cap) {
			memcpy(buf + *n, data, len);
			*n += len;
			buf[*n] = '\0';
		}
	}
	/* Close once the process is gone and its first line is in. */
	if (p->close_on_exit && p->exited && strchr(p->out, '\n') != NULL)
		aloop_transport_close(t);
}

static void
proc_pipe_lost(struct aloop_transport *t, void *state, int fd,
    const struct aloop_error *err)
{
	struct proc *p = state;

	(void)t;
	(void)err;
	CU_ASSERT(fd >= 0 && fd <= 2);
	if (fd >= 0 && fd <= 2) {
		p->pipe_lost[fd]++;
		ev(p, (char)('0' + fd));
	}
}

static void
proc_exited(struct aloop_transport *t, void *state)
{
	struct proc *p = state;

	p->exited++;
	ev(p, 'X');
	CU_ASSERT_EQUAL(aloop_subprocess_get_returncode(t, &p->rc_at_exit), 0);
	/* The child is reaped: signals are harmless no-ops now. */
	CU_ASSERT_EQUAL(aloop_subprocess_terminate(t), 0);
	CU_ASSERT_EQUAL(aloop_subprocess_send_signal(t, SIGHUP), 0);
	if (p->close_on_exit && strchr(p->out, '\n') != NULL)
		aloop_transport_close(t);
}

static void
proc_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct proc *p = state;

	CU_ASSERT_PTR_NULL(err);
	CU_ASSERT_EQUAL(aloop_subprocess_get_returncode(t, &p->rc_at_exit), 0);
	p->lost++;
	ev(p, 'L');
	(void)aloop_future_set_result(p->done, NULL, NULL);
}

static const struct aloop_subprocess_protocol proc_proto = {
	.connection_made = proc_made,
	.pipe_data_received = proc_data,
	.pipe_connection_lost = proc_pipe_lost,
	.process_exited = proc_exited,
	.connection_lost = proc_lost,
};

static struct aloop_loop *
loop_open(void)
{
	struct aloop_loop *loop = NULL;

	CU_ASSERT_EQUAL_FATAL(aloop_loop_new(&loop), 0);
	return loop;
}

static void
proc_init(struct proc *p, struct aloop_loop *loop)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	CU_ASSERT_EQUAL_FATAL(aloop_future_new(loop, &p->done), 0);
}

/*
 * Start @argv (or the shell command @cmd), wait for the transport and then
 * for connection_lost.  Returns the transport future's outcome.
 */
static int
proc_run(struct proc *p, const char *cmd, const char *const *argv,
    const struct aloop_subprocess_options *o,
    void (*on_started)(struct proc *))
{
	struct aloop_future *f = NULL;
	void *res = NULL;
	int rc;

	if (cmd != NULL)
		rc = aloop_subprocess_shell(p->loop, &proc_proto, proc_factory,
		    p, cmd, o, &f);
	else
		rc = aloop_subprocess_exec(p->loop, &proc_proto, proc_factory,
		    p, argv, o, &f);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	rc = run(p->loop, f, &res);
	if (rc == 0) {
		CU_ASSERT_PTR_EQUAL(res, p->t);
		CU_ASSERT(aloop_subprocess_get_pid(p->t) > 0);
		if (on_started != NULL)
			on_started(p);
		CU_ASSERT_EQUAL(run(p->loop, p->done, NULL), 0);
	}
	aloop_future_release(f);
	return rc;
}

static void
proc_finish(struct proc *p)
{
	aloop_future_release(p->done);
}

/* Every callback once, in asyncio's order. */
static void
check_order(const struct proc *p, const char *pipes)
{
	const char *c;

	CU_ASSERT_EQUAL(p->made, 1);
	CU_ASSERT_EQUAL(p->exited, 1);
	CU_ASSERT_EQUAL(p->lost, 1);
	CU_ASSERT_EQUAL(p->events[0], 'M');
	CU_ASSERT(p->nev > 0 && p->events[p->nev - 1] == 'L');
	CU_ASSERT_EQUAL(p->nev, 3 + strlen(pipes));
	for (c = pipes; *c != '\0'; c++) {
		CU_ASSERT_PTR_NOT_NULL(memchr(p->events, *c, p->nev));
		CU_ASSERT_EQUAL(p->pipe_lost[*c - '0'], 1);
	}
	CU_ASSERT_EQUAL(p->data_after_lost, 0);
}

/* The same callbacks as another table, for set_protocol to switch to. */
static const struct aloop_subprocess_protocol proc_proto_b = {
	.connection_made = proc_made,
	.pipe_data_received = proc_data,
	.pipe_connection_lost = proc_pipe_lost,
	.process_exited = proc_exited,
	.connection_lost = proc_lost,
};

static struct proc *switch_to;

static void
switch_protocol(struct proc *p)
{
	struct proc *q = switch_to;
	struct aloop_transport *in;

	q->t = p->t;
	q->made = 1;
	CU_ASSERT_EQUAL(aloop_transport_set_protocol(p->t, &proc_proto_b, q),
	    0);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol(p->t), &proc_proto_b);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol_state(p->t), q);
	in = aloop_subprocess_get_pipe_transport(p->t, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	CU_ASSERT_EQUAL(aloop_transport_write(in, "hello\n", 6), 0);
	CU_ASSERT_EQUAL(aloop_transport_write_eof(in), 0);
	CU_ASSERT_EQUAL(run(p->loop, q->done, NULL), 0);
	/* Let proc_run, waiting on the old state, go on. */
	(void)aloop_future_set_result(p->done, NULL, NULL);
}

/*
 * asyncio's set_protocol on a subprocess transport: what comes after it,
 * output, exit and connection_lost, goes to the new table and state.
 */
static void
test_set_protocol(void)
{
	static const char *const argv[] = { "/bin/cat", NULL };
	struct aloop_loop *loop = loop_open();
	struct proc p, q;

	proc_init(&p, loop);
	proc_init(&q, loop);
	switch_to = &q;
	CU_ASSERT_EQUAL(proc_run(&p, NULL, argv, NULL, switch_protocol), 0);
	CU_ASSERT_STRING_EQUAL(q.out, "hello\n");
	CU_ASSERT_EQUAL(q.exited, 1);
	CU_ASSERT_EQUAL(q.lost, 1);
	CU_ASSERT_EQUAL(p.outlen, 0);
	CU_ASSERT_EQUAL(p.exited, 0);
	CU_ASSERT_EQUAL(p.lost, 0);
	proc_finish(&p);
	proc_finish(&q);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_exit_code(void)
{
	struct aloop_loop *loop;
	struct proc p;
	int fds = count_fds();

	loop = loop_open();
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, "echo hi; echo oops >&2; exit 7", NULL,
	    NULL, NULL), 0);
	CU_ASSERT_EQUAL(p.rc_at_exit, 7);
	CU_ASSERT_STRING_EQUAL(p.out, "hi\n");
	CU_ASSERT_STRING_EQUAL(p.err, "oops\n");
	check_order(&p, "012");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
do_terminate(struct proc *p)
{
	CU_ASSERT_EQUAL(aloop_subprocess_terminate(p->t), 0);
}

static void
do_kill(struct proc *p)
{
	CU_ASSERT_EQUAL(aloop_subprocess_kill(p->t), 0);
}

static void
do_sighup(struct proc *p)
{
	CU_ASSERT_EQUAL(aloop_subprocess_send_signal(p->t, SIGHUP), 0);
}

static void
do_close(struct proc *p)
{
	aloop_transport_close(p->t);
	CU_ASSERT(aloop_transport_is_closing(p->t));
	aloop_transport_close(p->t);
}

static void
signal_case(void (*how)(struct proc *), int expect)
{
	const char *const argv[] = { "sleep", "30", NULL };
	struct aloop_loop *loop;
	struct proc p;
	int fds = count_fds();

	loop = loop_open();
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, NULL, argv, NULL, how), 0);
	CU_ASSERT_EQUAL(p.rc_at_exit, expect);
	check_order(&p, "012");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_terminate(void)
{
	signal_case(do_terminate, -SIGTERM);
}

static void
test_kill(void)
{
	signal_case(do_kill, -SIGKILL);
}

static void
test_send_signal(void)
{
	signal_case(do_sighup, -SIGHUP);
}

static void
test_close_kills(void)
{
	signal_case(do_close, -SIGKILL);
}

static void
test_killed_by_own_signal(void)
{
	struct aloop_loop *loop = loop_open();
	struct proc p;

	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, "kill -USR1 $$; sleep 5", NULL, NULL,
	    NULL), 0);
	CU_ASSERT_EQUAL(p.rc_at_exit, -SIGUSR1);
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_cat_echo(void)
{
	const char *const argv[] = { "cat", NULL };
	struct aloop_loop *loop = loop_open();
	struct proc p;

	proc_init(&p, loop);
	p.write_on_made = "hello, child\n";
	CU_ASSERT_EQUAL(proc_run(&p, NULL, argv, NULL, NULL), 0);
	CU_ASSERT_STRING_EQUAL(p.out, "hello, child\n");
	CU_ASSERT_EQUAL(p.errlen, 0);
	CU_ASSERT_EQUAL(p.rc_at_exit, 0);
	check_order(&p, "012");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
check_pipes_merge(struct proc *p)
{
	CU_ASSERT_PTR_NOT_NULL(aloop_subprocess_get_pipe_transport(p->t, 1));
	CU_ASSERT_PTR_NULL(aloop_subprocess_get_pipe_transport(p->t, 2));
	CU_ASSERT_PTR_NULL(aloop_subprocess_get_pipe_transport(p->t, 0));
	CU_ASSERT_PTR_NULL(aloop_subprocess_get_pipe_transport(p->t, 3));
}

static void
check_no_stderr_pipe(struct proc *p)
{
	CU_ASSERT_PTR_NOT_NULL(aloop_subprocess_get_pipe_transport(p->t, 0));
	CU_ASSERT_PTR_NOT_NULL(aloop_subprocess_get_pipe_transport(p->t, 1));
	CU_ASSERT_PTR_NULL(aloop_subprocess_get_pipe_transport(p->t, 2));
}

static void
test_stderr_to_stdout(void)
{
	struct aloop_subprocess_options o;
	struct aloop_loop *loop = loop_open();
	struct proc p;

	aloop_subprocess_options_init(&o);
	o.stdin_fd = ALOOP_SUBPROCESS_DEVNULL;
	o.stderr_fd = ALOOP_SUBPROCESS_STDOUT;
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, "echo out; echo err >&2", NULL, &o,
	    check_pipes_merge), 0);
	CU_ASSERT_STRING_EQUAL(p.out, "out\nerr\n");
	CU_ASSERT_EQUAL(p.errlen, 0);
	check_order(&p, "1");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_devnull(void)
{
	const char *const argv[] = { "cat", NULL };
	struct aloop_subprocess_options o;
	struct aloop_loop *loop = loop_open();
	struct proc p;

	aloop_subprocess_options_init(&o);
	o.stdin_fd = ALOOP_SUBPROCESS_DEVNULL;
	o.stderr_fd = ALOOP_SUBPROCESS_DEVNULL;
	proc_init(&p, loop);
	/* cat reads EOF from /dev/null at once. */
	CU_ASSERT_EQUAL(proc_run(&p, NULL, argv, &o, NULL), 0);
	CU_ASSERT_EQUAL(p.outlen, 0);
	CU_ASSERT_EQUAL(p.rc_at_exit, 0);
	check_order(&p, "1");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_fd_option(void)
{
	struct aloop_subprocess_options o;
	struct aloop_loop *loop = loop_open();
	struct proc p;
	char buf[64];
	ssize_t n;
	int pp[2];

	/* A descriptor of ours as the child's stdout. */
	CU_ASSERT_EQUAL_FATAL(pipe(pp), 0);
	aloop_subprocess_options_init(&o);
	o.stdout_fd = pp[1];
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, "echo via-fd", NULL, &o, NULL), 0);
	close(pp[1]);
	n = read(pp[0], buf, sizeof(buf) - 1);
	CU_ASSERT_EQUAL(n, 7);
	if (n > 0) {
		buf[n] = '\0';
		CU_ASSERT_STRING_EQUAL(buf, "via-fd\n");
	}
	close(pp[0]);
	CU_ASSERT_EQUAL(p.outlen, 0);
	check_order(&p, "02");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_env_and_cwd(void)
{
	const char *const env[] = { "ALOOP_TEST_VAR=forty-two", NULL };
	struct aloop_subprocess_options o;
	struct aloop_loop *loop = loop_open();
	struct proc p;

	aloop_subprocess_options_init(&o);
	o.env = env;
	o.cwd = "/";
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, "echo \"$ALOOP_TEST_VAR\"; pwd", NULL, &o,
	    NULL), 0);
	CU_ASSERT_STRING_EQUAL(p.out, "forty-two\n/\n");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* The child runs as another user: nobody if we are root, else as us. */
static void
test_uid_gid(void)
{
	struct aloop_subprocess_options o;
	struct aloop_loop *loop = loop_open();
	struct proc p;
	char expect[64];

	aloop_subprocess_options_init(&o);
	if (geteuid() == 0) {
		o.uid = 65534;
		o.gid = 65534;
	} else {
		o.uid = getuid();
		o.gid = getgid();
	}
	snprintf(expect, sizeof(expect), "%u %u\n", (unsigned)o.uid,
	    (unsigned)o.gid);
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, "echo $(id -u) $(id -g)", NULL, &o,
	    NULL), 0);
	CU_ASSERT_STRING_EQUAL(p.out, expect);
	CU_ASSERT_EQUAL(p.rc_at_exit, 0);
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* INHERIT leaves the child our own descriptor: here a pipe put on fd 2. */
static void
test_inherit(void)
{
	struct aloop_subprocess_options o;
	struct aloop_loop *loop = loop_open();
	struct proc p;
	char buf[64];
	ssize_t n;
	int pp[2], saved;

	CU_ASSERT_EQUAL_FATAL(pipe2(pp, O_CLOEXEC), 0);
	saved = dup(2);
	CU_ASSERT_FATAL(saved >= 0);
	CU_ASSERT_FATAL(dup2(pp[1], 2) == 2);
	aloop_subprocess_options_init(&o);
	o.stderr_fd = ALOOP_SUBPROCESS_INHERIT;
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, "echo inherited >&2", NULL, &o,
	    check_no_stderr_pipe), 0);
	(void)dup2(saved, 2);
	close(saved);
	close(pp[1]);
	n = read(pp[0], buf, sizeof(buf) - 1);
	CU_ASSERT_EQUAL(n, 10);
	if (n > 0) {
		buf[n] = '\0';
		CU_ASSERT_STRING_EQUAL(buf, "inherited\n");
	}
	close(pp[0]);
	check_order(&p, "01");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* A failed start completes the future with the errno and leaves no child. */
static void
exec_fails(const char *const *argv, const struct aloop_subprocess_options *o,
    int expect)
{
	struct aloop_loop *loop;
	struct aloop_future *f = NULL;
	struct proc p;
	const struct aloop_error *e;
	int fds = count_fds();

	loop = loop_open();
	proc_init(&p, loop);
	CU_ASSERT_EQUAL_FATAL(aloop_subprocess_exec(loop, &proc_proto,
	    proc_factory, &p, argv, o, &f), 0);
	CU_ASSERT_EQUAL(run(loop, f, NULL), expect);
	e = aloop_future_error(f);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e != NULL)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->message, strerror(-expect)));
	CU_ASSERT_EQUAL(p.made, 0);
	aloop_future_release(f);
	/* Reaped already: nothing is left to wait for. */
	CU_ASSERT_EQUAL(waitpid(-1, NULL, WNOHANG), -1);
	CU_ASSERT_EQUAL(errno, ECHILD);
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_exec_missing(void)
{
	const char *const abs[] = { "/nonexistent/aloop-no-such-program", NULL };
	const char *const rel[] = { "aloop-no-such-program", NULL };
	const char *const dir[] = { "/", NULL };
	const char *const ok[] = { "true", NULL };
	struct aloop_subprocess_options o;

	exec_fails(abs, NULL, -ENOENT);
	exec_fails(rel, NULL, -ENOENT);
	exec_fails(dir, NULL, -EACCES);
	aloop_subprocess_options_init(&o);
	o.cwd = "/nonexistent/aloop-dir";
	exec_fails(ok, &o, -ENOENT);
}

/* A refusing factory: the child is killed and reaped, nobody is called. */
static void
test_factory_refuses(void)
{
	const char *const argv[] = { "sleep", "30", NULL };
	struct aloop_loop *loop;
	struct aloop_future *f = NULL, *idle = NULL;
	int i, fds = count_fds();

	loop = loop_open();
	CU_ASSERT_EQUAL_FATAL(aloop_subprocess_exec(loop, &proc_proto,
	    refusing_factory, NULL, argv, NULL, &f), 0);
	CU_ASSERT_EQUAL(run(loop, f, NULL), -EPERM);
	aloop_future_release(f);
	/* The loop reaps the killed child by itself: run it in short slices
	 * while any child of ours exists (waitid with WNOWAIT reaps none). */
	for (i = 0; i < 1000; i++) {
		siginfo_t si;

		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == -1)
			break;
		CU_ASSERT_EQUAL_FATAL(aloop_future_new(loop, &idle), 0);
		CU_ASSERT_EQUAL(aloop_call_later(loop, 0.01, future_watchdog_cb, idle,
		    NULL), 0);
		(void)aloop_run_until_complete(loop, idle, NULL);
		aloop_future_release(idle);
	}
	CU_ASSERT_EQUAL(waitpid(-1, NULL, WNOHANG), -1);
	CU_ASSERT_EQUAL(errno, ECHILD);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* A megabyte through cat and back: the pipes keep every byte in order. */
static void
test_large_output(void)
{
	const char *const argv[] = { "cat", NULL };
	struct aloop_loop *loop = loop_open();
	struct aloop_transport *in;
	struct proc *p;
	char *big;
	size_t i, n = 1 << 20;
	unsigned long sum = 0, want = 0;

	p = calloc(1, sizeof(*p));
	big = malloc(n);
	CU_ASSERT_FATAL(p != NULL && big != NULL);
	for (i = 0; i < n; i++) {
		big[i] = (char)('a' + i % 26);
		want += (unsigned char)big[i];
	}
	proc_init(p, loop);
	p->count_only = 1;
	{
		struct aloop_future *f = NULL;

		CU_ASSERT_EQUAL_FATAL(aloop_subprocess_exec(loop, &proc_proto,
		    proc_factory, p, argv, NULL, &f), 0);
		CU_ASSERT_EQUAL_FATAL(run(loop, f, NULL), 0);
		aloop_future_release(f);
	}
	in = aloop_subprocess_get_pipe_transport(p->t, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	CU_ASSERT_EQUAL(aloop_transport_write(in, big, n), 0);
	aloop_transport_close(in);
	CU_ASSERT_EQUAL(run(loop, p->done, NULL), 0);
	CU_ASSERT_EQUAL(p->total, n);
	sum = p->sum;
	CU_ASSERT_EQUAL(sum, want);
	CU_ASSERT_EQUAL(p->order_errors, 0);
	CU_ASSERT_EQUAL(p->rc_at_exit, 0);
	check_order(p, "012");
	proc_finish(p);
	free(p);
	free(big);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* Out of descriptors: the future says EMFILE, nothing is left behind. */
static void
test_out_of_descriptors(void)
{
	const char *const argv[] = { "true", NULL };
	struct aloop_loop *loop = loop_open();
	struct aloop_future *f = NULL;
	struct rlimit saved, low;
	struct proc p;
	int fds;

	proc_init(&p, loop);
	fds = count_fds();
	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &saved), 0);
	/* Room for two more: three pipes cannot be made. */
	low = saved;
	low.rlim_cur = (rlim_t)fds + 2;
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &low), 0);
	CU_ASSERT_EQUAL(aloop_subprocess_exec(loop, &proc_proto, proc_factory,
	    &p, argv, NULL, &f), 0);
	CU_ASSERT_EQUAL(setrlimit(RLIMIT_NOFILE, &saved), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(run(loop, f, NULL), -EMFILE);
	aloop_future_release(f);
	CU_ASSERT_EQUAL(count_fds(), fds);
	CU_ASSERT_EQUAL(waitpid(-1, NULL, WNOHANG), -1);
	CU_ASSERT_EQUAL(p.made, 0);
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_arguments(void)
{
	const char *const argv[] = { "true", NULL };
	const char *const empty[] = { NULL };
	struct aloop_subprocess_options o;
	struct aloop_loop *loop = loop_open();
	struct aloop_future *f = (struct aloop_future *)&f;
	struct proc p;

	proc_init(&p, loop);
	CU_ASSERT_EQUAL(aloop_subprocess_exec(loop, &proc_proto, proc_factory,
	    &p, empty, NULL, &f), ALOOP_EINVAL);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_EQUAL(aloop_subprocess_exec(loop, NULL, proc_factory,
	    &p, argv, NULL, &f), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_subprocess_shell(loop, &proc_proto, proc_factory,
	    &p, NULL, NULL, &f), ALOOP_EINVAL);
	aloop_subprocess_options_init(&o);
	o.stdout_fd = ALOOP_SUBPROCESS_STDOUT;
	CU_ASSERT_EQUAL(aloop_subprocess_exec(loop, &proc_proto, proc_factory,
	    &p, argv, &o, &f), ALOOP_EINVAL);
	aloop_subprocess_options_init(&o);
	o.stdin_fd = -99;
	CU_ASSERT_EQUAL(aloop_subprocess_exec(loop, &proc_proto, proc_factory,
	    &p, argv, &o, &f), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_subprocess_get_pid(NULL), -1);
	CU_ASSERT_PTR_NULL(aloop_subprocess_get_pipe_transport(NULL, 1));
	CU_ASSERT_EQUAL(aloop_subprocess_kill(NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(p.made, 0);
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	CU_ASSERT_EQUAL(aloop_subprocess_exec(loop, &proc_proto, proc_factory,
	    &p, argv, NULL, &f), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/*
 * The child sees its three descriptors and nothing else: not the loop's,
 * not another child's pipes, not even one the application opened without
 * O_CLOEXEC.
 */
static void
test_no_fd_leak(void)
{
	const char *const sleeper[] = { "sleep", "30", NULL };
	struct aloop_loop *loop = loop_open();
	struct aloop_future *f = NULL;
	struct proc other, p;
	int leaky;

	leaky = dup(2);		/* no O_CLOEXEC on purpose */
	CU_ASSERT_FATAL(leaky >= 0);
	proc_init(&other, loop);
	CU_ASSERT_EQUAL_FATAL(aloop_subprocess_exec(loop, &proc_proto,
	    proc_factory, &other, sleeper, NULL, &f), 0);
	CU_ASSERT_EQUAL_FATAL(run(loop, f, NULL), 0);
	aloop_future_release(f);

	proc_init(&p, loop);
	/* ls runs as the shell's child and lists the shell's table; the
	 * trailing ':' stops a shell from exec'ing ls in its place. */
	CU_ASSERT_EQUAL(proc_run(&p, "ls /proc/$$/fd; :", NULL, NULL, NULL),
	    0);
	CU_ASSERT_STRING_EQUAL(p.out, "0\n1\n2\n");
	CU_ASSERT_EQUAL(p.rc_at_exit, 0);

	CU_ASSERT_EQUAL(aloop_subprocess_kill(other.t), 0);
	CU_ASSERT_EQUAL(run(loop, other.done, NULL), 0);
	CU_ASSERT_EQUAL(other.rc_at_exit, -SIGKILL);
	close(leaky);
	proc_finish(&other);
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/*
 * A grandchild that keeps the pipes open holds connection_lost back (the
 * pipes are not closed yet, asyncio's rule) until the protocol closes the
 * transport, which closes the pipes.  Without the close this test would
 * wait for the grandchild's 30 s, past the watchdog.
 */
static void
test_grandchild_holds_pipes(void)
{
	struct aloop_loop *loop = loop_open();
	struct proc p;
	long gpid;

	proc_init(&p, loop);
	p.close_on_exit = 1;
	CU_ASSERT_EQUAL(proc_run(&p, "sleep 30 & echo $!; exit 3", NULL, NULL,
	    NULL), 0);
	CU_ASSERT_EQUAL(p.exited, 1);
	CU_ASSERT_EQUAL(p.rc_at_exit, 3);
	check_order(&p, "012");
	gpid = strtol(p.out, NULL, 10);
	CU_ASSERT(gpid > 1);
	if (gpid > 1)
		(void)kill((pid_t)gpid, SIGKILL);
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_close_in_connection_made(void)
{
	const char *const argv[] = { "sleep", "30", NULL };
	struct aloop_loop *loop = loop_open();
	struct proc p;

	proc_init(&p, loop);
	p.close_on_made = 1;
	CU_ASSERT_EQUAL(proc_run(&p, NULL, argv, NULL, NULL), 0);
	CU_ASSERT_EQUAL(p.rc_at_exit, -SIGKILL);
	check_order(&p, "012");
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

#define NCHILDREN	50

static void
many_children(void)
{
	struct aloop_subprocess_options o;
	struct aloop_loop *loop;
	struct aloop_future *f[NCHILDREN];
	struct proc *p;
	char cmd[64];
	int i, fds = count_fds();

	loop = loop_open();
	p = calloc(NCHILDREN, sizeof(*p));
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	aloop_subprocess_options_init(&o);
	o.stdin_fd = ALOOP_SUBPROCESS_DEVNULL;
	o.stderr_fd = ALOOP_SUBPROCESS_DEVNULL;
	for (i = 0; i < NCHILDREN; i++) {
		proc_init(&p[i], loop);
		snprintf(cmd, sizeof(cmd), "echo %d; exit %d", i, i + 100);
		CU_ASSERT_EQUAL_FATAL(aloop_subprocess_shell(loop, &proc_proto,
		    proc_factory, &p[i], cmd, &o, &f[i]), 0);
	}
	for (i = 0; i < NCHILDREN; i++) {
		CU_ASSERT_EQUAL(run(loop, p[i].done, NULL), 0);
		CU_ASSERT_EQUAL(aloop_future_result(f[i], NULL), 0);
		CU_ASSERT_EQUAL(p[i].rc_at_exit, i + 100);
		snprintf(cmd, sizeof(cmd), "%d\n", i);
		CU_ASSERT_STRING_EQUAL(p[i].out, cmd);
		check_order(&p[i], "1");
		aloop_future_release(f[i]);
		proc_finish(&p[i]);
	}
	free(p);
	CU_ASSERT_EQUAL(waitpid(-1, NULL, WNOHANG), -1);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_many_children(void)
{
	many_children();
}

/* The same without pidfds: waitpid on each of our pids, polled. */
static void
test_many_children_polled(void)
{
	aloop__subprocess_force_poll = 1;
	many_children();
	signal_case(do_terminate, -SIGTERM);
	aloop__subprocess_force_poll = 0;
}

/* Closing the loop with a child running kills and reaps it. */
static void
test_loop_close_reaps(void)
{
	const char *const argv[] = { "sleep", "30", NULL };
	struct aloop_loop *loop;
	struct aloop_future *f = NULL;
	struct proc p;
	int fds = count_fds();

	loop = loop_open();
	proc_init(&p, loop);
	CU_ASSERT_EQUAL_FATAL(aloop_subprocess_exec(loop, &proc_proto,
	    proc_factory, &p, argv, NULL, &f), 0);
	CU_ASSERT_EQUAL_FATAL(run(loop, f, NULL), 0);
	aloop_future_release(f);
	proc_finish(&p);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(p.lost, 0);
	CU_ASSERT_EQUAL(waitpid(-1, NULL, WNOHANG), -1);
	CU_ASSERT_EQUAL(errno, ECHILD);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* pgrp and session of the child, from its /proc/self/stat. */
static void
parse_stat(const char *out, long *pid, long *pgrp, long *sid)
{
	const char *rp = strrchr(out, ')');
	char state;

	*pid = strtol(out, NULL, 10);
	*pgrp = *sid = -1;
	CU_ASSERT_PTR_NOT_NULL_FATAL(rp);
	CU_ASSERT_EQUAL(sscanf(rp + 1, " %c %*d %ld %ld", &state, pgrp, sid),
	    3);
}

/* Python's start_new_session and process_group. */
static void
test_new_session_and_group(void)
{
	static const char *const argv[] = { "cat", "/proc/self/stat", NULL };
	struct aloop_subprocess_options o;
	struct aloop_future *f;
	struct aloop_loop *loop;
	struct proc p;
	long pid, pgrp, sid;
	int fds = count_fds();

	loop = loop_open();
	/* Neither: the parent's group and session. */
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, NULL, argv, NULL, NULL), 0);
	parse_stat(p.out, &pid, &pgrp, &sid);
	CU_ASSERT_EQUAL(pgrp, (long)getpgrp());
	CU_ASSERT_EQUAL(sid, (long)getsid(0));
	proc_finish(&p);

	aloop_subprocess_options_init(&o);
	CU_ASSERT_EQUAL(o.process_group, -1);
	o.start_new_session = 1;
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, NULL, argv, &o, NULL), 0);
	parse_stat(p.out, &pid, &pgrp, &sid);
	CU_ASSERT_EQUAL(sid, pid);
	CU_ASSERT_EQUAL(pgrp, pid);
	proc_finish(&p);

	aloop_subprocess_options_init(&o);
	o.process_group = 0;
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, NULL, argv, &o, NULL), 0);
	parse_stat(p.out, &pid, &pgrp, &sid);
	CU_ASSERT_EQUAL(pgrp, pid);
	CU_ASSERT_EQUAL(sid, (long)getsid(0));
	proc_finish(&p);

	o.start_new_session = 1;
	CU_ASSERT_EQUAL(aloop_subprocess_exec(loop, &proc_proto, proc_factory,
	    &p, argv, &o, &f), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* Python's pass_fds: that descriptor, under its number, and no other. */
static void
test_pass_fds(void)
{
	struct aloop_subprocess_options o;
	struct aloop_future *f;
	struct aloop_loop *loop;
	struct proc p;
	char buf[16], cmd[64];
	int fds = count_fds(), pp[2], w, bad[1] = { 2 };
	ssize_t n;

	loop = loop_open();
	CU_ASSERT_EQUAL_FATAL(pipe2(pp, O_CLOEXEC), 0);
	w = fcntl(pp[1], F_DUPFD_CLOEXEC, 40);
	CU_ASSERT_FATAL(w >= 40);
	(void)close(pp[1]);
	/* Through /proc: dash's >&N takes one digit only. */
	snprintf(cmd, sizeof(cmd), "echo hi >/proc/self/fd/%d", w);
	CU_ASSERT_EQUAL_FATAL(fcntl(pp[0], F_SETFL, O_NONBLOCK), 0);

	aloop_subprocess_options_init(&o);
	o.pass_fds = &w;
	o.npass_fds = 1;
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, cmd, NULL, &o, NULL), 0);
	CU_ASSERT_EQUAL(p.rc_at_exit, 0);
	proc_finish(&p);
	n = read(pp[0], buf, sizeof(buf));
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(memcmp(buf, "hi\n", 3), 0);
	/* Still close-on-exec in the parent. */
	CU_ASSERT(fcntl(w, F_GETFD) & FD_CLOEXEC);

	/* Without it the child cannot write there. */
	proc_init(&p, loop);
	CU_ASSERT_EQUAL(proc_run(&p, cmd, NULL, NULL, NULL), 0);
	CU_ASSERT_NOT_EQUAL(p.rc_at_exit, 0);
	proc_finish(&p);
	CU_ASSERT_EQUAL(read(pp[0], buf, sizeof(buf)), -1);

	o.pass_fds = bad;
	CU_ASSERT_EQUAL(aloop_subprocess_shell(loop, &proc_proto, proc_factory,
	    &p, "true", &o, &f), ALOOP_EINVAL);
	o.pass_fds = NULL;
	CU_ASSERT_EQUAL(aloop_subprocess_shell(loop, &proc_proto, proc_factory,
	    &p, "true", &o, &f), ALOOP_EINVAL);
	(void)close(w);
	(void)close(pp[0]);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_set_protocol),
	TEST(test_exit_code),
	TEST(test_new_session_and_group),
	TEST(test_pass_fds),
	TEST(test_terminate),
	TEST(test_kill),
	TEST(test_send_signal),
	TEST(test_close_kills),
	TEST(test_killed_by_own_signal),
	TEST(test_cat_echo),
	TEST(test_stderr_to_stdout),
	TEST(test_devnull),
	TEST(test_fd_option),
	TEST(test_env_and_cwd),
	TEST(test_uid_gid),
	TEST(test_inherit),
	TEST(test_exec_missing),
	TEST(test_factory_refuses),
	TEST(test_large_output),
	TEST(test_out_of_descriptors),
	TEST(test_arguments),
	TEST(test_no_fd_leak),
	TEST(test_grandchild_holds_pipes),
	TEST(test_close_in_connection_made),
	TEST(test_many_children),
	TEST(test_many_children_polled),
	TEST(test_loop_close_reaps),
};

TEST_MAIN("subprocess", cases)
