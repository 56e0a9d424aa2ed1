/*
 * Allocation that cannot fail: on out-of-memory the process aborts, because
 * no daemon here can do anything useful without memory and every caller
 * checking NULL would hide the real bounds (which are on peer input, not on
 * malloc). x_free-style functions in this project accept NULL.
 */
#ifndef XMALLOC_H
#define XMALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
/* Copies of s (caller frees); xstrndup copies at most n bytes and adds NUL. */
char	*xstrdup(const char *s);
char	*xstrndup(const char *s, size_t n);
/* Copy of the n bytes at p plus a NUL byte (caller frees). */
char	*xmemdup0(const void *p, size_t n);
/* asprintf that aborts on failure (caller frees). */
char	*xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
