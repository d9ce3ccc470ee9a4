# mk/sdk.mk - the function ABI: example handlers (built with the handler SDK,
# statically, against glibc and against musl) and the ember-invoke tool.
# See docs/function-abi.md.
#
#   $(BUILD)/handlers/NAME        gcc -static (glibc)
#   $(BUILD)/handlers/NAME.musl   musl-gcc -static
#   $(BUILD)/ember-invoke         host client (--vsock PATH | --exec CMD)

MUSL_CC ?= musl-gcc
LUA_A ?= /usr/lib/x86_64-linux-gnu/liblua5.4.a
LUA_INC ?= /usr/include/lua5.4

# Handlers are tenant-style programs, not libember: no -D_GNU_SOURCE, no
# FORTIFY (musl has none), same warnings.
SDK_CFLAGS := -std=gnu11 -O2 -g $(WARN) -I.
SDK_SRCS := sdk/handler.c sdk/sha256.c proto/invoke.c
SDK_HDRS := sdk/ember_handler.h sdk/sha256.h proto/invoke.h

SDK_C_HANDLERS := echo hash files pthreads
# lua links Debian's liblua5.4.a, built against glibc with FORTIFY: the musl
# build adds sdk/musl_fortify_compat.c (see docs/function-abi.md).
SDK_GLIBC := $(addprefix $(BUILD)/handlers/,$(SDK_C_HANDLERS) lua)
SDK_MUSL := $(addprefix $(BUILD)/handlers/,$(addsuffix .musl,$(SDK_C_HANDLERS) lua))
SDK_MUSL_C := $(filter-out %/lua.musl,$(SDK_MUSL))
LUA_MULTIARCH_H ?= /usr/include/x86_64-linux-gnu/lua5.4-deb-multiarch.h
INVOKE_TOOL := $(BUILD)/ember-invoke

$(addprefix $(BUILD)/handlers/,$(SDK_C_HANDLERS)): $(BUILD)/handlers/%: \
		sdk/examples/%.c $(SDK_SRCS) $(SDK_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -static $(SDK_CFLAGS) -o $@ $< $(SDK_SRCS)

$(SDK_MUSL_C): $(BUILD)/handlers/%.musl: sdk/examples/%.c $(SDK_SRCS) $(SDK_HDRS)
	@mkdir -p $(dir $@)
	$(MUSL_CC) -static $(SDK_CFLAGS) -o $@ $< $(SDK_SRCS)

# liblua's loadlib uses dlopen; static glibc warns about it at link time,
# harmless here: handlers load no C modules.
$(BUILD)/handlers/lua: sdk/examples/lua.c $(SDK_SRCS) $(SDK_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -static $(SDK_CFLAGS) -I$(LUA_INC) -o $@ $< $(SDK_SRCS) \
		$(LUA_A) -lm 2>$@.link.log || { cat $@.link.log; rm -f $@; exit 1; }
	@grep -v -e dlopen -e 'in function' $@.link.log || true

# luaconf.h includes Debian's multiarch header, which lives in the glibc
# include tree; musl-gcc must not see that tree, so copy just the one file.
$(BUILD)/handlers/lua.musl: sdk/examples/lua.c sdk/musl_fortify_compat.c \
		$(SDK_SRCS) $(SDK_HDRS)
	@mkdir -p $(BUILD)/handlers/lua-musl-inc
	cp $(LUA_MULTIARCH_H) $(BUILD)/handlers/lua-musl-inc/
	$(MUSL_CC) -static $(SDK_CFLAGS) -I$(LUA_INC) \
		-I$(BUILD)/handlers/lua-musl-inc -o $@ $< $(SDK_SRCS) \
		sdk/musl_fortify_compat.c $(LUA_A) -lm \
		2>$@.link.log || { cat $@.link.log; rm -f $@; exit 1; }
	@grep -v -e dlopen -e 'in function' $@.link.log || true

INVOKE_TOOL_OBJS := $(addprefix $(BUILD)/obj/,tools/ember-invoke.o \
	vmm/invoke.o proto/invoke.o vmm/log.o)
$(INVOKE_TOOL): $(INVOKE_TOOL_OBJS)
	$(CC) $(CFLAGS) -o $@ $^

.PHONY: sdk handlers
handlers: $(SDK_GLIBC) $(SDK_MUSL)
sdk: handlers $(INVOKE_TOOL)

ALL += $(SDK_GLIBC) $(SDK_MUSL) $(INVOKE_TOOL)
TEST_DEPS += $(SDK_GLIBC) $(SDK_MUSL) $(INVOKE_TOOL)

# Example functions (sdk/examples/functions/NAME/, docs/functions.md):
# $(BUILD)/functions/NAME/ is the directory plus, for the C ones, the musl
# build of the handler at bin/NAME: ready for `ember deploy`.
FN_EXAMPLES := $(patsubst sdk/examples/functions/%/ember.json,%,\
	$(wildcard sdk/examples/functions/*/ember.json))
FN_C_EXAMPLES := $(filter $(SDK_C_HANDLERS),$(FN_EXAMPLES))
FN_STAMPS := $(FN_EXAMPLES:%=$(BUILD)/functions/%/ember.json)
define fn_rule
$(BUILD)/functions/$(1)/ember.json: $(shell find sdk/examples/functions/$(1) -type f) \
		$(if $(filter $(1),$(FN_C_EXAMPLES)),$(BUILD)/handlers/$(1).musl)
	rm -rf $(BUILD)/functions/$(1)
	@mkdir -p $(BUILD)/functions
	cp -r sdk/examples/functions/$(1) $(BUILD)/functions/$(1)
	$(if $(filter $(1),$(FN_C_EXAMPLES)),mkdir -p $(BUILD)/functions/$(1)/bin && \
		cp $(BUILD)/handlers/$(1).musl $(BUILD)/functions/$(1)/bin/$(1))
	@touch $$@
endef
$(foreach f,$(FN_EXAMPLES),$(eval $(call fn_rule,$(f))))

.PHONY: functions
functions: $(FN_STAMPS)
ALL += $(FN_STAMPS)
TEST_DEPS += $(FN_STAMPS)
