/*
 * Counters of the loop's work, for the unit tests (to observe that the
 * loop does not spin, that cancelled timers are compacted) and the
 * benchmark.  Private to the library and its tests.
 */
#ifndef ALOOP_LOOP_STATS_INT_H
#define ALOOP_LOOP_STATS_INT_H

#include <stdint.h>

struct aloop_loop;

struct aloop__loop_stats {
	uint64_t	iterations;		/* loop iterations run */
	uint64_t	polls;			/* libevent polls made */
	uint32_t	timers;			/* entries in the timer heap */
	uint32_t	timers_cancelled;	/* of which cancelled */
	uint32_t	calls;			/* pooled calls in use */
	uint32_t	ready;			/* calls in the ready queue */
};

void	aloop__loop_stats(const struct aloop_loop *loop,
	    struct aloop__loop_stats *st);

#endif /* ALOOP_LOOP_STATS_INT_H */
