/*
 * Protocols: the callbacks a transport drives, as asyncio's Protocol,
 * DatagramProtocol and SubprocessProtocol.  A protocol is a constant table
 * of callbacks plus per-connection state made by a factory.
 *
 * Order, guaranteed by every transport:
 *   connection_made -> data_received* -> eof_received? -> connection_lost
 * connection_made comes exactly once and first; data_received always gets
 * at least one byte; nothing follows eof_received but connection_lost;
 * connection_lost comes exactly once, last, on a later loop turn than the
 * call that caused it.  After connection_lost returns the transport pointer
 * is dead and the protocol frees its state there.  Every callback runs on
 * the loop's thread; a transport may be closed or written from inside any of
 * them.  Optional callbacks may be NULL.
 */
#ifndef ALOOP_PROTOCOL_H
#define ALOOP_PROTOCOL_H

#include <sys/socket.h>

#include <aloop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_transport;

/**
 * Make the state for one new connection: set *@state (may be NULL) and
 * return 0, or return a negative error to refuse the connection (it is
 * then closed and the protocol sees nothing).
 */
typedef int (*aloop_protocol_factory_fn)(void *factory_arg, void **state);

/** A stream protocol (TCP, UNIX, TLS, pipes). */
struct aloop_protocol {
	/**
	 * The connection is up; @t is valid until connection_lost returns.
	 * A TLS server's peer may have left already, right after its
	 * handshake: aloop_transport_is_closing(@t) is then 1 here and
	 * connection_lost follows, so work for the peer need not start.
	 */
	void	(*connection_made)(struct aloop_transport *t, void *state);
	/** Bytes arrived.  @data is borrowed: valid during the call only. */
	void	(*data_received)(struct aloop_transport *t, void *state,
		    const void *data, size_t len);
	/**
	 * The peer closed its writing side.  Return non-zero to keep the
	 * transport half-open (it can still write; close it later), 0 to close
	 * it.  TLS transports close regardless.  NULL behaves as returning 0.
	 */
	int	(*eof_received)(struct aloop_transport *t, void *state);
	/** The end: @err is NULL for a clean close, else what went wrong. */
	void	(*connection_lost)(struct aloop_transport *t, void *state,
		    const struct aloop_error *err);
	/** The write buffer rose above the high-water mark. */
	void	(*pause_writing)(struct aloop_transport *t, void *state);
	/** The write buffer drained to the low-water mark or below. */
	void	(*resume_writing)(struct aloop_transport *t, void *state);
};

/** A datagram protocol (UDP, UNIX datagrams). */
struct aloop_datagram_protocol {
	void	(*connection_made)(struct aloop_transport *t, void *state);
	/** One datagram (may be empty) from @addr; both borrowed. */
	void	(*datagram_received)(struct aloop_transport *t, void *state,
		    const void *data, size_t len,
		    const struct sockaddr *addr, socklen_t addrlen);
	/** A send or receive failed (an ICMP error, for instance); the
	 * endpoint stays open. */
	void	(*error_received)(struct aloop_transport *t, void *state,
		    const struct aloop_error *err);
	void	(*connection_lost)(struct aloop_transport *t, void *state,
		    const struct aloop_error *err);
	void	(*pause_writing)(struct aloop_transport *t, void *state);
	void	(*resume_writing)(struct aloop_transport *t, void *state);
};

/**
 * A subprocess protocol.  Order: connection_made, then pipe_data_received
 * and pipe_connection_lost per pipe, process_exited, and connection_lost
 * last, once every pipe is closed and the process has exited.
 */
struct aloop_subprocess_protocol {
	void	(*connection_made)(struct aloop_transport *t, void *state);
	/** Output on the child's @fd (1 or 2); @data borrowed. */
	void	(*pipe_data_received)(struct aloop_transport *t, void *state,
		    int fd, const void *data, size_t len);
	void	(*pipe_connection_lost)(struct aloop_transport *t, void *state,
		    int fd, const struct aloop_error *err);
	void	(*process_exited)(struct aloop_transport *t, void *state);
	void	(*connection_lost)(struct aloop_transport *t, void *state,
		    const struct aloop_error *err);
};

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_PROTOCOL_H */
