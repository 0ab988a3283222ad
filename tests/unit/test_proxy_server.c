/*
 * Servers with the proxy_protocol option: the header is read before the
 * protocol (and before TLS) without taking a byte of payload, whether it
 * comes with the payload in one write or byte by byte; the transport then
 * names the client; a malformed, absent or late header resets the
 * connection and gives the accept filter's ticket back.  Without the
 * option a header is payload, as the spec forbids guessing.
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "stream_util.h"
#include "tls_certs.h"

static const char v1_hdr[] = "PROXY TCP4 203.0.113.7 198.51.100.1 4242 80\r\n";

/* What the accept filter, its release and proxy_failed saw. */
static int filtered, released, bad_ticket, failures, last_failure;

static int
filter(void *arg, int fd, const struct sockaddr *peer, socklen_t len,
    uintptr_t *ticket)
{
	(void)arg;
	(void)fd;
	(void)len;
	/* The filter sees the socket's peer: the balancer, here loopback. */
	if (peer->sa_family != AF_INET)
		bad_ticket++;
	filtered++;
	*ticket = 7;
	return 0;
}

static void
release(void *arg, uintptr_t ticket)
{
	(void)arg;
	if (ticket != 7)
		bad_ticket++;
	released++;
}

static void
proxy_failed(void *arg, const struct aloop_error *err)
{
	(void)arg;
	failures++;
	last_failure = err->code;
}

static struct aloop_server *
proxy_server(struct aloop_loop *loop, struct rec_pool *sp, int on,
    double timeout, struct aloop_tls_context *ssl, int *port)
{
	struct aloop_server_options o;
	struct aloop_server *srv = NULL;
	struct aloop_future *fut;
	const int *fds;
	size_t n;

	filtered = released = bad_ticket = failures = last_failure = 0;
	aloop_server_options_init(&o);
	CU_ASSERT_EQUAL(o.proxy_protocol, 0);
	CU_ASSERT_EQUAL(o.proxy_protocol_timeout, 5.0);
	o.proxy_protocol = on;
	o.proxy_protocol_timeout = timeout;
	o.proxy_failed = proxy_failed;
	o.accept_filter = filter;
	o.accept_release = release;
	o.ssl = ssl;
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, sp, "127.0.0.1", "0", &o, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	fds = aloop_server_sockets(srv, &n);
	*port = sock_port(fds[0]);
	return srv;
}

static int
client(int port)
{
	int fd = raw_connect(AF_INET, "127.0.0.1", port), on = 1;

	CU_ASSERT_FATAL(fd >= 0);
	/* Every small write goes out on its own. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	return fd;
}

/* Whether the server reset @fd: a read fails with ECONNRESET. */
static int
was_reset(struct aloop_loop *loop, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	ssize_t n;
	double end = now_mono() + 5.0;

	while (poll(&p, 1, 0) == 0 && now_mono() < end)
		run_for(loop, 0.005);
	n = recv(fd, &c, 1, MSG_DONTWAIT);
	return n == -1 && errno == ECONNRESET;
}

static int
addr_is(const struct sockaddr *sa, const char *addr, int port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
	char s[INET_ADDRSTRLEN];

	return sa != NULL && sa->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &sin->sin_addr, s, sizeof(s)) != NULL &&
	    strcmp(s, addr) == 0 && (port < 0 || ntohs(sin->sin_port) == port);
}

static void
free_server(struct aloop_loop *loop, struct aloop_server *srv)
{
	aloop_server_close(srv);
	aloop_server_release(srv);
	run_for(loop, 0.01);
}

static void
test_v1_with_payload_in_one_write(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *t;
	char msg[128];
	size_t len;
	int port, fd;

	srv = proxy_server(loop, &sp, 1, 5.0, NULL, &port);
	fd = client(port);
	snprintf(msg, sizeof(msg), "%shello", v1_hdr);
	CU_ASSERT_EQUAL(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].nrecv == 5,
	    5.0));
	/* The protocol got the payload and nothing of the header. */
	CU_ASSERT_EQUAL(memcmp(sp.r[0].data, "hello", 5), 0);
	t = sp.r[0].t;
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t, "peername",
	    &len), "203.0.113.7", 4242));
	CU_ASSERT_EQUAL(len, sizeof(struct sockaddr_in));
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t, "sockname",
	    NULL), "198.51.100.1", 80));
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t,
	    "proxied_peername", NULL), "127.0.0.1", -1));
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t,
	    "proxied_sockname", NULL), "127.0.0.1", port));
	CU_ASSERT_EQUAL(*(const int *)aloop_transport_get_extra_info(t,
	    "proxy_version", NULL), 1);
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(t, "proxy_alpn",
	    NULL));
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(t, "proxy_tlvs",
	    NULL));
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(t, "socket",
	    NULL));
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 1);
	close(fd);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1, 5.0));
	CU_ASSERT_EQUAL(sp.r[0].bad, 0);
	CU_ASSERT_EQUAL(filtered, 1);
	CU_ASSERT(WAIT_UNTIL(loop, released == 1, 5.0));
	CU_ASSERT_EQUAL(failures, 0);
	CU_ASSERT_EQUAL(bad_ticket, 0);
	free_server(loop, srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* A v2 header for 192.0.2.9:5555 -> 192.0.2.1:443 with ALPN and a name. */
static size_t
v2_hdr(uint8_t *b)
{
	static const uint8_t fixed[] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
		0x54, 0x0a, 0x21, 0x11, 0x00, 12 + 5 + 14,
		192, 0, 2, 9, 192, 0, 2, 1, 0x15, 0xb3, 0x01, 0xbb,
		0x01, 0x00, 0x02, 'h', '2',
		0x02, 0x00, 0x0b, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.',
		'o', 'r', 'g',
	};

	memcpy(b, fixed, sizeof(fixed));
	return sizeof(fixed);
}

static void
test_v2_byte_by_byte(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *t;
	const uint8_t *tlvs;
	const char *s;
	uint8_t hdr[64];
	size_t n, i, len;
	int port, fd;

	srv = proxy_server(loop, &sp, 1, 5.0, NULL, &port);
	fd = client(port);
	n = v2_hdr(hdr);
	for (i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(write(fd, hdr + i, 1), 1);
		run_for(loop, 0.002);
		/* Nothing reaches the protocol before the whole header. */
		if (i + 1 < n)
			CU_ASSERT_EQUAL(sp.n, 0);
	}
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 1);
	CU_ASSERT_EQUAL(write(fd, "x", 1), 1);
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].nrecv == 1,
	    5.0));
	CU_ASSERT_EQUAL(sp.r[0].data[0], 'x');
	t = sp.r[0].t;
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t, "peername",
	    NULL), "192.0.2.9", 5555));
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t, "sockname",
	    NULL), "192.0.2.1", 443));
	s = aloop_transport_get_extra_info(t, "proxy_alpn", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(len, 2);
	CU_ASSERT_STRING_EQUAL(s, "h2");
	s = aloop_transport_get_extra_info(t, "proxy_authority", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(s, "example.org");
	tlvs = aloop_transport_get_extra_info(t, "proxy_tlvs", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tlvs);
	CU_ASSERT_EQUAL(len, 5 + 14);
	CU_ASSERT_EQUAL(tlvs[0], 0x01);
	CU_ASSERT_EQUAL(*(const int *)aloop_transport_get_extra_info(t,
	    "proxy_version", NULL), 2);
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(t, "proxy_ssl_cn",
	    NULL));
	close(fd);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1 && released == 1, 5.0));
	CU_ASSERT_EQUAL(sp.r[0].bad, 0);
	free_server(loop, srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_local_keeps_real_addresses(void)
{
	static const uint8_t local[] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
		0x54, 0x0a, 0x20, 0x00, 0x00, 0x00, 'p', 'i', 'n', 'g',
	};
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *t;
	int port, fd;

	srv = proxy_server(loop, &sp, 1, 5.0, NULL, &port);
	fd = client(port);
	CU_ASSERT_EQUAL(write(fd, local, sizeof(local)),
	    (ssize_t)sizeof(local));
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].nrecv == 4,
	    5.0));
	CU_ASSERT_EQUAL(memcmp(sp.r[0].data, "ping", 4), 0);
	t = sp.r[0].t;
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t, "peername",
	    NULL), "127.0.0.1", -1));
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t, "sockname",
	    NULL), "127.0.0.1", port));
	CU_ASSERT_EQUAL(*(const int *)aloop_transport_get_extra_info(t,
	    "proxy_version", NULL), 2);
	close(fd);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1, 5.0));
	free_server(loop, srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_malformed_late_or_absent_is_reset(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	int port, fd;

	srv = proxy_server(loop, &sp, 1, 0.3, NULL, &port);
	/* Malformed: reset at once, the protocol never hears of it. */
	fd = client(port);
	CU_ASSERT_EQUAL(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	CU_ASSERT(was_reset(loop, fd));
	close(fd);
	CU_ASSERT(WAIT_UNTIL(loop, failures == 1, 5.0));
	CU_ASSERT_EQUAL(last_failure, -EPROTO);
	CU_ASSERT_EQUAL(released, 1);

	/* Half a header, then silence: reset at the deadline. */
	fd = client(port);
	CU_ASSERT_EQUAL(write(fd, "PROXY TCP4 1.2", 14), 14);
	run_for(loop, 0.1);
	CU_ASSERT_EQUAL(failures, 1);
	CU_ASSERT(was_reset(loop, fd));
	close(fd);
	CU_ASSERT(WAIT_UNTIL(loop, failures == 2, 5.0));
	CU_ASSERT_EQUAL(last_failure, ALOOP_ETIMEDOUT);
	CU_ASSERT_EQUAL(released, 2);

	/* Nothing at all, and the peer goes away first. */
	fd = client(port);
	run_for(loop, 0.05);
	close(fd);
	CU_ASSERT(WAIT_UNTIL(loop, failures == 3, 5.0));
	CU_ASSERT_EQUAL(last_failure, ALOOP_EINCOMPLETE);
	CU_ASSERT_EQUAL(released, 3);

	CU_ASSERT_EQUAL(sp.n, 0);
	CU_ASSERT_EQUAL(filtered, 3);
	CU_ASSERT_EQUAL(bad_ticket, 0);
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 0);
	free_server(loop, srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * Connections still sending their header count for wait_closed; aborting
 * the clients resets them; closing the loop with one pending leaks
 * nothing and gives its ticket back.
 */
static void
test_pending_header_and_close(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_future *wc = NULL;
	int port, fd, fd2;

	srv = proxy_server(loop, &sp, 1, 0, NULL, &port);
	fd = client(port);
	CU_ASSERT_EQUAL(write(fd, "PROXY ", 6), 6);
	CU_ASSERT(WAIT_UNTIL(loop, aloop_server_connection_count(srv) == 1,
	    5.0));
	CU_ASSERT_EQUAL(aloop_server_wait_closed(srv, &wc), 0);
	aloop_server_close(srv);
	run_for(loop, 0.05);
	CU_ASSERT_FALSE(aloop_future_done(wc));
	aloop_server_abort_clients(srv);
	CU_ASSERT(was_reset(loop, fd));
	CU_ASSERT(WAIT_UNTIL(loop, aloop_future_done(wc), 5.0));
	CU_ASSERT_EQUAL(released, 1);
	/* Cancelled by the server: not a failure of the peer's. */
	CU_ASSERT_EQUAL(failures, 0);
	close(fd);
	aloop_future_release(wc);
	aloop_server_release(srv);

	srv = proxy_server(loop, &sp, 1, 0, NULL, &port);
	fd2 = client(port);
	CU_ASSERT(WAIT_UNTIL(loop, aloop_server_connection_count(srv) == 1,
	    5.0));
	aloop_server_release(srv);	/* the loop still holds it */
	test_loop_done(loop);
	CU_ASSERT_EQUAL(released, 1);
	CU_ASSERT_EQUAL(failures, 0);
	close(fd2);
	CU_ASSERT_EQUAL(sp.n, 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* The header comes in clear, then the TLS handshake over the same socket. */
static void
test_tls_after_header(void)
{
	int fds = count_fds();
	const struct tls_certs *certs;
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_tls_context *sctx = NULL, *cctx = NULL;
	struct aloop_connection_options co;
	struct aloop_server *srv;
	struct aloop_transport *ct = NULL, *st;
	struct aloop_future *fut;
	int port, fd;

	NEED_CERTS(certs);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &sctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(sctx,
	    certs->server_cert, certs->server_key), 0);
	srv = proxy_server(loop, &sp, 1, 5.0, sctx, &port);
	aloop_tls_context_release(sctx);

	fd = client(port);
	CU_ASSERT_EQUAL(write(fd, v1_hdr, strlen(v1_hdr)),
	    (ssize_t)strlen(v1_hdr));
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &cctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_verify_locations(cctx,
	    certs->ca, NULL), 0);
	aloop_connection_options_init(&co);
	co.ssl = cctx;
	co.sock = fd;
	co.server_hostname = "localhost";
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, NULL, NULL, &co, &fut), 0);
	aloop_tls_context_release(cctx);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&ct), 0);
	aloop_future_release(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ct);
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "over tls", 8), 0);
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].nrecv == 8,
	    5.0));
	CU_ASSERT_EQUAL(memcmp(sp.r[0].data, "over tls", 8), 0);
	st = sp.r[0].t;
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(st, "cipher",
	    NULL));
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(st, "peername",
	    NULL), "203.0.113.7", 4242));
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(st,
	    "proxied_peername", NULL), "127.0.0.1", -1));
	aloop_transport_close(ct);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1 && cp.r[0].lost == 1,
	    10.0));
	CU_ASSERT(WAIT_UNTIL(loop, released == 1, 5.0));
	CU_ASSERT_EQUAL(sp.r[0].bad + cp.r[0].bad, 0);
	free_server(loop, srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* start_tls on a connection that came with a header: the client stays. */
static struct aloop_tls_context *upgrade_ctx;
static struct aloop_future *upgrade_fut;

static void
upgrade_in_made(struct rec *r)
{
	struct aloop_connection_options o;

	aloop_connection_options_init(&o);
	o.ssl = upgrade_ctx;
	CU_ASSERT_EQUAL(aloop_start_tls(r->t, 1, &o, &upgrade_fut), 0);
}

static void
test_start_tls_keeps_the_client(void)
{
	int fds = count_fds();
	const struct tls_certs *certs;
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_tls_context *cctx = NULL;
	struct aloop_connection_options co;
	struct aloop_server *srv;
	struct aloop_transport *ct = NULL, *nt = NULL;
	struct aloop_future *fut;
	int port, fd;

	NEED_CERTS(certs);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER,
	    &upgrade_ctx), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(upgrade_ctx,
	    certs->server_cert, certs->server_key), 0);
	sp.tmpl.on_made = upgrade_in_made;
	srv = proxy_server(loop, &sp, 1, 5.0, NULL, &port);

	fd = client(port);
	CU_ASSERT_EQUAL(write(fd, v1_hdr, strlen(v1_hdr)),
	    (ssize_t)strlen(v1_hdr));
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &cctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_verify_locations(cctx,
	    certs->ca, NULL), 0);
	aloop_connection_options_init(&co);
	co.ssl = cctx;
	co.sock = fd;
	co.server_hostname = "localhost";
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, NULL, NULL, &co, &fut), 0);
	aloop_tls_context_release(cctx);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&ct), 0);
	aloop_future_release(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(upgrade_fut);
	CU_ASSERT_EQUAL(wait_future(loop, upgrade_fut, (void **)&nt), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(nt);
	sp.r[0].t = nt;		/* the protocol goes on over the new one */
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(nt, "peername",
	    NULL), "203.0.113.7", 4242));
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(nt,
	    "proxied_peername", NULL), "127.0.0.1", -1));
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(nt, "cipher",
	    NULL));
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "up", 2), 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].nrecv == 2, 5.0));
	aloop_transport_close(ct);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1 && cp.r[0].lost == 1,
	    10.0));
	CU_ASSERT(WAIT_UNTIL(loop, released == 1, 5.0));
	CU_ASSERT_EQUAL(sp.r[0].bad, 0);
	CU_ASSERT_EQUAL(cp.r[0].bad, 0);
	aloop_future_release(upgrade_fut);
	upgrade_fut = NULL;
	aloop_tls_context_release(upgrade_ctx);
	free_server(loop, srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * Without the option the spec forbids guessing: a v2 header is the
 * first bytes of payload, handed to the protocol as they came, and the
 * addresses stay the socket's.
 */
static void
test_no_option_no_guessing(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *t;
	uint8_t hdr[64];
	size_t n;
	int port, fd;

	srv = proxy_server(loop, &sp, 0, 5.0, NULL, &port);
	fd = client(port);
	n = v2_hdr(hdr);
	CU_ASSERT_EQUAL(write(fd, hdr, n), (ssize_t)n);
	CU_ASSERT_FATAL(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].nrecv == n,
	    5.0));
	CU_ASSERT_EQUAL(memcmp(sp.r[0].data, hdr, n), 0);
	t = sp.r[0].t;
	CU_ASSERT(addr_is(aloop_transport_get_extra_info(t, "peername",
	    NULL), "127.0.0.1", -1));
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(t,
	    "proxied_peername", NULL));
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(t, "proxy_version",
	    NULL));
	close(fd);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost == 1, 5.0));
	free_server(loop, srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_v1_with_payload_in_one_write),
	TEST(test_v2_byte_by_byte),
	TEST(test_local_keeps_real_addresses),
	TEST(test_malformed_late_or_absent_is_reset),
	TEST(test_pending_header_and_close),
	TEST(test_tls_after_header),
	TEST(test_start_tls_keeps_the_client),
	TEST(test_no_option_no_guessing),
};

TEST_MAIN("proxy_server", cases)
