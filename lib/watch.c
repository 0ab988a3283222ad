/*
 * Descriptor watchers: add_reader/add_writer.  One libevent event per
 * descriptor and direction; readiness queues the user's callback on the
 * ready queue, so it runs in the iteration's batch as asyncio's does, and
 * removing the watcher cancels a run that is queued but has not happened.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <aloop/log.h>

#include "loop-core-int.h"

static void
watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct aloop__watch *w = arg;
	int rc;

	rc = aloop_call_soon(w->loop, w->cb, w->arg, &w->pending);
	if (rc != 0)
		aloop_log(ALOOP_LOG_ERR, "aloop: cannot queue the watcher "
		    "of fd %d: %s", w->fd, aloop_strerror(rc));
}

static int
grow(struct aloop_loop *loop, int fd)
{
	struct aloop__watch **r, **w;
	size_t n = loop->nwatch ? (size_t)loop->nwatch : 64;

	while (n <= (size_t)fd)
		n *= 2;
	if ((r = realloc(loop->readers, n * sizeof(*r))) == NULL)
		return ALOOP_ENOMEM;
	loop->readers = r;
	if ((w = realloc(loop->writers, n * sizeof(*w))) == NULL)
		return ALOOP_ENOMEM;	/* readers stays valid, just larger */
	loop->writers = w;
	memset(r + loop->nwatch, 0, (n - loop->nwatch) * sizeof(*r));
	memset(w + loop->nwatch, 0, (n - loop->nwatch) * sizeof(*w));
	loop->nwatch = (int)n;
	return 0;
}

static int
add(struct aloop_loop *loop, int fd, short what, aloop_callback_fn cb,
    void *arg)
{
	struct aloop__watch **slot, *w;
	int rc;

	if (fd < 0 || cb == NULL)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, what == EV_READ ?
	    "aloop_add_reader" : "aloop_add_writer")) != 0)
		return rc;
	/* A transport's descriptor: two callbacks would fight over it. */
	if (fd < loop->nfd_owned && loop->fd_owned[fd])
		return ALOOP_ESTATE;
	if (fd >= loop->nwatch && (rc = grow(loop, fd)) != 0)
		return rc;
	slot = what == EV_READ ? &loop->readers[fd] : &loop->writers[fd];
	if ((w = *slot) == NULL) {
		if ((w = calloc(1, sizeof(*w))) == NULL)
			return ALOOP_ENOMEM;
		w->loop = loop;
		w->fd = fd;
		w->ev = event_new(loop->base, fd, what | EV_PERSIST, watch_cb,
		    w);
		if (w->ev == NULL) {
			free(w);
			return ALOOP_ENOMEM;
		}
		*slot = w;
	}
	/* A replaced callback must not run any more (asyncio cancels the
	 * old handle too). */
	aloop_handle_cancel(loop, w->pending);
	w->pending = ALOOP_HANDLE_NONE;
	w->cb = cb;
	w->arg = arg;
	if (!w->active) {
		if (event_add(w->ev, NULL) != 0)
			return ALOOP_EINVAL;	/* libevent refused the fd */
		w->active = 1;
	}
	return 0;
}

static int
remove_watch(struct aloop_loop *loop, int fd, struct aloop__watch **arr)
{
	struct aloop__watch *w;

	if (loop->closed || fd < 0 || fd >= loop->nwatch ||
	    (w = arr[fd]) == NULL || !w->active)
		return 0;
	/* The event is kept for a later add on the same fd; it is freed
	 * when the loop closes.  Deleting (not freeing) is also what makes
	 * it safe to remove a watcher from inside its own callback. */
	event_del(w->ev);
	w->active = 0;
	aloop_handle_cancel(loop, w->pending);
	w->pending = ALOOP_HANDLE_NONE;
	w->cb = NULL;
	w->arg = NULL;
	return 1;
}

void
aloop__loop_own_fd(struct aloop_loop *loop, int fd, int owned)
{
	unsigned char *p;
	int n;

	if (fd < 0)
		return;
	if (fd >= loop->nfd_owned) {
		if (!owned)
			return;
		n = loop->nfd_owned > 0 ? loop->nfd_owned : 64;
		while (n <= fd)
			n *= 2;
		if ((p = realloc(loop->fd_owned, (size_t)n)) == NULL)
			return;
		memset(p + loop->nfd_owned, 0, (size_t)(n - loop->nfd_owned));
		loop->fd_owned = p;
		loop->nfd_owned = n;
	}
	loop->fd_owned[fd] = owned != 0;
}

int
aloop_add_reader(struct aloop_loop *loop, int fd, aloop_callback_fn cb,
    void *arg)
{
	return add(loop, fd, EV_READ, cb, arg);
}

int
aloop_add_writer(struct aloop_loop *loop, int fd, aloop_callback_fn cb,
    void *arg)
{
	return add(loop, fd, EV_WRITE, cb, arg);
}

int
aloop_remove_reader(struct aloop_loop *loop, int fd)
{
	return remove_watch(loop, fd, loop->readers);
}

int
aloop_remove_writer(struct aloop_loop *loop, int fd)
{
	return remove_watch(loop, fd, loop->writers);
}

void
aloop__watch_close(struct aloop_loop *loop)
{
	int fd;

	for (fd = 0; fd < loop->nwatch; fd++) {
		struct aloop__watch *w;

		if ((w = loop->readers[fd]) != NULL) {
			event_free(w->ev);
			free(w);
		}
		if ((w = loop->writers[fd]) != NULL) {
			event_free(w->ev);
			free(w);
		}
	}
	free(loop->readers);
	free(loop->writers);
	free(loop->fd_owned);
	loop->fd_owned = NULL;
	loop->nfd_owned = 0;
	loop->readers = loop->writers = NULL;
	loop->nwatch = 0;
}
