/* CPython's own Pool tests (Lib/test/_test_multiprocessing.py, _TestPool
   and _TestPoolWorkerErrors), ported to mpq_pool where it has the
   feature. Each test names the Python test it follows and says where the
   C API differs. Python's sqr(x, wait) becomes t_sqr; its sleeping
   tasks become tasks held at a gate in shared memory. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"
static int t_sqr(const void *a, size_t n, void *r, size_t *rl)
{
    int x = mpqt_get_int(a, n);
    return mpqt_put_int(r, rl, x * x);
}
static int t_raising(const void *a, size_t n, void *r, size_t *rl)
{
    (void)a; (void)n; (void)r; (void)rl;
    return mpq_pool_fail(-EKEYREJECTED, "key");
}

static uint32_t *gate;
static int t_gated(const void *a, size_t n, void *r, size_t *rl)
{
    while (!__atomic_load_n(gate, __ATOMIC_SEQ_CST)) mpq__futex_wait(gate, 0, -1);
    return t_sqr(a, n, r, rl);
}

static mpq_pool *pool4(void)
{
    mpq_pool *p = NULL;
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 4 }));
    return p;
}

/* test_apply: apply(sqr, (5,)) == 25. */
static void test_apply(void)
{
    mpq_pool *p = pool4();
    int x = 5, r = 0;
    size_t len;
    CHECK_OK(mpq_pool_apply(p, t_sqr, &x, sizeof x, &r, sizeof r, &len));
    CHECK_EQ(r, 25);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_map: map(sqr, range(10)) and map(sqr, range(100), chunksize=20). */
static void test_map(void)
{
    mpq_pool *p = pool4();
    int in[100], out[100], i;
    for (i = 0; i < 100; i++) in[i] = i;
    CHECK_OK(mpq_pool_map(p, t_sqr, in, 10, sizeof(int), out, sizeof(int), 0));
    for (i = 0; i < 10; i++) CHECK_EQ(out[i], i * i);
    CHECK_OK(mpq_pool_map(p, t_sqr, in, 100, sizeof(int), out, sizeof(int), 20));
    for (i = 0; i < 100; i++) CHECK_EQ(out[i], i * i);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_starmap has no C twin (a task takes one argument: pack a struct). */

/* test_map_async and test_map_async_callbacks: the callback gets the whole
   list; the error callback gets the first error. */
static int cb_called, ecb_called, ecb_error;
static size_t cb_len;
static void on_map(void *user, const mpq_pool_result *r) { (void)user; cb_len = r->len; cb_called++; }
static void on_map_err(void *user, const mpq_pool_result *r) { (void)user; ecb_error = r->error; ecb_called++; }
static void test_map_async(void)
{
    mpq_pool *p = pool4();
    mpq_future *f;
    int in[100], out[100], i;
    for (i = 0; i < 100; i++) in[i] = i;
    CHECK_OK(mpq_pool_map_async(p, t_sqr, in, 100, sizeof(int), out, sizeof(int), 0, on_map, on_map_err, NULL, &f));
    CHECK_OK(mpq_future_get(f, NULL, 0, NULL, 30000));
    CHECK_OK(mpq_pool_wait(p, 30000));
    CHECK_EQ(cb_called, 1);
    CHECK_EQ(cb_len, sizeof out);
    CHECK_EQ(ecb_called, 0);
    for (i = 0; i < 100; i++) CHECK_EQ(out[i], i * i);
    mpq_future_free(f);
    /* A failing task: the error callback, with the task's error. */
    CHECK_OK(mpq_pool_map_async(p, t_raising, in, 10, sizeof(int), out, sizeof(int), 0, on_map, on_map_err, NULL, NULL));
    CHECK_OK(mpq_pool_wait(p, 30000));
    CHECK_EQ(cb_called, 1);
    CHECK_EQ(ecb_called, 1);
    CHECK_EQ(ecb_error, -EKEYREJECTED);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_map_chunksize: an empty map with a chunksize. */
static void test_map_chunksize(void)
{
    mpq_pool *p = pool4();
    int x;
    CHECK_OK(mpq_pool_map(p, t_sqr, &x, 0, sizeof(int), &x, sizeof(int), 1));
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_async: apply_async(sqr, (7, 0.1)).get() == 49. test_async_timeout:
   a get that cannot finish in time raises TimeoutError (-ETIMEDOUT). */
static void test_async_timeout(void)
{
    mpq_pool *p;
    mpq_future *f;
    int x = 7, r = 0;
    size_t len;
    gate = (uint32_t *)mpqt_shared(sizeof *gate);
    p = pool4();
    CHECK_OK(mpq_pool_submit(p, t_sqr, &x, sizeof x, &f));
    CHECK_OK(mpq_future_get(f, &r, sizeof r, &len, 30000));
    CHECK_EQ(r, 49);
    mpq_future_free(f);
    x = 6;
    CHECK_OK(mpq_pool_submit(p, t_gated, &x, sizeof x, &f));
    CHECK_ERR(mpq_future_get(f, &r, sizeof r, &len, 50), ETIMEDOUT);
    CHECK_EQ(mpq_future_ready(f), 0);
    CHECK_ERR(mpq_future_successful(f), EAGAIN);   /* Python: ValueError */
    __atomic_store_n(gate, 1, __ATOMIC_SEQ_CST);
    mpq__futex_wake(gate, INT_MAX);
    CHECK_OK(mpq_future_get(f, &r, sizeof r, &len, 30000));
    CHECK_EQ(r, 36);
    CHECK_EQ(mpq_future_successful(f), 1);
    mpq_future_free(f);
    CHECK_OK(mpq_pool_destroy(p));
}

/* An input of `n` ints that raises SayWhenError (-EIO here) at `when`
   (Python's exception_throwing_generator(total, when); -1: at once). */
typedef struct { int total, when; } gen_t;
static int gen(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    const gen_t *g = (const gen_t *)user;
    int v = (int)index;
    (void)cap;
    if (g->when == -1 || (int)index == g->when) return -EIO;
    if ((int)index >= g->total) return 0;
    memcpy(item, &v, sizeof v);
    *len = sizeof v;
    return 1;
}

/* Reads an imap to its end into out (squares, by index); returns the
   number of outcomes and sets *err to the first error seen (0: none). */
static int drain(mpq_imap *it, int *out, int cap, int unordered, int *err, size_t *err_index)
{
    mpq_pool_result r;
    int n = 0, rc;
    *err = 0;
    while ((rc = mpq_imap_next(it, &r, 30000)) == 1) {
        if (!unordered) CHECK_EQ(r.index, n);
        if (r.error) {
            if (!*err) {
                *err = r.error;
                *err_index = r.index;
            }
        } else {
            CHECK(r.index < (size_t)cap);
            memcpy(&out[r.index], r.data, sizeof(int));
        }
        n++;
    }
    CHECK_EQ(rc, 0);
    return n;
}

/* test_imap: list(imap(sqr, range(10))) and imap(sqr, range(1000),
   chunksize=100), read one by one; then StopIteration (0). */
static void test_imap(void)
{
    mpq_pool *p = pool4();
    static int in[1000], out[1000];
    mpq_imap *it;
    mpq_pool_result r;
    int i, err;
    size_t ei;
    for (i = 0; i < 1000; i++) in[i] = i;
    CHECK_OK(mpq_pool_imap(p, t_sqr, &(mpq_imap_config){ .items = in, .n = 10, .item_size = sizeof(int) }, &it));
    CHECK_EQ(drain(it, out, 1000, 0, &err, &ei), 10);
    CHECK_EQ(err, 0);
    for (i = 0; i < 10; i++) CHECK_EQ(out[i], i * i);
    CHECK_EQ(mpq_imap_next(it, &r, 0), 0);   /* StopIteration, again */
    mpq_imap_free(it);
    CHECK_OK(mpq_pool_imap(p, t_sqr, &(mpq_imap_config){ .items = in, .n = 1000, .item_size = sizeof(int),
                                                          .chunksize = 100 }, &it));
    CHECK_EQ(drain(it, out, 1000, 0, &err, &ei), 1000);
    CHECK_EQ(err, 0);
    for (i = 0; i < 1000; i++) CHECK_EQ(out[i], i * i);
    mpq_imap_free(it);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_imap_handle_iterable_exception. Python loses the items of the chunk
   the exception interrupted; mpq runs every item read before it, then
   reports the input's error as the next item's outcome. */
static void imap_gen(mpq_pool *p, int total, int when, size_t chunk, int unordered)
{
    static int out[100];
    gen_t g = { total, when };
    mpq_imap *it;
    int err, n, i;
    size_t ei = 0;
    CHECK_OK(mpq_pool_imap(p, t_sqr, &(mpq_imap_config){ .source = gen, .source_user = &g, .chunksize = chunk,
                                                          .unordered = unordered }, &it));
    n = drain(it, out, 100, unordered, &err, &ei);
    CHECK_EQ(err, -EIO);
    CHECK_EQ(ei, when < 0 ? 0 : (size_t)when);
    CHECK_EQ(n, when < 0 ? 1 : when + 1);
    for (i = 0; i < when; i++) CHECK_EQ(out[i], i * i);
    mpq_imap_free(it);
}
static void test_imap_handle_iterable_exception(void)
{
    mpq_pool *p = pool4();
    imap_gen(p, 1, -1, 1, 0);
    imap_gen(p, 1, -1, 1, 0);
    imap_gen(p, 10, 3, 1, 0);
    imap_gen(p, 20, 7, 2, 0);
    imap_gen(p, 20, 7, 4, 0);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_imap_unordered: sorted(imap_unordered(sqr, range(100))) and with
   chunksize=53 over range(1000). */
static void test_imap_unordered(void)
{
    mpq_pool *p = pool4();
    static int in[1000], out[1000];
    mpq_imap *it;
    int i, err;
    size_t ei;
    for (i = 0; i < 1000; i++) in[i] = i;
    memset(out, 0xff, sizeof out);
    CHECK_OK(mpq_pool_imap(p, t_sqr, &(mpq_imap_config){ .items = in, .n = 100, .item_size = sizeof(int),
                                                          .unordered = 1 }, &it));
    CHECK_EQ(drain(it, out, 1000, 1, &err, &ei), 100);
    for (i = 0; i < 100; i++) CHECK_EQ(out[i], i * i);
    mpq_imap_free(it);
    CHECK_OK(mpq_pool_imap(p, t_sqr, &(mpq_imap_config){ .items = in, .n = 1000, .item_size = sizeof(int),
                                                          .chunksize = 53, .unordered = 1 }, &it));
    CHECK_EQ(drain(it, out, 1000, 1, &err, &ei), 1000);
    for (i = 0; i < 1000; i++) CHECK_EQ(out[i], i * i);
    mpq_imap_free(it);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_imap_unordered_handle_iterable_exception. */
static void test_imap_unordered_handle_iterable_exception(void)
{
    mpq_pool *p = pool4();
    imap_gen(p, 1, -1, 1, 1);
    imap_gen(p, 1, -1, 1, 1);
    imap_gen(p, 10, 3, 1, 1);
    imap_gen(p, 20, 7, 2, 1);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_make_pool: Pool(-1) raises ValueError (-EINVAL here). Python's
   Pool(0) is an error too; mpq's 0 means "one per usable CPU". */
static void test_make_pool(void)
{
    mpq_pool *p = NULL;
    CHECK_ERR(mpq_pool_create(&p, &(mpq_pool_config){ .workers = -1 }), EINVAL);
    CHECK_OK(mpq_pool_create(&p, &(mpq_pool_config){ .workers = 3 }));
    CHECK_EQ(mpq_pool_workers(p, NULL, 0), 3);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_terminate: map_async(sleep, [0.1] * 10000, chunksize=1), then
   terminate at once: it returns without running them, join does too, and
   (beyond Python) every one of them is reported cancelled. */
static void test_terminate(void)
{
    static int in[10000], out[10000];
    mpq_pool *p;
    mpq_future *f;
    gate = (uint32_t *)mpqt_shared(sizeof *gate);
    p = pool4();
    CHECK_OK(mpq_pool_map_async(p, t_gated, in, 10000, sizeof(int), out, sizeof(int), 1, NULL, NULL, NULL, &f));
    CHECK_OK(mpq_pool_terminate(p));
    CHECK_OK(mpq_pool_join(p, 30000));
    CHECK_ERR(mpq_future_get(f, NULL, 0, NULL, 0), ECANCELED);
    mpq_future_free(f);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_empty_iterable: map, map_async, imap, imap_unordered of nothing. */
static void test_empty_iterable(void)
{
    mpq_pool *p = pool4();
    mpq_future *f;
    mpq_imap *it;
    mpq_pool_result r;
    int x = 0, u;
    gen_t g = { 0, -2 };
    CHECK_OK(mpq_pool_map(p, t_sqr, &x, 0, sizeof x, &x, sizeof x, 0));
    cb_called = 0;
    CHECK_OK(mpq_pool_map_async(p, t_sqr, &x, 0, sizeof x, &x, sizeof x, 0, on_map, on_map_err, NULL, &f));
    CHECK_OK(mpq_future_get(f, NULL, 0, NULL, 30000));
    CHECK_OK(mpq_pool_wait(p, 30000));
    CHECK_EQ(cb_called, 1);
    CHECK_EQ(cb_len, 0);
    mpq_future_free(f);
    for (u = 0; u < 2; u++) {
        CHECK_OK(mpq_pool_imap(p, t_sqr, &(mpq_imap_config){ .source = gen, .source_user = &g, .unordered = u }, &it));
        CHECK_EQ(mpq_imap_next(it, &r, 30000), 0);
        mpq_imap_free(it);
        CHECK_OK(mpq_pool_imap(p, t_sqr, &(mpq_imap_config){ .items = &x, .n = 0, .item_size = sizeof x, .unordered = u },
                               &it));
        CHECK_EQ(mpq_imap_next(it, &r, 0), 0);
        mpq_imap_free(it);
    }
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_traceback / test_wrapped_exception: the task's exception text
   reaches the caller (mpq_pool_fail's message). */
static void test_wrapped_exception(void)
{
    mpq_pool *p = pool4();
    char msg[32];
    size_t len;
    CHECK_ERR(mpq_pool_apply(p, t_raising, NULL, 0, msg, sizeof msg, &len), EKEYREJECTED);
    CHECK(strcmp(msg, "key") == 0);
    CHECK_OK(mpq_pool_destroy(p));
}

/* test_map_no_failfast: a map with a failing task still runs the others,
   reports the failure, and close + join end normally. */
static void test_map_no_failfast(void)
{
    mpq_pool *p = pool4();
    static int in[100], out[100];
    CHECK_ERR(mpq_pool_map(p, t_raising, in, 100, sizeof(int), out, sizeof(int), 1), EKEYREJECTED);
    CHECK_OK(mpq_pool_close(p));
    CHECK_OK(mpq_pool_join(p, 30000));
    CHECK_OK(mpq_pool_destroy(p));
}

/* _TestPoolWorkerErrors.test_async_error_callback: apply_async(raising,
   error_callback=errback): errback sees the error, get raises it. */
static void test_async_error_callback(void)
{
    mpq_pool *p = pool4();
    mpq_future *f;
    ecb_called = 0;
    CHECK_OK(mpq_pool_apply_async(p, t_raising, NULL, 0, NULL, on_map_err, NULL, &f));
    CHECK_ERR(mpq_future_get(f, NULL, 0, NULL, 30000), EKEYREJECTED);
    CHECK_OK(mpq_pool_wait(p, 30000));
    CHECK_EQ(ecb_called, 1);
    CHECK_EQ(ecb_error, -EKEYREJECTED);
    mpq_future_free(f);
    CHECK_OK(mpq_pool_destroy(p));
}

static const mpqt_case cases[] = {
    MPQT(test_apply, 30, 1),
    MPQT(test_map, 30, 1),
    MPQT(test_map_async, 30, 1),
    MPQT(test_map_chunksize, 30, 1),
    MPQT(test_async_timeout, 30, 1),
    MPQT(test_imap, 30, 1),
    MPQT(test_imap_handle_iterable_exception, 30, 1),
    MPQT(test_imap_unordered, 30, 1),
    MPQT(test_imap_unordered_handle_iterable_exception, 30, 1),
    MPQT(test_make_pool, 30, 0),
    MPQT(test_terminate, 30, 1),
    MPQT(test_empty_iterable, 30, 1),
    MPQT(test_wrapped_exception, 30, 1),
    MPQT(test_map_no_failfast, 30, 1),
    MPQT(test_async_error_callback, 30, 1),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
