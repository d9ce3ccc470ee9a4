# The micro guest (guest-micro/, docs/micro-guest.md): the freestanding guest
# kernel $(BUILD)/ember-micro, the image tool $(BUILD)/ember-mkimage, test
# handlers. The EMFS reader's fuzzer is built by mk/fuzz.mk.

MICRO_CC ?= gcc
MUSL_CC ?= musl-gcc
# Freestanding, non-PIC, linked at 1 MiB. -mgeneral-regs-only: the kernel
# must never touch the handler's SSE/x87 state (Linux preserves it across
# syscalls). No red zone: exceptions land on the interrupted stack.
MICRO_CFLAGS := -std=gnu11 -g -O2 $(WARN) -ffreestanding -fno-pie \
	-fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
	-mno-red-zone -mgeneral-regs-only -fno-omit-frame-pointer \
	-Ivmm/include -Iguest-micro -Iguest-drivers -I.
MICRO_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,guest-micro/micro.ld \
	-Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=4096

MICRO_SRCS := $(wildcard guest-micro/*.c) proto/invoke.c \
	$(filter-out %_test.c,$(wildcard guest-drivers/*.c))
MICRO_ASM := $(wildcard guest-micro/*.S)
MICRO_OBJS := $(MICRO_SRCS:%.c=$(BUILD)/micro/%.o) \
	$(MICRO_ASM:%.S=$(BUILD)/micro/%.o)

$(BUILD)/micro/%.o: %.c
	@mkdir -p $(dir $@)
	$(MICRO_CC) $(MICRO_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/micro/%.o: %.S
	@mkdir -p $(dir $@)
	$(MICRO_CC) $(MICRO_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/ember-micro: $(MICRO_OBJS) guest-micro/micro.ld
	$(MICRO_CC) $(MICRO_CFLAGS) $(MICRO_LDFLAGS) -o $@ $(MICRO_OBJS) -lgcc
	@size=$$(stat -c %s $@); echo "ember-micro: $$size bytes"

# The image writer (tools/mkimage.c) is shared with emberd's deploy.
MKIMAGE_OBJS := $(addprefix $(BUILD)/obj/,tools/mkimage.o tools/beneath.o \
	guest-micro/mfs.o)
$(BUILD)/ember-mkimage: $(BUILD)/obj/tools/ember-mkimage.o $(MKIMAGE_OBJS)
	$(CC) $(CFLAGS) -o $@ $^

# Test handlers of the micro guest's own (tests/handlers/*.c: start-up,
# crashes, syscalls), static with musl and glibc, for the integration tests
# tests/integration/micro-*. The SDK's handlers (mk/sdk.mk) serve the
# protocol tests.
MICRO_HANDLERS := $(patsubst tests/handlers/%.c,%,$(wildcard tests/handlers/*.c))
# They may use the handler SDK (sdk/, mk/sdk.mk); unused parts cost nothing.
MICRO_HSRCS := sdk/handler.c sdk/sha256.c proto/invoke.c
$(BUILD)/micro-handlers/%-musl: tests/handlers/%.c $(MICRO_HSRCS)
	@mkdir -p $(dir $@)
	$(MUSL_CC) -static -std=gnu11 -O2 -g -Wall -Wextra -Werror -I. -o $@ $< \
		$(MICRO_HSRCS)
$(BUILD)/micro-handlers/%-glibc: tests/handlers/%.c $(MICRO_HSRCS)
	@mkdir -p $(dir $@)
	$(CC) -static -std=gnu11 -O2 -g -Wall -Wextra -Werror -I. -o $@ $< \
		$(MICRO_HSRCS)
MICRO_HANDLER_BINS := $(foreach h,$(MICRO_HANDLERS),\
	$(BUILD)/micro-handlers/$(h)-musl $(BUILD)/micro-handlers/$(h)-glibc)

ALL += $(BUILD)/ember-micro $(BUILD)/ember-mkimage
TEST_DEPS += $(BUILD)/ember-micro $(BUILD)/ember-mkimage $(MICRO_HANDLER_BINS)

.PHONY: micro
micro: $(BUILD)/ember-micro $(BUILD)/ember-mkimage $(MICRO_HANDLER_BINS)
