/* fuzz_pool - libFuzzer target: the result records a pool's parent reads.
   Workers write them into the pool's result queue; here the input does
   too, as a worker whose memory went wrong would - records of any entry,
   generation, error, length, item and "more" - while real applies and
   maps are in flight. The parent must not crash, hang, or write a caller
   more than it asked for (ASan watches the results' buffers), and the
   pool must still run tasks afterwards.

   Input: records, each 2 bytes of payload length (what is put, whatever
   the header says; top bit set: the header's entry and generation are
   replaced by those of a task out now, picked by its entry value - a
   fuzzer would seldom guess a live pair), a 24-byte mpq__presult header,
   then the payload.
   Seeds (records a worker really sends) are made by running the target
   with MPQ_FUZZ_SEEDS=DIR.

   The task records the workers read are not fuzzed: each carries a
   function pointer, so whoever can write the task queue runs code in the
   workers by design. The pool's queues are anonymous, shared only by its
   own processes (see "Trust" in >>conventions). */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

#include <sched.h>
#include <sys/mman.h>

static mpq_pool *pool;
static uint32_t *gate;   /* shared with the workers: 0 holds their tasks back */

/* The task: waits at the gate, so that the forged records come first,
   then echoes its argument. */
static int echo(const void *arg, size_t len, void *result, size_t *result_len)
{
    while (!__atomic_load_n(gate, __ATOMIC_SEQ_CST)) sched_yield();
    if (len > *result_len) len = *result_len;
    memcpy(result, arg, len);
    *result_len = len;
    return 0;
}

/* Points the record in msg at a task that is out (if any). */
static void aim(char *msg)
{
    mpq__presult r;
    uint32_t idx, k, nlive = 0;
    memcpy(&r, msg, sizeof r);
    pthread_mutex_lock(&pool->lock);
    for (idx = 0; idx < pool->ecap; idx++) nlive += pool->e[idx].used != 0;
    if (nlive) {
        k = r.entry % nlive;
        for (idx = 0; idx < pool->ecap; idx++) {
            if (!pool->e[idx].used) continue;
            if (k-- == 0) {
                r.entry = idx;
                r.gen = pool->e[idx].gen;
                break;
            }
        }
    }
    pthread_mutex_unlock(&pool->lock);
    memcpy(msg, &r, sizeof r);
}

static void seed(const char *dir, int i, const void *hdr, const void *payload, uint16_t n)
{
    char path[4200];
    FILE *f;
    snprintf(path, sizeof path, "%s/seed-%d", dir, i);
    if ((f = fopen(path, "wb")) == NULL) return;
    n |= (uint16_t)(i ? 0x8000 : 0);   /* the others aimed at a task out */
    fwrite(&n, 1, 2, f);
    n &= 0x7fff;
    fwrite(hdr, 1, sizeof(mpq__presult), f);
    fwrite(payload, 1, n, f);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("MPQ_FUZZ_SEEDS");
    mpq_pool_config cfg;
    (void)argc; (void)argv;
    if (dir) {   /* an apply's result, a map chunk's, an error's message */
        mpq__presult r;
        char pay[32];
        memset(&r, 0, sizeof r);
        memset(pay, 0, sizeof pay);
        r.gen = 1; r.len = 3; memcpy(pay, "abc", 3);
        seed(dir, 0, &r, pay, (uint16_t)MPQ__POOL_PAD(3));   /* not aimed */
        r.entry = 1; r.len = 16;
        seed(dir, 1, &r, pay, (uint16_t)MPQ__POOL_PAD(16));
        r.error = -5; r.item = 1; r.len = 5; memcpy(pay, "boom", 5);
        seed(dir, 2, &r, pay, (uint16_t)MPQ__POOL_PAD(5));
        _exit(0);
    }
    gate = (uint32_t *)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (gate == MAP_FAILED) abort();
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 1;
    cfg.max_arg = 256;
    cfg.max_result = 256;
    if (mpq_pool_create(&pool, &cfg) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char msg[sizeof(mpq__presult) + 65536];
    char items[4][8], results[4][8], small[8], out[300];
    mpq_future *fa = NULL, *fm = NULL;
    size_t off = 0, len = 0;
    int i;
    if (size > 100000) return 0;
    memset(items, 'i', sizeof items);
    __atomic_store_n(gate, 0, __ATOMIC_SEQ_CST);
    if (mpq_pool_submit(pool, echo, "abc", 3, &fa) != 0) abort();
    if (mpq_pool_map_async(pool, echo, items, 4, 8, results, 8, 1, NULL, NULL, NULL, &fm) != 0) abort();
    while (off + 2 + sizeof(mpq__presult) <= size) {
        uint16_t n;
        int live;
        memcpy(&n, data + off, 2);
        off += 2;
        live = n >> 15;
        n &= 0x7fff;
        if (n > size - off - sizeof(mpq__presult)) n = (uint16_t)(size - off - sizeof(mpq__presult));
        memcpy(msg, data + off, sizeof(mpq__presult) + n);
        off += sizeof(mpq__presult) + n;
        if (live) aim(msg);
        if (mpq_queue_put(pool->results, msg, sizeof(mpq__presult) + n, 1000) != 0) break;
    }
    __atomic_store_n(gate, 1, __ATOMIC_SEQ_CST);
    /* Real results come too: the two jobs end, however the records above
       resolved them (a result that matched them first wins). */
    /* A small buffer: a forged result longer than it must not land there. */
    if ((i = mpq_future_get(fa, small, sizeof small, &len, 10000)) == -ETIMEDOUT) abort();
    if (i == 0 && len > sizeof small) abort();
    if (mpq_future_wait(fm, 10000) == -ETIMEDOUT) abort();
    mpq_future_free(fa);
    mpq_future_free(fm);
    /* And the pool still runs tasks (what they return may come from a
       forged record still queued that names them: no check of it). */
    for (i = 0; i < 2; i++)
        if (mpq_pool_apply(pool, echo, "xyz", 3, out, sizeof out, &len) == 0 && len > sizeof out) abort();
    if (mpq_pool_wait(pool, 10000) == -ETIMEDOUT) abort();
    return 0;
}
