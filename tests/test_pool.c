/* Tests of mpq_pool: the Python example, apply/map/futures/callbacks, bad
   input, workers that die (SIGKILL, segfault, exit) mid-task, recycling,
   close/join/terminate in every order, a killed server or parent, no
   zombies and no leaks. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"
#include <dirent.h>
#include <sys/resource.h>
#include <sys/mman.h>

/* --- tasks ------------------------------------------------------------- */


static int t_add100(const void *a, size_t n, void *r, size_t *rl) { return mpqt_put_int(r, rl, mpqt_get_int(a, n) + 100); }
static int t_square(const void *a, size_t n, void *r, size_t *rl)
{
    int x = mpqt_get_int(a, n);
    return mpqt_put_int(r, rl, x * x);
}
static int t_pid(const void *a, size_t n, void *r, size_t *rl) { (void)a; (void)n; return mpqt_put_int(r, rl, (int)getpid()); }
static int t_fail_odd(const void *a, size_t n, void *r, size_t *rl)
{
    int x = mpqt_get_int(a, n);
    return x % 2 ? -EDOM : mpqt_put_int(r, rl, x);
}
static int t_too_big(const void *a, size_t n, void *r, size_t *rl) { (void)a; (void)n; (void)r; *rl += 1; return 0; }
static int t_echo(const void *a, size_t n, void *r, size_t *rl)
{
    if (n > *rl) return -ENOSPC;
    memcpy(r, a, n);
    *rl = n;
    return 0;
}
static int t_die_on_777(const void *a, size_t n, void *r, size_t *rl)
{
    if (mpqt_get_int(a, n) == 777) raise(SIGKILL);
    return t_square(a, n, r, rl);
}
static int t_exit3(const void *a, size_t n, void *r, size_t *rl) { (void)a; (void)n; (void)r; (void)rl; exit(3); }
static int t_segv(const void *a, size_t n, void *r, size_t *rl)
{
    (void)a; (void)n; (void)r; (void)rl;
    return mpqt_segfault();
}

/* A task that tells its pid on `told`, then waits for one byte on `go`. */
static int told[2], go[2];
static int t_block(const void *a, size_t n, void *r, size_t *rl)
{
    int pid = (int)getpid();
    char c;
    (void)a; (void)n;
    if (write(told[1], &pid, sizeof pid) != (ssize_t)sizeof pid) return -EIO;
    if (read(go[0], &c, 1) != 1) return -EIO;
    return mpqt_put_int(r, rl, pid);
}

static void pipes(void)
{
    CHECK_OK(pipe(told));
    CHECK_OK(pipe(go));
}

static int wait_told(void)
{
    int pid = 0;
    CHECK(mpqt_readable(told[0], 10000) == 1);
    CHECK_EQ(read(told[0], &pid, sizeof pid), sizeof pid);
    return pid;
}

static void release_one(void) { CHECK_EQ(write(go[1], "x", 1), 1); }

static int g_init;
static int init_42(void *arg) { g_init = (int)(intptr_t)arg; return 0; }
static int init_fail(void *arg) { (void)arg; return -EACCES; }
static int t_init_value(const void *a, size_t n, void *r, size_t *rl) { (void)a; (void)n; return mpqt_put_int(r, rl, g_init); }

/* --- helpers ----------------------------------------------------------- */

/* Outcomes seen by callbacks (they run on the result thread). */
static int cb_ok, cb_err, cb_last_err, cb_sum;
static unsigned char cb_seen[1000];
static void on_result(void *user, const mpq_pool_result *r_)
{
    const void *res = r_->data;
    size_t len = r_->len;
    int v = mpqt_get_int(res, len);
    (void)user;
    if (v >= 100 && v < 1100) cb_seen[v - 100]++;
    cb_sum += v;
    __atomic_fetch_add(&cb_ok, 1, __ATOMIC_SEQ_CST);
}
static void on_error(void *user, const mpq_pool_result *r_)
{
    int error = r_->error;
    (void)user;
    cb_last_err = error;
    __atomic_fetch_add(&cb_err, 1, __ATOMIC_SEQ_CST);
}

/* Children of this process that /proc lists (zombies included). */
static int count_children(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char buf[512];
        const char *st;
        int ppid = 0;
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        st = mpqt_stat((pid_t)atoi(e->d_name), buf, sizeof buf);
        if (st && sscanf(st, "%*c %d", &ppid) == 1 && ppid == (int)getpid()) n++;
    }
    closedir(d);
    return n;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    CHECK(d != NULL);
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int c, n = 0;
    CHECK(f != NULL);
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* Waits (bounded by the test's timeout) until the pool has `n` workers,
   none of them `not`. */
static void wait_workers(mpq_pool *p, int n, pid_t not)
{
    for (;;) {
        pid_t pids[64];
        int k = mpq_pool_workers(p, pids, 64), i, ok = k == n;
        for (i = 0; i < k && i < 64; i++) ok &= pids[i] != not && mpqt_proc_state(pids[i]) != 'Z';
        if (ok) return;
        mpqt_pause();
    }
}

/* --- tests --------------------------------------------------------------- */

/* The Python original: Pool(3), ten apply_async(foo, (i,), callback=call),
   close, join. Every callback ran, each with its i + 100, before join
   returned. */
static void test_pool_python_example(void)
{
    mpq_pool *p;
    int i;
    memset(cb_seen, 0, sizeof cb_seen);
    cb_ok = cb_err = 0;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 3 }));
    CHECK_EQ(mpq_pool_workers(p, NULL, 0), 3);
    for (i = 0; i < 10; i++) CHECK_OK(mpq_pool_apply_async(p, t_add100, &i, sizeof i, on_result, on_error, NULL, NULL));
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_EQ(cb_ok, 10);
    CHECK_EQ(cb_err, 0);
    for (i = 0; i < 10; i++) CHECK_EQ(cb_seen[i], 1);
    CHECK_OK(mpq_pool_destroy(p));
    CHECK_EQ(count_children(), 0);
}

static void test_pool_apply_and_errors(void)
{
    mpq_pool *p;
    int x = 12, y = 0;
    size_t len = 0;
    char big[200], out[200];
    mpq_future *f;
    CHECK_ERR(mpq_pool_create(NULL, NULL), EINVAL);
    CHECK_ERR(mpq_pool_create(&p, &(mpq_pool_config){ .workers = -1 }), EINVAL);
    CHECK_ERR(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 5000 }), EINVAL);
    CHECK_ERR(mpq_pool_create(&p, &(mpq_pool_config){ .max_arg = 1u << 30 }), EINVAL);
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2, .max_arg = 100, .max_result = 100 }));
    CHECK_OK(mpq_pool_apply(p, t_square, &x, sizeof x, &y, sizeof y, &len));
    CHECK_EQ(y, 144);
    CHECK_EQ(len, sizeof y);
    x = 3;
    CHECK_ERR(mpq_pool_apply(p, t_fail_odd, &x, sizeof x, &y, sizeof y, &len), EDOM);
    CHECK_ERR(mpq_pool_apply(p, t_too_big, &x, sizeof x, &y, sizeof y, &len), EMSGSIZE);
    memset(big, 'b', sizeof big);
    CHECK_OK(mpq_pool_apply(p, t_echo, big, 100, out, sizeof out, &len));   /* max_arg exactly */
    CHECK_EQ(len, 100);
    CHECK(memcmp(out, big, 100) == 0);
    CHECK_OK(mpq_pool_apply(p, t_echo, NULL, 0, out, sizeof out, &len));     /* empty */
    CHECK_EQ(len, 0);
    CHECK_ERR(mpq_pool_apply(p, t_echo, big, 101, out, sizeof out, &len), EMSGSIZE);
    CHECK_ERR(mpq_pool_apply(p, t_echo, big, 50, out, 10, &len), EMSGSIZE);  /* caller's buffer */
    CHECK_EQ(len, 50);
    CHECK_ERR(mpq_pool_apply(p, NULL, &x, sizeof x, &y, sizeof y, &len), EINVAL);
    CHECK_ERR(mpq_pool_apply(p, t_square, NULL, 4, &y, sizeof y, &len), EINVAL);
    CHECK_ERR(mpq_pool_apply_async(NULL, t_square, &x, 4, NULL, NULL, NULL, NULL), EINVAL);
    CHECK_ERR(mpq_pool_submit(p, t_square, &x, 4, NULL), EINVAL);
    CHECK_ERR(mpq_pool_map(p, t_square, big, 2, 101, out, 4, 0), EMSGSIZE);
    CHECK_ERR(mpq_pool_map(p, t_square, big, 2, 4, out, 101, 0), EMSGSIZE);
    CHECK_ERR(mpq_pool_map(p, t_square, big, SIZE_MAX / 2, 4, out, 4, 0), EOVERFLOW);
    CHECK_ERR(mpq_pool_map(p, t_square, NULL, 2, 4, out, 4, 0), EINVAL);
    CHECK_ERR(mpq_pool_join(p, 0), EINVAL);        /* neither closed nor terminated */
    CHECK_OK(mpq_pool_close(p));
    CHECK_ERR(mpq_pool_apply(p, t_square, &x, sizeof x, &y, sizeof y, &len), EPIPE);
    CHECK_ERR(mpq_pool_submit(p, t_square, &x, sizeof x, &f), EPIPE);
    CHECK_ERR(mpq_pool_map(p, t_square, &x, 1, 4, &y, 4, 0), EPIPE);
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_OK(mpq_pool_destroy(p));
    CHECK_ERR(mpq_pool_destroy(NULL), EINVAL);
    CHECK_ERR(mpq_future_wait(NULL, 0), EINVAL);
    CHECK_ERR(mpq_future_free(NULL), EINVAL);
}

/* map over 100 000 items, checked one by one, with several chunk sizes. */
static void test_pool_map(void)
{
    static int in[100000], out[100000];
    static const size_t chunks[] = { 0, 1, 7, 1000, 1u << 30 };
    mpq_pool *p;
    size_t c;
    int i;
    for (i = 0; i < 100000; i++) in[i] = i % 40000 - 20000;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 3 }));
    for (c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        int n = chunks[c] == 1 ? 5000 : 100000;
        memset(out, 0xff, sizeof out);
        CHECK_OK(mpq_pool_map(p, t_square, in, (size_t)n, sizeof(int), out, sizeof(int), chunks[c]));
        for (i = 0; i < n; i++)
            if (out[i] != in[i] * in[i]) mpqt_fail(__FILE__, __LINE__, "chunk %zu: out[%d] = %d", chunks[c], i, out[i]);
    }
    /* Results narrower than their slot are zero-filled; none at all. */
    {
        long long wide[10];
        memset(wide, 0xff, sizeof wide);
        CHECK_OK(mpq_pool_map(p, t_square, in, 10, sizeof(int), wide, sizeof wide[0], 3));
        for (i = 0; i < 10; i++) {   /* the int first, then zeros: any byte order */
            static const char zero[sizeof wide[0] - sizeof(int)];
            int v;
            memcpy(&v, &wide[i], sizeof v);
            CHECK_EQ(v, in[i] * in[i]);
            CHECK(memcmp((char *)&wide[i] + sizeof v, zero, sizeof zero) == 0);
        }
        CHECK_OK(mpq_pool_map(p, t_square, in, 0, sizeof(int), NULL, 0, 0));
    }
    /* A failing item fails the map; the others still ran. */
    for (i = 0; i < 1000; i++) in[i] = 2 * i;
    in[777] = 3;
    CHECK_ERR(mpq_pool_map(p, t_fail_odd, in, 1000, sizeof(int), out, sizeof(int), 10), EDOM);
    for (i = 0; i < 770; i++) CHECK_EQ(out[i], 2 * i);
    /* map_async: the callback sees the whole result array. */
    {
        mpq_future *f;
        cb_ok = cb_err = 0;
        in[777] = 4;
        CHECK_OK(mpq_pool_map_async(p, t_square, in, 1000, sizeof(int), out, sizeof(int), 0,
                                    NULL, on_error, NULL, &f));
        CHECK_OK(mpq_future_wait(f, 10000));
        CHECK_EQ(mpq_future_successful(f), 1);
        CHECK_OK(mpq_future_get(f, NULL, 0, NULL, 0));
        CHECK_OK(mpq_future_free(f));
        for (i = 0; i < 1000; i++) CHECK_EQ(out[i], in[i] * in[i]);
        CHECK_EQ(cb_err, 0);
    }
    CHECK_OK(mpq_pool_destroy(p));
}

/* Futures: a task that waits for the test's word; timeouts, ready,
   successful, get. */
static void test_pool_futures(void)
{
    mpq_pool *p;
    mpq_future *f, *g;
    int v = 0, pid;
    size_t len = 0;
    pipes();
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }));
    CHECK_OK(mpq_pool_submit(p, t_block, NULL, 0, &f));
    pid = wait_told();
    CHECK_EQ(mpq_future_ready(f), 0);
    CHECK_ERR(mpq_future_successful(f), EAGAIN);
    CHECK_ERR(mpq_future_wait(f, 0), EAGAIN);
    CHECK_ERR(mpq_future_wait(f, 30), ETIMEDOUT);
    CHECK_ERR(mpq_future_get(f, &v, sizeof v, &len, 20), ETIMEDOUT);
    release_one();
    CHECK_OK(mpq_future_get(f, &v, sizeof v, &len, 10000));
    CHECK_EQ(v, pid);
    CHECK_EQ(len, sizeof v);
    CHECK_EQ(mpq_future_ready(f), 1);
    CHECK_EQ(mpq_future_successful(f), 1);
    CHECK_ERR(mpq_future_get(f, &v, 2, &len, 0), EMSGSIZE);
    CHECK_EQ(len, sizeof v);
    CHECK_OK(mpq_future_free(f));
    v = 5;
    CHECK_OK(mpq_pool_submit(p, t_fail_odd, &v, sizeof v, &g));
    CHECK_ERR(mpq_future_get(g, &v, sizeof v, &len, 10000), EDOM);
    CHECK_EQ(mpq_future_successful(g), 0);
    CHECK_OK(mpq_future_free(g));
    /* A future freed before its task ends. */
    CHECK_OK(mpq_pool_submit(p, t_block, NULL, 0, &f));
    wait_told();
    CHECK_OK(mpq_future_free(f));
    release_one();
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_OK(mpq_pool_destroy(p));
}

static void test_pool_error_callback(void)
{
    mpq_pool *p;
    int i;
    cb_ok = cb_err = cb_sum = 0;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }));
    for (i = 0; i < 1000; i++) CHECK_OK(mpq_pool_apply_async(p, t_fail_odd, &i, sizeof i, on_result, on_error, NULL, NULL));
    for (i = 0; i < 10; i++) CHECK_OK(mpq_pool_apply_async(p, t_fail_odd, &i, sizeof i, NULL, NULL, NULL, NULL));
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_EQ(cb_ok, 500);
    CHECK_EQ(cb_err, 500);
    CHECK_EQ(cb_last_err, -EDOM);
    CHECK_EQ(cb_sum, 2 * (499 * 500 / 2));
    CHECK_OK(mpq_pool_destroy(p));
}

/* A worker SIGKILLed mid-task: that task fails with MPQ_POOL_KILLED(9),
   a new worker takes its place, later tasks succeed. */
static void test_pool_worker_killed(void)
{
    mpq_pool *p;
    mpq_future *f;
    int pid, v = 0, x = 9, e;
    size_t len;
    pipes();
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }));
    CHECK_OK(mpq_pool_submit(p, t_block, NULL, 0, &f));
    pid = wait_told();
    CHECK_OK(kill(pid, SIGKILL));
    e = mpq_future_get(f, &v, sizeof v, &len, 10000);
    CHECK_EQ(e, MPQ_POOL_KILLED(SIGKILL));
    CHECK(MPQ_POOL_DIED(e));
    CHECK_EQ(MPQ_POOL_SIGNAL(e), SIGKILL);
    CHECK_EQ(MPQ_POOL_STATUS(e), -1);
    CHECK(!MPQ_POOL_DIED(-EDOM) && !MPQ_POOL_DIED(0) && !MPQ_POOL_DIED(-4095) && !MPQ_POOL_DIED(-2147483647 - 1));
    CHECK_OK(mpq_future_free(f));
    wait_workers(p, 2, pid);
    for (x = 0; x < 100; x++) {
        CHECK_OK(mpq_pool_apply(p, t_square, &x, sizeof x, &v, sizeof v, &len));
        CHECK_EQ(v, x * x);
    }
    CHECK_OK(mpq_pool_destroy(p));
    CHECK_EQ(count_children(), 0);
}

/* Tasks that crash their worker every time fail every time; exit() in a
   task reports its status; the pool carries on. */
static void test_pool_crashing_tasks(void)
{
    mpq_pool *p;
    int i, v, e;
    size_t len;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }));
    for (i = 0; i < 5; i++) {
        e = mpq_pool_apply(p, t_segv, NULL, 0, &v, sizeof v, &len);
        CHECK_EQ(e, MPQ_POOL_KILLED(SIGSEGV));
        e = mpq_pool_apply(p, t_exit3, NULL, 0, &v, sizeof v, &len);
        CHECK_EQ(e, MPQ_POOL_EXITED(3));
        CHECK_EQ(MPQ_POOL_STATUS(e), 3);
        CHECK_EQ(MPQ_POOL_SIGNAL(e), 0);
        CHECK_OK(mpq_pool_apply(p, t_square, &i, sizeof i, &v, sizeof v, &len));
        CHECK_EQ(v, i * i);
    }
    /* A map whose chunk kills its worker fails with that death; the pool
       and the next map go on. */
    {
        static int in[5000], out[5000];
        for (i = 0; i < 5000; i++) in[i] = i;
        CHECK_EQ(mpq_pool_map(p, t_die_on_777, in, 5000, sizeof(int), out, sizeof(int), 50), MPQ_POOL_KILLED(SIGKILL));
        in[777] = 0;
        CHECK_OK(mpq_pool_map(p, t_die_on_777, in, 5000, sizeof(int), out, sizeof(int), 50));
        for (i = 0; i < 5000; i++) CHECK_EQ(out[i], in[i] * in[i]);
    }
    wait_workers(p, 2, 0);
    CHECK_OK(mpq_pool_destroy(p));
}

/* max_tasks_per_child: one worker, two tasks each: five pids for ten tasks. */
static void test_pool_max_tasks_per_child(void)
{
    mpq_pool *p;
    int pids[10], i, j, distinct = 0;
    size_t len;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 1, .max_tasks_per_child = 2 }));
    for (i = 0; i < 10; i++) CHECK_OK(mpq_pool_apply(p, t_pid, NULL, 0, &pids[i], sizeof pids[i], &len));
    for (i = 0; i < 10; i++) {
        for (j = 0; j < i && pids[j] != pids[i]; j++) {}
        distinct += j == i;
    }
    CHECK_EQ(distinct, 5);
    for (i = 0; i < 10; i += 2) CHECK_EQ(pids[i], pids[i + 1]);
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_OK(mpq_pool_destroy(p));
}

static void test_pool_initializer(void)
{
    mpq_pool *p;
    int v = 0, before = count_children();
    size_t len;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2, .initializer = init_42, .initarg = (void *)(intptr_t)42 }));
    CHECK_OK(mpq_pool_apply(p, t_init_value, NULL, 0, &v, sizeof v, &len));
    CHECK_EQ(v, 42);
    CHECK_EQ(g_init, 0);   /* it ran in the workers, not here */
    CHECK_OK(mpq_pool_destroy(p));
    CHECK_ERR(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2, .initializer = init_fail }), EACCES);
    CHECK_EQ(count_children(), before);
}

/* close/join/terminate in every order, with tasks in flight. */
static void test_pool_close_join_terminate(void)
{
    mpq_pool *p;
    mpq_future *f[3];
    int i, v;
    size_t len;
    pipes();
    /* close, then join: the running task finishes; join waits for it. */
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }));
    CHECK_OK(mpq_pool_submit(p, t_block, NULL, 0, &f[0]));
    wait_told();
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_close(p));
    CHECK_ERR(mpq_pool_join(p, 0), EAGAIN);
    CHECK_ERR(mpq_pool_join(p, 30), ETIMEDOUT);
    release_one();
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_EQ(mpq_future_ready(f[0]), 1);
    CHECK_EQ(mpq_future_successful(f[0]), 1);
    CHECK_OK(mpq_pool_join(p, 0));              /* again */
    CHECK_OK(mpq_pool_terminate(p));            /* after join: harmless */
    CHECK_OK(mpq_pool_destroy(p));
    mpq_future_free(f[0]);

    /* terminate with tasks running and waiting: all fail -ECANCELED, their
       error callbacks ran before terminate returned. */
    cb_ok = cb_err = 0;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }));
    for (i = 0; i < 3; i++) CHECK_OK(mpq_pool_apply_async(p, t_block, NULL, 0, on_result, on_error, NULL, &f[i]));
    wait_told();
    wait_told();
    CHECK_OK(mpq_pool_terminate(p));
    CHECK_EQ(cb_err, 3);
    CHECK_EQ(cb_ok, 0);
    CHECK_EQ(cb_last_err, -ECANCELED);
    for (i = 0; i < 3; i++) {
        CHECK_ERR(mpq_future_get(f[i], &v, sizeof v, &len, 0), ECANCELED);
        mpq_future_free(f[i]);
    }
    CHECK_OK(mpq_pool_terminate(p));
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_ERR(mpq_pool_submit(p, t_pid, NULL, 0, &f[0]), EPIPE);
    CHECK_OK(mpq_pool_destroy(p));
    CHECK_EQ(count_children(), 0);

    /* close, then terminate, then join. */
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 1 }));
    CHECK_OK(mpq_pool_submit(p, t_block, NULL, 0, &f[0]));
    wait_told();
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_terminate(p));
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_ERR(mpq_future_get(f[0], &v, sizeof v, &len, 0), ECANCELED);
    mpq_future_free(f[0]);
    CHECK_OK(mpq_pool_destroy(p));

    /* destroy without close or join: the pending future fails, nothing is
       left running. */
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 1 }));
    CHECK_OK(mpq_pool_submit(p, t_block, NULL, 0, &f[0]));
    CHECK_OK(mpq_pool_submit(p, t_pid, NULL, 0, &f[1]));
    wait_told();
    CHECK_OK(mpq_pool_destroy(p));
    CHECK_ERR(mpq_future_get(f[0], &v, sizeof v, &len, 0), ECANCELED);
    CHECK_ERR(mpq_future_get(f[1], &v, sizeof v, &len, 0), ECANCELED);
    mpq_future_free(f[0]);
    mpq_future_free(f[1]);
    CHECK_EQ(count_children(), 0);
}

/* After destroy no process of the pool is left, not even as a zombie. */
static void test_pool_no_zombies(void)
{
    mpq_pool *p;
    pid_t pids[16] = { 0 }, server;
    int n, i, v;
    size_t len;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 4, .max_tasks_per_child = 3 }));
    for (i = 0; i < 40; i++) CHECK_OK(mpq_pool_apply(p, t_pid, NULL, 0, &v, sizeof v, &len));
    n = mpq_pool_workers(p, pids, 4);     /* some may be retiring just now */
    CHECK(n >= 1);
    if (n > 4) n = 4;
    server = p->server.pid;
    CHECK_OK(kill(pids[0], SIGKILL));
    wait_workers(p, 4, pids[0]);
    CHECK_EQ(mpqt_proc_state(pids[0]), 0);   /* the server reaped it */
    i = mpq_pool_workers(p, pids + n, 4);
    n += i < 4 ? i : 4;
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_OK(mpq_pool_destroy(p));
    for (i = 0; i < n; i++) CHECK_EQ(mpqt_proc_state(pids[i]), 0);
    CHECK_EQ(mpqt_proc_state(server), 0);
    CHECK_EQ(count_children(), 0);
}

/* 1000 create/destroy cycles leak no descriptor and no mapping. */
static void test_pool_no_leaks(void)
{
    mpq_pool *p;
    int i, fds, maps, v;
    int rounds = mpqt_under_qemu() ? 50 : 1000;   /* a pool costs seconds under qemu */
    size_t len;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 1, .backlog = 16 }));
    CHECK_OK(mpq_pool_apply(p, t_pid, NULL, 0, &v, sizeof v, &len));
    CHECK_OK(mpq_pool_destroy(p));
    fds = count_entries("/proc/self/fd");
    maps = count_lines("/proc/self/maps");
    for (i = 0; i < rounds; i++) {
        CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 1, .backlog = 16 }));
        if (i % 100 == 0) CHECK_OK(mpq_pool_apply(p, t_pid, NULL, 0, &v, sizeof v, &len));
        CHECK_OK(mpq_pool_destroy(p));
    }
    CHECK_EQ(count_entries("/proc/self/fd"), fds);
    /* A leak would show 1000 (or 50) times; malloc may add an arena or two for the
       result threads once, whenever contention first makes it. (ASan's
       allocator maps as it pleases.) */
#if !MPQT_ASAN
    CHECK(count_lines("/proc/self/maps") <= maps + 4);
#else
    (void)maps;
#endif
    CHECK_EQ(count_children(), 0);
}

/* Random SIGKILLs of workers - 100 of them, paced by progress - while
   4000 tasks and a 200-chunk map run, workers also retiring every 50
   tasks: every task gets exactly one outcome, success or
   MPQ_POOL_KILLED(9), at most one failure per kill; the map reports once,
   and if it succeeded every result is right; the pool joins. */
static int t_spin(const void *a, size_t n, void *r, size_t *rl)
{
    volatile unsigned k = 0;
    int x = mpqt_get_int(a, n);
    while (k < 100000u) k++;
    return mpqt_put_int(r, rl, x + 100);
}
static int t_spin_square(const void *a, size_t n, void *r, size_t *rl)
{
    volatile unsigned k = 0;
    while (k < 1000u) k++;
    return t_square(a, n, r, rl);
}
static int storm_other, storm_map_done, storm_map_err;
static void storm_error(void *user, const mpq_pool_result *r_)
{
    int error = r_->error;
    (void)user;
    if (error == MPQ_POOL_KILLED(SIGKILL)) __atomic_fetch_add(&cb_err, 1, __ATOMIC_SEQ_CST);
    else storm_other = error;
}
static void storm_map_ok(void *user, const mpq_pool_result *r_)
{
    const void *res = r_->data;
    size_t len = r_->len;
    (void)user; (void)res; (void)len;
    __atomic_fetch_add(&storm_map_done, 1, __ATOMIC_SEQ_CST);
}
static void storm_map_error(void *user, const mpq_pool_result *r_)
{
    int error = r_->error;
    (void)user;
    storm_map_err = error;
    __atomic_fetch_add(&storm_map_done, 1, __ATOMIC_SEQ_CST);
}
static void test_pool_kill_storm(void)
{
    static int in[20000], out[20000];
    mpq_pool *p;
    uint64_t seed = 12345;
    int i, kills = 0, total = 4000, last = 0;
    cb_ok = cb_err = storm_other = storm_map_done = storm_map_err = 0;
    for (i = 0; i < 20000; i++) in[i] = i % 1000;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 3, .max_tasks_per_child = 50, .backlog = 4096 }));
    for (i = 0; i < total; i++) {
        int x = i % 1000;
        if (i == 1000) {   /* the map's chunks among the tasks, under the kills */
            CHECK_OK(mpq_pool_map_async(p, t_spin_square, in, 20000, sizeof(int), out, sizeof(int), 100,
                                        storm_map_ok, storm_map_error, NULL, NULL));
        }
        CHECK_OK(mpq_pool_apply_async(p, t_spin, &x, sizeof x, on_result, storm_error, NULL, NULL));
    }
    while (kills < 100) {
        pid_t pids[3];
        int n, done = __atomic_load_n(&cb_ok, __ATOMIC_SEQ_CST) + __atomic_load_n(&cb_err, __ATOMIC_SEQ_CST);
        if (done >= total) break;
        if (done < last + 10) {            /* let some work happen between kills */
            mpqt_pause();
            continue;
        }
        last = done;
        n = mpq_pool_workers(p, pids, 3);
        if (n > 0 && kill(pids[mpqt_rand(&seed) % (uint64_t)(n > 3 ? 3 : n)], SIGKILL) == 0) kills++;
    }
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 60000));
    CHECK_EQ(storm_other, 0);
    CHECK_EQ(cb_ok + cb_err, total);
    CHECK(cb_err <= kills);
    CHECK_EQ(storm_map_done, 1);
    if (storm_map_err == 0) {
        for (i = 0; i < 20000; i++) CHECK_EQ(out[i], in[i] * in[i]);
    } else {
        CHECK_EQ(storm_map_err, MPQ_POOL_KILLED(SIGKILL));
    }
    printf("    %d kills, %d tasks failed, map %s\n", kills, cb_err, storm_map_err ? "failed" : "succeeded");
    CHECK_OK(mpq_pool_destroy(p));
    CHECK_EQ(count_children(), 0);
}

/* The fork server killed: the pool is broken, not hung. */
static void test_pool_server_killed(void)
{
    mpq_pool *p;
    mpq_future *f;
    pid_t pids[2];
    int v, i;
    size_t len;
    pipes();
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }));
    CHECK_EQ(mpq_pool_workers(p, pids, 2), 2);
    CHECK_OK(mpq_pool_submit(p, t_block, NULL, 0, &f));
    wait_told();
    CHECK_OK(kill(p->server.pid, SIGKILL));
    CHECK_ERR(mpq_future_get(f, &v, sizeof v, &len, 10000), ECHILD);
    mpq_future_free(f);
    CHECK_ERR(mpq_pool_apply(p, t_pid, NULL, 0, &v, sizeof v, &len), ECHILD);
    for (i = 0; i < 2; i++) CHECK(mpqt_wait_ended(pids[i], 10000));   /* workers die with the server */
    CHECK_OK(mpq_pool_destroy(p));
}

/* The server killed while a submit waits for room in a full task queue:
   the submit returns (its task failed with -ECHILD), nothing hangs. */
static int kill_when_parent_sleeps(void *arg)
{
    if (!mpqt_wait_sleeping(getppid(), 10000)) return 1;
    return kill((pid_t)(intptr_t)arg, SIGKILL) == 0 ? 0 : 2;
}
static void test_pool_server_killed_submit_waiting(void)
{
    mpq_pool *p;
    mpq_future *f[4];
    mpq_process killer;
    int i, rc, v;
    size_t len;
    pipes();
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 1, .backlog = 2 }));
    CHECK_OK(mpq_pool_submit(p, t_block, NULL, 0, &f[0]));
    wait_told();                                   /* the worker is busy */
    for (i = 1; i < 3; i++) CHECK_OK(mpq_pool_submit(p, t_pid, NULL, 0, &f[i]));  /* queue full */
    CHECK_OK(mpq_process_start(&killer, kill_when_parent_sleeps, (void *)(intptr_t)p->server.pid));
    rc = mpq_pool_submit(p, t_pid, NULL, 0, &f[3]);
    CHECK(rc == 0 || rc == -ECHILD);
    CHECK_OK(mpq_process_join(&killer, 10000));
    CHECK_EQ(killer.exitcode, 0);
    for (i = 0; i < (rc == 0 ? 4 : 3); i++) {
        CHECK_ERR(mpq_future_get(f[i], &v, sizeof v, &len, 10000), ECHILD);
        mpq_future_free(f[i]);
    }
    CHECK_ERR(mpq_pool_submit(p, t_pid, NULL, 0, &f[0]), ECHILD);
    CHECK_OK(mpq_pool_destroy(p));
}

/* No worker can be forked (a process limit): create fails with -EAGAIN
   instead of waiting for ever. Needs root, to become a user with a limit. */
static int create_limited(void *arg)
{
    struct rlimit rl = { 2, 2 };   /* this process and the server: no worker */
    mpq_pool *p;
    (void)arg;
    if (setgid(65534) != 0 || setuid(65534) != 0 || setrlimit(RLIMIT_NPROC, &rl) != 0) return 100;
    return mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }) == -EAGAIN ? 0 : 1;
}
static void test_pool_fork_fails(void)
{
    MPQT_SKIP_UNDER_QEMU("qemu aborts in this fork (rcu_read_unlock assertion)");
    mpq_process c;
    if (geteuid() != 0) {
        printf("    (not root: cannot set a process limit on another user; not checked)\n");
        return;
    }
    CHECK_OK(mpq_process_start(&c, create_limited, NULL));
    CHECK_OK(mpq_process_join(&c, 20000));
    CHECK_EQ(c.exitcode, 0);
}

/* Results of odd lengths arrive many to a batch: each stays whole (and,
   under UBSan, is read aligned). */
static int odd_seen;
static void odd_result(void *user, const mpq_pool_result *r_)
{
    const void *res = r_->data;
    size_t len = r_->len;
    int i = (int)(intptr_t)user;
    char want[8];
    memset(want, 'a' + i % 26, sizeof want);
    if (len == (size_t)(i % 8) && memcmp(res, want, len) == 0) odd_seen++;
}
static void test_pool_odd_sizes(void)
{
    mpq_pool *p;
    char arg[8];
    int i;
    odd_seen = 0;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2, .max_result = 13 }));
    for (i = 0; i < 5000; i++) {
        memset(arg, 'a' + i % 26, sizeof arg);
        CHECK_OK(mpq_pool_apply_async(p, t_echo, arg, (size_t)(i % 8), odd_result, on_error, (void *)(intptr_t)i, NULL));
    }
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 10000));
    CHECK_EQ(odd_seen, 5000);
    CHECK_OK(mpq_pool_destroy(p));
}

/* Two threads terminate at once: when either returns, the cancellations
   have been reported. */
static mpq_pool *term_pool;
static void *term_thread(void *arg)
{
    (void)arg;
    if (mpq_pool_terminate(term_pool) != 0) return (void *)1;
    return __atomic_load_n(&cb_err, __ATOMIC_SEQ_CST) == 3 ? NULL : (void *)2;
}
static void test_pool_terminate_twice_at_once(void)
{
    pthread_t t[2];
    void *rv;
    int i;
    pipes();
    cb_ok = cb_err = 0;
    CHECK_OK(mpq_pool_create(&term_pool, &(mpq_pool_config){ .workers = 1 }));
    for (i = 0; i < 3; i++) CHECK_OK(mpq_pool_apply_async(term_pool, t_block, NULL, 0, on_result, on_error, NULL, NULL));
    wait_told();
    for (i = 0; i < 2; i++) CHECK_OK(-pthread_create(&t[i], NULL, term_thread, NULL));
    for (i = 0; i < 2; i++) {
        CHECK_OK(-pthread_join(t[i], &rv));
        CHECK(rv == NULL);
    }
    CHECK_OK(mpq_pool_destroy(term_pool));
}

/* terminate called again inside an error callback of the cancellation
   another thread's terminate asked for: that terminate still returns only
   after every cancellation was reported. The next callback watches for
   300 ms whether it returned too early. */
static int term_returned, term_early;
static void term_in_callback(void *user, const mpq_pool_result *r_)
{
    int error = r_->error;
    int n = __atomic_fetch_add(&cb_err, 1, __ATOMIC_SEQ_CST);
    (void)user;
    cb_last_err = error;
    if (n == 0) {
        mpq_pool_terminate(term_pool);
    } else if (n == 1) {
        int64_t end = mpqt_ms() + 300;
        while (mpqt_ms() < end && !__atomic_load_n(&term_returned, __ATOMIC_SEQ_CST)) {}
        term_early = __atomic_load_n(&term_returned, __ATOMIC_SEQ_CST);
    }
}
static void test_pool_terminate_in_callback(void)
{
    int i;
    pipes();
    cb_ok = cb_err = term_returned = term_early = 0;
    CHECK_OK(mpq_pool_create(&term_pool, &(mpq_pool_config){ .workers = 1 }));
    for (i = 0; i < 3; i++) CHECK_OK(mpq_pool_apply_async(term_pool, t_block, NULL, 0, on_result, term_in_callback, NULL, NULL));
    wait_told();
    CHECK_OK(mpq_pool_terminate(term_pool));
    __atomic_store_n(&term_returned, 1, __ATOMIC_SEQ_CST);
    CHECK_EQ(__atomic_load_n(&cb_err, __ATOMIC_SEQ_CST), 3);
    CHECK_EQ(term_early, 0);
    CHECK_EQ(cb_last_err, -ECANCELED);
    CHECK_OK(mpq_pool_destroy(term_pool));
}

/* The program killed: its server and workers go too. */
static int pool_owner(void *arg)
{
    mpq_pool *p;
    pid_t pids[3];
    int fd = (int)(intptr_t)arg;
    if (mpq_pool_create(&p, &(mpq_pool_config){ .workers = 2 }) != 0) return 1;
    pids[0] = p->server.pid;
    if (mpq_pool_workers(p, pids + 1, 2) != 2) return 2;
    if (write(fd, pids, sizeof pids) != (ssize_t)sizeof pids) return 3;
    for (;;) pause();
}
static void test_pool_owner_killed(void)
{
    mpq_process owner;
    pid_t pids[3];
    int fds[2], i;
    CHECK_OK(pipe(fds));
    CHECK_OK(mpq_process_start(&owner, pool_owner, (void *)(intptr_t)fds[1]));
    CHECK(mpqt_readable(fds[0], 10000) == 1);
    CHECK_EQ(read(fds[0], pids, sizeof pids), sizeof pids);
    CHECK_OK(mpq_process_kill(&owner, SIGKILL));
    CHECK_OK(mpq_process_join(&owner, 10000));
    for (i = 0; i < 3; i++) CHECK(mpqt_wait_ended(pids[i], 10000));   /* server, workers */
}

/* Callbacks may submit; waiting in one is refused. */
static mpq_pool *cb_pool;
static int cb_apply_rc, cb_join_rc, cb_destroy_rc;
static void resubmit(void *user, const mpq_pool_result *r_)
{
    const void *res = r_->data;
    size_t len = r_->len;
    int v = mpqt_get_int(res, len), w;
    size_t l;
    (void)user;
    if (v < 105) {
        CHECK_OK(mpq_pool_apply_async(cb_pool, t_add100, &v, sizeof v, resubmit, on_error, NULL, NULL));
        return;
    }
    cb_apply_rc = mpq_pool_apply(cb_pool, t_pid, NULL, 0, &w, sizeof w, &l);
    cb_join_rc = mpq_pool_join(cb_pool, 0);
    cb_destroy_rc = mpq_pool_destroy(cb_pool);
    __atomic_store_n(&cb_ok, 1, __ATOMIC_SEQ_CST);
}
static int t_plus1(const void *a, size_t n, void *r, size_t *rl) { return mpqt_put_int(r, rl, mpqt_get_int(a, n) + 1); }
static void test_pool_callback_submits(void)
{
    int v = 100;
    mpq_future *f;
    cb_ok = 0;
    CHECK_OK(mpq_pool_create(&cb_pool, &(mpq_pool_config){ .workers = 2 }));
    CHECK_OK(mpq_pool_apply_async(cb_pool, t_plus1, &v, sizeof v, resubmit, on_error, NULL, &f));
    CHECK_OK(mpq_future_wait(f, 10000));
    {   /* the chain of callbacks ends a few tasks later */
        int64_t end = mpqt_ms() + 10000;
        while (!__atomic_load_n(&cb_ok, __ATOMIC_SEQ_CST) && mpqt_ms() < end) mpqt_pause();
    }
    CHECK(__atomic_load_n(&cb_ok, __ATOMIC_SEQ_CST));
    mpq_future_free(f);
    CHECK_ERR(cb_apply_rc, EDEADLK);
    CHECK_ERR(cb_join_rc, EDEADLK);
    CHECK_ERR(cb_destroy_rc, EDEADLK);
    CHECK_OK(mpq_pool_destroy(cb_pool));
}

/* Threads submitting at once, each checking its own futures (TSan). */
static mpq_pool *thr_pool;
static void *thr_submit(void *arg)
{
    int base = (int)(intptr_t)arg * 10000, i;
    mpq_future *f[100];
    for (i = 0; i < 2000; i++) {
        int x = base + i, v = 0;
        if (mpq_pool_submit(thr_pool, t_add100, &x, sizeof x, &f[i % 100]) != 0) return (void *)1;
        if (i % 100 == 99) {
            int k;
            for (k = 0; k < 100; k++) {
                size_t len;
                if (mpq_future_get(f[k], &v, sizeof v, &len, 10000) != 0 || v != base + i - 99 + k + 100)
                    return (void *)2;
                mpq_future_free(f[k]);
            }
        }
    }
    return NULL;
}
static void test_pool_threads(void)
{
    pthread_t t[4];
    void *rv;
    int i;
    CHECK_OK(mpq_pool_create(&thr_pool, &(mpq_pool_config){ .workers = 2, .backlog = 64 }));
    for (i = 0; i < 4; i++) CHECK_OK(-pthread_create(&t[i], NULL, thr_submit, (void *)(intptr_t)i));
    for (i = 0; i < 4; i++) {
        CHECK_OK(-pthread_join(t[i], &rv));
        CHECK(rv == NULL);
    }
    CHECK_OK(mpq_pool_destroy(thr_pool));
}

static const mpqt_case cases[] = {
    MPQT(test_pool_python_example, 30, 1),
    MPQT(test_pool_apply_and_errors, 30, 0),
    MPQT(test_pool_map, 60, 1),
    MPQT(test_pool_futures, 30, 1),
    MPQT(test_pool_error_callback, 30, 1),
    MPQT(test_pool_worker_killed, 30, 1),
    MPQT(test_pool_crashing_tasks, 30, 0),
    MPQT(test_pool_max_tasks_per_child, 30, 0),
    MPQT(test_pool_initializer, 30, 0),
    MPQT(test_pool_close_join_terminate, 60, 1),
    MPQT(test_pool_no_zombies, 30, 0),
    MPQT(test_pool_no_leaks, 180, 0),
    MPQT(test_pool_kill_storm, 120, 0),
    MPQT(test_pool_server_killed, 30, 1),
    MPQT(test_pool_server_killed_submit_waiting, 30, 1),
    MPQT(test_pool_owner_killed, 30, 0),
    MPQT(test_pool_fork_fails, 30, 0),
    MPQT(test_pool_odd_sizes, 30, 1),
    MPQT(test_pool_terminate_twice_at_once, 30, 1),
    MPQT(test_pool_terminate_in_callback, 30, 1),
    MPQT(test_pool_callback_submits, 30, 1),
    MPQT(test_pool_threads, 60, 1),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
