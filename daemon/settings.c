/*
 * The typed getters through which a plugin reads its `settings` group.  A
 * struct aloop_settings is the libconfig node itself, so nothing is copied
 * and every error can name the node's file and line.  A NULL node reads as
 * an empty group, so that a host embedding plugins without a config file
 * can still make instances.
 */
#include "config.h"

#include <stdarg.h>
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
