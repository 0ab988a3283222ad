# libaloop: subprocesses (see lib/local.mk).
lib_libaloop_core_la_SOURCES += lib/subprocess.c lib/spawn.c \
	lib/subprocess-int.h
