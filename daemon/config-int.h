/*
 * aloopd's configuration: aloop.conf (libconfig) read into typed structs
 * and validated completely -- every setting, every listen address, the TLS
 * files, and each listener's plugin loaded with its settings checked by the
 * plugin's own init -- before anything uses it.
 *
 * Life of a configuration, at start and on every reload:
 *
 *	struct config *cfg;
 *	if (config_load(path, &cfg) != 0) {
 *		for (size_t i = 0; i < cfg->nerrors; i++)
 *			log the line cfg->errors[i];
 *		config_free(cfg);	// a reload keeps the old config
 *	} else
 *		run with cfg, or swap it in for the old one;
 *
 * A loaded config is immutable and owned by one party (the runtime); it
 * holds the libconfig tree the plugins' settings point into and a
 * reference on every plugin it names, so it must be freed only after the
 * plugin instances made from it are gone (their connections drained).
 * Paths in it (files, plugin_path) are already resolved against the
 * directory of the configuration file, so the daemon may chdir freely.
 * Any thread may read a loaded config; none may change it, except that
 * plugin init calls made from it (on the workers) may append to errors[]
 * under a lock -- read errors[] only once those calls are done.
 */
/*
 * (Not "config.h": that name is autoconf's, and a quoted include looks in
 * this directory first.)
 */
#ifndef ALOOPD_CONFIG_INT_H
#define ALOOPD_CONFIG_INT_H

#include <stddef.h>
#include <stdio.h>

#include "access.h"
#include "tls_cache.h"

struct plugin;
struct aloop_settings;
struct aloop_tls_context;

#define CONFIG_LOG_STDERR	0
#define CONFIG_LOG_SYSLOG	1

#define CONFIG_TCP		1	/* stream: TCP or UNIX, maybe TLS */
#define CONFIG_UDP		2	/* datagram */

/* What a listener at max_connections does with the next client. */
#define CONFIG_OVERFLOW_CLOSE	0	/* accept and reset it at once */
#define CONFIG_OVERFLOW_WAIT	1	/* leave it in the kernel's backlog */

#define CONFIG_ADDR_INET	1
#define CONFIG_ADDR_UNIX	2

#define CONFIG_WORKERS_MAX	1024

/* The daemon group. */
struct config_daemon {
	unsigned	 workers;	/* >= 1; "auto" resolved to the CPUs */
	int		 log_level;	/* ALOOP_LOG_* */
	int		 log_target;	/* CONFIG_LOG_* */
	char		*pidfile;	/* NULL: none */
	char		*user;		/* NULL: keep the starting user */
	char		*group;		/* NULL: the user's primary group */
	char	       **plugin_path;	/* directories searched in order; the */
	size_t		 nplugin_path;	/* built-in plugindir comes last */
	double		 shutdown_timeout; /* seconds the drain may take */
	double		 worker_stall_timeout; /* silent worker killed; 0: never */
	int		 access_log;	/* ALOG_*: off, stderr, syslog, file */
	char		*access_log_path; /* ALOG_FILE: absolute */
	int		 access_log_format; /* ALOG_KV or ALOG_JSON */
};

/* One entry of a listener's `listen` list. */
struct config_address {
	int		 kind;		/* CONFIG_ADDR_* */
	char		*text;		/* as written: "127.0.0.1:7007" */
	char		*host;		/* INET: NULL for "*" (every
					 * interface), else a literal or a
					 * name, without brackets */
	char		*port;		/* INET: decimal, for create_server */
	unsigned	 port_num;	/* INET: 1..65535 */
	char		*path;		/* UNIX: absolute path of the socket */
	unsigned	 index;		/* its position in `listen` */
};

/* An extra certificate chosen by SNI. */
struct config_sni {
	char		*certificate;
	char		*key;
	char		*ocsp_response;	/* DER, stapled; NULL: none */
};

/* A listener's `tls` group; checked: files readable, key matches. */
struct config_tls {
	char		*certificate;	/* PEM chain */
	char		*key;
	char		*ca;		/* NULL: no client CA trusted */
	int		 verify;	/* ALOOP_TLS_VERIFY_*, for clients */
	char		*min_version;	/* "TLSv1.2" or "TLSv1.3" */
	char		*ciphers;	/* NULL: the library's default */
	char		*ciphersuites;	/* NULL: the library's default */
	char	       **alpn;		/* preference order */
	size_t		 nalpn;
	struct config_sni *sni;
	size_t		 nsni;
	int		 session_tickets;
	unsigned long	 session_cache;	/* sessions per worker; 0: off */
	double		 session_timeout; /* seconds; also the key epoch */
	char		*ocsp_response;	/* DER, stapled; NULL: none */
	/* Built from the above by the library; the config's reference. */
	struct aloop_tls_context *ctx;
};

struct config_listener {
	char		*name;		/* unique in the config */
	char		*protocol;	/* as written: a name or a path */
	struct plugin	*plugin;	/* loaded; the config's reference */
	int		 type;		/* CONFIG_TCP or CONFIG_UDP */
	struct config_address *listen;	/* at least one */
	size_t		 nlisten;
	int		 backlog;
	int		 reuse_port;	/* SO_REUSEPORT: a socket per worker */
	int		 tcp_nodelay;
	int		 keepalive;
	int		 mode;		/* UNIX: file mode, -1 to leave it */
	char		*owner;		/* UNIX: "user[:group]", or NULL */
	struct config_tls *tls;		/* NULL: plain */
	unsigned long	 max_connections; /* 0: unlimited */
	double		 idle_timeout;	/* seconds; 0: none */
	/* Bounds on a slow or silent peer, in seconds; 0: none. */
	double		 handshake_timeout;	/* TLS */
	double		 first_byte_timeout;
	double		 write_timeout;
	/* Admission on accept; rates are per second, 0: unlimited. */
	int		 overflow;	/* CONFIG_OVERFLOW_* */
	unsigned long	 max_per_source;	/* 0: unlimited */
	unsigned long	 connection_rate;
	unsigned long	 connection_rate_per_source;
	unsigned long	 datagram_rate_per_source;
	struct access_list access;	/* allow and deny, in order */
	int		 access_log;	/* log its connections (if logging) */
	/* A PROXY protocol header opens every connection (a balancer's). */
	int		 proxy_protocol;
	double		 proxy_protocol_timeout;	/* seconds, > 0 */
	/* The `settings` group for the plugin's init (empty if absent). */
	const struct aloop_settings *settings;
	const char	*file;		/* where the listener is written */
	int		 line;
};

struct config {
	char		*path;		/* the file, as given */
	struct config_daemon daemon;
	struct config_listener *listeners;
	size_t		 nlisteners;
	/* The TLS contexts the listeners share, and how many were built. */
	struct tls_cache_stats tls;
	/* Every problem found, one line each: file:line: path "value": what */
	char	       **errors;
	size_t		 nerrors;
	void		*priv;		/* the libconfig tree and bookkeeping */
};

/*
 * Read, validate and load @path: parse the file, check every setting, open
 * every plugin and have it validate its settings.  Always sets *@cfg (NULL
 * only when memory ran out).  Returns 0 if the configuration is valid;
 * ALOOP_ECONFIG if it is not, with every error in (*@cfg)->errors; or
 * ALOOP_ENOMEM.  Either way the caller frees *@cfg.
 */
int config_load(const char *path, struct config **cfg);

/*
 * Like config_load() but without loading the plugins: everything the file
 * itself says is checked, the TLS contexts built.  What aloopd's master
 * does: it never loads plugin code.
 */
int config_parse(const char *path, struct config **cfg);

/*
 * aloopd -T: write @cfg (parsed without errors) to @out as aloopd reads
 * it, in aloop.conf syntax, with includes in place and every setting
 * that has a default shown at it.  0, or -1 on a write error.  The tree
 * is changed: print it last.
 */
int config_dump(struct config *cfg, FILE *out);

/* What config_load_plugins() is about to do for a listener. */
#define CONFIG_STEP_LOAD	1	/* dlopen: the plugin's constructors */
#define CONFIG_STEP_INIT	2	/* its init, checking the settings */

struct config_plugin_hooks {
	/* Also run each plugin's init on its settings (with no loop). */
	int	 validate;
	/* NULL, or told of each step before it runs (@file: the plugin). */
	void	(*step)(size_t listener, int step, const char *file,
		    void *arg);
	void	*arg;
};

/*
 * Load the plugin of every listener of a parsed @cfg (dlopen, descriptor
 * and type checks), each once; with @h->validate, also have each check
 * its settings.  Runs plugin code: aloopd calls it only in workers and in
 * the children that check a configuration.  0, ALOOP_ECONFIG with the
 * problems appended to errors[], or ALOOP_ENOMEM.
 */
int config_load_plugins(struct config *cfg,
    const struct config_plugin_hooks *h);

/*
 * The file listener @i's plugin would be loaded from (found on the plugin
 * path, not loaded): *@file for the caller to free.  0 or ALOOP_ENOENT.
 */
int config_plugin_file(const struct config *cfg, size_t i, char **file);

/* Append @line to @cfg's errors (the checker child's findings). */
void config_add_error(struct config *cfg, const char *line);

/* The listener called @name, or NULL. */
const struct config_listener *config_find_listener(const struct config *cfg,
    const char *name);

/* Free @cfg (NULL is fine), dropping its references on the plugins. */
void config_free(struct config *cfg);

#endif /* ALOOPD_CONFIG_INT_H */
