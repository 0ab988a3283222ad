/*
 * The access log: lines formatted by the workers, carried by a pipe, and
 * written by the master (see accesslog.h).
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "accesslog.h"
#include "config-int.h"
#include "logsink.h"

/* Room in the pipe for bursts: a second of lines at a high rate. */
#define PIPE_SIZE	(1 << 20)
/* The most the master reads and writes in one go. */
#define CHUNK		65536

static struct {
	struct aloop_loop	*loop;
	int			 rd, wr;	/* the pipe */
	int			 target;	/* ALOG_* */
	int			 fd;		/* ALOG_FILE */
	char			*path;
	int			 journal;	/* stderr is journald's */
	char			 buf[CHUNK + PIPE_BUF];
	size_t			 held;		/* a partial line in buf */
} A = { .rd = -1, .wr = -1, .fd = -1 };

/* ------------------------------------------------------------ formatting */

struct out {
	char	*p;
	size_t	 size, len;
	int	 json;
	int	 first;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->len + n >= o->size)
		n = o->len < o->size - 1 ? o->size - 1 - o->len : 0;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
putf(struct out *o, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n :
		    sizeof(tmp) - 1);
}

/* A key=value word needs no quotes: what addresses and names are made of. */
static int
bare(const char *v)
{
	if (*v == '\0')
		return 0;
	for (; *v != '\0'; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		    (*v >= '0' && *v <= '9') || strchr("._:/@[]+-", *v) != NULL))
			return 0;
	return 1;
}

/*
 * A string value; peers choose some of them (SNI, ALPN), so every byte
 * that could break the line or the JSON is escaped.
 */
static void
put_string(struct out *o, const char *v)
{
	const unsigned char *c;

	if (!o->json && bare(v)) {
		put(o, v, strlen(v));
		return;
	}
	put(o, "\"", 1);
	for (c = (const unsigned char *)v; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\') {
			put(o, "\\", 1);
			put(o, (const char *)c, 1);
		} else if (*c < 0x20 || *c >= 0x7f)
			putf(o, o->json ? "\\u%04x" : "\\x%02x", *c);
		else
			put(o, (const char *)c, 1);
	}
	put(o, "\"", 1);
}

static void
key(struct out *o, const char *k)
{
	if (o->json)
		putf(o, "%s\"%s\":", o->first ? "{" : ",", k);
	else
		putf(o, "%s%s=", o->first ? "" : " ", k);
	o->first = 0;
}

static void
field_str(struct out *o, const char *k, const char *v)
{
	if (v == NULL)
		return;
	key(o, k);
	put_string(o, v);
}

static void
field_u64(struct out *o, const char *k, uint64_t v)
{
	key(o, k);
	putf(o, "%llu", (unsigned long long)v);
}

static void
address(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];

	buf[0] = '\0';
	if (sa == NULL || len == 0)
		return;
	if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *su = (const void *)sa;

		if (len > offsetof(struct sockaddr_un, sun_path) &&
		    su->sun_path[0] != '\0')
			snprintf(buf, size, "unix:%.*s", (int)(len -
			    offsetof(struct sockaddr_un, sun_path)),
			    su->sun_path);
		else
			snprintf(buf, size, "unix");
		return;
	}
	if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return;
	snprintf(buf, size, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
	    host, port);
}

size_t
alog_format(int format, const struct alog_entry *e, char *buf, size_t size)
{
	static const char *const ends[] = {
		[ALOG_EOF] = "eof", [ALOG_RESET] = "reset",
		[ALOG_ERROR] = "error", [ALOG_CLOSED] = "closed",
		[ALOG_ABORTED] = "aborted", [ALOG_IDLE] = "idle_timeout",
		[ALOG_FIRST_BYTE] = "first_byte_timeout",
		[ALOG_WRITE] = "write_timeout", [ALOG_SHUTDOWN] = "shutdown",
		[ALOG_REFUSED] = "refused",
	};
	struct out o = { buf, size, 0, format == ALOG_JSON, 1 };
	char now[LOGSINK_TIMESTAMP_MAX], addr[NI_MAXHOST + NI_MAXSERV + 8];

	buf[0] = '\0';
	logsink_timestamp(now, sizeof(now));
	field_str(&o, "time", now);
	field_str(&o, "listener", e->listener);
	field_u64(&o, "worker", e->worker);
	address(e->client, e->client_len, addr, sizeof(addr));
	field_str(&o, "client", addr[0] != '\0' ? addr : NULL);
	address(e->local, e->local_len, addr, sizeof(addr));
	field_str(&o, "local", addr[0] != '\0' ? addr : NULL);
	field_str(&o, "tls", e->tls_version);
	field_str(&o, "sni", e->sni);
	field_str(&o, "alpn", e->alpn);
	/* A refused client had no connection to measure. */
	if (e->end != ALOG_REFUSED) {
		key(&o, "duration");
		putf(&o, "%.3f", e->duration);
		field_u64(&o, "bytes_in", e->bytes_in);
		field_u64(&o, "bytes_out", e->bytes_out);
	}
	field_str(&o, "end", ends[e->end]);
	if (e->end == ALOG_ERROR)
		field_str(&o, "error", e->error != NULL ? e->error : "?");
	if (e->end == ALOG_REFUSED)
		field_str(&o, "refused", e->refused != NULL ? e->refused : "?");
	if (o.json)
		put(&o, "}", 1);
	/* Cut to fit, a line always ends with its newline. */
	if (o.len == size - 1)
		o.len--;
	buf[o.len++] = '\n';
	buf[o.len] = '\0';
	return o.len;
}

int
alog_write(int format, const struct alog_entry *e)
{
	char line[PIPE_BUF];
	size_t n = alog_format(format, e, line, sizeof(line));

	if (A.wr < 0)
		return -1;
	/* Whole or not at all: at most PIPE_BUF bytes, written atomically. */
	return write(A.wr, line, n) == (ssize_t)n ? 0 : -1;
}

/* --------------------------------------------------------------- master */

static void
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return;	/* a full disk: lines are lost, not the daemon */
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Write the whole lines of buf[0..n), keep the rest for the next read. */
static void
emit(size_t n)
{
	char *last = memrchr(A.buf, '\n', n), *p, *nl;
	size_t whole = last != NULL ? (size_t)(last - A.buf) + 1 : 0;

	switch (A.target) {
	case ALOG_FILE:
		write_all(A.fd, A.buf, whole);
		break;
	case ALOG_STDERR:
		if (!A.journal) {
			write_all(STDERR_FILENO, A.buf, whole);
			break;
		}
		/* The journal takes each line's priority from its prefix. */
		for (p = A.buf; p < A.buf + whole; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(A.buf + whole - p));
			write_all(STDERR_FILENO, "<6>", 3);
			write_all(STDERR_FILENO, p, (size_t)(nl - p) + 1);
		}
		break;
	case ALOG_SYSLOG:
		for (p = A.buf; p < A.buf + whole; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(A.buf + whole - p));
			syslog(LOG_INFO, "%.*s", (int)(nl - p), p);
		}
		break;
	default:
		break;	/* off: read only to keep the pipe from filling */
	}
	A.held = n - whole;
	memmove(A.buf, A.buf + whole, A.held);
	/* No line is longer: workers cut theirs to PIPE_BUF. */
	if (A.held > PIPE_BUF)
		A.held = 0;
}

static void
drain(void *arg)
{
	ssize_t n;

	(void)arg;
	for (int i = 0; i < 16; i++) {
		n = read(A.rd, A.buf + A.held, CHUNK);
		if (n <= 0)
			return;
		emit(A.held + (size_t)n);
	}
}

int
alog_init(struct aloop_loop *loop)
{
	int p[2], r;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == -1)
		return -errno;
	(void)fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
	A.rd = p[0];
	A.wr = p[1];
	A.loop = loop;
	A.journal = logsink_stderr_is_journal();
	if ((r = aloop_add_reader(loop, A.rd, drain, NULL)) < 0) {
		close(p[0]);
		close(p[1]);
		A.rd = A.wr = -1;
		return r;
	}
	return 0;
}

static int
open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOCTTY, 0640);
}

int
alog_configure(const struct config *cfg)
{
	const struct config_daemon *d = &cfg->daemon;
	char *path = NULL;
	int fd = -1;

	if (d->access_log == ALOG_FILE) {
		if ((path = strdup(d->access_log_path)) == NULL)
			return ALOOP_ENOMEM;
		if ((fd = open_file(path)) == -1) {
			aloop_log_errno(ALOOP_LOG_ERR, "access_log %s; keeping "
			    "the one before", path);
			free(path);
			return -1;
		}
	}
	/* Lines of the old target still in the pipe go to the new one. */
	if (A.fd >= 0)
		close(A.fd);
	free(A.path);
	A.fd = fd;
	A.path = path;
	A.target = d->access_log;
	return 0;
}

void
alog_reopen(void)
{
	int fd;

	if (A.target != ALOG_FILE)
		return;
	if ((fd = open_file(A.path)) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "access_log %s: cannot reopen; "
		    "writing on to the old file", A.path);
		return;
	}
	close(A.fd);
	A.fd = fd;
	aloop_log(ALOOP_LOG_INFO, "access_log %s reopened", A.path);
}

void
alog_shutdown(void)
{
	if (A.rd >= 0) {
		(void)aloop_remove_reader(A.loop, A.rd);
		drain(NULL);
		close(A.rd);
		close(A.wr);
	}
	if (A.fd >= 0)
		close(A.fd);
	free(A.path);
	A.path = NULL;
	A.rd = A.wr = A.fd = -1;
	A.held = 0;
}

int
alog_pipe(void)
{
	return A.wr;
}
