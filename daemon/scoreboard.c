/*
 * The scoreboard's mapping and its bookkeeping.  The mapping is reserved
 * large and touched as it fills (MAP_NORESERVE over shared memory costs a
 * page only once written), so that its layout can be fixed before the
 * first fork: a header, the worker regions, the series, and an arena for
 * names and per-worker arrays that only the master allocates from.
 */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aloop/aloop.h>

#include "scoreboard.h"

#define SB_MAGIC	0x414c5342u	/* "ALSB" */
/* Worker processes alive at once: every generation still draining. */
#define SB_WORKERS_MAX	4096
/* Listener names times slots, over the daemon's life. */
#define SB_SERIES_MAX	(1u << 18)
#define SB_ARENA_SIZE	((size_t)128 << 20)
/* Listener names with a rate-limited report (a power of two). */
#define SB_REPORTS_MAX	4096

/*
 * One listener name's rate-limited report, found by a hash of the name
 * (claimed with a compare-and-swap: any process may add one).  A 64-bit
 * hash stands for the name; two names sharing one would only share a
 * rate limit.
 */
struct sb_report {
	_Atomic uint64_t	 key;		/* 0: free */
	_Atomic uint64_t	 last_ms;	/* the last report, 0: none */
	_Atomic uint64_t	 pending;	/* to report */
};

struct sb_header {
	uint32_t		 magic;
	_Atomic uint32_t	 nseries;	/* published with release */
	/* Odd while the master folds an exited worker into its series. */
	_Atomic uint64_t	 fold_seq;
	size_t			 arena_used;	/* master only */
	struct sb_process	 process;
	struct sb_worker	 workers[SB_WORKERS_MAX];
	struct sb_series	 series[SB_SERIES_MAX];
	struct sb_report	 reports[SB_REPORTS_MAX];
	/* The arena follows. */
};

static struct sb_header *sb;
static size_t sb_size;

/*
 * The master's index from (slot, name) to a series: open addressing over
 * a private table that only the master uses (workers inherit a copy they
 * never read).
 */
static uint32_t *index_tab;		/* series number + 1, 0: empty */
static size_t index_cap;

static char *
arena(void)
{
	return (char *)(sb + 1);
}

static void *
at(uint32_t off)
{
	return arena() + off;
}

uint64_t
sb_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
sb_open(void)
{
	struct timespec ts;

	if (sb != NULL)
		return 0;
	sb_size = sizeof(*sb) + SB_ARENA_SIZE;
	sb = mmap(NULL, sb_size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sb == MAP_FAILED) {
		sb = NULL;
		return -errno;
	}
	sb->magic = SB_MAGIC;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	sb->process.start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	sb->process.start_mono = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	return 0;
}

void
sb_close(void)
{
	if (sb != NULL)
		(void)munmap(sb, sb_size);
	sb = NULL;
	free(index_tab);
	index_tab = NULL;
	index_cap = 0;
}

struct sb_process *
sb_process(void)
{
	static struct sb_process none;

	return sb != NULL ? &sb->process : &none;
}

/* Master: @n bytes of the arena, aligned for any counter; 0 when full. */
static uint32_t
arena_alloc(size_t n)
{
	size_t off = (sb->arena_used + 63) & ~(size_t)63;

	if (off + n > SB_ARENA_SIZE || off + n < off)
		return UINT32_MAX;
	sb->arena_used = off + n;
	return (uint32_t)off;
}

const char *
sb_series_name(const struct sb_series *s)
{
	return at(s->name);
}

static size_t
hash(unsigned slot, const char *name)
{
	size_t h = 1469598103934665603u ^ slot;

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211u;
	return h;
}

static int
index_grow(void)
{
	size_t cap = index_cap > 0 ? index_cap * 2 : 1024;
	uint32_t *tab = calloc(cap, sizeof(*tab));

	if (tab == NULL)
		return ALOOP_ENOMEM;
	for (size_t i = 0; i < index_cap; i++) {
		struct sb_series *s;
		size_t j;

		if (index_tab[i] == 0)
			continue;
		s = &sb->series[index_tab[i] - 1];
		for (j = hash(s->slot, at(s->name)) & (cap - 1); tab[j] != 0;
		    j = (j + 1) & (cap - 1))
			;
		tab[j] = index_tab[i];
	}
	free(index_tab);
	index_tab = tab;
	index_cap = cap;
	return 0;
}

/* Master: the series of @name on @slot, made if new; UINT32_MAX if full. */
static uint32_t
series_for(unsigned slot, const char *name)
{
	uint32_t n = atomic_load_explicit(&sb->nseries, memory_order_relaxed);
	struct sb_series *s;
	size_t j, len;
	uint32_t off;

	if ((n + 1) * 2 > index_cap && index_grow() < 0)
		return UINT32_MAX;
	for (j = hash(slot, name) & (index_cap - 1); index_tab[j] != 0;
	    j = (j + 1) & (index_cap - 1)) {
		s = &sb->series[index_tab[j] - 1];
		if (s->slot == slot && strcmp(at(s->name), name) == 0)
			return index_tab[j] - 1;
	}
	len = strlen(name) + 1;
	if (n >= SB_SERIES_MAX || (off = arena_alloc(len)) == UINT32_MAX)
		return UINT32_MAX;
	memcpy(at(off), name, len);
	s = &sb->series[n];
	s->slot = slot;
	s->name = off;
	index_tab[j] = n + 1;
	/* Readers see the series complete once they see the count. */
	atomic_store_explicit(&sb->nseries, n + 1, memory_order_release);
	return n;
}

struct sb_worker *
sb_worker_new(unsigned slot, unsigned generation, const char *const *names,
    size_t nlisteners)
{
	struct sb_worker *w = NULL;
	uint32_t *series;

	if (sb == NULL)
		return NULL;
	for (size_t i = 0; i < SB_WORKERS_MAX && w == NULL; i++)
		if (atomic_load(&sb->workers[i].state) == SB_FREE)
			w = &sb->workers[i];
	if (w == NULL) {
		aloop_log(ALOOP_LOG_ERR, "scoreboard: more than %d worker "
		    "processes at once", SB_WORKERS_MAX);
		return NULL;
	}
	/* A region keeps its arrays; they only grow. */
	if (w->cap < nlisteners) {
		uint32_t s = arena_alloc(nlisteners * sizeof(uint32_t));
		uint32_t c = arena_alloc(nlisteners *
		    sizeof(struct sb_counters));

		if (s == UINT32_MAX || c == UINT32_MAX) {
			aloop_log(ALOOP_LOG_ERR, "scoreboard: full");
			return NULL;
		}
		w->series = s;
		w->counters = c;
		w->cap = (uint32_t)nlisteners;
	}
	series = at(w->series);
	for (size_t i = 0; i < nlisteners; i++) {
		if ((series[i] = series_for(slot, names[i])) == UINT32_MAX) {
			aloop_log(ALOOP_LOG_ERR, "scoreboard: too many "
			    "listener series");
			return NULL;
		}
	}
	memset(at(w->counters), 0, nlisteners * sizeof(struct sb_counters));
	memset(w->gauges, 0, sizeof(w->gauges));
	for (size_t i = 0; i < SB_GAUGES; i++)
		w->gauges[i].listener = UINT32_MAX;
	w->pid = 0;
	w->slot = slot;
	w->generation = generation;
	w->nlisteners = (uint32_t)nlisteners;
	atomic_store(&w->heartbeat, sb_now_ms());
	atomic_store(&w->where, 0);
	atomic_store(&w->nconns, 0);
	atomic_store_explicit(&w->state, SB_RUNNING, memory_order_release);
	return w;
}

static void
fold(struct sb_counters *to, struct sb_counters *from)
{
	uint64_t active = atomic_load(&from->v[SB_ACTIVE]);

	for (int i = 0; i < SB_NCOUNTERS; i++)
		if (i != SB_ACTIVE)
			sb_add(&to->v[i], atomic_load(&from->v[i]));
	/* A dead worker's open connections are closed now. */
	sb_add(&to->v[SB_CLOSED], active);
}

void
sb_worker_free(struct sb_worker *w)
{
	const uint32_t *series = at(w->series);

	/* Readers that overlap the fold retry (see sb_totals). */
	atomic_fetch_add_explicit(&sb->fold_seq, 1, memory_order_acq_rel);
	atomic_store_explicit(&w->state, SB_DEAD, memory_order_release);
	for (uint32_t i = 0; i < w->nlisteners; i++)
		fold(&sb->series[series[i]].folded, sb_counters(w, i));
	atomic_fetch_add_explicit(&sb->fold_seq, 1, memory_order_acq_rel);
	w->pid = 0;
	atomic_store_explicit(&w->state, SB_FREE, memory_order_release);
}

struct sb_counters *
sb_counters(struct sb_worker *w, size_t i)
{
	return (struct sb_counters *)at(w->counters) + i;
}

uint64_t
sb_active_elsewhere(struct sb_worker *self, size_t i)
{
	uint32_t series = ((const uint32_t *)at(self->series))[i];
	uint64_t n = 0;

	for (size_t k = 0; k < SB_WORKERS_MAX; k++) {
		struct sb_worker *w = &sb->workers[k];
		const uint32_t *ws;
		int st;

		st = atomic_load_explicit(&w->state, memory_order_acquire);
		if (w == self || (st != SB_RUNNING && st != SB_DRAINING) ||
		    w->slot != self->slot)
			continue;
		ws = at(w->series);
		for (uint32_t j = 0; j < w->nlisteners; j++)
			if (ws[j] == series)
				n += atomic_load_explicit(
				    &sb_counters(w, j)->v[SB_ACTIVE],
				    memory_order_relaxed);
	}
	return n;
}

/* Plain sums; the totals are a private copy, not shared memory. */
struct sum {
	uint64_t	 v[SB_NCOUNTERS];
};

static void
sum_add(struct sum *s, struct sb_counters *c)
{
	/* Closed before accepted, so that closed never exceeds accepted. */
	s->v[SB_CLOSED] += atomic_load_explicit(&c->v[SB_CLOSED],
	    memory_order_acquire);
	for (int i = 0; i < SB_NCOUNTERS; i++)
		if (i != SB_CLOSED)
			s->v[i] += atomic_load_explicit(&c->v[i],
			    memory_order_relaxed);
}

static int
by_slot(const void *a, const void *b)
{
	const struct sb_series *x = &sb->series[*(const uint32_t *)a];
	const struct sb_series *y = &sb->series[*(const uint32_t *)b];

	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

int
sb_totals(int (*fn)(const struct sb_series *, const struct sb_counters *,
    void *), void *arg)
{
	struct sum *sums;
	struct sb_counters out;
	uint32_t n, *order;
	uint64_t seq;
	int r = 0;

	if (sb == NULL)
		return 0;
	n = atomic_load_explicit(&sb->nseries, memory_order_acquire);
	sums = calloc(n + 1, sizeof(*sums));
	order = calloc(n + 1, sizeof(*order));
	if (sums == NULL || order == NULL) {
		free(sums);
		free(order);
		return ALOOP_ENOMEM;
	}
	/*
	 * A seqlock against the master's fold: a worker that exits while we
	 * add moves its counters from its region to its series, and reading
	 * both or neither would make a counter jump.  The fold is a few
	 * stores, so a handful of retries always ends it; past them the
	 * figures are at worst off for one scrape.
	 */
	for (int tries = 0; tries < 100; tries++) {
		seq = atomic_load_explicit(&sb->fold_seq, memory_order_acquire);
		if (seq & 1)
			continue;
		memset(sums, 0, n * sizeof(*sums));
		for (uint32_t i = 0; i < n; i++)
			sum_add(&sums[i], &sb->series[i].folded);
		for (size_t k = 0; k < SB_WORKERS_MAX; k++) {
			struct sb_worker *w = &sb->workers[k];
			const uint32_t *ws;
			int st;

			st = atomic_load_explicit(&w->state,
			    memory_order_acquire);
			if (st != SB_RUNNING && st != SB_DRAINING)
				continue;
			ws = at(w->series);
			for (uint32_t j = 0; j < w->nlisteners; j++)
				if (ws[j] < n)
					sum_add(&sums[ws[j]],
					    sb_counters(w, j));
		}
		if (atomic_load_explicit(&sb->fold_seq,
		    memory_order_acquire) == seq)
			break;
	}
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	qsort(order, n, sizeof(*order), by_slot);
	for (uint32_t k = 0; k < n && r == 0; k++) {
		struct sum *s = &sums[order[k]];

		for (int i = 0; i < SB_NCOUNTERS; i++)
			atomic_init(&out.v[i], s->v[i]);
		r = fn(&sb->series[order[k]], &out, arg);
	}
	free(sums);
	free(order);
	return r;
}

/* ------------------------------------------------ rate-limited reports */

static struct sb_report *
report_for(const char *name)
{
	uint64_t key = hash(0, name), want;
	size_t i, j;

	if (key == 0)
		key = 1;
	for (i = 0, j = key & (SB_REPORTS_MAX - 1); i < SB_REPORTS_MAX;
	    i++, j = (j + 1) & (SB_REPORTS_MAX - 1)) {
		struct sb_report *r = &sb->reports[j];

		want = 0;
		if (atomic_load_explicit(&r->key, memory_order_acquire) ==
		    key || atomic_compare_exchange_strong(&r->key, &want,
		    key) || want == key)
			return r;
	}
	return NULL;
}

int
sb_report_claim(const char *name, uint64_t n, uint64_t interval_ms,
    uint64_t *count, uint64_t *since_ms)
{
	struct sb_report *r;
	uint64_t now = sb_now_ms(), last;

	*count = n;
	*since_ms = 0;
	/* Without a scoreboard (or with its table full), no limit. */
	if (sb == NULL || (r = report_for(name)) == NULL)
		return 1;
	atomic_fetch_add_explicit(&r->pending, n, memory_order_relaxed);
	last = atomic_load_explicit(&r->last_ms, memory_order_relaxed);
	if (last != 0 && now - last < interval_ms)
		return 0;
	if (!atomic_compare_exchange_strong(&r->last_ms, &last, now))
		return 0;	/* another worker reports */
	*count = atomic_exchange_explicit(&r->pending, 0,
	    memory_order_relaxed);
	*since_ms = last != 0 ? now - last : 0;
	return 1;
}

/* ---------------------------------------------------------- plugin figures */

static struct sb_worker *self;

void
sb_set_self(struct sb_worker *w)
{
	self = w;
}

struct sb_worker *
sb_self(void)
{
	return self;
}

uint32_t
sb_listener_index(struct sb_worker *w, const char *name)
{
	const uint32_t *series = at(w->series);

	for (uint32_t i = 0; i < w->nlisteners; i++)
		if (strcmp(sb_series_name(&sb->series[series[i]]), name) == 0)
			return i;
	return UINT32_MAX;
}

int
sb_gauge_set(struct sb_worker *w, uint32_t i, const char *name,
    const char *labels, int counter, double value)
{
	struct sb_gauge *g = NULL, *free_g = NULL;

	if (strlen(name) >= SB_GAUGE_NAME || strlen(labels) >= SB_GAUGE_LABELS)
		return -1;
	for (size_t k = 0; k < SB_GAUGES && g == NULL; k++) {
		struct sb_gauge *c = &w->gauges[k];

		if (c->listener == UINT32_MAX) {
			if (free_g == NULL)
				free_g = c;
		} else if (c->listener == i && strcmp(c->name, name) == 0 &&
		    strcmp(c->labels, labels) == 0)
			g = c;
	}
	if (g == NULL && (g = free_g) == NULL)
		return -1;
	/* The only writer: odd while the entry changes. */
	atomic_fetch_add_explicit(&g->seq, 1, memory_order_acq_rel);
	atomic_thread_fence(memory_order_release);
	if (g->listener == UINT32_MAX) {
		memcpy(g->name, name, strlen(name) + 1);
		memcpy(g->labels, labels, strlen(labels) + 1);
		g->counter = counter;
		g->listener = i;
	}
	g->value = value;
	atomic_fetch_add_explicit(&g->seq, 1, memory_order_release);
	return 0;
}

int
sb_gauges(int (*fn)(const char *, unsigned, const struct sb_gauge *, void *),
    void *arg)
{
	struct sb_gauge copy;
	uint32_t seq;
	int r;

	if (sb == NULL)
		return 0;
	for (size_t k = 0; k < SB_WORKERS_MAX; k++) {
		struct sb_worker *w = &sb->workers[k];
		const uint32_t *series;
		int st = atomic_load_explicit(&w->state, memory_order_acquire);

		if (st != SB_RUNNING && st != SB_DRAINING)
			continue;
		series = at(w->series);
		for (size_t i = 0; i < SB_GAUGES; i++) {
			struct sb_gauge *g = &w->gauges[i];
			int tries = 0;

			do {
				seq = atomic_load_explicit(&g->seq,
				    memory_order_acquire);
				memcpy(&copy, g, sizeof(copy));
				atomic_thread_fence(memory_order_acquire);
			} while (((seq & 1) || seq != atomic_load_explicit(
			    &g->seq, memory_order_relaxed)) && ++tries < 100);
			if (tries == 100 || copy.listener >= w->nlisteners)
				continue;
			copy.name[SB_GAUGE_NAME - 1] = '\0';
			copy.labels[SB_GAUGE_LABELS - 1] = '\0';
			if ((r = fn(sb_series_name(&sb->series[
			    series[copy.listener]]), w->slot, &copy, arg)) != 0)
				return r;
		}
	}
	return 0;
}
