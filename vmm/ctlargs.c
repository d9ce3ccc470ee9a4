/*
 * ctlargs.c - the "command key=value flag" words of a control line
 * (control.h). The line comes from the controller (the host agent or a
 * test): bounded by the caller, split in place, every number checked.
 */
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int ctl_parse(char *line, struct ctl_args *a, char *err, size_t errlen)
{
	char *save = NULL, *w;

	memset(a, 0, sizeof(*a));
	a->cmd = strtok_r(line, " \t", &save);
	if (!a->cmd)
		return errbuf_fail(err, errlen, -EINVAL, "empty command");
	while ((w = strtok_r(NULL, " \t", &save))) {
		char *eq = strchr(w, '=');

		if (a->n == CTL_MAX_ARGS)
			return errbuf_fail(err, errlen, -E2BIG,
					   "more than %d arguments",
					   CTL_MAX_ARGS);
		if (eq)
			*eq = '\0';
		if (!*w)
			return errbuf_fail(err, errlen, -EINVAL,
					   "an argument without a name");
		for (unsigned i = 0; i < a->n; i++)
			if (!strcmp(a->a[i].key, w) && strcmp(w, "disk"))
				return errbuf_fail(err, errlen, -EINVAL,
						   "'%s' given twice", w);
		a->a[a->n].key = w;
		a->a[a->n].val = eq ? eq + 1 : NULL;
		a->n++;
	}
	return 0;
}

const char *ctl_get(struct ctl_args *a, const char *key)
{
	for (unsigned i = 0; i < a->n; i++)
		if (!a->a[i].used && a->a[i].val && !strcmp(a->a[i].key, key)) {
			a->a[i].used = true;
			return a->a[i].val;
		}
	return NULL;
}

int ctl_flag(struct ctl_args *a, const char *flag, char *err, size_t errlen)
{
	for (unsigned i = 0; i < a->n; i++) {
		if (strcmp(a->a[i].key, flag))
			continue;
		if (a->a[i].val)
			return errbuf_fail(err, errlen, -EINVAL,
					   "'%s' takes no value", flag);
		a->a[i].used = true;
		return 1;
	}
	return 0;
}

int ctl_u64(struct ctl_args *a, const char *key, uint64_t max, uint64_t *v,
	    char *err, size_t errlen)
{
	const char *s = ctl_get(a, key);
	char *end;

	if (!s)
		return 0;
	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+' || *v > max)
		return errbuf_fail(err, errlen, -EINVAL, "%s=%s: expected a "
				   "number 0..%" PRIu64, key, s, max);
	return 1;
}

int ctl_fd(struct ctl_args *a, const char *key, const int *fds, unsigned nfds,
	   int *fd, char *err, size_t errlen)
{
	uint64_t i;
	int ret = ctl_u64(a, key, CTL_MAX_ARGS, &i, err, errlen);

	*fd = -1;
	if (ret <= 0)
		return ret;
	if (i >= nfds)
		return errbuf_fail(err, errlen, -EINVAL, "%s=%" PRIu64 ": the "
				   "message carries %u file descriptors", key, i,
				   nfds);
	*fd = fds[i];
	return 1;
}

int ctl_check_used(const struct ctl_args *a, char *err, size_t errlen)
{
	for (unsigned i = 0; i < a->n; i++)
		if (!a->a[i].used)
			return errbuf_fail(err, errlen, -EINVAL, "%s: unknown "
					   "argument '%s'", a->cmd,
					   a->a[i].key);
	return 0;
}

