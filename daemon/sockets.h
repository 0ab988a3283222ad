/*
 * The master's listening sockets.  The master binds every socket (or
 * adopts it from systemd or from the master it replaced), keeps it open
 * for as long as a generation of workers uses it, and hands it to workers
 * by fork.  It never accepts on one: only workers do.
 *
 * A TCP or UDP listener with reuse_port has one SO_REUSEPORT socket per
 * worker slot, so that the kernel spreads connections evenly over the
 * workers; a worker that dies leaves its socket open in the master, and
 * connections that arrive meanwhile wait in its backlog for the
 * replacement.  UNIX listeners, listeners without reuse_port and port 0
 * share one socket between every worker.
 *
 * A socket is found again by its key (type, address, slot): a reload that
 * keeps an address keeps its socket, so no client is refused.
 */
#ifndef ALOOPD_SOCKETS_H
#define ALOOPD_SOCKETS_H

#include <stddef.h>

struct aloop_loop;
struct config;
struct config_listener;
struct msock;

/* The sockets of one generation: per listener, per slot, per address. */
struct socktab {
	struct config	*cfg;		/* borrowed */
	unsigned	 nslots;
	/* [listener][slot * nlisten + address], or [address] when shared. */
	struct msock  ***socks;
	unsigned char	*shared;	/* per listener */
	size_t		*naddr;		/* per listener: address sets */
	size_t		 pending;	/* binds not yet finished */
	int		 failed;
	void		(*done)(struct socktab *, int, void *);
	void		*arg;
};

/*
 * Open (or find, or adopt) every socket of @cfg for @nslots workers.
 * @done(tab, 0 or -1, @arg) runs once all are bound or any failed (each
 * failure is logged); on failure the caller frees the table.  Returns 0,
 * or a negative ALOOP_E* code if it fails at once (then @done never
 * runs).  Master only, on @loop.
 */
int	sockets_bind(struct aloop_loop *loop, struct config *cfg,
	    unsigned nslots, void (*done)(struct socktab *, int, void *),
	    void *arg, struct socktab **tabp);

/* Drop @tab's sockets: each closes when no table holds it any more. */
void	sockets_free(struct socktab *tab);

/*
 * The descriptors of listener @l for worker @slot, into @fds (at most
 * @max): what the worker adopts.  Returns how many.
 */
size_t	sockets_fds(const struct socktab *tab, size_t l, unsigned slot,
	    int *fds, size_t max);

/*
 * Every descriptor of every live socket, with its key, for a binary
 * upgrade: one line "fd,fd key" per socket set, in a string the caller
 * frees, and the descriptors in *@fds (malloc'd, room for two more).  The
 * descriptors are made inheritable across exec.  NULL on ENOMEM.
 */
char	*sockets_export(int **fds, size_t *nfds);

/* Put the descriptors sockets_export() named back to close-on-exec. */
void	sockets_unexport(void);

/*
 * Take the sockets a previous master handed over (ALOOPD_INHERIT) and
 * socket activation's, to be adopted by key or name; 0 or ALOOP_ENOMEM.
 */
int	sockets_inherit(void);

/* Close inherited sockets that no listener claimed (after start-up). */
void	sockets_drop_unclaimed(void);

/*
 * Leave the UNIX socket files alone from now on: a new master took them
 * over.  Called before the old master lets its sockets go.
 */
void	sockets_disown_paths(void);

/* Close every socket at exit (the tables are gone). */
void	sockets_close_all(void);

#endif /* ALOOPD_SOCKETS_H */
