/*
 * What every aloop header shares: the export marker, error codes and the
 * error value that futures and connection_lost carry.
 */
#ifndef ALOOP_COMMON_H
#define ALOOP_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ALOOP_API	__attribute__((visibility("default")))
#define ALOOP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ALOOP_API
#define ALOOP_PRINTF(f, a)
#endif

/*
 * Error codes.  Every function that can fail returns 0 or one of these,
 * always negative.  System errors are the negated errno (ALOOP_EINVAL is
 * -EINVAL, a refused connect is -ECONNREFUSED); the few asyncio errors with
 * no errno counterpart sit below -4000, out of errno's range.
 *
 * The asyncio exceptions map as follows: ValueError and TypeError are
 * ALOOP_EINVAL, RuntimeError (loop closed, already running, wrong thread) is
 * ALOOP_ESTATE, CancelledError is ALOOP_ECANCELLED, NotImplementedError is
 * ALOOP_ENOTSUP, OSError is its errno, TimeoutError is ALOOP_ETIMEDOUT; the
 * streams' IncompleteReadError is ALOOP_EINCOMPLETE and LimitOverrunError
 * (and readline's ValueError for it) ALOOP_ELIMIT.
 */
#define ALOOP_EINVAL		(-EINVAL)
#define ALOOP_ENOMEM		(-ENOMEM)
#define ALOOP_ENOENT		(-ENOENT)
#define ALOOP_ENOTSUP		(-ENOTSUP)
#define ALOOP_ETIMEDOUT		(-ETIMEDOUT)
#define ALOOP_ECANCELLED	(-ECANCELED)
#define ALOOP_ESTATE		(-4001)	/* wrong state: closed, running, wrong thread */
#define ALOOP_ETLS		(-4002)	/* TLS failure; the message has OpenSSL's reason */
#define ALOOP_ECERT		(-4003)	/* peer certificate failed verification */
#define ALOOP_EHOSTNAME		(-4004)	/* certificate does not match the host name */
#define ALOOP_EMULTI		(-4005)	/* several attempts failed differently */
#define ALOOP_EGAI		(-4006)	/* name resolution failed; see the message */
#define ALOOP_EPLUGIN		(-4007)	/* a plugin could not be loaded or refused */
#define ALOOP_ECONFIG		(-4008)	/* a configuration value is wrong */
#define ALOOP_EINCOMPLETE	(-4009)	/* EOF before the bytes asked for */
#define ALOOP_ELIMIT		(-4010)	/* a stream's buffer limit was reached */

/**
 * The text for an error code.  Never NULL; for an unknown code a generic
 * text.  The string is static: do not free it.  Any thread.
 */
ALOOP_API const char *aloop_strerror(int code);

/**
 * An error as futures and protocols see it: the code and a readable message
 * that may say more than aloop_strerror() (a TLS error keeps OpenSSL's
 * reason, a failed connect names the address).  Whoever hands an aloop_error
 * to a callback keeps it alive for the duration of that callback only.
 */
struct aloop_error {
	int		 code;		/* negative ALOOP_E* */
	const char	*message;	/* never NULL */
};

/** The version of the library in use ("0.1.0"), static.  Any thread. */
ALOOP_API const char *aloop_version(void);
/** The versions of libevent and OpenSSL the library runs with, static. */
ALOOP_API const char *aloop_libevent_version(void);
ALOOP_API const char *aloop_openssl_version(void);

#ifdef __cplusplus
}
#endif

#endif /* ALOOP_COMMON_H */
