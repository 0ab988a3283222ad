/*
 * libFuzzer target for the PROXY protocol header parser
 * (lib/proxy_header.c): whatever a peer sends, the parser must stay within
 * the bytes it was given, and a "done" answer must describe a header no
 * longer than the input, whose addresses and TLV spans lie inside it.
 *
 * tests/fuzz/run.sh builds and runs it as the target "proxy".  Without libFuzzer, -DALOOP_FUZZ_STANDALONE (and no -fsanitize=fuzzer)
 * gives a main() that runs each file named on the command line once, to
 * replay a crash or a corpus with any compiler.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-int.h"

static void
check_span(const struct aloop__proxy_span *s, const uint8_t *buf, size_t len)
{
	if (s->p == NULL)
		return;
	if (s->p < buf || s->len > len || (size_t)(s->p - buf) > len - s->len)
		abort();
}

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aloop__proxy_header h;
	uint8_t *copy;
	ssize_t r;
	size_t i;

	/* An exact-size copy, so that ASan sees any read past the end. */
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	r = aloop__proxy_parse(copy, size, &h);
	if (r > (ssize_t)size)
		abort();
	if (r > 0) {
		if (h.version != 1 && h.version != 2)
			abort();
		check_span(&h.tlvs, copy, (size_t)r);
		for (i = 0; i < ALOOP__PROXY_NTLV; i++)
			check_span(&h.tlv[i], copy, (size_t)r);
		/* A done header parses the same from its own bytes alone. */
		if (aloop__proxy_parse(copy, (size_t)r, &h) != r)
			abort();
		free(aloop__proxy_info_new(&h));
	}
	free(copy);
	return 0;
}

#ifdef ALOOP_FUZZ_STANDALONE
#include <stdio.h>

int
main(int argc, char **argv)
{
	static uint8_t buf[1 << 16];
	FILE *f;
	size_t n;
	int i;

	for (i = 1; i < argc; i++) {
		if ((f = fopen(argv[i], "rb")) == NULL) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		(void)LLVMFuzzerTestOneInput(buf, n);
	}
	return 0;
}
#endif
