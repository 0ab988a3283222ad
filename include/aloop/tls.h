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
 * its names (subjectAltName DNS entries, wildcards as OpenSSL matches them).
 * The chain from load_cert_chain stays the default, also for clients that
 * send no SNI or an unknown name.  ALOOP_EINVAL on a client context or for
 * a certificate without a DNS name; other errors as load_cert_chain.
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

/** OpenSSL's SSL_CTX *, as void *, for what this API does not cover. */
ALOOP_API void *aloop_tls_context_get_ssl_ctx(struct aloop_tls_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_TLS_H */
