/*
 * Checking a configuration's plugins without running plugin code in the
 * calling process: a child loads every plugin and has it check its
 * settings, and tells the parent what it found through a pipe.  A plugin
 * whose constructor or init crashes or hangs costs that child only, and
 * the parent reports it as a configuration error.  `aloopd -t`, the
 * master's start and every reload run this same check.
 */
#ifndef ALOOPD_CHECK_H
#define ALOOPD_CHECK_H

struct aloop_loop;
struct config;

/* How long a child may take before it is killed and the check fails. */
#define CHECK_TIMEOUT	30.0

/*
 * Check @cfg's plugins, waiting (up to CHECK_TIMEOUT) for the child.
 * Every problem is appended to @cfg->errors.  0, or ALOOP_ECONFIG.
 * Before the master's loop runs, and in `aloopd -t`.
 */
int	check_plugins(struct config *cfg);

/*
 * The same, driven by @loop, for a reload: @done(@cfg, 0 or ALOOP_ECONFIG,
 * @arg) runs on the loop once the child is done, crashed or timed out; it
 * always runs exactly once unless this returns an error at once.
 */
int	check_plugins_async(struct aloop_loop *loop, struct config *cfg,
	    void (*done)(struct config *, int, void *), void *arg);

#endif /* ALOOPD_CHECK_H */
