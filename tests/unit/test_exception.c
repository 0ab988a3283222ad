/*
 * The exception handler and debug mode (SEMANTICS E.23 to E.27):
 * B test_set_exc_handler_custom, test_set_exc_handler_broken,
 * test_default_exc_handler_broken, test_log_slow_callbacks,
 * test__run_once_logging, test_env_var_debug.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aloop/log.h>
#include <aloop/loop.h>

#include "loop-test.h"

/* The log lines, as the sink got them. */
static char lines[8][1024];
static int levels[8];
static int nlines;

static void
capture_sink(int level, const char *line, void *arg)
{
	if (nlines < 8) {
		levels[nlines] = level;
		strncpy(lines[nlines], line, sizeof(lines[0]) - 1);
		lines[nlines][sizeof(lines[0]) - 1] = '\0';
	}
	nlines++;
}

static int saved_level;

static void
capture_start(void)
{
	memset(lines, 0, sizeof(lines));
	nlines = 0;
	saved_level = aloop_log_get_level();
	aloop_log_set_level(ALOOP_LOG_DEBUG);
	aloop_log_set_sink(capture_sink, NULL);
}

static void
capture_stop(void)
{
	aloop_log_set_sink(NULL, NULL);
	aloop_log_set_level(saved_level);
}

/* The first captured line at @level that contains @needle, or NULL. */
static const char *
find_line(int level, const char *needle)
{
	int i;

	for (i = 0; i < nlines && i < 8; i++)
		if (levels[i] == level && strstr(lines[i], needle) != NULL)
			return lines[i];
	return NULL;
}

static void
test_default_handler_logs_every_field(void)
{
	struct aloop_error err = { ALOOP_EINVAL, "bad thing" };
	struct aloop_context ctx = ALOOP_CONTEXT_INIT("Exception in callback");
	struct aloop_loop *loop;
	const char *l;
	int x;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	ctx.error = &err;
	ctx.future = (struct aloop_future *)&x;
	ctx.handle = 0x1234;
	ctx.protocol = &x;
	ctx.transport = (struct aloop_transport *)&x;
	ctx.socket = 7;
	ctx.listener = "web";
	ctx.plugin = "echo";
	ctx.source = "here.c:1";
	capture_start();
	aloop_call_exception_handler(loop, &ctx);
	capture_stop();
	CU_ASSERT_EQUAL(nlines, 1);
	l = find_line(ALOOP_LOG_ERR, "Exception in callback");
	CU_ASSERT_FATAL(l != NULL);
	CU_ASSERT(strstr(l, "bad thing") != NULL);
	CU_ASSERT(strstr(l, "future: ") != NULL);
	CU_ASSERT(strstr(l, "handle: 0x1234") != NULL);
	CU_ASSERT(strstr(l, "protocol: ") != NULL);
	CU_ASSERT(strstr(l, "transport: ") != NULL);
	CU_ASSERT(strstr(l, "socket: 7") != NULL);
	CU_ASSERT(strstr(l, "listener: web") != NULL);
	CU_ASSERT(strstr(l, "plugin: echo") != NULL);
	CU_ASSERT(strstr(l, "source: here.c:1") != NULL);

	/* Empty optional fields are left out. */
	capture_start();
	aloop_default_exception_handler(loop,
	    &(struct aloop_context)ALOOP_CONTEXT_INIT("just this"));
	capture_stop();
	CU_ASSERT_EQUAL(nlines, 1);
	CU_ASSERT_STRING_EQUAL(lines[0], "just this");
	CU_ASSERT(aloop_loop_free(loop) == 0);
}

struct seen {
	int				 n;
	struct aloop_loop		*loop;
	const char			*message;
	aloop_handle_t			 handle;
	int				 rc;
};

static int
custom_handler(struct aloop_loop *loop, const struct aloop_context *ctx,
    void *arg)
{
	struct seen *s = arg;

	s->n++;
	s->loop = loop;
	s->message = ctx->message;
	s->handle = ctx->handle;
	return s->rc;
}

static void
test_custom_handler(void)
{
	struct aloop_context ctx = ALOOP_CONTEXT_INIT("boom");
	struct seen s = { 0 };
	struct aloop_loop *loop;
	void *arg = NULL;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	CU_ASSERT(aloop_get_exception_handler(loop, &arg) == NULL);
	aloop_set_exception_handler(loop, custom_handler, &s);
	CU_ASSERT(aloop_get_exception_handler(loop, &arg) == custom_handler);
	CU_ASSERT(arg == &s);
	ctx.handle = 42;
	capture_start();
	aloop_call_exception_handler(loop, &ctx);
	capture_stop();
	CU_ASSERT_EQUAL(s.n, 1);
	CU_ASSERT(s.loop == loop);
	CU_ASSERT_STRING_EQUAL(s.message, "boom");
	CU_ASSERT_EQUAL(s.handle, 42);
	CU_ASSERT_EQUAL(nlines, 0);	/* the default stayed quiet */

	/* NULL restores the default. */
	aloop_set_exception_handler(loop, NULL, NULL);
	CU_ASSERT(aloop_get_exception_handler(loop, &arg) == NULL);
	capture_start();
	aloop_call_exception_handler(loop, &ctx);
	capture_stop();
	CU_ASSERT_EQUAL(s.n, 1);
	CU_ASSERT(find_line(ALOOP_LOG_ERR, "boom") != NULL);
	CU_ASSERT(aloop_loop_free(loop) == 0);
}

static void
test_failing_handler(void)
{
	struct aloop_context ctx = ALOOP_CONTEXT_INIT("original trouble");
	struct seen s = { .rc = ALOOP_ENOMEM };
	struct aloop_loop *loop;
	const char *l;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	aloop_set_exception_handler(loop, custom_handler, &s);
	ctx.socket = 3;
	capture_start();
	aloop_call_exception_handler(loop, &ctx);
	capture_stop();
	CU_ASSERT_EQUAL(s.n, 1);
	CU_ASSERT_EQUAL(nlines, 1);
	l = find_line(ALOOP_LOG_ERR, "Unhandled error in exception handler");
	CU_ASSERT_FATAL(l != NULL);
	/* The handler's own error, then the original context. */
	CU_ASSERT(strstr(l, aloop_strerror(ALOOP_ENOMEM)) != NULL);
	CU_ASSERT(strstr(l, "context: {original trouble; socket: 3}") != NULL);
	CU_ASSERT(aloop_loop_free(loop) == 0);
}

/* Exported (see -export-dynamic in core.mk), so dladdr can name it. */
void test_exception_slow_callback(void *arg);

void
test_exception_slow_callback(void *arg)
{
	struct timespec ts = { 0, 30 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	aloop_stop(arg);
}

/* Not inlined: its return address must lie inside it. */
void test_exception_schedule_slow(struct aloop_loop *loop);

__attribute__((noinline)) void
test_exception_schedule_slow(struct aloop_loop *loop)
{
	CU_ASSERT(aloop_call_soon(loop, test_exception_slow_callback, loop,
	    NULL) == 0);
}

static void
test_debug_slow_callback_logged(void)
{
	struct aloop_loop *loop;
	struct watchdog wd;
	const char *l;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	watchdog_arm(&wd, loop);
	CU_ASSERT_DOUBLE_EQUAL(aloop_get_slow_callback_duration(loop), 0.1,
	    1e-12);
	aloop_set_slow_callback_duration(loop, 0.01);
	CU_ASSERT_DOUBLE_EQUAL(aloop_get_slow_callback_duration(loop), 0.01,
	    1e-12);

	/* Not in debug mode: nothing is timed. */
	aloop_set_debug(loop, 0);
	test_exception_schedule_slow(loop);
	capture_start();
	CU_ASSERT(aloop_run_forever(loop) == 0);
	capture_stop();
	CU_ASSERT(find_line(ALOOP_LOG_WARNING, "took") == NULL);

	aloop_set_debug(loop, 1);
	test_exception_schedule_slow(loop);
	capture_start();
	CU_ASSERT(aloop_run_forever(loop) == 0);
	capture_stop();
	l = find_line(ALOOP_LOG_WARNING, "took");
	CU_ASSERT_FATAL(l != NULL);
	CU_ASSERT(strstr(l, "test_exception_slow_callback") != NULL);
	CU_ASSERT(strstr(l, "scheduled from test_exception_schedule_slow")
	    != NULL);
	watchdog_disarm(&wd);
	CU_ASSERT(aloop_loop_free(loop) == 0);
}

/* B test__run_once_logging: a poll over a second is logged at info. */
static void
stop_cb(void *arg)
{
	aloop_stop(arg);
}

static void
test_debug_slow_poll_logged(void)
{
	struct aloop_loop *loop;
	int i, info = 0;

	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	aloop_set_debug(loop, 1);
	CU_ASSERT(aloop_call_later(loop, 1.05, stop_cb, loop, NULL) == 0);
	capture_start();
	CU_ASSERT(aloop_run_forever(loop) == 0);
	capture_stop();
	for (i = 0; i < nlines && i < 8; i++)
		if (levels[i] == ALOOP_LOG_INFO && strstr(lines[i], "poll"))
			info++;
	CU_ASSERT_EQUAL(info, 1);
	CU_ASSERT(aloop_loop_free(loop) == 0);
}

static void
test_env_var_debug(void)
{
	struct aloop_loop *loop;
	int fds = count_fds();

	CU_ASSERT(setenv("ALOOP_DEBUG", "1", 1) == 0);
	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	CU_ASSERT(aloop_get_debug(loop));
	CU_ASSERT(aloop_loop_free(loop) == 0);
	CU_ASSERT(setenv("ALOOP_DEBUG", "", 1) == 0);
	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	CU_ASSERT(!aloop_get_debug(loop));
	CU_ASSERT(aloop_loop_free(loop) == 0);
	CU_ASSERT(unsetenv("ALOOP_DEBUG") == 0);
	CU_ASSERT_FATAL(aloop_loop_new(&loop) == 0);
	CU_ASSERT(!aloop_get_debug(loop));
	aloop_set_debug(loop, 1);
	CU_ASSERT(aloop_get_debug(loop));
	CU_ASSERT(aloop_loop_free(loop) == 0);
	CU_ASSERT_EQUAL(count_fds(), fds);
}

static const struct test_case cases[] = {
	TEST(test_default_handler_logs_every_field),
	TEST(test_custom_handler),
	TEST(test_failing_handler),
	TEST(test_debug_slow_callback_logged),
	TEST(test_debug_slow_poll_logged),
	TEST(test_env_var_debug),
};

TEST_MAIN("exception", cases)
