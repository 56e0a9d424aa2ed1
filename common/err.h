/*
 * Error strings. Functions in common/, stores and providers never log: they
 * fill a caller-provided `char err[ERR_LEN]` and return -1, and the caller
 * logs once, where it decides what the failure means.
 */
#ifndef ERR_H
#define ERR_H

#define ERR_LEN	256

/* Format into err (truncated to ERR_LEN - 1 bytes). err may be NULL. */
void	err_set(char *err, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
