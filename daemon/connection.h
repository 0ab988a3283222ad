/*
 * The daemon's side of every connection and datagram endpoint a plugin
 * serves: the plugin's protocol wrapped so that the worker counts what
 * comes and goes, enforces the listener's timeouts (idle, first byte,
 * write) and datagram rate, and records in the scoreboard
 * which plugin callback it is in (what the master names when the worker
 * crashes or hangs).  A plugin written as a stream_task gets a task per
 * connection over a reader and a writer fed by this same wrapper, the
 * scoreboard saying "stream_task" while the task runs.  Runs on the
 * worker's loop thread.
 *
 * The wrapper stays, rather than a connection observer in libaloop, for
 * that last reason: only a hook around each plugin callback can say which
 * callback a worker died in.
 */
#ifndef ALOOPD_CONNECTION_H
#define ALOOPD_CONNECTION_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

struct access_list;
struct conn;
struct sb_counters;

/*
 * What connections need of the listener that made them.  The listener
 * owns it and keeps it alive while any connection or endpoint it made is
 * (it is told through @opened and @closed).
 */
struct conn_owner {
	struct aloop_loop		*loop;
	const struct aloop_plugin	*desc;
	void				*instance;	/* the plugin's */
	struct sb_counters		*m;		/* may be NULL */
	_Atomic uint32_t		*where;		/* the scoreboard's */
	uint32_t			 index;		/* the listener's */
	unsigned			 worker;	/* the slot */
	const char			*name;
	/* The listener's bounds on a silent or slow peer; 0: none. */
	double				 idle_timeout;
	double				 first_byte_timeout;
	double				 write_timeout;
	unsigned long			 datagram_rate;	/* per source */
	const struct access_list	*access;	/* the config's */
	int				 access_log;	/* -1 off, else ALOG_KV.. */
	int				 shutting;	/* listener_abort ran */
	int				 tls;
	/* The connections whose stream_task runs, for listener_abort. */
	struct conn			*tasks;
	/* A connection or endpoint was made, or is gone for good. */
	void				(*opened)(struct conn_owner *);
	void				(*closed)(struct conn_owner *);
};

/* The stream protocol and factory a listener's servers use (arg: owner). */
extern const struct aloop_protocol connection_protocol;
int	connection_factory(void *owner, void **state);
/*
 * Write @o's access log line for a client refused on accept because of
 * @setting (its name); @fd is the accepted socket and @peer its peer, or
 * -1 and NULL when they are gone already.
 */
void	connection_log_refused(struct conn_owner *o, int fd,
	    const struct sockaddr *peer, socklen_t len, const char *setting);
/*
 * Cancel the stream_task of every connection of @o (listener_abort, at
 * the drain deadline): the await each is in returns ALOOP_ECANCELLED, on
 * a later turn, before the connection_lost of an abort made now.
 */
void	connection_cancel_tasks(struct conn_owner *o);
/* Counts a TLS client that never reached the plugin (arg: owner). */
void	connection_tls_failed(void *owner, const struct aloop_error *err);

/* The datagram protocol; its factory's argument is endpoint_new()'s. */
extern const struct aloop_datagram_protocol endpoint_protocol;
int	endpoint_factory(void *endpoint, void **state);

/*
 * The state of one datagram endpoint of @o, to pass to
 * aloop_create_datagram_endpoint() as the factory argument; it frees
 * itself after connection_lost, or with endpoint_discard() if the
 * endpoint was never made.  @slot is stored into *@where once made.
 */
struct endpoint *endpoint_new(struct conn_owner *o,
	    struct aloop_transport **where);
void	endpoint_discard(struct endpoint *e);

/*
 * Run a plugin call with the scoreboard saying where the worker is, the
 * way every callback above does: for init and fini.
 */
uint32_t conn_enter(struct conn_owner *o, int callback);
void	conn_leave(struct conn_owner *o, uint32_t saved);

#endif /* ALOOPD_CONNECTION_H */
