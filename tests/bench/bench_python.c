/* bench_python - round trips of a 64-byte message over one
   multiprocessing.connection address (a Unix socket path, then TCP
   loopback): Python's Client against Python's Listener, and each side
   replaced by mpq - so the table says what a C worker costs, or saves, a
   Python program that talks to it. Needs python3 on PATH (skipped with a
   line otherwise). Echo side and caller unpinned, as a Python program
   would run them. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include "bench.h"

enum { N = 20000, WARM = 500, MSG = 64 };

static const char script[] =
    "import sys, time\n"
    "from multiprocessing.connection import Listener, Client\n"
    "mode, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "a = addr\n"
    "if ':' in addr:\n"
    "    h, p = addr.rsplit(':', 1)\n"
    "    a = (h, int(p))\n"
    "if mode == 'echo':\n"
    "    l = Listener(a)\n"
    "    print(l.address if isinstance(l.address, str) else '%s:%d' % l.address, flush=True)\n"
    "    c = l.accept()\n"
    "    try:\n"
    "        while True: c.send_bytes(c.recv_bytes())\n"
    "    except EOFError: pass\n"
    "else:\n"
    "    c = Client(a)\n"
    "    m = b'x' * 64\n"
    "    for i in range(500): c.send_bytes(m); c.recv_bytes()\n"
    "    t = time.perf_counter()\n"
    "    for i in range(n): c.send_bytes(m); c.recv_bytes()\n"
    "    print((time.perf_counter() - t) / n * 1e9, flush=True)\n";

/* Starts python with the script; its stdout is read from *out. */
static pid_t py(const char *mode, const char *addr, FILE **out)
{
    char n[16];
    int p[2];
    pid_t pid;
    snprintf(n, sizeof n, "%d", N);
    if (pipe(p)) exit(1);
    if ((pid = bench_fork()) == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execlp("python3", "python3", "-c", script, mode, addr, n, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *out = fdopen(p[0], "r");
    return pid;
}

static double read_ns(FILE *f)
{
    char line[64];
    double v = 0;
    if (!fgets(line, sizeof line, f) || sscanf(line, "%lf", &v) != 1) return 0;
    return v;
}

/* The mean round trip of a C client over c. */
static double c_client(mpq_conn *c)
{
    char buf[MSG];
    size_t len;
    double t0 = 0;
    int i;
    memset(buf, 'x', sizeof buf);
    for (i = 0; i < N + WARM; i++) {
        if (i == WARM) t0 = bench_now();
        if (mpq_conn_send(c, buf, MSG) || mpq_conn_recv(c, buf, sizeof buf, &len, -1)) exit(1);
    }
    return (bench_now() - t0) / N * 1e9;
}

/* An mpq echo server, in a child, for one client. */
static pid_t c_echo(mpq_listener *l)
{
    pid_t pid = bench_fork();
    if (pid == 0) {
        mpq_conn *c;
        char buf[MSG];
        size_t len;
        if (mpq_listener_accept(l, &c, 30000)) _exit(1);
        while (mpq_conn_recv(c, buf, sizeof buf, &len, -1) == 0 && mpq_conn_send(c, buf, len) == 0) {}
        _exit(0);
    }
    return pid;
}

static void pick(int tcp, char *addr, size_t cap)
{
    if (tcp) snprintf(addr, cap, "127.0.0.1:0");
    else snprintf(addr, cap, "/tmp/mpq-bench-py-%ld", (long)getpid());
    if (!tcp) unlink(addr);
}

int main(void)
{
    static const char *pairs[4] = { "Python Client -> Python Listener", "mpq client -> Python Listener",
                                    "Python Client -> mpq listener", "mpq client -> mpq listener" };
    double v[2][4];
    int tcp, k;
    FILE *f, *g;
    bench_header("round trips over multiprocessing.connection: Python and mpq on either side");
    if (system("python3 -c pass >/dev/null 2>&1") != 0) {
        printf("(skipped: no python3 on PATH)\n");
        return 0;
    }
    for (tcp = 0; tcp < 2; tcp++) {
        char addr[128];
        mpq_listener *l;
        mpq_conn *c;
        pid_t e, r;
        char line[128];
        /* Python <-> Python */
        pick(tcp, addr, sizeof addr);
        e = py("echo", addr, &f);
        if (!fgets(line, sizeof line, f)) exit(1);
        line[strcspn(line, "\n")] = 0;
        r = py("rtt", line, &g);
        v[tcp][0] = read_ns(g);
        waitpid(r, NULL, 0);
        waitpid(e, NULL, 0);
        fclose(f);
        fclose(g);
        /* mpq client -> Python */
        pick(tcp, addr, sizeof addr);
        e = py("echo", addr, &f);
        if (!fgets(line, sizeof line, f)) exit(1);
        line[strcspn(line, "\n")] = 0;
        if (mpq_client(&c, line)) exit(1);
        v[tcp][1] = c_client(c);
        mpq_conn_close(c);
        waitpid(e, NULL, 0);
        fclose(f);
        /* Python -> mpq listener */
        pick(tcp, addr, sizeof addr);
        if (mpq_listener_open(&l, addr) || mpq_listener_address(l, addr, sizeof addr) < 0) exit(1);
        e = c_echo(l);
        r = py("rtt", addr, &g);
        v[tcp][2] = read_ns(g);
        waitpid(r, NULL, 0);
        waitpid(e, NULL, 0);
        fclose(g);
        /* mpq <-> mpq */
        e = c_echo(l);
        if (mpq_client(&c, addr)) exit(1);
        v[tcp][3] = c_client(c);
        mpq_conn_close(c);
        waitpid(e, NULL, 0);
        mpq_listener_close(l);
    }
    printf("| 64-byte round trip | Unix socket (us) | vs Python | TCP loopback (us) | vs Python |\n"
           "|---|---:|---:|---:|---:|\n");
    for (k = 0; k < 4; k++)
        printf("| %s | %.1f | %.2fx | %.1f | %.2fx |\n", pairs[k], v[0][k] / 1e3, v[0][0] / v[0][k], v[1][k] / 1e3,
               v[1][0] / v[1][k]);
    printf("\n(\"vs Python\": Python <-> Python time / this pair's time; higher is faster)\n");
    return 0;
}
