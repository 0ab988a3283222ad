/*
 * aloopd's master process: it reads and checks the configuration, binds
 * the listening sockets, starts `workers` worker processes per
 * generation, replaces a worker that crashes or stalls, reloads by
 * starting a new generation, upgrades its own binary, and owns the
 * signals, the pidfile, sd_notify and the log.  It runs no plugin code
 * and serves no client, and nothing in it waits on a worker without a
 * deadline.
 */
#ifndef ALOOPD_MASTER_H
#define ALOOPD_MASTER_H

struct config;

struct master_options {
	const char	*config_path;	/* re-read on SIGHUP */
	int		 foreground;	/* 0: detach once serving */
	int		 debug;		/* the loops' debug mode */
	char *const	*argv;		/* for a binary upgrade's exec */
};

/*
 * Run aloopd with @cfg, a configuration config_parse() accepted and
 * check_plugins() passed (the master takes ownership): serve until
 * SIGTERM/SIGINT, or until a binary upgrade hands over.  Returns the exit
 * status: 0 after a graceful stop, 1 if start-up failed (logged).
 */
int	master_run(struct config *cfg, const struct master_options *o);

#endif /* ALOOPD_MASTER_H */
