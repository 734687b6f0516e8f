# iotplatform — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS     := $(BIN)/tools
ifndef VERSION
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
endif
LDFLAGS   := -X main.version=$(VERSION)
TOOL_PKGS := github.com/bufbuild/buf/cmd/buf \
	github.com/fullstorydev/grpcurl/cmd/grpcurl \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc \
	connectrpc.com/connect/cmd/protoc-gen-connect-go \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 \
	honnef.co/go/tools/cmd/staticcheck
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
# make run binds to loopback; `make run RUN_FLAGS=` listens on every interface.
RUN_FLAGS ?= --api-addr 127.0.0.1:8080 --http-addr 127.0.0.1:8083 --ws-addr 127.0.0.1:8765 --mqtt-addr 127.0.0.1:1883

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(TOOLS)/.stamp: tools/go.mod tools/go.sum
	cd tools && GOBIN=$(TOOLS) $(GO) install $(TOOL_PKGS)
	touch $@

.PHONY: tools
tools: $(TOOLS)/.stamp ## Install the pinned code generators (buf, protoc plugins) and grpcurl into bin/tools

.PHONY: generate
generate: tools ## Regenerate gen/ (Go, Connect), internal/gengrpc/ (gRPC, grpc-gateway), openapi/ and the SDKs from proto/
	$(TOOLS)/buf format -w proto
	$(TOOLS)/buf lint
	$(TOOLS)/buf generate
	$(GO) run ./internal/cmd/genpost
	scripts/sdk-generate.sh
	$(MAKE) web

.PHONY: lint
lint: tools ## buf lint and format, gofmt, go vet, staticcheck, go mod tidy, the import rules and generated-file marks
	$(TOOLS)/buf lint
	$(TOOLS)/buf format -d --exit-code proto
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...
	$(GO) mod tidy -diff
	$(GO) test -count=1 -run '^(TestImportRules|TestGitattributes)' .

.PHONY: build
build: ## Build bin/iotplatform and bin/iotctl
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/iotplatform ./cmd/iotplatform
	$(GO) build -o $(BIN)/iotctl ./cmd/iotctl

.PHONY: build-static
build-static: ## Build bin/static/iotplatform with CGO_ENABLED=0 (no Kafka bus: confluent-kafka-go needs cgo)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS) -s -w" -o $(BIN)/static/iotplatform ./cmd/iotplatform
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/static/iotctl ./cmd/iotctl

# Cross builds use CGO_ENABLED=0: a cgo cross build would need a C cross
# compiler for librdkafka (e.g. CC=aarch64-linux-gnu-gcc), which these
# machines do not have, so the cross-built binaries have no Kafka bus. Build
# on the target (or in the Dockerfile on an arm64 builder) for Kafka.
.PHONY: build-arm64
build-arm64: ## Cross-build bin/linux-arm64/{iotplatform,iotctl} (CGO_ENABLED=0: embedded bus only)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags "$(LDFLAGS) -s -w" -o $(BIN)/linux-arm64/iotplatform ./cmd/iotplatform
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/linux-arm64/iotctl ./cmd/iotctl

.PHONY: run
run: build ## Build and start the platform on embedded defaults (data in ./data)
	@echo ""
	@echo "  iotplatform $(VERSION) — embedded defaults (SQLite registry, embedded bus and store)"
	@echo "  Web console:                          http://localhost:8080/"
	@echo "  API (Connect, gRPC, gRPC-Web, REST):  http://localhost:8080   e.g. curl localhost:8080/healthz"
	@echo "  OpenAPI document:                     http://localhost:8080/openapi.json"
	@echo "  Metrics:                              http://localhost:8080/metrics"
	@echo "  HTTP ingest:                          http://localhost:8083/"
	@echo "  WebSocket ingest:                     ws://localhost:8765/"
	@echo "  MQTT ingest:                          tcp://localhost:1883"
	@echo "  Admin user root; its password is printed below on first start (and kept in ./data/admin-password)."
	@echo ""
	@if [ -f data/admin-password ]; then echo "  root password: $$(cat data/admin-password)"; echo ""; fi
	$(BIN)/iotplatform serve --log-format text $(RUN_FLAGS)

.PHONY: test-services
test-services: ## Install and start the real PostgreSQL, Kafka and OpenSearch used by the tests
	scripts/services/test-services.sh up
	@if [ -x scripts/install-test-tools.sh ]; then scripts/install-test-tools.sh; fi
	scripts/install-console-test-tools.sh

.PHONY: web
web: ## Rebuild the web console bundle into web/dist (needs Node 20+; commit web/dist)
	scripts/install-console-test-tools.sh --npm-only
	cd web && node build.mjs

.PHONY: test
test: tools test-services lint ## Install everything the tests need and run all of them (Go, then the SDKs)
	eval "$$(scripts/services/test-services.sh env)" && \
	IOT_TEST_REQUIRE_SERVICES=1 $(GO) test $(GO_TEST_FLAGS) ./...
	scripts/sdk-test.sh

.PHONY: sdk
sdk: ## Build the SDK artefacts into bin/sdk: Go module checks, the npm tarball, the Python wheel and sdist
	scripts/sdk-build.sh

.PHONY: test-sdk
test-sdk: tools ## Test the Go, TypeScript and Python SDKs as users install them (module, tarball, wheel), OpenAPI lint, /docs
	scripts/sdk-test.sh

.PHONY: test-short
test-short: ## Unit tests only: -short skips the e2e suite and every test needing a real service
	$(GO) test -short -count=1 ./...

.PHONY: bench
bench: build test-services ## Run the benchmarks (results go to docs/BENCHMARKS.md by hand)
	eval "$$(scripts/services/test-services.sh env)" && scripts/bench/run.sh

.PHONY: bench-console
bench-console: ## The web console's budgets in headless Chromium: bundle size, first load, 100k-point chart, live chart at 1,000 readings/s
	scripts/bench/console.sh

.PHONY: bench-paper
bench-paper: build test-services ## The WoSC'22 paper's eight endpoints × three load shapes × three topologies (results: docs/BENCHMARKS.md)
	eval "$$(scripts/services/test-services.sh env)" && $(GO) run ./bench/paper -bin $(BIN)/iotplatform $(BENCH_PAPER_FLAGS)

.PHONY: bench-fleet
bench-fleet: build ## Many devices per node (issue #18): BENCH_FLEET_FLAGS="-edge mqtt -n 19000" (default: 1000 MQTT devices)
	scripts/bench/fleet.sh $(or $(BENCH_FLEET_FLAGS),-edge mqtt -n 1000)

.PHONY: clean
clean: ## Remove build output (not ./data)
	rm -rf $(BIN)
