/* Tests of mpq_mutex: exclusion across processes and threads, robust
   recovery from dead owners, timeouts, ownership, named mutexes shared with
   an exec'd program, and a kill storm. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

#include <sched.h>

/* --- helpers ------------------------------------------------------------ */

/* Waits (bounded) until *flag becomes non-zero; another process sets it. */
static void wait_flag(uint32_t *flag, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    while (mpq__load32(flag, MPQ__ACQUIRE) == 0)
        if (mpq__futex_wait(flag, 0, deadline) == -ETIMEDOUT) mpqt_fail(__FILE__, __LINE__, "flag never set");
}

static void set_flag(uint32_t *flag)
{
    mpq__store32(flag, 1, MPQ__RELEASE);
    mpq__futex_wake(flag, INT_MAX);
}

/* Runs tests/helpers/mutex_peer with the given arguments as a new program. */
static void start_peer(mpq_process *p, const char *a1, const char *a2, const char *a3, const char *a4)
{
    CHECK_OK(mpqt_start_helper(p, "mutex_peer", a1, a2, a3, a4));
}

static int run_peer(const char *a1, const char *a2)
{
    mpq_process p;
    start_peer(&p, a1, a2, NULL, NULL);
    CHECK_OK(mpq_process_join(&p, 20000));
    return p.exitcode;
}

/* --- single process ------------------------------------------------------ */

static void test_mutex_basic(void)
{
    mpq_mutex *m, zero;
    memset(&zero, 0, sizeof zero);
    CHECK_OK(mpq_mutex_create(&m, NULL));
    CHECK_OK(mpq_mutex_lock(m));
    CHECK_ERR(mpq_mutex_lock(m), EDEADLK);
    CHECK_ERR(mpq_mutex_timedlock(m, 10), EDEADLK);
    CHECK_ERR(mpq_mutex_trylock(m), EBUSY);
    CHECK_ERR(mpq_mutex_timedlock(m, 0), EAGAIN);
    CHECK_OK(mpq_mutex_unlock(m));
    CHECK_ERR(mpq_mutex_unlock(m), EPERM);
    CHECK_OK(mpq_mutex_trylock(m));
    CHECK_OK(mpq_mutex_unlock(m));
    CHECK_OK(mpq_mutex_timedlock(m, 0));
    CHECK_OK(mpq_mutex_unlock(m));
    /* Bad input. */
    CHECK_ERR(mpq_mutex_lock(NULL), EINVAL);
    CHECK_ERR(mpq_mutex_lock(&zero), EINVAL);
    CHECK_ERR(mpq_mutex_unlock(&zero), EINVAL);
    CHECK_ERR(mpq_mutex_trylock(NULL), EINVAL);
    CHECK_ERR(mpq_mutex_init(NULL), EINVAL);
    CHECK_ERR(mpq_mutex_create(NULL, NULL), EINVAL);
    CHECK_ERR(mpq_mutex_close(&zero), EINVAL);
    CHECK_ERR(mpq_mutex_close(NULL), EINVAL);
    CHECK_ERR(mpq_mutex_create(&m, &(mpq_mutex_config){ .name = "bad/name" }), EINVAL);
    CHECK_OK(mpq_mutex_close(m));
}

static void test_mutex_embedded(void)
{
    mpq_shm shm;
    mpq_mutex *m;
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = 2 * sizeof(mpq_mutex) }));
    m = (mpq_mutex *)shm.addr + 1;
    CHECK_OK(mpq_mutex_init(m));
    CHECK_OK(mpq_mutex_lock(m));
    CHECK_ERR(mpq_mutex_destroy(m), EBUSY);
    CHECK_ERR(mpq_mutex_close(m), EINVAL);  /* not one of mpq_mutex_create's */
    CHECK_OK(mpq_mutex_unlock(m));
    CHECK_OK(mpq_mutex_destroy(m));
    CHECK_ERR(mpq_mutex_lock(m), EINVAL);
    CHECK_ERR(mpq_mutex_destroy(m), EINVAL);
    CHECK_OK(mpq_shm_close(&shm));
}

/* --- exclusion ------------------------------------------------------------ */

struct counter { mpq_mutex m; volatile long n; uint32_t go; };
enum { INCREMENTS = 20000 };

static int add_many(void *arg)
{
    struct counter *c = (struct counter *)arg;
    int i, rc;
    wait_flag(&c->go, 10000);
    for (i = 0; i < INCREMENTS; i++) {
        long v;
        if ((rc = mpq_mutex_lock(&c->m)) != 0) return 2;
        v = c->n;                   /* a non-atomic read-modify-write: any */
        __asm__ __volatile__("" ::: "memory");
        c->n = v + 1;               /* overlap loses increments            */
        if ((rc = mpq_mutex_unlock(&c->m)) != 0) return 3;
    }
    return 0;
}

static void test_mutex_processes_lose_nothing(void)
{
    enum { P = 4 };
    mpq_shm shm;
    struct counter *c;
    mpq_process p[P];
    int i;
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *c }));
    c = (struct counter *)shm.addr;
    CHECK_OK(mpq_mutex_init(&c->m));
    for (i = 0; i < P; i++) CHECK_OK(mpq_process_start(&p[i], add_many, c));
    set_flag(&c->go);
    for (i = 0; i < P; i++) {
        CHECK_OK(mpq_process_join(&p[i], 60000));
        CHECK_EQ(p[i].exitcode, 0);
    }
    CHECK_EQ(c->n, (long)P * INCREMENTS);
    CHECK_OK(mpq_shm_close(&shm));
}

static void *add_many_thread(void *arg) { return (void *)(intptr_t)add_many(arg); }

static void test_mutex_threads_lose_nothing(void)
{
    enum { T = 4 };
    static struct counter c;
    pthread_t t[T];
    int i;
    CHECK_OK(mpq_mutex_init(&c.m));
    for (i = 0; i < T; i++) CHECK_EQ(pthread_create(&t[i], NULL, add_many_thread, &c), 0);
    set_flag(&c.go);
    for (i = 0; i < T; i++) {
        void *r;
        CHECK_EQ(pthread_join(t[i], &r), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    CHECK_EQ(c.n, (long)T * INCREMENTS);
    CHECK_OK(mpq_mutex_destroy(&c.m));
}

static void *unlock_from_thread(void *arg)
{
    return (void *)(intptr_t)mpq_mutex_unlock((mpq_mutex *)arg);
}

static void test_mutex_unlock_by_other_thread(void)
{
    static mpq_mutex m;
    pthread_t t;
    void *r;
    CHECK_OK(mpq_mutex_init(&m));
    CHECK_OK(mpq_mutex_lock(&m));
    CHECK_EQ(pthread_create(&t, NULL, unlock_from_thread, &m), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, -EPERM);
    CHECK_OK(mpq_mutex_unlock(&m));
    CHECK_OK(mpq_mutex_destroy(&m));
}

/* --- dead owners --------------------------------------------------------- */

struct held { mpq_mutex m; uint32_t holding; uint32_t owner_dead; uint32_t acquired; volatile long n;
               mpq_mutex *mp; /* if set, the lock the helpers below take instead of m */ };
#define HM(h) ((h)->mp ? (h)->mp : &(h)->m)

static int lock_and_hang(void *arg)
{
    struct held *h = (struct held *)arg;
    if (mpq_mutex_lock(HM(h)) != 0) return 2;
    set_flag(&h->holding);
    for (;;) pause();
}

static int lock_and_exit(void *arg)
{
    struct held *h = (struct held *)arg;
    return mpq_mutex_lock(HM(h)) == 0 ? 0 : 2;  /* exits holding it */
}

static int add_hundred(void *arg)
{
    struct held *h = (struct held *)arg;
    int i, rc;
    for (i = 0; i < 100; i++) {
        if ((rc = mpq_mutex_lock(&h->m)) != 0) return 2;
        h->n++;
        if (mpq_mutex_unlock(&h->m) != 0) return 3;
    }
    return 0;
}

static void test_mutex_owner_killed(void)
{
    mpq_shm shm;
    struct held *h;
    mpq_process p;
    MPQT_NEED_DEAD_OWNER();
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *h }));
    h = (struct held *)shm.addr;
    CHECK_OK(mpq_mutex_init(&h->m));
    CHECK_OK(mpq_process_start(&p, lock_and_hang, h));
    wait_flag(&h->holding, 10000);
    CHECK_ERR(mpq_mutex_trylock(&h->m), EBUSY);
    CHECK_ERR(mpq_mutex_unlock(&h->m), EPERM);      /* not ours */
    CHECK_OK(mpq_process_kill(&p, SIGKILL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_ERR(mpq_mutex_lock(&h->m), EOWNERDEAD);   /* held, and consistent */
    h->n = 1000;                                    /* "repair" the data */
    CHECK_OK(mpq_mutex_unlock(&h->m));
    CHECK_OK(mpq_mutex_lock(&h->m));                /* fully usable again */
    CHECK_OK(mpq_mutex_unlock(&h->m));
    CHECK_OK(mpq_process_start(&p, add_hundred, h));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 0);
    CHECK_EQ(h->n, 1100);

    /* A holder that simply exits is a dead owner too. */
    CHECK_OK(mpq_process_start(&p, lock_and_exit, h));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 0);
    CHECK_ERR(mpq_mutex_timedlock(&h->m, 1000), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(&h->m));
    CHECK_OK(mpq_shm_close(&shm));
}

static void *thread_lock_and_quit(void *arg)
{
    return (void *)(intptr_t)mpq_mutex_lock((mpq_mutex *)arg);
}

static void test_mutex_owner_thread_exits(void)
{
    static mpq_mutex m;
    pthread_t t;
    void *r;
    MPQT_NEED_DEAD_OWNER();
    CHECK_OK(mpq_mutex_init(&m));
    CHECK_EQ(pthread_create(&t, NULL, thread_lock_and_quit, &m), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 0);
    CHECK_ERR(mpq_mutex_lock(&m), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(&m));
    CHECK_OK(mpq_mutex_destroy(&m));
}

static int wait_and_count(void *arg)
{
    struct held *h = (struct held *)arg;
    int rc = mpq_mutex_lock(HM(h));
    if (rc == -EOWNERDEAD) mpq__add32(&h->owner_dead, 1, MPQ__RELAXED);
    else if (rc != 0) return 2;
    mpq__add32(&h->acquired, 1, MPQ__RELAXED);
    return mpq_mutex_unlock(HM(h)) == 0 ? 0 : 3;
}

/* Several processes asleep on the lock when its owner is killed: every one
   of them gets it in turn, and exactly one is told the owner died. */
static void test_mutex_waiters_after_owner_killed(void)
{
    enum { W = 3 };
    mpq_shm shm;
    struct held *h;
    mpq_process owner, w[W];
    int i;
    MPQT_NEED_DEAD_OWNER();
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *h }));
    h = (struct held *)shm.addr;
    CHECK_OK(mpq_mutex_init(&h->m));
    CHECK_OK(mpq_process_start(&owner, lock_and_hang, h));
    wait_flag(&h->holding, 10000);
    for (i = 0; i < W; i++) {
        CHECK_OK(mpq_process_start(&w[i], wait_and_count, h));
        CHECK(mpqt_wait_sleeping(w[i].pid, 10000));
    }
    CHECK_OK(mpq_process_kill(&owner, SIGKILL));
    CHECK_OK(mpq_process_join(&owner, 10000));
    for (i = 0; i < W; i++) {
        CHECK_OK(mpq_process_join(&w[i], 10000));
        CHECK_EQ(w[i].exitcode, 0);
    }
    CHECK_EQ(h->acquired, W);
    CHECK_EQ(h->owner_dead, 1);
    CHECK_OK(mpq_shm_close(&shm));
}

/* A lock word naming a thread that has exited, which the kernel never
   marked: where it keeps no robust list (qemu-user, a seccomp filter), or
   a word another process overwrote. A blocked locker - in this process
   or asleep in another - takes the lock after one slice, told the owner
   died; a live "owner" is still waited for; a try does not wait. */
static int exit_now(void *arg) { (void)arg; return 0; }

static int lock_expect_dead(void *arg)
{
    struct held *h = (struct held *)arg;
    int rc = mpq_mutex_lock(HM(h));
    if (rc != -EOWNERDEAD) return 2;
    return mpq_mutex_unlock(HM(h)) == 0 ? 0 : 3;
}

static void test_mutex_unmarked_dead_holder(void)
{
    mpq_shm shm;
    struct held *h;
    mpq_process p, live;
    uint32_t *word, dead, waiters;
    int i;
    uint32_t *own_word;
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *h }));
    h = (struct held *)shm.addr;
    if (mpq_mutex_init(&h->m) == -ENOTSUP) MPQT_SKIP("no robust-futex list here (see MPQ_ALLOW_NONROBUST)");
    mpq__pm_need();
    if (mpq__pm_known < 0) MPQT_SKIP("this libc's mutex layout is not known to mpq");
    /* The lock taken back: one of mpq_mutex_create, whose segment records
       its pid namespace in full (children share the anonymous mapping). */
    CHECK_OK(mpq_mutex_create(&h->mp, NULL));
    word = (uint32_t *)(void *)&h->mp->pm__ + mpq__pm_known;
    own_word = (uint32_t *)(void *)&h->m.pm__ + mpq__pm_known;
    CHECK_OK(mpq_process_start(&p, exit_now, NULL));
    MPQT_JOIN_OK(&p, 0);
    dead = (uint32_t)p.pid;   /* reaped: no thread has this id now */
    for (i = 0; i < 2; i++) {
        waiters = i ? MPQ__FUTEX_WAITERS : 0;
        mpq__store32(word, dead | waiters, MPQ__SEQ_CST);
        CHECK_ERR(mpq_mutex_trylock(h->mp), EBUSY);
        CHECK_ERR(mpq_mutex_timedlock(h->mp, 0), EAGAIN);
        CHECK_ERR(mpq_mutex_lock(h->mp), EOWNERDEAD);
        CHECK_OK(mpq_mutex_unlock(h->mp));
        CHECK_OK(mpq_mutex_lock(h->mp));          /* usable again */
        CHECK_OK(mpq_mutex_unlock(h->mp));
        mpq__store32(word, dead | waiters, MPQ__SEQ_CST);
        CHECK_ERR(mpq_mutex_timedlock(h->mp, 30000), EOWNERDEAD);
        CHECK_OK(mpq_mutex_unlock(h->mp));
    }
    /* A live owner (a process that sleeps) keeps it. */
    CHECK_OK(mpq_process_start(&live, lock_and_hang, h));
    wait_flag(&h->holding, 10000);
    CHECK_ERR(mpq_mutex_timedlock(h->mp, 300), ETIMEDOUT);
    /* Asleep in another process when the word is forged: the holder's
       word is made to name the dead thread, then the holder dies - the
       kernel marks only a word that names the dying thread, so nothing
       marks this one. (The holder is a child, not this process: a lock
       this process took and never gave back would stay on its robust
       list after the segment is unmapped.) */
    CHECK_OK(mpq_process_start(&p, lock_expect_dead, h));
    CHECK(mpqt_wait_sleeping(p.pid, 10000));
    mpq__store32(word, dead | MPQ__FUTEX_WAITERS, MPQ__SEQ_CST);
    CHECK_OK(mpq_process_kill(&live, SIGKILL));
    CHECK_OK(mpq_process_join(&live, 10000));
    MPQT_JOIN_OK(&p, 0);   /* it took the lock, told the owner died */
    /* Short timeouts, a slice or less each, get it too: each ends with a
       look (a loop of 50 ms tries used to time out for ever). */
    mpq__store32(word, dead | MPQ__FUTEX_WAITERS, MPQ__SEQ_CST);
    CHECK_ERR(mpq_mutex_timedlock(h->mp, 20), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(h->mp));
    /* A dead thread's word with the died bit set, as musl leaves one its
       EOWNERDEAD taker left inconsistent when that taker dies too. */
    mpq__store32(word, dead | MPQ__FUTEX_OWNER_DIED, MPQ__SEQ_CST);
    CHECK_ERR(mpq_mutex_timedlock(h->mp, 30000), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(h->mp));
    /* A mutex made in another pid namespace (its flags' tag differs): a
       thread id there names another thread - refused, nothing taken back. */
    {
        uint32_t f = h->mp->flags__, ours = (f & MPQ__MUTEX_NS) >> 3;
        if (ours == 0) MPQT_SKIP("this process's pid namespace cannot be told (no /proc)");
        h->mp->flags__ = (f & ~MPQ__MUTEX_NS) | (ours % 31 + 1) << 3;   /* another, not 0 */
        mpq__store32(word, dead, MPQ__SEQ_CST);
        CHECK_ERR(mpq_mutex_timedlock(h->mp, 300), EXDEV);
        CHECK_ERR(mpq_mutex_lock(h->mp), EXDEV);
        CHECK_EQ(mpq__load32(word, MPQ__SEQ_CST), dead);             /* nothing taken back */
        h->mp->flags__ = f;
    }
    CHECK_ERR(mpq_mutex_timedlock(h->mp, 30000), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(h->mp));
    /* A mutex of mpq_mutex_init in this process's own memory keeps only 5
       bits of its namespace, which another namespace may share: its lock
       is not taken back by a waiter's look (review: a waiter in another
       namespace with the same tag took a live holder's lock after one
       slice) - but under MPQ_ALLOW_NONROBUST, where nothing else would. */
    mpq__store32(own_word, dead, MPQ__SEQ_CST);
#if defined(MPQ_ALLOW_NONROBUST)
    CHECK_ERR(mpq_mutex_timedlock(&h->m, 300), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(&h->m));
#else
    CHECK_ERR(mpq_mutex_timedlock(&h->m, 300), ETIMEDOUT);
    CHECK_EQ(mpq__load32(own_word, MPQ__SEQ_CST) & ~MPQ__FUTEX_WAITERS, dead);   /* nothing taken back */
    mpq__store32(own_word, 0, MPQ__SEQ_CST);
#endif
    CHECK_OK(mpq_mutex_close(h->mp));
    CHECK_OK(mpq_shm_close(&shm));
}

/* The hole in plain robust mutexes: the owner dies while several wait, the
   kernel marks the lock owner-died and wakes ONE waiter, and that waiter is
   killed before it takes the lock. Nobody wakes the others. To make that
   order certain, everything runs on one CPU and the first waiter runs under
   SCHED_IDLE: once the parent sleeps, the dying owner runs first, its
   robust-list cleanup wakes the first waiter, which then only dies. */
static int idle_wait_and_count(void *arg)
{
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0) return 4;
    return wait_and_count(arg);
}

static void test_mutex_woken_waiter_killed_with_owner(void)
{
    cpu_set_t all, one;
    int round, cpu = 0;
    /* The kernel's robust-list wake-up is what it is about (and under a
       loaded qemu the SCHED_IDLE waiter may never run). */
    MPQT_NEED_ROBUST();
    CHECK_OK(sched_getaffinity(0, sizeof all, &all));
    while (cpu < CPU_SETSIZE - 1 && !CPU_ISSET(cpu, &all)) cpu++;    /* the first we may use */
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    CHECK_OK(sched_setaffinity(0, sizeof one, &one));   /* children inherit it */
    for (round = 0; round < 5; round++) {
        mpq_shm shm;
        struct held *h;
        mpq_process owner, first, rest[2];
        int i;
        CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *h }));
        h = (struct held *)shm.addr;
        CHECK_OK(mpq_mutex_init(&h->m));
        CHECK_OK(mpq_process_start(&owner, lock_and_hang, h));
        wait_flag(&h->holding, 10000);
        CHECK_OK(mpq_process_start(&first, idle_wait_and_count, h));
        CHECK(mpqt_wait_sleeping(first.pid, 10000));
        for (i = 0; i < 2; i++) {
            CHECK_OK(mpq_process_start(&rest[i], wait_and_count, h));
            CHECK(mpqt_wait_sleeping(rest[i].pid, 10000));
        }
        CHECK_OK(mpq_process_kill(&first, SIGKILL));
        CHECK_OK(mpq_process_kill(&owner, SIGKILL));
        CHECK_OK(mpq_process_join(&owner, 10000));
        CHECK_OK(mpq_process_join(&first, 10000));
        for (i = 0; i < 2; i++) {
            int rc = mpq_process_join(&rest[i], 10000);
            if (rc == -ETIMEDOUT) mpqt_fail(__FILE__, __LINE__, "round %d: a waiter was left asleep on a free lock", round);
            CHECK_EQ(rest[i].exitcode, 0);
        }
        CHECK_EQ(h->acquired, 2);
        CHECK_EQ(h->owner_dead, 1);
        CHECK_OK(mpq_shm_close(&shm));
    }
}

/* --- closing ------------------------------------------------------------- */

static int lock_close_exit(void *arg)
{
    mpq_mutex *m = (mpq_mutex *)arg;
    if (mpq_mutex_lock(m) != 0) return 2;
    return mpq_mutex_close(m) == -EBUSY ? 0 : 3;   /* refused: it stays mapped */
}

/* Unmapping a held lock would put it out of the kernel's reach when its
   holder dies, and nobody would ever get it again: close refuses. */
static void test_mutex_close_while_held_is_refused(void)
{
    mpq_mutex *m;
    mpq_process p;
    mpq__seg *h;
    uint64_t saved;
    MPQT_NEED_DEAD_OWNER();
    CHECK_OK(mpq_mutex_create(&m, NULL));
    CHECK_OK(mpq_process_start(&p, lock_close_exit, m));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 0);
    CHECK_ERR(mpq_mutex_timedlock(m, 5000), EOWNERDEAD);  /* recovered, not stranded */
    CHECK_ERR(mpq_mutex_close(m), EBUSY);
    CHECK_OK(mpq_mutex_unlock(m));
    CHECK_ERR(mpq_mutex_destroy(m), EINVAL);              /* made by create: close it */
    /* A length in shared memory that lies is not handed to munmap. */
    h = (mpq__seg *)((char *)m - MPQ__SEG_HDR);
    saved = h->total_size;
    h->total_size = 1 << 20;
    CHECK_ERR(mpq_mutex_close(m), EINVAL);
    h->total_size = saved;
    CHECK_OK(mpq_mutex_close(m));
}

/* --- timeouts --------------------------------------------------------------- */

static void test_mutex_timedlock_times_out(void)
{
    mpq_shm shm;
    struct held *h;
    mpq_process p;
    int64_t t0;
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *h }));
    h = (struct held *)shm.addr;
    CHECK_OK(mpq_mutex_init(&h->m));
    CHECK_OK(mpq_process_start(&p, lock_and_hang, h));
    wait_flag(&h->holding, 10000);
    t0 = mpqt_ms();
    CHECK_ERR(mpq_mutex_timedlock(&h->m, 120), ETIMEDOUT);
    CHECK(mpqt_ms() - t0 >= 119);
    CHECK(mpqt_ms() - t0 < 5000);
    CHECK_ERR(mpq_mutex_timedlock(&h->m, 0), EAGAIN);
    CHECK_ERR(mpq_mutex_trylock(&h->m), EBUSY);
    mpq_process_kill(&p, SIGKILL);
    mpq_process_join(&p, 10000);
    CHECK_OK(mpq_shm_close(&shm));
}

/* --- named, across exec ------------------------------------------------- */

static void test_mutex_named_across_exec(void)
{
    char name[64], region[64], count[16];
    mpq_mutex *m, *m2;
    mpq_shm shm;
    mpq_process peers[2];
    int i;
    mpqt_name(name, sizeof name, "mutex");
    mpqt_name(region, sizeof region, "region");
    MPQT_NEED_DEAD_OWNER();
    CHECK_OK(mpq_mutex_create(&m, &(mpq_mutex_config){ .name = name }));
    CHECK_ERR(mpq_mutex_create(&m2, &(mpq_mutex_config){ .name = name }), EEXIST);
    CHECK_OK(mpq_mutex_lock(m));
    CHECK_EQ(run_peer(name, "probe"), 10);         /* sees it held */
    CHECK_OK(mpq_mutex_unlock(m));
    CHECK_EQ(run_peer(name, "probe"), 11);         /* sees it free */
    CHECK_EQ(run_peer(name, "die"), 0);            /* exits holding it */
    CHECK_ERR(mpq_mutex_lock(m), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(m));

    /* Two programs and this one add under the lock: nothing is lost. */
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof(long), .name = region }));
    snprintf(count, sizeof count, "%d", INCREMENTS);
    for (i = 0; i < 2; i++) start_peer(&peers[i], name, "add", region, count);
    for (i = 0; i < INCREMENTS; i++) {
        CHECK_OK(mpq_mutex_lock(m));
        *(volatile long *)shm.addr += 1;
        CHECK_OK(mpq_mutex_unlock(m));
    }
    for (i = 0; i < 2; i++) {
        CHECK_OK(mpq_process_join(&peers[i], 60000));
        CHECK_EQ(peers[i].exitcode, 0);
    }
    CHECK_EQ(*(volatile long *)shm.addr, 3L * INCREMENTS);

    /* A name that holds another kind of object, and a removed name. */
    CHECK_ERR(mpq_mutex_open(&m2, region), EINVAL);
    CHECK_OK(mpq_shm_close(&shm));
    CHECK_OK(mpq_shm_unlink(region));
    CHECK_OK(mpq_mutex_open(&m2, name));
    CHECK_OK(mpq_mutex_close(m2));
    CHECK_OK(mpq_shm_unlink(name));
    CHECK_ERR(mpq_mutex_open(&m2, name), ENOENT);
    CHECK_OK(mpq_mutex_close(m));
}

/* --- kill storm ----------------------------------------------------------- */

enum { STORM_WORKERS = 6, STORM_KILLS = 200, STORM_SLOTS = STORM_WORKERS + STORM_KILLS };

struct storm {
    mpq_mutex m;
    uint32_t stop;
    uint32_t owner_dead;
    long counter;              /* == sum(done) whenever the lock is free */
    long done[STORM_SLOTS];
};

struct storm_arg { struct storm *s; int slot; };

static void storm_repair(struct storm *s)
{
    long sum = 0;
    int i;
    for (i = 0; i < STORM_SLOTS; i++) sum += s->done[i];
    s->counter = sum;
}

static int storm_worker(void *arg)
{
    struct storm_arg *a = (struct storm_arg *)arg;
    struct storm *s = a->s;
    uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
    while (!mpq__load32(&s->stop, MPQ__ACQUIRE)) {
        int rc = mpq_mutex_lock(&s->m), k;
        if (rc == -EOWNERDEAD) {
            s->owner_dead++;
            storm_repair(s);
        } else if (rc != 0) {
            return 2;
        }
        s->counter++;
        for (k = (int)(mpqt_rand(&seed) % 64); k > 0; k--) mpq__cpu_relax();
        s->done[a->slot]++;
        if (mpq_mutex_unlock(&s->m) != 0) return 3;
        for (k = (int)(mpqt_rand(&seed) % 64); k > 0; k--) mpq__cpu_relax();
    }
    return 0;
}

/* Workers contend; random ones are SIGKILLed at random instants and
   replaced. No survivor may stay blocked once the storm ends, and the
   counter, repaired by whoever inherits a dead owner's lock, is exact. */
static void test_mutex_kill_storm(void)
{
    mpq_shm shm;
    struct storm *s;
    static mpq_process w[STORM_WORKERS];
    static struct storm_arg args[STORM_SLOTS];
    uint64_t seed = 12345;
    int i, k, next_slot = 0, rc;
    long total = 0;
    MPQT_NEED_DEAD_OWNER();

    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *s }));
    s = (struct storm *)shm.addr;
    CHECK_OK(mpq_mutex_init(&s->m));
    for (i = 0; i < STORM_WORKERS; i++) {
        args[next_slot].s = s;
        args[next_slot].slot = next_slot;
        CHECK_OK(mpq_process_start(&w[i], storm_worker, &args[next_slot++]));
    }
    for (k = 0; k < STORM_KILLS; k++) {
        struct timespec pause_ts;
        pause_ts.tv_sec = 0;
        pause_ts.tv_nsec = (long)(mpqt_rand(&seed) % 2000) * 1000; /* a random instant */
        nanosleep(&pause_ts, NULL);
        i = (int)(mpqt_rand(&seed) % STORM_WORKERS);
        CHECK_OK(mpq_process_kill(&w[i], SIGKILL));
        CHECK_OK(mpq_process_join(&w[i], 10000));
        CHECK_EQ(w[i].exitcode, -SIGKILL);
        args[next_slot].s = s;
        args[next_slot].slot = next_slot;
        CHECK_OK(mpq_process_start(&w[i], storm_worker, &args[next_slot++]));
    }
    mpq__store32(&s->stop, 1, MPQ__RELEASE);
    for (i = 0; i < STORM_WORKERS; i++) {
        rc = mpq_process_join(&w[i], 10000);
        if (rc == -ETIMEDOUT) mpqt_fail(__FILE__, __LINE__, "a surviving worker stayed blocked");
        CHECK_OK(rc);
        CHECK_EQ(w[i].exitcode, 0);
    }
    rc = mpq_mutex_timedlock(&s->m, 5000);
    CHECK(rc == 0 || rc == -EOWNERDEAD);
    if (rc == -EOWNERDEAD) storm_repair(s);
    for (i = 0; i < STORM_SLOTS; i++) total += s->done[i];
    CHECK_EQ(s->counter, total);
    CHECK(total > STORM_KILLS);
    CHECK_OK(mpq_mutex_unlock(&s->m));
    printf("    (%ld increments, %u dead owners recovered)\n", total, s->owner_dead);
    CHECK_OK(mpq_shm_close(&shm));
}

static const mpqt_case cases[] = {
    MPQT(test_mutex_basic, 10, 0),
    MPQT(test_mutex_embedded, 10, 0),
    MPQT(test_mutex_processes_lose_nothing, 90, 0),
    MPQT(test_mutex_threads_lose_nothing, 90, 1),
    MPQT(test_mutex_unlock_by_other_thread, 10, 0), /* TSan rightly objects */
    MPQT(test_mutex_owner_killed, 30, 0),
    MPQT(test_mutex_owner_thread_exits, 10, 1),
    MPQT(test_mutex_waiters_after_owner_killed, 60, 0),
    MPQT(test_mutex_woken_waiter_killed_with_owner, 120, 0),
    MPQT(test_mutex_unmarked_dead_holder, 60, 0),
    MPQT(test_mutex_close_while_held_is_refused, 20, 0),
    MPQT(test_mutex_timedlock_times_out, 20, 0),
    MPQT(test_mutex_named_across_exec, 90, 0),
    MPQT(test_mutex_kill_storm, 120, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
