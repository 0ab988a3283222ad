/*
 * What the library's modules need from futures beyond the public API: a
 * hook that learns synchronously when a future is cancelled, so that an
 * operation in flight (an executor job, a name lookup) can give up its work
 * at once instead of waiting for a done-callback on a later loop turn.
 * Private to lib/.
 */
#ifndef ALOOP_FUTURE_INT_H
#define ALOOP_FUTURE_INT_H

#include <aloop/future.h>

/*
 * Called from inside aloop_future_cancel(), on the loop's thread, after the
 * future is marked cancelled and its done-callbacks are scheduled.  The
 * caller of aloop_future_cancel() holds a reference across the call, so the
 * hook may release a reference of its own.  It must not call user code.
 */
typedef void (*aloop__future_cancel_fn)(struct aloop_future *fut, void *arg);

/*
 * Install (or clear, with a NULL @fn) the one cancel hook of @fut.  The
 * module that installs it clears it before the object @arg names goes
 * away.  The hook runs at most once: it is cleared before it is called.
 */
void aloop__future_set_cancel_hook(struct aloop_future *fut,
    aloop__future_cancel_fn fn, void *arg);

/*
 * The argument of @fut's cancel hook if that hook is @fn, else NULL: how a
 * module finds its own object from a future it handed out (the task a
 * task's future stands for).
 */
void *aloop__future_cancel_hook_arg(const struct aloop_future *fut,
    aloop__future_cancel_fn fn);

#endif /* ALOOP_FUTURE_INT_H */
