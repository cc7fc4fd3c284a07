#!/bin/sh
# tests/fuzz/run.sh - builds the libFuzzer targets (where clang has its
# fuzzer runtime) and runs each for a bounded time, from the corpus kept in
# tests/fuzz/corpus/NAME (what a run finds goes to tests/build/fuzz/, not
# into the repository). Exit status 1 if a target crashed, hung (over 10 s
# on one input) or leaked; its reproducer is left in tests/build/fuzz/.
#
# Usage: sh tests/fuzz/run.sh [seconds per target, default 20] [target...]
#   fuzz_open   named images of every kind, opened and used
#   fuzz_conn   the stream a connection's peer sends, and its authkey handshake
#   fuzz_queue  a queue whose memory is scribbled on while it is used
#   fuzz_pool   the result records a pool's parent reads, forged, beside
#               real tasks
# tests/fuzz/known/ keeps inputs that once crashed fuzz_open (pthread
# mutexes in named images, mutated): each run tries them first.
# (The pool's task records are not fuzzed: each carries a function
# pointer, so whoever can write the task queue runs code in the workers by
# design - see fuzz_pool.c.)
set -u
cd "$(dirname "$0")/../.." || exit 2
B=tests/build/fuzz
SECS=${1:-20}
[ $# -gt 0 ] && shift
TARGETS=${*:-fuzz_open fuzz_conn fuzz_queue fuzz_pool}
mkdir -p "$B"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$B/probe.c"
if ! clang -fsanitize=fuzzer "$B/probe.c" -o "$B/probe" >/dev/null 2>&1; then
    echo "fuzzing skipped: clang's libFuzzer is missing (apt-get install clang libclang-rt-dev)"
    exit 0
fi
bad=0
for t in $TARGETS; do
    echo "== $t (${SECS}s)"
    if ! clang -O1 -g -std=c99 -Wall -Wextra -Wpedantic -Werror -fsanitize=fuzzer,address,undefined \
            -fno-sanitize-recover=all -o "$B/$t" "tests/fuzz/$t.c" -pthread 2>"$B/$t.build.log"; then
        echo "  FAIL  build $t"; head -20 "$B/$t.build.log"; bad=1; continue
    fi
    mkdir -p "$B/work-$t"
    if [ "$t" = fuzz_open ]; then
        if (cd "$B" && ./"$t" -timeout=10 ../../fuzz/known/*) >"$B/$t.known.log" 2>&1; then
            printf '  ok    %s: the inputs in tests/fuzz/known/ pass\n' "$t"
        else
            echo "  FAIL  $t: an input of tests/fuzz/known/"; grep -E 'ERROR|SUMMARY|Running' "$B/$t.known.log" | head -20; bad=1
        fi
    fi
    if (cd "$B" && ./"$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            "work-$t" "../../fuzz/corpus/$t") >"$B/$t.log" 2>&1; then
        printf '  ok    %s: %s runs, no crash\n' "$t" "$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/$t.log")"
    else
        echo "  FAIL  $t"; grep -E 'ERROR|SUMMARY|Test unit written|^    #[0-9] ' "$B/$t.log" | head -20; bad=1
    fi
done
exit $bad
