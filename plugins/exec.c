/*
 * exec: inetd's classic service.  Every connection starts a program whose
 * stdin is what the client sends and whose stdout goes back to the client;
 * its stderr goes to the log, line by line.  The connection closes when the
 * program has exited and its output is sent (or kill_timeout after the exit
 * when a process it left behind holds stdout open); a client that goes away
 * first gets its program terminated, then killed if it lingers.  The
 * program leads a process group of its own, and every signal goes to the
 * whole group, so that what it started (a pipeline's other half, a
 * background job) ends with it instead of outliving the connection.
 *
 * Both directions have back-pressure: a client that does not read pauses
 * the program's stdout (which then blocks in write), and a program that
 * does not read pauses the client.  stdin is a pipe of our own, driven by a
 * write pipe transport, because that transport reports pause_writing and
 * the subprocess protocol has no such callback for the child's stdin.  A
 * paused client is not read, so not even its leaving would be seen: a
 * program that takes none of its stdin for stdin_timeout ends the
 * connection.
 *
 * settings:
 *	command = [ "/usr/bin/tr", "a-z", "A-Z" ];	argv, required
 *	user = "nobody"; group = "nogroup";	needs aloopd to run as root
 *	env = [ "LANG=C.UTF-8", "PATH=/usr/bin:/bin" ];	the whole environment,
 *				plus PROTO and TCPREMOTEIP etc. (UCSPI-TCP)
 *	cwd = "/srv/app";
 *	timeout = 60.0;		seconds a program may run, 0 for no limit
 *	kill_timeout = 5.0;	seconds from SIGTERM to SIGKILL
 *	stdin_timeout = 60.0;	seconds it may take none of stdin; 0: none
 *	max_children = 64;	at once, per listener and worker
 */
#define _GNU_SOURCE	/* pipe2 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#define EXEC_ARGS_MAX		256
#define EXEC_LINE_MAX		512	/* of stderr, per log line */
/* A client can make a program complain; it must not flood the log. */
#define EXEC_STDERR_LINES	64	/* logged per connection */
#define EXEC_PEER_VARS		5	/* PROTO, TCP{REMOTE,LOCAL}{IP,PORT} */

extern char **environ;

struct exec_conn;

/* One listener on one worker. */
struct exec {
	char			*listener;
	char			**argv;
	char			**env;		/* NULL: aloopd's own */
	char			*cwd;
	uid_t			 uid;
	gid_t			 gid;
	double			 timeout;
	double			 kill_timeout;
	double			 stdin_timeout;
	size_t			 max_children;
	size_t			 nconns;	/* each may have a child */
	int			 refusing;	/* at max_children, logged */
	unsigned long		 refused;
	int			 failing;	/* starts fail, logged once */
	unsigned long		 failed;
	struct exec_conn	*conns;
	unsigned		 refs;		/* 1 until fini, +1 per conn */
};

/* One client and its program. */
struct exec_conn {
	struct exec		*ex;
	struct exec_conn	*next, *prev;
	struct aloop_transport	*client;	/* until its connection_lost */
	struct aloop_transport	*proc;		/* the subprocess */
	struct aloop_transport	*in;		/* the write end of its stdin */
	aloop_handle_t		 timer;		/* timeout, then kill_timeout */
	aloop_handle_t		 stalled;	/* stdin_timeout */
	size_t			 stalled_size;	/* stdin's buffer when armed */
	pid_t			 pid;
	int			 client_eof;
	int			 exited;
	int			 stopping;	/* SIGTERM sent */
	int			 out_paused;	/* client's buffer full */
	size_t			 nline;
	unsigned long		 nlogged;	/* stderr lines, then dropped */
	char			 line[EXEC_LINE_MAX];	/* stderr, partial */
	unsigned		 refs;
};

static void conn_signal(struct exec_conn *, int);

/* ---------------------------------------------------------- lifetime */

static void
exec_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

static void
exec_free(struct exec *ex)
{
	exec_strv_free(ex->argv);
	exec_strv_free(ex->env);
	free(ex->cwd);
	free(ex->listener);
	free(ex);
}

static void
exec_unref(struct exec *ex)
{
	if (--ex->refs == 0)
		exec_free(ex);
}

static void
conn_unref(struct exec_conn *c)
{
	struct exec *ex = c->ex;

	if (--c->refs > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ex->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	ex->nconns--;
	if (ex->refusing && ex->nconns < ex->max_children) {
		aloop_log(ALOOP_LOG_NOTICE, "exec %s: accepting again, after "
		    "refusing %lu connections at max_children %zu",
		    ex->listener, ex->refused, ex->max_children);
		ex->refusing = 0;
		ex->refused = 0;
	}
	exec_unref(ex);
}

/* ---------------------------------------------------------- settings */

/*
 * A string or a list of strings as a NULL-ended vector.  @check, when not
 * NULL, vets each string and reports on its node.
 */
static int
exec_strv(const struct aloop_settings *node, char ***out,
    int (*check)(const struct aloop_settings *, const char *))
{
	const struct aloop_settings *e;
	const char *s;
	char **v;
	size_t n;
	int bad = 0;

	if (aloop_settings_type(node) == ALOOP_SETTINGS_STRING)
		n = 1;
	else if (aloop_settings_type(node) == ALOOP_SETTINGS_LIST)
		n = aloop_settings_count(node);
	else {
		aloop_settings_error(node, "expected a list of strings");
		return ALOOP_ECONFIG;
	}
	if (n > EXEC_ARGS_MAX) {
		aloop_settings_error(node, "more than %d strings",
		    EXEC_ARGS_MAX);
		return ALOOP_ECONFIG;
	}
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		return ALOOP_ENOMEM;
	*out = v;
	for (size_t i = 0; i < n; i++) {
		e = aloop_settings_type(node) == ALOOP_SETTINGS_STRING ? node :
		    aloop_settings_at(node, i);
		if (aloop_settings_get_string(e, NULL, &s) != 0) {
			bad = 1;
			s = "";
		} else if (check != NULL && check(e, s) != 0)
			bad = 1;
		if ((v[i] = strdup(s)) == NULL)
			return ALOOP_ENOMEM;
	}
	return bad ? ALOOP_ECONFIG : 0;
}

static int
exec_check_env(const struct aloop_settings *node, const char *s)
{
	const char *eq = strchr(s, '=');

	if (eq == NULL || eq == s) {
		aloop_settings_error(node, "expected NAME=value");
		return ALOOP_ECONFIG;
	}
	return 0;
}

/* Resolve user and group now, so that a typo fails aloopd -t. */
static int
exec_read_ids(struct exec *ex, const struct aloop_settings *settings)
{
	const char *user = NULL, *group = NULL;
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char buf[4096];
	int bad = 0, rc;

	ex->uid = (uid_t)-1;
	ex->gid = (gid_t)-1;
	if (aloop_settings_get_string(settings, "user", &user) ==
	    ALOOP_ECONFIG ||
	    aloop_settings_get_string(settings, "group", &group) ==
	    ALOOP_ECONFIG)
		return ALOOP_ECONFIG;
	if (user != NULL) {
		rc = getpwnam_r(user, &pw, buf, sizeof(buf), &pwp);
		if (pwp == NULL) {
			aloop_settings_error(aloop_settings_get(settings,
			    "user"), "%s", rc != 0 ? strerror(rc) :
			    "no such user");
			bad = 1;
		} else {
			ex->uid = pw.pw_uid;
			ex->gid = pw.pw_gid;
		}
	}
	if (group != NULL) {
		rc = getgrnam_r(group, &gr, buf, sizeof(buf), &grp);
		if (grp == NULL) {
			aloop_settings_error(aloop_settings_get(settings,
			    "group"), "%s", rc != 0 ? strerror(rc) :
			    "no such group");
			bad = 1;
		} else
			ex->gid = gr.gr_gid;
	}
	return bad ? ALOOP_ECONFIG : 0;
}

/* A double setting within [min, max]; 0 or ALOOP_ECONFIG. */
static int
exec_seconds(const struct aloop_settings *settings, const char *name,
    double min, double max, double *out)
{
	int rc = aloop_settings_get_double(settings, name, out);

	if (rc == ALOOP_ECONFIG)
		return rc;
	if (!(*out >= min && *out <= max)) {
		aloop_settings_error(aloop_settings_get(settings, name),
		    "out of range (%g..%g s)", min, max);
		return ALOOP_ECONFIG;
	}
	return 0;
}

static int
exec_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { "command", "user", "group",
	    "env", "cwd", "timeout", "kill_timeout", "stdin_timeout",
	    "max_children", NULL };
	const struct aloop_settings *node;
	const char *cwd = NULL;
	struct exec *ex;
	long long max = 64;
	int rc, bad = 0;

	*instance = NULL;
	if ((ex = calloc(1, sizeof(*ex))) == NULL)
		return ALOOP_ENOMEM;
	ex->refs = 1;
	ex->kill_timeout = 5.0;
	ex->stdin_timeout = 60.0;
	if ((ex->listener = strdup(env->listener != NULL ? env->listener :
	    "?")) == NULL) {
		rc = ALOOP_ENOMEM;
		goto fail;
	}
	if (aloop_settings_check_names(settings, names) != 0)
		bad = 1;

	if ((node = aloop_settings_get(settings, "command")) == NULL) {
		aloop_settings_error(settings, "command is required: "
		    "[ \"/path/to/program\", \"argument\", ... ]");
		bad = 1;
	} else if ((rc = exec_strv(node, &ex->argv, NULL)) == ALOOP_ENOMEM)
		goto fail;
	else if (rc != 0)
		bad = 1;
	else if (ex->argv[0] == NULL || ex->argv[0][0] == '\0') {
		aloop_settings_error(node, "names no program");
		bad = 1;
	} else if (strchr(ex->argv[0], '/') != NULL &&
	    access(ex->argv[0], X_OK) != 0) {
		aloop_settings_error(node, "%s: %s", ex->argv[0],
		    strerror(errno));
		bad = 1;
	}
	if ((node = aloop_settings_get(settings, "env")) != NULL) {
		rc = exec_strv(node, &ex->env, exec_check_env);
		if (rc == ALOOP_ENOMEM)
			goto fail;
		if (rc != 0)
			bad = 1;
	}
	if (aloop_settings_get_string(settings, "cwd", &cwd) == ALOOP_ECONFIG)
		bad = 1;
	else if (cwd != NULL && (ex->cwd = strdup(cwd)) == NULL) {
		rc = ALOOP_ENOMEM;
		goto fail;
	}
	if (exec_read_ids(ex, settings) != 0)
		bad = 1;
	if (exec_seconds(settings, "timeout", 0, 86400, &ex->timeout) != 0)
		bad = 1;
	if (exec_seconds(settings, "kill_timeout", 0.01, 3600,
	    &ex->kill_timeout) != 0)
		bad = 1;
	if (exec_seconds(settings, "stdin_timeout", 0, 86400,
	    &ex->stdin_timeout) != 0)
		bad = 1;
	rc = aloop_settings_get_int(settings, "max_children", &max);
	if (rc == ALOOP_ECONFIG)
		bad = 1;
	else if (max < 1 || max > 65536) {
		aloop_settings_error(aloop_settings_get(settings,
		    "max_children"), "out of range (1..65536)");
		bad = 1;
	}
	ex->max_children = (size_t)max;
	if (bad) {
		rc = ALOOP_ECONFIG;
		goto fail;
	}
	*instance = ex;
	return 0;
fail:
	exec_free(ex);
	return rc;
}

/*
 * Every client is gone; a program may still be dying.  Kill what is left
 * now (the listener went away, so there is no grace to give), and close
 * its pipes too: a process it left behind may hold them open, and the
 * loop may have only a few turns left to deliver connection_lost, which
 * frees the connection and, with the last, the instance.
 */
static void
exec_fini(void *instance)
{
	struct exec *ex = instance;

	if (ex == NULL)
		return;
	for (struct exec_conn *c = ex->conns; c != NULL; c = c->next) {
		if (c->proc != NULL) {
			conn_signal(c, SIGKILL);
			aloop_transport_close(c->proc);
		}
		if (c->in != NULL)
			aloop_transport_abort(c->in);
	}
	exec_unref(ex);
}

/* --------------------------------------------------------- stopping */

/*
 * Signal the program and its process group.  The program itself through
 * its transport, which knows whether it is reaped (and may have left the
 * group); the group by its id, the program's pid, which cannot be reused
 * while a member of the group lives.  Only called until proc_lost, and so
 * within kill_timeout of the program's exit.
 */
static void
conn_signal(struct exec_conn *c, int sig)
{
	if (c->proc != NULL)
		(void)aloop_subprocess_send_signal(c->proc, sig);
	if (c->pid > 0 && kill(-c->pid, sig) == -1 && errno != ESRCH)
		aloop_log_errno(ALOOP_LOG_INFO, "exec %s: process group %ld",
		    c->ex->listener, (long)c->pid);
}

static void
conn_kill(void *arg)
{
	struct exec_conn *c = arg;

	c->timer = ALOOP_HANDLE_NONE;
	if (c->proc == NULL)
		return;
	aloop_log(ALOOP_LOG_NOTICE, "exec %s: pid %ld %s for %g s, killing "
	    "its process group", c->ex->listener, (long)c->pid,
	    c->exited ? "exited but what it started ignored SIGTERM" :
	    "ignored SIGTERM", c->ex->kill_timeout);
	conn_signal(c, SIGKILL);
	/*
	 * A process that left the group may still hold a pipe: the program
	 * is gone, and nobody waits for its output.
	 */
	if (c->exited)
		aloop_transport_close(c->proc);
}

/*
 * SIGTERM to the group now, SIGKILL after kill_timeout unless every pipe
 * closed first.  Also after the program exited: what it started may still
 * run, holding its output open.
 */
static void
conn_stop(struct exec_conn *c)
{
	struct aloop_loop *loop;

	if (c->proc == NULL || c->stopping)
		return;
	c->stopping = 1;
	loop = aloop_transport_get_loop(c->proc);
	aloop_handle_cancel(loop, c->timer);
	conn_signal(c, SIGTERM);
	if (aloop_call_later(loop, c->ex->kill_timeout, conn_kill, c,
	    &c->timer) != 0) {
		c->timer = ALOOP_HANDLE_NONE;
		conn_signal(c, SIGKILL);
	}
}

static void
conn_timeout(void *arg)
{
	struct exec_conn *c = arg;

	c->timer = ALOOP_HANDLE_NONE;
	aloop_log(ALOOP_LOG_NOTICE, "exec %s: pid %ld still runs after "
	    "%g s, terminating it", c->ex->listener, (long)c->pid,
	    c->ex->timeout);
	conn_stop(c);
}

/* ------------------------------------------------ the program's stdin */

static int
in_factory(void *arg, void **state)
{
	*state = arg;
	return 0;
}

static void
in_made(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;

	c->refs++;
	c->in = t;
	if (c->client == NULL) {
		aloop_transport_abort(t);
		return;
	}
	if (c->client_eof)
		aloop_transport_close(t);
	else
		aloop_transport_resume_reading(c->client);
}

static void
in_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct exec_conn *c = state;

	c->in = NULL;
	aloop_handle_cancel(aloop_transport_get_loop(t), c->stalled);
	c->stalled = ALOOP_HANDLE_NONE;
	/* EPIPE: the program stopped reading, which is its right. */
	if (err != NULL && err->code != -EPIPE)
		aloop_log(ALOOP_LOG_INFO, "exec %s: pid %ld: stdin: %s",
		    c->ex->listener, (long)c->pid, err->message);
	conn_unref(c);
}

static void in_stall_check(void *);

static void
in_stall_arm(struct exec_conn *c)
{
	c->stalled_size = aloop_transport_get_write_buffer_size(c->in);
	if (aloop_call_later(aloop_transport_get_loop(c->in),
	    c->ex->stdin_timeout, in_stall_check, c, &c->stalled) != 0)
		c->stalled = ALOOP_HANDLE_NONE;
}

/*
 * stdin has stayed above its low-water mark for stdin_timeout.  A program
 * that took some is slow, not stuck: look again later.  Once the client
 * has sent its EOF it is not paused, and the program may take its time.
 */
static void
in_stall_check(void *arg)
{
	struct exec_conn *c = arg;

	c->stalled = ALOOP_HANDLE_NONE;
	if (c->in == NULL || c->client == NULL || c->client_eof)
		return;
	if (aloop_transport_get_write_buffer_size(c->in) < c->stalled_size) {
		in_stall_arm(c);
		return;
	}
	aloop_log(ALOOP_LOG_INFO, "exec %s: pid %ld took none of its stdin "
	    "for %g s: closing", c->ex->listener, (long)c->pid,
	    c->ex->stdin_timeout);
	aloop_transport_abort(c->client);
}

static void
in_pause(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;

	if (c->client != NULL)
		aloop_transport_pause_reading(c->client);
	if (c->ex->stdin_timeout > 0 && c->stalled == ALOOP_HANDLE_NONE)
		in_stall_arm(c);
}

static void
in_resume(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;

	aloop_handle_cancel(aloop_transport_get_loop(t), c->stalled);
	c->stalled = ALOOP_HANDLE_NONE;
	if (c->client != NULL && !c->client_eof)
		aloop_transport_resume_reading(c->client);
}

static const struct aloop_protocol exec_in_proto = {
	.connection_made = in_made,
	.connection_lost = in_lost,
	.pause_writing = in_pause,
	.resume_writing = in_resume,
};

/* --------------------------------------------------------- the program */

/* The client's write buffer is full: stop reading the program's stdout. */
static void
client_pause_out(struct exec_conn *c)
{
	struct aloop_transport *out;

	if (c->proc != NULL &&
	    (out = aloop_subprocess_get_pipe_transport(c->proc, 1)) != NULL)
		aloop_transport_pause_reading(out);
}

static int
proc_factory(void *arg, void **state)
{
	*state = arg;
	return 0;
}

static void
proc_made(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;
	struct aloop_loop *loop = aloop_transport_get_loop(t);

	c->refs++;
	c->proc = t;
	c->pid = aloop_subprocess_get_pid(t);
	aloop_log(ALOOP_LOG_DEBUG, "exec %s: started %s as pid %ld",
	    c->ex->listener, c->ex->argv[0], (long)c->pid);
	if (c->ex->failing) {
		aloop_log(ALOOP_LOG_NOTICE, "exec %s: %s starts again, after "
		    "%lu failures", c->ex->listener, c->ex->argv[0],
		    c->ex->failed);
		c->ex->failing = 0;
		c->ex->failed = 0;
	}
	if (c->client == NULL) {
		conn_stop(c);
		return;
	}
	if (c->out_paused)
		client_pause_out(c);
	if (c->ex->timeout > 0 && aloop_call_later(loop, c->ex->timeout,
	    conn_timeout, c, &c->timer) != 0)
		c->timer = ALOOP_HANDLE_NONE;
}

static void
proc_stderr_line(struct exec_conn *c)
{
	c->line[c->nline] = '\0';
	c->nline = 0;
	if (c->nlogged++ < EXEC_STDERR_LINES)
		aloop_log(ALOOP_LOG_NOTICE, "exec %s: pid %ld: %s",
		    c->ex->listener, (long)c->pid, c->line);
}

/* Log complete lines of stderr; cut ones longer than a log line. */
static void
proc_stderr(struct exec_conn *c, const char *data, size_t len, int flush)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n' && c->nline < sizeof(c->line) - 1) {
			c->line[c->nline++] = data[i];
			continue;
		}
		proc_stderr_line(c);
		if (data[i] != '\n')
			c->line[c->nline++] = data[i];
	}
	if (flush && c->nline > 0)
		proc_stderr_line(c);
	if (flush && c->nlogged > EXEC_STDERR_LINES)
		aloop_log(ALOOP_LOG_NOTICE, "exec %s: pid %ld: %lu more lines "
		    "of stderr not logged", c->ex->listener, (long)c->pid,
		    c->nlogged - EXEC_STDERR_LINES);
}

static void
proc_data(struct aloop_transport *t, void *state, int fd, const void *data,
    size_t len)
{
	struct exec_conn *c = state;

	if (fd == 2) {
		proc_stderr(c, data, len, 0);
		return;
	}
	if (c->client == NULL || aloop_transport_is_closing(c->client))
		return;		/* nobody to tell; the program is stopping */
	if (aloop_transport_write(c->client, data, len) != 0) {
		aloop_transport_abort(c->client);
		conn_stop(c);
	}
}

static void
proc_pipe_lost(struct aloop_transport *t, void *state, int fd,
    const struct aloop_error *err)
{
	struct exec_conn *c = state;

	if (fd == 2)
		proc_stderr(c, "", 0, 1);
}

/*
 * The program exited, but its stdout is still open after kill_timeout: a
 * child of its own holds it.  The program is what the connection was for,
 * so end it now rather than when that child lets go.
 */
static void
conn_linger(void *arg)
{
	struct exec_conn *c = arg;

	c->timer = ALOOP_HANDLE_NONE;
	/*
	 * A slow client paused the reading: the pipe may just hold the last
	 * of the output.  Look again later; the idle timeout bounds the wait.
	 */
	if (c->out_paused && c->client != NULL) {
		if (aloop_call_later(aloop_transport_get_loop(c->client),
		    c->ex->kill_timeout, conn_linger, c, &c->timer) != 0)
			c->timer = ALOOP_HANDLE_NONE;
		return;
	}
	aloop_log(ALOOP_LOG_INFO, "exec %s: pid %ld exited, but a process "
	    "it left behind holds its output open: killing its process "
	    "group, closing", c->ex->listener, (long)c->pid);
	/* It had kill_timeout since the program's exit to let go. */
	conn_signal(c, SIGKILL);
	if (c->client != NULL)
		aloop_transport_close(c->client);
	if (c->proc != NULL)
		aloop_transport_close(c->proc);
}

static void
proc_exited(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;
	struct aloop_loop *loop = aloop_transport_get_loop(t);
	int rc = 0;

	c->exited = 1;
	/* Stopping: conn_kill still has to end what it started. */
	if (!c->stopping) {
		aloop_handle_cancel(loop, c->timer);
		/* Output still in the pipes comes before connection_lost. */
		if (aloop_call_later(loop, c->ex->kill_timeout, conn_linger,
		    c, &c->timer) != 0)
			c->timer = ALOOP_HANDLE_NONE;
	}
	(void)aloop_subprocess_get_returncode(t, &rc);
	if (rc < 0)
		aloop_log(ALOOP_LOG_INFO, "exec %s: pid %ld killed by signal "
		    "%d", c->ex->listener, (long)c->pid, -rc);
	else
		aloop_log(ALOOP_LOG_DEBUG, "exec %s: pid %ld exited with %d",
		    c->ex->listener, (long)c->pid, rc);
}

/* Exited, and every pipe is closed: its output is all with the client. */
static void
proc_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct exec_conn *c = state;

	aloop_handle_cancel(aloop_transport_get_loop(t), c->timer);
	c->timer = ALOOP_HANDLE_NONE;
	/*
	 * Told to stop, the program is gone and so are its pipes; what it
	 * started and still runs would escape conn_kill, which can no longer
	 * come.
	 */
	if (c->stopping && c->pid > 0)
		(void)kill(-c->pid, SIGKILL);
	c->proc = NULL;
	aloop_log(ALOOP_LOG_DEBUG, "exec %s: pid %ld: done", c->ex->listener,
	    (long)c->pid);
	if (c->in != NULL)
		aloop_transport_abort(c->in);
	if (c->client != NULL)
		aloop_transport_close(c->client);
	conn_unref(c);
}

static const struct aloop_subprocess_protocol exec_proc_proto = {
	.connection_made = proc_made,
	.pipe_data_received = proc_data,
	.pipe_connection_lost = proc_pipe_lost,
	.process_exited = proc_exited,
	.connection_lost = proc_lost,
};

/*
 * Every client can make a start fail again (a missing program, a user we
 * may not become): log the first of a burst, and its end in proc_made.
 */
static void
exec_start_failed(struct exec *ex, const char *why)
{
	ex->failed++;
	aloop_log(ex->failing ? ALOOP_LOG_DEBUG : ALOOP_LOG_WARNING,
	    "exec %s: cannot start %s: %s", ex->listener, ex->argv[0], why);
	ex->failing = 1;
}

static void
exec_started(struct aloop_future *fut, void *arg)
{
	struct exec_conn *c = arg;
	const struct aloop_error *err;

	if (aloop_future_result(fut, NULL) != 0) {
		err = aloop_future_error(fut);
		exec_start_failed(c->ex, err != NULL ? err->message :
		    "cancelled");
		if (c->in != NULL)
			aloop_transport_abort(c->in);
		if (c->client != NULL)
			aloop_transport_close(c->client);
	}
	aloop_future_release(fut);
	conn_unref(c);
}

/* Failures of the stdin pipe's set-up: without it, the client is done. */
static void
exec_in_ready(struct aloop_future *fut, void *arg)
{
	struct exec_conn *c = arg;
	const struct aloop_error *err;

	if (aloop_future_result(fut, NULL) != 0) {
		err = aloop_future_error(fut);
		aloop_log(ALOOP_LOG_WARNING, "exec %s: stdin pipe: %s",
		    c->ex->listener, err != NULL ? err->message : "cancelled");
		if (c->client != NULL)
			aloop_transport_abort(c->client);
		conn_stop(c);
	}
	aloop_future_release(fut);
	conn_unref(c);
}

/*
 * "NAME=host" and "NAME=port" of @sa into @vars[*n], as numbers.  Returns
 * 0 or ALOOP_ENOMEM; an address getnameinfo cannot show is left out.
 */
static int
exec_addr_vars(const struct sockaddr *sa, size_t len, const char *ipname,
    const char *portname, char **vars, size_t *n)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, (socklen_t)len, host, sizeof(host), serv,
	    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return 0;
	if (asprintf(&vars[*n], "%s=%s", ipname, host) < 0)
		return ALOOP_ENOMEM;
	(*n)++;
	if (asprintf(&vars[*n], "%s=%s", portname, serv) < 0)
		return ALOOP_ENOMEM;
	(*n)++;
	return 0;
}

/*
 * The program's environment: the configured one (or aloopd's), with the
 * connection's addresses as UCSPI-TCP names them (PROTO=TCP,
 * TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP, TCPLOCALPORT), as tcpserver
 * and inetd-style programs expect.  *@env and the strings in @vars are the
 * caller's to free; the other strings are borrowed.
 */
static int
exec_make_env(struct exec_conn *c, char *vars[EXEC_PEER_VARS],
    const char ***env)
{
	char **base = c->ex->env != NULL ? c->ex->env : environ;
	const struct sockaddr *peer, *local;
	const char **e;
	size_t n = 0, nbase = 0, plen = 0, llen = 0, k = 0;
	int rc = 0;

	peer = aloop_transport_get_extra_info(c->client, "peername", &plen);
	local = aloop_transport_get_extra_info(c->client, "sockname", &llen);
	if (peer != NULL && (peer->sa_family == AF_INET ||
	    peer->sa_family == AF_INET6)) {
		if ((vars[n] = strdup("PROTO=TCP")) == NULL)
			return ALOOP_ENOMEM;
		n++;
		rc = exec_addr_vars(peer, plen, "TCPREMOTEIP",
		    "TCPREMOTEPORT", vars, &n);
		if (rc == 0 && local != NULL)
			rc = exec_addr_vars(local, llen, "TCPLOCALIP",
			    "TCPLOCALPORT", vars, &n);
		if (rc != 0)
			return rc;
	} else if ((vars[n++] = strdup("PROTO=UNIX")) == NULL)
		return ALOOP_ENOMEM;
	while (base != NULL && base[nbase] != NULL)
		nbase++;
	if ((e = calloc(nbase + n + 1, sizeof(*e))) == NULL)
		return ALOOP_ENOMEM;
	/* Ours win over inherited ones of the same name. */
	for (size_t i = 0; i < nbase; i++) {
		if (strncmp(base[i], "PROTO=", 6) == 0 ||
		    strncmp(base[i], "TCPREMOTE", 9) == 0 ||
		    strncmp(base[i], "TCPLOCAL", 8) == 0)
			continue;
		e[k++] = base[i];
	}
	for (size_t i = 0; i < n; i++)
		e[k++] = vars[i];
	*env = e;
	return 0;
}

/* Start the program for @c; 0, or an error after which nothing runs. */
static int
exec_spawn(struct exec_conn *c, struct aloop_loop *loop)
{
	struct exec *ex = c->ex;
	struct aloop_subprocess_options o;
	struct aloop_future *fut;
	char *vars[EXEC_PEER_VARS] = { NULL };
	const char **env = NULL;
	int fds[2], rc;

	rc = exec_make_env(c, vars, &env);
	if (rc == 0 && pipe2(fds, O_CLOEXEC) == -1)
		rc = -errno;
	if (rc != 0) {
		for (size_t i = 0; i < EXEC_PEER_VARS; i++)
			free(vars[i]);
		free(env);
		return rc;
	}
	aloop_subprocess_options_init(&o);
	o.stdin_fd = fds[0];
	o.process_group = 0;	/* its own, for conn_signal */
	o.env = env;
	o.cwd = ex->cwd;
	o.uid = ex->uid;
	o.gid = ex->gid;
	rc = aloop_subprocess_exec(loop, &exec_proc_proto, proc_factory, c,
	    (const char *const *)ex->argv, &o, &fut);
	(void)close(fds[0]);	/* the child has its copy */
	/* So has it of the environment: the child was made inside the call. */
	for (size_t i = 0; i < EXEC_PEER_VARS; i++)
		free(vars[i]);
	free(env);
	if (rc != 0) {
		(void)close(fds[1]);
		return rc;
	}
	if ((rc = aloop_future_add_done_callback(fut, exec_started, c)) != 0) {
		/* No way to hear from the child: let it go. */
		(void)close(fds[1]);
		aloop_future_release(fut);
		return rc;
	}
	c->refs++;
	rc = aloop_connect_write_pipe(loop, &exec_in_proto, in_factory, c,
	    fds[1], &fut);
	if (rc == 0 && aloop_future_add_done_callback(fut, exec_in_ready,
	    c) != 0)
		aloop_future_release(fut);	/* in_made still comes */
	else if (rc != 0)
		(void)close(fds[1]);
	else
		c->refs++;
	/* A failure here is the child's EOF on stdin; it still runs. */
	return 0;
}

/* -------------------------------------------------------- the client */

static int
exec_new(void *instance, void **state)
{
	struct exec *ex = instance;
	struct exec_conn *c;

	if (ex->nconns >= ex->max_children) {
		if (!ex->refusing)
			aloop_log(ALOOP_LOG_WARNING, "exec %s: %zu programs "
			    "run (max_children), refusing connections",
			    ex->listener, ex->nconns);
		ex->refusing = 1;
		ex->refused++;
		return -EAGAIN;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	c->ex = ex;
	c->refs = 1;		/* the client's, until its connection_lost */
	c->timer = ALOOP_HANDLE_NONE;
	c->stalled = ALOOP_HANDLE_NONE;
	c->pid = -1;
	c->next = ex->conns;
	if (ex->conns != NULL)
		ex->conns->prev = c;
	ex->conns = c;
	ex->nconns++;
	ex->refs++;
	*state = c;
	return 0;
}

static void
client_made(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;
	int rc;

	c->client = t;
	/* Until the program's stdin is ready. */
	aloop_transport_pause_reading(t);
	if ((rc = exec_spawn(c, aloop_transport_get_loop(t))) != 0) {
		exec_start_failed(c->ex, aloop_strerror(rc));
		aloop_transport_close(t);
	}
}

static void
client_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct exec_conn *c = state;

	/* Without stdin (the program closed it) the bytes go nowhere. */
	if (c->in == NULL)
		return;
	if (aloop_transport_write(c->in, data, len) != 0) {
		aloop_transport_abort(t);
		conn_stop(c);
	}
}

/* The client is done sending: so is the program's stdin, once flushed. */
static int
client_eof(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;

	c->client_eof = 1;
	if (c->in != NULL)
		aloop_transport_close(c->in);
	return 1;
}

static void
client_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct exec_conn *c = state;

	c->client = NULL;
	if (c->in != NULL)
		aloop_transport_abort(c->in);
	conn_stop(c);
	conn_unref(c);
}

static void
client_pause(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;

	c->out_paused = 1;
	client_pause_out(c);
}

static void
client_resume(struct aloop_transport *t, void *state)
{
	struct exec_conn *c = state;
	struct aloop_transport *out;

	c->out_paused = 0;
	if (c->proc != NULL &&
	    (out = aloop_subprocess_get_pipe_transport(c->proc, 1)) != NULL)
		aloop_transport_resume_reading(out);
}

static const struct aloop_protocol exec_client_proto = {
	.connection_made = client_made,
	.data_received = client_data,
	.eof_received = client_eof,
	.connection_lost = client_lost,
	.pause_writing = client_pause,
	.resume_writing = client_resume,
};

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "exec",
	.version = "1.0",
	.description = "run a program per connection, as inetd does",
	.init = exec_init,
	.fini = exec_fini,
	.stream = &exec_client_proto,
	.stream_factory = exec_new,
};
