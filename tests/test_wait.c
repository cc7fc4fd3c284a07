/* Tests of mpq_wait, the one wait over connections, listeners, queues,
   processes and descriptors: every kind in one call; each kind made ready
   by another process while the wait blocks (a process SIGKILLed, a named
   queue fed by an exec'd program); readiness inside mpq beside the
   kernel's; timeouts; no starvation; bad input; a wait never takes a
   queue message (empty ones and packed batches included); a dead
   producer at the queue's tail; many queues; no watcher thread, no
   descriptor and no queue wake-up left behind - also when the waiting
   thread is cancelled. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

#include <dirent.h>

enum { K_CONN, K_LISTENER, K_QUEUE, K_FD, K_PROCESS, K_N };

/* One of each kind, none of them ready. */
typedef struct kinds {
    mpq_conn     *a, *a_peer;    /* wait on a                              */
    mpq_listener *l;
    char          path[108];
    mpq_queue    *q;
    int           pf[2];         /* wait on pf[0]                          */
    mpq_process   p;             /* a child that sleeps until killed       */
    mpq_waitable  w[K_N];
} kinds;

static int sleeper(void *arg)
{
    (void)arg;
    for (;;) pause();
    return 0;
}

static void kinds_open(kinds *k)
{
    mpq_waitable w[K_N] = { MPQ_WAIT_CONN(NULL), MPQ_WAIT_LISTENER(NULL), MPQ_WAIT_QUEUE(NULL),
                            MPQ_WAIT_FD(-1), MPQ_WAIT_PROCESS(NULL) };
    memset(k, 0, sizeof *k);
    CHECK_OK(mpq_pipe(&k->a, &k->a_peer, 1));
    snprintf(k->path, sizeof k->path, "/tmp/mpqt-wait-%ld", (long)getpid());
    unlink(k->path);   /* left by a test killed before its close had this pid */
    CHECK_OK(mpq_listener_open(&k->l, k->path));
    CHECK_OK(mpq_queue_create(&k->q, &(mpq_queue_config){ .capacity = 64, .max_msg = 64 }));
    CHECK_OK(pipe(k->pf));
    CHECK_OK(mpq_process_start(&k->p, sleeper, NULL));
    memcpy(k->w, w, sizeof w);
    k->w[K_CONN].obj = k->a;
    k->w[K_LISTENER].obj = k->l;
    k->w[K_QUEUE].obj = k->q;
    k->w[K_FD].fd = k->pf[0];
    k->w[K_PROCESS].obj = &k->p;
}

static void kinds_close(kinds *k)
{
    mpq_process_kill(&k->p, SIGKILL);
    mpq_process_join(&k->p, 10000);
    mpq_conn_close(k->a);
    mpq_conn_close(k->a_peer);
    mpq_listener_close(k->l);
    mpq_queue_close(k->q);
    close(k->pf[0]);
    close(k->pf[1]);
}

/* Makes kind `which` ready (from whichever process calls it). */
static int kinds_trigger(kinds *k, int which)
{
    mpq_conn *c;
    switch (which) {
    case K_CONN: return mpq_conn_send(k->a_peer, "m", 1);
    case K_LISTENER:
        if (mpq_client(&c, k->path) != 0) return 1;
        mpq_conn_close(c);   /* still waiting to be accepted */
        return 0;
    case K_QUEUE: return mpq_queue_put(k->q, "m", 1, 0);
    case K_FD: return write(k->pf[1], "x", 1) == 1 ? 0 : 1;
    default: return kill(k->p.pid, SIGKILL);
    }
}

/* Takes back what made kind `which` ready (the process cannot be). */
static void kinds_reset(kinds *k, int which)
{
    mpq_conn *c;
    char buf[8];
    size_t len;
    switch (which) {
    case K_CONN: CHECK_OK(mpq_conn_recv(k->a, buf, sizeof buf, &len, 0)); break;
    case K_LISTENER: CHECK_OK(mpq_listener_accept(k->l, &c, 0)); mpq_conn_close(c); break;
    case K_QUEUE: CHECK_OK(mpq_queue_get(k->q, buf, sizeof buf, &len, 0)); break;
    case K_FD: CHECK_EQ(read(k->pf[0], buf, 1), 1); break;
    default: break;
    }
}

/* The waits that another process's action must end wait for ever: a
   wake-up that never comes fails the test by its timeout, rather than
   passing late when a deadline's last look finds what the wake-up
   missed. */

static int count_ready(const mpq_waitable *w, size_t n)
{
    size_t i;
    int c = 0;
    for (i = 0; i < n; i++) c += w[i].ready;
    return c;
}

/* Entries of /proc/self/task (threads) or /proc/self/fd (descriptors). */
static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Threads of this process, once those that were joined have left
   /proc: a joined thread's entry can outlive its join for a moment (the
   kernel wakes the joiner before it releases the task). Bounded. */
static int threads_settled(int want)
{
    int64_t end = mpqt_ms() + 10000;
    int n;
    while ((n = count_dir("/proc/self/task")) > want && mpqt_ms() < end) mpqt_pause();
    return n;
}

static void *note_tid(void *arg)
{
    *(long *)arg = (long)syscall(SYS_gettid);
    return NULL;
}

/* This process's threads before a test starts any: counted after one
   thread has come and gone (and left /proc), so that a runtime that
   starts a thread of its own with the first one (ThreadSanitizer does)
   has done so. */
static int threads_baseline(void)
{
    pthread_t t;
    long tid = 0;
    char path[64];
    int64_t end = mpqt_ms() + 10000;
    CHECK_EQ(pthread_create(&t, NULL, note_tid, &tid), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    snprintf(path, sizeof path, "/proc/self/task/%ld", tid);
    while (access(path, F_OK) == 0 && mpqt_ms() < end) mpqt_pause();
    return count_dir("/proc/self/task");
}

/* --- every kind in one call -------------------------------------------------- */

/* All five kinds, each ready or not, in one wait: exactly the ready ones
   are reported; with nothing ready, timeout 0 and a bounded timeout give
   0 and clear every flag. */
static void test_wait_every_kind(void)
{
    kinds k;
    int which, i;
    int64_t t0;
    kinds_open(&k);
    for (i = 0; i < K_N; i++) k.w[i].ready = 7;
    CHECK_EQ(mpq_wait(k.w, K_N, 0), 0);
    CHECK_EQ(count_ready(k.w, K_N), 0);
    t0 = mpqt_ms();
    CHECK_EQ(mpq_wait(k.w, K_N, 50), 0);
    CHECK(mpqt_ms() - t0 >= 50);            /* the bound is kept, not cut short */
    CHECK_EQ(count_ready(k.w, K_N), 0);
    for (which = 0; which < K_N - 1; which++) {   /* one at a time */
        CHECK_OK(kinds_trigger(&k, which));
        CHECK_EQ(mpq_wait(k.w, K_N, 10000), 1);
        for (i = 0; i < K_N; i++) CHECK_EQ(k.w[i].ready, i == which);
        CHECK_EQ(mpq_wait(k.w, K_N, 0), 1);       /* still there: nothing was taken */
        kinds_reset(&k, which);
        CHECK_EQ(mpq_wait(k.w, K_N, 0), 0);
    }
    for (which = 0; which < K_N; which++) CHECK_OK(kinds_trigger(&k, which));   /* all at once */
    CHECK_EQ(mpq_wait(&k.w[K_PROCESS], 1, -1), 1);   /* the kill has landed (all its threads) */
    CHECK_EQ(mpq_wait(k.w, K_N, 10000), K_N);
    CHECK_EQ(count_ready(k.w, K_N), K_N);
    CHECK_EQ(mpq_wait(k.w, K_N, -1), K_N);        /* all ready: no wait at all */
    kinds_close(&k);
}

/* --- each kind wakes a blocked wait -------------------------------------------- */

struct trig { kinds *k; int which; pid_t waiter; };

static int trigger_when_blocked(void *arg)
{
    struct trig *t = (struct trig *)arg;
    mpqt_wait_sleeping(t->waiter, 10000);   /* acting earlier would only not block it */
    return kinds_trigger(t->k, t->which) == 0 ? 0 : 1;
}

/* The waiter blocks on all five; another process makes one ready: a
   message sent, a client connecting, a put, a byte written, and last the
   sleeping child SIGKILLed. The wait wakes with that one alone. */
static void test_wait_wakes_for_each_kind(void)
{
    kinds k;
    struct trig t;
    mpq_process tp;
    int which, i;
    kinds_open(&k);
    for (which = 0; which < K_N; which++) {
        t.k = &k;
        t.which = which;
        t.waiter = getpid();
        CHECK_OK(mpq_process_start(&tp, trigger_when_blocked, &t));
        CHECK_EQ(mpq_wait(k.w, K_N, -1), 1);
        for (i = 0; i < K_N; i++) CHECK_EQ(k.w[i].ready, i == which);
        MPQT_JOIN_OK(&tp, 0);
        kinds_reset(&k, which);
        if (which != K_PROCESS) CHECK_EQ(mpq_wait(k.w, K_N, 0), 0);
    }
    CHECK_OK(mpq_process_join(&k.p, 10000));
    CHECK_EQ(k.p.exitcode, -SIGKILL);
    CHECK_EQ(mpq_wait(&k.w[K_PROCESS], 1, 0), 1);   /* a joined process is ended */
    kinds_close(&k);
}

/* The same, the queue alone: the calling thread sleeps on it itself. */
static void test_wait_queue_alone_wakes(void)
{
    kinds k;
    struct trig t;
    mpq_process tp;
    kinds_open(&k);
    t.k = &k;
    t.which = K_QUEUE;
    t.waiter = getpid();
    CHECK_OK(mpq_process_start(&tp, trigger_when_blocked, &t));
    CHECK_EQ(mpq_wait(&k.w[K_QUEUE], 1, -1), 1);
    CHECK_EQ(k.w[K_QUEUE].ready, 1);
    MPQT_JOIN_OK(&tp, 0);
    CHECK_EQ(mpq_queue_count(k.q), 1);
    kinds_close(&k);
}

/* A queue opened by name has no eventfd: a program exec'd to put into it
   wakes a wait on it, alone and beside a descriptor. */
static void test_wait_named_queue_from_exec(void)
{
    char name[64], buf[16];
    mpq_queue *creator, *q;
    mpq_process peer;
    size_t len;
    int pf[2], round;
    mpqt_name(name, sizeof name, "wait");
    CHECK_OK(mpq_queue_create(&creator, &(mpq_queue_config){ .capacity = 8, .max_msg = 64, .name = name }));
    CHECK_OK(mpq_queue_open(&q, name));
    CHECK_ERR(mpq_queue_fileno(q), ENOTSUP);   /* no eventfd behind this handle */
    CHECK_OK(pipe(pf));
    for (round = 0; round < 2; round++) {
        mpq_waitable w[2] = { MPQ_WAIT_QUEUE(q), MPQ_WAIT_FD(pf[0]) };
        CHECK_EQ(mpq_wait(w, round ? 2 : 1, 0), 0);
        CHECK_OK(mpqt_start_helper(&peer, "queue_peer", name, "produce", "1", NULL));
        CHECK_EQ(mpq_wait(w, round ? 2 : 1, -1), 1);
        CHECK(w[0].ready == 1 && w[1].ready == 0);
        MPQT_JOIN_OK(&peer, 0);
        CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
        CHECK(len == 5 && memcmp(buf, "msg 0", 5) == 0);
    }
    close(pf[0]);
    close(pf[1]);
    mpq_queue_close(q);
    mpq_queue_close(creator);
    CHECK_OK(mpq_shm_unlink(name));
}

/* A process without a pidfd (as on Linux before 5.3: the handle's pidfd
   replaced by the error opening it would give) is looked at in slices:
   its death still ends the wait, and it is not reaped on the way. */
static void test_wait_process_without_pidfd(void)
{
    mpq_process p;
    int fds[2];
    CHECK_OK(pipe(fds));
    CHECK_OK(mpq_process_start(&p, sleeper, NULL));
    close(p.pidfd__);
    p.pidfd__ = -ENOSYS;
    {
        mpq_waitable w[2] = { MPQ_WAIT_PROCESS(&p), MPQ_WAIT_FD(fds[0]) };
        struct timespec c0, c1;
        CHECK_EQ(mpq_wait(w, 2, 0), 0);
        CHECK_EQ(mpq_wait(w, 2, 30), 0);
        /* Alone, with no descriptor to poll, it sleeps between looks: a
           300 ms wait costs this thread far less than 300 ms of CPU (a
           window to observe, not a sleep standing in for a signal). */
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        CHECK_EQ(mpq_wait(w, 1, 300), 0);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        CHECK((c1.tv_sec - c0.tv_sec) * 1000 + (c1.tv_nsec - c0.tv_nsec) / 1000000 < 100);
        CHECK_OK(kill(p.pid, SIGKILL));
        CHECK_EQ(mpq_wait(w, 2, -1), 1);
        CHECK(w[0].ready == 1 && w[1].ready == 0);
        CHECK_EQ(mpq_wait(w, 1, -1), 1);
    }
    CHECK_OK(mpq_process_join(&p, 10000));   /* its status was left for join */
    CHECK_EQ(p.exitcode, -SIGKILL);
    close(fds[0]);
    close(fds[1]);
}

/* The same queue twice beside a descriptor (one futex word twice in one
   futex_waitv): a put wakes the wait, and both entries say ready. */
static void test_wait_same_queue_twice(void)
{
    kinds k;
    struct trig t;
    mpq_process tp;
    kinds_open(&k);
    {
        mpq_waitable w[3] = { MPQ_WAIT_QUEUE(k.q), MPQ_WAIT_FD(k.pf[0]), MPQ_WAIT_QUEUE(k.q) };
        t.k = &k;
        t.which = K_QUEUE;
        t.waiter = getpid();
        CHECK_OK(mpq_process_start(&tp, trigger_when_blocked, &t));
        CHECK_EQ(mpq_wait(w, 3, -1), 2);
        CHECK(w[0].ready && !w[1].ready && w[2].ready);
        MPQT_JOIN_OK(&tp, 0);
    }
    kinds_close(&k);
}

/* Signals to the waiting thread (a handler without SA_RESTART, so its
   poll and futex calls see EINTR) neither end the wait early nor stretch
   its deadline: with a queue beside a descriptor (poll), and a queue
   alone (futex). */
static volatile sig_atomic_t usr1_seen;
static void on_usr1(int sig) { (void)sig; usr1_seen++; }

struct pester { kinds *k; pid_t waiter; int trigger; };

static int pester_then_put(void *arg)
{
    struct pester *ps = (struct pester *)arg;
    int i;
    mpqt_wait_sleeping(ps->waiter, 10000);
    for (i = 0; i < 50; i++) {
        if (kill(ps->waiter, SIGUSR1) != 0) return 1;
        mpqt_pause();
    }
    return ps->trigger ? kinds_trigger(ps->k, K_QUEUE) : 0;
}

static void test_wait_signals_are_retried(void)
{
    kinds k;
    struct pester ps;
    struct sigaction sa;
    mpq_process tp;
    int round;
#if defined(__i386__)
    /* Seen once: the i686 build under qemu-i386 died of SIGSEGV in this
       signal flood, where the x86-64, AArch64, ARMv7 and s390x builds
       under qemu pass; not seen natively, which this machine cannot run. */
    MPQT_SKIP_UNDER_QEMU("qemu-i386's signal delivery in this flood (SIGSEGV, i686 only)");
#endif
    int64_t t0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
    kinds_open(&k);
    for (round = 0; round < 4; round++) {
        mpq_waitable w[2] = { MPQ_WAIT_QUEUE(k.q), MPQ_WAIT_FD(k.pf[0]) };
        size_t n = round % 2 ? 1 : 2;
        ps.k = &k;
        ps.waiter = getpid();
        ps.trigger = round < 2;
        usr1_seen = 0;
        CHECK_OK(mpq_process_start(&tp, pester_then_put, &ps));
        if (ps.trigger) {
            CHECK_EQ(mpq_wait(w, n, -1), 1);
            CHECK_EQ(w[0].ready, 1);
            kinds_reset(&k, K_QUEUE);
        } else {
            t0 = mpqt_ms();
            CHECK_EQ(mpq_wait(w, n, 300), 0);
            CHECK(mpqt_ms() - t0 >= 300);
        }
        MPQT_JOIN_OK(&tp, 0);
        CHECK(usr1_seen > 0);
    }
    kinds_close(&k);
}

/* The process that polls a queue's descriptor (mpq_queue_fileno) may
   also wait on it with mpq_wait: the wait leaves the descriptor's state
   alone, and both see the put. */
static void test_wait_beside_queue_fileno(void)
{
    kinds k;
    struct trig t;
    mpq_process tp;
    int qfd;
    kinds_open(&k);
    CHECK((qfd = mpq_queue_fileno(k.q)) >= 0);
    CHECK(!mpqt_readable(qfd, 0));
    {
        mpq_waitable w[2] = { MPQ_WAIT_QUEUE(k.q), MPQ_WAIT_FD(k.pf[0]) };
        CHECK_EQ(mpq_wait(w, 2, 0), 0);
        t.k = &k;
        t.which = K_QUEUE;
        t.waiter = getpid();
        CHECK_OK(mpq_process_start(&tp, trigger_when_blocked, &t));
        CHECK_EQ(mpq_wait(w, 2, -1), 1);
        CHECK_EQ(w[0].ready, 1);
        MPQT_JOIN_OK(&tp, 0);
        CHECK(mpqt_readable(qfd, 10000));
        kinds_reset(&k, K_QUEUE);
        CHECK_EQ(mpq_wait(w, 2, 0), 0);
    }
    kinds_close(&k);
}

/* --- inside mpq beside the kernel; no starvation ---------------------------------- */

/* A connection with messages mpq has read ahead (nothing in the kernel),
   a queue with a message, and a descriptor readable in the kernel: one
   wait reports all three, and again, and again. */
static void test_wait_buffered_beside_kernel(void)
{
    mpq_conn *a, *a_peer;
    mpq_queue *q;
    int pf[2], i;
    char buf[16];
    size_t len;
    CHECK_OK(mpq_pipe(&a, &a_peer, 1));
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 8, .max_msg = 16 }));
    CHECK_OK(pipe(pf));
    for (i = 0; i < 4; i++) CHECK_OK(mpq_conn_send(a_peer, "aaaa", 4));
    CHECK_OK(mpq_conn_recv(a, buf, sizeof buf, &len, 10000));   /* reads all four ahead */
    CHECK(!mpqt_readable(mpq_conn_fileno(a), 0));
    CHECK_OK(mpq_queue_put(q, "q", 1, 0));
    CHECK_EQ(write(pf[1], "x", 1), 1);
    {
        mpq_waitable w[3] = { MPQ_WAIT_CONN(a), MPQ_WAIT_QUEUE(q), MPQ_WAIT_FD(pf[0]) };
        for (i = 0; i < 3; i++) {
            CHECK_EQ(mpq_wait(w, 3, 10000), 3);
            CHECK_EQ(count_ready(w, 3), 3);
        }
        CHECK_EQ(read(pf[0], buf, 1), 1);
        CHECK_EQ(mpq_wait(w, 3, 10000), 2);
        CHECK(w[0].ready && w[1].ready && !w[2].ready);
    }
    mpq_conn_close(a);
    mpq_conn_close(a_peer);
    mpq_queue_close(q);
    close(pf[0]);
    close(pf[1]);
}

static int put_one(void *arg)
{
    return mpq_queue_put((mpq_queue *)arg, "late", 4, 10000) == 0 ? 0 : 1;
}

/* A server loop over a busy queue (always a message) and a quiet
   connection; then over a busy connection (always one read ahead) and a
   quiet queue. Whatever the quiet one receives is reported by the very
   next wait, never after the busy one runs dry. */
static void test_wait_no_starvation(void)
{
    mpq_conn *b, *b_peer;
    mpq_queue *q, *quiet;
    mpq_process p;
    char buf[64];
    size_t len;
    int round, seen = 0, i;
    CHECK_OK(mpq_pipe(&b, &b_peer, 1));
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 1024, .max_msg = 16 }));
    CHECK_OK(mpq_queue_create(&quiet, &(mpq_queue_config){ .capacity = 4, .max_msg = 16 }));
    for (i = 0; i < 1000; i++) CHECK_OK(mpq_queue_put(q, "busy", 4, 0));
    {
        mpq_waitable w[2] = { MPQ_WAIT_QUEUE(q), MPQ_WAIT_CONN(b) };
        for (round = 0; round < 1000; round++) {
            if (round == 500) {
                CHECK_OK(mpq_conn_send(b_peer, "b", 1));
                CHECK(mpqt_readable(mpq_conn_fileno(b), 10000));
            }
            CHECK(mpq_wait(w, 2, 10000) >= 1);
            CHECK_EQ(w[0].ready, 1);
            CHECK_EQ(w[1].ready, round == 500);
            if (w[1].ready) {
                CHECK_OK(mpq_conn_recv(b, buf, sizeof buf, &len, 0));
                seen++;
            }
            CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
        }
        CHECK_EQ(seen, 1);
    }
    /* Reverse: the connection is busy inside mpq, the quiet queue gets one
       message from another process. */
    for (i = 0; i < 200; i++) CHECK_OK(mpq_conn_send(b_peer, "busy", 4));   /* fits the socket */
    CHECK_OK(mpq_conn_recv(b, buf, sizeof buf, &len, 10000));
    {
        mpq_waitable w[2] = { MPQ_WAIT_CONN(b), MPQ_WAIT_QUEUE(quiet) };
        seen = 0;
        for (round = 0; round < 150; round++) {
            if (round == 50) {
                CHECK_OK(mpq_process_start(&p, put_one, quiet));
                MPQT_JOIN_OK(&p, 0);   /* the message is in before this round's wait */
            }
            CHECK(mpq_wait(w, 2, 10000) >= 1);
            CHECK_EQ(w[0].ready, 1);
            CHECK_EQ(w[1].ready, round == 50);
            if (w[1].ready) {
                CHECK_OK(mpq_queue_get(quiet, buf, sizeof buf, &len, 0));
                CHECK(len == 4 && memcmp(buf, "late", 4) == 0);
                seen++;
            }
            CHECK_OK(mpq_conn_recv(b, buf, sizeof buf, &len, 10000));
        }
        CHECK_EQ(seen, 1);
    }
    mpq_conn_close(b);
    mpq_conn_close(b_peer);
    mpq_queue_close(q);
    mpq_queue_close(quiet);
}

/* --- bad input ------------------------------------------------------------------ */

static void test_wait_bad_input(void)
{
    kinds k;
    mpq_conn *r, *s;
    mpq_process unstarted = MPQ_PROCESS_INIT;
    int pf[2], closed_fd;
    kinds_open(&k);
    CHECK_ERR(mpq_wait(NULL, 1, 0), EINVAL);
    CHECK_ERR(mpq_wait(k.w, 0, 0), EINVAL);
    {
        mpq_waitable *many = (mpq_waitable *)calloc(4097, sizeof *many);
        size_t i;
        CHECK(many != NULL);
        for (i = 0; i < 4097; i++) {
            many[i].kind = MPQ_WAIT_KIND_FD;
            many[i].fd = k.pf[0];
        }
        CHECK_ERR(mpq_wait(many, 4097, 0), EINVAL);
        CHECK_EQ(mpq_wait(many, 4096, 0), 0);       /* the most it takes */
        free(many);
    }
    {
        mpq_waitable w[2] = { MPQ_WAIT_FD(k.pf[0]), MPQ_WAIT_FD(k.pf[0]) };
        int bad[] = { 0, 6, -1, 1000 };
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            w[1].kind = bad[i];
            w[1].obj = k.q;
            CHECK_ERR(mpq_wait(w, 2, 0), EINVAL);
        }
        for (i = MPQ_WAIT_KIND_CONN; i <= MPQ_WAIT_KIND_PROCESS; i++) {
            w[1].kind = (int)i;
            w[1].obj = NULL;
            CHECK_ERR(mpq_wait(w, 2, 0), EINVAL);
        }
        w[1] = (mpq_waitable)MPQ_WAIT_FD(-1);
        CHECK_ERR(mpq_wait(w, 2, 0), EBADF);
        w[1] = (mpq_waitable)MPQ_WAIT_PROCESS(&unstarted);
        CHECK_ERR(mpq_wait(w, 2, 0), EINVAL);
        CHECK_OK(mpq_pipe(&r, &s, 0));
        w[1] = (mpq_waitable)MPQ_WAIT_CONN(s);        /* a send-only end */
        CHECK_ERR(mpq_wait(w, 2, 0), EBADF);
        w[1] = (mpq_waitable)MPQ_WAIT_CONN(r);
        CHECK_EQ(mpq_wait(w, 2, 0), 0);
        mpq_conn_close(r);
        mpq_conn_close(s);
        CHECK_OK(pipe(pf));                           /* a descriptor not open */
        close(pf[1]);
        closed_fd = pf[0];
        close(closed_fd);
        w[1] = (mpq_waitable)MPQ_WAIT_FD(closed_fd);
        CHECK_ERR(mpq_wait(w, 2, 0), EBADF);
        CHECK_ERR(mpq_wait(w, 2, 10000), EBADF);      /* at once, not at the deadline */
        /* A bad entry is refused before anything is looked at: a ready
           queue beside it changes nothing. */
        CHECK_OK(mpq_queue_put(k.q, "m", 1, 0));
        w[0] = (mpq_waitable)MPQ_WAIT_QUEUE(k.q);
        w[1].kind = 99;
        CHECK_ERR(mpq_wait(w, 2, 0), EINVAL);
        CHECK_EQ(mpq_queue_count(k.q), 1);
    }
    kinds_close(&k);
}

/* --- a wait takes nothing from a queue ---------------------------------------- */

/* A message, an empty message (a get with no room takes it: the wait must
   not), and a packed batch: a hundred waits later they are all there, in
   order. A closed queue is ready while it holds messages and once it is
   drained (get: -EPIPE at once). */
static void test_wait_never_takes_a_message(void)
{
    mpq_queue *q;
    const void *msgs[3] = { "p1", "p2", "p3" };
    size_t lens[3] = { 2, 2, 2 }, len;
    const char *want[5] = { "a", "", "p1", "p2", "p3" };
    char buf[16];
    int i;
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 8, .max_msg = 64 }));
    {
        mpq_waitable w[1] = { MPQ_WAIT_QUEUE(q) };
        CHECK_OK(mpq_queue_put(q, "", 0, 0));
        CHECK_EQ(mpq_wait(w, 1, 0), 1);              /* an empty message alone */
        CHECK_OK(mpq_queue_get(q, buf, 0, &len, 0)); /* ... is what a get with no room takes */
        CHECK_EQ(len, 0);
        CHECK_EQ(mpq_wait(w, 1, 0), 0);
        CHECK_OK(mpq_queue_put(q, "a", 1, 0));
        CHECK_OK(mpq_queue_put(q, "", 0, 0));
        CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 3, 0), 3);
        CHECK_EQ(mpq_queue_count(q), 3);              /* the batch went packed into one slot */
        for (i = 0; i < 100; i++) CHECK_EQ(mpq_wait(w, 1, i % 2 ? 0 : 1000), 1);
        CHECK_EQ(mpq_queue_count(q), 3);
        for (i = 0; i < 5; i++) {
            CHECK_EQ(mpq_wait(w, 1, 0), 1);
            CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
            CHECK(len == strlen(want[i]) && memcmp(buf, want[i], len) == 0);
        }
        CHECK_EQ(mpq_wait(w, 1, 0), 0);
        CHECK_OK(mpq_queue_put(q, "last", 4, 0));
        CHECK_OK(mpq_queue_shutdown(q, 0));
        CHECK_EQ(mpq_wait(w, 1, 0), 1);              /* closed, one left */
        CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
        CHECK_EQ(mpq_wait(w, 1, 10000), 1);          /* closed and drained: the end */
        CHECK_ERR(mpq_queue_get(q, buf, sizeof buf, &len, 0), EPIPE);
    }
    mpq_queue_close(q);
}

/* A packed batch one of whose messages another consumer peeked: peek
   took that one out as a copy, so the rest is there to take - ready -
   and once it is taken, nothing is. */
static void test_wait_packed_message_held(void)
{
    mpq_queue *q;
    const void *msgs[2] = { "p1", "p2" };
    size_t lens[2] = { 2, 2 }, len;
    const void *held;
    char buf[16];
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 8, .max_msg = 64 }));
    CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 2, 0), 2);
    {
        mpq_waitable w[1] = { MPQ_WAIT_QUEUE(q) };
        CHECK_OK(mpq_queue_peek(q, &held, &len, 0));   /* a copy: p2 is free to take */
        CHECK_EQ(mpq_wait(w, 1, 0), 1);
        CHECK_OK(mpq_queue_release(q, held));
        CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
        CHECK(len == 2 && memcmp(buf, "p2", 2) == 0);
        CHECK_EQ(mpq_wait(w, 1, 0), 0);
    }
    mpq_queue_close(q);
}

/* --- a dead producer at the tail ------------------------------------------------ */

static int reserve_and_stop(void *arg)
{
    mpq_queue *q = (mpq_queue *)arg;
    void *buf;
    if (mpq_queue_reserve(q, &buf, 0) != 0) return 1;
    for (;;) pause();   /* killed holding the slot */
    return 0;
}

/* A producer killed holding the slot at the tail, a message put behind
   it: a get would take that slot over after MPQ__STUCK_MS and find the
   message; so does the wait (alone, and beside a descriptor). */
static void test_wait_dead_producer_at_the_tail(void)
{
    int round;
    for (round = 0; round < 2; round++) {
        mpq_queue *q;
        mpq_process p;
        char buf[16];
        size_t len;
        int pf[2];
        CHECK_OK(pipe(pf));
        CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 8, .max_msg = 16 }));
        CHECK_OK(mpq_process_start(&p, reserve_and_stop, q));
        while (mpq_queue_count(q) == 0 && mpq_process_alive(&p) == 1) mpqt_pause();
        CHECK_OK(mpq_process_kill(&p, SIGKILL));
        CHECK_OK(mpq_process_join(&p, 10000));
        CHECK_OK(mpq_queue_put(q, "b", 1, 0));
        {
            mpq_waitable w[2] = { MPQ_WAIT_QUEUE(q), MPQ_WAIT_FD(pf[0]) };
            CHECK_EQ(mpq_wait(w, round ? 2 : 1, -1), 1);
            CHECK_EQ(w[0].ready, 1);
        }
        CHECK_OK(mpq_queue_get(q, buf, sizeof buf, &len, 0));
        CHECK(len == 1 && buf[0] == 'b');
        mpq_queue_close(q);
        close(pf[0]);
        close(pf[1]);
    }
}

/* --- many queues ----------------------------------------------------------------- */

struct many { mpq_queue **q; int which; pid_t waiter; };

static int put_into_one(void *arg)
{
    struct many *m = (struct many *)arg;
    mpqt_wait_sleeping(m->waiter, 10000);
    return mpq_queue_put(m->q[m->which], "m", 1, 0) == 0 ? 0 : 1;
}

/* 300 queues (more than one futex_waitv holds) and a descriptor: a put
   into the 200th from another process wakes the wait; then the same
   without the descriptor. */
static void test_wait_many_queues(void)
{
    enum { NQ = 300 };
    mpq_queue *q[NQ];
    mpq_waitable w[NQ + 1];
    struct many m;
    mpq_process p;
    char buf[8];
    size_t len;
    int pf[2], i, round;
    CHECK_OK(pipe(pf));
    for (i = 0; i < NQ; i++) {
        CHECK_OK(mpq_queue_create(&q[i], &(mpq_queue_config){ .capacity = 2, .max_msg = 8 }));
        w[i] = (mpq_waitable)MPQ_WAIT_QUEUE(q[i]);
    }
    w[NQ] = (mpq_waitable)MPQ_WAIT_FD(pf[0]);
    for (round = 0; round < 2; round++) {
        size_t n = round ? NQ : NQ + 1;
        m.q = q;
        m.which = round ? 250 : 199;
        m.waiter = getpid();
        CHECK_EQ(mpq_wait(w, n, 0), 0);
        CHECK_OK(mpq_process_start(&p, put_into_one, &m));
        CHECK_EQ(mpq_wait(w, n, -1), 1);
        for (i = 0; i < (int)n; i++) CHECK_EQ(w[i].ready, i == m.which);
        MPQT_JOIN_OK(&p, 0);
        CHECK_OK(mpq_queue_get(q[m.which], buf, sizeof buf, &len, 0));
    }
    for (i = 0; i < NQ; i++) mpq_queue_close(q[i]);
    close(pf[0]);
    close(pf[1]);
}

/* --- nothing left behind ---------------------------------------------------------- */

struct early { int fd; pid_t waiter; };

static int write_when_blocked(void *arg)
{
    struct early *e = (struct early *)arg;
    mpqt_wait_sleeping(e->waiter, 10000);
    return write(e->fd, "x", 1) == 1 ? 0 : 1;
}

/* A wait over two queues and a descriptor ends early, for the descriptor,
   and by timeout: afterwards the process has as many threads and
   descriptors as before, and - where futex_waitv stops the watcher - the
   queues' eventcounts were not signalled (nobody sleeping on them in
   another process was woken for nothing). */
static void test_wait_leaves_nothing_behind(void)
{
    mpq_queue *q[2];
    struct early e;
    mpq_process p;
    int pf[2], threads, fds, i, round;
    uint32_t ec[2];
    char c;
    CHECK_OK(pipe(pf));
    for (i = 0; i < 2; i++) CHECK_OK(mpq_queue_create(&q[i], &(mpq_queue_config){ .capacity = 4, .max_msg = 8 }));
    threads = threads_baseline();
    fds = count_dir("/proc/self/fd");
    CHECK(threads >= 1 && fds >= 3);
    for (round = 0; round < 6; round++) {
        mpq_waitable w[3] = { MPQ_WAIT_QUEUE(q[0]), MPQ_WAIT_QUEUE(q[1]), MPQ_WAIT_FD(pf[0]) };
        for (i = 0; i < 2; i++) ec[i] = mpq__load32(&q[i]->h->data_ec, MPQ__SEQ_CST) | 1u;
        if (round % 2 == 0) {
            e.fd = pf[1];
            e.waiter = getpid();
            CHECK_OK(mpq_process_start(&p, write_when_blocked, &e));
            CHECK_EQ(mpq_wait(w, 3, -1), 1);
            CHECK(w[2].ready && !w[0].ready && !w[1].ready);
            MPQT_JOIN_OK(&p, 0);
            CHECK_EQ(read(pf[0], &c, 1), 1);
        } else {
            CHECK_EQ(mpq_wait(w, 3, 20), 0);
        }
        CHECK_EQ(threads_settled(threads), threads);
        CHECK_EQ(count_dir("/proc/self/fd"), fds);
        if (mpq__have_futex_waitv())
            for (i = 0; i < 2; i++) CHECK_EQ(mpq__load32(&q[i]->h->data_ec, MPQ__SEQ_CST) | 1u, ec[i]);
    }
    for (i = 0; i < 2; i++) mpq_queue_close(q[i]);
    close(pf[0]);
    close(pf[1]);
}

struct cancel_arg { mpq_waitable *w; int rc; };

static void *wait_forever(void *arg)
{
    struct cancel_arg *a = (struct cancel_arg *)arg;
    a->rc = mpq_wait(a->w, 3, -1);
    return NULL;
}

/* A thread blocked in mpq_wait (watchers running) is cancelled: its
   watchers are stopped and joined, their eventfd closed. */
static void test_wait_cancelled_thread(void)
{
    mpq_queue *q[2];
    pthread_t t;
    struct cancel_arg a;
    void *res = NULL;
    int pf[2], threads, fds, i;
    int64_t end;
    CHECK_OK(pipe(pf));
    for (i = 0; i < 2; i++) CHECK_OK(mpq_queue_create(&q[i], &(mpq_queue_config){ .capacity = 4, .max_msg = 8 }));
    threads = threads_baseline();
    fds = count_dir("/proc/self/fd");
    {
        mpq_waitable w[3] = { MPQ_WAIT_QUEUE(q[0]), MPQ_WAIT_QUEUE(q[1]), MPQ_WAIT_FD(pf[0]) };
        a.w = w;
        a.rc = 12345;
        CHECK_EQ(pthread_create(&t, NULL, wait_forever, &a), 0);
        end = mpqt_ms() + 10000;       /* the waiter and its watcher(s) are up */
        while (count_dir("/proc/self/task") < threads + 2 && mpqt_ms() < end) mpqt_pause();
        CHECK(count_dir("/proc/self/task") >= threads + 2);
        CHECK_EQ(pthread_cancel(t), 0);
        CHECK_EQ(pthread_join(t, &res), 0);
        CHECK(res == PTHREAD_CANCELED);
        CHECK_EQ(a.rc, 12345);
    }
    CHECK_EQ(threads_settled(threads), threads);
    CHECK_EQ(count_dir("/proc/self/fd"), fds);
    CHECK_OK(mpq_queue_put(q[1], "m", 1, 0));   /* the queues work on */
    {
        mpq_waitable w[3] = { MPQ_WAIT_QUEUE(q[0]), MPQ_WAIT_QUEUE(q[1]), MPQ_WAIT_FD(pf[0]) };
        CHECK_EQ(mpq_wait(w, 3, 10000), 1);
        CHECK_EQ(w[1].ready, 1);
    }
    for (i = 0; i < 2; i++) mpq_queue_close(q[i]);
    close(pf[0]);
    close(pf[1]);
}

/* Threads of one process wait on the same queue beside a descriptor
   while a consumer thread takes what comes: every wait ends (nothing
   lost, nothing hangs), and no message is taken twice or lost. */
struct race { mpq_queue *q; int fd; int got; };

static void *race_waiter(void *arg)
{
    struct race *r = (struct race *)arg;
    int i;
    for (i = 0; i < 200; i++) {
        mpq_waitable w[2] = { MPQ_WAIT_QUEUE(r->q), MPQ_WAIT_FD(r->fd) };
        if (mpq_wait(w, 2, 5) < 0) return (void *)1;
    }
    return NULL;
}

static void *race_consumer(void *arg)
{
    struct race *r = (struct race *)arg;
    char buf[8];
    size_t len;
    while (mpq_queue_get(r->q, buf, sizeof buf, &len, 10000) == 0) r->got++;
    return NULL;
}

static void test_wait_threads_beside_consumers(void)
{
    struct race r;
    pthread_t wt[2], ct;
    void *res;
    int pf[2], i;
    CHECK_OK(pipe(pf));
    CHECK_OK(mpq_queue_create(&r.q, &(mpq_queue_config){ .capacity = 16, .max_msg = 8 }));
    r.fd = pf[0];
    r.got = 0;
    CHECK_EQ(pthread_create(&ct, NULL, race_consumer, &r), 0);
    for (i = 0; i < 2; i++) CHECK_EQ(pthread_create(&wt[i], NULL, race_waiter, &r), 0);
    for (i = 0; i < 2000; i++) CHECK_OK(mpq_queue_put(r.q, "m", 1, 10000));
    for (i = 0; i < 2; i++) {
        CHECK_EQ(pthread_join(wt[i], &res), 0);
        CHECK(res == NULL);
    }
    CHECK_OK(mpq_queue_shutdown(r.q, 0));
    CHECK_EQ(pthread_join(ct, NULL), 0);
    CHECK_EQ(r.got, 2000);
    mpq_queue_close(r.q);
    close(pf[0]);
    close(pf[1]);
}

/* mpq_conn_wait is mpq_wait over connections: its own errors stay. */
static void test_wait_conn_wait_on_top(void)
{
    mpq_conn *r[20], *s[20];
    int ready[20], i;
    for (i = 0; i < 20; i++) CHECK_OK(mpq_pipe(&r[i], &s[i], 0));
    CHECK_EQ(mpq_conn_wait(r, 20, ready, 0), 0);
    CHECK_OK(mpq_conn_send(s[17], "x", 1));
    CHECK_EQ(mpq_conn_wait(r, 20, ready, 10000), 1);
    for (i = 0; i < 20; i++) CHECK_EQ(ready[i], i == 17);
    CHECK_ERR(mpq_conn_wait(s, 20, ready, 0), EINVAL);   /* send-only: as before */
    CHECK_ERR(mpq_conn_wait(r, 0, ready, 0), EINVAL);
    CHECK_ERR(mpq_conn_wait(r, 20, NULL, 0), EINVAL);
    for (i = 0; i < 20; i++) {
        mpq_conn_close(r[i]);
        mpq_conn_close(s[i]);
    }
}

static const mpqt_case cases[] = {
    MPQT(test_wait_every_kind, 30, 1),
    MPQT(test_wait_wakes_for_each_kind, 60, 1),
    MPQT(test_wait_queue_alone_wakes, 30, 0),
    MPQT(test_wait_named_queue_from_exec, 30, 1),
    MPQT(test_wait_process_without_pidfd, 30, 0),
    MPQT(test_wait_same_queue_twice, 30, 1),
    MPQT(test_wait_signals_are_retried, 30, 1),
    MPQT(test_wait_beside_queue_fileno, 30, 1),
    MPQT(test_wait_buffered_beside_kernel, 30, 1),
    MPQT(test_wait_no_starvation, 60, 1),
    MPQT(test_wait_bad_input, 30, 0),
    MPQT(test_wait_never_takes_a_message, 30, 0),
    MPQT(test_wait_packed_message_held, 30, 0),
    MPQT(test_wait_dead_producer_at_the_tail, 30, 1),
    MPQT(test_wait_many_queues, 60, 1),
    MPQT(test_wait_leaves_nothing_behind, 30, 1),
    MPQT(test_wait_cancelled_thread, 30, 1),
    MPQT(test_wait_threads_beside_consumers, 60, 1),
    MPQT(test_wait_conn_wait_on_top, 30, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
