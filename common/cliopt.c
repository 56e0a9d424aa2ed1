/* Option values that exit on error; see cliopt.h. */
#include "cli.h"
#include "cliopt.h"
#include "log.h"

int64_t
cliopt_duration_ms(const char *flag, const char *arg)
{
	char err[ERR_LEN];
	int64_t ms = 0;

	if (cli_parse_duration_ms(arg, &ms, err) < 0)
		fatalx("--%s: %s", flag, err);
	if (ms <= 0)
		fatalx("--%s: must be positive", flag);
	return ms;
}

uint64_t
cliopt_uint(const char *flag, const char *arg, uint64_t min, uint64_t max)
{
	char err[ERR_LEN];
	uint64_t v;

	if (cli_parse_uint(arg, min, max, &v, err) < 0)
		fatalx("--%s: %s", flag, err);
	return v;
}

uint64_t
cliopt_size(const char *flag, const char *arg, uint64_t min, uint64_t max)
{
	char err[ERR_LEN];
	uint64_t v;

	if (cli_parse_size(arg, &v, err) < 0)
		fatalx("--%s: %s", flag, err);
	if (v < min || v > max)
		fatalx("--%s: must be between %llu and %llu bytes", flag,
		    (unsigned long long)min, (unsigned long long)max);
	return v;
}
