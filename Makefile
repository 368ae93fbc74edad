# logtk — the two commands that matter are `make run` and `make test`.
# Everything needs only Go; `make proto` additionally downloads buf and
# protoc-gen-go through the Go module proxy.

GO        ?= go
BIN       := bin
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 5s
# bash with pipefail: a failing command piped into tee fails the target.
SHELL       := bash
.SHELLFLAGS := -o pipefail -c

# Every package runs under the race detector (./... cannot miss a new one;
# bench/ is a module of its own).
RACE_PKGS := ./...

# The reference plugins built from Go into bin/plugins. The formatters
# (text, json, protobuf) and the console transport are built from C and
# compiled into logtk-host
# (plugins/builtin, make c-plugins); their Go packages are the reference
# the C is tested against.
PLUGINS   := syslog otlp kafka
EMBEDDED  := text json protobuf console file network

.PHONY: all build plugins examples run test vet lint fuzz bench proto c-plugins c-tables clean

all: build

build: plugins
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/logtk-host ./cmd/logtk-host
	$(GO) build -o $(BIN)/hello ./examples/hello

## plugins: the reference plugins as Wasm modules, in bin/plugins (where
## logtk-host looks for built-in plugins next to itself).
plugins:
	@mkdir -p $(BIN)/plugins
	@# A module left by an older build would override the embedded one.
	@for p in $(EMBEDDED); do rm -f $(BIN)/plugins/$$p.wasm; done
	@for p in $(PLUGINS); do \
		echo "plugin $$p"; \
		(cd plugins/$$p/plugin && GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o $(CURDIR)/$(BIN)/plugins/$$p.wasm .) || exit 1; \
	done

## examples: the example user plugins (examples/redact, examples/batchfile).
examples: build
	@for p in redact batchfile; do \
		echo "example plugin $$p"; \
		(cd examples/$$p && GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o $$p.wasm .) || exit 1; \
	done

## run: build, start a log server (examples/server/server.hcl, its own
## log in logs/server.log), run the main job (plugins.hcl) into it, stop
## the server, show where records went. If the server cannot listen
## (127.0.0.1:7400 taken), stop at once and say so.
run: build
	@rm -rf logs; mkdir -p logs
	@$(BIN)/logtk-host serve -config examples/server/server.hcl 2>logs/server.log & srv=$$!; \
	trap 'kill $$srv 2>/dev/null' EXIT; \
	for i in $$(seq 300); do \
		grep -q 'log server listening' logs/server.log && break; \
		if ! kill -0 $$srv 2>/dev/null; then \
			cat logs/server.log; \
			echo "make run: the log server did not start (above); is 127.0.0.1:7400 taken? Stop what listens there, or change the port in examples/server/server.hcl and plugins.hcl." >&2; \
			exit 1; \
		fi; \
		sleep 0.1; \
	done; \
	grep -q 'log server listening' logs/server.log || { echo "make run: the log server is not listening after 30 s (logs/server.log)" >&2; exit 1; }; \
	$(BIN)/logtk-host run -config plugins.hcl; status=$$?; \
	kill -TERM $$srv; wait $$srv; \
	echo; echo "Files written (logs/received is the log server's; its own log is logs/server.log):"; \
	find logs -type f | sort | sed 's/^/  /'; \
	echo "Read what the log server stored: $(BIN)/logtk-host logs logs/received/hello (-o json, -level warn, ...)"; \
	exit $$status

## test: vet, every test under the race detector, and a short run of every
## fuzz target.
test: vet plugins
	LOGTK_PLUGIN_DIR=$(CURDIR)/$(BIN)/plugins $(GO) test -race -count=1 -timeout 8m $(RACE_PKGS)
	@# The chaos test at full size (1,000,000 records) runs without the race
	@# detector, which would make it take minutes; under -race it ran 100,000.
	LOGTK_PLUGIN_DIR=$(CURDIR)/$(BIN)/plugins $(GO) test -count=1 -timeout 5m -run 'TestNetworkChaos|TestHostCrash|TestKafkaScale' ./host/
	$(MAKE) fuzz

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## lint: staticcheck (fetched through the Go module proxy, not a
## dependency of the module) over both modules. Its four ST1005 reports
## are HCL diagnostic details, whole sentences by design.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) -checks 'all,-ST1000,-ST1003,-ST1005' ./...
	cd bench && $(GO) run $(STATICCHECK) -checks 'all,-ST1000,-ST1003,-ST1005' ./...

# Every fuzz target, FUZZTIME each (make fuzz FUZZTIME=5m for a real hunt).
# New interesting inputs are not minimised: minimising can outlast a short
# -fuzztime. scripts/fuzz.sh explains the one engine time-out it tolerates.
FUZZ_TARGETS := \
	./internal/ipc:FuzzReader \
	./internal/logread:FuzzRead \
	./internal/syslog:FuzzParse \
	./internal/syslog:FuzzReader \
	./internal/marks:FuzzEach \
	./plugins/file:FuzzMarksLog \
	./plugins/file:FuzzMarksLogAsTheReference \
	./plugins/network:FuzzWelcomeAsTheReference \
	./internal/otlp:FuzzDecode \
	./internal/record:FuzzValidate \
	./internal/capture:FuzzParseJSONLine \
	./internal/capture:FuzzSplitter \
	./record:FuzzView \
	./internal/record:FuzzWholeFields \
	./internal/entries:FuzzCount \
	./plugins/protobuf:FuzzSchema \
	./internal/wire:FuzzPayloads \
	./plugins/network:FuzzServerFrames \
	./plugins/otlp:FuzzAnswer \
	./internal/shmring:FuzzRead \
	./internal/wasm/budget:FuzzInstrumentBudget \
	./config:FuzzParse \
	./logserver:FuzzKafkaRecord \
	./logserver:FuzzStaged \
	./internal/wasm:FuzzKafkaRecords \
	./plugins/builtin:FuzzMatchesReference \
	./plugins/builtin:FuzzConfigureAsTheReference

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh $(FUZZ_TARGETS)

## bench: the SDK beside zerolog, zap and slog; host ingest from 1 and 4
## worker processes; formatters native vs Wasm; the pipeline; end to end
## with CPU per record and peak memory; the log server beside rsyslog
## (imtcp -> omfile, when rsyslogd is installed). Peers live in ./bench
## (own go.mod) so the main module does not depend on them. Everything
## goes to bin/bench.txt, then one table of the targets (bench/table).
bench: plugins
	@mkdir -p $(BIN)
	@# The SDK and its peers in 5 rounds, each logger once per round: the
	@# machine's noise drifts over minutes, and each logger's median then
	@# comes from the same minutes as the others'.
	cd bench && $(GO) test -c -o $(CURDIR)/$(BIN)/bench.test .
	cd bench && for i in 1 2 3 4 5; do $(CURDIR)/$(BIN)/bench.test -test.run '^$$' -test.bench . -test.benchmem || exit 1; done | tee $(CURDIR)/$(BIN)/bench.txt
	$(GO) test -run '^$$' -bench 'Ingest|NetworkEndToEnd|BenchmarkKafka' -benchmem -count 3 ./host/ | tee -a $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench . -skip 'Ingest|NetworkEndToEnd|BenchmarkKafka' -benchmem ./host/ ./internal/... ./plugins/ ./logserver/ | tee -a $(BIN)/bench.txt
	@# The formatter targets' runs four times more (the table takes the
	@# median of five): the Wasm runs allocate their output, so the
	@# garbage collector and with it the other core's load move them.
	$(GO) test -run '^$$' -bench 'BenchmarkFormat$$/.*/batch=512/' -count 4 ./plugins/ | tee -a $(BIN)/bench.txt
	$(GO) test -run '^$$' -bench 'MakeRun|ServerIdle' -benchtime 5x ./cmd/logtk-host/ | tee -a $(BIN)/bench.txt
	cd bench && $(GO) run ./peer -n 1000000 | tee -a $(CURDIR)/$(BIN)/bench.txt
	@echo; cd bench && $(GO) run ./table < $(CURDIR)/$(BIN)/bench.txt

BUF_VERSION          := v1.50.0
PROTOC_GEN_GO_VERSION := v1.36.12

## c-plugins: rebuild the committed modules built from C: the built-in
## text and JSON formatters (plugins/c -> plugins/builtin, compiled into
## logtk-host) and the example plugin examples/clogfmt, with the pinned
## clang and Debian 12's wasi-libc: apt-get install clang-14 lld-14
## wasi-libc libclang-rt-14-dev-wasm32. The modules are committed so
## that make run and make test need only Go; tests compare them with what
## this builds when clang is there (C_OUT: where to put them instead).
## c-tables regenerates plugins/c/tables.h from Go's strconv.
CLANG          ?= clang-14
CLANG_VERSION  := 14.0.6
C_FLAGS        := --target=wasm32-wasi -O2 -mexec-model=reactor -g0 -Wall -Wextra -Werror -Wl,--strip-all
C_OUT          ?=
# clang runs binaryen's wasm-opt on what it links when it finds one on
# PATH, which would change the modules: its PATH is a directory holding
# only its linker (under both the names Debian's and LLVM's clang use).
C_BIN           = $(realpath $(shell command -v $(CLANG)))
C_PATH          = $(CURDIR)/$(BIN)/clang-path
C_RUN           = PATH=$(C_PATH) $(C_BIN)
c-plugins:
	@$(CLANG) --version 2>/dev/null | grep -q "clang version $(CLANG_VERSION)" || \
		{ echo "c-plugins needs clang $(CLANG_VERSION) as $(CLANG): apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32" >&2; exit 1; }
	@# Each link replaced by a rename, which is atomic: tests run this
	@# target concurrently, and a link left by another clang is renewed.
	@mkdir -p $(C_PATH) && for n in wasm-ld wasm-ld-14; do \
		ln -sfn $(dir $(C_BIN))wasm-ld $(C_PATH)/.$$n.$$$$ && mv -fT $(C_PATH)/.$$n.$$$$ $(C_PATH)/$$n || exit 1; \
	done
	$(C_RUN) $(C_FLAGS) -o $(or $(C_OUT),examples/clogfmt)/clogfmt.wasm examples/clogfmt/plugin/clogfmt.c
	@for p in $(EMBEDDED); do \
		echo "$(CLANG) ... -o $(or $(C_OUT),plugins/builtin)/$$p.wasm plugins/c/$$p.c"; \
		$(C_RUN) $(C_FLAGS) -o $(or $(C_OUT),plugins/builtin)/$$p.wasm plugins/c/$$p.c || exit 1; \
	done

c-tables:
	$(GO) run ./plugins/c/gentables -o plugins/c/tables.h

## proto: regenerate the committed *.pb.go from proto/.
proto:
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(BIN)/tools/buf generate

clean:
	rm -rf $(BIN)
