/*
 * Reading a PROXY protocol header on an accepted socket before the
 * connection goes on (to a TLS handshake or to the protocol factory), and
 * what a transport then answers about it through get_extra_info.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <aloop/common.h>
#include <aloop/loop.h>

#include "proxy-int.h"
#include "transport-int.h"

/* ------------------------------------------------------------- info */

static const char *const tlv_names[ALOOP__PROXY_NTLV] = {
	[ALOOP__PROXY_ALPN] = "proxy_alpn",
	[ALOOP__PROXY_AUTHORITY] = "proxy_authority",
	[ALOOP__PROXY_UNIQUE_ID] = "proxy_unique_id",
	[ALOOP__PROXY_NETNS] = "proxy_netns",
	[ALOOP__PROXY_SSL_VERSION] = "proxy_ssl_version",
	[ALOOP__PROXY_SSL_CN] = "proxy_ssl_cn",
	[ALOOP__PROXY_SSL_CIPHER] = "proxy_ssl_cipher",
	[ALOOP__PROXY_SSL_SIG_ALG] = "proxy_ssl_sig_alg",
	[ALOOP__PROXY_SSL_KEY_ALG] = "proxy_ssl_key_alg",
};

static const void *
answer(const void *p, size_t n, size_t *len)
{
	if (p != NULL && len != NULL)
		*len = n;
	return p;
}

const void *
aloop__proxy_extra_info(struct aloop_transport *t, const char *name,
    size_t *len, int *found)
{
	const struct aloop__proxy_info *pi = t->proxy;
	int relayed = pi->family != AF_UNSPEC;
	size_t i;

	*found = 1;
	/*
	 * The header says what getpeername and getsockname would have said
	 * had the client come straight here, so those names answer it; the
	 * socket's own addresses, the balancer's, stay under proxied_*.
	 */
	if (strcmp(name, "peername") == 0 && relayed)
		return answer(&pi->src, pi->srclen, len);
	if (strcmp(name, "sockname") == 0 && relayed)
		return answer(&pi->dst, pi->dstlen, len);
	if (strcmp(name, "proxied_peername") == 0)
		return t->ops->get_extra_info != NULL ?
		    t->ops->get_extra_info(t, "peername", len) : NULL;
	if (strcmp(name, "proxied_sockname") == 0)
		return t->ops->get_extra_info != NULL ?
		    t->ops->get_extra_info(t, "sockname", len) : NULL;
	if (strncmp(name, "proxy_", 6) != 0) {
		*found = 0;
		return NULL;
	}
	if (strcmp(name, "proxy_version") == 0)
		return answer(&pi->version, sizeof(pi->version), len);
	if (strcmp(name, "proxy_tlvs") == 0)
		return answer(pi->tlvs, pi->tlvlen, len);
	if (strcmp(name, "proxy_ssl_client") == 0)
		return pi->has_ssl ? answer(&pi->ssl_client,
		    sizeof(pi->ssl_client), len) : NULL;
	if (strcmp(name, "proxy_ssl_verify") == 0)
		return pi->has_ssl ? answer(&pi->ssl_verify,
		    sizeof(pi->ssl_verify), len) : NULL;
	for (i = 0; i < ALOOP__PROXY_NTLV; i++)
		if (strcmp(name, tlv_names[i]) == 0)
			return answer(pi->str[i], pi->len[i], len);
	return NULL;
}

/* ------------------------------------------------------------- wait */

/* Enough for a whole v1 line, or for v2's fixed part until its length. */
#define WAIT_BUF_INITIAL	(ALOOP__PROXY_V1_MAX + 1)

static void
wait_free(struct aloop__proxy_wait *w)
{
	aloop__loop_untrack(w->loop, &w->res);
	aloop_handle_cancel(w->loop, w->deadline);
	if (w->ev != NULL)
		event_free(w->ev);
	free(w->buf);
	free(w);
}

/* The end, either way: @fd closed (reset) unless handed on. */
static void
wait_end(struct aloop__proxy_wait *w, int rc, struct aloop__proxy_info *pi)
{
	int fd = w->fd;

	w->fd = -1;
	if (rc != 0) {
		aloop__sock_close_reset(fd);
		fd = -1;
	}
	/* Nothing of the wait is used after the owner's callback. */
	if (w->ev != NULL)
		(void)event_del(w->ev);
	w->done(w, w->arg, fd, rc, pi);
	wait_free(w);
}

static void
wait_deadline(void *arg)
{
	struct aloop__proxy_wait *w = arg;

	w->deadline = ALOOP_HANDLE_NONE;
	wait_end(w, ALOOP_ETIMEDOUT, NULL);
}

/*
 * Look at what came (MSG_PEEK), parse it with what was taken before, and
 * take from the socket only bytes that belong to the header: all of them
 * while the parser needs more (they cannot be payload yet), exactly the
 * rest of the header once it is complete.  Taking them also keeps a
 * level-triggered readiness from firing again for bytes already seen.
 */
static void
wait_readable(evutil_socket_t fd, short what, void *arg)
{
	struct aloop__proxy_wait *w = arg;
	struct aloop__proxy_header h;
	struct aloop__proxy_info *pi;
	ssize_t n, r, got;
	size_t want;
	uint8_t *nb;

	(void)fd;
	(void)what;
	for (;;) {
		want = w->cap - w->have;
		n = recv(w->fd, w->buf + w->have, want, MSG_PEEK);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			wait_end(w, -errno, NULL);
			return;
		}
		if (n == 0) {
			wait_end(w, ALOOP_EINCOMPLETE, NULL);
			return;
		}
		r = aloop__proxy_parse(w->buf, w->have + (size_t)n, &h);
		if (r < 0) {
			wait_end(w, (int)r, NULL);
			return;
		}
		/* r > 0: the rest of the header; 0: all that was seen. */
		want = r > 0 ? (size_t)r - w->have : (size_t)n;
		got = recv(w->fd, w->buf + w->have, want, 0);
		if (got != (ssize_t)want) {
			/* The kernel gave less than it just showed. */
			wait_end(w, got == -1 ? -errno : ALOOP_EINCOMPLETE,
			    NULL);
			return;
		}
		w->have += want;
		if (r > 0)
			break;
		/*
		 * A v2 header says its length after 16 bytes: make room for
		 * all of it (the parser refuses one past the bound).
		 */
		if (w->have >= 16 && w->buf[0] == '\r') {
			size_t total = 16 + ((size_t)w->buf[14] << 8 |
			    w->buf[15]);

			if (total > w->cap) {
				if ((nb = realloc(w->buf, total)) == NULL) {
					wait_end(w, ALOOP_ENOMEM, NULL);
					return;
				}
				w->buf = nb;
				w->cap = total;
			}
		}
		if (w->have == w->cap) {
			/* Cannot happen: the parser bounds the header. */
			wait_end(w, ALOOP_EPROTO_HDR, NULL);
			return;
		}
	}
	if ((pi = aloop__proxy_info_new(&h)) == NULL) {
		wait_end(w, ALOOP_ENOMEM, NULL);
		return;
	}
	wait_end(w, 0, pi);
}

static void
wait_on_loop_close(struct aloop__resource *res)
{
	struct aloop__proxy_wait *w = (struct aloop__proxy_wait *)(void *)
	    ((char *)res - offsetof(struct aloop__proxy_wait, res));

	wait_end(w, ALOOP_ECANCELLED, NULL);
}

int
aloop__proxy_wait_start(struct aloop_loop *loop, int fd, double timeout,
    aloop__proxy_done_fn done, void *arg, struct aloop__proxy_wait **out)
{
	struct aloop__proxy_wait *w;
	int rc;

	if (aloop_is_closed(loop))
		return ALOOP_ESTATE;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return ALOOP_ENOMEM;
	w->loop = loop;
	w->fd = fd;
	w->done = done;
	w->arg = arg;
	w->deadline = ALOOP_HANDLE_NONE;
	w->cap = WAIT_BUF_INITIAL;
	w->res.on_loop_close = wait_on_loop_close;
	if ((w->buf = malloc(w->cap)) == NULL)
		goto nomem;
	w->ev = event_new(aloop__loop_base(loop), fd, EV_READ | EV_PERSIST,
	    wait_readable, w);
	if (w->ev == NULL || event_add(w->ev, NULL) != 0)
		goto nomem;
	if (timeout > 0 && (rc = aloop_call_later(loop, timeout,
	    wait_deadline, w, &w->deadline)) != 0) {
		w->deadline = ALOOP_HANDLE_NONE;
		goto nomem;
	}
	aloop__loop_track(loop, &w->res);
	*out = w;
	return 0;
nomem:
	if (w->ev != NULL)
		event_free(w->ev);
	aloop_handle_cancel(loop, w->deadline);
	free(w->buf);
	free(w);
	return ALOOP_ENOMEM;
}

void
aloop__proxy_wait_cancel(struct aloop__proxy_wait *w)
{
	aloop__sock_close_reset(w->fd);
	w->fd = -1;
	wait_free(w);
}
