# guest-init (guest-init/, docs/guest-init.md): process 1 of the Linux guest,
# a static musl binary, and the Linux guest's root disk image.
#
#   $(BUILD)/guest-init        the binary (/ember/init in the image)
#   $(BUILD)/linux-image       scripts/linux-image.sh, beside emberd: the
#                              tool its guest "linux" deploys run
#   make linux-image           $(BUILD)/linux-root.ext4: guest-init and the
#                              SDK's echo handler, built by
#                              scripts/linux-image.sh and cached outside the
#                              tree (~/.cache/ember/linux-image/<key>/)
#
# Its unit tests (tests/unit/test_init_*.c) and fuzz target
# (tests/fuzz/fuzz_init_conf.c) are picked up by the generic rules.

MUSL_CC ?= musl-gcc
# -ffile-prefix-map: the binary (and so the image's bytes) does not depend
# on where the tree is checked out.
INIT_CFLAGS := -std=gnu11 -O2 -g -D_GNU_SOURCE $(WARN) -I. \
	-ffile-prefix-map=$(CURDIR)/=
INIT_SRCS := $(wildcard guest-init/*.c) proto/invoke.c
INIT_HDRS := $(wildcard guest-init/*.h) proto/invoke.h

$(BUILD)/guest-init: $(INIT_SRCS) $(INIT_HDRS)
	@mkdir -p $(dir $@)
	$(MUSL_CC) -static $(INIT_CFLAGS) -o $@ $(INIT_SRCS)

# The default image: guest-init + the echo handler (musl), run as uid 1000.
LINUX_IMAGE_HANDLER ?= $(BUILD)/handlers/echo.musl
.PHONY: linux-image
linux-image: $(BUILD)/guest-init $(LINUX_IMAGE_HANDLER)
	@BUILD=$(BUILD) scripts/linux-image.sh --cache \
		--init $(BUILD)/guest-init \
		--handler-file $(LINUX_IMAGE_HANDLER) --handler /handler \
		--link $(BUILD)/linux-root.ext4

# emberd's default --linux-image-tool (agent/deploy_linux.c).
$(BUILD)/linux-image: scripts/linux-image.sh
	@mkdir -p $(dir $@)
	install -m 0755 $< $@

ALL += $(BUILD)/guest-init $(BUILD)/linux-image
TEST_DEPS += $(BUILD)/guest-init $(BUILD)/linux-image
