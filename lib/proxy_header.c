/*
 * The PROXY protocol header parser, versions 1 and 2, as HAProxy's
 * proxy-protocol.txt defines them.  A pure function over the bytes read so
 * far: it says "more", "malformed" or "done", never reads past what it was
 * given and allocates nothing, so that anything a peer sends can be
 * thrown at it (tests/fuzz/fuzz_proxy_header.c).  The copy a transport
 * keeps of a parsed header is made here too, as plain memory work.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-int.h"

static const uint8_t v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char v1_sig[] = "PROXY ";

#define V2_FIXED	16	/* signature, ver_cmd, fam, len */
#define V2_INET_LEN	12
#define V2_INET6_LEN	36
#define V2_UNIX_LEN	216
#define V2_UNIX_PATH	108

uint32_t
aloop__crc32c(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t crc = 0xffffffffu;
	int k;

	/*
	 * Bit by bit: a header is at most a few kilobytes and is checked
	 * once per connection, which does not pay for a table.
	 */
	while (len-- > 0) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return crc ^ 0xffffffffu;
}

static uint16_t
be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* ------------------------------------------------------------- v1 */

/*
 * A decimal port, 0 to 65535, with no sign and no leading zero: the
 * spec leaves no room for another spelling, and a receiver must not be
 * lenient with a header that sets who the client is.
 */
static int
v1_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int
v1_addr(int family, const char *s, size_t n, uint16_t port,
    struct sockaddr_storage *ss, socklen_t *len)
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, tmp, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, tmp, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
	}
	return 0;
}

/*
 * Split the fields after the protocol: exactly four, each followed by
 * one space but the last, which ends the line.
 */
static int
v1_fields(const char *s, size_t n, const char *f[4], size_t fl[4])
{
	size_t i = 0, k = 0, start = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ')
			continue;
		if (k == 4 || i == start)
			return -1;	/* a fifth field, or an empty one */
		f[k] = s + start;
		fl[k++] = i - start;
		start = i + 1;
	}
	return k == 4 ? 0 : -1;
}

static ssize_t
parse_v1(const uint8_t *buf, size_t len, struct aloop__proxy_header *h)
{
	const char *line = (const char *)buf, *f[4], *rest;
	size_t max = len < ALOOP__PROXY_V1_MAX ? len : ALOOP__PROXY_V1_MAX;
	size_t i, end, n, fl[4];
	uint16_t sport, dport;
	int family;

	if (memcmp(buf, v1_sig, len < 6 ? len : 6) != 0)
		return ALOOP_EPROTO_HDR;
	/*
	 * The line is printable US-ASCII up to its CRLF; anything else is
	 * refused as soon as it arrives rather than when 107 bytes have.
	 */
	for (i = 0; i < max; i++) {
		if (buf[i] == '\r')
			break;
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return ALOOP_EPROTO_HDR;
	}
	if (i == max)
		return len >= ALOOP__PROXY_V1_MAX ? ALOOP_EPROTO_HDR : 0;
	if (i + 1 >= ALOOP__PROXY_V1_MAX)
		return ALOOP_EPROTO_HDR;	/* no room for the LF */
	if (i + 1 == len)
		return 0;
	if (buf[i + 1] != '\n')
		return ALOOP_EPROTO_HDR;
	end = i;		/* the CR */
	if (end < 6)
		return ALOOP_EPROTO_HDR;
	rest = line + 6;
	n = end - 6;
	memset(h, 0, sizeof(*h));
	h->version = 1;
	h->command = ALOOP__PROXY_PROXY;
	/* UNKNOWN: whatever follows up to the CRLF is to be ignored. */
	if (n >= 7 && memcmp(rest, "UNKNOWN", 7) == 0 &&
	    (n == 7 || rest[7] == ' ')) {
		h->family = AF_UNSPEC;
		return (ssize_t)(end + 2);
	}
	if (n < 5 || rest[4] != ' ')
		return ALOOP_EPROTO_HDR;
	if (memcmp(rest, "TCP4", 4) == 0)
		family = AF_INET;
	else if (memcmp(rest, "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return ALOOP_EPROTO_HDR;
	if (v1_fields(rest + 5, n - 5, f, fl) != 0 ||
	    v1_port(f[2], fl[2], &sport) != 0 ||
	    v1_port(f[3], fl[3], &dport) != 0 ||
	    v1_addr(family, f[0], fl[0], sport, &h->src, &h->srclen) != 0 ||
	    v1_addr(family, f[1], fl[1], dport, &h->dst, &h->dstlen) != 0)
		return ALOOP_EPROTO_HDR;
	h->family = family;
	h->socktype = SOCK_STREAM;
	return (ssize_t)(end + 2);
}

/* ------------------------------------------------------------- v2 */

static void
v2_unix(const uint8_t *p, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)ss;
	size_t n = strnlen((const char *)p, V2_UNIX_PATH);

	/*
	 * A path of the full 108 bytes has no NUL; sockaddr_un allows it
	 * and the length says where it ends.  An abstract name (leading
	 * NUL) has no length in the header: it is reported unnamed.
	 */
	memset(ss, 0, sizeof(*ss));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, p, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (n > 0 && n < V2_UNIX_PATH ? 1 : 0));
}

static int
v2_addrs(const uint8_t *p, size_t n, int fam, struct aloop__proxy_header *h,
    size_t *used)
{
	struct sockaddr_in *s4, *d4;
	struct sockaddr_in6 *s6, *d6;

	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	switch (fam) {
	case AF_INET:
		if (n < V2_INET_LEN)
			return -1;
		s4 = (struct sockaddr_in *)&h->src;
		d4 = (struct sockaddr_in *)&h->dst;
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, p, 4);
		memcpy(&d4->sin_addr, p + 4, 4);
		memcpy(&s4->sin_port, p + 8, 2);
		memcpy(&d4->sin_port, p + 10, 2);
		h->srclen = h->dstlen = sizeof(*s4);
		*used = V2_INET_LEN;
		return 0;
	case AF_INET6:
		if (n < V2_INET6_LEN)
			return -1;
		s6 = (struct sockaddr_in6 *)&h->src;
		d6 = (struct sockaddr_in6 *)&h->dst;
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, p, 16);
		memcpy(&d6->sin6_addr, p + 16, 16);
		memcpy(&s6->sin6_port, p + 32, 2);
		memcpy(&d6->sin6_port, p + 34, 2);
		h->srclen = h->dstlen = sizeof(*s6);
		*used = V2_INET6_LEN;
		return 0;
	case AF_UNIX:
		if (n < V2_UNIX_LEN)
			return -1;
		v2_unix(p, &h->src, &h->srclen);
		v2_unix(p + V2_UNIX_PATH, &h->dst, &h->dstlen);
		*used = V2_UNIX_LEN;
		return 0;
	}
	*used = 0;
	return 0;
}

static void
span_set(struct aloop__proxy_span *s, const uint8_t *p, size_t len)
{
	/* The first of a repeated TLV wins; the spec defines no repeat. */
	if (s->p == NULL) {
		s->p = p;
		s->len = len;
	}
}

/* The sub-TLVs of an SSL TLV (after its client and verify fields). */
static int
v2_ssl(const uint8_t *p, size_t n, struct aloop__proxy_header *h)
{
	static const struct { uint8_t type; int slot; } subs[] = {
		{ ALOOP__PP2_SSL_VERSION, ALOOP__PROXY_SSL_VERSION },
		{ ALOOP__PP2_SSL_CN, ALOOP__PROXY_SSL_CN },
		{ ALOOP__PP2_SSL_CIPHER, ALOOP__PROXY_SSL_CIPHER },
		{ ALOOP__PP2_SSL_SIG_ALG, ALOOP__PROXY_SSL_SIG_ALG },
		{ ALOOP__PP2_SSL_KEY_ALG, ALOOP__PROXY_SSL_KEY_ALG },
	};
	size_t i, vlen;

	if (n < 5 || h->has_ssl)
		return -1;
	h->has_ssl = 1;
	h->ssl_client = p[0];
	h->ssl_verify = be32(p + 1);
	p += 5;
	n -= 5;
	while (n > 0) {
		if (n < 3 || (vlen = be16(p + 1)) > n - 3)
			return -1;
		for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
			if (subs[i].type == p[0])
				span_set(&h->tlv[subs[i].slot], p + 3, vlen);
		p += 3 + vlen;
		n -= 3 + vlen;
	}
	return 0;
}

/* Walk the TLVs of @p (@n bytes) in the header @hdr of @total bytes. */
static int
v2_tlvs(const uint8_t *hdr, size_t total, const uint8_t *p, size_t n,
    struct aloop__proxy_header *h)
{
	const uint8_t *crc = NULL;
	uint8_t copy[ALOOP__PROXY_V2_MAX];
	size_t vlen;

	h->tlvs.p = n > 0 ? p : NULL;
	h->tlvs.len = n;
	while (n > 0) {
		if (n < 3 || (vlen = be16(p + 1)) > n - 3)
			return -1;
		switch (p[0]) {
		case ALOOP__PP2_ALPN:
			span_set(&h->tlv[ALOOP__PROXY_ALPN], p + 3, vlen);
			break;
		case ALOOP__PP2_AUTHORITY:
			span_set(&h->tlv[ALOOP__PROXY_AUTHORITY], p + 3, vlen);
			break;
		case ALOOP__PP2_CRC32C:
			/* Two checksums could disagree: refuse the doubt. */
			if (vlen != 4 || crc != NULL)
				return -1;
			crc = p + 3;
			break;
		case ALOOP__PP2_UNIQUE_ID:
			if (vlen > ALOOP__PROXY_UNIQUE_ID_MAX)
				return -1;
			span_set(&h->tlv[ALOOP__PROXY_UNIQUE_ID], p + 3, vlen);
			break;
		case ALOOP__PP2_SSL:
			if (v2_ssl(p + 3, vlen, h) != 0)
				return -1;
			break;
		case ALOOP__PP2_NETNS:
			span_set(&h->tlv[ALOOP__PROXY_NETNS], p + 3, vlen);
			break;
		default:
			/* NOOP, custom and unknown types: kept raw only. */
			break;
		}
		p += 3 + vlen;
		n -= 3 + vlen;
	}
	if (crc != NULL) {
		/* The sum covers the whole header with its own field zeroed. */
		memcpy(copy, hdr, total);
		memset(copy + (crc - hdr), 0, 4);
		if (aloop__crc32c(copy, total) != be32(crc))
			return -1;
		h->has_crc32c = 1;
	}
	return 0;
}

static ssize_t
parse_v2(const uint8_t *buf, size_t len, struct aloop__proxy_header *h)
{
	size_t total, used;
	int fam, cmd, af;

	if (memcmp(buf, v2_sig, len < 12 ? len : 12) != 0)
		return ALOOP_EPROTO_HDR;
	if (len >= 13 && (buf[12] >> 4 != 2 || (buf[12] & 0xf) > 1))
		return ALOOP_EPROTO_HDR;
	if (len >= 14 && (buf[13] >> 4 > 3 || (buf[13] & 0xf) > 2))
		return ALOOP_EPROTO_HDR;
	if (len < V2_FIXED)
		return 0;
	total = V2_FIXED + be16(buf + 14);
	if (total > ALOOP__PROXY_V2_MAX)
		return ALOOP_EPROTO_HDR;
	if (len < total)
		return 0;
	memset(h, 0, sizeof(*h));
	h->version = 2;
	cmd = buf[12] & 0xf;
	h->command = cmd == 1 ? ALOOP__PROXY_PROXY : ALOOP__PROXY_LOCAL;
	fam = buf[13] >> 4;
	switch (buf[13] & 0xf) {
	case 1:
		h->socktype = SOCK_STREAM;
		break;
	case 2:
		h->socktype = SOCK_DGRAM;
		break;
	}
	/*
	 * LOCAL: the balancer speaks for itself (a health check); the spec
	 * has the receiver use the real addresses and discard the block.
	 */
	if (h->command == ALOOP__PROXY_LOCAL) {
		h->family = AF_UNSPEC;
		return (ssize_t)total;
	}
	af = fam == 1 ? AF_INET : fam == 2 ? AF_INET6 : fam == 3 ? AF_UNIX :
	    AF_UNSPEC;
	/*
	 * UNSPEC, or a family over an unspecified transport: nothing tells
	 * where addresses end and TLVs begin, so the block is skipped and
	 * the real addresses stay, as the spec allows.
	 */
	if (af == AF_UNSPEC || h->socktype == 0) {
		h->family = AF_UNSPEC;
		return (ssize_t)total;
	}
	if (v2_addrs(buf + V2_FIXED, total - V2_FIXED, af, h, &used) != 0 ||
	    v2_tlvs(buf, total, buf + V2_FIXED + used,
	    total - V2_FIXED - used, h) != 0)
		return ALOOP_EPROTO_HDR;
	h->family = af;
	return (ssize_t)total;
}

ssize_t
aloop__proxy_parse(const void *buf, size_t len, struct aloop__proxy_header *h)
{
	const uint8_t *p = buf;

	if (len == 0)
		return 0;
	/* The first byte tells the versions apart: '\r' or 'P'. */
	if (p[0] == v2_sig[0])
		return parse_v2(p, len, h);
	if (p[0] == (uint8_t)v1_sig[0])
		return parse_v1(p, len, h);
	return ALOOP_EPROTO_HDR;
}

/* ------------------------------------------------------------- copy */

struct aloop__proxy_info *
aloop__proxy_info_new(const struct aloop__proxy_header *h)
{
	struct aloop__proxy_info *pi;
	size_t size = sizeof(*pi) + h->tlvs.len, i;
	char *p;

	for (i = 0; i < ALOOP__PROXY_NTLV; i++)
		if (h->tlv[i].p != NULL)
			size += h->tlv[i].len + 1;
	if ((pi = calloc(1, size)) == NULL)
		return NULL;
	pi->version = h->version;
	pi->command = h->command;
	pi->family = h->family;
	pi->src = h->src;
	pi->dst = h->dst;
	pi->srclen = h->srclen;
	pi->dstlen = h->dstlen;
	pi->has_ssl = h->has_ssl;
	pi->ssl_client = h->ssl_client;
	pi->ssl_verify = h->ssl_verify;
	p = (char *)(pi + 1);
	if (h->tlvs.len > 0) {
		pi->tlvs = (uint8_t *)p;
		pi->tlvlen = h->tlvs.len;
		memcpy(p, h->tlvs.p, h->tlvs.len);
		p += h->tlvs.len;
	}
	for (i = 0; i < ALOOP__PROXY_NTLV; i++) {
		if (h->tlv[i].p == NULL)
			continue;
		/* NUL-terminated, so that a plugin may use it as a string. */
		pi->str[i] = p;
		pi->len[i] = h->tlv[i].len;
		memcpy(p, h->tlv[i].p, h->tlv[i].len);
		p[h->tlv[i].len] = '\0';
		p += h->tlv[i].len + 1;
	}
	return pi;
}
