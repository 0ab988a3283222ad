/*
 * Helpers shared by the daemon's unit tests: a scratch directory per test
 * to write configuration files and certificates into, the paths of the
 * fixture plugins, and exact checks of a configuration's error lines.
 */
#ifndef ALOOP_DAEMON_TEST_H
#define ALOOP_DAEMON_TEST_H

#include <stddef.h>

struct config;

/* Make a fresh scratch directory and chdir into it. */
void	td_enter(void);
/* chdir back and remove the scratch directory with all it holds. */
void	td_leave(void);
/* The scratch directory's absolute path. */
const char *td_dir(void);
/* Write @text to @name in the scratch directory. */
void	td_write(const char *name, const char *text);
/* A self-signed pair in @dir/server.{crt,key}, by script/make-dev-cert. */
int	td_make_cert(const char *dir);
/* The absolute path of fixture plugin @name ("plugin_good"), static. */
const char *td_fixture(const char *name);

/*
 * Whether @cfg's errors are exactly @expected (NULL-ended), in order; the
 * actual errors are printed when not, to show what differs.
 */
int	td_errors_are(const struct config *cfg, const char *const *expected);

#endif /* ALOOP_DAEMON_TEST_H */
