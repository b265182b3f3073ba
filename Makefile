# ublk-mem: a RAM block device served from userspace through ublk.
# Plain make; override CC, CFLAGS, LDFLAGS as usual (e.g. make CC=musl-gcc).

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wshadow -Wformat=2 -D_FILE_OFFSET_BITS=64
LDFLAGS ?= -static
LDLIBS  += -pthread

# Another architecture: make ARCH=arm64 builds ./ublk-mem for arm64 with
# $(CROSS)gcc, CROSS=aarch64-linux-gnu- unless given (Debian's
# gcc-aarch64-linux-gnu and libc6-dev-arm64-cross); CC=... overrides it.
# ARCH (x86_64 or arm64; default this machine's) also picks the test VM's
# architecture for vm-shell and demo. A build for another ARCH or CC than
# the last one rebuilds ublk-mem (.build-id keeps the last one).
HOST_ARCH := $(shell uname -m)
ARCH    ?= $(HOST_ARCH)
triplet  = $(if $(filter arm64 aarch64,$(1)),aarch64,$(if $(filter x86_64 amd64 x86,$(1)),x86_64,$(1)))-linux-gnu
ifneq ($(call triplet,$(ARCH)),$(call triplet,$(HOST_ARCH)))
CROSS   ?= $(call triplet,$(ARCH))-
endif
ifneq ($(CROSS),)
ifeq ($(origin CC),default)
CC      := $(CROSS)gcc
endif
endif

SRCS    := log.c uring.c ublk_ctrl.c ublk_io.c ublk_batch.c ublk_config.c ublk.c fault.c pinned.c \
	   memory.c mem_backend.c lz4.c zalloc.c zstore.c compress_backend.c zone.c store.c record.c holders.c control.c process.c service.c serve.c \
	   options.c owner.c admin.c recover.c main.c
HDRS    := log.h backend.h uring.h ublk_cmd.h ublk_io.h ublk.h ublk_ctrl.h ublk_config.h ublk_queue.h fault.h pinned.h \
	   memory.h mem_backend.h lz4.h zalloc.h zstore.h compress_backend.h zone.h store.h record.h holders.h control.h process.h service.h serve.h \
	   options.h owner.h verbs.h
UNIT    := test/unit
TESTS   := $(UNIT)/uring_test $(UNIT)/mem_test $(UNIT)/batch_test $(UNIT)/cli_test \
	   $(UNIT)/ublk_test $(UNIT)/lz4_test $(UNIT)/zstore_test $(UNIT)/zone_test \
	   $(UNIT)/lz4_interop.sh

# Sanitizer builds cannot be static.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer

.PHONY: all clean test test-unit test-host test-kernels vm-shell demo lint musl asan

all: ublk-mem

ublk-mem: $(SRCS) $(HDRS)
	$(CC) $(CFLAGS) -o $@ $(SRCS) $(LDFLAGS) $(LDLIBS)

# The same program with AddressSanitizer and UBSan, dynamically linked.
ublk-mem-asan: $(SRCS) $(HDRS)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $(SRCS) $(LDLIBS)

asan: ublk-mem-asan

# Host unit tests, with sanitizers.  Each links what it tests and what
# that depends on, no more: the store's test links no protocol.
PROTO   := log.c uring.c ublk_ctrl.c ublk_io.c ublk_batch.c ublk_config.c ublk.c fault.c

$(UNIT)/uring_test: $(UNIT)/uring_test.c $(UNIT)/check.h uring.c uring.h
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -o $@ $(UNIT)/uring_test.c uring.c $(LDLIBS)

$(UNIT)/mem_test: $(UNIT)/mem_test.c $(UNIT)/check.h mem_backend.c mem_backend.h memory.c \
		memory.h pinned.c pinned.h log.c backend.h
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -o $@ $(UNIT)/mem_test.c mem_backend.c memory.c pinned.c \
		log.c $(LDLIBS)

# The batched path's pure parts: element packing, buffer sizes, tags.
$(UNIT)/batch_test: $(UNIT)/batch_test.c $(UNIT)/check.h $(PROTO) $(HDRS)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -o $@ $(UNIT)/batch_test.c $(PROTO) $(LDLIBS)

# The kernel-facing rules: ublk_test.c includes ublk.c and ublk_io.c.
$(UNIT)/ublk_test: $(UNIT)/ublk_test.c $(UNIT)/check.h $(PROTO) $(HDRS)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -o $@ $(UNIT)/ublk_test.c log.c uring.c ublk_ctrl.c \
		ublk_batch.c ublk_config.c fault.c $(LDLIBS)

# The compressed store: its codec (and the reference tool decoding what it
# writes, lz4_interop.sh), its page store and allocator; the zone model.
$(UNIT)/lz4_test: $(UNIT)/lz4_test.c $(UNIT)/check.h lz4.c lz4.h
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -I$(UNIT) -o $@ $(UNIT)/lz4_test.c lz4.c $(LDLIBS)

$(UNIT)/zstore_test: $(UNIT)/zstore_test.c $(UNIT)/check.h zstore.c zstore.h zalloc.c zalloc.h \
		lz4.c lz4.h log.c
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -I$(UNIT) -o $@ $(UNIT)/zstore_test.c zstore.c zalloc.c \
		lz4.c log.c $(LDLIBS)

$(UNIT)/zone_test: $(UNIT)/zone_test.c $(UNIT)/check.h zone.c zone.h backend.h log.c
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -I$(UNIT) -o $@ $(UNIT)/zone_test.c zone.c log.c $(LDLIBS)

# The command line: cli_test.c includes the command line's files, renaming main().
CLI_INCLUDED := options.c owner.c service.c serve.c admin.c recover.c main.c
$(UNIT)/cli_test: $(UNIT)/cli_test.c $(UNIT)/check.h $(SRCS) $(HDRS)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -o $@ $(UNIT)/cli_test.c \
		$(filter-out $(CLI_INCLUDED),$(SRCS)) $(LDLIBS)

test-unit: $(TESTS)
	@for t in $(TESTS); do ./$$t; echo "$$t: exit $$?"; done

# Everything: host unit tests, then the VM suite against real ublk kernels:
# Debian 12's 6.12 and the newest Debian cloud kernel, or KVER=... alone
# (lts, newest, 7.3, 7.3.4; see test/vm/kernel.sh).
test: ublk-mem ublk-mem-asan $(TESTS)
	test/run-all.sh $(TESTS) test/checks/build_test.sh

# The core tests on every bootable kernel series, and a compatibility table.
test-kernels: ublk-mem
	test/kernels.sh

# The VM suite run directly on a host whose kernel has ublk.
test-host: ublk-mem
	UBLK_MEM=$(CURDIR)/ublk-mem test/suite/run.sh

vm-shell: ublk-mem
	test/vm/vm.sh shell

demo: ublk-mem
	test/vm/vm.sh demo

# Build with musl as well (checks the project needs nothing but libc).
musl:
	$(MAKE) clean-bin
	$(MAKE) CC=musl-gcc ublk-mem
	! readelf -d ublk-mem | grep -q NEEDED && echo "ublk-mem: static, built with musl-gcc"

lint:
	shellcheck -x bench.sh bench/*.sh test/*.sh test/checks/*.sh test/vm/*.sh test/vm/init test/suite/*.sh \
		test/unit/*.sh
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr $(SRCS) test/unit/*.c test/suite/*.c

clean-bin:
	rm -f ublk-mem

clean: clean-bin
	rm -f ublk-mem-asan $(TESTS)

# ---- installing ----
# make install [PREFIX=/usr/local] [DESTDIR=/staging/root]: the static
# binary, the man page, the systemd unit and the other init examples, with
# the paths inside them made to match PREFIX.
PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR  ?= $(PREFIX)/share/doc/ublk-mem
# systemd's udev reads /usr/local/lib/udev/rules.d too; eudev: /etc/udev/rules.d
UDEVDIR ?= $(PREFIX)/lib/udev/rules.d
INSTALL ?= install
# The installed binary is stripped (1.4 MB with debug info, 1 MB without;
# 190 KB built with musl-gcc); ./ublk-mem keeps its symbols.
STRIP   ?= $(CROSS)strip
# The files name /usr/local; installed elsewhere they name their PREFIX
# (in the man page a '-' may be written '\-').
FIX_PATHS = sed -E -e 's|/usr/local/sbin/|$(SBINDIR)/|g' \
		-e 's|/usr/local/lib/systemd/system|$(UNITDIR)|g' \
		-e 's|/usr/local/lib/udev/rules.d|$(UDEVDIR)|g' \
		-e 's|/usr/local/share/doc/ublk\\?-mem|$(DOCDIR)|g'

.PHONY: install uninstall test-docs lint-dist clean-helpers

install: ublk-mem
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UDEVDIR)
	$(INSTALL) -m 755 -s --strip-program=$(STRIP) ublk-mem $(DESTDIR)$(SBINDIR)/ublk-mem
	$(FIX_PATHS) ublk-mem.8 >$(DESTDIR)$(MANDIR)/man8/ublk-mem.8
	$(FIX_PATHS) dist/ublk-mem@.service >'$(DESTDIR)$(UNITDIR)/ublk-mem@.service'
	$(FIX_PATHS) dist/ublk-mem.openrc >$(DESTDIR)$(DOCDIR)/ublk-mem.openrc
	$(FIX_PATHS) dist/ublk-mem.init >$(DESTDIR)$(DOCDIR)/ublk-mem.init
	$(FIX_PATHS) dist/ublk-mem.rules >$(DESTDIR)$(UDEVDIR)/70-ublk-mem.rules
	chmod 644 $(DESTDIR)$(UDEVDIR)/70-ublk-mem.rules
	chmod 644 $(DESTDIR)$(MANDIR)/man8/ublk-mem.8 \
		'$(DESTDIR)$(UNITDIR)/ublk-mem@.service' \
		$(DESTDIR)$(DOCDIR)/ublk-mem.openrc $(DESTDIR)$(DOCDIR)/ublk-mem.init

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/ublk-mem $(DESTDIR)$(MANDIR)/man8/ublk-mem.8 \
		'$(DESTDIR)$(UNITDIR)/ublk-mem@.service' \
		$(DESTDIR)$(DOCDIR)/ublk-mem.openrc $(DESTDIR)$(DOCDIR)/ublk-mem.init \
		$(DESTDIR)$(UDEVDIR)/70-ublk-mem.rules
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# ---- checks of the man page, the install and the init examples ----
# Host checks that `make test` runs with the unit tests (test/run-all.sh
# runs every program it is given); `make test-docs` runs them alone.
HOST_CHECKS := test/checks/man_test.sh test/checks/install_test.sh
test: TESTS += $(HOST_CHECKS)

test-docs: ublk-mem
	@for t in $(HOST_CHECKS); do ./$$t; echo "$$t: exit $$?"; done

lint: lint-dist
lint-dist:
	shellcheck -s sh dist/ublk-mem.init dist/ublk-mem.openrc

# docs/performance.md and its charts from bench.sh results directories,
# one section per run: make docs-perf RESULTS="results/bench-A results/bench-B"
docs-perf:
	@test -n "$(RESULTS)" || { echo 'usage: make docs-perf RESULTS="DIR..."' >&2; exit 2; }
	./bench.sh $(addprefix --report ,$(RESULTS)) --doc docs/performance.md
.PHONY: docs-perf

# Helpers the VM suite runs (test/ is copied into the VM): static, libc only.
TEST_HELPERS := test/suite/notify_listen test/suite/uevent_run test/suite/swap_check

test/suite/notify_listen: test/suite/notify_listen.c
	$(CC) $(CFLAGS) -static -o $@ test/suite/notify_listen.c

test/suite/uevent_run: test/suite/uevent_run.c
	$(CC) $(CFLAGS) -static -o $@ test/suite/uevent_run.c

test/suite/swap_check: test/suite/swap_check.c
	$(CC) $(CFLAGS) -static -o $@ test/suite/swap_check.c

test test-host: $(TEST_HELPERS)

# What a 4 KiB copy costs the VM's CPU with each kernel copy instruction:
# bench.sh runs it in its VM and prints the result next to its figures.
bench/copy_cost: bench/copy_cost.c .build-id
	$(CC) $(CFLAGS) -static -o $@ bench/copy_cost.c

clean: clean-helpers
clean-helpers:
	rm -f $(TEST_HELPERS) bench/copy_cost

# ---- arm64 ----
# .build-id: what the last build of ublk-mem used; rewritten, and so
# rebuilding ublk-mem, only when that changes.
BUILD_ID := $(CC) $(call triplet,$(ARCH))
.build-id: FORCE
	@[ "$$(cat $@ 2>/dev/null)" = '$(BUILD_ID)' ] || echo '$(BUILD_ID)' >$@
ublk-mem $(TEST_HELPERS): .build-id
FORCE:

# The arm64 builds the arm64 test VM runs, beside this machine's own.
ARM64_CC ?= $(if $(filter aarch64 arm64,$(HOST_ARCH)),$(CC),aarch64-linux-gnu-gcc)

# On a Debian machine without it, the cross compiler is installed first.
ARM64_PKGS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross
define need_arm64_cc
	@command -v $(ARM64_CC) >/dev/null 2>&1 || { \
		echo "installing $(ARM64_PKGS)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq $(ARM64_PKGS) >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq $(ARM64_PKGS) >/dev/null; }; }
endef

build/arm64/ublk-mem: $(SRCS) $(HDRS)
	$(need_arm64_cc)
	@mkdir -p $(@D)
	$(ARM64_CC) $(CFLAGS) -o $@ $(SRCS) $(LDFLAGS) $(LDLIBS)

# The suite's helpers (TEST_HELPERS), each from one .c file.
build/arm64/test/%: test/%.c
	$(need_arm64_cc)
	@mkdir -p $(@D)
	$(ARM64_CC) $(CFLAGS) -static -o $@ $<

# The integration suite on Debian's newest arm64 kernels, with 4 KiB and
# with 16 KiB pages, in qemu-system-aarch64 (test/arm64.sh).
test-arm64: build/arm64/ublk-mem $(addprefix build/arm64/,$(TEST_HELPERS))
	test/arm64.sh

.PHONY: test-arm64 clean-arm64 FORCE
clean: clean-arm64
clean-arm64:
	rm -rf build .build-id
