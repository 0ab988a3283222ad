/*
 * create_connection (SEMANTICS section H): refused connects, every
 * address tried in order with one error or ALOOP_EMULTI, local addresses,
 * adopted sockets, cancellation, and the argument rules.
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <poll.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "net-int.h"
#include "runner.h"
#include "stream_util.h"

/*
 * A loopback port nobody listens on.  The socket stays bound, never
 * listening, until the caller closes *hold: a connect to it is refused,
 * and no test running beside this one can bind or listen on it meanwhile.
 * With reuse, a socket that also sets SO_REUSEADDR (as a connect with a
 * local address does) may bind the port too.
 */
static int
dead_port(int family, int reuse, int *hold)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	if (reuse)
		CU_ASSERT_EQUAL_FATAL(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR,
		    &on, sizeof(on)), 0);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_addr.s_addr =
		    htonl(INADDR_LOOPBACK);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
		len = sizeof(struct sockaddr_in6);
	}
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&ss, len), 0);
	*hold = fd;
	return sock_port(fd);
}

static void
addr_set(struct aloop__addr *a, int family, const char *host, int port)
{
	memset(a, 0, sizeof(*a));
	a->family = family;
	a->socktype = SOCK_STREAM;
	a->protocol = IPPROTO_TCP;
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&a->ss;

		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, host, &s->sin_addr);
		a->len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, host, &s->sin6_addr);
		a->len = sizeof(*s);
	}
}

static void
test_refused(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool cp = { 0 };
	struct aloop_future *fut;
	const struct aloop_error *err;
	char ps[16];
	int hold;

	snprintf(ps, sizeof(ps), "%d", dead_port(AF_INET, 0, &hold));
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", ps, NULL, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), -ECONNREFUSED);
	err = aloop_future_error(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	/* The message names the address. */
	CU_ASSERT_PTR_NOT_NULL(strstr(err->message, "127.0.0.1"));
	CU_ASSERT_EQUAL(cp.n, 0);
	aloop_future_release(fut);
	close(hold);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_every_address_in_order(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop__addrlist *l;
	struct aloop_transport *t = NULL;
	struct aloop_server *srv;
	struct aloop_future *fut;
	const struct sockaddr_in *peer;
	const struct aloop_error *err;
	int port, hold, dead = dead_port(AF_INET, 0, &hold);

	srv = start_server(loop, &sp, NULL, &port);
	l = calloc(1, sizeof(*l) + 3 * sizeof(l->a[0]));
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	/* Two refusals first, then the server: the third one connects. */
	l->n = 3;
	addr_set(&l->a[0], AF_INET, "127.0.0.1", dead);
	addr_set(&l->a[1], AF_INET, "127.0.0.2", dead);
	addr_set(&l->a[2], AF_INET, "127.0.0.1", port);
	CU_ASSERT_EQUAL_FATAL(aloop__create_connection_addrs(loop, &rec_proto,
	    rec_factory, &cp, l, NULL, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&t), 0);
	aloop_future_release(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	peer = aloop_transport_get_extra_info(t, "peername", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL(ntohs(peer->sin_port), port);
	CU_ASSERT_EQUAL(cp.r[0].made, 1);
	aloop_transport_close(t);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost && sp.n == 1 &&
	    sp.r[0].lost, 5.0));

	/* All refused: one code, every attempt named. */
	l->n = 2;
	CU_ASSERT_EQUAL_FATAL(aloop__create_connection_addrs(loop, &rec_proto,
	    rec_factory, &cp, l, NULL, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), -ECONNREFUSED);
	err = aloop_future_error(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err->message, "Multiple exceptions"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err->message, "127.0.0.1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err->message, "127.0.0.2"));
	aloop_future_release(fut);

	/* Different errors: ALOOP_EMULTI.  An IPv6 address has no matching
	 * local address when only an IPv4 one is given. */
	if (have_ipv6()) {
		struct aloop__addrlist *loc = calloc(1, sizeof(*loc) +
		    sizeof(loc->a[0]));

		CU_ASSERT_PTR_NOT_NULL_FATAL(loc);
		loc->n = 1;
		addr_set(&loc->a[0], AF_INET, "127.0.0.1", 0);
		addr_set(&l->a[1], AF_INET6, "::1", dead);
		CU_ASSERT_EQUAL_FATAL(aloop__create_connection_addrs(loop,
		    &rec_proto, rec_factory, &cp, l, loc, &fut), 0);
		CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), ALOOP_EMULTI);
		err = aloop_future_error(fut);
		CU_ASSERT_PTR_NOT_NULL_FATAL(err);
		CU_ASSERT_PTR_NOT_NULL(strstr(err->message,
		    "no matching local address"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err->message,
		    "Connect call failed"));
		aloop_future_release(fut);
		free(loc);
	}
	free(l);
	close(hold);
	aloop_server_close(srv);
	aloop_server_release(srv);
	CU_ASSERT_EQUAL(cp.r[0].bad + sp.r[0].bad, 0);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_local_addr(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_connection_options o;
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *t = NULL;
	struct aloop_future *fut;
	const struct sockaddr_in *sn;
	int port, lport, blocker;
	char ps[16], lps[16];

	srv = start_server(loop, &sp, NULL, &port);
	snprintf(ps, sizeof(ps), "%d", port);
	/* The port stays held, with SO_REUSEADDR as the connect sets it. */
	lport = dead_port(AF_INET, 1, &blocker);
	snprintf(lps, sizeof(lps), "%d", lport);
	aloop_connection_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = lps;
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", ps, &o, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&t), 0);
	aloop_future_release(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	sn = aloop_transport_get_extra_info(t, "sockname", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sn);
	CU_ASSERT_EQUAL(ntohs(sn->sin_port), lport);
	aloop_transport_close(t);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost && sp.n == 1 && sp.r[0].lost,
	    5.0));

	/*
	 * A local address in use: EADDRINUSE, naming the address.  The
	 * holder listens now, beside the first connection's TIME_WAIT.
	 */
	CU_ASSERT_EQUAL(listen(blocker, 1), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", ps, &o, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), -EADDRINUSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(aloop_future_error(fut)->message,
	    lps));
	aloop_future_release(fut);
	close(blocker);
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_local_family_mismatch_and_resolution_error(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_connection_options o;
	struct rec_pool cp = { 0 };
	struct aloop_future *fut;
	const struct aloop_error *err;

	/* An IPv6 local address for an IPv4 peer: nothing left to try. */
	aloop_connection_options_init(&o);
	o.local_host = "::1";
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", "9", &o, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), -EADDRNOTAVAIL);
	err = aloop_future_error(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err->message,
	    "no matching local address"));
	aloop_future_release(fut);
	/* A resolution failure fails the connection with its text. */
	aloop_connection_options_init(&o);
	o.flags = AI_NUMERICHOST;
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "localhost", "9", &o, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), ALOOP_EGAI);
	err = aloop_future_error(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err->message, "localhost"));
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(cp.n, 0);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_resolved_name(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv;
	struct aloop_transport *t;
	int port;

	/* "localhost" goes through the resolver (/etc/hosts). */
	srv = start_server(loop, &sp, NULL, &port);
	t = connect_to(loop, &cp, "localhost", port);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1 && sp.r[0].made, 5.0));
	aloop_transport_abort(t);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost && sp.r[0].lost, 5.0));
	aloop_server_close(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_cancel_closes(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool cp = { 0 };
	struct aloop_future *fut;
	struct sockaddr_in sin;
	int lfd, i, c[200], nc = 0;
	char ps[16];

	/*
	 * A listener that never accepts, with its backlog full, leaves the
	 * next connect pending; cancelling must close that socket.
	 */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	CU_ASSERT_EQUAL_FATAL(listen(lfd, 0), 0);
	snprintf(ps, sizeof(ps), "%d", sock_port(lfd));
	for (i = 0; i < 200; i++) {
		c[nc] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		sin.sin_port = htons((uint16_t)sock_port(lfd));
		(void)connect(c[nc], (struct sockaddr *)&sin, sizeof(sin));
		nc++;
	}
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", ps, NULL, &fut), 0);
	run_for(loop, 0.02);
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 1);
	run_for(loop, 0.02);
	CU_ASSERT(aloop_future_cancelled(fut));
	CU_ASSERT_EQUAL(cp.n, 0);
	aloop_future_release(fut);
	for (i = 0; i < nc; i++)
		close(c[i]);
	close(lfd);
	/* And cancelling before anything ran. */
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", ps, NULL, &fut), 0);
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 1);
	aloop_future_release(fut);
	run_for(loop, 0.02);
	CU_ASSERT_EQUAL(cp.n, 0);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_adopt_connected_socket(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_connection_options o;
	struct rec_pool cp = { 0 };
	struct aloop_transport *t = NULL;
	struct aloop_future *fut;
	int sv[2];
	char buf[8];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	aloop_connection_options_init(&o);
	o.sock = sv[0];
	/* host/port with sock, or neither: EINVAL. */
	CU_ASSERT_EQUAL(aloop_create_connection(loop, &rec_proto, rec_factory,
	    &cp, "127.0.0.1", "1", &o, &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_create_connection(loop, &rec_proto, rec_factory,
	    &cp, NULL, NULL, NULL, &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, NULL, NULL, &o, &fut), 0);
	CU_ASSERT_EQUAL(cp.n, 0);	/* connection_made comes later */
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&t), 0);
	aloop_future_release(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(cp.r[0].made, 1);
	CU_ASSERT_EQUAL(aloop_transport_write(t, "sock", 4), 0);
	CU_ASSERT_EQUAL(read(sv[1], buf, sizeof(buf)), 4);
	CU_ASSERT_EQUAL(write(sv[1], "back", 4), 4);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].nrecv == 4, 5.0));
	close(sv[1]);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost, 5.0));
	CU_ASSERT_EQUAL(cp.r[0].eofs, 1);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_tls_argument_rules(void)
{
	struct aloop_loop *loop = test_loop();
	struct aloop_connection_options o;
	struct rec_pool cp = { 0 };
	struct aloop_future *fut;

	/* server_hostname without ssl. */
	aloop_connection_options_init(&o);
	o.server_hostname = "example.org";
	CU_ASSERT_EQUAL(aloop_create_connection(loop, &rec_proto, rec_factory,
	    &cp, "127.0.0.1", "1", &o, &fut), ALOOP_EINVAL);
	/* ssl with no host and no server_hostname. */
	aloop_connection_options_init(&o);
	o.ssl = ALOOP_TLS_DEFAULT;
	o.sock = 0;
	CU_ASSERT_EQUAL(aloop_create_connection(loop, &rec_proto, rec_factory,
	    &cp, NULL, NULL, &o, &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_create_connection(loop, &rec_proto, rec_factory,
	    &cp, "", "1", &o, &fut), ALOOP_EINVAL);
	/* Missing protocol or factory. */
	CU_ASSERT_EQUAL(aloop_create_connection(loop, NULL, rec_factory,
	    &cp, "127.0.0.1", "1", NULL, &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_create_connection(loop, &rec_proto, NULL,
	    &cp, "127.0.0.1", "1", NULL, &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_create_unix_connection(loop, &rec_proto,
	    rec_factory, &cp, NULL, NULL, &fut), ALOOP_EINVAL);
	test_loop_done(loop);
}

static void
test_loop_closed_while_resolving(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct rec_pool cp = { 0 };
	struct aloop_future *f1, *f2, *f3, *f4, *f5;
	int sv[2];

	/*
	 * Closing the loop while names are being looked up must release
	 * everything (the sanitizer build checks for leaks) and call
	 * nothing back.
	 */
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "localhost", "9", NULL, &f1), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_getaddrinfo(loop, "localhost", "9", NULL,
	    &f2), 0);
	/* Numeric ones too: their callbacks are queued, never run. */
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", "9", NULL, &f3), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, &cp, "127.0.0.1", "0", NULL, &f4), 0);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
	    0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recv(loop, sv[0], 16, &f5), 0);
	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	CU_ASSERT_FALSE(aloop_future_done(f1));
	aloop_future_release(f1);
	aloop_future_release(f2);
	aloop_future_release(f3);
	aloop_future_release(f4);
	aloop_future_release(f5);
	close(sv[0]);
	close(sv[1]);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(cp.n, 0);
	/* The lookups' threads finish on their own, detached. */
	CU_ASSERT_EQUAL(count_fds_settled(fds, 5), fds);
}

static void
test_closed_loop(void)
{
	struct aloop_loop *loop = test_loop();
	struct rec_pool cp = { 0 };
	struct aloop_future *fut;

	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	CU_ASSERT_EQUAL(aloop_create_connection(loop, &rec_proto, rec_factory,
	    &cp, "127.0.0.1", "1", NULL, &fut), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_create_server(loop, &rec_proto, rec_factory,
	    &cp, "127.0.0.1", "0", NULL, &fut), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/*
 * Happy eyeballs (CPython's test_create_connection_happy_eyeballs, and
 * RFC 8305): the first address, ::1, is a listener whose accept queue is
 * full, so its connect hangs; 127.0.0.1 on the same port answers.  With a
 * delay the second connect starts after it and wins; the hanging one is
 * closed.
 */
static void
test_happy_eyeballs(void)
{
	int fds = count_fds();
	struct aloop_loop *loop;
	struct aloop_connection_options o;
	struct aloop_server_options so;
	struct rec_pool sp = { 0 }, cp = { 0 };
	struct aloop_server *srv = NULL;
	struct aloop_transport *t = NULL;
	struct aloop_future *f;
	struct sockaddr_in6 s6;
	const struct sockaddr *peer;
	struct pollfd pfd;
	socklen_t len = sizeof(s6);
	int hang, fill[4], probe, i, port;
	char ps[16];
	double t0;

	if (!have_ipv6())
		return;
	hang = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(hang >= 0);
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_addr = in6addr_loopback;
	CU_ASSERT_FATAL(bind(hang, (struct sockaddr *)&s6, sizeof(s6)) == 0);
	CU_ASSERT_FATAL(listen(hang, 0) == 0);
	CU_ASSERT_FATAL(getsockname(hang, (struct sockaddr *)&s6, &len) == 0);
	port = ntohs(s6.sin6_port);
	/* Fill the accept queue; then a connect must stay in progress. */
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		(void)connect(fill[i], (struct sockaddr *)&s6, sizeof(s6));
	}
	usleep(20000);
	probe = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	(void)connect(probe, (struct sockaddr *)&s6, sizeof(s6));
	pfd.fd = probe;
	pfd.events = POLLOUT;
	i = poll(&pfd, 1, 100);
	(void)close(probe);
	if (i != 0) {
		/* This kernel answers anyway: nothing hangs to race against. */
		for (i = 0; i < 4; i++)
			(void)close(fill[i]);
		(void)close(hang);
		return;
	}

	loop = test_loop();
	snprintf(ps, sizeof(ps), "%d", port);
	aloop_server_options_init(&so);
	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, &sp, "127.0.0.1", ps, &so, &f), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, f, (void **)&srv), 0);
	aloop_future_release(f);

	aloop_connection_options_init(&o);
	CU_ASSERT_EQUAL(o.happy_eyeballs_delay, 0);
	CU_ASSERT_EQUAL(o.interleave, 0);
	o.happy_eyeballs_delay = 0.1;
	t0 = now_mono();
	/* No host: the loopback addresses, ::1 first. */
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, NULL, ps, &o, &f), 0);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&t), 0);
	CU_ASSERT(now_mono() - t0 >= 0.09);
	CU_ASSERT(now_mono() - t0 < 5.0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	peer = aloop_transport_get_extra_info(t, "peername", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peer);
	CU_ASSERT_EQUAL(peer->sa_family, AF_INET);
	CU_ASSERT(WAIT_UNTIL(loop, sp.n == 1, 5.0));
	aloop_transport_close(t);
	aloop_future_release(f);
	CU_ASSERT(WAIT_UNTIL(loop, cp.r[0].lost == 1, 5.0));
	aloop_server_close(srv);
	aloop_server_abort_clients(srv);
	aloop_server_release(srv);
	test_loop_done(loop);
	for (i = 0; i < 4; i++)
		(void)close(fill[i]);
	(void)close(hang);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* Every address fails: the errors of all of them, as in turn. */
static void
test_happy_eyeballs_all_refused(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_connection_options o;
	struct rec_pool cp = { 0 };
	struct aloop_future *f;
	const struct aloop_error *err;
	int l, port;
	char ps[16];

	/* A port nobody listens on: bound, never listening. */
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(l >= 0);
	{
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CU_ASSERT_FATAL(bind(l, (struct sockaddr *)&sin,
		    sizeof(sin)) == 0);
	}
	port = sock_port(l);
	snprintf(ps, sizeof(ps), "%d", port);
	aloop_connection_options_init(&o);
	o.happy_eyeballs_delay = 0.05;
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, &cp, NULL, ps, &o, &f), 0);
	CU_ASSERT_EQUAL(wait_future(loop, f, NULL), -ECONNREFUSED);
	err = aloop_future_error(f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err->message, "127.0.0.1"));
	aloop_future_release(f);
	CU_ASSERT_EQUAL(cp.n, 0);
	(void)close(l);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_refused),
	TEST(test_happy_eyeballs),
	TEST(test_happy_eyeballs_all_refused),
	TEST(test_every_address_in_order),
	TEST(test_local_addr),
	TEST(test_local_family_mismatch_and_resolution_error),
	TEST(test_resolved_name),
	TEST(test_cancel_closes),
	TEST(test_adopt_connected_socket),
	TEST(test_tls_argument_rules),
	TEST(test_loop_closed_while_resolving),
	TEST(test_closed_loop),
};

TEST_MAIN("connect", cases)
