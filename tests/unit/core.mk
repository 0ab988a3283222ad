# Unit tests: core (see tests/local.mk).
