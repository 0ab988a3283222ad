/*
 * Certificates for the TLS tests, made at test time with OpenSSL's X509
 * API in a fresh temporary directory, so that no key is ever committed and
 * none expires in the tree.
 */
#ifndef ALOOP_TEST_TLS_CERTS_H
#define ALOOP_TEST_TLS_CERTS_H

#include <limits.h>

#define TLS_CERTS_PATH	512

struct tls_certs {
	char	dir[256];
	/* The test CA, and a second one nobody trusts. */
	char	ca[TLS_CERTS_PATH];
	char	other_ca[TLS_CERTS_PATH];
	/* "localhost", IP 127.0.0.1 and ::1, signed by the CA. */
	char	server_cert[TLS_CERTS_PATH], server_key[TLS_CERTS_PATH];
	/* "sni.example.test" and "*.wild.example.test", signed by the CA. */
	char	sni_cert[TLS_CERTS_PATH], sni_key[TLS_CERTS_PATH];
	/* "exact.wild.example.test" and "Mixed.Example.TEST", with two
	 * names that can never match ("*.test", "a*.part.example.test"). */
	char	sni2_cert[TLS_CERTS_PATH], sni2_key[TLS_CERTS_PATH];
	/* A client certificate signed by the CA. */
	char	client_cert[TLS_CERTS_PATH], client_key[TLS_CERTS_PATH];
	/* "localhost" again, but signed by the untrusted CA. */
	char	untrusted_cert[TLS_CERTS_PATH], untrusted_key[TLS_CERTS_PATH];
	/* "Good" DER OCSP responses for server_cert and sni_cert, signed
	 * by the CA; server_cert followed by the CA. */
	char	server_ocsp[TLS_CERTS_PATH], sni_ocsp[TLS_CERTS_PATH];
	char	server_chain[TLS_CERTS_PATH];
	/* A text file that is no PEM at all. */
	char	garbage[TLS_CERTS_PATH];
};

/* Make everything; 0 or -1 (with a message on stderr). */
int	tls_certs_make(struct tls_certs *c);

/* Remove the files and the directory. */
void	tls_certs_remove(struct tls_certs *c);

/*
 * The certificates every TLS test of this program shares: made on first
 * use, removed when the program exits.  NULL if they cannot be made.
 */
const struct tls_certs *tls_certs_get(void);

/* In a test: the shared certificates, or the test fails at once. */
#define NEED_CERTS(c)	do {						\
	(c) = tls_certs_get();						\
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);				\
} while (0)

#endif /* ALOOP_TEST_TLS_CERTS_H */
