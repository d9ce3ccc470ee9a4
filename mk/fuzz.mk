# libFuzzer targets (clang, ASan+UBSan): every tests/fuzz/fuzz_<name>.c that
# names its sources on "// link: a.c b.c" lines, like the unit tests, is
# built into $(BUILD)/fuzz-bin/ and run for FUZZ_SECONDS over its corpus
# tests/data/fuzz_<name>/ (new inputs go to $(BUILD)/fuzz-corpus/); a
# "// libs: -lfoo" line adds libraries, as for unit tests. Crashers
# are written into tests/data/fuzz_<name>/ as crash-*: keep them, they are
# regression inputs that `make fuzz-replay` runs once each (no fuzzing).
# Targets without a link line (fuzz_elf.c) keep their own rule (kernel.mk).
#
#   make fuzz [FUZZ_SECONDS=30]     build and fuzz every target
#   make fuzz-replay                replay every corpus and crasher once
#   make fuzz-bins                  just build them

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FZ_FLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -DEMBER_TESTING $(WARN) \
	-Ivmm/include -Ivmm -I. -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all
FZ_DIR := $(BUILD)/fuzz-bin
fz_links = $(shell sed -n 's,^// link:,,p' tests/fuzz/$(1).c)
fz_libs = $(shell sed -n 's,^// libs:,,p' tests/fuzz/$(1).c)
FZ_NAMES := $(foreach f,$(wildcard tests/fuzz/fuzz_*.c),\
	$(if $(shell grep -l '^// link:' $(f)),$(patsubst tests/fuzz/%.c,%,$(f))))
FZ_BINS := $(FZ_NAMES:%=$(FZ_DIR)/%)

define fz_rule
$(FZ_DIR)/$(1): tests/fuzz/$(1).c $(call fz_links,$(1))
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(FZ_FLAGS) -o $$@ $$^ $(call fz_libs,$(1)) $$(LIBS)
endef
$(foreach f,$(FZ_NAMES),$(eval $(call fz_rule,$(f))))

.PHONY: fuzz fuzz-replay fuzz-bins
fuzz-bins: $(FZ_BINS)

fuzz: $(FZ_BINS)
	@set -e; for f in $(FZ_NAMES); do \
		mkdir -p $(BUILD)/fuzz-corpus/$$f tests/data/$$f; \
		echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
		log=$(BUILD)/fuzz-$$f.log; \
		if ! $(FZ_DIR)/$$f -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
			-artifact_prefix=tests/data/$$f/ \
			$(BUILD)/fuzz-corpus/$$f tests/data/$$f >$$log 2>&1; then \
			grep -aE 'ERROR|SUMMARY|artifact' $$log; exit 1; fi; \
		grep -aE '^#[0-9]+[[:space:]]+DONE' $$log || tail -2 $$log; \
	done

fuzz-replay: $(FZ_BINS)
	@set -e; for f in $(FZ_NAMES); do \
		[ -d tests/data/$$f ] || continue; \
		echo "fuzz-replay: $$f ($$(ls tests/data/$$f | wc -l) inputs)"; \
		$(FZ_DIR)/$$f -runs=0 tests/data/$$f >/dev/null 2>$(BUILD)/fuzz-replay-$$f.log || \
			{ tail -30 $(BUILD)/fuzz-replay-$$f.log; exit 1; }; \
	done

# make test replays the kept inputs (tests/integration/fuzz-replay).
TEST_DEPS += $(FZ_BINS)
