/*
 * Dovecot's tab-escaping (lib/strescape.c), used per field by the dict
 * protocol: 0x01 -> 01 '1', TAB -> 01 't', CR -> 01 'r', LF -> 01 'n'.
 * On decoding, 01 '0' is NUL and 01 followed by any other byte is that
 * byte. (The older auth-protocol page says 'l' for LF: wrong for dict.)
 */
#ifndef TABESC_H
#define TABESC_H

#include <stddef.h>

#include "buf.h"

/* Append the escaped form of the len bytes at src to out. */
void	tabesc_escape(struct buf *out, const char *src, size_t len);
/* Decode in place (s must have room for len + 1 bytes); returns the new
 * length. A trailing lone 0x01 is kept
 * as is (Dovecot does the same). The result is NUL-terminated. */
size_t	tabesc_unescape(char *s, size_t len);

#endif
