/*
 * The low-level socket calls: sock_recv, sock_recv_into, sock_recvfrom,
 * sock_recvfrom_into, sock_sendall, sock_sendto, sock_connect, sock_accept
 * and sock_sendfile.  Each tries the system call at once and, if the socket is
 * not ready, waits with add_reader/add_writer; the result comes through a
 * future.  The socket stays the caller's.
 */
#include "config.h"

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aloop/loop.h>
#include <aloop/net.h>

#include "loop-int.h"

enum sockop_kind {
	OP_RECV, OP_RECV_INTO, OP_RECVFROM, OP_RECVFROM_INTO, OP_SENDALL,
	OP_SENDTO, OP_CONNECT, OP_ACCEPT, OP_SENDFILE
};

/* sendfile's fallback reads the file in pieces of this size. */
#define SENDFILE_CHUNK		(64 * 1024)

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
	void			*buf;		/* recv_into: the caller's */
	struct sockaddr_storage	 to;		/* sendto: the address */
	socklen_t		 tolen;
	int			 file;		/* sendfile: the file */
	off_t			 foff;		/* its next offset */
	size_t			 left;		/* still to send; SIZE_MAX: to EOF */
	size_t			 sent;
	int			 fallback;	/* no sendfile(2) here */
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

/* Complete @op with the count (and the sender of recvfrom_into). */
static void
sockop_set_nbytes(struct sockop *op, size_t n, const struct sockaddr_storage *ss,
    socklen_t sslen)
{
	struct aloop_nbytes *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		(void)aloop_future_set_error(op->fut, ALOOP_ENOMEM, NULL);
		return;
	}
	r->nbytes = n;
	if (ss != NULL && sslen > 0) {
		r->addrlen = sslen;
		memcpy(&r->addr, ss, sslen);
	}
	if (aloop_future_set_result(op->fut, r, free) != 0)
		free(r);
}

/* Errors that say "not now" rather than "never". */
static int
would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK;
}

/*
 * One receive into @buf: 1 when it completed the future, 0 when the
 * socket is not ready.
 */
static int
sockop_try_recv_into(struct sockop *op)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	ssize_t n;

	do
		n = op->kind == OP_RECVFROM_INTO ? recvfrom(op->fd, op->buf,
		    op->nbytes, 0, (struct sockaddr *)&ss, &sslen) :
		    recv(op->fd, op->buf, op->nbytes, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		if (would_block(errno))
			return 0;
		(void)aloop_future_set_error(op->fut, -errno, NULL);
		return 1;
	}
	sockop_set_nbytes(op, (size_t)n, op->kind == OP_RECVFROM_INTO ?
	    &ss : NULL, sslen);
	return 1;
}

static int
sockop_try_recvfrom(struct sockop *op)
{
	struct aloop_datagram *d;
	ssize_t n;
	int err;

	if ((d = malloc(sizeof(*d) + op->nbytes)) == NULL) {
		(void)aloop_future_set_error(op->fut, ALOOP_ENOMEM, NULL);
		return 1;
	}
	do {
		d->addrlen = sizeof(d->addr);
		n = recvfrom(op->fd, d->data, op->nbytes, 0,
		    (struct sockaddr *)&d->addr, &d->addrlen);
	} while (n == -1 && errno == EINTR);
	if (n == -1) {
		err = errno;
		free(d);
		if (would_block(err))
			return 0;
		(void)aloop_future_set_error(op->fut, -err, NULL);
		return 1;
	}
	d->len = (size_t)n;
	if (aloop_future_set_result(op->fut, d, free) != 0)
		free(d);
	return 1;
}

static int
sockop_try_sendto(struct sockop *op)
{
	ssize_t n;

	do
		n = sendto(op->fd, op->data, op->len, MSG_NOSIGNAL,
		    op->tolen > 0 ? (struct sockaddr *)&op->to : NULL,
		    op->tolen);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		if (would_block(errno))
			return 0;
		(void)aloop_future_set_error(op->fut, -errno, NULL);
		return 1;
	}
	sockop_set_nbytes(op, (size_t)n, NULL, 0);
	return 1;
}

/*
 * Send what op->data still holds (the fallback's last piece); 1 when all
 * of it went, 0 when the socket is full, -errno on an error.
 */
static int
sockop_send_pending(struct sockop *op)
{
	ssize_t n;

	while (op->off < op->len) {
		n = send(op->fd, op->data + op->off, op->len - op->off,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return would_block(errno) ? 0 : -errno;
		}
		op->off += (size_t)n;
		op->sent += (size_t)n;
	}
	return 1;
}

/*
 * The next piece of the file: sendfile(2) where the kernel can, else
 * pread into a buffer and send.  1 at the end (EOF or the count reached),
 * 0 when the socket is full, -errno on an error.
 */
static int
sockop_sendfile_step(struct sockop *op)
{
	size_t want;
	ssize_t n;
	int rc;

	for (;;) {
		if (op->fallback && (rc = sockop_send_pending(op)) != 1)
			return rc;
		if (op->left == 0)
			return 1;
		want = op->left < SENDFILE_CHUNK * 16 ? op->left :
		    SENDFILE_CHUNK * 16;
		if (!op->fallback) {
			n = sendfile(op->fd, op->file, &op->foff, want);
			if (n > 0) {
				op->sent += (size_t)n;
				if (op->left != SIZE_MAX)
					op->left -= (size_t)n;
				continue;
			}
			if (n == 0)
				return 1;	/* the file ended */
			if (errno == EINTR)
				continue;
			if (would_block(errno))
				return 0;
			/* Not a file the kernel can splice (a pipe, a
			 * socket, a special file): copy instead, as
			 * asyncio falls back. */
			if ((errno != EINVAL && errno != ENOSYS &&
			    errno != EOPNOTSUPP) || op->sent > 0)
				return -errno;
			if ((op->data = malloc(SENDFILE_CHUNK)) == NULL)
				return ALOOP_ENOMEM;
			op->fallback = 1;
			continue;
		}
		if (want > SENDFILE_CHUNK)
			want = SENDFILE_CHUNK;
		do
			n = pread(op->file, op->data, want, op->foff);
		while (n == -1 && errno == EINTR);
		if (n == -1)
			return -errno;
		if (n == 0)
			return 1;
		op->foff += n;
		if (op->left != SIZE_MAX)
			op->left -= (size_t)n;
		op->off = 0;
		op->len = (size_t)n;
	}
}

static int
sockop_try_sendfile(struct sockop *op)
{
	int rc = sockop_sendfile_step(op);

	/*
	 * As asyncio, the file's position is right after what was sent,
	 * also at each wait: a cancelled send (whose end this code never
	 * sees) leaves it right too.
	 */
	(void)lseek(op->file, op->foff - (off_t)(op->len - op->off),
	    SEEK_SET);
	if (rc == 0)
		return 0;
	if (rc < 0)
		(void)aloop_future_set_error(op->fut, rc, NULL);
	else
		sockop_set_nbytes(op, op->sent, NULL, 0);
	return 1;
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
	case OP_RECV_INTO:
	case OP_RECVFROM_INTO:
		return sockop_try_recv_into(op);
	case OP_RECVFROM:
		return sockop_try_recvfrom(op);
	case OP_SENDTO:
		return sockop_try_sendto(op);
	case OP_SENDFILE:
		return sockop_try_sendfile(op);
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
	dir = (op->kind == OP_RECV || op->kind == OP_RECV_INTO ||
	    op->kind == OP_RECVFROM || op->kind == OP_RECVFROM_INTO ||
	    op->kind == OP_ACCEPT) ? 'r' : 'w';
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

int
aloop_sock_recv_into(struct aloop_loop *loop, int fd, void *buf, size_t len,
    struct aloop_future **fut)
{
	struct sockop *op;
	int rc;

	if (fut == NULL || buf == NULL || len == 0)
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_RECV_INTO, &op)) != 0)
		return rc;
	op->buf = buf;
	op->nbytes = len;
	return sockop_run(op, 1, fut);
}

int
aloop_sock_recvfrom(struct aloop_loop *loop, int fd, size_t bufsize,
    struct aloop_future **fut)
{
	struct sockop *op;
	int rc;

	if (fut == NULL || bufsize == 0 || bufsize > (size_t)1 << 30)
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_RECVFROM, &op)) != 0)
		return rc;
	op->nbytes = bufsize;
	return sockop_run(op, 1, fut);
}

int
aloop_sock_recvfrom_into(struct aloop_loop *loop, int fd, void *buf,
    size_t len, struct aloop_future **fut)
{
	struct sockop *op;
	int rc;

	if (fut == NULL || buf == NULL || len == 0)
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_RECVFROM_INTO, &op)) != 0)
		return rc;
	op->buf = buf;
	op->nbytes = len;
	return sockop_run(op, 1, fut);
}

int
aloop_sock_sendto(struct aloop_loop *loop, int fd, const void *data,
    size_t len, const struct sockaddr *sa, socklen_t salen,
    struct aloop_future **fut)
{
	struct sockop *op;
	int rc;

	if (fut == NULL || (data == NULL && len > 0) ||
	    (sa == NULL && salen != 0) || (sa != NULL &&
	    (salen < sizeof(sa_family_t) ||
	    salen > sizeof(struct sockaddr_storage))))
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_SENDTO, &op)) != 0)
		return rc;
	/* One byte at least, so that an empty datagram has a buffer. */
	if ((op->data = malloc(len > 0 ? len : 1)) == NULL) {
		sockop_unref(op);
		return ALOOP_ENOMEM;
	}
	if (len > 0)
		memcpy(op->data, data, len);
	op->len = len;
	if (sa != NULL) {
		memcpy(&op->to, sa, salen);
		op->tolen = salen;
	}
	return sockop_run(op, 1, fut);
}

int
aloop_sock_sendfile(struct aloop_loop *loop, int fd, int file, off_t offset,
    size_t count, struct aloop_future **fut)
{
	struct sockop *op;
	struct stat st;
	int rc, type;
	socklen_t tl = sizeof(type);

	if (fut == NULL || file < 0 || offset < 0)
		return ALOOP_EINVAL;
	/* A stream socket only, as asyncio checks. */
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == -1)
		return -errno;
	if (type != SOCK_STREAM)
		return ALOOP_EINVAL;
	/* Offsets need a regular file, as asyncio's seek() does. */
	if (fstat(file, &st) == -1)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return ALOOP_EINVAL;
	if ((rc = sockop_start(loop, fd, OP_SENDFILE, &op)) != 0)
		return rc;
	op->file = file;
	op->foff = offset;
	op->left = count > 0 ? count : SIZE_MAX;
	return sockop_run(op, 1, fut);
}
