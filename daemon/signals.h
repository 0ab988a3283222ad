/*
 * The control loop's signal handling: graceful stop on SIGTERM/SIGINT,
 * reload on SIGHUP.  Main thread only.
 */
#ifndef ALOOPD_SIGNALS_H
#define ALOOPD_SIGNALS_H

struct runtime;

/* Handle SIGTERM, SIGINT and SIGHUP on rt->loop; ignore SIGPIPE.  0 or -1. */
int	signals_install(struct runtime *rt);
void	signals_remove(struct runtime *rt);

/*
 * Reload from rt->config_path: load and validate the whole file, prepare
 * its listeners on every worker, and swap only if all of that worked.
 * Tells systemd RELOADING=1 first and READY=1 after, either way.
 */
void	runtime_reload(struct runtime *rt);

#endif /* ALOOPD_SIGNALS_H */
