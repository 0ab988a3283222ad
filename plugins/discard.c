/*
 * discard (RFC 863): everything a client sends is thrown away and nothing
 * is ever sent back, over TCP and UDP.
 */
#include <aloop/aloop.h>
#include <aloop/plugin.h>

static int
discard_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { NULL };

	*instance = NULL;
	return aloop_settings_check_names(settings, names);
}

static int
discard_new(void *instance, void **state)
{
	*state = NULL;
	return 0;
}

/*
 * data_received may be NULL for a protocol that ignores its input, but
 * spelling it out shows where a real plugin would look at the bytes.
 */
static void
discard_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
}

static const struct aloop_protocol discard_stream = {
	.data_received = discard_data,
	/* Never writes, so never needs pause_writing/resume_writing. */
};

static void
discard_datagram(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
}

static const struct aloop_datagram_protocol discard_dgram = {
	.datagram_received = discard_datagram,
};

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "discard",
	.version = "1.0",
	.description = "discard protocol (RFC 863), TCP and UDP",
	.init = discard_init,
	.stream = &discard_stream,
	.stream_factory = discard_new,
	.datagram = &discard_dgram,
	.datagram_factory = discard_new,
};
