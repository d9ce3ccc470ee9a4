/* libFuzzer target: guest-init's configuration parser and kernel command
 * line parser (guest-init/conf.c) over arbitrary bytes. A parse that
 * succeeds must yield what the handler's start relies on. */
// link: guest-init/conf.c
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest-init/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_cmdline cl;
	struct conf c;
	char err[128];

	if (conf_parse((const char *)data, size, &c, err, sizeof(err)) == 0) {
		if (!c.handler || c.handler[0] != '/' || c.argv[0] != c.handler ||
		    c.argv[c.argc] || !c.env || c.env[c.nenv] || !c.cwd ||
		    c.cwd[0] != '/' || c.uid == 0xffffffffu ||
		    c.gid == 0xffffffffu)
			abort();
		for (size_t i = 0; i < c.nenv; i++)
			if (!strchr(c.env[i], '=') || c.env[i][0] == '=')
				abort();
		conf_free(&c);
	} else if (!memchr(err, '\0', sizeof(err)) || !err[0]) {
		abort(); /* every refusal says why */
	}
	if (conf_parse_cmdline((const char *)data, size, &cl, err,
			       sizeof(err)) == 0 &&
	    (cl.conf_path[0] != '/' ||
	     !memchr(cl.conf_path, '\0', sizeof(cl.conf_path))))
		abort();
	return 0;
}
