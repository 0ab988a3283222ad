# libaloop: tls sources (see lib/local.mk).
