/*
 * The plugin ABI of aloopd: what a protocol plugin (a shared object that
 * aloopd dlopen()s) exports, and the typed getters through which it reads
 * its own `settings` group from aloop.conf.
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
 *		.stream = &echo_stream, .stream_factory = echo_new_conn,
 *	};
 *
 * and is built, outside aloop's tree, with
 *
 *	cc -shared -fPIC $(pkg-config --cflags --libs aloop) my.c -o my.so
 *
 * (add -fvisibility=hidden so that the descriptor is the only export;
 * inside the tree, a libtool module with `-module -avoid-version
 * -export-symbols-regex '^aloop_plugin$'`).  pkg-config --variable=plugindir
 * aloop says where it goes.  It needs not link -laloop: every aloop_*
 * symbol, the settings getters included, is resolved from the aloopd
 * process that loads it.  plugins/template/ in aloop's source is a complete
 * plugin to copy, and aloop-plugin(7) builds it step by step.
 *
 * Threads: aloopd creates one instance (init) per listener per worker
 * thread, and every call into a plugin for that instance -- init, the
 * factories, every protocol callback, fini -- happens on that worker's loop
 * thread.  Instances never meet another thread, so a plugin needs no locks
 * as long as it keeps its mutable state in the instance and the
 * per-connection state (not in globals).
 *
 * Lifetime: init -> (factory -> protocol callbacks)* -> fini.  fini runs once
 * the listener is gone and every connection it accepted has seen
 * connection_lost.  A plugin is never unloaded while an instance is alive.
 *
 * The state a factory makes is handed to every callback as @state; use
 * that.  aloop_transport_get_protocol_state() on a connection aloopd
 * accepted returns aloopd's own wrapper around it, not the plugin's state.
 *
 * What a plugin opens itself -- an upstream connection, a subprocess, a
 * timer -- is not the listener's: fini may run while such a transport is
 * still closing, and its connection_lost (or a timer) may come after fini
 * returned and after a reload released the plugin.  Such a plugin keeps
 * its instance alive until the last of them is gone (a reference count),
 * aborts what is left in fini, and links with -Wl,-z,nodelete so that its
 * code stays mapped for those last callbacks (plugins/proxy.c and
 * plugins/exec.c do all three).
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

/**
 * The descriptor.  Fill it with ALOOP_PLUGIN_HEADER first; fields are only
 * ever appended (the loader reads a shorter struct of an older minor ABI
 * with the missing fields zero).
 *
 * A stream listener (TCP, UNIX, TLS) drives @stream with per-connection
 * state from @stream_factory(instance, &state).  A datagram listener (UDP)
 * has one endpoint per worker, driven by @datagram with state from
 * @datagram_factory(instance, &state).  A plugin provides one or both; the
 * daemon refuses a listener whose type the plugin lacks.
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

/* -------------------------------------------------------------- settings */

/*
 * A plugin's `settings` group from aloop.conf, handed over untouched, and
 * every node inside it.  Nodes are borrowed from the daemon for the
 * duration of init only, and so are the strings the getters return: copy
 * what the instance keeps.  The getters may be called from init on any
 * worker thread; the tree is never changed while instances are made.  A
 * NULL node reads as an empty group (a host without a configuration file
 * may pass NULL).
 */

#define ALOOP_SETTINGS_GROUP	1
#define ALOOP_SETTINGS_LIST	2	/* ( ... ) or [ ... ] */
#define ALOOP_SETTINGS_INT	3	/* 64-bit */
#define ALOOP_SETTINGS_DOUBLE	4
#define ALOOP_SETTINGS_STRING	5
#define ALOOP_SETTINGS_BOOL	6

/**
 * The child of group @s called @name, or with @name NULL @s itself; NULL
 * if there is no such child.
 */
ALOOP_API const struct aloop_settings *aloop_settings_get(
    const struct aloop_settings *s, const char *name);

/** ALOOP_SETTINGS_* of @s. */
ALOOP_API int aloop_settings_type(const struct aloop_settings *s);
/** The name of @s inside its group; NULL for list elements. */
ALOOP_API const char *aloop_settings_name(const struct aloop_settings *s);
/** The number of children of a group or list, 0 for a scalar. */
ALOOP_API size_t aloop_settings_count(const struct aloop_settings *s);
/** Child @i of a group or list (in file order), NULL if out of range. */
ALOOP_API const struct aloop_settings *aloop_settings_at(
    const struct aloop_settings *s, size_t i);

/**
 * Typed values of child @name of group @s (or of @s itself, @name NULL).
 * 0 with *@out set; ALOOP_ENOENT if there is no such setting (*@out is
 * untouched, so set the default first); ALOOP_ECONFIG if it has another
 * type, which is reported as an error of the listener's settings already.
 * get_double accepts an integer too; get_string's result is borrowed.
 */
ALOOP_API int aloop_settings_get_int(const struct aloop_settings *s,
    const char *name, long long *out);
ALOOP_API int aloop_settings_get_bool(const struct aloop_settings *s,
    const char *name, int *out);
ALOOP_API int aloop_settings_get_double(const struct aloop_settings *s,
    const char *name, double *out);
ALOOP_API int aloop_settings_get_string(const struct aloop_settings *s,
    const char *name, const char **out);

/**
 * Report a problem with node @s as aloopd reports its own:
 * `file:line: listeners[2].settings.size "9000": <message>` (the value is
 * quoted for scalars).  Lines are collected and shown together; the init
 * that reports should return ALOOP_ECONFIG.
 */
ALOOP_API void aloop_settings_error(const struct aloop_settings *s,
    const char *fmt, ...) ALOOP_PRINTF(2, 3);

/**
 * Report every child of group @s whose name is not in @names (a NULL-ended
 * list) as an unknown setting.  Returns 0, or ALOOP_ECONFIG if any was.
 */
ALOOP_API int aloop_settings_check_names(const struct aloop_settings *s,
    const char *const *names);

/* --------------------------------------------------------------- metrics */

/*
 * aloopd's own counters, for a plugin that exposes them (the shipped
 * metrics plugin serves them to Prometheus).  aloopd keeps one set per
 * listener name per worker, written only by that worker's thread; these
 * functions read them from any thread without a lock, each value whole
 * but not all at one instant.  Like the settings getters they are
 * resolved from the aloopd that loads the plugin.
 */

/**
 * The counters of one listener on one worker.  Every field counts from
 * aloopd's start and only grows (a reload keeps counting), except
 * @connections_active, a gauge.  Fields are only appended; @size says how
 * many this daemon filled.
 */
struct aloop_metrics_listener {
	size_t		 size;		/* sizeof(*m) as aloopd knows it */
	/* The listener's name; valid while the process runs. */
	const char	*listener;
	unsigned	 worker;
	uint64_t	 connections_accepted;	/* handed to the plugin */
	uint64_t	 connections_active;
	uint64_t	 connections_closed;
	/* Payload bytes: what data_received got and what the plugin wrote. */
	uint64_t	 bytes_received;
	uint64_t	 bytes_sent;
	/* Completed, and failed or timed out; TLS listeners only. */
	uint64_t	 tls_handshakes;
	uint64_t	 tls_handshake_failures;
	uint64_t	 plugin_errors;		/* init or factory refused */
};

/** Figures of the whole process. */
struct aloop_metrics_process {
	size_t		 size;		/* see aloop_daemon_metrics_process */
	double		 start_time;	/* seconds since the Epoch */
	double		 uptime;	/* seconds since start_time */
	uint64_t	 reloads;	/* configuration reloads that took */
	uint64_t	 reload_failures; /* reloads refused */
	uint64_t	 open_fds;	/* descriptors open now */
	uint64_t	 resident_bytes; /* resident set size now */
};

typedef int (*aloop_metrics_listener_fn)(
    const struct aloop_metrics_listener *m, void *arg);

/**
 * Call @fn(m, @arg) for each listener on each worker that aloopd has
 * opened since it started, retired ones included, worker by worker.  @m
 * is borrowed for the call.  A nonzero return of @fn stops the walk and
 * is returned; otherwise 0.  Any thread.
 */
ALOOP_API int aloop_daemon_metrics_listeners(aloop_metrics_listener_fn fn,
    void *arg);

/**
 * Fill @p with the process figures.  Set @p->size to sizeof(*p) first:
 * aloopd fills the fields that fit and sets @p->size to what it filled.
 * Returns 0; ALOOP_EINVAL without a size; or another negative ALOOP_E*
 * code if the kernel's figures (open_fds, resident_bytes) could not be
 * read: those are then 0, the others are still right.  Any thread.
 */
ALOOP_API int aloop_daemon_metrics_process(struct aloop_metrics_process *p);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_PLUGIN_H */
