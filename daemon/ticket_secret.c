/*
 * The master's session ticket secret (see ticket_secret.h).  A binary
 * upgrade passes it through a pipe rather than the environment, which
 * other processes of the same user could read in /proc.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "ticket_secret.h"

#define SECRET_LEN	32
#define SECRET_ENV	"ALOOPD_TICKET_SECRET_FD"

static unsigned char secret[SECRET_LEN];
static int have_secret;
static int wanted;		/* ticket_secret_init() ran: a master */

/* The previous master's secret, if this master is a binary upgrade. */
static int
inherit(void)
{
	const char *s = getenv(SECRET_ENV);
	char *end;
	struct stat st;
	size_t got = 0;
	ssize_t n;
	long fd;

	if (s == NULL)
		return -1;
	fd = strtol(s, &end, 10);
	(void)unsetenv(SECRET_ENV);
	if (*end != '\0' || fd < 3 || fcntl((int)fd, F_GETFD) == -1)
		return -1;
	/*
	 * The old master wrote the secret and closed its end before the
	 * exec, so it is all there: a stale variable naming some other
	 * descriptor must not make this read wait.
	 */
	if (fstat((int)fd, &st) != 0 || !S_ISFIFO(st.st_mode))
		return -1;	/* not ours to close either */
	if (fcntl((int)fd, F_SETFL, O_NONBLOCK) == -1) {
		close((int)fd);
		return -1;
	}
	while (got < sizeof(secret)) {
		n = read((int)fd, secret + got, sizeof(secret) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close((int)fd);
	return got == sizeof(secret) ? 0 : -1;
}

int
ticket_secret_init(void)
{
	wanted = 1;
	if (inherit() == 0)
		have_secret = 1;
	return 0;
}

int
ticket_secret_wanted(void)
{
	return wanted;
}

/*
 * Made on first use, not at start: the first call to OpenSSL's random
 * generator sets it up, which takes a millisecond or more that a
 * configuration without TLS listeners need not spend.
 */
const unsigned char *
ticket_secret_get(size_t *len)
{
	*len = sizeof(secret);
	if (!have_secret && wanted &&
	    aloop_tls_make_ticket_secret(secret, sizeof(secret)) == 0)
		have_secret = 1;
	return have_secret ? secret : NULL;
}

int
ticket_secret_hand_over(void)
{
	char buf[16];
	int p[2];

	if (!have_secret)
		return 0;	/* none made: no ticket to resume either */
	if (pipe(p) == -1)
		return -1;
	/* 32 bytes always fit a pipe's buffer: no reader needed yet. */
	if (write(p[1], secret, sizeof(secret)) != (ssize_t)sizeof(secret)) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	close(p[1]);
	snprintf(buf, sizeof(buf), "%d", p[0]);
	if (setenv(SECRET_ENV, buf, 1) == -1) {
		close(p[0]);
		return -1;
	}
	return 0;
}
