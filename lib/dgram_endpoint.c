/*
 * create_datagram_endpoint: addresses resolved (numeric ones at once, host
 * names through the loop's resolver), asyncio's pairing of local and
 * remote addresses by family, the socket made, bound and connected, then
 * handed to the datagram transport of lib/dgram.c.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/log.h>
#include <aloop/net.h>
#include <aloop/server.h>

#include "dgram-int.h"
#include "loop-int.h"

void
aloop_datagram_options_init(struct aloop_datagram_options *o)
{
	memset(o, 0, sizeof(*o));
	o->family = AF_UNSPEC;
	o->sock = -1;
}

static int
set_flags(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    (fl = fcntl(fd, F_GETFD)) == -1 ||
	    fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1)
		return -errno;
	return 0;
}

static void
make_hints(const struct aloop_datagram_options *o, int passive, int numeric,
    struct addrinfo *hints)
{
	memset(hints, 0, sizeof(*hints));
	hints->ai_family = o->family;
	hints->ai_socktype = SOCK_DGRAM;
	hints->ai_protocol = o->proto;
	hints->ai_flags = (o->flags & ~AI_CANONNAME) |
	    (passive ? AI_PASSIVE : 0) |
	    (numeric ? AI_NUMERICHOST | AI_NUMERICSERV : 0);
}

/*
 * Resolve one side at once if it is numeric (getaddrinfo then never
 * blocks).  1 when the host is a name that needs the loop's resolver.
 */
static int
resolve(const struct aloop_datagram_options *o, const char *host,
    const char *port, int passive, struct addrinfo **res, char *msg,
    size_t msglen)
{
	struct addrinfo hints;
	int rc;

	*res = NULL;
	if (host == NULL && port == NULL)
		return 0;
	make_hints(o, passive, 1, &hints);
	rc = getaddrinfo(host, port, &hints, res);
	if (rc == 0)
		return 0;
	/* A name (not a malformed number): resolve it off the loop. */
	if (rc == EAI_NONAME && host != NULL)
		return 1;
	if (rc == EAI_SYSTEM)
		rc = errno != 0 ? -errno : ALOOP_EGAI;
	else {
		snprintf(msg, msglen, "%s:%s: %s", host ? host : "",
		    port ? port : "", gai_strerror(rc));
		rc = rc == EAI_FAMILY || rc == EAI_SERVICE ||
		    rc == EAI_NONAME || rc == EAI_ADDRFAMILY ?
		    ALOOP_EINVAL : ALOOP_EGAI;
	}
	return rc;
}

static int
open_socket(const struct aloop_datagram_options *o, int family,
    const struct addrinfo *local, const struct addrinfo *remote, int *fdp,
    const char **what)
{
	int fd, on = 1, rc;

	*what = "socket";
	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    local ? local->ai_protocol : remote ? remote->ai_protocol :
	    o->proto);
	if (fd == -1)
		return -errno;
	*what = "setsockopt";
	if (o->reuse_port &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)
		goto fail;
	if (o->allow_broadcast &&
	    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof(on)) == -1)
		goto fail;
	*what = "bind";
	if (local != NULL && bind(fd, local->ai_addr, local->ai_addrlen) == -1)
		goto fail;
	*what = "connect";
	if (remote != NULL &&
	    connect(fd, remote->ai_addr, remote->ai_addrlen) == -1)
		goto fail;
	*fdp = fd;
	return 0;
fail:
	rc = -errno;
	(void)close(fd);
	return rc;
}

/*
 * asyncio's pairing: every local address with every remote one of the
 * same family, tried in order until one binds and connects.  Returns 0 and
 * the socket, ALOOP_EINVAL when no pair shares a family, or the last
 * system error with *@what naming the step.
 */
static int
make_socket(const struct aloop_datagram_options *o, struct addrinfo *local,
    struct addrinfo *remote, int *fdp, const char **what)
{
	struct addrinfo *l, *r;
	int rc = ALOOP_EINVAL;

	*what = "address family";
	if (local == NULL && remote == NULL)
		return open_socket(o, o->family, NULL, NULL, fdp, what);
	for (l = local; l != NULL || local == NULL; l = l ? l->ai_next : NULL) {
		for (r = remote; r != NULL || remote == NULL;
		    r = r ? r->ai_next : NULL) {
			if (l != NULL && r != NULL &&
			    l->ai_family != r->ai_family)
				goto next;
			rc = open_socket(o, l ? l->ai_family : r->ai_family,
			    l, r, fdp, what);
			if (rc == 0)
				return 0;
next:
			if (remote == NULL)
				break;
		}
		if (local == NULL)
			break;
	}
	return rc;
}

/* A sockaddr_un for @path; ALOOP_EINVAL when it does not fit. */
static int
unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sun->sun_path))
		return ALOOP_EINVAL;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

/*
 * A UNIX datagram socket bound to the path @o->local_host and connected to
 * @o->remote_host (either may be NULL).  As asyncio does, a socket file
 * left at the local path (by an endpoint that is gone) is replaced; any
 * other file there is EADDRINUSE.  The file stays after close, as with
 * asyncio.
 */
static int
make_unix_socket(const struct aloop_datagram_options *o, int *fdp,
    const char **what)
{
	struct sockaddr_un lo, re;
	socklen_t lolen = 0, relen = 0;
	struct stat st;
	int fd, rc;

	*what = "address family";
	if (o->local_port != NULL || o->remote_port != NULL ||
	    (o->local_host != NULL &&
	    unix_addr(o->local_host, &lo, &lolen) != 0) ||
	    (o->remote_host != NULL &&
	    unix_addr(o->remote_host, &re, &relen) != 0))
		return ALOOP_EINVAL;
	*what = "socket";
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	*what = "bind";
	if (lolen > 0) {
		if (stat(o->local_host, &st) == 0 && S_ISSOCK(st.st_mode))
			(void)unlink(o->local_host);
		if (bind(fd, (struct sockaddr *)&lo, lolen) == -1)
			goto fail;
	}
	*what = "connect";
	if (relen > 0 && connect(fd, (struct sockaddr *)&re, relen) == -1)
		goto fail;
	*fdp = fd;
	return 0;
fail:
	rc = -errno;
	(void)close(fd);
	return rc;
}

static int
adopt_socket(int fd)
{
	int type;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
		return -errno;
	if (type != SOCK_DGRAM)
		return ALOOP_EINVAL;
	return set_flags(fd);
}

/*
 * Creation that waits for host names to resolve.  It is a loop resource,
 * so that a loop closed meanwhile frees it.
 */
struct dgram_create {
	struct aloop__resource	 res;
	struct aloop_loop	*loop;
	const struct aloop_datagram_protocol *proto;
	aloop_protocol_factory_fn factory;
	void			*factory_arg;
	struct aloop_datagram_options o;	/* no host or port kept */
	struct addrinfo		*ai[2];		/* numeric sides: local, remote */
	struct aloop_future	*lookup[2];	/* named sides */
	struct aloop_future	*fut;		/* the caller's */
	int			 pending;
};

static void create_resolved(struct aloop_future *f, void *arg);

static void
create_free(struct dgram_create *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (c->lookup[i] != NULL) {
			(void)aloop_future_remove_done_callback(c->lookup[i],
			    create_resolved, c);
			/* Its outcome is ours to retrieve, not to report. */
			(void)aloop_future_error(c->lookup[i]);
			aloop_future_release(c->lookup[i]);
		}
		if (c->ai[i] != NULL)
			freeaddrinfo(c->ai[i]);
	}
	if (c->fut != NULL)
		aloop_future_release(c->fut);
	free(c);
}

static void
create_on_loop_close(struct aloop__resource *res)
{
	create_free((struct dgram_create *)res);
}

static void
create_resolved(struct aloop_future *f, void *arg)
{
	struct dgram_create *c = arg;
	const struct aloop_error *e;
	struct addrinfo *side[2];
	const char *what;
	void *res;
	int i, fd, rc;

	(void)f;
	if (--c->pending > 0)
		return;
	aloop__loop_untrack(c->loop, &c->res);
	/* The caller may have cancelled while we waited. */
	if (aloop_future_done(c->fut))
		goto out;
	for (i = 0; i < 2; i++) {
		side[i] = c->ai[i];
		if (c->lookup[i] == NULL)
			continue;
		if ((rc = aloop_future_result(c->lookup[i], &res)) < 0) {
			e = aloop_future_error(c->lookup[i]);
			(void)aloop_future_set_error(c->fut, rc, "%s",
			    e != NULL ? e->message : aloop_strerror(rc));
			goto out;
		}
		side[i] = res;
	}
	rc = make_socket(&c->o, side[0], side[1], &fd, &what);
	if (rc < 0)
		(void)aloop_future_set_error(c->fut, rc, "datagram %s: %s",
		    what, aloop_strerror(rc));
	else if ((rc = aloop__dgram_new(c->loop, c->proto, c->factory,
	    c->factory_arg, fd, c->fut)) < 0)
		(void)aloop_future_set_error(c->fut, rc, NULL);
out:
	create_free(c);
}

/* Look up the named sides of @o; the rest is in @ai (taken over). */
static int
create_later(struct aloop_loop *loop,
    const struct aloop_datagram_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg,
    const struct aloop_datagram_options *o, struct addrinfo *ai[2],
    const int named[2], struct aloop_future *fut)
{
	const char *host[2] = { o->local_host, o->remote_host };
	const char *port[2] = { o->local_port, o->remote_port };
	struct dgram_create *c;
	struct addrinfo hints;
	int i, rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ALOOP_ENOMEM;
	c->loop = loop;
	c->proto = proto;
	c->factory = factory;
	c->factory_arg = factory_arg;
	c->o = *o;
	c->o.local_host = c->o.local_port = NULL;
	c->o.remote_host = c->o.remote_port = NULL;
	c->ai[0] = ai[0];
	c->ai[1] = ai[1];
	ai[0] = ai[1] = NULL;
	c->fut = aloop_future_ref(fut);
	for (i = 0; i < 2; i++) {
		if (!named[i])
			continue;
		make_hints(o, i == 0, 0, &hints);
		if ((rc = aloop_getaddrinfo(loop, host[i], port[i], &hints,
		    &c->lookup[i])) < 0)
			goto fail;
		if ((rc = aloop_future_add_done_callback(c->lookup[i],
		    create_resolved, c)) < 0)
			goto fail;
		c->pending++;
	}
	c->res.on_loop_close = create_on_loop_close;
	aloop__loop_track(loop, &c->res);
	return 0;
fail:
	create_free(c);
	return rc;
}

int
aloop_create_datagram_endpoint(struct aloop_loop *loop,
    const struct aloop_datagram_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg,
    const struct aloop_datagram_options *o, struct aloop_future **fut)
{
	struct aloop_datagram_options defaults;
	struct addrinfo *ai[2] = { NULL, NULL };
	struct aloop_future *f = NULL;
	const char *what = "";
	char msg[256] = "";
	int named[2] = { 0, 0 };
	int fd = -1, rc;

	if (fut != NULL)
		*fut = NULL;
	if (loop == NULL || proto == NULL || fut == NULL)
		return ALOOP_EINVAL;
	if (o == NULL) {
		aloop_datagram_options_init(&defaults);
		o = &defaults;
	}
	if (o->sock >= 0) {
		if (o->local_host || o->local_port || o->remote_host ||
		    o->remote_port)
			return ALOOP_EINVAL;
	} else if (!o->local_host && !o->local_port && !o->remote_host &&
	    !o->remote_port && o->family == AF_UNSPEC)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "create_datagram_endpoint")) < 0)
		return rc;

	if (o->sock >= 0) {
		if ((rc = adopt_socket(o->sock)) < 0)
			return rc;
		fd = o->sock;
	} else if (o->family == AF_UNIX) {
		/* Paths, not names: nothing to resolve. */
		if ((rc = aloop_future_new(loop, &f)) < 0)
			goto out;
		if ((rc = make_unix_socket(o, &fd, &what)) < 0) {
			if (strcmp(what, "address family") == 0)
				goto out;
			(void)aloop_future_set_error(f, rc, "datagram %s: %s",
			    what, aloop_strerror(rc));
			rc = 0;
			goto done;
		}
		goto made;
	} else {
		if ((rc = resolve(o, o->local_host, o->local_port, 1, &ai[0],
		    msg, sizeof(msg))) < 0)
			goto out;
		named[0] = rc;
		if ((rc = resolve(o, o->remote_host, o->remote_port, 0, &ai[1],
		    msg, sizeof(msg))) < 0)
			goto out;
		named[1] = rc;
		rc = 0;
	}
	if ((rc = aloop_future_new(loop, &f)) < 0)
		goto out;
	if (named[0] || named[1]) {
		if ((rc = create_later(loop, proto, factory, factory_arg, o, ai,
		    named, f)) < 0)
			goto out;
		goto done;
	}
	if (fd < 0 && (rc = make_socket(o, ai[0], ai[1], &fd, &what)) < 0) {
		if (rc == ALOOP_EINVAL && strcmp(what, "address family") == 0)
			/* No pair shares a family: an argument error. */
			goto out;
		/* A system error: the future carries it, asyncio's OSError. */
		(void)aloop_future_set_error(f, rc, "datagram %s: %s", what,
		    aloop_strerror(rc));
		rc = 0;
		goto done;
	}
made:
	if ((rc = aloop__dgram_new(loop, proto, factory, factory_arg, fd, f)) < 0)
		goto out;
done:
	*fut = f;
	f = NULL;
out:
	if (f != NULL)
		aloop_future_release(f);
	if (ai[0] != NULL)
		freeaddrinfo(ai[0]);
	if (ai[1] != NULL)
		freeaddrinfo(ai[1]);
	if (rc < 0 && msg[0] != '\0')
		aloop_log(ALOOP_LOG_DEBUG, "create_datagram_endpoint: %s", msg);
	return rc;
}
