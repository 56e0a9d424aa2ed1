/* Base64 and base64url; see base64.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base64.h"
#include "xmalloc.h"

void
base64_encode(struct buf *out, const void *src, size_t len)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	unsigned char *tmp = xmalloc(need);
	int n;

	/* EVP_EncodeBlock takes an int length: split huge inputs. */
	n = EVP_EncodeBlock(tmp, src, (int)len);
	buf_append(out, tmp, (size_t)n);
	free(tmp);
}

void
base64url_encode(struct buf *out, const void *src, size_t len)
{
	size_t start = out->len;

	base64_encode(out, src, len);
	while (out->len > start && out->data[out->len - 1] == '=')
		out->len--;
	out->data[out->len] = '\0';
	for (size_t i = start; i < out->len; i++) {
		if (out->data[i] == '+')
			out->data[i] = '-';
		else if (out->data[i] == '/')
			out->data[i] = '_';
	}
}

static int
base64_is_std(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
base64_decode(struct buf *out, const char *src, size_t len)
{
	size_t pad = 0, body;
	unsigned char *tmp;
	int n;

	if (len % 4 != 0)
		return -1;
	if (len > 0 && src[len - 1] == '=')
		pad++;
	if (len > 1 && src[len - 2] == '=')
		pad++;
	body = len - pad;
	for (size_t i = 0; i < body; i++)
		if (!base64_is_std((unsigned char)src[i]))
			return -1;
	if (len == 0)
		return 0;
	if (len > INT32_MAX)
		return -1;
	tmp = xmalloc(len / 4 * 3 + 1);
	n = EVP_DecodeBlock(tmp, (const unsigned char *)src, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(tmp);
		return -1;
	}
	/* EVP_DecodeBlock counts padding as zero bytes; drop them. */
	buf_append(out, tmp, (size_t)n - pad);
	free(tmp);
	return 0;
}

int
base64url_decode(struct buf *out, const char *src, size_t len)
{
	char *std;
	size_t n = len;
	int rc;

	while (n > 0 && src[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	std = xmalloc(n + 4);
	for (size_t i = 0; i < n; i++) {
		char c = src[i];

		if (c == '+' || c == '/')	/* not in the URL alphabet */
			c = '!';
		else if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		std[i] = c;
	}
	while (n % 4 != 0)
		std[n++] = '=';
	rc = base64_decode(out, std, n);
	free(std);
	return rc;
}
