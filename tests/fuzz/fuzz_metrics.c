/*
 * libFuzzer target: the metrics plugin's HTTP side.  The plugin's source
 * is compiled in, so that its static functions can be called: first the
 * request-head parser on the input as it is, then the whole protocol, the
 * input cut into reads at each 0xff byte, over a transport of stubs that
 * keeps what is written and honours close and abort as aloopd does (no
 * data_received after them).  The daemon's counters are stubs too.
 */
#include "../../plugins/metrics.c"

#include <stdint.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct aloop_transport {
	int	 closed;
	int	 reading;
	size_t	 written;
};

int
aloop_transport_write(struct aloop_transport *t, const void *data,
    size_t len)
{
	if (t->closed)
		abort();	/* the plugin wrote after closing */
	t->written += len;
	return 0;
}

int
aloop_transport_writelines(struct aloop_transport *t,
    const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		(void)aloop_transport_write(t, iov[i].iov_base, iov[i].iov_len);
	return 0;
}

void
aloop_transport_close(struct aloop_transport *t)
{
	t->closed = 1;
}

void
aloop_transport_abort(struct aloop_transport *t)
{
	t->closed = 1;
}

void
aloop_transport_pause_reading(struct aloop_transport *t)
{
	t->reading = 0;
}

void
aloop_transport_resume_reading(struct aloop_transport *t)
{
	t->reading = 1;
}

int
aloop_settings_check_names(const struct aloop_settings *s,
    const char *const *names)
{
	return 0;
}

int
aloop_daemon_metrics_listeners(aloop_metrics_listener_fn fn, void *arg)
{
	struct aloop_metrics_listener m;
	int r;

	memset(&m, 0, sizeof(m));
	m.size = sizeof(m);
	m.listener = "fuzz\"\\\n";
	m.connections_accepted = 7;
	if ((r = fn(&m, arg)) != 0)
		return r;
	m.worker = 1;
	return fn(&m, arg);
}

int
aloop_daemon_metrics_process(struct aloop_metrics_process *p)
{
	size_t size = p->size;

	memset(p, 0, size);
	p->size = size;
	p->uptime = 1.5;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aloop_transport t = { 0, 1, 0 };
	const uint8_t *p = data, *e = data + size, *cut;
	struct metrics_req rq;
	size_t used;
	void *state;

	if (metrics_parse_head((const char *)data, size, &rq, &used) == 1 &&
	    (used > size || rq.path + rq.path_len > (const char *)data + size))
		abort();
	if (metrics_new(NULL, &state) != 0)
		return 0;
	metrics_made(&t, state);
	while (p < e && !t.closed) {
		cut = memchr(p, 0xff, (size_t)(e - p));
		if (cut == NULL)
			cut = e;
		/* Paused, it is not read: the client reads its answers. */
		if (!t.reading) {
			t.written = 0;
			metrics_resume(&t, state);
			if (t.closed)
				break;
		}
		metrics_data(&t, state, p, (size_t)(cut - p));
		/* Past the high-water mark, the loop asks it to pause. */
		if (t.written > 65536 && !t.closed)
			metrics_pause(&t, state);
		p = cut < e ? cut + 1 : e;
	}
	metrics_lost(&t, state, NULL);
	return 0;
}
