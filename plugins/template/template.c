/*
 * template: the plugin to copy when you start your own.  It speaks a small
 * line-based protocol, "shout": the server greets, then answers every line
 * in upper case; "QUIT" gets "BYE" and the connection closes.  It is
 * written as a task: aloopd runs tpl_serve() once per connection, on a
 * stack of its own, and each read suspends only that connection, so the
 * protocol reads top to bottom.  Everything a real plugin needs is here,
 * each part once: settings declared in a table that aloopd reads and
 * checks at start-up, per-instance state, a bound on what a client can
 * make us hold, write flow control, and the last word in fini.  aloop-plugin(7) builds it step by step; callback.c is
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
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

/*
 * One instance per listener per worker, made by aloopd from the table
 * below.  Every task of an instance runs on that worker's one loop
 * thread, one at a time, so no field needs a lock.
 */
struct tpl {
	char		*greeting;	/* a copy, freed by aloopd */
	long long	 max_line;
	unsigned long	 served;	/* connections so far, for the log */
};

/*
 * The settings: each field, its default and its range.  aloopd fills a
 * zeroed struct tpl from it, and reports a misspelt name, a wrong type or
 * a value out of range with the file and line, refusing the listener.
 */
static const struct aloop_setting_def tpl_settings[] = {
	ALOOP_SETTING_STRING(struct tpl, greeting, "hello"),
	ALOOP_SETTING_INT(struct tpl, max_line, 1024, 1, 65536),
	ALOOP_SETTINGS_END
};

/* Every task of the instance has returned by now; aloopd frees it next. */
static void
tpl_fini(void *instance)
{
	struct tpl *tpl = instance;

	if (tpl->served > 0)
		aloop_log(ALOOP_LOG_INFO, "template: served %lu connections",
		    tpl->served);
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
	/* A longer line fails the read: a client can make us hold no more. */
	aloop_stream_reader_set_limit(r, (size_t)tpl->max_line);
	rc = aloop_stream_printf(w, "%s\r\n", tpl->greeting);
	/* Each line without its "\r\n" or "\n", as a C string. */
	while (rc == 0 && (rc = aloop_stream_readline_text(r, &l)) == 0) {
		if (strcmp((char *)l->data, "QUIT") == 0) {
			free(l);
			return aloop_stream_write(w, "BYE\r\n", 5);
		}
		for (size_t i = 0; i < l->len; i++)
			l->data[i] = (unsigned char)toupper(l->data[i]);
		/*
		 * drain: a client that sends lines but never reads the
		 * answers waits here, rather than filling our memory.
		 */
		if ((rc = aloop_stream_printf(w, "%s\n", l->data)) == 0)
			rc = aloop_stream_drain(w);
		free(l);
		l = NULL;
	}
	free(l);	/* what followed the last line's end, if anything */
	if (rc == ALOOP_ELIMIT)
		return aloop_stream_write(w, "ERR line too long\r\n", 19);
	return rc == ALOOP_EINCOMPLETE ? 0 : rc;	/* EOF ends it */
}

/* The one symbol aloopd looks for. */
ALOOP_PLUGIN_EXPORT = {
	ALOOP_PLUGIN_HEADER,
	.name = "template",
	.version = "2.1",
	.description = "shout: lines back in upper case (the plugin template)",
	.settings = tpl_settings,
	.instance_size = sizeof(struct tpl),
	.fini = tpl_fini,
	.stream_task = tpl_serve,
};
