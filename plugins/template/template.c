/*
 * template: the plugin to copy when you start your own.  It speaks a small
 * line-based protocol, "shout": the server greets, then answers every line
 * in upper case; "QUIT" gets "BYE" and the connection closes.  It is
 * written as a task: aloopd runs tpl_serve() once per connection, on a
 * stack of its own, and each read suspends only that connection, so the
 * protocol reads top to bottom.  Everything a real plugin needs is here,
 * each part once: settings checked at start-up, per-instance state, a
 * bound on what a client can make us hold, write flow control, and the
 * cleanup in fini.  aloop-plugin(7) builds it step by step; callback.c is
 * the same protocol written the low-level way, as protocol callbacks.
 *
 * Build it outside aloop's tree with
 *	cc -shared -fPIC $(pkg-config --cflags --libs aloop) template.c \
 *	    -o template.so
 * and name it in aloop.conf:
 *	{ name = "shout"; protocol = "template"; listen = [ "127.0.0.1:7000" ];
 *	  settings = { greeting = "hello"; max_line = 1024; }; }
 *
 * Rename it: change the file, the .name below and the prefix "tpl_".
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

/*
 * One instance per listener per worker.  Every task of an instance runs
 * on that worker's one loop thread, one at a time, so no field needs a
 * lock.
 */
struct tpl {
	size_t		 max_line;
	unsigned long	 served;	/* connections so far, for the log */
	char		 greeting[];	/* copied, "\r\n" added */
};

/*
 * Read and check the settings, then make the instance.  Runs at start-up,
 * on every reload, and for aloopd -t (then env->loop is NULL and the
 * instance goes straight to fini): report every problem, start nothing.
 */
static int
tpl_init(const struct aloop_plugin_env *env, const struct aloop_settings *s,
    void **instance)
{
	static const char *const names[] = { "greeting", "max_line", NULL };
	const char *greeting = "hello";
	long long max = 1024;
	/* A misspelt setting is an error, not silently ignored. */
	int bad = aloop_settings_check_names(s, names) != 0;
	struct tpl *tpl;

	(void)env;	/* the loop, the listener's name, the worker's number */
	/* ALOOP_ENOENT leaves the default; a wrong type is reported. */
	bad |= aloop_settings_get_string(s, "greeting", &greeting) ==
	    ALOOP_ECONFIG;
	bad |= aloop_settings_get_int(s, "max_line", &max) == ALOOP_ECONFIG;
	if (max < 1 || max > 65536) {
		aloop_settings_error(aloop_settings_get(s, "max_line"),
		    "out of range (1..65536)");
		return ALOOP_ECONFIG;
	}
	if (bad)
		return ALOOP_ECONFIG;
	if ((tpl = calloc(1, sizeof(*tpl) + strlen(greeting) + 3)) == NULL)
		return ALOOP_ENOMEM;
	tpl->max_line = (size_t)max;
	sprintf(tpl->greeting, "%s\r\n", greeting);	/* sized above */
	*instance = tpl;
	return 0;
}

/* Every task of the instance has returned by now. */
static void
tpl_fini(void *instance)
{
	struct tpl *tpl = instance;

	if (tpl != NULL && tpl->served > 0)
		aloop_log(ALOOP_LOG_INFO, "template: served %lu connections",
		    tpl->served);
	free(tpl);
}

/*
 * One connection, from greeting to close, as a task: each read suspends
 * this connection alone.  Returning closes it, after what was written is
 * sent; an error (the client went away) just ends it.
 */
static int
tpl_serve(void *instance, struct aloop_stream_reader *r,
    struct aloop_stream_writer *w)
{
	struct tpl *tpl = instance;
	struct aloop_bytes *l = NULL;
	int rc;

	tpl->served++;
	/* A longer line fails readline: a client can make us hold no more. */
	aloop_stream_reader_set_limit(r, tpl->max_line);
	rc = aloop_stream_write(w, tpl->greeting, strlen(tpl->greeting));
	/* Each line ends in "\n"; EOF ends the loop (and drops a last part). */
	while (rc == 0 && (rc = aloop_stream_readline(r, &l)) == 0 &&
	    l->len > 0 && l->data[l->len - 1] == '\n') {
		l->len -= l->len > 1 && l->data[l->len - 2] == '\r' ? 2 : 1;
		l->data[l->len] = '\0';
		if (strcmp((char *)l->data, "QUIT") == 0) {
			free(l);
			return aloop_stream_write(w, "BYE\r\n", 5);
		}
		for (size_t i = 0; i < l->len; i++)
			l->data[i] = (unsigned char)toupper(l->data[i]);
		l->data[l->len++] = '\n';
		/*
		 * drain: a client that sends lines but never reads the
		 * answers waits here, rather than filling our memory.
		 */
		if ((rc = aloop_stream_write(w, l->data, l->len)) == 0)
			rc = aloop_stream_drain(w);
		free(l);
		l = NULL;
	}
	free(l);
	if (rc == ALOOP_ELIMIT)
		return aloop_stream_write(w, "ERR line too long\r\n", 19);
	return rc;
}

/* The one symbol aloopd looks for. */
ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "template",
	.version = "2.0",
	.description = "shout: lines back in upper case (the plugin template)",
	.init = tpl_init,
	.fini = tpl_fini,
	.stream_task = tpl_serve,
};
