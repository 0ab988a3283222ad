/*
 * The loop's own representation, shared by the files that make up the loop
 * core (loop.c, timer.c, watch.c, signal.c, policy.c, exception.c).  Other
 * modules use loop-int.h instead; nothing here is for them.
 */
#ifndef ALOOP_LOOP_CORE_INT_H
#define ALOOP_LOOP_CORE_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include <aloop/loop.h>

#include "loop-int.h"

struct event;
struct event_base;

/* What a pooled call entry is doing. */
enum {
	CALL_FREE = 0,		/* on the free list */
	CALL_READY,		/* in the ready ring */
	CALL_TIMER,		/* in the timer heap */
	CALL_CANCELLED,		/* cancelled, still in the ring or the heap */
};

/*
 * One scheduled call.  Entries live in one array and are named by index, so
 * that growing the pool (realloc) never invalidates anything but raw
 * pointers, which the loop never keeps across a callback.
 */
struct aloop__call {
	aloop_callback_fn	 cb;
	void			*arg;
	double			 when;		/* timers: the deadline */
	uint64_t		 ts;		/* its threadsafe handle */
	const void		*source;	/* debug: who scheduled it */
	uint32_t		 gen;		/* bumped on every recycling */
	uint32_t		 next;		/* free list link */
	uint8_t			 state;
};

struct aloop__timer {
	double		 when;
	uint32_t	 idx;
};

/* A call handed over by another thread, waiting for the loop to take it. */
struct aloop__tscall {
	aloop_callback_fn	 cb;
	void			*arg;
	uint64_t		 handle;
	const void		*source;
};

struct aloop__watch {
	struct event		*ev;
	aloop_callback_fn	 cb;
	void			*arg;
	aloop_handle_t		 pending;	/* queued run, for remove */
	struct aloop_loop	*loop;
	int			 fd;
	int			 active;
};

struct aloop__sig {
	struct event		*ev;
	aloop_callback_fn	 cb;
	void			*arg;
	struct aloop_loop	*loop;
	int			 signum;
};

#define ALOOP__LOOP_MAGIC	0x616c6f6f70u	/* "aloop" */

struct aloop_loop {
	uint64_t		 magic;

	/* The call pool and the ready ring. */
	struct aloop__call	*calls;
	uint32_t		 ncalls, callcap;
	uint32_t		 freelist;	/* UINT32_MAX when empty */
	uint32_t		*ring;
	uint32_t		 ringmask;	/* capacity (2^k) - 1 */
	uint32_t		 head, tail;	/* free-running counters */

	/* The timer min-heap, with the deadline inline for cache locality. */
	struct aloop__timer	*heap;
	uint32_t		 nheap, heapcap;
	uint32_t		 ncancelled;	/* of them cancelled */

	/* Calls from other threads. */
	pthread_mutex_t		 ts_lock;
	struct aloop__tscall	*tsq, *tsq_spare;
	uint32_t		 ntsq, tsqcap, tsq_sparecap;
	atomic_uint		 ts_count;	/* ntsq, read without lock */
	atomic_int		 sleeping;	/* blocked in the poll */
	atomic_int		 notified;	/* a wake-up is in flight */
	int			 woken;		/* the poll read a wake-up */
	int			 ts_active;	/* drained calls lately */
	uint64_t		 ts_seq;
	int			 wake_rfd, wake_wfd;

	/* libevent. */
	struct event_base	*base;
	struct event		*wake_ev;
	struct event		*timeout_ev;
	int			 timer_fd;	/* timerfd, or -1 */
	double			 armed_when;	/* its deadline, 0: disarmed */
	int			 internal_events;	/* ours, always added */

	/* State. */
	atomic_int		 running;
	int			 stopping;
	int			 closed;
	pthread_t		 thread;	/* valid while running */
	double			 now;		/* clock at this iteration */
	double			 last_poll;
	uint32_t		 ran_since_poll;

	/* Descriptor watchers, indexed by fd. */
	struct aloop__watch	**readers, **writers;
	int			 nwatch;	/* size of both arrays */
	unsigned char		*fd_owned;	/* by a transport, indexed by fd */
	int			 nfd_owned;	/* its size */

	/* Signal handlers, indexed by signal number. */
	struct aloop__sig	*sigs[NSIG];
	int			 nsigs;

	/* Modules' resources, most recent first. */
	struct aloop__resource	*resources;

	/* The default executor, owned; shut down on close. */
	struct aloop_executor	*executor;
	void			(*executor_shutdown)(struct aloop_executor *);
	int			 executor_refused;	/* shut down for good */

	/* Exception handling and debug mode. */
	aloop_exception_handler_fn exc_handler;
	void			*exc_arg;
	int			 debug;
	double			 slow_callback_duration;

	/* Tasks (task.c), torn down first by aloop_close. */
	void			*tasks;
	void			(*tasks_close)(struct aloop_loop *, void *);

	/* forward.c's pool of empty pipes (see aloop__loop_pipes_slot). */
	void			*pipes;

	/* The future aloop_run_until_complete waits for, if any. */
	struct aloop_future	*ruc_future;

	/* Counters for tests and the benchmark (see loop-stats-int.h). */
	uint64_t		 iterations;
	uint64_t		 polls;
};

/* Monotonic time in seconds. */
double	aloop__clock(void);

/*
 * Pool and ring, loop.c.  The fast paths are inline: they run for every
 * call_soon and every dispatched callback; growing is out of line.
 */
#define ALOOP__NO_INDEX	UINT32_MAX
/* Generations stay below 2^31, so that pool handles never carry
 * ALOOP__TS_HANDLE_BIT. */
#define ALOOP__GEN_MASK	UINT32_C(0x7fffffff)

int	aloop__pool_grow(struct aloop_loop *loop);
int	aloop__ring_grow(struct aloop_loop *loop);
struct aloop__call *aloop__call_lookup(struct aloop_loop *loop,
	    aloop_handle_t h, uint32_t *idx);

static inline int
aloop__call_alloc(struct aloop_loop *loop, uint32_t *idx)
{
	int rc;

	if (__builtin_expect(loop->freelist == ALOOP__NO_INDEX, 0) &&
	    (rc = aloop__pool_grow(loop)) != 0)
		return rc;
	*idx = loop->freelist;
	loop->freelist = loop->calls[*idx].next;
	loop->ncalls++;
	return 0;
}

static inline void
aloop__call_free(struct aloop_loop *loop, uint32_t idx)
{
	struct aloop__call *c = &loop->calls[idx];

	c->state = CALL_FREE;
	c->cb = NULL;
	c->arg = NULL;
	c->ts = 0;
	c->source = NULL;
	/* A new generation makes every handle to the old call stale. */
	c->gen = (c->gen + 1) & ALOOP__GEN_MASK;
	c->next = loop->freelist;
	loop->freelist = idx;
	loop->ncalls--;
}

static inline aloop_handle_t
aloop__call_handle(const struct aloop_loop *loop, uint32_t idx)
{
	return ((uint64_t)loop->calls[idx].gen << 32) | ((uint64_t)idx + 1);
}

static inline int
aloop__ready_push(struct aloop_loop *loop, uint32_t idx)
{
	int rc;

	if (__builtin_expect(loop->tail - loop->head > loop->ringmask, 0) &&
	    (rc = aloop__ring_grow(loop)) != 0)
		return rc;
	loop->ring[loop->tail++ & loop->ringmask] = idx;
	loop->calls[idx].state = CALL_READY;
	return 0;
}

/* Threadsafe handles carry this bit; pool handles never do. */
#define ALOOP__TS_HANDLE_BIT	(UINT64_C(1) << 63)

/* The threadsafe queue and the wake-up, threadsafe.c. */
int	aloop__wake_open(struct aloop_loop *loop);
void	aloop__wake_close(struct aloop_loop *loop);
void	aloop__ts_drain(struct aloop_loop *loop);
struct aloop__call *aloop__ts_lookup(struct aloop_loop *loop,
	    aloop_handle_t h, int cancel, int *queued);

/* Take what other threads queued; a relaxed check first, no lock. */
static inline void
aloop__ts_drain_if_any(struct aloop_loop *loop)
{
	if (atomic_load_explicit(&loop->ts_count, memory_order_acquire) != 0)
		aloop__ts_drain(loop);
}

/* Timer heap, timer.c. */
int	aloop__timer_push(struct aloop_loop *loop, uint32_t idx);
void	aloop__timer_housekeep(struct aloop_loop *loop);
int	aloop__timer_collect(struct aloop_loop *loop, double now);
void	aloop__timer_cancelled(struct aloop_loop *loop);
void	aloop__timer_clear(struct aloop_loop *loop);

/* Watchers and signals, watch.c and signal.c: released on close. */
void	aloop__watch_close(struct aloop_loop *loop);
void	aloop__signal_close(struct aloop_loop *loop);

/* Policy, policy.c: forget a loop that is being freed. */
void	aloop__policy_forget(struct aloop_loop *loop);

/* Debug mode, exception.c: report a slow callback. */
void	aloop__debug_slow(struct aloop_loop *loop, aloop_callback_fn cb,
	    const void *source, double took);
void	aloop__debug_describe(const void *addr, char *buf, size_t len);

#endif /* ALOOP_LOOP_CORE_INT_H */
