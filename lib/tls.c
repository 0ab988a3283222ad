/*
 * The TLS stream transport: OpenSSL driving a connected socket directly
 * (through the BIO of tls_bio.c), with libevent events for readiness and
 * an evbuffer for the plaintext the socket did not take yet.
 *
 * Why not bufferevent_openssl: it stacks two bufferevents, copies every
 * byte through two evbuffers and reads in small slices.  Driving SSL_read
 * and SSL_write on the socket ourselves sends at once when nothing is
 * buffered, decrypts several records into one per-thread buffer per
 * data_received call, and keeps an idle connection down to the SSL object
 * itself: with SSL_MODE_RELEASE_BUFFERS OpenSSL frees its record buffers
 * when they are empty, and an empty evbuffer holds no chain.
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <aloop/future.h>
#include <aloop/log.h>
#include <aloop/server.h>
#include <aloop/tls.h>

#include "tls-int.h"
#include "transport-int.h"

/* One data_received gets at most this much (several TLS records). */
/* Plaintext per SSL_write: one full record. */
#define TLS_WRITE_CHUNK		(16 * 1024)
/*
 * Decrypted bytes handed out per readiness event before yielding to the
 * other connections; what is left in OpenSSL's buffer is picked up on the
 * next loop turn.
 */
#define TLS_READ_BUDGET		(256 * 1024)

#define TLS_HANDSHAKE_TIMEOUT	ALOOP__TLS_HANDSHAKE_TIMEOUT
#define TLS_SHUTDOWN_TIMEOUT	30.0

enum tls_state {
	TLS_HANDSHAKE,		/* no protocol yet */
	TLS_OPEN,		/* connection_made ran */
	TLS_SHUTDOWN,		/* close_notify sent or being sent */
	TLS_DEAD		/* torn down */
};

struct tls {
	struct aloop_transport	 t;	/* first: the ops cast back */
	struct aloop__tls_sock	 io;	/* the descriptor, for the BIO */
	enum tls_state		 state;
	int			 server_side;
	SSL			*ssl;
	struct aloop_tls_context *ctx;	/* a reference */
	struct event		*rev, *wev, *tmo;
	struct evbuffer		*out;	/* plaintext not yet taken by SSL */

	/* Until the handshake is done. */
	const struct aloop_protocol *proto;
	aloop_protocol_factory_fn factory;
	void			*factory_arg;
	struct aloop_future	*waiter;	/* a reference, or NULL */
	double			 sd_timeout;

	short			 hs_want;	/* EV_READ/EV_WRITE the handshake awaits */
	short			 wr_want;	/* what a blocked SSL_write awaits */
	short			 rd_want;	/* what a blocked SSL_read awaits */
	short			 sd_want;	/* what the shutdown awaits */
	unsigned		 reading:1;	/* rev is added */
	unsigned		 writing:1;	/* wev is added */
	unsigned		 closing:1;	/* close(): shut down once drained */
	unsigned		 upgrade:1;	/* start_tls: made already ran */
	/* A server's TLS 1.3 tickets, made once the peer proved there. */
	int			 tickets;

	char			*hostname;	/* client: what was asked for */
	char			*alpn;		/* negotiated, or NULL */
	/* Exact-size copies: sockaddr_storage would cost 256 bytes on
	 * every idle connection. */
	struct sockaddr		*peer, *sock;
	socklen_t		 peerlen, socklen;
};

#define TLS(tp)	((struct tls *)(void *)(tp))

static void	tls_update_events(struct tls *);
static void	tls_start_shutdown(struct tls *);
static void	tls_do_shutdown(struct tls *);
static void	tls_timeout_cb(evutil_socket_t, short, void *);
static const struct sockaddr *tls_peer(struct tls *, socklen_t *);
static const struct sockaddr *tls_sock(struct tls *, socklen_t *);

/* ---------------------------------------------------------- helpers */

static struct timeval
tv_of(double seconds)
{
	struct timeval tv;

	if (seconds < 0)
		seconds = 0;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	return tv;
}

static void
set_event(struct event *ev, unsigned *on, int want)
{
	if (ev == NULL || (*on != 0) == (want != 0))
		return;
	if (want) {
		if (event_add(ev, NULL) == 0)
			*on = 1;
	} else {
		(void)event_del(ev);
		*on = 0;
	}
}

/* Add exactly the events the current state waits for. */
static void
tls_update_events(struct tls *s)
{
	int r = 0, w = 0;
	unsigned on;

	switch (s->state) {
	case TLS_HANDSHAKE:
		r = s->hs_want == EV_READ;
		w = s->hs_want == EV_WRITE;
		break;
	case TLS_OPEN:
		r = (!s->closing &&
		    !(s->t.flags & (ALOOP__T_PAUSED_READ | ALOOP__T_CLOSING)) &&
		    s->rd_want != EV_WRITE) || s->wr_want == EV_READ;
		w = s->rd_want == EV_WRITE || s->io.nheld > 0 ||
		    (s->out != NULL && evbuffer_get_length(s->out) > 0 &&
		    s->wr_want != EV_READ);
		break;
	case TLS_SHUTDOWN:
		r = s->sd_want == EV_READ;
		w = s->sd_want == EV_WRITE;
		break;
	case TLS_DEAD:
		break;
	}
	on = s->reading;
	set_event(s->rev, &on, r);
	s->reading = on;
	on = s->writing;
	set_event(s->wev, &on, w);
	s->writing = on;
}

/*
 * What OpenSSL waits for before the call that returned @rc can be retried:
 * EV_READ or EV_WRITE (either may be asked by any call, renegotiation and
 * key updates included), or 0 when the call failed for good; *@err gets
 * SSL_get_error's verdict for the caller to classify.
 */
static short
tls_want(SSL *ssl, int rc, int *err)
{
	*err = SSL_get_error(ssl, rc);
	if (*err == SSL_ERROR_WANT_READ)
		return EV_READ;
	if (*err == SSL_ERROR_WANT_WRITE)
		return EV_WRITE;
	return 0;
}

static void
tls_release_waiter(struct tls *s, int code, const char *msg)
{
	struct aloop_future *w = s->waiter;

	if (w == NULL)
		return;
	s->waiter = NULL;
	if (!aloop_future_done(w))
		(void)aloop_future_set_error(w, code, "%s", msg);
	aloop_future_release(w);
}

/* Release descriptor, events, SSL and buffer; never calls user code. */
static void
tls_teardown(struct aloop_transport *t)
{
	struct tls *s = TLS(t);

	s->state = TLS_DEAD;
	if (s->rev != NULL)
		event_free(s->rev);
	if (s->wev != NULL)
		event_free(s->wev);
	if (s->tmo != NULL)
		event_free(s->tmo);
	s->rev = s->wev = s->tmo = NULL;
	s->reading = s->writing = 0;
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	aloop__tls_sock_discard(&s->io);
	aloop__transport_close_fd(&s->t, &s->io.fd);
	if (s->out != NULL) {
		evbuffer_free(s->out);
		s->out = NULL;
	}
	tls_release_waiter(s, ALOOP_ECANCELLED,
	    "the connection closed before its TLS handshake finished");
}

static void
tls_free(struct aloop_transport *t)
{
	struct tls *s = TLS(t);

	tls_teardown(t);
	if (s->ctx != NULL)
		aloop_tls_context_release(s->ctx);
	free(s->hostname);
	free(s->alpn);
	free(s->peer);
	free(s->sock);
	free(s);
}

/*
 * An I/O error after the handshake.  System errors go through
 * aloop__transport_fatal as on any socket.  TLS errors (a peer's alert, a
 * bad record) are logged at debug level only, as asyncio does for
 * SSLError: they are the peer's doing, not a bug here, and OpenSSL's
 * reason reaches the protocol through connection_lost.
 */
static void
tls_fatal(struct tls *s, int sys_errno, const char *what)
{
	char msg[256];
	int code;

	code = aloop__tls_classify_error(s->ssl, sys_errno, msg, sizeof(msg));
	if (code > -4000) {
		aloop__transport_fatal(&s->t, code, what);
		return;
	}
	aloop_log(ALOOP_LOG_DEBUG, "%s: %s", what, msg);
	aloop__transport_drop(&s->t, code, "%s", msg);
}

/* --------------------------------------------------------- handshake */

static void
tls_handshake_failed(struct tls *s, int code, const char *msg)
{
	char peer[INET6_ADDRSTRLEN + 8] = "?";
	const struct sockaddr *sa = NULL;

	if (aloop_log_get_level() >= ALOOP_LOG_DEBUG)
		sa = tls_peer(s, NULL);
	if (sa != NULL && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, peer, sizeof(peer));
	else if (sa != NULL && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const
		    void *)sa)->sin6_addr, peer, sizeof(peer));
	/*
	 * asyncio logs handshake errors at debug level only: a server on
	 * the Internet sees scanners and broken clients all day, and an
	 * error line for each would drown the log.  The client's waiter
	 * carries the error to whoever asked for the connection.
	 */
	aloop_log(ALOOP_LOG_DEBUG, "TLS handshake with %s failed (%s side): %s",
	    peer, s->server_side ? "server" : "client", msg);
	tls_release_waiter(s, code, msg);
	/* No protocol callback is set yet, so nothing but the owner hears. */
	aloop__transport_drop(&s->t, code, "%s", msg);
}

/*
 * Whether a server's TLS 1.3 peer closed its connection right after its
 * Finished: with TLS 1.3 the client speaks last, so its EOF may already
 * be in.  One look (SSL_peek, which leaves any data to SSL_read) when
 * nothing is buffered yet: it costs a recv() that finds nothing when the
 * client waits for the server to speak, and saves whatever the protocol
 * would start for a client that is gone (a proxy's upstream connect),
 * the tickets, and a loop turn to find the EOF.
 */
static int
tls_peer_gone(struct tls *s, int *look_again)
{
	unsigned char c;
	int n, err;

	*look_again = 0;
	if (!s->server_side || SSL_version(s->ssl) != TLS1_3_VERSION ||
	    SSL_has_pending(s->ssl))
		return 0;
	ERR_clear_error();
	errno = 0;
	n = SSL_peek(s->ssl, &c, 1);
	if (n > 0)
		return 0;
	err = SSL_get_error(s->ssl, n);
	ERR_clear_error();
	if (s->io.eof && (err == SSL_ERROR_ZERO_RETURN ||
	    err == SSL_ERROR_SYSCALL))
		return 1;
	/*
	 * Anything else but "nothing yet" (a close_notify, an alert, a
	 * reset) is the read path's to find and report, and the socket
	 * will not signal what the look took already.
	 */
	*look_again = err != SSL_ERROR_WANT_READ &&
	    err != SSL_ERROR_WANT_WRITE;
	/* A peer that is closing resumes nothing. */
	if (err == SSL_ERROR_ZERO_RETURN)
		aloop__tls_sock_discard(&s->io);
	return 0;
}

/*
 * The TLS 1.3 session tickets, made only now that the peer is known to be
 * there: each costs a session's encryption and random bytes, wasted on a
 * client that leaves right after its handshake.  OpenSSL writes them on
 * the next SSL_do_handshake, which the BIO holds back until the first
 * response (or the flush after connection_made).  A failure costs the
 * peer its resumption, not its connection.
 */
static void
tls_make_tickets(struct tls *s)
{
	int i;

	ERR_clear_error();
	for (i = 0; i < s->tickets; i++)
		if (SSL_new_session_ticket(s->ssl) != 1)
			break;
	if (i > 0)
		(void)SSL_do_handshake(s->ssl);
	ERR_clear_error();
}

static void
tls_handshake_done(struct tls *s)
{
	const unsigned char *alpn;
	unsigned int alpnlen;
	struct aloop__protocol_common cb;
	void *state = NULL;
	int rc, look_again;

	/* The timer comes back only for a shutdown; idle connections do
	 * not keep it. */
	if (s->tmo != NULL) {
		event_free(s->tmo);
		s->tmo = NULL;
	}
	SSL_get0_alpn_selected(s->ssl, &alpn, &alpnlen);
	if (alpn != NULL && alpnlen > 0 &&
	    (s->alpn = strndup((const char *)alpn, alpnlen)) == NULL) {
		tls_handshake_failed(s, ALOOP_ENOMEM, "out of memory");
		return;
	}
	s->state = TLS_OPEN;
	if ((rc = s->factory(s->factory_arg, &state)) != 0) {
		aloop_log(ALOOP_LOG_DEBUG, "protocol factory refused a TLS "
		    "connection: %s", aloop_strerror(rc));
		tls_handshake_failed(s, rc, "the protocol factory refused "
		    "the connection");
		return;
	}
	/* From here on the protocol hears everything, lost included. */
	aloop__protocol_common_stream(&cb, s->proto);
	/* An upgraded connection's protocol saw connection_made already. */
	if (s->upgrade)
		cb.connection_made = NULL;
	aloop__transport_attach(&s->t, &cb, state);
	if (tls_peer_gone(s, &look_again)) {
		/*
		 * The peer left as soon as its handshake was done: the
		 * protocol still sees connection_made and connection_lost,
		 * but is_closing is already 1 in connection_made, so that
		 * it starts nothing (a proxy's upstream connect), and
		 * nothing is written to the departed peer.
		 */
		aloop__tls_sock_discard(&s->io);
		aloop__transport_lost(&s->t, 0, NULL);
	} else if (s->tickets > 0 && SSL_version(s->ssl) == TLS1_3_VERSION)
		tls_make_tickets(s);
	(void)aloop__transport_made(&s->t);
	if (s->waiter != NULL) {
		struct aloop_future *w = s->waiter;

		s->waiter = NULL;
		(void)aloop__future_set_transport(w, &s->t);
		aloop_future_release(w);
	}
	if (aloop__transport_is_done(&s->t) || s->state != TLS_OPEN)
		return;
	/*
	 * The peer is there and connection_made wrote nothing for the
	 * tickets to go with: they go now.
	 */
	if (aloop__tls_sock_flush(&s->io) < 0) {
		tls_fatal(s, errno, "Fatal write error on TLS transport");
		return;
	}
	/* Data that came with the peer's last flight is already in
	 * OpenSSL's buffer: the socket will not signal it again. */
	if (look_again || SSL_has_pending(s->ssl))
		event_active(s->rev, EV_READ, 1);
}

static void
tls_do_handshake(struct tls *s)
{
	char msg[256];
	int rc, err, code;

	/*
	 * Whoever asked for the connection gave up (create_connection was
	 * cancelled): end it here rather than make a protocol nobody holds.
	 * Checked at every handshake step, so it takes one round trip at
	 * most, without keeping a callback on the future.
	 */
	if (s->waiter != NULL && aloop_future_cancelled(s->waiter)) {
		tls_handshake_failed(s, ALOOP_ECANCELLED,
		    "the connection was cancelled during the TLS handshake");
		return;
	}
	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(s->ssl);
	if (rc == 1) {
		s->hs_want = 0;
		tls_handshake_done(s);
		return;
	}
	if ((s->hs_want = tls_want(s->ssl, rc, &err)) != 0)
		return;
	code = aloop__tls_classify_error(s->ssl,
	    err == SSL_ERROR_SYSCALL ? errno : 0, msg, sizeof(msg));
	tls_handshake_failed(s, code, msg);
}

/* ------------------------------------------------------ read, write */

static void
tls_eof(struct tls *s)
{
	const struct aloop_protocol *p = s->t.proto;

	/* TLS has no half-close: eof_received's answer does not matter. */
	if (p->eof_received != NULL) {
		(void)p->eof_received(&s->t, s->t.state);
		if (aloop__transport_is_done(&s->t))
			return;
	}
	aloop_transport_close(&s->t);
}

/*
 * Decrypt what OpenSSL has into the per-thread buffer, several records per
 * data_received (read-ahead fills OpenSSL's buffer with all the socket
 * has), until OpenSSL needs the socket again, the protocol pauses or
 * closes, or this turn's budget is spent.
 */
static void
tls_do_read(struct tls *s)
{
	const struct aloop_protocol *p = s->t.proto;
	unsigned char *buf;
	size_t have = 0, total = 0;
	int n, err, eof = 0;
	short want;

	if ((buf = aloop__read_buffer()) == NULL) {
		aloop__transport_fatal(&s->t, ALOOP_ENOMEM,
		    "Fatal read error on TLS transport");
		return;
	}
	s->rd_want = 0;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		n = SSL_read(s->ssl, buf + have, (int)(ALOOP__READ_MAX - have));
		if (n > 0) {
			have += (size_t)n;
			if (have < ALOOP__READ_MAX && SSL_has_pending(s->ssl))
				continue;
			total += have;
			p->data_received(&s->t, s->t.state, buf, have);
			have = 0;
			if (aloop__transport_is_done(&s->t) ||
			    s->state != TLS_OPEN || (s->t.flags &
			    (ALOOP__T_PAUSED_READ | ALOOP__T_CLOSING)))
				return;
			/*
			 * Nothing buffered: the socket's readiness brings us
			 * back, without a recv() that would only say EAGAIN.
			 */
			if (!SSL_has_pending(s->ssl))
				return;
			if (total >= TLS_READ_BUDGET) {
				/* Fairness: go on next turn. */
				event_active(s->rev, EV_READ, 1);
				return;
			}
			continue;
		}
		if ((want = tls_want(s->ssl, n, &err)) != 0) {
			/* Readability is what reading waits for anyway. */
			if (want == EV_WRITE)
				s->rd_want = EV_WRITE;
			break;
		}
		if (err == SSL_ERROR_ZERO_RETURN ||
		    (err == SSL_ERROR_SYSCALL && errno == 0)) {
			eof = 1;
			break;
		}
		if (have > 0) {
			/* Hand over what came before the error first. */
			p->data_received(&s->t, s->t.state, buf, have);
			have = 0;
			if (aloop__transport_is_done(&s->t) ||
			    s->state != TLS_OPEN)
				return;
		}
		tls_fatal(s, err == SSL_ERROR_SYSCALL ? errno : 0,
		    "Fatal read error on TLS transport");
		return;
	}
	if (have > 0) {
		p->data_received(&s->t, s->t.state, buf, have);
		if (aloop__transport_is_done(&s->t) || s->state != TLS_OPEN)
			return;
	}
	if (eof && !(s->t.flags & ALOOP__T_CLOSING))
		tls_eof(s);
}

/* Hand the buffer to SSL_write, one record at a time. */
static void
tls_flush(struct tls *s)
{
	size_t len, before;
	unsigned char *p;
	int n, err;

	if (s->out == NULL)
		return;
	before = evbuffer_get_length(s->out);
	s->wr_want = 0;
	while ((len = evbuffer_get_length(s->out)) > 0) {
		if (len > TLS_WRITE_CHUNK)
			len = TLS_WRITE_CHUNK;
		/*
		 * A retry after WANT_WRITE must offer at least the bytes of
		 * the record OpenSSL already built; they are still at the
		 * front and len never shrinks, and SSL_MODE_ACCEPT_MOVING_
		 * WRITE_BUFFER allows the pullup to move them.
		 */
		if ((p = evbuffer_pullup(s->out, (ssize_t)len)) == NULL) {
			aloop__transport_fatal(&s->t, ALOOP_ENOMEM,
			    "Fatal write error on TLS transport");
			return;
		}
		ERR_clear_error();
		errno = 0;
		n = SSL_write(s->ssl, p, (int)len);
		if (n > 0) {
			(void)evbuffer_drain(s->out, (size_t)n);
			continue;
		}
		if ((s->wr_want = tls_want(s->ssl, n, &err)) != 0)
			break;
		tls_fatal(s, err == SSL_ERROR_SYSCALL ? errno : 0,
		    "Fatal write error on TLS transport");
		return;
	}
	if (evbuffer_get_length(s->out) < before)
		aloop__transport_resume_check(&s->t);
	if (aloop__transport_is_done(&s->t))
		return;
	if (s->closing && evbuffer_get_length(s->out) == 0)
		tls_start_shutdown(s);
}

/* ---------------------------------------------------------- shutdown */

static void
tls_start_shutdown(struct tls *s)
{
	if (s->state != TLS_OPEN)
		return;
	s->state = TLS_SHUTDOWN;
	tls_do_shutdown(s);
}

/*
 * Send our close_notify, then wait (bounded by the shutdown timeout) for
 * the peer's, or its EOF, reading and discarding whatever it still sends:
 * closing a socket with unread data makes the kernel send a reset that can
 * destroy what we wrote before it reaches the peer.
 */
static void
tls_do_shutdown(struct tls *s)
{
	unsigned char *buf;
	int rc, err;

	s->sd_want = 0;
	/*
	 * The peer closed its side of the TCP connection without a
	 * close_notify (OpenSSL takes that as one, SSL_OP_IGNORE_UNEXPECTED_
	 * EOF): ours could only meet a closed socket and bring back a reset,
	 * and OpenSSL's own rule after such an EOF is not to shut down.
	 */
	if (s->io.eof) {
		aloop__tls_sock_discard(&s->io);
		goto done;
	}
	ERR_clear_error();
	errno = 0;
	rc = SSL_shutdown(s->ssl);
	if (rc == 1)
		goto done;
	if (rc < 0) {
		if ((s->sd_want = tls_want(s->ssl, rc, &err)) != 0)
			return;
		goto done;
	}
	/* Ours is out; drain until the peer's arrives. */
	if ((buf = aloop__read_buffer()) == NULL)
		goto done;
	for (;;) {
		ERR_clear_error();
		rc = SSL_read(s->ssl, buf, ALOOP__READ_MAX);
		if (rc > 0)
			continue;
		if ((s->sd_want = tls_want(s->ssl, rc, &err)) != 0)
			return;
		break;
	}
done:
	ERR_clear_error();
	aloop__transport_lost(&s->t, 0, NULL);
}

/* ----------------------------------------------------------- events */

static void
tls_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls *s = arg;

	(void)fd;
	(void)what;
	aloop__transport_ref(&s->t);
	switch (s->state) {
	case TLS_HANDSHAKE:
		tls_do_handshake(s);
		break;
	case TLS_OPEN:
		if (s->io.nheld > 0 && aloop__tls_sock_flush(&s->io) < 0) {
			tls_fatal(s, errno, "Fatal write error on TLS transport");
			break;
		}
		if (s->out != NULL && evbuffer_get_length(s->out) > 0)
			tls_flush(s);
		if (s->state == TLS_OPEN && !aloop__transport_is_done(&s->t) &&
		    !s->closing &&
		    !(s->t.flags & (ALOOP__T_PAUSED_READ | ALOOP__T_CLOSING)))
			tls_do_read(s);
		break;
	case TLS_SHUTDOWN:
		tls_do_shutdown(s);
		break;
	case TLS_DEAD:
		break;
	}
	if (!aloop__transport_is_done(&s->t) && s->state != TLS_DEAD)
		tls_update_events(s);
	aloop__transport_unref(&s->t);
}

static void
tls_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls *s = arg;
	char msg[128];

	(void)fd;
	(void)what;
	aloop__transport_ref(&s->t);
	if (s->state == TLS_HANDSHAKE) {
		snprintf(msg, sizeof(msg), "TLS handshake timed out");
		tls_handshake_failed(s, ALOOP_ETIMEDOUT, msg);
	} else if (s->state == TLS_SHUTDOWN || s->closing) {
		/* The peer did not take our data or never answered our
		 * close_notify: drop it. */
		aloop_log(ALOOP_LOG_DEBUG, "TLS shutdown timed out");
		aloop__transport_drop(&s->t, 0, NULL);
	}
	aloop__transport_unref(&s->t);
}

/* -------------------------------------------------------------- ops */

/*
 * With nothing queued, encrypt straight from the caller's buffers (no
 * copy); only what the socket does not take is copied into the queue.
 * A record OpenSSL built but could not send stays pending in OpenSSL, and
 * the retry from the queue offers those same bytes again, as SSL_write's
 * retry rule wants.
 */
static int
tls_write(struct aloop_transport *t, const struct iovec *iov, int iovcnt)
{
	struct tls *s = TLS(t);
	const unsigned char *p;
	size_t left, chunk;
	int i = 0, n, err;

	if (s->state != TLS_OPEN)
		return 0;
	if ((s->out == NULL || evbuffer_get_length(s->out) == 0) &&
	    s->wr_want == 0) {
		for (; i < iovcnt; i++) {
			p = iov[i].iov_base;
			left = iov[i].iov_len;
			while (left > 0) {
				chunk = left > TLS_WRITE_CHUNK ?
				    TLS_WRITE_CHUNK : left;
				ERR_clear_error();
				errno = 0;
				n = SSL_write(s->ssl, p, (int)chunk);
				if (n > 0) {
					p += n;
					left -= (size_t)n;
					continue;
				}
				s->wr_want = tls_want(s->ssl, n, &err);
				if (s->wr_want == 0) {
					tls_fatal(s, err == SSL_ERROR_SYSCALL ?
					    errno : 0,
					    "Fatal write error on TLS transport");
					return 0;
				}
				break;
			}
			if (left > 0) {
				if (s->out == NULL &&
				    (s->out = evbuffer_new()) == NULL)
					return ALOOP_ENOMEM;
				if (evbuffer_add(s->out, p, left) != 0)
					return ALOOP_ENOMEM;
				i++;
				break;
			}
		}
	}
	for (; i < iovcnt; i++) {
		if (s->out == NULL && (s->out = evbuffer_new()) == NULL)
			return ALOOP_ENOMEM;
		if (evbuffer_add(s->out, iov[i].iov_base,
		    iov[i].iov_len) != 0)
			return ALOOP_ENOMEM;
	}
	tls_update_events(s);
	return 0;
}

static void
tls_close(struct aloop_transport *t)
{
	struct tls *s = TLS(t);
	struct timeval tv;

	if (s->state == TLS_HANDSHAKE) {
		/* A server closing its clients: a handshake has no data to
		 * flush, so it simply ends. */
		aloop__transport_drop(t, 0, NULL);
		return;
	}
	if (s->state != TLS_OPEN)
		return;
	s->closing = 1;
	/*
	 * The shutdown timeout bounds the whole close, flushing included,
	 * as asyncio's does: a peer that stops reading cannot keep the
	 * connection forever.  Without a timer there is no bound, so the
	 * connection is dropped at once.
	 */
	if (s->tmo == NULL)
		s->tmo = evtimer_new(aloop__loop_base(s->t.loop),
		    tls_timeout_cb, s);
	tv = tv_of(s->sd_timeout);
	if (s->tmo == NULL || event_add(s->tmo, &tv) != 0) {
		aloop__transport_drop(t, 0, NULL);
		return;
	}
	if (s->out == NULL || evbuffer_get_length(s->out) == 0)
		tls_start_shutdown(s);
	if (!aloop__transport_is_done(t) && s->state != TLS_DEAD)
		tls_update_events(s);
}

static void
tls_abort(struct aloop_transport *t)
{
	tls_teardown(t);
}

static void
tls_pause_reading(struct aloop_transport *t)
{
	tls_update_events(TLS(t));
}

static void
tls_resume_reading(struct aloop_transport *t)
{
	struct tls *s = TLS(t);

	tls_update_events(s);
	/* Records OpenSSL already read will not make the socket readable. */
	if (s->state == TLS_OPEN && s->rev != NULL && s->ssl != NULL &&
	    SSL_has_pending(s->ssl))
		event_active(s->rev, EV_READ, 1);
}

static size_t
tls_get_write_buffer_size(const struct aloop_transport *t)
{
	const struct tls *s = (const struct tls *)(const void *)t;

	return s->out != NULL ? evbuffer_get_length(s->out) : 0;
}

static int
tls_can_write_eof(const struct aloop_transport *t)
{
	(void)t;
	return 0;
}

static const void *
tls_get_extra_info(struct aloop_transport *t, const char *name, size_t *len)
{
	struct tls *s = TLS(t);
	const char *str = NULL;

	if (strcmp(name, "peername") == 0 || strcmp(name, "sockname") == 0) {
		const struct sockaddr *sa;
		socklen_t sl = 0;

		sa = name[0] == 'p' ? tls_peer(s, &sl) : tls_sock(s, &sl);
		if (sa != NULL && len != NULL)
			*len = sl;
		return sa;
	}
	if (strcmp(name, "socket") == 0 && s->io.fd != -1) {
		if (len != NULL)
			*len = sizeof(s->io.fd);
		return &s->io.fd;
	}
	if (strcmp(name, "sslcontext") == 0)
		return s->ctx;
	if (s->ssl == NULL)
		return NULL;
	if (strcmp(name, "ssl_object") == 0)
		return s->ssl;
	if (strcmp(name, "peercert") == 0) {
		/* Only a certificate that verification accepted. */
		if (aloop__tls_context_verify(s->ctx) == ALOOP_TLS_VERIFY_NONE ||
		    SSL_get_verify_result(s->ssl) != X509_V_OK)
			return NULL;
		return SSL_get0_peer_certificate(s->ssl);
	}
	if (strcmp(name, "cipher") == 0)
		str = SSL_get_cipher_name(s->ssl);
	else if (strcmp(name, "tls_version") == 0)
		str = SSL_get_version(s->ssl);
	else if (strcmp(name, "alpn_protocol") == 0)
		str = s->alpn;
	else if (strcmp(name, "server_hostname") == 0)
		str = s->server_side ? SSL_get_servername(s->ssl,
		    TLSEXT_NAMETYPE_host_name) : s->hostname;
	if (str != NULL && len != NULL)
		*len = strlen(str);
	return str;
}

static const struct aloop__transport_ops tls_ops = {
	.name = "tls",
	.stream_protocol = 1,
	.write = tls_write,
	.write_eof = NULL,		/* TLS has no half-close */
	.close = tls_close,
	.abort = tls_abort,
	.pause_reading = tls_pause_reading,
	.resume_reading = tls_resume_reading,
	.get_extra_info = tls_get_extra_info,
	.get_write_buffer_size = tls_get_write_buffer_size,
	.can_write_eof = tls_can_write_eof,
	.teardown = tls_teardown,
	.free = tls_free,
};

/* ------------------------------------------------------ constructor */

typedef int (*addr_getter_fn)(int, struct sockaddr *, socklen_t *);

/* An exact-size copy of the socket's address; NULL if it has none. */
static int
addr_dup(int fd, addr_getter_fn get, struct sockaddr **out, socklen_t *outlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	*out = NULL;
	*outlen = 0;
	if (get(fd, (struct sockaddr *)&ss, &len) == -1 || len == 0)
		return 0;
	if (len > sizeof(ss))
		len = sizeof(ss);
	if ((*out = malloc(len)) == NULL)
		return ALOOP_ENOMEM;
	memcpy(*out, &ss, len);
	*outlen = len;
	return 0;
}

/*
 * The addresses, asked of the kernel on first use only: a server's
 * connection has its peer's from accept() already (aloop__tls_set_peer),
 * and most never need their own, so a handshake makes neither call.
 */
static const struct sockaddr *
tls_peer(struct tls *s, socklen_t *len)
{
	if (s->peer == NULL && s->io.fd >= 0)
		(void)addr_dup(s->io.fd, getpeername, &s->peer, &s->peerlen);
	if (len != NULL)
		*len = s->peerlen;
	return s->peer;
}

static const struct sockaddr *
tls_sock(struct tls *s, socklen_t *len)
{
	if (s->sock == NULL && s->io.fd >= 0)
		(void)addr_dup(s->io.fd, getsockname, &s->sock, &s->socklen);
	if (len != NULL)
		*len = s->socklen;
	return s->sock;
}

void
aloop__tls_set_peer(struct aloop_transport *t, const struct sockaddr *sa,
    socklen_t len)
{
	struct tls *s = TLS(t);

	if (s->peer != NULL || len == 0 || (s->peer = malloc(len)) == NULL)
		return;
	memcpy(s->peer, sa, len);
	s->peerlen = len;
}

/* The client session cache's key: the peer's address and the name. */
static void
session_key(const struct tls *s, const char *hostname, char *key,
    size_t keylen)
{
	char addr[INET6_ADDRSTRLEN] = "";
	unsigned port = 0;

	if (s->peer != NULL && s->peer->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)s->peer;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
	} else if (s->peer != NULL && s->peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)s->peer;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		port = ntohs(sin6->sin6_port);
	}
	snprintf(key, keylen, "[%s]:%u/%s", addr, port,
	    hostname != NULL ? hostname : "");
}

int
aloop__tls_transport_new(struct aloop_loop *loop, int fd,
    struct aloop_tls_context *ctx, int server_side,
    const char *server_hostname, double handshake_timeout,
    double shutdown_timeout, const struct aloop_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg,
    struct aloop_future *waiter, struct aloop_transport **out)
{
	struct event_base *base;
	struct tls *s;
	BIO *bio;
	struct timeval tv;
	char key[INET6_ADDRSTRLEN + 300], err[256];
	int rc = ALOOP_ENOMEM;

	if (out != NULL)
		*out = NULL;
	if (proto == NULL || factory == NULL || ctx == NULL ||
	    (ctx == ALOOP_TLS_DEFAULT && server_side)) {
		aloop__sock_close_reset(fd);
		return ALOOP_EINVAL;
	}
	if ((rc = aloop__loop_check(loop, "TLS transport")) != 0) {
		aloop__sock_close_reset(fd);
		return rc;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		aloop__sock_close_reset(fd);
		return ALOOP_ENOMEM;
	}
	s->io.fd = fd;
	s->server_side = server_side != 0;
	s->proto = proto;
	s->factory = factory;
	s->factory_arg = factory_arg;
	s->sd_timeout = shutdown_timeout > 0 ? shutdown_timeout :
	    TLS_SHUTDOWN_TIMEOUT;
	if (handshake_timeout <= 0)
		handshake_timeout = TLS_HANDSHAKE_TIMEOUT;
	s->ctx = ctx == ALOOP_TLS_DEFAULT ? aloop__tls_context_default() :
	    aloop_tls_context_ref(ctx);
	if (s->ctx == NULL)
		goto fail;
	if (aloop__tls_context_side(s->ctx) !=
	    (s->server_side ? ALOOP_TLS_SERVER : ALOOP_TLS_CLIENT)) {
		aloop_log(ALOOP_LOG_ERR, "a %s TLS connection needs a %s "
		    "context", s->server_side ? "server" : "client",
		    s->server_side ? "server" : "client");
		rc = ALOOP_EINVAL;
		goto fail;
	}
	/* A client's session key needs its peer now; the rest is lazy. */
	if (!s->server_side &&
	    addr_dup(fd, getpeername, &s->peer, &s->peerlen) != 0)
		goto fail;
	if (!s->server_side && server_hostname != NULL &&
	    (s->hostname = strdup(server_hostname)) == NULL)
		goto fail;
	if (!s->server_side && server_hostname != NULL &&
	    *server_hostname == '\0' &&
	    aloop_tls_context_get_check_hostname(s->ctx) &&
	    aloop__tls_context_verify(s->ctx) != ALOOP_TLS_VERIFY_NONE)
		aloop_log(ALOOP_LOG_WARNING, "TLS: empty server_hostname, the "
		    "server's host name is not checked");
	/* Only clients look sessions up by peer: a server formats no key. */
	if (!s->server_side)
		session_key(s, server_hostname, key, sizeof(key));
	s->ssl = aloop__tls_context_new_ssl(s->ctx, s->server_side,
	    server_hostname, s->server_side ? NULL : key, err, sizeof(err));
	if (s->ssl == NULL) {
		aloop_log(ALOOP_LOG_ERR, "TLS: %s", err);
		rc = ALOOP_ETLS;
		goto fail;
	}
	/* Fill OpenSSL's buffer with all the socket has: one recv() for
	 * several records instead of two per record. */
	SSL_set_read_ahead(s->ssl, 1);
	if ((bio = aloop__tls_sock_bio_new(&s->io)) == NULL) {
		ERR_clear_error();
		goto fail;
	}
	SSL_set_bio(s->ssl, bio, bio);
	s->io.ssl = s->ssl;
	s->io.hold = s->server_side;
	/*
	 * A server makes its TLS 1.3 tickets after the handshake, once the
	 * peer is seen to stay (tls_make_tickets); TLS 1.2's are part of
	 * the handshake and not counted here.
	 */
	if (s->server_side) {
		s->tickets = (int)SSL_get_num_tickets(s->ssl);
		(void)SSL_set_num_tickets(s->ssl, 0);
	}
	base = aloop__loop_base(loop);
	s->rev = event_new(base, fd, EV_READ | EV_PERSIST, tls_io_cb, s);
	s->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, tls_io_cb, s);
	s->tmo = evtimer_new(base, tls_timeout_cb, s);
	if (s->rev == NULL || s->wev == NULL || s->tmo == NULL)
		goto fail;
	tv = tv_of(handshake_timeout);
	if (event_add(s->tmo, &tv) != 0)
		goto fail;

	/* No protocol callback until the handshake is done (cb empty). */
	aloop__transport_init(&s->t, &tls_ops, loop, proto, NULL, NULL);
	aloop__transport_own_fd(&s->t, fd);
	s->state = TLS_HANDSHAKE;
	/*
	 * The client speaks first; its ClientHello goes out from the loop,
	 * never from here, so that this call cannot fail half-way after
	 * returning 0.
	 */
	s->hs_want = s->server_side ? EV_READ : EV_WRITE;
	if (waiter != NULL)
		s->waiter = aloop_future_ref(waiter);
	tls_update_events(s);
	if (out != NULL)
		*out = &s->t;
	return 0;
fail:
	tls_teardown(&s->t);
	if (s->ctx != NULL)
		aloop_tls_context_release(s->ctx);
	free(s->hostname);
	free(s->peer);
	free(s->sock);
	free(s);
	return rc;
}

void
aloop__tls_mark_upgrade(struct aloop_transport *t)
{
	TLS(t)->upgrade = 1;
}

int
aloop__tls_set_session_id_context(struct aloop_transport *t,
    const unsigned char *sid, size_t len)
{
	struct tls *s = TLS(t);

	if (!s->server_side || len > SSL_MAX_SID_CTX_LENGTH ||
	    SSL_set_session_id_context(s->ssl, sid, (unsigned)len) != 1) {
		ERR_clear_error();
		return ALOOP_EINVAL;
	}
	return 0;
}
