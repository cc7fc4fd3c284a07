/* sync_peer - a separately exec'd program that uses named mpq
   synchronisation objects.

   usage: sync_peer event NAME        wait for the event; exit 0 once set
          sync_peer sem NAME          take a permit and exit holding it
          sync_peer barrier NAME      wait at the barrier; exit 10 + index
          sync_peer cond NAME MUTEX   wait on the condition under the
                                      named mutex; exit 0 once notified
   Any failure exits 1 with a message on stderr. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

#include <stdio.h>
#include <string.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "sync_peer: %s: %s\n", what, strerror(-rc));
    return 1;
}

int main(int argc, char **argv)
{
    int rc;
    if (argc < 3) return fail("usage", -EINVAL);
    if (strcmp(argv[1], "event") == 0) {
        mpq_event *e;
        if ((rc = mpq_event_open(&e, argv[2])) != 0) return fail("event_open", rc);
        if ((rc = mpq_event_wait(e, 20000)) != 0) return fail("event_wait", rc);
        return mpq_event_close(e) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "sem") == 0) {
        mpq_sem *s;
        if ((rc = mpq_sem_open(&s, argv[2])) != 0) return fail("sem_open", rc);
        if ((rc = mpq_sem_acquire(s, 20000)) != 0) return fail("sem_acquire", rc);
        _exit(0);   /* exits holding it (and its handle) */
    }
    if (strcmp(argv[1], "barrier") == 0) {
        mpq_barrier *b;
        if ((rc = mpq_barrier_open(&b, argv[2])) != 0) return fail("barrier_open", rc);
        if ((rc = mpq_barrier_wait(b, 20000)) < 0) return fail("barrier_wait", rc);
        mpq_barrier_close(b);
        return 10 + rc;
    }
    if (strcmp(argv[1], "cond") == 0 && argc == 4) {
        mpq_cond *c;
        mpq_mutex *m;
        if ((rc = mpq_cond_open(&c, argv[2])) != 0) return fail("cond_open", rc);
        if ((rc = mpq_mutex_open(&m, argv[3])) != 0) return fail("mutex_open", rc);
        if ((rc = mpq_mutex_lock(m)) != 0) return fail("lock", rc);
        if ((rc = mpq_cond_wait(c, m, 20000)) != 0) return fail("cond_wait", rc);
        if ((rc = mpq_mutex_unlock(m)) != 0) return fail("unlock", rc);
        mpq_mutex_close(m);
        return mpq_cond_close(c) == 0 ? 0 : 1;
    }
    return fail("usage", -EINVAL);
}
