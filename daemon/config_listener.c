/*
 * aloop.conf's listeners: each entry's settings by table, its listen
 * addresses ("host:port", "[v6]:port", "*:port", "unix:/path") and its TLS
 * group, checked against one another and against the files they name.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <libconfig.h>

#include <aloop/aloop.h>
#include <aloop/plugin.h>

#include "config-int.h"
#include "config-parse-int.h"
#include "config_listener.h"
#include "plugin_loader.h"
#include "settings-int.h"
#include "ticket_secret.h"
#include "tls_cache.h"

/* ---------------------------------------------------- listen addresses */

static int
valid_hostname(const char *h)
{
	int digits_and_dots = 1;

	for (const char *c = h; *c != '\0'; c++) {
		if (!((*c >= '0' && *c <= '9') || *c == '.'))
			digits_and_dots = 0;
		if (!(*c == '-' || *c == '.' || (*c >= '0' && *c <= '9') ||
		    (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
			return 0;
	}
	/* 999.1.1.1 looks like an address and must be one. */
	if (digits_and_dots) {
		struct in_addr a;

		return inet_pton(AF_INET, h, &a) == 1;
	}
	return h[0] != '\0' && strlen(h) <= 253;
}

const char *
config_parse_address(const char *text, struct config_address *a)
{
	char host[256], *end;
	const char *colon, *port;
	struct sockaddr_un sun;
	struct in6_addr a6;
	unsigned long p;
	size_t hlen;

	memset(a, 0, sizeof(*a));
	if (strncmp(text, "unix:", 5) == 0) {
		a->kind = CONFIG_ADDR_UNIX;
		if (text[5] != '/')
			return "a unix socket path must be absolute";
		if (strlen(text + 5) >= sizeof(sun.sun_path))
			return "unix socket path too long";
		if ((a->path = strdup(text + 5)) == NULL)
			return "out of memory";
		return NULL;
	}
	a->kind = CONFIG_ADDR_INET;
	if (text[0] == '[') {
		if ((end = strchr(text, ']')) == NULL)
			return "missing \"]\" after the IPv6 address";
		hlen = (size_t)(end - text - 1);
		if (hlen >= sizeof(host))
			return "not an IPv6 address";
		memcpy(host, text + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return "not an IPv6 address";
		if (end[1] != ':')
			return "missing \":port\"";
		port = end + 2;
	} else {
		if ((colon = strrchr(text, ':')) == NULL)
			return "missing \":port\"";
		if (strchr(text, ':') != colon)
			return "an IPv6 address needs brackets: \"[::1]:port\"";
		hlen = (size_t)(colon - text);
		if (hlen == 0)
			return "missing host (\"*:port\" is every interface)";
		if (hlen >= sizeof(host))
			return "host name too long";
		memcpy(host, text, hlen);
		host[hlen] = '\0';
		if (strcmp(host, "*") != 0 && !valid_hostname(host))
			return "not an IPv4 address or a host name";
		port = colon + 1;
	}
	if (port[0] < '0' || port[0] > '9')
		return "port must be a number";
	errno = 0;
	p = strtoul(port, &end, 10);
	if (*end != '\0')
		return "port must be a number";
	if (errno == ERANGE || p < 1 || p > 65535)
		return "port out of range";
	a->port_num = (unsigned)p;
	if (asprintf(&a->port, "%lu", p) < 0) {
		a->port = NULL;
		return "out of memory";
	}
	if (strcmp(host, "*") != 0 && (a->host = strdup(host)) == NULL)
		return "out of memory";
	return NULL;
}

void
config_free_address(struct config_address *a)
{
	free(a->text);
	free(a->host);
	free(a->port);
	free(a->path);
}

static void
parse_listen(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;
	unsigned n;

	if (!config_want_list(s, "addresses"))
		return;
	if ((n = (unsigned)config_setting_length(s)) == 0) {
		config_report(s, NULL, "needs at least one address");
		return;
	}
	if ((l->listen = calloc(n, sizeof(*l->listen))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct config_address *a = &l->listen[l->nlisten];
		const char *v, *what;

		if ((v = config_want_string(e, 1)) == NULL)
			continue;
		if ((what = config_parse_address(v, a)) == NULL &&
		    (a->text = strdup(v)) == NULL)
			what = "out of memory";
		a->index = i;
		if (what != NULL) {
			config_report(e, NULL, "%s", what);
			config_free_address(a);
			memset(a, 0, sizeof(*a));
			continue;
		}
		l->nlisten++;
	}
}

/* ------------------------------------------------------------------ TLS */

static const struct enum_name tls_verify_modes[] = {
	{ "none", ALOOP_TLS_VERIFY_NONE },
	{ "optional", ALOOP_TLS_VERIFY_OPTIONAL },
	{ "required", ALOOP_TLS_VERIFY_REQUIRED },
	{ NULL, 0 },
};

static void
parse_min_version(struct config *cfg, config_setting_t *s,
    const struct spec *sp, void *obj)
{
	struct config_tls *t = obj;
	const char *v;

	if ((v = config_want_string(s, 1)) == NULL)
		return;
	if (strcmp(v, "TLSv1.2") != 0 && strcmp(v, "TLSv1.3") != 0) {
		config_report(s, NULL, "expected \"TLSv1.2\" or \"TLSv1.3\"");
		return;
	}
	config_set_string(cfg, s, &t->min_version, strdup(v));
}

static void
parse_alpn(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_tls *t = obj;
	unsigned n;

	if (!config_want_list(s, "protocol names"))
		return;
	n = (unsigned)config_setting_length(s);
	if ((t->alpn = calloc(n + 1, sizeof(char *))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = config_want_string(e, 1);

		if (v == NULL)
			continue;
		/* The wire format gives each name a one-byte length. */
		if (strlen(v) > 255) {
			config_report(e, NULL, "longer than 255 bytes");
			continue;
		}
		if ((t->alpn[t->nalpn] = strdup(v)) == NULL) {
			config_report(e, NULL, "out of memory");
			continue;
		}
		t->nalpn++;
	}
}

#define S(f)	offsetof(struct config_sni, f)
static const struct spec sni_specs[] = {
	{ SPEC("certificate", T_PATH, S(certificate)), .required = 1 },
	{ SPEC("key", T_PATH, S(key)), .required = 1 },
	{ SPEC("ocsp_response", T_PATH, S(ocsp_response)) },
	{ .name = NULL },
};
#undef S

static void
parse_sni(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_tls *t = obj;
	unsigned n;

	if (!config_setting_is_list(s)) {
		config_report(s, NULL, "expected a list of groups "
		    "( { certificate = ...; key = ...; }, ... )");
		return;
	}
	n = (unsigned)config_setting_length(s);
	if ((t->sni = calloc(n, sizeof(*t->sni))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++)
		config_parse_group(cfg, config_setting_get_elem(s, i),
		    sni_specs, &t->sni[t->nsni++]);
}

#define TL(f)	offsetof(struct config_tls, f)
static const struct spec tls_specs[] = {
	{ SPEC("certificate", T_PATH, TL(certificate)), .required = 1 },
	{ SPEC("key", T_PATH, TL(key)), .required = 1 },
	{ SPEC("ca", T_PATH, TL(ca)) },
	{ SPEC("verify", T_ENUM, TL(verify)), .names = tls_verify_modes,
	    .def = ALOOP_TLS_VERIFY_NONE },
	{ SPEC("min_version", T_CUSTOM, TL(min_version)),
	    .parse = parse_min_version },
	{ SPEC("ciphers", T_STRING, TL(ciphers)) },
	{ SPEC("ciphersuites", T_STRING, TL(ciphersuites)) },
	{ SPEC("alpn", T_CUSTOM, TL(alpn)), .parse = parse_alpn },
	{ SPEC("sni", T_CUSTOM, TL(sni)), .parse = parse_sni },
	{ SPEC("session_tickets", T_BOOL, TL(session_tickets)), .def = 1 },
	{ SPEC("session_cache", T_ULONG, TL(session_cache)), .min = 0,
	    .max = 10000000, .def = 0 },
	{ SPEC("session_timeout", T_SECONDS, TL(session_timeout)), .min = 1,
	    .max = 604800, .ddef = 7200 },
	{ SPEC("ocsp_response", T_PATH, TL(ocsp_response)) },
	{ .name = NULL },
};
#undef TL

static void
free_tls(struct config_tls *t)
{
	if (t == NULL)
		return;
	free(t->certificate);
	free(t->key);
	free(t->ca);
	free(t->min_version);
	free(t->ciphers);
	free(t->ciphersuites);
	for (size_t i = 0; i < t->nalpn; i++)
		free(t->alpn[i]);
	free(t->alpn);
	for (size_t i = 0; i < t->nsni; i++) {
		free(t->sni[i].certificate);
		free(t->sni[i].key);
		free(t->sni[i].ocsp_response);
	}
	free(t->ocsp_response);
	free(t->sni);
	aloop_tls_context_release(t->ctx);
	free(t);
}

/*
 * Whether @file can be read as a TLS file.  OpenSSL opens it with fopen:
 * a FIFO would block it (and the master's reload) for good, a device
 * feed it without end; so it must be a regular file, and this open must
 * not block either.
 */
static int
readable(const config_setting_t *node, const char *file)
{
	struct stat st;
	int fd;

	if ((fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY)) < 0) {
		config_report(node, NULL, "cannot read %s: %s", file,
		    strerror(errno));
		return 0;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		config_report(node, NULL, "cannot read %s: not a regular "
		    "file", file);
		close(fd);
		return 0;
	}
	close(fd);
	return 1;
}

/*
 * Report what the library said of the setting @name of @group that it
 * refused.  Its message starts with the file or list at fault (@value),
 * which the report shows already.
 */
static int
refused(const config_setting_t *group, const char *name, const char *value,
    const struct aloop_tls_context *ctx, int r)
{
	const char *why = aloop_tls_context_last_error(ctx);
	size_t n = value != NULL ? strlen(value) : 0;

	if (n > 0 && strncmp(why, value, n) == 0 && strncmp(why + n, ": ",
	    2) == 0)
		why += n + 2;
	config_report(config_setting_get_member(group, name), NULL, "%s",
	    why[0] != '\0' ? why : aloop_strerror(r));
	return ALOOP_ECONFIG;
}

/*
 * Load a certificate and its key into @ctx as a listener will serve them;
 * the message names the file at fault, so blame the setting that names it.
 */
static int
load_pair(struct aloop_tls_context *ctx, const config_setting_t *group,
    const char *cert, const char *key,
    int (*load)(struct aloop_tls_context *, const char *, const char *))
{
	const char *why;
	int r;

	if (cert == NULL || key == NULL ||
	    !readable(config_setting_get_member(group, "certificate"), cert) ||
	    !readable(config_setting_get_member(group, "key"), key))
		return ALOOP_ECONFIG;
	if ((r = load(ctx, cert, key)) == 0)
		return 0;
	why = aloop_tls_context_last_error(ctx);
	if (strncmp(why, key, strlen(key)) == 0)
		return refused(group, "key", key, ctx, r);
	return refused(group, "certificate", cert, ctx, r);
}

/*
 * Tickets resume only where the same settings apply: the scope names
 * what decides who may connect, so that a ticket from a listener that
 * checks no client certificate never resumes on one that does, nor one
 * from before a reload that turned the check on.  The listener is not in
 * it, since listeners with the same settings share the context: each
 * serves its connections with a session id context of its own instead
 * (listener.c, ssl_session_scope), which OpenSSL checks on every ticket
 * and cached session, so a session still resumes on its own listener
 * only.
 */
static int
set_tickets(struct aloop_tls_context *ctx, const struct config_tls *t)
{
	const unsigned char *secret;
	char *scope;
	size_t len;
	int r;

	if (!ticket_secret_wanted())
		return 0;	/* aloopd -t: OpenSSL's own keys will do */
	if ((secret = ticket_secret_get(&len)) == NULL)
		return ALOOP_ENOMEM;
	if (asprintf(&scope, "verify=%d ca=%s", t->verify,
	    t->ca != NULL ? t->ca : "") < 0)
		return ALOOP_ENOMEM;
	r = aloop_tls_context_set_ticket_secret(ctx, secret, len, scope);
	free(scope);
	return r;
}

/* Staple @file to certificate @which of @ctx (0, or the SNI one's + 1). */
static int
load_ocsp(struct aloop_tls_context *ctx, const config_setting_t *group,
    size_t which, const char *file)
{
	int r;

	if (!readable(config_setting_get_member(group, "ocsp_response"),
	    file))
		return ALOOP_ECONFIG;
	if ((r = aloop_tls_context_load_ocsp_response(ctx, which, file)) < 0)
		return refused(group, "ocsp_response", file, ctx, r);
	return 0;
}

/*
 * Build the listener's TLS context now, with the library that serves it,
 * so that `aloopd -t`, a reload and a start accept and refuse exactly the
 * same settings (a key of another certificate, a cipher list with no AEAD
 * cipher for TLS 1.2, ...).  Every setting is tried, so every problem is
 * reported at once.  The context is the config's; workers share it.
 */
static struct aloop_tls_context *
build_tls(const config_setting_t *s, const struct config_tls *t)
{
	const config_setting_t *sni = config_setting_get_member(s, "sni");
	struct aloop_tls_context *ctx;
	int r, failed = 0, ok;
	size_t nsni = 0;

	if ((r = aloop_tls_context_new(ALOOP_TLS_SERVER, &ctx)) < 0) {
		config_report(s, NULL, "cannot make a TLS context: %s",
		    aloop_strerror(r));
		return NULL;
	}
	ok = load_pair(ctx, s, t->certificate, t->key,
	    aloop_tls_context_load_cert_chain) == 0;
	failed |= !ok;
	if (ok && t->ocsp_response != NULL)
		failed |= load_ocsp(ctx, s, 0, t->ocsp_response) < 0;
	for (size_t i = 0; i < t->nsni; i++) {
		const config_setting_t *e = config_setting_get_elem(sni,
		    (unsigned)i);

		if (load_pair(ctx, e, t->sni[i].certificate, t->sni[i].key,
		    aloop_tls_context_add_sni_cert) < 0) {
			failed = 1;
			continue;
		}
		/* The library numbers the SNI certificates it took. */
		nsni++;
		if (t->sni[i].ocsp_response != NULL)
			failed |= load_ocsp(ctx, e, nsni,
			    t->sni[i].ocsp_response) < 0;
	}
	if ((r = aloop_tls_context_set_session_timeout(ctx,
	    (unsigned)(t->session_timeout + 0.5))) < 0)
		failed |= refused(s, "session_timeout", NULL, ctx, r) < 0;
	aloop_tls_context_set_session_cache_size(ctx, t->session_cache);
	if (!t->session_tickets)
		(void)aloop_tls_context_set_session_tickets(ctx, 0);
	else if ((r = set_tickets(ctx, t)) < 0) {
		config_report(s, NULL, "session tickets: %s",
		    aloop_strerror(r));
		failed = 1;
	}
	if (t->ca != NULL) {
		if (!readable(config_setting_get_member(s, "ca"), t->ca))
			failed = 1;
		else if ((r = aloop_tls_context_load_verify_locations(ctx,
		    t->ca, NULL)) < 0)
			failed |= refused(s, "ca", t->ca, ctx, r) < 0;
	}
	if (t->verify != ALOOP_TLS_VERIFY_NONE && t->ca == NULL) {
		config_report(config_setting_get_member(s, "verify"), NULL,
		    "needs a \"ca\" to check client certificates against");
		failed = 1;
	} else if ((r = aloop_tls_context_set_verify(ctx, t->verify)) < 0)
		failed |= refused(s, "verify", NULL, ctx, r) < 0;
	if (t->min_version != NULL && (r =
	    aloop_tls_context_set_min_version(ctx, t->min_version)) < 0)
		failed |= refused(s, "min_version", t->min_version, ctx,
		    r) < 0;
	if (t->ciphers != NULL &&
	    (r = aloop_tls_context_set_ciphers(ctx, t->ciphers)) < 0)
		failed |= refused(s, "ciphers", t->ciphers, ctx, r) < 0;
	if (t->ciphersuites != NULL &&
	    (r = aloop_tls_context_set_ciphersuites(ctx, t->ciphersuites)) < 0)
		failed |= refused(s, "ciphersuites", t->ciphersuites, ctx,
		    r) < 0;
	if (t->nalpn > 0 && (r = aloop_tls_context_set_alpn_protocols(ctx,
	    (const char *const *)t->alpn, t->nalpn)) < 0)
		failed |= refused(s, "alpn", NULL, ctx, r) < 0;
	if (failed) {
		aloop_tls_context_release(ctx);
		return NULL;
	}
	return ctx;
}

/* The bytes a context's key is the digest of; see tls_key(). */
struct keybuf {
	unsigned char	*p;
	size_t		 len, cap;
	int		 failed;	/* no key: a file unread, no memory */
};

static void
key_add(struct keybuf *b, const void *data, size_t len)
{
	if (b->failed)
		return;
	if (b->len + len > b->cap) {
		size_t cap = (b->len + len) * 2;
		unsigned char *p = realloc(b->p, cap);

		if (p == NULL) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void
key_num(struct keybuf *b, unsigned long long v)
{
	key_add(b, &v, sizeof(v));
}

/* Length first, so that no two lists of strings read alike; NULL too. */
static void
key_str(struct keybuf *b, const char *v)
{
	key_num(b, v != NULL ? strlen(v) + 1 : 0);
	if (v != NULL)
		key_add(b, v, strlen(v));
}

/* A file: its name (messages name it) and what it holds. */
static void
key_file(struct keybuf *b, const char *path)
{
	unsigned char d[32];

	key_str(b, path);
	if (path == NULL || b->failed)
		return;
	if (tls_cache_file(path, d) != 0)
		b->failed = 1;
	else
		key_add(b, d, sizeof(d));
}

/*
 * What @t's context is built from: every setting build_tls() applies,
 * and the contents of every file it reads.  Listeners with the same key
 * share a context, and a reload keeps the context of a key it saw
 * before.  0, or -1 when there is none (a file that cannot be read: the
 * build reports why).
 */
static int
tls_key(const struct config_tls *t, struct tls_key *key)
{
	struct keybuf b = { NULL, 0, 0, 0 };

	/* Bump the version when build_tls() applies something new. */
	key_str(&b, "aloopd tls context v1");
	key_file(&b, t->certificate);
	key_file(&b, t->key);
	key_file(&b, t->ocsp_response);
	key_num(&b, t->nsni);
	for (size_t i = 0; i < t->nsni; i++) {
		key_file(&b, t->sni[i].certificate);
		key_file(&b, t->sni[i].key);
		key_file(&b, t->sni[i].ocsp_response);
	}
	key_file(&b, t->ca);
	key_num(&b, (unsigned long long)t->verify);
	key_str(&b, t->min_version);
	key_str(&b, t->ciphers);
	key_str(&b, t->ciphersuites);
	key_num(&b, t->nalpn);
	for (size_t i = 0; i < t->nalpn; i++)
		key_str(&b, t->alpn[i]);
	key_num(&b, (unsigned long long)t->session_tickets);
	key_num(&b, t->session_cache);
	key_num(&b, (unsigned long long)(t->session_timeout + 0.5));
	/* No secret (aloopd -t) builds a context without our ticket keys. */
	key_num(&b, (unsigned long long)ticket_secret_wanted());
	if (!b.failed && aloop_tls_sha256(b.p, b.len, key->d) != 0)
		b.failed = 1;
	free(b.p);
	return b.failed ? -1 : 0;
}

/*
 * The context of the listener's TLS settings: the one of a listener
 * before it with the same settings and files, in this configuration or
 * the running one, or else a new one.  The listener itself is not part
 * of the key: its name, which tells it from every other, would leave
 * nothing to share.  Its sessions are kept its own per connection
 * instead (see set_tickets()).  A shared context shares its session
 * cache too, whose size is then for all its listeners together.
 */
static struct aloop_tls_context *
listener_tls(const config_setting_t *s, const struct config_tls *t)
{
	struct aloop_tls_context *ctx;
	struct tls_key key;
	int keyed = tls_key(t, &key) == 0;

	if (keyed && (ctx = tls_cache_get(&key)) != NULL)
		return ctx;
	if ((ctx = build_tls(s, t)) != NULL && keyed)
		tls_cache_put(&key, ctx);
	return ctx;
}

static void
parse_tls(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;
	size_t before = cfg->nerrors;

	if ((l->tls = calloc(1, sizeof(*l->tls))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	config_parse_group(cfg, s, tls_specs, l->tls);
	if (l->tls->min_version == NULL &&
	    (l->tls->min_version = strdup("TLSv1.2")) == NULL)
		config_report(s, NULL, "out of memory");
	/* Checking files named by a broken group would only add noise. */
	if (cfg->nerrors == before)
		l->tls->ctx = listener_tls(s, l->tls);
}

/* ------------------------------------------------------------ listeners */

static int
valid_listener_name(const char *n)
{
	/* It doubles as systemd's FileDescriptorName (no ':', <= 255). */
	if (strlen(n) > 255)
		return 0;
	for (const char *c = n; *c != '\0'; c++)
		if (!(*c == '-' || *c == '_' || *c == '.' ||
		    (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= 'A' && *c <= 'Z')))
			return 0;
	return 1;
}

static void
parse_name(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;
	struct strmap_entry *e;
	const char *v;

	if ((v = config_want_string(s, 1)) == NULL)
		return;
	if (!valid_listener_name(v)) {
		config_report(s, NULL, "use letters, digits, '-', '_' and '.'");
		return;
	}
	switch (strmap_add(&priv_of(cfg)->names, v,
	    (size_t)(l - cfg->listeners), &e)) {
	case 0:
		config_report(s, NULL, "name already used by listeners[%zu]",
		    e->first);
		return;
	case 1:
		break;
	default:
		config_report(s, NULL, "out of memory");
		return;
	}
	config_set_string(cfg, s, &l->name, strdup(v));
}

static void
parse_mode(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;
	const char *v;
	char *end;
	long m;

	/* libconfig has no octal numbers, and 660 would silently be 01224. */
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_report(s, NULL, "expected an octal mode in a string, "
		    "like \"0660\"");
		return;
	}
	v = config_setting_get_string(s);
	m = strtol(v, &end, 8);
	if (v[0] < '0' || v[0] > '7' || *end != '\0' || m < 0 || m > 0777) {
		config_report(s, NULL, "expected an octal mode from \"0\" to "
		    "\"0777\"");
		return;
	}
	l->mode = (int)m;
}

static void
parse_settings(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	struct config_listener *l = obj;

	if (!config_setting_is_group(s)) {
		config_report(s, NULL, "expected a group { ... }");
		return;
	}
	l->settings = SETTINGS_NODE(s);
}

static void
parse_allow(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	(void)sp;
	access_parse(cfg, s, 1, &((struct config_listener *)obj)->access);
}

static void
parse_deny(struct config *cfg, config_setting_t *s, const struct spec *sp,
    void *obj)
{
	(void)sp;
	access_parse(cfg, s, 0, &((struct config_listener *)obj)->access);
}

static const struct enum_name listener_types[] = {
	{ "tcp", CONFIG_TCP }, { "udp", CONFIG_UDP }, { NULL, 0 },
};

static const struct enum_name overflow_names[] = {
	{ "close", CONFIG_OVERFLOW_CLOSE }, { "wait", CONFIG_OVERFLOW_WAIT },
	{ NULL, 0 },
};

/* Settings that mean something for one type of listener only. */
static const char *const stream_only[] = {
	"handshake_timeout", "first_byte_timeout", "write_timeout",
	"overflow", "max_connections_per_source", "connection_rate",
	"connection_rate_per_source", "proxy_protocol",
	"proxy_protocol_timeout", NULL,
};
static const char *const datagram_only[] = {
	"datagram_rate_per_source", NULL,
};

#define L(f)	offsetof(struct config_listener, f)
static const struct spec listener_specs[] = {
	{ SPEC("name", T_CUSTOM, L(name)), .parse = parse_name, .required = 1 },
	{ SPEC("protocol", T_STRING, L(protocol)), .required = 1 },
	{ SPEC("listen", T_CUSTOM, L(listen)), .parse = parse_listen,
	    .required = 1 },
	{ SPEC("type", T_ENUM, L(type)), .names = listener_types,
	    .def = CONFIG_TCP },
	{ SPEC("backlog", T_INT, L(backlog)), .min = 1, .max = 65535,
	    .def = 511 },
	{ SPEC("reuse_port", T_BOOL, L(reuse_port)), .def = 1 },
	{ SPEC("tcp_nodelay", T_BOOL, L(tcp_nodelay)), .def = 1 },
	{ SPEC("keepalive", T_BOOL, L(keepalive)), .def = 0 },
	{ SPEC("mode", T_CUSTOM, L(mode)), .parse = parse_mode },
	{ SPEC("owner", T_STRING, L(owner)) },
	{ SPEC("tls", T_CUSTOM, L(tls)), .parse = parse_tls },
	{ SPEC("max_connections", T_ULONG, L(max_connections)), .min = 0,
	    .max = 10000000, .def = 0 },
	{ SPEC("idle_timeout", T_SECONDS, L(idle_timeout)), .min = 0,
	    .max = 86400, .ddef = 0 },
	/* A handshake is always bounded: there is no 0 for "none". */
	{ SPEC("handshake_timeout", T_SECONDS, L(handshake_timeout)),
	    .min = 1, .max = 3600, .ddef = 10 },
	{ SPEC("first_byte_timeout", T_SECONDS, L(first_byte_timeout)),
	    .min = 0, .max = 86400, .ddef = 0 },
	{ SPEC("write_timeout", T_SECONDS, L(write_timeout)), .min = 0,
	    .max = 86400, .ddef = 60 },
	{ SPEC("overflow", T_ENUM, L(overflow)), .names = overflow_names,
	    .def = CONFIG_OVERFLOW_CLOSE },
	{ SPEC("max_connections_per_source", T_ULONG, L(max_per_source)),
	    .min = 0, .max = 1000000, .def = 0 },
	{ SPEC("connection_rate", T_ULONG, L(connection_rate)), .min = 0,
	    .max = 10000000, .def = 0 },
	{ SPEC("connection_rate_per_source", T_ULONG,
	    L(connection_rate_per_source)), .min = 0, .max = 10000000,
	    .def = 0 },
	{ SPEC("datagram_rate_per_source", T_ULONG,
	    L(datagram_rate_per_source)), .min = 0, .max = 10000000,
	    .def = 0 },
	{ SPEC("access_log", T_BOOL, L(access_log)), .def = 1 },
	{ SPEC("allow", T_CUSTOM, L(access)), .parse = parse_allow },
	{ SPEC("deny", T_CUSTOM, L(access)), .parse = parse_deny },
	{ SPEC("proxy_protocol", T_BOOL, L(proxy_protocol)), .def = 0 },
	/*
	 * Bounded, as a handshake is; the spec asks for at least 3 s to
	 * cover a TCP retransmission, and a balancer sends the header
	 * with its first segment.
	 */
	{ SPEC("proxy_protocol_timeout", T_SECONDS,
	    L(proxy_protocol_timeout)), .min = 1, .max = 3600, .ddef = 5 },
	{ SPEC("settings", T_CUSTOM, L(settings)), .parse = parse_settings },
	{ .name = NULL },
};
#undef L

/*
 * Would an address take a socket that an earlier one takes?  "*" overlaps
 * every host of its port and type, so an address is known by up to two
 * keys: the exact one ("e" type port host, "*" for every host), and for
 * an INET address also "a" type port, which any host of that port takes.
 * A unix socket is its path, whatever the type.  Each key remembers the
 * first listener and the last that took it: linear in the addresses,
 * where comparing each with every earlier one was quadratic.
 */
/*
 * The keys of @a into @exact (and @any, "" when it has none), in the
 * caller's buffers of @size bytes.  -ENAMETOOLONG if they do not fit.
 */
static int
address_keys(const struct config_address *a, int type, char *exact,
    char *any, size_t size)
{
	int n;

	any[0] = '\0';
	if (a->kind == CONFIG_ADDR_UNIX)
		n = snprintf(exact, size, "u%s", a->path);
	else if ((n = snprintf(exact, size, "e%d:%u:%s", type, a->port_num,
	    a->host != NULL ? a->host : "*")) >= 0 && (size_t)n < size)
		n = snprintf(any, size, "a%d:%u", type, a->port_num);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Whether entry @e says an earlier address clashes; see address_seen. */
static void
clash(const struct strmap_entry *e, size_t idx, int *rc, size_t *other)
{
	if (e == NULL || *rc == 1)
		return;
	if (e->last == idx)
		*rc = 1;
	else if (*rc == 0 || e->first < *other) {
		*other = e->first;
		*rc = 2;
	}
}

/*
 * Check address @a of listener @idx against every earlier one, then add
 * it.  0 if it is new; 1 if listener @idx has it already; else 2 with
 * *@other the earliest other listener that takes it.  ALOOP_ENOMEM, or
 * -ENAMETOOLONG.
 */
static int
address_seen(struct config *cfg, size_t idx, const struct config_address *a,
    int type, size_t *other)
{
	struct strmap *m = &priv_of(cfg)->addrs;
	struct strmap_entry *ex, *an;
	/* A host name is at most 255 bytes, a socket path less still. */
	char exact[320], any[64], wild[64];
	int rc = 0, added;

	if ((rc = address_keys(a, type, exact, any, sizeof(exact))) != 0)
		return rc;
	if ((added = strmap_add(m, exact, idx, &ex)) < 0)
		return ALOOP_ENOMEM;
	/* A host clashes with its own key and "*"; "*" with any host. */
	if (added == 0 && (a->kind == CONFIG_ADDR_UNIX || a->host != NULL))
		clash(ex, idx, &rc, other);
	if (a->kind == CONFIG_ADDR_INET && a->host != NULL) {
		snprintf(wild, sizeof(wild), "e%d:%u:*", type, a->port_num);
		clash(strmap_get(m, wild), idx, &rc, other);
	}
	if (any[0] != '\0') {
		if ((added = strmap_add(m, any, idx, &an)) < 0)
			return ALOOP_ENOMEM;
		if (added == 0 && a->host == NULL)
			clash(an, idx, &rc, other);
		an->last = idx;
	}
	ex->last = idx;
	return rc;
}

/* Rules that could never match one of the listener's peers. */
static void
check_access(config_setting_t *s, const struct config_listener *l)
{
	int has_unix = 0, has_inet = 0;

	for (size_t i = 0; i < l->nlisten; i++) {
		if (l->listen[i].kind == CONFIG_ADDR_UNIX)
			has_unix = 1;
		else
			has_inet = 1;
	}
	for (size_t i = 0; i < l->access.n; i++) {
		int kind = l->access.rules[i].kind;
		config_setting_t *m = config_setting_get_member(s,
		    l->access.rules[i].allow ? "allow" : "deny");

		if (kind == ACCESS_INET && !has_inet) {
			config_report(m, NULL, "addresses and prefixes need an "
			    "IP address to listen on");
			return;
		}
		if ((kind == ACCESS_UID || kind == ACCESS_GID) && !has_unix) {
			config_report(m, NULL, "uid, gid, user and group need a "
			    "\"unix:\" address to listen on");
			return;
		}
	}
}

/* What only makes sense with all of a listener's settings in hand. */
static void
check_listener(struct config *cfg, config_setting_t *s, size_t idx)
{
	const struct config_listener *ol;
	struct config_listener *l = &cfg->listeners[idx];
	config_setting_t *ls = config_setting_get_member(s, "listen");
	config_setting_t *m;
	size_t other = 0;
	int has_unix = 0;

	for (size_t i = 0; i < l->nlisten; i++) {
		const struct config_address *a = &l->listen[i];
		config_setting_t *e = config_setting_get_elem(ls, a->index);

		if (a->kind == CONFIG_ADDR_UNIX) {
			has_unix = 1;
			if (l->type == CONFIG_UDP)
				config_report(e, NULL, "unix sockets are "
				    "served with type \"tcp\" only");
		}
		switch (address_seen(cfg, idx, a, l->type, &other)) {
		case 0:
			break;
		case 1:
			config_report(e, NULL, "listed twice");
			break;
		case 2:
			ol = &cfg->listeners[other];
			config_report(e, NULL, "already used by listener "
			    "\"%s\"", ol->name != NULL ? ol->name : "?");
			break;
		case -ENAMETOOLONG:
			config_report(e, NULL, "address too long");
			break;
		default:
			config_report(e, NULL, "out of memory");
			break;
		}
	}
	if (l->tls != NULL && l->type != CONFIG_TCP)
		config_report(config_setting_get_member(s, "tls"), NULL,
		    "TLS needs type \"tcp\" (there is no DTLS)");
	for (const char *const *n = l->type == CONFIG_TCP ? datagram_only :
	    stream_only; *n != NULL; n++)
		if ((m = config_setting_get_member(s, *n)) != NULL)
			config_report(m, NULL, "only for type \"%s\"",
			    l->type == CONFIG_TCP ? "udp" : "tcp");
	if (l->tls == NULL && l->type == CONFIG_TCP &&
	    (m = config_setting_get_member(s, "handshake_timeout")) != NULL)
		config_report(m, NULL, "only with tls");
	if (!l->proxy_protocol && l->type == CONFIG_TCP &&
	    (m = config_setting_get_member(s, "proxy_protocol_timeout")) !=
	    NULL)
		config_report(m, NULL, "only with proxy_protocol");
	check_access(s, l);
	if (!has_unix && l->mode != -1)
		config_report(config_setting_get_member(s, "mode"), NULL,
		    "only for \"unix:\" addresses");
	if (!has_unix && l->owner != NULL)
		config_report(config_setting_get_member(s, "owner"), NULL,
		    "only for \"unix:\" addresses");
	else if (l->owner != NULL) {
		char *copy = strdup(l->owner), *group;

		if (copy == NULL) {
			config_report(s, NULL, "out of memory");
			return;
		}
		if ((group = strchr(copy, ':')) != NULL)
			*group++ = '\0';
		config_check_owner(config_setting_get_member(s, "owner"), copy,
		    group);
		free(copy);
	}
	/*
	 * The plugin always gets a group, so that it needs no NULL check;
	 * the tree is ours to extend, and the node is freed with it.
	 */
	if (l->settings == NULL &&
	    config_setting_get_member(s, "settings") == NULL) {
		config_setting_t *g = config_setting_add(s, "settings",
		    CONFIG_TYPE_GROUP);

		if (g == NULL)
			config_report(s, NULL, "out of memory");
		l->settings = SETTINGS_NODE(g);
	}
}

void
config_parse_listeners(struct config *cfg, config_setting_t *s,
    const struct spec *sp, void *obj)
{
	unsigned n, line;

	if (!config_setting_is_list(s)) {
		config_report(s, NULL, "expected a list of groups "
		    "( { name = ...; ... }, ... )");
		return;
	}
	if ((n = (unsigned)config_setting_length(s)) == 0) {
		config_report(s, NULL, "empty: aloopd needs at least one "
		    "listener");
		return;
	}
	if ((cfg->listeners = calloc(n, sizeof(*cfg->listeners))) == NULL) {
		config_report(s, NULL, "out of memory");
		return;
	}
	/* Room for a name and two address keys each; a miss costs time. */
	(void)strmap_reserve(&priv_of(cfg)->names, n);
	(void)strmap_reserve(&priv_of(cfg)->addrs, 2 * (size_t)n);
	for (unsigned i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, i);
		struct config_listener *l = &cfg->listeners[i];

		l->mode = -1;
		config_node_where(e, &l->file, &line);
		l->line = (int)line;
		config_parse_group(cfg, e, listener_specs, l);
		cfg->nlisteners++;
		if (config_setting_is_group(e))
			check_listener(cfg, e, i);
	}
	strmap_clear(&priv_of(cfg)->names);
	strmap_clear(&priv_of(cfg)->addrs);
}

const struct spec *
config_listener_specs(void)
{
	return listener_specs;
}

static int
listed(const char *const *names, const char *name)
{
	for (; *names != NULL; names++)
		if (strcmp(*names, name) == 0)
			return 1;
	return 0;
}

int
config_listener_applies(const config_setting_t *group, const char *name)
{
	const char *type = NULL;
	int udp, on = 0;

	(void)config_setting_lookup_string(group, "type", &type);
	udp = type != NULL && strcmp(type, "udp") == 0;
	if (listed(udp ? stream_only : datagram_only, name))
		return 0;
	if (strcmp(name, "handshake_timeout") == 0)
		return config_setting_get_member(group, "tls") != NULL;
	if (strcmp(name, "proxy_protocol") == 0)
		return !udp;
	if (strcmp(name, "proxy_protocol_timeout") == 0)
		return config_setting_lookup_bool(group, "proxy_protocol",
		    &on) == CONFIG_TRUE && on;
	return 1;
}

void
config_free_listener(struct config_listener *l)
{
	free(l->name);
	free(l->protocol);
	plugin_release(l->plugin);
	for (size_t k = 0; k < l->nlisten; k++)
		config_free_address(&l->listen[k]);
	free(l->listen);
	free(l->owner);
	free_tls(l->tls);
	access_free(&l->access);
}
