/*
 * Servers: listening sockets for TCP and UNIX streams, the accept loop
 * (with asyncio's back-off when descriptors run out), and the server
 * object that counts its connections for wait_closed, close_clients and
 * abort_clients.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <aloop/log.h>
#include <aloop/server.h>
#include <aloop/tls.h>

#include "loop-int.h"
#include "net-int.h"
#include "proxy-int.h"
#include "transport-int.h"

/*
 * Out of descriptors, the listener pauses and retries on a back-off that
 * starts at a millisecond and doubles up to a tenth of a second: asyncio's
 * one second (ACCEPT_RETRY_DELAY) left a new client waiting seconds after
 * descriptors were free again, while a few retries a second cost nothing.
 */
#define ACCEPT_RETRY_MIN	0.001
#define ACCEPT_RETRY_MAX	0.1
#define BACKLOG_DEFAULT		100

struct listener {
	struct aloop_server	*srv;
	int			 fd;
	struct event		*ev;
	unsigned		 active:1;	/* ev is added */
	unsigned		 backoff:1;	/* out of descriptors: waiting */
	aloop_handle_t		 retry;
	double			 delay;		/* the back-off's next step */
	unsigned long long	 dropped;	/* reset, not yet reported */
	/*
	 * TCP_NODELAY: set on the listening socket (tcp), and whether the
	 * first accepted socket inherited it (checked) or each needs its
	 * own setsockopt (each).
	 */
	unsigned		 tcp:1;
	unsigned		 checked:1;
	unsigned		 each:1;
};

struct aloop_server {
	struct aloop_loop		*loop;
	unsigned			 refcnt;	/* callers' */
	const struct aloop_protocol	*proto;
	aloop_protocol_factory_fn	 factory;
	void				*factory_arg;
	struct aloop_tls_context	*ssl;
	double				 hs_timeout, sd_timeout;
	double				 close_timeout;
	void				(*hs_failed)(void *,
					    const struct aloop_error *);
	int				(*filter)(void *, int,
					    const struct sockaddr *, socklen_t,
					    uintptr_t *);
	void				(*release)(void *, uintptr_t);
	int				 proxy;		/* proxy_protocol */
	double				 proxy_timeout;
	/* ssl_session_scope's session id context, if one was given. */
	unsigned char			 sid[32];
	int				 has_sid;
	void				(*proxy_failed)(void *,
					    const struct aloop_error *);
	/* Connections still sending their PROXY header. */
	struct aloop__proxy_wait	*waits;
	size_t				 nwaits;
	int				 backlog;
	int				 nodelay;	/* tcp_nodelay */
	/*
	 * A descriptor kept open for the moment there is none left: closing
	 * it lets accept() take the waiting connections one by one, to reset
	 * them, so that clients learn at once instead of hanging in the
	 * backlog (libuv's trick).  -1 until the server starts serving.
	 */
	int				 spare;
	struct listener			*ls;
	int				*fds;
	size_t				 nls;
	unsigned			 serving:1;
	unsigned			 closed:1;
	unsigned			 paused:1;	/* pause_accepting */
	unsigned			 alive:1;	/* the loop's reference */
	struct aloop__transport_list	 conns;	/* transport.c edits it */
	struct aloop_future		*forever;	/* serve_forever's */
	struct aloop_future		**waiters;
	size_t				 nwaiters;
	struct aloop__resource		 res;
	/* A UNIX server's path, unlinked on close if it is still ours. */
	char				*path;
	dev_t				 path_dev;
	ino_t				 path_ino;
};

static void	server_close_listeners(struct aloop_server *srv);
static void	server_check_done(struct aloop_server *srv);

void
aloop_server_options_init(struct aloop_server_options *o)
{
	memset(o, 0, sizeof(*o));
	o->family = AF_UNSPEC;
	o->flags = AI_PASSIVE;
	o->sock = -1;
	o->backlog = BACKLOG_DEFAULT;
	o->reuse_address = 1;
	o->ssl_handshake_timeout = 60.0;
	o->ssl_shutdown_timeout = 30.0;
	o->start_serving = 1;
	o->proxy_protocol_timeout = 5.0;
	o->close_timeout = ALOOP__CLOSE_TIMEOUT_DEFAULT;
	o->tcp_nodelay = 1;
}

/* ------------------------------------------------------- lifetime */

static void
server_free(struct aloop_server *srv)
{
	size_t i;

	server_close_listeners(srv);
	/* Waiters left when the loop closed never complete: drop them. */
	for (i = 0; i < srv->nwaiters; i++)
		aloop_future_release(srv->waiters[i]);
	free(srv->ls);
	free(srv->fds);
	free(srv->waiters);
	free(srv->path);
	if (srv->ssl != NULL)
		aloop_tls_context_release(srv->ssl);
	free(srv);
}

struct aloop_server *
aloop_server_ref(struct aloop_server *srv)
{
	srv->refcnt++;
	return srv;
}

void
aloop_server_release(struct aloop_server *srv)
{
	/* A release too many is the caller's bug: caught in debug builds. */
	assert(srv == NULL || srv->refcnt > 0);
	if (srv == NULL || --srv->refcnt > 0 || srv->alive)
		return;
	server_free(srv);
}

/*
 * Once closed with no connection left, the waiters are released and the
 * loop lets go of the server.
 */
static void
server_check_done(struct aloop_server *srv)
{
	struct aloop_future **w;
	size_t i, n;

	if (!srv->closed || srv->conns.n > 0 || srv->nwaits > 0)
		return;
	w = srv->waiters;
	n = srv->nwaiters;
	srv->waiters = NULL;
	srv->nwaiters = 0;
	for (i = 0; i < n; i++) {
		if (!aloop_future_done(w[i]))
			(void)aloop_future_set_result(w[i], NULL, NULL);
		aloop_future_release(w[i]);
	}
	free(w);
	if (srv->alive) {
		srv->alive = 0;
		aloop__loop_untrack(srv->loop, &srv->res);
		if (srv->refcnt == 0)
			server_free(srv);
	}
}

static void
server_on_loop_close(struct aloop__resource *res)
{
	struct aloop_server *srv = (struct aloop_server *)(void *)
	    ((char *)res - offsetof(struct aloop_server, res));

	/* Connections were torn down first (tracked later, closed earlier). */
	srv->alive = 0;
	if (srv->forever != NULL) {
		/* Its done-callback, and the reference it held, never run. */
		aloop_future_release(srv->forever);
		srv->forever = NULL;
		srv->refcnt--;
	}
	server_close_listeners(srv);
	srv->closed = 1;
	srv->serving = 0;
	if (srv->refcnt == 0)
		server_free(srv);
}

/* ----------------------------------------------------------- accept */

static void
listener_stop(struct listener *l)
{
	if (l->active) {
		(void)event_del(l->ev);
		l->active = 0;
	}
}

static void
listener_start(struct listener *l)
{
	struct aloop_server *srv = l->srv;

	if (l->active || l->backoff || l->ev == NULL || !srv->serving ||
	    srv->paused || srv->closed)
		return;
	if (event_add(l->ev, NULL) == 0)
		l->active = 1;
}

static void
server_conn_gone(struct aloop_transport *t, void *owner)
{
	struct aloop_server *srv = owner;
	struct aloop_error err;

	/*
	 * A TLS connection that ends unmade never reached the protocol: its
	 * handshake failed, timed out, or the factory refused it.  At loop
	 * close nothing failed, even with the end already scheduled: the
	 * loop simply went away, and no user code may run from its close.
	 */
	if (srv->hs_failed != NULL && srv->ssl != NULL &&
	    !aloop_is_closed(srv->loop) &&
	    aloop__transport_ended_unmade(t, ALOOP_ETLS, &err))
		srv->hs_failed(srv->factory_arg, &err);
	aloop__transport_list_remove(&srv->conns, t);
	if (srv->release != NULL && t->owner_ticket != 0)
		srv->release(srv->factory_arg, t->owner_ticket);
	server_check_done(srv);
}

static void
server_conn_add(struct aloop_server *srv, struct aloop_transport *t,
    uintptr_t ticket)
{
	(void)aloop_transport_set_close_timeout(t, srv->close_timeout);
	aloop__transport_list_add(&srv->conns, t, server_conn_gone, srv);
	t->owner_ticket = ticket;
}

/* A connection the filter let in ends before it had a transport. */
static void
server_conn_unmade(struct aloop_server *srv, uintptr_t ticket)
{
	if (srv->release != NULL && ticket != 0)
		srv->release(srv->factory_arg, ticket);
}

/*
 * Serve an accepted connection: a TLS handshake first, or the protocol
 * at once.  @pi is the PROXY header it came with (or NULL), the
 * transport's from here on, freed with it or on any failure.
 */
static void
server_conn_serve(struct aloop_server *srv, int fd, uintptr_t ticket,
    struct aloop__proxy_info *pi, const struct sockaddr *peer,
    socklen_t peerlen)
{
	struct aloop_transport *t;
	void *state = NULL;
	int rc;

	if (srv->ssl != NULL) {
		/*
		 * The TLS module makes the protocol state after the handshake
		 * and never shows a failed handshake to the protocol; the
		 * server counts the connection from now on all the same, so
		 * close_clients and wait_closed see it.
		 */
		t = NULL;
		rc = aloop__tls_transport_new(srv->loop, fd, srv->ssl, 1, NULL,
		    srv->hs_timeout, srv->sd_timeout, srv->proto,
		    srv->factory, srv->factory_arg, NULL, &t);
		/*
		 * The handshake starts from the loop, so this is in time;
		 * 32 bytes are what OpenSSL takes at most: it cannot fail.
		 */
		if (rc == 0 && t != NULL && srv->has_sid)
			(void)aloop__tls_set_session_id_context(t, srv->sid,
			    sizeof(srv->sid));
		if (rc != 0)
			aloop_log(ALOOP_LOG_DEBUG, "cannot set up a TLS "
			    "connection: %s", aloop_strerror(rc));
		if (rc == 0 && t != NULL) {
			if (peer != NULL)
				aloop__tls_set_peer(t, peer, peerlen);
			t->proxy = pi;
			server_conn_add(srv, t, ticket);
		} else {
			free(pi);
			server_conn_unmade(srv, ticket);
		}
		return;
	}
	if ((rc = srv->factory(srv->factory_arg, &state)) != 0) {
		aloop_log(ALOOP_LOG_DEBUG,
		    "protocol factory refused a connection: %s",
		    aloop_strerror(rc));
		aloop__sock_close_reset(fd);
		free(pi);
		server_conn_unmade(srv, ticket);
		return;
	}
	if ((rc = aloop__stream_transport_new(srv->loop, fd,
	    ALOOP__STREAM_SOCKET, srv->proto, state, 1, &t)) != 0) {
		aloop_log(ALOOP_LOG_ERR, "cannot set up an accepted "
		    "connection: %s", aloop_strerror(rc));
		free(pi);
		server_conn_unmade(srv, ticket);
		return;
	}
	t->proxy = pi;
	server_conn_add(srv, t, ticket);
	aloop__stream_transport_made(t);
}

/* ------------------------------------------------------ PROXY header */

static void
server_wait_unlink(struct aloop_server *srv, struct aloop__proxy_wait *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		srv->waits = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	srv->nwaits--;
}

static void
server_proxy_done(struct aloop__proxy_wait *w, void *arg, int fd, int rc,
    struct aloop__proxy_info *pi)
{
	struct aloop_server *srv = arg;
	struct aloop_error err;

	server_wait_unlink(srv, w);
	if (rc == 0) {
		server_conn_serve(srv, fd, w->ticket, pi, NULL, 0);
		server_check_done(srv);
		return;
	}
	aloop_log(ALOOP_LOG_DEBUG, "connection reset for its PROXY header: "
	    "%s", rc == ALOOP_EPROTO_HDR ? "malformed" : aloop_strerror(rc));
	/* At loop close nothing failed: the loop simply went away. */
	if (srv->proxy_failed != NULL && rc != ALOOP_ECANCELLED) {
		err.code = rc;
		err.message = rc == ALOOP_EPROTO_HDR ?
		    "malformed PROXY protocol header" : aloop_strerror(rc);
		srv->proxy_failed(srv->factory_arg, &err);
	}
	server_conn_unmade(srv, w->ticket);
	server_check_done(srv);
}

/*
 * Wait for the PROXY header before anything else happens to @fd; the
 * connection then goes on in server_conn_serve.  It counts as one of
 * the server's from now on.
 */
static void
server_proxy_start(struct aloop_server *srv, int fd, uintptr_t ticket)
{
	struct aloop__proxy_wait *w;
	int rc;

	if ((rc = aloop__proxy_wait_start(srv->loop, fd, srv->proxy_timeout,
	    server_proxy_done, srv, &w)) != 0) {
		aloop_log(ALOOP_LOG_ERR, "cannot wait for a PROXY header: %s",
		    aloop_strerror(rc));
		aloop__sock_close_reset(fd);
		server_conn_unmade(srv, ticket);
		return;
	}
	w->ticket = ticket;
	w->next = srv->waits;
	if (w->next != NULL)
		w->next->prev = w;
	srv->waits = w;
	srv->nwaits++;
}

/* close_clients and abort_clients: a header not yet in is reset. */
static void
server_proxy_cancel_all(struct aloop_server *srv)
{
	struct aloop__proxy_wait *w;
	uintptr_t ticket;

	if (srv->nwaits == 0)
		return;
	aloop_server_ref(srv);
	while ((w = srv->waits) != NULL) {
		server_wait_unlink(srv, w);
		ticket = w->ticket;
		aloop__proxy_wait_cancel(w);
		server_conn_unmade(srv, ticket);
	}
	server_check_done(srv);
	aloop_server_release(srv);
}

/*
 * TCP_NODELAY came with the socket from the listener; only the first
 * accepted socket of each listener is checked, so that a kernel that
 * does not pass it on costs a setsockopt per connection, as before, and
 * one that does costs nothing.
 */
static void
listener_nodelay(struct listener *l, int fd)
{
	socklen_t len;
	int on;

	if (!l->tcp)
		return;
	if (!l->checked) {
		l->checked = 1;
		len = sizeof(on);
		if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == -1 ||
		    (on != 0) != l->srv->nodelay)
			l->each = 1;
	}
	if (l->each) {
		on = l->srv->nodelay;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on));
	}
}

static void
server_handle_conn(struct aloop_server *srv, int fd, uintptr_t ticket,
    const struct sockaddr *peer, socklen_t peerlen)
{
	if (srv->proxy)
		server_proxy_start(srv, fd, ticket);
	else
		server_conn_serve(srv, fd, ticket, NULL, peer, peerlen);
}

static void
listener_retry_cb(void *arg)
{
	struct listener *l = arg;

	l->retry = ALOOP_HANDLE_NONE;
	l->backoff = 0;
	listener_start(l);
}

static void
server_open_spare(struct aloop_server *srv)
{
	if (srv->spare < 0)
		srv->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * accept() said EMFILE or ENFILE: with the spare descriptor closed there
 * is one free, so take the waiting connections and reset each at once
 * (no byte sent), up to a backlog's worth, then take the spare back.
 * Without a spare (it could not be reopened last time) nothing drains.
 */
static void
listener_drain(struct listener *l)
{
	struct aloop_server *srv = l->srv;
	int fd, i;

	if (srv->spare < 0)
		return;
	(void)close(srv->spare);
	srv->spare = -1;
	for (i = 0; i < srv->backlog; i++) {
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EPROTO)
				continue;
			break;
		}
		aloop__sock_close_reset(fd);
		l->dropped++;
	}
	server_open_spare(srv);
}

/*
 * Out of a system resource: drain what waits (for descriptors), report
 * once for this step of the back-off with the count reset since the last
 * report, and pause the listener until the next step.  Retrying at once
 * would spin on the same error; the listener is never closed.
 */
static void
listener_back_off(struct listener *l, int code)
{
	struct aloop_server *srv = l->srv;
	struct aloop_context ctx = ALOOP_CONTEXT_INIT(
	    "socket.accept() out of system resource");
	struct aloop_error err = { code, aloop_strerror(code) };

	if (code == -EMFILE || code == -ENFILE)
		listener_drain(l);
	listener_stop(l);
	l->backoff = 1;
	l->delay = l->delay < ACCEPT_RETRY_MIN ? ACCEPT_RETRY_MIN :
	    l->delay * 2 > ACCEPT_RETRY_MAX ? ACCEPT_RETRY_MAX : l->delay * 2;
	if (aloop_call_later(srv->loop, l->delay, listener_retry_cb, l,
	    &l->retry) != 0)
		l->backoff = 0;
	ctx.error = &err;
	ctx.socket = l->fd;
	ctx.dropped = l->dropped;
	l->dropped = 0;
	/* Last: the handler may close the server. */
	aloop_call_exception_handler(srv->loop, &ctx);
}

static void
listener_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct aloop_server *srv = l->srv;
	struct sockaddr_storage ss;
	socklen_t len;
	uintptr_t ticket;
	int fd, i;

	(void)what;
	/* The server may be closed from inside a callback below. */
	aloop_server_ref(srv);
	for (i = 0; i < srv->backlog && l->active && !srv->closed; i++) {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd == -1) {
			switch (errno) {
			case EAGAIN:
#if EAGAIN != EWOULDBLOCK
			case EWOULDBLOCK:
#endif
				goto out;
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				listener_back_off(l, -errno);
				goto out;
			default:
				aloop_log_errno(ALOOP_LOG_ERR, "accept");
				goto out;
			}
		}
		l->delay = 0;
		listener_nodelay(l, fd);
		ticket = 0;
		if (srv->filter != NULL && srv->filter(srv->factory_arg, fd,
		    (const struct sockaddr *)&ss, len, &ticket) != 0) {
			aloop__sock_close_reset(fd);
			continue;
		}
		server_handle_conn(srv, fd, ticket,
		    (const struct sockaddr *)&ss, len);
	}
out:
	aloop_server_release(srv);
}

static void
server_close_listeners(struct aloop_server *srv)
{
	struct listener *l;
	size_t i;

	for (i = 0; i < srv->nls; i++) {
		l = &srv->ls[i];
		listener_stop(l);
		if (l->ev != NULL) {
			event_free(l->ev);
			l->ev = NULL;
		}
		if (l->retry != ALOOP_HANDLE_NONE) {
			aloop_handle_cancel(srv->loop, l->retry);
			l->retry = ALOOP_HANDLE_NONE;
		}
		if (l->fd >= 0) {
			(void)close(l->fd);
			l->fd = -1;
		}
	}
	if (srv->spare >= 0) {
		(void)close(srv->spare);
		srv->spare = -1;
	}
	if (srv->path != NULL) {
		struct stat st;

		/* Only our own socket file: another server may own it now. */
		if (stat(srv->path, &st) == 0 && st.st_dev == srv->path_dev &&
		    st.st_ino == srv->path_ino)
			(void)unlink(srv->path);
		free(srv->path);
		srv->path = NULL;
	}
}

/* ----------------------------------------------------------- public */

void
aloop_server_close(struct aloop_server *srv)
{
	if (srv->closed)
		return;
	srv->closed = 1;
	srv->serving = 0;
	server_close_listeners(srv);
	aloop_server_ref(srv);
	/* As asyncio's close() cancels the serve_forever() it ends. */
	if (srv->forever != NULL)
		(void)aloop_future_cancel(srv->forever);
	server_check_done(srv);
	aloop_server_release(srv);
}

struct aloop_loop *
aloop_server_get_loop(const struct aloop_server *srv)
{
	return srv->loop;
}

/* serve_forever's future is done (cancelled): the server closes. */
static void
server_forever_done(struct aloop_future *fut, void *arg)
{
	struct aloop_server *srv = arg;

	if (srv->forever == fut) {
		srv->forever = NULL;
		aloop_future_release(fut);
	}
	aloop_server_close(srv);
	aloop_server_release(srv);
}

int
aloop_server_serve_forever(struct aloop_server *srv, struct aloop_future **fut)
{
	struct aloop_future *f;
	int rc;

	if (fut == NULL)
		return ALOOP_EINVAL;
	*fut = NULL;
	if (srv->closed || srv->forever != NULL)
		return ALOOP_ESTATE;
	if ((rc = aloop_future_new(srv->loop, &f)) != 0)
		return rc;
	if ((rc = aloop_future_add_done_callback(f, server_forever_done,
	    srv)) != 0) {
		aloop_future_release(f);
		return rc;
	}
	aloop_server_ref(srv);
	srv->forever = aloop_future_ref(f);
	(void)aloop_server_start_serving(srv);
	*fut = f;
	return 0;
}

void
aloop_server_close_clients(struct aloop_server *srv)
{
	aloop__transport_list_each(&srv->conns, aloop_transport_close);
	server_proxy_cancel_all(srv);
}

void
aloop_server_abort_clients(struct aloop_server *srv)
{
	aloop__transport_list_each(&srv->conns, aloop_transport_abort);
	server_proxy_cancel_all(srv);
}

int
aloop_server_wait_closed(struct aloop_server *srv, struct aloop_future **fut)
{
	struct aloop_future *f, **w;
	int rc;

	if ((rc = aloop_future_new(srv->loop, &f)) != 0)
		return rc;
	if (srv->closed && srv->conns.n == 0 && srv->nwaits == 0) {
		(void)aloop_future_set_result(f, NULL, NULL);
		*fut = f;
		return 0;
	}
	w = realloc(srv->waiters, (srv->nwaiters + 1) * sizeof(*w));
	if (w == NULL) {
		aloop_future_release(f);
		return ALOOP_ENOMEM;
	}
	srv->waiters = w;
	w[srv->nwaiters++] = aloop_future_ref(f);
	*fut = f;
	return 0;
}

int
aloop_server_start_serving(struct aloop_server *srv)
{
	size_t i;

	if (srv->closed)
		return ALOOP_ESTATE;
	if (srv->serving)
		return 0;
	srv->serving = 1;
	server_open_spare(srv);
	for (i = 0; i < srv->nls; i++)
		listener_start(&srv->ls[i]);
	return 0;
}

int
aloop_server_is_serving(const struct aloop_server *srv)
{
	return srv->serving && !srv->closed;
}

const int *
aloop_server_sockets(const struct aloop_server *srv, size_t *n)
{
	*n = srv->closed ? 0 : srv->nls;
	return srv->closed ? NULL : srv->fds;
}

size_t
aloop_server_connection_count(const struct aloop_server *srv)
{
	return srv->conns.n + srv->nwaits;
}

void
aloop_server_pause_accepting(struct aloop_server *srv)
{
	size_t i;

	srv->paused = 1;
	for (i = 0; i < srv->nls; i++)
		listener_stop(&srv->ls[i]);
}

void
aloop_server_resume_accepting(struct aloop_server *srv)
{
	size_t i;

	srv->paused = 0;
	for (i = 0; i < srv->nls; i++)
		listener_start(&srv->ls[i]);
}

/* ------------------------------------------------------------ create */

static struct aloop_server *
server_new(struct aloop_loop *loop, const struct aloop_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg,
    const struct aloop_server_options *o)
{
	struct aloop_server *srv;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->loop = loop;
	srv->proto = proto;
	srv->factory = factory;
	srv->factory_arg = factory_arg;
	srv->ssl = o->ssl != NULL ? aloop_tls_context_ref(o->ssl) : NULL;
	srv->hs_timeout = o->ssl_handshake_timeout;
	srv->hs_failed = o->ssl_handshake_failed;
	srv->filter = o->accept_filter;
	srv->release = o->accept_release;
	srv->proxy = o->proxy_protocol != 0;
	srv->proxy_timeout = o->proxy_protocol_timeout;
	srv->proxy_failed = o->proxy_failed;
	srv->sd_timeout = o->ssl_shutdown_timeout;
	srv->close_timeout = o->close_timeout;
	if (o->ssl != NULL && o->ssl_session_scope != NULL) {
		if (aloop_tls_sha256(o->ssl_session_scope,
		    strlen(o->ssl_session_scope), srv->sid) != 0) {
			if (srv->ssl != NULL)
				aloop_tls_context_release(srv->ssl);
			free(srv);
			return NULL;
		}
		srv->has_sid = 1;
	}
	srv->backlog = o->backlog > 0 ? o->backlog : BACKLOG_DEFAULT;
	srv->nodelay = o->tcp_nodelay != 0;
	srv->spare = -1;
	srv->refcnt = 1;
	srv->res.on_loop_close = server_on_loop_close;
	return srv;
}

/* Adopt the listening descriptors in @fds (owned from now on). */
static int
server_attach(struct aloop_server *srv, const int *fds, size_t n,
    int start)
{
	struct event_base *base = aloop__loop_base(srv->loop);
	size_t i;
	int on;

	srv->ls = calloc(n, sizeof(*srv->ls));
	srv->fds = calloc(n, sizeof(*srv->fds));
	if (srv->ls == NULL || srv->fds == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		srv->ls[i].srv = srv;
		srv->ls[i].fd = fds[i];
		srv->fds[i] = fds[i];
		/*
		 * Once here rather than on every accepted socket; it fails
		 * (harmlessly) on a UNIX socket, which has no Nagle.
		 */
		on = srv->nodelay;
		srv->ls[i].tcp = setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY,
		    &on, sizeof(on)) == 0;
	}
	srv->nls = n;
	for (i = 0; i < n; i++) {
		srv->ls[i].ev = event_new(base, fds[i], EV_READ | EV_PERSIST,
		    listener_accept_cb, &srv->ls[i]);
		if (srv->ls[i].ev == NULL)
			return ALOOP_ENOMEM;	/* the caller frees srv */
	}
	srv->alive = 1;
	aloop__loop_track(srv->loop, &srv->res);
	if (start)
		(void)aloop_server_start_serving(srv);
	return 0;
fail:
	for (i = 0; i < n; i++)
		(void)close(fds[i]);
	return ALOOP_ENOMEM;
}

/* Make @fd non-blocking and close-on-exec (an adopted socket). */
static int
fd_prepare(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -errno;
	if ((fl = fcntl(fd, F_GETFD)) == -1 ||
	    fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1)
		return -errno;
	return 0;
}

/* The pending create_server: waiting for the resolution of its hosts. */
struct creating {
	struct aloop_loop		*loop;
	struct aloop_future		*fut;	/* the caller's */
	struct aloop_server		*srv;
	struct aloop_server_options	 o;
	char				*port;
	struct aloop_future		*rf;	/* the resolution */
	struct aloop__resource		 res;
};

static void
creating_free(struct creating *c)
{
	aloop_future_release(c->fut);
	free(c->port);
	free(c);
}

static void	creating_resolved(struct aloop_future *rf, void *arg);

/* The loop closed before the addresses came: nothing will run now. */
static void
creating_on_loop_close(struct aloop__resource *res)
{
	struct creating *c = (struct creating *)(void *)
	    ((char *)res - offsetof(struct creating, res));

	(void)aloop_future_remove_done_callback(c->rf, creating_resolved, c);
	aloop_future_release(c->rf);
	aloop_server_release(c->srv);
	creating_free(c);
}

static int
bind_one(const struct aloop__addr *a, const struct aloop_server_options *o,
    int *out, char *errbuf, size_t errlen)
{
	char addr[ALOOP__ADDRSTRLEN];
	int fd, on = 1, rc;

	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    a->protocol);
	if (fd == -1) {
		/* An address family the host lacks (no IPv6) is skipped. */
		if (errno == EAFNOSUPPORT)
			return 1;
		rc = -errno;
		snprintf(errbuf, errlen, "socket: %s", strerror(errno));
		return rc;
	}
	if (o->reuse_address && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR,
	    &on, sizeof(on)) == -1)
		goto fail;
	if (o->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
	    sizeof(on)) == -1)
		goto fail;
	if (o->keep_alive && setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on,
	    sizeof(on)) == -1)
		goto fail;
	/*
	 * Every interface means one socket per family; without V6ONLY the
	 * IPv6 socket would claim the IPv4 port as well and the second bind
	 * would fail.
	 */
	if (a->family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
	    &on, sizeof(on)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1) {
		rc = -errno;
		snprintf(errbuf, errlen, "error while attempting to bind on "
		    "address %s: %s", aloop__sockaddr_str((const struct
		    sockaddr *)&a->ss, a->len, addr, sizeof(addr)),
		    strerror(errno));
		(void)close(fd);
		return rc;
	}
	if (listen(fd, o->backlog > 0 ? o->backlog : BACKLOG_DEFAULT) == -1)
		goto fail;
	*out = fd;
	return 0;
fail:
	rc = -errno;
	snprintf(errbuf, errlen, "%s", strerror(errno));
	(void)close(fd);
	return rc;
}

static void
creating_resolved(struct aloop_future *rf, void *arg)
{
	struct creating *c = arg;
	struct aloop__addrlist *list = NULL;
	const struct aloop_error *err;
	char errbuf[ALOOP__ADDRSTRLEN + 128];
	int *fds = NULL, rc;
	size_t i, n = 0;

	aloop__loop_untrack(c->loop, &c->res);
	if (aloop_future_done(c->fut))	/* cancelled meanwhile */
		goto out;
	if ((rc = aloop_future_result(rf, (void **)&list)) != 0) {
		err = aloop_future_error(rf);
		(void)aloop_future_set_error(c->fut, rc, "%s",
		    err != NULL ? err->message : aloop_strerror(rc));
		goto out;
	}
	if ((fds = calloc(list->n, sizeof(*fds))) == NULL) {
		(void)aloop_future_set_error(c->fut, ALOOP_ENOMEM, NULL);
		goto out;
	}
	for (i = 0; i < list->n; i++) {
		rc = bind_one(&list->a[i], &c->o, &fds[n], errbuf,
		    sizeof(errbuf));
		if (rc == 1)
			continue;
		if (rc < 0) {
			while (n > 0)
				(void)close(fds[--n]);
			(void)aloop_future_set_error(c->fut, rc, "%s", errbuf);
			goto out;
		}
		n++;
	}
	if (n == 0) {
		(void)aloop_future_set_error(c->fut, -EAFNOSUPPORT,
		    "no address to listen on");
		goto out;
	}
	if ((rc = server_attach(c->srv, fds, n, c->o.start_serving)) != 0) {
		(void)aloop_future_set_error(c->fut, rc, NULL);
		goto out;
	}
	if (aloop_future_set_result(c->fut, c->srv, NULL) == 0)
		c->srv = NULL;	/* the caller's reference now */
out:
	free(fds);
	if (c->srv != NULL) {
		server_close_listeners(c->srv);
		aloop_server_close(c->srv);
		aloop_server_release(c->srv);
	}
	aloop_future_release(rf);
	creating_free(c);
}

static int
check_proto(struct aloop_loop *loop, const struct aloop_protocol *proto,
    aloop_protocol_factory_fn factory, const struct aloop_server_options *o,
    struct aloop_future **fut)
{
	int rc;

	if (proto == NULL || factory == NULL || fut == NULL)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "create_server")) != 0)
		return rc;
	/* A server needs its own context: the default one is a client's. */
	if (o->ssl == ALOOP_TLS_DEFAULT)
		return ALOOP_EINVAL;
	if (!(o->close_timeout >= 0) || o->close_timeout > 1e9)
		return ALOOP_EINVAL;
	return 0;
}

/* A server on the adopted listening socket o->sock. */
static int
server_from_sock(struct aloop_loop *loop, const struct aloop_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg,
    const struct aloop_server_options *o, struct aloop_future **fut)
{
	struct aloop_server *srv;
	struct aloop_future *f;
	int rc, fd = o->sock;

	if ((rc = fd_prepare(fd)) != 0)
		return rc;
	if ((rc = aloop_future_new(loop, &f)) != 0)
		return rc;
	if ((srv = server_new(loop, proto, factory, factory_arg, o)) == NULL) {
		aloop_future_release(f);
		return ALOOP_ENOMEM;
	}
	if ((rc = server_attach(srv, &fd, 1, o->start_serving)) != 0) {
		aloop_server_close(srv);
		aloop_server_release(srv);
		aloop_future_release(f);
		return rc;
	}
	(void)aloop_future_set_result(f, srv, NULL);
	*fut = f;
	return 0;
}

int
aloop_create_server(struct aloop_loop *loop, const struct aloop_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg, const char *host,
    const char *port, const struct aloop_server_options *o,
    struct aloop_future **fut)
{
	struct aloop_server_options defaults;
	struct aloop_future *rf;
	struct addrinfo hints;
	struct creating *c;
	const char *const *hosts;
	size_t nhosts;
	int rc;

	if (o == NULL) {
		aloop_server_options_init(&defaults);
		o = &defaults;
	}
	if ((rc = check_proto(loop, proto, factory, o, fut)) != 0)
		return rc;
	if (o->nhosts > 0 && host != NULL)
		return ALOOP_EINVAL;
	if (o->sock >= 0) {
		if (host != NULL || port != NULL || o->nhosts > 0)
			return ALOOP_EINVAL;
		return server_from_sock(loop, proto, factory, factory_arg, o,
		    fut);
	}
	if (port == NULL && host == NULL && o->nhosts == 0)
		return ALOOP_EINVAL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	c->loop = loop;
	c->o = *o;
	c->o.hosts = NULL;
	c->o.nhosts = 0;
	if ((port != NULL && (c->port = strdup(port)) == NULL) ||
	    (c->srv = server_new(loop, proto, factory, factory_arg,
	    o)) == NULL) {
		free(c->port);
		free(c);
		return ALOOP_ENOMEM;
	}
	if ((rc = aloop_future_new(loop, &c->fut)) != 0) {
		aloop_server_release(c->srv);
		free(c->port);
		free(c);
		return rc;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = o->family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = o->flags | AI_PASSIVE;
	hosts = o->nhosts > 0 ? o->hosts : &host;
	nhosts = o->nhosts > 0 ? o->nhosts : 1;
	rc = aloop__resolve(loop, hosts, nhosts, port != NULL ? port : "0",
	    &hints, 1, &rf);
	if (rc == 0 && (rc = aloop_future_add_done_callback(rf,
	    creating_resolved, c)) != 0)
		aloop_future_release(rf);
	if (rc != 0) {
		aloop_server_release(c->srv);
		aloop_future_release(c->fut);
		free(c->port);
		free(c);
		return rc;
	}
	c->rf = rf;
	c->res.on_loop_close = creating_on_loop_close;
	aloop__loop_track(loop, &c->res);
	*fut = aloop_future_ref(c->fut);
	return 0;
}

/* ------------------------------------------------------------- UNIX */

int
aloop__unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sun->sun_path))
		return ALOOP_EINVAL;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

/*
 * A socket file left behind by a dead server refuses connections: remove
 * it.  One that accepts belongs to a live server: EADDRINUSE.
 */
static int
unix_clear_stale(const struct sockaddr_un *sun, socklen_t len)
{
	struct stat st;
	int fd, rc;

	if (lstat(sun->sun_path, &st) == -1)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sun, len);
	if (rc == 0) {
		(void)close(fd);
		return -EADDRINUSE;
	}
	rc = errno;
	(void)close(fd);
	if (rc != ECONNREFUSED)
		return -EADDRINUSE;
	if (unlink(sun->sun_path) == -1 && errno != ENOENT)
		return -errno;
	return 0;
}

int
aloop_create_unix_server(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, const char *path, const struct aloop_server_options *o,
    struct aloop_future **fut)
{
	struct aloop_server_options defaults;
	struct aloop_server *srv;
	struct aloop_future *f;
	struct sockaddr_un sun;
	struct stat st;
	socklen_t len;
	int fd, rc;

	if (o == NULL) {
		aloop_server_options_init(&defaults);
		o = &defaults;
	}
	if ((rc = check_proto(loop, proto, factory, o, fut)) != 0)
		return rc;
	if (o->sock >= 0) {
		if (path != NULL)
			return ALOOP_EINVAL;
		return server_from_sock(loop, proto, factory, factory_arg, o,
		    fut);
	}
	if (path == NULL || (rc = aloop__unix_addr(path, &sun, &len)) != 0)
		return ALOOP_EINVAL;
	if ((rc = aloop_future_new(loop, &f)) != 0)
		return rc;
	if ((rc = unix_clear_stale(&sun, len)) != 0) {
		(void)aloop_future_set_error(f, rc, "%s: %s", path,
		    aloop_strerror(rc));
		*fut = f;
		return 0;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		aloop_future_release(f);
		return -errno;
	}
	if (bind(fd, (struct sockaddr *)&sun, len) == -1 ||
	    listen(fd, o->backlog > 0 ? o->backlog : BACKLOG_DEFAULT) == -1) {
		rc = -errno;
		(void)close(fd);
		(void)aloop_future_set_error(f, rc, "%s: %s", path,
		    aloop_strerror(rc));
		*fut = f;
		return 0;
	}
	if ((srv = server_new(loop, proto, factory, factory_arg, o)) == NULL ||
	    (srv->path = strdup(path)) == NULL) {
		if (srv != NULL)
			free(srv);
		(void)close(fd);
		(void)unlink(path);
		aloop_future_release(f);
		return ALOOP_ENOMEM;
	}
	if (stat(path, &st) == 0) {
		srv->path_dev = st.st_dev;
		srv->path_ino = st.st_ino;
	}
	if ((rc = server_attach(srv, &fd, 1, o->start_serving)) != 0) {
		aloop_server_close(srv);
		aloop_server_release(srv);
		aloop_future_release(f);
		return rc;
	}
	(void)aloop_future_set_result(f, srv, NULL);
	*fut = f;
	return 0;
}
