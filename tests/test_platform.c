/* Tests of the platform layer and mpq_shm: futex, deadlines, names,
   shared-memory regions, and the validation of segment headers. */
#define MPQ_IMPLEMENTATION
#include "../mpq.h"
#include "mpq_test.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>

/* --- futex and deadlines ---------------------------------------------- */

static void test_deadline(void)
{
    int64_t d = mpq__deadline(1000);
    int left = mpq__remaining_ms(d);
    CHECK(left > 0 && left <= 1000);
    CHECK_EQ(mpq__deadline(-1), -1);
    CHECK_EQ(mpq__remaining_ms(-1), -1);
    CHECK_EQ(mpq__remaining_ms(mpq__now_ns() - 1), 0);
}

static void test_futex_timeout(void)
{
    uint32_t word = 7;
    int64_t t0 = mpqt_ms();
    /* A value that differs returns at once; an equal one waits out the deadline. */
    CHECK_EQ(mpq__futex_wait(&word, 8, mpq__deadline(5000)), 0);
    CHECK(mpqt_ms() - t0 < 4000);
    t0 = mpqt_ms();
    CHECK_ERR(mpq__futex_wait(&word, 7, mpq__deadline(50)), ETIMEDOUT);
    CHECK(mpqt_ms() - t0 >= 49);
}

static void on_alarm(int sig) { (void)sig; }

/* Signals interrupt the wait, but the deadline is absolute: a caller that
   loops until -ETIMEDOUT waits no longer because of them. */
static void test_futex_eintr_keeps_deadline(void)
{
    struct sigaction sa;
    struct itimerval it;
    uint32_t word = 0;
    int64_t t0, deadline;
    int rc, wakeups = 0;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    memset(&it, 0, sizeof it);
    it.it_interval.tv_usec = 5000;
    it.it_value.tv_usec = 5000;
    setitimer(ITIMER_REAL, &it, NULL);
    t0 = mpqt_ms();
    deadline = mpq__deadline(200);
    while ((rc = mpq__futex_wait(&word, 0, deadline)) == 0) wakeups++;
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
    CHECK_ERR(rc, ETIMEDOUT);
    CHECK(wakeups > 0);               /* the signals did interrupt it */
    CHECK(mpqt_ms() - t0 >= 199);
    CHECK(mpqt_ms() - t0 < 3000);     /* and did not stretch it */
}

static int futex_sleeper(void *arg)
{
    uint32_t *word = (uint32_t *)arg;
    int64_t deadline = mpq__deadline(20000);
    while (mpq__load32(word, MPQ__ACQUIRE) == 0)
        if (mpq__futex_wait(word, 0, deadline) == -ETIMEDOUT) return 1;
    return 0;
}

/* A process asleep on a shared futex wakes when another process wakes it. */
static void test_futex_cross_process_wake(void)
{
    mpq_shm shm;
    mpq_process p;
    uint32_t *word;
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = 64 }));
    word = (uint32_t *)shm.addr;
    CHECK_OK(mpq_process_start(&p, futex_sleeper, word));
    CHECK(mpqt_wait_sleeping(p.pid, 10000));
    mpq__store32(word, 1, MPQ__RELEASE);
    mpq__futex_wake(word, 1);
    CHECK_OK(mpq_process_join(&p, 15000));
    CHECK_EQ(p.exitcode, 0);
    CHECK_OK(mpq_shm_close(&shm));
}

/* --- names and regions -------------------------------------------------- */

static void test_names(void)
{
    char longname[300];
    mpq_shm shm;
    mpq_shm_config c;
    const char *bad[] = { "", "noslash", "/", "/a/b", "//", "/.", "/..", NULL };
    int i;
    memset(&c, 0, sizeof c);
    c.size = 64;
    for (i = 0; bad[i]; i++) {
        c.name = bad[i];
        CHECK_ERR(mpq_shm_create(&shm, &c), EINVAL);
        CHECK_ERR(mpq_shm_open(&shm, bad[i]), EINVAL);
        CHECK_ERR(mpq_shm_unlink(bad[i]), EINVAL);
    }
    CHECK_ERR(mpq_shm_open(&shm, NULL), EINVAL);
    /* Unique to this test (suites run side by side), padded with 'x'. */
    mpqt_name(longname, sizeof longname, "long");
    memset(longname + strlen(longname), 'x', sizeof longname - 1 - strlen(longname));
    longname[sizeof longname - 1] = 0;
    c.name = longname;
    CHECK_ERR(mpq_shm_create(&shm, &c), EINVAL);
    longname[255] = 0; /* "/" + 254 characters: the longest allowed */
    CHECK_OK(mpq_shm_create(&shm, &c));
    CHECK_OK(mpq_shm_close(&shm));
    CHECK_OK(mpq_shm_unlink(longname));
}

static void test_shm_bad_input(void)
{
    mpq_shm shm;
    CHECK_ERR(mpq_shm_create(NULL, &(mpq_shm_config){ .size = 1 }), EINVAL);
    CHECK_ERR(mpq_shm_create(&shm, NULL), EINVAL);
    CHECK_ERR(mpq_shm_create(&shm, &(mpq_shm_config){ .size = 0 }), EINVAL);
    CHECK_ERR(mpq_shm_create(&shm, &(mpq_shm_config){ .size = (size_t)-1 }), EINVAL);
    CHECK_ERR(mpq_shm_create(&shm, &(mpq_shm_config){ .size = 1, .name = "/x", .memfd = 1 }), EINVAL);
    CHECK_ERR(mpq_shm_close(NULL), EINVAL);
    CHECK_ERR(mpq_shm_from_fd(&shm, -1), EBADF);
    CHECK_ERR(mpq_shm_open(&shm, "/mpqt-surely-does-not-exist"), ENOENT);
}

static int shm_child_writes(void *arg)
{
    memcpy(arg, "from the child", 15);
    return 0;
}

static void test_shm_anonymous_fork(void)
{
    mpq_shm shm;
    mpq_process p;
    CHECK_OK(mpq_shm_create(&shm, &(mpq_shm_config){ .size = 100 }));
    CHECK_EQ(shm.size, 100);
    CHECK_EQ(shm.fd, -1);
    CHECK_EQ((uintptr_t)shm.addr % 64, 0);
    CHECK_EQ(((char *)shm.addr)[99], 0);
    CHECK_OK(mpq_process_start(&p, shm_child_writes, shm.addr));
    CHECK_OK(mpq_process_join(&p, 10000));
    CHECK_EQ(p.exitcode, 0);
    CHECK(strcmp((char *)shm.addr, "from the child") == 0);
    CHECK_OK(mpq_shm_close(&shm));
    CHECK_ERR(mpq_shm_close(&shm), EINVAL);
}

static void test_shm_named(void)
{
    char name[64];
    mpq_shm a, b, c;
    struct stat st;
    int fd;
    mpqt_name(name, sizeof name, "shm");
    CHECK_OK(mpq_shm_create(&a, &(mpq_shm_config){ .size = 5000, .name = name }));
    CHECK_ERR(mpq_shm_create(&c, &(mpq_shm_config){ .size = 5000, .name = name }), EEXIST);
    fd = shm_open(name, O_RDONLY, 0);
    CHECK(fd >= 0);
    CHECK_OK(fstat(fd, &st));
    CHECK_EQ(st.st_mode & 0777, 0600);
    close(fd);
    CHECK_OK(mpq_shm_open(&b, name));
    CHECK_EQ(b.size, 5000);
    strcpy((char *)a.addr + 4000, "shared");
    CHECK(strcmp((char *)b.addr + 4000, "shared") == 0);
    CHECK_OK(mpq_shm_unlink(name));
    CHECK_ERR(mpq_shm_unlink(name), ENOENT);
    CHECK(strcmp((char *)b.addr + 4000, "shared") == 0); /* mappings outlive the name */
    CHECK_OK(mpq_shm_close(&a));
    CHECK_OK(mpq_shm_close(&b));

    /* The caller may ask for another mode. */
    CHECK_OK(mpq_shm_create(&a, &(mpq_shm_config){ .size = 1, .name = name, .mode = 0640 }));
    fd = shm_open(name, O_RDONLY, 0);
    CHECK_OK(fstat(fd, &st));
    CHECK_EQ(st.st_mode & 0777, 0640);
    close(fd);
    CHECK_OK(mpq_shm_close(&a));
    CHECK_OK(mpq_shm_unlink(name));
}

static void test_shm_memfd(void)
{
    mpq_shm a, b;
    int fd;
    CHECK_OK(mpq_shm_create(&a, &(mpq_shm_config){ .size = 64, .memfd = 1 }));
    CHECK(a.fd >= 0);
    CHECK_OK(mpq_shm_from_fd(&b, a.fd));
    CHECK(b.fd != a.fd);
    strcpy((char *)a.addr, "memfd");
    CHECK(strcmp((char *)b.addr, "memfd") == 0);
    CHECK_OK(mpq_shm_close(&a));
    CHECK(strcmp((char *)b.addr, "memfd") == 0);
    CHECK_OK(mpq_shm_close(&b));

    /* A plain file holding a copy of a region is not a sealed memfd. */
    {
        char path[64];
        mpq_shm c;
        CHECK_OK(mpq_shm_create(&c, &(mpq_shm_config){ .size = 64, .memfd = 1 }));
        snprintf(path, sizeof path, "/tmp/mpqt-copy-%ld", (long)getpid());
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        CHECK(fd >= 0);
        CHECK_EQ(write(fd, c.base__, c.length__), (long long)c.length__);
        CHECK_ERR(mpq_shm_from_fd(&b, fd), EINVAL);
        close(fd);
        unlink(path);
        CHECK_OK(mpq_shm_close(&c));
    }
    /* A memfd that is not an mpq region is refused. */
    fd = (int)syscall(SYS_memfd_create, "foreign", 0);
    CHECK(fd >= 0);
    CHECK_ERR(mpq_shm_from_fd(&b, fd), EINVAL);  /* empty */
    CHECK_OK(ftruncate(fd, 10));
    CHECK_ERR(mpq_shm_from_fd(&b, fd), EINVAL);  /* shorter than a header */
    CHECK_OK(ftruncate(fd, 4096));
    CHECK_OK(pwrite(fd, "garbage!", 8, 0));
    CHECK_ERR(mpq_shm_from_fd(&b, fd), EINVAL);  /* foreign */
    close(fd);
}

/* --- header validation ------------------------------------------------ */

/* Writes `len` bytes of `img` as the whole content of the shm name. */
static void put_segment(const char *name, const void *img, size_t len)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    if (len) CHECK_EQ(pwrite(fd, img, len, 0), (long long)len);
    close(fd);
}

/* A valid mutex segment image, and its length. */
static unsigned char *valid_mutex_image(size_t *len)
{
    char name[64];
    mpq_mutex *m;
    mpq__seg *h;
    unsigned char *img;
    mpqt_name(name, sizeof name, "img");
    CHECK_OK(mpq_mutex_create(&m, &(mpq_mutex_config){ .name = name }));
    h = mpq__seg_of(m, MPQ__KIND_MUTEX);
    CHECK(h != NULL);
    *len = (size_t)h->total_size;
    img = (unsigned char *)malloc(*len);
    memcpy(img, h, *len);
    CHECK_OK(mpq_mutex_close(m));
    CHECK_OK(mpq_shm_unlink(name));
    return img;
}

static void test_open_rejects_bad_segments(void)
{
    char name[64];
    size_t len;
    unsigned char *img = valid_mutex_image(&len), *bad = (unsigned char *)malloc(len);
    mpq__seg *h = (mpq__seg *)bad;
    mpq_mutex *m;
    mpq_shm shm;

    mpqt_name(name, sizeof name, "bad");
    /* The untouched image opens and locks. */
    put_segment(name, img, len);
    CHECK_OK(mpq_mutex_open(&m, name));
    CHECK_OK(mpq_mutex_lock(m));
    CHECK_OK(mpq_mutex_unlock(m));
    CHECK_OK(mpq_mutex_close(m));
    /* Another kind of object under the name. */
    CHECK_ERR(mpq_shm_open(&shm, name), EINVAL);
    /* Empty (a creator between shm_open and ftruncate), all-zero header. */
    put_segment(name, img, 0);
    CHECK_ERR(mpq_mutex_open(&m, name), EAGAIN);
    memset(bad, 0, len);
    put_segment(name, bad, len);
    CHECK_ERR(mpq_mutex_open(&m, name), EAGAIN);
    /* Truncated: shorter than a header, shorter than it says. */
    put_segment(name, img, 10);
    CHECK_ERR(mpq_mutex_open(&m, name), EINVAL);
    put_segment(name, img, MPQ__SEG_HDR);
    CHECK_ERR(mpq_mutex_open(&m, name), EINVAL);
    /* Foreign bytes. */
    memset(bad, 'x', len);
    put_segment(name, bad, len);
    CHECK_ERR(mpq_mutex_open(&m, name), EINVAL);
    /* A newer layout version, even with a matching checksum. */
    memcpy(bad, img, len);
    h->version = MPQ__SEG_VERSION + 1;
    h->check = mpq__seg_checksum(h);
    put_segment(name, bad, len);
    CHECK_ERR(mpq_mutex_open(&m, name), EPROTO);
    /* Another ABI (a 32-bit creator, say). */
    memcpy(bad, img, len);
    h->abi ^= 4 ^ 8;
    h->check = mpq__seg_checksum(h);
    put_segment(name, bad, len);
    CHECK_ERR(mpq_mutex_open(&m, name), EPROTO);
    /* A size field that lies, with its checksum fixed up. */
    memcpy(bad, img, len);
    h->obj_size = h->total_size;
    h->check = mpq__seg_checksum(h);
    put_segment(name, bad, len);
    CHECK_ERR(mpq_mutex_open(&m, name), EINVAL);
    /* A header whose checksum does not match. */
    memcpy(bad, img, len);
    h->obj_size += 8;
    put_segment(name, bad, len);
    CHECK_ERR(mpq_mutex_open(&m, name), EINVAL);
    /* A valid header over a mutex that was never initialised. */
    memcpy(bad, img, len);
    memset(bad + MPQ__SEG_HDR, 0, sizeof(mpq_mutex));
    put_segment(name, bad, len);
    CHECK_ERR(mpq_mutex_open(&m, name), EINVAL);
    CHECK_OK(mpq_shm_unlink(name));
    free(img);
    free(bad);
}

/* An opener that comes while the creator is between creating the name and
   publishing the object is told to try again, not that it is garbage. */
static void test_open_during_creation(void)
{
    char name[64];
    void *base;
    size_t len;
    mpq_mutex *m;
    mpq_shm shm;
    mpqt_name(name, sizeof name, "init");
    CHECK_OK(mpq__seg_create(MPQ__KIND_MUTEX, sizeof(mpq_mutex), name, 0, 0, &base, &len, NULL));
    CHECK_ERR(mpq_mutex_open(&m, name), EAGAIN);
    CHECK_OK(mpq_mutex_init((mpq_mutex *)((char *)base + MPQ__SEG_HDR)));
    ((mpq_mutex *)((char *)base + MPQ__SEG_HDR))->flags__ = MPQ__MUTEX_IN_SEGMENT;
    mpq__seg_publish(base);
    CHECK_OK(mpq_mutex_open(&m, name));
    CHECK_OK(mpq_mutex_close(m));
    CHECK_ERR(mpq_shm_open(&shm, name), EINVAL);  /* another kind */
    munmap(base, len);
    CHECK_OK(mpq_shm_unlink(name));
}

/* Random damage to the header and the object's first bytes: open either
   refuses with a negative errno or succeeds on a usable mutex; it never
   crashes or hangs. */
static void test_open_random_headers(void)
{
    char name[64];
    size_t len;
    unsigned char *img = valid_mutex_image(&len), *bad = (unsigned char *)malloc(len);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int i, refused = 0;

    mpqt_name(name, sizeof name, "fuzz");
    for (i = 0; i < 2000; i++) {
        mpq_mutex *m;
        int rc, k, flips = 1 + (int)(mpqt_rand(&seed) % 4);
        size_t cut = len;
        memcpy(bad, img, len);
        for (k = 0; k < flips; k++)
            bad[mpqt_rand(&seed) % (MPQ__SEG_HDR + 8)] ^= (unsigned char)(1 + mpqt_rand(&seed) % 255);
        if (mpqt_rand(&seed) % 8 == 0) cut = (size_t)(mpqt_rand(&seed) % len);
        put_segment(name, bad, cut);
        rc = mpq_mutex_open(&m, name);
        if (rc == 0) {
            rc = mpq_mutex_timedlock(m, 1000);   /* a flipped "owner died" bit is a valid state */
            CHECK(rc == 0 || rc == -EOWNERDEAD);
            CHECK_OK(mpq_mutex_unlock(m));
            CHECK_OK(mpq_mutex_close(m));
        } else {
            /* -EXDEV: a flipped bit of the flags' namespace tag. */
            CHECK(rc == -EINVAL || rc == -EPROTO || rc == -EAGAIN || rc == -EXDEV);
            refused++;
        }
    }
    CHECK(refused > 1800);  /* only the mutex's spare word is harmless */
    CHECK_OK(mpq_shm_unlink(name));
    free(img);
    free(bad);
}

/* --- mutated mutex images (issue 14) ---------------------------------- */

/* Where the pthread mutex of an image keeps its type and its lock word,
   found without asking mpq: the type is the first word a fresh
   initialisation makes non-zero; the lock word is the first that holds
   this thread's id while it holds the lock. */
static void pm_words(size_t *type_w, size_t *lock_w)
{
    mpq_mutex m;
    uint32_t w[sizeof m.pm__ / 4], tid = (uint32_t)syscall(SYS_gettid);
    size_t i;
    memset(&m, 0, sizeof m);
    CHECK_OK(mpq_mutex_init(&m));
    memcpy(w, &m.pm__, sizeof w);
    for (i = 0; i < sizeof w / 4 && w[i] == 0; i++) {}
    CHECK(i < sizeof w / 4);
    *type_w = i;
    CHECK_OK(mpq_mutex_lock(&m));
    memcpy(w, &m.pm__, sizeof w);
    for (i = 0; i < sizeof w / 4 && w[i] != tid; i++) {}
    CHECK(i < sizeof w / 4);
    *lock_w = i;
    CHECK_OK(mpq_mutex_unlock(&m));
    CHECK_OK(mpq_mutex_destroy(&m));
}

struct trial { const char *name; int open_rc, lock_rc, unlock_rc, close_rc; };

/* In the child: open, lock for at most 10 ms, unlock, close. */
static int trial_child(void *arg)
{
    struct trial *t = (struct trial *)arg;
    mpq_mutex *m;
    t->open_rc = mpq_mutex_open(&m, t->name);
    if (t->open_rc != 0) return 0;
    t->lock_rc = mpq_mutex_timedlock(m, 10);
    if (t->lock_rc == 0 || t->lock_rc == -EOWNERDEAD) t->unlock_rc = mpq_mutex_unlock(m);
    t->close_rc = mpq_mutex_close(m);
    return 0;
}

static int clean_rc(int rc) { return rc <= 0 && rc > -4096; }

/* Puts img under t->name and runs trial_child on it: it must exit 0
   within 3 s, every call giving 0 or a clean error. Returns open's rc. */
static int trial(struct trial *t, const unsigned char *img, size_t len, const char *what, uint32_t v)
{
    mpq_process p;
    int rc;
    put_segment(t->name, img, len);
    t->open_rc = t->lock_rc = t->unlock_rc = t->close_rc = 1;
    CHECK_OK(mpq_process_start(&p, trial_child, t));
    rc = mpq_process_join(&p, 3000);
    if (rc == -ETIMEDOUT) {
        mpq_process_kill(&p, SIGKILL);
        mpq_process_join(&p, 10000);
        mpqt_fail(__FILE__, __LINE__, "%s %#x: the opener hung (lock rc %d)", what, v, t->lock_rc);
    }
    if (p.exitcode != 0)
        mpqt_fail(__FILE__, __LINE__, "%s %#x: the opener died (exit code %d; open %d, lock %d)", what, v,
                  p.exitcode, t->open_rc, t->lock_rc);
    if (!clean_rc(t->open_rc) || (t->open_rc == 0 && (!clean_rc(t->lock_rc) || !clean_rc(t->close_rc))))
        mpqt_fail(__FILE__, __LINE__, "%s %#x: open %d, lock %d, close %d", what, v, t->open_rc, t->lock_rc,
                  t->close_rc);
    return t->open_rc;
}

/* A mutex image whose pthread type word or lock word another process
   rewrote: no opener may crash or hang - glibc used to die of SIGILL
   (lock-elision bits), SIGABRT (its assertions) or SIGSEGV, or hang, on
   the first lock. Open refuses every type word but the one mpq makes. */
static void test_mutated_mutex_images(void)
{
    struct trial *t = (struct trial *)mpqt_shared(sizeof *t);
    char name[64];
    size_t len, tw, lw, off;
    unsigned char *img = valid_mutex_image(&len), *bad = (unsigned char *)malloc(len);
    uint32_t v, orig, dead, live = (uint32_t)getpid(), bits, specials[8];
    uint64_t seed = 14;
    mpq_process p;
    int i, k, opened = 0, qemu = mpqt_under_qemu();
    t->name = mpqt_name(name, sizeof name, "mut");
    pm_words(&tw, &lw);
    off = MPQ__SEG_HDR + offsetof(mpq_mutex, pm__);
    memcpy(&orig, img + off + tw * 4, 4);
    /* Every type value below 1024 (glibc's kind bits and more); under
       qemu-user, where each trial's fork costs 30 times as much, those
       below 256 and every 8th above (CI's time). */
    for (v = 0; v < 1024; v++) {
        if (qemu && v >= 256 && v % 8 && v != orig) continue;
        memcpy(bad, img, len);
        memcpy(bad + off + tw * 4, &v, 4);
        if (trial(t, bad, len, "type", v) == 0) {
            opened++;
            CHECK_EQ(v, orig);
            CHECK_OK(t->lock_rc);
        }
    }
    CHECK_EQ(opened, 1);
    /* Lock words: a live holder (this process), a dead one, none, each
       with the kernel's waiters and owner-died bits; libc's marks; and
       random words. */
    CHECK_OK(mpq_process_start(&p, trial_child, t));   /* a pid that is gone after */
    MPQT_JOIN_OK(&p, 0);
    dead = (uint32_t)p.pid;
    specials[0] = 0; specials[1] = live; specials[2] = dead; specials[3] = 0x3fffffffu;
    specials[4] = 0x7fffffffu; specials[5] = 0x7ffffffeu; specials[6] = 0xffffffffu; specials[7] = 4194304u;
    for (i = 0; i < 8 + (qemu ? 32 : 256); i++) {
        for (k = 0; k < 4; k++) {
            bits = (k & 1 ? 0x80000000u : 0) | (k & 2 ? 0x40000000u : 0);
            v = i < 8 ? specials[i] | bits : (uint32_t)mpqt_rand(&seed);
            memcpy(bad, img, len);
            memcpy(bad + off + lw * 4, &v, 4);
            if (trial(t, bad, len, "lock word", v) == 0) {
                CHECK((v & 0x3fffffffu) <= 4194304u || v == 0x7fffffffu);
                if ((v & 0x7fffffffu) == live) CHECK_ERR(t->lock_rc, ETIMEDOUT);   /* held, alive */
            }
            if (i >= 8) break;
        }
    }
    CHECK_OK(mpq_shm_unlink(name));
    free(img);
    free(bad);
}

static int lock_for_5s(void *arg)
{
    int rc = mpq_mutex_timedlock((mpq_mutex *)arg, 5000);
    return rc == -EINVAL ? 0 : 100 + (rc < 0 ? -rc : rc);
}

/* A lock overwritten after it was opened: every call says -EINVAL - a
   waiter too, at its next look (glibc would be handed the new type). */
static void test_mutex_overwritten_after_open(void)
{
    size_t tw, lw;
    mpq_mutex *m;
    uint32_t v = 0xdeadbeefu;
    pm_words(&tw, &lw);
    CHECK_OK(mpq_mutex_create(&m, NULL));
    memcpy((char *)&m->pm__ + tw * 4, &v, 4);
    CHECK_ERR(mpq_mutex_lock(m), EINVAL);
    CHECK_ERR(mpq_mutex_trylock(m), EINVAL);
    CHECK_ERR(mpq_mutex_timedlock(m, 10), EINVAL);
    CHECK_ERR(mpq_mutex_unlock(m), EINVAL);
    CHECK_OK(mpq_mutex_close(m));          /* still unmapped */
    CHECK_OK(mpq_mutex_create(&m, NULL));
    memcpy((char *)&m->pm__ + lw * 4, &v, 4);
    CHECK_ERR(mpq_mutex_lock(m), EINVAL);
    CHECK_ERR(mpq_mutex_locked(m), EINVAL);
    CHECK_OK(mpq_mutex_close(m));
    {   /* A waiter, and the type word rewritten under it (0x40: glibc's
           priority-protect bit, which made it abort). */
        mpq_process p;
        uint32_t pp, orig;
        CHECK_OK(mpq_mutex_create(&m, NULL));
        CHECK_OK(mpq_mutex_lock(m));
        CHECK_OK(mpq_process_start(&p, lock_for_5s, m));
        CHECK(mpqt_wait_sleeping(p.pid, 10000));
        memcpy(&orig, (char *)&m->pm__ + tw * 4, 4);
        pp = 0x40;
        memcpy((char *)&m->pm__ + tw * 4, &pp, 4);
        CHECK_OK(mpq_process_join(&p, 20000));
        CHECK_EQ(p.exitcode, 0);
        memcpy((char *)&m->pm__ + tw * 4, &orig, 4);
        CHECK_OK(mpq_mutex_unlock(m));
        CHECK_OK(mpq_mutex_close(m));
    }
}

/* The number of mappings this process has (lines of /proc/self/maps). */
static int maps_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int c, n = 0;
    CHECK(f != NULL);
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* A mutex file larger than a mutex, its header saying so: open refused
   it too late - close then failed and never unmapped. 10 000 opens leave
   no mapping behind. */
static void test_mutex_larger_file_is_refused(void)
{
    char name[64];
    size_t len;
    unsigned char *img = valid_mutex_image(&len), *big = (unsigned char *)calloc(1, 2 * len);
    mpq__seg *h = (mpq__seg *)big;
    mpq_mutex *m;
    int i, before;
    mpqt_name(name, sizeof name, "big");
    memcpy(big, img, len);
    h->total_size = 2 * len;
    h->check = mpq__seg_checksum(h);
    put_segment(name, big, 2 * len);
    CHECK_ERR(mpq_mutex_open(&m, name), EINVAL);
    before = maps_count();
    for (i = 0; i < 10000; i++)
        if (mpq_mutex_open(&m, name) == 0) mpq_mutex_close(m);
    CHECK(maps_count() < before + 10);
    CHECK_OK(mpq_shm_unlink(name));
    free(img);
    free(big);
}

/* --- a full /dev/shm (issue 14) ----------------------------------------- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC), ok;
    if (fd < 0) return 0;
    ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

/* Makes this test process root of a user namespace of its own, mapped
   to its user: 0 and the reason in why if this machine does not allow it. */
static int enter_userns(int also, char *why, size_t n)
{
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER | also) != 0) {
        snprintf(why, n, "no user namespace here (unshare: %s)", strerror(errno));
        return 0;
    }
    snprintf(map, sizeof map, "0 %ld 1", (long)uid);
    write_file("/proc/self/setgroups", "deny");
    if (!write_file("/proc/self/uid_map", map)) {
        snprintf(why, n, "no uid map in the user namespace");
        return 0;
    }
    snprintf(map, sizeof map, "0 %ld 1", (long)gid);
    write_file("/proc/self/gid_map", map);
    return 1;
}

/* Puts this test process in a mount namespace of its own with a tmpfs of
   `size` over /dev/shm (through a user namespace where plain root may
   not). 0 and the reason in why if this machine does not allow it. */
static int private_dev_shm(const char *size, char *why, size_t n)
{
    char opts[64];
    if (unshare(CLONE_NEWNS) != 0 && !enter_userns(CLONE_NEWNS, why, n)) return 0;
    snprintf(opts, sizeof opts, "size=%s,mode=1777", size);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("mpqt", "/dev/shm", "tmpfs", 0, opts) != 0) {
        snprintf(why, n, "cannot mount a tmpfs over /dev/shm (%s)", strerror(errno));
        return 0;
    }
    return 1;
}

static int shm_exists(const char *name)
{
    int fd = shm_open(name, O_RDONLY, 0);
    if (fd >= 0) close(fd);
    return fd >= 0;
}

/* Creating a named object bigger than the room left in /dev/shm used to
   succeed, and the first touch of a page past the room killed the
   process with SIGBUS. Now creation says -ENOSPC (and leaves no name),
   and what it creates can be filled to the last byte. */
static void test_full_dev_shm_is_enospc(void)
{
    char why[160], name[64], name2[64];
    mpq_shm a, b;
    mpq_queue *q;
    mpq_mutex *m;
    mpq_event *e;
    int fd;
    if (!private_dev_shm("1m", why, sizeof why)) {
        printf("    skipped: %s\n", why);
        return;
    }
    mpqt_name(name, sizeof name, "full");
    CHECK_ERR(mpq_shm_create(&a, &(mpq_shm_config){ .size = 4 << 20, .name = name }), ENOSPC);
    CHECK(!shm_exists(name));
    CHECK_ERR(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 1024, .max_msg = 4096, .name = name }),
              ENOSPC);
    CHECK(!shm_exists(name));
    /* What fits is all there: half the room, filled to the last byte. */
    CHECK_OK(mpq_shm_create(&a, &(mpq_shm_config){ .size = 512 << 10, .name = name }));
    memset(a.addr, 0xa5, a.size);
    CHECK_ERR(mpq_shm_create(&b, &(mpq_shm_config){ .size = 512 << 10, .name = mpqt_name(name2, sizeof name2, "full") }),
              ENOSPC);
    /* The rest taken by a file of someone else's: nothing fits now. */
    fd = open("/dev/shm/filler", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    {
        static char chunk[4096];
        while (write(fd, chunk, sizeof chunk) > 0) {}
        CHECK_EQ(errno, ENOSPC);
    }
    close(fd);
    CHECK_ERR(mpq_mutex_create(&m, &(mpq_mutex_config){ .name = name2 }), ENOSPC);
    CHECK_ERR(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 1, .max_msg = 8, .name = name2 }), ENOSPC);
    CHECK_ERR(mpq_event_create(&e, &(mpq_event_config){ .name = name2 }), ENOSPC);
    CHECK(!shm_exists(name2));
    /* Anonymous and memfd objects do not live in /dev/shm. */
    CHECK_OK(mpq_shm_create(&b, &(mpq_shm_config){ .size = 64 << 10, .memfd = 1 }));
    CHECK_OK(mpq_shm_close(&b));
    CHECK_OK(mpq_shm_close(&a));
    CHECK_OK(mpq_shm_unlink(name));
}

/* --- other users' objects, and creators that died (issue 14) ------------ */

/* A named object another user owns (made first, under our name), or that
   group or others may write, is refused: its writer could crash us. */
static void test_open_refuses_other_owners_and_modes(void)
{
    char name[64];
    mpq_shm a, b;
    mpq_queue *q;
    mpq_mutex *m;
    int fd;
    static const mode_t refused[] = { 0620, 0602, 0666, 0622 };
    size_t i;
    mpqt_name(name, sizeof name, "own");
    CHECK_OK(mpq_shm_create(&a, &(mpq_shm_config){ .size = 64, .name = name }));
    fd = shm_open(name, O_RDWR, 0);
    CHECK(fd >= 0);
    CHECK_OK(mpq_shm_open(&b, name));               /* ours, 0600 */
    CHECK_OK(mpq_shm_close(&b));
    CHECK(fchown(fd, 65534, (gid_t)-1) == 0 || geteuid() != 0);
    if (geteuid() == 0) CHECK_ERR(mpq_shm_open(&b, name), EACCES);
    CHECK(fchown(fd, geteuid(), (gid_t)-1) == 0);
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECK(fchmod(fd, refused[i]) == 0);
        CHECK_ERR(mpq_shm_open(&b, name), EACCES);
    }
    CHECK(fchmod(fd, 0644) == 0);                   /* others may read: fine */
    CHECK_OK(mpq_shm_open(&b, name));
    CHECK_OK(mpq_shm_close(&b));
    close(fd);
    CHECK_OK(mpq_shm_close(&a));
    CHECK_OK(mpq_shm_unlink(name));
    /* Another user made the name first, empty, mode 0666: create fails
       (EEXIST) and open no longer takes it (it waited on -EAGAIN for ever). */
    if (geteuid() == 0) {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0666);
        CHECK(fd >= 0);
        CHECK(fchown(fd, 65534, 65534) == 0 && fchmod(fd, 0666) == 0);
        CHECK_ERR(mpq_queue_create(&q, &(mpq_queue_config){ .name = name }), EEXIST);
        CHECK_ERR(mpq_queue_open(&q, name), EACCES);
        CHECK_ERR(mpq_mutex_open(&m, name), EACCES);
        close(fd);
        CHECK_OK(mpq_shm_unlink(name));
    }
}

/* A creator that died half-way (an empty file, or a header never
   published) blocks the name only for a while: -EAGAIN while it may be
   at work, then -EOWNERDEAD, after which unlink and create work. */
static void test_open_after_creator_died(void)
{
    char name[64];
    struct timespec old[2];
    void *base;
    size_t len;
    mpq_mutex *m;
    int fd;
    mpqt_name(name, sizeof name, "died");
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    CHECK_ERR(mpq_mutex_open(&m, name), EAGAIN);     /* just made: at work */
    clock_gettime(CLOCK_REALTIME, &old[0]);
    old[0].tv_sec -= 60;
    old[1] = old[0];
    CHECK(futimens(fd, old) == 0);                   /* untouched for a minute */
    CHECK_ERR(mpq_mutex_open(&m, name), EOWNERDEAD);
    close(fd);
    CHECK_OK(mpq_shm_unlink(name));
    /* The header written, never published. */
    CHECK_OK(mpq__seg_create(MPQ__KIND_MUTEX, sizeof(mpq_mutex), name, 0, 0, &base, &len, NULL));
    CHECK_ERR(mpq_mutex_open(&m, name), EAGAIN);
    fd = shm_open(name, O_RDWR, 0);
    CHECK(fd >= 0 && futimens(fd, old) == 0);
    close(fd);
    CHECK_ERR(mpq_mutex_open(&m, name), EOWNERDEAD);
    munmap(base, len);
    CHECK_OK(mpq_shm_unlink(name));
    CHECK_OK(mpq_mutex_create(&m, &(mpq_mutex_config){ .name = name }));
    CHECK_OK(mpq_mutex_close(m));
    CHECK_OK(mpq_shm_unlink(name));
}

/* --- pid namespaces (issue 14) ------------------------------------------ */

struct nsobj {
    const char *mutex, *queue, *event;
    mpq_queue *aq; mpq_mutex *am; mpq_sem *as; mpq_cond *ac; mpq_barrier *ab; mpq_dict *ad; mpq_list *al;
};

/* In a child forked into another pid namespace: every use is refused. */
static int use_from_other_pidns(void *arg)
{
    struct nsobj *o = (struct nsobj *)arg;
    mpq_mutex *m;
    mpq_queue *q;
    mpq_event *e;
    char buf[8];
    size_t len;
    if (mpq_mutex_open(&m, o->mutex) != -EXDEV) return 1;
    if (mpq_queue_open(&q, o->queue) != -EXDEV) return 2;
    if (mpq_event_open(&e, o->event) != -EXDEV) return 3;
    if (mpq_queue_put(o->aq, "x", 1, 0) != -EXDEV) return 4;          /* inherited handles */
    if (mpq_queue_get(o->aq, buf, sizeof buf, &len, 0) != -EXDEV) return 5;
    if (mpq_mutex_lock(o->am) != -EXDEV) return 6;
    if (mpq_sem_acquire(o->as, 0) != -EXDEV || mpq_sem_release(o->as) != -EXDEV) return 7;
    if (mpq_cond_notify(o->ac, 1) != -EXDEV) return 8;
    if (mpq_barrier_wait(o->ab, 0) != -EXDEV) return 9;
    if (mpq_dict_set(o->ad, "k", 1, "v", 1) != -EXDEV) return 10;
    if (mpq_list_append(o->al, "i", 1) != -EXDEV) return 11;
    return 0;
}

static int use_from_same_pidns(void *arg)
{
    struct nsobj *o = (struct nsobj *)arg;
    mpq_mutex *m;
    if (mpq_mutex_open(&m, o->mutex) != 0 || mpq_mutex_lock(m) != 0 || mpq_mutex_unlock(m) != 0) return 1;
    if (mpq_mutex_close(m) != 0 || mpq_queue_put(o->aq, "x", 1, 0) != 0) return 2;
    if (mpq_sem_acquire(o->as, 0) != 0 || mpq_sem_release(o->as) != 0 || mpq_cond_notify(o->ac, 1) != 0) return 3;
    if (mpq_dict_set(o->ad, "k", 1, "v", 1) != 0 || mpq_list_append(o->al, "i", 1) != 0) return 4;
    return 0;
}

/* Objects shared across pid namespaces broke: two holders of one mutex,
   a live queue holder taken for dead. Every object records its creator's
   namespace; a process of another gets -EXDEV, at open and, for objects
   inherited through fork, at every call that goes by pids or thread ids. */
static void test_pid_namespace_is_refused(void)
{
    char why[160], n1[64], n2[64], n3[64];
    struct nsobj o;
    mpq_mutex *m;
    mpq_queue *q;
    mpq_event *e;
    mpq_process p;
    o.mutex = mpqt_name(n1, sizeof n1, "nsm");
    o.queue = mpqt_name(n2, sizeof n2, "nsq");
    o.event = mpqt_name(n3, sizeof n3, "nse");
    CHECK_OK(mpq_mutex_create(&m, &(mpq_mutex_config){ .name = o.mutex }));
    CHECK_OK(mpq_queue_create(&q, &(mpq_queue_config){ .capacity = 2, .max_msg = 8, .name = o.queue }));
    CHECK_OK(mpq_event_create(&e, &(mpq_event_config){ .name = o.event }));
    CHECK_OK(mpq_queue_create(&o.aq, &(mpq_queue_config){ .capacity = 2, .max_msg = 8 }));
    CHECK_OK(mpq_mutex_create(&o.am, NULL));
    CHECK_OK(mpq_sem_create(&o.as, 1, NULL));
    CHECK_OK(mpq_cond_create(&o.ac, NULL));
    CHECK_OK(mpq_barrier_create(&o.ab, 2, NULL));
    CHECK_OK(mpq_dict_create(&o.ad, NULL));
    CHECK_OK(mpq_list_create(&o.al, NULL));
    CHECK_OK(mpq_process_start(&p, use_from_same_pidns, &o));   /* the control */
    MPQT_JOIN_OK(&p, 0);
    if (unshare(CLONE_NEWPID) != 0 && !enter_userns(CLONE_NEWPID, why, sizeof why)) {
        printf("    skipped: %s\n", why);
    } else {
        CHECK_OK(mpq_process_start(&p, use_from_other_pidns, &o));
        MPQT_JOIN_OK(&p, 0);
        CHECK_OK(mpq_mutex_lock(o.am));                        /* still ours here */
        CHECK_OK(mpq_mutex_unlock(o.am));
    }
    CHECK_OK(mpq_mutex_close(m));
    CHECK_OK(mpq_mutex_close(o.am));
    CHECK_OK(mpq_queue_close(q));
    CHECK_OK(mpq_queue_close(o.aq));
    CHECK_OK(mpq_event_close(e));
    CHECK_OK(mpq_sem_close(o.as));
    CHECK_OK(mpq_cond_close(o.ac));
    CHECK_OK(mpq_barrier_close(o.ab));
    CHECK_OK(mpq_dict_close(o.ad));
    CHECK_OK(mpq_list_close(o.al));
    CHECK_OK(mpq_shm_unlink(o.mutex));
    CHECK_OK(mpq_shm_unlink(o.queue));
    CHECK_OK(mpq_shm_unlink(o.event));
}

/* mpq__proc_zombie, which tells a dead process from /proc where no pidfd
   can be had: a zombie is dead; a process whose main thread has exited
   while another thread runs is a zombie too in /proc's eyes, and alive;
   so is a running one. */
static void *zombie_thread(void *arg)
{
    int fd = *(int *)arg;
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR) {}   /* until the parent closes its end */
    return NULL;
}

static int main_thread_exits(void *arg)
{
    static int fd;
    pthread_t t;
    fd = ((int *)arg)[0];
    close(((int *)arg)[1]);   /* the parent's end alone keeps it open */
    if (pthread_create(&t, NULL, zombie_thread, &fd) != 0) return 1;
    pthread_exit(NULL);
    return 0;
}

static int exit_at_once(void *arg) { (void)arg; return 0; }

static void test_proc_zombie(void)
{
    mpq_process p;
    int fds[2];
    CHECK(mpq__proc_zombie((uint32_t)getpid()) == 0);
    CHECK_OK(mpq_process_start(&p, exit_at_once, NULL));
    {   /* a zombie at once, its last thread gone soon after (qemu-user's
           own threads end after the guest's) */
        int64_t end = mpqt_ms() + 10000;
        while (!mpq__proc_zombie((uint32_t)p.pid) && mpqt_ms() < end) mpqt_pause();
        CHECK(mpq__proc_zombie((uint32_t)p.pid) == 1);
    }
    MPQT_JOIN_OK(&p, 0);
    CHECK(pipe(fds) == 0);
    CHECK_OK(mpq_process_start(&p, main_thread_exits, fds));
    CHECK(mpqt_wait_ended(p.pid, 10000));            /* its main thread: a zombie */
    CHECK(mpq__proc_zombie((uint32_t)p.pid) == 0);    /* but a thread runs on */
    CHECK(mpq__pid_exited((uint32_t)p.pid) == 0);
    close(fds[1]);
    close(fds[0]);
    /* (Killed, not left to end: under musl here, its last thread's return
       did not end the process.) */
    CHECK_OK(mpq_process_kill(&p, SIGKILL));
    CHECK_OK(mpq_process_join(&p, 10000));
}

static void test_version(void)
{
    CHECK(strcmp(mpq_version(), MPQ_VERSION_STRING) == 0);
}

static const mpqt_case cases[] = {
    MPQT(test_version, 5, 0),
    MPQT(test_deadline, 5, 0),
    MPQT(test_futex_timeout, 10, 0),
    MPQT(test_futex_eintr_keeps_deadline, 10, 0),
    MPQT(test_futex_cross_process_wake, 30, 0),
    MPQT(test_names, 10, 0),
    MPQT(test_shm_bad_input, 10, 0),
    MPQT(test_shm_anonymous_fork, 10, 0),
    MPQT(test_shm_named, 10, 0),
    MPQT(test_shm_memfd, 10, 0),
    MPQT(test_open_rejects_bad_segments, 20, 0),
    MPQT(test_open_during_creation, 10, 0),
    MPQT(test_open_random_headers, 60, 0),
    MPQT(test_mutated_mutex_images, 120, 0),
    MPQT(test_mutex_overwritten_after_open, 10, 0),
    MPQT(test_mutex_larger_file_is_refused, 60, 0),
    MPQT(test_full_dev_shm_is_enospc, 30, 0),
    MPQT(test_open_refuses_other_owners_and_modes, 10, 0),
    MPQT(test_open_after_creator_died, 10, 0),
    MPQT(test_pid_namespace_is_refused, 20, 0),
    MPQT(test_proc_zombie, 20, 0),
};

int main(int argc, char **argv) { return mpqt_main(argc, argv, cases, MPQT_N(cases)); }
