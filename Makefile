# qmail-throttle: patch set and overlay over stock netqmail-1.06.
#
#   make                  build the patched qmail in build/netqmail-1.06
#   make test             unit tests, fuzz smoke run, SMTP tests on a throwaway qmail
#   make install          install into QMAIL_HOME like qmail's "make setup check"
#   make stock            build unpatched netqmail-1.06 in build/stock/netqmail-1.06
#   make demo             a scripted SMTP session against a throwaway installation
#   make bench            side-by-side benchmarks against stock (never part of test)
#
# Inputs: NETQMAIL_TARBALL (tarball or unpacked tree of stock netqmail-1.06),
# QMAIL_HOME (written into the tree's conf-qmail), CONF_SPAWN (conf-spawn),
# THROTTLE_OWNER (make install: owner of QMAIL_HOME/throttle, default qmaild).

NETQMAIL_TARBALL ?= /usr/local/src/netqmail-1.06.tar.gz
QMAIL_HOME ?= /var/qmail
CONF_SPAWN ?= $(shell head -n 1 conf-spawn)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

TOP := $(CURDIR)
B := $(TOP)/build
STOCKSRC := $(B)/src/netqmail-1.06
TREE := $(B)/netqmail-1.06
STOCKTREE := $(B)/stock/netqmail-1.06
# The throwaway installation that tests, demo and bench use.
T := $(B)/test
TEST_HOME := $(T)/home
TEST_TREE := $(T)/netqmail-1.06
TEST_STOCK := $(T)/stock/netqmail-1.06

PATCHES := $(shell sed -e 's/[[:space:]]*\#.*//' -e '/^[[:space:]]*$$/d' patches/series)
SUBMAKE := $(MAKE) --no-print-directory -j$(JOBS)

.PHONY: all build stock install test unit smtp-test fuzz-smoke test-install demo bench clean distclean

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
# Test builds are configured for the throwaway home under build/test.
$(T)/.test-trees: FORCE $(TEST_TREE)/.prepared-patched $(TEST_STOCK)/.prepared-stock
	$(call build-tree,$(TEST_TREE),$(TEST_HOME),$(CONF_SPAWN))
	$(call build-stock-tree,$(TEST_STOCK),$(TEST_HOME))

test-install: $(T)/.test-trees
	QMAIL_HOME='$(TEST_HOME)' tools/install-qmail $(TEST_TREE) --throwaway

UNIT := $(B)/unit
# Unit tests compile the overlay straight from src-overlay, without exceptions
# like the tree build (conf-cxx), but with the normal C++ runtime: program
# mains (*_main.cpp) and qmail-smtpd's own runtime pieces are left out.
CXXFLAGS_UNIT := -std=c++20 -O1 -g -fno-exceptions -Wall -Wextra -Werror -Isrc-overlay
OVERLAY_LIB_SRCS := $(filter-out $(wildcard src-overlay/*_main.cpp) src-overlay/cxx_runtime.cpp,$(wildcard src-overlay/*.cpp))
UNIT_SRCS := $(wildcard tests/unit/*.cpp)

$(UNIT)/unit-tests: $(OVERLAY_LIB_SRCS) $(UNIT_SRCS) $(wildcard src-overlay/*.h) $(wildcard tests/unit/*.h)
	@mkdir -p $(UNIT)
	g++ $(CXXFLAGS_UNIT) -o $@ $(OVERLAY_LIB_SRCS) $(UNIT_SRCS) -lgtest_main -lgtest -lcdb -llmdb -ldl -lpthread

unit: $(UNIT)/unit-tests
	$(UNIT)/unit-tests --gtest_brief=1

QT_ENV := QT_TOP='$(TOP)' QT_HOME='$(TEST_HOME)' QT_TREE='$(TEST_TREE)' QT_STOCK='$(TEST_STOCK)' \
	NETQMAIL_TARBALL='$(abspath $(NETQMAIL_TARBALL))'

smtp-test: test-install
	$(QT_ENV) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/pipeline tests/smtp

test: build unit smtp-test

# ---- demo and benchmarks ----------------------------------------------------
demo: test-install
	$(QT_ENV) /usr/bin/python3 tools/demo

# The store's micro-benchmark: overlay flags (conf-cxx) and LMDB linked
# statically, as qmail-smtpd links them.
BENCH_BIN := $(B)/bench/throttle-bench
BENCH_STORE_SRCS := $(addprefix src-overlay/,window.cpp store.cpp process_lock.cpp store_lmdb.cpp)

$(BENCH_BIN): bench/throttle-bench.cpp $(BENCH_STORE_SRCS) $(wildcard src-overlay/*.h)
	@mkdir -p $(dir $@)
	g++ -std=c++20 -O2 -fno-exceptions -fno-rtti -fno-threadsafe-statics -Wall -Wextra -Werror -Isrc-overlay \
	-o $@ bench/throttle-bench.cpp $(BENCH_STORE_SRCS) `g++ -print-file-name=liblmdb.a` -lpthread

bench: test-install $(BENCH_BIN)
	$(QT_ENV) /usr/bin/python3 bench/run $(BENCH)

clean:
	rm -rf $(B)/netqmail-1.06 $(B)/stock $(B)/test $(B)/unit $(B)/quilt $(B)/bench

distclean:
	rm -rf $(B)

FORCE:
