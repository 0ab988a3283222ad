/*
 * Tasks: C functions that run on stacks of their own and suspend on
 * futures, as asyncio's Task drives a coroutine.  The loop always runs on
 * the thread's own stack (the "main" fiber); it resumes a task from a
 * callback, and the task switches back when it awaits or ends.  So a task
 * is only ever entered from loop code and never from another task.
 */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include <aloop/loop.h>
#include <aloop/task.h>

#include "fiber-int.h"
#include "future-int.h"
#include "loop-int.h"

/* Stacks of the default size kept per loop for the next tasks. */
#define STACK_CACHE_MAX	16

enum task_state {
	TASK_NEW,		/* scheduled, never ran */
	TASK_READY,		/* scheduled to resume */
	TASK_RUNNING,
	TASK_WAITING,		/* suspended on a future or a timer */
	TASK_DONE
};

struct taskset;

struct task {
	struct task		*prev, *next;
	struct taskset		*set;
	struct aloop_loop	*loop;
	struct aloop_future	*fut;		/* ours: one reference */
	aloop_task_fn		 fn;
	void			*arg;
	aloop_free_fn		 free_result;
	aloop_task_switch_fn	 on_switch;
	void			*switch_arg;
	size_t			 stack_size;
	struct aloop__stack	 stack;
	struct aloop__fiber	 fiber;
	enum task_state		 state;
	int			 must_cancel;
	int			 timed_out;
	struct aloop_future	*waiter;	/* the future awaited */
	aloop_handle_t		 timer;		/* sleep, or wait_for's deadline */
	aloop_handle_t		 step;		/* a scheduled resume */
	int			 rc;
	void			*result;
};

/* A loop's tasks: the live ones, and stacks to reuse. */
struct taskset {
	struct aloop_loop	*loop;
	struct task		*head;
	size_t			 ntasks;
	int			 closing;
	struct aloop_future	*idle;		/* aloop_run: all tasks gone */
	struct aloop__stack	 cache[STACK_CACHE_MAX];
	size_t			 ncache;
};

/*
 * The task running on this thread, and the stack the loop runs on.  The
 * initial-exec model spares every switch a call to __tls_get_addr; the
 * few bytes come from the static TLS surplus glibc keeps for libraries
 * loaded later (dlopen), as a plugin's libaloop may be.
 */
#define TLS_FAST	__attribute__((tls_model("initial-exec")))
static __thread struct task *current TLS_FAST;
static __thread struct aloop__fiber main_fiber TLS_FAST;

static void task_fut_cancel_hook(struct aloop_future *fut, void *arg);

void
aloop_task_options_init(struct aloop_task_options *o)
{
	o->stack_size = 0;
	o->free_result = NULL;
	o->on_switch = NULL;
	o->switch_arg = NULL;
}

/* ------------------------------------------------------------ the set */

static void
taskset_close(struct aloop_loop *loop, void *arg);

static struct taskset *
taskset_get(struct aloop_loop *loop)
{
	struct taskset *set = aloop__loop_tasks(loop);

	if (set != NULL)
		return set;
	if ((set = calloc(1, sizeof(*set))) == NULL)
		return NULL;
	set->loop = loop;
	aloop__loop_set_tasks(loop, set, taskset_close);
	return set;
}

static void
taskset_add(struct taskset *set, struct task *t)
{
	t->prev = NULL;
	t->next = set->head;
	if (set->head != NULL)
		set->head->prev = t;
	set->head = t;
	set->ntasks++;
}

static void
taskset_remove(struct taskset *set, struct task *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		set->head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	set->ntasks--;
}

static int
stack_get(struct taskset *set, size_t size, struct aloop__stack *st)
{
	if (size == ALOOP_TASK_STACK_DEFAULT && set->ncache > 0) {
		*st = set->cache[--set->ncache];
		return 0;
	}
	return aloop__stack_map(st, size);
}

static void
stack_put(struct taskset *set, size_t size, struct aloop__stack *st)
{
	if (st->map == NULL)
		return;
	if (size == ALOOP_TASK_STACK_DEFAULT && set->ncache < STACK_CACHE_MAX &&
	    !set->closing) {
		aloop__stack_recycle(st);
		set->cache[set->ncache++] = *st;
	} else
		aloop__stack_unmap(st);
	st->map = NULL;
}

/* ------------------------------------------------------- running tasks */

/* The task's function returned: hand its outcome to the future. */
static void
task_finish(struct task *t)
{
	struct taskset *set = t->set;
	struct aloop_future *fut = t->fut;

	assert(t->state == TASK_DONE);
	taskset_remove(set, t);
	stack_put(set, t->stack_size, &t->stack);
	aloop__future_set_cancel_hook(fut, NULL, NULL);
	if (t->rc == 0 && !aloop_future_done(fut))
		(void)aloop_future_set_result(fut, t->result, t->free_result);
	else {
		/* Failed, or nobody wants the result any more. */
		if (t->free_result != NULL && t->result != NULL)
			t->free_result(t->result);
		if (t->rc == ALOOP_ECANCELLED)
			(void)aloop_future_cancel(fut);
		else if (t->rc != 0)
			(void)aloop_future_set_error(fut, t->rc, NULL);
	}
	aloop_future_release(fut);
	free(t);
	if (set->ntasks == 0 && set->idle != NULL)
		(void)aloop_future_set_result(set->idle, NULL, NULL);
}

static void
task_entry(void *arg)
{
	struct task *t = arg;

	aloop__fiber_started(&main_fiber);
	t->rc = t->fn(t->arg, &t->result);
	t->state = TASK_DONE;
	aloop__fiber_switch(&t->fiber, &main_fiber, 1, 0);
	abort();	/* a finished fiber is never resumed */
}

/* Run @t until it suspends or ends.  From loop code only. */
static inline __attribute__((always_inline)) void
task_resume(struct task *t)
{
	int rc;

	assert(current == NULL);
	if (t->state == TASK_NEW) {
		if (t->must_cancel)
			rc = ALOOP_ECANCELLED;	/* never started: never runs */
		else
			rc = stack_get(t->set, t->stack_size, &t->stack);
		if (rc != 0) {
			t->rc = rc;
			t->state = TASK_DONE;
			task_finish(t);
			return;
		}
		aloop__fiber_make(&t->fiber, &t->stack, task_entry, t);
	}
	t->state = TASK_RUNNING;
	current = t;
	if (__builtin_expect(t->on_switch != NULL, 0))
		t->on_switch(t->switch_arg, 1);
	aloop__fiber_switch(&main_fiber, &t->fiber, 0, 1);
	current = NULL;
	if (__builtin_expect(t->on_switch != NULL, 0))
		t->on_switch(t->switch_arg, 0);
	if (t->state == TASK_DONE)
		task_finish(t);
}

static void
task_step_cb(void *arg)
{
	struct task *t = arg;

	t->step = ALOOP_HANDLE_NONE;
	task_resume(t);
}

/* Resume @t on a later loop turn.  0 or the error of call_soon. */
static int
task_schedule(struct task *t)
{
	int rc;

	rc = aloop_call_soon(t->loop, task_step_cb, t, &t->step);
	if (rc == 0 && t->state != TASK_NEW)
		t->state = TASK_READY;
	return rc;
}

/* Give the loop back until something resumes us. */
static inline __attribute__((always_inline)) void
task_suspend(struct task *t)
{
	assert(current == t);
	if (t->state == TASK_RUNNING)
		t->state = TASK_WAITING;
	aloop__fiber_switch(&t->fiber, &main_fiber, 0, 0);
	assert(current == t && t->state == TASK_RUNNING);
}

static void
task_wakeup_cb(struct aloop_future *fut, void *arg)
{
	struct task *t = arg;

	if (t->state == TASK_WAITING && t->waiter == fut)
		task_resume(t);
}

static void
task_timer_cb(void *arg)
{
	struct task *t = arg;

	t->timer = ALOOP_HANDLE_NONE;
	if (t->waiter != NULL) {
		/* wait_for's deadline: the waiter's done-callback resumes. */
		t->timed_out = 1;
		(void)aloop_future_cancel(t->waiter);
		return;
	}
	if (t->state == TASK_WAITING)
		task_resume(t);
}

/*
 * The request of aloop_task_cancel: the current or next await fails.
 * Never runs user code synchronously (it may run inside a cancel hook).
 */
static int
task_request_cancel(struct task *t)
{
	switch (t->state) {
	case TASK_DONE:
		return 0;
	case TASK_NEW:
	case TASK_READY:
	case TASK_RUNNING:
		t->must_cancel = 1;
		return 1;
	case TASK_WAITING:
		break;
	}
	t->must_cancel = 1;
	if (t->waiter != NULL) {
		/* Its done-callback resumes us, now or already scheduled. */
		(void)aloop_future_cancel(t->waiter);
		return 1;
	}
	/*
	 * Sleeping: wake at once.  If the loop cannot take the call (it is
	 * closing), taskset_close resumes the task anyway.
	 */
	aloop_handle_cancel(t->loop, t->timer);
	t->timer = ALOOP_HANDLE_NONE;
	(void)task_schedule(t);
	return 1;
}

static void
task_fut_cancel_hook(struct aloop_future *fut, void *arg)
{
	(void)fut;
	(void)task_request_cancel(arg);
}

/* ---------------------------------------------------------- public API */

int
aloop_create_task(struct aloop_loop *loop, aloop_task_fn fn, void *arg,
    const struct aloop_task_options *o, struct aloop_future **futp)
{
	struct taskset *set;
	struct task *t;
	int rc;

	if (futp != NULL)
		*futp = NULL;
	if (loop == NULL || fn == NULL || futp == NULL)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "aloop_create_task")) != 0)
		return rc;
	if ((set = taskset_get(loop)) == NULL)
		return ALOOP_ENOMEM;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return ALOOP_ENOMEM;
	if ((rc = aloop_future_new(loop, &t->fut)) != 0) {
		free(t);
		return rc;
	}
	t->set = set;
	t->loop = loop;
	t->fn = fn;
	t->arg = arg;
	t->state = TASK_NEW;
	t->stack_size = ALOOP_TASK_STACK_DEFAULT;
	if (o != NULL) {
		if (o->stack_size != 0)
			t->stack_size = o->stack_size;
		t->free_result = o->free_result;
		t->on_switch = o->on_switch;
		t->switch_arg = o->switch_arg;
	}
	if ((rc = task_schedule(t)) != 0) {
		aloop_future_release(t->fut);
		free(t);
		return rc;
	}
	taskset_add(set, t);
	aloop__future_set_cancel_hook(t->fut, task_fut_cancel_hook, t);
	*futp = aloop_future_ref(t->fut);
	return 0;
}

int
aloop_task_cancel(struct aloop_future *task)
{
	struct task *t;

	if (task == NULL)
		return ALOOP_EINVAL;
	t = aloop__future_cancel_hook_arg(task, task_fut_cancel_hook);
	if (t == NULL)
		return aloop_future_done(task) ? 0 : ALOOP_EINVAL;
	return task_request_cancel(t);
}

struct aloop_future *
aloop_current_task(void)
{
	return current != NULL ? current->fut : NULL;
}

/* A cancel request that arrived while running is consumed here. */
static int
take_cancel(struct task *t)
{
	if (t->must_cancel) {
		t->must_cancel = 0;
		return 1;
	}
	return t->set->closing;
}

/*
 * Await @fut, with a deadline when @timeout is not negative.  The
 * deadline's timer and the future's done-callback both wake us through
 * the future (the timer cancels it), so one path resumes the task.
 */
static int
task_wait(struct task *t, struct aloop_future *fut, double timeout,
    void **result)
{
	int rc, timed_out;

	if (take_cancel(t))
		return ALOOP_ECANCELLED;
	if (aloop_future_done(fut))
		return aloop_future_result(fut, result);
	if (timeout == 0.0) {
		(void)aloop_future_cancel(fut);
		return ALOOP_ETIMEDOUT;
	}
	if ((rc = aloop_future_add_done_callback(fut, task_wakeup_cb, t)) != 0)
		return rc;
	if (timeout > 0 && (rc = aloop_call_later(t->loop, timeout,
	    task_timer_cb, t, &t->timer)) != 0) {
		(void)aloop_future_remove_done_callback(fut, task_wakeup_cb, t);
		return rc;
	}
	aloop_future_ref(fut);
	t->waiter = fut;
	t->timed_out = 0;
	task_suspend(t);
	t->waiter = NULL;
	timed_out = t->timed_out;
	aloop_handle_cancel(t->loop, t->timer);
	t->timer = ALOOP_HANDLE_NONE;
	/* Resumed by the loop's close while still pending: drop our callback. */
	(void)aloop_future_remove_done_callback(fut, task_wakeup_cb, t);
	if (take_cancel(t))
		rc = ALOOP_ECANCELLED;
	else if (timed_out && aloop_future_cancelled(fut))
		rc = ALOOP_ETIMEDOUT;
	else
		rc = aloop_future_result(fut, result);
	aloop_future_release(fut);
	return rc;
}

int
aloop_await(struct aloop_future *fut, void **result)
{
	struct task *t = current;

	if (result != NULL)
		*result = NULL;
	if (t == NULL)
		return ALOOP_ESTATE;
	if (fut == NULL || fut == t->fut ||
	    aloop_future_get_loop(fut) != t->loop)
		return ALOOP_EINVAL;
	return task_wait(t, fut, -1, result);
}

int
aloop_wait_for(struct aloop_future *fut, double timeout, void **result)
{
	struct task *t = current;

	if (result != NULL)
		*result = NULL;
	if (t == NULL)
		return ALOOP_ESTATE;
	if (fut == NULL || fut == t->fut || isnan(timeout) ||
	    aloop_future_get_loop(fut) != t->loop)
		return ALOOP_EINVAL;
	if (timeout < 0)
		timeout = 0;
	return task_wait(t, fut, timeout, result);
}

int
aloop_sleep(double delay)
{
	struct task *t = current;
	int rc;

	if (t == NULL)
		return ALOOP_ESTATE;
	if (take_cancel(t))
		return ALOOP_ECANCELLED;
	if (delay <= 0)
		rc = task_schedule(t);
	else
		rc = aloop_call_later(t->loop, delay, task_timer_cb, t,
		    &t->timer);
	if (rc != 0)
		return rc;
	task_suspend(t);
	return take_cancel(t) ? ALOOP_ECANCELLED : 0;
}

/* ---------------------------------------------------- the loop closes */

static void
taskset_close(struct aloop_loop *loop, void *arg)
{
	struct taskset *set = arg;
	struct task *t;

	set->closing = 1;
	/* Each pass finishes the first task; cleanup may make new ones. */
	while ((t = set->head) != NULL) {
		aloop_handle_cancel(loop, t->step);
		t->step = ALOOP_HANDLE_NONE;
		aloop_handle_cancel(loop, t->timer);
		t->timer = ALOOP_HANDLE_NONE;
		t->must_cancel = 1;
		if (t->waiter != NULL)
			(void)aloop_future_cancel(t->waiter);
		if (t->state == TASK_READY)
			t->state = TASK_WAITING;
		task_resume(t);
		/* A task never leaves a resume unfinished while closing. */
		assert(set->head != t);
	}
	while (set->ncache > 0)
		aloop__stack_unmap(&set->cache[--set->ncache]);
	if (set->idle != NULL)
		aloop_future_release(set->idle);
	aloop__loop_set_tasks(loop, NULL, NULL);
	free(set);
}

/* ---------------------------------------------------------------- run */

struct run_main {
	aloop_task_fn	 fn;
	void		*arg;
	void		*result;
};

static int
run_main(void *arg, void **result)
{
	struct run_main *rm = arg;

	(void)result;
	return rm->fn(rm->arg, &rm->result);
}

/* asyncio.run's _cancel_all_tasks: cancel what is left, wait for it. */
static void
run_cancel_rest(struct aloop_loop *loop)
{
	struct taskset *set = aloop__loop_tasks(loop);
	struct task *t;

	if (set == NULL || set->ntasks == 0)
		return;
	if (aloop_future_new(loop, &set->idle) != 0)
		return;		/* aloop_close cancels them without waiting */
	for (t = set->head; t != NULL; t = t->next)
		(void)task_request_cancel(t);
	(void)aloop_run_until_complete(loop, set->idle, NULL);
}

int
aloop_run(aloop_task_fn fn, void *arg, const struct aloop_task_options *o,
    void **result)
{
	struct aloop_task_options to;
	struct run_main rm = { fn, arg, NULL };
	struct aloop_loop *loop;
	struct aloop_future *fut;
	int rc;

	if (result != NULL)
		*result = NULL;
	if (fn == NULL)
		return ALOOP_EINVAL;
	if (aloop_get_running_loop() != NULL || current != NULL)
		return ALOOP_ESTATE;
	if ((rc = aloop_loop_new(&loop)) != 0)
		return rc;
	aloop_task_options_init(&to);
	if (o != NULL)
		to.stack_size = o->stack_size;
	if ((rc = aloop_create_task(loop, run_main, &rm, &to, &fut)) != 0) {
		(void)aloop_loop_free(loop);
		return rc;
	}
	rc = aloop_run_until_complete(loop, fut, NULL);
	aloop_future_release(fut);
	run_cancel_rest(loop);
	(void)aloop_loop_free(loop);
	if (rc == 0 && result != NULL)
		*result = rm.result;
	else if (rm.result != NULL && o != NULL && o->free_result != NULL)
		o->free_result(rm.result);
	return rc;
}

/* ------------------------------------------------------------- gather */

struct gather {
	struct aloop__resource	 res;
	struct aloop_loop	*loop;
	struct aloop_future	*fut;		/* ours: one reference */
	size_t			 n, pending;
	struct aloop_future	*children[];
};

#define GATHER_OF(r) \
	((struct gather *)((char *)(r) - offsetof(struct gather, res)))

static void gather_child_done(struct aloop_future *child, void *arg);

static void
gather_free(struct gather *g, int untrack)
{
	if (untrack)
		aloop__loop_untrack(g->loop, &g->res);
	for (size_t i = 0; i < g->n; i++) {
		(void)aloop_future_remove_done_callback(g->children[i],
		    gather_child_done, g);
		aloop_future_release(g->children[i]);
	}
	aloop__future_set_cancel_hook(g->fut, NULL, NULL);
	aloop_future_release(g->fut);
	free(g);
}

static void
gather_child_done(struct aloop_future *child, void *arg)
{
	struct gather *g = arg;
	int rc;

	rc = aloop_future_result(child, NULL);	/* marks an error retrieved */
	if (rc != 0 && !aloop_future_done(g->fut)) {
		const struct aloop_error *e = aloop_future_error(child);

		aloop__future_set_cancel_hook(g->fut, NULL, NULL);
		(void)aloop_future_set_error(g->fut, rc, "%s",
		    e != NULL ? e->message : aloop_strerror(rc));
	}
	if (--g->pending > 0)
		return;
	if (!aloop_future_done(g->fut))
		(void)aloop_future_set_result(g->fut, NULL, NULL);
	gather_free(g, 1);
}

static void
gather_cancel_hook(struct aloop_future *fut, void *arg)
{
	struct gather *g = arg;

	(void)fut;
	for (size_t i = 0; i < g->n; i++)
		(void)aloop_future_cancel(g->children[i]);
}

/* The loop closed: the children's callbacks will never run. */
static void
gather_on_loop_close(struct aloop__resource *res)
{
	gather_free(GATHER_OF(res), 0);
}

int
aloop_gather(struct aloop_loop *loop, struct aloop_future *const *futs,
    size_t n, struct aloop_future **futp)
{
	struct gather *g;
	int rc;

	if (futp != NULL)
		*futp = NULL;
	if (loop == NULL || futp == NULL || (n > 0 && futs == NULL))
		return ALOOP_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (futs[i] == NULL || aloop_future_get_loop(futs[i]) != loop)
			return ALOOP_EINVAL;
	if ((g = calloc(1, sizeof(*g) + n * sizeof(g->children[0]))) == NULL)
		return ALOOP_ENOMEM;
	if ((rc = aloop_future_new(loop, &g->fut)) != 0) {
		free(g);
		return rc;
	}
	*futp = aloop_future_ref(g->fut);
	if (n == 0) {
		(void)aloop_future_set_result(g->fut, NULL, NULL);
		aloop_future_release(g->fut);
		free(g);
		return 0;
	}
	g->loop = loop;
	g->res.on_loop_close = gather_on_loop_close;
	aloop__loop_track(loop, &g->res);
	/*
	 * Take every reference first: a child already done has its
	 * callback scheduled at once, and that must find them all.
	 */
	g->n = n;
	for (size_t i = 0; i < n; i++)
		g->children[i] = aloop_future_ref(futs[i]);
	g->pending = 1;		/* ours, until every callback is added */
	for (size_t i = 0; i < n; i++) {
		rc = aloop_future_add_done_callback(futs[i], gather_child_done,
		    g);
		if (rc != 0) {
			/* The children not added will never report. */
			if (!aloop_future_done(g->fut))
				(void)aloop_future_set_error(g->fut, rc, NULL);
			break;
		}
		g->pending++;
	}
	if (--g->pending == 0) {
		if (!aloop_future_done(g->fut))
			(void)aloop_future_set_result(g->fut, NULL, NULL);
		gather_free(g, 1);
		return 0;
	}
	if (!aloop_future_done(g->fut))
		aloop__future_set_cancel_hook(g->fut, gather_cancel_hook, g);
	return 0;
}
