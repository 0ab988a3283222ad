/*
 * chargen (RFC 864): a TCP client receives an endless stream of lines of
 * rotating printable characters; a UDP datagram gets one datagram back
 * holding a random number (0..512) of them.
 *
 * The stream side is the example of write flow control: it generates only
 * while the transport is not paused, one block per loop turn, so a client
 * that reads slowly (or not at all) costs at most the transport's
 * high-water mark plus one block of memory.
 *
 * settings (optional):
 *	line_length = 72;	characters per line before CR LF (1..1000)
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

/* The characters of RFC 864's pattern: the 95 printable ASCII ones. */
#define CHARGEN_FIRST	' '
#define CHARGEN_COUNT	95
/* Written per loop turn while not paused. */
#define CHARGEN_BLOCK	16384
#define CHARGEN_UDP_MAX	512

struct chargen {
	size_t		 line_length;
	uint32_t	 random;	/* xorshift state for the UDP lengths */
};

struct chargen_conn {
	struct chargen		*inst;
	struct aloop_transport	*t;
	unsigned		 next;		/* first char of next line */
	aloop_handle_t		 pending;	/* the scheduled generate() */
	int			 paused;
};

static int
chargen_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { "line_length", NULL };
	struct chargen *c;
	long long len = 72;
	int rc;

	if ((rc = aloop_settings_check_names(settings, names)) != 0)
		return rc;
	rc = aloop_settings_get_int(settings, "line_length", &len);
	if (rc != 0 && rc != ALOOP_ENOENT)
		return rc;
	if (len < 1 || len > 1000) {
		aloop_settings_error(aloop_settings_get(settings,
		    "line_length"), "out of range (1..1000)");
		return ALOOP_ECONFIG;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	c->line_length = (size_t)len;
	c->random = (uint32_t)time(NULL) ^ (env->worker * 2654435761u) ^ 1u;
	*instance = c;
	return 0;
}

static void
chargen_fini(void *instance)
{
	free(instance);
}

/* Fill @buf with @len characters of the pattern from @first on. */
static void
chargen_fill(char *buf, size_t len, unsigned first)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(CHARGEN_FIRST + (first + i) % CHARGEN_COUNT);
}

static void
chargen_generate(void *arg)
{
	struct chargen_conn *c = arg;
	struct aloop_loop *loop = aloop_transport_get_loop(c->t);
	size_t line = c->inst->line_length + 2, used = 0;
	char block[CHARGEN_BLOCK + 1002];

	c->pending = ALOOP_HANDLE_NONE;
	if (c->paused || aloop_transport_is_closing(c->t))
		return;
	/* At least one line, however long lines are. */
	do {
		chargen_fill(block + used, line - 2, c->next);
		memcpy(block + used + line - 2, "\r\n", 2);
		used += line;
		c->next = (c->next + 1) % CHARGEN_COUNT;
	} while (used + line <= CHARGEN_BLOCK);
	/* The write may call chargen_pause() before it returns. */
	if (aloop_transport_write(c->t, block, used) != 0) {
		aloop_transport_abort(c->t);
		return;
	}
	/*
	 * Yield to the loop between blocks: a fast reader would otherwise
	 * keep this callback running forever.
	 */
	if (!c->paused &&
	    aloop_call_soon(loop, chargen_generate, c, &c->pending) != 0)
		aloop_transport_abort(c->t);
}

static int
chargen_new(void *instance, void **state)
{
	struct chargen_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	c->inst = instance;
	*state = c;
	return 0;
}

static void
chargen_made(struct aloop_transport *t, void *state)
{
	struct chargen_conn *c = state;

	c->t = t;
	chargen_generate(c);
}

/* RFC 864: "Any data received is thrown away." */
static void
chargen_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
}

static void
chargen_pause(struct aloop_transport *t, void *state)
{
	struct chargen_conn *c = state;

	c->paused = 1;
}

static void
chargen_resume(struct aloop_transport *t, void *state)
{
	struct chargen_conn *c = state;

	c->paused = 0;
	if (c->pending == ALOOP_HANDLE_NONE &&
	    aloop_call_soon(aloop_transport_get_loop(t), chargen_generate, c,
	    &c->pending) != 0)
		aloop_transport_abort(t);
}

static void
chargen_lost(struct aloop_transport *t, void *state,
    const struct aloop_error *err)
{
	struct chargen_conn *c = state;

	/* A scheduled generate() must not run on freed state. */
	aloop_handle_cancel(aloop_transport_get_loop(t), c->pending);
	free(c);
}

static const struct aloop_protocol chargen_stream = {
	.connection_made = chargen_made,
	.data_received = chargen_data,
	.connection_lost = chargen_lost,
	.pause_writing = chargen_pause,
	.resume_writing = chargen_resume,
};

static int
chargen_dgram_new(void *instance, void **state)
{
	*state = instance;
	return 0;
}

static void
chargen_datagram(struct aloop_transport *t, void *state, const void *data,
    size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
	struct chargen *inst = state;
	char reply[CHARGEN_UDP_MAX];
	uint32_t x = inst->random;

	/* xorshift32: plenty for picking a length, and lock-free per worker. */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	inst->random = x;
	len = x % (CHARGEN_UDP_MAX + 1);
	chargen_fill(reply, len, x % CHARGEN_COUNT);
	(void)aloop_transport_sendto(t, reply, len, addr, addrlen);
}

static const struct aloop_datagram_protocol chargen_dgram = {
	.datagram_received = chargen_datagram,
};

ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "chargen",
	.version = "1.0",
	.description = "character generator protocol (RFC 864), TCP and UDP",
	.init = chargen_init,
	.fini = chargen_fini,
	.stream = &chargen_stream,
	.stream_factory = chargen_new,
	.datagram = &chargen_dgram,
	.datagram_factory = chargen_dgram_new,
};
