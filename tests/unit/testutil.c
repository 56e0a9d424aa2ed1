/* Scratch directories and SQLite files for unit tests; see testutil.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

void
testutil_db_dir(char dir[TESTUTIL_DIR_LEN], const char *prefix,
    const char *db_name, char db_path[TESTUTIL_PATH_LEN])
{
	snprintf(dir, TESTUTIL_DIR_LEN, "/tmp/%s.XXXXXX", prefix);
	assert_non_null(mkdtemp(dir));
	snprintf(db_path, TESTUTIL_PATH_LEN, "%s/%s", dir, db_name);
}

void
testutil_db_dir_remove(const char *dir, const char *db_path)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char p[TESTUTIL_PATH_LEN + 8];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(*suffixes); i++) {
		snprintf(p, sizeof(p), "%s%s", db_path, suffixes[i]);
		unlink(p);
	}
	rmdir(dir);
}
