/* Unix socket addresses; see unixsock.h. */
#include <string.h>
#include <sys/socket.h>

#include "unixsock.h"

int
unixsock_addr(const char *path, struct sockaddr_un *out, char err[ERR_LEN])
{
	memset(out, 0, sizeof(*out));
	out->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(out->sun_path)) {
		err_set(err, "socket path too long (max %zu bytes): %s",
		    sizeof(out->sun_path) - 1, path);
		return -1;
	}
	memcpy(out->sun_path, path, strlen(path) + 1);
	return 0;
}
