/*
 * Signal handlers (SEMANTICS D.22): E test_add_signal_handler,
 * test_signal_handling_while_selecting, test_signal_handling_args.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <aloop/loop.h>

#include "loop-test.h"

struct sig_seen {
	struct aloop_loop	*loop;
	int			 n;
	int			 running;	/* ran as a loop callback */
	int			 signum;
	void			*arg_seen;
};

static void
sig_handler_cb(void *arg)
{
	struct sig_seen *s = arg;

	s->n++;
	s->arg_seen = arg;
	s->running = aloop_get_running_loop() == s->loop;
	aloop_stop(s->loop);
}

static void
raise_cb(void *arg)
{
	struct sig_seen *s = arg;

	CU_ASSERT(raise(s->signum) == 0);
}

static int
disposition_is_default(int signum)
{
	struct sigaction sa;

	if (sigaction(signum, NULL, &sa) != 0)
		return 0;
	return sa.sa_handler == SIG_DFL;
}

static void
test_signal_raised_from_callback(void)
{
	struct sig_seen s = { 0 };
	struct watchdog wd;
	struct aloop_loop *loop;
	int fds = count_fds();

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	s.loop = loop;
	s.signum = SIGUSR1;
	watchdog_arm(&wd, loop);
	CU_ASSERT(aloop_add_signal_handler(loop, SIGUSR1, sig_handler_cb,
	    &s) == 0);
	CU_ASSERT(!disposition_is_default(SIGUSR1));
	CU_ASSERT(aloop_call_soon(loop, raise_cb, &s, NULL) == 0);
	CU_ASSERT(aloop_run_forever(loop) == 0);
	CU_ASSERT_EQUAL(s.n, 1);
	CU_ASSERT(s.arg_seen == &s);
	CU_ASSERT(s.running);
	watchdog_disarm(&wd);
	/* remove restores SIG_DFL and says 1, then 0. */
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(loop, SIGUSR1), 1);
	CU_ASSERT(disposition_is_default(SIGUSR1));
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(loop, SIGUSR1), 0);
	CU_ASSERT(aloop_loop_free(loop) == 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* A signal that arrives while the loop blocks in its poll wakes it. */
struct killer {
	int	signum;
	double	delay;
};

static void *
kill_thread(void *arg)
{
	struct killer *k = arg;
	struct timespec ts = { 0, (long)(k->delay * 1e9) };

	nanosleep(&ts, NULL);
	kill(getpid(), k->signum);
	return NULL;
}

static void
test_signal_while_polling(void)
{
	struct sig_seen s = { 0 };
	struct killer k = { SIGUSR2, 0.05 };
	struct watchdog wd;
	struct aloop_loop *loop;
	pthread_t th;
	sigset_t set, old;
	int fds = count_fds();

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	s.loop = loop;
	watchdog_arm(&wd, loop);
	CU_ASSERT(aloop_add_signal_handler(loop, SIGUSR2, sig_handler_cb,
	    &s) == 0);
	/* Deliver it to this thread while it waits: the killer blocks it. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	CU_ASSERT(pthread_sigmask(SIG_BLOCK, &set, &old) == 0);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, kill_thread, &k) == 0);
	CU_ASSERT(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
	CU_ASSERT(aloop_run_forever(loop) == 0);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(s.n, 1);
	watchdog_disarm(&wd);
	CU_ASSERT(aloop_loop_free(loop) == 0);
	/* Closing removed the handler and restored the default. */
	CU_ASSERT(disposition_is_default(SIGUSR2));
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static void
noop_cb(void *arg)
{
}

static void
test_signal_invalid(void)
{
	struct aloop_loop *loop;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(loop, 0, noop_cb, NULL),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(loop, -1, noop_cb, NULL),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(loop, NSIG, noop_cb, NULL),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(loop, NSIG + 1, noop_cb,
	    NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(loop, SIGKILL, noop_cb,
	    NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(loop, SIGSTOP, noop_cb,
	    NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(loop, SIGUSR1, NULL, NULL),
	    ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(loop, SIGKILL), 0);
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(loop, 0), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(loop, NSIG + 1),
	    ALOOP_EINVAL);
	CU_ASSERT(aloop_close(loop) == 0);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(loop, SIGUSR1, noop_cb, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(loop, SIGUSR1), 0);
	CU_ASSERT(aloop_loop_free(loop) == 0);
}

/* A second add replaces the first; the args are the new ones. */
static void
test_signal_handler_replaced(void)
{
	struct sig_seen a = { 0 }, b = { 0 };
	struct watchdog wd;
	struct aloop_loop *loop;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	a.loop = b.loop = loop;
	b.signum = SIGUSR1;
	watchdog_arm(&wd, loop);
	CU_ASSERT(aloop_add_signal_handler(loop, SIGUSR1, sig_handler_cb,
	    &a) == 0);
	CU_ASSERT(aloop_add_signal_handler(loop, SIGUSR1, sig_handler_cb,
	    &b) == 0);
	CU_ASSERT(aloop_call_soon(loop, raise_cb, &b, NULL) == 0);
	CU_ASSERT(aloop_run_forever(loop) == 0);
	CU_ASSERT_EQUAL(a.n, 0);
	CU_ASSERT_EQUAL(b.n, 1);
	watchdog_disarm(&wd);
	CU_ASSERT(aloop_loop_free(loop) == 0);
	CU_ASSERT(disposition_is_default(SIGUSR1));
}

/* A handler may remove itself, as callbacks may close their own object. */
static void
sig_remove_self_cb(void *arg)
{
	struct sig_seen *s = arg;

	s->n++;
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(s->loop, s->signum), 1);
	aloop_stop(s->loop);
}

static void
test_signal_handler_removes_itself(void)
{
	struct sig_seen s = { 0 };
	struct watchdog wd;
	struct aloop_loop *loop;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	s.loop = loop;
	s.signum = SIGUSR1;
	watchdog_arm(&wd, loop);
	CU_ASSERT(aloop_add_signal_handler(loop, SIGUSR1, sig_remove_self_cb,
	    &s) == 0);
	CU_ASSERT(aloop_call_soon(loop, raise_cb, &s, NULL) == 0);
	CU_ASSERT(aloop_run_forever(loop) == 0);
	CU_ASSERT_EQUAL(s.n, 1);
	CU_ASSERT(disposition_is_default(SIGUSR1));
	watchdog_disarm(&wd);
	CU_ASSERT(aloop_loop_free(loop) == 0);
}

/* libevent gives signals to one base: a second loop is refused. */
static void
test_signal_one_loop_at_a_time(void)
{
	struct aloop_loop *l1, *l2;

	CU_ASSERT_FATAL(aloop_loop_new(&l1) == 0);
	CU_ASSERT_FATAL(aloop_loop_new(&l2) == 0);
	CU_ASSERT(aloop_add_signal_handler(l1, SIGUSR1, noop_cb, NULL) == 0);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(l2, SIGUSR2, noop_cb, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(l2, SIGUSR1), 0);
	/* Once the first lets go, the second may. */
	CU_ASSERT_EQUAL(aloop_remove_signal_handler(l1, SIGUSR1), 1);
	CU_ASSERT(aloop_add_signal_handler(l2, SIGUSR2, noop_cb, NULL) == 0);
	CU_ASSERT_EQUAL(aloop_add_signal_handler(l1, SIGUSR1, noop_cb, NULL),
	    ALOOP_ESTATE);
	/* Closing releases them too. */
	CU_ASSERT(aloop_close(l2) == 0);
	CU_ASSERT(aloop_add_signal_handler(l1, SIGUSR1, noop_cb, NULL) == 0);
	CU_ASSERT(aloop_loop_free(l1) == 0);
	CU_ASSERT(aloop_loop_free(l2) == 0);
	CU_ASSERT(disposition_is_default(SIGUSR1));
	CU_ASSERT(disposition_is_default(SIGUSR2));
}

static const struct test_case cases[] = {
	TEST(test_signal_raised_from_callback),
	TEST(test_signal_while_polling),
	TEST(test_signal_invalid),
	TEST(test_signal_handler_replaced),
	TEST(test_signal_handler_removes_itself),
	TEST(test_signal_one_loop_at_a_time),
};

TEST_MAIN("signal", cases)
