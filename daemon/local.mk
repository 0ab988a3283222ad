# aloopd, the daemon.
sbin_PROGRAMS += daemon/aloopd

# The configuration and plugin modules are shared with the unit tests,
# which link them without main().
ALOOPD_CONFIG_SOURCES = \
	daemon/config.c daemon/config-int.h daemon/config_file.c \
	daemon/config_file.h daemon/config_listener.c \
	daemon/config_listener.h daemon/access.c daemon/access.h \
	daemon/config_parse.c daemon/config-parse-int.h daemon/config_dump.c \
	daemon/accesslog.c daemon/accesslog.h daemon/logsink.c \
	daemon/logsink.h daemon/settings.c daemon/settings-int.h \
	daemon/strmap.c daemon/strmap.h daemon/listening.c \
	daemon/plugin_loader.c daemon/plugin_loader.h \
	daemon/ticket_secret.c daemon/ticket_secret.h daemon/tls_cache.c \
	daemon/tls_cache.h
# TLS reaches the daemon only through libaloop: no OpenSSL here.
ALOOPD_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon \
	$(LIBCONFIG_CFLAGS) $(LIBSYSTEMD_CFLAGS)
ALOOPD_LIBS = $(LIBCONFIG_LIBS) $(LIBSYSTEMD_LIBS) $(PTHREAD_LIBS)

# The running part, in the order it depends: master -> worker ->
# listener -> connection, and what they share (the scoreboard, sockets,
# the plugin check, systemd's protocols, the log).
ALOOPD_RUN_SOURCES = \
	daemon/master.c daemon/master.h daemon/generation.c \
	daemon/generation.h daemon/worker.c daemon/worker.h \
	daemon/listener.c daemon/listener.h daemon/admission.c \
	daemon/admission.h daemon/connection.c daemon/connection.h \
	daemon/tcpinfo.c daemon/tcpinfo.h daemon/sockets.c daemon/sockets.h \
	daemon/scoreboard.c daemon/scoreboard.h daemon/check.c daemon/check.h \
	daemon/proc.c daemon/proc.h daemon/notify.c daemon/notify.h \
	daemon/activation.c daemon/activation.h daemon/metrics.c \
	daemon/metrics.h

daemon_aloopd_SOURCES = daemon/main.c $(ALOOPD_CONFIG_SOURCES) \
	$(ALOOPD_RUN_SOURCES)
daemon_aloopd_CPPFLAGS = $(ALOOPD_CPPFLAGS)
daemon_aloopd_LDADD = lib/libaloop.la $(ALOOPD_LIBS)
# Plugins resolve the settings getters and libaloop from the daemon.
daemon_aloopd_LDFLAGS = $(AM_LDFLAGS) -export-dynamic

# Makes the self-signed certificate of conf/aloop.conf's TLS listener.
EXTRA_DIST += script/make-dev-cert
