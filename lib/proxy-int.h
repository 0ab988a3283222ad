/*
 * The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2) on
 * the receiving side: a parser that is a pure function over bytes, so
 * that it can be tested and fuzzed alone, and the wait a server runs on
 * each accepted socket to read the header before anything else happens
 * to the connection.  Private to lib/.
 */
#ifndef ALOOP_PROXY_INT_H
#define ALOOP_PROXY_INT_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "loop-int.h"

struct aloop_loop;
struct aloop_transport;

/*
 * Bounds.  A version 1 line is at most 107 bytes with its CRLF (the
 * spec's).  Version 2 allows 16 + 65535 bytes; nothing a balancer sends
 * comes near that (the largest address block, UNIX, is 216 bytes, and
 * HAProxy's own TLVs, SSL with a client's CN included, stay well under a
 * kilobyte), so a larger header is refused as malformed rather than
 * buffered: 4 KiB per connection at most while the header is read.
 */
#define ALOOP__PROXY_V1_MAX	107
#define ALOOP__PROXY_V2_MAX	4096
/* The spec bounds a UNIQUE_ID TLV at 128 bytes. */
#define ALOOP__PROXY_UNIQUE_ID_MAX 128

/* The command: a relayed connection, or the balancer's own (LOCAL). */
#define ALOOP__PROXY_LOCAL	0
#define ALOOP__PROXY_PROXY	1

/* v2 TLV types (proxy-protocol.txt, section 2.2.x). */
#define ALOOP__PP2_ALPN		0x01
#define ALOOP__PP2_AUTHORITY	0x02
#define ALOOP__PP2_CRC32C	0x03
#define ALOOP__PP2_NOOP		0x04
#define ALOOP__PP2_UNIQUE_ID	0x05
#define ALOOP__PP2_SSL		0x20
#define ALOOP__PP2_SSL_VERSION	0x21
#define ALOOP__PP2_SSL_CN	0x22
#define ALOOP__PP2_SSL_CIPHER	0x23
#define ALOOP__PP2_SSL_SIG_ALG	0x24
#define ALOOP__PP2_SSL_KEY_ALG	0x25
#define ALOOP__PP2_NETNS	0x30

/* A TLV value: bytes borrowed from the parsed buffer; p NULL if absent. */
struct aloop__proxy_span {
	const uint8_t	*p;
	size_t		 len;
};

/* The values of the TLVs aloop knows, in the order of this list. */
enum aloop__proxy_tlv {
	ALOOP__PROXY_ALPN,
	ALOOP__PROXY_AUTHORITY,
	ALOOP__PROXY_UNIQUE_ID,
	ALOOP__PROXY_NETNS,
	ALOOP__PROXY_SSL_VERSION,
	ALOOP__PROXY_SSL_CN,
	ALOOP__PROXY_SSL_CIPHER,
	ALOOP__PROXY_SSL_SIG_ALG,
	ALOOP__PROXY_SSL_KEY_ALG,
	ALOOP__PROXY_NTLV
};

/* What a complete header says. */
struct aloop__proxy_header {
	int			 version;	/* 1 or 2 */
	int			 command;	/* ALOOP__PROXY_LOCAL or _PROXY */
	/*
	 * AF_INET, AF_INET6 or AF_UNIX with both addresses set, or
	 * AF_UNSPEC: v1 UNKNOWN, v2 UNSPEC, or LOCAL, where the spec has
	 * the receiver keep the connection's real addresses.
	 */
	int			 family;
	int			 socktype;	/* SOCK_STREAM, SOCK_DGRAM, 0 */
	struct sockaddr_storage	 src, dst;
	socklen_t		 srclen, dstlen;
	struct aloop__proxy_span tlvs;		/* v2: the raw TLV area */
	struct aloop__proxy_span tlv[ALOOP__PROXY_NTLV];
	int			 has_ssl;	/* an SSL TLV came */
	uint8_t			 ssl_client;	/* its PP2_CLIENT_* bits */
	uint32_t		 ssl_verify;	/* 0: the client's cert verified */
	int			 has_crc32c;	/* present, and it matched */
};

/*
 * Parse the header at the start of @buf (@len bytes, the first bytes the
 * connection received).  Returns the header's length (> 0) once it is
 * complete and valid, with *@h filled (its spans borrow from @buf); 0 when
 * the bytes so far are a valid beginning and more are needed (never once
 * @len reaches the bounds above); ALOOP_EPROTO_HDR when they cannot begin
 * a valid header: neither signature, a bad field, a v2 CRC32C that does
 * not match, or a header past the bounds.  No allocation, no I/O; every
 * read stays within @len.  Which version comes is told by the first
 * bytes, as the spec says: the 12-byte v2 signature or "PROXY ".
 */
#define ALOOP_EPROTO_HDR	(-EPROTO)
ssize_t	aloop__proxy_parse(const void *buf, size_t len,
	    struct aloop__proxy_header *h);

/* CRC-32C (Castagnoli) of @len bytes, as the PP2_TYPE_CRC32C TLV has it. */
uint32_t aloop__crc32c(const void *buf, size_t len);

/*
 * What a transport keeps of the header it came with (t->proxy), for
 * get_extra_info: one allocation, the strings NUL-terminated copies.
 */
struct aloop__proxy_info {
	int			 version;
	int			 command;
	int			 family;	/* AF_UNSPEC: real addresses */
	struct sockaddr_storage	 src, dst;
	socklen_t		 srclen, dstlen;
	int			 has_ssl;
	uint8_t			 ssl_client;
	uint32_t		 ssl_verify;
	size_t			 tlvlen;
	uint8_t			*tlvs;		/* raw TLVs; in this block */
	size_t			 len[ALOOP__PROXY_NTLV];
	char			*str[ALOOP__PROXY_NTLV]; /* NULL if absent */
};

/* A copy of what @h says (borrowing nothing), or NULL without memory. */
struct aloop__proxy_info *aloop__proxy_info_new(
	    const struct aloop__proxy_header *h);

/*
 * get_extra_info for a transport that came with a header: the names the
 * header changes or adds ("peername", "sockname", "proxied_peername",
 * "proxied_sockname", "proxy_*"; see include/aloop/transport.h).  *@found
 * is 0 when the name is none of them, and the transport's kind answers.
 */
const void *aloop__proxy_extra_info(struct aloop_transport *t,
	    const char *name, size_t *len, int *found);

/*
 * Reading the header of one accepted connection, bounded by a deadline.
 * The bytes are looked at with MSG_PEEK and only what is header is ever
 * taken from the socket, so the first byte of payload (a TLS ClientHello,
 * a request) stays for whoever reads next.
 *
 * @done runs once, on the loop's thread, unless aloop__proxy_wait_cancel
 * came first: with @fd (now the caller's), 0 and the header on success;
 * with -1, a negative error and NULL after the socket was reset
 * (ALOOP_EPROTO_HDR malformed, ALOOP_ETIMEDOUT, ALOOP_EINCOMPLETE the
 * peer closed first, an errno; ALOOP_ECANCELLED when the loop closed).
 * *@info is the callee's to keep.  The wait is freed when @done returns.
 */
struct aloop__proxy_wait;
typedef void (*aloop__proxy_done_fn)(struct aloop__proxy_wait *w, void *arg,
    int fd, int rc, struct aloop__proxy_info *info);

struct aloop__proxy_wait {
	struct aloop_loop	*loop;
	int			 fd;
	struct event		*ev;
	aloop_handle_t		 deadline;
	uint8_t			*buf;		/* the header so far */
	size_t			 have, cap;
	aloop__proxy_done_fn	 done;
	void			*arg;
	struct aloop__resource	 res;
	/* The owner's, untouched here: its list and its bookkeeping. */
	struct aloop__proxy_wait *prev, *next;
	uintptr_t		 ticket;
	int			 is_unix;
};

/*
 * Start waiting for @fd's header, for at most @timeout seconds (<= 0:
 * no deadline).  0, or ALOOP_ENOMEM / ALOOP_ESTATE with @fd still the
 * caller's.  *@out is the wait, valid until @done returns.
 */
int	aloop__proxy_wait_start(struct aloop_loop *loop, int fd,
	    double timeout, aloop__proxy_done_fn done, void *arg,
	    struct aloop__proxy_wait **out);

/* Give up: the socket is reset and the wait freed; @done never runs. */
void	aloop__proxy_wait_cancel(struct aloop__proxy_wait *w);

#endif /* ALOOP_PROXY_INT_H */
