/*
 * Signal handlers: libevent's evsignal catches the signal and, in the I/O
 * phase, the loop queues the user's callback, which then runs as an
 * ordinary callback (never in signal context).
 *
 * libevent delivers signals to one event base per process: adding a
 * signal on a second base silently steals every signal from the first.
 * The loop therefore lets one loop at a time hold signal handlers, and
 * refuses others with ALOOP_ESTATE instead of breaking the first loop.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include <event2/event.h>

#include <aloop/log.h>

#include "loop-core-int.h"

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static struct aloop_loop *sig_owner;

static int
valid_signum(int signum)
{
	return signum > 0 && signum < NSIG;
}

static void
sig_cb(evutil_socket_t signum, short what, void *arg)
{
	struct aloop__sig *s = arg;
	int rc;

	if ((rc = aloop_call_soon(s->loop, s->cb, s->arg, NULL)) != 0)
		aloop_log(ALOOP_LOG_ERR, "aloop: cannot queue the handler "
		    "of signal %d: %s", s->signum, aloop_strerror(rc));
}

int
aloop_add_signal_handler(struct aloop_loop *loop, int signum,
    aloop_callback_fn cb, void *arg)
{
	struct aloop__sig *s;
	int rc;

	if (!valid_signum(signum) || signum == SIGKILL || signum == SIGSTOP ||
	    cb == NULL)
		return ALOOP_EINVAL;
	if ((rc = aloop__loop_check(loop, "aloop_add_signal_handler")) != 0)
		return rc;
	if ((s = loop->sigs[signum]) != NULL) {
		s->cb = cb;
		s->arg = arg;
		return 0;
	}

	pthread_mutex_lock(&sig_lock);
	if (sig_owner != NULL && sig_owner != loop) {
		pthread_mutex_unlock(&sig_lock);
		return ALOOP_ESTATE;
	}
	rc = ALOOP_ENOMEM;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto out;
	s->loop = loop;
	s->signum = signum;
	s->cb = cb;
	s->arg = arg;
	if ((s->ev = evsignal_new(loop->base, signum, sig_cb, s)) == NULL) {
		free(s);
		goto out;
	}
	if (event_add(s->ev, NULL) != 0) {
		/* libevent failed to install the handler (sigaction). */
		event_free(s->ev);
		free(s);
		rc = ALOOP_ESTATE;
		goto out;
	}
	loop->sigs[signum] = s;
	loop->nsigs++;
	sig_owner = loop;
	rc = 0;
out:
	pthread_mutex_unlock(&sig_lock);
	return rc;
}

static void
sig_remove(struct aloop_loop *loop, int signum)
{
	struct aloop__sig *s = loop->sigs[signum];
	struct sigaction sa;

	/* libevent restores the disposition it found; asyncio promises the
	 * default one, whatever was there before. */
	event_free(s->ev);
	free(s);
	loop->sigs[signum] = NULL;
	sa.sa_handler = SIG_DFL;
	sa.sa_flags = 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(signum, &sa, NULL) != 0)
		aloop_log_errno(ALOOP_LOG_ERR, "aloop: restoring signal %d",
		    signum);
	pthread_mutex_lock(&sig_lock);
	if (--loop->nsigs == 0 && sig_owner == loop)
		sig_owner = NULL;
	pthread_mutex_unlock(&sig_lock);
}

int
aloop_remove_signal_handler(struct aloop_loop *loop, int signum)
{
	if (!valid_signum(signum))
		return ALOOP_EINVAL;
	if (loop->sigs[signum] == NULL)
		return 0;
	sig_remove(loop, signum);
	return 1;
}

void
aloop__signal_close(struct aloop_loop *loop)
{
	int signum;

	for (signum = 1; signum < NSIG && loop->nsigs > 0; signum++)
		if (loop->sigs[signum] != NULL)
			sig_remove(loop, signum);
}
