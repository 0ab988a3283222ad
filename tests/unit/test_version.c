/*
 * The build itself: version strings, the dependencies' versions and the
 * error texts, proving the configure -> build -> test chain.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <aloop/aloop.h>

#include "runner.h"

static void
test_version_matches_build(void)
{
	CU_ASSERT_STRING_EQUAL(aloop_version(), PACKAGE_VERSION);
	CU_ASSERT_STRING_EQUAL(ALOOP_VERSION_STRING, PACKAGE_VERSION);
	CU_ASSERT(ALOOP_PLUGIN_ABI_MAJOR >= 1);
}

static void
test_dependency_versions(void)
{
	/* configure requires libevent >= 2.1 and OpenSSL >= 3.0. */
	CU_ASSERT_EQUAL(strncmp(aloop_libevent_version(), "2.", 2), 0);
	CU_ASSERT(strncmp(aloop_libevent_version(), "2.0", 3) != 0);
	CU_ASSERT(aloop_openssl_version()[0] >= '3');
}

static void
test_strerror(void)
{
	CU_ASSERT_STRING_EQUAL(aloop_strerror(0), "success");
	CU_ASSERT_STRING_EQUAL(aloop_strerror(ALOOP_EINVAL), strerror(EINVAL));
	CU_ASSERT_STRING_EQUAL(aloop_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
	CU_ASSERT_STRING_EQUAL(aloop_strerror(ALOOP_ESTATE),
	    "operation not allowed in the current state");
	CU_ASSERT_STRING_EQUAL(aloop_strerror(-99999), "unknown error");
	CU_ASSERT_STRING_EQUAL(aloop_strerror(1), "unknown error");
}

static int captured_level;
static char captured[256];

static void
capture_sink(int level, const char *line, void *arg)
{
	(void)arg;
	captured_level = level;
	snprintf(captured, sizeof(captured), "%s", line);
}

static void
test_log_levels_and_errno(void)
{
	int saved = aloop_log_get_level();

	aloop_log_set_sink(capture_sink, NULL);
	aloop_log_set_level(ALOOP_LOG_INFO);
	captured[0] = '\0';
	aloop_log(ALOOP_LOG_DEBUG, "dropped %d", 1);
	CU_ASSERT_STRING_EQUAL(captured, "");
	aloop_log(ALOOP_LOG_WARNING, "kept %d", 2);
	CU_ASSERT_STRING_EQUAL(captured, "kept 2");
	CU_ASSERT_EQUAL(captured_level, ALOOP_LOG_WARNING);
	errno = ENOENT;
	aloop_log_errno(ALOOP_LOG_ERR, "open %s", "x");
	CU_ASSERT_EQUAL(errno, ENOENT);
	CU_ASSERT_STRING_EQUAL(captured, "open x: No such file or directory");
	CU_ASSERT_EQUAL(aloop_log_level_from_name("err"), ALOOP_LOG_ERR);
	CU_ASSERT_EQUAL(aloop_log_level_from_name("DEBUG"), ALOOP_LOG_DEBUG);
	CU_ASSERT_EQUAL(aloop_log_level_from_name("loud"), -1);
	CU_ASSERT_STRING_EQUAL(aloop_log_level_name(ALOOP_LOG_NOTICE), "notice");
	CU_ASSERT_PTR_NULL(aloop_log_level_name(9));
	aloop_log_set_sink(NULL, NULL);
	aloop_log_set_level(saved);
}

static const struct test_case cases[] = {
	TEST(test_version_matches_build),
	TEST(test_dependency_versions),
	TEST(test_strerror),
	TEST(test_log_levels_and_errno),
};

TEST_MAIN("version", cases)
