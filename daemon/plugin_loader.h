/*
 * The plugin loader: finds a plugin by name on the plugin path, dlopen()s
 * it, checks its descriptor against the ABI this daemon speaks, and makes
 * and frees instances.  Every failure is a message naming the file, never a
 * crash.  Main thread only for open/release; instances on their worker.
 */
#ifndef ALOOPD_PLUGIN_LOADER_H
#define ALOOPD_PLUGIN_LOADER_H

#include <stddef.h>

#include <aloop/plugin.h>

struct plugin;

/*
 * Find the file for @protocol: a value with a '/' is a path (relative ones
 * are taken from @base, the configuration's directory); a bare name
 * ("echo") is looked up as NAME.so in each of @dirs in turn, then in the
 * built-in plugin directory.  Sets *@file (the caller frees it) and returns
 * 0, or ALOOP_ENOENT / ALOOP_EINVAL with a message in @err.
 */
int plugin_find(const char *protocol, char *const *dirs, size_t ndirs,
    const char *base, char **file, char *err, size_t errlen);

/*
 * Load @file (RTLD_NOW | RTLD_LOCAL) and check its descriptor: the magic,
 * the same ABI major, a minor no newer than ours, a struct no shorter than
 * its minor needs, the build's data model, a name.  0 with *@p (one
 * reference), or ALOOP_EPLUGIN with a message naming @file in @err.
 */
int plugin_open(const char *file, struct plugin **p, char *err, size_t errlen);

struct plugin *plugin_ref(struct plugin *p);
/* Drop a reference; the last one unloads the plugin.  NULL is fine. */
void plugin_release(struct plugin *p);

/* The descriptor, as this daemon's struct (zero beyond what the plugin had). */
const struct aloop_plugin *plugin_descriptor(const struct plugin *p);
/* The file the plugin was loaded from. */
const char *plugin_file(const struct plugin *p);

/*
 * Make an instance for @env/@settings: with a settings table (ABI 2.2)
 * allocate it and apply the table, then call the plugin's init if it has
 * one (no table and no init make a NULL instance).  Returns the table's
 * error or what init returned; *@instance is set on success.
 */
int plugin_instance_new(const struct plugin *p,
    const struct aloop_plugin_env *env, const struct aloop_settings *settings,
    void **instance);
/* Call the plugin's fini on @instance (if it has one), then free what
 * plugin_instance_new allocated for a settings table. */
void plugin_instance_free(const struct plugin *p, void *instance);

#endif /* ALOOPD_PLUGIN_LOADER_H */
