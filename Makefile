# qmail-throttle: patch set and overlay over stock netqmail-1.06.
#
#   make                  build the patched qmail in build/netqmail-1.06
#   make test             unit tests, fuzz smoke run, SMTP tests on a throwaway qmail
#   make fuzz             build the libFuzzer targets (make fuzz-smoke runs them briefly)
#   make install          install into QMAIL_HOME like qmail's "make setup check"
#   make stock            build unpatched netqmail-1.06 in build/stock/netqmail-1.06
#   make demo             a scripted SMTP session against a throwaway installation
#   make bench            side-by-side benchmarks against stock (never part of test)
#
# Inputs: NETQMAIL_TARBALL (tarball or unpacked tree of stock netqmail-1.06),
# QMAIL_HOME (written into the tree's conf-qmail), CONF_SPAWN (conf-spawn),
# THROTTLE_OWNER (make install: owner of QMAIL_HOME/throttle, default qmaild),
# TEST_DIR (where test, demo and bench install the throwaway qmail).
#
# Every target first checks the Debian packages of tools/debian-packages
# (tools/debian-deps): as root it installs the missing ones, otherwise it
# stops with one line naming them.

NETQMAIL_TARBALL ?= /usr/local/src/netqmail-1.06.tar.gz
QMAIL_HOME ?= /var/qmail
CONF_SPAWN ?= $(shell head -n 1 conf-spawn)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

TOP := $(CURDIR)
# Relative, so that a checkout path with a space in it works: make cannot
# name files with spaces in targets.
B := build
STOCKSRC := $(B)/src/netqmail-1.06
TREE := $(B)/netqmail-1.06
STOCKTREE := $(B)/stock/netqmail-1.06
# The throwaway installation that tests, demo and bench use, with the trees
# built for it and everything else qmail's users run in tests: outside the
# checkout, which qmaild cannot enter when it lies in a 0700 home, in a
# directory of root's (not /tmp: nobody else may create it first), one per
# checkout (doc/DESIGN.md, "Tests").
ifneq ($(findstring ',$(TOP)),)
$(error the checkout path $(TOP) contains a single quote, which the build's shell commands cannot carry; clone it elsewhere)
endif
ifneq ($(origin TEST_DIR),command line)
TEST_DIR := /var/lib/qmail-throttle/test-$(shell printf '%s' '$(TOP)' | sha256sum | cut -c1-16)
endif
T := $(TEST_DIR)
TEST_HOME := $(T)/home
TEST_TREE := $(T)/netqmail-1.06
TEST_STOCK := $(T)/stock/netqmail-1.06
# The programs that deliver, built again with glibc's _FORTIFY_SOURCE (as
# RHEL-like build flags do) for the same home; tests run them from the tree.
FORTIFY_CC := cc -O2 -D_FORTIFY_SOURCE=2
FORTIFY_TREE := $(T)/fortify/netqmail-1.06
FORTIFY_PROGS := qmail-start qmail-send qmail-lspawn qmail-rspawn qmail-remote \
	qmail-clean chkspawn
# A complete stock installation with its own home and conf-spawn 255 (stock's
# maximum), for benchmarks that need stock qmail-send and its spawns.
BENCH_STOCK := $(T)/stock-full
BENCH_STOCK_HOME := $(BENCH_STOCK)/home
BENCH_STOCK_TREE := $(BENCH_STOCK)/netqmail-1.06

# ---- Debian packages ----------------------------------------------------------
# Checked before anything is built: test, demo and bench need every package of
# tools/debian-packages, the other targets those marked "build".
TEST_GOALS := test unit smtp-test fuzz fuzz-smoke test-install fortify-tree bench-stock-install demo bench
NO_DEPS_GOALS := clean distclean qt-env
GOALS := $(or $(MAKECMDGOALS),all)
DEPS := $(if $(filter $(TEST_GOALS),$(GOALS)),all,$(if $(filter-out $(NO_DEPS_GOALS),$(GOALS)),build))
ifneq ($(DEPS),)
DEPS_PROBLEM := $(shell tools/debian-deps $(DEPS))
ifneq ($(DEPS_PROBLEM),)
$(error $(DEPS_PROBLEM))
endif
endif

PATCHES := $(shell sed -e 's/[[:space:]]*\#.*//' -e '/^[[:space:]]*$$/d' patches/series)
SUBMAKE := $(MAKE) --no-print-directory -j$(JOBS)

.PHONY: all build stock install test unit smtp-test fuzz fuzz-smoke test-install fortify-tree \
	bench-stock-install demo bench qt-env clean distclean

all: build

# ---- stock input, verified -------------------------------------------------
# Re-verify when the input path, the input itself or the manifest changes.
$(B)/src/input: FORCE
	@mkdir -p $(B)/src
	@echo '$(abspath $(NETQMAIL_TARBALL))' > $@.new
	@if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; fi

$(STOCKSRC)/.verified: $(B)/src/input $(wildcard $(NETQMAIL_TARBALL)) tools/netqmail-1.06.sha256 tools/stock-source
	tools/stock-source '$(NETQMAIL_TARBALL)' $(B)/src

# ---- trees ------------------------------------------------------------------
# A patched tree is remade from scratch whenever the stock input or any patch
# changes; overlay files are synced into it on every build (only changed files
# are touched) and qmail's own Makefile rebuilds what depends on them.
%/netqmail-1.06/.prepared-patched: $(STOCKSRC)/.verified patches/series $(addprefix patches/,$(PATCHES)) tools/prepare-tree
	tools/prepare-tree $(STOCKSRC) $*/netqmail-1.06 patched
	touch $@

%/netqmail-1.06/.prepared-stock: $(STOCKSRC)/.verified tools/prepare-tree
	tools/prepare-tree $(STOCKSRC) $*/netqmail-1.06 stock
	touch $@

# build-tree TREE HOME SPAWN: configure a prepared tree and run qmail's make.
define build-tree
	tools/sync-overlay $(1)
	tools/setconf $(1)/conf-qmail '$(2)'
	tools/setconf $(1)/conf-spawn '$(3)'
	tools/qmail-users '$(2)'
	$(SUBMAKE) -C $(1) it man
endef

define build-stock-tree
	tools/setconf $(1)/conf-qmail '$(2)'
	tools/qmail-users '$(2)'
	$(SUBMAKE) -C $(1) it man
endef

build: $(TREE)/.prepared-patched
	$(call build-tree,$(TREE),$(QMAIL_HOME),$(CONF_SPAWN))

stock: $(STOCKTREE)/.prepared-stock
	$(call build-stock-tree,$(STOCKTREE),$(QMAIL_HOME))

install: build
	QMAIL_HOME='$(QMAIL_HOME)' THROTTLE_OWNER='$(THROTTLE_OWNER)' tools/install-qmail $(TREE)

# ---- tests ------------------------------------------------------------------
# Test builds are configured for the throwaway home in TEST_DIR, which
# tools/test-dir makes (root's, 0755, reachable by qmaild) before any of them.
$(T)/checkout: tools/test-dir
	tools/test-dir '$(T)' '$(TOP)'

$(TEST_TREE)/.prepared-patched $(TEST_STOCK)/.prepared-stock $(FORTIFY_TREE)/.prepared-patched \
$(BENCH_STOCK_TREE)/.prepared-stock: | $(T)/checkout

$(T)/.test-trees: FORCE $(TEST_TREE)/.prepared-patched $(TEST_STOCK)/.prepared-stock
	$(call build-tree,$(TEST_TREE),$(TEST_HOME),$(CONF_SPAWN))
	$(call build-stock-tree,$(TEST_STOCK),$(TEST_HOME))

test-install: $(T)/.test-trees
	QMAIL_HOME='$(TEST_HOME)' tools/install-qmail $(TEST_TREE) --throwaway

fortify-tree: $(FORTIFY_TREE)/.prepared-patched
	tools/sync-overlay $(FORTIFY_TREE)
	tools/setconf $(FORTIFY_TREE)/conf-qmail '$(TEST_HOME)'
	tools/setconf $(FORTIFY_TREE)/conf-spawn '$(CONF_SPAWN)'
	tools/setconf $(FORTIFY_TREE)/conf-cc '$(FORTIFY_CC)'
	$(SUBMAKE) -C $(FORTIFY_TREE) $(FORTIFY_PROGS)

bench-stock-install: $(BENCH_STOCK_TREE)/.prepared-stock
	tools/setconf $(BENCH_STOCK_TREE)/conf-spawn 255
	$(call build-stock-tree,$(BENCH_STOCK_TREE),$(BENCH_STOCK_HOME))
	QMAIL_HOME='$(BENCH_STOCK_HOME)' tools/install-qmail $(BENCH_STOCK_TREE) --throwaway

UNIT := $(B)/unit
# Unit tests compile the overlay straight from src-overlay, without exceptions
# like the tree build (conf-cxx), but with the normal C++ runtime: program
# mains (*_main.cpp) and qmail-smtpd's own runtime pieces are left out.
CXXFLAGS_UNIT := -std=c++20 -O1 -g -fno-exceptions -Wall -Wextra -Werror -Isrc-overlay
OVERLAY_LIB_SRCS := $(filter-out $(wildcard src-overlay/*_main.cpp) src-overlay/cxx_runtime.cpp,$(wildcard src-overlay/*.cpp))
UNIT_SRCS := $(wildcard tests/unit/*.cpp)
# qmail C that the unit tests link, compiled as C by the C compiler, as qmail
# compiles it: delnum.c and delnum.h come with patch 0010 (the big-concurrency
# patches stand alone, without the overlay), so they are taken from the
# prepared tree. test_delnum.cpp finds delnum.h there with -iquote, which only
# "..." includes see (the tree's error.h must not hide <error.h>).
CFLAGS_UNIT := -std=gnu99 -O1 -g -Wall -Wextra -Werror
UNIT_QMAIL_C_OBJS := $(UNIT)/c/delnum.o

$(UNIT)/c/%.o: $(TREE)/.prepared-patched
	@mkdir -p $(UNIT)/c
	gcc $(CFLAGS_UNIT) -c -o $@ $(TREE)/$*.c

$(UNIT)/o/tests/unit/test_delnum.o: $(TREE)/.prepared-patched
$(UNIT)/o/tests/unit/test_delnum.o: CXXFLAGS_UNIT += -iquote $(TREE)

# One object per source, JOBS at a time (unit runs make again for that).
UNIT_OBJS := $(patsubst %.cpp,$(UNIT)/o/%.o,$(OVERLAY_LIB_SRCS) $(UNIT_SRCS))

$(UNIT)/o/%.o: %.cpp $(wildcard src-overlay/*.h) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	g++ $(CXXFLAGS_UNIT) -c -o $@ $<

$(UNIT)/unit-tests: $(UNIT_OBJS) $(UNIT_QMAIL_C_OBJS)
	g++ -o $@ $(UNIT_OBJS) $(UNIT_QMAIL_C_OBJS) -lgtest_main -lgtest -lcdb -llmdb -lhiredis -ldl -lpthread

unit: $(TREE)/.prepared-patched
	$(SUBMAKE) $(UNIT)/unit-tests
	$(UNIT)/unit-tests --gtest_brief=1

# libFuzzer targets on the limits table (tests/fuzz): `make fuzz` builds
# them, `make fuzz-smoke` (part of make test) runs each for FUZZ_SECONDS.
# The growing corpus stays in build/fuzz; tests/fuzz/corpus holds the seeds.
FUZZ := $(B)/fuzz
FUZZ_SECONDS ?= 12
FUZZ_TARGETS := fuzz_spamt fuzz_table
SPAMT_LIB_SRCS := $(addprefix src-overlay/,ip_address.cpp spamt_settings.cpp spamt_syntax.cpp text_syntax.cpp \
	spamt_format.cpp spamt_compile.cpp limits_table.cpp spamt_explain.cpp)
CXXFLAGS_FUZZ := -std=c++20 -g -O1 -fno-exceptions -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Isrc-overlay

$(FUZZ)/%: tests/fuzz/%.cpp $(SPAMT_LIB_SRCS) $(wildcard src-overlay/*.h)
	@mkdir -p $(FUZZ)
	clang++ $(CXXFLAGS_FUZZ) -o $@ $< $(SPAMT_LIB_SRCS) -lcdb

fuzz: $(addprefix $(FUZZ)/,$(FUZZ_TARGETS))

fuzz-smoke: fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  c=$${t#fuzz_}; mkdir -p $(FUZZ)/corpus-$$c; \
	  echo "fuzz-smoke: $$t for $(FUZZ_SECONDS)s"; \
	  $(FUZZ)/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -dict=tests/fuzz/spamt.dict -artifact_prefix=$(FUZZ)/$$t- \
	    $(FUZZ)/corpus-$$c tests/fuzz/corpus/$$c 2>$(FUZZ)/$$t.log \
	  || { tail -n 40 $(FUZZ)/$$t.log; exit 1; }; \
	  grep -E '^stat::number_of_executed_units|^Done' $(FUZZ)/$$t.log || true; \
	done

# Where tests, demo and bench find everything (tests/smtp/qmail_harness.py;
# run outside make, it asks `make qt-env`).
QT_VARS = QT_TOP='$(TOP)' QT_DIR='$(T)' QT_HOME='$(TEST_HOME)' QT_TREE='$(TEST_TREE)' \
	QT_STOCK='$(TEST_STOCK)' QT_FORTIFY='$(FORTIFY_TREE)' QT_BENCH_STOCK_HOME='$(BENCH_STOCK_HOME)' \
	QT_BENCH_BIN='$(TOP)/$(BENCH_BIN)' QT_STOCKSRC='$(TOP)/$(STOCKSRC)' \
	NETQMAIL_TARBALL='$(abspath $(NETQMAIL_TARBALL))'
QT_ENV = env $(QT_VARS)

qt-env:
	@printf '%s\n' $(QT_VARS)

smtp-test: test-install fortify-tree
	$(QT_ENV) /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/pipeline tests/smtp tests/tools

test: build unit fuzz-smoke smtp-test

# ---- demo and benchmarks ----------------------------------------------------
demo: test-install
	$(QT_ENV) /usr/bin/python3 tools/demo

# The store's micro-benchmark: overlay flags (conf-cxx), LMDB and hiredis
# linked statically, as qmail-smtpd links them.
BENCH_BIN := $(B)/bench/throttle-bench
BENCH_STORE_SRCS := $(addprefix src-overlay/,window.cpp store.cpp process_lock.cpp store_lmdb.cpp \
	store_lmdb_generation.cpp store_lmdb_txn.cpp store_url.cpp \
	redis_connection.cpp redis_cluster_slots.cpp redis_functions.cpp redis_router.cpp redis_credentials.cpp \
	store_redis.cpp)

$(BENCH_BIN): bench/throttle-bench.cpp $(BENCH_STORE_SRCS) $(wildcard src-overlay/*.h)
	@mkdir -p $(dir $@)
	g++ -std=c++20 -O2 -fno-exceptions -fno-rtti -fno-threadsafe-statics -Wall -Wextra -Werror -Isrc-overlay \
	-o $@ bench/throttle-bench.cpp $(BENCH_STORE_SRCS) `g++ -print-file-name=liblmdb.a` \
	`g++ -print-file-name=libhiredis.a` -lpthread

bench: test-install bench-stock-install $(BENCH_BIN)
	$(QT_ENV) /usr/bin/python3 bench/run $(BENCH)

# The throwaway installation is removed only where tools/test-dir made it.
clean:
	rm -rf $(B)/netqmail-1.06 $(B)/stock $(B)/test $(B)/unit $(B)/quilt $(B)/fuzz $(B)/bench
	if [ -f '$(T)/checkout' ] && [ -w '$(T)/..' ]; then rm -rf '$(T)'; fi

distclean: clean
	rm -rf $(B)

FORCE:
