# mk/agent.mk - the host agent: emberd (the daemon) and ember (its CLI).
#
# Every agent/*.c is part of emberd except the client side: agent/client.c
# (the C client library an embedder links, also built as
# build/libember-client.a) and agent/cli.c (the `ember` command on top of
# it). emberd links libember for the invocation client and the snapshot
# format; it never maps guest memory itself.
AGENT_LIBS := -lmicrohttpd -ljansson -lsqlite3 -larchive -lz
CLIENT_LIBS := -lcurl -ljansson

AGENT_CLIENT_SRCS := $(wildcard agent/client.c)
AGENT_CLI_SRCS := $(wildcard agent/cli.c)
EMBERD_SRCS := $(filter-out $(AGENT_CLI_SRCS) $(AGENT_CLIENT_SRCS),\
	$(wildcard agent/*.c))

# emberd is linked once one of its sources has main(): agent modules
# (cgroup.c, jail.c) may land before the daemon does.
EMBERD_MAIN := $(shell grep -l '^int main[^A-Za-z0-9_]' $(EMBERD_SRCS) /dev/null)

ifneq ($(EMBERD_MAIN),)
$(BUILD)/emberd: $(EMBERD_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/libember.a
	$(CC) $(CFLAGS) -o $@ $^ $(AGENT_LIBS) $(LIBS)
ALL += $(BUILD)/emberd
TEST_DEPS += $(BUILD)/emberd
endif

ifneq ($(AGENT_CLIENT_SRCS),)
$(BUILD)/libember-client.a: $(AGENT_CLIENT_SRCS:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^
ALL += $(BUILD)/libember-client.a
endif

ifneq ($(AGENT_CLI_SRCS),)
# The CLI packs a directory into a tar.gz itself (libarchive).
$(BUILD)/ember: $(AGENT_CLI_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/libember-client.a
	$(CC) $(CFLAGS) -o $@ $^ $(CLIENT_LIBS) -larchive
ALL += $(BUILD)/ember
TEST_DEPS += $(BUILD)/ember
endif

# Deploy (agent/deploy.c) builds micro guest images with the writer that
# ember-mkimage uses (tools/mkimage.c); mk/micro.mk comes after this file,
# so the objects are named here. A rule without a recipe adds them to $^.
AGENT_TOOL_OBJS := $(addprefix $(BUILD)/obj/,tools/mkimage.o tools/beneath.o \
	guest-micro/mfs.o)
$(BUILD)/emberd: $(AGENT_TOOL_OBJS)

# emberd's own modules: token hashes use the SDK's SHA-256 (sdk/sha256.c,
# freestanding and tested by the handlers' tests), and the database schema
# is built into db.o (.incbin of agent/schema.sql, which -MMD cannot see).
$(BUILD)/emberd: $(BUILD)/obj/sdk/sha256.o
$(BUILD)/obj/agent/db.o $(T)/obj/agent/db.o: agent/schema.sql

# bench/agent: invocations through emberd's API beside the library-level
# figures of bench/coldstart (docs/agent.md). agent_client is its
# measuring half (a minimal HTTP client over the Unix socket).
$(BUILD)/bench/agent_client: bench/agent_client.c $(BUILD)/libember.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
ALL += $(BUILD)/bench/agent_client

.PHONY: bench-agent
bench-agent: $(BUILD)/bench/agent_client $(BUILD)/bench/coldstart \
		$(BUILD)/emberd $(BUILD)/ember-vmm $(BUILD)/ember-micro \
		$(BUILD)/handlers/echo
	@mkdir -p bench/results
	BUILD=$(BUILD) bench/agent

# bench/agent-load: wrk on loopback against --listen (warm 1/8/64 clients
# on 1 and 10 functions, cold-heavy, a latency/instances timeline plotted
# to SVG); bench/agent-density: 1000 idle instances and their memory.
AGENT_BENCH_DEPS := $(BUILD)/bench/agent_client $(BUILD)/emberd \
	$(BUILD)/ember-vmm $(BUILD)/ember-micro $(BUILD)/handlers/echo
.PHONY: bench-agent-load bench-agent-density
bench-agent-load: $(AGENT_BENCH_DEPS)
	@mkdir -p bench/results
	BUILD=$(BUILD) bench/agent-load
bench-agent-density: $(AGENT_BENCH_DEPS)
	@mkdir -p bench/results
	BUILD=$(BUILD) bench/agent-density

bench: bench-agent bench-agent-load bench-agent-density
