/*
 * The machinery of the configuration reader: errors as file:line lines,
 * and the tables of settings that turn libconfig's tree into typed
 * structs.  config.c (the file, the daemon group, the plugins) and
 * config_listener.c (listeners, addresses, TLS) build on it; it builds on
 * neither.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include <aloop/aloop.h>

#include "config-int.h"
#include "config-parse-int.h"
#include "settings-int.h"

/* Enough for any honest file; a hostile one cannot make the list grow. */
#define MAX_ERRORS	100
/* Values quoted in messages are cut here. */
#define MAX_QUOTED	120



/* -------------------------------------------------------------- errors */


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

void
config_add_error(struct config *cfg, const char *line)
{
	config_add_errorf(cfg, "%s", line);
}

/*
 * A plugin's init may report through the settings getters whenever it
 * runs; the error list is the one thing of a loaded config that still
 * changes, and a host that makes instances on several threads (the unit
 * tests do) must not lose a line.
 */
static pthread_mutex_t errors_lock = PTHREAD_MUTEX_INITIALIZER;

void
config_add_errorf(struct config *cfg, const char *fmt, ...)
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

const char *
config_shown_file(const struct config *cfg, const char *file, char *buf,
    size_t len)
{
	/*
	 * libconfig names an included file as the @include line wrote it,
	 * relative to the main file's directory; show it as the operator
	 * would open it.
	 */
	if (file[0] != '/' && strcmp(file, cfg->path) != 0 &&
	    priv_of(cfg)->shown_dir != NULL) {
		snprintf(buf, len, "%s/%s", priv_of(cfg)->shown_dir, file);
		return buf;
	}
	return file;
}

void
config_node_where(const config_setting_t *node, const char **file,
    unsigned *line)
{
	const struct config *cfg = node_config(node);
	const config_setting_t *at;

	/*
	 * libconfig read one string, the files joined (config_file.c): its
	 * line is in that string.  Nodes the daemon added (an absent
	 * settings group) have none; their parent's is the place to look.
	 */
	*file = NULL;
	*line = 0;
	for (at = node; at != NULL && *line == 0;
	    at = config_setting_parent(at))
		*line = config_setting_source_line(at);
	if (*line > 0)
		config_text_where(&priv_of(cfg)->text, *line, file, line);
}

void
config_vreport(const config_setting_t *node, const char *child,
    const char *fmt, va_list ap)
{
	struct config *cfg = node_config(node);
	char path[512], value[MAX_QUOTED + 8], what[512], shown[PATH_MAX];
	const char *file = NULL;
	unsigned line = 0;
	size_t used = 0;

	config_node_where(node, &file, &line);
	if (file == NULL)
		file = cfg->path;
	file = config_shown_file(cfg, file, shown, sizeof(shown));
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
		config_add_errorf(cfg, "%s:%u: %s%s: %s", file, line, path, value,
		    what);
	else
		config_add_errorf(cfg, "%s: %s%s: %s", file, path, value, what);
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

char *
config_resolve_path(struct config *cfg, const char *p)
{
	char *s;

	if (p[0] == '/')
		return strdup(p);
	if (asprintf(&s, "%s/%s", priv_of(cfg)->dir, p) < 0)
		return NULL;
	return s;
}

int
config_is_int(const config_setting_t *s)
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
		if (!config_is_int(s)) {
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
		if (config_is_int(s))
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
			    config_resolve_path(cfg, str));
		break;
	case T_ENUM:
		parse_enum(s, sp, FIELD(obj, sp, int));
		break;
	case T_CUSTOM:
		sp->parse(cfg, s, sp, obj);
		break;
	}
}

void
config_apply_defaults(const struct spec *table, void *obj)
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

	config_apply_defaults(table, obj);
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
