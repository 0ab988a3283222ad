/*
 * The event loop core: the pool of scheduled calls, the ready queue, one
 * iteration of the loop (poll, due timers, one batch), stop and close, and
 * the thread-safe entry point.  libevent does the polling underneath; the
 * ready queue and the timers are the loop's own because asyncio's
 * semantics (one batch per iteration, stop finishing the batch, lazy
 * cancelled-timer removal) and the dispatch speed both need them.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<sys/timerfd.h>) && !defined(ALOOP_NO_TIMERFD)
#include <sys/timerfd.h>
#define HAVE_TIMERFD 1
#endif

#include <event2/event.h>

#include <aloop/log.h>
#include <aloop/loop.h>
#include <aloop/task.h>

#include "loop-core-int.h"
#include "loop-stats-int.h"

/* asyncio refuses delays beyond a day (they are almost always a unit bug). */
#define MAX_DELAY	86400.0

/*
 * While callbacks keep the ready queue non-empty, or a timer is already due,
 * asyncio polls for I/O with a zero timeout before every batch.  A batch is
 * often a single callback, and one epoll_wait per callback would cost more
 * than the callbacks themselves, so the loop polls only when it may find
 * something: never when no descriptor or signal is registered (the
 * threadsafe queue is checked directly), and otherwise once POLL_EVERY
 * callbacks have run or POLL_INTERVAL seconds have passed since the last
 * poll, whichever comes first.  The clock is read at least every
 * CLOCK_EVERY iterations for that, so I/O waits at most POLL_EVERY
 * callbacks, or CLOCK_EVERY batches past POLL_INTERVAL, whichever comes
 * first; a batch of POLL_EVERY callbacks or more polls every iteration,
 * exactly as asyncio.
 */
#define POLL_EVERY	64
#define POLL_INTERVAL	0.0005
#define CLOCK_EVERY	8

/*
 * Before blocking, a loop that has just taken calls from other threads
 * waits this long for the next one, spinning.  Blocking and being woken
 * through the eventfd costs a write, an epoll wake-up and a context switch,
 * several microseconds; spinning for about as long wins all of that back
 * when producers are steady (an executor streaming completions) and at
 * worst doubles the cost of a wake-up when they are not, the usual bound
 * for spin-then-block.  Only a loop with thread-safe traffic in its last
 * iteration spins, so an idle or purely local loop never does.
 */
#define SPIN_SECS	5e-6

/* A poll blocking longer than this is logged in debug mode (asyncio: 1 s). */
#define SLOW_POLL	1.0

static _Thread_local struct aloop_loop *running_loop;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/*
 * In a child made by fork() the parent's loops are the parent's: none is
 * running or current there, as asyncio resets them after a fork, so that
 * the child can make and run a loop of its own.  (The parent's loops must
 * not be used or freed in the child: their descriptors are shared.)
 */
static void
after_fork_in_child(void)
{
	running_loop = NULL;
	aloop__policy_forked();
}

static void
register_fork_handler(void)
{
	(void)pthread_atfork(NULL, NULL, after_fork_in_child);
}

double
aloop__clock(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer on any platform
	 * we build on; a loop without a clock could only spin or hang. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		abort();
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------- pool and ring */

int
aloop__pool_grow(struct aloop_loop *loop)
{
	struct aloop__call *calls;
	uint32_t cap, i;

	if (loop->callcap >= (UINT32_C(1) << 30))
		return ALOOP_ENOMEM;
	cap = loop->callcap ? loop->callcap * 2 : 256;
	calls = realloc(loop->calls, (size_t)cap * sizeof(*calls));
	if (calls == NULL)
		return ALOOP_ENOMEM;
	memset(calls + loop->callcap, 0,
	    (size_t)(cap - loop->callcap) * sizeof(*calls));
	/* Thread the new entries onto the free list in index order. */
	for (i = loop->callcap; i < cap; i++) {
		calls[i].gen = 1;
		calls[i].next = i + 1 < cap ? i + 1 : loop->freelist;
	}
	loop->freelist = loop->callcap;
	loop->calls = calls;
	loop->callcap = cap;
	return 0;
}

struct aloop__call *
aloop__call_lookup(struct aloop_loop *loop, aloop_handle_t h, uint32_t *idxp)
{
	uint64_t idx;
	struct aloop__call *c;

	if (h == ALOOP_HANDLE_NONE || (h & ALOOP__TS_HANDLE_BIT))
		return NULL;
	idx = (h & UINT32_MAX) - 1;
	if (idx >= loop->callcap)
		return NULL;
	c = &loop->calls[idx];
	if (c->state == CALL_FREE || c->gen != (uint32_t)(h >> 32))
		return NULL;
	if (idxp != NULL)
		*idxp = (uint32_t)idx;
	return c;
}

int
aloop__ring_grow(struct aloop_loop *loop)
{
	uint32_t cap = loop->ringmask + 1, n = loop->tail - loop->head, i;
	uint32_t *ring;

	if (cap >= (UINT32_C(1) << 30))
		return ALOOP_ENOMEM;
	if ((ring = malloc((size_t)cap * 2 * sizeof(*ring))) == NULL)
		return ALOOP_ENOMEM;
	for (i = 0; i < n; i++)
		ring[i] = loop->ring[(loop->head + i) & loop->ringmask];
	free(loop->ring);
	loop->ring = ring;
	loop->ringmask = cap * 2 - 1;
	loop->head = 0;
	loop->tail = n;
	return 0;
}

/* ---------------------------------------------------------- scheduling */

int
aloop__loop_check(struct aloop_loop *loop, const char *what)
{
	if (loop->closed)
		return ALOOP_ESTATE;
	if (loop->debug && atomic_load(&loop->running) &&
	    !pthread_equal(loop->thread, pthread_self())) {
		struct aloop_context ctx = ALOOP_CONTEXT_INIT(
		    "Non-thread-safe operation invoked on an event loop "
		    "other than the current one");

		ctx.source = what;
		/* The handler runs in the calling thread: it must be
		 * thread-safe, as a log sink is. */
		aloop_call_exception_handler(loop, &ctx);
		return ALOOP_ESTATE;
	}
	return 0;
}

static inline int
schedule_check(struct aloop_loop *loop, const char *what)
{
	if (__builtin_expect(loop->closed | loop->debug, 0))
		return aloop__loop_check(loop, what);
	return 0;
}

int
aloop_call_soon(struct aloop_loop *loop, aloop_callback_fn cb, void *arg,
    aloop_handle_t *handle)
{
	struct aloop__call *c;
	uint32_t idx;
	int rc;

	if (cb == NULL)
		return ALOOP_EINVAL;
	if ((rc = schedule_check(loop, "aloop_call_soon")) != 0)
		return rc;
	/* Calls another thread queued before this one must run before it. */
	aloop__ts_drain_if_any(loop);
	if ((rc = aloop__call_alloc(loop, &idx)) != 0)
		return rc;
	if ((rc = aloop__ready_push(loop, idx)) != 0) {
		aloop__call_free(loop, idx);
		return rc;
	}
	c = &loop->calls[idx];
	c->cb = cb;
	c->arg = arg;
	if (__builtin_expect(loop->debug, 0))
		c->source = __builtin_return_address(0);
	if (handle != NULL)
		*handle = aloop__call_handle(loop, idx);
	return 0;
}

static int
call_at(struct aloop_loop *loop, double when, aloop_callback_fn cb,
    void *arg, aloop_handle_t *handle, const void *source)
{
	struct aloop__call *c;
	uint32_t idx;
	int rc;

	if (cb == NULL || isnan(when))
		return ALOOP_EINVAL;
	if ((rc = schedule_check(loop, "aloop_call_at")) != 0)
		return rc;
	if ((rc = aloop__call_alloc(loop, &idx)) != 0)
		return rc;
	c = &loop->calls[idx];
	c->cb = cb;
	c->arg = arg;
	c->when = when;
	if ((rc = aloop__timer_push(loop, idx)) != 0) {
		aloop__call_free(loop, idx);
		return rc;
	}
	if (__builtin_expect(loop->debug, 0))
		c->source = source;
	if (handle != NULL)
		*handle = aloop__call_handle(loop, idx);
	return 0;
}

int
aloop_call_later(struct aloop_loop *loop, double delay, aloop_callback_fn cb,
    void *arg, aloop_handle_t *handle)
{
	if (isnan(delay) || delay > MAX_DELAY)
		return ALOOP_EINVAL;
	return call_at(loop, aloop__clock() + delay, cb, arg, handle,
	    __builtin_return_address(0));
}

int
aloop_call_at(struct aloop_loop *loop, double when, aloop_callback_fn cb,
    void *arg, aloop_handle_t *handle)
{
	if (isnan(when) || when - aloop__clock() > MAX_DELAY)
		return ALOOP_EINVAL;
	return call_at(loop, when, cb, arg, handle,
	    __builtin_return_address(0));
}

double
aloop_time(const struct aloop_loop *loop)
{
	return aloop__clock();
}

void
aloop_handle_cancel(struct aloop_loop *loop, aloop_handle_t handle)
{
	struct aloop__call *c;
	int queued;

	if (handle & ALOOP__TS_HANDLE_BIT)
		c = aloop__ts_lookup(loop, handle, 1, &queued);
	else
		c = aloop__call_lookup(loop, handle, NULL);
	if (c == NULL || c->state == CALL_CANCELLED)
		return;
	if (c->state == CALL_TIMER)
		aloop__timer_cancelled(loop);
	/* Drop the references at once, as asyncio does; the entry itself is
	 * recycled when the ring or the heap reaches it. */
	c->state = CALL_CANCELLED;
	c->cb = NULL;
	c->arg = NULL;
}

int
aloop_handle_cancelled(struct aloop_loop *loop, aloop_handle_t handle)
{
	struct aloop__call *c;
	int queued;

	if (handle & ALOOP__TS_HANDLE_BIT) {
		c = aloop__ts_lookup(loop, handle, 0, &queued);
		if (queued)
			return queued == 2;
	} else
		c = aloop__call_lookup(loop, handle, NULL);
	return c != NULL && c->state == CALL_CANCELLED;
}

double
aloop_handle_when(struct aloop_loop *loop, aloop_handle_t handle)
{
	struct aloop__call *c = aloop__call_lookup(loop, handle, NULL);

	return c != NULL && c->state == CALL_TIMER ? c->when : -1.0;
}

/* ---------------------------------------------------------- iteration */

#ifndef HAVE_TIMERFD
static void
tv_from(struct timeval *tv, double secs)
{
	/* Round up to the next microsecond: waking early would only make
	 * the loop find nothing due and poll again (SEMANTICS #11). */
	double us = secs * 1e6;
	long long whole = (long long)us;

	if ((double)whole < us)
		whole++;
	if (whole < 1)
		whole = 1;
	tv->tv_sec = (time_t)(whole / 1000000);
	tv->tv_usec = (suseconds_t)(whole % 1000000);
}
#endif

static int
external_events(struct aloop_loop *loop)
{
	/* Active counts too: modules event_active() events never added. */
	return event_base_get_num_events(loop->base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) >
	    loop->internal_events;
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Whether a thread-safe call arrived within SPIN_SECS.  See SPIN_SECS. */
static int
spin_for_calls(struct aloop_loop *loop)
{
	double until;
	unsigned i;

	if (!loop->ts_active)
		return 0;
	loop->ts_active = 0;
	until = aloop__clock() + SPIN_SECS;
	for (i = 1;; i++) {
		if (atomic_load_explicit(&loop->ts_count,
		    memory_order_relaxed) != 0)
			return 1;
		cpu_relax();
		if ((i & 15) == 0 && aloop__clock() >= until)
			return 0;
	}
}

/*
 * EVLOOP_NONBLOCK alone would poll again for as long as events keep
 * firing, forever with a level-triggered descriptor; with EVLOOP_ONCE it
 * returns after one round of callbacks.
 */
#define POLL_NOW	(EVLOOP_ONCE | EVLOOP_NONBLOCK)

#ifdef HAVE_TIMERFD
/*
 * Arm the timer descriptor for @when, in absolute loop time, unless it
 * already is: re-arming costs a system call, and the deadline at the top
 * of the heap rarely changes between two blocking polls.
 */
static void
arm_timeout(struct aloop_loop *loop, double when, double timeout)
{
	struct itimerspec its;
	double frac;

	if (loop->armed_when == when)
		return;
	memset(&its, 0, sizeof(its));
	/* Loop time is positive (time since boot): truncation is floor. */
	its.it_value.tv_sec = (time_t)when;
	frac = (when - (double)its.it_value.tv_sec) * 1e9;
	/* Round up: the descriptor must not fire before the timer is due. */
	its.it_value.tv_nsec = (long)frac;
	if ((double)its.it_value.tv_nsec < frac)
		its.it_value.tv_nsec++;
	if (its.it_value.tv_nsec >= 1000000000L) {
		its.it_value.tv_sec++;
		its.it_value.tv_nsec -= 1000000000L;
	}
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;	/* zero would disarm it */
	if (timerfd_settime(loop->timer_fd, TFD_TIMER_ABSTIME, &its,
	    NULL) != 0) {
		aloop_log_errno(ALOOP_LOG_ERR, "aloop: timerfd_settime");
		loop->armed_when = 0;
		return;
	}
	loop->armed_when = when;
}
#else
static void
arm_timeout(struct aloop_loop *loop, double when, double timeout)
{
	struct timeval tv;

	tv_from(&tv, timeout);
	if (event_add(loop->timeout_ev, &tv) != 0)
		aloop_log(ALOOP_LOG_ERR, "aloop: cannot arm the poll timeout");
}
#endif

/*
 * Poll once: without blocking if @timeout is 0, forever if negative, else
 * until @when at the latest.
 */
static void
poll_once(struct aloop_loop *loop, double timeout, double when)
{
	double t0 = 0;
	int rc;

	if (timeout != 0 && spin_for_calls(loop)) {
		/* Work without a poll: the caller drains it next, and the
		 * poll counters give I/O its turn soon. */
		loop->now = aloop__clock();
		return;
	}
	loop->polls++;
	if (timeout == 0) {
		rc = event_base_loop(loop->base, POLL_NOW);
	} else {
		atomic_store(&loop->sleeping, 1);
		/* Pairs with the fence in call_soon_threadsafe. */
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load(&loop->ts_count) != 0) {
			atomic_store(&loop->sleeping, 0);
			rc = event_base_loop(loop->base, POLL_NOW);
			goto out;
		}
		if (timeout > 0)
			arm_timeout(loop, when, timeout);
		if (loop->debug)
			t0 = aloop__clock();
		rc = event_base_loop(loop->base, EVLOOP_ONCE);
		atomic_store(&loop->sleeping, 0);
#ifndef HAVE_TIMERFD
		if (timeout > 0)
			event_del(loop->timeout_ev);
#endif
		if (loop->debug) {
			double took = aloop__clock() - t0;

			aloop_log(took >= SLOW_POLL ? ALOOP_LOG_INFO :
			    ALOOP_LOG_DEBUG, "aloop: poll %.3f ms took "
			    "%.3f ms", timeout < 0 ? -1 : timeout * 1e3,
			    took * 1e3);
		}
	}
out:
	if (rc < 0)
		aloop_log(ALOOP_LOG_ERR, "aloop: event_base_loop failed");
	loop->last_poll = loop->now = aloop__clock();
	loop->ran_since_poll = 0;
}

/*
 * One iteration, in the phases libuv's uv_run has: compute how long the
 * poll may block, poll, collect what became due (thread-safe calls and
 * timers) into the ready queue, and run the batch that is ready now.  The
 * helpers are static and called once each, so the compiler folds them
 * back into run_once: the phases cost nothing on the hot path.
 */

/*
 * Phase 1: how long the poll may wait.  0 when callbacks are ready or the
 * loop is stopping, the time to the first timer when one is pending, -1
 * (no limit) otherwise.  *@fresh tells whether loop->now was just read.
 */
static inline double
phase_timeout(struct aloop_loop *loop, int *fresh)
{
	double timeout;

	*fresh = 0;
	if (loop->tail != loop->head || loop->stopping)
		return 0;
	if (loop->nheap == 0)
		return -1;
	loop->now = aloop__clock();
	*fresh = 1;
	timeout = loop->heap[0].when - loop->now;
	return timeout < 0 ? 0 : timeout;
}

/*
 * Phase 2: poll for I/O.  With a timeout, block (bounded by the first
 * timer); with callbacks ready, poll without blocking only every
 * POLL_EVERY callbacks or POLL_INTERVAL seconds (see there), and not at
 * all when no event but the loop's own is registered.
 */
static inline void
phase_poll(struct aloop_loop *loop, double timeout, int fresh)
{
	if (timeout != 0) {
		poll_once(loop, timeout, timeout > 0 ? loop->heap[0].when : 0);
		return;
	}
	if (!fresh && (loop->nheap != 0 ||
	    (loop->iterations % CLOCK_EVERY) == 0))
		loop->now = aloop__clock();
	if (loop->stopping)
		poll_once(loop, 0, 0);
	else if (loop->ran_since_poll >= POLL_EVERY ||
	    loop->now - loop->last_poll >= POLL_INTERVAL) {
		if (external_events(loop))
			poll_once(loop, 0, 0);
		else {
			/* Nothing to poll counts as a poll that found
			 * nothing: ask again later. */
			loop->last_poll = loop->now;
			loop->ran_since_poll = 0;
		}
	}
}

/* Phase 3: thread-safe calls and due timers join the ready queue. */
static inline void
phase_collect(struct aloop_loop *loop)
{
	if (loop->woken) {
		loop->woken = 0;
		aloop__ts_drain(loop);
	} else
		aloop__ts_drain_if_any(loop);
	/* loop->now is fresh here: the poll or the ready branch read it. */
	if (loop->nheap != 0)
		aloop__timer_collect(loop, loop->now);
}

/*
 * Phase 4: run what is ready now, and only that (SEMANTICS #3): calls
 * scheduled by the batch wait for the next iteration.
 */
static inline void
phase_run_batch(struct aloop_loop *loop)
{
	uint32_t ntodo, idx;

	ntodo = loop->tail - loop->head;
	loop->ran_since_poll += ntodo;
	while (ntodo-- > 0) {
		struct aloop__call *c;
		aloop_callback_fn cb;
		const void *source;
		void *arg;

		idx = loop->ring[loop->head++ & loop->ringmask];
		c = &loop->calls[idx];
		cb = c->cb;
		arg = c->arg;
		source = c->source;
		/* Recycle before the call: the callback may schedule into
		 * this very slot, and cancelling its own handle from inside
		 * is then the harmless no-op asyncio's is. */
		aloop__call_free(loop, idx);
		if (cb == NULL)
			continue;
		if (__builtin_expect(loop->debug, 0)) {
			double t0 = aloop__clock(), took;

			cb(arg);
			took = aloop__clock() - t0;
			if (took >= loop->slow_callback_duration)
				aloop__debug_slow(loop, cb, source, took);
		} else
			cb(arg);
	}
}

static void
run_once(struct aloop_loop *loop)
{
	double timeout;
	int fresh;

	loop->iterations++;
	aloop__timer_housekeep(loop);
	aloop__ts_drain_if_any(loop);
	timeout = phase_timeout(loop, &fresh);
	phase_poll(loop, timeout, fresh);
	phase_collect(loop);
	phase_run_batch(loop);
}

int
aloop_run_forever(struct aloop_loop *loop)
{
	int expected = 0;

	if (loop->closed || running_loop != NULL ||
	    aloop_current_task() != NULL)
		return ALOOP_ESTATE;
	if (!atomic_compare_exchange_strong(&loop->running, &expected, 1))
		return ALOOP_ESTATE;
	loop->thread = pthread_self();
	running_loop = loop;
	/* Every run polls in its first iteration, so that a loop run in
	 * short bursts (call_soon(stop); run_forever()) still sees I/O. */
	loop->now = aloop__clock();
	loop->last_poll = -INFINITY;
	for (;;) {
		run_once(loop);
		if (loop->stopping)
			break;
	}
	loop->stopping = 0;
	running_loop = NULL;
	atomic_store(&loop->running, 0);
	return 0;
}

int
aloop_is_running(const struct aloop_loop *loop)
{
	return atomic_load(&((struct aloop_loop *)loop)->running);
}

struct aloop_loop *
aloop_get_running_loop(void)
{
	return running_loop;
}

void
aloop_stop(struct aloop_loop *loop)
{
	loop->stopping = 1;
}

/* ---------------------------------------------------------- lifecycle */

static void
timer_close(struct aloop_loop *loop)
{
	if (loop->timer_fd >= 0)
		close(loop->timer_fd);
	loop->timer_fd = -1;
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
#ifdef HAVE_TIMERFD
	struct aloop_loop *loop = arg;
	uint64_t expirations;

	/* Expired: disarmed until armed again. */
	if (read(fd, &expirations, sizeof(expirations)) < 0 &&
	    errno != EAGAIN)
		aloop_log_errno(ALOOP_LOG_ERR, "aloop: reading the timerfd");
	loop->armed_when = 0;
#endif
	/* Firing ends the EVLOOP_ONCE poll; the loop does the rest. */
}

static struct event_base *
base_new(void)
{
	struct event_config *cfg;
	struct event_base *base;

	if ((cfg = event_config_new()) == NULL)
		return NULL;
	/*
	 * The base is never shared between threads, so it needs no lock.
	 * EVENT_BASE_FLAG_PRECISE_TIMER is left off: on Linux it costs a
	 * timerfd_settime on every poll, blocking or not.  The loop's own
	 * timers wait on a timerfd of ours instead, armed at the exact
	 * deadline and only when it changes; libevent's coarse clock (4 ms
	 * ticks) would make them late by milliseconds.  Elsewhere a libevent
	 * timer on the precise clock ends the wait (without timerfd the flag
	 * costs no system call).  Either way a wait that ends early only
	 * costs one more iteration: nothing runs before the loop's own clock
	 * says it is due.
	 *
	 * EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST is left off as well: a
	 * connection costs two epoll_ctl either way (its add, and the
	 * delete that event_free makes before the close), the changelist
	 * only defers the delete until after the close, where it fails
	 * with EBADF, and it is unsafe with descriptors that dup() shares.
	 */
#ifdef HAVE_TIMERFD
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
#else
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK |
	    EVENT_BASE_FLAG_PRECISE_TIMER);
#endif
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int
aloop_loop_new(struct aloop_loop **loopp)
{
	struct aloop_loop *loop;
	const char *env;
	int rc = ALOOP_ENOMEM;

	*loopp = NULL;
	(void)pthread_once(&fork_once, register_fork_handler);
	if ((loop = calloc(1, sizeof(*loop))) == NULL)
		return ALOOP_ENOMEM;
	loop->magic = ALOOP__LOOP_MAGIC;
	loop->freelist = ALOOP__NO_INDEX;
	loop->wake_rfd = loop->wake_wfd = loop->timer_fd = -1;
	loop->slow_callback_duration = 0.1;
	env = getenv("ALOOP_DEBUG");
	loop->debug = env != NULL && *env != '\0';
	atomic_init(&loop->running, 0);
	atomic_init(&loop->sleeping, 0);
	atomic_init(&loop->notified, 0);
	atomic_init(&loop->ts_count, 0);
	if ((rc = -pthread_mutex_init(&loop->ts_lock, NULL)) != 0) {
		free(loop);
		return rc;
	}
	rc = ALOOP_ENOMEM;
	if ((loop->ring = malloc(256 * sizeof(*loop->ring))) == NULL)
		goto fail;
	loop->ringmask = 255;
	if ((loop->base = base_new()) == NULL)
		goto fail;
	if ((rc = aloop__wake_open(loop)) != 0)
		goto fail;
	rc = ALOOP_ENOMEM;
#ifdef HAVE_TIMERFD
	loop->timer_fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC);
	if (loop->timer_fd < 0) {
		rc = -errno;
		goto fail;
	}
	loop->timeout_ev = event_new(loop->base, loop->timer_fd,
	    EV_READ | EV_PERSIST, timeout_cb, loop);
#else
	loop->timeout_ev = evtimer_new(loop->base, timeout_cb, loop);
#endif
	if (loop->timeout_ev == NULL)
		goto fail;
	loop->internal_events = 1;	/* the wake-up event */
#ifdef HAVE_TIMERFD
	if (event_add(loop->timeout_ev, NULL) != 0)
		goto fail;
	loop->internal_events = 2;
#endif
	*loopp = loop;
	return 0;
fail:
	if (loop->timeout_ev != NULL)
		event_free(loop->timeout_ev);
	timer_close(loop);
	aloop__wake_close(loop);
	if (loop->base != NULL)
		event_base_free(loop->base);
	free(loop->ring);
	pthread_mutex_destroy(&loop->ts_lock);
	free(loop);
	return rc;
}

int
aloop_close(struct aloop_loop *loop)
{
	struct aloop__resource *res;
	struct aloop_executor *ex;

	/*
	 * From inside a task the loop is either running or closing that
	 * task's cleanup right now: closing it again would pull the ground
	 * from under the task.
	 */
	if (atomic_load(&loop->running) || aloop_current_task() != NULL)
		return ALOOP_ESTATE;
	if (loop->closed)
		return 0;
	/* Tasks first: their cleanup may still use everything below. */
	if (loop->tasks != NULL)
		loop->tasks_close(loop, loop->tasks);	/* clears loop->tasks */
	pthread_mutex_lock(&loop->ts_lock);
	loop->closed = 1;
	loop->ntsq = 0;
	atomic_store(&loop->ts_count, 0);
	pthread_mutex_unlock(&loop->ts_lock);

	/* Modules first: they may hold handles and events of ours. */
	while ((res = loop->resources) != NULL) {
		aloop__loop_untrack(loop, res);
		res->on_loop_close(res);
	}
	aloop__watch_close(loop);
	aloop__signal_close(loop);

	/* Pending calls are discarded, as asyncio discards _ready. */
	while (loop->head != loop->tail)
		aloop__call_free(loop,
		    loop->ring[loop->head++ & loop->ringmask]);
	aloop__timer_clear(loop);

	if ((ex = loop->executor) != NULL) {
		loop->executor = NULL;
		loop->executor_shutdown(ex);
	}
	event_del(loop->wake_ev);
	event_del(loop->timeout_ev);
	loop->internal_events = 0;
	return 0;
}

int
aloop_is_closed(const struct aloop_loop *loop)
{
	return loop->closed;
}

int
aloop_loop_free(struct aloop_loop *loop)
{
	int rc;

	if (loop == NULL)
		return 0;
	if ((rc = aloop_close(loop)) != 0)
		return rc;
	aloop__policy_forget(loop);
	aloop__wake_close(loop);
	event_free(loop->timeout_ev);
	timer_close(loop);
	/* Modules may have left events on the base; libevent frees the base
	 * regardless and warns about nothing we could still fix. */
	event_base_free(loop->base);
	pthread_mutex_destroy(&loop->ts_lock);
	free(loop->readers);
	free(loop->writers);
	free(loop->tsq);
	free(loop->tsq_spare);
	free(loop->heap);
	free(loop->ring);
	free(loop->calls);
	loop->magic = 0;
	free(loop);
	return 0;
}

/* ------------------------------------------------ the modules' interface */

struct event_base *
aloop__loop_base(struct aloop_loop *loop)
{
	return loop->base;
}

void **
aloop__loop_pipes_slot(struct aloop_loop *loop)
{
	return &loop->pipes;
}

void *
aloop__loop_tasks(struct aloop_loop *loop)
{
	return loop->tasks;
}

void
aloop__loop_set_tasks(struct aloop_loop *loop, void *tasks,
    void (*close)(struct aloop_loop *, void *))
{
	loop->tasks = tasks;
	loop->tasks_close = close;
}

void
aloop__loop_track(struct aloop_loop *loop, struct aloop__resource *res)
{
	res->prev = NULL;
	res->next = loop->resources;
	if (loop->resources != NULL)
		loop->resources->prev = res;
	loop->resources = res;
}

void
aloop__loop_untrack(struct aloop_loop *loop, struct aloop__resource *res)
{
	if (res->prev != NULL)
		res->prev->next = res->next;
	else if (loop->resources == res)
		loop->resources = res->next;
	else
		return;		/* not tracked: untracking twice is harmless */
	if (res->next != NULL)
		res->next->prev = res->prev;
	res->prev = res->next = NULL;
}

void
aloop__loop_set_executor(struct aloop_loop *loop, struct aloop_executor *ex,
    void (*shutdown)(struct aloop_executor *))
{
	struct aloop_executor *old = loop->executor;
	void (*old_shutdown)(struct aloop_executor *) = loop->executor_shutdown;

	loop->executor = ex;
	loop->executor_shutdown = shutdown;
	if (old != NULL && old != ex)
		old_shutdown(old);
}

struct aloop_executor *
aloop__loop_executor(struct aloop_loop *loop)
{
	return loop->executor;
}

struct aloop_executor *
aloop__loop_take_executor(struct aloop_loop *loop)
{
	struct aloop_executor *ex = loop->executor;

	loop->executor = NULL;
	loop->executor_shutdown = NULL;
	loop->executor_refused = 1;
	return ex;
}

int
aloop__loop_executor_refused(const struct aloop_loop *loop)
{
	return loop->executor_refused;
}

/* ------------------------------------------------------------ counters */

void
aloop__loop_stats(const struct aloop_loop *loop, struct aloop__loop_stats *st)
{
	st->iterations = loop->iterations;
	st->polls = loop->polls;
	st->timers = loop->nheap;
	st->timers_cancelled = loop->ncancelled;
	st->calls = loop->ncalls;
	st->ready = loop->tail - loop->head;
}
