/* value.c - ten processes add to a shared counter under its lock (the
   Value and get_lock() of Python tutorials).

       from multiprocessing import Process, Value
       def f(counter):
           for _ in range(1000):
               with counter.get_lock():
                   counter.value += 1
       counter = Value('i', 0)
       ps = [Process(target=f, args=(counter,)) for _ in range(10)]
       for p in ps: p.start()
       for p in ps: p.join()
       print(counter.value)    # 10000

   In C a Value (or an Array) is a struct in shared memory with an
   mpq_mutex in front: no helper needed. For a lone counter an atomic add
   needs no lock at all (__atomic_fetch_add here, or mpq_dict_add).

   Build and run from the repository root:
       make tests/build/examples/value && tests/build/examples/value
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

struct value {
    mpq_mutex lock;     /* counter.get_lock()                       */
    int       value;    /* Value('i', 0): zero-filled on creation   */
    int       atomic;   /* the same count, kept without the lock    */
};

static int f(void *arg)
{
    struct value *counter = (struct value *)arg;
    int i, rc;
    for (i = 0; i < 1000; i++) {
        rc = mpq_mutex_lock(&counter->lock);
        if (rc != 0 && rc != -EOWNERDEAD) return 1;   /* EOWNERDEAD: held; a holder died */
        counter->value += 1;
        mpq_mutex_unlock(&counter->lock);
        __atomic_fetch_add(&counter->atomic, 1, __ATOMIC_RELAXED);
    }
    return 0;
}

int main(void)
{
    mpq_shm shm;
    struct value *counter;
    mpq_process ps[10];
    int i, rc;

    if ((rc = mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *counter })) != 0) {
        fprintf(stderr, "shm: %s\n", strerror(-rc));
        return 1;
    }
    counter = (struct value *)shm.addr;
    mpq_mutex_init(&counter->lock);
    for (i = 0; i < 10; i++) mpq_process_start(&ps[i], f, counter);
    for (i = 0; i < 10; i++) {
        mpq_process_join(&ps[i], -1);
        rc |= ps[i].exitcode;
    }
    printf("%d\n", counter->value);                 /* 10000 */
    printf("%d (atomic, no lock)\n", counter->atomic);
    rc = rc != 0 || counter->value != 10000;
    mpq_shm_close(&shm);                            /* counter is gone after this */
    return rc;
}
