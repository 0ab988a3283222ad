/*
 * echo_task: echo (RFC 862) over TCP, UNIX and TLS, written as a
 * stream_task: the same service as echo's callbacks, one straight loop
 * per connection.  The tests and the bench run the two side by side.
 */
#include <aloop/aloop.h>
#include <aloop/plugin.h>

/* No settings: an empty list rejects every name, so a typo is an error. */
static int
echo_task_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { NULL };

	(void)env;
	*instance = NULL;
	return aloop_settings_check_names(settings, names);
}

/*
 * Whatever arrives goes back.  drain() waits while the client is slow to
 * take it; meanwhile nothing is read, so the kernel's buffers fill and
 * TCP slows the client down: memory stays bounded.  aloop_stream_read_view()
 * lends all that is buffered (up to 64 KiB) without a copy; the write
 * copies it into the transport before drain() can suspend, which is as
 * long as the loan lasts.  The task's stack stays a page deep, which is
 * what an idle connection costs.
 */
static int
echo_task_serve(void *instance, struct aloop_stream_reader *r,
    struct aloop_stream_writer *w)
{
	const void *data;
	size_t len;
	int rc;

	(void)instance;
	for (;;) {
		if ((rc = aloop_stream_read_view(r, 65536, &data, &len)) != 0)
			return rc;
		if (len == 0)		/* EOF: all is echoed; close */
			return 0;
		if ((rc = aloop_stream_write(w, data, len)) != 0 ||
		    (rc = aloop_stream_drain(w)) != 0)
			return rc;
	}
}

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "echo_task",
	.version = "1.0",
	.description = "echo protocol (RFC 862) as a task, stream listeners",
	.init = echo_task_init,
	.stream_task = echo_task_serve,
	/* stream_task_stack 0: the default, whose stacks the loop reuses. */
};
