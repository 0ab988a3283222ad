/*
 * The readers behind aloop_daemon_metrics_* (<aloop/host.h>): aloopd's
 * counters, kept in the scoreboard, as a plugin sees them.  Counting
 * itself is the scoreboard's (SB_COUNT); nothing here writes.
 */
#ifndef ALOOPD_METRICS_H
#define ALOOPD_METRICS_H

/* Count a reload of the configuration and whether it took.  Master. */
void	metrics_reload(int ok);

/* Count a worker replaced after it died: "signal", "stall" or "exit". */
void	metrics_restart(const char *reason);

#endif /* ALOOPD_METRICS_H */
