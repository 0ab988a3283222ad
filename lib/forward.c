/*
 * aloop_transport_forward: what one plain stream socket receives goes to
 * another without passing through a protocol.  Bulk is spliced inside the
 * kernel through a pipe, never copied through user space; small messages
 * are read and written through the loop's read buffer, which costs fewer
 * and cheaper syscalls than splicing them (see FORWARD_BULK).  The pipes
 * come from a small pool per loop and go back to it whenever they are
 * empty, so idle forwards hold no descriptor; without a pipe the bytes
 * are copied.
 *
 * The stream transport (stream.c) hands its readiness events over while
 * a forward runs: the source's read event pumps the forward instead of
 * calling data_received, and the destination's write event, once its
 * own buffer is empty, empties the pipe.  The pipe's bytes count as the
 * destination's buffered output, so close, write_eof, the flow-control
 * edges and a close's timeout see them as they see the buffer.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/log.h>
#include <aloop/transport.h>

#include "loop-int.h"
#include "transport-int.h"

/*
 * At most this much per readiness event, like the stream's read budget,
 * so that one fast peer cannot starve the loop; and one splice asks for
 * up to this much (the pipe's capacity limits it).
 */
#define FORWARD_TURN		(1024 * 1024)

/*
 * A pipe's capacity.  The default 64 KiB takes 16 pages, so a splice
 * moves at most 64 KiB and a gigabyte costs 32,768 of them; 1 MiB
 * quarters the CPU per byte.  What it costs: a destination that stops
 * reading pins up to this much of the source's received pages in the
 * kernel (beside the socket buffers, which autotune to several MiB
 * anyway), and each pipe counts against the user's pipe quota
 * (fs.pipe-user-pages-soft, 64 MiB by default); past the quota the
 * kernel keeps the default size and forwarding goes on, slower.
 */
#define FORWARD_PIPE_SIZE	(1024 * 1024)

/*
 * Empty pipes a loop keeps, two descriptors each, and how long it keeps
 * them unused: long enough to serve a burst of transfers without a
 * pipe2() each, short enough that an idle daemon holds none.
 */
#define FORWARD_POOL_MAX	8
#define FORWARD_POOL_IDLE	2.0

/*
 * When to splice.  A splice takes two syscalls per chunk, in and out of
 * the pipe, each dearer than a read or a write of a few KiB: for small
 * messages copying is cheaper (a 1 KiB echo through a proxy costs about
 * a fifth more CPU spliced), for a stream splicing is far cheaper (a
 * third of the CPU per GiB).  Large requests and answers are copied too:
 * spliced, 64 KiB each way at a time stalled a few ms now and then over
 * loopback (p99 4-6 ms, against 2-3 ms copied), and HAProxy's splice
 * showed the same.  So a forward copies until one read brings
 * FORWARD_BULK bytes or more while the other direction stayed silent
 * since this one's last read (a stream, not an exchange), splices from
 * then on, and copies again once a readiness event brings less than
 * FORWARD_SMALL, or the other direction moved, with the pipe empty.
 * The gap between the two sizes keeps a stream near one edge from
 * switching on every event.  The other direction counts when it is a
 * forward too (its bytes_forwarded).
 */
#define FORWARD_BULK		(32 * 1024)
#define FORWARD_SMALL		(8 * 1024)

/* After pipe2() failed (EMFILE, ENFILE), copy this long before trying
 * again, rather than paying a failing syscall on every event. */
#define FORWARD_PIPE_RETRY	1.0

struct forward_pipe {
	int			 fd[2];		/* read end, write end */
	size_t			 size;		/* capacity */
};

struct forward_pool {
	struct aloop__resource	 res;
	struct aloop_loop	*loop;
	aloop_handle_t		 trim;		/* closes them once idle */
	double			 used;		/* loop time of the last use */
	int			 n;
	struct forward_pipe	 pipes[FORWARD_POOL_MAX];
};

/* One direction; holds a reference on both transports until done ran. */
struct aloop__forward {
	struct aloop__resource	 res;
	struct aloop_loop	*loop;
	struct aloop_transport	*src, *dst;
	aloop_forward_done_fn	 done;
	void			*arg;
	aloop_handle_t		 done_handle;
	struct forward_pipe	 pipe;		/* fd -1: none held */
	size_t			 inpipe;	/* bytes in it */
	double			 pipe_retry;	/* no pipe2() before this */
	uint64_t		 rev_seen;	/* dst's bytes_forwarded, last read */
	int			 status;
	unsigned		 splicing:1;	/* bulk: through the pipe */
	unsigned		 src_eof:1;	/* the source read 0 */
	unsigned		 src_gone:1;	/* the source was torn down */
	unsigned		 blocked:1;	/* the destination takes nothing */
	unsigned		 ended:1;
};

/* ------------------------------------------------------------- pool */

static void
pool_empty(struct forward_pool *pp)
{
	while (pp->n > 0) {
		pp->n--;
		(void)close(pp->pipes[pp->n].fd[0]);
		(void)close(pp->pipes[pp->n].fd[1]);
	}
}

static void
pool_on_loop_close(struct aloop__resource *res)
{
	struct forward_pool *pp = (struct forward_pool *)(void *)
	    ((char *)res - offsetof(struct forward_pool, res));

	/* The loop discards the trim timer itself. */
	pool_empty(pp);
	*aloop__loop_pipes_slot(pp->loop) = NULL;
	free(pp);
}

static void
pool_trim(void *arg)
{
	struct forward_pool *pp = arg;
	double idle = aloop_time(pp->loop) - pp->used;

	pp->trim = ALOOP_HANDLE_NONE;
	if (idle >= FORWARD_POOL_IDLE)
		pool_empty(pp);
	else if (aloop_call_later(pp->loop, FORWARD_POOL_IDLE - idle,
	    pool_trim, pp, &pp->trim) != 0) {
		pp->trim = ALOOP_HANDLE_NONE;
		pool_empty(pp);
	}
}

static int
pipe_get(struct aloop_loop *loop, struct forward_pipe *fp)
{
	struct forward_pool *pp = *aloop__loop_pipes_slot(loop);
	int size;

	if (pp != NULL && pp->n > 0) {
		pp->used = aloop_time(loop);
		*fp = pp->pipes[--pp->n];
		return 0;
	}
	if (pipe2(fp->fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		fp->fd[0] = fp->fd[1] = -1;
		return -errno;
	}
	/* Best effort: past the user's pipe quota the default stays. */
	if ((size = fcntl(fp->fd[1], F_SETPIPE_SZ, FORWARD_PIPE_SIZE)) == -1)
		size = fcntl(fp->fd[1], F_GETPIPE_SZ);
	fp->size = size > 0 ? (size_t)size : 65536;
	return 0;
}

/* Give back @fp: to the pool when empty and there is room, else close. */
static void
pipe_put(struct aloop_loop *loop, struct forward_pipe *fp, int empty)
{
	struct forward_pool *pp;
	void **slot;

	if (fp->fd[0] < 0)
		return;
	if (empty && !aloop_is_closed(loop)) {
		slot = aloop__loop_pipes_slot(loop);
		if ((pp = *slot) == NULL &&
		    (pp = calloc(1, sizeof(*pp))) != NULL) {
			pp->loop = loop;
			pp->trim = ALOOP_HANDLE_NONE;
			pp->res.on_loop_close = pool_on_loop_close;
			aloop__loop_track(loop, &pp->res);
			*slot = pp;
		}
		if (pp != NULL && pp->n < FORWARD_POOL_MAX) {
			pp->pipes[pp->n++] = *fp;
			fp->fd[0] = fp->fd[1] = -1;
			pp->used = aloop_time(loop);
			if (pp->trim == ALOOP_HANDLE_NONE &&
			    aloop_call_later(loop, FORWARD_POOL_IDLE, pool_trim,
			    pp, &pp->trim) != 0)
				pp->trim = ALOOP_HANDLE_NONE;
			return;
		}
	}
	(void)close(fp->fd[0]);
	(void)close(fp->fd[1]);
	fp->fd[0] = fp->fd[1] = -1;
}

/* ---------------------------------------------------------- the end */

static void
forward_free(struct aloop__forward *f)
{
	pipe_put(f->loop, &f->pipe, 0);
	aloop__transport_unref(f->src);
	aloop__transport_unref(f->dst);
	free(f);
}

static void
forward_done_cb(void *arg)
{
	struct aloop__forward *f = arg;

	f->done_handle = ALOOP_HANDLE_NONE;
	aloop__loop_untrack(f->loop, &f->res);
	if (f->done != NULL)
		f->done(f->src, f->dst, f->arg, f->status);
	forward_free(f);
}

static void
forward_on_loop_close(struct aloop__resource *res)
{
	struct aloop__forward *f = (struct aloop__forward *)(void *)
	    ((char *)res - offsetof(struct aloop__forward, res));

	/* The loop discards the pending done call itself. */
	if (f->src->fwd_in == f)
		f->src->fwd_in = NULL;
	if (f->dst->fwd_out == f)
		f->dst->fwd_out = NULL;
	forward_free(f);
}

/*
 * Let go of both transports and report @status on a later turn.  What
 * the pipe still holds is dropped.  Calls no user code.
 */
static void
forward_end(struct aloop__forward *f, int status)
{
	if (f->ended)
		return;
	f->ended = 1;
	f->status = status;
	if (f->src->fwd_in == f)
		f->src->fwd_in = NULL;
	if (f->dst->fwd_out == f)
		f->dst->fwd_out = NULL;
	pipe_put(f->loop, &f->pipe, f->inpipe == 0);
	f->inpipe = 0;
	/*
	 * The source reads for its protocol again, unless it may not.  An
	 * EOF read already is the caller's to report when the forward ends
	 * well (settle); when the destination failed first, the next read
	 * finds it again and reports it.
	 */
	if (!f->src_gone && (!f->src_eof || status != 0) &&
	    aloop__stream_fd(f->src) >= 0 &&
	    !(f->src->flags & ALOOP__T_CLOSING))
		aloop__stream_want_read(f->src,
		    !(f->src->flags & ALOOP__T_PAUSED_READ));
	/*
	 * Without memory for the call, done is not called and the forward
	 * stays tracked until the loop closes: callers up the stack still
	 * look at f->ended.
	 */
	if (aloop_call_soon(f->loop, forward_done_cb, f,
	    &f->done_handle) != 0)
		f->done_handle = ALOOP_HANDLE_NONE;
}

/* ------------------------------------------------------------- pump */

/* Whether the source may be read: the forward's own back-pressure aside. */
static int
forward_can_read(const struct aloop__forward *f)
{
	return !f->src_eof && !f->src_gone &&
	    !(f->src->flags & (ALOOP__T_CLOSING | ALOOP__T_PAUSED_READ)) &&
	    !(f->dst->flags & (ALOOP__T_CLOSING | ALOOP__T_EOF_WRITTEN));
}

/* A read error of the source ends it as its own read would have. */
static void
forward_read_failed(struct aloop__forward *f, int err)
{
	if (err == -ECONNRESET)
		aloop__transport_drop(f->src, err, NULL);
	else
		aloop__transport_fatal(f->src, err,
		    "Fatal read error on socket transport");
}

/* Empty the pipe into the destination: whether anything moved. */
static int
forward_out(struct aloop__forward *f)
{
	int fd = aloop__stream_fd(f->dst);
	ssize_t n;

	if (f->inpipe == 0 || fd < 0 || aloop__stream_buffered(f->dst) > 0)
		return 0;
	do
		n = splice(f->pipe.fd[0], NULL, fd, NULL, f->inpipe,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n == -1 && errno == EINTR);
	if (n > 0) {
		f->inpipe -= (size_t)n;
		f->blocked = 0;
		return 1;
	}
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	/* Ends the destination, and the forward with it (forward_gone). */
	aloop__transport_fatal(f->dst, n == 0 ? -EPIPE : -errno,
	    "Fatal write error on socket transport");
	return 0;
}

/*
 * Read and write through user space, under the destination's high-water
 * mark: bytes read, or 0.  *more: whether the source may hold more (the
 * read filled the buffer).
 */
static size_t
forward_copy(struct aloop__forward *f, int fd, int *more)
{
	struct iovec iov;
	unsigned char *buf;
	ssize_t n;
	int rc;

	if (aloop__stream_buffered(f->dst) > f->dst->high) {
		f->blocked = 1;
		return 0;
	}
	if ((buf = aloop__read_buffer()) == NULL) {
		/* As the stream's own read: the event would fire forever. */
		forward_read_failed(f, ALOOP_ENOMEM);
		return 0;
	}
	/* Both ends are sockets (see aloop_transport_forward): recv() is
	 * the shorter way through the kernel than read(). */
	do
		n = recv(fd, buf, ALOOP__READ_MAX, 0);
	while (n == -1 && errno == EINTR);
	if (n == 0)
		f->src_eof = 1;
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
		forward_read_failed(f, -errno);
	if (n <= 0)
		return 0;
	*more = n == ALOOP__READ_MAX;
	/* A stream: splice from now on, unless pipes ran out a moment ago. */
	if (n >= FORWARD_BULK && f->dst->bytes_forwarded == f->rev_seen &&
	    (f->pipe_retry == 0 || aloop_time(f->loop) >= f->pipe_retry)) {
		f->pipe_retry = 0;
		f->splicing = 1;
	}
	f->src->bytes_forwarded += (uint64_t)n;
	f->dst->bytes_written += (uint64_t)n;
	iov.iov_base = buf;
	iov.iov_len = (size_t)n;
	if ((rc = f->dst->ops->write(f->dst, &iov, 1)) != 0)
		aloop__transport_fatal(f->dst, rc,
		    "Fatal write error on socket transport");
	else
		aloop__transport_pause_check(f->dst);
	return (size_t)n;
}

/*
 * Move what the source holds: into the pipe when splicing, else by
 * copying.  Bytes moved, or 0; *more as for forward_copy.
 */
static size_t
forward_in(struct aloop__forward *f, int *more)
{
	int fd = aloop__stream_fd(f->src);
	size_t room, used;
	ssize_t n;

	*more = 0;
	if (fd < 0)
		return 0;
	if (!f->splicing)
		return forward_copy(f, fd, more);
	if (f->pipe.fd[0] < 0 && pipe_get(f->loop, &f->pipe) != 0) {
		f->splicing = 0;
		f->pipe_retry = aloop_time(f->loop) + FORWARD_PIPE_RETRY;
		return forward_copy(f, fd, more);
	}
	/*
	 * What the destination still buffers from copying counts against
	 * the pipe's capacity, so the two together stay within it.
	 */
	used = f->inpipe + aloop__stream_buffered(f->dst);
	if (used >= f->pipe.size) {
		f->blocked = 1;
		return 0;
	}
	room = f->pipe.size - used;
	if (room > FORWARD_TURN)
		room = FORWARD_TURN;
	do
		n = splice(fd, NULL, f->pipe.fd[1], NULL, room,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n == -1 && errno == EINTR);
	if (n > 0) {
		/* Less than there was room for: the socket is empty (or
		 * the pipe ran out of slots first; then the next event
		 * comes at once). */
		*more = (size_t)n >= room;
		f->inpipe += (size_t)n;
		f->src->bytes_forwarded += (uint64_t)n;
		f->src->bytes_spliced += (uint64_t)n;
		f->dst->bytes_written += (uint64_t)n;
		return (size_t)n;
	}
	if (n == 0)
		f->src_eof = 1;
	else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		/*
		 * The socket is empty, or the pipe is full: the same error.
		 * With bytes in the pipe the destination did not take them,
		 * so wait for it either way.
		 */
		if (f->inpipe > 0)
			f->blocked = 1;
	} else
		forward_read_failed(f, -errno);
	return 0;
}

/*
 * After a pump: who waits for what, the pause edge, and the end.  May
 * call the destination's pause_writing and the source's eof_received.
 */
static void
forward_settle(struct aloop__forward *f)
{
	struct aloop_transport *src = f->src, *dst = f->dst;
	int stuck, status;

	stuck = f->blocked;
	if (!f->src_gone && aloop__stream_fd(src) >= 0 &&
	    !(src->flags & ALOOP__T_CLOSING))
		aloop__stream_want_read(src, forward_can_read(f) && !stuck);
	if (aloop__stream_fd(dst) >= 0)
		aloop__stream_want_write(dst, f->inpipe > 0 ||
		    aloop__stream_buffered(dst) > 0);
	if (stuck && f->inpipe > 0) {
		aloop__transport_pause_edge(dst);
		if (f->ended)
			return;
	}
	if (f->inpipe > 0)
		return;
	if (f->src_eof) {
		/* Everything before the EOF is out: now the protocol hears. */
		forward_end(f, 0);
		aloop__stream_eof(src);
		aloop__stream_output_drained(dst);
		return;
	}
	if (f->src_gone || (src->flags & ALOOP__T_CLOSING) ||
	    (dst->flags & (ALOOP__T_CLOSING | ALOOP__T_EOF_WRITTEN))) {
		status = (dst->flags & (ALOOP__T_CLOSING |
		    ALOOP__T_EOF_WRITTEN)) ? -EPIPE : 0;
		forward_end(f, status);
		aloop__stream_output_drained(dst);
		return;
	}
	/* Idle: the pipe goes back to the pool until bytes come again. */
	if (!f->blocked)
		pipe_put(f->loop, &f->pipe, 1);
}

static void
forward_pump(struct aloop__forward *f, int readable)
{
	size_t turn = 0, n;
	int more, reading = readable, answered;

	for (;;) {
		if (f->inpipe > 0 && forward_out(f)) {
			aloop__transport_resume_check(f->dst);
			if (f->ended)
				return;
		}
		if (f->ended)
			return;
		if (!readable || turn >= FORWARD_TURN || !forward_can_read(f))
			break;
		if (f->blocked && f->inpipe > 0)
			break;
		n = forward_in(f, &more);
		if (f->ended)
			return;
		turn += n;
		if (!more) {
			/* Drained, at EOF, failed or stuck: push out what
			 * came in, then stop. */
			readable = 0;
			continue;
		}
	}
	/* Small again, or an exchange: copy, and let the pipe go back. */
	if (reading) {
		answered = f->dst->bytes_forwarded != f->rev_seen;
		f->rev_seen = f->dst->bytes_forwarded;
		if (f->splicing && f->inpipe == 0 &&
		    (turn < FORWARD_SMALL || answered)) {
			f->splicing = 0;
			pipe_put(f->loop, &f->pipe, 1);
		}
	}
	forward_settle(f);
}

/* ------------------------------------------------------ for stream.c */

void
aloop__forward_readable(struct aloop_transport *t)
{
	struct aloop__forward *f = t->fwd_in;

	f->blocked = 0;
	forward_pump(f, 1);
}

void
aloop__forward_writable(struct aloop_transport *t)
{
	struct aloop__forward *f = t->fwd_out;
	int was = f->blocked;

	/* Read at once when the destination was what held the source. */
	f->blocked = 0;
	forward_pump(f, was);
}

size_t
aloop__forward_pending(const struct aloop_transport *t)
{
	return t->fwd_out != NULL ? t->fwd_out->inpipe : 0;
}

void
aloop__forward_gone(struct aloop_transport *t)
{
	struct aloop__forward *f;

	/* An aborted destination: what the pipe holds is dropped. */
	if ((f = t->fwd_out) != NULL)
		forward_end(f, -EPIPE);
	/*
	 * A source torn down: what it sent before still goes, on the
	 * destination's write events, and the forward ends once it did.
	 */
	if ((f = t->fwd_in) != NULL) {
		t->fwd_in = NULL;
		f->src_gone = 1;
		if (f->inpipe == 0)
			forward_end(f, 0);
		else if (aloop__stream_fd(f->dst) >= 0)
			aloop__stream_want_write(f->dst, 1);
	}
}

/* ------------------------------------------------------------ public */

int
aloop_transport_forward(struct aloop_transport *src,
    struct aloop_transport *dst, aloop_forward_done_fn done, void *arg)
{
	struct aloop__forward *f;

	if (src == NULL || dst == NULL || src == dst)
		return ALOOP_EINVAL;
	if (src->loop != dst->loop)
		return ALOOP_EINVAL;
	if (aloop__stream_fd(src) < 0 || aloop__stream_fd(dst) < 0) {
		/* A plain socket whose descriptor is gone is just closed. */
		if (aloop__transport_is_done(src) ||
		    aloop__transport_is_done(dst))
			return ALOOP_ESTATE;
		return ALOOP_ENOTSUP;
	}
	if (!(src->flags & ALOOP__T_MADE) || !(dst->flags & ALOOP__T_MADE) ||
	    (src->flags & (ALOOP__T_CLOSING | ALOOP__T_UPGRADING)) ||
	    (dst->flags & (ALOOP__T_CLOSING | ALOOP__T_EOF_WRITTEN |
	    ALOOP__T_UPGRADING)) ||
	    src->fwd_in != NULL || dst->fwd_out != NULL ||
	    dst->sendfile != NULL || aloop__stream_read_eof(src))
		return ALOOP_ESTATE;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return ALOOP_ENOMEM;
	f->loop = src->loop;
	f->src = src;
	f->dst = dst;
	f->done = done;
	f->arg = arg;
	f->done_handle = ALOOP_HANDLE_NONE;
	f->pipe.fd[0] = f->pipe.fd[1] = -1;
	f->res.on_loop_close = forward_on_loop_close;
	aloop__transport_ref(src);
	aloop__transport_ref(dst);
	aloop__loop_track(f->loop, &f->res);
	src->fwd_in = f;
	dst->fwd_out = f;
	/*
	 * Nothing moves inside this call: the source's next read event
	 * pumps (a paused source stays paused; one whose EOF was read
	 * already is the stream's to report, as it stopped reading).
	 */
	return 0;
}
