/*
 * Admission: whether a listener takes one more connection, or reads one
 * more datagram, from a source now.  max_connections_per_source and the
 * rate settings hold across every worker process and every generation of
 * a listener, so their state lives in one shared anonymous mapping the
 * master makes before its first fork, keyed by the listener's name and
 * the client's address (never its port).
 *
 * The tables are fixed in size and never lock.  When a burst of distinct
 * sources fills a corner of one, the newcomer is admitted untracked: the
 * listener's max_connections and connection_rate still bound the whole.
 * Any process may call anything here once adm_open() ran in the master.
 */
#ifndef ALOOPD_ADMISSION_H
#define ALOOPD_ADMISSION_H

#include <sys/socket.h>

#include <stdint.h>

/* Map the tables (the master, before any fork).  0 or a negative errno. */
int	adm_open(void);
void	adm_close(void);

/*
 * The key of @name's listener alone (@sa NULL), or of one source of it.
 * An IPv4 client seen through an IPv6 socket is the same source as over
 * IPv4; a UNIX peer has no address and is keyed as the listener alone.
 */
uint64_t adm_key(const char *name, const struct sockaddr *sa, socklen_t len);

/* What adm_source_take() returns besides a ticket. */
#define ADM_REFUSED	((uintptr_t)0)		/* @key is at its limit */
#define ADM_UNTRACKED	(~(uintptr_t)0)		/* admitted, not counted */

/*
 * Count one more connection of source @key if it has fewer than @limit
 * (> 0): a ticket to give back with adm_source_release() when the
 * connection ends, ADM_UNTRACKED, or ADM_REFUSED.
 */
uintptr_t adm_source_take(uint64_t key, unsigned long limit);
void	adm_source_release(uintptr_t ticket);

/*
 * One event of @key against a rate of @rate per second (> 0), with a
 * burst of one second's worth: 1 if it fits, 0 if @key is over its rate.
 * A generic cell rate algorithm, the token bucket kept as one time.
 */
int	adm_rate(uint64_t key, unsigned long rate);

/* 1 at most once per @seconds for @key, across processes: for logging. */
int	adm_once_per(uint64_t key, unsigned seconds);

#endif /* ALOOPD_ADMISSION_H */
