/*
 * A listener in a worker process: the servers (TCP, UNIX, TLS) or
 * datagram endpoints of one `listeners` entry over the sockets the master
 * bound, the plugin instance that serves them, and max_connections.
 * Everything here runs on the worker's loop thread.
 */
#ifndef ALOOPD_LISTENER_H
#define ALOOPD_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "connection.h"

struct aloop_server;
struct aloop_transport;
struct config_listener;
struct listener;
struct sb_worker;

/* What listeners need of their worker process; the worker's. */
struct listener_host {
	struct aloop_loop	*loop;
	struct sb_worker	*sb;
	unsigned		 slot;
	unsigned		 nslots;
	size_t			 nalive;	/* listeners not yet freed */
	int			 access_log;	/* ALOG_KV, ALOG_JSON; -1: off */
	/* @l is about to be freed (nalive went down); no more calls on it. */
	void			(*gone)(struct listener_host *,
				    struct listener *l);
};

struct listener {
	struct conn_owner		 own;	/* what connections see */
	struct listener_host		*host;
	const struct config_listener	*cl;	/* the worker's config */
	size_t				 index;
	int				 has_instance;
	struct aloop_server		**servers;	/* stream listeners */
	size_t				 nservers;
	struct aloop_transport		**endpoints;	/* datagram listeners */
	size_t				 nendpoints;
	size_t				 nconns;
	size_t				 held;	/* admitted, not yet released */
	size_t				 quota;	/* this worker's share */
	size_t				 others;	/* older generations' */
	aloop_handle_t			 recount;
	int				 paused;
	int				 closing;
	uint64_t			 key;	/* the listener's admission key */
	/* Refused since the last log line about it, and when that was. */
	uint64_t			 refused;
	double				 refused_logged;
	/* One for the worker, one per open connection and live endpoint. */
	size_t				 refs;
	struct listener			*next;
	/* listener_open()'s outstanding adoptions, and whom to tell. */
	size_t				 pending;
	int				 failed;
	void				(*opened)(struct listener *, int,
					    void *);
	void				*opened_arg;
};

/*
 * Make listener @index of @cl's config on @host over @fds (the master's
 * sockets, the worker's copies, adopted: closed with the listener): the
 * plugin instance, then the servers or endpoints.  Nothing accepts before
 * listener_serve().  @opened(l, 0 or -1, @arg) runs on a later turn once
 * every socket is adopted or has failed (logged).  A negative ALOOP_E*
 * code (logged, nothing made) if it fails at once.
 */
int	listener_open(struct listener_host *host,
	    const struct config_listener *cl, size_t index, const int *fds,
	    size_t nfds, void (*opened)(struct listener *, int, void *),
	    void *arg, struct listener **out);

/* Start accepting; idempotent. */
void	listener_serve(struct listener *l);

/*
 * Stop accepting: close the servers (open connections stay) and the
 * datagram endpoints, and drop the worker's reference.  The listener
 * frees itself, running the plugin's fini, once its last connection is
 * gone, and then tells host->gone.
 */
void	listener_retire(struct listener *l);

/* Abort every connection of a retired listener (the drain timed out). */
void	listener_abort(struct listener *l);

#endif /* ALOOPD_LISTENER_H */
