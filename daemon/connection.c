/*
 * The wrapper around a plugin's protocol: every callback goes through
 * here on its way to the plugin, with the scoreboard saying which one the
 * worker is in, the counters kept, and the timeouts watched.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "accesslog.h"
#include "admission.h"
#include "connection.h"
#include "scoreboard.h"
#include "tcpinfo.h"

/* The daemon's state around one stream connection of a plugin. */
struct conn {
	struct conn_owner	*o;
	void			*state;		/* the plugin's */
	struct aloop_transport	*t;
	aloop_handle_t		 watch;		/* the timeouts' timer */
	double			 made;		/* loop time of connection_made */
	double			 last_rx;	/* loop time of the last read */
	/*
	 * Whether data_received reads the clock for last_rx: only while an
	 * idle timeout may need it and the kernel keeps no times of its own
	 * (not TCP: watch() learns which on its first run).
	 */
	int			 clock_rx;
	int			 got_byte;	/* first_byte_timeout is met */
	size_t			 last_wbuf;	/* write buffer, last check */
	uint64_t		 taken;		/* peer's progress, last check */
	double			 stuck_since;	/* output pending, none taken */
	const uint64_t		*written;	/* the transport's byte count */
	uint64_t		 counted;	/* of it, in the counters */
	uint64_t		 bytes_in;
	/*
	 * What the plugin had the library forward from this connection
	 * without data_received (aloop_transport_forward: the proxy's
	 * splice), and how much of it is in bytes_in and the counters.
	 */
	const uint64_t		*forwarded;
	uint64_t		 fwd_counted;
	int			 got_eof;
	int			 end;		/* a timeout's enum alog_end, or -1 */
	struct conn_log		*log;		/* NULL: not logged */
	struct conn_task	*task;		/* NULL: a callback plugin */
};

/*
 * A stream_task plugin's connection: the streams' protocol, fed from the
 * wrapper's callbacks, and the task that reads and writes them.  The
 * connection lives until both connection_lost and the task's end: the
 * task runs plugin code, so the listener (and so fini) waits for it.
 */
struct conn_task {
	struct conn		*prev, *next;	/* the owner's tasks */
	const struct aloop_protocol *proto;	/* the streams' */
	void			*state;
	struct aloop_stream_reader *r;		/* the task's, while it runs */
	struct aloop_stream_writer *w;
	struct aloop_future	*fut;		/* the task's; NULL: ended */
	uint32_t		 saved;		/* `where` before it resumed */
	int			 lost;		/* connection_lost came */
};

/*
 * What the access log line needs that is gone by connection_lost, taken
 * at connection_made (and only for a logged listener).
 */
struct conn_log {
	struct sockaddr_storage	 client, local;
	socklen_t		 client_len, local_len;
	const char		*tls_version;	/* OpenSSL's static string */
	char			*sni, *alpn;
};

/* The same around one datagram endpoint. */
struct endpoint {
	struct conn_owner	*o;
	void			*state;
	struct aloop_transport	**slot;		/* the listener's record */
	const uint64_t		*written;
	uint64_t		 counted;
};

uint32_t
conn_enter(struct conn_owner *o, int callback)
{
	uint32_t saved;

	if (o->where == NULL)
		return 0;
	/* A callback may run inside another's (a write that pauses). */
	saved = atomic_load_explicit(o->where, memory_order_relaxed);
	atomic_store_explicit(o->where, SB_WHERE(o->index, callback),
	    memory_order_relaxed);
	return saved;
}

void
conn_leave(struct conn_owner *o, uint32_t saved)
{
	if (o->where != NULL)
		atomic_store_explicit(o->where, saved, memory_order_relaxed);
}

/*
 * Move what the plugin wrote since the last look into the counters.  The
 * plugin writes to the transport directly, so the daemon looks after each
 * callback and at the end; bytes written from a timer show at the next.
 */
static void
count_written(struct conn_owner *o, const uint64_t *written,
    uint64_t *counted)
{
	if (written != NULL && *written != *counted) {
		SB_COUNT(o->m, SB_BYTES_OUT, *written - *counted);
		*counted = *written;
	}
}

/*
 * Move what was forwarded since the last look into bytes_in and the
 * counters; whether anything was.  Forwarded bytes pass no callback, so
 * the daemon looks at each timeout check, at EOF and at the end.
 */
static int
count_forwarded(struct conn *c)
{
	uint64_t d;

	if (c->forwarded == NULL || *c->forwarded == c->fwd_counted)
		return 0;
	d = *c->forwarded - c->fwd_counted;
	c->fwd_counted = *c->forwarded;
	c->bytes_in += d;
	SB_COUNT(c->o->m, SB_BYTES_IN, d);
	return 1;
}

/* Call @fn(args) with the scoreboard on @cb, then count what it wrote. */
#define PLUGIN_CALL(o, cb, written, counted, call) do {			\
	uint32_t saved_ = conn_enter((o), (cb));			\
	call;								\
	conn_leave((o), saved_);					\
	count_written((o), (written), (counted));			\
} while (0)

/* ------------------------------------------------------------- streams */

static int	task_new(struct conn_owner *o, struct conn *c);

int
connection_factory(void *arg, void **state)
{
	struct conn_owner *o = arg;
	struct conn *c;
	uint32_t saved;
	int r;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	if (o->desc->stream_task != NULL)
		r = task_new(o, c);
	else {
		saved = conn_enter(o, SB_FACTORY);
		r = o->desc->stream_factory(o->instance, &c->state);
		conn_leave(o, saved);
	}
	if (r < 0) {
		free(c);
		SB_COUNT(o->m, SB_PLUGIN_ERRORS, 1);
		return r;
	}
	SB_COUNT(o->m, SB_ACCEPTED, 1);
	SB_COUNT(o->m, SB_ACTIVE, 1);
	/* A TLS server calls the factory once the handshake is done. */
	if (o->tls)
		SB_COUNT(o->m, SB_TLS_HANDSHAKES, 1);
	c->o = o;
	c->watch = ALOOP_HANDLE_NONE;
	c->end = -1;
	*state = c;
	o->opened(o);
	return 0;
}

/* ------------------------------------------------------------ timeouts */

static void	watch(void *arg);

static void
arm_watch(struct conn *c, double delay)
{
	if (aloop_call_later(c->o->loop, delay, watch, c, &c->watch) < 0)
		c->watch = ALOOP_HANDLE_NONE;
}

static const int *
conn_fd(struct conn *c)
{
	return aloop_transport_get_extra_info(c->t, "socket", NULL);
}

/*
 * Seconds since bytes last moved in either direction.  The plugin writes
 * straight to the transport, so the daemon cannot see writes; for TCP the
 * kernel knows (TCP_INFO's last_data_sent/recv, in milliseconds), which
 * also counts TLS bytes.  Elsewhere a changing write buffer stands in.
 */
static double
idle_for(struct conn *c, double now, const struct sock_facts *f)
{
	double idle = now - c->last_rx;
	size_t wbuf;

	if (f->tcp) {
		if (f->since_sent < idle)
			idle = f->since_sent;
		if (f->since_recv < idle)
			idle = f->since_recv;
		return idle;
	}
	wbuf = aloop_transport_get_write_buffer_size(c->t);
	if (wbuf != c->last_wbuf) {
		c->last_wbuf = wbuf;
		c->last_rx = now;
		return 0;
	}
	return idle;
}

/*
 * Seconds the peer has left our pending output untaken: 0 while nothing
 * waits, or while it takes some.  What the peer took is TCP's count of
 * acknowledged bytes (TLS records included); for a UNIX socket, what
 * left both the transport's buffer and the kernel's.
 */
static double
stuck_for(struct conn *c, double now, const struct sock_facts *f)
{
	size_t wbuf = aloop_transport_get_write_buffer_size(c->t);
	uint64_t taken;

	if (wbuf == 0 && f->outq == 0) {
		c->stuck_since = 0;
		return 0;
	}
	taken = f->tcp ? f->acked : (c->written != NULL ? *c->written : 0) -
	    wbuf - f->outq;
	if (c->stuck_since == 0 || taken != c->taken) {
		c->taken = taken;
		c->stuck_since = now;
	}
	return now - c->stuck_since;
}

static double
earlier(double a, double b)
{
	return a < b ? a : b;
}

static void
timed_out(struct conn *c, int counter, const char *what, double after)
{
	aloop_log(ALOOP_LOG_DEBUG, "listener %s: %s for %.0f s, closing",
	    c->o->name, what, after);
	SB_COUNT(c->o->m, counter, 1);
	c->end = counter == SB_TIMEOUT_IDLE ? ALOG_IDLE :
	    counter == SB_TIMEOUT_WRITE ? ALOG_WRITE : ALOG_FIRST_BYTE;
	/*
	 * Nothing pending: a clean close.  Otherwise a peer that stopped
	 * reading would hold a flushing close; reset instead.
	 */
	if (counter == SB_TIMEOUT_IDLE &&
	    aloop_transport_get_write_buffer_size(c->t) == 0)
		aloop_transport_close(c->t);
	else
		aloop_transport_abort(c->t);
}

/*
 * One timer per connection for all three timeouts, rearmed for the
 * earliest deadline.  The write timeout is looked at every quarter of it
 * while nothing is stuck, so it fires between 1 and 1.25 times its value.
 */
static void
watch(void *arg)
{
	struct conn *c = arg;
	const struct conn_owner *o = c->o;
	double now = aloop_time(o->loop), next = INFINITY, t;
	struct sock_facts f;
	const int *fd = conn_fd(c);

	c->watch = ALOOP_HANDLE_NONE;
	if (aloop_transport_is_closing(c->t))
		return;
	/*
	 * Bytes the library moved by itself (a forward) are activity the
	 * callbacks did not see: the first byte, and traffic for the idle
	 * timeout where the kernel keeps no times (UNIX sockets).
	 */
	if (count_forwarded(c) | (c->written != NULL &&
	    *c->written != c->counted)) {
		c->last_rx = now;
		c->got_byte = 1;
	}
	count_written(c->o, c->written, &c->counted);
	if (fd == NULL || sock_facts(*fd, &f) < 0)
		memset(&f, 0, sizeof(f));
	if (f.tcp)
		c->clock_rx = 0;
	if (o->first_byte_timeout > 0 && !c->got_byte) {
		if ((t = now - c->made) >= o->first_byte_timeout) {
			timed_out(c, SB_TIMEOUT_FIRST_BYTE, "no first byte",
			    t);
			return;
		}
		next = earlier(next, o->first_byte_timeout - t);
	}
	if (o->write_timeout > 0) {
		if ((t = stuck_for(c, now, &f)) >= o->write_timeout) {
			timed_out(c, SB_TIMEOUT_WRITE, "output untaken", t);
			return;
		}
		next = earlier(next, t > 0 ? o->write_timeout - t :
		    o->write_timeout / 4);
	}
	if (o->idle_timeout > 0) {
		if ((t = idle_for(c, now, &f)) >= o->idle_timeout) {
			timed_out(c, SB_TIMEOUT_IDLE, "idle", t);
			return;
		}
		next = earlier(next, o->idle_timeout - t);
	}
	if (next < INFINITY)
		arm_watch(c, next);
}

/*
 * The first look, as the connection is made: nothing can be due yet and
 * nothing is stuck, so the timer is armed for the earliest deadline
 * without asking the kernel (watch's questions cost two system calls).
 */
static void
first_watch(struct conn *c)
{
	const struct conn_owner *o = c->o;
	double next = INFINITY;

	if (o->first_byte_timeout > 0)
		next = earlier(next, o->first_byte_timeout);
	if (o->write_timeout > 0)
		next = earlier(next, o->write_timeout / 4);
	if (o->idle_timeout > 0)
		next = earlier(next, o->idle_timeout);
	if (next < INFINITY)
		arm_watch(c, next);
}

/* ------------------------------------------------------------- streams */

static void
log_peer(struct conn *c)
{
	char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "";
	const struct sockaddr *sa;
	size_t salen = 0;

	sa = aloop_transport_get_extra_info(c->t, "peername", &salen);
	if (sa != NULL && sa->sa_family != AF_UNIX)
		(void)getnameinfo(sa, (socklen_t)salen, host, sizeof(host),
		    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	aloop_log(ALOOP_LOG_DEBUG, "listener %s: worker %u: connection from "
	    "%s%s%s", c->o->name, c->o->worker, sa != NULL && sa->sa_family == AF_UNIX ?
	    "a local peer" : host, port[0] != '\0' ? " port " : "", port);
}

/* ---------------------------------------------------------- access log */

static char *
copy_info(struct aloop_transport *t, const char *name)
{
	const char *v = aloop_transport_get_extra_info(t, name, NULL);

	return v != NULL ? strndup(v, 255) : NULL;
}

static void
log_start(struct conn *c)
{
	struct conn_log *l;
	const struct sockaddr *sa;
	size_t len;

	if ((c->log = l = calloc(1, sizeof(*l))) == NULL)
		return;		/* the line is lost, not the connection */
	if ((sa = aloop_transport_get_extra_info(c->t, "peername",
	    &len)) != NULL && len <= sizeof(l->client)) {
		memcpy(&l->client, sa, len);
		l->client_len = (socklen_t)len;
	}
	if ((sa = aloop_transport_get_extra_info(c->t, "sockname",
	    &len)) != NULL && len <= sizeof(l->local)) {
		memcpy(&l->local, sa, len);
		l->local_len = (socklen_t)len;
	}
	if (c->o->tls) {
		l->tls_version = aloop_transport_get_extra_info(c->t,
		    "tls_version", NULL);
		l->sni = copy_info(c->t, "server_hostname");
		l->alpn = copy_info(c->t, "alpn_protocol");
	}
}

static void
log_put(struct conn_owner *o, const struct alog_entry *e)
{
	if (alog_write(o->access_log, e) < 0)
		SB_COUNT(o->m, SB_LOG_DROPPED, 1);
}

/* Why @c ended, as far as the daemon can tell. */
static enum alog_end
log_end(struct conn *c, const struct aloop_error *err)
{
	const int *aborted;

	if (c->end >= 0)
		return (enum alog_end)c->end;
	if (c->o->shutting)
		return ALOG_SHUTDOWN;
	if (err != NULL)
		return err->code == -ECONNRESET || err->code == -EPIPE ?
		    ALOG_RESET : ALOG_ERROR;
	if (c->got_eof)
		return ALOG_EOF;
	aborted = aloop_transport_get_extra_info(c->t, "aborted", NULL);
	return aborted != NULL && *aborted ? ALOG_ABORTED : ALOG_CLOSED;
}

static void
log_finish(struct conn *c, const struct aloop_error *err)
{
	struct conn_log *l = c->log;
	struct alog_entry e = {
		.listener = c->o->name,
		.worker = c->o->worker,
		.client = l->client_len > 0 ? (struct sockaddr *)&l->client :
		    NULL,
		.client_len = l->client_len,
		.local = l->local_len > 0 ? (struct sockaddr *)&l->local : NULL,
		.local_len = l->local_len,
		.tls_version = l->tls_version,
		.sni = l->sni,
		.alpn = l->alpn,
		.duration = aloop_time(c->o->loop) - c->made,
		.bytes_in = c->bytes_in,
		.bytes_out = c->written != NULL ? *c->written : 0,
		.end = log_end(c, err),
		.error = err != NULL ? err->message : NULL,
	};

	log_put(c->o, &e);
	free(l->sni);
	free(l->alpn);
	free(l);
	c->log = NULL;
}

void
connection_log_refused(struct conn_owner *o, int fd,
    const struct sockaddr *peer, socklen_t len, const char *setting)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct alog_entry e = {
		.listener = o->name,
		.worker = o->worker,
		.client = peer != NULL && len > 0 ? peer : NULL,
		.client_len = len,
		.end = ALOG_REFUSED,
		.refused = setting,
	};

	if (o->access_log < 0)
		return;
	if (fd >= 0 && getsockname(fd, (struct sockaddr *)&local,
	    &llen) == 0) {
		e.local = (struct sockaddr *)&local;
		e.local_len = llen;
	}
	log_put(o, &e);
}

/* -------------------------------------------------------- the wrapper */

static void	task_made(struct conn *c);
static void	task_lost(struct conn *c, const struct aloop_error *err);

static void
conn_made(struct aloop_transport *t, void *state)
{
	struct conn *c = state;
	const struct aloop_protocol *p = c->o->desc->stream;

	c->t = t;
	c->made = c->last_rx = aloop_time(c->o->loop);
	c->clock_rx = c->o->idle_timeout > 0;
	/* TCP_NODELAY and SO_KEEPALIVE came from the listening socket. */
	c->written = aloop_transport_get_extra_info(t, "bytes_written", NULL);
	c->forwarded = aloop_transport_get_extra_info(t, "bytes_forwarded",
	    NULL);
	first_watch(c);
	if (aloop_log_get_level() >= ALOOP_LOG_DEBUG)
		log_peer(c);
	if (c->o->access_log >= 0)
		log_start(c);
	if (c->task != NULL) {
		task_made(c);
		return;
	}
	if (p->connection_made != NULL)
		PLUGIN_CALL(c->o, SB_CONNECTION_MADE, c->written, &c->counted,
		    p->connection_made(t, c->state));
}

static void
conn_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct conn *c = state;
	const struct aloop_protocol *p = c->o->desc->stream;

	if (c->clock_rx)
		c->last_rx = aloop_time(c->o->loop);
	c->got_byte = 1;
	c->bytes_in += len;
	SB_COUNT(c->o->m, SB_BYTES_IN, len);
	if (c->task != NULL)
		c->task->proto->data_received(t, c->task->state, data, len);
	else if (p->data_received != NULL)
		PLUGIN_CALL(c->o, SB_DATA_RECEIVED, c->written, &c->counted,
		    p->data_received(t, c->state, data, len));
}

static int
conn_eof(struct aloop_transport *t, void *state)
{
	struct conn *c = state;
	const struct aloop_protocol *p = c->o->desc->stream;
	int keep = 0;

	c->last_rx = aloop_time(c->o->loop);
	c->got_byte = 1;
	c->got_eof = 1;
	(void)count_forwarded(c);
	if (c->task != NULL)
		keep = c->task->proto->eof_received(t, c->task->state);
	else if (p->eof_received != NULL)
		PLUGIN_CALL(c->o, SB_EOF_RECEIVED, c->written, &c->counted,
		    keep = p->eof_received(t, c->state));
	return keep;
}

static void
conn_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct conn *c = state;
	struct conn_owner *o = c->o;
	const struct aloop_protocol *p = o->desc->stream;

	aloop_handle_cancel(o->loop, c->watch);
	if (err != NULL)
		aloop_log(ALOOP_LOG_DEBUG, "listener %s: connection lost: %s",
		    o->name, err->message);
	count_written(o, c->written, &c->counted);
	(void)count_forwarded(c);
	if (c->log != NULL)
		log_finish(c, err);
	if (o->m != NULL) {
		sb_sub(&o->m->v[SB_ACTIVE], 1);
		sb_add(&o->m->v[SB_CLOSED], 1);
	}
	if (c->task != NULL) {
		task_lost(c, err);
		return;
	}
	if (p->connection_lost != NULL)
		PLUGIN_CALL(o, SB_CONNECTION_LOST, NULL, NULL,
		    p->connection_lost(t, c->state, err));
	free(c);
	o->closed(o);
}

static void
conn_pause(struct aloop_transport *t, void *state)
{
	struct conn *c = state;
	const struct aloop_protocol *p = c->o->desc->stream;

	if (c->task != NULL)
		c->task->proto->pause_writing(t, c->task->state);
	else if (p->pause_writing != NULL)
		PLUGIN_CALL(c->o, SB_PAUSE_WRITING, c->written, &c->counted,
		    p->pause_writing(t, c->state));
}

static void
conn_resume(struct aloop_transport *t, void *state)
{
	struct conn *c = state;
	const struct aloop_protocol *p = c->o->desc->stream;

	if (c->task != NULL)
		c->task->proto->resume_writing(t, c->task->state);
	else if (p->resume_writing != NULL)
		PLUGIN_CALL(c->o, SB_RESUME_WRITING, c->written, &c->counted,
		    p->resume_writing(t, c->state));
}

void
connection_tls_failed(void *arg, const struct aloop_error *err)
{
	struct conn_owner *o = arg;

	(void)err;
	SB_COUNT(o->m, SB_TLS_FAILURES, 1);
}

const struct aloop_protocol connection_protocol = {
	.connection_made = conn_made,
	.data_received = conn_data,
	.eof_received = conn_eof,
	.connection_lost = conn_lost,
	.pause_writing = conn_pause,
	.resume_writing = conn_resume,
};

/* ------------------------------------------------------ stream tasks */

/* The reader, the writer and their protocol; the task starts when made. */
static int
task_new(struct conn_owner *o, struct conn *c)
{
	struct conn_task *k;
	int r;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return ALOOP_ENOMEM;
	if ((r = aloop_stream_protocol_new(o->loop, NULL, &k->proto,
	    &k->state, &k->r, &k->w)) < 0) {
		free(k);
		return r;
	}
	c->task = k;
	return 0;
}

/* Both the task and connection_lost are done with @c. */
static void
task_free(struct conn *c)
{
	struct conn_owner *o = c->o;

	free(c->task);
	free(c);
	o->closed(o);
}

/*
 * The scoreboard names the task while it runs, and what it wrote is
 * counted each time it stops, as after a callback.
 */
static void
task_switch(void *arg, int running)
{
	struct conn *c = arg;

	if (running)
		c->task->saved = conn_enter(c->o, SB_TASK);
	else {
		conn_leave(c->o, c->task->saved);
		count_written(c->o, c->written, &c->counted);
	}
}

static int
task_main(void *arg, void **result)
{
	struct conn *c = arg;
	struct conn_task *k = c->task;
	int r;

	(void)result;
	r = c->o->desc->stream_task(c->o->instance, k->r, k->w);
	if (r < 0 && r != ALOOP_ECANCELLED)
		aloop_log(ALOOP_LOG_DEBUG, "listener %s: stream_task: %s",
		    c->o->name, aloop_strerror(r));
	/* Returning ends the connection: the writer's release closes it. */
	aloop_stream_reader_release(k->r);
	aloop_stream_writer_release(k->w);
	k->r = NULL;
	k->w = NULL;
	return 0;
}

static void
task_unlink(struct conn *c)
{
	struct conn_task *k = c->task;

	if (k->prev != NULL)
		k->prev->task->next = k->next;
	else
		c->o->tasks = k->next;
	if (k->next != NULL)
		k->next->task->prev = k->prev;
	k->prev = k->next = NULL;
}

/* On a later turn than the task's end: its stack is gone. */
static void
task_ended(struct aloop_future *fut, void *arg)
{
	struct conn *c = arg;

	aloop_future_release(fut);
	task_unlink(c);
	c->task->fut = NULL;
	if (c->task->lost)
		task_free(c);
}

static void
task_made(struct conn *c)
{
	struct conn_task *k = c->task;
	struct conn_owner *o = c->o;
	struct aloop_task_options to;
	int r;

	k->proto->connection_made(c->t, k->state);
	aloop_task_options_init(&to);
	to.stack_size = o->desc->stream_task_stack;
	to.on_switch = task_switch;
	to.switch_arg = c;
	if ((r = aloop_create_task(o->loop, task_main, c, &to,
	    &k->fut)) < 0) {
		aloop_log(ALOOP_LOG_WARNING, "listener %s: cannot start a "
		    "task: %s", o->name, aloop_strerror(r));
		k->fut = NULL;
		goto fail;
	}
	if (aloop_future_add_done_callback(k->fut, task_ended, c) < 0) {
		/* Cannot know when it ends: it must not start. */
		(void)aloop_task_cancel(k->fut);
		aloop_future_release(k->fut);
		k->fut = NULL;
		goto fail;
	}
	k->next = o->tasks;
	if (o->tasks != NULL)
		o->tasks->task->prev = c;
	o->tasks = c;
	return;
fail:
	SB_COUNT(o->m, SB_PLUGIN_ERRORS, 1);
	aloop_stream_reader_release(k->r);
	aloop_stream_writer_release(k->w);
	k->r = NULL;
	k->w = NULL;
	aloop_transport_abort(c->t);
}

static void
task_lost(struct conn *c, const struct aloop_error *err)
{
	struct conn_task *k = c->task;

	/* The transport goes after this: nothing may look at it later. */
	k->proto->connection_lost(c->t, k->state, err);
	k->lost = 1;
	c->t = NULL;
	c->written = NULL;
	c->forwarded = NULL;
	if (k->fut == NULL)
		task_free(c);
}

void
connection_cancel_tasks(struct conn_owner *o)
{
	for (struct conn *c = o->tasks; c != NULL; c = c->task->next)
		(void)aloop_task_cancel(c->task->fut);
}

/* ----------------------------------------------------------- datagrams */

struct endpoint *
endpoint_new(struct conn_owner *o, struct aloop_transport **slot)
{
	struct endpoint *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->o = o;
	e->slot = slot;
	o->opened(o);	/* the endpoint's, until it is lost */
	return e;
}

void
endpoint_discard(struct endpoint *e)
{
	struct conn_owner *o = e->o;

	free(e);
	o->closed(o);
}

int
endpoint_factory(void *arg, void **state)
{
	struct endpoint *e = arg;
	struct conn_owner *o = e->o;
	uint32_t saved;
	int r;

	*state = e;
	saved = conn_enter(o, SB_FACTORY);
	r = o->desc->datagram_factory(o->instance, &e->state);
	conn_leave(o, saved);
	if (r < 0)
		SB_COUNT(o->m, SB_PLUGIN_ERRORS, 1);
	return r;
}

static void
ep_made(struct aloop_transport *t, void *state)
{
	struct endpoint *e = state;
	const struct aloop_datagram_protocol *p = e->o->desc->datagram;

	*e->slot = t;
	e->written = aloop_transport_get_extra_info(t, "bytes_written", NULL);
	if (p->connection_made != NULL)
		PLUGIN_CALL(e->o, SB_CONNECTION_MADE, e->written, &e->counted,
		    p->connection_made(t, e->state));
}

static void
ep_received(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	struct endpoint *e = state;
	const struct aloop_datagram_protocol *p = e->o->desc->datagram;

	if (addr != NULL && !access_allows(e->o->access, -1, addr, addrlen)) {
		SB_COUNT(e->o->m, SB_DATAGRAMS_DENIED, 1);
		return;
	}
	/*
	 * A source over its rate gets no answer: what bounds how much one
	 * address (a spoofed one, say) can make a listener send.
	 */
	if (e->o->datagram_rate > 0 && addr != NULL &&
	    (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
	    !adm_rate(adm_key(e->o->name, addr, addrlen),
	    e->o->datagram_rate)) {
		SB_COUNT(e->o->m, SB_DATAGRAMS_DROPPED, 1);
		return;
	}
	SB_COUNT(e->o->m, SB_BYTES_IN, len);
	if (p->datagram_received != NULL)
		PLUGIN_CALL(e->o, SB_DATAGRAM_RECEIVED, e->written,
		    &e->counted, p->datagram_received(t, e->state, data, len,
		    addr, addrlen));
}

static void
ep_error(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct endpoint *e = state;
	const struct aloop_datagram_protocol *p = e->o->desc->datagram;

	if (p->error_received != NULL)
		PLUGIN_CALL(e->o, SB_ERROR_RECEIVED, e->written, &e->counted,
		    p->error_received(t, e->state, err));
}

static void
ep_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct endpoint *e = state;
	struct conn_owner *o = e->o;
	const struct aloop_datagram_protocol *p = o->desc->datagram;

	if (err != NULL)
		aloop_log(ALOOP_LOG_WARNING, "listener %s: endpoint lost: %s",
		    o->name, err->message);
	count_written(o, e->written, &e->counted);
	if (p->connection_lost != NULL)
		PLUGIN_CALL(o, SB_CONNECTION_LOST, NULL, NULL,
		    p->connection_lost(t, e->state, err));
	*e->slot = NULL;
	free(e);
	o->closed(o);
}

static void
ep_pause(struct aloop_transport *t, void *state)
{
	struct endpoint *e = state;
	const struct aloop_datagram_protocol *p = e->o->desc->datagram;

	if (p->pause_writing != NULL)
		PLUGIN_CALL(e->o, SB_PAUSE_WRITING, e->written, &e->counted,
		    p->pause_writing(t, e->state));
}

static void
ep_resume(struct aloop_transport *t, void *state)
{
	struct endpoint *e = state;
	const struct aloop_datagram_protocol *p = e->o->desc->datagram;

	if (p->resume_writing != NULL)
		PLUGIN_CALL(e->o, SB_RESUME_WRITING, e->written, &e->counted,
		    p->resume_writing(t, e->state));
}

const struct aloop_datagram_protocol endpoint_protocol = {
	.connection_made = ep_made,
	.datagram_received = ep_received,
	.error_received = ep_error,
	.connection_lost = ep_lost,
	.pause_writing = ep_pause,
	.resume_writing = ep_resume,
};
