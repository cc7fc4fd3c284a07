/* pipe.c - two processes talk over a Pipe (the C twin of the Python notes'
   Pipe example, line for line).

       from multiprocessing import Process, Pipe
       def f(conn):
           conn.send([42, None, 'hello'])
           print("son process recv:", conn.recv())
           conn.close()
       parent_conn, child_conn = Pipe()
       p = Process(target=f, args=(child_conn,))
       p.start()
       print(parent_conn.recv())   # prints "[42, None, 'hello']"
       parent_conn.send('i am parent process')
       p.join()

   Messages are bytes here: the list travels as its text.

   Build and run from the repository root:
       make tests/build/examples/pipe && tests/build/examples/pipe
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

static int f(void *arg)
{
    mpq_conn *conn = (mpq_conn *)arg;
    char buf[64];
    size_t len;
    const char *msg = "[42, None, 'hello']";
    mpq_conn_send(conn, msg, strlen(msg));
    if (mpq_conn_recv(conn, buf, sizeof buf - 1, &len, -1) != 0) return 1;
    buf[len] = 0;
    printf("son process recv: %s\n", buf);
    mpq_conn_close(conn);
    return 0;
}

int main(void)
{
    mpq_conn *parent_conn, *child_conn;
    mpq_process p;
    char buf[64];
    size_t len;
    int rc;

    if ((rc = mpq_pipe(&parent_conn, &child_conn, 1)) != 0) {   /* duplex, like Pipe() */
        fprintf(stderr, "pipe: %s\n", strerror(-rc));
        return 1;
    }
    if ((rc = mpq_process_start(&p, f, child_conn)) != 0) {
        fprintf(stderr, "start: %s\n", strerror(-rc));
        return 1;
    }
    if ((rc = mpq_conn_recv(parent_conn, buf, sizeof buf - 1, &len, -1)) != 0) {
        fprintf(stderr, "recv: %s\n", strerror(-rc));
        return 1;
    }
    buf[len] = 0;
    printf("%s\n", buf);
    fflush(stdout);                        /* before the child answers */
    mpq_conn_send(parent_conn, "i am parent process", 19);
    mpq_process_join(&p, -1);
    mpq_conn_close(parent_conn);
    mpq_conn_close(child_conn);
    return p.exitcode != 0;
}
