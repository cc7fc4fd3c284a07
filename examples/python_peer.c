/* python_peer.c - a C worker serving requests from a Python program,
   through Python's own multiprocessing.connection (no extra package on
   the Python side, no bindings on the C side).

   The Python side is the few lines below: a Client with an authkey,
   sending numbers and printing what comes back.

       import sys
       from multiprocessing.connection import Client
       host, port = sys.argv[1].rsplit(':', 1)
       with Client((host, int(port)), authkey=b'mpq example') as c:
           for n in (10, 20, 30, 90):
               c.send_bytes(str(n).encode())
               print(n, '->', c.recv_bytes().decode())

   Run it as it is and it listens on a free TCP port of 127.0.0.1, starts
   those lines itself (when python3 is on PATH) and serves them. Give it an
   address ("127.0.0.1:6000", "/tmp/worker.sock", "@worker") and it serves
   clients there, one after the other, until it is killed; a Python client
   then connects with Client(('127.0.0.1', 6000), authkey=b'mpq example'),
   Client('/tmp/worker.sock', ...) or Client('\0worker', ...).

   Build: cc -O2 -o python_peer examples/python_peer.c -pthread */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char client_py[] =
    "import sys\n"
    "from multiprocessing.connection import Client\n"
    "host, port = sys.argv[1].rsplit(':', 1)\n"
    "with Client((host, int(port)), authkey=b'mpq example') as c:\n"
    "    for n in (10, 20, 30, 90):\n"
    "        c.send_bytes(str(n).encode())\n"
    "        print(n, '->', c.recv_bytes().decode())\n";

static const char authkey[] = "mpq example";

/* The work: the n-th Fibonacci number, for a request "n". */
static void handle(const char *req, size_t len, char *reply, size_t cap)
{
    char num[32];
    unsigned long long a = 0, b = 1, t;
    long n, i;
    char *end;
    if (len == 0 || len >= sizeof num) {
        snprintf(reply, cap, "error: send a number");
        return;
    }
    memcpy(num, req, len);
    num[len] = '\0';
    n = strtol(num, &end, 10);
    if (*end != '\0' || n < 0 || n > 93) {
        snprintf(reply, cap, "error: a number from 0 to 93, please");
        return;
    }
    for (i = 0; i < n; i++) {
        t = a + b;
        a = b;
        b = t;
    }
    snprintf(reply, cap, "fib(%ld) = %llu", n, a);
}

/* Serves one client until it hangs up. */
static void serve(mpq_conn *c)
{
    char req[64], reply[96];
    size_t len;
    int rc;
    while ((rc = mpq_conn_recv(c, req, sizeof req, &len, -1)) == 0 || rc == -EMSGSIZE) {
        if (rc == -EMSGSIZE) {   /* too long to be a number: refuse it, and keep serving */
            void *skip;
            if (mpq_conn_recv_alloc(c, &skip, &len, -1) != 0) break;
            free(skip);
            len = 0;
        }
        handle(req, len, reply, sizeof reply);
        if (mpq_conn_send(c, reply, strlen(reply)) != 0) break;
    }
    mpq_conn_close(c);
}

int main(int argc, char **argv)
{
    mpq_listener *l;
    mpq_conn *c;
    char addr[128];
    pid_t py;
    int rc, st;

    rc = mpq_listener_open_with(&l, argc > 1 ? argv[1] : "127.0.0.1:0",
                                &(mpq_listener_config){ .authkey = authkey, .authkey_len = strlen(authkey) });
    if (rc != 0) {
        fprintf(stderr, "listen on %s: %s\n", argc > 1 ? argv[1] : "127.0.0.1:0", mpq_strerror(rc));
        return 1;
    }
    mpq_listener_address(l, addr, sizeof addr);
    if (argc > 1) {                         /* a server: clients one after the other */
        printf("serving on %s\n", addr);
        fflush(stdout);
        for (;;) {
            if ((rc = mpq_listener_accept(l, &c, -1)) == 0) serve(c);
            else fprintf(stderr, "a client was refused: %s\n", mpq_strerror(rc));   /* wrong key, say */
        }
    }

    /* The demonstration: start the Python client, serve it, and wait. A
       close-on-exec pipe says whether python3 could be started at all. */
    {
        int p[2];
        char failed;
        if (pipe(p) != 0 || fcntl(p[1], F_SETFD, FD_CLOEXEC) != 0) return 1;
        if ((py = fork()) == 0) {
            execlp("python3", "python3", "-c", client_py, addr, (char *)NULL);
            if (write(p[1], "x", 1) < 0) _exit(127);
            _exit(127);
        }
        if (py < 0) return 1;
        close(p[1]);
        if (read(p[0], &failed, 1) == 1) {
            waitpid(py, &st, 0);
            printf("python3 is not on PATH: run the Python lines at the top of this file\n"
                   "against ./python_peer 127.0.0.1:6000 instead.\n");
            mpq_listener_close(l);
            return 0;
        }
        close(p[0]);
    }
    if ((rc = mpq_listener_accept(l, &c, 30000)) != 0) {
        fprintf(stderr, "accept: %s\n", mpq_strerror(rc));
        kill(py, SIGKILL);
        waitpid(py, &st, 0);
        return 1;
    }
    serve(c);
    mpq_listener_close(l);
    if (waitpid(py, &st, 0) != py || !WIFEXITED(st)) return 1;
    return WEXITSTATUS(st);
}
