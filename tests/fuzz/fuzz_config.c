/*
 * libFuzzer target: aloop.conf as the master reads it (config_parse: the
 * files, every setting, the listen addresses, the TLS files named), with
 * one @include.  The input up to its first NUL byte is aloop.conf, the
 * rest inc.conf beside it; both are written to a scratch directory made
 * once per process.  Plugins are not loaded: the master never does.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "config-int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char dir[] = "/tmp/aloop-fuzz-config.XXXXXX";
static char main_path[PATH_MAX], inc_path[PATH_MAX];

static void
remove_dir(void)
{
	unlink(main_path);
	unlink(inc_path);
	rmdir(dir);
}

static int
put(const char *path, const uint8_t *p, size_t n)
{
	FILE *f;
	int ok;

	if ((f = fopen(path, "w")) == NULL)
		return -1;
	ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t n = nul != NULL ? (size_t)(nul - data) : size;
	struct config *cfg;

	if (main_path[0] == '\0') {
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(main_path, sizeof(main_path), "%s/aloop.conf", dir);
		snprintf(inc_path, sizeof(inc_path), "%s/inc.conf", dir);
		atexit(remove_dir);
	}
	if (put(main_path, data, n) != 0 || put(inc_path, nul != NULL ?
	    nul + 1 : data, nul != NULL ? size - n - 1 : 0) != 0)
		abort();
	(void)config_parse(main_path, &cfg);
	/* Whatever it said, every error is a line of its own. */
	for (size_t i = 0; cfg != NULL && i < cfg->nerrors; i++)
		if (strchr(cfg->errors[i], '\0') == NULL)
			abort();
	config_free(cfg);
	/* Each input on its own: no context kept from the one before. */
	tls_cache_clear();
	return 0;
}
