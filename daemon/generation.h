/*
 * Generations of worker processes, the master's lower half.  A
 * generation is one configuration, its listening sockets and one worker
 * process per slot.  It starts (sockets bound or kept, workers forked),
 * serves once every worker says so, is promoted to current (a worker of
 * the current generation that dies is replaced at once, with a back-off
 * for one that keeps dying; one whose heartbeat stops is killed and
 * replaced), and drains when a newer one is promoted or aloopd stops.
 * Every wait has a timer behind it.  Master process only, on its loop.
 */
#ifndef ALOOPD_GENERATION_H
#define ALOOPD_GENERATION_H

#include <stddef.h>

struct aloop_loop;
struct config;
struct gen;

/* What a starting generation tells its caller; exactly one of the two. */
struct gen_hooks {
	/* Every worker serves: promote it (or drop it). */
	void	(*serving)(struct gen *g, void *arg);
	/* It cannot serve (@why, for the log); it is already being killed
	 * and frees itself: forget it. */
	void	(*failed)(struct gen *g, const char *why, void *arg);
	void	*arg;
};

/*
 * Set up on @loop; @all_gone runs once aloopd is stopping and the last
 * worker process has exited.  @debug: the workers' loops' debug mode.
 */
void	gens_init(struct aloop_loop *loop, int debug, void (*all_gone)(void));

/*
 * Start a generation of @cfg (taken, also on failure): bind its sockets,
 * then fork its workers.  0, with @h called later, or a negative
 * ALOOP_E* code (logged) and no call.
 */
int	gen_start(struct config *cfg, const struct gen_hooks *h,
	    struct gen **out);

/* The generation's configuration and number of workers. */
const struct config *gen_config(const struct gen *g);
unsigned gen_workers(const struct gen *g);

/* @g becomes the current generation; the previous one drains. */
void	gen_promote(struct gen *g);

/*
 * Stop: every generation stops accepting and its workers exit once their
 * connections are done; none is replaced any more.  The master's copies
 * of the sockets are let go.
 */
void	gens_stop(void);

/* Abort every connection now; SIGKILL what is left a second later. */
void	gens_abort(void);

/* Worker processes alive, and the connections they hold. */
int	gens_alive(void);
size_t	gens_connections(void);

/* SIGCHLD: reap the workers that ended and act on each. */
void	gens_reap(void);

/* Kill workers whose heartbeat has stopped for worker_stall_timeout. */
void	gens_check_stalls(void);

/*
 * Run @fn once every worker told to stop accepting says it has (or after
 * 2 s, for one stuck in a plugin), so that a log line saying so is true
 * when read.  A second call runs the first one's @fn at once.
 */
void	gens_after_quiet(void (*fn)(void));

/* At exit: kill and reap what is left, free every generation. */
void	gens_free_all(void);

#endif /* ALOOPD_GENERATION_H */
