# mk/meter.mk - metering benchmarks (docs/metering.md, "Cost").
#
#   make BUILD=... bench-meter-cost   bench/results/meter-cost.json + a table:
#                                     meter_finished() per call, in process
#   make BUILD=... bench-meter        the above, then emberd end to end:
#                                     warm invokes with and without metering
#                                     in one run, a wrk load, the pictures
#                                     (bench/results/meter-*.svg)
#
# The in-process bench links the metering modules and SQLite, not emberd.

METER_BENCH_OBJS := $(addprefix $(BUILD)/obj/,agent/meter.o agent/metrics.o \
	agent/ledger.o agent/journal.o agent/utf8.o agent/elog.o agent/db.o \
	agent/util.o vmm/log.o)

$(BUILD)/bench/meter_cost: $(BUILD)/obj/bench/meter_cost.o $(METER_BENCH_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lsqlite3 -lz -lpthread

ALL += $(BUILD)/bench/meter_cost

.PHONY: bench-meter-cost bench-meter
bench-meter-cost: $(BUILD)/bench/meter_cost
	@mkdir -p bench/results
	$(BUILD)/bench/meter_cost --out bench/results/meter-cost.json

bench-meter: bench-meter-cost $(BUILD)/emberd $(BUILD)/bench/agent_client \
		$(BUILD)/ember-vmm $(BUILD)/ember-micro $(BUILD)/handlers/echo \
		$(BUILD)/handlers/lua
	BUILD=$(BUILD) bench/meter

bench: bench-meter
