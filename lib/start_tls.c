/*
 * start_tls: upgrade a connected plain transport to TLS, as asyncio's
 * loop.start_tls().  The plain transport hands its socket over and ends
 * silently; a TLS transport takes the socket, runs the handshake, and the
 * same protocol, with the same state, goes on over it.  Bytes the plain
 * transport still buffers go out in clear first: the upgrade waits for
 * them, within the handshake timeout.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/server.h>
#include <aloop/tls.h>

#include "loop-int.h"
#include "transport-int.h"

/* What an upgrade waiting for the clear bytes to drain keeps. */
struct upgrade {
	struct aloop_transport	*t;		/* a reference */
	struct aloop_future	*f;		/* a reference */
	struct aloop_tls_context *ctx;		/* a reference, or the default */
	char			*server_hostname;
	int			 server_side;
	double			 deadline;	/* loop time the handshake ends */
	double			 shutdown_timeout;
	aloop_handle_t		 timer;
};

/* The TLS transport asks for the state: it is the one the protocol has. */
static int
start_tls_state(void *arg, void **state)
{
	*state = arg;
	return 0;
}

/*
 * Hand @t's socket to a TLS transport that completes @f.  Returns 0 (@f
 * then completes, also with the handshake's failure), or an error with @t
 * untouched.
 */
static int
start_tls_now(struct aloop_transport *t, struct aloop_tls_context *ctx,
    int server_side, const char *server_hostname, double handshake_timeout,
    double shutdown_timeout, struct aloop_future *f)
{
	struct aloop_transport *nt = NULL;
	const struct aloop_protocol *proto;
	void *state;
	int fd, rc;

	proto = aloop_transport_get_protocol(t);
	state = aloop_transport_get_protocol_state(t);
	if ((fd = aloop__transport_detach(t)) < 0)
		return fd;
	/*
	 * Servers and connects set TCP_NODELAY already; an adopted socket
	 * may not have it, and TLS records want it.
	 */
	aloop__sock_set_nodelay(fd);
	/* From here on the socket is the TLS transport's, on failure too. */
	rc = aloop__tls_transport_new(aloop_transport_get_loop(t), fd, ctx,
	    server_side, server_side ? NULL : server_hostname,
	    handshake_timeout, shutdown_timeout, proto, start_tls_state,
	    state, f, &nt);
	if (rc != 0) {
		(void)aloop_future_set_error(f, rc, "cannot start TLS: %s",
		    aloop_strerror(rc));
		return 0;
	}
	aloop__tls_mark_upgrade(nt);
	(void)aloop_transport_set_close_timeout(nt,
	    aloop_transport_get_close_timeout(t));
	aloop__transport_hand_over(t, nt);
	return 0;
}

static void
upgrade_free(struct upgrade *u)
{
	aloop_handle_cancel(aloop_transport_get_loop(u->t), u->timer);
	if (u->ctx != ALOOP_TLS_DEFAULT)
		aloop_tls_context_release(u->ctx);
	free(u->server_hostname);
	aloop_future_release(u->f);
	aloop__transport_unref(u->t);
	free(u);
}

/* The clear bytes are out (@code 0), or the connection ended meanwhile. */
static void
upgrade_drained(struct aloop_transport *t, void *arg, int code,
    const char *msg)
{
	struct upgrade *u = arg;
	double left;
	int rc;

	if (code != 0) {
		(void)aloop_future_set_error(u->f, code, "TLS upgrade: %s",
		    msg);
		upgrade_free(u);
		return;
	}
	/* Whoever asked gave up meanwhile (as tls.c checks per step). */
	if (aloop_future_cancelled(u->f)) {
		aloop__transport_drop(t, ALOOP_ECANCELLED, "the TLS upgrade "
		    "was cancelled");
		upgrade_free(u);
		return;
	}
	left = u->deadline - aloop_time(aloop_transport_get_loop(t));
	/* Due already: the handshake gets the least the timer allows. */
	if (left <= 0)
		left = 1e-3;
	rc = start_tls_now(t, u->ctx, u->server_side, u->server_hostname,
	    left, u->shutdown_timeout, u->f);
	if (rc != 0) {
		/* Past write_eof, or the peer's EOF read: no upgrade. */
		aloop__transport_drop(t, rc, NULL);
		(void)aloop_future_set_error(u->f, rc, "TLS upgrade: %s",
		    aloop_strerror(rc));
	}
	upgrade_free(u);
}

/* The peer took too long to take the clear bytes. */
static void
upgrade_timeout(void *arg)
{
	struct upgrade *u = arg;
	struct aloop_transport *t = u->t;

	u->timer = ALOOP_HANDLE_NONE;
	/* The drop ends the wait, which frees @u. */
	aloop__transport_ref(t);
	aloop__transport_drop(t, ALOOP_ETIMEDOUT, "TLS upgrade timed out: "
	    "%zu bytes written before it were still not sent",
	    aloop_transport_get_write_buffer_size(t));
	aloop__transport_unref(t);
}

/* Wait until @t's write buffer drained, then upgrade. */
static int
start_tls_later(struct aloop_transport *t, int server_side,
    const struct aloop_connection_options *o, struct aloop_future *f)
{
	struct aloop_loop *loop = aloop_transport_get_loop(t);
	struct upgrade *u;
	double timeout;
	int rc;

	if ((u = calloc(1, sizeof(*u))) == NULL)
		return ALOOP_ENOMEM;
	u->timer = ALOOP_HANDLE_NONE;
	if (!server_side && o->server_hostname != NULL &&
	    (u->server_hostname = strdup(o->server_hostname)) == NULL) {
		free(u);
		return ALOOP_ENOMEM;
	}
	timeout = o->ssl_handshake_timeout > 0 ? o->ssl_handshake_timeout :
	    ALOOP__TLS_HANDSHAKE_TIMEOUT;
	u->deadline = aloop_time(loop) + timeout;
	if ((rc = aloop_call_later(loop, timeout, upgrade_timeout, u,
	    &u->timer)) != 0) {
		free(u->server_hostname);
		free(u);
		return rc;
	}
	u->ctx = o->ssl == ALOOP_TLS_DEFAULT ? o->ssl :
	    aloop_tls_context_ref(o->ssl);
	u->server_side = server_side;
	u->shutdown_timeout = o->ssl_shutdown_timeout;
	u->t = t;
	aloop__transport_ref(t);
	u->f = aloop_future_ref(f);
	if ((rc = aloop__transport_wait_drained(t, upgrade_drained, u)) != 0)
		upgrade_free(u);
	return rc;
}

int
aloop_start_tls(struct aloop_transport *t, int server_side,
    const struct aloop_connection_options *o, struct aloop_future **fut)
{
	struct aloop_future *f;
	int rc;

	if (fut == NULL)
		return ALOOP_EINVAL;
	*fut = NULL;
	if (o == NULL || o->ssl == NULL ||
	    (server_side && o->ssl == ALOOP_TLS_DEFAULT))
		return ALOOP_EINVAL;
	if (!t->ops->stream_protocol || t->ops->detach == NULL)
		return ALOOP_ENOTSUP;
	/* A forward or a sendfile owns the socket's bytes until it ends. */
	if (!(t->flags & ALOOP__T_MADE) || aloop_transport_is_closing(t) ||
	    t->fwd_in != NULL || t->fwd_out != NULL || t->sendfile != NULL)
		return ALOOP_ESTATE;
	if ((rc = aloop__loop_check(t->loop, "start_tls")) != 0)
		return rc;
	if ((rc = aloop_future_new(t->loop, &f)) != 0)
		return rc;
	if (aloop_transport_get_write_buffer_size(t) > 0)
		rc = start_tls_later(t, server_side, o, f);
	else
		rc = start_tls_now(t, o->ssl, server_side,
		    o->server_hostname, o->ssl_handshake_timeout,
		    o->ssl_shutdown_timeout, f);
	if (rc != 0) {
		aloop_future_release(f);
		return rc;
	}
	*fut = f;
	return 0;
}
