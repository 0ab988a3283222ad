/*
 * Name resolution that never blocks the loop: getaddrinfo and getnameinfo
 * run in the default executor, as asyncio does, so /etc/hosts, nsswitch
 * and the resolver configuration are honoured exactly as the system's own
 * tools honour them.  Numeric addresses need no lookup and complete at
 * once, sparing a thread hop on the common path.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/net.h>

#include "loop-int.h"
#include "net-int.h"

enum job_mode { JOB_ADDRINFO, JOB_LIST, JOB_NAMEINFO };

/*
 * One resolution.  The job is its own executor result, so whichever side
 * finishes last (the loop or a cancelled job) frees it with job_free.
 */
struct job {
	enum job_mode		 mode;
	char			**hosts;
	size_t			 nhosts;
	char			*port;
	struct addrinfo		 hints;
	int			 dedupe;
	struct sockaddr_storage	 sa;
	socklen_t		 salen;
	int			 niflags;
	/* Outcome. */
	int			 gai_rc;
	int			 sys_errno;
	size_t			 failed;	/* index of the host that failed */
	struct addrinfo		*ai;
	struct aloop__addrlist	*list;
	struct aloop_nameinfo	*ni;
};

/*
 * Links the caller's future and the executor's, both ways.  Each holds
 * the other through a done-callback, a cycle only the callbacks break; a
 * loop closed before they run breaks it through the tracked resource.
 */
struct chain {
	struct aloop_loop	*loop;
	struct aloop_future	*outer, *inner;
	int			 refs;
	struct aloop__resource	 res;
};

static void
job_free(void *arg)
{
	struct job *j = arg;
	size_t i;

	if (j == NULL)
		return;
	for (i = 0; i < j->nhosts; i++)
		free(j->hosts[i]);
	free(j->hosts);
	free(j->port);
	if (j->ai != NULL)
		freeaddrinfo(j->ai);
	free(j->list);
	free(j->ni);
	free(j);
}

static int
addr_same(const struct aloop__addr *a, const struct addrinfo *ai)
{
	return a->family == ai->ai_family && a->socktype == ai->ai_socktype &&
	    a->protocol == ai->ai_protocol && a->len == ai->ai_addrlen &&
	    memcmp(&a->ss, ai->ai_addr, ai->ai_addrlen) == 0;
}

/* Append @ai's entries to j->list. */
static int
job_append(struct job *j, const struct addrinfo *res)
{
	const struct addrinfo *ai;
	struct aloop__addrlist *l;
	size_t n = 0, i, have = j->list != NULL ? j->list->n : 0;

	for (ai = res; ai != NULL; ai = ai->ai_next)
		n++;
	l = realloc(j->list, sizeof(*l) + (have + n) * sizeof(l->a[0]));
	if (l == NULL)
		return -ENOMEM;
	l->n = have;
	j->list = l;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(l->a[0].ss))
			continue;
		if (j->dedupe) {
			for (i = 0; i < l->n; i++)
				if (addr_same(&l->a[i], ai))
					break;
			if (i < l->n)
				continue;
		}
		l->a[l->n].family = ai->ai_family;
		l->a[l->n].socktype = ai->ai_socktype;
		l->a[l->n].protocol = ai->ai_protocol;
		l->a[l->n].len = ai->ai_addrlen;
		memset(&l->a[l->n].ss, 0, sizeof(l->a[l->n].ss));
		memcpy(&l->a[l->n].ss, ai->ai_addr, ai->ai_addrlen);
		l->n++;
	}
	return 0;
}

/* The blocking part; runs on a pool thread, or inline when numeric. */
static void
job_run(struct job *j)
{
	struct addrinfo *res;
	const char *host;
	size_t i, n;
	int rc;

	if (j->mode == JOB_NAMEINFO) {
		j->gai_rc = getnameinfo((struct sockaddr *)&j->sa, j->salen,
		    j->ni->host, sizeof(j->ni->host), j->ni->serv,
		    sizeof(j->ni->serv), j->niflags);
		j->sys_errno = errno;
		return;
	}
	if (j->mode == JOB_ADDRINFO) {
		j->gai_rc = getaddrinfo(j->hosts[0], j->port, &j->hints, &j->ai);
		j->sys_errno = errno;
		return;
	}
	n = j->nhosts;
	for (i = 0; i < n; i++) {
		host = j->hosts[i];
		res = NULL;
		rc = getaddrinfo(host, j->port, &j->hints, &res);
		if (rc != 0) {
			j->gai_rc = rc;
			j->sys_errno = errno;
			j->failed = i;
			return;
		}
		rc = job_append(j, res);
		freeaddrinfo(res);
		if (rc != 0) {
			j->gai_rc = EAI_MEMORY;
			j->failed = i;
			return;
		}
	}
	if (j->list == NULL || j->list->n == 0) {
		j->gai_rc = EAI_NONAME;
		j->failed = 0;
	}
}

static int
str_is_numeric_port(const char *s)
{
	if (s == NULL)
		return 1;
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int
str_is_numeric_host(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return s == NULL || inet_pton(AF_INET, s, &a4) == 1 ||
	    inet_pton(AF_INET6, s, &a6) == 1;
}

/* Whether the job can run inline: nothing in it needs a lookup. */
static int
job_is_numeric(const struct job *j)
{
	size_t i;

	if (j->mode == JOB_NAMEINFO)
		return (j->niflags & (NI_NUMERICHOST | NI_NUMERICSERV)) ==
		    (NI_NUMERICHOST | NI_NUMERICSERV);
	if (!str_is_numeric_port(j->port))
		return 0;
	for (i = 0; i < j->nhosts; i++)
		if (!str_is_numeric_host(j->hosts[i]))
			return 0;
	return 1;
}

/* Hand the job's outcome to @fut. */
static void
job_complete(struct aloop_future *fut, struct job *j)
{
	const char *host;
	int code;

	if (aloop_future_done(fut))
		return;
	if (j->gai_rc != 0) {
		if (j->gai_rc == EAI_SYSTEM && j->sys_errno != 0)
			code = -j->sys_errno;
		else if (j->gai_rc == EAI_MEMORY)
			code = ALOOP_ENOMEM;
		else
			code = ALOOP_EGAI;
		if (j->mode == JOB_NAMEINFO)
			(void)aloop_future_set_error(fut, code,
			    "getnameinfo: %s", j->gai_rc == EAI_SYSTEM ?
			    strerror(j->sys_errno) : gai_strerror(j->gai_rc));
		else {
			host = j->nhosts > 0 ? j->hosts[j->failed] : NULL;
			(void)aloop_future_set_error(fut, code,
			    "getaddrinfo(%s, %s): %s",
			    host != NULL ? host : "(any)",
			    j->port != NULL ? j->port : "(none)",
			    j->gai_rc == EAI_SYSTEM ?
			    strerror(j->sys_errno) : gai_strerror(j->gai_rc));
		}
		return;
	}
	switch (j->mode) {
	case JOB_ADDRINFO:
		if (aloop_future_set_result(fut, j->ai,
		    (aloop_free_fn)freeaddrinfo) == 0)
			j->ai = NULL;
		break;
	case JOB_LIST:
		if (aloop_future_set_result(fut, j->list, free) == 0)
			j->list = NULL;
		break;
	case JOB_NAMEINFO:
		if (aloop_future_set_result(fut, j->ni, free) == 0)
			j->ni = NULL;
		break;
	}
}

static void
chain_free(struct chain *c)
{
	aloop__loop_untrack(c->loop, &c->res);
	aloop_future_release(c->outer);
	aloop_future_release(c->inner);
	free(c);
}

static void
chain_unref(struct chain *c)
{
	if (--c->refs > 0)
		return;
	chain_free(c);
}

static void	chain_inner_done(struct aloop_future *inner, void *arg);
static void	chain_outer_done(struct aloop_future *outer, void *arg);

static void
chain_on_loop_close(struct aloop__resource *res)
{
	struct chain *c = (struct chain *)(void *)
	    ((char *)res - offsetof(struct chain, res));

	/* Callbacks still registered or queued will never run now. */
	(void)aloop_future_remove_done_callback(c->inner, chain_inner_done, c);
	(void)aloop_future_remove_done_callback(c->outer, chain_outer_done, c);
	chain_free(c);
}

static void
chain_inner_done(struct aloop_future *inner, void *arg)
{
	struct chain *c = arg;
	const struct aloop_error *err;
	void *res = NULL;
	int rc;

	rc = aloop_future_result(inner, &res);
	if (!aloop_future_done(c->outer)) {
		if (rc == 0)
			job_complete(c->outer, res);
		else if (rc == ALOOP_ECANCELLED)
			(void)aloop_future_cancel(c->outer);
		else {
			err = aloop_future_error(inner);
			(void)aloop_future_set_error(c->outer, rc, "%s",
			    err != NULL ? err->message : aloop_strerror(rc));
		}
	}
	chain_unref(c);
}

static void
chain_outer_done(struct aloop_future *outer, void *arg)
{
	struct chain *c = arg;

	/* A caller who cancels no longer wants the lookup's result. */
	if (aloop_future_cancelled(outer))
		(void)aloop_future_cancel(c->inner);
	chain_unref(c);
}

static int
job_exec(void *arg, void **result)
{
	job_run(arg);
	*result = arg;
	return 0;
}

/*
 * Start @j (owned from now on) and hand back the future of its outcome.
 */
static int
job_start(struct aloop_loop *loop, struct job *j, struct aloop_future **fut)
{
	struct aloop_future *outer = NULL, *inner = NULL;
	struct chain *c;
	int rc;

	if ((rc = aloop_future_new(loop, &outer)) != 0) {
		job_free(j);
		return rc;
	}
	if (job_is_numeric(j)) {
		job_run(j);
		job_complete(outer, j);
		job_free(j);
		*fut = outer;
		return 0;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		job_free(j);
		aloop_future_release(outer);
		return ALOOP_ENOMEM;
	}
	if ((rc = aloop_run_in_executor(loop, NULL, job_exec, j, job_free,
	    &inner)) != 0) {
		job_free(j);
		free(c);
		aloop_future_release(outer);
		return rc;
	}
	c->loop = loop;
	c->outer = aloop_future_ref(outer);
	c->inner = inner;
	c->refs = 2;
	c->res.on_loop_close = chain_on_loop_close;
	if (aloop_future_add_done_callback(inner, chain_inner_done, c) != 0) {
		(void)aloop_future_cancel(inner);
		aloop_future_release(inner);
		aloop_future_release(outer);	/* the chain's */
		aloop_future_release(outer);
		free(c);
		return ALOOP_ENOMEM;
	}
	aloop__loop_track(loop, &c->res);
	if (aloop_future_add_done_callback(outer, chain_outer_done, c) != 0) {
		/* chain_inner_done drops the last link once it runs. */
		c->refs = 1;
		(void)aloop_future_cancel(inner);
		aloop_future_release(outer);
		return ALOOP_ENOMEM;
	}
	*fut = outer;
	return 0;
}

static struct job *
job_new(enum job_mode mode, const char *const *hosts, size_t nhosts,
    const char *port, const struct addrinfo *hints)
{
	struct job *j;
	size_t i;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->mode = mode;
	if (nhosts == 0)
		nhosts = 1;
	if ((j->hosts = calloc(nhosts, sizeof(*j->hosts))) == NULL)
		goto fail;
	j->nhosts = nhosts;
	for (i = 0; hosts != NULL && i < nhosts; i++)
		if (hosts[i] != NULL && (mode == JOB_ADDRINFO ||
		    hosts[i][0] != '\0') &&
		    (j->hosts[i] = strdup(hosts[i])) == NULL)
			goto fail;
	if (port != NULL && (j->port = strdup(port)) == NULL)
		goto fail;
	if (hints != NULL) {
		j->hints.ai_family = hints->ai_family;
		j->hints.ai_socktype = hints->ai_socktype;
		j->hints.ai_protocol = hints->ai_protocol;
		j->hints.ai_flags = hints->ai_flags;
	}
	return j;
fail:
	job_free(j);
	return NULL;
}

int
aloop__resolve(struct aloop_loop *loop, const char *const *hosts,
    size_t nhosts, const char *port, const struct addrinfo *hints,
    int dedupe, struct aloop_future **fut)
{
	struct job *j;

	if ((j = job_new(JOB_LIST, hosts, nhosts, port, hints)) == NULL)
		return ALOOP_ENOMEM;
	j->dedupe = dedupe;
	return job_start(loop, j, fut);
}

int
aloop_getaddrinfo(struct aloop_loop *loop, const char *host,
    const char *port, const struct addrinfo *hints, struct aloop_future **fut)
{
	struct job *j;
	int rc;

	if (fut == NULL || (host == NULL && port == NULL))
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "getaddrinfo")) != 0)
		return rc;
	if ((j = job_new(JOB_ADDRINFO, &host, 1, port, hints)) == NULL)
		return ALOOP_ENOMEM;
	return job_start(loop, j, fut);
}

int
aloop_getnameinfo(struct aloop_loop *loop, const struct sockaddr *sa,
    socklen_t salen, int flags, struct aloop_future **fut)
{
	struct job *j;
	int rc;

	if (fut == NULL || sa == NULL || salen == 0 ||
	    salen > sizeof(j->sa))
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "getnameinfo")) != 0)
		return rc;
	if ((j = job_new(JOB_NAMEINFO, NULL, 0, NULL, NULL)) == NULL)
		return ALOOP_ENOMEM;
	if ((j->ni = calloc(1, sizeof(*j->ni))) == NULL) {
		job_free(j);
		return ALOOP_ENOMEM;
	}
	memcpy(&j->sa, sa, salen);
	j->salen = salen;
	j->niflags = flags;
	return job_start(loop, j, fut);
}

const char *
aloop__sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf,
    size_t size)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	const struct sockaddr_un *sun;

	if (sa == NULL || len == 0) {
		snprintf(buf, size, "?");
		return buf;
	}
	if (sa->sa_family == AF_UNIX) {
		sun = (const struct sockaddr_un *)(const void *)sa;
		snprintf(buf, size, "%.*s", (int)(len > offsetof(struct
		    sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un,
		    sun_path) : 0), sun->sun_path);
		return buf;
	}
	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, size, "?");
		return buf;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(buf, size, "[%s]:%s", host, serv);
	else
		snprintf(buf, size, "%s:%s", host, serv);
	return buf;
}
