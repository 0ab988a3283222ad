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
	out.connections_accepted = load(&c->accepted);
	out.connections_active = load(&c->active);
	out.connections_closed = load(&c->closed);
	out.bytes_received = load(&c->bytes_in);
	out.bytes_sent = load(&c->bytes_out);
	out.tls_handshakes = load(&c->tls_handshakes);
	out.tls_handshake_failures = load(&c->tls_failures);
	out.plugin_errors = load(&c->plugin_errors);
	out.connections_dropped_descriptors = load(&c->dropped_fds);
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
