/*
 * The shared CUnit runner (see runner.h).
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "runner.h"

static void
on_alarm(int sig)
{
	static const char msg[] = "test program timed out: killed by watchdog\n";

	(void)sig;
	/* write(2) is async-signal-safe; stdio is not. */
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(124);
	_exit(124);
}

int
test_run_suite(const char *suite_name, const struct test_case *cases,
    size_t ncases)
{
	const char *env = getenv("TEST_TIMEOUT");
	unsigned timeout = env != NULL ? (unsigned)atoi(env) : 120;
	CU_pSuite suite;
	unsigned failures, ran;

	signal(SIGALRM, on_alarm);
	alarm(timeout > 0 ? timeout : 120);
	/* A peer that goes away must fail a test, not kill the program. */
	signal(SIGPIPE, SIG_IGN);

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	suite = CU_add_suite(suite_name, NULL, NULL);
	if (suite == NULL)
		goto fail;
	for (size_t i = 0; i < ncases; i++)
		if (CU_add_test(suite, cases[i].name, cases[i].fn) == NULL)
			goto fail;

	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto fail;
	failures = CU_get_number_of_failures() +
	    CU_get_number_of_suites_failed() + CU_get_number_of_tests_failed();
	ran = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	if (ran == 0) {
		fprintf(stderr, "%s: no test ran\n", suite_name);
		return 1;
	}
	return failures == 0 ? 0 : 1;

fail:
	fprintf(stderr, "%s: CUnit error: %s\n", suite_name, CU_get_error_msg());
	CU_cleanup_registry();
	return 2;
}
