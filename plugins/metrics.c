/*
 * metrics: aloopd's counters in Prometheus's text exposition format
 * (version 0.0.4) over HTTP/1.1.  GET (or HEAD) /metrics answers; any
 * other path is 404 and any other method on /metrics 405.  The counters
 * come from the daemon (aloop_daemon_metrics_* in <aloop/host.h>); this
 * plugin only reads and formats them, on whichever worker the scrape
 * lands.
 *
 * The HTTP side is deliberately small but strict: a request head is at
 * most METRICS_HEAD_MAX bytes (431 past it), anything that does not parse
 * is 400 and ends the connection, request bodies are skipped by their
 * Content-Length, and keep-alive follows HTTP/1.0 and 1.1's defaults and
 * the Connection header.  Pipelined requests are answered in order, and
 * reading stops while the client does not read its answers.
 *
 * A request head must arrive whole within request_timeout seconds of the
 * moment the plugin starts waiting for it (the connection, or the last
 * answer of a kept-alive one), or the client gets 408 and is closed: a
 * client trickling a byte at a time holds no connection for long.
 *
 * settings:
 *	request_timeout = 10.0;		seconds, 0.1 to 3600
 */
#include <ctype.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

/* A request line and its headers; real scrapers send a few hundred. */
#define METRICS_HEAD_MAX	8192

/* One listener on one worker. */
struct metrics {
	double			 request_timeout;
};

struct metrics_conn {
	struct aloop_transport	*t;
	const struct metrics	*m;
	aloop_handle_t		 head_timer;	/* waiting for a request head */
	char			 buf[METRICS_HEAD_MAX];
	size_t			 len;
	uint64_t		 skip;		/* body bytes still to drop */
	int			 paused;	/* the write buffer is full */
	int			 done;		/* closing: read nothing more */
};

/* What one request head says. */
struct metrics_req {
	const char	*method;
	size_t		 method_len;
	const char	*path;		/* without the query */
	size_t		 path_len;
	int		 minor;		/* HTTP/1.minor */
	int		 has_host;
	int		 close;		/* Connection: close */
	int		 keep_alive;	/* Connection: keep-alive */
	int		 chunked;	/* any Transfer-Encoding */
	int		 has_length;
	uint64_t	 length;
};

/* ------------------------------------------------------- output buffer */

struct sbuf {
	char	*p;
	size_t	 len, cap;
	int	 failed;
};

static void sbuf_printf(struct sbuf *b, const char *fmt, ...)
    ALOOP_PRINTF(2, 3);

static void
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t need;
	char *p;
	int n;

	if (b->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p != NULL ? b->p + b->len : NULL,
	    b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	if ((size_t)n < b->cap - b->len) {
		b->len += (size_t)n;
		return;
	}
	need = b->len + (size_t)n + 1;
	if (need < 2 * b->cap)
		need = 2 * b->cap;
	if (need < 4096)
		need = 4096;
	if ((p = realloc(b->p, need)) == NULL) {
		b->failed = 1;
		return;
	}
	b->p = p;
	b->cap = need;
	va_start(ap, fmt);
	(void)vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A label value, escaped as the exposition format asks. */
static void
sbuf_label(struct sbuf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			sbuf_printf(b, "\\\\");
		else if (*v == '"')
			sbuf_printf(b, "\\\"");
		else if (*v == '\n')
			sbuf_printf(b, "\\n");
		else
			sbuf_printf(b, "%c", *v);
	}
}

/* ----------------------------------------------------------- exposition */

struct metrics_list {
	struct aloop_metrics_listener	*v;
	size_t				 n, cap;
};

static int
metrics_collect(const struct aloop_metrics_listener *m, void *arg)
{
	struct metrics_list *l = arg;
	struct aloop_metrics_listener *v;
	size_t cap;

	if (l->n == l->cap) {
		cap = l->cap > 0 ? 2 * l->cap : 16;
		if ((v = reallocarray(l->v, cap, sizeof(*v))) == NULL)
			return ALOOP_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	/* A daemon older than this header fills fewer fields. */
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	memcpy(&l->v[l->n], m, m->size < sizeof(*m) ? m->size : sizeof(*m));
	l->n++;
	return 0;
}

/*
 * The per-listener series, in the order they are written; consecutive
 * entries with one name are one family, told apart by their reason.
 */
#define FIELD(f)	offsetof(struct aloop_metrics_listener, f)
static const struct {
	const char	*name;
	const char	*type;
	const char	*help;
	const char	*reason;	/* NULL: no reason label */
	size_t		 offset;
} metrics_families[] = {
	{ "aloop_connections_accepted_total", "counter",
	    "Connections handed to the listener's plugin.", NULL,
	    FIELD(connections_accepted) },
	{ "aloop_connections_active", "gauge",
	    "Connections of the listener open now.", NULL,
	    FIELD(connections_active) },
	{ "aloop_connections_closed_total", "counter",
	    "Connections of the listener that ended.", NULL,
	    FIELD(connections_closed) },
	{ "aloop_connections_refused_total", "counter",
	    "Connections reset on accept before any plugin or TLS work.",
	    "max_connections", FIELD(refused_full) },
	{ "aloop_connections_refused_total", NULL, NULL,
	    "max_connections_per_source", FIELD(refused_source) },
	{ "aloop_connections_refused_total", NULL, NULL,
	    "connection_rate", FIELD(refused_rate) },
	{ "aloop_connections_refused_total", NULL, NULL,
	    "access", FIELD(refused_access) },
	{ "aloop_connections_refused_total", NULL, NULL,
	    "proxy_protocol", FIELD(refused_proxy_protocol) },
	{ "aloop_connections_timed_out_total", "counter",
	    "Connections the daemon ended for a peer too slow or silent.",
	    "idle", FIELD(timeouts_idle) },
	{ "aloop_connections_timed_out_total", NULL, NULL,
	    "first_byte", FIELD(timeouts_first_byte) },
	{ "aloop_connections_timed_out_total", NULL, NULL,
	    "write", FIELD(timeouts_write) },
	{ "aloop_datagrams_dropped_total", "counter",
	    "Datagrams dropped unread: their source was over its rate.",
	    "datagram_rate_per_source", FIELD(datagrams_dropped) },
	{ "aloop_datagrams_dropped_total", NULL, NULL,
	    "access", FIELD(datagrams_denied) },
	{ "aloop_connections_dropped_total", "counter",
	    "Connections accepted and reset unserved, by why.",
	    "descriptors", FIELD(connections_dropped_descriptors) },
	{ "aloop_access_log_dropped_total", "counter",
	    "Access log lines dropped because the log fell behind.", NULL,
	    FIELD(access_log_dropped) },
	{ "aloop_received_bytes_total", "counter",
	    "Payload bytes the listener's plugin received.", NULL,
	    FIELD(bytes_received) },
	{ "aloop_sent_bytes_total", "counter",
	    "Payload bytes the listener's plugin wrote.", NULL,
	    FIELD(bytes_sent) },
	{ "aloop_tls_handshakes_total", "counter",
	    "TLS handshakes completed on the listener.", NULL,
	    FIELD(tls_handshakes) },
	{ "aloop_tls_handshake_failures_total", "counter",
	    "TLS handshakes on the listener that failed or timed out.", NULL,
	    FIELD(tls_handshake_failures) },
	{ "aloop_plugin_errors_total", "counter",
	    "Times the listener's plugin refused an instance or a connection.",
	    NULL, FIELD(plugin_errors) },
};
#undef FIELD

static void
metrics_process(struct sbuf *b)
{
	struct aloop_metrics_process p;

	memset(&p, 0, sizeof(p));
	p.size = sizeof(p);
	/* A figure the kernel would not give reads 0; the rest still do. */
	(void)aloop_daemon_metrics_process(&p);
	/*
	 * process_* are the names every Prometheus client library gives
	 * these, so that dashboards and alerts written for them work here.
	 */
	sbuf_printf(b, "# HELP process_start_time_seconds Start time of aloopd "
	    "since the Epoch.\n# TYPE process_start_time_seconds gauge\n"
	    "process_start_time_seconds %.3f\n", p.start_time);
	sbuf_printf(b, "# HELP aloop_uptime_seconds Seconds since aloopd "
	    "started.\n# TYPE aloop_uptime_seconds gauge\n"
	    "aloop_uptime_seconds %.3f\n", p.uptime);
	sbuf_printf(b, "# HELP aloop_reloads_total Configuration reloads that "
	    "took.\n# TYPE aloop_reloads_total counter\n"
	    "aloop_reloads_total %" PRIu64 "\n", p.reloads);
	sbuf_printf(b, "# HELP aloop_reload_failures_total Configuration "
	    "reloads refused.\n# TYPE aloop_reload_failures_total counter\n"
	    "aloop_reload_failures_total %" PRIu64 "\n", p.reload_failures);
	sbuf_printf(b, "# HELP aloop_worker_restarts_total Worker processes "
	    "replaced, by why the old one ended.\n"
	    "# TYPE aloop_worker_restarts_total counter\n"
	    "aloop_worker_restarts_total{reason=\"signal\"} %" PRIu64 "\n"
	    "aloop_worker_restarts_total{reason=\"stall\"} %" PRIu64 "\n"
	    "aloop_worker_restarts_total{reason=\"exit\"} %" PRIu64 "\n",
	    p.worker_restarts_signal, p.worker_restarts_stall,
	    p.worker_restarts_exit);
	sbuf_printf(b, "# HELP process_open_fds Open file descriptors of the "
	    "worker that answered.\n# TYPE process_open_fds gauge\n"
	    "process_open_fds %" PRIu64 "\n", p.open_fds);
	sbuf_printf(b, "# HELP process_resident_memory_bytes Resident memory "
	    "size of the worker that answered.\n"
	    "# TYPE process_resident_memory_bytes gauge\n"
	    "process_resident_memory_bytes %" PRIu64 "\n", p.resident_bytes);
	sbuf_printf(b, "# HELP aloop_build_info The versions aloopd runs "
	    "with; always 1.\n# TYPE aloop_build_info gauge\n"
	    "aloop_build_info{version=\"");
	sbuf_label(b, aloop_version());
	sbuf_printf(b, "\",libevent=\"");
	sbuf_label(b, aloop_libevent_version());
	sbuf_printf(b, "\",openssl=\"");
	sbuf_label(b, aloop_openssl_version());
	sbuf_printf(b, "\",plugin_abi=\"%d.%d\"} 1\n", ALOOP_PLUGIN_ABI_MAJOR,
	    ALOOP_PLUGIN_ABI_MINOR);
}

/* The figures plugins publish (aloop_daemon_metric_set), copied. */
struct plugin_figure {
	char		*text;		/* "name\0listener\0labels" */
	const char	*name, *listener, *labels;
	unsigned	 worker;
	int		 counter;
	double		 value;
};

struct plugin_figures {
	struct plugin_figure	*v;
	size_t			 n, cap;
};

static int
plugin_collect(const struct aloop_metrics_plugin_series *s, void *arg)
{
	struct plugin_figures *l = arg;
	struct plugin_figure *f;
	size_t nl = strlen(s->name) + 1, ll = strlen(s->listener) + 1;

	if (l->n == l->cap) {
		size_t cap = l->cap > 0 ? 2 * l->cap : 16;

		if ((f = reallocarray(l->v, cap, sizeof(*f))) == NULL)
			return ALOOP_ENOMEM;
		l->v = f;
		l->cap = cap;
	}
	f = &l->v[l->n];
	if ((f->text = malloc(nl + ll + strlen(s->labels) + 1)) == NULL)
		return ALOOP_ENOMEM;
	memcpy(f->text, s->name, nl);
	memcpy(f->text + nl, s->listener, ll);
	strcpy(f->text + nl + ll, s->labels);
	f->name = f->text;
	f->listener = f->text + nl;
	f->labels = f->text + nl + ll;
	f->worker = s->worker;
	f->counter = s->counter;
	f->value = s->value;
	l->n++;
	return 0;
}

static int
by_name(const void *a, const void *b)
{
	const struct plugin_figure *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c == 0)
		c = strcmp(x->listener, y->listener);
	if (c == 0)
		c = x->worker < y->worker ? -1 : x->worker > y->worker;
	return c != 0 ? c : strcmp(x->labels, y->labels);
}

/* Each plugin figure, grouped in families by name as the format wants. */
static int
metrics_plugins(struct sbuf *b)
{
	struct plugin_figures l = { NULL, 0, 0 };
	int r = aloop_daemon_metrics_plugins(plugin_collect, &l);

	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), by_name);
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		const struct plugin_figure *f = &l.v[i];

		if (i == 0 || strcmp(f->name, l.v[i - 1].name) != 0)
			sbuf_printf(b, "# HELP %s Published by the listener's "
			    "plugin.\n# TYPE %s %s\n", f->name, f->name,
			    f->counter ? "counter" : "gauge");
		sbuf_printf(b, "%s{listener=\"", f->name);
		sbuf_label(b, f->listener);
		sbuf_printf(b, "\",worker=\"%u\"%s%s} %.17g\n", f->worker,
		    f->labels[0] != '\0' ? "," : "", f->labels, f->value);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].text);
	free(l.v);
	return r;
}

/* The whole exposition into @b; ALOOP_ENOMEM if it could not be made. */
static int
metrics_render(struct sbuf *b)
{
	struct metrics_list l = { NULL, 0, 0 };
	int r;

	if ((r = aloop_daemon_metrics_listeners(metrics_collect, &l)) != 0) {
		free(l.v);
		return r;
	}
	for (size_t f = 0; f < sizeof(metrics_families) /
	    sizeof(metrics_families[0]); f++) {
		if (metrics_families[f].help != NULL)
			sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n",
			    metrics_families[f].name, metrics_families[f].help,
			    metrics_families[f].name, metrics_families[f].type);
		for (size_t i = 0; i < l.n; i++) {
			const uint64_t *v = (const uint64_t *)(const void *)
			    ((const char *)&l.v[i] +
			    metrics_families[f].offset);

			/* An older aloopd's figures end before this one. */
			if (metrics_families[f].offset >= l.v[i].size)
				continue;
			sbuf_printf(b, "%s{listener=\"",
			    metrics_families[f].name);
			sbuf_label(b, l.v[i].listener);
			sbuf_printf(b, "\",worker=\"%u\"", l.v[i].worker);
			if (metrics_families[f].reason != NULL)
				sbuf_printf(b, ",reason=\"%s\"",
				    metrics_families[f].reason);
			sbuf_printf(b, "} %" PRIu64 "\n", *v);
		}
	}
	free(l.v);
	if ((r = metrics_plugins(b)) != 0)
		return r;
	metrics_process(b);
	return b->failed ? ALOOP_ENOMEM : 0;
}

/* ------------------------------------------------------------------ HTTP */

static int
is_tchar(int c)
{
	return isalnum((unsigned char)c) || (c != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Whether comma-separated list @v (of @n bytes) holds token @tok. */
static int
list_has(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0, s, e;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return 1;
	}
	return 0;
}

/* One header line (no CR LF); -1 if it is malformed. */
static int
parse_header(struct metrics_req *rq, const char *h, size_t n)
{
	const char *colon = memchr(h, ':', n), *v, *e;
	size_t nl;
	uint64_t len = 0;

	if (colon == NULL || colon == h)
		return -1;
	nl = (size_t)(colon - h);
	for (size_t i = 0; i < nl; i++)
		if (!is_tchar(h[i]))
			return -1;	/* whitespace before ':' too */
	v = colon + 1;
	e = h + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	for (const char *p = v; p < e; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return -1;
	if (nl == 4 && strncasecmp(h, "host", 4) == 0)
		rq->has_host++;
	else if (nl == 10 && strncasecmp(h, "connection", 10) == 0) {
		rq->close |= list_has(v, (size_t)(e - v), "close");
		rq->keep_alive |= list_has(v, (size_t)(e - v), "keep-alive");
	} else if (nl == 17 && strncasecmp(h, "transfer-encoding", 17) == 0)
		rq->chunked = 1;
	else if (nl == 14 && strncasecmp(h, "content-length", 14) == 0) {
		if (v == e)
			return -1;
		for (const char *p = v; p < e; p++) {
			if (!isdigit((unsigned char)*p) ||
			    len > (UINT64_MAX - 9) / 10)
				return -1;
			len = len * 10 + (uint64_t)(*p - '0');
		}
		/* Two different lengths would desynchronise the stream. */
		if (rq->has_length && rq->length != len)
			return -1;
		rq->has_length = 1;
		rq->length = len;
	}
	return 0;
}

/* The request line; -1 if it is malformed, -2 for another HTTP major. */
static int
parse_request_line(struct metrics_req *rq, const char *s, size_t n)
{
	const char *sp1, *sp2, *q;

	sp1 = memchr(s, ' ', n);
	if (sp1 == NULL || sp1 == s)
		return -1;
	for (const char *p = s; p < sp1; p++)
		if (!is_tchar(*p))
			return -1;
	rq->method = s;
	rq->method_len = (size_t)(sp1 - s);
	sp2 = memchr(sp1 + 1, ' ', (size_t)(s + n - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return -1;
	for (const char *p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return -1;
	rq->path = sp1 + 1;
	q = memchr(rq->path, '?', (size_t)(sp2 - rq->path));
	rq->path_len = (size_t)((q != NULL ? q : sp2) - rq->path);
	if ((size_t)(s + n - sp2 - 1) != 8 || strncmp(sp2 + 1, "HTTP/", 5) !=
	    0 || !isdigit((unsigned char)sp2[6]) || sp2[7] != '.' ||
	    !isdigit((unsigned char)sp2[8]))
		return -1;
	if (sp2[6] != '1')
		return -2;
	rq->minor = sp2[8] - '0';
	return 0;
}

/*
 * Send one answer.  @body NULL with @body_len set answers HEAD: the
 * length of the body GET would get, without it.
 */
static int
metrics_respond(struct metrics_conn *c, const char *status,
    const char *extra, const char *body, size_t body_len, int keep)
{
	char head[512];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n%s"
	    "Connection: %s\r\n\r\n", status, strncmp(status, "200", 3) == 0 ?
	    "text/plain; version=0.0.4; charset=utf-8" :
	    "text/plain; charset=utf-8", body_len, extra,
	    keep ? "keep-alive" : "close");
	if (n < 0 || (size_t)n >= sizeof(head))
		return ALOOP_ENOMEM;
	if (body == NULL || body_len == 0)
		return aloop_transport_write(c->t, head, (size_t)n);
	{
		struct iovec iov[2] = {
			{ head, (size_t)n },
			{ (void *)(uintptr_t)body, body_len },
		};

		return aloop_transport_writelines(c->t, iov, 2);
	}
}

/* An error answer with a one-line body; the connection then ends. */
static void
metrics_fail(struct metrics_conn *c, const char *status)
{
	char body[64];
	int n;

	n = snprintf(body, sizeof(body), "%s\n", status);
	(void)metrics_respond(c, status, "", body, n > 0 ? (size_t)n : 0, 0);
	c->done = 1;
	aloop_transport_close(c->t);
}

/* Answer the request @rq; 1 if the connection stays open, else 0. */
static int
metrics_answer(struct metrics_conn *c, const struct metrics_req *rq)
{
	static const char nf[] = "404 Not Found\n";
	static const char na[] = "405 Method Not Allowed\n";
	struct sbuf b = { NULL, 0, 0, 0 };
	int keep, head, r;

	keep = rq->minor >= 1 ? !rq->close : rq->keep_alive && !rq->close;
	/* A chunked body has no length to skip by. */
	if (rq->chunked)
		keep = 0;
	head = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
	if (rq->path_len != 8 || memcmp(rq->path, "/metrics", 8) != 0)
		r = metrics_respond(c, "404 Not Found", "", head ? NULL : nf,
		    sizeof(nf) - 1, keep);
	else if (!head && (rq->method_len != 3 ||
	    memcmp(rq->method, "GET", 3) != 0))
		r = metrics_respond(c, "405 Method Not Allowed",
		    "Allow: GET, HEAD\r\n", na, sizeof(na) - 1, keep);
	else if (metrics_render(&b) != 0) {
		free(b.p);
		metrics_fail(c, "500 Internal Server Error");
		return 0;
	} else {
		r = metrics_respond(c, "200 OK", "", head ? NULL : b.p, b.len,
		    keep);
		free(b.p);
	}
	if (r != 0 || !keep) {
		c->done = 1;
		aloop_transport_close(c->t);
		return 0;
	}
	return 1;
}

/*
 * Parse the request head at the start of @buf (@len bytes, blank lines
 * before it already dropped) into @rq, which points into @buf.  Returns
 * 1 with *@used the head's length when it is complete and well formed; 0
 * if it is not complete yet; -1 if it is malformed (400); -2 for another
 * HTTP major version (505).  No state but its arguments: the fuzzer
 * calls it as it is.
 */
static int
metrics_parse_head(const char *buf, size_t len, struct metrics_req *rq,
    size_t *used)
{
	const char *line = buf, *end = buf + len, *nl;
	size_t n;
	int r = 0;

	memset(rq, 0, sizeof(*rq));
	for (int first = 1;; first = 0) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			return 0;	/* wait for the rest */
		n = (size_t)(nl - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0 && !first)
			break;	/* the end of the head */
		if (first)
			r = parse_request_line(rq, line, n);
		else if (line[0] == ' ' || line[0] == '\t')
			r = -1;	/* obsolete line folding */
		else
			r = parse_header(rq, line, n);
		if (r < 0)
			return r;
		line = nl + 1;
	}
	if ((rq->minor >= 1 && rq->has_host != 1) ||
	    (rq->chunked && rq->has_length))
		return -1;
	*used = (size_t)(nl + 1 - buf);
	return 1;
}

/*
 * Answer every complete request in the buffer, in order, while the
 * transport takes more; keep an incomplete one for the next read.
 */
static void	metrics_head_late(void *arg);

/* Start the clock for the next request head, unless it runs already. */
static void
metrics_head_wait(struct metrics_conn *c)
{
	if (c->head_timer != ALOOP_HANDLE_NONE || c->done || c->paused)
		return;
	if (aloop_call_later(aloop_transport_get_loop(c->t),
	    c->m->request_timeout, metrics_head_late, c, &c->head_timer) != 0)
		c->head_timer = ALOOP_HANDLE_NONE;
}

static void
metrics_head_stop(struct metrics_conn *c)
{
	if (c->head_timer == ALOOP_HANDLE_NONE)
		return;
	aloop_handle_cancel(aloop_transport_get_loop(c->t), c->head_timer);
	c->head_timer = ALOOP_HANDLE_NONE;
}

static void
metrics_head_late(void *arg)
{
	struct metrics_conn *c = arg;

	c->head_timer = ALOOP_HANDLE_NONE;
	if (!c->done)
		metrics_fail(c, "408 Request Timeout");
}

static void
metrics_process_buf(struct metrics_conn *c)
{
	struct metrics_req rq;
	size_t used, n;
	int r;

	while (!c->done && !c->paused) {
		if (c->skip > 0) {
			n = c->len < c->skip ? c->len : (size_t)c->skip;
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			c->skip -= n;
			if (c->skip > 0)
				return;
		}
		/* Blank lines before a request are to be ignored. */
		while (c->len > 0 && (c->buf[0] == '\r' ||
		    c->buf[0] == '\n')) {
			if (c->buf[0] == '\r' && (c->len < 2 ||
			    c->buf[1] != '\n'))
				break;
			n = c->buf[0] == '\r' ? 2 : 1;
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
		}
		r = metrics_parse_head(c->buf, c->len, &rq, &used);
		if (r == 0) {
			if (c->len == sizeof(c->buf))
				metrics_fail(c, "431 Request Header Fields "
				    "Too Large");
			else
				metrics_head_wait(c);
			return;	/* wait for the rest */
		}
		metrics_head_stop(c);
		if (r == -2) {
			metrics_fail(c, "505 HTTP Version Not Supported");
			return;
		}
		if (r < 0) {
			metrics_fail(c, "400 Bad Request");
			return;
		}
		c->skip = rq.has_length ? rq.length : 0;
		if (!metrics_answer(c, &rq))
			return;
		/* @rq points into the buffer: move only once answered. */
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
}

/* --------------------------------------------------------- the protocol */

static int
metrics_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { "request_timeout", NULL };
	struct metrics *m;
	double timeout = 10.0;
	int rc, bad = 0;

	(void)env;
	*instance = NULL;
	if (aloop_settings_check_names(settings, names) != 0)
		bad = 1;
	rc = aloop_settings_get_double(settings, "request_timeout", &timeout);
	if (rc == ALOOP_ECONFIG)
		bad = 1;
	else if (!(timeout >= 0.1 && timeout <= 3600)) {
		aloop_settings_error(aloop_settings_get(settings,
		    "request_timeout"), "out of range (0.1..3600 s)");
		bad = 1;
	}
	if (bad)
		return ALOOP_ECONFIG;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return ALOOP_ENOMEM;
	m->request_timeout = timeout;
	*instance = m;
	return 0;
}

static void
metrics_fini(void *instance)
{
	free(instance);
}

static int
metrics_new(void *instance, void **state)
{
	struct metrics_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	c->m = instance;
	c->head_timer = ALOOP_HANDLE_NONE;
	*state = c;
	return 0;
}

static void
metrics_made(struct aloop_transport *t, void *state)
{
	struct metrics_conn *c = state;

	c->t = t;
	metrics_head_wait(c);
}

static void
metrics_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct metrics_conn *c = state;
	const char *p = data;
	size_t n;

	while (len > 0 && !c->done) {
		/* A body being skipped never enters the buffer. */
		if (c->skip > 0 && c->len == 0) {
			n = len < c->skip ? len : (size_t)c->skip;
			c->skip -= n;
			p += n;
			len -= n;
			continue;
		}
		n = sizeof(c->buf) - c->len;
		if (n > len)
			n = len;
		memcpy(c->buf + c->len, p, n);
		c->len += n;
		p += n;
		len -= n;
		metrics_process_buf(c);
		/*
		 * Paused with the buffer full: the rest of this read cannot
		 * be kept.  Reading is off, so this happens only to a client
		 * that sent more than a full buffer in one go; it is not
		 * reading its answers, and is dropped.
		 */
		if (len > 0 && c->paused && c->len == sizeof(c->buf)) {
			c->done = 1;
			aloop_transport_abort(t);
			return;
		}
	}
}

static void
metrics_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	metrics_head_stop(state);
	free(state);
}

/* Stop answering, and reading, while the client does not read. */
static void
metrics_pause(struct aloop_transport *t, void *state)
{
	struct metrics_conn *c = state;

	c->paused = 1;
	aloop_transport_pause_reading(t);
	/* Not reading is ours now, not the client's. */
	metrics_head_stop(c);
}

static void
metrics_resume(struct aloop_transport *t, void *state)
{
	struct metrics_conn *c = state;

	c->paused = 0;
	if (c->done)
		return;
	aloop_transport_resume_reading(t);
	metrics_process_buf(c);
}

static const struct aloop_protocol metrics_stream = {
	.connection_made = metrics_made,
	.data_received = metrics_data,
	.connection_lost = metrics_lost,
	.pause_writing = metrics_pause,
	.resume_writing = metrics_resume,
	/* eof_received NULL: close once the answers are out. */
};

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "metrics",
	.version = "1.0",
	.description = "aloopd's counters for Prometheus over HTTP",
	.init = metrics_init,
	.fini = metrics_fini,
	.stream = &metrics_stream,
	.stream_factory = metrics_new,
};
