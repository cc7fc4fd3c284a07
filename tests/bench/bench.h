/* bench.h - what every mpq benchmark shares: a clock, CPU pinning, the
   cache-line round trip that says which state this VM's cross-core latency
   is in, and the table format (each figure beside its peers, as a ratio).

   Include after mpq.h (with MPQ_IMPLEMENTATION) in each benchmark. */
#ifndef MPQ_BENCH_H
#define MPQ_BENCH_H

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <errno.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Pins the calling process to one CPU (modulo the CPUs there are). */
static inline void bench_pin(int cpu)
{
    cpu_set_t set;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    CPU_ZERO(&set);
    CPU_SET(n > 0 ? cpu % (int)n : 0, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static inline void bench_unpin(void)
{
    cpu_set_t set;
    long i, n = sysconf(_SC_NPROCESSORS_ONLN);
    CPU_ZERO(&set);
    for (i = 0; i < n && i < CPU_SETSIZE; i++) CPU_SET((int)i, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* fork() for a benchmark's helper process, which dies with its parent: a
   child spinning on shared memory must not outlive a killed benchmark. */
static inline pid_t bench_fork(void)
{
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);   /* the parent died before prctl */
    }
    return pid;
}

/* Shared anonymous memory for a benchmark's processes. */
static inline void *bench_shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    memset(p, 0, n);
    return p;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of n values (sorts them). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nanoseconds for one round trip of a cache line between two processes on
   two CPUs: the floor for any cross-process handoff. Median of 5 runs. */
static inline double bench_cacheline_rtt_ns(void)
{
    enum { ROUNDS = 200000, RUNS = 5 };
    uint32_t *w = (uint32_t *)bench_shared(4096);
    double v[RUNS];
    int r;
    for (r = 0; r < RUNS; r++) {
        pid_t pid;
        double t0;
        uint32_t i;
        mpq__store32(w, 0, MPQ__RELAXED);
        pid = bench_fork();
        if (pid == 0) {
            bench_pin(1);
            for (i = 1; i <= ROUNDS; i++) {
                while (mpq__load32(w, MPQ__ACQUIRE) != 2 * i - 1) mpq__cpu_relax();
                mpq__store32(w, 2 * i, MPQ__RELEASE);
            }
            _exit(0);
        }
        bench_pin(0);
        t0 = bench_now();
        for (i = 1; i <= ROUNDS; i++) {
            mpq__store32(w, 2 * i - 1, MPQ__RELEASE);
            while (mpq__load32(w, MPQ__ACQUIRE) != 2 * i) mpq__cpu_relax();
        }
        v[r] = (bench_now() - t0) * 1e9 / ROUNDS;
        waitpid(pid, NULL, 0);
        bench_unpin();
    }
    munmap(w, 4096);
    return bench_median(v, RUNS);
}

static inline void bench_header(const char *title)
{
    double rtt = bench_cacheline_rtt_ns();
    printf("\n## %s\n\n", title);
    printf("cache-line round trip between two CPUs: %.0f ns (%s state of this VM)\n\n", rtt,
           rtt < 400 ? "fast" : "slow");
}


/* --- time caps and helper processes ----------------------------------------

   bench_cap_arm(s) makes ITIMER_REAL set bench_expired after s seconds:
   blocking calls that signals interrupt give up (bench_cap_install sets no
   SA_RESTART) and loops look at the flag. It fires again every 3 s after
   that; if the run is still going then, it is stuck where no signal
   reaches, and the whole benchmark ends (after bench_on_stuck, if set):
   its helpers die with it (bench_fork's PDEATHSIG). */

static volatile sig_atomic_t bench_expired;
static const char *bench_name = "bench";
static void (*bench_on_stuck)(void);

static void bench_on_alarm(int sig)
{
    static const char msg[] = ": a run is stuck past its time cap: giving up\n";
    (void)sig;
    if (bench_expired) {
        ssize_t w = write(2, bench_name, strlen(bench_name));
        w = write(2, msg, sizeof msg - 1);
        (void)w;
        if (bench_on_stuck) bench_on_stuck();
        _exit(3);
    }
    bench_expired = 1;
}

/* Installs the time cap's handler; name prefixes its message. */
static inline void bench_cap_install(const char *name)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = bench_on_alarm;   /* no SA_RESTART: blocking calls see EINTR */
    sigaction(SIGALRM, &sa, NULL);
    bench_name = name;
}

static inline void bench_cap_arm(double s)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = (time_t)s;
    it.it_value.tv_usec = (suseconds_t)((s - (double)(time_t)s) * 1e6);
    it.it_interval.tv_sec = 3;
    bench_expired = 0;
    setitimer(ITIMER_REAL, &it, NULL);
}

static inline void bench_cap_disarm(void)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
}

static inline void bench_nap(double s)
{
    struct timespec d;
    d.tv_sec = (time_t)s;
    d.tv_nsec = (long)((s - (double)d.tv_sec) * 1e9);
    nanosleep(&d, NULL);
}

/* Waits up to `grace` seconds for the helpers to exit, then kills the
   rest. Returns how many had to be killed. */
static inline int bench_reap(pid_t *pid, int n, double grace)
{
    double t0 = bench_now();
    int i, left, killed = 0;
    for (;;) {
        left = 0;
        for (i = 0; i < n; i++) {
            pid_t r;
            if (pid[i] <= 0) continue;
            r = waitpid(pid[i], NULL, WNOHANG);
            if (r == pid[i] || (r < 0 && errno != EINTR)) pid[i] = 0;
            else left++;
        }
        if (!left || bench_now() - t0 > grace) break;
        bench_nap(0.001);
    }
    for (i = 0; i < n; i++)
        if (pid[i] > 0) {
            kill(pid[i], SIGKILL);
            while (waitpid(pid[i], NULL, 0) < 0 && errno == EINTR) {}
            pid[i] = 0;
            killed++;
        }
    return killed;
}


/* --- Python beside mpq ------------------------------------------------------ */

/* Whether python3 is on PATH. */
static inline int bench_have_python(void)
{
    const char *path = getenv("PATH");
    char dir[4096];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n + sizeof "/python3" < sizeof dir) {
            memcpy(dir, path, n);
            strcpy(dir + n, "/python3");
            if (access(dir, X_OK) == 0) return 1;
        }
        path += n;
        if (*path == ':') path++;
    }
    return 0;
}

/* Joins lines (NULL-terminated) into one script, a newline after each. */
static inline void bench_join_lines(char *out, size_t cap, const char *const *lines)
{
    size_t at = 0;
    int i;
    for (i = 0; lines[i]; i++) {
        size_t n = strlen(lines[i]);
        if (at + n + 2 > cap) { fprintf(stderr, "python script too long\n"); exit(1); }
        memcpy(out + at, lines[i], n);
        at += n;
        out[at++] = '\n';
    }
    out[at] = 0;
}


/* --- notes under a table ------------------------------------------------------

   What went wrong in a run (an error, a helper that had to be killed) is
   noted and printed as a list below the table it belongs to. */

static char bench_notes[32][232];
static int bench_nnotes;

static inline void bench_note(const char *what, const char *note)
{
    if (bench_nnotes < 32)
        snprintf(bench_notes[bench_nnotes++], sizeof bench_notes[0], "%.60s: %.160s", what, note);
}

static inline void bench_flush_notes(void)
{
    int i;
    if (!bench_nnotes) return;
    printf("\n");
    for (i = 0; i < bench_nnotes; i++) printf("- %s\n", bench_notes[i]);
    bench_nnotes = 0;
}

/* num / den as a table cell: "1.23" (or "123" from 100 on), or "-" when
   either is missing. Eight results may be in use at once (one printf). */
static inline const char *bench_ratio(double num, double den)
{
    static char b[8][24];
    static int at;
    char *s = b[at++ & 7];
    if (num <= 0 || den <= 0) snprintf(s, sizeof b[0], "-");
    else snprintf(s, sizeof b[0], num / den >= 100 ? "%.0f" : "%.2f", num / den);
    return s;
}

#endif
