/*
 * time (RFC 868): the time as 32-bit big-endian seconds since 1900-01-01
 * UTC; over TCP sent on connect and the connection closed, over UDP sent
 * in reply to any datagram.
 */
#include <stdint.h>
#include <time.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

/* Seconds from 1900-01-01 to the Unix epoch, 1970-01-01. */
#define TIME_EPOCH_OFFSET	2208988800u

static int
time_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { NULL };

	*instance = NULL;
	return aloop_settings_check_names(settings, names);
}

/*
 * The 32-bit count wraps in 2036; RFC 868 leaves that to the client, and
 * keeping the low 32 bits is what every implementation does.
 */
static void
time_now(unsigned char out[4])
{
	uint32_t t = (uint32_t)((uint64_t)time(NULL) + TIME_EPOCH_OFFSET);

	out[0] = (unsigned char)(t >> 24);
	out[1] = (unsigned char)(t >> 16);
	out[2] = (unsigned char)(t >> 8);
	out[3] = (unsigned char)t;
}

static int
time_new(void *instance, void **state)
{
	*state = NULL;
	return 0;
}

static void
time_made(struct aloop_transport *t, void *state)
{
	unsigned char now[4];

	time_now(now);
	(void)aloop_transport_write(t, now, sizeof(now));
	aloop_transport_close(t);
}

static const struct aloop_protocol time_stream = {
	.connection_made = time_made,
};

static void
time_datagram(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	unsigned char now[4];

	time_now(now);
	(void)aloop_transport_sendto(t, now, sizeof(now), addr, addrlen);
}

static const struct aloop_datagram_protocol time_dgram = {
	.datagram_received = time_datagram,
};

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "time",
	.version = "1.0",
	.description = "time protocol (RFC 868), TCP and UDP",
	.init = time_init,
	.stream = &time_stream,
	.stream_factory = time_new,
	.datagram = &time_dgram,
	.datagram_factory = time_new,
};
