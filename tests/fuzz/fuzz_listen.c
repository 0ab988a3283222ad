/*
 * libFuzzer target: one listen address, as `listen = [ "..." ]` gives it
 * (config_parse_address): what it accepts must be whole and consistent.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config-int.h"
#include "config_listener.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_address a;
	const char *why;
	char *text;

	/* libconfig strings end at a NUL; so does this one. */
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	why = config_parse_address(text, &a);
	if (why == NULL) {
		if (a.kind == CONFIG_ADDR_UNIX) {
			if (a.path == NULL || a.path[0] != '/')
				abort();
		} else if (a.kind != CONFIG_ADDR_INET || a.port == NULL ||
		    a.port_num < 1 || a.port_num > 65535 ||
		    strtoul(a.port, NULL, 10) != a.port_num ||
		    (a.host != NULL && a.host[0] == '\0'))
			abort();
	}
	config_free_address(&a);
	free(text);
	return 0;
}
