/*
 * The daemon's log sink.  The library formats and filters lines; this file
 * only decides where a finished line goes and how it is framed for the
 * reader at the other end (a terminal, journald or syslogd).
 */
#include "config.h"

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <aloop/log.h>

#include "logsink.h"

static char sink_ident[64] = "aloopd";
static int syslog_open;

int
logsink_stderr_is_journal(void)
{
	const char *s = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int n;

	if (s == NULL)
		return 0;
	/*
	 * systemd's own rule (systemd.exec(5)): the variable alone may have
	 * been inherited by a process whose stderr was redirected since, so
	 * only a matching device and inode prove journald is listening.
	 */
	if (sscanf(s, "%llu:%llu%n", &dev, &ino, &n) != 2 || s[n] != '\0')
		return 0;
	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

static void
journal_sink(int level, const char *line, void *arg)
{
	(void)arg;
	/* journald adds the time and the program name itself. */
	fprintf(stderr, "<%d>%s\n", level, line);
}

size_t
logsink_timestamp(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char zone[8];
	int n;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	if (size < LOGSINK_TIMESTAMP_MAX ||
	    localtime_r(&ts.tv_sec, &tm) == NULL ||
	    strftime(zone, sizeof(zone), "%z", &tm) != 5) {
		if (size > 0)
			buf[0] = '\0';
		return 0;
	}
	/* ISO 8601 with milliseconds and the offset as +hh:mm. */
	n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%.3s:%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, zone, zone + 3);
	return n > 0 ? (size_t)n : 0;
}

static void
stderr_sink(int level, const char *line, void *arg)
{
	char now[LOGSINK_TIMESTAMP_MAX];

	(void)arg;
	/* Outside the journal nothing else dates the line. */
	logsink_timestamp(now, sizeof(now));
	fprintf(stderr, "%s %s: %s: %s\n", now, sink_ident,
	    aloop_log_level_name(level), line);
}

static void
syslog_sink(int level, const char *line, void *arg)
{
	(void)arg;
	syslog(level, "%s", line);
}

void
logsink_open(int target, const char *ident)
{
	logsink_close();
	snprintf(sink_ident, sizeof(sink_ident), "%s", ident);
	if (target == LOGSINK_SYSLOG) {
		/* LOG_NDELAY: connect now, before the privilege drop. */
		openlog(sink_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
		syslog_open = 1;
		aloop_log_set_sink(syslog_sink, NULL);
	} else if (logsink_stderr_is_journal()) {
		aloop_log_set_sink(journal_sink, NULL);
	} else {
		/* Lines of threads stay whole: stdio locks stderr per call. */
		aloop_log_set_sink(stderr_sink, NULL);
	}
}

void
logsink_close(void)
{
	aloop_log_set_sink(NULL, NULL);
	if (syslog_open) {
		closelog();
		syslog_open = 0;
	}
}

int
logsink_target_from_name(const char *name)
{
	if (strcmp(name, "stderr") == 0)
		return LOGSINK_STDERR;
	if (strcmp(name, "syslog") == 0)
		return LOGSINK_SYSLOG;
	return -1;
}
