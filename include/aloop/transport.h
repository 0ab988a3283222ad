/*
 * Transports: the loop's side of a connection, as asyncio's Transport,
 * DatagramTransport and SubprocessTransport.
 *
 * Ownership: transports are reference counted, and the loop holds one
 * reference from connection_made until connection_lost has returned.  What
 * else keeps a transport alive:
 *
 *   - A future that hands out a transport (create_connection,
 *     create_datagram_endpoint, connect_read_pipe, subprocess_exec, ...)
 *     holds a reference on it until the future is freed.  While the caller
 *     holds that future, the transport pointer stays valid, even after
 *     connection_lost ran (a protocol may close in connection_made, and
 *     connection_lost then runs before aloop_run_until_complete returns)
 *     and even after the loop was closed or freed.
 *   - aloop_transport_ref() takes an explicit reference, to be dropped
 *     with aloop_transport_release().
 *   - Inside a protocol callback, the transport passed to it.
 *
 * A transport that is finished (connection_lost ran, or its loop closed)
 * answers every call harmlessly: aloop_transport_is_closing() returns 1,
 * writes are dropped, close and abort do nothing, get_extra_info returns
 * NULL for what went with the descriptor, and the kind-specific getters
 * (aloop_subprocess_get_returncode, ...) keep answering.  Without a
 * reference, a transport pointer must not be used after connection_lost
 * returns.  Functions are for the loop's thread only.
 */
#ifndef ALOOP_TRANSPORT_H
#define ALOOP_TRANSPORT_H

#include <sys/types.h>
#include <sys/uio.h>
#include <sys/socket.h>

#include <aloop/common.h>
#include <aloop/protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_future;
struct aloop_loop;
struct aloop_transport;

/**
 * Take a reference on @t, so that the pointer stays valid (see the
 * ownership rules at the top) until aloop_transport_release().  Returns
 * @t.  Does not keep the connection open.  Loop thread only.
 */
ALOOP_API struct aloop_transport *aloop_transport_ref(struct aloop_transport *t);

/**
 * Drop a reference taken with aloop_transport_ref(); NULL is a no-op.  May
 * be called after the loop was closed or freed.
 */
ALOOP_API void aloop_transport_release(struct aloop_transport *t);

/** The loop of @t (a stale address once that loop was freed). */
ALOOP_API struct aloop_loop *aloop_transport_get_loop(const struct aloop_transport *t);

/** The protocol state the factory made for @t (or set_protocol gave it). */
ALOOP_API void *aloop_transport_get_protocol_state(const struct aloop_transport *t);

/**
 * The protocol table driving @t, as asyncio's get_protocol(): a const
 * struct aloop_protocol * for stream, pipe and TLS transports, a const
 * struct aloop_datagram_protocol * for datagram endpoints, a const struct
 * aloop_subprocess_protocol * for subprocesses.
 */
ALOOP_API const void *aloop_transport_get_protocol(const struct aloop_transport *t);

/**
 * Hand @t to another protocol, as asyncio's set_protocol(): from the next
 * callback on, @proto's functions run with @state (connection_made is not
 * run again; connection_lost, when it comes, goes to @proto).  @proto is
 * a table of the type get_protocol returns for @t: a struct
 * aloop_protocol for streams, pipes and TLS, a struct
 * aloop_datagram_protocol for datagram endpoints, a struct
 * aloop_subprocess_protocol for subprocesses.  The old state is not
 * freed: it is the caller's.  Call it from the loop, outside or inside a
 * callback of @t.  ALOOP_EINVAL for a NULL @proto, ALOOP_ESTATE before
 * connection_made or once connection_lost is scheduled.
 */
ALOOP_API int aloop_transport_set_protocol(struct aloop_transport *t,
    const void *proto, void *state);

/**
 * Optional information, by asyncio's names; NULL when not available:
 *   "peername", "sockname"   const struct sockaddr *   (*len = its length)
 *   "socket", "pipe"         const int *               (the descriptor)
 *   "sslcontext"             struct aloop_tls_context *
 *   "ssl_object"             SSL * (OpenSSL's, as void *)
 *   "peercert"               X509 * (OpenSSL's, as void *), verified peers only
 *   "cipher"                 const char *  (OpenSSL's cipher name)
 *   "tls_version"            const char *  ("TLSv1.3")
 *   "alpn_protocol"          const char *  (the negotiated protocol)
 *   "server_hostname"        const char *  (SNI sent or received)
 *   "compression"            const char *  (always NULL: never enabled)
 *   "bytes_written"          const uint64_t *  (payload bytes write,
 *                            writelines and sendto accepted so far; any
 *                            transport, also during connection_lost)
 *   "bytes_forwarded"        const uint64_t *  (payload bytes read from
 *                            this transport and passed on by
 *                            aloop_transport_forward, which
 *                            data_received never saw; the destination
 *                            counts them in its "bytes_written")
 *   "bytes_spliced"          const uint64_t *  (the part of
 *                            "bytes_forwarded" that went through a
 *                            pipe inside the kernel; the rest was
 *                            copied through user space)
 *   "aborted"                const int *  (1 once aloop_transport_abort
 *                            ended the transport, 0 if it was closed or
 *                            ended by itself; any transport, also during
 *                            connection_lost, whose error is NULL after
 *                            both a close and an abort)
 * A connection accepted with the server option proxy_protocol answers
 * from its PROXY header, which says what getpeername and getsockname
 * would have said had the client come straight here:
 *   "peername", "sockname"   the client's address and the one it
 *                            connected to (the balancer's front), for a
 *                            TCP4/TCP6/UNIX header; for LOCAL (a health
 *                            check), v1 UNKNOWN or v2 UNSPEC, the
 *                            socket's own, as the spec asks
 *   "proxied_peername",      const struct sockaddr *: the socket's own
 *   "proxied_sockname"       addresses (the balancer's side)
 *   "proxy_version"          const int *  (1 or 2)
 *   "proxy_alpn", "proxy_authority", "proxy_unique_id", "proxy_netns",
 *   "proxy_ssl_version", "proxy_ssl_cn", "proxy_ssl_cipher",
 *   "proxy_ssl_sig_alg", "proxy_ssl_key_alg"
 *                            const char *: a v2 TLV's bytes as the
 *                            balancer sent them (*len of them, which
 *                            may hold any byte), NUL-terminated; NULL
 *                            when the TLV did not come
 *   "proxy_ssl_client"       const uint8_t *: the SSL TLV's client bits
 *   "proxy_ssl_verify"       const uint32_t *: its verify (0: verified)
 *   "proxy_tlvs"             const uint8_t *: every v2 TLV, raw (type,
 *                            16-bit big-endian length, value), *len
 *                            bytes; custom types are read from here
 * A v2 CRC32C TLV, when present, was verified.  The proxy_* names are
 * NULL on connections that came without a header.
 * The pointer is borrowed from the transport.  @len may be NULL.
 */
ALOOP_API const void *aloop_transport_get_extra_info(struct aloop_transport *t,
    const char *name, size_t *len);

/**
 * Queue bytes to send; the transport copies them.  Sent at once when the
 * buffer is empty and the socket accepts them.  Empty writes are no-ops;
 * writes after close or loss are dropped (and logged after a few).
 * Returns 0, ALOOP_ENOMEM, ALOOP_ESTATE after write_eof, or ALOOP_ENOTSUP
 * on a transport that cannot write (a read pipe).  A failure of the
 * connection itself is not returned: it ends the transport through
 * connection_lost, as in asyncio.
 */
ALOOP_API int aloop_transport_write(struct aloop_transport *t, const void *data,
    size_t len);

/** Like write for each buffer in turn, in one flow-control step. */
ALOOP_API int aloop_transport_writelines(struct aloop_transport *t,
    const struct iovec *iov, int iovcnt);

/**
 * Close the writing side once the buffer has drained; reading goes on.
 * ALOOP_ENOTSUP where unsupported (TLS).  Idempotent.
 */
ALOOP_API int aloop_transport_write_eof(struct aloop_transport *t);
ALOOP_API int aloop_transport_can_write_eof(const struct aloop_transport *t);

/**
 * Stop reading now, send what is buffered, then close; connection_lost(NULL)
 * follows on a later turn.  Idempotent.
 *
 * The close is bounded by the close timeout (aloop_transport_set_close_
 * timeout, 5 s by default), as nginx's send_timeout is: a peer that takes
 * none of our remaining bytes for that long (it stopped reading, its
 * window stays zero) gets a reset instead, and connection_lost reports
 * ALOOP_ETIMEDOUT ("close timed out: ...").  A peer that reads, however
 * slowly, gets everything.  Once the buffer is flushed, a TCP socket
 * whose kernel send queue still holds bytes is shut down for writing (the
 * FIN follows the data) and kept until the peer has acknowledged them,
 * or reset once it acknowledged nothing for the close timeout (looked at
 * every 10 ms at first, every 250 ms later), so that no orphaned socket
 * stays in FIN_WAIT1 holding memory for minutes.  Unlike asyncio, connection_lost comes after
 * that wait, not as soon as the buffer is flushed: until then the
 * descriptor is still in use, and a server's connection count and
 * wait_closed say so.  Where the peer reads, the wait costs nothing: the
 * queue is already empty.  An abort during the wait resets at once.  On
 * TLS the close_notify exchange is part of the close: the TLS shutdown
 * timeout (ssl_shutdown_timeout) and the close timeout both bound it,
 * whichever is shorter.
 */
ALOOP_API void aloop_transport_close(struct aloop_transport *t);

/**
 * Drop the buffer and close at once; connection_lost(NULL) follows soon.
 * A socket is closed with a reset (SO_LINGER {1, 0}): the kernel drops
 * what it had not sent yet and the peer sees ECONNRESET, not an orderly
 * end.  The same holds for every abrupt end the library makes itself (a
 * TLS handshake that failed or timed out, a fatal I/O error, a close
 * timeout, a server's abort_clients).
 */
ALOOP_API void aloop_transport_abort(struct aloop_transport *t);

/**
 * How long a graceful close of @t may wait for a peer that takes nothing
 * (see aloop_transport_close): @seconds >= 0; 0 resets at once whatever
 * is not sent when the close begins.  A close already waiting reads the
 * new value at its next check.  ALOOP_EINVAL for a negative or absurd
 * value.  Servers and create_connection set it from their options'
 * close_timeout.
 */
ALOOP_API int aloop_transport_set_close_timeout(struct aloop_transport *t,
    double seconds);
ALOOP_API double aloop_transport_get_close_timeout(const struct aloop_transport *t);

ALOOP_API int aloop_transport_is_closing(const struct aloop_transport *t);

/** Stop / restart data_received.  Idempotent, harmless when closing. */
ALOOP_API void aloop_transport_pause_reading(struct aloop_transport *t);
ALOOP_API void aloop_transport_resume_reading(struct aloop_transport *t);
ALOOP_API int aloop_transport_is_reading(const struct aloop_transport *t);

/**
 * Write flow control, asyncio's rule: pause_writing once the buffer holds
 * more than @high bytes, resume_writing once it falls to @low or below.
 * -1 for either takes the default (high 64 KiB, low high/4; with only @low
 * given, high = 4 * low).  ALOOP_EINVAL unless high >= low >= 0.  Checks at
 * once, so it may pause immediately.
 */
ALOOP_API int aloop_transport_set_write_buffer_limits(struct aloop_transport *t,
    ssize_t high, ssize_t low);
ALOOP_API void aloop_transport_get_write_buffer_limits(const struct aloop_transport *t,
    size_t *low, size_t *high);
ALOOP_API size_t aloop_transport_get_write_buffer_size(const struct aloop_transport *t);

/**
 * asyncio's loop.sendfile(transport, file, offset, count): send @count
 * bytes (0: up to the end) of the regular file @file from @offset.  On
 * plain TCP and UNIX sockets and write pipes the kernel sends them
 * (sendfile(2), no copy through user space) once what was written before
 * has gone; on TLS (and wherever the kernel cannot) the file is read and
 * written in 64 KiB pieces, each after the buffer drained below the
 * low-water mark, so memory stays bounded.  The future's result is a
 * struct aloop_nbytes (see net.h) with the bytes sent; the file's position
 * is left after the last byte sent.  While it runs, aloop_transport_write
 * returns ALOOP_ESTATE (asyncio: "sendfile is in progress").  The first
 * piece goes on the next loop turn.  If the transport closes or is lost
 * meanwhile the future fails with -EPIPE; cancelling the future stops the
 * transfer at the next piece.  The file stays the caller's and must stay
 * open until the future is done.  ALOOP_EINVAL (no @fut, a negative
 * offset, a file that is not regular), ALOOP_ENOTSUP (a transport that
 * cannot write: a read pipe, a datagram endpoint), ALOOP_ESTATE (closing,
 * after write_eof, or another sendfile running).
 */
ALOOP_API int aloop_transport_sendfile(struct aloop_transport *t, int file,
    off_t offset, size_t count, struct aloop_future **fut);

/**
 * Called once when a forward ends (see aloop_transport_forward), on a
 * later loop turn than what ended it.  @status is 0 when @src ended
 * first and everything read from it was handed to @dst: its EOF (then
 * @src's eof_received has run already, after the last byte went to
 * @dst), or a close, abort or error of @src (whose connection_lost says
 * which).  It is -EPIPE when @dst ended first or had write_eof called
 * (what the pipe still held is dropped when @dst was aborted, sent when
 * it was closed).  Both transports are valid during the call (the
 * forward holds a reference on each until it returns), also after their
 * connection_lost.
 */
typedef void (*aloop_forward_done_fn)(struct aloop_transport *src,
    struct aloop_transport *dst, void *arg, int status);

/**
 * Forward the bytes @src receives to @dst without handing them to a
 * protocol: a TCP proxy's data path, where data_received and write would
 * cost a callback and a buffer per chunk.  Bulk goes inside the kernel,
 * spliced (splice(2)) through a pipe, never copied through user space;
 * small messages are read and written through the loop's read buffer,
 * which costs fewer syscalls than splicing them.  A forward starts
 * copying, splices from the first read of 32 KiB or more while @dst's
 * own forward (if any) stayed silent since the last read (a stream, not
 * an exchange of large messages, which copying serves better), and
 * copies again after a readiness event that brought less than 8 KiB or
 * followed traffic the other way.  One
 * direction per call; a proxy calls it twice, once per direction.
 *
 * Both transports must be plain stream sockets (TCP or UNIX, made by
 * create_connection, create_server, connect_accepted_socket and their
 * UNIX forms; not TLS, not pipes), made and not closing; @src must not
 * have seen its EOF nor take part in another forward as a source, @dst
 * must not have had write_eof nor be a destination already, nor be
 * running a sendfile.  Otherwise: ALOOP_ENOTSUP (another kind: keep
 * copying with data_received and write), ALOOP_ESTATE, ALOOP_EINVAL
 * (@src == @dst), ALOOP_ENOMEM.  Nothing has changed then.
 *
 * From the call on, until the forward ends:
 *   - @src's data_received is no longer called; what @dst had buffered
 *     is sent first, then the forwarded bytes, in order.  aloop_transport_
 *     write and sendfile on @dst return ALOOP_ESTATE.
 *   - Back-pressure as with write: the pipe holds at most its capacity
 *     (1 MiB at most), a copy stops at @dst's high-water mark; while
 *     @dst does not take them, @src is not read, so
 *     memory stays bounded whatever the peers do.  When the
 *     pipe is full and @dst takes nothing, @dst's protocol gets
 *     pause_writing, and resume_writing once the pipe drained to its
 *     low-water mark; the pipe's bytes count in @dst's write buffer
 *     size.  pause_reading on @src stops the forward too, resume_reading
 *     restarts it.
 *   - Each readiness event moves at most 1 MiB before the loop runs
 *     anything else.
 *   - Counting: what is read from @src adds to its "bytes_forwarded"
 *     (and, when spliced, "bytes_spliced") and to @dst's
 *     "bytes_written" extra info.
 *   - The pipe (1 MiB where the user's pipe quota allows) is taken
 *     from a small pool per loop when bulk arrives and given back once
 *     it is empty again, so an idle forward holds no descriptor; the
 *     pool closes what it kept after 2 s unused.  When no pipe can be
 *     had (EMFILE, ENFILE) the bytes are copied instead for a second
 *     before a pipe is tried again, and the forward goes on.  A forward
 *     busy with bulk holds two descriptors besides the sockets.
 *
 * The forward ends, and @done (may be NULL) is called, when:
 *   - @src reads EOF: once the pipe drained into @dst, @src's protocol
 *     gets eof_received as usual (nothing is sent to @dst: a protocol
 *     passes the half-close on with aloop_transport_write_eof(@dst) if
 *     it wants to); status 0.
 *   - @src is closed, aborted or fails: what the pipe holds still goes
 *     to @dst; status 0 (@src's connection_lost says which: a reset or
 *     a read error ends @src through it as without a forward).
 *   - @dst is closed (the pipe is flushed as part of the close), has
 *     write_eof called, is aborted or fails (the pipe is dropped; a write
 *     error ends @dst through its connection_lost): status -EPIPE.
 * @src then reads for data_received again unless it is closing, at EOF
 * or paused.  Loop thread only.
 */
ALOOP_API int aloop_transport_forward(struct aloop_transport *src,
    struct aloop_transport *dst, aloop_forward_done_fn done, void *arg);

/**
 * Datagram transports: send one datagram (empty ones too; @data is
 * copied), to @addr or (NULL) the remote address the endpoint was
 * connected to.  Sent at once when nothing is queued; queued, under the
 * write-buffer limits, when the socket pushes back.  A protocol that
 * ignores pause_writing finds datagrams past 16 times the high-water mark
 * (at least 1 MiB) dropped, as a full socket buffer drops them.  Errors of
 * the send itself go to error_received, never to a close.  Returns 0,
 * ALOOP_EINVAL (no address on an unconnected endpoint, another address on
 * a connected one, more than 64 KiB), ALOOP_ENOMEM, or ALOOP_ENOTSUP on a
 * transport that is no datagram endpoint.
 */
ALOOP_API int aloop_transport_sendto(struct aloop_transport *t, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_TRANSPORT_H */
