/* bench_pool - mpq_pool beside Python's multiprocessing.Pool on the same
   trivial task (return the argument), with as many workers as CPUs in
   both: submit+callback throughput, apply (one task at a time: the round
   trip), map over a million items with the default chunking, and imap /
   imap_unordered at chunksize 1 and 100, read one by one. Python runs in
   the same benchmark run when python3 is installed; its row says why when
   not. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include "bench.h"

enum { ASYNC_N = 200000, APPLY_N = 20000, MAP_N = 1000000, IMAP_N = 200000, RUNS = 3 };
/* Python's item counts: smaller where it is slow (its figures are rates). */
enum { PY_ASYNC_N = 20000, PY_APPLY_N = 2000, PY_IMAP1_N = 20000, PY_IMAP100_N = 200000 };

static int task(const void *arg, size_t len, void *res, size_t *res_len)
{
    memcpy(res, arg, len);
    *res_len = len;
    return 0;
}

static uint32_t done;
static void on_done(void *user, const mpq_pool_result *r)
{
    (void)user; (void)r;
    mpq__store32(&done, mpq__load32(&done, MPQ__RELAXED) + 1, MPQ__RELEASE);
}

static double mpq_async(mpq_pool *p)
{
    double t0 = bench_now();
    int i;
    mpq__store32(&done, 0, MPQ__RELAXED);
    for (i = 0; i < ASYNC_N; i++)
        if (mpq_pool_apply_async(p, task, &i, sizeof i, on_done, NULL, NULL, NULL) != 0) exit(1);
    while (mpq__load32(&done, MPQ__ACQUIRE) != ASYNC_N) {
        struct timespec ts = { 0, 20000 };
        nanosleep(&ts, NULL);
    }
    return ASYNC_N / (bench_now() - t0);
}

static double mpq_apply(mpq_pool *p)
{
    double t0 = bench_now();
    int i, r;
    size_t len;
    for (i = 0; i < APPLY_N; i++)
        if (mpq_pool_apply(p, task, &i, sizeof i, &r, sizeof r, &len) != 0 || r != i) exit(1);
    return APPLY_N / (bench_now() - t0);
}

static double mpq_map(mpq_pool *p)
{
    static int in[MAP_N], out[MAP_N];
    double t0, rate;
    int i;
    for (i = 0; i < MAP_N; i++) in[i] = i;
    t0 = bench_now();
    if (mpq_pool_map(p, task, in, MAP_N, sizeof(int), out, sizeof(int), 0) != 0) exit(1);
    rate = MAP_N / (bench_now() - t0);
    for (i = 0; i < MAP_N; i++) if (out[i] != i) exit(1);
    return rate;
}

static int src(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    int v = (int)index;
    (void)user; (void)cap;
    if (index >= IMAP_N) return 0;
    memcpy(item, &v, sizeof v);
    *len = sizeof v;
    return 1;
}

/* imap over IMAP_N ints from a source, read one by one: items/s. */
static double bench_imap(mpq_pool *p, size_t chunk, int unordered)
{
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    double t0 = bench_now();
    size_t k = 0;
    memset(&c, 0, sizeof c);
    c.source = src;
    c.chunksize = chunk;
    c.unordered = unordered;
    if (mpq_pool_imap(p, task, &c, &it) != 0) exit(1);
    while (mpq_imap_next(it, &r, -1) == 1) {
        if (r.error || (!unordered && r.index != k)) exit(1);
        k++;
    }
    if (k != IMAP_N) exit(1);
    mpq_imap_free(it);
    return IMAP_N / (bench_now() - t0);
}

static const char python_bench[] =
    "import multiprocessing as mp, time, os, sys\n"
    "def f(x): return x\n"
    "if __name__ == '__main__':\n"
    "    mp.set_start_method('fork')\n"
    "    N1, N2, N3, N4, N5, R = %d, %d, %d, %d, %d, %d\n"
    "    def it(fn, n, cs):\n"
    "        t = time.perf_counter()\n"
    "        for x in fn(f, range(n), cs): pass\n"
    "        return n / (time.perf_counter() - t)\n"
    "    with mp.Pool(os.cpu_count()) as p:\n"
    "        p.map(f, range(1000))\n"
    "        a, b, c, d, e, g, h = [], [], [], [], [], [], []\n"
    "        for r in range(R):\n"
    "            d.append(it(p.imap, N4, 1)); e.append(it(p.imap, N5, 100))\n"
    "            g.append(it(p.imap_unordered, N4, 1)); h.append(it(p.imap_unordered, N5, 100))\n"
    "            t = time.perf_counter(); rs = [p.apply_async(f, (i,), callback=lambda v: None) for i in range(N1)]\n"
    "            for x in rs: x.wait()\n"
    "            a.append(N1 / (time.perf_counter() - t))\n"
    "            t = time.perf_counter()\n"
    "            for i in range(N2): p.apply(f, (i,))\n"
    "            b.append(N2 / (time.perf_counter() - t))\n"
    "            t = time.perf_counter(); p.map(f, range(N3)); c.append(N3 / (time.perf_counter() - t))\n"
    "    m = lambda v: sorted(v)[len(v) // 2]\n"
    "    print(m(a), m(b), m(c), m(d), m(e), m(g), m(h), sys.version.split()[0])\n";

/* Python's figures (py[0..6]: async, apply, map, imap 1, imap 100,
   unordered 1, unordered 100), or 0 with `why` filled. */
static int python_rates(double *py, char *ver, char *why, size_t n)
{
    char script[3072], cmd[3600];
    FILE *f;
    int ok;
    if (system("python3 -c 'import multiprocessing' >/dev/null 2>&1") != 0) {
        snprintf(why, n, "python3 with multiprocessing not found");
        return 0;
    }
    snprintf(script, sizeof script, python_bench, PY_ASYNC_N, PY_APPLY_N, MAP_N, PY_IMAP1_N, PY_IMAP100_N, RUNS);
    snprintf(cmd, sizeof cmd, "python3 -c \"%s\"", script);
    if (!(f = popen(cmd, "r"))) {
        snprintf(why, n, "popen failed");
        return 0;
    }
    ok = fscanf(f, "%lf %lf %lf %lf %lf %lf %lf %31s", &py[0], &py[1], &py[2], &py[3], &py[4], &py[5],
                &py[6], ver) == 8;
    pclose(f);
    if (!ok) snprintf(why, n, "the Python benchmark failed");
    return ok;
}

int main(void)
{
    static const char *const names[7] = {
        "apply_async + callback, tasks/s", "apply (one at a time), tasks/s", "map of 1000000 ints, items/s",
        "imap, chunksize 1, items/s", "imap, chunksize 100, items/s", "imap_unordered, chunksize 1, items/s",
        "imap_unordered, chunksize 100, items/s"
    };
    double runs[7][RUNS], m[7], py[7];
    char ver[32] = "", why[128] = "";
    mpq_pool *p;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int r, k, have;

    bench_header("mpq_pool vs Python multiprocessing.Pool (trivial task: return the argument)");
    if (mpq_pool_create(&p, NULL) != 0) return 1;
    mpq_pool_map(p, task, &r, 1, sizeof r, &r, sizeof r, 0);   /* warm up */
    for (r = 0; r < RUNS; r++) {
        runs[0][r] = mpq_async(p);
        runs[1][r] = mpq_apply(p);
        runs[2][r] = mpq_map(p);
        runs[3][r] = bench_imap(p, 1, 0);
        runs[4][r] = bench_imap(p, 100, 0);
        runs[5][r] = bench_imap(p, 1, 1);
        runs[6][r] = bench_imap(p, 100, 1);
    }
    mpq_pool_destroy(p);
    for (k = 0; k < 7; k++) m[k] = bench_median(runs[k], RUNS);
    have = python_rates(py, ver, why, sizeof why);

    printf("%ld workers in both (one per CPU); medians of %d runs\n\n", cpus, RUNS);
    printf("| operation | mpq_pool | Python %s | × Python |\n|---|---:|---:|---:|\n", have ? ver : "(skipped)");
    for (k = 0; k < 7; k++) {
        if (have) printf("| %s | %.0f | %.0f | %.1f |\n", names[k], m[k], py[k], m[k] / py[k]);
        else printf("| %s | %.0f | - | - |\n", names[k], m[k]);
    }
    if (!have) printf("\nPython skipped: %s\n", why);
    printf("\ntargets: apply_async ≥ 100× Python, apply ≥ 5×, map ≥ 5×\n");
    return 0;
}
