/*
 * aloopd: reads aloop.conf, opens the listeners it lists, and runs their
 * protocol plugins in worker processes, one event loop each, under a
 * master process that supervises them.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include <aloop/aloop.h>

#include "check.h"
#include "config-int.h"
#include "ticket_secret.h"
#include "tls_cache.h"
#include "master.h"

#define DEFAULT_CONFIG	SYSCONFDIR "/aloop/aloop.conf"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: aloopd [-c FILE] [-t | -T] [-f] [-d] [--version] [--help]\n"
	    "\n"
	    "  -c, --config FILE  configuration file (default %s)\n"
	    "  -t, --test         check the configuration and the plugins it\n"
	    "                     names, then exit 0 if it is valid, 1 if not\n"
	    "  -T, --dump         check as -t does, then print the configuration\n"
	    "                     as aloopd reads it, defaults included\n"
	    "  -f, --foreground   stay in the foreground (the mode for systemd)\n"
	    "  -d, --debug        run the event loops in debug mode\n"
	    "  -V, --version      print the versions of aloopd and its libraries\n"
	    "  -h, --help         print this help\n",
	    DEFAULT_CONFIG);
}

/*
 * Load and validate @path: the file, its TLS settings (built by the
 * library that serves them), and its plugins, loaded and initialised in a
 * child process so that one that crashes cannot take this one along.  On
 * failure print every error, one per line, to stderr and return NULL.
 * `aloopd -t` and a start run exactly this.
 */
static struct config *
load_config(const char *path)
{
	struct config *cfg;
	int rc;

	rc = config_parse(path, &cfg);
	/* Every problem at once: the plugins' too, even with others. */
	if (rc == 0 || (rc == ALOOP_ECONFIG && cfg != NULL))
		rc = check_plugins(cfg) != 0 ? ALOOP_ECONFIG : rc;
	if (rc == 0)
		return cfg;
	if (cfg != NULL)
		for (size_t i = 0; i < cfg->nerrors; i++)
			fprintf(stderr, "%s\n", cfg->errors[i]);
	if (rc != ALOOP_ECONFIG)
		fprintf(stderr, "aloopd: %s: %s\n", path, aloop_strerror(rc));
	config_free(cfg);
	return NULL;
}

static void
version(void)
{
	printf("aloopd %s\n", PACKAGE_VERSION);
	printf("libaloop %s, libevent %s, OpenSSL %s, libconfig %d.%d.%d\n",
	    aloop_version(), aloop_libevent_version(), aloop_openssl_version(),
	    LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
	printf("plugin ABI %d.%d\n", ALOOP_PLUGIN_ABI_MAJOR,
	    ALOOP_PLUGIN_ABI_MINOR);
	printf("configuration: %s\n", DEFAULT_CONFIG);
	printf("plugins: %s\n", PLUGINDIR);
	printf("systemd: %s\n",
#ifdef HAVE_LIBSYSTEMD
	    "libsystemd"
#else
	    "built-in protocol (without libsystemd)"
#endif
	    );
	printf("sanitizers: %s\n",
#ifdef ALOOP_SANITIZERS
	    "address, undefined"
#else
	    "none"
#endif
	    );
	printf("configure arguments: %s\n", ALOOP_CONFIGURE_ARGS[0] != '\0' ?
	    ALOOP_CONFIGURE_ARGS : "(none)");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "dump", no_argument, NULL, 'T' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = DEFAULT_CONFIG;
	struct config *cfg;
	struct master_options mo = { 0 };
	int ch, test_only = 0, dump = 0;

	while ((ch = getopt_long(argc, argv, "c:tTfdVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 't':
			test_only = 1;
			break;
		case 'T':
			test_only = dump = 1;
			break;
		case 'f':
			mo.foreground = 1;
			break;
		case 'd':
			mo.debug = 1;
			break;
		case 'V':
			version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "aloopd: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return 1;
	}
	/*
	 * Before the first context is built: they all derive from the
	 * secret, which the first one that issues tickets makes.
	 */
	if (!test_only)
		(void)ticket_secret_init();
	if ((cfg = load_config(config_path)) == NULL) {
		if (test_only)
			fprintf(stderr, "%s: configuration test failed\n",
			    config_path);
		return 1;
	}
	if (dump) {
		/* nginx -T's split: the text on stdout, the verdict apart. */
		int r = config_dump(cfg, stdout);

		fprintf(stderr, "%s: configuration OK\n", config_path);
		config_free(cfg);
		tls_cache_clear();
		return r == 0 && fflush(stdout) == 0 ? 0 : 1;
	}
	if (test_only) {
		printf("%s: configuration OK\n", config_path);
		config_free(cfg);
		tls_cache_clear();
		return 0;
	}

	mo.config_path = config_path;
	mo.argv = argv;
	return master_run(cfg, &mo);
}
