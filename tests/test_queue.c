/* Tests of mpq_queue: the basic contract, bad input, close and drain,
   exactly-once FIFO delivery with P producer x C consumer processes (put,
   zero-copy and batch paths), a named queue shared with an exec'd program,
   take-over of slots held by dead processes (pid reuse included), a kill
   storm, the poll descriptor, and corrupt segments. */
#define MPQ_IMPLEMENTATION
/* A process that names a point here dies of SIGKILL when it reaches it. */
static void mpqt_point(const char *name);
#define MPQ__TEST_POINT(name) mpqt_point(name)
#include "../mpq.h"
#include "mpq_test.h"

#include <sys/resource.h>

/* --- helpers ------------------------------------------------------------- */

static void start_peer(mpq_process *p, const char *name, const char *mode, const char *n)
{
    CHECK_OK(mpqt_start_helper(p, "queue_peer", name, mode, n, NULL));
}

static const char *volatile g_kill_point;
static volatile int g_kill_skip;   /* times g_kill_point passes before the kill */
static void mpqt_point(const char *name)
{
    if (g_kill_point && strcmp(name, g_kill_point) == 0 && g_kill_skip-- == 0) raise(SIGKILL);
}

/* Bytes a slot of new_queue's queues holds: 0 all of max_msg (no arena),
   else larger messages go to an arena of the default size (4 max_msg). */
static uint32_t g_inline;

/* A queue whose slots hold inline_max bytes, beside an arena of `arena`
   bytes (0: the default). */
static mpq_queue *new_arena_queue(uint32_t capacity, uint32_t max_msg, uint32_t inline_max, size_t arena)
{
    mpq_queue *q;
    mpq_queue_config c;
    memset(&c, 0, sizeof c);
    c.capacity = capacity;
    c.max_msg = max_msg;
    c.inline_max = inline_max;
    c.arena = arena;
    CHECK_OK(mpq_queue_create(&q, &c));
    return q;
}

static mpq_queue *new_queue(uint32_t capacity, uint32_t max_msg)
{
    return new_arena_queue(capacity, max_msg, g_inline, 0);
}

/* --- the basic contract ---------------------------------------------------- */

static void test_queue_basic(void)
{
    mpq_queue *q = new_queue(4, 100);
    char big[101], buf[200];
    size_t len = 0;
    int64_t t0;
    int i;
    memset(big, 'b', sizeof big);
    CHECK_EQ(mpq_queue_capacity(q), 4);
    CHECK_EQ(mpq_queue_max_msg(q), 100);
    CHECK_EQ(mpq_queue_count(q), 0);
    CHECK_OK(mpq_queue_put(q, "", 0, 0));             /* empty message */
    CHECK_OK(mpq_queue_put(q, big, 100, 0));          /* exactly max_msg */
    CHECK_ERR(mpq_queue_put(q, big, 101, 0), EMSGSIZE);
    CHECK_OK(mpq_queue_put(q, "abc", 3, 0));
    CHECK_EQ(mpq_queue_count(q), 3);
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK_EQ(len, 0);
    /* Too small a buffer: the length is reported and the message stays. */
    CHECK_ERR(mpq_queue_get(q, buf, 99, &len, 0), EMSGSIZE);
    CHECK_EQ(len, 100);
    CHECK_ERR(mpq_queue_get(q, NULL, 0, &len, 0), EMSGSIZE);
    CHECK_OK(mpq_queue_get(q, buf, 100, &len, 0));
    CHECK_EQ(len, 100);
    CHECK(memcmp(buf, big, 100) == 0);
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 3 && memcmp(buf, "abc", 3) == 0);
    /* Empty: try once, then a bounded wait. */
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EAGAIN);
    t0 = mpqt_ms();
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 60), ETIMEDOUT);
    CHECK(mpqt_ms() - t0 >= 59);
    /* Full: try once, then a bounded wait; FIFO across many laps. */
    for (i = 0; i < 4; i++) CHECK_OK(mpq_queue_put(q, &i, sizeof i, 0));
    CHECK_ERR(mpq_queue_put(q, "x", 1, 0), EAGAIN);
    t0 = mpqt_ms();
    CHECK_ERR(mpq_queue_put(q, "x", 1, 60), ETIMEDOUT);
    CHECK(mpqt_ms() - t0 >= 59);
    CHECK_EQ(mpq_queue_count(q), 4);
    for (i = 0; i < 1000; i++) {
        int v = -1, w = i + 4;
        CHECK_OK(mpq_queue_get(q, &v, sizeof v, &len, 0));
        CHECK_EQ(v, i);
        CHECK_OK(mpq_queue_put(q, &w, sizeof w, 0));
    }
    CHECK_OK(mpq_queue_close(q));
}

/* Every length from 0 to 300 goes through put/get, through packed
   put_batch/get_batch and through batches that cannot pack, byte for
   byte. Sources and destinations are heap blocks of exactly the message's
   size, so under ASan a copy that touched one byte outside [0, len)
   fails; empty messages also travel from and into NULL. */
static unsigned char pattern(size_t len, size_t k) { return (unsigned char)(len * 7u + k * 13u + 1u); }

static void test_queue_every_length(void)
{
    enum { MAX = 300, BATCH = 8 };
    mpq_queue *q = new_queue(8, 4096);
    size_t len, k, got;
    for (len = 0; len <= MAX; len++) {
        unsigned char *src = (unsigned char *)malloc(len ? len : 1), *dst = (unsigned char *)malloc(len ? len : 1);
        for (k = 0; k < len; k++) src[k] = pattern(len, k);
        memset(dst, 0xee, len ? len : 1);
        CHECK_OK(mpq_queue_put(q, src, len, 0));
        got = 12345;
        CHECK_OK(mpq_queue_get(q, dst, len, &got, 0));
        CHECK_EQ(got, len);
        CHECK(len == 0 || memcmp(src, dst, len) == 0);
        free(src);
        free(dst);
    }
    /* Batches of BATCH consecutive lengths, packed into one slot. */
    for (len = 0; len + BATCH <= MAX; len += 3) {
        const void *msgs[BATCH];
        size_t lens[BATCH], out[BATCH], total = 0, off = 0;
        unsigned char *dst;
        int i;
        for (i = 0; i < BATCH; i++) {
            unsigned char *m = (unsigned char *)malloc(len + (size_t)i + 1);
            lens[i] = len + (size_t)i;
            for (k = 0; k < lens[i]; k++) m[k] = pattern(lens[i], k);
            msgs[i] = m;
            total += lens[i];
        }
        dst = (unsigned char *)malloc(total ? total : 1);
        CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, BATCH, 0), BATCH);
        CHECK_EQ(mpq_queue_count(q), 1);    /* they travelled packed */
        CHECK_EQ(mpq_queue_get_batch(q, dst, total, out, BATCH, 0), BATCH);
        for (i = 0; i < BATCH; i++) {
            CHECK_EQ(out[i], lens[i]);
            CHECK(lens[i] == 0 || memcmp(dst + off, msgs[i], lens[i]) == 0);
            off += lens[i];
            free((void *)msgs[i]);
        }
        free(dst);
    }
    /* Batches that cannot pack (a 300-byte message fills a slot of this
       queue): each message in a slot of its own. */
    CHECK_OK(mpq_queue_close(q));
    q = new_queue(8, MAX);
    for (len = 0; len <= MAX; len++) {
        const void *msgs[2];
        size_t lens[2], out[2];
        unsigned char *a = (unsigned char *)malloc(len ? len : 1), *b = (unsigned char *)malloc(MAX), *dst;
        for (k = 0; k < len; k++) a[k] = pattern(len, k);
        for (k = 0; k < MAX; k++) b[k] = pattern(MAX, k);
        msgs[0] = a;
        msgs[1] = b;
        lens[0] = len;
        lens[1] = MAX;
        dst = (unsigned char *)malloc(len + MAX);
        CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 2, 0), 2);
        CHECK_EQ(mpq_queue_count(q), 2);
        CHECK_EQ(mpq_queue_get_batch(q, dst, len + MAX, out, 2, 0), 2);
        CHECK(out[0] == len && out[1] == MAX);
        CHECK(len == 0 || memcmp(dst, a, len) == 0);
        CHECK(memcmp(dst + len, b, MAX) == 0);
        free(a);
        free(b);
        free(dst);
    }
    /* Empty messages, from and into no buffer at all (NULL, length 0). */
    {
        const void *msgs[4] = { NULL, NULL, NULL, NULL };
        size_t lens[4] = { 0, 0, 0, 0 }, out[4];
        CHECK_OK(mpq_queue_put(q, NULL, 0, 0));
        CHECK_OK(mpq_queue_put(q, NULL, 0, 0));
        CHECK_EQ(mpq_queue_get_batch(q, NULL, 0, out, 4, 0), 2);     /* a slot each */
        CHECK(out[0] == 0 && out[1] == 0);
        CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 4, 0), 4);
        CHECK_EQ(mpq_queue_count(q), 1);                              /* packed */
        CHECK_EQ(mpq_queue_get_batch(q, NULL, 0, out, 4, 0), 4);
        CHECK_OK(mpq_queue_put(q, NULL, 0, 0));
        CHECK_OK(mpq_queue_get(q, NULL, 0, &got, 0));
        CHECK_EQ(got, 0);
    }
    CHECK_OK(mpq_queue_close(q));
}

static void test_queue_bad_input(void)
{
    mpq_queue *q;
    mpq_mutex *m;
    char name[64], buf[8];
    size_t len;
    void *slot = NULL;
    CHECK_ERR(mpq_queue_create(NULL, NULL), EINVAL);
    CHECK_ERR(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = (1u << 24) + 1 }), EINVAL);
    CHECK_ERR(mpq_queue_create(&q, &(mpq_queue_config){ .max_msg = (1u << 30) + 1 }), EINVAL);
    {   /* 2^24 slots of 1 GiB: too big to map (-ENOMEM), or to size (-EINVAL) */
        int rc = mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 1u << 24, .max_msg = 1u << 30 });
        CHECK(rc == -EINVAL || rc == -ENOMEM);
    }
    CHECK_ERR(mpq_queue_create(&q, &(mpq_queue_config){ .name = "no-slash" }), EINVAL);
    CHECK_ERR(mpq_queue_create(&q, &(mpq_queue_config){ .name = "/a/b" }), EINVAL);
    CHECK_ERR(mpq_queue_open(&q, "/mpqt-no-such-queue"), ENOENT);
    CHECK_ERR(mpq_queue_open(NULL, "/x"), EINVAL);
    CHECK_ERR(mpq_queue_open(&q, NULL), EINVAL);
    /* Zero means default; odd capacities round up to a power of two. */
    CHECK_OK(mpq_queue_create(&q, NULL));
    CHECK_EQ(mpq_queue_capacity(q), 1024);
    CHECK_EQ(mpq_queue_max_msg(q), 65536);
    CHECK_OK(mpq_queue_close(q));
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 1000, .max_msg = 1 }));
    CHECK_EQ(mpq_queue_capacity(q), 1024);
    CHECK_ERR(mpq_queue_put(NULL, "x", 1, 0), EINVAL);
    CHECK_ERR(mpq_queue_put(q, NULL, 1, 0), EINVAL);
    CHECK_OK(mpq_queue_put(q, NULL, 0, 0));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, NULL, 0), EINVAL);
    CHECK_ERR(mpq_queue_get(q, NULL, 4, &len, 0), EINVAL);
    CHECK_ERR(mpq_queue_get(NULL, buf, sizeof buf, &len, 0), EINVAL);
    CHECK_ERR(mpq_queue_commit(q, buf, 1), EINVAL);      /* not a slot */
    CHECK_ERR(mpq_queue_release(q, buf), EINVAL);
    CHECK_ERR(mpq_queue_cancel(q, NULL), EINVAL);
    CHECK_OK(mpq_queue_reserve(q, &slot, 0));
    CHECK_ERR(mpq_queue_commit(q, (char *)slot + 1, 1), EINVAL);  /* not its start */
    CHECK_ERR(mpq_queue_commit(q, slot, 2), EMSGSIZE);   /* stays reserved */
    CHECK_ERR(mpq_queue_release(q, slot), EINVAL);       /* not being read */
    CHECK_OK(mpq_queue_commit(q, slot, 1));
    CHECK_ERR(mpq_queue_commit(q, slot, 1), EINVAL);     /* not reserved any more */
    CHECK_ERR(mpq_queue_put_batch(q, NULL, NULL, 1, 0), EINVAL);
    CHECK_ERR(mpq_queue_get_batch(q, buf, sizeof buf, NULL, 1, 0), EINVAL);
    CHECK_ERR(mpq_queue_fileno(NULL), EINVAL);
    CHECK_EQ(mpq_queue_count(NULL), 0);
    CHECK_ERR(mpq_queue_close(NULL), EINVAL);
    CHECK_OK(mpq_queue_close(q));
    /* A name that holds another kind of object. */
    mpqt_name(name, sizeof name, "notq");
    CHECK_OK(mpq_mutex_create(&m, &(mpq_mutex_config){ .name = name }));
    CHECK_ERR(mpq_queue_open(&q, name), EINVAL);
    CHECK_OK(mpq_mutex_close(m));
    CHECK_OK(mpq_shm_unlink(name));
}

/* --- close ----------------------------------------------------------------- */

struct closer { mpq_queue *q; };

static int blocked_get(void *arg)
{
    char buf[8];
    size_t len;
    int rc = mpq_queue_get((mpq_queue *)arg, buf, sizeof buf, &len, 20000);
    return rc == -EPIPE ? 0 : 1;
}

static int blocked_put(void *arg)
{
    int rc = mpq_queue_put((mpq_queue *)arg, "x", 1, 20000);
    return rc == -EPIPE ? 0 : 1;
}

static void test_queue_close(void)
{
    mpq_queue *q = new_queue(2, 8), *full = new_queue(1, 8);
    mpq_process g, p;
    char buf[8];
    size_t len;
    /* Blocked on both sides, then closed: both wake with -EPIPE. */
    CHECK_OK(mpq_queue_put(full, "f", 1, 0));
    CHECK_OK(mpq_process_start(&g, blocked_get, q));
    CHECK_OK(mpq_process_start(&p, blocked_put, full));
    CHECK(mpqt_wait_sleeping(g.pid, 10000));
    CHECK(mpqt_wait_sleeping(p.pid, 10000));
    CHECK_OK(mpq_queue_shutdown(q, 0));
    CHECK_OK(mpq_queue_shutdown(full, 0));
    CHECK_OK(mpq_process_join(&g, 10000));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(g.exitcode, 0);
    CHECK_EQ(p.exitcode, 0);
    /* What was put before close is drained, then -EPIPE. */
    CHECK_OK(mpq_queue_get(full, buf, sizeof buf, &len, 0));
    CHECK(len == 1 && buf[0] == 'f');
    CHECK_ERR(mpq_queue_get(full, buf, sizeof buf, &len, 0), EPIPE);
    CHECK_ERR(mpq_queue_get(full, buf, sizeof buf, &len, -1), EPIPE);
    CHECK_ERR(mpq_queue_put(q, "x", 1, -1), EPIPE);
    CHECK_OK(mpq_queue_shutdown(q, 0));  /* idempotent */
    CHECK_OK(mpq_queue_close(q));
    CHECK_OK(mpq_queue_close(full));

    /* A reservation that outlives close is dropped at commit. */
    q = new_queue(2, 8);
    {
        void *slot = NULL;
        const void *m = NULL;
        CHECK_OK(mpq_queue_put(q, "a", 1, 0));
        CHECK_OK(mpq_queue_reserve(q, &slot, 0));
        CHECK_OK(mpq_queue_shutdown(q, 0));
        CHECK_ERR(mpq_queue_reserve(q, &slot, 0), EPIPE);
        CHECK_ERR(mpq_queue_commit(q, slot, 1), EPIPE);
        CHECK_OK(mpq_queue_peek(q, &m, &len, 0));
        CHECK(len == 1 && *(const char *)m == 'a');
        CHECK_OK(mpq_queue_release(q, m));
        CHECK_ERR(mpq_queue_peek(q, &m, &len, 0), EPIPE);
    }
    CHECK_OK(mpq_queue_close(q));
}

/* --- exactly once, in order, P producers x C consumers ------------------- */

enum { MAXINST = 512, MAXSEQ = 65536, HDR = 16 };

struct ledger {
    uint32_t stop;                         /* producers: stop now        */
    uint32_t errors;
    char     first_error[200];
    long     produced[MAXINST];            /* puts that returned 0        */
    uint64_t zero_sent, zero_received;     /* 0-byte messages             */
    uint64_t seen[MAXINST][MAXSEQ / 64];   /* (instance, seq) delivered   */
};

struct role { mpq_queue *q; struct ledger *l; int id, mode; long n; uint32_t max_len; };

static void ledger_error(struct ledger *l, const char *fmt, long a, long b)
{
    if (mpq__add32(&l->errors, 1, MPQ__SEQ_CST) == 0)
        snprintf(l->first_error, sizeof l->first_error, fmt, a, b);
}

/* A message: id, seq, len, then bytes that depend on all three. */
static size_t make_msg(unsigned char *m, int id, long seq, size_t len)
{
    uint32_t w[4];
    size_t k;
    w[0] = (uint32_t)id;
    w[1] = (uint32_t)seq;
    w[2] = (uint32_t)len;
    w[3] = 0x5eed;
    memcpy(m, w, HDR);
    for (k = HDR; k < len; k++) m[k] = (unsigned char)(id * 31 + seq * 7 + (long)k);
    return len;
}

/* Checks one delivered message; last[] is this consumer's view per id. */
static void check_msg(struct ledger *l, const unsigned char *m, size_t len, long *last)
{
    uint32_t w[4];
    size_t k;
    uint64_t bit, old;
    if (len == 0) {
        mpq__add64(&l->zero_received, 1, MPQ__RELAXED);
        return;
    }
    if (len < HDR) { ledger_error(l, "short message of %ld bytes (%ld)", (long)len, 0); return; }
    memcpy(w, m, HDR);
    if (w[3] != 0x5eed || w[2] != len || w[0] >= MAXINST || w[1] >= MAXSEQ) {
        ledger_error(l, "corrupt header (id %ld, seq %ld)", (long)w[0], (long)w[1]);
        return;
    }
    for (k = HDR; k < len; k++)
        if (m[k] != (unsigned char)(w[0] * 31 + w[1] * 7 + k)) {
            ledger_error(l, "corrupt payload in id %ld seq %ld", (long)w[0], (long)w[1]);
            return;
        }
    if ((long)w[1] <= last[w[0]]) ledger_error(l, "reordered: id %ld seq %ld", (long)w[0], (long)w[1]);
    last[w[0]] = (long)w[1];
    bit = (uint64_t)1 << (w[1] % 64);
    old = __atomic_fetch_or(&l->seen[w[0]][w[1] / 64], bit, __ATOMIC_SEQ_CST);
    if (old & bit) ledger_error(l, "duplicate: id %ld seq %ld", (long)w[0], (long)w[1]);
}

/* Producer: puts r->n messages (or until stop) by put (mode 0), reserve +
   commit (1) or put_batch (2); sizes random with 0 and max_len mixed in. */
static int producer(void *arg)
{
    struct role *r = (struct role *)arg;
    unsigned char m[8][2048];
    uint64_t rnd = (uint64_t)r->id * 7919 + 17;
    long seq = 0;
    while (seq < r->n && !mpq__load32(&r->l->stop, MPQ__ACQUIRE)) {
        size_t len = HDR + (size_t)(mpqt_rand(&rnd) % (r->max_len / 4 - HDR + 1));
        int rc;
        if (seq % 97 == 0) len = r->max_len;
        if (seq % 50 == 0) {
            if (mpq_queue_put(r->q, NULL, 0, -1) != 0) return 2;
            mpq__add64(&r->l->zero_sent, 1, MPQ__RELAXED);
        }
        if (r->mode == 0) {
            make_msg(m[0], r->id, seq, len);
            if ((rc = mpq_queue_put(r->q, m[0], len, -1)) != 0) return 3;
            r->l->produced[r->id] = ++seq;
        } else if (r->mode == 1) {
            void *slot = NULL;
            if ((rc = mpq_queue_reserve(r->q, &slot, -1)) != 0) return 4;
            make_msg((unsigned char *)slot, r->id, seq, len);
            if ((rc = mpq_queue_commit(r->q, slot, len)) != 0) return 5;
            r->l->produced[r->id] = ++seq;
        } else {
            const void *msgs[8];
            size_t lens[8];
            int k, n = 1 + (int)(mpqt_rand(&rnd) % 8);
            if (n > r->n - seq) n = (int)(r->n - seq);
            for (k = 0; k < n; k++) {
                lens[k] = make_msg(m[k], r->id, seq + k, k ? HDR + (size_t)k : len);
                msgs[k] = m[k];
            }
            if ((rc = mpq_queue_put_batch(r->q, msgs, lens, (size_t)n, -1)) < 1) return 6;
            seq += rc;
            r->l->produced[r->id] = seq;
        }
    }
    return 0;
}

/* Consumer: takes messages by get (mode 0), peek + release (1) or
   get_batch (2) until the queue is closed and drained. */
static int consumer(void *arg)
{
    struct role *r = (struct role *)arg;
    long last[MAXINST];
    unsigned char buf[8 * 2048];
    int i;
    for (i = 0; i < MAXINST; i++) last[i] = -1;
    for (;;) {
        size_t len = 0, lens[8];
        int rc;
        if (r->mode == 0) {
            rc = mpq_queue_get(r->q, buf, sizeof buf, &len, -1);
            if (rc == -EPIPE) return 0;
            if (rc != 0) return 2;
            check_msg(r->l, buf, len, last);
        } else if (r->mode == 1) {
            const void *m = NULL;
            rc = mpq_queue_peek(r->q, &m, &len, -1);
            if (rc == -EPIPE) return 0;
            if (rc != 0) return 3;
            check_msg(r->l, (const unsigned char *)m, len, last);
            if (mpq_queue_release(r->q, m) != 0) return 4;
        } else {
            size_t off = 0;
            int k;
            rc = mpq_queue_get_batch(r->q, buf, sizeof buf, lens, 8, -1);
            if (rc == -EPIPE) return 0;
            if (rc < 1) return 5;
            for (k = 0; k < rc; k++) {
                check_msg(r->l, buf + off, lens[k], last);
                off += lens[k];
            }
        }
    }
}

/* P producers and C consumers, each in its own process, n messages each. */
static void run_mpmc(int P, int C, long n, int pmode, int cmode, uint32_t capacity)
{
    mpq_shm shm;
    struct ledger *l;
    static struct role roles[8];
    mpq_process procs[8];
    mpq_queue *q;
    uint32_t max_len = 2048;
    long id, seq, total = 0;
    int i;

    q = new_queue(capacity, max_len);
    CHECK(g_inline ? q->nchunks > 0 : q->nchunks == 0);
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *l }));
    l = (struct ledger *)shm.addr;
    for (i = 0; i < P + C; i++) {
        roles[i].q = q;
        roles[i].l = l;
        roles[i].id = i;
        roles[i].n = n;
        roles[i].max_len = max_len;
        roles[i].mode = i < P ? (pmode < 0 ? i % 3 : pmode) : (cmode < 0 ? i % 3 : cmode);
        CHECK_OK(mpq_process_start(&procs[i], i < P ? producer : consumer, &roles[i]));
    }
    for (i = 0; i < P; i++) {
        CHECK_OK(mpq_process_join(&procs[i], 60000));
        CHECK_EQ(procs[i].exitcode, 0);
    }
    CHECK_OK(mpq_queue_shutdown(q, 0));
    for (i = P; i < P + C; i++) {
        CHECK_OK(mpq_process_join(&procs[i], 60000));
        CHECK_EQ(procs[i].exitcode, 0);
    }
    if (l->errors) mpqt_fail(__FILE__, __LINE__, "%u errors, first: %s", l->errors, l->first_error);
    for (id = 0; id < P; id++) {
        CHECK_EQ(l->produced[id], n);
        for (seq = 0; seq < n; seq++)
            if (!(l->seen[id][seq / 64] >> (seq % 64) & 1))
                mpqt_fail(__FILE__, __LINE__, "P%dxC%d: message %ld of producer %ld never arrived", P, C, seq, id);
        total += n;
    }
    CHECK_EQ(l->zero_received, l->zero_sent);
    CHECK(total == (long)P * n);
    CHECK_OK(mpq_shm_close(&shm));
    CHECK_OK(mpq_queue_close(q));
}

static void test_queue_mpmc_exactly_once_fifo(void)
{
    static const int counts[3] = { 1, 2, 4 };
    int p, c;
    for (p = 0; p < 3; p++)
        for (c = 0; c < 3; c++) run_mpmc(counts[p], counts[c], 20000, 0, 0, 64);
}

static void test_queue_zero_copy_and_batch_stress(void)
{
    run_mpmc(2, 2, 30000, 1, 1, 32);   /* reserve/commit, peek/release */
    run_mpmc(2, 2, 30000, 2, 2, 32);   /* batches                      */
    run_mpmc(3, 3, 20000, -1, -1, 16); /* all mixed                    */
}

static void *thread_role(void *arg)
{
    struct role *r = (struct role *)arg;
    return (void *)(intptr_t)(r->id < 2 ? producer(arg) : consumer(arg));
}

/* The same in threads of one process, for ThreadSanitizer. */
static void run_threads(void)
{
    static struct ledger l;
    static struct role roles[4];
    pthread_t t[4];
    mpq_queue *q = new_queue(16, 256);
    long seq;
    int i;
    memset(&l, 0, sizeof l);
    for (i = 0; i < 4; i++) {
        roles[i].q = q;
        roles[i].l = &l;
        roles[i].id = i;
        roles[i].n = 5000;
        roles[i].max_len = 256;
        roles[i].mode = i % 2;
        CHECK_EQ(pthread_create(&t[i], NULL, thread_role, &roles[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        void *r;
        if (i == 2) CHECK_OK(mpq_queue_shutdown(q, 0));  /* the producers are done */
        CHECK_EQ(pthread_join(t[i], &r), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    if (l.errors) mpqt_fail(__FILE__, __LINE__, "%u errors, first: %s", l.errors, l.first_error);
    for (i = 0; i < 2; i++)
        for (seq = 0; seq < 5000; seq++) CHECK(l.seen[i][seq / 64] >> (seq % 64) & 1);
    CHECK_OK(mpq_queue_close(q));
}

static void test_queue_threads(void) { run_threads(); }

/* The same with an arena of 1 KiB beside 32-byte slots (ThreadSanitizer
   sees the chunk words and runs as well). */
static void test_queue_arena_threads(void)
{
    g_inline = 32;
    run_threads();
    g_inline = 0;
}

/* --- named, across exec --------------------------------------------------- */

static void test_queue_named_across_exec(void)
{
    char name[64], buf[64];
    mpq_queue *q, *q2;
    mpq_process peer;
    size_t len;
    long i;
    mpqt_name(name, sizeof name, "queue");
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 8, .max_msg = 64, .name = name }));
    CHECK_ERR(mpq_queue_create(&q2, &(mpq_queue_config){ .name = name }), EEXIST);
    start_peer(&peer, name, "produce", "5000");   /* it puts, we get */
    for (i = 0; i < 5000; i++) {
        char want[64];
        snprintf(want, sizeof want, "msg %ld", i);
        CHECK_OK(mpq_queue_get(q, buf, sizeof buf - 1, &len, 20000));
        buf[len] = 0;
        CHECK(strcmp(buf, want) == 0);
    }
    CHECK_OK(mpq_process_join(&peer, 20000));
    CHECK_EQ(peer.exitcode, 0);
    start_peer(&peer, name, "consume", "5000");   /* we put, it gets */
    for (i = 0; i < 5000; i++) {
        snprintf(buf, sizeof buf, "msg %ld", i);
        CHECK_OK(mpq_queue_put(q, buf, strlen(buf), 20000));
    }
    CHECK_OK(mpq_process_join(&peer, 20000));
    CHECK_EQ(peer.exitcode, 0);
    CHECK_OK(mpq_queue_open(&q2, name));          /* a second handle here */
    CHECK_EQ(mpq_queue_capacity(q2), 8);
    CHECK_ERR(mpq_queue_fileno(q2), ENOTSUP);
    CHECK_OK(mpq_queue_put(q2, "via q2", 6, 0));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 6 && memcmp(buf, "via q2", 6) == 0);
    CHECK_OK(mpq_queue_close(q2));
    CHECK_OK(mpq_shm_unlink(name));
    CHECK_OK(mpq_queue_close(q));
}

/* --- take-over of slots held by dead processes ---------------------------- */

static int reserve_and_hang(void *arg)
{
    void *slot = NULL;
    if (mpq_queue_reserve((mpq_queue *)arg, &slot, 0) != 0) return 1;
    memset(slot, 'z', 8);
    for (;;) pause();
    return 0;
}

static int peek_and_hang(void *arg)
{
    const void *m;
    size_t len;
    if (mpq_queue_peek((mpq_queue *)arg, &m, &len, 0) != 0) return 1;
    for (;;) pause();
    return 0;
}

static void test_queue_dead_holders_are_taken_over(void)
{
    mpq_queue *q = new_queue(2, 16);
    mpq_process p;
    char buf[16];
    size_t len;
    /* A producer dies holding a reserved slot: the next message gets past. */
    CHECK_OK(mpq_process_start(&p, reserve_and_hang, q));
    while (mpq_queue_count(q) == 0) CHECK_EQ(mpq_process_alive(&p), 1);  /* until it holds it */
    CHECK_OK(mpq_queue_put(q, "after", 5, 0));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 30), ETIMEDOUT);  /* held, alive */
    CHECK_OK(mpq_process_kill(&p, SIGKILL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 5000));
    CHECK(len == 5 && memcmp(buf, "after", 5) == 0);
    /* A consumer dies holding a peeked message: producers get its slot back. */
    CHECK_OK(mpq_queue_put(q, "lost", 4, 0));
    CHECK_OK(mpq_process_start(&p, peek_and_hang, q));
    while (mpq_queue_count(q) != 0) CHECK_EQ(mpq_process_alive(&p), 1);  /* until it has peeked */
    CHECK_OK(mpq_queue_put(q, "one", 3, 0));
    CHECK_ERR(mpq_queue_put(q, "two", 3, 30), ETIMEDOUT);  /* the held slot is in the way */
    CHECK_OK(mpq_process_kill(&p, SIGKILL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_OK(mpq_queue_put(q, "two", 3, 5000));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 3 && memcmp(buf, "one", 3) == 0);
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 3 && memcmp(buf, "two", 3) == 0);
    CHECK_OK(mpq_queue_close(q));
}

/* A slot held in the name of a live pid whose start time is not the
   claimant's: the claimant died and its pid was reused. Take it over. */
static void test_queue_pid_reuse_does_not_fool_it(void)
{
    mpq_queue *q = new_queue(2, 16);
    mpq__qslot *s = mpq__q_slot(q, 0);
    uint64_t start;
    uint32_t me = mpq__self(&start);
    char buf[16];
    size_t len;
    CHECK(start != 0);  /* /proc is there */
    /* Position 0 claimed by "us", but by a process that started earlier. */
    mpq__store64(&s->state, mpq__st(0, MPQ__WRITING, me), MPQ__SEQ_CST);
    mpq__store64(&s->owner, MPQ__OWNER(start - 1, (uint64_t)0, MPQ__WRITING), MPQ__SEQ_CST);
    mpq__store64(&q->h->head, 1, MPQ__SEQ_CST);
    CHECK_OK(mpq_queue_put(q, "next", 4, 0));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 5000));
    CHECK(len == 4 && memcmp(buf, "next", 4) == 0);
    /* Whereas a live holder with the right start time is waited for. */
    s = mpq__q_slot(q, 2);
    mpq__store64(&s->state, mpq__st(1, MPQ__WRITING, me), MPQ__SEQ_CST);
    mpq__store64(&s->owner, MPQ__OWNER(start, (uint64_t)1, MPQ__WRITING), MPQ__SEQ_CST);
    mpq__store64(&q->h->head, 3, MPQ__SEQ_CST);
    CHECK_OK(mpq_queue_put(q, "later", 5, 0));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 50), ETIMEDOUT);
    CHECK_OK(mpq_queue_close(q));
}

static int put_one(void *arg) { return mpq_queue_put((mpq_queue *)arg, "p", 1, 5000) == 0 ? 0 : 1; }


/* --- what a review found: each of these failed once --------------------- */

struct zl { mpq_queue *q; uint32_t holding, go; int rc; };

static void *zl_worker(void *arg)
{
    struct zl *z = (struct zl *)arg;
    void *slot = NULL;
    int64_t deadline = mpq__deadline(20000);
    z->rc = 1;
    if (mpq_queue_reserve(z->q, &slot, 0) != 0) return NULL;
    memcpy(slot, "alive", 5);
    mpq__store32(&z->holding, 1, MPQ__RELEASE);
    mpq__futex_wake(&z->holding, 1);
    while (!mpq__load32(&z->go, MPQ__ACQUIRE))
        if (mpq__futex_wait(&z->go, 0, deadline) == -ETIMEDOUT) return NULL;
    z->rc = mpq_queue_commit(z->q, slot, 5);
    _exit(z->rc == 0 ? 0 : 1);
}

static int zl_child(void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, zl_worker, arg) != 0) return 2;
    pthread_exit(NULL);  /* the main thread is now a zombie; the process is not */
}

/* A process whose main thread has exited is alive while its other threads
   run: its reservation is waited for, not taken over. */
static void test_queue_main_thread_exit_is_not_death(void)
{
    mpq_shm shm;
    struct zl *z;
    mpq_process p;
    char buf[16];
    size_t len;
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *z }));
    z = (struct zl *)shm.addr;
    z->q = new_queue(4, 16);
    CHECK_OK(mpq_process_start(&p, zl_child, z));
    while (!mpq__load32(&z->holding, MPQ__ACQUIRE))
        CHECK(mpq__futex_wait(&z->holding, 0, mpq__deadline(10000)) == 0);
    CHECK_ERR(mpq_queue_get(z->q, buf, sizeof buf, &len, 100), ETIMEDOUT);  /* held, 10x STUCK_MS */
    mpq__store32(&z->go, 1, MPQ__RELEASE);
    mpq__futex_wake(&z->go, 1);
    CHECK_OK(mpq_queue_get(z->q, buf, sizeof buf, &len, 10000));
    CHECK(len == 5 && memcmp(buf, "alive", 5) == 0);
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 0);
    CHECK_OK(mpq_queue_close(z->q));
    CHECK_OK(mpq_shm_close(&shm));
}

/* A holder whose slot was taken from it is told so, and cannot write over
   the slot's later life. */
static void test_queue_holder_that_lost_its_slot(void)
{
    mpq_queue *q = new_queue(2, 16);
    mpq__qslot *s;
    void *slot = NULL;
    const void *m = NULL;
    uint64_t st;
    char buf[16];
    size_t len;
    CHECK_OK(mpq_queue_reserve(q, &slot, 0));
    s = mpq__q_slot_of(q, slot);
    st = mpq__load64(&s->state, MPQ__ACQUIRE);
    mpq__store64(&s->state, mpq__st(MPQ__ST_LAP(st), MPQ__FULL, MPQ__SKIPPED), MPQ__SEQ_CST);
    CHECK_ERR(mpq_queue_commit(q, slot, 3), EINVAL);     /* no longer ours */
    CHECK_OK(mpq_queue_put(q, "x", 1, 0));
    CHECK_OK(mpq_queue_peek(q, &m, &len, 0));
    s = mpq__q_slot_of(q, m);
    st = mpq__load64(&s->state, MPQ__ACQUIRE);
    /* Taken over between the holder's check and its step: the CAS fails. */
    CHECK_ERR(mpq__q_free(q, s, MPQ__ST_LAP(st) + 1, MPQ__ST_PID(st)), EOWNERDEAD);
    CHECK_OK(mpq_queue_release(q, m));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EAGAIN);
    CHECK_OK(mpq_queue_close(q));
}

static int get_one(void *arg)
{
    char buf[16];
    size_t len = 0;
    int rc = mpq_queue_get((mpq_queue *)arg, buf, sizeof buf, &len, 20000);
    return rc == 0 && len == 4 && memcmp(buf, "late", 4) == 0 ? 0 : 1;
}

/* A message published by a producer that died before waking the sleepers
   still reaches a consumer asleep with no timeout. */
static void test_queue_dead_waker_costs_a_slice_only(void)
{
    mpq_queue *q = new_queue(4, 16);
    mpq_process p;
    mpq__qslot *s;
    uint64_t pos, seen, start;
    uint32_t me = mpq__self(&start);
    int rc;
    CHECK_OK(mpq_process_start(&p, get_one, q));
    CHECK(mpqt_wait_sleeping(p.pid, 10000));
    /* A put that stops after its publishing CAS, before any wake-up. */
    s = mpq__q_claim_put(q, me, start, -1, &pos, &seen, &rc);
    CHECK(s != NULL);
    memcpy(mpq__q_data(s), "late", 4);
    mpq__store32(&s->len, 4, MPQ__RELAXED);
    mpq__store64(&s->state, mpq__st(mpq__q_lap(q, pos), MPQ__FULL, 0), MPQ__SEQ_CST);
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 0);
    CHECK_OK(mpq_queue_close(q));
}

static int get_expect_end(void *arg)
{
    char buf[16];
    size_t len;
    return mpq_queue_get((mpq_queue *)arg, buf, sizeof buf, &len, 20000) == -EPIPE ? 0 : 1;
}

/* shutdown(q, 1), Python 3.13's shutdown(immediate=True): what is queued
   is dropped - gets, peeks and batches fail at once, count says 0 - and
   join returns -EPIPE, in other processes too; a plain shutdown before it
   is upgraded, never the other way. */
static int blocked_join(void *arg)
{
    return mpq_queue_join((mpq_queue *)arg, 20000) == -EPIPE ? 0 : 1;
}

static int close_handle(void *arg)
{
    return mpq_queue_close((mpq_queue *)arg) == 0 ? 0 : 1;
}

static void test_queue_shutdown_immediate(void)
{
    mpq_queue *q, *empty = new_queue(2, 8);
    mpq_process j, g, c;
    const void *msgs[2] = { "d", "e" }, *m;
    size_t lens[2] = { 1, 1 }, len;
    char buf[64];
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 8, .max_msg = 64, .joinable = 1 }));
    CHECK_OK(mpq_queue_put(q, "a", 1, 0));
    CHECK_OK(mpq_queue_put(q, "b", 1, 0));
    CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 2, 0), 2);
    /* Closing a handle (here a child's) ends nothing for the others. */
    CHECK_OK(mpq_process_start(&c, close_handle, q));
    MPQT_JOIN_OK(&c, 0);
    CHECK_OK(mpq_queue_put(q, "c", 1, 0));
    CHECK_EQ(mpq_queue_count(q), 4);
    CHECK_OK(mpq_process_start(&j, blocked_join, q));
    CHECK_OK(mpq_process_start(&g, blocked_get, empty));
    CHECK(mpqt_wait_sleeping(g.pid, 10000));
    /* Plain first: the items still come ... */
    CHECK_OK(mpq_queue_shutdown(q, 0));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 1 && buf[0] == 'a');
    /* ... until it is made immediate. */
    CHECK_OK(mpq_queue_shutdown(q, 1));
    CHECK_OK(mpq_queue_shutdown(empty, 1));
    MPQT_JOIN_OK(&j, 0);
    MPQT_JOIN_OK(&g, 0);
    CHECK_EQ(mpq_queue_count(q), 0);
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EPIPE);
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, -1), EPIPE);
    CHECK_ERR(mpq_queue_peek(q, &m, &len, -1), EPIPE);
    CHECK_ERR(mpq_queue_get_batch(q, buf, sizeof buf, lens, 2, -1), EPIPE);
    CHECK_ERR(mpq_queue_put(q, "x", 1, -1), EPIPE);
    CHECK_ERR(mpq_queue_join(q, 0), EPIPE);
    CHECK_ERR(mpq_queue_join(q, -1), EPIPE);
    CHECK_EQ(mpq_queue_unfinished(q), 5);   /* dropped, not finished */
    CHECK_OK(mpq_queue_shutdown(q, 0));     /* no way back */
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EPIPE);
    CHECK_ERR(mpq_queue_shutdown(NULL, 1), EINVAL);
    CHECK_OK(mpq_queue_close(q));
    CHECK_OK(mpq_queue_close(empty));
}

/* After close, a consumer waiting behind a put in progress sleeps (it used
   to spin at full speed) until that put ends; the put, closed meanwhile,
   is dropped, and the consumer sees the end. */
static void test_queue_close_behind_a_put_in_progress(void)
{
    mpq_queue *q = new_queue(4, 16);
    mpq_process p;
    void *slot = NULL;
    CHECK_OK(mpq_queue_reserve(q, &slot, 0));
    CHECK_OK(mpq_process_start(&p, get_expect_end, q));
    CHECK(mpqt_wait_sleeping(p.pid, 10000));
    CHECK_OK(mpq_queue_shutdown(q, 0));
    CHECK_IDLE(p.pid);                        /* waits without spinning */
    memcpy(slot, "abc", 3);
    CHECK_ERR(mpq_queue_commit(q, slot, 3), EPIPE);  /* closed meanwhile: dropped */
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 0);
    CHECK_OK(mpq_queue_close(q));
}

/* Callers that only ever try once (poll loops) recover a dead holder too. */
static void test_queue_try_once_recovers_dead_holder(void)
{
    mpq_queue *q = new_queue(4, 16);
    mpq_process p;
    char buf[16];
    size_t len;
    int rc = -EAGAIN;
    int64_t end;
    CHECK_OK(mpq_process_start(&p, reserve_and_hang, q));
    while (mpq_queue_count(q) == 0) CHECK_EQ(mpq_process_alive(&p), 1);
    CHECK_OK(mpq_queue_put(q, "next", 4, 0));
    CHECK_OK(mpq_process_kill(&p, SIGKILL));
    CHECK_OK(mpq_process_join(&p, 10000));
    end = mpqt_ms() + 10000;
    while (rc == -EAGAIN && mpqt_ms() < end) rc = mpq_queue_get(q, buf, sizeof buf, &len, 0);
    CHECK_OK(rc);
    CHECK(len == 4 && memcmp(buf, "next", 4) == 0);
    CHECK_OK(mpq_queue_close(q));
}

/* Closed while last lap's peek is still out: the end is reported, and a
   poller sees it. */
static void test_queue_close_with_a_peek_out(void)
{
    mpq_queue *q = new_queue(1, 16);
    const void *m = NULL;
    char buf[16];
    size_t len;
    int fd = mpq_queue_fileno(q);
    CHECK(fd >= 0);
    CHECK_OK(mpq_queue_put(q, "a", 1, 0));
    CHECK_OK(mpq_queue_peek(q, &m, &len, 0));
    CHECK_OK(mpq_queue_shutdown(q, 0));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EPIPE);
    CHECK(mpqt_readable(fd, 0));
    CHECK_OK(mpq_queue_release(q, m));
    CHECK(mpqt_readable(fd, 0));
    CHECK_OK(mpq_queue_close(q));
}

/* A length scribbled over in shared memory is refused, not copied. */
static void test_queue_corrupt_length_is_refused(void)
{
    mpq_queue *q = new_queue(2, 16);
    const void *m = NULL;
    char buf[64];
    size_t len;
    CHECK_OK(mpq_queue_put(q, "x", 1, 0));
    mpq__store32(&mpq__q_slot(q, 0)->len, 1u << 30, MPQ__RELAXED);
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EIO);   /* reported once ... */
    CHECK_ERR(mpq_queue_peek(q, &m, &len, 0), EAGAIN);            /* ... and dropped */
    CHECK_OK(mpq_queue_put(q, "y", 1, 0));                        /* the queue goes on */
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 1 && buf[0] == 'y');
    CHECK_OK(mpq_queue_close(q));
}

/* --- packed batches ----------------------------------------------------------- */

static void put_numbered(mpq_queue *q, int first, int n)
{
    const void *msgs[64];
    size_t lens[64];
    static char bufs[64][64];
    int i;
    for (i = 0; i < n; i++) {
        lens[i] = (size_t)snprintf(bufs[i], sizeof bufs[i], "m%d", first + i) + (size_t)(i % 4);
        msgs[i] = bufs[i];
    }
    CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, (size_t)n, 0), n);
}

static void expect_numbered(const char *m, size_t len, int want)
{
    char exp[64];
    size_t n = (size_t)snprintf(exp, sizeof exp, "m%d", want);
    if (len < n || memcmp(m, exp, n) != 0)
        mpqt_fail(__FILE__, __LINE__, "got '%.*s' (%zu bytes), expected m%d", (int)len, m, len, want);
}

/* A batch that fits in one slot travels packed: one slot, and every way
   of taking its messages - get, peek/release, get_batch of fewer than
   there are, a buffer too small - gets them all, in order, once. */
static void test_queue_packed_batches(void)
{
    mpq_queue *q = new_queue(4, 1024);
    char buf[1024];
    size_t len, lens[64];
    const void *m;
    int i, n, next = 0;
    put_numbered(q, 0, 40);
    CHECK_EQ(mpq_queue_count(q), 1);                     /* one slot */
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    expect_numbered(buf, len, next++);
    {   /* peek hands packed messages out as copies: two at once, released
           in any order, nobody waiting for them */
        const void *m2;
        size_t len2;
        CHECK_OK(mpq_queue_peek(q, &m, &len, 0));
        CHECK_OK(mpq_queue_peek(q, &m2, &len2, 0));
        CHECK((uintptr_t)m % 16 == 0 && (uintptr_t)m2 % 16 == 0);
        expect_numbered((const char *)m, len, next++);
        expect_numbered((const char *)m2, len2, next++);
        CHECK_ERR(mpq_queue_release(q, (const char *)m + 1), EINVAL);
        CHECK_OK(mpq_queue_release(q, m2));
        CHECK_OK(mpq_queue_release(q, m));
        CHECK_ERR(mpq_queue_release(q, m), EINVAL);      /* once */
    }
    CHECK_ERR(mpq_queue_get(q, buf, 2, &len, 0), EMSGSIZE);         /* stays */
    CHECK_EQ(len, 2 + (size_t)(next % 4));
    n = mpq_queue_get_batch(q, buf, sizeof buf, lens, 5, 0);
    CHECK_EQ(n, 5);
    for (i = 0, len = 0; i < n; len += lens[i], i++) expect_numbered(buf + len, lens[i], next++);
    n = mpq_queue_get_batch(q, buf, 12, lens, 64, 0);    /* stops where it no longer fits */
    CHECK(n >= 1 && n < 6);
    for (i = 0, len = 0; i < n; len += lens[i], i++) expect_numbered(buf + len, lens[i], next++);
    put_numbered(q, 40, 3);                               /* behind it, in order */
    while (next < 43) {
        n = mpq_queue_get_batch(q, buf, sizeof buf, lens, 64, 0);
        CHECK(n >= 1);
        for (i = 0, len = 0; i < n; len += lens[i], i++) expect_numbered(buf + len, lens[i], next++);
    }
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EAGAIN);
    CHECK_EQ(mpq_queue_count(q), 0);
    /* Closed with part of a packed slot left: drained, then the end. */
    put_numbered(q, 100, 3);
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK_OK(mpq_queue_shutdown(q, 0));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    expect_numbered(buf, len, 101);
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EPIPE);
    CHECK_OK(mpq_queue_close(q));
}

/* Holds the cursor of the packed slot at the tail (as a get does while it
   copies), says so on the pipe claimed_pipe[1], and hangs there. Its
   parent waits for that byte: a child seen sleeping may be in some other
   wait still (qemu's own locks, under load), not yet holding the slot. */
static int claimed_pipe[2];

static int claim_packed_and_hang(void *arg)
{
    mpq_queue *q = (mpq_queue *)arg;
    uint64_t start, pos, seen;
    uint32_t n, me = mpq__self(&start);
    mpq__qpk pk;
    int rc;
    if (!mpq__q_claim_get(q, me, start, -1, 1024, &pos, &seen, &n, &pk, &rc) || !pk.count) return 1;
    if (write(claimed_pipe[1], "c", 1) != 1) return 1;
    for (;;) pause();
}

/* Starts claim_packed_and_hang on q and returns once it holds the slot. */
static void start_claim_packed(mpq_process *p, mpq_queue *q)
{
    char c;
    CHECK(pipe(claimed_pipe) == 0);
    CHECK_OK(mpq_process_start(p, claim_packed_and_hang, q));
    CHECK_MSG(mpqt_readable(claimed_pipe[0], 10000), "the child did not claim the packed slot");
    CHECK(read(claimed_pipe[0], &c, 1) == 1);
    close(claimed_pipe[0]);
    close(claimed_pipe[1]);
}

/* A process killed holding a message of a packed slot loses that one
   message; the rest of its batch goes to others - a blocked get, and a
   poller, whose descriptor turns readable. */
static void test_queue_packed_dead_holder(void)
{
    mpq_queue *q = new_queue(4, 1024);
    mpq_process p;
    char buf[64];
    size_t len;
    int fd, round, rc;
    for (round = 0; round < 2; round++) {
        put_numbered(q, 0, 3);
        start_claim_packed(&p, q);
        CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EAGAIN);
        if (round == 1) {
            fd = mpq_queue_fileno(q);
            CHECK(fd >= 0);
            CHECK(!mpqt_readable(fd, 0));
        }
        CHECK_OK(mpq_process_kill(&p, SIGKILL));
        CHECK_OK(mpq_process_join(&p, 10000));
        rc = -EAGAIN;
        if (round == 1) {
            /* The poller notices the dead holder itself (it never sleeps in
               the queue): its get takes m1 at once, or - too soon after
               the death to call it one, however slow this machine is -
               leaves the descriptor to turn readable. */
            rc = mpq_queue_get(q, buf, sizeof buf, &len, 0);
            if (rc == -EAGAIN) CHECK(mpqt_readable(fd, 10000));
        }
        if (rc == -EAGAIN) rc = mpq_queue_get(q, buf, sizeof buf, &len, 10000);
        CHECK_OK(rc);
        expect_numbered(buf, len, 1);                    /* m0 died with it */
        CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
        expect_numbered(buf, len, 2);
        CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EAGAIN);
    }
    CHECK_OK(mpq_queue_close(q));
}

/* Producers that wrap around to last lap's packed slot move it on when
   what is left of it is dead: a holder killed on its last message, or a
   last taker that died before freeing it. */
static void test_queue_packed_slot_recovered_by_put(void)
{
    mpq_queue *q = new_queue(1, 1024);
    mpq_process p;
    mpq__qslot *s = mpq__q_slot(q, 0);
    char buf[64];
    size_t len;
    put_numbered(q, 0, 2);
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    start_claim_packed(&p, q);   /* holds m1, the last */
    CHECK_ERR(mpq_queue_put(q, "x", 1, 0), EAGAIN);
    CHECK_OK(mpq_process_kill(&p, SIGKILL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_OK(mpq_queue_put(q, "x", 1, 10000));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 1 && buf[0] == 'x');
    /* All taken, never freed: the next put frees it. */
    put_numbered(q, 0, 2);
    mpq__store64(&s->cursor, MPQ__CUR(mpq__q_lap(q, 2), 2, 0), MPQ__SEQ_CST);
    CHECK_OK(mpq_queue_put(q, "y", 1, 10000));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 1 && buf[0] == 'y');
    CHECK_OK(mpq_queue_close(q));
}

/* A queue made by an older mpq.h (segment layout 1) may have readers that
   cannot take packed slots: batches put through a handle of it are not
   packed. A newer layout than this code knows is refused. Only a joinable
   queue is made in layout 3. */
static void test_queue_layout_versions(void)
{
    char name[64];
    mpq_queue *q, *o;
    mpq__seg *h;
    mpq_queue_config c;
    memset(&c, 0, sizeof c);
    c.name = mpqt_name(name, sizeof name, "ver");
    c.max_msg = 4096;   /* all of it in the slots: no arena */
    CHECK_OK(mpq_queue_create(&q, &c));
    h = (mpq__seg *)q->base;
    CHECK_EQ(h->version, 2);
    h->version = 1;
    h->check = mpq__seg_checksum(h);
    CHECK_OK(mpq_queue_open(&o, name));
    put_numbered(o, 0, 5);
    CHECK_EQ(mpq_queue_count(o), 5);                     /* one slot each */
    put_numbered(q, 5, 5);                               /* the creator's handle packed */
    CHECK_EQ(mpq_queue_count(o), 6);
    CHECK_OK(mpq_queue_close(o));
    h->version = MPQ__SEG_VERSION_QUEUE + 1;
    h->check = mpq__seg_checksum(h);
    CHECK_ERR(mpq_queue_open(&o, name), EPROTO);
    CHECK_OK(mpq_queue_close(q));
    CHECK_OK(mpq_shm_unlink(name));
    /* A joinable queue is layout 3, which mpq.h 0.1 (up to 2) refuses. */
    c.joinable = 1;
    CHECK_OK(mpq_queue_create(&q, &c));
    CHECK_EQ(((mpq__seg *)q->base)->version, 3);
    CHECK_OK(mpq_queue_open(&o, name));
    CHECK_OK(mpq_queue_put(o, "x", 1, 0));
    CHECK_EQ(mpq_queue_unfinished(q), 1);
    CHECK_OK(mpq_queue_close(o));
    CHECK_OK(mpq_queue_close(q));
    CHECK_OK(mpq_shm_unlink(name));
    /* A producer count is layout 4 (a table after the slots), which an
       mpq.h before it (up to 3) refuses; the other handle shares the
       count. */
    c.joinable = 0;
    c.producers = 2;
    CHECK_OK(mpq_queue_create(&q, &c));
    CHECK_EQ(((mpq__seg *)q->base)->version, 4);
    CHECK_OK(mpq_queue_open(&o, name));
    CHECK_EQ(mpq_queue_producers(o), 2);
    CHECK_OK(mpq_queue_producer_done(o));
    CHECK_EQ(mpq_queue_producers(q), 1);
    CHECK_OK(mpq_queue_producer_done(q));
    CHECK_ERR(mpq_queue_put(o, "x", 1, 0), EPIPE);
    CHECK_OK(mpq_queue_close(o));
    /* Its table is counted in the size an opener checks. */
    ((mpq__qhdr *)(void *)((char *)q->base + MPQ__SEG_HDR))->producers = 3;
    CHECK_ERR(mpq_queue_open(&o, name), EINVAL);
    ((mpq__qhdr *)(void *)((char *)q->base + MPQ__SEG_HDR))->producers = MPQ__Q_MAX_PRODUCERS + 1;
    CHECK_ERR(mpq_queue_open(&o, name), EINVAL);
    CHECK_OK(mpq_queue_close(q));
    CHECK_OK(mpq_shm_unlink(name));
    /* An arena is layout 6 (older mpq.h refuse it), and so is a default
       queue; its size, inline_max and chunks are checked at open. Layout
       5 (an arena without claim words, never released) is refused. */
    c.producers = 0;
    c.max_msg = 0;
    CHECK_OK(mpq_queue_create(&q, &c));
    h = (mpq__seg *)q->base;
    CHECK_EQ(h->version, 6);
    CHECK_OK(mpq_queue_open(&o, name));
    CHECK_EQ(mpq_queue_max_msg(o), 65536);
    CHECK_OK(mpq_queue_close(o));
    {
        mpq__qhdr *qh = (mpq__qhdr *)(void *)((char *)q->base + MPQ__SEG_HDR), saved = *qh;
        qh->chunks++;
        CHECK_ERR(mpq_queue_open(&o, name), EINVAL);
        *qh = saved;
        qh->inline_max = qh->max_msg;   /* no arena, yet chunks */
        CHECK_ERR(mpq_queue_open(&o, name), EINVAL);
        *qh = saved;
        qh->max_msg = (uint32_t)qh->chunks * MPQ__CHUNK + 1;   /* a message the arena cannot hold */
        CHECK_ERR(mpq_queue_open(&o, name), EINVAL);
        *qh = saved;
        h->version = 4;
        h->check = mpq__seg_checksum(h);
        CHECK_ERR(mpq_queue_open(&o, name), EINVAL);
        h->version = 5;
        h->check = mpq__seg_checksum(h);
        CHECK_ERR(mpq_queue_open(&o, name), EINVAL);
        h->version = 6;
        h->check = mpq__seg_checksum(h);
        CHECK_OK(mpq_queue_open(&o, name));
        CHECK_OK(mpq_queue_close(o));
    }
    CHECK_OK(mpq_queue_close(q));
    CHECK_OK(mpq_shm_unlink(name));
}

/* --- end of stream: a producer count ------------------------------------------ */

static mpq_queue *new_stream(uint32_t capacity, uint32_t producers)
{
    mpq_queue *q;
    mpq_queue_config c;
    memset(&c, 0, sizeof c);
    c.capacity = capacity;
    c.max_msg = 32;
    c.producers = producers;
    CHECK_OK(mpq_queue_create(&q, &c));
    return q;
}

/* Messages are "id seq" in 8 bytes: producer id (0..99) and sequence. */
struct sp { mpq_queue *q; int id, n, done; };

static int stream_producer(void *arg)
{
    struct sp *a = (struct sp *)arg;
    uint32_t m[2];
    int i;
    for (i = 0; i < a->n; i++) {
        m[0] = (uint32_t)a->id;
        m[1] = (uint32_t)i;
        if (mpq_queue_put(a->q, m, sizeof m, 20000) != 0) return 1;
    }
    if (a->done && mpq_queue_producer_done(a->q) != 0) return 2;
    return 0;
}

/* Gets until the end of the stream (-EPIPE), checking each producer's
   messages come in its order, once each; returns how many came, and
   fails the test on a timeout (the stream never ended). */
static int drain_stream(mpq_queue *q, int *next, int producers)
{
    uint32_t m[2];
    size_t len;
    int got = 0, rc;
    while ((rc = mpq_queue_get(q, m, sizeof m, &len, 20000)) == 0) {
        CHECK(len == sizeof m && (int)m[0] < producers);
        if ((int)m[1] != next[m[0]])
            mpqt_fail(__FILE__, __LINE__, "producer %u: message %u, expected %d", m[0], m[1], next[m[0]]);
        next[m[0]]++;
        got++;
    }
    if (rc != -EPIPE) mpqt_fail(__FILE__, __LINE__, "get returned %d (%s), not the end of the stream", rc, strerror(-rc));
    return got;
}

/* Three registered producers put 300 each into an 8-slot queue and say
   they are done: the consumer gets all 900, each producer's in order, and
   then the end - no sentinel messages. */
static void test_queue_stream_ends(void)
{
    mpq_queue *q = new_stream(8, 3);
    mpq_process p[3];
    struct sp a[3];
    int next[3] = { 0, 0, 0 }, i;
    CHECK_EQ(mpq_queue_producers(q), 3);
    for (i = 0; i < 3; i++) {
        a[i].q = q;
        a[i].id = i;
        a[i].n = 300;
        a[i].done = 1;
        CHECK_OK(mpq_process_start(&p[i], stream_producer, &a[i]));
        CHECK_OK(mpq_queue_add_producer(q, p[i].pid));
    }
    CHECK_EQ(drain_stream(q, next, 3), 900);
    for (i = 0; i < 3; i++) MPQT_JOIN_OK(&p[i], 0);
    CHECK_EQ(mpq_queue_producers(q), 0);
    CHECK_ERR(mpq_queue_put(q, "x", 1, 0), EPIPE);
    CHECK_OK(mpq_queue_close(q));
}

static int done_at_once(void *arg) { return mpq_queue_producer_done((mpq_queue *)arg) == 0 ? 0 : 1; }

/* Done before registered (a fast child): the registration finds its word
   and takes no other; the table is then full, and one more done (or
   registration) than the count is refused and changes nothing. */
static void test_queue_stream_done_before_registered(void)
{
    mpq_queue *q = new_stream(4, 2);
    mpq_process p;
    CHECK_OK(mpq_process_start(&p, done_at_once, q));
    CHECK(mpqt_wait_ended(p.pid, 10000));          /* exited, not yet joined */
    CHECK_OK(mpq_queue_add_producer(q, p.pid));
    CHECK_EQ(mpq_queue_producers(q), 1);
    CHECK_OK(mpq_queue_put(q, "last", 4, 0));
    CHECK_OK(mpq_queue_add_producer(q, (int)getpid()));
    CHECK_ERR(mpq_queue_add_producer(q, (int)getpid()), ENOSPC);
    CHECK_EQ(mpq_queue_producers(q), 1);
    CHECK_OK(mpq_queue_producer_done(q));          /* this process: the last */
    CHECK_EQ(mpq_queue_producers(q), 0);
    CHECK_ERR(mpq_queue_producer_done(q), EOVERFLOW);
    CHECK_ERR(mpq_queue_add_producer(q, (int)getpid()), ENOSPC);
    {
        char buf[8];
        size_t len;
        CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));   /* what was left, then the end */
        CHECK(len == 4 && memcmp(buf, "last", 4) == 0);
        CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EPIPE);
    }
    MPQT_JOIN_OK(&p, 0);
    CHECK_OK(mpq_queue_close(q));
}

static int hang_forever(void *arg) { (void)arg; for (;;) pause(); return 0; }

/* A consumer of its own (a sibling of the producers, not their parent)
   that takes the 50 messages of producer 0 and then waits in mpq_wait -
   over the stream, a second queue and a pipe - until the stream ends:
   exit 0 if the wait saw it and the get says -EPIPE. */
struct waiter { mpq_queue *q, *other; int fd; };

static int wait_for_end(void *arg)
{
    struct waiter *w = (struct waiter *)arg;
    mpq_waitable ws[] = { MPQ_WAIT_QUEUE(w->other), MPQ_WAIT_QUEUE(w->q), MPQ_WAIT_FD(w->fd) };
    uint32_t m[2];
    size_t len;
    int i;
    for (i = 0; i < 50; i++)   /* no empty get here: the wait must find the end */
        if (mpq_queue_get(w->q, m, sizeof m, &len, 20000) != 0 || (int)m[1] != i) return 1;
    if (mpq_wait(ws, 3, 20000) != 1 || !ws[1].ready || ws[0].ready || ws[2].ready) return 2;
    return mpq_queue_get(w->q, m, sizeof m, &len, 0) == -EPIPE ? 0 : 3;
}

/* A registered producer killed - idle, or holding a reserved slot - counts
   as done: a consumer blocked on the empty queue with a 20 s timeout gets
   the others' messages and then the end, not a timeout. So does a
   producer whose process exited without saying it was done, and a
   consumer asleep in mpq_wait rather than in a get (round 2: it is
   asleep before the kills). */
static void test_queue_stream_dead_producers(void)
{
    int round;
    for (round = 0; round < 3; round++) {
        mpq_queue *q = new_stream(64, 3), *other = new_queue(4, 16);   /* room for all 50 */
        mpq_process p[3], c;
        struct sp a;
        struct waiter w;
        int next[3] = { 0, 0, 0 }, fds[2], i;
        CHECK(pipe(fds) == 0);
        a.q = q;
        a.id = 0;
        a.n = 50;
        a.done = round != 2;                       /* round 2: it just exits */
        CHECK_OK(mpq_process_start(&p[0], stream_producer, &a));
        CHECK_OK(mpq_queue_add_producer(q, p[0].pid));
        CHECK_OK(mpq_process_start(&p[1], round == 1 ? reserve_and_hang : hang_forever, q));
        CHECK_OK(mpq_queue_add_producer(q, p[1].pid));
        CHECK_OK(mpq_process_start(&p[2], hang_forever, q));
        CHECK_OK(mpq_queue_add_producer(q, p[2].pid));
        for (i = 1; i < 3; i++) CHECK(mpqt_wait_sleeping(p[i].pid, 10000));   /* in pause(), slot held */
        if (round == 2) {
            w.q = q;
            w.other = other;
            w.fd = fds[0];
            CHECK_OK(mpq_process_start(&c, wait_for_end, &w));
            MPQT_JOIN_OK(&p[0], 0);
            while (mpq_queue_count(q) > 0) mpqt_pause();
            CHECK(mpqt_wait_sleeping(c.pid, 10000));
        }
        CHECK_OK(mpq_process_kill(&p[1], SIGKILL));
        CHECK_OK(mpq_process_kill(&p[2], SIGKILL));
        if (round == 2) {
            MPQT_JOIN_OK(&c, 0);
        } else {
            CHECK_EQ(drain_stream(q, next, 1), 50);
            CHECK_EQ(next[0], 50);
        }
        CHECK_EQ(mpq_queue_producers(q), 0);
        for (i = round == 2; i < 3; i++) CHECK_OK(mpq_process_join(&p[i], 10000));
        close(fds[0]);
        close(fds[1]);
        CHECK_OK(mpq_queue_close(other));
        CHECK_OK(mpq_queue_close(q));
    }
}

/* Every word done, and nobody shut the queue down (its last producer was
   killed between the two): a get blocked for ever still ends. */
static void test_queue_stream_done_but_not_shut(void)
{
    mpq_queue *q = new_stream(4, 2);
    uint64_t start;
    uint32_t me = mpq__self(&start);
    char buf[8];
    size_t len;
    q->ptab[0] = (start << 24) | MPQ__PR_DONE | me;
    q->ptab[1] = (start << 24) | MPQ__PR_DONE | MPQ__PR_REG | me;
    CHECK_OK(mpq_queue_put(q, "x", 1, 0));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, -1));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, -1), EPIPE);
    CHECK_OK(mpq_queue_close(q));
}

/* A producer's registration and its done at the same instant (threads of
   one process, so one pid): they meet in one word, every time - the
   queue counts one producer done of two, and another producer (our
   parent, alive) can still be registered in the other word. */
struct meet { mpq_queue *q; uint32_t go; int rc; };

static void *meet_add(void *arg)
{
    struct meet *m = (struct meet *)arg;
    while (!mpq__load32(&m->go, MPQ__ACQUIRE)) {}
    m->rc = mpq_queue_add_producer(m->q, (int)getpid());
    return NULL;
}

static void test_queue_stream_registered_while_done(void)
{
    uint64_t seed = 0x3ee7u ^ (uint64_t)getpid();
    int i;
    for (i = 0; i < 3000; i++) {
        struct meet m;
        pthread_t t;
        volatile uint32_t lag = (uint32_t)(mpqt_rand(&seed) % 300000);   /* registering reads /proc first */
        int rc;
        m.q = new_stream(4, 2);
        m.go = 0;
        CHECK(pthread_create(&t, NULL, meet_add, &m) == 0);
        mpq__store32(&m.go, 1, MPQ__RELEASE);
        while (lag) lag--;
        rc = mpq_queue_producer_done(m.q);
        CHECK(pthread_join(t, NULL) == 0);
        CHECK_OK(rc);
        CHECK_OK(m.rc);
        if (mpq_queue_producers(m.q) != 1)
            mpqt_fail(__FILE__, __LINE__, "round %d: %d producers left, not 1", i, mpq_queue_producers(m.q));
        CHECK_OK(mpq_queue_add_producer(m.q, (int)getppid()));  /* another producer: the other word */
        CHECK_OK(mpq_queue_close(m.q));
    }
}

/* The look for dead producers: due at once in a new handle, whatever the
   clock says (it kept the time of the next look, which read as "not yet"
   for ever while CLOCK_MONOTONIC in ms, mod 2^32, was 2^31 or more: half
   of every 49.7 days of uptime - found by review); and a thread's id is
   not a producer (its done, under the process's pid, would count apart). */
static int g_gate[2];   /* a pipe: readers block until its write end closes */

static void *thread_gated(void *arg)
{
    char c;
    *(volatile int *)arg = (int)syscall(SYS_gettid);
    while (read(g_gate[0], &c, 1) < 0 && errno == EINTR) {}
    return NULL;
}

static int child_gated(void *arg)
{
    char c;
    (void)arg;
    close(g_gate[1]);
    while (read(g_gate[0], &c, 1) < 0 && errno == EINTR) {}
    return 0;
}

static void test_queue_stream_clock_and_threads(void)
{
    mpq_queue *q = new_stream(4, 1);
    mpq_process p;
    pthread_t t;
    uint32_t now;
    char buf[16];
    size_t len;
    volatile int tid = 0;
    int64_t t0;
    CHECK_OK(pipe(g_gate));
    CHECK_OK(mpq_process_start(&p, child_gated, NULL));
    CHECK_OK(mpq_queue_add_producer(q, p.pid));
    /* A live thread's id is refused; the process's own is not. */
    CHECK_EQ(pthread_create(&t, NULL, thread_gated, (void *)&tid), 0);
    t0 = mpqt_ms();
    while (tid == 0 && mpqt_ms() - t0 < 10000) sched_yield();
    CHECK(tid != 0 && tid != (int)getpid());
    CHECK_ERR(mpq_queue_add_producer(q, tid), EINVAL);
    close(g_gate[1]);   /* the thread and the child end */
    CHECK_EQ(pthread_join(t, NULL), 0);
    close(g_gate[0]);
    MPQT_JOIN_OK(&p, 0);
    /* As a handle whose word reads "not before" 24 days from now, as a
       zero did in the old scheme at an uptime past 2^31 ms: the dead
       producer is seen all the same (it was not, for ever). */
    now = (uint32_t)(mpq__now_ns() / 1000000);
    q->pcheck = now + 0x7ffffff0u;
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 20000), EPIPE);
    CHECK_OK(mpq_queue_close(q));
}

static void test_queue_stream_bad_input(void)
{
    mpq_queue *q = new_queue(4, 16), *s;
    mpq_queue_config c;
    mpq_process p;
    memset(&c, 0, sizeof c);
    c.producers = MPQ__Q_MAX_PRODUCERS + 1;
    CHECK_ERR(mpq_queue_create(&s, &c), EINVAL);
    c.producers = MPQ__Q_MAX_PRODUCERS;
    CHECK_OK(mpq_queue_create(&s, &c));
    CHECK_EQ(mpq_queue_producers(s), (long long)MPQ__Q_MAX_PRODUCERS);
    CHECK_OK(mpq_queue_close(s));
    /* A queue without a count. */
    CHECK_ERR(mpq_queue_add_producer(q, (int)getpid()), EINVAL);
    CHECK_ERR(mpq_queue_producer_done(q), EINVAL);
    CHECK_ERR(mpq_queue_producers(q), EINVAL);
    CHECK_ERR(mpq_queue_add_producer(NULL, (int)getpid()), EINVAL);
    CHECK_ERR(mpq_queue_producer_done(NULL), EINVAL);
    CHECK_ERR(mpq_queue_producers(NULL), EINVAL);
    CHECK_OK(mpq_queue_close(q));
    q = new_stream(4, 1);
    CHECK_ERR(mpq_queue_add_producer(q, 0), EINVAL);
    CHECK_ERR(mpq_queue_add_producer(q, -1), EINVAL);
    CHECK_ERR(mpq_queue_add_producer(q, 0x400000), EINVAL);
    /* A child already joined is gone: no registration, nothing used up. */
    s = new_stream(4, 1);
    CHECK_OK(mpq_process_start(&p, done_at_once, s));
    MPQT_JOIN_OK(&p, 0);
    CHECK_OK(mpq_queue_close(s));
    if (kill(p.pid, 0) != 0) CHECK_ERR(mpq_queue_add_producer(q, p.pid), ESRCH);
    CHECK_EQ(mpq_queue_producers(q), 1);
    CHECK_OK(mpq_queue_close(q));
}

struct st { mpq_queue *q; int id; };

static void *stream_thread(void *arg)
{
    struct st *t = (struct st *)arg;
    uint32_t m[2];
    int i;
    for (i = 0; i < 200; i++) {
        m[0] = (uint32_t)t->id;
        m[1] = (uint32_t)i;
        if (mpq_queue_put(t->q, m, sizeof m, 20000) != 0) return (void *)1;
    }
    return mpq_queue_producer_done(t->q) == 0 ? NULL : (void *)2;
}

/* Threads of one process as the producers (one pid, a word each), and
   one of them registered too: the stream ends after the last. */
static void test_queue_stream_threads(void)
{
    mpq_queue *q = new_stream(16, 6);
    pthread_t t[6];
    struct st a[6];
    int next[6] = { 0 }, i;
    void *r;
    CHECK_OK(mpq_queue_add_producer(q, (int)getpid()));
    for (i = 0; i < 6; i++) {
        a[i].q = q;
        a[i].id = i;
        CHECK(pthread_create(&t[i], NULL, stream_thread, &a[i]) == 0);
    }
    CHECK_EQ(drain_stream(q, next, 6), 1200);
    for (i = 0; i < 6; i++) {
        CHECK(pthread_join(t[i], &r) == 0);
        CHECK(r == NULL);
    }
    CHECK_EQ(mpq_queue_producers(q), 0);
    CHECK_OK(mpq_queue_close(q));
}

/* 40 rounds: three registered producers of up to 4000 messages, of which
   a random one or two are SIGKILLed at a random instant (before their
   first put, inside the puts - about half of the kills - inside a done,
   or after); the stream always ends, and what arrives is each producer's
   messages in order, once each, all of the survivors'. */
static void test_queue_stream_kill_storm(void)
{
    uint64_t seed = 0x5eed0e05u ^ (uint64_t)getpid();
    int round, kills = 0, midway = 0;
    for (round = 0; round < 40; round++) {
        mpq_queue *q = new_stream(4096, 3);   /* room for all: a victim dies putting, saying done, or after */
        mpq_process p[3];
        struct sp a[3];
        int next[3] = { 0, 0, 0 }, i, victims = 1 + (int)(mpqt_rand(&seed) % 2);
        for (i = 0; i < 3; i++) {
            a[i].q = q;
            a[i].id = i;
            a[i].n = 1 + (int)(mpqt_rand(&seed) % 4000);
            a[i].done = 1;
            CHECK_OK(mpq_process_start(&p[i], stream_producer, &a[i]));
            CHECK_OK(mpq_queue_add_producer(q, p[i].pid));
        }
        for (i = 0; i < victims; i++) {
            volatile uint64_t spin = mpqt_rand(&seed) % 2000000;  /* a random instant */
            while (spin) spin--;
            CHECK_OK(mpq_process_kill(&p[i], SIGKILL));
            kills++;
        }
        drain_stream(q, next, 3);
        for (i = 0; i < 3; i++) {
            CHECK_OK(mpq_process_join(&p[i], 10000));
            if (i >= victims) CHECK_EQ(next[i], a[i].n);   /* the survivors' all came */
            else if (next[i] > 0 && next[i] < a[i].n) midway++;
        }
        CHECK_OK(mpq_queue_close(q));
    }
    printf("    (%d kills, %d of them between a producer's first and last message)\n", kills, midway);
}

/* --- kill storm -------------------------------------------------------------- */

enum { STORM_P = 2, STORM_C = 2, STORM_KILLS = 200 };

static void storm_start(mpq_process *p, struct role *r, int id, mpq_queue *q, struct ledger *l,
                        int (*fn)(void *))
{
    r->q = q;
    r->l = l;
    r->id = id;
    r->n = MAXSEQ;
    r->max_len = 512;
    r->mode = id % 3;
    CHECK_OK(mpq_process_start(p, fn, r));
}

/* After everything was taken: every chunk of the arena is free - its
   word 0, or naming a position whose slot has moved past its lap or holds
   nothing for it - and no group's claim word shows a claim whose slot is
   still being written (told here from the slots, not by mpq's own test),
   so a kill at any instant leaks none. */
static void check_arena_free(mpq_queue *q)
{
    uint32_t c, held = 0, claims = 0;
    for (c = 0; c < q->nchunks; c++) {
        uint64_t w = q->awords[c], lap, st;
        if (w == 0) continue;
        lap = mpq__q_lap(q, w - 1);
        st = mpq__q_slot(q, w - 1)->state;
        held += MPQ__ST_LAP(st) == lap && st != mpq__st(lap, MPQ__FULL, MPQ__SKIPPED);
    }
    for (c = 0; c < q->nchunks; c += MPQ__Q_GROUP) {
        uint64_t v = q->gwords[c / MPQ__Q_GROUP];
        if (v & 0xffffu) claims += MPQ__ST_PHASE(mpq__q_slot(q, (v >> 16) - 1)->state) == MPQ__WRITING;
    }
    if (held) mpqt_fail(__FILE__, __LINE__, "%u of %u arena chunks still held", held, q->nchunks);
    if (claims) mpqt_fail(__FILE__, __LINE__, "%u claims of the arena's groups left in progress", claims);
}

static void run_kill_storm(void)
{
    mpq_shm shm;
    struct ledger *l;
    static struct role roles[MAXINST];
    mpq_process prod[STORM_P], cons[STORM_C];
    int cons_id[STORM_C], next_id = 0, k, i, rc;
    long missing = 0, allowed = 0, delivered = 0, id, seq;
    uint64_t rnd = 99;
    mpq_queue *q = new_queue(16, 512);

    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *l }));
    l = (struct ledger *)shm.addr;
    for (i = 0; i < STORM_P; i++) storm_start(&prod[i], &roles[next_id], next_id, q, l, producer), next_id++;
    for (i = 0; i < STORM_C; i++) { cons_id[i] = next_id; storm_start(&cons[i], &roles[next_id], next_id, q, l, consumer), next_id++; }
    for (k = 0; k < STORM_KILLS; k++) {
        struct timespec ts;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(mpqt_rand(&rnd) % 3000) * 1000;  /* a random instant */
        nanosleep(&ts, NULL);
        i = (int)(mpqt_rand(&rnd) % 2);
        if (mpqt_rand(&rnd) % 2) {
            CHECK_OK(mpq_process_kill(&prod[i], SIGKILL));
            CHECK_OK(mpq_process_join(&prod[i], 10000));
            storm_start(&prod[i], &roles[next_id], next_id, q, l, producer), next_id++;
        } else {
            CHECK_OK(mpq_process_kill(&cons[i], SIGKILL));
            CHECK_OK(mpq_process_join(&cons[i], 10000));
            /* It loses what it was handling: one message, or one batch. */
            allowed += roles[cons_id[i]].mode == 2 ? 8 : 1;
            cons_id[i] = next_id;
            storm_start(&cons[i], &roles[next_id], next_id, q, l, consumer), next_id++;
        }
    }
    mpq__store32(&l->stop, 1, MPQ__RELEASE);
    for (i = 0; i < STORM_P; i++) {
        rc = mpq_process_join(&prod[i], 20000);
        if (rc == -ETIMEDOUT) mpqt_fail(__FILE__, __LINE__, "a producer stayed blocked after the storm");
        CHECK_EQ(prod[i].exitcode, 0);
    }
    CHECK_OK(mpq_queue_shutdown(q, 0));
    for (i = 0; i < STORM_C; i++) {
        rc = mpq_process_join(&cons[i], 20000);
        if (rc == -ETIMEDOUT) mpqt_fail(__FILE__, __LINE__, "a consumer stayed blocked after the storm");
        CHECK_EQ(cons[i].exitcode, 0);
    }
    if (l->errors) mpqt_fail(__FILE__, __LINE__, "%u errors, first: %s", l->errors, l->first_error);
    for (id = 0; id < next_id; id++) {
        for (seq = 0; seq < l->produced[id]; seq++) {
            if (l->seen[id][seq / 64] >> (seq % 64) & 1) delivered++;
            else missing++;
        }
    }
    printf("    (%ld messages acknowledged and delivered, %ld lost to %d kills)\n", delivered, missing, STORM_KILLS);
    CHECK(delivered > STORM_KILLS);
    CHECK(missing <= allowed);
    check_arena_free(q);
    CHECK_OK(mpq_shm_close(&shm));
    CHECK_OK(mpq_queue_close(q));
}

static void test_queue_kill_storm(void) { run_kill_storm(); }

/* --- the arena: messages larger than a slot's bytes ------------------------------ */

/* The same storm over a queue whose slots hold 64 bytes: most messages
   (up to 512 bytes) go to an arena of 2 KiB, so producers wait for room
   there too, and are killed while they hold runs. */
static void test_queue_arena_kill_storm(void)
{
    g_inline = 64;
    run_kill_storm();
    g_inline = 0;
}

/* Everything the MPMC tests check, with the arena: exactly once, each
   producer's order, every mode (put, reserve/commit, batches; get,
   peek/release, get_batch), messages up to 2 KiB in slots of 64 bytes and
   an arena of 8 KiB. */
static void test_queue_arena_mpmc(void)
{
    g_inline = 64;
    run_mpmc(2, 2, 20000, 0, 0, 64);
    run_mpmc(2, 2, 20000, 1, 1, 32);
    run_mpmc(2, 2, 20000, 2, 2, 32);
    run_mpmc(3, 3, 10000, -1, -1, 16);
    g_inline = 0;
}

/* Message i of the model: its length and bytes, from i alone. */
static size_t model_len(uint32_t i, size_t max)
{
    uint64_t r = (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
    size_t len = (size_t)(mpqt_rand(&r) % 4);
    len = len == 0 ? (size_t)(mpqt_rand(&r) % 16) : len == 1 ? max : (size_t)(mpqt_rand(&r) % (max + 1));
    return len < 4 ? 4 : len;
}

static void model_fill(unsigned char *m, uint32_t i, size_t len)
{
    size_t k;
    memcpy(m, &i, 4);
    for (k = 4; k < len; k++) m[k] = (unsigned char)(i * 31 + k);
}

/* A message model_fill made as message `want` of want_len bytes. */
static void check_fill(const unsigned char *m, size_t len, uint32_t want, size_t want_len)
{
    static unsigned char ref[65536];
    if (len != want_len || want_len > sizeof ref) {
        mpqt_fail(__FILE__, __LINE__, "message %u: %zu bytes, expected %zu", want, len, want_len);
        return;
    }
    model_fill(ref, want, len);
    if (memcmp(ref, m, len) != 0) mpqt_fail(__FILE__, __LINE__, "message %u: bytes wrong", want);
}

static void model_check(const unsigned char *m, size_t len, uint32_t want, size_t max)
{
    size_t k;
    uint32_t i;
    memcpy(&i, m, 4);
    if (i != want || len != model_len(i, max)) {
        mpqt_fail(__FILE__, __LINE__, "message %u: got %u of %zu bytes", want, i, len);
        return;
    }
    for (k = 4; k < len; k++)
        if (m[k] != (unsigned char)(i * 31 + k)) {
            mpqt_fail(__FILE__, __LINE__, "message %u: byte %zu wrong", i, k);
            return;
        }
}

/* The default queue: a few hundred KiB, yet a 64 KiB message goes through;
   messages of every size from 0 to max_msg, in and out of the slots, come
   out whole and in order through every way of putting and getting. */
static void test_queue_arena_basic(void)
{
    static unsigned char m[65536], out[65536 * 2];
    mpq_queue *q;
    size_t len, lens[8];
    const void *msgs[3], *view;
    void *slot;
    uint32_t i, next = 0, sent = 0;
    int rc;
    m[0] = 0;
    CHECK_OK(mpq_queue_create(&q, NULL));
    CHECK_EQ(mpq_queue_max_msg(q), 65536);
    if (q->length > 600 * 1024) mpqt_fail(__FILE__, __LINE__, "the default queue maps %zu bytes", q->length);
    printf("    (the default queue: %zu KiB for 1024 messages of up to 64 KiB)\n", q->length / 1024);
    for (i = 0; i < 3000; i++) {
        uint32_t way = i % 5;
        len = model_len(sent, 65536);
        model_fill(m, sent, len);
        if (way == 0 || way == 4) {
            CHECK_OK(mpq_queue_put(q, m, len, 1000));
            sent++;
        } else if (way == 1) {
            CHECK_OK(mpq_queue_reserve(q, &slot, 1000));
            memcpy(slot, m, len);
            CHECK_OK(mpq_queue_commit(q, slot, len));
            sent++;
        } else if (way == 2) {   /* a reservation given back costs nothing */
            CHECK_OK(mpq_queue_reserve(q, &slot, 1000));
            CHECK_OK(mpq_queue_cancel(q, slot));
            continue;
        } else {                 /* three at once: packed when they fit */
            static unsigned char b3[3][65536];
            size_t l3[3];
            int j;
            for (j = 0; j < 3; j++) {
                l3[j] = model_len(sent + (uint32_t)j, 65536);
                model_fill(b3[j], sent + (uint32_t)j, l3[j]);
                msgs[j] = b3[j];
            }
            rc = mpq_queue_put_batch(q, msgs, l3, 3, 1000);
            CHECK(rc >= 1);
            sent += (uint32_t)rc;
        }
        /* Drained in a way of its own (a single thread: the arena holds
           four 64 KiB messages, a batch is at most three). */
        while (next < sent) {
            uint32_t how = next % 3;
            if (how == 0) {
                CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 1000));
                model_check(out, len, next++, 65536);
            } else if (how == 1) {
                CHECK_OK(mpq_queue_peek(q, &view, &len, 1000));
                model_check((const unsigned char *)view, len, next++, 65536);
                CHECK_OK(mpq_queue_release(q, view));
            } else {
                size_t off = 0;
                int k;
                rc = mpq_queue_get_batch(q, out, sizeof out, lens, 8, 1000);
                CHECK(rc >= 1);
                for (k = 0; k < rc; k++) {
                    model_check(out + off, lens[k], next++, 65536);
                    off += lens[k];
                }
            }
        }
    }
    while (next < sent) {
        CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 1000));
        model_check(out, len, next++, 65536);
    }
    CHECK_ERR(mpq_queue_get(q, out, sizeof out, &len, 0), EAGAIN);
    check_arena_free(q);
    CHECK_OK(mpq_queue_close(q));
}

/* The arena full: a put that needs room there waits for it (-EAGAIN with
   timeout 0, -ETIMEDOUT after its timeout), and holds no slot meanwhile -
   small messages behind it are not blocked; a get that takes a large
   message makes room, and the order of each producer's messages holds. A
   get with too small a buffer leaves the message, and a reference that
   points outside the arena is -EIO, never a read out of bounds. */
static void test_queue_arena_full(void)
{
    static unsigned char m[4096], out[4096];
    mpq_queue *q = new_arena_queue(16, 4096, 64, 0), *bad;   /* arena: 4 * 4096 */
    size_t len;
    uint32_t k;
    CHECK_EQ(q->nchunks, 4 * 4096 / MPQ__CHUNK);
    for (k = 0; k < 4; k++) {
        model_fill(m, k, 4096);
        CHECK_OK(mpq_queue_put(q, m, 4096, 0));
    }
    model_fill(m, 4, 4096);
    CHECK_ERR(mpq_queue_put(q, m, 4096, 0), EAGAIN);
    CHECK_ERR(mpq_queue_put(q, m, 4096, 30), ETIMEDOUT);
    CHECK_OK(mpq_queue_put(q, "small", 5, 0));              /* slots are free */
    CHECK_ERR(mpq_queue_get(q, out, 100, &len, 0), EMSGSIZE);
    CHECK_EQ(len, 4096);
    CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
    check_fill(out, len, 0, 4096);
    CHECK_OK(mpq_queue_put(q, m, 4096, 0));                 /* room again */
    for (k = 1; k < 4; k++) {
        CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
        check_fill(out, len, k, 4096);
    }
    CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
    CHECK(len == 5 && memcmp(out, "small", 5) == 0);
    CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
    check_fill(out, len, 4, 4096);
    /* A reservation here is a run of the arena: its commit or cancel takes
       that pointer, not the slot's own bytes (a commit through those
       published a message nobody could read, and lost the real one). */
    {
        void *r;
        uint64_t head = mpq__load64(&q->h->head, MPQ__ACQUIRE);
        CHECK_OK(mpq_queue_reserve(q, &r, 0));
        CHECK(mpq__q_chunk_of(q, r) >= 0);
        CHECK_ERR(mpq_queue_commit(q, mpq__q_data(mpq__q_slot(q, head)), 10), EINVAL);
        CHECK_ERR(mpq_queue_cancel(q, mpq__q_data(mpq__q_slot(q, head))), EINVAL);
        CHECK_ERR(mpq_queue_commit(q, (char *)r + MPQ__CHUNK, 10), EINVAL);   /* not its first chunk */
        memcpy(r, "reserved", 8);
        CHECK_OK(mpq_queue_commit(q, r, 8));
        CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
        CHECK(len == 8 && memcmp(out, "reserved", 8) == 0);
        /* A cancelled reservation's run is free at once: the arena's last
           room, taken by it, takes a large message next. */
        for (k = 0; k < 3; k++) CHECK_OK(mpq_queue_put(q, m, 4096, 0));
        CHECK_OK(mpq_queue_reserve(q, &r, 0));
        CHECK_ERR(mpq_queue_put(q, m, 4096, 0), EAGAIN);
        CHECK_OK(mpq_queue_cancel(q, r));
        CHECK_OK(mpq_queue_put(q, m, 4096, 0));
        for (k = 0; k < 4; k++) {
            CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
            check_fill(out, len, 4, 4096);
        }
    }
    /* A scribbled reference: -EIO, and the queue goes on. */
    CHECK_OK(mpq_queue_put(q, m, 4096, 0));
    {
        uint64_t t = mpq__load64(&q->h->tail, MPQ__ACQUIRE);
        mpq__q_slot(q, t)->ref = q->nchunks;   /* its run would end past the arena */
    }
    CHECK_ERR(mpq_queue_get(q, out, sizeof out, &len, 0), EIO);
    CHECK_OK(mpq_queue_put(q, "next", 4, 0));
    CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
    CHECK(len == 4 && memcmp(out, "next", 4) == 0);
    check_arena_free(q);
    /* Bad configurations: an arena below max_msg, or beyond 2^24 chunks. */
    CHECK_ERR(mpq_queue_create(&bad, &(mpq_queue_config){ .max_msg = 4096, .inline_max = 64, .arena = 100 }),
              EINVAL);
    if (sizeof(size_t) > 4)
        CHECK_ERR(mpq_queue_create(&bad, &(mpq_queue_config){ .max_msg = 4096, .inline_max = 64,
                                                              .arena = (size_t)((uint64_t)1 << 40) }),
                  EINVAL);
    CHECK_OK(mpq_queue_close(q));
}

/* A producer waiting for room in the arena holds nothing: while the
   parent holds a peek of the one large message the arena has room for, a
   child's large put waits - and the parent's small messages flow past it
   all the while (they would wait behind a slot the child held) - until
   the release makes room. */
static int arena_waiter(void *arg)
{
    static unsigned char m[4096];
    mpq_queue *q = (mpq_queue *)arg;
    model_fill(m, 9, 4096);
    return mpq_queue_put(q, m, 4096, 20000) == 0 ? 0 : 1;
}

/* The last taker of a packed batch in the arena is killed right after it
   moved the slot on: the run is free with it, and no consumer may ever
   read another
   batch through the old slot - with the run given back first, a batch put
   into it was handed out again from the old slot, twice and out of order
   (found by review). */
static int last_taker(void *arg)
{
    mpq_queue *q = (mpq_queue *)arg;
    char buf[4096];
    size_t n;
    if (mpq_queue_get(q, buf, sizeof buf, &n, 5000) != 0 || n != 100) return 1;
    g_kill_point = "pack_free";
    (void)mpq_queue_get(q, buf, sizeof buf, &n, 5000);
    return 2;   /* not reached */
}

static void test_queue_arena_packed_last_taker_killed(void)
{
    static char a[2][100], big[3800], buf[4096];
    char z[10][8];
    const void *msgs[10];
    size_t lens[10], n;
    mpq_queue *q = new_arena_queue(32, 4096, 64, 4096);
    mpq_process p;
    int i;
    memset(a, 'a', sizeof a);
    msgs[0] = a[0];
    msgs[1] = a[1];
    lens[0] = lens[1] = 100;
    CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 2, 0), 2);    /* 212 bytes: a run */
    memset(big, 'B', sizeof big);
    CHECK_OK(mpq_queue_put(q, big, sizeof big, 0));           /* the rest of the arena */
    CHECK_OK(mpq_process_start(&p, last_taker, q));
    CHECK_OK(mpq_process_join(&p, 20000));
    CHECK_EQ(p.exitcode, -SIGKILL);
    for (i = 0; i < 10; i++) {
        z[i][0] = 'Z';
        z[i][1] = (char)('0' + i);
        z[i][2] = 0;
        msgs[i] = z[i];
        lens[i] = 8;
    }
    CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 10, 1000), 10);   /* 124 bytes: a run */
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &n, 0));
    CHECK(n == sizeof big && buf[0] == 'B' && buf[sizeof big - 1] == 'B');
    for (i = 0; i < 10; i++) {
        CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &n, 0));
        CHECK(n == 8 && strcmp(buf, z[i]) == 0);
    }
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &n, 0), EAGAIN);
    check_arena_free(q);
    CHECK_OK(mpq_queue_close(q));
}

static void test_queue_arena_waiter_holds_nothing(void)
{
    static unsigned char m[4096], out[4096];
    /* A ring of 1024 (a held peek blocks it a lap on), an arena for one
       large message at a time. */
    mpq_queue *q = new_arena_queue(1024, 4096, 32, 4096);
    mpq_process p;
    const void *view;
    size_t len;
    uint32_t k;
    int64_t t0;
    model_fill(m, 8, 4096);
    CHECK_OK(mpq_queue_put(q, m, 4096, 0));
    CHECK_OK(mpq_queue_peek(q, &view, &len, 0));
    check_fill((const unsigned char *)view, len, 8, 4096);
    CHECK_OK(mpq_process_start(&p, arena_waiter, q));
    /* The child found no room once it sleeps on the producers' eventcount
       (its bit 0: somebody sleeps). */
    t0 = mpqt_ms();
    while (!(mpq__load32(&q->h->space_ec, MPQ__ACQUIRE) & 1u)) {
        if (mpqt_ms() - t0 > 10000) {
            mpqt_fail(__FILE__, __LINE__, "the child never waited for room");
            break;
        }
        sched_yield();
    }
    for (k = 0; k < 200; k++) {
        CHECK_OK(mpq_queue_put(q, &k, 4, 5000));
        CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 5000));
        CHECK(len == 4 && memcmp(out, &k, 4) == 0);
    }
    CHECK_OK(mpq_queue_release(q, view));
    CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 10000));
    check_fill(out, len, 9, 4096);
    CHECK_OK(mpq_process_join(&p, 20000));
    CHECK_EQ(p.exitcode, 0);
    check_arena_free(q);
    CHECK_OK(mpq_queue_close(q));
}

/* A put of max_msg bytes, killed at g_kill_point (after g_kill_skip
   passes) while it takes its run. */
static int killed_taking_run(void *arg)
{
    static unsigned char m[8192];
    mpq_queue *q = (mpq_queue *)arg;
    model_fill(m, 1, mpq_queue_max_msg(q));
    return mpq_queue_put(q, m, mpq_queue_max_msg(q), 5000) == 0 ? 3 : 4;   /* not reached */
}

/* A put killed while it takes a run - its groups claimed (the first, or
   the second of two), their chunks not yet named its own, or named and
   the claims not ended - strands none of them: once its slot is taken
   over, the claim is over, and a put of the whole arena (every chunk of
   every group) goes through. Each arena here is one largest message. */
static void test_queue_arena_claim_killed(void)
{
    static const struct { const char *point; int skip; uint32_t max; } k[] = {
        { "arena_claim", 0, 4096 }, { "arena_named", 0, 4096 },
        { "arena_claim", 0, 8192 }, { "arena_claim", 1, 8192 }, { "arena_named", 0, 8192 },
    };
    static unsigned char m[8192], out[8192];
    size_t i, len;
    for (i = 0; i < sizeof k / sizeof k[0]; i++) {
        mpq_queue *q = new_arena_queue(32, k[i].max, 64, k[i].max);
        mpq_process p;
        CHECK_EQ(q->nchunks, k[i].max / MPQ__CHUNK);
        g_kill_point = k[i].point;
        g_kill_skip = k[i].skip;
        CHECK_OK(mpq_process_start(&p, killed_taking_run, q));
        g_kill_point = NULL;
        CHECK_OK(mpq_process_join(&p, 20000));
        CHECK_EQ(p.exitcode, -SIGKILL);
        CHECK_OK(mpq_queue_put(q, "small", 5, 0));        /* the slots go on meanwhile */
        model_fill(m, 2, k[i].max);
        CHECK_OK(mpq_queue_put(q, m, k[i].max, 10000));
        CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
        CHECK(len == 5 && memcmp(out, "small", 5) == 0);
        CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));   /* the dead put's is lost */
        check_fill(out, len, 2, k[i].max);
        CHECK_ERR(mpq_queue_get(q, out, sizeof out, &len, 0), EAGAIN);
        check_arena_free(q);
        CHECK_OK(mpq_queue_close(q));
    }
}

/* A batch that neither the arena (full) nor a slot (one message at most)
   takes, tried again and again with timeout 0 - a poll loop - fails with
   -EAGAIN and costs nothing: no position given up for it (they would fill
   the ring, and a small put would find it full). Small messages too many
   for one slot go packed into several meanwhile. */
static void test_queue_arena_full_batch_polled(void)
{
    static char m[1000], out[4096];
    const void *msgs[2] = { m, m };
    size_t lens[2] = { 1000, 1000 }, len;
    mpq_queue *q = new_arena_queue(32, 4096, 224, 4096);
    int i;
    for (i = 0; i < 4; i++) CHECK_OK(mpq_queue_put(q, m, 1000, 0));   /* the whole arena */
    CHECK_EQ(mpq_queue_count(q), 4);
    for (i = 0; i < 100; i++) CHECK_ERR(mpq_queue_put_batch(q, msgs, lens, 2, 0), EAGAIN);
    CHECK_EQ(mpq_queue_count(q), 4);
    CHECK_OK(mpq_queue_put(q, "small", 5, 0));
    /* Small ones too many for a slot still travel, packed into slots. */
    {
        char z[10][40];
        const void *zm[10];
        size_t zl[10];
        for (i = 0; i < 10; i++) {
            memset(z[i], 'a' + i, sizeof z[i]);
            zm[i] = z[i];
            zl[i] = sizeof z[i];
        }
        CHECK_EQ(mpq_queue_put_batch(q, zm, zl, 10, 0), 10);
        CHECK_EQ(mpq_queue_count(q), 5 + 2);   /* 5 + 5 in two slots */
        for (i = 0; i < 4; i++) {
            CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
            CHECK_EQ(len, 1000);
        }
        CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
        CHECK(len == 5 && memcmp(out, "small", 5) == 0);
        for (i = 0; i < 10; i++) {
            CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
            CHECK(len == 40 && out[0] == 'a' + i && out[39] == 'a' + i);
        }
    }
    CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 2, 0), 2);          /* room again: packed */
    CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
    CHECK_OK(mpq_queue_get(q, out, sizeof out, &len, 0));
    CHECK_ERR(mpq_queue_get(q, out, sizeof out, &len, 0), EAGAIN);
    check_arena_free(q);
    CHECK_OK(mpq_queue_close(q));
}

/* --- poll descriptor ---------------------------------------------------------- */

static void test_queue_poll_fd(void)
{
    mpq_queue *q = new_queue(8, 8);
    mpq_process p;
    char buf[8];
    size_t len;
    int fd = mpq_queue_fileno(q);
    CHECK(fd >= 0);
    CHECK(!mpqt_readable(fd, 0));
    CHECK_OK(mpq_process_start(&p, put_one, q));     /* a put in another process */
    CHECK(mpqt_readable(fd, 10000));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK(mpqt_readable(fd, 0));                          /* level: still there */
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EAGAIN);
    CHECK(!mpqt_readable(fd, 0));                         /* drained: reset */
    CHECK_OK(mpq_queue_put(q, "a", 1, 0));
    CHECK_OK(mpq_queue_put(q, "b", 1, 0));
    CHECK(mpqt_readable(fd, 0));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EAGAIN);
    CHECK(!mpqt_readable(fd, 0));
    CHECK_OK(mpq_queue_shutdown(q, 0));
    CHECK(mpqt_readable(fd, 0));                          /* closed reads as ready */
    CHECK_OK(mpq_queue_close(q));
}

/* A consumer blocked on an idle queue sleeps in the kernel. */
static void test_queue_idle_consumer_sleeps(void)
{
    mpq_queue *q = new_queue(8, 8);
    mpq_process p;
    CHECK_OK(mpq_process_start(&p, blocked_get, q));
    CHECK(mpqt_wait_sleeping(p.pid, 10000));
    CHECK_IDLE(p.pid);
    CHECK_OK(mpq_queue_shutdown(q, 0));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 0);
    CHECK_OK(mpq_queue_close(q));
}

/* Issue 15: with three times as many processes as CPUs and a producer
   far slower than its consumers, the waiting consumers must sleep, not
   spin: waiters that never sleep take the CPU of the very process they
   wait for. The consumers' CPU time over the run is what is measured (it
   does not depend on how loaded the machine is), against a bound a
   spinning crowd exceeds several times over: a quarter of the machine. */
typedef struct crowd_arg {
    mpq_queue *q;
    uint32_t  *got;   /* messages taken, by all consumers (shared) */
} crowd_arg;

static int crowd_consumer(void *arg)
{
    crowd_arg *a = (crowd_arg *)arg;
    char buf[8];
    size_t len;
    int rc;
    while ((rc = mpq_queue_get(a->q, buf, sizeof buf, &len, 30000)) == 0)
        __atomic_add_fetch(a->got, 1, __ATOMIC_SEQ_CST);
    return rc == -EPIPE ? 0 : 1;
}

static void test_queue_crowded_waiters_sleep(void)
{
    enum { MSGS = 150, MAXC = 24 };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN), used = 0;
    crowd_arg a;
    mpq_process p[MAXC];
    long before[MAXC];
    int i, n;
    int64_t t0, wall;
    if (cpus < 1) cpus = 1;
    if (mpqt_cpu_ms(getpid()) < 0) MPQT_SKIP("no CPU times in /proc");
    /* Emulated, a spin's pauses cost what they do not on a CPU. */
    MPQT_SKIP_UNDER_QEMU("a spin's CPU time under emulation is not a CPU's");
    n = 3 * cpus > MAXC ? MAXC : (int)(3 * cpus);
    a.q = new_queue(64, 8);
    a.got = (uint32_t *)mpqt_shared(sizeof *a.got);
    for (i = 0; i < n; i++) CHECK_OK(mpq_process_start(&p[i], crowd_consumer, &a));
    for (i = 0; i < n; i++) CHECK(mpqt_wait_sleeping(p[i].pid, 10000));
    for (i = 0; i < n; i++) before[i] = mpqt_cpu_ms(p[i].pid);
    t0 = mpqt_ms();
    for (i = 0; i < MSGS; i++) {
        /* The slow producer: a message every 4 ms (the workload's pace,
           not a synchronisation). */
        struct timespec d = { 0, 4000000 };
        CHECK_OK(mpq_queue_put(a.q, "m", 1, 10000));
        nanosleep(&d, NULL);
    }
    wall = mpqt_ms() - t0;
    for (i = 0; i < n; i++) {
        long after = mpqt_cpu_ms(p[i].pid);
        CHECK(before[i] >= 0 && after >= 0);
        used += after - before[i];
    }
    CHECK_OK(mpq_queue_shutdown(a.q, 0));
    for (i = 0; i < n; i++) {
        CHECK_OK(mpq_process_join(&p[i], 30000));
        CHECK_EQ(p[i].exitcode, 0);
    }
    CHECK_EQ(__atomic_load_n(a.got, __ATOMIC_SEQ_CST), MSGS);
    CHECK_MSG(used * 4 <= wall * cpus,
              "%d waiting consumers used %ld ms of CPU in %lld ms on %ld CPUs: they spin instead of sleeping",
              n, used, (long long)wall, cpus);
    CHECK_OK(mpq_queue_close(a.q));
}

/* --- corrupt segments ------------------------------------------------------- */

static void put_segment(const char *name, const void *img, size_t len)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    if (len) CHECK_EQ(pwrite(fd, img, len, 0), (long long)len);
    close(fd);
}

static void test_queue_open_rejects_bad_segments(void)
{
    char name[64];
    mpq_queue *q, *q2;
    unsigned char *img, *bad;
    mpq__qhdr *qh;
    size_t len;
    uint64_t seed = 7;
    int i, refused = 0;
    mpqt_name(name, sizeof name, "qimg");
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 4, .max_msg = 32, .name = name }));
    len = q->length;
    img = (unsigned char *)malloc(len);
    bad = (unsigned char *)malloc(len);
    memcpy(img, q->base, len);
    CHECK_OK(mpq_queue_close(q));
    qh = (mpq__qhdr *)(bad + MPQ__SEG_HDR);
    /* Queue fields that lie, under a valid segment header. */
    memcpy(bad, img, len); qh->magic ^= 1;        put_segment(name, bad, len);
    CHECK_ERR(mpq_queue_open(&q2, name), EINVAL);
    memcpy(bad, img, len); qh->capacity = 3;      put_segment(name, bad, len);
    CHECK_ERR(mpq_queue_open(&q2, name), EINVAL);
    memcpy(bad, img, len); qh->max_msg = 4096;    put_segment(name, bad, len);
    CHECK_ERR(mpq_queue_open(&q2, name), EINVAL);
    memcpy(bad, img, len); qh->stride = 8;        put_segment(name, bad, len);
    CHECK_ERR(mpq_queue_open(&q2, name), EINVAL);
    memcpy(bad, img, len); qh->log2cap = 40;      put_segment(name, bad, len);
    CHECK_ERR(mpq_queue_open(&q2, name), EINVAL);
    put_segment(name, img, len / 2);              /* truncated */
    CHECK_ERR(mpq_queue_open(&q2, name), EINVAL);
    put_segment(name, img, len);
    CHECK_OK(mpq_queue_open(&q2, name));
    CHECK_OK(mpq_queue_close(q2));
    /* Random damage to both headers: refused or usable, never a crash. */
    for (i = 0; i < 2000; i++) {
        int k, flips = 1 + (int)(mpqt_rand(&seed) % 4);
        memcpy(bad, img, len);
        for (k = 0; k < flips; k++)
            bad[mpqt_rand(&seed) % (MPQ__SEG_HDR + 24)] ^= (unsigned char)(1 + mpqt_rand(&seed) % 255);
        put_segment(name, bad, len);
        if (mpq_queue_open(&q2, name) == 0) {
            char buf[64];
            size_t n;
            int rc = mpq_queue_put(q2, "ok", 2, 1000);   /* the closed flag may be hit */
            CHECK(rc == 0 || rc == -EPIPE);
            if (rc == 0) CHECK_OK(mpq_queue_get(q2, buf, sizeof buf, &n, 1000));
            CHECK_OK(mpq_queue_close(q2));
        } else {
            refused++;
        }
    }
    CHECK(refused > 1500);
    CHECK_OK(mpq_shm_unlink(name));
    free(img);
    free(bad);
}

/* --- fork() while other threads put and get (issue 14) ----------------- */

struct busy { mpq_queue *q; uint32_t stop; };

static void *busy_put(void *arg)
{
    struct busy *b = (struct busy *)arg;
    const void *m[3] = { "a", "b", "c" };
    size_t l[3] = { 1, 1, 1 };
    uint64_t i;
    void *slot;
    for (i = 0; !mpq__load32(&b->stop, MPQ__ACQUIRE); i++) {
        if (i % 3 == 0) mpq_queue_put(b->q, "p", 1, 100);
        else if (i % 3 == 1 && mpq_queue_reserve(b->q, &slot, 100) == 0) mpq_queue_commit(b->q, slot, 1);
        else mpq_queue_put_batch(b->q, m, l, 3, 100);
    }
    return NULL;
}

static void *busy_get(void *arg)
{
    struct busy *b = (struct busy *)arg;
    char buf[64];
    size_t len, lens[8];
    const void *m;
    uint64_t i;
    for (i = 0; !mpq__load32(&b->stop, MPQ__ACQUIRE); i++) {
        if (i % 3 == 0) mpq_queue_get(b->q, buf, sizeof buf, &len, 100);
        else if (i % 3 == 1 && mpq_queue_peek(b->q, &m, &len, 100) == 0) mpq_queue_release(b->q, m);
        else mpq_queue_get_batch(b->q, buf, sizeof buf, lens, 8, 100);
    }
    return NULL;
}

/* A call of the child's that must end (0 or -ETIMEDOUT) within 10x its
   100 ms timeout, less the time it waited for a CPU (mpqt_own_ms). */
static int64_t fork_d0;   /* run-queue wait at T0() */
static int bounded(int rc, int64_t t0) { return (rc == 0 || rc == -ETIMEDOUT) && mpqt_own_ms(t0, fork_d0) < 1000; }
#define T0() (fork_d0 = mpqt_run_delay_ms(), mpqt_ms())

/* The child of a fork taken while other threads put and get: its handle
   works in every mode, and each call keeps its timeout. */
static int forked_user(void *arg)
{
    struct busy *b = (struct busy *)arg;
    const void *m[2] = { "c1", "c2" };
    size_t l[2] = { 2, 2 }, len, lens[4];
    char buf[64];
    const void *pm;
    void *slot;
    int64_t t0 = T0();
    int rc;
    if (!bounded(mpq_queue_put(b->q, "child", 5, 100), t0)) return 1;
    t0 = T0();
    if (!bounded(mpq_queue_get(b->q, buf, sizeof buf, &len, 100), t0)) return 2;
    t0 = T0();
    rc = mpq_queue_peek(b->q, &pm, &len, 100);
    if (!bounded(rc, t0) || (rc == 0 && mpq_queue_release(b->q, pm) != 0)) return 3;
    t0 = T0();
    rc = mpq_queue_reserve(b->q, &slot, 100);
    if (!bounded(rc, t0) || (rc == 0 && mpq_queue_commit(b->q, slot, 1) != 0)) return 4;
    t0 = T0();
    rc = mpq_queue_put_batch(b->q, m, l, 2, 100);
    if (!(rc > 0 || rc == -ETIMEDOUT) || mpqt_own_ms(t0, fork_d0) >= 1000) return 5;
    t0 = T0();
    rc = mpq_queue_get_batch(b->q, buf, sizeof buf, lens, 4, 100);
    if (!(rc > 0 || rc == -ETIMEDOUT) || mpqt_own_ms(t0, fork_d0) >= 1000) return 6;
    return 0;
}

/* 100 forks while one thread puts and two get, in every mode: each child
   uses the queue in every mode, and no call outlives its timeout (a
   child's first put took seconds: not fork's doing - a waiter that kept
   losing the race for its slot to the parent's producer, as in
   timeout_bound_under_contention). */
static void test_queue_fork_while_threads_work(void)
{
    struct busy b;
    pthread_t t[3];
    mpq_process p;
    int i;
    memset(&b, 0, sizeof b);
    b.q = new_queue(16, 64);
    CHECK(pthread_create(&t[0], NULL, busy_put, &b) == 0);
    CHECK(pthread_create(&t[1], NULL, busy_get, &b) == 0);
    CHECK(pthread_create(&t[2], NULL, busy_get, &b) == 0);
    for (i = 0; i < 100; i++) {
        CHECK_OK(mpq_process_start(&p, forked_user, &b));
        CHECK_OK(mpq_process_join(&p, 20000));
        if (p.exitcode != 0) mpqt_fail(__FILE__, __LINE__, "fork %d: child failed step %d", i, p.exitcode);
    }
    mpq__store32(&b.stop, 1, MPQ__RELEASE);
    for (i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
    CHECK_OK(mpq_queue_close(b.q));
}

/* --- no descriptor to spare (issue 14) ------------------------------------- */

/* In a process of its own: a child of it dies holding a slot, and then,
   with every descriptor in use (RLIMIT_NOFILE lowered to what is open),
   a get behind that slot must still recognise the dead holder - a zombie
   that no pidfd and no /proc file can be opened for. */
static int get_behind_dead_child_without_fds(void *arg)
{
    mpq_queue *q = (mpq_queue *)arg;
    mpq_process h;
    struct rlimit rl;
    char buf[16];
    size_t len = 0;
    int rc;
    if (mpq_process_start(&h, reserve_and_hang, q) != 0) return 10;
    while (mpq_queue_count(q) == 0)
        if (mpq_process_alive(&h) != 1) return 11;   /* until it holds its slot */
    if (mpq_queue_put(q, "next", 4, 0) != 0) return 12;
    if (mpq_process_kill(&h, SIGKILL) != 0 || !mpqt_wait_ended(h.pid, 10000)) return 13;
    /* Not reaped: a zombie. Now a small table, filled up. */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 14;
    rl.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 15;
    while (dup(0) >= 0) {}
    if (errno != EMFILE) return 16;
    rc = mpq_queue_get(q, buf, sizeof buf, &len, 5000);
    if (rc == -ETIMEDOUT) return 2;
    return rc == 0 && len == 4 && memcmp(buf, "next", 4) == 0 ? 0 : 3;
}

static void test_queue_dead_holder_seen_without_descriptors(void)
{
    mpq_queue *q = new_queue(4, 16);
    mpq_process p;
    CHECK_OK(mpq_process_start(&p, get_behind_dead_child_without_fds, q));
    CHECK_OK(mpq_process_join(&p, 20000));
    if (p.exitcode == 2) mpqt_fail(__FILE__, __LINE__, "the get timed out behind its dead child's slot");
    CHECK_EQ(p.exitcode, 0);
    CHECK_OK(mpq_queue_close(q));
}

/* --- a timeout is a bound, whatever the others do (issue 14) --------------- */

struct scrib { mpq_queue *q; uint64_t a, b; uint32_t stop, going; };

/* Rewrites slot 0's state between two values, as fast as it can, until
   told to stop (bounded). */
static int scribble(void *arg)
{
    struct scrib *w = (struct scrib *)arg;
    mpq__qslot *s = mpq__q_slot(w->q, 0);
    uint64_t i;
    int64_t end = mpqt_ms() + 30000;
    mpq__store32(&w->going, 1, MPQ__RELEASE);
    for (i = 0; !mpq__load32(&w->stop, MPQ__ACQUIRE) && mpqt_ms() < end; i++)
        mpq__store64(&s->state, i & 1 ? w->a : w->b, MPQ__SEQ_CST);
    return 0;
}

/* Calls a put or get six times while scribblers rewrite the slot it waits on:
   each must end with -ETIMEDOUT (-EAGAIN for timeout 0) within 10x its
   100 ms timeout (a promise's bound, not a speed test). */
static void scribbled(mpq_queue *q, uint64_t a, uint64_t b, int put)
{
    struct scrib *w = (struct scrib *)mpqt_shared(2 * sizeof *w);
    mpq_process p[2];
    char buf[16];
    size_t len;
    uint64_t start;
    uint32_t me = mpq__self(&start);
    int i;
    /* The held states name this process, alive, as their claimant. */
    if (MPQ__HELD(a)) a |= me;
    if (MPQ__HELD(b)) b |= me;
    mpq__store64(&mpq__q_slot(q, 0)->owner, MPQ__OWNER(start, (uint64_t)0, MPQ__ST_PHASE(MPQ__HELD(a) ? a : b)),
                 MPQ__SEQ_CST);
    for (i = 0; i < 2; i++) {   /* two, so that one runs when the other is preempted */
        w[i].q = q;
        w[i].a = a;
        w[i].b = b;
        CHECK_OK(mpq_process_start(&p[i], scribble, &w[i]));
        while (!mpq__load32(&w[i].going, MPQ__ACQUIRE)) mpqt_pause();
    }
    for (i = 0; i < 6; i++) {
        int64_t t0 = mpqt_ms(), d0 = mpqt_run_delay_ms(), took;
        int tmo = i < 5 ? 100 : 0, rc = put ? mpq_queue_put(q, "x", 1, tmo)
                                            : mpq_queue_get(q, buf, sizeof buf, &len, tmo);
        took = mpqt_own_ms(t0, d0);
        CHECK_EQ(rc, tmo ? -ETIMEDOUT : -EAGAIN);
        if (took >= 1000) mpqt_fail(__FILE__, __LINE__, "a %d ms %s took %lld ms", tmo,
                                    put ? "put" : "get", (long long)took);
    }
    for (i = 0; i < 2; i++) {
        mpq__store32(&w[i].stop, 1, MPQ__RELEASE);
        MPQT_JOIN_OK(&p[i], 0);
    }
}

/* A slot whose state another process keeps rewriting (between states
   that all say "wait") used to keep a 100 ms call waiting for as long as
   the rewriting went on: the wait returned on every change before it
   looked at the deadline. */
static void test_queue_timeout_bound_under_rewrites(void)
{
    mpq_queue *q = new_queue(1, 16);
    /* A get on an empty queue: EMPTY, then a put in progress, and back. */
    scribbled(q, mpq__st(0, MPQ__EMPTY, 0), mpq__st(0, MPQ__WRITING, 0), 0);
    /* A put on a full one: last lap's message, then a get in progress. */
    mpq__store64(&mpq__q_slot(q, 0)->state, mpq__st(0, MPQ__EMPTY, 0), MPQ__SEQ_CST);
    CHECK_OK(mpq_queue_put(q, "full", 4, 0));
    scribbled(q, mpq__st(0, MPQ__FULL, 0), mpq__st(0, MPQ__READING, 0), 1);
    CHECK_OK(mpq_queue_close(q));
}

/* A give-up budget must not cut a try short: 900 cancelled puts (skipped
   slots) stand before a message, and a get with timeout 0 still finds it
   (the slots are retired on the way). */
static void test_queue_try_once_past_many_skipped(void)
{
    mpq_queue *q = new_queue(1024, 16);
    void *slot;
    char buf[16];
    size_t len;
    int i;
    for (i = 0; i < 900; i++) {
        CHECK_OK(mpq_queue_reserve(q, &slot, 0));
        CHECK_OK(mpq_queue_cancel(q, slot));
    }
    CHECK_OK(mpq_queue_put(q, "late", 4, 0));
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK(len == 4 && memcmp(buf, "late", 4) == 0);
    CHECK_OK(mpq_queue_close(q));
}

struct churn { mpq_queue *q; uint32_t stop, going; };

static int churn_put(void *arg)
{
    struct churn *c = (struct churn *)arg;
    int64_t end = mpqt_ms() + 30000;
    mpq__add32(&c->going, 1, MPQ__RELEASE);
    while (!mpq__load32(&c->stop, MPQ__ACQUIRE) && mpqt_ms() < end) {
        int rc = mpq_queue_put(c->q, "c", 1, 50);
        if (rc != 0 && rc != -ETIMEDOUT) return 1;
    }
    return 0;
}

static int churn_get(void *arg)
{
    struct churn *c = (struct churn *)arg;
    int64_t end = mpqt_ms() + 30000;
    char buf[16];
    size_t len;
    mpq__add32(&c->going, 1, MPQ__RELEASE);
    while (!mpq__load32(&c->stop, MPQ__ACQUIRE) && mpqt_ms() < end) {
        int rc = mpq_queue_get(c->q, buf, sizeof buf, &len, 50);
        if (rc != 0 && rc != -ETIMEDOUT) return 1;
    }
    return 0;
}

/* A one-slot queue that other processes keep moving (three producers,
   one consumer): for 3 s, our puts with a 20 ms timeout race them, and
   each must end within 10x that, whether it won its slot or not - less
   the time this process waited for a CPU, which is the machine's doing
   (four churners and other test programs share two cores). (Before
   the fix, calls here took up to 950 ms, whatever their timeout.) */
static void test_queue_timeout_bound_under_contention(void)
{
    struct churn *c = (struct churn *)mpqt_shared(sizeof *c);
    mpq_process p[4];
    int i, ok = 0, n = 0;
    int64_t worst = 0, end;
    c->q = new_queue(1, 16);
    for (i = 0; i < 4; i++) CHECK_OK(mpq_process_start(&p[i], i < 3 ? churn_put : churn_get, c));
    while (mpq__load32(&c->going, MPQ__ACQUIRE) < 4) mpqt_pause();
    for (end = mpqt_ms() + 3000; mpqt_ms() < end; n++) {
        int64_t t0 = mpqt_ms(), d0 = mpqt_run_delay_ms(), took;
        int rc = mpq_queue_put(c->q, "m", 1, 20);
        took = mpqt_own_ms(t0, d0);
        CHECK(rc == 0 || rc == -ETIMEDOUT);
        ok += rc == 0;
        if (took > worst) worst = took;
        if (took >= 200) mpqt_fail(__FILE__, __LINE__, "put %d (20 ms) took %lld ms", n, (long long)took);
    }
    mpq__store32(&c->stop, 1, MPQ__RELEASE);
    for (i = 0; i < 4; i++) MPQT_JOIN_OK(&p[i], 0);
    printf("    (%d of %d puts won their slot; the longest call took %lld ms)\n", ok, n, (long long)worst);
    CHECK_OK(mpq_queue_close(c->q));
}

static const mpqt_case cases[] = {
    MPQT(test_queue_basic, 10, 0),
    MPQT(test_queue_every_length, 20, 0),
    MPQT(test_queue_bad_input, 10, 0),
    MPQT(test_queue_close, 20, 0),
    MPQT(test_queue_shutdown_immediate, 30, 0),
    MPQT(test_queue_mpmc_exactly_once_fifo, 120, 0),
    MPQT(test_queue_zero_copy_and_batch_stress, 120, 0),
    MPQT(test_queue_threads, 60, 1),
    MPQT(test_queue_named_across_exec, 60, 0),
    MPQT(test_queue_dead_holders_are_taken_over, 30, 0),
    MPQT(test_queue_pid_reuse_does_not_fool_it, 20, 0),
    MPQT(test_queue_main_thread_exit_is_not_death, 30, 0),
    MPQT(test_queue_holder_that_lost_its_slot, 10, 0),
    MPQT(test_queue_dead_waker_costs_a_slice_only, 30, 0),
    MPQT(test_queue_close_behind_a_put_in_progress, 30, 0),
    MPQT(test_queue_try_once_recovers_dead_holder, 30, 0),
    MPQT(test_queue_close_with_a_peek_out, 10, 0),
    MPQT(test_queue_corrupt_length_is_refused, 10, 0),
    MPQT(test_queue_packed_batches, 10, 0),
    MPQT(test_queue_packed_dead_holder, 30, 0),
    MPQT(test_queue_packed_slot_recovered_by_put, 30, 0),
    MPQT(test_queue_layout_versions, 10, 0),
    MPQT(test_queue_kill_storm, 180, 0),
    MPQT(test_queue_arena_basic, 30, 0),
    MPQT(test_queue_arena_full, 10, 0),
    MPQT(test_queue_arena_waiter_holds_nothing, 30, 0),
    MPQT(test_queue_arena_mpmc, 180, 0),
    MPQT(test_queue_arena_kill_storm, 180, 0),
    MPQT(test_queue_arena_threads, 60, 1),
    MPQT(test_queue_arena_packed_last_taker_killed, 30, 0),
    MPQT(test_queue_arena_claim_killed, 60, 0),
    MPQT(test_queue_arena_full_batch_polled, 10, 0),
    MPQT(test_queue_stream_ends, 60, 0),
    MPQT(test_queue_stream_done_before_registered, 20, 0),
    MPQT(test_queue_stream_dead_producers, 60, 0),
    MPQT(test_queue_stream_done_but_not_shut, 20, 0),
    MPQT(test_queue_stream_registered_while_done, 60, 1),
    MPQT(test_queue_stream_bad_input, 20, 0),
    MPQT(test_queue_stream_clock_and_threads, 30, 0),
    MPQT(test_queue_stream_threads, 60, 1),
    MPQT(test_queue_stream_kill_storm, 120, 0),
    MPQT(test_queue_poll_fd, 20, 0),
    MPQT(test_queue_idle_consumer_sleeps, 20, 0),
    MPQT(test_queue_crowded_waiters_sleep, 60, 0),
    MPQT(test_queue_open_rejects_bad_segments, 60, 0),
    MPQT(test_queue_timeout_bound_under_rewrites, 60, 0),
    MPQT(test_queue_dead_holder_seen_without_descriptors, 30, 0),
    MPQT(test_queue_timeout_bound_under_contention, 60, 0),
    MPQT(test_queue_try_once_past_many_skipped, 10, 0),
    MPQT(test_queue_fork_while_threads_work, 120, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
