/* Tests of mpq_dict and mpq_list: the Python notes' Manager example,
   semantics and bad input, many processes checked against a model,
   threads sharing a handle, a named dict used by an exec'd program,
   corrupt images, and a kill storm over sets, deletes, adds and appends. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

/* --- the Python notes' Manager example ------------------------------------- */

static mpq_dict *g_d;
static mpq_list *g_l;

static int manager_f(void *arg)
{
    int32_t pid = (int32_t)getpid();
    (void)arg;
    if (mpq_dict_set(g_d, "1", 1, "1", 1) != 0) return 1;              /* d[1] = '1' */
    if (mpq_list_append(g_l, &pid, sizeof pid) != 0) return 2;         /* l.append(os.getpid()) */
    return 0;
}

static void test_dict_manager_example(void)
{
    enum { P = 10 };
    mpq_process p[P];
    int32_t v, seen[P];
    char buf[8];
    size_t len, pos = 0, klen;
    int i, k;
    CHECK_OK(mpq_dict_create(&g_d, NULL));
    CHECK_OK(mpq_list_create(&g_l, NULL));
    for (v = 0; v < 5; v++) CHECK_OK(mpq_list_append(g_l, &v, sizeof v));   /* range(5) */
    for (i = 0; i < P; i++) CHECK_OK(mpq_process_start(&p[i], manager_f, NULL));
    for (i = 0; i < P; i++) MPQT_JOIN_OK(&p[i], 0);
    /* {1: '1'} */
    CHECK_EQ(mpq_dict_len(g_d), 1);
    CHECK_EQ(mpq_dict_next(g_d, &pos, buf, sizeof buf, &klen, buf + 4, 4, &len), 1);
    CHECK(klen == 1 && buf[0] == '1' && len == 1 && buf[4] == '1');
    CHECK_EQ(mpq_dict_next(g_d, &pos, buf, sizeof buf, &klen, buf + 4, 4, &len), 0);
    /* [0, 1, 2, 3, 4, <ten pids>]: every pid once */
    CHECK_EQ(mpq_list_len(g_l), 15);
    for (k = 0; k < 5; k++) {
        CHECK_OK(mpq_list_get(g_l, k, &v, sizeof v, &len));
        CHECK_EQ(v, k);
    }
    for (k = 5; k < 15; k++) {
        CHECK_OK(mpq_list_get(g_l, k, &v, sizeof v, &len));
        seen[k - 5] = v;
    }
    for (i = 0; i < P; i++) {
        int found = 0;
        for (k = 0; k < P; k++) found += seen[k] == (int32_t)p[i].pid;
        CHECK_EQ(found, 1);
    }
    CHECK_OK(mpq_dict_close(g_d));
    CHECK_OK(mpq_list_close(g_l));
}

/* --- dict semantics ---------------------------------------------------------- */

static void test_dict_basic(void)
{
    mpq_dict *d;
    char buf[64];
    size_t len = 0, pos, klen;
    int64_t n;
    int i, seen;
    CHECK_OK(mpq_dict_create(&d, &(mpq_dict_config){ .max_entries = 4, .max_key = 8, .max_value = 16 }));
    CHECK_EQ(mpq_dict_len(d), 0);
    CHECK_ERR(mpq_dict_get(d, "a", 1, buf, sizeof buf, &len), ENOENT);
    CHECK_EQ(mpq_dict_contains(d, "a", 1), 0);
    CHECK_OK(mpq_dict_set(d, "a", 1, "apple", 5));
    CHECK_EQ(mpq_dict_contains(d, "a", 1), 1);
    CHECK_OK(mpq_dict_get(d, "a", 1, buf, sizeof buf, &len));
    CHECK(len == 5 && memcmp(buf, "apple", 5) == 0);
    CHECK_OK(mpq_dict_set(d, "a", 1, "avocado", 7));                    /* replace */
    CHECK_ERR(mpq_dict_get(d, "a", 1, buf, 3, &len), EMSGSIZE);
    CHECK_EQ(len, 7);
    CHECK_OK(mpq_dict_get(d, "a", 1, buf, 7, &len));
    CHECK(len == 7 && memcmp(buf, "avocado", 7) == 0);
    CHECK_OK(mpq_dict_set(d, "", 0, NULL, 0));                          /* empty key and value */
    CHECK_OK(mpq_dict_get(d, "", 0, NULL, 0, &len));
    CHECK_EQ(len, 0);
    CHECK_EQ(mpq_dict_len(d), 2);
    /* add */
    CHECK_OK(mpq_dict_add(d, "n", 1, 5, &n));
    CHECK_EQ(n, 5);
    CHECK_OK(mpq_dict_add(d, "n", 1, -7, &n));
    CHECK_EQ(n, -2);
    CHECK_ERR(mpq_dict_add(d, "a", 1, 1, &n), EINVAL);                  /* not 8 bytes */
    /* cas */
    CHECK_ERR(mpq_dict_cas(d, "a", 1, "apple", 5, "x", 1), ECANCELED);
    CHECK_OK(mpq_dict_cas(d, "a", 1, "avocado", 7, "banana", 6));
    CHECK_ERR(mpq_dict_cas(d, "a", 1, NULL, 0, "x", 1), EEXIST);
    CHECK_ERR(mpq_dict_cas(d, "z", 1, "y", 1, "x", 1), ENOENT);
    CHECK_OK(mpq_dict_get(d, "a", 1, buf, sizeof buf, &len));
    CHECK(len == 6 && memcmp(buf, "banana", 6) == 0);
    /* full: nothing else changes */
    CHECK_OK(mpq_dict_cas(d, "b", 1, NULL, 0, "b", 1));                 /* setdefault: 4 keys */
    CHECK_EQ(mpq_dict_len(d), 4);
    CHECK_ERR(mpq_dict_set(d, "c", 1, "c", 1), ENOSPC);
    n = 77;
    CHECK_ERR(mpq_dict_add(d, "c", 1, 1, &n), ENOSPC);
    CHECK_EQ(n, 77);                                                   /* untouched */
    CHECK_EQ(mpq_dict_contains(d, "c", 1), 0);
    CHECK_OK(mpq_dict_set(d, "b", 1, "bb", 2));                         /* a replace still works */
    CHECK_EQ(mpq_dict_len(d), 4);
    /* sizes */
    CHECK_ERR(mpq_dict_set(d, "123456789", 9, "x", 1), EMSGSIZE);
    CHECK_ERR(mpq_dict_set(d, "a", 1, buf, 17), EMSGSIZE);
    CHECK_ERR(mpq_dict_get(d, "123456789", 9, buf, sizeof buf, &len), ENOENT);
    /* iteration: each key once */
    pos = 0;
    seen = 0;
    while ((i = mpq_dict_next(d, &pos, buf, sizeof buf, &klen, buf + 32, 32, &len)) == 1) seen++;
    CHECK_EQ(i, 0);
    CHECK_EQ(seen, 4);
    /* delete, clear */
    CHECK_OK(mpq_dict_delete(d, "a", 1));
    CHECK_ERR(mpq_dict_delete(d, "a", 1), ENOENT);
    CHECK_EQ(mpq_dict_len(d), 3);
    CHECK_OK(mpq_dict_set(d, "c", 1, "c", 1));                          /* room again */
    CHECK_OK(mpq_dict_clear(d));
    CHECK_EQ(mpq_dict_len(d), 0);
    CHECK_ERR(mpq_dict_get(d, "c", 1, buf, sizeof buf, &len), ENOENT);
    for (i = 0; i < 1000; i++) {   /* churn: deleted entries are reused */
        char k = (char)('a' + i % 4);
        CHECK_OK(mpq_dict_set(d, &k, 1, &i, sizeof i));
        if (i % 3 == 0) CHECK_OK(mpq_dict_delete(d, &k, 1));
    }
    /* clear frees deleted entries too: every slot is EMPTY again. */
    CHECK_OK(mpq_dict_clear(d));
    for (i = 0; i < (int)d->nslots; i++) CHECK_EQ(MPQ__DST(mpq__dslot_at(d, (uint32_t)i)->meta), MPQ__D_EMPTY);
    CHECK_EQ(mpq_dict_len(d), 0);
    CHECK_OK(mpq_dict_set(d, "a", 1, "a", 1));
    /* bad input */
    CHECK_ERR(mpq_dict_set(NULL, "a", 1, "a", 1), EINVAL);
    CHECK_ERR(mpq_dict_set(d, NULL, 1, "a", 1), EINVAL);
    CHECK_ERR(mpq_dict_set(d, "a", 1, NULL, 1), EINVAL);
    CHECK_ERR(mpq_dict_get(d, "a", 1, NULL, 1, &len), EINVAL);
    CHECK_ERR(mpq_dict_get(d, "a", 1, buf, 1, NULL), EINVAL);
    CHECK_ERR(mpq_dict_len(NULL), EINVAL);
    CHECK_ERR(mpq_dict_next(d, NULL, buf, 1, &klen, NULL, 0, NULL), EINVAL);
    pos = 0;
    CHECK_ERR(mpq_dict_next(d, &pos, buf, 1, &klen, buf, 1, NULL), EINVAL);   /* a value with nowhere for its length */
    CHECK_ERR(mpq_dict_close(NULL), EINVAL);
    CHECK_ERR(mpq_dict_create(NULL, NULL), EINVAL);
    CHECK_ERR(mpq_dict_create(&d, &(mpq_dict_config){ .max_entries = (1u << 26) + 1 }), EINVAL);
    CHECK_ERR(mpq_dict_create(&d, &(mpq_dict_config){ .max_value = (1u << 24) + 1 }), EINVAL);
    CHECK_OK(mpq_dict_close(d));
    CHECK_OK(mpq_dict_create(&d, &(mpq_dict_config){ .max_value = 4 }));
    CHECK_ERR(mpq_dict_add(d, "n", 1, 1, NULL), EINVAL);                /* no room for an integer */
    /* A buffer too small for the next key: its length, and pos stays. */
    CHECK_OK(mpq_dict_set(d, "abc", 3, "v", 1));
    pos = 0;
    CHECK_ERR(mpq_dict_next(d, &pos, buf, 2, &klen, NULL, 0, NULL), EMSGSIZE);
    CHECK_EQ(klen, 3);
    CHECK_EQ(mpq_dict_next(d, &pos, buf, 3, &klen, NULL, 0, NULL), 1);
    CHECK(klen == 3 && memcmp(buf, "abc", 3) == 0);
    CHECK_EQ(mpq_dict_next(d, &pos, buf, 3, &klen, NULL, 0, NULL), 0);
    CHECK_OK(mpq_dict_close(d));
}

/* Keys come and go, far more of them than the dict holds: deleted slots
   are given back, so probes stay short (most slots stay EMPTY) and every
   key there can still be found. */
static void test_dict_churn_keeps_probes_short(void)
{
    enum { N = 1000, GENERATIONS = 40 };
    mpq_dict *d;
    uint32_t g, i;
    uint64_t probes = 0;
    size_t len;
    CHECK_OK(mpq_dict_create(&d, &(mpq_dict_config){ .max_entries = N, .max_key = 16, .max_value = 8 }));
    for (g = 0; g < GENERATIONS; g++)
        for (i = 0; i < N; i++) {
            uint32_t key[2], old[2];
            key[0] = g;
            key[1] = i;
            old[0] = g - 1;
            old[1] = i;
            if (g > 0) CHECK_OK(mpq_dict_delete(d, old, sizeof old));
            CHECK_OK(mpq_dict_set(d, key, sizeof key, &i, sizeof i));
        }
    /* The probe of a missing key runs to the first EMPTY slot: its mean
       over every home slot. Without giving slots back every slot ends up
       used, and each such probe scans the whole table. */
    for (i = 0; i < d->nslots; i++) {
        uint32_t k = 0;
        while (k < d->nslots && MPQ__DST(mpq__dslot_at(d, (i + k) & (d->nslots - 1))->meta) != MPQ__D_EMPTY) k++;
        probes += k;
    }
    printf("    (after %u generations of %u keys: a miss probes %.1f slots on average; %u passes)\n",
           (unsigned)GENERATIONS, (unsigned)N, (double)probes / d->nslots, d->s->compactions);
    CHECK(probes / d->nslots < 64);
    CHECK_EQ(mpq_dict_len(d), N);
    for (i = 0; i < N; i++) {
        uint32_t key[2], v;
        key[0] = GENERATIONS - 1;
        key[1] = i;
        CHECK_OK(mpq_dict_get(d, key, sizeof key, &v, sizeof v, &len));
        CHECK_EQ(v, i);
    }
    CHECK_OK(mpq_dict_close(d));
}

/* --- many processes against a model ----------------------------------------- */

enum { MODEL_P = 4, MODEL_KEYS = 1000, MODEL_OPS = 20000, MODEL_VMAX = 200 };

/* Keys MODEL_KEYS.. MODEL_KEYS + STABLE - 1 are set before the workers
   start and only ever replaced: every get of them must find them. */
enum { STABLE = 20 };
static int64_t *g_adds;   /* per worker: adds that returned */

/* A value tells which key and write it belongs to: (key, writer, seq, len)
   then bytes derived from them. */
static size_t model_value(unsigned char *v, uint32_t key, uint32_t writer, uint32_t seq, uint64_t *rnd)
{
    size_t len = 16 + (size_t)(mpqt_rand(rnd) % (MODEL_VMAX - 16)), i;
    uint32_t hdr[4];
    hdr[0] = key;
    hdr[1] = writer;
    hdr[2] = seq;
    hdr[3] = (uint32_t)len;
    memcpy(v, hdr, 16);
    for (i = 16; i < len; i++) v[i] = (unsigned char)(key * 31 + writer * 7 + seq + i);
    return len;
}

/* 1 if v (len bytes) is a whole value written for key. */
static int model_ok(const unsigned char *v, size_t len, uint32_t key)
{
    uint32_t hdr[4];
    size_t i;
    if (len < 16) return 0;
    memcpy(hdr, v, 16);
    if (hdr[0] != key || hdr[3] != len) return 0;
    for (i = 16; i < len; i++)
        if (v[i] != (unsigned char)(hdr[0] * 31 + hdr[1] * 7 + hdr[2] + i)) return 0;
    return 1;
}

static void model_key(char *k, size_t *klen, uint32_t key)
{
    *klen = (size_t)snprintf(k, 32, "key-%u-%.*s", key, (int)(key % 11), "xxxxxxxxxxx");
}

/* Process w writes the keys with key % MODEL_P == w and remembers what it
   wrote: its gets of those must give exactly that; its gets of the others'
   keys must give whole values of the right key. Counter keys get adds. */
static int model_worker(void *arg)
{
    uint32_t w = (uint32_t)(intptr_t)arg, seq = 0;
    static uint32_t mine[MODEL_KEYS];       /* seq of our last write; 0: absent */
    static unsigned char last[MODEL_KEYS][MODEL_VMAX];
    static size_t lastlen[MODEL_KEYS];
    unsigned char v[MODEL_VMAX], got[MODEL_VMAX];
    uint64_t rnd = 0x1234567ull * (w + 1);
    char k[32];
    size_t klen, len;
    int i, rc;
    for (i = 0; i < MODEL_OPS; i++) {
        uint32_t key = (uint32_t)(mpqt_rand(&rnd) % MODEL_KEYS), op = (uint32_t)(mpqt_rand(&rnd) % 10);
        model_key(k, &klen, key);
        if (op == 9) {   /* a shared counter */
            if (mpq_dict_add(g_d, "counter", 7, 1, NULL) != 0) return 10;
            g_adds[w]++;
            continue;
        }
        if (op == 8 && key < STABLE) {   /* a stable key: replaced, read, never gone */
            uint32_t sk = MODEL_KEYS + key;
            model_key(k, &klen, sk);
            len = model_value(v, sk, w, ++seq, &rnd);
            if (mpq_dict_set(g_d, k, klen, v, len) != 0) return 17;
            rc = mpq_dict_get(g_d, k, klen, got, sizeof got, &len);
            if (rc != 0 || !model_ok(got, len, sk)) return 18;
            if (mpq_dict_contains(g_d, k, klen) != 1) return 19;
            continue;
        }
        if (key % MODEL_P != w || op < 4) {   /* read */
            rc = mpq_dict_get(g_d, k, klen, got, sizeof got, &len);
            if (rc != 0 && rc != -ENOENT) return 11;
            if (rc == 0 && !model_ok(got, len, key)) return 12;
            if (key % MODEL_P == w) {
                if ((rc == 0) != (mine[key] != 0)) return 13;
                if (rc == 0 && (len != lastlen[key] || memcmp(got, last[key], len) != 0)) return 14;
            }
            continue;
        }
        if (op < 8) {    /* set */
            len = model_value(v, key, w, ++seq, &rnd);
            if (mpq_dict_set(g_d, k, klen, v, len) != 0) return 15;
            mine[key] = seq;
            memcpy(last[key], v, len);
            lastlen[key] = len;
        } else {         /* delete */
            rc = mpq_dict_delete(g_d, k, klen);
            if (rc != (mine[key] ? 0 : -ENOENT)) return 16;
            mine[key] = 0;
        }
    }
    return 0;
}

/* A dict for the model workers, with the stable keys in it. */
static void model_setup(void)
{
    unsigned char v[MODEL_VMAX];
    char k[32];
    size_t klen, len;
    uint64_t rnd = 5;
    uint32_t i;
    g_adds = (int64_t *)mpqt_shared(MODEL_P * sizeof *g_adds);
    CHECK_OK(mpq_dict_create(&g_d, &(mpq_dict_config){ .max_entries = MODEL_KEYS + STABLE + 1, .max_key = 32,
                                                      .max_value = MODEL_VMAX }));
    for (i = 0; i < STABLE; i++) {
        model_key(k, &klen, MODEL_KEYS + i);
        len = model_value(v, MODEL_KEYS + i, 99, 0, &rnd);
        CHECK_OK(mpq_dict_set(g_d, k, klen, v, len));
    }
}

/* Every add counted, exactly. */
static void model_check_counter(void)
{
    int64_t n, want = 0;
    size_t len;
    int i;
    for (i = 0; i < MODEL_P; i++) want += g_adds[i];
    CHECK_OK(mpq_dict_get(g_d, "counter", 7, &n, sizeof n, &len));
    CHECK_EQ(n, want);
}

static void test_dict_processes_model(void)
{
    mpq_process p[MODEL_P];
    int i;
    model_setup();
    for (i = 0; i < MODEL_P; i++) CHECK_OK(mpq_process_start(&p[i], model_worker, (void *)(intptr_t)i));
    for (i = 0; i < MODEL_P; i++) MPQT_JOIN_OK(&p[i], 0);
    model_check_counter();
    printf("    (%ld keys at the end)\n", mpq_dict_len(g_d));
    CHECK_OK(mpq_dict_close(g_d));
}

static void *model_thread(void *arg) { return (void *)(intptr_t)model_worker(arg); }

/* The same with threads sharing one handle (ThreadSanitizer runs it). The
   workers' own models are per key partition, so threads do not share
   them... but they are static: one thread per partition, and each writes
   only its own keys' entries. */
static void test_dict_threads(void)
{
    pthread_t t[MODEL_P];
    int i;
    model_setup();
    for (i = 0; i < MODEL_P; i++) CHECK_EQ(pthread_create(&t[i], NULL, model_thread, (void *)(intptr_t)i), 0);
    for (i = 0; i < MODEL_P; i++) {
        void *r;
        CHECK_EQ(pthread_join(t[i], &r), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    model_check_counter();
    CHECK_OK(mpq_dict_close(g_d));
}

/* --- list ---------------------------------------------------------------------- */

static int list_values(mpq_list *l, int *out, int n)
{
    size_t len;
    int i;
    for (i = 0; i < n; i++)
        if (mpq_list_get(l, i, &out[i], sizeof out[i], &len) != 0 || len != sizeof out[i]) return -1;
    return (int)mpq_list_len(l);
}

static void test_list_basic(void)
{
    mpq_list *l;
    int v, vals[8];
    size_t len;
    CHECK_OK(mpq_list_create(&l, &(mpq_list_config){ .capacity = 5, .max_item = 8 }));
    CHECK_EQ(mpq_list_len(l), 0);
    CHECK_ERR(mpq_list_pop(l, -1, &v, sizeof v, &len), ERANGE);
    CHECK_ERR(mpq_list_get(l, 0, &v, sizeof v, &len), ERANGE);
    for (v = 1; v <= 3; v++) CHECK_OK(mpq_list_append(l, &v, sizeof v));   /* [1,2,3] */
    v = 0;
    CHECK_OK(mpq_list_insert(l, 0, &v, sizeof v));                           /* [0,1,2,3] */
    v = 9;
    CHECK_OK(mpq_list_insert(l, -1, &v, sizeof v));                          /* [0,1,2,9,3] */
    CHECK_EQ(list_values(l, vals, 5), 5);
    CHECK(vals[0] == 0 && vals[1] == 1 && vals[2] == 2 && vals[3] == 9 && vals[4] == 3);
    CHECK_ERR(mpq_list_append(l, &v, sizeof v), ENOSPC);
    CHECK_ERR(mpq_list_insert(l, 0, &v, sizeof v), ENOSPC);
    CHECK_OK(mpq_list_get(l, -1, &v, sizeof v, &len));
    CHECK_EQ(v, 3);
    CHECK_ERR(mpq_list_get(l, 5, &v, sizeof v, &len), ERANGE);
    CHECK_ERR(mpq_list_get(l, -6, &v, sizeof v, &len), ERANGE);
    CHECK_ERR(mpq_list_get(l, 0, &v, 2, &len), EMSGSIZE);
    CHECK_EQ(len, sizeof v);
    v = 7;
    CHECK_OK(mpq_list_set(l, 3, &v, sizeof v));                              /* [0,1,2,7,3] */
    CHECK_ERR(mpq_list_set(l, 5, &v, sizeof v), ERANGE);
    CHECK_OK(mpq_list_pop(l, 1, &v, sizeof v, &len));                         /* [0,2,7,3] */
    CHECK_EQ(v, 1);
    CHECK_ERR(mpq_list_pop(l, 0, &v, 2, &len), EMSGSIZE);                     /* nothing removed */
    CHECK_OK(mpq_list_pop(l, -1, &v, sizeof v, &len));                        /* [0,2,7] */
    CHECK_EQ(v, 3);
    CHECK_OK(mpq_list_pop(l, 0, NULL, 0, NULL));                              /* dropped: [2,7] */
    CHECK_EQ(list_values(l, vals, 2), 2);
    CHECK(vals[0] == 2 && vals[1] == 7);
    v = 5;
    CHECK_OK(mpq_list_insert(l, 100, &v, sizeof v));                          /* clamped: [2,7,5] */
    CHECK_OK(mpq_list_insert(l, -100, &v, sizeof v));                         /* [5,2,7,5] */
    CHECK_EQ(list_values(l, vals, 4), 4);
    CHECK(vals[0] == 5 && vals[1] == 2 && vals[2] == 7 && vals[3] == 5);
    CHECK_OK(mpq_list_append(l, NULL, 0));                                    /* an empty item */
    CHECK_OK(mpq_list_get(l, -1, NULL, 0, &len));
    CHECK_EQ(len, 0);
    CHECK_ERR(mpq_list_append(l, "123456789", 9), EMSGSIZE);
    CHECK_OK(mpq_list_clear(l));
    CHECK_EQ(mpq_list_len(l), 0);
    for (v = 0; v < 5; v++) CHECK_OK(mpq_list_append(l, &v, sizeof v));       /* every slot free again */
    /* bad input */
    CHECK_ERR(mpq_list_append(NULL, &v, sizeof v), EINVAL);
    CHECK_ERR(mpq_list_append(l, NULL, 1), EINVAL);
    CHECK_ERR(mpq_list_get(l, 0, NULL, 1, &len), EINVAL);
    CHECK_ERR(mpq_list_get(l, 0, &v, sizeof v, NULL), EINVAL);
    CHECK_ERR(mpq_list_len(NULL), EINVAL);
    CHECK_ERR(mpq_list_create(NULL, NULL), EINVAL);
    CHECK_ERR(mpq_list_create(&l, &(mpq_list_config){ .capacity = (1u << 26) + 1 }), EINVAL);
    CHECK_ERR(mpq_list_close(NULL), EINVAL);
    CHECK_OK(mpq_list_close(l));
}

enum { APP_P = 10, APP_N = 1000 };

static int appender(void *arg)
{
    uint32_t w = (uint32_t)(intptr_t)arg, i, item[2];
    for (i = 0; i < APP_N; i++) {
        item[0] = w;
        item[1] = i;
        if (mpq_list_append(g_l, item, sizeof item) != 0) return 1;
    }
    return 0;
}

/* 10 processes x 1000 appends: all there, each process's in its order. */
static void test_list_appends(void)
{
    mpq_process p[APP_P];
    uint32_t next[APP_P] = { 0 }, item[2];
    size_t len;
    long i, n;
    CHECK_OK(mpq_list_create(&g_l, &(mpq_list_config){ .capacity = APP_P * APP_N, .max_item = 8 }));
    for (i = 0; i < APP_P; i++) CHECK_OK(mpq_process_start(&p[i], appender, (void *)(intptr_t)i));
    for (i = 0; i < APP_P; i++) MPQT_JOIN_OK(&p[i], 0);
    n = mpq_list_len(g_l);
    CHECK_EQ(n, APP_P * APP_N);
    for (i = 0; i < n; i++) {
        CHECK_OK(mpq_list_get(g_l, i, item, sizeof item, &len));
        CHECK(len == sizeof item && item[0] < APP_P);
        CHECK_EQ(item[1], next[item[0]]);
        next[item[0]]++;
    }
    CHECK_OK(mpq_list_close(g_l));
}

/* --- named, and an exec'd program ----------------------------------------------- */

static void test_dict_named_across_exec(void)
{
    char name[64], lname[64], count[16];
    mpq_dict *d2;
    mpq_list *l2;
    mpq_process p[2];
    int64_t n;
    size_t len;
    int i;
    mpqt_name(name, sizeof name, "dict");
    mpqt_name(lname, sizeof lname, "list");
    CHECK_OK(mpq_dict_create(&g_d, &(mpq_dict_config){ .name = name }));
    CHECK_ERR(mpq_dict_create(&d2, &(mpq_dict_config){ .name = name }), EEXIST);
    CHECK_OK(mpq_list_create(&g_l, &(mpq_list_config){ .name = lname }));
    CHECK_OK(mpq_dict_set(g_d, "greeting", 8, "hello", 5));
    snprintf(count, sizeof count, "%d", 5000);
    for (i = 0; i < 2; i++) CHECK_OK(mpqt_start_helper(&p[i], "dict_peer", name, lname, count, NULL));
    for (i = 0; i < 5000; i++) CHECK_OK(mpq_dict_add(g_d, "n", 1, 1, NULL));
    for (i = 0; i < 2; i++) MPQT_JOIN_OK(&p[i], 0);
    CHECK_OK(mpq_dict_get(g_d, "n", 1, &n, sizeof n, &len));
    CHECK_EQ(n, 15000);
    CHECK_EQ(mpq_list_len(g_l), 2);
    /* Other kinds under the name, and a removed name. */
    CHECK_ERR(mpq_list_open(&l2, name), EINVAL);
    CHECK_ERR(mpq_dict_open(&d2, lname), EINVAL);
    CHECK_OK(mpq_dict_open(&d2, name));
    CHECK_OK(mpq_dict_close(d2));
    CHECK_OK(mpq_shm_unlink(name));
    CHECK_OK(mpq_shm_unlink(lname));
    CHECK_ERR(mpq_dict_open(&d2, name), ENOENT);
    CHECK_OK(mpq_dict_close(g_d));
    CHECK_OK(mpq_list_close(g_l));
}

/* --- corrupt images ---------------------------------------------------------------- */

/* Random bytes over the header of a named dict or list (and sometimes the
   first slots): open refuses, or the object is used without a crash or a
   hang (its calls may fail). */
static void test_dict_corrupt_images(void)
{
    char name[64];
    uint64_t seed = 4242;
    int i, refused = 0, used = 0;
    mpqt_name(name, sizeof name, "dcorrupt");
    for (i = 0; i < 2000; i++) {
        int list = i & 1, fd, k, flips = 1 + (int)(mpqt_rand(&seed) % 4);
        struct stat st;
        unsigned char *base;
        if (list) CHECK_OK(mpq_list_create(&g_l, &(mpq_list_config){ .name = name, .capacity = 16, .max_item = 16 }));
        else CHECK_OK(mpq_dict_create(&g_d, &(mpq_dict_config){ .name = name, .max_entries = 16, .max_key = 8, .max_value = 16 }));
        if (list) { int v = 1; CHECK_OK(mpq_list_append(g_l, &v, sizeof v)); }
        else CHECK_OK(mpq_dict_set(g_d, "k", 1, "v", 1));
        fd = shm_open(name, O_RDWR, 0);
        CHECK(fd >= 0 && fstat(fd, &st) == 0);
        base = (unsigned char *)mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(base != MAP_FAILED);
        close(fd);
        for (k = 0; k < flips; k++) {
            /* The object's header, or its slots - not its locks, whose
               state nothing can validate (a scribbled pthread mutex may
               hang or crash its libc: the trust boundary in mpq.h). */
            size_t data = list ? mpq__a64(sizeof(mpq__list_s))
                               : MPQ__DHDR + (size_t)g_d->nstripes * g_d->sstride;
            size_t head = list ? offsetof(mpq__list_s, lock) : sizeof(mpq__dict_s);
            size_t off = MPQ__SEG_HDR + (mpqt_rand(&seed) % 2 ? (size_t)(mpqt_rand(&seed) % head)
                                                               : data + (size_t)(mpqt_rand(&seed) % 4096));
            if (off < (size_t)st.st_size) base[off] ^= (unsigned char)(1 + mpqt_rand(&seed) % 255);
        }
        munmap(base, (size_t)st.st_size);
        if (list) {
            mpq_list *l;
            int rc = mpq_list_open(&l, name);
            if (rc == 0) {
                char buf[64];
                size_t len;
                long n = mpq_list_len(l), j;
                used++;
                for (j = 0; j < n && j < 20; j++) mpq_list_get(l, j, buf, sizeof buf, &len);
                mpq_list_append(l, "x", 1);
                mpq_list_pop(l, 0, buf, sizeof buf, &len);
                mpq_list_close(l);
            } else {
                CHECK_ERR(rc, EINVAL);
                refused++;
            }
            mpq_list_close(g_l);
        } else {
            mpq_dict *d;
            int rc = mpq_dict_open(&d, name);
            if (rc == 0) {
                char kb[16], vb[64];
                size_t pos = 0, kl, vl;
                int j;
                used++;
                for (j = 0; j < 40 && mpq_dict_next(d, &pos, kb, sizeof kb, &kl, vb, sizeof vb, &vl) != 0; j++) {}
                mpq_dict_get(d, "k", 1, vb, sizeof vb, &vl);
                mpq_dict_set(d, "x", 1, "y", 1);
                mpq_dict_delete(d, "k", 1);
                mpq_dict_close(d);
            } else {
                CHECK_ERR(rc, EINVAL);
                refused++;
            }
            mpq_dict_close(g_d);
        }
        CHECK_OK(mpq_shm_unlink(name));
    }
    printf("    (%d refused, %d opened and used)\n", refused, used);
    CHECK(refused > 100 && used > 100);
}

/* --- a writer that dies in the middle --------------------------------------------- */

static int dict_die_inserting(void *arg)
{
    mpq__dstripe *st = mpq__dstripe_of(g_d, mpq__hash("k", 1));
    mpq__dslot *s = (mpq__dslot *)arg;
    uint64_t m = s->meta;
    uint32_t stripe = (uint32_t)(((char *)st - g_d->stripes) / g_d->sstride);
    if (mpq_mutex_lock(&st->lock) != 0) return 2;
    /* The claim, as an insert makes it - and nothing after. */
    if (!mpq__cas64(&s->meta, &m, MPQ__DMETA_AT(m, 0, MPQ__D_CLAIMED, stripe), MPQ__SEQ_CST)) return 3;
    _exit(0);   /* mid-insert, holding the stripe */
}

/* An insert killed after claiming its slot: the next writer of the stripe
   frees the slot, so no slot is lost for good, and the count is right. */
static void test_dict_dead_inserter_repaired(void)
{
    MPQT_NEED_DEAD_OWNER();
    mpq_process p;
    uint32_t i, claimed = 0;
    size_t len;
    char v;
    CHECK_OK(mpq_dict_create(&g_d, &(mpq_dict_config){ .max_entries = 4, .max_key = 8, .max_value = 8 }));
    CHECK_OK(mpq_process_start(&p, dict_die_inserting, mpq__dslot_at(g_d, (uint32_t)mpq__hash("k", 1) & (g_d->nslots - 1))));
    MPQT_JOIN_OK(&p, 0);
    CHECK_ERR(mpq_dict_get(g_d, "k", 1, &v, 1, &len), ENOENT);   /* not half there */
    CHECK_OK(mpq_dict_set(g_d, "k", 1, "v", 1));                  /* inherits the stripe */
    for (i = 0; i < g_d->nslots; i++) claimed += MPQ__DST(mpq__dslot_at(g_d, i)->meta) == MPQ__D_CLAIMED;
    CHECK_EQ(claimed, 0);
    CHECK_EQ(mpq_dict_len(g_d), 1);
    CHECK_OK(mpq_dict_close(g_d));
}

static int list_die_appending(void *arg)
{
    (void)arg;
    if (mpq_mutex_lock(&g_l->s->lock) != 0) return 2;
    if (mpq__list_store(g_l, "dead", 4) >= g_l->nitems) return 3;   /* written, never published */
    _exit(0);
}

/* An append killed after taking a slot: the item never shows, and the
   slot comes back - the list still takes `capacity` items. */
static void test_list_dead_appender_repaired(void)
{
    MPQT_NEED_DEAD_OWNER();
    mpq_process p;
    int v;
    CHECK_OK(mpq_list_create(&g_l, &(mpq_list_config){ .capacity = 4, .max_item = 8 }));
    CHECK_OK(mpq_process_start(&p, list_die_appending, NULL));
    MPQT_JOIN_OK(&p, 0);
    CHECK_EQ(mpq_list_len(g_l), 0);
    for (v = 0; v < 4; v++) CHECK_OK(mpq_list_append(g_l, &v, sizeof v));
    v = 9;
    CHECK_OK(mpq_list_set(g_l, 0, &v, sizeof v));   /* needs the spare slot too */
    CHECK_ERR(mpq_list_append(g_l, &v, sizeof v), ENOSPC);
    CHECK_OK(mpq_list_close(g_l));
}

/* --- kill storm ---------------------------------------------------------------------- */

enum { STORM_W = 6, STORM_KILLS = 220, STORM_KEYS = 200, STORM_SLOTS = STORM_W + STORM_KILLS };
struct storm {
    uint32_t stop;
    int64_t adds_done[STORM_SLOTS];      /* adds that returned               */
    uint32_t appends_done[STORM_SLOTS];  /* appends that returned            */
};
static struct storm *g_st;

static int storm_worker(void *arg)
{
    uint32_t slot = (uint32_t)(intptr_t)arg, seq = 0;
    uint64_t rnd = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
    unsigned char v[MODEL_VMAX], got[MODEL_VMAX];
    char k[32];
    size_t klen, len;
    while (!mpq__load32(&g_st->stop, MPQ__ACQUIRE)) {
        uint32_t key = (uint32_t)(mpqt_rand(&rnd) % STORM_KEYS), item[2];
        int rc;
        model_key(k, &klen, key);
        switch (mpqt_rand(&rnd) % 9) {
        case 0: case 1:
            len = model_value(v, key, slot, ++seq, &rnd);
            if (mpq_dict_set(g_d, k, klen, v, len) != 0) return 2;
            break;
        case 6: {         /* a stable key: replaced (by a compare-and-set), never gone */
            uint32_t sk = STORM_KEYS + key % STABLE;
            size_t glen;
            model_key(k, &klen, sk);
            rc = mpq_dict_get(g_d, k, klen, got, sizeof got, &glen);
            if (rc != 0 || !model_ok(got, glen, sk)) return 8;
            len = model_value(v, sk, slot, ++seq, &rnd);
            rc = mpq_dict_cas(g_d, k, klen, got, glen, v, len);   /* -ECANCELED if another came first */
            if (rc != 0 && rc != -ECANCELED) return 9;
            break;
        }
        case 7:           /* the list: an item into the middle, or one replaced */
            item[0] = slot;
            item[1] = UINT32_MAX;   /* not one of the ordered appends */
            if (mpqt_rand(&rnd) % 2) rc = mpq_list_insert(g_l, (long)(mpqt_rand(&rnd) % 100), item, sizeof item);
            else rc = mpq_list_set(g_l, (long)(mpqt_rand(&rnd) % 100), item, sizeof item);
            if (rc == -ENOSPC) mpq_list_pop(g_l, 0, NULL, 0, NULL);
            else if (rc != 0 && rc != -ERANGE) return 10;
            break;
        case 2:
            rc = mpq_dict_delete(g_d, k, klen);
            if (rc != 0 && rc != -ENOENT) return 3;
            break;
        case 3:
            if (mpq_dict_add(g_d, "counter", 7, 1, NULL) != 0) return 4;
            g_st->adds_done[slot]++;
            break;
        case 4:
            item[0] = slot;
            item[1] = g_st->appends_done[slot];
            rc = mpq_list_append(g_l, item, sizeof item);
            if (rc == -ENOSPC) mpq_list_pop(g_l, 0, NULL, 0, NULL);
            else if (rc != 0) return 5;
            else g_st->appends_done[slot]++;
            break;
        default:
            rc = mpq_dict_get(g_d, k, klen, got, sizeof got, &len);
            if (rc == 0 && !model_ok(got, len, key)) return 6;
            if (rc != 0 && rc != -ENOENT) return 7;
        }
    }
    return 0;
}

/* Random workers are SIGKILLed at random instants, in the middle of sets,
   deletes, adds and appends, and replaced. Afterwards every key holds a
   whole value written to it, the counter is exact but for adds of killed
   workers in flight, the key count matches the keys, the list's items are
   whole and each worker's in its order, and nobody is left blocked. */
static void test_dict_kill_storm(void)
{
    static mpq_process w[STORM_W];
    uint64_t seed = 99;
    int i, k, next = 0, rc;
    int64_t adds = 0, counter;
    long keys = 0, n;
    size_t pos = 0, klen, len;
    char kb[32];
    unsigned char vb[MODEL_VMAX];
    uint32_t item[2], expect[STORM_SLOTS];
    MPQT_NEED_DEAD_OWNER();
    g_st = (struct storm *)mpqt_shared(sizeof *g_st);
    CHECK_OK(mpq_dict_create(&g_d, &(mpq_dict_config){ .max_entries = STORM_KEYS + STABLE + 1, .max_key = 32,
                                                      .max_value = MODEL_VMAX }));
    CHECK_OK(mpq_list_create(&g_l, &(mpq_list_config){ .capacity = 500, .max_item = 8 }));
    for (i = 0; i < STABLE; i++) {
        uint64_t r = 7;
        model_key(kb, &klen, STORM_KEYS + (uint32_t)i);
        len = model_value(vb, STORM_KEYS + (uint32_t)i, 0, 0, &r);
        CHECK_OK(mpq_dict_set(g_d, kb, klen, vb, len));
    }
    for (i = 0; i < STORM_W; i++) CHECK_OK(mpq_process_start(&w[i], storm_worker, (void *)(intptr_t)next++));
    for (k = 0; k < STORM_KILLS; k++) {
        struct timespec ts = { 0, 0 };
        ts.tv_nsec = (long)(mpqt_rand(&seed) % 3000) * 1000;   /* a random instant */
        nanosleep(&ts, NULL);
        i = (int)(mpqt_rand(&seed) % STORM_W);
        CHECK_OK(mpq_process_kill(&w[i], SIGKILL));
        CHECK_OK(mpq_process_join(&w[i], 10000));
        CHECK_EQ(w[i].exitcode, -SIGKILL);
        CHECK_OK(mpq_process_start(&w[i], storm_worker, (void *)(intptr_t)next++));
    }
    mpq__store32(&g_st->stop, 1, MPQ__RELEASE);
    for (i = 0; i < STORM_W; i++) {
        rc = mpq_process_join(&w[i], 15000);
        if (rc == -ETIMEDOUT) mpqt_fail(__FILE__, __LINE__, "a surviving worker stayed blocked");
        CHECK_OK(rc);
        CHECK_EQ(w[i].exitcode, 0);
    }
    /* The dict: whole values, a count that matches. */
    while ((rc = mpq_dict_next(g_d, &pos, kb, sizeof kb, &klen, vb, sizeof vb, &len)) == 1) {
        uint32_t key;
        keys++;
        if (klen == 7 && memcmp(kb, "counter", 7) == 0) continue;
        CHECK(sscanf(kb, "key-%u", &key) == 1);
        if (!model_ok(vb, len, key)) mpqt_fail(__FILE__, __LINE__, "key %u holds a torn value", key);
    }
    CHECK_EQ(rc, 0);
    for (i = 0; i < STABLE; i++) {   /* no unrelated key lost */
        model_key(kb, &klen, STORM_KEYS + (uint32_t)i);
        CHECK_OK(mpq_dict_get(g_d, kb, klen, vb, sizeof vb, &len));
    }
    for (i = 0; i < next; i++) adds += g_st->adds_done[i];
    CHECK_OK(mpq_dict_get(g_d, "counter", 7, &counter, sizeof counter, &len));
    CHECK(counter >= adds && counter <= adds + STORM_KILLS);
    /* Still fully usable: every key can be set again. That also locks
       every stripe a key of the storm lives in, repairing the count of one
       whose writer died; then the count is exact. */
    for (i = 0; i < STORM_KEYS + STABLE; i++) {
        uint64_t r = (uint64_t)i + 1;
        model_key(kb, &klen, (uint32_t)i);
        len = model_value(vb, (uint32_t)i, 0, 1, &r);
        CHECK_OK(mpq_dict_set(g_d, kb, klen, vb, len));
    }
    CHECK_OK(mpq_dict_add(g_d, "counter", 7, 0, NULL));
    CHECK_EQ(mpq_dict_len(g_d), STORM_KEYS + STABLE + 1);
    /* The list: whole items, each worker's in the order it appended. */
    memset(expect, 0, sizeof expect);
    n = mpq_list_len(g_l);
    for (i = 0; i < n; i++) {
        CHECK_OK(mpq_list_get(g_l, i, item, sizeof item, &len));
        CHECK(len == sizeof item && item[0] < (uint32_t)next);
        if (item[1] == UINT32_MAX) continue;  /* put in the middle, or over another */
        CHECK(item[1] >= expect[item[0]]);   /* pops from the front and sets may drop some */
        expect[item[0]] = item[1] + 1;
    }
    for (i = 0; i < next; i++) CHECK(expect[i] <= g_st->appends_done[i] + 1);
    printf("    (%ld keys, counter %lld with %lld adds seen done, %ld items, %d workers killed)\n", keys,
           (long long)counter, (long long)adds, n, STORM_KILLS);
    CHECK_OK(mpq_dict_close(g_d));
    CHECK_OK(mpq_list_close(g_l));
}

static const mpqt_case cases[] = {
    MPQT(test_dict_manager_example, 60, 0),
    MPQT(test_dict_basic, 10, 0),
    MPQT(test_dict_churn_keeps_probes_short, 60, 0),
    MPQT(test_dict_processes_model, 120, 0),
    MPQT(test_dict_threads, 120, 1),
    MPQT(test_list_basic, 10, 0),
    MPQT(test_list_appends, 120, 0),
    MPQT(test_dict_named_across_exec, 120, 0),
    MPQT(test_dict_corrupt_images, 120, 0),
    MPQT(test_dict_dead_inserter_repaired, 30, 0),
    MPQT(test_list_dead_appender_repaired, 30, 0),
    MPQT(test_dict_kill_storm, 240, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
