/*
 * A TCP (or UNIX) echo server on libaloop, to be measured against the
 * peers of the shared benchmark (raw epoll, libevent, asyncio, ...) with
 * their load client.  It echoes what it reads, honours flow control the
 * way a plugin should (stop reading while the peer does not drain), and
 * exits 0 on SIGTERM or SIGINT.
 *
 *   aloop_echo --port 7300 [--host 127.0.0.1]
 *   aloop_echo --unix /tmp/aloop_echo.sock
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>

static void
echo_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	(void)state;
	(void)aloop_transport_write(t, data, len);
}

/* A client that does not read must not make the server buffer forever. */
static void
echo_pause(struct aloop_transport *t, void *state)
{
	(void)state;
	aloop_transport_pause_reading(t);
}

static void
echo_resume(struct aloop_transport *t, void *state)
{
	(void)state;
	aloop_transport_resume_reading(t);
}

static const struct aloop_protocol echo_proto = {
	.data_received = echo_data,
	.pause_writing = echo_pause,
	.resume_writing = echo_resume,
};

static int
echo_factory(void *arg, void **state)
{
	(void)arg;
	*state = NULL;
	return 0;
}

static void
on_signal(void *arg)
{
	aloop_stop(arg);
}

static void
on_created(struct aloop_future *fut, void *arg)
{
	(void)fut;
	aloop_stop(arg);
}

static void
usage(void)
{
	fprintf(stderr, "usage: aloop_echo --port N [--host H] | "
	    "--unix PATH\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'H' },
		{ "unix", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const char *port = NULL, *host = "127.0.0.1", *path = NULL;
	struct aloop_server *srv = NULL;
	struct aloop_future *fut = NULL;
	struct aloop_loop *loop;
	int c, rc;

	while ((c = getopt_long(argc, argv, "p:H:u:", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 'u':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	/* The shared scripts pass the port as a bare argument too. */
	if (optind < argc && port == NULL && path == NULL)
		port = argv[optind];
	if ((port == NULL) == (path == NULL))
		usage();
	if ((rc = aloop_loop_new(&loop)) != 0) {
		fprintf(stderr, "aloop_echo: %s\n", aloop_strerror(rc));
		return 1;
	}
	if (path != NULL)
		rc = aloop_create_unix_server(loop, &echo_proto, echo_factory,
		    NULL, path, NULL, &fut);
	else
		rc = aloop_create_server(loop, &echo_proto, echo_factory,
		    NULL, host, port, NULL, &fut);
	if (rc == 0 && !aloop_future_done(fut))
		rc = aloop_future_add_done_callback(fut, on_created, loop);
	if (rc == 0 && !aloop_future_done(fut))
		rc = aloop_run_forever(loop);
	if (rc == 0)
		rc = aloop_future_result(fut, (void **)&srv);
	if (rc != 0) {
		const struct aloop_error *err = fut != NULL ?
		    aloop_future_error(fut) : NULL;

		fprintf(stderr, "aloop_echo: %s\n", err != NULL ?
		    err->message : aloop_strerror(rc));
		return 1;
	}
	aloop_future_release(fut);
	if (aloop_add_signal_handler(loop, SIGTERM, on_signal, loop) != 0 ||
	    aloop_add_signal_handler(loop, SIGINT, on_signal, loop) != 0) {
		fprintf(stderr, "aloop_echo: cannot handle signals\n");
		return 1;
	}
	(void)aloop_run_forever(loop);
	aloop_server_close(srv);
	aloop_server_release(srv);
	(void)aloop_loop_free(loop);
	return 0;
}
