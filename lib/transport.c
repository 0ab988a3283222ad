/*
 * The public transport API and what every kind of transport shares: the
 * reference count, idempotent close and abort, write flow control and the
 * exactly-once, always-deferred connection_lost.  Each kind plugs in
 * through struct aloop__transport_ops (see transport-int.h).
 */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/log.h>
#include <aloop/net.h>
#include <aloop/transport.h>

#include "proxy-int.h"
#include "transport-int.h"

/* asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES. */
#define WRITES_AFTER_CLOSE_LOG	5

/*
 * How often a lingering socket's send queue is looked at: soon at first
 * (on a fast path the peer acknowledges within milliseconds), then less
 * often, so that thousands of sockets whose peers stopped reading cost a
 * few system calls a second each.
 */
#define LINGER_STEP_MIN		0.01
#define LINGER_STEP_MAX		0.25

static void	transport_on_loop_close(struct aloop__resource *res);
static void	transport_sendfile_end(struct aloop_transport *t, int code);
static void	transport_lost_cb(void *arg);
static void	transport_drained_end(struct aloop_transport *t, int code,
		    const char *msg);

void
aloop__protocol_common_stream(struct aloop__protocol_common *cb,
    const struct aloop_protocol *proto)
{
	cb->connection_made = proto->connection_made;
	cb->connection_lost = proto->connection_lost;
	cb->pause_writing = proto->pause_writing;
	cb->resume_writing = proto->resume_writing;
}

void
aloop__transport_init(struct aloop_transport *t,
    const struct aloop__transport_ops *ops, struct aloop_loop *loop,
    const void *proto, const struct aloop__protocol_common *cb, void *state)
{
	memset(t, 0, sizeof(*t));
	t->ops = ops;
	t->loop = loop;
	t->proto = proto;
	t->state = state;
	if (cb != NULL)
		t->cb = *cb;
	t->refcnt = 1;
	t->high = ALOOP__HIGH_WATER_DEFAULT;
	t->low = ALOOP__HIGH_WATER_DEFAULT / 4;
	t->lost_handle = ALOOP_HANDLE_NONE;
	t->close_timeout = ALOOP__CLOSE_TIMEOUT_DEFAULT;
	t->close_timer = ALOOP_HANDLE_NONE;
	t->drained_handle = ALOOP_HANDLE_NONE;
	t->linger_fd = -1;
	t->res.on_loop_close = transport_on_loop_close;
	aloop__loop_track(loop, &t->res);
}

void
aloop__transport_attach(struct aloop_transport *t,
    const struct aloop__protocol_common *cb, void *state)
{
	if (cb != NULL)
		t->cb = *cb;
	t->state = state;
}

void
aloop__transport_mute(struct aloop_transport *t)
{
	memset(&t->cb, 0, sizeof(t->cb));
}

void
aloop__transport_ref(struct aloop_transport *t)
{
	t->refcnt++;
}

void
aloop__transport_unref(struct aloop_transport *t)
{
	if (t->refcnt == 0 || --t->refcnt > 0)
		return;
	free(t->lost_msg);
	t->lost_msg = NULL;
	free(t->proxy);
	t->proxy = NULL;
	t->ops->free(t);
}

void
aloop__transport_own_fd(struct aloop_transport *t, int fd)
{
	aloop__loop_own_fd(t->loop, fd, 1);
	t->owned_fd = fd;
	t->flags |= ALOOP__T_OWNS_FD;
}

/*
 * Whether @fd is a TCP socket the kernel still has bytes to send on:
 * closing it now would leave them in an orphaned socket for minutes if
 * the peer never reads.  Only TCP: a UNIX socket's bytes are in the
 * peer's queue already, and SIOCOUTQ on a terminal is TIOCOUTQ.
 */
static int
transport_fd_has_outq(int fd)
{
	socklen_t len;
	int outq, proto;

	if (ioctl(fd, SIOCOUTQ, &outq) == -1 || outq <= 0)
		return 0;
	len = sizeof(proto);
	return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 &&
	    proto == IPPROTO_TCP;
}

/* Close a descriptor @t guarded, with a reset if @reset. */
static void
transport_fd_close(struct aloop_transport *t, int fd, int reset)
{
	if ((t->flags & ALOOP__T_OWNS_FD) && t->owned_fd == fd) {
		t->flags &= ~ALOOP__T_OWNS_FD;
		aloop__loop_own_fd(t->loop, fd, 0);
	}
	/* Linux closes the descriptor even when close() fails. */
	if (reset)
		aloop__sock_close_reset(fd);
	else
		(void)close(fd);
}

void
aloop__transport_close_fd(struct aloop_transport *t, int *fd)
{
	int d = *fd;

	if (d < 0)
		return;
	*fd = -1;
	if ((t->flags & (ALOOP__T_GRACEFUL | ALOOP__T_LINGER)) ==
	    ALOOP__T_GRACEFUL && transport_fd_has_outq(d)) {
		/* The FIN goes out after the queue; the loop's guard stays. */
		if (shutdown(d, SHUT_WR) == 0) {
			t->linger_fd = d;
			t->flags |= ALOOP__T_LINGER;
			return;
		}
	}
	transport_fd_close(t, d, (t->flags & ALOOP__T_RESET) != 0);
}

/* The future's hold on its result, dropped when the future is freed. */
static void
transport_future_unref(void *arg)
{
	aloop__transport_unref(arg);
}

int
aloop__future_set_transport(struct aloop_future *fut, struct aloop_transport *t)
{
	int rc;

	aloop__transport_ref(t);
	if ((rc = aloop_future_set_result(fut, t, transport_future_unref)) != 0)
		aloop__transport_unref(t);
	return rc;
}

void
aloop__transport_set_owner(struct aloop_transport *t,
    aloop__transport_owner_fn fn, void *owner)
{
	t->owner_fn = fn;
	t->owner = owner;
}

void
aloop__transport_list_add(struct aloop__transport_list *list,
    struct aloop_transport *t, aloop__transport_owner_fn fn, void *owner)
{
	aloop__transport_set_owner(t, fn, owner);
	t->owner_list = list;
	t->owner_prev = NULL;
	t->owner_next = list->head;
	if (list->head != NULL)
		list->head->owner_prev = t;
	list->head = t;
	list->n++;
}

void
aloop__transport_list_remove(struct aloop__transport_list *list,
    struct aloop_transport *t)
{
	if (t->owner_prev != NULL)
		t->owner_prev->owner_next = t->owner_next;
	else
		list->head = t->owner_next;
	if (t->owner_next != NULL)
		t->owner_next->owner_prev = t->owner_prev;
	t->owner_prev = t->owner_next = NULL;
	t->owner_list = NULL;
	list->n--;
}

int
aloop__transport_detach(struct aloop_transport *old)
{
	int fd;

	if (old->ops->detach == NULL)
		return ALOOP_ENOTSUP;
	if (old->flags & (ALOOP__T_CLOSING | ALOOP__T_EOF_WRITTEN) ||
	    old->sendfile != NULL)
		return ALOOP_ESTATE;
	if ((fd = old->ops->detach(old)) < 0)
		return fd;
	/* The descriptor's guard goes with it to the new transport. */
	old->flags &= ~ALOOP__T_OWNS_FD;
	aloop__transport_mute(old);
	aloop__transport_drop(old, 0, NULL);
	return fd;
}

/* The buffer drained while start_tls waited: on to the upgrade. */
static void
transport_drained_cb(void *arg)
{
	struct aloop_transport *t = arg;

	t->drained_handle = ALOOP_HANDLE_NONE;
	if ((t->flags & ALOOP__T_UPGRADING) &&
	    aloop_transport_get_write_buffer_size(t) == 0)
		transport_drained_end(t, 0, NULL);
}

/* Look again once the buffer shrank. */
static void
transport_drained_check(struct aloop_transport *t)
{
	if (t->drained_handle != ALOOP_HANDLE_NONE ||
	    aloop_transport_get_write_buffer_size(t) > 0)
		return;
	/* A closed loop calls nothing: its close ends the wait. */
	if (aloop_call_soon(t->loop, transport_drained_cb, t,
	    &t->drained_handle) != 0)
		t->drained_handle = ALOOP_HANDLE_NONE;
}

/* The wait is over, one way or the other: tell its caller, once. */
static void
transport_drained_end(struct aloop_transport *t, int code, const char *msg)
{
	aloop__transport_drained_fn fn = t->drained_fn;

	if (!(t->flags & ALOOP__T_UPGRADING))
		return;
	t->flags &= ~ALOOP__T_UPGRADING;
	t->drained_fn = NULL;
	aloop_handle_cancel(t->loop, t->drained_handle);
	t->drained_handle = ALOOP_HANDLE_NONE;
	if (code != 0 && msg == NULL)
		msg = aloop_strerror(code);
	if (fn != NULL)
		fn(t, t->drained_arg, code, msg);
}

int
aloop__transport_wait_drained(struct aloop_transport *t,
    aloop__transport_drained_fn fn, void *arg)
{
	/* A forward in either direction owns the socket's bytes. */
	if (t->flags & (ALOOP__T_CLOSING | ALOOP__T_EOF_WRITTEN |
	    ALOOP__T_UPGRADING) || t->sendfile != NULL ||
	    t->fwd_in != NULL || t->fwd_out != NULL)
		return ALOOP_ESTATE;
	/* What the peer sends next belongs to the handshake. */
	if (!(t->flags & ALOOP__T_PAUSED_READ)) {
		t->flags |= ALOOP__T_PAUSED_READ;
		if (t->ops->pause_reading != NULL)
			t->ops->pause_reading(t);
	}
	/* Its protocol hears nothing more from @t, flow control included. */
	aloop__transport_mute(t);
	t->flags |= ALOOP__T_UPGRADING;
	t->drained_fn = fn;
	t->drained_arg = arg;
	transport_drained_check(t);
	return 0;
}

void
aloop__transport_hand_over(struct aloop_transport *old,
    struct aloop_transport *new)
{
	struct aloop__transport_list *list = old->owner_list;

	new->owner_fn = old->owner_fn;
	new->owner = old->owner;
	/* Who the client is does not change with start_tls... */
	new->proxy = old->proxy;
	old->proxy = NULL;
	/* ...nor the accept filter's ticket, released when it ends. */
	new->owner_ticket = old->owner_ticket;
	old->owner_ticket = 0;
	old->owner_fn = NULL;
	old->owner = NULL;
	if (list == NULL)
		return;
	new->owner_list = list;
	new->owner_prev = old->owner_prev;
	new->owner_next = old->owner_next;
	if (new->owner_prev != NULL)
		new->owner_prev->owner_next = new;
	else
		list->head = new;
	if (new->owner_next != NULL)
		new->owner_next->owner_prev = new;
	old->owner_prev = old->owner_next = NULL;
	old->owner_list = NULL;
}

void
aloop__transport_list_each(struct aloop__transport_list *list,
    void (*fn)(struct aloop_transport *t))
{
	struct aloop_transport *t, *next;

	for (t = list->head; t != NULL; t = next) {
		next = t->owner_next;
		fn(t);
	}
}

int
aloop__transport_ended_unmade(const struct aloop_transport *t, int fallback,
    struct aloop_error *err)
{
	if ((t->flags & (ALOOP__T_MADE | ALOOP__T_LOST)) != ALOOP__T_LOST)
		return 0;
	err->code = t->lost_code != 0 ? t->lost_code : fallback;
	err->message = t->lost_msg != NULL ? t->lost_msg :
	    aloop_strerror(err->code);
	return 1;
}

/* The owner learns once that the transport is finished. */
static void
transport_notify_owner(struct aloop_transport *t)
{
	aloop__transport_owner_fn fn = t->owner_fn;

	t->owner_fn = NULL;
	if (fn != NULL)
		fn(t, t->owner);
}

int
aloop__transport_made(struct aloop_transport *t)
{
	int rc;

	if (t->flags & ALOOP__T_MADE)
		return (t->flags & ALOOP__T_CLOSING) ? ALOOP_ESTATE : 0;
	t->flags |= ALOOP__T_MADE;
	aloop__transport_ref(t);
	if (t->cb.connection_made != NULL)
		t->cb.connection_made(t, t->state);
	rc = (t->flags & ALOOP__T_CLOSING) ? ALOOP_ESTATE : 0;
	aloop__transport_unref(t);
	return rc;
}

/* ----------------------------------------------------------- linger */

/*
 * The bytes (our FIN counting as one) the peer has yet to acknowledge on
 * a lingering socket; 0 once there is nothing left to wait for.
 */
static int
transport_linger_outq(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int outq;

	/* Reset by the peer, or our FIN acknowledged: nothing to wait for. */
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    (ti.tcpi_state == TCP_CLOSE || ti.tcpi_state == TCP_FIN_WAIT2 ||
	    ti.tcpi_state == TCP_TIME_WAIT))
		return 0;
	if (ioctl(fd, SIOCOUTQ, &outq) == -1 || outq < 0)
		return 0;
	return outq;
}

/* What ended a linger. */
#define LINGER_DRAINED		0	/* the peer took it all: close */
#define LINGER_TIMED_OUT	1	/* reset, and say so */
#define LINGER_ABORTED		2	/* aloop_transport_abort: reset */

/*
 * The linger is over: close the descriptor (with a reset unless drained,
 * dropping what is left at once) and go on with the deferred end,
 * connection_lost included, on a later turn.
 */
static void
transport_linger_end(struct aloop_transport *t, int why)
{
	int outq = 0;

	aloop_handle_cancel(t->loop, t->close_timer);
	t->close_timer = ALOOP_HANDLE_NONE;
	if (why == LINGER_TIMED_OUT && t->lost_code == 0) {
		if (ioctl(t->linger_fd, SIOCOUTQ, &outq) == -1)
			outq = 0;
		t->lost_code = ALOOP_ETIMEDOUT;
		free(t->lost_msg);
		if (asprintf(&t->lost_msg, "close timed out: the peer did not "
		    "take the last %d bytes", outq) == -1)
			t->lost_msg = NULL;
	}
	transport_fd_close(t, t->linger_fd, why != LINGER_DRAINED);
	t->linger_fd = -1;
	t->flags &= ~ALOOP__T_LINGER;
	if (aloop_call_soon(t->loop, transport_lost_cb, t,
	    &t->lost_handle) != 0) {
		/* A closed loop runs nothing: end without callbacks. */
		aloop__loop_untrack(t->loop, &t->res);
		transport_on_loop_close(&t->res);
	}
}

static void
transport_linger_cb(void *arg)
{
	struct aloop_transport *t = arg;
	double now, left;
	int outq;

	t->close_timer = ALOOP_HANDLE_NONE;
	if ((outq = transport_linger_outq(t->linger_fd)) == 0) {
		transport_linger_end(t, LINGER_DRAINED);
		return;
	}
	now = aloop_time(t->loop);
	/* A peer that reads, however slowly, gets another close_timeout. */
	if (outq < t->linger_outq) {
		t->linger_outq = outq;
		t->close_deadline = now + t->close_timeout;
	}
	if ((left = t->close_deadline - now) <= 0) {
		transport_linger_end(t, LINGER_TIMED_OUT);
		return;
	}
	if (t->linger_step < LINGER_STEP_MAX)
		t->linger_step *= 2;
	if (t->linger_step > LINGER_STEP_MAX)
		t->linger_step = LINGER_STEP_MAX;
	if (aloop_call_later(t->loop, t->linger_step < left ?
	    t->linger_step : left, transport_linger_cb, t,
	    &t->close_timer) != 0)
		transport_linger_end(t, LINGER_TIMED_OUT);
}

/* teardown kept the descriptor: wait for the kernel, within the bound. */
static void
transport_linger_start(struct aloop_transport *t)
{
	t->close_deadline = aloop_time(t->loop) + t->close_timeout;
	t->linger_outq = INT_MAX;
	t->linger_step = LINGER_STEP_MIN / 2;
	transport_linger_cb(t);
}

/*
 * The deferred end: release the descriptor first, as asyncio closes the
 * socket before calling connection_lost, then tell the protocol, then its
 * owner, then drop the loop's reference.  A clean end whose socket still
 * has bytes in the kernel's send queue waits for them first (bounded by
 * the close timeout), so that connection_lost, the owner (a server's
 * wait_closed) and the loop's reference all account for the descriptor
 * until it is really gone.
 */
static void
transport_lost_cb(void *arg)
{
	struct aloop_transport *t = arg;
	struct aloop_error err;

	t->lost_handle = ALOOP_HANDLE_NONE;
	/* After a linger this runs again, with the teardown done. */
	if (!(t->flags & (ALOOP__T_TORN | ALOOP__T_DONE))) {
		if (t->lost_code == 0 && !(t->flags & ALOOP__T_RESET))
			t->flags |= ALOOP__T_GRACEFUL;
		t->ops->teardown(t);
		t->flags = (t->flags & ~ALOOP__T_GRACEFUL) | ALOOP__T_TORN;
		if (t->flags & ALOOP__T_LINGER) {
			transport_linger_start(t);
			return;
		}
	}
	t->flags |= ALOOP__T_DONE;
	aloop__loop_untrack(t->loop, &t->res);
	if (t->cb.connection_lost != NULL) {
		if (t->lost_code != 0) {
			err.code = t->lost_code;
			err.message = t->lost_msg != NULL ? t->lost_msg :
			    aloop_strerror(t->lost_code);
			t->cb.connection_lost(t, t->state, &err);
		} else
			t->cb.connection_lost(t, t->state, NULL);
	}
	transport_notify_owner(t);
	aloop__transport_unref(t);
}

static void
transport_on_loop_close(struct aloop__resource *res)
{
	struct aloop_transport *t = (struct aloop_transport *)
	    ((char *)res - offsetof(struct aloop_transport, res));

	/* The loop discards the pending connection_lost call itself. */
	t->lost_handle = ALOOP_HANDLE_NONE;
	t->close_timer = ALOOP_HANDLE_NONE;
	t->flags |= ALOOP__T_CLOSING | ALOOP__T_DONE;
	if (t->sendfile != NULL)
		transport_sendfile_end(t, -EPIPE);
	t->drained_handle = ALOOP_HANDLE_NONE;
	transport_drained_end(t, ALOOP_ESTATE, "the loop was closed");
	/* A closing loop cannot wait for a lingering socket: drop its rest. */
	if (t->flags & ALOOP__T_LINGER) {
		transport_fd_close(t, t->linger_fd, 1);
		t->linger_fd = -1;
		t->flags &= ~ALOOP__T_LINGER;
	}
	if (!(t->flags & ALOOP__T_TORN))
		t->ops->teardown(t);
	t->flags |= ALOOP__T_TORN;
	transport_notify_owner(t);
	aloop__transport_unref(t);
}

static void
transport_lost_v(struct aloop_transport *t, int code, const char *fmt,
    va_list ap)
{
	int upgrading = (t->flags & ALOOP__T_UPGRADING) != 0;

	if (t->flags & (ALOOP__T_LOST | ALOOP__T_DONE))
		return;
	t->flags |= ALOOP__T_CLOSING | ALOOP__T_LOST;
	t->lost_code = code;
	/* The flush is over: its deadline goes (the linger keeps the time). */
	aloop_handle_cancel(t->loop, t->close_timer);
	t->close_timer = ALOOP_HANDLE_NONE;
	if (t->sendfile != NULL)
		transport_sendfile_end(t, -EPIPE);
	if (code != 0 && fmt != NULL &&
	    vasprintf(&t->lost_msg, fmt, ap) == -1)
		t->lost_msg = NULL;
	/* start_tls's wait ends here (its protocol is muted already). */
	if (upgrading)
		transport_drained_end(t, code != 0 ? code : ALOOP_ECANCELLED,
		    code != 0 ? t->lost_msg : "aborted before the TLS upgrade");
	if (aloop_call_soon(t->loop, transport_lost_cb, t,
	    &t->lost_handle) != 0) {
		/* A closed loop runs nothing: end without callbacks. */
		aloop__loop_untrack(t->loop, &t->res);
		transport_on_loop_close(&t->res);
	}
}

void
aloop__transport_lost(struct aloop_transport *t, int code, const char *fmt,
    ...)
{
	va_list ap;

	va_start(ap, fmt);
	transport_lost_v(t, code, fmt, ap);
	va_end(ap);
}

/* Release the descriptor and buffers once; the shared part of every drop. */
static void
transport_release_now(struct aloop_transport *t)
{
	t->flags |= ALOOP__T_CLOSING;
	if (t->flags & ALOOP__T_ABORTED)
		return;
	/* Abort means reset: the peer learns at once, nothing lingers. */
	t->flags |= ALOOP__T_ABORTED | ALOOP__T_RESET;
	if (t->ops->abort != NULL)
		t->ops->abort(t);
	else
		t->ops->teardown(t);
}

void
aloop__transport_drop(struct aloop_transport *t, int code, const char *fmt,
    ...)
{
	va_list ap;

	if (t->flags & (ALOOP__T_LOST | ALOOP__T_DONE))
		return;
	transport_release_now(t);
	va_start(ap, fmt);
	transport_lost_v(t, code, fmt, ap);
	va_end(ap);
}

/* The errors asyncio's _FATAL_ERROR_IGNORE lists: a peer going away. */
static int
transport_error_is_ordinary(int code)
{
	return code == -ECONNRESET || code == -EPIPE ||
	    code == -ECONNABORTED || code == -ESHUTDOWN;
}

void
aloop__transport_fatal(struct aloop_transport *t, int code, const char *what)
{
	struct aloop_context ctx = ALOOP_CONTEXT_INIT(what);
	struct aloop_error err = { code, aloop_strerror(code) };

	if (t->flags & (ALOOP__T_LOST | ALOOP__T_DONE))
		return;
	if (transport_error_is_ordinary(code))
		aloop_log(ALOOP_LOG_DEBUG, "%s: %s", what, err.message);
	else {
		ctx.error = &err;
		ctx.transport = t;
		ctx.protocol = t->state;
		aloop_call_exception_handler(t->loop, &ctx);
	}
	aloop__transport_drop(t, code, NULL);
}

void
aloop__transport_pause_check(struct aloop_transport *t)
{
	size_t size;

	if (t->flags & (ALOOP__T_PAUSED_WRITE | ALOOP__T_LOST | ALOOP__T_DONE))
		return;
	size = aloop_transport_get_write_buffer_size(t);
	if (size <= t->high)
		return;
	t->flags |= ALOOP__T_PAUSED_WRITE;
	if (t->cb.pause_writing != NULL) {
		aloop__transport_ref(t);
		t->cb.pause_writing(t, t->state);
		aloop__transport_unref(t);
	}
}

void
aloop__transport_pause_edge(struct aloop_transport *t)
{
	if (t->flags & (ALOOP__T_PAUSED_WRITE | ALOOP__T_LOST | ALOOP__T_DONE))
		return;
	t->flags |= ALOOP__T_PAUSED_WRITE;
	if (t->cb.pause_writing != NULL) {
		aloop__transport_ref(t);
		t->cb.pause_writing(t, t->state);
		aloop__transport_unref(t);
	}
}

static void	transport_sendfile_wake(struct aloop_transport *t);

void
aloop__transport_resume_check(struct aloop_transport *t)
{
	/* The buffer shrank: a closing transport's peer is still reading. */
	if (__builtin_expect(t->close_timer != ALOOP_HANDLE_NONE, 0))
		t->close_progress = aloop_time(t->loop);
	if (__builtin_expect(t->sendfile != NULL, 0))
		transport_sendfile_wake(t);
	if (__builtin_expect(t->flags & ALOOP__T_UPGRADING, 0))
		transport_drained_check(t);
	if (!(t->flags & ALOOP__T_PAUSED_WRITE) ||
	    (t->flags & (ALOOP__T_LOST | ALOOP__T_DONE)))
		return;
	if (aloop_transport_get_write_buffer_size(t) > t->low)
		return;
	t->flags &= ~ALOOP__T_PAUSED_WRITE;
	if (t->cb.resume_writing != NULL) {
		aloop__transport_ref(t);
		t->cb.resume_writing(t, t->state);
		aloop__transport_unref(t);
	}
}

/* ------------------------------------------------ the read buffer */

static pthread_key_t	read_buffer_key;
static pthread_once_t	read_buffer_once = PTHREAD_ONCE_INIT;
static int		read_buffer_key_ok;

static void
read_buffer_key_init(void)
{
	read_buffer_key_ok = pthread_key_create(&read_buffer_key, free) == 0;
}

unsigned char *
aloop__read_buffer(void)
{
	unsigned char *buf;

	(void)pthread_once(&read_buffer_once, read_buffer_key_init);
	if (!read_buffer_key_ok)
		return NULL;
	if ((buf = pthread_getspecific(read_buffer_key)) != NULL)
		return buf;
	if ((buf = malloc(ALOOP__READ_MAX)) == NULL)
		return NULL;
	if (pthread_setspecific(read_buffer_key, buf) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ------------------------------------------------------------ public */

struct aloop_transport *
aloop_transport_ref(struct aloop_transport *t)
{
	aloop__transport_ref(t);
	return t;
}

void
aloop_transport_release(struct aloop_transport *t)
{
	if (t != NULL)
		aloop__transport_unref(t);
}

struct aloop_loop *
aloop_transport_get_loop(const struct aloop_transport *t)
{
	return t->loop;
}

void *
aloop_transport_get_protocol_state(const struct aloop_transport *t)
{
	return t->state;
}

const void *
aloop_transport_get_protocol(const struct aloop_transport *t)
{
	return t->proto;
}

int
aloop_transport_set_protocol(struct aloop_transport *t, const void *proto,
    void *state)
{
	struct aloop__protocol_common cb;

	if (proto == NULL)
		return ALOOP_EINVAL;
	if (!t->ops->stream_protocol && t->ops->adopt_protocol == NULL)
		return ALOOP_ENOTSUP;
	if (!(t->flags & ALOOP__T_MADE) || aloop__transport_is_done(t))
		return ALOOP_ESTATE;
	if (t->ops->stream_protocol)
		aloop__protocol_common_stream(&cb, proto);
	else
		t->ops->adopt_protocol(t, proto, &cb);
	t->proto = proto;
	/* The old protocol's buffer is not the new one's. */
	t->read_into = NULL;
	t->read_into_arg = NULL;
	aloop__transport_attach(t, &cb, state);
	return 0;
}

void
aloop__transport_set_read_into(struct aloop_transport *t,
    void *(*fn)(void *arg, size_t *len), void *arg)
{
	t->read_into = fn;
	t->read_into_arg = fn != NULL ? arg : NULL;
}

const void *
aloop_transport_get_extra_info(struct aloop_transport *t, const char *name,
    size_t *len)
{
	if (len != NULL)
		*len = 0;
	if (name == NULL)
		return NULL;
	/* Every kind counts alike, so the common part answers. */
	if (strcmp(name, "bytes_written") == 0) {
		if (len != NULL)
			*len = sizeof(t->bytes_written);
		return &t->bytes_written;
	}
	if (strcmp(name, "bytes_forwarded") == 0) {
		if (len != NULL)
			*len = sizeof(t->bytes_forwarded);
		return &t->bytes_forwarded;
	}
	if (strcmp(name, "bytes_spliced") == 0) {
		if (len != NULL)
			*len = sizeof(t->bytes_spliced);
		return &t->bytes_spliced;
	}
	if (strcmp(name, "aborted") == 0) {
		static const int no = 0, yes = 1;

		if (len != NULL)
			*len = sizeof(int);
		return (t->flags & ALOOP__T_ABORT_CALLED) ? &yes : &no;
	}
	if (t->proxy != NULL) {
		int found;
		const void *p = aloop__proxy_extra_info(t, name, len, &found);

		if (found)
			return p;
	}
	if (t->ops->get_extra_info == NULL)
		return NULL;
	return t->ops->get_extra_info(t, name, len);
}

/*
 * asyncio counts writes made after the connection ended and warns once
 * the count reaches its threshold.  One line is enough to point at the
 * bug; repeating it for every later write would only flood the log.
 */
static void
transport_count_dropped_write(struct aloop_transport *t)
{
	if (++t->writes_after_close == WRITES_AFTER_CLOSE_LOG)
		aloop_log(ALOOP_LOG_WARNING,
		    "%s transport: write after close or loss; data dropped "
		    "(%u writes so far)", t->ops->name, t->writes_after_close);
}

/* Hand @iov to the kind and run the flow-control check. */
static int
transport_write_iov(struct aloop_transport *t, const struct iovec *iov,
    int iovcnt, size_t total)
{
	int rc;

	aloop__transport_ref(t);
	rc = t->ops->write(t, iov, iovcnt);
	if (rc == 0) {
		t->bytes_written += total;
		aloop__transport_pause_check(t);
	}
	aloop__transport_unref(t);
	return rc;
}

int
aloop_transport_writelines(struct aloop_transport *t, const struct iovec *iov,
    int iovcnt)
{
	size_t total = 0;
	int i;

	if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
		return ALOOP_EINVAL;
	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total == 0)
		return 0;
	if (t->flags & (ALOOP__T_CLOSING | ALOOP__T_UPGRADING)) {
		transport_count_dropped_write(t);
		return 0;
	}
	if (t->flags & ALOOP__T_EOF_WRITTEN)
		return ALOOP_ESTATE;
	if (t->ops->write == NULL)
		return ALOOP_ENOTSUP;
	/* asyncio: "unable to write; sendfile is in progress". */
	if (__builtin_expect(t->sendfile != NULL || t->fwd_out != NULL, 0))
		return ALOOP_ESTATE;
	return transport_write_iov(t, iov, iovcnt, total);
}

int
aloop_transport_write(struct aloop_transport *t, const void *data, size_t len)
{
	struct iovec iov;

	if (len == 0)
		return 0;
	if (data == NULL)
		return ALOOP_EINVAL;
	iov.iov_base = (void *)(uintptr_t)data;
	iov.iov_len = len;
	return aloop_transport_writelines(t, &iov, 1);
}

int
aloop_transport_write_eof(struct aloop_transport *t)
{
	int rc;

	if (t->ops->write_eof == NULL)
		return ALOOP_ENOTSUP;
	if (t->flags & (ALOOP__T_CLOSING | ALOOP__T_EOF_WRITTEN |
	    ALOOP__T_UPGRADING))
		return 0;
	t->flags |= ALOOP__T_EOF_WRITTEN;
	aloop__transport_ref(t);
	rc = t->ops->write_eof(t);
	aloop__transport_unref(t);
	return rc;
}

int
aloop_transport_can_write_eof(const struct aloop_transport *t)
{
	return t->ops->can_write_eof != NULL && t->ops->write_eof != NULL &&
	    t->ops->can_write_eof(t);
}

/*
 * The flush of a close: a peer that took nothing for close_timeout makes
 * the close an abort; one that took something gets another close_timeout
 * from then.
 */
static void
transport_close_timeout_cb(void *arg)
{
	struct aloop_transport *t = arg;
	double when = t->close_progress + t->close_timeout;

	t->close_timer = ALOOP_HANDLE_NONE;
	if (when > aloop_time(t->loop) && aloop_call_at(t->loop, when,
	    transport_close_timeout_cb, t, &t->close_timer) == 0)
		return;
	t->close_timer = ALOOP_HANDLE_NONE;
	aloop__transport_ref(t);
	aloop__transport_drop(t, ALOOP_ETIMEDOUT, "close timed out: the peer "
	    "did not take the last %zu bytes",
	    aloop_transport_get_write_buffer_size(t));
	aloop__transport_unref(t);
}

void
aloop_transport_close(struct aloop_transport *t)
{
	if (t->flags & (ALOOP__T_CLOSING | ALOOP__T_UPGRADING))
		return;
	t->flags |= ALOOP__T_CLOSING | ALOOP__T_CLOSE_CALLED;
	t->close_progress = aloop_time(t->loop);
	aloop__transport_ref(t);
	t->ops->close(t);
	/*
	 * Still flushing to a peer: bound it.  (A subprocess ends when its
	 * child does, a datagram endpoint never waits on a peer.)  Without a
	 * timer there is no bound but asyncio's.
	 */
	if (t->ops->stream_protocol && !aloop__transport_is_done(t) &&
	    aloop_call_at(t->loop, t->close_progress + t->close_timeout,
	    transport_close_timeout_cb, t, &t->close_timer) != 0)
		t->close_timer = ALOOP_HANDLE_NONE;
	aloop__transport_unref(t);
}

int
aloop_transport_set_close_timeout(struct aloop_transport *t, double seconds)
{
	if (!(seconds >= 0) || seconds > 1e9)
		return ALOOP_EINVAL;
	t->close_timeout = seconds;
	return 0;
}

double
aloop_transport_get_close_timeout(const struct aloop_transport *t)
{
	return t->close_timeout;
}

void
aloop_transport_abort(struct aloop_transport *t)
{
	if (t->flags & ALOOP__T_LINGER) {
		/* Lingering after a close: drop the kernel's rest now. */
		transport_linger_end(t, LINGER_ABORTED);
		return;
	}
	if (t->flags & (ALOOP__T_ABORTED | ALOOP__T_LOST | ALOOP__T_DONE))
		return;
	t->flags |= ALOOP__T_ABORT_CALLED;
	aloop__transport_ref(t);
	aloop__transport_drop(t, 0, NULL);
	aloop__transport_unref(t);
}

int
aloop_transport_is_closing(const struct aloop_transport *t)
{
	return (t->flags & (ALOOP__T_CLOSING | ALOOP__T_UPGRADING)) != 0;
}

void
aloop_transport_pause_reading(struct aloop_transport *t)
{
	if (t->flags & (ALOOP__T_CLOSING | ALOOP__T_PAUSED_READ |
	    ALOOP__T_UPGRADING))
		return;
	t->flags |= ALOOP__T_PAUSED_READ;
	if (t->ops->pause_reading != NULL)
		t->ops->pause_reading(t);
}

void
aloop_transport_resume_reading(struct aloop_transport *t)
{
	if ((t->flags & (ALOOP__T_CLOSING | ALOOP__T_UPGRADING)) ||
	    !(t->flags & ALOOP__T_PAUSED_READ))
		return;
	t->flags &= ~ALOOP__T_PAUSED_READ;
	if (t->ops->resume_reading != NULL)
		t->ops->resume_reading(t);
}

int
aloop_transport_is_reading(const struct aloop_transport *t)
{
	return !(t->flags & (ALOOP__T_CLOSING | ALOOP__T_PAUSED_READ |
	    ALOOP__T_UPGRADING)) &&
	    t->ops->pause_reading != NULL;
}

int
aloop_transport_set_write_buffer_limits(struct aloop_transport *t,
    ssize_t high, ssize_t low)
{
	if (high < -1 || low < -1)
		return ALOOP_EINVAL;
	if (high == -1) {
		if (low == -1)
			high = ALOOP__HIGH_WATER_DEFAULT;
		else if (low > SSIZE_MAX / 4)
			return ALOOP_EINVAL;
		else
			high = 4 * low;
	}
	if (low == -1)
		low = high / 4;
	if (!(high >= low && low >= 0))
		return ALOOP_EINVAL;
	t->high = (size_t)high;
	t->low = (size_t)low;
	aloop__transport_ref(t);
	aloop__transport_pause_check(t);
	aloop__transport_unref(t);
	return 0;
}

void
aloop_transport_get_write_buffer_limits(const struct aloop_transport *t,
    size_t *low, size_t *high)
{
	if (low != NULL)
		*low = t->low;
	if (high != NULL)
		*high = t->high;
}

size_t
aloop_transport_get_write_buffer_size(const struct aloop_transport *t)
{
	if (t->ops->get_write_buffer_size == NULL)
		return 0;
	return t->ops->get_write_buffer_size(t);
}

int
aloop_transport_sendto(struct aloop_transport *t, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	int rc;

	if (t->ops->sendto == NULL)
		return ALOOP_ENOTSUP;
	if (t->flags & ALOOP__T_CLOSING) {
		transport_count_dropped_write(t);
		return 0;
	}
	aloop__transport_ref(t);
	rc = t->ops->sendto(t, data, len, addr, addrlen);
	if (rc == 0) {
		t->bytes_written += len;
		aloop__transport_pause_check(t);
	}
	aloop__transport_unref(t);
	return rc;
}

/* ---------------------------------------------------------- sendfile */

/*
 * One transport_sendfile in progress.  Zero-copy while the kind has
 * ops->sendfile and nothing is buffered; otherwise asyncio's fallback:
 * read a piece of the file, write it, and wait for the buffer to drain
 * before the next, so that a large file never sits in memory.  The job
 * holds a reference on the transport and one on the future.
 */
struct aloop__sendfile {
	struct aloop_transport	*t;
	struct aloop_future	*fut;
	int			 file;
	off_t			 off;		/* the next byte to send */
	size_t			 left;		/* SIZE_MAX: to the end */
	size_t			 sent;
	int			 copy;		/* read and write */
	int			 waiting;	/* for the buffer to drain */
	aloop_handle_t		 step;		/* the next step, if queued */
	unsigned char		*buf;
};

/* Bytes the fallback reads at a time, and at most per loop turn. */
#define SENDFILE_CHUNK		(64 * 1024)
#define SENDFILE_TURN		(1024 * 1024)

static void
transport_sendfile_end(struct aloop_transport *t, int code)
{
	struct aloop__sendfile *sf = t->sendfile;
	struct aloop_nbytes *r;

	if (sf == NULL)		/* ended from inside a step already */
		return;
	t->sendfile = NULL;
	aloop_handle_cancel(t->loop, sf->step);
	/* As asyncio: the file's position ends after what was sent. */
	(void)lseek(sf->file, sf->off, SEEK_SET);
	if (code != 0)
		(void)aloop_future_set_error(sf->fut, code, code == -EPIPE ?
		    "the transport closed during sendfile" : NULL);
	else if ((r = calloc(1, sizeof(*r))) == NULL)
		(void)aloop_future_set_error(sf->fut, ALOOP_ENOMEM, NULL);
	else {
		r->nbytes = sf->sent;
		if (aloop_future_set_result(sf->fut, r, free) != 0)
			free(r);
	}
	aloop_future_release(sf->fut);
	free(sf->buf);
	free(sf);
	aloop__transport_unref(t);
}

static void	transport_sendfile_step(void *arg);

static void
transport_sendfile_schedule(struct aloop__sendfile *sf)
{
	sf->waiting = 0;
	if (sf->step == ALOOP_HANDLE_NONE &&
	    aloop_call_soon(sf->t->loop, transport_sendfile_step, sf,
	    &sf->step) != 0)
		transport_sendfile_end(sf->t, ALOOP_ESTATE);
}

static void
transport_sendfile_wake(struct aloop_transport *t)
{
	struct aloop__sendfile *sf = t->sendfile;

	if (sf->waiting &&
	    aloop_transport_get_write_buffer_size(t) <= (sf->copy ? t->low : 0))
		transport_sendfile_schedule(sf);
}

/* The fallback's piece: 1 sent something, 0 at the end, or an error. */
static int
transport_sendfile_copy(struct aloop__sendfile *sf)
{
	struct aloop_transport *t = sf->t;
	struct iovec iov;
	size_t want;
	ssize_t n;
	int rc;

	want = sf->left < SENDFILE_CHUNK ? sf->left : SENDFILE_CHUNK;
	if (want == 0)
		return 0;
	if (sf->buf == NULL && (sf->buf = malloc(SENDFILE_CHUNK)) == NULL)
		return ALOOP_ENOMEM;
	do
		n = pread(sf->file, sf->buf, want, sf->off);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -errno;
	if (n == 0)
		return 0;
	iov.iov_base = sf->buf;
	iov.iov_len = (size_t)n;
	if ((rc = transport_write_iov(t, &iov, 1, (size_t)n)) != 0)
		return rc;
	/* A write error ended the transport, and this job with it. */
	if (t->sendfile != sf)
		return -EPIPE;
	sf->off += n;
	sf->sent += (size_t)n;
	if (sf->left != SIZE_MAX)
		sf->left -= (size_t)n;
	return 1;
}

static void
transport_sendfile_step(void *arg)
{
	struct aloop__sendfile *sf = arg;
	struct aloop_transport *t = sf->t;
	size_t turn = 0, want;
	ssize_t n;
	int rc;

	sf->step = ALOOP_HANDLE_NONE;
	if (aloop_future_done(sf->fut)) {	/* cancelled */
		transport_sendfile_end(t, 0);
		return;
	}
	aloop__transport_ref(t);
	while (t->sendfile == sf && !(t->flags & ALOOP__T_CLOSING)) {
		if (sf->left == 0) {
			transport_sendfile_end(t, 0);
			break;
		}
		if (turn >= SENDFILE_TURN) {
			/* Fairness: the rest on a later turn. */
			transport_sendfile_schedule(sf);
			break;
		}
		if (!sf->copy) {
			if (aloop_transport_get_write_buffer_size(t) > 0) {
				sf->waiting = 1;
				break;
			}
			want = sf->left < SENDFILE_TURN ? sf->left :
			    SENDFILE_TURN;
			n = t->ops->sendfile(t, sf->file, &sf->off, want);
			if (t->sendfile != sf)
				break;	/* a fatal error ended it all */
			if (n > 0) {
				t->bytes_written += (uint64_t)n;
				sf->sent += (size_t)n;
				turn += (size_t)n;
				if (sf->left != SIZE_MAX)
					sf->left -= (size_t)n;
				continue;
			}
			if (n == 0) {
				transport_sendfile_end(t, 0);
				break;
			}
			if (n == -EAGAIN) {
				sf->waiting = 1;
				break;
			}
			if (n == ALOOP_ENOTSUP && sf->sent == 0) {
				sf->copy = 1;
				continue;
			}
			transport_sendfile_end(t, (int)n);
			break;
		}
		if (aloop_transport_get_write_buffer_size(t) > t->low) {
			sf->waiting = 1;
			break;
		}
		if ((rc = transport_sendfile_copy(sf)) <= 0) {
			transport_sendfile_end(t, rc);
			break;
		}
		turn += SENDFILE_CHUNK;
	}
	aloop__transport_unref(t);
}

int
aloop_transport_sendfile(struct aloop_transport *t, int file, off_t offset,
    size_t count, struct aloop_future **fut)
{
	struct aloop__sendfile *sf;
	struct aloop_future *f;
	struct stat st;
	int rc;

	if (fut == NULL)
		return ALOOP_EINVAL;
	*fut = NULL;
	if (file < 0 || offset < 0)
		return ALOOP_EINVAL;
	if (fstat(file, &st) == -1)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return ALOOP_EINVAL;
	if (t->ops->write == NULL)
		return ALOOP_ENOTSUP;
	if (t->flags & (ALOOP__T_CLOSING | ALOOP__T_EOF_WRITTEN |
	    ALOOP__T_UPGRADING) || t->sendfile != NULL || t->fwd_out != NULL)
		return ALOOP_ESTATE;
	if ((rc = aloop_future_new(t->loop, &f)) != 0)
		return rc;
	if ((sf = calloc(1, sizeof(*sf))) == NULL) {
		aloop_future_release(f);
		return ALOOP_ENOMEM;
	}
	sf->t = t;
	sf->fut = aloop_future_ref(f);
	sf->file = file;
	sf->off = offset;
	sf->left = count > 0 ? count : SIZE_MAX;
	sf->copy = t->ops->sendfile == NULL;
	sf->step = ALOOP_HANDLE_NONE;
	aloop__transport_ref(t);
	t->sendfile = sf;
	/* The first piece goes on the next turn, never inside this call. */
	transport_sendfile_schedule(sf);
	*fut = f;
	return 0;
}
