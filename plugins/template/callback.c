/*
 * callback: the template's protocol, "shout", written the low-level way,
 * as a table of protocol callbacks instead of a task (template.c).  The
 * server greets, then answers every line in upper case; "QUIT" gets "BYE"
 * and the connection closes.  Here the plugin keeps the state between
 * callbacks itself: per-instance and per-connection state, input split
 * into lines with a bound on what a client can make us hold, write flow
 * control, and the cleanup in connection_lost and fini.  Start from
 * template.c unless you need what only callbacks give: no stack per
 * connection, and a say in each read (aloop-plugin(7) compares the two).
 *
 * Build it outside aloop's tree with
 *	cc -shared -fPIC $(pkg-config --cflags --libs aloop) callback.c \
 *	    -o callback.so
 * and name it in aloop.conf:
 *	{ name = "shout"; protocol = "callback"; listen = [ "127.0.0.1:7000" ];
 *	  settings = { greeting = "hello"; max_line = 1024; }; }
 *
 * Rename it: change the file, the .name below and the prefix "tpl_".
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

/*
 * One instance per listener per worker thread.  Everything of an instance
 * runs on that worker's loop thread, so no field needs a lock.
 */
struct tpl {
	char		*greeting;	/* copied: settings die after init */
	size_t		 max_line;
	unsigned long	 served;	/* connections so far, for the log */
};

/* One connection. */
struct tpl_conn {
	struct tpl	*tpl;
	char		*line;		/* the line being received */
	size_t		 len;
};

/*
 * Read and check the settings, then make the instance.  Runs at start-up,
 * on every reload, and for aloopd -t (then env->loop is NULL and the
 * instance goes straight to fini): report every problem, start nothing.
 */
static int
tpl_init(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	static const char *const names[] = { "greeting", "max_line", NULL };
	const char *greeting = "hello";
	long long max_line = 1024;
	struct tpl *tpl;
	int bad = 0;

	(void)env;	/* the loop, the listener's name, the worker's number */
	/* A misspelt setting is an error, not silently ignored. */
	if (aloop_settings_check_names(settings, names) != 0)
		bad = 1;
	/* ALOOP_ENOENT leaves the default; a wrong type is reported. */
	if (aloop_settings_get_string(settings, "greeting", &greeting) ==
	    ALOOP_ECONFIG)
		bad = 1;
	if (aloop_settings_get_int(settings, "max_line", &max_line) ==
	    ALOOP_ECONFIG)
		bad = 1;
	else if (max_line < 1 || max_line > 65536) {
		aloop_settings_error(aloop_settings_get(settings, "max_line"),
		    "out of range (1..65536)");
		bad = 1;
	}
	if (bad)
		return ALOOP_ECONFIG;

	if ((tpl = calloc(1, sizeof(*tpl))) == NULL)
		return ALOOP_ENOMEM;
	if ((tpl->greeting = strdup(greeting)) == NULL) {
		free(tpl);
		return ALOOP_ENOMEM;
	}
	tpl->max_line = (size_t)max_line;
	*instance = tpl;
	return 0;
}

/* Every connection of the instance has seen connection_lost by now. */
static void
tpl_fini(void *instance)
{
	struct tpl *tpl = instance;

	if (tpl == NULL)
		return;
	if (tpl->served > 0)
		aloop_log(ALOOP_LOG_INFO, "callback: served %lu connections",
		    tpl->served);
	free(tpl->greeting);
	free(tpl);
}

/* A new connection: make its state.  An error refuses it. */
static int
tpl_new(void *instance, void **state)
{
	struct tpl_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	c->tpl = instance;
	/* One byte more than a line may hold, for the terminating NUL. */
	if ((c->line = malloc(c->tpl->max_line + 1)) == NULL) {
		free(c);
		return ALOOP_ENOMEM;
	}
	*state = c;
	return 0;
}

static void
tpl_made(struct aloop_transport *t, void *state)
{
	struct tpl_conn *c = state;
	struct iovec iov[2];

	c->tpl->served++;
	iov[0].iov_base = c->tpl->greeting;
	iov[0].iov_len = strlen(c->tpl->greeting);
	iov[1].iov_base = (void *)"\r\n";
	iov[1].iov_len = 2;
	/* The transport copies; a failure (no memory) ends the connection. */
	if (aloop_transport_writelines(t, iov, 2) != 0)
		aloop_transport_abort(t);
}

/* One complete line, without its end: answer it. */
static void
tpl_line(struct aloop_transport *t, struct tpl_conn *c)
{
	c->line[c->len] = '\0';
	if (strcmp(c->line, "QUIT") == 0) {
		(void)aloop_transport_write(t, "BYE\r\n", 5);
		/* Sends what is buffered, then closes. */
		aloop_transport_close(t);
		return;
	}
	for (size_t i = 0; i < c->len; i++)
		c->line[i] = (char)toupper((unsigned char)c->line[i]);
	c->line[c->len++] = '\n';
	if (aloop_transport_write(t, c->line, c->len) != 0)
		aloop_transport_abort(t);
}

/*
 * Bytes arrived: any number, cut anywhere.  Collect them into lines; a
 * line longer than max_line ends the connection, so a client can never
 * make us hold more than that.
 */
static void
tpl_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	struct tpl_conn *c = state;
	const char *p = data;

	for (size_t i = 0; i < len; i++) {
		/* Closed inside tpl_line (QUIT): ignore what follows. */
		if (aloop_transport_is_closing(t))
			return;
		if (p[i] == '\n') {
			if (c->len > 0 && c->line[c->len - 1] == '\r')
				c->len--;
			tpl_line(t, c);
			c->len = 0;
		} else if (c->len == c->tpl->max_line) {
			(void)aloop_transport_write(t, "ERR line too long\r\n",
			    19);
			aloop_transport_close(t);
			return;
		} else
			c->line[c->len++] = p[i];
	}
}

/*
 * The client will send no more.  Returning 1 would keep the connection
 * half-open to send more ourselves; we have nothing more to say.
 */
static int
tpl_eof(struct aloop_transport *t, void *state)
{
	(void)t;
	(void)state;
	return 0;
}

/* The last callback: free the connection's state here. */
static void
tpl_lost(struct aloop_transport *t, void *state, const struct aloop_error *err)
{
	struct tpl_conn *c = state;

	(void)t;	/* valid until we return, unused after */
	if (err != NULL)
		aloop_log(ALOOP_LOG_DEBUG, "callback: connection lost: %s",
		    err->message);
	free(c->line);
	free(c);
}

/*
 * A client that sends lines but never reads the answers would fill our
 * write buffer without end.  Stop reading while the buffer is above its
 * high-water mark: the kernel's buffers fill, and TCP slows the client.
 */
static void
tpl_pause(struct aloop_transport *t, void *state)
{
	(void)state;
	aloop_transport_pause_reading(t);
}

static void
tpl_resume(struct aloop_transport *t, void *state)
{
	(void)state;
	aloop_transport_resume_reading(t);
}

static const struct aloop_protocol tpl_protocol = {
	.connection_made = tpl_made,
	.data_received = tpl_data,
	.eof_received = tpl_eof,
	.connection_lost = tpl_lost,
	.pause_writing = tpl_pause,
	.resume_writing = tpl_resume,
};

/* The one symbol aloopd looks for. */
ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "callback",
	.version = "1.0",
	.description = "shout: lines back in upper case, as callbacks",
	.init = tpl_init,
	.fini = tpl_fini,
	.stream = &tpl_protocol,
	.stream_factory = tpl_new,
};
