/* queue_peer - a separately exec'd program that uses a named mpq queue.

   usage: queue_peer NAME produce N   put "msg 0" .. "msg N-1", then exit 0
          queue_peer NAME consume N   get N messages, exit 0 if they are
                                      "msg 0" .. "msg N-1" in order
   Any failure exits 1 with a message on stderr. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "queue_peer: %s: %s\n", what, strerror(-rc));
    return 1;
}

int main(int argc, char **argv)
{
    mpq_queue *q;
    char msg[64], buf[64];
    long i, n;
    int rc;
    if (argc != 4) return fail("usage", -EINVAL);
    n = atol(argv[3]);
    if ((rc = mpq_queue_open(&q, argv[1])) != 0) return fail("open", rc);
    for (i = 0; i < n; i++) {
        size_t len;
        snprintf(msg, sizeof msg, "msg %ld", i);
        if (strcmp(argv[2], "produce") == 0) {
            if ((rc = mpq_queue_put(q, msg, strlen(msg), 20000)) != 0) return fail("put", rc);
        } else if (strcmp(argv[2], "consume") == 0) {
            if ((rc = mpq_queue_get(q, buf, sizeof buf - 1, &len, 20000)) != 0) return fail("get", rc);
            buf[len] = 0;
            if (strcmp(buf, msg) != 0) {
                fprintf(stderr, "queue_peer: got '%s', expected '%s'\n", buf, msg);
                return 1;
            }
        } else {
            return fail("usage", -EINVAL);
        }
    }
    mpq_queue_close(q);
    return 0;
}
