/*
 * Streams: asyncio's StreamReader and StreamWriter over a stream transport
 * (TCP, UNIX, TLS), for tasks (see task.h).  open_connection and
 * start_server hand out a reader and a writer; the reader buffers what
 * arrives up to a limit and lets a task read it by size, by line or up to
 * a separator; the writer writes and waits for flow control.
 *
 * "Task only" functions suspend the calling task (ALOOP_ESTATE outside a
 * task, at once).  The others may be called from the loop's thread
 * anywhere.  Nothing here is thread-safe.
 *
 * Ownership: a reader and a writer each hold a reference to their
 * connection.  Those that aloop_open_connection() hands out are the
 * caller's, dropped with aloop_stream_reader_release() and
 * aloop_stream_writer_release() (releasing the writer closes the
 * transport if it is still open, as a collected StreamWriter does).  Those
 * a server's client callback receives are borrowed for the callback.  The
 * bytes functions return a struct aloop_bytes (net.h) that the caller owns
 * and frees with free(3).
 *
 * Differences from asyncio.streams, besides errors for exceptions (see
 * common.h):
 * - The limit also bounds read(n) with n < 0 (read to EOF): past the limit
 *   it returns ALOOP_ELIMIT, since a C caller cannot hold unbounded data
 *   in one buffer safely; asyncio returns all of it.
 * - A server's client callback ends the connection when it returns: the
 *   writer is closed (buffered data is still sent).  asyncio leaves the
 *   transport open until the writer is collected.  An error returned by
 *   the callback goes to the exception handler, as an exception does.
 * - get_extra_info answers NULL once the connection is lost (the
 *   transport is gone); asyncio keeps the transport object.
 * - wait_closed returns the error the connection was lost with (0 for a
 *   clean close); asyncio 3.12 raises it the same way.
 */
#ifndef ALOOP_STREAMS_H
#define ALOOP_STREAMS_H

#include <sys/types.h>
#include <sys/uio.h>

#include <aloop/common.h>
#include <aloop/future.h>
#include <aloop/net.h>
#include <aloop/server.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_loop;
struct aloop_protocol;
struct aloop_transport;
struct aloop_stream_reader;
struct aloop_stream_writer;

/** The reader's default limit, asyncio's _DEFAULT_LIMIT: 64 KiB. */
#define ALOOP_STREAM_LIMIT_DEFAULT	(64u * 1024u)

struct aloop_stream_options {
	/*
	 * What readline/readuntil may buffer before ALOOP_ELIMIT; reading
	 * from the transport pauses once 2 * limit bytes wait unread, as in
	 * asyncio.  0: ALOOP_STREAM_LIMIT_DEFAULT.
	 */
	size_t	limit;
	/* The stack of each server connection's task; 0: the default. */
	size_t	stack_size;
};
ALOOP_API void aloop_stream_options_init(struct aloop_stream_options *o);

/* ------------------------------------------------------- connections */

/**
 * Task only.  Connect as aloop_create_connection() does (@co: TLS and the
 * rest, may be NULL) and hand back a reader and a writer for the
 * connection, both the caller's.  @so may be NULL.  Returns 0, or the
 * connection's error (*@r and *@w NULL); if the task is cancelled
 * meanwhile, ALOOP_ECANCELLED and whatever was opened is closed.
 */
ALOOP_API int aloop_open_connection(struct aloop_loop *loop, const char *host,
    const char *port, const struct aloop_connection_options *co,
    const struct aloop_stream_options *so, struct aloop_stream_reader **r,
    struct aloop_stream_writer **w);

/** Task only.  The same over the UNIX socket @path. */
ALOOP_API int aloop_open_unix_connection(struct aloop_loop *loop,
    const char *path, const struct aloop_connection_options *co,
    const struct aloop_stream_options *so, struct aloop_stream_reader **r,
    struct aloop_stream_writer **w);

/**
 * The per-connection function of a stream server.  It runs as a task of
 * its own for each accepted connection (TLS: after the handshake), with a
 * reader and a writer it borrows until it returns; then the writer is
 * closed.  Return 0, or a negative code to have it reported to the loop's
 * exception handler ("Unhandled error in client_connected_cb").
 */
typedef int (*aloop_stream_client_fn)(struct aloop_stream_reader *r,
    struct aloop_stream_writer *w, void *arg);

/**
 * Listen as aloop_create_server() does (@o may be NULL; o->ssl for TLS)
 * and run @cb(reader, writer, @arg) as a task for every connection.  The
 * future's result is the struct aloop_server *, as for create_server: the
 * caller drops it with aloop_server_release().  Not task only: await the
 * future or run_until_complete it.  Connections whose task cannot be made
 * (out of memory) are aborted.
 */
ALOOP_API int aloop_start_server(struct aloop_loop *loop,
    aloop_stream_client_fn cb, void *arg, const char *host, const char *port,
    const struct aloop_server_options *o,
    const struct aloop_stream_options *so, struct aloop_future **fut);

/** The same on the UNIX socket @path (see aloop_create_unix_server). */
ALOOP_API int aloop_start_unix_server(struct aloop_loop *loop,
    aloop_stream_client_fn cb, void *arg, const char *path,
    const struct aloop_server_options *o,
    const struct aloop_stream_options *so, struct aloop_future **fut);

/**
 * A reader and a writer over a connection that the caller's own protocol
 * drives, as asyncio's StreamReaderProtocol wrapped around a transport:
 * for a host that must see every callback itself (aloopd counts and times
 * each connection) yet hand the connection to a task as streams.
 * *@proto and *@state are a protocol and its state; call each of
 * *@proto's callbacks with *@state from the same callback of yours,
 * connection_made first and connection_lost exactly once, last (also when
 * the connection is never made: then with a NULL transport).  Until that
 * connection_lost the protocol holds a reference of its own.  *@r and *@w
 * are the caller's, released with aloop_stream_reader_release() and
 * aloop_stream_writer_release() (which closes the transport if still
 * open), typically by the task they were given to.  @so may be NULL; its
 * stack_size is unused.  0, ALOOP_EINVAL or ALOOP_ENOMEM.
 */
ALOOP_API int aloop_stream_protocol_new(struct aloop_loop *loop,
    const struct aloop_stream_options *so,
    const struct aloop_protocol **proto, void **state,
    struct aloop_stream_reader **r, struct aloop_stream_writer **w);

/* ------------------------------------------------------------ reader */

/**
 * A reader on no transport, fed by aloop_stream_reader_feed_data() (as
 * asyncio's StreamReader() made by hand).  The caller owns it.  @limit 0:
 * the default.
 */
ALOOP_API int aloop_stream_reader_new(struct aloop_loop *loop, size_t limit,
    struct aloop_stream_reader **r);
ALOOP_API void aloop_stream_reader_release(struct aloop_stream_reader *r);

/**
 * Append @data (copied) / mark the end of the stream, waking a task that
 * waits to read.  Data after the EOF is ALOOP_ESTATE; ALOOP_ENOMEM.
 */
ALOOP_API int aloop_stream_reader_feed_data(struct aloop_stream_reader *r,
    const void *data, size_t len);
ALOOP_API void aloop_stream_reader_feed_eof(struct aloop_stream_reader *r);

/**
 * Make every read fail with @code (negative), waking a waiting task: what
 * a lost connection does to its reader.  Reads fail with it even when
 * data is buffered, as in asyncio.
 */
ALOOP_API void aloop_stream_reader_set_exception(struct aloop_stream_reader *r,
    int code);
/** The error set, or 0. */
ALOOP_API int aloop_stream_reader_exception(const struct aloop_stream_reader *r);

/**
 * Change the reader's limit (see aloop_stream_options) from now on; 0:
 * the default.  For a reader someone else made (aloopd's stream_task
 * gets one with the default limit) when the protocol bounds its lines
 * more tightly: a readline longer than the new limit is then ALOOP_ELIMIT.
 * asyncio has no such call.
 */
ALOOP_API void aloop_stream_reader_set_limit(struct aloop_stream_reader *r,
    size_t limit);

/** Whether the EOF was fed and everything before it read. */
ALOOP_API int aloop_stream_reader_at_eof(const struct aloop_stream_reader *r);

/** How many bytes are buffered, unread. */
ALOOP_API size_t aloop_stream_reader_buffered(const struct aloop_stream_reader *r);

/**
 * Task only.  Up to @n bytes: what is buffered, or once some arrives; an
 * empty result (len 0) at EOF.  @n 0 returns an empty result at once.
 * With @n < 0, everything up to EOF (at most the limit: ALOOP_ELIMIT past
 * it, the data kept buffered).  Only one task may wait on a reader at a
 * time: a second gets ALOOP_ESTATE.
 */
ALOOP_API int aloop_stream_read(struct aloop_stream_reader *r, ssize_t n,
    struct aloop_bytes **out);

/**
 * Task only.  Like aloop_stream_read() into the caller's @buf: *@got is
 * how many bytes were copied, 0 at EOF.  No allocation.
 */
ALOOP_API int aloop_stream_readinto(struct aloop_stream_reader *r, void *buf,
    size_t n, size_t *got);

/**
 * Task only.  Like aloop_stream_read() with @n > 0, without a copy: *@data
 * points at up to @n bytes inside the reader's own buffer, *@len of them
 * (0 at EOF).  They are consumed, but the bytes are borrowed: valid until
 * the task suspends (any await, drain included) or calls a function of
 * this reader again, whichever comes first; copy what must live longer.
 * A write of them (aloop_stream_write copies) before the next drain is
 * the intended use: an echo or a relay without an allocation.  Not in
 * asyncio.
 */
ALOOP_API int aloop_stream_read_view(struct aloop_stream_reader *r, size_t n,
    const void **data, size_t *len);

/**
 * Task only.  Exactly @n bytes.  At an EOF before them: ALOOP_EINCOMPLETE
 * with *@out set to what did arrive (the caller's, possibly empty) and the
 * buffer emptied, as IncompleteReadError.partial.
 */
ALOOP_API int aloop_stream_readexactly(struct aloop_stream_reader *r, size_t n,
    struct aloop_bytes **out);

/**
 * Task only.  The data up to and including the first @sep (@seplen > 0).
 * At EOF without it: ALOOP_EINCOMPLETE with *@out the partial data, the
 * buffer emptied.  When the separator is not within the limit: ALOOP_ELIMIT
 * and the data stays buffered (asyncio's LimitOverrunError).
 */
ALOOP_API int aloop_stream_readuntil(struct aloop_stream_reader *r,
    const void *sep, size_t seplen, struct aloop_bytes **out);

/**
 * Task only.  Like readuntil with several separators, as Python 3.13's
 * tuple: the data up to the end of whichever separator match ends first.
 * Each separator needs at least one byte; @nseps at least 1.
 */
ALOOP_API int aloop_stream_readuntil_any(struct aloop_stream_reader *r,
    const struct iovec *seps, size_t nseps, struct aloop_bytes **out);

/**
 * Task only.  One line, "\n" included.  At EOF the partial last line (or
 * an empty result) with 0.  A line longer than the limit is ALOOP_ELIMIT;
 * it is then dropped from the buffer (up to its "\n" if that arrived,
 * else all that is buffered), as asyncio's readline does.
 */
ALOOP_API int aloop_stream_readline(struct aloop_stream_reader *r,
    struct aloop_bytes **out);

/**
 * Task only.  One line of text: aloop_stream_readline() with the line's
 * end ("\n" or "\r\n") removed and the data NUL-terminated, so that
 * (char *)(*@out)->data is the line and (*@out)->len its length.  *@out
 * is the caller's, to free(3).  At EOF: ALOOP_EINCOMPLETE with *@out what
 * came after the last line's end (possibly empty).  A line over the limit
 * is ALOOP_ELIMIT and dropped, as for readline.  Not in asyncio, where
 * str.rstrip() does the same.
 */
ALOOP_API int aloop_stream_readline_text(struct aloop_stream_reader *r,
    struct aloop_bytes **out);

/* ------------------------------------------------------------ writer */

ALOOP_API void aloop_stream_writer_release(struct aloop_stream_writer *w);

/**
 * Queue bytes (copied), as aloop_transport_write().  After the connection
 * is lost, ALOOP_ESTATE.  Never waits: follow with aloop_stream_drain().
 */
ALOOP_API int aloop_stream_write(struct aloop_stream_writer *w,
    const void *data, size_t len);
ALOOP_API int aloop_stream_writelines(struct aloop_stream_writer *w,
    const struct iovec *iov, int iovcnt);

/**
 * Queue the text printf(3) makes of @fmt and its arguments, without its
 * NUL, as aloop_stream_write() does (the same errors; ALOOP_EINVAL if the
 * format fails).  Never waits.  libevent's evbuffer_add_printf for a
 * stream; not in asyncio, where a str is formatted and encoded first.
 */
ALOOP_API int aloop_stream_printf(struct aloop_stream_writer *w,
    const char *fmt, ...) ALOOP_PRINTF(2, 3);

/**
 * Task only.  Wait while the transport's write buffer is above its
 * high-water mark (the protocol got pause_writing) until it drains to the
 * low-water mark.  Returns at once when not paused.  Once the connection
 * is gone (also while waiting): the error it was lost with, or -ECONNRESET
 * for a clean loss (asyncio's "Connection lost"); the reader's exception
 * first, if it has one.
 */
ALOOP_API int aloop_stream_drain(struct aloop_stream_writer *w);

/** Close the writing side (aloop_transport_write_eof). */
ALOOP_API int aloop_stream_write_eof(struct aloop_stream_writer *w);
ALOOP_API int aloop_stream_can_write_eof(const struct aloop_stream_writer *w);

/** Close the transport (buffered data is sent first).  Idempotent. */
ALOOP_API void aloop_stream_writer_close(struct aloop_stream_writer *w);
ALOOP_API int aloop_stream_writer_is_closing(const struct aloop_stream_writer *w);

/**
 * Task only.  Wait until the connection is gone (connection_lost); 0 for
 * a clean close, else the error it was lost with.
 */
ALOOP_API int aloop_stream_wait_closed(struct aloop_stream_writer *w);

/**
 * Task only.  asyncio's StreamWriter.start_tls(): wait for the writer to
 * drain (aloop_stream_drain), then upgrade the connection to TLS with
 * aloop_start_tls(), on the server side for a connection of a stream
 * server and on the client side otherwise, and wait for the handshake.
 * @o gives the context (o->ssl), server_hostname and the handshake and
 * shutdown timeouts, as for aloop_start_tls().  Bytes written before go
 * out in clear first; what the reader buffered stays readable, and the
 * same reader and writer go on over TLS.  Returns 0, ALOOP_EINVAL for a
 * missing @o or @o->ssl, drain's error, or the upgrade's: the connection
 * is then lost with that error (reads and drain report it).  A task
 * cancelled while it waits cancels the upgrade too: ALOOP_ECANCELLED,
 * and the connection is lost with it.  ALOOP_ENOTSUP for a stream made
 * by aloop_stream_protocol_new() (an aloopd stream_task's connection
 * among them): its host owns the transport's protocol.
 */
ALOOP_API int aloop_stream_writer_start_tls(struct aloop_stream_writer *w,
    const struct aloop_connection_options *o);

/** The transport's extra information (transport.h); NULL once lost. */
ALOOP_API const void *aloop_stream_get_extra_info(struct aloop_stream_writer *w,
    const char *name, size_t *len);

/** The transport, borrowed; NULL once the connection is lost. */
ALOOP_API struct aloop_transport *aloop_stream_writer_transport(
    struct aloop_stream_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_STREAMS_H */
