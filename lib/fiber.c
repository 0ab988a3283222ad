/*
 * Task stacks and the context switch under them.  x86-64 and aarch64 get a
 * few lines of assembly that save the callee-saved registers and the stack
 * pointer; other machines, or a build configured with
 * --with-task-switch=ucontext, use swapcontext(3).
 *
 * Why no library: the context switch is some thirty instructions per
 * machine, and the packaged candidates do not fit.  Debian has
 * Boost.Context and Boost.Coroutine, which are C++ and would bring a C++
 * runtime into a C library, and PCL (libpcl1 1.12, unchanged upstream
 * since 2012), which switches through ucontext or setjmp and knows
 * nothing of guard pages or the sanitizers.  Other C coroutine libraries
 * (libco, libaco, libdill) are not packaged and own either the scheduler
 * or the stack layout we need to control.  swapcontext itself is the
 * fallback, but it makes a system call per switch to save the signal
 * mask: bench_task measures it at a fraction of the assembly's rate.
 *
 * What a switch does not save: the signal mask and the floating-point
 * environment (rounding mode, exception flags) belong to the thread and
 * are shared by every task on it.
 */
#include "config.h"

#include <sys/mman.h>

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <aloop/common.h>

#include "fiber-int.h"

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

/* ------------------------------------------------------------- stacks */

static size_t
page_size(void)
{
	static size_t pg;

	if (pg == 0) {
		long v = sysconf(_SC_PAGESIZE);

		pg = v > 0 ? (size_t)v : 4096;
	}
	return pg;
}

int
aloop__stack_map(struct aloop__stack *st, size_t size)
{
	size_t pg = page_size();
	void *map;

	size = (size + pg - 1) & ~(pg - 1);
	if (size == 0 || size > SIZE_MAX - pg)
		return ALOOP_EINVAL;
	map = mmap(NULL, size + pg, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return ALOOP_ENOMEM;
	/* Stacks grow down on every machine we build for: guard the bottom. */
	if (mprotect(map, pg, PROT_NONE) != 0) {
		(void)munmap(map, size + pg);
		return ALOOP_ENOMEM;
	}
	st->map = map;
	st->map_size = size + pg;
	st->lo = (char *)map + pg;
	st->size = size;
	st->vg_id = 0;
#ifdef HAVE_VALGRIND_VALGRIND_H
	st->vg_id = VALGRIND_STACK_REGISTER(st->lo, (char *)st->lo + size);
#endif
	return 0;
}

void
aloop__stack_unmap(struct aloop__stack *st)
{
	if (st->map == NULL)
		return;
#ifdef HAVE_VALGRIND_VALGRIND_H
	VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
	aloop__stack_recycle(st);
	(void)munmap(st->map, st->map_size);
	st->map = NULL;
}

void
aloop__stack_recycle(struct aloop__stack *st)
{
#ifdef ALOOP_ASAN
	/*
	 * The last task never unwound its bottom frames (it switched away
	 * for good from inside them), so their redzones are still poisoned;
	 * the next task's frames would trip over them.
	 */
	__asan_unpoison_memory_region(st->lo, st->size);
#else
	(void)st;
#endif
}

/* ------------------------------------------------------ context switch */

#ifndef ALOOP_TASK_UCONTEXT

/* In the assembly below; hidden like every aloop__ symbol. */
void	aloop__ctx_boot(void) __attribute__((visibility("hidden")));

#if defined(__x86_64__)
/*
 * System V: rbx, rbp, r12-r15 are callee-saved; the caller's call pushed
 * the return address.  A new fiber's stack holds the six registers (entry
 * in r13, its argument in r12) and aloop__ctx_boot as the return address.
 * The switch leaves through an indirect jump rather than ret: a ret to
 * another stack always misses the return-stack predictor, and that miss
 * cost three times the whole switch where it was measured; the jump's
 * target is learnt by the branch predictor.
 */
__asm__(
	".text\n"
	".globl aloop__ctx_switch\n"
	".hidden aloop__ctx_switch\n"
	".type aloop__ctx_switch, @function\n"
	".p2align 4\n"
"aloop__ctx_switch:\n"
	"\tpushq %rbp\n"
	"\tpushq %rbx\n"
	"\tpushq %r12\n"
	"\tpushq %r13\n"
	"\tpushq %r14\n"
	"\tpushq %r15\n"
	"\tmovq %rsp, (%rdi)\n"
	"\tmovq (%rsi), %rsp\n"
	"\tpopq %r15\n"
	"\tpopq %r14\n"
	"\tpopq %r13\n"
	"\tpopq %r12\n"
	"\tpopq %rbx\n"
	"\tpopq %rbp\n"
	"\tpopq %rcx\n"
	"\tjmp *%rcx\n"
	".size aloop__ctx_switch, .-aloop__ctx_switch\n"
	".globl aloop__ctx_boot\n"
	".hidden aloop__ctx_boot\n"
	".type aloop__ctx_boot, @function\n"
"aloop__ctx_boot:\n"
	"\tmovq %r12, %rdi\n"
	"\tcallq *%r13\n"
	"\tud2\n"
	".size aloop__ctx_boot, .-aloop__ctx_boot\n"
);

#define CTX_FRAME_WORDS	7	/* six registers and the return address */

static void
ctx_init(struct aloop__ctx *c, void *top, void (*entry)(void *), void *arg)
{
	/*
	 * After the final ret the stack pointer is @top, 16-byte aligned,
	 * so the call in aloop__ctx_boot enters @entry as the ABI wants.
	 */
	uintptr_t *sp = (uintptr_t *)top - CTX_FRAME_WORDS;

	sp[0] = 0;			/* r15 */
	sp[1] = 0;			/* r14 */
	sp[2] = (uintptr_t)entry;	/* r13 */
	sp[3] = (uintptr_t)arg;		/* r12 */
	sp[4] = 0;			/* rbx */
	sp[5] = 0;			/* rbp: the end of the frame chain */
	sp[6] = (uintptr_t)aloop__ctx_boot;
	c->sp = sp;
}

#elif defined(__aarch64__)
/*
 * AAPCS64: x19-x28, the frame pointer x29, the link register x30 and the
 * low halves of v8-v15 are callee-saved.  160 bytes keep sp 16-aligned.
 * A new fiber starts with x19 = argument, x20 = entry, x30 = boot.
 */
__asm__(
	".text\n"
	".globl aloop__ctx_switch\n"
	".hidden aloop__ctx_switch\n"
	".type aloop__ctx_switch, %function\n"
	".p2align 4\n"
"aloop__ctx_switch:\n"
	"\tsub sp, sp, #160\n"
	"\tstp x19, x20, [sp, #0]\n"
	"\tstp x21, x22, [sp, #16]\n"
	"\tstp x23, x24, [sp, #32]\n"
	"\tstp x25, x26, [sp, #48]\n"
	"\tstp x27, x28, [sp, #64]\n"
	"\tstp x29, x30, [sp, #80]\n"
	"\tstp d8, d9, [sp, #96]\n"
	"\tstp d10, d11, [sp, #112]\n"
	"\tstp d12, d13, [sp, #128]\n"
	"\tstp d14, d15, [sp, #144]\n"
	"\tmov x9, sp\n"
	"\tstr x9, [x0]\n"
	"\tldr x9, [x1]\n"
	"\tmov sp, x9\n"
	"\tldp x19, x20, [sp, #0]\n"
	"\tldp x21, x22, [sp, #16]\n"
	"\tldp x23, x24, [sp, #32]\n"
	"\tldp x25, x26, [sp, #48]\n"
	"\tldp x27, x28, [sp, #64]\n"
	"\tldp x29, x30, [sp, #80]\n"
	"\tldp d8, d9, [sp, #96]\n"
	"\tldp d10, d11, [sp, #112]\n"
	"\tldp d12, d13, [sp, #128]\n"
	"\tldp d14, d15, [sp, #144]\n"
	"\tadd sp, sp, #160\n"
	"\tret\n"
	".size aloop__ctx_switch, .-aloop__ctx_switch\n"
	".globl aloop__ctx_boot\n"
	".hidden aloop__ctx_boot\n"
	".type aloop__ctx_boot, %function\n"
"aloop__ctx_boot:\n"
	"\tmov x0, x19\n"
	"\tblr x20\n"
	"\tbrk #0\n"
	".size aloop__ctx_boot, .-aloop__ctx_boot\n"
);

static void
ctx_init(struct aloop__ctx *c, void *top, void (*entry)(void *), void *arg)
{
	uintptr_t *sp = (uintptr_t *)((char *)top - 160);

	for (int i = 0; i < 20; i++)
		sp[i] = 0;
	sp[0] = (uintptr_t)arg;			/* x19 */
	sp[1] = (uintptr_t)entry;		/* x20 */
	sp[11] = (uintptr_t)aloop__ctx_boot;	/* x30 */
	c->sp = sp;
}
#endif

#else /* ALOOP_TASK_UCONTEXT */

/*
 * makecontext passes int arguments only; the entry and its argument go
 * through this thread's slot instead, read at once by the new fiber.
 */
static __thread void (*boot_entry)(void *);
static __thread void *boot_arg;

static void
ctx_boot(void)
{
	void (*entry)(void *) = boot_entry;
	void *arg = boot_arg;

	entry(arg);
	abort();
}

static void
ctx_init(struct aloop__ctx *c, void *lo, size_t size)
{
	if (getcontext(&c->uc) != 0)
		abort();
	c->uc.uc_stack.ss_sp = lo;
	c->uc.uc_stack.ss_size = size;
	c->uc.uc_link = NULL;
	makecontext(&c->uc, ctx_boot, 0);
}
#endif

void
aloop__fiber_make(struct aloop__fiber *f, struct aloop__stack *st,
    void (*entry)(void *), void *arg)
{
	f->stack_lo = st->lo;
	f->stack_size = st->size;
	f->asan_fake = NULL;
#ifdef ALOOP_TASK_UCONTEXT
	ctx_init(&f->ctx, st->lo, st->size);
	/* Read by ctx_boot on the first switch, before any other make. */
	boot_entry = entry;
	boot_arg = arg;
#else
	ctx_init(&f->ctx, (char *)st->lo + st->size, entry, arg);
#endif
}

void
aloop__fiber_started(struct aloop__fiber *main_fiber)
{
#ifdef ALOOP_ASAN
	__sanitizer_finish_switch_fiber(NULL, &main_fiber->stack_lo,
	    &main_fiber->stack_size);
#else
	(void)main_fiber;
#endif
}
