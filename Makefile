# mod_http_upload_s3: a C SigV4 presigner (s3sign.so) and the Prosody module.
# Every knob can be overridden: make CC=clang CFLAGS=-O3 PREFIX=/usr DESTDIR=/tmp/stage

CC ?= cc
CFLAGS ?= -O2 -g
PREFIX ?= /usr/local
DESTDIR ?=
PKG_CONFIG ?= pkg-config
LUA_PC ?= lua5.4
LUA ?= lua5.4
# Debian's busted runs on whatever 'lua' is; pin 5.4
BUSTED ?= $(LUA) /usr/bin/busted
PYTHON ?= /usr/bin/python3
VALGRIND ?= valgrind
LUACHECK ?= luacheck
# Prosody's own Lua tree, for util.stanza in the specs
PROSODY_SRC ?= /usr/lib/prosody

# The .so goes where Lua 5.4 looks for C modules, the plugin where Prosody looks.
LUA_CMODDIR ?= $(shell $(PKG_CONFIG) --variable=INSTALL_CMOD $(LUA_PC))
PROSODY_MODDIR ?= $(PREFIX)/lib/prosody/modules

# The release's version, written once: in the rockspec's name (LuaRocks wants it there)
VERSION = $(patsubst mod_http_upload_s3-%-1.rockspec,%,$(notdir $(wildcard $(dir $(firstword $(MAKEFILE_LIST)))mod_http_upload_s3-*-1.rockspec)))

# OpenSSL 3's API without what it deprecates: using any of it fails to compile
WARN = -DS3SIGN_VERSION='"$(VERSION)"' -std=c99 -D_POSIX_C_SOURCE=200809L -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED \
       -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# Lua headers only: the interpreter that loads s3sign.so provides the symbols.
LUA_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(LUA_PC))
LUA_LIBS = $(shell $(PKG_CONFIG) --libs $(LUA_PC))
CRYPTO_CFLAGS = $(shell $(PKG_CONFIG) --cflags libcrypto uuid)
CRYPTO_LIBS = $(shell $(PKG_CONFIG) --libs libcrypto uuid)
ALL_CFLAGS = $(WARN) $(CRYPTO_CFLAGS) $(CFLAGS)
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

B = build
PROSODY13 = $(B)/prosody-13
CORE_SRC = src/encode.c src/canonical.c src/crypto.c src/signer.c src/presign.c src/authorize.c
CORE = $(CORE_SRC) src/sigv4.h src/sigv4_internal.h

.PHONY: all test check test-c test-san test-valgrind test-lua test-crosscheck test-integration \
        test-integration-13 fuzz test-fuzz bench \
        demo deps install uninstall clean rock

all: $(B)/s3sign.so

$(B):
	mkdir -p $@

$(B)/s3sign.so: src/ls3sign.c $(CORE) | $(B)
	$(CC) $(ALL_CFLAGS) $(LUA_CFLAGS) -fPIC -fvisibility=hidden -shared -o $@ \
		src/ls3sign.c $(CORE_SRC) $(LDFLAGS) $(CRYPTO_LIBS)

$(B)/vectors.h: tests/c/gen_vectors.py tests/vectors/s3-presign-vectors.json | $(B)
	$(PYTHON) tests/c/gen_vectors.py tests/vectors > $@

$(B)/test_sigv4: tests/c/test_sigv4.c tests/c/unit.h $(B)/vectors.h $(CORE)
	$(CC) $(ALL_CFLAGS) -I$(B) -Isrc -o $@ tests/c/test_sigv4.c $(CORE_SRC) $(LDFLAGS) $(CRYPTO_LIBS)

$(B)/test_sigv4-san: tests/c/test_sigv4.c tests/c/unit.h $(B)/vectors.h $(CORE)
	$(CC) $(WARN) $(CRYPTO_CFLAGS) $(SAN_FLAGS) -I$(B) -Isrc -o $@ tests/c/test_sigv4.c $(CORE_SRC) $(CRYPTO_LIBS)

# A Lua interpreter linked for tests only, to drive the binding under valgrind and ASan.
$(B)/test_binding: tests/c/test_binding.c src/ls3sign.c $(CORE) | $(B)
	$(CC) $(ALL_CFLAGS) $(LUA_CFLAGS) -Isrc -o $@ tests/c/test_binding.c src/ls3sign.c $(CORE_SRC) \
		$(LDFLAGS) $(CRYPTO_LIBS) $(LUA_LIBS)

$(B)/test_binding-san: tests/c/test_binding.c src/ls3sign.c $(CORE) | $(B)
	$(CC) $(WARN) $(CRYPTO_CFLAGS) $(LUA_CFLAGS) $(SAN_FLAGS) -Isrc -o $@ tests/c/test_binding.c \
		src/ls3sign.c $(CORE_SRC) $(CRYPTO_LIBS) $(LUA_LIBS)

$(B)/bench_sigv4: bench/bench_sigv4.c $(CORE) | $(B)
	$(CC) $(ALL_CFLAGS) -O2 -Isrc -o $@ bench/bench_sigv4.c $(CORE_SRC) $(LDFLAGS) $(CRYPTO_LIBS)

# make check: what needs no server and no network (known answers, sanitizers, the specs on Prosody
# 0.12's and 13's sources, the botocore cross-check), in well under a minute; make test: everything.
check: test-c test-san test-lua test-crosscheck
test: check test-valgrind test-fuzz test-integration test-integration-13

test-c: $(B)/test_sigv4 $(B)/test_binding
	$(B)/test_sigv4 tests/vectors
	$(B)/test_binding

test-san: $(B)/test_sigv4-san $(B)/test_binding-san
	$(B)/test_sigv4-san tests/vectors
	ASAN_OPTIONS=detect_leaks=1 $(B)/test_binding-san

test-valgrind: $(B)/test_binding
	$(VALGRIND) -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
		$(B)/test_binding 100000

test-lua: $(B)/s3sign.so $(PROSODY13)/usr/bin/prosody
	$(LUACHECK) -q lua tests/spec tests/integration/fault tests/crosscheck bench
	$(BUSTED) --helper=tests/spec/helper.lua --lpath='$(PROSODY_SRC)/?.lua' --cpath='$(B)/?.so;$(PROSODY_SRC)/?.so' tests/spec
	$(BUSTED) --helper=tests/spec/helper.lua --lpath='$(PROSODY13)/usr/lib/prosody/?.lua;$(PROSODY13)/lua/?.lua' \
		--cpath='$(B)/?.so;$(PROSODY13)/usr/lib/prosody/?.so;$(PROSODY13)/lua/?.so' tests/spec

test-crosscheck: $(B)/s3sign.so
	$(PYTHON) tests/crosscheck/botocore_crosscheck.py --cases 2000 --header-cases 1000 --lua $(LUA) --cpath '$(B)/?.so'

# every file runs, and the failed ones are listed at the end; one alone: make test-integration TESTS=tests/integration/test_hostile.py
INTEGRATION_TESTS = tests/integration/test_upload.py tests/integration/test_policy.py tests/integration/test_s2s.py \
                    tests/integration/test_prosodyctl.py tests/integration/test_install.py \
                    tests/integration/test_purposes.py tests/integration/test_hostile.py tests/integration/test_records.py \
                    tests/integration/test_deletion.py tests/integration/test_credentials.py \
                    tests/integration/test_sql_quota.py \
                    tests/integration/test_xmppjs.py tests/integration/test_browser.py \
                    tests/integration/test_logs.py
XMPPJS = tests/xmppjs
BROWSER = tests/browser
NODE_DEPS = $(XMPPJS)/node_modules/.package-lock.json $(BROWSER)/node_modules/.package-lock.json

# npm rewrites node_modules/.package-lock.json on every install: a stamp newer than the lock file
$(XMPPJS)/node_modules/.package-lock.json: $(XMPPJS)/package-lock.json
	npm ci --prefix $(XMPPJS) --no-audit --no-fund

# Converse.js and playwright-core as locked; no browser download (Debian's chromium)
$(BROWSER)/node_modules/.package-lock.json: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	cd $(BROWSER) && npm ci --ignore-scripts --no-audit --no-fund

TESTS ?= $(INTEGRATION_TESTS)
# the test library is tools/ (the stack, clients, checks): tests import it, never the other way
RUN_TESTS = failed=""; for t in $(TESTS); do echo "== $$t"; $(1) PYTHONPATH=$(CURDIR)/tools $(PYTHON) $$t || \
	failed="$$failed $$t"; done; if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

# on Debian's Prosody 0.12, then on 13.0 from bookworm-backports, unpacked under build/
# build/logs: what the servers of this run logged, for test_logs.py; an earlier run's are not this one's
test-integration: $(B)/s3sign.so $(NODE_DEPS)
	rm -rf $(B)/logs
	@$(call RUN_TESTS,)

test-integration-13: $(B)/s3sign.so $(PROSODY13)/usr/bin/prosody $(NODE_DEPS)
	rm -rf $(B)/logs
	@$(call RUN_TESTS,PROSODY=$(PROSODY13)/usr/bin/prosody PROSODYCTL=$(PROSODY13)/usr/bin/prosodyctl)

# unpacked by tools/deps.sh, which may use the network; make itself never does
$(PROSODY13)/usr/bin/prosody:
	@echo "Prosody 13 is not unpacked in $(PROSODY13): run  sh tools/deps.sh" >&2; exit 1

bench: $(B)/s3sign.so $(B)/bench_sigv4
	$(PYTHON) bench/run.py --build $(B) --lua $(LUA)
	PYTHONPATH=$(CURDIR)/tools $(PYTHON) bench/prosody_cost.py

demo: $(B)/s3sign.so
	PYTHONPATH=$(CURDIR)/tools $(PYTHON) tools/demo.py $(DEMO_ARGS)

deps:
	@sh tools/deps.sh

MODULE_FILES = $(wildcard lua/mod_http_upload_s3/*.lua)

# ---- a source rock, for "prosodyctl install" from a rocks server ----
# The committed rockspec, pointed at a tarball of the tracked files (of every file but build/
# outside a git checkout), packed with it by luarocks.
ROCK_DIR = $(B)/rock
ROCK_NAME = mod_http_upload_s3-$(VERSION)
ROCK = $(ROCK_DIR)/$(ROCK_NAME)-1.src.rock
LUAROCKS ?= luarocks

rock: $(ROCK)
$(ROCK): $(ROCK_NAME)-1.rockspec $(MODULE_FILES) $(CORE) src/ls3sign.c Makefile
	rm -rf $(ROCK_DIR) && mkdir -p $(ROCK_DIR)
	{ git ls-files -z 2>/dev/null || find . \( -name build -o -name node_modules \) -prune -o -type f -print0 \
		| sed -z 's,^\./,,'; } | tar --null -T - --transform 's,^,$(ROCK_NAME)/,' -czf $(ROCK_DIR)/$(ROCK_NAME).tar.gz
	sed 's|^\turl = .*|\turl = "file://$(abspath $(ROCK_DIR))/$(ROCK_NAME).tar.gz",\n\tdir = "$(ROCK_NAME)",|' \
		$(ROCK_NAME)-1.rockspec > $(ROCK_DIR)/$(ROCK_NAME)-1.rockspec
	cd $(ROCK_DIR) && $(LUAROCKS) --lua-version 5.4 pack $(ROCK_NAME)-1.rockspec

install: $(B)/s3sign.so
	install -d $(DESTDIR)$(LUA_CMODDIR) $(DESTDIR)$(PROSODY_MODDIR)/mod_http_upload_s3
	install -m 755 $(B)/s3sign.so $(DESTDIR)$(LUA_CMODDIR)/s3sign.so
	install -m 644 $(MODULE_FILES) $(DESTDIR)$(PROSODY_MODDIR)/mod_http_upload_s3/

uninstall:
	rm -f $(DESTDIR)$(LUA_CMODDIR)/s3sign.so
	rm -rf $(DESTDIR)$(PROSODY_MODDIR)/mod_http_upload_s3

# everything built, but the Prosody 13 that tools/deps.sh unpacked (make check needs no network)
clean:
	find $(B) -mindepth 1 -maxdepth 1 ! -name prosody-13 -exec rm -rf {} + 2>/dev/null || true

# ---- fuzzing: libFuzzer under ASan+UBSan (Debian: clang, libclang-rt-14-dev) ----
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 300
FUZZ_CI_SECONDS ?= 15
FUZZ_TARGETS = presign request
FUZZ_FLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer \
             -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_RUN = -max_len=8192 -timeout=10
FUZZ_ENV = UBSAN_OPTIONS=print_stacktrace=1

$(B)/fuzz_presign: tests/fuzz/fuzz_presign.c $(CORE) | $(B)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(CRYPTO_CFLAGS) -Isrc -o $@ tests/fuzz/fuzz_presign.c $(CORE_SRC) $(CRYPTO_LIBS)

# loads lua/mod_http_upload_s3/request.lib.lua at start, relative to the top of the tree
$(B)/fuzz_request: tests/fuzz/fuzz_request.c | $(B)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(LUA_CFLAGS) -DREQUEST_LIB='"lua/mod_http_upload_s3/request.lib.lua"' \
		-DPROSODY_SRC='"$(PROSODY_SRC)"' -o $@ tests/fuzz/fuzz_request.c $(LUA_LIBS)

# FUZZ_SECONDS per target; what it learns stays in build/fuzz-corpus, crashes go to build/fuzz-artifacts
fuzz: $(B)/fuzz_presign $(B)/fuzz_request
	@status=0; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(B)/fuzz-corpus/$$t $(B)/fuzz-artifacts/$$t || exit 1; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ_ENV) $(B)/fuzz_$$t $(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=$(B)/fuzz-artifacts/$$t/ $(B)/fuzz-corpus/$$t tests/fuzz/corpus/$$t || status=1; \
	done; exit $$status

# replay the seeds and tests/fuzz/regressions/<target>-*, then a short fresh run of each
test-fuzz: $(B)/fuzz_presign $(B)/fuzz_request
	@status=0; for t in $(FUZZ_TARGETS); do \
		set -- tests/fuzz/corpus/$$t/* $$(find tests/fuzz/regressions -type f -name "$$t-*" 2>/dev/null | sort); \
		echo "test-fuzz: $$t: replaying $$# inputs"; \
		$(FUZZ_ENV) $(B)/fuzz_$$t "$$@" >$(B)/fuzz-replay-$$t.log 2>&1 || { tail -n 30 $(B)/fuzz-replay-$$t.log; status=1; }; \
		rm -rf $(B)/fuzz-ci/$$t && mkdir -p $(B)/fuzz-ci/$$t $(B)/fuzz-artifacts/$$t || exit 1; \
		echo "test-fuzz: $$t for $(FUZZ_CI_SECONDS) s"; \
		$(FUZZ_ENV) $(B)/fuzz_$$t $(FUZZ_RUN) -max_total_time=$(FUZZ_CI_SECONDS) \
			-artifact_prefix=$(B)/fuzz-artifacts/$$t/ $(B)/fuzz-ci/$$t tests/fuzz/corpus/$$t >$(B)/fuzz-ci-$$t.log 2>&1 \
			|| { tail -n 30 $(B)/fuzz-ci-$$t.log; status=1; }; \
		tail -n 1 $(B)/fuzz-ci-$$t.log; \
	done; exit $$status
