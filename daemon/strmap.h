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
	char	*key;		/* owned; NULL: a free slot */
	size_t	 hash;		/* of key: most misses compare no string */
	size_t	 first;		/* the index it was first stored with */
	size_t	 last;		/* ... and last */
};

/* Zeroed, it is an empty map. */
struct strmap {
	struct strmap_entry *v;
	size_t		 n, cap;	/* cap: 0 or a power of two */
};

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
