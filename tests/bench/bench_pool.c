/* bench_pool - mpq_pool beside Python's multiprocessing.Pool on the same
   trivial task (return the argument), with as many workers as CPUs in
   both: submit+callback throughput, apply (one task at a time), and map
   over a million items with the default chunking. Python runs in the same
   benchmark run when python3 is installed; its row says why when not. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include "bench.h"

enum { ASYNC_N = 200000, APPLY_N = 20000, MAP_N = 1000000, RUNS = 3 };

static int task(const void *arg, size_t len, void *res, size_t *res_len)
{
    memcpy(res, arg, len);
    *res_len = len;
    return 0;
}

static uint32_t done;
static void on_done(void *user, const mpq_pool_result *r_)
{
    const void *res = r_->data;
    size_t len = r_->len;
    (void)user; (void)res; (void)len;
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

static const char python_bench[] =
    "import multiprocessing as mp, time, os, sys\n"
    "def f(x): return x\n"
    "if __name__ == '__main__':\n"
    "    mp.set_start_method('fork')\n"
    "    N1, N2, N3, R = %d, %d, %d, %d\n"
    "    with mp.Pool(os.cpu_count()) as p:\n"
    "        p.map(f, range(1000))\n"
    "        a, b, c = [], [], []\n"
    "        for r in range(R):\n"
    "            t = time.perf_counter(); rs = [p.apply_async(f, (i,), callback=lambda v: None) for i in range(N1)]\n"
    "            for x in rs: x.wait()\n"
    "            a.append(N1 / (time.perf_counter() - t))\n"
    "            t = time.perf_counter()\n"
    "            for i in range(N2): p.apply(f, (i,))\n"
    "            b.append(N2 / (time.perf_counter() - t))\n"
    "            t = time.perf_counter(); p.map(f, range(N3)); c.append(N3 / (time.perf_counter() - t))\n"
    "    m = lambda v: sorted(v)[len(v) // 2]\n"
    "    print(m(a), m(b), m(c), sys.version.split()[0])\n";

/* Python's three figures, or 0 with `why` filled. */
static int python_rates(double *a, double *b, double *c, char *ver, char *why, size_t n)
{
    char script[2048], cmd[2600];
    FILE *f;
    int ok;
    if (system("python3 -c 'import multiprocessing' >/dev/null 2>&1") != 0) {
        snprintf(why, n, "python3 with multiprocessing not found");
        return 0;
    }
    snprintf(script, sizeof script, python_bench, 20000, 2000, MAP_N, RUNS);
    snprintf(cmd, sizeof cmd, "python3 -c \"%s\"", script);
    if (!(f = popen(cmd, "r"))) {
        snprintf(why, n, "popen failed");
        return 0;
    }
    ok = fscanf(f, "%lf %lf %lf %31s", a, b, c, ver) == 4;
    pclose(f);
    if (!ok) snprintf(why, n, "the Python benchmark failed");
    return ok;
}

int main(void)
{
    double a[RUNS], b[RUNS], c[RUNS], pa = 0, pb = 0, pc = 0, ma, mb, mc;
    char ver[32] = "", why[128] = "";
    mpq_pool *p;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int r, py;

    bench_header("mpq_pool vs Python multiprocessing.Pool (trivial task: return the argument)");
    if (mpq_pool_create(&p, NULL) != 0) return 1;
    mpq_pool_map(p, task, &r, 1, sizeof r, &r, sizeof r, 0);   /* warm up */
    for (r = 0; r < RUNS; r++) {
        a[r] = mpq_async(p);
        b[r] = mpq_apply(p);
        c[r] = mpq_map(p);
    }
    mpq_pool_destroy(p);
    ma = bench_median(a, RUNS);
    mb = bench_median(b, RUNS);
    mc = bench_median(c, RUNS);
    py = python_rates(&pa, &pb, &pc, ver, why, sizeof why);

    printf("%ld workers in both (one per CPU); medians of %d runs\n\n", cpus, RUNS);
    printf("| operation | mpq_pool | Python %s | × Python |\n|---|---:|---:|---:|\n", py ? ver : "(skipped)");
    if (py) {
        printf("| apply_async + callback, tasks/s | %.0f | %.0f | %.0f |\n", ma, pa, ma / pa);
        printf("| apply (one at a time), tasks/s | %.0f | %.0f | %.1f |\n", mb, pb, mb / pb);
        printf("| map of %d ints, items/s | %.0f | %.0f | %.1f |\n", MAP_N, mc, pc, mc / pc);
    } else {
        printf("| apply_async + callback, tasks/s | %.0f | - | - |\n", ma);
        printf("| apply (one at a time), tasks/s | %.0f | - | - |\n", mb);
        printf("| map of %d ints, items/s | %.0f | - | - |\n", MAP_N, mc);
        printf("\nPython skipped: %s\n", why);
    }
    printf("\ntargets: apply_async ≥ 100× Python, map ≥ 5× Python\n");
    return 0;
}
