/* joinable_queue.c - a producer, consumers, and join() waits until every
   job is done.

       from multiprocessing import Process, JoinableQueue
       def consumer(q):
           while True:
               n = q.get()
               print(n, '*', n, '=', n * n)
               q.task_done()
       q = JoinableQueue()
       for i in range(2):
           Process(target=consumer, args=(q,), daemon=True).start()
       for n in range(10):
           q.put(n)
       q.join()                  # every put has had its task_done
       print('all done')

   Build and run from the repository root:
       make tests/build/examples/joinable_queue && tests/build/examples/joinable_queue
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <signal.h>
#include <stdio.h>

static int consumer(void *arg)
{
    mpq_queue *q = (mpq_queue *)arg;
    int n;
    size_t len;
    while (mpq_queue_get(q, &n, sizeof n, &len, -1) == 0) {
        printf("%d * %d = %d\n", n, n, n * n);
        fflush(stdout);
        mpq_queue_task_done(q);   /* after the work, not before */
    }
    return 0;
}

int main(void)
{
    enum { CONSUMERS = 2, JOBS = 10 };
    mpq_queue *q;
    mpq_process p[CONSUMERS];
    int i, rc;

    rc = mpq_queue_create(&q, &(mpq_queue_config){ .max_msg = sizeof(int), .joinable = 1 });
    if (rc != 0) {
        fprintf(stderr, "queue: %s\n", strerror(-rc));
        return 1;
    }
    for (i = 0; i < CONSUMERS; i++)
        if ((rc = mpq_process_start(&p[i], consumer, q)) != 0) {
            fprintf(stderr, "start: %s\n", strerror(-rc));
            return 1;
        }
    for (i = 0; i < JOBS; i++) mpq_queue_put(q, &i, sizeof i, -1);
    /* A bound, so that a consumer that died holding a job cannot make us
       wait for ever (mpq_queue_unfinished says how many are missing). */
    if ((rc = mpq_queue_join(q, 10000)) != 0) {
        fprintf(stderr, "join: %s, %ld unfinished\n", strerror(-rc), mpq_queue_unfinished(q));
        return 1;
    }
    printf("all done\n");
    /* Python's daemon consumers die with the program; here we stop them. */
    for (i = 0; i < CONSUMERS; i++) {
        mpq_process_kill(&p[i], SIGTERM);
        mpq_process_join(&p[i], -1);
    }
    mpq_queue_close(q);
    return 0;
}
