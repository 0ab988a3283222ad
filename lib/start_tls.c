/*
 * start_tls: upgrade a connected plain transport to TLS, as asyncio's
 * loop.start_tls().  The plain transport hands its socket over and ends
 * silently; a TLS transport takes the socket, runs the handshake, and the
 * same protocol, with the same state, goes on over it.
 */
#include "config.h"

#include <unistd.h>

#include <aloop/server.h>
#include <aloop/tls.h>

#include "loop-int.h"
#include "transport-int.h"

/* The TLS transport asks for the state: it is the one the protocol has. */
static int
start_tls_state(void *arg, void **state)
{
	*state = arg;
	return 0;
}

int
aloop_start_tls(struct aloop_transport *t, int server_side,
    const struct aloop_connection_options *o, struct aloop_future **fut)
{
	struct aloop_transport *nt = NULL;
	struct aloop_future *f;
	const struct aloop_protocol *proto;
	void *state;
	int fd, rc;

	if (fut == NULL)
		return ALOOP_EINVAL;
	*fut = NULL;
	if (o == NULL || o->ssl == NULL ||
	    (server_side && o->ssl == ALOOP_TLS_DEFAULT))
		return ALOOP_EINVAL;
	if (!t->ops->stream_protocol || t->ops->detach == NULL)
		return ALOOP_ENOTSUP;
	if (!(t->flags & ALOOP__T_MADE))
		return ALOOP_ESTATE;
	if ((rc = aloop__loop_check(t->loop, "start_tls")) != 0)
		return rc;
	if ((rc = aloop_future_new(t->loop, &f)) != 0)
		return rc;
	proto = t->proto;
	state = t->state;
	if ((fd = aloop__transport_detach(t)) < 0) {
		aloop_future_release(f);
		return fd;
	}
	/*
	 * Servers and connects set TCP_NODELAY already; an adopted socket
	 * may not have it, and TLS records want it.
	 */
	aloop__sock_set_nodelay(fd);
	/* From here on the socket is the TLS transport's, on failure too. */
	rc = aloop__tls_transport_new(t->loop, fd, o->ssl, server_side,
	    server_side ? NULL : o->server_hostname,
	    o->ssl_handshake_timeout, o->ssl_shutdown_timeout, proto,
	    start_tls_state, state, f, &nt);
	if (rc != 0) {
		(void)aloop_future_set_error(f, rc, "cannot start TLS: %s",
		    aloop_strerror(rc));
		*fut = f;
		return 0;
	}
	aloop__tls_mark_upgrade(nt);
	nt->close_timeout = t->close_timeout;
	aloop__transport_hand_over(t, nt);
	*fut = f;
	return 0;
}
