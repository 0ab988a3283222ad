/*
 * Streams: asyncio's StreamReader, StreamWriter and StreamReaderProtocol
 * in one object per connection.  The protocol half feeds the reader and
 * tracks flow control; the reader and writer halves are what tasks use,
 * suspending on private futures that the protocol half completes.
 */
#include "config.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/loop.h>
#include <aloop/protocol.h>
#include <aloop/server.h>
#include <aloop/streams.h>
#include <aloop/task.h>
#include <aloop/transport.h>

#include "loop-int.h"
#include "transport-int.h"

struct stream;

struct aloop_stream_reader {
	struct stream	*s;
};

struct aloop_stream_writer {
	struct stream	*s;
};

/* A task in drain(), on that task's stack while it waits. */
struct drain_wait {
	struct drain_wait	*next;
	struct aloop_future	*fut;
};

/* What a stream server needs for each connection. */
struct stream_server {
	struct aloop__resource	 res;
	struct aloop_loop	*loop;
	aloop_stream_client_fn	 cb;
	void			*arg;
	size_t			 limit;
	size_t			 stack_size;
};

struct stream {
	/*
	 * Tracked while a transport holds it: a loop that closes tears its
	 * transports down without connection_lost, so the transport's
	 * reference is dropped there instead.
	 */
	struct aloop__resource	 res;
	unsigned long		 refs;
	struct aloop_loop	*loop;
	struct aloop_transport	*t;		/* NULL before made, after lost */
	struct stream_server	*srv;		/* server side only */
	int			 hosted;	/* aloop_stream_protocol_new's */
	struct aloop_stream_reader reader;
	struct aloop_stream_writer writer;

	/* Reader: buf[off, off + len) is unread. */
	unsigned char		*buf;
	size_t			 off, len, cap;
	size_t			 limit;
	int			 eof;
	int			 exc;		/* set_exception's code, or 0 */
	int			 reading_paused;
	struct aloop_future	*rwaiter;

	/* Writer. */
	int			 write_paused;
	int			 lost;
	int			 lost_code;	/* 0: lost cleanly */
	struct drain_wait	*drainers;
	struct aloop_future	*closed;	/* wait_closed's, made on demand */
};

void
aloop_stream_options_init(struct aloop_stream_options *o)
{
	o->limit = 0;
	o->stack_size = 0;
}

static struct stream *
stream_new(struct aloop_loop *loop, size_t limit)
{
	struct stream *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->refs = 1;
	s->loop = loop;
	s->limit = limit != 0 ? limit : ALOOP_STREAM_LIMIT_DEFAULT;
	s->reader.s = s;
	s->writer.s = s;
	return s;
}

#define STREAM_OF(r) \
	((struct stream *)((char *)(r) - offsetof(struct stream, res)))

static void stream_unref(struct stream *s);

static void
stream_on_loop_close(struct aloop__resource *res)
{
	struct stream *s = STREAM_OF(res);

	s->t = NULL;
	s->lost = 1;
	stream_unref(s);	/* the transport's */
}

/* A transport will hold @s: track it until connection_lost. */
static void
stream_track(struct stream *s)
{
	s->res.on_loop_close = stream_on_loop_close;
	aloop__loop_track(s->loop, &s->res);
}

static void
stream_unref(struct stream *s)
{
	assert(s->refs > 0);
	if (--s->refs > 0)
		return;
	assert(s->rwaiter == NULL && s->drainers == NULL);
	aloop_future_release(s->closed);
	free(s->buf);
	free(s);
}

static int
in_task(void)
{
	return aloop_current_task() != NULL;
}

/* Complete a private waiter (if still pending) and drop our reference. */
static void
wake(struct aloop_future **fp)
{
	struct aloop_future *f = *fp;

	if (f == NULL)
		return;
	*fp = NULL;
	if (!aloop_future_done(f))
		(void)aloop_future_set_result(f, NULL, NULL);
	aloop_future_release(f);
}

/* ------------------------------------------------------ reader buffer */

static int
buf_append(struct stream *s, const void *data, size_t len)
{
	size_t need, at = 0;
	unsigned char *nb;
	/*
	 * Bytes read into our own free space (read_space) but handed on
	 * somewhere else than where they landed: keep their offset, since
	 * the moves below may shift or free what @data points into.
	 */
	uintptr_t d = (uintptr_t)data, b = (uintptr_t)s->buf;
	int inside = s->buf != NULL && d >= b && d - b < s->cap;

	if (inside)
		at = d - b;
	if (s->off > 0 && s->off + s->len + len > s->cap) {
		memmove(s->buf, s->buf + s->off, s->len);
		s->off = 0;
	}
	need = s->len + len;
	if (need > s->cap) {
		/*
		 * Start small and double: an idle connection then holds
		 * what its reads needed, not a page each.
		 */
		size_t cap = s->cap > 0 ? s->cap : 512;

		while (cap < need)
			cap *= 2;
		if ((nb = realloc(s->buf, cap)) == NULL)
			return ALOOP_ENOMEM;
		s->buf = nb;
		s->cap = cap;
	}
	if (inside)
		memmove(s->buf + s->off + s->len, s->buf + at, len);
	else
		memcpy(s->buf + s->off + s->len, data, len);
	s->len += len;
	return 0;
}

/*
 * Lent to the transport (aloop__transport_set_read_into): the free space
 * after the unread bytes, when there is enough of it already.  Reading
 * there spares the copy out of the thread's read buffer; the space is
 * never grown for it, so an idle reader stays as small as it was.
 */
#define READ_SPACE_MIN	4096

static void *
read_space(void *arg, size_t *len)
{
	struct stream *s = arg;
	size_t end = s->off + s->len;

	if (s->eof || s->buf == NULL || s->cap - end < READ_SPACE_MIN)
		return NULL;
	*len = s->cap - end;
	return s->buf + end;
}

/* Restart reading once the buffer is back under the limit. */
static void
maybe_resume(struct stream *s)
{
	if (s->reading_paused && s->len <= s->limit) {
		s->reading_paused = 0;
		if (s->t != NULL)
			aloop_transport_resume_reading(s->t);
	}
}

/* The first @n unread bytes as a new aloop_bytes, consumed. */
static int
take(struct stream *s, size_t n, struct aloop_bytes **out)
{
	struct aloop_bytes *b;

	assert(n <= s->len);
	if ((b = malloc(sizeof(*b) + n + 1)) == NULL)
		return ALOOP_ENOMEM;
	b->len = n;
	if (n > 0)
		memcpy(b->data, s->buf + s->off, n);
	b->data[n] = '\0';	/* a convenience for text; not counted */
	s->off += n;
	s->len -= n;
	if (s->len == 0)
		s->off = 0;
	maybe_resume(s);
	*out = b;
	return 0;
}

/*
 * Suspend until data, EOF or an error arrives (asyncio's _wait_for_data).
 * A paused transport is resumed first: the caller wants more than is
 * buffered, and nothing else would ever resume it.
 */
static int
wait_for_data(struct stream *s)
{
	struct aloop_future *f;
	int rc;

	if (s->rwaiter != NULL)
		return ALOOP_ESTATE;	/* another task waits already */
	assert(!s->eof);
	if (s->reading_paused) {
		s->reading_paused = 0;
		if (s->t != NULL)
			aloop_transport_resume_reading(s->t);
	}
	if ((rc = aloop_future_new(s->loop, &f)) != 0)
		return rc;
	s->rwaiter = aloop_future_ref(f);
	s->refs++;	/* the reader may be released by another task */
	rc = aloop_await(f, NULL);
	if (s->rwaiter == f) {
		s->rwaiter = NULL;
		aloop_future_release(f);
	}
	aloop_future_release(f);
	if (rc == 0 && s->exc != 0)
		rc = s->exc;
	stream_unref(s);
	return rc;
}

int
aloop_stream_reader_new(struct aloop_loop *loop, size_t limit,
    struct aloop_stream_reader **r)
{
	struct stream *s;

	if (r != NULL)
		*r = NULL;
	if (loop == NULL || r == NULL)
		return ALOOP_EINVAL;
	if ((s = stream_new(loop, limit)) == NULL)
		return ALOOP_ENOMEM;
	*r = &s->reader;
	return 0;
}

void
aloop_stream_reader_release(struct aloop_stream_reader *r)
{
	if (r != NULL)
		stream_unref(r->s);
}

int
aloop_stream_reader_feed_data(struct aloop_stream_reader *r, const void *data,
    size_t len)
{
	struct stream *s = r->s;
	int rc;

	if (s->eof)
		return ALOOP_ESTATE;
	if (len == 0)
		return 0;
	/* Read in place (read_space): the bytes are where they belong. */
	if (s->buf != NULL && data == s->buf + s->off + s->len &&
	    len <= s->cap - s->off - s->len)
		s->len += len;
	else if ((rc = buf_append(s, data, len)) != 0)
		return rc;
	wake(&s->rwaiter);
	/* asyncio's rule: stop reading at twice the limit. */
	if (s->t != NULL && !s->reading_paused && s->len > 2 * s->limit) {
		s->reading_paused = 1;
		aloop_transport_pause_reading(s->t);
	}
	return 0;
}

void
aloop_stream_reader_feed_eof(struct aloop_stream_reader *r)
{
	r->s->eof = 1;
	wake(&r->s->rwaiter);
}

void
aloop_stream_reader_set_exception(struct aloop_stream_reader *r, int code)
{
	if (code >= 0)
		return;
	r->s->exc = code;
	wake(&r->s->rwaiter);
}

int
aloop_stream_reader_exception(const struct aloop_stream_reader *r)
{
	return r->s->exc;
}

void
aloop_stream_reader_set_limit(struct aloop_stream_reader *r, size_t limit)
{
	r->s->limit = limit != 0 ? limit : ALOOP_STREAM_LIMIT_DEFAULT;
	/* A larger limit may let a paused transport read again. */
	maybe_resume(r->s);
}

int
aloop_stream_reader_at_eof(const struct aloop_stream_reader *r)
{
	return r->s->eof && r->s->len == 0;
}

size_t
aloop_stream_reader_buffered(const struct aloop_stream_reader *r)
{
	return r->s->len;
}

/* ------------------------------------------------------------- reads */

/* Wait until something is buffered or the EOF came; read() and readinto(). */
static int
read_some(struct stream *s)
{
	int rc;

	if (!in_task())
		return ALOOP_ESTATE;
	if (s->exc != 0)
		return s->exc;
	if (s->len == 0 && !s->eof && (rc = wait_for_data(s)) != 0)
		return rc;
	return 0;
}

int
aloop_stream_read(struct aloop_stream_reader *r, ssize_t n,
    struct aloop_bytes **out)
{
	struct stream *s = r->s;
	int rc;

	if (out == NULL)
		return ALOOP_EINVAL;
	*out = NULL;
	if (!in_task())
		return ALOOP_ESTATE;
	if (s->exc != 0)
		return s->exc;
	if (n == 0)
		return take(s, 0, out);
	if (n < 0) {
		while (!s->eof) {
			if (s->len > s->limit)
				return ALOOP_ELIMIT;
			if ((rc = wait_for_data(s)) != 0)
				return rc;
		}
		if (s->len > s->limit)
			return ALOOP_ELIMIT;
		return take(s, s->len, out);
	}
	if ((rc = read_some(s)) != 0)
		return rc;
	return take(s, (size_t)n < s->len ? (size_t)n : s->len, out);
}

int
aloop_stream_readinto(struct aloop_stream_reader *r, void *buf, size_t n,
    size_t *got)
{
	struct stream *s = r->s;
	int rc;

	if (got == NULL || (buf == NULL && n > 0))
		return ALOOP_EINVAL;
	*got = 0;
	if ((rc = read_some(s)) != 0)
		return rc;
	if (n > s->len)
		n = s->len;
	if (n > 0)
		memcpy(buf, s->buf + s->off, n);
	s->off += n;
	s->len -= n;
	if (s->len == 0)
		s->off = 0;
	maybe_resume(s);
	*got = n;
	return 0;
}

int
aloop_stream_read_view(struct aloop_stream_reader *r, size_t n,
    const void **data, size_t *len)
{
	struct stream *s = r->s;
	int rc;

	if (data == NULL || len == NULL)
		return ALOOP_EINVAL;
	*data = NULL;
	*len = 0;
	if ((rc = read_some(s)) != 0)
		return rc;
	if (n > s->len)
		n = s->len;
	/*
	 * Consumed now, but left in place: nothing moves the buffer until
	 * the next read (which starts afresh at offset 0 once it is empty)
	 * or until the task suspends and more arrives.
	 */
	*data = s->buf + s->off;
	*len = n;
	s->off += n;
	s->len -= n;
	if (s->len == 0)
		s->off = 0;
	maybe_resume(s);
	return 0;
}

int
aloop_stream_readexactly(struct aloop_stream_reader *r, size_t n,
    struct aloop_bytes **out)
{
	struct stream *s = r->s;
	int rc;

	if (out == NULL)
		return ALOOP_EINVAL;
	*out = NULL;
	if (!in_task())
		return ALOOP_ESTATE;
	if (s->exc != 0)
		return s->exc;
	while (s->len < n) {
		if (s->eof) {
			/* IncompleteReadError: the partial data goes along. */
			if ((rc = take(s, s->len, out)) != 0)
				return rc;
			return ALOOP_EINCOMPLETE;
		}
		if ((rc = wait_for_data(s)) != 0)
			return rc;
	}
	return take(s, n, out);
}

/*
 * readuntil with one or several separators (Python 3.13).  On
 * ALOOP_ELIMIT *@consumed says where the search stopped, as
 * LimitOverrunError.consumed: at the separator if one was found.
 */
static int
readuntil(struct stream *s, const struct iovec *seps, size_t nseps,
    struct aloop_bytes **out, size_t *consumed)
{
	size_t minlen = SIZE_MAX, maxlen = 0, offset = 0;
	size_t mstart = 0, mend = 0;
	int found = 0, rc;

	*out = NULL;
	*consumed = 0;
	if (!in_task())
		return ALOOP_ESTATE;
	if (nseps == 0 || seps == NULL)
		return ALOOP_EINVAL;
	for (size_t i = 0; i < nseps; i++) {
		if (seps[i].iov_len == 0 || seps[i].iov_base == NULL)
			return ALOOP_EINVAL;
		if (seps[i].iov_len < minlen)
			minlen = seps[i].iov_len;
		if (seps[i].iov_len > maxlen)
			maxlen = seps[i].iov_len;
	}
	if (s->exc != 0)
		return s->exc;
	for (;;) {
		if (s->len >= offset + minlen) {
			const unsigned char *base = s->buf + s->off;

			for (size_t i = 0; i < nseps; i++) {
				const unsigned char *p = memmem(base + offset,
				    s->len - offset, seps[i].iov_base,
				    seps[i].iov_len);
				size_t st, end;

				if (p == NULL)
					continue;
				st = (size_t)(p - base);
				end = st + seps[i].iov_len;
				if (!found || end < mend) {
					mstart = st;
					mend = end;
					found = 1;
				}
			}
			if (found)
				break;
			/* Next time, search only what may hold a new match. */
			offset = s->len + 1 > maxlen ? s->len + 1 - maxlen : 0;
			if (offset > s->limit) {
				*consumed = offset;
				return ALOOP_ELIMIT;
			}
		}
		if (s->eof) {
			if ((rc = take(s, s->len, out)) != 0)
				return rc;
			return ALOOP_EINCOMPLETE;
		}
		if ((rc = wait_for_data(s)) != 0)
			return rc;
	}
	if (mstart > s->limit) {
		*consumed = mstart;
		return ALOOP_ELIMIT;
	}
	return take(s, mend, out);
}

int
aloop_stream_readuntil_any(struct aloop_stream_reader *r,
    const struct iovec *seps, size_t nseps, struct aloop_bytes **out)
{
	size_t consumed;

	if (out == NULL)
		return ALOOP_EINVAL;
	return readuntil(r->s, seps, nseps, out, &consumed);
}

int
aloop_stream_readuntil(struct aloop_stream_reader *r, const void *sep,
    size_t seplen, struct aloop_bytes **out)
{
	struct iovec iov = { (void *)(uintptr_t)sep, seplen };
	size_t consumed;

	if (out == NULL)
		return ALOOP_EINVAL;
	return readuntil(r->s, &iov, 1, out, &consumed);
}

int
aloop_stream_readline(struct aloop_stream_reader *r, struct aloop_bytes **out)
{
	struct stream *s = r->s;
	struct iovec nl = { (void *)(uintptr_t)"\n", 1 };
	size_t consumed;
	int rc;

	if (out == NULL)
		return ALOOP_EINVAL;
	rc = readuntil(s, &nl, 1, out, &consumed);
	if (rc == ALOOP_EINCOMPLETE)
		return 0;	/* the partial last line */
	if (rc != ALOOP_ELIMIT)
		return rc;
	/* Drop the long line, so that the next readline starts afresh. */
	if (consumed < s->len && s->buf[s->off + consumed] == '\n') {
		s->off += consumed + 1;
		s->len -= consumed + 1;
	} else
		s->len = 0;
	if (s->len == 0)
		s->off = 0;
	maybe_resume(s);
	return ALOOP_ELIMIT;
}

int
aloop_stream_readline_text(struct aloop_stream_reader *r,
    struct aloop_bytes **out)
{
	struct aloop_bytes *b;
	int rc;

	if ((rc = aloop_stream_readline(r, out)) != 0)
		return rc;
	b = *out;
	if (b->len == 0 || b->data[b->len - 1] != '\n')
		return ALOOP_EINCOMPLETE;	/* EOF, the partial line in *out */
	b->len--;
	if (b->len > 0 && b->data[b->len - 1] == '\r')
		b->len--;
	b->data[b->len] = '\0';
	return 0;
}

/* ------------------------------------------------------------ writer */

void
aloop_stream_writer_release(struct aloop_stream_writer *w)
{
	if (w == NULL)
		return;
	if (w->s->t != NULL)
		aloop_transport_close(w->s->t);
	stream_unref(w->s);
}

int
aloop_stream_write(struct aloop_stream_writer *w, const void *data,
    size_t len)
{
	if (w->s->t == NULL)
		return ALOOP_ESTATE;
	return aloop_transport_write(w->s->t, data, len);
}

int
aloop_stream_printf(struct aloop_stream_writer *w, const char *fmt, ...)
{
	char small[256], *p = small;
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return ALOOP_EINVAL;
	/* Most lines fit on the stack; a longer one costs an allocation. */
	if ((size_t)n >= sizeof(small)) {
		if ((p = malloc((size_t)n + 1)) == NULL)
			return ALOOP_ENOMEM;
		va_start(ap, fmt);
		(void)vsnprintf(p, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	rc = aloop_stream_write(w, p, (size_t)n);
	if (p != small)
		free(p);
	return rc;
}

int
aloop_stream_writelines(struct aloop_stream_writer *w,
    const struct iovec *iov, int iovcnt)
{
	if (w->s->t == NULL)
		return ALOOP_ESTATE;
	return aloop_transport_writelines(w->s->t, iov, iovcnt);
}

/* asyncio's "Connection lost" when the loss itself was clean. */
static int
lost_error(const struct stream *s)
{
	return s->lost_code != 0 ? s->lost_code : -ECONNRESET;
}

int
aloop_stream_drain(struct aloop_stream_writer *w)
{
	struct stream *s = w->s;
	struct drain_wait dw, **pp;
	int rc;

	if (!in_task())
		return ALOOP_ESTATE;
	if (s->exc != 0)
		return s->exc;
	/* Let a closing transport's connection_lost run first, as asyncio. */
	if (s->t != NULL && aloop_transport_is_closing(s->t) &&
	    (rc = aloop_sleep(0)) != 0)
		return rc;
	if (s->lost)
		return lost_error(s);
	if (!s->write_paused)
		return 0;
	if ((rc = aloop_future_new(s->loop, &dw.fut)) != 0)
		return rc;
	dw.next = s->drainers;
	s->drainers = &dw;
	s->refs++;
	rc = aloop_await(dw.fut, NULL);
	for (pp = &s->drainers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == &dw) {
			*pp = dw.next;
			break;
		}
	aloop_future_release(dw.fut);
	if (rc == 0 && s->lost)
		rc = lost_error(s);
	stream_unref(s);
	return rc;
}

static void
wake_drainers(struct stream *s)
{
	struct drain_wait *dw;

	/* Each waiter unlinks itself when it runs, on a later turn. */
	for (dw = s->drainers; dw != NULL; dw = dw->next)
		if (!aloop_future_done(dw->fut))
			(void)aloop_future_set_result(dw->fut, NULL, NULL);
}

int
aloop_stream_write_eof(struct aloop_stream_writer *w)
{
	if (w->s->t == NULL)
		return ALOOP_ESTATE;
	return aloop_transport_write_eof(w->s->t);
}

int
aloop_stream_can_write_eof(const struct aloop_stream_writer *w)
{
	return w->s->t != NULL && aloop_transport_can_write_eof(w->s->t);
}

void
aloop_stream_writer_close(struct aloop_stream_writer *w)
{
	if (w->s->t != NULL)
		aloop_transport_close(w->s->t);
}

int
aloop_stream_writer_is_closing(const struct aloop_stream_writer *w)
{
	return w->s->t == NULL || aloop_transport_is_closing(w->s->t);
}

int
aloop_stream_wait_closed(struct aloop_stream_writer *w)
{
	struct stream *s = w->s;
	int rc;

	if (!in_task())
		return ALOOP_ESTATE;
	if (!s->lost) {
		/* A waiter that was cancelled cancelled the shared future. */
		if (s->closed != NULL && aloop_future_cancelled(s->closed)) {
			aloop_future_release(s->closed);
			s->closed = NULL;
		}
		if (s->closed == NULL &&
		    (rc = aloop_future_new(s->loop, &s->closed)) != 0)
			return rc;
		s->refs++;
		rc = aloop_await(s->closed, NULL);
		rc = rc != 0 ? rc : s->lost_code;
		stream_unref(s);
		return rc;
	}
	return s->lost_code;
}

const void *
aloop_stream_get_extra_info(struct aloop_stream_writer *w, const char *name,
    size_t *len)
{
	if (w->s->t == NULL)
		return NULL;
	return aloop_transport_get_extra_info(w->s->t, name, len);
}

struct aloop_transport *
aloop_stream_writer_transport(struct aloop_stream_writer *w)
{
	return w->s->t;
}

/*
 * The connection is over for the stream: with @code (0: cleanly) from
 * connection_lost, or from a start_tls that failed (the protocol hears
 * nothing then).  Drops the transport's reference.
 */
static void
stream_lost(struct stream *s, int code)
{
	s->t = NULL;
	s->lost = 1;
	s->reading_paused = 0;
	if (code != 0) {
		s->lost_code = code;
		aloop_stream_reader_set_exception(&s->reader, code);
	} else
		aloop_stream_reader_feed_eof(&s->reader);
	wake_drainers(s);
	wake(&s->closed);
	aloop__loop_untrack(s->loop, &s->res);
	stream_unref(s);	/* the transport's */
}

/*
 * The upgrade is over.  Runs before the task waiting for it resumes (or
 * without it, if it was cancelled); a loop closed meanwhile runs nothing
 * and drops the transport's reference itself, which keeps @s alive until
 * here otherwise.
 */
static void
stream_upgraded(struct aloop_future *f, void *arg)
{
	struct stream *s = arg;
	struct aloop_transport *nt = NULL;
	int rc;

	if (s->lost)
		return;
	if ((rc = aloop_future_result(f, (void **)&nt)) != 0) {
		stream_lost(s, rc);
		return;
	}
	s->t = nt;
	if (s->reading_paused)
		aloop_transport_pause_reading(nt);
}

int
aloop_stream_writer_start_tls(struct aloop_stream_writer *w,
    const struct aloop_connection_options *o)
{
	struct stream *s = w->s;
	struct aloop_future *f;
	int rc;

	/*
	 * The host's protocol wraps the stream's: a failed handshake would
	 * end the connection without its connection_lost, and the side of
	 * the handshake is the host's to know.
	 */
	if (s->hosted)
		return ALOOP_ENOTSUP;
	if (!in_task())
		return ALOOP_ESTATE;
	if (o == NULL || o->ssl == NULL)
		return ALOOP_EINVAL;
	if ((rc = aloop_stream_drain(w)) != 0)
		return rc;
	if (s->t == NULL)
		return lost_error(s);
	if ((rc = aloop_start_tls(s->t, s->srv != NULL, o, &f)) != 0)
		return rc;
	if ((rc = aloop_future_add_done_callback(f, stream_upgraded, s)) != 0) {
		/* The socket may be the TLS transport's already: end it. */
		(void)aloop_future_cancel(f);
		aloop_future_release(f);
		if (!s->lost)
			stream_lost(s, rc);
		return rc;
	}
	s->refs++;
	rc = aloop_await(f, NULL);
	aloop_future_release(f);
	stream_unref(s);
	return rc;
}

/* ---------------------------------------------------------- protocol */

static int client_main(void *arg, void **result);

static void
proto_made(struct aloop_transport *t, void *state)
{
	struct stream *s = state;
	struct stream_server *srv = s->srv;
	struct aloop_task_options to;
	struct aloop_future *fut;

	s->t = t;
	aloop__transport_set_read_into(t, read_space, s);
	if (srv == NULL)
		return;
	aloop_task_options_init(&to);
	to.stack_size = srv->stack_size;
	/* The task's references: its reader and its writer. */
	s->refs += 2;
	if (aloop_create_task(s->loop, client_main, s, &to, &fut) != 0) {
		s->refs -= 2;
		aloop_transport_abort(t);
		return;
	}
	aloop_future_release(fut);
}

static void
proto_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct stream *s = state;

	if (aloop_stream_reader_feed_data(&s->reader, data, len) != 0)
		/* Out of memory: better a lost connection than lost data. */
		aloop_transport_abort(t);
}

static int
proto_eof(struct aloop_transport *t, void *state)
{
	struct stream *s = state;

	(void)t;
	aloop_stream_reader_feed_eof(&s->reader);
	/* Keep the writing side open; TLS transports close regardless. */
	return 1;
}

static void
proto_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct stream *s = state;

	if (t != NULL)
		aloop__transport_set_read_into(t, NULL, NULL);
	stream_lost(s, err != NULL ? err->code : 0);
}

static void
proto_pause(struct aloop_transport *t, void *state)
{
	struct stream *s = state;

	(void)t;
	s->write_paused = 1;
}

static void
proto_resume(struct aloop_transport *t, void *state)
{
	struct stream *s = state;

	(void)t;
	s->write_paused = 0;
	wake_drainers(s);
}

static const struct aloop_protocol stream_proto = {
	.connection_made = proto_made,
	.data_received = proto_data,
	.eof_received = proto_eof,
	.connection_lost = proto_lost,
	.pause_writing = proto_pause,
	.resume_writing = proto_resume,
};

/* ------------------------------------------------------- connections */

/* On the opening task's stack while it awaits the connection. */
struct client_factory {
	struct aloop_loop	*loop;
	size_t			 limit;
	struct stream		*s;	/* made, with a reference for us */
};

static int
client_factory(void *arg, void **state)
{
	struct client_factory *cf = arg;
	struct stream *s;

	if ((s = stream_new(cf->loop, cf->limit)) == NULL)
		return ALOOP_ENOMEM;
	s->refs++;
	cf->s = s;
	stream_track(s);
	*state = s;
	return 0;
}

typedef int (*connect_fn)(struct aloop_loop *, const char *, const char *,
    const struct aloop_connection_options *, struct client_factory *,
    struct aloop_future **);

static int
connect_tcp(struct aloop_loop *loop, const char *host, const char *port,
    const struct aloop_connection_options *co, struct client_factory *cf,
    struct aloop_future **fut)
{
	return aloop_create_connection(loop, &stream_proto, client_factory, cf,
	    host, port, co, fut);
}

static int
connect_unix(struct aloop_loop *loop, const char *path, const char *unused,
    const struct aloop_connection_options *co, struct client_factory *cf,
    struct aloop_future **fut)
{
	(void)unused;
	return aloop_create_unix_connection(loop, &stream_proto,
	    client_factory, cf, path, co, fut);
}

static int
open_common(struct aloop_loop *loop, connect_fn fn, const char *a,
    const char *b, const struct aloop_connection_options *co,
    const struct aloop_stream_options *so, struct aloop_stream_reader **r,
    struct aloop_stream_writer **w)
{
	struct client_factory cf = { loop, so != NULL ? so->limit : 0, NULL };
	struct aloop_future *fut;
	int rc;

	if (r == NULL || w == NULL)
		return ALOOP_EINVAL;
	*r = NULL;
	*w = NULL;
	if (loop == NULL)
		return ALOOP_EINVAL;
	if (!in_task())
		return ALOOP_ESTATE;
	if ((rc = fn(loop, a, b, co, &cf, &fut)) != 0)
		return rc;
	rc = aloop_await(fut, NULL);
	aloop_future_release(fut);
	if (cf.s == NULL)
		return rc != 0 ? rc : ALOOP_ESTATE;
	if (rc != 0) {
		/* Connected, but the task was cancelled meanwhile. */
		if (cf.s->t != NULL)
			aloop_transport_abort(cf.s->t);
		stream_unref(cf.s);
		return rc;
	}
	/* Our reference becomes the reader's; one more for the writer. */
	cf.s->refs++;
	*r = &cf.s->reader;
	*w = &cf.s->writer;
	return 0;
}

int
aloop_open_connection(struct aloop_loop *loop, const char *host,
    const char *port, const struct aloop_connection_options *co,
    const struct aloop_stream_options *so, struct aloop_stream_reader **r,
    struct aloop_stream_writer **w)
{
	return open_common(loop, connect_tcp, host, port, co, so, r, w);
}

int
aloop_open_unix_connection(struct aloop_loop *loop, const char *path,
    const struct aloop_connection_options *co,
    const struct aloop_stream_options *so, struct aloop_stream_reader **r,
    struct aloop_stream_writer **w)
{
	return open_common(loop, connect_unix, path, NULL, co, so, r, w);
}

/* ------------------------------------------------ a host's protocol */

int
aloop_stream_protocol_new(struct aloop_loop *loop,
    const struct aloop_stream_options *so,
    const struct aloop_protocol **proto, void **state,
    struct aloop_stream_reader **r, struct aloop_stream_writer **w)
{
	struct stream *s;

	if (proto != NULL)
		*proto = NULL;
	if (state != NULL)
		*state = NULL;
	if (r != NULL)
		*r = NULL;
	if (w != NULL)
		*w = NULL;
	if (loop == NULL || proto == NULL || state == NULL || r == NULL ||
	    w == NULL)
		return ALOOP_EINVAL;
	if ((s = stream_new(loop, so != NULL ? so->limit : 0)) == NULL)
		return ALOOP_ENOMEM;
	/* The protocol's reference (stream_new's), the reader's, the writer's. */
	s->refs += 2;
	s->hosted = 1;
	stream_track(s);
	*proto = &stream_proto;
	*state = s;
	*r = &s->reader;
	*w = &s->writer;
	return 0;
}

/* ----------------------------------------------------------- servers */

static int
client_main(void *arg, void **result)
{
	struct stream *s = arg;
	struct stream_server *srv = s->srv;
	int rc;

	(void)result;
	rc = srv->cb(&s->reader, &s->writer, srv->arg);
	if (rc != 0 && rc != ALOOP_ECANCELLED) {
		struct aloop_context ctx = ALOOP_CONTEXT_INIT(
		    "Unhandled error in client_connected_cb");
		struct aloop_error err = { rc, aloop_strerror(rc) };

		ctx.error = &err;
		ctx.transport = s->t;
		aloop_call_exception_handler(s->loop, &ctx);
	}
	if (s->t != NULL)
		aloop_transport_close(s->t);
	stream_unref(s);	/* the reader's */
	stream_unref(s);	/* the writer's */
	return 0;
}

static int
server_factory(void *arg, void **state)
{
	struct stream_server *srv = arg;
	struct stream *s;

	if ((s = stream_new(srv->loop, srv->limit)) == NULL)
		return ALOOP_ENOMEM;
	s->srv = srv;
	stream_track(s);
	*state = s;
	return 0;
}

/*
 * A server gives no word when it is freed, so its small settings live
 * until the loop closes; tasks, which use them, are gone before that.
 */
static void
server_on_loop_close(struct aloop__resource *res)
{
	free((struct stream_server *)((char *)res -
	    offsetof(struct stream_server, res)));
}

static struct stream_server *
server_new(struct aloop_loop *loop, aloop_stream_client_fn cb, void *arg,
    const struct aloop_stream_options *so)
{
	struct stream_server *srv;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->loop = loop;
	srv->cb = cb;
	srv->arg = arg;
	if (so != NULL) {
		srv->limit = so->limit;
		srv->stack_size = so->stack_size;
	}
	srv->res.on_loop_close = server_on_loop_close;
	return srv;
}

static int
start_common(struct aloop_loop *loop, aloop_stream_client_fn cb, void *arg,
    const char *host, const char *port, const char *path,
    const struct aloop_server_options *o,
    const struct aloop_stream_options *so, struct aloop_future **fut)
{
	struct stream_server *srv;
	int rc;

	if (fut != NULL)
		*fut = NULL;
	if (loop == NULL || cb == NULL || fut == NULL)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "aloop_start_server")) != 0)
		return rc;
	if ((srv = server_new(loop, cb, arg, so)) == NULL)
		return ALOOP_ENOMEM;
	if (path != NULL)
		rc = aloop_create_unix_server(loop, &stream_proto,
		    server_factory, srv, path, o, fut);
	else
		rc = aloop_create_server(loop, &stream_proto, server_factory,
		    srv, host, port, o, fut);
	if (rc != 0) {
		free(srv);
		return rc;
	}
	aloop__loop_track(loop, &srv->res);
	return 0;
}

int
aloop_start_server(struct aloop_loop *loop, aloop_stream_client_fn cb,
    void *arg, const char *host, const char *port,
    const struct aloop_server_options *o,
    const struct aloop_stream_options *so, struct aloop_future **fut)
{
	if (host == NULL && port == NULL &&
	    (o == NULL || o->sock < 0))
		return ALOOP_EINVAL;
	return start_common(loop, cb, arg, host, port, NULL, o, so, fut);
}

int
aloop_start_unix_server(struct aloop_loop *loop, aloop_stream_client_fn cb,
    void *arg, const char *path, const struct aloop_server_options *o,
    const struct aloop_stream_options *so, struct aloop_future **fut)
{
	if (path == NULL && (o == NULL || o->sock < 0))
		return ALOOP_EINVAL;
	return start_common(loop, cb, arg, NULL, NULL, path, o, so, fut);
}
