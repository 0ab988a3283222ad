/*
 * The daemon's side channels to the service manager, checked against real
 * sockets: sd_notify datagrams on the test's own NOTIFY_SOCKET, the
 * watchdog variables, socket activation with LISTEN_FDS set for this very
 * process, and the journald priority prefixes of the stderr log sink.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "activation.h"
#include "logsink.h"
#include "notify.h"
#include "runner.h"

/* A datagram socket standing in for systemd's notification socket. */
struct fake_manager {
	int	fd;
	char	path[108];
};

static int
manager_open(struct fake_manager *m, int abstract)
{
	struct sockaddr_un sun;
	socklen_t len;
	struct timeval tv = { .tv_sec = 5 };

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (abstract) {
		snprintf(m->path, sizeof(m->path), "@aloop-test-notify-%ld",
		    (long)getpid());
		memcpy(sun.sun_path + 1, m->path + 1, strlen(m->path) - 1);
		len = offsetof(struct sockaddr_un, sun_path) + strlen(m->path);
	} else {
		snprintf(m->path, sizeof(m->path), "/tmp/aloop-test-notify-%ld",
		    (long)getpid());
		unlink(m->path);
		memcpy(sun.sun_path, m->path, strlen(m->path) + 1);
		len = sizeof(sun);
	}
	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (m->fd == -1)
		return -1;
	/* A bounded wait: a lost message fails the test instead of hanging. */
	if (setsockopt(m->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    bind(m->fd, (struct sockaddr *)&sun, len) == -1) {
		close(m->fd);
		return -1;
	}
	return setenv("NOTIFY_SOCKET", m->path, 1);
}

static void
manager_close(struct fake_manager *m)
{
	close(m->fd);
	if (m->path[0] == '/')
		unlink(m->path);
	unsetenv("NOTIFY_SOCKET");
}

static ssize_t
manager_recv(struct fake_manager *m, char *buf, size_t size)
{
	ssize_t n = recv(m->fd, buf, size - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

static void
test_notify_plain_path_and_abstract(void)
{
	struct fake_manager m;
	char buf[256];

	for (int abstract = 0; abstract <= 1; abstract++) {
		CU_ASSERT_EQUAL_FATAL(manager_open(&m, abstract), 0);
		CU_ASSERT_EQUAL(notify_send_plain("READY=1"), 0);
		CU_ASSERT_EQUAL(manager_recv(&m, buf, sizeof(buf)), 7);
		CU_ASSERT_STRING_EQUAL(buf, "READY=1");
		CU_ASSERT_EQUAL(notify_send_plain("STOPPING=1"), 0);
		manager_recv(&m, buf, sizeof(buf));
		CU_ASSERT_STRING_EQUAL(buf, "STOPPING=1");
		manager_close(&m);
	}
}

static void
test_notify_messages(void)
{
	struct fake_manager m;
	char buf[256];
	unsigned long long usec;
	int n;

	CU_ASSERT_EQUAL_FATAL(manager_open(&m, 0), 0);
	CU_ASSERT_EQUAL(notify_ready(), 0);
	manager_recv(&m, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "READY=1");

	CU_ASSERT_EQUAL(notify_reloading(), 0);
	manager_recv(&m, buf, sizeof(buf));
	n = 0;
	CU_ASSERT_EQUAL(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu%n",
	    &usec, &n), 1);
	CU_ASSERT(n > 0 && buf[n] == '\0');
	CU_ASSERT(usec > 0);

	/* STATUS= must stay one assignment even if the text has a newline. */
	CU_ASSERT_EQUAL(notify_status("%d connections\nfake", 42), 0);
	manager_recv(&m, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "STATUS=42 connections fake");

	CU_ASSERT_EQUAL(notify_watchdog(), 0);
	manager_recv(&m, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "WATCHDOG=1");
	manager_close(&m);
}

static void
test_notify_without_manager(void)
{
	unsetenv("NOTIFY_SOCKET");
	CU_ASSERT_EQUAL(notify_ready(), 0);
	CU_ASSERT_EQUAL(notify_send_plain("READY=1"), 0);
	/* Relative names are not a notification socket. */
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	CU_ASSERT(notify_send_plain("READY=1") < 0);
	/* A socket path that nobody listens on is an error, not a hang. */
	setenv("NOTIFY_SOCKET", "/nonexistent/aloop-notify", 1);
	CU_ASSERT_EQUAL(notify_send_plain("READY=1"), -ENOENT);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_watchdog_usec(void)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	CU_ASSERT_EQUAL(notify_watchdog_usec(), 0);
	CU_ASSERT_EQUAL(notify_watchdog_usec_plain(), 0);

	setenv("WATCHDOG_USEC", "30000000", 1);
	CU_ASSERT_EQUAL(notify_watchdog_usec(), 30000000);
	CU_ASSERT_EQUAL(notify_watchdog_usec_plain(), 30000000);
	setenv("WATCHDOG_PID", pid, 1);
	CU_ASSERT_EQUAL(notify_watchdog_usec(), 30000000);
	CU_ASSERT_EQUAL(notify_watchdog_usec_plain(), 30000000);

	/* A watchdog meant for another process is not ours to ping. */
	setenv("WATCHDOG_PID", "1", 1);
	CU_ASSERT_EQUAL(notify_watchdog_usec(), 0);
	CU_ASSERT_EQUAL(notify_watchdog_usec_plain(), 0);

	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "soon", 1);
	CU_ASSERT_EQUAL(notify_watchdog_usec_plain(), 0);
	setenv("WATCHDOG_USEC", "-5", 1);
	CU_ASSERT_EQUAL(notify_watchdog_usec_plain(), 0);
	unsetenv("WATCHDOG_USEC");
}

/* A listening TCP socket on 127.0.0.1, port 0, moved to descriptor @at. */
static int
listen_at(int at, unsigned short *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 8) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	if (fd != at) {
		if (dup2(fd, at) == -1) {
			close(fd);
			return -1;
		}
		close(fd);
	}
	return at;
}

static int
connect_port(unsigned short port)
{
	struct sockaddr_in sin;
	int fd, r;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return r;
}

/*
 * Descriptors 3 and 4 are where the protocol puts passed sockets; whatever
 * the test harness left there is parked elsewhere meanwhile.
 */
static int saved3 = -1, saved4 = -1;

static void
park_fds(void)
{
	saved3 = fcntl(3, F_DUPFD_CLOEXEC, 10);
	saved4 = fcntl(4, F_DUPFD_CLOEXEC, 10);
}

static void
restore_fds(void)
{
	if (saved3 != -1) {
		dup2(saved3, 3);
		close(saved3);
	}
	if (saved4 != -1) {
		dup2(saved4, 4);
		close(saved4);
	}
	saved3 = saved4 = -1;
}

static void
test_activation_by_name(void)
{
	unsigned short port_web, port_echo;
	char pid[32];

	park_fds();
	CU_ASSERT_EQUAL_FATAL(listen_at(3, &port_web), 3);
	CU_ASSERT_EQUAL_FATAL(listen_at(4, &port_echo), 4);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_FDNAMES", "web:echo-tcp", 1);

	CU_ASSERT_EQUAL(activation_init(), 2);
	/* Nothing the daemon starts may inherit them. */
	CU_ASSERT_PTR_NULL(getenv("LISTEN_PID"));
	CU_ASSERT_PTR_NULL(getenv("LISTEN_FDS"));
	CU_ASSERT_PTR_NULL(getenv("LISTEN_FDNAMES"));
	CU_ASSERT(fcntl(3, F_GETFD) & FD_CLOEXEC);
	CU_ASSERT(fcntl(4, F_GETFD) & FD_CLOEXEC);

	CU_ASSERT_EQUAL(activation_count(), 2);
	CU_ASSERT_STRING_EQUAL(activation_name(0), "web");
	CU_ASSERT_STRING_EQUAL(activation_name(1), "echo-tcp");
	CU_ASSERT_EQUAL(activation_claimed(1), 0);
	CU_ASSERT_EQUAL(activation_find("echo-tcp"), 4);
	CU_ASSERT_EQUAL(activation_claimed(1), 1);
	CU_ASSERT_EQUAL(activation_claimed(0), 0);
	CU_ASSERT_EQUAL(activation_find("echo"), -1);
	CU_ASSERT_EQUAL(activation_fd(0), 3);
	CU_ASSERT_EQUAL(activation_fd(2), -1);
	/* The passed sockets are the live listeners, still accepting. */
	CU_ASSERT_EQUAL(connect_port(port_echo), 0);
	CU_ASSERT_EQUAL(connect_port(port_web), 0);

	activation_free();
	CU_ASSERT_EQUAL(activation_count(), 0);
	CU_ASSERT_EQUAL(fcntl(3, F_GETFD), -1);
	CU_ASSERT_EQUAL(fcntl(4, F_GETFD), -1);
	CU_ASSERT_EQUAL(connect_port(port_echo), -1);
	activation_free();	/* idempotent */
	restore_fds();
}

static void
test_activation_plain_parser(void)
{
	unsigned short port;
	char pid[32], **names;

	park_fds();
	CU_ASSERT_EQUAL_FATAL(listen_at(3, &port), 3);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());

	/* Meant for another process: ignored, and the variables dropped. */
	setenv("LISTEN_PID", "1", 1);
	setenv("LISTEN_FDS", "1", 1);
	CU_ASSERT_EQUAL(activation_parse_plain(&names), 0);
	CU_ASSERT_PTR_NULL(names);
	CU_ASSERT_PTR_NULL(getenv("LISTEN_FDS"));

	/* Garbage is refused. */
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "many", 1);
	CU_ASSERT_EQUAL(activation_parse_plain(&names), -EINVAL);
	CU_ASSERT_PTR_NULL(getenv("LISTEN_PID"));

	/* No names: every socket is unnamed, so no listener adopts it. */
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	CU_ASSERT_EQUAL_FATAL(activation_parse_plain(&names), 1);
	CU_ASSERT_STRING_EQUAL(names[0], "");
	CU_ASSERT_PTR_NULL(names[1]);
	free(names[0]);
	free(names);

	/* Fewer names than sockets: the rest are unnamed. */
	CU_ASSERT_EQUAL_FATAL(listen_at(4, &port), 4);
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_FDNAMES", "first", 1);
	CU_ASSERT_EQUAL_FATAL(activation_parse_plain(&names), 2);
	CU_ASSERT_STRING_EQUAL(names[0], "first");
	CU_ASSERT_STRING_EQUAL(names[1], "");
	free(names[0]);
	free(names[1]);
	free(names);
	close(3);
	close(4);
	restore_fds();
}

/* Point stderr at a temporary file for the length of a log check. */
static int
capture_stderr(FILE **tmp, int *saved)
{
	fflush(stderr);
	*tmp = tmpfile();
	if (*tmp == NULL)
		return -1;
	*saved = dup(STDERR_FILENO);
	return dup2(fileno(*tmp), STDERR_FILENO) == -1 ? -1 : 0;
}

static void
captured_text(FILE *tmp, int saved, char *buf, size_t size)
{
	size_t n;

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, size - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
}

static void
test_logsink_journal_prefix(void)
{
	char buf[512], js[64];
	struct stat st;
	FILE *tmp;
	int saved;

	CU_ASSERT_EQUAL_FATAL(capture_stderr(&tmp, &saved), 0);
	CU_ASSERT_EQUAL_FATAL(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	CU_ASSERT(logsink_stderr_is_journal());
	logsink_open(LOGSINK_STDERR, "aloopd");
	aloop_log(ALOOP_LOG_NOTICE, "listener %s ready", "echo");
	aloop_log(ALOOP_LOG_ERR, "bad %d", 1);
	logsink_close();
	captured_text(tmp, saved, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "<5>listener echo ready\n<3>bad 1\n");

	/* An inherited variable that names another file is not the journal. */
	CU_ASSERT_EQUAL_FATAL(capture_stderr(&tmp, &saved), 0);
	CU_ASSERT_EQUAL_FATAL(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", js, 1);
	CU_ASSERT_FALSE(logsink_stderr_is_journal());
	logsink_open(LOGSINK_STDERR, "aloopd");
	aloop_log(ALOOP_LOG_WARNING, "plain %s", "line");
	logsink_close();
	captured_text(tmp, saved, buf, sizeof(buf));
	/* Outside the journal a line carries its own ISO 8601 time. */
	CU_ASSERT(strlen(buf) > 30 && buf[4] == '-' && buf[10] == 'T' &&
	    buf[19] == '.' && (buf[23] == '+' || buf[23] == '-') &&
	    buf[26] == ':' && buf[29] == ' ');
	CU_ASSERT_STRING_EQUAL(buf + 30, "aloopd: warning: plain line\n");
	unsetenv("JOURNAL_STREAM");

	CU_ASSERT_EQUAL(logsink_target_from_name("stderr"), LOGSINK_STDERR);
	CU_ASSERT_EQUAL(logsink_target_from_name("syslog"), LOGSINK_SYSLOG);
	CU_ASSERT_EQUAL(logsink_target_from_name("journal"), -1);
}

static const struct test_case cases[] = {
	TEST(test_notify_plain_path_and_abstract),
	TEST(test_notify_messages),
	TEST(test_notify_without_manager),
	TEST(test_watchdog_usec),
	TEST(test_activation_by_name),
	TEST(test_activation_plain_parser),
	TEST(test_logsink_journal_prefix),
};

TEST_MAIN("notify", cases)
