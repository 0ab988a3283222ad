/*
 * The access log: one line per connection when it ends (and per client
 * refused on accept), in key=value or JSON, to its own target: a file,
 * stderr or syslog.
 *
 * Workers never write the target themselves: each line goes whole into a
 * pipe the master made before its first fork (a write of at most PIPE_BUF
 * bytes is atomic, so workers' lines never interleave), and a full pipe
 * drops the line and counts it, so that a slow disk never stalls a
 * worker's loop.  The master drains the pipe on its own loop and writes
 * the target, which it also reopens on SIGUSR1 (for logrotate) and
 * switches on a reload.
 */
#ifndef ALOOPD_ACCESSLOG_H
#define ALOOPD_ACCESSLOG_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

struct aloop_loop;
struct config;

/* The daemon's access_log setting. */
#define ALOG_OFF	0
#define ALOG_STDERR	1
#define ALOG_SYSLOG	2
#define ALOG_FILE	3

#define ALOG_KV		0
#define ALOG_JSON	1

/* Master: make the pipe (before any fork).  0 or a negative errno. */
int	alog_init(struct aloop_loop *loop);

/*
 * Master: write to @cfg's target from now on (start and reload); the
 * target stays as it was if the new one cannot be opened (logged).
 */
int	alog_configure(const struct config *cfg);

/* Master: reopen the file (SIGUSR1); stdout and syslog need nothing. */
void	alog_reopen(void);

/* Master: write what is left and close everything. */
void	alog_shutdown(void);

/* The pipe's write end, for the workers' inherited descriptors, or -1. */
int	alog_pipe(void);

/* Why a connection ended, for its line. */
enum alog_end {
	ALOG_EOF,		/* the peer closed first */
	ALOG_RESET,		/* the peer reset it */
	ALOG_ERROR,		/* another error; the line says which */
	ALOG_CLOSED,		/* the plugin closed it */
	ALOG_ABORTED,		/* the plugin aborted it */
	ALOG_IDLE,		/* idle_timeout */
	ALOG_FIRST_BYTE,	/* first_byte_timeout */
	ALOG_WRITE,		/* write_timeout */
	ALOG_SHUTDOWN,		/* the drain deadline of a stop or reload */
	ALOG_REFUSED,		/* reset on accept; why is in @refused */
};

/* One line's facts; every pointer borrowed for the call, NULL if absent. */
struct alog_entry {
	const char		*listener;
	unsigned		 worker;
	const struct sockaddr	*client;
	socklen_t		 client_len;
	const struct sockaddr	*local;
	socklen_t		 local_len;
	const char		*tls_version;
	const char		*sni;
	const char		*alpn;
	double			 duration;	/* seconds */
	uint64_t		 bytes_in;
	uint64_t		 bytes_out;
	enum alog_end		 end;
	const char		*error;		/* ALOG_ERROR */
	const char		*refused;	/* ALOG_REFUSED: the setting */
};

/*
 * Worker: format @e as @format (ALOG_KV or ALOG_JSON) and hand it to the
 * master.  0, or -1 if the line was dropped (the pipe is full).
 */
int	alog_write(int format, const struct alog_entry *e);

/* The line of @e as @format into @buf (always terminated); its length. */
size_t	alog_format(int format, const struct alog_entry *e, char *buf,
	    size_t size);

#endif /* ALOOPD_ACCESSLOG_H */
