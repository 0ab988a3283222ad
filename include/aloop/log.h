/*
 * One logging API for the library, the daemon and plugins.  The program
 * that embeds aloop owns the sink; by default lines go to stderr.
 */
#ifndef ALOOP_LOG_H
#define ALOOP_LOG_H

#include <aloop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Levels are syslog's, so a sink can pass them straight on. */
#define ALOOP_LOG_ERR		3
#define ALOOP_LOG_WARNING	4
#define ALOOP_LOG_NOTICE	5
#define ALOOP_LOG_INFO		6
#define ALOOP_LOG_DEBUG		7

/**
 * A log sink: receives one complete line (no trailing newline) at a level.
 * It may be called from any thread, concurrently; it must not call back into
 * the logging API.
 */
typedef void (*aloop_log_sink_fn)(int level, const char *line, void *arg);

/**
 * Install the sink (NULL restores the stderr default).  Call at start-up,
 * before other threads log: the switch itself is not synchronised.
 */
ALOOP_API void aloop_log_set_sink(aloop_log_sink_fn sink, void *arg);

/** Lines above this level are dropped before formatting.  Any thread. */
ALOOP_API void aloop_log_set_level(int level);
ALOOP_API int aloop_log_get_level(void);

/** Format and emit one line.  Any thread. */
ALOOP_API void aloop_log(int level, const char *fmt, ...) ALOOP_PRINTF(2, 3);

/** Like aloop_log(), then ": " and strerror(errno), as warn(3) does. */
ALOOP_API void aloop_log_errno(int level, const char *fmt, ...) ALOOP_PRINTF(2, 3);

/** The name of a level ("error", "warning", ...), or NULL if out of range. */
ALOOP_API const char *aloop_log_level_name(int level);

/** The level for a name ("err"/"error", "warning", "notice", "info",
 * "debug"), or -1. */
ALOOP_API int aloop_log_level_from_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_LOG_H */
