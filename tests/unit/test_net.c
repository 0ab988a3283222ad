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

static const struct test_case cases[] = {
	TEST(test_getaddrinfo),
	TEST(test_getnameinfo),
	TEST(test_sock_recv_and_sendall),
	TEST(test_sock_cancel_removes_reader),
	TEST(test_sock_connect_and_accept),
};

TEST_MAIN("net", cases)
