/* event.c - workers run until the parent sets a stop Event.

       from multiprocessing import Process, Event
       def worker(stop, i):
           n = 0
           while not stop.is_set():
               n += 1              # a unit of work
           print('worker', i, 'stopped')
       stop = Event()
       ps = [Process(target=worker, args=(stop, i)) for i in range(3)]
       for p in ps: p.start()
       stop.wait(0.2)              # let them work a little
       stop.set()
       for p in ps: p.join()

   Build and run from the repository root:
       make tests/build/examples/event && tests/build/examples/event
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

struct job { mpq_event *stop; int i; };

static int worker(void *arg)
{
    struct job *j = (struct job *)arg;
    unsigned long n = 0;
    /* Work in slices, looking at the flag between them; a worker with
       nothing to do would block in mpq_event_wait(stop, -1) instead. */
    while (mpq_event_wait(j->stop, 0) == -EAGAIN) n++;
    printf("worker %d stopped after %lu slices\n", j->i, n);
    return 0;
}

int main(void)
{
    enum { N = 3 };
    mpq_event *stop;
    mpq_process p[N];
    struct job jobs[N];
    int i, rc;

    if ((rc = mpq_event_create(&stop, NULL)) != 0) {   /* anonymous: shared with children */
        fprintf(stderr, "event: %s\n", strerror(-rc));
        return 1;
    }
    for (i = 0; i < N; i++) {
        jobs[i].stop = stop;
        jobs[i].i = i;
        if ((rc = mpq_process_start(&p[i], worker, &jobs[i])) != 0) {
            fprintf(stderr, "start: %s\n", strerror(-rc));
            return 1;
        }
    }
    mpq_event_wait(stop, 200);   /* nobody sets it: a 200 ms pause */
    mpq_event_set(stop);         /* every worker sees it */
    for (i = 0; i < N; i++) {
        mpq_process_join(&p[i], -1);
        rc |= p[i].exitcode;
    }
    mpq_event_close(stop);
    return rc != 0;
}
