/*
 * aloopd's log sink: where aloop_log() lines go once the daemon runs.
 * stderr (with journald's "<N>" priority prefixes when stderr is the
 * journal's stream, else an ISO 8601 time) or syslog.
 */
#ifndef ALOOPD_LOGSINK_H
#define ALOOPD_LOGSINK_H

#include <stddef.h>

#define LOGSINK_STDERR	0
#define LOGSINK_SYSLOG	1

/*
 * Send every line to @target (LOGSINK_*), as program @ident.  For stderr,
 * JOURNAL_STREAM naming stderr's own device and inode means journald reads
 * it: each line then starts with "<N>" (N the syslog priority) so that the
 * journal keeps the level.  Main thread, before other threads log.
 */
void	logsink_open(int target, const char *ident);

/* Back to the library's stderr default; closes syslog.  Idempotent. */
void	logsink_close(void);

/* Whether stderr is connected to the journal (JOURNAL_STREAM matches). */
int	logsink_stderr_is_journal(void);

/*
 * The time now in ISO 8601, local, with milliseconds and the offset
 * ("2026-12-02T07:01:02.345+01:00"), into @buf of at least
 * LOGSINK_TIMESTAMP_MAX bytes; its length.  Any thread.
 */
#define LOGSINK_TIMESTAMP_MAX	32
size_t	logsink_timestamp(char *buf, size_t size);

/* LOGSINK_* for "stderr" or "syslog", or -1. */
int	logsink_target_from_name(const char *name);

#endif /* ALOOPD_LOGSINK_H */
