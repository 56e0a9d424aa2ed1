/*
 * Base64 in the two dialects the stack meets: standard (RFC 4648 §4, with
 * padding: openpgp: tokens, armor) and base64url without padding (§5:
 * JWTs, Web Push keys). OpenSSL's EVP_EncodeBlock/DecodeBlock do the
 * work; this adds strict validation and the URL alphabet.
 */
#ifndef BASE64_H
#define BASE64_H

#include <stddef.h>

#include "buf.h"

/* Append the standard, padded encoding of src to out. */
void	base64_encode(struct buf *out, const void *src, size_t len);
/* Append the unpadded base64url encoding of src to out. */
void	base64url_encode(struct buf *out, const void *src, size_t len);
/* Decode strictly: the standard alphabet with correct padding (no
 * whitespace), or base64url with or without padding. The decoded bytes
 * are appended to out. 0, or -1 on any invalid input. */
int	base64_decode(struct buf *out, const char *src, size_t len);
int	base64url_decode(struct buf *out, const char *src, size_t len);

#endif
