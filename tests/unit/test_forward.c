/*
 * aloop_transport_forward: bytes one plain stream transport receives go
 * to another through the kernel, exactly and in order, with the
 * back-pressure, half-close and abort rules of write; and the stream's
 * read-until-drained, which must stop when data_received pauses or
 * aborts.  Each case has two transports A and B over real sockets and a
 * raw peer on the far side of each (ra talks to A, rb to B).
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "stream_util.h"

#define BULK		(32u * 1024 * 1024)

struct fx {
	struct aloop_loop	*loop;
	struct rec_pool		 pool;
	struct rec		*a, *b;
	int			 ra, rb;
	int			 fds;
	int			 ndone[2];	/* A->B, B->A */
	int			 status[2];
};

/* The byte at @i of every stream the tests send. */
static unsigned char
pattern(uint64_t i)
{
	return (unsigned char)(i * 131 + (i >> 12) * 7 + 1);
}

/* A connected TCP pair on loopback. */
static void
tcp_pair(int fds[2])
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int l;

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(l >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(bind(l, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CU_ASSERT_FATAL(listen(l, 1) == 0);
	CU_ASSERT_FATAL(getsockname(l, (struct sockaddr *)&sin, &len) == 0);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fds[0] >= 0);
	CU_ASSERT_FATAL(connect(fds[0], (struct sockaddr *)&sin,
	    sizeof(sin)) == 0);
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CU_ASSERT_FATAL(fds[1] >= 0);
	close(l);
}

static void
sock_pair(int fds[2], int unix_sock)
{
	if (unix_sock) {
		CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
		    0, fds) == 0);
	} else
		tcp_pair(fds);
}

static struct aloop_transport *
adopt(struct fx *x, int fd)
{
	struct aloop_future *fut = NULL;
	void *t = NULL;

	CU_ASSERT_EQUAL_FATAL(aloop_connect_accepted_socket(x->loop,
	    &rec_proto, rec_factory, &x->pool, fd, NULL, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(x->loop, fut, &t), 0);
	aloop_future_release(fut);
	return t;
}

static void
fx_open(struct fx *x, int unix_sock)
{
	int p[2], q[2];

	memset(x, 0, sizeof(*x));
	x->fds = count_fds();
	x->loop = test_loop();
	x->pool.tmpl.keep_open = 1;
	x->pool.tmpl.user = x;
	sock_pair(p, unix_sock);
	sock_pair(q, unix_sock);
	x->ra = p[0];
	x->rb = q[1];
	(void)adopt(x, p[1]);
	(void)adopt(x, q[0]);
	x->a = &x->pool.r[0];
	x->b = &x->pool.r[1];
	CU_ASSERT_FATAL(x->a->t != NULL && x->b->t != NULL);
}

static void
fx_close(struct fx *x)
{
	if (x->ra >= 0)
		close(x->ra);
	if (x->rb >= 0)
		close(x->rb);
	/* A lost transport's pointer is dead (the test holds no reference). */
	if (!x->a->lost)
		aloop_transport_close(x->a->t);
	if (!x->b->lost)
		aloop_transport_close(x->b->t);
	CU_ASSERT(WAIT_UNTIL(x->loop, x->a->lost && x->b->lost, 5.0));
	CU_ASSERT_EQUAL(x->a->bad, 0);
	CU_ASSERT_EQUAL(x->b->bad, 0);
	test_loop_done(x->loop);
	CU_ASSERT_EQUAL(count_fds(), x->fds);
}

static void
done_cb(struct aloop_transport *src, struct aloop_transport *dst, void *arg,
    int status)
{
	struct fx *x = arg;
	int i = src == x->a->t ? 0 : 1;

	CU_ASSERT(dst == (i == 0 ? x->b->t : x->a->t));
	x->ndone[i]++;
	x->status[i] = status;
}

static void
fx_forward(struct fx *x)
{
	CU_ASSERT_EQUAL_FATAL(aloop_transport_forward(x->a->t, x->b->t,
	    done_cb, x), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_transport_forward(x->b->t, x->a->t,
	    done_cb, x), 0);
}

static uint64_t
counter(struct aloop_transport *t, const char *name)
{
	const uint64_t *v = aloop_transport_get_extra_info(t, name, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	return *v;
}

/* ------------------------------------------------- raw peer threads */

struct peer {
	pthread_t	 th;
	int		 fd;
	uint64_t	 len;		/* to write, or read so far */
	uint64_t	 start;		/* writer: stream offset of byte 0 */
	int		 shut;		/* writer: shutdown(SHUT_WR) at the end */
	int		 bad;		/* reader: a byte out of place */
	int		 err;		/* reader: how it ended (0: EOF) */
	atomic_int	 finished;
};

static void *
writer_main(void *arg)
{
	struct peer *w = arg;
	unsigned char buf[65536];
	uint64_t off = 0;
	size_t i, n;
	ssize_t k;

	while (off < w->len) {
		n = w->len - off < sizeof(buf) ? (size_t)(w->len - off) :
		    sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = pattern(w->start + off + i);
		if ((k = write(w->fd, buf, n)) <= 0)
			break;
		off += (uint64_t)k;
		/* A short write: send the rest again from its offset. */
	}
	w->len = off;
	if (w->shut)
		(void)shutdown(w->fd, SHUT_WR);
	atomic_store(&w->finished, 1);
	return NULL;
}

static void *
reader_main(void *arg)
{
	struct peer *r = arg;
	unsigned char buf[65536];
	ssize_t n, i;

	for (;;) {
		n = read(r->fd, buf, sizeof(buf));
		if (n <= 0) {
			r->err = n == 0 ? 0 : -errno;
			break;
		}
		for (i = 0; i < n; i++)
			if (buf[i] != pattern(r->len + (uint64_t)i))
				r->bad++;
		r->len += (uint64_t)n;
	}
	atomic_store(&r->finished, 1);
	return NULL;
}

static void
peer_start_at(struct peer *p, int fd, void *(*fn)(void *), uint64_t len,
    uint64_t start, int shut)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->len = len;
	p->start = start;
	p->shut = shut;
	CU_ASSERT_FATAL(pthread_create(&p->th, NULL, fn, p) == 0);
}

static void
peer_start(struct peer *p, int fd, void *(*fn)(void *), uint64_t len)
{
	peer_start_at(p, fd, fn, len, 0, 1);
}

/* A's EOF passes on to B, as a proxy passes a half-close on. */
static void
pass_eof(struct rec *r)
{
	struct fx *x = r->user;
	struct aloop_transport *other = r == x->a ? x->b->t : x->a->t;

	CU_ASSERT_EQUAL(aloop_transport_write_eof(other), 0);
}

/* ------------------------------------------------------------ cases */

/* BULK bytes from ra reach rb exactly, then the EOF; counted on both. */
static void
bulk(int unix_sock)
{
	struct fx x;
	struct peer w, r;

	fx_open(&x, unix_sock);
	x.a->on_eof = pass_eof;
	fx_forward(&x);
	peer_start(&r, x.rb, reader_main, 0);
	peer_start(&w, x.ra, writer_main, BULK);
	CU_ASSERT(WAIT_UNTIL(x.loop, atomic_load(&r.finished), 30.0));
	pthread_join(w.th, NULL);
	pthread_join(r.th, NULL);
	CU_ASSERT_EQUAL(w.len, BULK);
	CU_ASSERT_EQUAL(r.len, BULK);
	CU_ASSERT_EQUAL(r.bad, 0);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_EQUAL(x.a->nrecv, 0);
	CU_ASSERT_EQUAL(x.a->eofs, 1);
	CU_ASSERT_EQUAL(counter(x.a->t, "bytes_forwarded"), BULK);
	CU_ASSERT_EQUAL(counter(x.b->t, "bytes_written"), BULK);
	/* Bulk goes through the pipe, all but the first reads. */
	CU_ASSERT(counter(x.a->t, "bytes_spliced") >= BULK - BULK / 8);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.ndone[0] == 1, 2.0));
	CU_ASSERT_EQUAL(x.status[0], 0);
	CU_ASSERT_EQUAL(x.ndone[1], 0);
	fx_close(&x);
	CU_ASSERT_EQUAL(x.ndone[1], 1);
}

static void
test_forward_bulk_tcp(void)
{
	bulk(0);
}

static void
test_forward_bulk_unix(void)
{
	bulk(1);
}

/*
 * rb reads nothing: A stops being read, B's buffer (the pipe) stays
 * small, B's protocol hears pause_writing; once rb reads, everything
 * arrives and resume_writing comes.
 */
static void
test_forward_backpressure(void)
{
	static unsigned char buf[65536];
	struct fx x;
	uint64_t sent = 0, got = 0;
	size_t i, maxbuf = 0, sz;
	double end;
	ssize_t n;
	int bad = 0;

	fx_open(&x, 0);
	fx_forward(&x);
	CU_ASSERT(fcntl(x.ra, F_SETFL, O_NONBLOCK) == 0);
	CU_ASSERT(fcntl(x.rb, F_SETFL, O_NONBLOCK) == 0);
	end = now_mono() + 0.5;
	while (now_mono() < end) {
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(sent + i);
		if ((n = write(x.ra, buf, sizeof(buf))) > 0)
			sent += (uint64_t)n;
		run_for(x.loop, 0.002);
		sz = aloop_transport_get_write_buffer_size(x.b->t);
		if (sz > maxbuf)
			maxbuf = sz;
	}
	/* The kernel's buffers hold most of it; the process, one pipe. */
	CU_ASSERT(sent > 0);
	CU_ASSERT(maxbuf <= 1024 * 1024);
	CU_ASSERT(x.b->pauses >= 1);
	CU_ASSERT(counter(x.a->t, "bytes_forwarded") < sent);
	end = now_mono() + 10.0;
	while (got < sent && now_mono() < end) {
		while ((n = read(x.rb, buf, sizeof(buf))) > 0) {
			for (i = 0; i < (size_t)n; i++)
				if (buf[i] != pattern(got + i))
					bad++;
			got += (uint64_t)n;
		}
		run_for(x.loop, 0.002);
	}
	CU_ASSERT_EQUAL(got, sent);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(x.b->resumes >= 1);
	CU_ASSERT_EQUAL(counter(x.b->t, "bytes_written"), sent);
	fx_close(&x);
}

/* Read what @fd has within @secs into @buf; the bytes, 0 at EOF. */
static ssize_t
read_some(struct fx *x, int fd, char *buf, size_t size, double secs)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	double end = now_mono() + secs;

	while (now_mono() < end) {
		run_for(x->loop, 0.002);
		if (poll(&pfd, 1, 0) == 1)
			return read(fd, buf, size);
	}
	return -ETIMEDOUT;
}

/* Each side's EOF comes after its bytes; the other direction goes on. */
static void
test_forward_half_close(void)
{
	struct fx x;
	char buf[64];

	fx_open(&x, 0);
	x.a->on_eof = pass_eof;
	x.b->on_eof = pass_eof;
	fx_forward(&x);
	CU_ASSERT_EQUAL(write(x.ra, "ping", 4), 4);
	CU_ASSERT_EQUAL(shutdown(x.ra, SHUT_WR), 0);
	CU_ASSERT_EQUAL(read_some(&x, x.rb, buf, sizeof(buf), 5.0), 4);
	CU_ASSERT_EQUAL(memcmp(buf, "ping", 4), 0);
	CU_ASSERT_EQUAL(read_some(&x, x.rb, buf, sizeof(buf), 5.0), 0);
	CU_ASSERT_EQUAL(x.a->eofs, 1);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.ndone[0] == 1, 2.0));
	CU_ASSERT_EQUAL(x.status[0], 0);
	/* The other way is still open. */
	CU_ASSERT_EQUAL(write(x.rb, "pong", 4), 4);
	CU_ASSERT_EQUAL(read_some(&x, x.ra, buf, sizeof(buf), 5.0), 4);
	CU_ASSERT_EQUAL(memcmp(buf, "pong", 4), 0);
	CU_ASSERT_EQUAL(shutdown(x.rb, SHUT_WR), 0);
	CU_ASSERT_EQUAL(read_some(&x, x.ra, buf, sizeof(buf), 5.0), 0);
	CU_ASSERT_EQUAL(x.b->eofs, 1);
	CU_ASSERT_EQUAL(x.a->nrecv + x.b->nrecv, 0);
	CU_ASSERT_EQUAL(counter(x.b->t, "bytes_forwarded"), 4);
	fx_close(&x);
}

/*
 * An abort of the destination resets its peer and ends the forward; the
 * source then reads for its protocol again.
 */
static void
test_forward_abort(void)
{
	struct fx x;
	char buf[64];
	ssize_t n;

	fx_open(&x, 0);
	fx_forward(&x);
	CU_ASSERT_EQUAL(write(x.ra, "one", 3), 3);
	CU_ASSERT_EQUAL(read_some(&x, x.rb, buf, sizeof(buf), 5.0), 3);
	aloop_transport_abort(x.b->t);
	/* A forward needs both ends alive. */
	CU_ASSERT_EQUAL(aloop_transport_forward(x.a->t, x.b->t, NULL, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.b->lost && x.ndone[0] == 1 &&
	    x.ndone[1] == 1, 5.0));
	CU_ASSERT_EQUAL(x.status[0], -EPIPE);
	n = read_some(&x, x.rb, buf, sizeof(buf), 5.0);
	CU_ASSERT(n == -1 && errno == ECONNRESET);
	CU_ASSERT_EQUAL(write(x.ra, "two", 3), 3);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.a->nrecv == 3, 5.0));
	CU_ASSERT_EQUAL(memcmp(x.a->data, "two", 3), 0);
	fx_close(&x);
}

/* What forward refuses, changing nothing. */
static void
test_forward_refused(void)
{
	struct aloop_connection_options o;
	struct aloop_future *f = NULL;
	struct fx x;

	fx_open(&x, 1);
	CU_ASSERT_EQUAL(aloop_transport_forward(x.a->t, x.a->t, NULL, NULL),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_forward(x.a->t, x.b->t, NULL, NULL),
	    0);
	CU_ASSERT_EQUAL(aloop_transport_forward(x.a->t, x.b->t, NULL, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_transport_write(x.b->t, "x", 1), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_transport_write(x.a->t, "y", 1), 0);
	/* Neither side can be upgraded while the forward owns its bytes. */
	aloop_connection_options_init(&o);
	o.ssl = ALOOP_TLS_DEFAULT;
	CU_ASSERT_EQUAL(aloop_start_tls(x.a->t, 0, &o, &f), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_start_tls(x.b->t, 0, &o, &f), ALOOP_ESTATE);
	CU_ASSERT_PTR_NULL(f);
	fx_close(&x);
}

/*
 * No descriptor left for a pipe (EMFILE): the forward copies through
 * user space instead, and every byte still arrives.
 */
static void
test_forward_emfile(void)
{
	struct rlimit old, low;
	struct fx x;
	struct peer w, r;
	int spare[256], nspare = 0, fd;

	fx_open(&x, 0);
	x.a->on_eof = pass_eof;
	fx_forward(&x);
	CU_ASSERT_FATAL(getrlimit(RLIMIT_NOFILE, &old) == 0);
	/* Fill every descriptor below a low limit. */
	while (nspare < 256 && (fd = dup(0)) >= 0)
		if (fd < 200)
			spare[nspare++] = fd;
		else {
			close(fd);
			break;
		}
	low = old;
	low.rlim_cur = 200;
	CU_ASSERT_FATAL(setrlimit(RLIMIT_NOFILE, &low) == 0);
	while (nspare < 256 && (fd = dup(0)) >= 0)
		spare[nspare++] = fd;
	CU_ASSERT(dup(0) == -1 && errno == EMFILE);
	peer_start(&r, x.rb, reader_main, 0);
	peer_start(&w, x.ra, writer_main, 4 * 1024 * 1024);
	CU_ASSERT(WAIT_UNTIL(x.loop, atomic_load(&r.finished), 30.0));
	pthread_join(w.th, NULL);
	pthread_join(r.th, NULL);
	while (nspare > 0)
		close(spare[--nspare]);
	CU_ASSERT(setrlimit(RLIMIT_NOFILE, &old) == 0);
	CU_ASSERT_EQUAL(r.len, 4 * 1024 * 1024);
	CU_ASSERT_EQUAL(r.bad, 0);
	CU_ASSERT_EQUAL(x.a->nrecv, 0);
	CU_ASSERT_EQUAL(counter(x.a->t, "bytes_forwarded"), 4 * 1024 * 1024);
	CU_ASSERT_EQUAL(counter(x.a->t, "bytes_spliced"), 0);
	fx_close(&x);
}

/*
 * Read @len pattern bytes from @fd (blocking, up to 5 s, running @loop
 * meanwhile) starting at stream offset @off; how many were out of place,
 * or -1 if they did not all come.
 */
static int
expect(struct aloop_loop *loop, int fd, uint64_t off, size_t len)
{
	unsigned char buf[65536];
	double end = now_mono() + 5.0;
	size_t got = 0, i;
	ssize_t n;
	int bad = 0;

	while (got < len && now_mono() < end) {
		n = recv(fd, buf, len - got < sizeof(buf) ? len - got :
		    sizeof(buf), MSG_DONTWAIT);
		if (n <= 0) {
			run_for(loop, 0.001);
			continue;
		}
		for (i = 0; i < (size_t)n; i++)
			if (buf[i] != pattern(off + got + i))
				bad++;
		got += (size_t)n;
	}
	return got == len ? bad : -1;
}

/* Send @len pattern bytes from stream offset @off on @fd, all of them. */
static void
send_all(struct aloop_loop *loop, int fd, uint64_t off, size_t len)
{
	unsigned char buf[65536];
	size_t done = 0, n, i;
	ssize_t k;

	while (done < len) {
		n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = pattern(off + done + i);
		if ((k = send(fd, buf, n, MSG_DONTWAIT)) > 0)
			done += (size_t)k;
		else
			run_for(loop, 0.001);
	}
}

/*
 * Request and answer of 1 KiB at a time are copied, never spliced, and
 * hold no pipe; then a bulk transfer is spliced, and small messages
 * after it are copied again: every byte in order across the switches.
 */
static void
test_forward_small_copied(void)
{
	struct fx x;
	struct peer w;
	uint64_t off = 0, spliced;
	int i, fds, round, rc;

	fx_open(&x, 0);
	fx_forward(&x);
	run_for(x.loop, 0.01);
	fds = count_fds();
	for (round = 0; round < 2; round++) {
		for (i = 0; i < 100; i++) {
			send_all(x.loop, x.ra, off, 1024);
			CU_ASSERT_EQUAL((rc = expect(x.loop, x.rb, off, 1024)),
			    0);
			if (rc != 0)
				break;
			off += 1024;
			/* No pipe was ever taken (later the pool keeps the
			 * bulk's). */
			if (round == 0)
				CU_ASSERT_EQUAL(count_fds(), fds);
		}
		spliced = counter(x.a->t, "bytes_spliced");
		if (round == 0)
			CU_ASSERT_EQUAL(spliced, 0);
		/* Bulk: 8 MiB sent by a thread while this one reads. */
		peer_start_at(&w, x.ra, writer_main, 8u << 20, off, 0);
		CU_ASSERT_EQUAL(expect(x.loop, x.rb, off, 8u << 20), 0);
		pthread_join(w.th, NULL);
		off += 8u << 20;
		CU_ASSERT(counter(x.a->t, "bytes_spliced") - spliced >=
		    (8u << 20) - (8u << 20) / 8);
	}
	/* The last small round was copied again. */
	spliced = counter(x.a->t, "bytes_spliced");
	for (i = 0; i < 20; i++) {
		send_all(x.loop, x.ra, off, 1024);
		CU_ASSERT_EQUAL(expect(x.loop, x.rb, off, 1024), 0);
		off += 1024;
	}
	CU_ASSERT(counter(x.a->t, "bytes_spliced") - spliced <= 1024);
	CU_ASSERT_EQUAL(counter(x.a->t, "bytes_forwarded"), off);
	CU_ASSERT_EQUAL(counter(x.b->t, "bytes_written"), off);
	fx_close(&x);
}

/* ------------------------------------------------ read until drained */

/* What the drain cases' protocol does in data_received. */
#define DRAIN_PAUSE	0
#define DRAIN_ABORT	1
#define DRAIN_CLOSE	2

struct drain {
	struct aloop_transport	*t;
	int			 mode, calls, lost;
	size_t			 n;
};

static void
drain_made(struct aloop_transport *t, void *state)
{
	((struct drain *)state)->t = t;
}

static void
drain_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct drain *d = state;

	(void)data;
	d->calls++;
	d->n += len;
	if (d->mode == DRAIN_PAUSE)
		aloop_transport_pause_reading(t);
	else if (d->mode == DRAIN_ABORT)
		aloop_transport_abort(t);
	else
		aloop_transport_close(t);
}

static void
drain_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	(void)t;
	(void)err;
	((struct drain *)state)->lost++;
}

static const struct aloop_protocol drain_proto = {
	.connection_made = drain_made,
	.data_received = drain_data,
	.connection_lost = drain_lost,
};

static int
drain_factory(void *arg, void **state)
{
	*state = arg;
	return 0;
}

/*
 * A megabyte waits, yet a protocol that pauses, aborts or closes in
 * data_received gets no further call from the same readiness event
 * (ASan watches the abort and the close).
 */
static void
drain_case(int mode)
{
	static unsigned char big[1024 * 1024];
	struct aloop_future *fut = NULL;
	struct aloop_loop *loop;
	struct drain d = { .mode = mode };
	int p[2], sz = 4 * 1024 * 1024, fds = count_fds(), i;

	loop = test_loop();
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    p) == 0);
	(void)setsockopt(p[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(p[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	CU_ASSERT(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
	memset(big, 'q', sizeof(big));
	CU_ASSERT(write(p[0], big, sizeof(big)) > 256 * 1024);
	CU_ASSERT_EQUAL_FATAL(aloop_connect_accepted_socket(loop,
	    &drain_proto, drain_factory, &d, p[1], NULL, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), 0);
	aloop_future_release(fut);
	run_for(loop, 0.05);
	CU_ASSERT_EQUAL(d.calls, 1);
	CU_ASSERT(d.n <= 128 * 1024);
	if (mode == DRAIN_PAUSE) {
		/* Each resume: one read, then the pause holds again. */
		for (i = 2; i <= 4; i++) {
			aloop_transport_resume_reading(d.t);
			run_for(loop, 0.02);
			CU_ASSERT_EQUAL(d.calls, i);
		}
		aloop_transport_close(d.t);
	}
	CU_ASSERT(WAIT_UNTIL(loop, d.lost == 1, 5.0));
	close(p[0]);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_read_drain_pause(void)
{
	drain_case(DRAIN_PAUSE);
}

static void
test_read_drain_abort(void)
{
	drain_case(DRAIN_ABORT);
}

static void
test_read_drain_close(void)
{
	drain_case(DRAIN_CLOSE);
}

/*
 * Closing the destination while its peer reads nothing: the close
 * flushes what the pipe holds (it is the destination's buffer), and the
 * peer gets every byte forwarded, then the EOF.
 */
static void
test_forward_close_flushes_pipe(void)
{
	static unsigned char buf[65536];
	struct fx x;
	uint64_t sent = 0, got = 0, fwd;
	size_t i;
	double end;
	ssize_t n;
	int bad = 0, eof = 0;

	fx_open(&x, 0);
	fx_forward(&x);
	CU_ASSERT(fcntl(x.ra, F_SETFL, O_NONBLOCK) == 0);
	CU_ASSERT(fcntl(x.rb, F_SETFL, O_NONBLOCK) == 0);
	end = now_mono() + 0.3;
	while (now_mono() < end) {
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(sent + i);
		if ((n = write(x.ra, buf, sizeof(buf))) > 0)
			sent += (uint64_t)n;
		run_for(x.loop, 0.002);
	}
	CU_ASSERT(aloop_transport_get_write_buffer_size(x.b->t) > 0);
	fwd = counter(x.b->t, "bytes_written");
	aloop_transport_close(x.b->t);
	end = now_mono() + 10.0;
	while (!eof && now_mono() < end) {
		while ((n = read(x.rb, buf, sizeof(buf))) > 0) {
			for (i = 0; i < (size_t)n; i++)
				if (buf[i] != pattern(got + i))
					bad++;
			got += (uint64_t)n;
		}
		if (n == 0)
			eof = 1;
		run_for(x.loop, 0.002);
	}
	CU_ASSERT(eof);
	CU_ASSERT_EQUAL(got, fwd);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.b->lost && x.ndone[0] == 1, 5.0));
	CU_ASSERT_EQUAL(x.b->lost_code, 0);
	CU_ASSERT_EQUAL(x.status[0], -EPIPE);
	fx_close(&x);
}

/*
 * 64 KiB requests, each answered with 64 KiB: an exchange, not a stream,
 * so after the first request nothing more is spliced either way.
 */
static void
test_forward_exchange_copied(void)
{
	const size_t msg = 64 * 1024;
	struct fx x;
	uint64_t off = 0;
	int i;

	fx_open(&x, 0);
	fx_forward(&x);
	for (i = 0; i < 20; i++) {
		send_all(x.loop, x.ra, off, msg);
		CU_ASSERT_EQUAL(expect(x.loop, x.rb, off, msg), 0);
		send_all(x.loop, x.rb, off, msg);
		CU_ASSERT_EQUAL(expect(x.loop, x.ra, off, msg), 0);
		off += msg;
	}
	CU_ASSERT(counter(x.a->t, "bytes_spliced") <= msg);
	CU_ASSERT(counter(x.b->t, "bytes_spliced") <= msg);
	CU_ASSERT_EQUAL(counter(x.a->t, "bytes_forwarded"), off);
	CU_ASSERT_EQUAL(counter(x.b->t, "bytes_forwarded"), off);
	fx_close(&x);
}

/*
 * The source's EOF is read while the pipe still holds bytes for a slow
 * destination, which is then aborted: the forward ends with -EPIPE and
 * the source's protocol still hears its EOF.
 */
static void
test_forward_eof_then_destination_aborted(void)
{
	struct fx x;
	int small = 4096;
	const int *bfd;

	fx_open(&x, 0);
	bfd = aloop_transport_get_extra_info(x.b->t, "socket", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bfd);
	CU_ASSERT(setsockopt(*bfd, SOL_SOCKET, SO_SNDBUF, &small,
	    sizeof(small)) == 0);
	CU_ASSERT(setsockopt(x.rb, SOL_SOCKET, SO_RCVBUF, &small,
	    sizeof(small)) == 0);
	fx_forward(&x);
	send_all(x.loop, x.ra, 0, 384 * 1024);
	CU_ASSERT(shutdown(x.ra, SHUT_WR) == 0);
	/* rb reads nothing: the forward reads the EOF with bytes pending. */
	run_for(x.loop, 0.2);
	CU_ASSERT(aloop_transport_get_write_buffer_size(x.b->t) > 0);
	CU_ASSERT_EQUAL(x.a->eofs, 0);
	aloop_transport_abort(x.b->t);
	CU_ASSERT(WAIT_UNTIL(x.loop, x.ndone[0] == 1 && x.a->eofs == 1, 5.0));
	CU_ASSERT_EQUAL(x.status[0], -EPIPE);
	fx_close(&x);
}

static const struct test_case cases[] = {
	TEST(test_forward_bulk_tcp),
	TEST(test_forward_bulk_unix),
	TEST(test_forward_backpressure),
	TEST(test_forward_half_close),
	TEST(test_forward_abort),
	TEST(test_forward_close_flushes_pipe),
	TEST(test_forward_refused),
	TEST(test_forward_emfile),
	TEST(test_forward_small_copied),
	TEST(test_forward_eof_then_destination_aborted),
	TEST(test_forward_exchange_copied),
	TEST(test_read_drain_pause),
	TEST(test_read_drain_abort),
	TEST(test_read_drain_close),
};

TEST_MAIN("forward", cases)
