/* processes.c - start several processes at once, each of which starts a
   thread of its own (the C twin of the Python notes' Process example).

       from multiprocessing import Process
       import threading
       def thread_run(): print(threading.get_ident())
       def run(name):
           print("hello", name)
           threading.Thread(target=thread_run).start()
       for i in range(10): Process(target=run, args=('bob %s' % i,)).start()

   Build and run from the repository root:
       make tests/build/examples/processes && tests/build/examples/processes
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Runs in a thread of the child: prints the ids that tell it apart. */
static void *thread_run(void *arg)
{
    (void)arg;
    printf("  thread %ld in process %ld\n", (long)syscall(SYS_gettid), (long)getpid());
    return NULL;
}

/* Runs in each child process; its return value is the exit status. */
static int run(void *arg)
{
    const char *name = (const char *)arg;
    pthread_t t;
    printf("hello %s (process %ld)\n", name, (long)getpid());
    if (pthread_create(&t, NULL, thread_run, NULL) != 0) return 1;
    pthread_join(t, NULL);
    return 0;
}

int main(void)
{
    enum { N = 10 };
    mpq_process p[N];
    char names[N][16];
    int i, rc, failed = 0;

    for (i = 0; i < N; i++) {          /* start them all at once ... */
        snprintf(names[i], sizeof names[i], "bob %d", i);
        if ((rc = mpq_process_start(&p[i], run, names[i])) != 0) {
            fprintf(stderr, "start: %s\n", strerror(-rc));
            return 1;
        }
    }
    for (i = 0; i < N; i++) {          /* ... then wait for each */
        if ((rc = mpq_process_join(&p[i], -1)) != 0) {
            fprintf(stderr, "join: %s\n", strerror(-rc));
            return 1;
        }
        failed += p[i].exitcode != 0;
    }
    printf("all %d processes done, %d failed\n", N, failed);
    return failed != 0;
}
