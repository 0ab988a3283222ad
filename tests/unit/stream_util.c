/*
 * Helpers shared by the stream tests (see stream_util.h).
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "stream_util.h"

static void
rec_made(struct aloop_transport *t, void *state)
{
	struct rec *r = state;

	if (r->made || r->lost)
		r->bad++;
	r->made++;
	r->t = t;
	if (r->pause_in_made)
		aloop_transport_pause_reading(t);
	if (r->on_made != NULL)
		r->on_made(r);
}

static void
rec_data(struct aloop_transport *t, void *state, const void *data, size_t len)
{
	struct rec *r = state;
	size_t room;

	if (!r->made || r->eofs || r->lost || len == 0 || t != r->t)
		r->bad++;
	if (r->nrecv < sizeof(r->data)) {
		room = sizeof(r->data) - r->nrecv;
		memcpy(r->data + r->nrecv, data, len < room ? len : room);
	}
	r->nrecv += len;
	if (r->echo)
		(void)aloop_transport_write(t, data, len);
	if (r->abort_on_data) {
		aloop_transport_abort(t);
		/* Everything after is a harmless no-op on a closing transport. */
		aloop_transport_close(t);
		aloop_transport_pause_reading(t);
		(void)aloop_transport_write(t, data, len);
	}
}

static int
rec_eof(struct aloop_transport *t, void *state)
{
	struct rec *r = state;

	(void)t;
	if (!r->made || r->eofs || r->lost)
		r->bad++;
	r->eofs++;
	if (r->on_eof != NULL)
		r->on_eof(r);
	return r->keep_open;
}

static void
rec_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct rec *r = state;

	(void)t;
	if (!r->made || r->lost)
		r->bad++;
	r->lost++;
	r->lost_code = err != NULL ? err->code : 0;
	if (err != NULL && (err->message == NULL || err->code >= 0))
		r->bad++;
}

static void
rec_pause(struct aloop_transport *t, void *state)
{
	struct rec *r = state;

	r->pauses++;
	r->size_at_pause = aloop_transport_get_write_buffer_size(t);
}

static void
rec_resume(struct aloop_transport *t, void *state)
{
	struct rec *r = state;

	r->resumes++;
	r->size_at_resume = aloop_transport_get_write_buffer_size(t);
}

const struct aloop_protocol rec_proto = {
	.connection_made = rec_made,
	.data_received = rec_data,
	.eof_received = rec_eof,
	.connection_lost = rec_lost,
	.pause_writing = rec_pause,
	.resume_writing = rec_resume,
};

int
rec_factory(void *arg, void **state)
{
	struct rec_pool *pool = arg;

	if (pool->refuse != 0)
		return pool->refuse;
	if (pool->n >= REC_POOL_MAX)
		return ALOOP_ENOMEM;
	pool->r[pool->n] = pool->tmpl;
	*state = &pool->r[pool->n++];
	return 0;
}

double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
stop_cb(void *arg)
{
	aloop_stop(arg);
}

void
run_for(struct aloop_loop *loop, double secs)
{
	aloop_handle_t h;

	CU_ASSERT_EQUAL_FATAL(aloop_call_later(loop, secs, stop_cb, loop, &h),
	    0);
	CU_ASSERT_EQUAL(aloop_run_forever(loop), 0);
	aloop_handle_cancel(loop, h);
}

struct aloop_loop *
test_loop(void)
{
	struct aloop_loop *loop = NULL;

	CU_ASSERT_EQUAL_FATAL(aloop_loop_new(&loop), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
	return loop;
}

void
test_loop_done(struct aloop_loop *loop)
{
	/* Let deferred callbacks (connection_lost) run first. */
	run_for(loop, 0.01);
	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);
}

int
wait_future(struct aloop_loop *loop, struct aloop_future *fut, void **res)
{
	if (!WAIT_UNTIL(loop, aloop_future_done(fut), 10.0))
		return ALOOP_ETIMEDOUT;
	return aloop_future_result(fut, res);
}

int
sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

struct aloop_server *
start_server(struct aloop_loop *loop, struct rec_pool *pool, const char *host,
    int *port)
{
	struct aloop_server *srv = NULL;
	struct aloop_future *fut = NULL;
	const int *fds;
	size_t n;

	CU_ASSERT_EQUAL_FATAL(aloop_create_server(loop, &rec_proto,
	    rec_factory, pool, host != NULL ? host : "127.0.0.1", "0", NULL,
	    &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&srv), 0);
	aloop_future_release(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	fds = aloop_server_sockets(srv, &n);
	CU_ASSERT_FATAL(n >= 1);
	*port = sock_port(fds[0]);
	return srv;
}

struct aloop_transport *
connect_to(struct aloop_loop *loop, struct rec_pool *pool, const char *host,
    int port)
{
	struct aloop_transport *t = NULL;
	struct aloop_future *fut = NULL;
	char ps[16];

	snprintf(ps, sizeof(ps), "%d", port);
	CU_ASSERT_EQUAL_FATAL(aloop_create_connection(loop, &rec_proto,
	    rec_factory, pool, host, ps, NULL, &fut), 0);
	CU_ASSERT_EQUAL_FATAL(wait_future(loop, fut, (void **)&t), 0);
	aloop_future_release(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	return t;
}

int
raw_connect(int family, const char *host, int port)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	int fd;

	if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (family == AF_INET) {
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		s4.sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, host, &s4.sin_addr);
		if (connect(fd, (struct sockaddr *)&s4, sizeof(s4)) == 0)
			return fd;
	} else {
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		s6.sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, host, &s6.sin6_addr);
		if (connect(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0)
			return fd;
	}
	close(fd);
	return -1;
}

int
have_ipv6(void)
{
	struct sockaddr_in6 s6;
	int fd, ok;

	if ((fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_addr = in6addr_loopback;
	ok = bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
	close(fd);
	return ok;
}
