/*
 * aloop.conf and the files it @includes, checked and read into memory
 * (config_file.c) before libconfig sees a byte of them.  Private to the
 * daemon's configuration reader.
 */
#ifndef ALOOPD_CONFIG_FILE_H
#define ALOOPD_CONFIG_FILE_H

#include <stddef.h>

struct config;

/* A file larger than this is refused, whether main or included. */
#define CONFIG_FILE_MAX		(16u << 20)
/* ... and so is a main file that grows past this with its includes. */
#define CONFIG_TEXT_MAX		(64u << 20)
/* Nested @includes below the main file; libconfig 1.5's own limit. */
#define CONFIG_INCLUDE_DEPTH	10

/* Where a stretch of the joined text was written. */
struct config_source {
	unsigned	 first;		/* its first line in the joined text */
	const char	*file;		/* as libconfig would name it */
	unsigned	 line;		/* the line of @file it starts at */
};

/*
 * The main file with every @include replaced by the included text, and
 * the map back from its lines to the files they came from.
 */
struct config_text {
	char			*text;	/* NUL-terminated */
	size_t			 len, cap;
	unsigned		 lines;	/* the joined text's current line */
	struct config_source	*src;
	size_t			 nsrc, capsrc;
	char		       **names;	/* the files' names, owned */
	size_t			 nnames;
};

/*
 * Read @cfg's file and, recursively, the files it includes (found in the
 * config's directory unless absolute, as libconfig does) into @ct.  Each
 * must be a regular, readable file of at most CONFIG_FILE_MAX bytes with
 * no NUL byte; nesting is bounded and cycles refused.  Nothing is read
 * that is not a regular file, so a FIFO or a device neither blocks nor
 * feeds endless bytes.  0, or ALOOP_ECONFIG with the problem appended to
 * @cfg's errors, or ALOOP_ENOMEM.
 */
int	config_text_read(struct config *cfg, struct config_text *ct);

/* The file and line that line @line of the joined text came from. */
void	config_text_where(const struct config_text *ct, unsigned line,
	    const char **file, unsigned *fline);

void	config_text_free(struct config_text *ct);

#endif /* ALOOPD_CONFIG_FILE_H */
