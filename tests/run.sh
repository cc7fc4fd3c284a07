#!/bin/sh
# tests/run.sh - everything `make test` checks, ending with "N passed, N failed".
#
# 1. compile checks: mpq.h with its implementation as C99 and C11 (gcc and
#    clang) and as C++ (g++ and clang++), -Wall -Wextra -Wpedantic -Werror;
#    declarations alone; two MPQ_STATIC copies in one binary; the clear
#    #error for a wrong include order.
#    Every example is built and run.
# 2. the test programs, built (as many compilers at once as there are
#    CPUs) and run (one at a time) in several configurations: gcc -O2,
#    clang -O2, gcc and clang with AddressSanitizer +
#    UndefinedBehaviorSanitizer, clang with ThreadSanitizer (threaded
#    tests), test_sync again with a 3 s wake-up slice (so that a lost
#    wake-up shows), test_wait again with a 60 s slice, with and without
#    futex_waitv, gcc -m32 and musl-gcc when they are installed (.ci/run
#    installs them).
#
# Usage: sh tests/run.sh [filter]   (the filter picks tests by name)
set -u
cd "$(dirname "$0")/.." || exit 2
B=tests/build
mkdir -p "$B"
FILTER=${1:-}
WARN="-Wall -Wextra -Wpedantic -Werror"
TESTS="test_platform test_mutex test_sync test_sync_cpython test_dict test_queue test_conn test_wait test_net test_python test_process test_process_cpython test_pool test_pool_imap test_pool_cpython"
HELPERS="mutex_peer queue_peer sync_peer dict_peer process_peer"
passed=0
failed=0
skipped=""

have() { command -v "$1" >/dev/null 2>&1; }

# check NAME COMMAND...: one compile check, counted.
check() {
    name=$1; shift
    if "$@" >"$B/check.log" 2>&1; then
        printf '  ok    %s\n' "$name"; passed=$((passed + 1))
    else
        printf '  FAIL  %s\n' "$name"; sed 's/^/    /' "$B/check.log" | head -20; failed=$((failed + 1))
    fi
}

# must_fail NAME PATTERN COMMAND...: a compile that has to fail with PATTERN.
must_fail() {
    name=$1; pattern=$2; shift 2
    if "$@" >"$B/check.log" 2>&1; then
        printf '  FAIL  %s: compiled, expected an error\n' "$name"; failed=$((failed + 1))
    elif grep -q "$pattern" "$B/check.log"; then
        printf '  ok    %s\n' "$name"; passed=$((passed + 1))
    else
        printf '  FAIL  %s: no "%s" in the errors\n' "$name" "$pattern"; head -5 "$B/check.log"; failed=$((failed + 1))
    fi
}

echo "== compile checks"
for cc in gcc clang; do
    if ! have $cc; then skipped="$skipped $cc"; continue; fi
    for std in c99 c11; do
        check "$cc -std=$std" $cc -std=$std $WARN -c tests/compile/impl.c -o "$B/impl.o"
    done
    check "$cc -std=c99 declarations only" $cc -std=c99 $WARN -c tests/compile/decl_only.c -o "$B/decl.o"
    check "$cc two MPQ_STATIC copies in one binary" $cc -std=c99 $WARN -o "$B/static_twice" \
        tests/compile/static_a.c tests/compile/static_b.c tests/compile/static_main.c -pthread
    must_fail "$cc include order gives mpq.h's #error" "mpq.h: the implementation needs" \
        $cc -std=c99 -c tests/compile/order.c -o "$B/order.o"
done
# A system header first in default (gnu) mode: no _GNU_SOURCE, yet it builds.
check "gcc -std=gnu11 with a system header first" gcc -std=gnu11 $WARN -c tests/compile/order.c -o "$B/order.o"
if have musl-gcc; then
    check "musl-gcc -std=c99 with a system header first" musl-gcc -std=c99 $WARN -c tests/compile/order.c -o "$B/order.o"
fi
# 32-bit variants: large files and 64-bit time (gcc), and clang's atomics.
if echo 'int main(void){return 0;}' | gcc -m32 -x c - -o "$B/m32probe" >/dev/null 2>&1; then
    check "gcc -m32 -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64" gcc -m32 -std=c99 $WARN \
        -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 -c tests/compile/impl.c -o "$B/impl32.o"
    if have clang; then
        check "clang -m32 -march=i686" clang -m32 -march=i686 -std=c99 $WARN -c tests/compile/impl.c -o "$B/impl32c.o"
    fi
fi
for cxx in g++ clang++; do
    if ! have $cxx; then skipped="$skipped $cxx"; continue; fi
    for std in c++98 c++11 c++20; do
        check "$cxx -std=$std" $cxx -std=$std $WARN -x c++ -c tests/compile/impl.c -o "$B/impl_cpp.o"
    done
done

echo "== examples (built as the README says, run with a time limit)"
for src in examples/*.c; do
    ex=$(basename "$src" .c)
    mkdir -p "$B/examples"
    check "examples/$ex.c builds with cc -O2 ... -pthread" cc -O2 -std=c99 $WARN -o "$B/examples/$ex" "$src" -pthread
    check "examples/$ex runs and exits 0" timeout 60 "$B/examples/$ex"
done
check "examples/pool prints ten callbacks, 100..109" sh -c \
    "timeout 60 $B/examples/pool | grep '^-->exec done: 10[0-9] ' | sort -u | wc -l | grep -qx 10"
check "examples/pool_map prints the sum of squares" sh -c \
    "timeout 60 $B/examples/pool_map | grep -qx 333332833333500000"
check "examples/pool_imap finds 837799 (524 steps) below a million" sh -c \
    "timeout 60 $B/examples/pool_imap 2>/dev/null | grep -qx 'longest: 524 steps, from 837799'"
if have python3; then
    check "examples/python_peer serves a Python client: fib(90)" sh -c \
        "timeout 60 $B/examples/python_peer | grep -qx '90 -> fib(90) = 2880067194370816120'"
fi

# build_all DIR CC FLAGS NAME...: compiles tests/NAME.c (or
# tests/helpers/NAME.c) into DIR/NAME, $JOBS compilers at a time (the
# builds are most of the run's time); a failed build leaves DIR/NAME.failed
# beside its DIR/NAME.build.log.
JOBS=$(nproc 2>/dev/null || echo 2)
build_all() {
    bdir=$1; bcc=$2; bflags=$3; shift 3
    for n in "$@"; do
        src="tests/$n.c"; [ -f "$src" ] || src="tests/helpers/$n.c"
        rm -f "$bdir/$n.failed"
        printf '%s %s\n' "$n" "$src"
    done | xargs -P "$JOBS" -n 2 sh -c \
        "$bcc -std=c99 $WARN $bflags -o \"$bdir/\$0\" \"\$1\" -pthread 2>\"$bdir/\$0.build.log\" || touch \"$bdir/\$0.failed\""
}

# suite NAME CC FLAGS [--threaded]: builds the tests and helpers with CC and
# FLAGS into $B/NAME and runs them, one at a time, adding their counts to
# the totals.
suite() {
    name=$1; cc=$2; flags=$3; only=${4:-}
    dir="$B/$name"
    mkdir -p "$dir"
    echo "== $name ($cc $flags)"
    build_all "$dir" "$cc" "$flags" $HELPERS $TESTS
    for h in $HELPERS; do
        if [ -f "$dir/$h.failed" ]; then
            printf '  FAIL  build %s\n' "$h"; head -20 "$dir/$h.build.log"; failed=$((failed + 1)); return
        fi
    done
    for t in $TESTS; do
        if [ -f "$dir/$t.failed" ]; then
            printf '  FAIL  build %s\n' "$t"; head -20 "$dir/$t.build.log"; failed=$((failed + 1)); continue
        fi
        # The exchanges with Python take half a minute a suite, and test
        # the same C as the other builds: they run under gcc, gcc's
        # sanitizers and musl, not again under clang.
        if [ "$t" = test_python ] && [ "${name#clang}" != "$name" -o "${name#asan-ubsan-clang}" != "$name" ]; then
            printf '  (test_python: run in the gcc, asan-ubsan and musl suites)\n'; continue
        fi
        # One suite (plain gcc) also moves a message past 4 GiB.
        big=""; [ "$name" = gcc ] && big=1
        MPQT_BIG=$big timeout 900 "$dir/$t" $only $FILTER >"$dir/$t.log" 2>&1  # backstop for the runner itself
        cat "$dir/$t.log"
        counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$dir/$t.log" | tail -n 1)
        if [ -z "$counts" ]; then
            printf '  FAIL  %s: the runner itself did not finish\n' "$t"; failed=$((failed + 1)); continue
        fi
        p=${counts%% passed*}; f=${counts#*, }; f=${f%% failed*}
        passed=$((passed + p)); failed=$((failed + f))
    done
}

if have gcc; then
    suite gcc gcc "-O2 -g"
    # Waiters of the sync family also wake every MPQ_SYNC_SLICE_MS, which
    # would hide a lost wake-up: with a 3 s slice, one makes a test slow
    # enough to time out.
    all_tests=$TESTS
    TESTS="test_sync test_sync_cpython"
    suite long-slice gcc "-O2 -g -DMPQ_SYNC_SLICE_MS=3000"
    # mpq_wait's sleeps on queues also end every MPQ__WAIT_SLICE_MS, which
    # would hide a lost wake-up: with a minute, one hangs a test. Then the
    # same as on Linux before 5.16: no futex_waitv, a watcher per queue.
    TESTS="test_wait"
    suite wait-long-slice gcc "-O2 -g -DMPQ__WAIT_SLICE_MS=60000"
    suite wait-no-futex-waitv gcc "-O2 -g -DMPQ__WAIT_SLICE_MS=60000 -DMPQ__NO_FUTEX_WAITV"
    TESTS=$all_tests
    suite asan-ubsan gcc "-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    if ! echo 'int main(void){return 0;}' | gcc -m32 -x c - -o "$B/m32probe" >/dev/null 2>&1; then
        skipped="$skipped gcc-m32"
    elif "$B/m32probe" 2>/dev/null; then
        suite gcc-m32 gcc "-m32 -O2 -g"
    else
        # This kernel cannot run 32-bit x86 programs: build them, at least.
        echo "== gcc-m32 (build only: this kernel does not run 32-bit programs)"
        mkdir -p "$B/m32"
        build_all "$B/m32" gcc "-m32 -O2" $TESTS $HELPERS
        for n in $TESTS $HELPERS; do
            if [ -f "$B/m32/$n.failed" ]; then
                printf '  FAIL  gcc -m32 build %s\n' "$n"; sed 's/^/    /' "$B/m32/$n.build.log" | head -20
                failed=$((failed + 1))
            else
                printf '  ok    gcc -m32 build %s\n' "$n"; passed=$((passed + 1))
            fi
        done
    fi
fi
if have clang; then
    suite clang clang "-O2 -g"
    # clang's UBSan checks more than gcc's (a zero offset applied to NULL).
    suite asan-ubsan-clang clang "-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    suite tsan clang "-O1 -g -fsanitize=thread" --threaded
else
    skipped="$skipped clang clang-asan-ubsan clang-tsan"
fi
if have musl-gcc; then
    suite musl musl-gcc "-O2 -g"
    # Negative control: musl's robust mutexes strand a waiter whose wake-up
    # went to a process that then died; without mpq's time slices the
    # test for exactly that must fail, or it proves nothing.
    echo "== negative control (musl, lock slices disabled)"
    if musl-gcc -std=c99 -O2 -DMPQ__LOCK_SLICE_MS=1000000 -o "$B/musl/noslice" tests/test_mutex.c 2>"$B/check.log" &&
       ! timeout 120 "$B/musl/noslice" woken_waiter >"$B/check.log" 2>&1; then
        printf '  ok    without slices, test_mutex_woken_waiter_killed_with_owner fails\n'; passed=$((passed + 1))
    else
        printf '  FAIL  without slices, test_mutex_woken_waiter_killed_with_owner still passes\n'; failed=$((failed + 1))
    fi
else
    skipped="$skipped musl"
fi

if [ -n "$skipped" ]; then
    echo "skipped (not installed):$skipped"
    # In CI every configuration must run: .ci/run installs them all.
    if [ -n "${CI:-}" ]; then
        echo "  FAIL  CI lacks:$skipped"
        failed=$((failed + 1))
    fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
