# libaloop: stream sources (see lib/local.mk).
