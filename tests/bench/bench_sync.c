/* bench_sync - mpq's Event, Semaphore, Condition and Barrier beside what a
   C programmer has for the same jobs between processes (eventfd, pthread
   process-shared condition variables and barriers, POSIX sem_t, System V
   semaphores with and without SEM_UNDO), and beside Python's
   multiprocessing, which is what mpq mirrors (when python3 is on PATH).

   Two processes pinned to two CPUs for the round trips; everything is
   measured in this one run and the ratios are what count. Every run is
   bounded in count and in time: a run that goes past its cap is abandoned
   (its figure reported as failed), a helper that does not finish is
   killed, and a run stuck where no signal reaches ends the benchmark. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include "bench.h"

#include <errno.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/time.h>

enum {
    RUNS = 5,          /* round trips: runs per figure (median)          */
    SEM_RUNS = 3,      /* semaphores and barriers: runs per figure       */
    WARMUP = 100,      /* round trips before the clock starts            */
    PP_MAX = 200000,   /* round trips per run, at most                   */
    UN_MAX = 20000000, /* uncontended acquire+release per run, at most   */
    WAIT_MS = 2000,    /* every wait of a measured loop is bounded so    */
    NOTE = 160
};
#define PP_CAP 0.2     /* seconds of timed round trips per run           */
#define UN_CAP 0.15    /* seconds of uncontended ops per run             */
#define CO_CAP 0.3     /* seconds of contended ops per run               */
#define BAR_CAP 0.3    /* seconds of barrier cycles per run              */
#define RUN_LIMIT 5.0  /* a run still going after this is abandoned      */
#define GRACE 2.0      /* seconds a helper has to exit before SIGKILL    */

/* --- shared state of a run ---------------------------------------------- */

struct shared {
    pthread_mutex_t pm;
    pthread_cond_t pc[2];
    pthread_barrier_t pb;
    sem_t sem;
    uint32_t flag[2];   /* condition ping-pong: one per direction */
    uint32_t stop, stop_at, ready, go;
    long counter;       /* bumped inside the semaphore: lost updates show */
    long ops[4];
    int err[4];
    long cycles;
    double secs;
};

static struct shared *sh;

static int g_semid = -1;   /* a System V semaphore to remove on the way out */

static void remove_semid(void)
{
    if (g_semid >= 0) semctl(g_semid, 0, IPC_RMID);
}

/* Waits (yielding) until `n` helpers said they are ready, at most 5 s. */
static int await_ready(uint32_t n)
{
    double t0 = bench_now();
    while (mpq__load32(&sh->ready, MPQ__ACQUIRE) != n) {
        if (bench_now() - t0 > 5) return -1;
        sched_yield();
    }
    return 0;
}

static void helper_ready(void)
{
    mpq__add32(&sh->ready, 1, MPQ__RELEASE);
    while (!mpq__load32(&sh->go, MPQ__ACQUIRE)) sched_yield();
}

static const char *errtext(int rc)
{
    if (rc == -EINTR && bench_expired) return "time cap hit";
    return strerror(rc < 0 ? -rc : rc);
}

/* --- ping-pong: two processes, a signal each way per round trip ----------

   Side A (this process, CPU 0) signals on channel 0 and waits on channel
   1; side B (a helper, CPU 1) waits on 0 and answers on 1. `await`
   consumes the signal (clears the event, reads the eventfd, resets the
   flag). */

typedef struct pp_impl {
    const char *name;
    int  (*setup)(void);
    void (*teardown)(void);
    int  (*enter)(void);   /* each side, before its round trips */
    void (*leave)(void);
    int  (*ping)(int ch);
    int  (*await)(int ch);
} pp_impl;

static int none(void) { return 0; }
static void none_v(void) {}

/* mpq_event: two events; the waiter clears what it waited for. */
static mpq_event *g_ev[2];
static int ev_setup(void)
{
    int rc = mpq_event_create(&g_ev[0], NULL);
    if (rc == 0 && (rc = mpq_event_create(&g_ev[1], NULL)) != 0) mpq_event_close(g_ev[0]);
    return rc;
}
static void ev_teardown(void) { mpq_event_close(g_ev[0]); mpq_event_close(g_ev[1]); }
static int ev_ping(int ch) { return mpq_event_set(g_ev[ch]); }
static int ev_await(int ch)
{
    int rc = mpq_event_wait(g_ev[ch], WAIT_MS);
    return rc != 0 ? rc : mpq_event_clear(g_ev[ch]);
}

/* eventfd: two, blocking read and write of the counter. */
static int g_efd[2] = { -1, -1 };
static int efd_setup(void)
{
    if ((g_efd[0] = eventfd(0, 0)) < 0) return -errno;
    if ((g_efd[1] = eventfd(0, 0)) < 0) { int e = errno; close(g_efd[0]); return -e; }
    return 0;
}
static void efd_teardown(void) { close(g_efd[0]); close(g_efd[1]); }
static int efd_ping(int ch)
{
    uint64_t one = 1;
    for (;;) {
        ssize_t r = write(g_efd[ch], &one, sizeof one);
        if (r == (ssize_t)sizeof one) return 0;
        if (r < 0 && errno == EINTR && !bench_expired) continue;
        return r < 0 ? -errno : -EIO;
    }
}
static int efd_await(int ch)
{
    uint64_t v;
    for (;;) {
        ssize_t r = read(g_efd[ch], &v, sizeof v);
        if (r == (ssize_t)sizeof v) return 0;
        if (r < 0 && errno == EINTR && !bench_expired) continue;
        return r < 0 ? -errno : -EIO;
    }
}

/* pthread: one process-shared mutex, a condition and a flag per
   direction; each side holds the mutex except while it waits. */
static int pc_setup(void)
{
    pthread_mutexattr_t ma;
    pthread_condattr_t ca;
    int rc, i;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    rc = pthread_mutex_init(&sh->pm, &ma);
    pthread_mutexattr_destroy(&ma);
    if (rc) return -rc;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (i = 0; i < 2 && rc == 0; i++) rc = pthread_cond_init(&sh->pc[i], &ca);
    pthread_condattr_destroy(&ca);
    return -rc;
}
static void pc_teardown(void)
{
    pthread_cond_destroy(&sh->pc[0]);
    pthread_cond_destroy(&sh->pc[1]);
    pthread_mutex_destroy(&sh->pm);
}
static int pc_enter(void) { return -pthread_mutex_lock(&sh->pm); }
static void pc_leave(void) { pthread_mutex_unlock(&sh->pm); }
static int pc_ping(int ch)
{
    sh->flag[ch] = 1;
    return -pthread_cond_signal(&sh->pc[ch]);
}
static int pc_await(int ch)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    while (!sh->flag[ch]) {
        int rc = pthread_cond_timedwait(&sh->pc[ch], &sh->pm, &dl);
        if (rc != 0 && !sh->flag[ch]) return -rc;
    }
    sh->flag[ch] = 0;
    return 0;
}

/* mpq_cond: the same protocol with two mpq_conds and an mpq_mutex. */
static mpq_mutex *g_mx;
static mpq_cond *g_cv[2];
static int cv_setup(void)
{
    int rc = mpq_mutex_create(&g_mx, NULL);
    if (rc != 0) return rc;
    if ((rc = mpq_cond_create(&g_cv[0], NULL)) != 0) { mpq_mutex_close(g_mx); return rc; }
    if ((rc = mpq_cond_create(&g_cv[1], NULL)) != 0) {
        mpq_cond_close(g_cv[0]);
        mpq_mutex_close(g_mx);
    }
    return rc;
}
static void cv_teardown(void)
{
    mpq_cond_close(g_cv[0]);
    mpq_cond_close(g_cv[1]);
    mpq_mutex_close(g_mx);
}
static int cv_enter(void) { return mpq_mutex_lock(g_mx); }
static void cv_leave(void) { mpq_mutex_unlock(g_mx); }
static int cv_ping(int ch)
{
    int rc;
    sh->flag[ch] = 1;
    rc = mpq_cond_notify(g_cv[ch], 1);
    return rc < 0 ? rc : 0;
}
static int cv_await(int ch)
{
    while (!sh->flag[ch]) {
        int rc = mpq_cond_wait(g_cv[ch], g_mx, WAIT_MS);
        /* any error fails the run, but a timeout that lost a race with the flag */
        if (rc != 0 && (rc != -ETIMEDOUT || !sh->flag[ch])) return rc;
    }
    sh->flag[ch] = 0;
    return 0;
}

static const pp_impl pp_event = { "mpq_event", ev_setup, ev_teardown, none, none_v, ev_ping, ev_await };
static const pp_impl pp_efd = { "eventfd", efd_setup, efd_teardown, none, none_v, efd_ping, efd_await };
static const pp_impl pp_pcond = { "pthread_cond", pc_setup, pc_teardown, pc_enter, pc_leave, pc_ping, pc_await };
static const pp_impl pp_mcond = { "mpq_cond", cv_setup, cv_teardown, cv_enter, cv_leave, cv_ping, cv_await };

static void pp_side_b(const pp_impl *k, int cpu)
{
    int rc;
    bench_pin(cpu);
    if ((rc = k->enter()) == 0) {
        while ((rc = k->await(0)) == 0 && !mpq__load32(&sh->stop, MPQ__ACQUIRE))
            if ((rc = k->ping(1)) != 0) break;
        k->leave();
    }
    sh->err[1] = rc;
    _exit(rc != 0);
}

/* ns per round trip with side B on CPU cpu_b (A is on CPU 0), median of
   RUNS runs; -1 (and a note) if a run failed. */
static double pingpong(const pp_impl *k, int cpu_b, char *note)
{
    double v[RUNS];
    int r;
    for (r = 0; r < RUNS; r++) {
        pid_t pid;
        long n = 0;
        int rc, i, entered, killed;
        double t0, t;
        memset(sh, 0, sizeof *sh);
        if ((rc = k->setup()) != 0) {
            snprintf(note, NOTE, "setup: %s", errtext(rc));
            return -1;
        }
        fflush(stdout);
        if ((pid = bench_fork()) == 0) pp_side_b(k, cpu_b);
        bench_pin(0);
        bench_cap_arm(RUN_LIMIT);
        rc = k->enter();
        entered = rc == 0;
        for (i = 0; rc == 0 && i < WARMUP; i++)
            if ((rc = k->ping(0)) == 0) rc = k->await(1);
        t0 = bench_now();
        while (rc == 0 && n < PP_MAX && !bench_expired) {
            if ((rc = k->ping(0)) == 0 && (rc = k->await(1)) == 0) n++;
            if (!(n & 15) && bench_now() - t0 > PP_CAP) break;
        }
        t = bench_now() - t0;
        if (rc == 0 && bench_expired) rc = -EINTR;
        mpq__store32(&sh->stop, 1, MPQ__RELEASE);
        k->ping(0);
        if (entered) k->leave();
        bench_cap_disarm();
        killed = bench_reap(&pid, 1, GRACE);
        bench_unpin();
        k->teardown();
        if (rc != 0 || killed || sh->err[1] || n == 0) {
            if (rc != 0) snprintf(note, NOTE, "run %d: side A got %d (%s) after %ld round trips", r, rc, errtext(rc), n);
            else if (killed) snprintf(note, NOTE, "run %d: side B did not finish, killed", r);
            else snprintf(note, NOTE, "run %d: side B got %d (%s)", r, sh->err[1], errtext(sh->err[1]));
            return -1;
        }
        v[r] = t * 1e9 / (double)n;
    }
    return bench_median(v, RUNS);
}

/* --- semaphores ---------------------------------------------------------- */

typedef struct sem_impl {
    const char *name;
    int (*setup)(void);
    void (*teardown)(void);
    int (*acquire)(void);
    int (*release)(void);
} sem_impl;

static mpq_sem *g_sem;
static int msem_setup(void) { return mpq_sem_create(&g_sem, 1, NULL); }
static int msem_undo_setup(void)
{
    mpq_sem_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.undo = 1;
    return mpq_sem_create(&g_sem, 1, &cfg);
}
static void msem_teardown(void) { mpq_sem_close(g_sem); }
static int msem_acquire(void) { return mpq_sem_acquire(g_sem, -1); }
static int msem_release(void) { return mpq_sem_release(g_sem); }

static int psem_setup(void) { return sem_init(&sh->sem, 1, 1) == 0 ? 0 : -errno; }
static void psem_teardown(void) { sem_destroy(&sh->sem); }
static int psem_acquire(void)
{
    while (sem_wait(&sh->sem) != 0)
        if (errno != EINTR || bench_expired) return -errno;
    return 0;
}
static int psem_release(void) { return sem_post(&sh->sem) == 0 ? 0 : -errno; }

union bench_semun { int val; struct semid_ds *buf; unsigned short *array; };
static short g_semflg;
static int sysv_setup_flg(short flg)
{
    union bench_semun a;
    g_semflg = flg;
    if ((g_semid = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600)) < 0) return -errno;
    a.val = 1;
    if (semctl(g_semid, 0, SETVAL, a) != 0) {
        int e = errno;
        semctl(g_semid, 0, IPC_RMID);
        g_semid = -1;
        return -e;
    }
    return 0;
}
static int sysv_setup(void) { return sysv_setup_flg(0); }
static int sysv_undo_setup(void) { return sysv_setup_flg(SEM_UNDO); }
static void sysv_teardown(void)
{
    semctl(g_semid, 0, IPC_RMID);
    g_semid = -1;
}
static int sysv_op(short d)
{
    struct sembuf op;
    op.sem_num = 0;
    op.sem_op = d;
    op.sem_flg = g_semflg;
    while (semop(g_semid, &op, 1) != 0)
        if (errno != EINTR || bench_expired) return -errno;
    return 0;
}
static int sysv_acquire(void) { return sysv_op(-1); }
static int sysv_release(void) { return sysv_op(1); }

static const sem_impl sems[] = {
    { "mpq_sem", msem_setup, msem_teardown, msem_acquire, msem_release },
    { "mpq_sem .undo = 1 (robust: a dead holder's permits come back)", msem_undo_setup, msem_teardown, msem_acquire, msem_release },
    { "POSIX sem_t, process-shared (not robust)", psem_setup, psem_teardown, psem_acquire, psem_release },
    { "System V semop (not robust)", sysv_setup, sysv_teardown, sysv_acquire, sysv_release },
    { "System V semop SEM_UNDO (robust)", sysv_undo_setup, sysv_teardown, sysv_acquire, sysv_release },
};
enum { NSEM = sizeof sems / sizeof sems[0] };

/* ns per acquire+release in this process alone, median of SEM_RUNS. */
static double sem_uncontended(const sem_impl *k, char *note)
{
    double v[SEM_RUNS];
    int r;
    for (r = 0; r < SEM_RUNS; r++) {
        long n = 0;
        int rc;
        double t0;
        memset(sh, 0, sizeof *sh);
        if ((rc = k->setup()) != 0) {
            snprintf(note, NOTE, "setup: %s", errtext(rc));
            return -1;
        }
        bench_cap_arm(RUN_LIMIT);
        t0 = bench_now();
        while (n < UN_MAX && ((n & 255) || bench_now() - t0 < UN_CAP)) {
            if ((rc = k->acquire()) != 0 || (rc = k->release()) != 0) break;
            n++;
        }
        v[r] = (bench_now() - t0) * 1e9 / (double)(n ? n : 1);
        bench_cap_disarm();
        k->teardown();
        if (rc != 0) {
            snprintf(note, NOTE, "uncontended: %d (%s) after %ld ops", rc, errtext(rc), n);
            return -1;
        }
    }
    return bench_median(v, SEM_RUNS);
}

static void sem_contender(const sem_impl *k, int me)
{
    long ops = 0;
    int rc = 0;
    bench_pin(me);
    helper_ready();
    while (!mpq__load32(&sh->stop, MPQ__RELAXED)) {
        if ((rc = k->acquire()) != 0) break;
        sh->counter++;
        if ((rc = k->release()) != 0) break;
        ops++;
    }
    sh->ops[me] = ops;
    sh->err[me] = rc;
    _exit(0);
}

/* Two processes on two CPUs taking turns at one permit for CO_CAP s:
   acquire+release pairs per second, all told; median of SEM_RUNS.
   *lost is set if the count of the protected counter came out wrong. */
static double sem_contended(const sem_impl *k, int *lost, char *note)
{
    double v[SEM_RUNS];
    int r, i;
    for (r = 0; r < SEM_RUNS; r++) {
        pid_t pid[2];
        double t0, t1;
        int rc, killed;
        memset(sh, 0, sizeof *sh);
        if ((rc = k->setup()) != 0) {
            snprintf(note, NOTE, "setup: %s", errtext(rc));
            return -1;
        }
        fflush(stdout);
        for (i = 0; i < 2; i++)
            if ((pid[i] = bench_fork()) == 0) sem_contender(k, i);
        rc = await_ready(2);
        t0 = bench_now();
        mpq__store32(&sh->go, 1, MPQ__RELEASE);
        if (rc == 0) bench_nap(CO_CAP);
        mpq__store32(&sh->stop, 1, MPQ__RELEASE);
        t1 = bench_now();
        killed = bench_reap(pid, 2, GRACE);
        k->teardown();
        if (rc != 0 || killed || sh->err[0] || sh->err[1]) {
            if (rc != 0) snprintf(note, NOTE, "contended: helpers never got ready");
            else if (killed) snprintf(note, NOTE, "contended: %d helper(s) stuck, killed", killed);
            else snprintf(note, NOTE, "contended: %d (%s)", sh->err[0] ? sh->err[0] : sh->err[1],
                          errtext(sh->err[0] ? sh->err[0] : sh->err[1]));
            return -1;
        }
        if (sh->counter != sh->ops[0] + sh->ops[1]) *lost = 1;
        v[r] = (double)(sh->ops[0] + sh->ops[1]) / (t1 - t0);
    }
    return bench_median(v, SEM_RUNS);
}

/* --- barriers -------------------------------------------------------------- */

typedef struct bar_impl {
    const char *name;
    int (*setup)(unsigned n);
    void (*teardown)(void);
    int (*wait)(void);
} bar_impl;

static mpq_barrier *g_bar;
static int mbar_setup(unsigned n) { return mpq_barrier_create(&g_bar, n, NULL); }
static void mbar_teardown(void) { mpq_barrier_close(g_bar); }
static int mbar_wait(void)
{
    int rc = mpq_barrier_wait(g_bar, WAIT_MS);
    return rc < 0 ? rc : 0;
}

static int pbar_setup(unsigned n)
{
    pthread_barrierattr_t a;
    int rc;
    pthread_barrierattr_init(&a);
    pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    rc = pthread_barrier_init(&sh->pb, &a, n);
    pthread_barrierattr_destroy(&a);
    return -rc;
}
static void pbar_teardown(void) { pthread_barrier_destroy(&sh->pb); }
static int pbar_wait(void)
{
    int rc = pthread_barrier_wait(&sh->pb);
    return rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD ? 0 : -rc;
}

static const bar_impl bar_mpq = { "mpq_barrier", mbar_setup, mbar_teardown, mbar_wait };
static const bar_impl bar_pthread = { "pthread_barrier", pbar_setup, pbar_teardown, pbar_wait };

/* A party. Party 0 decides when to stop: seeing the parent's `stop`
   before it arrives at barrier c, it publishes stop_at = c + 1, which
   every party reads after barrier c, so all of them make the same number
   of waits. */
static void bar_party(const bar_impl *k, int me)
{
    long c;
    int rc = 0, decided = 0;
    uint32_t at;
    double t0 = 0;
    bench_pin(me);
    helper_ready();
    if (me == 0) t0 = bench_now();
    for (c = 0;; c++) {
        if (me == 0 && !decided && mpq__load32(&sh->stop, MPQ__ACQUIRE)) {
            decided = 1;
            mpq__store32(&sh->stop_at, (uint32_t)c + 1, MPQ__RELEASE);
        }
        if ((rc = k->wait()) != 0) break;
        at = mpq__load32(&sh->stop_at, MPQ__ACQUIRE);
        if (at && (uint32_t)c + 1 >= at) break;
    }
    if (me == 0) {
        sh->cycles = c + 1;
        sh->secs = bench_now() - t0;
    }
    sh->err[me] = rc;
    _exit(0);
}

/* Barrier cycles per second with `parties` processes (party i on CPU i
   modulo the CPUs), median of SEM_RUNS. */
static double barrier_rate(const bar_impl *k, int parties, char *note)
{
    double v[SEM_RUNS];
    int r, i;
    for (r = 0; r < SEM_RUNS; r++) {
        pid_t pid[4];
        int rc, killed, bad = 0;
        memset(sh, 0, sizeof *sh);
        if ((rc = k->setup((unsigned)parties)) != 0) {
            snprintf(note, NOTE, "setup: %s", errtext(rc));
            return -1;
        }
        fflush(stdout);
        for (i = 0; i < parties; i++)
            if ((pid[i] = bench_fork()) == 0) bar_party(k, i);
        rc = await_ready((uint32_t)parties);
        mpq__store32(&sh->go, 1, MPQ__RELEASE);
        if (rc == 0) bench_nap(BAR_CAP);
        mpq__store32(&sh->stop, 1, MPQ__RELEASE);
        killed = bench_reap(pid, parties, GRACE);
        for (i = 0; i < parties; i++) if (sh->err[i]) bad = sh->err[i];
        if (!killed) k->teardown();   /* a pthread barrier killed mid-wait may not destroy */
        if (rc != 0 || killed || bad || sh->secs <= 0) {
            if (rc != 0) snprintf(note, NOTE, "%d parties: helpers never got ready", parties);
            else if (killed) snprintf(note, NOTE, "%d parties: %d stuck, killed", parties, killed);
            else snprintf(note, NOTE, "%d parties: wait returned %d (%s)", parties, bad, errtext(bad));
            return -1;
        }
        v[r] = (double)sh->cycles / sh->secs;
    }
    return bench_median(v, SEM_RUNS);
}

/* --- Python's multiprocessing ---------------------------------------------

   One script, a mode per figure; it prints "RESULT <figure> <version>".
   Its processes are pinned as the C ones are (side A and party 0 on CPU
   0, side B on the CPU given, party i on CPU i modulo the CPUs; the
   semaphore loop unpinned). Each mode is three runs of at most 0.25 s
   (median), every wait in it has a 5 s timeout, and the interpreter gets
   SIGALRM after 20 s. */

static const char *const py_lines[] = {
    "import os, sys, time",
    "import multiprocessing as mp",
    "from threading import BrokenBarrierError",
    "ctx = mp.get_context('fork')",
    "T = 5.0",
    "CAP = 0.25",
    "B_CPU = int(sys.argv[2]) if len(sys.argv) > 2 else 1",
    "def pin(cpu):",
    "    try:",
    "        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})",
    "    except (AttributeError, OSError):",
    "        pass",
    "def fail(what):",
    "    print('ERROR ' + what, flush=True)",
    "    raise SystemExit(1)",
    "def finish(ps):",
    "    for p in ps:",
    "        p.join(T)",
    "        if p.is_alive():",
    "            p.kill()",
    "def ev_child(e, stop):",
    "    pin(B_CPU)",
    "    while e[0].wait(T):",
    "        e[0].clear()",
    "        if stop.value:",
    "            return",
    "        e[1].set()",
    "def event_run():",
    "    e = [ctx.Event(), ctx.Event()]",
    "    stop = ctx.RawValue('i', 0)",
    "    pin(0)",
    "    p = ctx.Process(target=ev_child, args=(e, stop), daemon=True)",
    "    p.start()",
    "    def rt():",
    "        e[0].set()",
    "        if not e[1].wait(T):",
    "            fail('Event: no answer')",
    "        e[1].clear()",
    "    for i in range(50):",
    "        rt()",
    "    k = 0",
    "    t0 = time.perf_counter()",
    "    while k < 200000 and (k % 16 or time.perf_counter() - t0 < CAP):",
    "        rt()",
    "        k += 1",
    "    t = time.perf_counter() - t0",
    "    stop.value = 1",
    "    e[0].set()",
    "    finish([p])",
    "    return t / k * 1e9",
    "def cv_child(lock, c, f):",
    "    pin(B_CPU)",
    "    with lock:",
    "        while True:",
    "            while not f[0]:",
    "                if not c[0].wait(T):",
    "                    return",
    "            f[0] = 0",
    "            if f[2]:",
    "                return",
    "            f[1] = 1",
    "            c[1].notify()",
    "def cond_run():",
    "    lock = ctx.Lock()",
    "    c = [ctx.Condition(lock), ctx.Condition(lock)]",
    "    f = ctx.RawArray('i', 3)",
    "    pin(0)",
    "    p = ctx.Process(target=cv_child, args=(lock, c, f), daemon=True)",
    "    p.start()",
    "    def rt():",
    "        f[0] = 1",
    "        c[0].notify()",
    "        while not f[1]:",
    "            if not c[1].wait(T):",
    "                fail('Condition: no answer')",
    "        f[1] = 0",
    "    with lock:",
    "        for i in range(50):",
    "            rt()",
    "        k = 0",
    "        t0 = time.perf_counter()",
    "        while k < 200000 and (k % 16 or time.perf_counter() - t0 < CAP):",
    "            rt()",
    "            k += 1",
    "        t = time.perf_counter() - t0",
    "        f[2] = 1",
    "        f[0] = 1",
    "        c[0].notify()",
    "    finish([p])",
    "    return t / k * 1e9",
    "def sem_run():",
    "    s = ctx.Semaphore(1)",
    "    k = 0",
    "    t0 = time.perf_counter()",
    "    while k < 5000000 and time.perf_counter() - t0 < CAP:",
    "        for i in range(256):",
    "            s.acquire()",
    "            s.release()",
    "        k += 256",
    "    return (time.perf_counter() - t0) / k * 1e9",
    "def bar_child(b, me):",
    "    pin(me)",
    "    try:",
    "        while True:",
    "            b.wait(T)",
    "    except BrokenBarrierError:",
    "        pass",
    "def barrier_run(n):",
    "    b = ctx.Barrier(n)",
    "    pin(0)",
    "    ps = [ctx.Process(target=bar_child, args=(b, i), daemon=True) for i in range(1, n)]",
    "    for p in ps:",
    "        p.start()",
    "    for i in range(20):",
    "        b.wait(T)",
    "    k = 0",
    "    t0 = time.perf_counter()",
    "    while k < 200000 and (k % 8 or time.perf_counter() - t0 < CAP):",
    "        b.wait(T)",
    "        k += 1",
    "    t = time.perf_counter() - t0",
    "    b.abort()",
    "    finish(ps)",
    "    return k / t",
    "modes = {'event': event_run, 'cond': cond_run, 'sem': sem_run,",
    "         'barrier2': lambda: barrier_run(2), 'barrier4': lambda: barrier_run(4)}",
    "v = sorted(modes[sys.argv[1]]() for i in range(3))",
    "print('RESULT %.6g %s' % (v[1], sys.version.split()[0]), flush=True)",
    NULL
};

static char py_script[8192];
static char py_version[32] = "?";
static int have_python;


/* Runs the script in `mode`; the figure, or -1 with a note. */
static double py_run(const char *mode, const char *arg, char *note)
{
    static char out[8192];
    size_t len = 0;
    int fds[2];
    pid_t pid;
    double v;
    char ver[32], *p;
    if (!have_python) { snprintf(note, NOTE, "python3 not on PATH"); return -1; }
    if (pipe(fds) != 0) { snprintf(note, NOTE, "pipe: %s", strerror(errno)); return -1; }
    fflush(stdout);
    if ((pid = bench_fork()) == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        alarm(20);   /* survives exec: the interpreter dies if it runs long */
        execlp("python3", "python3", "-c", py_script, mode, arg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    bench_cap_arm(25);
    while (len < sizeof out - 1) {
        ssize_t r = read(fds[0], out + len, sizeof out - 1 - len);
        if (r > 0) len += (size_t)r;
        else if (r < 0 && errno == EINTR && !bench_expired) continue;
        else break;
    }
    bench_cap_disarm();
    close(fds[0]);
    bench_reap(&pid, 1, GRACE);
    out[len] = 0;
    if ((p = strstr(out, "RESULT ")) && sscanf(p, "RESULT %lf %31s", &v, ver) == 2 && v > 0) {
        snprintf(py_version, sizeof py_version, "%s", ver);
        return v;
    }
    /* the last line says what went wrong (a traceback ends with it) */
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' ')) out[--len] = 0;
    p = strrchr(out, '\n');
    snprintf(note, NOTE, "python3 %.20s: %.120s", mode, len ? (p ? p + 1 : out) : "no output (timed out?)");
    return -1;
}

/* --- printing -------------------------------------------------------------- */

/* A figure and its unit, or "failed" / "skipped". */
static const char *fig(double v, const char *fmt, double scale)
{
    static char b[8][48];
    static int at;
    char *s = b[at++ & 7];
    if (v == -2) snprintf(s, sizeof b[0], "skipped");
    else if (v < 0) snprintf(s, sizeof b[0], "failed");
    else snprintf(s, sizeof b[0], fmt, v / scale);
    return s;
}


static void target(const char *what, double num, double den, double goal)
{
    if (num <= 0 || den <= 0) {
        printf("| %s | - | ≥ %.0f× | not measured |\n", what, goal);
        return;
    }
    printf("| %s | %.2f× | ≥ %.0f× | %s |\n", what, num / den, goal, num / den >= goal ? "met" : "MISSED");
}

static double py_figure(const char *mode, const char *arg, const char *what)
{
    char note[NOTE] = "";
    double v = py_run(mode, arg, note);
    if (v < 0) {
        bench_note(what, note);
        if (!have_python) v = -2;
    }
    return v;
}

/* v[0]: two CPUs; v[1]: both processes on CPU 0. */
static void measure_pp(const pp_impl *k, double v[2])
{
    char note[NOTE] = "", what[80];
    int c;
    for (c = 0; c < 2; c++) {
        v[c] = pingpong(k, 1 - c, note);
        snprintf(what, sizeof what, "%s (%s)", k->name, c ? "one CPU" : "two CPUs");
        if (v[c] < 0) bench_note(what, note);
    }
}

static void measure_py_pp(const char *mode, const char *what, double v[2])
{
    v[0] = py_figure(mode, "1", what);
    v[1] = py_figure(mode, "0", what);
}

static void pp_row(const char *name, const double v[2], const double mpq[2])
{
    printf("| %s | %s | %s | %s | %s |\n", name, fig(v[0], "%.0f ns", 1), bench_ratio(v[0], mpq[0]),
           fig(v[1], "%.0f ns", 1), bench_ratio(v[1], mpq[1]));
}

/* The faster (smaller) of two times, or the one measured. */
static double faster(double a, double b)
{
    if (a <= 0) return b;
    if (b <= 0) return a;
    return a < b ? a : b;
}

int main(void)
{
    double ev[2], efd[2], pcond[2], mcond[2], py_ev[2], py_cond[2], py_sem;
    double un[NSEM], co[NSEM], bar[2][2], py_bar[2];
    int lost[NSEM], i, j;
    const int parties[2] = { 2, 4 };
    const bar_impl *bars[2] = { &bar_mpq, &bar_pthread };
    const char *pp_head = "| primitive | two CPUs | ÷ %s | one CPU | ÷ %s |\n|---|---:|---:|---:|---:|\n";
    char name[96];

    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_cap_install("bench_sync");
    bench_on_stuck = remove_semid;
    sh = (struct shared *)bench_shared(sizeof *sh);
    have_python = bench_have_python();
    bench_join_lines(py_script, sizeof py_script, py_lines);

    bench_header("mpq_event, mpq_sem, mpq_cond, mpq_barrier vs C peers and Python");
    if (!have_python) printf("python3 is not on PATH: the Python rows are skipped\n\n");
    printf("Round trips: side A on CPU 0, side B on CPU 1 (two CPUs: each wake-up crosses CPUs) or on\n"
           "CPU 0 too (one CPU: a wake-up is a context switch). Ratios: the peer's time over mpq's, or\n"
           "mpq's rate over the peer's; > 1 means mpq is faster.\n\n");

    /* 1. Event */
    measure_pp(&pp_event, ev);
    measure_pp(&pp_efd, efd);
    measure_pp(&pp_pcond, pcond);
    measure_py_pp("event", "Python Event", py_ev);
    printf("### Event: set → wake round trip between two processes, ns (median of %d runs)\n\n", RUNS);
    printf("Two events: A sets e1 and waits e2 (then clears it); B waits e1, clears it, sets e2.\n\n");
    printf(pp_head, "mpq_event", "mpq_event");
    pp_row("mpq_event", ev, ev);
    pp_row("eventfd ×2, blocking read/write", efd, ev);
    pp_row("pthread_cond + pthread_mutex, process-shared (a flag and a cond per direction)", pcond, ev);
    snprintf(name, sizeof name, "Python %s multiprocessing.Event", py_version);
    pp_row(name, py_ev, ev);
    bench_flush_notes();

    /* 2. Semaphore */
    for (i = 0; i < NSEM; i++) {
        char note[NOTE] = "";
        lost[i] = 0;
        un[i] = sem_uncontended(&sems[i], note);
        if (un[i] < 0) bench_note(sems[i].name, note);
        note[0] = 0;
        co[i] = sem_contended(&sems[i], &lost[i], note);
        if (co[i] < 0) bench_note(sems[i].name, note);
    }
    py_sem = py_figure("sem", "1", "Python Semaphore");
    printf("\n### Semaphore (value 1): acquire+release\n\n");
    printf("| semaphore | uncontended | ÷ mpq_sem | 2 processes contended | mpq_sem ÷ this |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (i = 0; i < NSEM; i++)
        printf("| %s | %s | %s | %s%s | %s |\n", sems[i].name, fig(un[i], "%.1f ns", 1), bench_ratio(un[i], un[0]),
               fig(co[i], "%.2f Mops/s", 1e6), lost[i] ? " (LOST UPDATES)" : "", bench_ratio(co[0], co[i]));
    printf("| Python %s multiprocessing.Semaphore (one process) | %s | %s | | |\n", py_version,
           fig(py_sem, "%.1f ns", 1), bench_ratio(py_sem, un[0]));
    printf("\n(uncontended: one process, median of %d runs of up to %.2f s; contended: two processes on two\n"
           "CPUs taking turns at the one permit for %.1f s, median of %d runs)\n", SEM_RUNS, UN_CAP, CO_CAP, SEM_RUNS);
    bench_flush_notes();

    /* 3. Condition */
    measure_pp(&pp_mcond, mcond);
    measure_py_pp("cond", "Python Condition", py_cond);
    printf("\n### Condition: notify → wake round trip between two processes, ns (median of %d runs)\n\n", RUNS);
    printf("A flag and a condition per direction, one mutex; each side holds the mutex but while it waits.\n\n");
    printf(pp_head, "mpq_cond", "mpq_cond");
    pp_row("mpq_cond + mpq_mutex (robust)", mcond, mcond);
    pp_row("pthread_cond + pthread_mutex, process-shared (the runs in the Event table)", pcond, mcond);
    snprintf(name, sizeof name, "Python %s multiprocessing.Condition (two on one Lock)", py_version);
    pp_row(name, py_cond, mcond);
    bench_flush_notes();

    /* 4. Barrier */
    for (j = 0; j < 2; j++)
        for (i = 0; i < 2; i++) {
            char note[NOTE] = "";
            bar[i][j] = barrier_rate(bars[i], parties[j], note);
            if (bar[i][j] < 0) bench_note(bars[i]->name, note);
        }
    py_bar[0] = py_figure("barrier2", "1", "Python Barrier(2)");
    py_bar[1] = py_figure("barrier4", "1", "Python Barrier(4)");
    printf("\n### Barrier: cycles per second (every party through once), median of %d runs of %.1f s\n\n",
           SEM_RUNS, BAR_CAP);
    printf("Party i on CPU i modulo the CPUs.\n\n");
    printf("| barrier | 2 processes | mpq ÷ this | 4 processes (on %ld CPUs) | mpq ÷ this |\n|---|---:|---:|---:|---:|\n",
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("| mpq_barrier | %s | %s | %s | %s |\n", fig(bar[0][0], "%.0f", 1), bench_ratio(bar[0][0], bar[0][0]),
           fig(bar[0][1], "%.0f", 1), bench_ratio(bar[0][1], bar[0][1]));
    printf("| pthread_barrier, process-shared | %s | %s | %s | %s |\n", fig(bar[1][0], "%.0f", 1),
           bench_ratio(bar[0][0], bar[1][0]), fig(bar[1][1], "%.0f", 1), bench_ratio(bar[0][1], bar[1][1]));
    printf("| Python %s multiprocessing.Barrier | %s | %s | %s | %s |\n", py_version, fig(py_bar[0], "%.0f", 1),
           bench_ratio(bar[0][0], py_bar[0]), fig(py_bar[1], "%.0f", 1), bench_ratio(bar[0][1], py_bar[1]));
    bench_flush_notes();

    /* targets */
    printf("\n### targets (this run)\n\n| target | ratio | goal | |\n|---|---:|---:|---|\n");
    for (j = 0; j < 2; j++) {
        const char *where = j ? "one CPU" : "two CPUs";
        double peer = faster(efd[j], pcond[j]);
        snprintf(name, sizeof name, "Event round trip, %s, vs %s (the faster C peer)", where,
                 peer == efd[j] ? "eventfd" : "pthread_cond");
        target(name, peer, ev[j], 1);
    }
    target("Event round trip, two CPUs, vs Python Event", py_ev[0], ev[0], 20);
    target("Event round trip, one CPU, vs Python Event", py_ev[1], ev[1], 20);
    target("Semaphore uncontended: mpq_sem vs sem_t", un[2], un[0], 1);
    target("Semaphore 2-process contended: mpq_sem vs sem_t", co[0], co[2], 1);
    target("Semaphore uncontended vs Python Semaphore", py_sem, un[0], 20);
    target("Condition round trip, two CPUs, vs pthread_cond", pcond[0], mcond[0], 1);
    target("Condition round trip, one CPU, vs pthread_cond", pcond[1], mcond[1], 1);
    target("Condition round trip, two CPUs, vs Python Condition", py_cond[0], mcond[0], 20);
    target("Condition round trip, one CPU, vs Python Condition", py_cond[1], mcond[1], 20);
    target("Barrier, 2 processes, vs pthread_barrier", bar[0][0], bar[1][0], 1);
    target("Barrier, 4 processes, vs pthread_barrier", bar[0][1], bar[1][1], 1);
    target("Barrier, 2 processes, vs Python Barrier", bar[0][0], py_bar[0], 20);
    target("Barrier, 4 processes, vs Python Barrier", bar[0][1], py_bar[1], 20);
    if (g_semid >= 0) semctl(g_semid, 0, IPC_RMID);
    return 0;
}
