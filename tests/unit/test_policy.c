/*
 * Event loop policies (SEMANTICS #50): E PolicyTests and
 * GetEventLoopTestsMixin.  The order of the cases matters: the default
 * policy's per-thread state is sticky, as asyncio's is, so the lazy
 * creation in the main thread is tested first.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>

#include <aloop/loop.h>

#include "loop-test.h"

static void
test_main_thread_lazy_loop(void)
{
	struct aloop_loop *a = NULL, *b = NULL;

	CU_ASSERT(aloop_get_event_loop(&a) == 0);
	CU_ASSERT_FATAL(a != NULL);
	CU_ASSERT(aloop_get_event_loop(&b) == 0);
	CU_ASSERT(a == b);
	CU_ASSERT(!aloop_is_closed(a));
	/* The policy owns it and frees it at exit; nothing to do here. */
}

struct thread_result {
	int			 rc_get;
	struct aloop_loop	*got;
	int			 rc_set, rc_get2;
	struct aloop_loop	*own, *got2;
};

static void *
other_thread(void *arg)
{
	struct thread_result *r = arg;

	r->rc_get = aloop_get_event_loop(&r->got);
	if (aloop_new_event_loop(&r->own) != 0)
		return NULL;
	r->rc_set = aloop_set_event_loop(r->own);
	r->rc_get2 = aloop_get_event_loop(&r->got2);
	aloop_set_event_loop(NULL);
	aloop_loop_free(r->own);
	return NULL;
}

static void
test_other_thread_needs_a_loop(void)
{
	struct thread_result r = { 0 };
	struct aloop_loop *main_loop;
	pthread_t th;

	CU_ASSERT_FATAL(pthread_create(&th, NULL, other_thread, &r) == 0);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(r.rc_get, ALOOP_ESTATE);
	CU_ASSERT(r.got == NULL);
	CU_ASSERT_FATAL(r.own != NULL);
	CU_ASSERT_EQUAL(r.rc_set, 0);
	CU_ASSERT_EQUAL(r.rc_get2, 0);
	CU_ASSERT(r.got2 == r.own);
	/* The main thread's loop is its own. */
	CU_ASSERT(aloop_get_event_loop(&main_loop) == 0);
	CU_ASSERT(main_loop != r.own);
}

static void
test_new_event_loop_distinct(void)
{
	struct aloop_loop *cur, *n1, *n2;
	int fds;

	CU_ASSERT(aloop_get_event_loop(&cur) == 0);
	fds = count_fds();
	CU_ASSERT_FATAL(aloop_new_event_loop(&n1) == 0);
	CU_ASSERT_FATAL(aloop_new_event_loop(&n2) == 0);
	CU_ASSERT(n1 != n2);
	CU_ASSERT(n1 != cur);
	CU_ASSERT(aloop_loop_free(n1) == 0);
	CU_ASSERT(aloop_loop_free(n2) == 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

/* Inside a callback, the running loop, whatever the policy says. */
struct running {
	struct aloop_loop	*loop, *got;
	int			 rc;
};

static void
running_cb(void *arg)
{
	struct running *r = arg;

	r->rc = aloop_get_event_loop(&r->got);
	aloop_stop(r->loop);
}

static void
test_get_event_loop_returns_running_loop(void)
{
	struct running r = { 0 };
	struct watchdog wd;
	struct aloop_loop *cur;

	CU_ASSERT(aloop_get_event_loop(&cur) == 0);
	CU_ASSERT_FATAL(aloop_loop_new(&r.loop) == 0);
	CU_ASSERT(r.loop != cur);
	watchdog_arm(&wd, r.loop);
	CU_ASSERT(aloop_call_soon(r.loop, running_cb, &r, NULL) == 0);
	CU_ASSERT(aloop_run_forever(r.loop) == 0);
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT(r.got == r.loop);
	watchdog_disarm(&wd);
	CU_ASSERT(aloop_loop_free(r.loop) == 0);
}

static void
test_set_event_loop(void)
{
	struct aloop_loop *mine, *got;
	uint64_t not_a_loop[8] = { 0 };

	CU_ASSERT_FATAL(aloop_loop_new(&mine) == 0);
	CU_ASSERT(aloop_set_event_loop(mine) == 0);
	CU_ASSERT(aloop_get_event_loop(&got) == 0);
	CU_ASSERT(got == mine);
	/* asyncio's TypeError for a non-loop. */
	CU_ASSERT_EQUAL(aloop_set_event_loop(
	    (struct aloop_loop *)not_a_loop), ALOOP_EINVAL);
	/* None, even in the main thread: no lazy loop any more. */
	CU_ASSERT(aloop_set_event_loop(NULL) == 0);
	CU_ASSERT_EQUAL(aloop_get_event_loop(&got), ALOOP_ESTATE);
	CU_ASSERT(aloop_set_event_loop(mine) == 0);
	/* Freeing the current loop makes the thread forget it. */
	CU_ASSERT(aloop_loop_free(mine) == 0);
	CU_ASSERT_EQUAL(aloop_get_event_loop(&got), ALOOP_ESTATE);
}

/* A custom policy, and NULL restoring the default. */
struct custom {
	struct aloop_loop	*loop;
	int			 gets, sets, news;
};

static int
custom_get(void *self, struct aloop_loop **loop)
{
	struct custom *c = self;

	c->gets++;
	*loop = c->loop;
	return c->loop != NULL ? 0 : ALOOP_ESTATE;
}

static int
custom_set(void *self, struct aloop_loop *loop)
{
	struct custom *c = self;

	c->sets++;
	c->loop = loop;
	return 0;
}

static int
custom_new(void *self, struct aloop_loop **loop)
{
	struct custom *c = self;

	c->news++;
	return aloop_loop_new(loop);
}

static void
test_custom_policy(void)
{
	struct custom c = { 0 };
	struct aloop_policy p = { custom_get, custom_set, custom_new, &c };
	struct aloop_policy def = *aloop_get_event_loop_policy();
	struct aloop_loop *l, *got;

	CU_ASSERT(def.get_event_loop != NULL);
	aloop_set_event_loop_policy(&p);
	CU_ASSERT(aloop_get_event_loop_policy()->self == &c);
	CU_ASSERT(aloop_get_event_loop_policy()->get_event_loop == custom_get);
	CU_ASSERT(aloop_new_event_loop(&l) == 0);
	CU_ASSERT_EQUAL(c.news, 1);
	CU_ASSERT_EQUAL(aloop_get_event_loop(&got), ALOOP_ESTATE);
	CU_ASSERT(aloop_set_event_loop(l) == 0);
	CU_ASSERT_EQUAL(c.sets, 1);
	CU_ASSERT(aloop_get_event_loop(&got) == 0);
	CU_ASSERT(got == l);
	CU_ASSERT_EQUAL(c.gets, 2);

	/* NULL restores the default: its thread state is untouched. */
	aloop_set_event_loop_policy(NULL);
	CU_ASSERT(aloop_get_event_loop_policy()->get_event_loop ==
	    def.get_event_loop);
	CU_ASSERT(aloop_get_event_loop_policy()->self == NULL);
	CU_ASSERT_EQUAL(aloop_get_event_loop(&got), ALOOP_ESTATE);
	CU_ASSERT_EQUAL(c.gets, 2);
	CU_ASSERT(aloop_loop_free(l) == 0);
}

static const struct test_case cases[] = {
	TEST(test_main_thread_lazy_loop),
	TEST(test_other_thread_needs_a_loop),
	TEST(test_new_event_loop_distinct),
	TEST(test_get_event_loop_returns_running_loop),
	TEST(test_set_event_loop),
	TEST(test_custom_policy),
};

TEST_MAIN("policy", cases)
