/*
 * The plugin ABI of aloopd: what a protocol plugin (a shared object that
 * aloopd dlopen()s) exports.  It includes <aloop/host.h>, the typed
 * getters through which a plugin reads its own `settings` group and the
 * readers of aloopd's counters.  A plugin includes <aloop/aloop.h> for the
 * library and this header; <aloop/aloop.h> does not bring it in, since
 * only aloopd provides the host functions.
 *
 * A plugin defines exactly one exported descriptor:
 *
 *	static int  echo_init(const struct aloop_plugin_env *,
 *	    const struct aloop_settings *, void **);
 *	...
 *	ALOOP_PLUGIN_EXPORT = {
 *		ALOOP_PLUGIN_HEADER,
 *		.name = "echo",
 *		.version = "1.0",
 *		.description = "RFC 862 echo",
 *		.init = echo_init,
 *		.fini = echo_fini,
 *		.stream_task = echo_task,
 *	};
 *
 * where echo_task(instance, reader, writer) serves one connection as a
 * task, reading and writing as a straight function (see stream_task
 * below); or, the low-level way, .stream = &echo_stream and
 * .stream_factory = echo_new_conn, a table of protocol callbacks.  A
 * plugin whose settings are plain values declares them as a table
 * (.settings and .instance_size, ABI 2.2; host.h's ALOOP_SETTING_*) and
 * lets aloopd make its instance instead of writing init.
 *
 * and is built, outside aloop's tree, with
 *
 *	cc -shared -fPIC $(pkg-config --cflags --libs aloop) my.c -o my.so
 *
 * (add -fvisibility=hidden so that the descriptor is the only export;
 * inside the tree, a libtool module with `-module -avoid-version
 * -export-symbols-regex '^aloop_plugin$'`).  pkg-config --variable=plugindir
 * aloop says where it goes.  It needs not link -laloop: every aloop_*
 * symbol, the host functions included, is resolved from the aloopd
 * process that loads it.  plugins/template/ in aloop's source is a complete
 * plugin to copy, and aloop-plugin(7) builds it step by step.
 *
 * Processes: aloopd runs plugins only in its worker processes (and, to
 * check them, in short-lived children of `aloopd -t` and of a reload).
 * Each worker creates one instance (init) per listener, and every call
 * into a plugin for that instance -- init, the factories, every protocol
 * callback, every stream_task, fini -- happens on that worker's one loop
 * thread (tasks run there too, one at a time).  Instances
 * never meet another thread, so a plugin needs no locks as long as it
 * keeps its mutable state in the instance and the per-connection state.
 * Nothing a plugin keeps in memory is shared with another worker.
 *
 * Crashes and hangs: a plugin that crashes (a fault, abort()) ends its
 * worker process and every connection that worker held; the master logs
 * the listener, the plugin and the callback it was in, and starts a
 * replacement at once.  A callback that never returns stops the worker's
 * loop; after worker_stall_timeout the master kills that worker and
 * replaces it the same way.  Other workers' clients see nothing.
 *
 * Reload: every reload starts a new generation of workers, which load the
 * plugin afresh from disk (a rebuilt .so takes effect) and make new
 * instances; the old generation's instances serve their connections to
 * the end, on the old code, then fini runs and the old workers exit.  No
 * instance state survives a reload: keep what must last outside aloopd.
 *
 * Lifetime: init -> (factory -> protocol callbacks, or stream_task)* ->
 * fini.  fini runs once the listener is gone, every connection it
 * accepted has seen connection_lost, and every stream_task has returned.  A plugin is never unloaded while an instance is alive.
 *
 * The state a factory makes is handed to every callback as @state; use
 * that.  aloop_transport_get_protocol_state() on a connection aloopd
 * accepted returns aloopd's own wrapper around it, not the plugin's state.
 *
 * What a plugin opens itself -- an upstream connection, a subprocess, a
 * timer -- is not the listener's: fini may run while such a transport is
 * still closing, and its connection_lost (or a timer) may come after fini
 * returned.  Such a plugin keeps its instance alive until the last of them
 * is gone (a reference count), aborts what is left in fini, and links with
 * -Wl,-z,nodelete so that its code stays mapped for those last callbacks
 * (plugins/proxy.c and plugins/exec.c do all three).
 */
#ifndef ALOOP_PLUGIN_H
#define ALOOP_PLUGIN_H

#include <stdint.h>

#include <aloop/common.h>
#include <aloop/protocol.h>
#include <aloop/version.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_loop;
struct aloop_settings;

/** The name of the one symbol a plugin exports. */
#define ALOOP_PLUGIN_SYMBOL	"aloop_plugin"
/** "ALPG": tells a descriptor from any other data behind the symbol. */
#define ALOOP_PLUGIN_MAGIC	0x414c5047u

/*
 * The build signature stamped into every descriptor: the headers' version
 * and the data model.  The loader refuses a plugin whose data model differs
 * from its own (a 32-bit build loaded into a 64-bit daemon cannot work) and
 * quotes the rest in its messages.
 */
#define ALOOP__STR2(x)		#x
#define ALOOP__STR(x)		ALOOP__STR2(x)
#define ALOOP_PLUGIN_BUILD						\
	"aloop " ALOOP_VERSION_STRING " ABI "				\
	ALOOP__STR(ALOOP_PLUGIN_ABI_MAJOR) "."				\
	ALOOP__STR(ALOOP_PLUGIN_ABI_MINOR)				\
	" ptr" ALOOP__STR(__SIZEOF_POINTER__)				\
	" long" ALOOP__STR(__SIZEOF_LONG__)

/** How a listener uses the plugin (aloop_plugin_env.type). */
#define ALOOP_PLUGIN_STREAM	1	/* TCP, UNIX stream, TLS */
#define ALOOP_PLUGIN_DATAGRAM	2	/* UDP */

/**
 * What the daemon tells init about the instance it is making.  Borrowed for
 * the duration of init; copy what you keep.  Fields are only appended;
 * @size says how many this daemon filled.
 */
struct aloop_plugin_env {
	size_t			 size;		/* sizeof(*env) */
	/*
	 * The worker's loop, or NULL when aloopd only validates the settings
	 * (aloopd -t, and before a reload is accepted): init must then check
	 * its settings, may allocate, must not schedule anything, and its
	 * instance goes to fini at once.
	 */
	struct aloop_loop	*loop;
	const char		*listener;	/* the listener's name */
	int			 type;		/* ALOOP_PLUGIN_STREAM... */
	unsigned		 worker;	/* 0 .. workers - 1 */
	unsigned		 workers;
};

/**
 * Make an instance for one listener on one worker.  Read and check every
 * setting in @settings (report each problem with aloop_settings_error(),
 * which gives the operator `file:line: path "value": message`, and reject
 * names you do not know with aloop_settings_check_names()), set *@instance
 * (may be NULL) and return 0; or return a negative ALOOP_E* code, usually
 * ALOOP_ECONFIG, after reporting why.  @settings is borrowed for the call.
 */
typedef int (*aloop_plugin_init_fn)(const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance);

/** Free an instance; no connection of it is left.  May be NULL. */
typedef void (*aloop_plugin_fini_fn)(void *instance);

struct aloop_stream_reader;
struct aloop_stream_writer;

/**
 * A stream connection served as a task (ABI 2.1): aloopd runs this, on
 * the worker's loop thread, as a task of its own (<aloop/task.h>) for
 * every connection of a stream listener (TLS: after the handshake), with
 * a reader and a writer (<aloop/streams.h>) borrowed until it returns.
 * Inside it, the "task only" functions suspend only this connection:
 * aloop_stream_readline(), aloop_stream_drain(), aloop_sleep(),
 * aloop_await() on any future, aloop_open_connection().  Returning ends
 * the connection: what was written is still sent, then the transport
 * closes.  Return 0, or a negative ALOOP_E* code, which aloopd logs (at
 * debug level; ALOOP_ECANCELLED is not logged).
 *
 * aloopd cancels the task at the shutdown deadline (and when the worker
 * stops): the await it is in returns ALOOP_ECANCELLED, and the function
 * should clean up and return; the connection is aborted meanwhile, so
 * what it writes then is lost.  When the client goes, or a listener
 * timeout (idle_timeout and the rest) closes the connection, reads see
 * EOF (an empty result) or the error it was lost with, and writes and
 * drain fail: return then.  Flow control: aloop_stream_drain() after
 * writes waits while the client is slow to read, and the reader stops
 * reading past twice its limit (ALOOP_STREAM_LIMIT_DEFAULT), so memory
 * stays bounded by what the function itself keeps.
 *
 * The task's stack is the descriptor's stream_task_stack bytes, or
 * ALOOP_TASK_STACK_DEFAULT; only the pages touched cost memory.  A
 * function that overflows it hits the guard page below, and its worker
 * dies of SIGSEGV as for any crash; the master names the listener, the
 * plugin and "stream_task".
 */
typedef int (*aloop_plugin_stream_task_fn)(void *instance,
    struct aloop_stream_reader *r, struct aloop_stream_writer *w);

/**
 * The descriptor.  Fill it with ALOOP_PLUGIN_HEADER first; fields are only
 * ever appended (the loader reads a shorter struct of an older minor ABI
 * with the missing fields zero).
 *
 * A stream listener (TCP, UNIX, TLS) runs @stream_task as a task per
 * connection (ABI 2.1, the easy way), or drives the callbacks of @stream
 * with per-connection state from @stream_factory(instance, &state) (the
 * low-level way): a plugin has one of the two forms, never both.  A
 * datagram listener (UDP) has one endpoint per worker, driven by
 * @datagram with state from @datagram_factory(instance, &state).  A
 * plugin provides a stream form, a datagram one or both; the daemon
 * refuses a listener whose type the plugin lacks.
 */
struct aloop_plugin {
	/* These four never move: the loader reads them before anything else. */
	uint32_t			 magic;		/* ALOOP_PLUGIN_MAGIC */
	uint16_t			 abi_major;
	uint16_t			 abi_minor;
	uint32_t			 size;		/* sizeof, as built */
	const char			*build;		/* ALOOP_PLUGIN_BUILD */

	const char			*name;		/* short: "echo" */
	const char			*version;	/* the plugin's own */
	const char			*description;	/* one line */
	aloop_plugin_init_fn		 init;		/* NULL: no settings */
	aloop_plugin_fini_fn		 fini;		/* may be NULL */
	const struct aloop_protocol	*stream;
	aloop_protocol_factory_fn	 stream_factory;
	const struct aloop_datagram_protocol *datagram;
	aloop_protocol_factory_fn	 datagram_factory;
	/* ABI 2.1 */
	aloop_plugin_stream_task_fn	 stream_task;	/* or stream */
	size_t				 stream_task_stack; /* 0: default */
	/*
	 * ABI 2.2: the instance as a struct of @instance_size bytes whose
	 * fields the table @settings (host.h, aloop_setting_def) fills.
	 * aloopd then makes each instance itself: it allocates the struct
	 * zeroed, applies the table to the listener's settings (a name not
	 * in it, a wrong type or a value out of range is reported with
	 * file:line, as aloopd's own settings are, and the listener
	 * refused), and only then calls @init, if any, with *instance
	 * already pointing to the struct: init checks what the table
	 * cannot say and must leave *instance as it found it.  After @fini
	 * (may be NULL) aloopd frees the table's strings and the struct.
	 * NULL: init makes the instance, as before.
	 */
	const struct aloop_setting_def	*settings;
	size_t				 instance_size;
};

/** The first initialisers of every descriptor. */
#define ALOOP_PLUGIN_HEADER						\
	.magic = ALOOP_PLUGIN_MAGIC,					\
	.abi_major = ALOOP_PLUGIN_ABI_MAJOR,				\
	.abi_minor = ALOOP_PLUGIN_ABI_MINOR,				\
	.size = sizeof(struct aloop_plugin),				\
	.build = ALOOP_PLUGIN_BUILD

/** Declares the exported descriptor; follow it with `= { ... };`. */
#define ALOOP_PLUGIN_EXPORT						\
	extern ALOOP_API const struct aloop_plugin aloop_plugin;	\
	const struct aloop_plugin aloop_plugin

#ifdef __cplusplus
}
#endif

/* What aloopd offers the plugins it loads: settings getters, counters. */
#include <aloop/host.h>

#endif /* ALOOP_PLUGIN_H */
