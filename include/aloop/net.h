/*
 * Name resolution and the low-level socket calls (sock_recv, sock_sendall,
 * sock_connect, sock_accept), each returning a future, as asyncio's.
 * The sockets are the caller's: made non-blocking by the call, never closed.
 */
#ifndef ALOOP_NET_H
#define ALOOP_NET_H

#include <netdb.h>
#include <sys/socket.h>

#include <aloop/common.h>
#include <aloop/future.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_loop;

/**
 * Resolve without blocking the loop (/etc/hosts honoured).  The result is
 * a struct addrinfo * list owned by the future.  A failure is ALOOP_EGAI
 * with gai_strerror's text.  Numeric hosts complete at once; names are
 * looked up in the loop's default executor.  ALOOP_EINVAL when both @host
 * and @port are NULL.
 */
ALOOP_API int aloop_getaddrinfo(struct aloop_loop *loop, const char *host,
    const char *port, const struct addrinfo *hints, struct aloop_future **fut);

/** The result of aloop_getnameinfo(), owned by the future. */
struct aloop_nameinfo {
	char	host[NI_MAXHOST];
	char	serv[NI_MAXSERV];
};
ALOOP_API int aloop_getnameinfo(struct aloop_loop *loop,
    const struct sockaddr *sa, socklen_t salen, int flags,
    struct aloop_future **fut);

/** Bytes received, owned by the future; len 0 means the peer closed. */
struct aloop_bytes {
	size_t		len;
	unsigned char	data[];
};
ALOOP_API int aloop_sock_recv(struct aloop_loop *loop, int fd, size_t nbytes,
    struct aloop_future **fut);

/** Send all of @data (copied); the result is NULL on success. */
ALOOP_API int aloop_sock_sendall(struct aloop_loop *loop, int fd,
    const void *data, size_t len, struct aloop_future **fut);

/** Connect to an already resolved address (ALOOP_EINVAL for a name). */
ALOOP_API int aloop_sock_connect(struct aloop_loop *loop, int fd,
    const struct sockaddr *sa, socklen_t salen, struct aloop_future **fut);

/** A connection accepted by aloop_sock_accept(); the caller owns @fd. */
struct aloop_accepted {
	int			fd;
	socklen_t		addrlen;
	struct sockaddr_storage	addr;
};
ALOOP_API int aloop_sock_accept(struct aloop_loop *loop, int fd,
    struct aloop_future **fut);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_NET_H */
