# Unit tests: stream (see tests/local.mk).
