/*
 * What the library's other modules (transports, servers, TLS, subprocesses)
 * need from the loop beyond the public API.  Private to lib/.
 */
#ifndef ALOOP_LOOP_INT_H
#define ALOOP_LOOP_INT_H

#include <aloop/loop.h>

struct event_base;

/*
 * The libevent base under @loop.  Modules create their events and
 * bufferevents on it; their callbacks then run during the loop's I/O phase,
 * on the loop's thread.  Valid until the loop is freed; after aloop_close()
 * no new event may be added.
 */
struct event_base *aloop__loop_base(struct aloop_loop *loop);

/*
 * The common check of every operation that schedules work on @loop:
 * ALOOP_ESTATE if the loop is closed, or in debug mode when called from a
 * thread other than the loop's (that case is also reported through the
 * exception handler, naming @what).  0 otherwise.
 */
int aloop__loop_check(struct aloop_loop *loop, const char *what);

/* In a forked child: the policy forgets the parent's loops. */
void aloop__policy_forked(void);

/*
 * Objects the loop must tear down when it closes (transports, servers,
 * pending operations that hold descriptors).  A module embeds one of these,
 * tracks it while the object is alive and untracks it when the object goes
 * away by itself.  aloop_close() calls @on_loop_close for every tracked
 * resource, most recent first, after untracking it; the callback must
 * release descriptors and libevent events without calling back into user
 * code (no protocol callbacks run after close).
 */
struct aloop__resource {
	struct aloop__resource	*prev, *next;
	void			(*on_loop_close)(struct aloop__resource *res);
};

void aloop__loop_track(struct aloop_loop *loop, struct aloop__resource *res);
void aloop__loop_untrack(struct aloop_loop *loop, struct aloop__resource *res);

/*
 * Descriptors a transport drives: add_reader/add_writer refuse them with
 * ALOOP_ESTATE, as asyncio refuses a descriptor a transport uses.  A
 * transport marks its descriptor owned when it starts and unmarks it
 * right before closing it (aloop__transport_own_fd and
 * aloop__transport_close_fd do both).  Marking cannot fail in a way that
 * matters: without memory the descriptor simply stays unguarded.
 */
void aloop__loop_own_fd(struct aloop_loop *loop, int fd, int owned);

/*
 * The loop's default executor (aloop_run_in_executor with a NULL pool).
 * The executor module owns the policy; the loop only holds the pointer and
 * calls @shutdown(ex) (which must not wait for running jobs) when it
 * closes, or when another executor replaces this one.  Loop thread only.
 */
struct aloop_executor *aloop__loop_executor(struct aloop_loop *loop);
void aloop__loop_set_executor(struct aloop_loop *loop,
    struct aloop_executor *ex, void (*shutdown)(struct aloop_executor *ex));

/*
 * The loop's task scheduler (task.c): its per-loop state, made with the
 * first task.  aloop_close() calls @close(loop, tasks) first of all, while
 * the loop is still open, so that tasks it resumes for their cleanup may
 * still use transports and schedule calls; the hook frees the state and
 * clears it with aloop__loop_set_tasks(loop, NULL, NULL).
 * Loop thread only.
 */
void *aloop__loop_tasks(struct aloop_loop *loop);
void aloop__loop_set_tasks(struct aloop_loop *loop, void *tasks,
    void (*close)(struct aloop_loop *loop, void *tasks));

/*
 * Detach the default executor without shutting it down (the caller now
 * owns it), and refuse to make another: from then on
 * aloop__loop_executor_refused() is 1.  NULL when there was none.
 */
struct aloop_executor *aloop__loop_take_executor(struct aloop_loop *loop);
int aloop__loop_executor_refused(const struct aloop_loop *loop);

/*
 * The loop's slot for forward.c's pool of empty pipes (NULL until the
 * first forward).  The pool tracks itself as a resource and clears the
 * slot when the loop closes.  Loop thread only.
 */
void **aloop__loop_pipes_slot(struct aloop_loop *loop);

#endif /* ALOOP_LOOP_INT_H */
