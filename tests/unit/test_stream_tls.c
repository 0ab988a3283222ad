/*
 * create_server and create_connection with TLS: the sockets they make are
 * handed to the TLS transport, the server counts TLS connections like any
 * other, and a failed handshake fails the client's future while the
 * server's protocol never hears of the connection.  (The TLS transport's
 * own behaviour is tested in test_tls.c.)
 */
#include "config.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "stream_util.h"
#include "tls_certs.h"

static const struct tls_certs *certs;

static void
make_certs(void)
{
	NEED_CERTS(certs);
}

static struct aloop_server *
tls_server(struct aloop_loop *loop, struct rec_pool *sp, int *port)
{
	struct aloop_tls_context *ctx = NULL;
	struct aloop_server_options o;
	struct aloop_server *srv = NULL;
	struct aloop_future *fut;
	const int *fds;
	size_t n;

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &ctx), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(ctx,
	    certs->server_cert, certs->server_key), 0);
	aloop_server_options_init(&o);
	o.ssl = ctx;
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, sp, "127.0.0.1", "0", &o, &fut), 0);
	/* The server holds its own reference. */
	aloop_tls_context_release(ctx);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	fds = aloop_server_sockets(srv, &n);
	*port = sock_port(fds[0]);
	return srv;
}

static int
tls_connect(struct aloop_loop *loop, struct rec_pool *cp, int port,
    const char *ca, struct aloop_transport **t)
{
	struct aloop_tls_context *ctx = NULL;
	struct aloop_connection_options o;
	struct aloop_future *fut;
	char ps[16];
	int rc;

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &ctx), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_verify_locations(ctx, ca,
	    NULL), 0);
	aloop_connection_options_init(&o);
	o.ssl = ctx;
	snprintf(ps, sizeof(ps), "%d", port);
	/* server_hostname defaults to the host: the certificate's IP. */
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, cp, "127.0.0.1", ps, &o, &fut), 0);
	aloop_tls_context_release(ctx);
	rc = wait_future(loop, fut, (void **)t);
	aloop_future_release(fut);
	return rc;
}

static void
test_tls_echo_through_server(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_transport *t = NULL;
	struct aloop_server *srv;
	int port;

	make_certs();
	sp.tmpl.echo = 1;
	srv = tls_server(loop, &sp, &port);
	CU_ASSERT_EQUAL_FATAL(tls_connect(loop, &cp, port, certs->ca, &t), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(cp.r[0].made, 1);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(t, "cipher",
	    NULL));
	CU_ASSERT_EQUAL(aloop_transport_write(t, "secret", 6), 0);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].nrecv == 6, 5.0));
	CU_ASSERT_EQUAL(memcmp(cp.r[0].data, "secret", 6), 0);
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 1);
	/* close_clients reaches TLS connections too. */
	aloop_server_close_clients(srv);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1 && cp.r[0].lost == 1,
	    10.0));
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 0);
	CU_ASSERT_EQUAL(sp.r[0].bad + cp.r[0].bad, 0);
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * abort_clients on TLS connections resets them too: the client sees
 * ECONNRESET, not a close without close_notify.
 */
static void
test_tls_abort_clients_resets(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_transport *t = NULL;
	struct aloop_server *srv;
	int port;

	make_certs();
	sp.tmpl.echo = 1;
	srv = tls_server(loop, &sp, &port);
	CU_ASSERT_EQUAL_FATAL(tls_connect(loop, &cp, port, certs->ca, &t), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(t, "hi", 2), 0);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].nrecv == 2, 5.0));
	aloop_server_abort_clients(srv);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1 && cp.r[0].lost == 1,
	    10.0));
	CU_ASSERT_EQUAL(sp.r[0].lost_code, 0);
	CU_ASSERT_EQUAL(cp.r[0].lost_code, -ECONNRESET);
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_tls_handshake_failure(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_transport *t = NULL;
	struct aloop_server *srv;
	int port;

	make_certs();
	srv = tls_server(loop, &sp, &port);
	/* A client that trusts another CA refuses the server. */
	CU_ASSERT_EQUAL(tls_connect(loop, &cp, port, certs->other_ca, &t),
	    ALOOP_ECERT);
	CU_ASSERT_EQUAL(cp.n, 0);
	CU_ASSERT(WAIT_UNTIL(loop, aloop_server_connection_count(srv) == 0,
	    10.0));
	/* The server's protocol never heard of it. */
	CU_ASSERT_EQUAL(sp.n, 0);
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_tls_argument_rules(void)
{
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct aloop_connection_options co;
	struct rec_pool sp = { 0 };
	struct aloop_future *fut;

	/* The default context is a client's: no server may use it. */
	aloop_server_options_init(&o);
	o.ssl = ALOOP_TLS_DEFAULT;
	CU_ASSERT_EQUAL(aloop_create_server(loop, &rec_proto, rec_factory, &sp,
	    "127.0.0.1", "0", &o, &fut), ALOOP_EINVAL);
	/* A UNIX connection has no host to check: server_hostname needed. */
	aloop_connection_options_init(&co);
	co.ssl = ALOOP_TLS_DEFAULT;
	CU_ASSERT_EQUAL(aloop_create_unix_connection(loop, &rec_proto,
	    rec_factory, &sp, "/tmp/nothing.sock", &co, &fut), ALOOP_EINVAL);
	test_loop_done(loop);
}

/*
 * sendfile over TLS: no zero-copy there, so the file is read and written
 * in pieces under flow control; all of it arrives, decrypted, in order.
 */
static void
test_tls_sendfile(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_transport *t = NULL;
	struct aloop_server *srv;
	struct aloop_future *f;
	struct aloop_nbytes *r = NULL;
	const size_t n = 700 * 1024 + 3;
	unsigned char buf[4096];
	char path[] = "/tmp/aloop-tls-sf-XXXXXX";
	size_t i, k;
	int port, file;

	make_certs();
	file = mkstemp(path);
	CU_ASSERT_FATAL(file >= 0);
	(void)unlink(path);
	for (i = 0; i < n; i += k) {
		k = n - i < sizeof(buf) ? n - i : sizeof(buf);
		memset(buf, 'a' + (int)((i / sizeof(buf)) % 26), k);
		CU_ASSERT_FATAL(write(file, buf, k) == (ssize_t)k);
	}
	srv = tls_server(loop, &sp, &port);
	CU_ASSERT_EQUAL_FATAL(tls_connect(loop, &cp, port, certs->ca, &t), 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made == 1, 5.0));
	CU_ASSERT_EQUAL_FATAL(aloop_transport_sendfile(sp.r[0].t, file, 10,
	    0, &f), 0);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&r), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->nbytes, n - 10);
	CU_ASSERT_EQUAL(lseek(file, 0, SEEK_CUR), (off_t)n);
	aloop_future_release(f);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].nrecv == n - 10, 10.0));
	CU_ASSERT_EQUAL(cp.r[0].data[0], 'a');
	CU_ASSERT_EQUAL(cp.r[0].data[sizeof(buf) - 10], 'b');
	aloop_server_close_clients(srv);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1 && cp.r[0].lost == 1,
	    10.0));
	aloop_server_close(srv);
	aloop_server_release(srv);
	(void)close(file);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * connect_accepted_socket with TLS: the server side of a handshake on a
 * socket accepted elsewhere, here one end of a socketpair whose other
 * end is a TLS client made by create_connection(sock=).
 */
static void
test_tls_connect_accepted_socket(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_tls_context *sctx = NULL, *cctx = NULL;
	struct aloop_connection_options so, co;
	struct aloop_transport *st = NULL, *ct = NULL;
	struct aloop_future *sf, *cf;
	int sv[2];

	make_certs();
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
	    0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &sctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(sctx,
	    certs->server_cert, certs->server_key), 0);
	aloop_connection_options_init(&so);
	so.ssl = ALOOP_TLS_DEFAULT;
	CU_ASSERT_EQUAL(aloop_connect_accepted_socket(loop, &rec_proto,
	    rec_factory, &sp, sv[0], &so, &sf), ALOOP_EINVAL);
	so.ssl = sctx;
	CU_ASSERT_EQUAL_FATAL(aloop_connect_accepted_socket(loop, &rec_proto,
	    rec_factory, &sp, sv[0], &so, &sf), 0);
	aloop_tls_context_release(sctx);

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &cctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_verify_locations(cctx,
	    certs->ca, NULL), 0);
	aloop_connection_options_init(&co);
	co.ssl = cctx;
	co.sock = sv[1];
	co.server_hostname = "localhost";
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, NULL, NULL, &co, &cf), 0);
	aloop_tls_context_release(cctx);
	CU_ASSERT_EQUAL(wait_future(loop, sf, (void **)&st), 0);
	CU_ASSERT_EQUAL(wait_future(loop, cf, (void **)&ct), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ct);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(st, "cipher",
	    NULL));
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "hello", 5), 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].nrecv == 5, 5.0));
	CU_ASSERT_EQUAL(memcmp(sp.r[0].data, "hello", 5), 0);
	aloop_transport_close(ct);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1 && cp.r[0].lost == 1,
	    10.0));
	aloop_future_release(sf);
	aloop_future_release(cf);
	CU_ASSERT_EQUAL(sp.r[0].bad + cp.r[0].bad, 0);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * start_tls on both ends of a plain connection (CPython's
 * test_start_tls_client_reg_proto / server): plain bytes first, then the
 * upgrade, then the same protocols carry on over TLS without a second
 * connection_made; the server still counts the connection.
 */
static void
test_start_tls(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_tls_context *sctx = NULL, *cctx = NULL;
	struct aloop_connection_options so, co;
	struct aloop_transport *ct, *st, *nst = NULL, *nct = NULL;
	struct aloop_server *srv;
	struct aloop_future *sf, *cf, *xf;
	int port;

	make_certs();
	srv = start_server(loop, &sp, "127.0.0.1", &port);
	ct = connect_to(loop, &cp, "127.0.0.1", port);
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made == 1,
	    5.0));
	st = sp.r[0].t;
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "STARTTLS", 8), 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].nrecv == 8, 5.0));

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &sctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(sctx,
	    certs->server_cert, certs->server_key), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &cctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_verify_locations(cctx,
	    certs->ca, NULL), 0);
	aloop_connection_options_init(&so);
	so.ssl = sctx;
	aloop_connection_options_init(&co);
	co.ssl = cctx;
	co.server_hostname = "localhost";
	CU_ASSERT_EQUAL(aloop_start_tls(ct, 0, NULL, &xf), ALOOP_EINVAL);
	CU_ASSERT_EQUAL_FATAL(aloop_start_tls(st, 1, &so, &sf), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_start_tls(ct, 0, &co, &cf), 0);
	aloop_tls_context_release(sctx);
	aloop_tls_context_release(cctx);
	/* The plain transports are finished at once. */
	CU_ASSERT(aloop_transport_is_closing(ct));
	CU_ASSERT_EQUAL(aloop_start_tls(ct, 0, &co, &xf), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(wait_future(loop, sf, (void **)&nst), 0);
	CU_ASSERT_EQUAL(wait_future(loop, cf, (void **)&nct), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(nst);
	CU_ASSERT_PTR_NOT_NULL_FATAL(nct);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(nct, "cipher",
	    NULL));
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol_state(nst),
	    &sp.r[0]);
	CU_ASSERT_EQUAL(sp.r[0].made, 1);
	CU_ASSERT_EQUAL(cp.r[0].made, 1);
	CU_ASSERT_EQUAL(sp.r[0].lost + cp.r[0].lost, 0);
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 1);
	/* The recording protocol checks which transport calls it. */
	sp.r[0].t = nst;
	cp.r[0].t = nct;
	CU_ASSERT_EQUAL(aloop_transport_write(nct, "secret", 6), 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].nrecv == 14, 5.0));
	CU_ASSERT_EQUAL(memcmp(sp.r[0].data, "STARTTLSsecret", 14), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(nst, "ok", 2), 0);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].nrecv == 2, 5.0));
	aloop_server_close_clients(srv);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1 && cp.r[0].lost == 1,
	    10.0));
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 0);
	CU_ASSERT_EQUAL(sp.r[0].bad + cp.r[0].bad, 0);
	aloop_future_release(sf);
	aloop_future_release(cf);
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* ------------------------------------- start_tls with bytes buffered */

/* A connected TCP pair on loopback: *@a (non-blocking) and *@b. */
static void
tcp_pair(int *a, int *b)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int l;

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(l >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(bind(l, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	CU_ASSERT_EQUAL_FATAL(listen(l, 1), 0);
	CU_ASSERT_EQUAL_FATAL(getsockname(l, (struct sockaddr *)&sin, &len),
	    0);
	*b = raw_connect(AF_INET, "127.0.0.1", ntohs(sin.sin_port));
	CU_ASSERT_FATAL(*b >= 0);
	*a = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	CU_ASSERT_FATAL(*a >= 0);
	(void)close(l);
}

/* Read what @fd has, up to @want bytes in all; whether all arrived. */
static int
read_upto(int fd, unsigned char *buf, size_t want, size_t *got)
{
	ssize_t n;

	while (*got < want) {
		n = recv(fd, buf + *got, want - *got, MSG_DONTWAIT);
		if (n <= 0)
			break;
		*got += (size_t)n;
	}
	return *got == want;
}

/* Read what @fd has into @buf; whether the peer closed or reset it. */
static int
read_to_end(int fd, unsigned char *buf, size_t cap, size_t *got)
{
	ssize_t n;

	for (;;) {
		n = recv(fd, buf + *got, cap - *got, MSG_DONTWAIT);
		if (n > 0 && (*got += (size_t)n) < cap)
			continue;
		return n == 0 || (n < 0 && errno != EAGAIN) || *got == cap;
	}
}

/* Far more than loopback's socket buffers take without a reader. */
#define UPGRADE_CLEAR	(8u * 1024 * 1024)

static unsigned char *
clear_bytes(void)
{
	unsigned char *p = malloc(UPGRADE_CLEAR);
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (i = 0; i < UPGRADE_CLEAR; i++)
		p[i] = (unsigned char)(i * 7 + i / 4093);
	return p;
}

/* A plain transport over @fd driven by the recording protocol. */
static struct aloop_transport *
plain_over(struct aloop_loop *loop, struct rec_pool *pool, int fd)
{
	struct aloop_transport *t = NULL;
	struct aloop_future *f;

	CU_ASSERT_EQUAL_FATAL(aloop_connect_accepted_socket(loop, &rec_proto,
	    rec_factory, pool, fd, NULL, &f), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, f, (void **)&t), 0);
	aloop_future_release(f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	return t;
}

static void
upgrade_options(int server_side, struct aloop_connection_options *o)
{
	struct aloop_tls_context *ctx = NULL;

	aloop_connection_options_init(o);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(server_side ?
	    ALOOP_TLS_SERVER : ALOOP_TLS_CLIENT, &ctx), 0);
	if (server_side) {
		CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(ctx,
		    certs->server_cert, certs->server_key), 0);
	} else {
		CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_verify_locations(
		    ctx, certs->ca, NULL), 0);
		o->server_hostname = "localhost";
	}
	o->ssl = ctx;
}

/*
 * start_tls while megabytes written before it still wait in the buffer
 * (asyncio accepts it): the peer reads every clear byte first, in order,
 * and then the handshake; the same protocol goes on over TLS.  The peer
 * is a bare socket that reads exactly the clear bytes and then becomes a
 * TLS endpoint of the other side.
 */
static void
start_tls_buffered(int server_side)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool lp = { 0 }, pp = { 0 };
	struct aloop_connection_options lo, po;
	struct aloop_transport *t, *nt = NULL, *pt = NULL;
	struct aloop_future *lf, *pf;
	unsigned char *clear = clear_bytes(), *got = malloc(UPGRADE_CLEAR);
	size_t ngot = 0;
	int a, b;

	make_certs();
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	tcp_pair(&a, &b);
	t = plain_over(loop, &lp, a);
	CU_ASSERT_EQUAL(aloop_transport_write(t, clear, UPGRADE_CLEAR), 0);
	CU_ASSERT_FATAL(aloop_transport_get_write_buffer_size(t) > 0);
	upgrade_options(server_side, &lo);
	CU_ASSERT_EQUAL_FATAL(aloop_start_tls(t, server_side, &lo, &lf), 0);
	aloop_tls_context_release(lo.ssl);
	/* Finished for its user at once; reading stops for the handshake. */
	CU_ASSERT(aloop_transport_is_closing(t));
	CU_ASSERT(!aloop_transport_is_reading(t));
	CU_ASSERT_EQUAL(aloop_transport_write(t, "late", 4), 0);
	CU_ASSERT_EQUAL(aloop_start_tls(t, server_side, &lo, &pf),
	    ALOOP_ESTATE);
	CU_ASSERT(!aloop_future_done(lf));

	/* Every clear byte, in order, and nothing of the handshake yet. */
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, read_upto(b, got, UPGRADE_CLEAR,
	    &ngot), 20.0));
	CU_ASSERT_EQUAL(memcmp(got, clear, UPGRADE_CLEAR), 0);

	/* The peer takes the other side of the handshake on its socket. */
	upgrade_options(!server_side, &po);
	if (server_side) {
		po.sock = b;
		CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop,
		    &rec_proto, rec_factory, &pp, NULL, NULL, &po, &pf), 0);
	} else {
		CU_ASSERT_EQUAL_FATAL(aloop_connect_accepted_socket(loop,
		    &rec_proto, rec_factory, &pp, b, &po, &pf), 0);
	}
	aloop_tls_context_release(po.ssl);
	CU_ASSERT_EQUAL(wait_future(loop, lf, (void **)&nt), 0);
	CU_ASSERT_EQUAL(wait_future(loop, pf, (void **)&pt), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(nt);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pt);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(nt, "cipher",
	    NULL));
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol_state(nt),
	    &lp.r[0]);
	lp.r[0].t = nt;
	CU_ASSERT_EQUAL(aloop_transport_write(nt, "secret", 6), 0);
	CU_ASSERT(WAIT_UNTIL(loop, pp.r[0].nrecv == 6, 5.0));
	CU_ASSERT_EQUAL(memcmp(pp.r[0].data, "secret", 6), 0);
	CU_ASSERT_EQUAL(aloop_transport_write(pt, "ok", 2), 0);
	CU_ASSERT(WAIT_UNTIL(loop, lp.r[0].nrecv == 2, 5.0));
	CU_ASSERT_EQUAL(memcmp(lp.r[0].data, "ok", 2), 0);
	CU_ASSERT_EQUAL(lp.r[0].made, 1);
	CU_ASSERT_EQUAL(lp.r[0].lost, 0);
	aloop_transport_close(nt);
	CU_ASSERT(WAIT_UNTIL(loop, lp.r[0].lost == 1 && pp.r[0].lost == 1,
	    10.0));
	CU_ASSERT_EQUAL(lp.r[0].bad + pp.r[0].bad, 0);
	aloop_future_release(lf);
	aloop_future_release(pf);
	free(clear);
	free(got);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_start_tls_buffered_client(void)
{
	start_tls_buffered(0);
}

static void
test_start_tls_buffered_server(void)
{
	start_tls_buffered(1);
}

/* How an upgrade waiting for its clear bytes is ended. */
enum upgrade_end { PEER_RESETS, ABORTED, TIMES_OUT, LOOP_CLOSES, CANCELLED };

/*
 * The upgrade fails, and the protocol hears nothing more (its state is
 * the caller's, as after a failed handshake), when the connection ends
 * before the clear bytes are out: the peer resets, the transport is
 * aborted, the handshake timeout passes, or the loop closes; and when
 * the future is cancelled, once the clear bytes are out.  close is a
 * no-op meanwhile: the transport reports closing already.
 */
static void
start_tls_cut_short(enum upgrade_end how)
{
	static const int want[] = {
		[ABORTED] = ALOOP_ECANCELLED,
		[TIMES_OUT] = ALOOP_ETIMEDOUT,
		[LOOP_CLOSES] = ALOOP_ESTATE,
		[CANCELLED] = ALOOP_ECANCELLED,
	};
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool lp = { 0 };
	struct aloop_connection_options lo;
	struct aloop_transport *t;
	struct aloop_future *lf;
	unsigned char *clear = clear_bytes(), *got = NULL;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	size_t ngot = 0;
	int a, b, rc;

	make_certs();
	tcp_pair(&a, &b);
	t = plain_over(loop, &lp, a);
	CU_ASSERT_EQUAL(aloop_transport_write(t, clear, UPGRADE_CLEAR), 0);
	upgrade_options(0, &lo);
	lo.ssl_handshake_timeout = how == TIMES_OUT ? 0.3 : 30.0;
	CU_ASSERT_EQUAL_FATAL(aloop_start_tls(t, 0, &lo, &lf), 0);
	aloop_tls_context_release(lo.ssl);
	/* Held: the future's caller may look at it after the end. */
	aloop_transport_ref(t);
	aloop_transport_close(t);
	run_for(loop, 0.05);
	CU_ASSERT(!aloop_future_done(lf));
	switch (how) {
	case PEER_RESETS:
		CU_ASSERT_EQUAL(setsockopt(b, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg)), 0);
		(void)close(b);
		b = -1;
		break;
	case ABORTED:
		aloop_transport_abort(t);
		break;
	case TIMES_OUT:
		break;
	case LOOP_CLOSES:
		CU_ASSERT_EQUAL(aloop_close(loop), 0);
		break;
	case CANCELLED:
		CU_ASSERT(aloop_future_cancel(lf));
		/*
		 * The clear bytes still leave the buffer; then the socket
		 * is reset, as a cancelled handshake's is.
		 */
		got = malloc(UPGRADE_CLEAR + 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(got);
		CU_ASSERT(WAIT_UNTIL(loop, read_to_end(b, got,
		    UPGRADE_CLEAR + 1, &ngot), 20.0));
		CU_ASSERT(ngot <= UPGRADE_CLEAR);
		CU_ASSERT_EQUAL(memcmp(got, clear, ngot), 0);
		free(got);
		break;
	}
	if (how != LOOP_CLOSES)
		CU_ASSERT(WAIT_UNTIL(loop, aloop_future_done(lf), 10.0));
	CU_ASSERT_FATAL(aloop_future_done(lf));
	rc = aloop_future_result(lf, NULL);
	if (how == PEER_RESETS) {
		CU_ASSERT(rc == -ECONNRESET || rc == -EPIPE);
	} else {
		CU_ASSERT_EQUAL(rc, want[how]);
	}
	if (how != LOOP_CLOSES)
		run_for(loop, 0.05);
	/* No connection_lost: the upgrade failed. */
	CU_ASSERT_EQUAL(lp.r[0].made, 1);
	CU_ASSERT_EQUAL(lp.r[0].lost, 0);
	CU_ASSERT(aloop_transport_is_closing(t));
	CU_ASSERT_EQUAL(aloop_transport_write(t, "x", 1), 0);
	aloop_transport_release(t);
	aloop_future_release(lf);
	if (b >= 0)
		(void)close(b);
	free(clear);
	if (how == LOOP_CLOSES) {
		CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	} else
		test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_start_tls_buffered_peer_resets(void)
{
	start_tls_cut_short(PEER_RESETS);
}

static void
test_start_tls_buffered_aborted(void)
{
	start_tls_cut_short(ABORTED);
}

static void
test_start_tls_buffered_times_out(void)
{
	start_tls_cut_short(TIMES_OUT);
}

static void
test_start_tls_buffered_loop_closes(void)
{
	start_tls_cut_short(LOOP_CLOSES);
}

static void
test_start_tls_buffered_cancelled(void)
{
	start_tls_cut_short(CANCELLED);
}

static const struct test_case cases[] = {
	TEST(test_tls_echo_through_server),
	TEST(test_tls_handshake_failure),
	TEST(test_tls_abort_clients_resets),
	TEST(test_tls_argument_rules),
	TEST(test_tls_sendfile),
	TEST(test_start_tls),
	TEST(test_start_tls_buffered_client),
	TEST(test_start_tls_buffered_server),
	TEST(test_start_tls_buffered_peer_resets),
	TEST(test_start_tls_buffered_aborted),
	TEST(test_start_tls_buffered_times_out),
	TEST(test_start_tls_buffered_loop_closes),
	TEST(test_start_tls_buffered_cancelled),
	TEST(test_tls_connect_accepted_socket),
};

TEST_MAIN("stream_tls", cases)
