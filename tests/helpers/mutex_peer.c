/* mutex_peer - a separately exec'd program that uses a named mpq mutex.

   usage: mutex_peer NAME probe      exit 10 if the lock is held (-EBUSY),
                                     11 if it was free (then unlocks it)
          mutex_peer NAME die        lock it and exit without unlocking
          mutex_peer NAME add REGION N
                                     N times: lock, add 1 to the counter at
                                     the start of the named mpq_shm REGION,
                                     unlock
   Any failure exits 1 with a message on stderr. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "mutex_peer: %s: %s\n", what, strerror(-rc));
    return 1;
}

int main(int argc, char **argv)
{
    mpq_mutex *m;
    int rc;
    if (argc < 3) return fail("usage", -EINVAL);
    if ((rc = mpq_mutex_open(&m, argv[1])) != 0) return fail("open", rc);
    if (strcmp(argv[2], "probe") == 0) {
        rc = mpq_mutex_trylock(m);
        if (rc == -EBUSY) return 10;
        if (rc != 0) return fail("trylock", rc);
        mpq_mutex_unlock(m);
        return 11;
    }
    if (strcmp(argv[2], "die") == 0) {
        if ((rc = mpq_mutex_lock(m)) != 0) return fail("lock", rc);
        _exit(0);
    }
    if (strcmp(argv[2], "add") == 0 && argc == 5) {
        mpq_shm shm;
        long i, n = atol(argv[4]);
        if ((rc = mpq_shm_open(&shm, argv[3])) != 0) return fail("shm_open", rc);
        for (i = 0; i < n; i++) {
            volatile long *counter = (volatile long *)shm.addr;
            if ((rc = mpq_mutex_lock(m)) != 0) return fail("lock", rc);
            *counter = *counter + 1;
            if ((rc = mpq_mutex_unlock(m)) != 0) return fail("unlock", rc);
        }
        mpq_shm_close(&shm);
        mpq_mutex_close(m);
        return 0;
    }
    return fail("usage", -EINVAL);
}
