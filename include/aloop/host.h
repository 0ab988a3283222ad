/*
 * The host API of aloopd: what the daemon offers the plugins it loads --
 * typed getters for a plugin's `settings` group and readers of the
 * daemon's counters.  These functions live in the aloopd executable, not
 * in libaloop: a plugin resolves them from the process that loads it, and
 * a program that links libaloop without being aloopd has none of them.
 * <aloop/plugin.h> includes this header; nothing else should.
 */
#ifndef ALOOP_HOST_H
#define ALOOP_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <aloop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_settings;
struct sockaddr;

/* -------------------------------------------------------------- settings */

/*
 * A plugin's `settings` group from aloop.conf, handed over untouched, and
 * every node inside it.  Nodes are borrowed from the daemon for the
 * duration of init only, and so are the strings the getters return: copy
 * what the instance keeps.  The getters may be called from init, in the
 * worker process that makes the instance; the tree never changes.  A
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

/**
 * One entry of a settings table: a setting named @name of type @type
 * (ALOOP_SETTINGS_INT, _BOOL, _DOUBLE or _STRING) that goes into the field
 * at @offset of the caller's struct, which must have the matching C type:
 * long long, int, double, char * respectively.  The default and, for a
 * number, the inclusive bounds sit in the members of the field's type
 * (min and max both 0: any value).  Fill entries with the ALOOP_SETTING_*
 * macros below and end the table with ALOOP_SETTINGS_END.  Plugin ABI 2.2.
 */
struct aloop_setting_def {
	const char	*name;		/* NULL ends the table */
	int		 type;
	size_t		 offset;
	long long	 def_int, min_int, max_int;	/* INT; BOOL: def */
	double		 def_double, min_double, max_double;
	const char	*def_string;	/* STRING: copied; NULL: none */
};

/*
 * Each macro names the setting after the field.  The unevaluated pointer
 * comparison costs nothing and makes the compiler warn ("comparison of
 * distinct pointer types") when the field has another type.
 */
#define ALOOP__SETTING(st, field, t, ctype)				\
	.name = #field, .type = (t),					\
	.offset = offsetof(st, field) +					\
	    0 * sizeof(&((st *)0)->field == (ctype *)0)
/** A long long field, default @def, within [@min, @max]. */
#define ALOOP_SETTING_INT(st, field, d, lo, hi)				\
	{ ALOOP__SETTING(st, field, ALOOP_SETTINGS_INT, long long),	\
	  .def_int = (d), .min_int = (lo), .max_int = (hi) }
/** An int field, 0 or 1, default @def. */
#define ALOOP_SETTING_BOOL(st, field, d)				\
	{ ALOOP__SETTING(st, field, ALOOP_SETTINGS_BOOL, int),		\
	  .def_int = (d) }
/** A double field, default @def, within [@min, @max]. */
#define ALOOP_SETTING_DOUBLE(st, field, d, lo, hi)			\
	{ ALOOP__SETTING(st, field, ALOOP_SETTINGS_DOUBLE, double),	\
	  .def_double = (d), .min_double = (lo), .max_double = (hi) }
/** A char * field, a copy the caller frees with aloop_settings_free(). */
#define ALOOP_SETTING_STRING(st, field, d)				\
	{ ALOOP__SETTING(st, field, ALOOP_SETTINGS_STRING, char *),	\
	  .def_string = (d) }
#define ALOOP_SETTINGS_END	{ .name = NULL }

/**
 * Apply the table @defs to group @s, filling the struct at @base: every
 * field gets its default, then the value of its setting if there is one.
 * Each problem is reported as aloop_settings_error() does (`file:line:`):
 * a name not in the table, a value of the wrong type, one out of range.
 * Returns 0, ALOOP_ECONFIG after reporting every problem, or ALOOP_ENOMEM.
 * The STRING fields are then copies, owned by @base's owner and freed
 * with aloop_settings_free() (also after a failure).  From init only, as
 * every getter.  A plugin whose descriptor carries the table (plugin.h,
 * `settings`) has aloopd do this, and the freeing, for it.
 */
ALOOP_API int aloop_settings_read(const struct aloop_settings *s,
    const struct aloop_setting_def *defs, void *base);

/** Free the STRING fields @defs filled in @base, setting them NULL. */
ALOOP_API void aloop_settings_free(const struct aloop_setting_def *defs,
    void *base);

/* ------------------------------------------------------------- listeners */

/**
 * The name of the listener that makes aloopd listen on @sa (@len bytes;
 * AF_INET, AF_INET6 or AF_UNIX) for @type (ALOOP_PLUGIN_STREAM or
 * ALOOP_PLUGIN_DATAGRAM), or NULL if none does -- for a plugin that
 * connects somewhere and must not connect to aloopd itself, where every
 * connection would make another (the proxy's upstreams).
 *
 * The listeners are those of the configuration @s comes from: a plugin
 * checked by `aloopd -t` or before a reload sees the configuration being
 * checked, not the running one.  @s is any node of the plugin's settings,
 * so the function may be called where those may, from init only.  An
 * address matches a listener on the same port bound to it, to the
 * unspecified address of its family (0.0.0.0, ::) or to "*" when it is an
 * address of this host (loopback, or on an interface); an unspecified @sa
 * matches every listener of its family on its port; IPv4-mapped IPv6
 * addresses count as IPv4.  A UNIX @sa matches a listener of the same
 * path.  Listen addresses that are host names are resolved on the call,
 * as aloopd resolves them when it binds them, so a call may block as long
 * as that.  The name returned is borrowed like the settings.
 */
ALOOP_API const char *aloop_daemon_listener_at(const struct aloop_settings *s,
    int type, const struct sockaddr *sa, size_t len);

/* --------------------------------------------------------------- metrics */

/*
 * aloopd's own counters, for a plugin that exposes them (the shipped
 * metrics plugin serves them to Prometheus).  aloopd keeps one set per
 * listener name per worker slot in memory shared by its processes,
 * written only by the worker that counts; these functions read every
 * worker's from any of them, without a lock, each value whole but not all
 * at one instant.  A worker that dies and is replaced keeps its slot, and
 * its totals stay counted.
 */

/**
 * The counters of one listener on one worker slot (0 .. workers - 1).
 * Every field counts from aloopd's start and only grows (a reload, a
 * worker's restart and its generations add up), except
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
	/* Reset on accept, before any plugin or TLS work, by why. */
	uint64_t	 refused_full;		/* max_connections, "close" */
	uint64_t	 refused_source;	/* max_connections_per_source */
	uint64_t	 refused_rate;		/* a connection_rate setting */
	/* Datagrams dropped unread: datagram_rate_per_source. */
	uint64_t	 datagrams_dropped;
	/* Connections the daemon ended, by which of its timeouts. */
	uint64_t	 timeouts_idle;
	uint64_t	 timeouts_first_byte;
	uint64_t	 timeouts_write;
	/* Refused by allow and deny: connections reset, datagrams dropped. */
	uint64_t	 refused_access;
	uint64_t	 datagrams_denied;
	/* Access log lines dropped because the log fell behind. */
	uint64_t	 access_log_dropped;
	/* Reset for a PROXY protocol header malformed, absent or late. */
	uint64_t	 refused_proxy_protocol;
	/* Accepted and reset unserved: the worker was out of descriptors. */
	uint64_t	 connections_dropped_descriptors;
};

/**
 * Figures of the daemon.  open_fds and resident_bytes are the calling
 * worker process's own; the rest are the whole daemon's.
 */
struct aloop_metrics_process {
	size_t		 size;		/* see aloop_daemon_metrics_process */
	double		 start_time;	/* seconds since the Epoch */
	double		 uptime;	/* seconds since start_time */
	uint64_t	 reloads;	/* configuration reloads that took */
	uint64_t	 reload_failures; /* reloads refused */
	uint64_t	 open_fds;	/* descriptors open now */
	uint64_t	 resident_bytes; /* resident set size now */
	/* Workers the master replaced, by why the old one ended. */
	uint64_t	 worker_restarts_signal;	/* killed by a signal */
	uint64_t	 worker_restarts_stall;	/* silent too long, killed */
	uint64_t	 worker_restarts_exit;	/* exited with a failure */
};

typedef int (*aloop_metrics_listener_fn)(
    const struct aloop_metrics_listener *m, void *arg);

/**
 * Call @fn(m, @arg) for each listener on each worker slot that aloopd
 * has opened since it started, retired ones included, slot by slot.  @m
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

/**
 * A plugin's own figure for /metrics: set the series @name{@labels} of
 * the listener @listener (its env->listener) on the calling worker to
 * @value, made on first use; the metrics plugin shows it as
 * @name{listener="...",worker="N",@labels} while the worker lives.
 * @name follows Prometheus's rules and ends in "_total" for a counter
 * (@counter 1: a value that only grows); @labels is "" or label="value"
 * pairs joined by commas, values escaped as Prometheus's text format
 * wants.  At most 32 series per worker process, names under 48 bytes,
 * labels under 96.  Returns 0; ALOOP_EINVAL for a bad name, labels or
 * listener; ALOOP_ENOMEM when the table is full; ALOOP_ENOTSUP outside
 * a worker (plugin checks, tests).  The loop's thread.
 */
ALOOP_API int aloop_daemon_metric_set(const char *listener, const char *name,
    const char *labels, int counter, double value);

/** One plugin figure, borrowed for the call of the walker. */
struct aloop_metrics_plugin_series {
	const char	*listener;
	unsigned	 worker;
	const char	*name;
	const char	*labels;	/* "" or label="value",... */
	int		 counter;
	double		 value;
};

typedef int (*aloop_metrics_plugin_fn)(
    const struct aloop_metrics_plugin_series *s, void *arg);

/**
 * Call @fn(s, @arg) for every figure plugins set with
 * aloop_daemon_metric_set in every live worker.  A nonzero return of @fn
 * stops the walk and is returned; otherwise 0.  Any thread.
 */
ALOOP_API int aloop_daemon_metrics_plugins(aloop_metrics_plugin_fn fn,
    void *arg);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_HOST_H */
