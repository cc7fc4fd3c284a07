/* pool_imap.c - Pool.imap over an input too large to hold, with a progress
   bar on stderr.

   Python:

       def collatz(n):                 # steps until n reaches 1
           steps = 0
           while n != 1:
               n = n // 2 if n % 2 == 0 else 3 * n + 1
               steps += 1
           return steps

       with Pool() as pool:
           best = (0, 0)
           for i, steps in enumerate(pool.imap(collatz, range(1, N + 1), chunksize=1000)):
               best = max(best, (steps, i + 1))
           print(best)

   C: the items are made on demand by a source function, so memory stays
   bounded however large N is; results come back in input order while
   later items still run. mpq_imap_progress is cheap enough to poll for
   every result.

       make tests/build/examples/pool_imap
       tests/build/examples/pool_imap 5000000
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int collatz(const void *arg, size_t len, void *result, size_t *result_len)
{
    uint64_t n;
    uint32_t steps = 0;
    if (len != sizeof n) return mpq_pool_fail(-EINVAL, "expected %zu bytes, got %zu", sizeof n, len);
    memcpy(&n, arg, sizeof n);
    while (n != 1) {
        n = n % 2 == 0 ? n / 2 : 3 * n + 1;
        steps++;
    }
    memcpy(result, &steps, sizeof steps);
    *result_len = sizeof steps;
    return 0;
}

/* The input: 1, 2, ..., N, one at a time, as the pool asks for them. */
static int numbers(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    uint64_t n = (uint64_t)index + 1, last = *(const uint64_t *)user;
    (void)cap;
    if (n > last) return 0;   /* the end of the input */
    memcpy(item, &n, sizeof n);
    *len = sizeof n;
    return 1;
}

static void bar(size_t done, size_t total)
{
    int k, w = 40, fill = total ? (int)((double)done / (double)total * w) : 0;
    fputs("\r[", stderr);
    for (k = 0; k < w; k++) fputc(k < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %zu / %zu", done, total);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    mpq_pool *pool;
    mpq_imap *it;
    mpq_pool_result r;
    uint32_t best = 0;
    size_t best_at = 0, shown = 0;
    int rc;

    if ((rc = mpq_pool_create(&pool, NULL)) != 0) {
        fprintf(stderr, "pool: %s\n", mpq_strerror(rc));
        return 1;
    }
    rc = mpq_pool_imap(pool, collatz, &(mpq_imap_config){ .source = numbers, .source_user = &n, .chunksize = 1000 },
                       &it);
    if (rc != 0) {
        fprintf(stderr, "imap: %s\n", mpq_strerror(rc));
        return 1;
    }
    while ((rc = mpq_imap_next(it, &r, -1)) == 1) {
        uint32_t steps;
        if (r.error) {   /* one item failed: say why, go on */
            fprintf(stderr, "\nitem %zu: %s %s\n", r.index, mpq_strerror(r.error), (const char *)r.data);
            continue;
        }
        memcpy(&steps, r.data, sizeof steps);
        if (steps > best) {
            best = steps;
            best_at = r.index + 1;
        }
        if (r.index - shown >= n / 200 + 1) {   /* redraw now and then */
            size_t done, total;
            mpq_imap_progress(it, &done, &total);
            bar(done, (size_t)n);
            shown = r.index;
        }
    }
    bar((size_t)n, (size_t)n);
    fputc('\n', stderr);
    printf("longest: %u steps, from %zu\n", best, best_at);
    mpq_imap_free(it);
    mpq_pool_close(pool);
    mpq_pool_join(pool, -1);
    mpq_pool_destroy(pool);
    return rc < 0;
}
