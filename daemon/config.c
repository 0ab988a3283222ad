/*
 * aloop.conf: libconfig's tree turned into the typed structs of
 * config-int.h by a table per group (name, type, bounds, default, field),
 * then checked as a whole.  Every problem becomes one line naming the file,
 * the line, the setting's path and its value; all of them are collected, so
 * an operator fixes a file in one round.  This file reads the file, the
 * daemon group and the plugins; config_listener.c the listeners, and
 * config_parse.c the machinery both use.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "accesslog.h"
#include "config-int.h"
#include "config-parse-int.h"
#include "config_listener.h"
#include "plugin_loader.h"
#include "settings-int.h"
#include "tls_cache.h"

/* ---------------------------------------------------------- the daemon */

static unsigned
cpu_count(void)
{
	cpu_set_t set;
	long n;

	/* The CPUs we may run on (systemd's CPUAffinity=, taskset), not all. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static void
parse_workers(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_daemon *d = obj;
	long long v;

	if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    strcmp(config_setting_get_string(s), "auto") == 0) {
		d->workers = cpu_count();
		if (d->workers > CONFIG_WORKERS_MAX)
			d->workers = CONFIG_WORKERS_MAX;
		return;
	}
	if (!config_is_int(s)) {
		config_report(s, NULL, "expected a number or \"auto\"");
		return;
	}
	v = config_setting_get_int64(s);
	if (v < 1 || v > CONFIG_WORKERS_MAX) {
		config_report(s, NULL, "out of range (1..%d)",
		    CONFIG_WORKERS_MAX);
		return;
	}
	d->workers = (unsigned)v;
}

static void
parse_plugin_path(struct config *cfg, config_setting_t *s,
    const struct spec *sp, void *obj)
{
	struct config_daemon *d = obj;
	unsigned n;

	if (!config_want_list(s, "directories"))
		return;
	n = (unsigned)config_setting_length(s);
	if ((d->plugin_path = calloc(n + 1, sizeof(char *))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = config_want_string(e, 1);

		if (v == NULL)
			continue;
		if ((d->plugin_path[d->nplugin_path] =
		    config_resolve_path(cfg, v)) == NULL) {
			config_report(e, NULL, "out of memory");
			continue;
		}
		d->nplugin_path++;
	}
}

static const struct enum_name log_levels[] = {
	{ "error", ALOOP_LOG_ERR }, { "err", ALOOP_LOG_ERR },
	{ "warning", ALOOP_LOG_WARNING }, { "notice", ALOOP_LOG_NOTICE },
	{ "info", ALOOP_LOG_INFO }, { "debug", ALOOP_LOG_DEBUG },
	{ NULL, 0 },
};

static const struct enum_name log_targets[] = {
	{ "stderr", CONFIG_LOG_STDERR }, { "syslog", CONFIG_LOG_SYSLOG },
	{ NULL, 0 },
};

#define D(f)	offsetof(struct config_daemon, f)
static const struct enum_name access_log_formats[] = {
	{ "kv", ALOG_KV }, { "json", ALOG_JSON }, { NULL, 0 },
};

/*
 * Whether the access log file @path opens for appending, as the master
 * opens it: 0, or -1 with errno set.
 */
static int
access_log_opens(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOCTTY | O_NONBLOCK, 0640);

	if (fd == -1)
		return -1;
	close(fd);
	return 0;
}

/* "off", "stderr", "syslog" or a file, opened now as a start would. */
static void
parse_access_log(struct config *cfg, config_setting_t *s,
    const struct spec *sp, void *obj)
{
	struct config_daemon *d = obj;
	const char *v;
	char *path;

	(void)sp;
	if ((v = config_want_string(s, 1)) == NULL)
		return;
	if (strcmp(v, "off") == 0)
		d->access_log = ALOG_OFF;
	else if (strcmp(v, "stderr") == 0)
		d->access_log = ALOG_STDERR;
	else if (strcmp(v, "syslog") == 0)
		d->access_log = ALOG_SYSLOG;
	else {
		if ((path = config_resolve_path(cfg, v)) == NULL) {
			config_report(s, NULL, "out of memory");
			return;
		}
		if (access_log_opens(path) < 0) {
			config_report(s, NULL, "cannot open %s: %s", path,
			    strerror(errno));
			free(path);
			return;
		}
		d->access_log = ALOG_FILE;
		free(d->access_log_path);
		d->access_log_path = path;
	}
}

static const struct spec daemon_specs[] = {
	{ SPEC("workers", T_CUSTOM, D(workers)), .parse = parse_workers },
	{ SPEC("log_level", T_ENUM, D(log_level)), .names = log_levels,
	    .def = ALOOP_LOG_INFO },
	{ SPEC("log_target", T_ENUM, D(log_target)), .names = log_targets,
	    .def = CONFIG_LOG_STDERR },
	{ SPEC("pidfile", T_PATH, D(pidfile)) },
	{ SPEC("user", T_STRING, D(user)) },
	{ SPEC("group", T_STRING, D(group)) },
	{ SPEC("plugin_path", T_CUSTOM, D(plugin_path)),
	    .parse = parse_plugin_path },
	{ SPEC("shutdown_timeout", T_SECONDS, D(shutdown_timeout)), .min = 0,
	    .max = 86400, .ddef = 30 },
	{ SPEC("worker_stall_timeout", T_SECONDS, D(worker_stall_timeout)),
	    .min = 0, .max = 86400, .ddef = 10 },
	{ SPEC("access_log", T_CUSTOM, 0), .parse = parse_access_log },
	{ SPEC("access_log_format", T_ENUM, D(access_log_format)),
	    .names = access_log_formats, .def = ALOG_KV },
	{ .name = NULL },
};
#undef D

const struct spec *
config_daemon_specs(void)
{
	return daemon_specs;
}

static void
parse_daemon(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	config_parse_group(cfg, s, daemon_specs, &cfg->daemon);
	if (cfg->daemon.user != NULL)
		config_check_owner(config_setting_get_member(s, "user"),
		    cfg->daemon.user, NULL);
	if (cfg->daemon.group != NULL)
		config_check_owner(config_setting_get_member(s, "group"), NULL,
		    cfg->daemon.group);
	if (config_setting_is_group(s) && cfg->daemon.group != NULL &&
	    cfg->daemon.user == NULL)
		config_report(config_setting_get_member(s, "group"), NULL,
		    "needs a user to switch to");
}

static const struct spec root_specs[] = {
	{ SPEC("daemon", T_CUSTOM, 0), .parse = parse_daemon },
	{ SPEC("listeners", T_CUSTOM, 0), .parse = config_parse_listeners,
	    .required = 1 },
	{ .name = NULL },
};

/* ------------------------------------------------------------- plugins */

static void
load_plugin(struct config *cfg, config_setting_t *ls, size_t idx,
    const struct config_plugin_hooks *h, struct strmap *loaded)
{
	struct config_listener *l = &cfg->listeners[idx];
	config_setting_t *pn = config_setting_get_member(ls, "protocol");
	struct strmap_entry *seen;
	struct aloop_plugin_env env;
	const struct aloop_plugin *d;
	size_t before;
	char err[1024], *file;
	void *inst;
	int rc;

	/*
	 * A protocol written as before names the same file, loaded already:
	 * its constructors ran, and looking it up again for each of 100,000
	 * listeners would cost a system call each.
	 */
	if ((seen = strmap_get(loaded, l->protocol)) != NULL) {
		l->plugin = plugin_ref(cfg->listeners[seen->first].plugin);
		rc = 0;
		goto loaded;
	}
	rc = plugin_find(l->protocol, cfg->daemon.plugin_path,
	    cfg->daemon.nplugin_path, priv_of(cfg)->dir, &file, err,
	    sizeof(err));
	if (rc == 0) {
		if (h != NULL && h->step != NULL)
			h->step(idx, CONFIG_STEP_LOAD, file, h->arg);
		rc = plugin_open(file, &l->plugin, err, sizeof(err));
		free(file);
	}
	if (rc != 0) {
		config_report(pn, NULL, "%s", rc == ALOOP_ENOMEM ?
		    "out of memory" : err);
		return;
	}
	/* Without the shortcut, it is only slower. */
	(void)strmap_add(loaded, l->protocol, idx, &seen);
loaded:
	d = plugin_descriptor(l->plugin);
	if (l->type == CONFIG_TCP && d->stream == NULL &&
	    d->stream_task == NULL) {
		config_report(pn, NULL, "plugin \"%s\" has no stream protocol "
		    "for type \"tcp\"", d->name);
		return;
	}
	if (l->type == CONFIG_UDP && d->datagram == NULL) {
		config_report(pn, NULL, "plugin \"%s\" has no datagram "
		    "protocol for type \"udp\"", d->name);
		return;
	}
	if (h == NULL || !h->validate)
		return;
	/* The plugin checks its own settings: an instance with no loop. */
	if (h->step != NULL)
		h->step(idx, CONFIG_STEP_INIT, plugin_file(l->plugin), h->arg);
	memset(&env, 0, sizeof(env));
	env.size = sizeof(env);
	env.loop = NULL;
	env.listener = l->name;
	env.type = l->type == CONFIG_TCP ? ALOOP_PLUGIN_STREAM :
	    ALOOP_PLUGIN_DATAGRAM;
	env.worker = 0;
	env.workers = cfg->daemon.workers;
	before = cfg->nerrors;
	rc = plugin_instance_new(l->plugin, &env, l->settings, &inst);
	if (rc == 0)
		plugin_instance_free(l->plugin, inst);
	if (rc != 0 && cfg->nerrors == before)
		config_report(NODE_SETTING(l->settings), NULL, "plugin \"%s\" "
		    "refused its settings: %s", d->name, aloop_strerror(rc));
}

/* ------------------------------------------------------------ the file */

static int
read_file(struct config *cfg)
{
	struct config_priv *priv = priv_of(cfg);
	char *copy, *parent, *dir;
	int rc;

	/* Resolve the directory now: the daemon may chdir later. */
	if ((copy = strdup(cfg->path)) == NULL)
		return ALOOP_ENOMEM;
	parent = dirname(copy);		/* in copy, or a static "." */
	dir = realpath(parent, NULL);
	if (strcmp(parent, ".") != 0 &&
	    (priv->shown_dir = strdup(parent)) == NULL) {
		free(copy);
		free(dir);
		return ALOOP_ENOMEM;
	}
	free(copy);
	if (dir == NULL) {
		config_add_errorf(cfg, "%s: %s", cfg->path, strerror(errno));
		return ALOOP_ECONFIG;
	}
	priv->dir = dir;
	if ((rc = config_text_read(cfg, &priv->text)) != 0)
		return rc;
	config_init(&priv->lc);
	priv->lc_live = 1;
	/*
	 * Every @include was replaced by checked text already.  Should
	 * libconfig still find one that config_file.c did not take for one,
	 * it must fail rather than open it: below /dev/null every name is
	 * ENOTDIR, whatever it says.
	 */
	config_set_include_dir(&priv->lc, "/dev/null");
	if (config_read_string(&priv->lc, priv->text.text) != CONFIG_TRUE) {
		const char *file = NULL;
		unsigned line = 0;
		char shown[PATH_MAX];

		if (config_error_line(&priv->lc) > 0)
			config_text_where(&priv->text,
			    (unsigned)config_error_line(&priv->lc), &file,
			    &line);
		if (file == NULL)
			file = cfg->path;
		file = config_shown_file(cfg, file, shown, sizeof(shown));
		if (line == 0)
			config_add_errorf(cfg, "%s: %s", file,
			    config_error_text(&priv->lc));
		else
			config_add_errorf(cfg, "%s:%u: %s", file, line,
			    config_error_text(&priv->lc));
		return ALOOP_ECONFIG;
	}
	config_setting_set_hook(config_root_setting(&priv->lc), cfg);
	return 0;
}

static int
load(const char *path, int with_plugins, struct config **cfgp)
{
	struct config *cfg;
	int rc;

	if ((*cfgp = cfg = calloc(1, sizeof(*cfg))) == NULL)
		return ALOOP_ENOMEM;
	if ((cfg->priv = calloc(1, sizeof(struct config_priv))) == NULL ||
	    (cfg->path = strdup(path)) == NULL) {
		config_free(cfg);
		*cfgp = NULL;
		return ALOOP_ENOMEM;
	}
	cfg->daemon.workers = 1;
	config_apply_defaults(daemon_specs, &cfg->daemon);
	if ((rc = read_file(cfg)) != 0)
		return rc;
	tls_cache_begin();
	config_parse_group(cfg, config_root_setting(&priv_of(cfg)->lc),
	    root_specs, cfg);
	/*
	 * A configuration with errors never runs: the contexts of the one
	 * that does stay for the next reload, and this one's go.
	 */
	tls_cache_end(cfg->nerrors == 0 && !priv_of(cfg)->oom, &cfg->tls);
	if (with_plugins) {
		static const struct config_plugin_hooks check = {
			.validate = 1,
		};

		return config_load_plugins(cfg, &check);
	}
	if (priv_of(cfg)->oom)
		return ALOOP_ENOMEM;
	return cfg->nerrors > 0 ? ALOOP_ECONFIG : 0;
}

int
config_plugin_file(const struct config *cfg, size_t i, char **file)
{
	char err[256];

	return plugin_find(cfg->listeners[i].protocol,
	    cfg->daemon.plugin_path, cfg->daemon.nplugin_path,
	    priv_of((struct config *)cfg)->dir, file, err, sizeof(err));
}

int
config_load_plugins(struct config *cfg, const struct config_plugin_hooks *h)
{
	struct strmap loaded = { NULL, 0, 0, NULL };
	config_setting_t *ls;

	/* A file that could not be read has nothing to load. */
	if (!priv_of(cfg)->lc_live)
		return ALOOP_ECONFIG;
	ls = config_lookup(&priv_of(cfg)->lc, "listeners");
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		config_setting_t *e = config_setting_get_elem(ls, (unsigned)i);

		if (cfg->listeners[i].protocol != NULL &&
		    cfg->listeners[i].settings != NULL &&
		    cfg->listeners[i].plugin == NULL)
			load_plugin(cfg, e, i, h, &loaded);
	}
	strmap_clear(&loaded);
	if (priv_of(cfg)->oom)
		return ALOOP_ENOMEM;
	return cfg->nerrors > 0 ? ALOOP_ECONFIG : 0;
}

int
config_parse(const char *path, struct config **cfg)
{
	return load(path, 0, cfg);
}

int
config_load(const char *path, struct config **cfg)
{
	return load(path, 1, cfg);
}

const struct config_listener *
config_find_listener(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].name != NULL &&
		    strcmp(cfg->listeners[i].name, name) == 0)
			return &cfg->listeners[i];
	return NULL;
}

void
config_free(struct config *cfg)
{
	struct config_priv *priv;

	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		config_free_listener(&cfg->listeners[i]);
	free(cfg->listeners);
	free(cfg->daemon.pidfile);
	free(cfg->daemon.access_log_path);
	free(cfg->daemon.user);
	free(cfg->daemon.group);
	for (size_t i = 0; i < cfg->daemon.nplugin_path; i++)
		free(cfg->daemon.plugin_path[i]);
	free(cfg->daemon.plugin_path);
	for (size_t i = 0; i < cfg->nerrors; i++)
		free(cfg->errors[i]);
	free(cfg->errors);
	if ((priv = cfg->priv) != NULL) {
		if (priv->lc_live)
			config_destroy(&priv->lc);
		free(priv->dir);
		free(priv->shown_dir);
		config_text_free(&priv->text);
		strmap_clear(&priv->names);
		strmap_clear(&priv->addrs);
		free(priv);
	}
	free(cfg->path);
	free(cfg);
}
