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

static void
stderr_sink(int level, const char *line, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s: %s: %s\n", sink_ident,
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
