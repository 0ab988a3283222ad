# libaloop: tasks, functions on stacks of their own that await futures (see
# lib/local.mk).  fiber.c holds the context switch and the stacks.
lib_libaloop_core_la_SOURCES += \
	lib/task.c lib/fiber.c lib/fiber-int.h
lib_libaloop_core_la_LIBADD += -lm
