/*
 * The low-level socket calls: sock_recv, sock_sendall, sock_connect and
 * sock_accept.  Each tries the system call at once and, if the socket is
 * not ready, waits with add_reader/add_writer; the result comes through a
 * future.  The socket stays the caller's.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/loop.h>
#include <aloop/net.h>

#include "loop-int.h"

enum sockop_kind { OP_RECV, OP_SENDALL, OP_CONNECT, OP_ACCEPT };

struct sockop {
	struct aloop_loop	*loop;
	struct aloop_future	*fut;
	enum sockop_kind	 kind;
	int			 fd;
	int			 refs;
	int			 watching;	/* 0, 'r' or 'w' */
	size_t			 nbytes;
	unsigned char		*data;		/* sendall's copy */
	size_t			 len, off;
	struct aloop__resource	 res;
};

static void
sockop_unref(struct sockop *op)
{
	if (--op->refs > 0)
		return;
	aloop_future_release(op->fut);
	free(op->data);
	free(op);
}

static void
sockop_unwatch(struct sockop *op)
{
	if (op->watching == 'r')
		(void)aloop_remove_reader(op->loop, op->fd);
	else if (op->watching == 'w')
		(void)aloop_remove_writer(op->loop, op->fd);
	if (op->watching != 0) {
		op->watching = 0;
		aloop__loop_untrack(op->loop, &op->res);
		sockop_unref(op);
	}
}

static void	sockop_fut_done(struct aloop_future *fut, void *arg);

static void
sockop_on_loop_close(struct aloop__resource *res)
{
	struct sockop *op = (struct sockop *)(void *)
	    ((char *)res - offsetof(struct sockop, res));

	/*
	 * The loop drops its watchers itself, and the done-callback never
	 * runs now: drop both references.
	 */
	op->watching = 0;
	(void)aloop_future_remove_done_callback(op->fut, sockop_fut_done, op);
	op->refs--;
	sockop_unref(op);
}

/*
 * Try the operation once: 1 when it completed the future, 0 when the
 * socket is not ready.
 */
static int
sockop_try(struct sockop *op)
{
	struct aloop_accepted *acc;
	struct aloop_bytes *b;
	socklen_t len;
	ssize_t n;
	int err;

	switch (op->kind) {
	case OP_RECV:
		if ((b = malloc(sizeof(*b) + op->nbytes)) == NULL) {
			(void)aloop_future_set_error(op->fut, ALOOP_ENOMEM, NULL);
			return 1;
		}
		do
			n = recv(op->fd, b->data, op->nbytes, 0);
		while (n == -1 && errno == EINTR);
		if (n == -1) {
			err = errno;
			free(b);
			if (err == EAGAIN || err == EWOULDBLOCK)
				return 0;
			(void)aloop_future_set_error(op->fut, -err, NULL);
			return 1;
		}
		b->len = (size_t)n;
		if (aloop_future_set_result(op->fut, b, free) != 0)
			free(b);
		return 1;
	case OP_SENDALL:
		while (op->off < op->len) {
			n = send(op->fd, op->data + op->off, op->len - op->off,
			    MSG_NOSIGNAL);
			if (n == -1) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return 0;
				(void)aloop_future_set_error(op->fut, -errno,
				    NULL);
				return 1;
			}
			op->off += (size_t)n;
		}
		(void)aloop_future_set_result(op->fut, NULL, NULL);
		return 1;
	case OP_CONNECT:
		/* Only called once the connect is under way. */
		len = sizeof(err);
		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err == EINPROGRESS || err == EALREADY)
			return 0;
		if (err != 0)
			(void)aloop_future_set_error(op->fut, -err, NULL);
		else
			(void)aloop_future_set_result(op->fut, NULL, NULL);
		return 1;
	case OP_ACCEPT:
		if ((acc = calloc(1, sizeof(*acc))) == NULL) {
			(void)aloop_future_set_error(op->fut, ALOOP_ENOMEM, NULL);
			return 1;
		}
		acc->addrlen = sizeof(acc->addr);
		do
			acc->fd = accept4(op->fd, (struct sockaddr *)&acc->addr,
			    &acc->addrlen, SOCK_CLOEXEC | SOCK_NONBLOCK);
		while (acc->fd == -1 && (errno == EINTR ||
		    errno == ECONNABORTED));
		if (acc->fd == -1) {
			err = errno;
			free(acc);
			if (err == EAGAIN || err == EWOULDBLOCK)
				return 0;
			(void)aloop_future_set_error(op->fut, -err, NULL);
			return 1;
		}
		/* The descriptor is the caller's; the future frees the struct. */
		if (aloop_future_set_result(op->fut, acc, free) != 0) {
			(void)close(acc->fd);
			free(acc);
		}
		return 1;
	}
	return 1;
}

static void
sockop_ready(void *arg)
{
	struct sockop *op = arg;

	if (aloop_future_done(op->fut) || sockop_try(op))
		sockop_unwatch(op);
}

static void
sockop_fut_done(struct aloop_future *fut, void *arg)
{
	struct sockop *op = arg;

	/* A cancelled operation stops waiting at once. */
	(void)fut;
	sockop_unwatch(op);
	sockop_unref(op);
}

static int
sockop_start(struct aloop_loop *loop, int fd, enum sockop_kind kind,
    struct sockop **opp)
{
	struct sockop *op;
	int fl, rc;

	if (fd < 0)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "sock operation")) != 0)
		return rc;
	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -errno;
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return ALOOP_ENOMEM;
	if ((rc = aloop_future_new(loop, &op->fut)) != 0) {
		free(op);
		return rc;
	}
	op->loop = loop;
	op->fd = fd;
	op->kind = kind;
	op->refs = 1;
	op->res.on_loop_close = sockop_on_loop_close;
	*opp = op;
	return 0;
}

/* Try at once; wait for readiness if needed.  Consumes @op. */
static int
sockop_run(struct sockop *op, int first_try, struct aloop_future **fut)
{
	int rc, dir;

	if (first_try && sockop_try(op)) {
		*fut = aloop_future_ref(op->fut);
		sockop_unref(op);
		return 0;
	}
	dir = (op->kind == OP_RECV || op->kind == OP_ACCEPT) ? 'r' : 'w';
	rc = dir == 'r' ? aloop_add_reader(op->loop, op->fd, sockop_ready, op) :
	    aloop_add_writer(op->loop, op->fd, sockop_ready, op);
	if (rc != 0) {
		sockop_unref(op);
		return rc;
	}
	op->watching = dir;
	op->refs++;
	aloop__loop_track(op->loop, &op->res);
	if (aloop_future_add_done_callback(op->fut, sockop_fut_done, op) != 0) {
		sockop_unwatch(op);
		sockop_unref(op);
		return ALOOP_ENOMEM;
	}
	*fut = aloop_future_ref(op->fut);
	/* The remaining reference belongs to the done-callback. */
	return 0;
}

int
aloop_sock_recv(struct aloop_loop *loop, int fd, size_t nbytes,
    struct aloop_future **fut)
{
	struct sockop *op;
	int rc;

	if (fut == NULL || nbytes == 0 || nbytes > (size_t)1 << 30)
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_RECV, &op)) != 0)
		return rc;
	op->nbytes = nbytes;
	return sockop_run(op, 1, fut);
}

int
aloop_sock_sendall(struct aloop_loop *loop, int fd, const void *data,
    size_t len, struct aloop_future **fut)
{
	struct sockop *op;
	int rc;

	if (fut == NULL || (data == NULL && len > 0))
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_SENDALL, &op)) != 0)
		return rc;
	if (len > 0) {
		if ((op->data = malloc(len)) == NULL) {
			sockop_unref(op);
			return ALOOP_ENOMEM;
		}
		memcpy(op->data, data, len);
	}
	op->len = len;
	return sockop_run(op, 1, fut);
}

int
aloop_sock_connect(struct aloop_loop *loop, int fd, const struct sockaddr *sa,
    socklen_t salen, struct aloop_future **fut)
{
	struct sockop *op;
	int rc;

	/*
	 * Only a resolved address: a name would need a lookup, which must
	 * not block the loop (asyncio checks the same way).
	 */
	if (fut == NULL || sa == NULL || salen < sizeof(sa_family_t) ||
	    salen > sizeof(struct sockaddr_storage) ||
	    sa->sa_family == AF_UNSPEC)
		return ALOOP_EINVAL;
	if ((sa->sa_family == AF_INET && salen < sizeof(struct sockaddr_in)) ||
	    (sa->sa_family == AF_INET6 &&
	    salen < sizeof(struct sockaddr_in6)))
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_CONNECT, &op)) != 0)
		return rc;
	do
		rc = connect(fd, sa, salen);
	while (rc == -1 && errno == EINTR);
	if (rc == 0 || (errno != EINPROGRESS && errno != EAGAIN)) {
		if (rc == 0)
			(void)aloop_future_set_result(op->fut, NULL, NULL);
		else
			(void)aloop_future_set_error(op->fut, -errno, NULL);
		*fut = aloop_future_ref(op->fut);
		sockop_unref(op);
		return 0;
	}
	return sockop_run(op, 0, fut);
}

int
aloop_sock_accept(struct aloop_loop *loop, int fd, struct aloop_future **fut)
{
	struct sockop *op;
	int rc;

	if (fut == NULL)
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_ACCEPT, &op)) != 0)
		return rc;
	return sockop_run(op, 1, fut);
}
