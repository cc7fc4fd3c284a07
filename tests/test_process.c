/* Tests of mpq_process: exit codes, death by signal, join with timeouts,
   kill, alive, output not duplicated by fork, and bad input; the zero
   handle, daemons, names, the sentinel, active_children and its registry,
   parent_process and cpu_count. CPython's own tests are ported in
   test_process_cpython.c. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

#include <sys/stat.h>
#include <sys/statfs.h>

static int return_arg(void *arg) { return (int)(intptr_t)arg; }
static int abort_now(void *arg) { (void)arg; abort(); }
static int hang(void *arg)
{
    (void)arg;
    for (;;) pause();
    return 0;
}

static int raise_usr1(void *arg) { (void)arg; raise(SIGUSR1); return 0; }

static int segfault(void *arg) { (void)arg; return mpqt_segfault(); }

static void test_process_exit_codes(void)
{
    static const int codes[] = { 0, 1, 7, 255, 256 + 3 };
    int i;
    for (i = 0; i < 5; i++) {
        mpq_process p;
        CHECK_OK(mpq_process_start(&p, return_arg, (void *)(intptr_t)codes[i]));
        CHECK(p.pid > 0);
        CHECK_EQ(mpq_process_exitcode(&p), MPQ_PROCESS_RUNNING);
        CHECK_OK(mpq_process_join(&p, 10000));
        CHECK_EQ(p.exitcode, codes[i] & 0xff);
        CHECK_EQ(mpq_process_exitcode(&p), codes[i] & 0xff);
        CHECK_OK(mpq_process_join(&p, 0));          /* again: same answer */
        CHECK_EQ(p.exitcode, codes[i] & 0xff);
        CHECK_EQ(mpq_process_alive(&p), 0);
        CHECK_ERR(mpq_process_kill(&p, SIGKILL), ESRCH); /* never a reused pid */
        CHECK_OK(mpq_process_destroy(&p));
    }
}

static void test_process_death_by_signal(void)
{
    mpq_process p;
    CHECK_OK(mpq_process_start(&p, abort_now, NULL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, -SIGABRT);
    CHECK_OK(mpq_process_start(&p, raise_usr1, NULL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, -SIGUSR1);
    CHECK_OK(mpq_process_start(&p, segfault, NULL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, -SIGSEGV);
}

static void test_process_join_timeout_and_kill(void)
{
    mpq_process p;
    int64_t t0;
    CHECK_OK(mpq_process_start(&p, hang, NULL));
    CHECK_EQ(mpq_process_alive(&p), 1);
    CHECK_ERR(mpq_process_join(&p, 0), EAGAIN);
    t0 = mpqt_ms();
    CHECK_ERR(mpq_process_join(&p, 100), ETIMEDOUT);
    CHECK(mpqt_ms() - t0 >= 99);
    CHECK(mpqt_ms() - t0 < 5000);
    CHECK_EQ(mpq_process_alive(&p), 1);
    CHECK_ERR(mpq_process_kill(&p, -1), EINVAL);
    CHECK_OK(mpq_process_kill(&p, 0));              /* exists */
    CHECK_OK(mpq_process_kill(&p, SIGTERM));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, -SIGTERM);
    CHECK_EQ(mpq_process_alive(&p), 0);
}

/* alive() looks without reaping: the status is still there for join. */
static void test_process_alive_keeps_status(void)
{
    mpq_process p;
    int64_t end = mpqt_ms() + 10000;
    CHECK_OK(mpq_process_start(&p, return_arg, (void *)(intptr_t)42));
    while (mpq_process_alive(&p) == 1 && mpqt_ms() < end) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    CHECK_EQ(mpq_process_alive(&p), 0);
    CHECK_OK(mpq_process_join(&p, 0));
    CHECK_EQ(p.exitcode, 42);
}

/* Kernels older than 5.3 have no pidfd: join falls back to polling. */
static void test_process_join_without_pidfd(void)
{
    mpq_process p;
    CHECK_OK(mpq_process_start(&p, hang, NULL));
    if (p.pidfd__ >= 0) close(p.pidfd__);
    p.pidfd__ = -ENOSYS;
    CHECK_ERR(mpq_process_sentinel(&p), ENOSYS);
    CHECK_ERR(mpq_process_join(&p, 0), EAGAIN);
    CHECK_ERR(mpq_process_join(&p, 30), ETIMEDOUT);
    CHECK_EQ(mpq_process_alive(&p), 1);
    CHECK_OK(mpq_process_kill(&p, SIGKILL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, -SIGKILL);
    CHECK_OK(mpq_process_start(&p, return_arg, (void *)(intptr_t)9));
    if (p.pidfd__ >= 0) close(p.pidfd__);
    p.pidfd__ = -ENOSYS;
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 9);
}

struct ten { uint32_t ran[10]; };

static int mark(void *arg)
{
    uint32_t *slot = (uint32_t *)arg;
    mpq__store32(slot, (uint32_t)getpid(), MPQ__RELEASE);
    return 0;
}

static void test_process_many(void)
{
    mpq_shm shm;
    struct ten *t;
    mpq_process p[10];
    int i;
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = sizeof *t }));
    t = (struct ten *)shm.addr;
    for (i = 0; i < 10; i++) CHECK_OK(mpq_process_start(&p[i], mark, &t->ran[i]));
    for (i = 0; i < 10; i++) {
        CHECK_OK(mpq_process_join(&p[i], 10000));
        CHECK_EQ(p[i].exitcode, 0);
        CHECK_EQ(t->ran[i], (uint32_t)p[i].pid);
    }
    CHECK_OK(mpq_shm_close(&shm));
}

static int print_child(void *arg)
{
    (void)arg;
    printf("child\n");
    return 0;
}

/* Output the parent buffered before start is printed once, not twice. */
static void test_process_output_not_duplicated(void)
{
    int fds[2], saved;
    char buf[256];
    ssize_t n, got = 0;
    mpq_process p;
    CHECK_OK(pipe(fds));
    fflush(stdout);
    saved = dup(1);
    dup2(fds[1], 1);
    close(fds[1]);
    setvbuf(stdout, NULL, _IOFBF, 4096);
    printf("before ");
    CHECK_OK(mpq_process_start(&p, print_child, NULL));
    CHECK_OK(mpq_process_join(&p, 10000));
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    while ((n = read(fds[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += n;
    buf[got] = 0;
    close(fds[0]);
    CHECK(strcmp(buf, "before child\n") == 0);
}

static int print_into_dead_pipe(void *arg)
{
    int *fds = (int *)arg;
    close(fds[0]);                        /* nobody reads the pipe now */
    dup2(fds[1], 1);
    setvbuf(stdout, NULL, _IOFBF, 4096);
    printf("into a pipe nobody reads\n"); /* flushed at the child's exit */
    return 7;
}

/* A child whose stdout is a pipe with no reader: the exit-time flush
   fails, and does not kill it - the status is still fn's return value,
   not -SIGPIPE (issue 12's regression test). */
static void test_process_flush_into_dead_pipe(void)
{
    int fds[2];
    mpq_process p;
    CHECK_OK(pipe(fds));
    fflush(stdout);
    CHECK_OK(mpq_process_start(&p, print_into_dead_pipe, fds));
    close(fds[0]);
    close(fds[1]);
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 7);
}

/* A stream other than stdout and stderr that the parent had buffered is
   not written again by the child. */
static void test_process_other_streams_not_duplicated(void)
{
    char path[64], buf[64];
    FILE *f;
    mpq_process p;
    size_t n;
    snprintf(path, sizeof path, "/tmp/mpqt-stream-%ld", (long)getpid());
    f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "parent line\n");              /* still in f's buffer */
    CHECK_OK(mpq_process_start(&p, return_arg, NULL));
    CHECK_OK(mpq_process_join(&p, 10000));
    fclose(f);
    f = fopen(path, "r");
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    unlink(path);
    buf[n] = 0;
    CHECK(strcmp(buf, "parent line\n") == 0);
}

/* A handle that was destroyed no longer reaches its pid, which the system
   may give to another process once the child is reaped elsewhere. */
static void test_process_destroyed_handle_signals_nothing(void)
{
    mpq_process p;
    pid_t pid;
    int st;
    CHECK_OK(mpq_process_start(&p, return_arg, NULL));
    pid = p.pid;
    CHECK_OK(mpq_process_destroy(&p));
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_ERR(mpq_process_kill(&p, SIGKILL), EINVAL);
    CHECK_ERR(mpq_process_join(&p, 0), EINVAL);
}

/* With SIGCHLD ignored the kernel reaps children itself: join says so
   instead of hanging. */
static void test_process_sigchld_ignored(void)
{
    mpq_process p;
    int rc;
    signal(SIGCHLD, SIG_IGN);
    CHECK_OK(mpq_process_start(&p, return_arg, NULL));
    rc = mpq_process_join(&p, 10000);
    CHECK_ERR(rc, ECHILD);
    signal(SIGCHLD, SIG_DFL);
}

static void test_process_bad_input(void)
{
    mpq_process p;
    memset(&p, 0, sizeof p);
    CHECK_ERR(mpq_process_start(NULL, return_arg, NULL), EINVAL);
    CHECK_ERR(mpq_process_start(&p, NULL, NULL), EINVAL);
    CHECK_ERR(mpq_process_join(&p, 0), EINVAL);
    CHECK_ERR(mpq_process_join(NULL, 0), EINVAL);
    CHECK_ERR(mpq_process_kill(&p, SIGTERM), EINVAL);
    CHECK_ERR(mpq_process_alive(&p), EINVAL);
    CHECK_ERR(mpq_process_destroy(NULL), EINVAL);
    CHECK_EQ(mpq_process_exitcode(NULL), MPQ_PROCESS_RUNNING);
}

static void *start_and_join(void *arg)
{
    mpq_process p;
    (void)arg;
    if (mpq_process_start(&p, return_arg, (void *)(intptr_t)5) != 0) return (void *)1;
    if (mpq_process_join(&p, 10000) != 0 || p.exitcode != 5) return (void *)2;
    return NULL;
}

/* Threads start and join processes of their own concurrently. */
static void test_process_from_threads(void)
{
    pthread_t t[4];
    int i;
    for (i = 0; i < 4; i++) CHECK_EQ(pthread_create(&t[i], NULL, start_and_join, NULL), 0);
    for (i = 0; i < 4; i++) {
        void *r;
        CHECK_EQ(pthread_join(t[i], &r), 0);
        CHECK(r == NULL);
    }
}

/* --- helpers of the tests below ------------------------------------------- */

static int pidfd_of(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* Reads exactly n bytes from fd, each within timeout_ms: 1, or 0. */
static int read_all(int fd, void *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r;
        if (!mpqt_readable(fd, timeout_ms)) return 0;
        r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        got += (size_t)r;
    }
    return 1;
}

static void write_byte(int fd, char c) { CHECK_EQ(write(fd, &c, 1), 1); }

/* A process's descriptors of the relay tests: the middle process reports
   its child's pid on report, waits for go, then ends as `how` says; the
   child answers each byte on ping with the same byte on pong. */
enum { END_RETURN, END_EXIT, END_HANG };
struct relay { int report[2], go[2], ping[2], pong[2]; int daemon, how; };

static int answer(void *arg)
{
    struct relay *r = (struct relay *)arg;
    char c;
    for (;;) {
        ssize_t n = read(r->ping[0], &c, 1);
        if (n == 1) {
            if (write(r->pong[1], &c, 1) != 1) return 1;
        } else if (n == 0 || errno != EINTR) {
            return 0;
        }
    }
}

/* Whether the answering child replies to one byte within timeout_ms. */
static int answers(struct relay *r, int timeout_ms)
{
    char c = 'x', back = 0;
    if (write(r->ping[1], &c, 1) != 1) return 0;
    return read_all(r->pong[0], &back, 1, timeout_ms) && back == c;
}

static int middle(void *arg)
{
    struct relay *r = (struct relay *)arg;
    mpq_process g;
    char c;
    if (mpq_process_start_with(&g, answer, r, &(mpq_process_config){ .daemon = r->daemon }) != 0) return 90;
    if (write(r->report[1], &g.pid, sizeof g.pid) != (ssize_t)sizeof g.pid) return 91;
    while (read(r->go[0], &c, 1) < 0 && errno == EINTR) {}
    if (r->how == END_EXIT) exit(0);
    if (r->how == END_HANG)
        for (;;) pause();
    return 0;
}

static void relay_open(struct relay *r, int daemon, int how)
{
    CHECK_OK(pipe(r->report));
    CHECK_OK(pipe(r->go));
    CHECK_OK(pipe(r->ping));
    CHECK_OK(pipe(r->pong));
    r->daemon = daemon;
    r->how = how;
}

static void relay_close(struct relay *r)
{
    close(r->report[0]); close(r->report[1]);
    close(r->go[0]); close(r->go[1]);
    close(r->ping[0]); close(r->ping[1]);
    close(r->pong[0]); close(r->pong[1]);
}

/* The middle process (started already, as `mid`) has started a child;
   it is then killed (END_HANG) or ends by itself. A daemon child must be
   gone - at once when the middle ended normally, as mpq waits for its
   daemons before it lets a process end - and any other child must still
   answer after its parent is gone. */
static void relay_check(struct relay *r, mpq_process *mid)
{
    pid_t child;
    int fd;
    CHECK(read_all(r->report[0], &child, sizeof child, 10000));
    CHECK((fd = pidfd_of(child)) >= 0);
    CHECK(answers(r, 10000));                        /* alive while the middle is */
    if (r->how == END_HANG) CHECK_OK(mpq_process_kill(mid, SIGKILL));
    else write_byte(r->go[1], 'g');
    CHECK_OK(mpq_process_join(mid, 10000));
    CHECK_EQ(mid->exitcode, r->how == END_HANG ? -SIGKILL : 0);
    if (r->daemon) {
        /* Killed with its parent. After a SIGKILL the kernel's signal is on
           its way (bounded wait); after a normal end it is dead already. */
        CHECK(mpqt_readable(fd, r->how == END_HANG ? 10000 : 0));
    } else {
        CHECK(answers(r, 10000));                    /* outlives its parent */
        CHECK(!mpqt_readable(fd, 0));
        CHECK_OK(syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0));
        CHECK(mpqt_readable(fd, 10000));
    }
    close(fd);
}

/* --- the zero handle ------------------------------------------------------- */

/* Every call on an unstarted handle says so and touches nothing: not
   descriptor 0 (what a zeroed pidfd would name), not pid 0 (the process
   group, for kill). */
static void check_unstarted(mpq_process *p)
{
    struct stat before, after;
    sigset_t usr1, pending;
    CHECK_OK(fstat(0, &before));
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    CHECK_OK(sigprocmask(SIG_BLOCK, &usr1, NULL));
    CHECK_ERR(mpq_process_join(p, 0), EINVAL);
    CHECK_ERR(mpq_process_join(p, 100), EINVAL);
    CHECK_ERR(mpq_process_kill(p, SIGUSR1), EINVAL);
    CHECK_ERR(mpq_process_alive(p), EINVAL);
    CHECK_EQ(mpq_process_exitcode(p), MPQ_PROCESS_RUNNING);
    CHECK_ERR(mpq_process_sentinel(p), EINVAL);
    CHECK_ERR(mpq_process_destroy(p), EINVAL);
    CHECK_OK(sigpending(&pending));
    CHECK(!sigismember(&pending, SIGUSR1));       /* nothing signalled */
    CHECK_OK(fstat(0, &after));                   /* fd 0 still open, the same file */
    CHECK(before.st_ino == after.st_ino && before.st_dev == after.st_dev);
}

static mpq_process zero_static;

static void test_process_zero_value(void)
{
    mpq_process z = {0}, init = MPQ_PROCESS_INIT, p;
    int fds[2];
    CHECK_OK(pipe(fds));
    CHECK(dup2(fds[0], 0) == 0);                  /* fd 0 is something to lose */
    check_unstarted(&z);
    check_unstarted(&init);
    check_unstarted(&zero_static);
    CHECK_EQ(init.exitcode, MPQ_PROCESS_RUNNING);
    CHECK_EQ(init.pidfd__, -1);
    CHECK_EQ(init.pid, 0);
    CHECK_EQ(init.name[0], 0);
    /* start needs no prepared handle: garbage is fine */
    memset(&p, 0xa5, sizeof p);
    CHECK_OK(mpq_process_start(&p, return_arg, (void *)(intptr_t)3));
    CHECK(p.pid > 0);
    CHECK_EQ(p.daemon, 0);
    CHECK_EQ(mpq_process_exitcode(&p), MPQ_PROCESS_RUNNING);
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 3);
    /* joined: the process is gone, the handle is still started */
    CHECK_ERR(mpq_process_sentinel(&p), ESRCH);
    CHECK_ERR(mpq_process_kill(&p, SIGKILL), ESRCH);
    CHECK_EQ(mpq_process_alive(&p), 0);
    CHECK_OK(mpq_process_join(&p, 0));
    CHECK_OK(mpq_process_destroy(&p));
    check_unstarted(&p);                          /* destroyed is unstarted again */
    CHECK_EQ(p.pidfd__, -1);
    /* a zeroed handle starts like any other */
    CHECK_OK(mpq_process_start(&z, return_arg, (void *)(intptr_t)4));
    MPQT_JOIN_OK(&z, 4);
    CHECK_OK(mpq_process_destroy(&z));
}

/* --- daemons ----------------------------------------------------------------- */

/* A daemon dies with its parent when the parent is SIGKILLed
   (PR_SET_PDEATHSIG); a plain child lives on. */
static void test_process_daemon_parent_killed(void)
{
    int daemon;
    for (daemon = 1; daemon >= 0; daemon--) {
        struct relay r;
        mpq_process mid;
        relay_open(&r, daemon, END_HANG);
        CHECK_OK(mpq_process_start(&mid, middle, &r));
        relay_check(&r, &mid);
        relay_close(&r);
    }
}

/* A daemon dies when its parent's fn returns or the parent calls exit()
   (it is killed and waited for first); a plain child lives on. */
static void test_process_daemon_parent_exits(void)
{
    int daemon, how;
    for (how = END_RETURN; how <= END_EXIT; how++) {
        for (daemon = 1; daemon >= 0; daemon--) {
            struct relay r;
            mpq_process mid;
            relay_open(&r, daemon, how);
            CHECK_OK(mpq_process_start(&mid, middle, &r));
            relay_check(&r, &mid);
            relay_close(&r);
        }
    }
}

/* The same with a parent that is a program of its own: returns from main,
   calls exit(), or is SIGKILLed. */
static void test_process_daemon_parent_program(void)
{
    static const char *ways[] = { "return", "exit", "hang" };
    int daemon, how;
    for (how = END_RETURN; how <= END_HANG; how++) {
        for (daemon = 1; daemon >= 0; daemon--) {
            char fdlist[64];
            struct relay r;
            mpq_process mid;
            relay_open(&r, daemon, how);
            snprintf(fdlist, sizeof fdlist, "%d,%d,%d,%d", r.report[1], r.go[0], r.ping[0], r.pong[1]);
            CHECK_OK(mpqt_start_helper(&mid, "process_peer", daemon ? "daemon" : "plain", ways[how], fdlist, NULL));
            relay_check(&r, &mid);
            relay_close(&r);
        }
    }
}

static int call_exit(void *arg) { (void)arg; exit(5); }

/* A child calling exit() runs the inherited atexit handler, which must
   kill nothing of its parent's: neither a child mpq started (its registry
   was emptied) nor one a bare fork() made (the copy is not its own). */
static void test_process_daemon_exit_in_child_spares_siblings(void)
{
    struct relay r;
    mpq_process d, c;
    pid_t pid;
    int st;
    relay_open(&r, 1, END_HANG);
    CHECK_OK(mpq_process_start_with(&d, answer, &r, &(mpq_process_config){ .daemon = 1 }));
    CHECK(answers(&r, 10000));
    CHECK_OK(mpq_process_start(&c, call_exit, NULL));
    MPQT_JOIN_OK(&c, 5);
    CHECK(answers(&r, 10000));
    fflush(stdout);
    pid = fork();
    if (pid == 0) exit(6);
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 6);
    CHECK(answers(&r, 10000));
    CHECK_EQ(mpq_process_alive(&d), 1);
    CHECK_OK(mpq_process_kill(&d, SIGKILL));
    MPQT_JOIN_OK(&d, -SIGKILL);
    relay_close(&r);
}

/* The PR_SET_PDEATHSIG caveat the header documents: a daemon started
   from a thread dies when that thread ends (here once the child runs). */
static mpq_process thread_daemon;

static void *start_daemon_thread(void *arg)
{
    struct relay *r = (struct relay *)arg;
    char c;
    if (mpq_process_start_with(&thread_daemon, answer, r, &(mpq_process_config){ .daemon = 1 }) != 0)
        return (void *)1;
    if (write(r->ping[1], "x", 1) != 1 || !read_all(r->pong[0], &c, 1, 10000)) return (void *)2;
    return NULL;
}

static void test_process_daemon_thread_caveat(void)
{
    mpq_process *p = &thread_daemon;
    struct relay r;
    pthread_t t;
    void *rc;
    relay_open(&r, 1, END_HANG);
    CHECK_EQ(pthread_create(&t, NULL, start_daemon_thread, &r), 0);
    CHECK_EQ(pthread_join(t, &rc), 0);
    CHECK_EQ((intptr_t)rc, 0);
    CHECK(mpqt_readable(mpq_process_sentinel(p), 10000));   /* the thread's end killed it */
    MPQT_JOIN_OK(p, -SIGKILL);
    CHECK_EQ(p->daemon, 1);
    relay_close(&r);
}

/* --- names ------------------------------------------------------------------- */

struct names { char self[4][MPQ_PROCESS_NAME_MAX]; char comm[4][32]; char nested[MPQ_PROCESS_NAME_MAX]; };
static struct names *nm;

static void read_comm(char *buf, size_t n)
{
    FILE *f = fopen("/proc/self/comm", "r");
    buf[0] = 0;
    if (!f) return;
    if (fgets(buf, (int)n, f)) buf[strcspn(buf, "\n")] = 0;
    fclose(f);
}

static int report_name(void *arg)
{
    int i = (int)(intptr_t)arg;
    snprintf(nm->self[i], sizeof nm->self[i], "%s", mpq_current_process_name());
    read_comm(nm->comm[i], sizeof nm->comm[i]);
    if (i == 0) {   /* and a child of its own: Process-1:1 */
        mpq_process g;
        if (mpq_process_start(&g, report_name, (void *)(intptr_t)3) != 0) return 1;
        if (mpq_process_join(&g, 10000) != 0 || g.exitcode != 0) return 2;
        memcpy(nm->nested, g.name, sizeof nm->nested);
    }
    return 0;
}

static void test_process_names(void)
{
    static const char longname[] = "a-name-well-past-thirty-one-bytes-long";
    mpq_process p[3];
    pid_t pid;
    int st;
    nm = (struct names *)mpqt_shared(sizeof *nm);
    CHECK(strcmp(mpq_current_process_name(), "MainProcess") == 0);
    CHECK_OK(mpq_process_start(&p[0], report_name, (void *)(intptr_t)0));
    CHECK(strcmp(p[0].name, "Process-1") == 0);
    CHECK_OK(mpq_process_start_with(&p[1], report_name, (void *)(intptr_t)1,
                                    &(mpq_process_config){ .name = longname }));
    CHECK_EQ(strlen(p[1].name), MPQ_PROCESS_NAME_MAX - 1);
    CHECK(strncmp(p[1].name, longname, MPQ_PROCESS_NAME_MAX - 1) == 0);
    CHECK_OK(mpq_process_start_with(&p[2], report_name, (void *)(intptr_t)2,
                                    &(mpq_process_config){ .name = "" }));
    CHECK(strcmp(p[2].name, "Process-3") == 0);   /* the named start counted too */
    MPQT_JOIN_OK(&p[0], 0);
    MPQT_JOIN_OK(&p[1], 0);
    MPQT_JOIN_OK(&p[2], 0);
    CHECK(strcmp(nm->self[0], "Process-1") == 0);
    CHECK(strcmp(nm->comm[0], "Process-1") == 0);
    CHECK(strcmp(nm->self[1], p[1].name) == 0);
    CHECK(strlen(nm->comm[1]) == 15 && strncmp(nm->comm[1], longname, 15) == 0);
    CHECK(strcmp(nm->self[2], "Process-3") == 0);
    CHECK(strcmp(nm->nested, "Process-1:1") == 0);
    CHECK(strcmp(nm->self[3], "Process-1:1") == 0);
    CHECK(strcmp(nm->comm[3], "Process-1:1") == 0);
    CHECK(strcmp(mpq_current_process_name(), "MainProcess") == 0);
    /* A child fork() made directly is no process mpq started. */
    fflush(stdout);
    if ((pid = fork()) == 0) _exit(strcmp(mpq_current_process_name(), "MainProcess") == 0 ? 0 : 1);
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* --- the sentinel ---------------------------------------------------------- */

struct two_pipes { int out[2], in[2]; };

static int say_then_wait(void *arg)
{
    struct two_pipes *t = (struct two_pipes *)arg;
    char c = 's';
    if (write(t->out[1], &c, 1) != 1) return 1;
    while (read(t->in[0], &c, 1) < 0 && errno == EINTR) {}
    return 12;
}

/* The sentinel in one poll() with a pipe: the pipe first, then the
   sentinel when the child ends. */
static void test_process_sentinel_in_poll(void)
{
    struct two_pipes t;
    struct pollfd fds[2];
    mpq_process p;
    char c;
    int s;
    CHECK_OK(pipe(t.out));
    CHECK_OK(pipe(t.in));
    CHECK_OK(mpq_process_start(&p, say_then_wait, &t));
    CHECK((s = mpq_process_sentinel(&p)) >= 0);
    CHECK_EQ(s, mpq_process_sentinel(&p));     /* the handle's own, every time */
    fds[0].fd = t.out[0];
    fds[1].fd = s;
    fds[0].events = fds[1].events = POLLIN;
    fds[0].revents = fds[1].revents = 0;
    CHECK_EQ(poll(fds, 2, 10000), 1);
    CHECK(fds[0].revents & POLLIN);
    CHECK_EQ(fds[1].revents, 0);
    CHECK_EQ(read(t.out[0], &c, 1), 1);
    CHECK(!mpqt_readable(s, 0));
    write_byte(t.in[1], 'e');
    fds[0].revents = fds[1].revents = 0;
    CHECK_EQ(poll(fds, 2, 10000), 1);
    CHECK_EQ(fds[0].revents, 0);
    CHECK(fds[1].revents & POLLIN);
    CHECK_EQ(mpq_process_alive(&p), 0);
    MPQT_JOIN_OK(&p, 12);
    CHECK_ERR(mpq_process_sentinel(&p), ESRCH);
    CHECK_ERR(mpq_process_sentinel(NULL), EINVAL);
    close(t.out[0]); close(t.out[1]); close(t.in[0]); close(t.in[1]);
}

/* The same with an mpq connection beside the sentinel (Python's
   connection.wait over a Connection and p.sentinel): a message first,
   then the end. */
static mpq_conn *sent_a, *sent_b;
static int send_then_wait(void *arg)
{
    char c;
    size_t n;
    (void)arg;
    if (mpq_conn_send(sent_b, "hi", 2) != 0) return 1;
    if (mpq_conn_recv(sent_b, &c, 1, &n, -1) != 0) return 2;
    return 13;
}
static void test_process_sentinel_with_connection(void)
{
    struct pollfd fds[2];
    mpq_process p;
    char buf[8];
    size_t len = 0;
    CHECK_OK(mpq_pipe(&sent_a, &sent_b, 1));
    CHECK_OK(mpq_process_start(&p, send_then_wait, NULL));
    fds[0].fd = mpq_conn_fileno(sent_a);
    fds[1].fd = mpq_process_sentinel(&p);
    CHECK(fds[1].fd >= 0);
    fds[0].events = fds[1].events = POLLIN;
    fds[0].revents = fds[1].revents = 0;
    CHECK_EQ(poll(fds, 2, 10000), 1);
    CHECK(fds[0].revents & POLLIN);
    CHECK_EQ(fds[1].revents, 0);
    CHECK_OK(mpq_conn_recv(sent_a, buf, sizeof buf, &len, 0));
    CHECK_EQ(len, 2);
    CHECK_OK(mpq_conn_send(sent_a, "x", 1));
    fds[0].revents = fds[1].revents = 0;
    CHECK(poll(fds, 2, 10000) >= 1);
    CHECK(fds[1].revents & POLLIN);
    MPQT_JOIN_OK(&p, 13);
    mpq_conn_close(sent_a);
    mpq_conn_close(sent_b);
}

/* --- active_children --------------------------------------------------------- */

static int exit_with_byte(void *arg)
{
    int fd = *(int *)arg;
    unsigned char c = 0;
    while (read(fd, &c, 1) < 0 && errno == EINTR) {}
    return c;
}

/* 0 when this process's registry is empty and lists no child. */
static int count_children(void *arg)
{
    (void)arg;
    return mpq_active_children(NULL, 0) == 0 && mpq__reg.n == 0 ? 0 : 1;
}

static int has_pid(const pid_t *pids, int n, pid_t pid)
{
    int i;
    for (i = 0; i < n; i++)
        if (pids[i] == pid) return 1;
    return 0;
}

/* Lists the live children, reaps the ended ones (no zombie left), and a
   join afterwards still gives the exit status. */
static void test_process_active_children(void)
{
    int pipes[3][2], i, n, st;
    mpq_process p[3], c;
    pid_t pids[8], one, pid, untracked;
    CHECK_EQ(mpq_active_children(pids, 8), 0);
    CHECK_EQ(mpq_active_children(NULL, 0), 0);
    CHECK_ERR(mpq_active_children(NULL, 1), EINVAL);
    CHECK_ERR(mpq_active_children(pids, -1), EINVAL);
    for (i = 0; i < 3; i++) {
        CHECK_OK(pipe(pipes[i]));
        CHECK_OK(mpq_process_start(&p[i], exit_with_byte, &pipes[i][0]));
    }
    n = mpq_active_children(pids, 8);
    CHECK_EQ(n, 3);
    for (i = 0; i < 3; i++) CHECK(has_pid(pids, n, p[i].pid));
    one = 0;
    CHECK_EQ(mpq_active_children(&one, 1), 3);     /* the count, past the room */
    CHECK(has_pid(pids, n, one));
    /* A child's own registry is empty: its parent's children are not its. */
    CHECK_OK(mpq_process_start(&c, count_children, NULL));
    MPQT_JOIN_OK(&c, 0);
    fflush(stdout);
    if ((pid = fork()) == 0) _exit(count_children(NULL));
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    /* p[1] ends: active_children reaps it... */
    write_byte(pipes[1][1], 7);
    CHECK(mpqt_readable(mpq_process_sentinel(&p[1]), 10000));
    CHECK_EQ(mpqt_proc_state(p[1].pid), 'Z');
    n = mpq_active_children(pids, 8);
    CHECK_EQ(n, 2);
    CHECK(!has_pid(pids, n, p[1].pid));
    CHECK_EQ(mpqt_proc_state(p[1].pid), 0);        /* no zombie */
    CHECK_EQ(mpq_process_alive(&p[1]), 0);
    CHECK_ERR(mpq_process_kill(&p[1], SIGKILL), ESRCH);
    CHECK_EQ(mpq__reg.n, 3);                        /* its status waits for join */
    /* ...and its join still gives the exit status. */
    CHECK_OK(mpq_process_join(&p[1], 0));
    CHECK_EQ(p[1].exitcode, 7);
    CHECK_EQ(mpq__reg.n, 2);
    /* One killed, one destroyed: neither is listed. */
    CHECK_OK(mpq_process_kill(&p[0], SIGKILL));
    CHECK(mpqt_readable(mpq_process_sentinel(&p[0]), 10000));
    untracked = p[2].pid;
    CHECK_OK(mpq_process_destroy(&p[2]));
    CHECK_EQ(mpq_active_children(pids, 8), 0);
    MPQT_JOIN_OK(&p[0], -SIGKILL);
    CHECK_EQ(mpq__reg.n, 0);
    write_byte(pipes[2][1], 9);                     /* untracked now: reap it ourselves */
    CHECK(waitpid(untracked, &st, 0) == untracked && WIFEXITED(st) && WEXITSTATUS(st) == 9);
    for (i = 0; i < 3; i++) { close(pipes[i][0]); close(pipes[i][1]); }
}

/* The registry holds unjoined children only: thousands of starts and joins
   (some reaped by active_children first) leave it at its first size. */
static void test_process_registry_stays_small(void)
{
    mpq_process p[100];
    int i;
    for (i = 0; i < 1000; i++) {
        CHECK_OK(mpq_process_start(&p[0], return_arg, (void *)(intptr_t)(i & 0x7f)));
        if (i % 3 == 0) {
            CHECK(mpqt_readable(mpq_process_sentinel(&p[0]), 10000));
            CHECK_EQ(mpq_active_children(NULL, 0), 0);
        }
        MPQT_JOIN_OK(&p[0], i & 0x7f);
        CHECK_EQ(mpq__reg.n, 0);
    }
    CHECK_EQ(mpq__reg.cap, 16);
    for (i = 0; i < 100; i++) CHECK_OK(mpq_process_start(&p[i], return_arg, NULL));
    CHECK_EQ(mpq__reg.n, 100);
    for (i = 0; i < 100; i++) MPQT_JOIN_OK(&p[i], 0);
    CHECK_EQ(mpq__reg.n, 0);
    CHECK_EQ(mpq__reg.cap, 16);                      /* shrunk back */
}

static void *hold_registry(void *arg)
{
    int *fds = (int *)arg;
    char c = 'h';
    mpq__reg_lock();
    if (write(fds[1], &c, 1) != 1) abort();
    while (read(fds[2], &c, 1) < 0 && errno == EINTR) {}
    mpq__reg_unlock();
    return NULL;
}

/* A fork while another thread holds the registry's lock: the child (made
   by fork() directly) finds an empty registry and a free lock, and can
   start and list children of its own. */
static void test_process_fork_while_registry_locked(void)
{
    int a[2], b[2], fds[3], st;
    pthread_t t;
    pid_t pid;
    char c;
    CHECK_OK(pipe(a));
    CHECK_OK(pipe(b));
    fds[0] = a[0]; fds[1] = a[1]; fds[2] = b[0];
    CHECK_EQ(pthread_create(&t, NULL, hold_registry, fds), 0);
    CHECK(read_all(a[0], &c, 1, 10000));
    fflush(stdout);
    if ((pid = fork()) == 0) {
        mpq_process g;
        if (mpq_active_children(NULL, 0) != 0) _exit(1);
        if (mpq_process_start(&g, return_arg, (void *)(intptr_t)8) != 0) _exit(2);
        if (mpq_active_children(NULL, 0) > 1) _exit(3);
        if (mpq_process_join(&g, 10000) != 0 || g.exitcode != 8) _exit(4);
        _exit(0);
    }
    CHECK(pid > 0);
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    write_byte(b[1], 'r');
    CHECK_EQ(pthread_join(t, NULL), 0);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

/* mpq_process_start forks while another thread holds the registry's lock
   (a pthread_atfork handler makes that thread take it just before the
   fork): the child must still start, list and join children of its own. */
static int hold_fds[4];   /* a: holder -> main, b: main -> holder */
static pid_t hold_owner;

static void hold_prepare(void)
{
    char c = 'p';
    if (getpid() != hold_owner) return;
    if (write(hold_fds[3], &c, 1) != 1 || !read_all(hold_fds[0], &c, 1, 10000)) abort();
}

static void hold_parent(void)
{
    char c = 'r';
    if (getpid() != hold_owner) return;
    if (write(hold_fds[3], &c, 1) != 1 || !read_all(hold_fds[0], &c, 1, 10000)) abort();
}

static void *hold_on_request(void *arg)
{
    char c;
    (void)arg;
    while (read_all(hold_fds[2], &c, 1, 30000)) {
        if (c == 'p') mpq__reg_lock();
        else mpq__reg_unlock();
        if (write(hold_fds[1], &c, 1) != 1) abort();
    }
    return NULL;
}

static int grandchild_and_list(void *arg);

static void test_process_start_while_registry_locked(void)
{
    pthread_t t;
    mpq_process p;
    int i;
    CHECK_OK(pipe(hold_fds));
    CHECK_OK(pipe(hold_fds + 2));
    hold_owner = getpid();
    CHECK_EQ(pthread_create(&t, NULL, hold_on_request, NULL), 0);
    CHECK_EQ(pthread_atfork(hold_prepare, hold_parent, NULL), 0);
    for (i = 0; i < 3; i++) {
        CHECK_OK(mpq_process_start(&p, grandchild_and_list, NULL));
        MPQT_JOIN_OK(&p, 0);
    }
    hold_owner = 0;
    close(hold_fds[3]);
    CHECK_EQ(pthread_join(t, NULL), 0);
}

static int grandchild_and_list(void *arg)
{
    mpq_process g;
    (void)arg;
    if (mpq_active_children(NULL, 0) != 0) return 1;
    if (mpq_process_start(&g, return_arg, (void *)(intptr_t)2) != 0) return 2;
    if (mpq_process_join(&g, 10000) != 0 || g.exitcode != 2) return 3;
    return 0;
}

static uint32_t churn_stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!mpq__load32(&churn_stop, MPQ__ACQUIRE)) mpq_active_children(NULL, 0);
    return NULL;
}

/* Threads list children while others start and join theirs: every child
   forked while some thread held the lock still works (no deadlock), and
   every join gets its own child's status. */
static void test_process_registry_threads(void)
{
    pthread_t t[2];
    int i;
    for (i = 0; i < 2; i++) CHECK_EQ(pthread_create(&t[i], NULL, churn, NULL), 0);
    for (i = 0; i < 40; i++) {
        mpq_process p;
        CHECK_OK(mpq_process_start(&p, grandchild_and_list, NULL));
        MPQT_JOIN_OK(&p, 0);
    }
    mpq__store32(&churn_stop, 1, MPQ__RELEASE);
    for (i = 0; i < 2; i++) CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(mpq__reg.n, 0);
}

/* --- parent_process ---------------------------------------------------------- */

static int parent_is(void *arg)
{
    pid_t want = (pid_t)(intptr_t)arg, got = 0;
    if (mpq_parent_process(&got) != 1 || got != want) return 1;
    if (mpq_parent_process(NULL) != 1) return 2;
    return 0;
}

/* The grandchild: reports its parent alive, waits (pidfd) until the parent
   has ended, then reports again. */
static int watch_parent(void *arg)
{
    struct relay *r = (struct relay *)arg;
    pid_t parent = 0;
    int st[2], fd;
    st[0] = mpq_parent_process(&parent);
    fd = pidfd_of(parent);
    if (fd < 0 || mpq_parent_process(NULL) != 1) return 1;   /* fd is our parent's */
    if (write(r->pong[1], &st[0], sizeof st[0]) != (ssize_t)sizeof st[0]) return 2;
    if (!mpqt_readable(fd, 30000)) return 3;
    st[1] = mpq_parent_process(&parent);
    if (write(r->pong[1], &st[1], sizeof st[1]) != (ssize_t)sizeof st[1]) return 4;
    return 0;
}

static int start_watcher(void *arg)
{
    mpq_process g;
    if (mpq_process_start(&g, watch_parent, arg) != 0) return 1;
    for (;;) pause();
}

static void test_process_parent_process(void)
{
    struct relay r;
    mpq_process p, mid;
    pid_t pid;
    int st;
    CHECK_ERR(mpq_parent_process(&pid), ESRCH);     /* Python's None */
    CHECK_ERR(mpq_parent_process(NULL), ESRCH);
    CHECK_OK(mpq_process_start(&p, parent_is, (void *)(intptr_t)getpid()));
    MPQT_JOIN_OK(&p, 0);
    fflush(stdout);
    if ((pid = fork()) == 0) _exit(mpq_parent_process(NULL) == -ESRCH ? 0 : 1);
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* alive, then ended once its parent is killed */
    relay_open(&r, 0, END_HANG);
    CHECK_OK(mpq_process_start(&mid, start_watcher, &r));
    CHECK(read_all(r.pong[0], &st, sizeof st, 10000));
    CHECK_EQ(st, 1);
    CHECK_OK(mpq_process_kill(&mid, SIGKILL));
    MPQT_JOIN_OK(&mid, -SIGKILL);
    CHECK(read_all(r.pong[0], &st, sizeof st, 30000));
    CHECK_EQ(st, 0);
    relay_close(&r);
}

/* --- cpu_count ----------------------------------------------------------------- */

/* In a child: narrows its affinity to its first `want` allowed CPUs (1:
   taskset -c FIRST) and returns mpq_cpu_count() + 100, or 0 when there
   are not that many CPUs to narrow to. */
static int cpu_count_in(void *arg)
{
    int want = (int)(intptr_t)arg, have = 0, i;
    cpu_set_t set, narrow;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    CPU_ZERO(&narrow);
    for (i = 0; i < CPU_SETSIZE && have < want; i++)
        if (CPU_ISSET(i, &set)) {
            CPU_SET(i, &narrow);
            have++;
        }
    if (have < want) return 0;
    if (sched_setaffinity(0, sizeof narrow, &narrow) != 0) return 2;
    return 100 + mpq_cpu_count();
}

static void test_process_cpu_count(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long quota = mpq__cgroup_cpus("/proc/self/cgroup", "/proc/self/mountinfo");
    cpu_set_t set;
    mpq_process p;
    int n = mpq_cpu_count();
    CHECK(n >= 1);
    CHECK(n <= online);
    CHECK(quota == 0 || n <= quota);
    CHECK_OK(sched_getaffinity(0, sizeof set, &set));
    CHECK_EQ(n, quota > 0 && quota < CPU_COUNT(&set) ? quota : CPU_COUNT(&set));
    CHECK_OK(mpq_process_start(&p, cpu_count_in, (void *)(intptr_t)1));
    MPQT_JOIN_OK(&p, 101);
    CHECK_OK(mpq_process_start(&p, cpu_count_in, (void *)(intptr_t)2));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK(p.exitcode == 0 || p.exitcode == (quota == 1 ? 101 : 102));
    CHECK_EQ(mpq_cpu_count(), n);           /* the child's mask was its own */
}

/* Writes text to dir/name (dir/name's directories made as needed). */
static void put_file(const char *dir, const char *name, const char *text)
{
    char path[600], *s;
    FILE *f;
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    for (s = path + strlen(dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = 0;
        mkdir(path, 0700);
        *s = '/';
    }
    CHECK((f = fopen(path, "w")) != NULL);
    fputs(text, f);
    fclose(f);
}

/* The cgroup quota from made-up /proc/self/cgroup and mountinfo files:
   v2 with limits on the cgroup and its ancestors, v1 mounted from a
   subtree (a container without a cgroup namespace), both, none. */
static void test_process_cpu_count_cgroup_files(void)
{
    char d[128], mi[256], cg[256], text[1024];
    snprintf(d, sizeof d, "/tmp/mpqt-cg-%ld", (long)getpid());
    snprintf(mi, sizeof mi, "%s/mountinfo", d);
    snprintf(cg, sizeof cg, "%s/cgroup", d);
    snprintf(text, sizeof text,
             "22 1 0:20 / /proc rw - proc proc rw\n"
             "30 22 0:27 / %s/v2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
             "31 22 0:28 /docker/abc %s/v1cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
             "32 22 0:29 / %s/v1mem rw - cgroup cgroup rw,memory\n", d, d, d);
    put_file(d, "mountinfo", text);
    /* v2 only: leaf "max", parent 2.5 CPUs, grandparent 4: 3 */
    put_file(d, "cgroup", "0::/a/b/c\n");
    put_file(d, "v2/a/b/c/cpu.max", "max 100000\n");
    put_file(d, "v2/a/b/cpu.max", "250000 100000\n");
    put_file(d, "v2/a/cpu.max", "400000 100000\n");
    CHECK_EQ(mpq__cgroup_cpus(cg, mi), 3);
    put_file(d, "v2/cpu.max", "50000 100000\n");        /* the mount's root, half a CPU: 1 */
    CHECK_EQ(mpq__cgroup_cpus(cg, mi), 1);
    put_file(d, "v2/cpu.max", "max 100000\n");
    put_file(d, "v2/a/b/cpu.max", "max 100000\n");
    put_file(d, "v2/a/cpu.max", "max 100000\n");
    CHECK_EQ(mpq__cgroup_cpus(cg, mi), 0);              /* no limit */
    /* v1: the process is in /docker/abc/sub, the mount's root is /docker/abc */
    put_file(d, "cgroup", "5:memory:/docker/abc/sub\n4:cpu,cpuacct:/docker/abc/sub\n0::/a/b/c\n");
    put_file(d, "v1cpu/sub/cpu.cfs_quota_us", "-1\n");
    put_file(d, "v1cpu/sub/cpu.cfs_period_us", "100000\n");
    put_file(d, "v1cpu/cpu.cfs_quota_us", "150000\n");
    put_file(d, "v1cpu/cpu.cfs_period_us", "100000\n");
    CHECK_EQ(mpq__cgroup_cpus(cg, mi), 2);
    put_file(d, "v2/a/b/c/cpu.max", "100000 100000\n"); /* both: the tighter one */
    CHECK_EQ(mpq__cgroup_cpus(cg, mi), 1);
    put_file(d, "cgroup", "4:cpu,cpuacct:/elsewhere\n");
    CHECK_EQ(mpq__cgroup_cpus(cg, mi), 0);              /* not under the mount: unknown */
    put_file(d, "cgroup", "3:cpuacct:/docker/abc\n");
    CHECK_EQ(mpq__cgroup_cpus(cg, mi), 0);              /* no cpu controller */
    CHECK_EQ(mpq__cgroup_cpus("/nonexistent/cgroup", mi), 0);
    snprintf(text, sizeof text, "rm -rf '%s'", d);
    CHECK_EQ(system(text), 0);
}

/* A real cgroup with a CPU quota of half a CPU, where this test may make
   one (root, a writable cpu hierarchy): a child moved into it counts 1. */
static int count_after_move(void *arg)
{
    const char *procs = (const char *)arg;
    char buf[32];
    int fd = open(procs, O_WRONLY);
    if (fd < 0) return 100;
    snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (write(fd, buf, strlen(buf)) < 0) return 101;
    close(fd);
    return mpq_cpu_count();
}

static void test_process_cpu_count_real_cgroup(void)
{
    static const char *tries[][3] = {
        { "/sys/fs/cgroup", "cpu.max", "50000 100000" },                 /* v2 */
        { "/sys/fs/cgroup/cpu", "cpu.cfs_quota_us", "50000" },           /* v1 */
        { "/sys/fs/cgroup/cpu,cpuacct", "cpu.cfs_quota_us", "50000" },
    };
    char dir[256], file[300], procs[300];
    mpq_process p;
    unsigned i;
    for (i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        struct statfs fs;
        FILE *f;
        if (statfs(tries[i][0], &fs) != 0 ||
            (fs.f_type != 0x63677270 && fs.f_type != 0x27e0eb))   /* cgroup2, cgroup */
            continue;
        snprintf(dir, sizeof dir, "%s/mpqt-%ld", tries[i][0], (long)getpid());
        if (mkdir(dir, 0755) != 0) continue;
        snprintf(file, sizeof file, "%s/%s", dir, tries[i][1]);
        snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
        if ((f = fopen(file, "w")) == NULL || fputs(tries[i][2], f) < 0 || fclose(f) != 0) {
            rmdir(dir);
            continue;
        }
        CHECK_OK(mpq_process_start(&p, count_after_move, procs));
        CHECK_OK(mpq_process_join(&p, 10000));
        rmdir(dir);
        if (p.exitcode == 100 || p.exitcode == 101) continue;   /* cannot move there */
        CHECK_EQ(p.exitcode, 1);
        return;
    }
    printf("    (no writable cgroup with a cpu controller here: checked the files only)\n");
}

static const mpqt_case cases[] = {
    MPQT(test_process_exit_codes, 10, 0),
    MPQT(test_process_death_by_signal, 10, 0),
    MPQT(test_process_join_timeout_and_kill, 10, 0),
    MPQT(test_process_alive_keeps_status, 15, 0),
    MPQT(test_process_join_without_pidfd, 15, 0),
    MPQT(test_process_many, 20, 0),
    MPQT(test_process_output_not_duplicated, 10, 0),
    MPQT(test_process_flush_into_dead_pipe, 10, 0),
    MPQT(test_process_other_streams_not_duplicated, 10, 0),
    MPQT(test_process_destroyed_handle_signals_nothing, 10, 0),
    MPQT(test_process_sigchld_ignored, 15, 0),
    MPQT(test_process_bad_input, 10, 0),
    MPQT(test_process_from_threads, 20, 1),
    MPQT(test_process_zero_value, 10, 0),
    MPQT(test_process_daemon_parent_killed, 30, 0),
    MPQT(test_process_daemon_parent_exits, 30, 0),
    MPQT(test_process_daemon_parent_program, 30, 0),
    MPQT(test_process_daemon_exit_in_child_spares_siblings, 20, 0),
    MPQT(test_process_daemon_thread_caveat, 20, 1),
    MPQT(test_process_names, 10, 0),
    MPQT(test_process_sentinel_with_connection, 30, 0),
    MPQT(test_process_sentinel_in_poll, 20, 0),
    MPQT(test_process_active_children, 20, 0),
    MPQT(test_process_registry_stays_small, 90, 0),
    MPQT(test_process_fork_while_registry_locked, 20, 1),
    MPQT(test_process_start_while_registry_locked, 20, 1),
    MPQT(test_process_registry_threads, 60, 1),
    MPQT(test_process_parent_process, 40, 0),
    MPQT(test_process_cpu_count, 10, 0),
    MPQT(test_process_cpu_count_cgroup_files, 10, 0),
    MPQT(test_process_cpu_count_real_cgroup, 10, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
