/*
 * Open addressing with linear probing, kept at most half full, so that a
 * lookup is a probe or two; keys are never deleted one by one, only the
 * whole map, which keeps probing simple.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>

#include "strmap.h"

/* Where the keys live; freed all at once with the map. */
struct strmap_block {
	struct strmap_block *next;
	size_t		 used, size;
	char		 bytes[];
};

#define BLOCK_SIZE	(64 * 1024)

/* A copy of @key in @m's arena, or NULL. */
static const char *
keep(struct strmap *m, const char *key)
{
	size_t len = strlen(key) + 1;
	struct strmap_block *b = m->blocks;
	char *p;

	if (b == NULL || b->size - b->used < len) {
		size_t size = len > BLOCK_SIZE ? len : BLOCK_SIZE;

		if ((b = malloc(sizeof(*b) + size)) == NULL)
			return NULL;
		b->next = m->blocks;
		b->used = 0;
		b->size = size;
		m->blocks = b;
	}
	p = memcpy(b->bytes + b->used, key, len);
	b->used += len;
	return p;
}

/* FNV-1a: the keys are short and come from the operator's own file. */
static size_t
hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)(h ^ (h >> 32));
}

static struct strmap_entry *
slot(const struct strmap_entry *v, size_t cap, const char *key, size_t h)
{
	size_t i = h & (cap - 1);

	while (v[i].key != NULL && (v[i].hash != h ||
	    strcmp(v[i].key, key) != 0))
		i = (i + 1) & (cap - 1);
	return (struct strmap_entry *)&v[i];
}

struct strmap_entry *
strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry *e;

	if (m->cap == 0)
		return NULL;
	e = slot(m->v, m->cap, key, hash(key));
	return e->key != NULL ? e : NULL;
}

/* Rehash into @cap slots, a power of two above twice the keys. */
static int
rehash(struct strmap *m, size_t cap)
{
	struct strmap_entry *v;

	if ((v = calloc(cap, sizeof(*v))) == NULL)
		return ALOOP_ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].key != NULL)
			*slot(v, cap, m->v[i].key, m->v[i].hash) = m->v[i];
	free(m->v);
	m->v = v;
	m->cap = cap;
	return 0;
}

int
strmap_reserve(struct strmap *m, size_t n)
{
	size_t cap = m->cap > 0 ? m->cap : 64;

	while (cap / 2 < n) {
		if (cap > SIZE_MAX / 2 / sizeof(struct strmap_entry))
			return ALOOP_ENOMEM;
		cap *= 2;
	}
	return cap > m->cap ? rehash(m, cap) : 0;
}

int
strmap_add(struct strmap *m, const char *key, size_t index,
    struct strmap_entry **ep)
{
	size_t h = hash(key);
	struct strmap_entry *e;

	if (m->cap > 0 && (e = slot(m->v, m->cap, key, h))->key != NULL) {
		*ep = e;
		return 0;
	}
	if ((m->n + 1) * 2 > m->cap && strmap_reserve(m, m->n + 1) != 0)
		return ALOOP_ENOMEM;
	e = slot(m->v, m->cap, key, h);
	if ((e->key = keep(m, key)) == NULL)
		return ALOOP_ENOMEM;
	e->hash = h;
	e->first = e->last = index;
	m->n++;
	*ep = e;
	return 1;
}

void
strmap_clear(struct strmap *m)
{
	while (m->blocks != NULL) {
		struct strmap_block *b = m->blocks;

		m->blocks = b->next;
		free(b);
	}
	free(m->v);
	memset(m, 0, sizeof(*m));
}
