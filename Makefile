# Ember: one Makefile for the whole tree. Subsystems add their own rules in
# mk/*.mk fragments (included below) and append to ALL and TEST_DEPS.
#
#   make deps    install the Debian packages the project needs (apt-get)
#   make         build everything into build/
#   make test    unit tests (ASan+UBSan) and integration tests on /dev/kvm
#   make demo    boot the demo guests
#   make kernel  build the Linux guest kernel (cached outside the tree)
#   make linux-image  the Linux guest's root disk (guest-init + echo; cached)
#   make bench   run the benchmarks (bench/results/*.json)
#   make fuzz    build and briefly run the libFuzzer targets (clang)

CC ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif
BUILD := build
T := $(BUILD)/test

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
	-Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
# vmm/ headers are included with quotes: -iquote keeps vmm/seccomp.h from
# hiding libseccomp's <seccomp.h>.
BASE_CFLAGS := -std=gnu11 -g -D_GNU_SOURCE $(WARN) -Ivmm/include -iquote vmm -I.
CFLAGS := $(BASE_CFLAGS) -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2
TEST_CFLAGS := $(BASE_CFLAGS) -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all -DEMBER_TESTING
LIBS := -luring -lfdt -lseccomp -lpthread -lm

# libember: every .c under these folders except the command-line front ends.
LIB_DIRS := vmm vmm/x86 vmm/dev vmm/virtio proto snapshots
LIB_SRCS := $(filter-out vmm/cli%.c snapshots/snaptool.c,\
	$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
CLI_SRCS := $(wildcard vmm/cli*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_LIB_OBJS := $(LIB_SRCS:%.c=$(T)/obj/%.o)

ALL := $(BUILD)/libember.a $(BUILD)/ember-vmm
TEST_DEPS :=

.PHONY: all deps test test-deps unit integration demo kernel bench fuzz clean format
all: everything

-include $(sort $(wildcard mk/*.mk))

everything: $(ALL)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(T)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libember.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(T)/libember.a: $(TEST_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# Linked static (PIE, so still address-randomised): a new `ember-vmm
# --restore` process is on a cold start's critical path, and the dynamic
# loader's work (mapping liburing and libfdt, relocations, symbol binding)
# cost ~0.3-0.4 ms of exec time here (docs/benchmarks.md). Debian ships
# liburing.a, libfdt.a and libseccomp.a.
VMM_LDFLAGS := -static-pie
$(BUILD)/ember-vmm: $(CLI_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/libember.a
	$(CC) $(CFLAGS) $(VMM_LDFLAGS) -o $@ $^ $(LIBS)

# ember-vmm built with the sanitizers, for the integration tests that rerun
# real VMs under it (tests/integration/sanitized-vmm).
$(T)/ember-vmm: $(CLI_SRCS:%.c=$(T)/obj/%.o) $(T)/libember.a
	$(CC) $(TEST_CFLAGS) -o $@ $^ $(LIBS)
# --micro finds ember-micro beside the ember-vmm binary.
$(T)/ember-micro: $(BUILD)/ember-micro
	@mkdir -p $(dir $@)
	ln -sf ../ember-micro $@
TEST_DEPS += $(T)/ember-vmm $(T)/ember-micro

# Unit tests: tests/unit/test_<module>.c, one binary each, cmocka, sanitized.
# A test links only the sources it names on "// link: a.c b.c" lines, so it
# stays hermetic and builds while unrelated modules are being changed; a
# "// libs: -lfoo" line adds libraries beyond libember's own.
UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_NAMES:%=$(T)/unit/%)
unit_links = $(patsubst %.c,$(T)/obj/%.o,$(shell sed -n 's,^// link:,,p' tests/unit/$(1).c))
unit_libs = $(shell sed -n 's,^// libs:,,p' tests/unit/$(1).c)
define unit_rule
$(T)/unit/$(1): $(T)/obj/tests/unit/$(1).o $(call unit_links,$(1))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(TEST_CFLAGS) -o $$@ $$^ -lcmocka $(call unit_libs,$(1)) $$(LIBS)
endef
$(foreach t,$(UNIT_NAMES),$(eval $(call unit_rule,$(t))))

deps:
	@scripts/deps.sh

test: $(ALL) $(UNIT_BINS) $(TEST_DEPS)
	@tests/run.sh

unit: $(UNIT_BINS)
	@tests/run.sh unit

# Everything the tests need, without running them (then run one with
# tests/run.sh integration NAME).
test-deps: $(ALL) $(UNIT_BINS) $(TEST_DEPS)

integration: $(ALL) $(TEST_DEPS)
	@tests/run.sh integration

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

demo: $(ALL)
	@scripts/demo.sh
