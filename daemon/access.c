/*
 * Access rules: reading `allow`/`deny` entries, and matching a peer
 * against them (see access.h).
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "config-int.h"
#include "config-parse-int.h"
#include "settings-int.h"

/* ------------------------------------------------------------- parsing */

static int
parse_id(const char *v, uint32_t *id)
{
	char *end;
	unsigned long n;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n >= UINT32_MAX)
		return -1;
	*id = (uint32_t)n;
	return 0;
}

/*
 * Whether @v names a credential rather than an address.  By keyword, not
 * by shape: "abcd::1" and "fd00::/8" are IPv6, letters and colon alike.
 */
static int
is_cred(const char *v)
{
	static const char *const kw[] = { "uid:", "gid:", "user:", "group:",
	    NULL };

	for (const char *const *k = kw; *k != NULL; k++)
		if (strncmp(v, *k, strlen(*k)) == 0)
			return 1;
	return 0;
}

/*
 * "uid:N", "user:NAME", "gid:N" or "group:NAME" (is_cred) into @r; a name is looked
 * up now, as the check that runs at start and reload.  0, or -1 after
 * reporting on @e.
 */
static int
parse_cred(config_setting_t *e, const char *v, struct access_rule *r)
{
	const char *arg = strchr(v, ':') + 1;
	size_t kw = (size_t)(arg - v - 1);

	if (kw == 3 && strncmp(v, "uid", 3) == 0) {
		r->kind = ACCESS_UID;
		if (parse_id(arg, &r->id) == 0)
			return 0;
	} else if (kw == 3 && strncmp(v, "gid", 3) == 0) {
		r->kind = ACCESS_GID;
		if (parse_id(arg, &r->id) == 0)
			return 0;
	} else if (kw == 4 && strncmp(v, "user", 4) == 0) {
		struct passwd *pw = getpwnam(arg);

		r->kind = ACCESS_UID;
		if (pw != NULL) {
			r->id = (uint32_t)pw->pw_uid;
			return 0;
		}
		config_report(e, NULL, "no user \"%s\"", arg);
		return -1;
	} else if (kw == 5 && strncmp(v, "group", 5) == 0) {
		struct group *gr = getgrnam(arg);

		r->kind = ACCESS_GID;
		if (gr != NULL) {
			r->id = (uint32_t)gr->gr_gid;
			return 0;
		}
		config_report(e, NULL, "no group \"%s\"", arg);
		return -1;
	}
	config_report(e, NULL, "expected a number after \"%.*s:\"", (int)kw,
	    v);
	return -1;
}

/* "ADDRESS" or "ADDRESS/BITS", IPv4 or IPv6, into @r. */
static int
parse_inet(config_setting_t *e, const char *v, struct access_rule *r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(v, '/');
	size_t n = slash != NULL ? (size_t)(slash - v) : strlen(v);
	struct in_addr a4;
	unsigned max;
	uint32_t bits;

	r->kind = ACCESS_INET;
	if (n >= sizeof(host))
		goto bad;
	memcpy(host, v, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a4) == 1) {
		memset(r->addr, 0, 10);
		r->addr[10] = r->addr[11] = 0xff;
		memcpy(r->addr + 12, &a4, 4);
		max = 32;
	} else if (inet_pton(AF_INET6, host, r->addr) == 1)
		max = 128;
	else
		goto bad;
	bits = max;
	if (slash != NULL && (parse_id(slash + 1, &bits) < 0 || bits > max)) {
		config_report(e, NULL, "prefix length must be 0 to %u", max);
		return -1;
	}
	/* IPv4 rules match their addresses inside ::ffff:0:0/96. */
	r->prefix = bits + (max == 32 ? 96 : 0);
	for (unsigned i = r->prefix; i < 128; i++)
		if (r->addr[i / 8] & (0x80 >> (i % 8))) {
			config_report(e, NULL, "host bits set past the /%u "
			    "prefix", (unsigned)bits);
			return -1;
		}
	return 0;
bad:
	config_report(e, NULL, "expected \"all\", an IPv4 or IPv6 address or "
	    "prefix (\"10.0.0.0/8\"), or for unix sockets \"uid:N\", "
	    "\"gid:N\", \"user:NAME\", \"group:NAME\"");
	return -1;
}

void
access_parse(struct config *cfg, config_setting_t *s, int allow,
    struct access_list *acl)
{
	unsigned n;
	struct access_rule *rules;

	(void)cfg;
	if (!config_want_list(s, "addresses and prefixes"))
		return;
	n = (unsigned)config_setting_length(s);
	if (n == 0) {
		config_report(s, NULL, "empty: leave it out instead");
		return;
	}
	rules = reallocarray(acl->rules, acl->n + n, sizeof(*rules));
	if (rules == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	acl->rules = rules;
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct access_rule *r = &acl->rules[acl->n];
		const char *v = config_want_string(e, 1);
		int rc;

		if (v == NULL)
			continue;
		memset(r, 0, sizeof(*r));
		r->allow = allow;
		if (strcmp(v, "all") == 0) {
			r->kind = ACCESS_ALL;
			rc = 0;
		} else if (is_cred(v)) {
			rc = parse_cred(e, v, r);
			acl->unix_rules = 1;
		} else
			rc = parse_inet(e, v, r);
		if (rc == 0)
			acl->n++;
	}
	/* What no rule matches gets the opposite of the last list. */
	acl->otherwise = !allow;
}

void
access_free(struct access_list *acl)
{
	free(acl->rules);
	acl->rules = NULL;
	acl->n = 0;
}

/* ------------------------------------------------------------ checking */

static int
inet_match(const struct access_rule *r, const uint8_t a[16])
{
	unsigned full = r->prefix / 8, rest = r->prefix % 8;

	if (memcmp(r->addr, a, full) != 0)
		return 0;
	return rest == 0 ||
	    ((r->addr[full] ^ a[full]) & (uint8_t)(0xff00 >> rest)) == 0;
}

int
access_allows(const struct access_list *acl, int fd,
    const struct sockaddr *sa, socklen_t len)
{
	uint8_t a[16];
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int have_addr = 0, have_cred = 0;

	if (acl->n == 0)
		return 1;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const void *)sa;

		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &s4->sin_addr, 4);
		have_addr = 1;
	} else if (sa->sa_family == AF_INET6 &&
	    len >= sizeof(struct sockaddr_in6)) {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, 16);
		have_addr = 1;
	} else if (acl->unix_rules && fd >= 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		have_cred = 1;
	for (size_t i = 0; i < acl->n; i++) {
		const struct access_rule *r = &acl->rules[i];
		int hit;

		switch (r->kind) {
		case ACCESS_ALL:
			hit = 1;
			break;
		case ACCESS_INET:
			hit = have_addr && inet_match(r, a);
			break;
		case ACCESS_UID:
			hit = have_cred && (uint32_t)cred.uid == r->id;
			break;
		default:
			hit = have_cred && (uint32_t)cred.gid == r->id;
			break;
		}
		if (hit)
			return r->allow;
	}
	return acl->otherwise;
}
