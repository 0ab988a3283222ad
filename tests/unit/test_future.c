/*
 * Futures: states, results and their ownership, errors and the report of
 * an error nobody retrieved, cancel, and done-callbacks (always through
 * call_soon, in order, with the future kept alive while they run).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>

#include "runner.h"

/* Bounds every run of a loop; the runner's SIGALRM is the last resort. */
#define WATCHDOG_SECS	10.0

#include "loop-test.h"

/* One loop iteration: what is ready now runs, what it schedules does not. */
static void
run_once(struct aloop_loop *loop)
{
	aloop_stop(loop);
	CU_ASSERT_EQUAL(aloop_run_forever(loop), 0);
}

/* A record of which callbacks ran, in order. */
static char trace[64];

static void
trace_add(char c)
{
	size_t n = strlen(trace);

	if (n + 1 < sizeof(trace)) {
		trace[n] = c;
		trace[n + 1] = '\0';
	}
}

static void
trace_soon(void *arg)
{
	trace_add(*(const char *)arg);
}

static void
trace_done(struct aloop_future *fut, void *arg)
{
	(void)fut;
	trace_add(*(const char *)arg);
}

static int freed;

static void
count_free(void *p)
{
	freed++;
	free(p);
}

static void
test_new_and_pending_state(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut = NULL;
	struct watchdog wd;
	void *res = (void *)1;

	loop = new_loop(&wd);
	CU_ASSERT_EQUAL(aloop_future_new(NULL, &fut), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_future_new(loop, NULL), ALOOP_EINVAL);
	CU_ASSERT_EQUAL_FATAL(aloop_future_new(loop, &fut), 0);
	CU_ASSERT_PTR_EQUAL(aloop_future_get_loop(fut), loop);
	CU_ASSERT_FALSE(aloop_future_done(fut));
	CU_ASSERT_FALSE(aloop_future_cancelled(fut));
	CU_ASSERT_EQUAL(aloop_future_result(fut, &res), ALOOP_ESTATE);
	CU_ASSERT_PTR_NULL(res);
	CU_ASSERT_PTR_NULL(aloop_future_error(fut));
	CU_ASSERT_PTR_EQUAL(aloop_future_ref(fut), fut);
	aloop_future_release(fut);
	aloop_future_release(fut);
	aloop_future_release(NULL);
	free_loop(loop, &wd);
}

static void
test_result_ownership(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut;
	struct watchdog wd;
	int *v, *other;
	void *res = NULL;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	v = malloc(sizeof(*v));
	other = malloc(sizeof(*other));
	CU_ASSERT_FATAL(v != NULL && other != NULL);
	*v = 42;
	freed = 0;
	CU_ASSERT_EQUAL(aloop_future_set_result(fut, v, count_free), 0);
	CU_ASSERT_TRUE(aloop_future_done(fut));
	CU_ASSERT_FALSE(aloop_future_cancelled(fut));
	CU_ASSERT_EQUAL(aloop_future_result(fut, &res), 0);
	CU_ASSERT_PTR_EQUAL(res, v);
	CU_ASSERT_EQUAL(aloop_future_result(fut, NULL), 0);
	CU_ASSERT_PTR_NULL(aloop_future_error(fut));

	/* Completing twice fails and does not take the second result. */
	CU_ASSERT_EQUAL(aloop_future_set_result(fut, other, count_free),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, ALOOP_EINVAL, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 0);
	CU_ASSERT_FALSE(aloop_future_cancelled(fut));
	CU_ASSERT_EQUAL(freed, 0);
	free(other);

	/* The result lives as long as the last reference. */
	aloop_future_ref(fut);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(freed, 0);
	CU_ASSERT_EQUAL(*(int *)res, 42);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(freed, 1);

	/* Without a free function the result stays the caller's. */
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_set_result(fut, &freed, NULL), 0);
	CU_ASSERT_EQUAL(aloop_future_result(fut, &res), 0);
	CU_ASSERT_PTR_EQUAL(res, &freed);
	aloop_future_release(fut);
	free_loop(loop, &wd);
}

static void
test_set_error(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut;
	const struct aloop_error *err;
	struct watchdog wd;
	void *res = (void *)1;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, 0, "no"), ALOOP_EINVAL);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, 5, "no"), ALOOP_EINVAL);
	CU_ASSERT_FALSE(aloop_future_done(fut));
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, -ECONNREFUSED,
	    "connect to %s port %d", "127.0.0.1", 9), 0);
	CU_ASSERT_TRUE(aloop_future_done(fut));
	CU_ASSERT_FALSE(aloop_future_cancelled(fut));
	CU_ASSERT_EQUAL(aloop_future_result(fut, &res), -ECONNREFUSED);
	CU_ASSERT_PTR_NULL(res);
	err = aloop_future_error(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_EQUAL(err->code, -ECONNREFUSED);
	CU_ASSERT_STRING_EQUAL(err->message, "connect to 127.0.0.1 port 9");
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, ALOOP_EINVAL, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_future_set_result(fut, NULL, NULL),
	    ALOOP_ESTATE);
	aloop_future_release(fut);

	/* No format: the code's own text. */
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, ALOOP_ETIMEDOUT, NULL), 0);
	err = aloop_future_error(fut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	CU_ASSERT_EQUAL(err->code, ALOOP_ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(err->message, aloop_strerror(ALOOP_ETIMEDOUT));
	aloop_future_release(fut);
	free_loop(loop, &wd);
}

static void
test_cancel(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut;
	struct watchdog wd;
	void *res = (void *)1;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	trace[0] = '\0';
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "c"),
	    0);
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 1);
	CU_ASSERT_STRING_EQUAL(trace, "");
	CU_ASSERT_TRUE(aloop_future_done(fut));
	CU_ASSERT_TRUE(aloop_future_cancelled(fut));
	CU_ASSERT_EQUAL(aloop_future_result(fut, &res), ALOOP_ECANCELLED);
	CU_ASSERT_PTR_NULL(res);
	CU_ASSERT_PTR_NULL(aloop_future_error(fut));
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 0);
	CU_ASSERT_EQUAL(aloop_future_set_result(fut, NULL, NULL),
	    ALOOP_ESTATE);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, ALOOP_EINVAL, NULL),
	    ALOOP_ESTATE);
	run_once(loop);
	CU_ASSERT_STRING_EQUAL(trace, "c");
	aloop_future_release(fut);
	free_loop(loop, &wd);
}

static void
test_done_callbacks_fifo_via_call_soon(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut;
	struct watchdog wd;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	trace[0] = '\0';
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "1"),
	    0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "2"),
	    0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "1"),
	    0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, NULL, NULL), ALOOP_EINVAL);

	/*
	 * The callbacks go through call_soon when the future completes, so
	 * they run after what was scheduled before and before what comes
	 * after, and never inside set_result.
	 */
	CU_ASSERT_EQUAL(aloop_call_soon(loop, trace_soon, "a", NULL), 0);
	CU_ASSERT_EQUAL(aloop_future_set_result(fut, NULL, NULL), 0);
	CU_ASSERT_STRING_EQUAL(trace, "");
	CU_ASSERT_EQUAL(aloop_call_soon(loop, trace_soon, "b", NULL), 0);
	run_once(loop);
	CU_ASSERT_STRING_EQUAL(trace, "a121b");

	/* They ran once: another iteration runs nothing more. */
	run_once(loop);
	CU_ASSERT_STRING_EQUAL(trace, "a121b");
	aloop_future_release(fut);
	free_loop(loop, &wd);
}

static struct aloop_future *late_fut;

/* Runs in one iteration and adds a callback to a done future. */
static void
add_late(void *arg)
{
	(void)arg;
	trace_add('x');
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(late_fut, trace_done,
	    "L"), 0);
	trace_add('y');
}

static void
test_callback_added_after_done(void)
{
	struct aloop_loop *loop;
	struct watchdog wd;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &late_fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_set_result(late_fut, NULL, NULL), 0);
	trace[0] = '\0';

	/* Added to a done future: scheduled at once, run by the loop. */
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(late_fut, trace_done,
	    "D"), 0);
	CU_ASSERT_STRING_EQUAL(trace, "");
	run_once(loop);
	CU_ASSERT_STRING_EQUAL(trace, "D");

	/* Added from a callback: runs on the next iteration, not inside. */
	CU_ASSERT_EQUAL(aloop_call_soon(loop, add_late, NULL, NULL), 0);
	run_once(loop);
	CU_ASSERT_STRING_EQUAL(trace, "Dxy");
	run_once(loop);
	CU_ASSERT_STRING_EQUAL(trace, "DxyL");
	aloop_future_release(late_fut);
	free_loop(loop, &wd);
}

static void
test_remove_done_callback_counts(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut;
	struct watchdog wd;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	trace[0] = '\0';
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "1"),
	    0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "2"), 0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "1"),
	    0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "3"),
	    0);
	/* Both registrations of (trace_done, "1") go; the others stay. */
	CU_ASSERT_EQUAL(aloop_future_remove_done_callback(fut, trace_done,
	    "1"), 2);
	CU_ASSERT_EQUAL(aloop_future_remove_done_callback(fut, trace_done,
	    "1"), 0);
	CU_ASSERT_EQUAL(aloop_future_remove_done_callback(fut, trace_done,
	    "9"), 0);
	CU_ASSERT_EQUAL(aloop_future_set_result(fut, NULL, NULL), 0);
	/* Once done, the callbacks are scheduled and out of reach. */
	CU_ASSERT_EQUAL(aloop_future_remove_done_callback(fut, trace_done,
	    "3"), 0);
	run_once(loop);
	CU_ASSERT_STRING_EQUAL(trace, "23");
	aloop_future_release(fut);
	free_loop(loop, &wd);
}

/* A done-callback that drops the last reference the caller had. */
static void
release_in_callback(struct aloop_future *fut, void *arg)
{
	void *res = NULL;

	(void)arg;
	trace_add('r');
	aloop_future_release(fut);
	/* The loop's reference keeps the future alive until we return. */
	CU_ASSERT_TRUE(aloop_future_done(fut));
	CU_ASSERT_EQUAL(aloop_future_result(fut, &res), 0);
	CU_ASSERT_PTR_NOT_NULL(res);
	CU_ASSERT_EQUAL(freed, 0);
}

static void
test_release_inside_done_callback(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut;
	struct watchdog wd;
	int *v;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_FATAL((v = malloc(sizeof(*v))) != NULL);
	freed = 0;
	trace[0] = '\0';
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut,
	    release_in_callback, NULL), 0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(fut, trace_done, "2"),
	    0);
	CU_ASSERT_EQUAL(aloop_future_set_result(fut, v, count_free), 0);
	/* The caller's reference is the one the callback drops. */
	run_once(loop);
	CU_ASSERT_STRING_EQUAL(trace, "r2");
	/* The last callback's reference was the last one. */
	CU_ASSERT_EQUAL(freed, 1);
	free_loop(loop, &wd);
}

/* The exception handler used to catch reports of unretrieved errors. */
static int reports;
static char report_msg[128];
static char report_err[128];
static int report_code;
static struct aloop_future *report_fut;
static int keep_reported;
static struct aloop_future *kept;

static int
capture_handler(struct aloop_loop *loop, const struct aloop_context *ctx,
    void *arg)
{
	(void)loop;
	CU_ASSERT_PTR_EQUAL(arg, &reports);
	reports++;
	snprintf(report_msg, sizeof(report_msg), "%s", ctx->message);
	report_fut = ctx->future;
	report_code = ctx->error != NULL ? ctx->error->code : 0;
	snprintf(report_err, sizeof(report_err), "%s",
	    ctx->error != NULL ? ctx->error->message : "");
	if (keep_reported && ctx->future != NULL)
		kept = aloop_future_ref(ctx->future);
	return 0;
}

static void
test_unretrieved_error_reported(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut, *seen;
	struct watchdog wd;

	loop = new_loop(&wd);
	aloop_set_exception_handler(loop, capture_handler, &reports);
	reports = 0;
	keep_reported = 0;

	/* Retrieved through result(): no report. */
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, -EPIPE, "gone"), 0);
	CU_ASSERT_EQUAL(aloop_future_result(fut, NULL), -EPIPE);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(reports, 0);

	/* Retrieved through error(): no report. */
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, -EPIPE, "gone"), 0);
	CU_ASSERT_PTR_NOT_NULL(aloop_future_error(fut));
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(reports, 0);

	/* Never retrieved: reported once, when the last reference goes. */
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, -EPIPE, "peer %d gone",
	    7), 0);
	aloop_future_ref(fut);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(reports, 0);
	seen = fut;
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(reports, 1);
	CU_ASSERT_STRING_EQUAL(report_msg,
	    "Future exception was never retrieved");
	CU_ASSERT_PTR_EQUAL(report_fut, seen);
	CU_ASSERT_EQUAL(report_code, -EPIPE);
	CU_ASSERT_STRING_EQUAL(report_err, "peer 7 gone");

	/* A handler may keep the future; it is not reported twice. */
	keep_reported = 1;
	kept = NULL;
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_set_error(fut, -EIO, NULL), 0);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(reports, 2);
	CU_ASSERT_PTR_EQUAL_FATAL(kept, fut);
	CU_ASSERT_EQUAL(aloop_future_error(kept)->code, -EIO);
	aloop_future_release(kept);
	CU_ASSERT_EQUAL(reports, 2);
	keep_reported = 0;

	/* A cancelled future or a result is nothing to report. */
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_future_cancel(fut), 1);
	aloop_future_release(fut);
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	aloop_future_release(fut);
	CU_ASSERT_EQUAL(reports, 2);
	run_once(loop);
	aloop_set_exception_handler(loop, NULL, NULL);
	free_loop(loop, &wd);
}

static int log_errors;
static char log_line[256];

static void
capture_log(int level, const char *line, void *arg)
{
	(void)arg;
	if (level == ALOOP_LOG_ERR) {
		log_errors++;
		snprintf(log_line, sizeof(log_line), "%s", line);
	}
}

static void
test_closed_loop(void)
{
	struct aloop_loop *loop;
	struct aloop_future *pending, *scheduled, *failed, *orphan, *fut;
	struct watchdog wd;
	int *v, *w;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &pending) == 0);
	CU_ASSERT_FATAL(aloop_future_new(loop, &scheduled) == 0);
	CU_ASSERT_FATAL(aloop_future_new(loop, &failed) == 0);
	trace[0] = '\0';
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(pending, trace_done,
	    "p"), 0);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(scheduled, trace_done,
	    "s"), 0);
	CU_ASSERT_FATAL((v = malloc(sizeof(*v))) != NULL);
	freed = 0;
	/* Its callback is queued on the loop, then discarded by the close. */
	CU_ASSERT_EQUAL(aloop_future_set_result(scheduled, v, count_free), 0);
	CU_ASSERT_EQUAL(aloop_future_set_error(failed, -EIO, "lost"), 0);
	/* Only its queued callback keeps this one alive. */
	CU_ASSERT_FATAL(aloop_future_new(loop, &orphan) == 0);
	CU_ASSERT_FATAL((w = malloc(sizeof(*w))) != NULL);
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(orphan, trace_done,
	    "o"), 0);
	CU_ASSERT_EQUAL(aloop_future_set_result(orphan, w, count_free), 0);
	aloop_future_release(orphan);
	CU_ASSERT_EQUAL(freed, 0);

	aloop_handle_cancel(loop, wd.handle);
	CU_ASSERT_EQUAL(aloop_close(loop), 0);
	/* The close dropped the callback and with it the last reference. */
	CU_ASSERT_EQUAL(freed, 1);
	CU_ASSERT_EQUAL(aloop_future_new(loop, &fut), ALOOP_ESTATE);
	CU_ASSERT_PTR_NULL(fut);

	/* Completing still works; the callbacks cannot run any more. */
	CU_ASSERT_EQUAL(aloop_future_set_result(pending, NULL, NULL), 0);
	CU_ASSERT_TRUE(aloop_future_done(pending));
	CU_ASSERT_EQUAL(aloop_future_add_done_callback(pending, trace_done,
	    "q"), ALOOP_ESTATE);
	CU_ASSERT_STRING_EQUAL(trace, "");
	CU_ASSERT_EQUAL(aloop_loop_free(loop), 0);

	/* The futures outlive the loop as valid memory. */
	CU_ASSERT_EQUAL(aloop_future_result(scheduled, NULL), 0);
	CU_ASSERT_EQUAL(freed, 1);
	aloop_future_release(scheduled);
	CU_ASSERT_EQUAL(freed, 2);
	aloop_future_release(pending);

	/* An unretrieved error is logged: the handler went with the loop. */
	log_errors = 0;
	log_line[0] = '\0';
	aloop_log_set_sink(capture_log, NULL);
	aloop_future_release(failed);
	aloop_log_set_sink(NULL, NULL);
	CU_ASSERT_EQUAL(log_errors, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(log_line,
	    "Future exception was never retrieved"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log_line, "lost"));
	CU_ASSERT_STRING_EQUAL(trace, "");
}

static void
cancel_soon(void *arg)
{
	CU_ASSERT_EQUAL(aloop_future_cancel(arg), 1);
}

static void
complete_soon(void *arg)
{
	CU_ASSERT_EQUAL(aloop_future_set_result(arg, "done", NULL), 0);
}

/* The pattern the rest of the library relies on: run until done. */
static void
test_run_until_complete(void)
{
	struct aloop_loop *loop;
	struct aloop_future *fut;
	struct watchdog wd;
	void *res = NULL;

	loop = new_loop(&wd);
	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_call_later(loop, 0.01, complete_soon, fut,
	    NULL), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, fut, &res), 0);
	CU_ASSERT_STRING_EQUAL(res, "done");
	aloop_future_release(fut);

	CU_ASSERT_FATAL(aloop_future_new(loop, &fut) == 0);
	CU_ASSERT_EQUAL(aloop_call_soon(loop, cancel_soon, fut, NULL), 0);
	CU_ASSERT_EQUAL(aloop_run_until_complete(loop, fut, &res),
	    ALOOP_ECANCELLED);
	CU_ASSERT_TRUE(aloop_future_cancelled(fut));
	aloop_future_release(fut);
	free_loop(loop, &wd);
}

static const struct test_case cases[] = {
	TEST(test_new_and_pending_state),
	TEST(test_result_ownership),
	TEST(test_set_error),
	TEST(test_cancel),
	TEST(test_done_callbacks_fifo_via_call_soon),
	TEST(test_callback_added_after_done),
	TEST(test_remove_done_callback_counts),
	TEST(test_release_inside_done_callback),
	TEST(test_unretrieved_error_reported),
	TEST(test_closed_loop),
	TEST(test_run_until_complete),
};

TEST_MAIN("future", cases)
