/*
 * aloopd's counters as plugins read them (aloop_daemon_metrics_* in
 * <aloop/host.h>).  The counters live in the scoreboard, so whichever
 * worker serves the scrape reads every worker's, and the totals of workers
 * that have exited stay counted.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <aloop/aloop.h>
#include <aloop/host.h>

#include "metrics.h"
#include "scoreboard.h"

void
metrics_reload(int ok)
{
	struct sb_process *p = sb_process();

	sb_add(ok ? &p->reloads : &p->reload_failures, 1);
}

void
metrics_restart(const char *reason)
{
	struct sb_process *p = sb_process();

	if (strcmp(reason, "signal") == 0)
		sb_add(&p->restarts_signal, 1);
	else if (strcmp(reason, "stall") == 0)
		sb_add(&p->restarts_stall, 1);
	else
		sb_add(&p->restarts_exit, 1);
}

/* ------------------------------------------------- the plugins' readers */

struct walk {
	aloop_metrics_listener_fn	 fn;
	void				*arg;
};

static uint64_t
load(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static int
each_series(const struct sb_series *s, const struct sb_counters *c,
    void *arg)
{
	struct walk *wk = arg;
	struct aloop_metrics_listener out;

	memset(&out, 0, sizeof(out));
	out.size = sizeof(out);
	out.listener = sb_series_name(s);
	out.worker = s->slot;
	out.connections_accepted = load(&c->v[SB_ACCEPTED]);
	out.connections_active = load(&c->v[SB_ACTIVE]);
	out.connections_closed = load(&c->v[SB_CLOSED]);
	out.bytes_received = load(&c->v[SB_BYTES_IN]);
	out.bytes_sent = load(&c->v[SB_BYTES_OUT]);
	out.tls_handshakes = load(&c->v[SB_TLS_HANDSHAKES]);
	out.tls_handshake_failures = load(&c->v[SB_TLS_FAILURES]);
	out.plugin_errors = load(&c->v[SB_PLUGIN_ERRORS]);
	out.refused_full = load(&c->v[SB_REFUSED_FULL]);
	out.refused_source = load(&c->v[SB_REFUSED_SOURCE]);
	out.refused_rate = load(&c->v[SB_REFUSED_RATE]);
	out.datagrams_dropped = load(&c->v[SB_DATAGRAMS_DROPPED]);
	out.timeouts_idle = load(&c->v[SB_TIMEOUT_IDLE]);
	out.timeouts_first_byte = load(&c->v[SB_TIMEOUT_FIRST_BYTE]);
	out.timeouts_write = load(&c->v[SB_TIMEOUT_WRITE]);
	out.refused_access = load(&c->v[SB_REFUSED_ACCESS]);
	out.datagrams_denied = load(&c->v[SB_DATAGRAMS_DENIED]);
	out.access_log_dropped = load(&c->v[SB_LOG_DROPPED]);
	out.refused_proxy_protocol = load(&c->v[SB_PROXY_FAILURES]);
	out.connections_dropped_descriptors = load(&c->v[SB_DROPPED_FDS]);
	return wk->fn(&out, wk->arg);
}

int
aloop_daemon_metrics_listeners(aloop_metrics_listener_fn fn, void *arg)
{
	struct walk wk = { fn, arg };

	if (fn == NULL)
		return ALOOP_EINVAL;
	return sb_totals(each_series, &wk);
}

/* Descriptors open now: the entries of /proc/self/fd but the walk's own. */
static int
count_fds(uint64_t *n)
{
	struct dirent *de;
	DIR *d;

	*n = 0;
	if ((d = opendir("/proc/self/fd")) == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			(*n)++;
	if (*n > 0)
		(*n)--;
	(void)closedir(d);
	return 0;
}

/* The resident set: statm's second field, in pages. */
static int
resident_bytes(uint64_t *n)
{
	unsigned long long size, rss;
	long page;
	FILE *f;
	int r = 0;

	*n = 0;
	if ((f = fopen("/proc/self/statm", "re")) == NULL)
		return -errno;
	page = sysconf(_SC_PAGESIZE);
	if (fscanf(f, "%llu %llu", &size, &rss) != 2 || page <= 0)
		r = ALOOP_ENOTSUP;
	else
		*n = rss * (uint64_t)page;
	(void)fclose(f);
	return r;
}

int
aloop_daemon_metrics_process(struct aloop_metrics_process *out)
{
	struct aloop_metrics_process fig, *p = &fig;
	struct sb_process *sp = sb_process();
	struct timespec now;
	size_t size;
	int r, r2;

	if (out == NULL || out->size < sizeof(out->size))
		return ALOOP_EINVAL;
	memset(p, 0, sizeof(*p));
	p->start_time = sp->start_time;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	p->uptime = (double)now.tv_sec + now.tv_nsec / 1e9 - sp->start_mono;
	/* The master is their only writer. */
	p->reloads = load(&sp->reloads);
	p->reload_failures = load(&sp->reload_failures);
	p->worker_restarts_signal = load(&sp->restarts_signal);
	p->worker_restarts_stall = load(&sp->restarts_stall);
	p->worker_restarts_exit = load(&sp->restarts_exit);
	r = count_fds(&p->open_fds);
	r2 = resident_bytes(&p->resident_bytes);
	/* A plugin built against an older header has a shorter struct. */
	size = out->size < sizeof(fig) ? out->size : sizeof(fig);
	fig.size = size;
	memcpy(out, &fig, size);
	return r < 0 ? r : r2;
}

/* ------------------------------------------------------- plugin figures */

/* Prometheus's metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static int
valid_name(const char *s)
{
	if (*s == '\0' || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
			return 0;
	return 1;
}

/*
 * "" or name="value" pairs joined by commas, values with only \\, \" and
 * \n escapes, and no label of the daemon's own (listener, worker): what
 * the metrics plugin can print as it is.
 */
static int
valid_labels(const char *s)
{
	while (*s != '\0') {
		const char *k = s;

		while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_')
			s++;
		if (s == k || (*k >= '0' && *k <= '9') ||
		    ((size_t)(s - k) == 8 && strncmp(k, "listener", 8) == 0) ||
		    ((size_t)(s - k) == 6 && strncmp(k, "worker", 6) == 0))
			return 0;
		if (s[0] != '=' || s[1] != '"')
			return 0;
		for (s += 2; *s != '"'; s++) {
			if (*s == '\0' || *s == '\n')
				return 0;
			if (*s == '\\' && (s[1] == '\\' || s[1] == '"' ||
			    s[1] == 'n'))
				s++;
			else if (*s == '\\')
				return 0;
		}
		s++;
		if (*s == ',' && s[1] != '\0')
			s++;
		else if (*s != '\0')
			return 0;
	}
	return 1;
}

int
aloop_daemon_metric_set(const char *listener, const char *name,
    const char *labels, int counter, double value)
{
	struct sb_worker *w = sb_self();
	uint32_t i;

	if (listener == NULL || name == NULL || !valid_name(name) ||
	    (labels != NULL && !valid_labels(labels)))
		return ALOOP_EINVAL;
	if (w == NULL)
		return ALOOP_ENOTSUP;
	if ((i = sb_listener_index(w, listener)) == UINT32_MAX)
		return ALOOP_EINVAL;
	if (sb_gauge_set(w, i, name, labels != NULL ? labels : "",
	    counter != 0, value) < 0)
		return strlen(name) >= SB_GAUGE_NAME || (labels != NULL &&
		    strlen(labels) >= SB_GAUGE_LABELS) ? ALOOP_EINVAL :
		    ALOOP_ENOMEM;
	return 0;
}

struct plugin_walk {
	aloop_metrics_plugin_fn	 fn;
	void			*arg;
};

static int
each_gauge(const char *listener, unsigned slot, const struct sb_gauge *g,
    void *arg)
{
	struct plugin_walk *wk = arg;
	struct aloop_metrics_plugin_series s = {
		.listener = listener,
		.worker = slot,
		.name = g->name,
		.labels = g->labels,
		.counter = g->counter,
		.value = g->value,
	};

	return wk->fn(&s, wk->arg);
}

int
aloop_daemon_metrics_plugins(aloop_metrics_plugin_fn fn, void *arg)
{
	struct plugin_walk wk = { fn, arg };

	if (fn == NULL)
		return ALOOP_EINVAL;
	return sb_gauges(each_gauge, &wk);
}
