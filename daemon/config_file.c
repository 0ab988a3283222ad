/*
 * The bytes of aloop.conf and of every file it @includes, checked and read
 * before libconfig parses them.  libconfig 1.5 opens includes itself, with
 * fopen and no hook: a directory makes its scanner exit(2), a FIFO blocks
 * it for good.  So the files are found, checked and read here, the
 * @include lines replaced by the text they name, and libconfig is handed
 * one string in memory; a map of line numbers takes its errors back to
 * the file and line they were written at.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "config-int.h"
#include "config-parse-int.h"
#include "config_file.h"

/* One file being read, with the ones that include it below it. */
struct frame {
	const struct frame	*up;
	dev_t			 dev;
	ino_t			 ino;
	unsigned		 depth;		/* 0: the main file */
};

/*
 * @p (of *@cap elements of @size bytes) with room for @need, doubling;
 * NULL if memory ran out, @p then untouched.
 */
static void *
grow(void *p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap > 0 ? *cap : 16;
	void *np;

	if (need <= *cap)
		return p;
	while (n < need)
		n *= 2;
	if ((np = reallocarray(p, n, size)) == NULL)
		return NULL;
	*cap = n;
	return np;
}

static int
emit(struct config_text *ct, const char *p, size_t n)
{
	char *text;

	if ((text = grow(ct->text, &ct->cap, ct->len + n + 1, 1)) == NULL)
		return ALOOP_ENOMEM;
	ct->text = text;
	memcpy(ct->text + ct->len, p, n);
	ct->len += n;
	ct->text[ct->len] = '\0';
	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) !=
	    NULL; p++)
		ct->lines++;
	return 0;
}

/* From here on, the joined text is @file's, from its line @line. */
static int
mark(struct config_text *ct, const char *file, unsigned line)
{
	struct config_source *s;

	if ((s = grow(ct->src, &ct->capsrc, ct->nsrc + 1, sizeof(*s))) ==
	    NULL)
		return ALOOP_ENOMEM;
	ct->src = s;
	s = &ct->src[ct->nsrc];
	/* Nothing came of the last stretch (an include at a file's start). */
	if (ct->nsrc > 0 && s[-1].first == ct->lines)
		s--;
	else
		ct->nsrc++;
	s->first = ct->lines;
	s->file = file;
	s->line = line;
	return 0;
}

void
config_text_where(const struct config_text *ct, unsigned line,
    const char **file, unsigned *fline)
{
	size_t lo = 0, hi = ct->nsrc;

	*file = NULL;
	*fline = line;
	/* The last stretch that starts at or before @line. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ct->src[mid].first <= line)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return;
	*file = ct->src[lo - 1].file;
	*fline = ct->src[lo - 1].line + (line - ct->src[lo - 1].first);
}

void
config_text_free(struct config_text *ct)
{
	free(ct->text);
	free(ct->src);
	for (size_t i = 0; i < ct->nnames; i++)
		free(ct->names[i]);
	free(ct->names);
	memset(ct, 0, sizeof(*ct));
}

static const char *
file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "not a regular file (a directory)";
	if (S_ISFIFO(m))
		return "not a regular file (a FIFO)";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "not a regular file (a device)";
	if (S_ISSOCK(m))
		return "not a regular file (a socket)";
	return "not a regular file";
}

/*
 * Open @path for reading, if it is a regular file no larger than the
 * limit; otherwise say why not in @why.  stat() first, so that a device
 * is not opened (opening one can have effects of its own); fstat() of
 * what was opened, since the name may have been replaced in between;
 * O_NONBLOCK, so that even then a FIFO cannot block the open.  What
 * remains: a device swapped in between the two calls is opened, though
 * never read.
 */
static int
open_checked(const char *path, struct stat *st, const char **why)
{
	int fd;

	memset(st, 0, sizeof(*st));
	if (stat(path, st) != 0) {
		*why = strerror(errno);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		*why = file_kind(st->st_mode);
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY)) < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, st) != 0) {
		*why = strerror(errno);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		*why = file_kind(st->st_mode);
		close(fd);
		return -1;
	}
	if (st->st_size > (off_t)CONFIG_FILE_MAX) {
		*why = "larger than 16 MiB";
		close(fd);
		return -1;
	}
	return fd;
}

/* All of @fd, at most CONFIG_FILE_MAX bytes, into a malloc'd buffer. */
static int
slurp(int fd, size_t hint, char **bufp, size_t *lenp, const char **why)
{
	size_t len = 0, cap = hint + 1;
	char *buf, *nbuf;
	ssize_t n;

	if ((buf = malloc(cap)) == NULL)
		return ALOOP_ENOMEM;
	for (;;) {
		if (len == cap) {
			/* It grew since fstat: read on, but bounded. */
			if (cap > CONFIG_FILE_MAX) {
				*why = "larger than 16 MiB";
				free(buf);
				return ALOOP_ECONFIG;
			}
			if ((nbuf = grow(buf, &cap, cap + 4096, 1)) == NULL) {
				free(buf);
				return ALOOP_ENOMEM;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why = strerror(errno);
			free(buf);
			return ALOOP_ECONFIG;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CONFIG_FILE_MAX) {
		*why = "larger than 16 MiB";
		free(buf);
		return ALOOP_ECONFIG;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

/*
 * An @include directive as libconfig 1.5's scanner knows one: at the start
 * of a line but for blanks, `@include`, blanks, then a string in which
 * only \\ and \" are escapes.  @p points at the '@'; on success the name is
 * in @name (malloc'd) and *@end just past the closing quote.  0, -1 if
 * this is no directive (libconfig will then call it a syntax error), or
 * ALOOP_ECONFIG/ALOOP_ENOMEM with *@why set for a broken one.
 */
static int
directive(const char *p, const char *e, const char **end, char **name,
    const char **why)
{
	const char *q = p + 8;
	char *n;
	size_t len = 0;

	if ((size_t)(e - p) < 8 || memcmp(p, "@include", 8) != 0 ||
	    q == e || (*q != ' ' && *q != '\t'))
		return -1;
	while (q < e && (*q == ' ' || *q == '\t'))
		q++;
	if (q == e || *q != '"')
		return -1;
	q++;
	if ((n = malloc((size_t)(e - q) + 1)) == NULL)
		return ALOOP_ENOMEM;
	for (; q < e && *q != '"'; q++) {
		if (*q == '\\') {
			if (q + 1 == e || (q[1] != '\\' && q[1] != '"')) {
				*why = "only \\\\ and \\\" are escapes in a "
				    "file name";
				free(n);
				return ALOOP_ECONFIG;
			}
			q++;
		}
		n[len++] = *q;
	}
	n[len] = '\0';
	if (q == e) {
		*why = "the file name has no closing quote";
		free(n);
		return ALOOP_ECONFIG;
	}
	if (len == 0) {
		*why = "no file name";
		free(n);
		return ALOOP_ECONFIG;
	}
	*end = q + 1;
	*name = n;
	return 0;
}

static int	read_into(struct config *, struct config_text *, const char *,
		    const char *, const struct frame *, const char *,
		    unsigned, const char *);

/* Report a problem with the file named @name on line @line of @file. */
static int
include_error(struct config *cfg, const char *file, unsigned line,
    const char *name, const char *why)
{
	char shown[PATH_MAX];

	if (name == NULL)
		config_add_errorf(cfg, "%s:%u: @include: %s",
		    config_shown_file(cfg, file, shown, sizeof(shown)), line,
		    why);
	else
		config_add_errorf(cfg, "%s:%u: @include \"%s\": %s",
		    config_shown_file(cfg, file, shown, sizeof(shown)), line,
		    name, why);
	return ALOOP_ECONFIG;
}

/* The @include of @name, on line @line of @file (whose frame is @f). */
static int
include(struct config *cfg, struct config_text *ct, const char *file,
    unsigned line, const struct frame *f, char *name)
{
	char *path, *kept;
	char **names;
	int rc;

	if (f->depth == CONFIG_INCLUDE_DEPTH)
		return include_error(cfg, file, line, name, "nested too deeply "
		    "(more than 10 levels of @include)");
	/* libconfig 1.7 takes an absolute name as it is; so do we. */
	if (name[0] == '/')
		path = strdup(name);
	else if (asprintf(&path, "%s/%s", priv_of(cfg)->dir, name) < 0)
		path = NULL;
	if (path == NULL)
		return ALOOP_ENOMEM;
	/* The joined text's map points at the name: it lives as long. */
	if ((names = reallocarray(ct->names, ct->nnames + 1,
	    sizeof(*names))) == NULL) {
		free(path);
		return ALOOP_ENOMEM;
	}
	ct->names = names;
	if ((kept = strdup(name)) == NULL) {
		free(path);
		return ALOOP_ENOMEM;
	}
	ct->names[ct->nnames++] = kept;
	rc = read_into(cfg, ct, path, kept, f, file, line, name);
	free(path);
	return rc;
}

/*
 * Copy @buf (the file @file) into the joined text, replacing each
 * @include by what it names.  Comments and strings are followed as
 * libconfig follows them, since an @include inside one is none.
 */
static int
join(struct config *cfg, struct config_text *ct, const char *file,
    const struct frame *f, const char *buf, size_t len)
{
	const char *p = buf, *e = buf + len, *from = buf, *end, *why = NULL;
	unsigned line = 1, at;
	int bol = 1, rc;
	char *name;

	if ((rc = mark(ct, file, 1)) != 0)
		return rc;
	while (p < e) {
		if (*p == '\n') {
			line++;
			bol = 1;
			p++;
			continue;
		}
		if (bol && (*p == ' ' || *p == '\t')) {
			p++;
			continue;
		}
		if (bol && *p == '@') {
			at = line;
			rc = directive(p, e, &end, &name, &why);
			if (rc == ALOOP_ECONFIG)
				return include_error(cfg, file, at, NULL,
				    why);
			if (rc == ALOOP_ENOMEM)
				return rc;
			if (rc == 0) {
				/* A name may span lines, as in libconfig. */
				for (const char *q = p; q < end; q++)
					line += *q == '\n';
				if ((rc = emit(ct, from, (size_t)(p - from))) !=
				    0 || (rc = include(cfg, ct, file, at, f,
				    name)) != 0) {
					free(name);
					return rc;
				}
				free(name);
				/*
				 * A newline ends the included text (a last
				 * comment, a last token) as its end of file
				 * did; the rest of the @include's line
				 * follows.
				 */
				if ((rc = emit(ct, "\n", 1)) != 0 ||
				    (rc = mark(ct, file, line)) != 0)
					return rc;
				from = p = end;
				bol = 0;
				continue;
			}
		}
		bol = 0;
		if (*p == '#' || (*p == '/' && p + 1 < e && p[1] == '/')) {
			while (p < e && *p != '\n')
				p++;
		} else if (*p == '/' && p + 1 < e && p[1] == '*') {
			for (p += 2; p < e && !(*p == '*' && p + 1 < e &&
			    p[1] == '/'); p++)
				line += *p == '\n';
			p = p < e ? p + 2 : e;
		} else if (*p == '"') {
			for (p++; p < e && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < e)
					p++;
				line += *p == '\n';
			}
			p = p < e ? p + 1 : e;
		} else
			p++;
	}
	return emit(ct, from, (size_t)(e - from));
}

/*
 * Check, read and join the file at @path, known as @file; @up is the file
 * that includes it (NULL for the main file) at line @line of @by, naming it
 * @name.
 */
static int
read_into(struct config *cfg, struct config_text *ct, const char *path,
    const char *file, const struct frame *up, const char *by, unsigned line,
    const char *name)
{
	struct frame f = { .up = up, .depth = up != NULL ? up->depth + 1 : 0 };
	const char *why = NULL, *nul;
	char shown[PATH_MAX];
	struct stat st;
	size_t len;
	char *buf;
	int fd, rc;

	if ((fd = open_checked(path, &st, &why)) < 0) {
		if (up != NULL)
			return include_error(cfg, by, line, name, why);
		/* The main file's old words, which operators know. */
		config_add_errorf(cfg, "%s: %s", cfg->path,
		    S_ISDIR(st.st_mode) ? "is a directory" : why);
		return ALOOP_ECONFIG;
	}
	for (const struct frame *o = up; o != NULL; o = o->up)
		if (o->dev == st.st_dev && o->ino == st.st_ino) {
			close(fd);
			return include_error(cfg, by, line, name, "includes "
			    "itself (an @include cycle)");
		}
	f.dev = st.st_dev;
	f.ino = st.st_ino;
	rc = slurp(fd, (size_t)st.st_size, &buf, &len, &why);
	close(fd);
	if (rc == ALOOP_ECONFIG) {
		if (up != NULL)
			return include_error(cfg, by, line, name, why);
		config_add_errorf(cfg, "%s: %s", cfg->path, why);
		return rc;
	}
	if (rc != 0)
		return rc;
	/* libconfig would stop reading at a NUL and take the rest unread. */
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		unsigned at = 1;

		for (const char *q = buf; q < nul; q++)
			at += *q == '\n';
		config_add_errorf(cfg, "%s:%u: a NUL byte",
		    config_shown_file(cfg, file, shown, sizeof(shown)), at);
		free(buf);
		return ALOOP_ECONFIG;
	}
	if (ct->len + len > CONFIG_TEXT_MAX) {
		config_add_errorf(cfg, "%s: larger than 64 MiB with its "
		    "includes", cfg->path);
		free(buf);
		return ALOOP_ECONFIG;
	}
	rc = join(cfg, ct, file, &f, buf, len);
	free(buf);
	return rc;
}

int
config_text_read(struct config *cfg, struct config_text *ct)
{
	int rc;

	memset(ct, 0, sizeof(*ct));
	ct->lines = 1;
	if ((rc = read_into(cfg, ct, cfg->path, cfg->path, NULL, NULL, 0,
	    NULL)) != 0)
		return rc;
	/* An empty file is still a text. */
	return emit(ct, "", 0);
}
