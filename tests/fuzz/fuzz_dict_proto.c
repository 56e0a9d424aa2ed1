/*
 * libFuzzer target for metadata-dictd's line parser: anything may be
 * rejected, nothing may crash, and what is accepted must format back to a
 * line that parses to the same command.
 */
#include <stdint.h>
#include <stdlib.h>

#include "dictd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct dict_cmd a, b;
	char err[ERR_LEN], *line;
	size_t n;

	if (dict_proto_parse((const char *)data, len, &a, err) < 0)
		return 0;		/* rejecting is fine, crashing is not */
	line = dict_proto_format(&a, &n);	/* caller frees */
	if (n == 0 || line[n - 1] != '\n')
		abort();
	if (dict_proto_parse(line, n - 1, &b, err) < 0 ||
	    !dict_cmd_equal(&a, &b))
		abort();		/* what we accept, we can write back */
	free(line);
	dict_cmd_clear(&a);
	dict_cmd_clear(&b);
	return 0;
}
