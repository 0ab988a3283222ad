/*
 * aloop.conf: libconfig's tree turned into the typed structs of
 * config-int.h by a table per group (name, type, bounds, default, field),
 * then checked as a whole.  Every problem becomes one line naming the file,
 * the line, the setting's path and its value; all of them are collected, so
 * an operator fixes a file in one round.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <libconfig.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "config-int.h"
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
};

/* Setting types of the tables. */
enum {
	T_INT,		/* int field */
	T_ULONG,	/* unsigned long field */
	T_BOOL,		/* int field, 0 or 1 */
	T_SECONDS,	/* double field; an integer or a float */
	T_STRING,	/* char * field */
	T_PATH,		/* char * field, resolved against the file's directory */
	T_ENUM,		/* int field, from one of the names */
	T_CUSTOM,	/* the spec's parse function does it */
};

struct enum_name {
	const char	*name;
	int		 value;
};

struct spec;
typedef void (*parse_fn)(struct config *, config_setting_t *,
    const struct spec *, void *obj);

struct spec {
	const char		*name;
	int			 type;
	size_t			 off;		/* of the field in the struct */
	long long		 min, max;	/* T_INT, T_ULONG, T_SECONDS */
	long long		 def;		/* T_INT, T_ULONG, T_BOOL, T_ENUM */
	double			 ddef;		/* T_SECONDS */
	const struct enum_name	*names;		/* T_ENUM, NULL-ended */
	parse_fn		 parse;		/* T_CUSTOM */
	int			 required;
};

/* The first initialisers of a table row. */
#define SPEC(n, t, field)	.name = (n), .type = (t), .off = (field)
#define FIELD(obj, spec, type)	((type *)(void *)((char *)(obj) + (spec)->off))

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

static void
add_error(struct config *cfg, const char *fmt, ...)
{
	char **errors, *line;
	va_list ap;
	int n;

	if (cfg->nerrors > MAX_ERRORS)
		return;
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
		return;
	}
	cfg->errors = errors;
	cfg->errors[cfg->nerrors++] = line;
}

void
config_vreport(const config_setting_t *node, const char *child,
    const char *fmt, va_list ap)
{
	struct config *cfg = node_config(node);
	const config_setting_t *at;
	char path[512], value[MAX_QUOTED + 8], what[512];
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
		add_error(cfg, "%s:%u: %s%s: %s", file, line, path, value, what);
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
static const char *
want_string(const config_setting_t *s, int nonempty)
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

static void
set_string(struct config *cfg, config_setting_t *s, char **field, char *v)
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
		if ((str = want_string(s, 1)) != NULL)
			set_string(cfg, s, FIELD(obj, sp, char *), strdup(str));
		break;
	case T_PATH:
		if ((str = want_string(s, 1)) != NULL)
			set_string(cfg, s, FIELD(obj, sp, char *),
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
static void
parse_group(struct config *cfg, config_setting_t *group,
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
static int
want_list(config_setting_t *s, const char *of)
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

	if (!want_list(s, "directories"))
		return;
	n = (unsigned)config_setting_length(s);
	if ((d->plugin_path = calloc(n + 1, sizeof(char *))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = want_string(e, 1);

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
	{ SPEC("plugin_path", T_CUSTOM, D(plugin_path)), .parse = parse_plugin_path },
	{ SPEC("shutdown_timeout", T_SECONDS, D(shutdown_timeout)), .min = 0,
	    .max = 86400, .ddef = 30 },
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
static void
check_owner(const config_setting_t *s, const char *user, const char *group)
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
	parse_group(cfg, s, daemon_specs, &cfg->daemon);
	if (cfg->daemon.user != NULL)
		check_owner(config_setting_get_member(s, "user"),
		    cfg->daemon.user, NULL);
	if (cfg->daemon.group != NULL)
		check_owner(config_setting_get_member(s, "group"), NULL,
		    cfg->daemon.group);
	if (config_setting_is_group(s) && cfg->daemon.group != NULL &&
	    cfg->daemon.user == NULL)
		config_report(config_setting_get_member(s, "group"), NULL,
		    "needs a user to switch to");
}

/* ---------------------------------------------------- listen addresses */

static int
valid_hostname(const char *h)
{
	int digits_and_dots = 1;

	for (const char *c = h; *c != '\0'; c++) {
		if (!((*c >= '0' && *c <= '9') || *c == '.'))
			digits_and_dots = 0;
		if (!(*c == '-' || *c == '.' || (*c >= '0' && *c <= '9') ||
		    (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
			return 0;
	}
	/* 999.1.1.1 looks like an address and must be one. */
	if (digits_and_dots) {
		struct in_addr a;

		return inet_pton(AF_INET, h, &a) == 1;
	}
	return h[0] != '\0' && strlen(h) <= 253;
}

/*
 * Parse one "host:port", "[v6]:port", "*:port" or "unix:/path" into @a.
 * Returns NULL, or what is wrong with it.
 */
static const char *
parse_address(const char *text, struct config_address *a)
{
	char host[256], *end;
	const char *colon, *port;
	struct in6_addr a6;
	unsigned long p;
	size_t hlen;

	memset(a, 0, sizeof(*a));
	if (strncmp(text, "unix:", 5) == 0) {
		a->kind = CONFIG_ADDR_UNIX;
		if (text[5] != '/')
			return "a unix socket path must be absolute";
		if (strlen(text + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return "unix socket path too long";
		if ((a->path = strdup(text + 5)) == NULL)
			return "out of memory";
		return NULL;
	}
	a->kind = CONFIG_ADDR_INET;
	if (text[0] == '[') {
		if ((end = strchr(text, ']')) == NULL)
			return "missing \"]\" after the IPv6 address";
		hlen = (size_t)(end - text - 1);
		if (hlen >= sizeof(host))
			return "not an IPv6 address";
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return "not an IPv6 address";
		if (end[1] != ':')
			return "missing \":port\"";
		port = end + 2;
	} else {
		if ((colon = strrchr(text, ':')) == NULL)
			return "missing \":port\"";
		if (strchr(text, ':') != colon)
			return "an IPv6 address needs brackets: \"[::1]:port\"";
		hlen = (size_t)(colon - text);
		if (hlen == 0)
			return "missing host (\"*:port\" is every interface)";
		if (hlen >= sizeof(host))
			return "host name too long";
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		if (strcmp(host, "*") != 0 && !valid_hostname(host))
			return "not an IPv4 address or a host name";
		port = colon + 1;
	}
	if (port[0] < '0' || port[0] > '9')
		return "port must be a number";
	errno = 0;
	p = strtoul(port, &end, 10);
	if (*end != '\0')
		return "port must be a number";
	if (errno == ERANGE || p < 1 || p > 65535)
		return "port out of range";
	a->port_num = (unsigned)p;
	if (asprintf(&a->port, "%lu", p) < 0) {
		a->port = NULL;
		return "out of memory";
	}
	if (strcmp(host, "*") != 0 && (a->host = strdup(host)) == NULL)
		return "out of memory";
	return NULL;
}

static void
free_address(struct config_address *a)
{
	free(a->text);
	free(a->host);
	free(a->port);
	free(a->path);
}

static void
parse_listen(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;
	unsigned n;

	if (!want_list(s, "addresses"))
		return;
	if ((n = (unsigned)config_setting_length(s)) == 0) {
		config_report(s, NULL, "needs at least one address");
		return;
	}
	if ((l->listen = calloc(n, sizeof(*l->listen))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct config_address *a = &l->listen[l->nlisten];
		const char *v, *what;

		if ((v = want_string(e, 1)) == NULL)
			continue;
		if ((what = parse_address(v, a)) == NULL &&
		    (a->text = strdup(v)) == NULL)
			what = "out of memory";
		a->index = i;
		if (what != NULL) {
			config_report(e, NULL, "%s", what);
			free_address(a);
			memset(a, 0, sizeof(*a));
			continue;
		}
		l->nlisten++;
	}
}

/* ------------------------------------------------------------------ TLS */

static const struct enum_name tls_verify_modes[] = {
	{ "none", ALOOP_TLS_VERIFY_NONE },
	{ "optional", ALOOP_TLS_VERIFY_OPTIONAL },
	{ "required", ALOOP_TLS_VERIFY_REQUIRED },
	{ NULL, 0 },
};

static void
parse_min_version(struct config *cfg, config_setting_t *s,
    const struct spec *sp, void *obj)
{
	struct config_tls *t = obj;
	const char *v;

	if ((v = want_string(s, 1)) == NULL)
		return;
	if (strcmp(v, "TLSv1.2") != 0 && strcmp(v, "TLSv1.3") != 0) {
		config_report(s, NULL, "expected \"TLSv1.2\" or \"TLSv1.3\"");
		return;
	}
	set_string(cfg, s, &t->min_version, strdup(v));
}

static void
parse_alpn(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_tls *t = obj;
	unsigned n;

	if (!want_list(s, "protocol names"))
		return;
	n = (unsigned)config_setting_length(s);
	if ((t->alpn = calloc(n + 1, sizeof(char *))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = want_string(e, 1);

		if (v == NULL)
			continue;
		/* The wire format gives each name a one-byte length. */
		if (strlen(v) > 255) {
			config_report(e, NULL, "longer than 255 bytes");
			continue;
		}
		if ((t->alpn[t->nalpn] = strdup(v)) == NULL) {
			config_report(e, NULL, "out of memory");
			continue;
		}
		t->nalpn++;
	}
}

#define S(f)	offsetof(struct config_sni, f)
static const struct spec sni_specs[] = {
	{ SPEC("certificate", T_PATH, S(certificate)), .required = 1 },
	{ SPEC("key", T_PATH, S(key)), .required = 1 },
	{ .name = NULL },
};
#undef S

static void
parse_sni(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_tls *t = obj;
	unsigned n;

	if (!config_setting_is_list(s)) {
		config_report(s, NULL, "expected a list of groups "
		    "( { certificate = ...; key = ...; }, ... )");
		return;
	}
	n = (unsigned)config_setting_length(s);
	if ((t->sni = calloc(n, sizeof(*t->sni))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++)
		parse_group(cfg, config_setting_get_elem(s, i), sni_specs,
		    &t->sni[t->nsni++]);
}

#define TL(f)	offsetof(struct config_tls, f)
static const struct spec tls_specs[] = {
	{ SPEC("certificate", T_PATH, TL(certificate)), .required = 1 },
	{ SPEC("key", T_PATH, TL(key)), .required = 1 },
	{ SPEC("ca", T_PATH, TL(ca)) },
	{ SPEC("verify", T_ENUM, TL(verify)), .names = tls_verify_modes,
	    .def = ALOOP_TLS_VERIFY_NONE },
	{ SPEC("min_version", T_CUSTOM, TL(min_version)), .parse = parse_min_version },
	{ SPEC("ciphers", T_STRING, TL(ciphers)) },
	{ SPEC("ciphersuites", T_STRING, TL(ciphersuites)) },
	{ SPEC("alpn", T_CUSTOM, TL(alpn)), .parse = parse_alpn },
	{ SPEC("sni", T_CUSTOM, TL(sni)), .parse = parse_sni },
	{ .name = NULL },
};
#undef TL

static void
free_tls(struct config_tls *t)
{
	if (t == NULL)
		return;
	free(t->certificate);
	free(t->key);
	free(t->ca);
	free(t->min_version);
	free(t->ciphers);
	free(t->ciphersuites);
	for (size_t i = 0; i < t->nalpn; i++)
		free(t->alpn[i]);
	free(t->alpn);
	for (size_t i = 0; i < t->nsni; i++) {
		free(t->sni[i].certificate);
		free(t->sni[i].key);
	}
	free(t->sni);
	free(t);
}

/*
 * OpenSSL's reason for the failure it just queued, and a clean queue.  The
 * first error is the cause ("no start line"); later ones are the callers
 * giving up ("PEM lib").
 */
static const char *
ssl_reason(void)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r != NULL ? r : "unknown OpenSSL error";
}

static int
readable(const config_setting_t *node, const char *file)
{
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		config_report(node, NULL, "cannot read %s: %s", file,
		    strerror(errno));
		return 0;
	}
	close(fd);
	return 1;
}

/*
 * Load the pair as the listener will, so that a wrong file, a key of another
 * certificate or an encrypted key fails now and not on the first handshake.
 */
static void
check_cert_key(SSL_CTX *ctx, const config_setting_t *group, const char *cert,
    const char *key)
{
	const config_setting_t *cn = config_setting_get_member(group,
	    "certificate");
	const config_setting_t *kn = config_setting_get_member(group, "key");

	if (cert == NULL || key == NULL || !readable(cn, cert) ||
	    !readable(kn, key))
		return;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		config_report(cn, NULL, "not a PEM certificate: %s",
		    ssl_reason());
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL checks the pair as it loads the key. */
		if (ERR_GET_REASON(ERR_peek_error()) ==
		    X509_R_KEY_VALUES_MISMATCH)
			config_report(kn, NULL, "does not match the "
			    "certificate: %s", ssl_reason());
		else
			config_report(kn, NULL, "not a PEM private key: %s",
			    ssl_reason());
	} else if (SSL_CTX_check_private_key(ctx) != 1)
		config_report(kn, NULL, "does not match the certificate: %s",
		    ssl_reason());
}

static void
check_tls(const config_setting_t *s, const struct config_tls *t)
{
	const config_setting_t *n;
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		config_report(s, NULL, "cannot make a TLS context: %s",
		    ssl_reason());
		return;
	}
	check_cert_key(ctx, s, t->certificate, t->key);
	n = config_setting_get_member(s, "ca");
	if (t->ca != NULL && readable(n, t->ca) &&
	    SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1)
		config_report(n, NULL, "not a PEM CA file: %s", ssl_reason());
	if (t->verify != ALOOP_TLS_VERIFY_NONE && t->ca == NULL)
		config_report(config_setting_get_member(s, "verify"), NULL,
		    "needs a \"ca\" to check client certificates against");
	n = config_setting_get_member(s, "ciphers");
	if (t->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1)
		config_report(n, NULL, "no cipher matches: %s", ssl_reason());
	n = config_setting_get_member(s, "ciphersuites");
	if (t->ciphersuites != NULL &&
	    SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1)
		config_report(n, NULL, "not a TLS 1.3 ciphersuite list: %s",
		    ssl_reason());
	SSL_CTX_free(ctx);
	n = config_setting_get_member(s, "sni");
	for (size_t i = 0; i < t->nsni; i++) {
		if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
			break;
		check_cert_key(ctx, config_setting_get_elem(n, (unsigned)i),
		    t->sni[i].certificate, t->sni[i].key);
		SSL_CTX_free(ctx);
	}
	ERR_clear_error();
}

static void
parse_tls(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;
	size_t before = cfg->nerrors;

	if ((l->tls = calloc(1, sizeof(*l->tls))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	parse_group(cfg, s, tls_specs, l->tls);
	if (l->tls->min_version == NULL &&
	    (l->tls->min_version = strdup("TLSv1.2")) == NULL)
		config_report(s, NULL, "out of memory");
	/* Checking files named by a broken group would only add noise. */
	if (cfg->nerrors == before)
		check_tls(s, l->tls);
}

/* ------------------------------------------------------------ listeners */

static int
valid_listener_name(const char *n)
{
	/* It doubles as systemd's FileDescriptorName (no ':', <= 255). */
	if (strlen(n) > 255)
		return 0;
	for (const char *c = n; *c != '\0'; c++)
		if (!(*c == '-' || *c == '_' || *c == '.' ||
		    (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= 'A' && *c <= 'Z')))
			return 0;
	return 1;
}

static void
parse_name(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;
	const char *v;

	if ((v = want_string(s, 1)) == NULL)
		return;
	if (!valid_listener_name(v)) {
		config_report(s, NULL, "use letters, digits, '-', '_' and '.'");
		return;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].name != NULL &&
		    strcmp(cfg->listeners[i].name, v) == 0) {
			config_report(s, NULL, "name already used by "
			    "listeners[%zu]", i);
			return;
		}
	set_string(cfg, s, &l->name, strdup(v));
}

static void
parse_mode(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;
	const char *v;
	char *end;
	long m;

	/* libconfig has no octal numbers, and 660 would silently be 01224. */
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_report(s, NULL, "expected an octal mode in a string, "
		    "like \"0660\"");
		return;
	}
	v = config_setting_get_string(s);
	m = strtol(v, &end, 8);
	if (v[0] < '0' || v[0] > '7' || *end != '\0' || m < 0 || m > 0777) {
		config_report(s, NULL, "expected an octal mode from \"0\" to "
		    "\"0777\"");
		return;
	}
	l->mode = (int)m;
}

static void
parse_settings(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;

	if (!config_setting_is_group(s)) {
		config_report(s, NULL, "expected a group { ... }");
		return;
	}
	l->settings = SETTINGS_NODE(s);
}

static const struct enum_name listener_types[] = {
	{ "tcp", CONFIG_TCP }, { "udp", CONFIG_UDP }, { NULL, 0 },
};

#define L(f)	offsetof(struct config_listener, f)
static const struct spec listener_specs[] = {
	{ SPEC("name", T_CUSTOM, L(name)), .parse = parse_name, .required = 1 },
	{ SPEC("protocol", T_STRING, L(protocol)), .required = 1 },
	{ SPEC("listen", T_CUSTOM, L(listen)), .parse = parse_listen, .required = 1 },
	{ SPEC("type", T_ENUM, L(type)), .names = listener_types, .def = CONFIG_TCP },
	{ SPEC("backlog", T_INT, L(backlog)), .min = 1, .max = 65535, .def = 511 },
	{ SPEC("reuse_port", T_BOOL, L(reuse_port)), .def = 1 },
	{ SPEC("tcp_nodelay", T_BOOL, L(tcp_nodelay)), .def = 1 },
	{ SPEC("keepalive", T_BOOL, L(keepalive)), .def = 0 },
	{ SPEC("mode", T_CUSTOM, L(mode)), .parse = parse_mode },
	{ SPEC("owner", T_STRING, L(owner)) },
	{ SPEC("tls", T_CUSTOM, L(tls)), .parse = parse_tls },
	{ SPEC("max_connections", T_ULONG, L(max_connections)), .min = 0,
	    .max = 10000000, .def = 0 },
	{ SPEC("idle_timeout", T_SECONDS, L(idle_timeout)), .min = 0, .max = 86400,
	    .ddef = 0 },
	{ SPEC("settings", T_CUSTOM, L(settings)), .parse = parse_settings },
	{ .name = NULL },
};
#undef L

/* Would two addresses take the same socket? "*" overlaps every host. */
static int
addresses_clash(const struct config_address *a, int atype,
    const struct config_address *b, int btype)
{
	if (a->kind != b->kind)
		return 0;
	if (a->kind == CONFIG_ADDR_UNIX)
		return strcmp(a->path, b->path) == 0;
	if (atype != btype || a->port_num != b->port_num)
		return 0;
	return a->host == NULL || b->host == NULL ||
	    strcmp(a->host, b->host) == 0;
}

/* What only makes sense with all of a listener's settings in hand. */
static void
check_listener(struct config *cfg, config_setting_t *s, size_t idx)
{
	struct config_listener *l = &cfg->listeners[idx];
	config_setting_t *ls = config_setting_get_member(s, "listen");
	int has_unix = 0;

	for (size_t i = 0; i < l->nlisten; i++) {
		const struct config_address *a = &l->listen[i];
		config_setting_t *e = config_setting_get_elem(ls, a->index);

		if (a->kind == CONFIG_ADDR_UNIX) {
			has_unix = 1;
			if (l->type == CONFIG_UDP)
				config_report(e, NULL, "unix sockets are "
				    "served with type \"tcp\" only");
		}
		for (size_t j = 0; j < i; j++)
			if (addresses_clash(a, l->type, &l->listen[j], l->type)) {
				config_report(e, NULL, "listed twice");
				goto next;
			}
		for (size_t o = 0; o < idx; o++) {
			const struct config_listener *ol = &cfg->listeners[o];

			for (size_t j = 0; j < ol->nlisten; j++)
				if (addresses_clash(a, l->type, &ol->listen[j],
				    ol->type)) {
					config_report(e, NULL, "already used by "
					    "listener \"%s\"", ol->name != NULL ?
					    ol->name : "?");
					goto next;
				}
		}
next:		;
	}
	if (l->tls != NULL && l->type != CONFIG_TCP)
		config_report(config_setting_get_member(s, "tls"), NULL,
		    "TLS needs type \"tcp\" (there is no DTLS)");
	if (!has_unix && l->mode != -1)
		config_report(config_setting_get_member(s, "mode"), NULL,
		    "only for \"unix:\" addresses");
	if (!has_unix && l->owner != NULL)
		config_report(config_setting_get_member(s, "owner"), NULL,
		    "only for \"unix:\" addresses");
	else if (l->owner != NULL) {
		char *copy = strdup(l->owner), *group;

		if (copy == NULL) {
			config_report(s, NULL, "out of memory");
			return;
		}
		if ((group = strchr(copy, ':')) != NULL)
			*group++ = '\0';
		check_owner(config_setting_get_member(s, "owner"), copy,
		    group);
		free(copy);
	}
	/*
	 * The plugin always gets a group, so that it needs no NULL check;
	 * the tree is ours to extend, and the node is freed with it.
	 */
	if (l->settings == NULL &&
	    config_setting_get_member(s, "settings") == NULL) {
		config_setting_t *g = config_setting_add(s, "settings",
		    CONFIG_TYPE_GROUP);

		if (g == NULL)
			config_report(s, NULL, "out of memory");
		l->settings = SETTINGS_NODE(g);
	}
}

static void
parse_listeners(struct config *cfg, config_setting_t *s,
    const struct spec *sp, void *obj)
{
	unsigned n;

	if (!config_setting_is_list(s)) {
		config_report(s, NULL, "expected a list of groups "
		    "( { name = ...; ... }, ... )");
		return;
	}
	if ((n = (unsigned)config_setting_length(s)) == 0) {
		config_report(s, NULL, "empty: aloopd needs at least one "
		    "listener");
		return;
	}
	if ((cfg->listeners = calloc(n, sizeof(*cfg->listeners))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct config_listener *l = &cfg->listeners[i];

		l->mode = -1;
		l->file = config_setting_source_file(e);
		l->line = (int)config_setting_source_line(e);
		parse_group(cfg, e, listener_specs, l);
		cfg->nlisteners++;
		if (config_setting_is_group(e))
			check_listener(cfg, e, i);
	}
}

static const struct spec root_specs[] = {
	{ SPEC("daemon", T_CUSTOM, 0), .parse = parse_daemon },
	{ SPEC("listeners", T_CUSTOM, 0), .parse = parse_listeners, .required = 1 },
	{ .name = NULL },
};

/* ------------------------------------------------------------- plugins */

static void
load_plugin(struct config *cfg, config_setting_t *ls, size_t idx)
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
	/* The plugin checks its own settings: an instance with no loop. */
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
	char *copy, *dir;
	FILE *f;

	/* Resolve the directory now: the daemon may chdir later. */
	if ((copy = strdup(cfg->path)) == NULL)
		return ALOOP_ENOMEM;
	dir = realpath(dirname(copy), NULL);
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
	fclose(f);
	config_init(&priv->lc);
	priv->lc_live = 1;
	config_set_include_dir(&priv->lc, priv->dir);
	if (config_read_file(&priv->lc, cfg->path) != CONFIG_TRUE) {
		const char *file = config_error_file(&priv->lc);

		add_error(cfg, "%s:%d: %s", file != NULL ? file : cfg->path,
		    config_error_line(&priv->lc), config_error_text(&priv->lc));
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
	parse_group(cfg, config_root_setting(&priv_of(cfg)->lc), root_specs,
	    cfg);
	if (with_plugins) {
		config_setting_t *ls = config_lookup(&priv_of(cfg)->lc,
		    "listeners");

		for (size_t i = 0; i < cfg->nlisteners; i++) {
			config_setting_t *e = config_setting_get_elem(ls,
			    (unsigned)i);

			if (cfg->listeners[i].protocol != NULL &&
			    cfg->listeners[i].settings != NULL)
				load_plugin(cfg, e, i);
		}
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
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct config_listener *l = &cfg->listeners[i];

		free(l->name);
		free(l->protocol);
		plugin_release(l->plugin);
		for (size_t k = 0; k < l->nlisten; k++)
			free_address(&l->listen[k]);
		free(l->listen);
		free(l->owner);
		free_tls(l->tls);
	}
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
		free(priv);
	}
	free(cfg->path);
	free(cfg);
}
