/*
 * What the library (and its unit tests) may ask the executor beyond the
 * public API.  Private to lib/.
 *
 * How the executor meets the loop: the first aloop_run_in_executor() or
 * aloop_set_default_executor() on a loop creates a small per-loop record
 * (the default pool and a reference-counted liveness token shared with the
 * jobs in flight) and tracks it with aloop__loop_track().  aloop_close()
 * therefore tells the executor through the resource's on_loop_close, with
 * no extra hook: the token is marked closed, futures of jobs in flight are
 * released, and the default pool is shut down without waiting.  A job that
 * finishes later sees the closed token and never touches the loop, which
 * may be freed by then.
 */
#ifndef ALOOP_EXECUTOR_INT_H
#define ALOOP_EXECUTOR_INT_H

#include <aloop/loop.h>

/*
 * A snapshot of @ex: its thread limit, the threads alive and the jobs
 * queued but not yet started.  Any pointer may be NULL.  Any thread.
 */
void aloop__executor_stats(struct aloop_executor *ex, unsigned *max_workers,
    unsigned *nthreads, unsigned *nqueued);

/*
 * The loop's default pool, or NULL while none was made or set.  The loop
 * keeps ownership.  The loop's thread.
 */
struct aloop_executor *aloop__executor_default(struct aloop_loop *loop);

#endif /* ALOOP_EXECUTOR_INT_H */
