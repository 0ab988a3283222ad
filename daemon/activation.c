/*
 * Socket activation: the table of listening sockets passed in by the
 * service manager, looked up by FileDescriptorName.  libsystemd parses the
 * environment when configure found it; the plain parser below follows the
 * same protocol (sd_listen_fds(3)) and is always built so that the tests
 * exercise it in every build.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "activation.h"

/* The first passed descriptor, fixed by the protocol (SD_LISTEN_FDS_START). */
#define LISTEN_FDS_START	3
/* More than any unit sensibly passes; bounds what a bad variable costs. */
#define LISTEN_FDS_MAX		1024

struct passed_fd {
	int	 fd;
	char	*name;
	int	 claimed;
};

static struct passed_fd *passed;
static size_t npassed;

static int
parse_ulong(const char *s, unsigned long *out)
{
	char *end;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	return 0;
}

static void
unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/* Split LISTEN_FDNAMES ("a:b:c") into @n names; missing ones are "". */
static int
set_names(char **names, size_t n)
{
	const char *s = getenv("LISTEN_FDNAMES");
	const char *colon;
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = 0;
		if (s != NULL) {
			colon = strchr(s, ':');
			len = colon != NULL ? (size_t)(colon - s) : strlen(s);
		}
		names[i] = strndup(s != NULL ? s : "", len);
		if (names[i] == NULL)
			return -ENOMEM;
		if (s != NULL)
			s = s[len] == ':' ? s + len + 1 : NULL;
	}
	return 0;
}

/*
 * Parse the environment as sd_listen_fds_with_names(1, ...) does: 0 and
 * nothing set when the variables are absent or meant for another process.
 */
int
activation_parse_plain(char ***namesp)
{
	unsigned long pid, n = 0;
	char **names;
	int r, flags;

	*namesp = NULL;
	if (getenv("LISTEN_PID") == NULL) {
		unset_listen_env();
		return 0;
	}
	r = parse_ulong(getenv("LISTEN_PID"), &pid);
	if (r == 0 && pid != (unsigned long)getpid()) {
		/* Meant for a parent or a child of ours, not us. */
		unset_listen_env();
		return 0;
	}
	if (r == 0)
		r = parse_ulong(getenv("LISTEN_FDS"), &n);
	if (r == 0 && (n == 0 || n > LISTEN_FDS_MAX))
		r = n == 0 ? 0 : -E2BIG;
	if (r < 0 || n == 0) {
		unset_listen_env();
		return r;
	}
	for (unsigned long i = 0; i < n; i++) {
		flags = fcntl(LISTEN_FDS_START + (int)i, F_GETFD);
		if (flags == -1 || fcntl(LISTEN_FDS_START + (int)i, F_SETFD,
		    flags | FD_CLOEXEC) == -1) {
			r = -errno;
			unset_listen_env();
			return r;
		}
	}
	names = calloc(n + 1, sizeof(*names));
	if (names == NULL) {
		unset_listen_env();
		return -ENOMEM;
	}
	r = set_names(names, n);
	unset_listen_env();
	if (r < 0) {
		for (unsigned long i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return r;
	}
	*namesp = names;
	return (int)n;
}

int
activation_init(void)
{
	char **names = NULL;
	int n;

	activation_free();
#ifdef HAVE_LIBSYSTEMD
	n = sd_listen_fds_with_names(1, &names);
#else
	n = activation_parse_plain(&names);
#endif
	if (n <= 0) {
		free(names);
		return n;
	}
	passed = calloc((size_t)n, sizeof(*passed));
	if (passed == NULL) {
		for (int i = 0; i < n; i++) {
			close(LISTEN_FDS_START + i);
			free(names != NULL ? names[i] : NULL);
		}
		free(names);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		passed[i].fd = LISTEN_FDS_START + i;
		/* libsystemd leaves names NULL when LISTEN_FDNAMES is unset. */
		passed[i].name = names != NULL ? names[i] : NULL;
	}
	free(names);
	npassed = (size_t)n;
	return n;
}

int
activation_find(const char *name)
{
	for (size_t i = 0; i < npassed; i++) {
		if (passed[i].name != NULL &&
		    strcmp(passed[i].name, name) == 0) {
			passed[i].claimed = 1;
			return passed[i].fd;
		}
	}
	return -1;
}

size_t
activation_count(void)
{
	return npassed;
}

const char *
activation_name(size_t i)
{
	if (i >= npassed)
		return NULL;
	return passed[i].name != NULL ? passed[i].name : "";
}

int
activation_fd(size_t i)
{
	return i < npassed ? passed[i].fd : -1;
}

int
activation_claimed(size_t i)
{
	return i < npassed && passed[i].claimed;
}

void
activation_free(void)
{
	for (size_t i = 0; i < npassed; i++) {
		close(passed[i].fd);
		free(passed[i].name);
	}
	free(passed);
	passed = NULL;
	npassed = 0;
}
