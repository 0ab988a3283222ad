/*
 * The TLS transport over real loopback sockets: the tests connect and
 * accept the TCP sockets themselves and wrap both ends with
 * aloop__tls_transport_new(), so every behaviour is checked from both
 * sides with certificates made at test time.  Every run is bounded by a
 * watchdog timer on the loop.
 */
#include "config.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "tls-int.h"
#include "tls_certs.h"
#include "transport-int.h"

#define WATCHDOG	10.0


/* ------------------------------------------------------ the protocol */

struct side {
	int			 refuse;	/* factory refuses */
	int			 echo;		/* write back what arrives */
	int			 flow;		/* pause reading while paused writing */
	int			 eof_keep_open;	/* eof_received returns 1 */
	const char		*greeting;	/* written in connection_made */
	int			 close_in_made;
	int			 pause_in_made;	/* never read */
	size_t			 stall_at;	/* pause reading here a while */
	int			 stalled;

	int			 factory_calls, made, eofs, losts, gone;
	int			 closing_at_made;	/* is_closing there */
	int			 pauses, resumes;
	int			 lost_code;
	char			 lost_msg[256];
	struct aloop_transport	*t;
	unsigned char		*buf;
	size_t			 len, cap;
};

static struct aloop_loop *loop;
static int (*stop_cond)(void *);
static void *stop_arg;
static int timed_out;

static void
maybe_stop(void)
{
	if (stop_cond != NULL && stop_cond(stop_arg))
		aloop_stop(loop);
}

static void
watchdog(void *arg)
{
	(void)arg;
	timed_out = 1;
	aloop_stop(loop);
}

/* Some conditions change without a protocol callback (a server counting
 * its connections): look again every few milliseconds too. */
static void
poll_cond(void *arg)
{
	aloop_handle_t *h = arg;

	maybe_stop();
	if (aloop_call_later(loop, 0.01, poll_cond, h, h) != 0)
		*h = ALOOP_HANDLE_NONE;
}

/* Run the loop until @cond holds; 0, or -1 if the watchdog fired. */
static int
run_until(int (*cond)(void *), void *arg)
{
	aloop_handle_t h, ph = ALOOP_HANDLE_NONE;

	timed_out = 0;
	stop_cond = cond;
	stop_arg = arg;
	if (cond(arg))
		return 0;
	CU_ASSERT_EQUAL_FATAL(aloop_call_later(loop, WATCHDOG, watchdog, NULL,
	    &h), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_call_later(loop, 0.01, poll_cond, &ph,
	    &ph), 0);
	(void)aloop_run_forever(loop);
	aloop_handle_cancel(loop, h);
	aloop_handle_cancel(loop, ph);
	stop_cond = NULL;
	CU_ASSERT_FALSE(timed_out);
	return timed_out ? -1 : 0;
}

static int
factory(void *arg, void **state)
{
	struct side *s = arg;

	s->factory_calls++;
	if (s->refuse)
		return ALOOP_EINVAL;
	*state = s;
	return 0;
}

static void
p_made(struct aloop_transport *t, void *state)
{
	struct side *s = state;

	s->made++;
	s->t = t;
	s->closing_at_made += aloop_transport_is_closing(t);
	if (s->greeting != NULL)
		CU_ASSERT_EQUAL(aloop_transport_write(t, s->greeting,
		    strlen(s->greeting)), 0);
	if (s->close_in_made)
		aloop_transport_close(t);
	if (s->pause_in_made)
		aloop_transport_pause_reading(t);
	maybe_stop();
}

static void
unstall(void *arg)
{
	struct side *s = arg;

	if (s->t != NULL)
		aloop_transport_resume_reading(s->t);
	maybe_stop();
}

static void
p_data(struct aloop_transport *t, void *state, const void *data, size_t len)
{
	struct side *s = state;

	CU_ASSERT(len > 0);
	CU_ASSERT_EQUAL(s->eofs, 0);
	/* Nothing arrives while paused or closing. */
	CU_ASSERT(aloop_transport_is_reading(t));
	if (s->len + len > s->cap) {
		size_t ncap = (s->len + len) * 2;
		unsigned char *p = realloc(s->buf, ncap);

		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		s->buf = p;
		s->cap = ncap;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	if (s->stall_at > 0 && s->len >= s->stall_at && !s->stalled) {
		/* Stop reading so that the peer's writes back up. */
		s->stalled = 1;
		aloop_transport_pause_reading(t);
		CU_ASSERT_FALSE(aloop_transport_is_reading(t));
		CU_ASSERT_EQUAL(aloop_call_later(loop, 0.2, unstall, s, NULL),
		    0);
	}
	if (s->echo)
		CU_ASSERT_EQUAL(aloop_transport_write(t, data, len), 0);
	maybe_stop();
}

static int
p_eof(struct aloop_transport *t, void *state)
{
	struct side *s = state;

	(void)t;
	s->eofs++;
	maybe_stop();
	return s->eof_keep_open;
}

static void
p_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct side *s = state;

	(void)t;
	s->losts++;
	CU_ASSERT_EQUAL(s->made, 1);
	s->lost_code = err != NULL ? err->code : 0;
	snprintf(s->lost_msg, sizeof(s->lost_msg), "%s",
	    err != NULL ? err->message : "");
	s->t = NULL;
	maybe_stop();
}

static void
p_pause(struct aloop_transport *t, void *state)
{
	struct side *s = state;

	s->pauses++;
	if (s->flow)
		aloop_transport_pause_reading(t);
}

static void
p_resume(struct aloop_transport *t, void *state)
{
	struct side *s = state;

	s->resumes++;
	if (s->flow)
		aloop_transport_resume_reading(t);
	maybe_stop();
}

static const struct aloop_protocol proto = {
	.connection_made = p_made,
	.data_received = p_data,
	.eof_received = p_eof,
	.connection_lost = p_lost,
	.pause_writing = p_pause,
	.resume_writing = p_resume,
};

static void
owner_gone(struct aloop_transport *t, void *owner)
{
	struct side *s = owner;

	(void)t;
	s->gone++;
	maybe_stop();
}

static void
fut_done(struct aloop_future *f, void *arg)
{
	(void)f;
	(void)arg;
	maybe_stop();
}

/* ------------------------------------------------------------ sockets */

static int
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	CU_ASSERT_NOT_EQUAL_FATAL(fl, -1);
	CU_ASSERT_NOT_EQUAL_FATAL(fcntl(fd, F_SETFL, fl | O_NONBLOCK), -1);
	CU_ASSERT_NOT_EQUAL_FATAL(fcntl(fd, F_SETFD, FD_CLOEXEC), -1);
	return fd;
}

static int
listener(void)
{
	struct sockaddr_in sin;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(fd, 8), 0);
	return fd;
}

/* Small kernel buffers, so that a stalled reader backs the writer up. */
static int small_bufs;

/* A connected pair through @lfd: *@c the client's end, *@s the server's. */
static void
connect_pair(int lfd, int *c, int *s)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int sz = 32 * 1024;

	CU_ASSERT_EQUAL_FATAL(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	*c = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(*c >= 0);
	if (small_bufs) {
		CU_ASSERT_EQUAL(setsockopt(*c, SOL_SOCKET, SO_RCVBUF, &sz,
		    sizeof(sz)), 0);
		CU_ASSERT_EQUAL(setsockopt(*c, SOL_SOCKET, SO_SNDBUF, &sz,
		    sizeof(sz)), 0);
	}
	/* Loopback connects complete at once, blocking or not. */
	CU_ASSERT_EQUAL_FATAL(connect(*c, (struct sockaddr *)&sin, len), 0);
	*s = accept(lfd, NULL, NULL);
	CU_ASSERT_FATAL(*s >= 0);
	if (small_bufs) {
		CU_ASSERT_EQUAL(setsockopt(*s, SOL_SOCKET, SO_SNDBUF, &sz,
		    sizeof(sz)), 0);
		CU_ASSERT_EQUAL(setsockopt(*s, SOL_SOCKET, SO_RCVBUF, &sz,
		    sizeof(sz)), 0);
	}
	nonblock(*c);
	nonblock(*s);
}

/* ------------------------------------------------------------ fixture */

struct conn {
	struct side		 cs, ss;	/* client and server protocols */
	struct aloop_future	*waiter;	/* the client's */
	struct aloop_transport	*ct, *st;	/* as handed out */
	int			 rc_client, rc_server;
};

static struct aloop_tls_context *
make_server_ctx(void)
{
	const struct tls_certs *c = tls_certs_get();
	struct aloop_tls_context *ctx;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &ctx), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(ctx,
	    c->server_cert, c->server_key), 0);
	return ctx;
}

static struct aloop_tls_context *
make_client_ctx(void)
{
	const struct tls_certs *c = tls_certs_get();
	struct aloop_tls_context *ctx;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &ctx), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_verify_locations(ctx,
	    c->ca, NULL), 0);
	return ctx;
}

static double sd_timeout = 5.0;

static void
setup(void)
{
	CU_ASSERT_EQUAL_FATAL(aloop_loop_new(&loop), 0);
}

static void
teardown(void)
{
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	loop = NULL;
}

/* Start both ends over a fresh pair from @lfd. */
static void
start(struct conn *k, int lfd, struct aloop_tls_context *sctx,
    struct aloop_tls_context *cctx, const char *host, double hs_timeout)
{
	int c, s;

	connect_pair(lfd, &c, &s);
	CU_ASSERT_EQUAL_FATAL(aloop_future_new(loop, &k->waiter), 0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(k->waiter, fut_done,
	    NULL), 0);
	k->rc_server = aloop__tls_transport_new(loop, s, sctx, 1, NULL,
	    hs_timeout, sd_timeout, &proto, factory, &k->ss, NULL, &k->st);
	CU_ASSERT_EQUAL_FATAL(k->rc_server, 0);
	aloop__transport_set_owner(k->st, owner_gone, &k->ss);
	k->rc_client = aloop__tls_transport_new(loop, c, cctx, 0, host,
	    hs_timeout, sd_timeout, &proto, factory, &k->cs, k->waiter,
	    &k->ct);
	CU_ASSERT_EQUAL_FATAL(k->rc_client, 0);
	aloop__transport_set_owner(k->ct, owner_gone, &k->cs);
}

static void
conn_free(struct conn *k)
{
	if (k->waiter != NULL)
		aloop_future_release(k->waiter);
	free(k->cs.buf);
	free(k->ss.buf);
	memset(k, 0, sizeof(*k));
}

static int
cond_waiter(void *arg)
{
	struct conn *k = arg;

	return aloop_future_done(k->waiter);
}

static int
cond_both_gone(void *arg)
{
	struct conn *k = arg;

	return k->cs.gone && k->ss.gone;
}

static int
cond_waiter_and_server_gone(void *arg)
{
	struct conn *k = arg;

	return aloop_future_done(k->waiter) && k->ss.gone;
}

static size_t want_len;

static int
cond_client_has(void *arg)
{
	struct conn *k = arg;

	return k->cs.len >= want_len || k->cs.losts > 0;
}

/* A handshake that must fail on the client with @code; the server's
 * protocol must never have been created. */
static void
expect_failure(struct aloop_tls_context *sctx, struct aloop_tls_context *cctx,
    const char *host, int code, const char *needle)
{
	const struct aloop_error *err;
	struct conn k;
	int lfd = listener();

	memset(&k, 0, sizeof(k));
	setup();
	start(&k, lfd, sctx, cctx, host, 5.0);
	run_until(cond_waiter_and_server_gone, &k);
	err = aloop_future_error(k.waiter);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_EQUAL(err->code, code);
	if (needle != NULL && strstr(err->message, needle) == NULL) {
		fprintf(stderr, "\nmessage: %s (wanted %s)\n", err->message,
		    needle);
		CU_FAIL("the error message lacks OpenSSL's reason");
	}
	run_until(cond_both_gone, &k);
	CU_ASSERT_EQUAL(k.cs.factory_calls, 0);
	CU_ASSERT_EQUAL(k.ss.factory_calls, 0);
	CU_ASSERT_EQUAL(k.cs.made + k.ss.made, 0);
	CU_ASSERT_EQUAL(k.cs.losts + k.ss.losts, 0);
	conn_free(&k);
	teardown();
	close(lfd);
}

/* --------------------------------------------------------------- tests */

static void
test_echo_and_extra_info(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	const struct sockaddr_in *peer;
	const int *fdp;
	void *res = NULL;
	size_t len;
	X509 *x;
	struct conn k;
	int lfd = listener(), i;

	memset(&k, 0, sizeof(k));
	k.ss.echo = 1;
	setup();
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	/* Both contexts are held by the transports from now on. */
	aloop_tls_context_release(sctx);
	CU_ASSERT_EQUAL(run_until(cond_waiter, &k), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_future_result(k.waiter, &res), 0);
	CU_ASSERT_PTR_EQUAL(res, k.ct);
	CU_ASSERT_EQUAL(k.cs.made, 1);
	CU_ASSERT_PTR_EQUAL(k.cs.t, k.ct);

	/* What a client can ask. */
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_extra_info(k.ct, "sslcontext",
	    NULL), cctx);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(k.ct,
	    "ssl_object", NULL));
	CU_ASSERT_STRING_EQUAL(aloop_transport_get_extra_info(k.ct,
	    "tls_version", NULL), "TLSv1.3");
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_transport_get_extra_info(k.ct,
	    "cipher", NULL), "TLS_"));
	CU_ASSERT_STRING_EQUAL(aloop_transport_get_extra_info(k.ct,
	    "server_hostname", &len), "localhost");
	CU_ASSERT_EQUAL(len, strlen("localhost"));
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(k.ct,
	    "alpn_protocol", NULL));
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(k.ct,
	    "compression", NULL));
	x = (X509 *)aloop_transport_get_extra_info(k.ct, "peercert", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(x);
	CU_ASSERT_EQUAL(X509_check_host(x, "localhost", 0, 0, NULL), 1);
	peer = aloop_transport_get_extra_info(k.ct, "peername", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL(len, sizeof(struct sockaddr_in));
	CU_ASSERT_EQUAL(peer->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(k.ct,
	    "sockname", NULL));
	/*
	 * The server's side: its peer is the client's own address (from
	 * accept), its own address the client's peer (asked when wanted).
	 */
	{
		const struct sockaddr_in *cl, *sp, *sl;
		size_t l1 = 0, l2 = 0;

		cl = aloop_transport_get_extra_info(k.ct, "sockname", NULL);
		sp = aloop_transport_get_extra_info(k.st, "peername", &l1);
		sl = aloop_transport_get_extra_info(k.st, "sockname", &l2);
		CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
		CU_ASSERT_PTR_NOT_NULL_FATAL(sl);
		CU_ASSERT_EQUAL(l1, sizeof(struct sockaddr_in));
		CU_ASSERT_EQUAL(l2, sizeof(struct sockaddr_in));
		CU_ASSERT_EQUAL(sp->sin_port, cl->sin_port);
		CU_ASSERT_EQUAL(sl->sin_port, peer->sin_port);
	}
	fdp = aloop_transport_get_extra_info(k.ct, "socket", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fdp);
	CU_ASSERT(*fdp >= 0);
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(k.ct, "nonsense",
	    NULL));
	/* TLS has no half-close. */
	CU_ASSERT_EQUAL(aloop_transport_can_write_eof(k.ct), 0);
	CU_ASSERT_EQUAL(aloop_transport_write_eof(k.ct), ALOOP_ENOTSUP);

	/* Echo a few writes. */
	for (i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(aloop_transport_write(k.ct, "0123456789", 10), 0);
	want_len = 100;
	CU_ASSERT_EQUAL(run_until(cond_client_has, &k), 0);
	CU_ASSERT_EQUAL(k.cs.len, 100);
	CU_ASSERT_EQUAL(k.ss.len, 100);
	CU_ASSERT_EQUAL(memcmp(k.cs.buf, "0123456789", 10), 0);
	CU_ASSERT_EQUAL(k.ss.made, 1);
	/* The server sees no peer certificate (none asked) but the SNI. */
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(k.st, "peercert",
	    NULL));
	CU_ASSERT_STRING_EQUAL(aloop_transport_get_extra_info(k.st,
	    "server_hostname", NULL), "localhost");

	/* A clean close on both sides: close_notify, EOF, lost(NULL). */
	aloop_transport_close(k.ct);
	aloop_transport_close(k.ct);	/* idempotent */
	CU_ASSERT(aloop_transport_is_closing(k.ct));
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	CU_ASSERT_EQUAL(k.cs.losts, 1);
	CU_ASSERT_EQUAL(k.ss.losts, 1);
	CU_ASSERT_EQUAL(k.cs.lost_code, 0);
	CU_ASSERT_EQUAL(k.ss.lost_code, 0);
	CU_ASSERT_EQUAL(k.ss.eofs, 1);
	conn_free(&k);
	aloop_tls_context_release(cctx);
	teardown();
	close(lfd);
}

static void
test_wrong_hostname(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();

	expect_failure(sctx, cctx, "wrong.example.test", ALOOP_EHOSTNAME,
	    "mismatch");
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static void
test_untrusted_server(void)
{
	const struct tls_certs *c = tls_certs_get();
	struct aloop_tls_context *sctx, *cctx = make_client_ctx();

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &sctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(sctx,
	    c->untrusted_cert, c->untrusted_key), 0);
	expect_failure(sctx, cctx, "localhost", ALOOP_ECERT,
	    "certificate verify failed");
	/* The shared default context does not know our CA either. */
	expect_failure(sctx, ALOOP_TLS_DEFAULT, "localhost", ALOOP_ECERT,
	    "certificate verify failed");
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static void
test_version_mismatch(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();

	CU_ASSERT_EQUAL(aloop_tls_context_set_min_version(sctx, "TLSv1.3"), 0);
	CU_ASSERT_EQUAL(SSL_CTX_set_max_proto_version(
	    aloop_tls_context_get_ssl_ctx(cctx), TLS1_2_VERSION), 1);
	expect_failure(sctx, cctx, "localhost", ALOOP_ETLS, "protocol version");
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static int
cond_client_lost_server_gone(void *arg)
{
	struct conn *k = arg;

	return k->ss.gone && (k->cs.losts > 0 ||
	    (aloop_future_done(k->waiter) &&
	    aloop_future_error(k->waiter) != NULL));
}

static void
test_client_cert_required(void)
{
	const struct tls_certs *c = tls_certs_get();
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	struct conn k;
	int lfd = listener();

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(aloop_tls_context_load_verify_locations(sctx, c->ca,
	    NULL), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_set_verify(sctx,
	    ALOOP_TLS_VERIFY_REQUIRED), 0);

	/* No client certificate: the server's protocol never hears of it.
	 * In TLS 1.3 the client may finish first and learn on its first
	 * read that the server refused it. */
	memset(&k, 0, sizeof(k));
	setup();
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	CU_ASSERT_EQUAL(run_until(cond_client_lost_server_gone, &k), 0);
	CU_ASSERT_EQUAL(k.ss.factory_calls, 0);
	CU_ASSERT_EQUAL(k.ss.made, 0);
	if (k.cs.made)
		CU_ASSERT_NOT_EQUAL(k.cs.lost_code, 0);
	if (k.cs.t != NULL)
		aloop_transport_abort(k.cs.t);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	(void)aloop_future_error(k.waiter);
	conn_free(&k);
	teardown();

	/* Mutual TLS: with a certificate from the CA, it works and the
	 * server sees who the client is. */
	CU_ASSERT_EQUAL(aloop_tls_context_load_cert_chain(cctx, c->client_cert,
	    c->client_key), 0);
	memset(&k, 0, sizeof(k));
	k.cs.greeting = "hi";
	setup();
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	CU_ASSERT_EQUAL(run_until(cond_waiter, &k), 0);
	CU_ASSERT_EQUAL(aloop_future_result(k.waiter, NULL), 0);
	want_len = 2;
	/* The server's data arrives once it is made; wait on that. */
	k.ss.greeting = "ok";
	CU_ASSERT_EQUAL(run_until(cond_client_has, &k), 0);
	CU_ASSERT_EQUAL(k.ss.made, 1);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(k.st,
	    "peercert", NULL));
	aloop_transport_close(k.ct);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	conn_free(&k);
	teardown();
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static int
cond_both_made(void *arg)
{
	struct conn *k = arg;

	return k->cs.made && k->ss.made;
}

static void
test_alpn_and_sni(void)
{
	const struct tls_certs *c = tls_certs_get();
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	const char *sp[] = { "h2", "http/1.1" };
	const char *cp[] = { "http/1.1", "h2" };
	char cn[64] = "";
	struct conn k;
	X509 *x;
	int lfd = listener();

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(sctx, sp, 2), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_set_alpn_protocols(cctx, cp, 2), 0);
	CU_ASSERT_EQUAL(aloop_tls_context_add_sni_cert(sctx, c->sni_cert,
	    c->sni_key), 0);
	memset(&k, 0, sizeof(k));
	setup();
	start(&k, lfd, sctx, cctx, "sni.example.test", 5.0);
	CU_ASSERT_EQUAL(run_until(cond_both_made, &k), 0);
	CU_ASSERT_STRING_EQUAL(aloop_transport_get_extra_info(k.ct,
	    "alpn_protocol", NULL), "h2");
	CU_ASSERT_STRING_EQUAL(aloop_transport_get_extra_info(k.st,
	    "alpn_protocol", NULL), "h2");
	CU_ASSERT_STRING_EQUAL(aloop_transport_get_extra_info(k.st,
	    "server_hostname", NULL), "sni.example.test");
	x = (X509 *)aloop_transport_get_extra_info(k.ct, "peercert", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(x);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    cn, sizeof(cn));
	CU_ASSERT_STRING_EQUAL(cn, "sni.example.test");
	aloop_transport_close(k.st);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	CU_ASSERT_EQUAL(k.cs.eofs, 1);
	conn_free(&k);
	teardown();
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static int
cond_server_gone(void *arg)
{
	struct conn *k = arg;

	return k->ss.gone;
}

static void
test_handshake_timeout(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	const struct aloop_error *err;
	struct conn k;
	char b;
	int lfd = listener(), c, s;

	/* A TCP client that never speaks is dropped by the server. */
	memset(&k, 0, sizeof(k));
	setup();
	connect_pair(lfd, &c, &s);
	CU_ASSERT_EQUAL_FATAL(aloop__tls_transport_new(loop, s, sctx, 1, NULL,
	    0.2, 1.0, &proto, factory, &k.ss, NULL, &k.st), 0);
	aloop__transport_set_owner(k.st, owner_gone, &k.ss);
	CU_ASSERT_EQUAL(run_until(cond_server_gone, &k), 0);
	CU_ASSERT_EQUAL(k.ss.factory_calls + k.ss.made + k.ss.losts, 0);
	/* The silent peer sees its connection reset: a timeout aborts. */
	CU_ASSERT_EQUAL(recv(c, &b, 1, 0), -1);
	CU_ASSERT_EQUAL(errno, ECONNRESET);
	close(c);
	teardown();

	/* A client whose server never answers fails with ETIMEDOUT. */
	setup();
	connect_pair(lfd, &c, &s);
	CU_ASSERT_EQUAL_FATAL(aloop_future_new(loop, &k.waiter), 0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(k.waiter, fut_done,
	    NULL), 0);
	CU_ASSERT_EQUAL_FATAL(aloop__tls_transport_new(loop, c, cctx, 0,
	    "localhost", 0.2, 1.0, &proto, factory, &k.cs, k.waiter, &k.ct),
	    0);
	CU_ASSERT_EQUAL(run_until(cond_waiter, &k), 0);
	err = aloop_future_error(k.waiter);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_EQUAL(err->code, ALOOP_ETIMEDOUT);
	CU_ASSERT_EQUAL(k.cs.factory_calls, 0);
	close(s);
	conn_free(&k);
	teardown();
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static void
test_session_resumption(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	struct conn k;
	int lfd = listener(), round;

	for (round = 0; round < 2; round++) {
		memset(&k, 0, sizeof(k));
		k.ss.echo = 1;
		k.cs.greeting = "ping";
		setup();
		start(&k, lfd, sctx, cctx, "localhost", 5.0);
		want_len = 4;
		/* The echo proves the ticket that followed the handshake
		 * was read too. */
		CU_ASSERT_EQUAL(run_until(cond_client_has, &k), 0);
		CU_ASSERT_EQUAL_FATAL(k.cs.made, 1);
		CU_ASSERT_EQUAL(SSL_session_reused((SSL *)
		    aloop_transport_get_extra_info(k.ct, "ssl_object", NULL)),
		    round);
		aloop_transport_close(k.ct);
		CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
		CU_ASSERT_EQUAL(k.cs.lost_code, 0);
		conn_free(&k);
		teardown();
	}
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

/*
 * Servers that share a context keep their sessions apart by session id
 * context (aloop_server_options.ssl_session_scope): a session resumes
 * with the scope that made it only.  The client offers its newest
 * session each time.
 */
static void
test_session_scope(void)
{
	static const char *const scope[] = { "a", "a", "b", "b", "a" };
	static const int reused[] = { 0, 1, 0, 1, 0 };
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	unsigned char sid[32];
	struct conn k;
	int lfd = listener();

	for (size_t round = 0; round < 5; round++) {
		memset(&k, 0, sizeof(k));
		k.ss.echo = 1;
		k.cs.greeting = "ping";
		setup();
		start(&k, lfd, sctx, cctx, "localhost", 5.0);
		CU_ASSERT_EQUAL_FATAL(aloop_tls_sha256(scope[round], 1, sid), 0);
		CU_ASSERT_EQUAL(aloop__tls_set_session_id_context(k.st, sid,
		    sizeof(sid)), 0);
		want_len = 4;
		CU_ASSERT_EQUAL(run_until(cond_client_has, &k), 0);
		CU_ASSERT_EQUAL_FATAL(k.cs.made, 1);
		CU_ASSERT_EQUAL(SSL_session_reused((SSL *)
		    aloop_transport_get_extra_info(k.ct, "ssl_object", NULL)),
		    reused[round]);
		aloop_transport_close(k.ct);
		CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
		conn_free(&k);
		teardown();
	}
	/* A client has no session id context to set. */
	memset(&k, 0, sizeof(k));
	setup();
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	CU_ASSERT_EQUAL(aloop__tls_set_session_id_context(k.ct, sid,
	    sizeof(sid)), ALOOP_EINVAL);
	aloop_transport_abort(k.ct);
	aloop_transport_abort(k.st);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	CU_ASSERT_EQUAL(run_until(cond_waiter, &k), 0);
	CU_ASSERT_PTR_NOT_NULL(aloop_future_error(k.waiter));
	conn_free(&k);
	teardown();
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

/* ------------------------------------------------------ big transfer */

#define BIG	(4 * 1024 * 1024)

struct big {
	struct conn	 k;
	size_t		 sent;
	unsigned char	*pattern;
};

static void
big_pump(struct big *b)
{
	/* Write until the transport asks us to pause. */
	while (b->sent < BIG && b->k.cs.pauses == b->k.cs.resumes) {
		size_t n = BIG - b->sent > 100000 ? 100000 : BIG - b->sent;

		CU_ASSERT_EQUAL(aloop_transport_write(b->k.ct,
		    b->pattern + b->sent, n), 0);
		b->sent += n;
	}
}

static struct big *the_big;

static int
cond_big(void *arg)
{
	struct big *b = arg;

	if (b->k.ct != NULL && b->k.cs.losts == 0)
		big_pump(b);
	return b->k.cs.len >= BIG || b->k.cs.losts > 0;
}

static void
test_large_transfer_flow_control(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	struct big b;
	size_t i;
	int lfd = listener();

	memset(&b, 0, sizeof(b));
	b.pattern = malloc(BIG);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b.pattern);
	for (i = 0; i < BIG; i++)
		b.pattern[i] = (unsigned char)(i * 7 + i / 4096);
	the_big = &b;
	b.k.ss.echo = 1;
	b.k.ss.flow = 1;
	b.k.cs.stall_at = BIG / 4;
	setup();
	small_bufs = 1;
	start(&b.k, lfd, sctx, cctx, "localhost", 5.0);
	small_bufs = 0;
	CU_ASSERT_EQUAL(run_until(cond_waiter, &b.k), 0);
	CU_ASSERT_EQUAL_FATAL(b.k.cs.made, 1);
	CU_ASSERT_EQUAL(run_until(cond_big, &b), 0);
	CU_ASSERT_EQUAL(b.sent, BIG);
	CU_ASSERT_EQUAL(b.k.cs.len, BIG);
	CU_ASSERT_EQUAL(b.k.ss.len, BIG);
	CU_ASSERT(b.k.cs.len == BIG &&
	    memcmp(b.k.cs.buf, b.pattern, BIG) == 0);
	/* Both sides really went through flow control. */
	CU_ASSERT(b.k.cs.pauses > 0);
	CU_ASSERT_EQUAL(b.k.cs.pauses, b.k.cs.resumes);
	CU_ASSERT(b.k.ss.pauses > 0);
	CU_ASSERT_EQUAL(aloop_transport_get_write_buffer_size(b.k.ct), 0);
	aloop_transport_close(b.k.ct);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &b.k), 0);
	conn_free(&b.k);
	free(b.pattern);
	teardown();
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

/* ------------------------------------------------------ odd paths */

static void
test_factory_refusal_and_close_in_made(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	struct conn k;
	int lfd = listener();

	/* A refusing factory: the server side ends, the client sees the
	 * connection go. */
	memset(&k, 0, sizeof(k));
	k.ss.refuse = 1;
	setup();
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	CU_ASSERT_EQUAL(run_until(cond_client_lost_server_gone, &k), 0);
	CU_ASSERT_EQUAL(k.ss.factory_calls, 1);
	CU_ASSERT_EQUAL(k.ss.made + k.ss.losts, 0);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	(void)aloop_future_error(k.waiter);
	conn_free(&k);
	teardown();

	/* Closing from connection_made still sends the greeting first;
	 * eof_received asking to stay open is overruled. */
	memset(&k, 0, sizeof(k));
	k.ss.greeting = "bye";
	k.ss.close_in_made = 1;
	k.cs.eof_keep_open = 1;
	setup();
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	CU_ASSERT_EQUAL(k.cs.len, 3);
	CU_ASSERT_EQUAL(k.cs.eofs, 1);
	CU_ASSERT_EQUAL(k.cs.losts, 1);
	CU_ASSERT_EQUAL(k.ss.losts, 1);
	conn_free(&k);
	teardown();
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static void
test_close_and_abort_during_handshake(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	const struct aloop_error *err;
	struct conn k;
	int lfd = listener();

	memset(&k, 0, sizeof(k));
	setup();
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	/* Before any byte moved: as a server closing its clients would. */
	aloop_transport_close(k.st);
	aloop_transport_abort(k.ct);
	aloop_transport_abort(k.ct);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	err = aloop_future_error(k.waiter);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_EQUAL(err->code, ALOOP_ECANCELLED);
	CU_ASSERT_EQUAL(k.cs.made + k.ss.made + k.cs.losts + k.ss.losts, 0);
	conn_free(&k);

	/* Closing the loop with a handshake in flight leaks nothing. */
	memset(&k, 0, sizeof(k));
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	teardown();
	err = aloop_future_error(k.waiter);
	CU_ASSERT_PTR_NOT_NULL(err);
	conn_free(&k);
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static int
cond_client_gone(void *arg)
{
	struct conn *k = arg;

	return k->cs.gone;
}

static void
test_shutdown_timeout(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	static unsigned char junk[1024 * 1024];
	struct conn k;
	int lfd = listener();

	/* A server that never reads: the client's close cannot flush, and
	 * the shutdown timeout ends it rather than waiting forever. */
	memset(&k, 0, sizeof(k));
	k.ss.pause_in_made = 1;
	setup();
	small_bufs = 1;
	sd_timeout = 0.3;
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	small_bufs = 0;
	sd_timeout = 5.0;
	CU_ASSERT_EQUAL(run_until(cond_both_made, &k), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(k.ct, junk, sizeof(junk)), 0);
	CU_ASSERT(aloop_transport_get_write_buffer_size(k.ct) > 0);
	aloop_transport_close(k.ct);
	CU_ASSERT_EQUAL(run_until(cond_client_gone, &k), 0);
	CU_ASSERT_EQUAL(k.cs.losts, 1);
	CU_ASSERT_EQUAL(k.ss.losts, 0);
	aloop_transport_abort(k.st);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	CU_ASSERT_EQUAL(k.ss.losts, 1);
	conn_free(&k);
	teardown();
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

static void
pump_server(void *arg)
{
	static unsigned char junk[16384];
	struct conn *k = arg;

	if (k->ss.t == NULL)
		return;
	(void)aloop_transport_write(k->ss.t, junk, sizeof(junk));
	CU_ASSERT_EQUAL(aloop_call_later(loop, 0.005, pump_server, k, NULL),
	    0);
}

static int
cond_server_lost(void *arg)
{
	struct conn *k = arg;

	return k->ss.losts > 0;
}

static void
test_peer_gone_no_sigpipe(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	void (*old)(int);
	struct conn k;
	int lfd = listener();

	/* The library must not rely on its host ignoring SIGPIPE. */
	old = signal(SIGPIPE, SIG_DFL);
	memset(&k, 0, sizeof(k));
	/* Not reading, the server learns of the peer's end by writing. */
	k.ss.pause_in_made = 1;
	setup();
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	CU_ASSERT_EQUAL(run_until(cond_both_made, &k), 0);
	aloop_transport_abort(k.ct);
	pump_server(&k);
	CU_ASSERT_EQUAL(run_until(cond_server_lost, &k), 0);
	/* A reset peer is an ordinary end: the error, no crash. */
	CU_ASSERT(k.ss.lost_code == -EPIPE || k.ss.lost_code == -ECONNRESET);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	conn_free(&k);

	/* The sure way to EPIPE: a socket whose writing side is shut. */
	memset(&k, 0, sizeof(k));
	k.ss.pause_in_made = 1;
	start(&k, lfd, sctx, cctx, "localhost", 5.0);
	CU_ASSERT_EQUAL(run_until(cond_both_made, &k), 0);
	CU_ASSERT_EQUAL(shutdown(*(const int *)aloop_transport_get_extra_info(
	    k.st, "socket", NULL), SHUT_WR), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(k.st, "x", 1), 0);
	CU_ASSERT_EQUAL(run_until(cond_server_lost, &k), 0);
	CU_ASSERT_EQUAL(k.ss.lost_code, -EPIPE);
	/* The client may have seen the EOF and gone already. */
	if (k.cs.t != NULL)
		aloop_transport_abort(k.cs.t);
	CU_ASSERT_EQUAL(run_until(cond_both_gone, &k), 0);
	signal(SIGPIPE, old);
	conn_free(&k);
	teardown();
	close(lfd);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
}

/* ------------------------------------------- through the public API */

struct api {
	struct side		 cs, ss;
	struct aloop_server	*srv;
	struct aloop_future	*fut;
};

static int
cond_fut(void *arg)
{
	struct api *a = arg;

	return aloop_future_done(a->fut);
}

/* The loop stops for a future only if someone listens to it. */
static void
watch_fut(struct aloop_future *f)
{
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(f, fut_done, NULL), 0);
}

static int
cond_api_echo(void *arg)
{
	struct api *a = arg;

	return a->cs.len >= 5 || a->cs.losts > 0;
}

static int
cond_api_lost(void *arg)
{
	struct api *a = arg;

	return a->cs.losts > 0 && a->ss.losts > 0;
}

static int
cond_api_no_conns(void *arg)
{
	struct api *a = arg;

	return aloop_future_done(a->fut) &&
	    aloop_server_connection_count(a->srv) == 0;
}

static void
test_create_server_and_connection(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	struct aloop_tls_context *cctx = make_client_ctx();
	struct aloop_server_options so;
	struct aloop_connection_options co;
	const struct aloop_error *err;
	struct aloop_transport *t = NULL;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	const int *fds;
	char port[16];
	size_t n;
	struct api a;

	memset(&a, 0, sizeof(a));
	a.ss.echo = 1;
	setup();
	aloop_server_options_init(&so);
	so.ssl = sctx;
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &proto, factory, &a.ss,
	    "127.0.0.1", "0", &so, &a.fut), 0);
	watch_fut(a.fut);
	/* The server keeps its own reference. */
	aloop_tls_context_release(sctx);
	CU_ASSERT_EQUAL(run_until(cond_fut, &a), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_future_result(a.fut, (void **)&a.srv), 0);
	aloop_future_release(a.fut);
	fds = aloop_server_sockets(a.srv, &n);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL_FATAL(getsockname(fds[0], (struct sockaddr *)&sin,
	    &len), 0);
	snprintf(port, sizeof(port), "%u", ntohs(sin.sin_port));

	/* server_hostname defaults to the host. */
	aloop_connection_options_init(&co);
	co.ssl = cctx;
	co.family = AF_INET;
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &proto, factory,
	    &a.cs, "localhost", port, &co, &a.fut), 0);
	watch_fut(a.fut);
	CU_ASSERT_EQUAL(run_until(cond_fut, &a), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_future_result(a.fut, (void **)&t), 0);
	aloop_future_release(a.fut);
	CU_ASSERT_PTR_EQUAL(t, a.cs.t);
	CU_ASSERT_STRING_EQUAL(aloop_transport_get_extra_info(t,
	    "server_hostname", NULL), "localhost");
	CU_ASSERT_EQUAL(aloop_transport_write(t, "hello", 5), 0);
	CU_ASSERT_EQUAL(run_until(cond_api_echo, &a), 0);
	CU_ASSERT_EQUAL(a.cs.len, 5);
	CU_ASSERT_EQUAL(aloop_server_connection_count(a.srv), 1);
	aloop_transport_close(t);
	CU_ASSERT_EQUAL(run_until(cond_api_lost, &a), 0);

	/* A name the certificate does not carry fails the future. */
	co.server_hostname = "wrong.example.test";
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &proto, factory,
	    &a.cs, "127.0.0.1", port, &co, &a.fut), 0);
	watch_fut(a.fut);
	CU_ASSERT_EQUAL(run_until(cond_api_no_conns, &a), 0);
	err = aloop_future_error(a.fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_EQUAL(err->code, ALOOP_EHOSTNAME);
	aloop_future_release(a.fut);
	/* The server's protocol saw only the first connection. */
	CU_ASSERT_EQUAL(a.ss.factory_calls, 1);
	CU_ASSERT_EQUAL(a.cs.factory_calls, 1);

	aloop_server_close(a.srv);
	aloop_server_release(a.srv);
	free(a.cs.buf);
	free(a.ss.buf);
	teardown();
	aloop_tls_context_release(cctx);
}

static void
test_bad_arguments(void)
{
	struct aloop_tls_context *cctx = make_client_ctx();
	struct aloop_transport *t = (void *)1;
	int sv[2];

	setup();
	/* A client context on the server side is refused; the descriptor
	 * is closed on every path. */
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CU_ASSERT_EQUAL(aloop__tls_transport_new(loop, sv[0], cctx, 1, NULL,
	    1.0, 1.0, &proto, factory, NULL, NULL, &t), ALOOP_EINVAL);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_EQUAL(fcntl(sv[0], F_GETFD), -1);
	CU_ASSERT_EQUAL(aloop__tls_transport_new(loop, sv[1],
	    ALOOP_TLS_DEFAULT, 1, NULL, 1.0, 1.0, &proto, factory, NULL, NULL,
	    NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(fcntl(sv[1], F_GETFD), -1);
	teardown();
	aloop_tls_context_release(cctx);
}

/* ------------------------------------------------ tickets and departures */

static int
cond_server_made(void *arg)
{
	struct conn *k = arg;

	return k->ss.made > 0;
}

static double until;

static int
cond_until(void *arg)
{
	(void)arg;
	return aloop_time(loop) >= until;
}

static void
run_for_a_while(double secs)
{
	until = aloop_time(loop) + secs;
	CU_ASSERT_EQUAL(run_until(cond_until, NULL), 0);
}

struct raw_client {
	SSL	*ssl;
	int	 fd;
	int	 done;		/* the handshake finished */
	int	 leave;		/* then 1: SHUT_WR at once, 2: close_notify */
};

/* Drive a plain OpenSSL client's handshake from the loop's poll. */
static int
cond_raw_handshake(void *arg)
{
	struct raw_client *rc = arg;
	int n;

	if (!rc->done) {
		n = SSL_connect(rc->ssl);
		if (n != 1) {
			n = SSL_get_error(rc->ssl, n);
			CU_ASSERT(n == SSL_ERROR_WANT_READ ||
			    n == SSL_ERROR_WANT_WRITE);
			return n != SSL_ERROR_WANT_READ &&
			    n != SSL_ERROR_WANT_WRITE;
		}
		rc->done = 1;
		/* Right behind our Finished, without a close_notify. */
		if (rc->leave == 1)
			CU_ASSERT_EQUAL(shutdown(rc->fd, SHUT_WR), 0);
		/* Or a close_notify, the socket left open for the answer. */
		if (rc->leave == 2)
			CU_ASSERT_EQUAL(SSL_shutdown(rc->ssl), 0);
	}
	return 1;
}

/*
 * A TLS 1.3 server holds its session ticket back until the peer shows it
 * is still there: a client that leaves right after its Finished is sent
 * neither the ticket nor a close_notify (which would only bring back a
 * reset), and its protocol sees connection_made with the transport
 * closing already, then connection_lost.  A client that stays gets the
 * ticket at once, before it says anything, and one that sends its
 * close_notify at once is answered with ours.
 */
static void
test_tickets_not_sent_to_a_departed_peer(void)
{
	struct aloop_tls_context *sctx = make_server_ctx();
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct raw_client rc;
	unsigned char buf[4096];
	struct conn k;
	int lfd = listener(), c, s, round;
	ssize_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(cctx);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	CU_ASSERT_EQUAL(SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION),
	    1);
	for (round = 0; round < 3; round++) {
		memset(&k, 0, sizeof(k));
		memset(&rc, 0, sizeof(rc));
		setup();
		connect_pair(lfd, &c, &s);
		CU_ASSERT_EQUAL_FATAL(aloop__tls_transport_new(loop, s, sctx,
		    1, NULL, 5.0, sd_timeout, &proto, factory, &k.ss, NULL,
		    &k.st), 0);
		aloop__transport_set_owner(k.st, owner_gone, &k.ss);
		rc.fd = c;
		rc.leave = round == 0 ? 1 : round == 2 ? 2 : 0;
		rc.ssl = SSL_new(cctx);
		CU_ASSERT_PTR_NOT_NULL_FATAL(rc.ssl);
		CU_ASSERT_EQUAL(SSL_set_fd(rc.ssl, c), 1);
		CU_ASSERT_EQUAL(run_until(cond_raw_handshake, &rc), 0);
		CU_ASSERT_FATAL(rc.done);
		if (rc.leave == 2) {
			/*
			 * The look after the handshake took the close_notify:
			 * it is answered all the same, not left waiting.
			 */
			CU_ASSERT_EQUAL(run_until(cond_server_lost, &k), 0);
			CU_ASSERT_EQUAL(k.ss.made, 1);
			CU_ASSERT_EQUAL(k.ss.lost_code, 0);
			CU_ASSERT_EQUAL(SSL_shutdown(rc.ssl), 1);
		} else if (rc.leave) {
			CU_ASSERT_EQUAL(run_until(cond_server_lost, &k), 0);
			CU_ASSERT_EQUAL(k.ss.made, 1);
			CU_ASSERT_EQUAL(k.ss.closing_at_made, 1);
			CU_ASSERT_EQUAL(k.ss.losts, 1);
			CU_ASSERT_EQUAL(k.ss.lost_code, 0);
			/* Nothing came after the handshake: only the EOF. */
			n = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
			CU_ASSERT_EQUAL(n, 0);
		} else {
			CU_ASSERT_EQUAL(run_until(cond_server_made, &k), 0);
			CU_ASSERT_EQUAL(k.ss.closing_at_made, 0);
			/* The ticket: one TLS 1.3 application data record. */
			run_for_a_while(0.05);
			n = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
			CU_ASSERT(n > 5);
			CU_ASSERT_EQUAL(buf[0], 23);
			CU_ASSERT_EQUAL(k.ss.losts, 0);
			aloop_transport_abort(k.st);
			CU_ASSERT_EQUAL(run_until(cond_server_lost, &k), 0);
		}
		SSL_free(rc.ssl);
		(void)close(c);
		conn_free(&k);
		teardown();
	}
	SSL_CTX_free(cctx);
	close(lfd);
	aloop_tls_context_release(sctx);
}

static const struct test_case cases[] = {
	TEST(test_echo_and_extra_info),
	TEST(test_wrong_hostname),
	TEST(test_untrusted_server),
	TEST(test_version_mismatch),
	TEST(test_client_cert_required),
	TEST(test_alpn_and_sni),
	TEST(test_handshake_timeout),
	TEST(test_session_resumption),
	TEST(test_session_scope),
	TEST(test_large_transfer_flow_control),
	TEST(test_factory_refusal_and_close_in_made),
	TEST(test_close_and_abort_during_handshake),
	TEST(test_shutdown_timeout),
	TEST(test_peer_gone_no_sigpipe),
	TEST(test_tickets_not_sent_to_a_departed_peer),
	TEST(test_create_server_and_connection),
	TEST(test_bad_arguments),
};

TEST_MAIN("tls", cases)
