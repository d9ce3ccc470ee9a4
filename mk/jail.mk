# mk/jail.mk - the jail's test helper (agent/jail.c, docs/security.md).
#
# jail-probe is exec'd in place of ember-vmm inside the same jail by
# tests/unit/test_jail.c and checks every wall from inside. Static: the
# jail's root is empty, so no ld.so; not sanitized, for the same reason.

$(T)/jail-probe: tests/helpers/jail-probe.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -o $@ $<

TEST_DEPS += $(T)/jail-probe

# jail-run starts a program (jail-probe) in exactly the jail emberd gives a
# shell, from emberd's own option parser and confine.c: the integration
# tests' way in (tests/integration/jail-walls).
JAIL_RUN_OBJS := $(addprefix $(BUILD)/obj/agent/,config.o confine.o jail.o \
	cgroup.o util.o)
$(T)/jail-run: $(BUILD)/obj/tests/helpers/jail-run.o $(JAIL_RUN_OBJS) \
		$(BUILD)/libember.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

TEST_DEPS += $(T)/jail-run

# bench/jail: pooled cold starts with and without the jail and cgroups, side
# by side, and tenant B's warm invokes while tenant A burns CPU
# (bench/results/jail.json).
.PHONY: bench-jail
bench-jail: $(BUILD)/bench/agent_client $(BUILD)/emberd $(BUILD)/ember-vmm \
		$(BUILD)/ember-micro
	BUILD=$(BUILD) bench/jail
bench: bench-jail
