/*
 * The secret every TLS listener's session ticket keys are derived from:
 * one per master, made when the first configuration that issues tickets
 * is read (or handed over by the old master of a binary upgrade),
 * inherited by every worker and used again by every reload, so that
 * tickets resume across workers, reloads and upgrades.  It lives in
 * memory only.  Private to the daemon.
 */
#ifndef ALOOPD_TICKET_SECRET_H
#define ALOOPD_TICKET_SECRET_H

#include <stddef.h>

/*
 * In the master, before the first configuration is read: take the secret
 * the previous master passed (ALOOPD_TICKET_SECRET_FD, a binary upgrade),
 * if any; otherwise ticket_secret_get() makes one when first asked.  0.
 */
int	ticket_secret_init(void);

/* Whether ticket_secret_init() ran: not so in `aloopd -t`. */
int	ticket_secret_wanted(void);

/*
 * The secret (*@len bytes), made now if need be, in the master before
 * the workers that use it fork; NULL before ticket_secret_init(), or
 * when no random bytes came.
 */
const unsigned char *ticket_secret_get(size_t *len);

/*
 * In the new master's process of a binary upgrade, just before exec: put
 * the secret in a pipe that crosses the exec and name it in
 * ALOOPD_TICKET_SECRET_FD.  0 (also when none was ever made: no ticket
 * was issued), or -1 (the new master makes its own).
 */
int	ticket_secret_hand_over(void);

#endif /* ALOOPD_TICKET_SECRET_H */
