/*
 * aloopd's counters and the functions through which a plugin reads them
 * (aloop_daemon_metrics_* in <aloop/plugin.h>).  A worker appends the set
 * of a listener name to its own list the first time it opens that
 * listener and never removes it, so a reader on another thread can walk
 * the lists without a lock: each link is published with a release store
 * once the set behind it is complete.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "config-int.h"
#include "metrics.h"

/* One list per worker; a worker index is below CONFIG_WORKERS_MAX. */
static _Atomic(struct metrics_listener *) heads[CONFIG_WORKERS_MAX];
static _Atomic uint64_t reloads, reload_failures;

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static double start_wall;		/* CLOCK_REALTIME at start */
static struct timespec start_mono;	/* CLOCK_MONOTONIC at start */

static void
record_start(void)
{
	struct timespec ts;

	/* Both clocks exist on every system aloopd builds for. */
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	start_wall = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	(void)clock_gettime(CLOCK_MONOTONIC, &start_mono);
}

struct metrics_listener *
metrics_listener(unsigned worker, const char *name)
{
	struct metrics_listener *m, *last = NULL;

	(void)pthread_once(&start_once, record_start);
	if (worker >= CONFIG_WORKERS_MAX)
		return NULL;
	/* Only this worker's thread appends, so the walk sees every set. */
	for (m = atomic_load_explicit(&heads[worker], memory_order_acquire);
	    m != NULL; m = atomic_load_explicit(&m->next,
	    memory_order_acquire)) {
		if (strcmp(m->name, name) == 0)
			return m;
		last = m;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	if ((m->name = strdup(name)) == NULL) {
		free(m);
		return NULL;
	}
	m->worker = worker;
	/* Appended at the tail, so the walk keeps the order of opening. */
	if (last == NULL)
		atomic_store_explicit(&heads[worker], m, memory_order_release);
	else
		atomic_store_explicit(&last->next, m, memory_order_release);
	return m;
}

void
metrics_reload(int ok)
{
	metrics_add(ok ? &reloads : &reload_failures, 1);
}

void
metrics_free(void)
{
	struct metrics_listener *m, *next;

	for (size_t i = 0; i < CONFIG_WORKERS_MAX; i++) {
		m = atomic_exchange(&heads[i], NULL);
		for (; m != NULL; m = next) {
			next = atomic_load(&m->next);
			free(m->name);
			free(m);
		}
	}
}

/* ------------------------------------------------- the plugins' readers */

static uint64_t
load(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

int
aloop_daemon_metrics_listeners(aloop_metrics_listener_fn fn, void *arg)
{
	struct aloop_metrics_listener out;
	struct metrics_listener *m;
	int r;

	if (fn == NULL)
		return ALOOP_EINVAL;
	for (size_t i = 0; i < CONFIG_WORKERS_MAX; i++) {
		for (m = atomic_load_explicit(&heads[i], memory_order_acquire);
		    m != NULL; m = atomic_load_explicit(&m->next,
		    memory_order_acquire)) {
			memset(&out, 0, sizeof(out));
			out.size = sizeof(out);
			out.listener = m->name;
			out.worker = m->worker;
			/*
			 * Closed before accepted: a connection counted closed
			 * was counted accepted earlier, so the figures read
			 * here never show more closed than accepted.
			 */
			out.connections_closed = atomic_load_explicit(
			    &m->closed, memory_order_acquire);
			out.connections_accepted = load(&m->accepted);
			out.connections_active = load(&m->active);
			out.bytes_received = load(&m->bytes_in);
			out.bytes_sent = load(&m->bytes_out);
			out.tls_handshakes = load(&m->tls_handshakes);
			out.tls_handshake_failures = load(&m->tls_failures);
			out.plugin_errors = load(&m->plugin_errors);
			if ((r = fn(&out, arg)) != 0)
				return r;
		}
	}
	return 0;
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
	struct timespec now;
	size_t size;
	int r, r2;

	if (out == NULL || out->size < sizeof(out->size))
		return ALOOP_EINVAL;
	(void)pthread_once(&start_once, record_start);
	memset(p, 0, sizeof(*p));
	p->start_time = start_wall;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	p->uptime = (double)(now.tv_sec - start_mono.tv_sec) +
	    (now.tv_nsec - start_mono.tv_nsec) / 1e9;
	/* The main thread is their only writer. */
	p->reloads = load(&reloads);
	p->reload_failures = load(&reload_failures);
	r = count_fds(&p->open_fds);
	r2 = resident_bytes(&p->resident_bytes);
	/* A plugin built against an older header has a shorter struct. */
	size = out->size < sizeof(fig) ? out->size : sizeof(fig);
	fig.size = size;
	memcpy(out, &fig, size);
	return r < 0 ? r : r2;
}
