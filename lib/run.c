/*
 * aloop_run_until_complete: run_forever with a done-callback that stops
 * the loop.  Kept apart from loop.c because it is the one piece of the
 * loop core built on the public future API.
 */
#include "config.h"

#include <aloop/future.h>
#include <aloop/task.h>

#include "loop-core-int.h"

static void
done_cb(struct aloop_future *fut, void *arg)
{
	struct aloop_loop *loop = arg;

	/* A callback left over from an earlier run (the loop was stopped by
	 * something else in the batch that completed the future) must not
	 * stop a later run. */
	if (loop->ruc_future == fut)
		aloop_stop(loop);
}

int
aloop_run_until_complete(struct aloop_loop *loop, struct aloop_future *fut,
    void **result)
{
	int rc;

	if (result != NULL)
		*result = NULL;
	/* A task runs inside a loop, also while the loop closes. */
	if (loop->closed || aloop_is_running(loop) ||
	    aloop_get_running_loop() != NULL || aloop_current_task() != NULL)
		return ALOOP_ESTATE;
	if (fut == NULL || aloop_future_get_loop(fut) != loop)
		return ALOOP_EINVAL;
	if ((rc = aloop_future_add_done_callback(fut, done_cb, loop)) != 0)
		return rc;
	/* The loop's own reference: a callback may release the caller's. */
	aloop_future_ref(fut);
	loop->ruc_future = fut;
	rc = aloop_run_forever(loop);
	loop->ruc_future = NULL;
	aloop_future_remove_done_callback(fut, done_cb, loop);
	if (rc == 0) {
		if (!aloop_future_done(fut))
			rc = ALOOP_ESTATE;	/* stopped before it was done */
		else
			rc = aloop_future_result(fut, result);
	}
	aloop_future_release(fut);
	return rc;
}
