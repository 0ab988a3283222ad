/*
 * aloopd's counters: per listener name and per worker, what the metrics
 * plugin exposes.  Each set is written only by its worker's loop thread
 * and read by any thread with relaxed atomic loads, so counting costs a
 * plain load and store on the data path and takes no lock.
 */
#ifndef ALOOPD_METRICS_H
#define ALOOPD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

/*
 * The counters of one listener on one worker.  They outlive every
 * generation of the listener (a reload keeps counting where it was) and
 * are freed by metrics_free() only.  The writer is that worker's thread.
 */
struct metrics_listener {
	_Atomic uint64_t	 accepted;	/* handed to the plugin */
	_Atomic uint64_t	 closed;
	_Atomic uint64_t	 active;
	_Atomic uint64_t	 bytes_in;	/* handed to the plugin */
	_Atomic uint64_t	 bytes_out;	/* the plugin wrote */
	_Atomic uint64_t	 tls_handshakes;
	_Atomic uint64_t	 tls_failures;
	_Atomic uint64_t	 plugin_errors;	/* init or factory failed */
	unsigned		 worker;
	char			*name;
	/* The worker's list; readers follow it while the worker appends. */
	_Atomic(struct metrics_listener *) next;
};

/*
 * The counters of listener @name on worker @worker, made at the first
 * call (on that worker's thread); NULL if out of memory, and the hooks
 * below then count nothing.
 */
struct metrics_listener *metrics_listener(unsigned worker, const char *name);

/* Count a reload of the configuration and whether it took.  Main thread. */
void	metrics_reload(int ok);

/* Free every set at exit, once no worker runs.  Main thread. */
void	metrics_free(void);

/*
 * The single writer's add: no read-modify-write instruction is needed,
 * since no other thread stores; readers see each value whole.
 */
static inline void
metrics_add(_Atomic uint64_t *c, uint64_t n)
{
	/* Release: a reader that sees this count sees the earlier ones. */
	atomic_store_explicit(c, atomic_load_explicit(c,
	    memory_order_relaxed) + n, memory_order_release);
}

static inline void
metrics_sub(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c,
	    memory_order_relaxed) - n, memory_order_relaxed);
}

#define METRICS_COUNT(m, field, n) do {					\
	if ((m) != NULL)						\
		metrics_add(&(m)->field, (n));				\
} while (0)

#endif /* ALOOPD_METRICS_H */
