/*
 * The PROXY protocol header parser (lib/proxy_header.c) against the
 * examples and rules of HAProxy's proxy-protocol.txt: v1 TCP4, TCP6 and
 * UNKNOWN, v2 PROXY and LOCAL over IPv4, IPv6 and UNIX with their TLVs,
 * CRC32C good and bad, every truncation, garbage and oversized headers.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-int.h"
#include "runner.h"

static const uint8_t sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* A v2 header: signature, @vc, @fam, then @body (@n bytes). */
static size_t
v2(uint8_t *out, uint8_t vc, uint8_t fam, const uint8_t *body, size_t n)
{
	memcpy(out, sig, 12);
	out[12] = vc;
	out[13] = fam;
	out[14] = (uint8_t)(n >> 8);
	out[15] = (uint8_t)n;
	memcpy(out + 16, body, n);
	return 16 + n;
}

static size_t
tlv(uint8_t *out, uint8_t type, const void *v, size_t n)
{
	out[0] = type;
	out[1] = (uint8_t)(n >> 8);
	out[2] = (uint8_t)n;
	memcpy(out + 3, v, n);
	return 3 + n;
}

/* Every proper prefix of a valid header asks for more bytes. */
static void
check_prefixes(const uint8_t *buf, size_t len)
{
	struct aloop__proxy_header h;
	size_t i;

	for (i = 0; i < len; i++)
		CU_ASSERT_EQUAL(aloop__proxy_parse(buf, i, &h), 0);
}

static int
is_in4(const struct sockaddr_storage *ss, const char *addr, int port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char s[INET_ADDRSTRLEN];

	return sin->sin_family == AF_INET &&
	    inet_ntop(AF_INET, &sin->sin_addr, s, sizeof(s)) != NULL &&
	    strcmp(s, addr) == 0 && ntohs(sin->sin_port) == port;
}

static int
is_in6(const struct sockaddr_storage *ss, const char *addr, int port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	char s[INET6_ADDRSTRLEN];

	return sin6->sin6_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &sin6->sin6_addr, s, sizeof(s)) != NULL &&
	    strcmp(s, addr) == 0 && ntohs(sin6->sin6_port) == port;
}

static void
test_crc32c(void)
{
	/* The check value of CRC-32C (RFC 3720's Castagnoli). */
	CU_ASSERT_EQUAL(aloop__crc32c("123456789", 9), 0xe3069283u);
	CU_ASSERT_EQUAL(aloop__crc32c("", 0), 0);
}

static void
test_v1_tcp4(void)
{
	const char *in = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
	    "GET / HTTP/1.1\r\n";
	size_t hl = strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
	struct aloop__proxy_header h;

	CU_ASSERT_EQUAL(aloop__proxy_parse(in, strlen(in), &h), (ssize_t)hl);
	CU_ASSERT_EQUAL(h.version, 1);
	CU_ASSERT_EQUAL(h.command, ALOOP__PROXY_PROXY);
	CU_ASSERT_EQUAL(h.family, AF_INET);
	CU_ASSERT(is_in4(&h.src, "192.168.0.1", 56324));
	CU_ASSERT(is_in4(&h.dst, "192.168.0.11", 443));
	CU_ASSERT_EQUAL(h.srclen, sizeof(struct sockaddr_in));
	/* Exactly the header: the payload after it is not looked at. */
	CU_ASSERT_EQUAL(aloop__proxy_parse(in, hl, &h), (ssize_t)hl);
	check_prefixes((const uint8_t *)in, hl);
}

static void
test_v1_tcp6_and_unknown(void)
{
	const char *six = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
	/* The spec's worst case, 107 bytes, and UNKNOWN's ignored rest. */
	const char *worst = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:"
	    "ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	const char *bare = "PROXY UNKNOWN\r\n";
	struct aloop__proxy_header h;

	CU_ASSERT_EQUAL(aloop__proxy_parse(six, strlen(six), &h),
	    (ssize_t)strlen(six));
	CU_ASSERT_EQUAL(h.family, AF_INET6);
	CU_ASSERT(is_in6(&h.src, "2001:db8::1", 65535));
	CU_ASSERT(is_in6(&h.dst, "::1", 0));
	check_prefixes((const uint8_t *)six, strlen(six));

	CU_ASSERT_EQUAL(strlen(worst), ALOOP__PROXY_V1_MAX);
	CU_ASSERT_EQUAL(aloop__proxy_parse(worst, strlen(worst), &h), 107);
	CU_ASSERT_EQUAL(h.family, AF_UNSPEC);
	CU_ASSERT_EQUAL(h.command, ALOOP__PROXY_PROXY);
	check_prefixes((const uint8_t *)worst, strlen(worst));
	CU_ASSERT_EQUAL(aloop__proxy_parse(bare, strlen(bare), &h),
	    (ssize_t)strlen(bare));
	CU_ASSERT_EQUAL(h.family, AF_UNSPEC);
}

static void
test_v1_malformed(void)
{
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\n",
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
		"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
		"PROXY \r\n",
		"PROXY TCP4\r\n",
	};
	struct aloop__proxy_header h;
	char longl[200];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (aloop__proxy_parse(bad[i], strlen(bad[i]), &h) >= 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CU_ASSERT(aloop__proxy_parse(bad[i], strlen(bad[i]), &h) < 0);
	}
	/* No CRLF within 107 bytes: refused, not waited for. */
	memset(longl, 'a', sizeof(longl));
	memcpy(longl, "PROXY UNKNOWN ", 14);
	CU_ASSERT_EQUAL(aloop__proxy_parse(longl, 106, &h), 0);
	CU_ASSERT(aloop__proxy_parse(longl, 107, &h) < 0);
	CU_ASSERT(aloop__proxy_parse(longl, sizeof(longl), &h) < 0);
	/* A CR as the 107th byte leaves no room for its LF. */
	longl[106] = '\r';
	longl[107] = '\n';
	CU_ASSERT(aloop__proxy_parse(longl, 108, &h) < 0);
	/* ... while a line of exactly 107 bytes is fine. */
	longl[105] = '\r';
	longl[106] = '\n';
	CU_ASSERT_EQUAL(aloop__proxy_parse(longl, 108, &h), 107);
}

static void
test_v2_tcp4_with_tlvs(void)
{
	uint8_t body[512], buf[600], ssl[64];
	const uint8_t addr[12] = { 10, 0, 0, 1, 192, 168, 1, 2,
	    0x1f, 0x90, 0x01, 0xbb };
	uint8_t custom[2] = { 0xde, 0xad };
	uint8_t zero[4] = { 0 };
	struct aloop__proxy_header h;
	size_t n = 0, s = 0, len, crc_at;
	uint32_t crc;

	memcpy(body, addr, 12);
	n = 12;
	n += tlv(body + n, ALOOP__PP2_ALPN, "h2", 2);
	n += tlv(body + n, ALOOP__PP2_AUTHORITY, "example.com", 11);
	n += tlv(body + n, ALOOP__PP2_UNIQUE_ID, "id-42", 5);
	ssl[0] = 0x07;		/* SSL, CERT_CONN, CERT_SESS */
	memset(ssl + 1, 0, 4);	/* verified */
	s = 5;
	s += tlv(ssl + s, ALOOP__PP2_SSL_VERSION, "TLSv1.3", 7);
	s += tlv(ssl + s, ALOOP__PP2_SSL_CN, "client", 6);
	n += tlv(body + n, ALOOP__PP2_SSL, ssl, s);
	n += tlv(body + n, ALOOP__PP2_NETNS, "blue", 4);
	n += tlv(body + n, 0xe0, custom, 2);
	n += tlv(body + n, ALOOP__PP2_NOOP, "", 0);
	crc_at = 16 + n + 3;
	n += tlv(body + n, ALOOP__PP2_CRC32C, zero, 4);
	len = v2(buf, 0x21, 0x11, body, n);
	crc = aloop__crc32c(buf, len);
	buf[crc_at] = (uint8_t)(crc >> 24);
	buf[crc_at + 1] = (uint8_t)(crc >> 16);
	buf[crc_at + 2] = (uint8_t)(crc >> 8);
	buf[crc_at + 3] = (uint8_t)crc;
	memcpy(buf + len, "payload", 7);

	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len + 7, &h), (ssize_t)len);
	CU_ASSERT_EQUAL(h.version, 2);
	CU_ASSERT_EQUAL(h.command, ALOOP__PROXY_PROXY);
	CU_ASSERT_EQUAL(h.family, AF_INET);
	CU_ASSERT_EQUAL(h.socktype, SOCK_STREAM);
	CU_ASSERT(is_in4(&h.src, "10.0.0.1", 8080));
	CU_ASSERT(is_in4(&h.dst, "192.168.1.2", 443));
	CU_ASSERT_EQUAL(h.has_crc32c, 1);
	CU_ASSERT_EQUAL(h.tlv[ALOOP__PROXY_ALPN].len, 2);
	CU_ASSERT_EQUAL(memcmp(h.tlv[ALOOP__PROXY_ALPN].p, "h2", 2), 0);
	CU_ASSERT_EQUAL(h.tlv[ALOOP__PROXY_AUTHORITY].len, 11);
	CU_ASSERT_EQUAL(memcmp(h.tlv[ALOOP__PROXY_AUTHORITY].p,
	    "example.com", 11), 0);
	CU_ASSERT_EQUAL(memcmp(h.tlv[ALOOP__PROXY_UNIQUE_ID].p, "id-42", 5),
	    0);
	CU_ASSERT_EQUAL(memcmp(h.tlv[ALOOP__PROXY_NETNS].p, "blue", 4), 0);
	CU_ASSERT_EQUAL(h.has_ssl, 1);
	CU_ASSERT_EQUAL(h.ssl_client, 0x07);
	CU_ASSERT_EQUAL(h.ssl_verify, 0);
	CU_ASSERT_EQUAL(memcmp(h.tlv[ALOOP__PROXY_SSL_VERSION].p, "TLSv1.3",
	    7), 0);
	CU_ASSERT_EQUAL(memcmp(h.tlv[ALOOP__PROXY_SSL_CN].p, "client", 6), 0);
	CU_ASSERT_PTR_NULL(h.tlv[ALOOP__PROXY_SSL_CIPHER].p);
	CU_ASSERT_EQUAL(h.tlvs.len, n - 12);
	CU_ASSERT_PTR_EQUAL(h.tlvs.p, buf + 28);
	check_prefixes(buf, len);

	/* A copy for a transport borrows nothing. */
	{
		struct aloop__proxy_info *pi = aloop__proxy_info_new(&h);

		CU_ASSERT_PTR_NOT_NULL_FATAL(pi);
		memset(buf, 0, sizeof(buf));
		CU_ASSERT_STRING_EQUAL(pi->str[ALOOP__PROXY_AUTHORITY],
		    "example.com");
		CU_ASSERT_STRING_EQUAL(pi->str[ALOOP__PROXY_SSL_CN], "client");
		CU_ASSERT_EQUAL(pi->tlvlen, n - 12);
		CU_ASSERT(is_in4(&pi->src, "10.0.0.1", 8080));
		free(pi);
	}

	/* Any byte changed under the checksum: refused. */
	len = v2(buf, 0x21, 0x11, body, n);
	buf[crc_at] = (uint8_t)(crc >> 24);
	buf[crc_at + 1] = (uint8_t)(crc >> 16);
	buf[crc_at + 2] = (uint8_t)(crc >> 8);
	buf[crc_at + 3] = (uint8_t)crc;
	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len, &h), (ssize_t)len);
	buf[16] ^= 1;		/* the source address */
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	buf[16] ^= 1;
	buf[crc_at + 3] ^= 0x80;
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
}

static void
test_v2_ipv6_unix_local(void)
{
	uint8_t body[300], buf[400];
	struct aloop__proxy_header h;
	const struct sockaddr_un *sun;
	size_t len;

	/* IPv6: 2001:db8::5 port 1234 -> ::1 port 80. */
	memset(body, 0, sizeof(body));
	body[0] = 0x20;
	body[1] = 0x01;
	body[2] = 0x0d;
	body[3] = 0xb8;
	body[15] = 5;
	body[31] = 1;
	body[32] = 0x04;
	body[33] = 0xd2;
	body[35] = 80;
	len = v2(buf, 0x21, 0x21, body, 36);
	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len, &h), (ssize_t)len);
	CU_ASSERT_EQUAL(h.family, AF_INET6);
	CU_ASSERT(is_in6(&h.src, "2001:db8::5", 1234));
	CU_ASSERT(is_in6(&h.dst, "::1", 80));
	CU_ASSERT_PTR_NULL(h.tlvs.p);
	check_prefixes(buf, len);

	/* UNIX: two 108-byte paths. */
	memset(body, 0, sizeof(body));
	strcpy((char *)body, "/run/client.sock");
	memset(body + 108, 'x', 108);	/* a full-length path, no NUL */
	len = v2(buf, 0x21, 0x31, body, 216);
	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len, &h), (ssize_t)len);
	CU_ASSERT_EQUAL(h.family, AF_UNIX);
	sun = (const struct sockaddr_un *)&h.src;
	CU_ASSERT_EQUAL(sun->sun_family, AF_UNIX);
	CU_ASSERT_STRING_EQUAL(sun->sun_path, "/run/client.sock");
	CU_ASSERT_EQUAL(h.srclen, offsetof(struct sockaddr_un, sun_path) +
	    strlen("/run/client.sock") + 1);
	CU_ASSERT_EQUAL(h.dstlen, offsetof(struct sockaddr_un, sun_path) +
	    108);
	check_prefixes(buf, len);

	/* LOCAL: addresses and TLVs are discarded, whatever they say. */
	memset(body, 0xff, 12);
	len = v2(buf, 0x20, 0x11, body, 12);
	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len, &h), (ssize_t)len);
	CU_ASSERT_EQUAL(h.command, ALOOP__PROXY_LOCAL);
	CU_ASSERT_EQUAL(h.family, AF_UNSPEC);
	len = v2(buf, 0x20, 0x00, body, 0);
	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len, &h), 16);
	CU_ASSERT_EQUAL(h.command, ALOOP__PROXY_LOCAL);
	check_prefixes(buf, len);

	/* PROXY over UNSPEC: the real addresses stay. */
	len = v2(buf, 0x21, 0x00, body, 5);
	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len, &h), (ssize_t)len);
	CU_ASSERT_EQUAL(h.command, ALOOP__PROXY_PROXY);
	CU_ASSERT_EQUAL(h.family, AF_UNSPEC);
}

static void
test_v2_malformed(void)
{
	uint8_t body[ALOOP__PROXY_V2_MAX + 64], buf[ALOOP__PROXY_V2_MAX + 128];
	uint8_t big[200];
	struct aloop__proxy_header h;
	size_t len, n;

	memset(body, 0, sizeof(body));
	/* Version 1 or 3 in the high nibble, command 2: refused at once. */
	len = v2(buf, 0x11, 0x11, body, 12);
	CU_ASSERT(aloop__proxy_parse(buf, 13, &h) < 0);
	len = v2(buf, 0x31, 0x11, body, 12);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	len = v2(buf, 0x22, 0x11, body, 12);
	CU_ASSERT(aloop__proxy_parse(buf, 13, &h) < 0);
	/* Family 4, transport 3. */
	len = v2(buf, 0x21, 0x41, body, 12);
	CU_ASSERT(aloop__proxy_parse(buf, 14, &h) < 0);
	len = v2(buf, 0x21, 0x13, body, 12);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	/* Too short for its addresses. */
	len = v2(buf, 0x21, 0x11, body, 11);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	len = v2(buf, 0x21, 0x21, body, 35);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	len = v2(buf, 0x21, 0x31, body, 215);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	/* A TLV running past the end, a cut TLV head. */
	n = 12 + tlv(body + 12, ALOOP__PP2_ALPN, "h2", 2);
	body[14] = 3;
	len = v2(buf, 0x21, 0x11, body, n);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	len = v2(buf, 0x21, 0x11, body, 14);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	/* UNIQUE_ID over 128, SSL under 5, CRC32C not 4, two CRC32C. */
	memset(big, 'u', sizeof(big));
	n = 12 + tlv(body + 12, ALOOP__PP2_UNIQUE_ID, big, 129);
	len = v2(buf, 0x21, 0x11, body, n);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	n = 12 + tlv(body + 12, ALOOP__PP2_UNIQUE_ID, big, 128);
	len = v2(buf, 0x21, 0x11, body, n);
	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len, &h), (ssize_t)len);
	n = 12 + tlv(body + 12, ALOOP__PP2_SSL, big, 4);
	len = v2(buf, 0x21, 0x11, body, n);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	n = 12 + tlv(body + 12, ALOOP__PP2_CRC32C, big, 3);
	len = v2(buf, 0x21, 0x11, body, n);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	/* An SSL sub-TLV running past its parent. */
	memset(big, 0, 5);
	big[5] = ALOOP__PP2_SSL_CN;
	big[6] = 0;
	big[7] = 9;
	n = 12 + tlv(body + 12, ALOOP__PP2_SSL, big, 10);
	len = v2(buf, 0x21, 0x11, body, n);
	CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
	/* Past the bound: refused from its length alone, at 16 bytes. */
	memset(body, 0, sizeof(body));	/* TLVs of type 0, empty */
	len = v2(buf, 0x21, 0x11, body, ALOOP__PROXY_V2_MAX - 16 + 1);
	CU_ASSERT(aloop__proxy_parse(buf, 16, &h) < 0);
	len = v2(buf, 0x21, 0x11, body, ALOOP__PROXY_V2_MAX - 16);
	CU_ASSERT_EQUAL(aloop__proxy_parse(buf, len, &h), (ssize_t)len);
	/* A wrong signature byte anywhere in it. */
	len = v2(buf, 0x21, 0x11, body, 12);
	for (n = 1; n < 12; n++) {
		buf[n] ^= 0x20;
		CU_ASSERT(aloop__proxy_parse(buf, len, &h) < 0);
		CU_ASSERT(aloop__proxy_parse(buf, n + 1, &h) < 0);
		buf[n] ^= 0x20;
	}
}

/* A small deterministic generator: the same run every time. */
static uint32_t
next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void
test_garbage_never_escapes(void)
{
	static const char *const seeds[] = {
		"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
		"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n",
	};
	uint8_t buf[512], base[512];
	struct aloop__proxy_header h;
	uint32_t st = 0x12345678;
	size_t i, len, blen, k;
	ssize_t r;

	/* Random bytes, and random mutations of valid headers. */
	for (i = 0; i < 20000; i++) {
		if (i % 3 == 0) {
			len = next_rand(&st) % sizeof(buf);
			for (k = 0; k < len; k++)
				buf[k] = (uint8_t)next_rand(&st);
		} else {
			if (i % 3 == 1) {
				blen = strlen(seeds[i % 2]);
				memcpy(base, seeds[i % 2], blen);
			} else {
				blen = v2(base, 0x21, 0x11, (const uint8_t *)
				    "\1\2\3\4\5\6\7\10\11\12\13\14"
				    "\1\0\2h2", 17);
			}
			memcpy(buf, base, blen);
			len = blen;
			for (k = 0; k < 3; k++)
				buf[next_rand(&st) % blen] =
				    (uint8_t)next_rand(&st);
			len = next_rand(&st) % (blen + 1);
		}
		r = aloop__proxy_parse(buf, len, &h);
		CU_ASSERT(r <= (ssize_t)len);
		if (r > 0)
			CU_ASSERT(h.version == 1 || h.version == 2);
	}
}

static const struct test_case cases[] = {
	TEST(test_crc32c),
	TEST(test_v1_tcp4),
	TEST(test_v1_tcp6_and_unknown),
	TEST(test_v1_malformed),
	TEST(test_v2_tcp4_with_tlvs),
	TEST(test_v2_ipv6_unix_local),
	TEST(test_v2_malformed),
	TEST(test_garbage_never_escapes),
};

TEST_MAIN("proxy_header", cases)
