/*
 * A transport handed out by a future stays valid memory while the caller
 * holds that future, also once connection_lost has run: the protocols
 * here close in connection_made, so connection_lost runs in the same batch
 * as the callback that stops aloop_run_until_complete, and every call on
 * the transport afterwards must be a harmless no-op.  One case per kind of
 * transport; run under the sanitizer build they catch any use after free.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <fcntl.h>
#include <signal.h>
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
close_in_made(struct rec *r)
{
	aloop_transport_close(r->t);
}

/*
 * What a caller may still do with a transport that is closing or gone:
 * every call is answered without touching released resources.
 */
static void
poke_closed(struct aloop_transport *t)
{
	size_t lo, hi;
	int rc;

	CU_ASSERT(aloop_transport_is_closing(t));
	CU_ASSERT_FALSE(aloop_transport_is_reading(t));
	CU_ASSERT_EQUAL(aloop_transport_write(t, "x", 1), 0);
	rc = aloop_transport_write_eof(t);
	CU_ASSERT(rc == 0 || rc == ALOOP_ENOTSUP);
	aloop_transport_pause_reading(t);
	aloop_transport_resume_reading(t);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(t, 10, 5), 0);
	aloop_transport_get_write_buffer_limits(t, &lo, &hi);
	CU_ASSERT_EQUAL(hi, 10);
	CU_ASSERT_EQUAL(aloop_transport_get_write_buffer_size(t), 0);
	(void)aloop_transport_get_extra_info(t, "peername", NULL);
	(void)aloop_transport_get_extra_info(t, "socket", NULL);
	(void)aloop_transport_get_extra_info(t, "cipher", NULL);
	CU_ASSERT_PTR_NOT_NULL(aloop_transport_get_extra_info(t,
	    "bytes_written", NULL));
	aloop_transport_close(t);
	aloop_transport_abort(t);
}

/*
 * Run until @fut (a connection's) is done, close @srv (if any), poke the transport, let
 * connection_lost run, poke it again, close the loop, poke it once more,
 * and only then release the future: the transport must survive all of it.
 */
static void
check_future_transport(struct aloop_loop *loop, struct aloop_server *srv,
    struct aloop_future *fut, int *lost)
{
	struct aloop_transport *t = NULL;

	CU_ASSERT_EQUAL_FATAL(aloop_run_until_complete(loop, fut,
	    (void **)&t), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	if (srv != NULL) {
		aloop_server_close(srv);
		aloop_server_release(srv);
	}
	poke_closed(t);
	if (lost != NULL)
		CU_ASSERT(WAIT_UNTIL(loop, *lost == 1, 5.0));
	poke_closed(t);
	/* An explicit reference outlives the future too. */
	aloop_transport_ref(t);
	test_loop_done(loop);
	poke_closed(t);
	aloop_future_release(fut);
	poke_closed(t);
	aloop_transport_release(t);
}

static void
test_tcp_closed_in_made(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv;
	struct aloop_future *fut;
	char ps[16];
	int port;

	srv = start_server(loop, &sp, "127.0.0.1", &port);
	cp.tmpl.on_made = close_in_made;
	snprintf(ps, sizeof(ps), "%d", port);
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", ps, NULL, &fut), 0);
	check_future_transport(loop, srv, fut, &cp.r[0].lost);
	CU_ASSERT_EQUAL(cp.r[0].made, 1);
	CU_ASSERT_EQUAL(cp.r[0].lost, 1);
	CU_ASSERT_EQUAL(cp.r[0].bad, 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* The same, but connection_lost is left for the loop's close to skip. */
static void
test_tcp_loop_closed_before_lost(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv;
	struct aloop_future *fut;
	char ps[16];
	int port;

	srv = start_server(loop, &sp, "127.0.0.1", &port);
	cp.tmpl.on_made = close_in_made;
	snprintf(ps, sizeof(ps), "%d", port);
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", ps, NULL, &fut), 0);
	check_future_transport(loop, srv, fut, NULL);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_unix_closed_in_made(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv = NULL;
	struct aloop_future *fut;
	char path[64];

	snprintf(path, sizeof(path), "/tmp/aloop-life-%ld.sock",
	    (long)getpid());
	(void)unlink(path);
	CU_ASSERT_EQUAL_FATAL(aloop_create_unix_server(loop, &rec_proto,
	    rec_factory, &sp, path, NULL, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	cp.tmpl.on_made = close_in_made;
	CU_ASSERT_EQUAL_FATAL(aloop_create_unix_connection(loop, &rec_proto,
	    rec_factory, &cp, path, NULL, &fut), 0);
	check_future_transport(loop, srv, fut, &cp.r[0].lost);
	CU_ASSERT_EQUAL(cp.r[0].bad, 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
	(void)unlink(path);
}

static void
test_tls_closed_in_made(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_tls_context *sctx = NULL, *cctx = NULL;
	struct aloop_server_options so;
	struct aloop_connection_options co;
	struct aloop_server *srv = NULL;
	struct aloop_future *fut;
	const int *lfd;
	size_t n;
	char ps[16];

	NEED_CERTS(certs);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_SERVER, &sctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(sctx,
	    certs->server_cert, certs->server_key), 0);
	aloop_server_options_init(&so);
	so.ssl = sctx;
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, &sp, "127.0.0.1", "0", &so, &fut), 0);
	aloop_tls_context_release(sctx);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	lfd = aloop_server_sockets(srv, &n);
	snprintf(ps, sizeof(ps), "%d", sock_port(lfd[0]));

	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(ALOOP_TLS_CLIENT, &cctx),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_verify_locations(cctx,
	    certs->ca, NULL), 0);
	aloop_connection_options_init(&co);
	co.ssl = cctx;
	cp.tmpl.on_made = close_in_made;
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", ps, &co, &fut), 0);
	aloop_tls_context_release(cctx);
	check_future_transport(loop, srv, fut, &cp.r[0].lost);
	CU_ASSERT_EQUAL(cp.r[0].bad, 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_pipes_closed_in_made(void)
{
	int fds = count_fds();
	struct aloop_loop *loop;
	struct rec_pool pool;
	struct aloop_future *fut;
	int p[2], writer;

	for (writer = 0; writer < 2; writer++) {
		memset(&pool, 0, sizeof(pool));
		pool.tmpl.on_made = close_in_made;
		loop = test_loop();
		CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
		CU_ASSERT_EQUAL_FATAL((writer ? aloop_connect_write_pipe :
		    aloop_connect_read_pipe)(loop, &rec_proto, rec_factory,
		    &pool, p[writer], &fut), 0);
		check_future_transport(loop, NULL, fut, &pool.r[0].lost);
		CU_ASSERT_EQUAL(pool.r[0].bad, 0);
		(void)close(p[!writer]);
	}
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * connect_accepted_socket, plain and TLS (the server side of a
 * handshake, the peer a TLS client over the other end of a socketpair).
 */
static void
test_accepted_socket_closed_in_made(void)
{
	int fds = count_fds();
	struct aloop_loop *loop;
	struct rec_pool sp, cp;
	struct aloop_tls_context *sctx = NULL, *cctx = NULL;
	struct aloop_connection_options so, co;
	struct aloop_future *fut, *cf;
	int sv[2], tls;

	NEED_CERTS(certs);
	for (tls = 0; tls < 2; tls++) {
		memset(&sp, 0, sizeof(sp));
		memset(&cp, 0, sizeof(cp));
		loop = test_loop();
		CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM |
		    SOCK_CLOEXEC, 0, sv), 0);
		aloop_connection_options_init(&so);
		if (tls) {
			CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(
			    ALOOP_TLS_SERVER, &sctx), 0);
			CU_ASSERT_EQUAL_FATAL(aloop_tls_context_load_cert_chain(
			    sctx, certs->server_cert, certs->server_key), 0);
			so.ssl = sctx;
		}
		sp.tmpl.on_made = close_in_made;
		CU_ASSERT_EQUAL_FATAL(aloop_connect_accepted_socket(loop,
		    &rec_proto, rec_factory, &sp, sv[0], &so, &fut), 0);
		cf = NULL;
		if (tls) {
			aloop_tls_context_release(sctx);
			CU_ASSERT_EQUAL_FATAL(aloop_tls_context_new(
			    ALOOP_TLS_CLIENT, &cctx), 0);
			CU_ASSERT_EQUAL_FATAL(
			    aloop_tls_context_load_verify_locations(cctx,
			    certs->ca, NULL), 0);
			aloop_connection_options_init(&co);
			co.ssl = cctx;
			co.sock = sv[1];
			co.server_hostname = "localhost";
			CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop,
			    &rec_proto, rec_factory, &cp, NULL, NULL, &co,
			    &cf), 0);
			aloop_tls_context_release(cctx);
			sv[1] = -1;
		}
		check_future_transport(loop, NULL, fut, &sp.r[0].lost);
		CU_ASSERT_EQUAL(sp.r[0].made, 1);
		CU_ASSERT_EQUAL(sp.r[0].bad, 0);
		if (cf != NULL)
			aloop_future_release(cf);
		if (sv[1] >= 0)
			(void)close(sv[1]);
	}
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* ------------------------------------------------------------ datagram */

struct dg {
	int	made, lost;
};

static void
dg_made(struct aloop_transport *t, void *state)
{
	struct dg *d = state;

	d->made++;
	aloop_transport_close(t);
}

static void
dg_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct dg *d = state;

	(void)t;
	(void)err;
	d->lost++;
}

static const struct aloop_datagram_protocol dg_proto = {
	.connection_made = dg_made,
	.connection_lost = dg_lost,
};

static int
dg_factory(void *arg, void **state)
{
	*state = arg;
	return 0;
}

static void
datagram_closed_in_made(int family)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_datagram_options o;
	struct aloop_future *fut;
	struct aloop_transport *t = NULL;
	struct dg d = { 0, 0 };
	char path[64];

	aloop_datagram_options_init(&o);
	if (family == AF_UNIX) {
		snprintf(path, sizeof(path), "/tmp/aloop-life-dg-%ld.sock",
		    (long)getpid());
		o.family = AF_UNIX;
		o.local_host = path;
	} else {
		o.local_host = "127.0.0.1";
		o.local_port = "0";
	}
	CU_ASSERT_EQUAL_FATAL(aloop_create_datagram_endpoint(loop, &dg_proto,
	    dg_factory, &d, &o, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_until_complete(loop, fut,
	    (void **)&t), 0);
	CU_ASSERT(aloop_transport_is_closing(t));
	CU_ASSERT_EQUAL(aloop_transport_sendto(t, "x", 1, NULL, 0), 0);
	CU_ASSERT(WAIT_UNTIL(loop, d.lost == 1, 5.0));
	CU_ASSERT(aloop_transport_is_closing(t));
	CU_ASSERT_EQUAL(aloop_transport_sendto(t, "x", 1, NULL, 0), 0);
	CU_ASSERT_EQUAL(aloop_transport_get_write_buffer_size(t), 0);
	(void)aloop_transport_get_extra_info(t, "sockname", NULL);
	aloop_transport_abort(t);
	test_loop_done(loop);
	CU_ASSERT(aloop_transport_is_closing(t));
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(d.made, 1);
	CU_ASSERT_EQUAL(d.lost, 1);
	CU_ASSERT_EQUAL(count_fds(), fds);
	if (family == AF_UNIX)
		(void)unlink(path);
}

static void
test_datagram_closed_in_made(void)
{
	datagram_closed_in_made(AF_INET);
}

static void
test_unix_datagram_closed_in_made(void)
{
	datagram_closed_in_made(AF_UNIX);
}

/* ---------------------------------------------------------- subprocess */

struct sp {
	int	made, exited, lost, close_in_made;
};

static void
sp_made(struct aloop_transport *t, void *state)
{
	struct sp *s = state;

	s->made++;
	if (s->close_in_made)
		aloop_transport_close(t);
}

static void
sp_exited(struct aloop_transport *t, void *state)
{
	struct sp *s = state;

	(void)t;
	s->exited++;
}

static void
sp_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct sp *s = state;

	(void)t;
	(void)err;
	s->lost++;
}

static const struct aloop_subprocess_protocol sp_proto = {
	.connection_made = sp_made,
	.process_exited = sp_exited,
	.connection_lost = sp_lost,
};

/*
 * /bin/true exits before the loop's next turn about half of the time, so
 * connection_lost often runs in the batch that completes the future; run
 * it a few times to meet both orders.
 */
static void
test_subprocess_true(void)
{
	static const char *const argv[] = { "/bin/true", NULL };
	int fds = count_fds();
	struct aloop_loop *loop;
	struct aloop_future *fut;
	struct aloop_transport *t;
	struct sp s;
	int i, rc, code;

	for (i = 0; i < 8; i++) {
		memset(&s, 0, sizeof(s));
		s.close_in_made = i & 1;
		loop = test_loop();
		CU_ASSERT_EQUAL_FATAL(aloop_subprocess_exec(loop, &sp_proto,
		    dg_factory, &s, argv, NULL, &fut), 0);
		t = NULL;
		CU_ASSERT_EQUAL_FATAL(aloop_run_until_complete(loop, fut,
		    (void **)&t), 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(t);
		rc = aloop_subprocess_get_returncode(t, &code);
		CU_ASSERT(rc == 0 || rc == ALOOP_ESTATE);
		CU_ASSERT(aloop_subprocess_get_pid(t) > 0);
		CU_ASSERT(WAIT_UNTIL(loop, s.lost == 1, 5.0));
		CU_ASSERT_EQUAL(aloop_subprocess_get_returncode(t, &code), 0);
		if (!s.close_in_made)
			CU_ASSERT_EQUAL(code, 0);
		CU_ASSERT_PTR_NULL(aloop_subprocess_get_pipe_transport(t, 1));
		CU_ASSERT_EQUAL(aloop_subprocess_send_signal(t, SIGTERM), 0);
		CU_ASSERT(aloop_transport_is_closing(t));
		aloop_transport_close(t);
		test_loop_done(loop);
		CU_ASSERT_EQUAL(aloop_subprocess_get_returncode(t, &code), 0);
		aloop_future_release(fut);
		CU_ASSERT_EQUAL(s.made, 1);
		CU_ASSERT_EQUAL(s.lost, 1);
	}
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * subprocess_shell with its three pipes, closed in connection_made: the
 * subprocess transport stays valid, and its pipe transports are gone
 * (NULL) once their connections are lost.
 */
static void
test_subprocess_pipes_closed_in_made(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_future *fut;
	struct aloop_transport *t = NULL;
	struct sp s = { .close_in_made = 1 };
	int code, i;

	CU_ASSERT_EQUAL_FATAL(aloop_subprocess_shell(loop, &sp_proto,
	    dg_factory, &s, "exec cat", NULL, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_run_until_complete(loop, fut,
	    (void **)&t), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT(aloop_transport_is_closing(t));
	CU_ASSERT(WAIT_UNTIL(loop, s.lost == 1, 5.0));
	for (i = 0; i < 3; i++)
		CU_ASSERT_PTR_NULL(aloop_subprocess_get_pipe_transport(t, i));
	CU_ASSERT_EQUAL(aloop_subprocess_get_returncode(t, &code), 0);
	CU_ASSERT(aloop_subprocess_get_pid(t) > 0);
	CU_ASSERT_EQUAL(aloop_transport_write(t, "x", 1), 0);
	aloop_transport_close(t);
	aloop_transport_abort(t);
	test_loop_done(loop);
	CU_ASSERT(aloop_transport_is_closing(t));
	CU_ASSERT_EQUAL(aloop_subprocess_get_returncode(t, &code), 0);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(s.made, 1);
	CU_ASSERT_EQUAL(s.lost, 1);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
nop_cb(void *arg)
{
	(void)arg;
}

/*
 * A transport's descriptor is not the application's to watch (asyncio
 * raises RuntimeError); once the transport closed it, the number is free.
 */
static void
test_watch_refuses_transport_fd(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *t;
	const int *fdp;
	int port, fd, p[2];

	srv = start_server(loop, &sp, "127.0.0.1", &port);
	t = connect_to(loop, &cp, "127.0.0.1", port);
	fdp = aloop_transport_get_extra_info(t, "socket", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fdp);
	fd = *fdp;
	CU_ASSERT_EQUAL(aloop_add_reader(loop, fd, nop_cb, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_add_writer(loop, fd, nop_cb, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_remove_reader(loop, fd), 0);
	CU_ASSERT_EQUAL(aloop_remove_writer(loop, fd), 0);
	aloop_transport_close(t);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost == 1, 5.0));
	/* The number is free for anyone now (pipe2 takes the lowest). */
	CU_ASSERT_EQUAL_FATAL(pipe2(p, O_CLOEXEC), 0);
	CU_ASSERT(p[0] == fd || p[1] == fd);
	CU_ASSERT_EQUAL(aloop_add_reader(loop, fd, nop_cb, NULL), 0);
	CU_ASSERT_EQUAL(aloop_remove_reader(loop, fd), 1);
	(void)close(p[0]);
	(void)close(p[1]);
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_tcp_closed_in_made),
	TEST(test_tcp_loop_closed_before_lost),
	TEST(test_unix_closed_in_made),
	TEST(test_tls_closed_in_made),
	TEST(test_pipes_closed_in_made),
	TEST(test_accepted_socket_closed_in_made),
	TEST(test_datagram_closed_in_made),
	TEST(test_unix_datagram_closed_in_made),
	TEST(test_subprocess_true),
	TEST(test_subprocess_pipes_closed_in_made),
	TEST(test_watch_refuses_transport_fd),
};

TEST_MAIN("lifetime", cases)
