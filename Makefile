# shareprefill — see README.md.
GO ?= go
BIN := bin/shareprefill
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build build-bench build-viewer run test test-race fuzz test-coopmat test-viewer lint deps deps-check clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/shareprefill

# The bench build: the same command with PNG plots (`bench ... --plots DIR`),
# which link gonum/plot; the product binary above does not (build tag plots,
# see bench/README.md#plots).
build-bench:
	$(GO) build -tags plots -o bin/shareprefill-bench ./cmd/shareprefill

# Runs the default prompt on the embedded stories260K model.
run: deps build
	./$(BIN) run

# The test suite runs real Vulkan dispatches (lavapipe without a GPU).
test: deps
	SHAREPREFILL_REQUIRE_VULKAN=1 $(GO) test -count=1 -timeout 25m ./...
	@echo "the bench build (tag plots): the benchmarks' PNG plots"
	SHAREPREFILL_REQUIRE_VULKAN=1 $(GO) test -tags plots -count=1 -run 'Bench.*CLI|Plots' ./cmd/shareprefill
	@echo "examples:"
	$(GO) run ./examples/generate -max-tokens 30 >/dev/null
	$(GO) run ./examples/sparse -tokens 300 >/dev/null
	$(GO) run ./examples/embed-device >/dev/null
	$(GO) run ./examples/embed-device -adopt >/dev/null

# The whole suite under the race detector (about 6 minutes on 2 cores with
# lavapipe).
test-race: deps
	SHAREPREFILL_REQUIRE_VULKAN=1 $(GO) test -race -count=1 -timeout 25m ./...

# Every fuzz target for FUZZTIME each (parsers of untrusted input: the run
# command line, config.json, the safetensors header, the GGUF header,
# metadata and tensor table, tokenizer.json and prompts, the cluster file). New failing inputs land in the package's
# testdata/fuzz/ and then run in every plain `go test`. The budget is a count
# of executions, not a duration: Go 1.26's fuzz coordinator can fail a target
# with "context deadline exceeded" when a duration runs out while a starved
# worker is mid-input (golang/go#75804, fixed in Go 1.27; seen in CI on a loaded
# 2-core box on 2026-12-07).
FUZZTIME ?= 10000x
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzRunFlags$$' -fuzztime=$(FUZZTIME) ./cmd/shareprefill
	$(GO) test -run='^$$' -fuzz='^FuzzConfig$$' -fuzztime=$(FUZZTIME) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzSafetensorsHeader$$' -fuzztime=$(FUZZTIME) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzEncodePrompt$$' -fuzztime=$(FUZZTIME) ./model
	$(GO) test -run='^$$' -fuzz='^FuzzReadGGUF$$' -fuzztime=$(FUZZTIME) ./model/gguf
	$(GO) test -run='^$$' -fuzz='^FuzzParseClusters$$' -fuzztime=$(FUZZTIME) ./share
	$(GO) test -run='^$$' -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZTIME) ./tokenizer
	$(GO) test -run='^$$' -fuzz='^FuzzEncode$$' -fuzztime=$(FUZZTIME) ./tokenizer

# The cooperative-matrix kernels on a private lavapipe from Debian's
# backports (Debian 12's has no VK_KHR_cooperative_matrix); see
# scripts/test-coopmat-lavapipe.sh.
test-coopmat:
	scripts/test-coopmat-lavapipe.sh

# The pattern viewer needs X11 development headers (see README); it is behind
# the build tag "viewer" so that plain builds never do.
build-viewer:
	$(GO) build -tags viewer -o bin/shareprefill-view ./cmd/shareprefill-view

test-viewer: deps
	SHAREPREFILL_REQUIRE_VULKAN=1 SHAREPREFILL_REQUIRE_VIEWER=1 $(GO) test -tags viewer -count=1 ./cmd/shareprefill-view/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags plots ./cmd/shareprefill

# deps installs a Vulkan loader and driver when none is found (as root), or
# says what to run.
deps:
	@scripts/deps.sh install

deps-check:
	@scripts/deps.sh check

clean:
	rm -rf bin

include mk/shaders.mk
