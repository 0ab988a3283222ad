/*
 * Fibers: the stacks tasks run on and the switch between them, kept apart
 * from the task scheduler (task.c) so that the machine-dependent part is
 * small and in one place.  Private to lib/.
 *
 * A thread has one "main" fiber (the stack it was started on, where the
 * loop runs) and switches only between it and one task fiber at a time:
 * main -> task when the loop resumes a task, task -> main when the task
 * suspends or ends.  The sanitizer annotations rely on that.
 */
#ifndef ALOOP_FIBER_INT_H
#define ALOOP_FIBER_INT_H

#include <stddef.h>

#if !defined(ALOOP_TASK_UCONTEXT) && \
    !defined(__x86_64__) && !defined(__aarch64__)
#define ALOOP_TASK_UCONTEXT 1
#endif

#ifdef ALOOP_TASK_UCONTEXT
#include <stdlib.h>
#include <ucontext.h>
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALOOP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(ALOOP_ASAN)
#define ALOOP_ASAN 1
#endif

#ifdef ALOOP_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* The saved machine state of a fiber that is not running. */
struct aloop__ctx {
#ifdef ALOOP_TASK_UCONTEXT
	ucontext_t	 uc;
#else
	void		*sp;	/* callee-saved registers are pushed below it */
#endif
};

/* A mapped stack: [lo, lo + size) usable, a guard page below lo. */
struct aloop__stack {
	void		*map;		/* the mapping, guard page included */
	size_t		 map_size;
	void		*lo;
	size_t		 size;
	unsigned	 vg_id;		/* valgrind's stack id, or 0 */
};

struct aloop__fiber {
	struct aloop__ctx	 ctx;
	/* The stack's bounds, for the sanitizer; NULL for the main fiber
	 * until it is first left (then it is learnt). */
	const void		*stack_lo;
	size_t			 stack_size;
	void			*asan_fake;	/* ASan's fake stack, saved */
};

/*
 * Map a stack of at least @size usable bytes (rounded up to pages) with one
 * PROT_NONE guard page below it.  MAP_NORESERVE and lazy faulting: only
 * the pages a task touches cost memory.  0 or ALOOP_ENOMEM.
 */
int	aloop__stack_map(struct aloop__stack *st, size_t size);
void	aloop__stack_unmap(struct aloop__stack *st);
/* Make a stack that held a finished task fit for the next one. */
void	aloop__stack_recycle(struct aloop__stack *st);

/*
 * Prepare @f to start running @entry(@arg) on @st the first time it is
 * switched to.  @entry must never return: a fiber ends by switching away
 * for the last time (aloop__fiber_switch with @dying set).
 */
void	aloop__fiber_make(struct aloop__fiber *f, struct aloop__stack *st,
	    void (*entry)(void *), void *arg);

#ifndef ALOOP_TASK_UCONTEXT
/* Save the callee-saved registers on this stack, load @to's (fiber.c). */
void	aloop__ctx_switch(struct aloop__ctx *from, struct aloop__ctx *to)
	    __attribute__((visibility("hidden")));
#endif

/*
 * Save the running fiber in @from and run @to.  Returns when something
 * switches back to @from.  @dying says @from will never run again, so its
 * sanitizer state can go.  @from_is_main tells which side learns the main
 * stack's bounds (see the file comment).  Inline: every return between a
 * switch and the next call misses the return predictor, so the fewer
 * frames around the switch the better.
 */
static inline __attribute__((always_inline)) void
aloop__fiber_switch(struct aloop__fiber *from, struct aloop__fiber *to,
    int dying, int from_is_main)
{
#ifdef ALOOP_ASAN
	__sanitizer_start_switch_fiber(dying ? NULL : &from->asan_fake,
	    to->stack_lo, to->stack_size);
#else
	(void)dying;
#endif
#ifdef ALOOP_TASK_UCONTEXT
	if (swapcontext(&from->ctx.uc, &to->ctx.uc) != 0)
		abort();
#else
	aloop__ctx_switch(&from->ctx, &to->ctx);
#endif
#ifdef ALOOP_ASAN
	/*
	 * Back in @from.  A task is only ever resumed from the main fiber,
	 * whose bounds it records for the switch back; the main fiber
	 * knows every task's bounds already.
	 */
	if (from_is_main)
		__sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
	else
		__sanitizer_finish_switch_fiber(from->asan_fake,
		    &to->stack_lo, &to->stack_size);
#else
	(void)from_is_main;
#endif
}

/*
 * The first thing a new fiber's entry does: finish the switch that
 * started it (the sanitizer needs to hear of it), learning @main's bounds.
 */
void	aloop__fiber_started(struct aloop__fiber *main_fiber);

#endif /* ALOOP_FIBER_INT_H */
