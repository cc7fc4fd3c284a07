/* dict_peer - a separately exec'd program that uses a named mpq_dict and
   mpq_list.

   usage: dict_peer DICT LIST N   checks that d["greeting"] is "hello",
                                  adds 1 to d["n"] N times, and appends
                                  its pid to the list
   Any failure exits 1 with a message on stderr. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "dict_peer: %s: %s\n", what, strerror(-rc));
    return 1;
}

int main(int argc, char **argv)
{
    mpq_dict *d;
    mpq_list *l;
    char buf[16];
    size_t len;
    long i, n;
    int rc, pid = (int)getpid();
    if (argc != 4) return fail("usage", -EINVAL);
    if ((rc = mpq_dict_open(&d, argv[1])) != 0) return fail("dict_open", rc);
    if ((rc = mpq_list_open(&l, argv[2])) != 0) return fail("list_open", rc);
    if ((rc = mpq_dict_get(d, "greeting", 8, buf, sizeof buf, &len)) != 0) return fail("get", rc);
    if (len != 5 || memcmp(buf, "hello", 5) != 0) return fail("greeting", -EPROTO);
    n = atol(argv[3]);
    for (i = 0; i < n; i++)
        if ((rc = mpq_dict_add(d, "n", 1, 1, NULL)) != 0) return fail("add", rc);
    if ((rc = mpq_list_append(l, &pid, sizeof pid)) != 0) return fail("append", rc);
    mpq_list_close(l);
    return mpq_dict_close(d) == 0 ? 0 : 1;
}
