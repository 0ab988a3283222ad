# aloopd, the daemon.
sbin_PROGRAMS += daemon/aloopd
daemon_aloopd_SOURCES = daemon/main.c
daemon_aloopd_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/daemon \
	$(LIBCONFIG_CFLAGS) $(LIBSYSTEMD_CFLAGS)
daemon_aloopd_LDADD = lib/libaloop.la $(LIBCONFIG_LIBS) $(LIBSYSTEMD_LIBS)
# Plugins resolve the settings getters and the daemon's helpers from here.
daemon_aloopd_LDFLAGS = $(AM_LDFLAGS) -export-dynamic
