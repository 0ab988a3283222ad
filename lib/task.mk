# libaloop: tasks, functions on stacks of their own that await futures,
# and the streams built on them (see lib/local.mk).  fiber.c holds the
# context switch and the stacks; -lm for isnan's fallback.
lib_libaloop_core_la_SOURCES += \
	lib/task.c lib/fiber.c lib/fiber-int.h lib/streams.c
lib_libaloop_core_la_LIBADD += -lm

# Their headers, installed beside the others.
taskincludedir = $(includedir)/aloop
dist_taskinclude_HEADERS = include/aloop/task.h include/aloop/streams.h
