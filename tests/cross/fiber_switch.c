/*
 * The fiber switch of lib/fiber.c on its own, for a machine we build for
 * but do not run on: script/cross-fiber builds it statically with a cross
 * compiler and runs it under qemu-user.  A fiber and the main stack
 * ping-pong many times while each keeps integer and floating-point values
 * live across the switch (the callee-saved registers), and the fiber
 * checks that its stack is 16-byte aligned on entry.  Prints "ok" and
 * exits 0, or names what broke.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fiber-int.h"

#define ROUNDS	100000

static struct aloop__fiber main_f, task_f;
static volatile unsigned long shared;

static void
fail(const char *what)
{
	fprintf(stderr, "fiber_switch: %s\n", what);
	exit(1);
}

static void __attribute__((noinline))
check_aligned(void)
{
	char probe __attribute__((aligned(16)));

	if (((uintptr_t)&probe & 15) != 0)
		fail("the fiber's stack is not 16-byte aligned");
}

/* Values the compiler keeps in callee-saved registers across the calls. */
static void
entry(void *arg)
{
	unsigned long a = 1, b = 2, c = 3, d = 4, e = 5, f = 6;
	double x = 0.5, y = 1.5, z = 2.5;

	if (arg != &task_f)
		fail("the entry's argument was lost");
	check_aligned();
	aloop__fiber_started(&main_f);
	for (unsigned long i = 0; i < ROUNDS; i++) {
		shared = a + b + c + d + e + f + i;
		aloop__fiber_switch(&task_f, &main_f, 0, 0);
		a += 1; b += 2; c += 3; d += 4; e += 5; f += 6;
		x += 1; y += 2; z += 3;
	}
	if (a != 1 + ROUNDS || f != 6 + 6ul * ROUNDS ||
	    x != 0.5 + ROUNDS || z != 2.5 + 3.0 * ROUNDS)
		fail("the fiber's registers were not preserved");
	shared = 0;
	aloop__fiber_switch(&task_f, &main_f, 1, 0);
	fail("a finished fiber was resumed");
}

int
main(void)
{
	struct aloop__stack st;
	unsigned long m1 = 11, m2 = 22, m3 = 33;
	double q = 0.25;

	if (aloop__stack_map(&st, 64 * 1024) != 0)
		fail("aloop__stack_map");
	aloop__fiber_make(&task_f, &st, entry, &task_f);
	for (unsigned long i = 0; i < ROUNDS; i++) {
		unsigned long want = 1 + 2 + 3 + 4 + 5 + 6 + 21 * i + i;

		aloop__fiber_switch(&main_f, &task_f, 0, 1);
		if (shared != want)
			fail("the fiber computed a wrong value");
		m1 += 1; m2 += 2; m3 += 3; q += 1;
	}
	aloop__fiber_switch(&main_f, &task_f, 0, 1);
	if (shared != 0)
		fail("the fiber did not finish");
	if (m1 != 11 + ROUNDS || m3 != 33 + 3ul * ROUNDS ||
	    q != 0.25 + ROUNDS)
		fail("the main stack's registers were not preserved");
	aloop__stack_unmap(&st);
	printf("ok: %d round trips\n", ROUNDS);
	return 0;
}
