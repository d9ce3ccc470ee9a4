# Test programs (tests/prog/NAME.c): C drivers that integration tests run
# against real VMs, linked with the sanitized libember ($(T)/libember.a).
# Each becomes $(T)/prog/NAME; its integration script lives in
# tests/integration/.
TEST_PROG_NAMES := $(patsubst tests/prog/%.c,%,$(wildcard tests/prog/*.c))
TEST_PROGS := $(TEST_PROG_NAMES:%=$(T)/prog/%)

$(T)/prog/%: tests/prog/%.c $(T)/libember.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -MMD -MP -o $@ $< $(T)/libember.a $(LIBS)

TEST_DEPS += $(TEST_PROGS)
