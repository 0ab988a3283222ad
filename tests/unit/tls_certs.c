/*
 * A small CA for the TLS tests: P-256 keys (quick to make), certificates
 * valid from an hour ago for a day, written as PEM into a mkdtemp
 * directory.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls_certs.h"

static EVP_PKEY *
make_key(void)
{
	return EVP_EC_gen("P-256");
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/*
 * A certificate for @cn with @key, signed by @issuer/@ikey (NULL: self).
 * @san may be NULL; @eku is "serverAuth", "clientAuth" or NULL for a CA.
 */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
    const char *san, const char *eku)
{
	static long serial = 1;
	X509 *x;
	X509_NAME *name;

	if ((x = X509_new()) == NULL)
		return NULL;
	name = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL ||
	    X509_set_pubkey(x, key) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"aloop tests", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name) != 1)
		goto fail;
	if (issuer == NULL) {
		issuer = x;
		ikey = key;
	}
	if (add_ext(x, issuer, NID_subject_key_identifier, "hash") != 0 ||
	    add_ext(x, issuer, NID_authority_key_identifier,
	    "keyid:always") != 0)
		goto fail;
	if (eku == NULL) {
		if (add_ext(x, issuer, NID_basic_constraints,
		    "critical,CA:TRUE") != 0 ||
		    add_ext(x, issuer, NID_key_usage,
		    "critical,keyCertSign,cRLSign") != 0)
			goto fail;
	} else {
		if (add_ext(x, issuer, NID_basic_constraints,
		    "critical,CA:FALSE") != 0 ||
		    add_ext(x, issuer, NID_key_usage,
		    "critical,digitalSignature") != 0 ||
		    add_ext(x, issuer, NID_ext_key_usage, eku) != 0)
			goto fail;
	}
	if (san != NULL && add_ext(x, issuer, NID_subject_alt_name, san) != 0)
		goto fail;
	if (X509_sign(x, ikey, EVP_sha256()) == 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

static int
write_pem(const char *path, X509 *cert, X509 *extra, EVP_PKEY *key)
{
	FILE *f;
	int ok = 1;

	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		return -1;
	}
	if (cert != NULL)
		ok &= PEM_write_X509(f, cert);
	if (extra != NULL)
		ok &= PEM_write_X509(f, extra);
	if (key != NULL)
		ok &= PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (fclose(f) != 0 || !ok) {
		fprintf(stderr, "%s: cannot write\n", path);
		return -1;
	}
	return 0;
}

static void
path(char *out, const struct tls_certs *c, const char *name)
{
	snprintf(out, TLS_CERTS_PATH, "%s/%s", c->dir, name);
}

/*
 * A signed, successful OCSP response saying @leaf (issued by @ca) is good,
 * in DER, as `openssl ocsp -respout` writes one.
 */
static int
write_ocsp(const char *path, X509 *leaf, X509 *ca, EVP_PKEY *cakey)
{
	OCSP_BASICRESP *basic = NULL;
	OCSP_RESPONSE *resp = NULL;
	OCSP_CERTID *id = NULL;
	ASN1_TIME *now = NULL, *later = NULL;
	BIO *bio = NULL;
	int rc = -1;

	if ((basic = OCSP_BASICRESP_new()) == NULL ||
	    (id = OCSP_cert_to_id(NULL, leaf, ca)) == NULL ||
	    (now = X509_gmtime_adj(NULL, 0)) == NULL ||
	    (later = X509_gmtime_adj(NULL, 86400)) == NULL ||
	    OCSP_basic_add1_status(basic, id, V_OCSP_CERTSTATUS_GOOD, 0, NULL,
	    now, later) == NULL ||
	    OCSP_basic_sign(basic, ca, cakey, EVP_sha256(), NULL, 0) != 1 ||
	    (resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL,
	    basic)) == NULL ||
	    (bio = BIO_new_file(path, "wb")) == NULL ||
	    i2d_OCSP_RESPONSE_bio(bio, resp) != 1)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "%s: cannot make an OCSP response\n", path);
	if (bio != NULL && BIO_free(bio) != 1)
		rc = -1;
	OCSP_RESPONSE_free(resp);
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(basic);
	ASN1_TIME_free(now);
	ASN1_TIME_free(later);
	return rc;
}

/*
 * Issue a leaf for @cn under @ca and write its cert (+ chain) and key;
 * with @ocsppath, a "good" OCSP response for it too.
 */
static int
issue(const char *cn, const char *san, const char *eku, X509 *ca,
    EVP_PKEY *cakey, const char *certpath, const char *keypath,
    const char *ocsppath)
{
	EVP_PKEY *key;
	X509 *x;
	int rc = -1;

	if ((key = make_key()) == NULL)
		return -1;
	if ((x = make_cert(cn, key, ca, cakey, san, eku)) != NULL &&
	    write_pem(certpath, x, NULL, NULL) == 0 &&
	    write_pem(keypath, NULL, NULL, key) == 0 &&
	    (ocsppath == NULL || write_ocsp(ocsppath, x, ca, cakey) == 0))
		rc = 0;
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

/* @out = @a then @b: a leaf and its issuer make a chain file. */
static int
concat(const char *out, const char *a, const char *b)
{
	const char *in[] = { a, b };
	char buf[4096];
	FILE *f, *g;
	size_t n;
	int rc = 0;

	if ((f = fopen(out, "w")) == NULL) {
		perror(out);
		return -1;
	}
	for (int i = 0; i < 2 && rc == 0; i++) {
		if ((g = fopen(in[i], "r")) == NULL) {
			perror(in[i]);
			rc = -1;
			break;
		}
		while ((n = fread(buf, 1, sizeof(buf), g)) > 0)
			if (fwrite(buf, 1, n, f) != n)
				rc = -1;
		fclose(g);
	}
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

int
tls_certs_make(struct tls_certs *c)
{
	const char *tmp = getenv("TMPDIR");
	EVP_PKEY *cakey = NULL, *okey = NULL;
	X509 *ca = NULL, *oca = NULL;
	FILE *f;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	snprintf(c->dir, sizeof(c->dir), "%s/aloop-tls-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(c->dir) == NULL) {
		perror("mkdtemp");
		c->dir[0] = '\0';
		return -1;
	}
	path(c->ca, c, "ca.pem");
	path(c->other_ca, c, "other-ca.pem");
	path(c->server_cert, c, "server.pem");
	path(c->server_key, c, "server.key");
	path(c->sni_cert, c, "sni.pem");
	path(c->sni_key, c, "sni.key");
	path(c->sni2_cert, c, "sni2.pem");
	path(c->sni2_key, c, "sni2.key");
	path(c->client_cert, c, "client.pem");
	path(c->client_key, c, "client.key");
	path(c->untrusted_cert, c, "untrusted.pem");
	path(c->untrusted_key, c, "untrusted.key");
	path(c->garbage, c, "garbage.pem");
	path(c->server_ocsp, c, "server.ocsp");
	path(c->sni_ocsp, c, "sni.ocsp");
	path(c->server_chain, c, "server-chain.pem");

	if ((cakey = make_key()) == NULL || (okey = make_key()) == NULL ||
	    (ca = make_cert("aloop test CA", cakey, NULL, NULL, NULL,
	    NULL)) == NULL ||
	    (oca = make_cert("aloop untrusted CA", okey, NULL, NULL, NULL,
	    NULL)) == NULL ||
	    write_pem(c->ca, ca, NULL, NULL) != 0 ||
	    write_pem(c->other_ca, oca, NULL, NULL) != 0)
		goto out;
	if (issue("localhost", "DNS:localhost,IP:127.0.0.1,IP:::1",
	    "serverAuth", ca, cakey, c->server_cert, c->server_key,
	    c->server_ocsp) != 0 ||
	    issue("sni.example.test",
	    "DNS:sni.example.test,DNS:*.wild.example.test", "serverAuth",
	    ca, cakey, c->sni_cert, c->sni_key, c->sni_ocsp) != 0 ||
	    issue("exact.wild.example.test",
	    "DNS:exact.wild.example.test,DNS:Mixed.Example.TEST,DNS:*.test,"
	    "DNS:a*.part.example.test", "serverAuth", ca, cakey,
	    c->sni2_cert, c->sni2_key, NULL) != 0 ||
	    issue("aloop test client", NULL, "clientAuth", ca, cakey,
	    c->client_cert, c->client_key, NULL) != 0 ||
	    issue("localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth",
	    oca, okey, c->untrusted_cert, c->untrusted_key, NULL) != 0)
		goto out;
	if (concat(c->server_chain, c->server_cert, c->ca) != 0)
		goto out;
	if ((f = fopen(c->garbage, "w")) == NULL)
		goto out;
	if ((fputs("this is not PEM\n", f) == EOF) | (fclose(f) != 0))
		goto out;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "tls_certs_make: failed in %s\n", c->dir);
	X509_free(ca);
	X509_free(oca);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(okey);
	return rc;
}

void
tls_certs_remove(struct tls_certs *c)
{
	const char *files[] = { c->ca, c->other_ca, c->server_cert,
	    c->server_key, c->sni_cert, c->sni_key, c->sni2_cert,
	    c->sni2_key, c->client_cert,
	    c->client_key, c->untrusted_cert, c->untrusted_key, c->garbage,
	    c->server_ocsp, c->sni_ocsp, c->server_chain };
	size_t i;

	if (c->dir[0] == '\0')
		return;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i][0] != '\0')
			(void)unlink(files[i]);
	if (rmdir(c->dir) != 0)
		perror(c->dir);
	c->dir[0] = '\0';
}

static struct tls_certs shared;
static int shared_state;	/* 0 not tried, 1 made, -1 failed */

static void
shared_remove(void)
{
	tls_certs_remove(&shared);
}

const struct tls_certs *
tls_certs_get(void)
{
	if (shared_state == 0) {
		shared_state = tls_certs_make(&shared) == 0 ? 1 : -1;
		if (shared_state == 1)
			(void)atexit(shared_remove);
	}
	return shared_state == 1 ? &shared : NULL;
}
