/*
 * TLS contexts: every setting, checked by loading real files made at test
 * time and by handshakes between two SSL objects over an in-memory BIO
 * pair (no loop, no socket), which shows what a peer would really get:
 * the certificate chosen by SNI, the ALPN choice, verification outcomes,
 * version limits and session resumption.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "tls-int.h"
#include "tls_certs.h"



static struct aloop_tls_context *
server_ctx(const struct tls_certs *c)
{
	struct aloop_tls_context *ctx = NULL;

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &ctx), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(ctx, c->server_cert,
	    c->server_key), 0);
	return ctx;
}

static struct aloop_tls_context *
client_ctx(const struct tls_certs *c)
{
	struct aloop_tls_context *ctx = NULL;

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &ctx), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_load_verify_locations(ctx, c->ca,
	    NULL), 0);
	return ctx;
}

/* One in-memory handshake and what came of it. */
struct hs {
	SSL	*client, *server;
	int	 client_done, server_done;
	int	 code;		/* the client's classified error, or 0 */
	char	 msg[256];
	int	 server_code;
	char	 server_msg[256];
};

static int
step(SSL *ssl, int *done, int *failed)
{
	int rc, err;

	if (*done || *failed)
		return 0;
	rc = SSL_do_handshake(ssl);
	if (rc == 1) {
		*done = 1;
		return 1;
	}
	err = SSL_get_error(ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return 0;
	*failed = 1;
	return 1;
}

/*
 * Handshake a client and a server SSL made from the contexts, the client
 * sending @host.  Afterwards the client reads once so that TLS 1.3 session
 * tickets (sent after the handshake) reach its session cache.
 */
static int	handshake_run(struct hs *h);

static int
handshake(struct aloop_tls_context *cctx, struct aloop_tls_context *sctx,
    const char *host, const char *key, struct hs *h)
{
	memset(h, 0, sizeof(*h));
	h->client = aloop__tls_context_new_ssl(cctx, 0, host, key, h->msg,
	    sizeof(h->msg));
	h->server = aloop__tls_context_new_ssl(sctx, 1, NULL, NULL,
	    h->server_msg, sizeof(h->server_msg));
	CU_ASSERT_PTR_NOT_NULL_FATAL(h->client);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h->server);
	return handshake_run(h);
}

/* The same with a client that sends @sni as it is and checks no name. */
static int
handshake_sni(struct aloop_tls_context *cctx,
    struct aloop_tls_context *sctx, const char *sni, struct hs *h)
{
	memset(h, 0, sizeof(*h));
	h->client = aloop__tls_context_new_ssl(cctx, 0, "", NULL, h->msg,
	    sizeof(h->msg));
	h->server = aloop__tls_context_new_ssl(sctx, 1, NULL, NULL,
	    h->server_msg, sizeof(h->server_msg));
	CU_ASSERT_PTR_NOT_NULL_FATAL(h->client);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h->server);
	CU_ASSERT_EQUAL_FATAL(SSL_set_tlsext_host_name(h->client, sni), 1);
	return handshake_run(h);
}

static int
handshake_run(struct hs *h)
{
	BIO *cb, *sb;
	char buf[16];
	int cfail = 0, sfail = 0, i;

	CU_ASSERT_EQUAL_FATAL(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(h->client, cb, cb);
	SSL_set_bio(h->server, sb, sb);
	for (i = 0; i < 64; i++) {
		int progress = 0;

		progress |= step(h->client, &h->client_done, &cfail);
		if (cfail && h->code == 0)
			h->code = aloop__tls_classify_error(h->client, 0,
			    h->msg, sizeof(h->msg));
		progress |= step(h->server, &h->server_done, &sfail);
		if (sfail && h->server_code == 0)
			h->server_code = aloop__tls_classify_error(h->server,
			    0, h->server_msg, sizeof(h->server_msg));
		if ((h->client_done && h->server_done) || cfail || sfail)
			break;
		(void)progress;
	}
	if (h->client_done && h->server_done) {
		/* Let tickets and the client's last flight through. */
		for (i = 0; i < 4; i++) {
			(void)SSL_read(h->client, buf, sizeof(buf));
			(void)SSL_read(h->server, buf, sizeof(buf));
		}
		ERR_clear_error();
		return 0;
	}
	/* A failure seen only by the server still fails the client. */
	if (h->code == 0 && h->server_code != 0) {
		(void)SSL_do_handshake(h->client);
		h->code = aloop__tls_classify_error(h->client, 0, h->msg,
		    sizeof(h->msg));
	}
	return -1;
}

static void
hs_free(struct hs *h)
{
	/* A session is only kept for resumption after a clean shutdown. */
	if (h->client_done && h->server_done) {
		(void)SSL_shutdown(h->client);
		(void)SSL_shutdown(h->server);
	}
	SSL_free(h->client);
	SSL_free(h->server);
	ERR_clear_error();
}

/* --------------------------------------------------------------- tests */

static void
test_defaults(void)
{
	struct aloop_tls_context *c = NULL, *s = NULL;
	SSL_CTX *sc;
	STACK_OF(SSL_CIPHER) *sk;
	int i;

	CU_ASSERT_EQUAL(aloop_tls_context_new(7, &c), ALOOP_EINVAL);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &c), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &s), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_get_check_hostname(c), 1);
	CU_ASSERT_EQUAL(aloop_tls_context_get_check_hostname(s), 0);
	CU_ASSERT_EQUAL(aloop__tls_context_verify(c), ALOOP_TLS_VERIFY_REQUIRED);
	CU_ASSERT_EQUAL(aloop__tls_context_verify(s), ALOOP_TLS_VERIFY_NONE);
	CU_ASSERT_STRING_EQUAL(aloop_tls_context_last_error(c), "");

	sc = aloop_tls_context_get_ssl_ctx(s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sc);
	CU_ASSERT_EQUAL(SSL_CTX_get_min_proto_version(sc), TLS1_2_VERSION);
	CU_ASSERT(SSL_CTX_get_options(sc) & SSL_OP_NO_RENEGOTIATION);
	CU_ASSERT(SSL_CTX_get_options(sc) & SSL_OP_NO_COMPRESSION);
	CU_ASSERT(SSL_CTX_get_options(sc) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	CU_ASSERT(SSL_CTX_get_mode(sc) & SSL_MODE_RELEASE_BUFFERS);
	CU_ASSERT_EQUAL(SSL_CTX_get_verify_mode(sc), SSL_VERIFY_NONE);
	CU_ASSERT_EQUAL(SSL_CTX_get_verify_mode(aloop_tls_context_get_ssl_ctx(c)),
	    SSL_VERIFY_PEER);

	/* Every TLS 1.2 suite on offer is AEAD. */
	sk = SSL_CTX_get_ciphers(sc);
	CU_ASSERT(sk_SSL_CIPHER_num(sk) > 0);
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++)
		CU_ASSERT(SSL_CIPHER_is_aead(sk_SSL_CIPHER_value(sk, i)));

	/* References: the context lives until the last one goes. */
	CU_ASSERT_PTR_EQUAL(aloop_tls_context_ref(c), c);
	aloop_tls_context_release(c);
	CU_ASSERT_EQUAL(aloop_tls_context_get_check_hostname(c), 1);
	aloop_tls_context_release(c);
	aloop_tls_context_release(s);
	aloop_tls_context_release(NULL);
}

static void
test_default_client_context(void)
{
	struct aloop_tls_context *d1, *d2;

	d1 = aloop__tls_context_default();
	d2 = aloop__tls_context_default();
	CU_ASSERT_PTR_NOT_NULL_FATAL(d1);
	CU_ASSERT_PTR_EQUAL(d1, d2);
	CU_ASSERT_EQUAL(aloop__tls_context_side(d1), ALOOP_TLS_CLIENT);
	CU_ASSERT_EQUAL(aloop__tls_context_verify(d1), ALOOP_TLS_VERIFY_REQUIRED);
	CU_ASSERT_EQUAL(aloop_tls_context_get_check_hostname(d1), 1);
	aloop_tls_context_release(d1);
	aloop_tls_context_release(d2);
	/* The shared context survives its users. */
	d1 = aloop__tls_context_default();
	CU_ASSERT_PTR_EQUAL(d1, d2);
	aloop_tls_context_release(d1);
}

static void
test_load_cert_chain_errors(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s;
	const char *e;

	NEED_CERTS(c);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &s), 0);

	/* A key that belongs to another certificate. */
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(s, c->server_cert,
	    c->client_key), ALOOP_EINVAL);
	e = aloop_tls_context_last_error(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, c->client_key));
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "key values mismatch"));

	/* A missing file names itself and the system's reason. */
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(s,
	    "/nonexistent/cert.pem", NULL), ALOOP_ENOENT);
	e = aloop_tls_context_last_error(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "/nonexistent/cert.pem: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "No such file"));

	/* Not PEM. */
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(s, c->garbage,
	    c->server_key), ALOOP_EINVAL);
	e = aloop_tls_context_last_error(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(e, c->garbage));
	CU_ASSERT_PTR_NOT_NULL(strstr(e, "no start line"));
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(s, c->server_cert,
	    c->garbage), ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "no private key found"));

	/* A failure left nothing half-loaded; a good pair then loads and
	 * clears the error. */
	CU_ASSERT_PTR_NULL(SSL_CTX_get0_certificate(
	    aloop_tls_context_get_ssl_ctx(s)));
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(s, c->server_cert,
	    c->server_key), 0);
	CU_ASSERT_STRING_EQUAL(aloop_tls_context_last_error(s), "");
	CU_ASSERT_PTR_NOT_NULL(SSL_CTX_get0_certificate(
	    aloop_tls_context_get_ssl_ctx(s)));
	CU_ASSERT_EQUAL(ERR_peek_error(), 0);
	aloop_tls_context_release(s);
}

static void
test_min_version(void)
{
	struct aloop_tls_context *s;
	SSL_CTX *sc;

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &s), 0);
	sc = aloop_tls_context_get_ssl_ctx(s);
	CU_ASSERT_EQUAL(aloop_tls_context_set_min_version(s, "TLSv1.1"),
	    ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "TLSv1.1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "refused"));
	CU_ASSERT_EQUAL(aloop_tls_context_set_min_version(s, "SSLv3"),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_min_version(s, "TLSv9"),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_min_version(s, NULL),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(SSL_CTX_get_min_proto_version(sc), TLS1_2_VERSION);
	CU_ASSERT_EQUAL(aloop_tls_context_set_min_version(s, "TLSv1.3"), 0);
	CU_ASSERT_EQUAL(SSL_CTX_get_min_proto_version(sc), TLS1_3_VERSION);
	CU_ASSERT_EQUAL(aloop_tls_context_set_min_version(s, "TLSv1.2"), 0);
	CU_ASSERT_EQUAL(SSL_CTX_get_min_proto_version(sc), TLS1_2_VERSION);
	aloop_tls_context_release(s);
}

static void
test_ciphers_stay_aead(void)
{
	struct aloop_tls_context *s;
	STACK_OF(SSL_CIPHER) *sk;
	int i, tls12 = 0;

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &s), 0);
	/* CBC only: nothing is left, so it is refused and nothing changes. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_ciphers(s,
	    "ECDHE-RSA-AES128-SHA:AES256-SHA"), ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "AEAD"));
	CU_ASSERT_EQUAL(aloop_tls_context_set_ciphers(s, "NO-SUCH-CIPHER"),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_ciphers(s, ""), ALOOP_EINVAL);
	/* Everything: the CBC and NULL suites are filtered out. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_ciphers(s, "ALL:eNULL"), 0);
	sk = SSL_CTX_get_ciphers(aloop_tls_context_get_ssl_ctx(s));
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);

		CU_ASSERT(SSL_CIPHER_is_aead(c));
		CU_ASSERT_NOT_EQUAL(SSL_CIPHER_get_auth_nid(c), NID_auth_null);
		if (SSL_CIPHER_get_kx_nid(c) != NID_kx_any)
			tls12++;
	}
	CU_ASSERT(tls12 > 4);
	/* TLS 1.3 suites. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_ciphersuites(s,
	    "TLS_CHACHA20_POLY1305_SHA256"), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_set_ciphersuites(s, "bogus"),
	    ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "bogus"));
	aloop_tls_context_release(s);
}

static void
test_cipher_choice_over_handshake(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *cl;
	struct hs h;

	NEED_CERTS(c);
	s = server_ctx(c);
	cl = client_ctx(c);
	/* TLS 1.2 negotiates an AEAD suite; TLS 1.3 the suite asked for. */
	CU_ASSERT_EQUAL(SSL_CTX_set_max_proto_version(
	    aloop_tls_context_get_ssl_ctx(cl), TLS1_2_VERSION), 1);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(SSL_get_version(h.client), "TLSv1.2");
	CU_ASSERT(SSL_CIPHER_is_aead(SSL_get_current_cipher(h.client)));
	hs_free(&h);
	aloop_tls_context_release(cl);

	cl = client_ctx(c);
	CU_ASSERT_EQUAL(aloop_tls_context_set_ciphersuites(s,
	    "TLS_CHACHA20_POLY1305_SHA256"), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(SSL_get_version(h.client), "TLSv1.3");
	CU_ASSERT_STRING_EQUAL(SSL_CIPHER_get_name(
	    SSL_get_current_cipher(h.client)), "TLS_CHACHA20_POLY1305_SHA256");
	hs_free(&h);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

static void
test_version_limits(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *cl;
	struct hs h;

	NEED_CERTS(c);
	s = server_ctx(c);
	cl = client_ctx(c);
	CU_ASSERT_EQUAL(aloop_tls_context_set_min_version(s, "TLSv1.3"), 0);
	CU_ASSERT_EQUAL(SSL_CTX_set_max_proto_version(
	    aloop_tls_context_get_ssl_ctx(cl), TLS1_2_VERSION), 1);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), -1);
	CU_ASSERT_EQUAL(h.server_code, ALOOP_ETLS);
	CU_ASSERT_PTR_NOT_NULL(strstr(h.server_msg, "unsupported protocol"));
	CU_ASSERT_EQUAL(h.code, ALOOP_ETLS);
	hs_free(&h);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

static void
test_verification_outcomes(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *cl, *bare, *untrusted;
	struct hs h;

	NEED_CERTS(c);
	s = server_ctx(c);
	cl = client_ctx(c);

	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_EQUAL(SSL_get_verify_result(h.client), X509_V_OK);
	CU_ASSERT_PTR_NOT_NULL(SSL_get0_peer_certificate(h.client));
	hs_free(&h);

	/* The address in the certificate matches too, another does not. */
	CU_ASSERT_EQUAL(handshake(cl, s, "127.0.0.1", NULL, &h), 0);
	CU_ASSERT_PTR_NULL(SSL_get_servername(h.server,
	    TLSEXT_NAMETYPE_host_name));
	hs_free(&h);
	CU_ASSERT_EQUAL(handshake(cl, s, "127.0.0.2", NULL, &h), -1);
	CU_ASSERT_EQUAL(h.code, ALOOP_EHOSTNAME);
	hs_free(&h);

	CU_ASSERT_EQUAL(handshake(cl, s, "wrong.example.test", NULL, &h), -1);
	CU_ASSERT_EQUAL(h.code, ALOOP_EHOSTNAME);
	CU_ASSERT_PTR_NOT_NULL(strstr(h.msg, "mismatch"));
	hs_free(&h);

	/* Without the check, a verified certificate for another name is
	 * accepted. */
	aloop_tls_context_set_check_hostname(cl, 0);
	CU_ASSERT_EQUAL(aloop_tls_context_get_check_hostname(cl), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "wrong.example.test", NULL, &h), 0);
	hs_free(&h);
	aloop_tls_context_set_check_hostname(cl, 1);

	/* "" sends no SNI and checks no name. */
	CU_ASSERT_EQUAL(handshake(cl, s, "", NULL, &h), 0);
	hs_free(&h);

	/* A client trusting nothing of ours. */
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &bare),
	    0);
	CU_ASSERT_EQUAL(handshake(bare, s, "localhost", NULL, &h), -1);
	CU_ASSERT_EQUAL(h.code, ALOOP_ECERT);
	CU_ASSERT_PTR_NOT_NULL(strstr(h.msg, "certificate verify failed"));
	hs_free(&h);
	/* ... unless it does not verify. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_verify(bare,
	    ALOOP_TLS_VERIFY_NONE), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_set_verify(bare, 9), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(handshake(bare, s, "wrong.example.test", NULL, &h), 0);
	hs_free(&h);
	aloop_tls_context_release(bare);

	/* A server certificate from a CA the client does not trust. */
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER,
	    &untrusted), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(untrusted,
	    c->untrusted_cert, c->untrusted_key), 0);
	CU_ASSERT_EQUAL(handshake(cl, untrusted, "localhost", NULL, &h), -1);
	CU_ASSERT_EQUAL(h.code, ALOOP_ECERT);
	hs_free(&h);
	aloop_tls_context_release(untrusted);

	/* CA loading errors. */
	CU_ASSERT_EQUAL(aloop_tls_context_load_verify_locations(cl, NULL,
	    NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_load_verify_locations(cl,
	    "/nonexistent/ca.pem", NULL), ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(cl),
	    "/nonexistent/ca.pem"));
	CU_ASSERT_EQUAL(aloop_tls_context_load_verify_locations(cl, NULL,
	    c->dir), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_set_default_verify_paths(cl), 0);

	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

static void
test_mutual_tls(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *cl;
	struct hs h;

	NEED_CERTS(c);
	s = server_ctx(c);
	CU_ASSERT_EQUAL(aloop_tls_context_load_verify_locations(s, c->ca,
	    NULL), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_set_verify(s,
	    ALOOP_TLS_VERIFY_REQUIRED), 0);

	/* No client certificate: refused. */
	cl = client_ctx(c);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), -1);
	CU_ASSERT_NOT_EQUAL(h.server_code, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(h.server_msg, "certificate"));
	hs_free(&h);

	/* Optional: the same client gets in, unauthenticated. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_verify(s,
	    ALOOP_TLS_VERIFY_OPTIONAL), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_PTR_NULL(SSL_get0_peer_certificate(h.server));
	hs_free(&h);

	/* With a certificate from the CA. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_verify(s,
	    ALOOP_TLS_VERIFY_REQUIRED), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(cl, c->client_cert,
	    c->client_key), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_PTR_NOT_NULL(SSL_get0_peer_certificate(h.server));
	CU_ASSERT_EQUAL(SSL_get_verify_result(h.server), X509_V_OK);
	hs_free(&h);
	aloop_tls_context_release(cl);

	/* A client certificate from another CA. */
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &cl), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_load_verify_locations(cl, c->ca,
	    NULL), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(cl,
	    c->untrusted_cert, c->untrusted_key), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), -1);
	CU_ASSERT_EQUAL(h.server_code, ALOOP_ECERT);
	hs_free(&h);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

/* The subject CN of @x, in a buffer the next call reuses. */
static const char *
cert_cn(X509 *x)
{
	static char cn[128];

	cn[0] = '\0';
	if (x != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		    NID_commonName, cn, sizeof(cn));
	return cn;
}

/* The CN of the certificate the peer sent, and of the one we present. */
#define peer_cn(ssl)	cert_cn(SSL_get0_peer_certificate(ssl))
#define served_cn(ssl)	cert_cn(SSL_get_certificate(ssl))

static void
test_sni_selection(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *cl;
	struct hs h;

	NEED_CERTS(c);
	s = server_ctx(c);
	cl = client_ctx(c);
	CU_ASSERT_EQUAL(aloop_tls_context_add_sni_cert(s, c->sni_cert,
	    c->sni_key), 0);

	CU_ASSERT_EQUAL(handshake(cl, s, "sni.example.test", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(peer_cn(h.client), "sni.example.test");
	CU_ASSERT_STRING_EQUAL(SSL_get_servername(h.server,
	    TLSEXT_NAMETYPE_host_name), "sni.example.test");
	hs_free(&h);

	/* Wildcards, one label deep only. */
	CU_ASSERT_EQUAL(handshake(cl, s, "a.wild.example.test", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(peer_cn(h.client), "sni.example.test");
	hs_free(&h);
	CU_ASSERT_EQUAL(handshake(cl, s, "a.b.wild.example.test", NULL, &h),
	    -1);
	CU_ASSERT_EQUAL(h.code, ALOOP_EHOSTNAME);
	hs_free(&h);

	/* Other names get the default chain. */
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(peer_cn(h.client), "localhost");
	hs_free(&h);

	/*
	 * A second certificate: a name held exactly wins over an earlier
	 * certificate's wildcard; names match without regard to case; the
	 * wildcard stands for one label of letters, digits and hyphens.
	 */
	CU_ASSERT_EQUAL(aloop_tls_context_add_sni_cert(s, c->sni2_cert,
	    c->sni2_key), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "exact.wild.example.test", NULL, &h),
	    0);
	CU_ASSERT_STRING_EQUAL(peer_cn(h.client), "exact.wild.example.test");
	hs_free(&h);
	CU_ASSERT_EQUAL(handshake(cl, s, "B-2.Wild.Example.Test", NULL, &h),
	    0);
	CU_ASSERT_STRING_EQUAL(peer_cn(h.client), "sni.example.test");
	hs_free(&h);
	CU_ASSERT_EQUAL(handshake(cl, s, "mixed.EXAMPLE.test", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(peer_cn(h.client), "exact.wild.example.test");
	hs_free(&h);
	{
		static const char *const other[] = {
			"wild.example.test", ".wild.example.test",
			"a_b.wild.example.test", "x.test", "a1.part.example.test",
			"sni.example.test.", "example.test",
		};
		size_t i;

		for (i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
			CU_ASSERT_EQUAL(handshake_sni(cl, s, other[i], &h), 0);
			CU_ASSERT_STRING_EQUAL(served_cn(h.server), "localhost");
			hs_free(&h);
		}
		CU_ASSERT_EQUAL(handshake_sni(cl, s, "x.wild.EXAMPLE.test", &h),
		    0);
		CU_ASSERT_STRING_EQUAL(served_cn(h.server), "sni.example.test");
		hs_free(&h);
	}

	/* Refusals: a client context, a certificate without DNS names,
	 * a mismatched key. */
	CU_ASSERT_EQUAL(aloop_tls_context_add_sni_cert(cl, c->sni_cert,
	    c->sni_key), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_add_sni_cert(s, c->client_cert,
	    c->client_key), ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "subjectAltName"));
	CU_ASSERT_EQUAL(aloop_tls_context_add_sni_cert(s, c->sni_cert,
	    c->server_key), ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "key values mismatch"));
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

static const char *
alpn_of(SSL *ssl, char *buf, size_t len)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	if (n >= len)
		n = (unsigned int)len - 1;
	memcpy(buf, p != NULL ? (const char *)p : "", n);
	buf[n] = '\0';
	return buf;
}

static void
test_alpn(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *cl;
	const char *sp[] = { "h2", "http/1.1" };
	const char *cp[] = { "http/1.1", "h2" };
	const char *other[] = { "imap" };
	const char *bad[] = { "h2", "" };
	char name[300];
	struct hs h;

	NEED_CERTS(c);
	s = server_ctx(c);
	cl = client_ctx(c);
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(s, sp, 2), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(cl, cp, 2), 0);

	/* The server's preference wins among what the client offers. */
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(alpn_of(h.client, name, sizeof(name)), "h2");
	CU_ASSERT_STRING_EQUAL(alpn_of(h.server, name, sizeof(name)), "h2");
	hs_free(&h);

	/* No overlap: the handshake goes on without ALPN. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(cl, other, 1), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(alpn_of(h.client, name, sizeof(name)), "");
	hs_free(&h);

	/* Encoding limits: empty names and names over 255 bytes. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(cl, bad, 2),
	    ALOOP_EINVAL);
	memset(name, 'x', 256);
	name[256] = '\0';
	other[0] = name;
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(cl, other, 1),
	    ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(cl),
	    "255"));
	name[255] = '\0';
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(cl, other, 1), 0);
	/* An empty list switches ALPN off. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(cl, NULL, 0), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_STRING_EQUAL(alpn_of(h.server, name, sizeof(name)), "");
	hs_free(&h);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

static void
resumption_round(const char *version, int server_on, int client_on,
    int expect)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *cl;
	struct hs h;

	NEED_CERTS(c);
	s = server_ctx(c);
	cl = client_ctx(c);
	aloop_tls_context_set_session_resumption(s, server_on);
	aloop_tls_context_set_session_resumption(cl, client_on);
	if (strcmp(version, "TLSv1.2") == 0)
		CU_ASSERT_EQUAL(SSL_CTX_set_max_proto_version(
		    aloop_tls_context_get_ssl_ctx(cl), TLS1_2_VERSION), 1);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", "localhost:443", &h), 0);
	CU_ASSERT_STRING_EQUAL(SSL_get_version(h.client), version);
	CU_ASSERT_EQUAL(SSL_session_reused(h.client), 0);
	hs_free(&h);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", "localhost:443", &h), 0);
	CU_ASSERT_EQUAL(SSL_session_reused(h.client), expect);
	CU_ASSERT_EQUAL(SSL_session_reused(h.server), expect);
	hs_free(&h);
	/* Another peer key has no session to offer. */
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", "elsewhere:443", &h), 0);
	CU_ASSERT_EQUAL(SSL_session_reused(h.client), 0);
	hs_free(&h);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

static void
test_session_resumption(void)
{
	resumption_round("TLSv1.3", 1, 1, 1);
	resumption_round("TLSv1.2", 1, 1, 1);
	resumption_round("TLSv1.3", 0, 1, 0);
	resumption_round("TLSv1.3", 1, 0, 0);
}

/* ------------------------------------------ ticket keys and stapling */

static const unsigned char secret_a[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char secret_b[32] = "fedcba9876543210fedcba9876543210";

/* NewSessionTicket messages the client received. */
static int tickets_seen;

static void
count_tickets(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	(void)version; (void)ssl; (void)arg;
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    ((const unsigned char *)buf)[0] == SSL3_MT_NEWSESSION_TICKET)
		tickets_seen++;
}

static struct aloop_tls_context *
ticket_server(const struct tls_certs *c, const unsigned char *secret,
    const char *scope)
{
	struct aloop_tls_context *s = server_ctx(c);

	if (secret != NULL)
		CU_ASSERT_EQUAL(aloop_tls_context_set_ticket_secret(s, secret,
		    32, scope), 0);
	/* Only tickets resume here, not the cache of one context. */
	aloop_tls_context_set_session_cache_size(s, 0);
	return s;
}

static struct aloop_tls_context *
ticket_client(const struct tls_certs *c, const char *version)
{
	struct aloop_tls_context *cl = client_ctx(c);

	if (strcmp(version, "TLSv1.2") == 0)
		CU_ASSERT_EQUAL(SSL_CTX_set_max_proto_version(
		    aloop_tls_context_get_ssl_ctx(cl), TLS1_2_VERSION), 1);
	SSL_CTX_set_msg_callback(aloop_tls_context_get_ssl_ctx(cl),
	    count_tickets);
	return cl;
}

/* A handshake of @cl with @s under peer key "k"; was it resumed? */
static int
resumed(struct aloop_tls_context *cl, struct aloop_tls_context *s)
{
	struct hs h;
	int r;

	CU_ASSERT_EQUAL_FATAL(handshake(cl, s, "localhost", "k", &h), 0);
	r = SSL_session_reused(h.client);
	CU_ASSERT_EQUAL(SSL_session_reused(h.server), r);
	hs_free(&h);
	return r;
}

static void
shared_secret_round(const char *version)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s1, *s2, *s3, *s4, *s5, *cl;

	NEED_CERTS(c);
	s1 = ticket_server(c, secret_a, "listener");
	s2 = ticket_server(c, secret_a, "listener");
	s3 = ticket_server(c, secret_b, "listener");
	s4 = ticket_server(c, secret_a, "another listener");
	s5 = ticket_server(c, NULL, NULL);
	cl = ticket_client(c, version);

	tickets_seen = 0;
	CU_ASSERT_EQUAL(resumed(cl, s1), 0);
	/* One ticket per handshake, not OpenSSL's two. */
	CU_ASSERT_EQUAL(tickets_seen, 1);
	/* Built apart from the same secret: resumes s1's ticket. */
	CU_ASSERT_EQUAL(resumed(cl, s2), 1);
	CU_ASSERT_EQUAL(resumed(cl, s1), 1);
	/* Another secret, another scope, OpenSSL's own keys: no. */
	CU_ASSERT_EQUAL(resumed(cl, s3), 0);
	CU_ASSERT_EQUAL(resumed(cl, s4), 0);
	CU_ASSERT_EQUAL(resumed(cl, s5), 0);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s1);
	aloop_tls_context_release(s2);
	aloop_tls_context_release(s3);
	aloop_tls_context_release(s4);
	aloop_tls_context_release(s5);
}

static void
test_ticket_secret_shared(void)
{
	shared_secret_round("TLSv1.3");
	shared_secret_round("TLSv1.2");
}

static void
test_ticket_settings(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *cl;

	NEED_CERTS(c);
	/* Tickets off: no NewSessionTicket, no resumption without a cache. */
	s = ticket_server(c, secret_a, NULL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_session_tickets(s, 0), 0);
	cl = ticket_client(c, "TLSv1.3");
	tickets_seen = 0;
	CU_ASSERT_EQUAL(resumed(cl, s), 0);
	CU_ASSERT_EQUAL(resumed(cl, s), 0);
	CU_ASSERT_EQUAL(tickets_seen, 0);
	aloop_tls_context_release(cl);
	cl = ticket_client(c, "TLSv1.2");
	tickets_seen = 0;
	CU_ASSERT_EQUAL(resumed(cl, s), 0);
	CU_ASSERT_EQUAL(resumed(cl, s), 0);
	CU_ASSERT_EQUAL(tickets_seen, 0);
	/* The cache alone resumes TLS 1.2 by session id. */
	aloop_tls_context_set_session_cache_size(s, 100);
	CU_ASSERT_EQUAL(resumed(cl, s), 0);
	CU_ASSERT_EQUAL(resumed(cl, s), 1);
	CU_ASSERT_EQUAL(tickets_seen, 0);
	aloop_tls_context_release(cl);

	/* Three tickets when asked; bounds. */
	CU_ASSERT_EQUAL(aloop_tls_context_set_session_tickets(s, 3), 0);
	cl = ticket_client(c, "TLSv1.3");
	tickets_seen = 0;
	CU_ASSERT_EQUAL(resumed(cl, s), 0);
	CU_ASSERT_EQUAL(tickets_seen, 3);
	CU_ASSERT_EQUAL(aloop_tls_context_set_session_tickets(s, 17),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_session_tickets(cl, 1),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_session_timeout(s, 0),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_session_timeout(s, 604801),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_ticket_secret(s, secret_a, 31,
	    NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_set_ticket_secret(cl, secret_a, 32,
	    NULL), ALOOP_EINVAL);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

/* Clocks one epoch (an hour) apart, a little into each epoch. */
#define EPOCH		3600
#define EPOCH_BASE	((time_t)500000 * EPOCH + 7)
static time_t clock_e0(void) { return EPOCH_BASE; }
static time_t clock_e1(void) { return EPOCH_BASE + EPOCH; }
static time_t clock_e2(void) { return EPOCH_BASE + 2 * EPOCH; }
static time_t clock_back(void) { return EPOCH_BASE - EPOCH; }

static struct aloop_tls_context *
epoch_server(const struct tls_certs *c, time_t (*clock)(void))
{
	struct aloop_tls_context *s = ticket_server(c, secret_a, NULL);

	CU_ASSERT_EQUAL(aloop_tls_context_set_session_timeout(s, EPOCH), 0);
	aloop__tls_context_set_clock(s, clock);
	return s;
}

/* A ticket from epoch 0, offered to a server living at @clock. */
static int
resumed_at(const char *version, time_t (*clock)(void))
{
	const struct tls_certs *c = tls_certs_get();
	struct aloop_tls_context *s0, *s, *cl;
	int r;

	s0 = epoch_server(c, clock_e0);
	s = epoch_server(c, clock);
	cl = ticket_client(c, version);
	CU_ASSERT_EQUAL(resumed(cl, s0), 0);
	tickets_seen = 0;
	r = resumed(cl, s);
	/* A ticket of a neighbouring epoch is renewed. */
	if (r && clock != clock_e0)
		CU_ASSERT_EQUAL(tickets_seen, 1);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
	aloop_tls_context_release(s0);
	return r;
}

static void
test_ticket_epochs(void)
{
	const struct tls_certs *c;
	static const char *const versions[] = { "TLSv1.3", "TLSv1.2" };

	NEED_CERTS(c);
	for (size_t i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(resumed_at(versions[i], clock_e0), 1);
		CU_ASSERT_EQUAL(resumed_at(versions[i], clock_e1), 1);
		CU_ASSERT_EQUAL(resumed_at(versions[i], clock_back), 1);
		CU_ASSERT_EQUAL(resumed_at(versions[i], clock_e2), 0);
	}
}

static void
test_ticket_key_derivation(void)
{
	unsigned char k1[80], k2[80], k3[80];

	CU_ASSERT_EQUAL(aloop__tls_ticket_key(secret_a, 32, "x", 7, k1), 0);
	CU_ASSERT_EQUAL(aloop__tls_ticket_key(secret_a, 32, "x", 7, k2), 0);
	CU_ASSERT_EQUAL(memcmp(k1, k2, sizeof(k1)), 0);
	CU_ASSERT_EQUAL(aloop__tls_ticket_key(secret_a, 32, "x", 8, k3), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(k1, k3, 16), 0);
	CU_ASSERT_EQUAL(aloop__tls_ticket_key(secret_a, 32, "y", 7, k3), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(k1, k3, 16), 0);
	CU_ASSERT_EQUAL(aloop__tls_ticket_key(secret_b, 32, "x", 7, k3), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(k1, k3, 16), 0);
	/* NULL and "" are the same scope. */
	CU_ASSERT_EQUAL(aloop__tls_ticket_key(secret_a, 32, NULL, 7, k1), 0);
	CU_ASSERT_EQUAL(aloop__tls_ticket_key(secret_a, 32, "", 7, k2), 0);
	CU_ASSERT_EQUAL(memcmp(k1, k2, sizeof(k1)), 0);
}

/* The OCSP response the client got stapled, compared with @file's. */
static int
stapled(SSL *client, const char *file)
{
	const unsigned char *p;
	unsigned char buf[8192];
	long n = SSL_get_tlsext_status_ocsp_resp(client, &p);
	size_t len;
	FILE *f;

	if (n <= 0)
		return 0;
	if ((f = fopen(file, "rb")) == NULL)
		return -1;
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return (size_t)n == len && memcmp(p, buf, len) == 0 ? 1 : -1;
}

static void
test_ocsp_stapling(void)
{
	const struct tls_certs *c;
	struct aloop_tls_context *s, *s2, *cl;
	struct hs h;

	NEED_CERTS(c);
	s = server_ctx(c);
	cl = client_ctx(c);
	CU_ASSERT_EQUAL(aloop_tls_context_add_sni_cert(s, c->sni_cert,
	    c->sni_key), 0);

	/* Nothing loaded: nothing stapled, even when asked. */
	SSL_CTX_set_tlsext_status_type(aloop_tls_context_get_ssl_ctx(cl),
	    TLSEXT_STATUSTYPE_ocsp);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_EQUAL(stapled(h.client, c->server_ocsp), 0);
	hs_free(&h);

	/* Refused: garbage, missing, another certificate's, no such cert. */
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s, 0,
	    c->garbage), ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "not a DER OCSP response"));
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s, 0,
	    "/nonexistent/ocsp.der"), ALOOP_ENOENT);
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s, 0,
	    c->sni_ocsp), ALOOP_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_tls_context_last_error(s),
	    "not about this certificate"));
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s, 1,
	    c->server_ocsp), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s, 2,
	    c->server_ocsp), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(cl, 0,
	    c->server_ocsp), ALOOP_EINVAL);

	/* Each certificate its own response, chosen after SNI. */
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s, 0,
	    c->server_ocsp), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s, 1,
	    c->sni_ocsp), 0);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_EQUAL(stapled(h.client, c->server_ocsp), 1);
	hs_free(&h);
	CU_ASSERT_EQUAL(handshake(cl, s, "sni.example.test", NULL, &h), 0);
	CU_ASSERT_EQUAL(stapled(h.client, c->sni_ocsp), 1);
	hs_free(&h);
	/* TLS 1.2 carries it in CertificateStatus instead. */
	CU_ASSERT_EQUAL(SSL_CTX_set_max_proto_version(
	    aloop_tls_context_get_ssl_ctx(cl), TLS1_2_VERSION), 1);
	CU_ASSERT_EQUAL(handshake(cl, s, "localhost", NULL, &h), 0);
	CU_ASSERT_EQUAL(stapled(h.client, c->server_ocsp), 1);
	hs_free(&h);

	/* With the issuer in the chain file, matched by the issuer's key. */
	s2 = server_ctx(c);
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(s2, c->server_chain,
	    c->server_key), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s2, 0,
	    c->sni_ocsp), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_tls_context_load_ocsp_response(s2, 0,
	    c->server_ocsp), 0);
	CU_ASSERT_EQUAL(handshake(cl, s2, "localhost", NULL, &h), 0);
	CU_ASSERT_EQUAL(stapled(h.client, c->server_ocsp), 1);
	hs_free(&h);
	aloop_tls_context_release(s2);
	aloop_tls_context_release(cl);
	aloop_tls_context_release(s);
}

static const struct test_case cases[] = {
	TEST(test_defaults),
	TEST(test_default_client_context),
	TEST(test_load_cert_chain_errors),
	TEST(test_min_version),
	TEST(test_ciphers_stay_aead),
	TEST(test_cipher_choice_over_handshake),
	TEST(test_version_limits),
	TEST(test_verification_outcomes),
	TEST(test_mutual_tls),
	TEST(test_sni_selection),
	TEST(test_alpn),
	TEST(test_session_resumption),
	TEST(test_ticket_secret_shared),
	TEST(test_ticket_settings),
	TEST(test_ticket_epochs),
	TEST(test_ticket_key_derivation),
	TEST(test_ocsp_stapling),
};

TEST_MAIN("tls_context", cases)
