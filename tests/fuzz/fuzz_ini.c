/*
 * libFuzzer target for the INI reader (common/ini.c) and what
 * metadata-dictd takes from a chatmail.ini (common/chatmail_ini.c).
 * Anything may be rejected, nothing may crash, and what is accepted must
 * hold together: a failure names the file and leaves nothing behind;
 * every key sits in a known section, once, trimmed, without control
 * bytes; lines go forward and stay within the input; the server entries
 * taken from [params] are of the form their flags take.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatmail_ini.h"
#include "ini.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_check_text(const char *s, bool lf_ok)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t' && !(lf_ok && *p == '\n')) ||
		    *p == 0x7f)
			abort();
}

static bool
fuzz_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void
fuzz_check_entries(struct ini *ini, const uint8_t *data, size_t len)
{
	unsigned int last = 0;
	size_t lines = 1;

	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	if (ini->n + ini->nsections > INI_MAX_ENTRIES)
		abort();
	for (size_t i = 0; i < ini->nsections; i++) {
		if (ini->sections[i][0] == '\0' ||
		    ini->section_lines[i] == 0 ||
		    ini->section_lines[i] > lines)
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(ini->sections[i], ini->sections[j]) == 0)
				abort();
		fuzz_check_text(ini->sections[i], false);
	}
	for (size_t i = 0; i < ini->n; i++) {
		const struct ini_entry *e = &ini->v[i];
		size_t kl = strlen(e->key), vl = strlen(e->value);

		if (kl == 0 || fuzz_blank(e->key[0]) ||
		    fuzz_blank(e->key[kl - 1]) || (vl > 0 &&
		    (fuzz_blank(e->value[0]) || fuzz_blank(e->value[vl - 1]))))
			abort();
		if (e->line < last || e->line == 0 || e->line > lines ||
		    !ini_has_section(ini, e->section, NULL) || e->used)
			abort();
		last = e->line;
		fuzz_check_text(e->key, false);
		fuzz_check_text(e->value, true);
		if (kl + vl > len)
			abort();
		if (ini_get(ini, e->section, e->key) != e || !e->used)
			abort();
	}
}

static void
fuzz_check_vendor(struct ini *ini)
{
	struct chatmail_ini_vendor cv;
	char err[ERR_LEN];

	if (chatmail_ini_check(ini, err) < 0)
		return;
	if (chatmail_ini_vendor(ini, &cv, err) < 0) {
		if (strncmp(err, "fuzz.ini", 8) != 0)
			abort();
		return;
	}
	if (cv.mail_domain == NULL || cv.turn_host != cv.mail_domain ||
	    strpbrk(cv.turn_host, ":/ []") != NULL || cv.turn_socket == NULL ||
	    cv.turn_socket[0] != '/')
		abort();
	if (cv.iroh_relay != NULL &&
	    strncmp(cv.iroh_relay, "https://", 8) != 0 &&
	    strncmp(cv.iroh_relay, "http://", 7) != 0)
		abort();
	if (cv.iroh_relay != NULL && strpbrk(cv.iroh_relay, " \t\n") != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char err[ERR_LEN];
	struct ini ini;

	if (ini_parse(&ini, "fuzz.ini", (const char *)data, len, err) < 0) {
		if (strncmp(err, "fuzz.ini", 8) != 0 || ini.n != 0 ||
		    ini.v != NULL || ini.nsections != 0 || ini.name != NULL)
			abort();
		return 0;
	}
	fuzz_check_entries(&ini, data, len);
	/* ini_get marked everything; start again for the vendor keys. */
	for (size_t i = 0; i < ini.n; i++)
		ini.v[i].used = false;
	fuzz_check_vendor(&ini);
	ini_clear(&ini);
	return 0;
}
