# libaloop: core sources (see lib/local.mk).
lib_libaloop_core_la_SOURCES += \
	lib/loop.c lib/timer.c lib/watch.c lib/signal.c lib/policy.c \
	lib/exception.c lib/run.c lib/threadsafe.c lib/loop-int.h \
	lib/loop-core-int.h lib/loop-stats-int.h
# Futures and the executor.
lib_libaloop_core_la_SOURCES += \
	lib/future.c lib/future-int.h lib/executor.c lib/executor-int.h
