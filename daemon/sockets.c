/*
 * The master's listening sockets: bound through libaloop (a server that
 * never starts serving, a datagram endpoint that never reads) for TCP and
 * UDP, by hand for UNIX paths, adopted from systemd or from the previous
 * master, and shared by key between the generations that use them.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/aloop.h>

#include "activation.h"
#include "config-int.h"
#include "sockets.h"

/* Sockets of one address of one slot: "*" makes two, an adoption more. */
#define MSOCK_MAX	16
#define SHARED		(~0u)

struct msock {
	struct msock		*next;
	char			*key;
	unsigned		 refs;		/* tables holding it */
	int			 type;		/* CONFIG_TCP or CONFIG_UDP */
	struct aloop_server	*srv[MSOCK_MAX];	/* TCP */
	size_t			 nsrv;
	struct aloop_transport	*ep[MSOCK_MAX];		/* UDP */
	size_t			 nep;
	int			 fds[MSOCK_MAX];	/* as workers get them */
	size_t			 nfds;
	int			 own_fds;	/* UNIX: ours to close */
	char			*path;		/* UNIX file to unlink, or NULL */
};

/* A socket set handed over by the previous master, or by systemd. */
struct inherited {
	struct inherited	*next;
	char			*key;
	int			 fds[MSOCK_MAX];
	size_t			 nfds;
	int			 claimed;
};

/* One bind in flight, for the table that waits for it. */
struct bind_op {
	struct socktab		*tab;
	struct msock		*m;
	const struct config_listener *cl;
	const char		*what;		/* for messages */
	int			 log;		/* say where it listens */
};

static struct msock *all;
static struct inherited *inherited;
static int paths_disowned;

/* ------------------------------------------------------------- helpers */

static void
describe_fd(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		snprintf(buf, len, "descriptor %d", fd);
		return;
	}
	if (ss.ss_family == AF_UNIX) {
		snprintf(buf, len, "unix:%s",
		    ((struct sockaddr_un *)&ss)->sun_path);
		return;
	}
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
	    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, len, "descriptor %d", fd);
		return;
	}
	snprintf(buf, len, "%s%s%s:%s", ss.ss_family == AF_INET6 ? "[" : "",
	    host, ss.ss_family == AF_INET6 ? "]" : "", port);
}

/* Say once per socket where a listener listens (port 0 gets its port). */
static void
log_listening(const struct config_listener *cl, const struct msock *m)
{
	const char *kind = cl->type == CONFIG_UDP ? "udp" :
	    cl->tls != NULL ? "tls" : "tcp";
	char where[PATH_MAX + 16];

	for (size_t i = 0; i < m->nfds; i++) {
		describe_fd(m->fds[i], where, sizeof(where));
		aloop_log(ALOOP_LOG_NOTICE, "listener %s: %s %s listening on "
		    "%s", cl->name, cl->protocol, strncmp(where, "unix:", 5) ==
		    0 ? "unix" : kind, where);
	}
}

static struct msock *
msock_find(const char *key)
{
	for (struct msock *m = all; m != NULL; m = m->next)
		if (strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

static void
msock_close(struct msock *m)
{
	for (size_t i = 0; i < m->nsrv; i++) {
		aloop_server_close(m->srv[i]);
		aloop_server_release(m->srv[i]);
	}
	for (size_t i = 0; i < m->nep; i++)
		aloop_transport_abort(m->ep[i]);
	if (m->own_fds)
		for (size_t i = 0; i < m->nfds; i++)
			close(m->fds[i]);
	if (m->path != NULL && !paths_disowned)
		(void)unlink(m->path);
	free(m->path);
	free(m->key);
	free(m);
}

static void
msock_unref(struct msock *m)
{
	if (m == NULL || --m->refs > 0)
		return;
	for (struct msock **pp = &all; *pp != NULL; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	msock_close(m);
}

/* ------------------------------------------------------------ binding */

/* A server that never serves and an endpoint that never reads. */
static int
refuse(void *arg, void **state)
{
	(void)arg;
	*state = NULL;
	return ALOOP_ESTATE;
}

static const struct aloop_protocol idle_stream = { .connection_made = NULL };

static void
endpoint_made(struct aloop_transport *t, void *state)
{
	(void)state;
	/* Datagrams wait in the socket's buffer for a worker. */
	aloop_transport_pause_reading(t);
}

static int
endpoint_state(void *arg, void **state)
{
	(void)arg;
	*state = NULL;
	return 0;
}

static const struct aloop_datagram_protocol idle_dgram = {
	.connection_made = endpoint_made,
};

static void log_new_sockets(struct socktab *tab);

static void
table_finish(void *arg)
{
	struct socktab *tab = arg;

	if (!tab->failed)
		log_new_sockets(tab);
	tab->done(tab, tab->failed ? -1 : 0, tab->arg);
}

static void
table_step_done(struct socktab *tab)
{
	if (--tab->pending == 0)
		table_finish(tab);
}

static void
bound(struct aloop_future *fut, void *arg)
{
	struct bind_op *op = arg;
	struct msock *m = op->m;
	const struct aloop_error *err;
	void *res = NULL;
	const int *s;
	size_t n;

	if (aloop_future_result(fut, &res) != 0) {
		err = aloop_future_error(fut);
		aloop_log(ALOOP_LOG_ERR, "listener %s: cannot listen on %s: %s",
		    op->cl->name, op->what, err != NULL ? err->message :
		    "cancelled");
		op->tab->failed = 1;
	} else if (m->type == CONFIG_TCP) {
		m->srv[m->nsrv++] = res;
		s = aloop_server_sockets(res, &n);
		for (size_t i = 0; i < n && m->nfds < MSOCK_MAX; i++)
			m->fds[m->nfds++] = s[i];
	} else {
		m->ep[m->nep++] = res;
		s = aloop_transport_get_extra_info(res, "socket", NULL);
		if (s != NULL && m->nfds < MSOCK_MAX)
			m->fds[m->nfds++] = *s;
	}
	aloop_future_release(fut);
	table_step_done(op->tab);
	free(op);
}

/* Start one bind (or adoption of @fd) into @m; -1 logged on failure. */
static int
start_bind(struct aloop_loop *loop, struct socktab *tab, struct msock *m,
    const struct config_listener *cl, const struct config_address *a,
    int fd, int reuse_port)
{
	struct aloop_future *fut = NULL;
	struct bind_op *op;
	int r;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return ALOOP_ENOMEM;
	op->tab = tab;
	op->m = m;
	op->cl = cl;
	op->what = a != NULL ? a->text : "an inherited socket";
	if (m->type == CONFIG_TCP) {
		struct aloop_server_options o;

		aloop_server_options_init(&o);
		o.backlog = cl->backlog;
		o.reuse_port = reuse_port;
		o.start_serving = 0;
		o.sock = fd;
		r = aloop_create_server(loop, &idle_stream, refuse, NULL,
		    fd < 0 ? a->host : NULL, fd < 0 ? a->port : NULL, &o, &fut);
	} else {
		struct aloop_datagram_options o;

		aloop_datagram_options_init(&o);
		o.reuse_port = reuse_port;
		o.sock = fd;
		if (fd < 0) {
			o.local_host = a->host;
			o.local_port = a->port;
		}
		r = aloop_create_datagram_endpoint(loop, &idle_dgram,
		    endpoint_state, NULL, &o, &fut);
	}
	if (r < 0) {
		aloop_log(ALOOP_LOG_ERR, "listener %s: cannot listen on %s: %s",
		    cl->name, op->what, aloop_strerror(r));
		free(op);
		return r;
	}
	tab->pending++;
	if (aloop_future_add_done_callback(fut, bound, op) < 0) {
		tab->pending--;
		aloop_future_release(fut);
		free(op);
		return ALOOP_ENOMEM;
	}
	return 0;
}

/* Apply `mode` and `owner` to a UNIX socket file this listener made. */
static int
unix_perms(const struct config_listener *cl, const char *path)
{
	char *user, *group;
	struct passwd *pw;
	struct group *gr;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	int r = 0;

	if (cl->mode >= 0 && chmod(path, (mode_t)cl->mode) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "listener %s: chmod %s",
		    cl->name, path);
		return -EPERM;
	}
	if (cl->owner == NULL)
		return 0;
	if ((user = strdup(cl->owner)) == NULL)
		return ALOOP_ENOMEM;
	if ((group = strchr(user, ':')) != NULL)
		*group++ = '\0';
	if (user[0] != '\0') {
		if ((pw = getpwnam(user)) == NULL) {
			aloop_log(ALOOP_LOG_ERR, "listener %s: no user %s",
			    cl->name, user);
			r = -1;
		} else {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		}
	}
	if (r == 0 && group != NULL && group[0] != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			aloop_log(ALOOP_LOG_ERR, "listener %s: no group %s",
			    cl->name, group);
			r = -1;
		} else
			gid = gr->gr_gid;
	}
	if (r == 0 && chown(path, uid, gid) == -1) {
		aloop_log_errno(ALOOP_LOG_ERR, "listener %s: chown %s %s",
		    cl->name, cl->owner, path);
		r = -1;
	}
	free(user);
	return r;
}

/*
 * Bind a UNIX path.  Done here rather than with aloop_create_unix_server:
 * the library's server unlinks its file when it closes, and the master
 * must be able to let a socket go while the file lives on, when a binary
 * upgrade hands the socket to the next master.  A stale file (nobody
 * accepts on it) is replaced; a live one is EADDRINUSE.
 */
static int
unix_listen(const struct config_listener *cl, const char *path, int *fdp)
{
	struct sockaddr_un sun;
	int fd, probe, e;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno != EADDRINUSE)
			goto fail;
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
		e = probe == -1 || connect(probe, (struct sockaddr *)&sun,
		    sizeof(sun)) == 0 ? EADDRINUSE : errno;
		if (probe != -1)
			close(probe);
		if (e != ECONNREFUSED || (unlink(path) == -1 &&
		    errno != ENOENT)) {
			close(fd);
			return -EADDRINUSE;
		}
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
			goto fail;
	}
	if (unix_perms(cl, path) < 0) {
		(void)unlink(path);
		close(fd);
		return -EPERM;
	}
	if (listen(fd, cl->backlog) == -1) {
		(void)unlink(path);
		goto fail;
	}
	*fdp = fd;
	return 0;
fail:
	e = errno;
	close(fd);
	return -e;
}

static struct inherited *
inherited_find(const char *key)
{
	for (struct inherited *h = inherited; h != NULL; h = h->next)
		if (!h->claimed && strcmp(h->key, key) == 0)
			return h;
	return NULL;
}

/*
 * Make msock @key for address @a of @cl (NULL: the listener's activation
 * sockets) and start its binds.  -1 (logged) on failure.
 */
static int
msock_new(struct aloop_loop *loop, struct socktab *tab,
    const struct config_listener *cl, const struct config_address *a,
    const char *key, int reuse_port, struct msock **out)
{
	struct inherited *h = inherited_find(key);
	struct msock *m;
	int r;

	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->key = strdup(key)) == NULL) {
		free(m);
		return ALOOP_ENOMEM;
	}
	m->refs = 1;
	m->type = cl->type;
	m->next = all;
	all = m;
	*out = m;
	if (h != NULL) {
		h->claimed = 1;
		if (a != NULL && a->kind == CONFIG_ADDR_UNIX) {
			/* Taken over from the previous master, file and all. */
			memcpy(m->fds, h->fds, h->nfds * sizeof(int));
			m->nfds = h->nfds;
			m->own_fds = 1;
			m->path = strdup(a->path);
			return 0;
		}
		for (size_t i = 0; i < h->nfds; i++)
			if ((r = start_bind(loop, tab, m, cl, a, h->fds[i],
			    reuse_port)) < 0)
				return r;
		return 0;
	}
	if (a != NULL && a->kind == CONFIG_ADDR_UNIX) {
		int fd = -1;

		if ((r = unix_listen(cl, a->path, &fd)) < 0) {
			aloop_log(ALOOP_LOG_ERR, "listener %s: cannot listen "
			    "on %s: %s", cl->name, a->text, aloop_strerror(r));
			return r;
		}
		m->fds[m->nfds++] = fd;
		m->own_fds = 1;
		if ((m->path = strdup(a->path)) == NULL)
			return ALOOP_ENOMEM;
		return 0;
	}
	return start_bind(loop, tab, m, cl, a, -1, reuse_port);
}

/*
 * Whether workers share one socket for @cl instead of one each: UNIX
 * sockets (a path binds once), listeners without reuse_port, port 0
 * (each worker would get another port) and sockets systemd passed.
 */
static int
is_shared(const struct config_listener *cl)
{
	if (!cl->reuse_port || activation_find(cl->name) >= 0)
		return 1;
	for (size_t i = 0; i < cl->nlisten; i++)
		if (cl->listen[i].kind == CONFIG_ADDR_UNIX ||
		    strcmp(cl->listen[i].port, "0") == 0)
			return 1;
	return 0;
}

static int
bind_listener(struct aloop_loop *loop, struct socktab *tab, size_t i)
{
	const struct config_listener *cl = &tab->cfg->listeners[i];
	unsigned nslots = tab->shared[i] ? 1 : tab->nslots;
	size_t naddr = cl->nlisten;
	char key[PATH_MAX + 64];
	int act = activation_find(cl->name) >= 0, r;

	if (act)
		naddr = 1;	/* the activation set stands for all of them */
	tab->naddr[i] = naddr;
	tab->socks[i] = calloc(nslots * naddr, sizeof(struct msock *));
	if (tab->socks[i] == NULL)
		return ALOOP_ENOMEM;
	for (unsigned s = 0; s < nslots; s++) {
		for (size_t a = 0; a < naddr; a++) {
			struct msock **slotp = &tab->socks[i][s * naddr + a];
			const struct config_address *ad = act ? NULL :
			    &cl->listen[a];

			if (act)
				snprintf(key, sizeof(key), "systemd %s",
				    cl->name);
			else
				snprintf(key, sizeof(key), "%s %s %s%u",
				    cl->type == CONFIG_UDP ? "udp" : "tcp",
				    ad->text, tab->shared[i] ? "shared" :
				    "slot ", tab->shared[i] ? 0 : s);
			if ((*slotp = msock_find(key)) != NULL) {
				(*slotp)->refs++;
				continue;
			}
			if ((r = msock_new(loop, tab, cl, ad, key,
			    !tab->shared[i], slotp)) < 0)
				return r;
		}
	}
	return 0;
}

static void
log_new_sockets(struct socktab *tab)
{
	for (size_t i = 0; i < tab->cfg->nlisteners; i++) {
		const struct config_listener *cl = &tab->cfg->listeners[i];
		/* Slot 0 speaks for every slot. */
		for (size_t a = 0; a < tab->naddr[i]; a++) {
			struct msock *m = tab->socks[i][a];

			if (m != NULL && m->refs == 1)
				log_listening(cl, m);
		}
	}
}

int
sockets_bind(struct aloop_loop *loop, struct config *cfg, unsigned nslots,
    void (*done)(struct socktab *, int, void *), void *arg,
    struct socktab **tabp)
{
	struct socktab *tab;
	int r;

	*tabp = NULL;
	if ((tab = calloc(1, sizeof(*tab))) == NULL)
		return ALOOP_ENOMEM;
	tab->cfg = cfg;
	tab->nslots = nslots;
	tab->done = done;
	tab->arg = arg;
	tab->socks = calloc(cfg->nlisteners + 1, sizeof(*tab->socks));
	tab->shared = calloc(cfg->nlisteners + 1, 1);
	tab->naddr = calloc(cfg->nlisteners + 1, sizeof(*tab->naddr));
	if (tab->socks == NULL || tab->shared == NULL || tab->naddr == NULL) {
		sockets_free(tab);
		return ALOOP_ENOMEM;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++)
		tab->shared[i] = (unsigned char)is_shared(&cfg->listeners[i]);
	/* Held until every bind has started, so that @done runs once. */
	tab->pending = 1;
	for (size_t i = 0; i < cfg->nlisteners && !tab->failed; i++)
		if (bind_listener(loop, tab, i) < 0)
			tab->failed = 1;	/* said; @done says it again */
	*tabp = tab;
	/* Nothing left in flight: answer on a later turn all the same. */
	if (--tab->pending == 0) {
		tab->pending = 1;
		if ((r = aloop_call_soon(loop, table_finish, tab, NULL)) < 0) {
			*tabp = NULL;
			sockets_free(tab);
			return r;
		}
		tab->pending = 0;
	}
	return 0;
}

void
sockets_free(struct socktab *tab)
{
	if (tab == NULL)
		return;
	for (size_t i = 0; tab->socks != NULL && i < tab->cfg->nlisteners;
	    i++) {
		size_t n = (tab->shared[i] ? 1 : tab->nslots) * tab->naddr[i];

		for (size_t k = 0; tab->socks[i] != NULL && k < n; k++)
			msock_unref(tab->socks[i][k]);
		free(tab->socks[i]);
	}
	free(tab->socks);
	free(tab->shared);
	free(tab->naddr);
	free(tab);
}

size_t
sockets_fds(const struct socktab *tab, size_t l, unsigned slot, int *fds,
    size_t max)
{
	size_t naddr = tab->naddr[l];
	size_t n = 0;

	if (tab->shared[l])
		slot = 0;
	for (size_t a = 0; a < naddr; a++) {
		const struct msock *m = tab->socks[l][slot * naddr + a];

		for (size_t i = 0; m != NULL && i < m->nfds && n < max; i++)
			fds[n++] = m->fds[i];
	}
	return n;
}

/* --------------------------------------------------- binary upgrade */

static void
set_cloexec(int fd, int on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl != -1)
		(void)fcntl(fd, F_SETFD, on ? fl | FD_CLOEXEC :
		    fl & ~FD_CLOEXEC);
}

char *
sockets_export(int **fdsp, size_t *nfdsp)
{
	char *buf = NULL;
	size_t len = 0, n = 0;
	int *fds;
	FILE *f;

	for (struct msock *m = all; m != NULL; m = m->next)
		n += m->nfds;
	if ((fds = malloc((n + 2) * sizeof(*fds))) == NULL)
		return NULL;
	if ((f = open_memstream(&buf, &len)) == NULL) {
		free(fds);
		return NULL;
	}
	n = 0;
	/* One line a socket set: "fd,fd key". */
	for (struct msock *m = all; m != NULL; m = m->next) {
		if (m->nfds == 0)
			continue;
		for (size_t i = 0; i < m->nfds; i++) {
			fprintf(f, "%s%d", i > 0 ? "," : "", m->fds[i]);
			set_cloexec(m->fds[i], 0);
			fds[n++] = m->fds[i];
		}
		fprintf(f, " %s\n", m->key);
	}
	if (fclose(f) != 0) {
		free(buf);
		free(fds);
		return NULL;
	}
	*fdsp = fds;
	*nfdsp = n;
	return buf;
}

void
sockets_unexport(void)
{
	for (struct msock *m = all; m != NULL; m = m->next)
		for (size_t i = 0; i < m->nfds; i++)
			set_cloexec(m->fds[i], 1);
}

static int
inherit_line(char *line)
{
	struct inherited *h;
	char *key = strchr(line, ' '), *p, *end;
	long fd;

	if (key == NULL)
		return ALOOP_EINVAL;
	*key++ = '\0';
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->key = strdup(key)) == NULL) {
		free(h);
		return ALOOP_ENOMEM;
	}
	for (p = line; *p != '\0' && h->nfds < MSOCK_MAX; p = end) {
		fd = strtol(p, &end, 10);
		if (end == p || fd < 3 || fcntl((int)fd, F_GETFD) == -1) {
			aloop_log(ALOOP_LOG_WARNING, "inherited socket %s: "
			    "descriptor %.*s is not open", h->key,
			    (int)(end - p), p);
			break;
		}
		set_cloexec((int)fd, 1);
		h->fds[h->nfds++] = (int)fd;
		if (*end == ',')
			end++;
	}
	h->next = inherited;
	inherited = h;
	return 0;
}

int
sockets_inherit(void)
{
	const char *env = getenv("ALOOPD_INHERIT");
	char *copy, *line, *save = NULL;
	int n = 0;

	/* systemd's sockets, found by the listener's name. */
	for (size_t i = 0; i < activation_count(); i++) {
		struct inherited *h;
		char key[512];

		snprintf(key, sizeof(key), "systemd %s", activation_name(i));
		for (h = inherited; h != NULL; h = h->next)
			if (strcmp(h->key, key) == 0)
				break;
		if (h == NULL) {
			if ((h = calloc(1, sizeof(*h))) == NULL ||
			    (h->key = strdup(key)) == NULL) {
				free(h);
				return ALOOP_ENOMEM;
			}
			h->next = inherited;
			inherited = h;
		}
		if (h->nfds < MSOCK_MAX) {
			/* A copy: the activation module keeps its own. */
			int fd = fcntl(activation_fd(i), F_DUPFD_CLOEXEC, 3);

			if (fd >= 0)
				h->fds[h->nfds++] = fd;
		}
	}
	if (env == NULL)
		return 0;
	if ((copy = strdup(env)) == NULL)
		return ALOOP_ENOMEM;
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (inherit_line(line) == 0)
			n++;
	free(copy);
	(void)unsetenv("ALOOPD_INHERIT");
	aloop_log(ALOOP_LOG_INFO, "took over %d listening socket set%s", n,
	    n == 1 ? "" : "s");
	return 0;
}

void
sockets_drop_unclaimed(void)
{
	struct inherited *h, *next;

	for (h = inherited; h != NULL; h = next) {
		next = h->next;
		if (!h->claimed) {
			if (strncmp(h->key, "systemd ", 8) == 0)
				aloop_log(ALOOP_LOG_WARNING, "socket activation: "
				    "no listener is named \"%s\"; that socket is "
				    "unused", h->key + 8);
			else
				aloop_log(ALOOP_LOG_INFO, "closing inherited "
				    "socket %s: no listener has it now",
				    h->key);
			for (size_t i = 0; i < h->nfds; i++)
				close(h->fds[i]);
		}
		free(h->key);
		free(h);
	}
	inherited = NULL;
}

void
sockets_disown_paths(void)
{
	paths_disowned = 1;
}

void
sockets_close_all(void)
{
	struct msock *m;

	while ((m = all) != NULL) {
		all = m->next;
		msock_close(m);
	}
	sockets_drop_unclaimed();
}
