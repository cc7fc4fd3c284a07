/* pool_map.c - Pool.map: a function over a million numbers, in chunks, on
   every CPU.

       from multiprocessing import Pool
       def f(x):
           return x * x
       if __name__ == '__main__':
           with Pool() as p:
               squares = p.map(f, range(1000000))
           print(sum(squares))

   mpq_pool_map sends the items in chunks (one task each), writes each
   result into its place in the results array, and returns once all are
   there - or the first error, should a task fail or its worker die.

   Build and run from the repository root:
       make tests/build/examples/pool_map && tests/build/examples/pool_map
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

#define N 1000000

static int f(const void *arg, size_t len, void *result, size_t *result_len)
{
    int64_t x;
    (void)len;
    memcpy(&x, arg, sizeof x);
    x *= x;
    memcpy(result, &x, sizeof x);
    *result_len = sizeof x;
    return 0;
}

int main(void)
{
    static int64_t numbers[N], squares[N];
    int64_t sum = 0;
    mpq_pool *pool;
    int i, rc;

    for (i = 0; i < N; i++) numbers[i] = i;
    if ((rc = mpq_pool_create(&pool, NULL)) != 0) {   /* NULL: all defaults */
        fprintf(stderr, "pool: %s\n", strerror(-rc));
        return 1;
    }
    rc = mpq_pool_map(pool, f, numbers, N, sizeof numbers[0], squares, sizeof squares[0], 0);
    mpq_pool_destroy(pool);
    if (rc != 0) {
        fprintf(stderr, "map: %d\n", rc);
        return 1;
    }
    for (i = 0; i < N; i++) sum += squares[i];
    printf("%lld\n", (long long)sum);   /* 333332833333500000 */
    return 0;
}
