/* Tests of mpq_process: exit codes, death by signal, join with timeouts,
   kill, alive, output not duplicated by fork, and bad input. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

static int return_arg(void *arg) { return (int)(intptr_t)arg; }
static int abort_now(void *arg) { (void)arg; abort(); }
static int hang(void *arg)
{
    (void)arg;
    for (;;) pause();
    return 0;
}

static int raise_usr1(void *arg) { (void)arg; raise(SIGUSR1); return 0; }

#if !MPQT_ASAN  /* ASan turns a segfault into exit(1) */
static int segfault(void *arg)
{
    volatile int *p = (volatile int *)arg;
    return *p;
}
#endif

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
#if !MPQT_ASAN
    CHECK_OK(mpq_process_start(&p, segfault, NULL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, -SIGSEGV);
#endif
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
    p.pidfd__ = -1;
    CHECK_ERR(mpq_process_join(&p, 0), EAGAIN);
    CHECK_ERR(mpq_process_join(&p, 30), ETIMEDOUT);
    CHECK_EQ(mpq_process_alive(&p), 1);
    CHECK_OK(mpq_process_kill(&p, SIGKILL));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, -SIGKILL);
    CHECK_OK(mpq_process_start(&p, return_arg, (void *)(intptr_t)9));
    if (p.pidfd__ >= 0) close(p.pidfd__);
    p.pidfd__ = -1;
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
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
