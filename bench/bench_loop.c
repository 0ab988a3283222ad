/*
 * The loop core against raw libevent, in one run: call_soon dispatch,
 * call_later schedule+fire with a million timers pending, and
 * call_soon_threadsafe wake-ups from a producer thread, with the loop
 * awake and asleep.  Prints each rate, the same work done with libevent
 * directly, and the ratio.
 *
 * Usage: bench_loop [-p CPU] [scale]
 *   scale multiplies the iteration counts (0.1 for a short pass);
 *   -p CPU pins the call_soon_threadsafe producer thread to CPU, so that
 *   with the process itself pinned elsewhere (taskset -c 0) the loop and
 *   its producer each own a core, as a server and its client do.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <aloop/loop.h>

#define PENDING_TIMERS	1000000
/*
 * How long the producer waits before each call of the "from sleep" row:
 * well past the loop's brief spin for more thread-safe calls, so that the
 * loop is blocked in its poll when the call arrives.
 */
#define SLEEP_GAP	100e-6

/* The CPU of the producer threads, or -1 to leave them where they are. */
static int producer_cpu = -1;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
die(const char *what)
{
	fprintf(stderr, "bench_loop: %s failed\n", what);
	exit(1);
}

/*
 * Called by each producer thread first.  Both producers, aloop's and
 * libevent's, go through here, so the two figures are taken alike.
 */
static void
pin_producer(void)
{
	cpu_set_t set;

	if (producer_cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(producer_cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		die("pthread_setaffinity_np");
}

/* ------------------------------------------------------------ call_soon */

struct chain {
	struct aloop_loop	*loop;
	struct event		*ev;
	long			 left;
};

static void
aloop_chain_cb(void *arg)
{
	struct chain *c = arg;

	if (--c->left > 0) {
		if (aloop_call_soon(c->loop, aloop_chain_cb, c, NULL) != 0)
			die("aloop_call_soon");
	} else
		aloop_stop(c->loop);
}

static double
bench_aloop_call_soon(long n)
{
	struct chain c;
	double t0, t;

	if (aloop_loop_new(&c.loop) != 0)
		die("aloop_loop_new");
	c.left = n;
	t0 = now();
	aloop_call_soon(c.loop, aloop_chain_cb, &c, NULL);
	aloop_run_forever(c.loop);
	t = now() - t0;
	aloop_loop_free(c.loop);
	return (double)n / t;
}

static void
raw_chain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chain *c = arg;

	if (--c->left > 0)
		event_active(c->ev, EV_READ, 0);
}

static double
bench_raw_call_soon(long n)
{
	struct event_base *base = event_base_new();
	struct chain c;
	double t0, t;

	if (base == NULL || (c.ev = event_new(base, -1, 0, raw_chain_cb,
	    &c)) == NULL)
		die("event_new");
	c.left = n;
	t0 = now();
	event_active(c.ev, EV_READ, 0);
	event_base_dispatch(base);
	t = now() - t0;
	event_free(c.ev);
	event_base_free(base);
	return (double)n / t;
}

/* ----------------------------------------------------------- call_later */

static void
noop_cb(void *arg)
{
}

static void
aloop_timer_cb(void *arg)
{
	struct chain *c = arg;

	if (--c->left > 0) {
		if (aloop_call_later(c->loop, 0, aloop_timer_cb, c, NULL) != 0)
			die("aloop_call_later");
	} else
		aloop_stop(c->loop);
}

static double
bench_aloop_call_later(long n)
{
	struct chain c;
	double t0, t;
	long i;

	if (aloop_loop_new(&c.loop) != 0)
		die("aloop_loop_new");
	/* The pending million, spread over an hour from now. */
	srand(1);
	for (i = 0; i < PENDING_TIMERS; i++)
		if (aloop_call_later(c.loop, 60 + rand() % 3600, noop_cb, NULL,
		    NULL) != 0)
			die("aloop_call_later");
	c.left = n;
	t0 = now();
	aloop_call_later(c.loop, 0, aloop_timer_cb, &c, NULL);
	aloop_run_forever(c.loop);
	t = now() - t0;
	aloop_loop_free(c.loop);
	return (double)n / t;
}

static void
raw_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval zero = { 0, 0 };
	struct chain *c = arg;

	if (--c->left > 0)
		evtimer_add(c->ev, &zero);
}

static double
bench_raw_call_later(long n)
{
	static const struct timeval zero = { 0, 0 };
	struct event_base *base = event_base_new();
	struct event **pending;
	struct chain c;
	double t0, t;
	long i;

	if (base == NULL || (pending = calloc(PENDING_TIMERS,
	    sizeof(*pending))) == NULL)
		die("setup");
	srand(1);
	for (i = 0; i < PENDING_TIMERS; i++) {
		struct timeval tv = { 60 + rand() % 3600, 0 };

		if ((pending[i] = evtimer_new(base, raw_timer_cb, NULL)) ==
		    NULL || evtimer_add(pending[i], &tv) != 0)
			die("evtimer_add");
	}
	if ((c.ev = evtimer_new(base, raw_timer_cb, &c)) == NULL)
		die("evtimer_new");
	c.left = n;
	t0 = now();
	evtimer_add(c.ev, &zero);
	/* The pending timers keep the base busy: loop until the chain ends. */
	while (c.left > 0)
		event_base_loop(base, EVLOOP_ONCE);
	t = now() - t0;
	event_free(c.ev);
	for (i = 0; i < PENDING_TIMERS; i++)
		event_free(pending[i]);
	free(pending);
	event_base_free(base);
	return (double)n / t;
}

/* ------------------------------------------------- call_soon_threadsafe */

/*
 * With gap 0 the producer posts the next call as soon as the last one ran,
 * which measures the hand-over while the loop is still awake.  With a gap
 * it first waits that long, so that the loop has gone to sleep in its poll
 * and each call has to wake it; the figure is then one over the mean
 * latency from the post to the callback.
 */
struct pingpong {
	struct aloop_loop	*loop;
	struct event_base	*base;
	struct event		*ev;
	long			 n;
	double			 gap;
	_Atomic double		 posted;	/* when the last call was posted */
	double			 lat;		/* sum of latencies, loop thread */
	atomic_long		 done;
};

/* In the producer, before each post. */
static void
producer_gap(struct pingpong *p)
{
	double t;

	if (p->gap <= 0)
		return;
	/* Spin rather than sleep: the producer owns its CPU, and a sleep
	 * would add the producer's own wake-up to the figure. */
	t = now();
	while (now() - t < p->gap)
		continue;
	atomic_store(&p->posted, now());
}

/* In the loop, in each callback. */
static void
pong_latency(struct pingpong *p)
{
	if (p->gap > 0)
		p->lat += now() - atomic_load(&p->posted);
}

static double
pingpong_rate(const struct pingpong *p, double elapsed)
{
	if (p->gap > 0)
		return (double)p->n / p->lat;
	return (double)p->n / elapsed;
}

static void
aloop_pong(void *arg)
{
	struct pingpong *p = arg;

	pong_latency(p);
	if (atomic_fetch_add(&p->done, 1) + 1 == p->n)
		aloop_stop(p->loop);
}

static void *
aloop_pinger(void *arg)
{
	struct pingpong *p = arg;
	long i;

	pin_producer();
	for (i = 0; i < p->n; i++) {
		/* One call at a time: each one has to wake the loop. */
		producer_gap(p);
		if (aloop_call_soon_threadsafe(p->loop, aloop_pong, p,
		    NULL) != 0)
			die("aloop_call_soon_threadsafe");
		while (atomic_load(&p->done) <= i)
			continue;
	}
	return NULL;
}

static double
bench_aloop_threadsafe(long n, double gap)
{
	struct pingpong p = { .n = n, .gap = gap };
	pthread_t th;
	double t0, t;

	if (aloop_loop_new(&p.loop) != 0)
		die("aloop_loop_new");
	t0 = now();
	if (pthread_create(&th, NULL, aloop_pinger, &p) != 0)
		die("pthread_create");
	aloop_run_forever(p.loop);
	pthread_join(th, NULL);
	t = now() - t0;
	aloop_loop_free(p.loop);
	return pingpong_rate(&p, t);
}

static void
raw_pong(evutil_socket_t fd, short what, void *arg)
{
	struct pingpong *p = arg;

	pong_latency(p);
	if (atomic_fetch_add(&p->done, 1) + 1 == p->n)
		event_base_loopbreak(p->base);
}

static void *
raw_pinger(void *arg)
{
	struct pingpong *p = arg;
	long i;

	pin_producer();
	for (i = 0; i < p->n; i++) {
		producer_gap(p);
		event_active(p->ev, EV_READ, 0);
		while (atomic_load(&p->done) <= i)
			continue;
	}
	return NULL;
}

static double
bench_raw_threadsafe(long n, double gap)
{
	struct pingpong p = { .n = n, .gap = gap };
	struct event *keep;
	pthread_t th;
	double t0, t;

	if ((p.base = event_base_new()) == NULL ||
	    (p.ev = event_new(p.base, -1, 0, raw_pong, &p)) == NULL)
		die("event_base_new");
	/* Something to wait for, as the aloop loop has its wake-up fd. */
	keep = event_new(p.base, -1, EV_PERSIST, raw_pong, &p);
	if (keep == NULL || event_add(keep, &(struct timeval){ 3600, 0 }) != 0)
		die("event_add");
	t0 = now();
	if (pthread_create(&th, NULL, raw_pinger, &p) != 0)
		die("pthread_create");
	event_base_dispatch(p.base);
	pthread_join(th, NULL);
	t = now() - t0;
	event_free(keep);
	event_free(p.ev);
	event_base_free(p.base);
	return pingpong_rate(&p, t);
}

/* ----------------------------------------------------------------- main */

static void
report(const char *what, double a, double raw)
{
	printf("%-34s aloop %12.0f/s   libevent %12.0f/s   ratio %.2f\n",
	    what, a, raw, a / raw);
}

int
main(int argc, char **argv)
{
	long nsoon, ntimer, nts, nsleep;
	double a, r, as, rs, scale = 1;
	char *end;
	int c;

	while ((c = getopt(argc, argv, "p:")) != -1) {
		switch (c) {
		case 'p':
			producer_cpu = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || producer_cpu < 0 ||
			    producer_cpu >= CPU_SETSIZE)
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind < argc) {
		scale = strtod(argv[optind], &end);
		if (*end != '\0' || !(scale > 0) || scale > 1000)
			goto usage;
	}
	nsoon = (long)(20000000 * scale);
	ntimer = (long)(2000000 * scale);
	nts = (long)(200000 * scale);
	nsleep = (long)(20000 * scale);
	if (nsoon < 1 || ntimer < 1 || nts < 1 || nsleep < 1)
		goto usage;
	printf("libevent %s, %ld/%ld/%ld/%ld iterations\n",
	    event_get_version(), nsoon, ntimer, nts, nsleep);

	a = bench_aloop_call_soon(nsoon);
	r = bench_raw_call_soon(nsoon);
	report("call_soon dispatch", a, r);

	a = bench_aloop_call_later(ntimer);
	r = bench_raw_call_later(ntimer);
	report("call_later 0 (1M pending)", a, r);

	a = bench_aloop_threadsafe(nts, 0);
	as = bench_aloop_threadsafe(nsleep, SLEEP_GAP);
	/* libevent needs its lock and notification set up for these; it
	 * changes every base made afterwards, so they come last. */
	if (evthread_use_pthreads() != 0)
		die("evthread_use_pthreads");
	r = bench_raw_threadsafe(nts, 0);
	rs = bench_raw_threadsafe(nsleep, SLEEP_GAP);
	report("call_soon_threadsafe wake-up", a, r);
	report("call_soon_threadsafe from sleep", as, rs);
	return 0;
usage:
	fprintf(stderr, "usage: bench_loop [-p producer-cpu] [scale]\n");
	return 2;
}
