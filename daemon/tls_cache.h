/*
 * The listeners' TLS contexts by what they are built from (tls_cache.c):
 * listeners whose TLS settings and files are the same share one context,
 * and a reload keeps the contexts whose settings and files did not
 * change, so that neither a start nor a reload decodes the same PEM twice.
 * Master and `aloopd -t` only, one configuration parse at a time; private
 * to the daemon.
 */
#ifndef ALOOPD_TLS_CACHE_H
#define ALOOPD_TLS_CACHE_H

#include <stddef.h>

struct aloop_tls_context;

/* What a context is known by: SHA-256 of its settings and files. */
struct tls_key {
	unsigned char	 d[32];
};

/* What one parse did: contexts its listeners use, and those it built. */
struct tls_cache_stats {
	size_t		 contexts;
	size_t		 built;
};

/* Before a configuration's listeners are parsed. */
void	tls_cache_begin(void);

/*
 * After them.  @ok: the configuration is valid; its contexts stay beside
 * the running configuration's until tls_cache_commit (what an earlier
 * valid parse left and neither uses goes).  Otherwise what this parse
 * built goes and the running configuration's stay.  *@st: this parse.
 */
void	tls_cache_end(int ok, struct tls_cache_stats *st);

/*
 * The configuration of the last parse runs now (its workers started):
 * the contexts only the one before it used are let go.
 */
void	tls_cache_commit(void);

/*
 * The SHA-256 of the contents of @path into @out, read once per parse
 * (the first listener that names a file reads it, the others share it).
 * Only a regular file is read, without blocking, as OpenSSL would read
 * it.  0, or a negative errno; -EINVAL for what is no regular file.
 */
int	tls_cache_file(const char *path, unsigned char out[32]);

/* The context known by @key, a new reference; NULL if there is none. */
struct aloop_tls_context *tls_cache_get(const struct tls_key *key);

/* Remember @ctx (a reference of the cache's own) as known by @key. */
void	tls_cache_put(const struct tls_key *key, struct aloop_tls_context *ctx);

/* Let every context go: at exit, so that nothing is left behind. */
void	tls_cache_clear(void);

#endif /* ALOOPD_TLS_CACHE_H */
