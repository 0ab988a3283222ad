/*
 * The kernel's struct tcp_info as Linux defines it: glibc's copy in
 * <netinet/tcp.h> stops before tcpi_bytes_acked, and the two headers
 * cannot meet in one file, so this one uses only Linux's.
 */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <linux/sockios.h>
#include <linux/tcp.h>

#include <netinet/in.h>

#include <stddef.h>
#include <string.h>

#include "tcpinfo.h"

int
sock_facts(int fd, struct sock_facts *f)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int outq = 0;

	memset(f, 0, sizeof(*f));
	if (ioctl(fd, SIOCOUTQ, &outq) == -1)
		return -1;
	f->outq = outq > 0 ? (uint64_t)outq : 0;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    len >= offsetof(struct tcp_info, tcpi_bytes_acked) +
	    sizeof(ti.tcpi_bytes_acked)) {
		f->tcp = 1;
		f->since_sent = ti.tcpi_last_data_sent / 1000.0;
		f->since_recv = ti.tcpi_last_data_recv / 1000.0;
		f->acked = ti.tcpi_bytes_acked;
	}
	return 0;
}
