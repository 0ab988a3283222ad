/*
 * Helpers the loop core's tests share: a watchdog that stops a loop that
 * would otherwise hang, and a count of open descriptors to prove that a
 * closed loop left nothing open.
 */
#ifndef ALOOP_LOOP_TEST_H
#define ALOOP_LOOP_TEST_H

#include <dirent.h>

#include <aloop/loop.h>

#include "runner.h"

/* Generous: only a broken loop ever gets there. */
#define WATCHDOG_SECS	10.0

struct watchdog {
	struct aloop_loop	*loop;
	aloop_handle_t		 handle;
	int			 fired;
};

static inline void
watchdog_cb(void *arg)
{
	struct watchdog *wd = arg;

	wd->fired = 1;
	aloop_stop(wd->loop);
}

static inline void
watchdog_arm(struct watchdog *wd, struct aloop_loop *loop)
{
	wd->loop = loop;
	wd->fired = 0;
	CU_ASSERT_FATAL(aloop_call_later(loop, WATCHDOG_SECS, watchdog_cb, wd,
	    &wd->handle) == 0);
}

static inline void
watchdog_disarm(struct watchdog *wd)
{
	CU_ASSERT(!wd->fired);
	aloop_handle_cancel(wd->loop, wd->handle);
}

/* Open descriptors of this process, from /proc/self/fd. */
static inline int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

#endif /* ALOOP_LOOP_TEST_H */
