/*
 * What the TLS transport (lib/tls.c) needs from TLS contexts
 * (lib/tls_context.c) beyond the public API.  The transport's own
 * constructor, aloop__tls_transport_new(), is declared with the other
 * transports in transport-int.h.  Private to lib/.
 */
#ifndef ALOOP_TLS_INT_H
#define ALOOP_TLS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include <aloop/tls.h>

/*
 * The process-wide client context behind ALOOP_TLS_DEFAULT: system CAs,
 * peer verification and host-name checks.  Made on first use (any thread);
 * returns a new reference, or NULL when OpenSSL could not make it.
 */
struct aloop_tls_context *aloop__tls_context_default(void);

/* ALOOP_TLS_CLIENT or ALOOP_TLS_SERVER. */
int	aloop__tls_context_side(const struct aloop_tls_context *ctx);

/* ALOOP_TLS_VERIFY_*. */
int	aloop__tls_context_verify(const struct aloop_tls_context *ctx);

/*
 * A new SSL object for one connection from @ctx, in client or server
 * state.  Client side: @hostname (may be NULL) is sent as SNI unless it is
 * an IP address, and checked against the peer's certificate when the
 * context checks host names and verifies, "" disabling the check.  The
 * session saved earlier under @session_key (NULL: none; the peer's
 * address, say) is offered for resumption, and new ones are saved there.  NULL with @err (size @errlen) filled on failure.
 */
SSL	*aloop__tls_context_new_ssl(struct aloop_tls_context *ctx,
	    int server_side, const char *hostname, const char *session_key,
	    char *err, size_t errlen);

/*
 * Classify a failed handshake on @ssl: ALOOP_ECERT, ALOOP_EHOSTNAME or
 * ALOOP_ETLS, with OpenSSL's reason in @msg.  Consumes the thread's
 * OpenSSL error queue.  @sys_errno is errno after a failed system call
 * (0 if none); a plain socket error gives its negated errno.
 */
int	aloop__tls_classify_error(SSL *ssl, int sys_errno, char *msg,
	    size_t msglen);

/*
 * The socket a TLS transport's BIO reads and writes (lib/tls_bio.c).  The
 * BIO borrows it: it must outlive the BIO (the SSL object that owns it).
 */
struct aloop__tls_sock {
	int		 fd;
	int		 eof;		/* recv() returned 0: the peer's EOF */
	/*
	 * A server's TLS 1.3 session tickets, held back (hold set, ssl the
	 * connection's) instead of sent on their own: they go out with the
	 * first bytes written after the handshake, or are flushed once the
	 * peer proved to be still there, or are dropped if it has gone.
	 */
	SSL		*ssl;
	int		 hold;
	unsigned char	*held;
	size_t		 nheld;
};

/* A BIO over @sock: send(MSG_NOSIGNAL) and recv(); NULL on failure. */
BIO	*aloop__tls_sock_bio_new(struct aloop__tls_sock *sock);

/*
 * Send the held tickets: 0 when none are left, 1 when the socket took
 * only part of them (wait for writability), -1 on an error (errno set).
 */
int	aloop__tls_sock_flush(struct aloop__tls_sock *sock);

/* Drop the held tickets (the peer has gone, or the connection ends). */
void	aloop__tls_sock_discard(struct aloop__tls_sock *sock);

/*
 * Session ticket keys (tls_context.c): the 80 bytes of @epoch's key --
 * key name, AES-256 key, HMAC-SHA256 key, 16 + 32 + 32 -- derived with
 * HKDF-SHA256 from @secret and @scope (NULL: "").  0, or -1 when OpenSSL
 * fails.  The caller wipes @out.
 */
int	aloop__tls_ticket_key(const unsigned char *secret, size_t len,
	    const char *scope, uint64_t epoch, unsigned char out[80]);

/* For tests: the clock that picks the ticket key epoch (NULL: time()). */
void	aloop__tls_context_set_clock(struct aloop_tls_context *ctx,
	    time_t (*clock)(void));

/* The context an SSL object made by aloop__tls_context_new_ssl() uses. */
struct aloop_tls_context *aloop__tls_context_of(SSL *ssl);

#endif /* ALOOP_TLS_INT_H */
