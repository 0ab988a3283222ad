/*
 * The stream transport: a connected socket or a pipe, driven with libevent
 * events and an evbuffer for what the descriptor did not take at once.
 *
 * Why not a bufferevent: a stock bufferevent reads 4 KiB per call and
 * defers every write to the next loop turn.  asyncio's transport sends at
 * once when nothing is buffered and reads large chunks; doing the same
 * here (send() first, one large recv() into a per-thread buffer handed to
 * data_received without copying) is what lets the echo path keep up with a
 * raw epoll server.
 */
#include "config.h"

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <aloop/log.h>

#include "transport-int.h"

/* How many evbuffer chunks one sendmsg() gathers. */
#define STREAM_IOV_MAX		64

struct stream {
	struct aloop_transport	 t;	/* first: the ops cast back */
	int			 fd;
	int			 kind;	/* ALOOP__STREAM_* */
	int			 is_sock;
	struct event		*rev, *wev;
	struct evbuffer		*out;
	unsigned		 reading:1;	/* rev is added */
	unsigned		 writing:1;	/* wev is added */
	unsigned		 eof:1;		/* the peer's EOF was read */
	unsigned		 shut_wr:1;	/* shutdown(SHUT_WR) done */
	unsigned		 eof_pending:1;	/* shut down once drained */
	socklen_t		 peerlen, socklen;
	struct sockaddr_storage	 peer, sock;
};

#define STREAM(tp)	((struct stream *)(void *)(tp))

/* ---------------------------------------------------------- helpers */

void
aloop__sock_set_nodelay(int fd)
{
	int on = 1;

	/* Fails with EOPNOTSUPP/ENOPROTOOPT for UNIX sockets: harmless. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

void
aloop__sock_close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	/* Not a TCP socket (UNIX): nothing lingers anyway. */
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	(void)close(fd);
}

static void
stream_start_reading(struct stream *s)
{
	if (s->reading || s->rev == NULL)
		return;
	if (event_add(s->rev, NULL) == 0)
		s->reading = 1;
}

static void
stream_stop_reading(struct stream *s)
{
	if (!s->reading)
		return;
	(void)event_del(s->rev);
	s->reading = 0;
}

static void
stream_start_writing(struct stream *s)
{
	if (s->writing || s->wev == NULL)
		return;
	if (event_add(s->wev, NULL) == 0)
		s->writing = 1;
}

static void
stream_stop_writing(struct stream *s)
{
	if (!s->writing)
		return;
	(void)event_del(s->wev);
	s->writing = 0;
}

/*
 * Write to a pipe without dying of SIGPIPE when the reader is gone: a
 * library cannot ignore the signal for the whole process, so block it for
 * this thread around the call and consume the one the call raised (unless
 * it was pending already, so no other sender's signal is eaten).
 */
static ssize_t
pipe_writev(int fd, const struct iovec *iov, int iovcnt)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t set, old, pending;
	ssize_t n;
	int err, was_pending = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (sigpending(&pending) == 0)
		was_pending = sigismember(&pending, SIGPIPE) == 1;
	(void)pthread_sigmask(SIG_BLOCK, &set, &old);
	n = writev(fd, iov, iovcnt);
	err = errno;
	if (n < 0 && err == EPIPE && !was_pending)
		while (sigtimedwait(&set, NULL, &zero) == -1 && errno == EINTR)
			continue;
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = err;
	return n;
}

static ssize_t
stream_sendv(struct stream *s, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg;

	if (!s->is_sock)
		return pipe_writev(s->fd, iov, iovcnt);
	/* One chunk, the common case: send() skips copying in a msghdr
	 * and an iovec array. */
	if (iovcnt == 1)
		return send(s->fd, iov[0].iov_base, iov[0].iov_len,
		    MSG_NOSIGNAL);
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = (struct iovec *)(uintptr_t)iov;
	msg.msg_iovlen = (size_t)iovcnt;
	return sendmsg(s->fd, &msg, MSG_NOSIGNAL);
}

static void
stream_shutdown_wr(struct stream *s)
{
	if (s->shut_wr || s->fd < 0)
		return;
	s->shut_wr = 1;
	if (shutdown(s->fd, SHUT_WR) == -1 && errno != ENOTCONN)
		aloop_log_errno(ALOOP_LOG_DEBUG, "shutdown(SHUT_WR)");
}

/* ------------------------------------------------------------- read */

static void
stream_on_eof(struct stream *s)
{
	struct aloop_transport *t = &s->t;
	const struct aloop_protocol *p = t->proto;
	int keep = 0;

	s->eof = 1;
	stream_stop_reading(s);
	if (p->eof_received != NULL)
		keep = p->eof_received(t, t->state);
	if (aloop__transport_is_done(t))
		return;
	/* A read pipe has no writing side to keep open. */
	if (!keep || s->kind == ALOOP__STREAM_READ_PIPE)
		aloop_transport_close(t);
}

/* The reader of a write pipe went away (the descriptor reports an error). */
static void
stream_write_pipe_hup(struct stream *s)
{
	struct aloop_transport *t = &s->t;

	if (evbuffer_get_length(s->out) > 0)
		aloop__transport_fatal(t, -EPIPE,
		    "Fatal write error on pipe transport");
	else
		aloop__transport_drop(t, 0, NULL);
}

/*
 * How much one readiness event may read before the loop runs anything
 * else: reading on while a read fills the buffer saves a wake-up per
 * buffer on a bulk stream, and the budget keeps one fast peer from
 * starving the other connections and the timers.
 */
#define STREAM_READS_PER_EVENT	16

/*
 * One read and its delivery; whether to read again at once.  The bytes
 * go into the protocol's own buffer when it lends one (a streams reader:
 * no copy), else into the loop's read buffer.
 */
static int
stream_read_once(struct stream *s)
{
	struct aloop_transport *t = &s->t;
	const struct aloop_protocol *p = t->proto;
	unsigned char *buf = NULL;
	size_t room = 0;
	ssize_t n;

	if (t->read_into != NULL)
		buf = t->read_into(t->read_into_arg, &room);
	if (buf == NULL || room == 0) {
		room = ALOOP__READ_MAX;
		buf = aloop__read_buffer();
	} else if (room > ALOOP__READ_MAX)
		room = ALOOP__READ_MAX;
	if (buf == NULL) {
		aloop__transport_fatal(t, ALOOP_ENOMEM,
		    "Fatal read error on socket transport");
		return 0;
	}
	/* recv() on a socket: the shorter way through the kernel than
	 * read()'s file layer. */
	n = s->is_sock ? recv(s->fd, buf, room, 0) : read(s->fd, buf, room);
	if (n > 0) {
		if (p->data_received != NULL)
			p->data_received(t, t->state, buf, (size_t)n);
		/*
		 * Only a full buffer says more is waiting, and only a
		 * transport the callback left open and reading may take it
		 * (it may have closed, aborted, paused, handed the
		 * descriptor to TLS, started a forward or read from
		 * elsewhere).
		 */
		return (size_t)n == room && s->reading && s->fd >= 0 &&
		    !(t->flags & ALOOP__T_CLOSING) && t->fwd_in == NULL;
	}
	if (n == 0)
		stream_on_eof(s);
	else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		;	/* A spurious wake-up. */
	else if (errno == ECONNRESET || (!s->is_sock && errno == EIO)) {
		/*
		 * A peer's reset is no bug, and neither is EIO from a
		 * terminal whose other side closed: asyncio ends the
		 * transport with the error but reports neither.
		 */
		aloop__transport_drop(t, -errno, NULL);
	} else
		aloop__transport_fatal(t, -errno, s->is_sock ?
		    "Fatal read error on socket transport" :
		    "Fatal read error on pipe transport");
	return 0;
}

static void
stream_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	struct aloop_transport *t = &s->t;

	(void)fd;
	(void)what;
	aloop__transport_ref(t);
	if (s->kind == ALOOP__STREAM_WRITE_PIPE)
		stream_write_pipe_hup(s);
	else if (t->fwd_in != NULL)
		aloop__forward_readable(t);
	else
		for (int i = 0; i < STREAM_READS_PER_EVENT; i++)
			if (!stream_read_once(s))
				break;
	aloop__transport_unref(t);
}

/* ------------------------------------------------------------ write */

/* What waits to be sent: the buffer, then a forward's pipe. */
static size_t
stream_pending(const struct stream *s)
{
	size_t n = evbuffer_get_length(s->out);

	if (__builtin_expect(s->t.fwd_out != NULL, 0))
		n += aloop__forward_pending(&s->t);
	return n;
}

/* The buffer and the pipe are empty: finish a close or a write_eof. */
static void
stream_drained(struct stream *s)
{
	struct aloop_transport *t = &s->t;

	stream_stop_writing(s);
	if (t->flags & ALOOP__T_CLOSING)
		aloop__transport_lost(t, 0, NULL);
	else if (s->eof_pending)
		stream_shutdown_wr(s);
}

/* Send what the buffer holds; 0, or a negative errno after a fatal error. */
static int
stream_flush(struct stream *s)
{
	struct evbuffer_iovec vec[STREAM_IOV_MAX];
	struct iovec iov[STREAM_IOV_MAX];
	ssize_t n;
	int i, nvec;

	while (evbuffer_get_length(s->out) > 0) {
		nvec = evbuffer_peek(s->out, -1, NULL, vec, STREAM_IOV_MAX);
		if (nvec > STREAM_IOV_MAX)
			nvec = STREAM_IOV_MAX;
		for (i = 0; i < nvec; i++) {
			iov[i].iov_base = vec[i].iov_base;
			iov[i].iov_len = vec[i].iov_len;
		}
		n = stream_sendv(s, iov, nvec);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		(void)evbuffer_drain(s->out, (size_t)n);
		/* A short write means the kernel buffer is full. */
		if (nvec < STREAM_IOV_MAX && evbuffer_get_length(s->out) > 0)
			return 0;
	}
	return 0;
}

static void
stream_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	struct aloop_transport *t = &s->t;
	int rc;

	(void)fd;
	(void)what;
	aloop__transport_ref(t);
	if ((rc = stream_flush(s)) != 0) {
		aloop__transport_fatal(t, rc, s->is_sock ?
		    "Fatal write error on socket transport" :
		    "Fatal write error on pipe transport");
		goto out;
	}
	aloop__transport_resume_check(t);
	if (aloop__transport_is_done(t) || evbuffer_get_length(s->out) > 0)
		goto out;
	if (t->fwd_out != NULL) {
		/* The forward's pipe comes after the buffer. */
		aloop__forward_writable(t);
		goto out;
	}
	stream_drained(s);
out:
	aloop__transport_unref(t);
}

static int
stream_write(struct aloop_transport *t, const struct iovec *iov, int iovcnt)
{
	struct stream *s = STREAM(t);
	ssize_t n = 0;
	size_t left;
	int i;

	if (s->kind == ALOOP__STREAM_READ_PIPE)
		return ALOOP_ENOTSUP;
	if (evbuffer_get_length(s->out) == 0) {
		do
			n = stream_sendv(s, iov, iovcnt > IOV_MAX ? IOV_MAX :
			    iovcnt);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				aloop__transport_fatal(t, -errno, s->is_sock ?
				    "Fatal write error on socket transport" :
				    "Fatal write error on pipe transport");
				return 0;
			}
			n = 0;
		}
	}
	/* Buffer what the descriptor did not take. */
	for (i = 0; i < iovcnt; i++) {
		left = iov[i].iov_len;
		if ((size_t)n >= left) {
			n -= (ssize_t)left;
			continue;
		}
		if (evbuffer_add(s->out, (const char *)iov[i].iov_base + n,
		    left - (size_t)n) != 0)
			return ALOOP_ENOMEM;
		n = 0;
	}
	if (evbuffer_get_length(s->out) > 0)
		stream_start_writing(s);
	return 0;
}

static int
stream_write_eof(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);

	if (s->kind == ALOOP__STREAM_READ_PIPE)
		return ALOOP_ENOTSUP;
	if (s->kind == ALOOP__STREAM_WRITE_PIPE) {
		/* A pipe's only way to say EOF is to close. */
		aloop_transport_close(t);
		return 0;
	}
	if (stream_pending(s) == 0)
		stream_shutdown_wr(s);
	else
		s->eof_pending = 1;
	return 0;
}

static int
stream_can_write_eof(const struct aloop_transport *t)
{
	return STREAM(t)->kind != ALOOP__STREAM_READ_PIPE;
}

static size_t
stream_get_write_buffer_size(const struct aloop_transport *t)
{
	const struct stream *s = (const struct stream *)(const void *)t;

	return s->out != NULL ? stream_pending(s) : 0;
}

/* ------------------------------------------------------------ close */

static void
stream_close(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);

	stream_stop_reading(s);
	if (stream_pending(s) == 0)
		aloop__transport_lost(t, 0, NULL);
	/* Otherwise the write callback ends it once the buffer drained. */
}

static void
stream_teardown(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);

	if (t->fwd_in != NULL || t->fwd_out != NULL)
		aloop__forward_gone(t);
	if (s->rev != NULL) {
		event_free(s->rev);
		s->rev = NULL;
	}
	if (s->wev != NULL) {
		event_free(s->wev);
		s->wev = NULL;
	}
	s->reading = s->writing = 0;
	if (s->out != NULL)
		(void)evbuffer_drain(s->out, evbuffer_get_length(s->out));
	aloop__transport_close_fd(t, &s->fd);
}

static void
stream_free(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);

	stream_teardown(t);
	if (s->out != NULL)
		evbuffer_free(s->out);
	free(s);
}

static void
stream_pause_reading(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);

	if (s->kind != ALOOP__STREAM_WRITE_PIPE)
		stream_stop_reading(s);
}

static void
stream_resume_reading(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);

	if (s->kind != ALOOP__STREAM_WRITE_PIPE && !s->eof &&
	    (t->flags & ALOOP__T_MADE))
		stream_start_reading(s);
}

static const void *
stream_get_extra_info(struct aloop_transport *t, const char *name,
    size_t *len)
{
	struct stream *s = STREAM(t);

	if (s->fd < 0)
		return NULL;
	if (strcmp(name, "pipe") == 0)
		return s->kind != ALOOP__STREAM_SOCKET ? &s->fd : NULL;
	if (!s->is_sock)
		return NULL;
	if (strcmp(name, "socket") == 0)
		return &s->fd;
	if (strcmp(name, "peername") == 0) {
		if (s->peerlen == 0) {
			socklen_t l = sizeof(s->peer);

			if (getpeername(s->fd, (struct sockaddr *)&s->peer,
			    &l) == -1)
				return NULL;
			s->peerlen = l;
		}
		if (len != NULL)
			*len = s->peerlen;
		return &s->peer;
	}
	if (strcmp(name, "sockname") == 0) {
		if (s->socklen == 0) {
			socklen_t l = sizeof(s->sock);

			if (getsockname(s->fd, (struct sockaddr *)&s->sock,
			    &l) == -1)
				return NULL;
			s->socklen = l;
		}
		if (len != NULL)
			*len = s->socklen;
		return &s->sock;
	}
	return NULL;
}

static ssize_t
stream_sendfile(struct aloop_transport *t, int file, off_t *off, size_t count)
{
	struct stream *s = STREAM(t);
	ssize_t n;

	if (s->kind == ALOOP__STREAM_READ_PIPE)
		return ALOOP_ENOTSUP;
	do
		n = sendfile(s->fd, file, off, count);
	while (n == -1 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		/* The write callback finds the buffer empty and wakes
		 * the sendfile through aloop__transport_resume_check. */
		stream_start_writing(s);
		return -EAGAIN;
	}
	/* A file or descriptor the kernel cannot splice: copy instead. */
	if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)
		return ALOOP_ENOTSUP;
	n = -errno;
	aloop__transport_fatal(t, (int)n, s->is_sock ?
	    "Fatal write error on socket transport" :
	    "Fatal write error on pipe transport");
	return n;
}

static int
stream_detach(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);
	int fd = s->fd;

	if (s->kind != ALOOP__STREAM_SOCKET)
		return ALOOP_ENOTSUP;
	if (evbuffer_get_length(s->out) > 0 || s->shut_wr || s->eof ||
	    t->fwd_in != NULL || t->fwd_out != NULL)
		return ALOOP_ESTATE;
	s->fd = -1;
	stream_teardown(t);
	return fd;
}

static void
stream_abort(struct aloop_transport *t)
{
	stream_teardown(t);
}

static const struct aloop__transport_ops stream_ops = {
	.name = "socket",
	.stream_protocol = 1,
	.write = stream_write,
	.write_eof = stream_write_eof,
	.close = stream_close,
	.abort = stream_abort,
	.pause_reading = stream_pause_reading,
	.resume_reading = stream_resume_reading,
	.get_extra_info = stream_get_extra_info,
	.get_write_buffer_size = stream_get_write_buffer_size,
	.can_write_eof = stream_can_write_eof,
	.sendfile = stream_sendfile,
	.teardown = stream_teardown,
	.free = stream_free,
	.detach = stream_detach,
};

static const struct aloop__transport_ops pipe_ops = {
	.name = "pipe",
	.stream_protocol = 1,
	.write = stream_write,
	.write_eof = stream_write_eof,
	.close = stream_close,
	.abort = stream_abort,
	.pause_reading = stream_pause_reading,
	.resume_reading = stream_resume_reading,
	.get_extra_info = stream_get_extra_info,
	.get_write_buffer_size = stream_get_write_buffer_size,
	.can_write_eof = stream_can_write_eof,
	.sendfile = stream_sendfile,
	.teardown = stream_teardown,
	.free = stream_free,
};

/* Reading starts once connection_made returned, unless it paused. */
static void
stream_after_made(struct stream *s)
{
	struct aloop_transport *t = &s->t;

	if (t->flags & ALOOP__T_CLOSING)
		return;
	if (s->kind == ALOOP__STREAM_WRITE_PIPE ||
	    !(t->flags & ALOOP__T_PAUSED_READ))
		stream_start_reading(s);
}

int
aloop__stream_transport_new(struct aloop_loop *loop, int fd, int kind,
    const struct aloop_protocol *proto, void *state, int defer_made,
    struct aloop_transport **out)
{
	struct aloop__protocol_common cb;
	struct event_base *base;
	struct stream *s;
	struct stat st;
	short rflags;
	int rc;

	if ((rc = aloop__loop_check(loop, "stream transport")) != 0) {
		aloop__sock_close_reset(fd);
		return rc;
	}
	base = aloop__loop_base(loop);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		aloop__sock_close_reset(fd);
		return ALOOP_ENOMEM;
	}
	s->fd = fd;
	s->kind = kind;
	s->is_sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	rflags = EV_READ | EV_PERSIST;
	s->out = evbuffer_new();
	s->rev = event_new(base, fd, rflags, stream_read_cb, s);
	if (kind != ALOOP__STREAM_READ_PIPE)
		s->wev = event_new(base, fd, EV_WRITE | EV_PERSIST,
		    stream_write_cb, s);
	if (s->out == NULL || s->rev == NULL ||
	    (kind != ALOOP__STREAM_READ_PIPE && s->wev == NULL)) {
		if (s->rev != NULL)
			event_free(s->rev);
		if (s->wev != NULL)
			event_free(s->wev);
		if (s->out != NULL)
			evbuffer_free(s->out);
		free(s);
		aloop__sock_close_reset(fd);
		return ALOOP_ENOMEM;
	}
	aloop__protocol_common_stream(&cb, proto);
	aloop__transport_init(&s->t, kind == ALOOP__STREAM_SOCKET ?
	    &stream_ops : &pipe_ops, loop, proto, &cb, state);
	aloop__transport_own_fd(&s->t, fd);
	*out = &s->t;
	if (!defer_made)
		aloop__stream_transport_made(&s->t);
	return 0;
}

void
aloop__stream_transport_made(struct aloop_transport *t)
{
	aloop__transport_ref(t);
	if (aloop__transport_made(t) == 0)
		stream_after_made(STREAM(t));
	aloop__transport_unref(t);
}

/* ------------------------------------------------- for forward.c */

int
aloop__stream_fd(const struct aloop_transport *t)
{
	const struct stream *s = (const struct stream *)(const void *)t;

	if (t->ops != &stream_ops || !s->is_sock)
		return -1;
	return s->fd;
}

int
aloop__stream_read_eof(const struct aloop_transport *t)
{
	return ((const struct stream *)(const void *)t)->eof;
}

void
aloop__stream_want_read(struct aloop_transport *t, int on)
{
	if (on)
		stream_start_reading(STREAM(t));
	else
		stream_stop_reading(STREAM(t));
}

void
aloop__stream_want_write(struct aloop_transport *t, int on)
{
	if (on)
		stream_start_writing(STREAM(t));
	else
		stream_stop_writing(STREAM(t));
}

size_t
aloop__stream_buffered(const struct aloop_transport *t)
{
	const struct stream *s = (const struct stream *)(const void *)t;

	return s->out != NULL ? evbuffer_get_length(s->out) : 0;
}

void
aloop__stream_eof(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);

	if (!s->eof && !(t->flags & ALOOP__T_CLOSING))
		stream_on_eof(s);
}

void
aloop__stream_output_drained(struct aloop_transport *t)
{
	struct stream *s = STREAM(t);

	if (!aloop__transport_is_done(t) && s->fd >= 0 &&
	    stream_pending(s) == 0)
		stream_drained(s);
}
