/*
 * The logging API: printf-style lines, filtered by level, handed to one
 * sink that the embedding program chooses (stderr by default).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <aloop/log.h>

/* Long enough for any line worth reading; longer ones are cut, not split. */
#define LOG_LINE_MAX	2048

static const char *const level_names[] = {
	[ALOOP_LOG_ERR] = "error",
	[ALOOP_LOG_WARNING] = "warning",
	[ALOOP_LOG_NOTICE] = "notice",
	[ALOOP_LOG_INFO] = "info",
	[ALOOP_LOG_DEBUG] = "debug",
};

static void stderr_sink(int, const char *, void *);

static aloop_log_sink_fn log_sink = stderr_sink;
static void *log_sink_arg;
static atomic_int log_level = ALOOP_LOG_INFO;

static void
stderr_sink(int level, const char *line, void *arg)
{
	(void)arg;
	/* One fprintf per line keeps lines from threads whole (stdio locks). */
	fprintf(stderr, "aloop: %s: %s\n", aloop_log_level_name(level), line);
}

void
aloop_log_set_sink(aloop_log_sink_fn sink, void *arg)
{
	log_sink = sink != NULL ? sink : stderr_sink;
	log_sink_arg = sink != NULL ? arg : NULL;
}

void
aloop_log_set_level(int level)
{
	atomic_store(&log_level, level);
}

int
aloop_log_get_level(void)
{
	return atomic_load(&log_level);
}

const char *
aloop_log_level_name(int level)
{
	if (level < ALOOP_LOG_ERR || level > ALOOP_LOG_DEBUG)
		return NULL;
	return level_names[level];
}

int
aloop_log_level_from_name(const char *name)
{
	if (strcasecmp(name, "err") == 0)
		return ALOOP_LOG_ERR;
	for (int l = ALOOP_LOG_ERR; l <= ALOOP_LOG_DEBUG; l++)
		if (strcasecmp(name, level_names[l]) == 0)
			return l;
	return -1;
}

static void
vlog(int level, int errnum, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (errnum != 0 && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - n, ": %s", strerror(errnum));
	log_sink(level, line, log_sink_arg);
}

void
aloop_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vlog(level, 0, fmt, ap);
	va_end(ap);
}

void
aloop_log_errno(int level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vlog(level, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}
