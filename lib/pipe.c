/*
 * connect_read_pipe and connect_write_pipe: the stream transport driving
 * any descriptor (a pipe, a FIFO, a socket, a character device) in one
 * direction, as asyncio's unix pipe transports; and the same start for a
 * connected socket handed over by the caller (connect_accepted_socket).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <aloop/subprocess.h>

#include "loop-int.h"
#include "transport-int.h"

struct pipe_start {
	struct aloop_loop		*loop;
	struct aloop_future		*fut;
	const struct aloop_protocol	*proto;
	aloop_protocol_factory_fn	 factory;
	void				*factory_arg;
	int				 fd;
	int				 kind;
	aloop_handle_t			 handle;
	struct aloop__resource		 res;
};

static void
pipe_start_free(struct pipe_start *ps)
{
	if (ps->fd >= 0)
		(void)close(ps->fd);
	aloop_future_release(ps->fut);
	free(ps);
}

static void
pipe_start_on_loop_close(struct aloop__resource *res)
{
	struct pipe_start *ps = (struct pipe_start *)(void *)
	    ((char *)res - offsetof(struct pipe_start, res));

	pipe_start_free(ps);
}

/*
 * connection_made runs on a later turn, as in asyncio, so that it never
 * runs inside the call that asked for the transport.
 */
static void
pipe_start_cb(void *arg)
{
	struct pipe_start *ps = arg;
	struct aloop_transport *t;
	void *state = NULL;
	int fd = ps->fd, rc;

	aloop__loop_untrack(ps->loop, &ps->res);
	ps->fd = -1;
	if (aloop_future_done(ps->fut)) {	/* cancelled */
		(void)close(fd);
		goto out;
	}
	if ((rc = ps->factory(ps->factory_arg, &state)) != 0) {
		(void)close(fd);
		(void)aloop_future_set_error(ps->fut, rc,
		    "the protocol factory refused the pipe");
		goto out;
	}
	if ((rc = aloop__stream_transport_new(ps->loop, fd, ps->kind,
	    ps->proto, state, 1, &t)) != 0) {
		(void)aloop_future_set_error(ps->fut, rc, NULL);
		goto out;
	}
	aloop__transport_ref(t);
	aloop__stream_transport_made(t);
	(void)aloop__future_set_transport(ps->fut, t);
	aloop__transport_unref(t);
out:
	pipe_start_free(ps);
}

int
aloop__stream_adopt(struct aloop_loop *loop, const struct aloop_protocol *proto,
    aloop_protocol_factory_fn factory, void *factory_arg, int fd, int kind,
    struct aloop_future **fut)
{
	struct pipe_start *ps;
	int fl, rc;

	if (proto == NULL || factory == NULL || fut == NULL || fd < 0)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "connect_pipe")) != 0)
		return rc;
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    (fl = fcntl(fd, F_GETFD)) == -1 ||
	    fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1)
		return -errno;
	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		return ALOOP_ENOMEM;
	if ((rc = aloop_future_new(loop, &ps->fut)) != 0) {
		free(ps);
		return rc;
	}
	ps->loop = loop;
	ps->proto = proto;
	ps->factory = factory;
	ps->factory_arg = factory_arg;
	ps->fd = -1;
	ps->kind = kind;
	ps->res.on_loop_close = pipe_start_on_loop_close;
	if ((rc = aloop_call_soon(loop, pipe_start_cb, ps, &ps->handle)) != 0) {
		pipe_start_free(ps);
		return rc;
	}
	/* The descriptor is the transport's from here on. */
	ps->fd = fd;
	aloop__loop_track(loop, &ps->res);
	*fut = aloop_future_ref(ps->fut);
	return 0;
}

int
aloop_connect_read_pipe(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, int fd, struct aloop_future **fut)
{
	return aloop__stream_adopt(loop, proto, factory, factory_arg, fd,
	    ALOOP__STREAM_READ_PIPE, fut);
}

int
aloop_connect_write_pipe(struct aloop_loop *loop,
    const struct aloop_protocol *proto, aloop_protocol_factory_fn factory,
    void *factory_arg, int fd, struct aloop_future **fut)
{
	return aloop__stream_adopt(loop, proto, factory, factory_arg, fd,
	    ALOOP__STREAM_WRITE_PIPE, fut);
}
