/*
 * What the kernel knows of a connected socket's traffic, for the
 * daemon's idle and write timeouts: the plugin writes to its transport
 * directly, so only the kernel can say when bytes last moved and whether
 * the peer is taking what was sent.
 */
#ifndef ALOOPD_TCPINFO_H
#define ALOOPD_TCPINFO_H

#include <stdint.h>

struct sock_facts {
	int		 tcp;		/* TCP: the next three are known */
	double		 since_sent;	/* seconds since data last left */
	double		 since_recv;	/* seconds since data last came */
	uint64_t	 acked;		/* bytes the peer acknowledged */
	uint64_t	 outq;		/* bytes the kernel still holds to send */
};

/* Fill @f for socket @fd: 0, or -1 if it is no socket the kernel knows. */
int	sock_facts(int fd, struct sock_facts *f);

#endif /* ALOOPD_TCPINFO_H */
