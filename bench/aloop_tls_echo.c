/*
 * A TLS echo server on libaloop, for the shared benchmark's TLS load
 * clients (echo_load --tls, tls_handshake_load).  It echoes what it
 * decrypts, stops reading while a client does not drain its echo, and
 * exits 0 on SIGTERM or SIGINT.
 *
 *   aloop_tls_echo --port 7400 --cert cert.pem --key key.pem [--host H]
 *       [--tls13] [--no-resumption]
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aloop/aloop.h>

static void
tls_echo_data(struct aloop_transport *t, void *state, const void *data,
    size_t len)
{
	(void)state;
	(void)aloop_transport_write(t, data, len);
}

static void
tls_echo_pause(struct aloop_transport *t, void *state)
{
	(void)state;
	aloop_transport_pause_reading(t);
}

static void
tls_echo_resume(struct aloop_transport *t, void *state)
{
	(void)state;
	aloop_transport_resume_reading(t);
}

static const struct aloop_protocol tls_echo_proto = {
	.data_received = tls_echo_data,
	.pause_writing = tls_echo_pause,
	.resume_writing = tls_echo_resume,
};

static int
tls_echo_factory(void *arg, void **state)
{
	(void)arg;
	*state = NULL;
	return 0;
}

static void
tls_echo_stop(void *arg)
{
	aloop_stop(arg);
}

static void
tls_echo_created(struct aloop_future *fut, void *arg)
{
	(void)fut;
	aloop_stop(arg);
}

static void
usage(void)
{
	fprintf(stderr, "usage: aloop_tls_echo --port N --cert FILE --key FILE "
	    "[--host H] [--tls13] [--no-resumption]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'H' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "tls13", no_argument, NULL, '3' },
		{ "no-resumption", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *port = NULL, *host = "127.0.0.1", *cert = NULL, *key = NULL;
	struct aloop_server_options o;
	struct aloop_tls_context *ctx;
	struct aloop_server *srv = NULL;
	struct aloop_future *fut = NULL;
	struct aloop_loop *loop;
	int c, rc, tls13 = 0, resumption = 1;

	while ((c = getopt_long(argc, argv, "p:H:c:k:3R", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case '3':
			tls13 = 1;
			break;
		case 'R':
			resumption = 0;
			break;
		default:
			usage();
		}
	}
	if (optind < argc && port == NULL)
		port = argv[optind];
	if (port == NULL || cert == NULL)
		usage();

	if ((rc = aloop_tls_context_new(ALOOP_TLS_SERVER, &ctx)) != 0) {
		fprintf(stderr, "aloop_tls_echo: %s\n", aloop_strerror(rc));
		return 1;
	}
	if (aloop_tls_context_load_cert_chain(ctx, cert, key) != 0 ||
	    (tls13 && aloop_tls_context_set_min_version(ctx, "TLSv1.3") != 0)) {
		fprintf(stderr, "aloop_tls_echo: %s\n",
		    aloop_tls_context_last_error(ctx));
		return 1;
	}
	aloop_tls_context_set_session_resumption(ctx, resumption);

	if ((rc = aloop_loop_new(&loop)) != 0) {
		fprintf(stderr, "aloop_tls_echo: %s\n", aloop_strerror(rc));
		return 1;
	}
	aloop_server_options_init(&o);
	o.ssl = ctx;
	o.backlog = 1024;
	rc = aloop_create_server(loop, &tls_echo_proto, tls_echo_factory, NULL,
	    host, port, &o, &fut);
	/* The server holds its own reference from here on. */
	aloop_tls_context_release(ctx);
	if (rc == 0 && !aloop_future_done(fut))
		rc = aloop_future_add_done_callback(fut, tls_echo_created,
		    loop);
	if (rc == 0 && !aloop_future_done(fut))
		rc = aloop_run_forever(loop);
	if (rc == 0)
		rc = aloop_future_result(fut, (void **)&srv);
	if (rc != 0) {
		const struct aloop_error *err = fut != NULL ?
		    aloop_future_error(fut) : NULL;

		fprintf(stderr, "aloop_tls_echo: %s\n", err != NULL ?
		    err->message : aloop_strerror(rc));
		return 1;
	}
	aloop_future_release(fut);
	if (aloop_add_signal_handler(loop, SIGTERM, tls_echo_stop, loop) != 0 ||
	    aloop_add_signal_handler(loop, SIGINT, tls_echo_stop, loop) != 0) {
		fprintf(stderr, "aloop_tls_echo: cannot handle signals\n");
		return 1;
	}
	(void)aloop_run_forever(loop);
	aloop_server_close(srv);
	aloop_server_release(srv);
	(void)aloop_loop_free(loop);
	return 0;
}
