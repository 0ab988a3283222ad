# Unit tests: process (see tests/local.mk).
