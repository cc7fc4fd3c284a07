/* Ports of CPython's multiprocessing tests of Process
   (Lib/test/_test_multiprocessing.py) to mpq.h:

     _TestProcess    test_current, test_daemon_argument,
                     test_parent_process_attributes, test_parent_process,
                     test_process, test_terminate, test_kill,
                     test_interrupt, test_interrupt_no_handler,
                     test_cpu_count, test_active_children, test_recursion,
                     test_sentinel, test_close, test_many_processes,
                     test_error_on_stdio_flush_1, test_error_on_stdio_flush_2
     _TestSubclassingProcess
                     test_subclassing, test_stderr_flush, test_sys_exit

   The "processes" flavour: real processes (mpq_process_start), with mpq's
   own Event, Queue and Pipe where CPython uses multiprocessing's. Where
   CPython sleeps to let something happen (test_recursion's DELTA), the
   port waits for what it can observe; every wait is bounded.

   Not ported: the "threads" flavour and the start methods (mpq always
   forks), authkey, test_args_argument and test_lose_target_ref (Python
   objects), test_set_executable, test_process_mainthread_native_id,
   test_wait_for_threads (a C child ends when fn returns, its other
   threads with it), test_child_fd_inflation (CPython skips it for fork
   too), the forkserver tests. Where mpq differs from Python the port says
   so at the line. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

enum {
    SHORT_TIMEOUT = 30000,  /* support.SHORT_TIMEOUT                      */
    LONG_TIMEOUT = 60000    /* support.LONG_TIMEOUT (5 min there)          */
};

/* --- helpers ------------------------------------------------------------ */

static int in_active_children(const mpq_process *p)
{
    pid_t pids[64];
    int n = mpq_active_children(pids, 64), i;
    for (i = 0; i < n && i < 64; i++)
        if (pids[i] == p->pid) return 1;
    return 0;
}

static mpq_event *new_event(void)
{
    mpq_event *e = NULL;
    CHECK_OK(mpq_event_create(&e, NULL));
    return e;
}

static mpq_queue *new_queue(uint32_t capacity)
{
    mpq_queue *q = NULL;
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = capacity, .max_msg = 256 }));
    return q;
}

static void recv_string(mpq_conn *c, char *buf, size_t cap, int timeout_ms)
{
    size_t len = 0;
    CHECK_OK(mpq_conn_recv(c, buf, cap - 1, &len, timeout_ms));
    buf[len] = 0;
}

static int send_string(mpq_conn *c, const char *s) { return mpq_conn_send(c, s, strlen(s)); }

static int sleep_forever(void)
{
    for (;;) pause();
    return 0;
}

/* --- _TestProcess ------------------------------------------------------- */

/* The process running the tests is the main process: no parent, its
   name, not a daemon. */
static void test_current(void)
{
    pid_t pid;
    CHECK(strcmp(mpq_current_process_name(), "MainProcess") == 0);
    CHECK_ERR(mpq_parent_process(&pid), ESRCH);
}

static int return_zero(void *arg) { (void)arg; return 0; }

/* By default a process is not a daemon (the main process is none, and
   Python copies its creator's flag); daemon=True and daemon=False. */
static void test_daemon_argument(void)
{
    mpq_process p0, p1, p2;
    CHECK_OK(mpq_process_start(&p0, return_zero, NULL));
    CHECK_EQ(p0.daemon, 0);
    CHECK_OK(mpq_process_start_with(&p1, return_zero, NULL, &(mpq_process_config){ .daemon = 1 }));
    CHECK_EQ(p1.daemon, 1);
    CHECK_OK(mpq_process_start_with(&p2, return_zero, NULL, &(mpq_process_config){ .daemon = 0 }));
    CHECK_EQ(p2.daemon, 0);
    MPQT_JOIN_OK(&p0, 0);
    MPQT_JOIN_OK(&p1, 0);
    MPQT_JOIN_OK(&p2, 0);
}

static int send_parent_process(void *arg)
{
    mpq_conn *w = (mpq_conn *)arg;
    pid_t parent = 0;
    if (mpq_parent_process(&parent) != 1) return 1;
    return mpq_conn_send(w, &parent, sizeof parent) == 0 ? 0 : 2;
}

/* The child's parent_process() is this process. (Python also sends its
   name; mpq keeps only the parent's pid.) */
static void test_parent_process_attributes(void)
{
    mpq_conn *r, *w;
    mpq_process p;
    pid_t parent = 0;
    size_t len;
    CHECK_ERR(mpq_parent_process(NULL), ESRCH);
    CHECK_OK(mpq_pipe(&r, &w, 0));
    CHECK_OK(mpq_process_start(&p, send_parent_process, w));
    MPQT_JOIN_OK(&p, 0);
    CHECK_OK(mpq_conn_recv(r, &parent, sizeof parent, &len, SHORT_TIMEOUT));
    CHECK_EQ(len, sizeof parent);
    CHECK_EQ(parent, getpid());
    mpq_conn_close(r);
    mpq_conn_close(w);
}

/* The grandchild: reports whether its parent lives, waits for the parent
   to end (Python's parent_process().join(timeout): here a pidfd of it),
   reports again. */
static int report_parent_status(void *arg)
{
    mpq_conn *w = (mpq_conn *)arg;
    pid_t parent = 0;
    int fd;
    if (send_string(w, mpq_parent_process(&parent) == 1 ? "alive" : "not alive") != 0) return 1;
    fd = (int)syscall(SYS_pidfd_open, parent, 0);
    if (fd >= 0 && mpq_parent_process(NULL) == 1) mpqt_readable(fd, SHORT_TIMEOUT);
    return send_string(w, mpq_parent_process(NULL) == 1 ? "alive" : "not alive") == 0 ? 0 : 2;
}

static int create_grandchild_process(void *arg)
{
    mpq_process p;
    if (mpq_process_start(&p, report_parent_status, arg) != 0) return 1;
    return sleep_forever();   /* time.sleep(300) */
}

/* A child starts a grandchild; the child is terminated; the grandchild
   sees its parent die. */
static void test_parent_process(void)
{
    mpq_conn *r, *w;
    mpq_process p;
    char status[32];
    CHECK_OK(mpq_pipe(&r, &w, 0));
    CHECK_OK(mpq_process_start(&p, create_grandchild_process, w));
    CHECK_EQ(mpq_conn_poll(r, LONG_TIMEOUT), 1);
    recv_string(r, status, sizeof status, 0);
    CHECK(strcmp(status, "alive") == 0);
    CHECK_OK(mpq_process_kill(&p, SIGTERM));     /* p.terminate() */
    MPQT_JOIN_OK(&p, -SIGTERM);
    CHECK_EQ(mpq_conn_poll(r, LONG_TIMEOUT), 1);
    recv_string(r, status, sizeof status, 0);
    CHECK(strcmp(status, "not alive") == 0);
    mpq_conn_close(r);
    mpq_conn_close(w);
}

struct test_args { mpq_queue *q; int a, b; };

/* _test: puts its arguments, its name and its pid. */
static int put_self(void *arg)
{
    struct test_args *t = (struct test_args *)arg;
    const char *name = mpq_current_process_name();
    pid_t pid = getpid();
    int args[2];
    args[0] = t->a;
    args[1] = t->b;
    if (mpq_queue_put(t->q, args, sizeof args, SHORT_TIMEOUT) != 0) return 1;
    if (mpq_queue_put(t->q, name, strlen(name), SHORT_TIMEOUT) != 0) return 2;
    if (mpq_queue_put(t->q, &pid, sizeof pid, SHORT_TIMEOUT) != 0) return 3;
    return 0;
}

static void test_process(void)
{
    struct test_args t;
    mpq_process p = MPQ_PROCESS_INIT;
    char buf[256];
    int args[2];
    pid_t pid;
    size_t len;
    t.q = new_queue(1);                           /* Queue(1) */
    t.a = 1;
    t.b = 2;
    /* Not started: not alive (mpq: -EINVAL), no exit code, not a child. */
    CHECK_ERR(mpq_process_alive(&p), EINVAL);
    CHECK(!in_active_children(&p));
    CHECK_EQ(mpq_process_exitcode(&p), MPQ_PROCESS_RUNNING);
    CHECK_OK(mpq_process_start_with(&p, put_self, &t, &(mpq_process_config){ .daemon = 1, .name = "SomeProcess" }));
    CHECK_EQ(p.daemon, 1);
    CHECK(strcmp(p.name, "SomeProcess") == 0);
    CHECK_EQ(mpq_process_exitcode(&p), MPQ_PROCESS_RUNNING);
    /* The child cannot end before the gets: its second put waits for room. */
    CHECK_EQ(mpq_process_alive(&p), 1);
    CHECK(in_active_children(&p));
    CHECK_OK(mpq_queue_get(t.q, args, sizeof args, &len, SHORT_TIMEOUT));
    CHECK(len == sizeof args && args[0] == 1 && args[1] == 2);
    CHECK_OK(mpq_queue_get(t.q, buf, sizeof buf - 1, &len, SHORT_TIMEOUT));
    buf[len] = 0;
    CHECK(strcmp(buf, p.name) == 0);
    CHECK_OK(mpq_queue_get(t.q, &pid, sizeof pid, &len, SHORT_TIMEOUT));
    CHECK_EQ(pid, p.pid);
    MPQT_JOIN_OK(&p, 0);
    CHECK_EQ(mpq_process_exitcode(&p), 0);
    CHECK_EQ(mpq_process_alive(&p), 0);
    CHECK(!in_active_children(&p));
    mpq_queue_close(t.q);
}

static int wait_event(void *arg) { return mpq_event_wait((mpq_event *)arg, SHORT_TIMEOUT) == 0 ? 0 : 1; }

static int sleep_some_event(void *arg)
{
    CHECK_OK(mpq_event_set((mpq_event *)arg));
    return sleep_forever();                       /* time.sleep(100) */
}

static int sleep_no_int_handler(void *arg)
{
    signal(SIGINT, SIG_DFL);
    return sleep_some_event(arg);
}

/* Python's own SIGINT handler raises KeyboardInterrupt, which exits 1. */
static void keyboard_interrupt(int sig) { (void)sig; _exit(1); }

static int sleep_with_int_handler(void *arg)
{
    signal(SIGINT, keyboard_interrupt);
    return sleep_some_event(arg);
}

/* _kill_process: a daemon child sets an event and sleeps; `sig` ends it.
   Returns its exit code. */
static int kill_process(int sig, int (*target)(void *))
{
    mpq_event *e = new_event();
    mpq_process p;
    int code;
    CHECK_OK(mpq_process_start_with(&p, target, e, &(mpq_process_config){ .daemon = 1 }));
    CHECK_EQ(mpq_process_alive(&p), 1);
    CHECK(in_active_children(&p));
    CHECK_EQ(mpq_process_exitcode(&p), MPQ_PROCESS_RUNNING);
    CHECK_ERR(mpq_process_join(&p, 0), EAGAIN);   /* join(0): returns at once */
    CHECK_EQ(mpq_process_alive(&p), 1);
    /* (join(-1) returns at once in Python; in mpq -1 waits for ever.) */
    if (mpq_event_wait(e, SHORT_TIMEOUT) != 0) {
        mpq_process_kill(&p, SIGTERM);
        mpq_process_join(&p, SHORT_TIMEOUT);
        CHECK(!"event not signaled in time");
    }
    CHECK_OK(mpq_process_kill(&p, sig));
    CHECK_OK(mpq_process_join(&p, 10000));        /* CPython: alarm(10) */
    CHECK_EQ(mpq_process_alive(&p), 0);
    CHECK(!in_active_children(&p));
    CHECK_OK(mpq_process_join(&p, -1));
    code = p.exitcode;
    mpq_event_close(e);
    return code;
}

static void test_interrupt(void) { CHECK_EQ(kill_process(SIGINT, sleep_with_int_handler), 1); }
static void test_interrupt_no_handler(void) { CHECK_EQ(kill_process(SIGINT, sleep_no_int_handler), -SIGINT); }
static void test_terminate(void) { CHECK_EQ(kill_process(SIGTERM, sleep_some_event), -SIGTERM); }
static void test_kill(void) { CHECK_EQ(kill_process(SIGKILL, sleep_some_event), -SIGKILL); }

static void test_cpu_count(void)
{
    int cpus = mpq_cpu_count();
    CHECK(cpus >= 1);
}

static void test_active_children(void)
{
    mpq_event *e = new_event();
    mpq_process p = MPQ_PROCESS_INIT;
    CHECK(mpq_active_children(NULL, 0) >= 0);
    CHECK(!in_active_children(&p));
    CHECK_OK(mpq_process_start_with(&p, wait_event, e, &(mpq_process_config){ .daemon = 1 }));
    CHECK(in_active_children(&p));
    CHECK_OK(mpq_event_set(e));
    MPQT_JOIN_OK(&p, 0);
    CHECK(!in_active_children(&p));
    mpq_event_close(e);
}

struct recursion { mpq_conn *w; char id[16]; };

/* Sends "ID NAME" (Python sends the id list), then, above depth 2, starts
   and joins two children of its own. */
static int recursion(void *arg)
{
    struct recursion *r = (struct recursion *)arg;
    char msg[64];
    size_t depth = strlen(r->id);
    int i;
    snprintf(msg, sizeof msg, "[%s] %s", r->id, mpq_current_process_name());
    if (send_string(r->w, msg) != 0) return 1;
    if (depth < 2) {
        for (i = 0; i < 2; i++) {
            struct recursion child = *r;
            mpq_process p;
            child.id[depth] = (char)('0' + i);
            child.id[depth + 1] = 0;
            if (mpq_process_start(&p, recursion, &child) != 0) return 2;
            if (mpq_process_join(&p, SHORT_TIMEOUT) != 0 || p.exitcode != 0) return 3;
        }
    }
    return 0;
}

/* The tree of processes, depth first - and the names Python gives them. */
static void test_recursion(void)
{
    static const char *expected[] = {
        "[] MainProcess",
        "[0] Process-1",
        "[00] Process-1:1",
        "[01] Process-1:2",
        "[1] Process-2",
        "[10] Process-2:1",
        "[11] Process-2:2",
    };
    struct recursion r;
    mpq_conn *rd;
    char got[64];
    int i;
    CHECK_OK(mpq_pipe(&rd, &r.w, 0));
    r.id[0] = 0;
    CHECK_EQ(recursion(&r), 0);
    /* Every process has been joined: all the messages are in the pipe
       (CPython sleeps DELTA here). */
    for (i = 0; i < 7; i++) {
        CHECK_EQ(mpq_conn_poll(rd, 0), 1);
        recv_string(rd, got, sizeof got, 0);
        if (strcmp(got, expected[i]) != 0) {
            printf("    got \"%s\", expected \"%s\"\n", got, expected[i]);
            CHECK(0);
        }
    }
    CHECK_EQ(mpq_conn_poll(rd, 0), 0);
    mpq_conn_close(rd);
    mpq_conn_close(r.w);
}

static int test_sentinel_child(void *arg) { return mpq_event_wait((mpq_event *)arg, 10000) == 0 ? 0 : 1; }

static void test_sentinel(void)
{
    mpq_event *e = new_event();
    mpq_process p = MPQ_PROCESS_INIT;
    int sentinel;
    CHECK_ERR(mpq_process_sentinel(&p), EINVAL);  /* ValueError: not started */
    CHECK_OK(mpq_process_start(&p, test_sentinel_child, e));
    sentinel = mpq_process_sentinel(&p);
    CHECK(sentinel >= 0);
    CHECK(!mpqt_readable(sentinel, 0));
    CHECK_OK(mpq_event_set(e));
    /* CPython joins first and waits on the sentinel after; mpq's sentinel
       is the handle's pidfd, which join closes: wait on it first. */
    CHECK(mpqt_readable(sentinel, SHORT_TIMEOUT));
    MPQT_JOIN_OK(&p, 0);
    CHECK_ERR(mpq_process_sentinel(&p), ESRCH);
    mpq_event_close(e);
}

static int test_close_child(void *arg)
{
    char c;
    size_t len;
    if (mpq_queue_get((mpq_queue *)arg, &c, 1, &len, SHORT_TIMEOUT) != 0) return 1;
    exit(0);   /* sys.exit(rc) */
}

/* close() is mpq_process_destroy. */
static void test_close(void)
{
    mpq_queue *q = new_queue(16);
    mpq_process p;
    CHECK_OK(mpq_process_start_with(&p, test_close_child, q, &(mpq_process_config){ .daemon = 1 }));
    CHECK_EQ(mpq_process_alive(&p), 1);
    /* (Python refuses to close a live process with ValueError; mpq's
       destroy would forget it: not asked here.) */
    CHECK_OK(mpq_queue_put(q, "n", 1, SHORT_TIMEOUT));
    MPQT_JOIN_OK(&p, 0);
    CHECK_EQ(mpq_process_alive(&p), 0);
    CHECK_OK(mpq_process_destroy(&p));
    CHECK_ERR(mpq_process_alive(&p), EINVAL);     /* ValueError */
    CHECK_ERR(mpq_process_join(&p, -1), EINVAL);
    CHECK_ERR(mpq_process_kill(&p, SIGTERM), EINVAL);
    CHECK_ERR(mpq_process_destroy(&p), EINVAL);   /* Python: a second close() is fine */
    mpq_queue_close(q);
}

static int sleep_some(void *arg) { (void)arg; return sleep_forever(); }

static void test_many_processes(void)
{
    enum { N = 100 };
    static mpq_process procs[N];
    int i;
    for (i = 0; i < N; i++) CHECK_OK(mpq_process_start(&procs[i], return_zero, NULL));
    for (i = 0; i < N; i++) MPQT_JOIN_OK(&procs[i], 0);
    for (i = 0; i < N; i++) CHECK_OK(mpq_process_start(&procs[i], sleep_some, NULL));
    /* (CPython sleeps 1 ms to let them start; a SIGTERM before or after
       the child runs ends it the same way.) */
    for (i = 0; i < N; i++) CHECK_OK(mpq_process_kill(&procs[i], SIGTERM));
    for (i = 0; i < N; i++) MPQT_JOIN_OK(&procs[i], -SIGTERM);
}

static int set_event(void *arg) { return mpq_event_set((mpq_event *)arg) == 0 ? 0 : 1; }

/* test_error_on_stdio_flush_1's parent: its stdout (or stderr) is broken
   - a closed descriptor, with output waiting in its buffer - when it
   starts a child: the child still runs, and exits 0. */
struct broken { mpq_event *e; int fd; };
static char stream_buf[4096];

static int start_with_broken_stream(void *arg)
{
    struct broken *b = (struct broken *)arg;
    FILE *f = b->fd == 1 ? stdout : stderr;
    mpq_process p;
    setvbuf(f, stream_buf, _IOFBF, sizeof stream_buf);   /* musl buffers stderr only so */
    fputs("waiting in the buffer\n", f);
    close(b->fd);
    if (mpq_process_start(&p, set_event, b->e) != 0) return 1;
    if (mpq_process_join(&p, SHORT_TIMEOUT) != 0) return 2;
    return p.exitcode == 0 && mpq_event_is_set(b->e) == 1 ? 0 : 3;
}

static void test_error_on_stdio_flush_1(void)
{
    struct broken b;
    mpq_process p;
    for (b.fd = 1; b.fd <= 2; b.fd++) {
        b.e = new_event();
        CHECK_OK(mpq_process_start(&p, start_with_broken_stream, &b));
        MPQT_JOIN_OK(&p, 0);
        mpq_event_close(b.e);
    }
}

/* _2: the child breaks its own stream, with output waiting in it. */
static int break_stream_then_set(void *arg)
{
    struct broken *b = (struct broken *)arg;
    FILE *f = b->fd == 1 ? stdout : stderr;
    setvbuf(f, stream_buf, _IOFBF, sizeof stream_buf);   /* musl buffers stderr only so */
    fputs("waiting in the buffer\n", f);
    close(b->fd);
    return set_event(b->e);
}

static void test_error_on_stdio_flush_2(void)
{
    struct broken b;
    mpq_process p;
    for (b.fd = 1; b.fd <= 2; b.fd++) {
        b.e = new_event();
        CHECK_OK(mpq_process_start(&p, break_stream_then_set, &b));
        MPQT_JOIN_OK(&p, 0);
        CHECK_EQ(mpq_event_is_set(b.e), 1);
        mpq_event_close(b.e);
    }
}

/* --- _TestSubclassingProcess ---------------------------------------------- */

/* _UpperCaser: a daemon that upper-cases each string it receives until
   it receives None (here an empty message). */
static int upper_caser(void *arg)
{
    mpq_conn *c = (mpq_conn *)arg;
    char buf[256];
    size_t len, i;
    for (;;) {
        if (mpq_conn_recv(c, buf, sizeof buf, &len, SHORT_TIMEOUT) != 0) return 1;
        if (len == 0) return 0;
        for (i = 0; i < len; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] = (char)(buf[i] - 'a' + 'A');
        if (mpq_conn_send(c, buf, len) != 0) return 2;
    }
}

static void submit(mpq_conn *c, const char *s, const char *want)
{
    char got[256];
    CHECK_OK(send_string(c, s));
    recv_string(c, got, sizeof got, SHORT_TIMEOUT);
    CHECK(strcmp(got, want) == 0);
}

static void test_subclassing(void)
{
    mpq_conn *parent, *child;
    mpq_process p;
    CHECK_OK(mpq_pipe(&child, &parent, 1));
    CHECK_OK(mpq_process_start_with(&p, upper_caser, child, &(mpq_process_config){ .daemon = 1 }));
    submit(parent, "hello", "HELLO");
    submit(parent, "world", "WORLD");
    CHECK_OK(mpq_conn_send(parent, "", 0));       /* stop() */
    MPQT_JOIN_OK(&p, 0);
    mpq_conn_close(parent);
    mpq_conn_close(child);
}

/* stderr is flushed at process shutdown (CPython issue #13812): a child
   whose stderr is a buffered stream on a file writes its "traceback" and
   ends without flushing it. */
static int stderr_flush_child(void *arg)
{
    const char *path = (const char *)arg;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || dup2(fd, 2) != 2) return 100;
    setvbuf(stderr, stream_buf, _IOFBF, sizeof stream_buf);
    fputs("ZeroDivisionError: division by zero\n  1/0 # MARKER\n", stderr);
    return 1;                                     /* an uncaught exception exits 1 */
}

static void test_stderr_flush(void)
{
    char path[64], text[256];
    mpq_process p;
    FILE *f;
    size_t n;
    snprintf(path, sizeof path, "/tmp/mpqt-stderr-%ld", (long)getpid());
    unlink(path);
    CHECK_OK(mpq_process_start(&p, stderr_flush_child, path));
    MPQT_JOIN_OK(&p, 1);
    CHECK((f = fopen(path, "r")) != NULL);
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    unlink(path);
    text[n] = 0;
    CHECK(strstr(text, "ZeroDivisionError") != NULL);
    CHECK(strstr(text, "1/0 # MARKER") != NULL);
}

/* sys.exit(reason) with a reason that is no number: printed on stderr,
   exit code 1. */
struct sys_exit { const char *path, *reason; };

static int sys_exit_reason(void *arg)
{
    struct sys_exit *s = (struct sys_exit *)arg;
    int fd = open(s->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || dup2(fd, 2) != 2) return 100;
    fprintf(stderr, "%s\n", s->reason);
    exit(1);
}

static int sys_exit_code(void *arg) { exit((int)(intptr_t)arg); }

static void test_sys_exit(void)
{
    static const char *reasons[] = { "[1, 2, 3]", "ignore this" };
    static const struct { int arg, expected; } cases[] = {
        { 1, 1 },   /* sys.exit(True)  */
        { 0, 0 },   /* sys.exit(False), sys.exit(None), sys.exit() */
        { 8, 8 },
    };
    char path[64], content[64];
    unsigned i;
    snprintf(path, sizeof path, "/tmp/mpqt-sysexit-%ld", (long)getpid());
    for (i = 0; i < 2; i++) {
        struct sys_exit s;
        mpq_process p;
        FILE *f;
        size_t n;
        s.path = path;
        s.reason = reasons[i];
        unlink(path);
        CHECK_OK(mpq_process_start_with(&p, sys_exit_reason, &s, &(mpq_process_config){ .daemon = 1 }));
        MPQT_JOIN_OK(&p, 1);
        CHECK((f = fopen(path, "r")) != NULL);
        n = fread(content, 1, sizeof content - 1, f);
        fclose(f);
        content[n] = 0;
        content[strcspn(content, "\n")] = 0;
        CHECK(strcmp(content, reasons[i]) == 0);
        unlink(path);
    }
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mpq_process p;
        CHECK_OK(mpq_process_start_with(&p, sys_exit_code, (void *)(intptr_t)cases[i].arg,
                                        &(mpq_process_config){ .daemon = 1 }));
        MPQT_JOIN_OK(&p, cases[i].expected);
    }
}

static const mpqt_case cases[] = {
    MPQT(test_current, 10, 0),
    MPQT(test_daemon_argument, 10, 0),
    MPQT(test_parent_process_attributes, 20, 0),
    MPQT(test_parent_process, 60, 0),
    MPQT(test_process, 30, 0),
    MPQT(test_interrupt, 30, 0),
    MPQT(test_interrupt_no_handler, 30, 0),
    MPQT(test_terminate, 30, 0),
    MPQT(test_kill, 30, 0),
    MPQT(test_cpu_count, 10, 0),
    MPQT(test_active_children, 30, 0),
    MPQT(test_recursion, 30, 0),
    MPQT(test_sentinel, 30, 0),
    MPQT(test_close, 30, 0),
    MPQT(test_many_processes, 60, 0),
    MPQT(test_error_on_stdio_flush_1, 30, 0),
    MPQT(test_error_on_stdio_flush_2, 30, 0),
    MPQT(test_subclassing, 30, 0),
    MPQT(test_stderr_flush, 30, 0),
    MPQT(test_sys_exit, 30, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
