# Unit tests: dgram (see tests/local.mk).
