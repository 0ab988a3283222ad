/*
 * create_connection and create_unix_connection: resolve without blocking,
 * then try every address in turn with a non-blocking connect, binding the
 * local address when asked, until one succeeds; the caller's future gets
 * the transport, or every attempt's error.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <aloop/server.h>
#include <aloop/tls.h>

#include "loop-int.h"
#include "net-int.h"
#include "transport-int.h"

struct attempt {
	struct aloop_loop		*loop;
	struct aloop_future		*fut;		/* the caller's */
	const struct aloop_protocol	*proto;
	aloop_protocol_factory_fn	 factory;
	void				*factory_arg;
	struct aloop_tls_context	*ssl;		/* a reference, or DEFAULT */
	char				*server_hostname;
	double				 hs_timeout, sd_timeout;
	double				 close_timeout;
	int				 refs;
	int				 finished;	/* no more work */
	int				 is_unix;
	struct aloop_future		*rfut, *lfut;	/* resolving */
	struct aloop__addrlist		*remote, *local;
	size_t				 idx;
	int				 fd;
	struct event			*wev;
	aloop_handle_t			 start;
	/* Happy eyeballs (RFC 8305): connects racing, staggered. */
	double				 he_delay;	/* 0: one at a time */
	int				 interleave;
	struct flight			*flights;	/* remote->n of them */
	aloop_handle_t			 stagger;
	/* What failed so far, for the final error. */
	char				*errs;
	size_t				 nerrs;
	int				 code;
	int				 same_code;
	struct aloop__resource		 res;
};

/* One connect in flight while happy eyeballs races several. */
struct flight {
	struct attempt		*a;
	int			 fd;		/* -1: slot unused or done */
	struct event		*wev;
	size_t			 idx;		/* in a->remote */
};

static void	attempt_try_next(struct attempt *a);
static void	he_start_next(struct attempt *a);
static void	he_close_all(struct attempt *a);

void
aloop_connection_options_init(struct aloop_connection_options *o)
{
	memset(o, 0, sizeof(*o));
	o->family = AF_UNSPEC;
	o->sock = -1;
	o->ssl_handshake_timeout = 60.0;
	o->ssl_shutdown_timeout = 30.0;
	o->happy_eyeballs_delay = 0;
	o->interleave = 0;
	o->close_timeout = ALOOP__CLOSE_TIMEOUT_DEFAULT;
}

static void
attempt_unref(struct attempt *a)
{
	if (--a->refs > 0)
		return;
	aloop_future_release(a->fut);
	if (a->ssl != NULL && a->ssl != ALOOP_TLS_DEFAULT)
		aloop_tls_context_release(a->ssl);
	free(a->server_hostname);
	free(a->remote);
	free(a->local);
	free(a->errs);
	free(a->flights);
	free(a);
}

static void
attempt_close_fd(struct attempt *a)
{
	he_close_all(a);
	if (a->wev != NULL) {
		event_free(a->wev);
		a->wev = NULL;
	}
	if (a->fd >= 0) {
		(void)close(a->fd);
		a->fd = -1;
	}
}

static void	attempt_remote_cb(struct aloop_future *f, void *arg);
static void	attempt_local_cb(struct aloop_future *f, void *arg);
static void	attempt_fut_done(struct aloop_future *f, void *arg);

/* Stop every piece of work; drops the work's reference once. */
static void
attempt_finish(struct attempt *a)
{
	if (a->finished)
		return;
	a->finished = 1;
	attempt_close_fd(a);
	if (a->start != ALOOP_HANDLE_NONE) {
		aloop_handle_cancel(a->loop, a->start);
		a->start = ALOOP_HANDLE_NONE;
	}
	aloop_handle_cancel(a->loop, a->stagger);
	a->stagger = ALOOP_HANDLE_NONE;
	aloop__loop_untrack(a->loop, &a->res);
	attempt_unref(a);
}

static void
attempt_drop_resolver(struct attempt *a, struct aloop_future **fp,
    aloop_future_done_fn cb)
{
	/*
	 * A callback already scheduled (the future is done) still runs and
	 * releases the future itself; otherwise it is ours to drop.
	 */
	if (*fp == NULL || aloop_future_remove_done_callback(*fp, cb, a) == 0)
		return;
	(void)aloop_future_cancel(*fp);
	aloop_future_release(*fp);
	*fp = NULL;
	attempt_unref(a);
}

static void
attempt_on_loop_close(struct aloop__resource *res)
{
	struct attempt *a = (struct attempt *)(void *)
	    ((char *)res - offsetof(struct attempt, res));

	/*
	 * Nothing runs after close, not even callbacks already queued:
	 * drop each pending one's reference as if it had run.
	 */
	a->refs++;
	a->start = ALOOP_HANDLE_NONE;
	a->stagger = ALOOP_HANDLE_NONE;
	if (a->rfut != NULL) {
		(void)aloop_future_remove_done_callback(a->rfut,
		    attempt_remote_cb, a);
		aloop_future_release(a->rfut);
		a->rfut = NULL;
		attempt_unref(a);
	}
	if (a->lfut != NULL) {
		(void)aloop_future_remove_done_callback(a->lfut,
		    attempt_local_cb, a);
		aloop_future_release(a->lfut);
		a->lfut = NULL;
		attempt_unref(a);
	}
	(void)aloop_future_remove_done_callback(a->fut, attempt_fut_done, a);
	attempt_unref(a);	/* the done-callback's */
	a->finished = 1;
	attempt_close_fd(a);
	attempt_unref(a);	/* the work's */
	attempt_unref(a);
}

/* Remember one failure for the final error. */
static void
attempt_record(struct attempt *a, int code, const char *fmt, ...)
{
	char msg[ALOOP__ADDRSTRLEN + 256], *p;
	va_list ap;
	size_t have = a->errs != NULL ? strlen(a->errs) : 0, add;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (a->nerrs == 0) {
		a->code = code;
		a->same_code = 1;
	} else if (code != a->code)
		a->same_code = 0;
	a->nerrs++;
	add = strlen(msg) + 3;
	if ((p = realloc(a->errs, have + add)) == NULL)
		return;
	a->errs = p;
	snprintf(p + have, add, "%s%s", have > 0 ? ", " : "", msg);
}

static void
attempt_fail_all(struct attempt *a)
{
	if (a->nerrs == 0)
		(void)aloop_future_set_error(a->fut, -EHOSTUNREACH,
		    "no address to connect to");
	else if (a->nerrs == 1)
		(void)aloop_future_set_error(a->fut, a->code, "%s", a->errs);
	else
		(void)aloop_future_set_error(a->fut,
		    a->same_code ? a->code : ALOOP_EMULTI,
		    "Multiple exceptions: %s", a->errs != NULL ? a->errs : "");
	attempt_finish(a);
}

/* The socket in a->fd is connected: make the transport. */
static void
attempt_connected(struct attempt *a)
{
	struct aloop_transport *t = NULL;
	void *state = NULL;
	int fd = a->fd, rc;

	if (a->wev != NULL) {
		event_free(a->wev);
		a->wev = NULL;
	}
	a->fd = -1;
	if (!a->is_unix)
		aloop__sock_set_nodelay(fd);
	if (a->ssl != NULL) {
		/* The TLS module completes the future after the handshake. */
		rc = aloop__tls_transport_new(a->loop, fd, a->ssl, 0,
		    a->server_hostname, a->hs_timeout, a->sd_timeout, a->proto,
		    a->factory, a->factory_arg, a->fut, &t);
		if (rc == 0 && t != NULL)
			(void)aloop_transport_set_close_timeout(t,
			    a->close_timeout);
		if (rc != 0)
			(void)aloop_future_set_error(a->fut, rc,
			    "cannot start TLS: %s", aloop_strerror(rc));
		attempt_finish(a);
		return;
	}
	if ((rc = a->factory(a->factory_arg, &state)) != 0) {
		aloop__sock_close_reset(fd);
		(void)aloop_future_set_error(a->fut, rc,
		    "the protocol factory refused the connection");
		attempt_finish(a);
		return;
	}
	rc = aloop__stream_transport_new(a->loop, fd, ALOOP__STREAM_SOCKET,
	    a->proto, state, 1, &t);
	if (rc != 0) {
		(void)aloop_future_set_error(a->fut, rc, NULL);
		attempt_finish(a);
		return;
	}
	(void)aloop_transport_set_close_timeout(t, a->close_timeout);
	/* Hold the transport across connection_made, which may close it. */
	aloop__transport_ref(t);
	aloop__stream_transport_made(t);
	(void)aloop__future_set_transport(a->fut, t);
	aloop__transport_unref(t);
	attempt_finish(a);
}

static void
attempt_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;
	const struct aloop__addr *r = &a->remote->a[a->idx - 1];
	char addr[ALOOP__ADDRSTRLEN];
	socklen_t len = sizeof(int);
	int err = 0;

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0) {
		attempt_connected(a);
		return;
	}
	attempt_record(a, -err, "Connect call failed %s: %s",
	    aloop__sockaddr_str((const struct sockaddr *)&r->ss, r->len,
	    addr, sizeof(addr)), strerror(err));
	attempt_close_fd(a);
	attempt_try_next(a);
}

/* Bind @fd to the first local address of @family; 0, 1 (none), or -errno. */
static int
attempt_bind_local(struct attempt *a, int fd, int family)
{
	const struct aloop__addr *l;
	char addr[ALOOP__ADDRSTRLEN];
	int on = 1, found = 0;
	size_t i;

	for (i = 0; i < a->local->n; i++) {
		l = &a->local->a[i];
		if (l->family != family)
			continue;
		found = 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
		    sizeof(on));
		if (bind(fd, (const struct sockaddr *)&l->ss, l->len) == 0)
			return 0;
		attempt_record(a, -errno, "error while attempting to bind on "
		    "address %s: %s", aloop__sockaddr_str((const struct
		    sockaddr *)&l->ss, l->len, addr, sizeof(addr)),
		    strerror(errno));
	}
	if (!found) {
		attempt_record(a, -EADDRNOTAVAIL, "no matching local address "
		    "with family=%d found", family);
		return 1;
	}
	return -1;
}

static void
attempt_try_next(struct attempt *a)
{
	const struct aloop__addr *r;
	char addr[ALOOP__ADDRSTRLEN];
	int fd;

	if (a->he_delay > 0) {
		he_start_next(a);
		return;
	}
	while (a->idx < a->remote->n) {
		r = &a->remote->a[a->idx++];
		fd = socket(r->family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, a->is_unix ? 0 : r->protocol);
		if (fd == -1) {
			attempt_record(a, -errno, "socket: %s",
			    strerror(errno));
			continue;
		}
		if (a->local != NULL && attempt_bind_local(a, fd,
		    r->family) != 0) {
			(void)close(fd);
			continue;
		}
		a->fd = fd;
		if (connect(fd, (const struct sockaddr *)&r->ss, r->len) == 0) {
			attempt_connected(a);
			return;
		}
		if (errno == EINPROGRESS || errno == EAGAIN) {
			a->wev = event_new(aloop__loop_base(a->loop), fd,
			    EV_WRITE, attempt_write_cb, a);
			if (a->wev != NULL && event_add(a->wev, NULL) == 0)
				return;
			attempt_record(a, ALOOP_ENOMEM, "out of memory");
		} else
			attempt_record(a, -errno, "Connect call failed %s: %s",
			    aloop__sockaddr_str((const struct sockaddr *)&r->ss,
			    r->len, addr, sizeof(addr)), strerror(errno));
		attempt_close_fd(a);
	}
	attempt_fail_all(a);
}

/* ------------------------------------------------- happy eyeballs */

/*
 * RFC 8305's interleaving, as asyncio's _interleave_addrinfos: the
 * families in the order they first appear, @first addresses of the first
 * family, then one of each family in turn.
 */
static void
he_interleave(struct aloop__addrlist *l, size_t first)
{
	struct aloop__addr *out;
	size_t i, n = 0, taken, pos[8], nfam = 0, f, k;
	int fams[8], more;

	for (i = 0; i < l->n && nfam < 8; i++) {
		for (f = 0; f < nfam && fams[f] != l->a[i].family; f++)
			;
		if (f == nfam)
			fams[nfam++] = l->a[i].family;
	}
	if (nfam < 2 || (out = malloc(l->n * sizeof(*out))) == NULL)
		return;
	memset(pos, 0, sizeof(pos));
	/* The next address of family @f at or after pos[f]. */
#define HE_NEXT(f) ({							\
	while (pos[f] < l->n && l->a[pos[f]].family != fams[f])	\
		pos[f]++;						\
	pos[f] < l->n ? &l->a[pos[f]++] : NULL;				\
})
	for (taken = 0; taken < first; taken++) {
		struct aloop__addr *x = HE_NEXT(0);

		if (x == NULL)
			break;
		out[n++] = *x;
	}
	do {
		more = 0;
		for (k = 1; k <= nfam; k++) {
			struct aloop__addr *x = HE_NEXT(k % nfam);

			if (x != NULL) {
				out[n++] = *x;
				more = 1;
			}
		}
	} while (more);
#undef HE_NEXT
	/* Addresses of a ninth family or more keep their place at the end. */
	for (i = 0; i < l->n && n < l->n; i++) {
		for (f = 0; f < nfam && fams[f] != l->a[i].family; f++)
			;
		if (f == nfam)
			out[n++] = l->a[i];
	}
	memcpy(l->a, out, l->n * sizeof(*out));
	free(out);
}

static void
he_flight_close(struct flight *fl)
{
	if (fl->wev != NULL) {
		event_free(fl->wev);
		fl->wev = NULL;
	}
	if (fl->fd >= 0) {
		(void)close(fl->fd);
		fl->fd = -1;
	}
}

static void
he_close_all(struct attempt *a)
{
	size_t i;

	if (a->flights == NULL || a->remote == NULL)
		return;
	for (i = 0; i < a->remote->n; i++)
		he_flight_close(&a->flights[i]);
}

static int
he_in_flight(const struct attempt *a)
{
	size_t i;

	for (i = 0; i < a->remote->n; i++)
		if (a->flights[i].fd >= 0)
			return 1;
	return 0;
}

/* @fl connected first: the others are closed, the transport is made. */
static void
he_won(struct attempt *a, struct flight *fl)
{
	aloop_handle_cancel(a->loop, a->stagger);
	a->stagger = ALOOP_HANDLE_NONE;
	a->fd = fl->fd;
	fl->fd = -1;
	if (fl->wev != NULL) {
		event_free(fl->wev);
		fl->wev = NULL;
	}
	he_close_all(a);
	attempt_connected(a);
}

static void
he_failed(struct attempt *a, struct flight *fl, int err)
{
	const struct aloop__addr *r = &a->remote->a[fl->idx];
	char addr[ALOOP__ADDRSTRLEN];

	attempt_record(a, -err, "Connect call failed %s: %s",
	    aloop__sockaddr_str((const struct sockaddr *)&r->ss, r->len, addr,
	    sizeof(addr)), strerror(err));
	he_flight_close(fl);
}

static void
he_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flight *fl = arg;
	struct attempt *a = fl->a;
	socklen_t len = sizeof(int);
	int err = 0;

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0) {
		he_won(a, fl);
		return;
	}
	he_failed(a, fl, err);
	/* A failure starts the next at once, without waiting the delay. */
	aloop_handle_cancel(a->loop, a->stagger);
	a->stagger = ALOOP_HANDLE_NONE;
	he_start_next(a);
}

static void
he_timer_cb(void *arg)
{
	struct attempt *a = arg;

	a->stagger = ALOOP_HANDLE_NONE;
	if (!a->finished)
		he_start_next(a);
}

/*
 * Start the next address's connect, and arm the delay after which the one
 * after it starts too, unless this one has connected or failed by then.
 * With nothing left to start and nothing in flight, fail with every error.
 */
static void
he_start_next(struct attempt *a)
{
	const struct aloop__addr *r;
	struct flight *fl;
	int fd;

	if (a->flights == NULL &&
	    (a->flights = calloc(a->remote->n, sizeof(*a->flights))) == NULL) {
		attempt_record(a, ALOOP_ENOMEM, "out of memory");
		attempt_fail_all(a);
		return;
	}
	while (a->idx < a->remote->n) {
		fl = &a->flights[a->idx];
		fl->a = a;
		fl->idx = a->idx;
		fl->fd = -1;
		r = &a->remote->a[a->idx++];
		fd = socket(r->family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, r->protocol);
		if (fd == -1) {
			attempt_record(a, -errno, "socket: %s",
			    strerror(errno));
			continue;
		}
		if (a->local != NULL && attempt_bind_local(a, fd,
		    r->family) != 0) {
			(void)close(fd);
			continue;
		}
		fl->fd = fd;
		if (connect(fd, (const struct sockaddr *)&r->ss, r->len) == 0) {
			he_won(a, fl);
			return;
		}
		if (errno != EINPROGRESS && errno != EAGAIN) {
			he_failed(a, fl, errno);
			continue;
		}
		fl->wev = event_new(aloop__loop_base(a->loop), fd, EV_WRITE,
		    he_write_cb, fl);
		if (fl->wev == NULL || event_add(fl->wev, NULL) != 0) {
			attempt_record(a, ALOOP_ENOMEM, "out of memory");
			he_flight_close(fl);
			continue;
		}
		if (a->idx < a->remote->n && aloop_call_later(a->loop,
		    a->he_delay, he_timer_cb, a, &a->stagger) != 0)
			a->stagger = ALOOP_HANDLE_NONE;
		return;
	}
	if (!he_in_flight(a))
		attempt_fail_all(a);
}

static void
attempt_start_cb(void *arg)
{
	struct attempt *a = arg;

	a->start = ALOOP_HANDLE_NONE;
	if (a->finished)
		return;
	if (a->remote == NULL) {	/* an adopted, connected socket */
		attempt_connected(a);
		return;
	}
	attempt_try_next(a);
}

/* One resolution finished: keep a copy of its list, or fail. */
static void
attempt_resolved(struct attempt *a, struct aloop_future *f,
    struct aloop__addrlist **dst)
{
	const struct aloop_error *err;
	struct aloop__addrlist *list;
	size_t sz;
	int rc;

	if (a->finished)
		return;
	if ((rc = aloop_future_result(f, (void **)&list)) != 0) {
		err = aloop_future_error(f);
		(void)aloop_future_set_error(a->fut, rc, "%s",
		    err != NULL ? err->message : aloop_strerror(rc));
		goto fail;
	}
	/* Copy: the list belongs to the future. */
	sz = sizeof(*list) + list->n * sizeof(list->a[0]);
	if ((*dst = malloc(sz)) == NULL) {
		(void)aloop_future_set_error(a->fut, ALOOP_ENOMEM, NULL);
		goto fail;
	}
	memcpy(*dst, list, sz);
	if (dst == &a->remote && a->interleave > 0)
		he_interleave(*dst, (size_t)a->interleave);
	if (a->rfut == NULL && a->lfut == NULL)
		attempt_try_next(a);
	return;
fail:
	attempt_drop_resolver(a, &a->rfut, attempt_remote_cb);
	attempt_drop_resolver(a, &a->lfut, attempt_local_cb);
	attempt_finish(a);
}

static void
attempt_remote_cb(struct aloop_future *f, void *arg)
{
	struct attempt *a = arg;

	a->rfut = NULL;
	attempt_resolved(a, f, &a->remote);
	aloop_future_release(f);
	attempt_unref(a);
}

static void
attempt_local_cb(struct aloop_future *f, void *arg)
{
	struct attempt *a = arg;

	a->lfut = NULL;
	attempt_resolved(a, f, &a->local);
	aloop_future_release(f);
	attempt_unref(a);
}

static void
attempt_fut_done(struct aloop_future *f, void *arg)
{
	struct attempt *a = arg;

	/* Cancelling closes whatever was opened. */
	if (aloop_future_cancelled(f)) {
		attempt_drop_resolver(a, &a->rfut, attempt_remote_cb);
		attempt_drop_resolver(a, &a->lfut, attempt_local_cb);
		attempt_finish(a);
	}
	attempt_unref(a);
}

static struct attempt *
attempt_new(struct aloop_loop *loop, const struct aloop_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg)
{
	struct attempt *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if (aloop_future_new(loop, &a->fut) != 0) {
		free(a);
		return NULL;
	}
	a->loop = loop;
	a->proto = proto;
	a->factory = factory;
	a->factory_arg = factory_arg;
	a->fd = -1;
	a->close_timeout = ALOOP__CLOSE_TIMEOUT_DEFAULT;
	a->start = ALOOP_HANDLE_NONE;
	a->stagger = ALOOP_HANDLE_NONE;
	/* One for the work, one for the done-callback on the caller's future. */
	a->refs = 2;
	a->res.on_loop_close = attempt_on_loop_close;
	return a;
}

/* Undo a half-made attempt whose done-callback was never registered. */
static void
attempt_abandon(struct attempt *a)
{
	a->refs--;
	a->finished = 1;
	attempt_drop_resolver(a, &a->rfut, attempt_remote_cb);
	attempt_drop_resolver(a, &a->lfut, attempt_local_cb);
	if (a->start != ALOOP_HANDLE_NONE) {
		aloop_handle_cancel(a->loop, a->start);
		a->start = ALOOP_HANDLE_NONE;
	}
	attempt_close_fd(a);
	attempt_unref(a);
}

/* Arm the attempt and hand the caller its future; @a is consumed. */
static int
attempt_launch(struct attempt *a, struct aloop_future **fut)
{
	if (aloop_future_add_done_callback(a->fut, attempt_fut_done, a) != 0) {
		attempt_abandon(a);
		return ALOOP_ENOMEM;
	}
	aloop__loop_track(a->loop, &a->res);
	*fut = aloop_future_ref(a->fut);
	return 0;
}

static int
attempt_resolve(struct attempt *a, const char *host, const char *port,
    const struct addrinfo *hints, struct aloop_future **fp,
    aloop_future_done_fn cb)
{
	int rc;

	if ((rc = aloop__resolve(a->loop, &host, 1, port, hints, 0, fp)) != 0)
		return rc;
	if ((rc = aloop_future_add_done_callback(*fp, cb, a)) != 0) {
		aloop_future_release(*fp);
		*fp = NULL;
		return rc;
	}
	a->refs++;
	return 0;
}

/* Check the arguments every create_*_connection shares. */
static int
connection_check(struct aloop_loop *loop, const struct aloop_protocol *proto,
    aloop_protocol_factory_fn factory, const char *host,
    const struct aloop_connection_options *o, struct aloop_future **fut)
{
	int rc;

	if (proto == NULL || factory == NULL || fut == NULL)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "create_connection")) != 0)
		return rc;
	if (o->server_hostname != NULL && o->ssl == NULL)
		return ALOOP_EINVAL;
	if (o->ssl != NULL && (host == NULL || host[0] == '\0') &&
	    o->server_hostname == NULL)
		return ALOOP_EINVAL;
	return 0;
}

/* Keep what a TLS connection needs; server_hostname defaults to host. */
static int
attempt_set_tls(struct attempt *a, const char *host,
    const struct aloop_connection_options *o)
{
	const char *name;

	/* Not TLS alone, but every attempt's options pass through here. */
	a->close_timeout = o->close_timeout;
	if (o->ssl == NULL)
		return 0;
	name = o->server_hostname != NULL ? o->server_hostname : host;
	if (name != NULL && (a->server_hostname = strdup(name)) == NULL)
		return ALOOP_ENOMEM;
	a->ssl = o->ssl == ALOOP_TLS_DEFAULT ? ALOOP_TLS_DEFAULT :
	    aloop_tls_context_ref(o->ssl);
	a->hs_timeout = o->ssl_handshake_timeout;
	a->sd_timeout = o->ssl_shutdown_timeout;
	return 0;
}

/* Adopt the connected socket @fd: the transport is made on the next turn. */
static int
attempt_adopt(struct attempt *a, int fd, struct aloop_future **fut)
{
	int fl, rc;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    (fl = fcntl(fd, F_GETFD)) == -1 ||
	    fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1) {
		rc = -errno;
		attempt_abandon(a);
		return rc;
	}
	if ((rc = aloop_call_soon(a->loop, attempt_start_cb, a,
	    &a->start)) != 0) {
		attempt_abandon(a);
		return rc;
	}
	/* Ours from now on, closed on every path. */
	a->fd = fd;
	return attempt_launch(a, fut);
}

int
aloop_create_connection(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, const char *host, const char *port,
    const struct aloop_connection_options *o, struct aloop_future **fut)
{
	struct aloop_connection_options defaults;
	struct addrinfo hints;
	struct attempt *a;
	int rc;

	if (o == NULL) {
		aloop_connection_options_init(&defaults);
		o = &defaults;
	}
	if ((rc = connection_check(loop, proto, factory, host, o, fut)) != 0)
		return rc;
	if (o->sock >= 0 ? (host != NULL || port != NULL) :
	    (host == NULL && port == NULL))
		return ALOOP_EINVAL;
	if ((a = attempt_new(loop, proto, factory, factory_arg)) == NULL)
		return ALOOP_ENOMEM;
	if ((rc = attempt_set_tls(a, host, o)) != 0) {
		attempt_abandon(a);
		return rc;
	}
	if (o->sock >= 0)
		return attempt_adopt(a, o->sock, fut);
	/* asyncio: a delay without an interleave count interleaves by 1. */
	a->he_delay = o->happy_eyeballs_delay > 0 ? o->happy_eyeballs_delay :
	    0;
	a->interleave = o->interleave > 0 ? o->interleave :
	    a->he_delay > 0 ? 1 : 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = o->family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = o->proto;
	hints.ai_flags = o->flags;
	if ((rc = attempt_resolve(a, host, port, &hints, &a->rfut,
	    attempt_remote_cb)) != 0) {
		attempt_abandon(a);
		return rc;
	}
	if (o->local_host != NULL || o->local_port != NULL) {
		hints.ai_flags = AI_PASSIVE;
		if ((rc = attempt_resolve(a, o->local_host, o->local_port,
		    &hints, &a->lfut, attempt_local_cb)) != 0) {
			attempt_abandon(a);
			return rc;
		}
	}
	return attempt_launch(a, fut);
}

int
aloop_create_unix_connection(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, const char *path,
    const struct aloop_connection_options *o, struct aloop_future **fut)
{
	struct aloop_connection_options defaults;
	struct sockaddr_un sun;
	struct attempt *a;
	socklen_t len;
	int rc;

	if (o == NULL) {
		aloop_connection_options_init(&defaults);
		o = &defaults;
	}
	/* No host name to default server_hostname to: it must be given. */
	if ((rc = connection_check(loop, proto, factory, NULL, o, fut)) != 0)
		return rc;
	if (o->sock >= 0 ? path != NULL : path == NULL)
		return ALOOP_EINVAL;
	if (path != NULL && (rc = aloop__unix_addr(path, &sun, &len)) != 0)
		return rc;
	if ((a = attempt_new(loop, proto, factory, factory_arg)) == NULL)
		return ALOOP_ENOMEM;
	a->is_unix = 1;
	if ((rc = attempt_set_tls(a, NULL, o)) != 0) {
		attempt_abandon(a);
		return rc;
	}
	if (o->sock >= 0)
		return attempt_adopt(a, o->sock, fut);
	if ((a->remote = calloc(1, sizeof(*a->remote) +
	    sizeof(a->remote->a[0]))) == NULL) {
		attempt_abandon(a);
		return ALOOP_ENOMEM;
	}
	a->remote->n = 1;
	a->remote->a[0].family = AF_UNIX;
	a->remote->a[0].socktype = SOCK_STREAM;
	a->remote->a[0].len = len;
	memcpy(&a->remote->a[0].ss, &sun, sizeof(sun));
	if ((rc = aloop_call_soon(loop, attempt_start_cb, a, &a->start)) != 0) {
		attempt_abandon(a);
		return rc;
	}
	return attempt_launch(a, fut);
}

static struct aloop__addrlist *
addrlist_dup(const struct aloop__addrlist *l)
{
	size_t sz = sizeof(*l) + l->n * sizeof(l->a[0]);
	struct aloop__addrlist *c;

	if ((c = malloc(sz)) != NULL)
		memcpy(c, l, sz);
	return c;
}

int
aloop__create_connection_addrs(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, const struct aloop__addrlist *remote,
    const struct aloop__addrlist *local, struct aloop_future **fut)
{
	struct aloop_connection_options o;
	struct attempt *a;
	int rc;

	aloop_connection_options_init(&o);
	if (remote == NULL || remote->n == 0)
		return ALOOP_EINVAL;
	if ((rc = connection_check(loop, proto, factory, NULL, &o, fut)) != 0)
		return rc;
	if ((a = attempt_new(loop, proto, factory, factory_arg)) == NULL)
		return ALOOP_ENOMEM;
	a->is_unix = remote->a[0].family == AF_UNIX;
	if ((a->remote = addrlist_dup(remote)) == NULL ||
	    (local != NULL && (a->local = addrlist_dup(local)) == NULL)) {
		attempt_abandon(a);
		return ALOOP_ENOMEM;
	}
	if ((rc = aloop_call_soon(loop, attempt_start_cb, a, &a->start)) != 0) {
		attempt_abandon(a);
		return rc;
	}
	return attempt_launch(a, fut);
}

int
aloop_connect_accepted_socket(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, int fd, const struct aloop_connection_options *o,
    struct aloop_future **fut)
{
	struct aloop_future *f;
	int type, fl, rc;
	socklen_t tl = sizeof(type);

	if (fut != NULL)
		*fut = NULL;
	if (proto == NULL || factory == NULL || fut == NULL || fd < 0)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "connect_accepted_socket")) != 0)
		return rc;
	/* asyncio: "A Stream Socket was expected". */
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == -1)
		return errno == ENOTSOCK ? ALOOP_EINVAL : -errno;
	if (type != SOCK_STREAM)
		return ALOOP_EINVAL;
	if (o == NULL || o->ssl == NULL)
		return aloop__stream_adopt(loop, proto, factory, factory_arg,
		    fd, ALOOP__STREAM_SOCKET, fut);
	/* The server side of TLS: a context of its own is required. */
	if (o->ssl == ALOOP_TLS_DEFAULT)
		return ALOOP_EINVAL;
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    (fl = fcntl(fd, F_GETFD)) == -1 ||
	    fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1)
		return -errno;
	if ((rc = aloop_future_new(loop, &f)) != 0)
		return rc;
	/* As a server's accepted sockets have it. */
	aloop__sock_set_nodelay(fd);
	/* From here on the descriptor is the TLS transport's, on failure too. */
	rc = aloop__tls_transport_new(loop, fd, o->ssl, 1, NULL,
	    o->ssl_handshake_timeout, o->ssl_shutdown_timeout, proto, factory,
	    factory_arg, f, NULL);
	if (rc != 0) {
		aloop_future_release(f);
		return rc;
	}
	*fut = f;
	return 0;
}
