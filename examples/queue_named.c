/* queue_named.c - unrelated processes share a queue by name.

   One program, two roles:
       ./queue_named serve /jobs     creates the queue "/jobs", prints what
                                     arrives until the queue is closed
       ./queue_named send /jobs a b  opens "/jobs", puts "a", "b", closes it
   Run without arguments it plays both: it serves, and starts itself again
   (exec'd: a new program image that knows only the name) to send.

   Build and run from the repository root:
       make tests/build/examples/queue_named && tests/build/examples/queue_named
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

/* Serves until the queue is closed; a known sender that is gone ends it. */
static int run_server(const char *name, mpq_process *sender)
{
    mpq_queue *q;
    char msg[256];
    size_t len;
    int rc = mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 64, .max_msg = sizeof msg - 1, .name = name });
    if (rc == -EEXIST && mpq_shm_unlink(name) == 0)   /* left over from a crash */
        rc = mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 64, .max_msg = sizeof msg - 1, .name = name });
    if (rc != 0) {
        fprintf(stderr, "create %s: %s\n", name, strerror(-rc));
        return 1;
    }
    printf("serving %s\n", name);
    fflush(stdout);
    for (;;) {
        rc = mpq_queue_get(q, msg, sizeof msg - 1, &len, 1000);
        if (rc == -ETIMEDOUT && (!sender || mpq_process_alive(sender) == 1)) continue;
        if (rc != 0) break;
        msg[len] = 0;
        printf("got: %s\n", msg);
    }
    printf("%s\n", rc == -EPIPE ? "closed by the sender: done" : strerror(-rc));
    mpq_queue_close(q);
    mpq_shm_unlink(name);                        /* the name goes with its server */
    return rc == -EPIPE ? 0 : 1;
}

static int run_sender(const char *name, int n, char **msgs)
{
    mpq_queue *q;
    int i, rc;
    for (i = 0; (rc = mpq_queue_open(&q, name)) == -ENOENT || rc == -EAGAIN; i++) {
        struct timespec ts = { 0, 10000000 };   /* the server may not be up yet */
        if (i == 500) break;
        nanosleep(&ts, NULL);
    }
    if (rc != 0) {
        fprintf(stderr, "open %s: %s\n", name, strerror(-rc));
        return 1;
    }
    for (i = 0; i < n; i++)
        if ((rc = mpq_queue_put(q, msgs[i], strlen(msgs[i]), 5000)) != 0) {
            fprintf(stderr, "put: %s\n", strerror(-rc));
            return 1;
        }
    mpq_queue_shutdown(q, 0);                          /* tells the server we are done */
    mpq_queue_close(q);
    return 0;
}

static char *self_argv[8];

static int exec_sender(void *arg)
{
    (void)arg;
    execv("/proc/self/exe", self_argv);
    return 127;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "serve") == 0) return run_server(argv[2], NULL);
    if (argc >= 3 && strcmp(argv[1], "send") == 0) return run_sender(argv[2], argc - 3, argv + 3);
    if (argc == 1) {
        char name[64];
        mpq_process sender;
        int rc;
        snprintf(name, sizeof name, "/mpq-example-%ld", (long)getpid());
        self_argv[0] = argv[0];
        self_argv[1] = (char *)"send";
        self_argv[2] = name;
        self_argv[3] = (char *)"hello";
        self_argv[4] = (char *)"from another program";
        self_argv[5] = NULL;
        if (mpq_process_start(&sender, exec_sender, NULL) != 0) return 1;
        rc = run_server(name, &sender);
        mpq_process_join(&sender, -1);
        return rc || sender.exitcode;
    }
    fprintf(stderr, "usage: %s [serve NAME | send NAME MESSAGE...]\n", argv[0]);
    return 2;
}
