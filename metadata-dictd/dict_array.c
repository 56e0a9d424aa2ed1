/*
 * The one way metadata-dictd grows an array: doubled when full, from a
 * first size the caller picks, so appends cost O(1) on average. Used by
 * every array that grows with input (a transaction's changes, an
 * iteration's rows, the commits of a loop pass, chatmaild's tokens); their
 * bounds are the callers' (DICT_TXN_MAX_CHANGES, ...), not this file's.
 */
#include <stdint.h>
#include <stdlib.h>

#include "dictd.h"
#include "xmalloc.h"

void *
dict_array_grow(void *v, size_t n, size_t *cap, size_t elem_size,
    size_t first_cap)
{
	size_t want;

	if (n < *cap)
		return v;
	want = *cap != 0 ? *cap * 2 : first_cap;
	/* A size that overflows is a programming error: every caller
	 * bounds its array far below SIZE_MAX. */
	if (want <= n || elem_size == 0 || want > SIZE_MAX / elem_size)
		abort();
	v = xrealloc(v, want * elem_size);
	*cap = want;
	return v;
}
