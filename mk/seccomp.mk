# mk/seccomp.mk - what ember-vmm --seccomp costs (docs/seccomp.md):
#
#   make bench-seccomp             bench/results/seccomp.json and a table
#   BENCH_QUICK=1 make bench-seccomp   a short run
.PHONY: bench-seccomp
bench-seccomp: $(BUILD)/ember-vmm $(BUILD)/bench/coldstart $(BUILD)/ember-micro \
		$(BUILD)/ember-invoke \
		$(BUILD)/handlers/echo
	BUILD=$(BUILD) bench/seccomp
