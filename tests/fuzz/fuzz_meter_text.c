/* libFuzzer target: the text metering takes from tenants and guests.
 * utf8_clean() (agent/utf8.c) must turn any bytes into valid UTF-8 with
 * no control character but tab and newline, never writing past 3 bytes
 * per input byte; meter_parse_time() (agent/meter.c) must accept or
 * refuse any query value without crashing, and a time it accepts, printed
 * by meter_format_time(), must parse back to itself. */
// link: agent/utf8.c agent/meter.c agent/metrics.c agent/ledger.c
// link: agent/journal.c agent/elog.c agent/db.c agent/util.c vmm/log.c
// libs: -lsqlite3 -lz -lpthread
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/meter.h"
#include "agent/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A strict decoder: true when s[n] is valid UTF-8 without controls. */
static int clean_ok(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k;

		if (s[i] < 0x80) {
			if ((s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') ||
			    s[i] == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (s[i] < 0xc2 || s[i] > 0xf4)
			return 0;
		k = s[i] >= 0xf0 ? 3 : s[i] >= 0xe0 ? 2 : 1;
		cp = s[i] & (k == 1 ? 0x1f : k == 2 ? 0x0f : 0x07);
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
		    (cp >= 0x80 && cp < 0xa0))
			return 0;
		i += k + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out = malloc(3 * size + 1), str[64];
	size_t n = utf8_clean(out, data, size);
	int64_t us, back;

	if (n > 3 * size || out[n] != '\0' || strlen(out) != n ||
	    !clean_ok((const uint8_t *)out, n))
		abort();
	free(out);
	if (size < sizeof(str)) {
		memcpy(str, data, size);
		str[size] = '\0';
		if (!meter_parse_time(str, 1764590400123456LL, &us) &&
		    us >= 0 && us < 253402300800000000LL) {
			char t[32];

			meter_format_time(us, t);
			if (meter_parse_time(t, 0, &back) || back != us)
				abort();
		}
	}
	return 0;
}
