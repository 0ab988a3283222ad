# libaloop: tls sources (see lib/local.mk).
lib_libaloop_core_la_SOURCES += lib/tls_context.c lib/tls.c lib/tls_bio.c \
	lib/start_tls.c lib/tls-int.h
