/*
 * A growable byte buffer. The bytes are always followed by a NUL that is
 * not counted in len, so text can be used as a C string.
 */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>

struct buf {
	char	*data;		/* owned; NULL until the first append */
	size_t	 len;
	size_t	 cap;
};

void	buf_init(struct buf *);
/* Frees the bytes; the struct itself is the caller's. */
void	buf_clear(struct buf *);
void	buf_reset(struct buf *);	/* len = 0, keeps memory */
void	buf_append(struct buf *, const void *, size_t);
void	buf_append_str(struct buf *, const char *);
void	buf_append_char(struct buf *, char);
void	buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (who frees them) and empties the buf. */
char	*buf_steal(struct buf *, size_t *len_out);

#endif
