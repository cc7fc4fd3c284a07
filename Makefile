# mpq.h
#   make test       every test: compile checks, suites under gcc, clang,
#                   ASan+UBSan (gcc and clang), TSan, 32-bit and musl
#                   (tests/run.sh)
#   make fuzz       runs each libFuzzer target in tests/fuzz/ for 20 s
#                   (FUZZ_SECONDS=N for longer)
#   make examples   builds examples/*.c into tests/build/examples/
#   make bench      builds and runs tests/bench/*.c
#   make clean

CC ?= cc
CFLAGS ?= -O2 -g
STRICT = -std=c99 -Wall -Wextra -Wpedantic -Werror
B = tests/build

EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))
BENCHES := $(patsubst tests/bench/%.c,$(B)/bench/%,$(wildcard tests/bench/*.c))

.PHONY: all test fuzz examples bench clean

all: examples

test:
	sh tests/run.sh

FUZZ_SECONDS ?= 20
fuzz:
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

examples: $(EXAMPLES)

$(B)/examples/%: examples/%.c mpq.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(STRICT) -o $@ $< -pthread

bench: $(BENCHES)
	@for b in $(BENCHES); do $$b || exit 1; done

$(B)/bench/%: tests/bench/%.c tests/bench/bench.h mpq.h
	@mkdir -p $(@D)
	$(CC) -O2 -g $(STRICT) -o $@ $< -pthread -lrt

clean:
	rm -rf $(B)
