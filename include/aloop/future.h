/*
 * Futures: the result of an operation that completes later, as asyncio's
 * Future.  Every "coroutine" of the loop API returns one.
 */
#ifndef ALOOP_FUTURE_H
#define ALOOP_FUTURE_H

#include <aloop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aloop_loop;
struct aloop_future;

/**
 * A done-callback.  Scheduled with call_soon when the future completes (or
 * at once if it already has), so it always runs from the loop, never from
 * inside set_result/set_error/cancel.  The future stays alive while it runs.
 */
typedef void (*aloop_future_done_fn)(struct aloop_future *fut, void *arg);

/** Frees a result when the future is freed. */
typedef void (*aloop_free_fn)(void *ptr);

/*
 * Ownership: futures are reference counted.  aloop_future_new() and every
 * function that hands out a future give the caller one reference, to be
 * dropped with aloop_future_release().  The loop holds its own references
 * while it needs the future (pending done-callbacks, operations in flight),
 * so releasing early is always safe.  Futures belong to one loop and are
 * used from its thread only.
 *
 * A future may outlive its loop's aloop_close() (and aloop_loop_free()):
 * it stays valid memory, can still be completed, queried and released, but
 * its done-callbacks can no longer run: those registered are dropped when
 * it completes, those already scheduled are dropped by the close, and
 * adding one to a done future then returns ALOOP_ESTATE.  An unretrieved
 * error of such a future is logged (aloop_log) instead of going to the
 * exception handler, which may be gone with the loop.
 *
 * A future whose result is an object of the loop (a transport, a server)
 * keeps that object valid memory while the future lives: a transport
 * stays usable after its connection_lost ran, a server is the caller's
 * reference (see transport.h and server.h).  So a result borrowed from a
 * future is valid exactly as long as the caller holds the future, or a
 * reference of its own taken before releasing it.
 */

/** Create a pending future on @loop.  ALOOP_ESTATE if the loop is closed. */
ALOOP_API int aloop_future_new(struct aloop_loop *loop, struct aloop_future **fut);
ALOOP_API struct aloop_future *aloop_future_ref(struct aloop_future *fut);
ALOOP_API void aloop_future_release(struct aloop_future *fut);

/**
 * The loop the future belongs to.  Once that loop was freed this is a
 * stale address: compare it, never use it.
 */
ALOOP_API struct aloop_loop *aloop_future_get_loop(const struct aloop_future *fut);

/**
 * Complete with a result.  The future takes ownership of @result if
 * @free_result is not NULL and calls it when the future is freed.
 * ALOOP_ESTATE if already done (the result is then not taken).
 */
ALOOP_API int aloop_future_set_result(struct aloop_future *fut, void *result,
    aloop_free_fn free_result);

/**
 * Complete with an error: a negative code and a printf-style message (NULL
 * for aloop_strerror's text).  ALOOP_ESTATE if already done, ALOOP_EINVAL
 * if @code is not negative.  An error that is never retrieved
 * (aloop_future_result or aloop_future_error) is reported through the
 * loop's exception handler when the last reference goes, with the message
 * "Future exception was never retrieved" and the context's future and
 * error set.  The future is then only valid during the handler, unless the
 * handler takes a reference of its own (it is not reported again).
 */
ALOOP_API int aloop_future_set_error(struct aloop_future *fut, int code,
    const char *fmt, ...) ALOOP_PRINTF(3, 4);

/**
 * Cancel: returns 1 if it cancelled, 0 if the future was already done.
 * Done-callbacks are scheduled as for any completion.
 */
ALOOP_API int aloop_future_cancel(struct aloop_future *fut);

ALOOP_API int aloop_future_done(const struct aloop_future *fut);
ALOOP_API int aloop_future_cancelled(const struct aloop_future *fut);

/**
 * The outcome: 0 and *@result (borrowed, valid while the future lives;
 * @result may be NULL) when it completed with a result; the error code
 * when it failed; ALOOP_ECANCELLED when cancelled; ALOOP_ESTATE when not
 * done yet.  Marks an error as retrieved.
 */
ALOOP_API int aloop_future_result(struct aloop_future *fut, void **result);

/**
 * The error the future completed with, or NULL (result, cancelled, or not
 * done).  Borrowed: valid while the future lives.  Marks it retrieved.
 */
ALOOP_API const struct aloop_error *aloop_future_error(struct aloop_future *fut);

/**
 * Add a done-callback; the same (cb, arg) may be added several times and
 * then runs as often.  Callbacks run in the order they were added, each
 * on a later loop iteration than the completion (or than this call, when
 * the future is already done).  ALOOP_EINVAL for a NULL @cb, ALOOP_ENOMEM
 * on allocation failure, ALOOP_ESTATE if the future is done and its loop
 * closed.
 */
ALOOP_API int aloop_future_add_done_callback(struct aloop_future *fut,
    aloop_future_done_fn cb, void *arg);

/**
 * Remove every registration of (cb, arg); returns how many were removed.
 * Once the future is done its callbacks are already scheduled, as in
 * asyncio, and this returns 0.
 */
ALOOP_API int aloop_future_remove_done_callback(struct aloop_future *fut,
    aloop_future_done_fn cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_FUTURE_H */
