/*
 * sd_notify for aloopd: READY/RELOADING/STOPPING/STATUS/WATCHDOG messages to
 * the service manager.  libsystemd does it when configure found it; the
 * plain protocol (one datagram to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, '@' for the abstract namespace) is always built, both as
 * the fallback and so that the tests exercise it in every build.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"

/* systemd reads at most this much of a STATUS= text; longer is cut. */
#define NOTIFY_MSG_MAX	1024

int
notify_send_plain(const char *state)
{
	struct sockaddr_un sun;
	const char *path;
	socklen_t len;
	size_t plen, slen;
	ssize_t n;
	int fd, saved;

	path = getenv("NOTIFY_SOCKET");
	if (path == NULL || path[0] == '\0')
		return 0;
	/* Only absolute paths and abstract names are valid, as in systemd. */
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT;
	plen = strlen(path);
	if (plen >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	len = offsetof(struct sockaddr_un, sun_path) + plen;
	if (path[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract: no NUL counted */
	else
		len++;

	/*
	 * A socket per message keeps this safe from any thread without a
	 * lock; messages are rare (start, reload, stop, a ping per 15 s).
	 */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	slen = strlen(state);
	do {
		n = sendto(fd, state, slen, MSG_NOSIGNAL,
		    (struct sockaddr *)&sun, len);
	} while (n == -1 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n == -1)
		return -saved;
	if ((size_t)n != slen)
		return -EMSGSIZE;
	return 0;
}

int
notify_send(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	int r;

	r = sd_notify(0, state);
	return r < 0 ? r : 0;
#else
	return notify_send_plain(state);
#endif
}

int
notify_ready(void)
{
	return notify_send("READY=1");
}

int
notify_reloading(void)
{
	char msg[64];
	struct timespec ts;

	/*
	 * MONOTONIC_USEC lets systemd (Type=notify-reload, v253+) tell this
	 * reload apart from an earlier one; older versions ignore it.
	 */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return -errno;
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	    (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
	return notify_send(msg);
}

int
notify_stopping(void)
{
	return notify_send("STOPPING=1");
}

int
notify_status(const char *fmt, ...)
{
	char msg[NOTIFY_MSG_MAX];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	/* A newline would start a new assignment: keep STATUS= one line. */
	for (char *p = msg + n; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	return notify_send(msg);
}

int
notify_watchdog(void)
{
	return notify_send("WATCHDOG=1");
}

uint64_t
notify_watchdog_usec_plain(void)
{
	const char *s;
	char *end;
	unsigned long long v;

	/* WATCHDOG_PID, when set, names the process the watchdog is for. */
	s = getenv("WATCHDOG_PID");
	if (s != NULL && s[0] != '\0') {
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno != 0 || *end != '\0' ||
		    v != (unsigned long long)getpid())
			return 0;
	}
	s = getenv("WATCHDOG_USEC");
	if (s == NULL || s[0] < '0' || s[0] > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	return v;
}

uint64_t
notify_watchdog_usec(void)
{
#ifdef HAVE_LIBSYSTEMD
	uint64_t usec;

	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
	return 0;
#else
	return notify_watchdog_usec_plain();
#endif
}
