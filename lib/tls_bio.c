/*
 * The BIO under every TLS transport: OpenSSL's socket BIO, but sending
 * with MSG_NOSIGNAL and reporting EOF from its own flag.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>

#include <openssl/bio.h>

#include "tls-int.h"

/*
 * OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the
 * peer has gone; a library must not kill its host for that, nor demand
 * that every program ignore the signal.  This BIO is the socket BIO with
 * send(MSG_NOSIGNAL).
 */
static BIO_METHOD *sock_bio_method;
static pthread_once_t sock_bio_once = PTHREAD_ONCE_INIT;

static int
sock_bio_write(BIO *b, const char *buf, int len)
{
	struct aloop__tls_sock *s = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(s->fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

static int
sock_bio_read(BIO *b, char *buf, int len)
{
	struct aloop__tls_sock *s = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(s->fd, buf, (size_t)len, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_read(b);
	else if (n == 0)
		s->eof = 1;
	return (int)n;
}

static long
sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct aloop__tls_sock *s = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		/* How OpenSSL tells a peer's EOF from a read error. */
		return s != NULL && s->eof;
	default:
		return 0;
	}
}

static int
sock_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void
sock_bio_init(void)
{
	BIO_METHOD *m;
	int type = BIO_get_new_index();

	if (type == -1 || (m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK,
	    "aloop socket")) == NULL)
		return;
	if (BIO_meth_set_write(m, sock_bio_write) != 1 ||
	    BIO_meth_set_read(m, sock_bio_read) != 1 ||
	    BIO_meth_set_ctrl(m, sock_bio_ctrl) != 1 ||
	    BIO_meth_set_create(m, sock_bio_create) != 1) {
		BIO_meth_free(m);
		return;
	}
	sock_bio_method = m;
}

BIO *
aloop__tls_sock_bio_new(struct aloop__tls_sock *s)
{
	BIO *b;

	(void)pthread_once(&sock_bio_once, sock_bio_init);
	if (sock_bio_method == NULL || (b = BIO_new(sock_bio_method)) == NULL)
		return NULL;
	BIO_set_data(b, s);
	return b;
}
