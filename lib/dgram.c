/*
 * The datagram transport, as asyncio's (lib/dgram_endpoint.c makes the
 * socket).  Each datagram is delivered whole with its sender; sends go out
 * at once and queue only when the socket pushes back, under the shared
 * write flow control.  Errors of single datagrams (ICMP reports, oversize)
 * go to error_received and never end the endpoint.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <aloop/log.h>
#include <aloop/server.h>

#include "dgram-int.h"
#include "loop-int.h"
#include "transport-int.h"

/*
 * The largest UDP payload over IPv6 without jumbograms; a smaller buffer
 * would truncate datagrams silently.
 */
#define DGRAM_MAX		65536
/* Datagrams read per readiness, so one busy endpoint cannot starve the
 * rest of the loop. */
#define DGRAM_READS_PER_TURN	64
/*
 * What one queued datagram counts for in the write-buffer size besides its
 * payload (UDP's header, as asyncio counts it), so that even empty
 * datagrams add up.
 */
#define DGRAM_HEADER_SIZE	8
/*
 * A protocol that ignores pause_writing must not make the queue grow
 * without bound: past this many times the high-water mark (and at least
 * DGRAM_QUEUE_FLOOR bytes) further datagrams are dropped, as a full
 * socket buffer would drop them, and error_received says so.
 */
#define DGRAM_QUEUE_FACTOR	16
#define DGRAM_QUEUE_FLOOR	(1024 * 1024)

/*
 * recvmmsg batches, for endpoints that find at least DGRAM_BATCH_TRIGGER
 * datagrams in one turn.  Each slot holds the largest datagram, so a batch
 * costs DGRAM_BATCH * 64 KiB and only busy endpoints get one.
 */
#define DGRAM_BATCH		8
#define DGRAM_BATCH_TRIGGER	16

struct dgram_batch {
	unsigned		 next, count;	/* delivered, read */
	struct mmsghdr		 msg[DGRAM_BATCH];
	struct iovec		 iov[DGRAM_BATCH];
	struct sockaddr_storage	 from[DGRAM_BATCH];
	unsigned char		 buf[DGRAM_BATCH][DGRAM_MAX];
};

struct dgram_pkt {
	struct dgram_pkt	*next;
	size_t			 len;
	socklen_t		 addrlen;	/* 0: the connected peer */
	struct sockaddr_storage	 addr;
	unsigned char		 data[];
};

struct dgram {
	struct aloop_transport	 t;		/* first: the shared object */
	const struct aloop_datagram_protocol *proto;
	aloop_protocol_factory_fn factory;
	void			*factory_arg;
	struct aloop_future	*fut;		/* until started */
	aloop_handle_t		 start;		/* the pending dgram_start */
	int			 fd;
	int			 reading;	/* rev is added */
	struct event		*rev, *wev;
	struct dgram_pkt	*head, **tailp;
	size_t			 bufsize;
	unsigned char		*rbuf;
	struct dgram_batch	*batch;		/* busy endpoints only */
	struct sockaddr_storage	 sockname, peername;
	socklen_t		 socklen, peerlen;	/* peerlen 0: unconnected */
};

/* ---------------------------------------------------------- callbacks */

static void
dgram_error(struct dgram *d, int code, const char *what)
{
	struct aloop_transport *t = &d->t;
	struct aloop_error err;
	char msg[256];

	if (aloop__transport_is_done(t) || !(t->flags & ALOOP__T_MADE))
		return;
	if (d->proto->error_received == NULL) {
		aloop_log(ALOOP_LOG_DEBUG, "datagram %s: %s", what,
		    aloop_strerror(code));
		return;
	}
	snprintf(msg, sizeof(msg), "datagram %s: %s", what,
	    aloop_strerror(code));
	err.code = code;
	err.message = msg;
	aloop__transport_ref(t);
	d->proto->error_received(t, t->state, &err);
	aloop__transport_unref(t);
}

static int
dgram_can_read(const struct dgram *d)
{
	return !(d->t.flags & (ALOOP__T_CLOSING | ALOOP__T_PAUSED_READ)) &&
	    !aloop__transport_is_done(&d->t);
}

/* Deliver what a batch holds, from b->next on, while reading is wanted. */
static void
dgram_deliver_batch(struct dgram *d)
{
	struct aloop_transport *t = &d->t;
	struct dgram_batch *b = d->batch;
	unsigned k;

	while (b->next < b->count && dgram_can_read(d)) {
		k = b->next++;
		if (b->msg[k].msg_hdr.msg_flags & MSG_TRUNC) {
			dgram_error(d, -EMSGSIZE, "receive (over 64 KiB)");
			continue;
		}
		if (d->proto->datagram_received == NULL)
			continue;
		d->proto->datagram_received(t, t->state, b->buf[k],
		    b->msg[k].msg_len, (const struct sockaddr *)&b->from[k],
		    b->msg[k].msg_hdr.msg_namelen);
	}
}

/* One recvmmsg of up to @max datagrams: how many, 0 for none, -1 to stop. */
static int
dgram_read_batch(struct dgram *d, int fd, unsigned max)
{
	struct dgram_batch *b = d->batch;
	unsigned k, vlen = max < DGRAM_BATCH ? max : DGRAM_BATCH;
	int n;

	for (k = 0; k < vlen; k++) {
		memset(&b->msg[k].msg_hdr, 0, sizeof(b->msg[k].msg_hdr));
		b->iov[k].iov_base = b->buf[k];
		b->iov[k].iov_len = DGRAM_MAX;
		b->msg[k].msg_hdr.msg_iov = &b->iov[k];
		b->msg[k].msg_hdr.msg_iovlen = 1;
		b->msg[k].msg_hdr.msg_name = &b->from[k];
		b->msg[k].msg_hdr.msg_namelen = sizeof(b->from[k]);
	}
	b->next = b->count = 0;
	n = recvmmsg(fd, b->msg, vlen, 0, NULL);
	if (n == -1) {
		if (errno == EINTR)
			return 0;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -1;
		dgram_error(d, -errno, "receive");
		return 0;
	}
	b->count = (unsigned)n;
	dgram_deliver_batch(d);
	return n > 0 ? n : -1;
}

/*
 * Read what is waiting, up to DGRAM_READS_PER_TURN datagrams.  An endpoint
 * that keeps finding several per turn switches to recvmmsg batches; an
 * idle one keeps a single 64 KiB buffer, since every batch slot must hold
 * the largest datagram.
 */
static void
dgram_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dgram *d = arg;
	struct aloop_transport *t = &d->t;
	struct sockaddr_storage from;
	socklen_t fromlen;
	ssize_t n;
	int i = 0, got;

	(void)what;
	aloop__transport_ref(t);
	/* First what a batch read before a pause_reading. */
	if (d->batch != NULL)
		dgram_deliver_batch(d);
	while (d->batch != NULL && i < DGRAM_READS_PER_TURN &&
	    dgram_can_read(d)) {
		if ((got = dgram_read_batch(d, fd,
		    (unsigned)(DGRAM_READS_PER_TURN - i))) < 0)
			break;
		i += got > 0 ? got : 1;
	}
	for (; d->batch == NULL && i < DGRAM_READS_PER_TURN &&
	    dgram_can_read(d); i++) {
		fromlen = sizeof(from);
		/* MSG_TRUNC: the real length, so truncation shows. */
		n = recvfrom(fd, d->rbuf, DGRAM_MAX, MSG_TRUNC,
		    (struct sockaddr *)&from, &fromlen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			/* An ICMP report for an earlier send, usually. */
			dgram_error(d, -errno, "receive");
			continue;
		}
		if (n > DGRAM_MAX) {
			/* Only a local (AF_UNIX) peer can send this much. */
			dgram_error(d, -EMSGSIZE, "receive (over 64 KiB)");
			continue;
		}
		if (d->proto->datagram_received == NULL)
			continue;
		d->proto->datagram_received(t, t->state, d->rbuf, (size_t)n,
		    (const struct sockaddr *)&from, fromlen);
	}
	/* Busy: batch from now on (no batch on allocation failure). */
	if (d->batch == NULL && i >= DGRAM_BATCH_TRIGGER &&
	    !aloop__transport_is_done(t))
		d->batch = calloc(1, sizeof(*d->batch));
	aloop__transport_unref(t);
}

/* --------------------------------------------------------------- sends */

static void
dgram_free_queue(struct dgram *d)
{
	struct dgram_pkt *p;

	while ((p = d->head) != NULL) {
		d->head = p->next;
		free(p);
	}
	d->tailp = &d->head;
	d->bufsize = 0;
}

/* One sendto; 1 sent, 0 would block, else the negated errno. */
static int
dgram_send1(struct dgram *d, const void *data, size_t len,
    const struct sockaddr *addr, socklen_t addrlen)
{
	ssize_t n;

	do
		n = sendto(d->fd, data, len, MSG_NOSIGNAL, addr, addrlen);
	while (n == -1 && errno == EINTR);
	if (n >= 0)
		return 1;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	return -errno;
}

static void
dgram_writable(evutil_socket_t fd, short what, void *arg)
{
	struct dgram *d = arg;
	struct aloop_transport *t = &d->t;
	struct dgram_pkt *p;
	int rc;

	(void)fd;
	(void)what;
	aloop__transport_ref(t);
	while ((p = d->head) != NULL && !aloop__transport_is_done(t)) {
		rc = dgram_send1(d, p->data, p->len,
		    p->addrlen ? (struct sockaddr *)&p->addr : NULL,
		    p->addrlen);
		if (rc == 0)
			break;
		d->head = p->next;
		if (d->head == NULL)
			d->tailp = &d->head;
		d->bufsize -= p->len + DGRAM_HEADER_SIZE;
		free(p);
		if (rc < 0)
			dgram_error(d, rc, "send");
	}
	if (!aloop__transport_is_done(t)) {
		aloop__transport_resume_check(t);
		if (d->head == NULL && d->wev != NULL) {
			(void)event_del(d->wev);
			if (t->flags & ALOOP__T_CLOSE_CALLED)
				aloop__transport_lost(t, 0, NULL);
		}
	}
	aloop__transport_unref(t);
}

static int
same_address(const struct sockaddr *a, socklen_t alen,
    const struct sockaddr_storage *b, socklen_t blen)
{
	const struct sockaddr_in *a4, *b4;
	const struct sockaddr_in6 *a6, *b6;

	if (a->sa_family != b->ss_family)
		return 0;
	switch (a->sa_family) {
	case AF_INET:
		if (alen < (socklen_t)sizeof(*a4))
			return 0;
		a4 = (const struct sockaddr_in *)a;
		b4 = (const struct sockaddr_in *)b;
		return a4->sin_port == b4->sin_port &&
		    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	case AF_INET6:
		if (alen < (socklen_t)sizeof(*a6))
			return 0;
		a6 = (const struct sockaddr_in6 *)a;
		b6 = (const struct sockaddr_in6 *)b;
		return a6->sin6_port == b6->sin6_port &&
		    memcmp(&a6->sin6_addr, &b6->sin6_addr,
		    sizeof(a6->sin6_addr)) == 0;
	default:
		return alen == blen && memcmp(a, b, alen) == 0;
	}
}

static size_t
dgram_queue_limit(const struct dgram *d)
{
	size_t lim = d->t.high;

	lim = lim > SIZE_MAX / DGRAM_QUEUE_FACTOR ? SIZE_MAX :
	    lim * DGRAM_QUEUE_FACTOR;
	return lim < DGRAM_QUEUE_FLOOR ? DGRAM_QUEUE_FLOOR : lim;
}

static int
dgram_sendto(struct aloop_transport *t, const void *data, size_t len,
    const struct sockaddr *addr, socklen_t addrlen)
{
	struct dgram *d = (struct dgram *)t;
	struct dgram_pkt *p;
	int rc;

	if ((data == NULL && len > 0) || len > DGRAM_MAX)
		return ALOOP_EINVAL;
	if (addr != NULL && (addrlen < (socklen_t)sizeof(sa_family_t) ||
	    addrlen > (socklen_t)sizeof(p->addr)))
		return ALOOP_EINVAL;
	if (d->peerlen > 0) {
		/* asyncio: a connected endpoint sends to its peer only. */
		if (addr != NULL && !same_address(addr, addrlen,
		    &d->peername, d->peerlen))
			return ALOOP_EINVAL;
		addr = NULL;
		addrlen = 0;
	} else if (addr == NULL)
		return ALOOP_EINVAL;

	if (d->head == NULL) {
		rc = dgram_send1(d, data, len, addr, addrlen);
		if (rc == 1)
			return 0;
		if (rc < 0) {
			dgram_error(d, rc, "send");
			return 0;
		}
	}
	if (d->bufsize + len + DGRAM_HEADER_SIZE > dgram_queue_limit(d)) {
		dgram_error(d, -ENOBUFS, "send queue full");
		return 0;
	}
	if ((p = malloc(sizeof(*p) + len)) == NULL)
		return ALOOP_ENOMEM;
	p->next = NULL;
	p->len = len;
	p->addrlen = addr != NULL ? addrlen : 0;
	if (addr != NULL)
		memcpy(&p->addr, addr, addrlen);
	if (len > 0)
		memcpy(p->data, data, len);
	if (d->head == NULL && event_add(d->wev, NULL) == -1) {
		free(p);
		return ALOOP_ENOMEM;
	}
	*d->tailp = p;
	d->tailp = &p->next;
	d->bufsize += len + DGRAM_HEADER_SIZE;
	return 0;
}

/* ----------------------------------------------------- transport ops */

static void
dgram_stop_reading(struct dgram *d)
{
	if (d->reading) {
		(void)event_del(d->rev);
		d->reading = 0;
	}
}

static void
dgram_close(struct aloop_transport *t)
{
	struct dgram *d = (struct dgram *)t;

	dgram_stop_reading(d);
	if (d->head == NULL)
		aloop__transport_lost(t, 0, NULL);
}

/*
 * Drop the queue and the socket at once, but keep the receive buffer and
 * the events until teardown: abort may come from inside datagram_received,
 * whose data still points into that buffer.
 */
static void
dgram_abort(struct aloop_transport *t)
{
	struct dgram *d = (struct dgram *)t;

	dgram_stop_reading(d);
	if (d->wev != NULL)
		(void)event_del(d->wev);
	dgram_free_queue(d);
	aloop__transport_close_fd(&d->t, &d->fd);
}

static void
dgram_pause_reading(struct aloop_transport *t)
{
	dgram_stop_reading((struct dgram *)t);
}

static void
dgram_resume_reading(struct aloop_transport *t)
{
	struct dgram *d = (struct dgram *)t;

	/* Before dgram_start, reading simply starts there. */
	if (d->reading || d->fd < 0 || d->start != ALOOP_HANDLE_NONE)
		return;
	if (event_add(d->rev, NULL) == 0)
		d->reading = 1;
	/* Datagrams a batch read before the pause need no readiness. */
	if (d->batch != NULL && d->batch->next < d->batch->count)
		event_active(d->rev, EV_READ, 0);
}

static const void *
dgram_get_extra_info(struct aloop_transport *t, const char *name,
    size_t *len)
{
	struct dgram *d = (struct dgram *)t;

	if (d->fd < 0)
		return NULL;
	if (strcmp(name, "socket") == 0) {
		if (len != NULL)
			*len = sizeof(d->fd);
		return &d->fd;
	}
	if (strcmp(name, "sockname") == 0 && d->socklen > 0) {
		if (len != NULL)
			*len = d->socklen;
		return &d->sockname;
	}
	if (strcmp(name, "peername") == 0 && d->peerlen > 0) {
		if (len != NULL)
			*len = d->peerlen;
		return &d->peername;
	}
	return NULL;
}

static size_t
dgram_get_write_buffer_size(const struct aloop_transport *t)
{
	return ((const struct dgram *)t)->bufsize;
}

static void
dgram_teardown(struct aloop_transport *t)
{
	struct dgram *d = (struct dgram *)t;

	aloop_handle_cancel(t->loop, d->start);
	d->start = ALOOP_HANDLE_NONE;
	if (d->rev != NULL) {
		event_free(d->rev);
		d->rev = NULL;
	}
	if (d->wev != NULL) {
		event_free(d->wev);
		d->wev = NULL;
	}
	d->reading = 0;
	aloop__transport_close_fd(&d->t, &d->fd);
	dgram_free_queue(d);
	free(d->rbuf);
	d->rbuf = NULL;
	free(d->batch);
	d->batch = NULL;
	if (d->fut != NULL) {
		aloop_future_release(d->fut);
		d->fut = NULL;
	}
}

static void
dgram_free(struct aloop_transport *t)
{
	free(t);
}

static void
dgram_adopt_protocol(struct aloop_transport *t, const void *table,
    struct aloop__protocol_common *cb)
{
	const struct aloop_datagram_protocol *proto = table;

	((struct dgram *)t)->proto = proto;
	cb->connection_made = proto->connection_made;
	cb->connection_lost = proto->connection_lost;
	cb->pause_writing = proto->pause_writing;
	cb->resume_writing = proto->resume_writing;
}

static const struct aloop__transport_ops dgram_ops = {
	.name = "datagram",
	.adopt_protocol = dgram_adopt_protocol,
	.close = dgram_close,
	.abort = dgram_abort,
	.pause_reading = dgram_pause_reading,
	.resume_reading = dgram_resume_reading,
	.get_extra_info = dgram_get_extra_info,
	.get_write_buffer_size = dgram_get_write_buffer_size,
	.sendto = dgram_sendto,
	.teardown = dgram_teardown,
	.free = dgram_free,
};

/*
 * On the loop turn after creation: make the protocol state, hand out the
 * transport, run connection_made, then start reading.
 */
static void
dgram_start(void *arg)
{
	struct dgram *d = arg;
	struct aloop_transport *t = &d->t;
	void *state = NULL;
	int rc;

	d->start = ALOOP_HANDLE_NONE;
	aloop__transport_ref(t);
	if (aloop_future_done(d->fut)) {
		/* Cancelled by the caller: nobody wants the endpoint. */
		aloop__transport_mute(t);
		aloop_future_release(d->fut);
		d->fut = NULL;
		aloop__transport_lost(t, 0, NULL);
		aloop__transport_unref(t);
		return;
	}
	if (d->factory != NULL &&
	    (rc = d->factory(d->factory_arg, &state)) < 0) {
		/* Refused: the protocol hears nothing, the socket closes. */
		aloop__transport_mute(t);
		(void)aloop_future_set_error(d->fut, rc,
		    "datagram protocol factory: %s", aloop_strerror(rc));
		aloop_future_release(d->fut);
		d->fut = NULL;
		aloop__transport_lost(t, 0, NULL);
		aloop__transport_unref(t);
		return;
	}
	aloop__transport_attach(t, NULL, state);
	/* The result first, so that its done-callbacks run before any
	 * connection_lost that connection_made might cause. */
	(void)aloop__future_set_transport(d->fut, t);
	aloop_future_release(d->fut);
	d->fut = NULL;
	if (aloop__transport_made(t) == 0 && dgram_can_read(d) &&
	    event_add(d->rev, NULL) == 0)
		d->reading = 1;
	aloop__transport_unref(t);
}

/* ------------------------------------------------------------- creation */

int
aloop__dgram_new(struct aloop_loop *loop,
    const struct aloop_datagram_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg, int fd,
    struct aloop_future *fut)
{
	struct aloop__protocol_common cb;
	struct event_base *base = aloop__loop_base(loop);
	struct dgram *d;
	int rc;

	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->rbuf = malloc(DGRAM_MAX)) == NULL)
		goto nomem;
	d->rev = event_new(base, fd, EV_READ | EV_PERSIST, dgram_readable, d);
	d->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, dgram_writable, d);
	if (d->rev == NULL || d->wev == NULL)
		goto nomem;
	d->proto = proto;
	d->factory = factory;
	d->factory_arg = factory_arg;
	d->fd = fd;
	d->tailp = &d->head;
	d->socklen = sizeof(d->sockname);
	if (getsockname(fd, (struct sockaddr *)&d->sockname, &d->socklen) == -1)
		d->socklen = 0;
	d->peerlen = sizeof(d->peername);
	if (getpeername(fd, (struct sockaddr *)&d->peername, &d->peerlen) == -1)
		d->peerlen = 0;

	dgram_adopt_protocol(&d->t, proto, &cb);
	aloop__transport_init(&d->t, &dgram_ops, loop, proto, &cb, NULL);
	aloop__transport_own_fd(&d->t, fd);
	d->fut = aloop_future_ref(fut);
	/* No reference for the pending call: teardown cancels it. */
	if ((rc = aloop_call_soon(loop, dgram_start, d, &d->start)) < 0) {
		aloop__transport_mute(&d->t);
		(void)aloop_future_set_error(fut, rc, NULL);
		aloop__transport_lost(&d->t, 0, NULL);
	}
	return 0;
nomem:
	if (d != NULL) {
		if (d->rev != NULL)
			event_free(d->rev);
		if (d->wev != NULL)
			event_free(d->wev);
		free(d->rbuf);
		free(d);
	}
	(void)close(fd);
	return ALOOP_ENOMEM;
}
