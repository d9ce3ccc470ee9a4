/*
 * utf8.c - see utf8.h. The decoding follows RFC 3629, section 4 (the
 * valid byte sequences), with C1 controls refused as well: a terminal may
 * take U+009B for an escape.
 */
#include "agent/utf8.h"

#include <string.h>

size_t utf8_clean(char *dst, const uint8_t *src, size_t len)
{
	static const char rep[] = "\xef\xbf\xbd";
	size_t o = 0, i = 0;

	while (i < len) {
		uint8_t c = src[i];
		size_t need = 0;
		uint32_t cp;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
				memcpy(dst + o, rep, 3);
				o += 3;
			} else {
				dst[o++] = (char)c;
			}
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			goto bad;
		}
		if (i + need >= len)
			goto bad;
		for (size_t k = 1; k <= need; k++) {
			if ((src[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (src[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and beyond U+10FFFF. */
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
		    (cp >= 0x80 && cp < 0xa0))
			goto bad;
		memcpy(dst + o, src + i, need + 1);
		o += need + 1;
		i += need + 1;
		continue;
bad:
		memcpy(dst + o, rep, 3);
		o += 3;
		i++;
	}
	dst[o] = '\0';
	return o;
}
