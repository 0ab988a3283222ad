/*
 * A worker process: forked by the master with the sockets of its slot,
 * it drops privileges, loads the plugins from disk, serves every listener
 * on one aloop loop, beats a heartbeat into the scoreboard and obeys the
 * master through a socket pair:
 *
 *	worker -> master	"R"	every listener serves
 *	master -> worker	"D"	stop accepting; exit once drained
 *	worker -> master	"S"	stopped accepting
 *	master -> worker	"A"	abort every connection now
 *
 * End of file on the pair (the master is gone) or SIGTERM drains as "D"
 * does; the worker enforces shutdown_timeout itself as well.
 */
#ifndef ALOOPD_WORKER_H
#define ALOOPD_WORKER_H

#include <sys/types.h>

struct config;
struct sb_worker;
struct socktab;

#define WORKER_READY	'R'
#define WORKER_DRAIN	'D'
#define WORKER_STOPPED	'S'
#define WORKER_ABORT	'A'

/* Everything a worker starts from, in the memory it inherits. */
struct worker_spec {
	struct config		*cfg;
	const struct socktab	*socks;
	struct sb_worker	*sb;
	unsigned		 slot;
	unsigned		 nslots;
	int			 ctl;		/* its end of the pair */
	int			 debug;		/* the loop's debug mode */
	pid_t			 master;
};

/*
 * The descriptors a worker of @ws keeps from the master (its sockets and
 * @ws->ctl), for proc_fork(): a malloc'd array of *@n; NULL on ENOMEM.
 */
int	*worker_keep_fds(const struct worker_spec *ws, size_t *n);

/* Be the worker; in the child, right after proc_fork().  Never returns. */
void	worker_run(const struct worker_spec *ws) __attribute__((noreturn));

#endif /* ALOOPD_WORKER_H */
