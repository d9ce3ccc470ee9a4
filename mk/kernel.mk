# The Linux guest: kernel build (cached outside the tree by
# scripts/build-kernel.sh) and the ELF fuzzer. See docs/linux-guest.md.

.PHONY: kernel fuzz-elf

# Always asks the script: it returns at once on a cache hit, and it alone
# knows the cache key (config, patches, source version, itself).
kernel:
	@BUILD=$(BUILD) scripts/build-kernel.sh

$(BUILD)/vmlinux: guest-kernel-config $(wildcard guest-kernel-patches/*.patch) \
		scripts/build-kernel.sh
	@BUILD=$(BUILD) scripts/build-kernel.sh

# The kernel is what tests/integration/linux-boot boots. A cached build is
# instant; a cold one takes ~6 minutes on 2 cores.
TEST_DEPS += $(BUILD)/vmlinux

# libFuzzer target for the ELF parser (clang; ASan+UBSan). Runs briefly:
#   make fuzz-elf [FUZZ_SECONDS=30]
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -DEMBER_TESTING $(WARN) \
	-Ivmm/include -Ivmm -I. -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all

$(BUILD)/fuzz/fuzz_elf: tests/fuzz/fuzz_elf.c vmm/x86/elf.c vmm/x86/elf.h \
		vmm/mem.c vmm/mem.h vmm/log.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_elf.c vmm/x86/elf.c vmm/mem.c vmm/log.c

# Seeds: whatever static ELF guests are already built (test guests, micro
# guest), so the fuzzer starts from files the parser accepts.
fuzz-elf: $(BUILD)/fuzz/fuzz_elf
	@mkdir -p $(BUILD)/fuzz/corpus-elf
	@for f in $(wildcard $(BUILD)/guests/*) $(wildcard $(BUILD)/ember-micro); do \
		[ -f "$$f" ] && [ $$(stat -c %s "$$f") -le 65536 ] && \
			cp "$$f" $(BUILD)/fuzz/corpus-elf/seed-$$(basename "$$f"); \
	done; true
	$(BUILD)/fuzz/fuzz_elf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		$(BUILD)/fuzz/corpus-elf
