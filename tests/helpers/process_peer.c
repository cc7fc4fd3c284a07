/* process_peer - a program of its own (its main is a real main) that
   starts one child with mpq and then ends, for the daemon tests.

   usage: process_peer daemon|plain return|exit|hang REPORT,GO,PING,PONG

   The child (a daemon or not) answers each byte read from fd PING with
   the same byte on fd PONG, until PING reads end of file. process_peer
   writes the child's pid (a pid_t) to fd REPORT, waits for a byte on fd
   GO, and then returns from main, calls exit(0), or (hang) waits to be
   killed. Any failure exits 1 with a message on stderr. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fds[4];   /* REPORT, GO, PING, PONG */

static int answer(void *arg)
{
    char c;
    (void)arg;
    for (;;) {
        ssize_t n = read(fds[2], &c, 1);
        if (n == 1) {
            if (write(fds[3], &c, 1) != 1) return 1;
        } else if (n == 0 || errno != EINTR) {
            return 0;
        }
    }
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "process_peer: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
    return 1;
}

int main(int argc, char **argv)
{
    mpq_process_config cfg;
    mpq_process p;
    char c;
    int rc;
    if (argc != 4 || sscanf(argv[3], "%d,%d,%d,%d", &fds[0], &fds[1], &fds[2], &fds[3]) != 4)
        return fail("usage", EINVAL);
    memset(&cfg, 0, sizeof cfg);
    cfg.daemon = strcmp(argv[1], "daemon") == 0;
    if ((rc = mpq_process_start_with(&p, answer, NULL, &cfg)) != 0) return fail("start", rc);
    if (write(fds[0], &p.pid, sizeof p.pid) != (ssize_t)sizeof p.pid) return fail("write", errno);
    while (read(fds[1], &c, 1) < 0 && errno == EINTR) {}
    if (strcmp(argv[2], "exit") == 0) exit(0);
    if (strcmp(argv[2], "hang") == 0)
        for (;;) pause();
    return 0;   /* "return": from main, so exit() runs the atexit handlers */
}
