/*
 * The exception handler (asyncio's call_exception_handler and its
 * default), and debug mode's reports: slow callbacks, named by symbol.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>

#include <aloop/log.h>

#include "loop-core-int.h"

#define CTX_LINE_MAX	1024

struct buf {
	char	*p;
	size_t	 len, off;
};

static void ALOOP_PRINTF(2, 3)
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->off >= b->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->off, b->len - b->off, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->off += (size_t)n;
}

void
aloop__debug_describe(const void *addr, char *out, size_t len)
{
	Dl_info info;

	if (addr == NULL) {
		snprintf(out, len, "unknown");
		return;
	}
	if (dladdr(addr, &info) == 0)
		snprintf(out, len, "%p", addr);
	else if (info.dli_sname != NULL && addr == info.dli_saddr)
		snprintf(out, len, "%s", info.dli_sname);
	else if (info.dli_sname != NULL)
		snprintf(out, len, "%s+%#tx", info.dli_sname,
		    (const char *)addr - (const char *)info.dli_saddr);
	else if (info.dli_fname != NULL)
		snprintf(out, len, "%p in %s", addr, info.dli_fname);
	else
		snprintf(out, len, "%p", addr);
}

static void
describe_ctx(struct buf *b, const struct aloop_context *ctx)
{
	bprintf(b, "%s", ctx->message);
	if (ctx->error != NULL)
		bprintf(b, "; error: %s (%d)", ctx->error->message,
		    ctx->error->code);
	if (ctx->future != NULL)
		bprintf(b, "; future: %p", (void *)ctx->future);
	if (ctx->handle != ALOOP_HANDLE_NONE)
		bprintf(b, "; handle: %#llx", (unsigned long long)ctx->handle);
	if (ctx->protocol != NULL)
		bprintf(b, "; protocol: %p", ctx->protocol);
	if (ctx->transport != NULL)
		bprintf(b, "; transport: %p", (void *)ctx->transport);
	if (ctx->socket >= 0)
		bprintf(b, "; socket: %d", ctx->socket);
	if (ctx->listener != NULL)
		bprintf(b, "; listener: %s", ctx->listener);
	if (ctx->plugin != NULL)
		bprintf(b, "; plugin: %s", ctx->plugin);
	if (ctx->source != NULL)
		bprintf(b, "; source: %s", ctx->source);
	if (ctx->context != NULL) {
		bprintf(b, "; context: {");
		describe_ctx(b, ctx->context);
		bprintf(b, "}");
	}
}

void
aloop_default_exception_handler(struct aloop_loop *loop,
    const struct aloop_context *ctx)
{
	char line[CTX_LINE_MAX];
	struct buf b = { line, sizeof(line), 0 };

	line[0] = '\0';
	describe_ctx(&b, ctx);
	aloop_log(ALOOP_LOG_ERR, "%s", line);
}

void
aloop_call_exception_handler(struct aloop_loop *loop,
    const struct aloop_context *ctx)
{
	struct aloop_context failed = ALOOP_CONTEXT_INIT(
	    "Unhandled error in exception handler");
	struct aloop_error err;
	int rc;

	if (loop->exc_handler == NULL) {
		aloop_default_exception_handler(loop, ctx);
		return;
	}
	if ((rc = loop->exc_handler(loop, ctx, loop->exc_arg)) == 0)
		return;
	err.code = rc;
	err.message = aloop_strerror(rc);
	failed.error = &err;
	failed.context = ctx;
	aloop_default_exception_handler(loop, &failed);
}

void
aloop_set_exception_handler(struct aloop_loop *loop,
    aloop_exception_handler_fn handler, void *arg)
{
	loop->exc_handler = handler;
	loop->exc_arg = handler != NULL ? arg : NULL;
}

aloop_exception_handler_fn
aloop_get_exception_handler(struct aloop_loop *loop, void **arg)
{
	if (arg != NULL)
		*arg = loop->exc_arg;
	return loop->exc_handler;
}

int
aloop_get_debug(const struct aloop_loop *loop)
{
	return loop->debug;
}

void
aloop_set_debug(struct aloop_loop *loop, int enabled)
{
	loop->debug = enabled != 0;
}

double
aloop_get_slow_callback_duration(const struct aloop_loop *loop)
{
	return loop->slow_callback_duration;
}

void
aloop_set_slow_callback_duration(struct aloop_loop *loop, double seconds)
{
	if (seconds >= 0)
		loop->slow_callback_duration = seconds;
}

void
aloop__debug_slow(struct aloop_loop *loop, aloop_callback_fn cb,
    const void *source, double took)
{
	char name[256], from[256];

	aloop__debug_describe(*(void **)&cb, name, sizeof(name));
	aloop__debug_describe(source, from, sizeof(from));
	aloop_log(ALOOP_LOG_WARNING, "aloop: executing callback %s "
	    "(scheduled from %s) took %.3f seconds", name, from, took);
}
