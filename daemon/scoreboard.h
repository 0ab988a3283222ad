/*
 * The scoreboard: one shared anonymous mapping, made by the master before
 * it forks anything, through which workers tell the master what they are
 * doing (the plugin callback they are in, a heartbeat, their connection
 * count) and keep their counters where every worker and the master can
 * read them, so that /metrics served by any worker sees all of them, dead
 * workers' totals included.
 *
 * Who writes what (every field has exactly one writer, so nothing here
 * takes a lock):
 * - the master: the header, the series, and a region's identity (pid,
 *   slot, generation, state, listeners) before the worker starts;
 * - a worker: its own region's heartbeat, `where`, nconns and counters.
 * Readers use acquire loads where a writer publishes with release.
 */
#ifndef ALOOPD_SCOREBOARD_H
#define ALOOPD_SCOREBOARD_H

#include <sys/types.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What a worker is running, for the crash and stall reports. */
enum sb_callback {
	SB_NONE = 0,
	SB_INIT,
	SB_FINI,
	SB_FACTORY,
	SB_CONNECTION_MADE,
	SB_DATA_RECEIVED,
	SB_EOF_RECEIVED,
	SB_CONNECTION_LOST,
	SB_PAUSE_WRITING,
	SB_RESUME_WRITING,
	SB_DATAGRAM_RECEIVED,
	SB_ERROR_RECEIVED,
	SB_LOAD,		/* dlopen: the plugin's constructors */
	SB_TASK,		/* a stream_task, running */
};

/* A region's life, written by the master. */
enum sb_state {
	SB_FREE = 0,
	SB_RUNNING,		/* forked; serving or about to */
	SB_DRAINING,		/* told to stop accepting */
	SB_DEAD,		/* exited; its counters are being folded */
};

/*
 * One listener's counters in one worker process, by index; the worker is
 * the only writer.  Every one counts up from the worker's start except
 * SB_ACTIVE.  An array, so that folding and summing need no list of
 * names: a new counter is one line here and one in metrics.c.
 */
enum sb_counter {
	SB_ACCEPTED,		/* handed to the plugin */
	SB_ACTIVE,
	SB_CLOSED,
	SB_BYTES_IN,		/* handed to the plugin */
	SB_BYTES_OUT,		/* the plugin wrote */
	SB_TLS_HANDSHAKES,
	SB_TLS_FAILURES,
	SB_PLUGIN_ERRORS,	/* init or factory failed */
	/* Reset on accept, before any plugin or TLS work, by why. */
	SB_REFUSED_FULL,	/* max_connections with overflow "close" */
	SB_REFUSED_SOURCE,	/* max_connections_per_source */
	SB_REFUSED_RATE,	/* connection_rate, listener or source */
	SB_REFUSED_ACCESS,	/* allow and deny */
	/* Datagrams dropped unread: over datagram_rate_per_source... */
	SB_DATAGRAMS_DROPPED,
	SB_DATAGRAMS_DENIED,	/* ...or from a source denied access */
	/* Connections ended by the daemon's timeouts. */
	SB_TIMEOUT_IDLE,
	SB_TIMEOUT_FIRST_BYTE,
	SB_TIMEOUT_WRITE,
	/* Access log lines dropped: the pipe to the master was full. */
	SB_LOG_DROPPED,
	/* Reset for a PROXY protocol header malformed, absent or late. */
	SB_PROXY_FAILURES,
	/* Accepted and reset unserved: the worker was out of descriptors. */
	SB_DROPPED_FDS,
	SB_NCOUNTERS
};

struct sb_counters {
	_Atomic uint64_t	 v[SB_NCOUNTERS];
};

/*
 * A series: one listener name on one worker slot, as /metrics shows it.
 * It outlives the worker processes that fill it: when one exits, the
 * master adds its counters to @folded, so totals never go back.
 */
struct sb_series {
	unsigned		 slot;
	uint32_t		 name;		/* arena offset of the name */
	struct sb_counters	 folded;	/* master-written */
};

/*
 * A figure a plugin publishes about itself (aloop_daemon_gauge_set): one
 * of a worker's fixed table, written by that worker only under a
 * sequence count (odd while it writes) so that readers never see half.
 */
#define SB_GAUGES		32
#define SB_GAUGE_NAME		48
#define SB_GAUGE_LABELS		96
struct sb_gauge {
	_Atomic uint32_t	 seq;
	uint32_t		 listener;	/* index; UINT32_MAX: free */
	int			 counter;	/* a counter, not a gauge */
	char			 name[SB_GAUGE_NAME];
	char			 labels[SB_GAUGE_LABELS];
	double			 value;
};

/* One worker process. */
struct sb_worker {
	_Atomic int		 state;		/* enum sb_state */
	pid_t			 pid;
	unsigned		 slot;		/* 0 .. workers - 1 */
	unsigned		 generation;
	uint32_t		 nlisteners;
	uint32_t		 cap;		/* arrays below, in listeners */
	uint32_t		 series;	/* arena offset: uint32_t[cap] */
	uint32_t		 counters;	/* arena offset: sb_counters[cap] */
	/* Written by the worker. */
	_Atomic uint64_t	 heartbeat;	/* CLOCK_MONOTONIC, ms */
	_Atomic uint32_t	 where;		/* SB_WHERE() */
	_Atomic uint64_t	 nconns;
	struct sb_gauge		 gauges[SB_GAUGES];
};

/* `where` packs a listener index and an sb_callback. */
#define SB_WHERE(index, cb)	((((uint32_t)(index) + 1) << 8) | (cb))
#define SB_WHERE_INDEX(w)	(((w) >> 8) - 1)
#define SB_WHERE_CALLBACK(w)	((w) & 0xff)

/* Process-wide figures, written by the master. */
struct sb_process {
	_Atomic uint64_t	 reloads;
	_Atomic uint64_t	 reload_failures;
	_Atomic uint64_t	 restarts_signal;
	_Atomic uint64_t	 restarts_stall;
	_Atomic uint64_t	 restarts_exit;
	double			 start_time;	/* seconds since the Epoch */
	double			 start_mono;	/* CLOCK_MONOTONIC then */
	_Atomic pid_t		 master;
};

/* Map the scoreboard (master, before any fork).  0 or a negative code. */
int	sb_open(void);
/* Unmap it (the master at exit; a worker never needs to). */
void	sb_close(void);

struct sb_process *sb_process(void);

/*
 * Master: a free region for a worker of @slot and @generation with
 * @nlisteners listeners named @names, their series made as needed and
 * their counters zeroed.  NULL if the scoreboard is full (logged).
 */
struct sb_worker *sb_worker_new(unsigned slot, unsigned generation,
	    const char *const *names, size_t nlisteners);

/*
 * Master: @w's process is gone.  Fold its counters into its series (its
 * open connections count as closed) and free the region.
 */
void	sb_worker_free(struct sb_worker *w);

/* The counters of listener @i of @w (the worker's own writes go here). */
struct sb_counters *sb_counters(struct sb_worker *w, size_t i);

/*
 * The active connections of listener @i of @w held by the other live
 * processes of the same slot and series (an older generation draining).
 */
uint64_t sb_active_elsewhere(struct sb_worker *w, size_t i);

/* The listener name of a series. */
const char *sb_series_name(const struct sb_series *s);

/*
 * Sum every series: live processes plus what exited ones left, calling
 * @fn(series, totals, @arg) for each in slot order.  Any process; returns
 * 0, what @fn returned (nonzero stops), or ALOOP_ENOMEM.
 */
int	sb_totals(int (*fn)(const struct sb_series *, const struct sb_counters *,
	    void *), void *arg);

/* The single writer's add and subtract (no read-modify-write needed). */
static inline void
sb_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c,
	    memory_order_relaxed) + n, memory_order_release);
}

static inline void
sb_sub(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c,
	    memory_order_relaxed) - n, memory_order_relaxed);
}

#define SB_COUNT(c, counter, n) do {					\
	if ((c) != NULL)						\
		sb_add(&(c)->v[(counter)], (n));			\
} while (0)

/* Worker: its own region, for what plugins call (NULL in the master). */
void	sb_set_self(struct sb_worker *w);
struct sb_worker *sb_self(void);

/* The index of listener @name in @w, or UINT32_MAX. */
uint32_t sb_listener_index(struct sb_worker *w, const char *name);

/*
 * Worker: set the plugin figure @name{@labels} of listener @i of @w to
 * @value (made on first use).  0, or -1 if the table is full or a name
 * or the labels are too long.
 */
int	sb_gauge_set(struct sb_worker *w, uint32_t i, const char *name,
	    const char *labels, int counter, double value);

/*
 * Any process: call @fn for every plugin figure of every live worker,
 * with its listener name and slot, the values copied whole.  0 or what
 * @fn returned (nonzero stops).
 */
int	sb_gauges(int (*fn)(const char *listener, unsigned slot,
	    const struct sb_gauge *g, void *arg), void *arg);

/*
 * Rate-limited reports shared by every worker: add @n to what listener
 * @name has to report, and claim the report if none was made for it in
 * the last @interval_ms (whichever worker comes first wins, with an
 * atomic compare-and-swap, so one line per listener per interval goes
 * out whatever the number of workers).  Returns 1 with *@count (what
 * accumulated since the last report, from every worker) and *@since_ms
 * (since that report; 0 for the first) when the caller is to report now,
 * 0 otherwise.  Any process.
 */
int	sb_report_claim(const char *name, uint64_t n, uint64_t interval_ms,
	    uint64_t *count, uint64_t *since_ms);

/* CLOCK_MONOTONIC in milliseconds, the heartbeat's unit. */
uint64_t sb_now_ms(void);

#endif /* ALOOPD_SCOREBOARD_H */
