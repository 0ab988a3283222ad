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
static int
handshake(struct aloop_tls_context *cctx, struct aloop_tls_context *sctx,
    const char *host, const char *key, struct hs *h)
{
	BIO *cb, *sb;
	char buf[16];
	int cfail = 0, sfail = 0, i;

	memset(h, 0, sizeof(*h));
	h->client = aloop__tls_context_new_ssl(cctx, 0, host, key, h->msg,
	    sizeof(h->msg));
	h->server = aloop__tls_context_new_ssl(sctx, 1, NULL, NULL,
	    h->server_msg, sizeof(h->server_msg));
	CU_ASSERT_PTR_NOT_NULL_FATAL(h->client);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h->server);
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

static char *
peer_cn(SSL *ssl)
{
	static char cn[128];
	X509 *x = SSL_get0_peer_certificate(ssl);

	cn[0] = '\0';
	if (x != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		    NID_commonName, cn, sizeof(cn));
	return cn;
}

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
};

TEST_MAIN("tls_context", cases)
