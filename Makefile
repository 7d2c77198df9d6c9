# tern - build, run, test. See README.md. Targets:
#   make            build build/tern (gcc)
#   make run        install missing packages, build, start tern on etc/tern.conf (loopback)
#   make test       install test packages, build with gcc and with clang+ASan+UBSan, run every test
#                   (unit, integration, and each fuzz target briefly on its seed corpus)
#   make unit       cmocka unit tests only (sanitizer build)
#   make bench      benchmarks against peers (see docs/performance.md)
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each
#   make check-valgrind  unit and integration tests under valgrind memcheck (gcc build)
#   make check-tls  testssl.sh scan of the STARTTLS and implicit-TLS ports (about 5 min per key type)
#   make install    install binary and default configuration under PREFIX
CC        ?= cc
BUILD     ?= build
PREFIX    ?= /usr/local
FUZZ_SECONDS ?= 60

PKG_LIBS  := libevent libevent_openssl libcares openssl
CPPFLAGS  += -D_GNU_SOURCE -Isrc -I$(BUILD)
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c17 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
             -Wmissing-prototypes -fno-strict-aliasing
LDLIBS    += $(shell pkg-config --libs $(PKG_LIBS) 2>/dev/null || echo -levent -levent_openssl -lcares -lssl -lcrypto) -lcrypt
LDLIBS    += -pthread
ifeq ($(FUZZ),1)
CFLAGS    += -fsanitize=fuzzer-no-link
endif
ifeq ($(SAN),1)
CFLAGS    += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=address,undefined
endif

SRCS      := $(filter-out src/main.c,$(wildcard src/*.c))
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/config_embedded.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%) $(BUILD)/tests/dns_check $(BUILD)/tests/outbound_inject
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

.PHONY: all run test unit integration deps test-deps bench fuzz check-tls check-valgrind install clean
all: $(BUILD)/tern

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -c -o $@ $<

$(BUILD)/config_embedded.c: etc/tern.conf scripts/embed.sh | $(BUILD)/obj
	sh scripts/embed.sh config_embedded etc/tern.conf > $@

$(BUILD)/obj/config_embedded.o: $(BUILD)/config_embedded.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libtern.a: $(OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/tern: $(BUILD)/obj/main.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtern.a | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtern.a $(LDLIBS) -lcmocka

# Integration helpers written in C (run by tests/integration/*.sh inside the test namespace).
$(BUILD)/tests/dns_check: tests/integration/dns_check.c $(BUILD)/libtern.a | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtern.a $(LDLIBS)

$(BUILD)/tests/outbound_inject: tests/integration/outbound/inject.c $(BUILD)/libtern.a | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtern.a $(LDLIBS)

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

deps:
	sh scripts/install-deps.sh build

test-deps:
	sh scripts/install-deps.sh test

run: deps
	$(MAKE) all
	sh scripts/run.sh

# The full suite: gcc build (what `make run` uses), clang build with sanitizers, unit tests
# and integration tests against the sanitizer build. Ends with one "N passed, N failed" line.
test: test-deps
	$(MAKE) all
	$(MAKE) BUILD=build/san CC=clang SAN=1 build/san/tern $(UNIT_BINS:$(BUILD)/%=build/san/%)
	$(MAKE) BUILD=build/fuzz CC=clang SAN=1 FUZZ=1 $(FUZZ_BINS)
	sh tests/run-all.sh build/san

unit: test-deps
	$(MAKE) BUILD=build/san CC=clang SAN=1 $(UNIT_BINS:$(BUILD)/%=build/san/%)
	sh tests/run-all.sh build/san unit

# Benchmarks against Postfix and OpenSMTPD in a private network namespace; prints the table.
# BENCH_QUICK=1: smaller counts, one run per figure. See docs/performance.md.
bench:
	sh scripts/install-deps.sh bench
	$(MAKE) all
	sh bench/run.sh $(BUILD)

# libFuzzer targets (clang, ASan+UBSan), each run FUZZ_SECONDS on its corpus in tests/fuzz/corpus/.
fuzz: test-deps
	$(MAKE) BUILD=build/fuzz CC=clang SAN=1 FUZZ=1 $(FUZZ_BINS)
	sh tests/fuzz/run.sh build/fuzz $(FUZZ_SECONDS)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libtern.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libtern.a $(LDLIBS)

# The whole suite under valgrind memcheck, on a gcc build without sanitizers (build/vg): unit
# tests, and every tern the integration tests start, workers included (TERN_WRAPPER). Any
# memcheck error or definite leak fails. Slow: see docs/testing.md.
check-valgrind:
	sh scripts/install-deps.sh valgrind
	$(MAKE) BUILD=build/vg CC=gcc build/vg/tern $(UNIT_BINS:$(BUILD)/%=build/vg/%)
	TERN_VALGRIND=1 sh tests/run-all.sh build/vg

# testssl.sh against a sanitizer build: no finding of severity HIGH or CRITICAL allowed.
# CHECK_TLS_KEYS="ec rsa" scans with each key type (docs/tls.md).
CHECK_TLS_KEYS ?= ec
check-tls:
	sh scripts/install-deps.sh check-tls
	$(MAKE) BUILD=build/san CC=clang SAN=1 build/san/tern
	for k in $(CHECK_TLS_KEYS); do bash tests/integration/check_tls.sh -k $$k build/san || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)/etc/tern
	install -m 755 $(BUILD)/tern $(DESTDIR)$(PREFIX)/sbin/tern
	ln -sf tern $(DESTDIR)$(PREFIX)/sbin/sendmail
	ln -sf tern $(DESTDIR)$(PREFIX)/sbin/mailq
	ln -sf tern $(DESTDIR)$(PREFIX)/sbin/newaliases
	[ -e $(DESTDIR)/etc/tern/tern.conf ] || install -m 644 etc/tern.conf $(DESTDIR)/etc/tern/tern.conf

clean:
	rm -rf build

-include $(wildcard $(BUILD)/obj/*.d)
