/* lock.c - processes take turns at the screen under a shared lock (the C
   twin of the Python notes' Lock example).

       from multiprocessing import Process, Lock
       def f(l, i):
           l.acquire()
           print('hello world', i)
           l.release()
       lock = Lock()
       for num in range(5): Process(target=f, args=(lock, num)).start()

   Build and run from the repository root:
       make tests/build/examples/lock && tests/build/examples/lock
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

struct job { mpq_mutex *lock; int i; };

static int f(void *arg)
{
    struct job *j = (struct job *)arg;
    int rc = mpq_mutex_lock(j->lock);
    if (rc != 0 && rc != -EOWNERDEAD) return 1;   /* EOWNERDEAD: held anyway */
    printf("hello world %d\n", j->i);
    fflush(stdout);                               /* print while holding it */
    mpq_mutex_unlock(j->lock);
    return 0;
}

int main(void)
{
    enum { N = 5 };
    mpq_mutex *lock;
    mpq_process p[N];
    struct job jobs[N];
    int i, rc;

    /* An anonymous lock in shared memory: every child forked after this
       shares it, like the Lock() handed to Python's Process. */
    if ((rc = mpq_mutex_create(&lock, NULL)) != 0) {
        fprintf(stderr, "mutex: %s\n", strerror(-rc));
        return 1;
    }
    for (i = 0; i < N; i++) {
        jobs[i].lock = lock;
        jobs[i].i = i;
        if ((rc = mpq_process_start(&p[i], f, &jobs[i])) != 0) {
            fprintf(stderr, "start: %s\n", strerror(-rc));
            return 1;
        }
    }
    for (i = 0; i < N; i++) {
        mpq_process_join(&p[i], -1);
        rc |= p[i].exitcode;
    }
    mpq_mutex_close(lock);
    return rc != 0;
}
