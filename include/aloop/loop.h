/*
 * The event loop: policies, running and stopping, delayed calls, descriptor
 * watchers, signals, the executor, exception handling and debug mode, as
 * asyncio's BaseEventLoop.  Transports and servers are in their own headers.
 *
 * Threads: a loop belongs to the thread that runs it.  Everything here is
 * for that thread only, except where a function says "any thread"
 * (aloop_call_soon_threadsafe, the policy functions).
 */
#ifndef ALOOP_LOOP_H
#define ALOOP_LOOP_H

#include <aloop/common.h>
#include <aloop/future.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_loop;
struct aloop_executor;
struct aloop_transport;

/** A callback scheduled on the loop. */
typedef void (*aloop_callback_fn)(void *arg);

/**
 * A handle names one scheduled call.  It is a value, not a pointer: the
 * loop recycles the call's memory once it has run or been cancelled, and a
 * stale handle simply matches nothing, so cancelling at any time, also
 * after the callback ran or twice, is a harmless no-op.  0 is never a valid
 * handle (ALOOP_HANDLE_NONE).
 */
typedef uint64_t aloop_handle_t;
#define ALOOP_HANDLE_NONE	((aloop_handle_t)0)

/* ---------------------------------------------------------------- policy */

/**
 * An event loop policy: which loop is "the current one".  The default keeps
 * one loop per thread; it creates one on first use in the main thread and
 * reports ALOOP_ESTATE in any other thread that has not set one.
 * All three functions return 0 or a negative error.
 */
struct aloop_policy {
	int	(*get_event_loop)(void *self, struct aloop_loop **loop);
	int	(*set_event_loop)(void *self, struct aloop_loop *loop);
	int	(*new_event_loop)(void *self, struct aloop_loop **loop);
	void	*self;
};

/**
 * The current loop per the policy: while a loop runs in this thread, that
 * loop.  Never sets *@loop to NULL on success.  Any thread.  A loop the
 * default policy created itself is owned by the policy and freed at exit.
 */
ALOOP_API int aloop_get_event_loop(struct aloop_loop **loop);
/** Make @loop (or none, if NULL) this thread's loop.  The caller keeps ownership. */
ALOOP_API int aloop_set_event_loop(struct aloop_loop *loop);
/** A new loop from the policy; the caller owns it (aloop_loop_free). */
ALOOP_API int aloop_new_event_loop(struct aloop_loop **loop);
/** The policy in force (the default one unless another was set).  Any thread. */
ALOOP_API const struct aloop_policy *aloop_get_event_loop_policy(void);
/**
 * Install @policy (copied), or restore the default with NULL.  Call before
 * other threads use the policy functions.
 */
ALOOP_API void aloop_set_event_loop_policy(const struct aloop_policy *policy);
/**
 * The loop running in this thread, or NULL.  Any thread.  In a child made
 * by fork() there is none, and no current loop either, even when the
 * parent forked from inside a callback (as asyncio resets them): the
 * child makes a loop of its own, and must neither run nor free the
 * parent's, whose descriptors it shares.
 */
ALOOP_API struct aloop_loop *aloop_get_running_loop(void);

/* ------------------------------------------------------------- lifecycle */

/**
 * A new loop, independent of any policy; the caller owns it.  Debug mode
 * starts on when the environment has ALOOP_DEBUG set to a non-empty value.
 */
ALOOP_API int aloop_loop_new(struct aloop_loop **loop);

/**
 * Close @loop if open, then free it.  ALOOP_ESTATE (and nothing freed) if it
 * is running.  Objects the loop owns (handles, transports, servers) are
 * gone with it; futures still referenced elsewhere stay valid memory but
 * will never complete.
 */
ALOOP_API int aloop_loop_free(struct aloop_loop *loop);

/**
 * Run until aloop_stop().  ALOOP_ESTATE if the loop is closed or already
 * running (in any thread).  Returns 0 after a stop.
 */
ALOOP_API int aloop_run_forever(struct aloop_loop *loop);

/**
 * Run until @fut is done, then return its outcome as aloop_future_result()
 * does, handing back its result in *@result (borrowed from the future; may
 * be NULL).  ALOOP_ESTATE if the loop is closed or running, or was stopped
 * before @fut was done; ALOOP_EINVAL if @fut belongs to another loop.
 */
ALOOP_API int aloop_run_until_complete(struct aloop_loop *loop,
    struct aloop_future *fut, void **result);

/** Whether the loop is running. */
ALOOP_API int aloop_is_running(const struct aloop_loop *loop);

/**
 * Stop: the loop finishes the batch of callbacks that were ready when the
 * current iteration began, then run_forever returns.  Called before
 * run_forever, the next run polls once without blocking, runs what is
 * ready and returns.
 */
ALOOP_API void aloop_stop(struct aloop_loop *loop);

/**
 * Close: discard pending callbacks, release descriptor watchers, signal
 * handlers and the default executor (without waiting for running jobs).
 * Idempotent and irreversible; ALOOP_ESTATE while running or from inside a
 * task.  Tasks still suspended are resumed first to run their cleanup
 * (see aloop_create_task).  After it, every scheduling call returns
 * ALOOP_ESTATE.  Transports still open are torn down without callbacks;
 * a socket still waiting after a graceful close for its peer to take the
 * last bytes (see aloop_transport_close) is reset rather than waited for.
 */
ALOOP_API int aloop_close(struct aloop_loop *loop);
ALOOP_API int aloop_is_closed(const struct aloop_loop *loop);

/* ----------------------------------------------------------------- calls */

/**
 * Call @cb(@arg) once, soon: callbacks run in the order they were scheduled,
 * one batch per loop iteration (what is scheduled during an iteration runs
 * in the next).  @handle may be NULL.  ALOOP_EINVAL for a NULL callback,
 * ALOOP_ESTATE on a closed loop (or, in debug mode, from a foreign thread).
 */
ALOOP_API int aloop_call_soon(struct aloop_loop *loop, aloop_callback_fn cb,
    void *arg, aloop_handle_t *handle);

/**
 * Like aloop_call_soon(), from any thread; wakes the loop if it is waiting
 * for events.  Not async-signal-safe: never call it from a signal handler.
 */
ALOOP_API int aloop_call_soon_threadsafe(struct aloop_loop *loop,
    aloop_callback_fn cb, void *arg, aloop_handle_t *handle);

/**
 * Call @cb(@arg) once, no earlier than @delay seconds from now (a negative
 * delay is due at once; due timers run in deadline order, equal deadlines in
 * an unspecified order).  ALOOP_EINVAL if @delay exceeds one day or is not
 * a number.
 */
ALOOP_API int aloop_call_later(struct aloop_loop *loop, double delay,
    aloop_callback_fn cb, void *arg, aloop_handle_t *handle);

/** Like aloop_call_later() at the absolute loop time @when (aloop_time()). */
ALOOP_API int aloop_call_at(struct aloop_loop *loop, double when,
    aloop_callback_fn cb, void *arg, aloop_handle_t *handle);

/** The loop's monotonic clock, in seconds. */
ALOOP_API double aloop_time(const struct aloop_loop *loop);

/** Cancel a scheduled call.  Harmless when stale, repeated or NONE. */
ALOOP_API void aloop_handle_cancel(struct aloop_loop *loop, aloop_handle_t handle);

/**
 * Whether the call was cancelled.  Known until the loop recycles the
 * call (after it ran, or when the cancelled entry is dropped); 0 after.
 */
ALOOP_API int aloop_handle_cancelled(struct aloop_loop *loop, aloop_handle_t handle);

/**
 * A pending timer's deadline in loop time, or a negative value if @handle
 * is not a pending timer.
 */
ALOOP_API double aloop_handle_when(struct aloop_loop *loop, aloop_handle_t handle);

/* ----------------------------------------------------- descriptor watchers */

/**
 * Call @cb(@arg) whenever @fd is readable, until removed; a second add for
 * the same fd replaces the first.  The callback must tolerate spurious
 * wake-ups (EAGAIN).  The loop does not own @fd and never closes it.
 * ALOOP_ESTATE on a closed loop, and for a descriptor a transport of this
 * loop drives (as asyncio refuses one): the transport's own events would
 * fight the watcher over it.  Once that transport has closed it, the
 * number is free again.
 */
ALOOP_API int aloop_add_reader(struct aloop_loop *loop, int fd,
    aloop_callback_fn cb, void *arg);
/**
 * 1 if a reader was removed, 0 if there was none (also for a transport's
 * descriptor, which is never touched, or when the loop is closed).
 * aloop_remove_writer() likewise for writers.
 */
ALOOP_API int aloop_remove_reader(struct aloop_loop *loop, int fd);
ALOOP_API int aloop_add_writer(struct aloop_loop *loop, int fd,
    aloop_callback_fn cb, void *arg);
ALOOP_API int aloop_remove_writer(struct aloop_loop *loop, int fd);

/* --------------------------------------------------------------- signals */

/**
 * Run @cb(@arg) as an ordinary loop callback after @signum arrives (never
 * inside the signal handler); a signal during a blocking wait wakes the loop.
 * Replaces an earlier handler for @signum.  ALOOP_EINVAL for an invalid or
 * uncatchable signal (SIGKILL, SIGSTOP, out of range); ALOOP_ESTATE for a
 * closed loop or when the handler cannot be installed.  Signals go to one
 * loop per process: while another loop has any signal handler, this one
 * gets ALOOP_ESTATE.
 */
ALOOP_API int aloop_add_signal_handler(struct aloop_loop *loop, int signum,
    aloop_callback_fn cb, void *arg);

/**
 * Remove the handler and restore the default disposition.  1 if one was
 * removed, 0 if none, ALOOP_EINVAL for an invalid signal number.
 */
ALOOP_API int aloop_remove_signal_handler(struct aloop_loop *loop, int signum);

/* -------------------------------------------------------------- executor */

/**
 * Blocking work for a pool thread: returns 0 and may set *@result, or a
 * negative error code.  Runs on a pool thread: it must not touch the loop
 * except through aloop_call_soon_threadsafe().
 */
typedef int (*aloop_executor_fn)(void *arg, void **result);

/**
 * A thread pool of at most @max_workers threads (0: min(32, CPUs + 4), as
 * asyncio's default).  Threads start on demand, when a job finds no idle
 * thread, and then wait for more work until shutdown; jobs start in the
 * order they were submitted.  Pool threads block every signal.  The caller
 * owns it.  ALOOP_EINVAL for a NULL @ex, ALOOP_ENOMEM.  Any thread.
 */
ALOOP_API int aloop_executor_new(unsigned max_workers, struct aloop_executor **ex);

/**
 * Stop accepting work; if @wait, block until every queued job has finished
 * and the threads are joined.  Without @wait, jobs already queued still
 * run to completion in the background and the pool frees itself after the
 * last one.  The pointer is dead after this call (NULL is a no-op).  Any
 * thread but a pool thread.
 */
ALOOP_API void aloop_executor_shutdown(struct aloop_executor *ex, int wait);

/**
 * Run @fn(@arg) on @ex (NULL: the loop's default pool, made on first use)
 * and complete the returned future with its outcome, in the loop's thread:
 * its result on 0, its error code (with aloop_strerror's text) otherwise.
 * Once this returns 0, @fn is called exactly once, whatever happens to the
 * future or the loop, so @fn may take ownership of @arg.  The result is
 * freed with @free_result if nobody takes it (may be NULL); that can
 * happen on a pool thread, so @free_result must be thread-safe (as free()
 * is).  A result set by a failing @fn is freed at once.  Cancelling the
 * future does not stop the job, queued or started; its result is then
 * freed and dropped.  When the loop closes, jobs still in flight run to
 * completion, their results are freed and nothing is scheduled on the loop
 * any more; their futures never complete.  ALOOP_EINVAL for a NULL @fn or
 * @fut, ALOOP_ESTATE on a closed loop or a pool that was shut down,
 * ALOOP_ENOMEM, or the error of pthread_create when the pool has no thread
 * and cannot start one; then @fn is never called.
 */
ALOOP_API int aloop_run_in_executor(struct aloop_loop *loop,
    struct aloop_executor *ex, aloop_executor_fn fn, void *arg,
    aloop_free_fn free_result, struct aloop_future **fut);

/**
 * Make @ex the default executor; the loop takes ownership and shuts it
 * down (without waiting) when it closes.  A previous default is shut down
 * (without waiting).  NULL goes back to a pool made on first use.
 * ALOOP_ESTATE on a closed loop, ALOOP_ENOMEM; on error the caller keeps
 * @ex.
 */
ALOOP_API int aloop_set_default_executor(struct aloop_loop *loop,
    struct aloop_executor *ex);

/**
 * asyncio's shutdown_default_executor(timeout): stop the default pool and
 * wait, without blocking the loop, until its queued jobs have finished and
 * its threads are joined; the future then completes with NULL.  After
 * @timeout seconds (negative: no bound) the future completes all the same
 * and a warning is logged; the threads finish in the background.  The
 * joining happens on a thread of its own.  From this call on, the loop
 * makes no new default pool: aloop_run_in_executor() with a NULL pool
 * returns ALOOP_ESTATE (asyncio's "Executor shutdown has been called").
 * Without a default pool the future is done at once.  ALOOP_EINVAL for a
 * NULL @fut or a NaN @timeout, ALOOP_ESTATE on a closed loop.  Loop
 * thread only.
 */
ALOOP_API int aloop_shutdown_default_executor(struct aloop_loop *loop,
    double timeout, struct aloop_future **fut);

/* ---------------------------------------------------- exception handling */

/**
 * What went wrong, for the exception handler; asyncio's context dict as a
 * struct.  Every field but @message is optional (NULL, 0 or -1).
 */
struct aloop_context {
	const char			*message;	/* never NULL */
	const struct aloop_error	*error;		/* asyncio's "exception" */
	struct aloop_future		*future;
	aloop_handle_t			 handle;
	void				*protocol;	/* the protocol's state */
	struct aloop_transport		*transport;
	int				 socket;	/* -1 when none */
	/*
	 * Set by aloopd's workers for an error raised while a plugin's
	 * callback ran: the listener's name and its `protocol`.
	 */
	const char			*listener;
	const char			*plugin;
	const char			*source;	/* debug: where the handle was made */
	const struct aloop_context	*context;	/* the original, when a handler failed */
	/*
	 * "socket.accept() out of system resource": the connections the
	 * server accepted and reset unserved (out of descriptors) since its
	 * previous report of this listener (@socket).  The server reports at
	 * most once per step of its back-off (1 ms doubling to 100 ms), so
	 * a handler that logs should still rate-limit.
	 */
	unsigned long long		 dropped;
};

/** A context with every optional field empty (socket -1). */
#define ALOOP_CONTEXT_INIT(msg)	{ .message = (msg), .socket = -1 }

/**
 * An exception handler.  It returns 0, or a negative code when it failed
 * itself; the loop then logs "Unhandled error in exception handler" through
 * the default handler, with the original context attached.
 */
typedef int (*aloop_exception_handler_fn)(struct aloop_loop *loop,
    const struct aloop_context *ctx, void *arg);

/** Install @handler (NULL restores the default). */
ALOOP_API void aloop_set_exception_handler(struct aloop_loop *loop,
    aloop_exception_handler_fn handler, void *arg);

/** The handler in force, NULL for the default; *@arg gets its argument. */
ALOOP_API aloop_exception_handler_fn aloop_get_exception_handler(
    struct aloop_loop *loop, void **arg);

/** The default handler: logs the context at error level. */
ALOOP_API void aloop_default_exception_handler(struct aloop_loop *loop,
    const struct aloop_context *ctx);

/** Report @ctx to the handler in force.  Never fails, never stops the loop. */
ALOOP_API void aloop_call_exception_handler(struct aloop_loop *loop,
    const struct aloop_context *ctx);

/* ------------------------------------------------------------ debug mode */

/**
 * Debug mode: slow callbacks are logged with the name of the callback and
 * where it was scheduled; scheduling calls from a foreign thread fail with
 * ALOOP_ESTATE and are reported; blocking polls are logged.
 */
ALOOP_API int aloop_get_debug(const struct aloop_loop *loop);
ALOOP_API void aloop_set_debug(struct aloop_loop *loop, int enabled);

/** The threshold for "slow" callbacks in debug mode, seconds (default 0.1). */
ALOOP_API double aloop_get_slow_callback_duration(const struct aloop_loop *loop);
ALOOP_API void aloop_set_slow_callback_duration(struct aloop_loop *loop, double seconds);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_LOOP_H */
