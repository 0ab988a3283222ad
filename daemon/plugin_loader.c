/*
 * The plugin loader: plugin path search, dlopen, and the descriptor checks
 * that turn a wrong or broken plugin into a message instead of a crash.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "plugin_loader.h"

#ifndef PLUGINDIR
#define PLUGINDIR	"/usr/lib/aloop/plugins"
#endif

/*
 * The size of the descriptor of each minor of the current major: a plugin
 * built for minor N must have at least the fields N defined.
 */
static const size_t abi_sizes[] = {
	[0] = offsetof(struct aloop_plugin, datagram_factory) +
	    sizeof(aloop_protocol_factory_fn),
	/* 2.1: stream_task and its stack size. */
	[1] = offsetof(struct aloop_plugin, stream_task_stack) +
	    sizeof(size_t),
	/* 2.2: the settings table and the instance's size. */
	[2] = offsetof(struct aloop_plugin, instance_size) + sizeof(size_t),
};
/* A minor that adds descriptor fields adds its size here, in step. */
_Static_assert(sizeof(abi_sizes) / sizeof(abi_sizes[0]) ==
    ALOOP_PLUGIN_ABI_MINOR + 1, "abi_sizes[] needs one entry per minor");

struct plugin {
	unsigned		 refs;
	void			*handle;	/* dlopen()'s */
	char			*file;
	struct aloop_plugin	 desc;		/* copied, zero-extended */
};

static void
errf(char *err, size_t errlen, const char *fmt, ...) ALOOP_PRINTF(3, 4);

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A bare plugin name: nothing that could climb out of a directory. */
static int
valid_name(const char *name)
{
	if (*name == '\0' || *name == '.')
		return 0;
	for (const char *c = name; *c != '\0'; c++)
		if (!(*c == '-' || *c == '_' || *c == '.' ||
		    (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= 'A' && *c <= 'Z')))
			return 0;
	return 1;
}

static char *
join(const char *dir, const char *name, const char *suffix)
{
	char *s;

	if (asprintf(&s, "%s/%s%s", dir, name, suffix) < 0)
		return NULL;
	return s;
}

int
plugin_find(const char *protocol, char *const *dirs, size_t ndirs,
    const char *base, char **file, char *err, size_t errlen)
{
	size_t used = 0;
	char *path;

	*file = NULL;
	if (strchr(protocol, '/') != NULL) {
		path = protocol[0] == '/' || base == NULL ? strdup(protocol) :
		    join(base, protocol, "");
		if (path == NULL)
			return ALOOP_ENOMEM;
		if (access(path, R_OK) != 0) {
			errf(err, errlen, "%s: %m", path);
			free(path);
			return ALOOP_ENOENT;
		}
		*file = path;
		return 0;
	}
	if (!valid_name(protocol)) {
		errf(err, errlen, "not a plugin name (letters, digits, "
		    "'-', '_' and '.') nor a path");
		return ALOOP_EINVAL;
	}
	/* The directories searched go into the message if none has it. */
	used = (size_t)snprintf(err, errlen, "no %s.so in", protocol);
	for (size_t i = 0; i <= ndirs; i++) {
		const char *dir = i < ndirs ? dirs[i] : PLUGINDIR;

		if ((path = join(dir, protocol, ".so")) == NULL)
			return ALOOP_ENOMEM;
		if (access(path, F_OK) == 0) {
			*file = path;
			return 0;
		}
		free(path);
		if (used < errlen)
			used += (size_t)snprintf(err + used, errlen - used,
			    "%s %s", i == 0 ? "" : ",", dir);
	}
	return ALOOP_ENOENT;
}

/*
 * The data model the plugin was built for, from its build signature; the
 * descriptor's layout depends on it, so only an exact match can work.
 */
static int
same_data_model(const char *build)
{
	const char *mine = strstr(ALOOP_PLUGIN_BUILD, " ptr");
	const char *theirs;

	if (build == NULL || (theirs = strstr(build, " ptr")) == NULL)
		return 0;
	return strcmp(mine, theirs) == 0;
}

/*
 * How a field of each type is aligned inside a struct (on some ABIs less
 * than _Alignof says of the type alone, as long long on i386).
 */
struct align_ll { char c; long long v; };
struct align_int { char c; int v; };
struct align_dbl { char c; double v; };
struct align_ptr { char c; char *v; };

/*
 * A settings table must fit the instance it fills: a wrong offset would
 * have aloopd write outside the struct it allocates, or a double where
 * the machine cannot store one (a table written by hand, not with the
 * ALOOP_SETTING_* macros).
 */
static int
check_settings_table(const struct aloop_plugin *d, char *err, size_t errlen,
    const char *file)
{
	const struct aloop_setting_def *def;
	size_t size, align;

	if (d->settings == NULL)
		return 0;
	if (d->instance_size == 0) {
		errf(err, errlen, "%s: plugin \"%s\" has a settings table "
		    "but no instance_size", file, d->name);
		return ALOOP_EPLUGIN;
	}
	for (def = d->settings; def->name != NULL; def++) {
		switch (def->type) {
		case ALOOP_SETTINGS_INT:
			size = sizeof(long long);
			align = offsetof(struct align_ll, v);
			break;
		case ALOOP_SETTINGS_BOOL:
			size = sizeof(int);
			align = offsetof(struct align_int, v);
			break;
		case ALOOP_SETTINGS_DOUBLE:
			size = sizeof(double);
			align = offsetof(struct align_dbl, v);
			break;
		case ALOOP_SETTINGS_STRING:
			size = sizeof(char *);
			align = offsetof(struct align_ptr, v);
			break;
		default:
			size = 0;
			align = 1;
			break;
		}
		if (size == 0 || d->instance_size < size ||
		    def->offset > d->instance_size - size) {
			errf(err, errlen, "%s: plugin \"%s\": setting \"%s\" "
			    "has no valid type or lies outside the %zu-byte "
			    "instance", file, d->name, def->name,
			    d->instance_size);
			return ALOOP_EPLUGIN;
		}
		if (def->offset % align != 0) {
			errf(err, errlen, "%s: plugin \"%s\": setting \"%s\" "
			    "at offset %zu is not aligned for its type (%zu)",
			    file, d->name, def->name, def->offset, align);
			return ALOOP_EPLUGIN;
		}
	}
	return 0;
}

static int
check_descriptor(const char *file, const struct aloop_plugin *d,
    struct aloop_plugin *copy, char *err, size_t errlen)
{
	size_t need;

	if (d->magic != ALOOP_PLUGIN_MAGIC) {
		errf(err, errlen, "%s: symbol \"%s\" is not an aloop plugin "
		    "descriptor", file, ALOOP_PLUGIN_SYMBOL);
		return ALOOP_EPLUGIN;
	}
	if (d->abi_major != ALOOP_PLUGIN_ABI_MAJOR) {
		errf(err, errlen, "%s: plugin ABI %u.%u, but aloopd speaks ABI "
		    "%d.%d: rebuild the plugin against this aloop", file,
		    d->abi_major, d->abi_minor, ALOOP_PLUGIN_ABI_MAJOR,
		    ALOOP_PLUGIN_ABI_MINOR);
		return ALOOP_EPLUGIN;
	}
	if (d->abi_minor > ALOOP_PLUGIN_ABI_MINOR) {
		errf(err, errlen, "%s: plugin needs ABI %u.%u, but aloopd "
		    "speaks only up to %d.%d: upgrade aloopd", file,
		    d->abi_major, d->abi_minor, ALOOP_PLUGIN_ABI_MAJOR,
		    ALOOP_PLUGIN_ABI_MINOR);
		return ALOOP_EPLUGIN;
	}
	need = abi_sizes[d->abi_minor];
	if (d->size < need) {
		errf(err, errlen, "%s: plugin descriptor is %u bytes, ABI "
		    "%u.%u needs %zu: it was not built with "
		    "ALOOP_PLUGIN_HEADER", file, d->size, d->abi_major,
		    d->abi_minor, need);
		return ALOOP_EPLUGIN;
	}
	if (!same_data_model(d->build)) {
		errf(err, errlen, "%s: plugin built as \"%s\", aloopd as "
		    "\"%s\": the data models differ", file,
		    d->build != NULL ? d->build : "(none)", ALOOP_PLUGIN_BUILD);
		return ALOOP_EPLUGIN;
	}
	/*
	 * Fields are only appended: an older plugin's struct is a prefix of
	 * ours, and what it lacks reads as zero (absent).
	 */
	memset(copy, 0, sizeof(*copy));
	memcpy(copy, d, d->size < sizeof(*copy) ? d->size : sizeof(*copy));
	if (copy->name == NULL || copy->name[0] == '\0') {
		errf(err, errlen, "%s: plugin descriptor has no name", file);
		return ALOOP_EPLUGIN;
	}
	if ((copy->stream == NULL) != (copy->stream_factory == NULL) ||
	    (copy->datagram == NULL) != (copy->datagram_factory == NULL) ||
	    (copy->stream == NULL && copy->stream_task == NULL &&
	    copy->datagram == NULL)) {
		errf(err, errlen, "%s: plugin \"%s\" needs a stream task, a "
		    "stream protocol or a datagram protocol, each protocol "
		    "with its factory", file, copy->name);
		return ALOOP_EPLUGIN;
	}
	if (check_settings_table(copy, err, errlen, file) != 0)
		return ALOOP_EPLUGIN;
	/* Which of the two would run a connection? Neither guess is safe. */
	if (copy->stream != NULL && copy->stream_task != NULL) {
		errf(err, errlen, "%s: plugin \"%s\" has both a stream task "
		    "and a stream protocol: give it one of them", file,
		    copy->name);
		return ALOOP_EPLUGIN;
	}
	return 0;
}

int
plugin_open(const char *file, struct plugin **pp, char *err, size_t errlen)
{
	const struct aloop_plugin *d;
	struct plugin *p;
	const char *msg;
	int rc;

	*pp = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->file = strdup(file)) == NULL) {
		free(p);
		return ALOOP_ENOMEM;
	}
	/*
	 * RTLD_NOW: an unresolved symbol fails here, at start or reload,
	 * rather than in a worker mid-connection.  RTLD_LOCAL: plugins cannot
	 * see, or clash with, one another's symbols.
	 */
	(void)dlerror();
	if ((p->handle = dlopen(file, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		msg = dlerror();
		if (msg == NULL)
			msg = "cannot load";
		/* dlerror() usually names the file; make sure it does. */
		if (strstr(msg, file) != NULL)
			errf(err, errlen, "%s", msg);
		else
			errf(err, errlen, "%s: %s", file, msg);
		rc = ALOOP_EPLUGIN;
		goto fail;
	}
	(void)dlerror();
	d = dlsym(p->handle, ALOOP_PLUGIN_SYMBOL);
	if (d == NULL) {
		errf(err, errlen, "%s: not an aloop plugin: no symbol \"%s\"",
		    file, ALOOP_PLUGIN_SYMBOL);
		rc = ALOOP_EPLUGIN;
		goto fail;
	}
	if ((rc = check_descriptor(file, d, &p->desc, err, errlen)) != 0)
		goto fail;
	p->refs = 1;
	*pp = p;
	return 0;
fail:
	if (p->handle != NULL)
		dlclose(p->handle);
	free(p->file);
	free(p);
	return rc;
}

struct plugin *
plugin_ref(struct plugin *p)
{
	p->refs++;
	return p;
}

void
plugin_release(struct plugin *p)
{
	if (p == NULL || --p->refs > 0)
		return;
	dlclose(p->handle);
	free(p->file);
	free(p);
}

const struct aloop_plugin *
plugin_descriptor(const struct plugin *p)
{
	return &p->desc;
}

const char *
plugin_file(const struct plugin *p)
{
	return p->file;
}

int
plugin_instance_new(const struct plugin *p, const struct aloop_plugin_env *env,
    const struct aloop_settings *settings, void **instance)
{
	const struct aloop_plugin *d = &p->desc;
	void *inst = NULL, *made;
	int rc;

	*instance = NULL;
	if (d->settings != NULL) {
		if ((inst = calloc(1, d->instance_size)) == NULL)
			return ALOOP_ENOMEM;
		if ((rc = aloop_settings_read(settings, d->settings,
		    inst)) != 0) {
			aloop_settings_free(d->settings, inst);
			free(inst);
			return rc;
		}
	}
	if (d->init == NULL) {
		*instance = inst;
		return 0;
	}
	made = inst;
	rc = d->init(env, settings, &inst);
	if (rc > 0)		/* not a valid error: treat it as a refusal */
		rc = ALOOP_EPLUGIN;
	/*
	 * With a table the instance is aloopd's: an init that replaced it
	 * (a copied "*instance = NULL;", say) would leak it and hand the
	 * plugin's stream_task a pointer aloopd does not own.
	 */
	if (rc == 0 && d->settings != NULL && inst != made) {
		aloop_log(ALOOP_LOG_ERR, "plugin %s: init replaced the "
		    "instance aloopd made from its settings table", d->name);
		rc = ALOOP_EPLUGIN;
	}
	if (rc == 0)
		*instance = inst;
	else if (made != NULL) {
		aloop_settings_free(d->settings, made);
		free(made);
	}
	return rc;
}

void
plugin_instance_free(const struct plugin *p, void *instance)
{
	if (p->desc.fini != NULL)
		p->desc.fini(instance);
	if (p->desc.settings != NULL && instance != NULL) {
		aloop_settings_free(p->desc.settings, instance);
		free(instance);
	}
}
