/*
 * A small hash table from strings to the first and the last of the
 * indices stored under each (strmap.c): what the configuration's
 * duplicate checks need to stay linear in the number of listeners.
 * Private to the daemon.
 */
#ifndef ALOOPD_STRMAP_H
#define ALOOPD_STRMAP_H

#include <stddef.h>

struct strmap_entry {
	const char *key;	/* in the map's arena; NULL: a free slot */
	size_t	 hash;		/* of key: most misses compare no string */
	size_t	 first;		/* the index it was first stored with */
	size_t	 last;		/* ... and last */
};

struct strmap_block;

/*
 * Zeroed, it is an empty map.  The keys are copied into blocks of the
 * map's own, a few thousand to a block: a map of 100,000 keys costs a
 * few dozen allocations rather than 100,000, and frees as fast.
 */
struct strmap {
	struct strmap_entry *v;
	size_t		 n, cap;	/* cap: 0 or a power of two */
	struct strmap_block *blocks;	/* newest first */
};

/*
 * Make room for @n keys in all, so that adding them rehashes nothing.
 * ALOOP_ENOMEM (the map is then unchanged); a map too small only costs
 * time, so a caller may ignore it.
 */
int	strmap_reserve(struct strmap *m, size_t n);

/* The entry of @key, or NULL. */
struct strmap_entry *strmap_get(const struct strmap *m, const char *key);

/*
 * The entry of @key in *@e, added with first = last = @index if it was not
 * there (1), or as it was (0), for the caller to read and update; one
 * probe where a get and a put would be two.  ALOOP_ENOMEM (the map is then
 * unchanged).
 */
int	strmap_add(struct strmap *m, const char *key, size_t index,
	    struct strmap_entry **e);

/* Free the keys and the table; @m is empty again. */
void	strmap_clear(struct strmap *m);

#endif /* ALOOPD_STRMAP_H */
