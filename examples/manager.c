/* manager.c - ten processes write into a shared dict and append to a
   shared list; the parent prints both (the C twin of the Python notes'
   Manager example).

       from multiprocessing import Process, Manager
       import os
       def f(d, l):
           d[1] = '1'
           l.append(os.getpid())
       if __name__ == '__main__':
           with Manager() as manager:
               d = manager.dict()
               l = manager.list(range(5))
               p_list = []
               for i in range(10):
                   p = Process(target=f, args=(d, l))
                   p.start()
                   p_list.append(p)
               for res in p_list:
                   res.join()
               print(d)      # {1: '1'}
               print(l)      # [0, 1, 2, 3, 4, <ten pids>]

   No manager process: the dict and the list live in shared memory, and a
   process killed in the middle of a set or an append corrupts neither.
   Keys and values are bytes: here an int key and a one-character string.

   Build and run from the repository root:
       make tests/build/examples/manager && tests/build/examples/manager
*/
#define MPQ_IMPLEMENTATION
#include "../mpq.h"

#include <stdio.h>

struct shared { mpq_dict *d; mpq_list *l; };

static int f(void *arg)
{
    struct shared *s = (struct shared *)arg;
    int key = 1, pid = (int)getpid();
    if (mpq_dict_set(s->d, &key, sizeof key, "1", 1) != 0) return 1;   /* d[1] = '1' */
    return mpq_list_append(s->l, &pid, sizeof pid) != 0;                /* l.append(os.getpid()) */
}

int main(void)
{
    struct shared s;
    mpq_process p_list[10];
    int i, key, item, rc;
    char value[16];
    size_t klen, vlen, pos = 0, len;

    if ((rc = mpq_dict_create(&s.d, NULL)) != 0 || (rc = mpq_list_create(&s.l, NULL)) != 0) {
        fprintf(stderr, "create: %s\n", strerror(-rc));
        return 1;
    }
    for (i = 0; i < 5; i++) mpq_list_append(s.l, &i, sizeof i);        /* range(5) */
    for (i = 0; i < 10; i++) mpq_process_start(&p_list[i], f, &s);
    for (i = 0; i < 10; i++) mpq_process_join(&p_list[i], -1);

    printf("{");
    for (i = 0; mpq_dict_next(s.d, &pos, &key, sizeof key, &klen, value, sizeof value, &vlen) == 1; i++)
        printf("%s%d: '%.*s'", i ? ", " : "", key, (int)vlen, value);
    printf("}\n[");
    for (i = 0; i < mpq_list_len(s.l); i++) {
        mpq_list_get(s.l, i, &item, sizeof item, &len);
        printf("%s%d", i ? ", " : "", item);
    }
    printf("]\n");
    mpq_dict_close(s.d);
    mpq_list_close(s.l);
    return 0;
}
