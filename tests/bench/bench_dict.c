/* bench_dict - mpq_dict and mpq_list beside what a C programmer writes by
   hand for the same job (an open-addressing table in shared memory under
   one robust process-shared pthread mutex) and beside Python's
   multiprocessing.Manager().dict() and .list(), which mpq mirrors (when
   python3 is on PATH).

   A dict of 100 000 keys of 16 bytes, values of 64 bytes and of 1 KiB:
   get, set (replace), set (insert), delete and counter add, by one process
   and by two at once (each pinned to its own CPU; total ops/s), keys
   chosen pseudo-randomly. The processes that measure are forked once per
   table and kept for all its runs, so no run pays for faulting in the
   mapping. Then list appends from 10 processes, and two tables of what
   stands out: appends by list length, and key churn by delete (deleted
   keys leave tombstones).

   Everything is measured in this one run and the ratios are what count.
   Every loop is bounded in count and in time; a worker that does not
   finish is killed (the figure is reported as failed), helpers die with
   the benchmark (PDEATHSIG), and a run stuck where no signal reaches ends
   the benchmark. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <sys/time.h>

enum {
    NKEYS = 100000,      /* keys in the dict                               */
    EXTRA = 1024,        /* max_entries = NKEYS + EXTRA (counters fit)     */
    NCOUNT = 64,         /* keys the counter adds go to                    */
    KEYLEN = 16,
    VMAX = 1024,
    ROUNDS = 3,          /* measured rounds per table: medians             */
    OP_MAX = 20000000,   /* get / set / add per process and run, at most   */
    NWORK = 16,          /* worker result slots                            */
    LIST_PROCS = 10,
    LIST_PER = 20000,    /* appends per process, at most                   */
    LIST_ITEM = 64,
    LEN_WINDOW = 10000,  /* appends timed at each list length              */
    CHURN_GENS = 12,     /* insert generations after clears, at most       */
    PY_KEYS = 1000,      /* keys of Python's dict (see the script)         */
    NOTE = 160
};
#define OP_CAP 0.2       /* seconds of get / set / add per run              */
#define BULK_LIMIT 5.0   /* an insert or delete of the keys past this: given up */
#define LIST_CAP 0.3     /* seconds of appends per list process             */
#define CHURN_LIMIT 1.0  /* seconds one churn generation may take           */
#define CHURN_TOTAL 6.0  /* seconds for all churn generations of a table    */
#define GRACE 2.0        /* seconds a worker has past its limit            */
#define COUNTER_GEN 0xffffffffu

static const char *errtext(int rc) { return strerror(rc < 0 ? -rc : rc); }

/* --- the tables ------------------------------------------------------------ */

typedef struct impl {
    const char *name;
    int  (*create)(uint32_t vmax);
    void (*destroy)(void);
    int  (*clear)(void);
    int  (*set)(const void *key, const void *val, size_t vlen);
    int  (*get)(const void *key, void *buf, size_t cap, size_t *vlen);
    int  (*del)(const void *key);
    int  (*add)(const void *key, int64_t delta);
} impl;

/* mpq_dict, anonymous: the workers forked after creation share it. */
static mpq_dict *g_md;
static int md_create(uint32_t vmax)
{
    mpq_dict_config c;
    memset(&c, 0, sizeof c);
    c.max_entries = NKEYS + EXTRA;
    c.max_key = KEYLEN;
    c.max_value = vmax;
    return mpq_dict_create(&g_md, &c);
}
static void md_destroy(void) { mpq_dict_close(g_md); g_md = NULL; }
static int md_clear(void) { return mpq_dict_clear(g_md); }
static int md_set(const void *k, const void *v, size_t n) { return mpq_dict_set(g_md, k, KEYLEN, v, n); }
static int md_get(const void *k, void *b, size_t cap, size_t *n) { return mpq_dict_get(g_md, k, KEYLEN, b, cap, n); }
static int md_del(const void *k) { return mpq_dict_delete(g_md, k, KEYLEN); }
static int md_add(const void *k, int64_t d) { return mpq_dict_add(g_md, k, KEYLEN, d, NULL); }

/* The fraction of mpq_dict's slots that are not EMPTY (live keys and
   tombstones: a lookup of a missing key probes up to an EMPTY slot).
   Reads mpq's internals; this file includes the implementation. */
static double md_not_empty(void)
{
    uint32_t i, n = 0;
    for (i = 0; i < g_md->nslots; i++)
        if (MPQ__DST(mpq__load64(&mpq__dslot_at(g_md, i)->meta, MPQ__RELAXED)) != MPQ__D_EMPTY) n++;
    return (double)n / (double)g_md->nslots;
}

/* --- the table a C programmer writes by hand --------------------------------

   Open addressing with linear probing in one MAP_SHARED|MAP_ANONYMOUS
   mapping: fixed-size entries (state, value length, key, value), twice as
   many slots as keys (a power of two), tombstones for deletes, and one
   process-shared robust pthread mutex around every call. When live keys
   and tombstones would fill 3/4 of the slots, the tombstones are purged
   (a private copy of the live entries goes back in); clear empties every
   slot. An insert writes the entry's state last, so a writer killed there
   leaves the key whole or absent; a replace copies the value in place, so
   one killed mid-copy leaves that value torn (what such a table accepts).
   EOWNERDEAD: the counts are recounted and the mutex made consistent. */

enum { HT_EMPTY, HT_LIVE, HT_TOMB, HT_HDR = 128 };
typedef struct ht_ent { uint32_t state, vlen; uint64_t key[2]; /* then the value */ } ht_ent;
typedef struct ht_head { pthread_mutex_t mu; uint64_t live, used; /* used: live + tombstones */ } ht_head;
typedef char ht_assert_head[sizeof(ht_head) <= HT_HDR ? 1 : -1];

static ht_head *g_ht;
static char *g_hslots;
static size_t g_hsize, g_hstride;
static uint32_t g_hcap, g_hvmax;

static ht_ent *ht_at(uint32_t i) { return (ht_ent *)(void *)(g_hslots + (size_t)i * g_hstride); }

static uint64_t ht_hash(const uint64_t k[2])
{
    uint64_t h = (k[0] ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 31) ^ k[1]) * 0x94d049bb133111ebull;
    return h ^ (h >> 29);
}

static void ht_recount(void)
{
    uint32_t i;
    g_ht->live = g_ht->used = 0;
    for (i = 0; i < g_hcap; i++) {
        uint32_t s = ht_at(i)->state;
        g_ht->live += s == HT_LIVE;
        g_ht->used += s != HT_EMPTY;
    }
}

static int ht_lock(void)
{
    int rc = pthread_mutex_lock(&g_ht->mu);
    if (rc == EOWNERDEAD) {
        ht_recount();
        rc = pthread_mutex_consistent(&g_ht->mu);
    }
    return -rc;
}
static void ht_unlock(void) { pthread_mutex_unlock(&g_ht->mu); }

/* Key k's entry; or NULL, with *slot = where k would go (the first
   tombstone or empty slot on its way; g_hcap if there is none). */
static ht_ent *ht_find(const uint64_t k[2], uint32_t *slot)
{
    uint32_t i = (uint32_t)ht_hash(k) & (g_hcap - 1), n, at = g_hcap;
    for (n = 0; n < g_hcap; n++, i = (i + 1) & (g_hcap - 1)) {
        ht_ent *e = ht_at(i);
        if (e->state == HT_LIVE) {
            if (e->key[0] == k[0] && e->key[1] == k[1]) return e;
            continue;
        }
        if (at == g_hcap) at = i;
        if (e->state == HT_EMPTY) break;
    }
    *slot = at;
    return NULL;
}

static void ht_purge(void)
{
    char *tmp = (char *)malloc((size_t)g_ht->live * g_hstride + 1);
    size_t n = 0, j;
    uint32_t i, slot;
    if (!tmp) return;   /* the tombstones stay: slower, still correct */
    for (i = 0; i < g_hcap; i++)
        if (ht_at(i)->state == HT_LIVE) memcpy(tmp + n++ * g_hstride, ht_at(i), g_hstride);
    for (i = 0; i < g_hcap; i++) ht_at(i)->state = HT_EMPTY;
    for (j = 0; j < n; j++) {
        ht_ent *e = (ht_ent *)(void *)(tmp + j * g_hstride);
        ht_find(e->key, &slot);
        memcpy(ht_at(slot), e, g_hstride);
    }
    g_ht->live = g_ht->used = n;
    free(tmp);
}

/* Under the lock: k (found at e, or to go at slot) gets the value v. */
static int ht_put(const uint64_t k[2], ht_ent *e, uint32_t slot, const void *v, size_t vlen)
{
    if (!e) {
        if (g_ht->live >= NKEYS + EXTRA || slot == g_hcap) return -ENOSPC;
        if (ht_at(slot)->state == HT_EMPTY && g_ht->used + 1 > (uint64_t)g_hcap / 4 * 3) {
            ht_purge();
            ht_find(k, &slot);
        }
        e = ht_at(slot);
        if (e->state == HT_EMPTY) g_ht->used++;
        e->key[0] = k[0];
        e->key[1] = k[1];
        e->vlen = (uint32_t)vlen;
        memcpy(e + 1, v, vlen);
        __atomic_store_n(&e->state, (uint32_t)HT_LIVE, __ATOMIC_RELEASE);   /* last */
        g_ht->live++;
        return 0;
    }
    e->vlen = (uint32_t)vlen;
    memcpy(e + 1, v, vlen);
    return 0;
}

static int ht_create(uint32_t vmax)
{
    pthread_mutexattr_t a;
    void *p;
    int rc;
    g_hcap = 8;
    while (g_hcap < 2u * (NKEYS + EXTRA)) g_hcap <<= 1;
    g_hvmax = vmax;
    g_hstride = (sizeof(ht_ent) + vmax + 7) / 8 * 8;
    g_hsize = HT_HDR + (size_t)g_hcap * g_hstride;
    p = mmap(NULL, g_hsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -errno;
    g_ht = (ht_head *)p;
    g_hslots = (char *)p + HT_HDR;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    rc = pthread_mutex_init(&g_ht->mu, &a);
    pthread_mutexattr_destroy(&a);
    if (rc != 0) munmap(p, g_hsize);
    return -rc;
}

static void ht_destroy(void)
{
    pthread_mutex_destroy(&g_ht->mu);
    munmap(g_ht, g_hsize);
    g_ht = NULL;
}

static int ht_clear(void)
{
    uint32_t i;
    int rc = ht_lock();
    if (rc != 0) return rc;
    for (i = 0; i < g_hcap; i++) ht_at(i)->state = HT_EMPTY;
    g_ht->live = g_ht->used = 0;
    ht_unlock();
    return 0;
}

static int ht_set(const void *key, const void *v, size_t vlen)
{
    uint64_t k[2];
    uint32_t slot = 0;
    ht_ent *e;
    int rc;
    if (vlen > g_hvmax) return -EMSGSIZE;
    memcpy(k, key, sizeof k);
    if ((rc = ht_lock()) != 0) return rc;
    e = ht_find(k, &slot);
    rc = ht_put(k, e, slot, v, vlen);
    ht_unlock();
    return rc;
}

static int ht_get(const void *key, void *buf, size_t cap, size_t *vlen)
{
    uint64_t k[2];
    uint32_t slot;
    ht_ent *e;
    int rc;
    memcpy(k, key, sizeof k);
    if ((rc = ht_lock()) != 0) return rc;
    if (!(e = ht_find(k, &slot))) rc = -ENOENT;
    else if ((*vlen = e->vlen) > cap) rc = -EMSGSIZE;
    else memcpy(buf, e + 1, e->vlen);
    ht_unlock();
    return rc;
}

static int ht_del(const void *key)
{
    uint64_t k[2];
    uint32_t slot;
    ht_ent *e;
    int rc;
    memcpy(k, key, sizeof k);
    if ((rc = ht_lock()) != 0) return rc;
    if (!(e = ht_find(k, &slot))) rc = -ENOENT;
    else {
        e->state = HT_TOMB;
        g_ht->live--;
    }
    ht_unlock();
    return rc;
}

static int ht_add(const void *key, int64_t delta)
{
    uint64_t k[2];
    uint32_t slot = 0;
    int64_t x = delta;
    ht_ent *e;
    int rc;
    memcpy(k, key, sizeof k);
    if ((rc = ht_lock()) != 0) return rc;
    if (!(e = ht_find(k, &slot))) rc = ht_put(k, NULL, slot, &x, sizeof x);
    else if (e->vlen != sizeof x) rc = -EINVAL;
    else {
        memcpy(&x, e + 1, sizeof x);
        x = (int64_t)((uint64_t)x + (uint64_t)delta);
        memcpy(e + 1, &x, sizeof x);
    }
    ht_unlock();
    return rc;
}

static const impl impl_mpq = { "mpq_dict", md_create, md_destroy, md_clear, md_set, md_get, md_del, md_add };
static const impl impl_ht = { "one-mutex table", ht_create, ht_destroy, ht_clear, ht_set, ht_get, ht_del, ht_add };
static const impl *const impls[2] = { &impl_mpq, &impl_ht };

/* --- workers --------------------------------------------------------------- */

enum { OP_GET, OP_SET, OP_INS, OP_DEL, OP_ADD, NOPS, OP_TOUCH = NOPS };
static const char *const op_name[NOPS] = {
    "get (hit)", "set (replace)", "set (insert new keys, emptied dict)", "delete", "counter add (64 keys)"
};

struct shared {
    uint32_t cmd[2];           /* bumped by the parent: a command for worker i */
    uint32_t quit, ready, go, done;
    int op, np;
    uint32_t gen, vsize;
    double cap, limit;
    long ops[NWORK];
    double secs[NWORK];
    int err[NWORK];
};

static struct shared *sh;
static const impl *g_impl;     /* the table the pool works on */
static pid_t g_pool[2];

static void mkkey(uint64_t k[2], uint32_t gen, uint32_t i)
{
    k[0] = 0x6b65793a00000000ull | gen;
    k[1] = i;
}

/* The keys in a scrambled order: a bijection of [0, NKEYS) (48271 is
   prime, so coprime with 100000). */
static uint32_t perm(uint32_t i) { return (uint32_t)(((uint64_t)i * 48271u + 12345u) % NKEYS); }

static uint32_t rnd_below(uint64_t *s, uint32_t n)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (uint32_t)((((x * 0x2545f4914f6cdd1dull) >> 32) * n) >> 32);
}

/* Worker me's part of the command in sh: a bulk op (insert, delete, or a
   get of every key: OP_TOUCH) goes through keys me, me + np, ... in the
   scrambled order, up to sh->limit seconds; get / set / add pick keys at
   random for sh->cap seconds. */
static void run_cmd(int me)
{
    const impl *k = g_impl;
    uint64_t key[2], rng = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1) + sh->gen;
    unsigned char val[VMAX], buf[VMAX];
    size_t vs = sh->vsize, len = 0;
    int op = sh->op, np = sh->np, rc = 0;
    uint32_t gen = sh->gen, i;
    double t0, cap = sh->cap, limit = sh->limit;
    long n = 0;
    rng |= 1;
    memset(val, 'v', vs);
    mpq__add32(&sh->ready, 1, MPQ__RELEASE);
    while (!mpq__load32(&sh->go, MPQ__ACQUIRE)) sched_yield();
    t0 = bench_now();
    if (op == OP_INS || op == OP_DEL || op == OP_TOUCH) {
        for (i = (uint32_t)me; i < NKEYS; i += (uint32_t)np) {
            mkkey(key, gen, op == OP_TOUCH ? i : perm(i));
            if (op == OP_INS) rc = k->set(key, val, vs);
            else if (op == OP_DEL) rc = k->del(key);
            else if ((rc = k->get(key, buf, sizeof buf, &len)) == 0 && len != vs) rc = -EIO;
            if (rc != 0) break;
            if (!(++n & 255) && bench_now() - t0 > limit) break;
        }
    } else {
        while (n < OP_MAX && ((n & 63) || bench_now() - t0 < cap)) {
            uint32_t r = rnd_below(&rng, NKEYS);
            if (op == OP_GET) {
                mkkey(key, gen, r);
                if ((rc = k->get(key, buf, sizeof buf, &len)) == 0 && len != vs) rc = -EIO;
            } else if (op == OP_SET) {
                mkkey(key, gen, r);
                memcpy(val, &n, sizeof n);
                rc = k->set(key, val, vs);
            } else {
                mkkey(key, COUNTER_GEN, r % NCOUNT);
                rc = k->add(key, 1);
            }
            if (rc != 0) break;
            n++;
        }
    }
    sh->secs[me] = bench_now() - t0;
    sh->ops[me] = n;
    sh->err[me] = rc;
    mpq__add32(&sh->done, 1, MPQ__RELEASE);
}

/* A pool worker: pinned to CPU me, it runs the commands handed to it
   until told to quit; idle, it naps. */
static void pool_worker(int me, uint32_t seen)
{
    uint32_t c;
    bench_pin(me);
    for (;;) {
        while ((c = mpq__load32(&sh->cmd[me], MPQ__ACQUIRE)) == seen) bench_nap(0.0002);
        seen = c;
        if (mpq__load32(&sh->quit, MPQ__ACQUIRE)) _exit(0);
        run_cmd(me);
    }
}

static void pool_start(void)
{
    int i;
    sh->quit = 0;
    fflush(stdout);
    for (i = 0; i < 2; i++) {
        uint32_t seen = mpq__load32(&sh->cmd[i], MPQ__ACQUIRE);   /* before the fork: no command is missed */
        if ((g_pool[i] = bench_fork()) == 0) pool_worker(i, seen);
    }
}

static void pool_stop(void)
{
    int i;
    mpq__store32(&sh->quit, 1, MPQ__RELEASE);
    for (i = 0; i < 2; i++) mpq__add32(&sh->cmd[i], 1, MPQ__RELEASE);
    bench_reap(g_pool, 2, GRACE);
}

typedef struct result {
    double rate;   /* ops/s, all processes together; -1: failed */
    long ops;
    int complete;  /* a bulk op got through all its keys */
} result;

/* Runs op on np workers of the pool: ops per second all told (total ops
   over the longest worker's time), or rate -1 with a note. A worker past
   its limit is killed, and the pool forked anew. */
static result command(int op, int np, uint32_t gen, uint32_t vsize, double limit, char *note)
{
    result res = { -1, 0, 0 };
    double t0, worst = 0, wait = (op == OP_GET || op == OP_SET || op == OP_ADD ? OP_CAP : limit) + GRACE;
    int i, rc = 0;
    sh->op = op;
    sh->np = np;
    sh->gen = gen;
    sh->vsize = vsize;
    sh->cap = OP_CAP;
    sh->limit = limit;
    sh->ready = sh->go = sh->done = 0;
    for (i = 0; i < np; i++) {
        sh->ops[i] = 0;
        sh->secs[i] = 0;
        sh->err[i] = 0;
    }
    for (i = 0; i < np; i++) mpq__add32(&sh->cmd[i], 1, MPQ__RELEASE);
    t0 = bench_now();
    while (mpq__load32(&sh->ready, MPQ__ACQUIRE) != (uint32_t)np && bench_now() - t0 < 5) bench_nap(0.0005);
    mpq__store32(&sh->go, 1, MPQ__RELEASE);
    t0 = bench_now();
    while (mpq__load32(&sh->done, MPQ__ACQUIRE) != (uint32_t)np && bench_now() - t0 < wait) bench_nap(0.001);
    if (mpq__load32(&sh->done, MPQ__ACQUIRE) != (uint32_t)np) {
        snprintf(note, NOTE, "%s, %d process(es): a worker did not finish within %.1f s: killed", op_name[op < NOPS ? op : 0],
                 np, wait);
        for (i = 0; i < 2; i++)
            if (g_pool[i] > 0) kill(g_pool[i], SIGKILL);
        bench_reap(g_pool, 2, GRACE);
        pool_start();
        return res;
    }
    for (i = 0; i < np; i++) {
        if (sh->err[i] && !rc) rc = sh->err[i];
        res.ops += sh->ops[i];
        if (sh->secs[i] > worst) worst = sh->secs[i];
    }
    res.complete = (op == OP_INS || op == OP_DEL || op == OP_TOUCH) ? res.ops == NKEYS : 1;
    if (rc != 0) {
        snprintf(note, NOTE, "%s, %d process(es): %d (%s) after %ld ops", op < NOPS ? op_name[op] : "touch", np, rc,
                 errtext(rc), res.ops);
        return res;
    }
    if (worst > 0 && res.ops > 0) res.rate = (double)res.ops / worst;
    return res;
}

/* The sum of the counters (a missing one counts 0), or -1 on an error. */
static long counter_sum(const impl *k)
{
    uint64_t key[2];
    int64_t v, sum = 0;
    size_t len;
    uint32_t j;
    for (j = 0; j < NCOUNT; j++) {
        int rc;
        mkkey(key, COUNTER_GEN, j);
        rc = k->get(key, &v, sizeof v, &len);
        if (rc == -ENOENT) continue;
        if (rc != 0 || len != sizeof v) return -1;
        sum += v;
    }
    return (long)sum;
}

/* --- printing -------------------------------------------------------------- */

/* A rate with its unit, or "failed" / "skipped". */
static const char *rate(double v)
{
    static char b[8][48];
    static int at;
    char *s = b[at++ & 7];
    if (v == -2) snprintf(s, sizeof b[0], "skipped");
    else if (v < 0) snprintf(s, sizeof b[0], "failed");
    else if (v >= 1e6) snprintf(s, sizeof b[0], "%.2f M/s", v / 1e6);
    else if (v >= 1e3) snprintf(s, sizeof b[0], "%.1f k/s", v / 1e3);
    else snprintf(s, sizeof b[0], "%.0f /s", v);
    return s;
}


/* A target over both value sizes: met only if both ratios reach it. */
static void target(const char *what, const double num[2], const double den[2], double goal)
{
    char r[2][32];
    int i, have = 1, met = 1;
    for (i = 0; i < 2; i++) {
        if (num[i] <= 0 || den[i] <= 0) {
            snprintf(r[i], sizeof r[i], "-");
            have = 0;
            continue;
        }
        snprintf(r[i], sizeof r[i], num[i] / den[i] >= 100 ? "%.0f×" : "%.2f×", num[i] / den[i]);
        if (num[i] / den[i] < goal) met = 0;
    }
    printf("| %s | %s | %s | ≥ %.0f× | %s |\n", what, r[0], r[1], goal,
           !met ? "MISSED" : have ? "met" : "not measured");
}

/* --- the dict measurements ------------------------------------------------- */

static const uint32_t vsizes[2] = { 64, 1024 };

/* fig[impl][value size][processes - 1][op], medians of ROUNDS rounds */
static double fig[2][2][2][NOPS];
static int lost[2][2][2];   /* counter adds that went missing */

static double median3(double *v, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (v[i] < 0) return -1;
    return bench_median(v, n);
}

/* One table (impl ii, value size vi): created, a pool forked on it, a
   warm-up round (both workers touch every key), then ROUNDS rounds of:
   clear; insert the keys; get; set; add; delete - with one process and
   with two. Every round inserts the same keys (see the churn table for
   fresh ones). */
static void measure_dict(int ii, int vi)
{
    const impl *k = impls[ii];
    double v[2][NOPS][ROUNDS];
    char note[NOTE], what[80];
    int r, np, op, rc, failed = 0;
    snprintf(what, sizeof what, "%s, %u-byte values", k->name, vsizes[vi]);
    for (np = 0; np < 2; np++)
        for (op = 0; op < NOPS; op++) fig[ii][vi][np][op] = -1;
    if ((rc = k->create(vsizes[vi])) != 0) {
        snprintf(note, sizeof note, "create: %d (%s)", rc, errtext(rc));
        bench_note(what, note);
        return;
    }
    g_impl = k;
    pool_start();
    bench_cap_arm(120);
    note[0] = 0;
    {
        static const int warm[] = { OP_INS, OP_TOUCH, OP_SET, OP_ADD, OP_DEL };
        for (op = 0; op < 5; op++) {
            result x = command(warm[op], 2, 1, vsizes[vi], BULK_LIMIT, note);
            if (x.rate < 0 || !x.complete) failed = 1;
        }
        if (failed) bench_note(what, note[0] ? note : "warm-up: an insert or delete did not finish");
    }
    for (r = 0; r < ROUNDS; r++)
        for (np = 0; np < 2; np++) {
            long before, after;
            result x;
            int order[] = { OP_INS, OP_GET, OP_SET, OP_ADD, OP_DEL }, j;
            if ((rc = k->clear()) != 0) {
                snprintf(note, sizeof note, "clear: %d (%s)", rc, errtext(rc));
                bench_note(what, note);
            }
            for (j = 0; j < NOPS; j++) {
                op = order[j];
                note[0] = 0;
                before = op == OP_ADD ? counter_sum(k) : 0;
                x = command(op, np + 1, 1, vsizes[vi], BULK_LIMIT, note);
                if (x.rate >= 0 && !x.complete) {
                    snprintf(note, sizeof note, "%s, %d process(es): stopped at the %.0f s limit after %ld of %d keys",
                             op_name[op], np + 1, BULK_LIMIT, x.ops, NKEYS);
                    x.rate = -1;
                }
                if (op == OP_ADD && x.rate >= 0) {
                    after = counter_sum(k);
                    if (before < 0 || after < 0 || after - before != x.ops) lost[ii][vi][np] = 1;
                }
                if (x.rate < 0 && !failed) {
                    failed = 1;
                    bench_note(what, note);
                }
                v[np][op][r] = x.rate;
            }
        }
    bench_cap_disarm();
    pool_stop();
    k->destroy();
    for (np = 0; np < 2; np++)
        for (op = 0; op < NOPS; op++) fig[ii][vi][np][op] = median3(v[np][op], ROUNDS);
}

/* Key churn on a 64-byte-value table, by delete (not clear): generation 0
   inserts NKEYS keys (untimed); each later generation deletes the keys of
   the one before and inserts NKEYS keys never seen before, one process.
   del[g], ins[g]: rates (-1: not run); occupancy[g] (mpq only): slots not
   EMPTY after generation g. A generation whose delete or insert takes
   over CHURN_LIMIT s ends the churn. Returns the generations run. */
static int churn(int ii, double *del, double *ins, double *occupancy)
{
    const impl *k = impls[ii];
    char note[NOTE] = "", what[80];
    double t0;
    int g, rc, run = 0;
    snprintf(what, sizeof what, "churn, %s", k->name);
    for (g = 0; g <= CHURN_GENS; g++) del[g] = ins[g] = occupancy[g] = -1;
    if ((rc = k->create(vsizes[0])) != 0) {
        snprintf(note, sizeof note, "create: %d (%s)", rc, errtext(rc));
        bench_note(what, note);
        return 0;
    }
    g_impl = k;
    pool_start();
    bench_cap_arm(60);
    t0 = bench_now();
    for (g = 0; g <= CHURN_GENS && bench_now() - t0 < CHURN_TOTAL; g++) {
        result x, y;
        if (g > 0) {
            x = command(OP_DEL, 1, 1000 + (uint32_t)g - 1, vsizes[0], CHURN_LIMIT, note);
            if (x.rate < 0) {
                bench_note(what, note);
                break;
            }
            del[g] = x.rate;
            if (!x.complete) {
                snprintf(note, sizeof note, "generation %d: the delete stopped at the %.1f s limit after %ld of %d keys",
                         g, CHURN_LIMIT, x.ops, NKEYS);
                bench_note(what, note);
                run = g + 1;
                break;
            }
        }
        y = command(OP_INS, 1, 1000 + (uint32_t)g, vsizes[0], g ? CHURN_LIMIT : BULK_LIMIT, note);
        if (y.rate < 0) {
            bench_note(what, note);
            break;
        }
        ins[g] = y.rate;
        if (k == &impl_mpq) occupancy[g] = md_not_empty();
        run = g + 1;
        if (!y.complete) {
            snprintf(note, sizeof note, "generation %d: the insert stopped at the %.1f s limit after %ld of %d keys", g,
                     CHURN_LIMIT, y.ops, NKEYS);
            bench_note(what, note);
            break;
        }
    }
    bench_cap_disarm();
    pool_stop();
    k->destroy();
    return run;
}

/* --- lists ----------------------------------------------------------------- */

static void list_appender(mpq_list *l, int me)
{
    unsigned char item[LIST_ITEM];
    long n = 0;
    int rc = 0;
    double t0;
    bench_pin(me);
    memset(item, 'i', sizeof item);
    mpq__add32(&sh->ready, 1, MPQ__RELEASE);
    while (!mpq__load32(&sh->go, MPQ__ACQUIRE)) sched_yield();
    t0 = bench_now();
    while (n < LIST_PER && ((n & 15) || bench_now() - t0 < LIST_CAP)) {
        memcpy(item, &n, sizeof n);
        if ((rc = mpq_list_append(l, item, sizeof item)) != 0) break;
        n++;
    }
    sh->secs[me] = bench_now() - t0;
    sh->ops[me] = n;
    sh->err[me] = rc;
    _exit(0);
}

/* Items per second that LIST_PROCS processes append to one mpq_list, all
   told (process i on CPU i modulo the CPUs); -1 with a note. */
static double list_mpq(char *note)
{
    mpq_list_config c;
    mpq_list *l;
    pid_t pid[LIST_PROCS];
    double t0, worst = 0;
    long total = 0, len;
    int i, rc, killed, err = 0;
    memset(&c, 0, sizeof c);
    c.capacity = LIST_PROCS * LIST_PER;
    c.max_item = LIST_ITEM;
    if ((rc = mpq_list_create(&l, &c)) != 0) {
        snprintf(note, NOTE, "create: %d (%s)", rc, errtext(rc));
        return -1;
    }
    memset(sh, 0, sizeof *sh);
    fflush(stdout);
    for (i = 0; i < LIST_PROCS; i++)
        if ((pid[i] = bench_fork()) == 0) list_appender(l, i);
    t0 = bench_now();
    while (mpq__load32(&sh->ready, MPQ__ACQUIRE) != LIST_PROCS && bench_now() - t0 < 5) bench_nap(0.001);
    mpq__store32(&sh->go, 1, MPQ__RELEASE);
    bench_nap(LIST_CAP);
    killed = bench_reap(pid, LIST_PROCS, 10);
    for (i = 0; i < LIST_PROCS; i++) {
        total += sh->ops[i];
        if (sh->secs[i] > worst) worst = sh->secs[i];
        if (sh->err[i]) err = sh->err[i];
    }
    len = mpq_list_len(l);
    mpq_list_close(l);
    if (killed) {
        snprintf(note, NOTE, "%d appender(s) did not finish within %.0f s: killed", killed, LIST_CAP + 10);
        return -1;
    }
    if (err) {
        snprintf(note, NOTE, "append: %d (%s)", err, errtext(err));
        return -1;
    }
    if (len != total) {
        snprintf(note, NOTE, "the list holds %ld items, %ld were appended", len, total);
        return -1;
    }
    return worst > 0 ? (double)total / worst : -1;
}

/* One process (CPU 0) appending to an mpq_list: items per second over
   LEN_WINDOW appends starting at each length in at[]; the appends in
   between are untimed. -1 where it was not reached in time. */
static void list_by_length(const long *at, int n, double *out, char *note)
{
    mpq_list_config c;
    mpq_list *l;
    unsigned char item[LIST_ITEM];
    long len = 0;
    double t0 = bench_now();
    int i, rc;
    for (i = 0; i < n; i++) out[i] = -1;
    memset(&c, 0, sizeof c);
    c.capacity = (uint32_t)(at[n - 1] + LEN_WINDOW);
    c.max_item = LIST_ITEM;
    if ((rc = mpq_list_create(&l, &c)) != 0) {
        snprintf(note, NOTE, "create: %d (%s)", rc, errtext(rc));
        return;
    }
    memset(item, 'i', sizeof item);
    bench_pin(0);
    for (i = 0; i < n; i++) {
        double t1;
        long j;
        while (len < at[i]) {
            if ((rc = mpq_list_append(l, item, sizeof item)) != 0) goto fail;
            if (!(++len & 1023) && bench_now() - t0 > 8) {
                snprintf(note, NOTE, "filling to %ld items took over 8 s: stopped at %ld", at[i], len);
                goto out;
            }
        }
        t1 = bench_now();
        for (j = 0; j < LEN_WINDOW; j++)
            if ((rc = mpq_list_append(l, item, sizeof item)) != 0) goto fail;
        out[i] = LEN_WINDOW / (bench_now() - t1);
        len += LEN_WINDOW;
    }
    goto out;
fail:
    snprintf(note, NOTE, "append at length %ld: %d (%s)", len, rc, errtext(rc));
out:
    bench_unpin();
    mpq_list_close(l);
}

/* --- Python's multiprocessing ---------------------------------------------

   One script: "dict <processes> <value size>" prints the get, set (replace),
   insert, delete and add rates of a Manager().dict() of PY_KEYS keys, and
   "list <processes>" the append rate of a Manager().list(). Workers are
   forked, worker i pinned to CPU i modulo the CPUs (the manager is not
   pinned); each figure is at most ~0.3 s of work per process (insert and
   delete together 0.6 s), every wait has a timeout, the manager and the
   workers die with the interpreter (PR_SET_PDEATHSIG through ctypes, when
   there is ctypes), and the interpreter gets SIGALRM after 30 s. */

static const char *const py_lines[] = {
    "import os, sys, time, random",
    "import multiprocessing as mp",
    "from multiprocessing.managers import SyncManager",
    "ctx = mp.get_context('fork')",
    "CAP = 0.3",
    "T = 10.0",
    "NK = 1000",
    "NC = 16",
    "def deathsig():",
    "    try:",
    "        import ctypes",
    "        ctypes.CDLL(None).prctl(1, 9)",
    "    except Exception:",
    "        pass",
    "def pin(cpu):",
    "    try:",
    "        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})",
    "    except (AttributeError, OSError):",
    "        pass",
    "def key(g, i):",
    "    return b'%07d:%08d' % (g, i)",
    "def ckey(j):",
    "    return b'counter:%08d' % j",
    "def work(d, op, me, n, vs, bar, q):",
    "    deathsig()",
    "    pin(me)",
    "    rnd = random.Random(me + 1)",
    "    val = b'v' * vs",
    "    try:",
    "        bar.wait(T)",
    "        if op == 'insdel':",
    "            per = NK // n",
    "            ic = dc = 0",
    "            it = dt = 0.0",
    "            g = 1",
    "            while g < 1000 and it + dt < 2 * CAP:",
    "                ks = [key(g, me * per + i) for i in range(per)]",
    "                rnd.shuffle(ks)",
    "                t0 = time.perf_counter()",
    "                for k in ks:",
    "                    d[k] = val",
    "                it += time.perf_counter() - t0",
    "                rnd.shuffle(ks)",
    "                t0 = time.perf_counter()",
    "                for k in ks:",
    "                    del d[k]",
    "                dt += time.perf_counter() - t0",
    "                ic += per",
    "                dc += per",
    "                g += 1",
    "            q.put((me, ic / it, dc / dt, 0))",
    "            return",
    "        c = 0",
    "        t0 = time.perf_counter()",
    "        while c < 200000 and (c % 16 or time.perf_counter() - t0 < CAP):",
    "            if op == 'get':",
    "                if len(d[key(0, rnd.randrange(NK))]) != vs:",
    "                    raise RuntimeError('get: a wrong value')",
    "            elif op == 'set':",
    "                d[key(0, rnd.randrange(NK))] = val",
    "            else:",
    "                d[ckey(rnd.randrange(NC))] += 1",
    "            c += 1",
    "        q.put((me, c / (time.perf_counter() - t0), 0.0, c))",
    "    except Exception as e:",
    "        q.put((me, -1.0, -1.0, repr(e)))",
    "def lwork(l, me, bar, q):",
    "    deathsig()",
    "    pin(me)",
    "    item = b'i' * 64",
    "    try:",
    "        bar.wait(T)",
    "        c = 0",
    "        t0 = time.perf_counter()",
    "        while c < 1000 and (c % 16 or time.perf_counter() - t0 < CAP):",
    "            l.append(item)",
    "            c += 1",
    "        q.put((me, c, time.perf_counter() - t0, 0))",
    "    except Exception as e:",
    "        q.put((me, -1.0, -1.0, repr(e)))",
    "def run(target, args, n):",
    "    q = ctx.Queue()",
    "    bar = ctx.Barrier(n)",
    "    ps = [ctx.Process(target=target, args=args(i, bar, q), daemon=True) for i in range(n)]",
    "    for p in ps:",
    "        p.start()",
    "    rs = [q.get(timeout=20) for p in ps]",
    "    for p in ps:",
    "        p.join(T)",
    "        if p.is_alive():",
    "            p.kill()",
    "    for r in rs:",
    "        if r[1] < 0:",
    "            raise SystemExit('worker: ' + str(r[3]))",
    "    return rs",
    "def manager():",
    "    m = SyncManager(ctx=ctx)",
    "    m.start(deathsig)",
    "    return m",
    "def counters(d):",
    "    return sum(d[ckey(j)] for j in range(NC))",
    "def dict_mode(n, vs):",
    "    m = manager()",
    "    try:",
    "        d = m.dict()",
    "        d.update({key(0, i): b'v' * vs for i in range(NK)})",
    "        d.update({ckey(j): 0 for j in range(NC)})",
    "        out = {}",
    "        for op in ('get', 'set', 'add'):",
    "            before = counters(d)",
    "            rs = run(work, lambda i, bar, q: (d, op, i, n, vs, bar, q), n)",
    "            out[op] = sum(r[1] for r in rs)",
    "            if op == 'add':",
    "                lost = sum(r[3] for r in rs) - (counters(d) - before)",
    "                adds = sum(r[3] for r in rs)",
    "        rs = run(work, lambda i, bar, q: (d, 'insdel', i, n, vs, bar, q), n)",
    "        out['ins'] = sum(r[1] for r in rs)",
    "        out['del'] = sum(r[2] for r in rs)",
    "    finally:",
    "        m.shutdown()",
    "    print('RESULT get=%g set=%g ins=%g del=%g add=%g lost=%d adds=%d ver=%s' % (out['get'], out['set'],",
    "          out['ins'], out['del'], out['add'], lost, adds, sys.version.split()[0]), flush=True)",
    "def list_mode(n):",
    "    m = manager()",
    "    try:",
    "        l = m.list()",
    "        rs = run(lwork, lambda i, bar, q: (l, i, bar, q), n)",
    "        total = sum(r[1] for r in rs)",
    "        if len(l) != total:",
    "            raise SystemExit('the list holds %d items, %d were appended' % (len(l), total))",
    "    finally:",
    "        m.shutdown()",
    "    print('RESULT append=%g ver=%s' % (total / max(r[2] for r in rs), sys.version.split()[0]), flush=True)",
    "if sys.argv[1] == 'dict':",
    "    dict_mode(int(sys.argv[2]), int(sys.argv[3]))",
    "else:",
    "    list_mode(int(sys.argv[2]))",
    NULL
};

static char py_script[8192];
static char py_version[32] = "?";
static int have_python;


/* Runs the script with arguments a1 a2 a3 into out (its RESULT line, or
   its last line); 0, or -1 with a note. The interpreter leads a process
   group of its own: whatever of it is left at the end is killed. */
static int py_run(const char *a1, const char *a2, const char *a3, char *res, size_t rcap, char *note)
{
    static char out[16384];
    size_t len = 0;
    int fds[2];
    pid_t pid, pgid;
    char *p;
    if (!have_python) { snprintf(note, NOTE, "python3 not on PATH"); return -1; }
    if (pipe(fds) != 0) { snprintf(note, NOTE, "pipe: %s", strerror(errno)); return -1; }
    fflush(stdout);
    if ((pid = bench_fork()) == 0) {
        setpgid(0, 0);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        alarm(30);   /* survives exec: the interpreter dies if it runs long */
        execlp("python3", "python3", "-c", py_script, a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);   /* either side may get there first */
    close(fds[1]);
    bench_cap_arm(35);
    while (len < sizeof out - 1) {
        ssize_t r = read(fds[0], out + len, sizeof out - 1 - len);
        if (r > 0) len += (size_t)r;
        else if (r < 0 && errno == EINTR && !bench_expired) continue;
        else break;
    }
    bench_cap_disarm();
    close(fds[0]);
    pgid = pid;
    bench_reap(&pid, 1, GRACE);
    if (pgid > 0) kill(-pgid, SIGKILL);   /* the manager or workers it left, if any */
    out[len] = 0;
    if ((p = strstr(out, "RESULT "))) {
        size_t n = strcspn(p, "\n");
        snprintf(res, rcap, "%.*s", (int)n, p);
        return 0;
    }
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' ')) out[--len] = 0;
    p = strrchr(out, '\n');
    snprintf(note, NOTE, "python3 %s %s: %.120s", a1, a2, len ? (p ? p + 1 : out) : "no output (timed out?)");
    return -1;
}

/* Python's figures: py[value size][processes - 1][op]; -2 skipped, -1 failed. */
static double py[2][2][NOPS], py_list;
static long py_lost[2][2], py_adds[2][2];

static void measure_python(void)
{
    char res[512], note[NOTE], a2[8], a3[8], what[64];
    int vi, np, op;
    for (vi = 0; vi < 2; vi++)
        for (np = 0; np < 2; np++) {
            double g, s, i, d, a;
            long l, n;
            char ver[32];
            for (op = 0; op < NOPS; op++) py[vi][np][op] = have_python ? -1 : -2;
            py_lost[vi][np] = py_adds[vi][np] = -1;
            if (!have_python) continue;
            snprintf(a2, sizeof a2, "%d", np + 1);
            snprintf(a3, sizeof a3, "%u", vsizes[vi]);
            snprintf(what, sizeof what, "Python dict, %d process(es), %u-byte values", np + 1, vsizes[vi]);
            note[0] = 0;
            if (py_run("dict", a2, a3, res, sizeof res, note) != 0) {
                bench_note(what, note);
                continue;
            }
            if (sscanf(res, "RESULT get=%lf set=%lf ins=%lf del=%lf add=%lf lost=%ld adds=%ld ver=%31s", &g, &s, &i,
                       &d, &a, &l, &n, ver) != 8) {
                bench_note(what, res);
                continue;
            }
            py[vi][np][OP_GET] = g;
            py[vi][np][OP_SET] = s;
            py[vi][np][OP_INS] = i;
            py[vi][np][OP_DEL] = d;
            py[vi][np][OP_ADD] = a;
            py_lost[vi][np] = l;
            py_adds[vi][np] = n;
            snprintf(py_version, sizeof py_version, "%s", ver);
        }
    py_list = have_python ? -1 : -2;
    if (have_python) {
        char ver[32];
        double a;
        snprintf(a2, sizeof a2, "%d", LIST_PROCS);
        note[0] = 0;
        if (py_run("list", a2, "0", res, sizeof res, note) != 0) bench_note("Python list", note);
        else if (sscanf(res, "RESULT append=%lf ver=%31s", &a, ver) != 2) bench_note("Python list", res);
        else py_list = a;
    }
}

/* --- main ------------------------------------------------------------------ */

int main(void)
{
    static const long len_at[3] = { 0, 100000, 300000 };
    double len_rate[3], churn_rate[2][CHURN_GENS + 1], churn_del[2][CHURN_GENS + 1], churn_occ[2][CHURN_GENS + 1], mpq_list_rate;
    double num[2], den[2];
    char note[NOTE], name[160];
    int vi, np, op, ii, g, gens[2];

    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_cap_install("bench_dict");
    sh = (struct shared *)bench_shared(sizeof *sh);
    have_python = bench_have_python();
    bench_join_lines(py_script, sizeof py_script, py_lines);

    bench_header("mpq_dict and mpq_list vs a one-mutex table and Python's Manager");
    if (!have_python) printf("python3 is not on PATH: the Python rows are skipped\n\n");
    printf("A dict of %d keys of %d bytes; mpq_dict made with .max_entries = %d, .max_key = %d, .max_value = the\n"
           "value size. The one-mutex table: open addressing in MAP_SHARED|MAP_ANONYMOUS memory, linear\n"
           "probing, tombstones, fixed-size entries, %d slots, one robust process-shared pthread mutex.\n"
           "Keys at random for get / set / add (%.1f s per run); insert and delete go through all %d keys in a\n"
           "scrambled order; counter add is mpq_dict_add (the table: lock, += , unlock) on %d keys.\n"
           "2 processes: one pinned to CPU 0, one to CPU 1, at once; ops/s all told. Each table gets a warm-up\n"
           "round, then %d rounds of: clear; insert the keys (the same keys every round); get; set; add; delete.\n"
           "Medians of the %d rounds.\n\n",
           NKEYS, KEYLEN, NKEYS + EXTRA, KEYLEN, 262144, OP_CAP, NKEYS, NCOUNT, ROUNDS, ROUNDS);

    /* 1 and 2: the dicts, one table at a time */
    for (vi = 0; vi < 2; vi++)
        for (ii = 0; ii < 2; ii++) measure_dict(ii, vi);
    for (vi = 0; vi < 2; vi++) {
        printf("### Dict, %u-byte values: operations per second\n\n", vsizes[vi]);
        printf("| operation | mpq_dict, 1 process | one-mutex table, 1 process | mpq ÷ table | mpq_dict, 2 processes |"
               " one-mutex table, 2 processes | mpq ÷ table |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for (op = 0; op < NOPS; op++) {
            const char *l1 = op == OP_ADD && lost[0][vi][0] ? " (LOST UPDATES)" : "";
            const char *l2 = op == OP_ADD && lost[0][vi][1] ? " (LOST UPDATES)" : "";
            const char *h1 = op == OP_ADD && lost[1][vi][0] ? " (LOST UPDATES)" : "";
            const char *h2 = op == OP_ADD && lost[1][vi][1] ? " (LOST UPDATES)" : "";
            printf("| %s | %s%s | %s%s | %s | %s%s | %s%s | %s |\n", op_name[op], rate(fig[0][vi][0][op]), l1,
                   rate(fig[1][vi][0][op]), h1, bench_ratio(fig[0][vi][0][op], fig[1][vi][0][op]), rate(fig[0][vi][1][op]),
                   l2, rate(fig[1][vi][1][op]), h2, bench_ratio(fig[0][vi][1][op], fig[1][vi][1][op]));
        }
        printf("\n");
    }
    printf("(counter adds are checked: the counters' sum must grow by the adds made, else LOST UPDATES)\n");
    bench_flush_notes();

    /* 3: Python */
    measure_python();
    printf("\n### Python %s multiprocessing.Manager().dict(): operations per second\n\n", py_version);
    printf("%d keys (not %d: each access is a round trip to the manager process); 16-byte keys, bytes values;\n"
           "add is `d[k] += 1` on 16 keys - a get and a set, not atomic. Set (insert) and delete: the processes\n"
           "insert %d fresh keys (each its own share) in a shuffled order, then delete them, repeated for 0.6 s.\n"
           "The ratios put mpq_dict's figure with %d keys over Manager's.\n\n", PY_KEYS, NKEYS, PY_KEYS, NKEYS);
    printf("| operation | values | Manager, 1 process | mpq ÷ Manager | Manager, 2 processes | mpq ÷ Manager |\n"
           "|---|---|---:|---:|---:|---:|\n");
    for (op = 0; op < NOPS; op++)
        for (vi = 0; vi < 2; vi++)
            printf("| %s | %u B | %s | %s | %s | %s |\n", op_name[op], vsizes[vi], rate(py[vi][0][op]),
                   bench_ratio(fig[0][vi][0][op], py[vi][0][op]), rate(py[vi][1][op]), bench_ratio(fig[0][vi][1][op], py[vi][1][op]));
    for (vi = 0; vi < 2; vi++)
        if (py_adds[vi][1] > 0)
            printf("\n`d[k] += 1` from 2 processes, %u-byte values: %ld of %ld increments lost (Python's += on a proxy "
                   "is not atomic)", vsizes[vi], py_lost[vi][1], py_adds[vi][1]);
    printf("\n");
    bench_flush_notes();

    /* 4: lists */
    note[0] = 0;
    mpq_list_rate = list_mpq(note);
    if (mpq_list_rate < 0) bench_note("mpq_list, 10 processes", note);
    printf("\n### List append from %d processes (process i on CPU i modulo %ld), %d-byte items\n\n", LIST_PROCS,
           sysconf(_SC_NPROCESSORS_ONLN), LIST_ITEM);
    printf("| list | items/s, all told | mpq ÷ this |\n|---|---:|---:|\n");
    printf("| mpq_list_append (each process: %d appends or %.1f s, from an empty list) | %s | %s |\n", LIST_PER, LIST_CAP,
           rate(mpq_list_rate), bench_ratio(mpq_list_rate, mpq_list_rate));
    printf("| Python %s Manager().list().append (each process: 1000 appends or 0.3 s) | %s | %s |\n", py_version,
           rate(py_list), bench_ratio(mpq_list_rate, py_list));
    bench_flush_notes();

    note[0] = 0;
    list_by_length(len_at, 3, len_rate, note);
    if (note[0]) bench_note("mpq_list by length", note);
    printf("\n### mpq_list_append by list length (1 process, %d appends timed at each length)\n\n", LEN_WINDOW);
    printf("| list length | appends/s | ÷ at length 0 |\n|---:|---:|---:|\n");
    for (g = 0; g < 3; g++) printf("| %ld | %s | %s |\n", len_at[g], rate(len_rate[g]), bench_ratio(len_rate[g], len_rate[0]));
    bench_flush_notes();

    /* extra: key churn by delete */
    for (ii = 0; ii < 2; ii++) gens[ii] = churn(ii, churn_del[ii], churn_rate[ii], churn_occ[ii]);
    printf("\n### Key churn: delete the %d keys, insert %d fresh ones, generation after generation (64-byte "
           "values, 1 process)\n\n", NKEYS, NKEYS);
    printf("Generation 0 fills a new table (untimed); each later one deletes the keys of the one before and\n"
           "inserts %d keys never seen before (the churn ends at a delete or insert over %.1f s, or after %.0f s).\n"
           "\"Not EMPTY\": mpq_dict's slots holding a key or a tombstone after the generation (a lookup of a\n"
           "missing key, and so every insert, probes up to an EMPTY slot). The one-mutex table purges its\n"
           "tombstones when they and the keys fill 3/4 of its slots.\n\n", NKEYS, CHURN_LIMIT, CHURN_TOTAL);
    printf("| generation | mpq_dict deletes/s | mpq_dict inserts/s | mpq slots not EMPTY | one-mutex table deletes/s |"
           " one-mutex table inserts/s | mpq ÷ table, inserts |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    for (g = 1; g <= CHURN_GENS && (g < gens[0] || g < gens[1]); g++) {
        char occ[32] = "-";
        if (churn_occ[0][g] >= 0) snprintf(occ, sizeof occ, "%.1f%%", churn_occ[0][g] * 100);
        printf("| %d | %s | %s | %s | %s | %s | %s |\n", g, rate(churn_del[0][g]), rate(churn_rate[0][g]), occ,
               rate(churn_del[1][g]), rate(churn_rate[1][g]), bench_ratio(churn_rate[0][g], churn_rate[1][g]));
    }
    bench_flush_notes();

    if (access("/usr/include/lmdb.h", F_OK) != 0) printf("\nLMDB: not measured (liblmdb-dev not installed)\n");
    else printf("\nLMDB: not measured (lmdb.h is there, but this benchmark does not link liblmdb)\n");

    /* 5: targets */
    printf("\n### targets (this run)\n\n| target | 64 B values | 1 KiB values | goal | |\n|---|---:|---:|---:|---|\n");
    for (op = 0; op < NOPS; op++)
        for (np = 0; np < 2; np++) {
            for (vi = 0; vi < 2; vi++) {
                num[vi] = fig[0][vi][np][op];
                den[vi] = py[vi][np][op];
            }
            snprintf(name, sizeof name, "mpq_dict %s, %d process%s, vs Manager().dict()", op_name[op], np + 1,
                     np ? "es" : "");
            target(name, num, den, 500);
        }
    for (vi = 0; vi < 2; vi++) {
        num[vi] = fig[0][vi][1][OP_GET];
        den[vi] = fig[1][vi][1][OP_GET];
    }
    target("mpq_dict get (hit), 2 processes, vs the one-mutex table", num, den, 2);
    for (op = OP_SET; op <= OP_INS; op++)
        for (np = 0; np < 2; np++) {
            for (vi = 0; vi < 2; vi++) {
                num[vi] = fig[0][vi][np][op];
                den[vi] = fig[1][vi][np][op];
            }
            snprintf(name, sizeof name, "mpq_dict %s, %d process%s, vs the one-mutex table", op_name[op], np + 1,
                     np ? "es" : "");
            target(name, num, den, 1);
        }
    printf("\n(this machine's CPUs may be shared with other work: figures from one run, ratios within it)\n");
    return 0;
}
