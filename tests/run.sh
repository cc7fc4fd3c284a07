#!/bin/sh
# tests/run.sh - everything `make test` checks, ending with
# "N passed, N failed, N skipped" (and the names of the failed tests).
#
# 1. compile checks: mpq.h with its implementation as C99 and C11 (gcc and
#    clang) and as C++ (g++ and clang++), -Wall -Wextra -Wpedantic -Werror;
#    declarations alone; two MPQ_STATIC copies in one binary; the whole
#    implementation inlined (MPQ_STATIC) at -O1, -O2, -Os and -O3, and
#    gcc -flto (where gcc 12 used to warn); the clear #error for a wrong
#    include order; -m32 and -mx32 where the toolchain has them.
#    Every example is built and run.
# 2. the test programs, built and run (as many at once as there are CPUs;
#    MPQT_PAR=1 runs them one at a time) in several configurations: gcc -O2,
#    clang -O2, gcc and clang with AddressSanitizer +
#    UndefinedBehaviorSanitizer, clang with ThreadSanitizer (threaded
#    tests), test_sync again with a 3 s wake-up slice (so that a lost
#    wake-up shows), test_wait again with a 60 s slice, with and without
#    futex_waitv, gcc -m32 and musl-gcc.
# 3. the other architectures under qemu-user (static builds, clang
#    --target): AArch64, ARMv7, s390x (big-endian), i686 where the kernel
#    does not run it natively, and with MPQT_QEMU_CONTROL=1 x86-64
#    itself as the control (what fails only on a foreign architecture is
#    a bug). qemu has no robust-futex list: those builds define
#    MPQ_ALLOW_NONROBUST; the tests that need a try to see a dead owner
#    report skip (MPQT_NEED_ROBUST, which asks the kernel, so it never
#    skips on real hardware), those where a blocked locker is enough run
#    on mpq's own check of the holder (MPQT_NEED_DEAD_OWNER). Trimmed to
#    keep CI short: the foreign suites run in parallel, without
#    test_pool_cpython, test_process_cpython and test_sync_cpython (the
#    CPython ports; the core suites cover the same code paths), without
#    test_process (fork, join and signals: no data layout in it), and
#    without MPQT_BIG.
#
# What is not installed is skipped with a line that says what to install
# (the README's apt-get line installs it all); in CI (CI set) a skip fails.
# Named objects the tests leave in /dev/shm (mpqt-*) are removed at the
# start and the end, those of a run still going on excepted.
#
# Usage: sh tests/run.sh [filter]   (the filter picks tests by name)
set -u
cd "$(dirname "$0")/.." || exit 2
B=tests/build
mkdir -p "$B"
FILTER=${1:-}
WARN="-Wall -Wextra -Wpedantic -Werror"
TESTS="test_platform test_port test_mutex test_sync test_sync_cpython test_dict test_queue test_conn test_wait test_net test_python test_process test_process_cpython test_pool test_pool_imap test_pool_cpython"
HELPERS="mutex_peer queue_peer sync_peer dict_peer process_peer"
passed=0
failed=0
nskipped=0
skipped=""
failures=""

have() { command -v "$1" >/dev/null 2>&1; }

# missing WHAT PACKAGE: WHAT is skipped for want of a Debian PACKAGE.
missing() { skipped="$skipped
  $1 (apt-get install $2)"; }

# clean_shm: removes /dev/shm/mpqt-* left by runs that have ended: a name
# whose numbers include no live pid (those of another run going on now
# stay).
clean_shm() {
    for f in /dev/shm/mpqt-*; do
        [ -e "$f" ] || continue
        live=""
        for n in $(basename "$f" | tr -c '0-9' ' '); do
            [ "$n" -gt 1 ] 2>/dev/null && kill -0 "$n" 2>/dev/null && live=1 && break
        done
        [ -n "$live" ] || rm -f "$f"
    done
}
clean_shm
rm -f "$B"/*/summary
QEMU_I386=""

# probe CC FLAGS...: compiles and links a program that uses the kernel
# headers mpq.h needs (a half-installed 32-bit toolchain links a trivial
# program but lacks <asm/errno.h>), into $B/probe.
probe() {
    pcc=$1; shift
    printf '#include <errno.h>\n#include <asm/errno.h>\n#include <linux/futex.h>\n#include <pthread.h>\nint main(void){return EAGAIN == 0;}\n' |
        $pcc "$@" -x c - -o "$B/probe" -pthread >/dev/null 2>&1
}

# check NAME COMMAND...: one compile check, counted.
check() {
    name=$1; shift
    if "$@" >"$B/check$CK.log" 2>&1; then
        printf '  ok    %s\n' "$name"; passed=$((passed + 1))
    else
        printf '  FAIL  %s\n' "$name"; sed 's/^/    /' "$B/check$CK.log" | head -20; failed=$((failed + 1))
        failures="$failures
  $name"
    fi
}

# must_fail NAME PATTERN COMMAND...: a compile that has to fail with PATTERN.
must_fail() {
    name=$1; pattern=$2; shift 2
    if "$@" >"$B/check$CK.log" 2>&1; then
        printf '  FAIL  %s: compiled, expected an error\n' "$name"; failed=$((failed + 1))
    elif grep -q "$pattern" "$B/check$CK.log"; then
        printf '  ok    %s\n' "$name"; passed=$((passed + 1))
    else
        printf '  FAIL  %s: no "%s" in the errors\n' "$name" "$pattern"; head -5 "$B/check$CK.log"; failed=$((failed + 1))
    fi
}

# MPQT_QEMU=only runs the emulated architectures alone; MPQT_QEMU=0 leaves
# them out.
if [ "${MPQT_QEMU:-1}" != only ]; then
echo "== compile checks"
# The checks of gcc and of clang run side by side, each with its own files
# ($CK), and print in turn.
CK=""
for cc in gcc clang; do
    if ! have $cc; then missing $cc $cc; continue; fi
    ( CK="-$cc"; passed=0; failed=0; failures=""
    for std in c99 c11; do
        check "$cc -std=$std" $cc -std=$std $WARN -c tests/compile/impl.c -o "$B/impl$CK.o"
    done
    check "$cc -std=c99 declarations only" $cc -std=c99 $WARN -c tests/compile/decl_only.c -o "$B/decl$CK.o"
    check "$cc two MPQ_STATIC copies in one binary" $cc -std=c99 $WARN -o "$B/static_twice$CK" \
        tests/compile/static_a.c tests/compile/static_b.c tests/compile/static_main.c -pthread
    must_fail "$cc include order gives mpq.h's #error" "mpq.h: the implementation needs" \
        $cc -std=c99 -c tests/compile/order.c -o "$B/order$CK.o"
    # Inlined whole (a user's MPQ_STATIC or LTO build), each optimiser sees
    # other paths: gcc 12 warned at -O1 and -O3.
    for opt in -O1 -O2 -Os -O3; do
        check "$cc $opt MPQ_STATIC, inlined" $cc $opt -DMPQ_STATIC -std=c99 $WARN -o "$B/impl_static$CK" \
            tests/compile/impl.c -pthread
    done
    echo "$passed $failed" >"$B/checks$CK.counts"; printf '%s' "$failures" >"$B/checks$CK.failures"
    ) >"$B/checks-$cc.out" 2>&1 &
done
wait
for cc in gcc clang; do
    [ -f "$B/checks-$cc.out" ] || continue
    cat "$B/checks-$cc.out"
    if [ -f "$B/checks-$cc.counts" ]; then
        set -- $(cat "$B/checks-$cc.counts")
        passed=$((passed + $1)); failed=$((failed + $2)); failures="$failures$(cat "$B/checks-$cc.failures")"
    else
        failed=$((failed + 1)); failures="$failures
  $cc compile checks did not finish"
    fi
    rm -f "$B/checks-$cc.out" "$B/checks-$cc.counts" "$B/checks-$cc.failures"
done
if have gcc; then
    check "gcc -O2 -flto" gcc -O2 -flto=auto -std=c99 $WARN -o "$B/impl_lto" tests/compile/impl.c -pthread
fi
# The stricter warnings embedded builds use. (Not with musl: its CMSG_NXTHDR
# macro itself trips -Wsign-conversion.)
EXTRA="-Wshadow -Wconversion -Wcast-align -Wundef -Wstrict-prototypes -Wmissing-prototypes"
for cc in gcc clang; do
    have $cc && check "$cc $EXTRA" $cc -std=c99 $WARN $EXTRA -c tests/compile/impl.c -o "$B/impl_extra.o"
done
# A system header first in default (gnu) mode: no _GNU_SOURCE, yet it builds.
check "gcc -std=gnu11 with a system header first" gcc -std=gnu11 $WARN -c tests/compile/order.c -o "$B/order.o"
if have musl-gcc; then
    check "musl-gcc -std=c99 with a system header first" musl-gcc -std=c99 $WARN -c tests/compile/order.c -o "$B/order.o"
fi
# 32-bit variants: large files and 64-bit time (gcc), and clang's atomics;
# x32 (its futex timespec is 64-bit although its long is not).
have_m32=""
if have gcc && probe gcc -m32; then
    have_m32=1
    check "gcc -m32 -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64, and the stricter warnings" gcc -m32 -std=c99 $WARN $EXTRA \
        -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 -c tests/compile/impl.c -o "$B/impl32.o"
    if have clang; then
        check "clang -m32 -march=i686" clang -m32 -march=i686 -std=c99 $WARN -c tests/compile/impl.c -o "$B/impl32c.o"
    fi
elif have gcc; then
    missing "32-bit x86 builds" gcc-multilib
fi
if have gcc && probe gcc -mx32; then
    check "gcc -mx32" gcc -mx32 -std=c99 $WARN -c tests/compile/impl.c -o "$B/implx32.o"
fi
for cxx in g++ clang++; do
    if ! have $cxx; then missing $cxx "$(echo $cxx | sed 's/clang++/clang/')"; continue; fi
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
# FLAGS into $B/NAME and runs them, $PAR programs at a time (under $EMU,
# an emulator, when set), adding their counts to the totals and the failed
# tests' names to $failures. $B/NAME/summary keeps the suite's counts.
EMU=""
PAR=${MPQT_PAR:-$JOBS}
suite() {
    name=$1; cc=$2; flags=$3; only=${4:-}
    dir="$B/$name"
    sp=0; sf=0; ss=0
    t0=$(date +%s)
    mkdir -p "$dir"
    echo "== $name ($cc $flags${EMU:+, under $EMU})"
    case $name in gcc|asan-ubsan) build="$TESTS" ;; *) build=$(echo "$TESTS" | sed 's/test_python//') ;; esac
    build_all "$dir" "$cc" "$flags" $HELPERS $build
    for h in $HELPERS; do
        if [ -f "$dir/$h.failed" ]; then
            printf '  FAIL  build %s\n' "$h"; head -20 "$dir/$h.build.log"; failed=$((failed + 1))
            failures="$failures
  $name: build $h"
            echo "$name 0 1 0" >"$dir/summary"; return
        fi
    done
    # The test programs run $PAR at a time, each into its log; the logs
    # are then read in order. (The tests hold no resource in common - named
    # objects and socket paths carry their pid - and must stand a busy
    # machine anyway.)
    torun=""
    for t in $TESTS; do
        case " $build " in *" $t "*) ;; *) continue ;; esac
        [ -f "$dir/$t.failed" ] && continue
        # The exchanges with Python take half a minute a suite, and test
        # the same C as the other builds: they run under gcc and gcc's
        # sanitizers only (CI's time).
        torun="$torun $t"
    done
    # One suite (plain gcc) also moves a message past 4 GiB. qemu reports
    # each deliberate crash of a task ("uncaught target signal"): noise,
    # dropped. timeout: a backstop for the runner itself.
    big=""; [ "$name" = gcc ] && big=1
    printf '%s\n' $torun | MPQT_BIG=$big MPQT_EMULATOR=$EMU RUN_DIR=$dir RUN_ARGS="$only $FILTER" \
        xargs -P "$PAR" -n 1 sh -c 'timeout 900 $MPQT_EMULATOR "$RUN_DIR/$0" $RUN_ARGS 2>&1 |
            grep -v "^qemu: uncaught target signal" >"$RUN_DIR/$0.log"'
    for t in $TESTS; do
        case " $build " in
            *" $t "*) ;;
            *) printf '  (%s: run in the gcc and asan-ubsan suites)\n' "$t"; continue ;;
        esac
        if [ -f "$dir/$t.failed" ]; then
            printf '  FAIL  build %s\n' "$t"; head -20 "$dir/$t.build.log"; sf=$((sf + 1))
            failures="$failures
  $name: build $t"; continue
        fi
        cat "$dir/$t.log"
        counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$dir/$t.log" | tail -n 1)
        if [ -z "$counts" ]; then
            printf '  FAIL  %s: the runner itself did not finish\n' "$t"; sf=$((sf + 1))
            failures="$failures
  $name: $t (the runner itself did not finish)"; continue
        fi
        set -- $counts
        sp=$((sp + $1)); sf=$((sf + $3)); ss=$((ss + $5))
        for n in $(sed -n 's/^  FAIL  \([A-Za-z0-9_]*\).*/\1/p' "$dir/$t.log"); do
            failures="$failures
  $name: $n"
        done
    done
    echo "   ($name: $(($(date +%s) - t0)) s)"
    passed=$((passed + sp)); failed=$((failed + sf)); nskipped=$((nskipped + ss))
    echo "$name $sp $sf $ss" >"$dir/summary"
}

# emulated CMD...: whether CMD (a probe program) runs under emulation: a
# binfmt handler may hand 32-bit programs to qemu-user without a word. The
# probe exits 0 natively, 1 where the kernel keeps no robust-futex list.
no_robust_probe='#define _GNU_SOURCE 1
#include <errno.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void){return !(syscall(SYS_set_robust_list, NULL, (size_t)0) < 0 && errno == EINVAL);}'

if [ "${MPQT_QEMU:-1}" != only ]; then
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
    m32rc=126
    if [ -n "$have_m32" ] && echo "$no_robust_probe" | gcc -m32 -x c - -o "$B/m32probe" 2>/dev/null; then
        "$B/m32probe" 2>/dev/null; m32rc=$?
    fi
    if [ -z "$have_m32" ]; then
        :   # said above
    elif [ $m32rc -eq 0 ]; then
        suite gcc-m32 gcc "-m32 -O2 -g"
    elif [ $m32rc -eq 1 ]; then
        # It ran, but emulated (qemu-user through binfmt): the qemu case.
        echo "   (32-bit x86 programs run under emulation here: built as for qemu)"
        suite gcc-m32-emulated gcc "-m32 -O2 -g -DMPQ_ALLOW_NONROBUST"
    elif have qemu-i386-static; then
        echo "   (this kernel does not run 32-bit x86 programs: under qemu-i386)"
        QEMU_I386=1
    else
        # This kernel cannot run 32-bit x86 programs: build them, at least.
        echo "== gcc-m32 (build only: this kernel does not run 32-bit programs)"
        missing "running the 32-bit x86 suite" qemu-user-static
        mkdir -p "$B/m32"
        build_all "$B/m32" gcc "-m32 -O2" $TESTS $HELPERS
        for n in $TESTS $HELPERS; do
            if [ -f "$B/m32/$n.failed" ]; then
                printf '  FAIL  gcc -m32 build %s\n' "$n"; sed 's/^/    /' "$B/m32/$n.build.log" | head -20
                failed=$((failed + 1)); failures="$failures
  gcc -m32 build $n"
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
    missing "the clang, clang ASan+UBSan and TSan suites" "clang libclang-rt-dev"
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
        failures="$failures
  musl negative control"
    fi
else
    missing "the musl suite" musl-tools
fi

fi

# --- other architectures, under qemu-user ------------------------------------
# qemu_suites ARCH:TARGET:QEMU...: each a suite of static clang --target
# builds run under that qemu, all at once (one CPU each would idle while
# qemu's children wait); their outputs follow one another when all ended.
QEMU_TESTS="test_platform test_port test_mutex test_sync test_dict test_queue test_conn test_wait test_net test_pool test_pool_imap"
qemu_suites() {
    pids=""; names=""
    for spec in "$@"; do
        arch=${spec%%:*}; rest=${spec#*:}; target=${rest%%:*}; emu=${rest#*:}
        if [ "$target" = m32 ]; then qcc="gcc -m32"; else qcc="clang --target=$target"; fi
        if ! have "$emu"; then missing "the $arch suite" qemu-user-static; continue; fi
        if ! probe $qcc -static; then
            missing "the $arch suite" "$(cross_pkgs "$target")"; continue
        fi
        # JOBS=1, PAR=1: the suites build and run side by side.
        ( JOBS=1; PAR=1; EMU=$(command -v "$emu"); TESTS=$QEMU_TESTS; failures=""
          suite "qemu-$arch" "$qcc" "-O2 -g -static -DMPQ_ALLOW_NONROBUST"
          printf '%s\n' "$failures" >"$B/qemu-$arch/failures" ) >"$B/qemu-$arch.out" 2>&1 &
        pids="$pids $!"; names="$names $arch"
    done
    for p in $pids; do wait "$p"; done
    for arch in $names; do
        cat "$B/qemu-$arch.out"
        if [ -f "$B/qemu-$arch/summary" ]; then
            set -- $(cat "$B/qemu-$arch/summary")
            passed=$((passed + $2)); failed=$((failed + $3)); nskipped=$((nskipped + $4))
            failures="$failures$(cat "$B/qemu-$arch/failures")"
        else
            failed=$((failed + 1)); failures="$failures
  qemu-$arch: did not finish"
        fi
    done
}
# cross_pkgs TARGET: the Debian packages a static clang build for TARGET needs.
cross_pkgs() {
    case $1 in
        m32) echo gcc-multilib; return ;;
        aarch64*) d=arm64 ;; arm*) d=armhf ;; s390x*) d=s390x ;; *) d=amd64 ;;
    esac
    echo "binutils-$1 libc6-dev-$d-cross libgcc-12-dev-$d-cross"
}

if have clang && [ "${MPQT_QEMU:-1}" != 0 ]; then
    # x86-64 under qemu, the control (what fails there too is qemu's or
    # the test's, not the architecture's), with MPQT_QEMU_CONTROL=1: it
    # costs CI a fifth of this stage and tells apart only what fails.
    echo "== other architectures under qemu-user"
    specs="aarch64:aarch64-linux-gnu:qemu-aarch64-static"
    [ "${MPQT_QEMU_CONTROL:-0}" = 1 ] && specs="x86_64:x86_64-linux-gnu:qemu-x86_64-static $specs"
    specs="$specs armv7:arm-linux-gnueabihf:qemu-arm-static s390x:s390x-linux-gnu:qemu-s390x-static"
    [ -n "$QEMU_I386" ] && specs="$specs i686:m32:qemu-i386-static"
    qemu_suites $specs
    # Without the full control, the test programs that failed on a foreign
    # architecture run again as x86-64 under qemu: what fails there too is
    # qemu's or the test's; what passes there is that architecture's bug.
    # (Not counted in the totals: the failure above already is.)
    if [ "${MPQT_QEMU_CONTROL:-0}" != 1 ] && have qemu-x86_64-static &&
       printf '%s\n' "$failures" | grep -q '^  qemu-'; then
        progs=""
        for f in "$B"/qemu-*/test_*.log; do
            [ -f "$f" ] && grep -q '^  FAIL' "$f" && progs="$progs $(basename "$f" .log)"
        done
        progs=$(printf '%s\n' $progs | sort -u | tr '\n' ' ')
        echo "== the control, for what failed above: x86-64 under qemu ($progs)"
        ( JOBS=1; PAR=1; EMU=$(command -v qemu-x86_64-static); TESTS=$progs; failures=""
          suite qemu-x86_64-control "clang --target=x86_64-linux-gnu" "-O2 -g -static -DMPQ_ALLOW_NONROBUST"
          echo "   (a test that fails here too fails under qemu itself; one that passes here is its architecture's bug)" )
    fi
fi
if [ "${MPQT_QEMU:-1}" != only ]; then
    echo "== fuzzing (tests/fuzz/run.sh, ${MPQT_FUZZ_SECONDS:-10} s a target)"
    if sh tests/fuzz/run.sh "${MPQT_FUZZ_SECONDS:-10}" >"$B/fuzz.log" 2>&1; then
        cat "$B/fuzz.log"; passed=$((passed + 1))
    else
        cat "$B/fuzz.log"; failed=$((failed + 1)); failures="$failures
  fuzzing (tests/build/fuzz/)"
    fi
fi
clean_shm

echo "== per configuration (passed, failed, skipped)"
for f in "$B"/*/summary; do
    [ -f "$f" ] && printf '  %-20s %5s %5s %5s\n' $(cat "$f")
done
if [ -n "$skipped" ]; then
    echo "skipped, not installed:$skipped"
    # In CI every configuration must run: .ci/run installs them all.
    if [ -n "${CI:-}" ]; then
        echo "  FAIL  CI lacks what is skipped above"
        failed=$((failed + 1))
    fi
fi
if [ -n "$failures" ]; then
    echo "failed:$failures"
fi
echo "$passed passed, $failed failed, $nskipped skipped"
[ "$failed" -eq 0 ]
