# libaloop: core sources (see lib/local.mk).
