/* mpq_test.h - the in-house test runner for mpq.h (libc only).

   Each test runs in a forked process of its own, in its own process group,
   with a timeout: a crash, an abort or a hang is a reported failure, never a
   stuck run, and whatever the test forked is killed with it. The run ends
   with the line "N passed, N failed".

       static void test_x(void) { CHECK(1 + 1 == 2); CHECK_EQ(mpq_f(), 0); }
       static const mpqt_case cases[] = { MPQT(test_x, 10, 0), ... };
       int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }

   Options: a word on the command line runs only the tests whose name holds
   it; --threaded runs only the tests marked threaded (for ThreadSanitizer).
   A test that cannot run here says why with MPQT_SKIP and counts as
   skipped ("N passed, N failed, N skipped"). Named objects a test made
   under an mpqt_name are unlinked when it ends, however it ended.
   Include this after mpq.h (it needs the feature macros mpq.h sets).
*/
#ifndef MPQ_TEST_H
#define MPQ_TEST_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

typedef struct mpqt_case {
    const char *name;
    void (*fn)(void);
    int timeout_s;  /* the test fails if it runs longer      */
    int threaded;   /* runs under ThreadSanitizer as well    */
} mpqt_case;

/* MPQT_ASAN: 1 in a build with AddressSanitizer, which turns a fault
   into exit(1) and maps memory of its own (gcc says so with
   __SANITIZE_ADDRESS__, clang with __has_feature). */
#if defined(__SANITIZE_ADDRESS__)
#define MPQT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MPQT_ASAN 1
#endif
#endif
#ifndef MPQT_ASAN
#define MPQT_ASAN 0
#endif

#define MPQT(fn, timeout_s, threaded) { #fn, fn, timeout_s, threaded }
#define MPQT_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The directory of the running test binary (helpers are built beside it). */
static char mpqt_dir[4096];
/* The pid of the running test's process (its children inherit it): the
   names it makes start with "/mpqt-PID-", for the cleanup. */
static long mpqt_test_pid;

static void mpqt_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    printf("    %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    _exit(86);
}

/* Ends the test as skipped, saying why (what is missing here). */
static inline void mpqt_skip(const char *fmt, ...)
{
    va_list ap;
    printf("    skipped: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    _exit(87);
}
#define MPQT_SKIP mpqt_skip

/* 1 where the kernel keeps no robust-futex list for this process, so a
   lock's dead owner is never reported: qemu-user (which refuses
   set_robust_list with ENOSYS), or a seccomp profile. On real hardware
   the call, given a wrong length, fails with EINVAL and changes nothing. */
static inline int mpqt_no_robust_list(void)
{
    return syscall(SYS_set_robust_list, NULL, (size_t)0) == 0 || errno != EINVAL;
}

/* Skips a test that needs a lock's dead owner reported at once, to a try
   as well (the kernel's robust-futex list), where there is none: under
   qemu-user only. */
#define MPQT_NEED_ROBUST() \
    do { if (mpqt_no_robust_list()) \
             mpqt_skip("no robust-futex list here (qemu-user): a try is never told of a dead owner"); } while (0)

/* Skips a test that needs a blocked locker to get a dead owner's lock:
   the kernel's robust list does it, and where there is none a waiter's
   own check (one lock slice later) in builds with MPQ_ALLOW_NONROBUST -
   without it no lock is made there. */
#if defined(MPQ_ALLOW_NONROBUST)
#define MPQT_NEED_DEAD_OWNER() do { } while (0)
#else
#define MPQT_NEED_DEAD_OWNER() MPQT_NEED_ROBUST()
#endif

/* 1 under qemu-user, which fakes /proc/self/stat: its state field reads
   "0" (never so from a kernel), and its start time is qemu's, a few ticks
   after the one other processes read in /proc/PID/stat. */
static inline int mpqt_under_qemu(void)
{
    char buf[512];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;
    const char *p;
    if (!f) return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == '0';
}

/* Skips a test that qemu-user cannot run (the reason says why), and only
   there. */
#define MPQT_SKIP_UNDER_QEMU(why) \
    do { if (mpqt_under_qemu()) mpqt_skip("under qemu-user: %s", why); } while (0)

/* Dies of SIGSEGV on purpose, quietly also under AddressSanitizer: its
   handler (which would print a report and exit(1)) is put back to the
   default first, by the raw system call that ASan does not intercept (an
   all-zero kernel sigaction is SIG_DFL, no flags, no mask). */
static inline int mpqt_segfault(void)
{
    static const unsigned long dfl[8] = { 0 };
    volatile int *p = (volatile int *)(uintptr_t)4096;   /* below mmap_min_addr: never mapped */
    syscall(SYS_rt_sigaction, SIGSEGV, dfl, NULL, (size_t)8);
    return *p;
}

#define CHECK(cond) \
    do { if (!(cond)) mpqt_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond); } while (0)
/* CHECK with a message of its own (printf format and arguments). */
#define CHECK_MSG(cond, ...) \
    do { if (!(cond)) mpqt_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_EQ(a, b) \
    do { long long a_ = (long long)(a), b_ = (long long)(b); \
         if (a_ != b_) mpqt_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, a_, #b, b_); } while (0)
#define CHECK_OK(expr) \
    do { long long r_ = (long long)(expr); \
         if (r_ < 0) mpqt_fail(__FILE__, __LINE__, "%s returned %lld (%s)", #expr, r_, strerror((int)-r_)); } while (0)
#define CHECK_ERR(expr, err) \
    do { long long r_ = (long long)(expr); \
         if (r_ != -(long long)(err)) mpqt_fail(__FILE__, __LINE__, "%s returned %lld (%s), expected -%s", \
             #expr, r_, r_ < 0 ? strerror((int)-r_) : "no error", #err); } while (0)

/* Monotonic milliseconds, for bounds in tests that are not about speed. */
static inline int64_t mpqt_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds the calling thread has spent runnable but not running
   (waiting on a run queue: /proc/thread-self/schedstat), -1 if unknown.
   A bound on how long a call takes subtracts this, so that it measures
   the library's own running and sleeping, not how busy the machine is. */
static inline int64_t mpqt_run_delay_ms(void)
{
    unsigned long long run = 0, wait = 0;
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    int n;
    if (!f) return -1;
    n = fscanf(f, "%llu %llu", &run, &wait);
    fclose(f);
    return n == 2 ? (int64_t)(wait / 1000000u) : -1;
}

/* Wall milliseconds since t0 (mpqt_ms) less the run-queue wait since
   d0 (mpqt_run_delay_ms), when that is known. */
static inline int64_t mpqt_own_ms(int64_t t0, int64_t d0)
{
    int64_t took = mpqt_ms() - t0, d1 = d0 < 0 ? -1 : mpqt_run_delay_ms();
    return d1 >= d0 && d0 >= 0 ? took - (d1 - d0) : took;
}

/* A small deterministic PRNG (xorshift64*), seeded per test. */
static inline uint64_t mpqt_rand(uint64_t *s)
{
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* n bytes of zeroed shared anonymous memory, for a test's processes to
   share; it stays until the test process exits. */
static inline void *mpqt_shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) mpqt_fail(__FILE__, __LINE__, "mmap of %zu shared bytes failed", n);
    memset(p, 0, n);
    return p;
}

/* The pool tests' ints: one as a task's result (-ENOSPC without room),
   one read from an argument (0 if it is too short). */
static inline int mpqt_put_int(void *res, size_t *rl, int v)
{
    if (*rl < sizeof v) return -ENOSPC;
    memcpy(res, &v, sizeof v);
    *rl = sizeof v;
    return 0;
}
static inline int mpqt_get_int(const void *arg, size_t len)
{
    int v = 0;
    if (len >= sizeof v) memcpy(&v, arg, sizeof v);
    return v;
}

/* Joins p (bounded) and checks its exit code. */
#define MPQT_JOIN_OK(p, want) \
    do { CHECK_OK(mpq_process_join((p), 60000)); CHECK_EQ((p)->exitcode, (want)); } while (0)

/* A name for a named object, unique to this process and call; it starts
   with the test's "/mpqt-PID-", so the runner unlinks it when the test
   ends (see mpqt_unlink_names). */
static inline const char *mpqt_name(char *buf, size_t n, const char *what)
{
    static int seq;
    snprintf(buf, n, "/mpqt-%ld-%s-%ld-%d", mpqt_test_pid, what, (long)getpid(), seq++);
    return buf;
}

/* Unlinks the named objects (in /dev/shm) that test process `pid` and its
   children made with mpqt_name, which a test killed by its timeout or a
   failed CHECK leaves behind. */
static void mpqt_unlink_names(long pid)
{
    char prefix[48], path[600];
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    size_t plen;
    if (!d) return;
    snprintf(prefix, sizeof prefix, "mpqt-%ld-", pid);
    plen = strlen(prefix);
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, plen) == 0 && strlen(e->d_name) < 512) {
            snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
            unlink(path);
        }
    closedir(d);
}

/* Process pid's /proc/PID/stat from its third field (the state letter)
   on, read into buf; NULL if the process is gone. */
static inline const char *mpqt_stat(pid_t pid, char *buf, size_t n)
{
    char path[64], *p;
    FILE *f;
    size_t got;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (pid <= 0 || !(f = fopen(path, "r"))) return NULL;
    got = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[got] = 0;
    p = strrchr(buf, ')');   /* the command name may hold anything */
    return p && p[1] == ' ' && p[2] ? p + 2 : NULL;
}

/* The state letter of process pid (R, S, D, Z, ...), or 0 if it is gone. */
static inline int mpqt_proc_state(pid_t pid)
{
    char buf[512];
    const char *s = mpqt_stat(pid, buf, sizeof buf);
    return s ? s[0] : 0;
}

/* Gives up the CPU for a moment, even to SCHED_IDLE processes: the pause
   of a loop that polls a condition. */
static inline void mpqt_pause(void)
{
    struct timespec ts = { 0, 200000 };
    nanosleep(&ts, NULL);
}

/* Waits until process `pid` sleeps in the kernel (state S/D in /proc), so a
   test can act while another process is known to be blocked. Bounded. */
static inline int mpqt_wait_sleeping(pid_t pid, int timeout_ms)
{
    int64_t end = mpqt_ms() + timeout_ms;
    while (mpqt_ms() < end) {
        int st = mpqt_proc_state(pid);
        if (st == 0) return 0;
        if (st == 'S' || st == 'D') return 1;
        mpqt_pause();
    }
    return 0;
}

/* Waits until process `pid` has ended: gone, or a zombie not yet reaped.
   Returns 1, or 0 if it still runs after timeout_ms. */
static inline int mpqt_wait_ended(pid_t pid, int timeout_ms)
{
    int64_t end = mpqt_ms() + timeout_ms;
    for (;;) {
        int st = mpqt_proc_state(pid);
        if (st == 0 || st == 'Z') return 1;
        if (mpqt_ms() >= end) return 0;
        mpqt_pause();
    }
}

/* Whether fd polls readable within timeout_ms. */
static inline int mpqt_readable(int fd, int timeout_ms)
{
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & (POLLIN | POLLHUP));
}

/* CPU time (user + system) process pid has used, in ms; -1 if unknown. */
static inline long mpqt_cpu_ms(pid_t pid)
{
    char buf[1024];
    const char *p = mpqt_stat(pid, buf, sizeof buf);
    unsigned long ut = 0, st = 0;
    long tck = sysconf(_SC_CLK_TCK);
    int field;
    if (!p || tck <= 0) return -1;
    for (field = 3; field < 14 && p; field++)   /* on to fields 14 and 15 */
        if ((p = strchr(p, ' ')) != NULL) p++;
    if (!p || sscanf(p, "%lu %lu", &ut, &st) != 2) return -1;
    return (long)((ut + st) * 1000 / (unsigned long)tck);
}

/* Fails the test if process pid burns CPU while it should be blocked:
   over a 300 ms look it may use at most 60 ms. (A window to observe, not
   a sleep that stands in for synchronisation.) */
static inline void mpqt_check_idle(pid_t pid, const char *file, int line)
{
    struct timespec look = { 0, 300000000 };
    long before = mpqt_cpu_ms(pid), after;
    nanosleep(&look, NULL);
    after = mpqt_cpu_ms(pid);
    if (before >= 0 && after >= 0 && after - before > 60)
        mpqt_fail(file, line, "process %ld used %ld ms of CPU in 300 ms while blocked", (long)pid, after - before);
}
#define CHECK_IDLE(pid) mpqt_check_idle(pid, __FILE__, __LINE__)

static inline int mpqt_exec_argv(void *arg)
{
    char **argv = (char **)arg;
    execv(argv[0], argv);
    return 127;
}

/* Starts tests/helpers/PROG (built beside the test binary) as a new
   program with up to four arguments (NULL ends them). The strings must
   stay valid until the child has exec'd: it copies them at fork. Where
   the environment names an emulator in MPQT_EMULATOR (a foreign
   architecture's suite under qemu-user, which cannot exec a foreign
   program by itself), the helper runs under it. */
static inline int mpqt_start_helper(mpq_process *p, const char *prog, const char *a1,
                                    const char *a2, const char *a3, const char *a4)
{
    char path[4200], *argv[7], **av = argv;
    const char *emu = getenv("MPQT_EMULATOR");
    snprintf(path, sizeof path, "%s/%s", mpqt_dir, prog);
    if (access(path, X_OK) != 0) {
        /* Say so now: the test would otherwise wait out its timeout. */
        fprintf(stderr, "    helper %s is missing: build tests/helpers/%s.c beside the test\n", path, prog);
        return -ENOENT;
    }
    if (emu && *emu) *av++ = (char *)emu;
    av[0] = path;
    av[1] = (char *)a1;
    av[2] = (char *)a2;
    av[3] = (char *)a3;
    av[4] = (char *)a4;
    av[5] = NULL;
    return mpq_process_start(p, mpqt_exec_argv, argv);
}

static int mpqt_run_one(const mpqt_case *c)
{
    int st = 0, pidfd;
    int64_t t0 = mpqt_ms();
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) { perror("fork"); return 0; }
    if (pid == 0) {
        mpqt_test_pid = (long)getpid();
        setpgid(0, 0);
        alarm((unsigned)c->timeout_s);
        c->fn();
        fflush(NULL);
        _exit(0);
    }
    setpgid(pid, pid);
    /* Backstop in case the test blocked SIGALRM: kill it a little later. */
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd >= 0) {
        struct pollfd p;
        p.fd = pidfd;
        p.events = POLLIN;
        p.revents = 0;
        while (poll(&p, 1, (c->timeout_s + 5) * 1000) < 0 && errno == EINTR) {}
        if (p.revents == 0) kill(pid, SIGKILL);
        close(pidfd);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    kill(-pid, SIGKILL); /* anything the test left behind */
    mpqt_unlink_names((long)pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        printf("  ok    %-40s %6.2fs\n", c->name, (double)(mpqt_ms() - t0) / 1000);
        return 1;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 87) {
        printf("  skip  %s\n", c->name);
        return 2;
    }
    if (WIFSIGNALED(st) && (WTERMSIG(st) == SIGALRM || WTERMSIG(st) == SIGKILL))
        printf("  FAIL  %s: timed out after %d s\n", c->name, c->timeout_s);
    else if (WIFSIGNALED(st))
        printf("  FAIL  %s: killed by signal %d (%s)\n", c->name, WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WEXITSTATUS(st) != 86)
        printf("  FAIL  %s: exit status %d\n", c->name, WEXITSTATUS(st));
    else
        printf("  FAIL  %s\n", c->name);
    return 0;
}

static int mpqt_main(int argc, char **argv, const mpqt_case *cases, int n)
{
    const char *filter = NULL;
    int threaded_only = 0, i, passed = 0, failed = 0, skipped = 0;
    ssize_t len;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threaded") == 0) threaded_only = 1;
        else filter = argv[i];
    }
    len = readlink("/proc/self/exe", mpqt_dir, sizeof mpqt_dir - 1);
    if (len > 0) {
        char *slash;
        mpqt_dir[len] = 0;
        slash = strrchr(mpqt_dir, '/');
        if (slash) *slash = 0;
    } else {
        strcpy(mpqt_dir, ".");
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 0; i < n; i++) {
        if (filter && !strstr(cases[i].name, filter)) continue;
        if (threaded_only && !cases[i].threaded) continue;
        switch (mpqt_run_one(&cases[i])) {
        case 1: passed++; break;
        case 2: skipped++; break;
        default: failed++;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#endif
