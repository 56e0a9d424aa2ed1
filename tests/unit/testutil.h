/* Helpers shared by the unit tests: scratch directories and SQLite files.
 * Failures abort the test (cmocka assertions). */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#define TESTUTIL_DIR_LEN	64
#define TESTUTIL_PATH_LEN	128

/* A fresh directory "/tmp/<prefix>.XXXXXX" in dir, and db_path set to
 * "<dir>/<db_name>". */
void	testutil_db_dir(char dir[TESTUTIL_DIR_LEN], const char *prefix,
	    const char *db_name, char db_path[TESTUTIL_PATH_LEN]);
/* Removes the database, its -wal and -shm companions, and the dir. */
void	testutil_db_dir_remove(const char *dir, const char *db_path);

#endif
