/*
 * The CUnit runner every unit-test program shares: a test file lists its
 * cases in a table and ends with TEST_MAIN; the runner registers them as one
 * suite, prints CUnit's summary, bounds the run with a watchdog and exits
 * non-zero on any failure (or when no test ran at all).
 */
#ifndef ALOOP_TEST_RUNNER_H
#define ALOOP_TEST_RUNNER_H

#include <stddef.h>

#include <CUnit/CUnit.h>

struct test_case {
	const char	*name;
	CU_TestFunc	 fn;
};

#define TEST(fn)	{ #fn, fn }

/*
 * Run @cases as suite @suite.  The whole program is killed by SIGALRM
 * after $TEST_TIMEOUT seconds (default 120), so a hang fails instead of
 * blocking `make check`.
 */
int test_run_suite(const char *suite, const struct test_case *cases,
    size_t ncases);

#define TEST_MAIN(suite, cases)						\
	int								\
	main(void)							\
	{								\
		return test_run_suite((suite), (cases),			\
		    sizeof(cases) / sizeof((cases)[0]));		\
	}

#endif /* ALOOP_TEST_RUNNER_H */
