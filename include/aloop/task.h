/*
 * Tasks: asyncio's sequential half.  A task runs a C function on a stack
 * of its own; inside it, aloop_await() suspends only that task until a
 * future is done, so every function of the API that returns a future can
 * be awaited as a coroutine method is in asyncio, with no new variants.
 *
 * Where a function may be called: "task only" functions suspend the
 * calling task and must be called from inside a task (the function a task
 * runs, or anything it calls); elsewhere they return ALOOP_ESTATE at once
 * and never block.  Every other function here may be called from the
 * loop's thread, inside a task or not.  Nothing here is thread-safe: a
 * task belongs to its loop's thread.
 *
 * Stacks: each task gets a stack mapped with mmap(2) and a PROT_NONE guard
 * page below it, ALOOP_TASK_STACK_DEFAULT bytes unless the options say
 * otherwise.  The memory is reserved, not committed: only the pages the
 * task touches cost memory.  A task that overflows its stack touches the
 * guard page and the process dies of SIGSEGV (under AddressSanitizer, ASan
 * reports the stack overflow); size the stack for large local arrays or
 * deep recursion.  Each stack is two mappings (the guard and the stack), so
 * the kernel's vm.max_map_count (65530 by default on Linux) bounds a
 * process to about 32,000 live tasks.  The signal mask and the
 * floating-point environment are the thread's, shared by all its tasks.
 */
#ifndef ALOOP_TASK_H
#define ALOOP_TASK_H

#include <aloop/common.h>
#include <aloop/future.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_loop;

/**
 * The body of a task.  It runs on the task's stack on the loop's thread,
 * starting on a later loop iteration than the call that made the task.
 * Return 0 and set *@result (initially NULL; handed to the task's future,
 * freed by the options' free_result when that future goes), or a negative
 * ALOOP_E* code to fail the future with it.  Returning ALOOP_ECANCELLED
 * cancels the future, as a coroutine that lets CancelledError through
 * does.  *@result is ignored (and freed by free_result) when the function
 * fails.
 */
typedef int (*aloop_task_fn)(void *arg, void **result);

/** The stack of a task unless its options say otherwise: 256 KiB. */
#define ALOOP_TASK_STACK_DEFAULT	(256u * 1024u)

/**
 * Told, on the loop's thread, each time a task starts or resumes running
 * (@running 1) and each time it suspends or ends (@running 0), with the
 * options' switch_arg.  For a host that must know what runs right now (a
 * watchdog naming the code a process is stuck in, a profiler).  It runs
 * on the loop's stack, between the switches: it must not await, create,
 * cancel or resume tasks.
 */
typedef void (*aloop_task_switch_fn)(void *arg, int running);

struct aloop_task_options {
	size_t		 stack_size;	/* 0: ALOOP_TASK_STACK_DEFAULT */
	aloop_free_fn	 free_result;	/* NULL: the result is not freed */
	aloop_task_switch_fn on_switch;	/* NULL: nobody is told */
	void		*switch_arg;
};
ALOOP_API void aloop_task_options_init(struct aloop_task_options *o);

/**
 * Schedule @fn(@arg) to run as a task on @loop (asyncio's create_task).
 * *@fut is the task's future, a reference the caller drops with
 * aloop_future_release() (the task runs on regardless); it completes when
 * @fn returns, so aloop_run_until_complete() runs a task to its end and
 * another task can aloop_await() it.  @o may be NULL.  ALOOP_EINVAL for
 * a NULL @fn or @fut, ALOOP_ESTATE on a closed loop, ALOOP_ENOMEM.
 *
 * Cancelling the future with aloop_future_cancel() marks it cancelled at
 * once (C futures have no pending-cancel state) and cancels the task as
 * aloop_task_cancel() does; the task still runs its cleanup afterwards
 * and what it returns is then dropped.
 *
 * When the loop closes, tasks that have not started never run and their
 * futures are cancelled; each suspended task is resumed once more with
 * ALOOP_ECANCELLED from its current await, and every later await, sleep
 * or wait of it also returns ALOOP_ECANCELLED without suspending, so its
 * cleanup runs to the end; then its stack is freed.  This happens first
 * in aloop_close(), before transports and servers are torn down, so the
 * cleanup may still close them.  A task, cleanup included, can neither run
 * nor close its loop: aloop_run_forever, aloop_run_until_complete,
 * aloop_run and aloop_close return ALOOP_ESTATE from inside a task.
 */
ALOOP_API int aloop_create_task(struct aloop_loop *loop, aloop_task_fn fn,
    void *arg, const struct aloop_task_options *o, struct aloop_future **fut);

/**
 * Ask a task to stop, as asyncio's Task.cancel(): the await it is in (or
 * its next one) returns ALOOP_ECANCELLED, and the future it was awaiting
 * is cancelled, which cancels a task it awaited in turn.  A task that has
 * not started yet never runs.  The task's future stays pending until the
 * function returns; it is cancelled if the function returns
 * ALOOP_ECANCELLED, completes as usual otherwise (the task chose to go
 * on).  One cancel makes one await fail: as in asyncio, later awaits work
 * normally unless the task is cancelled again.  Returns 1 if the request
 * was made, 0 if the task had finished, ALOOP_EINVAL if @task is not a
 * task's future.  May be called from inside the task itself.
 */
ALOOP_API int aloop_task_cancel(struct aloop_future *task);

/**
 * The future of the task running now, borrowed, or NULL outside a task.
 * Loop thread only.
 */
ALOOP_API struct aloop_future *aloop_current_task(void);

/**
 * Task only.  Suspend the calling task until @fut is done, then return
 * its outcome as aloop_future_result() does: 0 with *@result (borrowed
 * from @fut, valid while the caller's reference lives; @result may be
 * NULL), the error code, or ALOOP_ECANCELLED.  A future that is already
 * done returns at once without suspending, as in asyncio.  The caller
 * keeps its reference to @fut (it must hold one across the call).
 * ALOOP_ECANCELLED also when the task is cancelled meanwhile; @fut is then
 * cancelled too.  ALOOP_ESTATE outside a task, ALOOP_EINVAL for a NULL
 * @fut, a future of another loop, or the task's own future.
 */
ALOOP_API int aloop_await(struct aloop_future *fut, void **result);

/**
 * Task only.  Suspend for at least @delay seconds (never less: the loop's
 * timers are never early).  A @delay of 0 or less yields once: the task
 * goes to the back of the ready queue, as asyncio.sleep(0).  0, or
 * ALOOP_ECANCELLED if the task was cancelled; ALOOP_EINVAL as
 * aloop_call_later() for a bad @delay.
 */
ALOOP_API int aloop_sleep(double delay);

/**
 * Task only.  aloop_await() with a deadline, as asyncio.wait_for (3.12):
 * if @fut is not done after @timeout seconds it is cancelled and this
 * returns ALOOP_ETIMEDOUT.  A @timeout of 0 or less does not wait: a done
 * future's outcome, else cancel and ALOOP_ETIMEDOUT.  For no deadline use
 * aloop_await().  If the future completed just as the deadline passed,
 * its outcome wins.  ALOOP_EINVAL for a NaN @timeout.
 */
ALOOP_API int aloop_wait_for(struct aloop_future *fut, double timeout,
    void **result);

/**
 * A future that completes when all @n futures are done, as asyncio.gather
 * with return_exceptions=False: its result is NULL once all succeeded
 * (read each one's result from it), or the first failure's error as soon
 * as one fails (a cancelled one fails it with ALOOP_ECANCELLED); the
 * others go on.  Cancelling it cancels every one not done yet.  It holds a
 * reference to each of @futs until they are all done.  Every failure is
 * marked retrieved.  @n may be 0 (done at once).  Not task only: await it,
 * or run_until_complete it.  ALOOP_EINVAL if a future is NULL or of
 * another loop.
 */
ALOOP_API int aloop_gather(struct aloop_loop *loop,
    struct aloop_future *const *futs, size_t n, struct aloop_future **fut);

/**
 * asyncio.run(): make a new loop, run @fn(@arg) as a task on it until it
 * returns, then cancel every other task left and run the loop until they
 * have ended, close and free the loop.  Returns what @fn returned; on 0
 * *@result (may be NULL) gets its result, which the caller then owns (the
 * options' free_result is used only when the result is not handed over).
 * ALOOP_ESTATE when a loop is already running in this thread.
 */
ALOOP_API int aloop_run(aloop_task_fn fn, void *arg,
    const struct aloop_task_options *o, void **result);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_TASK_H */
