/* fuzz_open - libFuzzer target: opening a named object whose image another
   process wrote, of every kind (shm, mutex, event, sem, cond, barrier,
   dict, list, queue), then using it with timeouts of 0.

   Input: byte 0 picks the kind, byte 1 whether to use the object after
   opening, the rest is the image, written to a named shm object as a
   hostile peer would. Seeds (real images of each kind) are made by
   running the target with MPQ_FUZZ_SEEDS=DIR (make fuzz does).
   The pthread mutexes in an image (a mutex's lock, a dict's or list's
   calls, an undo semaphore's acquire, a barrier's wait) are taken too:
   mpq refuses one whose type or lock word it did not make. One thing
   about a forged lock word cannot be told from a real one: an owner
   thread that is alive (and so holds the lock, as far as anyone can
   know), for which an untimed lock rightly waits. So the harness points
   such an owner - a live thread, or this one - at a thread that has
   ended (see dead_owners); every other image reaches mpq as it came.
   tests/fuzz/known/ keeps inputs that once crashed this target. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

enum { K_SHM, K_MUTEX, K_EVENT, K_SEM, K_COND, K_BARRIER, K_DICT, K_LIST, K_QUEUE, K_N };
static char name[64];

static void unlink_name(void) { shm_unlink(name); }

static void use_object(int kind)
{
    char buf[256];
    size_t len = 0, pos = 0;
    int64_t n = 0;
    switch (kind) {
    case K_SHM: {
        mpq_shm s;
        if (mpq_shm_open(&s, name) == 0) {
            volatile char *p = (volatile char *)s.addr;
            size_t i;
            for (i = 0; i < s.size; i += 4096) (void)p[i];
            mpq_shm_close(&s);
        }
        break;
    }
    case K_MUTEX: {
        mpq_mutex *m;
        if (mpq_mutex_open(&m, name) == 0) {
            (void)mpq_mutex_locked(m);
            if (mpq_mutex_timedlock(m, 0) >= 0 || 1) (void)mpq_mutex_unlock(m);
            mpq_mutex_close(m);
        }
        break;
    }
    case K_EVENT: {
        mpq_event *e;
        if (mpq_event_open(&e, name) == 0) {
            (void)mpq_event_is_set(e);
            (void)mpq_event_wait(e, 0);
            (void)mpq_event_set(e);
            (void)mpq_event_clear(e);
            mpq_event_close(e);
        }
        break;
    }
    case K_SEM: {
        mpq_sem *s;
        if (mpq_sem_open(&s, name) == 0) {
            (void)mpq_sem_value(s);
            if (mpq_sem_acquire(s, 0) == 0) (void)mpq_sem_release(s);   /* undo: its pthread mutex */
            mpq_sem_close(s);
        }
        break;
    }
    case K_COND: {
        mpq_cond *c;
        if (mpq_cond_open(&c, name) == 0) {
            (void)mpq_cond_notify(c, 1);
            (void)mpq_cond_notify_all(c);
            mpq_cond_close(c);
        }
        break;
    }
    case K_BARRIER: {
        mpq_barrier *b;
        if (mpq_barrier_open(&b, name) == 0) {
            (void)mpq_barrier_parties(b);
            (void)mpq_barrier_n_waiting(b);
            (void)mpq_barrier_broken(b);
            (void)mpq_barrier_wait(b, 0);   /* a waiter's entry holds a pthread mutex */
            mpq_barrier_close(b);
        }
        break;
    }
    case K_DICT: {
        mpq_dict *d;
        if (mpq_dict_open(&d, name) == 0) {
            (void)mpq_dict_len(d);
            (void)mpq_dict_get(d, "k", 1, buf, sizeof buf, &len);
            while (mpq_dict_next(d, &pos, buf, sizeof buf, &len, NULL, 0, NULL) == 1) {}
            (void)mpq_dict_set(d, "k", 1, "v", 1);
            (void)mpq_dict_add(d, "n", 1, 1, &n);
            (void)mpq_dict_delete(d, "k", 1);
            mpq_dict_close(d);
        }
        break;
    }
    case K_LIST: {
        mpq_list *l;
        if (mpq_list_open(&l, name) == 0) {
            (void)mpq_list_len(l);   /* every list call takes its lock */
            (void)mpq_list_get(l, 0, buf, sizeof buf, &len);
            (void)mpq_list_append(l, "x", 1);
            (void)mpq_list_pop(l, -1, buf, sizeof buf, &len);
            mpq_list_close(l);
        }
        break;
    }
    case K_QUEUE: {
        mpq_queue *q;
        if (mpq_queue_open(&q, name) == 0) {
            const void *m;
            int i;
            (void)mpq_queue_count(q);
            for (i = 0; i < 4; i++) {
                if (mpq_queue_get(q, buf, sizeof buf, &len, 0) == -EAGAIN) break;
            }
            (void)mpq_queue_put(q, "abc", 3, 0);
            if (mpq_queue_peek(q, &m, &len, 0) == 0) (void)mpq_queue_release(q, m);
            mpq_queue_close(q);
        }
        break;
    }
    }
}

/* A thread id that has ended: a child forked and reaped at start. */
static uint32_t dead_tid;

/* Whether tid names a thread that is alive (or this one). */
static int tid_alive(uint32_t tid)
{
    return tid == (uint32_t)syscall(SYS_gettid) || kill((pid_t)tid, 0) == 0 || errno == EPERM;
}

/* Rewrites, in the image img of n bytes, every pthread mutex (found by
   the exact type word mpq writes, which an open demands) whose lock word
   or glibc owner names a live thread: that thread becomes dead_tid, the
   other bits stay. Where the layout is unknown, nothing is done (and
   lock-taking calls are not made: see LLVMFuzzerTestOneInput). */
static int dead_owners(unsigned char *img, size_t n)
{
#if defined(MPQ__PM_TYPE_WORD)
    size_t at, lockw = MPQ__PM_LOCK_WORD * 4, typew = MPQ__PM_TYPE_WORD * 4;
    mpq__pm_need();
    if (mpq__pm_known < 0 || !dead_tid) return 0;
    for (at = 0; at + sizeof(pthread_mutex_t) <= n; at += 4) {
        uint32_t w, tid;
        memcpy(&w, img + at + typew, 4);
        if (w != mpq__pm_type) continue;
        memcpy(&w, img + at + lockw, 4);
        tid = w & MPQ__FUTEX_TID_MASK;
        if (tid && tid_alive(tid)) {
            w = (w & ~MPQ__FUTEX_TID_MASK) | dead_tid;
            memcpy(img + at + lockw, &w, 4);
        }
#if defined(__GLIBC__)
        memcpy(&w, img + at + offsetof(pthread_mutex_t, __data.__owner), 4);
        if (w && w < MPQ__TID_MAX && tid_alive(w)) memcpy(img + at + offsetof(pthread_mutex_t, __data.__owner), &dead_tid, 4);
#endif
    }
    return 1;
#else
    (void)img; (void)n;
    return 0;
#endif
}

/* Writes a real object of each kind as a seed file into dir. */
static void make_seeds(const char *dir)
{
    int kind;
    for (kind = 0; kind < K_N; kind++) {
        char path[4200];
        unsigned char hdr[2] = { (unsigned char)kind, 1 };
        int rc = -1, in, out;
        ssize_t r;
        char buf[65536];
        shm_unlink(name);
        switch (kind) {
        case K_SHM: { mpq_shm s; mpq_shm_config c; memset(&c, 0, sizeof c); c.size = 256; c.name = name; rc = mpq_shm_create(&s, &c); break; }
        case K_MUTEX: { mpq_mutex *m; mpq_mutex_config c; memset(&c, 0, sizeof c); c.name = name; rc = mpq_mutex_create(&m, &c); break; }
        case K_EVENT: { mpq_event *e; mpq_event_config c; memset(&c, 0, sizeof c); c.name = name; rc = mpq_event_create(&e, &c); break; }
        case K_SEM: { mpq_sem *s; mpq_sem_config c; memset(&c, 0, sizeof c); c.name = name; c.undo = 1; rc = mpq_sem_create(&s, 2, &c); break; }
        case K_COND: { mpq_cond *cv; mpq_cond_config c; memset(&c, 0, sizeof c); c.name = name; c.max_waiters = 4; rc = mpq_cond_create(&cv, &c); break; }
        case K_BARRIER: { mpq_barrier *b; mpq_barrier_config c; memset(&c, 0, sizeof c); c.name = name; rc = mpq_barrier_create(&b, 3, &c); break; }
        case K_DICT: {
            mpq_dict *d; mpq_dict_config c; memset(&c, 0, sizeof c); c.name = name;
            c.max_entries = 8; c.max_key = 8; c.max_value = 8;
            if ((rc = mpq_dict_create(&d, &c)) == 0) { mpq_dict_set(d, "k", 1, "v", 1); mpq_dict_set(d, "key2", 4, "value2", 6); }
            break;
        }
        case K_LIST: {
            mpq_list *l; mpq_list_config c; memset(&c, 0, sizeof c); c.name = name; c.capacity = 8; c.max_item = 8;
            if ((rc = mpq_list_create(&l, &c)) == 0) { mpq_list_append(l, "a", 1); mpq_list_append(l, "bcd", 3); }
            break;
        }
        case K_QUEUE: {
            mpq_queue *q; mpq_queue_config c; memset(&c, 0, sizeof c); c.name = name; c.capacity = 4; c.max_msg = 64;
            if ((rc = mpq_queue_create(&q, &c)) == 0) {
                const void *msgs[3] = { "a", "bc", "def" };
                size_t lens[3] = { 1, 2, 3 };
                mpq_queue_put(q, "hello", 5, 0);
                mpq_queue_put_batch(q, msgs, lens, 3, 0);
            }
            break;
        }
        }
        if (rc != 0) { fprintf(stderr, "seed %d: %s\n", kind, strerror(-rc)); continue; }
        snprintf(path, sizeof path, "%s/seed-%d", dir, kind);
        snprintf(buf, sizeof buf, "/dev/shm%s", name);
        if ((in = open(buf, O_RDONLY)) < 0) continue;
        if ((out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0) {
            if (write(out, hdr, 2) != 2) {}
            while ((r = read(in, buf, sizeof buf)) > 0)
                if (write(out, buf, (size_t)r) != r) break;
            close(out);
        }
        close(in);
    }
    shm_unlink(name);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *seeds = getenv("MPQ_FUZZ_SEEDS");
    (void)argc; (void)argv;
    pid_t child;
    snprintf(name, sizeof name, "/mpqt-fuzz-%ld", (long)getpid());
    atexit(unlink_name);
    child = fork();
    if (child == 0) _exit(0);
    if (child > 0 && waitpid(child, NULL, 0) == child) dead_tid = (uint32_t)child;
    if (seeds) {   /* the objects stay mapped: _exit, no leak report */
        make_seeds(seeds);
        _exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char *img;
    int fd, kind, use;
    if (size < 2 || size > (1u << 20)) return 0;
    kind = data[0] % K_N;
    use = data[1] & 1;
    if (!img && !(img = (unsigned char *)malloc(1u << 20))) return 0;
    memcpy(img, data + 2, size - 2);
    if (!dead_owners(img, size - 2) && (kind == K_MUTEX || kind == K_DICT || kind == K_LIST))
        return 0;   /* no layout known: a forged live owner would hang the lock */
    fd = shm_open(name, O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) return 0;
    if (write(fd, img, size - 2) != (ssize_t)(size - 2)) {}
    close(fd);
    if (use) {
        use_object(kind);
    } else {   /* open and close only */
        switch (kind) {
        case K_MUTEX: { mpq_mutex *m; if (mpq_mutex_open(&m, name) == 0) mpq_mutex_close(m); break; }
        case K_QUEUE: { mpq_queue *q; if (mpq_queue_open(&q, name) == 0) mpq_queue_close(q); break; }
        default: use_object(kind);
        }
    }
    return 0;
}
