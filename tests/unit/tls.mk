# Unit tests: tls (see tests/local.mk).
