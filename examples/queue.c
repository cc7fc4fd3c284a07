/* queue.c - a child process puts a record on a queue, the parent gets it
   (the C twin of the Python notes' Queue example).

       from multiprocessing import Process, Queue
       def f(q):
           q.put([42, None, 'hello'])
       q = Queue()
       p = Process(target=f, args=(q,))
       p.start()
       print(q.get())    # prints "[42, None, 'hello']"
       p.join()

   Python pickles the list; in C the record is a struct of plain bytes (no
   pointers: they would mean nothing in the other process).

   Build and run from the repository root:
       make tests/build/examples/queue && tests/build/examples/queue
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

struct record {
    int32_t number;     /* 42                               */
    int32_t has_value;  /* 0: Python's None                 */
    char    text[16];   /* 'hello'                          */
};

static int f(void *arg)
{
    mpq_queue *q = (mpq_queue *)arg;   /* the parent's handle, inherited */
    struct record r = { 42, 0, "hello" };
    return mpq_queue_put(q, &r, sizeof r, -1) == 0 ? 0 : 1;
}

int main(void)
{
    mpq_queue *q;
    mpq_process p;
    struct record r;
    size_t len;
    int rc;

    if ((rc = mpq_queue_create(&q, NULL)) != 0) {        /* defaults: 64 KiB messages, 524 KiB */
        fprintf(stderr, "queue: %s\n", strerror(-rc));
        return 1;
    }
    if ((rc = mpq_process_start(&p, f, q)) != 0) {
        fprintf(stderr, "start: %s\n", strerror(-rc));
        return 1;
    }
    if ((rc = mpq_queue_get(q, &r, sizeof r, &len, -1)) != 0) {
        fprintf(stderr, "get: %s\n", strerror(-rc));
        return 1;
    }
    printf("[%d, %s, '%s']\n", r.number, r.has_value ? "?" : "None", r.text);
    mpq_process_join(&p, -1);
    mpq_queue_close(q);
    return p.exitcode != 0;
}
