/*
 * The typed getters through which a plugin reads its `settings` group.  A
 * struct aloop_settings is the libconfig node itself, so nothing is copied
 * and every error can name the node's file and line.  A NULL node reads as
 * an empty group, so that a host embedding plugins without a config file
 * can still make instances.
 */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "settings-int.h"

const struct aloop_settings *
aloop_settings_get(const struct aloop_settings *s, const char *name)
{
	const config_setting_t *n = NODE_SETTING(s);

	if (n == NULL)
		return NULL;
	if (name == NULL)
		return s;
	if (!config_setting_is_group(n))
		return NULL;
	return SETTINGS_NODE(config_setting_get_member(n, name));
}

int
aloop_settings_type(const struct aloop_settings *s)
{
	if (s == NULL)
		return 0;
	switch (config_setting_type(NODE_SETTING(s))) {
	case CONFIG_TYPE_GROUP:
		return ALOOP_SETTINGS_GROUP;
	case CONFIG_TYPE_LIST:
	case CONFIG_TYPE_ARRAY:
		return ALOOP_SETTINGS_LIST;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return ALOOP_SETTINGS_INT;
	case CONFIG_TYPE_FLOAT:
		return ALOOP_SETTINGS_DOUBLE;
	case CONFIG_TYPE_STRING:
		return ALOOP_SETTINGS_STRING;
	case CONFIG_TYPE_BOOL:
		return ALOOP_SETTINGS_BOOL;
	default:
		return 0;
	}
}

const char *
aloop_settings_name(const struct aloop_settings *s)
{
	if (s == NULL)
		return NULL;
	return config_setting_name(NODE_SETTING(s));
}

size_t
aloop_settings_count(const struct aloop_settings *s)
{
	const config_setting_t *n = NODE_SETTING(s);

	if (n == NULL || !config_setting_is_aggregate(n))
		return 0;
	return (size_t)config_setting_length(n);
}

const struct aloop_settings *
aloop_settings_at(const struct aloop_settings *s, size_t i)
{
	const config_setting_t *n = NODE_SETTING(s);

	if (i >= aloop_settings_count(s))
		return NULL;
	return SETTINGS_NODE(config_setting_get_elem(n, (unsigned)i));
}

/*
 * The node @name of @s for a getter: ALOOP_ENOENT if absent, ALOOP_ECONFIG
 * (reported) if it is not of @type.
 */
static int
lookup(const struct aloop_settings *s, const char *name, int type,
    const char *what, const config_setting_t **out)
{
	const struct aloop_settings *c = aloop_settings_get(s, name);
	int t;

	if (c == NULL)
		return ALOOP_ENOENT;
	t = aloop_settings_type(c);
	if (t != type && !(type == ALOOP_SETTINGS_DOUBLE &&
	    t == ALOOP_SETTINGS_INT)) {
		aloop_settings_error(c, "expected %s", what);
		return ALOOP_ECONFIG;
	}
	*out = NODE_SETTING(c);
	return 0;
}

int
aloop_settings_get_int(const struct aloop_settings *s, const char *name,
    long long *out)
{
	const config_setting_t *n;
	int rc;

	if ((rc = lookup(s, name, ALOOP_SETTINGS_INT, "an integer", &n)) != 0)
		return rc;
	*out = config_setting_get_int64(n);
	return 0;
}

int
aloop_settings_get_bool(const struct aloop_settings *s, const char *name,
    int *out)
{
	const config_setting_t *n;
	int rc;

	if ((rc = lookup(s, name, ALOOP_SETTINGS_BOOL,
	    "true or false", &n)) != 0)
		return rc;
	*out = config_setting_get_bool(n) != 0;
	return 0;
}

int
aloop_settings_get_double(const struct aloop_settings *s, const char *name,
    double *out)
{
	const config_setting_t *n;
	int rc;

	if ((rc = lookup(s, name, ALOOP_SETTINGS_DOUBLE, "a number", &n)) != 0)
		return rc;
	if (config_setting_type(n) == CONFIG_TYPE_FLOAT)
		*out = config_setting_get_float(n);
	else
		*out = (double)config_setting_get_int64(n);
	return 0;
}

int
aloop_settings_get_string(const struct aloop_settings *s, const char *name,
    const char **out)
{
	const config_setting_t *n;
	int rc;

	if ((rc = lookup(s, name, ALOOP_SETTINGS_STRING, "a string", &n)) != 0)
		return rc;
	*out = config_setting_get_string(n);
	return 0;
}

void
aloop_settings_error(const struct aloop_settings *s, const char *fmt, ...)
{
	va_list ap;

	/* Without a node there is no config to report to. */
	if (s == NULL)
		return;
	va_start(ap, fmt);
	config_vreport(NODE_SETTING(s), NULL, fmt, ap);
	va_end(ap);
}

int
aloop_settings_check_names(const struct aloop_settings *s,
    const char *const *names)
{
	int rc = 0;

	if (s == NULL)
		return 0;
	if (aloop_settings_type(s) != ALOOP_SETTINGS_GROUP) {
		aloop_settings_error(s, "expected a group { ... }");
		return ALOOP_ECONFIG;
	}
	for (size_t i = 0; i < aloop_settings_count(s); i++) {
		const struct aloop_settings *c = aloop_settings_at(s, i);
		const char *name = aloop_settings_name(c);
		size_t k;

		for (k = 0; names[k] != NULL; k++)
			if (strcmp(names[k], name) == 0)
				break;
		if (names[k] == NULL) {
			aloop_settings_error(c, "unknown setting");
			rc = ALOOP_ECONFIG;
		}
	}
	return rc;
}

/* ------------------------------------------------------ settings tables */

#define FIELD(base, d, type)	((type *)(void *)((char *)(base) + (d)->offset))

/* The field of @d gets its default.  ALOOP_ENOMEM if a string copy fails. */
static int
table_default(const struct aloop_setting_def *d, void *base)
{
	switch (d->type) {
	case ALOOP_SETTINGS_INT:
		*FIELD(base, d, long long) = d->def_int;
		break;
	case ALOOP_SETTINGS_BOOL:
		*FIELD(base, d, int) = d->def_int != 0;
		break;
	case ALOOP_SETTINGS_DOUBLE:
		*FIELD(base, d, double) = d->def_double;
		break;
	case ALOOP_SETTINGS_STRING:
		*FIELD(base, d, char *) = NULL;
		if (d->def_string != NULL &&
		    (*FIELD(base, d, char *) = strdup(d->def_string)) == NULL)
			return ALOOP_ENOMEM;
		break;
	}
	return 0;
}

/* The field of @d from setting @c, which exists: 0, ALOOP_ECONFIG, ENOMEM. */
static int
table_value(const struct aloop_settings *c, const struct aloop_setting_def *d,
    void *base)
{
	long long i;
	double x;
	const char *str;
	char *copy;
	int rc = 0;

	switch (d->type) {
	case ALOOP_SETTINGS_INT:
		if ((rc = aloop_settings_get_int(c, NULL, &i)) != 0)
			return rc;
		if ((d->min_int != 0 || d->max_int != 0) &&
		    (i < d->min_int || i > d->max_int)) {
			aloop_settings_error(c, "out of range (%lld..%lld)",
			    d->min_int, d->max_int);
			return ALOOP_ECONFIG;
		}
		*FIELD(base, d, long long) = i;
		break;
	case ALOOP_SETTINGS_BOOL:
		rc = aloop_settings_get_bool(c, NULL, FIELD(base, d, int));
		break;
	case ALOOP_SETTINGS_DOUBLE:
		if ((rc = aloop_settings_get_double(c, NULL, &x)) != 0)
			return rc;
		if ((d->min_double != 0 || d->max_double != 0) &&
		    !(x >= d->min_double && x <= d->max_double)) {
			aloop_settings_error(c, "out of range (%g..%g)",
			    d->min_double, d->max_double);
			return ALOOP_ECONFIG;
		}
		*FIELD(base, d, double) = x;
		break;
	case ALOOP_SETTINGS_STRING:
		if ((rc = aloop_settings_get_string(c, NULL, &str)) != 0)
			return rc;
		if ((copy = strdup(str)) == NULL)
			return ALOOP_ENOMEM;
		free(*FIELD(base, d, char *));
		*FIELD(base, d, char *) = copy;
		break;
	}
	return rc;
}

int
aloop_settings_read(const struct aloop_settings *s,
    const struct aloop_setting_def *defs, void *base)
{
	const struct aloop_setting_def *d;
	int rc = 0, r;

	if (defs == NULL || base == NULL)
		return ALOOP_EINVAL;
	/* Every field is set first, so that the caller can free any. */
	for (d = defs; d->name != NULL; d++)
		if ((r = table_default(d, base)) != 0)
			rc = r;
	if (rc != 0)
		return rc;
	/* Unknown names: the same check as aloop_settings_check_names. */
	if (s != NULL && aloop_settings_type(s) != ALOOP_SETTINGS_GROUP) {
		aloop_settings_error(s, "expected a group { ... }");
		return ALOOP_ECONFIG;
	}
	for (size_t i = 0; i < aloop_settings_count(s); i++) {
		const struct aloop_settings *c = aloop_settings_at(s, i);

		for (d = defs; d->name != NULL; d++)
			if (strcmp(d->name, aloop_settings_name(c)) == 0)
				break;
		if (d->name == NULL) {
			aloop_settings_error(c, "unknown setting");
			rc = ALOOP_ECONFIG;
		}
	}
	/* Then every value, so that one run reports every problem. */
	for (d = defs; d->name != NULL; d++) {
		const struct aloop_settings *c = aloop_settings_get(s, d->name);

		if (c != NULL && (r = table_value(c, d, base)) != 0 &&
		    rc != ALOOP_ENOMEM)
			rc = r;
	}
	return rc;
}

void
aloop_settings_free(const struct aloop_setting_def *defs, void *base)
{
	if (defs == NULL || base == NULL)
		return;
	for (const struct aloop_setting_def *d = defs; d->name != NULL; d++)
		if (d->type == ALOOP_SETTINGS_STRING) {
			free(*FIELD(base, d, char *));
			*FIELD(base, d, char *) = NULL;
		}
}
