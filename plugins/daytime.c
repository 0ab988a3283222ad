/*
 * daytime (RFC 867): a TCP client gets the date and time as one line and
 * the connection closes; a UDP datagram gets it back as a datagram.
 *
 * The example of a plugin with settings:
 *	utc = false;		UTC instead of the local time zone
 *	format = "%A, %B %d, %Y %H:%M:%S-%Z";	strftime(3) format
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#define DAYTIME_FORMAT_MAX	200
#define DAYTIME_LINE_MAX	256

struct daytime {
	int	 utc;
	char	 format[DAYTIME_FORMAT_MAX + 1];
};

static int
daytime_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { "utc", "format", NULL };
	const char *format = "%A, %B %d, %Y %H:%M:%S-%Z";
	struct daytime *d;
	int utc = 0, rc, bad;

	/* Check everything before returning, so the operator sees it all. */
	bad = aloop_settings_check_names(settings, names) != 0;
	rc = aloop_settings_get_bool(settings, "utc", &utc);
	bad |= rc != 0 && rc != ALOOP_ENOENT;
	rc = aloop_settings_get_string(settings, "format", &format);
	bad |= rc != 0 && rc != ALOOP_ENOENT;
	if (rc == 0 && (format[0] == '\0' ||
	    strlen(format) > DAYTIME_FORMAT_MAX)) {
		aloop_settings_error(aloop_settings_get(settings, "format"),
		    "must be 1 to %d characters", DAYTIME_FORMAT_MAX);
		bad = 1;
	}
	if (bad)
		return ALOOP_ECONFIG;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return ALOOP_ENOMEM;
	d->utc = utc;
	strcpy(d->format, format);	/* length checked above */
	*instance = d;
	return 0;
}

static void
daytime_fini(void *instance)
{
	free(instance);
}

/* The line to send, CR LF ended; its length (0 if the time is unknown). */
static size_t
daytime_line(const struct daytime *d, char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	size_t n;

	if ((d->utc ? gmtime_r(&now, &tm) : localtime_r(&now, &tm)) == NULL)
		return 0;
	/* glibc's gmtime names its zone "GMT"; the setting says UTC. */
	if (d->utc)
		tm.tm_zone = "UTC";
	/*
	 * The format is the operator's, from aloop.conf.  Unlike printf's,
	 * strftime's conversions read nothing but @tm, so any format is safe.
	 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	n = strftime(buf, size - 2, d->format, &tm);
#pragma GCC diagnostic pop
	if (n == 0)
		return 0;
	memcpy(buf + n, "\r\n", 2);
	return n + 2;
}

static int
daytime_new(void *instance, void **state)
{
	*state = instance;
	return 0;
}

static void
daytime_made(struct aloop_transport *t, void *state)
{
	char line[DAYTIME_LINE_MAX];
	size_t n = daytime_line(state, line, sizeof(line));

	if (n > 0)
		(void)aloop_transport_write(t, line, n);
	/* close() sends what is buffered first. */
	aloop_transport_close(t);
}

static const struct aloop_protocol daytime_stream = {
	.connection_made = daytime_made,
};

static void
daytime_datagram(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	char line[DAYTIME_LINE_MAX];
	size_t n = daytime_line(state, line, sizeof(line));

	if (n > 0)
		(void)aloop_transport_sendto(t, line, n, addr, addrlen);
}

static const struct aloop_datagram_protocol daytime_dgram = {
	.datagram_received = daytime_datagram,
};

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "daytime",
	.version = "1.0",
	.description = "daytime protocol (RFC 867), TCP and UDP",
	.init = daytime_init,
	.fini = daytime_fini,
	.stream = &daytime_stream,
	.stream_factory = daytime_new,
	.datagram = &daytime_dgram,
	.datagram_factory = daytime_new,
};
