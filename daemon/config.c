/*
 * aloop.conf: libconfig's tree turned into the typed structs of
 * config-int.h by a table per group (name, type, bounds, default, field),
 * then checked as a whole.  Every problem becomes one line naming the file,
 * the line, the setting's path and its value; all of them are collected, so
 * an operator fixes a file in one round.  This file holds the machinery,
 * the daemon group and the file itself; config_listener.c the listeners.
 */
#include "config.h"

#include <errno.h>
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

#include "config-int.h"
#include "config-parse-int.h"
#include "plugin_loader.h"
#include "settings-int.h"

/* Enough for any honest file; a hostile one cannot make the list grow. */
#define MAX_ERRORS	100
/* Values quoted in messages are cut here. */
#define MAX_QUOTED	120

struct config_priv {
	config_t	 lc;
	int		 lc_live;	/* lc was initialised */
	int		 oom;		/* an error could not be recorded */
	char		*dir;		/* the file's directory, absolute */
	char		*shown_dir;	/* ... as given, for included files'
					 * names; NULL when it is "." */
};


/* -------------------------------------------------------------- errors */

static struct config_priv *
priv_of(struct config *cfg)
{
	return cfg->priv;
}

static struct config *
node_config(const config_setting_t *node)
{
	return config_setting_get_hook(node->config->root);
}

/* listeners[1].listen[0]: the path of @node from the root. */
static void
node_path(const config_setting_t *node, char *buf, size_t len, size_t *used)
{
	const config_setting_t *parent = config_setting_parent(node);

	if (parent == NULL || *used >= len)
		return;
	node_path(parent, buf, len, used);
	if (*used >= len)
		return;
	if (config_setting_name(node) != NULL)
		*used += (size_t)snprintf(buf + *used, len - *used, "%s%s",
		    *used > 0 ? "." : "", config_setting_name(node));
	else
		*used += (size_t)snprintf(buf + *used, len - *used, "[%d]",
		    config_setting_index(node));
}

/* ` "value"` for a scalar node, "" for a group or list. */
static void
node_value(const config_setting_t *node, char *buf, size_t len)
{
	switch (config_setting_type(node)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		snprintf(buf, len, " \"%lld\"", config_setting_get_int64(node));
		break;
	case CONFIG_TYPE_FLOAT:
		snprintf(buf, len, " \"%g\"", config_setting_get_float(node));
		break;
	case CONFIG_TYPE_BOOL:
		snprintf(buf, len, " \"%s\"",
		    config_setting_get_bool(node) ? "true" : "false");
		break;
	case CONFIG_TYPE_STRING:
		snprintf(buf, len, " \"%.*s%s\"", MAX_QUOTED,
		    config_setting_get_string(node),
		    strlen(config_setting_get_string(node)) > MAX_QUOTED ?
		    "..." : "");
		break;
	default:
		buf[0] = '\0';
		break;
	}
}

static void
add_error(struct config *cfg, const char *fmt, ...) ALOOP_PRINTF(2, 3);

void
config_add_error(struct config *cfg, const char *line)
{
	add_error(cfg, "%s", line);
}

/*
 * A plugin's init may report through the settings getters whenever it
 * runs; the error list is the one thing of a loaded config that still
 * changes, and a host that makes instances on several threads (the unit
 * tests do) must not lose a line.
 */
static pthread_mutex_t errors_lock = PTHREAD_MUTEX_INITIALIZER;

static void
add_error(struct config *cfg, const char *fmt, ...)
{
	char **errors, *line;
	va_list ap;
	int n;

	pthread_mutex_lock(&errors_lock);
	if (cfg->nerrors > MAX_ERRORS) {
		pthread_mutex_unlock(&errors_lock);
		return;
	}
	if (cfg->nerrors == MAX_ERRORS) {
		n = asprintf(&line, "%s: too many errors, giving up on the "
		    "rest", cfg->path);
	} else {
		va_start(ap, fmt);
		n = vasprintf(&line, fmt, ap);
		va_end(ap);
	}
	errors = n < 0 ? NULL :
	    reallocarray(cfg->errors, cfg->nerrors + 1, sizeof(*errors));
	if (errors == NULL) {
		/* Still a failure: a config never passes by running out. */
		if (n >= 0)
			free(line);
		priv_of(cfg)->oom = 1;
		pthread_mutex_unlock(&errors_lock);
		return;
	}
	cfg->errors = errors;
	cfg->errors[cfg->nerrors++] = line;
	pthread_mutex_unlock(&errors_lock);
}

void
config_vreport(const config_setting_t *node, const char *child,
    const char *fmt, va_list ap)
{
	struct config *cfg = node_config(node);
	const config_setting_t *at;
	char path[512], value[MAX_QUOTED + 8], what[512], shown[PATH_MAX];
	const char *file = NULL;
	unsigned line = 0;
	size_t used = 0;

	/* Nodes the daemon added (an absent settings group) have no line. */
	for (at = node; at != NULL && (file == NULL || line == 0);
	    at = config_setting_parent(at)) {
		if (file == NULL)
			file = config_setting_source_file(at);
		if (line == 0)
			line = config_setting_source_line(at);
	}
	if (file == NULL)
		file = cfg->path;
	/*
	 * libconfig names an included file as the @include line wrote it,
	 * relative to the main file's directory; show it as the operator
	 * would open it.
	 */
	if (file[0] != '/' && strcmp(file, cfg->path) != 0 &&
	    priv_of(cfg)->shown_dir != NULL) {
		snprintf(shown, sizeof(shown), "%s/%s",
		    priv_of(cfg)->shown_dir, file);
		file = shown;
	}
	path[0] = '\0';
	node_path(node, path, sizeof(path), &used);
	value[0] = '\0';
	if (child != NULL)
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
		    "%s%s", path[0] != '\0' ? "." : "", child);
	else
		node_value(node, value, sizeof(value));
	vsnprintf(what, sizeof(what), fmt, ap);
	if (line > 0)
		add_error(cfg, "%s:%u: %s%s: %s", file, line, path, value,
		    what);
	else
		add_error(cfg, "%s: %s%s: %s", file, path, value, what);
}

void
config_report(const config_setting_t *node, const char *child,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vreport(node, child, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------- generic values */

static char *
resolve_path(struct config *cfg, const char *p)
{
	char *s;

	if (p[0] == '/')
		return strdup(p);
	if (asprintf(&s, "%s/%s", priv_of(cfg)->dir, p) < 0)
		return NULL;
	return s;
}

static int
is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	    config_setting_type(s) == CONFIG_TYPE_INT64;
}

/* A string setting's value, or NULL after reporting that it is not one. */
const char *
config_want_string(const config_setting_t *s, int nonempty)
{
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_report(s, NULL, "expected a string");
		return NULL;
	}
	v = config_setting_get_string(s);
	if (nonempty && v[0] == '\0') {
		config_report(s, NULL, "must not be empty");
		return NULL;
	}
	return v;
}

void
config_set_string(struct config *cfg, config_setting_t *s, char **field,
    char *v)
{
	if (v == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	free(*field);
	*field = v;
}

static void
parse_enum(config_setting_t *s, const struct spec *sp, int *field)
{
	char names[256];
	size_t used = 0;
	const char *v;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		for (const struct enum_name *e = sp->names; e->name; e++)
			if (strcmp(e->name, v) == 0) {
				*field = e->value;
				return;
			}
	}
	names[0] = '\0';
	for (const struct enum_name *e = sp->names; e->name; e++)
		if (used < sizeof(names))
			used += (size_t)snprintf(names + used,
			    sizeof(names) - used, "%s\"%s\"",
			    e == sp->names ? "" : ", ", e->name);
	config_report(s, NULL, "expected one of %s", names);
}

static void
parse_value(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	long long v;
	double d;
	const char *str;

	switch (sp->type) {
	case T_INT:
	case T_ULONG:
		if (!is_int(s)) {
			config_report(s, NULL, "expected an integer");
			return;
		}
		v = config_setting_get_int64(s);
		if (v < sp->min || v > sp->max) {
			config_report(s, NULL, "out of range (%lld..%lld)",
			    sp->min, sp->max);
			return;
		}
		if (sp->type == T_INT)
			*FIELD(obj, sp, int) = (int)v;
		else
			*FIELD(obj, sp, unsigned long) = (unsigned long)v;
		break;
	case T_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
			config_report(s, NULL, "expected true or false");
			return;
		}
		*FIELD(obj, sp, int) = config_setting_get_bool(s) != 0;
		break;
	case T_SECONDS:
		if (is_int(s))
			d = (double)config_setting_get_int64(s);
		else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
			d = config_setting_get_float(s);
		else {
			config_report(s, NULL, "expected a number of seconds");
			return;
		}
		if (!(d >= (double)sp->min && d <= (double)sp->max)) {
			config_report(s, NULL, "out of range (%lld..%lld "
			    "seconds)", sp->min, sp->max);
			return;
		}
		*FIELD(obj, sp, double) = d;
		break;
	case T_STRING:
		if ((str = config_want_string(s, 1)) != NULL)
			config_set_string(cfg, s, FIELD(obj, sp, char *),
			    strdup(str));
		break;
	case T_PATH:
		if ((str = config_want_string(s, 1)) != NULL)
			config_set_string(cfg, s, FIELD(obj, sp, char *),
			    resolve_path(cfg, str));
		break;
	case T_ENUM:
		parse_enum(s, sp, FIELD(obj, sp, int));
		break;
	case T_CUSTOM:
		sp->parse(cfg, s, sp, obj);
		break;
	}
}

static void
apply_defaults(const struct spec *table, void *obj)
{
	for (const struct spec *sp = table; sp->name != NULL; sp++) {
		switch (sp->type) {
		case T_INT:
		case T_BOOL:
		case T_ENUM:
			*FIELD(obj, sp, int) = (int)sp->def;
			break;
		case T_ULONG:
			*FIELD(obj, sp, unsigned long) = (unsigned long)sp->def;
			break;
		case T_SECONDS:
			*FIELD(obj, sp, double) = sp->ddef;
			break;
		default:
			break;
		}
	}
}

/*
 * Fill @obj from group @group by @table: defaults first, then every child,
 * each unknown one an error, then the required ones that are missing.
 */
void
config_parse_group(struct config *cfg, config_setting_t *group,
    const struct spec *table, void *obj)
{
	const struct spec *sp;
	unsigned n;

	apply_defaults(table, obj);
	if (!config_setting_is_group(group)) {
		config_report(group, NULL, "expected a group { ... }");
		return;
	}
	n = (unsigned)config_setting_length(group);
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(group, i);

		for (sp = table; sp->name != NULL; sp++)
			if (strcmp(sp->name, config_setting_name(s)) == 0)
				break;
		if (sp->name == NULL)
			config_report(s, NULL, "unknown setting");
		else
			parse_value(cfg, s, sp, obj);
	}
	for (sp = table; sp->name != NULL; sp++)
		if (sp->required &&
		    config_setting_get_member(group, sp->name) == NULL)
			config_report(group, sp->name, "missing");
}

/* A list ( ... ) or array [ ... ]; reported if it is not one. */
int
config_want_list(config_setting_t *s, const char *of)
{
	if (config_setting_is_list(s) || config_setting_is_array(s))
		return 1;
	config_report(s, NULL, "expected a list of %s", of);
	return 0;
}

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
	if (!is_int(s)) {
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
		    resolve_path(cfg, v)) == NULL) {
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
	{ .name = NULL },
};
#undef D

/* The errno of a failed getpwnam/getgrnam, if it says more than "none". */
static const char *
lookup_error(void)
{
	/* getpwnam(3): these all mean the name was not found. */
	if (errno == 0 || errno == ENOENT || errno == ESRCH ||
	    errno == EBADF || errno == EPERM)
		return NULL;
	return strerror(errno);
}

/*
 * Whether the user (and group) of "user" or "user:group" exist, so that a
 * typo fails the check rather than the privilege drop or the chown at start.
 */
void
config_check_owner(const config_setting_t *s, const char *user,
    const char *group)
{
	const char *why;

	errno = 0;
	if (user != NULL && getpwnam(user) == NULL) {
		why = lookup_error();
		config_report(s, NULL, "no user \"%s\"%s%s", user,
		    why != NULL ? ": " : "", why != NULL ? why : "");
	}
	errno = 0;
	if (group != NULL && getgrnam(group) == NULL) {
		why = lookup_error();
		config_report(s, NULL, "no group \"%s\"%s%s", group,
		    why != NULL ? ": " : "", why != NULL ? why : "");
	}
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
    const struct config_plugin_hooks *h)
{
	struct config_listener *l = &cfg->listeners[idx];
	config_setting_t *pn = config_setting_get_member(ls, "protocol");
	struct aloop_plugin_env env;
	const struct aloop_plugin *d;
	size_t before;
	char err[1024], *file;
	void *inst;
	int rc;

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
	d = plugin_descriptor(l->plugin);
	if (l->type == CONFIG_TCP && d->stream == NULL) {
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
	struct stat st;
	FILE *f;

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
		add_error(cfg, "%s: %s", cfg->path, strerror(errno));
		return ALOOP_ECONFIG;
	}
	priv->dir = dir;
	/* libconfig says only "file I/O error"; the errno says why. */
	if ((f = fopen(cfg->path, "r")) == NULL) {
		add_error(cfg, "%s: %s", cfg->path, strerror(errno));
		return ALOOP_ECONFIG;
	}
	if (fstat(fileno(f), &st) != 0) {
		add_error(cfg, "%s: %s", cfg->path, strerror(errno));
		fclose(f);
		return ALOOP_ECONFIG;
	}
	if (!S_ISREG(st.st_mode)) {
		add_error(cfg, "%s: %s", cfg->path, S_ISDIR(st.st_mode) ?
		    "is a directory" : "not a regular file");
		fclose(f);
		return ALOOP_ECONFIG;
	}
	fclose(f);
	config_init(&priv->lc);
	priv->lc_live = 1;
	config_set_include_dir(&priv->lc, priv->dir);
	if (config_read_file(&priv->lc, cfg->path) != CONFIG_TRUE) {
		const char *file = config_error_file(&priv->lc);

		if (file == NULL)
			file = cfg->path;
		/* An @include that cannot be read has no line of its own. */
		if (config_error_type(&priv->lc) == CONFIG_ERR_FILE_IO ||
		    config_error_line(&priv->lc) <= 0)
			add_error(cfg, "%s: %s", file,
			    config_error_text(&priv->lc));
		else
			add_error(cfg, "%s:%d: %s", file,
			    config_error_line(&priv->lc),
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
	apply_defaults(daemon_specs, &cfg->daemon);
	if ((rc = read_file(cfg)) != 0)
		return rc;
	config_parse_group(cfg, config_root_setting(&priv_of(cfg)->lc),
	    root_specs, cfg);
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
			load_plugin(cfg, e, i, h);
	}
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
		free(priv);
	}
	free(cfg->path);
	free(cfg);
}
