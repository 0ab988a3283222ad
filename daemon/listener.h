/*
 * A listener on one worker: the servers (TCP, UNIX, TLS) or datagram
 * endpoints (UDP) of one `listeners` entry, the plugin instance that serves
 * them, and the daemon's own per-connection bookkeeping around the plugin's
 * protocol: connection counting for max_connections and STATUS=, and the
 * idle timeout.  Everything here runs on the worker's loop thread.
 */
#ifndef ALOOPD_LISTENER_H
#define ALOOPD_LISTENER_H

#include <stddef.h>

struct aloop_server;
struct aloop_transport;

/*
 * The connections of one listener across reloads on one worker: a
 * listener that keeps its predecessor's sockets shares its count, so that
 * max_connections bounds the old generation's connections and the new
 * one's together.  @current is the generation that accepts.
 */
struct lineage {
	size_t		 nconns;
	size_t		 refs;
	struct listener	*current;
};
struct config_listener;
struct metrics_listener;
struct rtconfig;
struct worker;

struct listener {
	struct worker			*w;
	struct rtconfig			*rc;	/* a reference */
	const struct config_listener	*cl;	/* borrowed from rc */
	size_t				 index;	/* of cl in rc->cfg */
	void				*instance; /* the plugin's */
	struct metrics_listener		*m;	/* counters; NULL: none */
	int				 has_instance;
	struct aloop_server		**servers;	/* stream listeners */
	size_t				 nservers;
	struct aloop_transport		**endpoints;	/* datagram listeners */
	size_t				 nendpoints;
	/*
	 * A UNIX server that made its socket file unlinks it when closed; when
	 * a reload keeps the listener, that server is paused and carried by
	 * the successor instead, so the file stays.
	 */
	unsigned char			*owns_path;	/* per servers[] */
	struct aloop_server		**carried;
	size_t				 ncarried;
	struct listener			*kept_from;	/* predecessor */
	struct listener			*successor;	/* set by commit */
	struct lineage			*lineage;
	size_t				 nconns;
	size_t				 quota;	/* this worker's share */
	int				 paused;
	int				 closing;
	/*
	 * One for the worker's list, one per open connection and per live
	 * endpoint; at zero a closing listener runs the plugin's fini.
	 */
	size_t				 refs;
	struct listener			*next;
	/* listener_open()'s outstanding binds, and whom to tell when done. */
	size_t				 pending;
	int				 failed;
	void				(*opened)(struct listener *, int,
					    void *);
	void				*opened_arg;
};

/*
 * Make the listener for entry @index of @rc on @w: the plugin instance,
 * then the sockets.  @from, when not NULL, is a listener whose sockets
 * this one adopts (duplicated) instead of binding: the same listener of
 * the previous generation on a reload, or worker 0's for a socket that
 * workers share.  A socket passed by socket activation under the
 * listener's name is adopted too.  Nothing accepts before
 * listener_serve().  Binding completes later: @opened(l, 0 or -1, @arg)
 * runs once every socket is open or has failed (failures are logged);
 * the listener is then on no list and the callee either serves it or
 * retires it.  Returns -1 (logged, nothing made) if it fails at once.
 */
int	listener_open(struct worker *w, struct rtconfig *rc, size_t index,
	    const struct listener *from,
	    void (*opened)(struct listener *, int, void *), void *arg);

/* Start accepting (after a prepare); idempotent. */
void	listener_serve(struct listener *l);

/*
 * Stop accepting: close the servers (open connections stay) and the
 * datagram endpoints, move @l from the worker's active or prepared list to
 * its retired list and drop the list's reference.  The listener frees
 * itself, running the plugin's fini, once its last connection is gone.
 */
void	listener_retire(struct listener *l);

/* Abort every connection of a retired listener (the drain timed out). */
void	listener_abort(struct listener *l);

/* Whether @a and @b listen on the same addresses with the same type. */
int	listener_same_sockets(const struct config_listener *a,
	    const struct config_listener *b);

/* The listening descriptors, for adopting: *@n of them, borrowed. */
size_t	listener_sockets(const struct listener *l, int *fds, size_t max);

#endif /* ALOOPD_LISTENER_H */
