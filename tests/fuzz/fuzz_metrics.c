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

/* metrics_init is not fuzzed: its settings getters only need to link. */
int
aloop_settings_get_double(const struct aloop_settings *s, const char *name,
    double *out)
{
	return ALOOP_ENOENT;
}

const struct aloop_settings *
aloop_settings_get(const struct aloop_settings *s, const char *name)
{
	return NULL;
}

void
aloop_settings_error(const struct aloop_settings *s, const char *fmt, ...)
{
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
aloop_daemon_metrics_plugins(aloop_metrics_plugin_fn fn, void *arg)
{
	struct aloop_metrics_plugin_series s = {
		.listener = "fuzz", .worker = 0, .name = "fuzz_figure",
		.labels = "upstream=\"a\\\"b\"", .counter = 0, .value = 1.5,
	};

	return fn(&s, arg);
}

const char *aloop_version(void) { return "0.0.0"; }
const char *aloop_libevent_version(void) { return "2.1"; }
const char *aloop_openssl_version(void) { return "3.0"; }

/*
 * The request timeout's timer: never fires here (a fuzz input is not
 * slow), but it is armed and cancelled as the loop would see it.
 */
static int timers;

struct aloop_loop *
aloop_transport_get_loop(const struct aloop_transport *t)
{
	return (struct aloop_loop *)(uintptr_t)1;
}

int
aloop_call_later(struct aloop_loop *loop, double delay, void (*fn)(void *),
    void *arg, aloop_handle_t *h)
{
	timers++;
	*h = 1;
	return 0;
}

void
aloop_handle_cancel(struct aloop_loop *loop, aloop_handle_t h)
{
	if (h != ALOOP_HANDLE_NONE)
		timers--;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metrics inst = { 10.0 };
	struct aloop_transport t = { 0, 1, 0 };
	const uint8_t *p = data, *e = data + size, *cut;
	struct metrics_req rq;
	size_t used;
	void *state;

	if (metrics_parse_head((const char *)data, size, &rq, &used) == 1 &&
	    (used > size || rq.path + rq.path_len > (const char *)data + size))
		abort();
	if (metrics_new(&inst, &state) != 0)
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
	/* Every timer armed was cancelled by the end. */
	if (timers != 0)
		abort();
	return 0;
}
