/*
 * Status messages to the service manager (sd_notify: READY, RELOADING,
 * STOPPING, STATUS, WATCHDOG), through libsystemd when configure found it
 * and with the documented plain protocol otherwise.
 */
#ifndef ALOOPD_NOTIFY_H
#define ALOOPD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

/*
 * Send @state ("READY=1", several assignments separated by newlines) to the
 * service manager.  0 when sent, also 0 when no manager listens
 * ($NOTIFY_SOCKET unset): a daemon run by hand must not fail for that.
 * A negative errno when the message could not be sent.  Any thread.
 */
int	notify_send(const char *state);

/* The plain protocol, always built: a datagram to $NOTIFY_SOCKET. */
int	notify_send_plain(const char *state);

/* The usual messages, each a notify_send() with the fields systemd wants. */
int	notify_ready(void);
int	notify_reloading(void);		/* RELOADING=1 and MONOTONIC_USEC */
int	notify_stopping(void);
int	notify_status(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
int	notify_watchdog(void);

/*
 * The watchdog interval systemd expects pings within, in microseconds,
 * from WATCHDOG_USEC (honouring WATCHDOG_PID); 0 when no watchdog is set.
 */
uint64_t notify_watchdog_usec(void);
/* The same, always without libsystemd (for the tests). */
uint64_t notify_watchdog_usec_plain(void);

#endif /* ALOOPD_NOTIFY_H */
