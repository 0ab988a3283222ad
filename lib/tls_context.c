/*
 * TLS contexts over OpenSSL 3: one SSL_CTX with safe defaults plus what
 * OpenSSL does not keep for us (SNI certificates, the ALPN list, a client
 * session cache keyed by peer, the last error as text).  The TLS
 * transport makes its SSL objects here.
 */
#include "config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <aloop/log.h>
#include <aloop/server.h>
#include <aloop/tls.h>

#include "tls-int.h"

/*
 * TLS 1.2 suites with forward secrecy and an AEAD cipher only; the filter
 * in set_ciphers() enforces the AEAD part whatever the caller asks for.
 */
#define TLS12_DEFAULT_CIPHERS	"ECDHE+AESGCM:ECDHE+CHACHA20"

/* Bounds the client session cache: one entry per peer, oldest evicted. */
#define CLIENT_SESSIONS_MAX	256

/* ALPN's wire format caps the whole list at 2^16 - 1 bytes. */
#define ALPN_MAX		65535

#define TLS_ERROR_MAX		256

/* Server defaults: one ticket per TLS 1.3 handshake, OpenSSL's timeout. */
#define TICKETS_DEFAULT		1
#define TICKETS_MAX		16
#define SESSION_TIMEOUT_DEFAULT	7200
#define SESSION_TIMEOUT_MAX	604800
#define TICKET_SECRET_MIN	32
#define TICKET_SECRET_MAX	1024

/* Server sessions are only resumed by contexts that set the same id. */
static const unsigned char session_id_ctx[] = "aloop";

/* A certificate the server may present, with its stapled OCSP response. */
struct sni_cert {
	X509		*leaf;
	EVP_PKEY	*key;
	STACK_OF(X509)	*chain;
	unsigned char	*ocsp;		/* DER OCSPResponse, or NULL */
	size_t		 ocsp_len;
};

/*
 * A DNS name of an SNI certificate, lowercased: a name to match exactly,
 * or, for "*.example.com", the part after "*." with wildcard set.
 */
struct sni_name {
	char		*name;
	size_t		 cert;		/* index into sni[] */
	int		 wildcard;
};

/* The longest name a client can send (RFC 1035's 253, and a spare). */
#define SNI_NAME_MAX	255

/* One epoch's ticket key, as OpenSSL's ticket format wants it. */
struct ticket_key {
	unsigned char	 name[16];
	unsigned char	 aes[32];
	unsigned char	 hmac[32];
};

struct client_session {
	char		*key;
	SSL_SESSION	*sess;
	unsigned long	 used;		/* LRU clock */
};

struct aloop_tls_context {
	SSL_CTX		*ssl_ctx;
	int		 refcnt;	/* __atomic: shared by threads */
	int		 side;
	int		 verify;
	int		 check_hostname;
	int		 resumption;

	unsigned char	*alpn;		/* wire format, or NULL */
	size_t		 alpn_len;

	struct sni_cert	 main;		/* load_cert_chain's, kept for OCSP */
	struct sni_cert	*sni;
	size_t		 nsni;
	/* Their names, sorted by (wildcard, name, cert): servername_cb's
	 * index, so a handshake costs one lookup, not a decoding of every
	 * certificate's names. */
	struct sni_name	*names;
	size_t		 nnames;

	/* Servers: resumption settings. */
	unsigned	 num_tickets;
	unsigned long	 cache_size;
	unsigned	 session_timeout;

	/* Servers: ticket keys derived from a secret; see the header. */
	unsigned char	*ticket_secret;	/* NULL: OpenSSL's random keys */
	size_t		 ticket_secret_len;
	char		*ticket_scope;
	EVP_CIPHER	*ticket_cipher;
	pthread_mutex_t	 ticket_lock;
	uint64_t	 key_epoch;	/* of keys[1]; keys[0] and [2] flank it */
	int		 keys_valid;
	struct ticket_key keys[3];
	time_t		(*clock)(void);

	/* Clients: sessions by peer, for resumption.  Loops in several
	 * threads share a context, hence the lock. */
	pthread_mutex_t	 sess_lock;
	struct client_session sessions[CLIENT_SESSIONS_MAX];
	size_t		 nsessions;
	unsigned long	 sess_clock;

	char		 last_error[TLS_ERROR_MAX];
};

/* The SSL ex_data slot holding the session key of a client connection. */
static int ssl_key_idx = -1;
static pthread_once_t ssl_key_once = PTHREAD_ONCE_INIT;

static struct aloop_tls_context *default_ctx;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void
free_key_exdata(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	free(ptr);
}

static void
init_ssl_key_idx(void)
{
	ssl_key_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL,
	    free_key_exdata);
}

/*
 * Record a configuration error as "what: OpenSSL's reason", taking the
 * earliest error on the queue: it names the cause ("no start line"), the
 * later ones only the layers it went through ("PEM lib").
 */
static int
set_error(struct aloop_tls_context *ctx, int code, const char *what,
    const char *fallback)
{
	unsigned long e = ERR_peek_error();
	const char *reason = NULL;

	if (e != 0 && ERR_SYSTEM_ERROR(e))
		reason = strerror(ERR_GET_REASON(e));
	else if (e != 0)
		reason = ERR_reason_error_string(e);
	if (reason == NULL)
		reason = fallback != NULL ? fallback : "unknown error";
	if (what != NULL)
		snprintf(ctx->last_error, sizeof(ctx->last_error), "%s: %s",
		    what, reason);
	else
		snprintf(ctx->last_error, sizeof(ctx->last_error), "%s",
		    reason);
	ERR_clear_error();
	return code;
}

static void
clear_error(struct aloop_tls_context *ctx)
{
	ctx->last_error[0] = '\0';
	ERR_clear_error();
}

/* ------------------------------------------------ OpenSSL callbacks */

/* The server picks the first protocol of its own list the client offers. */
static int
alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	struct aloop_tls_context *ctx = arg;
	unsigned char *sel;

	(void)ssl;
	if (ctx->alpn == NULL || inlen == 0)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_select_next_proto(&sel, outlen, ctx->alpn,
	    (unsigned int)ctx->alpn_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* DNS names compare without regard to ASCII case (RFC 4343). */
static void
sni_lower(char *dst, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ?
		    src[i] - 'A' + 'a' : src[i]);
	dst[len] = '\0';
}

static int
sni_name_cmp(int wildcard, const char *name, size_t cert,
    const struct sni_name *e)
{
	int c;

	if (wildcard != e->wildcard)
		return wildcard < e->wildcard ? -1 : 1;
	if ((c = strcmp(name, e->name)) != 0)
		return c;
	return cert < e->cert ? -1 : cert > e->cert;
}

/* The first entry not below (wildcard, name, cert). */
static size_t
sni_lower_bound(const struct aloop_tls_context *ctx, int wildcard,
    const char *name, size_t cert)
{
	size_t lo = 0, hi = ctx->nnames, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (sni_name_cmp(wildcard, name, cert, &ctx->names[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The first certificate (in the order added) with this name, or -1. */
static long
sni_find(const struct aloop_tls_context *ctx, int wildcard, const char *name)
{
	size_t i = sni_lower_bound(ctx, wildcard, name, 0);

	if (i < ctx->nnames && ctx->names[i].wildcard == wildcard &&
	    strcmp(ctx->names[i].name, name) == 0)
		return (long)ctx->names[i].cert;
	return -1;
}

/*
 * The certificate for a server name: one whose names hold it exactly, else
 * one with a wildcard for its first label ("*.example.com" matches
 * "www.example.com", neither "example.com" nor "a.www.example.com"), as
 * X509_check_host matches with partial wildcards off; the first added
 * wins a tie.  -1: none.
 */
static long
sni_select(const struct aloop_tls_context *ctx, const char *name)
{
	char buf[SNI_NAME_MAX + 1], *dot;
	size_t i, len = strlen(name);
	long k;

	if (len == 0 || len > SNI_NAME_MAX)
		return -1;
	sni_lower(buf, name, len);
	if ((k = sni_find(ctx, 0, buf)) >= 0)
		return k;
	if ((dot = strchr(buf, '.')) == NULL || dot == buf)
		return -1;
	/* What a wildcard stands for: letters, digits and hyphens. */
	for (i = 0; buf + i < dot; i++)
		if (!((buf[i] >= 'a' && buf[i] <= 'z') ||
		    (buf[i] >= '0' && buf[i] <= '9') || buf[i] == '-'))
			return -1;
	return sni_find(ctx, 1, dot + 1);
}

/*
 * Runs while OpenSSL processes the ClientHello, before it picks the
 * certificate, so switching the SSL object's certificate here is what the
 * handshake then uses.  An unknown name keeps the default chain: refusing
 * would only break clients that send an alias we did not list.
 */
static int
servername_cb(SSL *ssl, int *alert, void *arg)
{
	struct aloop_tls_context *ctx = arg;
	const struct sni_cert *e;
	const char *name;
	long k;

	name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL || ctx->nnames == 0 ||
	    (k = sni_select(ctx, name)) < 0)
		return SSL_TLSEXT_ERR_OK;
	e = &ctx->sni[k];
	if (SSL_use_cert_and_key(ssl, e->leaf, e->key, e->chain, 1) != 1) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* ---------------------------------------------------- ticket keys */

int
aloop__tls_ticket_key(const unsigned char *secret, size_t len,
    const char *scope, uint64_t epoch, unsigned char out[80])
{
	static const char label[] = "aloop session ticket key v1";
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5];
	unsigned char *info;
	size_t slen = scope != NULL ? strlen(scope) : 0, ilen;
	int rc = -1;

	/* info = label, scope, NUL, the epoch big-endian: unambiguous. */
	ilen = sizeof(label) + slen + 1 + 8;
	if ((info = malloc(ilen)) == NULL)
		return -1;
	memcpy(info, label, sizeof(label));
	if (slen > 0)
		memcpy(info + sizeof(label), scope, slen);
	info[sizeof(label) + slen] = '\0';
	for (int i = 0; i < 8; i++)
		info[ilen - 1 - i] = (unsigned char)(epoch >> (8 * i));
	if ((kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL)) != NULL)
		kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (kctx != NULL) {
		params[0] = OSSL_PARAM_construct_utf8_string(
		    OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
		params[1] = OSSL_PARAM_construct_octet_string(
		    OSSL_KDF_PARAM_KEY, (void *)secret, len);
		params[2] = OSSL_PARAM_construct_octet_string(
		    OSSL_KDF_PARAM_INFO, info, ilen);
		params[3] = OSSL_PARAM_construct_end();
		if (EVP_KDF_derive(kctx, out, 80, params) == 1)
			rc = 0;
	}
	EVP_KDF_CTX_free(kctx);
	free(info);
	ERR_clear_error();
	return rc;
}

static time_t
ticket_now(const struct aloop_tls_context *ctx)
{
	return ctx->clock != NULL ? ctx->clock() : time(NULL);
}

/*
 * Copy the keys of the epochs around now into @keys (previous, current,
 * next), deriving them when the epoch has moved on.  Loops in several
 * threads share a context, hence the lock; the copy is the caller's to
 * wipe.
 */
static int
ticket_keys(struct aloop_tls_context *ctx, struct ticket_key keys[3])
{
	time_t now = ticket_now(ctx);
	uint64_t epoch;
	unsigned char raw[80];
	int rc = 0;

	if (now < 0)
		now = 0;
	epoch = (uint64_t)now / ctx->session_timeout;
	pthread_mutex_lock(&ctx->ticket_lock);
	if (!ctx->keys_valid || ctx->key_epoch != epoch) {
		ctx->keys_valid = 0;
		for (int i = 0; i < 3 && rc == 0; i++) {
			if (aloop__tls_ticket_key(ctx->ticket_secret,
			    ctx->ticket_secret_len, ctx->ticket_scope,
			    epoch - 1 + (uint64_t)i, raw) != 0) {
				rc = -1;
				break;
			}
			memcpy(ctx->keys[i].name, raw, 16);
			memcpy(ctx->keys[i].aes, raw + 16, 32);
			memcpy(ctx->keys[i].hmac, raw + 48, 32);
		}
		OPENSSL_cleanse(raw, sizeof(raw));
		if (rc == 0) {
			ctx->key_epoch = epoch;
			ctx->keys_valid = 1;
		}
	}
	if (rc == 0)
		memcpy(keys, ctx->keys, sizeof(ctx->keys));
	pthread_mutex_unlock(&ctx->ticket_lock);
	return rc;
}

/*
 * OpenSSL's ticket format (AES-256-CBC, then HMAC-SHA256 over it) with our
 * keys.  Encrypting: the current epoch's key; a failure issues no ticket
 * rather than failing the handshake.  Decrypting: an unknown key name
 * means a full handshake; a neighbouring epoch's key resumes and asks
 * for a fresh ticket (2).
 */
static int
ticket_key_cb(SSL *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct aloop_tls_context *ctx = aloop__tls_context_of(ssl);
	struct ticket_key keys[3];
	const struct ticket_key *k = NULL;
	OSSL_PARAM params[3];
	int rc, i, ivlen;

	if (ctx == NULL || ctx->ticket_secret == NULL ||
	    ticket_keys(ctx, keys) != 0)
		return enc ? 0 : -1;
	ivlen = EVP_CIPHER_get_iv_length(ctx->ticket_cipher);
	if (enc) {
		k = &keys[1];
		rc = 1;
		memcpy(name, k->name, 16);
		if (RAND_bytes(iv, ivlen) != 1 ||
		    EVP_EncryptInit_ex(cctx, ctx->ticket_cipher, NULL, k->aes,
		    iv) != 1)
			rc = 0;
	} else {
		rc = 0;
		/*
		 * TLS 1.3 always gets a fresh ticket, as with OpenSSL's own
		 * keys: its tickets are meant for one use (RFC 8446, C.4),
		 * and a resumption that issues none leaves the client none.
		 */
		for (i = 0; i < 3; i++)
			if (CRYPTO_memcmp(name, keys[i].name, 16) == 0) {
				k = &keys[i];
				rc = i == 1 && SSL_version(ssl) < TLS1_3_VERSION ?
				    1 : 2;
				break;
			}
		if (k != NULL && EVP_DecryptInit_ex(cctx, ctx->ticket_cipher,
		    NULL, k->aes, iv) != 1)
			rc = -1;
	}
	if (k != NULL && rc > 0) {
		params[0] = OSSL_PARAM_construct_octet_string(
		    OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac));
		params[1] = OSSL_PARAM_construct_utf8_string(
		    OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
		params[2] = OSSL_PARAM_construct_end();
		if (EVP_MAC_CTX_set_params(hctx, params) != 1)
			rc = enc ? 0 : -1;
	}
	OPENSSL_cleanse(keys, sizeof(keys));
	return rc;
}

/*
 * The client asked for the certificate's status: staple the response of
 * the certificate this handshake presents (the SNI callback, which ran
 * before, may have switched it).  OpenSSL frees the copy.
 */
static int
status_cb(SSL *ssl, void *arg)
{
	struct aloop_tls_context *ctx = arg;
	const struct sni_cert *e = NULL;
	X509 *x = SSL_get_certificate(ssl);
	unsigned char *copy;
	size_t i;

	if (x == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (ctx->main.leaf != NULL && (ctx->main.leaf == x ||
	    X509_cmp(ctx->main.leaf, x) == 0))
		e = &ctx->main;
	for (i = 0; e == NULL && i < ctx->nsni; i++)
		if (ctx->sni[i].leaf == x || X509_cmp(ctx->sni[i].leaf, x) == 0)
			e = &ctx->sni[i];
	if (e == NULL || e->ocsp == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if ((copy = OPENSSL_memdup(e->ocsp, e->ocsp_len)) == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)e->ocsp_len) !=
	    1) {
		OPENSSL_free(copy);
		return SSL_TLSEXT_ERR_NOACK;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* Keep the newest session per peer; the callback's reference is ours. */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct aloop_tls_context *ctx = aloop__tls_context_of(ssl);
	const char *key;
	struct client_session *slot = NULL;
	size_t i;

	if (ctx == NULL || ssl_key_idx < 0 ||
	    (key = SSL_get_ex_data(ssl, ssl_key_idx)) == NULL ||
	    !SSL_SESSION_is_resumable(sess))
		return 0;
	pthread_mutex_lock(&ctx->sess_lock);
	for (i = 0; i < ctx->nsessions; i++)
		if (strcmp(ctx->sessions[i].key, key) == 0) {
			slot = &ctx->sessions[i];
			break;
		}
	if (slot == NULL && ctx->nsessions < CLIENT_SESSIONS_MAX) {
		char *k = strdup(key);

		if (k == NULL) {
			pthread_mutex_unlock(&ctx->sess_lock);
			return 0;
		}
		slot = &ctx->sessions[ctx->nsessions++];
		slot->key = k;
		slot->sess = NULL;
	}
	if (slot == NULL) {
		/* Full: evict the least recently used peer. */
		char *k = strdup(key);

		if (k == NULL) {
			pthread_mutex_unlock(&ctx->sess_lock);
			return 0;
		}
		slot = &ctx->sessions[0];
		for (i = 1; i < ctx->nsessions; i++)
			if (ctx->sessions[i].used < slot->used)
				slot = &ctx->sessions[i];
		free(slot->key);
		slot->key = k;
	}
	if (slot->sess != NULL)
		SSL_SESSION_free(slot->sess);
	slot->sess = sess;
	slot->used = ++ctx->sess_clock;
	pthread_mutex_unlock(&ctx->sess_lock);
	return 1;
}

static SSL_SESSION *
find_session(struct aloop_tls_context *ctx, const char *key)
{
	SSL_SESSION *sess = NULL;
	size_t i;

	pthread_mutex_lock(&ctx->sess_lock);
	for (i = 0; i < ctx->nsessions; i++) {
		if (strcmp(ctx->sessions[i].key, key) != 0 ||
		    ctx->sessions[i].sess == NULL)
			continue;
		sess = ctx->sessions[i].sess;
		SSL_SESSION_up_ref(sess);
		ctx->sessions[i].used = ++ctx->sess_clock;
		break;
	}
	pthread_mutex_unlock(&ctx->sess_lock);
	return sess;
}

static void
flush_sessions(struct aloop_tls_context *ctx)
{
	size_t i;

	pthread_mutex_lock(&ctx->sess_lock);
	for (i = 0; i < ctx->nsessions; i++) {
		free(ctx->sessions[i].key);
		if (ctx->sessions[i].sess != NULL)
			SSL_SESSION_free(ctx->sessions[i].sess);
	}
	ctx->nsessions = 0;
	pthread_mutex_unlock(&ctx->sess_lock);
}

/* --------------------------------------------------------- lifecycle */

static void
apply_resumption(struct aloop_tls_context *ctx)
{
	SSL_CTX *c = ctx->ssl_ctx;

	if (ctx->side == ALOOP_TLS_SERVER) {
		/*
		 * Tickets off means none at all: with SSL_OP_NO_TICKET alone
		 * a TLS 1.3 server would still send stateful ones.
		 */
		if (ctx->resumption && ctx->num_tickets > 0) {
			SSL_CTX_clear_options(c, SSL_OP_NO_TICKET);
			SSL_CTX_set_num_tickets(c, ctx->num_tickets);
		} else {
			SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
			SSL_CTX_set_num_tickets(c, 0);
		}
		if (ctx->resumption && ctx->cache_size > 0) {
			SSL_CTX_set_session_cache_mode(c,
			    SSL_SESS_CACHE_SERVER);
			SSL_CTX_sess_set_cache_size(c, (long)ctx->cache_size);
		} else
			SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	} else {
		/*
		 * OpenSSL's internal client cache is keyed by session id,
		 * not by peer, so sessions are kept in our own table.
		 */
		if (ctx->resumption) {
			SSL_CTX_clear_options(c, SSL_OP_NO_TICKET);
			SSL_CTX_set_session_cache_mode(c,
			    SSL_SESS_CACHE_CLIENT |
			    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		} else {
			SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
			SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
			flush_sessions(ctx);
		}
	}
}

static void
apply_verify(struct aloop_tls_context *ctx)
{
	int mode = SSL_VERIFY_NONE;

	if (ctx->verify != ALOOP_TLS_VERIFY_NONE)
		mode = SSL_VERIFY_PEER;
	/*
	 * A server always presents a certificate, so for clients OPTIONAL
	 * is REQUIRED; servers only fail a client that sends none when
	 * REQUIRED.
	 */
	if (ctx->side == ALOOP_TLS_SERVER &&
	    ctx->verify == ALOOP_TLS_VERIFY_REQUIRED)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ctx->ssl_ctx, mode, NULL);
}

int
aloop_tls_context_new(int side, struct aloop_tls_context **out)
{
	struct aloop_tls_context *ctx;
	SSL_CTX *c;

	*out = NULL;
	if (side != ALOOP_TLS_CLIENT && side != ALOOP_TLS_SERVER)
		return ALOOP_EINVAL;
	pthread_once(&ssl_key_once, init_ssl_key_idx);
	if (ssl_key_idx < 0)
		return ALOOP_ENOMEM;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return ALOOP_ENOMEM;
	if (pthread_mutex_init(&ctx->sess_lock, NULL) != 0) {
		free(ctx);
		return ALOOP_ENOMEM;
	}
	if (pthread_mutex_init(&ctx->ticket_lock, NULL) != 0) {
		pthread_mutex_destroy(&ctx->sess_lock);
		free(ctx);
		return ALOOP_ENOMEM;
	}
	c = SSL_CTX_new(side == ALOOP_TLS_SERVER ? TLS_server_method() :
	    TLS_client_method());
	if (c == NULL) {
		ERR_clear_error();
		pthread_mutex_destroy(&ctx->ticket_lock);
		pthread_mutex_destroy(&ctx->sess_lock);
		free(ctx);
		return ALOOP_ENOMEM;
	}
	ctx->ssl_ctx = c;
	ctx->refcnt = 1;
	ctx->side = side;
	ctx->check_hostname = side == ALOOP_TLS_CLIENT;
	ctx->verify = side == ALOOP_TLS_CLIENT ? ALOOP_TLS_VERIFY_REQUIRED :
	    ALOOP_TLS_VERIFY_NONE;
	ctx->resumption = 1;
	ctx->num_tickets = TICKETS_DEFAULT;
	ctx->cache_size = SSL_SESSION_CACHE_MAX_SIZE_DEFAULT;
	ctx->session_timeout = SESSION_TIMEOUT_DEFAULT;
	SSL_CTX_set_app_data(c, ctx);
	SSL_CTX_set_timeout(c, SESSION_TIMEOUT_DEFAULT);

	/*
	 * Renegotiation and compression have only ever brought attacks
	 * (CRIME, renegotiation DoS); buffers are released while idle so
	 * that thousands of quiet connections cost little; moving write
	 * buffers because the transport's buffer may move between retries.
	 * An EOF without close_notify reads as a plain EOF, as asyncio does:
	 * the protocol decides whether the data was complete.
	 */
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(c, TLS12_DEFAULT_CIPHERS) != 1 ||
	    SSL_CTX_set_session_id_context(c, session_id_ctx,
	    sizeof(session_id_ctx) - 1) != 1) {
		ERR_clear_error();
		aloop_tls_context_release(ctx);
		return ALOOP_ENOMEM;
	}
	if (side == ALOOP_TLS_SERVER) {
		SSL_CTX_set_tlsext_servername_callback(c, servername_cb);
		SSL_CTX_set_tlsext_servername_arg(c, ctx);
		SSL_CTX_set_alpn_select_cb(c, alpn_select_cb, ctx);
		SSL_CTX_set_tlsext_status_cb(c, status_cb);
		SSL_CTX_set_tlsext_status_arg(c, ctx);
	} else {
		SSL_CTX_sess_set_new_cb(c, new_session_cb);
		/* A machine without a CA store still gets a context; its
		 * handshakes then fail verification, which says why. */
		if (SSL_CTX_set_default_verify_paths(c) != 1)
			ERR_clear_error();
	}
	apply_verify(ctx);
	apply_resumption(ctx);
	*out = ctx;
	return 0;
}

static void
free_pair(struct sni_cert *p)
{
	X509_free(p->leaf);
	EVP_PKEY_free(p->key);
	sk_X509_pop_free(p->chain, X509_free);
	free(p->ocsp);
	memset(p, 0, sizeof(*p));
}

static void
clear_ticket_secret(struct aloop_tls_context *ctx)
{
	if (ctx->ticket_secret != NULL)
		OPENSSL_cleanse(ctx->ticket_secret, ctx->ticket_secret_len);
	free(ctx->ticket_secret);
	ctx->ticket_secret = NULL;
	ctx->ticket_secret_len = 0;
	free(ctx->ticket_scope);
	ctx->ticket_scope = NULL;
	EVP_CIPHER_free(ctx->ticket_cipher);
	ctx->ticket_cipher = NULL;
	OPENSSL_cleanse(ctx->keys, sizeof(ctx->keys));
	ctx->keys_valid = 0;
}

struct aloop_tls_context *
aloop_tls_context_ref(struct aloop_tls_context *ctx)
{
	if (ctx != NULL && ctx != ALOOP_TLS_DEFAULT)
		__atomic_add_fetch(&ctx->refcnt, 1, __ATOMIC_RELAXED);
	return ctx;
}

void
aloop_tls_context_release(struct aloop_tls_context *ctx)
{
	size_t i;

	if (ctx == NULL || ctx == ALOOP_TLS_DEFAULT)
		return;
	if (__atomic_sub_fetch(&ctx->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	flush_sessions(ctx);
	free_pair(&ctx->main);
	for (i = 0; i < ctx->nsni; i++)
		free_pair(&ctx->sni[i]);
	free(ctx->sni);
	for (i = 0; i < ctx->nnames; i++)
		free(ctx->names[i].name);
	free(ctx->names);
	free(ctx->alpn);
	clear_ticket_secret(ctx);
	SSL_CTX_free(ctx->ssl_ctx);
	pthread_mutex_destroy(&ctx->ticket_lock);
	pthread_mutex_destroy(&ctx->sess_lock);
	free(ctx);
}

const char *
aloop_tls_context_last_error(const struct aloop_tls_context *ctx)
{
	return ctx->last_error;
}

void *
aloop_tls_context_get_ssl_ctx(struct aloop_tls_context *ctx)
{
	return ctx->ssl_ctx;
}

/* ------------------------------------------------------ certificates */

static int
no_password_cb(char *buf, int size, int rwflag, void *u)
{
	/* Encrypted keys need a prompt a daemon does not have. */
	(void)buf; (void)size; (void)rwflag; (void)u;
	return 0;
}

/*
 * Load a chain and key into fresh objects, so that a failure leaves the
 * context as it was and a success replaces the old pair at once.
 */
static int
load_pair(struct aloop_tls_context *ctx, const char *certfile,
    const char *keyfile, struct sni_cert *out)
{
	BIO *bio;
	X509 *x;
	int rc;

	memset(out, 0, sizeof(*out));
	if (certfile == NULL)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "no certificate file given");
	if (keyfile == NULL)
		keyfile = certfile;
	ERR_clear_error();
	if ((bio = BIO_new_file(certfile, "r")) == NULL)
		return set_error(ctx, ALOOP_ENOENT, certfile, "cannot open");
	out->leaf = PEM_read_bio_X509_AUX(bio, NULL, no_password_cb, NULL);
	if (out->leaf == NULL) {
		BIO_free(bio);
		return set_error(ctx, ALOOP_EINVAL, certfile,
		    "no certificate");
	}
	if ((out->chain = sk_X509_new_null()) == NULL) {
		BIO_free(bio);
		rc = set_error(ctx, ALOOP_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, no_password_cb, NULL)) !=
	    NULL) {
		if (sk_X509_push(out->chain, x) <= 0) {
			X509_free(x);
			BIO_free(bio);
			rc = set_error(ctx, ALOOP_ENOMEM, NULL,
			    "out of memory");
			goto fail;
		}
	}
	BIO_free(bio);
	/* The loop ends on "no start line" at the end of the file. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		rc = set_error(ctx, ALOOP_EINVAL, certfile,
		    "bad certificate");
		goto fail;
	}
	ERR_clear_error();

	if ((bio = BIO_new_file(keyfile, "r")) == NULL) {
		rc = set_error(ctx, ALOOP_ENOENT, keyfile, "cannot open");
		goto fail;
	}
	out->key = PEM_read_bio_PrivateKey(bio, NULL, no_password_cb, NULL);
	BIO_free(bio);
	if (out->key == NULL) {
		/*
		 * OpenSSL 3's decoders say only "unsupported" for a file with
		 * no key in it; say what we looked for as well.
		 */
		char what[TLS_ERROR_MAX];

		snprintf(what, sizeof(what), "%s: no private key found",
		    keyfile);
		rc = set_error(ctx, ALOOP_EINVAL, what, "no start line");
		goto fail;
	}
	if (X509_check_private_key(out->leaf, out->key) != 1) {
		rc = set_error(ctx, ALOOP_EINVAL, keyfile,
		    "key values mismatch");
		goto fail;
	}
	return 0;
fail:
	X509_free(out->leaf);
	EVP_PKEY_free(out->key);
	sk_X509_pop_free(out->chain, X509_free);
	memset(out, 0, sizeof(*out));
	return rc;
}


int
aloop_tls_context_load_cert_chain(struct aloop_tls_context *ctx,
    const char *certfile, const char *keyfile)
{
	struct sni_cert p;
	int rc;

	clear_error(ctx);
	if ((rc = load_pair(ctx, certfile, keyfile, &p)) != 0)
		return rc;
	rc = SSL_CTX_use_cert_and_key(ctx->ssl_ctx, p.leaf, p.key, p.chain,
	    1);
	if (rc != 1) {
		free_pair(&p);
		return set_error(ctx, ALOOP_EINVAL, certfile,
		    "certificate refused");
	}
	/* Kept to match an OCSP response to it; a new chain needs its own. */
	free_pair(&ctx->main);
	ctx->main = p;
	return 0;
}

/* Index name for certificate cert; 0, or ALOOP_ENOMEM. */
static int
sni_name_add(struct aloop_tls_context *ctx, const char *name, size_t len,
    size_t cert)
{
	struct sni_name e, *n;
	size_t at;

	e.cert = cert;
	e.wildcard = len > 2 && name[0] == '*' && name[1] == '.';
	if (e.wildcard) {
		name += 2;
		len -= 2;
	}
	if ((e.name = malloc(len + 1)) == NULL)
		return ALOOP_ENOMEM;
	sni_lower(e.name, name, len);
	at = sni_lower_bound(ctx, e.wildcard, e.name, cert);
	if (at < ctx->nnames && sni_name_cmp(e.wildcard, e.name, cert,
	    &ctx->names[at]) == 0) {
		free(e.name);		/* listed twice in one certificate */
		return 0;
	}
	if ((n = realloc(ctx->names, (ctx->nnames + 1) * sizeof(*n))) ==
	    NULL) {
		free(e.name);
		return ALOOP_ENOMEM;
	}
	ctx->names = n;
	memmove(&n[at + 1], &n[at], (ctx->nnames - at) * sizeof(*n));
	n[at] = e;
	ctx->nnames++;
	return 0;
}

/*
 * Index the subjectAltName DNS names of certificate cert; how many could
 * ever match a client's name (a wildcard counts only as the whole first
 * label above two more, "*.example.com"), or ALOOP_ENOMEM.
 */
static int
sni_index_cert(struct aloop_tls_context *ctx, X509 *x, size_t cert)
{
	GENERAL_NAMES *names;
	const GENERAL_NAME *g;
	const char *d, *star;
	size_t len;
	int i, n = 0, rc = 0;

	names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (names == NULL)
		return 0;
	for (i = 0; rc == 0 && i < sk_GENERAL_NAME_num(names); i++) {
		g = sk_GENERAL_NAME_value(names, i);
		if (g->type != GEN_DNS)
			continue;
		d = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
		len = (size_t)ASN1_STRING_length(g->d.dNSName);
		if (len == 0 || len > SNI_NAME_MAX || memchr(d, '\0', len))
			continue;
		star = memchr(d, '*', len);
		/* A star anywhere else, or "*.com": never matches. */
		if (star != NULL && (star != d || len < 3 || d[1] != '.' ||
		    memchr(d + 1, '*', len - 1) != NULL ||
		    memchr(d + 2, '.', len - 2) == NULL))
			continue;
		if ((rc = sni_name_add(ctx, d, len, cert)) == 0)
			n++;
	}
	GENERAL_NAMES_free(names);
	return rc != 0 ? rc : n;
}

/* Drop certificate cert's names (the last one added) from the index. */
static void
sni_unindex_cert(struct aloop_tls_context *ctx, size_t cert)
{
	size_t i, j;

	for (i = j = 0; i < ctx->nnames; i++) {
		if (ctx->names[i].cert == cert)
			free(ctx->names[i].name);
		else
			ctx->names[j++] = ctx->names[i];
	}
	ctx->nnames = j;
}

int
aloop_tls_context_add_sni_cert(struct aloop_tls_context *ctx,
    const char *certfile, const char *keyfile)
{
	struct sni_cert p, *n;
	int rc;

	clear_error(ctx);
	if (ctx->side != ALOOP_TLS_SERVER)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "SNI certificates are for server contexts");
	if ((rc = load_pair(ctx, certfile, keyfile, &p)) != 0)
		return rc;
	n = realloc(ctx->sni, (ctx->nsni + 1) * sizeof(*n));
	if (n == NULL) {
		free_pair(&p);
		return set_error(ctx, ALOOP_ENOMEM, NULL, "out of memory");
	}
	ctx->sni = n;
	if ((rc = sni_index_cert(ctx, p.leaf, ctx->nsni)) <= 0) {
		sni_unindex_cert(ctx, ctx->nsni);
		free_pair(&p);
		if (rc < 0)
			return set_error(ctx, rc, NULL, "out of memory");
		return set_error(ctx, ALOOP_EINVAL, certfile,
		    "no subjectAltName DNS name to match SNI against");
	}
	ctx->sni[ctx->nsni++] = p;
	return 0;
}

/* ------------------------------------------------------ verification */

int
aloop_tls_context_load_verify_locations(struct aloop_tls_context *ctx,
    const char *cafile, const char *capath)
{
	clear_error(ctx);
	if (cafile == NULL && capath == NULL)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "neither a CA file nor a CA directory given");
	if (SSL_CTX_load_verify_locations(ctx->ssl_ctx, cafile, capath) != 1)
		return set_error(ctx, ALOOP_EINVAL,
		    cafile != NULL ? cafile : capath, "cannot load CAs");
	if (ctx->side == ALOOP_TLS_SERVER && cafile != NULL) {
		/* Name the accepted CAs in the CertificateRequest, so that
		 * clients with several certificates pick the right one. */
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);

		if (names != NULL)
			SSL_CTX_set_client_CA_list(ctx->ssl_ctx, names);
		ERR_clear_error();
	}
	return 0;
}

int
aloop_tls_context_set_default_verify_paths(struct aloop_tls_context *ctx)
{
	clear_error(ctx);
	if (SSL_CTX_set_default_verify_paths(ctx->ssl_ctx) != 1)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "cannot load the system CA store");
	return 0;
}

int
aloop_tls_context_set_verify(struct aloop_tls_context *ctx, int mode)
{
	clear_error(ctx);
	if (mode != ALOOP_TLS_VERIFY_NONE &&
	    mode != ALOOP_TLS_VERIFY_OPTIONAL &&
	    mode != ALOOP_TLS_VERIFY_REQUIRED)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "unknown verify mode");
	ctx->verify = mode;
	apply_verify(ctx);
	return 0;
}

void
aloop_tls_context_set_check_hostname(struct aloop_tls_context *ctx, int on)
{
	ctx->check_hostname = on != 0;
}

int
aloop_tls_context_get_check_hostname(const struct aloop_tls_context *ctx)
{
	return ctx->check_hostname;
}

/* ------------------------------------------------ protocol settings */

int
aloop_tls_context_set_min_version(struct aloop_tls_context *ctx,
    const char *version)
{
	int v;

	clear_error(ctx);
	if (version == NULL)
		return set_error(ctx, ALOOP_EINVAL, NULL, "no version given");
	if (strcmp(version, "TLSv1.2") == 0)
		v = TLS1_2_VERSION;
	else if (strcmp(version, "TLSv1.3") == 0)
		v = TLS1_3_VERSION;
	else if (strcmp(version, "TLSv1.1") == 0 ||
	    strcmp(version, "TLSv1") == 0 ||
	    strcmp(version, "TLSv1.0") == 0 ||
	    strcmp(version, "SSLv3") == 0)
		return set_error(ctx, ALOOP_EINVAL, version,
		    "older than TLSv1.2, refused");
	else
		return set_error(ctx, ALOOP_EINVAL, version,
		    "unknown TLS version (TLSv1.2 or TLSv1.3)");
	if (SSL_CTX_set_min_proto_version(ctx->ssl_ctx, v) != 1)
		return set_error(ctx, ALOOP_EINVAL, version,
		    "refused by OpenSSL");
	return 0;
}

/*
 * OpenSSL has no "AEAD only" keyword, so evaluate the caller's list on a
 * scratch context and keep the TLS 1.2 suites that are AEAD and
 * authenticated; the real context changes only if some remain.
 */
int
aloop_tls_context_set_ciphers(struct aloop_tls_context *ctx,
    const char *list)
{
	STACK_OF(SSL_CIPHER) *sk;
	SSL_CTX *scratch;
	char *out = NULL;
	size_t len = 0, cap = 0;
	int i, rc = 0;

	clear_error(ctx);
	if (list == NULL || *list == '\0')
		return set_error(ctx, ALOOP_EINVAL, NULL, "empty cipher list");
	if ((scratch = SSL_CTX_new(TLS_method())) == NULL)
		return set_error(ctx, ALOOP_ENOMEM, NULL, "out of memory");
	if (SSL_CTX_set_cipher_list(scratch, list) != 1) {
		SSL_CTX_free(scratch);
		return set_error(ctx, ALOOP_EINVAL, list,
		    "no cipher matches");
	}
	sk = SSL_CTX_get_ciphers(scratch);
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
		const char *name = SSL_CIPHER_get_name(c);
		size_t n = strlen(name);

		if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any ||
		    !SSL_CIPHER_is_aead(c) ||
		    SSL_CIPHER_get_auth_nid(c) == NID_auth_null)
			continue;
		if (len + n + 2 > cap) {
			size_t ncap = (cap + n + 2) * 2;
			char *p = realloc(out, ncap);

			if (p == NULL) {
				rc = ALOOP_ENOMEM;
				break;
			}
			out = p;
			cap = ncap;
		}
		if (len > 0)
			out[len++] = ':';
		memcpy(out + len, name, n);
		len += n;
		out[len] = '\0';
	}
	SSL_CTX_free(scratch);
	if (rc == 0 && len == 0)
		rc = set_error(ctx, ALOOP_EINVAL, list,
		    "no AEAD cipher for TLS 1.2 in the list");
	else if (rc == ALOOP_ENOMEM)
		set_error(ctx, rc, NULL, "out of memory");
	else if (SSL_CTX_set_cipher_list(ctx->ssl_ctx, out) != 1)
		rc = set_error(ctx, ALOOP_EINVAL, list, "refused by OpenSSL");
	free(out);
	return rc;
}

int
aloop_tls_context_set_ciphersuites(struct aloop_tls_context *ctx,
    const char *list)
{
	clear_error(ctx);
	if (list == NULL || *list == '\0')
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "empty ciphersuite list");
	if (SSL_CTX_set_ciphersuites(ctx->ssl_ctx, list) != 1)
		return set_error(ctx, ALOOP_EINVAL, list,
		    "no TLS 1.3 ciphersuite matches");
	return 0;
}

int
aloop_tls_context_set_alpn_protocols(struct aloop_tls_context *ctx,
    const char *const *protocols, size_t n)
{
	unsigned char *wire;
	size_t i, len = 0, off = 0;

	clear_error(ctx);
	if (n == 0) {
		/* No list: no ALPN offered or accepted. */
		free(ctx->alpn);
		ctx->alpn = NULL;
		ctx->alpn_len = 0;
		if (ctx->side == ALOOP_TLS_CLIENT)
			SSL_CTX_set_alpn_protos(ctx->ssl_ctx, NULL, 0);
		return 0;
	}
	if (protocols == NULL)
		return set_error(ctx, ALOOP_EINVAL, NULL, "no protocol list");
	for (i = 0; i < n; i++) {
		size_t l = protocols[i] != NULL ? strlen(protocols[i]) : 0;

		if (l == 0 || l > 255)
			return set_error(ctx, ALOOP_EINVAL, NULL,
			    "an ALPN protocol name must be 1 to 255 bytes");
		len += 1 + l;
		if (len > ALPN_MAX)
			return set_error(ctx, ALOOP_EINVAL, NULL,
			    "ALPN protocol list too long");
	}
	if ((wire = malloc(len)) == NULL)
		return set_error(ctx, ALOOP_ENOMEM, NULL, "out of memory");
	for (i = 0; i < n; i++) {
		size_t l = strlen(protocols[i]);

		wire[off++] = (unsigned char)l;
		memcpy(wire + off, protocols[i], l);
		off += l;
	}
	/* SSL_CTX_set_alpn_protos returns 0 on success, unlike the rest. */
	if (ctx->side == ALOOP_TLS_CLIENT &&
	    SSL_CTX_set_alpn_protos(ctx->ssl_ctx, wire,
	    (unsigned int)len) != 0) {
		free(wire);
		return set_error(ctx, ALOOP_ENOMEM, NULL, "out of memory");
	}
	free(ctx->alpn);
	ctx->alpn = wire;
	ctx->alpn_len = len;
	return 0;
}

void
aloop_tls_context_set_session_resumption(struct aloop_tls_context *ctx,
    int on)
{
	ctx->resumption = on != 0;
	apply_resumption(ctx);
}

int
aloop_tls_context_set_session_tickets(struct aloop_tls_context *ctx,
    unsigned n)
{
	clear_error(ctx);
	if (ctx->side != ALOOP_TLS_SERVER)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "session tickets are issued by servers");
	if (n > TICKETS_MAX)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "at most 16 session tickets per handshake");
	ctx->num_tickets = n;
	apply_resumption(ctx);
	return 0;
}

void
aloop_tls_context_set_session_cache_size(struct aloop_tls_context *ctx,
    unsigned long n)
{
	ctx->cache_size = n;
	apply_resumption(ctx);
}

int
aloop_tls_context_set_session_timeout(struct aloop_tls_context *ctx,
    unsigned seconds)
{
	clear_error(ctx);
	if (seconds < 1 || seconds > SESSION_TIMEOUT_MAX)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "session timeout out of range (1 to 604800 seconds)");
	SSL_CTX_set_timeout(ctx->ssl_ctx, (long)seconds);
	pthread_mutex_lock(&ctx->ticket_lock);
	ctx->session_timeout = seconds;
	ctx->keys_valid = 0;
	pthread_mutex_unlock(&ctx->ticket_lock);
	return 0;
}

int
aloop_tls_context_set_ticket_secret(struct aloop_tls_context *ctx,
    const void *secret, size_t len, const char *scope)
{
	unsigned char *copy;
	char *sc;
	EVP_CIPHER *cipher;

	clear_error(ctx);
	if (ctx->side != ALOOP_TLS_SERVER)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "ticket keys are for server contexts");
	if (secret == NULL || len < TICKET_SECRET_MIN ||
	    len > TICKET_SECRET_MAX)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "a ticket secret has 32 to 1024 bytes");
	/* Fetched once: an implicit fetch per ticket costs a lock. */
	if ((cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)) == NULL)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "AES-256-CBC unavailable");
	copy = malloc(len);
	sc = strdup(scope != NULL ? scope : "");
	if (copy == NULL || sc == NULL) {
		free(copy);
		free(sc);
		EVP_CIPHER_free(cipher);
		return set_error(ctx, ALOOP_ENOMEM, NULL, "out of memory");
	}
	memcpy(copy, secret, len);
	pthread_mutex_lock(&ctx->ticket_lock);
	clear_ticket_secret(ctx);
	ctx->ticket_secret = copy;
	ctx->ticket_secret_len = len;
	ctx->ticket_scope = sc;
	ctx->ticket_cipher = cipher;
	pthread_mutex_unlock(&ctx->ticket_lock);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx->ssl_ctx, ticket_key_cb);
	return 0;
}

int
aloop_tls_make_ticket_secret(void *buf, size_t len)
{
	if (len > INT_MAX || RAND_bytes(buf, (int)len) != 1) {
		ERR_clear_error();
		return ALOOP_ENOMEM;
	}
	return 0;
}

/* Does single response @id name @leaf?  @issuer may be NULL. */
static int
ocsp_names(OCSP_CERTID *id, X509 *leaf, X509 *issuer)
{
	ASN1_OCTET_STRING *name_hash;
	ASN1_OBJECT *md_oid;
	ASN1_INTEGER *serial;
	const EVP_MD *md;
	OCSP_CERTID *mine;
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int n;
	int match;

	if (OCSP_id_get0_info(&name_hash, &md_oid, NULL, &serial, id) != 1 ||
	    (md = EVP_get_digestbyobj(md_oid)) == NULL)
		return 0;
	if (issuer != NULL) {
		if ((mine = OCSP_cert_to_id(md, leaf, issuer)) == NULL)
			return 0;
		match = OCSP_id_cmp(mine, id) == 0;
		OCSP_CERTID_free(mine);
		return match;
	}
	/* Without the issuer's key, the serial and the issuer's name. */
	if (ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(leaf)) != 0 ||
	    X509_NAME_digest(X509_get_issuer_name(leaf), md, buf, &n) != 1)
		return 0;
	return (int)n == ASN1_STRING_length(name_hash) &&
	    memcmp(buf, ASN1_STRING_get0_data(name_hash), n) == 0;
}

static int
ocsp_matches(OCSP_BASICRESP *basic, const struct sni_cert *e)
{
	X509 *issuer = NULL;
	int i;

	for (i = 0; i < sk_X509_num(e->chain); i++)
		if (X509_check_issued(sk_X509_value(e->chain, i), e->leaf) ==
		    X509_V_OK) {
			issuer = sk_X509_value(e->chain, i);
			break;
		}
	for (i = 0; i < OCSP_resp_count(basic); i++)
		if (ocsp_names((OCSP_CERTID *)OCSP_SINGLERESP_get0_id(
		    OCSP_resp_get0(basic, i)), e->leaf, issuer))
			return 1;
	return 0;
}

int
aloop_tls_context_load_ocsp_response(struct aloop_tls_context *ctx,
    size_t cert, const char *path)
{
	struct sni_cert *e;
	OCSP_RESPONSE *resp;
	OCSP_BASICRESP *basic;
	unsigned char *der = NULL, *copy;
	int len, status, match;
	BIO *bio;

	clear_error(ctx);
	if (ctx->side != ALOOP_TLS_SERVER)
		return set_error(ctx, ALOOP_EINVAL, NULL,
		    "OCSP stapling is for server contexts");
	if (path == NULL)
		return set_error(ctx, ALOOP_EINVAL, NULL, "no file given");
	e = cert == 0 ? &ctx->main : cert <= ctx->nsni ? &ctx->sni[cert - 1] :
	    NULL;
	if (e == NULL || e->leaf == NULL)
		return set_error(ctx, ALOOP_EINVAL, path,
		    "no such certificate loaded to staple it to");
	if ((bio = BIO_new_file(path, "rb")) == NULL)
		return set_error(ctx, ALOOP_ENOENT, path, "cannot open");
	resp = d2i_OCSP_RESPONSE_bio(bio, NULL);
	BIO_free(bio);
	if (resp == NULL) {
		ERR_clear_error();
		return set_error(ctx, ALOOP_EINVAL, path,
		    "not a DER OCSP response");
	}
	status = OCSP_response_status(resp);
	if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		char what[TLS_ERROR_MAX];

		snprintf(what, sizeof(what), "%s: OCSP response status", path);
		OCSP_RESPONSE_free(resp);
		ERR_clear_error();
		return set_error(ctx, ALOOP_EINVAL, what,
		    OCSP_response_status_str(status));
	}
	if ((basic = OCSP_response_get1_basic(resp)) == NULL) {
		OCSP_RESPONSE_free(resp);
		ERR_clear_error();
		return set_error(ctx, ALOOP_EINVAL, path,
		    "not a basic OCSP response");
	}
	match = ocsp_matches(basic, e);
	OCSP_BASICRESP_free(basic);
	if (!match) {
		OCSP_RESPONSE_free(resp);
		ERR_clear_error();
		return set_error(ctx, ALOOP_EINVAL, path,
		    "the OCSP response is not about this certificate");
	}
	len = i2d_OCSP_RESPONSE(resp, &der);
	OCSP_RESPONSE_free(resp);
	if (len <= 0)
		return set_error(ctx, ALOOP_ENOMEM, NULL, "out of memory");
	/* OpenSSL's allocator gave it; ours frees the copy we keep. */
	if ((copy = malloc((size_t)len)) == NULL) {
		OPENSSL_free(der);
		return set_error(ctx, ALOOP_ENOMEM, NULL, "out of memory");
	}
	memcpy(copy, der, (size_t)len);
	OPENSSL_free(der);
	free(e->ocsp);
	e->ocsp = copy;
	e->ocsp_len = (size_t)len;
	return 0;
}

/* Fetched once: aloopd digests every TLS listener's settings. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
fetch_sha256(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int
aloop_tls_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	pthread_once(&sha256_once, fetch_sha256);
	if (sha256_md == NULL ||
	    EVP_Digest(data, len, out, &n, sha256_md, NULL) != 1 || n != 32) {
		ERR_clear_error();
		return ALOOP_ENOMEM;
	}
	return 0;
}

void
aloop__tls_context_set_clock(struct aloop_tls_context *ctx,
    time_t (*clock)(void))
{
	pthread_mutex_lock(&ctx->ticket_lock);
	ctx->clock = clock;
	ctx->keys_valid = 0;
	pthread_mutex_unlock(&ctx->ticket_lock);
}

/* ------------------------------------------------ for the transport */

static void
make_default(void)
{
	struct aloop_tls_context *ctx;

	if (aloop_tls_context_new(ALOOP_TLS_CLIENT, &ctx) == 0)
		default_ctx = ctx;
}

struct aloop_tls_context *
aloop__tls_context_default(void)
{
	pthread_once(&default_once, make_default);
	if (default_ctx == NULL)
		return NULL;
	return aloop_tls_context_ref(default_ctx);
}

int
aloop__tls_context_side(const struct aloop_tls_context *ctx)
{
	return ctx->side;
}

int
aloop__tls_context_verify(const struct aloop_tls_context *ctx)
{
	return ctx->verify;
}

struct aloop_tls_context *
aloop__tls_context_of(SSL *ssl)
{
	return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

static int
is_ip_address(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1;
}

SSL *
aloop__tls_context_new_ssl(struct aloop_tls_context *ctx, int server_side,
    const char *hostname, const char *session_key, char *err, size_t errlen)
{
	SSL *ssl;
	int ip;

	ERR_clear_error();
	if ((ssl = SSL_new(ctx->ssl_ctx)) == NULL) {
		snprintf(err, errlen, "SSL_new: %s",
		    ERR_reason_error_string(ERR_peek_error()) != NULL ?
		    ERR_reason_error_string(ERR_peek_error()) :
		    "out of memory");
		ERR_clear_error();
		return NULL;
	}
	if (server_side) {
		SSL_set_accept_state(ssl);
		return ssl;
	}
	SSL_set_connect_state(ssl);
	if (hostname != NULL && *hostname != '\0') {
		ip = is_ip_address(hostname);
		/* RFC 6066: SNI carries host names, never addresses. */
		if (!ip && SSL_set_tlsext_host_name(ssl, hostname) != 1)
			goto fail;
		if (ctx->check_hostname &&
		    ctx->verify != ALOOP_TLS_VERIFY_NONE) {
			SSL_set_hostflags(ssl,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (ip ? X509_VERIFY_PARAM_set1_ip_asc(
			    SSL_get0_param(ssl), hostname) != 1 :
			    SSL_set1_host(ssl, hostname) != 1)
				goto fail;
		}
	}
	if (session_key != NULL && ctx->resumption) {
		char *k = strdup(session_key);
		SSL_SESSION *sess;

		if (k == NULL || SSL_set_ex_data(ssl, ssl_key_idx, k) != 1) {
			free(k);
			snprintf(err, errlen, "out of memory");
			SSL_free(ssl);
			return NULL;
		}
		if ((sess = find_session(ctx, session_key)) != NULL) {
			/* A session the server forgot just means a full
			 * handshake; nothing to report. */
			if (SSL_set_session(ssl, sess) != 1)
				ERR_clear_error();
			SSL_SESSION_free(sess);
		}
	}
	return ssl;
fail:
	snprintf(err, errlen, "%s: %s", hostname,
	    ERR_reason_error_string(ERR_peek_error()) != NULL ?
	    ERR_reason_error_string(ERR_peek_error()) :
	    "invalid server name");
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}

int
aloop__tls_classify_error(SSL *ssl, int sys_errno, char *msg, size_t msglen)
{
	unsigned long e = ERR_peek_error();
	long vr = SSL_get_verify_result(ssl);
	const char *reason;

	if (vr == X509_V_ERR_HOSTNAME_MISMATCH ||
	    vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		snprintf(msg, msglen, "certificate verify failed: %s",
		    X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return ALOOP_EHOSTNAME;
	}
	if (vr != X509_V_OK) {
		snprintf(msg, msglen, "certificate verify failed: %s",
		    X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return ALOOP_ECERT;
	}
	if (e == 0 && sys_errno != 0) {
		snprintf(msg, msglen, "%s", strerror(sys_errno));
		return -sys_errno;
	}
	reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	if (reason == NULL)
		reason = "connection closed during the handshake";
	snprintf(msg, msglen, "%s", reason);
	ERR_clear_error();
	return ALOOP_ETLS;
}
