/*
 * call_soon_threadsafe: other threads queue calls under a mutex, and wake
 * the loop through an eventfd (a pipe where there is none) only when it
 * is blocked in its poll, so a busy loop costs producers no system call.
 * The loop moves the queue into its ready ring once per iteration.
 *
 * An eventfd of our own rather than libevent's notification
 * (evthread_use_pthreads and event_active from the other thread): that
 * would put a lock on every libevent call the loop thread makes (the base
 * is made with EVENT_BASE_FLAG_NOLOCK instead), and libevent notifies
 * whenever its loop is running, busy or not, where this writes only to a
 * loop that is blocked waiting.  bench/bench_loop compares the two.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#if __has_include(<sys/eventfd.h>)
#include <sys/eventfd.h>
#define HAVE_EVENTFD 1
#endif

#include <event2/event.h>

#include <aloop/log.h>
#include <aloop/loop.h>

#include "loop-core-int.h"

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct aloop_loop *loop = arg;
	char buf[64];

	/* One read empties an eventfd.  A pipe may keep a few bytes, which
	 * costs one spurious wake-up, not a second read every time. */
	if (read(fd, buf, sizeof(buf)) < 0 && errno != EAGAIN &&
	    errno != EINTR)
		aloop_log_errno(ALOOP_LOG_ERR, "aloop: reading the wake-up fd");
	/*
	 * Clear the flag only after reading: cleared first, a producer could
	 * set it and write in between, the read would swallow that write and
	 * the flag would stay set with nothing to clear it, so no producer
	 * would ever write again.  A producer that still sees the flag set
	 * has queued its call before our drain, which takes the lock (so it
	 * sees the call) because of woken.
	 */
	atomic_store(&loop->notified, 0);
	loop->woken = 1;
}

/*
 * Move the calls other threads queued into the ready ring, in order.  The
 * queue is swapped with a spare under the lock, so producers wait only for
 * a pointer swap.
 */
void
aloop__ts_drain(struct aloop_loop *loop)
{
	struct aloop__tscall *q;
	uint32_t n, i, idx, cap;

	pthread_mutex_lock(&loop->ts_lock);
	q = loop->tsq;
	n = loop->ntsq;
	cap = loop->tsqcap;
	loop->tsq = loop->tsq_spare;
	loop->tsqcap = loop->tsq_sparecap;
	loop->ntsq = 0;
	atomic_store_explicit(&loop->ts_count, 0, memory_order_relaxed);
	pthread_mutex_unlock(&loop->ts_lock);

	for (i = 0; i < n; i++) {
		struct aloop__call *c;

		if (q[i].cb == NULL)		/* cancelled while queued */
			continue;
		if (aloop__call_alloc(loop, &idx) != 0 ||
		    aloop__ready_push(loop, idx) != 0) {
			/* The producer was told it succeeded; losing the call
			 * silently would be worse than saying so. */
			aloop_log(ALOOP_LOG_ERR, "aloop: out of memory: "
			    "dropped a call_soon_threadsafe callback");
			continue;
		}
		c = &loop->calls[idx];
		c->cb = q[i].cb;
		c->arg = q[i].arg;
		c->ts = q[i].handle;
		c->source = q[i].source;
	}
	loop->tsq_spare = q;
	loop->tsq_sparecap = cap;
	if (n != 0)
		loop->ts_active = 1;
}

static void
wake(struct aloop_loop *loop)
{
	uint64_t one = 1;

	if (!atomic_load(&loop->sleeping) ||
	    atomic_exchange(&loop->notified, 1) != 0)
		return;
	/* EAGAIN means the counter is full, which already wakes the poll. */
	if (write(loop->wake_wfd, &one,
	    loop->wake_wfd == loop->wake_rfd ? sizeof(one) : 1) < 0 &&
	    errno != EAGAIN)
		aloop_log_errno(ALOOP_LOG_ERR, "aloop: waking the loop");
}

int
aloop_call_soon_threadsafe(struct aloop_loop *loop, aloop_callback_fn cb,
    void *arg, aloop_handle_t *handle)
{
	struct aloop__tscall *t;
	uint64_t h;

	if (cb == NULL)
		return ALOOP_EINVAL;
	/* From the loop's own thread this is call_soon, minus the lock. */
	if (aloop_get_running_loop() == loop)
		return aloop_call_soon(loop, cb, arg, handle);

	pthread_mutex_lock(&loop->ts_lock);
	if (loop->closed) {
		pthread_mutex_unlock(&loop->ts_lock);
		return ALOOP_ESTATE;
	}
	if (loop->ntsq == loop->tsqcap) {
		uint32_t cap = loop->tsqcap ? loop->tsqcap * 2 : 64;

		t = cap < loop->tsqcap ? NULL :
		    realloc(loop->tsq, (size_t)cap * sizeof(*t));
		if (t == NULL) {
			pthread_mutex_unlock(&loop->ts_lock);
			return ALOOP_ENOMEM;
		}
		loop->tsq = t;
		loop->tsqcap = cap;
	}
	h = ALOOP__TS_HANDLE_BIT | ++loop->ts_seq;
	t = &loop->tsq[loop->ntsq++];
	t->cb = cb;
	t->arg = arg;
	t->handle = h;
	t->source = loop->debug ? __builtin_return_address(0) : NULL;
	/* Before the loop can see the call, which may use the handle. */
	if (handle != NULL)
		*handle = h;
	atomic_store_explicit(&loop->ts_count, loop->ntsq,
	    memory_order_release);
	pthread_mutex_unlock(&loop->ts_lock);
	/* Pairs with the loop's store to sleeping then load of ts_count:
	 * either it sees our call or we see it sleeping. */
	atomic_thread_fence(memory_order_seq_cst);
	wake(loop);
	return 0;
}

/*
 * A threadsafe handle is either still in the queue or was moved to the
 * ready ring, where it keeps its handle in ->ts.  Looking it up scans
 * both; both are short-lived (drained every iteration), and cancelling a
 * threadsafe call is rare, so the scan costs nothing on the fast path.
 */
struct aloop__call *
aloop__ts_lookup(struct aloop_loop *loop, aloop_handle_t h, int cancel, int *queued)
{
	uint32_t i;

	*queued = 0;
	pthread_mutex_lock(&loop->ts_lock);
	for (i = 0; i < loop->ntsq; i++) {
		if (loop->tsq[i].handle != h)
			continue;
		*queued = loop->tsq[i].cb == NULL ? 2 : 1;
		if (cancel)
			loop->tsq[i].cb = NULL;
		break;
	}
	pthread_mutex_unlock(&loop->ts_lock);
	if (*queued)
		return NULL;
	for (i = loop->head; i != loop->tail; i++) {
		struct aloop__call *c;

		c = &loop->calls[loop->ring[i & loop->ringmask]];
		if (c->ts == h)
			return c;
	}
	return NULL;
}

int
aloop__wake_open(struct aloop_loop *loop)
{
#ifdef HAVE_EVENTFD
	/* An eventfd is one descriptor and one syscall per wake-up; a pipe
	 * would be two descriptors. */
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	loop->wake_rfd = loop->wake_wfd = fd;
#else
	int fds[2];

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
		return -errno;
	loop->wake_rfd = fds[0];
	loop->wake_wfd = fds[1];
#endif
	loop->wake_ev = event_new(loop->base, loop->wake_rfd,
	    EV_READ | EV_PERSIST, wake_cb, loop);
	if (loop->wake_ev == NULL)
		return ALOOP_ENOMEM;
	if (event_add(loop->wake_ev, NULL) != 0)
		return ALOOP_ENOMEM;
	return 0;
}

void
aloop__wake_close(struct aloop_loop *loop)
{
	if (loop->wake_ev != NULL)
		event_free(loop->wake_ev);
	loop->wake_ev = NULL;
	if (loop->wake_rfd >= 0)
		close(loop->wake_rfd);
	if (loop->wake_wfd >= 0 && loop->wake_wfd != loop->wake_rfd)
		close(loop->wake_wfd);
	loop->wake_rfd = loop->wake_wfd = -1;
}
