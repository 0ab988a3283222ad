/*
 * Servers and connections: create_server, create_unix_server,
 * create_connection, create_unix_connection and create_datagram_endpoint,
 * and the server object, as asyncio's.  Options are structs so that calls
 * read like asyncio's keyword arguments; initialise them with the _init
 * function, then set what differs.
 */
#ifndef ALOOP_SERVER_H
#define ALOOP_SERVER_H

#include <sys/socket.h>

#include <stdint.h>

#include <aloop/common.h>
#include <aloop/future.h>
#include <aloop/protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_loop;
struct aloop_server;
struct aloop_tls_context;

/** Pass as an ssl option for a client context with secure defaults:
 * verify against the system CA store and check the host name. */
#define ALOOP_TLS_DEFAULT	((struct aloop_tls_context *)1)

struct aloop_server_options {
	int			  family;	/* AF_UNSPEC */
	int			  flags;	/* AI_PASSIVE */
	int			  sock;		/* -1; else adopt this listening socket */
	const char *const	 *hosts;	/* a list of hosts instead of one */
	size_t			  nhosts;
	int			  backlog;	/* 100 */
	int			  reuse_address; /* 1 */
	int			  reuse_port;	/* 0: SO_REUSEPORT */
	struct aloop_tls_context *ssl;		/* NULL: plain */
	double			  ssl_handshake_timeout; /* 60 s */
	double			  ssl_shutdown_timeout;  /* 30 s */
	int			  start_serving; /* 1 */
	/*
	 * NULL, or called on the loop's thread with the factory's argument
	 * for each accepted TLS connection that ends before the protocol
	 * heard of it: its handshake failed or timed out, or the factory
	 * refused it.  @err is borrowed for the call.  For counting: the
	 * connection is already gone.
	 */
	void			(*ssl_handshake_failed)(void *factory_arg,
				    const struct aloop_error *err);
	/*
	 * NULL, or called on the loop's thread with the factory's argument
	 * for each accepted connection before anything else happens to it:
	 * before the protocol factory and before a TLS handshake starts.
	 * @fd is the new socket and @peer its peer's address (both borrowed
	 * for the call; @peerlen 0 when the kernel gave none, as for an
	 * unnamed UNIX peer).  Return 0 to serve the connection, anything
	 * else to refuse it: the server then closes it at once with a reset
	 * (SO_LINGER {1, 0}), so that no byte is sent and the peer sees an
	 * RST, and the factory never hears of it.  For access control and
	 * overload policy; it must not block.
	 *
	 * A served connection may carry a *@ticket (0 before the call) for
	 * the filter's bookkeeping, a per-source count say: the server hands
	 * it to accept_release exactly once, when it lets go of the
	 * connection, whether the protocol ever saw it or not (a TLS
	 * handshake that failed, a factory that refused).
	 */
	int			(*accept_filter)(void *factory_arg, int fd,
				    const struct sockaddr *peer,
				    socklen_t peerlen, uintptr_t *ticket);
	/* NULL, or see accept_filter; called on the loop's thread. */
	void			(*accept_release)(void *factory_arg,
				    uintptr_t ticket);
	/*
	 * Appended fields (always set them through options_init first).
	 *
	 * proxy_protocol 1: every accepted connection must open with a
	 * PROXY protocol header, version 1 or 2 (HAProxy's
	 * proxy-protocol.txt), as a load balancer sends it.  After
	 * accept_filter (which sees the socket's peer, the balancer), the
	 * server reads the header and nothing more: not a byte of payload
	 * is taken, no TLS handshake starts and the factory is not called
	 * until the whole header is in.  A header that is malformed, does
	 * not come within proxy_protocol_timeout seconds (<= 0: no
	 * deadline), or a peer that closes first, ends the connection with
	 * a reset; the ticket goes to accept_release and proxy_failed is
	 * told.  Then the connection goes on as without the option, and
	 * its transport answers get_extra_info with the client's addresses
	 * ("peername", "sockname") and the balancer's ("proxied_peername",
	 * "proxied_sockname"), and the header's TLVs (see transport.h).
	 * A LOCAL header (the balancer's own health check) and v1 UNKNOWN
	 * keep the socket's addresses.  The spec forbids guessing whether
	 * a header comes: with the option off, the bytes are payload.
	 * While the header is read, the connection counts in
	 * connection_count and wait_closed; close_clients and
	 * abort_clients reset it.
	 */
	int			  proxy_protocol;	/* 0 */
	double			  proxy_protocol_timeout; /* 5 s */
	/*
	 * NULL, or called on the loop's thread with the factory's argument
	 * for each connection ended for its header, with the reason
	 * (ALOOP_ETIMEDOUT, ALOOP_EINCOMPLETE, -EPROTO for a malformed
	 * one; @err borrowed for the call).  For counting: the connection
	 * is already gone.  Not called when the loop closes.
	 */
	void			(*proxy_failed)(void *factory_arg,
				    const struct aloop_error *err);
	/*
	 * The close timeout of every accepted connection (see
	 * aloop_transport_close): how long a graceful close, close_clients'
	 * included, waits for a peer that takes none of the last bytes
	 * before it resets the connection.  >= 0 (ALOOP_EINVAL otherwise).
	 */
	double			  close_timeout;	/* 5 s */
	/*
	 * TLS: NULL, or the name of the sessions this server's handshakes
	 * make and resume.  A session, by ticket or from the server's cache,
	 * resumes only on a server of the same context and the same scope
	 * (OpenSSL's session id context, set per connection: a hash of the
	 * string).  Servers that share one context but must not resume one
	 * another's sessions -- serving different protocols, say -- give
	 * different scopes; NULL is the context's own, shared by every
	 * server of it that gives none.  Copied.
	 */
	const char		 *ssl_session_scope;	/* NULL */
	/*
	 * keep_alive 1 (asyncio 3.13's create_server keep_alive): TCP
	 * keepalive (SO_KEEPALIVE) on the listening sockets, which every
	 * accepted connection inherits, so that a peer gone without a word
	 * is found out.  Not for an adopted socket (o->sock) or a UNIX
	 * server.
	 */
	int			  keep_alive;		/* 0 */
	/*
	 * TCP_NODELAY for every accepted TCP connection, 1 or 0.  Set once
	 * on each listening socket (an adopted o->sock included), which
	 * Linux passes on to the sockets it accepts; the first connection
	 * accepted is checked, and should a kernel not pass it on, the
	 * server sets it on each connection instead.
	 */
	int			  tcp_nodelay;		/* 1 */
};
ALOOP_API void aloop_server_options_init(struct aloop_server_options *o);

/**
 * Listen on @host:@port (@host NULL or "" for every interface, IPv4 and
 * IPv6, one socket each; @port "0" for a free port).  The future's result
 * is the struct aloop_server *, a reference the caller drops with
 * aloop_server_release().  Each accepted connection gets state from
 * @factory(@factory_arg) and is driven by @proto, which must outlive the
 * server.  @o may be NULL for the defaults.  Immediate argument errors are
 * returned (ALOOP_EINVAL: host/port together with sock, or neither; a host
 * together with o->hosts; ALOOP_TLS_DEFAULT as a server's ssl) and no
 * future is made; bind errors complete the future with the errno, and the
 * message names the address.  An adopted o->sock is made non-blocking and
 * close-on-exec and is the server's from then on.
 */
ALOOP_API int aloop_create_server(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, const char *host, const char *port,
    const struct aloop_server_options *o, struct aloop_future **fut);

/**
 * Listen on the UNIX socket @path (or o->sock); a stale socket file left by
 * a dead server (one that refuses a test connection) is replaced, a live
 * one is EADDRINUSE.  Path and sock together are ALOOP_EINVAL.  Closing
 * the server removes the socket file it made, unless another has replaced
 * it meanwhile (as asyncio 3.13 does); an adopted o->sock's file is left.
 */
ALOOP_API int aloop_create_unix_server(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, const char *path,
    const struct aloop_server_options *o, struct aloop_future **fut);

ALOOP_API struct aloop_server *aloop_server_ref(struct aloop_server *srv);
/** Drop a reference; the server lives on while it serves or has clients. */
ALOOP_API void aloop_server_release(struct aloop_server *srv);
/** Stop listening at once; open connections stay.  Idempotent. */
ALOOP_API void aloop_server_close(struct aloop_server *srv);
/**
 * Close (flush) / abort every connection the server accepted.  A close is
 * bounded by each connection's close timeout (o->close_timeout), after
 * which it resets; an abort resets at once (see aloop_transport_close and
 * aloop_transport_abort), also a connection still lingering after a close.
 */
ALOOP_API void aloop_server_close_clients(struct aloop_server *srv);
ALOOP_API void aloop_server_abort_clients(struct aloop_server *srv);
/**
 * A future done once the server is closed and its last connection gone.
 * A connection closing gracefully counts until the kernel has delivered
 * its last bytes, or until its peer took nothing for its close timeout.
 */
ALOOP_API int aloop_server_wait_closed(struct aloop_server *srv,
    struct aloop_future **fut);
/**
 * asyncio's serve_forever(): start accepting (if not yet) and hand back a
 * future that never completes by itself.  Cancelling it closes the server;
 * closing the server cancels it.  Wait for it with run_until_complete (it
 * then returns ALOOP_ECANCELLED once the server closed).  The future holds
 * a reference on the server until it is done.  ALOOP_ESTATE if the server
 * is closed or already serving forever; ALOOP_EINVAL for a NULL @fut.
 */
ALOOP_API int aloop_server_serve_forever(struct aloop_server *srv,
    struct aloop_future **fut);

/** The loop the server belongs to. */
ALOOP_API struct aloop_loop *aloop_server_get_loop(const struct aloop_server *srv);

/** Start accepting (for start_serving = 0); idempotent. */
ALOOP_API int aloop_server_start_serving(struct aloop_server *srv);
ALOOP_API int aloop_server_is_serving(const struct aloop_server *srv);
/** The listening descriptors: *@n of them, borrowed from the server. */
ALOOP_API const int *aloop_server_sockets(const struct aloop_server *srv, size_t *n);
/** How many connections the server has open. */
ALOOP_API size_t aloop_server_connection_count(const struct aloop_server *srv);
/**
 * Pause / resume accepting without closing the listeners (what aloopd's
 * max_connections does); connections wait in the kernel backlog.
 *
 * Out of descriptors (accept fails with EMFILE or ENFILE) a serving
 * server does not leave clients in the backlog: it closes a spare
 * descriptor it keeps from start_serving on (/dev/null), accepts the
 * waiting connections and resets each at once, and takes the spare back.
 * It pauses the listener and retries after 1 ms, doubling to 100 ms, back
 * to 1 ms after an accept succeeds, so a new client is served within
 * about 100 ms of descriptors becoming free; ENOBUFS and ENOMEM back off
 * the same way.  Each step calls the exception handler once with
 * "socket.accept() out of system resource", the error, the listening
 * socket and the number of connections reset since the previous report
 * (aloop_context.dropped).
 */
ALOOP_API void aloop_server_pause_accepting(struct aloop_server *srv);
ALOOP_API void aloop_server_resume_accepting(struct aloop_server *srv);

struct aloop_connection_options {
	int			  family;	/* AF_UNSPEC */
	int			  proto;	/* 0 */
	int			  flags;	/* 0 */
	int			  sock;		/* -1; else an already connected socket */
	const char		 *local_host;	/* NULL: no bind */
	const char		 *local_port;
	struct aloop_tls_context *ssl;		/* NULL, ALOOP_TLS_DEFAULT or a context */
	const char		 *server_hostname; /* NULL: host; "": no check */
	double			  ssl_handshake_timeout; /* 60 s */
	double			  ssl_shutdown_timeout;  /* 30 s */
	/*
	 * Appended fields (always set them through options_init first).
	 * Happy eyeballs (RFC 8305), as asyncio's create_connection: with a
	 * delay > 0 (0.25 is RFC 8305's), the next address's connect starts
	 * when the previous one has not connected within the delay (or at
	 * once when it failed), the first to connect wins and the others are
	 * closed.  interleave > 0 reorders the addresses, families in turn,
	 * that many of the first family first; it defaults to 1 with a
	 * delay, as in asyncio.  0 and 0: every address in turn.
	 */
	double			  happy_eyeballs_delay;	/* 0 */
	int			  interleave;		/* 0 */
	/* The connection's close timeout (aloop_transport_close); >= 0. */
	double			  close_timeout;	/* 5 s */
	/*
	 * TLS: NULL, or the name of the sessions this server's handshakes
	 * make and resume.  A session, by ticket or from the server's cache,
	 * resumes only on a server of the same context and the same scope
	 * (OpenSSL's session id context, set per connection: a hash of the
	 * string).  Servers that share one context but must not resume one
	 * another's sessions -- serving different protocols, say -- give
	 * different scopes; NULL is the context's own, shared by every
	 * server of it that gives none.  Copied.
	 */
	const char		 *ssl_session_scope;	/* NULL */
};
ALOOP_API void aloop_connection_options_init(struct aloop_connection_options *o);

/**
 * Connect to @host:@port, resolved without blocking, trying every address
 * in turn.  The future's result is the struct aloop_transport *, whose
 * protocol has seen connection_made; the loop owns the transport.  If all
 * attempts fail differently, ALOOP_EMULTI with each error in the message.
 * Cancelling the future closes whatever was opened.
 */
ALOOP_API int aloop_create_connection(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, const char *host, const char *port,
    const struct aloop_connection_options *o, struct aloop_future **fut);

/**
 * Connect to the UNIX socket @path (or o->sock).  With ssl, a
 * server_hostname must be given (there is no host to default it to).
 */
ALOOP_API int aloop_create_unix_connection(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, const char *path,
    const struct aloop_connection_options *o, struct aloop_future **fut);

/**
 * asyncio's connect_accepted_socket(): drive the connected stream socket
 * @fd, accepted outside the loop, with @proto.  The future's result is the
 * struct aloop_transport * (the protocol has seen connection_made, on a
 * later loop turn than this call).  With @o->ssl (a server context; the
 * other options are ignored) the loop runs the server side of a TLS
 * handshake first, bounded by @o->ssl_handshake_timeout, and the
 * handshake's failure fails the future.  @o may be NULL (plain).  The
 * socket is made non-blocking and close-on-exec and is the transport's
 * once this returns 0.  ALOOP_EINVAL for a descriptor that is no stream
 * socket, ALOOP_TLS_DEFAULT as @o->ssl, or a missing argument (the caller
 * then keeps @fd).
 */
ALOOP_API int aloop_connect_accepted_socket(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, int fd, const struct aloop_connection_options *o,
    struct aloop_future **fut);

/**
 * asyncio's start_tls(): upgrade the connected plain stream transport @t
 * (a TCP or UNIX connection made by create_connection, a server, or
 * connect_accepted_socket) to TLS, on the client side, or on the server
 * side with @server_side.  @o gives the context (o->ssl: a server context
 * on the server side; ALOOP_TLS_DEFAULT allowed on the client side), the
 * client's server_hostname (NULL: no SNI and no name check) and the
 * handshake and shutdown timeouts; its other fields are ignored.
 *
 * @t is finished for its caller at once: is_closing is 1, writes to it
 * are dropped as after a close, and close, write_eof, pause_reading and
 * resume_reading do nothing; its protocol hears nothing more from it, not
 * even connection_lost (use it no more, as in asyncio).  Bytes written to
 * @t before the call and still in its write buffer go out first, in
 * clear, in order, and before the handshake: the upgrade waits for them
 * (reading is stopped meanwhile, so what the peer sends next stays for
 * the handshake), and that wait counts against the handshake timeout.
 * Data the peer sent after what @t delivered stays for the handshake.
 * The future's result is the new TLS transport, once the handshake is
 * done; the same protocol, with the same state, goes on over it without
 * a second connection_made, and gets its connection_lost at the end.  A
 * server goes on counting the connection.
 *
 * If the upgrade fails, the socket is closed, the future fails and the
 * protocol hears nothing more: its state is then the caller's to free,
 * as asyncio leaves it.  It fails with the handshake's error
 * (ALOOP_ECERT, ALOOP_EHOSTNAME, ALOOP_ETLS, ALOOP_ETIMEDOUT), and, while
 * the clear bytes are still going out, with the write error when the
 * peer resets (-ECONNRESET, -EPIPE), ALOOP_ETIMEDOUT when the peer does
 * not take them within the handshake timeout, ALOOP_ECANCELLED when @t is
 * aborted (aloop_transport_abort, a server's abort_clients) or the
 * future is cancelled (the upgrade then ends once the clear bytes are
 * out, or at the handshake's next step), and ALOOP_ESTATE when the loop
 * is closed.
 *
 * Call it before write_eof and before the peer's EOF: ALOOP_ESTATE
 * otherwise (through the future when bytes were still buffered), and
 * before connection_made, once closing, or while @t takes part in an
 * aloop_transport_forward or a sendfile.  ALOOP_EINVAL for a missing @o->ssl
 * or @fut, ALOOP_ENOTSUP for a transport that is no plain stream socket
 * (TLS already, a pipe, a datagram endpoint).
 */
ALOOP_API int aloop_start_tls(struct aloop_transport *t, int server_side,
    const struct aloop_connection_options *o, struct aloop_future **fut);

struct aloop_datagram_options {
	int		 family;	/* AF_UNSPEC */
	int		 proto;
	int		 flags;
	int		 sock;		/* -1 */
	const char	*local_host, *local_port;	/* bind here */
	const char	*remote_host, *remote_port;	/* connect here */
	int		 reuse_port;
	int		 allow_broadcast;
};
ALOOP_API void aloop_datagram_options_init(struct aloop_datagram_options *o);

/**
 * A datagram endpoint; the future's result is the struct aloop_transport *
 * (the protocol sees connection_made right after).  At least a local or a
 * remote address, or a family, is required (ALOOP_EINVAL); so is a
 * matching family between the two.  Numeric addresses are checked at once;
 * host names are resolved with aloop_getaddrinfo, and a mismatch found
 * then fails the future with ALOOP_EINVAL.  A socket, bind or connect that
 * fails closes the socket and fails the future with the errno.  With
 * @o->sock, the endpoint takes over that SOCK_DGRAM socket (made
 * non-blocking and close-on-exec; closed with the endpoint) and no address
 * may be given.  A remote address connects the socket: sendto then takes
 * NULL (or that address) and ICMP errors reach error_received.
 * With @o->family AF_UNIX, @o->local_host and @o->remote_host are socket
 * paths (the ports must be NULL): the endpoint binds to the first and
 * connects to the second, and a socket file already at the local path is
 * replaced (asyncio's rule; the file is left after close).  A path that
 * does not fit a sockaddr_un is ALOOP_EINVAL.
 */
ALOOP_API int aloop_create_datagram_endpoint(struct aloop_loop *loop,
    const struct aloop_datagram_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg,
    const struct aloop_datagram_options *o, struct aloop_future **fut);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_SERVER_H */
