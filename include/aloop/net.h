/*
 * Name resolution and the low-level socket calls (sock_recv,
 * sock_recv_into, sock_recvfrom, sock_recvfrom_into, sock_sendall,
 * sock_sendto, sock_connect, sock_accept, sock_sendfile), each returning a
 * future, as asyncio's.  The sockets are the caller's: made non-blocking
 * by the call, never closed.  Each call tries the system call at once and
 * otherwise waits for readiness with add_reader/add_writer, so a socket a
 * transport drives is refused (ALOOP_ESTATE), and one operation per
 * direction and socket may wait at a time (a second replaces the first's
 * watcher, as in asyncio).  Cancelling the future stops the wait; the
 * operation then never touches the socket or the caller's buffer again.
 * Loop thread only.
 */
#ifndef ALOOP_NET_H
#define ALOOP_NET_H

#include <sys/types.h>
#include <sys/socket.h>

#include <netdb.h>

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

/**
 * The result of the calls that count bytes (sock_recv_into,
 * sock_recvfrom_into, sock_sendto, sock_sendfile, transport_sendfile),
 * owned by the future.
 */
struct aloop_nbytes {
	size_t			nbytes;		/* received or sent */
	socklen_t		addrlen;	/* recvfrom_into: the sender's */
	struct sockaddr_storage	addr;		/* ...address; else 0 */
};

/**
 * Receive up to @len bytes into @buf, which must stay valid until the
 * future is done (or cancelled: nothing is written after that).  The
 * result is a struct aloop_nbytes; 0 bytes means the peer closed.
 * ALOOP_EINVAL for a NULL @buf or a zero @len.
 */
ALOOP_API int aloop_sock_recv_into(struct aloop_loop *loop, int fd, void *buf,
    size_t len, struct aloop_future **fut);

/** One datagram and its sender, the result of aloop_sock_recvfrom(). */
struct aloop_datagram {
	socklen_t		addrlen;
	struct sockaddr_storage	addr;
	size_t			len;		/* of data (a datagram may be empty) */
	unsigned char		data[];
};

/**
 * Receive one datagram of up to @bufsize bytes (a longer one is cut, as
 * recvfrom(2) cuts it).  The result is a struct aloop_datagram, owned by
 * the future.
 */
ALOOP_API int aloop_sock_recvfrom(struct aloop_loop *loop, int fd,
    size_t bufsize, struct aloop_future **fut);

/**
 * Like aloop_sock_recv_into() for one datagram; the struct aloop_nbytes
 * carries the sender's address too.
 */
ALOOP_API int aloop_sock_recvfrom_into(struct aloop_loop *loop, int fd,
    void *buf, size_t len, struct aloop_future **fut);

/**
 * Send one datagram (@data copied; may be empty) to @sa, or to the
 * connected peer with a NULL @sa and 0 @salen.  The result is a struct
 * aloop_nbytes with the bytes sent.  Errors of the send (EMSGSIZE,
 * ECONNREFUSED from an earlier ICMP error) fail the future.
 */
ALOOP_API int aloop_sock_sendto(struct aloop_loop *loop, int fd,
    const void *data, size_t len, const struct sockaddr *sa, socklen_t salen,
    struct aloop_future **fut);

/**
 * Send @count bytes (0: up to the end) of the regular file @file, from
 * @offset, over the connected stream socket @fd, with sendfile(2) (no copy
 * through user space), or by reading and sending where the kernel cannot
 * (asyncio's fallback).  The result is a struct aloop_nbytes with the bytes
 * sent; on success and failure alike, and after a cancel, the file's
 * position is left right after the last byte sent, as asyncio leaves it.  The file stays the
 * caller's, and must not be read elsewhere meanwhile.  ALOOP_EINVAL for a
 * socket that is no SOCK_STREAM, a file that is not regular or a negative
 * offset.
 */
ALOOP_API int aloop_sock_sendfile(struct aloop_loop *loop, int fd, int file,
    off_t offset, size_t count, struct aloop_future **fut);

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
