# scored: build, test, bench, run.  `make` builds ./scored; `make test` runs every test;
# `make bench` prints benchmark figures; `make run` serves (or, until the server lands,
# samples with) the bundled models.  SANITIZE=address|undefined|thread adds a sanitizer.

PKGS      := openblas libpng jansson libmicrohttpd libuv cmocka
CC        ?= cc
BUILD     := build
PYTHON    := /usr/bin/python3

# Install missing Debian packages first when pkg-config cannot see them (deploy/install-deps.sh
# is idempotent).  Evaluated once per make invocation, before anything is compiled.
ifeq ($(filter clean,$(MAKECMDGOALS)),)
DEPS_OK := $(shell pkg-config --exists $(PKGS) && $(PYTHON) -c "import pytest, numpy, yaml, jsonschema, requests" 2>/dev/null && echo yes)
ifneq ($(DEPS_OK),yes)
$(info make: installing missing dependencies with deploy/install-deps.sh)
DEPS_RC := $(shell deploy/install-deps.sh >&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error deploy/install-deps.sh failed; see above)
endif
endif
endif

# -ffp-contract=off: no fused multiply-adds, so a kernel gives the same bits in its AVX2 and
# baseline builds (engine/nn_vec.h); -Wno-psabi: GCC's note that passing 32-byte vectors by
# value changed ABI in GCC 4.6 (the vector helpers are always inlined).
CFLAGS_BASE := -std=c11 -D_DEFAULT_SOURCE -O2 -g -ffp-contract=off -Wall -Wextra -Wshadow -Wno-psabi \
               -Wstrict-prototypes -Wmissing-prototypes -MMD -MP -Iengine
ifdef SANITIZE
CFLAGS_BASE += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS     += -fsanitize=$(SANITIZE)
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS     += $(CFLAGS_BASE) $(PKG_CFLAGS)
ENGINE_LIBS := $(shell pkg-config --libs openblas libpng jansson 2>/dev/null) -lm -lpthread
SERVER_LIBS := $(shell pkg-config --libs libmicrohttpd libuv 2>/dev/null) -lpthread
TEST_LIBS   := $(shell pkg-config --libs cmocka 2>/dev/null)

ENGINE_SRC := $(wildcard engine/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
SERVER_SRC := $(wildcard server/*.c)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
SERVER_LIB := $(BUILD)/libscored_server.a
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC  := $(wildcard tests/bench/bench_*.c)
BENCH_BIN  := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
ENGINE_LIB := $(BUILD)/libscored_engine.a

.PHONY: all test unit-test cli-test e2e-test bench run clean models
all: scored

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(ENGINE_LIB): $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Everything in server/ but main.c, so unit tests can link server modules too.
$(SERVER_LIB): $(filter-out $(BUILD)/server/main.o,$(SERVER_OBJ))
	@rm -f $@
	ar rcs $@ $^

scored: $(BUILD)/server/main.o $(SERVER_LIB) $(ENGINE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(ENGINE_LIBS) $(SERVER_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(SERVER_LIB) $(ENGINE_LIB) tests/unit/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -Iserver $< -o $@ $(LDFLAGS) $(SERVER_LIB) $(ENGINE_LIB) $(ENGINE_LIBS) $(SERVER_LIBS) $(TEST_LIBS)

$(BUILD)/bench/%: tests/bench/%.c $(SERVER_LIB) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iserver $< -o $@ $(LDFLAGS) $(SERVER_LIB) $(ENGINE_LIB) $(ENGINE_LIBS) $(SERVER_LIBS)

# Each unit-test binary runs in its own process; one failure fails the target but the
# rest still run, so the log shows every failing suite.
unit-test: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
	    echo "== $$t"; timeout 900 $$t || { echo "FAILED: $$t"; fail=1; }; \
	done; exit $$fail

cli-test: scored
	$(PYTHON) -m pytest -q tests/cli

e2e-test: scored
	$(PYTHON) -m pytest -q tests/e2e

test: unit-test cli-test e2e-test browser-test

# Browser tests of the web page (tests/browser): playwright-core from npm, pinned by
# tests/browser/package-lock.json, drives Debian's chromium against ./scored.  Missing chromium,
# node or npm are installed by deploy/install-deps.sh, node_modules by `npm ci` when missing or
# older than the lock file.  Log and one screenshot per tab: build/browser/.
BROWSER_DIR   := tests/browser
BROWSER_STAMP := $(BROWSER_DIR)/node_modules/.package-lock.json
.PHONY: browser-test browser-deps
browser-deps:
	@command -v node >/dev/null && command -v npm >/dev/null && test -x /usr/bin/chromium \
	    || deploy/install-deps.sh

$(BROWSER_STAMP): $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json | browser-deps
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund
	@touch $@

browser-test: scored $(BROWSER_STAMP)
	@mkdir -p $(BUILD)/browser
	cd $(BROWSER_DIR) && node --test --test-reporter=spec --test-reporter-destination=stdout \
	    --test-reporter=spec --test-reporter-destination=../../$(BUILD)/browser/test.log page.test.mjs

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

# Server benchmark: batching on/off under 1-64 clients against the offline engine
# (tests/bench/bench_server.sh).  Its tools are not bench_*.c, so `make bench` skips them.
.PHONY: bench-server
bench-server: scored $(BUILD)/bench/loadgen $(BUILD)/bench/offline
	tests/bench/bench_server.sh ./scored $(BUILD)/bench/loadgen $(BUILD)/bench/offline

$(BUILD)/bench/loadgen: tests/bench/loadgen.c $(SERVER_LIB) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iserver $< -o $@ $(LDFLAGS) $(SERVER_LIB) $(ENGINE_LIB) $(ENGINE_LIBS) $(SERVER_LIBS)

$(BUILD)/bench/offline: tests/bench/offline.c $(SERVER_LIB) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iserver $< -o $@ $(LDFLAGS) $(SERVER_LIB) $(ENGINE_LIB) $(ENGINE_LIBS) $(SERVER_LIBS)

# Serves the bundled models until Ctrl-C (SIGINT) or SIGTERM.
run: scored
	@echo "scored: open http://127.0.0.1:8080/ (API: proto/openapi.yaml)"
	./scored serve --models models --host 127.0.0.1 --port 8080 --static static

clean:
	rm -rf $(BUILD) scored

-include $(ENGINE_OBJ:.o=.d) $(SERVER_OBJ:.o=.d)
