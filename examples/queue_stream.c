/* queue_stream.c - three producers, two consumers, and no sentinels: the
   queue ends its stream itself once every producer is done.

   In Python, producers usually put one None per consumer at the end, and
   a consumer stops at the first None it gets:

       def producer(q, n):
           for i in range(n):
               q.put(i)
       def consumer(q, results):
           total = 0
           while (item := q.get()) is not None:
               total += item
           results.put(total)
       ...
       for p in producers: p.join()
       for c in consumers: q.put(None)

   which hangs the consumers if a producer dies, and needs the parent to
   know how many consumers there are. Here the queue counts its producers
   (.producers = 3): each says mpq_queue_producer_done when it has put its
   last number, and the third one shuts the queue down, so the consumers'
   gets return what is left and then -EPIPE. The parent registers each
   producer's pid (mpq_queue_add_producer), so a producer that dies counts
   as done too, and nobody waits for ever.

   Prints "sum 1 + 2 + ... + 3000 = 4501500".

   Build and run from the repository root:
       cc -O2 -o tests/build/queue_stream examples/queue_stream.c -pthread
       tests/build/queue_stream
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

#define PRODUCERS 3
#define CONSUMERS 2
#define EACH 1000

struct job { mpq_queue *q, *results; int first; };

static int producer(void *arg)
{
    struct job *j = (struct job *)arg;
    int i;
    for (i = j->first; i < j->first + EACH; i++)
        if (mpq_queue_put(j->q, &i, sizeof i, -1) != 0) return 1;
    return mpq_queue_producer_done(j->q) == 0 ? 0 : 1;
}

static int consumer(void *arg)
{
    struct job *j = (struct job *)arg;
    long long total = 0;
    size_t len;
    int item, rc;
    while ((rc = mpq_queue_get(j->q, &item, sizeof item, &len, -1)) == 0) total += item;
    if (rc != -EPIPE) return 1;   /* anything but the end of the stream */
    return mpq_queue_put(j->results, &total, sizeof total, -1) == 0 ? 0 : 1;
}

int main(void)
{
    mpq_queue_config qc = { .capacity = 64, .max_msg = sizeof(int), .producers = PRODUCERS };
    mpq_queue *q, *results;
    mpq_process p[PRODUCERS], c[CONSUMERS];
    struct job j[PRODUCERS];
    long long sum = 0, part;
    size_t len;
    int i, rc, failed = 0;

    if ((rc = mpq_queue_create(&q, &qc)) != 0 || (rc = mpq_queue_create(&results, NULL)) != 0) {
        fprintf(stderr, "queue: %s\n", strerror(-rc));
        return 1;
    }
    for (i = 0; i < CONSUMERS; i++) {
        j[0].q = q;
        j[0].results = results;
        if ((rc = mpq_process_start(&c[i], consumer, &j[0])) != 0) {
            fprintf(stderr, "start: %s\n", strerror(-rc));
            return 1;
        }
    }
    for (i = 0; i < PRODUCERS; i++) {
        j[i].q = q;
        j[i].results = results;
        j[i].first = 1 + i * EACH;
        if ((rc = mpq_process_start(&p[i], producer, &j[i])) != 0 ||
            (rc = mpq_queue_add_producer(q, p[i].pid)) != 0) {   /* before it is joined */
            fprintf(stderr, "producer: %s\n", strerror(-rc));
            return 1;
        }
    }
    for (i = 0; i < CONSUMERS; i++) {
        if ((rc = mpq_queue_get(results, &part, sizeof part, &len, -1)) != 0) {
            fprintf(stderr, "result: %s\n", strerror(-rc));
            return 1;
        }
        sum += part;
    }
    for (i = 0; i < PRODUCERS; i++) failed |= mpq_process_join(&p[i], -1) != 0 || p[i].exitcode != 0;
    for (i = 0; i < CONSUMERS; i++) failed |= mpq_process_join(&c[i], -1) != 0 || c[i].exitcode != 0;
    printf("sum 1 + 2 + ... + %d = %lld\n", PRODUCERS * EACH, sum);
    mpq_queue_close(results);
    mpq_queue_close(q);
    return failed || sum != (long long)PRODUCERS * EACH * (PRODUCERS * EACH + 1) / 2;
}
