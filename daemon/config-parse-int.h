/*
 * The configuration reader's machinery (config_parse.c), for its parts
 * (config.c: the file, the daemon group and the plugins;
 * config_listener.c: listeners, addresses and TLS): the table of settings
 * that drives the parsing, the helpers each table row's parser uses, and
 * the config's private state.  Private to the daemon.
 */
#ifndef ALOOPD_CONFIG_PARSE_INT_H
#define ALOOPD_CONFIG_PARSE_INT_H

#include <stddef.h>

#include <libconfig.h>

#include <aloop/common.h>

#include "config_file.h"
#include "strmap.h"

struct config;
struct config_listener;

/* What a struct config keeps besides its public fields. */
struct config_priv {
	config_t	 lc;
	int		 lc_live;	/* lc was initialised */
	int		 oom;		/* an error could not be recorded */
	char		*dir;		/* the file's directory, absolute */
	char		*shown_dir;	/* ... as given, for included files'
					 * names; NULL when it is "." */
	struct config_text text;	/* what libconfig parsed */
	/* While the listeners are parsed: names and addresses seen. */
	struct strmap	 names, addrs;
};

static inline struct config_priv *
priv_of(const struct config *cfg)
{
	return (struct config_priv *)cfg->priv;
}

/*
 * @file (the main file, or an included one as its @include named it) as
 * an operator would open it: relative names are the main file's
 * directory's.  Returns @file or @buf.
 */
const char *config_shown_file(const struct config *cfg, const char *file,
	    char *buf, size_t len);

/* Where @node was written (@file as libconfig names it, NULL: unknown). */
void	config_node_where(const config_setting_t *node, const char **file,
	    unsigned *line);

/* @p made absolute from the file's directory (malloc'd), NULL on ENOMEM. */
char	*config_resolve_path(struct config *cfg, const char *p);

/* Append an error line (at most MAX_ERRORS are kept). */
void	config_add_errorf(struct config *cfg, const char *fmt, ...)
	    ALOOP_PRINTF(2, 3);

/* Setting types of the tables. */
enum {
	T_INT,		/* int field */
	T_ULONG,	/* unsigned long field */
	T_BOOL,		/* int field, 0 or 1 */
	T_SECONDS,	/* double field; an integer or a float */
	T_STRING,	/* char * field */
	T_PATH,		/* char * field, made absolute from the file's dir */
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
	long long		 def;		/* int, ulong, bool, enum */
	double			 ddef;		/* T_SECONDS */
	const struct enum_name	*names;		/* T_ENUM, NULL-ended */
	parse_fn		 parse;		/* T_CUSTOM */
	int			 required;
};

/* The first initialisers of a table row. */
#define SPEC(n, t, field)	.name = (n), .type = (t), .off = (field)
#define FIELD(obj, spec, type)	((type *)(void *)((char *)(obj) + (spec)->off))

/*
 * Fill @obj from group @group by @table: defaults first, then every child,
 * each unknown one an error, then the required ones that are missing.
 */
void	config_parse_group(struct config *cfg, config_setting_t *group,
	    const struct spec *table, void *obj);

/* Whether @s is an integer (of either of libconfig's sizes). */
int	config_is_int(const config_setting_t *s);

/* Every field of @obj that @table has a default for, set to it. */
void	config_apply_defaults(const struct spec *table, void *obj);

/* A string setting's value, or NULL after reporting that it is not one. */
const char *config_want_string(const config_setting_t *s, int nonempty);

/* Whether @s is a list ( ... ) or array [ ... ]; reported if not. */
int	config_want_list(config_setting_t *s, const char *of);

/* Replace *@field by @v (NULL: report running out of memory on @s). */
void	config_set_string(struct config *cfg, config_setting_t *s,
	    char **field, char *v);

/* The daemon group's table of settings (config.c), for -T's defaults. */
const struct spec *config_daemon_specs(void);

/* Report on @s a user or group (either may be NULL) that does not exist. */
void	config_check_owner(const config_setting_t *s, const char *user,
	    const char *group);


#endif /* ALOOPD_CONFIG_PARSE_INT_H */
