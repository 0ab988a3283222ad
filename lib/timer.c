/*
 * The loop's timers: a binary min-heap of (deadline, call index).  As in
 * asyncio, a cancelled timer stays in the heap until it reaches the top or
 * until cancelled entries are the majority, when the heap is compacted.
 */
#include "config.h"

#include <stdlib.h>

#include "loop-core-int.h"

/* asyncio's _MIN_SCHEDULED_TIMER_HANDLES and ..._CANCELLED_..._FRACTION. */
#define COMPACT_MIN		100
#define COMPACT_FRACTION	2	/* compact when cancelled > 1/2 */

static void
sift_up(struct aloop__timer *h, uint32_t i)
{
	struct aloop__timer t = h[i];

	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (h[p].when <= t.when)
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = t;
}

static void
sift_down(struct aloop__timer *h, uint32_t n, uint32_t i)
{
	struct aloop__timer t = h[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1].when < h[c].when)
			c++;
		if (t.when <= h[c].when)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = t;
}

int
aloop__timer_push(struct aloop_loop *loop, uint32_t idx)
{
	if (loop->nheap == loop->heapcap) {
		uint32_t cap = loop->heapcap ? loop->heapcap * 2 : 64;
		struct aloop__timer *h;

		if (cap < loop->heapcap ||
		    (h = realloc(loop->heap, (size_t)cap * sizeof(*h))) == NULL)
			return ALOOP_ENOMEM;
		loop->heap = h;
		loop->heapcap = cap;
	}
	loop->calls[idx].state = CALL_TIMER;
	loop->heap[loop->nheap].when = loop->calls[idx].when;
	loop->heap[loop->nheap].idx = idx;
	sift_up(loop->heap, loop->nheap++);
	return 0;
}

static uint32_t
pop(struct aloop_loop *loop)
{
	uint32_t idx = loop->heap[0].idx;

	if (--loop->nheap > 0) {
		loop->heap[0] = loop->heap[loop->nheap];
		sift_down(loop->heap, loop->nheap, 0);
	}
	return idx;
}

void
aloop__timer_cancelled(struct aloop_loop *loop)
{
	loop->ncancelled++;
}

/*
 * Drop the cancelled entries from the heap and rebuild it (Floyd's
 * construction, linear time).
 */
static void
compact(struct aloop_loop *loop)
{
	uint32_t i, n = 0;

	for (i = 0; i < loop->nheap; i++) {
		uint32_t idx = loop->heap[i].idx;

		if (loop->calls[idx].state == CALL_CANCELLED)
			aloop__call_free(loop, idx);
		else
			loop->heap[n++] = loop->heap[i];
	}
	loop->nheap = n;
	loop->ncancelled = 0;
	for (i = n / 2; i-- > 0;)
		sift_down(loop->heap, n, i);
}

/*
 * Before the poll timeout is computed: a cancelled timer at the top must
 * not shorten it (SEMANTICS #12), and cancelled timers must not pile up.
 */
void
aloop__timer_housekeep(struct aloop_loop *loop)
{
	if (loop->ncancelled == 0)
		return;
	if (loop->nheap > COMPACT_MIN &&
	    loop->ncancelled * COMPACT_FRACTION > loop->nheap) {
		compact(loop);
		return;
	}
	while (loop->nheap > 0 &&
	    loop->calls[loop->heap[0].idx].state == CALL_CANCELLED) {
		aloop__call_free(loop, pop(loop));
		loop->ncancelled--;
	}
}

/* Move every timer due at @now to the ready ring, in deadline order. */
int
aloop__timer_collect(struct aloop_loop *loop, double now)
{
	int rc;

	while (loop->nheap > 0 && loop->heap[0].when <= now) {
		uint32_t idx = loop->heap[0].idx;

		if (loop->calls[idx].state == CALL_CANCELLED) {
			pop(loop);
			aloop__call_free(loop, idx);
			loop->ncancelled--;
			continue;
		}
		/* Push before popping, so that a failure leaves the timer
		 * in the heap to be retried next iteration. */
		if ((rc = aloop__ready_push(loop, idx)) != 0)
			return rc;
		pop(loop);
	}
	return 0;
}

void
aloop__timer_clear(struct aloop_loop *loop)
{
	while (loop->nheap > 0)
		aloop__call_free(loop, loop->heap[--loop->nheap].idx);
	loop->ncancelled = 0;
}
