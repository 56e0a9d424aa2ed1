/* Unix socket addresses from paths, with the length checked once. */
#ifndef UNIXSOCK_H
#define UNIXSOCK_H

#include <sys/un.h>

#include "err.h"

/* 0 and *out for path, or -1 and err when the path does not fit. */
int	unixsock_addr(const char *path, struct sockaddr_un *out,
	    char err[ERR_LEN]);

#endif
