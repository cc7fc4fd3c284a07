/* barrier.c - N processes run phases in lock step.

       from multiprocessing import Process, Barrier
       def worker(b, i):
           for phase in range(3):
               print('worker', i, 'in phase', phase)
               if b.wait() == 0:              # one of them, once a phase
                   print('--- phase', phase, 'done')
       b = Barrier(4)
       ps = [Process(target=worker, args=(b, i)) for i in range(4)]
       for p in ps: p.start()
       for p in ps: p.join()

   If a worker dies, the others get -EPIPE (Python's BrokenBarrierError)
   instead of waiting for ever.

   Build and run from the repository root:
       make tests/build/examples/barrier && tests/build/examples/barrier
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

enum { N = 4, PHASES = 3 };
struct job { mpq_barrier *b; int i; };

static int worker(void *arg)
{
    struct job *j = (struct job *)arg;
    int phase, idx;
    for (phase = 0; phase < PHASES; phase++) {
        printf("worker %d in phase %d\n", j->i, phase);
        fflush(stdout);
        idx = mpq_barrier_wait(j->b, 10000);
        if (idx < 0) {
            fprintf(stderr, "worker %d: %s\n", j->i, strerror(-idx));
            return 1;
        }
        if (idx == 0) {
            printf("--- phase %d done\n", phase);
            fflush(stdout);
        }
        /* A second wait, so that no one starts printing the next phase
           before the line above. */
        if (mpq_barrier_wait(j->b, 10000) < 0) return 1;
    }
    return 0;
}

int main(void)
{
    mpq_barrier *b;
    mpq_process p[N];
    struct job jobs[N];
    int i, rc;

    if ((rc = mpq_barrier_create(&b, N, NULL)) != 0) {
        fprintf(stderr, "barrier: %s\n", strerror(-rc));
        return 1;
    }
    for (i = 0; i < N; i++) {
        jobs[i].b = b;
        jobs[i].i = i;
        if ((rc = mpq_process_start(&p[i], worker, &jobs[i])) != 0) {
            fprintf(stderr, "start: %s\n", strerror(-rc));
            return 1;
        }
    }
    for (i = 0; i < N; i++) {
        mpq_process_join(&p[i], -1);
        rc |= p[i].exitcode;
    }
    mpq_barrier_close(b);
    return rc != 0;
}
