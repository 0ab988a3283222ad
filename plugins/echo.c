/*
 * echo (RFC 862): whatever a client sends comes back, over TCP and UDP.
 * The shortest complete plugin; copy it to start a new one.
 */
#include <aloop/aloop.h>
#include <aloop/plugin.h>

/*
 * No settings: an empty list still rejects every name, so a typo in
 * aloop.conf is an error rather than silently ignored.
 */
static int
echo_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { NULL };

	*instance = NULL;
	return aloop_settings_check_names(settings, names);
}

/* Nothing per connection: the transport is all the state echo needs. */
static int
echo_new(void *instance, void **state)
{
	*state = NULL;
	return 0;
}

static void
echo_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	if (aloop_transport_write(t, data, len) != 0)
		aloop_transport_abort(t);
}

/*
 * A client that sends but never reads would fill our write buffer without
 * end.  Stop reading while the buffer is above its high-water mark: the
 * kernel's buffers then fill and TCP slows the client down.
 */
static void
echo_pause(struct aloop_transport *t, void *state)
{
	aloop_transport_pause_reading(t);
}

static void
echo_resume(struct aloop_transport *t, void *state)
{
	aloop_transport_resume_reading(t);
}

static const struct aloop_protocol echo_stream = {
	.data_received = echo_data,
	.pause_writing = echo_pause,
	.resume_writing = echo_resume,
	/* eof_received NULL: close once everything is echoed back. */
};

static void
echo_datagram(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	/* A failed send is reported to error_received; nothing to undo. */
	(void)aloop_transport_sendto(t, data, len, addr, addrlen);
}

static const struct aloop_datagram_protocol echo_dgram = {
	.datagram_received = echo_datagram,
};

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "echo",
	.version = "1.0",
	.description = "echo protocol (RFC 862), TCP and UDP",
	.init = echo_init,
	.stream = &echo_stream,
	.stream_factory = echo_new,
	.datagram = &echo_dgram,
	.datagram_factory = echo_new,
};
