/*
 * One TLS context per distinct set of TLS settings and file contents,
 * kept from one configuration to the next.  Building a context is most
 * of what a TLS listener costs at start and reload (OpenSSL 3 decodes a
 * PEM key through its provider machinery, and makes an SSL_CTX with its
 * own tables), so it is done once per distinct set, not once per
 * listener and parse.  A file is known by a digest of what it holds, not
 * by its name or inode: a certificate rewritten in place is a new one.
 * OpenSSL reads the file again to build the context, so one rewritten in
 * between serves what OpenSSL read, under the digest of what was there
 * before; the next reload, which sees a new digest, builds it again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "strmap.h"
#include "tls_cache.h"

/* Bigger than any certificate chain, key or OCSP response. */
#define FILE_MAX	(16 * 1024 * 1024)

struct entry {
	struct tls_key	 key;
	struct aloop_tls_context *ctx;	/* the cache's reference */
	unsigned	 live:1;	/* used by the last valid config */
	unsigned	 seen:1;	/* used by this parse */
	unsigned	 built:1;	/* ... and built by it */
};

struct file {
	unsigned char	 digest[32];
	int		 err;		/* 0, or how reading it failed */
};

static struct {
	struct entry	*v;
	size_t		 n, cap;
	struct strmap	 index;		/* hex key -> v[] */
	/* Per parse: the files read, by name. */
	struct file	*files;
	size_t		 nfiles, capfiles;
	struct strmap	 names;		/* path -> files[] */
} C;

static void
hex(const struct tls_key *k, char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < sizeof(k->d); i++) {
		out[2 * i] = digits[k->d[i] >> 4];
		out[2 * i + 1] = digits[k->d[i] & 15];
	}
	out[64] = '\0';
}

/* Rebuild the index of v[]; on failure, an empty index only costs hits. */
static void
reindex(void)
{
	struct strmap_entry *e;
	char h[65];

	strmap_clear(&C.index);
	for (size_t i = 0; i < C.n; i++) {
		hex(&C.v[i].key, h);
		if (strmap_add(&C.index, h, i, &e) < 0) {
			strmap_clear(&C.index);
			return;
		}
		e->first = e->last = i;
	}
}

void
tls_cache_begin(void)
{
	for (size_t i = 0; i < C.n; i++)
		C.v[i].seen = C.v[i].built = 0;
	C.nfiles = 0;
	strmap_clear(&C.names);
}

void
tls_cache_end(int ok, struct tls_cache_stats *st)
{
	size_t kept = 0;

	st->contexts = st->built = 0;
	for (size_t i = 0; i < C.n; i++) {
		struct entry *e = &C.v[i];

		st->contexts += e->seen;
		st->built += e->built;
		/*
		 * A valid parse is not yet the running one (the plugin check
		 * and the workers can still refuse it): keep both its
		 * contexts and the running ones until tls_cache_commit.
		 */
		if (ok ? !e->live && !e->seen : !e->live) {
			aloop_tls_context_release(e->ctx);
			continue;
		}
		C.v[kept++] = *e;
	}
	C.n = kept;
	reindex();
	free(C.files);
	C.files = NULL;
	C.nfiles = C.capfiles = 0;
	strmap_clear(&C.names);
}

void
tls_cache_commit(void)
{
	size_t kept = 0;

	for (size_t i = 0; i < C.n; i++) {
		struct entry *e = &C.v[i];

		e->live = e->seen;
		if (!e->live) {
			aloop_tls_context_release(e->ctx);
			continue;
		}
		C.v[kept++] = *e;
	}
	C.n = kept;
	reindex();
}

/* Read @path as OpenSSL will (see config_listener.c's readable()). */
static int
digest_file(const char *path, unsigned char out[32])
{
	struct stat st;
	unsigned char *buf;
	size_t len = 0;
	ssize_t n;
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY)) < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > FILE_MAX) {
		close(fd);
		return -EINVAL;
	}
	/* One byte more than it says, to see a file that grew meanwhile. */
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (len < (size_t)st.st_size + 1) {
		n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	/* Being rewritten: no digest, so no context is shared from it. */
	if (r == 0 && len != (size_t)st.st_size)
		r = -EAGAIN;
	if (r == 0 && aloop_tls_sha256(buf, len, out) != 0)
		r = -ENOMEM;
	free(buf);
	return r;
}

int
tls_cache_file(const char *path, unsigned char out[32])
{
	struct strmap_entry *e;
	struct file *f;
	int added;

	if ((added = strmap_add(&C.names, path, C.nfiles, &e)) < 0)
		return -ENOMEM;
	if (added == 0) {
		f = &C.files[e->first];
		memcpy(out, f->digest, sizeof(f->digest));
		return f->err;
	}
	if (C.nfiles == C.capfiles) {
		size_t cap = C.capfiles > 0 ? C.capfiles * 2 : 16;

		if ((f = realloc(C.files, cap * sizeof(*f))) == NULL) {
			/* The name is in the map: forget them all instead. */
			strmap_clear(&C.names);
			C.nfiles = 0;
			return -ENOMEM;
		}
		C.files = f;
		C.capfiles = cap;
	}
	f = &C.files[C.nfiles++];
	memset(f, 0, sizeof(*f));
	f->err = digest_file(path, f->digest);
	memcpy(out, f->digest, sizeof(f->digest));
	return f->err;
}

struct aloop_tls_context *
tls_cache_get(const struct tls_key *key)
{
	struct strmap_entry *se;
	struct entry *e;
	char h[65];

	hex(key, h);
	if ((se = strmap_get(&C.index, h)) == NULL)
		return NULL;
	e = &C.v[se->first];
	e->seen = 1;
	return aloop_tls_context_ref(e->ctx);
}

void
tls_cache_put(const struct tls_key *key, struct aloop_tls_context *ctx)
{
	struct strmap_entry *se;
	struct entry *e;
	char h[65];

	hex(key, h);
	if (strmap_get(&C.index, h) != NULL)
		return;
	if (C.n == C.cap) {
		size_t cap = C.cap > 0 ? C.cap * 2 : 16;

		if ((e = realloc(C.v, cap * sizeof(*e))) == NULL)
			return;		/* not shared: built again next time */
		C.v = e;
		C.cap = cap;
	}
	if (strmap_add(&C.index, h, C.n, &se) < 0)
		return;
	e = &C.v[C.n++];
	memset(e, 0, sizeof(*e));
	e->key = *key;
	e->ctx = aloop_tls_context_ref(ctx);
	e->seen = e->built = 1;
}

void
tls_cache_clear(void)
{
	for (size_t i = 0; i < C.n; i++)
		aloop_tls_context_release(C.v[i].ctx);
	free(C.v);
	C.v = NULL;
	C.n = C.cap = 0;
	strmap_clear(&C.index);
	free(C.files);
	C.files = NULL;
	C.nfiles = C.capfiles = 0;
	strmap_clear(&C.names);
}
