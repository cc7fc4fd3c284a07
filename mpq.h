/* mpq.h - v0.1.0 - processes, queues, pipes, locks and pools for C - MIT license

   Python's `multiprocessing` for C, as one header: libc and pthreads only,
   Linux first (glibc and musl, 32- and 64-bit).

   USAGE

     In exactly ONE C or C++ file, before including this header (and before
     any system header, see "Feature macros" below):

         #define MPQ_IMPLEMENTATION
         #include "mpq.h"

     Everywhere else include "mpq.h" as usual. Build with `cc app.c -pthread`.

     A lock shared by five forked processes:

         mpq_mutex *lock;
         mpq_mutex_create(&lock, NULL);        // anonymous: inherited by fork
         for (i = 0; i < 5; i++) mpq_process_start(&p[i], work, lock);
         for (i = 0; i < 5; i++) mpq_process_join(&p[i], -1);
         mpq_mutex_close(lock);

   TABLE OF CONTENTS  (search for the tag to jump there)

     >>conventions    errors, timeouts, config structs, handles
     >>options        compile-time options
     >>api-shm        mpq_shm      shared-memory regions (anonymous, named, memfd)
     >>api-mutex      mpq_mutex    robust process-shared lock
     >>api-process    mpq_process  fork a function, join, kill
     >>platform       implementation: atomics, futex, deadlines, segments
     >>shm            implementation of mpq_shm
     >>mutex          implementation of mpq_mutex
     >>process        implementation of mpq_process
     >>history        revision history
     >>license        license text

   >>conventions

     Errors    Every function that can fail returns int: 0 (or a count) on
               success, a negative errno value on failure, so strerror(-rc)
               explains it. errno is never the interface.
     Timeouts  `int timeout_ms`: < 0 waits forever, 0 tries once (-EAGAIN
               when it would have to wait), > 0 is a bound (-ETIMEDOUT). The
               bound is a CLOCK_MONOTONIC deadline: signals (EINTR) are
               retried inside and never stretch the wait.
     Configs   Creation takes a pointer to a *_config struct in which zero
               means "default"; NULL means all defaults:
                   mpq_shm_create(&shm, &(mpq_shm_config){ .size = 4096 });
     Shared    Shared memory holds no pointers, only offsets, sizes and
     memory    atomics, so a named object maps at any address in any process.
               Every segment mpq creates starts with a 64-byte header (magic,
               layout version, object kind, ABI, sizes, checksum); *_open
               validates it before trusting a single field: a corrupt,
               foreign, truncated or newer segment gives -EINVAL or -EPROTO,
               never a crash.
     Handles   Process-local; after fork() a child uses its parent's handle as
               it is. Named objects are created with O_EXCL and mode 0600
               unless the config asks otherwise; a name is "/" followed by 1
               to 254 characters, none of them '/', and not "." or "..".
     Signals   mpq installs no signal handler and changes no disposition.

   >>options

     Set these before including mpq.h.
       MPQ_STATIC            (set globally) every function becomes static, for
                             a private copy in one translation unit.
       MPQDEF                (set globally) linkage of public functions, if you
                             need something other than extern / static.
       MPQ_ASSERT(x)         (implementation file) defaults to assert(x).
       MPQ_MALLOC(size)      (implementation file) the few process-local
       MPQ_FREE(ptr)         allocations; define both or neither.

   Feature macros
     The implementation needs POSIX 2008 and the usual Linux extensions. It
     defines _GNU_SOURCE itself when it is the first thing a file includes;
     if your file includes a system header first, compile that file with
     -D_GNU_SOURCE (the header stops with an #error that says so on glibc).

   >>history

     0.1.0  (2026-11)  shared-memory segments, robust mutex, processes.

   See the end of the file for the license.
*/

#if defined(MPQ_IMPLEMENTATION) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1
#endif

#ifndef MPQ_H_INCLUDED
#define MPQ_H_INCLUDED

#define MPQ_VERSION_MAJOR 0
#define MPQ_VERSION_MINOR 1
#define MPQ_VERSION_PATCH 0
#define MPQ_VERSION_STRING "0.1.0"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <pthread.h>

#if defined(__GNUC__) || defined(__clang__)
#define MPQ__UNUSED __attribute__((unused))
#else
#define MPQ__UNUSED
#endif

#ifndef MPQDEF
#ifdef MPQ_STATIC
#define MPQDEF static MPQ__UNUSED
#else
#define MPQDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Returns MPQ_VERSION_STRING of the implementation that was compiled in.
   Thread safety: any thread, any time. */
MPQDEF const char *mpq_version(void);

/* ========================================================================
   >>api-shm  mpq_shm: a shared-memory region
   ========================================================================

   Python: multiprocessing.shared_memory.SharedMemory.

   A region of `size` bytes that several processes map. Anonymous regions are
   inherited across fork(); named regions (POSIX shm_open) can be opened by
   any process that knows the name; memfd regions are anonymous but have a
   file descriptor that can be handed to another process (SCM_RIGHTS) or
   inherited across exec. `addr` is aligned to 64 bytes and zero-filled on
   creation. Put an mpq_mutex in it to guard what else it holds.
*/

typedef struct mpq_shm {
    void  *addr;     /* the caller's bytes (after mpq's 64-byte header)  */
    size_t size;     /* usable size in bytes                              */
    int    fd;       /* memfd regions: the descriptor; otherwise -1       */
    void  *base__;   /* internal: start of the mapping                    */
    size_t length__; /* internal: length of the mapping                   */
} mpq_shm;

typedef struct mpq_shm_config {
    size_t      size;  /* bytes wanted; required (> 0)                     */
    const char *name;  /* NULL: anonymous. "/name": a named region         */
    int         mode;  /* permission bits of a named region; 0: 0600       */
    int         memfd; /* non-zero (and no name): back it by a memfd       */
} mpq_shm_config;

/* Creates a region. Anonymous and memfd regions are shared with the
   children forked afterwards; named ones are created exclusively (O_EXCL).
   Returns 0, or -EINVAL (NULL, size 0 or too large, bad name), -EEXIST (the
   name exists), -ENOMEM, -ENOSYS (memfd unsupported), or another errno from
   shm_open/ftruncate/mmap.
   Thread safety: any thread; `shm` is written only on success. */
MPQDEF int mpq_shm_create(mpq_shm *shm, const mpq_shm_config *cfg);

/* Maps the named region `name` made by mpq_shm_create, validating its header.
   Returns 0, or -EINVAL (bad name, not an mpq shm region, corrupt or
   truncated header), -EPROTO (a different layout version or ABI, e.g. a
   32-bit creator), -EAGAIN (its creator has not finished initialising it),
   -ENOENT, -EACCES, or another errno from shm_open/mmap.
   Thread safety: any thread. */
MPQDEF int mpq_shm_open(mpq_shm *shm, const char *name);

/* Maps the memfd region behind `fd` (received over a socket or inherited
   across exec), validating it as mpq_shm_open does. The descriptor is
   duplicated: the caller keeps ownership of `fd`.
   Returns 0 or the errors of mpq_shm_open (-EBADF for a bad descriptor). */
MPQDEF int mpq_shm_from_fd(mpq_shm *shm, int fd);

/* Unmaps the region in this process and closes its descriptor. The region
   itself lives on while other processes map it (and, if named, until
   mpq_shm_unlink). Returns 0 or -EINVAL (NULL or not mapped).
   Thread safety: no other thread may use the region's memory afterwards. */
MPQDEF int mpq_shm_close(mpq_shm *shm);

/* Removes the name of a named region (mappings stay valid). Works for the
   name of any mpq object (queue, mutex, region).
   Returns 0, -EINVAL (bad name), -ENOENT, -EACCES.
   Thread safety: any thread. */
MPQDEF int mpq_shm_unlink(const char *name);

/* ========================================================================
   >>api-mutex  mpq_mutex: a robust process-shared lock
   ========================================================================

   Python: multiprocessing.Lock.

   An mpq_mutex lives in shared memory: embed one in any struct that several
   processes map (mpq_mutex_init), or let mpq_mutex_create place one in a
   mapping of its own (anonymous: inherited across fork; named: opened by
   unrelated processes with mpq_mutex_open).

   Robust: when a process (or thread) dies holding the lock, the next locker
   gets -EOWNERDEAD *with the lock held*; the lock is consistent again and
   works normally from then on, and the caller should repair whatever data
   the lock protects. A dead waiter never strands the others: waiters never
   depend on a single wake-up from a process that may itself die.

   The lock is owned by a thread: only the thread that locked it may unlock
   it (-EPERM otherwise), and locking it again from that thread is -EDEADLK.
   The struct is opaque; its size depends on the ABI (do not share one
   between 32- and 64-bit processes; named mutexes refuse to).
*/

typedef struct mpq_mutex {
    uint32_t        magic__;   /* internal */
    uint32_t        flags__;   /* internal */
    pthread_mutex_t pm__;      /* internal: a robust process-shared mutex */
} mpq_mutex;

typedef struct mpq_mutex_config {
    const char *name;  /* NULL: anonymous mapping. "/name": named         */
    int         mode;  /* permission bits of a named mutex; 0: 0600       */
} mpq_mutex_config;

/* Initialises a mutex in memory the caller provides (normally inside an
   mpq_shm region or another MAP_SHARED mapping). Do it once, before any
   other process uses it; never on a mutex that may be in use.
   Returns 0, -EINVAL (NULL), or -ENOMEM/-EAGAIN from pthread.
   Thread safety: the caller must be the only user of `m` during the call. */
MPQDEF int mpq_mutex_init(mpq_mutex *m);

/* Releases what mpq_mutex_init acquired (nothing on Linux); `m` must be
   unlocked and unused. Returns 0, -EINVAL, or -EBUSY if it is locked. */
MPQDEF int mpq_mutex_destroy(mpq_mutex *m);

/* Creates a mutex in a mapping of its own and returns it in *out.
   Anonymous (cfg NULL or no name): children forked afterwards share it.
   Named: created exclusively; other processes use mpq_mutex_open.
   Returns 0, or the errors of mpq_shm_create.
   Thread safety: any thread. */
MPQDEF int mpq_mutex_create(mpq_mutex **out, const mpq_mutex_config *cfg);

/* Opens the named mutex `name` made by mpq_mutex_create in any process.
   Returns 0, or the errors of mpq_shm_open; -EINVAL also when the name holds
   another kind of mpq object. Thread safety: any thread. */
MPQDEF int mpq_mutex_open(mpq_mutex **out, const char *name);

/* Unmaps a mutex from mpq_mutex_create/mpq_mutex_open in this process. Other
   processes keep theirs; a named mutex stays until mpq_shm_unlink(name).
   Returns 0 or -EINVAL (NULL, or a mutex mpq_mutex_init set up in memory of
   your own). Thread safety: no thread of this process may use it after. */
MPQDEF int mpq_mutex_close(mpq_mutex *m);

/* Locks, waiting as long as it takes (timeout_ms = -1).
   Returns 0; -EOWNERDEAD (the lock is held: its previous owner died
   holding it, the protected data may be inconsistent); -EDEADLK (this
   thread holds it already); -EINVAL (NULL or not initialised).
   Thread safety: any thread of any process that maps it. Not
   async-signal-safe. */
MPQDEF int mpq_mutex_lock(mpq_mutex *m);

/* Locks if the lock is free right now. Returns 0, -EOWNERDEAD (held, as
   for lock), -EBUSY (someone holds it, this thread included), -EINVAL.
   Thread safety: as mpq_mutex_lock. */
MPQDEF int mpq_mutex_trylock(mpq_mutex *m);

/* Locks, waiting at most timeout_ms (< 0 forever, 0 once).
   Returns 0, -EOWNERDEAD, -EDEADLK (timeout_ms != 0 and this thread holds
   it), -EINVAL, -EAGAIN (timeout_ms == 0 and the lock is held, by this
   thread or another), -ETIMEDOUT. Thread safety: as mpq_mutex_lock. */
MPQDEF int mpq_mutex_timedlock(mpq_mutex *m, int timeout_ms);

/* Unlocks. Returns 0, -EPERM (the calling thread does not hold it), -EINVAL.
   Thread safety: the owning thread. Not async-signal-safe. */
MPQDEF int mpq_mutex_unlock(mpq_mutex *m);

/* ========================================================================
   >>api-process  mpq_process: run a function in a forked child
   ========================================================================

   Python: multiprocessing.Process (the "fork" start method).

       static int work(void *arg) { printf("hello %s\n", (char *)arg); return 0; }
       mpq_process p;
       mpq_process_start(&p, work, "bob");
       mpq_process_join(&p, -1);       // p.exitcode == 0

   The child runs fn(arg); its return value (0..255) is the exit status. The
   child flushes stdio and calls _exit(): the parent's atexit handlers do not
   run twice. mpq installs no SIGCHLD handler; if the caller sets SIGCHLD to
   SIG_IGN the kernel reaps children itself and join returns -ECHILD.
   join waits on a pidfd (Linux 5.3+); on older kernels it polls.
*/

#define MPQ_PROCESS_RUNNING (-1000) /* exitcode of a process not yet joined */

typedef struct mpq_process {
    pid_t pid;      /* the child's pid; 0 before start                       */
    int   exitcode; /* after join: exit status 0..255, or -N if signal N
                       killed it (Python's convention); MPQ_PROCESS_RUNNING
                       before                                              */
    int   pidfd__;  /* internal: pidfd, or -1                              */
    int   joined__; /* internal                                            */
} mpq_process;

/* Forks a child that runs fn(arg) and exits with its return value (only
   the low 8 bits survive, as for exit()). stdout and stderr are flushed
   before the fork so buffered output is not printed twice.
   Returns 0 in the parent, or -EINVAL (NULL), -EAGAIN/-ENOMEM (fork failed).
   Never returns in the child.
   Thread safety: any thread; the child has only the forking thread, so fn
   should not rely on locks other threads held at fork time (as in Python). */
MPQDEF int mpq_process_start(mpq_process *p, int (*fn)(void *arg), void *arg);

/* Waits for the process to end, at most timeout_ms, and reaps it; sets
   p->exitcode. Joining a joined process returns 0 again.
   Returns 0, -EAGAIN (timeout_ms == 0, still running), -ETIMEDOUT,
   -EINVAL (never started), -ECHILD (reaped elsewhere, e.g. SIGCHLD ignored).
   Thread safety: one thread per process handle at a time. */
MPQDEF int mpq_process_join(mpq_process *p, int timeout_ms);

/* Sends signal `sig` (SIGTERM, SIGKILL, ...) to the process. Never signals
   a reaped pid that the system may have reused.
   Returns 0, -EINVAL (not started, bad signal), -ESRCH (already joined).
   Thread safety: any thread. Async-signal-safe. */
MPQDEF int mpq_process_kill(mpq_process *p, int sig);

/* Returns 1 while the process runs, 0 once it has ended (joined or not;
   it stays joinable), or -EINVAL. Thread safety: any thread. */
MPQDEF int mpq_process_alive(mpq_process *p);

/* Returns p->exitcode: 0..255, -N for death by signal N, or
   MPQ_PROCESS_RUNNING if it has not been joined. */
MPQDEF int mpq_process_exitcode(const mpq_process *p);

/* Releases the handle's descriptor. A process not yet joined goes on
   running and is no longer tracked (reap it yourself or it stays a zombie).
   Returns 0 or -EINVAL. Thread safety: nobody else may use the handle. */
MPQDEF int mpq_process_destroy(mpq_process *p);

#ifdef __cplusplus
}
#endif

#endif /* MPQ_H_INCLUDED */

/* ======================================================================== */
/*                            IMPLEMENTATION                                */
/* ======================================================================== */

#ifdef MPQ_IMPLEMENTATION
#ifndef MPQ_IMPLEMENTATION_INCLUDED
#define MPQ_IMPLEMENTATION_INCLUDED

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#if defined(__GLIBC__) && (!defined(__USE_XOPEN2K8) || !defined(__USE_MISC))
#error "mpq.h: the implementation needs POSIX 2008 and Linux extensions: include it before any system header in this file, or compile the file with -D_GNU_SOURCE"
#endif

#if defined(MPQ_MALLOC) != defined(MPQ_FREE)
#error "mpq.h: define both MPQ_MALLOC and MPQ_FREE, or neither"
#endif
#ifndef MPQ_MALLOC
#define MPQ_MALLOC(sz) malloc(sz)
#define MPQ_FREE(p) free(p)
#endif
#ifndef MPQ_ASSERT
#include <assert.h>
#define MPQ_ASSERT(x) assert(x)
#endif

/* ========================================================================
   >>platform  atomics, futex, deadlines, errors, segments
   ======================================================================== */

/* Shared words are plain integers accessed through these wrappers over the
   __atomic builtins: valid C99 and C++, and no _Atomic in the public API. */
#define MPQ__RELAXED __ATOMIC_RELAXED
#define MPQ__ACQUIRE __ATOMIC_ACQUIRE
#define MPQ__RELEASE __ATOMIC_RELEASE
#define MPQ__ACQ_REL __ATOMIC_ACQ_REL
#define MPQ__SEQ_CST __ATOMIC_SEQ_CST

#if !defined(__GCC_ATOMIC_INT_LOCK_FREE) || __GCC_ATOMIC_INT_LOCK_FREE != 2 || \
    !defined(__GCC_ATOMIC_LLONG_LOCK_FREE) || __GCC_ATOMIC_LLONG_LOCK_FREE != 2
#error "mpq.h needs lock-free 32- and 64-bit atomics (on 32-bit x86 build for i586 or later, on Arm for v7 or later)"
#endif

static inline uint32_t mpq__load32(const uint32_t *p, int mo) { return __atomic_load_n(p, mo); }
static inline void mpq__store32(uint32_t *p, uint32_t v, int mo) { __atomic_store_n(p, v, mo); }
static inline uint32_t mpq__add32(uint32_t *p, uint32_t v, int mo) { return __atomic_fetch_add(p, v, mo); }
static inline uint32_t mpq__xchg32(uint32_t *p, uint32_t v, int mo) { return __atomic_exchange_n(p, v, mo); }
static inline int mpq__cas32(uint32_t *p, uint32_t *expect, uint32_t want, int mo)
{
    return __atomic_compare_exchange_n(p, expect, want, 0, mo, MPQ__RELAXED);
}
static inline uint64_t mpq__load64(const uint64_t *p, int mo) { return __atomic_load_n(p, mo); }
static inline void mpq__store64(uint64_t *p, uint64_t v, int mo) { __atomic_store_n(p, v, mo); }
static inline uint64_t mpq__add64(uint64_t *p, uint64_t v, int mo) { return __atomic_fetch_add(p, v, mo); }
static inline int mpq__cas64(uint64_t *p, uint64_t *expect, uint64_t want, int mo)
{
    return __atomic_compare_exchange_n(p, expect, want, 0, mo, MPQ__RELAXED);
}

static inline void mpq__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* errno of the last failing libc call, as a negative value (never 0). */
static int mpq__err(void) { return errno > 0 ? -errno : -EIO; }

/* --- time: CLOCK_MONOTONIC nanoseconds and deadlines ------------------- */

static int64_t mpq__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A deadline for timeout_ms: -1 means none (wait forever). */
static int64_t mpq__deadline(int timeout_ms)
{
    if (timeout_ms < 0) return -1;
    return mpq__now_ns() + (int64_t)timeout_ms * 1000000;
}

/* Milliseconds left until `deadline` (rounded up), -1 for none, 0 if past. */
static int mpq__remaining_ms(int64_t deadline)
{
    int64_t left;
    if (deadline < 0) return -1;
    left = deadline - mpq__now_ns();
    if (left <= 0) return 0;
    left = (left + 999999) / 1000000;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* --- futex -------------------------------------------------------------- */

#ifndef FUTEX_WAKE
#define FUTEX_WAKE 1
#endif
#ifndef FUTEX_WAIT_BITSET
#define FUTEX_WAIT_BITSET 9
#endif
#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffff
#endif

/* Sleeps while *addr == expect, until woken or `deadline` (monotonic ns,
   -1: none) passes. Shared (not private) futexes: works across processes.
   Returns 0 when woken, interrupted or the value changed (the caller
   re-checks its condition), -ETIMEDOUT when the deadline passed. The
   absolute deadline is why EINTR retries never stretch a wait. */
static MPQ__UNUSED int mpq__futex_wait(uint32_t *addr, uint32_t expect, int64_t deadline)
{
    long r = -1;
#if defined(SYS_futex_time64)
    {   /* 32-bit with 64-bit time: the kernel's __kernel_timespec. */
        struct { int64_t tv_sec, tv_nsec; } ts;
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        r = syscall(SYS_futex_time64, addr, FUTEX_WAIT_BITSET, expect,
                    deadline >= 0 ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
    }
#if defined(SYS_futex)
    if (r < 0 && errno == ENOSYS) /* kernel older than 5.1: the time32 call */
#endif
#endif
#if defined(SYS_futex)
    {
        struct { long tv_sec, tv_nsec; } ts;
        ts.tv_sec = (long)(deadline / 1000000000);
        ts.tv_nsec = (long)(deadline % 1000000000);
        r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, expect,
                    deadline >= 0 ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
    }
#endif
    if (r == 0) return 0;
    return errno == ETIMEDOUT ? -ETIMEDOUT : 0;
}

/* Wakes up to n sleepers on addr. Async-signal-safe. */
static MPQ__UNUSED void mpq__futex_wake(uint32_t *addr, int n)
{
#if defined(SYS_futex)
    syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
#else
    syscall(SYS_futex_time64, addr, FUTEX_WAKE, n, NULL, NULL, 0);
#endif
}

/* --- segments: every shared object mpq maps starts with this header ---- */

#define MPQ__SEG_MAGIC   0x3153504dU   /* "MPS1" little-endian */
#define MPQ__SEG_VERSION 1
#define MPQ__SEG_HDR     64

enum { MPQ__KIND_SHM = 1, MPQ__KIND_MUTEX = 2, MPQ__KIND_QUEUE = 3 };

typedef struct mpq__seg {
    uint32_t magic;      /* MPQ__SEG_MAGIC, stored last with release order  */
    uint16_t version;    /* layout version: MPQ__SEG_VERSION                */
    uint16_t kind;       /* MPQ__KIND_*                                     */
    uint32_t hdr_size;   /* MPQ__SEG_HDR                                    */
    uint32_t abi;        /* pointer size, mutex size, libc: see mpq__abi    */
    uint64_t total_size; /* bytes in the mapping, header included           */
    uint64_t obj_size;   /* bytes of the object after the header            */
    uint32_t check;      /* mpq__seg_checksum of the header                 */
    uint32_t reserved[7];/* zero                                            */
} mpq__seg;

typedef char mpq__assert_seg_size[sizeof(mpq__seg) == MPQ__SEG_HDR ? 1 : -1];

/* What must match between the creator and an opener of a segment. */
static uint32_t mpq__abi(void)
{
    uint32_t abi = (uint32_t)sizeof(void *) | (uint32_t)sizeof(pthread_mutex_t) << 8;
#if defined(__GLIBC__)
    abi |= 1u << 16;
#endif
    return abi;
}

/* FNV-1a over the whole header, the check field counted as zero: a flipped
   bit anywhere in it, reserved bytes included, is caught. */
static uint32_t mpq__seg_checksum(const mpq__seg *h)
{
    const unsigned char *p = (const unsigned char *)h;
    size_t i, at = offsetof(mpq__seg, check);
    uint32_t x = 2166136261u;
    for (i = 0; i < sizeof *h; i++)
        x = (x ^ (i - at < sizeof h->check ? 0u : p[i])) * 16777619u;
    return x;
}

/* A name is "/" then 1..254 characters, no further '/', not "." or "..". */
static int mpq__name_ok(const char *name)
{
    size_t n;
    if (!name || name[0] != '/') return 0;
    n = strlen(name);
    if (n < 2 || n > 255 || strchr(name + 1, '/')) return 0;
    if (strcmp(name, "/.") == 0 || strcmp(name, "/..") == 0) return 0;
    return 1;
}

/* Creates and maps a segment of kind `kind` with `obj_size` bytes after the
   header: anonymous (name NULL, memfd 0), memfd (fd returned in *fd_out) or
   named (O_EXCL). The header is filled in but not published: the caller
   initialises its object, then calls mpq__seg_publish. */
static int mpq__seg_create(int kind, size_t obj_size, const char *name, int mode,
                           int memfd, void **base_out, size_t *len_out, int *fd_out)
{
    size_t len;
    long page = sysconf(_SC_PAGESIZE);
    int fd = -1, rc;
    void *base;
    mpq__seg h;

    if (page <= 0) page = 4096;
    if (name && !mpq__name_ok(name)) return -EINVAL;
    if (obj_size == 0 || obj_size > (size_t)-1 / 2 - MPQ__SEG_HDR - (size_t)page) return -EINVAL;
    len = (MPQ__SEG_HDR + obj_size + (size_t)page - 1) / (size_t)page * (size_t)page;
    if ((off_t)len < 0 || (size_t)(off_t)len != len) return -EINVAL;

    if (name) {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)(mode ? mode : 0600));
        if (fd < 0) return mpq__err();
        /* shm_open applies the umask; the caller asked for exactly `mode`. */
        if (fchmod(fd, (mode_t)(mode ? mode : 0600)) != 0) { rc = mpq__err(); goto fail; }
    } else if (memfd) {
#if defined(SYS_memfd_create)
        fd = (int)syscall(SYS_memfd_create, "mpq", 1u /* MFD_CLOEXEC */);
        if (fd < 0) return mpq__err();
#else
        return -ENOSYS;
#endif
    }
    if (fd >= 0 && ftruncate(fd, (off_t)len) != 0) { rc = mpq__err(); goto fail; }
    base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                fd >= 0 ? MAP_SHARED : MAP_SHARED | MAP_ANONYMOUS, fd, 0);
    if (base == MAP_FAILED) { rc = mpq__err(); goto fail; }

    /* Everything but the magic now; mpq__seg_publish stores it last. */
    memset(&h, 0, sizeof h);
    h.magic = MPQ__SEG_MAGIC;
    h.version = MPQ__SEG_VERSION;
    h.kind = (uint16_t)kind;
    h.hdr_size = MPQ__SEG_HDR;
    h.abi = mpq__abi();
    h.total_size = len;
    h.obj_size = obj_size;
    h.check = mpq__seg_checksum(&h);
    memcpy((char *)base + sizeof h.magic, (char *)&h + sizeof h.magic, sizeof h - sizeof h.magic);
    *base_out = base;
    *len_out = len;
    if (fd_out) *fd_out = fd;
    else if (fd >= 0) close(fd);
    return 0;
fail:
    close(fd);
    if (name) shm_unlink(name);
    return rc;
}

/* Makes a created segment visible to openers: the magic goes in last. */
static void mpq__seg_publish(void *base)
{
    mpq__store32(&((mpq__seg *)base)->magic, MPQ__SEG_MAGIC, MPQ__RELEASE);
}

/* Maps the segment behind fd and validates its header against `kind`.
   On success the mapping is in *base_out / *len_out and *obj_size_out
   holds the object size recorded by the creator. Never trusts a field
   before checking it. */
static int mpq__seg_map_fd(int fd, int kind, void **base_out, size_t *len_out, size_t *obj_size_out)
{
    struct stat st;
    void *base;
    size_t len;
    mpq__seg h;
    int rc = -EINVAL;

    if (fstat(fd, &st) != 0) return mpq__err();
    if (st.st_size == 0) return -EAGAIN;          /* creator between open and ftruncate */
    if (st.st_size < MPQ__SEG_HDR) return -EINVAL;
    if ((uint64_t)st.st_size > (uint64_t)((size_t)-1 / 2)) return -EINVAL;
    len = (size_t)st.st_size;
    base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return mpq__err();

    h.magic = mpq__load32(&((mpq__seg *)base)->magic, MPQ__ACQUIRE);
    memcpy((char *)&h + sizeof h.magic, (char *)base + sizeof h.magic, sizeof h - sizeof h.magic);
    if (h.magic == 0) {
        /* All zero: its creator is still initialising it. */
        const unsigned char *b = (const unsigned char *)&h;
        size_t i;
        for (i = 0; i < sizeof h && b[i] == 0; i++) {}
        rc = i == sizeof h ? -EAGAIN : -EINVAL;
    } else if (h.magic != MPQ__SEG_MAGIC) rc = -EINVAL;
    else if (h.version != MPQ__SEG_VERSION) rc = -EPROTO;
    else if (h.check != mpq__seg_checksum(&h)) rc = -EINVAL;
    else if (h.abi != mpq__abi()) rc = -EPROTO;
    else if (h.hdr_size != MPQ__SEG_HDR || h.kind != (uint16_t)kind) rc = -EINVAL;
    else if (h.total_size != (uint64_t)len) rc = -EINVAL;
    else if (h.obj_size == 0 || h.obj_size > h.total_size - MPQ__SEG_HDR) rc = -EINVAL;
    else rc = 0;
    if (rc != 0) { munmap(base, len); return rc; }
    *base_out = base;
    *len_out = len;
    *obj_size_out = (size_t)h.obj_size;
    return 0;
}

static int mpq__seg_open(const char *name, int kind, void **base_out, size_t *len_out, size_t *obj_size_out)
{
    int fd, rc;
    if (!mpq__name_ok(name)) return -EINVAL;
    fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return mpq__err();
    rc = mpq__seg_map_fd(fd, kind, base_out, len_out, obj_size_out);
    close(fd);
    return rc;
}

/* The header of the segment whose object starts at `obj`, if it is a
   segment of kind `kind`. Only for objects known to live in a segment. */
static mpq__seg *mpq__seg_of(void *obj, int kind)
{
    mpq__seg *h = (mpq__seg *)((char *)obj - MPQ__SEG_HDR);
    if (mpq__load32(&h->magic, MPQ__ACQUIRE) != MPQ__SEG_MAGIC || h->kind != kind) return NULL;
    return h;
}

MPQDEF const char *mpq_version(void) { return MPQ_VERSION_STRING; }

/* ========================================================================
   >>shm  shared-memory regions
   ======================================================================== */

MPQDEF int mpq_shm_create(mpq_shm *shm, const mpq_shm_config *cfg)
{
    void *base;
    size_t len;
    int fd = -1, rc;
    if (!shm || !cfg || cfg->size == 0) return -EINVAL;
    if (cfg->name && cfg->memfd) return -EINVAL;
    rc = mpq__seg_create(MPQ__KIND_SHM, cfg->size, cfg->name, cfg->mode, cfg->memfd,
                         &base, &len, &fd);
    if (rc != 0) return rc;
    mpq__seg_publish(base);
    shm->base__ = base;
    shm->length__ = len;
    shm->addr = (char *)base + MPQ__SEG_HDR;
    shm->size = cfg->size;
    shm->fd = fd;
    return 0;
}

static int mpq__shm_fill(mpq_shm *shm, int fd, int rc, void *base, size_t len, size_t obj)
{
    if (rc != 0) { if (fd >= 0) close(fd); return rc; }
    shm->base__ = base;
    shm->length__ = len;
    shm->addr = (char *)base + MPQ__SEG_HDR;
    shm->size = obj;
    shm->fd = fd;
    return 0;
}

MPQDEF int mpq_shm_open(mpq_shm *shm, const char *name)
{
    void *base = NULL;
    size_t len = 0, obj = 0;
    int rc;
    if (!shm) return -EINVAL;
    rc = mpq__seg_open(name, MPQ__KIND_SHM, &base, &len, &obj);
    return mpq__shm_fill(shm, -1, rc, base, len, obj);
}

MPQDEF int mpq_shm_from_fd(mpq_shm *shm, int fd)
{
    void *base = NULL;
    size_t len = 0, obj = 0;
    int rc, dup_fd;
    if (!shm) return -EINVAL;
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return mpq__err();
    rc = mpq__seg_map_fd(dup_fd, MPQ__KIND_SHM, &base, &len, &obj);
    return mpq__shm_fill(shm, dup_fd, rc, base, len, obj);
}

MPQDEF int mpq_shm_close(mpq_shm *shm)
{
    if (!shm || !shm->base__) return -EINVAL;
    munmap(shm->base__, shm->length__);
    if (shm->fd >= 0) close(shm->fd);
    memset(shm, 0, sizeof *shm);
    shm->fd = -1;
    return 0;
}

MPQDEF int mpq_shm_unlink(const char *name)
{
    if (!mpq__name_ok(name)) return -EINVAL;
    return shm_unlink(name) == 0 ? 0 : mpq__err();
}

/* ========================================================================
   >>mutex  robust process-shared mutex
   ========================================================================

   A pthread mutex that is PROCESS_SHARED, ROBUST and ERRORCHECK: the kernel's
   robust-futex list (which libc maintains for every thread) marks it
   owner-died when its holder dies, so recovery needs no liveness guessing
   and pid reuse cannot fool it.

   What mpq adds is protection against lost wake-ups. On death of an owner
   the kernel wakes exactly one waiter, and unlock wakes exactly one; if
   that waiter is killed before it takes the lock, libc's waiters sleep on
   forever on a lock nobody holds. mpq never sleeps in one unbounded wait:
   it blocks in slices of MPQ__LOCK_SLICE_MS and retries, so a lost wake-up
   costs a waiter at most one slice. (glibc on recent kernels closes most
   of that hole itself; musl does not: test_mutex's
   woken_waiter_killed_with_owner strands a musl waiter without slices.)
   It does not spin before blocking: measured, a spinning waiter steals the
   lock's cache line from the owner and halves two-process throughput. */

#define MPQ__MUTEX_MAGIC 0x584d504dU  /* "MPMX" */
#define MPQ__MUTEX_IN_SEGMENT 1u      /* flags__: made by mpq_mutex_create */

/* pthread_mutex_clocklock waits on CLOCK_MONOTONIC (glibc 2.30+). Elsewhere
   pthread_mutex_timedlock on CLOCK_REALTIME is used one slice at a time, so
   a clock step can stretch only the slice it falls in. clang 14's
   ThreadSanitizer does not intercept clocklock, so TSan builds use the
   other path too, or every lock would look like a race. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define MPQ__HAVE_CLOCKLOCK 1
#endif
#if defined(__SANITIZE_THREAD__)
#undef MPQ__HAVE_CLOCKLOCK
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#undef MPQ__HAVE_CLOCKLOCK
#endif
#endif
#ifndef MPQ__LOCK_SLICE_MS
#define MPQ__LOCK_SLICE_MS 50
#endif

static int mpq__mutex_ok(const mpq_mutex *m)
{
    return m && mpq__load32(&m->magic__, MPQ__ACQUIRE) == MPQ__MUTEX_MAGIC;
}

/* Maps a pthread result to mpq's: an inherited dead owner's lock is made
   consistent at once, so the lock stays usable by everyone. */
static int mpq__mutex_result(mpq_mutex *m, int rc)
{
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&m->pm__);
        return -EOWNERDEAD;
    }
    return -rc;
}

MPQDEF int mpq_mutex_init(mpq_mutex *m)
{
    pthread_mutexattr_t a;
    int rc;
    if (!m) return -EINVAL;
    if ((rc = pthread_mutexattr_init(&a)) != 0) return -rc;
    rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (rc == 0) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (rc == 0) rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    if (rc == 0) rc = pthread_mutex_init(&m->pm__, &a);
    pthread_mutexattr_destroy(&a);
    if (rc != 0) return -rc;
    m->flags__ = 0;
    mpq__store32(&m->magic__, MPQ__MUTEX_MAGIC, MPQ__RELEASE);
    return 0;
}

MPQDEF int mpq_mutex_destroy(mpq_mutex *m)
{
    int rc;
    if (!mpq__mutex_ok(m)) return -EINVAL;
    rc = mpq__mutex_result(m, pthread_mutex_trylock(&m->pm__));
    if (rc != 0 && rc != -EOWNERDEAD) return -EBUSY;
    pthread_mutex_unlock(&m->pm__);
    pthread_mutex_destroy(&m->pm__);
    mpq__store32(&m->magic__, 0, MPQ__RELEASE);
    return 0;
}

MPQDEF int mpq_mutex_trylock(mpq_mutex *m)
{
    int rc;
    if (!mpq__mutex_ok(m)) return -EINVAL;
    rc = pthread_mutex_trylock(&m->pm__);
    return rc == EDEADLK ? -EBUSY : mpq__mutex_result(m, rc);
}

/* The blocking part of a lock: one slice at a time until the deadline. */
static int mpq__mutex_wait(mpq_mutex *m, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms), slice_end;
    struct timespec ts;
    int rc;
    for (;;) {
        /* One slice, or less when the caller's deadline is nearer. */
        slice_end = mpq__now_ns() + (int64_t)MPQ__LOCK_SLICE_MS * 1000000;
        if (deadline >= 0 && deadline < slice_end) slice_end = deadline;
#if defined(MPQ__HAVE_CLOCKLOCK)
        ts.tv_sec = (time_t)(slice_end / 1000000000);
        ts.tv_nsec = (long)(slice_end % 1000000000);
        rc = pthread_mutex_clocklock(&m->pm__, CLOCK_MONOTONIC, &ts);
#else
        {   /* timedlock takes CLOCK_REALTIME: convert the slice's length. */
            int64_t left = slice_end - mpq__now_ns();
            clock_gettime(CLOCK_REALTIME, &ts);
            if (left < 0) left = 0;
            left += ts.tv_nsec;
            ts.tv_sec += (time_t)(left / 1000000000);
            ts.tv_nsec = (long)(left % 1000000000);
            rc = pthread_mutex_timedlock(&m->pm__, &ts);
        }
#endif
        if (rc != ETIMEDOUT) return mpq__mutex_result(m, rc);
        if (deadline >= 0 && mpq__now_ns() >= deadline) return -ETIMEDOUT;
    }
}

MPQDEF int mpq_mutex_timedlock(mpq_mutex *m, int timeout_ms)
{
    int rc;
    if (!mpq__mutex_ok(m)) return -EINVAL;
    rc = pthread_mutex_trylock(&m->pm__);
    if (rc == 0) return 0;
    if (rc == EDEADLK) rc = EBUSY;  /* glibc; musl says EBUSY: try-once agrees on both */
    if (rc != EBUSY) return mpq__mutex_result(m, rc);
    if (timeout_ms == 0) return -EAGAIN;
    return mpq__mutex_wait(m, timeout_ms);
}

MPQDEF int mpq_mutex_lock(mpq_mutex *m)
{
    int rc;
    if (!mpq__mutex_ok(m)) return -EINVAL;
    rc = pthread_mutex_trylock(&m->pm__);
    if (rc == 0) return 0;
    if (rc != EBUSY && rc != EDEADLK) return mpq__mutex_result(m, rc);
    return mpq__mutex_wait(m, -1);
}

MPQDEF int mpq_mutex_unlock(mpq_mutex *m)
{
    if (!mpq__mutex_ok(m)) return -EINVAL;
    return -pthread_mutex_unlock(&m->pm__);
}

MPQDEF int mpq_mutex_create(mpq_mutex **out, const mpq_mutex_config *cfg)
{
    static const mpq_mutex_config defaults = { NULL, 0 };
    void *base;
    size_t len;
    int rc;
    if (!out) return -EINVAL;
    if (!cfg) cfg = &defaults;
    rc = mpq__seg_create(MPQ__KIND_MUTEX, sizeof(mpq_mutex), cfg->name, cfg->mode, 0,
                         &base, &len, NULL);
    if (rc != 0) return rc;
    rc = mpq_mutex_init((mpq_mutex *)((char *)base + MPQ__SEG_HDR));
    ((mpq_mutex *)((char *)base + MPQ__SEG_HDR))->flags__ = MPQ__MUTEX_IN_SEGMENT;
    if (rc != 0) {
        munmap(base, len);
        if (cfg->name) shm_unlink(cfg->name);
        return rc;
    }
    mpq__seg_publish(base);
    *out = (mpq_mutex *)((char *)base + MPQ__SEG_HDR);
    return 0;
}

MPQDEF int mpq_mutex_open(mpq_mutex **out, const char *name)
{
    void *base;
    size_t len, obj;
    mpq_mutex *m;
    int rc;
    if (!out) return -EINVAL;
    rc = mpq__seg_open(name, MPQ__KIND_MUTEX, &base, &len, &obj);
    if (rc != 0) return rc;
    m = (mpq_mutex *)((char *)base + MPQ__SEG_HDR);
    if (obj != sizeof(mpq_mutex) || !mpq__mutex_ok(m) || m->flags__ != MPQ__MUTEX_IN_SEGMENT) {
        munmap(base, len);
        return -EINVAL;
    }
    *out = m;
    return 0;
}

MPQDEF int mpq_mutex_close(mpq_mutex *m)
{
    mpq__seg *h;
    if (!mpq__mutex_ok(m) || m->flags__ != MPQ__MUTEX_IN_SEGMENT) return -EINVAL;
    if (!(h = mpq__seg_of(m, MPQ__KIND_MUTEX))) return -EINVAL;
    munmap(h, (size_t)h->total_size);
    return 0;
}

/* ========================================================================
   >>process  fork a function, join, kill
   ======================================================================== */

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int mpq__pidfd_open(pid_t pid)
{
#if defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int mpq__decode_status(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return -WTERMSIG(st);
    return -1;
}

MPQDEF int mpq_process_start(mpq_process *p, int (*fn)(void *arg), void *arg)
{
    pid_t pid;
    if (!p || !fn) return -EINVAL;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) return mpq__err();
    if (pid == 0) {
        int code = fn(arg);
        fflush(NULL);
        _exit(code & 0xff);
    }
    p->pid = pid;
    p->exitcode = MPQ_PROCESS_RUNNING;
    p->joined__ = 0;
    p->pidfd__ = mpq__pidfd_open(pid);
    return 0;
}

/* Reaps the child if it has ended: 1 reaped, 0 still running, <0 error. */
static int mpq__process_reap(mpq_process *p)
{
    int st = 0;
    pid_t r;
    do r = waitpid(p->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r < 0) return mpq__err();
    if (r == 0) return 0;
    p->exitcode = mpq__decode_status(st);
    p->joined__ = 1;
    if (p->pidfd__ >= 0) close(p->pidfd__);
    p->pidfd__ = -1;
    return 1;
}

MPQDEF int mpq_process_join(mpq_process *p, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    int rc, backoff_us = 200;

    if (!p || p->pid <= 0) return -EINVAL;
    if (p->joined__) return 0;
    for (;;) {
        rc = mpq__process_reap(p);
        if (rc != 0) return rc < 0 ? rc : 0;
        if (timeout_ms == 0) return -EAGAIN;
        if (deadline >= 0 && mpq__now_ns() >= deadline) return -ETIMEDOUT;
        if (p->pidfd__ >= 0) {
            /* The pidfd becomes readable when the child exits. */
            struct pollfd pfd;
            pfd.fd = p->pidfd__;
            pfd.events = POLLIN;
            pfd.revents = 0;
            poll(&pfd, 1, mpq__remaining_ms(deadline));
        } else {
            /* No pidfd (Linux < 5.3): poll with a growing pause. */
            struct timespec ts;
            int left = mpq__remaining_ms(deadline);
            int us = (left >= 0 && left * 1000 < backoff_us) ? left * 1000 : backoff_us;
            ts.tv_sec = 0;
            ts.tv_nsec = (long)us * 1000;
            nanosleep(&ts, NULL);
            if (backoff_us < 20000) backoff_us *= 2;
        }
    }
}

MPQDEF int mpq_process_kill(mpq_process *p, int sig)
{
    if (!p || p->pid <= 0 || sig < 0 || sig > SIGRTMAX) return -EINVAL;
    if (p->joined__) return -ESRCH;
#if defined(SYS_pidfd_send_signal)
    if (p->pidfd__ >= 0) {
        if (syscall(SYS_pidfd_send_signal, p->pidfd__, sig, NULL, 0) == 0) return 0;
        if (errno != ENOSYS) return mpq__err();
    }
#endif
    /* Not yet reaped by us, so the pid is still ours (a zombie at worst). */
    return kill(p->pid, sig) == 0 ? 0 : mpq__err();
}

MPQDEF int mpq_process_alive(mpq_process *p)
{
    siginfo_t si;
    if (!p || p->pid <= 0) return -EINVAL;
    if (p->joined__) return 0;
    memset(&si, 0, sizeof si);
    /* WNOWAIT: look without reaping, so join still gets the status. */
    if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD ? 0 : mpq__err();
    return si.si_pid == 0;
}

MPQDEF int mpq_process_exitcode(const mpq_process *p)
{
    return p && p->joined__ ? p->exitcode : MPQ_PROCESS_RUNNING;
}

MPQDEF int mpq_process_destroy(mpq_process *p)
{
    if (!p) return -EINVAL;
    if (p->pidfd__ >= 0 && p->pid > 0) close(p->pidfd__);
    p->pidfd__ = -1;
    return 0;
}

#endif /* MPQ_IMPLEMENTATION_INCLUDED */
#endif /* MPQ_IMPLEMENTATION */

/* >>license
------------------------------------------------------------------------------
MIT License

Copyright (c) 2026 the mpq.h authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
