/*
 * What lib/dgram_endpoint.c, which makes datagram sockets, needs from the
 * datagram transport in lib/dgram.c.  Private to lib/.
 */
#ifndef ALOOP_DGRAM_INT_H
#define ALOOP_DGRAM_INT_H

#include <aloop/future.h>
#include <aloop/protocol.h>

struct aloop_loop;

/*
 * The endpoint around the bound (and maybe connected) non-blocking,
 * close-on-exec datagram socket @fd, owned from here on (closed on every
 * path).  On the next loop turn the factory makes the protocol state,
 * @fut (the transport takes its own reference) completes with the
 * transport, and connection_made runs; a refusing factory or a cancelled
 * @fut closes the socket with no protocol callback.  Returns 0, or
 * ALOOP_ENOMEM with @fut untouched.
 */
int	aloop__dgram_new(struct aloop_loop *loop,
	    const struct aloop_datagram_protocol *proto,
	    aloop_protocol_factory_fn factory, void *factory_arg, int fd,
	    struct aloop_future *fut);

#endif /* ALOOP_DGRAM_INT_H */
