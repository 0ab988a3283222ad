/*
 * Futures: reference-counted results that complete later, as asyncio's
 * Future.  Done-callbacks always go through call_soon, so completing a
 * future never runs user code synchronously and the order of callbacks is
 * the order of registration.
 */
#include "config.h"

#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <aloop/future.h>
#include <aloop/log.h>
#include <aloop/loop.h>

#include "future-int.h"
#include "loop-int.h"

enum future_state {
	FUTURE_PENDING,
	FUTURE_RESULT,
	FUTURE_ERROR,
	FUTURE_CANCELLED
};

/*
 * One done-callback.  The same entry first sits on the future's list of
 * registered callbacks, then, once the future is done, on its list of
 * callbacks handed to call_soon; while on the second list it holds a
 * reference to the future.
 */
struct done_cb {
	struct done_cb		*prev, *next;
	struct aloop_future	*fut;
	aloop_future_done_fn	 cb;
	void			*arg;
};

struct done_list {
	struct done_cb	*head, *tail;
};

struct aloop_future {
	/*
	 * Tracked while the loop is open, so that aloop_close() tells us:
	 * from then on the loop may be freed at any moment and the future
	 * must never touch it again.
	 */
	struct aloop__resource	 res;
	struct aloop_loop	*loop;
	unsigned long		 refs;
	enum future_state	 state;
	int			 loop_closed;
	int			 retrieved;
	void			*result;
	aloop_free_fn		 free_result;
	struct aloop_error	 error;
	char			*message;	/* owned text of error, or NULL */
	struct done_list	 callbacks;	/* registered, not scheduled */
	struct done_list	 scheduled;	/* handed to call_soon */
	aloop__future_cancel_fn	 cancel_hook;
	void			*cancel_arg;
};

#define FUTURE_OF(r) \
	((struct aloop_future *)((char *)(r) - offsetof(struct aloop_future, res)))

static void
done_list_append(struct done_list *l, struct done_cb *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

static void
done_list_remove(struct done_list *l, struct done_cb *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

/*
 * The trampoline call_soon runs for every done-callback.  The entry is
 * gone before the user's callback starts, so the callback may do anything
 * to the future (release it, add callbacks); our reference keeps the
 * memory alive until it returns.
 */
static void
future_run_done_cb(void *arg)
{
	struct done_cb *e = arg;
	struct aloop_future *fut = e->fut;
	aloop_future_done_fn cb = e->cb;
	void *cbarg = e->arg;

	done_list_remove(&fut->scheduled, e);
	free(e);
	cb(fut, cbarg);
	aloop_future_release(fut);
}

/*
 * Hand @e to call_soon.  On a closed loop the callback can never run, so
 * it is dropped; the entry is freed on every failure.
 */
static int
future_schedule(struct aloop_future *fut, struct done_cb *e)
{
	int rc;

	if (fut->loop_closed) {
		free(e);
		return ALOOP_ESTATE;
	}
	rc = aloop_call_soon(fut->loop, future_run_done_cb, e, NULL);
	if (rc != 0) {
		free(e);
		return rc;
	}
	done_list_append(&fut->scheduled, e);
	fut->refs++;
	return 0;
}

/* The future just became done: schedule every registered callback. */
static void
future_complete(struct aloop_future *fut)
{
	struct done_cb *e;
	int rc;

	while ((e = fut->callbacks.head) != NULL) {
		done_list_remove(&fut->callbacks, e);
		rc = future_schedule(fut, e);
		/*
		 * A closed loop runs nothing, which the header documents; any
		 * other failure loses a callback someone is waiting for, and
		 * that must not pass silently.
		 */
		if (rc != 0 && rc != ALOOP_ESTATE)
			aloop_log(ALOOP_LOG_ERR, "future %p: cannot schedule "
			    "a done-callback: %s", (void *)fut,
			    aloop_strerror(rc));
	}
}

/*
 * The loop is closing: it discards the calls it had queued, so the
 * callbacks we handed it will never run.  Free them and drop the
 * references they held; the last one may free the future.
 */
static void
future_on_loop_close(struct aloop__resource *res)
{
	struct aloop_future *fut = FUTURE_OF(res);
	struct done_cb *e;
	unsigned long n = 0;

	fut->loop_closed = 1;
	while ((e = fut->scheduled.head) != NULL) {
		done_list_remove(&fut->scheduled, e);
		free(e);
		n++;
	}
	/* Only the last release may free the future; nothing follows it. */
	while (n-- > 0)
		aloop_future_release(fut);
}

static void
future_report_unretrieved(struct aloop_future *fut)
{
	struct aloop_context ctx =
	    ALOOP_CONTEXT_INIT("Future exception was never retrieved");

	fut->retrieved = 1;
	if (fut->loop_closed) {
		/* The loop, and with it its handler, may be gone already. */
		aloop_log(ALOOP_LOG_ERR, "%s: %s (%d)", ctx.message,
		    fut->error.message, fut->error.code);
		return;
	}
	ctx.future = fut;
	ctx.error = &fut->error;
	aloop_call_exception_handler(fut->loop, &ctx);
}

static void
future_free(struct aloop_future *fut)
{
	struct done_cb *e;

	if (fut->state == FUTURE_ERROR && !fut->retrieved) {
		/*
		 * The report holds a reference of its own, so that the
		 * handler may take one too; then the future lives on.
		 */
		fut->refs = 1;
		future_report_unretrieved(fut);
		if (--fut->refs > 0)
			return;
	}
	assert(fut->scheduled.head == NULL);
	if (!fut->loop_closed)
		aloop__loop_untrack(fut->loop, &fut->res);
	while ((e = fut->callbacks.head) != NULL) {
		done_list_remove(&fut->callbacks, e);
		free(e);
	}
	if (fut->free_result != NULL)
		fut->free_result(fut->result);
	free(fut->message);
	free(fut);
}

int
aloop_future_new(struct aloop_loop *loop, struct aloop_future **futp)
{
	struct aloop_future *fut;
	int rc;

	if (loop == NULL || futp == NULL)
		return ALOOP_EINVAL;
	*futp = NULL;
	if ((rc = aloop__loop_check(loop, "aloop_future_new")) != 0)
		return rc;
	if ((fut = calloc(1, sizeof(*fut))) == NULL)
		return ALOOP_ENOMEM;
	fut->loop = loop;
	fut->refs = 1;
	fut->state = FUTURE_PENDING;
	fut->res.on_loop_close = future_on_loop_close;
	aloop__loop_track(loop, &fut->res);
	*futp = fut;
	return 0;
}

struct aloop_future *
aloop_future_ref(struct aloop_future *fut)
{
	assert(fut->refs > 0);
	fut->refs++;
	return fut;
}

void
aloop_future_release(struct aloop_future *fut)
{
	if (fut == NULL)
		return;
	assert(fut->refs > 0);
	if (--fut->refs == 0)
		future_free(fut);
}

struct aloop_loop *
aloop_future_get_loop(const struct aloop_future *fut)
{
	return fut->loop;
}

int
aloop_future_set_result(struct aloop_future *fut, void *result,
    aloop_free_fn free_result)
{
	if (fut->state != FUTURE_PENDING)
		return ALOOP_ESTATE;
	fut->state = FUTURE_RESULT;
	fut->result = result;
	fut->free_result = free_result;
	future_complete(fut);
	return 0;
}

int
aloop_future_set_error(struct aloop_future *fut, int code, const char *fmt,
    ...)
{
	va_list ap;
	char *msg = NULL;

	if (fut->state != FUTURE_PENDING)
		return ALOOP_ESTATE;
	if (code >= 0)
		return ALOOP_EINVAL;
	if (fmt != NULL) {
		va_start(ap, fmt);
		/* Out of memory, the code's own text still says enough. */
		if (vasprintf(&msg, fmt, ap) < 0)
			msg = NULL;
		va_end(ap);
	}
	fut->state = FUTURE_ERROR;
	fut->message = msg;
	fut->error.code = code;
	fut->error.message = msg != NULL ? msg : aloop_strerror(code);
	future_complete(fut);
	return 0;
}

int
aloop_future_cancel(struct aloop_future *fut)
{
	aloop__future_cancel_fn hook;
	void *arg;

	if (fut->state != FUTURE_PENDING)
		return 0;
	fut->state = FUTURE_CANCELLED;
	future_complete(fut);
	if ((hook = fut->cancel_hook) != NULL) {
		arg = fut->cancel_arg;
		fut->cancel_hook = NULL;
		fut->cancel_arg = NULL;
		/* The hook may drop the reference its operation held. */
		aloop_future_ref(fut);
		hook(fut, arg);
		aloop_future_release(fut);
	}
	return 1;
}

int
aloop_future_done(const struct aloop_future *fut)
{
	return fut->state != FUTURE_PENDING;
}

int
aloop_future_cancelled(const struct aloop_future *fut)
{
	return fut->state == FUTURE_CANCELLED;
}

int
aloop_future_result(struct aloop_future *fut, void **result)
{
	if (result != NULL)
		*result = NULL;
	switch (fut->state) {
	case FUTURE_PENDING:
		return ALOOP_ESTATE;
	case FUTURE_RESULT:
		if (result != NULL)
			*result = fut->result;
		return 0;
	case FUTURE_ERROR:
		fut->retrieved = 1;
		return fut->error.code;
	case FUTURE_CANCELLED:
		break;
	}
	return ALOOP_ECANCELLED;
}

const struct aloop_error *
aloop_future_error(struct aloop_future *fut)
{
	if (fut->state != FUTURE_ERROR)
		return NULL;
	fut->retrieved = 1;
	return &fut->error;
}

int
aloop_future_add_done_callback(struct aloop_future *fut,
    aloop_future_done_fn cb, void *arg)
{
	struct done_cb *e;

	if (cb == NULL)
		return ALOOP_EINVAL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return ALOOP_ENOMEM;
	e->fut = fut;
	e->cb = cb;
	e->arg = arg;
	if (fut->state != FUTURE_PENDING)
		return future_schedule(fut, e);
	done_list_append(&fut->callbacks, e);
	return 0;
}

int
aloop_future_remove_done_callback(struct aloop_future *fut,
    aloop_future_done_fn cb, void *arg)
{
	struct done_cb *e, *next;
	int n = 0;

	for (e = fut->callbacks.head; e != NULL; e = next) {
		next = e->next;
		if (e->cb == cb && e->arg == arg) {
			done_list_remove(&fut->callbacks, e);
			free(e);
			n++;
		}
	}
	return n;
}

void
aloop__future_set_cancel_hook(struct aloop_future *fut,
    aloop__future_cancel_fn fn, void *arg)
{
	fut->cancel_hook = fn;
	fut->cancel_arg = fn != NULL ? arg : NULL;
}

void *
aloop__future_cancel_hook_arg(const struct aloop_future *fut,
    aloop__future_cancel_fn fn)
{
	return fut->cancel_hook == fn ? fut->cancel_arg : NULL;
}
