# kiln — top-level entry points. The build itself is Meson + Ninja.
#   make          build everything into build/ (CLI at build/kiln)
#   make demo     install deps, build, run the end-to-end demo
#   make check    install deps, build with -Werror + ASan/UBSan, run unit + e2e tests + fuzz smoke
#   make stress   longer crash/reliability trials, then make conformance
#   make conformance  CPython's file tests natively, under kiln run and kiln fs mount
#   make bench    benchmarks (ratios measured in one run) -> bench/results/
#   make fuzz     build libFuzzer targets (clang) into build-fuzz/
#   make install  install into PREFIX (default /usr/local)
#   make deb      Debian packages (kiln, libkiln, kiln-cas, kiln-las) -> build-deb/, lintian-checked

BUILD       ?= build
CHECK_BUILD ?= build-check
FUZZ_BUILD  ?= build-fuzz
PREFIX      ?= /usr/local
PYTEST      ?= /usr/bin/python3 -m pytest
FUZZ_SECONDS ?= 6

.PHONY: all build deps demo check unit e2e fuzz fuzz-smoke stress conformance bench install deb clean

all: build

deps:
	@scripts/install-deps.sh --check >/dev/null 2>&1 || scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --prefix=$(PREFIX) -Dwerror=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	@scripts/demo.sh $(BUILD)

$(CHECK_BUILD)/build.ninja: | deps
	meson setup $(CHECK_BUILD) -Dwerror=true -Db_sanitize=address,undefined \
	  -Db_lundef=false -Dbuildtype=debug -Doptimization=1

check: deps $(CHECK_BUILD)/build.ninja
	ninja -C $(CHECK_BUILD)
	@scripts/check.sh $(CHECK_BUILD) $(FUZZ_BUILD) $(FUZZ_SECONDS)

stress: build
	scripts/build-musl-sqlite3.sh
	scripts/build-musl-sqlite3-static.sh
	scripts/build-musl-redis.sh
	scripts/build-musl-redis-static.sh
	KILN_BUILD=$(abspath $(BUILD)) KILN_STRESS=1 $(PYTEST) -q tests/e2e -m stress
	scripts/conformance.py --build $(BUILD)

# All of CPython's file test modules in three views (docs/conformance.md);
# e.g. make conformance CONFORMANCE_ARGS='--modules test_os --views run'
conformance: build
	scripts/conformance.py --build $(BUILD) $(CONFORMANCE_ARGS)

$(FUZZ_BUILD)/build.ninja: | deps
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=disabled -Dfuse=disabled \
	  -Dmusl=disabled -Db_lundef=false -Dbuildtype=debugoptimized

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzz-targets

bench: build
	@scripts/bench.sh $(BUILD)

install: build
	meson install -C $(BUILD)

# Debian packages of the working tree (debian/, docs/packages.md).
deb: deps
	scripts/deb.sh build-deb

clean:
	rm -rf $(BUILD) $(CHECK_BUILD) $(FUZZ_BUILD) build-deb
