/*
 * A strict reader of INI files: chatmail relay's chatmail.ini
 * (/usr/local/lib/chatmaild/chatmail.ini), which chatmaild reads with
 * Python's iniconfig. Every file iniconfig accepts in the form cmdeploy
 * writes it is accepted here with the same values:
 *
 *   # comment, ; comment     (the first non-blank character; none after a value)
 *   [section]                (a comment may follow the ])
 *   key = value              (or key: value; key and value trimmed)
 *     continuation           (indented: appended to the value after a LF)
 *
 * Stricter than iniconfig, so that a damaged file fails at start with its
 * line number rather than giving the daemon odd values: a key without a
 * section, an empty key or section name, a duplicate key or section, a
 * [section line not ending in ], control characters (NUL, a lone CR;
 * tab is blank and CRLF line ends are fine), invalid UTF-8, a file over
 * INI_MAX_BYTES, a line over INI_MAX_LINE bytes, more than
 * INI_MAX_ENTRIES keys and sections. Errors read "NAME:LINE: what", as
 * iniconfig's do.
 *
 * ini_parse is pure; ini_load reads the file (never writes it) and parses.
 */
#ifndef INI_H
#define INI_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define INI_MAX_BYTES	(64 * 1024)	/* chatmail.ini: ~4 KiB */
#define INI_MAX_LINE	4096		/* bytes of a line, without its end */
#define INI_MAX_ENTRIES	1024		/* keys and sections together */

struct ini_entry {
	char		*section;	/* owned by the ini */
	char		*key;
	char		*value;		/* continuation lines joined with LF */
	unsigned int	 line;		/* 1-based, of the key */
	bool		 used;		/* taken by ini_get */
};

struct ini {
	char			*name;	/* the path, for messages */
	struct ini_entry	*v;	/* in file order */
	size_t			 n;
	char			**sections;
	unsigned int		*section_lines;
	size_t			 nsections;
};

/* Parses the len bytes at data (any bytes; NUL is an error) into *ini,
 * which need not be initialised. 0, or -1 with "name:line: reason" in err
 * and *ini empty (ini_clear is harmless either way). */
int	ini_parse(struct ini *, const char *name, const char *data, size_t len,
	    char err[ERR_LEN]);
/* Reads the regular file at path (read-only, at most INI_MAX_BYTES) and
 * parses it; as ini_parse, with "path: reason" when it cannot be read. */
int	ini_load(struct ini *, const char *path, char err[ERR_LEN]);
void	ini_clear(struct ini *);

/* Whether the file has that [section]; its line in *line when it has. */
bool	ini_has_section(const struct ini *, const char *section,
	    unsigned int *line);
/* The entry of key in section, marked used; NULL when absent. */
const struct ini_entry *ini_get(struct ini *, const char *section,
	    const char *key);
/* The first entry at or after *pos not taken by ini_get, and *pos past
 * it; NULL at the end. Start with *pos = 0. */
const struct ini_entry *ini_next_unused(const struct ini *, size_t *pos);

#endif
