/*
 * What the library (and its unit tests) may ask the executor beyond the
 * public API.  Private to lib/.
 *
 * How the executor meets the loop: the loop holds the default pool
 * (aloop__loop_set_executor) and shuts it down without waiting when it
 * closes.  The first aloop_run_in_executor() on a loop also creates a small
 * per-loop record, the liveness token shared with the jobs in flight, and
 * tracks it with aloop__loop_track(): at aloop_close() the token is marked
 * closed and the futures of jobs in flight are released.  A job that
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
 * How many pool threads of any pool are alive in the process.  A thread
 * stops counting as the last thing it does, after it has let go of its
 * pool.  Any thread.
 */
unsigned aloop__executor_live_threads(void);

#endif /* ALOOP_EXECUTOR_INT_H */
