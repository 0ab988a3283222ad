/*
 * Event loop policies.  The default keeps one loop per thread in
 * thread-local storage; in the main thread it creates one on first use
 * (and frees it at exit), elsewhere the thread must set one first.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#if __has_include(<sys/syscall.h>)
#include <sys/syscall.h>
#endif

#include "loop-core-int.h"

static _Thread_local struct aloop_loop *thread_loop;
static _Thread_local int thread_loop_set;	/* set_event_loop was called */

/* The loop the default policy created, which it owns. */
static pthread_mutex_t owned_lock = PTHREAD_MUTEX_INITIALIZER;
static struct aloop_loop *owned_loop;
static int owned_atexit;

void
aloop__policy_forked(void)
{
	/*
	 * The parent's loops stay the parent's: the policy forgets them, and
	 * never frees at exit a loop whose descriptors it shares with them.
	 */
	thread_loop = NULL;
	thread_loop_set = 0;
	(void)pthread_mutex_init(&owned_lock, NULL);
	owned_loop = NULL;
}

static int default_get(void *, struct aloop_loop **);
static int default_set(void *, struct aloop_loop *);
static int default_new(void *, struct aloop_loop **);

static const struct aloop_policy default_policy = {
	.get_event_loop = default_get,
	.set_event_loop = default_set,
	.new_event_loop = default_new,
};
static struct aloop_policy policy = {
	.get_event_loop = default_get,
	.set_event_loop = default_set,
	.new_event_loop = default_new,
};

static pthread_t main_thread;

__attribute__((constructor)) static void
policy_init(void)
{
	main_thread = pthread_self();
}

static int
is_main_thread(void)
{
#ifdef SYS_gettid
	/* Exact even when the library was loaded from another thread. */
	return syscall(SYS_gettid) == getpid();
#else
	return pthread_equal(pthread_self(), main_thread);
#endif
}

static void
free_owned(void)
{
	/* At exit the loop may still be running (exit() from a callback);
	 * aloop_loop_free then refuses and the process teardown takes it. */
	if (owned_loop != NULL)
		(void)aloop_loop_free(owned_loop);
}

static int
default_get(void *self, struct aloop_loop **loopp)
{
	struct aloop_loop *loop;
	int rc;

	if (thread_loop != NULL) {
		*loopp = thread_loop;
		return 0;
	}
	if (thread_loop_set || !is_main_thread())
		return ALOOP_ESTATE;
	if ((rc = aloop_loop_new(&loop)) != 0)
		return rc;
	pthread_mutex_lock(&owned_lock);
	if (!owned_atexit && atexit(free_owned) == 0)
		owned_atexit = 1;
	/* Only the main thread creates, and only once: afterwards
	 * thread_loop or thread_loop_set stops it. */
	owned_loop = loop;
	pthread_mutex_unlock(&owned_lock);
	thread_loop = loop;
	*loopp = loop;
	return 0;
}

static int
default_set(void *self, struct aloop_loop *loop)
{
	if (loop != NULL && loop->magic != ALOOP__LOOP_MAGIC)
		return ALOOP_EINVAL;
	thread_loop = loop;
	thread_loop_set = 1;
	return 0;
}

static int
default_new(void *self, struct aloop_loop **loopp)
{
	return aloop_loop_new(loopp);
}

int
aloop_get_event_loop(struct aloop_loop **loopp)
{
	struct aloop_loop *loop;
	int rc;

	/* Inside callbacks, the running loop, whatever the policy says. */
	if ((loop = aloop_get_running_loop()) != NULL) {
		*loopp = loop;
		return 0;
	}
	*loopp = NULL;
	rc = policy.get_event_loop(policy.self, loopp);
	if (rc == 0 && *loopp == NULL)
		rc = ALOOP_ESTATE;	/* a custom policy broke its contract */
	return rc;
}

int
aloop_set_event_loop(struct aloop_loop *loop)
{
	return policy.set_event_loop(policy.self, loop);
}

int
aloop_new_event_loop(struct aloop_loop **loopp)
{
	return policy.new_event_loop(policy.self, loopp);
}

const struct aloop_policy *
aloop_get_event_loop_policy(void)
{
	return &policy;
}

void
aloop_set_event_loop_policy(const struct aloop_policy *p)
{
	policy = p != NULL ? *p : default_policy;
}

void
aloop__policy_forget(struct aloop_loop *loop)
{
	/* Other threads' slots cannot be reached; a thread that frees its
	 * loop while another still has it set has broken ownership anyway. */
	if (thread_loop == loop)
		thread_loop = NULL;
	pthread_mutex_lock(&owned_lock);
	if (owned_loop == loop)
		owned_loop = NULL;
	pthread_mutex_unlock(&owned_lock);
}
