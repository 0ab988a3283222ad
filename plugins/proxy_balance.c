/*
 * The proxy's balancing and health checks (see proxy_balance.h).
 */
#define _GNU_SOURCE		/* memmem */

#include <sys/socket.h>

#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "proxy_balance.h"

#define BALANCE_FIRST		0
#define BALANCE_ROUND_ROBIN	1
#define BALANCE_LEAST_CONN	2
#define BALANCE_SOURCE_HASH	3

#define EXPECT_MAX		1024	/* bytes of an expect string */

struct balancer;
struct check;

/* One upstream's state. */
struct member {
	struct balancer		*b;
	const struct balancer_target *target;
	char			 labels[160];	/* upstream="..." */
	int			 up;
	unsigned		 streak;	/* checks in a row against it */
	size_t			 active;
	double			 opened, failures;
	aloop_handle_t		 timer;		/* its next check */
	struct check		*cur;		/* the check in flight */
	char			 why[128];	/* its last failure */
};

/*
 * One health check: a connection, what came back, and its deadline.  It
 * lives until both its connect's callback and its transport are done,
 * which may be after its verdict and after the next check started.
 */
struct check {
	struct member		*m;
	struct aloop_future	*fut;
	struct aloop_transport	*t;
	aloop_handle_t		 deadline;
	unsigned		 refs;		/* the connect, the transport */
	int			 done;
	size_t			 got;		/* bytes kept in buf */
	char			 buf[2 * EXPECT_MAX];
};

struct balancer {
	struct aloop_loop	*loop;
	char			*listener;
	unsigned		 worker;
	int			 method;
	size_t			 n;
	struct member		*m;
	size_t			 next;		/* round_robin's turn */
	/* Health checks; interval 0: none. */
	double			 interval, timeout;
	unsigned		 rise, fall;
	char			*send;
	char			*expect;
	size_t			 send_len, expect_len;
	unsigned		 refs;		/* 1 + checks in flight */
	int			 freed;
};

static void	check_start(void *arg);

/* ------------------------------------------------------------ figures */

static void
publish(struct member *m)
{
	struct balancer *b = m->b;

	if (b->loop == NULL)
		return;
	/* Outside a worker (tests of the library) there is nowhere to put
	 * them: the calls say so and nothing else changes. */
	(void)aloop_daemon_metric_set(b->listener, "aloop_proxy_upstream_up",
	    m->labels, 0, m->up);
	(void)aloop_daemon_metric_set(b->listener,
	    "aloop_proxy_upstream_connections", m->labels, 0,
	    (double)m->active);
	(void)aloop_daemon_metric_set(b->listener,
	    "aloop_proxy_upstream_connections_total", m->labels, 1, m->opened);
	(void)aloop_daemon_metric_set(b->listener,
	    "aloop_proxy_upstream_failures_total", m->labels, 1, m->failures);
}

static void
make_labels(struct member *m)
{
	const char *s = m->target->text;
	size_t k = 0;

	k += (size_t)snprintf(m->labels, sizeof(m->labels), "upstream=\"");
	for (; *s != '\0' && k < sizeof(m->labels) - 4; s++) {
		if (*s == '"' || *s == '\\')
			m->labels[k++] = '\\';
		m->labels[k++] = *s;
	}
	m->labels[k++] = '"';
	m->labels[k] = '\0';
}

/* --------------------------------------------------------- the checks */

static void
balancer_unref(struct balancer *b)
{
	if (--b->refs > 0)
		return;
	free(b->m);
	free(b->listener);
	free(b->send);
	free(b->expect);
	free(b);
}

static void
check_unref(struct check *c)
{
	struct balancer *b = c->m->b;

	if (--c->refs > 0)
		return;
	free(c);
	balancer_unref(b);
}

static void
set_state(struct member *m, int up)
{
	struct balancer *b = m->b;

	if (m->up == up)
		return;
	m->up = up;
	/* Every worker checks; one says so. */
	if (b->worker == 0) {
		if (up)
			aloop_log(ALOOP_LOG_NOTICE, "proxy %s: upstream %s is "
			    "up again (%u check%s passed)", b->listener,
			    m->target->text, b->rise, b->rise == 1 ? "" : "s");
		else
			aloop_log(ALOOP_LOG_WARNING, "proxy %s: upstream %s is "
			    "down (%u check%s failed, the last: %s)",
			    b->listener, m->target->text, b->fall,
			    b->fall == 1 ? "" : "s", m->why);
	}
	publish(m);
}

/* @c has its verdict: end it, count it, and plan the next check. */
static void
verdict(struct check *c, int ok, const char *why)
{
	struct member *m = c->m;
	struct balancer *b = m->b;

	if (c->done)
		return;
	c->done = 1;
	aloop_handle_cancel(b->loop, c->deadline);
	c->deadline = ALOOP_HANDLE_NONE;
	if (c->t != NULL) {
		/* A failed check need not linger in a close. */
		if (ok)
			aloop_transport_close(c->t);
		else
			aloop_transport_abort(c->t);
	}
	if (c->fut != NULL)
		(void)aloop_future_cancel(c->fut);
	if (m->cur != c || b->freed)
		return;
	m->cur = NULL;
	if (!ok)
		snprintf(m->why, sizeof(m->why), "%s", why);
	if (ok == m->up)
		m->streak = 0;
	else if (++m->streak >= (ok ? b->rise : b->fall)) {
		m->streak = 0;
		set_state(m, ok);
	}
	if (aloop_call_later(b->loop, b->interval, check_start, m,
	    &m->timer) != 0)
		m->timer = ALOOP_HANDLE_NONE;
}

static int
check_factory(void *arg, void **state)
{
	*state = arg;
	return 0;
}

static void
check_made(struct aloop_transport *t, void *state)
{
	struct check *c = state;
	struct balancer *b = c->m->b;

	c->t = t;
	c->refs++;	/* until check_lost */
	if (c->done) {
		aloop_transport_abort(t);
		return;
	}
	if (b->send != NULL &&
	    aloop_transport_write(t, b->send, b->send_len) != 0) {
		verdict(c, 0, "cannot send");
		return;
	}
	if (b->expect == NULL)
		verdict(c, 1, NULL);
}

static void
check_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct check *c = state;
	struct balancer *b = c->m->b;
	size_t keep, take;

	(void)t;
	if (c->done || b->expect == NULL)
		return;
	/* Keep the tail that could still start a match, then look. */
	while (len > 0) {
		take = len < sizeof(c->buf) - c->got ? len :
		    sizeof(c->buf) - c->got;
		memcpy(c->buf + c->got, data, take);
		c->got += take;
		data = (const char *)data + take;
		len -= take;
		if (memmem(c->buf, c->got, b->expect, b->expect_len) != NULL) {
			verdict(c, 1, NULL);
			return;
		}
		keep = b->expect_len - 1;
		if (c->got > keep) {
			memmove(c->buf, c->buf + c->got - keep, keep);
			c->got = keep;
		}
	}
}

static int
check_eof(struct aloop_transport *t, void *state)
{
	(void)t;
	verdict(state, 0, "closed before the expected reply");
	return 0;
}

static void
check_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct check *c = state;

	(void)t;
	verdict(c, 0, err != NULL ? err->message : "closed");
	c->t = NULL;
	check_unref(c);
}

static const struct aloop_protocol check_proto = {
	.connection_made = check_made,
	.data_received = check_data,
	.eof_received = check_eof,
	.connection_lost = check_lost,
};

static void
check_deadline(void *arg)
{
	struct check *c = arg;

	c->deadline = ALOOP_HANDLE_NONE;
	verdict(c, 0, "check timed out");
}

static void
check_connected(struct aloop_future *fut, void *arg)
{
	struct check *c = arg;
	const struct aloop_error *err;

	c->fut = NULL;
	if (aloop_future_result(fut, NULL) != 0)
		verdict(c, 0, (err = aloop_future_error(fut)) != NULL ?
		    err->message : "cancelled");
	aloop_future_release(fut);
	check_unref(c);
}

static void
check_start(void *arg)
{
	struct member *m = arg;
	struct balancer *b = m->b;
	const struct balancer_target *u = m->target;
	struct aloop_future *fut;
	struct check *c;
	int rc;

	m->timer = ALOOP_HANDLE_NONE;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		if (aloop_call_later(b->loop, b->interval, check_start, m,
		    &m->timer) != 0)
			m->timer = ALOOP_HANDLE_NONE;
		return;
	}
	c->m = m;
	c->deadline = ALOOP_HANDLE_NONE;
	c->refs = 1;		/* the connect's */
	b->refs++;		/* the check's */
	m->cur = c;
	if (u->path != NULL)
		rc = aloop_create_unix_connection(b->loop, &check_proto,
		    check_factory, c, u->path, NULL, &fut);
	else
		rc = aloop_create_connection(b->loop, &check_proto,
		    check_factory, c, u->host, u->port, NULL, &fut);
	if (rc == 0 && aloop_future_add_done_callback(fut, check_connected,
	    c) != 0) {
		(void)aloop_future_cancel(fut);
		aloop_future_release(fut);
		rc = ALOOP_ENOMEM;
	}
	if (rc != 0) {
		verdict(c, 0, aloop_strerror(rc));
		check_unref(c);
		return;
	}
	c->fut = fut;
	if (aloop_call_later(b->loop, b->timeout, check_deadline, c,
	    &c->deadline) != 0)
		c->deadline = ALOOP_HANDLE_NONE;
}

/* ------------------------------------------------------------ settings */

static int
read_checks(struct balancer *b, const struct aloop_settings *hc)
{
	static const char *const names[] = { "interval", "timeout", "rise",
	    "fall", "send", "expect", NULL };
	double interval = 2.0, timeout = -1;
	long long rise = 2, fall = 3;
	const char *send = NULL, *expect = NULL;
	int bad = 0;

	if (aloop_settings_type(hc) != ALOOP_SETTINGS_GROUP) {
		aloop_settings_error(hc, "expected a group { ... }");
		return ALOOP_ECONFIG;
	}
	bad |= aloop_settings_check_names(hc, names) != 0;
	bad |= aloop_settings_get_double(hc, "interval", &interval) ==
	    ALOOP_ECONFIG;
	bad |= aloop_settings_get_double(hc, "timeout", &timeout) ==
	    ALOOP_ECONFIG;
	bad |= aloop_settings_get_int(hc, "rise", &rise) == ALOOP_ECONFIG;
	bad |= aloop_settings_get_int(hc, "fall", &fall) == ALOOP_ECONFIG;
	bad |= aloop_settings_get_string(hc, "send", &send) == ALOOP_ECONFIG;
	bad |= aloop_settings_get_string(hc, "expect", &expect) ==
	    ALOOP_ECONFIG;
	if (timeout < 0)
		timeout = interval < 1.0 ? interval : 1.0;
	if (!(interval >= 0.05 && interval <= 3600)) {
		aloop_settings_error(aloop_settings_get(hc, "interval"),
		    "out of range (0.05..3600 s)");
		bad = 1;
	}
	if (!(timeout >= 0.01 && timeout <= interval)) {
		aloop_settings_error(aloop_settings_get(hc, "timeout"),
		    "out of range (0.01 s..the interval)");
		bad = 1;
	}
	if (rise < 1 || rise > 100 || fall < 1 || fall > 100) {
		aloop_settings_error(aloop_settings_get(hc, rise < 1 ||
		    rise > 100 ? "rise" : "fall"), "out of range (1..100)");
		bad = 1;
	}
	if (send != NULL && *send == '\0')
		send = NULL;
	if (expect != NULL && (*expect == '\0' ||
	    strlen(expect) > EXPECT_MAX)) {
		aloop_settings_error(aloop_settings_get(hc, "expect"),
		    "expected 1 to %d bytes", EXPECT_MAX);
		bad = 1;
	}
	if (bad)
		return ALOOP_ECONFIG;
	b->interval = interval;
	b->timeout = timeout;
	b->rise = (unsigned)rise;
	b->fall = (unsigned)fall;
	if ((send != NULL && (b->send = strdup(send)) == NULL) ||
	    (expect != NULL && (b->expect = strdup(expect)) == NULL))
		return ALOOP_ENOMEM;
	b->send_len = send != NULL ? strlen(send) : 0;
	b->expect_len = expect != NULL ? strlen(expect) : 0;
	return 0;
}

int
balancer_new(struct aloop_loop *loop, const char *listener, unsigned worker,
    const struct aloop_settings *settings, size_t n,
    const struct balancer_target *targets, struct balancer **out)
{
	static const char *const methods[] = { "first", "round_robin",
	    "least_conn", "source_hash", NULL };
	const struct aloop_settings *hc;
	const char *method = "round_robin";
	struct balancer *b;
	int rc = 0;

	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->listener = strdup(listener)) == NULL ||
	    (b->m = calloc(n > 0 ? n : 1, sizeof(*b->m))) == NULL) {
		rc = ALOOP_ENOMEM;
		goto fail;
	}
	b->loop = loop;
	b->worker = worker;
	b->n = n;
	b->refs = 1;
	if (aloop_settings_get_string(settings, "balance", &method) ==
	    ALOOP_ECONFIG)
		rc = ALOOP_ECONFIG;
	for (b->method = 0; methods[b->method] != NULL; b->method++)
		if (strcmp(methods[b->method], method) == 0)
			break;
	if (methods[b->method] == NULL) {
		aloop_settings_error(aloop_settings_get(settings, "balance"),
		    "expected \"first\", \"round_robin\", \"least_conn\" or "
		    "\"source_hash\"");
		rc = ALOOP_ECONFIG;
	}
	if ((hc = aloop_settings_get(settings, "health_check")) != NULL) {
		int r = read_checks(b, hc);

		if (r != 0 && rc != ALOOP_ENOMEM)
			rc = r;
	}
	if (rc != 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct member *m = &b->m[i];

		m->b = b;
		m->target = &targets[i];
		m->up = 1;
		m->timer = ALOOP_HANDLE_NONE;
		make_labels(m);
		publish(m);
		/* The first checks at once, so a dead one is known soon. */
		if (loop != NULL && b->interval > 0 && aloop_call_soon(loop,
		    check_start, m, &m->timer) != 0)
			m->timer = ALOOP_HANDLE_NONE;
	}
	*out = b;
	return 0;
fail:
	if (b != NULL)
		balancer_unref(b);
	return rc;
}

void
balancer_free(struct balancer *b)
{
	if (b == NULL)
		return;
	b->freed = 1;
	for (size_t i = 0; i < b->n; i++) {
		struct member *m = &b->m[i];

		if (b->loop != NULL)
			aloop_handle_cancel(b->loop, m->timer);
		m->timer = ALOOP_HANDLE_NONE;
		if (m->cur != NULL)
			verdict(m->cur, 0, "stopped");
	}
	balancer_unref(b);
}

/* -------------------------------------------------------------- picking */

static uint64_t
source_hash(const struct sockaddr *sa, socklen_t len)
{
	const unsigned char *p = NULL;
	uint64_t h = 14695981039346656037u;
	size_t n = 0;

	if (sa != NULL && sa->sa_family == AF_INET &&
	    len >= (socklen_t)sizeof(struct sockaddr_in)) {
		p = (const void *)&((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr;
		n = 4;
	} else if (sa != NULL && sa->sa_family == AF_INET6 &&
	    len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		p = (const void *)&((const struct sockaddr_in6 *)(const void *)
		    sa)->sin6_addr;
		n = 16;
	}
	while (n-- > 0)
		h = (h ^ *p++) * 1099511628211u;
	return h;
}

size_t
balancer_order(struct balancer *b, const struct sockaddr *client,
    socklen_t len, size_t *order)
{
	size_t k = 0, start = 0, up = 0;

	for (size_t i = 0; i < b->n; i++)
		up += b->m[i].up;
	switch (b->method) {
	case BALANCE_ROUND_ROBIN:
	case BALANCE_LEAST_CONN:
		start = b->next++;
		break;
	case BALANCE_SOURCE_HASH:
		start = (size_t)source_hash(client, len);
		break;
	default:
		break;
	}
	/* Those up from @start on, in turn (all of them if none is). */
	for (size_t j = 0; j < b->n; j++) {
		size_t i = (start + j) % b->n;

		if (b->m[i].up || up == 0)
			order[k++] = i;
	}
	if (b->method == BALANCE_LEAST_CONN) {
		/* Fewest active first; the turn above breaks ties. */
		for (size_t i = 1; i < k; i++)
			for (size_t j = i; j > 0 && b->m[order[j]].active <
			    b->m[order[j - 1]].active; j--) {
				size_t t = order[j];

				order[j] = order[j - 1];
				order[j - 1] = t;
			}
	}
	return k;
}

void
balancer_opened(struct balancer *b, size_t i)
{
	b->m[i].active++;
	b->m[i].opened++;
	publish(&b->m[i]);
}

void
balancer_closed(struct balancer *b, size_t i)
{
	if (b->m[i].active > 0)
		b->m[i].active--;
	publish(&b->m[i]);
}

void
balancer_failed(struct balancer *b, size_t i)
{
	b->m[i].failures++;
	publish(&b->m[i]);
}
