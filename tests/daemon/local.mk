# Tests that run the real aloopd (see tests/local.mk).
