/*
 * The transport object every kind of transport shares (stream sockets,
 * pipes, TLS, datagrams, subprocesses) and the vtable through which the
 * public aloop_transport_* functions reach each kind.  Private to lib/.
 *
 * Division of labour.  lib/transport.c owns what is common: the reference
 * count, idempotent close and abort, is_closing, writes after close, the
 * write-buffer limits and the pause_writing/resume_writing edges, running
 * connection_made and connection_lost (exactly once, lost on a later loop
 * turn), and the loop-close teardown.  A kind implements the ops below and
 * calls the aloop__transport_* helpers at the right moments; it reads the
 * flags but never writes struct aloop_transport's fields itself: ending
 * abruptly is aloop__transport_drop, giving the protocol its state is
 * aloop__transport_attach, an owner's list is aloop__transport_list_*, and
 * the descriptor is guarded and closed with aloop__transport_own_fd and
 * aloop__transport_close_fd.
 *
 * Life of a transport, as a kind implements it:
 *
 *   1. Allocate a structure that embeds struct aloop_transport (first
 *      member, or find it with container_of) and call
 *      aloop__transport_init().  The loop now holds the one reference the
 *      transport starts with, and the transport is tracked for loop close.
 *   2. Call aloop__transport_made() once: it runs connection_made.
 *   3. Deliver protocol callbacks only between aloop__transport_ref() and
 *      aloop__transport_unref() (or through aloop__transport_made /
 *      aloop__transport_pause_check / aloop__transport_resume_check, which
 *      hold a reference themselves), and after each callback check
 *      aloop__transport_is_done() before touching the kind's state again:
 *      the protocol may have closed or aborted the transport inside.
 *   4. When the connection is over (close finished flushing, EOF with
 *      nothing left to do), call aloop__transport_lost() with 0; when it
 *      ends abruptly (a reset, a failed handshake, a timeout), call
 *      aloop__transport_drop() with the error, and for a fatal I/O error
 *      aloop__transport_fatal(), which also reports it.  Only the first
 *      of these counts.  It marks the transport closing
 *      and schedules connection_lost with call_soon.  From then on the kind
 *      delivers no protocol callback.
 *   5. When the scheduled call runs, transport.c calls ops->teardown (the
 *      kind releases descriptors, events and buffers; it must be idempotent
 *      and must not call user code), then the protocol's connection_lost,
 *      then drops the loop's reference.  When the last reference goes,
 *      ops->free releases the memory.
 *
 * If the loop is closed before step 5, transport.c calls ops->teardown and
 * drops the loop's reference without running any protocol callback (the
 * protocol's state is then the application's to free).
 *
 * Threads: everything here runs on the loop's thread.
 */
#ifndef ALOOP_TRANSPORT_INT_H
#define ALOOP_TRANSPORT_INT_H

#include <sys/types.h>
#include <sys/uio.h>
#include <sys/socket.h>

#include <stdint.h>

#include <aloop/common.h>
#include <aloop/future.h>
#include <aloop/loop.h>
#include <aloop/protocol.h>
#include <aloop/transport.h>

#include "loop-int.h"

struct aloop_transport;
struct aloop_tls_context;
struct aloop__protocol_common;
struct aloop__sendfile;
struct aloop__forward;

/*
 * What a kind implements.  Every pointer may be NULL unless marked
 * "required"; the public function then does what its comment says.
 * transport.c has already checked the common preconditions when it calls
 * an op (not closing for write/write_eof, len > 0, a reference held), so
 * the ops need not repeat them.
 */
struct aloop__transport_ops {
	/* A short name for logs: "socket", "pipe", "tls", "datagram", ... */
	const char	*name;

	/*
	 * Whether the kind is driven by a struct aloop_protocol, read from
	 * t->proto at every callback, so that set_protocol may switch it.
	 */
	int		 stream_protocol;

	/*
	 * Kinds driven by another table (datagram, subprocess): take @proto,
	 * a table of the kind's own type, from the next callback on, and
	 * fill @cb with its common part.  NULL: set_protocol is
	 * ALOOP_ENOTSUP.
	 */
	void	(*adopt_protocol)(struct aloop_transport *t, const void *proto,
		    struct aloop__protocol_common *cb);

	/*
	 * Queue @iovcnt buffers (total > 0 bytes), sending what the descriptor
	 * takes at once when nothing is buffered.  Called only while not
	 * closing.  transport.c runs the pause_writing check after it returns
	 * (from ops->get_write_buffer_size), so a kind need not.  Return 0,
	 * ALOOP_ENOMEM, or 0 after reporting a fatal write error through
	 * aloop__transport_fatal() (asyncio raises nothing from write).
	 * NULL: ALOOP_ENOTSUP.
	 */
	int	(*write)(struct aloop_transport *t, const struct iovec *iov,
		    int iovcnt);

	/*
	 * Shut down the writing side once the buffer drains (SHUT_WR at once
	 * when it is empty).  transport.c makes it idempotent: called at most
	 * once, and not while closing.  NULL: ALOOP_ENOTSUP (TLS).
	 */
	int	(*write_eof)(struct aloop_transport *t);

	/*
	 * Begin a graceful close (required).  transport.c has already set
	 * ALOOP__T_CLOSING and calls it once.  Stop reading now; when the
	 * write buffer is (or becomes) empty, call aloop__transport_lost(t,
	 * NULL).  A kind that has nothing to flush calls it from here.
	 */
	void	(*close)(struct aloop_transport *t);

	/*
	 * Drop buffered data and release the descriptor at once.  transport.c
	 * calls it once (also after close began) and then calls
	 * aloop__transport_lost(t, NULL) itself unless the kind already did.
	 * NULL: ops->teardown is used.
	 */
	void	(*abort)(struct aloop_transport *t);

	/* Stop / restart reading.  transport.c keeps the flag and calls these
	 * only on a real change and never while closing. */
	void	(*pause_reading)(struct aloop_transport *t);
	void	(*resume_reading)(struct aloop_transport *t);

	/* get_extra_info for the kind's names; NULL when unknown.  transport.c
	 * answers nothing by itself. */
	const void *(*get_extra_info)(struct aloop_transport *t,
		    const char *name, size_t *len);

	/* The bytes waiting to be sent (NULL: always 0). */
	size_t	(*get_write_buffer_size)(const struct aloop_transport *t);

	/* Whether write_eof is supported (NULL: 0). */
	int	(*can_write_eof)(const struct aloop_transport *t);

	/*
	 * Zero-copy sendfile: send up to @count bytes of @file from *@off
	 * straight from the kernel (sendfile(2)), advancing *@off.  Called
	 * only while nothing is buffered and not closing.  Returns the bytes
	 * sent (> 0), 0 at the end of the file, -EAGAIN when the descriptor
	 * is full (the kind then waits for writability and calls
	 * aloop__transport_resume_check once it is writable), ALOOP_ENOTSUP
	 * when this descriptor or file cannot (transport.c then reads and
	 * writes), or another negative error after reporting it through
	 * aloop__transport_fatal.  NULL: always the read-and-write way.
	 */
	ssize_t	(*sendfile)(struct aloop_transport *t, int file, off_t *off,
		    size_t count);

	/*
	 * Give up the descriptor without closing it (start_tls hands it to
	 * a TLS transport): stop every event and return the descriptor, or
	 * ALOOP_ESTATE while data waits in the buffer, ALOOP_ENOTSUP for a
	 * kind that cannot.  transport.c then ends the transport without
	 * telling the protocol.  NULL: ALOOP_ENOTSUP.
	 */
	int	(*detach)(struct aloop_transport *t);

	/* Datagram transports (NULL elsewhere: ALOOP_ENOTSUP). */
	int	(*sendto)(struct aloop_transport *t, const void *data, size_t len,
		    const struct sockaddr *addr, socklen_t addrlen);

	/*
	 * Release descriptors, events and buffers (required).  Idempotent;
	 * never calls user code.  Runs just before connection_lost and on
	 * loop close.
	 */
	void	(*teardown)(struct aloop_transport *t);

	/* Free the memory (required); the last reference is gone. */
	void	(*free)(struct aloop_transport *t);
};

/* Flags in struct aloop_transport.flags. */
#define ALOOP__T_MADE		0x0001	/* connection_made has run */
#define ALOOP__T_CLOSING	0x0002	/* close, abort or lost happened */
#define ALOOP__T_LOST		0x0004	/* connection_lost is scheduled */
#define ALOOP__T_DONE		0x0008	/* connection_lost ran (or the loop closed) */
#define ALOOP__T_PAUSED_READ	0x0010	/* pause_reading in force */
#define ALOOP__T_PAUSED_WRITE	0x0020	/* pause_writing was called */
#define ALOOP__T_EOF_WRITTEN	0x0040	/* write_eof was asked for */
#define ALOOP__T_ABORTED	0x0080	/* ops->abort ran */
#define ALOOP__T_CLOSE_CALLED	0x0100	/* ops->close ran */
#define ALOOP__T_OWNS_FD	0x0200	/* owned_fd is marked in the loop */
#define ALOOP__T_RESET		0x0400	/* close the descriptor with a reset */
#define ALOOP__T_GRACEFUL	0x0800	/* teardown of a clean end: may linger */
#define ALOOP__T_LINGER		0x1000	/* linger_fd waits for the kernel */
#define ALOOP__T_ABORT_CALLED	0x2000	/* aloop_transport_abort acted */
#define ALOOP__T_UPGRADING	0x4000	/* start_tls waits for the drain */
#define ALOOP__T_TORN		0x8000	/* ops->teardown ran */

/*
 * The callbacks transport.c itself runs.  Every protocol table (stream,
 * datagram, subprocess) has these four; the kind copies them from its
 * table in aloop__transport_init.  Any may be NULL.
 */
struct aloop__protocol_common {
	void	(*connection_made)(struct aloop_transport *t, void *state);
	void	(*connection_lost)(struct aloop_transport *t, void *state,
		    const struct aloop_error *err);
	void	(*pause_writing)(struct aloop_transport *t, void *state);
	void	(*resume_writing)(struct aloop_transport *t, void *state);
};

/*
 * Who is told when a transport is finished, after connection_lost ran
 * (a server counting its connections, a subprocess its pipes).  Runs with
 * no protocol callback on the stack; the transport is still valid memory
 * during the call.  Also runs on loop close.
 */
typedef void (*aloop__transport_owner_fn)(struct aloop_transport *t,
    void *owner);

/*
 * Told once how the wait of aloop__transport_wait_drained ended: @code 0
 * when the write buffer is empty, or the error @t ended with meanwhile
 * (@msg its text).
 */
typedef void (*aloop__transport_drained_fn)(struct aloop_transport *t,
    void *arg, int code, const char *msg);

struct aloop_transport {
	const struct aloop__transport_ops *ops;
	struct aloop_loop	*loop;
	const void		*proto;		/* the kind's protocol table */
	void			*state;		/* the protocol's state */
	struct aloop__protocol_common cb;
	unsigned		 refcnt;
	unsigned		 flags;		/* ALOOP__T_* */
	size_t			 high, low;	/* write-buffer limits */
	unsigned		 writes_after_close;
	uint64_t		 bytes_written;	/* accepted by write/sendto */
	int			 lost_code;	/* 0 or the error to report */
	char			*lost_msg;	/* owned; NULL: aloop_strerror */
	aloop_handle_t		 lost_handle;
	int			 owned_fd;	/* with ALOOP__T_OWNS_FD */
	struct aloop__sendfile	*sendfile;	/* one in progress, or NULL */

	/*
	 * aloop_transport_forward (forward.c): the forward that reads this
	 * transport, and the one that writes into it; either may be NULL.
	 * bytes_forwarded counts what the former read, which data_received
	 * never saw; bytes_spliced the part of it that went through a
	 * pipe rather than user space.
	 */
	struct aloop__forward	*fwd_in;
	struct aloop__forward	*fwd_out;
	uint64_t		 bytes_forwarded;
	uint64_t		 bytes_spliced;

	/*
	 * The bound of a graceful close: once aloop_transport_close began,
	 * a peer that takes none of our bytes for close_timeout seconds is
	 * reset, first while the buffer flushes (close_progress: loop time
	 * of the last progress), then while the kernel's send queue drains
	 * (linger_fd, kept open with ALOOP__T_LINGER; linger_outq: its size
	 * at the last progress, close_deadline: when it will have stalled
	 * too long).  close_timer is the flush's check, then the linger's
	 * next look.
	 */
	double			 close_timeout;
	double			 close_progress;
	double			 close_deadline;
	double			 linger_step;
	aloop_handle_t		 close_timer;
	int			 linger_fd;
	int			 linger_outq;
	struct aloop__resource	 res;

	/* The owner's hook, and the links of its aloop__transport_list
	 * (transport.c's alone to edit). */
	aloop__transport_owner_fn owner_fn;
	void			*owner;
	struct aloop_transport	*owner_prev, *owner_next;
	struct aloop__transport_list *owner_list;
	uintptr_t		 owner_ticket;	/* the owner's, opaque */

	/* start_tls waiting for the drain (with ALOOP__T_UPGRADING). */
	aloop__transport_drained_fn drained_fn;
	void			*drained_arg;
	aloop_handle_t		 drained_handle;

	/*
	 * The PROXY protocol header the connection came with (a server's
	 * proxy_protocol option), owned; NULL without one.  get_extra_info
	 * answers from it first (lib/proxy_accept.c).
	 */
	struct aloop__proxy_info *proxy;

	/*
	 * A protocol's own read buffer (aloop__transport_set_read_into),
	 * which a plain stream transport reads into instead of the thread's:
	 * the streams' reader keeps the bytes where they land, without a
	 * copy.  NULL: the thread's buffer.
	 */
	void			*(*read_into)(void *arg, size_t *len);
	void			*read_into_arg;
};

/*
 * How long a graceful close may take before it becomes an abort: long
 * enough for any peer that reads at all to take a socket buffer's worth,
 * short enough that a peer that stopped reading holds its memory for
 * seconds, not for the minutes the kernel would keep an orphaned socket
 * in FIN_WAIT1 (nginx's lingering_timeout is 5 s as well).
 */
#define ALOOP__CLOSE_TIMEOUT_DEFAULT	5.0

/* Default write-buffer limits (asyncio's). */
#define ALOOP__HIGH_WATER_DEFAULT	(64 * 1024)

/*
 * Set up @t (already zeroed or not) for @loop: ops, protocol table, the
 * four common callbacks, the protocol's state, one reference (the loop's),
 * default limits, reading on, tracked for loop close.  Never fails.
 */
void	aloop__transport_init(struct aloop_transport *t,
	    const struct aloop__transport_ops *ops, struct aloop_loop *loop,
	    const void *proto, const struct aloop__protocol_common *cb,
	    void *state);

/*
 * Give @t its protocol state (and, unless @cb is NULL, the four common
 * callbacks): for kinds that make the state after init (a TLS connection
 * once its handshake succeeded, an endpoint on its first turn).
 */
void	aloop__transport_attach(struct aloop_transport *t,
	    const struct aloop__protocol_common *cb, void *state);

/*
 * No protocol callback from transport.c any more: @t ends without
 * connection_made or connection_lost (start-up failed before the protocol
 * heard of it).
 */
void	aloop__transport_mute(struct aloop_transport *t);

/* The four common callbacks of a stream protocol table. */
void	aloop__protocol_common_stream(struct aloop__protocol_common *cb,
	    const struct aloop_protocol *proto);

/* Take / drop a reference; the last unref calls ops->free. */
void	aloop__transport_ref(struct aloop_transport *t);
void	aloop__transport_unref(struct aloop_transport *t);

/*
 * Run connection_made (once; later calls are no-ops), holding a reference.
 * Returns 0, or ALOOP_ESTATE when the protocol closed or aborted the
 * transport from inside connection_made (the transport is then closing,
 * but still valid until the caller drops its own reference, if any).
 */
int	aloop__transport_made(struct aloop_transport *t);

/*
 * The connection is over: mark closing and schedule connection_lost with
 * @code (0 for a clean end) and a printf-style message (NULL for the
 * code's text).  Only the first call counts.  If scheduling fails (the
 * loop is closed), the transport is torn down without callbacks.
 */
void	aloop__transport_lost(struct aloop_transport *t, int code,
	    const char *fmt, ...) ALOOP_PRINTF(3, 4);

/*
 * Drop @t at once: release what ops->abort (ops->teardown without one)
 * releases, buffered data included, then report @code (0: a clean end)
 * and a printf-style message (NULL: the code's text) through
 * connection_lost, as aloop__transport_lost does.  The one way a kind
 * ends a transport abruptly (a peer's reset, a failed TLS handshake, a
 * timeout); nothing is logged.  A no-op once lost.
 */
void	aloop__transport_drop(struct aloop_transport *t, int code,
	    const char *fmt, ...) ALOOP_PRINTF(3, 4);

/*
 * A fatal I/O error: as asyncio's _fatal_error, log it (except the
 * ordinary connection errors: ECONNRESET, EPIPE, ...), drop the buffer via
 * ops->abort and report @code through connection_lost.
 */
void	aloop__transport_fatal(struct aloop_transport *t, int code,
	    const char *what);

/* Whether protocol callbacks must stop: closing, lost or done. */
static inline int
aloop__transport_is_done(const struct aloop_transport *t)
{
	return (t->flags & (ALOOP__T_LOST | ALOOP__T_DONE)) != 0;
}

/*
 * Flow control edges.  Call pause_check after the buffer grew and
 * resume_check after it shrank (or, for ops->sendfile, once the
 * descriptor is writable again); each calls the protocol (holding a
 * reference) only on a real edge: pause when size > high, resume when
 * size <= low.  transport.c already runs pause_check after ops->write.
 * resume_check also wakes a sendfile waiting for the buffer to drain.
 */
void	aloop__transport_pause_check(struct aloop_transport *t);

/*
 * The pause_writing edge whatever the size: a forward whose pipe is full
 * and whose destination takes nothing (the pipe holds less than the
 * high-water mark, but nothing more will come in).  A no-op when paused
 * already.  resume_check ends it as usual.
 */
void	aloop__transport_pause_edge(struct aloop_transport *t);
void	aloop__transport_resume_check(struct aloop_transport *t);

/*
 * Complete @fut with @t as its result, the future holding a reference on
 * @t until it is freed: a caller holding the future can always call the
 * public functions on @t, even after connection_lost ran or the loop was
 * closed.  Returns what aloop_future_set_result returns (the reference is
 * not taken when it fails).  Every future that hands out a transport is
 * completed through here.
 */
int	aloop__future_set_transport(struct aloop_future *fut,
	    struct aloop_transport *t);

/*
 * @fd is the descriptor @t drives: the loop refuses add_reader and
 * add_writer on it until aloop__transport_close_fd closes it.  Call after
 * aloop__transport_init.
 */
void	aloop__transport_own_fd(struct aloop_transport *t, int fd);

/*
 * Close *@fd (if >= 0) and set it to -1, first releasing the loop's guard
 * if @t owns it.  Safe on a transport whose init never ran (zeroed).
 * After an abort (or a reset, a failed handshake, a timeout: anything
 * that went through aloop__transport_drop) the descriptor is closed with
 * a reset (aloop__sock_close_reset).  In the teardown of a clean end, a
 * TCP socket whose kernel send queue is not empty is kept instead, shut
 * down for writing, until the peer has acknowledged it or the close
 * timeout passed (connection_lost waits for that); *@fd is -1 all the
 * same.
 */
void	aloop__transport_close_fd(struct aloop_transport *t, int *fd);

/* Attach @t to an owner told when it is finished (see the typedef). */
void	aloop__transport_set_owner(struct aloop_transport *t,
	    aloop__transport_owner_fn fn, void *owner);

/*
 * The transports an owner keeps (a server's connections).  The owner
 * embeds the list, zeroed; transport.c alone edits the links.
 */
struct aloop__transport_list {
	struct aloop_transport	*head;
	size_t			 n;
};

/* Add @t to @list and make @fn(@t, @owner) its owner hook. */
void	aloop__transport_list_add(struct aloop__transport_list *list,
	    struct aloop_transport *t, aloop__transport_owner_fn fn,
	    void *owner);

/* Take @t off @list (from the owner hook, typically). */
void	aloop__transport_list_remove(struct aloop__transport_list *list,
	    struct aloop_transport *t);

/*
 * Call @fn on every transport of @list.  @fn may close or abort the
 * transport: transports leave the list only on a later loop turn, so the
 * walk stays valid.
 */
void	aloop__transport_list_each(struct aloop__transport_list *list,
	    void (*fn)(struct aloop_transport *t));

/*
 * Take @old's descriptor for a new transport (start_tls): ops->detach,
 * then @old ends silently (no protocol callback; is_closing is 1).
 * Returns the descriptor or a negative error (@old is then untouched).
 */
int	aloop__transport_detach(struct aloop_transport *old);

/*
 * start_tls on a transport whose write buffer still holds bytes: they go
 * out in clear first.  Stop reading (what the peer sends next is for the
 * handshake), then call @fn(@t, @arg, code, msg) exactly once: with 0 on a
 * later loop turn, once the buffer is empty (the caller then takes the
 * descriptor with aloop__transport_detach), or with the error @t ended
 * with meanwhile: a write error such as the peer's reset,
 * ALOOP_ECANCELLED for an abort (or any end without an error),
 * ALOOP_ESTATE when the loop closes.  From the call on, @t tells its
 * protocol nothing (no pause_writing, resume_writing or connection_lost:
 * the protocol is the upgrade's).  While it waits, @t reports closing to
 * its users: writes are dropped as after a close, and write_eof, close,
 * pause_reading and resume_reading do nothing; abort ends the wait.
 * Returns 0, or ALOOP_ESTATE when @t is closing, past write_eof, in a
 * sendfile or waiting already.
 */
int	aloop__transport_wait_drained(struct aloop_transport *t,
	    aloop__transport_drained_fn fn, void *arg);

/*
 * @new takes @old's place with its owner: in its list and with its hook
 * (a server goes on counting a connection that start_tls upgraded).
 * @old then has no owner.
 */
void	aloop__transport_hand_over(struct aloop_transport *old,
	    struct aloop_transport *new);

/*
 * Whether @t ended before connection_made ever ran (a TLS handshake that
 * failed or timed out, a refused factory); if so, *@err gets the error it
 * ended with (@fallback when it ended without one), its message borrowed
 * from @t.  Meant for the owner hook, where @t is still valid.
 */
int	aloop__transport_ended_unmade(const struct aloop_transport *t,
	    int fallback, struct aloop_error *err);

/*
 * The buffer every stream transport of this thread reads into, of
 * ALOOP__READ_MAX bytes, or NULL if it cannot be allocated.  data_received
 * only borrows the bytes for the call, a loop runs one callback at a time
 * and no transport reads synchronously from inside another's callback, so
 * one buffer per thread serves every connection, plain and TLS, and idle
 * connections cost nothing for reading.  Freed when the thread exits.
 * asyncio reads 256 KiB at a time; 64 KiB already takes a whole loopback
 * burst in one read and keeps the buffer small.  The extra 4 KiB are for
 * the stream's read-until-drained, which reads again only after a read
 * that filled the buffer: with a power of two, every 64 KiB message (a
 * common size) would fill it exactly and cost one more read that finds
 * the socket empty.
 */
#define ALOOP__READ_MAX		(68 * 1024)
unsigned char	*aloop__read_buffer(void);

/*
 * Have @t read into the space @fn(@arg, &len) offers, when it offers
 * some (non-NULL, len > 0; at most ALOOP__READ_MAX is read), rather than
 * into the thread's buffer: data_received then gets a pointer into that
 * space.  Only plain stream transports (lib/stream.c) ask; TLS decrypts
 * into the thread's buffer regardless.  @fn NULL: back to the thread's
 * buffer, as aloop_transport_set_protocol also does.  The caller keeps
 * @arg alive while it is set.
 */
void	aloop__transport_set_read_into(struct aloop_transport *t,
	    void *(*fn)(void *arg, size_t *len), void *arg);

/* ------------------------------------------------- stream and pipes */

/* What kind of descriptor a stream transport drives. */
#define ALOOP__STREAM_SOCKET	0	/* a connected socket: read and write */
#define ALOOP__STREAM_READ_PIPE	1	/* read only; "pipe" extra info */
#define ALOOP__STREAM_WRITE_PIPE 2	/* write only; lost when the reader goes */

/*
 * A stream transport over the connected, non-blocking, close-on-exec @fd,
 * which it owns from now on (closed on every path, also on failure).
 * Runs connection_made before returning, unless @defer_made is set (then
 * the caller calls aloop__transport_made itself).  *@out gets the
 * transport, with no extra reference: it is valid while the caller runs
 * without returning to the loop, or until connection_lost.  Returns 0,
 * ALOOP_ENOMEM or ALOOP_ESTATE (loop closed).  Reading starts once
 * connection_made has returned, unless the protocol paused it there.
 * The subprocess module uses it for the child's pipes.
 */
int	aloop__stream_transport_new(struct aloop_loop *loop, int fd, int kind,
	    const struct aloop_protocol *proto, void *state, int defer_made,
	    struct aloop_transport **out);

/*
 * Adopt the caller's descriptor @fd (made non-blocking and close-on-exec)
 * as a stream transport of @kind: on the next loop turn the factory makes
 * the state, connection_made runs, and *@fut (a new future) completes with
 * the transport.  Until then a closed loop closes @fd.  On an error
 * returned here the caller keeps @fd.
 */
int	aloop__stream_adopt(struct aloop_loop *loop,
	    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
	    void *factory_arg, int fd, int kind, struct aloop_future **fut);

/*
 * For a transport made with @defer_made: run connection_made, then start
 * reading (unless the protocol paused or closed it there).
 */
void	aloop__stream_transport_made(struct aloop_transport *t);

/* Switch TCP_NODELAY on for a TCP socket (errors ignored: not TCP). */
void	aloop__sock_set_nodelay(int fd);

/*
 * Close @fd at once, dropping whatever the kernel still holds to send: a
 * TCP peer sees a reset instead of a FIN, and no orphaned socket is left
 * in FIN_WAIT1.  Other sockets are simply closed.
 */
void	aloop__sock_close_reset(int fd);

/* ------------------------------------------ forwarding (forward.c) */

/*
 * What stream.c offers forward.c.  aloop__stream_fd: the descriptor of a
 * plain stream socket transport (TCP or UNIX, not TLS, not a pipe), or
 * -1 (another kind, or already torn down).  want_read / want_write start
 * or stop the transport's own read and write events without touching
 * its flags (a forward's back-pressure, not the protocol's pause).
 * read_eof: whether the peer's EOF was read already.
 * buffered: the bytes in the transport's own write buffer.  eof: deliver
 * the peer's EOF to the protocol as a read of 0 bytes would have.
 * output_drained: the forward into @t emptied its pipe; finish what a
 * drained buffer finishes (a pending close or write_eof).
 */
int	aloop__stream_fd(const struct aloop_transport *t);
int	aloop__stream_read_eof(const struct aloop_transport *t);
void	aloop__stream_want_read(struct aloop_transport *t, int on);
void	aloop__stream_want_write(struct aloop_transport *t, int on);
size_t	aloop__stream_buffered(const struct aloop_transport *t);
void	aloop__stream_eof(struct aloop_transport *t);
void	aloop__stream_output_drained(struct aloop_transport *t);

/*
 * What forward.c offers stream.c.  readable: @t (t->fwd_in's source) is
 * readable: move what it has.  writable: @t (t->fwd_out's destination)
 * is writable and its own buffer is empty: send what the pipe holds.
 * pending: the bytes the forward into @t holds for it (in its pipe),
 * part of @t's write buffer size.  gone: @t is being torn down (an abort,
 * a reset, the end): the forwards it takes part in let go of it, without
 * calling user code.
 */
void	aloop__forward_readable(struct aloop_transport *t);
void	aloop__forward_writable(struct aloop_transport *t);
size_t	aloop__forward_pending(const struct aloop_transport *t);
void	aloop__forward_gone(struct aloop_transport *t);

/* ---------------------------------------------------------- TLS hook */

/* asyncio's ssl_handshake_timeout default (SSL_HANDSHAKE_TIMEOUT). */
#define ALOOP__TLS_HANDSHAKE_TIMEOUT	60.0

/*
 * Implemented by lib/tls.c.  Wrap the connected non-blocking socket @fd
 * (owned from now on, closed on every path) in a TLS transport and start
 * the handshake.  Client side: @server_hostname is sent as SNI and checked
 * unless "" (NULL: no SNI, no check).  @ctx may be ALOOP_TLS_DEFAULT on the
 * client side.  The protocol state comes from @factory(@factory_arg) once
 * the handshake succeeded, right before connection_made (a refused
 * factory closes the connection).  @waiter (may be NULL; the TLS module
 * takes its own reference) is completed with the struct aloop_transport *
 * after connection_made, or with the handshake error (ALOOP_ECERT,
 * ALOOP_EHOSTNAME, ALOOP_ETLS, ALOOP_ETIMEDOUT).  *@out (may be NULL) gets
 * the transport at once, before the handshake, so that a server can count
 * it and close it (aloop__transport_set_owner); it never sees a protocol
 * callback if the handshake fails.
 */
int	aloop__tls_transport_new(struct aloop_loop *loop, int fd,
	    struct aloop_tls_context *ctx, int server_side,
	    const char *server_hostname, double handshake_timeout,
	    double shutdown_timeout, const struct aloop_protocol *proto,
	    aloop_protocol_factory_fn factory, void *factory_arg,
	    struct aloop_future *waiter, struct aloop_transport **out);

/*
 * For start_tls: the TLS transport @t (from aloop__tls_transport_new,
 * before its handshake finished) upgrades a connection whose protocol has
 * seen connection_made already, so it does not run it again.
 */
void	aloop__tls_mark_upgrade(struct aloop_transport *t);

/*
 * The session id context of the server-side TLS transport @t (from
 * aloop__tls_transport_new, before its handshake started): the sessions
 * it makes carry @sid (@len bytes, at most 32) and only sessions that
 * carry it resume.  0, or ALOOP_EINVAL.
 */
int	aloop__tls_set_session_id_context(struct aloop_transport *t,
	    const unsigned char *sid, size_t len);

/*
 * The peer's address of the TLS transport @t, as accept() gave it (a
 * copy is kept), so that "peername" needs no getpeername().
 */
void	aloop__tls_set_peer(struct aloop_transport *t,
	    const struct sockaddr *sa, socklen_t len);

#endif /* ALOOP_TRANSPORT_INT_H */
