/*
 * libFuzzer target for metadata-dictd's line parser (dict_cmd_parse: the
 * command table's row for the letter, its fields parsed by dict_proto.c):
 * anything may be rejected, nothing may crash, and what is accepted must
 * be the command the table says, with the fields its row allows, and
 * format back to a line that parses to the same command.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "dictd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static bool
row_has_field(const struct dict_cmd_def *def, enum dict_field f)
{
	for (unsigned int i = 0; i < def->nfields; i++)
		if (def->fields[i] == f)
			return true;
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct dict_cmd a, b;
	char err[ERR_LEN], *line;
	size_t n;

	if (dict_cmd_parse((const char *)data, len, &a, err) < 0)
		return 0;		/* rejecting is fine, crashing is not */
	if (a.def == NULL || a.def != dict_cmd_def_find(data[0]) ||
	    (int)a.kind != data[0])
		abort();		/* the row of the line's letter */
	/* Only the fields of its row: a key only where the row has one. */
	if ((a.key != NULL) != (row_has_field(a.def, DICT_FIELD_KEY)) ||
	    (a.value != NULL) != row_has_field(a.def, DICT_FIELD_VALUE))
		abort();
	line = dict_proto_format(&a, &n);	/* caller frees */
	if (n == 0 || line[n - 1] != '\n')
		abort();
	if (dict_cmd_parse(line, n - 1, &b, err) < 0 ||
	    !dict_cmd_equal(&a, &b))
		abort();		/* what we accept, we can write back */
	free(line);
	dict_cmd_clear(&a);
	dict_cmd_clear(&b);
	return 0;
}
