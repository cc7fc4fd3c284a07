/* mpq against Python's own multiprocessing.connection: a C client and a
   Python Listener, a Python Client and an mpq listener, over a Unix
   path, an abstract name and TCP loopback, with no authkey, the right
   one and a wrong one, messages of 0 bytes to 16 MiB both ways, byte for
   byte; descriptors both ways (reduction.send_handle / recv_handle).

   The handshake a Python older than 3.12 speaks is the legacy one; the
   script then also plays the current protocol by hand ({sha256}), so both
   forms meet mpq whatever python3 is installed.

   Which Python: $MPQT_PYTHONS (a space-separated list of interpreters,
   each run in turn), else python3 from PATH. Without one the tests are
   skipped, with a line that says so - unless $MPQT_REQUIRE_PYTHON is set
   (CI sets it), where that is a failure. */
#define _GNU_SOURCE 1
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

#include <fcntl.h>

static const char script[] =
    "import sys, os, hmac\n"
    "from multiprocessing.connection import Listener, Client, AuthenticationError\n"
    "from multiprocessing import reduction\n"
    "mode, fam, addr, key, full = sys.argv[1:6]\n"
    "key = None if key == '-' else b'' if key == '=' else key.encode()\n"
    "SIZES = [0, 1, 255, 256, 4095, 4096, 4097, 65535, 65536, 65537, 1 << 20, 16 << 20]\n"
    "if full == '0': SIZES = SIZES[:10]\n"
    "def pat(n, s):\n"
    "    p = bytes((i * 7 + s) & 255 for i in range(256))\n"
    "    return (p * (n // 256 + 1))[:n]\n"
    "def py_addr(a):\n"
    "    if fam == 'tcp':\n"
    "        h, p = a.rsplit(':', 1)\n"
    "        return (h, int(p))\n"
    "    return '\\0' + a[1:] if fam == 'abstract' else a\n"
    "def c_addr(a):\n"
    "    if isinstance(a, tuple): return '%s:%d' % a[:2]\n"
    "    if isinstance(a, bytes): a = a.decode()\n"
    "    return '@' + a[1:] if a.startswith('\\0') else a\n"
    "def echo(c):\n"
    "    i = 0\n"
    "    while True:\n"
    "        try: m = c.recv_bytes()\n"
    "        except EOFError: break\n"
    "        if m != pat(len(m), i): sys.exit(5)\n"
    "        c.send_bytes(m)\n"
    "        i += 1\n"
    "    if i != len(SIZES): sys.exit(6)\n"
    "def drive(c):\n"
    "    for i, n in enumerate(SIZES):\n"
    "        d = pat(n, i)\n"
    "        c.send_bytes(d)\n"
    "        if c.recv_bytes() != d: sys.exit(7)\n"
    /* The current protocol, by hand, for a Python that speaks only the
       legacy one (what multiprocessing/connection.py does since 3.12). */
    "def deliver(c):\n"
    "    msg = b'{sha256}' + os.urandom(40)\n"
    "    c.send_bytes(b'#CHALLENGE#' + msg)\n"
    "    r = c.recv_bytes(256)\n"
    "    if r.startswith(b'{sha256}'): ok = hmac.compare_digest(hmac.new(key, msg, 'sha256').digest(), r[8:])\n"
    "    elif len(r) == 16: ok = hmac.compare_digest(hmac.new(key, msg, 'md5').digest(), r)\n"
    "    else: ok = False\n"
    "    c.send_bytes(b'#WELCOME#' if ok else b'#FAILURE#')\n"
    "    if not ok: raise AuthenticationError('digest received was wrong')\n"
    "def answer(c):\n"
    "    m = c.recv_bytes(256)\n"
    "    if not m.startswith(b'#CHALLENGE#{sha256}'): sys.exit(8)\n"
    "    c.send_bytes(b'{sha256}' + hmac.new(key, m[11:], 'sha256').digest())\n"
    "    if c.recv_bytes(256) != b'#WELCOME#': raise AuthenticationError('digest sent was rejected')\n"
    "try:\n"
    "    if mode in ('listen', 'listen-current'):\n"
    "        l = Listener(py_addr(addr), authkey=key if mode == 'listen' else None)\n"
    "        print(c_addr(l.address), flush=True)\n"
    "        c = l.accept()\n"
    "        if mode == 'listen-current': deliver(c); answer(c)\n"
    "        echo(c)\n"
    "        c.close()\n"
    "        try: l.close()\n"
    "        except ValueError: pass\n"   /* Python 3.6 unlinks an abstract name */
    "    elif mode in ('connect', 'connect-current'):\n"
    "        c = Client(py_addr(addr), authkey=key if mode == 'connect' else None)\n"
    "        if mode == 'connect-current': answer(c); deliver(c)\n"
    "        drive(c)\n"
    "        c.close()\n"
    "    elif mode == 'fds':\n"
    "        c = Client(py_addr(addr), authkey=key)\n"
    "        r, w = os.pipe()\n"
    "        os.write(w, b'through python')\n"
    "        reduction.send_handle(c, r, os.getpid())\n"
    "        c.send_bytes(b'after the descriptor')\n"
    "        fd = reduction.recv_handle(c)\n"
    "        if os.read(fd, 64) != b'from C': sys.exit(9)\n"
    "        if c.recv_bytes() != b'after it too': sys.exit(10)\n"
    "        c.close()\n"
    "    elif mode == 'version':\n"
    "        print('%d.%d' % sys.version_info[:2])\n"
    "except AuthenticationError:\n"
    "    sys.exit(3)\n";

static const size_t sizes[] = { 0, 1, 255, 256, 4095, 4096, 4097, 65535, 65536, 65537, 1 << 20, 16 << 20 };
#define NSIZES (sizeof sizes / sizeof *sizes)

static char *pythons[8];
static int npythons;
static const char *py;   /* the one under test */
static size_t nsizes;    /* how many of sizes[] this exchange sends: all
                            (to 16 MiB) once per address family and
                            direction, up to 64 KiB + 1 otherwise */

static int found(const char *name)
{
    char path[4096];
    const char *p = getenv("PATH"), *e;
    if (strchr(name, '/')) return access(name, X_OK) == 0;
    while (p && *p) {
        e = strchr(p, ':');
        snprintf(path, sizeof path, "%.*s/%s", (int)(e ? e - p : (long)strlen(p)), p, name);
        if (access(path, X_OK) == 0) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* Fills pythons[]; 0 when there is none (and that is allowed). */
static int have_python(void)
{
    static char list[1024];
    char *tok, *save = NULL;
    if (npythons) return 1;
    snprintf(list, sizeof list, "%s", getenv("MPQT_PYTHONS") && *getenv("MPQT_PYTHONS") ? getenv("MPQT_PYTHONS") : "python3");
    for (tok = strtok_r(list, " ", &save); tok && npythons < 8; tok = strtok_r(NULL, " ", &save))
        if (found(tok)) pythons[npythons++] = tok;
        else CHECK_MSG(!getenv("MPQT_PYTHONS"), "MPQT_PYTHONS names %s, which is not there", tok);
    if (npythons) return 1;
    CHECK_MSG(!getenv("MPQT_REQUIRE_PYTHON"), "python3 is required here (MPQT_REQUIRE_PYTHON) and not found");
    printf("    (skipped: no python3 on PATH; apt-get install python3)\n");
    return 0;
}

/* Starts the script in mode; with out, its stdout is a pipe read there. */
static pid_t py_start(const char *mode, const char *fam, const char *address, const char *key, FILE **out)
{
    int p[2];
    pid_t pid;
    CHECK_OK(pipe(p));
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execlp(py, py, "-c", script, mode, fam, address, key ? key : "-", nsizes == NSIZES ? "1" : "0",
               (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (out) CHECK((*out = fdopen(p[0], "r")) != NULL);
    else close(p[0]);
    return pid;
}

static int py_exit(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static unsigned char *pattern(size_t n, unsigned s)
{
    unsigned char *b = (unsigned char *)malloc(n ? n : 1);
    size_t i;
    CHECK(b != NULL);
    for (i = 0; i < n; i++) b[i] = (unsigned char)(i * 7 + s);
    return b;
}


/* The C side drives: sends each size, checks each echo. */
static void drive(mpq_conn *c)
{
    size_t i, len;
    void *r;
    for (i = 0; i < nsizes; i++) {
        unsigned char *b = pattern(sizes[i], (unsigned)i);
        CHECK_OK(mpq_conn_send(c, b, sizes[i]));
        CHECK_OK(mpq_conn_recv_alloc(c, &r, &len, 60000));
        CHECK_MSG(len == sizes[i] && memcmp(r, b, len) == 0, "echo of %zu bytes: %zu bytes, or other bytes", sizes[i], len);
        free(r);
        free(b);
    }
}

/* The C side echoes until the end, checking what comes. */
static void echo(mpq_conn *c)
{
    size_t i = 0, len;
    void *r;
    int rc;
    while ((rc = mpq_conn_recv_alloc(c, &r, &len, 60000)) == 0) {
        unsigned char *b = pattern(len, (unsigned)i);
        CHECK_MSG(i < nsizes && len == sizes[i] && memcmp(r, b, len) == 0, "message %zu: %zu bytes", i, len);
        CHECK_OK(mpq_conn_send(c, r, len));
        free(r);
        free(b);
        i++;
    }
    CHECK_ERR(rc, EPIPE);
    CHECK_EQ(i, nsizes);
}

/* Whether the Python side's key (as passed: "=" is b"") differs from the
   C side's, both being set. */
static int keys_differ(const char *pykey, const char *ckey)
{
    if (!pykey || !ckey) return 0;
    return strcmp(strcmp(pykey, "=") == 0 ? "" : pykey, ckey) != 0;
}

static void where(const char *fam, char *a, size_t cap)
{
    if (strcmp(fam, "unix") == 0) snprintf(a, cap, "/tmp/mpqt-py-%ld", (long)getpid());
    else if (strcmp(fam, "abstract") == 0) snprintf(a, cap, "@mpqt-py-%ld", (long)getpid());
    else snprintf(a, cap, "127.0.0.1:0");
}

/* An mpq client against a Python Listener (mode "listen": Python's own
   authkey handshake; "listen-current": the current one, by hand). The
   wrong key must be refused on both ends, with nothing passed. */
static void c_to_python(const char *fam, const char *mode, const char *pykey, const char *ckey)
{
    char a[128], line[256];
    FILE *out;
    mpq_conn *c = NULL;
    mpq_client_config cfg;
    pid_t pid;
    int rc;
    where(fam, a, sizeof a);
    pid = py_start(mode, fam, a, pykey, &out);
    CHECK_MSG(fgets(line, sizeof line, out) != NULL, "%s printed no address", py);
    line[strcspn(line, "\n")] = 0;
    fclose(out);
    memset(&cfg, 0, sizeof cfg);
    cfg.authkey = ckey;
    cfg.authkey_len = ckey ? strlen(ckey) : 0;
    rc = mpq_client_with(&c, line, &cfg);
    if (keys_differ(pykey, ckey)) {
        CHECK_MSG(rc == -EACCES, "%s %s, wrong key: the client says %d", fam, mode, rc);
        CHECK(c == NULL);
        CHECK_EQ(py_exit(pid), 3);           /* AuthenticationError */
        return;
    }
    CHECK_MSG(rc == 0, "%s %s: mpq_client_with(%s) = %d", fam, mode, line, rc);
    drive(c);
    mpq_conn_close(c);
    CHECK_EQ(py_exit(pid), 0);
}

/* A Python Client against an mpq listener. */
static void python_to_c(const char *fam, const char *mode, const char *pykey, const char *ckey)
{
    char a[128];
    mpq_listener *l;
    mpq_listener_config cfg;
    mpq_conn *c = NULL;
    pid_t pid;
    int rc;
    where(fam, a, sizeof a);
    memset(&cfg, 0, sizeof cfg);
    cfg.authkey = ckey;
    cfg.authkey_len = ckey ? strlen(ckey) : 0;
    CHECK_OK(mpq_listener_open_with(&l, a, &cfg));
    CHECK(mpq_listener_address(l, a, sizeof a) > 0);
    pid = py_start(mode, fam, a, pykey, NULL);
    rc = mpq_listener_accept(l, &c, 60000);
    if (keys_differ(pykey, ckey)) {
        CHECK_MSG(rc == -EACCES, "%s %s, wrong key: accept says %d", fam, mode, rc);
        CHECK(c == NULL);
        CHECK_EQ(py_exit(pid), 3);
    } else {
        CHECK_MSG(rc == 0, "%s %s: accept = %d", fam, mode, rc);
        echo(c);
        mpq_conn_close(c);
        CHECK_EQ(py_exit(pid), 0);
    }
    CHECK_OK(mpq_listener_close(l));
}

static void each_python(void (*fn)(const char *fam))
{
    static const char *fams[] = { "unix", "abstract", "tcp" };
    int i, f;
    if (!have_python()) return;
    for (i = 0; i < npythons; i++) {
        py = pythons[i];
        for (f = 0; f < 3; f++) fn(fams[f]);
    }
}

static void c_client_fam(const char *fam)
{
    nsizes = NSIZES - 2;
    c_to_python(fam, "listen", NULL, NULL);
    nsizes = NSIZES;
    c_to_python(fam, "listen", "secret", "secret");
    nsizes = NSIZES - 2;
    c_to_python(fam, "listen", "secret", "wrong");
    c_to_python(fam, "listen-current", "secret", "secret");
    c_to_python(fam, "listen-current", "secret", "wrong");
}

static void python_client_fam(const char *fam)
{
    nsizes = NSIZES - 2;
    python_to_c(fam, "connect", NULL, NULL);
    nsizes = NSIZES;
    python_to_c(fam, "connect", "secret", "secret");
    nsizes = NSIZES - 2;
    python_to_c(fam, "connect", "wrong", "secret");
    python_to_c(fam, "connect", "=", "");        /* b"": a key like any other */
    python_to_c(fam, "connect", "=", "secret");
    python_to_c(fam, "connect-current", "secret", "secret");
    python_to_c(fam, "connect-current", "wrong", "secret");
}

static void test_python_c_client(void) { each_python(c_client_fam); }
static void test_python_python_client(void) { each_python(python_client_fam); }

/* Descriptors both ways, in their places among the messages. */
static void test_python_descriptors(void)
{
    char a[128], buf[64];
    mpq_listener *l;
    mpq_listener_config cfg;
    mpq_conn *c;
    size_t len;
    int i, fd, p[2];
    pid_t pid;
    if (!have_python()) return;
    for (i = 0; i < npythons; i++) {
        py = pythons[i];
        snprintf(a, sizeof a, "/tmp/mpqt-pyfd-%ld", (long)getpid());
        memset(&cfg, 0, sizeof cfg);
        cfg.authkey = "k";
        cfg.authkey_len = 1;
        CHECK_OK(mpq_listener_open_with(&l, a, &cfg));
        pid = py_start("fds", "unix", a, "k", NULL);
        CHECK_OK(mpq_listener_accept(l, &c, 60000));
        CHECK_OK(mpq_conn_recv_fd(c, &fd, 60000));
        CHECK_EQ(read(fd, buf, sizeof buf), 14);
        CHECK(memcmp(buf, "through python", 14) == 0);
        close(fd);
        CHECK_OK(mpq_conn_recv(c, buf, sizeof buf, &len, 60000));
        CHECK(len == 20 && memcmp(buf, "after the descriptor", 20) == 0);
        CHECK_OK(pipe(p));
        CHECK_EQ(write(p[1], "from C", 6), 6);
        CHECK_OK(mpq_conn_send_fd(c, p[0]));
        CHECK_OK(mpq_conn_send(c, "after it too", 12));
        close(p[0]);
        close(p[1]);
        CHECK_EQ(py_exit(pid), 0);
        mpq_conn_close(c);
        CHECK_OK(mpq_listener_close(l));
    }
}

/* Says which Pythons ran (the log then shows which protocol forms met). */
static void test_python_versions(void)
{
    char line[64];
    FILE *out;
    int i;
    if (!have_python()) return;
    for (i = 0; i < npythons; i++) {
        pid_t pid;
        py = pythons[i];
        pid = py_start("version", "unix", "-", NULL, &out);
        CHECK(fgets(line, sizeof line, out) != NULL);
        fclose(out);
        CHECK_EQ(py_exit(pid), 0);
        line[strcspn(line, "\n")] = 0;
        {
            int major = 0, minor = 0;
            sscanf(line, "%d.%d", &major, &minor);
            printf("    (%s is Python %s: its Listener and Client speak the %s authkey handshake)\n", py, line,
                   major > 3 || (major == 3 && minor >= 12) ? "current" : "legacy");
        }
    }
}

static const mpqt_case cases[] = {
    MPQT(test_python_versions, 30, 0),
    MPQT(test_python_c_client, 300, 0),
    MPQT(test_python_python_client, 300, 0),
    MPQT(test_python_descriptors, 60, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
