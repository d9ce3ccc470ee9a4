/*
 * conf.h - guest-init's configuration: what to run and how.
 *
 * Owns: parsing and validating the configuration file that the image tool
 * (scripts/linux-image.sh) writes to /ember/init.conf on the root disk, and
 * the kernel command line words guest-init reads. Pure: no I/O, no global
 * state, every input treated as hostile (the values come from a tenant's
 * manifest). docs/guest-init.md is the prose description.
 *
 * File format: one setting per line, "KEY VALUE"; KEY and VALUE are
 * separated by one or more spaces or tabs, and VALUE is the rest of the line,
 * verbatim. Blank lines and lines whose first non-blank byte is '#' are
 * ignored.
 *   handler PATH   the executable (absolute path), also argv[0]; required
 *   arg WORD       the next argv word (repeatable; may be empty)
 *   env KEY=VALUE  a variable of the handler's environment (repeatable);
 *                  the environment is exactly these, plus PATH if unset
 *   uid N          user id the handler runs as (default 1000)
 *   gid N          group id (default: the uid); no supplementary groups
 *   cwd PATH       working directory (absolute; default /)
 */
#ifndef GI_CONF_H
#define GI_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CONF_MAX_BYTES (1u << 20)  /* whole file */
#define CONF_MAX_LINE 4096u        /* one line, without its newline */
#define CONF_MAX_ARGS 256u
#define CONF_MAX_ENV 1024u
#define CONF_DEFAULT_UID 1000u
#define CONF_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CONF_DEFAULT_FILE "/ember/init.conf"

struct conf {
	char *handler;  /* absolute path */
	char **argv;    /* argv[0] = handler, NULL-terminated */
	size_t argc;
	char **env;     /* NULL-terminated */
	size_t nenv;
	uint32_t uid, gid;
	char *cwd;
};

/* Parses text[len] (not NUL-terminated) into *c. Returns 0, or -EINVAL
 * (with "line N: reason" in err), -E2BIG (file over CONF_MAX_BYTES) or
 * -ENOMEM; *c is then empty and needs no conf_free. */
int conf_parse(const char *text, size_t len, struct conf *c, char *err,
	       size_t errlen);
void conf_free(struct conf *c);

/* Words guest-init takes from the kernel command line. */
struct conf_cmdline {
	char conf_path[256];  /* ember.conf=PATH, default CONF_DEFAULT_FILE */
	int verbose;          /* ember.debug */
};

/* Parses /proc/cmdline's text[len]: words separated by spaces, tabs or a
 * newline; other words are the kernel's and are ignored. A quoted value
 * (ember.conf="...") is not supported. -EINVAL with a reason for an
 * ember.conf= value that is not an absolute path under 256 bytes. */
int conf_parse_cmdline(const char *text, size_t len, struct conf_cmdline *cl,
		       char *err, size_t errlen);

#endif
