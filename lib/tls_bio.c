/*
 * The BIO under every TLS transport: OpenSSL's socket BIO, but sending
 * with MSG_NOSIGNAL, reporting EOF from its own flag, and holding back a
 * TLS 1.3 server's session tickets.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "tls-int.h"

/*
 * OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the
 * peer has gone; a library must not kill its host for that, nor demand
 * that every program ignore the signal.  This BIO is the socket BIO with
 * send(MSG_NOSIGNAL).
 */
static BIO_METHOD *sock_bio_method;
static pthread_once_t sock_bio_once = PTHREAD_ONCE_INIT;

/*
 * Whether this write is a TLS 1.3 server's session tickets, which OpenSSL
 * sends on their own once the client's Finished is in: held back, they
 * ride with the first response, and a client that leaves right after its
 * handshake (a probe, a health check, a benchmark) is not sent bytes that
 * only make its kernel answer with a reset.
 */
static int
sock_bio_holds(const struct aloop__tls_sock *s)
{
	return s->hold && s->ssl != NULL &&
	    SSL_version(s->ssl) == TLS1_3_VERSION &&
	    SSL_get_state(s->ssl) == TLS_ST_SW_SESSION_TICKET;
}

static int
sock_bio_hold(struct aloop__tls_sock *s, const char *buf, int len)
{
	unsigned char *p;

	if ((p = realloc(s->held, s->nheld + (size_t)len)) == NULL)
		return -1;
	memcpy(p + s->nheld, buf, (size_t)len);
	s->held = p;
	s->nheld += (size_t)len;
	return len;
}

/* Send the held bytes, then @len bytes of @buf, in one call. */
static ssize_t
sock_bio_send(struct aloop__tls_sock *s, const char *buf, size_t len)
{
	struct iovec iov[2];
	struct msghdr msg;
	ssize_t n;

	if (s->nheld == 0) {
		do
			n = send(s->fd, buf, len, MSG_NOSIGNAL);
		while (n == -1 && errno == EINTR);
		return n;
	}
	iov[0].iov_base = s->held;
	iov[0].iov_len = s->nheld;
	iov[1].iov_base = (void *)(uintptr_t)buf;
	iov[1].iov_len = len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = len > 0 ? 2 : 1;
	do
		n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n < 0)
		return n;
	if ((size_t)n < s->nheld) {
		/* The rest of the held bytes first, next time. */
		memmove(s->held, s->held + n, s->nheld - (size_t)n);
		s->nheld -= (size_t)n;
		errno = EAGAIN;
		return -1;
	}
	n -= (ssize_t)s->nheld;
	aloop__tls_sock_discard(s);
	if (n == 0 && len > 0) {
		errno = EAGAIN;
		return -1;
	}
	return n;
}

static int
sock_bio_write(BIO *b, const char *buf, int len)
{
	struct aloop__tls_sock *s = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (sock_bio_holds(s) && sock_bio_hold(s, buf, len) == len)
		return len;
	n = sock_bio_send(s, buf, (size_t)len);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

int
aloop__tls_sock_flush(struct aloop__tls_sock *s)
{
	ssize_t n;

	if (s->nheld == 0)
		return 0;
	n = sock_bio_send(s, NULL, 0);
	if (n >= 0)
		return 0;
	return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
}

void
aloop__tls_sock_discard(struct aloop__tls_sock *s)
{
	free(s->held);
	s->held = NULL;
	s->nheld = 0;
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
