# libaloop: dgram sources (see lib/local.mk).
