/*
 * Socket activation: the listening sockets systemd (or any launcher that
 * speaks the protocol) hands in with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES.
 * A listener adopts the socket whose FileDescriptorName equals its name.
 */
#ifndef ALOOPD_ACTIVATION_H
#define ALOOPD_ACTIVATION_H

#include <stddef.h>

/*
 * Collect the descriptors passed with LISTEN_FDS (when LISTEN_PID is ours),
 * mark them close-on-exec and remove the variables from the environment so
 * that nothing the daemon starts inherits them.  It returns how many sockets
 * were passed (0 without activation) or a negative errno.  Main thread,
 * once, at start-up.
 */
int	activation_init(void);

/*
 * The passed socket whose FileDescriptorName is @name, or -1.  The
 * activation table keeps owning it (every worker dup()s it, and a reload
 * adopts it again); activation_free() closes it.
 */
int	activation_find(const char *name);

/* How many were passed, and the name of the i-th ("" when unnamed). */
size_t	activation_count(void);
const char *activation_name(size_t i);

/* The i-th passed descriptor, or -1 past the end. */
int	activation_fd(size_t i);

/* Whether the i-th was claimed by activation_find (to warn of unused ones). */
int	activation_claimed(size_t i);

/*
 * The plain parser behind activation_init() when libsystemd is absent:
 * the number of passed descriptors (0 when none are for us) and, in
 * *@names, a NULL-terminated array of @n malloc'ed names the caller frees.
 * It unsets the variables like activation_init().
 */
int	activation_parse_plain(char ***names);

/* Close every passed socket and forget them.  Idempotent. */
void	activation_free(void);

#endif /* ALOOPD_ACTIVATION_H */
