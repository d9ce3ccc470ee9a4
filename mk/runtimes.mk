# mk/runtimes.mk - handlers in Go and Rust (docs/runtimes.md): the example of
# each SDK, built statically, offline, with Debian's toolchains (named by
# path: a rustup toolchain in ~/.cargo/bin may come first in PATH).
#
#   $(BUILD)/handlers/go-demo, go-echo       sdk/go (CGO_ENABLED=0, no
#                                             modules fetched)
#   $(BUILD)/handlers/rust-demo, rust-echo   sdk/rust (std only, static glibc)
#
# Compiler caches live with Ember's other long builds in ~/.cache/ember.
# Without a toolchain the handler is not built and its tests skip.

GO ?= /usr/bin/go
CARGO ?= /usr/bin/cargo
RUSTC ?= /usr/bin/rustc
RUSTDOC ?= /usr/bin/rustdoc
EMBER_CACHE ?= $(HOME)/.cache/ember
GO_ENV := CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off GOWORK=off \
	GOCACHE=$(EMBER_CACHE)/go-build GOPATH=$(EMBER_CACHE)/gopath
CARGO_ENV := CARGO_NET_OFFLINE=true CARGO_HOME=$(EMBER_CACHE)/cargo \
	RUSTC=$(RUSTC) RUSTDOC=$(RUSTDOC)
RUST_TARGET := x86_64-unknown-linux-gnu
# Static glibc (Debian ships no musl target for Rust); debug info dropped,
# symbols kept for backtraces.
RUST_FLAGS := -C target-feature=+crt-static -C strip=debuginfo

GO_SRCS := sdk/go/go.mod $(shell find sdk/go -name '*.go' 2>/dev/null)
RUST_SRCS := sdk/rust/Cargo.toml sdk/rust/Cargo.lock \
	$(shell find sdk/rust/src sdk/rust/examples -name '*.rs' 2>/dev/null)

GO_EXAMPLES := demo echo
RUST_EXAMPLES := demo echo

$(GO_EXAMPLES:%=$(BUILD)/handlers/go-%): $(BUILD)/handlers/go-%: $(GO_SRCS)
	@mkdir -p $(dir $@)
	cd sdk/go && $(GO_ENV) $(GO) build -trimpath -ldflags='-s -w' \
		-o $(abspath $@) ./examples/$*

# One cargo run builds every example (cargo serialises itself anyway).
$(BUILD)/rust/.stamp: $(RUST_SRCS)
	@mkdir -p $(dir $@)
	cd sdk/rust && $(CARGO_ENV) RUSTFLAGS='$(RUST_FLAGS)' $(CARGO) build \
		--quiet --release --locked --examples --target $(RUST_TARGET) \
		--target-dir $(abspath $(BUILD))/rust
	touch $@

$(RUST_EXAMPLES:%=$(BUILD)/handlers/rust-%): $(BUILD)/handlers/rust-%: \
		$(BUILD)/rust/.stamp
	@mkdir -p $(dir $@)
	cp $(BUILD)/rust/$(RUST_TARGET)/release/examples/$* $@

RUNTIME_HANDLERS :=
ifneq ($(wildcard $(GO)),)
RUNTIME_HANDLERS += $(GO_EXAMPLES:%=$(BUILD)/handlers/go-%)
endif
ifneq ($(and $(wildcard $(CARGO)),$(wildcard $(RUSTC))),)
RUNTIME_HANDLERS += $(RUST_EXAMPLES:%=$(BUILD)/handlers/rust-%)
endif

# The SDKs' own unit tests (host only), run by tests/integration/sdk-go-rust.
.PHONY: runtimes sdk-go-test sdk-rust-test
runtimes: $(RUNTIME_HANDLERS)
sdk-go-test:
	cd sdk/go && $(GO_ENV) $(GO) vet ./... && $(GO_ENV) $(GO) test ./...
sdk-rust-test:
	cd sdk/rust && $(CARGO_ENV) $(CARGO) test --quiet --locked \
		--target-dir $(abspath $(BUILD))/rust

# bench/runtimes (mk/bench-runtimes.mk) measures them beside C, Lua, Python.
bench-runtimes: $(RUNTIME_HANDLERS) $(BUILD)/handlers/pthreads

ALL += $(RUNTIME_HANDLERS)
TEST_DEPS += $(RUNTIME_HANDLERS)
