/* wait.c - one loop serves a queue, a connection and the end of a worker.

       from multiprocessing import Process, Queue, Pipe
       from multiprocessing.connection import wait
       def worker(q, conn):
           for i in range(3): q.put('job %d' % i)
           conn.send('status: busy')
           q.put('job 3')
       q = Queue(); a, b = Pipe()
       p = Process(target=worker, args=(q, b)); p.start()
       while p.is_alive() or not q.empty() or a.poll():
           for r in wait([q._reader, a, p.sentinel]):
               if r is q._reader: print('queue:', q.get())
               elif r is a: print('conn:', a.recv())
       p.join()

   Python reaches into q._reader; mpq_wait takes the queue itself (an
   anonymous one or one opened by name), and never takes a message.

   Build and run from the repository root:
       cc -O2 -o wait examples/wait.c -pthread && ./wait
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

/* The worker: arg is { queue, its end of the pipe }. */
static int worker(void *arg)
{
    mpq_queue *q = (mpq_queue *)((void **)arg)[0];
    mpq_conn *conn = (mpq_conn *)((void **)arg)[1];
    char msg[16];
    int i;
    for (i = 0; i < 3; i++) {
        snprintf(msg, sizeof msg, "job %d", i);
        if (mpq_queue_put(q, msg, 5, -1) != 0) return 1;
    }
    if (mpq_conn_send(conn, "status: busy", 12) != 0) return 1;
    return mpq_queue_put(q, "job 3", 5, -1) != 0;
}

int main(void)
{
    mpq_queue *q;
    mpq_conn *a, *b;
    mpq_process p;
    void *args[2];
    char buf[64];
    size_t len;
    int done = 0, rc;
    if (mpq_queue_create(&q, NULL) != 0 || mpq_pipe(&a, &b, 1) != 0) return 1;
    args[0] = q;
    args[1] = b;
    if (mpq_process_start(&p, worker, args) != 0) return 1;
    {
        mpq_waitable w[3] = { MPQ_WAIT_QUEUE(q), MPQ_WAIT_CONN(a), MPQ_WAIT_PROCESS(&p) };
        while (!done) {
            if ((rc = mpq_wait(w, 3, 10000)) <= 0) {
                fprintf(stderr, "wait: %s\n", rc ? mpq_strerror(rc) : "timed out");
                return 1;
            }
            if (w[0].ready && mpq_queue_get(q, buf, sizeof buf, &len, 0) == 0)
                printf("queue: %.*s\n", (int)len, buf);
            if (w[1].ready && mpq_conn_recv(a, buf, sizeof buf, &len, 0) == 0)
                printf("conn: %.*s\n", (int)len, buf);
            /* The worker has ended: serve what it left, then stop. */
            done = w[2].ready && !w[0].ready && !w[1].ready;
        }
    }
    mpq_process_join(&p, -1);
    printf("worker exited with %d\n", p.exitcode);
    mpq_conn_close(a);
    mpq_conn_close(b);
    mpq_queue_close(q);
    return p.exitcode;
}
