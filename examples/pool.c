/* pool.c - ten tasks on a pool of three worker processes, a callback in
   the parent for each result (the C twin of the Python notes' Pool example).

       from multiprocessing import Pool
       import time, os
       def foo(i):
           time.sleep(2)
           print("in the process", os.getpid())
           return i + 100
       def call(arg):
           print('-->exec done:', arg, os.getpid())
       if __name__ == '__main__':
           pool = Pool(3)
           print("main process pid:", os.getpid())
           for i in range(10):
               pool.apply_async(func=foo, args=(i,), callback=call)
           print('end')
           pool.close()
           pool.join()

   The argument and the result travel as bytes (here one int each); the
   callback runs in the parent, on the pool's result thread, as in Python.
   Unlike Python's, this pool also survives a worker that dies: try
   `kill -9` on one of the "in the process" pids while it runs.

   Build and run from the repository root:
       make tests/build/examples/pool && tests/build/examples/pool
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>
#include <time.h>

static int foo(const void *arg, size_t len, void *result, size_t *result_len)
{
    struct timespec pause = { 0, 200 * 1000000 };   /* 0.2 s, not 2: a demo */
    int i;
    (void)len;
    memcpy(&i, arg, sizeof i);
    nanosleep(&pause, NULL);
    printf("in the process %d\n", (int)getpid());
    fflush(stdout);
    i += 100;
    memcpy(result, &i, sizeof i);
    *result_len = sizeof i;
    return 0;
}

static void call(void *user, const mpq_pool_result *r_)
{
    const void *result = r_->data;
    size_t len = r_->len;
    int v;
    (void)user;
    (void)len;
    memcpy(&v, result, sizeof v);
    printf("-->exec done: %d %d\n", v, (int)getpid());
}

static void failed(void *user, const mpq_pool_result *r_)
{
    int error = r_->error;
    (void)user;
    if (MPQ_POOL_DIED(error))
        printf("-->a worker died running a task (signal %d)\n", MPQ_POOL_SIGNAL(error));
    else
        printf("-->task failed: %d\n", error);
}

int main(void)
{
    mpq_pool *pool;
    int i, rc;

    rc = mpq_pool_create(&pool, &(mpq_pool_config){ .workers = 3 });
    if (rc != 0) {
        fprintf(stderr, "pool: %s\n", strerror(-rc));
        return 1;
    }
    printf("main process pid: %d\n", (int)getpid());
    fflush(stdout);
    for (i = 0; i < 10; i++)
        mpq_pool_apply_async(pool, foo, &i, sizeof i, call, failed, NULL, NULL);
    printf("end\n");
    fflush(stdout);
    mpq_pool_close(pool);
    mpq_pool_join(pool, -1);
    mpq_pool_destroy(pool);
    return 0;
}
