/*
 * Between config.c and settings.c: how an error about one libconfig node is
 * reported, so that the plugins' settings errors read exactly like the
 * daemon's own (`file:line: path "value": what`).  Private to the daemon.
 */
#ifndef ALOOPD_SETTINGS_INT_H
#define ALOOPD_SETTINGS_INT_H

#include <stdarg.h>

#include <libconfig.h>

#include <aloop/common.h>

/*
 * Add an error about @node (or, with @child set, about its missing child of
 * that name) to the config whose tree holds @node.
 */
void config_vreport(const config_setting_t *node, const char *child,
    const char *fmt, va_list ap) ALOOP_PRINTF(3, 0);
void config_report(const config_setting_t *node, const char *child,
    const char *fmt, ...) ALOOP_PRINTF(3, 4);

/* The settings node of a libconfig setting, and back; they are one object. */
#define SETTINGS_NODE(s)	((const struct aloop_settings *)(s))
#define NODE_SETTING(n)		((const config_setting_t *)(n))

#endif /* ALOOPD_SETTINGS_INT_H */
