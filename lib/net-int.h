/*
 * What the stream modules (server.c, connect.c, sock.c, resolve.c) share:
 * name resolution into a flat address list and address formatting.
 * Private to lib/.
 */
#ifndef ALOOP_NET_INT_H
#define ALOOP_NET_INT_H

#include <sys/socket.h>

#include <netdb.h>

#include <aloop/future.h>
#include <aloop/loop.h>

/* One resolved address, as getaddrinfo gives it, but flat and copyable. */
struct aloop__addr {
	int			family;
	int			socktype;
	int			protocol;
	socklen_t		len;
	struct sockaddr_storage	ss;
};

/* A resolved list, in getaddrinfo's order; freed with free(). */
struct aloop__addrlist {
	size_t			n;
	struct aloop__addr	a[];
};

/*
 * Resolve @port on each of @hosts (NULL or "" meaning no host: with
 * AI_PASSIVE every interface, else loopback; @nhosts 0 means one NULL
 * host) without blocking the loop: numeric hosts and ports at once, names
 * in the default executor.  With @dedupe, addresses that repeat are kept
 * once.  The future's result is a struct aloop__addrlist * it owns (never
 * empty); a failure is ALOOP_EGAI (or the errno) naming the host.
 */
int	aloop__resolve(struct aloop_loop *loop, const char *const *hosts,
	    size_t nhosts, const char *port, const struct addrinfo *hints,
	    int dedupe, struct aloop_future **fut);

struct sockaddr_un;
struct aloop_protocol;

/*
 * create_connection's second half: try each of @remote in order (binding
 * to the first address of @local with the same family, if given).  The
 * lists are copied.  Tests use it to try lists no resolver would give.
 */
int	aloop__create_connection_addrs(struct aloop_loop *loop,
	    const struct aloop_protocol *proto,
	    int (*factory)(void *, void **), void *factory_arg,
	    const struct aloop__addrlist *remote,
	    const struct aloop__addrlist *local, struct aloop_future **fut);

/* Fill @sun for @path; ALOOP_EINVAL if empty or too long. */
int	aloop__unix_addr(const char *path, struct sockaddr_un *sun,
	    socklen_t *len);

/* "127.0.0.1:80", "[::1]:80", "/path" or "?" for @sa, in @buf. */
const char *aloop__sockaddr_str(const struct sockaddr *sa, socklen_t len,
	    char *buf, size_t size);

/* Room for any aloop__sockaddr_str() text. */
#define ALOOP__ADDRSTRLEN	(NI_MAXHOST + NI_MAXSERV + 120)

#endif /* ALOOP_NET_INT_H */
