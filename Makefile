# earpiece — make help lists the targets.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS        ?= ./...
TEST_FLAGS  ?= -race -count=1 -timeout 9m

.PHONY: help test unit lint bench e2e fuzz build compose-check dialplan generate

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/earpiece
	$(GO) build -o bin/earpiece ./cmd/earpiece

generate: ## regenerate ari/events_gen.go from the test Asterisk's events.json (provisions it if needed)
	$(GO) generate ./ari/

test: ## everything CI runs: installs what is missing, provisions the test Asterisk, lint, all tests
	scripts/test-deps.sh
	$(MAKE) lint compose-check
	$(GO) test $(TEST_FLAGS) $(PKGS)

unit: ## tests that need neither Asterisk nor Redis (fast)
	$(GO) test -short -count=1 ./dialplan/ ./config/

lint: ## gofmt, go.mod tidy, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

compose-check: ## docker/compose.yml parses (docker-compose config needs no engine)
	docker-compose -f docker/compose.yml config -q

bench: ## benchmarks (medians: run with -count and compare with benchstat)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS)

e2e: ## every end-to-end test (TestE2E*: real Asterisk, SIP phones, Redis; app and the HTTP edge)
	scripts/test-deps.sh
	$(GO) test $(TEST_FLAGS) -run 'E2E' $(PKGS)

fuzz: ## run each fuzz target for a while (FUZZTIME=30s)
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime $${FUZZTIME:-30s} ./ari/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $${FUZZTIME:-30s} ./dialplan/
	$(GO) test -run '^$$' -fuzz FuzzParseSignatureHeaders -fuzztime $${FUZZTIME:-30s} ./webhooks/
	$(GO) test -run '^$$' -fuzz FuzzParseAuditCursor -fuzztime $${FUZZTIME:-30s} ./app/
