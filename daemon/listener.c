/*
 * One listener in one worker process: the plugin instance, the servers or
 * endpoints made over the sockets the master bound, and max_connections.
 * The connections themselves are connection.c's.
 */
#include "config.h"

#include <sys/socket.h>

#include <netdb.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "access.h"
#include "admission.h"
#include "config-int.h"
#include "listener.h"
#include "plugin_loader.h"
#include "scoreboard.h"

/* How often a paused listener looks at an older generation's count. */
#define RECOUNT_INTERVAL	0.25

static struct listener *
owner_listener(struct conn_owner *o)
{
	return (struct listener *)(void *)o;
}

static void
listener_free(struct listener *l)
{
	struct listener_host *host = l->host;

	aloop_log(ALOOP_LOG_DEBUG, "listener %s: worker %u: finished",
	    l->cl->name, host->slot);
	aloop_handle_cancel(host->loop, l->recount);
	if (l->has_instance) {
		uint32_t saved = conn_enter(&l->own, SB_FINI);

		plugin_instance_free(l->cl->plugin, l->own.instance);
		conn_leave(&l->own, saved);
	}
	for (size_t i = 0; i < l->nservers; i++)
		if (l->servers[i] != NULL)
			aloop_server_release(l->servers[i]);
	free(l->servers);
	free(l->endpoints);
	host->nalive--;
	host->gone(host, l);
	free(l);
}

static void
listener_unref(struct listener *l)
{
	if (--l->refs == 0)
		listener_free(l);
}

/* ------------------------------------------------------ max_connections */

static void
set_accepting(struct listener *l, int on)
{
	for (size_t i = 0; i < l->nservers; i++) {
		if (l->servers[i] == NULL)
			continue;
		if (on)
			aloop_server_resume_accepting(l->servers[i]);
		else
			aloop_server_pause_accepting(l->servers[i]);
	}
	l->paused = !on;
	aloop_log(ALOOP_LOG_INFO, on ? "listener %s: accepting again" :
	    "listener %s: %zu connections, not accepting", l->cl->name,
	    l->nconns + l->others);
}

static void
update_accepting(struct listener *l)
{
	size_t n = l->nconns + l->others;

	/* With overflow "close" admit() turns the excess away instead. */
	if (l->quota == 0 || l->closing || l->servers == NULL ||
	    l->cl->overflow == CONFIG_OVERFLOW_CLOSE)
		return;
	if (!l->paused && n >= l->quota)
		set_accepting(l, 0);
	else if (l->paused && n < l->quota)
		set_accepting(l, 1);
}

/*
 * The connections an older generation of this listener still holds on
 * this worker slot count against max_connections too; they leave without
 * telling this process, so look again now and then while they are there.
 */
static void
recount(void *arg)
{
	struct listener *l = arg;

	l->recount = ALOOP_HANDLE_NONE;
	if (l->closing)
		return;
	l->others = (size_t)sb_active_elsewhere(l->host->sb, l->index);
	update_accepting(l);
	if (l->others > 0 && aloop_call_later(l->host->loop,
	    RECOUNT_INTERVAL, recount, l, &l->recount) < 0)
		l->recount = ALOOP_HANDLE_NONE;
}

static void
conn_opened(struct conn_owner *o)
{
	struct listener *l = owner_listener(o);

	l->refs++;
	if (l->cl->type != CONFIG_TCP)
		return;
	l->nconns++;
	if (l->host->sb != NULL)
		sb_add(&l->host->sb->nconns, 1);
	update_accepting(l);
}

static void
conn_closed(struct conn_owner *o)
{
	struct listener *l = owner_listener(o);

	if (l->cl->type == CONFIG_TCP) {
		l->nconns--;
		if (l->host->sb != NULL)
			sb_sub(&l->host->sb->nconns, 1);
		update_accepting(l);
	}
	listener_unref(l);
}

/* ----------------------------------------------------------- admission */

/* Seconds between two log lines about one listener's refusals. */
#define REFUSED_LOG_INTERVAL	10.0

static void
refused(struct listener *l, int why, int fd, const struct sockaddr *peer,
    socklen_t len)
{
	static const char *const reasons[] = {
		[SB_REFUSED_FULL] = "max_connections",
		[SB_REFUSED_SOURCE] = "max_connections_per_source",
		[SB_REFUSED_RATE] = "connection_rate",
		[SB_REFUSED_ACCESS] = "access",
		[SB_PROXY_FAILURES] = "proxy_protocol",
	};
	double now = aloop_time(l->host->loop);

	SB_COUNT(l->own.m, why, 1);
	connection_log_refused(&l->own, fd, peer, len, reasons[why]);
	l->refused++;
	if (l->refused_logged != 0 &&
	    now - l->refused_logged < REFUSED_LOG_INTERVAL)
		return;
	aloop_log(ALOOP_LOG_WARNING, "listener %s: worker %u: %" PRIu64
	    " connection%s reset on accept%s (latest: %s)", l->cl->name,
	    l->host->slot, l->refused, l->refused == 1 ? "" : "s",
	    l->refused_logged != 0 ? " in the last 10 s" : "", reasons[why]);
	l->refused = 0;
	l->refused_logged = now;
}

/* Seconds between two log lines about one denied source. */
#define DENIED_LOG_INTERVAL	60

/*
 * Count a client allow/deny refused; name it in the log at most once a
 * minute per source, whichever worker sees it, so that a scan or a flood
 * from one address is one line, not one per connection.
 */
static void
denied(struct listener *l, int fd, const struct sockaddr *peer,
    socklen_t len)
{
	char who[NI_MAXHOST + 32] = "a local peer";
	uint64_t key = adm_key(l->cl->name, peer, len);
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	SB_COUNT(l->own.m, SB_REFUSED_ACCESS, 1);
	connection_log_refused(&l->own, fd, peer, len, "access");
	if (peer->sa_family == AF_UNIX) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred,
		    &clen) == 0) {
			snprintf(who, sizeof(who), "uid %u gid %u (pid %d)",
			    (unsigned)cred.uid, (unsigned)cred.gid,
			    (int)cred.pid);
			key ^= (uint64_t)cred.uid * UINT64_C(0x100000001b3);
		}
	} else
		(void)getnameinfo(peer, len, who, sizeof(who), NULL, 0,
		    NI_NUMERICHOST);
	if (adm_once_per(key, DENIED_LOG_INTERVAL))
		aloop_log(ALOOP_LOG_NOTICE, "listener %s: access denied to %s "
		    "(logged at most once a minute for it)", l->cl->name, who);
}

/*
 * The servers' accept filter: allow and deny, max_connections with
 * overflow "close", the
 * rates and the per-source count, in that order, before the plugin or a
 * TLS handshake costs anything.  A refused client is reset by the
 * library.  Per-source limits need an address: UNIX peers have none.
 */
static int
admit(void *arg, int fd, const struct sockaddr *peer, socklen_t len,
    uintptr_t *ticket)
{
	struct listener *l = owner_listener(arg);
	const struct config_listener *cl = l->cl;
	int by_source = peer->sa_family == AF_INET ||
	    peer->sa_family == AF_INET6;
	uint64_t key = 0;

	if (!access_allows(&cl->access, fd, peer, len)) {
		denied(l, fd, peer, len);
		return -1;
	}
	if (l->quota > 0 && cl->overflow == CONFIG_OVERFLOW_CLOSE &&
	    l->held + l->others >= l->quota) {
		refused(l, SB_REFUSED_FULL, fd, peer, len);
		return -1;
	}
	if (by_source && (cl->connection_rate_per_source > 0 ||
	    cl->max_per_source > 0))
		key = adm_key(cl->name, peer, len);
	if ((cl->connection_rate > 0 &&
	    !adm_rate(l->key, cl->connection_rate)) ||
	    (key != 0 && cl->connection_rate_per_source > 0 &&
	    !adm_rate(key, cl->connection_rate_per_source))) {
		refused(l, SB_REFUSED_RATE, fd, peer, len);
		return -1;
	}
	*ticket = ADM_UNTRACKED;
	if (key != 0 && cl->max_per_source > 0 &&
	    (*ticket = adm_source_take(key, cl->max_per_source)) ==
	    ADM_REFUSED) {
		refused(l, SB_REFUSED_SOURCE, fd, peer, len);
		return -1;
	}
	l->held++;
	return 0;
}

/*
 * A connection reset for its PROXY header (malformed, absent or late):
 * counted and logged as a refusal, since no plugin or TLS work happened.
 */
static void
proxy_failed(void *arg, const struct aloop_error *err)
{
	struct listener *l = owner_listener(arg);

	aloop_log(ALOOP_LOG_DEBUG, "listener %s: PROXY protocol header: %s",
	    l->cl->name, err->message);
	/* The header never came whole: no socket or peer to name. */
	refused(l, SB_PROXY_FAILURES, -1, NULL, 0);
}

static void
admit_release(void *arg, uintptr_t ticket)
{
	struct listener *l = owner_listener(arg);

	adm_source_release(ticket);
	l->held--;
}

/* ------------------------------------------------------------- opening */

static void
open_step_done(struct listener *l)
{
	if (--l->pending > 0)
		return;
	/* The open's own reference keeps @l alive while its owner decides. */
	if (l->opened != NULL)
		l->opened(l, l->failed ? -1 : 0, l->opened_arg);
	listener_unref(l);
}

struct adopt {
	struct listener		*l;
	struct endpoint		*e;	/* datagram listeners */
};

static void
adopted(struct aloop_future *fut, void *arg)
{
	struct adopt *op = arg;
	struct listener *l = op->l;
	const struct aloop_error *err;
	void *res = NULL;

	if (aloop_future_result(fut, &res) != 0) {
		err = aloop_future_error(fut);
		aloop_log(ALOOP_LOG_ERR, "listener %s: cannot serve its "
		    "socket: %s", l->cl->name, err != NULL ? err->message :
		    "cancelled");
		l->failed = 1;
		if (op->e != NULL)
			endpoint_discard(op->e);
	} else if (l->cl->type == CONFIG_TCP) {
		l->servers[l->nservers++] = res;
		if (l->closing)
			aloop_server_close(res);
	} else if (l->closing)
		aloop_transport_close(res);
	aloop_future_release(fut);
	free(op);
	open_step_done(l);
}

static int
adopt(struct listener *l, int fd)
{
	const struct config_listener *cl = l->cl;
	struct aloop_future *fut = NULL;
	struct adopt *op;
	int r;

	if ((op = calloc(1, sizeof(*op))) == NULL) {
		close(fd);
		return ALOOP_ENOMEM;
	}
	op->l = l;
	if (cl->type == CONFIG_TCP) {
		struct aloop_server_options o;
		int on = cl->keepalive != 0;

		/*
		 * Once on the listening socket: accepted sockets inherit
		 * SO_KEEPALIVE (and TCP_NODELAY, which the server sets),
		 * where a setsockopt per connection used to do it.  A UNIX
		 * socket takes the flag and ignores it.
		 */
		if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on,
		    sizeof(on)) == -1)
			aloop_log_errno(ALOOP_LOG_DEBUG, "listener %s: "
			    "SO_KEEPALIVE", cl->name);
		aloop_server_options_init(&o);
		o.tcp_nodelay = cl->tcp_nodelay != 0;
		o.sock = fd;
		o.ssl = cl->tls != NULL ? cl->tls->ctx : NULL;
		/*
		 * Listeners with the same TLS settings share a context
		 * (config_listener.c); sessions stay the listener's own.
		 */
		o.ssl_session_scope = cl->name;
		o.ssl_handshake_failed = connection_tls_failed;
		o.ssl_handshake_timeout = cl->handshake_timeout;
		o.accept_filter = admit;
		o.accept_release = admit_release;
		/*
		 * The filter above sees the balancer (the socket's peer):
		 * allow and deny name who may send PROXY headers.
		 */
		o.proxy_protocol = cl->proxy_protocol;
		o.proxy_protocol_timeout = cl->proxy_protocol_timeout;
		o.proxy_failed = proxy_failed;
		o.backlog = cl->backlog;
		/* Nothing accepts before every listener is in. */
		o.start_serving = 0;
		r = aloop_create_server(l->host->loop, &connection_protocol,
		    connection_factory, &l->own, NULL, NULL, &o, &fut);
	} else {
		struct aloop_datagram_options o;

		op->e = endpoint_new(&l->own, &l->endpoints[l->nendpoints++]);
		if (op->e == NULL) {
			free(op);
			close(fd);
			return ALOOP_ENOMEM;
		}
		aloop_datagram_options_init(&o);
		o.sock = fd;
		r = aloop_create_datagram_endpoint(l->host->loop,
		    &endpoint_protocol, endpoint_factory, op->e, &o, &fut);
	}
	if (r < 0) {
		aloop_log(ALOOP_LOG_ERR, "listener %s: cannot serve its "
		    "socket: %s", cl->name, aloop_strerror(r));
		if (op->e != NULL)
			endpoint_discard(op->e);
		free(op);
		/* The library closed an adopted socket only for ENOMEM. */
		if (r != ALOOP_ENOMEM)
			close(fd);
		return r;
	}
	l->pending++;
	if (aloop_future_add_done_callback(fut, adopted, op) < 0) {
		/* It goes on; only its outcome is unknown. */
		aloop_future_release(fut);
		l->pending--;
		return ALOOP_ENOMEM;
	}
	return 0;
}

static int
make_instance(struct listener *l)
{
	const struct config_listener *cl = l->cl;
	struct aloop_plugin_env env;
	uint32_t saved;
	int r;

	memset(&env, 0, sizeof(env));
	env.size = sizeof(env);
	env.loop = l->host->loop;
	env.listener = cl->name;
	env.type = cl->type == CONFIG_TCP ? ALOOP_PLUGIN_STREAM :
	    ALOOP_PLUGIN_DATAGRAM;
	env.worker = l->host->slot;
	env.workers = l->host->nslots;
	saved = conn_enter(&l->own, SB_INIT);
	r = plugin_instance_new(cl->plugin, &env, cl->settings,
	    &l->own.instance);
	conn_leave(&l->own, saved);
	if (r < 0) {
		aloop_log(ALOOP_LOG_ERR, "listener %s: plugin %s (%s): init "
		    "failed: %s", cl->name, l->own.desc->name,
		    plugin_file(cl->plugin), aloop_strerror(r));
		SB_COUNT(l->own.m, SB_PLUGIN_ERRORS, 1);
		return r;
	}
	l->has_instance = 1;
	return 0;
}

int
listener_open(struct listener_host *host, const struct config_listener *cl,
    size_t index, const int *fds, size_t nfds,
    void (*opened)(struct listener *, int, void *), void *arg,
    struct listener **out)
{
	struct listener *l;
	size_t i = 0;
	int r = ALOOP_ENOMEM;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		goto fail_fds;
	l->host = host;
	l->cl = cl;
	l->index = index;
	l->opened = opened;
	l->opened_arg = arg;
	l->recount = ALOOP_HANDLE_NONE;
	l->own.loop = host->loop;
	l->own.desc = plugin_descriptor(cl->plugin);
	l->own.m = host->sb != NULL ? sb_counters(host->sb, index) : NULL;
	l->own.where = host->sb != NULL ? &host->sb->where : NULL;
	l->own.index = (uint32_t)index;
	l->own.worker = host->slot;
	l->own.name = cl->name;
	l->own.idle_timeout = cl->idle_timeout;
	l->own.first_byte_timeout = cl->first_byte_timeout;
	l->own.write_timeout = cl->write_timeout;
	l->own.datagram_rate = cl->datagram_rate_per_source;
	l->own.access = &cl->access;
	l->own.access_log = cl->access_log ? host->access_log : -1;
	l->key = adm_key(cl->name, NULL, 0);
	l->own.tls = cl->tls != NULL;
	l->own.opened = conn_opened;
	l->own.closed = conn_closed;
	/*
	 * Workers share max_connections: each takes its part, so that a
	 * listener never holds more in all (but at least one each).
	 */
	if (cl->max_connections > 0) {
		unsigned long q = cl->max_connections / host->nslots +
		    (host->slot < cl->max_connections % host->nslots);

		l->quota = q > 0 ? q : 1;
	}
	host->nalive++;
	/* The worker's reference, and the open's until every socket is in. */
	l->refs = 2;
	l->servers = calloc(nfds + 1, sizeof(*l->servers));
	l->endpoints = calloc(nfds + 1, sizeof(*l->endpoints));
	if (l->servers == NULL || l->endpoints == NULL ||
	    (r = make_instance(l)) < 0) {
		l->closing = 1;
		l->refs = 1;
		l->opened = NULL;
		listener_unref(l);
		goto fail_fds;
	}
	l->pending = 1;	/* held until every adoption has started */
	for (i = 0; i < nfds; i++)
		if (adopt(l, fds[i]) < 0) {
			l->failed = 1;
			break;
		}
	/* What was not adopted is still ours. */
	for (i = i < nfds ? i + 1 : nfds; i < nfds; i++)
		close(fds[i]);
	*out = l;
	open_step_done(l);
	return 0;
fail_fds:
	for (; i < nfds; i++)
		close(fds[i]);
	return r;
}

void
listener_serve(struct listener *l)
{
	for (size_t i = 0; i < l->nservers; i++) {
		if (l->servers[i] != NULL &&
		    aloop_server_start_serving(l->servers[i]) < 0)
			aloop_log(ALOOP_LOG_ERR, "listener %s: cannot start "
			    "accepting", l->cl->name);
	}
	if (l->quota > 0)
		recount(l);
}

/*
 * Keep @l alive until @srv is closed and its last connection is gone.  A
 * TLS connection still in its handshake when the listener retires calls
 * the factory (with @l) only once the handshake is done, so the listener
 * must outlive every connection its servers hold, not only those the
 * factory has seen.
 */
static void
server_closed(struct aloop_future *fut, void *arg)
{
	aloop_future_release(fut);
	listener_unref(arg);
}

static void
hold_until_closed(struct listener *l, struct aloop_server *srv)
{
	struct aloop_future *fut;

	if (aloop_server_wait_closed(srv, &fut) < 0) {
		aloop_log(ALOOP_LOG_WARNING, "listener %s: cannot wait for "
		    "its server to close", l->cl->name);
		return;
	}
	l->refs++;
	if (aloop_future_add_done_callback(fut, server_closed, l) < 0) {
		aloop_future_release(fut);
		l->refs--;
	}
}

void
listener_retire(struct listener *l)
{
	if (l->closing)
		return;
	l->closing = 1;
	aloop_handle_cancel(l->host->loop, l->recount);
	l->recount = ALOOP_HANDLE_NONE;
	for (size_t i = 0; i < l->nservers; i++) {
		if (l->servers[i] == NULL)
			continue;
		aloop_server_close(l->servers[i]);
		hold_until_closed(l, l->servers[i]);
	}
	for (size_t i = 0; i < l->nendpoints; i++)
		if (l->endpoints[i] != NULL)
			aloop_transport_close(l->endpoints[i]);
	listener_unref(l);
}

void
listener_abort(struct listener *l)
{
	l->own.shutting = 1;
	/*
	 * A task's cleanup runs first: its cancelled await returns on the
	 * next turn, ahead of the connection_lost of the aborts below.
	 */
	connection_cancel_tasks(&l->own);
	for (size_t i = 0; i < l->nservers; i++)
		if (l->servers[i] != NULL)
			aloop_server_abort_clients(l->servers[i]);
	for (size_t i = 0; i < l->nendpoints; i++)
		if (l->endpoints[i] != NULL)
			aloop_transport_abort(l->endpoints[i]);
}
