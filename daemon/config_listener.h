/*
 * The `listeners` list of aloop.conf (config_listener.c): each entry's
 * settings, its addresses and its TLS group.  Private to the daemon.
 */
#ifndef ALOOPD_CONFIG_LISTENER_H
#define ALOOPD_CONFIG_LISTENER_H

#include <libconfig.h>

struct config;
struct config_address;
struct config_listener;
struct spec;

/*
 * Parse one listen address, "host:port", "[v6]:port", "*:port" or
 * "unix:/path", into @a (zeroed first).  Returns NULL, or what is wrong
 * with it; either way config_free_address(@a) frees what it holds.
 */
const char *config_parse_address(const char *text, struct config_address *a);
void	config_free_address(struct config_address *a);

/* The `listeners` list (a T_CUSTOM parser), and freeing one entry. */
void	config_parse_listeners(struct config *cfg, config_setting_t *s,
	    const struct spec *sp, void *obj);
void	config_free_listener(struct config_listener *l);

/*
 * A listener's table of settings, and whether setting @name belongs in
 * the listener @group (its type's, TLS's), for -T's defaults.
 */
const struct spec *config_listener_specs(void);
int	config_listener_applies(const config_setting_t *group,
	    const char *name);

#endif /* ALOOPD_CONFIG_LISTENER_H */
