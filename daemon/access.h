/*
 * A listener's access control: its `allow` and `deny` lists as one
 * ordered list of rules, checked on accept (and for each datagram)
 * before any plugin or TLS work.  The rules are read with the
 * configuration; checking needs nothing but the peer.
 *
 * The lists are checked in the order the file writes them, each in its
 * own order, and the first rule that matches decides.  A peer no rule
 * matches is refused if the last list written is `allow`, and accepted
 * if it is `deny` (or if there is none): `allow` alone admits only what
 * it names, `deny` alone refuses only what it names.
 */
#ifndef ALOOPD_ACCESS_H
#define ALOOPD_ACCESS_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

struct config;

enum access_kind {
	ACCESS_ALL,		/* "all": every peer */
	ACCESS_INET,		/* an IPv4 or IPv6 prefix */
	ACCESS_UID,		/* a UNIX peer's user (SO_PEERCRED) */
	ACCESS_GID,		/* a UNIX peer's primary group */
};

struct access_rule {
	int		 allow;
	int		 kind;		/* enum access_kind */
	uint8_t		 addr[16];	/* ACCESS_INET: IPv4 as ::ffff:a.b.c.d */
	unsigned	 prefix;	/* ACCESS_INET: bits of addr, 0..128 */
	uint32_t	 id;		/* ACCESS_UID, ACCESS_GID */
};

/* The config's; empty (n == 0) means everyone. */
struct access_list {
	struct access_rule *rules;
	size_t		 n;
	int		 otherwise;	/* no rule matched: 1 accept, 0 refuse */
	int		 unix_rules;	/* some rule needs SO_PEERCRED */
};

/*
 * Append the rules of the list setting @s (`allow` if @allow, else
 * `deny`) to @acl, each bad entry reported on its element.
 */
void	access_parse(struct config *cfg, config_setting_t *s, int allow,
	    struct access_list *acl);
void	access_free(struct access_list *acl);

/*
 * Whether @acl lets in the peer @sa of socket @fd (-1 for a datagram,
 * whose sender has no credentials): 1 or 0.  A UNIX peer whose
 * credentials cannot be read matches only "all".
 */
int	access_allows(const struct access_list *acl, int fd,
	    const struct sockaddr *sa, socklen_t len);

#endif /* ALOOPD_ACCESS_H */
