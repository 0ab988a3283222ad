/*
 * Which listener makes aloopd listen on an address
 * (aloop_daemon_listener_at() in <aloop/host.h>): what lets a plugin that
 * connects out refuse to connect to aloopd itself.  It reads the listeners
 * of the configuration the plugin's settings belong to, so that aloopd -t
 * and a reload's check judge the configuration they check, not the one
 * that runs.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <ifaddrs.h>
#include <netdb.h>
#include <stddef.h>
#include <string.h>

#include <libconfig.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "config-int.h"
#include "settings-int.h"

/* An IP address reduced to what a match compares. */
struct ipaddr {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 bytes[16];	/* 4 of them for AF_INET */
	unsigned	 port;
};

/* 0 and @a filled, or -1 for anything but an IPv4 or IPv6 address. */
static int
ipaddr_from(const struct sockaddr *sa, size_t len, struct ipaddr *a)
{
	struct sockaddr_in in;
	struct sockaddr_in6 in6;

	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET && len >= sizeof(in)) {
		memcpy(&in, sa, sizeof(in));
		a->family = AF_INET;
		memcpy(a->bytes, &in.sin_addr, 4);
		a->port = ntohs(in.sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(in6)) {
		memcpy(&in6, sa, sizeof(in6));
		a->port = ntohs(in6.sin6_port);
		/* ::ffff:127.0.0.1 reaches what 127.0.0.1 does. */
		if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
			a->family = AF_INET;
			memcpy(a->bytes, in6.sin6_addr.s6_addr + 12, 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->bytes, in6.sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -1;
}

static int
ipaddr_same(const struct ipaddr *a, const struct ipaddr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes,
	    a->family == AF_INET ? 4 : 16) == 0;
}

static int
ipaddr_unspecified(const struct ipaddr *a)
{
	static const unsigned char zero[16];

	return memcmp(a->bytes, zero, a->family == AF_INET ? 4 : 16) == 0;
}

/*
 * Whether connecting to @a reaches this host, and with it a socket bound
 * to the unspecified address: the unspecified address itself, loopback,
 * or an address of one of its interfaces.
 */
static int
ipaddr_local(const struct ipaddr *a)
{
	struct ifaddrs *ifa, *i;
	struct ipaddr b;
	int found = 0;

	if (ipaddr_unspecified(a))
		return 1;
	if (a->family == AF_INET && a->bytes[0] == 127)
		return 1;
	if (a->family == AF_INET6 &&
	    memcmp(a->bytes, &in6addr_loopback, 16) == 0)
		return 1;
	if (getifaddrs(&ifa) == -1)
		return 0;
	for (i = ifa; i != NULL && !found; i = i->ifa_next) {
		if (i->ifa_addr == NULL || (i->ifa_addr->sa_family != AF_INET &&
		    i->ifa_addr->sa_family != AF_INET6))
			continue;
		if (ipaddr_from(i->ifa_addr, i->ifa_addr->sa_family ==
		    AF_INET ? sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6), &b) == 0)
			found = ipaddr_same(&b, a);
	}
	freeifaddrs(ifa);
	return found;
}

/* Whether a connection to @to reaches a socket bound to @bound. */
static int
ipaddr_reaches(const struct ipaddr *to, const struct ipaddr *bound)
{
	if (to->port != bound->port || to->family != bound->family)
		return 0;
	if (ipaddr_unspecified(bound))
		return ipaddr_local(to);
	/* The kernel takes an unspecified destination for a local one. */
	if (ipaddr_unspecified(to))
		return 1;
	return ipaddr_same(to, bound);
}

/* Whether listen address @la, resolved as aloopd binds it, is @to. */
static int
inet_matches(const struct config_address *la, int socktype,
    const struct ipaddr *to)
{
	struct addrinfo hints, *res, *ai;
	struct ipaddr b;
	int found = 0;

	if (la->port_num != to->port)
		return 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = socktype;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(la->host, la->port, &hints, &res) != 0)
		return 0;	/* aloopd could not bind it either */
	for (ai = res; ai != NULL && !found; ai = ai->ai_next)
		if (ipaddr_from(ai->ai_addr, ai->ai_addrlen, &b) == 0)
			found = ipaddr_reaches(to, &b);
	freeaddrinfo(res);
	return found;
}

static int
unix_matches(const struct config_address *la, const struct sockaddr *sa,
    size_t len)
{
	const size_t off = offsetof(struct sockaddr_un, sun_path);
	const char *path = ((const struct sockaddr_un *)(const void *)sa)->
	    sun_path;
	size_t n;

	if (len <= off)
		return 0;
	n = strnlen(path, len - off);
	return n > 0 && strlen(la->path) == n &&
	    memcmp(la->path, path, n) == 0;
}

const char *
aloop_daemon_listener_at(const struct aloop_settings *s, int type,
    const struct sockaddr *sa, size_t len)
{
	const config_setting_t *node = NODE_SETTING(s);
	const struct config *cfg;
	const struct config_listener *l;
	const struct config_address *la;
	struct ipaddr to;
	int want, socktype, ip;

	if (node == NULL || sa == NULL || len < sizeof(sa->sa_family))
		return NULL;
	if ((cfg = config_setting_get_hook(node->config->root)) == NULL)
		return NULL;
	if (type == ALOOP_PLUGIN_STREAM) {
		want = CONFIG_TCP;
		socktype = SOCK_STREAM;
	} else if (type == ALOOP_PLUGIN_DATAGRAM) {
		want = CONFIG_UDP;
		socktype = SOCK_DGRAM;
	} else
		return NULL;
	ip = ipaddr_from(sa, len, &to) == 0;
	if (!ip && sa->sa_family != AF_UNIX)
		return NULL;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		l = &cfg->listeners[i];
		if (l->type != want)
			continue;
		for (size_t j = 0; j < l->nlisten; j++) {
			la = &l->listen[j];
			if (ip ? la->kind == CONFIG_ADDR_INET &&
			    inet_matches(la, socktype, &to) :
			    la->kind == CONFIG_ADDR_UNIX &&
			    unix_matches(la, sa, len))
				return l->name;
		}
	}
	return NULL;
}
