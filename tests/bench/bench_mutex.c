/* bench_mutex - mpq_mutex beside the other process-shared locks a C
   programmer has: pthread (process-shared, and robust), a POSIX semaphore,
   fcntl and flock file locks, and a plain (non-robust) futex mutex as the
   speed reference. Uncontended lock+unlock in ns, and two processes on two
   CPUs hammering one lock in Mops/s; ratios are against pthread robust. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include "bench.h"

#include <fcntl.h>
#include <semaphore.h>
#include <sys/file.h>

struct shared {
    union { mpq_mutex mpq; pthread_mutex_t pm; sem_t sem; uint32_t futex; char pad[192]; } u;
    uint32_t ready, go, stop;
    long counter;
    long ops[2];
};

static char lock_path[64];
static int lock_fd = -1;   /* per process: file locks belong to open files */

/* --- the locks ------------------------------------------------------------ */

static void mpq_init(struct shared *s) { mpq_mutex_init(&s->u.mpq); }
static void mpq_lock(struct shared *s) { mpq_mutex_lock(&s->u.mpq); }
static void mpq_unlock(struct shared *s) { mpq_mutex_unlock(&s->u.mpq); }

static void pm_init_kind(struct shared *s, int robust)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->u.pm, &a);
    pthread_mutexattr_destroy(&a);
}
static void pshared_init(struct shared *s) { pm_init_kind(s, 0); }
static void robust_init(struct shared *s) { pm_init_kind(s, 1); }
static void pm_lock(struct shared *s) { pthread_mutex_lock(&s->u.pm); }
static void pm_unlock(struct shared *s) { pthread_mutex_unlock(&s->u.pm); }

static void sem_init1(struct shared *s) { sem_init(&s->u.sem, 1, 1); }
static void sem_lock(struct shared *s) { while (sem_wait(&s->u.sem) != 0) {} }
static void sem_unlock(struct shared *s) { sem_post(&s->u.sem); }

/* Drepper's "mutex 3" on mpq's futex wrappers: fast, and not robust. */
static void futex_init(struct shared *s) { s->u.futex = 0; }
static void futex_lock(struct shared *s)
{
    uint32_t c = 0;
    if (mpq__cas32(&s->u.futex, &c, 1, MPQ__ACQUIRE)) return;
    if (c != 2) c = mpq__xchg32(&s->u.futex, 2, MPQ__ACQUIRE);
    while (c != 0) {
        mpq__futex_wait(&s->u.futex, 2, -1);
        c = mpq__xchg32(&s->u.futex, 2, MPQ__ACQUIRE);
    }
}
static void futex_unlock(struct shared *s)
{
    if (mpq__add32(&s->u.futex, (uint32_t)-1, MPQ__RELEASE) != 1) {
        mpq__store32(&s->u.futex, 0, MPQ__RELEASE);
        mpq__futex_wake(&s->u.futex, 1);
    }
}

static void file_attach(struct shared *s)
{
    (void)s;
    if (lock_fd >= 0) close(lock_fd);
    lock_fd = open(lock_path, O_RDWR);
}
static void fcntl_op(short type)
{
    struct flock l;
    memset(&l, 0, sizeof l);
    l.l_type = type;
    l.l_whence = SEEK_SET;
    l.l_len = 1;
    while (fcntl(lock_fd, F_SETLKW, &l) != 0) {}
}
static void fcntl_lock(struct shared *s) { (void)s; fcntl_op(F_WRLCK); }
static void fcntl_unlock(struct shared *s) { (void)s; fcntl_op(F_UNLCK); }
static void flock_lock(struct shared *s) { (void)s; while (flock(lock_fd, LOCK_EX) != 0) {} }
static void flock_unlock(struct shared *s) { (void)s; flock(lock_fd, LOCK_UN); }
static void nothing(struct shared *s) { (void)s; }

typedef struct impl {
    const char *name;
    void (*init)(struct shared *);
    void (*attach)(struct shared *);   /* in each process that uses it */
    void (*lock)(struct shared *);
    void (*unlock)(struct shared *);
    long iters;                        /* uncontended loop length */
} impl;

static const impl impls[] = {
    { "mpq_mutex (robust)",         mpq_init,     nothing,     mpq_lock,    mpq_unlock,    4000000 },
    { "pthread robust",             robust_init,  nothing,     pm_lock,     pm_unlock,     4000000 },
    { "pthread process-shared",     pshared_init, nothing,     pm_lock,     pm_unlock,     4000000 },
    { "futex mutex (not robust)",   futex_init,   nothing,     futex_lock,  futex_unlock,  4000000 },
    { "POSIX semaphore (not robust)", sem_init1,  nothing,     sem_lock,    sem_unlock,    4000000 },
    { "fcntl F_SETLKW",             nothing,      file_attach, fcntl_lock,  fcntl_unlock,  300000 },
    { "flock",                      nothing,      file_attach, flock_lock,  flock_unlock,  300000 },
};
enum { NIMPL = sizeof impls / sizeof impls[0], RUNS = 5 };

/* --- measurements --------------------------------------------------------- */

static double uncontended_ns(const impl *k, struct shared *s)
{
    double v[RUNS];
    int r;
    for (r = 0; r < RUNS; r++) {
        double t0;
        long i;
        memset(s, 0, sizeof *s);
        k->init(s);
        k->attach(s);
        t0 = bench_now();
        for (i = 0; i < k->iters; i++) {
            k->lock(s);
            s->counter++;
            k->unlock(s);
        }
        v[r] = (bench_now() - t0) * 1e9 / (double)k->iters;
    }
    return bench_median(v, RUNS);
}

static void contender(const impl *k, struct shared *s, int me)
{
    long ops = 0;
    bench_pin(me);
    k->attach(s);
    mpq__add32(&s->ready, 1, MPQ__RELEASE);
    while (!mpq__load32(&s->go, MPQ__ACQUIRE)) mpq__cpu_relax();
    while (!mpq__load32(&s->stop, MPQ__RELAXED)) {
        k->lock(s);
        s->counter++;
        k->unlock(s);
        ops++;
    }
    s->ops[me] = ops;
    _exit(0);
}

/* Two processes on two CPUs, one lock, 0.3 s: million lock+unlock pairs a
   second, all told. *ok is cleared if the lock lost an increment. */
static double contended_mops(const impl *k, struct shared *s, int *ok)
{
    double v[RUNS];
    int r, i;
    for (r = 0; r < RUNS; r++) {
        pid_t pid[2];
        double t0, t1;
        struct timespec d = { 0, 300000000 };
        memset(s, 0, sizeof *s);
        k->init(s);
        for (i = 0; i < 2; i++)
            if ((pid[i] = bench_fork()) == 0) contender(k, s, i);
        while (mpq__load32(&s->ready, MPQ__ACQUIRE) != 2) sched_yield();
        t0 = bench_now();
        mpq__store32(&s->go, 1, MPQ__RELEASE);
        nanosleep(&d, NULL);
        mpq__store32(&s->stop, 1, MPQ__RELEASE);
        t1 = bench_now();
        for (i = 0; i < 2; i++) waitpid(pid[i], NULL, 0);
        if (s->counter != s->ops[0] + s->ops[1]) *ok = 0;
        v[r] = (double)(s->ops[0] + s->ops[1]) / (t1 - t0) / 1e6;
    }
    return bench_median(v, RUNS);
}

int main(void)
{
    struct shared *s = (struct shared *)bench_shared(sizeof *s);
    double un[NIMPL], co[NIMPL];
    int ok[NIMPL], i, fd;

    snprintf(lock_path, sizeof lock_path, "/tmp/mpq-bench-lock-XXXXXX");
    fd = mkstemp(lock_path);
    if (fd < 0) { perror("mkstemp"); return 1; }
    close(fd);

    bench_header("mpq_mutex vs other process-shared locks");
    for (i = 0; i < NIMPL; i++) {
        ok[i] = 1;
        un[i] = uncontended_ns(&impls[i], s);
        co[i] = contended_mops(&impls[i], s, &ok[i]);
    }
    printf("| lock | uncontended lock+unlock | × pthread robust | 2 processes contended | × pthread robust |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (i = 0; i < NIMPL; i++)
        printf("| %s | %.1f ns | %.2f | %.2f Mops/s%s | %.2f |\n", impls[i].name, un[i], un[1] / un[i],
               co[i], ok[i] ? "" : " (LOST UPDATES)", co[i] / co[1]);
    printf("\n(× > 1 is better than pthread robust; medians of %d runs)\n", RUNS);
    unlink(lock_path);
    return 0;
}
