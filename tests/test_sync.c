/* Tests of the synchronisation family: Event, Semaphore (plain, bounded,
   undo), Condition, Barrier, RLock and JoinableQueue - their semantics
   across processes and threads, timeouts, bad input, the death of a
   process at each awkward moment, named objects used by an exec'd program,
   corrupt images, and a kill storm over a mix of them. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

/* --- helpers ------------------------------------------------------------ */

/* Shared anonymous memory for a test's processes. */
/* Waits (bounded) until *word >= want; other processes raise it. */
static void wait_at_least(uint32_t *word, uint32_t want, const char *what)
{
    int64_t end = mpqt_ms() + 20000;
    while (mpq__load32(word, MPQ__ACQUIRE) < want) {
        if (mpqt_ms() > end) mpqt_fail(__FILE__, __LINE__, "waited 20 s for %s (%u of %u)", what,
                                       mpq__load32(word, MPQ__ACQUIRE), want);
        mpqt_pause();
    }
}

static void bump(uint32_t *word) { mpq__add32(word, 1, MPQ__SEQ_CST); }

/* Kills p and waits until it is gone. */
static void kill_now(mpq_process *p)
{
    CHECK_OK(mpq_process_kill(p, SIGKILL));
    CHECK_OK(mpq_process_join(p, 10000));
    CHECK_EQ(p->exitcode, -SIGKILL);
}

static int start_peer(mpq_process *p, const char *a1, const char *a2, const char *a3, const char *a4)
{
    return mpqt_start_helper(p, "sync_peer", a1, a2, a3, a4);
}

/* --- Event ------------------------------------------------------------------ */

static void test_event_basic(void)
{
    mpq_event *e;
    int64_t t0;
    CHECK_OK(mpq_event_create(&e, NULL));
    CHECK_EQ(mpq_event_is_set(e), 0);
    CHECK_ERR(mpq_event_wait(e, 0), EAGAIN);
    t0 = mpqt_ms();
    CHECK_ERR(mpq_event_wait(e, 30), ETIMEDOUT);
    CHECK(mpqt_ms() - t0 >= 30);
    CHECK_OK(mpq_event_set(e));
    CHECK_OK(mpq_event_set(e));
    CHECK_EQ(mpq_event_is_set(e), 1);
    CHECK_OK(mpq_event_wait(e, 0));
    CHECK_OK(mpq_event_wait(e, -1));
    CHECK_OK(mpq_event_clear(e));
    CHECK_EQ(mpq_event_is_set(e), 0);
    CHECK_ERR(mpq_event_wait(e, 0), EAGAIN);
    /* Bad input. */
    CHECK_ERR(mpq_event_set(NULL), EINVAL);
    CHECK_ERR(mpq_event_clear(NULL), EINVAL);
    CHECK_ERR(mpq_event_is_set(NULL), EINVAL);
    CHECK_ERR(mpq_event_wait(NULL, 0), EINVAL);
    CHECK_ERR(mpq_event_close(NULL), EINVAL);
    CHECK_ERR(mpq_event_create(NULL, NULL), EINVAL);
    CHECK_ERR(mpq_event_create(&e, &(mpq_event_config){ .name = "no-slash" }), EINVAL);
    CHECK_OK(mpq_event_close(e));
}

struct ev_shared { uint32_t ready, woken; };
static mpq_event *g_event;
static struct ev_shared *g_ev;

static int event_waiter(void *arg)
{
    (void)arg;
    bump(&g_ev->ready);
    if (mpq_event_wait(g_event, 20000) != 0) return 1;
    bump(&g_ev->woken);
    return 0;
}

/* Every waiter of every process wakes on one set. */
static void test_event_wakes_all_processes(void)
{
    enum { P = 5 };
    mpq_process p[P];
    int i;
    g_ev = (struct ev_shared *)mpqt_shared(sizeof *g_ev);
    CHECK_OK(mpq_event_create(&g_event, NULL));
    for (i = 0; i < P; i++) CHECK_OK(mpq_process_start(&p[i], event_waiter, NULL));
    wait_at_least(&g_ev->ready, P, "waiters");
    for (i = 0; i < P; i++) CHECK(mpqt_wait_sleeping(p[i].pid, 10000));
    CHECK_EQ(g_ev->woken, 0);
    CHECK_OK(mpq_event_set(g_event));
    for (i = 0; i < P; i++) MPQT_JOIN_OK(&p[i], 0);
    CHECK_EQ(g_ev->woken, P);
    CHECK_OK(mpq_event_close(g_event));
}

/* A setter killed between setting the flag and waking the sleepers: here
   the flag is set by hand with no wake-up at all. The sleeper must still
   see it within a slice - not wait for its 20 s timeout. */
static void test_event_setter_dies_before_waking(void)
{
    mpq_process p;
    int64_t t0;
    g_ev = (struct ev_shared *)mpqt_shared(sizeof *g_ev);
    CHECK_OK(mpq_event_create(&g_event, NULL));
    CHECK_OK(mpq_process_start(&p, event_waiter, NULL));
    wait_at_least(&g_ev->ready, 1, "waiter");
    CHECK(mpqt_wait_sleeping(p.pid, 10000));
    t0 = mpqt_ms();
    mpq__store32(&g_event->s->flag, 1, MPQ__SEQ_CST);   /* set, never woken */
    MPQT_JOIN_OK(&p, 0);
    CHECK(mpqt_ms() - t0 < 10000);
    CHECK_OK(mpq_event_close(g_event));
}

static void *event_thread(void *arg)
{
    mpq_event *e = (mpq_event *)arg;
    return (void *)(intptr_t)mpq_event_wait(e, 20000);
}

static void test_event_threads(void)
{
    enum { T = 4 };
    pthread_t t[T];
    mpq_event *e;
    int i, round;
    CHECK_OK(mpq_event_create(&e, NULL));
    for (round = 0; round < 50; round++) {
        void *r;
        for (i = 0; i < T; i++) CHECK_EQ(pthread_create(&t[i], NULL, event_thread, e), 0);
        CHECK_OK(mpq_event_set(e));
        for (i = 0; i < T; i++) {
            CHECK_EQ(pthread_join(t[i], &r), 0);
            CHECK_EQ((intptr_t)r, 0);
        }
        CHECK_OK(mpq_event_clear(e));
    }
    CHECK_OK(mpq_event_close(e));
}

/* --- Semaphore -------------------------------------------------------------- */

static void test_sem_basic(void)
{
    mpq_sem *s;
    CHECK_OK(mpq_sem_create(&s, 2, NULL));
    CHECK_EQ(mpq_sem_value(s), 2);
    CHECK_OK(mpq_sem_acquire(s, 0));
    CHECK_OK(mpq_sem_acquire(s, -1));
    CHECK_ERR(mpq_sem_acquire(s, 0), EAGAIN);
    CHECK_ERR(mpq_sem_acquire(s, 20), ETIMEDOUT);
    CHECK_EQ(mpq_sem_value(s), 0);
    CHECK_OK(mpq_sem_release(s));
    CHECK_OK(mpq_sem_release(s));
    CHECK_OK(mpq_sem_release(s));   /* unbounded: past the initial value */
    CHECK_EQ(mpq_sem_value(s), 3);
    CHECK_OK(mpq_sem_close(s));

    /* Bounded: a release past the initial value is refused. */
    CHECK_OK(mpq_sem_create(&s, 1, &(mpq_sem_config){ .bounded = 1 }));
    CHECK_ERR(mpq_sem_release(s), EOVERFLOW);
    CHECK_OK(mpq_sem_acquire(s, 0));
    CHECK_OK(mpq_sem_release(s));
    CHECK_ERR(mpq_sem_release(s), EOVERFLOW);
    CHECK_EQ(mpq_sem_value(s), 1);
    CHECK_OK(mpq_sem_close(s));

    /* Zero permits, and the same with undo. */
    CHECK_OK(mpq_sem_create(&s, 0, &(mpq_sem_config){ .undo = 1, .bounded = 1 }));
    CHECK_ERR(mpq_sem_acquire(s, 0), EAGAIN);
    CHECK_ERR(mpq_sem_release(s), EOVERFLOW);
    CHECK_OK(mpq_sem_close(s));
    CHECK_OK(mpq_sem_create(&s, 3, &(mpq_sem_config){ .undo = 1 }));
    CHECK_OK(mpq_sem_acquire(s, 0));
    CHECK_OK(mpq_sem_acquire(s, 0));
    CHECK_OK(mpq_sem_acquire(s, 0));
    CHECK_ERR(mpq_sem_acquire(s, 10), ETIMEDOUT);
    CHECK_OK(mpq_sem_release(s));
    CHECK_OK(mpq_sem_release(s));
    CHECK_OK(mpq_sem_release(s));
    CHECK_OK(mpq_sem_release(s));   /* a plain release beyond our holding */
    CHECK_EQ(mpq_sem_value(s), 4);
    CHECK_OK(mpq_sem_close(s));

    /* The largest value, and bad input. */
    CHECK_OK(mpq_sem_create(&s, MPQ_SEM_MAX, NULL));
    CHECK_ERR(mpq_sem_release(s), EOVERFLOW);
    CHECK_OK(mpq_sem_close(s));
    CHECK_ERR(mpq_sem_create(&s, (unsigned)MPQ_SEM_MAX + 1, NULL), EINVAL);
    CHECK_ERR(mpq_sem_create(&s, 1, &(mpq_sem_config){ .undo = 1, .max_holders = 65537 }), EINVAL);
    CHECK_ERR(mpq_sem_create(NULL, 1, NULL), EINVAL);
    CHECK_ERR(mpq_sem_acquire(NULL, 0), EINVAL);
    CHECK_ERR(mpq_sem_release(NULL), EINVAL);
    CHECK_ERR(mpq_sem_value(NULL), EINVAL);
    CHECK_ERR(mpq_sem_close(NULL), EINVAL);
}

enum { SEM_ROUNDS = 3000 };
struct sem_shared { uint32_t inside, max_inside, go, bad; };
static mpq_sem *g_sem;
static struct sem_shared *g_ss;

/* SEM_ROUNDS times: acquire, note how many are inside, leave. */
static int sem_user(void *arg)
{
    int i, k;
    (void)arg;
    wait_at_least(&g_ss->go, 1, "go");
    for (i = 0; i < SEM_ROUNDS; i++) {
        uint32_t in, m;
        if (mpq_sem_acquire(g_sem, 20000) != 0) return 1;
        in = mpq__add32(&g_ss->inside, 1, MPQ__SEQ_CST) + 1;
        m = mpq__load32(&g_ss->max_inside, MPQ__RELAXED);
        while (in > m && !mpq__cas32(&g_ss->max_inside, &m, in, MPQ__RELAXED)) {}
        if (i == 0) {   /* the first time, wait (bounded) to be two inside:
                           chance alone need not overlap two (qemu, load) */
            int64_t end = mpqt_ms() + 20000;
            while (mpq__load32(&g_ss->max_inside, MPQ__SEQ_CST) < 2 && mpqt_ms() < end) {
                in = mpq__load32(&g_ss->inside, MPQ__SEQ_CST);
                m = 1;
                if (in >= 2) mpq__cas32(&g_ss->max_inside, &m, in, MPQ__SEQ_CST);
                else mpqt_pause();
            }
        }
        for (k = 0; k < 50; k++) mpq__cpu_relax();
        mpq__add32(&g_ss->inside, (uint32_t)-1, MPQ__SEQ_CST);
        if (mpq_sem_release(g_sem) != 0) return 2;
    }
    return 0;
}

static void sem_exclusion(int undo)
{
    enum { P = 5 };
    mpq_process p[P];
    int i;
    g_ss = (struct sem_shared *)mpqt_shared(sizeof *g_ss);
    CHECK_OK(mpq_sem_create(&g_sem, 2, &(mpq_sem_config){ .bounded = 1, .undo = undo }));
    for (i = 0; i < P; i++) CHECK_OK(mpq_process_start(&p[i], sem_user, NULL));
    bump(&g_ss->go);
    for (i = 0; i < P; i++) MPQT_JOIN_OK(&p[i], 0);
    CHECK(g_ss->max_inside <= 2);
    CHECK_EQ(g_ss->max_inside, 2);   /* it did admit two at once */
    CHECK_EQ(mpq_sem_value(g_sem), 2);
    CHECK_OK(mpq_sem_close(g_sem));
}

static void test_sem_processes(void) { sem_exclusion(0); }
static void test_sem_undo_processes(void) { MPQT_NEED_ROBUST(); sem_exclusion(1); }

static void *sem_thread(void *arg) { return (void *)(intptr_t)sem_user(arg); }

static void test_sem_threads(void)
{
    enum { T = 4 };
    pthread_t t[T];
    int i, undo;
    for (undo = 0; undo < 2; undo++) {
        g_ss = (struct sem_shared *)mpqt_shared(sizeof *g_ss);
        CHECK_OK(mpq_sem_create(&g_sem, 2, &(mpq_sem_config){ .undo = undo }));
        for (i = 0; i < T; i++) CHECK_EQ(pthread_create(&t[i], NULL, sem_thread, NULL), 0);
        bump(&g_ss->go);
        for (i = 0; i < T; i++) {
            void *r;
            CHECK_EQ(pthread_join(t[i], &r), 0);
            CHECK_EQ((intptr_t)r, 0);
        }
        CHECK(g_ss->max_inside <= 2);
        CHECK_EQ(mpq_sem_value(g_sem), 2);
        CHECK_OK(mpq_sem_close(g_sem));
    }
}

static int sem_take_and_hang(void *arg)
{
    int n = (int)(intptr_t)arg, i;
    for (i = 0; i < n; i++)
        if (mpq_sem_acquire(g_sem, 10000) != 0) return 1;
    bump(&g_ss->go);
    for (;;) pause();
}

/* Without undo a dead holder's permit is gone (as POSIX sem_t); with undo
   it comes back to a waiter within a slice or so. */
static void test_sem_holder_killed(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p;
    int undo;
    for (undo = 0; undo < 2; undo++) {
        g_ss = (struct sem_shared *)mpqt_shared(sizeof *g_ss);
        CHECK_OK(mpq_sem_create(&g_sem, 3, &(mpq_sem_config){ .undo = undo, .bounded = 1 }));
        CHECK_OK(mpq_process_start(&p, sem_take_and_hang, (void *)(intptr_t)2));
        wait_at_least(&g_ss->go, 1, "holder");
        CHECK_OK(mpq_sem_acquire(g_sem, 0));
        CHECK_ERR(mpq_sem_acquire(g_sem, 0), EAGAIN);
        kill_now(&p);
        if (undo) {
            CHECK_OK(mpq_sem_acquire(g_sem, 10000));   /* the dead one's, given back */
            CHECK_OK(mpq_sem_acquire(g_sem, 0));
            CHECK_ERR(mpq_sem_acquire(g_sem, 0), EAGAIN);
            CHECK_OK(mpq_sem_release(g_sem));
            CHECK_OK(mpq_sem_release(g_sem));
            CHECK_OK(mpq_sem_release(g_sem));
            CHECK_ERR(mpq_sem_release(g_sem), EOVERFLOW);   /* exactly 3 again */
        } else {
            CHECK_ERR(mpq_sem_acquire(g_sem, 2 * MPQ_SYNC_SLICE_MS + 50), ETIMEDOUT);
            CHECK_EQ(mpq_sem_value(g_sem), 0);
            CHECK_OK(mpq_sem_release(g_sem));
        }
        CHECK_OK(mpq_sem_close(g_sem));
    }
}

/* An undo holder killed inside its critical section of the semaphore
   itself: the journal is rolled back by whoever locks next. Simulated:
   a journal left valid as a dying acquire leaves it, after it changed the
   count but not its table entry. */
static void test_sem_undo_journal_rollback(void)
{
    mpq_sem *s;
    mpq__sem_s *ss;
    CHECK_OK(mpq_sem_create(&s, 2, &(mpq_sem_config){ .undo = 1, .bounded = 1 }));
    ss = s->s;
    CHECK_OK(mpq_mutex_lock(&ss->lock));
    mpq__sem_log(ss, s->n, 0);
    ss->count = 1;   /* half an acquire: the count, not the table */
    ss->lock.flags__ |= MPQ__MUTEX_DIED;   /* as if its holder had died */
    CHECK_OK(mpq_mutex_unlock(&ss->lock));
    CHECK_OK(mpq_sem_acquire(s, 0));       /* rolls back to 2, takes one */
    CHECK_OK(mpq_sem_acquire(s, 0));
    CHECK_ERR(mpq_sem_acquire(s, 0), EAGAIN);
    CHECK_OK(mpq_sem_release(s));
    CHECK_OK(mpq_sem_release(s));
    CHECK_ERR(mpq_sem_release(s), EOVERFLOW);
    CHECK_OK(mpq_sem_close(s));
}

/* max_holders processes hold permits: one more gets -ENOSPC, until one of
   them dies. */
static void test_sem_undo_table_full(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p[2];
    int i;
    g_ss = (struct sem_shared *)mpqt_shared(sizeof *g_ss);
    CHECK_OK(mpq_sem_create(&g_sem, 5, &(mpq_sem_config){ .undo = 1, .max_holders = 2 }));
    for (i = 0; i < 2; i++) CHECK_OK(mpq_process_start(&p[i], sem_take_and_hang, (void *)(intptr_t)1));
    wait_at_least(&g_ss->go, 2, "holders");
    CHECK_ERR(mpq_sem_acquire(g_sem, 0), ENOSPC);
    kill_now(&p[0]);
    CHECK_OK(mpq_sem_acquire(g_sem, 0));   /* the dead one's entry is reclaimed */
    CHECK_EQ(mpq_sem_value(g_sem), 5 - 1 - 1);   /* the dead one's came back: the live one's and ours are out */
    kill_now(&p[1]);
    CHECK_OK(mpq_sem_close(g_sem));
}

/* After an undo holder dies, tries alone (timeout 0, no sleeper whose
   slice could run out) get its permit back within a slice or so. */
static void test_sem_undo_reclaim_by_tries(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p;
    int64_t end;
    g_ss = (struct sem_shared *)mpqt_shared(sizeof *g_ss);
    CHECK_OK(mpq_sem_create(&g_sem, 1, &(mpq_sem_config){ .undo = 1 }));
    CHECK_OK(mpq_process_start(&p, sem_take_and_hang, (void *)(intptr_t)1));
    wait_at_least(&g_ss->go, 1, "holder");
    CHECK_ERR(mpq_sem_acquire(g_sem, 0), EAGAIN);
    kill_now(&p);
    end = mpqt_ms() + 20000;
    while (mpq_sem_acquire(g_sem, 0) != 0) {
        if (mpqt_ms() > end) mpqt_fail(__FILE__, __LINE__, "the dead holder's permit never came back");
        mpqt_pause();
    }
    CHECK_OK(mpq_sem_release(g_sem));
    CHECK_OK(mpq_sem_close(g_sem));
}

static int sem_stop_inside(void *arg)
{
    (void)arg;
    if (mpq_mutex_lock(&g_sem->s->lock) != 0) return 2;
    bump(&g_ss->go);
    raise(SIGSTOP);   /* stopped inside the semaphore's own critical section */
    return 0;
}

/* A process stopped (or slow) inside an undo semaphore's critical section
   does not stretch anybody's timeout; once it dies, all is well. */
static void test_sem_undo_timeouts_honoured(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p;
    g_ss = (struct sem_shared *)mpqt_shared(sizeof *g_ss);
    CHECK_OK(mpq_sem_create(&g_sem, 1, &(mpq_sem_config){ .undo = 1 }));
    CHECK_OK(mpq_process_start(&p, sem_stop_inside, NULL));
    wait_at_least(&g_ss->go, 1, "the stopped one");
    CHECK_ERR(mpq_sem_acquire(g_sem, 0), EAGAIN);
    CHECK_ERR(mpq_sem_acquire(g_sem, 30), ETIMEDOUT);
    kill_now(&p);
    CHECK_OK(mpq_sem_acquire(g_sem, 10000));
    CHECK_OK(mpq_sem_release(g_sem));
    CHECK_OK(mpq_sem_close(g_sem));
}

/* --- Condition -------------------------------------------------------------- */

struct cond_shared {
    mpq_mutex m;
    uint32_t ready, woken, go;
    uint32_t order[16];   /* who woke, in order */
    int      value;
};
static mpq_cond *g_cond;
static struct cond_shared *g_cs;

static void test_cond_basic(void)
{
    mpq_cond *c;
    mpq_mutex *m;
    CHECK_OK(mpq_cond_create(&c, NULL));
    CHECK_OK(mpq_mutex_create(&m, NULL));
    CHECK_EQ(mpq_cond_notify(c, 1), 0);
    CHECK_EQ(mpq_cond_notify_all(c), 0);
    CHECK_EQ(mpq_cond_notify(c, 0), 0);
    CHECK_ERR(mpq_cond_wait(c, m, 0), EPERM);   /* m not held */
    CHECK_OK(mpq_mutex_lock(m));
    CHECK_ERR(mpq_cond_wait(c, m, 0), EAGAIN);
    CHECK_ERR(mpq_cond_wait(c, m, 20), ETIMEDOUT);
    CHECK_ERR(mpq_mutex_trylock(m), EBUSY);     /* held again after the wait */
    CHECK_OK(mpq_mutex_unlock(m));
    /* Bad input. */
    CHECK_ERR(mpq_cond_wait(NULL, m, 0), EINVAL);
    CHECK_ERR(mpq_cond_wait(c, NULL, 0), EINVAL);
    CHECK_ERR(mpq_cond_notify(NULL, 1), EINVAL);
    CHECK_ERR(mpq_cond_notify_all(NULL), EINVAL);
    CHECK_ERR(mpq_cond_wait_for(c, m, NULL, NULL, 0), EINVAL);
    CHECK_ERR(mpq_cond_create(NULL, NULL), EINVAL);
    CHECK_ERR(mpq_cond_create(&c, &(mpq_cond_config){ .max_waiters = 65537 }), EINVAL);
    CHECK_ERR(mpq_cond_close(NULL), EINVAL);
    CHECK_OK(mpq_cond_close(c));
    CHECK_OK(mpq_mutex_close(m));
}

/* Waits on g_cond under g_cs->m; arg is the waiter's number. Exit 0 when
   notified, 1 on timeout, 2 on anything else, 3 for -EOWNERDEAD. */
static int cond_waiter(void *arg)
{
    uint32_t me = (uint32_t)(intptr_t)arg;
    int rc;
    if (mpq_mutex_lock(&g_cs->m) != 0) return 2;
    bump(&g_cs->ready);
    rc = mpq_cond_wait(g_cond, &g_cs->m, 20000);
    if (rc == 0 || rc == -EOWNERDEAD) {
        uint32_t k = mpq__add32(&g_cs->woken, 1, MPQ__SEQ_CST);
        if (k < 16) g_cs->order[k] = me;
    }
    mpq_mutex_unlock(&g_cs->m);
    return rc == 0 ? 0 : rc == -ETIMEDOUT ? 1 : rc == -EOWNERDEAD ? 3 : 2;
}

/* Once the mutex is free and `ready` says n waiters took it, all n are
   registered: each registers before it releases the mutex. */
static void cond_wait_ready(uint32_t n)
{
    wait_at_least(&g_cs->ready, n, "cond waiters");
    CHECK_OK(mpq_mutex_timedlock(&g_cs->m, 10000));
    CHECK_OK(mpq_mutex_unlock(&g_cs->m));
}

static void cond_setup(void)
{
    g_cs = (struct cond_shared *)mpqt_shared(sizeof *g_cs);
    CHECK_OK(mpq_mutex_init(&g_cs->m));
    CHECK_OK(mpq_cond_create(&g_cond, NULL));
}

/* notify(n) wakes exactly n, the longest waiting first; notify_all the
   rest (CPython's test_notify_n, across processes, with the order). */
static void test_cond_notify_counts_and_order(void)
{
    enum { P = 6 };
    mpq_process p[P];
    int i;
    cond_setup();
    for (i = 0; i < P; i++) {   /* one at a time, so their order is known */
        CHECK_OK(mpq_process_start(&p[i], cond_waiter, (void *)(intptr_t)i));
        cond_wait_ready((uint32_t)i + 1);
    }
    CHECK_EQ(mpq_cond_notify(g_cond, 1), 1);
    wait_at_least(&g_cs->woken, 1, "one woken");
    CHECK_EQ(mpq_cond_notify(g_cond, 2), 2);
    wait_at_least(&g_cs->woken, 3, "three woken");
    CHECK_EQ(mpq_cond_notify_all(g_cond), P - 3);
    for (i = 0; i < P; i++) MPQT_JOIN_OK(&p[i], 0);
    CHECK_EQ(g_cs->woken, P);
    CHECK_EQ(g_cs->order[0], 0);
    CHECK(g_cs->order[1] + g_cs->order[2] == 1 + 2);   /* 1 and 2, in either order */
    CHECK_EQ(mpq_cond_notify_all(g_cond), 0);
    CHECK_OK(mpq_cond_close(g_cond));
}

/* A waiter killed while waiting never takes a notification: the two
   oldest of four waiters die, and notify(5) wakes the two live ones - the
   dead are skipped, not counted. */
static void test_cond_dead_waiter_skipped(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p[4];
    int i;
    cond_setup();
    for (i = 0; i < 4; i++) {
        CHECK_OK(mpq_process_start(&p[i], cond_waiter, (void *)(intptr_t)i));
        cond_wait_ready((uint32_t)i + 1);
    }
    kill_now(&p[0]);
    kill_now(&p[1]);
    CHECK_EQ(mpq_cond_notify(g_cond, 5), 2);
    MPQT_JOIN_OK(&p[2], 0);
    MPQT_JOIN_OK(&p[3], 0);
    CHECK_EQ(mpq_cond_notify_all(g_cond), 0);
    CHECK_OK(mpq_cond_close(g_cond));
}

/* A waiter that was notified and died before taking it: its notification
   passes to another waiter within a slice, with no further notify. (The
   instant between the notifier's CAS and the waiter's return cannot be
   hit from outside; the entry is put in that state by hand.) */
static void test_cond_notified_waiter_dies(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p[2];
    uint32_t i, found = 0;
    cond_setup();
    for (i = 0; i < 2; i++) {
        CHECK_OK(mpq_process_start(&p[i], cond_waiter, (void *)(intptr_t)i));
        cond_wait_ready(i + 1);
    }
    kill_now(&p[0]);
    for (i = 0; i < g_cond->s->hi; i++) {
        uint32_t st = mpq__load32(&g_cond->w[i].state, MPQ__ACQUIRE);
        if (g_cond->w[i].ticket == 0 && mpq__wst(st) == MPQ__W_WAITING &&
            mpq__cas32(&g_cond->w[i].state, &st, (st & ~3u) | MPQ__W_NOTIFIED, MPQ__SEQ_CST))
            found++;
    }
    CHECK_EQ(found, 1);
    MPQT_JOIN_OK(&p[1], 0);   /* woken by the adoption, not by its 20 s timeout */
    CHECK_EQ(g_cs->order[0], 1);
    CHECK_OK(mpq_cond_close(g_cond));
}

static int cond_lock_and_die(void *arg)
{
    (void)arg;
    if (mpq_mutex_lock(&g_cs->m) != 0) return 2;
    mpq_cond_notify(g_cond, 1);
    _exit(0);   /* holding the mutex */
}

/* The mutex's holder dies before the notified waiter gets it back: the
   waiter's wait returns -EOWNERDEAD, holding the lock. */
static void test_cond_relock_owner_dead(void)
{
    MPQT_NEED_ROBUST();
    mpq_process w, d;
    cond_setup();
    CHECK_OK(mpq_process_start(&w, cond_waiter, (void *)0));
    cond_wait_ready(1);
    CHECK_OK(mpq_process_start(&d, cond_lock_and_die, NULL));
    MPQT_JOIN_OK(&d, 0);
    MPQT_JOIN_OK(&w, 3);
    CHECK_OK(mpq_cond_close(g_cond));
}

static int cond_pred(void *arg) { return ((struct cond_shared *)arg)->value >= 3; }

static int cond_bumper(void *arg)
{
    int i;
    (void)arg;
    for (i = 0; i < 3; i++) {
        if (mpq_mutex_lock(&g_cs->m) != 0) return 2;
        g_cs->value++;
        mpq_cond_notify_all(g_cond);
        mpq_mutex_unlock(&g_cs->m);
    }
    return 0;
}

static void test_cond_wait_for(void)
{
    mpq_process p;
    cond_setup();
    CHECK_OK(mpq_mutex_lock(&g_cs->m));
    CHECK_ERR(mpq_cond_wait_for(g_cond, &g_cs->m, cond_pred, g_cs, 20), ETIMEDOUT);
    CHECK_OK(mpq_process_start(&p, cond_bumper, NULL));
    CHECK_OK(mpq_cond_wait_for(g_cond, &g_cs->m, cond_pred, g_cs, 20000));
    CHECK(g_cs->value >= 3);
    CHECK_OK(mpq_cond_wait_for(g_cond, &g_cs->m, cond_pred, g_cs, 0));   /* holds already */
    CHECK_OK(mpq_mutex_unlock(&g_cs->m));
    MPQT_JOIN_OK(&p, 0);
    CHECK_OK(mpq_cond_close(g_cond));
}

/* A full table: -ENOSPC, the mutex still held. */
static void test_cond_table_full(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p[2];
    int i;
    g_cs = (struct cond_shared *)mpqt_shared(sizeof *g_cs);
    CHECK_OK(mpq_mutex_init(&g_cs->m));
    CHECK_OK(mpq_cond_create(&g_cond, &(mpq_cond_config){ .max_waiters = 2 }));
    for (i = 0; i < 2; i++) {
        CHECK_OK(mpq_process_start(&p[i], cond_waiter, (void *)(intptr_t)i));
        cond_wait_ready((uint32_t)i + 1);
    }
    CHECK_OK(mpq_mutex_lock(&g_cs->m));
    CHECK_ERR(mpq_cond_wait(g_cond, &g_cs->m, 0), ENOSPC);
    CHECK_OK(mpq_mutex_unlock(&g_cs->m));   /* still ours */
    kill_now(&p[0]);                        /* its entry can be taken over */
    CHECK_OK(mpq_mutex_lock(&g_cs->m));
    CHECK_ERR(mpq_cond_wait(g_cond, &g_cs->m, 0), EAGAIN);
    CHECK_OK(mpq_mutex_unlock(&g_cs->m));
    CHECK_EQ(mpq_cond_notify_all(g_cond), 1);
    MPQT_JOIN_OK(&p[1], 0);
    CHECK_OK(mpq_cond_close(g_cond));
}

/* Producer/consumer threads of one process on a bounded buffer with two
   conditions sharing one (recursive) mutex. */
enum { PC_ITEMS = 20000, PC_CAP = 8 };
struct pc { mpq_mutex m; int buf[PC_CAP]; int n, head; long sum; };
static struct pc g_pc;
static mpq_cond *g_not_full, *g_not_empty;

static void *pc_producer(void *arg)
{
    int i;
    (void)arg;
    for (i = 1; i <= PC_ITEMS; i++) {
        if (mpq_mutex_lock(&g_pc.m) != 0) return (void *)1;
        if (mpq_mutex_lock(&g_pc.m) != 0) return (void *)1;   /* RLock: twice */
        while (g_pc.n == PC_CAP)
            if (mpq_cond_wait(g_not_full, &g_pc.m, 20000) != 0) return (void *)2;
        g_pc.buf[(g_pc.head + g_pc.n++) % PC_CAP] = i;
        mpq_cond_notify(g_not_empty, 1);
        mpq_mutex_unlock(&g_pc.m);
        mpq_mutex_unlock(&g_pc.m);
    }
    return NULL;
}

static void *pc_consumer(void *arg)
{
    int i;
    (void)arg;
    for (i = 0; i < PC_ITEMS / 2; i++) {
        if (mpq_mutex_lock(&g_pc.m) != 0) return (void *)1;
        while (g_pc.n == 0)
            if (mpq_cond_wait(g_not_empty, &g_pc.m, 20000) != 0) return (void *)2;
        g_pc.sum += g_pc.buf[g_pc.head];
        g_pc.head = (g_pc.head + 1) % PC_CAP;
        g_pc.n--;
        mpq_cond_notify(g_not_full, 1);
        mpq_mutex_unlock(&g_pc.m);
    }
    return NULL;
}

static void test_cond_threads_bounded_buffer(void)
{
    pthread_t t[3];
    void *r;
    int i;
    CHECK_OK(mpq_mutex_init_recursive(&g_pc.m));
    CHECK_OK(mpq_cond_create(&g_not_full, NULL));
    CHECK_OK(mpq_cond_create(&g_not_empty, NULL));
    CHECK_EQ(pthread_create(&t[0], NULL, pc_producer, NULL), 0);
    CHECK_EQ(pthread_create(&t[1], NULL, pc_consumer, NULL), 0);
    CHECK_EQ(pthread_create(&t[2], NULL, pc_consumer, NULL), 0);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(t[i], &r), 0);
        CHECK(r == NULL);
    }
    CHECK_EQ(g_pc.sum, (long)PC_ITEMS * (PC_ITEMS + 1) / 2);
    CHECK_EQ(mpq_mutex_locked(&g_pc.m), 0);
    CHECK_OK(mpq_cond_close(g_not_full));
    CHECK_OK(mpq_cond_close(g_not_empty));
}

/* --- Barrier ---------------------------------------------------------------- */

static void test_barrier_basic(void)
{
    mpq_barrier *b;
    CHECK_OK(mpq_barrier_create(&b, 1, NULL));
    CHECK_EQ(mpq_barrier_wait(b, 0), 0);
    CHECK_EQ(mpq_barrier_wait(b, -1), 0);
    CHECK_EQ(mpq_barrier_parties(b), 1);
    CHECK_OK(mpq_barrier_close(b));
    CHECK_OK(mpq_barrier_create(&b, 2, NULL));
    CHECK_EQ(mpq_barrier_n_waiting(b), 0);
    CHECK_EQ(mpq_barrier_broken(b), 0);
    CHECK_ERR(mpq_barrier_wait(b, 0), EAGAIN);    /* nobody came: breaks it */
    CHECK_EQ(mpq_barrier_broken(b), 1);
    CHECK_ERR(mpq_barrier_wait(b, 1000), EPIPE);
    CHECK_OK(mpq_barrier_reset(b));
    CHECK_EQ(mpq_barrier_broken(b), 0);
    CHECK_ERR(mpq_barrier_wait(b, 20), ETIMEDOUT);
    CHECK_OK(mpq_barrier_reset(b));
    CHECK_OK(mpq_barrier_abort(b));
    CHECK_ERR(mpq_barrier_wait(b, 1000), EPIPE);
    CHECK_OK(mpq_barrier_close(b));
    /* Bad input. */
    CHECK_ERR(mpq_barrier_create(&b, 0, NULL), EINVAL);
    CHECK_ERR(mpq_barrier_create(&b, 32768, NULL), EINVAL);
    CHECK_ERR(mpq_barrier_create(NULL, 2, NULL), EINVAL);
    CHECK_ERR(mpq_barrier_wait(NULL, 0), EINVAL);
    CHECK_ERR(mpq_barrier_abort(NULL), EINVAL);
    CHECK_ERR(mpq_barrier_reset(NULL), EINVAL);
    CHECK_ERR(mpq_barrier_parties(NULL), EINVAL);
    CHECK_ERR(mpq_barrier_n_waiting(NULL), EINVAL);
    CHECK_ERR(mpq_barrier_broken(NULL), EINVAL);
    CHECK_ERR(mpq_barrier_close(NULL), EINVAL);
}

enum { BAR_P = 4, BAR_ROUNDS = 300 };
struct bar_shared { uint32_t phase[BAR_P]; uint32_t idx[BAR_ROUNDS][BAR_P]; uint32_t bad; };
static mpq_barrier *g_bar;
static struct bar_shared *g_bs;

/* BAR_ROUNDS rounds in lock step: nobody may be two phases ahead of
   anyone, and each round's indices are 0..P-1 once each. */
static int bar_party(void *arg)
{
    int me = (int)(intptr_t)arg, r, k, rc;
    for (r = 0; r < BAR_ROUNDS; r++) {
        mpq__store32(&g_bs->phase[me], (uint32_t)r, MPQ__SEQ_CST);
        rc = mpq_barrier_wait(g_bar, 20000);
        if (rc < 0 || rc >= BAR_P) return 1;
        g_bs->idx[r][me] = (uint32_t)rc + 1;
        for (k = 0; k < BAR_P; k++)
            if (mpq__load32(&g_bs->phase[k], MPQ__SEQ_CST) < (uint32_t)r) bump(&g_bs->bad);
    }
    return 0;
}

static void check_rounds(void)
{
    int r, k;
    CHECK_EQ(g_bs->bad, 0);
    for (r = 0; r < BAR_ROUNDS; r++) {
        uint32_t seen = 0;
        for (k = 0; k < BAR_P; k++) {
            CHECK(g_bs->idx[r][k] >= 1 && g_bs->idx[r][k] <= BAR_P);
            seen |= 1u << (g_bs->idx[r][k] - 1);
        }
        CHECK_EQ(seen, (1u << BAR_P) - 1);
    }
}

static void test_barrier_processes(void)
{
    mpq_process p[BAR_P];
    int i;
    g_bs = (struct bar_shared *)mpqt_shared(sizeof *g_bs);
    CHECK_OK(mpq_barrier_create(&g_bar, BAR_P, NULL));
    for (i = 0; i < BAR_P; i++) CHECK_OK(mpq_process_start(&p[i], bar_party, (void *)(intptr_t)i));
    for (i = 0; i < BAR_P; i++) MPQT_JOIN_OK(&p[i], 0);
    check_rounds();
    CHECK_OK(mpq_barrier_close(g_bar));
}

static void *bar_thread(void *arg) { return (void *)(intptr_t)bar_party(arg); }

static void test_barrier_threads(void)
{
    pthread_t t[BAR_P];
    int i;
    g_bs = (struct bar_shared *)mpqt_shared(sizeof *g_bs);
    CHECK_OK(mpq_barrier_create(&g_bar, BAR_P, NULL));
    for (i = 0; i < BAR_P; i++) CHECK_EQ(pthread_create(&t[i], NULL, bar_thread, (void *)(intptr_t)i), 0);
    for (i = 0; i < BAR_P; i++) {
        void *r;
        CHECK_EQ(pthread_join(t[i], &r), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    check_rounds();
    CHECK_OK(mpq_barrier_close(g_bar));
}

struct bar_wait_shared { uint32_t ready; int rc[8]; };
static struct bar_wait_shared *g_bw;

static int bar_waiter(void *arg)
{
    int me = (int)(intptr_t)arg;
    bump(&g_bw->ready);
    g_bw->rc[me] = mpq_barrier_wait(g_bar, 20000);
    return 0;
}

static void bar_start_waiters(mpq_process *p, int n)
{
    int i;
    g_bw = (struct bar_wait_shared *)mpqt_shared(sizeof *g_bw);
    for (i = 0; i < n; i++) CHECK_OK(mpq_process_start(&p[i], bar_waiter, (void *)(intptr_t)i));
    wait_at_least(&g_bw->ready, (uint32_t)n, "barrier waiters");
    {
        int64_t end = mpqt_ms() + 20000;
        while (mpq_barrier_n_waiting(g_bar) < n) {
            if (mpqt_ms() > end) mpqt_fail(__FILE__, __LINE__, "waiters never arrived");
            mpqt_pause();
        }
    }
}

/* A party killed while the others wait breaks the barrier for them: they
   get -EPIPE within a slice or so, not after their 20 s timeout. */
static void test_barrier_party_killed(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p[3];
    int i;
    CHECK_OK(mpq_barrier_create(&g_bar, 4, NULL));
    bar_start_waiters(p, 3);
    kill_now(&p[0]);
    for (i = 1; i < 3; i++) MPQT_JOIN_OK(&p[i], 0);
    CHECK_EQ(g_bw->rc[1], -EPIPE);
    CHECK_EQ(g_bw->rc[2], -EPIPE);
    CHECK_EQ(mpq_barrier_broken(g_bar), 1);
    /* Reset: usable again by a new set of parties. */
    CHECK_OK(mpq_barrier_reset(g_bar));
    bar_start_waiters(p, 3);
    CHECK_EQ(mpq_barrier_wait(g_bar, 20000), 3);
    for (i = 0; i < 3; i++) MPQT_JOIN_OK(&p[i], 0);
    for (i = 0; i < 3; i++) CHECK(g_bw->rc[i] >= 0 && g_bw->rc[i] < 3);
    CHECK_OK(mpq_barrier_close(g_bar));
}

/* Abort and reset wake the waiters with -EPIPE. */
static void test_barrier_abort_and_reset_wake(void)
{
    mpq_process p[2];
    int i, how;
    CHECK_OK(mpq_barrier_create(&g_bar, 3, NULL));
    for (how = 0; how < 2; how++) {
        bar_start_waiters(p, 2);
        if (how == 0) CHECK_OK(mpq_barrier_abort(g_bar));
        else CHECK_OK(mpq_barrier_reset(g_bar));
        for (i = 0; i < 2; i++) {
            MPQT_JOIN_OK(&p[i], 0);
            CHECK_EQ(g_bw->rc[i], -EPIPE);
        }
        CHECK_OK(mpq_barrier_reset(g_bar));
    }
    CHECK_OK(mpq_barrier_close(g_bar));
}

/* A round that was released is reported released even if the waiter only
   looks after a reset has followed it, and the other way round (the
   history bits). */
static void test_barrier_history(void)
{
    mpq_barrier *b;
    uint64_t v0, v;
    CHECK_OK(mpq_barrier_create(&b, 2, NULL));
    v0 = b->s->state;
    v = mpq__bar_next(mpq__bar_next(v0, 0), 1);    /* round 0 released, round 1 reset */
    CHECK_EQ(MPQ__BAR_GEN(v), 2);
    CHECK_EQ(mpq__bar_outcome(v, 0, 1), 1);        /* a waiter of round 0: released */
    CHECK_EQ(mpq__bar_outcome(v, 1, 1), -EPIPE);   /* of round 1: reset */
    v = mpq__bar_next(mpq__bar_next(v0, 1), 0);    /* reset, then released */
    CHECK_EQ(mpq__bar_outcome(v, 0, 1), -EPIPE);
    CHECK_EQ(mpq__bar_outcome(v, 1, 0), 0);
    CHECK_OK(mpq_barrier_close(b));
}

/* --- RLock and Lock.locked --------------------------------------------------- */

static mpq_mutex *g_rl;

static int rlock_hold_twice_and_die(void *arg)
{
    (void)arg;
    if (mpq_mutex_lock(g_rl) != 0 || mpq_mutex_lock(g_rl) != 0) return 2;
    _exit(0);
}

static int rlock_probe(void *arg)
{
    (void)arg;
    return mpq_mutex_locked(g_rl) == 1 && mpq_mutex_trylock(g_rl) == -EBUSY &&
           mpq_mutex_unlock(g_rl) == -EPERM ? 0 : 1;
}

static void test_rlock(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p;
    CHECK_OK(mpq_mutex_create(&g_rl, &(mpq_mutex_config){ .recursive = 1 }));
    CHECK_EQ(mpq_mutex_locked(g_rl), 0);
    CHECK_OK(mpq_mutex_lock(g_rl));
    CHECK_OK(mpq_mutex_lock(g_rl));
    CHECK_OK(mpq_mutex_trylock(g_rl));
    CHECK_OK(mpq_mutex_timedlock(g_rl, 0));
    CHECK_OK(mpq_mutex_timedlock(g_rl, 10));
    CHECK_EQ(mpq_mutex_locked(g_rl), 1);
    CHECK_OK(mpq_process_start(&p, rlock_probe, NULL));   /* another process: held, not its own */
    MPQT_JOIN_OK(&p, 0);
    CHECK_ERR(mpq_mutex_close(g_rl), EBUSY);
    CHECK_OK(mpq_mutex_unlock(g_rl));
    CHECK_OK(mpq_mutex_unlock(g_rl));
    CHECK_OK(mpq_mutex_unlock(g_rl));
    CHECK_OK(mpq_mutex_unlock(g_rl));
    CHECK_EQ(mpq_mutex_locked(g_rl), 1);
    CHECK_OK(mpq_mutex_unlock(g_rl));
    CHECK_EQ(mpq_mutex_locked(g_rl), 0);
    CHECK_ERR(mpq_mutex_unlock(g_rl), EPERM);

    /* The owner dies holding it twice: the next locker gets -EOWNERDEAD at
       depth one, and one unlock frees it. */
    CHECK_OK(mpq_process_start(&p, rlock_hold_twice_and_die, NULL));
    MPQT_JOIN_OK(&p, 0);
    CHECK_ERR(mpq_mutex_lock(g_rl), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(g_rl));
    CHECK_EQ(mpq_mutex_locked(g_rl), 0);
    CHECK_OK(mpq_mutex_close(g_rl));
    CHECK_ERR(mpq_mutex_init_recursive(NULL), EINVAL);
    CHECK_ERR(mpq_mutex_locked(NULL), EINVAL);
}

/* locked() on a lock whose holder died says "free", and does not eat the
   -EOWNERDEAD the next locker must get (nor does close's own check). */
static void test_mutex_locked_keeps_owner_dead(void)
{
    MPQT_NEED_ROBUST();
    mpq_process p;
    CHECK_OK(mpq_mutex_create(&g_rl, NULL));
    CHECK_OK(mpq_process_start(&p, rlock_hold_twice_and_die, NULL));   /* plain lock: 2nd is EDEADLK */
    MPQT_JOIN_OK(&p, 2);
    CHECK_EQ(mpq_mutex_locked(g_rl), 0);
    CHECK_EQ(mpq_mutex_locked(g_rl), 0);
    CHECK_ERR(mpq_mutex_lock(g_rl), EOWNERDEAD);
    CHECK_OK(mpq_mutex_unlock(g_rl));
    CHECK_OK(mpq_mutex_lock(g_rl));
    CHECK_OK(mpq_mutex_unlock(g_rl));
    CHECK_OK(mpq_mutex_close(g_rl));
}

static void *rlock_thread_unlock(void *arg)
{
    return (void *)(intptr_t)mpq_mutex_unlock((mpq_mutex *)arg);
}

static void test_rlock_other_thread_unlock_refused(void)
{
    static mpq_mutex m;
    pthread_t t;
    void *r;
    CHECK_OK(mpq_mutex_init_recursive(&m));
    CHECK_OK(mpq_mutex_lock(&m));
    CHECK_OK(mpq_mutex_lock(&m));
    CHECK_EQ(pthread_create(&t, NULL, rlock_thread_unlock, &m), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, -EPERM);
    CHECK_OK(mpq_mutex_unlock(&m));
    CHECK_OK(mpq_mutex_unlock(&m));
    CHECK_OK(mpq_mutex_destroy(&m));
}

/* --- JoinableQueue ------------------------------------------------------------ */

static void test_joinable_basic(void)
{
    mpq_queue *q;
    char buf[16];
    size_t len, lens[4];
    const void *msgs[3] = { "a", "b", "c" };
    size_t mlens[3] = { 1, 1, 1 };
    int i;
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .max_msg = 64, .capacity = 8, .joinable = 1 }));
    CHECK_OK(mpq_queue_join(q, 0));
    CHECK_EQ(mpq_queue_unfinished(q), 0);
    CHECK_ERR(mpq_queue_task_done(q), EOVERFLOW);
    CHECK_OK(mpq_queue_put(q, "x", 1, 0));
    CHECK_EQ(mpq_queue_put_batch(q, msgs, mlens, 3, 0), 3);   /* packed: counted one by one */
    CHECK_EQ(mpq_queue_unfinished(q), 4);
    CHECK_ERR(mpq_queue_join(q, 0), EAGAIN);
    CHECK_ERR(mpq_queue_join(q, 20), ETIMEDOUT);
    CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
    CHECK_EQ(mpq_queue_get_batch(q, buf, sizeof buf, lens, 4, 0), 3);
    CHECK_EQ(mpq_queue_unfinished(q), 4);   /* got, not yet done */
    for (i = 0; i < 4; i++) CHECK_OK(mpq_queue_task_done(q));
    CHECK_ERR(mpq_queue_task_done(q), EOVERFLOW);
    CHECK_OK(mpq_queue_join(q, 0));
    /* reserve/commit counts; cancel does not. */
    {
        void *slot;
        CHECK_OK(mpq_queue_reserve(q, &slot, 0));
        CHECK_OK(mpq_queue_cancel(q, slot));
        CHECK_EQ(mpq_queue_unfinished(q), 0);
        CHECK_OK(mpq_queue_reserve(q, &slot, 0));
        memcpy(slot, "y", 1);
        CHECK_OK(mpq_queue_commit(q, slot, 1));
        CHECK_EQ(mpq_queue_unfinished(q), 1);
    }
    /* A put refused by a closed queue counts nothing. */
    CHECK_OK(mpq_queue_shutdown(q, 0));
    CHECK_ERR(mpq_queue_put(q, "z", 1, 0), EPIPE);
    CHECK_EQ(mpq_queue_unfinished(q), 1);
    CHECK_OK(mpq_queue_close(q));
    /* A plain queue has no count. */
    CHECK_OK(mpq_queue_create(&q, NULL));
    CHECK_ERR(mpq_queue_task_done(q), EINVAL);
    CHECK_ERR(mpq_queue_join(q, 0), EINVAL);
    CHECK_ERR(mpq_queue_unfinished(q), EINVAL);
    CHECK_OK(mpq_queue_close(q));
    CHECK_ERR(mpq_queue_task_done(NULL), EINVAL);
    CHECK_ERR(mpq_queue_join(NULL, 0), EINVAL);
}

enum { JQ_JOBS = 3000 };
struct jq_shared { uint32_t done; };
static mpq_queue *g_jq;
static struct jq_shared *g_js;

static int jq_consumer(void *arg)
{
    char buf[64];
    size_t len;
    int rc;
    (void)arg;
    while ((rc = mpq_queue_get(g_jq, buf, sizeof buf, &len, 20000)) == 0) {
        if (len == 4 && memcmp(buf, "stop", 4) == 0) {
            mpq_queue_task_done(g_jq);
            return 0;
        }
        bump(&g_js->done);   /* the work, then task_done */
        if (mpq_queue_task_done(g_jq) != 0) return 1;
    }
    return 2;
}

/* join returns only once every job is done. */
static void test_joinable_processes(void)
{
    enum { C = 3 };
    mpq_process p[C];
    int i;
    g_js = (struct jq_shared *)mpqt_shared(sizeof *g_js);
    CHECK_OK(mpq_queue_create(&g_jq, &(mpq_queue_config){ .max_msg = 64, .capacity = 64, .joinable = 1 }));
    for (i = 0; i < C; i++) CHECK_OK(mpq_process_start(&p[i], jq_consumer, NULL));
    for (i = 0; i < JQ_JOBS; i++) CHECK_OK(mpq_queue_put(g_jq, &i, sizeof i, 20000));
    CHECK_OK(mpq_queue_join(g_jq, 30000));
    CHECK_EQ(g_js->done, JQ_JOBS);
    CHECK_EQ(mpq_queue_unfinished(g_jq), 0);
    for (i = 0; i < C; i++) CHECK_OK(mpq_queue_put(g_jq, "stop", 4, 20000));
    for (i = 0; i < C; i++) MPQT_JOIN_OK(&p[i], 0);
    CHECK_OK(mpq_queue_join(g_jq, 30000));
    CHECK_OK(mpq_queue_close(g_jq));
}

static int jq_get_and_die(void *arg)
{
    char buf[64];
    size_t len;
    (void)arg;
    if (mpq_queue_get(g_jq, buf, sizeof buf, &len, 20000) != 0) return 2;
    for (;;) pause();
}

/* A consumer that dies between its get and its task_done: join times out,
   and the supervisor's task_done on its behalf ends the join. */
static void test_joinable_dead_consumer(void)
{
    mpq_process p;
    CHECK_OK(mpq_queue_create(&g_jq, &(mpq_queue_config){ .max_msg = 64, .capacity = 8, .joinable = 1 }));
    CHECK_OK(mpq_queue_put(g_jq, "job", 3, 0));
    CHECK_OK(mpq_process_start(&p, jq_get_and_die, NULL));
    {
        int64_t end = mpqt_ms() + 20000;
        while (mpq_queue_count(g_jq) != 0) {
            if (mpqt_ms() > end) mpqt_fail(__FILE__, __LINE__, "the job was never taken");
            mpqt_pause();
        }
    }
    kill_now(&p);
    CHECK_ERR(mpq_queue_join(g_jq, 50), ETIMEDOUT);
    CHECK_EQ(mpq_queue_unfinished(g_jq), 1);
    CHECK_OK(mpq_queue_task_done(g_jq));   /* the dead consumer's message */
    CHECK_OK(mpq_queue_join(g_jq, 0));
    CHECK_OK(mpq_queue_close(g_jq));
}

static void *jq_thread(void *arg) { return (void *)(intptr_t)jq_consumer(arg); }

static void test_joinable_threads(void)
{
    pthread_t t[2];
    int i;
    g_js = (struct jq_shared *)mpqt_shared(sizeof *g_js);
    CHECK_OK(mpq_queue_create(&g_jq, &(mpq_queue_config){ .max_msg = 64, .capacity = 16, .joinable = 1 }));
    for (i = 0; i < 2; i++) CHECK_EQ(pthread_create(&t[i], NULL, jq_thread, NULL), 0);
    for (i = 0; i < JQ_JOBS; i++) CHECK_OK(mpq_queue_put(g_jq, &i, sizeof i, 20000));
    CHECK_OK(mpq_queue_join(g_jq, 30000));
    CHECK_EQ(mpq__load32(&g_js->done, MPQ__ACQUIRE), JQ_JOBS);
    for (i = 0; i < 2; i++) CHECK_OK(mpq_queue_put(g_jq, "stop", 4, 20000));
    for (i = 0; i < 2; i++) {
        void *r;
        CHECK_EQ(pthread_join(t[i], &r), 0);
        CHECK_EQ((intptr_t)r, 0);
    }
    CHECK_OK(mpq_queue_close(g_jq));
}

/* --- named objects and an exec'd program -------------------------------------- */

static void test_sync_named_across_exec(void)
{
    char ev[64], sem[64], bar[64], cond[64], mtx[64];
    mpq_event *e, *e2;
    mpq_sem *s;
    mpq_barrier *b;
    mpq_cond *c;
    mpq_mutex *m;
    mpq_process p[2];
    int i;
    mpqt_name(ev, sizeof ev, "ev");
    mpqt_name(sem, sizeof sem, "sem");
    mpqt_name(bar, sizeof bar, "bar");
    mpqt_name(cond, sizeof cond, "cond");
    mpqt_name(mtx, sizeof mtx, "mtx");
    CHECK_OK(mpq_event_create(&e, &(mpq_event_config){ .name = ev }));
    CHECK_ERR(mpq_event_create(&e2, &(mpq_event_config){ .name = ev }), EEXIST);
    CHECK_OK(mpq_sem_create(&s, 1, &(mpq_sem_config){ .name = sem, .undo = 1 }));
    CHECK_OK(mpq_barrier_create(&b, 3, &(mpq_barrier_config){ .name = bar }));
    CHECK_OK(mpq_cond_create(&c, &(mpq_cond_config){ .name = cond }));
    CHECK_OK(mpq_mutex_create(&m, &(mpq_mutex_config){ .name = mtx }));

    /* Event: the peer waits, we set. */
    CHECK_OK(start_peer(&p[0], "event", ev, NULL, NULL));
    CHECK(mpqt_wait_sleeping(p[0].pid, 10000));
    CHECK_OK(mpq_event_set(e));
    MPQT_JOIN_OK(&p[0], 0);

    /* Undo semaphore: the peer takes the permit and exits without giving
       it back; it comes back to us. */
    CHECK_OK(start_peer(&p[0], "sem", sem, NULL, NULL));
    MPQT_JOIN_OK(&p[0], 0);
    CHECK_OK(mpq_sem_acquire(s, 10000));
    CHECK_OK(mpq_sem_release(s));

    /* Barrier: two peers and us. */
    for (i = 0; i < 2; i++) CHECK_OK(start_peer(&p[i], "barrier", bar, NULL, NULL));
    i = mpq_barrier_wait(b, 20000);
    CHECK(i >= 0 && i < 3);
    for (i = 0; i < 2; i++) {
        CHECK_OK(mpq_process_join(&p[i], 30000));
        CHECK(p[i].exitcode >= 10 && p[i].exitcode < 13);
    }

    /* Condition: the peer waits under the named mutex; we notify. */
    CHECK_OK(start_peer(&p[0], "cond", cond, mtx, NULL));
    {
        int64_t end = mpqt_ms() + 20000;
        while (mpq_cond_notify(c, 1) == 0) {
            if (mpqt_ms() > end) mpqt_fail(__FILE__, __LINE__, "the peer never waited");
            mpqt_pause();
        }
    }
    MPQT_JOIN_OK(&p[0], 0);

    /* Another kind under the name, or none. */
    CHECK_ERR(mpq_sem_open(&s, ev), EINVAL);
    CHECK_ERR(mpq_event_open(&e2, sem), EINVAL);
    CHECK_ERR(mpq_barrier_open(&b, cond), EINVAL);
    CHECK_ERR(mpq_cond_open(&c, bar), EINVAL);
    CHECK_ERR(mpq_event_open(&e2, "/mpqt-no-such-object"), ENOENT);
    CHECK_OK(mpq_event_open(&e2, ev));
    CHECK_EQ(mpq_event_is_set(e2), 1);
    CHECK_OK(mpq_event_close(e2));
    CHECK_OK(mpq_event_close(e));
    CHECK_OK(mpq_sem_close(s));
    CHECK_OK(mpq_barrier_close(b));
    CHECK_OK(mpq_cond_close(c));
    CHECK_OK(mpq_mutex_close(m));
    CHECK_OK(mpq_shm_unlink(ev));
    CHECK_OK(mpq_shm_unlink(sem));
    CHECK_OK(mpq_shm_unlink(bar));
    CHECK_OK(mpq_shm_unlink(cond));
    CHECK_OK(mpq_shm_unlink(mtx));
}

/* --- corrupt images ------------------------------------------------------------- */

/* The object fields mpq validates at open: each mutation is refused with
   -EINVAL; and random bytes over an event's or plain semaphore's object
   either are refused or give a usable object (no crash, no hang). */
static void test_sync_corrupt_images(void)
{
    char name[64];
    uint64_t seed = 99;
    int i, refused = 0, opened = 0;
    mpqt_name(name, sizeof name, "corrupt");
    for (i = 0; i < 2000; i++) {
        int kind = i % 4, rc = 0;
        mpq_shm shm;
        void *h = NULL;
        char *obj;
        size_t off;
        switch (kind) {
        case 0: rc = mpq_event_create((mpq_event **)&h, &(mpq_event_config){ .name = name }); break;
        case 1: rc = mpq_sem_create((mpq_sem **)&h, 3, &(mpq_sem_config){ .name = name, .bounded = i & 4 }); break;
        case 2: rc = mpq_cond_create((mpq_cond **)&h, &(mpq_cond_config){ .name = name, .max_waiters = 4 }); break;
        default: rc = mpq_barrier_create((mpq_barrier **)&h, 2, &(mpq_barrier_config){ .name = name }); break;
        }
        CHECK_OK(rc);
        /* Scribble through a second mapping, as another process would. */
        {
            int fd = shm_open(name, O_RDWR, 0);
            struct stat st;
            CHECK(fd >= 0);
            CHECK(fstat(fd, &st) == 0);
            obj = (char *)mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            CHECK(obj != MAP_FAILED);
            close(fd);
            shm.base__ = obj;
            shm.length__ = (size_t)st.st_size;
            obj += MPQ__SEG_HDR;
        }
        if (kind <= 1 && (i & 8)) {
            /* Random bytes anywhere in a lock-free object. */
            size_t n = kind == 0 ? sizeof(mpq__event_s) : 24;
            for (off = 0; off < n; off++)
                if (mpqt_rand(&seed) % 3 == 0) obj[off] = (char)mpqt_rand(&seed);
        } else {
            /* One field mpq checks: magic, sizes, counts. */
            uint32_t *w = (uint32_t *)(void *)obj;
            int f = (int)(mpqt_rand(&seed) % 4);
            if (kind == 0) w[f == 0 ? 0 : 1] = f == 0 ? 0x12345678u : 2 + (uint32_t)mpqt_rand(&seed) % 100;
            else if (kind == 1) w[f] = f == 0 ? 0 : f == 1 ? 8 : f == 2 ? 0x80000000u : 4 + 2;  /* count > bound? */
            else w[f % 3] = f == 0 ? 1 : f == 1 ? 0 : 70000;
            if (kind == 1 && f == 3) { w[2] = 3; w[4] = 5; }   /* count above the bound */
        }
        munmap(shm.base__, shm.length__);
        switch (kind) {
        case 0: {
            mpq_event *e;
            rc = mpq_event_open(&e, name);
            if (rc == 0) {
                mpq_event_wait(e, 0);
                mpq_event_set(e);
                CHECK_OK(mpq_event_wait(e, 0));
                mpq_event_close(e);
            }
            mpq_event_close((mpq_event *)h);
            break;
        }
        case 1: {
            mpq_sem *s;
            rc = mpq_sem_open(&s, name);
            if (rc == 0) {
                int v = mpq_sem_value(s);
                CHECK(v >= 0);
                mpq_sem_acquire(s, 0);
                mpq_sem_release(s);
                mpq_sem_close(s);
            }
            mpq_sem_close((mpq_sem *)h);
            break;
        }
        case 2: {
            mpq_cond *c;
            rc = mpq_cond_open(&c, name);
            if (rc == 0) mpq_cond_close(c);
            mpq_cond_close((mpq_cond *)h);
            break;
        }
        default: {
            mpq_barrier *b;
            rc = mpq_barrier_open(&b, name);
            if (rc == 0) mpq_barrier_close(b);
            mpq_barrier_close((mpq_barrier *)h);
            break;
        }
        }
        if (kind >= 2 || !(i & 8)) {
            if (rc != -EINVAL) mpqt_fail(__FILE__, __LINE__, "kind %d image %d: open gave %d", kind, i, rc);
        }
        if (rc == 0) opened++;
        else refused++;
        CHECK_OK(mpq_shm_unlink(name));
    }
    CHECK(refused > 1000);
    printf("    (%d refused, %d opened and used)\n", refused, opened);
}

/* --- kill storm --------------------------------------------------------------- */

enum { STORM_W = 6, STORM_KILLS = 220 };
struct storm {
    mpq_mutex m;        /* the condition's */
    uint32_t stop;
    uint32_t ops[STORM_W + STORM_KILLS];
    uint32_t phase;     /* the event's round */
};
static struct storm *g_st;
static mpq_sem *g_ssem;
static mpq_event *g_sev;
static mpq_cond *g_scond;
static mpq_barrier *g_sbar;

/* A worker mixes every object, each call bounded, until told to stop. */
static int storm_worker(void *arg)
{
    int slot = (int)(intptr_t)arg, rc;
    uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
    while (!mpq__load32(&g_st->stop, MPQ__ACQUIRE)) {
        switch (mpqt_rand(&seed) % 5) {
        case 0: case 1:   /* the undo semaphore: take, work, give back */
            rc = mpq_sem_acquire(g_ssem, 2000);
            if (rc == 0) {
                int k;
                for (k = (int)(mpqt_rand(&seed) % 200); k > 0; k--) mpq__cpu_relax();
                if (mpq_sem_release(g_ssem) != 0) return 3;
            } else if (rc != -ETIMEDOUT) {
                return 2;
            }
            break;
        case 2:           /* the condition: wait (past a slice, now and then), or notify */
            rc = mpq_mutex_timedlock(&g_st->m, 2000);
            if (rc != 0 && rc != -EOWNERDEAD) break;
            if (mpqt_rand(&seed) % 2) {
                rc = mpq_cond_wait(g_scond, &g_st->m, (int)(mpqt_rand(&seed) % (3 * MPQ_SYNC_SLICE_MS)));
                if (rc != 0 && rc != -ETIMEDOUT && rc != -EOWNERDEAD && rc != -EAGAIN) return 4;
            } else {
                mpq_cond_notify(g_scond, 1 + (int)(mpqt_rand(&seed) % 3));
            }
            mpq_mutex_unlock(&g_st->m);
            break;
        case 3:           /* the event */
            if (mpqt_rand(&seed) % 2) mpq_event_set(g_sev);
            else if (mpq_event_wait(g_sev, (int)(mpqt_rand(&seed) % 20)) == 0) mpq_event_clear(g_sev);
            break;
        default:          /* the barrier, reset when broken */
            rc = mpq_barrier_wait(g_sbar, (int)(mpqt_rand(&seed) % (3 * MPQ_SYNC_SLICE_MS)));
            if (rc == -EPIPE) mpq_barrier_reset(g_sbar);
            else if (rc < 0 && rc != -ETIMEDOUT && rc != -EAGAIN) return 5;
            break;
        }
        mpq__add32(&g_st->ops[slot], 1, MPQ__RELAXED);
    }
    return 0;
}

/* Workers use all of them; random ones are SIGKILLed at random instants
   and replaced. Afterwards no survivor is stuck, the undo semaphore has
   exactly its permits, and every object still works. */
static void test_sync_kill_storm(void)
{
    static mpq_process w[STORM_W];
    uint64_t seed = 777;
    int i, k, next = 0, rc;
    uint32_t total = 0;
    MPQT_NEED_ROBUST();
    g_st = (struct storm *)mpqt_shared(sizeof *g_st);
    CHECK_OK(mpq_mutex_init(&g_st->m));
    CHECK_OK(mpq_sem_create(&g_ssem, 2, &(mpq_sem_config){ .undo = 1, .bounded = 1 }));
    CHECK_OK(mpq_event_create(&g_sev, NULL));
    CHECK_OK(mpq_cond_create(&g_scond, &(mpq_cond_config){ .max_waiters = 8 }));
    CHECK_OK(mpq_barrier_create(&g_sbar, 3, NULL));
    for (i = 0; i < STORM_W; i++) CHECK_OK(mpq_process_start(&w[i], storm_worker, (void *)(intptr_t)next++));
    for (k = 0; k < STORM_KILLS; k++) {
        struct timespec ts = { 0, 0 };
        ts.tv_nsec = (long)(mpqt_rand(&seed) % 3000) * 1000;   /* a random instant */
        nanosleep(&ts, NULL);
        i = (int)(mpqt_rand(&seed) % STORM_W);
        kill_now(&w[i]);
        CHECK_OK(mpq_process_start(&w[i], storm_worker, (void *)(intptr_t)next++));
    }
    mpq__store32(&g_st->stop, 1, MPQ__RELEASE);
    for (i = 0; i < STORM_W; i++) {
        rc = mpq_process_join(&w[i], 15000);
        if (rc == -ETIMEDOUT) mpqt_fail(__FILE__, __LINE__, "a surviving worker stayed blocked");
        CHECK_OK(rc);
        CHECK_EQ(w[i].exitcode, 0);
    }
    for (i = 0; i < next; i++) total += g_st->ops[i];
    /* Exactly two permits: the dead holders' come back, none twice. */
    CHECK_OK(mpq_sem_acquire(g_ssem, 10000));
    CHECK_OK(mpq_sem_acquire(g_ssem, 10000));
    CHECK_ERR(mpq_sem_acquire(g_ssem, 3 * MPQ_SYNC_SLICE_MS), ETIMEDOUT);
    CHECK_OK(mpq_sem_release(g_ssem));
    CHECK_OK(mpq_sem_release(g_ssem));
    CHECK_ERR(mpq_sem_release(g_ssem), EOVERFLOW);
    /* Every entry of the condition's table can be taken again; the barrier
       works again. */
    for (i = 0; i < 8; i++) {
        uint32_t st;
        CHECK(mpq__waiter_grab(&g_scond->w[i], &st) != MPQ__GRAB_BUSY);
        mpq__waiter_leave(&g_scond->w[i]);
    }
    rc = mpq_mutex_lock(&g_st->m);
    CHECK(rc == 0 || rc == -EOWNERDEAD);
    CHECK_ERR(mpq_cond_wait(g_scond, &g_st->m, 0), EAGAIN);
    CHECK_OK(mpq_mutex_unlock(&g_st->m));
    CHECK_OK(mpq_barrier_reset(g_sbar));
    {
        mpq_process p[2];
        g_bar = g_sbar;
        bar_start_waiters(p, 2);
        CHECK_EQ(mpq_barrier_wait(g_sbar, 20000), 2);
        for (i = 0; i < 2; i++) MPQT_JOIN_OK(&p[i], 0);
    }
    CHECK(total > STORM_KILLS);
    printf("    (%u operations, %d workers killed)\n", total, STORM_KILLS);
    CHECK_OK(mpq_sem_close(g_ssem));
    CHECK_OK(mpq_event_close(g_sev));
    CHECK_OK(mpq_cond_close(g_scond));
    CHECK_OK(mpq_barrier_close(g_sbar));
}

static const mpqt_case cases[] = {
    MPQT(test_event_basic, 10, 0),
    MPQT(test_event_wakes_all_processes, 60, 0),
    MPQT(test_event_setter_dies_before_waking, 60, 0),
    MPQT(test_event_threads, 60, 1),
    MPQT(test_sem_basic, 10, 0),
    MPQT(test_sem_processes, 120, 0),
    MPQT(test_sem_undo_processes, 120, 0),
    MPQT(test_sem_threads, 120, 1),
    MPQT(test_sem_holder_killed, 60, 0),
    MPQT(test_sem_undo_journal_rollback, 10, 0),
    MPQT(test_sem_undo_table_full, 30, 0),
    MPQT(test_sem_undo_reclaim_by_tries, 60, 0),
    MPQT(test_sem_undo_timeouts_honoured, 60, 0),
    MPQT(test_cond_basic, 10, 0),
    MPQT(test_cond_notify_counts_and_order, 60, 0),
    MPQT(test_cond_dead_waiter_skipped, 60, 0),
    MPQT(test_cond_notified_waiter_dies, 60, 0),
    MPQT(test_cond_relock_owner_dead, 60, 0),
    MPQT(test_cond_wait_for, 60, 0),
    MPQT(test_cond_table_full, 60, 0),
    MPQT(test_cond_threads_bounded_buffer, 120, 1),
    MPQT(test_barrier_basic, 10, 0),
    MPQT(test_barrier_processes, 120, 0),
    MPQT(test_barrier_threads, 120, 1),
    MPQT(test_barrier_party_killed, 60, 0),
    MPQT(test_barrier_abort_and_reset_wake, 60, 0),
    MPQT(test_barrier_history, 10, 0),
    MPQT(test_rlock, 30, 0),
    MPQT(test_mutex_locked_keeps_owner_dead, 30, 0),
    MPQT(test_rlock_other_thread_unlock_refused, 10, 0), /* TSan rightly objects */
    MPQT(test_joinable_basic, 10, 0),
    MPQT(test_joinable_processes, 120, 0),
    MPQT(test_joinable_dead_consumer, 60, 0),
    MPQT(test_joinable_threads, 120, 1),
    MPQT(test_sync_named_across_exec, 120, 0),
    MPQT(test_sync_corrupt_images, 120, 0),
    MPQT(test_sync_kill_storm, 240, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
