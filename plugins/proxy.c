/*
 * proxy: a TCP/TLS reverse proxy.  Every accepted connection opens one
 * upstream connection, trying the configured upstreams in turn, and bytes
 * then flow both ways until either side is done.
 *
 * Memory stays bounded whatever the peers do: when one side's write buffer
 * rises above its high-water mark the other side stops reading until it
 * drains, so a slow reader costs at most two write buffers and the
 * kernel's socket buffers, never more.  A half-close is passed on where the
 * other transport can send one; where it cannot (TLS), the EOF closes the
 * pair once what is buffered has been sent.
 *
 * Descriptors stay bounded too.  An upstream that is aloopd's own listener
 * is refused when the settings are checked, since every connection to it
 * would open another until none are left; a loop through another host is
 * still possible, so the connections in progress are limited per instance
 * (what a loop, or an upstream that drops SYNs, piles up), each attempt has
 * a deadline, a pair whose one side has sent its EOF has a deadline for
 * the other, and so has an upstream that stops taking what the client
 * sends (the client is paused meanwhile, and would not even be seen
 * leaving).  A client that stops reading is the listener's write_timeout's
 * to end, and a pair silent on both sides its idle_timeout's.
 *
 * Between plain TCP or UNIX sockets on both sides the bytes do not pass
 * through the proxy's callbacks at all: once the upstream is connected,
 * each direction is handed to aloop_transport_forward, which splices bulk
 * in the kernel and reads and writes small messages directly, with the
 * same back-pressure, half-close and timeout rules; the callbacks below
 * then see only the EOFs, the flow-control edges and the ends.  A TLS
 * side, or splice = false, keeps the copying path.
 *
 * Which upstream a client gets, and which are up, is proxy_balance.c's.
 *
 * settings:
 *	upstream = [ "10.0.0.1:80", "[::1]:8080", "unix:/run/app.sock" ];
 *	balance = "round_robin";	and health_check: see proxy_balance.h
 *	send_proxy = "v2";	tell the upstream who the client is: "v1"
 *				or "v2" (HAProxy's PROXY protocol); plain
 *				upstreams only
 *	connect_timeout = 10.0;	seconds per upstream attempt
 *	max_connecting = 256;	upstream connects in progress, then refuse
 *	half_close_timeout = 60.0;	seconds after one side's EOF; 0: none
 *	upstream_write_timeout = 60.0;	seconds it may take nothing; 0: none
 *	high_water = 65536;	bytes buffered per direction before pausing
 *	splice = true;		between plain sockets, bypass the
 *				callbacks, splicing bulk in the kernel
 *				(Linux splice); false: copy through them
 *	tls = {			optional: talk TLS to the upstream
 *		ca = "/etc/ssl/app-ca.pem";	default: the system's CAs
 *		verify = true;			certificate and host name
 *		server_hostname = "app.example";	default: the host
 *		certificate = "client.pem"; key = "client.key";
 *	};
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "proxy_balance.h"

#define PROXY_UPSTREAMS_MAX	64
/*
 * Client bytes held while the upstream connects: reading pauses at
 * high_water, and a transport may deliver one more read (a TLS record,
 * say, or a full 68 KiB read) before the pause takes effect.
 */
#define PROXY_PENDING_SLACK	(128 * 1024)

struct proxy_upstream {
	char		*host;		/* NULL for a UNIX socket */
	char		*port;
	char		*path;		/* unix:/path */
	char		*text;		/* as configured, for the log */
};

struct proxy_pair;

/* One listener on one worker. */
struct proxy {
	struct aloop_loop	*loop;		/* NULL when only checked */
	char			*listener;
	struct proxy_upstream	*up;
	size_t			 nup;
	struct balancer_target	*targets;	/* the balancer's view of up */
	struct balancer		*bal;
	double			 connect_timeout;
	double			 half_close_timeout;	/* 0: none */
	double			 write_timeout;		/* 0: none */
	size_t			 high_water;
	size_t			 max_connecting;
	int			 send_proxy;	/* 0, 1 or 2: PROXY header */
	int			 splice;	/* forward plain pairs in-kernel */
	size_t			 connecting;	/* pairs without an upstream yet */
	/* At max_connecting: logged when it starts and when it ends. */
	int			 refusing;
	unsigned long		 refused;
	struct aloop_tls_context *tls;
	char			*server_hostname;
	/* Failure bursts: logged once when they start and once at the end. */
	int			 failing;
	unsigned long		 failed;
	struct proxy_pair	*pairs;		/* every live pair */
	int			 finished;	/* fini ran; last pair frees */
	unsigned		 refs;		/* 1 until fini, +1 per pair */
};

/* One client and its upstream. */
struct proxy_pair {
	struct proxy		*px;
	struct proxy_pair	*next, *prev;
	struct aloop_transport	*client;	/* until its connection_lost */
	struct aloop_transport	*up;		/* from made to lost */
	struct aloop_future	*fut;		/* the attempt in flight */
	aloop_handle_t		 timer;		/* its connect_timeout */
	aloop_handle_t		 half_closed;	/* half_close_timeout */
	aloop_handle_t		 stalled;	/* upstream_write_timeout */
	size_t			 stalled_size;	/* its buffer when armed */
	size_t			 order[PROXY_UPSTREAMS_MAX];	/* to try */
	size_t			 norder;
	size_t			 attempt;	/* of order, tried so far */
	size_t			 current;	/* index being tried */
	int			 counted;	/* the balancer counts it */
	unsigned char		*pending;	/* client bytes before up */
	size_t			 npending;
	char			 errors[512];	/* why the attempts failed */
	int			 client_eof;
	int			 up_eof;
	int			 up_done;	/* no upstream, none to come */
	int			 connecting;	/* counted in px->connecting */
	unsigned		 refs;
};

static void proxy_try(struct proxy_pair *);

/* ---------------------------------------------------------- lifetime */

static void
proxy_free(struct proxy *px)
{
	balancer_free(px->bal);
	free(px->targets);
	for (size_t i = 0; i < px->nup; i++) {
		free(px->up[i].host);
		free(px->up[i].port);
		free(px->up[i].path);
		free(px->up[i].text);
	}
	free(px->up);
	if (px->tls != NULL)
		aloop_tls_context_release(px->tls);
	free(px->server_hostname);
	free(px->listener);
	free(px);
}

static void
proxy_unref(struct proxy *px)
{
	if (--px->refs == 0)
		proxy_free(px);
}

/* @p has its upstream, or will never have one: it is counted no more. */
static void
pair_connect_done(struct proxy_pair *p)
{
	struct proxy *px = p->px;

	if (!p->connecting)
		return;
	p->connecting = 0;
	px->connecting--;
	if (px->refusing && px->connecting < px->max_connecting) {
		aloop_log(ALOOP_LOG_NOTICE, "proxy %s: accepting again, after "
		    "refusing %lu connections at max_connecting %zu",
		    px->listener, px->refused, px->max_connecting);
		px->refusing = 0;
		px->refused = 0;
	}
}

static void
pair_unref(struct proxy_pair *p)
{
	struct proxy *px = p->px;

	if (--p->refs > 0)
		return;
	pair_connect_done(p);
	/* Neither transport is left for it to end. */
	if (px->loop != NULL) {
		aloop_handle_cancel(px->loop, p->half_closed);
		aloop_handle_cancel(px->loop, p->stalled);
	}
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		px->pairs = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	free(p->pending);
	free(p);
	proxy_unref(px);
}

/* ---------------------------------------------------------- settings */

static char *
proxy_strndup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/*
 * "host:port", "[v6]:port" or "unix:/path".  Returns 0, ALOOP_ECONFIG
 * after reporting on @node, or ALOOP_ENOMEM.
 */
static int
proxy_parse_upstream(const struct aloop_settings *node, const char *s,
    struct proxy_upstream *u)
{
	const char *colon, *host, *port;
	size_t hostlen;

	if ((u->text = strdup(s)) == NULL)
		return ALOOP_ENOMEM;
	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/') {
			aloop_settings_error(node, "a UNIX socket needs an "
			    "absolute path (unix:/run/app.sock)");
			return ALOOP_ECONFIG;
		}
		u->path = strdup(s + 5);
		return u->path != NULL ? 0 : ALOOP_ENOMEM;
	}
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':') {
			aloop_settings_error(node, "expected [address]:port");
			return ALOOP_ECONFIG;
		}
		host = s + 1;
		hostlen = (size_t)(end - host);
		port = end + 2;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || strchr(s, ':') != colon) {
			aloop_settings_error(node, "expected host:port, "
			    "[address]:port or unix:/path");
			return ALOOP_ECONFIG;
		}
		host = s;
		hostlen = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hostlen == 0 || *port == '\0') {
		aloop_settings_error(node, "the host and the port are both "
		    "required");
		return ALOOP_ECONFIG;
	}
	u->host = proxy_strndup(host, hostlen);
	u->port = strdup(port);
	return u->host != NULL && u->port != NULL ? 0 : ALOOP_ENOMEM;
}

/*
 * Refuse an upstream that is aloopd itself: each connection to it would
 * come back as a new client and open another, until no descriptor is
 * left.  Addresses are always checked; names only when the settings are
 * being checked without a loop (aloopd -t, a start, a reload), because a
 * worker must not wait on DNS before it serves and its configuration has
 * passed that check already.  A name that does not resolve now is left to
 * the connects, which report it.
 */
static int
proxy_check_self(const struct aloop_plugin_env *env,
    const struct aloop_settings *node, const struct proxy_upstream *u)
{
	struct sockaddr_un sun;
	struct addrinfo hints, *res, *ai;
	const char *name = NULL;

	if (u->path != NULL) {
		if (strlen(u->path) >= sizeof(sun.sun_path))
			return 0;	/* no socket has that name */
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, u->path, strlen(u->path) + 1);
		name = aloop_daemon_listener_at(node, ALOOP_PLUGIN_STREAM,
		    (const struct sockaddr *)&sun, sizeof(sun));
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = env->loop != NULL ? AI_NUMERICHOST : 0;
		if (getaddrinfo(u->host, u->port, &hints, &res) != 0)
			return 0;
		for (ai = res; ai != NULL && name == NULL; ai = ai->ai_next)
			name = aloop_daemon_listener_at(node,
			    ALOOP_PLUGIN_STREAM, ai->ai_addr, ai->ai_addrlen);
		freeaddrinfo(res);
	}
	if (name == NULL)
		return 0;
	aloop_settings_error(node, "is listener \"%s\" of this aloopd: a "
	    "proxy that forwards to aloopd can loop until no descriptor is "
	    "left", name);
	return ALOOP_ECONFIG;
}

static int
proxy_read_upstreams(struct proxy *px, const struct aloop_plugin_env *env,
    const struct aloop_settings *settings)
{
	const struct aloop_settings *list, *node;
	const char *s;
	size_t n;
	int rc, bad = 0;

	list = aloop_settings_get(settings, "upstream");
	if (list == NULL) {
		aloop_settings_error(settings, "upstream is required: a list "
		    "of \"host:port\" or \"unix:/path\"");
		return ALOOP_ECONFIG;
	}
	if (aloop_settings_type(list) == ALOOP_SETTINGS_STRING)
		n = 1;
	else if (aloop_settings_type(list) == ALOOP_SETTINGS_LIST)
		n = aloop_settings_count(list);
	else {
		aloop_settings_error(list, "expected a list of strings");
		return ALOOP_ECONFIG;
	}
	if (n == 0 || n > PROXY_UPSTREAMS_MAX) {
		aloop_settings_error(list, "between 1 and %d upstreams",
		    PROXY_UPSTREAMS_MAX);
		return ALOOP_ECONFIG;
	}
	if ((px->up = calloc(n, sizeof(*px->up))) == NULL)
		return ALOOP_ENOMEM;
	px->nup = n;
	for (size_t i = 0; i < n; i++) {
		node = n == 1 && aloop_settings_type(list) ==
		    ALOOP_SETTINGS_STRING ? list : aloop_settings_at(list, i);
		if (aloop_settings_get_string(node, NULL, &s) != 0) {
			bad = 1;
			continue;
		}
		rc = proxy_parse_upstream(node, s, &px->up[i]);
		if (rc == 0)
			rc = proxy_check_self(env, node, &px->up[i]);
		if (rc == ALOOP_ENOMEM)
			return rc;
		if (rc != 0)
			bad = 1;
	}
	return bad ? ALOOP_ECONFIG : 0;
}

/*
 * send_proxy.  The header must come before anything else on the
 * connection, a TLS handshake included, and an upstream transport
 * with TLS starts its handshake at once: so plain upstreams only.
 */
static int
proxy_read_send_proxy(struct proxy *px, const struct aloop_settings *settings)
{
	const char *v = NULL;
	int rc = aloop_settings_get_string(settings, "send_proxy", &v);

	if (rc == ALOOP_ENOENT)
		return 0;
	if (rc != 0)
		return ALOOP_ECONFIG;
	if (strcmp(v, "v1") == 0)
		px->send_proxy = 1;
	else if (strcmp(v, "v2") == 0)
		px->send_proxy = 2;
	else {
		aloop_settings_error(aloop_settings_get(settings,
		    "send_proxy"), "expected \"v1\" or \"v2\"");
		return ALOOP_ECONFIG;
	}
	if (aloop_settings_get(settings, "tls") != NULL) {
		aloop_settings_error(aloop_settings_get(settings,
		    "send_proxy"), "only for plain upstreams (without tls)");
		return ALOOP_ECONFIG;
	}
	return 0;
}

/* The upstreams as the balancer sees them, and the balancer. */
static int
proxy_balancer(struct proxy *px, const struct aloop_plugin_env *env,
    const struct aloop_settings *settings)
{
	if (px->nup == 0)
		return ALOOP_ECONFIG;	/* upstream was reported */
	if ((px->targets = calloc(px->nup, sizeof(*px->targets))) == NULL)
		return ALOOP_ENOMEM;
	for (size_t i = 0; i < px->nup; i++) {
		px->targets[i].host = px->up[i].host;
		px->targets[i].port = px->up[i].port;
		px->targets[i].path = px->up[i].path;
		px->targets[i].text = px->up[i].text != NULL ?
		    px->up[i].text : "?";
	}
	return balancer_new(px->loop, px->listener, env->worker, settings,
	    px->nup, px->targets, &px->bal);
}

/* Report a TLS configuration error on @node with OpenSSL's reason. */
static int
proxy_tls_failed(struct proxy *px, const struct aloop_settings *node, int rc)
{
	const char *why = aloop_tls_context_last_error(px->tls);

	if (rc == ALOOP_ENOMEM)
		return rc;
	aloop_settings_error(node, "%s", why[0] != '\0' ? why :
	    aloop_strerror(rc));
	return ALOOP_ECONFIG;
}

static int
proxy_read_tls(struct proxy *px, const struct aloop_settings *tls)
{
	static const char *const names[] = { "ca", "capath", "verify",
	    "server_hostname", "certificate", "key", NULL };
	const char *ca = NULL, *capath = NULL, *sni = NULL;
	const char *cert = NULL, *key = NULL;
	int verify = 1, rc, bad = 0;

	if (aloop_settings_type(tls) != ALOOP_SETTINGS_GROUP) {
		aloop_settings_error(tls, "expected a group: tls = { ... }");
		return ALOOP_ECONFIG;
	}
	if (aloop_settings_check_names(tls, names) != 0)
		bad = 1;
	if ((rc = aloop_settings_get_string(tls, "ca", &ca)) == ALOOP_ECONFIG ||
	    (rc = aloop_settings_get_string(tls, "capath", &capath)) ==
	    ALOOP_ECONFIG ||
	    (rc = aloop_settings_get_bool(tls, "verify", &verify)) ==
	    ALOOP_ECONFIG ||
	    (rc = aloop_settings_get_string(tls, "server_hostname", &sni)) ==
	    ALOOP_ECONFIG ||
	    (rc = aloop_settings_get_string(tls, "certificate", &cert)) ==
	    ALOOP_ECONFIG ||
	    (rc = aloop_settings_get_string(tls, "key", &key)) ==
	    ALOOP_ECONFIG)
		bad = 1;
	if ((cert == NULL) != (key == NULL)) {
		aloop_settings_error(tls, "certificate and key go together");
		bad = 1;
	}
	if (bad)
		return ALOOP_ECONFIG;

	if ((rc = aloop_tls_context_new(ALOOP_TLS_CLIENT, &px->tls)) != 0)
		return rc == ALOOP_ENOMEM ? rc : ALOOP_ECONFIG;
	if ((ca != NULL || capath != NULL) &&
	    (rc = aloop_tls_context_load_verify_locations(px->tls, ca,
	    capath)) != 0)
		return proxy_tls_failed(px, aloop_settings_get(tls,
		    ca != NULL ? "ca" : "capath"), rc);
	if (!verify) {
		if ((rc = aloop_tls_context_set_verify(px->tls,
		    ALOOP_TLS_VERIFY_NONE)) != 0)
			return proxy_tls_failed(px, tls, rc);
		aloop_tls_context_set_check_hostname(px->tls, 0);
	}
	if (cert != NULL && (rc = aloop_tls_context_load_cert_chain(px->tls,
	    cert, key)) != 0)
		return proxy_tls_failed(px, aloop_settings_get(tls,
		    "certificate"), rc);
	if (sni != NULL && (px->server_hostname = strdup(sni)) == NULL)
		return ALOOP_ENOMEM;
	return 0;
}

static int
proxy_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { "upstream", "connect_timeout",
	    "half_close_timeout", "upstream_write_timeout", "max_connecting",
	    "high_water", "tls", "balance", "health_check", "send_proxy",
	    "splice", NULL };
	const struct aloop_settings *tls;
	struct proxy *px;
	double timeout = 10.0, half = 60.0, wtimeout = 60.0;
	long long high = 65536, connecting = 256;
	int rc, bad = 0, splice = 1;

	*instance = NULL;
	if ((px = calloc(1, sizeof(*px))) == NULL)
		return ALOOP_ENOMEM;
	px->refs = 1;
	px->loop = env->loop;
	if ((px->listener = strdup(env->listener != NULL ? env->listener :
	    "?")) == NULL) {
		rc = ALOOP_ENOMEM;
		goto fail;
	}
	if (aloop_settings_check_names(settings, names) != 0)
		bad = 1;
	if ((rc = proxy_read_upstreams(px, env, settings)) == ALOOP_ENOMEM)
		goto fail;
	if (rc != 0)
		bad = 1;
	rc = aloop_settings_get_double(settings, "connect_timeout", &timeout);
	if (rc == ALOOP_ECONFIG)
		bad = 1;
	else if (!(timeout > 0 && timeout <= 3600)) {
		aloop_settings_error(aloop_settings_get(settings,
		    "connect_timeout"), "out of range (0..3600 s)");
		bad = 1;
	}
	rc = aloop_settings_get_int(settings, "high_water", &high);
	if (rc == ALOOP_ECONFIG)
		bad = 1;
	else if (high < 1024 || high > 64 * 1024 * 1024) {
		aloop_settings_error(aloop_settings_get(settings,
		    "high_water"), "out of range (1024..67108864)");
		bad = 1;
	}
	rc = aloop_settings_get_double(settings, "half_close_timeout", &half);
	if (rc == ALOOP_ECONFIG)
		bad = 1;
	else if (!(half >= 0 && half <= 86400)) {
		aloop_settings_error(aloop_settings_get(settings,
		    "half_close_timeout"), "out of range (0..86400 s)");
		bad = 1;
	}
	rc = aloop_settings_get_double(settings, "upstream_write_timeout",
	    &wtimeout);
	if (rc == ALOOP_ECONFIG)
		bad = 1;
	else if (!(wtimeout >= 0 && wtimeout <= 86400)) {
		aloop_settings_error(aloop_settings_get(settings,
		    "upstream_write_timeout"), "out of range (0..86400 s)");
		bad = 1;
	}
	rc = aloop_settings_get_int(settings, "max_connecting", &connecting);
	if (rc == ALOOP_ECONFIG)
		bad = 1;
	else if (connecting < 1 || connecting > 65536) {
		aloop_settings_error(aloop_settings_get(settings,
		    "max_connecting"), "out of range (1..65536)");
		bad = 1;
	}
	if (aloop_settings_get_bool(settings, "splice", &splice) ==
	    ALOOP_ECONFIG)
		bad = 1;
	px->splice = splice;
	px->connect_timeout = timeout;
	px->half_close_timeout = half;
	px->write_timeout = wtimeout;
	px->high_water = (size_t)high;
	px->max_connecting = (size_t)connecting;
	if ((tls = aloop_settings_get(settings, "tls")) != NULL &&
	    (rc = proxy_read_tls(px, tls)) != 0) {
		if (rc == ALOOP_ENOMEM)
			goto fail;
		bad = 1;
	}
	if ((rc = proxy_read_send_proxy(px, settings)) != 0)
		bad = 1;
	if ((rc = proxy_balancer(px, env, settings)) == ALOOP_ENOMEM)
		goto fail;
	if (rc != 0 || bad) {
		rc = ALOOP_ECONFIG;
		goto fail;
	}
	*instance = px;
	return 0;
fail:
	proxy_free(px);
	return rc;
}

/*
 * The listener is gone and so is every client, but an upstream may still
 * be closing: abort what is left and let the last pair free the instance.
 */
static void
proxy_fini(void *instance)
{
	struct proxy *px = instance;

	if (px == NULL)
		return;
	px->finished = 1;
	if (px->pairs != NULL)
		aloop_log(ALOOP_LOG_DEBUG, "proxy %s: finished, upstreams "
		    "still closing", px->listener);
	for (struct proxy_pair *p = px->pairs; p != NULL; p = p->next) {
		if (p->up != NULL)
			aloop_transport_abort(p->up);
		if (p->fut != NULL)
			(void)aloop_future_cancel(p->fut);
	}
	proxy_unref(px);
}

/* ------------------------------------------------------ the upstream */

static void
proxy_half_close_expired(void *arg)
{
	struct proxy_pair *p = arg;

	p->half_closed = ALOOP_HANDLE_NONE;
	aloop_log(ALOOP_LOG_INFO, "proxy %s: the %s sent no EOF within %g s "
	    "of the %s's: closing", p->px->listener,
	    p->client_eof ? "upstream" : "client", p->px->half_close_timeout,
	    p->client_eof ? "client" : "upstream");
	if (p->up != NULL)
		aloop_transport_abort(p->up);
	if (p->client != NULL)
		aloop_transport_abort(p->client);
}

/*
 * One side's EOF has been passed on to the other.  A peer that never
 * finishes its side -- an upstream that never answers a request the client
 * has sent whole -- would otherwise hold both sockets for good.
 */
static void
pair_half_closed(struct proxy_pair *p)
{
	struct proxy *px = p->px;

	if (px->half_close_timeout <= 0 || p->half_closed != ALOOP_HANDLE_NONE)
		return;
	if (aloop_call_later(px->loop, px->half_close_timeout,
	    proxy_half_close_expired, p, &p->half_closed) != 0)
		p->half_closed = ALOOP_HANDLE_NONE;
}

/*
 * An address as the PROXY protocol carries it: IPv4 (an IPv4 client of
 * an IPv6 socket included, as HAProxy sends it), IPv6, or neither (0).
 */
static int
proxy_addr(const struct sockaddr *sa, size_t len, unsigned char *addr,
    unsigned char *port)
{
	static const unsigned char v4mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	};
	const struct sockaddr_in *s4 = (const void *)sa;
	const struct sockaddr_in6 *s6 = (const void *)sa;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET && len >= sizeof(*s4)) {
		memcpy(addr, &s4->sin_addr, 4);
		memcpy(port, &s4->sin_port, 2);
		return 4;
	}
	if (sa->sa_family != AF_INET6 || len < sizeof(*s6))
		return 0;
	if (memcmp(&s6->sin6_addr, v4mapped, 12) == 0) {
		memcpy(addr, (const unsigned char *)&s6->sin6_addr + 12, 4);
		memcpy(port, &s6->sin6_port, 2);
		return 4;
	}
	memcpy(addr, &s6->sin6_addr, 16);
	memcpy(port, &s6->sin6_port, 2);
	return 16;
}

/*
 * The PROXY header (v1 text or v2 binary) that tells the upstream who
 * the client is and which of our addresses it reached, into @buf; its
 * length.  A client with no IP address (UNIX) is sent as unknown.
 */
static size_t
proxy_header(const struct proxy_pair *p, unsigned char *buf, size_t size)
{
	static const unsigned char sig[12] = {
		'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n',
	};
	unsigned char src[16], dst[16], sport[2], dport[2];
	const struct sockaddr *sa;
	size_t len = 0, n;
	int fs, fd;
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];

	sa = aloop_transport_get_extra_info(p->client, "peername", &len);
	fs = proxy_addr(sa, len, src, sport);
	sa = aloop_transport_get_extra_info(p->client, "sockname", &len);
	fd = proxy_addr(sa, len, dst, dport);
	if (fs != fd)
		fs = 0;
	if (p->px->send_proxy == 1) {
		if (fs == 0)
			return (size_t)snprintf((char *)buf, size,
			    "PROXY UNKNOWN\r\n");
		inet_ntop(fs == 4 ? AF_INET : AF_INET6, src, a, sizeof(a));
		inet_ntop(fs == 4 ? AF_INET : AF_INET6, dst, b, sizeof(b));
		return (size_t)snprintf((char *)buf, size,
		    "PROXY TCP%c %s %s %u %u\r\n", fs == 4 ? '4' : '6', a, b,
		    (sport[0] << 8) | sport[1], (dport[0] << 8) | dport[1]);
	}
	memcpy(buf, sig, sizeof(sig));
	buf[12] = 0x21;			/* version 2, PROXY */
	buf[13] = fs == 4 ? 0x11 : fs == 16 ? 0x21 : 0x00;
	n = fs == 0 ? 0 : 2 * (size_t)fs + 4;
	buf[14] = (unsigned char)(n >> 8);
	buf[15] = (unsigned char)n;
	if (fs != 0) {
		memcpy(buf + 16, src, (size_t)fs);
		memcpy(buf + 16 + fs, dst, (size_t)fs);
		memcpy(buf + 16 + 2 * fs, sport, 2);
		memcpy(buf + 18 + 2 * fs, dport, 2);
	}
	return 16 + n;
}

static void
pair_limits(struct proxy_pair *p, struct aloop_transport *t)
{
	/* Cannot fail: high >= 1024 and low = high / 4. */
	(void)aloop_transport_set_write_buffer_limits(t,
	    (ssize_t)p->px->high_water, (ssize_t)(p->px->high_water / 4));
}

/*
 * Both sides connected: let the kernel move the bytes where it can.  A
 * direction that cannot be spliced (a TLS side: ALOOP_ENOTSUP; a client
 * whose EOF came during the connect: ALOOP_ESTATE) goes on copying
 * through up_data and client_data.  Called after the PROXY header and
 * the client's early bytes were written, which the forward sends first.
 */
static void
pair_splice(struct proxy_pair *p)
{
	if (!p->px->splice)
		return;
	(void)aloop_transport_forward(p->client, p->up, NULL, NULL);
	(void)aloop_transport_forward(p->up, p->client, NULL, NULL);
}

static int
up_factory(void *arg, void **state)
{
	*state = arg;
	return 0;
}

static void
up_made(struct aloop_transport *t, void *state)
{
	struct proxy_pair *p = state;
	struct proxy *px = p->px;

	p->refs++;
	p->up = t;
	aloop_handle_cancel(aloop_transport_get_loop(t), p->timer);
	p->timer = ALOOP_HANDLE_NONE;
	pair_connect_done(p);
	if (p->client == NULL) {
		/* The client left while we connected. */
		aloop_transport_close(t);
		return;
	}
	balancer_opened(px->bal, p->current);
	p->counted = 1;
	if (px->failing) {
		aloop_log(ALOOP_LOG_NOTICE, "proxy %s: upstream %s answers "
		    "again, after %lu failed connections", px->listener,
		    px->up[p->current].text, px->failed);
		px->failing = 0;
		px->failed = 0;
	}
	pair_limits(p, t);
	if (px->send_proxy) {
		unsigned char hdr[128];
		size_t n = proxy_header(p, hdr, sizeof(hdr));

		if (aloop_transport_write(t, hdr, n) != 0) {
			aloop_transport_abort(t);
			aloop_transport_abort(p->client);
			return;
		}
	}
	if (p->npending > 0) {
		int rc = aloop_transport_write(t, p->pending, p->npending);

		free(p->pending);
		p->pending = NULL;
		p->npending = 0;
		if (rc != 0) {
			aloop_transport_abort(t);
			aloop_transport_abort(p->client);
			return;
		}
	}
	pair_splice(p);
	if (p->client_eof) {
		/* As client_eof would have, had we been connected. */
		if (aloop_transport_can_write_eof(t)) {
			(void)aloop_transport_write_eof(t);
			pair_half_closed(p);
		} else
			aloop_transport_close(t);
	} else if (aloop_transport_get_write_buffer_size(t) <=
	    p->px->high_water)
		aloop_transport_resume_reading(p->client);
}

static void
up_data(struct aloop_transport *t, void *state, const void *data, size_t len)
{
	struct proxy_pair *p = state;

	if (p->client == NULL || aloop_transport_is_closing(p->client)) {
		aloop_transport_pause_reading(t);
		return;
	}
	if (aloop_transport_write(p->client, data, len) != 0) {
		aloop_transport_abort(p->client);
		aloop_transport_abort(t);
	}
}

/*
 * The upstream finished sending.  Pass the half-close on and keep the
 * upstream open for what the client still sends; over TLS, where the
 * client transport cannot half-close, close it once the reply is out.
 */
static int
up_eof(struct aloop_transport *t, void *state)
{
	struct proxy_pair *p = state;

	p->up_eof = 1;
	if (p->client == NULL)
		return 0;
	if (p->client_eof || !aloop_transport_can_write_eof(p->client)) {
		aloop_transport_close(p->client);
		return 0;
	}
	(void)aloop_transport_write_eof(p->client);
	pair_half_closed(p);
	return 1;
}

static void
up_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct proxy_pair *p = state;

	p->up = NULL;
	p->up_done = 1;
	if (p->counted) {
		balancer_closed(p->px->bal, p->current);
		p->counted = 0;
	}
	if (err != NULL)
		aloop_log(ALOOP_LOG_INFO, "proxy %s: upstream %s: %s",
		    p->px->listener, p->px->up[p->current].text,
		    err->message);
	if (p->client != NULL) {
		/* An upstream that broke leaves nothing worth flushing. */
		if (err != NULL)
			aloop_transport_abort(p->client);
		else
			aloop_transport_close(p->client);
	}
	pair_unref(p);
}

static void up_stall_check(void *);

static void
up_stall_arm(struct proxy_pair *p)
{
	p->stalled_size = aloop_transport_get_write_buffer_size(p->up);
	if (aloop_call_later(p->px->loop, p->px->write_timeout,
	    up_stall_check, p, &p->stalled) != 0)
		p->stalled = ALOOP_HANDLE_NONE;
}

/*
 * The upstream's buffer has stayed above the low-water mark for
 * upstream_write_timeout.  If it took anything meanwhile it is slow, not
 * stuck: look again later.
 */
static void
up_stall_check(void *arg)
{
	struct proxy_pair *p = arg;

	p->stalled = ALOOP_HANDLE_NONE;
	if (p->up == NULL)
		return;
	if (aloop_transport_get_write_buffer_size(p->up) < p->stalled_size) {
		up_stall_arm(p);
		return;
	}
	aloop_log(ALOOP_LOG_INFO, "proxy %s: upstream %s took nothing for "
	    "%g s: closing", p->px->listener, p->px->up[p->current].text,
	    p->px->write_timeout);
	aloop_transport_abort(p->up);
	if (p->client != NULL)
		aloop_transport_abort(p->client);
}

static void
up_pause(struct aloop_transport *t, void *state)
{
	struct proxy_pair *p = state;

	if (p->client != NULL)
		aloop_transport_pause_reading(p->client);
	if (p->px->write_timeout > 0 && p->stalled == ALOOP_HANDLE_NONE)
		up_stall_arm(p);
}

static void
up_resume(struct aloop_transport *t, void *state)
{
	struct proxy_pair *p = state;

	aloop_handle_cancel(p->px->loop, p->stalled);
	p->stalled = ALOOP_HANDLE_NONE;
	if (p->client != NULL && !p->client_eof)
		aloop_transport_resume_reading(p->client);
}

static const struct aloop_protocol proxy_up_proto = {
	.connection_made = up_made,
	.data_received = up_data,
	.eof_received = up_eof,
	.connection_lost = up_lost,
	.pause_writing = up_pause,
	.resume_writing = up_resume,
};

/* Every upstream failed for this client: close it, log once per burst. */
static void
pair_unreachable(struct proxy_pair *p)
{
	struct proxy *px = p->px;

	p->up_done = 1;
	pair_connect_done(p);
	px->failed++;
	if (!px->failing) {
		px->failing = 1;
		aloop_log(ALOOP_LOG_WARNING, "proxy %s: no upstream reachable, "
		    "closing clients until one is:%s", px->listener,
		    p->errors);
	}
	if (p->client != NULL)
		aloop_transport_close(p->client);
}

static void
pair_note_error(struct proxy_pair *p, const char *msg)
{
	size_t used = strlen(p->errors);

	if (used < sizeof(p->errors) - 1)
		(void)snprintf(p->errors + used, sizeof(p->errors) - used,
		    " %s: %s;", p->px->up[p->current].text, msg);
}

static void
proxy_timeout(void *arg)
{
	struct proxy_pair *p = arg;

	p->timer = ALOOP_HANDLE_NONE;
	pair_note_error(p, "connect timed out");
	balancer_failed(p->px->bal, p->current);
	/* The done callback below sees the cancel and tries the next. */
	if (p->fut != NULL)
		(void)aloop_future_cancel(p->fut);
}

static void
proxy_connected(struct aloop_future *fut, void *arg)
{
	struct proxy_pair *p = arg;
	const struct aloop_error *err;
	int rc;

	p->fut = NULL;
	aloop_handle_cancel(aloop_future_get_loop(fut), p->timer);
	p->timer = ALOOP_HANDLE_NONE;
	rc = aloop_future_result(fut, NULL);
	if (rc != 0) {
		if (rc != ALOOP_ECANCELLED &&
		    (err = aloop_future_error(fut)) != NULL) {
			pair_note_error(p, err->message);
			balancer_failed(p->px->bal, p->current);
		}
		aloop_log(ALOOP_LOG_DEBUG, "proxy %s: upstream %s: %s",
		    p->px->listener, p->px->up[p->current].text,
		    aloop_strerror(rc));
		if (p->client != NULL && !p->px->finished)
			proxy_try(p);
		else
			p->up_done = 1;
	}
	aloop_future_release(fut);
	pair_unref(p);
}

/* Start the next attempt, or give up when every upstream had its turn. */
static void
proxy_try(struct proxy_pair *p)
{
	struct proxy *px = p->px;
	struct aloop_loop *loop = aloop_transport_get_loop(p->client);
	struct aloop_connection_options o;
	struct proxy_upstream *u;
	struct aloop_future *fut;
	int rc;

	for (; p->attempt < p->norder; p->attempt++) {
		p->current = p->order[p->attempt];
		u = &px->up[p->current];
		aloop_connection_options_init(&o);
		o.ssl = px->tls;
		if (px->tls != NULL)
			o.server_hostname = px->server_hostname;
		if (u->path != NULL)
			rc = aloop_create_unix_connection(loop, &proxy_up_proto,
			    up_factory, p, u->path, &o, &fut);
		else
			rc = aloop_create_connection(loop, &proxy_up_proto,
			    up_factory, p, u->host, u->port, &o, &fut);
		if (rc == 0 && (rc = aloop_future_add_done_callback(fut,
		    proxy_connected, p)) != 0) {
			(void)aloop_future_cancel(fut);
			aloop_future_release(fut);
		}
		if (rc != 0) {
			pair_note_error(p, aloop_strerror(rc));
			continue;
		}
		p->attempt++;
		p->fut = fut;
		p->refs++;
		if (aloop_call_later(loop, px->connect_timeout, proxy_timeout,
		    p, &p->timer) != 0)
			p->timer = ALOOP_HANDLE_NONE;
		return;
	}
	pair_unreachable(p);
}

/* -------------------------------------------------------- the client */

static int
proxy_new(void *instance, void **state)
{
	struct proxy *px = instance;
	struct proxy_pair *p;

	/*
	 * Each connect in progress holds a descriptor for up to
	 * connect_timeout; past the limit a loop, or an upstream that drops
	 * SYNs, would take them all.
	 */
	if (px->connecting >= px->max_connecting) {
		if (!px->refusing)
			aloop_log(ALOOP_LOG_WARNING, "proxy %s: %zu upstream "
			    "connects in progress (max_connecting), refusing "
			    "connections", px->listener, px->connecting);
		px->refusing = 1;
		px->refused++;
		return -EAGAIN;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return ALOOP_ENOMEM;
	p->px = px;
	p->refs = 1;		/* the client's, until its connection_lost */
	p->timer = ALOOP_HANDLE_NONE;
	p->half_closed = ALOOP_HANDLE_NONE;
	p->stalled = ALOOP_HANDLE_NONE;
	p->connecting = 1;
	px->connecting++;
	p->next = px->pairs;
	if (px->pairs != NULL)
		px->pairs->prev = p;
	px->pairs = p;
	px->refs++;
	*state = p;
	return 0;
}

static void
client_made(struct aloop_transport *t, void *state)
{
	struct proxy_pair *p = state;
	const struct sockaddr *peer;
	size_t len = 0;

	p->client = t;
	/*
	 * A client that left as soon as its TLS handshake was done comes
	 * closing already: no upstream is opened for it.
	 */
	if (aloop_transport_is_closing(t))
		return;
	pair_limits(p, t);
	peer = aloop_transport_get_extra_info(t, "peername", &len);
	p->norder = balancer_order(p->px->bal, peer, (socklen_t)len,
	    p->order);
	/*
	 * Keep reading while the upstream connects, into p->pending up to
	 * high_water: a client that leaves is then noticed at once, and its
	 * attempt cancelled, instead of after connect_timeout.
	 */
	proxy_try(p);
}

static void
client_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct proxy_pair *p = state;
	unsigned char *n;

	if (p->up != NULL) {
		if (aloop_transport_write(p->up, data, len) != 0) {
			aloop_transport_abort(p->up);
			aloop_transport_abort(t);
		}
		return;
	}
	if (p->up_done)
		return;
	if (len > p->px->high_water + PROXY_PENDING_SLACK - p->npending ||
	    (n = realloc(p->pending, p->npending + len)) == NULL) {
		aloop_transport_abort(t);
		return;
	}
	memcpy(n + p->npending, data, len);
	p->pending = n;
	p->npending += len;
	/* up_made resumes once it has passed these on. */
	if (p->npending >= p->px->high_water)
		aloop_transport_pause_reading(t);
}

static int
client_eof(struct aloop_transport *t, void *state)
{
	struct proxy_pair *p = state;

	p->client_eof = 1;
	if (p->up == NULL)
		return !p->up_done;	/* passed on once connected */
	if (p->up_eof) {
		aloop_transport_close(p->up);
		return 0;
	}
	/*
	 * A TLS upstream cannot take a half-close.  Most clients that send EOF
	 * have closed altogether, and keeping the upstream open for them would
	 * hold both sockets until the idle timeout: close it once what is
	 * buffered is sent, and the client with it (a closing upstream reads
	 * nothing more, so there is no reply to wait for).
	 */
	if (!aloop_transport_can_write_eof(p->up)) {
		aloop_transport_close(p->up);
		return 0;
	}
	(void)aloop_transport_write_eof(p->up);
	pair_half_closed(p);
	return 1;
}

static void
client_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct proxy_pair *p = state;

	p->client = NULL;
	if (p->up != NULL) {
		/* A client that vanished wants nothing more delivered. */
		if (err != NULL)
			aloop_transport_abort(p->up);
		else
			aloop_transport_close(p->up);
	}
	if (p->fut != NULL)
		(void)aloop_future_cancel(p->fut);
	pair_unref(p);
}

static void
client_pause(struct aloop_transport *t, void *state)
{
	struct proxy_pair *p = state;

	if (p->up != NULL)
		aloop_transport_pause_reading(p->up);
}

static void
client_resume(struct aloop_transport *t, void *state)
{
	struct proxy_pair *p = state;

	if (p->up != NULL && !p->up_eof)
		aloop_transport_resume_reading(p->up);
}

static const struct aloop_protocol proxy_client_proto = {
	.connection_made = client_made,
	.data_received = client_data,
	.eof_received = client_eof,
	.connection_lost = client_lost,
	.pause_writing = client_pause,
	.resume_writing = client_resume,
};

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "proxy",
	.version = "1.0",
	.description = "TCP/TLS reverse proxy with back-pressure",
	.init = proxy_init,
	.fini = proxy_fini,
	.stream = &proxy_client_proto,
	.stream_factory = proxy_new,
};
