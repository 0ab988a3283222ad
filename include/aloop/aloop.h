/*
 * aloop: asyncio's event loop in C.  The one header a program includes;
 * it brings in every public part of the library.  An aloopd plugin adds
 * <aloop/plugin.h>, the plugin ABI and the daemon's host functions.
 */
#ifndef ALOOP_ALOOP_H
#define ALOOP_ALOOP_H

#include <aloop/version.h>
#include <aloop/common.h>
#include <aloop/log.h>
#include <aloop/future.h>
#include <aloop/loop.h>
#include <aloop/protocol.h>
#include <aloop/transport.h>
#include <aloop/server.h>
#include <aloop/net.h>
#include <aloop/task.h>
#include <aloop/streams.h>
#include <aloop/tls.h>
#include <aloop/subprocess.h>

#endif /* ALOOP_ALOOP_H */
