/* The table of providers; see providers.h. */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "providers.h"

const struct provider_ops *const providers[] = {
	&apns_ops,
	&fcm_ops,
	&webpush_ops,
	&ubports_ops,
};

const size_t providers_count = sizeof(providers) / sizeof(providers[0]);

/* Where each entry above finds its settings, in the same order. */
static const size_t providers_settings_at[] = {
	offsetof(struct providers_config, apns),
	offsetof(struct providers_config, fcm),
	offsetof(struct providers_config, webpush),
	offsetof(struct providers_config, ubports),
};

_Static_assert(sizeof(providers_settings_at) /
    sizeof(providers_settings_at[0]) == sizeof(providers) /
    sizeof(providers[0]), "one settings member per provider");

_Static_assert(sizeof(providers) / sizeof(providers[0]) <= PROVIDERS_MAX,
    "PROVIDERS_MAX is too small for the table");

const struct provider_ops *
providers_of(enum token_kind kind)
{
	size_t i;

	for (i = 0; i < providers_count; i++)
		if (providers[i]->token_kinds & PROVIDER_TOKEN(kind))
			return providers[i];
	return NULL;
}

const struct provider_ops *
providers_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < providers_count; i++)
		if (strlen(providers[i]->name) == len &&
		    strncasecmp(providers[i]->name, name, len) == 0)
			return providers[i];
	return NULL;
}

int
providers_index(const struct provider_ops *ops)
{
	size_t i;

	for (i = 0; i < providers_count; i++)
		if (providers[i] == ops)
			return (int)i;
	return -1;
}

const void *
providers_settings(const struct providers_config *cfg, size_t i)
{
	return (const char *)cfg + providers_settings_at[i];
}
