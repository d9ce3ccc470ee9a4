# mk/bench-runtimes.mk - language runtimes side by side in the micro guest
# (docs/benchmarks.md, "Runtimes"): boot to READY, cold start from the
# snapshot (p50/p99, with and without the working-set prefetch), warm
# invoke, for the C echo handler, Lua and Python.
#
#   make BUILD=... bench-runtimes     bench/results/runtimes.json + a table
#   BENCH_QUICK=1 make BUILD=... bench-runtimes   (a short run, ~30 s)

.PHONY: bench-runtimes
bench-runtimes: $(BUILD)/ember-vmm $(BUILD)/ember-micro $(BUILD)/ember-invoke \
		$(BUILD)/ember-mkimage $(BUILD)/handlers/echo \
		$(BUILD)/handlers/lua $(BUILD)/handlers/python \
		$(BUILD)/runtimes/python/.stamp
	@mkdir -p bench/results
	BUILD=$(BUILD) bench/runtimes

bench: bench-runtimes
