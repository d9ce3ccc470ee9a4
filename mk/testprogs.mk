# Test programs (tests/prog/NAME.c): C drivers that integration tests run
# against real VMs, linked with the sanitized libember ($(T)/libember.a).
# Each becomes $(T)/prog/NAME; its integration script lives in
# tests/integration/.
TEST_PROG_NAMES := $(patsubst tests/prog/%.c,%,$(wildcard tests/prog/*.c))
TEST_PROGS := $(TEST_PROG_NAMES:%=$(T)/prog/%)

# A "// ldflags: ..." line adds link flags (say -Wl,--wrap=poll).
prog_ldflags = $(shell sed -n 's,^// ldflags:,,p' tests/prog/$(1).c)

$(T)/prog/%: tests/prog/%.c $(T)/libember.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -MMD -MP -o $@ $< $(T)/libember.a \
		$(call prog_ldflags,$*) $(LIBS)

TEST_DEPS += $(TEST_PROGS)
