/* Tests of the pool's newer half: async calls that never block (and
   terminate cancelling what waits in this process), imap and
   imap_unordered (order, exactly once, dead workers, lazy input in bounded
   memory, variable sizes, input errors, cancel, free), progress, task
   error messages, task ids, wait-until-idle and mpq_strerror. */
#define _GNU_SOURCE 1   /* mpq.h needs it, and system headers come first here */
#include <stdlib.h>
#include <sched.h>
/* Allocations may be slowed down (test_pool_close_races_submit): they sit
   in the gaps a race with close() would need. */
static int slow_malloc;
static void close_in_malloc(void);
static size_t close_at_size;
static void *test_malloc(size_t n)
{
    if (n == __atomic_load_n(&close_at_size, __ATOMIC_RELAXED)) {
        close_at_size = 0;
        close_in_malloc();
    }
    if (__atomic_load_n(&slow_malloc, __ATOMIC_RELAXED)) {
        volatile int k;
        for (k = 0; k < 20000; k++) {}
        sched_yield();
    }
    return malloc(n);
}
#define MPQ_MALLOC(n) test_malloc(n)
#define MPQ_FREE(ptr) free(ptr)
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"
#include <sys/resource.h>

/* --- tasks ------------------------------------------------------------- */


static int t_square(const void *a, size_t n, void *r, size_t *rl)
{
    unsigned x = (unsigned)mpqt_get_int(a, n);
    return mpqt_put_int(r, rl, (int)(x * x));   /* wraps for big items, as the checks expect */
}

/* Fails every multiple of 3 with a message. */
static int t_fail_msg(const void *a, size_t n, void *r, size_t *rl)
{
    int x = mpqt_get_int(a, n);
    if (x % 3 == 0) return mpq_pool_fail(-EDOM, "bad input %d", x);
    return mpqt_put_int(r, rl, x);
}

static int t_fail_bare(const void *a, size_t n, void *r, size_t *rl) { (void)a; (void)n; (void)r; (void)rl; return -EPERM; }

/* A message longer than any room: cut, never overflowing. */
static int t_fail_long(const void *a, size_t n, void *r, size_t *rl)
{
    (void)a; (void)n; (void)r; (void)rl;
    return mpq_pool_fail(-E2BIG, "%01000d", 7);
}

/* Dies at item 777. */
static int t_die_on_777(const void *a, size_t n, void *r, size_t *rl)
{
    if (mpqt_get_int(a, n) == 777) raise(SIGKILL);
    return t_square(a, n, r, rl);
}

/* Reverses its bytes; an item of 4000 bytes or more asks for more room
   than max_result has. */
static int t_reverse(const void *a, size_t n, void *r, size_t *rl)
{
    size_t k;
    if (n >= 4000) {
        *rl = *rl + 1;
        return 0;
    }
    for (k = 0; k < n; k++) ((unsigned char *)r)[k] = ((const unsigned char *)a)[n - 1 - k];
    *rl = n;
    return 0;
}

/* A gate in shared memory: gated tasks wait until it opens. */
static uint32_t *gate;
static int t_gated(const void *a, size_t n, void *r, size_t *rl)
{
    while (!__atomic_load_n(gate, __ATOMIC_SEQ_CST)) mpq__futex_wait(gate, 0, -1);
    return t_square(a, n, r, rl);
}
static void gate_open(void)
{
    __atomic_store_n(gate, 1, __ATOMIC_SEQ_CST);
    mpq__futex_wake(gate, INT_MAX);
}

static mpq_pool *make_pool(int workers, uint32_t max_result)
{
    mpq_pool *p = NULL;
    mpq_pool_config c;
    memset(&c, 0, sizeof c);
    c.workers = workers;
    c.max_result = max_result;
    CHECK_OK(mpq_pool_create(&p, &c));
    return p;
}

/* Callback counters (the result thread writes them). */
static int n_ok, n_err, n_cancel, last_err;
static uint64_t last_id;
static size_t last_index;
static char last_msg[2048];
static size_t last_len;
static void on_ok(void *user, const mpq_pool_result *r)
{
    (void)user;
    last_id = r->id;
    __atomic_fetch_add(&n_ok, 1, __ATOMIC_SEQ_CST);
}
static void on_err(void *user, const mpq_pool_result *r)
{
    (void)user;
    last_err = r->error;
    last_id = r->id;
    last_index = r->index;
    last_len = r->len;
    CHECK(r->data != NULL && ((const char *)r->data)[r->len] == 0);
    snprintf(last_msg, sizeof last_msg, "%s", (const char *)r->data);
    if (r->error == -ECANCELED) __atomic_fetch_add(&n_cancel, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&n_err, 1, __ATOMIC_SEQ_CST);
}

/* --- async calls never wait -------------------------------------------- */

/* The case: map_async of 10 000 slow one-item chunks on a
   3-worker pool returns at once (the task queue holds 1 024), and so do
   5 000 apply_async behind it; terminate then fails every one of them with
   -ECANCELED, those still waiting in this process included. */
static void test_pool_async_never_blocks(void)
{
    static int in[10000], out[10000];
    mpq_pool *p;
    mpq_future *f;
    size_t done = 1, total = 0;
    int i;
    gate = (uint32_t *)mpqt_shared(sizeof *gate);
    p = make_pool(3, 0);
    for (i = 0; i < 10000; i++) in[i] = i;
    n_err = n_cancel = 0;
    CHECK_OK(mpq_pool_map_async(p, t_gated, in, 10000, sizeof(int), out, sizeof(int), 1, on_ok, on_err,
                                NULL, &f));
    for (i = 0; i < 5000; i++) CHECK_OK(mpq_pool_apply_async(p, t_gated, &i, sizeof i, on_ok, on_err, NULL, NULL));
    CHECK(!mpq_future_ready(f));
    CHECK_EQ(mpq_future_progress(f, &done, &total), 0);
    CHECK_EQ(done, 0);
    CHECK_EQ(total, 10000);
    CHECK_OK(mpq_pool_terminate(p));
    /* Every outcome was reported before terminate returned. */
    CHECK_EQ(__atomic_load_n(&n_err, __ATOMIC_SEQ_CST), 5001);
    CHECK_EQ(__atomic_load_n(&n_cancel, __ATOMIC_SEQ_CST), 5001);
    CHECK_EQ(__atomic_load_n(&n_ok, __ATOMIC_SEQ_CST), 0);
    CHECK(mpq_future_ready(f));
    CHECK_ERR(mpq_future_get(f, NULL, 0, NULL, 0), ECANCELED);
    CHECK_EQ(mpq_future_progress(f, &done, &total), 1);
    CHECK_EQ(done, 10000);
    CHECK_OK(mpq_future_free(f));
    CHECK_OK(mpq_pool_destroy(p));
}

/* What waits in this process still runs after close, in order; join
   waits for it. */
static void test_pool_close_runs_waiting(void)
{
    static int in[5000], out[5000];
    mpq_pool *p;
    mpq_pool_config c;
    mpq_future *f, *g;
    int i, v = 0;
    size_t len;
    memset(&c, 0, sizeof c);
    c.workers = 2;
    c.backlog = 4;   /* a tiny task queue: almost all waits here */
    CHECK_OK(mpq_pool_create(&p, &c));
    for (i = 0; i < 5000; i++) in[i] = i;
    CHECK_OK(mpq_pool_map_async(p, t_square, in, 5000, sizeof(int), out, sizeof(int), 3, NULL, NULL, NULL, &f));
    i = 12;
    CHECK_OK(mpq_pool_submit(p, t_square, &i, sizeof i, &g));
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 60000));
    CHECK_OK(mpq_future_get(f, NULL, 0, NULL, 0));
    for (i = 0; i < 5000; i++) CHECK_EQ(out[i], i * i);
    CHECK_OK(mpq_future_get(g, &v, sizeof v, &len, 0));
    CHECK_EQ(v, 144);
    CHECK(mpq_future_id(g) == mpq_future_id(f) + 1);
    mpq_future_free(f);
    mpq_future_free(g);
    CHECK_OK(mpq_pool_destroy(p));
}

/* --- errors: messages, ids, strerror ----------------------------------------- */

static void test_pool_error_messages(void)
{
    static int in[100], out[100];
    mpq_pool *p = make_pool(2, 16);   /* messages get 255 bytes even so */
    mpq_future *f;
    char buf[64];
    size_t len = 0;
    int x, i;

    /* apply: the result buffer gets the message. */
    x = 3;
    CHECK_ERR(mpq_pool_apply(p, t_fail_msg, &x, sizeof x, buf, sizeof buf, &len), EDOM);
    CHECK(strcmp(buf, "bad input 3") == 0);
    CHECK_EQ(len, 11);
    /* The future: whole, or cut to fit and still terminated. */
    x = 6;
    CHECK_OK(mpq_pool_submit(p, t_fail_msg, &x, sizeof x, &f));
    CHECK_ERR(mpq_future_get(f, buf, sizeof buf, &len, -1), EDOM);
    CHECK(strcmp(buf, "bad input 6") == 0);
    CHECK_ERR(mpq_future_get(f, buf, 4, &len, -1), EDOM);
    CHECK(strcmp(buf, "bad") == 0);
    CHECK_EQ(len, 11);
    CHECK_EQ(mpq_future_successful(f), 0);
    mpq_future_free(f);
    /* The error callback: message, id. */
    x = 9;
    n_err = 0;
    CHECK_OK(mpq_pool_apply_async(p, t_fail_msg, &x, sizeof x, on_ok, on_err, NULL, &f));
    CHECK_OK(mpq_future_wait(f, -1));
    CHECK_OK(mpq_pool_wait(p, 10000));   /* the callback ran */
    CHECK_EQ(last_err, -EDOM);
    CHECK(strcmp(last_msg, "bad input 9") == 0);
    CHECK_EQ(last_len, 11);
    CHECK(last_id == mpq_future_id(f));
    mpq_future_free(f);
    /* No message: empty, NUL-terminated. */
    CHECK_OK(mpq_pool_apply_async(p, t_fail_bare, NULL, 0, on_ok, on_err, NULL, NULL));
    CHECK_OK(mpq_pool_wait(p, 10000));
    CHECK_EQ(last_err, -EPERM);
    CHECK_EQ(last_len, 0);
    CHECK(last_msg[0] == 0);
    /* A message longer than the room is cut to 255 bytes (max_result 16). */
    CHECK_OK(mpq_pool_apply_async(p, t_fail_long, NULL, 0, on_ok, on_err, NULL, NULL));
    CHECK_OK(mpq_pool_wait(p, 10000));
    CHECK_EQ(last_err, -E2BIG);
    CHECK_EQ(last_len, 255);
    CHECK_EQ(strlen(last_msg), 255);
    /* map: the failed item and its message. */
    for (i = 0; i < 100; i++) in[i] = i + 1;   /* 3 fails first, at index 2 */
    CHECK_ERR(mpq_pool_map(p, t_fail_msg, in, 100, sizeof(int), out, sizeof(int), 1), EDOM);
    n_err = 0;
    CHECK_OK(mpq_pool_map_async(p, t_fail_msg, in, 2, sizeof(int), out, sizeof(int), 0, on_ok, on_err, NULL, NULL));
    CHECK_OK(mpq_pool_wait(p, 10000));
    CHECK_EQ(n_err, 0);   /* items 1 and 2 pass */
    in[0] = 1; in[1] = 2; in[2] = 4; in[3] = 5; in[4] = 30;
    CHECK_OK(mpq_pool_map_async(p, t_fail_msg, in, 5, sizeof(int), out, sizeof(int), 5, on_ok, on_err, NULL, NULL));
    CHECK_OK(mpq_pool_wait(p, 10000));
    CHECK_EQ(n_err, 1);
    CHECK_EQ(last_index, 4);
    CHECK(strcmp(last_msg, "bad input 30") == 0);
    /* Outside a task it only returns the error. */
    CHECK_EQ(mpq_pool_fail(-EINVAL, "nothing %d", 1), -EINVAL);
    CHECK_OK(mpq_pool_destroy(p));
}

static void test_pool_ids_and_progress(void)
{
    static int in[3000], out[3000];
    mpq_pool *p = make_pool(2, 0);
    mpq_future *f[4];
    size_t done, total, last = 0;
    int x = 5, i, r;
    CHECK_OK(mpq_pool_submit(p, t_square, &x, sizeof x, &f[0]));
    CHECK_OK(mpq_pool_apply_async(p, t_square, &x, sizeof x, on_ok, NULL, NULL, &f[1]));
    for (i = 0; i < 3000; i++) in[i] = i;
    CHECK_OK(mpq_pool_map_async(p, t_square, in, 3000, sizeof(int), out, sizeof(int), 7, NULL, NULL, NULL, &f[2]));
    CHECK_OK(mpq_pool_submit(p, t_square, &x, sizeof x, &f[3]));
    for (i = 1; i < 4; i++) CHECK(mpq_future_id(f[i]) == mpq_future_id(f[i - 1]) + 1);
    CHECK(mpq_future_id(f[0]) >= 1);
    CHECK(mpq_future_id(NULL) == 0);
    /* Progress only grows and ends at n. */
    do {
        r = mpq_future_progress(f[2], &done, &total);
        CHECK(r == 0 || r == 1);
        CHECK_EQ(total, 3000);
        CHECK(done >= last && done <= 3000);
        last = done;
    } while (r == 0);
    CHECK_EQ(done, 3000);
    CHECK_OK(mpq_future_wait(f[1], -1));
    CHECK_OK(mpq_pool_wait(p, 10000));
    CHECK(last_id == mpq_future_id(f[1]));
    CHECK_EQ(mpq_future_progress(f[0], &done, &total), 1);
    CHECK_EQ(done, 1);
    CHECK_EQ(total, 1);
    for (i = 0; i < 4; i++) mpq_future_free(f[i]);
    CHECK_ERR(mpq_future_progress(NULL, &done, &total), EINVAL);
    CHECK_OK(mpq_pool_destroy(p));
}

static void test_strerror(void)
{
    int k;
    CHECK(strcmp(mpq_strerror(0), "success") == 0);
    CHECK(strcmp(mpq_strerror(-ENOENT), strerror(ENOENT)) == 0);
    CHECK(strcmp(mpq_strerror(-EOWNERDEAD), strerror(EOWNERDEAD)) == 0);
    CHECK(strcmp(mpq_strerror(MPQ_POOL_KILLED(9)), "worker killed by signal 9") == 0);
    CHECK(strcmp(mpq_strerror(MPQ_POOL_EXITED(3)), "worker exited with status 3") == 0);
    CHECK(strcmp(mpq_strerror(MPQ_POOL_EXITED(0)), "worker exited with status 0") == 0);
    CHECK(strcmp(mpq_strerror(12345), "unknown error") == 0);
    CHECK(strcmp(mpq_strerror(-100000), "unknown error") == 0);
    for (k = 1; k <= 64; k++) CHECK(strstr(mpq_strerror(MPQ_POOL_KILLED(k)), "killed by signal") != NULL);
    for (k = 0; k < 256; k++) CHECK(strstr(mpq_strerror(MPQ_POOL_EXITED(k)), "exited with status") != NULL);
    for (k = 1; k < 134; k++) CHECK(mpq_strerror(-k) != NULL && mpq_strerror(-k)[0] != 0);
}

/* --- waiting for idle ------------------------------------------------------ */

static mpq_pool *cb_pool;
static int cb_wait_rc = 1;
static void wait_in_callback(void *user, const mpq_pool_result *r)
{
    (void)user; (void)r;
    cb_wait_rc = mpq_pool_wait(cb_pool, -1);
}

static void test_pool_wait_idle(void)
{
    mpq_pool *p;
    int i, v = 0;
    size_t len;
    gate = (uint32_t *)mpqt_shared(sizeof *gate);
    p = make_pool(2, 0);
    for (i = 0; i < 50; i++) CHECK_OK(mpq_pool_apply_async(p, t_gated, &i, sizeof i, NULL, NULL, NULL, NULL));
    CHECK_ERR(mpq_pool_wait(p, 0), EAGAIN);
    CHECK_ERR(mpq_pool_wait(p, 50), ETIMEDOUT);
    gate_open();
    CHECK_OK(mpq_pool_wait(p, 30000));
    CHECK_OK(mpq_pool_wait(p, 0));   /* idle: at once */
    /* Still open for more. */
    i = 7;
    CHECK_OK(mpq_pool_apply(p, t_square, &i, sizeof i, &v, sizeof v, &len));
    CHECK_EQ(v, 49);
    cb_pool = p;
    CHECK_OK(mpq_pool_apply_async(p, t_square, &i, sizeof i, wait_in_callback, NULL, NULL, NULL));
    CHECK_OK(mpq_pool_wait(p, 30000));
    CHECK_ERR(cb_wait_rc, EDEADLK);
    CHECK_ERR(mpq_pool_wait(NULL, 0), EINVAL);
    CHECK_OK(mpq_pool_destroy(p));
}

/* --- imap ------------------------------------------------------------------ */

static int src_int(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    int v = (int)index;
    size_t n = *(size_t *)user;
    if (index >= n) return 0;
    if (cap < sizeof v) return -ENOSPC;
    memcpy(item, &v, sizeof v);
    *len = sizeof v;
    return 1;
}

/* imap over n items (from a source or an array), checked one by one. */
static void run_imap(mpq_pool *p, size_t n, size_t chunk, int unordered, int array)
{
    int *items = NULL;
    unsigned char *seen = (unsigned char *)calloc(n ? n : 1, 1);
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    size_t k = 0, i, done, total, last_done = 0;
    int rc;
    memset(&c, 0, sizeof c);
    if (array) {
        items = (int *)malloc((n ? n : 1) * sizeof *items);
        for (i = 0; i < n; i++) items[i] = (int)i;
        c.items = items;
        c.n = n;
        c.item_size = sizeof(int);
    } else {
        c.source = src_int;
        c.source_user = &n;
    }
    c.chunksize = chunk;
    c.unordered = unordered;
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &it));
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {
        int v;
        CHECK_EQ(r.error, 0);
        CHECK(r.index < n);
        if (!unordered) CHECK_EQ(r.index, k);
        CHECK_EQ(seen[r.index], 0);
        seen[r.index] = 1;
        CHECK_EQ(r.len, sizeof v);
        memcpy(&v, r.data, sizeof v);
        CHECK_EQ(v, (int)(unsigned)(r.index * r.index));
        k++;
        if (k % 1000 == 0) {
            CHECK(mpq_imap_progress(it, &done, &total) >= 0);
            CHECK(done >= last_done && done >= k && done <= total && total <= n);
            last_done = done;
        }
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, n);
    CHECK_EQ(mpq_imap_next(it, &r, 0), 0);   /* the end stays the end */
    CHECK_EQ(mpq_imap_progress(it, &done, &total), 1);
    CHECK_EQ(done, n);
    CHECK_EQ(total, n);
    CHECK_OK(mpq_imap_free(it));
    free(seen);
    free(items);
}

static void test_imap_ordered(void)
{
    mpq_pool *p = make_pool(3, 0);
    run_imap(p, 100000, 1, 0, 0);
    run_imap(p, 100000, 100, 0, 1);
    run_imap(p, 0, 1, 0, 0);
    run_imap(p, 0, 1, 0, 1);
    run_imap(p, 1, 7, 0, 0);
    CHECK_OK(mpq_pool_destroy(p));
}

static void test_imap_unordered(void)
{
    mpq_pool *p = make_pool(3, 0);
    run_imap(p, 100000, 1, 1, 1);
    run_imap(p, 100000, 100, 1, 0);
    run_imap(p, 0, 1, 1, 0);
    CHECK_OK(mpq_pool_destroy(p));
}

/* A worker SIGKILLed at item 777: that item (with its chunk's others)
   fails with MPQ_POOL_KILLED(SIGKILL); every other item arrives. */
static void imap_dead_worker(size_t chunk, int unordered)
{
    mpq_pool *p = make_pool(3, 0);
    size_t n = 100000, k = 0, lo = 777 / chunk * chunk;
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    unsigned char *seen = (unsigned char *)calloc(n, 1);
    int rc, failed = 0;
    memset(&c, 0, sizeof c);
    c.source = src_int;
    c.source_user = &n;
    c.chunksize = chunk;
    c.unordered = unordered;
    CHECK_OK(mpq_pool_imap(p, t_die_on_777, &c, &it));
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {
        CHECK(r.index < n);
        CHECK_EQ(seen[r.index], 0);
        seen[r.index] = 1;
        if (!unordered) CHECK_EQ(r.index, k);
        if (r.index >= lo && r.index < lo + chunk) {
            CHECK_EQ(r.error, MPQ_POOL_KILLED(SIGKILL));
            failed++;
        } else {
            int v;
            CHECK_EQ(r.error, 0);
            memcpy(&v, r.data, sizeof v);
            CHECK_EQ(v, (int)(unsigned)(r.index * r.index));
        }
        k++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, n);
    CHECK_EQ(failed, (int)chunk);
    CHECK_OK(mpq_imap_free(it));
    free(seen);
    CHECK_OK(mpq_pool_destroy(p));
}

static void test_imap_worker_killed(void)
{
    imap_dead_worker(1, 0);
    imap_dead_worker(10, 0);
    imap_dead_worker(1, 1);
}

/* Workers SIGKILLed from outside while an unordered imap runs: every item
   is handed back exactly once, a success or the death of its worker. */
static void test_imap_kill_storm(void)
{
    mpq_pool *p = make_pool(3, 0);
    size_t n = 200000, k = 0;
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    unsigned char *seen = (unsigned char *)calloc(n, 1);
    int rc, kills = 0, died = 0;
    memset(&c, 0, sizeof c);
    c.source = src_int;
    c.source_user = &n;
    c.chunksize = 10;
    c.unordered = 1;
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &it));
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {
        CHECK(r.index < n);
        CHECK_EQ(seen[r.index], 0);
        seen[r.index] = 1;
        if (r.error) {
            CHECK_EQ(r.error, MPQ_POOL_KILLED(SIGKILL));
            died++;
        }
        if (++k % 5000 == 0 && kills < 30) {
            pid_t pids[3];
            int m = mpq_pool_workers(p, pids, 3);
            if (m > 0) {
                kill(pids[k / 5000 % (size_t)m], SIGKILL);
                kills++;
            }
        }
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, n);
    printf("    %d kills, %d items failed\n", kills, died);
    CHECK_OK(mpq_imap_free(it));
    free(seen);
    CHECK_OK(mpq_pool_destroy(p));
}

/* An input far larger than memory streams through in bounded memory: the
   source never runs more than `window` items ahead of the reader. */
#define BIG_ITEM 4096
static size_t big_read, big_ahead;
static int src_big(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    size_t n = *(size_t *)user, ahead = index - __atomic_load_n(&big_read, __ATOMIC_SEQ_CST);
    if (index >= n) return 0;
    if (ahead > big_ahead) big_ahead = ahead;
    if (cap < BIG_ITEM) return -ENOSPC;
    memset(item, (int)(index & 0xff), BIG_ITEM);
    memcpy(item, &index, sizeof index);
    *len = BIG_ITEM;
    return 1;
}
static int t_sum(const void *a, size_t n, void *r, size_t *rl)
{
    const unsigned char *b = (const unsigned char *)a;
    size_t k, s = 0;
    for (k = sizeof(size_t); k < n; k++) s += b[k];
    memcpy(r, a, sizeof(size_t));
    memcpy((char *)r + sizeof(size_t), &s, sizeof s);
    *rl = 2 * sizeof(size_t);
    return 0;
}
static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}
static void test_imap_lazy_bounded(void)
{
    mpq_pool *p;
    mpq_pool_config pc;
    size_t n = 200000, k = 0;   /* 800 MB of input */
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    long rss0, rss_max = 0;
    int rc;
    memset(&pc, 0, sizeof pc);
    pc.workers = 2;
    pc.max_arg = 2 * BIG_ITEM;
    CHECK_OK(mpq_pool_create(&p, &pc));
    rss0 = rss_kib();
    memset(&c, 0, sizeof c);
    c.source = src_big;
    c.source_user = &n;
    c.chunksize = 4;
    c.window = 256;
    CHECK_OK(mpq_pool_imap(p, t_sum, &c, &it));
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {
        size_t idx, s;
        CHECK_EQ(r.error, 0);
        CHECK_EQ(r.index, k);
        memcpy(&idx, r.data, sizeof idx);
        memcpy(&s, (const char *)r.data + sizeof idx, sizeof s);
        CHECK_EQ(idx, k);
        CHECK_EQ(s, (k & 0xff) * (BIG_ITEM - sizeof(size_t)));
        __atomic_store_n(&big_read, ++k, __ATOMIC_SEQ_CST);
        if (k % 10000 == 0) {
            long now = rss_kib();
            if (now > rss_max) rss_max = now;
        }
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, n);
    printf("    source at most %zu items ahead; RSS %ld KiB at start, %ld KiB at most\n", big_ahead, rss0, rss_max);
    CHECK(big_ahead <= 256);
    if (!MPQT_ASAN) CHECK(rss_max - rss0 < 64 * 1024);   /* 800 MB went through */
    CHECK_OK(mpq_imap_free(it));
    CHECK_OK(mpq_pool_destroy(p));
}

/* Items of 0 to 3 999 bytes, results as long, packed many to a chunk (so
   that one chunk's results need several messages); items of 4 000 bytes
   and more fail alone with -EMSGSIZE. */
static int src_var(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    size_t l = index * 37 % 4096;
    (void)user;
    if (index >= 3000) return 0;
    if (l > cap) return -ENOSPC;
    memset(item, (int)(index & 0xff), l);
    if (l) ((unsigned char *)item)[0] = 0xee;
    *len = l;
    return 1;
}
static void test_imap_variable_sizes(void)
{
    mpq_pool *p = make_pool(2, 4096);
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    size_t k = 0, big = 0;
    int rc;
    memset(&c, 0, sizeof c);
    c.source = src_var;
    c.chunksize = 50;
    CHECK_OK(mpq_pool_imap(p, t_reverse, &c, &it));
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {
        size_t l = k * 37 % 4096, j;
        const unsigned char *b = (const unsigned char *)r.data;
        CHECK_EQ(r.index, k);
        if (l >= 4000) {
            CHECK_EQ(r.error, -EMSGSIZE);
            big++;
        } else {
            CHECK_EQ(r.error, 0);
            CHECK_EQ(r.len, l);
            for (j = 0; j + 1 < l; j++) CHECK_EQ(b[j], k & 0xff);
            if (l) CHECK_EQ(b[l - 1], 0xee);
        }
        k++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, 3000);
    CHECK(big > 0);
    CHECK_OK(mpq_imap_free(it));
    CHECK_OK(mpq_pool_destroy(p));
}

/* The input's own error: every item before it, then it, then the end. */
static int src_fails_at_500(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    size_t n = 100000;
    if (index == 500) return -EIO;
    return src_int(&n, index, item, cap, len) + 0 * (int)(uintptr_t)user;
}
static void test_imap_source_error(void)
{
    mpq_pool *p = make_pool(2, 0);
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    size_t k = 0;
    int rc, u;
    for (u = 0; u < 2; u++) {
        memset(&c, 0, sizeof c);
        c.source = src_fails_at_500;
        c.chunksize = 3;
        c.unordered = u;
        k = 0;
        CHECK_OK(mpq_pool_imap(p, t_square, &c, &it));
        while ((rc = mpq_imap_next(it, &r, 30000)) == 1 && r.error == 0) k++;
        CHECK_EQ(rc, 1);
        CHECK_EQ(k, 500);
        CHECK_EQ(r.error, -EIO);
        CHECK_EQ(r.index, 500);
        CHECK_EQ(mpq_imap_next(it, &r, 30000), 0);
        CHECK_OK(mpq_imap_free(it));
    }
    CHECK_OK(mpq_pool_destroy(p));
}

/* terminate: every item read from the input ends (-ECANCELED unless it
   had finished), then the end; nothing hangs. */
static void test_imap_terminate(void)
{
    mpq_pool *p;
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    size_t n = 1000000, k = 0, done, total;
    int rc, cancelled = 0;
    gate = (uint32_t *)mpqt_shared(sizeof *gate);
    p = make_pool(2, 0);
    memset(&c, 0, sizeof c);
    c.source = src_int;
    c.source_user = &n;
    c.chunksize = 3;
    c.window = 50;
    CHECK_OK(mpq_pool_imap(p, t_gated, &c, &it));
    CHECK_ERR(mpq_imap_next(it, &r, 20), ETIMEDOUT);
    CHECK_ERR(mpq_imap_next(it, &r, 0), EAGAIN);
    CHECK_OK(mpq_pool_terminate(p));
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {
        CHECK_EQ(r.index, k);
        CHECK_EQ(r.error, -ECANCELED);
        cancelled++;
        k++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(mpq_imap_progress(it, &done, &total), 1);
    CHECK_EQ(total, k);
    CHECK(k >= 1 && k <= 50);
    CHECK_OK(mpq_pool_destroy(p));
    CHECK_EQ(mpq_imap_next(it, &r, 0), -EINVAL);   /* the pool is gone */
    CHECK_OK(mpq_imap_free(it));                    /* after destroy: frees */
    (void)cancelled;
}

/* Freed half-way: the input stops being read, the pool goes on, and
   close + join do not wait for it. */
static size_t freed_reads;
static int src_count(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    __atomic_fetch_add(&freed_reads, 1, __ATOMIC_SEQ_CST);
    return src_int(user, index, item, cap, len);
}
static void test_imap_free_early(void)
{
    mpq_pool *p = make_pool(2, 0);
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    size_t n = 1000000;
    int i, v = 0;
    size_t len;
    memset(&c, 0, sizeof c);
    c.source = src_count;
    c.source_user = &n;
    c.window = 100;
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &it));
    for (i = 0; i < 10; i++) CHECK_EQ(mpq_imap_next(it, &r, 30000), 1);
    CHECK_OK(mpq_imap_free(it));
    i = 3;
    CHECK_OK(mpq_pool_apply(p, t_square, &i, sizeof i, &v, sizeof v, &len));
    CHECK_EQ(v, 9);
    CHECK_OK(mpq_pool_wait(p, 30000));
    CHECK(__atomic_load_n(&freed_reads, __ATOMIC_SEQ_CST) <= 111);
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 30000));
    CHECK_OK(mpq_pool_destroy(p));
}

/* An imap nobody reads (its window full) holds up neither another imap
   nor plain tasks; it resumes when read. */
static void test_imap_stalled_passes(void)
{
    mpq_pool *p = make_pool(2, 0);
    mpq_imap *a, *b;
    mpq_imap_config c;
    mpq_pool_result r;
    size_t na = 5000, nb = 20000, k;
    int i, v = 0, rc;
    size_t len;
    memset(&c, 0, sizeof c);
    c.source = src_int;
    c.source_user = &na;
    c.window = 16;
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &a));
    c.source_user = &nb;
    c.window = 0;
    c.chunksize = 10;
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &b));
    for (k = 0; (rc = mpq_imap_next(b, &r, 30000)) == 1; k++) CHECK_EQ(r.index, k);
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, nb);
    for (i = 0; i < 100; i++) {
        CHECK_OK(mpq_pool_apply(p, t_square, &i, sizeof i, &v, sizeof v, &len));
        CHECK_EQ(v, i * i);
    }
    CHECK_ERR(mpq_pool_wait(p, 0), EAGAIN);   /* a's input is not read to the end */
    for (k = 0; (rc = mpq_imap_next(a, &r, 30000)) == 1; k++) CHECK_EQ(r.index, k);
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, na);
    CHECK_OK(mpq_pool_wait(p, 30000));
    CHECK_OK(mpq_imap_free(a));
    CHECK_OK(mpq_imap_free(b));
    /* close while an imap runs: it still runs to the end. */
    c.source_user = &na;
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &a));
    CHECK_OK(mpq_pool_close(p));
    for (k = 0; (rc = mpq_imap_next(a, &r, 30000)) == 1; k++) CHECK_EQ(r.error, 0);
    CHECK_EQ(k, na);
    CHECK_OK(mpq_pool_join(p, 30000));
    CHECK_OK(mpq_imap_free(a));
    CHECK_OK(mpq_pool_destroy(p));
}

static void test_imap_bad_input(void)
{
    mpq_pool *p = make_pool(1, 0);
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    int x = 1;
    size_t n = 3;
    memset(&c, 0, sizeof c);
    CHECK_ERR(mpq_pool_imap(p, t_square, &c, &it), EINVAL);          /* no input */
    c.source = src_int;
    c.items = &x;
    CHECK_ERR(mpq_pool_imap(p, t_square, &c, &it), EINVAL);          /* two */
    c.source = NULL;
    c.n = 1;
    CHECK_ERR(mpq_pool_imap(p, t_square, &c, &it), EINVAL);          /* item_size 0 */
    c.item_size = 5000;
    CHECK_ERR(mpq_pool_imap(p, t_square, &c, &it), EMSGSIZE);
    c.item_size = sizeof x;
    CHECK_ERR(mpq_pool_imap(NULL, t_square, &c, &it), EINVAL);
    CHECK_ERR(mpq_pool_imap(p, NULL, &c, &it), EINVAL);
    CHECK_ERR(mpq_pool_imap(p, t_square, NULL, &it), EINVAL);
    CHECK_ERR(mpq_pool_imap(p, t_square, &c, NULL), EINVAL);
    CHECK_ERR(mpq_imap_next(NULL, &r, 0), EINVAL);
    CHECK_ERR(mpq_imap_progress(NULL, &n, &n), EINVAL);
    CHECK_ERR(mpq_imap_free(NULL), EINVAL);
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &it));
    CHECK_ERR(mpq_imap_next(it, NULL, 0), EINVAL);
    CHECK_OK(mpq_imap_free(it));
    CHECK_OK(mpq_pool_close(p));
    CHECK_ERR(mpq_pool_imap(p, t_square, &c, &it), EPIPE);
    CHECK_OK(mpq_pool_join(p, 30000));
    CHECK_OK(mpq_pool_destroy(p));
}

/* Threads submitting everything at once, with imaps: all outcomes once. */
static mpq_pool *mt_pool;
static void *mt_worker(void *arg)
{
    int t = (int)(intptr_t)arg, i, v = 0;
    size_t len, n = 2000, k = 0;
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    for (i = 0; i < 200; i++) {
        int x = t * 1000 + i;
        CHECK_OK(mpq_pool_apply(mt_pool, t_square, &x, sizeof x, &v, sizeof v, &len));
        CHECK_EQ(v, x * x);
    }
    memset(&c, 0, sizeof c);
    c.source = src_int;
    c.source_user = &n;
    c.unordered = t & 1;
    CHECK_OK(mpq_pool_imap(mt_pool, t_square, &c, &it));
    while (mpq_imap_next(it, &r, 30000) == 1) {
        CHECK_EQ(r.error, 0);
        k++;
    }
    CHECK_EQ(k, n);
    mpq_imap_free(it);
    return NULL;
}
static void test_imap_threads(void)
{
    pthread_t th[4];
    int i;
    mt_pool = make_pool(2, 0);
    for (i = 0; i < 4; i++) CHECK_OK(-pthread_create(&th[i], NULL, mt_worker, (void *)(intptr_t)i));
    for (i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK_OK(mpq_pool_destroy(mt_pool));
}

/* Workers are named PoolWorker-<slot>, in the API and in /proc. */
static int t_name(const void *a, size_t n, void *r, size_t *rl)
{
    char comm[32] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    (void)a; (void)n;
    if (f) {
        if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
        fclose(f);
    }
    comm[strcspn(comm, "\n")] = 0;
    if (strcmp(comm, mpq_current_process_name()) != 0) return -EPROTO;
    *rl = strlen(comm) + 1;
    memcpy(r, comm, *rl);
    return 0;
}
static void test_pool_worker_names(void)
{
    mpq_pool *p = make_pool(2, 0);
    char name[32];
    size_t len;
    int i, seen1 = 0, seen2 = 0;
    for (i = 0; i < 200 && !(seen1 && seen2); i++) {
        CHECK_OK(mpq_pool_apply(p, t_name, NULL, 0, name, sizeof name, &len));
        seen1 |= strcmp(name, "PoolWorker-1") == 0;
        seen2 |= strcmp(name, "PoolWorker-2") == 0;
        CHECK(strncmp(name, "PoolWorker-", 11) == 0);
    }
    CHECK(seen1 || seen2);
    CHECK(strcmp(mpq_current_process_name(), "MainProcess") == 0);
    CHECK_OK(mpq_pool_destroy(p));
}

/* close() from another thread while submissions race in: everything
   accepted (0 returned) is reported exactly once, and join ends. */
static mpq_pool *race_pool;
static int race_accepted, race_reported, race_go;
static void race_cb(void *user, const mpq_pool_result *r)
{
    (void)user; (void)r;
    __atomic_fetch_add(&race_reported, 1, __ATOMIC_SEQ_CST);
}
static void *race_submit(void *arg)
{
    static int in[64], out[64];
    int i = 0, rc;
    (void)arg;
    for (;;) {
        if (i++ % 8 == 0)
            rc = mpq_pool_map_async(race_pool, t_square, in, 64, sizeof(int), out, sizeof(int), 1, race_cb, race_cb,
                                    NULL, NULL);
        else
            rc = mpq_pool_apply_async(race_pool, t_square, &i, sizeof i, race_cb, race_cb, NULL, NULL);
        if (rc != 0) break;
        __atomic_fetch_add(&race_accepted, 1, __ATOMIC_SEQ_CST);
        if (i == 40) __atomic_store_n(&race_go, 1, __ATOMIC_SEQ_CST);
    }
    CHECK_ERR(rc, EPIPE);
    return NULL;
}
static void test_pool_close_races_submit(void)
{
    int round;
    for (round = 0; round < 30; round++) {
        pthread_t th[2];
        mpq_pool_config c;
        int k;
        memset(&c, 0, sizeof c);
        c.workers = 1;
        c.backlog = 2;
        CHECK_OK(mpq_pool_create(&race_pool, &c));
        race_accepted = race_reported = race_go = 0;
        __atomic_store_n(&slow_malloc, 1, __ATOMIC_RELAXED);
        for (k = 0; k < 2; k++) CHECK_OK(-pthread_create(&th[k], NULL, race_submit, NULL));
        while (!__atomic_load_n(&race_go, __ATOMIC_SEQ_CST)) sched_yield();
        CHECK_OK(mpq_pool_close(race_pool));
        for (k = 0; k < 2; k++) pthread_join(th[k], NULL);
        __atomic_store_n(&slow_malloc, 0, __ATOMIC_RELAXED);
        CHECK_OK(mpq_pool_join(race_pool, 30000));
        CHECK_EQ(__atomic_load_n(&race_reported, __ATOMIC_SEQ_CST), __atomic_load_n(&race_accepted, __ATOMIC_SEQ_CST));
        CHECK_OK(mpq_pool_destroy(race_pool));
    }
}

/* The same race, made certain: close() and the queue's last job sent run
   inside the allocation of a submission that is about to wait in the
   process. Its task must still run (a task queue shut before it would
   fail it). */
static void close_in_malloc(void)
{
    int64_t end;
    int closed = 0;
    CHECK_OK(mpq_pool_close(race_pool));
    gate_open();   /* the worker drains, the feeder sends what waited */
    end = mpqt_ms() + 1000;
    while (!closed && mpqt_ms() < end) {   /* fixed code: never, so give up */
        pthread_mutex_lock(&race_pool->lock);
        closed = race_pool->tasks_closed;
        pthread_mutex_unlock(&race_pool->lock);
        sched_yield();
    }
}
static void test_pool_close_in_submit_window(void)
{
    mpq_pool_config c;
    mpq_future *f[4];
    int i, v;
    size_t len;
    gate = (uint32_t *)mpqt_shared(sizeof *gate);
    memset(&c, 0, sizeof c);
    c.workers = 1;
    c.backlog = 1;
    CHECK_OK(mpq_pool_create(&race_pool, &c));
    for (i = 0; i < 3; i++) CHECK_OK(mpq_pool_submit(race_pool, t_gated, &i, sizeof i, &f[i]));
    /* One runs, one fills the queue, one waits here: the next waits too. */
    i = 4;
    __atomic_store_n(&close_at_size, sizeof(mpq__pjob) + sizeof i, __ATOMIC_RELAXED);
    CHECK_OK(mpq_pool_submit(race_pool, t_gated, &i, sizeof i, &f[3]));
    CHECK_EQ(close_at_size, 0);   /* the hook ran */
    CHECK_OK(mpq_pool_join(race_pool, 30000));
    for (i = 0; i < 4; i++) {
        CHECK_OK(mpq_future_get(f[i], &v, sizeof v, &len, 0));
        CHECK_EQ(v, i == 3 ? 16 : i * i);
        mpq_future_free(f[i]);
    }
    CHECK_OK(mpq_pool_destroy(race_pool));
}

/* --- the input function, the feeder and halts ------------------------------ */

/* A source that waits for a task submitted before the imap (a pipeline):
   terminate, and a killed server, still end everything. */
static mpq_future *before;
static int src_waits_before(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    int v = (int)index, rc;
    (void)user; (void)cap;
    if (index == 3) {   /* blocks until the gated task ends: terminate ends it */
        rc = mpq_future_wait(before, -1);
        if (rc != 0) return rc;
    }
    memcpy(item, &v, sizeof v);
    *len = sizeof v;
    return 1;
}
static void source_waits(int kill_server)
{
    mpq_pool *p;
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    int x = 5, rc;
    gate = (uint32_t *)mpqt_shared(sizeof *gate);
    p = make_pool(2, 0);
    CHECK_OK(mpq_pool_submit(p, t_gated, &x, sizeof x, &before));
    memset(&c, 0, sizeof c);
    c.source = src_waits_before;
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &it));
    CHECK_EQ(mpq_imap_next(it, &r, 30000), 1);   /* items 0..2 run */
    if (kill_server) {
        pid_t w[2];
        CHECK(mpq_pool_workers(p, w, 2) >= 1);
        CHECK_OK(kill(p->server.pid, SIGKILL));
        CHECK_OK(mpq_future_wait(before, 30000));
        CHECK_ERR(mpq_future_get(before, NULL, 0, NULL, 0), ECHILD);
    } else {
        CHECK_OK(mpq_pool_terminate(p));
        CHECK_ERR(mpq_future_get(before, NULL, 0, NULL, 0), ECANCELED);
    }
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {}
    CHECK_EQ(rc, 0);
    mpq_future_free(before);
    CHECK_OK(mpq_imap_free(it));
    CHECK_OK(mpq_pool_destroy(p));
}
static void test_imap_source_waits_terminate(void) { source_waits(0); }
static void test_imap_source_waits_server_killed(void) { source_waits(1); }

/* Waiting calls from the input function are refused, not hung. */
static mpq_pool *src_pool;
static int src_rcs[8];
static int src_calls_pool(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    int v = 3, r = 0;
    size_t l;
    mpq_pool_result res;
    (void)user; (void)cap;
    if (index == 0) {
        src_rcs[0] = mpq_pool_apply(src_pool, t_square, &v, sizeof v, &r, sizeof r, &l);
        src_rcs[1] = mpq_pool_map(src_pool, t_square, &v, 1, sizeof v, &r, sizeof r, 0);
        src_rcs[2] = mpq_pool_wait(src_pool, -1);
        src_rcs[3] = mpq_pool_join(src_pool, -1);
        src_rcs[4] = mpq_pool_destroy(src_pool);
        src_rcs[5] = mpq_imap_next((mpq_imap *)user, &res, -1);   /* one held at the gate */
        src_rcs[6] = mpq_pool_apply_async(src_pool, t_square, &v, sizeof v, NULL, NULL, NULL, NULL);
    }
    if (index >= 2) return 0;
    memcpy(item, &v, sizeof v);
    *len = sizeof v;
    return 1;
}
static void test_imap_source_calls_pool(void)
{
    mpq_imap *it = NULL, *held;
    mpq_pool_result r;
    int rc, k = 0, x = 2;
    gate = (uint32_t *)mpqt_shared(sizeof *gate);
    src_pool = make_pool(2, 0);
    {
        mpq_imap_config c;
        memset(&c, 0, sizeof c);
        c.items = &x;
        c.n = 1;
        c.item_size = sizeof x;
        CHECK_OK(mpq_pool_imap(src_pool, t_gated, &c, &held));   /* its next would wait */
        memset(&c, 0, sizeof c);
        c.source = src_calls_pool;
        c.source_user = held;
        CHECK_OK(mpq_pool_imap(src_pool, t_square, &c, &it));
    }
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) k++;
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, 2);
    for (k = 0; k < 6; k++) CHECK_EQ(src_rcs[k], -EDEADLK);
    CHECK_OK(src_rcs[6]);   /* submitting is fine */
    gate_open();
    CHECK_EQ(mpq_imap_next(held, &r, 30000), 1);
    CHECK_OK(mpq_pool_wait(src_pool, 30000));
    CHECK_OK(mpq_imap_free(it));
    CHECK_OK(mpq_imap_free(held));
    CHECK_OK(mpq_pool_destroy(src_pool));
}

/* After mpq_imap_free returns, and after terminate returns, the input is
   not read any more: its memory may go. */
static int slow_reads, reads_after;
static uint32_t input_gone;
static int src_slow(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    int v = (int)index;
    volatile int k;
    (void)user; (void)cap;
    if (__atomic_load_n(&input_gone, __ATOMIC_SEQ_CST)) __atomic_fetch_add(&reads_after, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&slow_reads, 1, __ATOMIC_SEQ_CST);
    for (k = 0; k < 20000; k++) {}
    memcpy(item, &v, sizeof v);
    *len = sizeof v;
    return 1;
}
static void input_left_alone(int terminate)
{
    mpq_pool *p = make_pool(2, 0);
    mpq_imap *it;
    mpq_imap_config c;
    mpq_pool_result r;
    int i, rc;
    slow_reads = reads_after = 0;
    __atomic_store_n(&input_gone, 0, __ATOMIC_SEQ_CST);
    memset(&c, 0, sizeof c);
    c.source = src_slow;
    c.chunksize = 200;
    CHECK_OK(mpq_pool_imap(p, t_square, &c, &it));
    for (i = 0; i < 300; i++) CHECK_EQ(mpq_imap_next(it, &r, 30000), 1);
    /* Neither reads the input once it has returned (what the docs
       promise). Counting from before terminate was called, as this test
       did, also counted the reads a busy machine let the feeder make
       before terminate got going (3 under ASan and load). */
    if (terminate) {
        CHECK_OK(mpq_pool_terminate(p));
        __atomic_store_n(&input_gone, 1, __ATOMIC_SEQ_CST);
    } else {
        CHECK_OK(mpq_imap_free(it));
        __atomic_store_n(&input_gone, 1, __ATOMIC_SEQ_CST);
    }
    if (terminate) {
        while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {}
        CHECK_EQ(rc, 0);
        CHECK_OK(mpq_imap_free(it));
    } else {
        CHECK_OK(mpq_pool_wait(p, 30000));
    }
    CHECK_EQ(__atomic_load_n(&reads_after, __ATOMIC_SEQ_CST), 0);
    CHECK_OK(mpq_pool_destroy(p));
}
static void test_imap_free_stops_input(void) { input_left_alone(0); }
static void test_imap_terminate_stops_input(void) { input_left_alone(1); }

/* A map racing terminate fails with -ECANCELED, whatever it met. */
static int term_errors, term_other;
static void term_err(void *user, const mpq_pool_result *r)
{
    (void)user;
    __atomic_fetch_add(&term_errors, 1, __ATOMIC_SEQ_CST);
    if (r->error != -ECANCELED) term_other = r->error;
}
static void *term_later(void *arg)
{
    mpq_pool_terminate((mpq_pool *)arg);
    return NULL;
}
static void test_map_racing_terminate(void)
{
    static int in[256], out[256];
    int round;
    for (round = 0; round < 60; round++) {
        mpq_pool *p;
        mpq_pool_config c;
        pthread_t th;
        int rc;
        memset(&c, 0, sizeof c);
        c.workers = 2;
        c.backlog = 8;
        CHECK_OK(mpq_pool_create(&p, &c));
        term_errors = 0;
        CHECK_OK(-pthread_create(&th, NULL, term_later, p));
        rc = mpq_pool_map_async(p, t_square, in, 256, sizeof(int), out, sizeof(int), 1, NULL, term_err, NULL, NULL);
        pthread_join(th, NULL);
        CHECK(rc == 0 || rc == -EPIPE);
        CHECK_OK(mpq_pool_destroy(p));
        CHECK(term_errors <= 1);
        if (term_other) CHECK_EQ(term_other, -ECANCELED);
    }
}

static const mpqt_case cases[] = {
    MPQT(test_imap_source_waits_terminate, 30, 1),
    MPQT(test_imap_source_waits_server_killed, 30, 1),
    MPQT(test_imap_source_calls_pool, 30, 1),
    MPQT(test_imap_free_stops_input, 30, 1),
    MPQT(test_imap_terminate_stops_input, 30, 1),
    MPQT(test_map_racing_terminate, 60, 1),
    MPQT(test_pool_close_in_submit_window, 30, 0),
    MPQT(test_pool_close_races_submit, 120, 1),
    MPQT(test_pool_worker_names, 30, 0),
    MPQT(test_pool_async_never_blocks, 30, 1),
    MPQT(test_pool_close_runs_waiting, 60, 1),
    MPQT(test_pool_error_messages, 30, 1),
    MPQT(test_pool_ids_and_progress, 30, 1),
    MPQT(test_strerror, 10, 0),
    MPQT(test_pool_wait_idle, 30, 1),
    MPQT(test_imap_ordered, 120, 1),
    MPQT(test_imap_unordered, 120, 1),
    MPQT(test_imap_worker_killed, 120, 1),
    MPQT(test_imap_kill_storm, 120, 0),
    MPQT(test_imap_lazy_bounded, 180, 0),
    MPQT(test_imap_variable_sizes, 60, 1),
    MPQT(test_imap_source_error, 30, 1),
    MPQT(test_imap_terminate, 30, 1),
    MPQT(test_imap_free_early, 30, 1),
    MPQT(test_imap_stalled_passes, 60, 1),
    MPQT(test_imap_bad_input, 30, 0),
    MPQT(test_imap_threads, 120, 1),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
