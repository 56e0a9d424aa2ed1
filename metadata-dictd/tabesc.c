/* Dovecot tab-escaping; see tabesc.h. */
#include <string.h>

#include "tabesc.h"

void
tabesc_escape(struct buf *out, const char *src, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		char code;

		/* Every byte to escape is <= CR: one compare for the rest. */
		if ((unsigned char)src[i] > '\r')
			continue;
		switch (src[i]) {
		case '\001': code = '1'; break;
		case '\t': code = 't'; break;
		case '\r': code = 'r'; break;
		case '\n': code = 'n'; break;
		default: continue;
		}
		buf_append(out, src + start, i - start);
		buf_append_char(out, '\001');
		buf_append_char(out, code);
		start = i + 1;
	}
	buf_append(out, src + start, len - start);
}

size_t
tabesc_unescape(char *s, size_t len)
{
	char *esc = memchr(s, '\001', len);
	size_t r, w;

	if (esc == NULL) {
		s[len] = '\0';
		return len;
	}
	for (r = w = (size_t)(esc - s); r < len; r++) {
		if (s[r] != '\001' || r + 1 == len) {
			s[w++] = s[r];
			continue;
		}
		switch (s[++r]) {
		case '1': s[w++] = '\001'; break;
		case 't': s[w++] = '\t'; break;
		case 'r': s[w++] = '\r'; break;
		case 'n': s[w++] = '\n'; break;
		case '0': s[w++] = '\0'; break;
		default: s[w++] = s[r]; break;
		}
	}
	s[w] = '\0';
	return w;
}
