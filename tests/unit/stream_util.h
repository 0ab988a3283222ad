/*
 * What the stream, server, connection, socket and pipe tests share: a
 * protocol that records every callback and checks asyncio's order, a
 * bounded way to run the loop until something happened, and descriptor
 * counting for leak checks.
 */
#ifndef ALOOP_TEST_STREAM_UTIL_H
#define ALOOP_TEST_STREAM_UTIL_H

#include <sys/socket.h>

#include <stddef.h>

#include <aloop/aloop.h>

#include "loop-test.h"

/* One connection's protocol state, as the recording protocol keeps it. */
struct rec {
	struct aloop_transport	*t;
	int			 made, eofs, lost, pauses, resumes;
	int			 bad;		/* a callback out of order */
	int			 lost_code;	/* 0: clean */
	size_t			 nrecv;		/* bytes received */
	unsigned char		 data[4096];	/* the first of them */
	int			 keep_open;	/* eof_received's answer */
	int			 echo;		/* write back what arrives */
	int			 pause_in_made;	/* pause_reading in made */
	int			 abort_on_data;	/* abort inside data_received */
	size_t			 size_at_pause, size_at_resume;
	void			(*on_made)(struct rec *r);
	void			(*on_eof)(struct rec *r);
	void			*user;
};

/* A fixed pool the factory hands out from; the test inspects it. */
#define REC_POOL_MAX	64
struct rec_pool {
	struct rec	 r[REC_POOL_MAX];
	int		 n;
	struct rec	 tmpl;		/* copied into each new one */
	int		 refuse;	/* the factory refuses with this */
};

extern const struct aloop_protocol rec_proto;
int	rec_factory(void *pool, void **state);

/* A new loop, or a failed assertion. */
struct aloop_loop *test_loop(void);
/* Close and free @loop, asserting it went. */
void	test_loop_done(struct aloop_loop *loop);

/* Run @loop for about @secs seconds (I/O and callbacks happen). */
void	run_for(struct aloop_loop *loop, double secs);
double	now_mono(void);

/* Run the loop until @cond holds or @secs passed; the value of @cond. */
#define WAIT_UNTIL(loop, cond, secs) ({					\
	double wait_deadline_ = now_mono() + (secs);			\
	while (!(cond) && now_mono() < wait_deadline_)			\
		run_for((loop), 0.002);					\
	(cond);								\
})

/* Wait (bounded) for @fut and return its outcome, *@res its result. */
int	wait_future(struct aloop_loop *loop, struct aloop_future *fut,
	    void **res);


/* The port a bound socket listens on. */
int	sock_port(int fd);

/* A listening server on 127.0.0.1 port 0 driven by rec_proto; its port. */
struct aloop_server *start_server(struct aloop_loop *loop,
	    struct rec_pool *pool, const char *host, int *port);

/* Connect with create_connection; the client's transport (rec in pool). */
struct aloop_transport *connect_to(struct aloop_loop *loop,
	    struct rec_pool *pool, const char *host, int port);

/* A blocking client socket connected to @host:@port (numeric). */
int	raw_connect(int family, const char *host, int port);

/* Whether IPv6 loopback works here. */
int	have_ipv6(void);

#endif /* ALOOP_TEST_STREAM_UTIL_H */
