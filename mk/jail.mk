# mk/jail.mk - the jail's test helper (agent/jail.c, docs/security.md).
#
# jail-probe is exec'd in place of ember-vmm inside the same jail by
# tests/unit/test_jail.c and checks every wall from inside. Static: the
# jail's root is empty, so no ld.so; not sanitized, for the same reason.

$(T)/jail-probe: tests/helpers/jail-probe.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -o $@ $<

TEST_DEPS += $(T)/jail-probe
