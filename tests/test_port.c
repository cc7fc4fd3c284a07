/* Tests of what differs between platforms: an allocator that aligns to 8
   only (ARMv7 glibc's malloc, a user's MPQ_MALLOC), a kernel without the
   robust-futex list (qemu-user, seccomp), and a 32-bit kernel that lacks
   one of the two futex calls. A kernel without the robust list is
   imitated with a seccomp filter that answers ENOSYS for one system call;
   a missing futex call by this file's own syscall(), which mpq's calls go
   through (seccomp is refused where the 32-bit suites run: qemu-user). */
#define _GNU_SOURCE 1
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#include <sys/syscall.h>

#if defined(SYS_futex_time64) && defined(SYS_futex)
/* 32-bit: every syscall() in this file and in mpq's implementation comes
   here, and system call mpqt_enosys_nr fails with ENOSYS, as on a kernel
   without it. The rest pass through with six arguments, as libc's own
   syscall() reads them. */
static long mpqt_enosys_nr = -1;
static long mpqt_syscall(long nr, ...)
{
    va_list ap;
    long a[6];
    int i;
    if (nr == mpqt_enosys_nr) {
        errno = ENOSYS;
        return -1;
    }
    va_start(ap, nr);
    for (i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
#define syscall mpqt_syscall
#endif

/* The seccomp filter's few kernel definitions, spelt out: musl-gcc has no
   kernel headers (<linux/filter.h>, <linux/seccomp.h>). */
struct mpqt_bpf { uint16_t code; uint8_t jt, jf; uint32_t k; };
struct mpqt_bpf_prog { unsigned short len; struct mpqt_bpf *filter; };
#define MPQT_BPF_LD_W_ABS 0x20   /* BPF_LD | BPF_W | BPF_ABS */
#define MPQT_BPF_JEQ_K    0x15   /* BPF_JMP | BPF_JEQ | BPF_K */
#define MPQT_BPF_RET_K    0x06   /* BPF_RET | BPF_K */
#define MPQT_RET_ERRNO    0x00050000u
#define MPQT_RET_ALLOW    0x7fff0000u
#ifndef PR_SET_SECCOMP
#define PR_SET_SECCOMP 22
#endif
#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif

/* MPQ_MALLOC that hands out 8-mod-16 addresses (as ARMv7 glibc may): the
   block from malloc is kept 8 bytes before the pointer returned. */
static void *malloc8(size_t n)
{
    char *p = (char *)malloc(n + 40), *q;
    if (!p) return NULL;
    q = (char *)(((uintptr_t)p + 31) & ~(uintptr_t)15) + 8;   /* q - p in [24, 39] */
    memcpy(q - 8, &p, sizeof p);
    return q;
}
static void free8(void *q)
{
    char *p;
    if (!q) return;
    memcpy(&p, (char *)q - 8, sizeof p);
    free(p);
}
#define MPQ_MALLOC(n) malloc8(n)
#define MPQ_FREE(p) free8(p)
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

/* Makes system call `nr` fail with ENOSYS in this process from now on
   (what a kernel without it says). 0, or -1 where seccomp is refused
   (qemu-user, an older kernel). */
static int deny_syscall(long nr)
{
    struct mpqt_bpf f[4];
    struct mpqt_bpf_prog prog;
    f[0].code = MPQT_BPF_LD_W_ABS; f[0].jt = f[0].jf = 0; f[0].k = 0;   /* seccomp_data.nr */
    f[1].code = MPQT_BPF_JEQ_K; f[1].jt = 0; f[1].jf = 1; f[1].k = (uint32_t)nr;
    f[2].code = MPQT_BPF_RET_K; f[2].jt = f[2].jf = 0; f[2].k = MPQT_RET_ERRNO | ENOSYS;
    f[3].code = MPQT_BPF_RET_K; f[3].jt = f[3].jf = 0; f[3].k = MPQT_RET_ALLOW;
    prog.len = 4;
    prog.filter = f;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, 2 /* SECCOMP_MODE_FILTER */, &prog) == 0 ? 0 : -1;
}

/* peek hands a message of a packed batch out as a copy: 16-byte aligned,
   as documented, even when MPQ_MALLOC aligns to 8 only. */
static void test_port_peek_copies_aligned(void)
{
    mpq_queue *q;
    const void *m[8];
    const void *msgs[8];
    size_t lens[8], len;
    int i;
    void *probe = MPQ_MALLOC(16);
    CHECK((uintptr_t)probe % 16 == 8);   /* the allocator does misalign */
    MPQ_FREE(probe);
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 4, .max_msg = 1024 }));
    for (i = 0; i < 8; i++) {
        msgs[i] = "abcdefghijklmnopqrstuvwxyz";
        lens[i] = (size_t)i * 3;   /* 0, 3, ... 21 bytes: one packed slot */
    }
    CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 8, 0), 8);
    CHECK_EQ(mpq_queue_count(q), 1);
    for (i = 0; i < 8; i++) {
        CHECK_OK(mpq_queue_peek(q, &m[i], &len, 0));
        CHECK_EQ(len, lens[i]);
        CHECK(memcmp(m[i], msgs[i], len) == 0);
        if ((uintptr_t)m[i] % 16 != 0)
            mpqt_fail(__FILE__, __LINE__, "copy %d at %p: not 16-byte aligned", i, m[i]);
    }
    for (i = 7; i >= 0; i--) CHECK_OK(mpq_queue_release(q, m[i]));
    /* copies still held when the handle goes are freed with it */
    CHECK_EQ(mpq_queue_put_batch(q, msgs, lens, 8, 0), 8);
    CHECK_OK(mpq_queue_peek(q, &m[0], &len, 0));
    CHECK_OK(mpq_queue_peek(q, &m[1], &len, 0));
    CHECK_OK(mpq_queue_release(q, m[0]));
    CHECK_OK(mpq_queue_close(q));
}

/* Where set_robust_list is refused, a lock's dead owner could never be
   reported: making a lock says -ENOTSUP instead of pretending. */
static int init_without_robust_list(void *arg)
{
    mpq_mutex m, *mp = NULL;
    mpq_dict *d = NULL;
    (void)arg;
    if (!mpqt_no_robust_list() && deny_syscall(SYS_set_robust_list) != 0) return 3;
    if (!mpqt_no_robust_list()) return 4;
    if (mpq_mutex_init(&m) != -ENOTSUP) return 5;
    if (mpq_mutex_init_recursive(&m) != -ENOTSUP) return 6;
    if (mpq_mutex_create(&mp, NULL) != -ENOTSUP) return 7;
    if (mpq_dict_create(&d, NULL) != -ENOTSUP) return 8;
    return 0;
}

static void test_port_mutex_enotsup_without_robust_list(void)
{
    mpq_process p;
    mpq_mutex m;
#if defined(MPQ_ALLOW_NONROBUST)
    MPQT_SKIP("built with MPQ_ALLOW_NONROBUST");
#endif
    if (!mpqt_no_robust_list()) {
        CHECK_OK(mpq_mutex_init(&m));   /* here, as everywhere the list is kept */
        CHECK_OK(mpq_mutex_destroy(&m));
    }
    CHECK_OK(mpq_process_start(&p, init_without_robust_list, NULL));
    CHECK_OK(mpq_process_join(&p, 60000));
    if (p.exitcode == 3) MPQT_SKIP("seccomp is refused here");
    CHECK_EQ(p.exitcode, 0);
}

/* 32-bit: futex_time64 and the time32 futex are both tried, by the wait
   and by the wake alike, so a kernel that lacks either one (time32 calls
   compiled out, or a kernel before 5.1) loses no wake-up. */
#if defined(SYS_futex_time64) && defined(SYS_futex)
static uint32_t *futex_word;

static int futex_waiter(void *arg)
{
    int64_t deadline = mpq__now_ns() + (int64_t)30 * 1000000000;
    (void)arg;
    while (mpq__load32(futex_word, MPQ__ACQUIRE) == 0)
        if (mpq__futex_wait(futex_word, 0, deadline) == -ETIMEDOUT) return 1;   /* not woken */
    return 0;
}

static int futex_waker(void *arg)
{
    (void)arg;
    mpq__store32(futex_word, 1, MPQ__RELEASE);
    mpq__futex_wake(futex_word, 1);
    return 0;
}
#endif

static void test_port_futex_either_call(void)
{
#if defined(SYS_futex_time64) && defined(SYS_futex)
    static const long denied[2] = { SYS_futex, SYS_futex_time64 };
    int i;
    futex_word = (uint32_t *)mpqt_shared(sizeof *futex_word);
    for (i = 0; i < 2; i++) {
        mpq_process w, k;
        mpqt_enosys_nr = denied[i];   /* in the children, which inherit it */
        mpq__store32(futex_word, 0, MPQ__RELEASE);
        CHECK_OK(mpq_process_start(&w, futex_waiter, NULL));
        CHECK(mpqt_wait_sleeping(w.pid, 10000));
        CHECK_OK(mpq_process_start(&k, futex_waker, NULL));
        MPQT_JOIN_OK(&k, 0);
        MPQT_JOIN_OK(&w, 0);   /* 1: the wake was lost */
    }
    mpqt_enosys_nr = -1;
#else
    MPQT_SKIP("one futex call on this ABI");
#endif
}

static const mpqt_case cases[] = {
    MPQT(test_port_peek_copies_aligned, 10, 0),
    MPQT(test_port_mutex_enotsup_without_robust_list, 60, 0),
    MPQT(test_port_futex_either_call, 120, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
