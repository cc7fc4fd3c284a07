/* fuzz_conn - libFuzzer target: the byte stream a connection's peer
   sends (frames, lengths, descriptor messages). The input goes into one
   end of a socket pair, which is then shut for writing; mpq reads from the
   other end in the way byte 0 picks (recv into a small or a large buffer,
   recv_alloc, recv_fd, recv_conn, poll) until it reports the end or an
   error. It must never crash, hang or hand out more than it read.
   Byte 0: bits 0-2 the first way to read, bit 3 a 64-byte message limit,
   bit 4 the authkey handshake first (bit 5: as the listener, which sends
   the challenge; else as the client, which answers one), with the key
   "key": the input is what the other side says. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include <sys/socket.h>

/* With MPQ_FUZZ_SEEDS=DIR: writes what mpq_conn_send puts on the wire
   (messages of 0, 5 and 300 bytes, a descriptor between them) as seeds. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("MPQ_FUZZ_SEEDS");
    static char big[300], wire[4096];
    int sv[2], i;
    (void)argc; (void)argv;
    if (!dir) return 0;
    memset(big, 'x', sizeof big);
    for (i = 0; i < 6; i++) {
        mpq_conn *c;
        char path[4200];
        ssize_t n;
        FILE *f;
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || mpq_conn_from_fd(&c, sv[0]) != 0) _exit(1);
        wire[0] = (char)i;
        if (i == 0) (void)mpq_conn_send(c, "hello", 5);
        if (i == 1) { (void)mpq_conn_send(c, "", 0); (void)mpq_conn_send(c, big, sizeof big); }
        if (i == 2) { (void)mpq_conn_send(c, "a", 1); (void)mpq_conn_send_fd(c, 0); (void)mpq_conn_send(c, "b", 1); }
        if (i == 3) { (void)mpq_conn_send_fd(c, 1); }
        if (i == 4) {   /* a listener's challenge and verdict, to a client */
            wire[0] = 16;
            (void)mpq_conn_send(c, "#CHALLENGE#{sha256}0123456789abcdef0123456789abcdef0123456789", 59);
            (void)mpq_conn_send(c, "#WELCOME#", 9);
            (void)mpq_conn_send(c, "after", 5);
        }
        if (i == 5) {   /* a client's response and challenge, to a listener */
            wire[0] = 16 | 32;
            (void)mpq_conn_send(c, "{sha256}0123456789abcdef0123456789abcdef", 40);
            (void)mpq_conn_send(c, "#CHALLENGE#0123456789abcdef0123456789abcdef", 43);
        }
        mpq_conn_close(c);
        n = read(sv[1], wire + 1, sizeof wire - 1);
        snprintf(path, sizeof path, "%s/seed-%d", dir, i);
        if (n > 0 && (f = fopen(path, "wb")) != NULL) {
            fwrite(wire, 1, (size_t)n + 1, f);
            fclose(f);
        }
        close(sv[1]);
    }
    _exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2], i, rc = 0, how;
    mpq_conn *c;
    size_t off = 0;
    if (size < 1 || size > 100000) return 0;
    how = data[0];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    {   /* room for the whole input: nothing blocks the writer */
        int big = 1 << 20;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    }
    while (off < size - 1) {
        ssize_t w = write(sv[0], data + 1 + off, size - 1 - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    shutdown(sv[0], SHUT_WR);
    if (mpq_conn_from_fd(&c, sv[1]) != 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    if (how & 8) (void)mpq_conn_set_max(c, 64);
    if (how & 16) {   /* what mpq sends goes to sv[0], read by nobody: it is small */
        rc = mpq__auth(c, "key", 3, mpq__deadline(2000), how & 32);
        if (rc != 0 && rc != -EACCES && rc != -EPROTO && rc != -ECONNRESET && rc != -ENOTSUP && rc != -ETIMEDOUT)
            __builtin_trap();
        rc = 0;
    }
    for (i = 0; i < 64 && rc >= 0; i++) {
        char small[16], large[4096];
        size_t len = 0;
        switch ((how + i) & 7) {
        case 0: rc = mpq_conn_recv(c, small, sizeof small, &len, 0);
                if (rc == 0 && len > sizeof small) __builtin_trap();
                if (rc == -EMSGSIZE) rc = 0;
                break;
        case 1: case 2:
                rc = mpq_conn_recv(c, large, sizeof large, &len, 0);
                if (rc == 0 && len > sizeof large) __builtin_trap();
                if (rc == -EMSGSIZE) rc = 0;
                break;
        case 3: {
            void *m = NULL;
            rc = mpq_conn_recv_alloc(c, &m, &len, 0);
            if (rc == 0) {
                if (len > size) __builtin_trap();
                if (len) ((volatile char *)m)[len - 1] = 0;
                free(m);
            }
            break;
        }
        case 4: {
            int fd = -1;
            rc = mpq_conn_recv_fd(c, &fd, 0);
            if (fd >= 0) close(fd);
            if (rc == -ENOMSG) rc = 0;
            break;
        }
        case 5: {
            mpq_conn *got = NULL;
            rc = mpq_conn_recv_conn(c, &got, 0);
            if (rc == 0 && got) mpq_conn_close(got);
            if (rc == -ENOMSG) rc = 0;
            break;
        }
        case 6: rc = mpq_conn_poll(c, 0); if (rc > 0) rc = 0; break;
        default: {
            mpq_conn *one = c;
            int ready = 0;
            rc = mpq_conn_wait(&one, 1, &ready, 0);
            if (rc > 0) rc = 0;
        }
        }
        if (rc == -EAGAIN || rc == -ETIMEDOUT) rc = 0;
    }
    mpq_conn_close(c);
    close(sv[0]);
    return 0;
}
