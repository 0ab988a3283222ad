/*
 * One listener on one worker.  The plugin's protocol is wrapped so that
 * the daemon sees every connection come and go: it counts them (for
 * max_connections, STATUS= and the drain), arms the idle timeout, applies
 * the socket options, and knows when the plugin instance may be finished.
 * Runs on the worker's loop thread only.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "activation.h"
#include "config-int.h"
#include "listener.h"
#include "metrics.h"
#include "plugin_loader.h"
#include "worker.h"

/* A listener holds few sockets: one per address, two for "*". */
#define LISTENER_FDS_MAX	64

/* The daemon's state around one stream connection of a plugin. */
struct conn {
	struct listener		*l;
	void			*state;		/* the plugin's */
	struct aloop_transport	*t;
	aloop_handle_t		 idle;
	double			 last_rx;	/* loop time of the last read */
	size_t			 last_wbuf;	/* write buffer, last check */
	const uint64_t		*written;	/* the transport's byte count */
	uint64_t		 counted;	/* of it, in the metrics */
};

/* The same around one datagram endpoint. */
struct dgram {
	struct listener		*l;
	void			*state;
	size_t			 slot;		/* in l->endpoints */
	const uint64_t		*written;	/* as in struct conn */
	uint64_t		 counted;
};

/*
 * Move what the plugin wrote since the last look into the metrics.  The
 * plugin writes to the transport directly, so the daemon looks after each
 * callback and at the end; bytes written from a timer show at the next.
 */
static void
count_written(struct listener *l, const uint64_t *written, uint64_t *counted)
{
	if (written != NULL && *written != *counted) {
		METRICS_COUNT(l->m, bytes_out, *written - *counted);
		*counted = *written;
	}
}

static const struct aloop_plugin *
desc(const struct listener *l)
{
	return plugin_descriptor(l->cl->plugin);
}

/* Unlink @l from the list at @head, if it is there. */
static int
list_remove(struct listener **head, struct listener *l)
{
	for (struct listener **pp = head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			l->next = NULL;
			return 1;
		}
	}
	return 0;
}

static void
listener_free(struct listener *l)
{
	struct worker *w = l->w;

	list_remove(&w->retired, l);
	aloop_log(ALOOP_LOG_DEBUG, "listener %s: worker %u: finished",
	    l->cl->name, w->id);
	if (l->lineage != NULL) {
		if (l->lineage->current == l)
			l->lineage->current = NULL;
		if (--l->lineage->refs == 0)
			free(l->lineage);
	}
	if (l->has_instance)
		plugin_instance_free(l->cl->plugin, l->instance);
	for (size_t i = 0; i < l->nservers; i++)
		if (l->servers[i] != NULL)
			aloop_server_release(l->servers[i]);
	for (size_t i = 0; i < l->ncarried; i++)
		aloop_server_release(l->carried[i]);
	free(l->servers);
	free(l->owns_path);
	free(l->carried);
	free(l->endpoints);
	rtconfig_unref(w->rt, l->rc);
	free(l);
	w->nalive--;
	if (w->stopping)
		runtime_worker_drained(w->rt, w);
}

static void
listener_unref(struct listener *l)
{
	if (--l->refs == 0)
		listener_free(l);
}

/* ------------------------------------------------ the connection wrapper */

static void
update_accepting(struct listener *l)
{
	size_t n;

	if (l == NULL || l->quota == 0 || l->closing)
		return;
	n = l->lineage->nconns;
	if (!l->paused && n >= l->quota) {
		for (size_t i = 0; i < l->nservers; i++)
			if (l->servers[i] != NULL)
				aloop_server_pause_accepting(l->servers[i]);
		l->paused = 1;
		aloop_log(ALOOP_LOG_INFO,
		    "listener %s: worker %u: %zu connections, not accepting",
		    l->cl->name, l->w->id, n);
	} else if (l->paused && n < l->quota) {
		for (size_t i = 0; i < l->nservers; i++)
			if (l->servers[i] != NULL)
				aloop_server_resume_accepting(l->servers[i]);
		l->paused = 0;
		aloop_log(ALOOP_LOG_INFO,
		    "listener %s: worker %u: accepting again",
		    l->cl->name, l->w->id);
	}
}

static int
conn_factory(void *arg, void **state)
{
	struct listener *l = arg;
	struct conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ALOOP_ENOMEM;
	r = desc(l)->stream_factory(l->instance, &c->state);
	if (r < 0) {
		free(c);
		METRICS_COUNT(l->m, plugin_errors, 1);
		return r;
	}
	METRICS_COUNT(l->m, accepted, 1);
	METRICS_COUNT(l->m, active, 1);
	/* A TLS server calls the factory once the handshake is done. */
	if (l->rc->tls[l->index] != NULL)
		METRICS_COUNT(l->m, tls_handshakes, 1);
	c->l = l;
	c->idle = ALOOP_HANDLE_NONE;
	l->refs++;
	l->nconns++;
	l->lineage->nconns++;
	atomic_fetch_add(&l->w->nconns, 1);
	*state = c;
	update_accepting(l->lineage->current);
	return 0;
}

static void idle_check(void *arg);

static void
arm_idle(struct conn *c, double delay)
{
	if (aloop_call_later(c->l->w->loop, delay, idle_check, c,
	    &c->idle) < 0)
		c->idle = ALOOP_HANDLE_NONE;
}

/*
 * Seconds since bytes last moved in either direction.  The plugin writes
 * straight to the transport, so the daemon cannot see writes; for TCP the
 * kernel knows (TCP_INFO's last_data_sent/recv, in milliseconds), which
 * also counts TLS bytes.  Elsewhere a changing write buffer stands in.
 */
static double
idle_for(struct conn *c)
{
	double now = aloop_time(c->l->w->loop);
	double idle = now - c->last_rx;
	const int *fd;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	size_t wbuf;

	fd = aloop_transport_get_extra_info(c->t, "socket", NULL);
	if (fd != NULL && getsockopt(*fd, IPPROTO_TCP, TCP_INFO, &ti,
	    &len) == 0 && len >= sizeof(ti)) {
		double sent = ti.tcpi_last_data_sent / 1000.0;
		double recvd = ti.tcpi_last_data_recv / 1000.0;

		if (sent < idle)
			idle = sent;
		if (recvd < idle)
			idle = recvd;
		return idle;
	}
	wbuf = aloop_transport_get_write_buffer_size(c->t);
	if (wbuf != c->last_wbuf) {
		c->last_wbuf = wbuf;
		c->last_rx = now;
		return 0;
	}
	return idle;
}

static void
idle_check(void *arg)
{
	struct conn *c = arg;
	double timeout = c->l->cl->idle_timeout;
	double idle;

	c->idle = ALOOP_HANDLE_NONE;
	if (aloop_transport_is_closing(c->t))
		return;
	idle = idle_for(c);
	if (idle < timeout) {
		arm_idle(c, timeout - idle);
		return;
	}
	aloop_log(ALOOP_LOG_DEBUG, "listener %s: connection idle for %.0f s,"
	    " closing", c->l->cl->name, idle);
	/* A peer that stopped reading would hold a flushing close forever. */
	if (aloop_transport_get_write_buffer_size(c->t) > 0)
		aloop_transport_abort(c->t);
	else
		aloop_transport_close(c->t);
}

static void
set_socket_options(struct conn *c)
{
	const struct config_listener *cl = c->l->cl;
	const struct sockaddr *sa;
	const int *fd;
	int on;

	fd = aloop_transport_get_extra_info(c->t, "socket", NULL);
	sa = aloop_transport_get_extra_info(c->t, "sockname", NULL);
	if (fd == NULL || sa == NULL ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return;
	on = cl->tcp_nodelay != 0;
	if (setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1)
		aloop_log_errno(ALOOP_LOG_DEBUG, "listener %s: TCP_NODELAY",
		    cl->name);
	on = cl->keepalive != 0;
	if (setsockopt(*fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == -1)
		aloop_log_errno(ALOOP_LOG_DEBUG, "listener %s: SO_KEEPALIVE",
		    cl->name);
}

static void
conn_made(struct aloop_transport *t, void *state)
{
	struct conn *c = state;
	const struct aloop_protocol *p = desc(c->l)->stream;

	c->t = t;
	c->last_rx = aloop_time(c->l->w->loop);
	set_socket_options(c);
	if (c->l->cl->idle_timeout > 0)
		arm_idle(c, c->l->cl->idle_timeout);
	if (aloop_log_get_level() >= ALOOP_LOG_DEBUG) {
		char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "";
		const struct sockaddr *sa;
		size_t salen = 0;

		sa = aloop_transport_get_extra_info(t, "peername", &salen);
		if (sa != NULL && sa->sa_family != AF_UNIX)
			(void)getnameinfo(sa, (socklen_t)salen, host,
			    sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		aloop_log(ALOOP_LOG_DEBUG, "listener %s: worker %u: connection "
		    "from %s%s%s", c->l->cl->name, c->l->w->id,
		    sa != NULL && sa->sa_family == AF_UNIX ? "a local peer" :
		    host, port[0] != '\0' ? " port " : "", port);
	}
	c->written = aloop_transport_get_extra_info(t, "bytes_written", NULL);
	if (p->connection_made != NULL)
		p->connection_made(t, c->state);
	count_written(c->l, c->written, &c->counted);
}

static void
conn_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct conn *c = state;
	const struct aloop_protocol *p = desc(c->l)->stream;

	c->last_rx = aloop_time(c->l->w->loop);
	METRICS_COUNT(c->l->m, bytes_in, len);
	if (p->data_received != NULL)
		p->data_received(t, c->state, data, len);
	count_written(c->l, c->written, &c->counted);
}

static int
conn_eof(struct aloop_transport *t, void *state)
{
	struct conn *c = state;
	const struct aloop_protocol *p = desc(c->l)->stream;

	int keep;

	c->last_rx = aloop_time(c->l->w->loop);
	keep = p->eof_received != NULL ? p->eof_received(t, c->state) : 0;
	count_written(c->l, c->written, &c->counted);
	return keep;
}

static void
conn_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct conn *c = state;
	struct listener *l = c->l;
	const struct aloop_protocol *p = desc(l)->stream;

	aloop_handle_cancel(l->w->loop, c->idle);
	if (err != NULL)
		aloop_log(ALOOP_LOG_DEBUG, "listener %s: connection lost: %s",
		    l->cl->name, err->message);
	count_written(l, c->written, &c->counted);
	if (p->connection_lost != NULL)
		p->connection_lost(t, c->state, err);
	free(c);
	if (l->m != NULL) {
		metrics_sub(&l->m->active, 1);
		metrics_add(&l->m->closed, 1);
	}
	l->nconns--;
	l->lineage->nconns--;
	atomic_fetch_sub(&l->w->nconns, 1);
	/* An old generation's client leaving makes room in the new one. */
	update_accepting(l->lineage->current);
	listener_unref(l);
}

static void
conn_pause(struct aloop_transport *t, void *state)
{
	struct conn *c = state;
	const struct aloop_protocol *p = desc(c->l)->stream;

	if (p->pause_writing != NULL)
		p->pause_writing(t, c->state);
	count_written(c->l, c->written, &c->counted);
}

static void
conn_resume(struct aloop_transport *t, void *state)
{
	struct conn *c = state;
	const struct aloop_protocol *p = desc(c->l)->stream;

	if (p->resume_writing != NULL)
		p->resume_writing(t, c->state);
	count_written(c->l, c->written, &c->counted);
}

/* A TLS client that never got as far as the plugin. */
static void
conn_tls_failed(void *arg, const struct aloop_error *err)
{
	struct listener *l = arg;

	METRICS_COUNT(l->m, tls_failures, 1);
}

static const struct aloop_protocol conn_protocol = {
	.connection_made = conn_made,
	.data_received = conn_data,
	.eof_received = conn_eof,
	.connection_lost = conn_lost,
	.pause_writing = conn_pause,
	.resume_writing = conn_resume,
};

/* ---------------------------------------------------- the datagram wrapper */

static int
dgram_factory(void *arg, void **state)
{
	struct dgram *d = arg;
	struct listener *l = d->l;

	int r;

	*state = d;
	r = desc(l)->datagram_factory(l->instance, &d->state);
	if (r < 0)
		METRICS_COUNT(l->m, plugin_errors, 1);
	return r;
}

static void
dgram_made(struct aloop_transport *t, void *state)
{
	struct dgram *d = state;
	const struct aloop_datagram_protocol *p = desc(d->l)->datagram;

	d->l->endpoints[d->slot] = t;
	d->written = aloop_transport_get_extra_info(t, "bytes_written", NULL);
	if (p->connection_made != NULL)
		p->connection_made(t, d->state);
	count_written(d->l, d->written, &d->counted);
}

static void
dgram_received(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	struct dgram *d = state;
	const struct aloop_datagram_protocol *p = desc(d->l)->datagram;

	METRICS_COUNT(d->l->m, bytes_in, len);
	if (p->datagram_received != NULL)
		p->datagram_received(t, d->state, data, len, addr, addrlen);
	count_written(d->l, d->written, &d->counted);
}

static void
dgram_error(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct dgram *d = state;
	const struct aloop_datagram_protocol *p = desc(d->l)->datagram;

	if (p->error_received != NULL)
		p->error_received(t, d->state, err);
}

static void
dgram_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct dgram *d = state;
	struct listener *l = d->l;
	const struct aloop_datagram_protocol *p = desc(l)->datagram;

	if (err != NULL)
		aloop_log(ALOOP_LOG_WARNING, "listener %s: endpoint lost: %s",
		    l->cl->name, err->message);
	count_written(l, d->written, &d->counted);
	if (p->connection_lost != NULL)
		p->connection_lost(t, d->state, err);
	l->endpoints[d->slot] = NULL;
	free(d);
	listener_unref(l);
}

static void
dgram_pause(struct aloop_transport *t, void *state)
{
	struct dgram *d = state;
	const struct aloop_datagram_protocol *p = desc(d->l)->datagram;

	if (p->pause_writing != NULL)
		p->pause_writing(t, d->state);
	count_written(d->l, d->written, &d->counted);
}

static void
dgram_resume(struct aloop_transport *t, void *state)
{
	struct dgram *d = state;
	const struct aloop_datagram_protocol *p = desc(d->l)->datagram;

	if (p->resume_writing != NULL)
		p->resume_writing(t, d->state);
	count_written(d->l, d->written, &d->counted);
}

static const struct aloop_datagram_protocol dgram_protocol = {
	.connection_made = dgram_made,
	.datagram_received = dgram_received,
	.error_received = dgram_error,
	.connection_lost = dgram_lost,
	.pause_writing = dgram_pause,
	.resume_writing = dgram_resume,
};

/* --------------------------------------------------------------- opening */

/* Apply `mode` and `owner` to a UNIX socket file this listener created. */
static int
unix_socket_perms(const struct config_listener *cl, const char *path)
{
	char *user, *group;
	struct passwd *pw;
	struct group *gr;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	int r = 0;

	if (cl->mode >= 0 && chmod(path, (mode_t)cl->mode) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "listener %s: chmod %s",
		    cl->name, path);
		return -1;
	}
	if (cl->owner == NULL)
		return 0;
	user = strdup(cl->owner);
	if (user == NULL)
		return -1;
	group = strchr(user, ':');
	if (group != NULL)
		*group++ = '\0';
	if (user[0] != '\0') {
		pw = getpwnam(user);
		if (pw == NULL) {
			aloop_log(ALOOP_LOG_ERR, "listener %s: no user %s",
			    cl->name, user);
			r = -1;
		} else {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		}
	}
	if (r == 0 && group != NULL && group[0] != '\0') {
		gr = getgrnam(group);
		if (gr == NULL) {
			aloop_log(ALOOP_LOG_ERR, "listener %s: no group %s",
			    cl->name, group);
			r = -1;
		} else
			gid = gr->gr_gid;
	}
	if (r == 0 && chown(path, uid, gid) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "listener %s: chown %s %s",
		    cl->name, cl->owner, path);
		r = -1;
	}
	free(user);
	return r;
}

struct bind_op {
	struct listener		*l;
	const struct config_address *addr;	/* NULL when adopting */
	struct dgram		*d;		/* datagram listeners */
};

static void
log_bound(struct listener *l, const struct bind_op *op)
{
	char desc_addr[128] = "an adopted socket";
	const struct sockaddr *sa = NULL;
	char host[64], port[16];
	const int *fds;
	size_t n = 0;
	socklen_t len;

	if (op->addr != NULL)
		snprintf(desc_addr, sizeof(desc_addr), "%s", op->addr->text);
	if (l->w->id != 0)
		return;
	/*
	 * Say which port the kernel gave for port 0: the operator (and the
	 * tests, which bind port 0) learn the address from this line.
	 */
	if (l->cl->type == CONFIG_TCP && l->nservers > 0) {
		fds = aloop_server_sockets(l->servers[l->nservers - 1], &n);
		for (size_t i = 0; i < n; i++) {
			struct sockaddr_storage ss;

			len = sizeof(ss);
			if (getsockname(fds[i], (struct sockaddr *)&ss,
			    &len) == -1 || getnameinfo((struct sockaddr *)&ss,
			    len, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
				continue;
			aloop_log(ALOOP_LOG_NOTICE,
			    "listener %s: %s %s listening on %s%s%s:%s",
			    l->cl->name, desc(l)->name, l->rc->tls[l->index] ?
			    "tls" : "tcp", ss.ss_family == AF_INET6 ? "[" : "",
			    host, ss.ss_family == AF_INET6 ? "]" : "", port);
		}
		if (n > 0)
			return;
	}
	if (op->d != NULL && l->endpoints[op->d->slot] != NULL)
		sa = aloop_transport_get_extra_info(l->endpoints[op->d->slot],
		    "sockname", NULL);
	if (sa != NULL && (sa->sa_family == AF_INET ||
	    sa->sa_family == AF_INET6) && getnameinfo(sa,
	    sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6), host, sizeof(host), port,
	    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
		aloop_log(ALOOP_LOG_NOTICE,
		    "listener %s: %s udp listening on %s%s%s:%s", l->cl->name,
		    desc(l)->name, sa->sa_family == AF_INET6 ? "[" : "", host,
		    sa->sa_family == AF_INET6 ? "]" : "", port);
		return;
	}
	aloop_log(ALOOP_LOG_NOTICE, "listener %s: %s listening on %s",
	    l->cl->name, desc(l)->name, desc_addr);
}

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

static void
bind_done(struct aloop_future *fut, void *arg)
{
	struct bind_op *op = arg;
	struct listener *l = op->l;
	const struct aloop_error *err;
	void *res = NULL;

	if (aloop_future_result(fut, &res) != 0) {
		err = aloop_future_error(fut);
		aloop_log(ALOOP_LOG_ERR, "listener %s: cannot listen on %s: %s",
		    l->cl->name, op->addr != NULL ? op->addr->text :
		    "an adopted socket", err != NULL ? err->message :
		    "cancelled");
		l->failed = 1;
		if (op->d != NULL) {
			free(op->d);
			l->refs--;
		}
	} else if (l->cl->type == CONFIG_TCP) {
		l->servers[l->nservers++] = res;
		l->owns_path[l->nservers - 1] = op->addr != NULL &&
		    op->addr->kind == CONFIG_ADDR_UNIX;
		/* Retired while binding: this one must not listen either. */
		if (l->closing)
			aloop_server_close(res);
		else if (op->addr != NULL && op->addr->kind ==
		    CONFIG_ADDR_UNIX && unix_socket_perms(l->cl,
		    op->addr->path) < 0)
			l->failed = 1;
		else
			log_bound(l, op);
	} else {
		l->endpoints[op->d->slot] = res;
		if (l->closing)
			aloop_transport_close(res);
		else
			log_bound(l, op);
	}
	aloop_future_release(fut);
	free(op);
	open_step_done(l);
}

static int
start_bind(struct listener *l, const struct config_address *addr, int fd)
{
	const struct config_listener *cl = l->cl;
	struct aloop_future *fut = NULL;
	struct bind_op *op;
	int r = 0;

	op = calloc(1, sizeof(*op));
	if (op == NULL)
		goto fail;
	op->l = l;
	op->addr = addr;
	if (cl->type == CONFIG_TCP) {
		struct aloop_server_options o;

		aloop_server_options_init(&o);
		o.backlog = cl->backlog;
		o.reuse_port = cl->reuse_port;
		o.ssl = l->rc->tls[l->index];
		o.ssl_handshake_failed = conn_tls_failed;
		/* Nothing accepts before the whole reload or start-up is in. */
		o.start_serving = 0;
		o.sock = fd;
		if (fd >= 0)
			r = aloop_create_server(l->w->loop, &conn_protocol,
			    conn_factory, l, NULL, NULL, &o, &fut);
		else if (addr->kind == CONFIG_ADDR_UNIX)
			r = aloop_create_unix_server(l->w->loop, &conn_protocol,
			    conn_factory, l, addr->path, &o, &fut);
		else
			r = aloop_create_server(l->w->loop, &conn_protocol,
			    conn_factory, l, addr->host, addr->port, &o, &fut);
	} else {
		struct aloop_datagram_options o;

		op->d = calloc(1, sizeof(*op->d));
		if (op->d == NULL)
			goto fail;
		op->d->l = l;
		op->d->slot = l->nendpoints++;
		aloop_datagram_options_init(&o);
		o.reuse_port = cl->reuse_port;
		o.sock = fd;
		if (fd < 0) {
			o.local_host = addr->host;
			o.local_port = addr->port;
		}
		r = aloop_create_datagram_endpoint(l->w->loop, &dgram_protocol,
		    dgram_factory, op->d, &o, &fut);
		if (r == 0)
			l->refs++;	/* the endpoint's, until it is lost */
	}
	if (r < 0) {
		aloop_log(ALOOP_LOG_ERR, "listener %s: cannot listen on %s: %s",
		    cl->name, addr != NULL ? addr->text : "an adopted socket",
		    aloop_strerror(r));
		goto fail;
	}
	l->pending++;
	if (aloop_future_add_done_callback(fut, bind_done, op) < 0) {
		/* The operation goes on; only its outcome is unknown. */
		aloop_future_release(fut);
		l->pending--;
		l->failed = 1;
		return -1;
	}
	return 0;
fail:
	if (op != NULL && op->d != NULL) {
		free(op->d);
		l->nendpoints--;
	}
	free(op);
	/*
	 * An adopted socket the library could not take is still ours, except
	 * when it failed for memory: it then closed the socket itself.
	 */
	if (fd >= 0 && r != ALOOP_ENOMEM)
		close(fd);
	l->failed = 1;
	return -1;
}

size_t
listener_sockets(const struct listener *l, int *fds, size_t max)
{
	size_t n = 0, k;
	const int *s;

	for (size_t i = 0; i < l->nservers; i++) {
		if (l->servers[i] == NULL)
			continue;
		s = aloop_server_sockets(l->servers[i], &k);
		for (size_t j = 0; j < k && n < max; j++)
			fds[n++] = s[j];
	}
	for (size_t i = 0; i < l->nendpoints; i++) {
		if (l->endpoints[i] == NULL)
			continue;
		s = aloop_transport_get_extra_info(l->endpoints[i], "socket",
		    NULL);
		if (s != NULL && n < max)
			fds[n++] = *s;
	}
	return n;
}

int
listener_same_sockets(const struct config_listener *a,
    const struct config_listener *b)
{
	if (a->type != b->type || a->nlisten != b->nlisten)
		return 0;
	for (size_t i = 0; i < a->nlisten; i++) {
		const struct config_address *x = &a->listen[i];
		const struct config_address *y = &b->listen[i];

		if (x->kind != y->kind)
			return 0;
		if (x->kind == CONFIG_ADDR_UNIX &&
		    strcmp(x->path, y->path) != 0)
			return 0;
		if (x->kind == CONFIG_ADDR_INET &&
		    (strcmp(x->port, y->port) != 0 ||
		    (x->host == NULL) != (y->host == NULL) ||
		    (x->host != NULL && strcmp(x->host, y->host) != 0)))
			return 0;
	}
	return 1;
}

static int
make_instance(struct listener *l)
{
	const struct config_listener *cl = l->cl;
	const struct aloop_plugin *d = desc(l);
	struct aloop_plugin_env env;
	size_t before;
	int r;

	if (cl->type == CONFIG_TCP ? d->stream == NULL ||
	    d->stream_factory == NULL : d->datagram == NULL ||
	    d->datagram_factory == NULL) {
		aloop_log(ALOOP_LOG_ERR, "listener %s: plugin %s has no %s "
		    "protocol", cl->name, d->name,
		    cl->type == CONFIG_TCP ? "stream" : "datagram");
		return -1;
	}
	memset(&env, 0, sizeof(env));
	env.size = sizeof(env);
	env.loop = l->w->loop;
	env.listener = cl->name;
	env.type = cl->type == CONFIG_TCP ? ALOOP_PLUGIN_STREAM :
	    ALOOP_PLUGIN_DATAGRAM;
	env.worker = l->w->id;
	env.workers = l->w->rt->nworkers;
	/*
	 * Workers make their instances one after the other (the main thread
	 * waits for each), so the errors this init reports are the ones
	 * appended to the configuration's list from here on.
	 */
	before = l->rc->cfg->nerrors;
	r = plugin_instance_new(cl->plugin, &env, cl->settings, &l->instance);
	for (size_t i = before; r < 0 && i < l->rc->cfg->nerrors; i++)
		aloop_log(ALOOP_LOG_ERR, "%s", l->rc->cfg->errors[i]);
	if (r < 0) {
		aloop_log(ALOOP_LOG_ERR, "listener %s: plugin %s (%s): init "
		    "failed: %s", cl->name, d->name, plugin_file(cl->plugin),
		    aloop_strerror(r));
		METRICS_COUNT(l->m, plugin_errors, 1);
		return -1;
	}
	l->has_instance = 1;
	return 0;
}

int
listener_open(struct worker *w, struct rtconfig *rc, size_t index,
    const struct listener *from,
    void (*opened)(struct listener *, int, void *), void *arg)
{
	const struct config_listener *cl = &rc->cfg->listeners[index];
	int fds[LISTENER_FDS_MAX];
	size_t nfds = 0, nslots;
	struct listener *l;
	unsigned long q;

	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -1;
	l->w = w;
	l->rc = rtconfig_ref(rc);
	l->cl = cl;
	l->index = index;
	l->opened = opened;
	l->opened_arg = arg;
	/*
	 * Workers share max_connections: each takes its part, so that a
	 * listener never holds more in all (but at least one each).
	 */
	if (cl->max_connections > 0) {
		q = cl->max_connections / w->rt->nworkers +
		    (w->id < cl->max_connections % w->rt->nworkers);
		l->quota = q > 0 ? q : 1;
	}
	w->nalive++;
	/* The list's reference, and the open's until every bind is done. */
	l->refs = 2;
	l->m = metrics_listener(w->id, cl->name);

	if (make_instance(l) < 0)
		goto fail;

	/* The sockets to adopt: an older self's, worker 0's, or systemd's. */
	if (from != NULL)
		nfds = listener_sockets(from, fds, LISTENER_FDS_MAX);
	else {
		for (size_t i = 0; i < activation_count() &&
		    nfds < LISTENER_FDS_MAX; i++)
			if (strcmp(activation_name(i), cl->name) == 0) {
				(void)activation_find(cl->name);
				fds[nfds++] = activation_fd(i);
			}
	}
	nslots = nfds > 0 ? nfds : cl->nlisten;
	l->servers = calloc(nslots, sizeof(*l->servers));
	l->owns_path = calloc(nslots, sizeof(*l->owns_path));
	l->endpoints = calloc(nslots, sizeof(*l->endpoints));
	if (l->servers == NULL || l->owns_path == NULL || l->endpoints == NULL)
		goto fail;
	/* Adopting from an older self on this worker: a reload keeping it. */
	if (from != NULL && from->w == w) {
		l->kept_from = (struct listener *)from;
		l->lineage = from->lineage;
		l->lineage->refs++;
	} else {
		l->lineage = calloc(1, sizeof(*l->lineage));
		if (l->lineage == NULL)
			goto fail;
		l->lineage->refs = 1;
		l->lineage->current = l;
	}

	l->pending = 1;	/* held until every bind has started */
	for (size_t i = 0; i < nfds; i++) {
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

		if (fd == -1) {
			aloop_log_errno(ALOOP_LOG_ERR, "listener %s: dup",
			    cl->name);
			l->failed = 1;
			break;
		}
		if (start_bind(l, NULL, fd) < 0)
			break;
	}
	for (size_t i = 0; nfds == 0 && i < cl->nlisten; i++)
		if (start_bind(l, &cl->listen[i], -1) < 0)
			break;
	open_step_done(l);
	return 0;
fail:
	l->closing = 1;
	l->refs = 1;
	l->opened = NULL;
	listener_unref(l);
	return -1;
}

void
listener_serve(struct listener *l)
{
	l->lineage->current = l;
	for (size_t i = 0; i < l->nservers; i++) {
		if (l->servers[i] != NULL &&
		    aloop_server_start_serving(l->servers[i]) < 0)
			aloop_log(ALOOP_LOG_ERR, "listener %s: cannot start "
			    "accepting", l->cl->name);
	}
	/* The older generation's clients may fill max_connections already. */
	update_accepting(l);
}

static void
server_closed(struct aloop_future *fut, void *arg)
{
	aloop_future_release(fut);
	listener_unref(arg);
}

/*
 * Keep @l alive until @srv is closed and its last connection is gone.  A
 * TLS connection still in its handshake when the listener retires calls
 * the factory (with @l) only once the handshake is done, so the listener
 * must outlive every connection its servers hold, not only those the
 * factory has seen.
 */
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

/*
 * Hand a UNIX server that owns its socket file to @to: paused, it keeps
 * the file (closing it would unlink the path @to listens on) until @to
 * retires for good.
 */
static int
carry(struct listener *to, struct aloop_server *srv)
{
	struct aloop_server **c;

	c = realloc(to->carried, (to->ncarried + 1) * sizeof(*c));
	if (c == NULL)
		return -1;
	aloop_server_pause_accepting(srv);
	to->carried = c;
	to->carried[to->ncarried++] = srv;
	return 0;
}

void
listener_retire(struct listener *l)
{
	if (l->closing)
		return;
	l->closing = 1;
	if (!list_remove(&l->w->active, l))
		list_remove(&l->w->prepared, l);
	l->next = l->w->retired;
	l->w->retired = l;
	for (size_t i = 0; i < l->nservers; i++) {
		if (l->servers[i] == NULL)
			continue;
		if (l->successor != NULL && l->owns_path[i] &&
		    carry(l->successor, l->servers[i]) == 0) {
			/*
			 * Paused, a plain server calls the factory no more;
			 * a TLS one may, for handshakes still going on.
			 */
			if (l->rc->tls[l->index] != NULL)
				hold_until_closed(l, l->servers[i]);
			l->servers[i] = NULL;
		} else {
			aloop_server_close(l->servers[i]);
			hold_until_closed(l, l->servers[i]);
		}
	}
	if (l->successor != NULL) {
		size_t kept = 0;

		for (size_t i = 0; i < l->ncarried; i++)
			if (carry(l->successor, l->carried[i]) < 0)
				l->carried[kept++] = l->carried[i];
		l->ncarried = kept;
	}
	/* Those left stay for listener_abort() and are released on free. */
	for (size_t i = 0; i < l->ncarried; i++)
		aloop_server_close(l->carried[i]);
	for (size_t i = 0; i < l->nendpoints; i++)
		if (l->endpoints[i] != NULL)
			aloop_transport_close(l->endpoints[i]);
	listener_unref(l);
}

void
listener_abort(struct listener *l)
{
	for (size_t i = 0; i < l->nservers; i++)
		if (l->servers[i] != NULL)
			aloop_server_abort_clients(l->servers[i]);
	for (size_t i = 0; i < l->ncarried; i++)
		aloop_server_abort_clients(l->carried[i]);
	for (size_t i = 0; i < l->nendpoints; i++)
		if (l->endpoints[i] != NULL)
			aloop_transport_abort(l->endpoints[i]);
}
