/*
 * aloopd -T: the configuration as aloopd reads it.  The parsed tree, with
 * includes already in place, gets every setting the file left out at its
 * default, and libconfig writes it back out: what is printed is what a
 * start would run, in the file's own syntax, and reads back the same.
 */
#include "config.h"

#include <stdio.h>

#include <libconfig.h>

#include "config-int.h"
#include "config-parse-int.h"
#include "config_listener.h"

static const char *
enum_name(const struct spec *sp, long long v)
{
	for (const struct enum_name *n = sp->names; n->name != NULL; n++)
		if (n->value == v)
			return n->name;
	return NULL;
}

/*
 * Add to @group each setting of @table it lacks that has a default and
 * that @applies (NULL: all) says belongs in it.
 */
static void
fill_defaults(config_setting_t *group, const struct spec *table,
    int (*applies)(const config_setting_t *, const char *))
{
	config_setting_t *s;
	const char *name;

	for (const struct spec *sp = table; sp->name != NULL; sp++) {
		if (config_setting_get_member(group, sp->name) != NULL ||
		    (applies != NULL && !applies(group, sp->name)))
			continue;
		switch (sp->type) {
		case T_INT:
		case T_ULONG:
			/* Every default fits an int: no "L" in the output. */
			if ((s = config_setting_add(group, sp->name,
			    CONFIG_TYPE_INT)) != NULL)
				config_setting_set_int(s, (int)sp->def);
			break;
		case T_BOOL:
			if ((s = config_setting_add(group, sp->name,
			    CONFIG_TYPE_BOOL)) != NULL)
				config_setting_set_bool(s, (int)sp->def);
			break;
		case T_SECONDS:
			if ((s = config_setting_add(group, sp->name,
			    CONFIG_TYPE_FLOAT)) != NULL)
				config_setting_set_float(s, sp->ddef);
			break;
		case T_ENUM:
			if ((name = enum_name(sp, sp->def)) != NULL &&
			    (s = config_setting_add(group, sp->name,
			    CONFIG_TYPE_STRING)) != NULL)
				config_setting_set_string(s, name);
			break;
		default:
			break;	/* no default to show (strings, lists) */
		}
	}
}

int
config_dump(struct config *cfg, FILE *out)
{
	config_t *lc = &priv_of(cfg)->lc;
	config_setting_t *root = config_root_setting(lc), *d, *ls;

	if ((d = config_setting_get_member(root, "daemon")) == NULL)
		d = config_setting_add(root, "daemon", CONFIG_TYPE_GROUP);
	if (d == NULL)
		return -1;
	fill_defaults(d, config_daemon_specs(), NULL);
	if ((ls = config_setting_get_member(root, "listeners")) == NULL)
		return -1;
	for (int i = 0; i < config_setting_length(ls); i++)
		fill_defaults(config_setting_get_elem(ls, (unsigned)i),
		    config_listener_specs(), config_listener_applies);
	fprintf(out, "# %s as aloopd reads it: includes in place, every "
	    "setting at its value\n# (defaults included).\n", cfg->path);
	config_write(lc, out);
	return ferror(out) ? -1 : 0;
}
