/*
 * Helpers of the daemon's unit tests (see daemon_test.h).
 */
#include "config.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "config-int.h"
#include "daemon_test.h"

static char scratch[PATH_MAX];
static char oldcwd[PATH_MAX];

void
td_enter(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(scratch, sizeof(scratch), "%s/aloop-test-XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	CU_ASSERT_FATAL(mkdtemp(scratch) != NULL);
	CU_ASSERT_FATAL(getcwd(oldcwd, sizeof(oldcwd)) != NULL);
	CU_ASSERT_FATAL(chdir(scratch) == 0);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void
td_leave(void)
{
	CU_ASSERT(chdir(oldcwd) == 0);
	CU_ASSERT(nftw(scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

const char *
td_dir(void)
{
	return scratch;
}

void
td_write(const char *name, const char *text)
{
	FILE *f = fopen(name, "w");

	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT(fputs(text, f) >= 0);
	CU_ASSERT(fclose(f) == 0);
}

int
td_make_cert(const char *dir)
{
	const char *src = getenv("top_srcdir");
	char cmd[PATH_MAX * 2 + 64];

	snprintf(cmd, sizeof(cmd), "'%s/script/make-dev-cert' '%s' >/dev/null",
	    src != NULL ? src : ABS_TOP_SRCDIR, dir);
	return system(cmd) == 0 ? 0 : -1;
}

const char *
td_fixture(const char *name)
{
	static char path[PATH_MAX];
	const char *build = getenv("top_builddir");

	snprintf(path, sizeof(path), "%s/tests/fixtures/.libs/%s.so",
	    build != NULL ? build : ABS_TOP_BUILDDIR, name);
	return path;
}

int
td_errors_are(const struct config *cfg, const char *const *expected)
{
	size_t n = 0;
	int same;

	while (expected[n] != NULL)
		n++;
	same = cfg != NULL && cfg->nerrors == n;
	for (size_t i = 0; same && i < n; i++)
		same = strcmp(cfg->errors[i], expected[i]) == 0;
	if (!same) {
		fprintf(stderr, "\nexpected:\n");
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  %s\n", expected[i]);
		fprintf(stderr, "got:\n");
		for (size_t i = 0; cfg != NULL && i < cfg->nerrors; i++)
			fprintf(stderr, "  %s\n", cfg->errors[i]);
	}
	return same;
}
