/*
 * bulk: the 1 GiB upload of bench/run.sh's proxy group (issue 14).
 *
 *	bulk --sink --port P
 *	bulk --send --port P [--host H] [--bytes N]
 *
 * The sender connects, sends an 8-byte big-endian length and then that
 * many bytes (default 1 GiB) as fast as the connection takes them, and
 * waits for the sink's answer "ok N\n", sent once the sink has read all
 * N; it prints one line:
 *
 *	bytes=N secs=S mb_per_s=X errors=E client_cpu=C
 *
 * (MB = 10^6 bytes; secs from connect to the answer; client_cpu the
 * sender's CPU share over that time).  The answer does not depend on
 * half-closes, which not every proxy passes on by default.
 *
 * The sink serves any number of connections with epoll, reads into one
 * 256 KiB buffer, never writes anything but the answer, and exits 0 on
 * SIGTERM.  Neither side uses libaloop: the proxy in between is what is
 * measured.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	(256 * 1024)

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_secs(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One connection of the sink: the length, then the bytes. */
struct sconn {
	unsigned char	hdr[8];
	unsigned	hlen;
	uint64_t	want, got;
};

static int
sink(const char *port)
{
	struct addrinfo hints = { .ai_family = AF_INET,
	    .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
	struct epoll_event ev, evs[64];
	struct sconn **conns = NULL;
	size_t nconns = 0;
	static char buf[CHUNK];
	int ls, ep, one = 1, r, i;

	if ((r = getaddrinfo("127.0.0.1", port, &hints, &ai)) != 0) {
		fprintf(stderr, "bulk: %s\n", gai_strerror(r));
		return 2;
	}
	ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(ls, 1024) < 0) {
		perror("bulk: listen");
		return 1;
	}
	freeaddrinfo(ai);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.fd = ls;
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	while (!stop) {
		int n = epoll_wait(ep, evs, 64, 200);

		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			struct sconn *c;
			ssize_t k;

			if (fd == ls) {
				int cfd;

				while ((cfd = accept4(ls, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if ((size_t)cfd >= nconns) {
						size_t m = (size_t)cfd * 2 + 16;

						conns = realloc(conns,
						    m * sizeof *conns);
						memset(conns + nconns, 0,
						    (m - nconns) *
						    sizeof *conns);
						nconns = m;
					}
					conns[cfd] = calloc(1, sizeof **conns);
					ev.events = EPOLLIN;
					ev.data.fd = cfd;
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
				}
				continue;
			}
			c = conns[fd];
			for (;;) {
				if (c->hlen < 8)
					k = read(fd, c->hdr + c->hlen,
					    8 - c->hlen);
				else
					k = read(fd, buf, sizeof buf);
				if (k > 0 && c->hlen < 8) {
					if ((c->hlen += k) == 8)
						for (r = 0; r < 8; r++)
							c->want = c->want << 8 |
							    c->hdr[r];
					if (c->hlen < 8 || c->want > 0)
						continue;
				} else if (k > 0 && (c->got += k) < c->want)
					continue;
				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0 && errno == EAGAIN)
					break;
				if (k > 0) {	/* all of it: the answer */
					char msg[32];
					int len = snprintf(msg, sizeof msg,
					    "ok %llu\n",
					    (unsigned long long)c->got);

					if (write(fd, msg, len) != len)
						perror("bulk: answer");
				}
				close(fd);	/* done, EOF or error */
				free(c);
				conns[fd] = NULL;
				break;
			}
		}
	}
	close(ep);
	close(ls);
	return 0;
}

static int
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

static int
sender(const char *host, const char *port, uint64_t bytes)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	struct timeval tv = { .tv_sec = 120 };
	static char buf[CHUNK];
	unsigned char hdr[8];
	char ans[64];
	unsigned long long echoed = 0;
	double t0, t1, c0, c1;
	uint64_t left = bytes;
	size_t got = 0;
	int fd, r, i, errors = 0;

	if ((r = getaddrinfo(host, port, &hints, &ai)) != 0) {
		fprintf(stderr, "bulk: %s\n", gai_strerror(r));
		return 2;
	}
	for (i = 0; i < CHUNK; i++)
		buf[i] = (char)(i * 7 + 1);
	for (i = 0; i < 8; i++)
		hdr[i] = (unsigned char)(bytes >> (56 - 8 * i));
	c0 = cpu_secs();
	t0 = now();
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		perror("bulk: connect");
		/* Still a result line, so the run's error shows in the table. */
		printf("bytes=%llu secs=0 mb_per_s=0 errors=1 client_cpu=0\n",
		    (unsigned long long)bytes);
		return 1;
	}
	freeaddrinfo(ai);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (send_all(fd, (char *)hdr, sizeof hdr) < 0)
		errors++;
	while (!errors && left > 0) {
		size_t n = left < CHUNK ? (size_t)left : CHUNK;

		if (send_all(fd, buf, n) < 0)
			errors++;
		left -= n;
	}
	while (!errors && got < sizeof ans - 1 &&
	    memchr(ans, '\n', got) == NULL) {
		ssize_t k = read(fd, ans + got, sizeof ans - 1 - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += k;
	}
	t1 = now();
	c1 = cpu_secs();
	ans[got] = '\0';
	if (sscanf(ans, "ok %llu", &echoed) != 1 || echoed != bytes)
		errors++;
	close(fd);
	printf("bytes=%llu secs=%.3f mb_per_s=%.1f errors=%d client_cpu=%.2f\n",
	    (unsigned long long)bytes, t1 - t0, bytes / 1e6 / (t1 - t0),
	    errors, (c1 - c0) / (t1 - t0));
	return errors ? 1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sink", no_argument, NULL, 'k' },
		{ "send", no_argument, NULL, 's' },
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "bytes", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 }
	};
	const char *host = "127.0.0.1", *port = NULL;
	uint64_t bytes = 1ULL << 30;
	int mode = 0, o;
	struct sigaction sa = { .sa_handler = on_term };

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'k':
		case 's':
			mode = o;
			break;
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 'b':
			bytes = strtoull(optarg, NULL, 10);
			break;
		default:
			mode = 0;
			port = NULL;
			break;
		}
	}
	if (mode == 0 || port == NULL || optind != argc) {
		fprintf(stderr, "usage: bulk --sink --port P\n"
		    "       bulk --send --port P [--host H] [--bytes N]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	return mode == 'k' ? sink(port) : sender(host, port, bytes);
}
