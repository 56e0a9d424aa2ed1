/*
 * libFuzzer target for what proxyd reads from Google and the UBports
 * push server: the OAuth2 token endpoint's answer (fcm_auth_parse), FCM
 * error bodies (fcm_classify) and UBports error bodies
 * (ubports_classify). Input: one byte choosing the parser, two bytes of
 * HTTP status (big-endian), then the body. Nothing may crash; a verdict
 * is one of the enum's; a reason is short printable ASCII; GONE (which
 * makes every relay delete the token) only ever comes with the statuses
 * that the providers document for dead tokens; an accepted access token
 * can go into a header as it is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcm.h"
#include "ubports.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_result(const struct provider_result *r, long status, bool fcm)
{
	size_t n = strnlen(r->reason, sizeof(r->reason));

	if (n == 0 || n == sizeof(r->reason) || r->verdict < VERDICT_OK ||
	    r->verdict > VERDICT_CONFIG || r->retry_after_ms != 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (r->reason[i] <= ' ' || r->reason[i] > '~')
			abort();
	if (r->verdict == VERDICT_OK && status != 200)
		abort();
	if (r->verdict == VERDICT_GONE && (fcm ? status != 400 &&
	    status != 403 && status != 404 : status != 400 && status != 401))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct fcm_access_token t;
	struct provider_answer a;
	struct provider_result r;
	const char *body = (const char *)data + 3;
	char err[ERR_LEN];
	long status;

	if (len < 3)
		return 0;
	status = (long)data[1] << 8 | data[2];
	len -= 3;
	a.status = status;
	a.body = body;
	a.len = len;
	a.retry_after_ms = 0;
	switch (data[0] % 3) {
	case 0:
		err[0] = '\0';
		if (fcm_auth_parse(status, body, len, &t, err) < 0) {
			if (err[0] == '\0' || t.value != NULL)
				abort();
			break;
		}
		if (status != 200 || t.lifetime_ms < 1000 ||
		    t.lifetime_ms > FCM_ACCESS_TOKEN_MAX_LIFETIME_S * 1000LL ||
		    t.value[0] == '\0' || strpbrk(t.value, " \r\n\t:,;\"") != NULL)
			abort();
		fcm_access_token_clear(&t);
		break;
	case 1:
		fcm_classify(&a, &r);
		check_result(&r, status, true);
		break;
	default:
		ubports_classify(&a, &r);
		check_result(&r, status, false);
		break;
	}
	return 0;
}
