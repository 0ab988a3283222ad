/*
 * The proxy's upstreams as a group: which one a new client tries first
 * (balance), which ones are up (active health checks), and the figures it
 * publishes in /metrics.  One per proxy instance, on its worker's loop;
 * workers balance and check on their own, and only worker 0 logs an
 * upstream's changes of state, so that the log says each once.
 *
 * settings (beside the proxy's own):
 *	balance = "round_robin";	or "first", "least_conn", "source_hash"
 *	health_check = {		optional; without it all count as up
 *		interval = 2.0;		seconds between two checks
 *		timeout = 1.0;		seconds a check may take
 *		fall = 3;		failures in a row that mark it down
 *		rise = 2;		successes in a row that mark it up
 *		send = "PING\r\n";	optional: written once connected
 *		expect = "+PONG";	optional: must arrive within timeout
 *	};
 */
#ifndef PROXY_BALANCE_H
#define PROXY_BALANCE_H

#include <sys/socket.h>

#include <stddef.h>

struct aloop_loop;
struct aloop_settings;
struct balancer;

/* Where an upstream is, as the proxy parsed it. */
struct balancer_target {
	const char	*host;		/* NULL for a UNIX socket */
	const char	*port;
	const char	*path;		/* UNIX socket */
	const char	*text;		/* as configured */
};

/*
 * Read balance and health_check from @settings for @n targets (borrowed:
 * they must outlive the balancer).  With a @loop, checks start at once;
 * without (a settings check), nothing runs.  0, ALOOP_ECONFIG (reported
 * on the settings) or ALOOP_ENOMEM.
 */
int	balancer_new(struct aloop_loop *loop, const char *listener,
	    unsigned worker, const struct aloop_settings *settings, size_t n,
	    const struct balancer_target *targets, struct balancer **out);

/* Stop the checks; the balancer goes once the last one in flight ends. */
void	balancer_free(struct balancer *b);

/*
 * The upstreams a new client should try, in order, into @order (room for
 * n): those up, by the balance method (@client feeds source_hash), or
 * every one when none is up.  Their number.
 */
size_t	balancer_order(struct balancer *b, const struct sockaddr *client,
	    socklen_t len, size_t *order);

/* A client's connection to upstream @i is made, ends, or failed. */
void	balancer_opened(struct balancer *b, size_t i);
void	balancer_closed(struct balancer *b, size_t i);
void	balancer_failed(struct balancer *b, size_t i);

#endif /* PROXY_BALANCE_H */
