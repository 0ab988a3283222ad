/*
 * Datagram endpoints over real loopback sockets: echo round trips on IPv4
 * and IPv6, connected endpoints, ICMP errors that must not end an
 * endpoint, argument errors, empty datagrams, flow control and close.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "loop-test.h"
#include "runner.h"

#define WATCHDOG	20.0

/* Run until the future is done, for WATCHDOG seconds at most. */
#define run(loop, f, result)	run_bounded((loop), (f), (result), WATCHDOG)

struct ep {
	struct aloop_transport	*t;
	int			 made, lost, errors, paused, resumed;
	int			 last_error;
	int			 echo;		/* send every datagram back */
	int			 pause_on_made;
	int			 refuse;	/* factory error to return */
	int			 abort_on_recv;	/* abort inside datagram_received */
	size_t			 pause_at[2];	/* pause_reading at these counts */
	unsigned		 seq_errors;	/* "%04zu" payloads out of order */
	int			 check_seq;
	size_t			 nrecv;
	size_t			 lastlen;
	char			 last[2048];
	struct sockaddr_storage	 from;
	socklen_t		 fromlen;
	struct aloop_future	*waiter;	/* completed on any event */
};

static void
wake(struct ep *e)
{
	if (e->waiter != NULL) {
		(void)aloop_future_set_result(e->waiter, NULL, NULL);
		aloop_future_release(e->waiter);
		e->waiter = NULL;
	}
}

static int
ep_factory(void *arg, void **state)
{
	struct ep *e = arg;

	if (e->refuse)
		return e->refuse;
	*state = e;
	return 0;
}

static void
ep_made(struct aloop_transport *t, void *state)
{
	struct ep *e = state;

	CU_ASSERT_EQUAL(e->made, 0);
	e->made++;
	e->t = t;
	if (e->pause_on_made)
		aloop_transport_pause_reading(t);
	wake(e);
}

static void
ep_received(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	struct ep *e = state;

	CU_ASSERT_EQUAL(e->made, 1);
	CU_ASSERT_EQUAL(e->lost, 0);
	CU_ASSERT_PTR_NOT_NULL(addr);
	e->nrecv++;
	e->lastlen = len;
	if (len < sizeof(e->last)) {
		memcpy(e->last, data, len);
		e->last[len] = '\0';
	}
	if (addrlen <= sizeof(e->from)) {
		memcpy(&e->from, addr, addrlen);
		e->fromlen = addrlen;
	}
	if (e->echo)
		CU_ASSERT_EQUAL(aloop_transport_sendto(t, data, len, addr,
		    addrlen), 0);
	if (e->check_seq) {
		char want[8];

		snprintf(want, sizeof(want), "%04zu", e->nrecv - 1);
		if (len != 4 || memcmp(data, want, 4) != 0)
			e->seq_errors++;
	}
	if (e->nrecv == e->pause_at[0] || e->nrecv == e->pause_at[1])
		aloop_transport_pause_reading(t);
	if (e->abort_on_recv) {
		aloop_transport_abort(t);
		/* The datagram stays readable until the callback returns. */
		CU_ASSERT_EQUAL(memcmp(data, e->last, len < sizeof(e->last) ?
		    len : 0), 0);
		CU_ASSERT_EQUAL(aloop_transport_sendto(t, data, len, addr,
		    addrlen), 0);
	}
	wake(e);
}

static void
ep_error(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct ep *e = state;

	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_PTR_NOT_NULL(err->message);
	CU_ASSERT_FALSE(aloop_transport_is_closing(t));
	e->errors++;
	e->last_error = err->code;
	wake(e);
}

static void
ep_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct ep *e = state;

	(void)t;
	CU_ASSERT_PTR_NULL(err);
	CU_ASSERT_EQUAL(e->made, 1);
	e->lost++;
	e->t = NULL;
	wake(e);
}

static void
ep_pause(struct aloop_transport *t, void *state)
{
	struct ep *e = state;

	(void)t;
	e->paused++;
	wake(e);
}

static void
ep_resume(struct aloop_transport *t, void *state)
{
	struct ep *e = state;

	(void)t;
	e->resumed++;
	wake(e);
}

static const struct aloop_datagram_protocol ep_proto = {
	.connection_made = ep_made,
	.datagram_received = ep_received,
	.error_received = ep_error,
	.connection_lost = ep_lost,
	.pause_writing = ep_pause,
	.resume_writing = ep_resume,
};

/* Run the loop until @cond holds for @e (at most the watchdog). */
#define WAIT_FOR(loop, e, cond) do {					\
	while (!(cond)) {						\
		struct aloop_future *w_;				\
		CU_ASSERT_EQUAL_FATAL(aloop_future_new((loop), &w_), 0); \
		(e)->waiter = aloop_future_ref(w_);			\
		if (run((loop), w_, NULL) != 0) {			\
			aloop_future_release(w_);			\
			CU_FAIL_FATAL("timed out: " #cond);		\
		}							\
		aloop_future_release(w_);				\
	}								\
} while (0)

/* Run the loop for one short slice, whatever happens. */
static void
spin(struct aloop_loop *loop)
{
	struct aloop_future *f;

	CU_ASSERT_EQUAL_FATAL(aloop_future_new(loop, &f), 0);
	CU_ASSERT_EQUAL(aloop_call_later(loop, 0.001, future_watchdog_cb, f, NULL), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, f, NULL),
	    ALOOP_ECANCELLED);
	aloop_future_release(f);
}

static struct aloop_loop *
loop_open(void)
{
	struct aloop_loop *loop = NULL;

	CU_ASSERT_EQUAL_FATAL(aloop_loop_new(&loop), 0);
	return loop;
}

/* Create an endpoint for @e; the future's outcome. */
static int
ep_open(struct aloop_loop *loop, struct ep *e,
    const struct aloop_datagram_options *o)
{
	struct aloop_future *f = NULL;
	void *res = NULL;
	int rc;

	rc = aloop_create_datagram_endpoint(loop, &ep_proto, ep_factory, e, o,
	    &f);
	if (rc != 0)
		return rc;
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	rc = run(loop, f, &res);
	if (rc == 0) {
		CU_ASSERT_PTR_NOT_NULL(res);
		CU_ASSERT_PTR_EQUAL(res, e->t);
		CU_ASSERT_EQUAL(e->made, 1);
	}
	aloop_future_release(f);
	return rc;
}

static void
ep_close(struct aloop_loop *loop, struct ep *e)
{
	if (e->t == NULL)
		return;
	aloop_transport_close(e->t);
	aloop_transport_close(e->t);
	CU_ASSERT_EQUAL(e->lost, 0);	/* never from inside close */
	WAIT_FOR(loop, e, e->lost > 0);
	CU_ASSERT_EQUAL(e->lost, 1);
}

/* host/port strings of the address @t is bound to. */
static void
sockname_of(struct aloop_transport *t, char *host, size_t hostlen,
    char *port, size_t portlen)
{
	const struct sockaddr *sa;
	size_t len = 0;

	sa = aloop_transport_get_extra_info(t, "sockname", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sa);
	CU_ASSERT_FATAL(getnameinfo(sa, (socklen_t)len, host, hostlen, port,
	    portlen, NI_NUMERICHOST | NI_NUMERICSERV) == 0);
}

static void
echo_round_trip(const char *host)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct ep srv, cli;
	char h[64], p[16];
	const struct sockaddr *peer;
	const int *fdp;
	size_t len;
	int fds = count_fds();

	loop = loop_open();
	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	srv.echo = 1;
	aloop_datagram_options_init(&o);
	o.local_host = host;
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &srv, &o), 0);
	sockname_of(srv.t, h, sizeof(h), p, sizeof(p));
	CU_ASSERT_STRING_EQUAL(h, host);
	CU_ASSERT_PTR_NULL(aloop_transport_get_extra_info(srv.t, "peername",
	    NULL));
	fdp = aloop_transport_get_extra_info(srv.t, "socket", NULL);
	CU_ASSERT_PTR_NOT_NULL(fdp);
	if (fdp != NULL)
		CU_ASSERT(*fdp >= 0);

	aloop_datagram_options_init(&o);
	o.remote_host = h;
	o.remote_port = p;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &cli, &o), 0);
	peer = aloop_transport_get_extra_info(cli.t, "peername", &len);
	CU_ASSERT_PTR_NOT_NULL(peer);

	CU_ASSERT_EQUAL(aloop_transport_sendto(cli.t, "ping", 4, NULL, 0), 0);
	WAIT_FOR(loop, &cli, cli.nrecv == 1);
	CU_ASSERT_EQUAL(srv.nrecv, 1);
	CU_ASSERT_STRING_EQUAL(srv.last, "ping");
	CU_ASSERT_STRING_EQUAL(cli.last, "ping");
	CU_ASSERT_EQUAL(cli.fromlen, len);
	if (peer != NULL)
		CU_ASSERT_EQUAL(memcmp(&cli.from, peer, len), 0);
	/* The connected endpoint may name its peer, but no one else. */
	CU_ASSERT_EQUAL(aloop_transport_sendto(cli.t, "pong", 4, peer,
	    (socklen_t)len), 0);
	WAIT_FOR(loop, &cli, cli.nrecv == 2);
	CU_ASSERT_EQUAL(aloop_transport_sendto(cli.t, "x", 1,
	    (struct sockaddr *)&cli.from, 1), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_get_write_buffer_size(cli.t), 0);
	/* Stream calls mean nothing here. */
	CU_ASSERT_EQUAL(aloop_transport_write(cli.t, "x", 1), ALOOP_ENOTSUP);

	ep_close(loop, &cli);
	ep_close(loop, &srv);
	CU_ASSERT_EQUAL(cli.errors, 0);
	CU_ASSERT_EQUAL(srv.errors, 0);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_echo_ipv4(void)
{
	echo_round_trip("127.0.0.1");
}

static void
test_echo_ipv6(void)
{
	echo_round_trip("::1");
}

/* Unconnected: an address per send, none without one. */
static void
test_unconnected_sendto(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	struct ep a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &a, &o), 0);
	/* Only a family: an unbound socket that binds on first send. */
	aloop_datagram_options_init(&o);
	o.family = AF_INET;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &b, &o), 0);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "hello", 5, NULL, 0),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, NULL, 5,
	    aloop_transport_get_extra_info(a.t, "sockname", NULL),
	    sizeof(struct sockaddr_in)), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "hello", 5,
	    aloop_transport_get_extra_info(a.t, "sockname", NULL),
	    sizeof(struct sockaddr_in)), 0);
	WAIT_FOR(loop, &a, a.nrecv == 1);
	CU_ASSERT_STRING_EQUAL(a.last, "hello");
	ep_close(loop, &a);
	ep_close(loop, &b);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* The table set_protocol hands an endpoint to: counts, and wakes @e. */
struct other {
	struct ep	*e;
	int		 nrecv, lost;
};

static void
other_received(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	struct other *o = state;

	(void)t;
	(void)addr;
	(void)addrlen;
	CU_ASSERT_EQUAL(len, 3);
	CU_ASSERT_EQUAL(memcmp(data, "two", 3), 0);
	o->nrecv++;
	wake(o->e);
}

static void
other_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct other *o = state;

	(void)t;
	CU_ASSERT_PTR_NULL(err);
	o->lost++;
	wake(o->e);
}

static const struct aloop_datagram_protocol other_proto = {
	.datagram_received = other_received,
	.connection_lost = other_lost,
};

/*
 * asyncio's set_protocol on a datagram endpoint: the next datagram and
 * connection_lost go to the new table and state, the old see nothing.
 */
static void
test_set_protocol(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	const struct sockaddr *to;
	struct ep a, b;
	struct other other = { &a, 0, 0 };

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &a, &o), 0);
	aloop_datagram_options_init(&o);
	o.family = AF_INET;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &b, &o), 0);
	to = aloop_transport_get_extra_info(a.t, "sockname", NULL);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "one", 3, to,
	    sizeof(struct sockaddr_in)), 0);
	WAIT_FOR(loop, &a, a.nrecv == 1);
	/* Held past connection_lost, for the last call below. */
	aloop_transport_ref(a.t);
	CU_ASSERT_EQUAL(aloop_transport_set_protocol(a.t, NULL, &other),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_transport_set_protocol(a.t, &other_proto,
	    &other), 0);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol(a.t), &other_proto);
	CU_ASSERT_PTR_EQUAL(aloop_transport_get_protocol_state(a.t), &other);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "two", 3, to,
	    sizeof(struct sockaddr_in)), 0);
	WAIT_FOR(loop, &a, other.nrecv == 1);
	CU_ASSERT_EQUAL(a.nrecv, 1);
	aloop_transport_close(a.t);
	WAIT_FOR(loop, &a, other.lost == 1);
	CU_ASSERT_EQUAL(a.lost, 0);
	/* Gone: nothing to hand over any more. */
	CU_ASSERT_EQUAL(aloop_transport_set_protocol(a.t, &ep_proto, &a),
	    ALOOP_ESTATE);
	aloop_transport_release(a.t);
	ep_close(loop, &b);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_empty_datagram(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	struct ep srv, cli;
	char h[64], p[16];

	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	srv.echo = 1;
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &srv, &o), 0);
	sockname_of(srv.t, h, sizeof(h), p, sizeof(p));
	aloop_datagram_options_init(&o);
	o.remote_host = h;
	o.remote_port = p;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &cli, &o), 0);
	CU_ASSERT_EQUAL(aloop_transport_sendto(cli.t, "", 0, NULL, 0), 0);
	WAIT_FOR(loop, &cli, cli.nrecv == 1);
	CU_ASSERT_EQUAL(srv.lastlen, 0);
	CU_ASSERT_EQUAL(cli.lastlen, 0);
	ep_close(loop, &cli);
	ep_close(loop, &srv);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* A port nobody listens on, found by binding and closing a socket. */
static void
dead_port(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	CU_ASSERT_FATAL(fd >= 0);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)sin, sizeof(*sin)) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)sin, &len) == 0);
	close(fd);
}

/*
 * The ICMP "port unreachable" a send provokes reaches error_received, and
 * the endpoint goes on receiving (asyncio's
 * test_datagram_send_to_non_listening_address).
 */
static void
test_send_to_no_listener(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	struct sockaddr_in dead, me;
	struct ep cli, other;
	char port[16];
	const void *sn;
	int fd;

	memset(&cli, 0, sizeof(cli));
	memset(&other, 0, sizeof(other));
	dead_port(&dead);
	snprintf(port, sizeof(port), "%u", ntohs(dead.sin_port));
	aloop_datagram_options_init(&o);
	o.remote_host = "127.0.0.1";
	o.remote_port = port;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &cli, &o), 0);
	CU_ASSERT_EQUAL(aloop_transport_sendto(cli.t, "anyone?", 7, NULL, 0),
	    0);
	WAIT_FOR(loop, &cli, cli.errors > 0);
	CU_ASSERT_EQUAL(cli.last_error, -ECONNREFUSED);
	CU_ASSERT_FALSE(aloop_transport_is_closing(cli.t));
	CU_ASSERT_EQUAL(cli.lost, 0);

	/* Someone takes the port and answers: it still gets through. */
	sn = aloop_transport_get_extra_info(cli.t, "sockname", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sn);
	memcpy(&me, sn, sizeof(me));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&dead, sizeof(dead)) == 0);
	CU_ASSERT_EQUAL(sendto(fd, "late", 4, 0, (struct sockaddr *)&me,
	    sizeof(me)), 4);
	WAIT_FOR(loop, &cli, cli.nrecv == 1);
	CU_ASSERT_STRING_EQUAL(cli.last, "late");
	close(fd);

	/* An unconnected endpoint sending into the void keeps receiving. */
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &other, &o), 0);
	CU_ASSERT_EQUAL(aloop_transport_sendto(other.t, "void", 4,
	    (struct sockaddr *)&dead, sizeof(dead)), 0);
	CU_ASSERT_EQUAL(aloop_transport_sendto(cli.t, "still", 5, NULL, 0), 0);
	sn = aloop_transport_get_extra_info(other.t, "sockname", NULL);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(sendto(fd, "here", 4, 0, sn, sizeof(me)), 4);
	WAIT_FOR(loop, &other, other.nrecv == 1);
	CU_ASSERT_STRING_EQUAL(other.last, "here");
	close(fd);

	ep_close(loop, &cli);
	ep_close(loop, &other);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_argument_errors(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct aloop_future *f = (struct aloop_future *)&f;
	struct ep e;
	int fd, fds = count_fds();

	loop = loop_open();
	memset(&e, 0, sizeof(e));
	aloop_datagram_options_init(&o);
	CU_ASSERT_EQUAL(aloop_create_datagram_endpoint(loop, &ep_proto,
	    ep_factory, &e, &o, &f), ALOOP_EINVAL);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_EQUAL(aloop_create_datagram_endpoint(loop, &ep_proto,
	    ep_factory, &e, NULL, &f), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_create_datagram_endpoint(loop, NULL,
	    ep_factory, &e, NULL, &f), ALOOP_EINVAL);
	/* Local IPv4, remote IPv6. */
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	o.remote_host = "::1";
	o.remote_port = "9";
	CU_ASSERT_EQUAL(aloop_create_datagram_endpoint(loop, &ep_proto,
	    ep_factory, &e, &o, &f), ALOOP_EINVAL);
	/* A family the address does not have. */
	aloop_datagram_options_init(&o);
	o.family = AF_INET6;
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL(aloop_create_datagram_endpoint(loop, &ep_proto,
	    ep_factory, &e, &o, &f), ALOOP_EINVAL);
	/* A socket and an address at once; a socket that is no datagram. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	aloop_datagram_options_init(&o);
	o.sock = fd;
	o.local_port = "0";
	CU_ASSERT_EQUAL(aloop_create_datagram_endpoint(loop, &ep_proto,
	    ep_factory, &e, &o, &f), ALOOP_EINVAL);
	o.local_port = NULL;
	CU_ASSERT_EQUAL(aloop_create_datagram_endpoint(loop, &ep_proto,
	    ep_factory, &e, &o, &f), ALOOP_EINVAL);
	close(fd);
	CU_ASSERT_EQUAL(e.made, 0);
	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	aloop_datagram_options_init(&o);
	o.family = AF_INET;
	CU_ASSERT_EQUAL(aloop_create_datagram_endpoint(loop, &ep_proto,
	    ep_factory, &e, &o, &f), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* A bind that fails closes the socket and fails the future. */
static void
test_bind_failure(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct ep a, b;
	char h[64], p[16];
	int fds = count_fds();

	loop = loop_open();
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &a, &o), 0);
	sockname_of(a.t, h, sizeof(h), p, sizeof(p));
	o.local_port = p;
	CU_ASSERT_EQUAL(ep_open(loop, &b, &o), -EADDRINUSE);
	CU_ASSERT_EQUAL(b.made, 0);
	ep_close(loop, &a);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* reuse_port lets two endpoints share a port; allow_broadcast sets
 * SO_BROADCAST. */
static void
test_socket_options(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	struct ep a, b;
	char h[64], p[16];
	const int *fdp;
	int on = 0;
	socklen_t len = sizeof(on);

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	o.reuse_port = 1;
	o.allow_broadcast = 1;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &a, &o), 0);
	sockname_of(a.t, h, sizeof(h), p, sizeof(p));
	o.local_port = p;
	CU_ASSERT_EQUAL(ep_open(loop, &b, &o), 0);
	fdp = aloop_transport_get_extra_info(b.t, "socket", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fdp);
	CU_ASSERT_EQUAL(getsockopt(*fdp, SOL_SOCKET, SO_BROADCAST, &on, &len),
	    0);
	CU_ASSERT(on != 0);
	ep_close(loop, &a);
	ep_close(loop, &b);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

static void
test_factory_refuses(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct ep e;
	int fds = count_fds();

	loop = loop_open();
	memset(&e, 0, sizeof(e));
	e.refuse = -EPERM;
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL(ep_open(loop, &e, &o), -EPERM);
	CU_ASSERT_EQUAL(e.made, 0);
	CU_ASSERT_EQUAL(e.lost, 0);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * Write flow control, on an adopted AF_UNIX datagram socket pair: unlike
 * UDP on loopback, it pushes back when the peer does not read, so sends
 * queue, pause_writing comes, and draining the peer resumes and empties
 * the queue.  close() then waits for the queue to flush.
 */
static void
test_flow_control_and_close_flushes(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	char chunk[1024], buf[2048];
	struct ep e;
	int sv[2], i, sent = 0, got = 0;

	memset(&e, 0, sizeof(e));
	memset(chunk, 'z', sizeof(chunk));
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0,
	    sv) == 0);
	aloop_datagram_options_init(&o);
	o.sock = sv[0];
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &e, &o), 0);
	CU_ASSERT_EQUAL(aloop_transport_set_write_buffer_limits(e.t, 8192,
	    2048), 0);
	for (i = 0; i < 10000 && e.paused == 0; i++) {
		CU_ASSERT_EQUAL(aloop_transport_sendto(e.t, chunk,
		    sizeof(chunk), NULL, 0), 0);
		sent++;
	}
	CU_ASSERT_EQUAL(e.paused, 1);
	CU_ASSERT(aloop_transport_get_write_buffer_size(e.t) > 8192);
	/* Drain the peer until the transport has flushed everything. */
	while (aloop_transport_get_write_buffer_size(e.t) > 0 ||
	    got < sent) {
		ssize_t n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);

		if (n == (ssize_t)sizeof(chunk)) {
			got++;
			continue;
		}
		CU_ASSERT_FATAL(n == -1 && errno == EAGAIN);
		WAIT_FOR(loop, &e, e.resumed > 0 ||
		    aloop_transport_get_write_buffer_size(e.t) == 0 ||
		    recv(sv[1], buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) > 0);
	}
	CU_ASSERT_EQUAL(e.resumed, 1);
	CU_ASSERT_EQUAL(got, sent);

	/* Queue again, then close: everything still arrives first. */
	e.paused = e.resumed = 0;
	sent = got = 0;
	for (i = 0; i < 10000 && aloop_transport_get_write_buffer_size(e.t) ==
	    0; i++) {
		CU_ASSERT_EQUAL(aloop_transport_sendto(e.t, chunk,
		    sizeof(chunk), NULL, 0), 0);
		sent++;
	}
	CU_ASSERT(aloop_transport_get_write_buffer_size(e.t) > 0);
	aloop_transport_close(e.t);
	CU_ASSERT_EQUAL(aloop_transport_sendto(e.t, chunk, 1, NULL, 0), 0);
	while (e.lost == 0) {
		ssize_t n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);

		if (n == (ssize_t)sizeof(chunk)) {
			got++;
			continue;
		}
		CU_ASSERT_FATAL(n == -1 && errno == EAGAIN);
		WAIT_FOR(loop, &e, e.lost > 0 ||
		    recv(sv[1], buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) > 0);
	}
	while (recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) ==
	    (ssize_t)sizeof(chunk))
		got++;
	CU_ASSERT_EQUAL(got, sent);
	CU_ASSERT_EQUAL(e.lost, 1);
	close(sv[1]);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/*
 * A datagram larger than any UDP one (possible on AF_UNIX) is reported to
 * error_received, never delivered cut short; the next one still arrives.
 */
static void
test_oversize_datagram(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	struct ep e;
	char *big;
	int sv[2], sz = 256 * 1024;
	size_t n = 100 * 1024;

	memset(&e, 0, sizeof(e));
	big = calloc(1, n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0,
	    sv) == 0);
	CU_ASSERT_EQUAL(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz,
	    sizeof(sz)), 0);
	CU_ASSERT_EQUAL(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz,
	    sizeof(sz)), 0);
	aloop_datagram_options_init(&o);
	o.sock = sv[0];
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &e, &o), 0);
	CU_ASSERT_EQUAL(send(sv[1], big, n, 0), (ssize_t)n);
	CU_ASSERT_EQUAL(send(sv[1], "next", 4, 0), 4);
	WAIT_FOR(loop, &e, e.nrecv == 1);
	CU_ASSERT_EQUAL(e.errors, 1);
	CU_ASSERT_EQUAL(e.last_error, -EMSGSIZE);
	CU_ASSERT_STRING_EQUAL(e.last, "next");
	/* Nor may one be sent: no aloop endpoint could receive it. */
	CU_ASSERT_EQUAL(aloop_transport_sendto(e.t, big, n, NULL, 0),
	    ALOOP_EINVAL);
	ep_close(loop, &e);
	close(sv[1]);
	free(big);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/*
 * A protocol that ignores pause_writing cannot grow the queue without
 * bound: past the cap, datagrams are dropped and error_received says
 * ENOBUFS; the endpoint stays open and drains once the peer reads.
 */
static void
test_queue_is_bounded(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	char chunk[1024], buf[2048];
	struct ep e;
	int sv[2], i;
	size_t peak = 0, sz;

	memset(&e, 0, sizeof(e));
	memset(chunk, 'q', sizeof(chunk));
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0,
	    sv) == 0);
	aloop_datagram_options_init(&o);
	o.sock = sv[0];
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &e, &o), 0);
	for (i = 0; i < 4000 && e.errors == 0; i++) {
		CU_ASSERT_EQUAL(aloop_transport_sendto(e.t, chunk,
		    sizeof(chunk), NULL, 0), 0);
		sz = aloop_transport_get_write_buffer_size(e.t);
		peak = sz > peak ? sz : peak;
	}
	CU_ASSERT_EQUAL(e.errors, 1);
	CU_ASSERT_EQUAL(e.last_error, -ENOBUFS);
	CU_ASSERT_EQUAL(e.paused, 1);
	/* 16 times the 64 KiB default high-water mark. */
	CU_ASSERT(peak <= 16 * 64 * 1024);
	CU_ASSERT(peak > 15 * 64 * 1024);
	CU_ASSERT_FALSE(aloop_transport_is_closing(e.t));
	/* Drain the peer and let the loop refill it, until all is sent. */
	for (i = 0; i < 10000 &&
	    aloop_transport_get_write_buffer_size(e.t) > 0; i++) {
		while (recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
		spin(loop);
	}
	CU_ASSERT_EQUAL(aloop_transport_get_write_buffer_size(e.t), 0);
	CU_ASSERT_EQUAL(e.resumed, 1);
	ep_close(loop, &e);
	close(sv[1]);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* abort drops what is queued and ends at once. */
static void
test_abort_drops(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	char chunk[1024], buf[2048];
	struct ep e;
	int sv[2], i, sent = 0, got = 0;

	memset(&e, 0, sizeof(e));
	memset(chunk, 'a', sizeof(chunk));
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0,
	    sv) == 0);
	aloop_datagram_options_init(&o);
	o.sock = sv[0];
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &e, &o), 0);
	for (i = 0; i < 10000 && aloop_transport_get_write_buffer_size(e.t) ==
	    0; i++) {
		CU_ASSERT_EQUAL(aloop_transport_sendto(e.t, chunk,
		    sizeof(chunk), NULL, 0), 0);
		sent++;
	}
	CU_ASSERT(aloop_transport_get_write_buffer_size(e.t) > 0);
	aloop_transport_abort(e.t);
	aloop_transport_abort(e.t);
	aloop_transport_close(e.t);
	WAIT_FOR(loop, &e, e.lost > 0);
	while (recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		got++;
	CU_ASSERT(got < sent);
	CU_ASSERT_EQUAL(e.lost, 1);
	close(sv[1]);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* An endpoint aborted from inside datagram_received gets no more. */
static void
test_abort_in_callback(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct ep a, b;
	const void *sn;
	int i, fds = count_fds();

	loop = loop_open();
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.abort_on_recv = 1;
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &a, &o), 0);
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &b, &o), 0);
	sn = aloop_transport_get_extra_info(a.t, "sockname", NULL);
	for (i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "burst", 5, sn,
		    sizeof(struct sockaddr_in)), 0);
	WAIT_FOR(loop, &a, a.lost > 0);
	CU_ASSERT_EQUAL(a.nrecv, 1);
	CU_ASSERT_EQUAL(a.lost, 1);
	ep_close(loop, &b);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * A burst: the endpoint turns to recvmmsg batches, pausing in the middle of
 * one keeps the rest for after resume_reading, and every datagram arrives
 * once, in order.
 */
static void
test_burst_and_pause(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct ep a, b;
	const void *sa, *sb;
	char msg[8];
	size_t i, n = 100;

	loop = loop_open();
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.check_seq = 1;
	a.pause_at[0] = 20;
	a.pause_at[1] = 45;
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &a, &o), 0);
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &b, &o), 0);
	sa = aloop_transport_get_extra_info(a.t, "sockname", NULL);
	sb = aloop_transport_get_extra_info(b.t, "sockname", NULL);
	for (i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "%04zu", i);
		CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, msg, 4, sa,
		    sizeof(struct sockaddr_in)), 0);
	}
	WAIT_FOR(loop, &a, a.nrecv == 20);
	/* A round trip through b: the loop ran, a stayed paused. */
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "self", 4, sb,
	    sizeof(struct sockaddr_in)), 0);
	WAIT_FOR(loop, &b, b.nrecv == 1);
	CU_ASSERT_EQUAL(a.nrecv, 20);
	aloop_transport_resume_reading(a.t);
	WAIT_FOR(loop, &a, a.nrecv == 45);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "self", 4, sb,
	    sizeof(struct sockaddr_in)), 0);
	WAIT_FOR(loop, &b, b.nrecv == 2);
	CU_ASSERT_EQUAL(a.nrecv, 45);
	aloop_transport_resume_reading(a.t);
	WAIT_FOR(loop, &a, a.nrecv == n);
	CU_ASSERT_EQUAL(a.seq_errors, 0);
	CU_ASSERT_EQUAL(a.errors, 0);
	ep_close(loop, &a);
	ep_close(loop, &b);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* Paused in connection_made: nothing is delivered until resumed. */
static void
test_pause_reading(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop = loop_open();
	struct ep a, b;
	const void *sn;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.pause_on_made = 1;
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &a, &o), 0);
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &b, &o), 0);
	CU_ASSERT_FALSE(aloop_transport_is_reading(a.t));
	sn = aloop_transport_get_extra_info(a.t, "sockname", NULL);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "1", 1, sn,
	    sizeof(struct sockaddr_in)), 0);
	/* A round trip through b proves the loop ran past a's datagram. */
	sn = aloop_transport_get_extra_info(b.t, "sockname", NULL);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "self", 4, sn,
	    sizeof(struct sockaddr_in)), 0);
	WAIT_FOR(loop, &b, b.nrecv == 1);
	CU_ASSERT_EQUAL(a.nrecv, 0);
	aloop_transport_resume_reading(a.t);
	CU_ASSERT(aloop_transport_is_reading(a.t));
	WAIT_FOR(loop, &a, a.nrecv == 1);
	CU_ASSERT_STRING_EQUAL(a.last, "1");
	ep_close(loop, &a);
	ep_close(loop, &b);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

/* Host names go through the loop's resolver (/etc/hosts has localhost). */
static void
test_host_name(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct ep a, b;
	char h[64], p[16];
	int fds = count_fds();

	loop = loop_open();
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.echo = 1;
	aloop_datagram_options_init(&o);
	o.family = AF_INET;
	o.local_host = "localhost";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &a, &o), 0);
	sockname_of(a.t, h, sizeof(h), p, sizeof(p));
	CU_ASSERT_STRING_EQUAL(h, "127.0.0.1");
	aloop_datagram_options_init(&o);
	o.family = AF_INET;
	o.remote_host = "localhost";
	o.remote_port = p;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &b, &o), 0);
	CU_ASSERT_EQUAL(aloop_transport_sendto(b.t, "named", 5, NULL, 0), 0);
	WAIT_FOR(loop, &b, b.nrecv == 1);
	CU_ASSERT_STRING_EQUAL(b.last, "named");
	ep_close(loop, &a);
	ep_close(loop, &b);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* Closing the loop with an endpoint open releases its socket. */
static void
test_loop_close_releases(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct ep e;
	int fds = count_fds();

	loop = loop_open();
	memset(&e, 0, sizeof(e));
	aloop_datagram_options_init(&o);
	o.local_host = "127.0.0.1";
	o.local_port = "0";
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &e, &o), 0);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	CU_ASSERT_EQUAL(e.lost, 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * UNIX datagram endpoints bound to paths (CPython's
 * test_create_datagram_endpoint_sock_unix and the local_addr path case):
 * a server echoing to a client connected to it, which has a path too so
 * that the echo can come back; a stale socket file is replaced.
 */
static void
test_unix_paths(void)
{
	struct aloop_datagram_options o;
	struct aloop_loop *loop;
	struct ep srv, cli;
	const struct sockaddr_un *sun;
	char spath[64], cpath[64];
	size_t len;
	int fds = count_fds(), stale;
	struct sockaddr_un sa;

	snprintf(spath, sizeof(spath), "/tmp/aloop-dg-s-%ld", (long)getpid());
	snprintf(cpath, sizeof(cpath), "/tmp/aloop-dg-c-%ld", (long)getpid());
	(void)unlink(cpath);
	/* A socket file left behind at the server's path. */
	(void)unlink(spath);
	stale = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(stale >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, spath);
	CU_ASSERT_FATAL(bind(stale, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	(void)close(stale);

	loop = loop_open();
	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	srv.echo = 1;
	aloop_datagram_options_init(&o);
	o.family = AF_UNIX;
	o.local_host = spath;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &srv, &o), 0);
	sun = aloop_transport_get_extra_info(srv.t, "sockname", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sun);
	CU_ASSERT_EQUAL(sun->sun_family, AF_UNIX);
	CU_ASSERT_STRING_EQUAL(sun->sun_path, spath);

	aloop_datagram_options_init(&o);
	o.family = AF_UNIX;
	o.local_host = cpath;
	o.remote_host = spath;
	CU_ASSERT_EQUAL_FATAL(ep_open(loop, &cli, &o), 0);
	CU_ASSERT_EQUAL(aloop_transport_sendto(cli.t, "ping", 4, NULL, 0), 0);
	WAIT_FOR(loop, &cli, cli.nrecv == 1);
	CU_ASSERT_EQUAL(srv.nrecv, 1);
	CU_ASSERT_EQUAL(cli.lastlen, 4);
	CU_ASSERT_EQUAL(memcmp(cli.last, "ping", 4), 0);
	ep_close(loop, &cli);
	ep_close(loop, &srv);

	/* Ports mean nothing here; a path too long for sun_path either. */
	aloop_datagram_options_init(&o);
	o.family = AF_UNIX;
	o.local_host = spath;
	o.local_port = "0";
	CU_ASSERT_EQUAL(ep_open(loop, &srv, &o), ALOOP_EINVAL);
	o.local_port = NULL;
	o.local_host = "/tmp/aloop-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	CU_ASSERT_EQUAL(ep_open(loop, &srv, &o), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
	(void)unlink(spath);
	(void)unlink(cpath);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_echo_ipv4),
	TEST(test_unix_paths),
	TEST(test_echo_ipv6),
	TEST(test_unconnected_sendto),
	TEST(test_set_protocol),
	TEST(test_empty_datagram),
	TEST(test_send_to_no_listener),
	TEST(test_argument_errors),
	TEST(test_bind_failure),
	TEST(test_socket_options),
	TEST(test_factory_refuses),
	TEST(test_flow_control_and_close_flushes),
	TEST(test_oversize_datagram),
	TEST(test_queue_is_bounded),
	TEST(test_abort_drops),
	TEST(test_abort_in_callback),
	TEST(test_pause_reading),
	TEST(test_burst_and_pause),
	TEST(test_host_name),
	TEST(test_loop_close_releases),
};

TEST_MAIN("dgram", cases)
