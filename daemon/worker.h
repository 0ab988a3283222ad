/*
 * Workers: one thread per `workers`, each running its own aloop loop with
 * its own instance of every listener.  The main thread keeps a control
 * loop for signals, reload, the watchdog and the drain, and talks to a
 * worker only through worker_call() (call_soon_threadsafe plus a wait).
 */
#ifndef ALOOPD_WORKER_H
#define ALOOPD_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct aloop_loop;
struct aloop_tls_context;
struct config;
struct listener;
struct runtime;

/*
 * One configuration generation as the running daemon holds it: the config
 * and what is built from it once for every worker (the TLS contexts).  The
 * main thread makes it; every listener made from it holds a reference, so
 * that the plugins' settings and the plugins themselves stay while an old
 * generation's connections drain.  The last reference is dropped on any
 * thread, but only the main thread frees (runtime_collect()).
 */
struct rtconfig {
	struct config			 *cfg;
	struct aloop_tls_context	**tls;	/* per listener; NULL: plain */
	atomic_int			  refs;
	struct rtconfig			 *next;	/* the runtime's list */
};

struct worker {
	unsigned		 id;
	struct runtime		*rt;
	pthread_t		 thread;
	int			 started;
	struct aloop_loop	*loop;
	/* Listeners serving now, and those closing while connections drain. */
	struct listener		*active;
	struct listener		*retired;
	/* Made by a reload's prepare step, swapped in by its commit. */
	struct listener		*prepared;
	size_t			 nalive;	/* listeners not yet freed */
	int			 stopping;	/* 2: drain told to main */
	atomic_size_t		 nconns;	/* open, for STATUS= */
	atomic_uint		 pong;		/* last watchdog ping seen */
};

/*
 * The shared state of the daemon, owned by runtime.c; workers read what
 * the main thread published before the worker_call() that hands it over.
 */
struct runtime {
	struct aloop_loop	*loop;		/* the main thread's loop */
	struct worker		*workers;
	unsigned		 nworkers;
	struct rtconfig		*current;	/* the configuration in force */
	struct rtconfig		*configs;	/* every generation held */
	const char		*config_path;
	int			 debug;
	/* worker_call()'s rendezvous. */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	/* Graceful stop. */
	int			 stopping;
	int			 aborting;
	unsigned		 drained;	/* workers with nothing left */
	unsigned		 ping;		/* watchdog generation */
};

/* Start worker @w's thread; it makes its loop and waits for calls. */
int	worker_start(struct worker *w);

/*
 * Run @fn(@w, @arg) on @w's loop thread and wait for its return value.
 * Main thread only.  The worker's loop must be running (or about to).
 */
int	worker_call(struct worker *w, int (*fn)(struct worker *, void *),
	    void *arg);

/* Like worker_call() without waiting; @fn's result is ignored. */
int	worker_post(struct worker *w, int (*fn)(struct worker *, void *),
	    void *arg);

/* Stop @w's loop once it is idle and join its thread.  Main thread. */
void	worker_join(struct worker *w);

/* Open every listener of @rc on @w (start-up); -1 and logged on failure. */
int	worker_open(struct worker *w, void *rc);

/* A reload in three steps, each run on the worker through worker_call(). */
int	worker_prepare(struct worker *w, void *rc);
int	worker_commit(struct worker *w, void *unused);
int	worker_rollback(struct worker *w, void *unused);

/* Graceful stop: stop accepting (and tell main once drained), then abort. */
int	worker_stop_accepting(struct worker *w, void *unused);
int	worker_abort(struct worker *w, void *unused);

/* Watchdog: record that @w's loop turned (arg: the ping generation). */
int	worker_pong(struct worker *w, void *gen);

/*
 * Wrap @cfg (taking ownership, also on failure) with what every worker
 * shares: the listeners' TLS contexts.  0 with one reference, or -1
 * (logged).  Main thread.
 */
int	rtconfig_new(struct runtime *rt, struct config *cfg,
	    struct rtconfig **rcp);

/* rtconfig references; the main thread frees unreferenced ones. */
struct rtconfig *rtconfig_ref(struct rtconfig *rc);
void	rtconfig_unref(struct runtime *rt, struct rtconfig *rc);

/* Free every generation no longer referenced.  Main thread. */
void	runtime_collect(struct runtime *rt);

/* Called by a worker (any thread) whenever it may have drained. */
void	runtime_worker_drained(struct runtime *rt, struct worker *w);

#endif /* ALOOPD_WORKER_H */
