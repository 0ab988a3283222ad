/*
 * bench_config: how long aloopd takes to parse and check a configuration
 * of many listeners, the work `aloopd -t`, a start and every reload begin
 * with (issue 10: 100,000 listeners in well under a second).
 *
 *	bench_config [-r REPEATS] [N ...]
 *
 * For each N (default 10000 and 100000) writes a file of N echo listeners,
 * each on its own address, parses it R times (3) with the daemon's own
 * config_parse and prints one raw line per repeat, as bench/run.sh keeps
 * them: wall and CPU time of the parse, and the wall time of freeing it:
 *
 *	scenario=config_100000 server=aloopd rep=1 listeners=100000
 *	    ms=412.0 cpu_ms=398.1 free_ms=61.2	(one line)
 *
 * The time per listener at the largest N against the smallest says
 * whether the checks stay linear.  Plugins are not loaded: that part of
 * a check is plugin code, measured by bench/startup.py.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config-int.h"

#define MAX_REPEATS	100

static double
ms(clockid_t clock)
{
	struct timespec t;

	clock_gettime(clock, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* N listeners, 60,000 ports per loopback address. */
static int
write_config(const char *path, unsigned long n)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fprintf(f, "daemon = { workers = 1; };\nlisteners = (\n");
	for (unsigned long i = 0; i < n; i++)
		fprintf(f, "  { name = \"l%lu\"; protocol = \"echo\"; "
		    "listen = [ \"127.0.%lu.1:%lu\" ]; }%s\n", i,
		    i / 60000, 1024 + i % 60000, i + 1 < n ? "," : "");
	fprintf(f, ");\n");
	return fclose(f) == 0 ? 0 : -1;
}

static int
run(const char *path, unsigned long n, int repeats)
{
	double wall[MAX_REPEATS], cpu[MAX_REPEATS], freed[MAX_REPEATS];

	for (int r = 0; r < repeats; r++) {
		struct config *cfg = NULL;
		double w0 = ms(CLOCK_MONOTONIC);
		double c0 = ms(CLOCK_PROCESS_CPUTIME_ID);
		int rc = config_parse(path, &cfg);

		wall[r] = ms(CLOCK_MONOTONIC) - w0;
		cpu[r] = ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
		if (rc != 0 || cfg->nlisteners != n) {
			fprintf(stderr, "bench_config: %s: parse failed (%d)\n",
			    path, rc);
			config_free(cfg);
			return -1;
		}
		w0 = ms(CLOCK_MONOTONIC);
		config_free(cfg);
		freed[r] = ms(CLOCK_MONOTONIC) - w0;
	}
	for (int r = 0; r < repeats; r++)
		printf("scenario=config_%lu server=aloopd rep=%d listeners=%lu "
		    "ms=%.1f cpu_ms=%.1f free_ms=%.1f\n", n, r + 1, n, wall[r],
		    cpu[r], freed[r]);
	fflush(stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	static unsigned long defaults[] = { 10000, 100000 };
	char dir[] = "/tmp/aloop-bench-config.XXXXXX", path[64];
	unsigned long *counts = defaults;
	int ncounts = 2, repeats = 3, c, status = 0;

	while ((c = getopt(argc, argv, "r:")) != -1) {
		if (c != 'r' || (repeats = atoi(optarg)) < 1 ||
		    repeats > MAX_REPEATS) {
			fprintf(stderr, "usage: bench_config [-r REPEATS] "
			    "[N ...]\n");
			return 2;
		}
	}
	if (optind < argc) {
		ncounts = argc - optind;
		if ((counts = calloc((size_t)ncounts, sizeof(*counts))) == NULL)
			return 1;
		for (int i = 0; i < ncounts; i++)
			counts[i] = strtoul(argv[optind + i], NULL, 10);
	}
	if (mkdtemp(dir) == NULL) {
		perror("bench_config: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/aloop.conf", dir);
	for (int i = 0; i < ncounts && status == 0; i++) {
		if (counts[i] < 1 || counts[i] > 60000UL * 256) {
			fprintf(stderr, "bench_config: N out of range\n");
			status = 2;
		} else if (write_config(path, counts[i]) != 0) {
			perror("bench_config: writing the configuration");
			status = 1;
		} else if (run(path, counts[i], repeats) != 0)
			status = 1;
	}
	unlink(path);
	rmdir(dir);
	if (counts != defaults)
		free(counts);
	return status;
}
