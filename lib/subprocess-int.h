/*
 * What the subprocess module shares with its tests beyond the public API.
 * Private to lib/.
 */
#ifndef ALOOP_SUBPROCESS_INT_H
#define ALOOP_SUBPROCESS_INT_H

/*
 * Non-zero: watch new children by polling waitpid, as on a kernel without
 * pidfd_open, so that tests can exercise the fallback anywhere.
 * Read when a child starts; loop thread only.
 */
extern int aloop__subprocess_force_poll;

#endif /* ALOOP_SUBPROCESS_INT_H */
