/* bench_wait - how fast mpq_wait wakes up, beside the blocking call it
   stands in for: mpq_queue_get on a queue (anonymous, and opened by name,
   which has no eventfd), mpq_conn_recv on a connection.

   Wake-up latency: the waiter blocks (it has had 300 us to fall asleep:
   past the queue's spin), the other process notes the time and puts or
   sends one message, the waiter notes when its call returns. Two
   processes on two CPUs; the median and the 90th percentile of SAMPLES
   wake-ups per row, and each row's median as a ratio of its blocking
   call's. Rows with a descriptor beside the queue go through mpq_wait's
   watcher thread (two wake-ups: the futex, then the eventfd); a queue
   alone is slept on by the calling thread itself. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include "bench.h"

enum { SAMPLES = 2000, WARMUP = 50 };
#define SETTLE_NS 300000.0   /* the waiter's time to fall asleep */

enum { W_GET, W_WAIT_Q, W_WAIT_Q_FD, W_WAIT_NAMED_Q_FD, W_RECV, W_WAIT_CONN, W_WAIT_CONN_Q, W_WAIT_C_BESIDE_Q, W_N };
static const char *row_name[W_N] = {
    "mpq_queue_get(q, -1)",
    "mpq_wait({ q }, -1)",
    "mpq_wait({ q, fd }, -1)",
    "mpq_wait({ named q, fd }, -1)",
    "mpq_conn_recv(c, -1)",
    "mpq_wait({ c }, -1)",
    "mpq_wait({ q, c }, -1), q wakes it",
    "mpq_wait({ q, c }, -1), c wakes it",
};
static const int row_base[W_N] = { W_GET, W_GET, W_GET, W_GET, W_RECV, W_RECV, W_GET, W_RECV };

struct shared {
    uint32_t waiting;    /* the waiter's round, once it is about to block */
    uint32_t pad[15];
    double   t_put[SAMPLES + WARMUP];
    double   t_back[SAMPLES + WARMUP];
};

static double now_ns(void) { return bench_now() * 1e9; }

static void spin_until(double t)
{
    while (now_ns() < t) mpq__cpu_relax();
}

/* One row: returns the median wake-up in ns; *p90 gets the 90th percentile. */
static double run_row(int how, struct shared *sh, double *p90)
{
    static double lat[SAMPLES];
    mpq_queue *q, *named = NULL;
    mpq_conn *c, *c_peer;
    char qname[64];
    int pf[2], i, total = SAMPLES + WARMUP;
    pid_t pid;
    snprintf(qname, sizeof qname, "/mpq-bench-wait-%ld", (long)getpid());
    if (mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 16, .max_msg = 64, .name = qname }) != 0 ||
        mpq_queue_open(&named, qname) != 0 || mpq_pipe(&c, &c_peer, 1) != 0 || pipe(pf) != 0) {
        fprintf(stderr, "bench_wait: setup failed\n");
        exit(1);
    }
    mpq_shm_unlink(qname);
    memset(sh, 0, sizeof *sh);
    pid = bench_fork();
    if (pid == 0) {   /* the waker */
        bench_pin(0);
        for (i = 1; i <= total; i++) {
            while (mpq__load32(&sh->waiting, MPQ__ACQUIRE) != (uint32_t)i) mpq__cpu_relax();
            spin_until(now_ns() + SETTLE_NS);
            sh->t_put[i - 1] = now_ns();
            if (how >= W_RECV && how != W_WAIT_CONN_Q) mpq_conn_send(c_peer, "m", 1);
            else mpq_queue_put(how == W_WAIT_NAMED_Q_FD ? named : q, "m", 1, -1);
        }
        _exit(0);
    }
    bench_pin(1);
    for (i = 1; i <= total; i++) {
        char buf[64];
        size_t len;
        mpq_waitable w[2];
        w[1] = (mpq_waitable)MPQ_WAIT_FD(pf[0]);
        if (how == W_WAIT_NAMED_Q_FD) w[0] = (mpq_waitable)MPQ_WAIT_QUEUE(named);
        else if (how >= W_RECV) w[0] = (mpq_waitable)MPQ_WAIT_CONN(c);
        else w[0] = (mpq_waitable)MPQ_WAIT_QUEUE(q);
        if (how == W_WAIT_CONN_Q || how == W_WAIT_C_BESIDE_Q) {
            w[1] = w[0];
            w[0] = (mpq_waitable)MPQ_WAIT_QUEUE(q);
        }
        mpq__store32(&sh->waiting, (uint32_t)i, MPQ__RELEASE);
        switch (how) {
        case W_GET: mpq_queue_get(q, buf, sizeof buf, &len, -1); break;
        case W_RECV: mpq_conn_recv(c, buf, sizeof buf, &len, -1); break;
        case W_WAIT_Q: case W_WAIT_CONN: mpq_wait(w, 1, -1); break;
        default: mpq_wait(w, 2, -1); break;
        }
        sh->t_back[i - 1] = now_ns();
        if (how == W_WAIT_CONN || how == W_WAIT_C_BESIDE_Q) mpq_conn_recv(c, buf, sizeof buf, &len, -1);
        else if (how != W_GET && how != W_RECV) mpq_queue_get(q, buf, sizeof buf, &len, -1);
    }
    waitpid(pid, NULL, 0);
    bench_unpin();
    for (i = 0; i < SAMPLES; i++) lat[i] = sh->t_back[WARMUP + i] - sh->t_put[WARMUP + i];
    bench_median(lat, SAMPLES);   /* sorts */
    *p90 = lat[SAMPLES * 9 / 10];
    mpq_queue_close(named);
    mpq_queue_close(q);
    mpq_conn_close(c);
    mpq_conn_close(c_peer);
    close(pf[0]);
    close(pf[1]);
    return lat[SAMPLES / 2];
}

int main(void)
{
    struct shared *sh = (struct shared *)bench_shared(sizeof *sh);
    double med[W_N], p90[W_N];
    int i;
    bench_header("mpq_wait: wake-up latency beside the blocking calls");
    printf("| waiter | median | p90 | median / its blocking call's |\n|---|---|---|---|\n");
    for (i = 0; i < W_N; i++) {
        med[i] = run_row(i, sh, &p90[i]);
        printf("| %s | %.1f us | %.1f us | %s |\n", row_name[i], med[i] / 1000, p90[i] / 1000,
               bench_ratio(med[i], med[row_base[i]]));
        fflush(stdout);
    }
    return 0;
}
