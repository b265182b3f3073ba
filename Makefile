# ublk-mem: a RAM block device served from userspace through ublk.
# Plain make; override CC, CFLAGS, LDFLAGS as usual (e.g. make CC=musl-gcc).

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wshadow -Wformat=2 -D_FILE_OFFSET_BITS=64
LDFLAGS ?= -static
LDLIBS  += -pthread

SRCS    := uring.c ublk.c mem_backend.c main.c
HDRS    := uring.h ublk.h mem_backend.h
TESTS   := test/uring_test test/mem_test test/cli_test

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

# Host unit tests: the ring wrapper and the RAM store, with sanitizers.
test/uring_test: test/uring_test.c test/check.h uring.c uring.h
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -o $@ test/uring_test.c uring.c $(LDLIBS)

test/mem_test: test/mem_test.c test/check.h mem_backend.c $(HDRS) ublk.c uring.c
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -o $@ \
		test/mem_test.c mem_backend.c ublk.c uring.c $(LDLIBS)

# The command line: cli_test.c includes main.c, renaming its main().
test/cli_test: test/cli_test.c test/check.h $(SRCS) $(HDRS)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -I. -o $@ \
		test/cli_test.c mem_backend.c ublk.c uring.c $(LDLIBS)

test-unit: $(TESTS)
	@for t in $(TESTS); do ./$$t; echo "$$t: exit $$?"; done

# Everything: host unit tests, then the VM suite against real ublk kernels:
# Debian 12's 6.12 and the newest Debian cloud kernel, or KVER=... alone
# (lts, newest, 7.3, 7.3.4; see test/vm/kernel.sh).
test: ublk-mem ublk-mem-asan $(TESTS)
	test/run-all.sh $(TESTS) test/build_test.sh

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
	shellcheck -x bench.sh test/*.sh test/vm/*.sh test/vm/init test/suite/*.sh
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr $(SRCS) test/*.c

clean-bin:
	rm -f ublk-mem

clean: clean-bin
	rm -f ublk-mem-asan $(TESTS)
