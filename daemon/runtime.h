/*
 * aloopd's running part: from a validated configuration to serving
 * clients, and back to exit.  main() calls runtime_run() once the command
 * line is handled.
 */
#ifndef ALOOPD_RUNTIME_H
#define ALOOPD_RUNTIME_H

struct config;

struct runtime_options {
	const char	*config_path;	/* re-read on SIGHUP */
	int		 foreground;	/* 0: detach once all is bound */
	int		 debug;		/* the loops' debug mode */
};

/*
 * Run @cfg (a configuration config_load() accepted; runtime_run takes
 * ownership and frees it): install the log sink, bind every listener on
 * every worker, write the pidfile, drop privileges, tell systemd READY=1,
 * then serve until SIGTERM/SIGINT and drain.  SIGHUP reloads from
 * @o->config_path.  Returns the process's exit status: 0 after a graceful
 * stop, 1 when start-up failed (the reason is logged).  Main thread, once.
 */
int	runtime_run(struct config *cfg, const struct runtime_options *o);

#endif /* ALOOPD_RUNTIME_H */
