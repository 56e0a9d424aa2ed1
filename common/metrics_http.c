/* GET /metrics over libmicrohttpd; see metrics_http.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "cli.h"
#include "metrics.h"
#include "metrics_http.h"
#include "xmalloc.h"

#define METRICS_HTTP_MAX_CONNECTIONS	16
#define METRICS_HTTP_TIMEOUT_S		10

struct metrics_http {
	struct MHD_Daemon	*mhd;
	struct metrics		*metrics;
};

static enum MHD_Result
metrics_http_answer(void *arg, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **req_state)
{
	struct metrics_http *mh = arg;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned int status = MHD_HTTP_OK;
	char *body;
	size_t len;

	(void)version;
	(void)upload_data;
	if (*req_state == NULL) {	/* headers only so far */
		*req_state = mh;
		return MHD_YES;
	}
	if (*upload_size != 0) {	/* discard any body */
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		body = xstrdup("method not allowed\n");
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") != 0) {
		body = xstrdup("not found\n");
		status = MHD_HTTP_NOT_FOUND;
	} else
		body = metrics_render(mh->metrics, &len);
	len = strlen(body);
	resp = MHD_create_response_from_buffer(len, body,
	    MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    status == MHD_HTTP_OK ? METRICS_CONTENT_TYPE :
	    "text/plain; charset=utf-8");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

struct metrics_http *
metrics_http_start(struct metrics *metrics, const char *hostport,
    char err[ERR_LEN])
{
	struct sockaddr_storage ss;
	struct metrics_http *mh;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	char *host;
	uint16_t port;

	memset(&ss, 0, sizeof(ss));
	if (cli_parse_hostport(hostport, &host, &port, err) < 0)
		return NULL;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->
	    sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->
	    sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		flags |= MHD_USE_IPv6;
	} else {
		err_set(err, "metrics address %s: not a numeric IP address",
		    host);
		free(host);
		return NULL;
	}
	free(host);

	mh = xcalloc(1, sizeof(*mh));
	mh->metrics = metrics;
	mh->mhd = MHD_start_daemon(flags, port, NULL, NULL,
	    metrics_http_answer, mh,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
	    MHD_OPTION_END);
	if (mh->mhd == NULL) {
		err_set(err, "cannot listen on %s for metrics", hostport);
		free(mh);
		return NULL;
	}
	return mh;
}

void
metrics_http_stop(struct metrics_http *mh)
{
	if (mh == NULL)
		return;
	MHD_stop_daemon(mh->mhd);
	free(mh);
}
