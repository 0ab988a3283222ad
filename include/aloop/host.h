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

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_HOST_H */
