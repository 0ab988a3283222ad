/*
 * The shared admission tables: open addressing over fixed arrays of
 * atomics, each entry claimed and updated with compare-and-swap, so that
 * worker processes never wait for each other (see admission.h).
 */
#include "config.h"

#include <sys/mman.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "admission.h"

#define SOURCES		(1u << 16)	/* connection counts */
#define RATES		(1u << 16)	/* rate states */
#define PROBES		32		/* entries a key may take */
#define TRIES		8		/* compare-and-swap races, at most */

/*
 * A source's count in one word, so that one compare-and-swap claims an
 * entry and counts: the high 40 bits are a tag of the key (never 0), the
 * low 24 the connections (max_connections_per_source is at most 10^6).
 * An entry whose count is 0 is free for any key.
 */
#define COUNT_BITS	24
#define COUNT_MASK	((UINT64_C(1) << COUNT_BITS) - 1)

/* A rate's state: its key, and the theoretical arrival time in ns. */
struct rate {
	_Atomic uint64_t	 key;
	_Atomic uint64_t	 tat;
};

struct tables {
	_Atomic uint64_t	 sources[SOURCES];
	struct rate		 rates[RATES];
};

static struct tables *adm;

int
adm_open(void)
{
	void *p;

	if (adm != NULL)
		return 0;
	/* Untouched pages cost nothing: most of the tables stay empty. */
	p = mmap(NULL, sizeof(*adm), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	adm = p;
	return 0;
}

void
adm_close(void)
{
	if (adm != NULL)
		(void)munmap(adm, sizeof(*adm));
	adm = NULL;
}

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n-- > 0)
		h = (h ^ *b++) * UINT64_C(1099511628211);
	return h;
}

uint64_t
adm_key(const char *name, const struct sockaddr *sa, socklen_t len)
{
	static const unsigned char v4mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	};
	uint64_t h = fnv(UINT64_C(14695981039346656037), name,
	    strlen(name) + 1);
	const struct sockaddr_in6 *s6;
	const struct sockaddr_in *s4;

	if (sa != NULL && sa->sa_family == AF_INET &&
	    len >= (socklen_t)sizeof(*s4)) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		h = fnv(h, &s4->sin_addr, 4);
	} else if (sa != NULL && sa->sa_family == AF_INET6 &&
	    len >= (socklen_t)sizeof(*s6)) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (memcmp(&s6->sin6_addr, v4mapped, 12) == 0)
			h = fnv(h, (const char *)&s6->sin6_addr + 12, 4);
		else
			h = fnv(h, &s6->sin6_addr, 16);
	}
	/* A finaliser, so that both the index and the tag bits mix. */
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	return h != 0 ? h : 1;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC is one clock for every process on the machine. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- counts */

uintptr_t
adm_source_take(uint64_t key, unsigned long limit)
{
	uint64_t tag = (key >> COUNT_BITS) | (UINT64_C(1) << 39);
	uint64_t w, free_w = 0;
	size_t i, free_i;

	if (adm == NULL)
		return ADM_UNTRACKED;
	for (int t = 0; t < TRIES; t++) {
		free_i = SOURCES;
		for (size_t p = 0; p < PROBES; p++) {
			i = (key + p) & (SOURCES - 1);
			w = atomic_load_explicit(&adm->sources[i],
			    memory_order_relaxed);
			if (w >> COUNT_BITS == tag && (w & COUNT_MASK) > 0) {
				if ((w & COUNT_MASK) >= limit)
					return ADM_REFUSED;
				if (atomic_compare_exchange_strong(
				    &adm->sources[i], &w, w + 1))
					return (uintptr_t)i + 1;
				goto again;
			}
			if ((w & COUNT_MASK) == 0 && free_i == SOURCES) {
				free_i = i;
				free_w = w;
			}
		}
		if (free_i == SOURCES)
			return ADM_UNTRACKED;
		if (atomic_compare_exchange_strong(&adm->sources[free_i],
		    &free_w, (tag << COUNT_BITS) | 1))
			return (uintptr_t)free_i + 1;
again:		;
	}
	return ADM_UNTRACKED;
}

void
adm_source_release(uintptr_t ticket)
{
	/* The tag stays; a count of 0 frees the entry for any key. */
	if (adm != NULL && ticket != ADM_REFUSED && ticket != ADM_UNTRACKED &&
	    ticket <= SOURCES)
		atomic_fetch_sub_explicit(&adm->sources[ticket - 1], 1,
		    memory_order_relaxed);
}

/* -------------------------------------------------------------- rates */

/*
 * One event of @key, at most one per @interval ns with @tolerance ns of
 * burst (the bucket's depth, as a time): 1 if it fits.
 */
static int
gcra(uint64_t key, uint64_t interval, uint64_t tolerance)
{
	uint64_t now = now_ns(), tat, next, k;
	struct rate *r, *spare;

	if (adm == NULL)
		return 1;
	for (int t = 0; t < TRIES; t++) {
		spare = NULL;
		for (size_t p = 0; p < PROBES; p++) {
			r = &adm->rates[(key + p) & (RATES - 1)];
			k = atomic_load_explicit(&r->key, memory_order_acquire);
			tat = atomic_load_explicit(&r->tat,
			    memory_order_relaxed);
			if (k == key) {
				next = tat > now ? tat : now;
				if (next - now > tolerance)
					return 0;
				if (atomic_compare_exchange_strong(&r->tat,
				    &tat, next + interval))
					return 1;
				goto again;
			}
			/*
			 * A key whose time has passed has a full bucket, the
			 * state of a key never seen: its entry can go.
			 */
			if (spare == NULL && (k == 0 || tat <= now))
				spare = r;
		}
		if (spare == NULL)
			return 1;
		k = atomic_load_explicit(&spare->key, memory_order_relaxed);
		if (atomic_compare_exchange_strong(&spare->key, &k, key)) {
			atomic_store_explicit(&spare->tat, now + interval,
			    memory_order_release);
			return 1;
		}
again:		;
	}
	return 1;
}

int
adm_rate(uint64_t key, unsigned long rate)
{
	uint64_t interval = 1000000000u / rate;

	if (interval == 0)
		interval = 1;
	/* A burst of @rate events. */
	return gcra(key, interval, interval * (rate - 1));
}

int
adm_once_per(uint64_t key, unsigned seconds)
{
	/* Its own key space, apart from the rates of the same source. */
	return gcra(key ^ UINT64_C(0x9e3779b97f4a7c15),
	    (uint64_t)seconds * 1000000000u, 0);
}
