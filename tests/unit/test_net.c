/*
 * Name resolution (getaddrinfo, getnameinfo) and the sock_* calls over
 * real loopback sockets.
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "runner.h"
#include "stream_util.h"

static int
has_v4_loopback(const struct addrinfo *ai)
{
	for (; ai != NULL; ai = ai->ai_next)
		if (ai->ai_family == AF_INET &&
		    ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr ==
		    htonl(INADDR_LOOPBACK) &&
		    ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port) == 80)
			return 1;
	return 0;
}

static void
test_getaddrinfo(void)
{
	struct aloop_loop *loop = test_loop();
	struct aloop_future *fut;
	struct addrinfo hints, *ai = NULL;
	const struct aloop_error *err;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	/* A name: through the executor, /etc/hosts honoured. */
	CU_ASSERT_EQUAL_FATAL(aloop_getaddrinfo(loop, "localhost", "80",
	    &hints, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&ai), 0);
	CU_ASSERT(has_v4_loopback(ai));
	aloop_future_release(fut);
	/* A numeric host completes without a lookup. */
	CU_ASSERT_EQUAL_FATAL(aloop_getaddrinfo(loop, "127.0.0.1", "80",
	    &hints, &fut), 0);
	CU_ASSERT(aloop_future_done(fut));
	CU_ASSERT_EQUAL(aloop_future_result(fut, (void **)&ai), 0);
	CU_ASSERT(has_v4_loopback(ai));
	aloop_future_release(fut);
	/* A failure is ALOOP_EGAI with getaddrinfo's text. */
	hints.ai_flags = AI_NUMERICHOST;
	CU_ASSERT_EQUAL_FATAL(aloop_getaddrinfo(loop, "localhost", "80",
	    &hints, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, NULL), ALOOP_EGAI);
	err = aloop_future_error(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err->message,
	    gai_strerror(EAI_NONAME)));
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(aloop_getaddrinfo(loop, NULL, NULL, NULL, &fut),
	    ALOOP_EINVAL);
	/* Cancelling a lookup in flight is harmless. */
	hints.ai_flags = 0;
	CU_ASSERT_EQUAL_FATAL(aloop_getaddrinfo(loop, "localhost", "80",
	    &hints, &fut), 0);
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 1);
	aloop_future_release(fut);
	run_for(loop, 0.05);
	test_loop_done(loop);
}

static void
test_getnameinfo(void)
{
	struct aloop_loop *loop = test_loop();
	struct aloop_nameinfo *ni = NULL;
	struct aloop_future *fut;
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(80);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(aloop_getnameinfo(loop, (struct sockaddr *)&sin,
	    sizeof(sin), NI_NUMERICHOST | NI_NUMERICSERV, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&ni), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ni);
	CU_ASSERT_STRING_EQUAL(ni->host, "127.0.0.1");
	CU_ASSERT_STRING_EQUAL(ni->serv, "80");
	aloop_future_release(fut);
	/* A reverse lookup of 127.0.0.1: /etc/hosts names it. */
	CU_ASSERT_EQUAL_FATAL(aloop_getnameinfo(loop, (struct sockaddr *)&sin,
	    sizeof(sin), NI_NUMERICSERV | NI_NAMEREQD, &fut), 0);
	CU_ASSERT_EQUAL(wait_future(loop, fut, (void **)&ni), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ni);
	CU_ASSERT(strlen(ni->host) > 0);
	CU_ASSERT_STRING_NOT_EQUAL(ni->host, "127.0.0.1");
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(aloop_getnameinfo(loop, NULL, 0, 0, &fut),
	    ALOOP_EINVAL);
	test_loop_done(loop);
}

static void
test_sock_recv_and_sendall(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_future *rf, *sf;
	struct aloop_bytes *b = NULL;
	unsigned char *big;
	size_t got = 0;
	int sv[2], i;
	const size_t n = 4 * 1024 * 1024;

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
	    0, sv), 0);
	/* Nothing there yet: the receive waits. */
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recv(loop, sv[0], 100, &rf), 0);
	CU_ASSERT(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	run_for(loop, 0.02);
	CU_ASSERT_FALSE(aloop_future_done(rf));
	CU_ASSERT_EQUAL(write(sv[1], "ping", 4), 4);
	CU_ASSERT_EQUAL(wait_future(loop, rf, (void **)&b), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(b->len, 4);
	CU_ASSERT_EQUAL(memcmp(b->data, "ping", 4), 0);
	aloop_future_release(rf);

	/* sendall of more than the socket holds, drained by sock_recv. */
	big = malloc(n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	for (i = 0; i < (int)n; i++)
		big[i] = (unsigned char)i;
	CU_ASSERT_EQUAL_FATAL(aloop_sock_sendall(loop, sv[1], big, n, &sf), 0);
	memset(big, 0, n);	/* sendall copied it */
	while (got < n) {
		CU_ASSERT_EQUAL_FATAL(aloop_sock_recv(loop, sv[0], 65536, &rf),
		    0);
		CU_ASSERT_EQUAL_FATAL(wait_future(loop, rf, (void **)&b), 0);
		CU_ASSERT_FATAL(b->len > 0);
		for (i = 0; i < (int)b->len; i++)
			if (b->data[i] != (unsigned char)(got + (size_t)i))
				break;
		CU_ASSERT_EQUAL_FATAL(i, (int)b->len);
		got += b->len;
		aloop_future_release(rf);
	}
	CU_ASSERT_EQUAL(wait_future(loop, sf, NULL), 0);
	aloop_future_release(sf);
	free(big);

	/* EOF is an empty result. */
	close(sv[1]);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recv(loop, sv[0], 10, &rf), 0);
	CU_ASSERT_EQUAL(wait_future(loop, rf, (void **)&b), 0);
	CU_ASSERT_EQUAL(b->len, 0);
	aloop_future_release(rf);
	close(sv[0]);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
test_sock_cancel_removes_reader(void)
{
	struct aloop_loop *loop = test_loop();
	struct aloop_future *rf;
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
	    0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recv(loop, sv[0], 10, &rf), 0);
	CU_ASSERT_EQUAL(aloop_future_cancel(rf), 1);
	run_for(loop, 0.01);
	/* The reader went with the cancel. */
	CU_ASSERT_EQUAL(aloop_remove_reader(loop, sv[0]), 0);
	aloop_future_release(rf);
	CU_ASSERT_EQUAL(aloop_sock_recv(loop, -1, 10, &rf), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_sock_recv(loop, sv[0], 0, &rf), ALOOP_EINVAL);
	close(sv[0]);
	close(sv[1]);
	test_loop_done(loop);
}

static void
test_sock_connect_and_accept(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_future *af, *cf;
	struct aloop_accepted *acc = NULL;
	struct sockaddr_in sin;
	int lfd, cfd, dead;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	CU_ASSERT_EQUAL_FATAL(listen(lfd, 8), 0);
	sin.sin_port = htons((uint16_t)sock_port(lfd));
	CU_ASSERT_EQUAL_FATAL(aloop_sock_accept(loop, lfd, &af), 0);
	run_for(loop, 0.01);
	CU_ASSERT_FALSE(aloop_future_done(af));
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_connect(loop, cfd,
	    (struct sockaddr *)&sin, sizeof(sin), &cf), 0);
	CU_ASSERT_EQUAL(wait_future(loop, cf, NULL), 0);
	aloop_future_release(cf);
	CU_ASSERT_EQUAL(wait_future(loop, af, (void **)&acc), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(acc);
	CU_ASSERT(acc->fd >= 0);
	CU_ASSERT_EQUAL(acc->addr.ss_family, AF_INET);
	CU_ASSERT(fcntl(acc->fd, F_GETFD) & FD_CLOEXEC);
	CU_ASSERT_EQUAL(write(cfd, "a", 1), 1);
	{
		char c = 0;

		CU_ASSERT_EQUAL(read(acc->fd, &c, 1), 1);
		CU_ASSERT_EQUAL(c, 'a');
	}
	close(acc->fd);
	aloop_future_release(af);
	close(cfd);

	/* A refused connect fails the future with the errno. */
	dead = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	close(lfd);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_connect(loop, cfd,
	    (struct sockaddr *)&sin, sizeof(sin), &cf), 0);
	CU_ASSERT_EQUAL(wait_future(loop, cf, NULL), -ECONNREFUSED);
	aloop_future_release(cf);
	/* Only resolved addresses: an unspecified family is refused. */
	sin.sin_family = AF_UNSPEC;
	CU_ASSERT_EQUAL(aloop_sock_connect(loop, cfd, (struct sockaddr *)&sin,
	    sizeof(sin), &cf), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_sock_connect(loop, cfd, NULL, 0, &cf),
	    ALOOP_EINVAL);
	close(cfd);
	close(dead);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* A temporary regular file holding @n bytes of a known pattern. */
static int
pattern_file(size_t n)
{
	char path[] = "/tmp/aloop-net-XXXXXX";
	unsigned char buf[4096];
	size_t i, k;
	int fd;

	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	(void)unlink(path);
	for (i = 0; i < n; i += k) {
		k = n - i < sizeof(buf) ? n - i : sizeof(buf);
		for (size_t j = 0; j < k; j++)
			buf[j] = (unsigned char)((i + j) * 7 + 3);
		CU_ASSERT_FATAL(write(fd, buf, k) == (ssize_t)k);
	}
	return fd;
}

static int
pattern_ok(const unsigned char *p, size_t n, size_t from)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != (unsigned char)((from + i) * 7 + 3))
			return 0;
	return 1;
}

/* CPython's test_sock_lowlevel: recv_into a caller's buffer, partially. */
static void
test_sock_recv_into(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct aloop_future *f;
	struct aloop_nbytes *r = NULL;
	unsigned char buf[16];
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
	    0, sv), 0);
	CU_ASSERT_EQUAL(aloop_sock_recv_into(loop, sv[0], NULL, 4, &f),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_sock_recv_into(loop, sv[0], buf, 0, &f),
	    ALOOP_EINVAL);
	memset(buf, 'z', sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recv_into(loop, sv[0], buf, 4, &f),
	    0);
	run_for(loop, 0.01);
	CU_ASSERT_FALSE(aloop_future_done(f));
	CU_ASSERT_EQUAL(write(sv[1], "abcdefgh", 8), 8);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&r), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->nbytes, 4);
	CU_ASSERT_EQUAL(memcmp(buf, "abcdz", 5), 0);
	aloop_future_release(f);
	/* The rest is there at once: completed within the call. */
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recv_into(loop, sv[0], buf + 4, 12,
	    &f), 0);
	CU_ASSERT(aloop_future_done(f));
	CU_ASSERT_EQUAL(aloop_future_result(f, (void **)&r), 0);
	CU_ASSERT_EQUAL(r->nbytes, 4);
	CU_ASSERT_EQUAL(memcmp(buf, "abcdefgh", 8), 0);
	aloop_future_release(f);
	/* A cancelled receive leaves the buffer alone. */
	memset(buf, 'z', sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recv_into(loop, sv[0], buf, 4, &f),
	    0);
	CU_ASSERT_EQUAL(aloop_future_cancel(f), 1);
	CU_ASSERT_EQUAL(write(sv[1], "late", 4), 4);
	run_for(loop, 0.02);
	CU_ASSERT_EQUAL(buf[0], 'z');
	aloop_future_release(f);
	/* EOF: 0 bytes. */
	(void)close(sv[1]);
	CU_ASSERT_EQUAL(read(sv[0], buf, 4), 4);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recv_into(loop, sv[0], buf, 4, &f),
	    0);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&r), 0);
	CU_ASSERT_EQUAL(r->nbytes, 0);
	aloop_future_release(f);
	(void)close(sv[0]);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static int
udp_socket(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)sin, sizeof(*sin)) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)sin, &len) == 0);
	return fd;
}

/* CPython's test_recvfrom / test_recvfrom_into / test_sendto. */
static void
test_sock_datagrams(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	struct sockaddr_in a, b;
	struct aloop_future *f, *g;
	struct aloop_datagram *d = NULL;
	struct aloop_nbytes *r = NULL;
	unsigned char buf[8];
	int fa, fb;

	fa = udp_socket(&a);
	fb = udp_socket(&b);
	/* recvfrom waits, sendto delivers, the sender's address comes. */
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recvfrom(loop, fb, 64, &f), 0);
	run_for(loop, 0.01);
	CU_ASSERT_FALSE(aloop_future_done(f));
	CU_ASSERT_EQUAL_FATAL(aloop_sock_sendto(loop, fa, "hello", 5,
	    (struct sockaddr *)&b, sizeof(b), &g), 0);
	CU_ASSERT_EQUAL(wait_future(loop, g, (void **)&r), 0);
	CU_ASSERT_EQUAL(r->nbytes, 5);
	aloop_future_release(g);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&d), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_EQUAL(d->len, 5);
	CU_ASSERT_EQUAL(memcmp(d->data, "hello", 5), 0);
	CU_ASSERT_EQUAL(d->addrlen, sizeof(a));
	CU_ASSERT_EQUAL(((struct sockaddr_in *)&d->addr)->sin_port,
	    a.sin_port);
	aloop_future_release(f);
	/* An empty datagram is one too. */
	CU_ASSERT_EQUAL_FATAL(aloop_sock_sendto(loop, fa, NULL, 0,
	    (struct sockaddr *)&b, sizeof(b), &g), 0);
	CU_ASSERT_EQUAL(wait_future(loop, g, NULL), 0);
	aloop_future_release(g);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recvfrom(loop, fb, 64, &f), 0);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&d), 0);
	CU_ASSERT_EQUAL(d->len, 0);
	aloop_future_release(f);
	/* recvfrom_into cuts a longer datagram to the buffer. */
	CU_ASSERT_EQUAL_FATAL(aloop_sock_recvfrom_into(loop, fb, buf, 4, &f),
	    0);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_sendto(loop, fa, "0123456789", 10,
	    (struct sockaddr *)&b, sizeof(b), &g), 0);
	CU_ASSERT_EQUAL(wait_future(loop, g, NULL), 0);
	aloop_future_release(g);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&r), 0);
	CU_ASSERT_EQUAL(r->nbytes, 4);
	CU_ASSERT_EQUAL(memcmp(buf, "0123", 4), 0);
	CU_ASSERT_EQUAL(((struct sockaddr_in *)&r->addr)->sin_port,
	    a.sin_port);
	aloop_future_release(f);
	/* A connected socket sends without an address. */
	CU_ASSERT_EQUAL_FATAL(connect(fa, (struct sockaddr *)&b,
	    sizeof(b)), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_sendto(loop, fa, "x", 1, NULL, 0,
	    &g), 0);
	CU_ASSERT_EQUAL(wait_future(loop, g, NULL), 0);
	aloop_future_release(g);
	CU_ASSERT_EQUAL(recv(fb, buf, sizeof(buf), 0), 1);
	CU_ASSERT_EQUAL(aloop_sock_sendto(loop, fa, "x", 1, NULL, 3, &g),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_sock_recvfrom(loop, fb, 0, &g), ALOOP_EINVAL);
	(void)close(fa);
	(void)close(fb);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/*
 * CPython's test_sendfile: the whole file, then an offset and a count, and
 * the file's position after; more than the socket buffer holds, so the
 * send waits for the reader.
 */
static void
test_sock_sendfile(void)
{
	int fds = count_fds();
	struct aloop_loop *loop = test_loop();
	const size_t n = 3 * 1024 * 1024 + 17;
	struct aloop_future *f;
	struct aloop_nbytes *r = NULL;
	unsigned char *got;
	size_t have = 0;
	ssize_t k;
	int sv[2], file;

	got = malloc(n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	file = pattern_file(n);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
	    0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	CU_ASSERT_EQUAL_FATAL(aloop_sock_sendfile(loop, sv[0], file, 0, 0,
	    &f), 0);
	while (!aloop_future_done(f) || have < n) {
		run_for(loop, 0.001);
		while (have < n && (k = read(sv[1], got + have,
		    n - have)) > 0)
			have += (size_t)k;
		if (now_mono() < 0)
			break;
		if (have >= n && aloop_future_done(f))
			break;
	}
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&r), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->nbytes, n);
	CU_ASSERT_EQUAL(have, n);
	CU_ASSERT(pattern_ok(got, n, 0));
	CU_ASSERT_EQUAL(lseek(file, 0, SEEK_CUR), (off_t)n);
	aloop_future_release(f);

	/* An offset and a count. */
	CU_ASSERT_EQUAL_FATAL(aloop_sock_sendfile(loop, sv[0], file, 1000,
	    500, &f), 0);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&r), 0);
	CU_ASSERT_EQUAL(r->nbytes, 500);
	CU_ASSERT_EQUAL(lseek(file, 0, SEEK_CUR), 1500);
	aloop_future_release(f);
	have = 0;
	CU_ASSERT(WAIT_UNTIL(loop, (have += (size_t)((k = read(sv[1],
	    got + have, 500 - have)) > 0 ? k : 0)) >= 500, 5.0));
	CU_ASSERT(pattern_ok(got, 500, 1000));

	/* An offset past the end sends nothing. */
	CU_ASSERT_EQUAL_FATAL(aloop_sock_sendfile(loop, sv[0], file, n + 10,
	    0, &f), 0);
	CU_ASSERT_EQUAL(wait_future(loop, f, (void **)&r), 0);
	CU_ASSERT_EQUAL(r->nbytes, 0);
	aloop_future_release(f);

	/*
	 * Cancelled while the reader takes nothing: the position is right
	 * after what went into the socket, as the last count said.
	 */
	{
		off_t pos, queued = 0;

		CU_ASSERT_EQUAL_FATAL(aloop_sock_sendfile(loop, sv[0], file,
		    0, 0, &f), 0);
		run_for(loop, 0.05);
		CU_ASSERT_FALSE(aloop_future_done(f));
		CU_ASSERT_EQUAL(aloop_future_cancel(f), 1);
		run_for(loop, 0.01);
		pos = lseek(file, 0, SEEK_CUR);
		/* Everything the socket pair holds now is what was sent. */
		while ((k = read(sv[1], got, n)) > 0)
			queued += k;
		CU_ASSERT(pos > 0 && pos < (off_t)n);
		CU_ASSERT_EQUAL(pos, queued);
		aloop_future_release(f);
	}

	/* Argument checks: no datagram socket, no pipe as the file. */
	CU_ASSERT_EQUAL(aloop_sock_sendfile(loop, sv[0], file, -1, 0, &f),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_sock_sendfile(loop, sv[0], sv[1], 0, 0, &f),
	    ALOOP_EINVAL);
	(void)close(sv[0]);
	(void)close(sv[1]);
	(void)close(file);
	free(got);
	test_loop_done(loop);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_getaddrinfo),
	TEST(test_getnameinfo),
	TEST(test_sock_recv_and_sendall),
	TEST(test_sock_recv_into),
	TEST(test_sock_datagrams),
	TEST(test_sock_sendfile),
	TEST(test_sock_cancel_removes_reader),
	TEST(test_sock_connect_and_accept),
};

TEST_MAIN("net", cases)
