/*
 * The plugin loader with the fixture plugins: a good one loads and makes
 * instances; each broken one is refused with a message that names the file
 * (and both ABI versions where they differ), never a crash; a plugin's own
 * settings errors come out as `file:line: path "value": what`.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "config-int.h"
#include "daemon_test.h"
#include "plugin_loader.h"
#include "runner.h"
#include "../fixtures/plugin_table.h"

#define ERRORS(...)	((const char *const []){ __VA_ARGS__, NULL })

/* Open fixture @name, expecting a refusal that reads @want (after the path). */
static void
expect_refused(const char *name, const char *want)
{
	char err[1024], line[2048];
	struct plugin *p = (struct plugin *)1;
	const char *file = td_fixture(name);

	CU_ASSERT_EQUAL(plugin_open(file, &p, err, sizeof(err)),
	    ALOOP_EPLUGIN);
	CU_ASSERT_PTR_NULL(p);
	snprintf(line, sizeof(line), "%s: %s", file, want);
	CU_ASSERT_STRING_EQUAL(err, line);
}

static void
test_good_plugin_loads(void)
{
	const struct aloop_plugin *d;
	struct aloop_plugin_env env;
	struct plugin *p;
	char err[1024];
	void *inst;

	CU_ASSERT_EQUAL_FATAL(plugin_open(td_fixture("plugin_good"), &p, err,
	    sizeof(err)), 0);
	d = plugin_descriptor(p);
	CU_ASSERT_STRING_EQUAL(d->name, "good");
	CU_ASSERT_STRING_EQUAL(d->version, "2.5");
	CU_ASSERT_EQUAL(d->abi_major, ALOOP_PLUGIN_ABI_MAJOR);
	CU_ASSERT_EQUAL(d->size, sizeof(struct aloop_plugin));
	CU_ASSERT_STRING_EQUAL(d->build, ALOOP_PLUGIN_BUILD);
	CU_ASSERT_PTR_NOT_NULL(d->stream);
	CU_ASSERT_PTR_NULL(d->datagram);
	CU_ASSERT_STRING_EQUAL(plugin_file(p), td_fixture("plugin_good"));

	/* A second reference keeps it loaded after the first goes. */
	CU_ASSERT_PTR_EQUAL(plugin_ref(p), p);
	plugin_release(p);
	memset(&env, 0, sizeof(env));
	env.size = sizeof(env);
	env.listener = "x";
	env.type = ALOOP_PLUGIN_STREAM;
	/* Without settings the good plugin refuses: count is required. */
	CU_ASSERT_EQUAL(plugin_instance_new(p, &env, NULL, &inst),
	    ALOOP_ECONFIG);
	env.size = 0;
	CU_ASSERT_EQUAL(plugin_instance_new(p, &env, NULL, &inst),
	    ALOOP_EINVAL);
	CU_ASSERT_PTR_NULL(inst);
	plugin_release(p);
	plugin_release(NULL);
}

static void
test_wrong_major_refused(void)
{
	char want[256];

	snprintf(want, sizeof(want), "plugin ABI %d.%d, but aloopd speaks "
	    "ABI %d.%d: rebuild the plugin against this aloop",
	    ALOOP_PLUGIN_ABI_MAJOR + 1, ALOOP_PLUGIN_ABI_MINOR,
	    ALOOP_PLUGIN_ABI_MAJOR, ALOOP_PLUGIN_ABI_MINOR);
	expect_refused("plugin_wrong_major", want);
}

static void
test_newer_minor_refused(void)
{
	char want[256];

	snprintf(want, sizeof(want), "plugin needs ABI %d.%d, but aloopd "
	    "speaks only up to %d.%d: upgrade aloopd",
	    ALOOP_PLUGIN_ABI_MAJOR, ALOOP_PLUGIN_ABI_MINOR + 1,
	    ALOOP_PLUGIN_ABI_MAJOR, ALOOP_PLUGIN_ABI_MINOR);
	expect_refused("plugin_newer_minor", want);
}

static void
test_short_struct_refused(void)
{
	char want[256];

	snprintf(want, sizeof(want), "plugin descriptor is %zu bytes, ABI "
	    "%d.%d needs %zu: it was not built with ALOOP_PLUGIN_HEADER",
	    offsetof(struct aloop_plugin, fini), ALOOP_PLUGIN_ABI_MAJOR,
	    ALOOP_PLUGIN_ABI_MINOR, sizeof(struct aloop_plugin));
	expect_refused("plugin_short", want);
}

static void
test_both_forms_refused(void)
{
	expect_refused("plugin_both_forms", "plugin \"bad\" has both a "
	    "stream task and a stream protocol: give it one of them");
}

static void
test_no_form_refused(void)
{
	expect_refused("plugin_no_form", "plugin \"bad\" needs a stream "
	    "task, a stream protocol or a datagram protocol, each protocol "
	    "with its factory");
}

/* A plugin built for ABI 2.0 loads; what it lacks reads as zero. */
static void
test_old_minor_loads(void)
{
	const struct aloop_plugin *d;
	struct plugin *p;
	char err[1024];

	CU_ASSERT_EQUAL_FATAL(plugin_open(td_fixture("plugin_old_minor"), &p,
	    err, sizeof(err)), 0);
	d = plugin_descriptor(p);
	CU_ASSERT_EQUAL(d->abi_minor, 0);
	CU_ASSERT_PTR_NOT_NULL(d->stream);
	CU_ASSERT_PTR_NULL(d->stream_task);
	CU_ASSERT_EQUAL(d->stream_task_stack, 0);
	plugin_release(p);
}

static void
test_missing_symbol_refused(void)
{
	expect_refused("plugin_missing_symbol",
	    "not an aloop plugin: no symbol \"aloop_plugin\"");
}

static void
test_undefined_symbol_refused(void)
{
	char err[1024];
	struct plugin *p;
	const char *file = td_fixture("plugin_undefined");

	CU_ASSERT_EQUAL(plugin_open(file, &p, err, sizeof(err)),
	    ALOOP_EPLUGIN);
	CU_ASSERT_PTR_NULL(p);
	/* dlerror()'s text, which names the file and the symbol. */
	CU_ASSERT_EQUAL(strncmp(err, file, strlen(file)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err,
	    "undefined symbol: aloop_fixture_missing_function"));
}

static void
test_not_a_shared_object_refused(void)
{
	char err[1024], want[1024];
	struct plugin *p;

	td_enter();
	td_write("junk.so", "this is not ELF\n");
	snprintf(want, sizeof(want), "%s/junk.so: ", td_dir());
	CU_ASSERT_EQUAL(plugin_open("junk.so", &p, err, sizeof(err)),
	    ALOOP_EPLUGIN);
	/* The message starts with the file, whatever dlopen says next. */
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "junk.so: "));
	CU_ASSERT_EQUAL(plugin_open("/nonexistent/x.so", &p, err,
	    sizeof(err)), ALOOP_EPLUGIN);
	CU_ASSERT_EQUAL(strncmp(err, "/nonexistent/x.so: ", 19), 0);
	td_leave();
}

static void
test_find(void)
{
	char *dirs[2], err[1024], *file, want[1200];
	const char *fix = td_fixture("plugin_good");
	char fixdir[1024];

	snprintf(fixdir, sizeof(fixdir), "%.*s",
	    (int)(strrchr(fix, '/') - fix), fix);
	dirs[0] = "/nonexistent";
	dirs[1] = fixdir;
	CU_ASSERT_EQUAL_FATAL(plugin_find("plugin_good", dirs, 2, NULL, &file,
	    err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(file, fix);
	free(file);
	/* A path is taken as it is, relative to the base. */
	CU_ASSERT_EQUAL_FATAL(plugin_find("./plugin_good.so", NULL, 0, fixdir,
	    &file, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/./plugin_good.so", fixdir);
	CU_ASSERT_STRING_EQUAL(file, want);
	free(file);
	CU_ASSERT_EQUAL(plugin_find("nothing", dirs, 1, NULL, &file, err,
	    sizeof(err)), ALOOP_ENOENT);
	CU_ASSERT_PTR_NULL(file);
	snprintf(want, sizeof(want), "no nothing.so in /nonexistent, %s",
	    PLUGINDIR);
	CU_ASSERT_STRING_EQUAL(err, want);
	CU_ASSERT_EQUAL(plugin_find("../etc/x", dirs, 1, "/nonexistent",
	    &file, err, sizeof(err)), ALOOP_ENOENT);
	CU_ASSERT_EQUAL(plugin_find("bad name", dirs, 1, NULL, &file, err,
	    sizeof(err)), ALOOP_EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "not a plugin name (letters, digits, "
	    "'-', '_' and '.') nor a path");
}

/* Write aloop.conf with @listener's protocol and settings, then load it. */
static int
load_with(const char *protocol, const char *type, const char *settings,
    struct config **cfg)
{
	char text[4096];

	snprintf(text, sizeof(text),
	    "listeners = (\n"
	    "  {\n"
	    "    name = \"x\";\n"
	    "    protocol = \"%s\";\n"
	    "    type = \"%s\";\n"
	    "    listen = [ \"127.0.0.1:7000\" ];\n"
	    "    %s\n"
	    "  }\n"
	    ");\n", protocol, type, settings);
	td_write("aloop.conf", text);
	return config_load("aloop.conf", cfg);
}

static void
test_config_loads_plugins(void)
{
	struct config *cfg;

	td_enter();
	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_good"), "tcp",
	    "settings = { count = 3; greeting = \"hi\"; ratio = 2;\n"
	    "      flags = [ true, false ]; };", &cfg), 0);
	CU_ASSERT(td_errors_are(cfg, ERRORS(NULL)));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg->listeners[0].plugin);
	CU_ASSERT_STRING_EQUAL(plugin_descriptor(
	    cfg->listeners[0].plugin)->name, "good");
	config_free(cfg);
	td_leave();
}

static void
test_plugin_settings_errors(void)
{
	struct config *cfg;

	td_enter();
	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_good"), "tcp",
	    "settings = { count = 99; greeting = 5; ratio = \"x\";\n"
	    "      colour = \"red\"; flags = [ 1, 2 ]; };", &cfg),
	    ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS(
	    "aloop.conf:8: listeners[0].settings.colour \"red\": unknown "
	    "setting",
	    "aloop.conf:7: listeners[0].settings.count \"99\": out of range "
	    "(1..10)",
	    "aloop.conf:7: listeners[0].settings.greeting \"5\": expected a "
	    "string",
	    "aloop.conf:7: listeners[0].settings.ratio \"x\": expected a "
	    "number",
	    "aloop.conf:8: listeners[0].settings.flags[0] \"1\": expected "
	    "true or false",
	    "aloop.conf:8: listeners[0].settings.flags[1] \"2\": expected "
	    "true or false")));
	config_free(cfg);

	/* No settings group at all: the error points at the listener. */
	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_good"), "tcp", "", &cfg),
	    ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS(
	    "aloop.conf:2: listeners[0].settings: count is required")));
	config_free(cfg);
	td_leave();
}

/* A task plugin built for ABI 2.1 loads, with no settings table. */
static void
test_minor_1_loads(void)
{
	const struct aloop_plugin *d;
	struct aloop_plugin_env env;
	struct plugin *p;
	char err[1024];
	void *inst = (void *)1;

	CU_ASSERT_EQUAL_FATAL(plugin_open(td_fixture("plugin_minor_1"), &p,
	    err, sizeof(err)), 0);
	d = plugin_descriptor(p);
	CU_ASSERT_EQUAL(d->abi_minor, 1);
	CU_ASSERT_PTR_NOT_NULL(d->stream_task);
	CU_ASSERT_PTR_NULL(d->settings);
	CU_ASSERT_EQUAL(d->instance_size, 0);
	memset(&env, 0, sizeof(env));
	env.size = sizeof(env);
	env.listener = "x";
	env.type = ALOOP_PLUGIN_STREAM;
	/* No init and no table: a NULL instance, as before 2.2. */
	CU_ASSERT_EQUAL(plugin_instance_new(p, &env, NULL, &inst), 0);
	CU_ASSERT_PTR_NULL(inst);
	plugin_instance_free(p, inst);
	plugin_release(p);
}

/* ABI 2.2: the loader makes the instance from the plugin's table. */
static void
test_settings_table_defaults(void)
{
	struct aloop_plugin_env env;
	struct table_inst *t;
	struct plugin *p;
	char err[1024];
	void *inst;

	CU_ASSERT_EQUAL_FATAL(plugin_open(td_fixture("plugin_table"), &p, err,
	    sizeof(err)), 0);
	CU_ASSERT_EQUAL(plugin_descriptor(p)->abi_minor,
	    ALOOP_PLUGIN_ABI_MINOR);
	memset(&env, 0, sizeof(env));
	env.size = sizeof(env);
	env.listener = "x";
	env.type = ALOOP_PLUGIN_STREAM;
	/* No settings group: every default, then init on the struct. */
	CU_ASSERT_EQUAL_FATAL(plugin_instance_new(p, &env, NULL, &inst), 0);
	t = inst;
	CU_ASSERT_EQUAL(t->count, 3);
	CU_ASSERT_EQUAL(t->verbose, 0);
	CU_ASSERT_DOUBLE_EQUAL(t->ratio, 0.5, 1e-9);
	CU_ASSERT_STRING_EQUAL(t->greeting, "hello");
	CU_ASSERT_PTR_NULL(t->unset);
	CU_ASSERT_EQUAL(t->init_saw, 1);
	/* fini, then the strings and the struct: ASan sees no leak. */
	plugin_instance_free(p, inst);
	plugin_release(p);
}

static void
test_settings_table_values(void)
{
	struct config *cfg;

	td_enter();
	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_table"), "tcp",
	    "settings = { count = 10; verbose = true; ratio = 1;\n"
	    "      greeting = \"hi\"; unset = \"now set\"; };", &cfg), 0);
	CU_ASSERT(td_errors_are(cfg, ERRORS(NULL)));
	config_free(cfg);
	td_leave();
}

static void
test_settings_table_errors(void)
{
	struct config *cfg;

	td_enter();
	/* Every problem of one run, each with its file and line. */
	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_table"), "tcp",
	    "settings = { count = 11; verbose = 1; ratio = 1.5;\n"
	    "      greeting = 5; colour = \"red\"; };", &cfg),
	    ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS(
	    "aloop.conf:8: listeners[0].settings.colour \"red\": unknown "
	    "setting",
	    "aloop.conf:7: listeners[0].settings.count \"11\": out of range "
	    "(1..10)",
	    "aloop.conf:7: listeners[0].settings.verbose \"1\": expected "
	    "true or false",
	    "aloop.conf:7: listeners[0].settings.ratio \"1.5\": out of range "
	    "(0..1)",
	    "aloop.conf:8: listeners[0].settings.greeting \"5\": expected a "
	    "string")));
	config_free(cfg);
	/* Valid for the table, refused by init, which said why. */
	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_table"), "tcp",
	    "settings = { count = 2; ratio = 1.0; };", &cfg), ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS(
	    "aloop.conf:7: listeners[0].settings.ratio \"1\": not below "
	    "half of count")));
	config_free(cfg);
	td_leave();
}

static void
test_bad_table_refused(void)
{
	char want[256];

	snprintf(want, sizeof(want), "plugin \"bad\": setting \"far\" has "
	    "no valid type or lies outside the %zu-byte instance",
	    sizeof(int));
	expect_refused("plugin_bad_table", want);
	snprintf(want, sizeof(want), "plugin \"bad\": setting \"odd\" at "
	    "offset 1 is not aligned for its type (%zu)",
	    _Alignof(long long));
	expect_refused("plugin_misaligned", want);
}

static void
test_config_reports_refusals(void)
{
	struct config *cfg;
	char line[2048];

	td_enter();
	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_failing_init"), "tcp",
	    "", &cfg), ALOOP_ECONFIG);
	snprintf(line, sizeof(line), "aloop.conf:2: listeners[0].settings: "
	    "plugin \"bad\" refused its settings: %s",
	    aloop_strerror(ALOOP_ENOMEM));
	CU_ASSERT(td_errors_are(cfg, ERRORS(line)));
	config_free(cfg);

	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_wrong_major"), "tcp",
	    "", &cfg), ALOOP_ECONFIG);
	snprintf(line, sizeof(line), "aloop.conf:4: listeners[0].protocol "
	    "\"%s\": %s: plugin ABI %d.%d, but aloopd speaks ABI %d.%d: "
	    "rebuild the plugin against this aloop",
	    td_fixture("plugin_wrong_major"), td_fixture("plugin_wrong_major"),
	    ALOOP_PLUGIN_ABI_MAJOR + 1, ALOOP_PLUGIN_ABI_MINOR,
	    ALOOP_PLUGIN_ABI_MAJOR, ALOOP_PLUGIN_ABI_MINOR);
	CU_ASSERT(td_errors_are(cfg, ERRORS(line)));
	config_free(cfg);

	/* The good plugin has no datagram protocol. */
	CU_ASSERT_EQUAL(load_with(td_fixture("plugin_good"), "udp",
	    "settings = { count = 1; };", &cfg), ALOOP_ECONFIG);
	snprintf(line, sizeof(line), "aloop.conf:4: listeners[0].protocol "
	    "\"%s\": plugin \"good\" has no datagram protocol for type "
	    "\"udp\"", td_fixture("plugin_good"));
	CU_ASSERT(td_errors_are(cfg, ERRORS(line)));
	config_free(cfg);

	/* A bare name searched on plugin_path. */
	td_write("aloop.conf", "daemon = { plugin_path = [ \"lib\" ]; };\n"
	    "listeners = ( { name = \"x\"; protocol = \"echo\";\n"
	    "  listen = [ \"*:7\" ]; } );\n");
	CU_ASSERT_EQUAL(config_load("aloop.conf", &cfg), ALOOP_ECONFIG);
	snprintf(line, sizeof(line), "aloop.conf:2: listeners[0].protocol "
	    "\"echo\": no echo.so in %s/lib, %s", td_dir(), PLUGINDIR);
	CU_ASSERT(td_errors_are(cfg, ERRORS(line)));
	config_free(cfg);
	td_leave();
}

/* The getters on a real settings tree, without a plugin in between. */
static void
test_settings_getters(void)
{
	const struct aloop_settings *s, *list;
	struct config *cfg;
	const char *str;
	long long i;
	double d;
	int b;

	td_enter();
	td_write("aloop.conf", "listeners = ( { name = \"x\"; protocol = "
	    "\"p\";\n  listen = [ \"*:1\" ];\n  settings = { i = 5; "
	    "big = 5000000000L; d = 1.5; b = true; s = \"str\";\n"
	    "  l = ( 1, \"two\" ); g = { k = 1; }; }; } );\n");
	CU_ASSERT_EQUAL_FATAL(config_parse("aloop.conf", &cfg), 0);
	s = cfg->listeners[0].settings;
	CU_ASSERT_EQUAL(aloop_settings_count(s), 7);
	CU_ASSERT_EQUAL(aloop_settings_get_int(s, "i", &i), 0);
	CU_ASSERT_EQUAL(i, 5);
	CU_ASSERT_EQUAL(aloop_settings_get_int(s, "big", &i), 0);
	CU_ASSERT_EQUAL(i, 5000000000LL);
	CU_ASSERT_EQUAL(aloop_settings_get_double(s, "d", &d), 0);
	CU_ASSERT_DOUBLE_EQUAL(d, 1.5, 1e-9);
	CU_ASSERT_EQUAL(aloop_settings_get_double(s, "i", &d), 0);
	CU_ASSERT_DOUBLE_EQUAL(d, 5.0, 1e-9);
	CU_ASSERT_EQUAL(aloop_settings_get_bool(s, "b", &b), 0);
	CU_ASSERT_EQUAL(b, 1);
	CU_ASSERT_EQUAL(aloop_settings_get_string(s, "s", &str), 0);
	CU_ASSERT_STRING_EQUAL(str, "str");
	i = 42;
	CU_ASSERT_EQUAL(aloop_settings_get_int(s, "nope", &i), ALOOP_ENOENT);
	CU_ASSERT_EQUAL(i, 42);
	list = aloop_settings_get(s, "l");
	CU_ASSERT_EQUAL(aloop_settings_type(list), ALOOP_SETTINGS_LIST);
	CU_ASSERT_EQUAL(aloop_settings_count(list), 2);
	CU_ASSERT_PTR_NULL(aloop_settings_name(aloop_settings_at(list, 0)));
	CU_ASSERT_EQUAL(aloop_settings_get_int(aloop_settings_at(list, 0),
	    NULL, &i), 0);
	CU_ASSERT_EQUAL(i, 1);
	CU_ASSERT_PTR_NULL(aloop_settings_at(list, 2));
	CU_ASSERT_EQUAL(aloop_settings_type(aloop_settings_get(s, "g")),
	    ALOOP_SETTINGS_GROUP);
	CU_ASSERT_STRING_EQUAL(aloop_settings_name(aloop_settings_get(s, "g")),
	    "g");
	CU_ASSERT_PTR_NULL(aloop_settings_get(list, "k"));
	CU_ASSERT_EQUAL(cfg->nerrors, 0);
	/* A wrong type is an error of the config, with its line. */
	CU_ASSERT_EQUAL(aloop_settings_get_int(aloop_settings_at(list, 1),
	    NULL, &i), ALOOP_ECONFIG);
	CU_ASSERT_EQUAL(aloop_settings_get_string(s, "g", &str),
	    ALOOP_ECONFIG);
	CU_ASSERT(td_errors_are(cfg, ERRORS(
	    "aloop.conf:4: listeners[0].settings.l[1] \"two\": expected an "
	    "integer",
	    "aloop.conf:4: listeners[0].settings.g: expected a string")));
	config_free(cfg);
	td_leave();
}

static const struct test_case cases[] = {
	TEST(test_good_plugin_loads),
	TEST(test_wrong_major_refused),
	TEST(test_newer_minor_refused),
	TEST(test_short_struct_refused),
	TEST(test_both_forms_refused),
	TEST(test_no_form_refused),
	TEST(test_old_minor_loads),
	TEST(test_minor_1_loads),
	TEST(test_settings_table_defaults),
	TEST(test_settings_table_values),
	TEST(test_settings_table_errors),
	TEST(test_bad_table_refused),
	TEST(test_missing_symbol_refused),
	TEST(test_undefined_symbol_refused),
	TEST(test_not_a_shared_object_refused),
	TEST(test_find),
	TEST(test_config_loads_plugins),
	TEST(test_plugin_settings_errors),
	TEST(test_config_reports_refusals),
	TEST(test_settings_getters),
};

TEST_MAIN("plugin_loader", cases)
