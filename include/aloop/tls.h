/*
 * TLS contexts: certificates, verification and protocol settings shared by
 * the TLS transports of a server or of client connections, over OpenSSL 3.
 *
 * Defaults are safe without any setting: TLS 1.2 and 1.3 only, AEAD ciphers
 * only, the server's cipher order, no renegotiation, no compression, and
 * OpenSSL's buffers released on idle connections.  A client context verifies
 * the peer and checks its host name unless told otherwise.
 *
 * Ownership: reference counted.  aloop_tls_context_new() gives the caller
 * one reference; servers and connections hold their own, so the caller may
 * release it as soon as it has passed it on.  Configure a context before the
 * first use; after that it may be shared by loops in several threads.
 */
#ifndef ALOOP_TLS_H
#define ALOOP_TLS_H

#include <stddef.h>

#include <aloop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_tls_context;

#define ALOOP_TLS_CLIENT	0
#define ALOOP_TLS_SERVER	1

#define ALOOP_TLS_VERIFY_NONE		0	/* no peer certificate asked or checked */
#define ALOOP_TLS_VERIFY_OPTIONAL	1	/* checked if the peer sends one */
#define ALOOP_TLS_VERIFY_REQUIRED	2	/* the peer must send a valid one */

/**
 * A new context for @side (ALOOP_TLS_CLIENT or _SERVER).  Clients start with
 * VERIFY_REQUIRED, the system CA store and host-name checks; servers with
 * VERIFY_NONE.  Configuration errors are described by
 * aloop_tls_context_last_error().
 */
ALOOP_API int aloop_tls_context_new(int side, struct aloop_tls_context **ctx);
/**
 * Take / drop a reference; any thread.  NULL and ALOOP_TLS_DEFAULT are
 * accepted and left alone (the default context lives for the process).
 */
ALOOP_API struct aloop_tls_context *aloop_tls_context_ref(struct aloop_tls_context *ctx);
ALOOP_API void aloop_tls_context_release(struct aloop_tls_context *ctx);

/**
 * The last error a configuration call on this context met, with OpenSSL's
 * reason and the file involved ("key.pem: no start line"); "" if none.
 * Every configuration call clears it first.  Borrowed from the context.
 */
ALOOP_API const char *aloop_tls_context_last_error(const struct aloop_tls_context *ctx);

/**
 * Load a PEM certificate chain (leaf first) and its private key, which must
 * match; @keyfile NULL reads the key from @certfile.  ALOOP_ENOENT when a
 * file cannot be opened, ALOOP_EINVAL for anything else (no PEM, a key
 * that belongs to another certificate, an encrypted key: there is no
 * prompt).  On failure the context keeps its previous chain.
 */
ALOOP_API int aloop_tls_context_load_cert_chain(struct aloop_tls_context *ctx,
    const char *certfile, const char *keyfile);

/**
 * Server: an extra certificate chosen when the client's SNI matches one of
 * its names (subjectAltName DNS entries, without regard to case).  A name
 * some certificate holds exactly wins over a wildcard; "*.example.com"
 * stands for one label of letters, digits and hyphens ("www.example.com",
 * neither "example.com" nor "a.www.example.com"); among equals the
 * certificate added first wins.  The names are indexed here, so choosing
 * costs one lookup per handshake however many certificates there are.
 * The chain from load_cert_chain stays the default, also for clients that
 * send no SNI or an unknown name.  ALOOP_EINVAL on a client context or for
 * a certificate without a DNS name that can match; other errors as
 * load_cert_chain.
 */
ALOOP_API int aloop_tls_context_add_sni_cert(struct aloop_tls_context *ctx,
    const char *certfile, const char *keyfile);

/** Trust the CAs in @cafile and/or @capath (either may be NULL). */
ALOOP_API int aloop_tls_context_load_verify_locations(struct aloop_tls_context *ctx,
    const char *cafile, const char *capath);
/** Trust the system CA store. */
ALOOP_API int aloop_tls_context_set_default_verify_paths(struct aloop_tls_context *ctx);
/**
 * ALOOP_TLS_VERIFY_*; for servers, OPTIONAL/REQUIRED ask for client
 * certificates (REQUIRED refuses a client that sends none).  A server
 * always sends a certificate, so for clients OPTIONAL acts as REQUIRED.
 * ALOOP_EINVAL for another value.
 */
ALOOP_API int aloop_tls_context_set_verify(struct aloop_tls_context *ctx, int mode);
/**
 * Clients: whether to match the certificate against server_hostname
 * (default 1): DNS names with OpenSSL's wildcard rules, IP addresses
 * against the certificate's IP entries.  Only while verifying; an empty
 * server_hostname turns it off for that connection, with a warning.
 */
ALOOP_API void aloop_tls_context_set_check_hostname(struct aloop_tls_context *ctx, int on);
ALOOP_API int aloop_tls_context_get_check_hostname(const struct aloop_tls_context *ctx);

/** "TLSv1.2" (default) or "TLSv1.3"; older versions are refused (ALOOP_EINVAL). */
ALOOP_API int aloop_tls_context_set_min_version(struct aloop_tls_context *ctx,
    const char *version);
/**
 * OpenSSL cipher list for TLS 1.2; non-AEAD suites are still excluded.
 * ALOOP_EINVAL, and the list unchanged, when no AEAD suite is left.
 */
ALOOP_API int aloop_tls_context_set_ciphers(struct aloop_tls_context *ctx,
    const char *list);
/** OpenSSL ciphersuites for TLS 1.3. */
ALOOP_API int aloop_tls_context_set_ciphersuites(struct aloop_tls_context *ctx,
    const char *list);
/**
 * ALPN protocols in preference order ("h2", "http/1.1").  A server picks
 * the first of its own list the client offers; without a match it goes on
 * without ALPN.  Names are 1 to 255 bytes (ALOOP_EINVAL otherwise); @n 0
 * switches ALPN off.  The strings are copied.
 */
ALOOP_API int aloop_tls_context_set_alpn_protocols(struct aloop_tls_context *ctx,
    const char *const *protocols, size_t n);
/**
 * Session resumption (server: tickets and cache; client: reuse).  Default
 * on.  A client context keeps the newest session per peer (address, port
 * and server name), for at most 256 peers, the least recently used
 * making room; the transport's "ssl_object" tells whether a connection
 * was resumed (SSL_session_reused).
 */
ALOOP_API void aloop_tls_context_set_session_resumption(struct aloop_tls_context *ctx,
    int on);

/**
 * Server: session tickets per full TLS 1.3 handshake (default 1; OpenSSL's
 * own default of 2 only costs a second encryption and write).  0 turns
 * tickets off altogether, TLS 1.2's as well: no NewSessionTicket is sent,
 * and only the session cache, if any, resumes.  At most 16 (ALOOP_EINVAL).
 */
ALOOP_API int aloop_tls_context_set_session_tickets(struct aloop_tls_context *ctx,
    unsigned n);
/**
 * Server: the stateful session cache's size in sessions (default OpenSSL's
 * 20480); 0 turns it off.  The cache lives in this context, in this
 * process: unlike a ticket it only resumes a client that comes back to
 * the same process.  TLS 1.3 with tickets on never needs it.
 */
ALOOP_API void aloop_tls_context_set_session_cache_size(struct aloop_tls_context *ctx,
    unsigned long n);
/**
 * How long a session may be resumed, in seconds (default 7200, at most
 * 604800, RFC 8446's week; ALOOP_EINVAL outside 1..604800).  With a ticket
 * secret this is also how often the ticket key changes (see below).
 */
ALOOP_API int aloop_tls_context_set_session_timeout(struct aloop_tls_context *ctx,
    unsigned seconds);
/**
 * Server: derive session ticket keys from @secret (@len bytes, at least
 * 32, at most 1024) and @scope (a string naming what the tickets are good
 * for, NULL meaning ""), instead of OpenSSL's random keys, which are
 * different in every context.  Contexts given the same secret and scope,
 * in this process or any other, in any order and at any time, resume one
 * another's tickets: forked workers that never talk to each other, and
 * the contexts a reload builds afresh.  A different secret or scope makes
 * another context's tickets unreadable, so that a ticket never resumes a
 * session where other settings apply (a listener that checks client
 * certificates, say): put those settings in @scope.
 *
 * Keys rotate without a timer: time is cut into epochs of the session
 * timeout's length (counted from the Unix epoch, so every process agrees),
 * and each epoch's key is HKDF-SHA256 of the secret, the scope and the
 * epoch's number.  The current epoch's key encrypts; the previous and the
 * next one's (a clock a little ahead) still decrypt, and such a ticket is
 * replaced by a fresh one.  A ticket therefore stays readable at least
 * as long as the session timeout, and OpenSSL refuses older sessions.
 *
 * The secret is copied and wiped (OPENSSL_cleanse) when replaced or when
 * the context goes; the caller wipes its own copy.  Whoever learns the
 * secret can read every ticket made with it, and so the keys of those
 * sessions: keep it in memory only and make a new one (forgetting the
 * old) to retire it.  Takes effect for handshakes that start afterwards.
 * ALOOP_EINVAL on a client context or for a bad length, ALOOP_ENOMEM.
 */
ALOOP_API int aloop_tls_context_set_ticket_secret(struct aloop_tls_context *ctx,
    const void *secret, size_t len, const char *scope);
/**
 * Fill @buf with @len bytes from OpenSSL's random generator, for a ticket
 * secret made once and handed to every context that should share keys
 * (before fork(), for processes that share them).  0, or ALOOP_ENOMEM if
 * the generator failed.
 */
ALOOP_API int aloop_tls_make_ticket_secret(void *buf, size_t len);
/**
 * Server: staple the DER OCSPResponse in @path (as `openssl ocsp -respout`
 * writes it) to the handshakes that serve certificate @cert: 0 for the
 * chain of load_cert_chain, n for the n-th add_sni_cert; load that
 * certificate first.  The file is read now and kept in memory, so a
 * refreshed file needs a new call (aloopd: a reload).  Checked: a
 * successful response with a single response for that certificate (by
 * its issuer in the chain, or else by serial number and issuer name);
 * neither its signature nor its dates are, so a stale file is served as
 * is.  A client that asks (status_request) gets it; others pay nothing.
 * ALOOP_ENOENT if the file cannot be opened, ALOOP_EINVAL for anything
 * else; on failure the previous response, if any, stays.  Loading the
 * default chain again drops its response.
 */
ALOOP_API int aloop_tls_context_load_ocsp_response(struct aloop_tls_context *ctx,
    size_t cert, const char *path);

/**
 * SHA-256 of the @len bytes at @data into @out: to tell whether the files
 * a context was built from still hold what they held (aloopd keeps the
 * contexts of a reload whose files did not change).  0, or ALOOP_ENOMEM
 * when OpenSSL fails.  Any thread.
 */
ALOOP_API int aloop_tls_sha256(const void *data, size_t len,
    unsigned char out[32]);

/** OpenSSL's SSL_CTX *, as void *, for what this API does not cover. */
ALOOP_API void *aloop_tls_context_get_ssl_ctx(struct aloop_tls_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_TLS_H */
