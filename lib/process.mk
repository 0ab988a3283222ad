# libaloop: process sources (see lib/local.mk).
