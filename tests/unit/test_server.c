/*
 * Servers over loopback (SEMANTICS section G): closing and waiting,
 * closing and aborting clients, every interface on both families, host
 * lists, reuse_port, adopted sockets, bind errors, the out-of-descriptors
 * back-off, pausing, and UNIX servers with their stale socket files.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "stream_util.h"

static struct aloop_server *
server_with(struct aloop_loop *loop, struct rec_pool *pool, const char *host,
    const struct aloop_server_options *o, int *err)
{
	struct aloop_server *srv = NULL;
	struct aloop_future *fut = NULL;
	int rc;

	rc = aloop_create_server(loop, &rec_proto, rec_factory, pool, host,
	    o != NULL && o->sock >= 0 ? NULL : "0", o, &fut);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	*err = wait_future(loop, fut, (void **)&srv);
	aloop_future_release(fut);
	return *err == 0 ? srv : NULL;
}

static void
free_server(struct aloop_server *srv)
{
	aloop_server_close(srv);
	aloop_server_release(srv);
}

static void
test_close_refuses_but_keeps_connections(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv;
	struct aloop_future *wc = NULL;
	struct aloop_transport *ct;
	int port;

	srv = start_server(loop, &sp, NULL, &port);
	CU_ASSERT(aloop_server_is_serving(srv));
	ct = connect_to(loop, &cp, "127.0.0.1", port);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made, 5.0));
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 1);

	CU_ASSERT_EQUAL(aloop_server_wait_closed(srv, &wc), 0);
	aloop_server_close(srv);
	aloop_server_close(srv);	/* idempotent */
	CU_ASSERT_FALSE(aloop_server_is_serving(srv));
	/* New connections are refused at once... */
	CU_ASSERT_EQUAL(raw_connect(AF_INET, "127.0.0.1", port), -1);
	CU_ASSERT_EQUAL(errno, ECONNREFUSED);
	/* ...while the existing one still works. */
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "still", 5), 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].nrecv == 5, 5.0));
	run_for(loop, 0.02);
	CU_ASSERT_FALSE(aloop_future_done(wc));
	/* wait_closed completes once the last connection is gone. */
	aloop_transport_close(ct);
	CU_ASSERT(WAIT_UNTIL(loop, aloop_future_done(wc), 5.0));
	CU_ASSERT_EQUAL(aloop_future_result(wc, NULL), 0);
	CU_ASSERT_EQUAL(sp.r[0].lost, 1);
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 0);
	aloop_future_release(wc);
	/* A later wait_closed is done at once. */
	CU_ASSERT_EQUAL(aloop_server_wait_closed(srv, &wc), 0);
	CU_ASSERT(aloop_future_done(wc));
	aloop_future_release(wc);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_close_and_abort_clients(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *ct[4];
	int port, i;

	srv = start_server(loop, &sp, NULL, &port);
	for (i = 0; i < 4; i++)
		ct[i] = connect_to(loop, &cp, "127.0.0.1", port);
	CU_ASSERT(WAIT_UNTIL(loop, aloop_server_connection_count(srv) == 4 &&
	    sp.n == 4, 5.0));
	(void)ct;
	/* close_clients flushes: the data written before it arrives. */
	for (i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(aloop_transport_write(sp.r[i].t, "bye", 3), 0);
	aloop_server_close_clients(srv);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost && cp.r[1].lost &&
	    cp.r[2].lost && cp.r[3].lost, 5.0));
	CU_ASSERT_EQUAL(cp.r[0].nrecv + cp.r[1].nrecv, 6);
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 0);
	for (i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(sp.r[i].lost, 1);

	for (i = 0; i < 3; i++)
		ct[i] = connect_to(loop, &cp, "127.0.0.1", port);
	CU_ASSERT(WAIT_UNTIL(loop, aloop_server_connection_count(srv) == 3,
	    5.0));
	aloop_server_abort_clients(srv);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[4].lost && cp.r[5].lost &&
	    cp.r[6].lost, 5.0));
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 0);
	for (i = 0; i < sp.n; i++)
		CU_ASSERT_EQUAL(sp.r[i].bad, 0);
	for (i = 0; i < cp.n; i++)
		CU_ASSERT_EQUAL(cp.r[i].bad, 0);
	free_server(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_dual_stack_every_interface(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	const int *s;
	size_t n;
	int err, port, c4, c6, on = 0;
	socklen_t ol = sizeof(on);
	char ps[16];

	srv = server_with(loop, &sp, "", NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	s = aloop_server_sockets(srv, &n);
	port = sock_port(s[0]);
	if (!have_ipv6()) {
		CU_ASSERT_EQUAL(n, 1);
		free_server(srv);
		test_loop_done(loop);
		return;
	}
	/* One socket per family; the IPv6 one only IPv6. */
	CU_ASSERT_EQUAL_FATAL(n, 2);
	free_server(srv);
	run_for(loop, 0.01);

	/* Again on a known port, so that both families share it. */
	snprintf(ps, sizeof(ps), "%d", port);
	{
		struct aloop_future *fut = NULL;

		srv = NULL;
		CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
		    rec_factory, &sp, NULL, ps, NULL, &fut), 0);
		CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv),
		    0);
		aloop_future_release(fut);
	}
	s = aloop_server_sockets(srv, &n);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(sock_port(s[0]), port);
	CU_ASSERT_EQUAL(sock_port(s[1]), port);
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t l = sizeof(ss);

		CU_ASSERT_EQUAL(getsockname(s[i], (struct sockaddr *)&ss, &l),
		    0);
		if (ss.ss_family == AF_INET6) {
			CU_ASSERT_EQUAL(getsockopt(s[i], IPPROTO_IPV6,
			    IPV6_V6ONLY, &on, &ol), 0);
			CU_ASSERT_EQUAL(on, 1);
		}
	}
	c4 = raw_connect(AF_INET, "127.0.0.1", port);
	c6 = raw_connect(AF_INET6, "::1", port);
	CU_ASSERT(c4 >= 0);
	CU_ASSERT(c6 >= 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 2 && sp.r[0].made &&
	    sp.r[1].made, 5.0));
	close(c4);
	close(c6);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost && sp.r[1].lost, 5.0));
	free_server(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_host_list_deduplicated(void)
{
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	const char *hosts4[] = { "127.0.0.1", "127.0.0.1" };
	const char *hosts6[] = { "127.0.0.1", "::1", "127.0.0.1", "::1" };
	struct aloop_future *fut;
	size_t n;
	int err;

	aloop_server_options_init(&o);
	o.hosts = hosts4;
	o.nhosts = 2;
	srv = server_with(loop, &sp, NULL, &o, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	(void)aloop_server_sockets(srv, &n);
	CU_ASSERT_EQUAL(n, 1);
	free_server(srv);
	if (have_ipv6()) {
		o.hosts = hosts6;
		o.nhosts = 4;
		srv = server_with(loop, &sp, NULL, &o, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
		(void)aloop_server_sockets(srv, &n);
		CU_ASSERT_EQUAL(n, 2);
		free_server(srv);
	}
	/* A host and a host list together are an error. */
	CU_ASSERT_EQUAL(aloop_create_server(loop, &rec_proto, rec_factory, &sp,
	    "127.0.0.1", "0", &o, &fut), ALOOP_EINVAL);
	test_loop_done(loop);
}

static int
all_echoed(const struct rec_pool *cp, int n, size_t len)
{
	int i;

	if (cp->n < n)
		return 0;
	for (i = 0; i < n; i++)
		if (cp->r[i].nrecv != len)
			return 0;
	return 1;
}

static void
test_burst_of_connections(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_future *futs[REC_POOL_MAX];
	struct aloop_transport *t;
	struct aloop_server *srv;
	char ps[16];
	int port, i;

	/* Every client connects at once; the server accepts in batches. */
	sp.tmpl.echo = 1;
	srv = start_server(loop, &sp, NULL, &port);
	snprintf(ps, sizeof(ps), "%d", port);
	for (i = 0; i < REC_POOL_MAX; i++)
		CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
		    rec_factory, &cp, "127.0.0.1", ps, NULL, &futs[i]), 0);
	for (i = 0; i < REC_POOL_MAX; i++) {
		t = NULL;
		CU_ASSERT_EQUAL(wait_future(loop, futs[i], (void **)&t), 0);
		if (t != NULL)
			CU_ASSERT_EQUAL(aloop_transport_write(t, "0123456789",
			    10), 0);
		aloop_future_release(futs[i]);
	}
	CU_ASSERT(WAIT_UNTIL(loop, all_echoed(&cp, REC_POOL_MAX, 10), 10.0));
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), REC_POOL_MAX);
	aloop_server_close_clients(srv);
	CU_ASSERT(WAIT_UNTIL(loop, aloop_server_connection_count(srv) == 0,
	    10.0));
	for (i = 0; i < REC_POOL_MAX; i++) {
		CU_ASSERT(WAIT_UNTIL(loop, cp.r[i].lost == 1, 5.0));
		CU_ASSERT_EQUAL(cp.r[i].bad + sp.r[i].bad, 0);
	}
	free_server(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_server_on_a_name(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	const int *s;
	size_t n, i;
	int err, c;

	/* "localhost" is looked up (in /etc/hosts) through the executor. */
	srv = server_with(loop, &sp, "localhost", NULL, &err);
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	s = aloop_server_sockets(srv, &n);
	CU_ASSERT_FATAL(n >= 1);
	/* With "::1 localhost" in /etc/hosts there is an IPv6 socket too. */
	for (i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t l = sizeof(ss);

		if (getsockname(s[i], (struct sockaddr *)&ss, &l) == 0 &&
		    ss.ss_family == AF_INET)
			break;
	}
	CU_ASSERT_FATAL(i < n);
	c = raw_connect(AF_INET, "127.0.0.1", sock_port(s[i]));
	CU_ASSERT(c >= 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made, 5.0));
	close(c);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost, 5.0));
	free_server(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_reuse_port_and_address(void)
{
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct rec_pool sp = { 0 };
	struct aloop_server *srv, *srv2;
	struct aloop_future *fut;
	const int *s;
	size_t n;
	int err, on = -1, port;
	socklen_t ol = sizeof(on);
	char ps[16];

	srv = server_with(loop, &sp, "127.0.0.1", NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	s = aloop_server_sockets(srv, &n);
	CU_ASSERT_EQUAL(getsockopt(s[0], SOL_SOCKET, SO_REUSEPORT, &on, &ol),
	    0);
	CU_ASSERT_EQUAL(on, 0);
	CU_ASSERT_EQUAL(getsockopt(s[0], SOL_SOCKET, SO_REUSEADDR, &on, &ol),
	    0);
	CU_ASSERT(on != 0);
	port = sock_port(s[0]);
	/* The same address again, without reuse_port: EADDRINUSE. */
	snprintf(ps, sizeof(ps), "%d", port);
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, &sp, "127.0.0.1", ps, NULL, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), -EADDRINUSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_future_error(fut)->message,
	    "127.0.0.1"));
	aloop_future_release(fut);
	free_server(srv);

	/* Two servers on one port with reuse_port. */
	aloop_server_options_init(&o);
	o.reuse_port = 1;
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, &sp, "127.0.0.1", "0", &o, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	s = aloop_server_sockets(srv, &n);
	on = 0;
	CU_ASSERT_EQUAL(getsockopt(s[0], SOL_SOCKET, SO_REUSEPORT, &on, &ol),
	    0);
	CU_ASSERT_EQUAL(on, 1);
	snprintf(ps, sizeof(ps), "%d", sock_port(s[0]));
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, &sp, "127.0.0.1", ps, &o, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&srv2), 0);
	aloop_future_release(fut);
	free_server(srv2);
	free_server(srv);
	test_loop_done(loop);
}

/*
 * keep_alive (asyncio 3.13): SO_KEEPALIVE on the listening socket and on
 * the connections it accepts; off by default.
 */
static void
test_keep_alive(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_future *fut;
	const int *s, *cfd;
	size_t n;
	int keep, on, c;
	socklen_t ol = sizeof(on);

	for (keep = 0; keep < 2; keep++) {
		memset(&sp, 0, sizeof(sp));
		aloop_server_options_init(&o);
		CU_ASSERT_EQUAL(o.keep_alive, 0);
		o.keep_alive = keep;
		CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
		    rec_factory, &sp, "127.0.0.1", "0", &o, &fut), 0);
		CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv),
		    0);
		aloop_future_release(fut);
		s = aloop_server_sockets(srv, &n);
		on = -1;
		CU_ASSERT_EQUAL(getsockopt(s[0], SOL_SOCKET, SO_KEEPALIVE,
		    &on, &ol), 0);
		CU_ASSERT_EQUAL(on != 0, keep);
		c = raw_connect(AF_INET, "127.0.0.1", sock_port(s[0]));
		CU_ASSERT_FATAL(c >= 0);
		CU_ASSERT_FATAL(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made,
		    5.0));
		cfd = aloop_transport_get_extra_info(sp.r[0].t, "socket",
		    NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(cfd);
		on = -1;
		CU_ASSERT_EQUAL(getsockopt(*cfd, SOL_SOCKET, SO_KEEPALIVE,
		    &on, &ol), 0);
		CU_ASSERT_EQUAL(on != 0, keep);
		(void)close(c);
		CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost, 5.0));
		free_server(srv);
	}
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_adopt_socket_and_argument_errors(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_future *fut;
	struct sockaddr_in sin;
	const int *s;
	size_t n;
	int fd, err, c;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	CU_ASSERT_EQUAL_FATAL(listen(fd, 10), 0);
	aloop_server_options_init(&o);
	o.sock = fd;
	/* host or port together with sock: EINVAL, nothing taken. */
	CU_ASSERT_EQUAL(aloop_create_server(loop, &rec_proto, rec_factory, &sp,
	    "127.0.0.1", NULL, &o, &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_create_server(loop, &rec_proto, rec_factory, &sp,
	    NULL, "0", &o, &fut), ALOOP_EINVAL);
	/* Neither: EINVAL. */
	CU_ASSERT_EQUAL(aloop_create_server(loop, &rec_proto, rec_factory, &sp,
	    NULL, NULL, NULL, &fut), ALOOP_EINVAL);
	srv = server_with(loop, &sp, NULL, &o, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	s = aloop_server_sockets(srv, &n);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(s[0], fd);
	CU_ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CU_ASSERT(fcntl(fd, F_GETFL) & O_NONBLOCK);
	c = raw_connect(AF_INET, "127.0.0.1", sock_port(fd));
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made, 5.0));
	close(c);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost, 5.0));
	free_server(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static int resource_reports;
static unsigned long long resource_dropped;

static int
count_handler(struct aloop_loop *loop, const struct aloop_context *ctx,
    void *arg)
{
	(void)loop;
	(void)arg;
	if (strcmp(ctx->message, "socket.accept() out of system resource") ==
	    0 && ctx->error != NULL && ctx->error->code == -EMFILE) {
		resource_reports++;
		resource_dropped += ctx->dropped;
	}
	return 0;
}

/* Whether the peer of @fd reset it (and did not merely close or hang). */
static int
was_reset(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char b;

	if (poll(&pfd, 1, 2000) != 1)
		return 0;
	return read(fd, &b, 1) == -1 && errno == ECONNRESET;
}

static void
test_emfile_backs_off(void)
{
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct rlimit old, lim;
	int clients[3], fillers[64], nfill = 0, port, i, lfd, late;
	double t0, waited;
	const int *s;
	size_t n;

	srv = start_server(loop, &sp, NULL, &port);
	s = aloop_server_sockets(srv, &n);
	lfd = s[0];
	aloop_set_exception_handler(loop, count_handler, NULL);
	resource_reports = 0;
	resource_dropped = 0;
	for (i = 0; i < 3; i++) {
		clients[i] = raw_connect(AF_INET, "127.0.0.1", port);
		CU_ASSERT_FATAL(clients[i] >= 0);
	}
	/* Leave no descriptor free for accept(). */
	CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)count_fds() + 8;
	CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_NOFILE, &lim), 0);
	while (nfill < 64 && (fillers[nfill] = dup(lfd)) >= 0)
		nfill++;
	CU_ASSERT_EQUAL(errno, EMFILE);
	run_for(loop, 0.3);
	/*
	 * The waiting clients were reset through the spare descriptor, not
	 * left hanging; reports come once per back-off step (1 ms doubling
	 * to 100 ms: about ten in 0.3 s), never once per failed accept,
	 * and count every reset.  The listener stays open.
	 */
	for (i = 0; i < 3; i++)
		CU_ASSERT(was_reset(clients[i]));
	CU_ASSERT(resource_reports >= 1 && resource_reports <= 20);
	CU_ASSERT_EQUAL(resource_dropped, 3);
	CU_ASSERT_EQUAL(sp.n, 0);
	CU_ASSERT(fcntl(lfd, F_GETFD) != -1);
	(void)aloop_server_sockets(srv, &n);
	CU_ASSERT_EQUAL(n, 1);
	fprintf(stderr, "\n    EMFILE: %d reports in 0.3 s, %llu reset\n",
	    resource_reports, resource_dropped);
	/* Descriptors free again: a new client is served promptly. */
	while (nfill > 0)
		close(fillers[--nfill]);
	CU_ASSERT_EQUAL(setrlimit(RLIMIT_NOFILE, &old), 0);
	t0 = now_mono();
	late = raw_connect(AF_INET, "127.0.0.1", port);
	CU_ASSERT_FATAL(late >= 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made, 5.0));
	waited = now_mono() - t0;
	fprintf(stderr, "    EMFILE: new client served %.1f ms after "
	    "descriptors were free\n", waited * 1e3);
	CU_ASSERT(waited < 2.0);
	for (i = 0; i < 3; i++)
		close(clients[i]);
	close(late);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost, 5.0));
	free_server(srv);
	test_loop_done(loop);
}

static void
test_pause_accepting_and_start_serving(void)
{
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	int err, c, c2, port;
	const int *s;
	size_t n;

	aloop_server_options_init(&o);
	o.start_serving = 0;
	srv = server_with(loop, &sp, "127.0.0.1", &o, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	CU_ASSERT_FALSE(aloop_server_is_serving(srv));
	s = aloop_server_sockets(srv, &n);
	port = sock_port(s[0]);
	/* Listening already: the kernel queues the connection. */
	c = raw_connect(AF_INET, "127.0.0.1", port);
	CU_ASSERT(c >= 0);
	run_for(loop, 0.05);
	CU_ASSERT_EQUAL(sp.n, 0);
	CU_ASSERT_EQUAL(aloop_server_start_serving(srv), 0);
	CU_ASSERT_EQUAL(aloop_server_start_serving(srv), 0);
	CU_ASSERT(aloop_server_is_serving(srv));
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1, 5.0));

	aloop_server_pause_accepting(srv);
	c2 = raw_connect(AF_INET, "127.0.0.1", port);
	CU_ASSERT(c2 >= 0);
	run_for(loop, 0.05);
	CU_ASSERT_EQUAL(sp.n, 1);
	aloop_server_resume_accepting(srv);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 2, 5.0));
	close(c);
	close(c2);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost && sp.r[1].lost, 5.0));
	free_server(srv);
	test_loop_done(loop);
}

static void
test_factory_refusal_closes(void)
{
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	char b;
	int c, port;

	srv = start_server(loop, &sp, NULL, &port);
	sp.refuse = ALOOP_EPLUGIN;
	c = raw_connect(AF_INET, "127.0.0.1", port);
	CU_ASSERT_FATAL(c >= 0);
	run_for(loop, 0.05);
	/* A refusal is an abort: the client sees a reset, not an EOF. */
	CU_ASSERT_EQUAL(read(c, &b, 1), -1);
	CU_ASSERT_EQUAL(errno, ECONNRESET);
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 0);
	close(c);
	free_server(srv);
	test_loop_done(loop);
}

struct filter_rec {
	int			 calls;
	int			 released;
	int			 refuse;
	struct sockaddr_in	 peer;
	struct rec_pool		*pool;
};

static int
filter_factory(void *arg, void **state)
{
	struct filter_rec *f = arg;

	return rec_factory(f->pool, state);
}

static int
filter(void *arg, int fd, const struct sockaddr *peer, socklen_t len,
    uintptr_t *ticket)
{
	struct filter_rec *f = arg;

	CU_ASSERT(fd >= 0);
	CU_ASSERT_EQUAL(*ticket, 0);
	*ticket = 40 + (uintptr_t)f->calls;
	CU_ASSERT_EQUAL(peer->sa_family, AF_INET);
	if (len >= sizeof(f->peer))
		memcpy(&f->peer, peer, sizeof(f->peer));
	f->calls++;
	return f->refuse;
}

static void
filter_release(void *arg, uintptr_t ticket)
{
	struct filter_rec *f = arg;

	/* Only the served connection's ticket comes back, once. */
	CU_ASSERT_EQUAL(ticket, 41);
	f->released++;
}

/*
 * accept_filter sees each connection first: a refused one is reset (the
 * client reads ECONNRESET, not EOF) and the factory never runs; a served
 * one's ticket comes back to accept_release when it ends.
 */
static void
test_accept_filter(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct rec_pool sp = { 0 };
	struct filter_rec f = { .pool = &sp };
	struct aloop_server *srv = NULL;
	struct aloop_future *fut = NULL;
	struct sockaddr_in me;
	socklen_t len = sizeof(me);
	const int *s;
	size_t n;
	char b;
	int c, port;

	aloop_server_options_init(&o);
	o.accept_filter = filter;
	o.accept_release = filter_release;
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    filter_factory, &f, "127.0.0.1", "0", &o, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	s = aloop_server_sockets(srv, &n);
	port = sock_port(s[0]);

	f.refuse = 1;
	c = raw_connect(AF_INET, "127.0.0.1", port);
	CU_ASSERT_FATAL(c >= 0);
	CU_ASSERT(WAIT_UNTIL(loop, f.calls == 1, 5.0));
	CU_ASSERT_EQUAL(getsockname(c, (struct sockaddr *)&me, &len), 0);
	CU_ASSERT_EQUAL(f.peer.sin_port, me.sin_port);
	CU_ASSERT_EQUAL(read(c, &b, 1), -1);
	CU_ASSERT_EQUAL(errno, ECONNRESET);
	CU_ASSERT_EQUAL(sp.n, 0);
	CU_ASSERT_EQUAL(aloop_server_connection_count(srv), 0);
	close(c);

	f.refuse = 0;
	c = raw_connect(AF_INET, "127.0.0.1", port);
	CU_ASSERT_FATAL(c >= 0);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made, 5.0));
	CU_ASSERT_EQUAL(f.calls, 2);
	CU_ASSERT_EQUAL(f.released, 0);
	close(c);
	CU_ASSERT(WAIT_UNTIL(loop, sp.r[0].lost && f.released == 1, 5.0));
	free_server(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
unix_path(char *buf, size_t size, const char *tag)
{
	snprintf(buf, size, "/tmp/aloop-test-%ld-%s.sock", (long)getpid(),
	    tag);
	(void)unlink(buf);
}

static void
test_unix_server(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv = NULL, *srv2;
	struct aloop_future *fut;
	struct aloop_transport *ct = NULL;
	struct sockaddr_un sun;
	char path[108];
	int fd;

	sp.tmpl.echo = 1;
	unix_path(path, sizeof(path), "u");
	/* A stale socket file left by a dead server is replaced. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	close(fd);
	CU_ASSERT_EQUAL_FATAL(aloop_create_unix_server(loop, &rec_proto,
	    rec_factory, &sp, path, NULL, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	/* A live one is not. */
	CU_ASSERT_EQUAL_FATAL(aloop_create_unix_server(loop, &rec_proto,
	    rec_factory, &sp, path, NULL, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&srv2), -EADDRINUSE);
	aloop_future_release(fut);
	/* Path and sock together: EINVAL. */
	aloop_server_options_init(&o);
	o.sock = 0;
	CU_ASSERT_EQUAL(aloop_create_unix_server(loop, &rec_proto,
	    rec_factory, &sp, path, &o, &fut), ALOOP_EINVAL);

	CU_ASSERT_EQUAL_FATAL(aloop_create_unix_connection(loop, &rec_proto,
	    rec_factory, &cp, path, NULL, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&ct), 0);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(aloop_transport_write(ct, "unix", 4), 0);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].nrecv == 4, 5.0));
	CU_ASSERT_EQUAL(memcmp(cp.r[0].data, "unix", 4), 0);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(ct, "peername",
	    NULL));
	aloop_transport_close(ct);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost && sp.r[0].lost, 5.0));
	free_server(srv);
	/* Closing the server removed its socket file. */
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
	CU_ASSERT_EQUAL(cp.r[0].bad + sp.r[0].bad, 0);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_loop_close_with_open_server(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_future *wc = NULL;
	int c, port;

	/* Closing the loop releases listeners and connections, no callback. */
	srv = start_server(loop, &sp, NULL, &port);
	c = raw_connect(AF_INET, "127.0.0.1", port);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made, 5.0));
	CU_ASSERT_EQUAL(aloop_server_wait_closed(srv, &wc), 0);
	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	CU_ASSERT_EQUAL(sp.r[0].lost, 0);
	/* A waiter never completes on a closed loop, and nothing leaks. */
	CU_ASSERT_FALSE(aloop_future_done(wc));
	aloop_future_release(wc);
	aloop_server_release(srv);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	close(c);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* asyncio's serve_forever: cancelling closes, closing cancels. */
static void
test_serve_forever(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server_options o;
	struct aloop_server *srv = NULL;
	struct aloop_future *f, *g;
	const int *lfd;
	size_t n;
	int port, round;

	for (round = 0; round < 2; round++) {
		aloop_server_options_init(&o);
		o.start_serving = 0;
		CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
		    rec_factory, &sp, "127.0.0.1", "0", &o, &f), 0);
		CU_ASSERT_EQUAL_FATAL(wait_future(loop, f, (void **)&srv), 0);
		aloop_future_release(f);
		CU_ASSERT_PTR_EQUAL(aloop_server_get_loop(srv), loop);
		CU_ASSERT_FALSE(aloop_server_is_serving(srv));
		CU_ASSERT_EQUAL_FATAL(aloop_server_serve_forever(srv, &f), 0);
		CU_ASSERT(aloop_server_is_serving(srv));
		CU_ASSERT_EQUAL(aloop_server_serve_forever(srv, &g),
		    ALOOP_ESTATE);
		lfd = aloop_server_sockets(srv, &n);
		port = sock_port(lfd[0]);
		(void)connect_to(loop, &cp, "127.0.0.1", port);
		CU_ASSERT(WAIT_UNTIL(loop, sp.n == round + 1, 5.0));
		run_for(loop, 0.01);
		CU_ASSERT_FALSE(aloop_future_done(f));
		if (round == 0) {
			CU_ASSERT_EQUAL(aloop_future_cancel(f), 1);
		} else
			aloop_server_close(srv);
		CU_ASSERT_EQUAL(aloop_run_until_complete(loop, f, NULL),
		    ALOOP_ECANCELLED);
		run_for(loop, 0.01);
		CU_ASSERT_FALSE(aloop_server_is_serving(srv));
		CU_ASSERT_PTR_NULL(aloop_server_sockets(srv, &n));
		CU_ASSERT_EQUAL(aloop_server_serve_forever(srv, &g),
		    ALOOP_ESTATE);
		aloop_future_release(f);
		aloop_server_abort_clients(srv);
		aloop_server_release(srv);
		CU_ASSERT(WAIT_UNTIL(loop, cp.r[round].lost == 1, 5.0));
	}
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* The loop closes under serve_forever: nothing leaks. */
static void
test_serve_forever_loop_closed(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 };
	struct aloop_server *srv;
	struct aloop_future *f;
	int port;

	srv = start_server(loop, &sp, "127.0.0.1", &port);
	CU_ASSERT_EQUAL_FATAL(aloop_server_serve_forever(srv, &f), 0);
	aloop_server_release(srv);
	run_for(loop, 0.01);
	test_loop_done(loop);
	CU_ASSERT_FALSE(aloop_future_done(f));
	aloop_future_release(f);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static int
sockopt_int(int fd, int level, int name)
{
	socklen_t len = sizeof(int);
	int v = -1;

	CU_ASSERT_EQUAL(getsockopt(fd, level, name, &v, &len), 0);
	return v != 0;
}

/*
 * What the server and aloopd rely on to set socket options once per
 * listener: Linux gives an accepted TCP socket the listening socket's
 * TCP_NODELAY and SO_KEEPALIVE, on and off.
 */
static void
test_accepted_socket_inherits_options(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int lfd, cfd, afd, on, round;

	for (round = 0; round < 2; round++) {
		on = round == 0;
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CU_ASSERT_FATAL(lfd >= 0);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sin,
		    sizeof(sin)), 0);
		CU_ASSERT_EQUAL_FATAL(listen(lfd, 4), 0);
		CU_ASSERT_EQUAL(getsockname(lfd, (struct sockaddr *)&sin,
		    &len), 0);
		CU_ASSERT_EQUAL(setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on)), 0);
		CU_ASSERT_EQUAL(setsockopt(lfd, SOL_SOCKET, SO_KEEPALIVE, &on,
		    sizeof(on)), 0);
		cfd = raw_connect(AF_INET, "127.0.0.1", ntohs(sin.sin_port));
		CU_ASSERT_FATAL(cfd >= 0);
		afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		CU_ASSERT_FATAL(afd >= 0);
		CU_ASSERT_EQUAL(sockopt_int(afd, IPPROTO_TCP, TCP_NODELAY), on);
		CU_ASSERT_EQUAL(sockopt_int(afd, SOL_SOCKET, SO_KEEPALIVE), on);
		(void)close(afd);
		(void)close(cfd);
		(void)close(lfd);
	}
}

/* tcp_nodelay reaches every accepted socket, on by default, and off. */
static void
test_tcp_nodelay_from_the_listener(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_server_options o;
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv;
	const int *lfd, *afd;
	size_t n;
	int port, round, i, err;

	for (round = 0; round < 2; round++) {
		memset(&sp, 0, sizeof(sp));
		memset(&cp, 0, sizeof(cp));
		aloop_server_options_init(&o);
		CU_ASSERT_EQUAL(o.tcp_nodelay, 1);
		o.tcp_nodelay = round == 0;
		srv = server_with(loop, &sp, "127.0.0.1", &o, &err);
		CU_ASSERT_FATAL(srv != NULL);
		lfd = aloop_server_sockets(srv, &n);
		CU_ASSERT_FATAL(lfd != NULL && n == 1);
		CU_ASSERT_EQUAL(sockopt_int(lfd[0], IPPROTO_TCP, TCP_NODELAY),
		    o.tcp_nodelay);
		port = sock_port(lfd[0]);
		/* The first is checked, the next ones inherit. */
		for (i = 0; i < 3; i++)
			(void)connect_to(loop, &cp, "127.0.0.1", port);
		CU_ASSERT(WAIT_UNTIL(loop, sp.n == 3 && sp.r[0].made &&
		    sp.r[1].made && sp.r[2].made, 5.0));
		for (i = 0; i < sp.n; i++) {
			afd = aloop_transport_get_extra_info(sp.r[i].t,
			    "socket", NULL);
			CU_ASSERT_FATAL(afd != NULL);
			CU_ASSERT_EQUAL(sockopt_int(*afd, IPPROTO_TCP,
			    TCP_NODELAY), o.tcp_nodelay);
		}
		aloop_server_abort_clients(srv);
		CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost && cp.r[1].lost &&
		    cp.r[2].lost, 5.0));
		free_server(srv);
	}
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_accepted_socket_inherits_options),
	TEST(test_tcp_nodelay_from_the_listener),
	TEST(test_close_refuses_but_keeps_connections),
	TEST(test_serve_forever),
	TEST(test_serve_forever_loop_closed),
	TEST(test_close_and_abort_clients),
	TEST(test_dual_stack_every_interface),
	TEST(test_host_list_deduplicated),
	TEST(test_burst_of_connections),
	TEST(test_server_on_a_name),
	TEST(test_reuse_port_and_address),
	TEST(test_keep_alive),
	TEST(test_adopt_socket_and_argument_errors),
	TEST(test_emfile_backs_off),
	TEST(test_pause_accepting_and_start_serving),
	TEST(test_factory_refusal_closes),
	TEST(test_accept_filter),
	TEST(test_unix_server),
	TEST(test_loop_close_with_open_server),
};

TEST_MAIN("server", cases)
