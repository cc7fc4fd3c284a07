/* mpq.h - v0.4.0 - processes, queues, pipes, locks, shared dicts and a worker pool for C - MIT license

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
     >>api-mutex      mpq_mutex    robust process-shared lock (and RLock)
     >>api-sync       mpq_event, mpq_sem, mpq_cond, mpq_barrier
     >>api-dict       mpq_dict, mpq_list  shared containers (Manager dict/list)
     >>api-queue      mpq_queue    shared-memory MPMC message queue
     >>api-conn       mpq_conn     framed messages over pipes and sockets; mpq_wait
     >>api-process    mpq_process  fork a function, join, kill; daemons, cpu_count
     >>api-pool       mpq_pool     a pool of worker processes, futures, imap
     >>platform       implementation: atomics, futex, deadlines, segments
     >>shm            implementation of mpq_shm
     >>mutex          implementation of mpq_mutex
     >>sync           implementation of event, semaphore, condition, barrier
     >>dict           implementation of mpq_dict and mpq_list
     >>queue          implementation of mpq_queue
     >>conn           implementation of mpq_conn
     >>process        implementation of mpq_process
     >>pool           implementation of mpq_pool
     >>history        revision history
     >>license        license text

   >>conventions

     Errors    Every function that can fail returns int: 0 (or a count) on
               success, a negative errno value on failure, so strerror(-rc)
               explains it - except the pool's worker-death codes, which
               lie outside errno's range; mpq_strerror(rc) explains every
               one. errno is never the interface.
     Timeouts  `int timeout_ms`: < 0 waits forever, 0 tries once (-EAGAIN
               when it would have to wait), > 0 is a bound (-ETIMEDOUT). The
               bound is a CLOCK_MONOTONIC deadline: signals (EINTR) are
               retried inside and never stretch the wait.
     Configs   Creation takes a pointer to a *_config struct in which zero
               means "default"; NULL means all defaults:
                   mpq_shm_create(&shm, &(mpq_shm_config){ .size = 4096 });
     Shared    mpq's own shared state holds no pointers, only offsets,
     memory    sizes and atomics, so a named object maps at any address in
               any process. (The exception is libc's: a held robust pthread
               mutex - in an mpq_mutex, and in the waiter tables of
               conditions and barriers - keeps the holder's robust-list
               pointers, addresses in the holder's own process; see Trust.)
               Every segment mpq creates starts with a 64-byte header (magic,
               layout version, object kind, ABI, sizes, checksum); *_open
               validates it before trusting a single field: a corrupt,
               foreign, truncated or newer segment gives -EINVAL or -EPROTO,
               never a crash. A pthread mutex in a segment is checked against
               one mpq makes in the calling process (its type word exactly,
               its lock word's form) at open and before every call hands it
               to libc.
     Trust     Every process that can write a segment is trusted with the
               processes that use it. Validation stops a corrupt or stale
               segment from crashing its users, not a hostile writer: glibc's
               robust mutex keeps its holder's robust-list pointers inside
               the shared pthread_mutex_t, and the holder's unlock writes
               through them, so whoever can write a mutex's segment can make
               its holder write to an address of its choice; and a writer
               can always lie about a queue's messages. The owner and mode
               checks of the *_open calls are what keep other users out:
               give a named object no more than mode 0600 (the default)
               unless you trust everyone it lets in.
     Handles   Process-local; after fork() a child uses its parent's handle as
               it is. Named objects are created with O_EXCL and mode 0600
               unless the config asks otherwise; a name is "/" followed by 1
               to 254 characters, none of them '/', and not "." or "..".
               The *_open calls refuse (-EACCES) an object that another user
               owns or that group or others may write, unless the program is
               built with MPQ_TRUST_OTHER_USERS; an object whose creator died
               half-way is -EAGAIN for 10 s after its last change, then
               -EOWNERDEAD: unlink the name and create it again.
     Pid       Every process that uses an object must be in the pid
     namespace namespace that created it: robust locks and the dead-holder
               checks go by pids and thread ids, which name other processes
               in another namespace. Each segment records its creator's (the
               inode of /proc/self/ns/pid); *_open from another namespace is
               -EXDEV, and so is every call that goes by pids or thread ids
               on a handle inherited through a fork into a new one: queue
               puts and gets, mpq_mutex_create's mutex, semaphores,
               conditions, barrier waits, dict and list writes. (An Event,
               and dict and list reads, work anywhere. A mutex of
               mpq_mutex_init in your own memory keeps 5 bits of its
               namespace, so use from another is -EXDEV too, unless the
               two collide: one in 31.)
     Signals   mpq installs no signal handler and changes no disposition in
               your process. (A pool's result thread blocks every signal, so
               they go to your threads; its fork server, a process of its
               own, takes SIGCHLD through a signalfd.)

   >>options

     Set these before including mpq.h.
       MPQ_STATIC            (set globally) every function becomes static, for
                             a private copy in one translation unit.
       MPQDEF                (set globally) linkage of public functions, if you
                             need something other than extern / static.
       MPQ_ASSERT(x)         (implementation file) defaults to assert(x).
       MPQ_MALLOC(size)      (implementation file) the few process-local
       MPQ_FREE(ptr)         allocations; define both or neither. 8-byte
                             alignment is enough.
       MPQ_ALLOW_NONROBUST   (implementation file) locks are made even where
                             the kernel keeps no robust-futex list (qemu-user
                             emulation): a lock whose holder dies is then
                             taken back only by a waiter's own check, one
                             50 ms slice later, and a trylock alone never
                             gets it (an mpq_mutex_init mutex too: do not
                             share one across pid namespaces there). For
                             running tests under qemu; without it
                             mpq_mutex_init says -ENOTSUP there.
       MPQ_TRUST_OTHER_USERS (implementation file) 1: the *_open calls
                             accept a named object owned by another user,
                             or one that group or others may write, which
                             they refuse by default (-EACCES). Only for
                             programs that trust every user the object's
                             mode lets in (see Trust in >>conventions).

   Feature macros
     The implementation needs POSIX 2008 and the usual Linux extensions. It
     defines _GNU_SOURCE itself when it is the first thing a file includes;
     if your file includes a system header first, compile that file with
     -D_GNU_SOURCE (the header stops with an #error that says so on glibc).

   >>history

     0.4.0  (2027-01)  portability: builds warning-free with MPQ_STATIC at
                       -O1/-O2/-Os/-O3 and -flto (gcc 12); peek's copies
                       of packed messages are 16-byte aligned whatever
                       MPQ_MALLOC aligns to; 32-bit futex wakes try
                       futex_time64 then the time32 call, as waits do;
                       x32 futex timeouts; mpq_mutex_init (and everything
                       that makes a lock) says -ENOTSUP where the kernel
                       keeps no robust-futex list (MPQ_ALLOW_NONROBUST
                       lets tests run under qemu-user anyway). Under
                       qemu-user, a live process's queue slots and pool
                       tasks were at times taken for a dead one's (qemu
                       fakes /proc/self/stat): start times are read from
                       /proc/PID/task/PID/stat.
                       Connections speak Python's whole protocol: listeners
                       and clients take TCP (IPv4, IPv6, host names, port 0
                       with mpq_listener_address) and abstract ("@name")
                       addresses beside Unix paths, and an authkey
                       (mpq_listener_open_with, mpq_client_with: Python's
                       HMAC challenge both ways, current and legacy forms,
                       bounded by a deadline); frames take the 8-byte
                       length above 2^31 - 1, as Python's do (mpq 0.3 used
                       it from 4 GiB; its 4-byte lengths are still read).
                       Breaking: mpq_client now gives up after 30 s
                       (MPQ_CLIENT_DEFAULT_MS; -1 in mpq_client_with waits
                       as before), and an address with ':' and no '/' is
                       TCP: write "./a:b" for such a path.
                       Hardening (issue 14). Queue timeouts are bounds
                       under contention: the wait checks the deadline
                       before it spins, a claim looks at it every 256
                       looks. A pthread mutex in a segment is checked
                       against one mpq makes (type word exactly, lock
                       word's form) at open and before every call: a
                       mutated image is -EINVAL, not SIGILL/SIGABRT/SIGSEGV
                       or a hang; a mutex file of another size is refused
                       at open. Named and memfd objects reserve their
                       memory at creation: a full /dev/shm is -ENOSPC, not
                       SIGBUS later. Breaking: *_open refuses an object
                       another user owns or group/others may write
                       (-EACCES; MPQ_TRUST_OTHER_USERS allows it), and an
                       object whose creator died half-way is -EOWNERDEAD
                       10 s after its last change (was -EAGAIN for ever).
                       Segments record their creator's pid namespace, in
                       two header words that were reserved (zero) - no
                       layout version change: older readers ignore them,
                       and 0 (older writers) means unknown; use from
                       another namespace is -EXDEV. A dead holder is
                       recognised without a free descriptor when it is the
                       caller's child (waitid WNOWAIT). Documented: the
                       trust boundary (>>conventions), what sealing does
                       and does not cover, fork() with busy threads, and
                       that claims are not fair. A lock word that names a
                       thread which has exited, unmarked by the kernel
                       (no robust list, or a word overwritten), is taken
                       back by the next waiter after one 50 ms slice with
                       -EOWNERDEAD (where the namespace is known for
                       certain to be the waiter's: mpq_mutex_create's
                       mutexes and the locks inside mpq's objects; an
                       mpq_mutex_init mutex only under
                       MPQ_ALLOW_NONROBUST): it used to wait for ever.
                       mpq_wait: Python's connection.wait over any mix
                       of connections, listeners, queues (named ones too:
                       a put wakes it as it wakes a get), processes and
                       plain descriptors; it takes nothing, and reports
                       every ready one each time. mpq_conn_wait is mpq_wait
                       over connections: a descriptor closed under it is
                       now -EBADF (it counted as ready).
                       Breaking - one meaning of "close" (Python 3.13's):
                       mpq_queue_close(q) now releases this process's
                       handle (it was mpq_queue_detach, now gone), and
                       what it did - shut the queue for everyone - is
                       mpq_queue_shutdown(q, 0). An old call of
                       mpq_queue_close still compiles and now only lets go
                       of the handle: consumers then wait instead of
                       seeing the end. Replace it with
                       mpq_queue_shutdown(q, 0), and mpq_queue_detach with
                       mpq_queue_close. mpq_queue_shutdown(q, 1) drops
                       what is queued: gets fail at once, join returns.
                       End of stream: a queue made with .producers = n
                       shuts itself down after n mpq_queue_producer_done
                       calls; producers registered with
                       mpq_queue_add_producer count as done when they
                       exit. Such a queue is segment layout 4 (older
                       mpq.h refuse it: -EPROTO); others are unchanged.
                       Queue memory follows the messages (issue 15):
                       mpq_queue_config gained inline_max and arena - a
                       slot keeps inline_max bytes, larger messages take
                       256-byte chunks of an arena. Breaking: the default
                       queue takes messages of up to 64 KiB (was 4 KiB)
                       in 524 KiB (was 4 MiB); a queue with an arena is
                       segment layout 6 (older mpq.h: -EPROTO). A queue
                       made with max_msg alone is as before.
     0.3.0  (2026-12)  the pool: imap and imap_unordered (lazy input, bounded
                       memory, progress), task error messages (mpq_pool_fail),
                       task ids, mpq_pool_wait (idle), mpq_strerror; async
                       calls never block (submissions wait in the process,
                       a feeder thread moves them on). Breaking: callbacks
                       take a const mpq_pool_result * (both of them).
                       Processes: daemons, names, sentinels (pidfd),
                       mpq_active_children, mpq_parent_process,
                       mpq_cpu_count (affinity and cgroup quota, the pool's
                       default), MPQ_PROCESS_INIT; mpq_process_start_with.
                       Breaking: mpq_process gained fields.
                       Connections: wait reports every ready connection;
                       a descriptor travels as Python's send_handle does
                       (one byte with SCM_RIGHTS between frames, never
                       told by payload bytes; a plain recv meeting one
                       gives -ENOMSG); mpq_conn_peer (SO_PEERCRED),
                       mpq_conn_send_conn/recv_conn (-EBUSY while bytes
                       are read ahead).
     0.2.0  (2026-12)  the synchronisation family: Event, Semaphore (bounded,
                       undo), Condition, Barrier, RLock, Lock.locked, and
                       JoinableQueue - none of which a dead process wedges.
                       mpq_mutex_config gained `recursive`, mpq_queue_config
                       `joinable` (zero keeps the old behaviour).
     0.1.0  (2026-11)  shared-memory segments, robust mutex, processes, the
                       lock-free queue, framed connections, the worker pool;
                       segment layout 2: queues may hold packed batches.

   See the end of the file for the license.
*/

#if defined(MPQ_IMPLEMENTATION) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1
#endif

#ifndef MPQ_H_INCLUDED
#define MPQ_H_INCLUDED

#define MPQ_VERSION_MAJOR 0
#define MPQ_VERSION_MINOR 4
#define MPQ_VERSION_PATCH 0
#define MPQ_VERSION_STRING "0.4.0"

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

/* A readable description of any error an mpq call returns: a negative
   errno value (as strerror(-rc) gives it), one of the pool's
   worker-death codes (MPQ_POOL_KILLED/EXITED, "worker killed by signal 9
   (Killed)"), or 0 ("success"). Any other value - a task's own error
   code - gives "unknown error". The string is static and never changes.
   Thread safety: any thread, any time. */
MPQDEF const char *mpq_strerror(int rc);

/* ========================================================================
   >>api-shm  mpq_shm: a shared-memory region
   ========================================================================

   Python: multiprocessing.shared_memory.SharedMemory.

   A region of `size` bytes that several processes map. Anonymous regions are
   inherited across fork(); named regions (POSIX shm_open) can be opened by
   any process that knows the name; memfd regions are anonymous but have a
   file descriptor that can be handed to another process (SCM_RIGHTS), or
   kept across exec once you clear its FD_CLOEXEC; its size is sealed.
   `addr` is aligned to 64 bytes and zero-filled on creation. Put an
   mpq_mutex in it to guard what else it holds (and do not close the region
   while holding that mutex). The bytes are ABI-free: 32- and 64-bit
   processes may share a region.

   Room. Every named or memfd object mpq creates (region, mutex, queue,
   event, ...) reserves all of its memory at creation (fallocate), so a
   /dev/shm without room for it - a container's 64 MiB, say - gives
   -ENOSPC from the create call, and no later touch of the memory can die
   of SIGBUS for lack of room. (Anonymous objects take memory as it is
   touched, like any anonymous shared mapping.)
   Shrinking. A memfd region is sealed (F_SEAL_SHRINK, F_SEAL_GROW): no
   peer can cut it short under its users. A named object cannot be
   sealed: a process allowed to write it can also ftruncate it, and every
   user then dies of SIGBUS at the first touch past the new end. Such a
   process is trusted (see Trust in >>conventions); the default mode 0600
   and the owner checks at open keep other users out.

   Exception to the config convention: the size has no default, so a NULL
   or zero config is -EINVAL. On glibc before 2.34, shm_open lives in
   librt: link with -lrt there.
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
   Returns 0, or -EINVAL (NULL, size 0 or too large, bad name, a name and
   memfd both asked for), -EEXIST (the name exists), -ENOMEM, -ENOSPC (no
   room for it in /dev/shm, or in memory for a memfd), -ENOSYS (memfd
   unsupported), or another errno from shm_open/ftruncate/fallocate/mmap.
   Thread safety: any thread; `shm` is written only on success. */
MPQDEF int mpq_shm_create(mpq_shm *shm, const mpq_shm_config *cfg);

/* Maps the named region `name` made by mpq_shm_create, validating its header.
   Returns 0, or -EINVAL (bad name, not an mpq shm region, corrupt or
   truncated header), -EPROTO (a different layout version), -EAGAIN (its
   creator has not finished initialising it: try again), -EOWNERDEAD (it
   is still unfinished 10 s after its last change: its creator died
   half-way; mpq_shm_unlink the name and create it again), -ENOENT,
   -EACCES (no permission - or, unless built with MPQ_TRUST_OTHER_USERS,
   another user owns it or group or others may write it), -EXDEV (made in
   another pid namespace), or another errno from shm_open/mmap.
   Thread safety: any thread. */
MPQDEF int mpq_shm_open(mpq_shm *shm, const char *name);

/* Maps the memfd region behind `fd` (received over a socket, say),
   validating it as mpq_shm_open does; only sealed mpq memfds are accepted.
   The descriptor is duplicated: the caller keeps ownership of `fd`.
   Returns 0, -EBADF (bad descriptor), -EINVAL (not an mpq memfd region),
   -EPROTO, -ENOMEM. Thread safety: any thread. */
MPQDEF int mpq_shm_from_fd(mpq_shm *shm, int fd);

/* Unmaps the region in this process and closes its descriptor. The region
   itself lives on while other processes map it (and, if named, until
   mpq_shm_unlink). Returns 0 or -EINVAL (NULL or not mapped).
   Thread safety: no other thread may use the region's memory afterwards. */
MPQDEF int mpq_shm_close(mpq_shm *shm);

/* Removes the name of a named region (mappings stay valid). Works for the
   name of any mpq object (queue, mutex, event, semaphore, condition,
   barrier, region).
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
   mpq_mutex_open validates the segment's header and the lock's own state
   as far as it can be told (see mpq_mutex_lock's -EINVAL). A lock word
   that names a thread which has exited - its holder died where the
   kernel keeps no robust list, or something overwrote the word - is taken
   back by a waiter after one slice (50 ms) or at the end of a shorter
   timed lock, with -EOWNERDEAD, never by a trylock; only where the
   waiter is known for certain to share the mutex's pid namespace (in
   another, a live holder's thread id names nothing): a mutex of
   mpq_mutex_create (its segment records the namespace), and the locks
   inside mpq's own objects. A mutex of mpq_mutex_init in your own memory
   keeps only 5 bits of its namespace, so it is never taken back this way
   (but under MPQ_ALLOW_NONROBUST, where nothing else would): there the
   kernel's robust list is what reports a dead holder. A word that
   names a live thread cannot be told from a real holder: an overwritten
   one makes mpq_mutex_lock wait as long as that thread lives - use
   mpq_mutex_timedlock where that matters.
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
    int         recursive; /* non-zero: an RLock (mpq_mutex_init_recursive) */
} mpq_mutex_config;

/* Initialises a mutex in memory the caller provides (normally inside an
   mpq_shm region or another MAP_SHARED mapping). Do it once, before any
   other process uses it; never on a mutex that may be in use. Do not
   unmap that memory while holding the lock (see mpq_mutex_close).
   Returns 0, -EINVAL (NULL), -ENOTSUP (the kernel keeps no robust-futex
   list for this process - qemu-user, a seccomp profile that refuses
   set_robust_list - so a dead owner could never be reported; see
   MPQ_ALLOW_NONROBUST), or another -errno from pthread_mutex_init.
   Thread safety: the caller must be the only user of `m` during the call. */
MPQDEF int mpq_mutex_init(mpq_mutex *m);

/* Releases what mpq_mutex_init acquired (nothing on Linux); `m` must be
   unlocked and unused. Returns 0, -EINVAL (NULL, not initialised, or made
   by mpq_mutex_create: use mpq_mutex_close), or -EBUSY if it is locked.
   Thread safety: nobody else may use `m` during or after the call. */
MPQDEF int mpq_mutex_destroy(mpq_mutex *m);

/* Creates a mutex in a mapping of its own and returns it in *out.
   Anonymous (cfg NULL or no name): children forked afterwards share it.
   Named: created exclusively; other processes use mpq_mutex_open.
   Returns 0, or -EINVAL (NULL out, bad name), -EEXIST, -ENOMEM, -ENOTSUP
   (as for mpq_mutex_init), or another -errno from shm_open/ftruncate/mmap.
   Thread safety: any thread. */
MPQDEF int mpq_mutex_create(mpq_mutex **out, const mpq_mutex_config *cfg);

/* Opens the named mutex `name` made by mpq_mutex_create in any process.
   Returns 0, or the errors of mpq_shm_open; -EINVAL also when the name holds
   another kind of mpq object, a file of another size, or a pthread mutex
   in a state mpq's initialisation and libc could not have made (another
   type, a lock word that names no thread); -EPROTO also when its creator
   was built for another ABI (32/64-bit, glibc/musl); -EXDEV when it was
   made in another pid namespace (its segment's record or its own flags
   say so: thread ids there name other threads here).
   Thread safety: any thread. */
MPQDEF int mpq_mutex_open(mpq_mutex **out, const char *name);

/* Unmaps a mutex from mpq_mutex_create/mpq_mutex_open in this process. Other
   processes keep theirs; a named mutex stays until mpq_shm_unlink(name).
   Returns 0, -EINVAL (NULL, or a mutex mpq_mutex_init set up in memory of
   your own), or -EBUSY (the calling thread holds it: unlock first - once
   unmapped, a held lock would outlive its holder's death for ever).
   Thread safety: no thread of this process may use it after. */
MPQDEF int mpq_mutex_close(mpq_mutex *m);

/* Locks, waiting as long as it takes (timeout_ms = -1).
   Returns 0; -EOWNERDEAD (the lock is held: its previous owner died
   holding it, the protected data may be inconsistent); -EDEADLK (this
   thread holds it already; an RLock instead goes one deeper and returns
   0, or -EAGAIN 2^24 deep); -EINVAL (NULL or not initialised - or
   overwritten: a pthread type or lock word no libc makes, which every
   call of this family refuses instead of handing it to libc); -EXDEV
   (made in another pid namespace: see >>conventions).
   Thread safety: any thread of any process that maps it. Not
   async-signal-safe. */
MPQDEF int mpq_mutex_lock(mpq_mutex *m);

/* Locks if the lock is free right now. Returns 0, -EOWNERDEAD (held, as
   for lock), -EBUSY (someone holds it, this thread included - but an
   RLock's owner goes one deeper: 0), -EINVAL.
   Thread safety: as mpq_mutex_lock. */
MPQDEF int mpq_mutex_trylock(mpq_mutex *m);

/* Locks, waiting at most timeout_ms (< 0 forever, 0 once).
   Returns 0, -EOWNERDEAD, -EDEADLK (timeout_ms != 0 and this thread holds
   it), -EINVAL, -EAGAIN (timeout_ms == 0 and the lock is held, by this
   thread or another), -ETIMEDOUT. An RLock's owner goes one deeper (0). Thread safety: as mpq_mutex_lock. */
MPQDEF int mpq_mutex_timedlock(mpq_mutex *m, int timeout_ms);

/* Unlocks. Returns 0, -EPERM (the calling thread does not hold it), -EINVAL.
   Thread safety: the owning thread. Not async-signal-safe. */
MPQDEF int mpq_mutex_unlock(mpq_mutex *m);

/* RLock: a recursive mutex. The owner may lock it again (each lock needs
   its unlock); the last unlock releases it; another thread's unlock is
   -EPERM. A dead owner's lock goes to the next locker with -EOWNERDEAD and
   the depth reset to one. Everything else is as mpq_mutex_init.
   mpq_mutex_config.recursive does the same for mpq_mutex_create.
   Returns 0, -EINVAL (NULL), or another -errno from pthread_mutex_init.
   Thread safety: the caller must be the only user of `m` during the call. */
MPQDEF int mpq_mutex_init_recursive(mpq_mutex *m);

/* Python's Lock.locked(): 1 if some thread holds the lock right now, 0 if
   it is free (a lock whose holder died counts as free: the next locker
   still gets -EOWNERDEAD), -EINVAL, or another -errno of
   pthread_mutex_trylock. It looks by taking a free lock for an instant,
   so a trylock elsewhere may fail at that instant. The answer may be
   stale at once.
   Thread safety: any thread of any process that maps it. */
MPQDEF int mpq_mutex_locked(mpq_mutex *m);

/* ========================================================================
   >>api-sync  mpq_event, mpq_sem, mpq_cond, mpq_barrier: synchronisation
   ========================================================================

   Python: multiprocessing.Event, Semaphore, BoundedSemaphore, Condition,
   Barrier (RLock is mpq_mutex_init_recursive, above; JoinableQueue is
   mpq_queue_config.joinable, below).

   Each object lives in a mapping of its own, made as the mutex's is:
   anonymous (cfg NULL or no name: children forked afterwards share it) or
   named (created exclusively, mode 0600 unless cfg->mode says otherwise,
   and opened by any process with *_open, which validates the segment). The
   handle points into that mapping: a forked child uses its parent's
   handle as is. *_close unmaps it in this process; a named object's name
   stays until mpq_shm_unlink. Every blocking call takes timeout_ms.

   None of them lets a dead process hold the others up:
     Event      keeps no owner; a setter killed between setting the flag
                and waking the waiters delays them by at most a slice
                (MPQ_SYNC_SLICE_MS, 50 ms).
     Semaphore  a permit taken by a process that dies is lost, as with
                POSIX sem_t - unless the semaphore was made with `undo`
                (System V's SEM_UNDO): then the permits a dead process held
                go back within a slice of a waiter needing them.
     Condition  a waiter killed while waiting never takes a notification
                from the others, before or after it was chosen: notify
                skips dead waiters, and a notification that reached a
                waiter that then died goes to another within a slice.
     Barrier    a party that dies while the others wait breaks the barrier
                for them within a slice (-EPIPE), as a timeout or an abort
                does (Python's BrokenBarrierError).
   Condition and barrier waiters, and undo semaphore holders, are told
   apart by their own small robust locks and table entries, so these
   objects hold pthread mutexes and are ABI-specific, like mpq_mutex: do not
   share one between 32- and 64-bit processes (named ones refuse to). The
   contents of a named object cannot all be validated: every process that
   can write its segment is trusted by the processes that use it. */

#ifndef MPQ_SYNC_SLICE_MS
#define MPQ_SYNC_SLICE_MS 50  /* longest single sleep of a waiter (set globally) */
#endif

typedef struct mpq_event   mpq_event;    /* opaque: in shared memory */
typedef struct mpq_sem     mpq_sem;
typedef struct mpq_cond    mpq_cond;
typedef struct mpq_barrier mpq_barrier;

typedef struct mpq_event_config {
    const char *name;  /* NULL: anonymous. "/name": named                */
    int         mode;  /* permission bits of a named object; 0: 0600     */
} mpq_event_config;

/* Creates an Event, initially clear. Returns 0, or -EINVAL (NULL out, bad
   name), -EEXIST, -ENOMEM, or another -errno from shm_open/mmap.
   Thread safety: any thread. */
MPQDEF int mpq_event_create(mpq_event **out, const mpq_event_config *cfg);

/* Opens the named Event `name`. Returns 0, or the errors of mpq_shm_open;
   -EINVAL also for another kind of object or a corrupt one.
   Thread safety: any thread. */
MPQDEF int mpq_event_open(mpq_event **out, const char *name);

/* Unmaps the Event in this process. Returns 0 or -EINVAL.
   Thread safety: no thread of this process may use it afterwards. */
MPQDEF int mpq_event_close(mpq_event *e);

/* Sets the flag and wakes every waiter. Returns 0 or -EINVAL.
   Thread safety: any thread of any process; async-signal-safe. */
MPQDEF int mpq_event_set(mpq_event *e);

/* Clears the flag. Returns 0 or -EINVAL. Thread safety: any thread. */
MPQDEF int mpq_event_clear(mpq_event *e);

/* 1 if the flag is set, 0 if not, -EINVAL. Thread safety: any thread. */
MPQDEF int mpq_event_is_set(const mpq_event *e);

/* Waits until the flag is set (at once if it is). A set that happened
   before the call is never missed; one immediately undone by a clear may
   be (as in Python). Returns 0 (set), -EAGAIN (timeout_ms == 0 and not
   set), -ETIMEDOUT, -EINVAL. Thread safety: any thread of any process. */
MPQDEF int mpq_event_wait(mpq_event *e, int timeout_ms);

typedef struct mpq_sem_config {
    const char *name;     /* NULL: anonymous. "/name": named             */
    int         mode;     /* permission bits of a named object; 0: 0600  */
    int         bounded;  /* non-zero: BoundedSemaphore - a release past
                             the initial value is refused (-EOVERFLOW)   */
    int         undo;     /* non-zero: the permits a process holds when
                             it dies are given back (SEM_UNDO)           */
    uint32_t    max_holders; /* undo: processes that may hold permits at
                             once; 0: 64. One more gets -ENOSPC          */
} mpq_sem_config;

/* Creates a semaphore holding `value` permits (0..MPQ_SEM_MAX).
   Without undo a permit is a counter: any process may release it, and a
   process that dies holding one takes it to its grave (as POSIX sem_t).
   With undo each process's net acquisitions are recorded, and when a
   waiter finds no permit it gives back those of processes that have died
   (pid and start time tell; a pid reused since counts as dead); a release
   beyond what the calling process holds is a plain release, and permits
   handed from one process to another (acquired by A, released by B) are
   still A's when A dies, so do not mix that with undo. As for the queue,
   every user of an undo semaphore must share a pid and a time namespace,
   and a child made by a raw clone() or _Fork() must not use it. Where
   /proc cannot be read a process's start time is unknown: its holdings
   come back only once its pid has exited, and a later process that gets
   the same pid, also unknown, inherits them.
   Returns 0, or -EINVAL (NULL out, value above MPQ_SEM_MAX, bad name,
   max_holders above 65536), -EEXIST, -ENOMEM, or another -errno.
   Thread safety: any thread. */
#define MPQ_SEM_MAX 0x7fffffff
MPQDEF int mpq_sem_create(mpq_sem **out, unsigned value, const mpq_sem_config *cfg);

/* Opens the named semaphore `name`. Returns as mpq_event_open.
   Thread safety: any thread. */
MPQDEF int mpq_sem_open(mpq_sem **out, const char *name);

/* Unmaps the semaphore in this process (permits it holds stay held).
   Returns 0 or -EINVAL. Thread safety: no thread may use it afterwards. */
MPQDEF int mpq_sem_close(mpq_sem *s);

/* Takes one permit, waiting up to timeout_ms for one.
   Returns 0, -EAGAIN (timeout_ms == 0 and none is free), -ETIMEDOUT,
   -EINVAL, -ENOSPC (undo: max_holders other processes hold permits).
   Thread safety: any thread of any process. */
MPQDEF int mpq_sem_acquire(mpq_sem *s, int timeout_ms);

/* Gives back one permit and wakes a waiter. Returns 0, -EOVERFLOW (a
   bounded semaphore back at its initial value, or MPQ_SEM_MAX reached:
   nothing changes), -EINVAL. Thread safety: any thread of any process;
   async-signal-safe without undo (not with it: it takes a lock). */
MPQDEF int mpq_sem_release(mpq_sem *s);

/* The permits free right now (may be stale at once), or -EINVAL.
   Thread safety: any thread. */
MPQDEF int mpq_sem_value(const mpq_sem *s);

typedef struct mpq_cond_config {
    const char *name;        /* NULL: anonymous. "/name": named          */
    int         mode;        /* permission bits; 0: 0600                 */
    uint32_t    max_waiters; /* threads that may wait at once; 0: 128;
                                at most 65536                            */
} mpq_cond_config;

/* Creates a condition variable. It is used with any mpq_mutex, passed to
   each wait (pthread style); several conditions may share one mutex.
   Waiters are woken in the order they started waiting (FIFO).
   Returns 0, or -EINVAL (NULL out, bad name, max_waiters too big),
   -EEXIST, -ENOMEM, or another -errno. Thread safety: any thread. */
MPQDEF int mpq_cond_create(mpq_cond **out, const mpq_cond_config *cfg);

/* Opens the named condition `name`. Returns as mpq_event_open.
   Thread safety: any thread. */
MPQDEF int mpq_cond_open(mpq_cond **out, const char *name);

/* Unmaps the condition in this process. Returns 0 or -EINVAL.
   Thread safety: no thread of this process may use it afterwards. */
MPQDEF int mpq_cond_close(mpq_cond *c);

/* Releases m (which the calling thread holds), waits until notified or
   timeout_ms passes, and locks m again - in every case, the error ones
   included, except -EINVAL and -EPERM, which leave m as it was.
   Returns 0 (notified), -ETIMEDOUT (or -EAGAIN for timeout_ms == 0),
   -EOWNERDEAD (notified or not: m was re-locked after its holder died;
   it is held and consistent, check your data), -ENOSPC (max_waiters
   threads wait already), -EPERM (m is not held by this thread), -EINVAL.
   No spurious wake-ups - but for one case: a notification passed on from
   a waiter that died may reach two waiters if the process passing it on
   dies too, at that instant. As with any condition, re-check your
   predicate (another thread may have taken what you were notified of).
   Thread safety: any thread of any process. */
MPQDEF int mpq_cond_wait(mpq_cond *c, mpq_mutex *m, int timeout_ms);

/* Python's wait_for: waits (as mpq_cond_wait) until pred(arg) returns
   non-zero, evaluated with m held, at most timeout_ms in all. Returns 0
   once pred holds (at once if it holds already), -ETIMEDOUT (pred still
   false), -EOWNERDEAD (pred holds, but m was re-locked after a holder
   died), or the errors of mpq_cond_wait. m is held on return (see wait).
   Thread safety: as mpq_cond_wait. */
MPQDEF int mpq_cond_wait_for(mpq_cond *c, mpq_mutex *m, int (*pred)(void *arg), void *arg,
                             int timeout_ms);

/* Wakes up to n of the threads waiting now (the longest waiting first);
   the mutex need not be held, though Python requires it. Returns how many
   were woken (0..n), or -EINVAL. Thread safety: any thread. */
MPQDEF int mpq_cond_notify(mpq_cond *c, int n);

/* Wakes every thread waiting now. Returns how many, or -EINVAL.
   Thread safety: any thread. */
MPQDEF int mpq_cond_notify_all(mpq_cond *c);

typedef struct mpq_barrier_config {
    const char *name;  /* NULL: anonymous. "/name": named                */
    int         mode;  /* permission bits; 0: 0600                       */
} mpq_barrier_config;

/* Creates a barrier for `parties` threads or processes (1..32767).
   Returns 0, or -EINVAL (NULL out, parties out of range, bad name),
   -EEXIST, -ENOMEM, or another -errno. Thread safety: any thread. */
MPQDEF int mpq_barrier_create(mpq_barrier **out, unsigned parties, const mpq_barrier_config *cfg);

/* Opens the named barrier `name`. Returns as mpq_event_open.
   Thread safety: any thread. */
MPQDEF int mpq_barrier_open(mpq_barrier **out, const char *name);

/* Unmaps the barrier in this process. Returns 0 or -EINVAL.
   Thread safety: no thread of this process may use it afterwards. */
MPQDEF int mpq_barrier_close(mpq_barrier *b);

/* Waits until `parties` callers have arrived, then releases them all.
   Returns the caller's arrival index in this round, 0..parties-1 (the last
   to arrive gets parties-1, Python's semantics); or -EPIPE (the barrier is
   broken: aborted, a party timed out, or a party died while others waited;
   it stays broken until mpq_barrier_reset); -ETIMEDOUT (this caller's wait
   ran out: it breaks the barrier for the others, as in Python; -EAGAIN for
   timeout_ms == 0); -EINVAL. Thread safety: any thread of any process. */
MPQDEF int mpq_barrier_wait(mpq_barrier *b, int timeout_ms);

/* Breaks the barrier: current and later waiters get -EPIPE until a reset.
   Returns 0 or -EINVAL. Thread safety: any thread of any process. */
MPQDEF int mpq_barrier_abort(mpq_barrier *b);

/* Returns the barrier to its empty, unbroken state; threads waiting now get
   -EPIPE. Returns 0 or -EINVAL. Thread safety: any thread. */
MPQDEF int mpq_barrier_reset(mpq_barrier *b);

/* The number of parties, the number waiting now, and whether it is
   broken (1/0); each -EINVAL for NULL. Thread safety: any thread. */
MPQDEF int mpq_barrier_parties(const mpq_barrier *b);
MPQDEF int mpq_barrier_n_waiting(const mpq_barrier *b);
MPQDEF int mpq_barrier_broken(const mpq_barrier *b);


/* ========================================================================
   >>api-dict  mpq_dict, mpq_list: shared containers, no server
   ========================================================================

   Python: multiprocessing.Manager().dict() and .list() - without the
   manager process every access crosses by socket and pickle, and whose
   death loses everything. These live in shared memory; every process that
   maps one works on it directly.

   mpq_dict maps byte keys (0..max_key bytes) to byte values (0..max_value
   bytes) in a table of fixed-size entries sized at creation, so nothing
   fragments however values come and go. Readers take no lock: a get copies
   the value and checks that no writer changed it meanwhile (retrying if
   one did), so readers never wait for each other or for writers of other
   keys. Writers of keys that hash to the same one of the table's stripes
   take its robust lock. A value is written beside the current one and
   switched in with one store, so a process killed at any instant leaves
   every key with its old value or its new one, never a torn one; a key
   being inserted is not there until it all is. A dead writer's stripe is
   repaired by the next writer of it (-EOWNERDEAD is handled inside).

   mpq_list holds up to `capacity` items of 0..max_item bytes in order. All
   its calls take its robust lock; an item is written where nobody looks,
   then the list's order is switched in with one store, so a killed
   process leaves no torn or half-appended item, and the others' items are
   all there.

   Both are anonymous (shared with children forked afterwards) or named
   (created exclusively, mode 0600 unless asked; *_open validates the
   segment). They hold pthread mutexes: ABI-specific as mpq_mutex is, and
   every process that can write the segment is trusted by its users - a
   scribbled lock may hang or crash its libc; scribbled data gives -EIO.
   No call is async-signal-safe. Every call that takes a lock may also
   return its errors (-EINVAL for a lock that is not one, -EDEADLK from a
   signal handler that interrupted a call on the same object).

   Sizes and limits. The dict holds max_entries keys; when several
   processes insert the last ones at the same instant it may take a few
   more (at most one per process inserting), and it never runs out of
   table for them. A deleted key leaves its slot marked for reuse by a
   later insert; when a writer's probe runs long through such slots, it
   holds every stripe for a moment and gives back those no key's probe
   needs (a pass over the table), so probes stay short however many keys
   come and go. After a writer died, mpq_dict_len may be off for that
   writer's stripe until another writer of it comes by. */

typedef struct mpq_dict mpq_dict;   /* opaque, process-local handle */
typedef struct mpq_list mpq_list;

typedef struct mpq_dict_config {
    uint32_t    max_entries; /* keys it can hold; 0: 1024; at most 2^26   */
    uint32_t    max_key;     /* largest key in bytes; 0: 64; at most 2^16 */
    uint32_t    max_value;   /* largest value in bytes; 0: 256; at most
                                2^24. Each entry takes max_key + 2 *
                                max_value + 32 bytes, rounded up to 8     */
    const char *name;        /* NULL: anonymous. "/name": named           */
    int         mode;        /* permission bits of a named dict; 0: 0600  */
} mpq_dict_config;

/* Creates a dict. Returns 0, or -EINVAL (NULL d, a size out of range, bad
   name), -EEXIST, -ENOMEM, or another -errno from shm_open/mmap.
   Thread safety: any thread. */
MPQDEF int mpq_dict_create(mpq_dict **d, const mpq_dict_config *cfg);

/* Opens the named dict `name`. Returns 0, or the errors of mpq_shm_open;
   -EINVAL also for another kind of object or a corrupt header.
   Thread safety: any thread. */
MPQDEF int mpq_dict_open(mpq_dict **d, const char *name);

/* Releases this process's handle (unmaps it). The dict lives on for the
   others (a named one until mpq_shm_unlink). Returns 0 or -EINVAL.
   Thread safety: no other thread of this process may use the handle. */
MPQDEF int mpq_dict_close(mpq_dict *d);

/* d[key] = value: inserts or replaces. Returns 0, -ENOSPC (the dict is
   full and this key is new: nothing changes; see "sizes and limits"),
   -EMSGSIZE (klen > max_key or vlen > max_value), -EINVAL (NULL d, or a
   NULL pointer with a non-zero length). Thread safety: any thread of any
   process. */
MPQDEF int mpq_dict_set(mpq_dict *d, const void *key, size_t klen, const void *val, size_t vlen);

/* Copies the value of key into buf (cap bytes); *vlen gets its length.
   Returns 0, -ENOENT (no such key), -EMSGSIZE (cap too small: *vlen gets
   the length needed, nothing changes), -EIO (the slot holds a length no
   write made: shared memory was scribbled), -EINVAL. Takes no lock; a
   reader retries while writers keep replacing the very key it copies. On
   any error buf's contents are unspecified.
   Thread safety: any thread of any process. */
MPQDEF int mpq_dict_get(mpq_dict *d, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen);

/* 1 if key is there, 0 if not, -EINVAL. Takes no lock.
   Thread safety: any thread of any process. */
MPQDEF int mpq_dict_contains(mpq_dict *d, const void *key, size_t klen);

/* Removes key. Returns 0, -ENOENT, -EINVAL.
   Thread safety: any thread of any process. */
MPQDEF int mpq_dict_delete(mpq_dict *d, const void *key, size_t klen);

/* d[key] += delta on a value that is a 64-bit integer (8 bytes, in this
   machine's byte order), atomically with respect to every other call: no
   lock of yours is needed. A missing key counts as 0. *result (if not
   NULL) gets the new value, on success only. Returns 0, -EINVAL (the
   value is not 8 bytes, or max_value < 8), -ENOSPC, -EMSGSIZE (key).
   Thread safety: any. */
MPQDEF int mpq_dict_add(mpq_dict *d, const void *key, size_t klen, int64_t delta, int64_t *result);

/* Compare-and-set: sets key to val only if its value now equals
   expect[0..elen) - or, with expect NULL, only if key is missing (Python's
   setdefault). Returns 0 (set), -ECANCELED (the value differs: nothing
   changes), -EEXIST (expect NULL and the key is there), -ENOENT (expect
   given and the key is missing), -ENOSPC, -EMSGSIZE, -EINVAL.
   Thread safety: any thread of any process. */
MPQDEF int mpq_dict_cas(mpq_dict *d, const void *key, size_t klen, const void *expect, size_t elen,
                        const void *val, size_t vlen);

/* The number of keys (a snapshot), or -EINVAL. Thread safety: any. */
MPQDEF long mpq_dict_len(const mpq_dict *d);

/* Removes every key, holding every stripe's lock meanwhile, so no set
   runs alongside; a reader may see some keys go before others. Every slot
   becomes free again, deleted ones included (see "sizes and limits").
   Returns 0, -EINVAL, or an error of a stripe's lock (then nothing is
   removed). Thread safety: any thread of any process. */
MPQDEF int mpq_dict_clear(mpq_dict *d);

/* Iteration: start with *pos = 0; each call copies the next key and value
   and returns 1, or returns 0 at the end. Every key present for the whole
   iteration is seen exactly once, whatever other processes do meanwhile
   (keys never move); a key set or deleted meanwhile may be seen or not.
   Returns 1, 0, -EMSGSIZE (kcap or vcap too small: *klen and *vlen get the
   lengths, *pos stays, so call again with more room), -EIO (a scribbled
   slot: *pos stays on it; add one to skip it), -EINVAL (also vbuf without
   vlen). vbuf may be NULL with vcap 0 (and vlen NULL) to see only the keys.
   Thread safety: any thread of any process; *pos is the caller's. */
MPQDEF int mpq_dict_next(mpq_dict *d, size_t *pos, void *kbuf, size_t kcap, size_t *klen,
                         void *vbuf, size_t vcap, size_t *vlen);

typedef struct mpq_list_config {
    uint32_t    capacity;  /* items it can hold; 0: 1024; at most 2^26     */
    uint32_t    max_item;  /* largest item in bytes; 0: 256; at most 2^24 */
    const char *name;      /* NULL: anonymous. "/name": named             */
    int         mode;      /* permission bits of a named list; 0: 0600    */
} mpq_list_config;

/* Creates a list, empty. Returns 0, or -EINVAL (NULL l, a size out of
   range, bad name), -EEXIST, -ENOMEM, or another -errno.
   Thread safety: any thread. */
MPQDEF int mpq_list_create(mpq_list **l, const mpq_list_config *cfg);

/* Opens the named list `name`. Returns as mpq_dict_open.
   Thread safety: any thread. */
MPQDEF int mpq_list_open(mpq_list **l, const char *name);

/* Releases this process's handle. Returns 0 or -EINVAL.
   Thread safety: no other thread of this process may use the handle. */
MPQDEF int mpq_list_close(mpq_list *l);

/* Appends an item of len bytes. Returns 0, -ENOSPC (capacity items),
   -EMSGSIZE (len > max_item), -EINVAL. Thread safety: any thread of any
   process (appends from many at once each land once, whole). */
MPQDEF int mpq_list_append(mpq_list *l, const void *item, size_t len);

/* Inserts an item before position index (Python's insert: a negative index
   counts from the end, and one past either end is clamped to it).
   Returns as mpq_list_append. Thread safety: any. */
MPQDEF int mpq_list_insert(mpq_list *l, long index, const void *item, size_t len);

/* Copies item `index` (negative: from the end) into buf (cap bytes); *len
   gets its length. Returns 0, -ERANGE (no such index), -EMSGSIZE (cap too
   small: *len gets the length), -EIO (scribbled shared memory), -EINVAL.
   Iterate with indices from 0 to mpq_list_len. Thread safety: any. */
MPQDEF int mpq_list_get(mpq_list *l, long index, void *buf, size_t cap, size_t *len);

/* Replaces item `index`. Returns 0, -ERANGE, -EMSGSIZE, -EIO, -EINVAL.
   Thread safety: any. */
MPQDEF int mpq_list_set(mpq_list *l, long index, const void *item, size_t len);

/* Removes item `index` (-1: the last, Python's pop()) and copies it into
   buf as mpq_list_get does (buf may be NULL with cap 0 and len NULL to
   drop it). Returns 0, -ERANGE (empty, or no such index), -EMSGSIZE
   (nothing removed), -EIO, -EINVAL. Thread safety: any. */
MPQDEF int mpq_list_pop(mpq_list *l, long index, void *buf, size_t cap, size_t *len);

/* The number of items (a snapshot), or -EINVAL. Thread safety: any. */
MPQDEF long mpq_list_len(const mpq_list *l);

/* Removes every item. Returns 0 or -EINVAL. Thread safety: any. */
MPQDEF int mpq_list_clear(mpq_list *l);

/* ========================================================================
   >>api-queue  mpq_queue: a shared-memory MPMC queue of messages
   ========================================================================

   Python: multiprocessing.Queue (and SimpleQueue), without pickling.

   A bounded ring of `capacity` slots in shared memory; each slot holds one
   message of 0..max_msg bytes. Any number of processes and threads put and
   get concurrently.

   Memory. A slot keeps up to inline_max bytes of its message itself; a
   larger message (up to max_msg) goes to the queue's arena, a shared pool
   of 256-byte chunks, and takes only the chunks it needs. So a queue of
   mostly small messages that must also take large ones costs about
   capacity * (inline_max + 32, rounded up to 64) + arena bytes (and 8.5
   a chunk), not capacity * max_msg: the default queue - 1024 messages, 224
   bytes each in the slots, up to 64 KiB in an arena of 256 KiB - maps
   524 KiB. Giving only max_msg keeps every message in its slot (no arena:
   the layout of mpq 0.3, fastest for fixed-size messages, and for batches
   of small ones, which go about 1.2 times as fast packed into slots as
   packed into runs of the arena). When the arena has no room, a put of a
   large message waits for it (timeout_ms as ever) while holding nothing:
   smaller messages go past it meanwhile. Every guarantee below holds for
   both kinds; a process killed holding chunks strands none: they are only
   ever tied to their message's position in the ring, and free once its
   slot moves on. Anonymous queues are shared with the children forked
   after creation (they use the same handle); named ones are opened by any
   process with mpq_queue_open.

       mpq_queue *q;
       mpq_queue_create(&q, &(mpq_queue_config){ .max_msg = 256 });
       mpq_queue_put(q, "hello", 5, -1);                  // in one process
       n = mpq_queue_get(q, buf, sizeof buf, &len, -1);   // in another

   Lock-free: producers and consumers claim slots with one compare-and-swap
   on the slot's state word, which records the claimant's pid. Nothing is
   ever locked, so a process killed at any instant cannot wedge the queue:
   a slot left half-written or half-read by a dead process is detected and
   moved on by whoever waits on it (within ~10 ms). The dead process's one
   message is lost - or, inside mpq_queue_get_batch, the messages it had
   taken - and every other message is delivered exactly once, in order per
   producer. "Dead" means the whole process has exited (a pidfd says so,
   zombies included; without one - before Linux 5.3, or with no descriptor
   to spare (EMFILE, ENFILE) - kill(2) and waitid(2), which tell a zombie
   only when it is a child of the asking process: another's is seen dead
   once reaped) or its pid now names another process (told by the start
   times in /proc; without a readable /proc - not mounted, hidepid, or no
   descriptor to spare - pid reuse goes undetected). All users of one
   queue must share a pid namespace (-EXDEV otherwise: see "Pid
   namespace" in >>conventions) and a time namespace. A process that
   stops (SIGSTOP, a debugger) holding a slot is alive: others wait for
   it.

   Blocking calls spin briefly, then sleep on a futex; a wake-up system call
   is made only when somebody sleeps. A sleeper wakes at least every 100 ms
   to look again (so a process killed between making progress and waking
   the others costs them at most that): a consumer blocked on an idle queue
   uses practically no CPU. A timeout is a bound whatever the other
   processes do: a call that keeps losing the race for its slot, or finds
   the slot's state rewritten under it, still returns at its deadline
   (give or take the scheduler); with timeout_ms == 0 it gives up
   (-EAGAIN) only after hundreds of lost races (two laps of slots and
   256 more looks).

   Handles made before fork() work in the child, even when other threads
   were putting and getting at the fork: a slot such a thread held stays
   the parent's (its pid's), and the parent's thread finishes it; the
   handle's own little locks that a vanished thread held name the parent's
   pid and are taken over. A child made by a raw clone() or _Fork(), which
   skip the pthread_atfork handlers, must not use them.
   Claims are not fair: with more busy threads than CPUs, a waiter can
   lose the race for free slots (or messages) to a producer (or consumer)
   in a tight loop for a long time - measured on 2 CPUs, one put waited
   2 s behind one producer thread and two consumers. A timeout bounds that
   wait; nothing orders the waiters.

   mpq_queue_close while holding a reserved or peeked slot leaves that
   slot held until the process exits.

   Zero-copy: mpq_queue_reserve/commit write a message in place, and
   mpq_queue_peek/release read one in place; while a slot is held that way,
   consumers (or producers) behind it wait, so hold it briefly. Batches:
   mpq_queue_put_batch/get_batch move many messages per call, and
   put_batch packs as many messages as fit in max_msg bytes into one slot:
   one claim for the lot, the bytes back to back - several times faster
   for small messages in a queue whose max_msg leaves room (4 bytes for
   the count, and 4 per message, rounded up to 4). Consumers take such
   messages one by one (get, peek) or many at once (get_batch) as any
   others; peek hands one out as a copy.

   mpq keeps one process-wide cache for the queue: this process's pid and
   start time, reset in forked children by a pthread_atfork handler.
*/

typedef struct mpq_queue mpq_queue;  /* opaque, process-local handle */

typedef struct mpq_queue_config {
    uint32_t    capacity; /* messages; rounded up to a power of two;
                             0: 1024; at most 2^24                        */
    uint32_t    max_msg;  /* largest message in bytes; 0: 65536; at most
                             2^30 (see "Memory" above)                    */
    const char *name;     /* NULL: anonymous. "/name": named              */
    int         mode;     /* permission bits of a named queue; 0: 0600    */
    int         joinable; /* non-zero: a JoinableQueue, counting unfinished
                             messages (mpq_queue_task_done/join)          */
    uint32_t    producers;/* 0: no end of stream. n: the queue shuts itself
                             down once n producers are done (see "End of
                             stream" below); at most 4096                 */
    uint32_t    inline_max; /* bytes a message may take in its own slot;
                             larger ones go to the arena. 0: max_msg if
                             only max_msg is given, else 224              */
    size_t      arena;    /* bytes of the arena, when inline_max < max_msg;
                             0: 4 * max_msg; from max_msg to 4 GiB        */
} mpq_queue_config;

/* Creates a queue and returns its handle in *q. Anonymous queues (no name)
   are shared with children forked afterwards; named ones are created
   exclusively (O_EXCL).
   Returns 0, or -EINVAL (NULL q, capacity above 2^24, max_msg above 2^30,
   producers above 4096, an arena below max_msg or above 4 GiB, a size
   that overflows, bad name), -EEXIST, -ENOMEM, or an errno from
   shm_open/mmap. Thread safety: any thread. */
MPQDEF int mpq_queue_create(mpq_queue **q, const mpq_queue_config *cfg);

/* Opens the named queue `name` in any process, validating its header.
   Returns 0, or -EINVAL (bad name, not a queue, corrupt), -EPROTO (other
   layout version or ABI), -EAGAIN (still being created), -EOWNERDEAD (its
   creator died creating it), -ENOENT, -EACCES (as for mpq_shm_open),
   -EXDEV (made in another pid namespace), -ENOMEM.
   Thread safety: any thread. */
MPQDEF int mpq_queue_open(mpq_queue **q, const char *name);

/* Releases this process's handle (Python's Queue.close): unmaps the queue
   and frees the handle. The queue lives on for other processes (a named
   one until mpq_shm_unlink), and stays open to them: mpq_queue_shutdown
   is what ends it for everyone. (mpq 0.3 called this mpq_queue_detach, and
   its mpq_queue_close was today's mpq_queue_shutdown(q, 0).) Returns 0
   or -EINVAL.
   Thread safety: no other thread of this process may use the handle. */
MPQDEF int mpq_queue_close(mpq_queue *q);

/* Puts one message of `len` bytes (0..max_msg), waiting up to timeout_ms for
   room. Returns 0, or -EMSGSIZE (len > max_msg), -EINVAL (NULL q, or NULL
   msg with len > 0), -EPIPE (the queue is shut down), -EAGAIN (timeout_ms == 0
   and it is full), -ETIMEDOUT, -EIO (the queue's shared memory holds a state
   no put or get makes: something else wrote over it), -EOWNERDEAD (this
   process was taken for dead while it held the slot, which needs users in
   different pid or time namespaces, and the message was dropped; the
   message that next took the slot may be damaged too).
   Thread safety: any thread of any process. */
MPQDEF int mpq_queue_put(mpq_queue *q, const void *msg, size_t len, int timeout_ms);

/* Takes the oldest message into buf (cap bytes), waiting up to timeout_ms
   for one; *len gets its length. Returns 0, or -EMSGSIZE (cap is too small:
   *len gets the length needed and the message stays in the queue), -EPIPE
   (shut down and drained, or shut down at once), -EINVAL (NULL q or len, NULL buf with cap > 0),
   -EAGAIN (timeout_ms == 0 and it is empty), -ETIMEDOUT, -EIO (the queue's
   shared memory was overwritten: a slot state no step makes, or a length
   beyond max_msg, whose slot is then dropped), -EOWNERDEAD (as for put:
   what was copied may be torn).
   Thread safety: any thread of any process. */
MPQDEF int mpq_queue_get(mpq_queue *q, void *buf, size_t cap, size_t *len, int timeout_ms);

/* Shuts the queue down for everyone (Python 3.13's Queue.shutdown): later
   puts fail with -EPIPE, and every blocked put or get wakes up. With
   immediate == 0 gets return what is left, then -EPIPE. With immediate
   != 0 gets (peeks, batches) fail with -EPIPE at once: what is queued is
   dropped - mpq_queue_count says 0 - and mpq_queue_join returns -EPIPE
   (its count of unfinished messages stays as it was). A get or put that
   had already claimed its slot completes; a reservation committed after
   it fails with -EPIPE, as after a plain shutdown. An immediate shutdown after a plain one upgrades it,
   never the other way. (mpq 0.3 called the plain form mpq_queue_close.)
   Returns 0 or -EINVAL. Idempotent. Thread safety: any thread, any
   process. */
MPQDEF int mpq_queue_shutdown(mpq_queue *q, int immediate);

/* Zero-copy put, step one: claims the next slot and points *buf at its
   max_msg bytes, waiting up to timeout_ms for room. Write the message
   there, then call mpq_queue_commit (or mpq_queue_cancel) soon: consumers
   wait at this slot until then. In a queue with an arena (inline_max <
   max_msg) those bytes are a run of max_msg in the arena, taken until the
   commit gives back what the message does not use: a reservation needs
   room for a largest message there.
   Returns 0, -EINVAL, -EPIPE, -EAGAIN, -ETIMEDOUT, -EIO (as for put).
   Thread safety: any thread; the slot belongs to this process, and any of
   its threads may commit it. */
MPQDEF int mpq_queue_reserve(mpq_queue *q, void **buf, int timeout_ms);

/* Publishes the reserved slot at buf as a message of len bytes.
   Returns 0, -EMSGSIZE (len > max_msg: the slot stays reserved),
   -EINVAL (buf is not a slot this process holds reserved - including one
   taken from it, see -EOWNERDEAD at put), -EPIPE (the queue was shut down
   meanwhile: the message is dropped and the slot freed), -EOWNERDEAD (as
   for put). Thread safety: any thread of the process that reserved it,
   once per reservation. */
MPQDEF int mpq_queue_commit(mpq_queue *q, void *buf, size_t len);

/* Gives back a reserved slot without putting a message.
   Returns 0, -EINVAL (as for commit), -EOWNERDEAD (as for put).
   Thread safety: as mpq_queue_commit. */
MPQDEF int mpq_queue_cancel(mpq_queue *q, void *buf);

/* Zero-copy get, step one: claims the oldest message and points *buf at
   it in the queue (*len bytes), waiting up to timeout_ms. Read it, then
   call mpq_queue_release from the same process soon: producers that wrap
   around to this slot wait until then. A message that put_batch packed
   with others comes as a copy instead, already taken from the queue, so
   the rest of its batch goes on (*buf is then 16-byte aligned; in place,
   a message is 32-byte aligned).
   Returns 0, -EINVAL, -EPIPE (as for get), -EAGAIN, -ETIMEDOUT,
   -EIO (as for get), -ENOMEM (no room for such a copy: the message stays).
   Thread safety: any thread; the slot belongs to this process. */
MPQDEF int mpq_queue_peek(mpq_queue *q, const void **buf, size_t *len, int timeout_ms);

/* Frees the slot of a message from mpq_queue_peek (or the copy peek made
   of a packed message). Returns 0, -EINVAL (buf is not a message this
   handle's process is reading - including one taken from it - nor a copy
   this handle made and has not freed), -EOWNERDEAD (as for get).
   Thread safety: any thread of the process that peeked, once per peek. */
MPQDEF int mpq_queue_release(mpq_queue *q, const void *buf);

/* Puts msgs[0..n-1] (lengths lens[]) in order: waits up to timeout_ms
   until the first fits, then puts as many more as fit without waiting.
   Messages that fit together in one slot (see above) travel packed in it.
   Returns how many were put (>= 1), or the errors of mpq_queue_put for the
   first message (-EMSGSIZE for any message that is too big, before putting
   any). A producer killed inside this call loses what it had not
   published - all of a packed slot it was writing - and none of it was
   counted as put. Thread safety: as mpq_queue_put; another producer's
   messages may fall between these. */
MPQDEF int mpq_queue_put_batch(mpq_queue *q, const void *const *msgs, const size_t *lens,
                               size_t n, int timeout_ms);

/* Takes up to max_n messages, packed back to back into buf (cap bytes):
   message i has lens[i] bytes and starts where message i-1 ended. Waits up
   to timeout_ms for the first, then takes what is there without waiting,
   stopping early at a message that does not fit in what is left of buf.
   Returns how many (>= 1), or the errors of mpq_queue_get for the first
   (-EMSGSIZE with lens[0] = its length). A consumer killed inside this
   call loses the messages it had taken. Thread safety: as mpq_queue_get. */
MPQDEF int mpq_queue_get_batch(mpq_queue *q, void *buf, size_t cap, size_t *lens,
                               size_t max_n, int timeout_ms);

/* Slots in use right now - messages, but a packed batch counts once -
   (approximate while others work on it), or 0 for NULL and after an
   immediate mpq_queue_shutdown (what is queued then is dropped).
   Thread safety: any thread. */
MPQDEF size_t mpq_queue_count(const mpq_queue *q);

/* The queue's capacity (a power of two) and max_msg, or 0 for NULL.
   Thread safety: any thread. */
MPQDEF size_t mpq_queue_capacity(const mpq_queue *q);
MPQDEF size_t mpq_queue_max_msg(const mpq_queue *q);

/* A file descriptor that polls readable (POLLIN) while the queue holds a
   message, for poll/epoll/select loops. Then call mpq_queue_get with
   timeout 0 until -EAGAIN, which also resets the descriptor. Do not read
   or close it yourself; mpq_queue_close closes it.
   Only puts and shutdowns made through handles that share the descriptor -
   the creator's and those of children forked after mpq_queue_create -
   signal it; a process that opened the queue by name has none. Each
   process that calls this polls (a child forked later does not, until it
   calls it too). A producer killed between its put and the signal leaves
   the descriptor quiet until the next put: poll with a finite timeout
   (100 ms, say) and try mpq_queue_get(.., 0) when it expires.
   Returns the descriptor, or -EINVAL, -ENOTSUP (a handle from
   mpq_queue_open, or eventfd() failed at creation).
   Thread safety: any thread. */
MPQDEF int mpq_queue_fileno(mpq_queue *q);

/* JoinableQueue (a queue made with .joinable): every message put adds one
   to the queue's count of unfinished messages (put, commit, and each
   message of put_batch), and mpq_queue_task_done takes one away once a
   consumer has finished with a message it got; mpq_queue_join waits until
   the count is zero.

   A consumer that dies between its get and its task_done leaves its
   message counted for ever: join then waits until its timeout. Whoever
   learns of the death - the parent that joins the dead process, say -
   calls mpq_queue_task_done once for each message the dead process had
   taken and not finished (it may be any process), and
   mpq_queue_unfinished shows the count. A producer killed inside a put in
   the instant after counting its message and before publishing it leaves
   a count that no message carries: nobody can tell that from outside, so
   join with a timeout where producers may be killed. The count holds up
   to 2^32 - 1 messages. A joinable queue cannot be opened by mpq.h 0.1
   (whose puts would not count). */

/* Marks one message as finished. Returns 0, -EOVERFLOW (called more times
   than messages were put: nothing changes; Python's ValueError), -EINVAL
   (NULL, or not a joinable queue). Thread safety: any thread of any
   process. */
MPQDEF int mpq_queue_task_done(mpq_queue *q);

/* Waits until every message put has been marked finished. Returns 0,
   -EAGAIN (timeout_ms == 0 and some are unfinished), -ETIMEDOUT, -EPIPE
   (the queue was shut down at once: what it held is dropped and will
   never be finished), -EINVAL (NULL, or not joinable). Thread safety: any thread of any process. */
MPQDEF int mpq_queue_join(mpq_queue *q, int timeout_ms);

/* The count of unfinished messages, or -EINVAL (NULL, not joinable).
   Thread safety: any thread. */
MPQDEF long mpq_queue_unfinished(const mpq_queue *q);

/* End of stream (a queue made with .producers = n): consumers learn that
   every producer has finished without sentinel messages. Each producer
   calls mpq_queue_producer_done when it has put its last message; the
   n-th such call shuts the queue down (mpq_queue_shutdown(q, 0)), so
   consumers get what is left and then -EPIPE.
   A producer may die before it says so. Register each producer's pid with
   mpq_queue_add_producer (the parent, after mpq_process_start and before
   it joins the child), and a registered producer that has exited counts
   as done: a consumer blocked in a get (or peek, get_batch, mpq_wait) on
   the empty queue notices within about 200 ms, and so does any call of
   mpq_queue_producers - the call a consumer that polls
   mpq_queue_fileno must make now and then, as nothing else looks for
   it. Order does not matter: a producer may be done before it is
   registered, even at the same instant. An unregistered producer that
   dies without saying it is done holds the stream open for ever.
   Producers are told apart by pid and start time. One process may be
   several producers (threads, say): register its pid once for each, and
   have each say done once - a process that says it twice (at its end and
   again in an atexit handler, say) counts as two producers done, and the
   stream ends early. A queue with a producer count cannot be opened by an
   mpq.h that predates it (-EPROTO). */

/* Registers process pid as one of the queue's producers, so that its
   exit counts as done. Returns 0, or -EINVAL (NULL q, pid <= 0 or beyond
   Linux's pid range, the id of a thread that is not its process's main
   one, a queue made without .producers), -ESRCH (no such
   process: a child already joined cannot be registered - and once its
   pid is reused, it would register a stranger), -ENOSPC (n producers
   are registered or done already; nothing changes), -EXDEV (a handle
   inherited into another pid namespace). Thread safety: any thread of
   any process. */
MPQDEF int mpq_queue_add_producer(mpq_queue *q, int pid);

/* Says that the calling process, as one producer, has put its last
   message; the last of n shuts the queue down. Returns 0, or -EINVAL
   (NULL q, a queue made without .producers), -EOVERFLOW (more producers
   said so than the queue counts; nothing changes), -EXDEV (as for
   mpq_queue_add_producer). Thread safety: any thread of any process;
   each call counts once. */
MPQDEF int mpq_queue_producer_done(mpq_queue *q);

/* The producers not yet done, counting registered producers that have
   exited as done (it checks up to 64 of them a call), and shutting the
   queue down when none are left. (A queue shut down by
   mpq_queue_shutdown still counts its producers.) Returns the count, or
   -EINVAL (NULL q, a queue made without .producers), -EXDEV (as for
   mpq_queue_add_producer). Thread safety: any thread of any process. */
MPQDEF int mpq_queue_producers(mpq_queue *q);

/* ========================================================================
   >>api-conn  mpq_conn: framed messages over a pipe or stream socket
   ========================================================================

   Python: multiprocessing.Pipe, Connection, connection.wait (mpq_wait,
   over any mix of connections, listeners, queues, processes and plain
   descriptors; mpq_conn_wait for connections alone), Listener and
   Client (with authkey; Unix, abstract and TCP addresses),
   reduction.send_handle and recv_handle.

       mpq_conn *a, *b;
       mpq_pipe(&a, &b, 1);                  // duplex: socketpair
       mpq_conn_send(a, "hello", 5);
       mpq_conn_recv(b, buf, sizeof buf, &len, -1);

   Each send writes one frame, exactly as Python's Connection.send_bytes
   does: a 4-byte big-endian length and the bytes, or, above 2^31 - 1
   bytes, 0xffffffff and an 8-byte length; each recv returns exactly one
   whole message. (A 4-byte length from 2^31 to 2^32 - 2, which mpq 0.3
   sent and Python never does, is still received.) The same framing runs
   over any connected stream socket (mpq_conn_from_fd), so Unix sockets
   and TCP (mpq_listener_*, mpq_client) work alike. Reads are buffered:
   a small message costs the receiver one system call, often less.

   Descriptors (mpq_conn_send_fd, Unix sockets only) travel between the
   frames, never inside one: as a single byte sent on its own with the
   descriptor attached (SCM_RIGHTS), which is what Python's
   reduction.send_handle writes on Linux. The receiver knows that byte by
   the ancillary data that came with it, never by its value, so a
   message is always a message, whatever its bytes. A receive takes what
   comes next: recv a message, recv_fd a descriptor; recv that meets a
   descriptor returns -ENOMSG and leaves it for recv_fd.

   No call ever raises SIGPIPE, and none changes signal dispositions: a
   gone peer is -EPIPE. (Sockets use MSG_NOSIGNAL; a pipe write blocks
   SIGPIPE in the calling thread for its duration and takes back the one
   it caused, which costs two system calls per send: for speed prefer a
   duplex connection.) A frame longer than the connection's maximum
   (64 MiB unless mpq_conn_set_max says otherwise) is refused before any
   allocation and breaks the connection: later calls return -EPROTO. A
   frame cut short by the peer's end is -EPROTO as well.

   A connection is used by one thread at a time (per direction: one sender
   and one receiver may run at once); descriptors are close-on-exec. Frames
   from several writers sharing one send end (say, forked children) may
   interleave: give each writer its own connection, or a lock. Do not
   share a receive end either: a reader may then block past its timeout.
*/

typedef struct mpq_conn mpq_conn;          /* opaque */
typedef struct mpq_listener mpq_listener;  /* opaque */

#define MPQ_CONN_DEFAULT_MAX ((uint64_t)64 << 20)

/* Makes two connected endpoints: duplex (socketpair(AF_UNIX, SOCK_STREAM):
   both send and receive) or simplex (pipe(2): *a receives, *b sends - like
   Python's Pipe(duplex=False)). Returns 0, -EINVAL, -EMFILE, -ENFILE,
   -ENOMEM. Thread safety: any thread. Children forked afterwards inherit
   both ends; close the one a process does not use, or the other side
   never sees the end. */
MPQDEF int mpq_pipe(mpq_conn **a, mpq_conn **b, int duplex);

/* Wraps a connected stream socket, or a pipe end, that the caller hands
   over (it is closed by mpq_conn_close). Returns 0, -EINVAL (NULL), -EBADF,
   -ENOTSUP (not a stream socket, FIFO or pipe), -ENOMEM.
   Thread safety: any thread. */
MPQDEF int mpq_conn_from_fd(mpq_conn **c, int fd);

/* Sends one message of len bytes (0 and up; >= 4 GiB on 64-bit), whole:
   partial writes and EINTR are handled inside. Blocks while the peer does
   not read. Returns 0, -EINVAL (NULL, or msg NULL with len > 0), -EBADF (a
   receive-only end), -EPIPE (the peer is gone), or another -errno.
   Thread safety: one sending thread per connection at a time (it may run
   alongside one receiving thread). Not async-signal-safe. */
MPQDEF int mpq_conn_send(mpq_conn *c, const void *msg, size_t len);

/* Receives one whole message into buf (cap bytes); *len gets its length.
   timeout_ms bounds the wait (a message half arrived is kept for the next
   call). Returns 0, or -EMSGSIZE (cap too small: *len gets the length, the
   message stays for the next call; or the frame exceeds the maximum: the
   connection is broken), -ENOMSG (a descriptor comes next, not a message:
   it stays, take it with mpq_conn_recv_fd; *len is 0), -EPIPE (the peer
   closed and nothing is left), -EPROTO (a frame cut short by EOF, or a
   broken connection), -EAGAIN (timeout_ms == 0), -ETIMEDOUT, -EBADF (a
   send-only end), -EINVAL, -ENOMEM (the read buffer, or keeping a
   half-arrived large message), or another -errno from the read.
   Thread safety: one receiving thread per connection at a time (it may
   run alongside one sending thread). */
MPQDEF int mpq_conn_recv(mpq_conn *c, void *buf, size_t cap, size_t *len, int timeout_ms);

/* As mpq_conn_recv, into a buffer of exactly the message's size allocated
   with MPQ_MALLOC (free it with MPQ_FREE, free() by default); a 0-byte
   message gives a 1-byte allocation. Returns the errors of mpq_conn_recv,
   and -ENOMEM. Thread safety: as mpq_conn_recv. */
MPQDEF int mpq_conn_recv_alloc(mpq_conn *c, void **buf, size_t *len, int timeout_ms);

/* Sets the largest frame this end accepts (0: MPQ_CONN_DEFAULT_MAX).
   Returns 0 or -EINVAL. Thread safety: not while another thread receives. */
MPQDEF int mpq_conn_set_max(mpq_conn *c, uint64_t max_msg);

/* Whether a message, a descriptor (or the end) can be received without
   waiting longer than timeout_ms: 1 yes, 0 no, or -EINVAL/-EBADF.
   Thread safety: as mpq_conn_recv. */
MPQDEF int mpq_conn_poll(mpq_conn *c, int timeout_ms);

/* The descriptor to poll for reading (for a send-only end: the one to
   poll for writing), or -EINVAL. It may hold buffered data mpq has read
   already: ask mpq_conn_poll, or use mpq_conn_wait, rather than poll(2)
   alone. Thread safety: any thread. */
MPQDEF int mpq_conn_fileno(const mpq_conn *c);

/* Waits until at least one of conns[0..n-1] can receive (or reached its
   end), at most timeout_ms; sets ready[i] to 1 or 0. Like
   multiprocessing.connection.wait. Every ready one is reported each
   time - those with a message already inside mpq's read buffer and those
   readable in the kernel alike - so a loop that serves what wait reports
   never starves a quiet connection behind a busy one. Returns how many
   are ready (0 on timeout), or -EINVAL (NULL, n == 0 or over 4096, a
   send-only end), -EBADF (a descriptor closed under mpq), -ENOMEM, or an
   -errno from poll. It is mpq_wait over connections alone. Thread
   safety: no other thread may receive on those connections meanwhile. */
MPQDEF int mpq_conn_wait(mpq_conn *const *conns, size_t n, int *ready, int timeout_ms);

/* One wait over everything: Python's multiprocessing.connection.wait,
   which takes connections, sockets and process sentinels alike - here
   connections, listeners, queues, processes and plain descriptors, in
   any mix. Each entry of the array names one thing to wait for:

       mpq_waitable w[] = { MPQ_WAIT_CONN(c), MPQ_WAIT_QUEUE(q),
                            MPQ_WAIT_PROCESS(&p), MPQ_WAIT_FD(sock) };
       n = mpq_wait(w, 4, 1000);          // w[i].ready says which

   The MPQ_WAIT_* initialisers are brace lists, so they work in C and C++
   alike, and check the pointer's type. For an assignment write
   `w[i] = (mpq_waitable)MPQ_WAIT_CONN(c);` in C (a compound literal) or
   `w[i] = mpq_waitable MPQ_WAIT_CONN(c);` in C++11, or set kind and obj
   (fd for a descriptor) yourself.

   What "ready" means - never that something was taken: the wait reads
   and takes nothing, so a ready entry still holds what made it ready
   (unless another process takes it first).
     CONN      a whole message, a descriptor or the end can be received
               without waiting, as mpq_conn_wait says (what mpq has read
               ahead counts; a part of a message does not). Its receive
               end: a send-only end is -EBADF.
     LISTENER  a client waits to be accepted.
     QUEUE     mpq_queue_get with timeout 0 would find a message - or the
               queue is shut down and drained (get gives -EPIPE at once), or
               its memory is corrupt (-EIO at once). Anonymous and named
               queues alike: the wait sleeps on the queue's eventcount, as
               a blocked get does, so a put wakes it as soon as it would
               wake a get (see the implementation for how, and its cost).
               A producer killed between its put and its wake-up costs
               at most 100 ms, as for get; a slot held by a dead process
               at the queue's tail is moved on as a get would. It never
               touches mpq_queue_fileno's descriptor or its poller.
     PROCESS   it has ended (its join with timeout 0 would not wait): the
               handle's pidfd sentinel polls readable, or it was joined
               already. Without a pidfd (Linux before 5.3, or none could
               be opened) it is looked at every 20 ms (waitid, WNOWAIT:
               nothing is reaped). An unstarted handle is -EINVAL.
     FD        the descriptor polls readable (POLLIN, or a hang-up or
               error, as poll reports them). A negative one, or one that
               is not open (POLLNVAL), is -EBADF.
*/
enum {
    MPQ_WAIT_KIND_CONN = 1,      /* obj: an mpq_conn (its receive end)  */
    MPQ_WAIT_KIND_LISTENER = 2,  /* obj: an mpq_listener                */
    MPQ_WAIT_KIND_QUEUE = 3,     /* obj: an mpq_queue                   */
    MPQ_WAIT_KIND_PROCESS = 4,   /* obj: a started mpq_process          */
    MPQ_WAIT_KIND_FD = 5         /* fd: a descriptor, obj unused        */
};

typedef struct mpq_waitable {
    int   kind;   /* MPQ_WAIT_KIND_*                                    */
    void *obj;    /* the object (not for MPQ_WAIT_KIND_FD)              */
    int   fd;     /* MPQ_WAIT_KIND_FD: the descriptor (else unused)     */
    int   ready;  /* out: 1 ready, 0 not (set by every successful wait) */
} mpq_waitable;

#define MPQ_WAIT_CONN(c)     { MPQ_WAIT_KIND_CONN, (void *)(1 ? (c) : (mpq_conn *)0), -1, 0 }
#define MPQ_WAIT_LISTENER(l) { MPQ_WAIT_KIND_LISTENER, (void *)(1 ? (l) : (mpq_listener *)0), -1, 0 }
#define MPQ_WAIT_QUEUE(q)    { MPQ_WAIT_KIND_QUEUE, (void *)(1 ? (q) : (mpq_queue *)0), -1, 0 }
#define MPQ_WAIT_PROCESS(p)  { MPQ_WAIT_KIND_PROCESS, (void *)(1 ? (p) : (struct mpq_process *)0), -1, 0 }
#define MPQ_WAIT_FD(fd)      { MPQ_WAIT_KIND_FD, (void *)0, (fd), 0 }

/* Waits until at least one of w[0..n-1] is ready (see above), at most
   timeout_ms (a deadline; signals never stretch it), and sets every
   entry's `ready`. Every ready one is reported each time - a busy entry
   never hides the others - and with timeout_ms 0 it only looks.
   Returns how many are ready (0 on timeout, as Python's [] - also for
   timeout_ms 0: never -EAGAIN), or -EINVAL (w NULL, n == 0 or over 4096,
   an unknown kind, a NULL object, an unstarted process), -EBADF (a
   send-only connection end, a descriptor that is negative or not open),
   -ENOMEM, or an -errno from poll.
   Costs: what is ready already is found without a system call (queues,
   messages mpq has read ahead, joined processes) or with one poll. To
   block on queues, it first spins for about 20 us, as a get does, in
   case one is served at once. Then, with nothing but queues (up to 127;
   one before Linux 5.16) the calling thread sleeps on them itself; with
   descriptors beside, it starts a watcher thread (one per 127 queues;
   one per queue before Linux 5.16, which lacks futex_waitv) that sleeps
   on their eventcounts and wakes the caller's poll(2) through an
   eventfd, and stops and joins it before returning - also when the
   calling thread is cancelled in the wait. Measured (bench_wait): a put
   wakes a wait on queues alone as fast as it wakes mpq_queue_get, and
   one with a descriptor beside about 1.3 to 2 times as slow (the
   watcher's wake-up, then the eventfd's); starting and joining the
   watcher costs some 75 us of CPU. Should no thread or eventfd be
   available it looks again every 10 ms instead.
   Thread safety: any thread. Meanwhile no other thread may receive on
   its connections (as for mpq_conn_wait), nor join or destroy its
   processes (that closes the sentinel it polls); others may use its
   queues and listeners - what they take in the meantime is simply no
   longer reported. */
MPQDEF int mpq_wait(mpq_waitable *w, size_t n, int timeout_ms);

/* Passes a file descriptor (a memfd-backed mpq_shm, say) to the peer of a
   Unix socket connection, in its place among the messages. The caller
   keeps fd. On the wire it is one byte, 0x01, sent by a sendmsg of its
   own with fd attached as SCM_RIGHTS - exactly what Python's
   reduction.send_handle(conn, fd, pid) sends on Linux (checked with
   CPython 3.6, 3.11 and 3.13, which send no acknowledgement byte there),
   so a Python peer takes it with reduction.recv_handle, and
   mpq_conn_recv_fd takes Python's. To hand over an mpq_conn, use
   mpq_conn_send_conn: passing its mpq_conn_fileno() here would leave
   behind whatever mpq has read ahead on it. Returns 0, -EINVAL (NULL),
   -ENOTSUP (not a Unix socket), -EBADF (fd < 0), or the errors of send.
   Thread safety: as mpq_conn_send. */
MPQDEF int mpq_conn_send_fd(mpq_conn *c, int fd);

/* Receives a descriptor sent with mpq_conn_send_fd (or Python's
   send_handle), close-on-exec. The next thing must be one: a message
   instead gives -EBADMSG (that message is consumed). A descriptor is
   known by the ancillary data that came with its byte, never by what
   the bytes hold; several on one byte give the first and close the rest.
   Only descriptors sent as mpq and Python send them (alone, one byte of
   their own) are supported: a peer that attaches descriptors to a
   frame's bytes (mpq 0.2 did) usually has them closed with that frame,
   but a read that ends one byte into such a frame takes them for a
   descriptor byte and the stream loses its framing. Returns 0 (*fd set), -EMFILE (a
   descriptor came but this process had no room for it, RLIMIT_NOFILE:
   the kernel closed it; the messages after it are received as usual),
   -EBADMSG, or the errors of mpq_conn_recv (-EPROTO too: a peer put
   descriptors on more than 16 bytes that are not yet parsed).
   Thread safety: as mpq_conn_recv. */
MPQDEF int mpq_conn_recv_fd(mpq_conn *c, int *fd, int timeout_ms);

/* Hands the connection `conn` to the peer of c (a Unix socket), which
   takes it with mpq_conn_recv_conn; its descriptor travels as with
   mpq_conn_send_fd. What the kernel holds for conn goes with it, but
   bytes mpq has already read ahead into conn's buffer cannot: so this is
   refused with -EBUSY while there are any (whole messages not yet
   received, a part of one, or a descriptor). Receive them, then try
   again: mpq_conn_poll(conn, 0) says whether a whole one is there, and a
   part completes once the rest arrives. (Python's Connection reads no
   more than it returns, so it has nothing to leave behind.) The caller
   keeps conn and closes it when done; the receiver has its own copy.
   Returns 0, -EINVAL (NULL), -EBUSY, -EPROTO (conn is broken: where its
   next frame starts is lost), or the errors of mpq_conn_send_fd.
   Thread safety: as mpq_conn_send on c; meanwhile nobody may receive on
   conn, nor send on it (a frame half written would be cut in two). */
MPQDEF int mpq_conn_send_conn(mpq_conn *c, const mpq_conn *conn);

/* Receives a connection handed over with mpq_conn_send_conn (or any
   descriptor of a stream socket or pipe, as mpq_conn_send_fd or Python's
   send_handle of a Connection's fileno() sends it), wrapped as by
   mpq_conn_from_fd: its maximum frame is the default again. Returns 0
   (*out set), the errors of mpq_conn_recv_fd, or those of
   mpq_conn_from_fd (the descriptor is then closed).
   Thread safety: as mpq_conn_recv. */
MPQDEF int mpq_conn_recv_conn(mpq_conn *c, mpq_conn **out, int timeout_ms);

/* The credentials of the peer of a Unix socket connection (SO_PEERCRED):
   its process id and effective user and group ids as they were when the
   connection was made - by connect() for the accepting side, by listen()
   for a client, and by socketpair() for both ends of a duplex mpq_pipe
   (so after a fork, both ends report the process that called mpq_pipe,
   not the child that holds the other end: for a child's identity use a
   listener, or the child's pid from mpq_process). Any of pid, uid, gid
   may be NULL. A peer outside this pid namespace has pid 0. (Python has
   no Connection method for it: one reads SO_PEERCRED off conn.fileno().)
   Returns 0, -EINVAL (c NULL), -ENOTSOCK (a pipe end: a simplex mpq_pipe,
   or a pipe given to mpq_conn_from_fd), -ENOTSUP (a socket of another
   family, TCP say), or an -errno from getsockopt.
   Thread safety: any thread. */
MPQDEF int mpq_conn_peer(const mpq_conn *c, pid_t *pid, uid_t *uid, gid_t *gid);

/* Closes the connection's descriptors and frees it; the peer then sees
   the end (-EPIPE once it has read everything). Returns 0 or -EINVAL.
   Thread safety: nobody else may use the connection during or after. */
MPQDEF int mpq_conn_close(mpq_conn *c);

/* Listeners and clients: Python's Listener and Client, wire-compatible
   with them (frames and authkey handshake alike), so a C program and a
   Python one connect either way round. An address is a string:

       "/run/app.sock", "./app.sock"   a Unix socket path (anything with a
       "unix:app.sock"                 '/', or written after "unix:")
       "@app"                          a Linux abstract name: Python's
                                       "\0app" (no file; gone with the
                                       last socket)
       "127.0.0.1:6000", "tcp:host:80" TCP, IPv4 or a host name, and
       "[::1]:6000", ":6000"           IPv6 in brackets; an empty host is
                                       every interface for a listener and
                                       this machine for a client; port 0
                                       lets the listener pick one (see
                                       mpq_listener_address)

   A name with neither '/' nor ':' is a Unix path in the current
   directory; one with a ':' and no '/' must be a valid host:port - write
   "unix:a:b" or "./a:b" for such a path - so that a mistyped TCP address
   is an error, never a socket file. TCP is how mpq crosses machines: the
   same messages, one connection per peer, TCP_NODELAY set. It is meant
   for a few trusted peers, as Python's is; a system that outgrows that
   wants an established messaging system, not more of this one.

   Authentication (authkey): Python's challenge and HMAC response, both
   ways, on every new connection before any message passes - its current
   form ({sha256}, Python 3.12 and later) and the legacy one (bare
   HMAC-MD5, earlier Pythons), whichever the peer speaks. It proves both
   sides know the key; it does not encrypt anything. authkey NULL means
   none (Python's None); a key of length 0 is the empty key, and is
   checked like any other (Python's b"": its Client checks it, and so does
   its Listener from 3.13 on - Listener(authkey=b"") of Python 3.6 to 3.12
   skips the handshake, so meet it with no key). */

#define MPQ_HANDSHAKE_DEFAULT_MS 10000   /* a listener's bound on one handshake */
#define MPQ_CLIENT_DEFAULT_MS 30000      /* a client's bound on connect + handshake */

typedef struct mpq_listener_config {
    const void *authkey;       /* NULL: clients are not authenticated       */
    size_t      authkey_len;
    int         backlog;       /* 0: 64 connections waiting to be accepted */
    int         handshake_ms;  /* 0: MPQ_HANDSHAKE_DEFAULT_MS, -1: no bound */
} mpq_listener_config;

typedef struct mpq_client_config {
    const void *authkey;       /* NULL: no authentication                   */
    size_t      authkey_len;
    int         timeout_ms;    /* connect and handshake; 0:
                                  MPQ_CLIENT_DEFAULT_MS, -1: no bound       */
} mpq_client_config;

/* Listens on an address (above). A Unix path is created (an existing one
   is -EADDRINUSE, whoever made it) and removed by mpq_listener_close in
   the process that made it. A host name binds its first address that
   binds, IPv4 ones first (what Python's Listener, IPv4 only, makes of
   "localhost"); ":port" is every IPv4 interface, "[::]:port" every IPv6
   one (and IPv4 too where the system maps it). cfg may be NULL (no
   authkey); the key is copied, and wiped at close. Returns 0, -EINVAL
   (NULL, a malformed address, a path longer than sun_path allows,
   authkey NULL with a length, a negative backlog, handshake_ms < -1),
   -ENOENT (no such host), -EAGAIN (the resolver failed for now),
   -EAFNOSUPPORT, -EADDRINUSE, -EADDRNOTAVAIL, -EACCES, -ENOMEM, or another
   -errno from socket/bind/listen. Thread safety: any thread. */
MPQDEF int mpq_listener_open_with(mpq_listener **l, const char *address, const mpq_listener_config *cfg);

/* mpq_listener_open_with(l, address, NULL). */
MPQDEF int mpq_listener_open(mpq_listener **l, const char *address);

/* Writes the address the listener is bound to, as a string its clients
   may connect to ("127.0.0.1:41234" after a listener on "127.0.0.1:0",
   "[::1]:6000", "@name", the path, or "unix:a:b" for a path that would
   read as something else), NUL-terminated. Returns its length, or
   -ERANGE (cap too small), -EINVAL, or an -errno.
   Thread safety: any thread. */
MPQDEF int mpq_listener_address(const mpq_listener *l, char *buf, size_t cap);

/* Accepts one client, waiting at most timeout_ms for one. With an
   authkey it then runs the handshake, bounded by the listener's
   handshake_ms (so a call may last up to that beyond timeout_ms); a
   client that fails it is closed, and the error is this call's - the
   listener goes on: call again for the next client. Returns 0 (*c set),
   -EAGAIN / -ETIMEDOUT (no client came), -EACCES (the client's key is not
   ours), -EPROTO (what the client sent is not the handshake, or names a
   digest mpq does not compute), -ECONNABORTED (the client left, or was
   slower than handshake_ms), -EINVAL, -ENOMEM, or an -errno from accept.
   Thread safety: any thread; several threads or processes may accept on
   one listener (each client goes to one of them). */
MPQDEF int mpq_listener_accept(mpq_listener *l, mpq_conn **c, int timeout_ms);

/* Closes the listener; a Unix path is removed by the process that made it
   (and only while it is still this socket), so a forked child's close
   leaves its parent's alone. Returns 0 or -EINVAL.
   Thread safety: nobody else may use the listener during or after. */
MPQDEF int mpq_listener_close(mpq_listener *l);

/* Connects to a listener's address (above) - an mpq_listener or a Python
   Listener - and, with an authkey, runs the handshake; connect and
   handshake within cfg->timeout_ms (a Unix listener with a full backlog
   is waited for). A host name's addresses are tried in turn, IPv4 ones
   first, until one connects; one that does not answer in time uses up
   the bound. Looking the name up is not bounded (the resolver has its
   own timeouts: /etc/resolv.conf). cfg may be NULL. Returns 0, -EINVAL
   (as for the listener), -ENOENT (no such path or host), -EAGAIN (the
   resolver failed for now), -EHOSTUNREACH (it failed for good),
   -ECONNREFUSED, -ETIMEDOUT, -EACCES (the listener's key is not ours, or
   it refused ours), -EPROTO (the listener sent something other than the
   handshake), -ECONNRESET (the listener closed during it), -ENOMEM, or
   another -errno. Thread safety: any thread. */
MPQDEF int mpq_client_with(mpq_conn **c, const char *address, const mpq_client_config *cfg);

/* mpq_client_with(c, address, NULL). */
MPQDEF int mpq_client(mpq_conn **c, const char *address);

/* ========================================================================
   >>api-process  mpq_process: run a function in a forked child
   ========================================================================

   Python: multiprocessing.Process (the "fork" start method) with its
   daemon, name and sentinel; current_process().name, parent_process(),
   active_children() and cpu_count() / os.process_cpu_count().

       static int work(void *arg)
       {
           printf("hello %s from %s\n", (char *)arg, mpq_current_process_name());
           return 0;
       }
       mpq_process p = MPQ_PROCESS_INIT;
       mpq_process_start(&p, work, "bob");   // prints "hello bob from Process-1"
       mpq_process_join(&p, -1);             // p.exitcode == 0
       mpq_process_start_with(&p, work, "ann",
                              &(mpq_process_config){ .daemon = 1, .name = "helper" });

   The child runs fn(arg); its return value (0..255) is the exit status. The
   child then flushes stdout and stderr and calls _exit(): the parent's
   atexit handlers do not run twice. A flush into a pipe nobody reads
   fails quietly (SIGPIPE is blocked for it), so the status stays fn's. fn
   must flush any other stream it writes (and the parent should flush its
   own before starting a child).
   mpq installs no SIGCHLD handler; if the caller sets SIGCHLD to SIG_IGN
   the kernel reaps children itself and join returns -ECHILD.
   join waits on a pidfd (Linux 5.3+); on older kernels it polls.

   Handles. A handle is unstarted until mpq_process_start succeeds: zeroed
   (`mpq_process p = {0};`, a static, calloc) or MPQ_PROCESS_INIT, and
   again after mpq_process_destroy. On an unstarted handle every call
   answers -EINVAL (mpq_process_exitcode: MPQ_PROCESS_RUNNING) and touches
   no descriptor and no process. mpq_process_start needs no prepared
   handle: it sets every field, so an uninitialised one is fine too.
   Every started handle must end in mpq_process_join or
   mpq_process_destroy, which release its pidfd and its registry entry.

   Daemons. A child started with .daemon = 1 dies with this process, as
   Python's daemon=True: when this process ends normally (returns from
   main or calls exit()) an atexit handler kills its daemons that still
   run (SIGKILL, through their pidfd) and waits for them to end, at most a
   second; and should this process be killed, the kernel kills them
   (PR_SET_PDEATHSIG, set in the child at once - a daemon whose parent is
   already gone by then exits before running fn). A child whose fn
   returns kills its own daemons the same way. Caveats: PR_SET_PDEATHSIG
   fires when the *thread* that started the child ends, not only the
   process, so a daemon started from a thread that later returns dies
   with that thread (or, should the thread end in the instant before the
   child has set the signal up, is left to the atexit kill alone): start
   daemons from a thread that lives as long as they should (the main
   thread, say). The kernel forgets the signal when the child exec()s a
   set-user-ID or set-group-ID program; _exit(), quick_exit() or a crash
   of this process runs no atexit handler (the kernel's kill still
   comes). A destroyed handle's daemon is no longer tracked: only the
   kernel's kill remains. A daemon's own children are daemons only if
   started so (Python forbids daemons to have children; mpq does not).

   Names. Every child has a name, Python's Process.name: the config's, or
   "Process-N" where N counts this process's starts from 1 - in a child
   that is itself Process-2, "Process-2:N", as in Python. It is kept in
   the handle (p.name) and in the child (mpq_current_process_name), which
   also sets it as its Linux thread name (the comm shown by ps and top,
   cut to 15 bytes). A process that mpq_process_start did not make -
   the program's first process, or a child made by fork() directly - is
   "MainProcess".

   The children registry. To list live children (mpq_active_children) and
   kill daemons at exit, each process keeps a small process-local list of
   the children it started and has not yet joined or destroyed: serial
   number, pid, daemon flag, and the exit status once active_children has
   reaped one. It is global state, which mpq otherwise avoids (but for
   the queue's cache of this process's pid), and Python keeps the same
   set: nothing else could find the children without the caller passing
   every handle, and waitpid(-1) would steal other code's exit statuses.
   A mutex guards it. It holds only unjoined children, so a program that
   starts and joins children for ever keeps it at a few entries. A forked
   child starts with an empty one, since its parent's children are not
   its own - also when another thread of the parent held the mutex at
   fork time, and when fork() was called directly instead of through
   mpq_process_start.
*/

#define MPQ_PROCESS_RUNNING (-1000) /* exitcode of a process not yet joined */
#define MPQ_PROCESS_NAME_MAX 32     /* bytes of a process name, with its NUL */

typedef struct mpq_process {
    pid_t    pid;       /* the child's pid; 0 before start (kept after join) */
    int      exitcode;  /* after join: exit status 0..255, or -N if signal N
                           killed it (Python's convention); before it
                           MPQ_PROCESS_RUNNING (0 in a zeroed handle: use
                           mpq_process_exitcode)                              */
    int      daemon;    /* read only: 1 if started as a daemon               */
    char     name[MPQ_PROCESS_NAME_MAX]; /* read only: its name, "" before start */
    int      pidfd__;   /* internal: the pidfd, or -errno of pidfd_open     */
    int      joined__;  /* internal                                          */
    uint64_t serial__;  /* internal: registry key; 0 while unstarted         */
} mpq_process;

/* An unstarted handle (a zeroed one is unstarted too):
       mpq_process p = MPQ_PROCESS_INIT;                                     */
#define MPQ_PROCESS_INIT { 0, MPQ_PROCESS_RUNNING, 0, "", -1, 0, 0 }

/* Options of mpq_process_start_with; zero (or a NULL config) means the
   default of each. */
typedef struct mpq_process_config {
    int         daemon; /* 1: dies with this process (see "Daemons" above);
                           0: outlives it, as a plain fork() child does      */
    const char *name;   /* NULL or "": "Process-N"; copied (at most
                           MPQ_PROCESS_NAME_MAX - 1 bytes kept)              */
} mpq_process_config;

/* Forks a child that runs fn(arg) and exits with its return value (only
   the low 8 bits survive, as for exit()). stdout and stderr are flushed
   before the fork so buffered output is not printed twice.
   Same as mpq_process_start_with(p, fn, arg, NULL).
   Returns 0 in the parent, or -EINVAL (NULL), -EAGAIN/-ENOMEM (fork failed,
   or no memory for the registry entry). Never returns in the child.
   Thread safety: any thread; the child has only the forking thread, so fn
   should not rely on locks other threads held at fork time (as in Python). */
MPQDEF int mpq_process_start(mpq_process *p, int (*fn)(void *arg), void *arg);

/* mpq_process_start with options (cfg may be NULL): a daemon, a name.
   Returns and thread safety as mpq_process_start. */
MPQDEF int mpq_process_start_with(mpq_process *p, int (*fn)(void *arg), void *arg,
                                  const mpq_process_config *cfg);

/* Waits for the process to end, at most timeout_ms, and reaps it; sets
   p->exitcode. Joining a joined process returns 0 again. A child that
   mpq_active_children reaped already joins at once with its exit status.
   Returns 0, -EAGAIN (timeout_ms == 0, still running), -ETIMEDOUT,
   -EINVAL (unstarted), -ECHILD (reaped elsewhere, e.g. SIGCHLD ignored,
   or not this process's child).
   Thread safety: one thread per process handle at a time. */
MPQDEF int mpq_process_join(mpq_process *p, int timeout_ms);

/* Sends signal `sig` (SIGTERM, SIGKILL, ...) to the process, through its
   pidfd where there is one. Never signals a pid that was reaped (by join,
   by mpq_active_children, or by the kernel when SIGCHLD is ignored) and
   may be reused.
   Returns 0, -EINVAL (unstarted, bad signal), -ESRCH (already joined or
   reaped), -EPERM.
   Thread safety: any thread, but not concurrently with join or destroy of
   the same handle (they close the pidfd). Async-signal-safe. */
MPQDEF int mpq_process_kill(mpq_process *p, int sig);

/* Returns 1 while the process runs, 0 once it has ended (joined or not;
   it stays joinable), -EINVAL (unstarted), or another -errno from waitid.
   Thread safety: any thread, not concurrently with join or destroy. */
MPQDEF int mpq_process_alive(mpq_process *p);

/* Returns p->exitcode: 0..255, -N for death by signal N, or
   MPQ_PROCESS_RUNNING if it has not been joined (or p is NULL or
   unstarted).
   Thread safety: any thread; it only reads the handle. */
MPQDEF int mpq_process_exitcode(const mpq_process *p);

/* Python's Process.sentinel: a descriptor that polls readable (POLLIN)
   once the process has ended - the handle's own pidfd, to put in poll(),
   epoll or a wait over several objects. It belongs to the handle: do not
   close it or read from it; it stays valid until join or destroy closes
   it (so a join of the process makes it invalid).
   Returns the descriptor, -EINVAL (NULL or unstarted), -ESRCH (already
   joined, or reaped before a pidfd could be opened), -ENOSYS (no pidfd on
   this kernel: Linux < 5.3), or the error that opening it met at start
   (-EMFILE, ...).
   Thread safety: any thread, not concurrently with join or destroy. */
MPQDEF int mpq_process_sentinel(const mpq_process *p);

/* Releases the handle's descriptor and its registry entry, and makes it
   unstarted again (as MPQ_PROCESS_INIT). A process not yet joined goes on
   running and is no longer tracked: it leaves mpq_active_children, a
   daemon is not killed at exit (its PR_SET_PDEATHSIG stays), and it
   stays a zombie once it ends unless something reaps it.
   Returns 0 or -EINVAL (NULL or unstarted). Thread safety: nobody else
   may use the handle. */
MPQDEF int mpq_process_destroy(mpq_process *p);

/* Python's multiprocessing.active_children(): the pids of the children
   this process started with mpq_process_start and has not joined or
   destroyed that still run, in pids[0..cap-1]. Children that have ended
   are reaped on the way - no zombies - and their exit status kept for
   their handle's join. (On a kernel without pidfd, Linux < 5.3, an ended
   child stays a zombie until its join: reaping it here would free a pid
   that mpq_process_kill could then reach.)
   A pool's fork server is such a child (Python lists pool workers too).
   Returns how many run, which may exceed cap (then only cap are stored),
   or -EINVAL (cap < 0, or pids NULL with cap > 0).
   Thread safety: any thread. */
MPQDEF int mpq_active_children(pid_t *pids, int cap);

/* Python's current_process().name: this process's name if
   mpq_process_start made it, else "MainProcess" (see "Names" above). The
   string is this process's own, valid for its life.
   Thread safety: any thread. */
MPQDEF const char *mpq_current_process_name(void);

/* Python's parent_process(): in a child that mpq_process_start made,
   stores its parent's pid in *pid (if pid is not NULL) and says whether
   the parent still runs (the child has not been handed to another reaper
   - getppid(), no descriptor needed).
   Returns 1 (alive), 0 (ended), or -ESRCH when mpq_process_start did not
   make this process (Python's None).
   Thread safety: any thread. */
MPQDEF int mpq_parent_process(pid_t *pid);

/* Python's os.process_cpu_count() (cpu_count() where it differs): the CPUs
   this process may use. The CPUs of the calling thread's affinity mask
   (sched_getaffinity, any number of CPUs; taskset, cpusets), lowered to
   a cgroup's CPU quota where one is set - on its cgroup or any ancestor,
   rounded up (cgroup v2 cpu.max; v1 cpu.cfs_quota_us / cpu.cfs_period_us,
   best effort) - as container CPU limits set it. At least 1.
   It reads /proc and /sys each time: call it once, not in a hot loop.
   Thread safety: any thread. */
MPQDEF int mpq_cpu_count(void);

/* ========================================================================
   >>api-pool  mpq_pool: a pool of worker processes
   ========================================================================

   Python: multiprocessing.Pool (apply, apply_async, map, map_async, imap,
   imap_unordered, close, join, terminate) and concurrent.futures' submit.

       static int square(const void *arg, size_t len, void *res, size_t *res_len)
       {
           int x;
           memcpy(&x, arg, sizeof x);
           x *= x;
           memcpy(res, &x, sizeof x);
           *res_len = sizeof x;
           return 0;
       }
       mpq_pool *pool;
       mpq_pool_create(&pool, &(mpq_pool_config){ .workers = 3 });
       mpq_pool_map(pool, square, in, 100, sizeof(int), out, sizeof(int), 0);
       mpq_pool_close(pool);
       mpq_pool_join(pool, -1);
       mpq_pool_destroy(pool);

   A task is a function plus argument bytes. It runs in a worker process as
   fn(arg, len, result, &result_len): result points at result_len bytes of
   room (the pool's max_result; a map's result_size), and the function sets
   result_len to the bytes it wrote. It returns 0, or an error value of its
   own choosing - by convention a negative errno - that reaches the
   caller's future or error callback unchanged, with a message if the task
   says what went wrong (mpq_pool_fail). The function pointer must
   be valid in the workers: any function of the program, or of a library
   loaded before the pool was created (the workers are forks).

   Processes. mpq_pool_create forks a small fork server, which forks the
   workers and stays their parent; the creating process then starts two
   threads. Tasks travel to the workers on an mpq queue, results come
   back on another; the result thread runs the callbacks - all of them,
   one at a time, as in Python - and completes the futures. No submitting
   call ever waits for room: what the task queue (`backlog` tasks) cannot
   take waits in this process, in order, and the feeder thread moves it
   on as workers free up (Python's task handler). Workers are
   copies of the program as it was when the pool was created (like
   Python's "fork" start method): replacements are forked later by the
   server, which has no other threads, so they copy that same moment and
   never a lock the result thread holds. Create pools before starting
   threads, or at a moment when no lock that tasks need is held.
   The server is named PoolServer and the workers PoolWorker-1 to
   PoolWorker-<workers> (a replacement takes its slot's name), in
   mpq_current_process_name and in ps.

   A worker that dies (killed, crashed, exit() called in a task) fails the
   task it was running with MPQ_POOL_KILLED(signal) or MPQ_POOL_EXITED
   (status), and the server forks a replacement at once: the pool never
   hangs, and a task that crashes its worker every time fails every time.
   Workers die with the server, and the server with the program (Linux
   PR_SET_PDEATHSIG and a pidfd): a killed program leaves no workers
   behind. Should the server itself die, the pool is broken: later submits
   return -ECHILD, and pending tasks fail with -ECHILD - or with -EAGAIN
   when no worker could be forked for a second, or with the error of a
   replacement's initializer that failed (or killed its worker three times
   running).

   Signals: workers keep the program's signal dispositions and the
   creating thread's mask. The server runs none of the program's handlers
   and ignores SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE and SIGUSR1/2 (a
   terminal's or service manager's signals to the process group): it ends
   when the program does. If the program is a subreaper (or PID 1) and the
   server is killed, the workers die with it but are the program's to
   reap.

   Callbacks run on the result thread: keep them short, and never wait in
   one for another task (a future, apply, map, join or destroy there return
   -EDEADLK or would deadlock). A callback may submit tasks.
   A pool is used by the process that created it, from any of its threads;
   forked children must not use it.
*/

typedef struct mpq_pool mpq_pool;      /* opaque */
typedef struct mpq_future mpq_future;  /* opaque: the outcome of one task */
typedef struct mpq_imap mpq_imap;      /* opaque: an imap's results, one by one */

/* A task: runs in a worker. See above. */
typedef int (*mpq_pool_fn)(const void *arg, size_t len, void *result, size_t *result_len);

/* One outcome, as a callback, mpq_imap_next or a future sees it. */
typedef struct mpq_pool_result {
    uint64_t    id;     /* the submission it belongs to: apply_async, submit,
                           map_async and imap number their calls 1, 2, 3...
                           in the order this pool accepted them            */
    size_t      index;  /* map and imap: the item (for a failed map, the
                           first item that failed); apply: 0               */
    int         error;  /* 0, or the task's error (see mpq_strerror)       */
    const void *data;   /* the result bytes; after an error, the message the
                           task gave mpq_pool_fail (empty if none), followed
                           by a NUL so it can be printed with %s            */
    size_t      len;    /* bytes at data, not counting that NUL            */
} mpq_pool_result;

/* Called on the result thread with an outcome, valid during the call:
   the callback with a success, the error callback with a failure. */
typedef void (*mpq_pool_callback)(void *user, const mpq_pool_result *r);

/* The input of an imap: writes item number `index` (0, 1, 2, ... in
   order) into item, which has cap bytes of room (the pool's max_arg),
   and its length into *len. Returns 1 for an item, 0 at the end of the
   input, or a negative error, which ends the input too and is reported
   as the outcome of item `index` once the items before it are handed
   back. Called on the pool's feeder thread, one call at a time, and only
   while the imap's window has room. It may submit tasks (they run after
   the imap's items read so far) and wait for the outcome of tasks
   submitted before the imap - never of later ones, which wait for it;
   mpq_pool_apply, mpq_pool_map, mpq_pool_wait, join, destroy and
   mpq_imap_next return -EDEADLK there, and terminate does not wait. */
typedef int (*mpq_pool_source)(void *user, size_t index, void *item, size_t cap, size_t *len);

/* The error of a task whose worker died: killed by signal `sig`, or exited
   with status `code` while running it. Both lie below -16384, outside the
   range of -errno values. MPQ_POOL_DIED(e) tells such an error;
   MPQ_POOL_SIGNAL(e) gives its signal (0 if it exited) and
   MPQ_POOL_STATUS(e) its exit status (-1 if it was killed). mpq_strerror
   describes them. */
#define MPQ_POOL_EDIED 0x4000
#define MPQ_POOL_KILLED(sig) (-(MPQ_POOL_EDIED | ((sig) & 0xff)))
#define MPQ_POOL_EXITED(code) (-(MPQ_POOL_EDIED | 0x100 | ((code) & 0xff)))
#define MPQ_POOL_DIED(e) ((e) <= -MPQ_POOL_EDIED && (e) >= -(MPQ_POOL_EDIED | 0x1ff))
#define MPQ_POOL_SIGNAL(e) (MPQ_POOL_DIED(e) && !(-(e) & 0x100) ? -(e) & 0xff : 0)
#define MPQ_POOL_STATUS(e) (MPQ_POOL_DIED(e) && (-(e) & 0x100) ? -(e) & 0xff : -1)

typedef struct mpq_pool_config {
    int      workers;      /* worker processes; 0: mpq_cpu_count(); at most 1024 */
    int    (*initializer)(void *initarg);  /* run once in each worker before
                              its first task; nonzero fails it (see create) */
    void    *initarg;
    unsigned max_tasks_per_child;  /* a worker is replaced after this many
                              tasks (a map or imap chunk counts one); 0: never */
    uint32_t max_arg;      /* largest argument (or imap item) in bytes; 0: 4096;
                              at most 2^24 */
    uint32_t max_result;   /* largest result in bytes; 0: 4096; at most 2^24 */
    uint32_t backlog;      /* tasks the shared task queue holds for the
                              workers; 0: 1024. Submissions beyond it wait in
                              this process's memory (the calls never block) */
} mpq_pool_config;

/* Creates a pool: forks the fork server and, through it, the workers; runs
   the initializer in each and waits until all of them have done so.
   Returns 0, -EINVAL (NULL pool, workers < 0 or above 1024, a size above
   its maximum), -ENOMEM, -EAGAIN (fork failed), or - when an initializer
   fails - its return value if negative, else -ECHILD (an initializer that
   kills its worker gives MPQ_POOL_KILLED/EXITED). Nothing is left running
   on failure. Thread safety: any thread. */
MPQDEF int mpq_pool_create(mpq_pool **pool, const mpq_pool_config *cfg);

/* Submits fn(arg) and returns at once, never waiting (a full task queue
   keeps the task in this process until a worker is free). When the task
   ends, the result thread calls callback(user, r) or error_callback(user,
   r) (either may be NULL) and completes *future if one was asked for
   (pass NULL for none; otherwise free it with mpq_future_free). The
   argument is copied.
   Returns 0 (the task's outcome will be reported exactly once), -EINVAL
   (NULL pool or fn, NULL arg with len), -EMSGSIZE (len above max_arg),
   -EPIPE (the pool was closed or terminated), -ECHILD (the pool is broken),
   -ENOMEM. Thread safety: any thread of the creating process, callbacks
   included. */
MPQDEF int mpq_pool_apply_async(mpq_pool *pool, mpq_pool_fn fn, const void *arg, size_t len,
                                mpq_pool_callback callback, mpq_pool_callback error_callback,
                                void *user, mpq_future **future);

/* mpq_pool_apply_async without callbacks: the outcome goes to *future
   (required: -EINVAL without). Same errors. Thread safety: as
   mpq_pool_apply_async. */
MPQDEF int mpq_pool_submit(mpq_pool *pool, mpq_pool_fn fn, const void *arg, size_t len,
                           mpq_future **future);

/* Runs fn(arg) in a worker and waits for it; copies its result into
   result (cap bytes of room) and its length into *result_len.
   Returns 0, the task's error (then result holds its message as
   mpq_future_get gives it), -EMSGSIZE (the result is longer than cap;
   *result_len says how long), -EDEADLK (called in a callback), or an
   error of mpq_pool_submit. Thread safety: any thread of the creating
   process. */
MPQDEF int mpq_pool_apply(mpq_pool *pool, mpq_pool_fn fn, const void *arg, size_t len,
                          void *result, size_t cap, size_t *result_len);

/* Runs fn on each of the n items (item i is the item_size bytes at
   items + i * item_size), and writes item i's result into the
   result_size bytes at results + i * result_size (zero-filled past what fn
   wrote). Items travel in chunks of `chunksize` (0: n / (4 * workers),
   rounded up; at most what max_arg and max_result allow), one task each.
   Returns 0 once every item succeeded, or the error of a failed chunk (the
   others still ran; the results of a failed chunk are unspecified), an
   error of mpq_pool_submit, -EDEADLK (called in a callback), -EOVERFLOW
   (n * size overflows), -EMSGSIZE (item_size above max_arg, result_size
   above max_result). Thread safety: any thread of the creating process. */
MPQDEF int mpq_pool_map(mpq_pool *pool, mpq_pool_fn fn, const void *items, size_t n,
                        size_t item_size, void *results, size_t result_size, size_t chunksize);

/* mpq_pool_map without waiting, ever: the items are copied, and chunks
   the task queue has no room for wait in this process. `results` must
   stay valid until the map ends, which the result thread reports once:
   callback(user, r) with r->data = results and r->len = n * result_size,
   or error_callback(user, r) with the first failure to arrive (r->index
   is the item that failed, r->data its message); and *future (NULL for
   none; its result is empty; mpq_future_progress counts its items).
   Returns 0 (the outcome will be reported once) or an error as for
   mpq_pool_map, -ENOMEM. Thread safety: any thread of the creating
   process, callbacks included. */
MPQDEF int mpq_pool_map_async(mpq_pool *pool, mpq_pool_fn fn, const void *items, size_t n,
                              size_t item_size, void *results, size_t result_size,
                              size_t chunksize, mpq_pool_callback callback,
                              mpq_pool_callback error_callback, void *user,
                              mpq_future **future);

typedef struct mpq_imap_config {
    mpq_pool_source source;   /* the input, read lazily (see mpq_pool_source) ... */
    void        *source_user;
    const void  *items;       /* ... or an array: n items of item_size bytes,  */
    size_t       n;           /* which must stay valid until the imap has read */
    size_t       item_size;   /* them all (mpq_imap_progress says when)         */
    size_t       chunksize;   /* items per task; 0: 1                            */
    size_t       window;      /* items read from the input but not yet handed
                                 back by mpq_imap_next, at most: the memory
                                 bound; 0: 8 * workers * chunksize; at least
                                 chunksize                                      */
    int          unordered;   /* 1: results in the order they end (Python's
                                 imap_unordered); 0: in input order (imap)      */
} mpq_imap_config;

/* Python's imap and imap_unordered: runs fn on every item of the input
   and hands the outcomes back one by one through mpq_imap_next while
   later items still run. Items and results may each have any size up to
   max_arg and max_result; a chunk packs up to chunksize items. The input
   is read only as results are consumed: at most `window` items are out
   (running, waiting, or finished and not yet taken), so an input far
   larger than memory streams through in bounded memory - and an imap
   nobody reads stalls once its window is full (close + join would wait
   for it: read it to the end or free it first).
   An item whose worker dies fails with MPQ_POOL_KILLED/EXITED (with its
   chunk's unfinished items); the other items go on.
   Returns 0, -EINVAL (NULL pool, fn, out or cfg; neither or both of
   source and items; item_size 0 with n), -EMSGSIZE (item_size above
   max_arg), -EPIPE, -ECHILD, -ENOMEM. Thread safety: any thread of the
   creating process. */
MPQDEF int mpq_pool_imap(mpq_pool *pool, mpq_pool_fn fn, const mpq_imap_config *cfg,
                         mpq_imap **out);

/* Takes the next outcome, waiting at most timeout_ms: in input order, or
   for an unordered imap in the order they ended. *r (see mpq_pool_result:
   r->index is the item, r->error its error) stays valid until the next
   call on this imap. Returns 1 (an outcome in *r), 0 (the end: every
   item's outcome has been handed back), -EAGAIN (timeout_ms == 0) or
   -ETIMEDOUT, -EDEADLK (would wait on the result thread), -EINVAL.
   After terminate every item not finished ends with -ECANCELED.
   Thread safety: one thread at a time per imap. */
MPQDEF int mpq_imap_next(mpq_imap *it, mpq_pool_result *r, int timeout_ms);

/* Progress, cheap enough for a progress bar: *done counts the items that
   have finished (handed back or not), *total the items read from the
   input so far (an array's n from the start). Returns 1 once the input
   has ended (total is final), 0 while it may grow, -EINVAL.
   Thread safety: any thread. */
MPQDEF int mpq_imap_progress(const mpq_imap *it, size_t *done, size_t *total);

/* Releases the imap. Unfinished, it is cancelled: its input is not read
   any more (a source call under way is waited for; then source_user or
   the items may be freed) and outcomes still to come are dropped. Call
   it before mpq_pool_destroy, or after it (then it only frees). Returns 0
   or -EINVAL. Thread safety: once per imap, not concurrently with next. */
MPQDEF int mpq_imap_free(mpq_imap *it);

/* Waits until the pool is idle: every task submitted so far (and any
   submitted meanwhile) has ended and its outcome has been reported, with
   the pool still open for more. Returns 0, -EAGAIN (timeout_ms == 0) or
   -ETIMEDOUT, -EDEADLK (in a callback), -EINVAL. An imap counts until
   its input has been read to the end. Thread safety: any thread of the
   creating process. */
MPQDEF int mpq_pool_wait(mpq_pool *pool, int timeout_ms);

/* Stops accepting tasks (later submits: -EPIPE); the tasks already
   submitted still run, and workers exit once none is left.
   Returns 0 or -EINVAL. Thread safety: any thread of the creating process. */
MPQDEF int mpq_pool_close(mpq_pool *pool);

/* After close: waits until every worker has exited and every task's
   outcome has been delivered (callbacks run, futures completed). After
   terminate: waits for the workers to be gone.
   Returns 0, -EINVAL (neither close nor terminate was called), -EAGAIN
   (timeout_ms == 0) or -ETIMEDOUT (still running), -EDEADLK (in a
   callback). Thread safety: any thread of the creating process. */
MPQDEF int mpq_pool_join(mpq_pool *pool, int timeout_ms);

/* Stops now: the workers are killed, and every task not yet finished -
   those still waiting in this process included - fails with -ECANCELED
   (its error callback runs on the result thread before terminate
   returns; in a callback, at once). An imap input function under way is
   waited for (its current item; no more are read). Returns 0 or -EINVAL.
   Thread safety: any thread of the creating process. */
MPQDEF int mpq_pool_terminate(mpq_pool *pool);

/* Terminates the pool if it still runs, then frees it: no worker, server
   or thread remains, and every pending future is failed. Futures and
   imaps the caller holds stay valid until freed.
   Returns 0, -EINVAL, -EDEADLK (in a callback: the pool is left as it
   was). Thread safety: nobody may use the pool during or after the call. */
MPQDEF int mpq_pool_destroy(mpq_pool *pool);

/* Writes the pids of up to cap live workers into pids; returns how many
   there are (which may exceed cap), or -EINVAL. A snapshot: workers come
   and go. Thread safety: any thread. */
MPQDEF int mpq_pool_workers(mpq_pool *pool, pid_t *pids, size_t cap);

/* In a task: gives its failure a message, printf-style, and returns
   `error` - so a task fails with `return mpq_pool_fail(-EINVAL, "bad
   input %d", x);`. The message (at most max_result bytes, at least 255)
   reaches the error callback, the future and apply beside the error.
   Outside a task it only returns `error`. Thread safety: the task's own
   thread. */
MPQDEF int mpq_pool_fail(int error, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Waits until the future's task has ended, at most timeout_ms.
   Returns 0, -EAGAIN (timeout_ms == 0, not ended) or -ETIMEDOUT, -EINVAL.
   Thread safety: any thread; any number of waiters. */
MPQDEF int mpq_future_wait(mpq_future *f, int timeout_ms);

/* Returns 1 if the task has ended, else 0. Thread safety: any thread. */
MPQDEF int mpq_future_ready(const mpq_future *f);

/* Returns 1 if the task ended successfully, 0 if it failed, -EAGAIN if it
   has not ended (Python raises ValueError there), -EINVAL.
   Thread safety: any thread. */
MPQDEF int mpq_future_successful(const mpq_future *f);

/* Waits as mpq_future_wait, then copies the result into buf (cap bytes)
   and its length into *len (when len is not NULL).
   Returns 0, -EMSGSIZE (the result is longer than cap; *len says how
   long), -EAGAIN/-ETIMEDOUT, -EINVAL, or the task's error: then buf gets
   the task's message (mpq_pool_fail), cut to fit and NUL-terminated when
   cap > 0, and *len its whole length (0: none).
   Thread safety: any thread. */
MPQDEF int mpq_future_get(mpq_future *f, void *buf, size_t cap, size_t *len, int timeout_ms);

/* The submission the future belongs to (mpq_pool_result.id), or 0 for
   NULL. Thread safety: any thread. */
MPQDEF uint64_t mpq_future_id(const mpq_future *f);

/* Progress of the future's task: items finished and items in all (a map's
   n; 0 or 1 of 1 for a single task). Returns 1 when it has ended, 0
   while not, -EINVAL. Cheap: two loads. Thread safety: any thread. */
MPQDEF int mpq_future_progress(const mpq_future *f, size_t *done, size_t *total);

/* Releases the caller's hold on the future. A future freed before its task
   ends is freed when it ends (the outcome is dropped). Returns 0 or
   -EINVAL. Thread safety: once per future. */
MPQDEF int mpq_future_free(mpq_future *f);

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
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
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
#ifndef MPQ_TRUST_OTHER_USERS
#define MPQ_TRUST_OTHER_USERS 0
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

/* Lock-free 32- and 64-bit atomics are required: a libatomic fallback
   takes a process-local lock, useless across processes. 64-bit words in
   shared memory sit at offsets that are multiples of 8; the wrappers say
   so through an 8-aligned type, which lets clang inline them on i686
   (where uint64_t is 4-aligned in structs) instead of calling libatomic. */
#if !defined(__GCC_ATOMIC_INT_LOCK_FREE) || __GCC_ATOMIC_INT_LOCK_FREE != 2 || \
    !defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_8)
#error "mpq.h needs lock-free 32- and 64-bit atomics (on 32-bit x86 build for i586 or later, on Arm for v7 or later)"
#endif
typedef uint64_t mpq__u64a __attribute__((aligned(8)));

static inline uint32_t mpq__load32(const uint32_t *p, int mo) { return __atomic_load_n(p, mo); }
static inline void mpq__store32(uint32_t *p, uint32_t v, int mo) { __atomic_store_n(p, v, mo); }
static inline uint32_t mpq__add32(uint32_t *p, uint32_t v, int mo) { return __atomic_fetch_add(p, v, mo); }
static inline uint32_t mpq__xchg32(uint32_t *p, uint32_t v, int mo) { return __atomic_exchange_n(p, v, mo); }
static inline int mpq__cas32(uint32_t *p, uint32_t *expect, uint32_t want, int mo)
{
    return __atomic_compare_exchange_n(p, expect, want, 0, mo, MPQ__RELAXED);
}
static inline uint64_t mpq__load64(const uint64_t *p, int mo) { return __atomic_load_n((const mpq__u64a *)p, mo); }
static inline void mpq__store64(uint64_t *p, uint64_t v, int mo) { __atomic_store_n((mpq__u64a *)p, v, mo); }
static inline uint64_t mpq__add64(uint64_t *p, uint64_t v, int mo) { return __atomic_fetch_add((mpq__u64a *)p, v, mo); }
static inline int mpq__cas64(uint64_t *p, uint64_t *expect, uint64_t want, int mo)
{
    return __atomic_compare_exchange_n((mpq__u64a *)p, expect, want, 0, mo, MPQ__RELAXED);
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

/* Polls one descriptor for `events` for up to timeout_ms (0: look once,
   -1: no limit): 1 ready, 0 not within the time, or -errno (-EINTR too). */
static int mpq__poll1(int fd, short events, int timeout_ms)
{
    struct pollfd p;
    int r;
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    r = poll(&p, 1, timeout_ms);
    return r < 0 ? mpq__err() : r > 0;
}

/* Whether fd polls readable within timeout_ms (0: look once; an EINTR
   counts as not yet): 1 or 0. */
static int mpq__readable(int fd, int timeout_ms) { return mpq__poll1(fd, POLLIN, timeout_ms) == 1; }

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

/* A CLOCK_MONOTONIC time in ns as a timespec (for the clock-taking waits). */
static struct timespec mpq__timespec(int64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
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

/* The futex call's timespec: 32-bit `long` fields for the time32 call of
   a 32-bit ABI, 64-bit ones where SYS_futex takes the kernel's 64-bit
   __kernel_timespec (64-bit ABIs, and x32, whose long is 32 bits). */
#if defined(__x86_64__) && defined(__ILP32__)
typedef int64_t mpq__futex_long;   /* x32 */
#else
typedef long mpq__futex_long;
#endif

/* Sleeps while *addr == expect, until woken or `deadline` (monotonic ns,
   -1: none) passes. Shared (not private) futexes: works across processes.
   Returns 0 when woken, interrupted or the value changed (the caller
   re-checks its condition), -ETIMEDOUT when the deadline passed. The
   absolute deadline is why EINTR retries never stretch a wait. Should the
   kernel refuse futexes, it naps 1 ms: callers loop, they never spin.
   32-bit ABIs have two calls: futex_time64 (Linux 5.1+), and futex with
   32-bit time, which a kernel built without COMPAT_32BIT_TIME lacks; the
   wait and the wake both try the first, then the second on ENOSYS. */
static int mpq__futex_wait(uint32_t *addr, uint32_t expect, int64_t deadline)
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
        struct { mpq__futex_long tv_sec, tv_nsec; } ts;
        ts.tv_sec = (mpq__futex_long)(deadline / 1000000000);
        ts.tv_nsec = (mpq__futex_long)(deadline % 1000000000);
        r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, expect,
                    deadline >= 0 ? &ts : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
    }
#endif
    if (r == 0 || errno == EAGAIN || errno == EINTR) return 0;
    if (errno == ETIMEDOUT) return -ETIMEDOUT;
    {   /* futex refused (a seccomp filter, say): wait a little instead of
           letting every caller's loop spin. */
        struct timespec ts;
        int64_t left = deadline < 0 ? 1000000 : deadline - mpq__now_ns();
        if (left <= 0) return -ETIMEDOUT;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(left < 1000000 ? left : 1000000);
        nanosleep(&ts, NULL);
        return 0;
    }
}

/* Wakes up to n sleepers on addr, with the wait's choice of call (a wake
   lost to ENOSYS would leave an unbounded wait asleep for ever).
   Async-signal-safe (errno is kept). */
static void mpq__futex_wake(uint32_t *addr, int n)
{
    int saved = errno;
    long r = -1;
#if defined(SYS_futex_time64)
    r = syscall(SYS_futex_time64, addr, FUTEX_WAKE, n, NULL, NULL, 0);
#if defined(SYS_futex)
    if (r < 0 && errno == ENOSYS)
#endif
#endif
#if defined(SYS_futex)
        r = syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
#endif
    (void)r;
    errno = saved;
}

/* --- who we are, and whether another process is alive ----------------- */

#define MPQ__START_MASK ((((uint64_t)1) << 40) - 1)  /* start times are kept in 40 bits */

static uint32_t mpq__self_pid_v;     /* 0 until known; reset after fork */
static uint64_t mpq__self_start_v;
static uint64_t mpq__self_ns_v;      /* pid namespace + 1; 0 until known, reset after fork */
static pthread_once_t mpq__self_once = PTHREAD_ONCE_INIT;
static void mpq__self_forget(void)
{
    mpq__store32(&mpq__self_pid_v, 0, MPQ__RELAXED);
    mpq__store64(&mpq__self_ns_v, 0, MPQ__RELAXED);
}
static void mpq__self_register(void) { pthread_atfork(NULL, NULL, mpq__self_forget); }

static uint64_t mpq__boot_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads a small file (or the start of one) into buf, NUL-terminated: its
   length, or -1 (no such file, no /proc, hidepid). */
static int mpq__read_text(const char *path, char *buf, size_t n)
{
    size_t got = 0;
    ssize_t r;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    while (got < n - 1) {
        r = read(fd, buf + got, n - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    return (int)got;
}

/* Start time of process pid in clock ticks since boot (field 22 of the
   stat file of its main thread, which is the process's); 0 when it cannot
   be read (no /proc, hidepid, gone). Read from task/PID/stat, not
   /proc/PID/stat: qemu-user makes up a process's own /proc/PID/stat with
   a start time a few ticks off the kernel's, which made the others take
   its live slots for a dead process's (pool_map's -EINVAL under qemu). */
static uint64_t mpq__proc_start(uint32_t pid)
{
    char path[64], buf[600], *p;
    int field;
    snprintf(path, sizeof path, "/proc/%u/task/%u/stat", (unsigned)pid, (unsigned)pid);
    if (mpq__read_text(path, buf, sizeof buf) <= 0 || !(p = strrchr(buf, ')'))) return 0;
    for (p += 1, field = 3; field < 22 && p; field++) p = strchr(p + 1, ' ');  /* " 3 4 ... 22" */
    return p ? strtoull(p + 1, NULL, 10) & MPQ__START_MASK : 0;
}

/* 0 if /proc says pid is a thread's id and not its process's (Tgid), else
   1 (unreadable counts as a process). */
static int mpq__is_process(int pid)
{
    char path[40], buf[512], *t;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (mpq__read_text(path, buf, sizeof buf) <= 0 || !(t = strstr(buf, "\nTgid:"))) return 1;
    return strtol(t + 6, NULL, 10) == pid;
}

/* This process's pid (and start time in *start), cached per process; a
   pthread_atfork handler makes a forked child look itself up again. */
static uint32_t mpq__self(uint64_t *start)
{
    uint32_t pid = mpq__load32(&mpq__self_pid_v, MPQ__ACQUIRE);
    if (pid == 0) {   /* first call in this process (fork() resets it in the child) */
        pthread_once(&mpq__self_once, mpq__self_register);
        pid = (uint32_t)getpid();
        mpq__store64(&mpq__self_start_v, mpq__proc_start(pid), MPQ__RELAXED);
        mpq__store32(&mpq__self_pid_v, pid, MPQ__RELEASE);
    }
    *start = mpq__load64(&mpq__self_start_v, MPQ__RELAXED);
    return pid;
}

/* This process's pid namespace: the inode of /proc/self/ns/pid, or 0 if
   it cannot be told (no /proc). Cached per process: a process never
   changes its own pid namespace (unshare and setns change its children's),
   and a child forked into another looks again (the atfork handler). Every
   segment records its creator's, and mpq refuses one made in another
   namespace (-EXDEV): pids and thread ids, which robust locks and the
   queue's dead-holder checks rely on, mean other processes there. */
static uint64_t mpq__pidns(void)
{
    uint64_t v = mpq__load64(&mpq__self_ns_v, MPQ__ACQUIRE);
    if (v == 0) {
        struct stat st;
        pthread_once(&mpq__self_once, mpq__self_register);
        v = stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino + 1 : 1;
        mpq__store64(&mpq__self_ns_v, v, MPQ__RELEASE);
    }
    return v - 1;
}

/* True if /proc says process pid is a zombie with no thread left: state
   Z or X, and at most one thread (a main thread that exited before the
   others is a zombie too, with the others counted). 0 when it cannot be
   read, or /proc is another pid namespace's (its "self" is not our pid). */
static int mpq__proc_zombie(uint32_t pid)
{
    char path[48], buf[600], *p;
    ssize_t n;
    long threads;
    int field;
    /* A /proc mounted for another pid namespace names other processes. */
    n = readlink("/proc/self", buf, sizeof buf - 1);
    if (n <= 0 || (buf[n] = 0, strtol(buf, NULL, 10) != (long)getpid())) return 0;
    snprintf(path, sizeof path, "/proc/%u/stat", (unsigned)pid);
    if (mpq__read_text(path, buf, sizeof buf) <= 0) return 0;
    if (!(p = strrchr(buf, ')')) || (p[1] != ' ') || (p[2] != 'Z' && p[2] != 'X')) return 0;
    for (p += 1, field = 3; field < 20 && p; field++) p = strchr(p + 1, ' ');   /* on to field 20 */
    threads = p ? strtol(p + 1, NULL, 10) : 0;
    return threads >= 0 && threads <= 1;
}

/* True if process pid has certainly exited (all its threads): its pidfd
   polls readable, zombie or not, or no such pid exists. Without a pidfd
   (before Linux 5.3, or no descriptor to spare: EMFILE, ENFILE) it asks
   what needs none: kill(2), which counts a zombie as alive, and then
   waitid(WNOWAIT), which tells a zombie that is a child of this process
   without reaping it (and, like the pidfd, not a process whose main
   thread alone has exited), and then /proc, which tells a zombie that is
   not (mpq__proc_zombie). */
static int mpq__pid_exited(uint32_t pid)
{
    siginfo_t si;
#if defined(SYS_pidfd_open)
    int fd = (int)syscall(SYS_pidfd_open, (int)pid, 0);
    if (fd >= 0) {
        int exited = mpq__readable(fd, 0);
        close(fd);
        return exited;
    }
    if (errno == ESRCH) return 1;
#endif
    if (kill((pid_t)pid, 0) != 0) return errno == ESRCH;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == (pid_t)pid) return 1;
    return mpq__proc_zombie(pid);
}

/* --- eventcounts ---------------------------------------------------------- */

/* Announces a sleeper; returns the value to futex-wait on. */
static uint32_t mpq__ec_prepare(uint32_t *ec)
{
    uint32_t v = mpq__load32(ec, MPQ__SEQ_CST);
    while (!(v & 1u) && !mpq__cas32(ec, &v, v | 1u, MPQ__SEQ_CST)) {}
    return v | 1u;
}

/* Wakes every sleeper, if there is one (a load when there is not). */
static void mpq__ec_signal(uint32_t *ec)
{
    uint32_t v = mpq__load32(ec, MPQ__SEQ_CST);
    if ((v & 1u) && mpq__cas32(ec, &v, v + 1u, MPQ__SEQ_CST)) mpq__futex_wake(ec, INT_MAX);
}

/* Spins (a bounded number of pauses, letting others of this CPU run now
   and then) while *word == seen: 1 once it differs, 0 if it never did.
   Waiters of the sync family do this before they sleep: a wake-up that
   crosses CPUs costs tens of microseconds here, and a partner that answers
   within the spin (a ping-pong, a barrier's last party) is caught without
   one. Bounded at about the cost of one sleep and wake-up, it never
   burns more than sleeping would have. */
#ifndef MPQ__SYNC_SPIN
#define MPQ__SYNC_SPIN 1024u
#endif
static int mpq__spin32(const uint32_t *word, uint32_t seen)
{
    uint32_t i;
    for (i = 0; i < MPQ__SYNC_SPIN; i++) {
        if (mpq__load32(word, MPQ__ACQUIRE) != seen) return 1;
        if ((i & 63) == 63) sched_yield();   /* the partner may share this CPU */
        else mpq__cpu_relax();
    }
    return 0;
}

/* Sleeps on eventcount ec (key from mpq__ec_prepare) until woken, for at
   most MPQ_SYNC_SLICE_MS, never past `deadline` (monotonic ns, -1: none).
   Returns 0 (woken, or look again), 1 (the slice ran out: nobody woke us,
   time for a waiter's checks on the dead), or -ETIMEDOUT (the deadline has
   passed). The slice is what bounds the cost of a waker that died between
   its change and its wake-up. */
static int mpq__ec_sleep(uint32_t *ec, uint32_t key, int64_t deadline)
{
    int64_t now = mpq__now_ns(), until = now + (int64_t)MPQ_SYNC_SLICE_MS * 1000000;
    if (deadline >= 0 && now >= deadline) return -ETIMEDOUT;
    if (deadline >= 0 && deadline < until) until = deadline;
    if (mpq__futex_wait(ec, key, until) != -ETIMEDOUT) return 0;
    return deadline >= 0 && until == deadline ? -ETIMEDOUT : 1;
}

/* Waits until (*word != 0) == nonzero, sleeping on eventcount ec, whose
   signal must follow every change of *word. Returns 0, -EAGAIN
   (timeout_ms == 0 and not yet), -ETIMEDOUT. */
static int mpq__ec_await(const uint32_t *word, int nonzero, uint32_t *ec, int timeout_ms, int64_t deadline)
{
    uint32_t v = mpq__load32(word, MPQ__ACQUIRE);
    if ((v != 0) == nonzero) return 0;
    if (timeout_ms == 0) return -EAGAIN;
    mpq__spin32(word, v);   /* while it stays as it is */
    for (;;) {
        uint32_t key;
        if ((mpq__load32(word, MPQ__ACQUIRE) != 0) == nonzero) return 0;
        key = mpq__ec_prepare(ec);
        if ((mpq__load32(word, MPQ__SEQ_CST) != 0) == nonzero) return 0;   /* pairs with the signaller's */
        if (mpq__ec_sleep(ec, key, deadline) == -ETIMEDOUT)
            return (mpq__load32(word, MPQ__ACQUIRE) != 0) == nonzero ? 0 : -ETIMEDOUT;
    }
}

/* --- segments: every shared object mpq maps starts with this header ---- */

#define MPQ__SEG_MAGIC   0x3153504dU   /* "MPS1" little-endian */
#define MPQ__SEG_VERSION 1   /* shm and mutex segments */
#define MPQ__SEG_VERSION_QUEUE 6   /* 2: queues may hold packed batches (1 cannot read them);
                                      3: a joinable queue (2 would not count its puts);
                                      4: a producer count (3 has no table after the slots);
                                      5: an arena, never released (no claim words: refused);
                                      6: an arena for messages larger than a slot's bytes */
#define MPQ__SEG_VERSION_OF(kind) ((kind) == MPQ__KIND_QUEUE ? MPQ__SEG_VERSION_QUEUE : MPQ__SEG_VERSION)
#define MPQ__SEG_HDR     64

enum { MPQ__KIND_SHM = 1, MPQ__KIND_MUTEX = 2, MPQ__KIND_QUEUE = 3, MPQ__KIND_EVENT = 4,
       MPQ__KIND_SEM = 5, MPQ__KIND_COND = 6, MPQ__KIND_BARRIER = 7, MPQ__KIND_DICT = 8,
       MPQ__KIND_LIST = 9 };

typedef struct mpq__seg {
    uint32_t magic;      /* MPQ__SEG_MAGIC, stored last with release order  */
    uint16_t version;    /* layout version: MPQ__SEG_VERSION_OF(kind)       */
    uint16_t kind;       /* MPQ__KIND_*                                     */
    uint32_t hdr_size;   /* MPQ__SEG_HDR                                    */
    uint32_t abi;        /* pointer size, mutex size, libc: see mpq__abi    */
    uint64_t total_size; /* bytes in the mapping, header included           */
    uint64_t obj_size;   /* bytes of the object after the header            */
    uint32_t check;      /* mpq__seg_checksum of the header                 */
    uint32_t pidns_lo;   /* the creator's pid namespace (inode of           */
    uint32_t pidns_hi;   /*   /proc/self/ns/pid); 0: unknown (or older)     */
    uint32_t reserved[5];/* zero                                            */
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

/* Bytes in the mapping of a segment whose object has obj_size bytes: the
   header and the object, rounded up to whole pages; 0 if too big. Creators
   and closers both ask here, so a length is never read back from shared
   memory to be handed to munmap. */
static size_t mpq__seg_length(size_t obj_size)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    if (obj_size > (size_t)-1 / 2 - MPQ__SEG_HDR - (size_t)page) return 0;
    return (MPQ__SEG_HDR + obj_size + (size_t)page - 1) / (size_t)page * (size_t)page;
}

/* Reserves all `len` bytes of the file behind fd now. On a tmpfs with
   too little room (a container's 64 MiB /dev/shm) a page that is first
   touched later kills whoever touches it with SIGBUS; reserved at
   creation, the lack of room is -ENOSPC there, once. A filesystem
   without fallocate gets the bytes written instead, which reserves them
   as well. Returns 0 or -errno. */
static int mpq__seg_reserve(int fd, size_t len)
{
    static const char zero[4096] = { 0 };
    size_t off = 0;
    int rc;
    do rc = posix_fallocate(fd, 0, (off_t)len); while (rc == EINTR);
    if (rc == 0) return 0;
    if (rc != EOPNOTSUPP && rc != ENOSYS && rc != EINVAL) return -rc;
    while (off < len) {
        ssize_t n = pwrite(fd, zero, len - off < sizeof zero ? len - off : sizeof zero, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? mpq__err() : -EIO;
        off += (size_t)n;
    }
    return 0;
}

/* Creates and maps a segment of kind `kind` with `obj_size` bytes after the
   header: anonymous (name NULL, memfd 0), memfd (fd returned in *fd_out) or
   named (O_EXCL). The header is filled in but not published: the caller
   initialises its object, then calls mpq__seg_publish. */
static int mpq__seg_create(int kind, size_t obj_size, const char *name, int mode,
                           int memfd, void **base_out, size_t *len_out, int *fd_out)
{
    size_t len = mpq__seg_length(obj_size);
    int fd = -1, rc;
    void *base;
    mpq__seg h;

    if (name && !mpq__name_ok(name)) return -EINVAL;
    if (obj_size == 0 || len == 0) return -EINVAL;
    if (sizeof(off_t) < sizeof(uint64_t) && (uint64_t)len > (uint64_t)INT32_MAX) return -EINVAL;

    if (name) {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)(mode ? mode : 0600));
        if (fd < 0) return mpq__err();
        /* shm_open applies the umask; the caller asked for exactly `mode`. */
        if (fchmod(fd, (mode_t)(mode ? mode : 0600)) != 0) { rc = mpq__err(); goto fail; }
    } else if (memfd) {
#if defined(SYS_memfd_create)
        fd = (int)syscall(SYS_memfd_create, "mpq", 3u /* MFD_CLOEXEC | MFD_ALLOW_SEALING */);
        if (fd < 0) return mpq__err();
#else
        return -ENOSYS;
#endif
    }
    if (fd >= 0 && ftruncate(fd, (off_t)len) != 0) { rc = mpq__err(); goto fail; }
    if (fd >= 0 && (rc = mpq__seg_reserve(fd, len)) != 0) goto fail;
#if defined(F_ADD_SEALS)
    /* A memfd's size is sealed: whoever receives it need not fear a
       peer shrinking it under its mapping (SIGBUS). */
    if (memfd && !name && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = mpq__err();
        goto fail;
    }
#endif
    base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                fd >= 0 ? MAP_SHARED : MAP_SHARED | MAP_ANONYMOUS, fd, 0);
    if (base == MAP_FAILED) { rc = mpq__err(); goto fail; }

    /* Everything but the magic now; mpq__seg_publish stores it last. */
    memset(&h, 0, sizeof h);
    h.magic = MPQ__SEG_MAGIC;
    h.version = (uint16_t)MPQ__SEG_VERSION_OF(kind);
    h.kind = (uint16_t)kind;
    h.hdr_size = MPQ__SEG_HDR;
    h.abi = mpq__abi();
    h.total_size = len;
    h.obj_size = obj_size;
    h.pidns_lo = (uint32_t)mpq__pidns();
    h.pidns_hi = (uint32_t)(mpq__pidns() >> 32);
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

/* The pid namespace recorded in segment h (0: unknown, or an older mpq.h
   made it). */
static uint64_t mpq__seg_pidns(const mpq__seg *h)
{
    return (uint64_t)mpq__load32(&h->pidns_hi, MPQ__RELAXED) << 32 | mpq__load32(&h->pidns_lo, MPQ__RELAXED);
}
/* Whether this process is in pid namespace ns (or either is unknown: no
   /proc here, or an older segment). */
static int mpq__in_pidns(uint64_t ns)
{
    uint64_t me = mpq__pidns();
    return ns == 0 || me == 0 || ns == me;
}
static int mpq__seg_same_pidns(const mpq__seg *h) { return mpq__in_pidns(mpq__seg_pidns(h)); }

/* Makes a created segment visible to openers: the magic goes in last. */
static void mpq__seg_publish(void *base)
{
    MPQ_ASSERT(base != NULL);
    mpq__store32(&((mpq__seg *)base)->magic, MPQ__SEG_MAGIC, MPQ__RELEASE);
}

/* Ends a creation: publishes the segment if the object's set-up went well
   (rc == 0), otherwise unmaps it and removes its name. Returns rc. */
static int mpq__seg_finish(void *base, size_t len, const char *name, int rc)
{
    if (rc == 0) {
        mpq__seg_publish(base);
        return 0;
    }
    munmap(base, len);
    if (name) shm_unlink(name);
    return rc;
}

/* Seconds a segment may stay unfinished (being created) before openers
   take its creator for dead: creation is an O_EXCL open, a truncate, a
   reservation of the memory and the object's set-up, all well within this
   even for a queue of gigabytes. */
#ifndef MPQ__CREATE_GRACE_S
#define MPQ__CREATE_GRACE_S 10
#endif

/* An opener found a segment not yet published (st: its file): -EAGAIN
   while its creator may still be at work, -EOWNERDEAD once the file's
   contents have not changed (mtime: creation, truncation, reservation)
   for MPQ__CREATE_GRACE_S seconds - its creator died half-way, and the
   name stays blocked until somebody unlinks it. */
static int mpq__seg_unfinished(const struct stat *st)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) return -EAGAIN;
    return now.tv_sec - st->st_mtime > MPQ__CREATE_GRACE_S ? -EOWNERDEAD : -EAGAIN;
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
    if (st.st_size == 0) return mpq__seg_unfinished(&st);   /* creator between open and ftruncate */
    if (st.st_size < MPQ__SEG_HDR) return -EINVAL;
    if ((uint64_t)st.st_size > (uint64_t)((size_t)-1 / 2)) return -EINVAL;
    len = (size_t)st.st_size;
    /* The header alone first: a huge foreign file costs no big mapping. */
    base = mmap(NULL, MPQ__SEG_HDR, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return mpq__err();
    h.magic = mpq__load32(&((mpq__seg *)base)->magic, MPQ__ACQUIRE);
    memcpy((char *)&h + sizeof h.magic, (char *)base + sizeof h.magic, sizeof h - sizeof h.magic);
    munmap(base, MPQ__SEG_HDR);
    if (h.magic == 0) {
        /* Being initialised: all zero, or a header whose checksum holds
           once the magic (stored last) is counted in. */
        const unsigned char *b = (const unsigned char *)&h;
        size_t i;
        for (i = 0; i < sizeof h && b[i] == 0; i++) {}
        h.magic = MPQ__SEG_MAGIC;
        rc = (i == sizeof h || h.check == mpq__seg_checksum(&h)) ? mpq__seg_unfinished(&st) : -EINVAL;
    } else if (h.magic != MPQ__SEG_MAGIC) rc = -EINVAL;
    else if (h.version == 0 || h.version > MPQ__SEG_VERSION_OF(kind)) rc = -EPROTO;  /* older: readable */
    else if (h.check != mpq__seg_checksum(&h)) rc = -EINVAL;
    else if (kind != MPQ__KIND_SHM && h.abi != mpq__abi()) rc = -EPROTO;  /* bytes are ABI-free */
    else if (h.hdr_size != MPQ__SEG_HDR || h.kind != (uint16_t)kind) rc = -EINVAL;
    else if (h.total_size != (uint64_t)len) rc = -EINVAL;
    else if (h.obj_size == 0 || h.obj_size > h.total_size - MPQ__SEG_HDR) rc = -EINVAL;
    else if (!mpq__seg_same_pidns(&h)) rc = -EXDEV;
    else rc = 0;
    if (rc != 0) return rc;
    base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return mpq__err();
    *base_out = base;
    *len_out = len;
    *obj_size_out = (size_t)h.obj_size;
    return 0;
}

/* Whose a named segment is: this process's user's, and writable by
   nobody else - or it is refused with -EACCES, unless the program was
   built with MPQ_TRUST_OTHER_USERS. Another user who made the name first
   (or may write it) could make its users crash or write where it likes
   (see Trust in >>conventions). */
static int mpq__seg_owner_ok(int fd)
{
#if !MPQ_TRUST_OTHER_USERS
    struct stat st;
    if (fstat(fd, &st) != 0) return mpq__err();
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) return -EACCES;
#else
    (void)fd;
#endif
    return 0;
}

static int mpq__seg_open(const char *name, int kind, void **base_out, size_t *len_out, size_t *obj_size_out)
{
    int fd, rc;
    if (!mpq__name_ok(name)) return -EINVAL;
    fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return mpq__err();
    if ((rc = mpq__seg_owner_ok(fd)) == 0) rc = mpq__seg_map_fd(fd, kind, base_out, len_out, obj_size_out);
    close(fd);
    return rc;
}

/* The header of the segment whose object starts at `obj`, if it is a
   segment of kind `kind`. Only for objects known to live in a segment. */
static mpq__seg *mpq__seg_of(void *obj, int kind)
{
    mpq__seg *h = (mpq__seg *)(void *)((char *)obj - MPQ__SEG_HDR);
    if (mpq__load32(&h->magic, MPQ__ACQUIRE) != MPQ__SEG_MAGIC || h->kind != kind) return NULL;
    return h;
}

MPQDEF const char *mpq_version(void) { return MPQ_VERSION_STRING; }

/* The pool's worker-death texts, made once: 64 signals and 256 statuses. */
static char mpq__death_text[64 + 256][40];
static pthread_once_t mpq__death_once = PTHREAD_ONCE_INIT;

static void mpq__death_init(void)
{
    int k;
    for (k = 0; k < 64; k++)
        snprintf(mpq__death_text[k], sizeof mpq__death_text[k], "worker killed by signal %d", k + 1);
    for (k = 0; k < 256; k++)
        snprintf(mpq__death_text[64 + k], sizeof mpq__death_text[0], "worker exited with status %d", k);
}

MPQDEF const char *mpq_strerror(int rc)
{
    if (rc == 0) return "success";
    if (rc <= -0x4000 && rc >= -(0x4000 | 0x1ff)) {   /* MPQ_POOL_DIED */
        int v = -rc & 0x1ff;
        pthread_once(&mpq__death_once, mpq__death_init);
        if (v & 0x100) return mpq__death_text[64 + (v & 0xff)];
        if (v >= 1 && v <= 64) return mpq__death_text[v - 1];
        return "worker killed by a signal";
    }
    if (rc < 0 && rc > -4096) return strerror(-rc);
    return "unknown error";
}

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
#if defined(F_GET_SEALS)
    {
        int seals = fcntl(dup_fd, F_GET_SEALS);
        if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {   /* not one of ours (a file, say) */
            close(dup_fd);
            return -EINVAL;
        }
    }
#endif
    rc = mpq__seg_map_fd(dup_fd, MPQ__KIND_SHM, &base, &len, &obj);
    if (rc == -EAGAIN || rc == -EOWNERDEAD) rc = -EINVAL;  /* a descriptor is sent after creation */
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
/* flags__: bits 0-2 below; bits 3-7 a tag of the initialiser's pid
   namespace (MPQ__MUTEX_NS); bits 8-31 an RLock's depth beyond its first
   lock. Bits 0, 1 and 3-7 never change after initialisation; the others
   are written only by the thread that holds the lock. */
#define MPQ__MUTEX_IN_SEGMENT 1u      /* made by mpq_mutex_create           */
#define MPQ__MUTEX_RECURSIVE  2u      /* an RLock                           */
#define MPQ__MUTEX_DIED       4u      /* a dead owner's lock was taken and given
                                         back unrepaired (mpq_mutex_locked):
                                         the next locker is told            */
#define MPQ__MUTEX_NS       0xf8u     /* 1 + the namespace's inode mod 31, or 0:
                                         unknown (no /proc); see mpq__pmutex_reap */
#define MPQ__MUTEX_DEPTH1     256u
#define MPQ__MUTEX_FIXED (MPQ__MUTEX_IN_SEGMENT | MPQ__MUTEX_RECURSIVE | MPQ__MUTEX_NS)

/* pthread_mutex_clocklock waits on CLOCK_MONOTONIC (glibc 2.30+, with
   _GNU_SOURCE in force). Elsewhere
   pthread_mutex_timedlock on CLOCK_REALTIME is used one slice at a time, so
   a clock step can stretch only the slice it falls in. clang 14's
   ThreadSanitizer does not intercept clocklock, so TSan builds use the
   other path too, or every lock would look like a race. */
#if defined(__GLIBC__) && defined(__USE_GNU) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define MPQ__HAVE_CLOCKLOCK 1   /* declared only with _GNU_SOURCE */
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

static uint32_t mpq__mflags(const mpq_mutex *m) { return mpq__load32(&m->flags__, MPQ__RELAXED); }

/* Flags that mpq could have written: no unknown bits, a depth only in an
   RLock. */
static int mpq__mflags_ok(uint32_t f)
{
    return (f & (MPQ__MUTEX_DEPTH1 - 1) & ~(MPQ__MUTEX_FIXED | MPQ__MUTEX_DIED)) == 0 &&
           (f < MPQ__MUTEX_DEPTH1 || (f & MPQ__MUTEX_RECURSIVE));
}

/* A pthread mutex as every mpq lock is: process-shared, robust, and
   error-checking (so an owner's relock is EDEADLK, not a deadlock). */
static int mpq__pmutex_init(pthread_mutex_t *pm)
{
    pthread_mutexattr_t a;
    int rc;
    if ((rc = pthread_mutexattr_init(&a)) != 0) return -rc;
    rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (rc == 0) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (rc == 0) rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    if (rc == 0) rc = pthread_mutex_init(pm, &a);
    pthread_mutexattr_destroy(&a);
    return -rc;
}

/* --- what a pthread mutex in shared memory may hold ----------------------

   A pthread mutex that another process wrote is the libc's to read, and
   libc trusts it: a type word with lock-elision, priority or unknown bits
   sends glibc into SIGILL, assertions or endless loops. So before mpq
   hands one to libc it compares the two words it can judge with a mutex
   that mpq__pmutex_init made in this process (the reference):
     type   the word pthread_mutexattr_* set up (glibc's __kind, musl's
            first int): it never changes after initialisation, so it must
            equal the reference's exactly;
     lock   the futex word: 0, or a holder's thread id (below
            MPQ__TID_MAX) with the kernel's FUTEX_WAITERS and
            FUTEX_OWNER_DIED bits, or libc's "not recoverable" value.
   On glibc, __owner (0, a tid, or the inconsistent / not recoverable
   marks) and __count (0 or 1) are checked too when a mutex is opened.
   The layout is told by the reference: locked by this thread, its lock
   word must hold this thread's id. On a libc whose layout mpq does not
   know (not glibc, and not musl's), nothing is compared. What cannot be
   checked at all: the robust-list pointers a holder keeps in the mutex
   (see "Trust" in >>conventions). */

#define MPQ__TID_MAX 4194304u          /* PID_MAX_LIMIT: every tid is below */
#define MPQ__FUTEX_WAITERS 0x80000000u
#define MPQ__FUTEX_OWNER_DIED 0x40000000u
#define MPQ__FUTEX_TID_MASK 0x3fffffffu

static pthread_once_t mpq__pm_once = PTHREAD_ONCE_INIT;
static uint32_t mpq__pm_ready;    /* 1 once the two below are learned      */
static uint32_t mpq__pm_type;     /* the reference's type word             */
static int mpq__pm_known = -1;    /* word index of the lock; -1: unknown   */

#if defined(__GLIBC__)
#define MPQ__PM_TYPE_WORD (offsetof(pthread_mutex_t, __data.__kind) / 4)
#define MPQ__PM_LOCK_WORD (offsetof(pthread_mutex_t, __data.__lock) / 4)
#elif defined(__linux__) && !defined(__ANDROID__) && !defined(__UCLIBC__)
#define MPQ__PM_TYPE_WORD 0   /* musl: _m_type, _m_lock */
#define MPQ__PM_LOCK_WORD 1
#endif

static uint32_t mpq__pm_word(const pthread_mutex_t *pm, size_t i)
{
    return mpq__load32((const uint32_t *)(const void *)pm + i, MPQ__RELAXED);
}

static void mpq__pm_learn(void)
{
#if defined(MPQ__PM_TYPE_WORD)
    static pthread_mutex_t ref;
    uint32_t tid = (uint32_t)syscall(SYS_gettid), type0;
    if (mpq__pmutex_init(&ref) != 0) return;
    type0 = mpq__pm_word(&ref, MPQ__PM_TYPE_WORD);
    if (mpq__pm_word(&ref, MPQ__PM_LOCK_WORD) == 0 && type0 != 0 && pthread_mutex_lock(&ref) == 0) {
        if ((mpq__pm_word(&ref, MPQ__PM_LOCK_WORD) & MPQ__FUTEX_TID_MASK) == tid &&
            mpq__pm_word(&ref, MPQ__PM_TYPE_WORD) == type0) {
            mpq__pm_type = type0;
            mpq__pm_known = (int)MPQ__PM_LOCK_WORD;
        }
        pthread_mutex_unlock(&ref);
    }
    pthread_mutex_destroy(&ref);
#endif
    mpq__store32(&mpq__pm_ready, 1, MPQ__RELEASE);
}

/* Learns the reference once per process; a load when it is known (every
   lock call comes here). */
static void mpq__pm_need(void)
{
    if (!mpq__load32(&mpq__pm_ready, MPQ__ACQUIRE)) pthread_once(&mpq__pm_once, mpq__pm_learn);
}

/* 0 if the pthread mutex at pm holds a type and lock word that mpq and
   libc could have made, -EINVAL if not. `opening`: the fuller look of
   an open (glibc's owner and count too). */
static int mpq__pmutex_check(const pthread_mutex_t *pm, int opening)
{
    uint32_t lock;
    mpq__pm_need();
    if (mpq__pm_known < 0) return 0;
#if defined(MPQ__PM_TYPE_WORD)
    if (mpq__pm_word(pm, MPQ__PM_TYPE_WORD) != mpq__pm_type) return -EINVAL;
#endif
    lock = mpq__pm_word(pm, (size_t)mpq__pm_known);
    if (lock != 0x7fffffffu && (lock & MPQ__FUTEX_TID_MASK) >= MPQ__TID_MAX) return -EINVAL;
#if defined(__GLIBC__)
    if (opening) {
        uint32_t owner = mpq__pm_word(pm, offsetof(pthread_mutex_t, __data.__owner) / 4);
        uint32_t count = mpq__pm_word(pm, offsetof(pthread_mutex_t, __data.__count) / 4);
        if ((owner >= MPQ__TID_MAX && owner < 0x7ffffffeu) || owner > 0x7fffffffu || count > 1) return -EINVAL;
    }
#else
    (void)opening;
#endif
    return 0;
}

/* The thread id the lock word of pm names (0: none, or unknown layout). */
static uint32_t mpq__pmutex_holder(const pthread_mutex_t *pm)
{
    mpq__pm_need();
    return mpq__pm_known < 0 ? 0 : mpq__pm_word(pm, (size_t)mpq__pm_known) & MPQ__FUTEX_TID_MASK;
}

/* This process's pid namespace as a mutex's flags keep it (MPQ__MUTEX_NS). */
static uint32_t mpq__mutex_ns_tag(void)
{
    uint64_t ns = mpq__pidns();
    return ns ? 1u + (uint32_t)(ns % 31u) : 0u;
}

/* A lock word that names a thread which has exited, unmarked: the kernel
   marks a dead holder's robust lock (FUTEX_OWNER_DIED) as the thread
   exits, but not where it keeps no robust list (qemu-user, a seccomp
   filter that refuses set_robust_list), nor for a list it gave up on, nor
   for a word another process overwrote with a thread id. Left so, the
   lock would wait for ever. A waiter whose slice ran out looks: if the
   named thread has exited, it marks the word as the kernel would (waiters
   bit kept, owner died; musl's own died bit in a word it left
   inconsistent is replaced) and wakes one waiter, so the next locker
   takes the lock with EOWNERDEAD. Returns 1 if it did.
   Only where thread ids mean the same threads: the mutex's flags say in
   which pid namespace it was made (5 bits of its inode), and a caller in
   another never reaps - a holder there would look dead. Tag 0 (made
   where /proc could not tell, or an image from before the tag) counts as
   this namespace, as a segment's unknown namespace does. Compare-and-swap from the word it read, read
   again after the look: a word that changed meanwhile (the kernel's own
   mark, a new holder) is left alone. What it cannot tell: a thread id
   reused by a new thread between that second read and the swap. */
static int mpq__pmutex_reap(mpq_mutex *m)
{
    uint32_t *w, old, tid, tag = (mpq__mflags(m) & MPQ__MUTEX_NS) >> 3;
    mpq__pm_need();
    if (mpq__pm_known < 0 || (tag != 0 && tag != mpq__mutex_ns_tag())) return 0;
    w = (uint32_t *)(void *)&m->pm__ + mpq__pm_known;
    old = mpq__load32(w, MPQ__ACQUIRE);
    tid = old & MPQ__FUTEX_TID_MASK;
    if (tid == 0 || tid >= MPQ__TID_MAX) return 0;
    if (!mpq__pid_exited(tid) || mpq__load32(w, MPQ__ACQUIRE) != old) return 0;
    if (!mpq__cas32(w, &old, (old & MPQ__FUTEX_WAITERS) | MPQ__FUTEX_OWNER_DIED, MPQ__SEQ_CST)) return 0;
    mpq__futex_wake(w, 1);
    return 1;
}

/* The segment header of a mutex mpq_mutex_create made, or NULL. Such a
   mutex sits 64 bytes into a page-aligned mapping, so its header is on
   the same 4 KiB: a flag scribbled onto a mutex of the caller's own
   memory cannot send this read off the mapping. */
static mpq__seg *mpq__mutex_seg(const mpq_mutex *m)
{
    if (!(mpq__mflags(m) & MPQ__MUTEX_IN_SEGMENT) || (uintptr_t)m % 4096 != MPQ__SEG_HDR) return NULL;
    return mpq__seg_of((void *)(uintptr_t)m, MPQ__KIND_MUTEX);
}

/* A mutex mpq initialised, whose pthread part is still one libc can be
   handed (-EINVAL from every call otherwise: never a crash). */
static int mpq__mutex_ok(const mpq_mutex *m)
{
    return m && mpq__load32(&m->magic__, MPQ__ACQUIRE) == MPQ__MUTEX_MAGIC &&
           mpq__pmutex_check(&m->pm__, 0) == 0;
}

/* -EINVAL for a mutex that is not one, -EXDEV for one made in another
   pid namespace (its segment's record, or the tag in its flags, says so:
   its holders' thread ids mean other threads here), else 0. */
static int mpq__mutex_usable(const mpq_mutex *m)
{
    const mpq__seg *h;
    uint32_t tag;
    if (!mpq__mutex_ok(m)) return -EINVAL;
    if ((h = mpq__mutex_seg(m)) != NULL && !mpq__seg_same_pidns(h)) return -EXDEV;
    /* Made in another pid namespace, as its tag tells (0: unknown). */
    tag = (mpq__mflags(m) & MPQ__MUTEX_NS) >> 3;
    if (tag != 0 && mpq__mutex_ns_tag() != 0 && tag != mpq__mutex_ns_tag()) return -EXDEV;
    return 0;
}

/* A dead owner's lock, just taken by this thread: consistent again, its
   RLock depth gone. The caller then holds it (or hands it back with
   `died` set, so the next locker still learns of the death). */
static void mpq__mutex_inherit(mpq_mutex *m, int died)
{
    pthread_mutex_consistent(&m->pm__);
    mpq__store32(&m->flags__, (mpq__mflags(m) & MPQ__MUTEX_FIXED) | (died ? MPQ__MUTEX_DIED : 0),
                 MPQ__RELAXED);
}

/* True if the calling thread holds m. A lock attempt whose deadline has
   passed already tells: the holder gets EDEADLK (errorcheck), anyone else
   ETIMEDOUT, and a free lock is taken (and given back). */
static int mpq__mutex_mine(mpq_mutex *m)
{
    struct timespec past;
    int rc;
    past.tv_sec = 0;
    past.tv_nsec = 0;
    rc = pthread_mutex_timedlock(&m->pm__, &past);
    if (rc == 0 || rc == EOWNERDEAD) {
        if (rc == EOWNERDEAD) mpq__mutex_inherit(m, 1);
        pthread_mutex_unlock(&m->pm__);
    }
    return rc == EDEADLK;
}

/* Maps a pthread lock result to mpq's. An inherited dead owner's lock is
   made consistent at once, so it stays usable by everyone; an RLock's
   owner locking again goes one deeper. */
static int mpq__mutex_result(mpq_mutex *m, int rc)
{
    uint32_t f;
    if (rc == EOWNERDEAD) {
        mpq__mutex_inherit(m, 0);
        return -EOWNERDEAD;
    }
    f = mpq__mflags(m);
    if (rc == 0 && (f & ~MPQ__MUTEX_FIXED)) {
        /* Just taken from pthread: no depth can be ours yet (whatever a
           scribbler wrote), and a death handed on is reported now. */
        mpq__store32(&m->flags__, f & MPQ__MUTEX_FIXED, MPQ__RELAXED);
        if (f & MPQ__MUTEX_DIED) return -EOWNERDEAD;
    }
    if (rc == EDEADLK && (f & MPQ__MUTEX_RECURSIVE)) {
        if (f >= ~(MPQ__MUTEX_DEPTH1 - 1)) return -EAGAIN;  /* 2^24 deep */
        mpq__store32(&m->flags__, f + MPQ__MUTEX_DEPTH1, MPQ__RELAXED);
        return 0;
    }
    return -rc;
}

/* pthread_mutex_trylock, with "this thread holds it" told as EDEADLK
   whatever the libc (glibc says EDEADLK, musl EBUSY) when that matters:
   for an RLock. */
static int mpq__mutex_try(mpq_mutex *m)
{
    int rc = pthread_mutex_trylock(&m->pm__);
    if (rc == EBUSY && (mpq__mflags(m) & MPQ__MUTEX_RECURSIVE) && mpq__mutex_mine(m)) rc = EDEADLK;
    return rc;
}

/* Whether the kernel keeps a robust-futex list for this process, without
   which a dead owner's lock is never marked (it stays held for ever): a
   call with a wrong length changes nothing and fails with EINVAL where the
   list exists, ENOSYS where it does not (qemu-user, a seccomp profile). */
static int mpq__robust_list_ok(void)
{
#if defined(SYS_set_robust_list) && !defined(MPQ_ALLOW_NONROBUST)
    int saved = errno, ok = syscall(SYS_set_robust_list, NULL, (size_t)0) < 0 && errno == EINVAL;
    errno = saved;
    return ok;
#else
    return 1;
#endif
}

static int mpq__mutex_init_flags(mpq_mutex *m, uint32_t flags)
{
    int rc;
    if (!m) return -EINVAL;
    if (!mpq__robust_list_ok()) return -ENOTSUP;
    if ((rc = mpq__pmutex_init(&m->pm__)) != 0) return rc;
    m->flags__ = flags | mpq__mutex_ns_tag() << 3;
    mpq__store32(&m->magic__, MPQ__MUTEX_MAGIC, MPQ__RELEASE);
    return 0;
}

MPQDEF int mpq_mutex_init(mpq_mutex *m) { return mpq__mutex_init_flags(m, 0); }
MPQDEF int mpq_mutex_init_recursive(mpq_mutex *m) { return mpq__mutex_init_flags(m, MPQ__MUTEX_RECURSIVE); }

MPQDEF int mpq_mutex_destroy(mpq_mutex *m)
{
    int rc;
    if (!mpq__mutex_ok(m) || (mpq__mflags(m) & MPQ__MUTEX_IN_SEGMENT)) return -EINVAL;
    rc = pthread_mutex_trylock(&m->pm__);
    if (rc != 0 && rc != EOWNERDEAD) return -EBUSY;
    if (rc == EOWNERDEAD) pthread_mutex_consistent(&m->pm__);
    pthread_mutex_unlock(&m->pm__);
    pthread_mutex_destroy(&m->pm__);
    mpq__store32(&m->magic__, 0, MPQ__RELEASE);
    return 0;
}

MPQDEF int mpq_mutex_trylock(mpq_mutex *m)
{
    int rc;
    if ((rc = mpq__mutex_usable(m)) != 0) return rc;
    rc = mpq__mutex_try(m);
    if (rc == EDEADLK && !(mpq__mflags(m) & MPQ__MUTEX_RECURSIVE)) return -EBUSY;
    return mpq__mutex_result(m, rc);
}

/* Whether a waiter may take back a lock whose word names an exited
   thread (mpq__pmutex_reap): only where the mutex's pid namespace is known
   in full to be the caller's - a mutex of mpq_mutex_create, whose
   segment records it (checked before every call), or one inside mpq's
   own objects, whose callers check theirs (`known`). A mutex of
   mpq_mutex_init in the caller's own memory keeps only a 5-bit tag of
   its namespace; two namespaces share one often enough (one in 31), and
   in another namespace a live holder's thread id names nothing - taking
   its lock would give the lock to two. Such a mutex is taken back only
   where the kernel keeps no robust list at all (MPQ_ALLOW_NONROBUST):
   elsewhere the kernel marks a dead holder's lock itself. */
static int mpq__mutex_may_reap(const mpq_mutex *m, int known)
{
#if defined(MPQ_ALLOW_NONROBUST)
    (void)m;
    (void)known;
    return 1;
#else
    return known || mpq__mutex_seg(m) != NULL;
#endif
}

/* The blocking part of a lock: one slice at a time until the deadline;
   `reap`: see mpq__mutex_may_reap. */
static int mpq__mutex_wait(mpq_mutex *m, int timeout_ms, int reap)
{
    int64_t deadline = mpq__deadline(timeout_ms), slice_end;
    struct timespec ts;
    int rc;
    for (;;) {
        /* Overwritten while we waited: not handed to libc again. */
        if (mpq__pmutex_check(&m->pm__, 0) != 0) return -EINVAL;
        /* One slice, or less when the caller's deadline is nearer. */
        slice_end = mpq__now_ns() + (int64_t)MPQ__LOCK_SLICE_MS * 1000000;
        if (deadline >= 0 && deadline < slice_end) slice_end = deadline;
#if defined(MPQ__HAVE_CLOCKLOCK)
        ts = mpq__timespec(slice_end);
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
        /* A holder gone unmarked: taken back, then tried once more, so
           that a timeout of one slice or less gets it too. */
        if (reap && mpq__pmutex_reap(m)) {
            rc = mpq__mutex_try(m);
            if (rc != EBUSY && (rc != EDEADLK || (mpq__mflags(m) & MPQ__MUTEX_RECURSIVE)))
                return mpq__mutex_result(m, rc);
        }
        if (deadline >= 0 && mpq__now_ns() >= deadline) return -ETIMEDOUT;
    }
}

/* mpq_mutex_timedlock; `known`: the caller checked that the mutex is
   of its pid namespace (see mpq__mutex_may_reap). */
static int mpq__mutex_timedlock(mpq_mutex *m, int timeout_ms, int known)
{
    int rc;
    if ((rc = mpq__mutex_usable(m)) != 0) return rc;
    rc = mpq__mutex_try(m);
    if (rc == EDEADLK && !(mpq__mflags(m) & MPQ__MUTEX_RECURSIVE)) rc = EBUSY;
    if (rc != EBUSY) return mpq__mutex_result(m, rc);
    if (timeout_ms == 0) return -EAGAIN;
    return mpq__mutex_wait(m, timeout_ms, mpq__mutex_may_reap(m, known));
}

/* mpq_mutex_lock, `known` as above. */
static int mpq__mutex_lock(mpq_mutex *m, int known)
{
    int rc;
    if ((rc = mpq__mutex_usable(m)) != 0) return rc;
    rc = mpq__mutex_try(m);
    if (rc != EBUSY && (rc != EDEADLK || (mpq__mflags(m) & MPQ__MUTEX_RECURSIVE)))
        return mpq__mutex_result(m, rc);
    return mpq__mutex_wait(m, -1, mpq__mutex_may_reap(m, known));
}

MPQDEF int mpq_mutex_timedlock(mpq_mutex *m, int timeout_ms) { return mpq__mutex_timedlock(m, timeout_ms, 0); }

MPQDEF int mpq_mutex_lock(mpq_mutex *m) { return mpq__mutex_lock(m, 0); }

MPQDEF int mpq_mutex_unlock(mpq_mutex *m)
{
    uint32_t f;
    if (!mpq__mutex_ok(m)) return -EINVAL;   /* its locker passed the namespace check */
    f = mpq__mflags(m);
    if ((f & MPQ__MUTEX_RECURSIVE) && f >= MPQ__MUTEX_DEPTH1) {
        /* Only the owner writes the depth, so it is only the owner's
           to lower; anyone else's view of it may be stale. */
        if (!mpq__mutex_mine(m)) return -EPERM;
        mpq__store32(&m->flags__, f - MPQ__MUTEX_DEPTH1, MPQ__RELAXED);
        return 0;
    }
    return -pthread_mutex_unlock(&m->pm__);
}

MPQDEF int mpq_mutex_locked(mpq_mutex *m)
{
    int rc;
    if (!m) return -EINVAL;   /* said again: gcc 12 -O2, inlining a NULL call, lost it */
    if ((rc = mpq__mutex_usable(m)) != 0) return rc;
    rc = pthread_mutex_trylock(&m->pm__);
    if (rc == 0 || rc == EOWNERDEAD) {
        if (rc == EOWNERDEAD) mpq__mutex_inherit(m, 1);
        pthread_mutex_unlock(&m->pm__);
        return 0;
    }
    return rc == EBUSY || rc == EDEADLK ? 1 : -rc;
}

MPQDEF int mpq_mutex_create(mpq_mutex **out, const mpq_mutex_config *cfg)
{
    static const mpq_mutex_config defaults = { NULL, 0, 0 };
    mpq_mutex *m;
    void *base;
    size_t len;
    int rc;
    if (!out) return -EINVAL;
    if (!cfg) cfg = &defaults;
    rc = mpq__seg_create(MPQ__KIND_MUTEX, sizeof(mpq_mutex), cfg->name, cfg->mode, 0,
                         &base, &len, NULL);
    if (rc != 0) return rc;
    m = (mpq_mutex *)(void *)((char *)base + MPQ__SEG_HDR);
    rc = mpq__mutex_init_flags(m, MPQ__MUTEX_IN_SEGMENT | (cfg->recursive ? MPQ__MUTEX_RECURSIVE : 0));
    if ((rc = mpq__seg_finish(base, len, cfg->name, rc)) == 0) *out = m;
    return rc;
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
    m = (mpq_mutex *)(void *)((char *)base + MPQ__SEG_HDR);
    /* The mapping's length too: close unmaps the length a mutex has. */
    if (obj != sizeof(mpq_mutex) || len != mpq__seg_length(sizeof(mpq_mutex)) || !mpq__mutex_ok(m) ||
        !(mpq__mflags(m) & MPQ__MUTEX_IN_SEGMENT) || !mpq__mflags_ok(mpq__mflags(m)) ||
        mpq__pmutex_check(&m->pm__, 1) != 0) {
        munmap(base, len);
        return -EINVAL;
    }
    if ((rc = mpq__mutex_usable(m)) != 0) {   /* its tag names another pid namespace */
        munmap(base, len);
        return rc;
    }
    *out = m;
    return 0;
}

MPQDEF int mpq_mutex_close(mpq_mutex *m)
{
    mpq__seg *h;
    size_t len = mpq__seg_length(sizeof(mpq_mutex));
    if (!m || mpq__load32(&m->magic__, MPQ__ACQUIRE) != MPQ__MUTEX_MAGIC ||
        !(mpq__mflags(m) & MPQ__MUTEX_IN_SEGMENT))
        return -EINVAL;
    if (!(h = mpq__mutex_seg(m))) return -EINVAL;
    if (h->total_size != (uint64_t)len) return -EINVAL;   /* overwritten: not ours to unmap */
    /* Unmapped while held, the lock would be out of the kernel's reach
       when this thread dies: nobody would ever get it again. A lock whose
       pthread part was overwritten is not handed to libc to ask: its lock
       word tells whether it names this thread. */
    if (mpq__pmutex_check(&m->pm__, 0) == 0 ? mpq__mutex_mine(m)
                                             : mpq__pmutex_holder(&m->pm__) == (uint32_t)syscall(SYS_gettid))
        return -EBUSY;
    munmap(h, len);
    return 0;
}

/* ========================================================================
   >>sync  event, semaphore, condition, barrier
   ========================================================================

   Each object is a segment of its own (kinds EVENT, SEM, COND, BARRIER)
   behind a process-local handle that knows the mapping, so nothing read
   from shared memory ever decides what gets unmapped.

   Waiting is the queue's: eventcounts (bit 0: somebody sleeps), and no
   sleep longer than MPQ_SYNC_SLICE_MS, so a process that dies between its
   change and its wake-up costs the sleepers at most a slice.

   Who is alive. Condition and barrier waiters each hold a robust pthread
   mutex of their own, `live`, in a table entry they claimed, for as long
   as they wait: the kernel marks it owner-died when their thread dies, so
   anyone can tell a dead waiter from a live one with one trylock (EBUSY:
   alive; EOWNERDEAD: dead, and the entry is now the asker's to clean).
   That is exact, costs no system call, and is not fooled by pid reuse.
   Undo semaphores need a process's holdings to outlive its threads, so
   they record pid and start time instead (as the queue does). */

enum { MPQ__W_FREE = 0, MPQ__W_WAITING = 1, MPQ__W_NOTIFIED = 2, MPQ__W_LEAVING = 3 };

/* An entry's state word: (generation:30 | MPQ__W_*:2). Its holder bumps
   the generation with every state it stores, so a notifier's CAS from the
   exact word it saw can never hit a later waiter in the same entry. */
static uint32_t mpq__wst(uint32_t v) { return v & 3u; }
static uint32_t mpq__wnext(uint32_t v, uint32_t st) { return ((v >> 2) + 1u) << 2 | st; }

/* A table entry of a waiter: see "who is alive" above. */
typedef struct mpq__waiter {
    uint64_t        ticket;   /* condition: order of arrival             */
    uint32_t        state;    /* see mpq__wst; a condition waiter sleeps here */
    uint32_t        gen;      /* barrier: the round it waits in          */
    pthread_mutex_t live;     /* held by the waiting thread              */
} mpq__waiter;

/* Takes entry w's `live` if nobody alive holds it: MPQ__GRAB_BUSY (a live
   thread holds it: nothing taken), MPQ__GRAB_FREE (it was free: now ours),
   MPQ__GRAB_DEAD (its holder died: now ours, consistent again). *state
   gets the entry's state (MPQ__W_*). The caller ends with
   mpq__waiter_leave. */
enum { MPQ__GRAB_BUSY = 0, MPQ__GRAB_FREE = 1, MPQ__GRAB_DEAD = 2 };
static int mpq__waiter_grab(mpq__waiter *w, uint32_t *state)
{
    int rc;
    if (mpq__pmutex_check(&w->live, 0) != 0) return MPQ__GRAB_BUSY;   /* overwritten: never libc's */
    rc = pthread_mutex_trylock(&w->live);
    if (rc != 0 && rc != EOWNERDEAD) return MPQ__GRAB_BUSY;   /* EBUSY: alive */
    if (rc == EOWNERDEAD) pthread_mutex_consistent(&w->live);
    *state = mpq__wst(mpq__load32(&w->state, MPQ__ACQUIRE));
    return rc == EOWNERDEAD ? MPQ__GRAB_DEAD : MPQ__GRAB_FREE;
}

/* Claims an entry of table w[0..n-1]: a free one, or one whose holder
   died (*died_state then gets the state it left; else MPQ__W_FREE). The
   entry keeps that state until the caller changes it, so a claimer that
   dies in turn leaves it to the next. *hi is raised past it, so scans can
   stop at *hi. A scan can find an entry busy only because somebody checks
   it for a moment, so a full table is looked at three times. Returns the
   entry, or NULL if every one is held. */
static mpq__waiter *mpq__waiter_claim(mpq__waiter *w, uint32_t n, uint32_t *hi, uint32_t *died_state)
{
    uint32_t i, h, round, st;
    for (round = 0; round < 3; round++)
        for (i = 0; i < n; i++) {
            int g = mpq__waiter_grab(&w[i], &st);
            if (g == MPQ__GRAB_BUSY) continue;
            *died_state = g == MPQ__GRAB_DEAD ? st : (uint32_t)MPQ__W_FREE;
            h = mpq__load32(hi, MPQ__RELAXED);
            while (h < i + 1 && !mpq__cas32(hi, &h, i + 1, MPQ__RELAXED)) {}
            return &w[i];
        }
    return NULL;
}

/* Gives a claimed (or grabbed) entry back. */
static void mpq__waiter_leave(mpq__waiter *w)
{
    mpq__store32(&w->state, mpq__wnext(mpq__load32(&w->state, MPQ__RELAXED), MPQ__W_FREE), MPQ__RELEASE);
    if (mpq__pmutex_check(&w->live, 0) == 0) pthread_mutex_unlock(&w->live);
}

static int mpq__waiters_init(mpq__waiter *w, uint32_t n)
{
    uint32_t i;
    int rc;
    for (i = 0; i < n; i++)
        if ((rc = mpq__pmutex_init(&w[i].live)) != 0) return rc;
    return 0;
}

/* --- the handle and its segment ---------------------------------------- */

typedef struct mpq__obj {
    void  *base;    /* the mapping, segment header first */
    size_t len;
    void  *s;       /* the object after the header       */
    size_t size;    /* its size                          */
} mpq__obj;

/* -EXDEV if this process is not in the pid namespace that made object
   handle h's segment (a fork into a new one inherited it), else 0: its
   robust locks and dead-waiter checks go by pids and thread ids. */
static int mpq__obj_pidns(const void *h)
{
    return mpq__seg_same_pidns((const mpq__seg *)((const mpq__obj *)h)->base) ? 0 : -EXDEV;
}

/* Maps a new segment for an object of `size` bytes (zeroed) behind a new
   handle of hsize bytes (an mpq__obj first). The caller initialises the
   object, then ends with mpq__obj_finish. */
static int mpq__obj_create(void **out, size_t hsize, int kind, size_t size, const char *name, int mode)
{
    mpq__obj *o;
    int rc;
    if (!out) return -EINVAL;
    if (!(o = (mpq__obj *)MPQ_MALLOC(hsize))) return -ENOMEM;
    memset(o, 0, hsize);
    rc = mpq__seg_create(kind, size, name, mode, 0, &o->base, &o->len, NULL);
    if (rc != 0) {
        MPQ_FREE(o);
        return rc;
    }
    o->s = (char *)o->base + MPQ__SEG_HDR;
    o->size = size;
    *out = o;
    return 0;
}

static int mpq__obj_finish(void **out, const char *name, int rc)
{
    mpq__obj *o = (mpq__obj *)*out;
    rc = mpq__seg_finish(o->base, o->len, name, rc);
    if (rc != 0) {
        MPQ_FREE(o);
        *out = NULL;
    }
    return rc;
}

/* Opens a named object; `valid` checks the object (its size is known to
   be at least min) and returns 0 or -EINVAL. */
static int mpq__obj_open(void **out, size_t hsize, int kind, const char *name, size_t min,
                         int (*valid)(const void *s, size_t size))
{
    mpq__obj *o;
    int rc;
    if (!out) return -EINVAL;
    if (!(o = (mpq__obj *)MPQ_MALLOC(hsize))) return -ENOMEM;
    memset(o, 0, hsize);
    rc = mpq__seg_open(name, kind, &o->base, &o->len, &o->size);
    if (rc == 0) {
        o->s = (char *)o->base + MPQ__SEG_HDR;
        if (o->size < min || valid(o->s, o->size) != 0) {
            munmap(o->base, o->len);
            rc = -EINVAL;
        }
    }
    if (rc != 0) MPQ_FREE(o);
    else *out = o;
    return rc;
}

static int mpq__obj_close(void *h)
{
    mpq__obj *o = (mpq__obj *)h;
    if (!o) return -EINVAL;
    munmap(o->base, o->len);
    MPQ_FREE(o);
    return 0;
}

/* --- event ---------------------------------------------------------------- */

#define MPQ__EVENT_MAGIC 0x5645504dU  /* "MPEV" */

typedef struct mpq__event_s {
    uint32_t magic;
    uint32_t flag;   /* 1: set */
    uint32_t ec;     /* waiters sleep here */
    uint32_t pad;
} mpq__event_s;

struct mpq_event { mpq__obj o; mpq__event_s *s; };

static int mpq__event_valid(const void *s, size_t size)
{
    const mpq__event_s *e = (const mpq__event_s *)s;
    (void)size;
    return e->magic == MPQ__EVENT_MAGIC && e->flag <= 1 ? 0 : -EINVAL;
}

MPQDEF int mpq_event_create(mpq_event **out, const mpq_event_config *cfg)
{
    static const mpq_event_config defaults = { NULL, 0 };
    int rc;
    if (!cfg) cfg = &defaults;
    rc = mpq__obj_create((void **)out, sizeof(mpq_event), MPQ__KIND_EVENT, sizeof(mpq__event_s),
                         cfg->name, cfg->mode);
    if (rc != 0) return rc;
    (*out)->s = (mpq__event_s *)(*out)->o.s;
    (*out)->s->magic = MPQ__EVENT_MAGIC;
    return mpq__obj_finish((void **)out, cfg->name, 0);
}

MPQDEF int mpq_event_open(mpq_event **out, const char *name)
{
    int rc = mpq__obj_open((void **)out, sizeof(mpq_event), MPQ__KIND_EVENT, name,
                           sizeof(mpq__event_s), mpq__event_valid);
    if (rc == 0) (*out)->s = (mpq__event_s *)(*out)->o.s;
    return rc;
}

MPQDEF int mpq_event_close(mpq_event *e) { return mpq__obj_close(e); }

MPQDEF int mpq_event_set(mpq_event *e)
{
    if (!e) return -EINVAL;
    mpq__store32(&e->s->flag, 1, MPQ__SEQ_CST);
    mpq__ec_signal(&e->s->ec);
    return 0;
}

MPQDEF int mpq_event_clear(mpq_event *e)
{
    if (!e) return -EINVAL;
    mpq__store32(&e->s->flag, 0, MPQ__SEQ_CST);
    return 0;
}

MPQDEF int mpq_event_is_set(const mpq_event *e)
{
    if (!e) return -EINVAL;
    return mpq__load32(&e->s->flag, MPQ__ACQUIRE) != 0;
}

MPQDEF int mpq_event_wait(mpq_event *e, int timeout_ms)
{
    if (!e) return -EINVAL;
    return mpq__ec_await(&e->s->flag, 1, &e->s->ec, timeout_ms, mpq__deadline(timeout_ms));
}

/* --- semaphore -------------------------------------------------------------

   Without undo the count is one word, and its top bit says "somebody
   sleeps" (an eventcount folded in, as sem_t does): acquire is a CAS down
   from a positive value, release a CAS up (below the bound) that clears
   the bit, and wakes the sleepers only if it was set - no other word is
   touched on the fast paths. Sleepers wait on the count word itself.

   With undo every change happens under `lock` (an mpq_mutex), and the
   holder table says how many permits each process holds. A change writes
   a journal first - the table entry and count as they were - and clears
   it last; whoever inherits the lock from a process that died inside
   (-EOWNERDEAD) rolls a journal it finds back, so the count and the table
   always agree. A waiter whose slice runs out with no permit free gives
   back the permits of dead holders (a pidfd, or a start time that no
   longer matches, says dead). */

#define MPQ__SEM_MAGIC 0x4d45534dU  /* "MSEM" */
#define MPQ__SEM_BOUNDED 1u
#define MPQ__SEM_UNDO    2u
#define MPQ__SEM_SLEEPERS 0x80000000u   /* in a plain semaphore's count */

typedef struct mpq__sem_holder {
    uint32_t pid;     /* 0: free */
    uint32_t held;
    uint64_t start;   /* the process's start time, 0 if unknown */
} mpq__sem_holder;

typedef struct mpq__sem_s {
    uint32_t magic, flags;
    uint32_t bound;      /* the highest value a release may reach */
    uint32_t nholders;   /* undo: table entries                   */
    uint32_t count;      /* free permits (plain: | MPQ__SEM_SLEEPERS) */
    uint32_t ec;         /* undo: acquirers sleep here            */
    /* undo: the journal (valid != 0: entry `slot` and `count` are being
       changed; their old values follow) */
    uint32_t j_valid, j_slot, j_count, j_pad;
    mpq__sem_holder j_old;
    uint64_t reclaimed;  /* undo: when dead holders were last looked for
                            (monotonic ns)                            */
    mpq_mutex lock;
    /* then nholders mpq__sem_holder */
} mpq__sem_s;

/* The handle keeps what was validated: a scribbler changing the shared
   sizes or mode later cannot send mpq outside the mapping. */
struct mpq_sem { mpq__obj o; mpq__sem_s *s; uint32_t n, flags, bound; };

static mpq__sem_holder *mpq__sem_holders(mpq__sem_s *s)
{
    return (mpq__sem_holder *)(void *)((char *)s + ((sizeof(mpq__sem_s) + 15) & ~(size_t)15));
}

static size_t mpq__sem_size(uint32_t nholders)
{
    return ((sizeof(mpq__sem_s) + 15) & ~(size_t)15) + (size_t)nholders * sizeof(mpq__sem_holder);
}

static int mpq__sem_valid(const void *p, size_t size)
{
    const mpq__sem_s *s = (const mpq__sem_s *)p;
    if (s->magic != MPQ__SEM_MAGIC || (s->flags & ~3u) || s->bound > MPQ_SEM_MAX) return -EINVAL;
    if ((s->count & ~MPQ__SEM_SLEEPERS) > s->bound || s->nholders > 65536) return -EINVAL;
    if ((s->flags & MPQ__SEM_UNDO) && (s->nholders == 0 || size < mpq__sem_size(s->nholders) ||
                                        s->lock.magic__ != MPQ__MUTEX_MAGIC))
        return -EINVAL;
    return 0;
}

static void mpq__sem_bind(mpq_sem *h)
{
    h->s = (mpq__sem_s *)h->o.s;
    h->n = h->s->nholders;
    h->flags = h->s->flags;
    h->bound = h->s->bound;
}

MPQDEF int mpq_sem_create(mpq_sem **out, unsigned value, const mpq_sem_config *cfg)
{
    static const mpq_sem_config defaults = { NULL, 0, 0, 0, 0 };
    uint32_t n;
    mpq__sem_s *s;
    int rc;
    if (!cfg) cfg = &defaults;
    n = cfg->undo ? (cfg->max_holders ? cfg->max_holders : 64) : 0;
    if (value > MPQ_SEM_MAX || cfg->max_holders > 65536) return -EINVAL;
    rc = mpq__obj_create((void **)out, sizeof(mpq_sem), MPQ__KIND_SEM, mpq__sem_size(n), cfg->name, cfg->mode);
    if (rc != 0) return rc;
    s = (*out)->s = (mpq__sem_s *)(*out)->o.s;
    s->magic = MPQ__SEM_MAGIC;
    s->flags = (cfg->bounded ? MPQ__SEM_BOUNDED : 0) | (cfg->undo ? MPQ__SEM_UNDO : 0);
    s->bound = cfg->bounded ? value : MPQ_SEM_MAX;
    s->nholders = n;
    s->count = value;
    rc = cfg->undo ? mpq_mutex_init(&s->lock) : 0;
    mpq__sem_bind(*out);
    return mpq__obj_finish((void **)out, cfg->name, rc);
}

MPQDEF int mpq_sem_open(mpq_sem **out, const char *name)
{
    int rc = mpq__obj_open((void **)out, sizeof(mpq_sem), MPQ__KIND_SEM, name,
                           sizeof(mpq__sem_s), mpq__sem_valid);
    if (rc == 0) mpq__sem_bind(*out);
    return rc;
}

MPQDEF int mpq_sem_close(mpq_sem *s) { return mpq__obj_close(s); }

/* Journal entry i (or none: i == nholders) before changing it and count. */
static void mpq__sem_log(mpq__sem_s *s, uint32_t n, uint32_t i)
{
    mpq__sem_holder *h = mpq__sem_holders(s);
    mpq__store32(&s->j_slot, i, MPQ__RELEASE);
    mpq__store32(&s->j_count, mpq__load32(&s->count, MPQ__RELAXED), MPQ__RELEASE);
    if (i < n) {
        mpq__store32(&s->j_old.pid, h[i].pid, MPQ__RELEASE);
        mpq__store32(&s->j_old.held, h[i].held, MPQ__RELEASE);
        mpq__store64(&s->j_old.start, h[i].start, MPQ__RELEASE);
    }
    mpq__store32(&s->j_valid, 1, MPQ__RELEASE);
}

static void mpq__sem_unlog(mpq__sem_s *s) { mpq__store32(&s->j_valid, 0, MPQ__RELEASE); }

/* Locks an undo semaphore, waiting until `deadline` (but for a try, up to
   a millisecond: the lock is only ever held for a few stores, or a look at
   /proc for dead holders), and rolls back what a holder that died inside
   left half done. Returns 0, -ETIMEDOUT (-EAGAIN for a try), or another
   error of the lock. */
static int mpq__sem_lock(mpq__sem_s *s, uint32_t n, int64_t deadline)
{
    int ms = deadline < 0 ? -1 : mpq__remaining_ms(deadline), rc;
    rc = mpq__mutex_timedlock(&s->lock, ms == 0 ? 1 : ms, 1);   /* its caller checked the namespace */
    if (rc == -ETIMEDOUT && ms == 0) return -EAGAIN;
    if (rc != -EOWNERDEAD) return rc;
    if (s->j_valid) {
        if (s->j_slot < n) {
            mpq__sem_holder *h = mpq__sem_holders(s) + s->j_slot;
            mpq__store32(&h->pid, s->j_old.pid, MPQ__RELEASE);
            mpq__store32(&h->held, s->j_old.held, MPQ__RELEASE);
            mpq__store64(&h->start, s->j_old.start, MPQ__RELEASE);
        }
        mpq__store32(&s->count, s->j_count, MPQ__RELEASE);
        mpq__sem_unlog(s);
    }
    return 0;
}

/* The holder entry of process (pid, start), or with `claim` a free one
   for it; nholders if there is none. Under the lock. */
static uint32_t mpq__sem_find(mpq__sem_s *s, uint32_t n, uint32_t pid, uint64_t start, int claim)
{
    mpq__sem_holder *h = mpq__sem_holders(s);
    uint32_t i, k, free_i = n;
    for (k = 0; k < n; k++) {
        i = (pid + k) % n;
        if (h[i].pid == pid && h[i].start == start) return i;
        if (h[i].pid == 0 && free_i == n) free_i = i;
    }
    return claim ? free_i : n;
}

/* Gives back the permits of holders that have died. Under the lock.
   Returns how many permits came back. */
static uint32_t mpq__sem_reclaim(mpq__sem_s *s, uint32_t n, uint32_t bound)
{
    mpq__sem_holder *h = mpq__sem_holders(s);
    uint32_t i, back = 0;
    for (i = 0; i < n; i++) {
        uint32_t pid = h[i].pid, c;
        uint64_t now;
        if (pid == 0) continue;
        if (!mpq__pid_exited(pid)) {
            now = mpq__proc_start(pid);
            if (now == 0 || h[i].start == 0 || now == h[i].start) continue;
        }
        mpq__sem_log(s, n, i);
        c = mpq__load32(&s->count, MPQ__RELAXED) + h[i].held;
        back += h[i].held;
        mpq__store32(&s->count, c > bound ? bound : c, MPQ__SEQ_CST);
        mpq__store32(&h[i].held, 0, MPQ__RELEASE);
        mpq__store32(&h[i].pid, 0, MPQ__RELEASE);
        mpq__sem_unlog(s);
    }
    return back;
}

/* Whether it is time to look for dead holders again: at most once a
   slice, by whichever acquirer finds no permit first. */
static int mpq__sem_due(mpq__sem_s *s)
{
    uint64_t now = (uint64_t)mpq__now_ns(), last = mpq__load64(&s->reclaimed, MPQ__RELAXED);
    return now - last >= (uint64_t)MPQ_SYNC_SLICE_MS * 1000000 &&
           mpq__cas64(&s->reclaimed, &last, now, MPQ__RELAXED);
}

/* One try of an undo acquire: 0, -EAGAIN (none free), -ENOSPC, or the
   errors of mpq__sem_lock. */
static int mpq__sem_take_undo(const mpq_sem *sem, int64_t deadline)
{
    mpq__sem_s *s = sem->s;
    uint32_t n = sem->n, back = 0;
    uint64_t start;
    uint32_t me = mpq__self(&start), i, c;
    mpq__sem_holder *h;
    int rc;
    if ((rc = mpq__sem_lock(s, n, deadline)) != 0) return rc;
    rc = -EAGAIN;
    c = mpq__load32(&s->count, MPQ__RELAXED);
    if (c == 0 && mpq__sem_due(s)) {
        back = mpq__sem_reclaim(s, n, sem->bound);
        c = mpq__load32(&s->count, MPQ__RELAXED);
    }
    if (c > 0) {
        i = mpq__sem_find(s, n, me, start, 1);
        if (i == n) {   /* the table is full: are all its holders alive? */
            back += mpq__sem_reclaim(s, n, sem->bound);
            c = mpq__load32(&s->count, MPQ__RELAXED);
            i = mpq__sem_find(s, n, me, start, 1);
        }
        if (i == n) {
            rc = -ENOSPC;
        } else {
            h = mpq__sem_holders(s) + i;
            mpq__sem_log(s, n, i);
            mpq__store32(&h->pid, me, MPQ__RELEASE);
            mpq__store64(&h->start, start, MPQ__RELEASE);
            mpq__store32(&h->held, h->held + 1, MPQ__RELEASE);
            mpq__store32(&s->count, c - 1, MPQ__RELEASE);
            mpq__sem_unlog(s);
            rc = 0;
        }
    }
    mpq_mutex_unlock(&s->lock);
    if (back > 1) mpq__ec_signal(&s->ec);   /* permits for the other sleepers too */
    return rc;
}

MPQDEF int mpq_sem_acquire(mpq_sem *sem, int timeout_ms)
{
    int64_t deadline;
    mpq__sem_s *s;
    uint32_t c, key;
    int rc, spun = 0;
    if (!sem) return -EINVAL;
    if ((rc = mpq__obj_pidns(sem)) != 0) return rc;
    s = sem->s;
    if (!(sem->flags & MPQ__SEM_UNDO)) {
        c = mpq__load32(&s->count, MPQ__RELAXED);
        while (c & ~MPQ__SEM_SLEEPERS)
            if (mpq__cas32(&s->count, &c, c - 1, MPQ__ACQUIRE)) return 0;
        if (timeout_ms == 0) return -EAGAIN;
        deadline = mpq__deadline(timeout_ms);
        for (;;) {
            int64_t now, until;
            c = mpq__load32(&s->count, MPQ__RELAXED);
            while (c & ~MPQ__SEM_SLEEPERS)
                if (mpq__cas32(&s->count, &c, c - 1, MPQ__ACQUIRE)) return 0;
            if (!spun++ && mpq__spin32(&s->count, c)) continue;
            /* The deadline before any retry: a count others keep changing
               must not keep us here. */
            now = mpq__now_ns();
            if (deadline >= 0 && now >= deadline) return -ETIMEDOUT;
            /* Say we sleep (the bit), then sleep while the word says so:
               a release clears the bit and wakes, and no sleep outlasts a
               slice. */
            if (!(c & MPQ__SEM_SLEEPERS) && !mpq__cas32(&s->count, &c, c | MPQ__SEM_SLEEPERS, MPQ__SEQ_CST))
                continue;
            until = now + (int64_t)MPQ_SYNC_SLICE_MS * 1000000;
            if (deadline >= 0 && deadline < until) until = deadline;
            mpq__futex_wait(&s->count, MPQ__SEM_SLEEPERS, until);
        }
    }
    deadline = mpq__deadline(timeout_ms);
    for (;;) {
        if ((rc = mpq__sem_take_undo(sem, deadline)) != -EAGAIN) return rc;
        if (timeout_ms == 0) return -EAGAIN;
        if (!spun++ && mpq__spin32(&s->count, 0)) continue;
        key = mpq__ec_prepare(&s->ec);
        if (mpq__load32(&s->count, MPQ__SEQ_CST) > 0) continue;
        /* A slice without a release brings us back to look for dead
           holders (mpq__sem_due). */
        if (mpq__ec_sleep(&s->ec, key, deadline) == -ETIMEDOUT) return -ETIMEDOUT;
    }
}

MPQDEF int mpq_sem_release(mpq_sem *sem)
{
    mpq__sem_s *s;
    uint32_t c;
    if (!sem) return -EINVAL;
    if (mpq__obj_pidns(sem) != 0) return -EXDEV;
    s = sem->s;
    if (sem->flags & MPQ__SEM_UNDO) {
        uint64_t start;
        uint32_t me = mpq__self(&start), i;
        int rc = mpq__sem_lock(s, sem->n, -1);
        if (rc != 0) return rc;
        c = mpq__load32(&s->count, MPQ__RELAXED);
        if (c >= sem->bound) {
            rc = -EOVERFLOW;
        } else {
            mpq__sem_holder *h;
            i = mpq__sem_find(s, sem->n, me, start, 0);
            mpq__sem_log(s, sem->n, i);
            h = i < sem->n ? mpq__sem_holders(s) + i : NULL;
            if (h && h->held > 1) mpq__store32(&h->held, h->held - 1, MPQ__RELEASE);
            else if (h) {
                mpq__store32(&h->held, 0, MPQ__RELEASE);
                mpq__store32(&h->pid, 0, MPQ__RELEASE);
            }
            mpq__store32(&s->count, c + 1, MPQ__SEQ_CST);   /* before ec_signal's load */
            mpq__sem_unlog(s);
        }
        mpq_mutex_unlock(&s->lock);
        if (rc != 0) return rc;
        mpq__ec_signal(&s->ec);
        return 0;
    }
    c = mpq__load32(&s->count, MPQ__RELAXED);
    do {
        if ((c & ~MPQ__SEM_SLEEPERS) >= sem->bound) return -EOVERFLOW;
    } while (!mpq__cas32(&s->count, &c, (c & ~MPQ__SEM_SLEEPERS) + 1, MPQ__RELEASE));
    if (c & MPQ__SEM_SLEEPERS) mpq__futex_wake(&s->count, INT_MAX);
    return 0;
}

MPQDEF int mpq_sem_value(const mpq_sem *sem)
{
    if (!sem) return -EINVAL;
    return (int)(mpq__load32(&sem->s->count, MPQ__ACQUIRE) & ~MPQ__SEM_SLEEPERS);
}

/* --- condition ---------------------------------------------------------------

   A table of waiter entries (see "who is alive"). A waiter claims an entry,
   takes a ticket, marks it WAITING, and only then unlocks the user's
   mutex, so a notify made after that unlock sees it. It sleeps on its own
   entry's state word until a notifier moves it WAITING -> NOTIFIED (one
   CAS: a notification goes to exactly one waiter, and a waiter that timed
   out - WAITING -> LEAVING - can no longer get one). notify picks the
   oldest WAITING entries whose ticket predates the call, checking each
   with a trylock of `live` first, so a dead waiter is skipped (and its
   entry freed) rather than notified. A waiter whose slice runs out looks
   for NOTIFIED entries whose thread died before taking the notification,
   and passes each such notification on. */

#define MPQ__COND_MAGIC 0x4e4f434dU  /* "MCON" */

typedef struct mpq__cond_s {
    uint32_t magic, nw;
    uint32_t hi;       /* entries [hi, nw) have never been used */
    uint32_t pad;
    uint64_t next;     /* the next ticket */
    /* then nw mpq__waiter */
} mpq__cond_s;

struct mpq_cond { mpq__obj o; mpq__cond_s *s; mpq__waiter *w; uint32_t nw; };

static size_t mpq__cond_size(uint32_t nw)
{
    return ((sizeof(mpq__cond_s) + 15) & ~(size_t)15) + (size_t)nw * sizeof(mpq__waiter);
}

static mpq__waiter *mpq__cond_w(mpq__cond_s *s)
{
    return (mpq__waiter *)(void *)((char *)s + ((sizeof(mpq__cond_s) + 15) & ~(size_t)15));
}

static int mpq__cond_valid(const void *p, size_t size)
{
    const mpq__cond_s *s = (const mpq__cond_s *)p;
    if (s->magic != MPQ__COND_MAGIC || s->nw == 0 || s->nw > 65536 || s->hi > s->nw) return -EINVAL;
    return size >= mpq__cond_size(s->nw) ? 0 : -EINVAL;
}

static void mpq__cond_bind(mpq_cond *c)
{
    c->s = (mpq__cond_s *)c->o.s;
    c->w = mpq__cond_w(c->s);
    c->nw = c->s->nw;
}

MPQDEF int mpq_cond_create(mpq_cond **out, const mpq_cond_config *cfg)
{
    static const mpq_cond_config defaults = { NULL, 0, 0 };
    uint32_t n;
    int rc;
    if (!cfg) cfg = &defaults;
    n = cfg->max_waiters ? cfg->max_waiters : 128;
    if (n > 65536) return -EINVAL;
    rc = mpq__obj_create((void **)out, sizeof(mpq_cond), MPQ__KIND_COND, mpq__cond_size(n), cfg->name, cfg->mode);
    if (rc != 0) return rc;
    ((mpq__cond_s *)(*out)->o.s)->magic = MPQ__COND_MAGIC;
    ((mpq__cond_s *)(*out)->o.s)->nw = n;
    mpq__cond_bind(*out);
    rc = mpq__waiters_init((*out)->w, n);
    return mpq__obj_finish((void **)out, cfg->name, rc);
}

MPQDEF int mpq_cond_open(mpq_cond **out, const char *name)
{
    int rc = mpq__obj_open((void **)out, sizeof(mpq_cond), MPQ__KIND_COND, name,
                           sizeof(mpq__cond_s), mpq__cond_valid);
    if (rc == 0) mpq__cond_bind(*out);
    return rc;
}

MPQDEF int mpq_cond_close(mpq_cond *c) { return mpq__obj_close(c); }

static int mpq__cond_notify(mpq_cond *c, int n, uint64_t end);

/* Entry w, grabbed by this thread (g: how), is left: a dead waiter's
   notification goes on to another waiter first. Until that waiter has it,
   the dead entry stays NOTIFIED and held by us, so if we die meanwhile the
   next to find it passes it on again (at worst it is then given twice;
   never lost). */
static void mpq__cond_release(mpq_cond *c, mpq__waiter *w, int g, uint32_t st)
{
    if (g == MPQ__GRAB_DEAD && st == MPQ__W_NOTIFIED) mpq__cond_notify(c, 1, (uint64_t)-1);
    mpq__waiter_leave(w);
}

/* Notifies up to n waiters whose tickets are below `end`, the oldest
   first; returns how many. A dead waiter on the way is skipped, and its
   entry freed. */
static int mpq__cond_notify(mpq_cond *c, int n, uint64_t end)
{
    uint32_t hi = mpq__load32(&c->s->hi, MPQ__ACQUIRE), i, st;
    int woken = 0, g;
    if (hi > c->nw) hi = c->nw;
    while (woken < n) {
        mpq__waiter *best = NULL;
        uint64_t bt = end, t;
        uint32_t bv = 0, v;
        for (i = 0; i < hi; i++) {
            v = mpq__load32(&c->w[i].state, MPQ__ACQUIRE);
            if (mpq__wst(v) != MPQ__W_WAITING) continue;
            t = mpq__load64(&c->w[i].ticket, MPQ__RELAXED);
            if (t < bt) {
                bt = t;
                bv = v;
                best = &c->w[i];
            }
        }
        if (!best) break;
        if ((g = mpq__waiter_grab(best, &st)) != MPQ__GRAB_BUSY) {
            /* Dead (perhaps just notified by another notifier), or gone. */
            mpq__cond_release(c, best, g, st);
            continue;
        }
        /* From the exact word seen: a waiter that has left this entry
           since, or one that came after this call began, is not hit. */
        if (mpq__cas32(&best->state, &bv, (bv & ~3u) | MPQ__W_NOTIFIED, MPQ__SEQ_CST)) {
            mpq__futex_wake(&best->state, 1);
            woken++;
        }
    }
    return woken;
}

/* A slice ran out: passes on the notifications of waiters that died
   before taking them. */
static void mpq__cond_adopt(mpq_cond *c, const mpq__waiter *self)
{
    uint32_t hi = mpq__load32(&c->s->hi, MPQ__ACQUIRE), i, st;
    int g;
    if (hi > c->nw) hi = c->nw;
    for (i = 0; i < hi; i++) {
        mpq__waiter *w = &c->w[i];
        if (w == self || mpq__wst(mpq__load32(&w->state, MPQ__ACQUIRE)) != MPQ__W_NOTIFIED) continue;
        if ((g = mpq__waiter_grab(w, &st)) != MPQ__GRAB_BUSY) mpq__cond_release(c, w, g, st);
    }
}

MPQDEF int mpq_cond_wait(mpq_cond *c, mpq_mutex *m, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    uint32_t died = MPQ__W_FREE, st, depth, mine;
    int64_t next_check, slice = (int64_t)MPQ_SYNC_SLICE_MS * 1000000;
    mpq__waiter *w;
    int rc, notified = 0;
    if (!c || !mpq__mutex_ok(m)) return -EINVAL;
    if ((rc = mpq__obj_pidns(c)) != 0) return rc;
    if (!mpq__mutex_mine(m)) return -EPERM;   /* before any waiter could be notified */
    w = mpq__waiter_claim(c->w, c->nw, &c->s->hi, &died);
    if (!w) return -ENOSPC;
    if (died == MPQ__W_NOTIFIED) mpq__cond_notify(c, 1, (uint64_t)-1);  /* its notification goes on */
    mpq__store64(&w->ticket, mpq__add64(&c->s->next, 1, MPQ__SEQ_CST), MPQ__RELEASE);
    mine = mpq__wnext(mpq__load32(&w->state, MPQ__RELAXED), MPQ__W_WAITING);
    mpq__store32(&w->state, mine, MPQ__SEQ_CST);
    /* An RLock is released whole and taken back as deep as it was. */
    depth = mpq__mflags(m) & ~(MPQ__MUTEX_DEPTH1 - 1);
    if (depth && (mpq__mflags(m) & MPQ__MUTEX_RECURSIVE))
        mpq__store32(&m->flags__, mpq__mflags(m) - depth, MPQ__RELAXED);
    else
        depth = 0;
    if ((rc = mpq_mutex_unlock(m)) != 0) {   /* cannot be: it is ours */
        if (depth) mpq__store32(&m->flags__, mpq__mflags(m) + depth, MPQ__RELAXED);
        st = mine;
        if (!mpq__cas32(&w->state, &st, mpq__wnext(mine, MPQ__W_LEAVING), MPQ__SEQ_CST))
            mpq__cond_notify(c, 1, (uint64_t)-1);
        mpq__waiter_leave(w);
        return rc;
    }
    if (timeout_ms != 0) mpq__spin32(&w->state, mine);
    for (next_check = mpq__now_ns() + slice;;) {
        int64_t now = mpq__now_ns(), until;
        st = mpq__load32(&w->state, MPQ__ACQUIRE);
        if (st != mine) { notified = 1; break; }
        if (deadline >= 0 && now >= deadline) {
            notified = !mpq__cas32(&w->state, &st, mpq__wnext(mine, MPQ__W_LEAVING), MPQ__SEQ_CST);
            break;
        }
        if (now >= next_check) {   /* a slice gone by: notifications of the dead? */
            mpq__cond_adopt(c, w);
            next_check = now + slice;
        }
        until = next_check;
        if (deadline >= 0 && deadline < until) until = deadline;
        mpq__futex_wait(&w->state, mine, until);
    }
    mpq__waiter_leave(w);
    /* The notifier usually lets go of m moments after notifying: try for
       it a little before sleeping in the lock. */
    for (st = 0; notified && st < MPQ__SYNC_SPIN; st++) {
        if ((rc = mpq_mutex_trylock(m)) != -EBUSY) break;
        if ((st & 63) == 63) sched_yield();
        else mpq__cpu_relax();
    }
    if (!notified || st == MPQ__SYNC_SPIN) rc = mpq_mutex_lock(m);
    if (depth && (rc == 0 || rc == -EOWNERDEAD)) mpq__store32(&m->flags__, mpq__mflags(m) + depth, MPQ__RELAXED);
    if (rc != 0) return rc;
    if (notified) return 0;
    return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
}

MPQDEF int mpq_cond_wait_for(mpq_cond *c, mpq_mutex *m, int (*pred)(void *arg), void *arg,
                             int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    int rc, died = 0;
    if (!c || !pred || !mpq__mutex_ok(m)) return -EINVAL;
    for (;;) {
        if (pred(arg)) return died ? -EOWNERDEAD : 0;
        rc = mpq_cond_wait(c, m, deadline < 0 ? -1 : mpq__remaining_ms(deadline));
        if (rc == -EOWNERDEAD) died = 1;
        else if (rc == -ETIMEDOUT || rc == -EAGAIN) return died || pred(arg) ? (died ? -EOWNERDEAD : 0) : -ETIMEDOUT;
        else if (rc != 0) return died ? -EOWNERDEAD : rc;
    }
}

MPQDEF int mpq_cond_notify(mpq_cond *c, int n)
{
    if (!c) return -EINVAL;
    if (mpq__obj_pidns(c) != 0) return -EXDEV;
    if (n <= 0) return 0;
    return mpq__cond_notify(c, n, mpq__load64(&c->s->next, MPQ__SEQ_CST));
}

MPQDEF int mpq_cond_notify_all(mpq_cond *c) { return mpq_cond_notify(c, INT_MAX); }

/* --- barrier -----------------------------------------------------------------

   One 64-bit word says it all: (gen:32 | history:16 | count:15 |
   broken:1). `count` parties of round `gen` have arrived; the one that
   makes it `parties` ends the round with one CAS (gen + 1, count 0), as a
   reset does, and each shifts into `history` whether it was a release (0)
   or a reset (1), so a waiter that slept through several rounds still
   knows how its own ended. Waiters sleep on the eventcount `ec`.

   Each party claims a waiter entry (see "who is alive") before it arrives
   and marks it with its round. Whoever's slice runs out checks the
   entries of its round, and a dead party breaks the barrier. */

#define MPQ__BAR_MAGIC 0x5241424dU  /* "MBAR" */
#define MPQ__BAR_MAX 32767u
#define MPQ__BAR_GEN(s) ((uint32_t)((s) >> 32))
#define MPQ__BAR_HIST(s) ((uint32_t)((s) >> 16) & 0xffffu)
#define MPQ__BAR_COUNT(s) ((uint32_t)((s) >> 1) & 0x7fffu)
#define MPQ__BAR_BROKEN(s) ((uint32_t)(s) & 1u)

typedef struct mpq__bar_s {
    uint32_t magic, parties, nw, hi;
    uint64_t state;
    uint32_t ec, pad;
    /* then nw mpq__waiter */
} mpq__bar_s;

struct mpq_barrier { mpq__obj o; mpq__bar_s *s; mpq__waiter *w; uint32_t nw, parties; };

static size_t mpq__bar_size(uint32_t nw)
{
    return ((sizeof(mpq__bar_s) + 15) & ~(size_t)15) + (size_t)nw * sizeof(mpq__waiter);
}

static int mpq__bar_valid(const void *p, size_t size)
{
    const mpq__bar_s *s = (const mpq__bar_s *)p;
    if (s->magic != MPQ__BAR_MAGIC || s->parties == 0 || s->parties > MPQ__BAR_MAX) return -EINVAL;
    if (s->nw != 2 * s->parties + 4 || s->hi > s->nw || size < mpq__bar_size(s->nw)) return -EINVAL;
    return 0;
}

static void mpq__bar_bind(mpq_barrier *b)
{
    b->s = (mpq__bar_s *)b->o.s;
    b->w = (mpq__waiter *)(void *)((char *)b->s + ((sizeof(mpq__bar_s) + 15) & ~(size_t)15));
    b->nw = b->s->nw;
    b->parties = b->s->parties;
}

MPQDEF int mpq_barrier_create(mpq_barrier **out, unsigned parties, const mpq_barrier_config *cfg)
{
    static const mpq_barrier_config defaults = { NULL, 0 };
    uint32_t n;
    int rc;
    if (!cfg) cfg = &defaults;
    if (parties == 0 || parties > MPQ__BAR_MAX) return -EINVAL;
    n = 2 * parties + 4;   /* one round's parties, the last round's leaving, and spare */
    rc = mpq__obj_create((void **)out, sizeof(mpq_barrier), MPQ__KIND_BARRIER, mpq__bar_size(n),
                         cfg->name, cfg->mode);
    if (rc != 0) return rc;
    ((mpq__bar_s *)(*out)->o.s)->magic = MPQ__BAR_MAGIC;
    ((mpq__bar_s *)(*out)->o.s)->parties = parties;
    ((mpq__bar_s *)(*out)->o.s)->nw = n;
    mpq__bar_bind(*out);
    rc = mpq__waiters_init((*out)->w, n);
    return mpq__obj_finish((void **)out, cfg->name, rc);
}

MPQDEF int mpq_barrier_open(mpq_barrier **out, const char *name)
{
    int rc = mpq__obj_open((void **)out, sizeof(mpq_barrier), MPQ__KIND_BARRIER, name,
                           sizeof(mpq__bar_s), mpq__bar_valid);
    if (rc == 0) mpq__bar_bind(*out);
    return rc;
}

MPQDEF int mpq_barrier_close(mpq_barrier *b) { return mpq__obj_close(b); }

/* Ends round `gen` as a reset (or a release), if it is still the round. */
static uint64_t mpq__bar_next(uint64_t s, int reset)
{
    uint64_t gen = (uint64_t)(MPQ__BAR_GEN(s) + 1u) << 32;
    uint64_t hist = (uint64_t)(((MPQ__BAR_HIST(s) << 1) | (reset ? 1u : 0u)) & 0xffffu) << 16;
    return gen | hist;
}

/* How round gen, over by state v, ended for the waiter with index idx:
   idx if it was released, -EPIPE if it was reset. Of the rounds that ended
   since, gen's is the oldest; more than 16 ago counts as released. */
static int mpq__bar_outcome(uint64_t v, uint32_t gen, uint32_t idx)
{
    uint32_t ago = MPQ__BAR_GEN(v) - gen;
    return ago <= 16 && (MPQ__BAR_HIST(v) >> (ago - 1) & 1u) ? -EPIPE : (int)idx;
}

/* Sets the broken flag if round gen is still on; wakes everyone. */
static void mpq__bar_break(mpq__bar_s *s, uint32_t gen)
{
    uint64_t v = mpq__load64(&s->state, MPQ__ACQUIRE);
    while (MPQ__BAR_GEN(v) == gen && !MPQ__BAR_BROKEN(v))
        if (mpq__cas64(&s->state, &v, v | 1u, MPQ__SEQ_CST)) break;
    mpq__ec_signal(&s->ec);
}

/* A slice ran out in round gen: breaks it if a party of it has died. */
static void mpq__bar_check(mpq_barrier *b, const mpq__waiter *self, uint32_t gen)
{
    uint32_t hi = mpq__load32(&b->s->hi, MPQ__ACQUIRE), i, st;
    int g;
    if (hi > b->nw) hi = b->nw;
    for (i = 0; i < hi; i++) {
        mpq__waiter *w = &b->w[i];
        if (w == self || mpq__wst(mpq__load32(&w->state, MPQ__ACQUIRE)) != MPQ__W_WAITING ||
            mpq__load32(&w->gen, MPQ__ACQUIRE) != gen)
            continue;
        if ((g = mpq__waiter_grab(w, &st)) == MPQ__GRAB_BUSY) continue;
        mpq__waiter_leave(w);
        if (g == MPQ__GRAB_DEAD && st == MPQ__W_WAITING && mpq__load32(&w->gen, MPQ__RELAXED) == gen) {
            mpq__bar_break(b->s, gen);
            return;
        }
    }
}

MPQDEF int mpq_barrier_wait(mpq_barrier *b, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms), next_check, slice = (int64_t)MPQ_SYNC_SLICE_MS * 1000000;
    uint32_t died, gen, idx, key;
    uint64_t v, nv;
    mpq__waiter *w;
    mpq__bar_s *s;
    int rc;
    if (!b) return -EINVAL;
    if ((rc = mpq__obj_pidns(b)) != 0) return rc;
    s = b->s;
    /* An entry first, so the others can tell if this party dies. (None
       free means more threads than 2 * parties + 4 are at it: wait.) */
    while (!(w = mpq__waiter_claim(b->w, b->nw, &s->hi, &died))) {
        v = mpq__load64(&s->state, MPQ__ACQUIRE);
        if (MPQ__BAR_BROKEN(v)) return -EPIPE;
        key = mpq__ec_prepare(&s->ec);
        if (timeout_ms == 0 || mpq__ec_sleep(&s->ec, key, deadline) == -ETIMEDOUT) {
            mpq__bar_break(s, MPQ__BAR_GEN(v));   /* a timeout breaks it, as in Python */
            return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
        }
    }
    /* The entry of a party that died waiting: its round is broken. */
    if (died == MPQ__W_WAITING) mpq__bar_break(s, mpq__load32(&w->gen, MPQ__RELAXED));
    v = mpq__load64(&s->state, MPQ__ACQUIRE);
    for (;;) {
        if (MPQ__BAR_BROKEN(v)) { rc = -EPIPE; goto out; }
        gen = MPQ__BAR_GEN(v);
        idx = MPQ__BAR_COUNT(v);
        mpq__store32(&w->gen, gen, MPQ__RELAXED);
        mpq__store32(&w->state, mpq__wnext(mpq__load32(&w->state, MPQ__RELAXED), MPQ__W_WAITING), MPQ__SEQ_CST);
        nv = idx + 1 >= b->parties ? mpq__bar_next(v, 0) : v + 2;
        if (mpq__cas64(&s->state, &v, nv, MPQ__SEQ_CST)) break;
    }
    if (idx + 1 >= b->parties) {   /* the last to arrive: the round is over */
        mpq__ec_signal(&s->ec);
        rc = (int)idx;
        goto out;
    }
    /* The last party is often moments away: look for it before sleeping. */
    for (key = 0; timeout_ms != 0 && key < MPQ__SYNC_SPIN; key++) {
        v = mpq__load64(&s->state, MPQ__ACQUIRE);
        if (MPQ__BAR_GEN(v) != gen || MPQ__BAR_BROKEN(v)) break;
        if ((key & 63) == 63) sched_yield();
        else mpq__cpu_relax();
    }
    for (next_check = mpq__now_ns() + slice;;) {
        int64_t now;
        v = mpq__load64(&s->state, MPQ__ACQUIRE);
        if (MPQ__BAR_GEN(v) != gen) {
            rc = mpq__bar_outcome(v, gen, idx);
            goto out;
        }
        if (MPQ__BAR_BROKEN(v)) { rc = -EPIPE; goto out; }
        if (timeout_ms == 0) rc = -ETIMEDOUT;
        else {
            if ((now = mpq__now_ns()) >= next_check) {   /* a slice gone by: anyone dead? */
                mpq__bar_check(b, w, gen);
                next_check = now + slice;
                continue;
            }
            key = mpq__ec_prepare(&s->ec);
            if (mpq__load64(&s->state, MPQ__SEQ_CST) != v) continue;
            rc = mpq__ec_sleep(&s->ec, key, deadline);
            if (rc != -ETIMEDOUT) continue;
        }
        /* Our wait ran out: the round breaks for everyone, as in Python
           (unless it ended just now). */
        mpq__bar_break(s, gen);
        v = mpq__load64(&s->state, MPQ__ACQUIRE);
        if (MPQ__BAR_GEN(v) != gen) continue;
        rc = timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
        goto out;
    }
out:
    mpq__waiter_leave(w);
    return rc;
}

MPQDEF int mpq_barrier_abort(mpq_barrier *b)
{
    if (!b) return -EINVAL;
    mpq__bar_break(b->s, MPQ__BAR_GEN(mpq__load64(&b->s->state, MPQ__ACQUIRE)));
    return 0;
}

MPQDEF int mpq_barrier_reset(mpq_barrier *b)
{
    uint64_t v;
    if (!b) return -EINVAL;
    v = mpq__load64(&b->s->state, MPQ__ACQUIRE);
    while (!mpq__cas64(&b->s->state, &v, mpq__bar_next(v, 1), MPQ__SEQ_CST)) {}
    mpq__ec_signal(&b->s->ec);
    return 0;
}

MPQDEF int mpq_barrier_parties(const mpq_barrier *b) { return b ? (int)b->parties : -EINVAL; }

MPQDEF int mpq_barrier_n_waiting(const mpq_barrier *b)
{
    return b ? (int)MPQ__BAR_COUNT(mpq__load64(&b->s->state, MPQ__ACQUIRE)) : -EINVAL;
}

MPQDEF int mpq_barrier_broken(const mpq_barrier *b)
{
    return b ? (int)MPQ__BAR_BROKEN(mpq__load64(&b->s->state, MPQ__ACQUIRE)) : -EINVAL;
}

/* ========================================================================
   >>dict  shared dict and list
   ========================================================================

   The dict is an open-addressing table of `nslots` fixed-size slots (a
   power of two, a third more than max_entries) behind a header and
   `nstripes` stripes. A slot is a 32-byte mpq__dslot, the key, and two
   value buffers. Its `meta` word is (version:48 | stripe:13 | which:1 |
   state:2), the stripe only while CLAIMED; every store to it raises the
   version, so a reader that saw one meta value and
   sees it again knows nothing changed in between (a seqlock):
       EMPTY     never used: a probe for a key stops here
       CLAIMED   an insert is writing it: probes pass it
       LIVE      holds key, and value buffer `which`
       TOMB      a deleted key: probes pass it, inserts may reuse it
   A key lives in the first slot of its probe run (linear, from its hash)
   that an insert found free, and never moves: iteration by slot index sees
   every key that stays exactly once.

   Writers of a key hold the robust lock of the key's stripe (hash bits 40
   and up), so one key has one writer at a time. A replace writes the value
   buffer readers are not told to read, then flips `which` with one store.
   An insert claims a free slot with a CAS that tags it CLAIMED by its
   stripe (inserts of other stripes may be after the same slot), writes it,
   then makes it LIVE. So a
   writer killed at any instant leaves the old value or the new one, and a
   key is there whole or not at all; the next writer of its stripe inherits
   the lock (-EOWNERDEAD), frees a slot the dead one had CLAIMED (recorded
   in the slot's meta) and recounts the stripe's keys.

   Readers copy with relaxed 64-bit atomic loads and check `meta` again
   after an acquire fence; a writer issues a release fence before it writes
   a buffer that an older reader might still be copying. The copied bytes
   are only trusted when the check passes. */

#define MPQ__DICT_MAGIC 0x5443494dU  /* "MICT" */
#define MPQ__DICT_MAX_ENTRIES (1u << 26)
#define MPQ__DICT_MAX_KEY (1u << 16)
#define MPQ__DICT_MAX_VALUE (1u << 24)

enum { MPQ__D_EMPTY = 0, MPQ__D_CLAIMED = 1, MPQ__D_LIVE = 2, MPQ__D_TOMB = 3 };
#define MPQ__DST(m) ((unsigned)(m) & 3u)
#define MPQ__DWHICH(m) ((unsigned)((m) >> 2) & 1u)
#define MPQ__DSTRIPE(m) ((uint32_t)((m) >> 3) & 0x1fffu)   /* of a CLAIMED slot */
/* The next version of meta m, with `which` and state st (and, for
   CLAIMED, the claiming stripe). */
#define MPQ__DMETA_AT(m, which, st, stripe) \
    ((((m) >> 16) + 1) << 16 | (uint64_t)(stripe) << 3 | (uint64_t)(which) << 2 | (st))
#define MPQ__DMETA(m, which, st) MPQ__DMETA_AT(m, which, st, 0)

typedef struct mpq__dslot {
    uint64_t meta;
    uint64_t hash;
    uint32_t klen;
    uint32_t vlen[2];
    uint32_t pad;
    /* then the key, value 0 and value 1, each in whole 64-bit words */
} mpq__dslot;

typedef struct mpq__dstripe {
    mpq_mutex lock;
    uint32_t  count;    /* LIVE keys of this stripe                       */
    uint32_t  pad;
} mpq__dstripe;

typedef struct mpq__dict_s {
    uint32_t magic, nslots, nstripes, max_entries;
    uint32_t max_key, max_value, stride, sstride;
    uint64_t used;      /* keys, or more (never fewer, but after a clear
                           raced a dead writer): a hint that skips the
                           exact count while the dict is far from full    */
    uint32_t compactions; /* how many mpq__dict_compact passes were made */
    uint32_t pad[9];
    /* then nstripes stripes of sstride bytes, then nslots slots of
       stride bytes */
} mpq__dict_s;

typedef char mpq__assert_dslot[sizeof(mpq__dslot) == 32 ? 1 : -1];

struct mpq_dict {
    mpq__obj      o;
    mpq__dict_s  *s;
    char         *stripes, *slots;
    uint32_t      nslots, nstripes, max_entries, max_key, max_value, stride, sstride;
    uint32_t      kwords, vwords;   /* 64-bit words of the key and a value */
};

#define MPQ__DHDR 128   /* the header, rounded up to whole cache lines */
typedef char mpq__assert_dict_s[sizeof(mpq__dict_s) <= MPQ__DHDR ? 1 : -1];

/* The layout that (max_entries, max_key, max_value) makes; 0 if too big. */
static uint64_t mpq__dict_layout(uint32_t max_entries, uint32_t max_key, uint32_t max_value,
                                 uint32_t *nslots, uint32_t *nstripes, uint32_t *stride, uint32_t *sstride)
{
    uint64_t want = (uint64_t)max_entries + max_entries / 3 + 1, n = 8, size;
    while (n < want) n <<= 1;
    *nslots = (uint32_t)n;
    *nstripes = n / 4 < 1024 ? (uint32_t)(n / 4) : 1024u;
    *stride = (uint32_t)(sizeof(mpq__dslot) + ((uint64_t)max_key + 7) / 8 * 8 + 2 * (((uint64_t)max_value + 7) / 8 * 8));
    *sstride = (uint32_t)((sizeof(mpq__dstripe) + 63) / 64 * 64);
    size = MPQ__DHDR + (uint64_t)*nstripes * *sstride + n * *stride;
    return size > (uint64_t)((size_t)-1 / 4) ? 0 : size;
}

static void mpq__dict_bind(mpq_dict *d)
{
    mpq__dict_s *s = (mpq__dict_s *)d->o.s;
    d->s = s;
    d->nslots = s->nslots;
    d->nstripes = s->nstripes;
    d->max_entries = s->max_entries;
    d->max_key = s->max_key;
    d->max_value = s->max_value;
    d->stride = s->stride;
    d->sstride = s->sstride;
    d->kwords = (s->max_key + 7) / 8;
    d->vwords = (s->max_value + 7) / 8;
    d->stripes = (char *)s + MPQ__DHDR;
    d->slots = d->stripes + (size_t)d->nstripes * d->sstride;
}

static int mpq__dict_valid(const void *p, size_t size)
{
    const mpq__dict_s *s = (const mpq__dict_s *)p;
    uint32_t nslots, nstripes, stride, sstride;
    uint64_t need;
    if (s->magic != MPQ__DICT_MAGIC || s->max_entries == 0 || s->max_entries > MPQ__DICT_MAX_ENTRIES ||
        s->max_key > MPQ__DICT_MAX_KEY || s->max_value > MPQ__DICT_MAX_VALUE)
        return -EINVAL;
    need = mpq__dict_layout(s->max_entries, s->max_key, s->max_value, &nslots, &nstripes, &stride, &sstride);
    if (need == 0 || need > size || s->nslots != nslots || s->nstripes != nstripes || s->stride != stride ||
        s->sstride != sstride)
        return -EINVAL;
    return 0;
}

static mpq__dslot *mpq__dslot_at(const mpq_dict *d, uint32_t i)
{
    return (mpq__dslot *)(void *)(d->slots + (size_t)i * d->stride);
}
static uint64_t *mpq__dkey(mpq__dslot *s) { return (uint64_t *)(void *)(s + 1); }
static uint64_t *mpq__dval(const mpq_dict *d, mpq__dslot *s, unsigned which)
{
    return mpq__dkey(s) + d->kwords + (size_t)which * d->vwords;
}
static mpq__dstripe *mpq__dstripe_of(const mpq_dict *d, uint64_t h)
{
    return (mpq__dstripe *)(void *)(d->stripes + (size_t)((h >> 40) & (d->nstripes - 1)) * d->sstride);
}

/* A 64-bit constant from two halves (C++98 has no long long literals). */
#define MPQ__U64(hi, lo) ((uint64_t)(hi) << 32 | (uint64_t)(lo))

/* 64-bit hash of a key (a multiply-xorshift over its 8-byte words). */
static uint64_t mpq__hash(const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    const uint64_t m1 = MPQ__U64(0xff51afd7u, 0xed558ccdu), m2 = MPQ__U64(0xc4ceb9feu, 0x1a85ec53u);
    uint64_t h = MPQ__U64(0x9e3779b9u, 0x7f4a7c15u) ^ (uint64_t)n, w;
    for (; n >= 8; b += 8, n -= 8) {
        memcpy(&w, b, 8);
        h = (h ^ w) * m1;
        h ^= h >> 32;
    }
    if (n) {
        w = 0;
        memcpy(&w, b, n);
        h = (h ^ w) * m2;
    }
    h ^= h >> 33;
    h *= m1;
    return h ^ (h >> 33);
}

/* Bytes to and from words that another process may be writing or reading
   at the same time: relaxed atomic loads and stores, never a data race. */
static void mpq__wload(void *dst, const uint64_t *src, size_t n)
{
    unsigned char *o = (unsigned char *)dst;
    size_t i;
    uint64_t w;
    for (i = 0; i + 8 <= n; i += 8) {
        w = mpq__load64(&src[i / 8], MPQ__RELAXED);
        memcpy(o + i, &w, 8);
    }
    if (i < n) {
        w = mpq__load64(&src[i / 8], MPQ__RELAXED);
        memcpy(o + i, &w, n - i);
    }
}

static void mpq__wstore(uint64_t *dst, const void *src, size_t n)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t i;
    uint64_t w;
    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        mpq__store64(&dst[i / 8], w, MPQ__RELAXED);
    }
    if (i < n) {
        w = 0;
        memcpy(&w, p + i, n - i);
        mpq__store64(&dst[i / 8], w, MPQ__RELAXED);
    }
}

static int mpq__wequal(const uint64_t *a, const void *b, size_t n)
{
    const unsigned char *p = (const unsigned char *)b;
    size_t i;
    uint64_t w, x;
    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&x, p + i, 8);
        if (mpq__load64(&a[i / 8], MPQ__RELAXED) != x) return 0;
    }
    if (i < n) {
        w = mpq__load64(&a[i / 8], MPQ__RELAXED);
        return memcmp(&w, p + i, n - i) == 0;
    }
    return 1;
}

/* Whether slot s, read under meta m, holds key: compared without a lock,
   so a match counts only once meta is seen unchanged (the caller's
   check). */
static int mpq__dslot_is(mpq__dslot *s, uint64_t h, const void *key, size_t klen)
{
    return mpq__load64(&s->hash, MPQ__RELAXED) == h && mpq__load32(&s->klen, MPQ__RELAXED) == klen &&
           mpq__wequal(mpq__dkey(s), key, klen);
}

/* Whether meta m is still slot s's: the end of a lock-free read. */
static int mpq__dslot_same(mpq__dslot *s, uint64_t m)
{
    __atomic_thread_fence(MPQ__ACQUIRE);
    return mpq__load64(&s->meta, MPQ__RELAXED) == m;
}

/* Finds key without a lock: 1 with its slot in *slot and the meta it was
   seen under in *meta, or 0. */
static int mpq__dict_find(const mpq_dict *d, uint64_t h, const void *key, size_t klen,
                          mpq__dslot **slot, uint64_t *meta)
{
    uint32_t i = (uint32_t)h & (d->nslots - 1), k;
    for (k = 0; k < d->nslots; k++, i = (i + 1) & (d->nslots - 1)) {
        mpq__dslot *s = mpq__dslot_at(d, i);
        uint64_t m = mpq__load64(&s->meta, MPQ__ACQUIRE);
        if (MPQ__DST(m) == MPQ__D_EMPTY) return 0;
        if (MPQ__DST(m) != MPQ__D_LIVE || !mpq__dslot_is(s, h, key, klen)) continue;
        if (!mpq__dslot_same(s, m)) {   /* changed while compared: this slot again */
            k--;
            i = (i - 1) & (d->nslots - 1);
            continue;
        }
        *slot = s;
        *meta = m;
        return 1;
    }
    return 0;
}

/* Locks the stripe of hash h; repairs what a writer that died in it left:
   a slot it had CLAIMED is freed, and the stripe's count is recounted. */
static int mpq__dict_lock(mpq_dict *d, mpq__dstripe *st)
{
    uint32_t i, n = 0, me;
    int rc = mpq__obj_pidns(d);
    if (rc == 0) rc = mpq__mutex_lock(&st->lock, 1);
    if (rc != -EOWNERDEAD) return rc;
    me = (uint32_t)((size_t)((char *)st - d->stripes) / d->sstride);
    for (i = 0; i < d->nslots; i++) {
        mpq__dslot *s = mpq__dslot_at(d, i);
        uint64_t m = mpq__load64(&s->meta, MPQ__ACQUIRE);
        /* Only this stripe's writers claim slots tagged with it, and we
           hold it: such a slot was the dead writer's. */
        if (MPQ__DST(m) == MPQ__D_CLAIMED && MPQ__DSTRIPE(m) == me)
            mpq__store64(&s->meta, MPQ__DMETA(m, 0, MPQ__D_TOMB), MPQ__RELEASE);
        else if (MPQ__DST(m) == MPQ__D_LIVE &&
                 ((mpq__load64(&s->hash, MPQ__RELAXED) >> 40) & (d->nstripes - 1)) == me)
            n++;
    }
    mpq__store32(&st->count, n, MPQ__RELAXED);
    return 0;
}

/* Exact key count (the sum of the stripes'). */
static long mpq__dict_count(const mpq_dict *d)
{
    uint32_t i;
    long n = 0;
    for (i = 0; i < d->nstripes; i++)
        n += (long)mpq__load32(&((mpq__dstripe *)(void *)(d->stripes + (size_t)i * d->sstride))->count,
                               MPQ__RELAXED);
    return n;
}

/* Locks every stripe, in order (a writer holds one at a time, so this
   cannot deadlock). Returns 0, or a lock's error with none held. */
static int mpq__dict_lock_all(mpq_dict *d)
{
    uint32_t taken;
    int rc = 0;
    for (taken = 0; taken < d->nstripes; taken++)
        if ((rc = mpq__dict_lock(d, (mpq__dstripe *)(void *)(d->stripes + (size_t)taken * d->sstride))) != 0)
            break;
    if (rc != 0)
        while (taken-- > 0) mpq_mutex_unlock(&((mpq__dstripe *)(void *)(d->stripes + (size_t)taken * d->sstride))->lock);
    return rc;
}

static void mpq__dict_unlock_all(mpq_dict *d)
{
    uint32_t i = d->nstripes;
    while (i-- > 0) mpq_mutex_unlock(&((mpq__dstripe *)(void *)(d->stripes + (size_t)i * d->sstride))->lock);
}

/* Gives deleted slots back as EMPTY where no key's probe run passes
   through them, so that probes get short again after many deletes. With
   every stripe held no insert is under way and the keys stay where they
   are; a reader probing meanwhile loses nothing it could have found.
   A slot p is needed while some LIVE key at q, home h, has p in [h, q):
   sweeping the table downwards twice (it is a ring), `need` is how far
   below the current slot the keys seen so far still reach. `seen` is the
   caller's count of passes: if another pass came meanwhile, none is made. */
static void mpq__dict_compact(mpq_dict *d, uint32_t seen)
{
    uint32_t n = d->nslots, step, p;
    int64_t need = -1;
    if (mpq__dict_lock_all(d) != 0) return;
    if (mpq__load32(&d->s->compactions, MPQ__RELAXED) == seen) {
        for (step = 0; step < 2 * n; step++) {
            mpq__dslot *s;
            uint64_t m;
            p = n - 1 - step % n;
            s = mpq__dslot_at(d, p);
            m = mpq__load64(&s->meta, MPQ__ACQUIRE);
            if (MPQ__DST(m) == MPQ__D_TOMB && need < 0 && step >= n)
                mpq__store64(&s->meta, MPQ__DMETA(m, 0, MPQ__D_EMPTY), MPQ__RELEASE);
            else if (MPQ__DST(m) == MPQ__D_LIVE) {
                int64_t dist = (int64_t)((p - (uint32_t)mpq__load64(&s->hash, MPQ__RELAXED)) & (n - 1));
                if (dist > need) need = dist;
            }
            if (need >= 0) need--;
        }
        mpq__store32(&d->s->compactions, seen + 1, MPQ__RELAXED);
    }
    mpq__dict_unlock_all(d);
}

enum { MPQ__D_SET, MPQ__D_DEL, MPQ__D_ADD, MPQ__D_CAS };

/* Every write: under the stripe lock, finds key; then sets, deletes, adds
   or compares-and-sets as `op` says. */
static int mpq__dict_write(mpq_dict *d, int op, const void *key, size_t klen, const void *val, size_t vlen,
                           const void *expect, size_t elen, int64_t delta, int64_t *result)
{
    uint64_t h, m;
    uint32_t i, k, reuse, tombs = 0, passes;
    mpq__dstripe *st;
    mpq__dslot *s;
    int64_t num;
    int rc;
    if (!d || (!key && klen)) return -EINVAL;
    if (klen > d->max_key || vlen > d->max_value) return -EMSGSIZE;
    h = mpq__hash(key, klen);
    st = mpq__dstripe_of(d, h);
    passes = mpq__load32(&d->s->compactions, MPQ__RELAXED);
    if ((rc = mpq__dict_lock(d, st)) != 0) return rc;
again:
    reuse = d->nslots;
    i = (uint32_t)h & (d->nslots - 1);
    for (k = 0; k < d->nslots; k++, i = (i + 1) & (d->nslots - 1)) {
        s = mpq__dslot_at(d, i);
        m = mpq__load64(&s->meta, MPQ__ACQUIRE);
        if (MPQ__DST(m) == MPQ__D_EMPTY) {
            if (reuse == d->nslots) reuse = i;
            break;
        }
        tombs += MPQ__DST(m) == MPQ__D_TOMB;
        if (MPQ__DST(m) == MPQ__D_TOMB && reuse == d->nslots) reuse = i;
        /* A LIVE slot of this stripe's key cannot change under us. */
        if (MPQ__DST(m) == MPQ__D_LIVE && mpq__dslot_is(s, h, key, klen)) {
            unsigned w = MPQ__DWHICH(m);
            uint32_t cur = mpq__load32(&s->vlen[w], MPQ__RELAXED);
            if (op == MPQ__D_DEL) {
                mpq__store64(&s->meta, MPQ__DMETA(m, w, MPQ__D_TOMB), MPQ__RELEASE);
                mpq__store32(&st->count, st->count - 1, MPQ__RELAXED);
                mpq__add64(&d->s->used, (uint64_t)-1, MPQ__RELAXED);   /* last: the hint errs high */
                goto out;
            }
            if (op == MPQ__D_CAS && !expect) { rc = -EEXIST; goto out; }
            if (op == MPQ__D_CAS && (cur != elen || !mpq__wequal(mpq__dval(d, s, w), expect, elen))) {
                rc = -ECANCELED;
                goto out;
            }
            if (op == MPQ__D_ADD) {
                if (cur != 8) { rc = -EINVAL; goto out; }
                mpq__wload(&num, mpq__dval(d, s, w), 8);
                num = (int64_t)((uint64_t)num + (uint64_t)delta);
                val = &num;
                vlen = 8;
            }
            /* Into the other buffer, then one store switches it in; the
               fence keeps these writes after everything an older reader
               of that buffer could check against. */
            __atomic_thread_fence(MPQ__RELEASE);
            mpq__wstore(mpq__dval(d, s, !w), val, vlen);
            mpq__store32(&s->vlen[!w], (uint32_t)vlen, MPQ__RELAXED);
            mpq__store64(&s->meta, MPQ__DMETA(m, !w, MPQ__D_LIVE), MPQ__RELEASE);
            if (op == MPQ__D_ADD && result) *result = num;
            goto out;
        }
    }
    /* Not there. */
    if (op == MPQ__D_DEL || (op == MPQ__D_CAS && expect)) { rc = -ENOENT; goto out; }
    if (op == MPQ__D_ADD) {
        num = delta;
        val = &num;
        vlen = 8;
    }
    if (reuse == d->nslots ||
        (mpq__load64(&d->s->used, MPQ__RELAXED) + 64 >= d->max_entries && mpq__dict_count(d) >= (long)d->max_entries)) {
        rc = -ENOSPC;
        goto out;
    }
    s = mpq__dslot_at(d, reuse);
    m = mpq__load64(&s->meta, MPQ__ACQUIRE);
    k = (uint32_t)((size_t)((char *)st - d->stripes) / d->sstride);
    if ((MPQ__DST(m) != MPQ__D_EMPTY && MPQ__DST(m) != MPQ__D_TOMB) ||
        !mpq__cas64(&s->meta, &m, MPQ__DMETA_AT(m, 0, MPQ__D_CLAIMED, k), MPQ__ACQ_REL))
        goto again;   /* an insert of another stripe took it first */
    mpq__add64(&d->s->used, 1, MPQ__RELAXED);   /* first: the hint errs high */
    /* A reader of the key deleted from this slot may still be copying it:
       these writes must not be seen before anything it checks against. */
    __atomic_thread_fence(MPQ__RELEASE);
    m = MPQ__DMETA_AT(m, 0, MPQ__D_CLAIMED, k);
    mpq__store64(&s->hash, h, MPQ__RELAXED);
    mpq__store32(&s->klen, (uint32_t)klen, MPQ__RELAXED);
    mpq__wstore(mpq__dkey(s), key, klen);
    mpq__wstore(mpq__dval(d, s, 0), val, vlen);
    mpq__store32(&s->vlen[0], (uint32_t)vlen, MPQ__RELAXED);
    mpq__store64(&s->meta, MPQ__DMETA(m, 0, MPQ__D_LIVE), MPQ__RELEASE);
    mpq__store32(&st->count, st->count + 1, MPQ__RELAXED);
    if (op == MPQ__D_ADD && result) *result = num;
out:
    mpq_mutex_unlock(&st->lock);
    /* A long probe, mostly through deleted slots: time to give them back. */
    if (k > 32 && tombs > k / 2) mpq__dict_compact(d, passes);
    return rc;
}

MPQDEF int mpq_dict_create(mpq_dict **out, const mpq_dict_config *cfg)
{
    static const mpq_dict_config defaults = { 0, 0, 0, NULL, 0 };
    uint32_t entries, kmax, vmax, nslots, nstripes, stride, sstride, i;
    uint64_t size;
    mpq_dict *d;
    int rc = 0;
    if (!cfg) cfg = &defaults;
    entries = cfg->max_entries ? cfg->max_entries : 1024;
    kmax = cfg->max_key ? cfg->max_key : 64;
    vmax = cfg->max_value ? cfg->max_value : 256;
    if (entries > MPQ__DICT_MAX_ENTRIES || kmax > MPQ__DICT_MAX_KEY || vmax > MPQ__DICT_MAX_VALUE) return -EINVAL;
    size = mpq__dict_layout(entries, kmax, vmax, &nslots, &nstripes, &stride, &sstride);
    if (size == 0) return -EINVAL;
    rc = mpq__obj_create((void **)out, sizeof(mpq_dict), MPQ__KIND_DICT, (size_t)size, cfg->name, cfg->mode);
    if (rc != 0) return rc;
    d = *out;
    d->s = (mpq__dict_s *)d->o.s;
    d->s->magic = MPQ__DICT_MAGIC;
    d->s->nslots = nslots;
    d->s->nstripes = nstripes;
    d->s->max_entries = entries;
    d->s->max_key = kmax;
    d->s->max_value = vmax;
    d->s->stride = stride;
    d->s->sstride = sstride;
    mpq__dict_bind(d);
    for (i = 0; i < nstripes && rc == 0; i++)
        rc = mpq_mutex_init(&((mpq__dstripe *)(void *)(d->stripes + (size_t)i * sstride))->lock);
    return mpq__obj_finish((void **)out, cfg->name, rc);
}

MPQDEF int mpq_dict_open(mpq_dict **out, const char *name)
{
    int rc = mpq__obj_open((void **)out, sizeof(mpq_dict), MPQ__KIND_DICT, name, sizeof(mpq__dict_s),
                           mpq__dict_valid);
    if (rc == 0) mpq__dict_bind(*out);
    return rc;
}

MPQDEF int mpq_dict_close(mpq_dict *d) { return mpq__obj_close(d); }

MPQDEF int mpq_dict_set(mpq_dict *d, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!val && vlen) return -EINVAL;
    return mpq__dict_write(d, MPQ__D_SET, key, klen, val, vlen, NULL, 0, 0, NULL);
}

MPQDEF int mpq_dict_delete(mpq_dict *d, const void *key, size_t klen)
{
    return mpq__dict_write(d, MPQ__D_DEL, key, klen, NULL, 0, NULL, 0, 0, NULL);
}

MPQDEF int mpq_dict_add(mpq_dict *d, const void *key, size_t klen, int64_t delta, int64_t *result)
{
    if (d && d->max_value < 8) return -EINVAL;
    return mpq__dict_write(d, MPQ__D_ADD, key, klen, NULL, 8, NULL, 0, delta, result);
}

MPQDEF int mpq_dict_cas(mpq_dict *d, const void *key, size_t klen, const void *expect, size_t elen,
                        const void *val, size_t vlen)
{
    if ((!val && vlen) || (!expect && elen)) return -EINVAL;
    return mpq__dict_write(d, MPQ__D_CAS, key, klen, val, vlen, expect, elen, 0, NULL);
}

MPQDEF int mpq_dict_get(mpq_dict *d, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen)
{
    mpq__dslot *s;
    uint64_t m, h;
    uint32_t len;
    if (!d || !vlen || (!key && klen) || (!buf && cap)) return -EINVAL;
    if (klen > d->max_key) return -ENOENT;
    h = mpq__hash(key, klen);
    for (;;) {
        if (!mpq__dict_find(d, h, key, klen, &s, &m)) return -ENOENT;
        len = mpq__load32(&s->vlen[MPQ__DWHICH(m)], MPQ__RELAXED);
        if (len > d->max_value) len = d->max_value + 1;   /* torn, or scribbled: see below */
        if (len <= cap && len <= d->max_value && len) mpq__wload(buf, mpq__dval(d, s, MPQ__DWHICH(m)), len);
        if (!mpq__dslot_same(s, m)) continue;   /* a writer came by: again */
        if (len > d->max_value) return -EIO;   /* a length no write made */
        *vlen = len;
        return len <= cap ? 0 : -EMSGSIZE;
    }
}

MPQDEF int mpq_dict_contains(mpq_dict *d, const void *key, size_t klen)
{
    mpq__dslot *s;
    uint64_t m;
    if (!d || (!key && klen)) return -EINVAL;
    if (klen > d->max_key) return 0;
    return mpq__dict_find(d, mpq__hash(key, klen), key, klen, &s, &m);
}

MPQDEF long mpq_dict_len(const mpq_dict *d) { return d ? mpq__dict_count(d) : -EINVAL; }

MPQDEF int mpq_dict_clear(mpq_dict *d)
{
    uint32_t i;
    int rc;
    if (!d) return -EINVAL;
    /* Every stripe held: no insert is under way, so every slot can go back
       to EMPTY - deleted ones too, so that probes are short again. Readers
       see a changed version, or EMPTY. */
    if ((rc = mpq__dict_lock_all(d)) != 0) return rc;
    for (i = 0; i < d->nslots; i++) {
        mpq__dslot *s = mpq__dslot_at(d, i);
        uint64_t m = mpq__load64(&s->meta, MPQ__ACQUIRE);
        if (MPQ__DST(m) != MPQ__D_EMPTY) mpq__store64(&s->meta, MPQ__DMETA(m, 0, MPQ__D_EMPTY), MPQ__RELEASE);
    }
    for (i = 0; i < d->nstripes; i++)
        mpq__store32(&((mpq__dstripe *)(void *)(d->stripes + (size_t)i * d->sstride))->count, 0, MPQ__RELAXED);
    mpq__store64(&d->s->used, 0, MPQ__RELAXED);
    mpq__dict_unlock_all(d);
    return 0;
}

MPQDEF int mpq_dict_next(mpq_dict *d, size_t *pos, void *kbuf, size_t kcap, size_t *klen,
                         void *vbuf, size_t vcap, size_t *vlen)
{
    size_t i;
    if (!d || !pos || !klen || (!kbuf && kcap) || (!vbuf && vcap) || (vbuf && !vlen)) return -EINVAL;
    for (i = *pos; i < d->nslots;) {
        mpq__dslot *s = mpq__dslot_at(d, (uint32_t)i);
        uint64_t m = mpq__load64(&s->meta, MPQ__ACQUIRE);
        uint32_t kl, vl;
        unsigned w = MPQ__DWHICH(m);
        if (MPQ__DST(m) != MPQ__D_LIVE) { i++; continue; }
        kl = mpq__load32(&s->klen, MPQ__RELAXED);
        vl = mpq__load32(&s->vlen[w], MPQ__RELAXED);
        if (kl > d->max_key || vl > d->max_value) {
            if (mpq__dslot_same(s, m)) return -EIO;
            continue;
        }
        if (kl <= kcap && kl) mpq__wload(kbuf, mpq__dkey(s), kl);
        if (vl <= vcap && vl) mpq__wload(vbuf, mpq__dval(d, s, w), vl);
        if (!mpq__dslot_same(s, m)) continue;   /* changed: look at it again */
        *klen = kl;
        if (vlen) *vlen = vl;
        if (kl > kcap || (vlen && vl > vcap)) {
            *pos = i;
            return -EMSGSIZE;
        }
        *pos = i + 1;
        return 1;
    }
    *pos = d->nslots;
    return 0;
}

/* --- list ------------------------------------------------------------------

   Items live in `capacity` slots (a 64-bit word holding the length, then
   the bytes); the list's order is an array of slot numbers, of which there
   are two: `meta` (len:32 | which:1) says which one is current and how
   long the list is. Under the lock, an item is written into a free slot
   nobody looks at, and then either the current order gains it past its
   end (append) or gets one entry replaced (set) - one store publishes
   either, with `meta` or the entry - or the other order array is written
   in full and `meta` switches to it (insert, pop from the middle). A bitmap
   says which slots are in use; after a holder died (-EOWNERDEAD) it is
   rebuilt from the current order, which gives back a slot the dead one had
   taken but not published. */

#define MPQ__LIST_MAGIC 0x5453494dU  /* "MIST" */

typedef struct mpq__list_s {
    uint32_t magic, capacity, max_item, istride;
    uint64_t meta;      /* (len:32 | which:1) */
    uint32_t hint;      /* the first bitmap word that may have a free slot */
    uint32_t pad[9];
    mpq_mutex lock;
    /* then, each 64-byte aligned: order[2][capacity] (uint32), the in-use
       bitmap (capacity + 1 bits in 64-bit words), capacity + 1 item slots
       (the one more lets a full list's set write its new item first) */
} mpq__list_s;

struct mpq_list {
    mpq__obj     o;
    mpq__list_s *s;
    uint32_t    *order[2];
    uint64_t    *bits;
    char        *items;
    uint32_t     capacity, max_item, istride, nitems;   /* nitems = capacity + 1 */
};

static size_t mpq__a64(size_t n) { return (n + 63) & ~(size_t)63; }

static uint64_t mpq__list_layout(uint32_t capacity, uint32_t max_item, uint32_t *istride, size_t off[3])
{
    uint64_t size;
    *istride = (uint32_t)(8 + ((uint64_t)max_item + 7) / 8 * 8);
    off[0] = mpq__a64(sizeof(mpq__list_s));
    off[1] = off[0] + mpq__a64((size_t)2 * capacity * sizeof(uint32_t));
    off[2] = off[1] + mpq__a64(((size_t)capacity + 64) / 64 * 8);
    size = (uint64_t)off[2] + ((uint64_t)capacity + 1) * *istride;
    return size > (uint64_t)((size_t)-1 / 4) ? 0 : size;
}

static void mpq__list_bind(mpq_list *l)
{
    size_t off[3];
    uint32_t istride;
    l->s = (mpq__list_s *)l->o.s;
    l->capacity = l->s->capacity;
    l->nitems = l->capacity + 1;
    l->max_item = l->s->max_item;
    mpq__list_layout(l->capacity, l->max_item, &istride, off);
    l->istride = istride;
    l->order[0] = (uint32_t *)(void *)((char *)l->s + off[0]);
    l->order[1] = l->order[0] + l->capacity;
    l->bits = (uint64_t *)(void *)((char *)l->s + off[1]);
    l->items = (char *)l->s + off[2];
}

static int mpq__list_valid(const void *p, size_t size)
{
    const mpq__list_s *s = (const mpq__list_s *)p;
    uint32_t istride;
    size_t off[3];
    uint64_t need;
    if (s->magic != MPQ__LIST_MAGIC || s->capacity == 0 || s->capacity > MPQ__DICT_MAX_ENTRIES ||
        s->max_item > MPQ__DICT_MAX_VALUE || s->lock.magic__ != MPQ__MUTEX_MAGIC)
        return -EINVAL;
    need = mpq__list_layout(s->capacity, s->max_item, &istride, off);
    return need != 0 && need <= size && s->istride == istride ? 0 : -EINVAL;
}

static uint64_t *mpq__list_item(const mpq_list *l, uint32_t slot)
{
    return (uint64_t *)(void *)(l->items + (size_t)slot * l->istride);
}

/* The current order and length, as the lock holder sees them; len is
   clamped to the capacity and every entry read later is checked, so a
   scribbled list gives -EIO, not a stray access. */
static uint32_t mpq__list_cur(const mpq_list *l, unsigned *which)
{
    uint64_t m = mpq__load64(&l->s->meta, MPQ__ACQUIRE);
    uint32_t len = (uint32_t)(m >> 32);
    *which = (unsigned)m & 1u;
    return len > l->capacity ? l->capacity : len;
}

static void mpq__list_publish(mpq_list *l, uint32_t len, unsigned which)
{
    mpq__store64(&l->s->meta, (uint64_t)len << 32 | which, MPQ__RELEASE);
}

static void mpq__list_bit(mpq_list *l, uint32_t slot, int on)
{
    uint64_t b = mpq__load64(&l->bits[slot / 64], MPQ__RELAXED), bit = (uint64_t)1 << (slot % 64);
    mpq__store64(&l->bits[slot / 64], on ? b | bit : b & ~bit, MPQ__RELAXED);
    if (!on && slot / 64 < l->s->hint) l->s->hint = slot / 64;
}

/* Locks the list; after a dead holder, rebuilds the in-use bitmap from
   the current order. Returns 0 or an error of the lock. */
static int mpq__list_lock(mpq_list *l)
{
    unsigned w;
    uint32_t len, k, words = (l->nitems + 63) / 64;
    int rc = mpq__obj_pidns(l);
    if (rc == 0) rc = mpq__mutex_lock(&l->s->lock, 1);
    if (rc != -EOWNERDEAD) return rc;
    len = mpq__list_cur(l, &w);
    for (k = 0; k < words; k++) mpq__store64(&l->bits[k], 0, MPQ__RELAXED);
    l->s->hint = 0;
    for (k = 0; k < len; k++) {
        uint32_t slot = mpq__load32(&l->order[w][k], MPQ__RELAXED);
        if (slot < l->nitems) mpq__list_bit(l, slot, 1);
    }
    return 0;
}

/* A free slot with item bytes in it (not published), or nitems. The
   search starts at the hint (words before it are full), so appends to a
   long list do not rescan it from the start. */
static uint32_t mpq__list_store(mpq_list *l, const void *item, size_t len)
{
    uint32_t k, words = (l->nitems + 63) / 64, slot;
    for (k = l->s->hint < words ? l->s->hint : 0; k < words; k++) {
        uint64_t b = mpq__load64(&l->bits[k], MPQ__RELAXED);
        if (b == ~(uint64_t)0) continue;
        l->s->hint = k;
        for (slot = k * 64; b & 1u; b >>= 1) slot++;
        if (slot >= l->nitems) break;
        mpq__list_bit(l, slot, 1);
        mpq__store64(mpq__list_item(l, slot), (uint64_t)len, MPQ__RELAXED);
        mpq__wstore(mpq__list_item(l, slot) + 1, item, len);
        return slot;
    }
    return l->nitems;
}

/* index -> position in [0, len), Python style; -1 if out of range. */
static long mpq__list_pos(long index, uint32_t len)
{
    if (index < 0) index += (long)len;
    return index < 0 || index >= (long)len ? -1 : index;
}

MPQDEF int mpq_list_create(mpq_list **out, const mpq_list_config *cfg)
{
    static const mpq_list_config defaults = { 0, 0, NULL, 0 };
    uint32_t cap, max, istride;
    size_t off[3];
    uint64_t size;
    mpq_list *l;
    int rc;
    if (!cfg) cfg = &defaults;
    cap = cfg->capacity ? cfg->capacity : 1024;
    max = cfg->max_item ? cfg->max_item : 256;
    if (cap > MPQ__DICT_MAX_ENTRIES || max > MPQ__DICT_MAX_VALUE) return -EINVAL;
    if ((size = mpq__list_layout(cap, max, &istride, off)) == 0) return -EINVAL;
    rc = mpq__obj_create((void **)out, sizeof(mpq_list), MPQ__KIND_LIST, (size_t)size, cfg->name, cfg->mode);
    if (rc != 0) return rc;
    l = *out;
    l->s = (mpq__list_s *)l->o.s;
    l->s->magic = MPQ__LIST_MAGIC;
    l->s->capacity = cap;
    l->s->max_item = max;
    l->s->istride = istride;
    mpq__list_bind(l);
    rc = mpq_mutex_init(&l->s->lock);
    return mpq__obj_finish((void **)out, cfg->name, rc);
}

MPQDEF int mpq_list_open(mpq_list **out, const char *name)
{
    int rc = mpq__obj_open((void **)out, sizeof(mpq_list), MPQ__KIND_LIST, name, sizeof(mpq__list_s),
                           mpq__list_valid);
    if (rc == 0) mpq__list_bind(*out);
    return rc;
}

MPQDEF int mpq_list_close(mpq_list *l) { return mpq__obj_close(l); }

/* insert (at = position, or len for append) */
static int mpq__list_insert(mpq_list *l, long index, int append, const void *item, size_t len)
{
    unsigned w;
    uint32_t n, slot, k;
    long at;
    int rc;
    if (!l || (!item && len)) return -EINVAL;
    if (len > l->max_item) return -EMSGSIZE;
    if ((rc = mpq__list_lock(l)) != 0) return rc;
    n = mpq__list_cur(l, &w);
    if (n >= l->capacity || (slot = mpq__list_store(l, item, len)) >= l->nitems) {
        rc = -ENOSPC;
        goto out;
    }
    at = append ? (long)n : index < 0 ? index + (long)n : index;
    if (at < 0) at = 0;
    if (at >= (long)n) {   /* past the end of the current order: one store each */
        mpq__store32(&l->order[w][n], slot, MPQ__RELAXED);
        mpq__list_publish(l, n + 1, w);
        goto out;
    }
    for (k = 0; k < n + 1; k++) {   /* the other order, in full */
        uint32_t v = (long)k < at ? l->order[w][k] : (long)k == at ? slot : l->order[w][k - 1];
        mpq__store32(&l->order[!w][k], v, MPQ__RELAXED);
    }
    mpq__list_publish(l, n + 1, !w);
out:
    mpq_mutex_unlock(&l->s->lock);
    return rc;
}

MPQDEF int mpq_list_append(mpq_list *l, const void *item, size_t len) { return mpq__list_insert(l, 0, 1, item, len); }

MPQDEF int mpq_list_insert(mpq_list *l, long index, const void *item, size_t len)
{
    return mpq__list_insert(l, index, 0, item, len);
}

/* Copies item at position pos out (under the lock). */
static int mpq__list_copy(mpq_list *l, unsigned w, long pos, void *buf, size_t cap, size_t *len)
{
    uint32_t slot = mpq__load32(&l->order[w][pos], MPQ__RELAXED);
    uint64_t n;
    if (slot >= l->nitems) return -EIO;
    n = mpq__load64(mpq__list_item(l, slot), MPQ__RELAXED);
    if (n > l->max_item) return -EIO;
    if (len) *len = (size_t)n;
    if (n > cap) return -EMSGSIZE;
    if (n) mpq__wload(buf, mpq__list_item(l, slot) + 1, (size_t)n);
    return 0;
}

MPQDEF int mpq_list_get(mpq_list *l, long index, void *buf, size_t cap, size_t *len)
{
    unsigned w;
    long pos;
    int rc;
    if (!l || !len || (!buf && cap)) return -EINVAL;
    if ((rc = mpq__list_lock(l)) != 0) return rc;
    pos = mpq__list_pos(index, mpq__list_cur(l, &w));
    rc = pos < 0 ? -ERANGE : mpq__list_copy(l, w, pos, buf, cap, len);
    mpq_mutex_unlock(&l->s->lock);
    return rc;
}

MPQDEF int mpq_list_set(mpq_list *l, long index, const void *item, size_t len)
{
    unsigned w;
    uint32_t slot, old;
    long pos;
    int rc;
    if (!l || (!item && len)) return -EINVAL;
    if (len > l->max_item) return -EMSGSIZE;
    if ((rc = mpq__list_lock(l)) != 0) return rc;
    pos = mpq__list_pos(index, mpq__list_cur(l, &w));
    if (pos < 0) rc = -ERANGE;
    else if ((slot = mpq__list_store(l, item, len)) >= l->nitems) rc = -EIO;   /* a bitmap scribbled full */
    else {
        old = mpq__load32(&l->order[w][pos], MPQ__RELAXED);
        mpq__store32(&l->order[w][pos], slot, MPQ__RELEASE);
        if (old < l->nitems) mpq__list_bit(l, old, 0);
    }
    mpq_mutex_unlock(&l->s->lock);
    return rc;
}

MPQDEF int mpq_list_pop(mpq_list *l, long index, void *buf, size_t cap, size_t *len)
{
    unsigned w;
    uint32_t n, slot, k;
    long pos;
    int rc;
    if (!l || (!buf && cap)) return -EINVAL;
    if ((rc = mpq__list_lock(l)) != 0) return rc;
    n = mpq__list_cur(l, &w);
    pos = mpq__list_pos(index, n);
    if (pos < 0) { rc = -ERANGE; goto out; }
    if ((rc = mpq__list_copy(l, w, pos, buf, cap, len)) != 0 && (rc != -EMSGSIZE || buf || len)) goto out;
    rc = 0;
    slot = mpq__load32(&l->order[w][pos], MPQ__RELAXED);
    if ((uint32_t)pos == n - 1) {
        mpq__list_publish(l, n - 1, w);
    } else {
        for (k = 0; k + 1 < n; k++)
            mpq__store32(&l->order[!w][k], l->order[w][(long)k < pos ? k : k + 1], MPQ__RELAXED);
        mpq__list_publish(l, n - 1, !w);
    }
    if (slot < l->nitems) mpq__list_bit(l, slot, 0);
out:
    mpq_mutex_unlock(&l->s->lock);
    return rc;
}

MPQDEF long mpq_list_len(const mpq_list *l)
{
    uint64_t m;
    if (!l) return -EINVAL;
    m = mpq__load64(&l->s->meta, MPQ__ACQUIRE) >> 32;
    return (long)(m > l->capacity ? l->capacity : m);
}

MPQDEF int mpq_list_clear(mpq_list *l)
{
    unsigned w;
    uint32_t k;
    int rc;
    if (!l) return -EINVAL;
    if ((rc = mpq__list_lock(l)) != 0) return rc;
    mpq__list_cur(l, &w);
    mpq__list_publish(l, 0, w);
    for (k = 0; k < (l->nitems + 63) / 64; k++) mpq__store64(&l->bits[k], 0, MPQ__RELAXED);
    l->s->hint = 0;
    mpq_mutex_unlock(&l->s->lock);
    return 0;
}

/* ========================================================================
   >>queue  lock-free MPMC ring that survives killed processes
   ========================================================================

   A queue segment holds, after the segment header, an mpq__qhdr (sizes,
   flags, and on cache lines of their own: head, tail and two eventcounts)
   and then `capacity` slots of `stride` bytes: a 32-byte mpq__qslot, then
   max_msg bytes of message.

   Position p lives in slot p % capacity during lap p / capacity. A slot's
   state word is (lap:40 | phase:2 | pid:22), and one position goes through
       EMPTY(lap)           free for the put of position p
       WRITING(lap, pid)    claimed by producer pid
       FULL(lap)            holds a message; FULL(lap, MPQ__SKIPPED) holds
                            none (a cancelled or failed put, or a dead one)
       READING(lap, pid)    claimed by consumer pid
       EMPTY(lap + 1)       free for position p + capacity
   Every step is a CAS from the exact state its caller expects, so a step
   can never be taken twice, and a holder whose slot was taken from it
   learns so instead of overwriting a later lap. The 40-bit lap keeps every
   state unique for 2^40 laps: no CAS succeeds on a stale view (no ABA).
   head and tail only say where to look, and never run ahead of a claimed
   position; whoever finds them lagging advances them, so a claimant that
   dies right after its CAS leaves nothing behind but its own slot.

   put_batch may pack several messages into one slot, FULL(lap,
   MPQ__PACKED), taken through a cursor: see "packed batches" below.

   Dead claimants. Right after claiming, a claimant records its start time
   in `owner`. Whoever finds one slot held for MPQ__STUCK_MS asks whether
   the holder is dead: its pid has exited (a pidfd polls readable, for a
   zombie too) or now names another process - one whose start time is not
   the claimant's, or that started after the slot was first seen held. If
   so, one CAS moves the slot on: WRITING becomes FULL(SKIPPED), READING
   becomes EMPTY; the dead process's message is lost, nothing else.

   Sleeping uses eventcounts: a 32-bit word whose bit 0 says "somebody
   sleeps". A waiter sets the bit, re-checks, and futex-waits; whoever makes
   progress checks the bit (one load when nobody sleeps) and, if it is set,
   clears it and wakes every sleeper, so a woken waiter that dies strands
   nobody. No sleep lasts longer than MPQ__WAIT_SLICE_MS: a process killed
   between making progress and waking the sleepers delays them by at most
   that. */

#include <sys/eventfd.h>

#ifndef MPQ__TEST_POINT
#define MPQ__TEST_POINT(name) ((void)0)   /* a test may stop a process at a named instant */
#endif

#define MPQ__Q_MAGIC 0x5551504dU  /* "MPQU" */
#define MPQ__Q_DEFAULT_CAP 1024u
#define MPQ__Q_DEFAULT_MSG 65536u   /* a default queue: 64 KiB messages, ...   */
#define MPQ__Q_DEFAULT_INLINE 224u  /* ... 224 bytes in each slot (256 with its header) ... */
#define MPQ__Q_ARENA_FACTOR 4u      /* ... and room for 4 largest messages beside */
#define MPQ__CHUNK 256u             /* the arena's unit                         */
#define MPQ__Q_GROUP 16u            /* chunks that share a claim word            */
#define MPQ__Q_MAX_CHUNKS (1u << 24)
#define MPQ__Q_MAX_CAP (1u << 24)
#define MPQ__Q_MAX_MSG (1u << 30)
#define MPQ__Q_MAX_PRODUCERS 4096u
#define MPQ__SKIPPED 1u   /* pid field of a FULL slot that holds no message */
#define MPQ__PACKED 2u    /* pid field of a FULL slot that holds a packed batch */
#define MPQ__PACK_MAX 255u /* messages in one packed slot */
/* A packed slot's cursor: (lap:32 | taken:8 | pid:22): how many of its
   messages are gone, and who holds the next one (0: nobody). */
#define MPQ__CUR(lap, taken, pid) \
    ((uint64_t)((lap) & 0xffffffffu) << 32 | (uint64_t)(taken) << 22 | (uint64_t)(pid))
#define MPQ__CUR_LAP(c) ((uint32_t)((c) >> 32))
#define MPQ__CUR_TAKEN(c) ((uint32_t)((c) >> 22) & 0xffu)
#define MPQ__CUR_PID(c) ((uint32_t)(c) & MPQ__PIDMASK)
#define MPQ__LAPMASK ((((uint64_t)1) << 40) - 1)
#define MPQ__PIDMASK ((1u << 22) - 1)
#ifndef MPQ__STUCK_MS
#define MPQ__STUCK_MS 10       /* a slot held this long gets its holder checked */
#endif
#ifndef MPQ__WAIT_SLICE_MS
#define MPQ__WAIT_SLICE_MS 100 /* the longest single sleep of a waiter */
#endif
/* Spin budget, in pauses, before a waiter sleeps. Here a futex sleep and
   wake-up costs over 20 us (system calls cost ~1 us in this VM class), so
   a budget under ~20 us made waiters sleep on every message and cut 1->1
   throughput in half and round trips 40-fold; measured, 1024 pauses
   (~20 us) is where that stops. It adapts upwards while spinning pays.
   With more processes than CPUs (issue 15; bench_queue's "more processes
   than CPUs" table) sleeping sooner was measured and lost: a budget that
   decays to 0 when claims after a spin lose, with no yields, and one that
   shrinks when a change comes only after a yield, both cost more CPU per
   message and fell below a pipe where a slow producer feeds five
   consumers on two CPUs - every publish wakes every sleeping consumer
   (the eventcount wakes all), so a sleeping crowd costs a wake-up each
   per message, more than this spin. Sleeping promptly needs wake-one
   sleeps first. */
#define MPQ__SPIN_MIN 1024u
#define MPQ__SPIN_MAX 8192u
/* A claim looks at the clock every MPQ__CLAIM_TRIES looks: a race lost
   to other claimants again and again, or a state rewritten under it, may
   not stretch a timeout. */
#define MPQ__CLAIM_TRIES 256u

enum { MPQ__EMPTY = 0, MPQ__WRITING = 1, MPQ__FULL = 2, MPQ__READING = 3 };

static inline uint64_t mpq__st(uint64_t lap, unsigned phase, uint32_t pid)
{
    return (lap & MPQ__LAPMASK) << 24 | (uint64_t)phase << 22 | pid;
}
#define MPQ__ST_LAP(s) ((s) >> 24)
#define MPQ__ST_PHASE(s) ((unsigned)((s) >> 22) & 3u)
#define MPQ__ST_PID(s) ((uint32_t)(s) & MPQ__PIDMASK)
#define MPQ__HELD(s) ((MPQ__ST_PHASE(s) & 1u) != 0)  /* WRITING or READING */
/* The owner word: claimant's start time, and which lap and phase it is for. */
#define MPQ__OWNER(start, lap, phase) ((start) << 24 | ((lap) & 0x3fffff) << 2 | (phase))
#define MPQ__OWNER_TAG(st) ((MPQ__ST_LAP(st) & 0x3fffff) << 2 | MPQ__ST_PHASE(st))

typedef struct mpq__qslot {
    uint64_t state;   /* see above                                     */
    uint64_t owner;   /* MPQ__OWNER of the latest claimant             */
    uint32_t len;     /* message length (a packed slot: its bytes), valid in FULL */
    uint32_t ref;     /* 0: the bytes follow; else 1 + the first chunk of
                         their run in the arena, valid in FULL           */
    uint64_t cursor;  /* a packed slot's MPQ__CUR                       */
} mpq__qslot;

typedef struct mpq__qhdr {
    uint32_t magic, capacity, log2cap, max_msg;
    uint32_t stride, closed, poll_armed;
    uint32_t joinable;  /* a JoinableQueue (0 in queues of older mpq.h) */
    uint32_t producers; /* end of stream after this many (0: none, and in
                           queues of older mpq.h); their table follows the
                           slots, a 64-bit word each (MPQ__PR_*)      */
    uint32_t inline_max;/* bytes a slot holds (0 in queues of older
                           mpq.h: max_msg); larger messages go to ... */
    uint32_t chunks;    /* ... the arena's chunks (0: none), which follow
                           the producer table: a word each, then their
                           MPQ__CHUNK bytes each                        */
    uint32_t pad0[5];   /* (the lines below are each written by one side:
                           this one only read, every call) */
    uint64_t head;      /* next position to put: a hint, never ahead  */
    uint32_t arot;      /* where the next arena run is looked for (a hint;
                           on the producers' line, not the one above) */
    uint32_t pad1[13];
    uint64_t tail;      /* next position to get: a hint, never ahead  */
    uint64_t pad2[7];
    uint32_t data_ec;   /* consumers sleep here                       */
    uint32_t unfinished;/* joinable: messages put and not yet task_done
                           (on the line puts touch anyway, not the first) */
    uint32_t join_ec;   /* mpq_queue_join sleeps here                 */
    uint32_t pad3[13];
    uint32_t space_ec;  /* producers sleep here                       */
    uint32_t pad4[15];
} mpq__qhdr;

typedef char mpq__assert_qslot[sizeof(mpq__qslot) == 32 ? 1 : -1];
typedef char mpq__assert_qhdr[sizeof(mpq__qhdr) == 320 ? 1 : -1];

/* What a handle's puts (or gets) know of a slot they found held: which
   state, since when (CLOCK_BOOTTIME ns), and when its holder was last
   checked. Guarded by `lock`, which holds the pid of the process whose
   thread is inside (a pid not ours is a thread that did not survive fork). */
typedef struct mpq__qstuck {
    uint32_t lock;
    uint32_t cur;       /* st is a packed slot's cursor, not a state */
    uint64_t st, first, check;
} mpq__qstuck;

struct mpq_queue {
    mpq__qhdr *h;
    char      *slots;
    void      *base;
    size_t     length;      /* of the mapping */
    uint64_t   mask;
    uint32_t   log2cap, stride, max_msg;
    uint32_t   spin;        /* adaptive spin budget             (relaxed atomics) */
    int        efd;         /* eventfd behind mpq_queue_fileno, or -1 */
    uint32_t   poll_pid;    /* the process that polls it, or 0     (relaxed) */
    mpq__qstuck stuck[2];   /* held slots seen by puts [0], gets [1]       */
    struct mpq__qcopy *copies;  /* packed messages handed out by peek     */
    uint32_t   copies_lock; /* pid of the process whose thread holds it   */
    int        packs;       /* put_batch may pack (a layout-2 segment)  */
    int        joinable;    /* counts unfinished messages              */
    int        supervised;  /* a dead reader's slot is left to
                               mpq__q_recover_readers (the pool's server) */
    uint64_t   pidns;       /* the creator's pid namespace (0: unknown)  */
    uint64_t  *ptab;        /* the producer table, or NULL (no end of stream) */
    uint32_t   producers;   /* its entries                                 */
    uint32_t   pcheck;      /* CLOCK_MONOTONIC ms (mod 2^32, 0: never) of the last
                               look for dead producers    (relaxed atomics) */
    uint32_t   pnext;       /* the word that look starts at (relaxed atomics) */
    uint32_t   inl;         /* bytes a slot holds (inline_max)             */
    uint32_t   nchunks;     /* the arena's chunks, or 0                    */
    uint64_t  *awords;      /* their words: 0, or 1 + the position whose
                               message the chunk holds or held (free once
                               that message is gone: see "the arena")     */
    uint64_t  *gwords;      /* a claim word per MPQ__Q_GROUP chunks        */
    char      *arena;       /* their bytes                                 */
};

/* A packed message that peek handed out: a copy, so that no cursor stays
   held while the caller reads (see "packed batches"). The message follows
   the struct at the next 16-byte boundary of its block (MPQ_MALLOC may
   align to 8 only: ARMv7 glibc, a user's allocator), so the struct sits
   wherever that puts it, and keeps the block to free. */
typedef struct mpq__qcopy {
    struct mpq__qcopy *next;
    void              *block;   /* from MPQ_MALLOC */
} mpq__qcopy;

/* A copy's block for n bytes: returns the struct, the message at c + 1
   16-byte aligned; NULL without memory. */
static mpq__qcopy *mpq__qcopy_new(size_t n)
{
    char *block = (char *)MPQ_MALLOC(sizeof(mpq__qcopy) + 15 + (n ? n : 1));
    uintptr_t msg;
    mpq__qcopy *c;
    if (!block) return NULL;
    msg = ((uintptr_t)block + sizeof *c + 15) & ~(uintptr_t)15;
    c = (mpq__qcopy *)(void *)(block + (msg - (uintptr_t)block) - sizeof *c);
    c->block = block;
    return c;
}

/* True only if the claimant of slot s, held in state st since at least
   `first` (CLOCK_BOOTTIME ns), is certainly dead: its pid has exited (the
   whole process: a pidfd, unlike /proc, is not fooled by a main thread
   that exited before the others), or the pid now names a process started
   at another time than the claimant, or after `first`. What cannot be
   told (no /proc, hidepid) counts as alive. */
static int mpq__claimant_dead(const mpq__qslot *s, uint64_t st, uint64_t first)
{
    uint32_t pid = MPQ__ST_PID(st);
    uint64_t owner = mpq__load64(&s->owner, MPQ__ACQUIRE), now;
    long tck;
    if (pid == 0) return 0;
    if (mpq__pid_exited(pid)) return 1;
    now = mpq__proc_start(pid);
    if (now == 0) return 0;
    if ((owner & 0xffffff) == MPQ__OWNER_TAG(st) && (owner >> 24) != 0 && (owner >> 24) != now)
        return 1;  /* recorded start 0: the claimant could not read /proc */
    tck = sysconf(_SC_CLK_TCK);
    if (tck > 0 && tck <= 1000000000) {
        uint64_t tick = 1000000000u / (uint64_t)tck;
        if (now * tick > first + 2 * tick) return 1;
    }
    return 0;
}

/* Copies a message's n bytes into or out of a slot. Up to 128 bytes it
   copies as two overlapping runs of a fixed size (64, 32, 16, 8 or 4
   bytes) rather than a memcpy of n; nothing outside [0, n) is read or
   written. Compilers inline fixed-size runs: on x86-64, one to one with
   64-byte messages, that gave about a fifth more messages/s than the C
   library's memcpy (a call, and 32-byte moves). Where a compiler calls
   memcpy for a run instead (some 32-bit targets, -O0), it is two calls.
   Callers must not form dst or src from a NULL pointer, even for n = 0. */
static inline void mpq__copy(void *dst, const void *src, size_t n)
{
    char *d = (char *)dst;
    const char *s = (const char *)src;
    if (n >= 64 && n <= 128) {
        memcpy(d, s, 64);
        memcpy(d + n - 64, s + n - 64, 64);
    } else if (n >= 32 && n < 64) {
        memcpy(d, s, 32);
        memcpy(d + n - 32, s + n - 32, 32);
    } else if (n >= 16 && n < 32) {
        memcpy(d, s, 16);
        memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8 && n < 16) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else if (n > 0 && n < 4) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    } else if (n > 128) {
        memcpy(d, s, n);
    }
}

/* --- slots ------------------------------------------------------------------ */

static inline mpq__qslot *mpq__q_slot(const mpq_queue *q, uint64_t pos)
{
    return (mpq__qslot *)(void *)(q->slots + (size_t)(pos & q->mask) * q->stride);
}
static inline char *mpq__q_data(mpq__qslot *s) { return (char *)s + sizeof(mpq__qslot); }
static inline uint64_t mpq__q_lap(const mpq_queue *q, uint64_t pos) { return (pos >> q->log2cap) & MPQ__LAPMASK; }

/* Asks for the next put slot's first lines in exclusive state, so the next
   put finds them here instead of waiting for them (measured: about +20%
   messages/s one to one). */
static inline void mpq__q_prefetch_put(const mpq_queue *q, uint64_t pos)
{
    char *n = (char *)mpq__q_slot(q, pos);
    __builtin_prefetch(n, 1, 3);
    if (q->stride > 64) __builtin_prefetch(n + 64, 1, 3);
}

/* The slot whose data starts at buf, or NULL if buf is not one. */
static mpq__qslot *mpq__q_slot_of(const mpq_queue *q, const void *buf)
{
    const char *b = (const char *)buf, *first = q->slots + sizeof(mpq__qslot);
    size_t off;
    if (!buf || b < first) return NULL;
    off = (size_t)(b - first);
    if (off % q->stride != 0 || off / q->stride > q->mask) return NULL;
    return (mpq__qslot *)(void *)(b - sizeof(mpq__qslot));
}

/* --- the arena ---------------------------------------------------------------

   A queue made with inline_max below max_msg keeps only messages of up to
   inline_max bytes in its slots; a larger one (or a packed batch that
   needs more) goes to a run of consecutive MPQ__CHUNK-byte chunks of the
   arena, and its slot says where (`ref`). Each chunk has a 64-bit word:
   0, or 1 + the position whose message it holds or last held. A chunk is
   free when its word is 0 or names a position whose message is gone: the
   position's slot has moved past that position's lap (a get freed it), or
   holds nothing for it (FULL(SKIPPED): a dead or cancelled put). So no
   one gives chunks back: freeing the slot frees its run, in the same CAS,
   and a process killed at any instant leaves nothing to collect.
   Positions are never reused (2^40 laps), and a gone position stays gone.

   Runs are taken by the producer that already holds the position's slot
   (WRITING). Each MPQ__Q_GROUP chunks share a claim word: (1 + position)
   mod 2^48 << 16 | a mask of the chunks a claim in progress takes. A put
   claims each group of its run with one CAS (a packed batch of 32 small
   messages takes 9 chunks, one or two groups: 9 CASes were a quarter of
   its cost in this VM's fast state, and a 64 KiB message took 256 - now
   16, 15.4 -> 20.2 GB/s), then looks at the chunks again (now
   nobody else can take them), writes its name into their words and ends
   the claims (mask 0). A claim whose position is not being written any
   more (its put was killed and taken over) is over: the next claim
   replaces it. Only a claimant writes chunk words, so a chunk seen free
   stays free while its group is claimed; and since every claimant looks
   at the chunks after its CAS, a group word that comes back to a value a
   slow claimant saw misleads nobody. A reservation's unused tail is given
   back by setting its words to 0.

   A producer that finds no run gives its position up (publishes it
   SKIPPED, so nothing waits behind it) and waits for room, then puts
   again at a new position: a producer waiting for room never holds a
   slot, so messages already queued always drain. */

static inline uint64_t *mpq__q_aword(const mpq_queue *q, uint32_t c) { return q->awords + c; }
static inline char *mpq__q_achunk(const mpq_queue *q, uint32_t c) { return q->arena + (size_t)c * MPQ__CHUNK; }
/* Chunks for len bytes (len at most MPQ__Q_MAX_CHUNKS chunks' worth). */
static inline uint32_t mpq__q_nch(uint64_t len) { return (uint32_t)((len + MPQ__CHUNK - 1) / MPQ__CHUNK); }
/* The words of an arena of `chunks`: one a chunk, one a group. */
static inline size_t mpq__q_awords(uint32_t chunks)
{
    return (size_t)chunks + (chunks + MPQ__Q_GROUP - 1) / MPQ__Q_GROUP;
}
/* A claim word: position p's claim of the chunks in `mask` (0: none). */
#define MPQ__Q_TAGMASK ((((uint64_t)1) << 48) - 1)
#define MPQ__Q_GW(p, mask) ((((p) + 1) & MPQ__Q_TAGMASK) << 16 | (uint64_t)(mask))

/* Whether the message of position p is gone: its slot has moved past p's
   lap, or holds no message for it. */
static int mpq__q_pos_done(const mpq_queue *q, uint64_t p)
{
    uint64_t lap = mpq__q_lap(q, p), st = mpq__load64(&mpq__q_slot(q, p)->state, MPQ__ACQUIRE);
    return MPQ__ST_LAP(st) != lap || st == mpq__st(lap, MPQ__FULL, MPQ__SKIPPED);
}

/* Whether a chunk whose word is w is free (see "the arena"). *memo is the
   last word found free, 0 at first: a run's chunks share their word, and
   a gone position stays gone, so its slot is read once. The slot's state
   is read with acquire: the get that freed it has read its message. */
static int mpq__q_cfree(const mpq_queue *q, uint64_t w, uint64_t *memo)
{
    if (w == 0 || w == *memo) return 1;
    if (!mpq__q_pos_done(q, w - 1)) return 0;
    *memo = w;
    return 1;
}

/* The put whose claim a group's claim word v shows in progress, named as
   a chunk word would name it (1 + its position), or 0 if none is: v's
   mask is empty, or the position it names is not being written (the claim
   ended, or its put was killed and taken over). v names the position by
   its low 48 bits: its slot, and the low min(40, 48 - log2cap) bits of its
   lap (a claim word left for that many bits' worth of laps of its slot can
   look in progress while another put writes there - a put then waits for
   that put, no longer). */
static uint64_t mpq__q_claimer(const mpq_queue *q, uint64_t v)
{
    uint64_t p = ((v >> 16) - 1) & MPQ__Q_TAGMASK, st, low;
    if ((v & 0xffffu) == 0) return 0;
    low = q->log2cap <= 8 ? MPQ__LAPMASK : (((uint64_t)1) << (48 - q->log2cap)) - 1;
    st = mpq__load64(&mpq__q_slot(q, p)->state, MPQ__ACQUIRE);
    if (MPQ__ST_PHASE(st) != MPQ__WRITING || ((MPQ__ST_LAP(st) ^ (p >> q->log2cap)) & low) != 0) return 0;
    return (MPQ__ST_LAP(st) << q->log2cap | (p & q->mask)) + 1;
}

/* Where a look for a run goes on after chunk c was found held (by w, a
   claim of its group if `group`): past the group, or past the chunks
   that share c's word (its holder's run). At most the arena's end. */
static uint32_t mpq__q_past(const mpq_queue *q, uint32_t c, uint64_t w, int group)
{
    uint32_t end = (c / MPQ__Q_GROUP + 1) * MPQ__Q_GROUP;
    if (group) return end < q->nchunks ? end : q->nchunks;
    for (c++; c < q->nchunks && mpq__load64(mpq__q_aword(q, c), MPQ__RELAXED) == w; c++) {}
    return c;
}

/* How many chunks from `at` on, up to n, are free (n: all of them). At the
   first held one: *w names its holder, *next is where to look on. A chunk
   is held when its word says so, or a claim of its group is in progress. */
static uint32_t mpq__q_free_run(const mpq_queue *q, uint32_t at, uint32_t n, uint64_t *memo, uint64_t *w,
                                uint32_t *next)
{
    uint32_t i, c;
    for (i = 0; i < n; i++) {
        c = at + i;
        if ((i == 0 || c % MPQ__Q_GROUP == 0) &&
            (*w = mpq__q_claimer(q, mpq__load64(&q->gwords[c / MPQ__Q_GROUP], MPQ__ACQUIRE))) != 0) {
            *next = mpq__q_past(q, c, *w, 1);
            return i;
        }
        *w = mpq__load64(mpq__q_aword(q, c), MPQ__RELAXED);
        if (!mpq__q_cfree(q, *w, memo)) {
            *next = mpq__q_past(q, c, *w, 0);
            return i;
        }
    }
    return n;
}

/* Takes chunks [at, at + n), just seen free, for position p, whose slot
   the caller holds (see "the arena": claim each group, look again, name
   the chunks p's, end the claims). Returns n, or the index of a chunk
   found held meanwhile (*w, *next as mpq__q_free_run), with every claim it
   made ended and nothing taken. */
static uint32_t mpq__q_take_run(mpq_queue *q, uint32_t at, uint32_t n, uint64_t p, uint64_t *memo, uint64_t *w,
                                uint32_t *next)
{
    uint32_t g, g0 = at / MPQ__Q_GROUP, g1 = (at + n - 1) / MPQ__Q_GROUP, c, lo, hi, i = 0;
    for (g = g0; g <= g1; g++) {
        uint64_t *gw = &q->gwords[g], v = mpq__load64(gw, MPQ__ACQUIRE);
        uint32_t mask;
        lo = g == g0 ? at : g * MPQ__Q_GROUP;
        hi = g == g1 ? at + n : (g + 1) * MPQ__Q_GROUP;
        mask = (uint32_t)((((uint64_t)1 << (hi - lo)) - 1) << (lo % MPQ__Q_GROUP));
        for (;;) {
            if ((*w = mpq__q_claimer(q, v)) != 0) {
                i = lo - at;
                *next = mpq__q_past(q, lo, *w, 1);
                goto undo;
            }
            if (mpq__cas64(gw, &v, MPQ__Q_GW(p, mask), MPQ__SEQ_CST)) break;
            /* A failed CAS reads v relaxed: read it again with acquire, so
               that the claimer's slot is read after that claim was made. */
            v = mpq__load64(gw, MPQ__ACQUIRE);
        }
        MPQ__TEST_POINT("arena_claim");
        for (c = lo; c < hi; c++) {
            *w = mpq__load64(mpq__q_aword(q, c), MPQ__ACQUIRE);
            if (!mpq__q_cfree(q, *w, memo)) {
                i = c - at;
                *next = mpq__q_past(q, c, *w, 0);
                g++;   /* this group's claim ends too */
                goto undo;
            }
        }
    }
    for (c = at; c < at + n; c++) mpq__store64(mpq__q_aword(q, c), p + 1, MPQ__RELAXED);
    MPQ__TEST_POINT("arena_named");
    for (g = g0; g <= g1; g++) mpq__store64(&q->gwords[g], MPQ__Q_GW(p, 0), MPQ__RELEASE);
    mpq__ec_signal(&q->h->space_ec);   /* a put that looked meanwhile waits on our slot */
    return n;
undo:
    while (g-- > g0) mpq__store64(&q->gwords[g], MPQ__Q_GW(p, 0), MPQ__RELEASE);
    mpq__ec_signal(&q->h->space_ec);
    return i;
}

/* Gives back chunks [first, first + n) that position p holds and does not
   need (those that are not p's any more are left alone). */
static void mpq__q_afree(mpq_queue *q, uint32_t first, uint32_t n, uint64_t p)
{
    uint32_t i, freed = 0;
    for (i = 0; i < n && first + i < q->nchunks; i++) {
        uint64_t w = p + 1;
        if (mpq__cas64(mpq__q_aword(q, first + i), &w, 0, MPQ__SEQ_CST)) freed = 1;
    }
    if (freed) mpq__ec_signal(&q->h->space_ec);   /* a put may wait for room */
}

/* Takes a run of n chunks for position p, whose slot the caller holds.
   Returns 1 + its first chunk, or 0 if there is none (*held_by: the
   holder of a chunk in the way, named as in a chunk's word, to wait on).
   With p == MPQ__Q_LOOK it only looks: 1 + the first chunk of a free run,
   taken by nobody. The look starts where the last run ended: gets free
   runs in about the order they were taken, so the room is usually there. */
#define MPQ__Q_LOOK (~(uint64_t)0)
static uint32_t mpq__q_alloc(mpq_queue *q, uint32_t n, uint64_t p, uint64_t *held_by)
{
    uint32_t N = q->nchunks, at, i, looked, next = 0;
    uint64_t memo = 0, w = 0;
    *held_by = 0;
    if (n == 0 || n > N) return 0;
    at = mpq__load32(&q->h->arot, MPQ__RELAXED);
    if (at >= N) at = 0;
    for (looked = 0; looked < N;) {
        if (at + n > N) {              /* runs do not wrap: from 0 */
            looked += N - at;
            at = 0;
            continue;
        }
        i = mpq__q_free_run(q, at, n, &memo, &w, &next);
        if (i == n && p == MPQ__Q_LOOK) return at + 1;
        if (i == n && (i = mpq__q_take_run(q, at, n, p, &memo, &w, &next)) == n) {
            mpq__store32(&q->h->arot, at + n < N ? at + n : 0, MPQ__RELAXED);
            return at + 1;
        }
        *held_by = w;
        looked += next - at;
        at = next < N ? next : 0;
    }
    return 0;
}

/* The bytes of the message in slot s (len bytes, ref as its slot says),
   or NULL if they would lie outside the slot or the arena. */
static char *mpq__q_payload(const mpq_queue *q, mpq__qslot *s, uint32_t len, uint32_t ref)
{
    if (ref == 0) return len <= q->inl ? mpq__q_data(s) : NULL;
    if (len > q->max_msg || ref - 1 >= q->nchunks || mpq__q_nch(len) > q->nchunks - (ref - 1)) return NULL;
    return mpq__q_achunk(q, ref - 1);
}

/* The message count a packed slot's bytes start with (0 if its length
   and ref do not make sense). */
static uint32_t mpq__q_pack_count(const mpq_queue *q, mpq__qslot *s)
{
    uint32_t len = mpq__load32(&s->len, MPQ__RELAXED), count = 0;
    const char *data = mpq__q_payload(q, s, len, mpq__load32(&s->ref, MPQ__RELAXED));
    if (data && len >= 4) memcpy(&count, data, 4);
    return count;
}

/* The chunk of the arena that buf starts, or -1 if it is not one. */
static int64_t mpq__q_chunk_of(const mpq_queue *q, const void *buf)
{
    const char *b = (const char *)buf;
    if (!q->nchunks || !buf || b < q->arena || (size_t)(b - q->arena) % MPQ__CHUNK != 0 ||
        (size_t)(b - q->arena) / MPQ__CHUNK >= q->nchunks)
        return -1;
    return (int64_t)((size_t)(b - q->arena) / MPQ__CHUNK);
}

static void mpq__q_poke(mpq_queue *q)
{
    uint64_t one = 1;
    while (write(q->efd, &one, sizeof one) < 0 && errno == EINTR) {}
}

/* Tells sleeping consumers, and a poller, that a message is there. The
   poll flag is only read here: the poller clears it, so a producer killed
   in between cannot leave it cleared. */
static void mpq__q_signal_data(mpq_queue *q)
{
    mpq__ec_signal(&q->h->data_ec);
    if (q->efd >= 0 && mpq__load32(&q->h->poll_armed, MPQ__SEQ_CST)) mpq__q_poke(q);
}

/* Whether a claim has looked long enough and must give up (-EAGAIN, for
   its caller to wait or time out): its deadline (monotonic ns, -1: none)
   has passed - asked every MPQ__CLAIM_TRIES looks - or it made more looks
   than two laps and those tries (every look but a lost race moves on a
   position, and what it wants is never more than a lap away). */
static int mpq__q_gave_up(const mpq_queue *q, uint64_t *tries, int64_t deadline)
{
    uint64_t n = ++*tries;
    if (n % MPQ__CLAIM_TRIES != 0) return 0;
    return n > 2 * (q->mask + 1) + MPQ__CLAIM_TRIES || (deadline >= 0 && mpq__now_ns() >= deadline);
}

/* Claims the slot of the next put position. Returns it (position in *pos),
   or NULL with *why = -EPIPE (closed), -EAGAIN (full, or it gave up - see
   mpq__q_gave_up: *pos and *seen tell which slot and state block it) or
   -EIO (the shared state is corrupt). */
static mpq__qslot *mpq__q_claim_put(mpq_queue *q, uint32_t me, uint64_t start, int64_t deadline,
                                    uint64_t *pos, uint64_t *seen, int *why)
{
    mpq__qhdr *h = q->h;
    uint64_t tries = 0;
    for (;;) {
        uint64_t p = mpq__load64(&h->head, MPQ__ACQUIRE), p0 = p;
        uint64_t lap = mpq__q_lap(q, p), st, d;
        mpq__qslot *s = mpq__q_slot(q, p);
        if (mpq__load32(&h->closed, MPQ__ACQUIRE)) { *why = -EPIPE; return NULL; }
        st = mpq__load64(&s->state, MPQ__ACQUIRE);
        d = (MPQ__ST_LAP(st) - lap) & MPQ__LAPMASK;
        if (mpq__q_gave_up(q, &tries, deadline)) {
            *pos = p;
            *seen = st;
            *why = -EAGAIN;
            return NULL;
        }
        if (st == mpq__st(lap, MPQ__EMPTY, 0)) {
            if (mpq__cas64(&s->state, &st, mpq__st(lap, MPQ__WRITING, me), MPQ__SEQ_CST)) {
                mpq__store64(&s->owner, MPQ__OWNER(start, lap, MPQ__WRITING), MPQ__RELEASE);
                mpq__cas64(&h->head, &p0, p + 1, MPQ__RELEASE);
                mpq__q_prefetch_put(q, p + 1);
                *pos = p;
                return s;
            }
        } else if (d == 0 || d == 1) {
            mpq__cas64(&h->head, &p0, p + 1, MPQ__RELEASE);  /* position taken: head lags */
        } else if (mpq__load64(&h->head, MPQ__ACQUIRE) != p) {
            continue;                                        /* a stale look: again */
        } else if (d == MPQ__LAPMASK && MPQ__ST_PHASE(st) != MPQ__EMPTY) {
            *pos = p;                                        /* last lap still there: full */
            *seen = st;
            *why = -EAGAIN;
            return NULL;
        } else {
            *why = -EIO;   /* a state no protocol step makes: shared memory was overwritten */
            return NULL;
        }
    }
}

static uint64_t mpq__q_pos_of(const mpq_queue *q, const mpq__qslot *s, uint64_t lap);

/* Takes n from a joinable queue's unfinished count, waking joiners when
   it reaches zero. Returns 0, or -EOVERFLOW if fewer than n are counted. */
static int mpq__queue_finished(mpq_queue *q, uint32_t n)
{
    uint32_t u = mpq__load32(&q->h->unfinished, MPQ__RELAXED);
    do {
        if (u < n) return -EOVERFLOW;
    } while (!mpq__cas32(&q->h->unfinished, &u, u - n, MPQ__SEQ_CST));
    if (u == n) mpq__ec_signal(&q->h->join_ec);
    return 0;
}

/* Publishes the slot this process holds for a put (lap `lap`) as a message
   of len bytes (mark 0), a packed batch of len bytes (MPQ__PACKED), or as
   none (MPQ__SKIPPED), and wakes consumers. `ref`: 0 if the bytes are in
   the slot, else 1 + the first chunk of their run in the arena (free
   with the position if the put fails: it is published SKIPPED). A put that
   finds the queue closed once it holds its slot publishes nothing and
   fails, so no message lands behind a consumer that saw "closed, empty".
   A joinable queue counts the messages first.
   Returns 0, -EPIPE, or -EOWNERDEAD (the slot was taken from us). */
static int mpq__q_publish(mpq_queue *q, mpq__qslot *s, uint64_t lap, uint32_t me,
                          uint32_t len, uint32_t mark, uint32_t ref)
{
    uint64_t held = mpq__st(lap, MPQ__WRITING, me);
    uint32_t counted = 0;
    int rc = 0;
    if (mpq__load64(&s->state, MPQ__ACQUIRE) != held) return -EOWNERDEAD;  /* len is not ours */
    if (mark != MPQ__SKIPPED && mpq__load32(&q->h->closed, MPQ__SEQ_CST)) {
        mark = MPQ__SKIPPED;
        rc = -EPIPE;
    }
    if (mark != MPQ__SKIPPED) {
        mpq__store32(&s->len, len, MPQ__RELAXED);
        mpq__store32(&s->ref, ref, MPQ__RELAXED);
    }
    if (mark == MPQ__PACKED) mpq__store64(&s->cursor, MPQ__CUR(lap, 0, 0), MPQ__RELEASE);
    if (q->joinable && mark != MPQ__SKIPPED) {
        /* Counted before it is visible, so a task_done can never come
           first; a packed slot starts with its message count. */
        counted = 1;
        if (mark == MPQ__PACKED) memcpy(&counted, ref ? mpq__q_achunk(q, ref - 1) : mpq__q_data(s), 4);
        mpq__add32(&q->h->unfinished, counted, MPQ__SEQ_CST);
    }
    if (!mpq__cas64(&s->state, &held, mpq__st(lap, MPQ__FULL, mark), MPQ__SEQ_CST)) {
        if (counted) mpq__queue_finished(q, counted);
        return -EOWNERDEAD;
    }
    mpq__q_signal_data(q);
    if (mark == MPQ__SKIPPED && ref) mpq__ec_signal(&q->h->space_ec);   /* its run is free */
    return rc;
}

/* Frees the slot this process holds for a get, and wakes producers.
   Returns 0, or -EOWNERDEAD (the slot was taken from us: what was copied
   out of it may be torn). */
static int mpq__q_free(mpq_queue *q, mpq__qslot *s, uint64_t lap, uint32_t me)
{
    uint64_t held = mpq__st(lap, MPQ__READING, me);
    if (!mpq__cas64(&s->state, &held, mpq__st(lap + 1, MPQ__EMPTY, 0), MPQ__SEQ_CST))
        return -EOWNERDEAD;
    mpq__ec_signal(&q->h->space_ec);
    return 0;
}

/* --- packed batches ----------------------------------------------------------

   put_batch packs as many of its messages as fit into one slot (data: a
   u32 count, then per message a u32 length and the bytes, padded to 4) and
   publishes it FULL(lap, MPQ__PACKED): one claim and one publish for the
   lot, and the bytes back to back. Such a slot stays FULL until its last
   message is gone. Its cursor says how many are gone and who holds the
   next: a consumer claims one (or, in get_batch, several) with a CAS on
   the cursor, copies them, and gives the cursor back advanced - freeing the
   slot, and only then moving the tail on, when none is left. Consumers
   behind a held cursor wait for it as for a put in progress. A dead holder
   is found as for a held slot (its owner word is tagged with lap and
   cursor) and loses the one message it held: the cursor moves past it,
   the rest stay for others (it had returned none of them). */

typedef struct mpq__qpk {   /* what a claim found */
    const char *data;       /* the message's bytes                        */
    const char *base;       /* packed: the slot's bytes (its count first)  */
    uint32_t    ref;        /* the slot's ref: its bytes are in the arena  */
    uint64_t    cur;        /* packed: the cursor we hold; after -EAGAIN:
                               the held cursor to wait on, or 0           */
    uint32_t    count;      /* packed: messages in the slot; 0: not packed */
    uint32_t    off;        /* packed: offset of the message's length word */
    uint32_t    total;      /* packed: the slot's bytes, checked           */
} mpq__qpk;

/* The message whose length word is at `off` in a packed slot's data of
   `total` bytes: its bytes (length in *len), or NULL if it does not fit. */
static const char *mpq__q_rec(const char *d, uint32_t total, uint32_t off, uint32_t *len)
{
    uint32_t n;
    if (off < 4 || off > total || total - off < 4) return NULL;
    memcpy(&n, d + off, 4);
    if (n > total - off - 4) return NULL;
    *len = n;
    return d + off + 4;
}

static uint32_t mpq__q_rec_next(uint32_t off, uint32_t len) { return off + 4 + ((len + 3) & ~3u); }

/* Position of slot s in lap `lap`. */
static uint64_t mpq__q_pos_of(const mpq_queue *q, const mpq__qslot *s, uint64_t lap)
{
    return lap << q->log2cap | (uint64_t)((size_t)((const char *)s - q->slots) / q->stride);
}

/* Moves slot s, at position pos and in state st, on to the next lap as
   EMPTY, then the tail past it, and wakes producers - once, whoever of
   several calls it: a skipped slot, a packed one whose last message is
   gone, or one whose contents no put writes (scribbled over). */
static void mpq__q_retire(mpq_queue *q, mpq__qslot *s, uint64_t st, uint64_t pos)
{
    uint64_t p = pos;
    if (mpq__cas64(&s->state, &st, mpq__st(MPQ__ST_LAP(st) + 1, MPQ__EMPTY, 0), MPQ__SEQ_CST)) {
        mpq__cas64(&q->h->tail, &p, pos + 1, MPQ__RELEASE);
        mpq__ec_signal(&q->h->space_ec);
    }
}

/* The last message of packed slot s (at pos) is gone: retires the slot;
   wakes consumers that waited for it too. */
static void mpq__q_pack_free(mpq_queue *q, mpq__qslot *s, uint64_t pos)
{
    /* Its run is free when the slot has moved on, not before: while it
       is FULL(PACKED), consumers read its count and records from the run
       without holding anything, and must never find another batch there. */
    mpq__q_retire(q, s, mpq__st(mpq__q_lap(q, pos), MPQ__FULL, MPQ__PACKED), pos);
    MPQ__TEST_POINT("pack_free");
    mpq__q_signal_data(q);
}

/* Gives back the cursor of packed slot s (at pos), held as `held`, with m
   more of its `count` messages gone. Returns 0, or -EOWNERDEAD (the cursor
   was taken from us: what was copied may be torn). */
static int mpq__q_unpack(mpq_queue *q, mpq__qslot *s, uint64_t pos, uint64_t held, uint32_t m,
                         uint32_t count)
{
    uint32_t taken = MPQ__CUR_TAKEN(held) + m;
    if (!mpq__cas64(&s->cursor, &held, MPQ__CUR(mpq__q_lap(q, pos), taken, 0), MPQ__SEQ_CST))
        return -EOWNERDEAD;
    if (taken >= count) mpq__q_pack_free(q, s, pos);
    else mpq__q_signal_data(q);
    return 0;
}

/* A look at the tail as a get takes it: its position *t, that position's
   lap, its slot (returned), the slot's state, and *d, how far the state's
   lap is ahead of the position's (MPQ__LAPMASK: one lap behind). */
static inline mpq__qslot *mpq__q_tail(const mpq_queue *q, uint64_t *t, uint64_t *lap, uint64_t *st, uint64_t *d)
{
    mpq__qslot *s;
    *t = mpq__load64(&q->h->tail, MPQ__ACQUIRE);
    *lap = mpq__q_lap(q, *t);
    s = mpq__q_slot(q, *t);
    *st = mpq__load64(&s->state, MPQ__ACQUIRE);
    *d = (MPQ__ST_LAP(*st) - *lap) & MPQ__LAPMASK;
    return s;
}

/* Claims the oldest message. Returns its slot (position in *pos, length in
   *len, bytes and packing in *pk), or NULL with *why = -EAGAIN (nothing
   ready, or it gave up - see mpq__q_gave_up: *pos and *seen tell which
   slot and state to wait on, pk->cur a held cursor), -EPIPE (closed and drained), -EMSGSIZE (its length, in
   *len, exceeds cap; it stays), or -EIO (corrupt). Skipped slots are
   consumed on the way. */
static mpq__qslot *mpq__q_claim_get(mpq_queue *q, uint32_t me, uint64_t start, int64_t deadline, size_t cap,
                                    uint64_t *pos, uint64_t *seen, uint32_t *len, mpq__qpk *pk,
                                    int *why)
{
    mpq__qhdr *h = q->h;
    uint64_t tries = 0;
    pk->cur = 0;
    pk->count = 0;
    pk->ref = 0;
    for (;;) {
        uint64_t t, t0, lap, st, d;
        mpq__qslot *s = mpq__q_tail(q, &t, &lap, &st, &d);
        unsigned phase = MPQ__ST_PHASE(st);
        t0 = t;
        if (mpq__load32(&h->closed, MPQ__ACQUIRE) > 1) {   /* shut down at once: nothing more is taken */
            *pos = t;
            *seen = st;
            *why = -EPIPE;
            return NULL;
        }
        if (mpq__q_gave_up(q, &tries, deadline)) {
            *pos = t;
            *seen = st;
            *why = -EAGAIN;
            return NULL;
        }
        if (st == mpq__st(lap, MPQ__FULL, 0)) {
            uint32_t n = mpq__load32(&s->len, MPQ__RELAXED), ref = mpq__load32(&s->ref, MPQ__RELAXED);
            char *bytes = mpq__q_payload(q, s, n, ref);
            if (!bytes || n > cap) {
                __atomic_thread_fence(MPQ__ACQUIRE);
                if (mpq__load64(&s->state, MPQ__ACQUIRE) != st) continue;  /* not ours to judge */
                *len = n;
                *why = -EMSGSIZE;
                if (bytes) return NULL;
                /* A length no put writes: drop that slot, once, and say so. */
                *why = -EIO;
                mpq__q_retire(q, s, st, t);
                return NULL;
            }
            if (mpq__cas64(&s->state, &st, mpq__st(lap, MPQ__READING, me), MPQ__SEQ_CST)) {
                mpq__store64(&s->owner, MPQ__OWNER(start, lap, MPQ__READING), MPQ__RELEASE);
                mpq__cas64(&h->tail, &t0, t + 1, MPQ__RELEASE);
                *pos = t;
                *len = n;
                pk->data = bytes;
                pk->ref = ref;
                return s;
            }
        } else if (st == mpq__st(lap, MPQ__FULL, MPQ__PACKED)) {
            uint64_t cw = mpq__load64(&s->cursor, MPQ__ACQUIRE);
            uint32_t total = mpq__load32(&s->len, MPQ__RELAXED), count = 0, taken = MPQ__CUR_TAKEN(cw);
            uint32_t n = 0, off = 4, i, ref = mpq__load32(&s->ref, MPQ__RELAXED);
            const char *data = mpq__q_payload(q, s, total, ref), *r = NULL;
            if (total >= 4 && data) memcpy(&count, data, 4);
            if (count >= 2 && count <= MPQ__PACK_MAX && taken < count)
                for (i = 0, r = mpq__q_rec(data, total, off, &n); r && i < taken; i++)
                    r = mpq__q_rec(data, total, off = mpq__q_rec_next(off, n), &n);
            __atomic_thread_fence(MPQ__ACQUIRE);   /* the reads above come before ... */
            if (mpq__load64(&s->state, MPQ__ACQUIRE) != st) continue;   /* ... this: moved on? */
            if (MPQ__CUR_LAP(cw) != (uint32_t)lap || count < 2 || count > MPQ__PACK_MAX ||
                taken > count || (taken < count && !r)) {
                *why = -EIO;                                         /* scribbled over */
                *len = 0;
                mpq__q_retire(q, s, st, t);
                return NULL;
            }
            if (taken == count) {               /* its last taker died before freeing it */
                mpq__q_pack_free(q, s, t);
                continue;
            }
            if (MPQ__CUR_PID(cw) != 0) {        /* a message of it is held: wait */
                *pos = t;
                *seen = st;
                pk->cur = cw;
                *why = -EAGAIN;
                return NULL;
            }
            if (n > cap) {
                *len = n;
                *why = -EMSGSIZE;
                return NULL;
            }
            if (!mpq__cas64(&s->cursor, &cw, MPQ__CUR(lap, taken, me), MPQ__SEQ_CST)) continue;
            if (mpq__load64(&s->state, MPQ__SEQ_CST) != st) {
                /* The slot moved on under a stale look (2^32 laps, or a
                   dropped slot's cursor): give the cursor back, look again. */
                uint64_t mine = MPQ__CUR(lap, taken, me);
                mpq__cas64(&s->cursor, &mine, cw, MPQ__SEQ_CST);
                continue;
            }
            mpq__store64(&s->owner, MPQ__OWNER(start, lap << 8 | taken, MPQ__READING), MPQ__RELEASE);
            *pos = t;
            *len = n;
            pk->data = r;
            pk->ref = ref;
            pk->base = data;
            pk->cur = MPQ__CUR(lap, taken, me);
            pk->count = count;
            pk->off = off;
            pk->total = total;
            return s;
        } else if (st == mpq__st(lap, MPQ__FULL, MPQ__SKIPPED)) {
            mpq__q_retire(q, s, st, t);
        } else if ((d == 0 && phase == MPQ__READING) || d == 1) {
            mpq__cas64(&h->tail, &t0, t + 1, MPQ__RELEASE);  /* position taken: tail lags */
        } else if (mpq__load64(&h->tail, MPQ__ACQUIRE) != t) {
            continue;                                        /* a stale look: again */
        } else if ((d == 0 && (phase == MPQ__EMPTY || phase == MPQ__WRITING)) ||
                   (d == MPQ__LAPMASK && phase == MPQ__READING)) {
            /* Empty, a put in progress, or last lap's get still reading. A
               closed queue has nothing more to give unless a put is on its
               way; the seq_cst re-load pairs with put's closed check. */
            if (phase != MPQ__WRITING && mpq__load32(&h->closed, MPQ__SEQ_CST) &&
                mpq__load64(&s->state, MPQ__SEQ_CST) == st) {
                *why = -EPIPE;
                return NULL;
            }
            *pos = t;
            *seen = st;
            *why = -EAGAIN;
            return NULL;
        } else {
            *why = -EIO;
            return NULL;
        }
    }
}

/* If the claimant of slot s (state seen, held since `first`) is dead,
   moves the slot on in one CAS. Returns 1 if the slot moved on. */
static int mpq__q_takeover(mpq_queue *q, mpq__qslot *s, uint64_t seen, uint64_t first)
{
    uint64_t lap = MPQ__ST_LAP(seen);
    if (!mpq__claimant_dead(s, seen, first)) return 0;
    if (MPQ__ST_PHASE(seen) == MPQ__WRITING) {
        if (mpq__cas64(&s->state, &seen, mpq__st(lap, MPQ__FULL, MPQ__SKIPPED), MPQ__SEQ_CST)) {
            mpq__q_signal_data(q);                /* the dead put's message is lost */
            if (q->nchunks) mpq__ec_signal(&q->h->space_ec);   /* and its run free */
        }
    } else if (mpq__cas64(&s->state, &seen, mpq__st(lap + 1, MPQ__EMPTY, 0), MPQ__SEQ_CST)) {
        mpq__ec_signal(&q->h->space_ec);          /* the dead get's message is lost */
    }
    return 1;
}

/* If the holder of packed slot s's cursor (state seen, cursor cw) is dead,
   moves the cursor past the message it held. Returns 1 if it moved. */
static int mpq__q_cursor_takeover(mpq_queue *q, mpq__qslot *s, uint64_t seen, uint64_t cw,
                                  uint64_t first)
{
    uint64_t lap = MPQ__ST_LAP(seen);
    uint32_t taken = MPQ__CUR_TAKEN(cw), count = 0;
    /* Its owner word is tagged (lap << 8 | taken, READING): look at it as
       at the claimant of such a slot. */
    if (!mpq__claimant_dead(s, mpq__st(lap << 8 | taken, MPQ__READING, MPQ__CUR_PID(cw)), first))
        return 0;
    count = mpq__q_pack_count(q, s);   /* checked when the cursor was taken */
    mpq__q_unpack(q, s, mpq__q_pos_of(q, s, lap), cw, 1, count);   /* its message is lost */
    return 1;
}

/* Called when a claim found slot s held (state seen; or, cw != 0, packed
   with its cursor held as cw): remembers since when, and from
   MPQ__STUCK_MS on checks the holder every MPQ__STUCK_MS,
   taking the slot over if it is dead. One tracker per side (puts wait at
   the head, gets at the tail), kept in the handle, so callers that only
   ever try once (timeout 0, poll loops) recover dead holders too. A thread
   that finds the tracker busy skips the check. Returns 1 if the slot moved
   on. */
static int mpq__q_stuck(mpq_queue *q, int side, mpq__qslot *s, uint64_t seen, uint64_t cw, uint32_t me)
{
    mpq__qstuck *k = &q->stuck[side];
    uint64_t key = cw ? cw : seen;
    uint32_t cur;
    uint64_t now;
    int moved = 0;
    if (cw ? MPQ__CUR_PID(cw) == 0 : (!MPQ__HELD(seen) || MPQ__ST_PID(seen) == 0)) return 0;
    if (!cw && q->supervised && MPQ__ST_PHASE(seen) == MPQ__READING) return 0;
    cur = mpq__load32(&k->lock, MPQ__RELAXED);
    if (cur == me || !mpq__cas32(&k->lock, &cur, me, MPQ__ACQUIRE)) return 0;
    now = mpq__boot_ns();
    if (k->st != key || k->cur != (cw != 0)) {
        k->st = key;
        k->cur = cw != 0;
        k->first = now;
        k->check = now;
    } else if (now - k->check >= (uint64_t)MPQ__STUCK_MS * 1000000u) {
        k->check = now;
        moved = cw ? mpq__q_cursor_takeover(q, s, seen, cw, k->first)
                   : mpq__q_takeover(q, s, seen, k->first);
    }
    mpq__store32(&k->lock, 0, MPQ__RELEASE);
    return moved;
}

/* For a supervised queue (the pool's tasks): hands every message that
   process `pid` holds READING at positions from `from` up to the tail to
   fn, then frees its slot. The caller knows pid is dead and not yet reaped
   (so not reused), and that it claimed nothing before `from` (a tail it
   read before its get); nobody else moves a dead reader's slot in such a
   queue, so the message is still whole. */
static void mpq__q_recover_readers(mpq_queue *q, uint32_t pid, uint64_t from,
                                   void (*fn)(void *ctx, const void *msg, uint32_t len), void *ctx)
{
    uint64_t pos, end = mpq__load64(&q->h->tail, MPQ__SEQ_CST) + 1;
    if (end - from > q->mask + 1) from = end - (q->mask + 1);
    for (pos = from; pos != end; pos++) {
        mpq__qslot *s = mpq__q_slot(q, pos);
        uint64_t st = mpq__load64(&s->state, MPQ__ACQUIRE);
        uint32_t len;
        if (MPQ__ST_PHASE(st) != MPQ__READING || MPQ__ST_PID(st) != (pid & MPQ__PIDMASK)) continue;
        {
            uint32_t ref = mpq__load32(&s->ref, MPQ__RELAXED);
            const char *data;
            len = mpq__load32(&s->len, MPQ__RELAXED);
            if ((data = mpq__q_payload(q, s, len, ref)) != NULL) fn(ctx, data, len);
        }
        if (mpq__cas64(&s->state, &st, mpq__st(MPQ__ST_LAP(st) + 1, MPQ__EMPTY, 0), MPQ__SEQ_CST))
            mpq__ec_signal(&q->h->space_ec);
    }
}

/* Waits until *word (a slot's state, or a packed slot's cursor) may have
   left `seen`: spins, then sleeps on eventcount ec, for at most a slice
   (MPQ__STUCK_MS while it is held - held 1: a slot, 2: a cursor - so its
   holder gets checked). A closed queue ends the wait of a put, and
   of a get that no put in progress is about to serve. `room`: a put that
   waits for a run of that many chunks of the arena (word: the state of
   the slot whose message holds the run in the way), 0 otherwise; it looks
   for a run once more after saying it will sleep, since a run freed
   anywhere will do and wakes it. Returns 0 to retry, or -ETIMEDOUT once
   `deadline` (monotonic ns, -1 none) has passed. */
static int mpq__q_wait(mpq_queue *q, uint32_t *ec, const uint64_t *word, uint64_t seen,
                       int held, int64_t deadline, int put, uint32_t room)
{
    uint32_t i, spin = mpq__load32(&q->spin, MPQ__RELAXED), key;
    uint64_t blocker;
    int64_t now, until;
    /* First the deadline: a slot that others keep moving (or rewrite)
       would otherwise send the caller round its loop for ever. */
    if (deadline >= 0 && mpq__now_ns() >= deadline) return -ETIMEDOUT;
    for (i = 0; i < spin; i++) {
        /* Now and then let another thread of this CPU run: with more
           runnable threads than CPUs (a pool; two producers and a consumer
           on two CPUs) the one we wait for may be queued behind us. */
        if ((i & 255) == 255) sched_yield();
        else mpq__cpu_relax();
        if (mpq__load64(word, MPQ__RELAXED) != seen) {
            if (spin < MPQ__SPIN_MAX) mpq__store32(&q->spin, spin + spin / 4 + 1, MPQ__RELAXED);
            return 0;
        }
    }
    if (spin / 2 >= MPQ__SPIN_MIN) mpq__store32(&q->spin, spin / 2, MPQ__RELAXED);
    now = mpq__now_ns();
    if (deadline >= 0 && now >= deadline) return -ETIMEDOUT;
    key = mpq__ec_prepare(ec);
    if (mpq__load64(word, MPQ__SEQ_CST) != seen) return 0;
    if (room && mpq__q_alloc(q, room, MPQ__Q_LOOK, &blocker)) return 0;
    /* Closed: a put is over, and so is a get that no put in progress or
       held packed slot is about to serve. */
    if (mpq__load32(&q->h->closed, MPQ__SEQ_CST) &&
        (put || (held != 2 && MPQ__ST_PHASE(seen) != MPQ__WRITING)))
        return 0;
    until = now + (int64_t)(held ? MPQ__STUCK_MS : MPQ__WAIT_SLICE_MS) * 1000000;
    if (deadline >= 0 && deadline < until) until = deadline;
    mpq__futex_wait(ec, key, until);
    return 0;
}

/* A get found nothing to take: if this process polls the descriptor,
   drain it and arm it again, then look once more, so that a message put
   meanwhile (or the end of a closed queue) still makes it readable. A put
   in progress at the tail will poke it when it publishes - unless its
   process has exited, which a poller (who never sleeps in the queue) must
   notice here: that slot is moved on at once. */
static void mpq__q_rearm(mpq_queue *q, uint32_t me)
{
    uint64_t v, t, st, lap;
    mpq__qslot *s;
    int writing;
    if (q->efd < 0 || mpq__load32(&q->poll_pid, MPQ__RELAXED) != me) return;
    while (read(q->efd, &v, sizeof v) < 0 && errno == EINTR) {}
    mpq__store32(&q->h->poll_armed, 1, MPQ__SEQ_CST);
    t = mpq__load64(&q->h->tail, MPQ__SEQ_CST);
    lap = mpq__q_lap(q, t);
    s = mpq__q_slot(q, t);
    st = mpq__load64(&s->state, MPQ__SEQ_CST);
    writing = MPQ__ST_PHASE(st) == MPQ__WRITING && MPQ__ST_LAP(st) == lap;
    if (writing && mpq__pid_exited(MPQ__ST_PID(st)) &&
        mpq__cas64(&s->state, &st, mpq__st(lap, MPQ__FULL, MPQ__SKIPPED), MPQ__SEQ_CST)) {
        st = mpq__st(lap, MPQ__FULL, MPQ__SKIPPED);
        writing = 0;
        mpq__q_signal_data(q);                         /* as mpq__q_takeover */
        if (q->nchunks) mpq__ec_signal(&q->h->space_ec);   /* its run is free */
    }
    if (st == mpq__st(lap, MPQ__FULL, MPQ__PACKED)) {
        /* A packed slot with a message held: its release pokes - unless its
           holder has exited, which a poller must notice here. */
        uint64_t cw = mpq__load64(&s->cursor, MPQ__SEQ_CST);
        uint32_t count = mpq__q_pack_count(q, s);
        if (MPQ__CUR_PID(cw) != 0) {
            writing = 1;
            if (mpq__pid_exited(MPQ__CUR_PID(cw)) && MPQ__CUR_LAP(cw) == (uint32_t)lap &&
                mpq__q_unpack(q, s, t, cw, 1, count) == 0)
                writing = 0;
        }
    }
    if ((MPQ__ST_PHASE(st) == MPQ__FULL && MPQ__ST_LAP(st) == lap && !writing) ||
        (!writing && mpq__load32(&q->h->closed, MPQ__SEQ_CST)))
        mpq__q_poke(q);
}

/* --- the public calls ------------------------------------------------------ */

static int mpq__q_attach(mpq_queue **out, void *base, size_t length, int efd, const mpq__qhdr *h)
{
    mpq_queue *q = (mpq_queue *)MPQ_MALLOC(sizeof *q);
    if (!q) return -ENOMEM;
    memset(q, 0, sizeof *q);
    q->h = (mpq__qhdr *)(void *)((char *)base + MPQ__SEG_HDR);
    q->slots = (char *)q->h + sizeof *q->h;
    q->base = base;
    q->length = length;
    q->mask = (uint64_t)h->capacity - 1;   /* from the validated copy */
    q->log2cap = h->log2cap;
    q->stride = h->stride;
    q->max_msg = h->max_msg;
    q->spin = MPQ__SPIN_MIN;
    q->efd = efd;
    /* A layout-1 queue (made by an older mpq.h) may have readers that
       cannot take packed slots. */
    q->packs = ((const mpq__seg *)base)->version >= 2;
    q->joinable = h->joinable != 0;
    q->pidns = mpq__seg_pidns((const mpq__seg *)base);
    q->producers = h->producers;
    if (h->producers)
        q->ptab = (uint64_t *)(void *)(q->slots + (size_t)h->capacity * h->stride);
    q->inl = h->inline_max ? h->inline_max : h->max_msg;
    q->nchunks = h->chunks;
    if (h->chunks) {
        size_t words = (size_t)h->capacity * h->stride + (size_t)h->producers * 8;
        q->awords = (uint64_t *)(void *)(q->slots + words);
        q->gwords = q->awords + h->chunks;
        q->arena = q->slots + ((words + mpq__q_awords(h->chunks) * 8 + 63) & ~(size_t)63);
    }
    *out = q;
    return 0;
}

/* Slot stride for inl bytes a slot, and the object size for capacity
   slots, a table of `producers` and an arena of `chunks` (their words and
   claim words, then their bytes); 0 if that does not fit in memory. */
static uint64_t mpq__q_size(uint32_t capacity, uint32_t inl, uint32_t producers, uint32_t chunks,
                            uint32_t *stride)
{
    uint64_t sz;
    *stride = (uint32_t)((sizeof(mpq__qslot) + (uint64_t)inl + 63) & ~(uint64_t)63);
    sz = sizeof(mpq__qhdr) + (uint64_t)capacity * *stride + (uint64_t)producers * 8;
    if (chunks) sz = ((sz + (uint64_t)mpq__q_awords(chunks) * 8 + 63) & ~(uint64_t)63) + (uint64_t)chunks * MPQ__CHUNK;
    return sz > (uint64_t)((size_t)-1 / 4) ? 0 : sz;
}

MPQDEF int mpq_queue_create(mpq_queue **out, const mpq_queue_config *cfg)
{
    static const mpq_queue_config defaults = { 0, 0, NULL, 0, 0, 0, 0, 0 };
    uint32_t cap, log2cap = 0, max_msg, stride, inl, chunks = 0;
    uint64_t obj;
    mpq__qhdr *h;
    void *base;
    size_t length;
    int rc, efd;

    if (!out) return -EINVAL;
    if (!cfg) cfg = &defaults;
    cap = cfg->capacity ? cfg->capacity : MPQ__Q_DEFAULT_CAP;
    max_msg = cfg->max_msg ? cfg->max_msg : MPQ__Q_DEFAULT_MSG;
    if (cap > MPQ__Q_MAX_CAP || max_msg > MPQ__Q_MAX_MSG || cfg->producers > MPQ__Q_MAX_PRODUCERS)
        return -EINVAL;
    /* Bytes in a slot: as asked; else all of max_msg when only that was
       given (no arena: the layout of mpq 0.3); else the default's. */
    if (cfg->inline_max) inl = cfg->inline_max;
    else if (cfg->max_msg && !cfg->arena) inl = max_msg;
    else inl = MPQ__Q_DEFAULT_INLINE;
    if (inl > max_msg) inl = max_msg;
    if (inl < max_msg) {
        uint64_t bytes = cfg->arena ? (uint64_t)cfg->arena : (uint64_t)max_msg * MPQ__Q_ARENA_FACTOR;
        if (bytes < max_msg || bytes > (uint64_t)MPQ__Q_MAX_CHUNKS * MPQ__CHUNK) return -EINVAL;
        chunks = mpq__q_nch(bytes);
    }
    while ((1u << log2cap) < cap) log2cap++;
    cap = 1u << log2cap;
    if ((obj = mpq__q_size(cap, inl, cfg->producers, chunks, &stride)) == 0) return -EINVAL;
    rc = mpq__seg_create(MPQ__KIND_QUEUE, (size_t)obj, cfg->name, cfg->mode, 0, &base, &length, NULL);
    if (rc != 0) return rc;
    h = (mpq__qhdr *)(void *)((char *)base + MPQ__SEG_HDR);
    h->magic = MPQ__Q_MAGIC;
    h->capacity = cap;
    h->log2cap = log2cap;
    h->max_msg = max_msg;
    h->stride = stride;
    h->joinable = cfg->joinable != 0;
    h->producers = cfg->producers;
    h->inline_max = inl;
    h->chunks = chunks;
    {   /* Only a joinable queue needs layout 3, one with a producer count
           4 and one with an arena 6 (see MPQ__SEG_VERSION_QUEUE): other
           queues stay readable by older mpq.h. */
        mpq__seg *sh = (mpq__seg *)base, copy;
        sh->version = (uint16_t)(chunks ? 6 : h->producers ? 4 : h->joinable ? 3 : 2);
        memcpy(&copy, sh, sizeof copy);
        copy.magic = MPQ__SEG_MAGIC;   /* counted in the checksum, stored last */
        sh->check = mpq__seg_checksum(&copy);
    }
    /* The slots start zeroed: state 0 is EMPTY in lap 0. */
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc = mpq__q_attach(out, base, length, efd, h);
    if (rc != 0 && efd >= 0) close(efd);
    return mpq__seg_finish(base, length, cfg->name, rc);
}

MPQDEF int mpq_queue_open(mpq_queue **out, const char *name)
{
    void *base;
    size_t length, obj;
    uint32_t stride;
    mpq__qhdr h;
    int rc;
    if (!out) return -EINVAL;
    rc = mpq__seg_open(name, MPQ__KIND_QUEUE, &base, &length, &obj);
    if (rc != 0) return rc;
    memcpy(&h, (char *)base + MPQ__SEG_HDR, sizeof h);
    if (obj < sizeof h || h.magic != MPQ__Q_MAGIC || h.log2cap > 24 || h.capacity != 1u << h.log2cap ||
        h.max_msg > MPQ__Q_MAX_MSG || h.producers > MPQ__Q_MAX_PRODUCERS ||
        /* an arena exactly when a slot holds less than max_msg */
        (h.inline_max == 0 ? h.chunks != 0
                           : h.inline_max > h.max_msg || (h.inline_max < h.max_msg) != (h.chunks != 0)) ||
        h.chunks > MPQ__Q_MAX_CHUNKS || (uint64_t)h.chunks * MPQ__CHUNK < (h.chunks ? h.max_msg : 0) ||
        (h.chunks && ((const mpq__seg *)base)->version < 6) ||
        mpq__q_size(h.capacity, h.inline_max ? h.inline_max : h.max_msg, h.producers, h.chunks, &stride) != obj ||
        h.stride != stride) {
        munmap(base, length);
        return -EINVAL;
    }
    rc = mpq__q_attach(out, base, length, -1, &h);
    if (rc != 0) munmap(base, length);
    return rc;
}

MPQDEF int mpq_queue_close(mpq_queue *q)
{
    if (!q) return -EINVAL;
    while (q->copies) {
        mpq__qcopy *c = q->copies;
        q->copies = c->next;
        MPQ_FREE(c->block);
    }
    munmap(q->base, q->length);
    if (q->efd >= 0) close(q->efd);
    MPQ_FREE(q);
    return 0;
}

MPQDEF int mpq_queue_shutdown(mpq_queue *q, int immediate)
{
    uint32_t was = 0;
    if (!q) return -EINVAL;
    /* closed: 1 shut down, 2 at once (never back from 2 to 1) */
    if (immediate) mpq__store32(&q->h->closed, 2, MPQ__SEQ_CST);
    else mpq__cas32(&q->h->closed, &was, 1, MPQ__SEQ_CST);
    mpq__ec_signal(&q->h->data_ec);
    mpq__ec_signal(&q->h->space_ec);
    if (immediate) mpq__ec_signal(&q->h->join_ec);
    if (q->efd >= 0) mpq__q_poke(q);  /* a poller sees the end as readable */
    return 0;
}

/* --- end of stream: the producer table -------------------------------------
   One 64-bit word per producer the queue counts, each moved on by one CAS,
   so that a process killed at any instant leaves every word as it was or
   as it made it: 0 (nobody yet), or pid | flags | start time (of the
   process, in clock ticks since boot, 40 bits; 0: unreadable). REG: its
   pid was registered (its exit counts as done); DONE: it is done. Words
   never go back, and the stream ends when every word is DONE: whoever
   makes the last one so shuts the queue down - and if it dies first, the
   next look (an empty get, mpq_wait, mpq_queue_producers) does.
   A producer's registration and its done may come in either order, from
   two processes at once, and must meet in one word: both walk the table
   in the same order (starting at a word its pid picks) and stop at the
   first word that is this producer's other half or free - taking a free
   one by CAS, and looking at it again if the CAS fails. Words only ever
   stop being free, so the first to take a word for the producer takes the
   one the other will stop at. */
#define MPQ__PR_PID(w)   ((uint32_t)((w) & 0x3fffff))   /* Linux pids are below 2^22 */
#define MPQ__PR_DONE     ((uint64_t)1 << 22)
#define MPQ__PR_REG      ((uint64_t)1 << 23)
#define MPQ__PR_START(w) ((w) >> 24)
#define MPQ__PR_CHECK_MS 100   /* the least time between two looks of a handle */
#define MPQ__PR_LOOK 64        /* registered producers a look checks, at most */

/* Whether two start times may be one process's (0: could not be read). */
static int mpq__q_pr_same(uint64_t a, uint64_t b) { return a == 0 || b == 0 || a == b; }

/* Whether the registered producer of word w has certainly exited: its pid
   has, or names a process started at another time. */
static int mpq__q_pr_dead(uint64_t w)
{
    uint32_t pid = MPQ__PR_PID(w);
    if (mpq__pid_exited(pid)) return 1;
    return !mpq__q_pr_same(MPQ__PR_START(w), mpq__proc_start(pid));
}

/* Producers not yet done; with `reap`, registered ones that have exited
   are marked done first - up to MPQ__PR_LOOK of them, in turn from where
   this handle's last look stopped, so that a look costs a bounded number
   of system calls however many producers there are. Shuts the queue down
   when none are left. */
static int mpq__q_pr_scan(mpq_queue *q, int reap)
{
    uint32_t i, n = q->producers, left = 0, looked = 0, from, j;
    /* From another pid namespace every pid looks gone: no reaping there. */
    if (reap && !mpq__in_pidns(q->pidns)) reap = 0;
    from = reap ? mpq__load32(&q->pnext, MPQ__RELAXED) % n : 0;
    j = from;
    for (i = 0; i < n; i++, j = j + 1 == n ? 0 : j + 1) {
        uint64_t w = mpq__load64(&q->ptab[j], MPQ__SEQ_CST);
        if (w & MPQ__PR_DONE) continue;
        if (reap && (w & MPQ__PR_REG) && looked < MPQ__PR_LOOK) {
            if (++looked == MPQ__PR_LOOK) mpq__store32(&q->pnext, j + 1, MPQ__RELAXED);
            if (mpq__q_pr_dead(w) &&
                (mpq__cas64(&q->ptab[j], &w, w | MPQ__PR_DONE, MPQ__SEQ_CST) || (w & MPQ__PR_DONE)))
                continue;
        }
        left++;
    }
    if (left == 0) mpq_queue_shutdown(q, 0);
    return (int)left;
}

/* A look for dead producers by an empty get or mpq_wait, at most every
   MPQ__PR_CHECK_MS per handle. Returns 1 if the queue was shut down. */
static int mpq__q_pr_check(mpq_queue *q)
{
    uint32_t now = (uint32_t)(mpq__now_ns() / 1000000), last = mpq__load32(&q->pcheck, MPQ__RELAXED);
    /* 0: never looked. (The time of the next look, kept before, read as
       "not yet" for ever in half of every 49.7 days of uptime.) */
    if (last != 0 && now - last < MPQ__PR_CHECK_MS) return 0;
    mpq__store32(&q->pcheck, now ? now : 1, MPQ__RELAXED);
    return mpq__q_pr_scan(q, 1) == 0;
}

/* Walks the table for producer pid (start time `start`) as described
   above: stops at a word `match` says is its other half, and CASes it
   to that word | `add`; or at the first free word, and CASes it to
   `fresh`. Returns 0, or -1 if neither came. */
static int mpq__q_pr_meet(mpq_queue *q, uint32_t pid, uint64_t start, uint64_t need, uint64_t add,
                          uint64_t fresh)
{
    uint32_t i, n = q->producers, j = (uint32_t)(((uint64_t)pid * 0x9e3779b9u) >> 7) % n;
    for (i = 0; i < n; ) {
        uint64_t w = mpq__load64(&q->ptab[j], MPQ__SEQ_CST);
        if (w == 0) {
            if (mpq__cas64(&q->ptab[j], &w, fresh, MPQ__SEQ_CST)) return 0;
            continue;   /* taken meanwhile: look at what took it */
        }
        if (MPQ__PR_PID(w) == pid && (w & (MPQ__PR_DONE | MPQ__PR_REG)) == need &&
            mpq__q_pr_same(MPQ__PR_START(w), start)) {
            if (mpq__cas64(&q->ptab[j], &w, w | add, MPQ__SEQ_CST)) return 0;
            continue;
        }
        i++;
        j = j + 1 == n ? 0 : j + 1;
    }
    return -1;
}

/* Claims a slot for a put, waiting as the timeout allows. */
static mpq__qslot *mpq__q_reserve(mpq_queue *q, int timeout_ms, int64_t deadline, uint32_t me,
                                  uint64_t start, uint64_t *pos, int *rc)
{
    uint64_t seen = 0;
    if (!mpq__in_pidns(q->pidns)) { *rc = -EXDEV; return NULL; }   /* a fork into another pid namespace */
    for (;;) {
        mpq__qslot *s = mpq__q_claim_put(q, me, start, deadline, pos, &seen, rc), *w;
        uint64_t cw = 0;
        if (s || *rc != -EAGAIN) return s;
        w = mpq__q_slot(q, *pos);
        if (seen == mpq__st(MPQ__ST_LAP(seen), MPQ__FULL, MPQ__PACKED)) {
            /* Last lap's packed slot: all taken but its last taker died
               before freeing it, or a message of it held (maybe by the dead). */
            uint32_t count;
            cw = mpq__load64(&w->cursor, MPQ__ACQUIRE);
            count = mpq__q_pack_count(q, w);
            __atomic_thread_fence(MPQ__ACQUIRE);
            if (MPQ__CUR_LAP(cw) == (uint32_t)MPQ__ST_LAP(seen) && count >= 2 && count <= MPQ__PACK_MAX &&
                MPQ__CUR_TAKEN(cw) == count && mpq__load64(&w->state, MPQ__SEQ_CST) == seen) {
                mpq__q_pack_free(q, w, mpq__q_pos_of(q, w, MPQ__ST_LAP(seen)));
                continue;
            }
            if (MPQ__CUR_PID(cw) == 0) cw = 0;
        }
        if (mpq__q_stuck(q, 0, w, seen, cw, me)) continue;
        if (timeout_ms == 0) return NULL;
        *rc = cw ? mpq__q_wait(q, &q->h->space_ec, &w->cursor, cw, 2, deadline, 1, 0)
                 : mpq__q_wait(q, &q->h->space_ec, &w->state, seen, MPQ__HELD(seen), deadline, 1, 0);
        if (*rc != 0) return NULL;
    }
}

/* Claims a slot for a put of len bytes and, when they do not fit in it, a
   run of the arena (see "the arena"): returns the slot (position in *pos),
   where the bytes go (*dst) and the ref to publish, or NULL with *rc. A
   put that finds no room in the arena gives its position up and waits,
   holding nothing, until a consumer frees some. */
static mpq__qslot *mpq__q_reserve_n(mpq_queue *q, size_t len, int timeout_ms, uint32_t me, uint64_t start,
                                    uint64_t *pos, char **dst, uint32_t *ref, int *rc)
{
    int64_t deadline = timeout_ms > 0 ? mpq__deadline(timeout_ms) : -1;
    for (;;) {
        uint32_t first;
        uint64_t w, bst;
        mpq__qslot *s, *b;
        /* Room in the arena first, holding nothing: a slot is claimed only
           when a run is there to take. */
        if (len > q->inl && !mpq__q_alloc(q, mpq__q_nch(len), MPQ__Q_LOOK, &w)) {
            if (mpq__load32(&q->h->closed, MPQ__ACQUIRE)) {
                *rc = -EPIPE;
                return NULL;
            }
            if (timeout_ms == 0) {
                *rc = -EAGAIN;
                return NULL;
            }
            if (deadline >= 0 && mpq__now_ns() >= deadline) {
                *rc = -ETIMEDOUT;
                return NULL;
            }
            /* The put whose run (or claim) stopped the look: alive? */
            if (w == 0) continue;
            b = mpq__q_slot(q, w - 1);
            bst = mpq__load64(&b->state, MPQ__ACQUIRE);
            if (MPQ__ST_LAP(bst) != mpq__q_lap(q, w - 1) || bst == mpq__st(MPQ__ST_LAP(bst), MPQ__FULL, MPQ__SKIPPED))
                continue;   /* gone meanwhile */
            if (mpq__q_stuck(q, 0, b, bst, 0, me)) continue;
            /* Then wait for that message's slot to move, as a blocked put
               waits for its own - or for a run freed anywhere. */
            if ((*rc = mpq__q_wait(q, &q->h->space_ec, &b->state, bst, MPQ__HELD(bst), deadline, 1,
                                   mpq__q_nch(len))) != 0)
                return NULL;
            continue;
        }
        if (!(s = mpq__q_reserve(q, timeout_ms, deadline, me, start, pos, rc))) return NULL;
        *ref = 0;
        *dst = mpq__q_data(s);
        if (len <= q->inl) return s;
        if ((first = mpq__q_alloc(q, mpq__q_nch(len), *pos, &w)) != 0) {
            *ref = first;
            *dst = mpq__q_achunk(q, first - 1);
            return s;
        }
        /* The room went to another put meanwhile: this position goes
           (nothing waits behind it), and the look starts again. */
        if ((*rc = mpq__q_publish(q, s, mpq__q_lap(q, *pos), me, 0, MPQ__SKIPPED, 0)) != 0) return NULL;
        if (timeout_ms == 0) {
            *rc = -EAGAIN;
            return NULL;
        }
        if (deadline >= 0 && mpq__now_ns() >= deadline) {
            *rc = -ETIMEDOUT;
            return NULL;
        }
    }
}

/* Claims the oldest message, waiting as the timeout allows. */
static mpq__qslot *mpq__q_take(mpq_queue *q, size_t cap, int timeout_ms, uint32_t me, uint64_t start,
                               uint64_t *pos, uint32_t *len, mpq__qpk *pk, int *rc)
{
    int64_t deadline = timeout_ms > 0 ? mpq__deadline(timeout_ms) : -1;
    uint64_t seen = 0;
    if (!mpq__in_pidns(q->pidns)) { *rc = -EXDEV; return NULL; }   /* a fork into another pid namespace */
    for (;;) {
        mpq__qslot *s = mpq__q_claim_get(q, me, start, deadline, cap, pos, &seen, len, pk, rc), *w;
        if (s) {
            /* The poller is draining: producers need not poke it meanwhile. */
            if (q->efd >= 0 && mpq__load32(&q->poll_pid, MPQ__RELAXED) == me &&
                mpq__load32(&q->h->poll_armed, MPQ__RELAXED))
                mpq__store32(&q->h->poll_armed, 0, MPQ__RELAXED);
            return s;
        }
        if (*rc != -EAGAIN) return NULL;
        if (q->ptab && mpq__q_pr_check(q)) continue;   /* the last producer has died */
        w = mpq__q_slot(q, *pos);
        if (mpq__q_stuck(q, 1, w, seen, pk->cur, me)) continue;
        if (timeout_ms == 0) break;
        *rc = pk->cur ? mpq__q_wait(q, &q->h->data_ec, &w->cursor, pk->cur, 2, deadline, 0, 0)
                      : mpq__q_wait(q, &q->h->data_ec, &w->state, seen, MPQ__HELD(seen), deadline, 0, 0);
        if (*rc != 0) break;
    }
    mpq__q_rearm(q, me);
    return NULL;
}

/* One message's put, its arguments checked. */
static int mpq__q_put_one(mpq_queue *q, const void *msg, size_t len, int timeout_ms, uint32_t me, uint64_t start)
{
    mpq__qslot *s;
    uint64_t pos;
    uint32_t ref;
    char *dst;
    int rc;
    if (!(s = mpq__q_reserve_n(q, len, timeout_ms, me, start, &pos, &dst, &ref, &rc))) return rc;
    mpq__copy(dst, msg, len);
    return mpq__q_publish(q, s, mpq__q_lap(q, pos), me, (uint32_t)len, 0, ref);
}

MPQDEF int mpq_queue_put(mpq_queue *q, const void *msg, size_t len, int timeout_ms)
{
    uint64_t start;
    uint32_t me;
    if (!q || (!msg && len)) return -EINVAL;
    if (len > q->max_msg) return -EMSGSIZE;
    me = mpq__self(&start);
    return mpq__q_put_one(q, msg, len, timeout_ms, me, start);
}

MPQDEF int mpq_queue_get(mpq_queue *q, void *buf, size_t cap, size_t *len, int timeout_ms)
{
    mpq__qslot *s;
    uint64_t pos, start;
    uint32_t n = 0, me;
    int rc;
    mpq__qpk pk;
    if (!q || !len || (!buf && cap)) return -EINVAL;
    me = mpq__self(&start);
    s = mpq__q_take(q, cap, timeout_ms, me, start, &pos, &n, &pk, &rc);
    if (!s) {
        if (rc == -EMSGSIZE) *len = n;
        return rc;
    }
    /* n <= cap (take says -EMSGSIZE otherwise); the min lets gcc -O1 see
       it too, when the caller's buffer is inlined (-Warray-bounds). */
    mpq__copy(buf, pk.data, n < cap ? n : cap);
    *len = n;
    if (pk.count) return mpq__q_unpack(q, s, pos, pk.cur, 1, pk.count);
    return mpq__q_free(q, s, mpq__q_lap(q, pos), me);   /* and its run */
}

MPQDEF int mpq_queue_reserve(mpq_queue *q, void **buf, int timeout_ms)
{
    mpq__qslot *s;
    uint64_t pos, start;
    uint32_t me, ref;
    char *dst;
    int rc;
    if (!q || !buf) return -EINVAL;
    me = mpq__self(&start);
    if (!(s = mpq__q_reserve_n(q, q->max_msg, timeout_ms, me, start, &pos, &dst, &ref, &rc))) return rc;
    *buf = dst;
    return 0;
}

/* The slot whose bytes start at buf - in the slot, or a run of the arena
   (then *ref is 1 + its first chunk, else 0) - if this process holds it
   in `phase`; its lap in *lap. */
static mpq__qslot *mpq__q_held(mpq_queue *q, const void *buf, unsigned phase, uint64_t *lap,
                               uint32_t *me, uint32_t *ref)
{
    uint64_t start, st, w = 0;
    int64_t c = mpq__q_chunk_of(q, buf);
    mpq__qslot *s;
    if (c >= 0) {
        if ((w = mpq__load64(mpq__q_aword(q, (uint32_t)c), MPQ__ACQUIRE)) == 0) return NULL;
        /* the first chunk of its run: a position's chunks are one run */
        if (c > 0 && mpq__load64(mpq__q_aword(q, (uint32_t)c - 1), MPQ__ACQUIRE) == w) return NULL;
        s = mpq__q_slot(q, w - 1);
        *ref = (uint32_t)c + 1;
    } else {
        /* A reservation in an arena queue is always a run (see reserve). */
        if (!(s = mpq__q_slot_of(q, buf)) || (phase == MPQ__WRITING && q->inl < q->max_msg)) return NULL;
        *ref = 0;
    }
    *me = mpq__self(&start);
    st = mpq__load64(&s->state, MPQ__ACQUIRE);
    if (MPQ__ST_PHASE(st) != phase || MPQ__ST_PID(st) != *me) return NULL;
    *lap = MPQ__ST_LAP(st);
    /* A run: its chunk's position is the slot's in this lap; a get's slot
       also says the run is its message's. */
    if (c >= 0 && (mpq__q_lap(q, w - 1) != *lap ||
                   (phase == MPQ__READING && mpq__load32(&s->ref, MPQ__RELAXED) != *ref)))
        return NULL;
    return s;
}

MPQDEF int mpq_queue_commit(mpq_queue *q, void *buf, size_t len)
{
    mpq__qslot *s;
    uint64_t lap, pos;
    uint32_t me, ref, need;
    if (!q || !(s = mpq__q_held(q, buf, MPQ__WRITING, &lap, &me, &ref))) return -EINVAL;
    if (len > q->max_msg) return -EMSGSIZE;
    if (ref) {
        /* A reservation in the arena takes max_msg: what the message does
           not need goes back - all of it when the message fits the slot. */
        pos = mpq__q_pos_of(q, s, lap);
        need = len <= q->inl ? 0 : mpq__q_nch(len);
        if (need == 0) mpq__copy(mpq__q_data(s), buf, len);
        mpq__q_afree(q, ref - 1 + need, mpq__q_nch(q->max_msg) - need, pos);
        if (need == 0) ref = 0;
    }
    return mpq__q_publish(q, s, lap, me, (uint32_t)len, 0, ref);
}

MPQDEF int mpq_queue_cancel(mpq_queue *q, void *buf)
{
    mpq__qslot *s;
    uint64_t lap;
    uint32_t me, ref;
    if (!q || !(s = mpq__q_held(q, buf, MPQ__WRITING, &lap, &me, &ref))) return -EINVAL;
    return mpq__q_publish(q, s, lap, me, 0, MPQ__SKIPPED, ref);   /* its run goes with it */
}

/* The list of peek copies is guarded by a lock word holding the pid of the
   process whose thread holds it: one not ours is a thread that did not
   survive fork, and the lock is taken over. */
static void mpq__q_copies_lock(mpq_queue *q, uint32_t me)
{
    for (;;) {
        uint32_t cur = mpq__load32(&q->copies_lock, MPQ__RELAXED);
        if (cur == me) sched_yield();
        else if (mpq__cas32(&q->copies_lock, &cur, me, MPQ__ACQUIRE)) return;
    }
}

static void mpq__q_copies_unlock(mpq_queue *q) { mpq__store32(&q->copies_lock, 0, MPQ__RELEASE); }

MPQDEF int mpq_queue_peek(mpq_queue *q, const void **buf, size_t *len, int timeout_ms)
{
    mpq__qslot *s;
    uint64_t pos, start;
    uint32_t n = 0, me;
    int rc;
    mpq__qpk pk;
    mpq__qcopy *c;
    if (!q || !buf || !len) return -EINVAL;
    me = mpq__self(&start);
    if (!(s = mpq__q_take(q, (size_t)-1, timeout_ms, me, start, &pos, &n, &pk, &rc))) return rc;
    if (!pk.count) {
        *buf = pk.data;
        *len = n;
        return 0;
    }
    /* A packed message: handed out as a copy, taken from the queue now, so
       that the rest of its batch need not wait for the release. */
    if (!(c = mpq__qcopy_new(n))) {
        uint64_t held = pk.cur;   /* it stays in the queue */
        /* Our owner tag would fit the next claimant of this message too:
           start 0 makes the dead check ignore it. */
        mpq__store64(&s->owner, 0, MPQ__RELEASE);
        mpq__cas64(&s->cursor, &held, MPQ__CUR(mpq__q_lap(q, pos), MPQ__CUR_TAKEN(pk.cur), 0),
                   MPQ__SEQ_CST);
        mpq__q_signal_data(q);
        return -ENOMEM;
    }
    mpq__copy(c + 1, pk.data, n);
    if ((rc = mpq__q_unpack(q, s, pos, pk.cur, 1, pk.count)) != 0) {
        MPQ_FREE(c->block);
        return rc;
    }
    mpq__q_copies_lock(q, me);
    c->next = q->copies;
    q->copies = c;
    mpq__q_copies_unlock(q);
    *buf = c + 1;
    *len = n;
    return 0;
}

MPQDEF int mpq_queue_release(mpq_queue *q, const void *buf)
{
    mpq__qslot *s;
    mpq__qcopy **pp, *c = NULL;
    uint64_t lap, start;
    uint32_t me, ref;
    if (!q) return -EINVAL;
    if ((s = mpq__q_held(q, buf, MPQ__READING, &lap, &me, &ref)) != NULL)
        return mpq__q_free(q, s, lap, me);
    if (!buf) return -EINVAL;
    me = mpq__self(&start);
    mpq__q_copies_lock(q, me);
    for (pp = &q->copies; *pp; pp = &(*pp)->next)
        if ((const void *)(*pp + 1) == buf) {
            c = *pp;
            *pp = c->next;
            break;
        }
    mpq__q_copies_unlock(q);
    if (!c) return -EINVAL;
    MPQ_FREE(c->block);
    return 0;
}

/* How many of messages lens[from..n) pack into `room` bytes (count and
   records, see "packed batches"); *bytes gets their size. */
static size_t mpq__q_fit(const size_t *lens, size_t from, size_t n, size_t room, size_t *bytes)
{
    size_t k = 0, b = 4;
    while (from + k < n && k < MPQ__PACK_MAX && b + 4 + ((lens[from + k] + 3) & ~(size_t)3) <= room)
        b += 4 + ((lens[from + k++] + 3) & ~(size_t)3);
    *bytes = b;
    return k;
}

/* The timeout for a batch's message after `done` others: the caller's
   for the first (what is left of it), 0 for the rest. */
static int mpq__q_left(int done, int timeout_ms, int64_t deadline)
{
    if (done) return 0;
    return timeout_ms > 0 ? mpq__remaining_ms(deadline) : timeout_ms;
}

MPQDEF int mpq_queue_put_batch(mpq_queue *q, const void *const *msgs, const size_t *lens,
                               size_t n, int timeout_ms)
{
    mpq__qslot *s;
    int64_t deadline;
    uint64_t pos, start, seen;
    uint32_t me;
    size_t i;
    int rc, done = 0;
    if (!q || !msgs || !lens || n == 0) return -EINVAL;
    if (n > INT_MAX) n = INT_MAX;
    for (i = 0; i < n; i++) {
        if (lens[i] > q->max_msg) return -EMSGSIZE;
        if (!msgs[i] && lens[i]) return -EINVAL;
    }
    me = mpq__self(&start);
    deadline = timeout_ms > 0 ? mpq__deadline(timeout_ms) : -1;
    for (;;) {
        /* As many of the next messages as fit in one slot - or in a run of
           the arena, up to max_msg bytes - travel packed. */
        size_t k = 0, bytes = 4;
        uint32_t ref = 0;
        uint64_t blocker;
        char *d;
        size_t slot_bytes;
        if (q->packs && !q->supervised)
            k = mpq__q_fit(lens, (size_t)done, n, q->nchunks ? q->max_msg : q->inl, &bytes);
        /* Too many for a slot, and a slot would not take two of them: with
           no room in the arena the position would go for nothing (a poll
           with timeout 0 would fill the ring with them), so look first. */
        if (k >= 2 && bytes > q->inl && mpq__q_fit(lens, (size_t)done, n, q->inl, &slot_bytes) < 2 &&
            !mpq__q_alloc(q, mpq__q_nch(bytes), MPQ__Q_LOOK, &blocker))
            k = 0;
        if (k < 2) {
            /* One message: a put's way (it may wait for the arena, the
               first one as long as the timeout allows). */
            if ((rc = mpq__q_put_one(q, msgs[done], lens[done], mpq__q_left(done, timeout_ms, deadline), me,
                                     start)) != 0)
                break;
            done++;
        } else {
            uint32_t count, off = 4, l;
            if (!(s = done ? mpq__q_claim_put(q, me, start, -1, &pos, &seen, &rc)
                           : mpq__q_reserve(q, timeout_ms, deadline, me, start, &pos, &rc)))
                break;
            d = mpq__q_data(s);
            /* Too many for the slot: a run. If the arena has no room, as
               many as the slot takes; if that is not two, the position
               goes and the next message travels alone. */
            if (bytes > q->inl && (ref = mpq__q_alloc(q, mpq__q_nch(bytes), pos, &blocker)) == 0 &&
                (k = mpq__q_fit(lens, (size_t)done, n, q->inl, &bytes)) < 2) {
                if ((rc = mpq__q_publish(q, s, mpq__q_lap(q, pos), me, 0, MPQ__SKIPPED, 0)) != 0) break;
                if ((rc = mpq__q_put_one(q, msgs[done], lens[done], mpq__q_left(done, timeout_ms, deadline), me,
                                         start)) != 0)
                    break;
                done++;
                if ((size_t)done == n) break;
                continue;
            }
            if (ref) d = mpq__q_achunk(q, ref - 1);
            count = (uint32_t)k;
            for (i = 0; i < k; i++) {
                l = (uint32_t)lens[(size_t)done + i];
                memcpy(d + off, &l, 4);
                mpq__copy(d + off + 4, msgs[(size_t)done + i], l);
                off = mpq__q_rec_next(off, l);
            }
            memcpy(d, &count, 4);
            rc = mpq__q_publish(q, s, mpq__q_lap(q, pos), me, off, MPQ__PACKED, ref);
            if (rc != 0) break;
            done += (int)k;
        }
        if ((size_t)done == n) break;
    }
    if (!done && rc == -EAGAIN && timeout_ms > 0) rc = -ETIMEDOUT;
    return done ? done : rc;
}

MPQDEF int mpq_queue_get_batch(mpq_queue *q, void *buf, size_t cap, size_t *lens,
                               size_t max_n, int timeout_ms)
{
    mpq__qslot *s;
    uint64_t pos, start, seen;
    uint32_t n = 0, me;
    size_t used = 0;
    int rc, done = 0;
    mpq__qpk pk;
    if (!q || !lens || max_n == 0 || (!buf && cap)) return -EINVAL;
    if (max_n > INT_MAX) max_n = INT_MAX;
    me = mpq__self(&start);
    s = mpq__q_take(q, cap, timeout_ms, me, start, &pos, &n, &pk, &rc);
    if (!s) {
        if (rc == -EMSGSIZE) lens[0] = n;
        return rc;
    }
    for (;;) {
        if (pk.count) {
            /* A packed slot: its messages from the cursor on, as many as fit. */
            uint32_t m = 0, off = pk.off, total = pk.total;
            const char *r = pk.data;
            size_t used0 = used;
            for (;;) {
                if (n) mpq__copy((char *)buf + used, r, n);
                lens[done + (int)m++] = n;
                used += n;
                if ((size_t)done + m == max_n || MPQ__CUR_TAKEN(pk.cur) + m == pk.count) break;
                off = mpq__q_rec_next(off, n);
                if (!(r = mpq__q_rec(pk.base, total, off, &n)) || n > cap - used) break;
            }
            if ((rc = mpq__q_unpack(q, s, pos, pk.cur, m, pk.count)) != 0) {
                used = used0;                      /* the copies may be torn */
                break;
            }
            done += (int)m;
            if (MPQ__CUR_TAKEN(pk.cur) + m < pk.count) break;   /* the rest stays, in order */
        } else {
            if (n) mpq__copy((char *)buf + used, pk.data, n);
            if ((rc = mpq__q_free(q, s, mpq__q_lap(q, pos), me)) != 0) break;  /* copy may be torn */
            lens[done++] = n;
            used += n;
        }
        if ((size_t)done == max_n) break;
        if (!(s = mpq__q_claim_get(q, me, start, -1, cap - used, &pos, &seen, &n, &pk, &rc))) break;
    }
    return done ? done : rc;
}

MPQDEF size_t mpq_queue_count(const mpq_queue *q)
{
    uint64_t t, h;
    if (!q || mpq__load32(&q->h->closed, MPQ__ACQUIRE) > 1) return 0;
    t = mpq__load64(&q->h->tail, MPQ__ACQUIRE);
    h = mpq__load64(&q->h->head, MPQ__ACQUIRE);
    if (h <= t) return 0;
    return h - t > q->mask + 1 ? (size_t)(q->mask + 1) : (size_t)(h - t);
}

MPQDEF size_t mpq_queue_capacity(const mpq_queue *q) { return q ? (size_t)(q->mask + 1) : 0; }
MPQDEF size_t mpq_queue_max_msg(const mpq_queue *q) { return q ? q->max_msg : 0; }

MPQDEF int mpq_queue_fileno(mpq_queue *q)
{
    uint64_t start;
    uint32_t me;
    if (!q) return -EINVAL;
    if (q->efd < 0) return -ENOTSUP;
    me = mpq__self(&start);
    mpq__store32(&q->poll_pid, me, MPQ__RELAXED);
    mpq__q_rearm(q, me);
    return q->efd;
}

MPQDEF int mpq_queue_task_done(mpq_queue *q)
{
    if (!q || !q->joinable) return -EINVAL;
    return mpq__queue_finished(q, 1);
}

MPQDEF int mpq_queue_join(mpq_queue *q, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    mpq__qhdr *h;
    if (!q || !q->joinable) return -EINVAL;
    h = q->h;
    for (;;) {
        uint32_t key;
        if (mpq__load32(&h->unfinished, MPQ__ACQUIRE) == 0) return 0;
        if (mpq__load32(&h->closed, MPQ__ACQUIRE) > 1) return -EPIPE;
        if (timeout_ms == 0) return -EAGAIN;
        key = mpq__ec_prepare(&h->join_ec);
        /* pairs with task_done's and shutdown's signal */
        if (mpq__load32(&h->unfinished, MPQ__SEQ_CST) == 0) return 0;
        if (mpq__load32(&h->closed, MPQ__SEQ_CST) > 1) return -EPIPE;
        if (mpq__ec_sleep(&h->join_ec, key, deadline) == -ETIMEDOUT)
            return mpq__load32(&h->unfinished, MPQ__ACQUIRE) == 0 ? 0 : -ETIMEDOUT;
    }
}

MPQDEF long mpq_queue_unfinished(const mpq_queue *q)
{
    if (!q || !q->joinable) return -EINVAL;
    return (long)mpq__load32(&q->h->unfinished, MPQ__ACQUIRE);
}

MPQDEF int mpq_queue_add_producer(mpq_queue *q, int pid)
{
    uint64_t start;
    if (!q || !q->ptab || pid <= 0 || pid > 0x3fffff) return -EINVAL;
    if (!mpq__in_pidns(q->pidns)) return -EXDEV;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return -ESRCH;
    if (!mpq__is_process(pid)) return -EINVAL;   /* a thread's id: its done would count apart */
    start = mpq__proc_start((uint32_t)pid);
    /* Its other half: a word it made, done before it was registered. */
    if (mpq__q_pr_meet(q, (uint32_t)pid, start, MPQ__PR_DONE, MPQ__PR_REG,
                       start << 24 | MPQ__PR_REG | (uint32_t)pid) != 0)
        return -ENOSPC;
    return 0;
}

MPQDEF int mpq_queue_producer_done(mpq_queue *q)
{
    uint64_t start;
    uint32_t me;
    if (!q || !q->ptab) return -EINVAL;
    if (!mpq__in_pidns(q->pidns)) return -EXDEV;
    me = mpq__self(&start);
    /* Its other half: its registration, not yet done. */
    if (mpq__q_pr_meet(q, me, start, MPQ__PR_REG, MPQ__PR_DONE,
                       (start & MPQ__START_MASK) << 24 | MPQ__PR_DONE | me) != 0)
        return -EOVERFLOW;
    mpq__q_pr_scan(q, 0);
    return 0;
}

MPQDEF int mpq_queue_producers(mpq_queue *q)
{
    if (!q || !q->ptab) return -EINVAL;
    if (!mpq__in_pidns(q->pidns)) return -EXDEV;
    return mpq__q_pr_scan(q, 1);
}

/* ========================================================================
   >>conn  framed messages over pipes and stream sockets
   ======================================================================== */

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>

#define MPQ__CONN_BUF 65536  /* read buffer: a small frame costs one read */
#define MPQ__CONN_READ 4096  /* most one read asks for while no frame is begun */
#define MPQ__CONN_DIRECT 4096 /* bodies above this are read straight into the
                                 caller's buffer: one copy fewer */
#define MPQ__CONN_FDS 16     /* descriptor bytes read and not yet taken  */
#define MPQ__CONN_HAND 1     /* mpq__conn_frame: a descriptor byte is next */
#ifdef SCM_PIDFD
#define MPQ__SCM_PIDFD SCM_PIDFD
#else
#define MPQ__SCM_PIDFD 0x04  /* Linux 6.5; older headers lack it */
#endif

/* Descriptors on the wire.

   A plain message is a plain frame, always: 4-byte big-endian length (or
   0xffffffff and 8 more) and the bytes, as Python's Connection writes it.
   Nothing inside a frame is ever looked at to decide what it is.

   A descriptor travels between frames, as one byte of its own (0x01, the
   count of descriptors, as Python's reduction.sendfds writes it), sent by
   a sendmsg of its own with the descriptor attached as SCM_RIGHTS. That
   is byte for byte what Python's reduction.send_handle(conn, fd, pid) puts
   on the socket on Linux (checked with CPython 3.6, 3.11 and 3.13, which
   send no acknowledgement byte there).

   The receiver tells that byte from a frame by where the ancillary data
   came, never by what the bytes hold. A Unix stream socket's recvmsg
   stops right after the one skb that carried descriptors (and hands them
   out with whatever it read before it), and the sender's lone byte is an
   skb of its own: so the byte that carried them is the last one that
   recvmsg returned. (Every sendmsg makes skbs of its own; only a splice
   or sendfile onto the socket could, on older kernels, grow that skb,
   and neither mpq nor Python does that on a connection.) mpq counts the stream's bytes (rd), notes that
   offset with the descriptor, and when the parser stands at a frame
   boundary whose offset is noted, the next thing is a descriptor, not a
   frame header. Descriptors noted inside a frame (a peer that attaches
   them to frame bytes, not mpq's or Python's way) go with that frame:
   they are closed when it is received, never handed out - unless a read
   ended one byte into that skb (the kernel hands descriptors to the first
   read that touches their skb): then they are noted on the frame's first
   byte and the stream desyncs. No receiver can see skb boundaries, so
   such peers are not supported (see mpq_conn_recv_fd). A descriptor
   byte whose descriptor the kernel could not install here (RLIMIT_NOFILE:
   the recvmsg says MSG_CTRUNC) is noted with no descriptor, so the
   stream stays in step and recv_fd reports -EMFILE. Pidfds a socket
   option of the caller's attaches to every read (SO_PASSPIDFD) are
   closed as they come.

   mpq reads only when the next message is not whole in its buffer, so
   while a descriptor byte waits at or beyond the parser nothing more is
   read: from a peer that keeps to the protocol at most one noted byte
   waits at a time. The table below fills up only from one that does not
   (descriptors on frame bytes not yet parsed); the connection then
   breaks (-EPROTO). */
typedef struct mpq__conn_hand {
    uint64_t at;   /* the stream offset of the byte that carried it */
    int      fd;   /* -1: the kernel could not install it here      */
} mpq__conn_hand;

struct mpq_conn {
    int      rfd, wfd;     /* the same socket for duplex; -1 for a missing side */
    int      sock;         /* rfd/wfd is a socket: MSG_NOSIGNAL                   */
    int      local;        /* ... an AF_UNIX one: SCM_RIGHTS                      */
    int      nb;           /* rfd is a pipe the caller handed over non-blocking   */
    int      broken;       /* a frame over the maximum was refused, or the peer
                              sent descriptors off the protocol                   */
    int      eof;          /* the peer's end has been read                        */
    uint64_t max;          /* largest frame accepted                              */
    char    *rbuf;         /* buffered bytes rbuf[rpos, rlen)                     */
    size_t   rpos, rlen;
    int      have_len;     /* a frame header has been taken from the stream ...  */
    uint64_t flen;         /* ... announcing this many bytes                      */
    char    *body;         /* a large frame's bytes received so far, kept over a  */
    uint64_t got;          /* timeout in the middle of it                         */
    uint64_t rd;           /* bytes read from the stream so far                   */
    uint64_t fend;         /* with have_len: the stream offset just past the frame */
    mpq__conn_hand hand[MPQ__CONN_FDS];   /* descriptor bytes read, in order     */
    int      nhand;
};

struct mpq_listener {
    int    fd;
    pid_t  pid;          /* the process that made the path: only it removes it */
    ino_t  ino;          /* ... and only while the path is still this socket   */
    dev_t  dev;
    char   path[sizeof(((struct sockaddr_un *)0)->sun_path)];   /* "": no file */
    int    keyed;        /* clients are authenticated with the key that ...   */
    size_t keylen;       /* ... follows the struct, this long                 */
    int    handshake_ms;
};

static int mpq__conn_new(mpq_conn **out, int rfd, int wfd, int sock)
{
    mpq_conn *c = (mpq_conn *)MPQ_MALLOC(sizeof *c);
    if (!c) return -ENOMEM;
    memset(c, 0, sizeof *c);
    c->rfd = rfd;
    c->wfd = wfd;
    c->sock = sock;
    if (sock) {
        struct sockaddr_storage a;
        socklen_t al = sizeof a;
        c->local = getsockname(rfd >= 0 ? rfd : wfd, (struct sockaddr *)&a, &al) == 0 &&
                   a.ss_family == AF_UNIX;
    }
    c->max = MPQ_CONN_DEFAULT_MAX;
    *out = c;
    return 0;
}

/* pipe2(O_CLOEXEC) where it is declared (_GNU_SOURCE in force); else
   pipe and FD_CLOEXEC, which a fork+exec in another thread can race. */
static int mpq__pipe_cloexec(int fds[2])
{
#if defined(__USE_GNU) || !defined(__GLIBC__)
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

MPQDEF int mpq_pipe(mpq_conn **a, mpq_conn **b, int duplex)
{
    int fds[2], rc;
    if (!a || !b) return -EINVAL;
    if (duplex ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) : mpq__pipe_cloexec(fds))
        return mpq__err();
    rc = duplex ? mpq__conn_new(a, fds[0], fds[0], 1) : mpq__conn_new(a, fds[0], -1, 0);
    if (rc == 0) {
        rc = duplex ? mpq__conn_new(b, fds[1], fds[1], 1) : mpq__conn_new(b, -1, fds[1], 0);
        if (rc != 0) MPQ_FREE(*a);
    }
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
    }
    return rc;
}

MPQDEF int mpq_conn_from_fd(mpq_conn **c, int fd)
{
    struct stat st;
    int type = 0, acc, rc;
    socklen_t tl = sizeof type;
    if (!c) return -EINVAL;
    if (fstat(fd, &st) != 0) return mpq__err();
    if (S_ISSOCK(st.st_mode)) {
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0) return mpq__err();
        if (type != SOCK_STREAM) return -ENOTSUP;
        return mpq__conn_new(c, fd, fd, 1);
    }
    if (!S_ISFIFO(st.st_mode)) return -ENOTSUP;
    if ((acc = fcntl(fd, F_GETFL)) < 0) return mpq__err();
    rc = mpq__conn_new(c, (acc & O_ACCMODE) == O_WRONLY ? -1 : fd, (acc & O_ACCMODE) == O_RDONLY ? -1 : fd, 0);
    if (rc == 0) (*c)->nb = (acc & O_NONBLOCK) != 0;
    return rc;
}

MPQDEF int mpq_conn_set_max(mpq_conn *c, uint64_t max_msg)
{
    if (!c) return -EINVAL;
    c->max = max_msg ? max_msg : MPQ_CONN_DEFAULT_MAX;
    return 0;
}

MPQDEF int mpq_conn_fileno(const mpq_conn *c)
{
    if (!c) return -EINVAL;
    return c->rfd >= 0 ? c->rfd : c->wfd;
}

MPQDEF int mpq_conn_close(mpq_conn *c)
{
    int i;
    if (!c) return -EINVAL;
    if (c->rfd >= 0) close(c->rfd);
    if (c->wfd >= 0 && c->wfd != c->rfd) close(c->wfd);
    for (i = 0; i < c->nhand; i++)
        if (c->hand[i].fd >= 0) close(c->hand[i].fd);
    MPQ_FREE(c->rbuf);
    MPQ_FREE(c->body);
    MPQ_FREE(c);
    return 0;
}

/* --- sending ----------------------------------------------------------- */

/* Writes iov (changing it) until all is written. A pipe write blocks
   SIGPIPE in this thread meanwhile and takes back the one it raised, so
   the process's dispositions are never touched. */
static int mpq__conn_writev(mpq_conn *c, struct iovec *iov, int n, const struct msghdr *first)
{
    sigset_t pipe_set, old;
    int rc = 0, masked = 0, was_pending = 0;
    if (!c->sock) {
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        masked = 1;
        if (sigismember(&old, SIGPIPE)) {   /* blocked already: one pending is not ours */
            sigset_t pending;
            sigpending(&pending);
            was_pending = sigismember(&pending, SIGPIPE);
        }
    }
    while (n > 0) {
        ssize_t r;
        if (c->sock) {
            struct msghdr m;
            if (first) m = *first;
            else memset(&m, 0, sizeof m);
            m.msg_iov = iov;
            m.msg_iovlen = (size_t)n;
            r = sendmsg(c->wfd, &m, MSG_NOSIGNAL);
            if (r > 0) first = NULL;  /* ancillary data goes with the first byte */
        } else {
            r = writev(c->wfd, iov, n);
        }
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = mpq__err();
            if (rc == -ECONNRESET) rc = -EPIPE;   /* the peer went with our data unread */
            if (rc == -EAGAIN || rc == -EWOULDBLOCK) {   /* a non-blocking descriptor */
                rc = mpq__poll1(c->wfd, POLLOUT, -1);
                if (rc >= 0 || rc == -EINTR) {
                    rc = 0;
                    continue;
                }
            }
            break;
        }
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    if (masked) {
        /* Take back the SIGPIPE this write raised, but not one that was
           pending before (signals do not queue: that one was not ours). */
        if (rc == -EPIPE && !was_pending) {
            struct timespec zero = { 0, 0 };
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return rc;
}

/* The frame header for len: 4 bytes, or, above 2^31 - 1, 12 (Python's
   "!i" -1 and "!Q" len: it reads the 4-byte length as signed). */
static int mpq__conn_header(unsigned char *h, uint64_t len)
{
    int i, n = len <= 0x7fffffffu ? 4 : 12;
    uint64_t v = len;
    if (n == 12) { h[0] = h[1] = h[2] = h[3] = 0xff; }
    for (i = n - 1; i >= n - (n == 4 ? 4 : 8); i--) {
        h[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    return n;
}

static int mpq__conn_send(mpq_conn *c, const void *msg, size_t len, const struct msghdr *anc)
{
    unsigned char h[12];
    struct iovec iov[2];
    if (!c || (!msg && len)) return -EINVAL;
    if (c->wfd < 0) return -EBADF;
    iov[0].iov_base = h;
    iov[0].iov_len = (size_t)mpq__conn_header(h, (uint64_t)len);
    iov[1].iov_base = (void *)(uintptr_t)msg;
    iov[1].iov_len = len;
    return mpq__conn_writev(c, iov, len ? 2 : 1, anc);
}

MPQDEF int mpq_conn_send(mpq_conn *c, const void *msg, size_t len)
{
    return mpq__conn_send(c, msg, len, NULL);
}

/* One byte, 0x01, in a sendmsg of its own, carrying fd (see "Descriptors
   on the wire" above). */
MPQDEF int mpq_conn_send_fd(mpq_conn *c, int fd)
{
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    unsigned char one = 1;
    struct iovec iov;
    struct msghdr m;
    struct cmsghdr *cm;
    if (!c) return -EINVAL;
    if (!c->local) return -ENOTSUP;   /* only Unix sockets carry descriptors */
    if (fd < 0) return -EBADF;
    memset(&u, 0, sizeof u);
    memset(&m, 0, sizeof m);
    m.msg_control = u.buf;
    m.msg_controllen = sizeof u.buf;
    cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    iov.iov_base = &one;
    iov.iov_len = 1;
    return mpq__conn_writev(c, &iov, 1, &m);
}

/* --- receiving --------------------------------------------------------- */

/* Waits until rfd is readable, at most until `deadline` (-1: forever).
   Returns 0, -EAGAIN (deadline 0 given as "try once"), -ETIMEDOUT. */
static int mpq__conn_wait_readable(mpq_conn *c, int64_t deadline, int once)
{
    for (;;) {
        int left = once ? 0 : mpq__remaining_ms(deadline), r = mpq__poll1(c->rfd, POLLIN, left);
        if (r > 0) return 0;
        if (r < 0 && r != -EINTR) return r;
        if (r == 0 && (once || left == 0)) return once ? -EAGAIN : -ETIMEDOUT;
    }
}

/* The stream offset of the next byte to parse, rbuf[rpos]. (A large body
   is read past rbuf only once rbuf is drained, so this holds then too.) */
static uint64_t mpq__conn_cursor(const mpq_conn *c) { return c->rd - (uint64_t)(c->rlen - c->rpos); }

/* Closes and forgets the noted descriptors whose byte lies before `end`:
   they came inside a frame that is being (or has been) received. */
static void mpq__conn_purge(mpq_conn *c, uint64_t end)
{
    int k = 0;
    while (k < c->nhand && c->hand[k].at < end) {
        if (c->hand[k].fd >= 0) close(c->hand[k].fd);
        k++;
    }
    if (k) {
        memmove(c->hand, c->hand + k, (size_t)(c->nhand - k) * sizeof *c->hand);
        c->nhand -= k;
    }
}

/* A recvmsg just returned the stream's bytes up to rd with ancillary data
   (or with some cut off: MSG_CTRUNC): its descriptors came on byte rd - 1
   (see "Descriptors on the wire"). One is kept for that byte, any more
   are closed; a byte inside the frame being read keeps none. */
static void mpq__conn_arrived(mpq_conn *c, struct msghdr *m)
{
    struct cmsghdr *cm;
    uint64_t at = c->rd - 1;
    int fd = -1;
    for (cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
        size_t i, n;
        int rights;
        if (cm->cmsg_level != SOL_SOCKET) continue;
        rights = cm->cmsg_type == SCM_RIGHTS;
        /* A pidfd of the sender (SO_PASSPIDFD, Linux 6.5) comes with every
           read of a socket that asked for it: not ours to keep. */
        if (!rights && cm->cmsg_type != MPQ__SCM_PIDFD) continue;
        n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (i = 0; i < n; i++) {
            int f;
            memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof f);
            if (rights && fd < 0) fd = f;
            else close(f);
        }
    }
    if (fd < 0 && !(m->msg_flags & MSG_CTRUNC)) return;   /* credentials only */
    if ((c->have_len && at < c->fend) || c->nhand == MPQ__CONN_FDS) {
        if (c->nhand == MPQ__CONN_FDS) c->broken = 1;     /* a peer off the protocol */
        if (fd >= 0) close(fd);
        return;
    }
    c->hand[c->nhand].at = at;
    c->hand[c->nhand].fd = fd;
    c->nhand++;
}

/* Reads what is there (at most `room` bytes, waiting until the deadline
   for the first) into dst. Returns bytes read (> 0), 0 at end of stream,
   or -EAGAIN/-ETIMEDOUT/-errno. Descriptors that come along are kept. */
static ssize_t mpq__conn_read(mpq_conn *c, char *dst, size_t room, int64_t deadline, int once)
{
    for (;;) {
        ssize_t r;
        int rc;
        if (c->sock) {
            /* Room for descriptors, and for what a socket option of the
               caller's may add to every read: credentials (SO_PASSCRED),
               a pidfd (SO_PASSPIDFD), a security label (SO_PASSSEC). Were
               those cut short (MSG_CTRUNC), the read would count as a
               descriptor that could not be installed. */
            union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * MPQ__CONN_FDS) + 512]; } u;
            struct iovec iov;
            struct msghdr m;
            memset(&m, 0, sizeof m);
            iov.iov_base = dst;
            iov.iov_len = room;
            m.msg_iov = &iov;
            m.msg_iovlen = 1;
            m.msg_control = u.buf;
            m.msg_controllen = sizeof u.buf;
            r = recvmsg(c->rfd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
            if (r > 0) {
                c->rd += (uint64_t)r;
                if (m.msg_controllen > 0 || (m.msg_flags & MSG_CTRUNC)) mpq__conn_arrived(c, &m);
            }
        } else {
            /* A blocking pipe is waited on first unless the wait is
               unbounded; a non-blocking one just reads. */
            if (!c->nb && (deadline >= 0 || once) && (rc = mpq__conn_wait_readable(c, deadline, once)) != 0)
                return rc;
            r = read(c->rfd, dst, room);
            if (r > 0) c->rd += (uint64_t)r;
        }
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == ECONNRESET) return 0;   /* the peer went with data unread: an end */
        if (errno != EAGAIN && errno != EWOULDBLOCK) return mpq__err();
        if ((rc = mpq__conn_wait_readable(c, deadline, once)) != 0) return rc;
    }
}

/* Makes at least `need` bytes available in rbuf (need <= MPQ__CONN_BUF).
   Returns 0, -EPIPE (end of stream, nothing buffered and no frame begun),
   -EPROTO (end of stream inside a frame), or a wait error. */
static int mpq__conn_fill(mpq_conn *c, size_t need, int64_t deadline, int once)
{
    if (!c->rbuf && !(c->rbuf = (char *)MPQ_MALLOC(MPQ__CONN_BUF))) return -ENOMEM;
    while (c->rlen - c->rpos < need) {
        ssize_t r;
        if (c->eof) return (c->rlen == c->rpos && !c->have_len) ? -EPIPE : -EPROTO;
        if (c->rpos > 0 && c->rpos == c->rlen) c->rpos = c->rlen = 0;
        if (MPQ__CONN_BUF - c->rpos < need) {            /* compact */
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        {   /* ask for what is needed, or a page's worth of small frames */
            size_t want = need - (c->rlen - c->rpos), room = MPQ__CONN_BUF - c->rlen;
            if (want < MPQ__CONN_READ) want = MPQ__CONN_READ;
            r = mpq__conn_read(c, c->rbuf + c->rlen, want < room ? want : room, deadline, once);
        }
        if (r < 0) return (int)r;
        if (r == 0) c->eof = 1;
        c->rlen += (size_t)r;
    }
    return 0;
}

/* Whether a noted descriptor byte stands at the cursor (the parser is at
   a frame boundary): then a descriptor, not a frame, is next. */
static int mpq__conn_hand_next(const mpq_conn *c)
{
    uint64_t cur = mpq__conn_cursor(c);
    int k;
    if (c->have_len || c->rlen == c->rpos) return 0;
    for (k = 0; k < c->nhand; k++)
        if (c->hand[k].at >= cur) return c->hand[k].at == cur;
    return 0;
}

/* Takes the next frame's header from the stream, once per frame; or
   returns MPQ__CONN_HAND when a descriptor byte is next instead. */
static int mpq__conn_frame(mpq_conn *c, int64_t deadline, int once)
{
    const unsigned char *h;
    uint64_t len = 0, cur;
    int i, rc;
    if (c->broken) return -EPROTO;
    if (c->have_len) return 0;
    if ((rc = mpq__conn_fill(c, 1, deadline, once)) != 0) return rc;
    mpq__conn_purge(c, mpq__conn_cursor(c));
    if (mpq__conn_hand_next(c)) return MPQ__CONN_HAND;
    if ((rc = mpq__conn_fill(c, 4, deadline, once)) != 0) return rc;
    h = (const unsigned char *)c->rbuf + c->rpos;
    if (h[0] == 0xff && h[1] == 0xff && h[2] == 0xff && h[3] == 0xff) {
        if ((rc = mpq__conn_fill(c, 12, deadline, once)) != 0) return rc;
        h = (const unsigned char *)c->rbuf + c->rpos;
        for (i = 4; i < 12; i++) len = len << 8 | h[i];
        c->rpos += 12;
    } else {
        for (i = 0; i < 4; i++) len = len << 8 | h[i];
        c->rpos += 4;
    }
    c->have_len = 1;
    c->flen = len;
    c->got = 0;
    cur = mpq__conn_cursor(c);
    c->fend = len > ~(uint64_t)0 - cur ? ~(uint64_t)0 : cur + len;
    mpq__conn_purge(c, c->fend);   /* descriptors that came on this frame's bytes */
    return 0;
}

/* Reads the current frame's body into dst (flen bytes). A small frame is
   gathered in the read buffer first, so a timeout loses nothing; a larger
   one goes straight into dst, and if time runs out half-way what came is
   moved to c->body, where the next calls go on filling it (copied to the
   caller once, when whole). Bytes that cannot be kept break the
   connection rather than leave a hole. */
static int mpq__conn_body(mpq_conn *c, char *dst, int64_t deadline, int once)
{
    uint64_t len = c->flen;
    char *to = c->body ? c->body : dst;
    size_t take;
    int rc;
    if (len <= MPQ__CONN_DIRECT && !c->body) {
        if ((rc = mpq__conn_fill(c, (size_t)len, deadline, once)) != 0) return rc;
        if (len) memcpy(dst, c->rbuf + c->rpos, (size_t)len);
        c->rpos += (size_t)len;
        c->have_len = 0;
        return 0;
    }
    take = c->rlen - c->rpos;                          /* what is buffered */
    if ((uint64_t)take > len - c->got) take = (size_t)(len - c->got);
    memcpy(to + c->got, c->rbuf + c->rpos, take);
    c->rpos += take;
    c->got += take;
    while (c->got < len) {
        ssize_t r;
        if (c->eof) return -EPROTO;
        r = mpq__conn_read(c, to + c->got, (size_t)(len - c->got), deadline, once);
        if (r == 0) { c->eof = 1; return -EPROTO; }
        if (r < 0) {
            if (to == dst && c->got > 0) {             /* keep what came */
                if ((r == -EAGAIN || r == -ETIMEDOUT) && (c->body = (char *)MPQ_MALLOC((size_t)len)))
                    memcpy(c->body, dst, (size_t)c->got);
                else
                    c->broken = 1;
            }
            return (int)r;
        }
        c->got += (uint64_t)r;
    }
    if (to != dst) {
        memcpy(dst, c->body, (size_t)len);
        MPQ_FREE(c->body);
        c->body = NULL;
    }
    c->have_len = 0;
    return 0;
}

/* Starts a receive: the next frame's length in *len, checked against the
   maximum (over it: the connection breaks) and, if cap is not NULL,
   against *cap (over it: -EMSGSIZE, the frame stays). */
static int mpq__conn_begin(mpq_conn *c, const size_t *cap, size_t *len, int timeout_ms, int64_t *deadline)
{
    int rc;
    if (!c || !len) return -EINVAL;
    if (c->rfd < 0) return -EBADF;
    *deadline = mpq__deadline(timeout_ms);
    *len = 0;
    if ((rc = mpq__conn_frame(c, *deadline, timeout_ms == 0)) != 0)
        return rc == MPQ__CONN_HAND ? -ENOMSG : rc;   /* a descriptor: for recv_fd */
    if (c->flen > c->max || c->flen > (uint64_t)((size_t)-1 / 2)) {
        c->broken = 1;              /* we cannot know where the next frame starts */
        *len = c->flen > (uint64_t)(size_t)-1 ? (size_t)-1 : (size_t)c->flen;
        return -EMSGSIZE;
    }
    *len = (size_t)c->flen;
    return cap && c->flen > (uint64_t)*cap ? -EMSGSIZE : 0;
}

MPQDEF int mpq_conn_recv(mpq_conn *c, void *buf, size_t cap, size_t *len, int timeout_ms)
{
    int64_t deadline;
    size_t n = 0;
    int rc;
    if (!len || (!buf && cap)) return -EINVAL;
    rc = mpq__conn_begin(c, &cap, &n, timeout_ms, &deadline);
    *len = n;
    if (rc != 0) return rc;
    return mpq__conn_body(c, (char *)buf, deadline, timeout_ms == 0);
}

MPQDEF int mpq_conn_recv_alloc(mpq_conn *c, void **buf, size_t *len, int timeout_ms)
{
    int64_t deadline;
    size_t n = 0;
    char *b;
    int rc;
    if (!buf) return -EINVAL;
    rc = mpq__conn_begin(c, NULL, &n, timeout_ms, &deadline);
    if (len) *len = n;
    if (rc != 0) return rc;
    if (!(b = (char *)MPQ_MALLOC(n ? n : 1))) return -ENOMEM;
    if ((rc = mpq__conn_body(c, b, deadline, timeout_ms == 0)) != 0) {
        MPQ_FREE(b);
        return rc;
    }
    *buf = b;
    return 0;
}

MPQDEF int mpq_conn_recv_fd(mpq_conn *c, int *fd, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    void *b = NULL;
    size_t len = 0;
    int rc, left;
    if (!c || !fd) return -EINVAL;
    if (c->rfd < 0) return -EBADF;
    rc = mpq__conn_frame(c, deadline, timeout_ms == 0);
    if (rc == MPQ__CONN_HAND) {    /* its byte is rbuf[rpos], noted in hand[0] */
        int got = c->hand[0].fd;
        memmove(c->hand, c->hand + 1, (size_t)(c->nhand - 1) * sizeof *c->hand);
        c->nhand--;
        c->rpos++;
        if (got < 0) return -EMFILE;
        *fd = got;
        return 0;
    }
    if (rc != 0) return rc;
    /* A message where a descriptor was expected: consumed all the same. */
    left = timeout_ms == 0 ? 0 : mpq__remaining_ms(deadline);
    if ((rc = mpq_conn_recv_alloc(c, &b, &len, left == 0 && timeout_ms != 0 ? 1 : left)) == 0)
        MPQ_FREE(b);
    return rc == 0 ? -EBADMSG : rc;
}

MPQDEF int mpq_conn_send_conn(mpq_conn *c, const mpq_conn *conn)
{
    if (!c || !conn) return -EINVAL;
    if (conn->broken) return -EPROTO;
    if (conn->rlen > conn->rpos || conn->have_len || conn->body) return -EBUSY;   /* read ahead */
    return mpq_conn_send_fd(c, conn->rfd >= 0 ? conn->rfd : conn->wfd);
}

MPQDEF int mpq_conn_recv_conn(mpq_conn *c, mpq_conn **out, int timeout_ms)
{
    int fd = -1, rc;
    if (!c || !out) return -EINVAL;
    if ((rc = mpq_conn_recv_fd(c, &fd, timeout_ms)) != 0) return rc;
    if ((rc = mpq_conn_from_fd(out, fd)) != 0) close(fd);
    return rc;
}

/* Something to receive without waiting: a whole frame in the buffer, a
   descriptor byte, the end, or a broken connection. (A part of a frame is not: the descriptor
   says when more comes.) */
static int mpq__conn_buffered(const mpq_conn *c)
{
    const unsigned char *h;
    size_t have = c->rlen - c->rpos, hl = 4;
    uint64_t len = 0;
    int i;
    if (c->eof || c->broken) return 1;
    if (c->have_len) return !c->body && c->flen <= MPQ__CONN_DIRECT && c->flen <= have;
    if (mpq__conn_hand_next(c)) return 1;
    if (have < 4) return 0;
    h = (const unsigned char *)c->rbuf + c->rpos;   /* not before: rbuf may be NULL */
    if (h[0] == 0xff && h[1] == 0xff && h[2] == 0xff && h[3] == 0xff) hl = 12;
    if (have < hl) return 0;
    for (i = (int)hl - (hl == 4 ? 4 : 8); i < (int)hl; i++) len = len << 8 | h[i];
    return len <= MPQ__CONN_DIRECT && len <= have - hl;
}

MPQDEF int mpq_conn_poll(mpq_conn *c, int timeout_ms)
{
    int ready = 0, rc;
    if (!c) return -EINVAL;
    if (c->rfd < 0) return -EBADF;
    rc = mpq_conn_wait(&c, 1, &ready, timeout_ms);
    return rc < 0 ? rc : ready;
}

#define MPQ__WAIT_MAX 4096   /* entries in one mpq_wait or mpq_conn_wait */

/* Every ready connection is reported each time, so a server loop that
   serves what wait reports never starves one: those with a message inside
   mpq's buffer are ready without asking the kernel, and the others are
   polled all the same - without waiting when some are ready already,
   until the deadline when none is. (Returning as soon as a buffered one
   was found hid the others for as long as the busy one's buffer lasted.)
   That is mpq_wait's way with every kind: this is mpq_wait over
   connections only. */
MPQDEF int mpq_conn_wait(mpq_conn *const *conns, size_t n, int *ready, int timeout_ms)
{
    mpq_waitable stackw[16], *w = stackw;
    size_t i;
    int rc;
    if (!conns || !ready || n == 0 || n > MPQ__WAIT_MAX) return -EINVAL;
    for (i = 0; i < n; i++)
        if (!conns[i] || conns[i]->rfd < 0) return -EINVAL;
    if (n > 16 && !(w = (mpq_waitable *)MPQ_MALLOC(n * sizeof *w))) return -ENOMEM;
    for (i = 0; i < n; i++) {
        w[i].kind = MPQ_WAIT_KIND_CONN;
        w[i].obj = conns[i];
        w[i].fd = -1;
        w[i].ready = 0;
    }
    if ((rc = mpq_wait(w, n, timeout_ms)) >= 0)
        for (i = 0; i < n; i++) ready[i] = w[i].ready;
    if (w != stackw) MPQ_FREE(w);
    return rc;
}

/* --- mpq_wait: connections, listeners, queues, processes, descriptors --- */

/* How the wait sleeps. Descriptors - connections not ready inside mpq,
   listeners, pidfd sentinels, plain ones - go to one poll(2). A queue has
   no descriptor (a named one has no eventfd at all, and an anonymous
   one's belongs to its single poller), so the queues are watched by a
   thread of the call's own that sleeps on their data eventcounts exactly
   as a blocked get does - announce (bit 0), look, futex-wait, for at
   most a slice - and pokes an eventfd in the caller's poll once a queue
   may be ready. A put then wakes the wait with the futex wake-up it
   makes for a get anyway; the thread adds one wake-up (the eventfd) on
   the way. All of a watcher's queues and a stop word of the call's own
   are slept on at once with futex_waitv (Linux 5.16+, 127 queues per
   thread); the caller stops it by setting the stop word and waking it,
   which touches no queue, so no sleeper anywhere sees a stray wake-up.
   Without futex_waitv, each queue gets a watcher that sleeps on it alone
   (a plain futex), and stopping it has to signal that queue's
   eventcount: its other sleepers then wake once for nothing, look, and
   sleep again. With nothing but queues to wait for, the calling thread
   itself sleeps on them (when one futex call can hold them all), so no
   thread and no eventfd is needed and a put wakes it as fast as it
   wakes a get. Before any of that it spins as briefly as a get does,
   looking at the queues: a partner that answers within ~20 us costs
   neither a sleep nor a thread (a thread's start and join cost ~75 us
   of CPU on this machine class, its wake-up ~20 us more than a get's:
   bench_wait). */

#define MPQ__WAIT_GROUP 127    /* queues per watcher: futex_waitv takes 128,
                                  one is the stop word                       */
#define MPQ__WAIT_POLL_MS 20   /* a process without pidfd is looked at this often */
#define MPQ__WAIT_LOOK_MS 10   /* queues with no watcher are looked at this often */

#if defined(SYS_futex_waitv)
#define MPQ__NR_FUTEX_WAITV SYS_futex_waitv
#elif defined(__linux__) && ((defined(__x86_64__) && !defined(__ILP32__)) || defined(__i386__) || \
                             defined(__aarch64__) || defined(__arm__) || defined(__riscv))
#define MPQ__NR_FUTEX_WAITV 449   /* the same number on these; older headers lack it */
#endif

/* The kernel's struct futex_waitv (linux/futex.h), for FUTEX_32 words. */
typedef struct mpq__fwaitv {
    uint64_t val, uaddr;
    uint32_t flags, reserved;
} mpq__fwaitv;
#define MPQ__FUTEX_32 2u

/* futex_waitv (absolute CLOCK_MONOTONIC deadline, -1: none): returns 0
   once woken, a word differed, interrupted or timed out (the caller
   looks again either way), -ENOSYS where the kernel (or a test build,
   MPQ__NO_FUTEX_WAITV) has no such call. */
static int mpq__futex_waitv(mpq__fwaitv *v, unsigned n, int64_t deadline)
{
#if defined(MPQ__NR_FUTEX_WAITV) && !defined(MPQ__NO_FUTEX_WAITV)
    struct { int64_t tv_sec, tv_nsec; } ts;   /* __kernel_timespec */
    ts.tv_sec = deadline / 1000000000;
    ts.tv_nsec = deadline % 1000000000;
    if (syscall(MPQ__NR_FUTEX_WAITV, v, n, 0, deadline >= 0 ? &ts : NULL, CLOCK_MONOTONIC) >= 0 ||
        errno == EAGAIN || errno == EINTR || errno == ETIMEDOUT)
        return 0;
    return errno == ENOSYS || errno == EPERM ? -ENOSYS : mpq__err();
#else
    (void)v; (void)n; (void)deadline;
    return -ENOSYS;
#endif
}

/* Whether futex_waitv works here: with no waiters it says EINVAL. */
static int mpq__have_futex_waitv(void)
{
#if defined(MPQ__NR_FUTEX_WAITV) && !defined(MPQ__NO_FUTEX_WAITV)
    return syscall(MPQ__NR_FUTEX_WAITV, NULL, 0, 0, NULL, CLOCK_MONOTONIC) < 0 && errno == EINVAL;
#else
    return 0;
#endif
}

/* A queue's part of the wait: whether a get with timeout 0 would not
   wait - a message at the tail (its length not judged: an odd one gives
   the get an error at once), a closed and drained queue, a state no get
   makes - without taking anything. On the way it does what a get does
   before it finds its message: it retires skipped slots (they hold
   none), moves a lagging tail on, and has a dead claimant's slot at the
   tail taken over (mpq__q_stuck, the get side's tracker). *held says that
   a slot or a packed cursor is held at the tail: look again within
   MPQ__STUCK_MS. */
static int mpq__q_ready(mpq_queue *q, uint32_t me, int *held)
{
    mpq__qhdr *h = q->h;
    *held = 0;
    for (;;) {
        uint64_t t, t0, lap, st, d;
        mpq__qslot *s = mpq__q_tail(q, &t, &lap, &st, &d);
        unsigned phase = MPQ__ST_PHASE(st);
        t0 = t;
        if (st == mpq__st(lap, MPQ__FULL, 0)) return 1;
        if (st == mpq__st(lap, MPQ__FULL, MPQ__PACKED)) {
            uint64_t cw = mpq__load64(&s->cursor, MPQ__ACQUIRE);
            if (MPQ__CUR_PID(cw) == 0) return 1;   /* free to take (a get sorts out the rest) */
            *held = 1;
            if (mpq__q_stuck(q, 1, s, st, cw, me)) continue;
            return 0;
        }
        if (st == mpq__st(lap, MPQ__FULL, MPQ__SKIPPED)) {
            mpq__q_retire(q, s, st, t);
        } else if ((d == 0 && phase == MPQ__READING) || d == 1) {
            mpq__cas64(&h->tail, &t0, t + 1, MPQ__RELEASE);   /* taken: the tail lags */
        } else if (mpq__load64(&h->tail, MPQ__ACQUIRE) != t) {
            continue;                                          /* a stale look */
        } else if ((d == 0 && (phase == MPQ__EMPTY || phase == MPQ__WRITING)) ||
                   (d == MPQ__LAPMASK && phase == MPQ__READING)) {
            /* Empty, a put in progress, last lap's get still reading: as
               in mpq__q_claim_get, closed counts once no put is on its way. */
            if (phase != MPQ__WRITING && mpq__load32(&h->closed, MPQ__SEQ_CST) &&
                mpq__load64(&s->state, MPQ__SEQ_CST) == st)
                return 1;
            if (q->ptab && mpq__q_pr_check(q)) continue;   /* the last producer has died */
            if (!MPQ__HELD(st)) return 0;
            *held = 1;
            if (!mpq__q_stuck(q, 1, s, st, 0, me)) return 0;
        } else {
            return 1;   /* corrupt: the get says -EIO at once */
        }
    }
}

/* What one wait shares with its watchers. */
typedef struct mpq__wait_cx {
    mpq_queue **q;      /* the queues to watch                              */
    size_t      nq;
    uint32_t    stop;   /* 1: the caller is done (then woken: see above)    */
    int         efd;    /* poked once a queue may be ready                  */
    int         waitv;  /* futex_waitv works                                */
} mpq__wait_cx;

typedef struct mpq__wait_thr {
    mpq__wait_cx *cx;
    size_t        first, n;   /* its queues: cx->q[first .. first + n)      */
    pthread_t     t;
} mpq__wait_thr;

/* Sleeps on queues cx->q[first .. first + n) until one may be ready (1),
   or the stop word is set or `deadline` passes (0). n is 1, or at most
   MPQ__WAIT_GROUP with futex_waitv. */
static int mpq__wait_queues(mpq__wait_cx *cx, size_t first, size_t n, int64_t deadline)
{
    mpq__fwaitv v[MPQ__WAIT_GROUP + 1];
    uint64_t start;
    uint32_t me = mpq__self(&start);
    for (;;) {
        int64_t now, until;
        int held = 0, hk;
        size_t i;
        if (mpq__load32(&cx->stop, MPQ__SEQ_CST)) return 0;
        for (i = 0; i < n; i++) {   /* announce, then look: a put after the look wakes us */
            uint32_t *ec = &cx->q[first + i]->h->data_ec;
            v[i].val = mpq__ec_prepare(ec);
            v[i].uaddr = (uint64_t)(uintptr_t)ec;
            v[i].flags = MPQ__FUTEX_32;
            v[i].reserved = 0;
            if (mpq__q_ready(cx->q[first + i], me, &hk)) return 1;
            held |= hk;
        }
        now = mpq__now_ns();
        if (deadline >= 0 && now >= deadline) return 0;
        until = now + (int64_t)(held ? MPQ__STUCK_MS : MPQ__WAIT_SLICE_MS) * 1000000;
        if (deadline >= 0 && deadline < until) until = deadline;
        if (cx->waitv) {
            v[n].val = 0;   /* the stop word, woken by the caller: no queue's */
            v[n].uaddr = (uint64_t)(uintptr_t)&cx->stop;
            v[n].flags = MPQ__FUTEX_32;
            v[n].reserved = 0;
            if (mpq__futex_waitv(v, (unsigned)n + 1, until) != 0) {
                /* Refused after all (never seen): nap on the stop word,
                   which the caller wakes, and look again soon. */
                int64_t nap = mpq__now_ns() + (int64_t)MPQ__WAIT_LOOK_MS * 1000000;
                mpq__futex_wait(&cx->stop, 0, nap < until ? nap : until);
            }
        } else {
            /* The stop word is read after the announcement, and the caller
               signals the eventcount after setting it: no stop is missed. */
            if (mpq__load32(&cx->stop, MPQ__SEQ_CST)) return 0;
            mpq__futex_wait(&cx->q[first]->h->data_ec, (uint32_t)v[0].val, until);
        }
    }
}

static void *mpq__wait_thread(void *arg)
{
    mpq__wait_thr *t = (mpq__wait_thr *)arg;
    uint64_t one = 1;
    if (mpq__wait_queues(t->cx, t->first, t->n, -1))
        while (write(t->cx->efd, &one, sizeof one) < 0 && errno == EINTR) {}
    return NULL;
}

/* The watchers of one pass of the wait. */
typedef struct mpq__wait_set {
    mpq__wait_cx   cx;
    mpq__wait_thr *thr;
    size_t         nthr;
} mpq__wait_set;

/* Stops and joins the watchers. Also the cleanup handler of a cancelled
   wait: a thread cancelled in poll leaves no watcher behind. */
static void mpq__wait_stop(void *arg)
{
    mpq__wait_set *ws = (mpq__wait_set *)arg;
    size_t i;
    if (!ws->nthr) return;
    mpq__store32(&ws->cx.stop, 1, MPQ__SEQ_CST);
    mpq__futex_wake(&ws->cx.stop, INT_MAX);
    for (i = 0; i < ws->nthr; i++)
        if (ws->thr[i].n == 1 && !ws->cx.waitv) mpq__ec_signal(&ws->cx.q[ws->thr[i].first]->h->data_ec);
    for (i = 0; i < ws->nthr; i++) pthread_join(ws->thr[i].t, NULL);
    ws->nthr = 0;
    close(ws->cx.efd);
    ws->cx.efd = -1;
    MPQ_FREE(ws->thr);
    ws->thr = NULL;
}

/* Starts watchers for ws->cx.q[0 .. nq): returns the eventfd to poll, or
   -1 if none could start (the caller then looks every MPQ__WAIT_LOOK_MS). */
static int mpq__wait_start(mpq__wait_set *ws)
{
    size_t per = ws->cx.waitv ? MPQ__WAIT_GROUP : 1, want = (ws->cx.nq + per - 1) / per, i;
    sigset_t all, old;
    ws->nthr = 0;
    ws->cx.stop = 0;
    if ((ws->cx.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) return -1;
    if (!(ws->thr = (mpq__wait_thr *)MPQ_MALLOC(want * sizeof *ws->thr))) {
        close(ws->cx.efd);
        return ws->cx.efd = -1;
    }
    sigfillset(&all);   /* watchers take no signals: they stay the program's threads' */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (i = 0; i < want; i++) {
        mpq__wait_thr *t = &ws->thr[i];
        t->cx = &ws->cx;
        t->first = i * per;
        t->n = ws->cx.nq - t->first < per ? ws->cx.nq - t->first : per;
        if (pthread_create(&t->t, NULL, mpq__wait_thread, t) != 0) break;
        ws->nthr++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ws->nthr < want) {     /* all or none: a queue without a watcher would be missed */
        if (ws->nthr) {
            mpq__wait_stop(ws);    /* closes the eventfd too */
        } else {
            close(ws->cx.efd);
            MPQ_FREE(ws->thr);
            ws->thr = NULL;
        }
        return ws->cx.efd = -1;
    }
    return ws->cx.efd;
}

/* One look at entry e, never waiting: 1 ready, 0 not (*fd: the descriptor
   to poll for it, or -1 if it has none), or -errno. A queue that is not
   ready goes to q[*nq]; a process without a pidfd sets *slow. */
static int mpq__wait_look(mpq_waitable *e, int *fd, mpq_queue **q, size_t *nq, int *slow, uint32_t me)
{
    int held, s;
    *fd = -1;
    switch (e->kind) {
    case MPQ_WAIT_KIND_CONN:
        if (mpq__conn_buffered((const mpq_conn *)e->obj)) return 1;
        *fd = ((const mpq_conn *)e->obj)->rfd;
        return 0;
    case MPQ_WAIT_KIND_LISTENER:
        *fd = ((const mpq_listener *)e->obj)->fd;
        return 0;
    case MPQ_WAIT_KIND_FD:
        *fd = e->fd;
        return 0;
    case MPQ_WAIT_KIND_QUEUE:
        if (mpq__q_ready((mpq_queue *)e->obj, me, &held)) return 1;
        q[(*nq)++] = (mpq_queue *)e->obj;
        return 0;
    default:   /* MPQ_WAIT_KIND_PROCESS, checked before */
        s = mpq_process_sentinel((const mpq_process *)e->obj);
        if (s >= 0) *fd = s;
        else if (s == -ESRCH) return 1;   /* joined */
        else if (s == -EINVAL) return s;
        else if (mpq_process_alive((mpq_process *)e->obj) == 1) *slow = 1;
        else return 1;   /* ended, or nothing left to wait for: a join will say */
        return 0;
    }
}

/* The kinds and objects are checked before anything is looked at. */
static int mpq__wait_check(const mpq_waitable *w, size_t n)
{
    size_t i;
    if (!w || n == 0 || n > MPQ__WAIT_MAX) return -EINVAL;
    for (i = 0; i < n; i++) {
        if (w[i].kind == MPQ_WAIT_KIND_FD) {
            if (w[i].fd < 0) return -EBADF;
            continue;
        }
        if (w[i].kind < MPQ_WAIT_KIND_CONN || w[i].kind > MPQ_WAIT_KIND_PROCESS || !w[i].obj) return -EINVAL;
        if (w[i].kind == MPQ_WAIT_KIND_CONN && ((const mpq_conn *)w[i].obj)->rfd < 0) return -EBADF;
        if (w[i].kind == MPQ_WAIT_KIND_PROCESS && !((const mpq_process *)w[i].obj)->serial__) return -EINVAL;
    }
    return 0;
}

/* Before sleeping on queues, looks at them for about as long as a get
   spins (MPQ__SPIN_MIN pauses): a futex sleep and wake-up costs tens of
   microseconds here and a watcher thread more, and a partner that
   answers within the spin is caught without either. 1: one is ready. */
static int mpq__wait_spin(mpq_queue **qs, size_t nq, uint32_t me)
{
    uint32_t i;
    size_t k;
    int held;
    for (i = 1; i <= MPQ__SPIN_MIN; i++) {
        if ((i & 255) == 0) sched_yield();   /* the partner may share this CPU */
        else mpq__cpu_relax();
        if ((i & 7) == 0)
            for (k = 0; k < nq; k++)
                if (mpq__q_ready(qs[k], me, &held)) return 1;
    }
    return 0;
}

/* poll(2), then the watchers stopped - also when the thread is cancelled
   in it (a function of its own: glibc's cleanup macros use setjmp). */
static int mpq__wait_poll(struct pollfd *p, size_t n, int ms, mpq__wait_set *ws)
{
    int r;
    pthread_cleanup_push(mpq__wait_stop, ws);
    r = poll(p, (nfds_t)n, ms);
    if (r < 0) r = mpq__err();
    pthread_cleanup_pop(1);
    return r;
}

/* One pass: looks at everything, then - if nothing is ready and time is
   left - sleeps in one poll (or on the queues alone), then looks again
   at what the poll does not cover. Returns the count, -errno, or
   MPQ__WAIT_AGAIN when nothing is ready yet and time is left (woken for
   a message somebody else took, a slice ran out, a signal). */
#define MPQ__WAIT_AGAIN (-100000)
static int mpq__wait_pass(mpq_waitable *w, size_t n, struct pollfd *p, mpq_queue **qs, int64_t deadline)
{
    mpq__wait_set ws;
    uint64_t start;
    uint32_t me = mpq__self(&start);
    size_t i, nq = 0, npoll = 0;
    int count = 0, slow = 0, slept = 0, ms, r, fd, held;
    for (i = 0; i < n; i++) {
        r = mpq__wait_look(&w[i], &fd, qs, &nq, &slow, me);
        if (r < 0) return r;
        w[i].ready = r;
        count += r;
        p[i].fd = r ? -1 : fd;   /* poll(2) skips a negative descriptor */
        p[i].events = POLLIN;
        p[i].revents = 0;
        npoll += p[i].fd >= 0;
    }
    ms = count ? 0 : mpq__remaining_ms(deadline);
    if (nq && ms != 0 && mpq__wait_spin(qs, nq, me)) ms = 0;   /* caught: just look at the rest */
    else if (!npoll && ms == 0) return count;
    memset(&ws, 0, sizeof ws);
    ws.cx.efd = p[n].fd = -1;
    p[n].events = POLLIN;
    p[n].revents = 0;
    if (nq && ms != 0) {
        ws.cx.q = qs;
        ws.cx.nq = nq;
        ws.cx.waitv = mpq__have_futex_waitv();
        if (!npoll && !slow && (nq == 1 || (ws.cx.waitv && nq <= MPQ__WAIT_GROUP))) {
            mpq__wait_queues(&ws.cx, 0, nq, deadline);   /* only queues: sleep here */
            slept = 1;
        } else if ((p[n].fd = mpq__wait_start(&ws)) < 0) {
            slow = 1;
        }
    }
    if (!slept && (npoll || ms != 0)) {   /* nothing to poll but a slice (slow): poll just sleeps */
        if (slow) {
            int cap = nq && p[n].fd < 0 ? MPQ__WAIT_LOOK_MS : MPQ__WAIT_POLL_MS;
            if (ms < 0 || ms > cap) ms = cap;
        }
        if ((r = mpq__wait_poll(p, n + 1, ms, &ws)) < 0 && r != -EINTR) return count ? count : r;
        for (i = 0; r > 0 && i < n; i++) {
            if (!p[i].revents) continue;
            if (p[i].revents & POLLNVAL) return -EBADF;
            count += w[i].ready = 1;
        }
    }
    /* What the poll does not cover may have become ready meanwhile:
       queues, and processes without a pidfd. */
    for (i = 0; i < n; i++) {
        if (w[i].ready || (w[i].kind == MPQ_WAIT_KIND_PROCESS && p[i].fd >= 0)) continue;
        if (w[i].kind == MPQ_WAIT_KIND_QUEUE) r = mpq__q_ready((mpq_queue *)w[i].obj, me, &held);
        else if (w[i].kind == MPQ_WAIT_KIND_PROCESS) r = mpq_process_alive((mpq_process *)w[i].obj) != 1;
        else continue;
        count += w[i].ready = r;
    }
    if (count || (deadline >= 0 && mpq__now_ns() >= deadline)) return count;
    return MPQ__WAIT_AGAIN;
}

MPQDEF int mpq_wait(mpq_waitable *w, size_t n, int timeout_ms)
{
    struct pollfd stackp[17], *p = stackp;
    mpq_queue *stackq[16], **qs = stackq;
    int64_t deadline = mpq__deadline(timeout_ms);
    int rc = mpq__wait_check(w, n);
    if (rc != 0) return rc;
    if (n > 16) {
        p = (struct pollfd *)MPQ_MALLOC((n + 1) * sizeof *p);
        qs = (mpq_queue **)MPQ_MALLOC(n * sizeof *qs);
    }
    if (p && qs) {
        do rc = mpq__wait_pass(w, n, p, qs, deadline);
        while (rc == MPQ__WAIT_AGAIN);
    } else {
        rc = -ENOMEM;
    }
    if (p != stackp) MPQ_FREE(p);
    if (qs != stackq) MPQ_FREE(qs);
    return rc;
}

/* --- the peer's credentials ------------------------------------------- */

MPQDEF int mpq_conn_peer(const mpq_conn *c, pid_t *pid, uid_t *uid, gid_t *gid)
{
    struct { pid_t pid; uid_t uid; gid_t gid; } cr;  /* struct ucred, which glibc
                                                        declares for _GNU_SOURCE only */
    socklen_t n = sizeof cr;
    if (!c) return -EINVAL;
    if (!c->sock) return -ENOTSOCK;
    if (!c->local) return -ENOTSUP;
#ifdef SO_PEERCRED
    memset(&cr, 0, sizeof cr);
    if (getsockopt(c->rfd >= 0 ? c->rfd : c->wfd, SOL_SOCKET, SO_PEERCRED, &cr, &n) != 0) return mpq__err();
    if (pid) *pid = cr.pid;
    if (uid) *uid = cr.uid;
    if (gid) *gid = cr.gid;
    return 0;
#else
    (void)n; (void)cr; (void)pid; (void)uid; (void)gid;
    return -ENOTSUP;
#endif
}

/* --- authentication: MD5, SHA-256, HMAC and Python's handshake ---------- */

/* Python's Listener(authkey=...) and Client(authkey=...) authenticate each
   new connection with a challenge and an HMAC response, both ways: the
   listener delivers a challenge and the client answers, then the client
   delivers one and the listener answers (multiprocessing.connection's
   deliver_challenge and answer_challenge). Every step is one frame of at
   most 256 bytes:

       challenge  "#CHALLENGE#" "{sha256}" and 40 random bytes
       response   "{sha256}" HMAC-SHA256(key, challenge minus "#CHALLENGE#")
       verdict    "#WELCOME#" or "#FAILURE#"

   That is the protocol of Python 3.12 and later. Older ones (and, still
   accepted by current ones, the "legacy" form) send a challenge of 20
   random bytes with no "{digest}" prefix and expect the bare 16-byte
   HMAC-MD5 of it; a 16- or 20-byte challenge or response is legacy,
   whatever it holds - Python's rule, which mpq follows on both sides so
   that either end may be old. mpq delivers sha256 challenges, answers
   "{md5}" and "{sha256}" ones, and refuses the other digests Python
   allows (sha384, sha3_256, sha3_384), which no Python listener or client
   sends unless a program calls deliver_challenge itself. */

#define MPQ__AUTH_MAX 256       /* Python: recv_bytes(256) at every step */
#define MPQ__AUTH_RANDOM 40     /* Python: MESSAGE_LENGTH */

typedef struct mpq__dg {
    uint32_t      s[8];
    uint64_t      n;            /* bytes hashed so far */
    unsigned char b[64];
    int           md5;          /* 1: MD5 (RFC 1321), 0: SHA-256 (FIPS 180-4) */
} mpq__dg;

static const uint32_t mpq__md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const unsigned char mpq__md5_r[16] = { 7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21 };
static const uint32_t mpq__sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t mpq__rol(uint32_t x, unsigned n) { return x << n | x >> (32 - n); }
static uint32_t mpq__ror(uint32_t x, unsigned n) { return x >> n | x << (32 - n); }

static void mpq__dg_init(mpq__dg *h, int md5)
{
    static const uint32_t md5_iv[4] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 };
    static const uint32_t sha_iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    memset(h, 0, sizeof *h);
    h->md5 = md5;
    memcpy(h->s, md5 ? md5_iv : sha_iv, md5 ? sizeof md5_iv : sizeof sha_iv);
}

static void mpq__dg_block(mpq__dg *h, const unsigned char *p)
{
    uint32_t w[64], v[8], t1, t2;
    int i;
    memcpy(v, h->s, sizeof v);
    if (h->md5) {
        for (i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                   (uint32_t)p[4 * i + 3] << 24;
        for (i = 0; i < 64; i++) {   /* v[0..3] = a, b, c, d */
            uint32_t f;
            int g;
            switch (i >> 4) {
            case 0: f = (v[1] & v[2]) | (~v[1] & v[3]); g = i; break;
            case 1: f = (v[3] & v[1]) | (~v[3] & v[2]); g = (5 * i + 1) & 15; break;
            case 2: f = v[1] ^ v[2] ^ v[3]; g = (3 * i + 5) & 15; break;
            default: f = v[2] ^ (v[1] | ~v[3]); g = (7 * i) & 15; break;
            }
            t1 = v[3];
            v[3] = v[2];
            v[2] = v[1];
            v[1] += mpq__rol(v[0] + f + mpq__md5_k[i] + w[g], mpq__md5_r[(i >> 4) * 4 + (i & 3)]);
            v[0] = t1;
        }
        for (i = 0; i < 4; i++) h->s[i] += v[i];
        return;
    }
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++)
        w[i] = w[i - 16] + (mpq__ror(w[i - 15], 7) ^ mpq__ror(w[i - 15], 18) ^ (w[i - 15] >> 3)) + w[i - 7] +
               (mpq__ror(w[i - 2], 17) ^ mpq__ror(w[i - 2], 19) ^ (w[i - 2] >> 10));
    for (i = 0; i < 64; i++) {       /* v[0..7] = a .. h */
        t1 = v[7] + (mpq__ror(v[4], 6) ^ mpq__ror(v[4], 11) ^ mpq__ror(v[4], 25)) +
             ((v[4] & v[5]) ^ (~v[4] & v[6])) + mpq__sha256_k[i] + w[i];
        t2 = (mpq__ror(v[0], 2) ^ mpq__ror(v[0], 13) ^ mpq__ror(v[0], 22)) +
             ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof *v);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (i = 0; i < 8; i++) h->s[i] += v[i];
}

static void mpq__dg_put(mpq__dg *h, const void *data, size_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    while (n > 0) {
        size_t at = (size_t)(h->n & 63), k = 64 - at < n ? 64 - at : n;
        memcpy(h->b + at, p, k);
        h->n += k;
        p += k;
        n -= k;
        if (at + k == 64) mpq__dg_block(h, h->b);
    }
}

/* Pads, and writes the digest (16 bytes for MD5, 32 for SHA-256); returns
   its length. */
static size_t mpq__dg_end(mpq__dg *h, unsigned char *out)
{
    uint64_t bits = h->n * 8;
    unsigned char pad = 0x80, len[8];
    size_t i, words = h->md5 ? 4 : 8;
    mpq__dg_put(h, &pad, 1);
    pad = 0;
    while ((h->n & 63) != 56) mpq__dg_put(h, &pad, 1);
    for (i = 0; i < 8; i++) len[h->md5 ? i : 7 - i] = (unsigned char)(bits >> (8 * i));
    mpq__dg_put(h, len, 8);
    for (i = 0; i < words * 4; i++)
        out[i] = (unsigned char)(h->md5 ? h->s[i / 4] >> (8 * (i % 4)) : h->s[i / 4] >> (24 - 8 * (i % 4)));
    return words * 4;
}

/* Zeroes n bytes in a way the compiler may not drop as a dead store (a
   memset before free is one): for copies of a key. */
static void mpq__wipe(void *p, size_t n)
{
    volatile unsigned char *v = (volatile unsigned char *)p;
    while (n--) *v++ = 0;
}

/* HMAC (RFC 2104) with MD5 or SHA-256; returns the MAC's length. */
static size_t mpq__hmac(int md5, const void *key, size_t klen, const void *msg, size_t mlen, unsigned char *out)
{
    unsigned char k[64], pad[64], inner[32];
    mpq__dg h;
    size_t i, n;
    memset(k, 0, sizeof k);
    if (klen > 64) {
        mpq__dg_init(&h, md5);
        mpq__dg_put(&h, key, klen);
        mpq__dg_end(&h, k);
    } else if (klen) {
        memcpy(k, key, klen);
    }
    for (i = 0; i < 64; i++) pad[i] = (unsigned char)(k[i] ^ 0x36);
    mpq__dg_init(&h, md5);
    mpq__dg_put(&h, pad, 64);
    mpq__dg_put(&h, msg, mlen);
    n = mpq__dg_end(&h, inner);
    for (i = 0; i < 64; i++) pad[i] = (unsigned char)(k[i] ^ 0x5c);
    mpq__dg_init(&h, md5);
    mpq__dg_put(&h, pad, 64);
    mpq__dg_put(&h, inner, n);
    n = mpq__dg_end(&h, out);
    mpq__wipe(k, sizeof k);     /* what the key leaves on the stack */
    mpq__wipe(pad, sizeof pad);
    mpq__wipe(&h, sizeof h);
    return n;
}

/* Fills buf with bytes from the kernel's random pool: getrandom(2), or
   /dev/urandom before Linux 3.17. */
static int mpq__random(void *buf, size_t n)
{
    unsigned char *p = (unsigned char *)buf;
    size_t got = 0;
    int fd;
#ifdef SYS_getrandom
    while (got < n) {
        long r = syscall(SYS_getrandom, p + got, n - got, 0);
        if (r > 0) got += (size_t)r;
        else if (r < 0 && errno != EINTR) break;
    }
    if (got == n) return 0;
#endif
    if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) < 0) return mpq__err();
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r > 0) got += (size_t)r;
        else if (r == 0 || errno != EINTR) break;
    }
    close(fd);
    return got == n ? 0 : -EIO;
}

/* Sends one handshake frame, and receives one (at most MPQ__AUTH_MAX
   bytes, so a hostile peer makes us allocate nothing), by `deadline`.
   Errors: -EPROTO (too long, a descriptor, a broken stream), -ECONNRESET
   (the peer left), -ETIMEDOUT. */
static int mpq__auth_send(mpq_conn *c, const void *m, size_t n)
{
    int rc = mpq_conn_send(c, m, n);
    return rc == -EPIPE ? -ECONNRESET : rc;
}

static int mpq__auth_recv(mpq_conn *c, unsigned char *buf, size_t *len, int64_t deadline)
{
    int left = mpq__remaining_ms(deadline), rc;
    rc = mpq_conn_recv(c, buf, MPQ__AUTH_MAX, len, deadline >= 0 && left == 0 ? 1 : left);
    if (rc == -EMSGSIZE || rc == -ENOMSG) return -EPROTO;
    if (rc == -EPIPE) return -ECONNRESET;
    return rc == -EAGAIN ? -ETIMEDOUT : rc;
}

/* The digest a challenge or response names: *md5 set, and *skip bytes of
   "{name}" to pass over; -EPROTO for none Python would accept, -ENOTSUP
   for one it accepts that mpq does not compute. */
static int mpq__auth_digest(const unsigned char *m, size_t n, int *md5, size_t *skip)
{
    static const char *const other[] = { "{sha384}", "{sha3_256}", "{sha3_384}" };
    size_t i;
    *skip = 0;
    *md5 = 1;
    if (n == 16 || n == 20) return 0;                         /* legacy: bare HMAC-MD5 */
    if (n >= 5 && memcmp(m, "{md5}", 5) == 0) { *skip = 5; return 0; }
    if (n >= 8 && memcmp(m, "{sha256}", 8) == 0) { *md5 = 0; *skip = 8; return 0; }
    for (i = 0; i < sizeof other / sizeof *other; i++)
        if (n >= strlen(other[i]) && memcmp(m, other[i], strlen(other[i])) == 0) return -ENOTSUP;
    return -EPROTO;
}

/* Python's deliver_challenge: sends a challenge, checks the response,
   and says which it was. -EACCES: the peer's key is not ours. */
static int mpq__auth_deliver(mpq_conn *c, const void *key, size_t klen, int64_t deadline)
{
    unsigned char msg[11 + 8 + MPQ__AUTH_RANDOM], resp[MPQ__AUTH_MAX], mac[32];
    size_t len = 0, skip, n;
    int md5, rc, good = 0;
    memcpy(msg, "#CHALLENGE#{sha256}", 19);
    if ((rc = mpq__random(msg + 19, MPQ__AUTH_RANDOM)) != 0) return rc;
    if ((rc = mpq__auth_send(c, msg, sizeof msg)) != 0) return rc;
    if ((rc = mpq__auth_recv(c, resp, &len, deadline)) != 0) return rc;
    if ((rc = mpq__auth_digest(resp, len, &md5, &skip)) == 0) {
        /* The MAC covers the challenge's "{sha256}" too, so a response
           may name another digest without weakening anything. */
        n = mpq__hmac(md5, key, klen, msg + 11, sizeof msg - 11, mac);
        if (len - skip == n) {
            unsigned diff = 0;
            size_t i;
            for (i = 0; i < n; i++) diff |= (unsigned)(mac[i] ^ resp[skip + i]);   /* constant time */
            good = diff == 0;
        }
    }
    if (good) return mpq__auth_send(c, "#WELCOME#", 9);
    mpq__auth_send(c, "#FAILURE#", 9);
    return rc != 0 ? -EPROTO : -EACCES;    /* not a response at all, or a wrong one */
}

/* Python's answer_challenge: answers the peer's challenge and reads the
   verdict. -EACCES: our key is not the peer's. */
static int mpq__auth_answer(mpq_conn *c, const void *key, size_t klen, int64_t deadline)
{
    unsigned char msg[MPQ__AUTH_MAX], resp[8 + 32];
    size_t len = 0, skip, n;
    int md5, rc;
    if ((rc = mpq__auth_recv(c, msg, &len, deadline)) != 0) return rc;
    if (len < 11 + 20 || memcmp(msg, "#CHALLENGE#", 11) != 0) return -EPROTO;
    if ((rc = mpq__auth_digest(msg + 11, len - 11, &md5, &skip)) != 0) return -EPROTO;
    memcpy(resp, msg + 11, skip);                             /* "{name}", or nothing */
    n = mpq__hmac(md5, key, klen, msg + 11, len - 11, resp + skip);
    if ((rc = mpq__auth_send(c, resp, skip + n)) != 0) return rc;
    if ((rc = mpq__auth_recv(c, msg, &len, deadline)) != 0) return rc;
    if (len == 9 && memcmp(msg, "#WELCOME#", 9) == 0) return 0;
    return len == 9 && memcmp(msg, "#FAILURE#", 9) == 0 ? -EACCES : -EPROTO;
}

/* --- addresses, listeners and clients ---------------------------------- */

/* An address, parsed: a Unix socket (a path, or an abstract name) or a
   TCP host and port, for getaddrinfo. */
typedef struct mpq__addr {
    struct sockaddr_un un;      /* AF_UNIX: path or abstract name   */
    socklen_t          unlen;   /* ... its exact length             */
    int                tcp;
    char               host[256];
    char               port[6];
} mpq__addr;

static int mpq__addr_parse(mpq__addr *a, const char *s)
{
    const char *colon, *host, *p;
    size_t n, hn;
    unsigned long port = 0;
    memset(a, 0, sizeof *a);
    if (!s || !*s) return -EINVAL;
    if (strncmp(s, "unix:", 5) == 0) s += 5;
    else if (strncmp(s, "tcp:", 4) == 0) a->tcp = 1, s += 4;
    else if (*s == '@' || strchr(s, '/') || !strchr(s, ':')) a->tcp = 0;
    else a->tcp = 1;            /* "host:port", or an error: never a path */
    n = strlen(s);
    if (!a->tcp) {
        int abstract = *s == '@';
        /* A path needs its NUL in sun_path; an abstract name does not. */
        if (n == (size_t)abstract || n + !abstract > sizeof a->un.sun_path) return -EINVAL;
        a->un.sun_family = AF_UNIX;
        memcpy(a->un.sun_path, s, n);
        if (abstract) a->un.sun_path[0] = '\0';   /* Linux's abstract namespace */
        /* An abstract name is exactly its bytes (Python binds it so); a
           path ends at its NUL. */
        a->unlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + !abstract);
        return 0;
    }
    if (!(colon = strrchr(s, ':')) || !colon[1] || strlen(colon + 1) > 5) return -EINVAL;
    for (p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9') return -EINVAL;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535) return -EINVAL;
    host = s;
    hn = (size_t)(colon - s);
    if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {   /* "[::1]:port" */
        host++;
        hn -= 2;
        if (hn == 0) return -EINVAL;
    } else if (memchr(host, ':', hn) || memchr(host, '[', hn) || memchr(host, ']', hn)) {
        return -EINVAL;         /* an IPv6 address wants brackets */
    }
    if (hn >= sizeof a->host) return -EINVAL;
    memcpy(a->host, host, hn);
    memcpy(a->port, colon + 1, strlen(colon + 1) + 1);
    return 0;
}

static int mpq__gai_err(int e)
{
    switch (e) {
    case EAI_NONAME: return -ENOENT;   /* no such host */
#ifdef EAI_NODATA
    case EAI_NODATA: return -ENOENT;
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: return -EAFNOSUPPORT;
#endif
    case EAI_AGAIN: return -EAGAIN;    /* the resolver failed for now */
    case EAI_FAIL: return -EHOSTUNREACH;   /* ... or for good */
    case EAI_MEMORY: return -ENOMEM;
    case EAI_FAMILY: return -EAFNOSUPPORT;
    case EAI_SYSTEM: return mpq__err();
    default: return -EINVAL;
    }
}

/* getaddrinfo's results, IPv4 ones first, each once: the one after `at`
   (NULL: the first). */
static struct addrinfo *mpq__ai_next(struct addrinfo *res, struct addrinfo *at)
{
    int pass = at && at->ai_family != AF_INET;
    struct addrinfo *a = at ? at->ai_next : res;
    for (;; pass++, a = res) {
        for (; a; a = a->ai_next)
            if ((a->ai_family == AF_INET) == !pass) return a;
        if (pass) return NULL;
    }
}

static void mpq__tcp_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* a message is one write */
}

/* connect(2) by `deadline`: a blocking connect bounded by SO_SNDTIMEO
   (which bounds a Unix socket's wait for room in a full backlog, and a TCP
   handshake), or after EINTR the rest of a TCP handshake by poll. */
static int mpq__connect(int fd, const struct sockaddr *sa, socklen_t sl, int64_t deadline)
{
    struct timeval tv = { 0, 0 };
    int rc = 0, err = 0;
    socklen_t el = sizeof err;
    for (;;) {
        int left = mpq__remaining_ms(deadline);
        if (deadline >= 0) {
            if (left == 0) { rc = -ETIMEDOUT; break; }
            tv.tv_sec = left / 1000;
            tv.tv_usec = (left % 1000) * 1000;
        }
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, sa, sl) == 0 || errno == EISCONN) break;
        if (errno == EINTR) continue;              /* AF_UNIX starts again; TCP goes on */
        if (errno == EAGAIN && sa->sa_family == AF_UNIX) { rc = -ETIMEDOUT; break; }
        if (errno != EALREADY && errno != EINPROGRESS) { rc = mpq__err(); break; }
        rc = mpq__poll1(fd, POLLOUT, mpq__remaining_ms(deadline));
        if (rc == -EINTR) continue;
        if (rc == 0) { rc = -ETIMEDOUT; break; }
        if (rc < 0) break;
        rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ? mpq__err() : -err;
        break;
    }
    tv.tv_sec = tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);   /* sends wait as long as it takes */
    return rc;
}

/* Both halves of the handshake, in the order the side takes them. */
static int mpq__auth(mpq_conn *c, const void *key, size_t klen, int64_t deadline, int listener)
{
    int rc = listener ? mpq__auth_deliver(c, key, klen, deadline) : mpq__auth_answer(c, key, klen, deadline);
    if (rc == 0) rc = listener ? mpq__auth_answer(c, key, klen, deadline) : mpq__auth_deliver(c, key, klen, deadline);
    return rc;
}

MPQDEF int mpq_listener_open_with(mpq_listener **out, const char *address, const mpq_listener_config *cfg)
{
    mpq_listener_config def;
    struct addrinfo hints, *res = NULL, *ai;
    mpq__addr a;
    mpq_listener *l;
    int fd = -1, rc, one = 1;
    if (!out) return -EINVAL;
    if (!cfg) {
        memset(&def, 0, sizeof def);
        cfg = &def;
    }
    if ((rc = mpq__addr_parse(&a, address)) != 0) return rc;
    if ((cfg->authkey_len && !cfg->authkey) || cfg->authkey_len > (size_t)-1 / 2 || cfg->backlog < 0 ||
        cfg->handshake_ms < -1)
        return -EINVAL;
    if (!(l = (mpq_listener *)MPQ_MALLOC(sizeof *l + cfg->authkey_len))) return -ENOMEM;
    memset(l, 0, sizeof *l);
    l->fd = -1;
    l->keyed = cfg->authkey != NULL;
    l->keylen = l->keyed ? cfg->authkey_len : 0;
    if (l->keylen) memcpy(l + 1, cfg->authkey, l->keylen);
    l->handshake_ms = cfg->handshake_ms ? cfg->handshake_ms : MPQ_HANDSHAKE_DEFAULT_MS;
    /* Non-blocking: a client another acceptor took must not block us. */
    if (!a.tcp) {
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) rc = mpq__err();
        else if (bind(fd, (struct sockaddr *)&a.un, a.unlen) != 0) rc = mpq__err();
    } else {
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        if ((rc = getaddrinfo(a.host[0] ? a.host : NULL, a.port, &hints, &res)) != 0) {
            rc = mpq__gai_err(rc);
        } else {
            /* The first address that binds, IPv4 ones first: a name such
               as "localhost" then means what Python's Listener, which
               knows only IPv4, makes of it, whatever order the resolver
               likes. A port taken on one address is final: the next one
               would leave clients of the name going to the other program. */
            rc = -EADDRNOTAVAIL;
            for (ai = mpq__ai_next(res, NULL); ai; ai = mpq__ai_next(res, ai)) {
                if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
                    rc = mpq__err();
                    continue;
                }
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);   /* as Python's Listener */
                if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) { rc = 0; break; }
                rc = mpq__err();
                close(fd);
                fd = -1;
                if (rc == -EADDRINUSE) break;
            }
            freeaddrinfo(res);
        }
    }
    if (rc == 0 && listen(fd, cfg->backlog ? cfg->backlog : 64) != 0) {
        rc = mpq__err();
        if (!a.tcp && a.un.sun_path[0]) unlink(a.un.sun_path);   /* bound by us, then failed */
    }
    if (rc != 0) {
        if (fd >= 0) close(fd);
        mpq__wipe(l + 1, l->keylen);
        MPQ_FREE(l);
        return rc;
    }
    l->fd = fd;
    l->pid = getpid();
    if (!a.tcp && a.un.sun_path[0]) {   /* a path: remembered, to be removed at close */
        struct stat st;
        l->ino = stat(a.un.sun_path, &st) == 0 ? st.st_ino : 0;
        l->dev = l->ino ? st.st_dev : 0;
        memcpy(l->path, a.un.sun_path, sizeof l->path);
    }
    *out = l;
    return 0;
}

MPQDEF int mpq_listener_open(mpq_listener **l, const char *address)
{
    return mpq_listener_open_with(l, address, NULL);
}

MPQDEF int mpq_listener_address(const mpq_listener *l, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    struct sockaddr_un *un = (struct sockaddr_un *)(void *)&ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    int n;
    if (!l || (!buf && cap)) return -EINVAL;
    memset(&ss, 0, sizeof ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0) return mpq__err();
    if (ss.ss_family == AF_UNIX) {
        size_t len = sl > offsetof(struct sockaddr_un, sun_path) ? sl - offsetof(struct sockaddr_un, sun_path) : 0;
        const char *p = un->sun_path;
        if (len > 0 && p[0] == '\0')   /* abstract: "@" and the name's bytes */
            n = snprintf(buf, cap, "@%.*s", (int)(len - 1), p + 1);
        else   /* a path that would read as something else says it is one */
            n = snprintf(buf, cap, "%s%s",
                         strncmp(p, "unix:", 5) == 0 || strncmp(p, "tcp:", 4) == 0 ||
                                 (!strchr(p, '/') && (p[0] == '@' || strchr(p, ':')))
                             ? "unix:" : "",
                         p);
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(void *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        n = snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(void *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        n = snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        return -ENOTSUP;
    }
    return n < 0 ? -EINVAL : (size_t)n >= cap ? -ERANGE : n;
}

MPQDEF int mpq_listener_accept(mpq_listener *l, mpq_conn **c, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    int fd, rc;
    if (!l || !c) return -EINVAL;
    for (;;) {
        int r = mpq__poll1(l->fd, POLLIN, mpq__remaining_ms(deadline));
        if (r == -EINTR) continue;
        if (r < 0) return r;
        if (r == 0) return timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
#if defined(__USE_GNU) || !defined(__GLIBC__)
        fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);  /* blocking, unlike the listener */
#else
        if ((fd = accept(l->fd, NULL, NULL)) >= 0) {
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        }
#endif
        if (fd >= 0) break;
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) return mpq__err();
    }
    if ((rc = mpq__conn_new(c, fd, fd, 1)) != 0) {
        close(fd);
        return rc;
    }
    if (!(*c)->local) mpq__tcp_nodelay(fd);
    if (l->keyed) {
        rc = mpq__auth(*c, l + 1, l->keylen, mpq__deadline(l->handshake_ms), 1);
        if (rc == -ETIMEDOUT || rc == -ECONNRESET) rc = -ECONNABORTED;   /* the client's fault */
        if (rc != 0) {
            mpq_conn_close(*c);
            *c = NULL;
        }
    }
    return rc;
}

MPQDEF int mpq_listener_close(mpq_listener *l)
{
    struct stat st;
    if (!l) return -EINVAL;
    close(l->fd);
    /* Only the process that made the path removes it, and only while it
       is still this socket (a forked child must not unlink its parent's). */
    if (l->path[0] && l->pid == getpid() && stat(l->path, &st) == 0 && st.st_ino == l->ino &&
        st.st_dev == l->dev)
        unlink(l->path);
    mpq__wipe(l + 1, l->keylen);   /* the key leaves no copy behind */
    MPQ_FREE(l);
    return 0;
}

MPQDEF int mpq_client_with(mpq_conn **c, const char *address, const mpq_client_config *cfg)
{
    mpq_client_config def;
    struct addrinfo hints, *res = NULL, *ai;
    mpq__addr a;
    int64_t deadline;
    int fd = -1, rc;
    if (!c) return -EINVAL;
    if (!cfg) {
        memset(&def, 0, sizeof def);
        cfg = &def;
    }
    if ((rc = mpq__addr_parse(&a, address)) != 0) return rc;
    if ((cfg->authkey_len && !cfg->authkey) || cfg->timeout_ms < -1) return -EINVAL;
    deadline = mpq__deadline(cfg->timeout_ms ? cfg->timeout_ms : MPQ_CLIENT_DEFAULT_MS);
    if (!a.tcp) {
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) return mpq__err();
        rc = mpq__connect(fd, (struct sockaddr *)&a.un, a.unlen, deadline);
    } else {
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        if ((rc = getaddrinfo(a.host[0] ? a.host : NULL, a.port, &hints, &res)) != 0) return mpq__gai_err(rc);
        rc = -ECONNREFUSED;
        for (ai = mpq__ai_next(res, NULL); ai; ai = mpq__ai_next(res, ai)) {   /* IPv4 first, as the listener */
            if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
                rc = mpq__err();
                continue;
            }
            if ((rc = mpq__connect(fd, ai->ai_addr, ai->ai_addrlen, deadline)) == 0) break;
            close(fd);
            fd = -1;
            if (rc == -ETIMEDOUT) break;
        }
        freeaddrinfo(res);
        if (rc == 0) mpq__tcp_nodelay(fd);
    }
    if (rc == 0 && (rc = mpq__conn_new(c, fd, fd, 1)) == 0) {
        if (cfg->authkey && (rc = mpq__auth(*c, cfg->authkey, cfg->authkey_len, deadline, 0)) != 0) {
            mpq_conn_close(*c);
            *c = NULL;
        }
        return rc;
    }
    if (fd >= 0) close(fd);
    return rc;
}

MPQDEF int mpq_client(mpq_conn **c, const char *address)
{
    return mpq_client_with(c, address, NULL);
}

/* ========================================================================
   >>process  fork a function, join, kill; daemons, names, the children
              registry, cpu_count
   ======================================================================== */

#include <sys/prctl.h>

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

#if !defined(__GLIBC__) && !defined(__cplusplus)
/* POSIX, but hidden by strict-mode headers (musl) when stdio.h came first;
   the same prototypes again are harmless otherwise. */
int ftrylockfile(FILE *f);
void funlockfile(FILE *f);
#endif

/* Flushes f in a forked child unless its lock is stuck: a parent thread
   that held it at fork time does not exist here to release it (musl does
   not reset stdio locks in the child), and waiting would hang the child. */
static void mpq__child_flush(FILE *f)
{
    if (ftrylockfile(f) != 0) return;
    fflush(f);
    funlockfile(f);
}

/* The end of a forked child: flushes stdout and stderr, then _exit(code).
   SIGPIPE is blocked first: a stream that is a pipe nobody reads any more
   makes the flush fail (EPIPE), not kill the child, whose exit status
   would otherwise read -SIGPIPE instead of its function's return value;
   the signal left pending dies with the process. */
static void mpq__child_exit(int code)
{
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
    mpq__child_flush(stdout);
    mpq__child_flush(stderr);
    _exit(code);
}

/* --- the children registry ------------------------------------------------

   The list >>api-process describes: this process's children, started and
   not yet joined or destroyed. Every reap of a listed child (join,
   active_children) happens under its lock, so no reap frees a pid that
   another caller then waits for or signals. Its owner field says which
   process the list describes: a copy that fork() made is another
   process's, and the first call in the child empties it (the child
   branch of mpq_process_start does so at once). */

#define MPQ__CH_RUNNING 0  /* not reaped by mpq (it may have ended)      */
#define MPQ__CH_REAPED  1  /* reaped by active_children: status kept     */
#define MPQ__CH_GONE    2  /* reaped by someone else: the status is lost */

typedef struct mpq__child {
    uint64_t serial;     /* the handle's serial__                            */
    pid_t    pid;        /* 0 while its fork is under way                    */
    int      state;      /* MPQ__CH_*                                        */
    int      exitcode;   /* once MPQ__CH_REAPED                              */
    int      daemon;
    int      has_pidfd;  /* its handle's kill never needs the pid: reapable  */
    int      killfd;     /* a daemon's own pidfd, for the kill at exit; or -1 */
} mpq__child;

static struct {
    uint32_t    owner;     /* pid of the process it describes; ~pid while
                              that process empties a forked copy          */
    uint32_t    lock;      /* 0 free, 1 held, 2 held and slept on         */
    uint32_t    starts;    /* this process's starts: the N of Process-N   */
    uint32_t    exit_hook; /* the daemons' atexit handler is registered   */
    uint64_t    serial;    /* the last serial given; never reset, so a
                              handle inherited across fork matches none   */
    mpq__child *v;
    size_t      n, cap;
} mpq__reg;

/* This process, if mpq_process_start made it (pid == getpid()). A process
   forked any other way inherits its parent's copy: the pid tells. */
static struct {
    pid_t pid;
    pid_t parent;
    char  name[MPQ_PROCESS_NAME_MAX];
    char  ident[MPQ_PROCESS_NAME_MAX];  /* "2:1": Python's _identity */
} mpq__me;

static int mpq__me_valid(void) { return mpq__me.pid != 0 && mpq__me.pid == getpid(); }

/* Empties a registry that fork() copied: its children are the parent's,
   and a parent thread that held the lock then does not exist here. */
static void mpq__reg_forget(void)
{
    mpq__reg.n = 0;
    mpq__reg.starts = 0;
    mpq__store32(&mpq__reg.lock, 0, MPQ__RELAXED);
}

/* Takes the registry's lock, first emptying a copy another process's
   fork left (one thread of ours does; the others wait for it). May
   change errno. */
static void mpq__reg_lock(void)
{
    uint32_t me = (uint32_t)getpid(), o, c = 0;
    for (;;) {
        o = mpq__load32(&mpq__reg.owner, MPQ__ACQUIRE);
        if (o == me) break;
        if (o == ~me) {                /* another thread of ours empties it */
            sched_yield();
            continue;
        }
        if (mpq__cas32(&mpq__reg.owner, &o, ~me, MPQ__ACQUIRE)) {
            mpq__reg_forget();         /* descriptors left open: see mpq__reg_child */
            mpq__store32(&mpq__reg.owner, me, MPQ__RELEASE);
            break;
        }
    }
    if (mpq__cas32(&mpq__reg.lock, &c, 1, MPQ__ACQUIRE)) return;
    if (c != 2) c = mpq__xchg32(&mpq__reg.lock, 2, MPQ__ACQUIRE);
    while (c != 0) {
        mpq__futex_wait(&mpq__reg.lock, 2, -1);
        c = mpq__xchg32(&mpq__reg.lock, 2, MPQ__ACQUIRE);
    }
}

static void mpq__reg_unlock(void)
{
    if (mpq__xchg32(&mpq__reg.lock, 0, MPQ__RELEASE) == 2) mpq__futex_wake(&mpq__reg.lock, 1);
}

static int mpq__reg_resize(size_t cap)
{
    mpq__child *v = (mpq__child *)MPQ_MALLOC(cap * sizeof *v);
    if (!v) return -ENOMEM;
    if (mpq__reg.n) memcpy(v, mpq__reg.v, mpq__reg.n * sizeof *v);
    if (mpq__reg.v) MPQ_FREE(mpq__reg.v);
    mpq__reg.v = v;
    mpq__reg.cap = cap;
    return 0;
}

static mpq__child *mpq__reg_find(uint64_t serial)
{
    size_t i;
    for (i = 0; i < mpq__reg.n; i++)
        if (mpq__reg.v[i].serial == serial) return &mpq__reg.v[i];
    return NULL;
}

/* Removes e (lock held). The array shrinks as it empties, so a program
   that starts and joins children for ever keeps a few entries. */
static void mpq__reg_remove(mpq__child *e)
{
    if (e->killfd >= 0) close(e->killfd);
    *e = mpq__reg.v[--mpq__reg.n];
    if (mpq__reg.cap > 16 && mpq__reg.n < mpq__reg.cap / 4) mpq__reg_resize(mpq__reg.cap / 2);
}

/* Removes the entry of handle serial, if there is one. */
static void mpq__reg_drop(uint64_t serial)
{
    mpq__child *e;
    mpq__reg_lock();
    if ((e = mpq__reg_find(serial)) != NULL) mpq__reg_remove(e);
    mpq__reg_unlock();
}

/* Lists a child about to be forked (pid 0 until mpq__reg_started): gives
   its serial and its identity ("3", or "2:3" in a child that is
   Process-2). Returns 0 or -ENOMEM. */
static int mpq__reg_add(int daemon, uint64_t *serial, char *ident, size_t n)
{
    mpq__child *e;
    unsigned count;
    mpq__reg_lock();
    if (mpq__reg.n == mpq__reg.cap && mpq__reg_resize(mpq__reg.cap ? mpq__reg.cap * 2 : 16) != 0) {
        mpq__reg_unlock();
        return -ENOMEM;
    }
    e = &mpq__reg.v[mpq__reg.n++];
    memset(e, 0, sizeof *e);
    e->serial = *serial = ++mpq__reg.serial;
    e->daemon = daemon;
    e->killfd = -1;
    count = ++mpq__reg.starts;
    mpq__reg_unlock();
    if (mpq__me_valid() && mpq__me.ident[0]) {
        if (snprintf(ident, n, "%s:%u", mpq__me.ident, count) >= (int)n) ident[n - 1] = 0;
    } else {
        snprintf(ident, n, "%u", count);
    }
    return 0;
}

/* The fork of child serial has given it pid; pidfd is its handle's (or
   -1, with errno ESRCH if it was reaped already). A daemon's entry keeps
   a pidfd of its own for the kill at exit, which may come after the
   handle closed its. */
static void mpq__reg_started(uint64_t serial, pid_t pid, int pidfd, int reaped)
{
    mpq__child *e;
    mpq__reg_lock();
    if ((e = mpq__reg_find(serial)) != NULL) {
        e->pid = pid;
        e->has_pidfd = pidfd >= 0;
        if (reaped) e->state = MPQ__CH_GONE;
        if (e->daemon && pidfd >= 0) e->killfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
    }
    mpq__reg_unlock();
}

/* In the child mpq_process_start has just forked (one thread): an empty
   registry, and who it is. Its copies of the daemons' descriptors are
   closed when the parent's registry was consistent at fork time (lock
   free); a copy emptied later (mpq__reg_lock) leaves them, as the fds
   might have been closed and their numbers reused by then. */
static void mpq__reg_child(const mpq_process *p, pid_t parent, const char *ident)
{
    size_t i;
    pid_t me = getpid();
    if (mpq__load32(&mpq__reg.owner, MPQ__RELAXED) == (uint32_t)parent &&
        mpq__load32(&mpq__reg.lock, MPQ__RELAXED) == 0)
        for (i = 0; i < mpq__reg.n; i++)
            if (mpq__reg.v[i].killfd >= 0) close(mpq__reg.v[i].killfd);
    mpq__reg_forget();
    mpq__store32(&mpq__reg.owner, (uint32_t)me, MPQ__RELEASE);
    mpq__me.pid = me;
    mpq__me.parent = parent;
    memcpy(mpq__me.name, p->name, sizeof mpq__me.name);
    memcpy(mpq__me.ident, ident, sizeof mpq__me.ident);
}

/* Sends SIGKILL to a daemon that still runs (lock held): through its own
   pidfd, or, with none, by pid once waitid says it is still our child and
   not reaped (no mpq reap can come meanwhile: they take the lock). */
static void mpq__daemon_kill(const mpq__child *e)
{
    siginfo_t si;
#if defined(SYS_pidfd_send_signal)
    if (e->killfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, e->killfd, SIGKILL, NULL, 0) == 0 || errno != ENOSYS) return;
    }
#endif
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)e->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0)
        kill(e->pid, SIGKILL);
}

/* Kills this process's running daemons and waits, at most a second, for
   them to end: the atexit handler, and the end of a child's fn. Acts only
   in the process that started them: in a forked copy (a child calling
   exit(), say) the owner differs and nothing happens. */
static void mpq__daemons_end(void)
{
    int64_t deadline;
    size_t i;
    if (mpq__load32(&mpq__reg.owner, MPQ__ACQUIRE) != (uint32_t)getpid()) return;
    mpq__reg_lock();
    for (i = 0; i < mpq__reg.n; i++) {
        const mpq__child *e = &mpq__reg.v[i];
        if (e->daemon && e->pid > 0 && e->state == MPQ__CH_RUNNING) mpq__daemon_kill(e);
    }
    deadline = mpq__deadline(1000);
    for (i = 0; i < mpq__reg.n; i++) {
        const mpq__child *e = &mpq__reg.v[i];
        if (!e->daemon || e->pid <= 0 || e->state != MPQ__CH_RUNNING || e->killfd < 0) continue;
        while (!mpq__readable(e->killfd, mpq__remaining_ms(deadline)) && mpq__remaining_ms(deadline) > 0) {}
    }
    mpq__reg_unlock();
}

/* Looks at a listed child that was running (lock held): reaps it if it
   has ended (status kept for its join), or marks it gone if someone else
   reaped it. Returns 1 if it still runs. A child whose handle has no
   pidfd is looked at without reaping (see mpq_active_children). */
static int mpq__reg_poll(mpq__child *e)
{
    int st = 0;
    pid_t r;
    if (!e->has_pidfd) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)e->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) return si.si_pid == 0;
        if (errno == ECHILD) e->state = MPQ__CH_GONE;
        return 0;
    }
    do r = waitpid(e->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) return 1;
    if (r > 0) {
        e->state = MPQ__CH_REAPED;
        e->exitcode = mpq__decode_status(st);
    } else if (errno == ECHILD) {
        e->state = MPQ__CH_GONE;
    } else {
        return 1;   /* cannot tell: listed, as it was */
    }
    if (e->killfd >= 0) close(e->killfd);
    e->killfd = -1;
    return 0;
}

/* --- start, join, kill ------------------------------------------------------ */

static void mpq__process_clear(mpq_process *p)
{
    memset(p, 0, sizeof *p);
    p->exitcode = MPQ_PROCESS_RUNNING;
    p->pidfd__ = -1;
}

MPQDEF int mpq_process_start_with(mpq_process *p, int (*fn)(void *arg), void *arg,
                                  const mpq_process_config *cfg)
{
    char ident[MPQ_PROCESS_NAME_MAX];
    uint64_t serial;
    pid_t pid, parent;
    int pidfd, rc;

    if (!p || !fn) return -EINVAL;
    mpq__process_clear(p);
    p->daemon = cfg && cfg->daemon ? 1 : 0;
    if ((rc = mpq__reg_add(p->daemon, &serial, ident, sizeof ident)) != 0) return rc;
    if (cfg && cfg->name && cfg->name[0]) {
        size_t len = strlen(cfg->name);
        if (len >= sizeof p->name) len = sizeof p->name - 1;
        memcpy(p->name, cfg->name, len);
        p->name[len] = 0;
    } else if (snprintf(p->name, sizeof p->name, "Process-%s", ident) >= (int)sizeof p->name) {
        p->name[sizeof p->name - 1] = 0;
    }
    if (p->daemon) {
        uint32_t no = 0;
        if (mpq__cas32(&mpq__reg.exit_hook, &no, 1, MPQ__RELAXED)) atexit(mpq__daemons_end);
    }
    parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        rc = mpq__err();
        mpq__reg_drop(serial);
        mpq__process_clear(p);
        return rc;
    }
    if (pid == 0) {
        int code;
        if (p->daemon) {
            /* Die with the parent; if it is gone already, do not start. */
            prctl(PR_SET_PDEATHSIG, (unsigned long)SIGKILL, 0UL, 0UL, 0UL);
            if (getppid() != parent) _exit(1);
        }
        mpq__reg_child(p, parent, ident);
        prctl(PR_SET_NAME, (unsigned long)p->name, 0UL, 0UL, 0UL);  /* cut to 15 bytes */
        code = fn(arg);
        mpq__daemons_end();
        /* stdout and stderr only (as Python does): other streams may hold
           the parent's unflushed output, which would be written twice. */
        mpq__child_exit(code & 0xff);
    }
    pidfd = mpq__pidfd_open(pid);
    p->pid = pid;
    /* ESRCH: reaped already (SIGCHLD ignored, or a handler reaped it), so
       the pid is not ours any more: never signal it. */
    p->pidfd__ = pidfd >= 0 ? pidfd : errno > 0 ? -errno : -ENOSYS;
    p->serial__ = serial;
    mpq__reg_started(serial, pid, pidfd, p->pidfd__ == -ESRCH);
    return 0;
}

MPQDEF int mpq_process_start(mpq_process *p, int (*fn)(void *arg), void *arg)
{
    return mpq_process_start_with(p, fn, arg, NULL);
}

/* Reaps the child if it has ended: 1 reaped, 0 still running, <0 error.
   Under the registry's lock, so that a reap by active_children and this
   one never race for the pid; the status active_children kept is taken
   over. */
static int mpq__process_reap(mpq_process *p)
{
    int st = 0, err = 0;
    mpq__child *e;
    pid_t r;
    mpq__reg_lock();
    do r = waitpid(p->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r < 0) err = errno;
    if (r == 0) {
        mpq__reg_unlock();
        return 0;
    }
    e = mpq__reg_find(p->serial__);
    if (r > 0) {
        p->exitcode = mpq__decode_status(st);
    } else if (err == ECHILD && e && e->state == MPQ__CH_REAPED) {
        p->exitcode = e->exitcode;
    } else {
        if (err == ECHILD && e) mpq__reg_remove(e);  /* gone for good */
        mpq__reg_unlock();
        return err > 0 ? -err : -EIO;
    }
    if (e) mpq__reg_remove(e);
    mpq__reg_unlock();
    p->joined__ = 1;
    if (p->pidfd__ >= 0) close(p->pidfd__);
    p->pidfd__ = -1;
    return 1;
}

MPQDEF int mpq_process_join(mpq_process *p, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    int rc, backoff_us = 200;

    if (!p || !p->serial__) return -EINVAL;
    if (p->joined__) return 0;
    for (;;) {
        rc = mpq__process_reap(p);
        if (rc != 0) return rc < 0 ? rc : 0;
        if (timeout_ms == 0) return -EAGAIN;
        if (deadline >= 0 && mpq__now_ns() >= deadline) return -ETIMEDOUT;
        if (p->pidfd__ >= 0) {
            mpq__readable(p->pidfd__, mpq__remaining_ms(deadline));  /* readable once it exits */
        } else {
            /* No pidfd (Linux < 5.3): poll with a growing pause. */
            struct timespec ts;
            int left = mpq__remaining_ms(deadline);
            int us = (left >= 0 && (int64_t)left * 1000 < backoff_us) ? left * 1000 : backoff_us;
            ts.tv_sec = 0;
            ts.tv_nsec = (long)us * 1000;
            nanosleep(&ts, NULL);
            if (backoff_us < 20000) backoff_us *= 2;
        }
    }
}

MPQDEF int mpq_process_kill(mpq_process *p, int sig)
{
    if (!p || !p->serial__ || sig < 0 || sig > SIGRTMAX) return -EINVAL;
    if (p->joined__ || p->pidfd__ == -ESRCH) return -ESRCH;
#if defined(SYS_pidfd_send_signal)
    if (p->pidfd__ >= 0) {
        if (syscall(SYS_pidfd_send_signal, p->pidfd__, sig, NULL, 0) == 0) return 0;
        if (errno != ENOSYS) return mpq__err();
    }
#endif
    /* Not yet reaped by us - join has not, and active_children leaves a
       child without a pidfd to its join - so the pid is still ours (a
       zombie at worst). */
    return kill(p->pid, sig) == 0 ? 0 : mpq__err();
}

MPQDEF int mpq_process_alive(mpq_process *p)
{
    siginfo_t si;
    mpq__child *e;
    int rc;
    if (!p || !p->serial__) return -EINVAL;
    if (p->joined__) return 0;
    memset(&si, 0, sizeof si);
    mpq__reg_lock();
    e = mpq__reg_find(p->serial__);
    if (e && e->state != MPQ__CH_RUNNING)
        rc = 0;    /* reaped by active_children: its pid may be another's now */
    /* WNOWAIT: look without reaping, so join still gets the status. */
    else if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        rc = errno == ECHILD ? 0 : mpq__err();
    else
        rc = si.si_pid == 0;
    mpq__reg_unlock();
    return rc;
}

MPQDEF int mpq_process_exitcode(const mpq_process *p)
{
    return p && p->serial__ && p->joined__ ? p->exitcode : MPQ_PROCESS_RUNNING;
}

MPQDEF int mpq_process_sentinel(const mpq_process *p)
{
    if (!p || !p->serial__) return -EINVAL;
    if (p->joined__) return -ESRCH;
    return p->pidfd__;   /* the pidfd, or -errno of its opening */
}

MPQDEF int mpq_process_destroy(mpq_process *p)
{
    if (!p || !p->serial__) return -EINVAL;
    mpq__reg_drop(p->serial__);
    if (p->pidfd__ >= 0) close(p->pidfd__);
    mpq__process_clear(p);  /* no later kill can reach a pid the system may reuse */
    return 0;
}

/* --- active_children, current_process, parent_process --------------------- */

MPQDEF int mpq_active_children(pid_t *pids, int cap)
{
    size_t i;
    int n = 0;
    if (cap < 0 || (cap > 0 && !pids)) return -EINVAL;
    mpq__reg_lock();
    for (i = 0; i < mpq__reg.n; i++) {
        mpq__child *e = &mpq__reg.v[i];
        if (e->pid <= 0 || e->state != MPQ__CH_RUNNING || !mpq__reg_poll(e)) continue;
        if (n < cap) pids[n] = e->pid;
        if (n < INT_MAX) n++;
    }
    mpq__reg_unlock();
    return n;
}

MPQDEF const char *mpq_current_process_name(void)
{
    return mpq__me_valid() ? mpq__me.name : "MainProcess";
}

MPQDEF int mpq_parent_process(pid_t *pid)
{
    if (!mpq__me_valid()) return -ESRCH;
    if (pid) *pid = mpq__me.parent;
    /* An orphan is handed to a reaper (init, a subreaper): getppid()
       changes once the parent has ended, and never back. */
    return getppid() == mpq__me.parent;
}

/* --- cpu_count ------------------------------------------------------------ */

#define MPQ__CG_PATH 512   /* longer cgroup paths and mount points are skipped */

/* The CPUs in the calling thread's affinity mask, with a mask as large as
   the kernel's CPU count needs; 0 if it cannot be read. The system call
   itself (it says how many bytes it filled): sched_getaffinity() and the
   CPU_* macros need _GNU_SOURCE, which a user's file may lack. */
static long mpq__affinity_cpus(void)
{
    unsigned long one[16], *mask = one;        /* 1024 CPUs, as cpu_set_t */
    size_t words = sizeof one / sizeof one[0], i;
    long r, n = 0;
    for (;;) {
        r = syscall(SYS_sched_getaffinity, 0, words * sizeof *mask, mask);
        if (r > 0 || errno != EINVAL || words >= ((size_t)1 << 16)) break;
        if (mask != one) MPQ_FREE(mask);         /* more CPUs than the mask holds */
        words *= 2;
        if (!(mask = (unsigned long *)MPQ_MALLOC(words * sizeof *mask))) return 0;
    }
    for (i = 0; r > 0 && i < (size_t)r / sizeof *mask; i++) n += __builtin_popcountl(mask[i]);
    if (mask != one) MPQ_FREE(mask);
    return n;
}

/* The CPUs that cgroup directory dir's quota allows, rounded up; 0 for
   none. v2: cpu.max holds "max 100000" or "150000 100000" (quota and
   period, in microseconds); v1: cpu.cfs_quota_us (-1: none) and
   cpu.cfs_period_us. */
static long mpq__cg_quota(const char *dir, int v2)
{
    char path[2 * MPQ__CG_PATH + 32], buf[64];
    int64_t quota, period;
    char *end;
    if (snprintf(path, sizeof path, v2 ? "%s/cpu.max" : "%s/cpu.cfs_quota_us", dir) >= (int)sizeof path ||
        mpq__read_text(path, buf, sizeof buf) <= 0 || strncmp(buf, "max", 3) == 0)
        return 0;
    quota = (int64_t)strtoll(buf, &end, 10);
    if (v2) {
        period = (int64_t)strtoll(end, NULL, 10);
    } else {
        if (snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir) >= (int)sizeof path ||
            mpq__read_text(path, buf, sizeof buf) <= 0)
            return 0;
        period = (int64_t)strtoll(buf, NULL, 10);
    }
    if (quota <= 0 || period <= 0) return 0;
    return (long)((quota + period - 1) / period);
}

/* The tightest quota on cgroup cg (its path in the hierarchy) and on each
   of its ancestors, whose limits apply to it too, up to the root of the
   hierarchy's mount at mnt (`root`: the directory of the hierarchy that
   is mounted there); 0 for none. */
static long mpq__cg_walk(const char *mnt, const char *root, const char *cg, int v2)
{
    char dir[2 * MPQ__CG_PATH];
    size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root), base = strlen(mnt), len;
    long best = 0, q;
    if (strncmp(cg, root, rl) != 0 || (cg[rl] != '/' && cg[rl] != 0)) return 0;  /* not under the mount */
    if (snprintf(dir, sizeof dir, "%s%s", mnt, cg + rl) >= (int)sizeof dir) return 0;
    for (;;) {
        len = strlen(dir);
        while (len > base && dir[len - 1] == '/') dir[--len] = 0;
        q = mpq__cg_quota(dir, v2);
        if (q > 0 && (best == 0 || q < best)) best = q;
        if (len <= base) return best;
        while (len > base && dir[len - 1] != '/') len--;   /* up to the parent */
        dir[len] = 0;
    }
}

/* Whether the comma-separated list s (up to a space, newline or NUL)
   holds word w. */
static int mpq__has_word(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (;;) {
        size_t k = strcspn(s, ", \n");
        if (k == n && strncmp(s, w, n) == 0) return 1;
        if (s[k] != ',') return 0;
        s += k + 1;
    }
}

/* Copies src into dst[MPQ__CG_PATH]: 1, or 0 if it does not fit. */
static int mpq__cg_copy(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= MPQ__CG_PATH) return 0;
    memcpy(dst, src, n + 1);
    return 1;
}

/* The CPU limit of this process's cgroups, rounded up; 0 for none. Its
   cgroups come from cgroup_file (/proc/self/cgroup: "0::/path" for v2,
   "N:cpu,cpuacct:/path" for v1's cpu controller), where each hierarchy is
   mounted from mountinfo_file (/proc/self/mountinfo: cgroup2, or cgroup
   with the cpu option): a container sees its own cgroup at its mount's
   root. Both file names are parameters for the tests. */
static long mpq__cgroup_cpus(const char *cgroup_file, const char *mountinfo_file)
{
    char text[4096], line[1024];
    char cg[2][MPQ__CG_PATH], mnt[2][MPQ__CG_PATH], root[2][MPQ__CG_PATH];
    char *s, *save = NULL;
    long best = 0, q;
    int v, skip = 0;
    FILE *f;

    cg[0][0] = cg[1][0] = mnt[0][0] = mnt[1][0] = 0;    /* [0]: v1, [1]: v2 */
    if (mpq__read_text(cgroup_file, text, sizeof text) <= 0) return 0;
    if ((s = strrchr(text, '\n')) != NULL) s[1] = 0;     /* whole lines only */
    for (s = strtok_r(text, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
        char *ctl = strchr(s, ':'), *path = ctl ? strchr(ctl + 1, ':') : NULL;
        if (!path) continue;
        *path++ = 0;
        if (strncmp(s, "0:", 2) == 0 && ctl[1] == 0) mpq__cg_copy(cg[1], path);
        else if (mpq__has_word(ctl + 1, "cpu")) mpq__cg_copy(cg[0], path);
    }
    if (!cg[0][0] && !cg[1][0]) return 0;
    if (!(f = fopen(mountinfo_file, "re"))) return 0;
    /* "36 25 0:31 /root /mount/point rw,... [optional fields] - cgroup2 cgroup2 rw,..." */
    while (fgets(line, sizeof line, f)) {
        char *tok[5], *sep, *fstype, *opts;
        int i, whole = strchr(line, '\n') != NULL;
        if (skip || !whole) {              /* a line too long for us, and its rest */
            skip = !whole;
            continue;
        }
        if (!(sep = strstr(line, " - "))) continue;
        *sep = 0;
        for (i = 0, s = line; i < 5 && (tok[i] = strtok_r(s, " ", &save)) != NULL; i++) s = NULL;
        fstype = strtok_r(sep + 3, " ", &save);
        opts = fstype && strtok_r(NULL, " ", &save) ? strtok_r(NULL, " \n", &save) : NULL;
        if (i < 5 || !opts) continue;
        if (strcmp(fstype, "cgroup2") == 0) v = 1;
        else if (strcmp(fstype, "cgroup") == 0 && mpq__has_word(opts, "cpu")) v = 0;
        else continue;
        if (cg[v][0] && !mnt[v][0] && mpq__cg_copy(root[v], tok[3])) mpq__cg_copy(mnt[v], tok[4]);
    }
    fclose(f);
    for (v = 0; v < 2; v++) {
        if (!cg[v][0] || !mnt[v][0]) continue;
        q = mpq__cg_walk(mnt[v], root[v], cg[v], v);
        if (q > 0 && (best == 0 || q < best)) best = q;
    }
    return best;
}

MPQDEF int mpq_cpu_count(void)
{
    long n = mpq__affinity_cpus(), q;
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    q = mpq__cgroup_cpus("/proc/self/cgroup", "/proc/self/mountinfo");
    if (q > 0 && q < n) n = q;
    return n < 1 ? 1 : n > INT_MAX ? INT_MAX : (int)n;
}

/* ========================================================================
   >>pool  worker processes behind two queues, with a fork server
   ========================================================================

   Three kinds of process. The parent (the pool's creator) puts tasks on
   the task queue, and its result thread takes results off the result
   queue, resolves each to its pending entry and runs its callback or
   completes its future. The fork server, forked at creation before the
   result thread exists, forks every worker and stays their parent: it
   reaps them, reports the task a dead one held, and forks its replacement.
   Workers take tasks, run them and put results.

   No task is lost to a death. A worker takes a task with peek, whose CAS
   writes the worker's pid into the slot's state as it claims it; then it
   copies the task, records it in its shared worker record, releases the
   slot, runs the task, puts the result and clears the record. At whatever
   instant it dies, the server - the first to know, and looking with
   WNOWAIT so the pid cannot be reused meanwhile - finds the task in a
   READING slot that holds that pid, or in the record, or both, and
   reports it failed. The task queue is `supervised`: nobody else moves a
   dead reader's slot, so it is still there to be found. A result that got
   out before the death makes that report a duplicate, which the parent
   drops: a pending entry (index + generation) is resolved only once.

   The parent's side - pending entries, map states, futures - is process-
   local and guarded by `lock`. Callbacks run on the result thread only,
   cancellations and a broken pool's failures included, so a program's
   callbacks never run concurrently (one rare exception: a map whose
   submission fails half-way and has nothing left in flight reports its
   failure on the submitting thread). */

#include <sys/prctl.h>
#include <sys/signalfd.h>

#define MPQ__POOL_MAX_WORKERS 1024
#define MPQ__POOL_MAX_SIZE (1u << 24)
#define MPQ__POOL_SLICE_MS 100       /* the result thread and server look around this often */
#define MPQ__POOL_BATCH 64           /* results taken per call */
#define MPQ__POOL_WAKE 0xffffffffu   /* entry of a message that only wakes the result thread */
#define MPQ__POOL_DONE 0x5a          /* exit status of a worker that found no more tasks */
#define MPQ__POOL_FORK_MS 1000       /* forks failing this long make the server give up */
#define MPQ__NO_PEEK (~(uint64_t)0)
#define MPQ__ALIGN8(n) (((n) + 7) & ~(size_t)7)

enum { MPQ__W_INIT = 1, MPQ__W_RUN, MPQ__W_DONE, MPQ__W_RETIRED, MPQ__W_INITFAIL };

typedef struct mpq__pworker {  /* shared, one cache line per worker */
    uint64_t task;             /* entry << 32 | gen of the task it holds, 0: none */
    uint64_t from;             /* the task queue's tail before its peek, or
                                  MPQ__NO_PEEK: where a slot it holds can be */
    uint32_t pid;              /* written by the server (and the worker); 0: none */
    uint32_t state;            /* MPQ__W_*, written by the worker */
    int32_t  init_error;       /* its initializer's nonzero return */
    uint32_t init_deaths;      /* the server's: deaths in a row before RUN */
    uint32_t pad[8];
} mpq__pworker;

typedef struct mpq__pshared {  /* shared between parent, server and workers */
    uint32_t ready;            /* rung by each worker that reaches RUN (a futex) */
    int32_t  error;            /* why the server gave up; 0 while it runs */
    uint32_t started;          /* create has returned: a failed fork is retried */
    uint32_t pad[13];
    mpq__pworker w[1];         /* `workers` of them */
} mpq__pshared;

typedef struct mpq__ptask {    /* a task message, then its argument bytes */
    uint32_t entry, gen;
    uint32_t count;            /* 0: one apply; n: a map chunk of n items */
    uint32_t item_size, result_size;
    uint32_t len;              /* argument bytes */
    unsigned char fn[8];       /* the function pointer's bytes */
} mpq__ptask;

typedef struct mpq__presult {  /* a result message, then its payload */
    uint32_t entry, gen;
    int32_t  error;            /* apply, map: the task's; imap: 0 (each item
                                  has its own), unless the server reports a
                                  dead worker's task                        */
    uint32_t len;              /* payload bytes: the result, an error's
                                  message, or an imap chunk's records       */
    uint32_t item;             /* map: the item of the chunk that failed;
                                  imap: the chunk's first item in this message */
    uint32_t more;             /* imap: more messages of this chunk follow   */
} mpq__presult;

/* An imap item travels as a record: this header, then len bytes padded to
   8. Results come back the same way, error set for a failed item (its
   bytes are then the message). */
typedef struct mpq__prec_hdr {
    int32_t  error;
    uint32_t len;
} mpq__prec_hdr;

#define MPQ__POOL_VAR 0xffffffffu    /* ptask.item_size of an imap chunk */
#define MPQ__POOL_MSG 256            /* message room at least, NUL included */
/* A payload of len bytes travels padded to 8, with at least one zero
   after it: the result thread's batch keeps every header aligned, and a
   message in place ends with a NUL. */
#define MPQ__POOL_PAD(len) MPQ__ALIGN8((size_t)(len) + 1)

typedef char mpq__assert_ptask[sizeof(mpq__ptask) == 32 && sizeof(mpq_pool_fn) <= 8 ? 1 : -1];
typedef char mpq__assert_pworker[sizeof(mpq__pworker) == 64 ? 1 : -1];
typedef char mpq__assert_presult[sizeof(mpq__presult) == 24 ? 1 : -1];

struct mpq_future {
    uint32_t state;            /* 0 pending, 2 pending with sleepers, 1 done (a futex) */
    uint32_t refs;             /* the caller's and the pool's */
    int      error;
    size_t   len;
    void    *data;             /* result or message, NUL after it */
    uint64_t id;
    uint64_t done, total;      /* progress (atomics) */
};

typedef struct mpq__pmap {     /* one map_async */
    char             *results;
    size_t            result_size, total, n;
    size_t            left;      /* chunks not yet resolved, sent or not */
    int               error;     /* the first failure, its item and message */
    size_t            err_index;
    char             *err_msg;
    size_t            err_len;
    uint64_t          id;
    size_t            done;      /* items finished */
    mpq_pool_callback cb, ecb;
    void             *user;
    mpq_future       *fut;
} mpq__pmap;

/* One outcome of an imap, waiting to be handed back; its bytes follow. */
typedef struct mpq__pout {
    int    error;
    size_t index, len;
} mpq__pout;

struct mpq_imap {              /* everything under the pool's lock */
    mpq_pool       *pool;      /* NULL once the pool is destroyed */
    mpq_pool_fn     fn;
    mpq_pool_source source;
    void           *source_user;
    const char     *items;
    size_t          n, item_size, chunksize, window;
    int             unordered;
    uint64_t        id;
    uint64_t        pulled;    /* items read from the input (an atomic, for progress) */
    uint64_t        sent;      /* of them, items sent in chunks (the rest: `pend`) */
    uint64_t        read;      /* outcomes handed back */
    uint64_t        done;      /* outcomes arrived (an atomic, for progress) */
    uint32_t        ended;     /* the input has ended (an atomic, for progress) */
    int             src_error; /* the input's own error, reported as item `pulled` */
    int             src_told;
    uint32_t        freed;     /* the caller let go (an atomic: the feeder looks between items) */
    int             refs;      /* the caller, the feeder's job, each chunk out */
    char           *pend;      /* an item read that did not fit its chunk */
    size_t          pend_len;
    int             has_pend;
    mpq__pout     **ring;      /* `window` places: by index % window, or a FIFO */
    size_t          rhead, rcount;
    mpq__pout      *last;      /* handed back by the last next */
    pthread_cond_t  cond;      /* an outcome arrived, or the end */
    mpq_imap       *prev, *next_it;   /* the pool's list of imaps */
};

typedef struct mpq__pentry {   /* one task out: an apply, a map chunk, an imap chunk */
    uint32_t          gen;       /* never 0 */
    uint32_t          next;      /* free list */
    int               used;
    mpq_pool_callback cb, ecb;
    void             *user;
    mpq_future       *fut;
    uint64_t          id;
    mpq__pmap        *map;       /* a map chunk: items start..start+count */
    mpq_imap         *it;        /* an imap chunk: items start..start+count */
    uint64_t          start;
    uint32_t          count;
    uint32_t          arrived;   /* imap: outcomes of the chunk delivered */
} mpq__pentry;

enum { MPQ__JOB_APPLY = 1, MPQ__JOB_MAP, MPQ__JOB_IMAP };

typedef struct mpq__pjob {     /* a submission waiting in this process for the feeder */
    struct mpq__pjob *next;
    int               kind;
    mpq_pool_fn       fn;
    mpq__pentry       t;         /* apply: callbacks, future, id; map: t.map; imap: t.it */
    size_t            len;       /* apply: argument bytes, after this struct */
    const char       *items;     /* map: the items left (start at `at`) */
    char             *copy;      /* ... in this copy, freed with the job */
    size_t            first;     /* map: the item at `items` */
    size_t            n, item_size, result_size, per, at;
    int               error;     /* in failq: why it fails (0: an empty map ends) */
} mpq__pjob;

struct mpq_pool {
    mpq_queue      *tasks, *results;
    mpq__pshared   *sh;
    size_t          sh_len;
    mpq_process     server;
    int             cmd[2];            /* the server's command pipe */
    int             server_fd;         /* the result thread's own pidfd of the server, or -1 */
    pid_t           parent;            /* the program's pid, taken before forking the server */
    int             workers;
    unsigned        max_tasks;
    uint32_t        max_arg, max_result;
    uint32_t        rpay;              /* result payload room: results, messages, records */
    uint32_t        tpay;              /* task payload room: max_arg, or imap records */
    int           (*init)(void *);
    void           *initarg;
    pthread_t       thread, feeder;
    int             thread_up, feeder_up;
    char           *rbuf;              /* the result thread's batch buffer */
    size_t          rcap;
    char           *fbuf;              /* the feeder's imap chunk and item buffers */
    char           *fitem;
    pthread_mutex_t lock;              /* everything below */
    pthread_cond_t  cond;              /* pending == 0, cancel done, feeder idle */
    pthread_cond_t  fcond;             /* work for the feeder */
    pthread_mutex_t ctl;               /* close, join, terminate, destroy */
    mpq__pentry    *e;
    uint32_t        ecap, free_head, gen;
    size_t          pending;           /* outcomes not yet reported (a map, an imap input: one) */
    uint64_t        seq;               /* submissions accepted */
    mpq__pjob      *jobs, *jobs_tail;  /* waiting for the feeder, in order */
    mpq__pjob      *failq;             /* for the result thread to fail */
    mpq_imap       *imaps;             /* live imaps, for destroy */
    int             senders;           /* threads putting tasks right now */
    int             fbusy;             /* the feeder works on a job, outside the list */
    int             fwait;             /* the feeder sleeps on fcond */
    int             fstop;
    uint32_t        halted;            /* terminate or a dead server: nothing more is sent
                                          (an atomic: the feeder looks between items) */
    int             fpipe;             /* the feeder met the task queue closed: halt comes */
    mpq_imap       *fcur;              /* the imap whose input the feeder is reading */
    int             halt_error;        /* what waiting jobs then fail with */
    int             tasks_closed;
    int             closed, terminated, broken;
    uint32_t        cancel, stop;      /* requests to the result thread (atomics) */
    uint32_t        joined;            /* the server is reaped, or being reaped (atomic) */
};

/* A task's message, in a worker (mpq_pool_fail). */
static char  *mpq__task_msg;
static size_t mpq__task_msg_cap, mpq__task_msg_len;

/* --- futures --------------------------------------------------------------- */

static mpq_future *mpq__future_new(void)
{
    mpq_future *f = (mpq_future *)MPQ_MALLOC(sizeof *f);
    if (f) {
        memset(f, 0, sizeof *f);
        f->refs = 2;
    }
    return f;
}

static void mpq__future_unref(mpq_future *f)
{
    if (mpq__add32(&f->refs, (uint32_t)-1, MPQ__ACQ_REL) != 1) return;
    if (f->data) MPQ_FREE(f->data);
    MPQ_FREE(f);
}

/* Completes f with (error, bytes): a result, or an error's message. The
   copy ends with a NUL, for messages printed with %s. */
static void mpq__future_done(mpq_future *f, int error, const void *data, size_t len)
{
    f->len = 0;
    if ((f->data = MPQ_MALLOC(len + 1)) != NULL) {
        if (len) memcpy(f->data, data, len);
        ((char *)f->data)[len] = 0;
        f->len = len;
    } else if (!error) {
        error = -ENOMEM;
    }
    f->error = error;
    mpq__store64(&f->done, mpq__load64(&f->total, MPQ__RELAXED), MPQ__RELAXED);
    if (mpq__xchg32(&f->state, 1, MPQ__ACQ_REL) == 2) mpq__futex_wake(&f->state, INT_MAX);
    mpq__future_unref(f);
}

MPQDEF int mpq_future_wait(mpq_future *f, int timeout_ms)
{
    int64_t deadline;
    int i;
    if (!f) return -EINVAL;
    for (i = 0; i < 2000; i++) {   /* most results come within microseconds */
        if (mpq__load32(&f->state, MPQ__ACQUIRE) == 1) return 0;
        if (timeout_ms == 0) return -EAGAIN;
        mpq__cpu_relax();
    }
    deadline = mpq__deadline(timeout_ms);
    for (;;) {
        uint32_t s = mpq__load32(&f->state, MPQ__ACQUIRE);
        if (s == 1) return 0;
        if (s == 0 && !mpq__cas32(&f->state, &s, 2, MPQ__ACQUIRE)) continue;
        if (mpq__futex_wait(&f->state, 2, deadline) == -ETIMEDOUT &&
            mpq__load32(&f->state, MPQ__ACQUIRE) != 1)
            return -ETIMEDOUT;
    }
}

MPQDEF int mpq_future_ready(const mpq_future *f)
{
    return f && mpq__load32(&f->state, MPQ__ACQUIRE) == 1;
}

MPQDEF int mpq_future_successful(const mpq_future *f)
{
    if (!f) return -EINVAL;
    if (!mpq_future_ready(f)) return -EAGAIN;
    return f->error == 0;
}

MPQDEF int mpq_future_get(mpq_future *f, void *buf, size_t cap, size_t *len, int timeout_ms)
{
    int rc;
    if (!f || (!buf && cap)) return -EINVAL;
    if ((rc = mpq_future_wait(f, timeout_ms)) != 0) return rc;
    if (len) *len = f->len;
    if (f->error) {   /* the message, cut to fit, NUL-terminated */
        if (cap) {
            size_t k = f->len < cap - 1 ? f->len : cap - 1;
            if (k) memcpy(buf, f->data, k);
            ((char *)buf)[k] = 0;
        }
        return f->error;
    }
    if (f->len > cap) return -EMSGSIZE;
    if (f->len && buf) memcpy(buf, f->data, f->len);
    return 0;
}

MPQDEF uint64_t mpq_future_id(const mpq_future *f)
{
    return f ? f->id : 0;
}

MPQDEF int mpq_future_progress(const mpq_future *f, size_t *done, size_t *total)
{
    int ended;
    if (!f) return -EINVAL;
    ended = mpq_future_ready(f);   /* first: once ended, done is total */
    if (done) *done = (size_t)mpq__load64(&f->done, MPQ__RELAXED);
    if (total) *total = (size_t)mpq__load64(&f->total, MPQ__RELAXED);
    return ended;
}

MPQDEF int mpq_pool_fail(int error, const char *fmt, ...)
{
    if (mpq__task_msg && fmt) {
        va_list ap;
        int k;
        va_start(ap, fmt);
        k = vsnprintf(mpq__task_msg, mpq__task_msg_cap, fmt, ap);
        va_end(ap);
        mpq__task_msg_len = k < 0 ? 0 : (size_t)k < mpq__task_msg_cap ? (size_t)k : mpq__task_msg_cap - 1;
    }
    return error;
}

MPQDEF int mpq_future_free(mpq_future *f)
{
    if (!f) return -EINVAL;
    mpq__future_unref(f);
    return 0;
}

/* --- the fork server and the workers ---------------------------------------- */

static int mpq__pool_death(const siginfo_t *si)
{
    return si->si_code == CLD_EXITED ? MPQ_POOL_EXITED(si->si_status) : MPQ_POOL_KILLED(si->si_status);
}

/* Puts a result message: r and its payload, padded to 8 bytes so the
   result thread's batch keeps every header aligned. */
static int mpq__pool_put_result(const mpq_pool *p, mpq__presult *r)
{
    memset((char *)(r + 1) + r->len, 0, MPQ__POOL_PAD(r->len) - r->len);
    return mpq_queue_put(p->results, r, sizeof *r + MPQ__POOL_PAD(r->len), -1);
}

/* Calls fn with the task message (mpq_pool_fail) room set up; on an
   error, *msg_len is the message's length (0: none). */
static int mpq__pool_call(mpq_pool_fn fn, const void *arg, size_t len, void *out, size_t *rl,
                          size_t *msg_len)
{
    int e;
    mpq__task_msg_len = 0;
    e = fn(arg, len, out, rl);
    *msg_len = e ? mpq__task_msg_len : 0;
    return e;
}

/* Runs an imap chunk: its records one by one, each outcome a record in
   r's payload; a payload that would overflow goes out first (more = 1). */
static int mpq__pool_run_imap(const mpq_pool *p, mpq_pool_fn fn, const mpq__ptask *t, mpq__presult *r,
                              char *scratch)
{
    const char *arg = (const char *)(t + 1);
    char *out = (char *)(r + 1);
    size_t off = 0, pos = 0, ml;
    uint32_t k;
    int rc = 0;
    r->item = 0;
    for (k = 0; k < t->count; k++) {
        mpq__prec_hdr in, h;
        const void *data;
        size_t rl = p->max_result, need;
        int e;
        if (t->len - off < sizeof in) break;
        memcpy(&in, arg + off, sizeof in);
        if (in.len > p->max_arg || MPQ__ALIGN8((size_t)in.len) > t->len - off - sizeof in) break;
        e = mpq__pool_call(fn, arg + off + sizeof in, in.len, scratch, &rl, &ml);
        off += sizeof in + MPQ__ALIGN8((size_t)in.len);
        if (!e && rl > p->max_result) e = -EMSGSIZE;
        data = e ? (const void *)mpq__task_msg : scratch;
        h.error = e;
        h.len = (uint32_t)(e ? ml : rl);
        need = sizeof h + MPQ__ALIGN8((size_t)h.len);
        if (pos + need > p->rpay - 8) {   /* the record fits a payload of its own */
            r->len = (uint32_t)pos;
            r->more = 1;
            if ((rc = mpq__pool_put_result(p, r)) != 0) return rc;
            r->item = k;
            pos = 0;
        }
        memcpy(out + pos, &h, sizeof h);
        if (h.len) memcpy(out + pos + sizeof h, data, h.len);
        memset(out + pos + sizeof h + h.len, 0, MPQ__ALIGN8((size_t)h.len) - h.len);
        pos += need;
    }
    r->error = k < t->count ? -EIO : 0;   /* no parent writes that: shared memory was overwritten */
    r->len = r->error ? 0 : (uint32_t)pos;
    r->more = 0;
    return mpq__pool_put_result(p, r);
}

/* Runs one task message (already copied out of the queue) and puts its
   result message(s), built in r. */
static int mpq__pool_run(const mpq_pool *p, const mpq__ptask *t, mpq__presult *r, char *scratch)
{
    const char *arg = (const char *)(t + 1);
    char *out = (char *)(r + 1);
    mpq_pool_fn fn;
    size_t rl, ml = 0;
    uint32_t k = 0;
    int e = 0;
    memcpy(&fn, t->fn, sizeof fn);
    r->entry = t->entry;
    r->gen = t->gen;
    r->len = 0;
    r->item = 0;
    r->more = 0;
    if (t->item_size == MPQ__POOL_VAR) return mpq__pool_run_imap(p, fn, t, r, scratch);
    if (t->count == 0) {
        rl = p->max_result;
        e = mpq__pool_call(fn, arg, t->len, out, &rl, &ml);
        if (!e && rl > p->max_result) e = -EMSGSIZE;
        if (!e) r->len = (uint32_t)rl;
    } else if ((uint64_t)t->count * t->item_size != t->len ||
               (uint64_t)t->count * t->result_size > p->max_result) {
        e = -EIO;   /* no parent writes that: shared memory was overwritten */
    } else {
        memset(out, 0, (size_t)t->count * t->result_size);
        for (k = 0; k < t->count && !e; k++) {
            rl = t->result_size;
            e = mpq__pool_call(fn, arg + (size_t)k * t->item_size, t->item_size,
                               out + (size_t)k * t->result_size, &rl, &ml);
            if (!e && rl > t->result_size) e = -EMSGSIZE;
        }
        if (!e) r->len = t->count * t->result_size;
        else r->item = k - 1;
    }
    if (e && ml) {
        memcpy(out, mpq__task_msg, ml);
        r->len = (uint32_t)ml;
    }
    r->error = e;
    return mpq__pool_put_result(p, r);
}

static void mpq__pool_worker(mpq_pool *p, int i)
{
    mpq__pworker *w = &p->sh->w[i];
    size_t tcap = sizeof(mpq__ptask) + p->tpay;
    char *task = (char *)MPQ_MALLOC(tcap);
    char *res = (char *)MPQ_MALLOC(sizeof(mpq__presult) + p->rpay);
    char *scratch = (char *)MPQ_MALLOC(MPQ__ALIGN8(p->max_result) + 8);
    unsigned done = 0;
    int code = MPQ__POOL_DONE, rc;

    mpq__task_msg_cap = p->rpay - 16;   /* at least MPQ__POOL_MSG */
    mpq__task_msg = (char *)MPQ_MALLOC(mpq__task_msg_cap);
    if (!task || !res || !scratch || !mpq__task_msg) rc = -ENOMEM;
    else rc = p->init ? p->init(p->initarg) : 0;
    mpq__store32(&w->pid, (uint32_t)getpid(), MPQ__SEQ_CST);  /* as the server does: no gap */
    if (rc != 0) {
        w->init_error = rc;
        mpq__store32(&w->state, MPQ__W_INITFAIL, MPQ__SEQ_CST);
        _exit(1);
    }
    mpq__store64(&w->from, MPQ__NO_PEEK, MPQ__SEQ_CST);
    mpq__store32(&w->state, MPQ__W_RUN, MPQ__SEQ_CST);
    mpq__add32(&p->sh->ready, 1, MPQ__SEQ_CST);
    mpq__futex_wake(&p->sh->ready, INT_MAX);
    for (;;) {
        const mpq__ptask *t;
        const void *m = NULL;   /* set by peek; gcc 12 cannot tell */
        size_t len = 0;
        /* A slot this peek claims lies at or after the tail seen now. */
        mpq__store64(&w->from, mpq__load64(&p->tasks->h->tail, MPQ__SEQ_CST), MPQ__SEQ_CST);
        rc = mpq_queue_peek(p->tasks, &m, &len, -1);
        if (rc == -EPIPE) break;                 /* closed and drained */
        if (rc != 0) continue;                   /* -EIO: a corrupt slot, dropped */
        t = (const mpq__ptask *)m;
        if (len < sizeof *t || len > tcap || t->len != len - sizeof *t) {
            mpq_queue_release(p->tasks, m);      /* not a task: corrupt */
            continue;
        }
        memcpy(task, m, len);
        t = (const mpq__ptask *)(void *)task;
        mpq__store64(&w->task, (uint64_t)t->entry << 32 | t->gen, MPQ__SEQ_CST);
        mpq_queue_release(p->tasks, m);
        mpq__store64(&w->from, MPQ__NO_PEEK, MPQ__SEQ_CST);
        rc = mpq__pool_run(p, t, (mpq__presult *)(void *)res, scratch);
        mpq__store64(&w->task, 0, MPQ__RELEASE);
        if (rc == -EPIPE) break;                 /* the pool is being destroyed */
        if (p->max_tasks && ++done >= p->max_tasks) {
            code = 0;
            break;
        }
    }
    mpq__store32(&w->state, code ? MPQ__W_DONE : MPQ__W_RETIRED, MPQ__SEQ_CST);
    mpq__child_exit(code);
}

#define MPQ__POOL_NSIG 65

typedef struct mpq__psrv {
    mpq_pool *p;
    pid_t     self;
    int       sfd, pfd;        /* signalfd for SIGCHLD, pidfd of the parent (or -1) */
    sigset_t  mask;            /* the signal mask workers get */
    struct sigaction act[MPQ__POOL_NSIG];   /* the program's dispositions ... */
    unsigned char changed[MPQ__POOL_NSIG];  /* ... that the server changed */
    int       respawn;         /* a fork failed: try again later */
    int64_t   fork_failing;    /* since when forks fail (monotonic ns), 0: they work */
    uint64_t  told;            /* the task just reported */
    int       error;
} mpq__psrv;

static void mpq__pool_reap(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}

/* Kills every worker, reaps them, and ends the server. */
static void mpq__pool_stop(mpq__psrv *s, int code)
{
    mpq_pool *p = s->p;
    int i;
    for (i = 0; i < p->workers; i++)
        if (p->sh->w[i].pid) kill((pid_t)p->sh->w[i].pid, SIGKILL);
    for (i = 0; i < p->workers; i++)
        if (p->sh->w[i].pid) mpq__pool_reap((pid_t)p->sh->w[i].pid);
    _exit(code);
}

/* Puts a result message for the parent. Waits while the result queue is
   full, but gives up if the parent is gone. */
static void mpq__pool_tell(mpq__psrv *s, uint32_t entry, uint32_t gen, int error)
{
    mpq__presult r[2];   /* the header, then an empty payload's padding */
    memset(r, 0, sizeof r);
    r[0].entry = entry;
    r[0].gen = gen;
    r[0].error = error;
    while (mpq_queue_put(s->p->results, r, sizeof r[0] + 8, MPQ__POOL_SLICE_MS) == -ETIMEDOUT)
        if (getppid() != s->p->parent || mpq__readable(s->p->cmd[0], 0)) mpq__pool_stop(s, 0);
}

static void mpq__pool_orphan(void *ctx, const void *msg, uint32_t len)
{
    mpq__psrv *s = (mpq__psrv *)ctx;
    const mpq__ptask *t = (const mpq__ptask *)msg;
    if (len < sizeof *t) return;
    s->told = (uint64_t)t->entry << 32 | t->gen;
    mpq__pool_tell(s, t->entry, t->gen, s->error);
}

static void mpq__pool_spawn(mpq__psrv *s, int i)
{
    mpq_pool *p = s->p;
    mpq__pworker *w = &p->sh->w[i];
    pid_t pid;
    mpq__store64(&w->task, 0, MPQ__RELAXED);
    mpq__store32(&w->state, MPQ__W_INIT, MPQ__SEQ_CST);
    pid = fork();
    if (pid == 0) {
        int sig;
        /* Die with the server; if it is gone already, do not start. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != s->self) _exit(1);
        if (s->sfd >= 0) close(s->sfd);
        if (s->pfd >= 0) close(s->pfd);
        close(p->cmd[0]);
        for (sig = 1; sig < MPQ__POOL_NSIG; sig++)   /* the program's own again */
            if (s->changed[sig]) sigaction(sig, &s->act[sig], NULL);
        /* Its name (mpq_current_process_name, ps): PoolWorker-<slot>. */
        mpq__me.pid = getpid();
        mpq__me.parent = s->self;
        snprintf(mpq__me.name, sizeof mpq__me.name, "PoolWorker-%d", i + 1);
        prctl(PR_SET_NAME, (unsigned long)mpq__me.name, 0UL, 0UL, 0UL);
        sigprocmask(SIG_SETMASK, &s->mask, NULL);
        mpq__pool_worker(p, i);
    }
    if (pid < 0) {
        s->respawn = 1;
        if (!s->fork_failing) s->fork_failing = mpq__now_ns();
        return;
    }
    s->fork_failing = 0;
    mpq__store32(&w->pid, (uint32_t)pid, MPQ__SEQ_CST);
}

/* A worker has ended (still a zombie: its pid is not reusable yet): report
   the task it held, reap it, and replace it unless it ended because no
   tasks were left. An initializer that fails makes the pool give up. */
static void mpq__pool_ended(mpq__psrv *s, const siginfo_t *si)
{
    mpq_pool *p = s->p;
    int i;
    uint64_t task;
    uint32_t state;
    for (i = 0; i < p->workers && p->sh->w[i].pid != (uint32_t)si->si_pid; i++) {}
    if (i == p->workers) {           /* not a worker: nothing to do but reap */
        mpq__pool_reap(si->si_pid);
        return;
    }
    s->error = mpq__pool_death(si);
    s->told = 0;
    {
        uint64_t from = mpq__load64(&p->sh->w[i].from, MPQ__SEQ_CST);
        if (from != MPQ__NO_PEEK)   /* it was inside a peek: a slot may be held */
            mpq__q_recover_readers(p->tasks, (uint32_t)si->si_pid, from, mpq__pool_orphan, s);
    }
    task = mpq__load64(&p->sh->w[i].task, MPQ__SEQ_CST);
    if (task && task != s->told) mpq__pool_tell(s, (uint32_t)(task >> 32), (uint32_t)task, s->error);
    state = mpq__load32(&p->sh->w[i].state, MPQ__SEQ_CST);
    mpq__pool_reap(si->si_pid);
    mpq__store32(&p->sh->w[i].pid, 0, MPQ__SEQ_CST);
    /* An initializer that fails, or kills its worker three times in a
       row, would fail every replacement: give up. */
    if (state == MPQ__W_INIT && p->init) p->sh->w[i].init_deaths++;
    else if (state != MPQ__W_INITFAIL) p->sh->w[i].init_deaths = 0;
    if (state == MPQ__W_INITFAIL || p->sh->w[i].init_deaths >= 3) {
        int e = p->sh->w[i].init_error;
        if (state == MPQ__W_INIT) e = s->error;
        else if (e > 0) e = -ECHILD;
        mpq__store32((uint32_t *)&p->sh->error, (uint32_t)e, MPQ__SEQ_CST);
        mpq__futex_wake(&p->sh->ready, INT_MAX);
        mpq__pool_stop(s, 1);
    }
    if (state != MPQ__W_DONE) mpq__pool_spawn(s, i);
}

/* The server runs none of the program's signal handlers (they are for the
   program), ignores the signals a terminal or a service manager sends a
   whole process group (it ends with the program anyway), and takes SIGCHLD
   at its default, even if the program ignores it (children reaped unseen).
   Workers get the program's dispositions back. */
static void mpq__pool_server_signals(mpq__psrv *s)
{
    static const int quiet[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2 };
    struct sigaction a;
    size_t k;
    int sig;
    memset(&a, 0, sizeof a);
    sigemptyset(&a.sa_mask);
    for (sig = 1; sig < MPQ__POOL_NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &s->act[sig]) != 0) continue;
        if (sig == SIGCHLD || ((s->act[sig].sa_flags & SA_SIGINFO) ? s->act[sig].sa_sigaction != NULL
                               : (s->act[sig].sa_handler != SIG_DFL && s->act[sig].sa_handler != SIG_IGN))) {
            a.sa_handler = SIG_DFL;
            s->changed[sig] = sigaction(sig, &a, NULL) == 0;
        }
    }
    for (k = 0; k < sizeof quiet / sizeof quiet[0]; k++) {
        a.sa_handler = SIG_IGN;
        if (sigaction(quiet[k], &a, NULL) == 0) s->changed[quiet[k]] = 1;
    }
}

static int mpq__pool_server(void *arg)
{
    mpq__psrv s;
    mpq_pool *p = (mpq_pool *)arg;
    sigset_t chld;
    int i;

    memset(&s, 0, sizeof s);
    s.p = p;
    s.self = getpid();
    close(p->cmd[1]);
    mpq__pool_server_signals(&s);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &s.mask);
    s.sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    /* The program's pid was taken before the fork: if it has died already,
       the pidfd fails (or getppid differs) and the server stops. */
    s.pfd = mpq__pidfd_open(p->parent);
    if ((s.pfd < 0 && errno == ESRCH) || getppid() != p->parent) _exit(0);
    for (i = 0; i < p->workers; i++) mpq__pool_spawn(&s, i);
    for (;;) {
        struct pollfd fds[3];
        siginfo_t si;
        int live = 0, nf = 0;
        for (;;) {
            memset(&si, 0, sizeof si);
            if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0) break;
            mpq__pool_ended(&s, &si);
        }
        if (s.respawn) {
            s.respawn = 0;
            for (i = 0; i < p->workers; i++)
                if (!p->sh->w[i].pid && mpq__load32(&p->sh->w[i].state, MPQ__SEQ_CST) != MPQ__W_DONE)
                    mpq__pool_spawn(&s, i);
        }
        for (i = 0; i < p->workers; i++) live += p->sh->w[i].pid != 0;
        if (!live && !s.respawn) _exit(0);     /* every worker found the queue closed */
        if (s.fork_failing && mpq__now_ns() - s.fork_failing >= (int64_t)MPQ__POOL_FORK_MS * 1000000 &&
            (!mpq__load32(&p->sh->started, MPQ__SEQ_CST) || !live)) {
            /* No worker can be made (a process limit): a pool being created
               fails, one left without workers is broken; either way, say so. */
            mpq__store32((uint32_t *)&p->sh->error, (uint32_t)-EAGAIN, MPQ__SEQ_CST);
            mpq__futex_wake(&p->sh->ready, INT_MAX);
            mpq__pool_stop(&s, 1);
        }
        if (getppid() != p->parent) mpq__pool_stop(&s, 0);
        fds[nf].fd = p->cmd[0];
        fds[nf++].events = POLLIN;
        if (s.sfd >= 0) {
            fds[nf].fd = s.sfd;
            fds[nf++].events = POLLIN;
        }
        if (s.pfd >= 0) {
            fds[nf].fd = s.pfd;
            fds[nf++].events = POLLIN;
        }
        for (i = 0; i < nf; i++) fds[i].revents = 0;
        poll(fds, (nfds_t)nf, s.sfd >= 0 && !s.respawn ? 1000 : 20);
        if (fds[0].revents) mpq__pool_stop(&s, 0);        /* terminate (or the pipe's end) */
        if (s.pfd >= 0 && fds[nf - 1].revents) mpq__pool_stop(&s, 0);             /* parent died */
        if (s.sfd >= 0 && fds[1].revents) {
            struct signalfd_siginfo ssi;
            while (read(s.sfd, &ssi, sizeof ssi) > 0) {}
        }
    }
}

/* --- the parent: pending entries ---------------------------------------------- */

static int mpq__pool_in_thread(const mpq_pool *p)
{
    return p->thread_up && pthread_equal(pthread_self(), p->thread);
}

/* On the feeder thread: in an imap's input function. */
static int mpq__pool_in_feeder(const mpq_pool *p)
{
    return p->feeder_up && pthread_equal(pthread_self(), p->feeder);
}

/* Takes a free pending entry (lock held), growing the table if need be. */
static int mpq__pool_entry(mpq_pool *p, uint32_t *idx)
{
    if (p->free_head == UINT32_MAX) {
        uint32_t cap = p->ecap ? p->ecap * 2 : 256, i;
        mpq__pentry *e;
        if (cap > (1u << 26) || !(e = (mpq__pentry *)MPQ_MALLOC(cap * sizeof *e))) return -ENOMEM;
        if (p->ecap) memcpy(e, p->e, p->ecap * sizeof *e);
        memset(e + p->ecap, 0, (cap - p->ecap) * sizeof *e);
        for (i = p->ecap; i < cap; i++) e[i].next = i + 1 < cap ? i + 1 : UINT32_MAX;
        if (p->e) MPQ_FREE(p->e);
        p->e = e;
        p->free_head = p->ecap;
        p->ecap = cap;
    }
    *idx = p->free_head;
    p->free_head = p->e[*idx].next;
    if (++p->gen == 0) p->gen = 1;
    memset(&p->e[*idx], 0, sizeof p->e[*idx]);
    p->e[*idx].gen = p->gen;
    p->e[*idx].used = 1;
    p->pending++;
    return 0;
}

/* Frees entry idx (lock held). It stays counted in `pending` until its
   outcome has been reported: join waits for the callbacks too. */
static void mpq__pool_unentry(mpq_pool *p, uint32_t idx)
{
    p->e[idx].used = 0;
    p->e[idx].next = p->free_head;
    p->free_head = idx;
}

static int mpq__pool_live(const mpq_pool *p, uint32_t idx, uint32_t gen)
{
    return idx < p->ecap && p->e[idx].used && p->e[idx].gen == gen;
}

/* n outcomes have been reported (or taken back): lock held. */
static void mpq__pool_settled(mpq_pool *p, size_t n)
{
    p->pending -= n;
    if (n && p->pending == 0) pthread_cond_broadcast(&p->cond);
}

/* Wakes the result thread (a message that resolves nothing). */
static void mpq__pool_wake(mpq_pool *p)
{
    mpq__presult r[2];
    memset(r, 0, sizeof r);
    r[0].entry = MPQ__POOL_WAKE;
    mpq_queue_put(p->results, r, sizeof r[0] + 8, 0);
}

/* --- the parent: imap outcomes ------------------------------------------------------ */

static mpq__pout mpq__pout_nomem;   /* an outcome that found no memory */

static void mpq__pout_free(mpq__pout *o)
{
    if (o && o != &mpq__pout_nomem) MPQ_FREE(o);
}

/* Drops a hold on it (lock held, or the pool gone); the last frees it. */
static void mpq__imap_unref(mpq_imap *it)
{
    size_t k;
    if (--it->refs > 0) return;
    for (k = 0; k < it->window; k++) mpq__pout_free(it->ring[k]);
    mpq__pout_free(it->last);
    pthread_cond_destroy(&it->cond);
    MPQ_FREE(it->ring);
    if (it->pend) MPQ_FREE(it->pend);
    MPQ_FREE(it);
}

/* Item `index` of it has ended (lock held): its outcome waits for next. */
static void mpq__imap_put(mpq_imap *it, uint64_t index, int error, const void *data, size_t len)
{
    mpq__pout *o;
    mpq__store64(&it->done, it->done + 1, MPQ__RELAXED);
    if (mpq__load32(&it->freed, MPQ__RELAXED)) return;
    if ((o = (mpq__pout *)MPQ_MALLOC(sizeof *o + len + 1)) != NULL) {
        o->error = error;
        o->len = len;
        if (len) memcpy(o + 1, data, len);
        ((char *)(o + 1))[len] = 0;
    } else {
        o = &mpq__pout_nomem;
    }
    if (o != &mpq__pout_nomem) o->index = (size_t)index;
    if (!it->unordered) {
        mpq__pout **at = &it->ring[index % it->window];
        if (*at) mpq__pout_free(*at);   /* cannot happen: one outcome per item */
        *at = o;
    } else {
        it->ring[(it->rhead + it->rcount) % it->window] = o;
        it->rcount++;
    }
    pthread_cond_signal(&it->cond);
}

/* The input has ended (lock held): wakes a reader waiting for the end. */
static void mpq__imap_end(mpq_imap *it, int error)
{
    if (error && !it->src_error) it->src_error = error;
    mpq__store32(&it->ended, 1, MPQ__RELEASE);
    pthread_cond_signal(&it->cond);
}

/* --- the parent: resolving outcomes -------------------------------------------------- */

/* What the result thread does for one resolved entry, outside the lock. */
typedef struct mpq__pdone {
    mpq__pentry e;
    int         error;
    const void *data;
    size_t      len;
    int         map_done;   /* this entry ended its map */
} mpq__pdone;

/* An imap chunk's message: its records become outcomes, or - a dead
   worker, a corrupt message - its unfinished items fail. Returns 1 once
   the chunk is complete (the entry is freed), else 0. Lock held. */
static int mpq__pool_resolve_imap(mpq_pool *p, uint32_t idx, int error, uint32_t item, uint32_t more,
                                  const char *data, size_t len)
{
    mpq__pentry *e = &p->e[idx];
    mpq_imap *it = e->it;
    if (!error && item != e->arrived) return 0;   /* not the next part: a duplicate */
    if (!error) {
        size_t off = 0;
        while (e->arrived < e->count && len - off >= sizeof(mpq__prec_hdr)) {
            mpq__prec_hdr h;
            memcpy(&h, data + off, sizeof h);
            if (MPQ__ALIGN8((size_t)h.len) > len - off - sizeof h) break;
            mpq__imap_put(it, e->start + e->arrived, h.error, data + off + sizeof h, h.len);
            e->arrived++;
            off += sizeof h + MPQ__ALIGN8((size_t)h.len);
        }
        if (more && e->arrived < e->count) return 0;
        error = -EIO;   /* the last part, yet items missing: a corrupt message */
    }
    for (; e->arrived < e->count; e->arrived++) mpq__imap_put(it, e->start + e->arrived, error, NULL, 0);
    mpq__pool_unentry(p, idx);
    mpq__imap_unref(it);
    return 1;
}

/* Resolves entry idx/gen with a result message; lock held. Returns 0 if
   nothing is to be reported (not pending: a duplicate, or cancelled; an
   imap chunk not complete yet). A map chunk's results are copied into
   place here, an imap chunk's outcomes handed to the imap. */
static int mpq__pool_resolve(mpq_pool *p, uint32_t idx, uint32_t gen, int error, uint32_t item,
                             uint32_t more, const void *data, size_t len, mpq__pdone *d)
{
    mpq__pentry *e;
    if (!mpq__pool_live(p, idx, gen)) return 0;
    e = &p->e[idx];
    d->e = *e;
    d->error = error;
    d->data = error && !len ? "" : data;
    d->len = len;
    d->map_done = 0;
    if (e->it) return mpq__pool_resolve_imap(p, idx, error, item, more, (const char *)data, len);
    if (e->map) {
        mpq__pmap *m = e->map;
        size_t want = (size_t)e->count * m->result_size;
        if (!error && len != want) {
            error = -EIO;
            len = 0;
        }
        if (error) {
            if (!m->error) {
                m->error = error;
                m->err_index = (size_t)e->start + (item < e->count ? item : 0);
                if (len && (m->err_msg = (char *)MPQ_MALLOC(len + 1)) != NULL) {
                    memcpy(m->err_msg, data, len);
                    m->err_msg[len] = 0;
                    m->err_len = len;
                }
            }
        } else if (want) {
            memcpy(m->results + (size_t)e->start * m->result_size, data, want);
        }
        m->done += e->count;
        if (m->fut) mpq__store64(&m->fut->done, m->done, MPQ__RELAXED);
        d->map_done = --m->left == 0;
    }
    mpq__pool_unentry(p, idx);
    return 1;
}

/* Reports a map's end. A map counts once in `pending` from its start to
   here, so join waits for this report wherever it runs. */
static void mpq__pool_map_end(mpq_pool *p, mpq__pmap *m)
{
    mpq_pool_result r;
    r.id = m->id;
    if (m->error) {
        r.index = m->err_index;
        r.error = m->error;
        r.data = m->err_msg ? m->err_msg : "";
        r.len = m->err_len;
        if (m->ecb) m->ecb(m->user, &r);
    } else {
        r.index = 0;
        r.error = 0;
        r.data = m->results;
        r.len = m->total;
        if (m->cb) m->cb(m->user, &r);
    }
    if (m->fut) mpq__future_done(m->fut, m->error, m->error ? r.data : NULL, m->error ? r.len : 0);
    if (m->err_msg) MPQ_FREE(m->err_msg);
    MPQ_FREE(m);
    pthread_mutex_lock(&p->lock);
    mpq__pool_settled(p, 1);
    pthread_mutex_unlock(&p->lock);
}

/* Reports a resolved entry: callbacks, future. */
static void mpq__pool_report(mpq_pool *p, const mpq__pdone *d)
{
    mpq_pool_result r;
    if (d->e.it) return;   /* handed to its imap already */
    if (d->e.map) {
        if (d->map_done) mpq__pool_map_end(p, d->e.map);
        return;
    }
    r.id = d->e.id;
    r.index = 0;
    r.error = d->error;
    r.data = d->data;
    r.len = d->len;
    if (d->error) {
        if (d->e.ecb) d->e.ecb(d->e.user, &r);
    } else if (d->e.cb) {
        d->e.cb(d->e.user, &r);
    }
    if (d->e.fut) mpq__future_done(d->e.fut, d->error, d->data, d->len);
}

/* Fails every pending task with `error`, on the result thread. */
static void mpq__pool_fail_all(mpq_pool *p, int error)
{
    mpq__pdone d[MPQ__POOL_BATCH];
    int n, i;
    uint32_t k = 0;   /* no entry is taken meanwhile: the pool is halted */
    int more;
    do {
        int settled = 0;
        n = 0;
        pthread_mutex_lock(&p->lock);
        for (; k < p->ecap && n < MPQ__POOL_BATCH; k++)
            if (p->e[k].used && mpq__pool_resolve(p, k, p->e[k].gen, error, 0, 0, NULL, 0, &d[n])) {
                if (d[n].e.it) settled++;   /* nothing to report outside the lock */
                else n++;
            }
        mpq__pool_settled(p, (size_t)settled);
        more = k < p->ecap;
        pthread_mutex_unlock(&p->lock);
        for (i = 0; i < n; i++) mpq__pool_report(p, &d[i]);
        pthread_mutex_lock(&p->lock);
        mpq__pool_settled(p, (size_t)n);
        pthread_mutex_unlock(&p->lock);
    } while (more);
}

/* Resolves and reports a batch of result messages. */
static void mpq__pool_results(mpq_pool *p, const char *buf, const size_t *lens, int n)
{
    mpq__pdone d[MPQ__POOL_BATCH];
    size_t off = 0;
    int i, k = 0, settled = 0;
    pthread_mutex_lock(&p->lock);
    for (i = 0; i < n; i++) {
        mpq__presult r;   /* messages are padded to 8 bytes: buf + off is aligned */
        const char *m = buf + off;
        off += lens[i];
        if (lens[i] < sizeof r) continue;
        memcpy(&r, m, sizeof r);
        if (MPQ__POOL_PAD(r.len) != lens[i] - sizeof r) continue;
        if (mpq__pool_resolve(p, r.entry, r.gen, r.error, r.item, r.more, m + sizeof r, r.len, &d[k])) {
            if (d[k].e.it) settled++;
            else k++;
        }
    }
    mpq__pool_settled(p, (size_t)settled);
    pthread_mutex_unlock(&p->lock);
    for (i = 0; i < k; i++) mpq__pool_report(p, &d[i]);
    if (k) {
        pthread_mutex_lock(&p->lock);
        mpq__pool_settled(p, (size_t)k);
        pthread_mutex_unlock(&p->lock);
    }
}

/* --- the parent: submissions waiting in this process ------------------------------ */

/* Appends job j for the feeder (lock held). */
static void mpq__pool_push(mpq_pool *p, mpq__pjob *j)
{
    j->next = NULL;
    if (p->jobs_tail) p->jobs_tail->next = j;
    else p->jobs = j;
    p->jobs_tail = j;
    if (p->fwait) pthread_cond_signal(&p->fcond);
}

/* Hands job j to the result thread, which fails it with j->error (lock
   held): the outcome of a map must be reported there. */
static void mpq__pool_push_fail(mpq_pool *p, mpq__pjob *j, int error)
{
    j->error = error;
    j->next = p->failq;
    p->failq = j;
}

static void mpq__pool_job_free(mpq__pjob *j)
{
    if (j->copy) MPQ_FREE(j->copy);
    MPQ_FREE(j);
}

/* Ends job j with `error` (0: none) on the result thread: an apply's
   entry is failed by fail_all, a map's unsent chunks fail (and the map
   ends if nothing else of it is out), an imap's input ends. */
static void mpq__pool_job_fail(mpq_pool *p, mpq__pjob *j, int error)
{
    mpq__pmap *m = j->t.map;
    mpq_imap *it = j->t.it;
    int done = 0;
    pthread_mutex_lock(&p->lock);
    if (j->kind == MPQ__JOB_MAP) {
        size_t chunks = j->at < j->n ? (j->n - j->at - 1) / j->per + 1 : 0;
        m->left -= chunks;
        if (error && !m->error) {
            m->error = error;
            m->err_index = j->at;
        }
        m->done += j->n - j->at;
        if (m->fut) mpq__store64(&m->fut->done, m->done, MPQ__RELAXED);
        done = m->left == 0;
    } else if (j->kind == MPQ__JOB_IMAP) {
        if (it->has_pend) {   /* read from the input, never sent */
            mpq__imap_put(it, it->sent++, error ? error : -ECANCELED, NULL, 0);
            it->has_pend = 0;
        }
        mpq__imap_end(it, 0);
        mpq__pool_settled(p, 1);
        mpq__imap_unref(it);
    }
    pthread_mutex_unlock(&p->lock);
    if (done) mpq__pool_map_end(p, m);
    mpq__pool_job_free(j);
}

/* Fails what waits in this process: the failed jobs, and - once the pool
   is halted - every job (result thread). */
static void mpq__pool_drain(mpq_pool *p)
{
    mpq__pjob *fail, *wait, *j;
    int error;
    pthread_mutex_lock(&p->lock);
    fail = p->failq;
    p->failq = NULL;
    wait = NULL;
    if (p->halted) {
        wait = p->jobs;
        p->jobs = p->jobs_tail = NULL;
    }
    error = p->halt_error;
    pthread_mutex_unlock(&p->lock);
    while ((j = fail) != NULL) {
        fail = j->next;
        /* A send that met the task queue closed for a halt fails as the halt says. */
        mpq__pool_job_fail(p, j, j->error == -EPIPE && error ? error : j->error);
    }
    while ((j = wait) != NULL) {
        wait = j->next;
        mpq__pool_job_fail(p, j, error);
    }
}

/* Closes the task queue once close() was called and nothing is left to
   send, so that workers exit when they have run it all (lock held). */
static void mpq__pool_close_tasks(mpq_pool *p)
{
    if (p->closed && !p->jobs && !p->senders && !p->tasks_closed) {
        p->tasks_closed = 1;
        mpq_queue_shutdown(p->tasks, 0);
    }
}

/* Queues a task message, written in place in its slot. */
static int mpq__pool_send(mpq_pool *p, uint32_t idx, uint32_t gen, mpq_pool_fn fn, const void *arg,
                          size_t len, uint32_t count, uint32_t item_size, uint32_t result_size,
                          int timeout_ms)
{
    void *buf = NULL;   /* set by reserve; gcc 12 cannot tell (-Wmaybe-uninitialized) */
    int rc = mpq_queue_reserve(p->tasks, &buf, timeout_ms);
    if (rc == 0) {
        mpq__ptask *t = (mpq__ptask *)buf;
        t->entry = idx;
        t->gen = gen;
        t->count = count;
        t->item_size = item_size;
        t->result_size = result_size;
        t->len = (uint32_t)len;
        memset(t->fn, 0, sizeof t->fn);
        memcpy(t->fn, &fn, sizeof fn);
        if (len) memcpy(t + 1, arg, len);
        rc = mpq_queue_commit(p->tasks, buf, sizeof *t + len);
    }
    return rc;
}

/* A task the feeder could not queue (not for -EPIPE: the queue is closed
   only when the pool halts, and fail_all then fails the entry): its
   entry fails through the result thread. Lock held; dropped meanwhile. */
static void mpq__pool_unsent(mpq_pool *p, uint32_t idx, uint32_t gen, int rc)
{
    mpq__presult r[2];
    if (rc == -EPIPE) {   /* only a halt closes it under the feeder: wait for that */
        p->fpipe = 1;
        return;
    }
    memset(r, 0, sizeof r);
    r[0].entry = idx;
    r[0].gen = gen;
    r[0].error = rc;
    pthread_mutex_unlock(&p->lock);
    while (mpq_queue_put(p->results, r, sizeof r[0] + 8, MPQ__POOL_SLICE_MS) == -ETIMEDOUT) {
        int halted;
        pthread_mutex_lock(&p->lock);
        halted = (int)p->halted;
        pthread_mutex_unlock(&p->lock);
        if (halted) break;
    }
    pthread_mutex_lock(&p->lock);
}

/* Can the feeder move job j on now? An imap waits for room in its window
   for a whole chunk, so that chunks hold chunksize items each (unless
   their bytes do not fit one task). */
static int mpq__pool_job_ready(const mpq__pjob *j)
{
    const mpq_imap *it = j->t.it;
    if (j->kind != MPQ__JOB_IMAP) return 1;
    return mpq__load32(&it->freed, MPQ__RELAXED) || it->has_pend ||
           it->pulled - it->read + it->chunksize <= it->window;
}

/* One item of an imap's input into it->pend: 1, 0 (the end) or an error. */
static int mpq__pool_pull(mpq_pool *p, mpq_imap *it, uint64_t index)
{
    size_t len = 0;
    int rc;
    if (it->items) {
        if (index >= it->n) return 0;
        if (it->item_size) memcpy(it->pend, it->items + (size_t)index * it->item_size, it->item_size);
        it->pend_len = it->item_size;
        return 1;
    }
    rc = it->source(it->source_user, (size_t)index, it->pend, p->max_arg, &len);
    if (rc > 0 && len > p->max_arg) rc = -EMSGSIZE;
    if (rc > 0) it->pend_len = len;
    return rc > 0 ? 1 : rc;
}

/* Moves one chunk of imap job j on (lock held, dropped meanwhile).
   Returns 1 if the job goes on. The feeder owns it->pend while the job
   is out of the list. */
static int mpq__pool_feed_imap(mpq_pool *p, mpq__pjob *j)
{
    mpq_imap *it = j->t.it;
    mpq__ptask *t = (mpq__ptask *)(void *)p->fbuf;
    char *rec = (char *)(t + 1);
    uint64_t pulls = 0, allowed;
    size_t off = 0;
    uint32_t count = 0, idx = 0, gen = 0;
    int rc = 1, end = 0, ok = 0;

    if (mpq__load32(&it->freed, MPQ__RELAXED)) {   /* the caller let go: read no more */
        it->has_pend = 0;
        mpq__imap_end(it, 0);
        mpq__pool_settled(p, 1);
        mpq__imap_unref(it);
        mpq__pool_job_free(j);
        return 0;
    }
    allowed = it->pulled - it->read < it->window ? it->window - (it->pulled - it->read) : 0;
    p->fcur = it;   /* mpq_imap_free waits until the input is left alone */
    pthread_mutex_unlock(&p->lock);
    /* Items read from the input wait in it->pend until their chunk has room. */
    while (count < it->chunksize) {
        size_t need;
        if (!it->has_pend) {
            if (pulls >= allowed || end) break;
            /* Freed or halted meanwhile: read no more (what was read goes out). */
            if (mpq__load32(&it->freed, MPQ__ACQUIRE) || mpq__load32(&p->halted, MPQ__ACQUIRE)) break;
            if ((rc = mpq__pool_pull(p, it, it->pulled + pulls)) <= 0) {
                end = 1;
                break;
            }
            pulls++;
            it->has_pend = 1;
        }
        need = sizeof(mpq__prec_hdr) + MPQ__ALIGN8(it->pend_len);
        if (off + need > p->tpay) break;
        {
            mpq__prec_hdr h;
            h.error = 0;
            h.len = (uint32_t)it->pend_len;
            memcpy(rec + off, &h, sizeof h);
            if (h.len) memcpy(rec + off + sizeof h, it->pend, h.len);
            memset(rec + off + sizeof h + h.len, 0, MPQ__ALIGN8((size_t)h.len) - h.len);
        }
        off += need;
        count++;
        it->has_pend = 0;
    }
    if (it->items && it->pulled + pulls >= it->n) end = 1;
    pthread_mutex_lock(&p->lock);
    p->fcur = NULL;
    pthread_cond_broadcast(&p->cond);   /* an mpq_imap_free may wait for this */
    mpq__store64(&it->pulled, it->pulled + pulls, MPQ__RELAXED);
    if (count) {
        if (mpq__pool_entry(p, &idx) == 0) {
            mpq__pentry *e = &p->e[idx];
            e->it = it;
            e->id = it->id;
            e->start = it->sent;
            e->count = count;
            gen = e->gen;
            it->refs++;
            ok = 1;
        } else {   /* no memory for the entry: these items fail */
            uint32_t k;
            for (k = 0; k < count; k++) mpq__imap_put(it, it->sent + k, -ENOMEM, NULL, 0);
        }
        it->sent += count;
    }
    if (end) {
        mpq__imap_end(it, rc < 0 ? rc : 0);
        if (!it->has_pend) {   /* the job is done */
            mpq__pool_settled(p, 1);
            mpq__imap_unref(it);
            mpq__pool_job_free(j);
            j = NULL;
        }
    }
    if (ok) {
        /* `it` is not touched past the unlock: its holds may all go once
           the chunk is out (the outcome travels through a worker, a path
           no thread sanitizer can follow). */
        memset(t->fn, 0, sizeof t->fn);
        memcpy(t->fn, &it->fn, sizeof it->fn);
        pthread_mutex_unlock(&p->lock);
        t->entry = idx;
        t->gen = gen;
        t->count = count;
        t->item_size = MPQ__POOL_VAR;
        t->result_size = 0;
        t->len = (uint32_t)off;
        rc = mpq_queue_put(p->tasks, t, sizeof *t + off, -1);
        pthread_mutex_lock(&p->lock);
        if (rc != 0) mpq__pool_unsent(p, idx, gen, rc);
    }
    return j != NULL;
}

/* Moves job j on by one task (lock held, dropped meanwhile). Returns 1 if
   the job goes on, 0 if it is finished (and freed). */
static int mpq__pool_feed(mpq_pool *p, mpq__pjob *j)
{
    uint32_t idx, gen;
    int rc;
    if (j->kind == MPQ__JOB_IMAP) return mpq__pool_feed_imap(p, j);
    if (j->kind == MPQ__JOB_APPLY) {
        idx = j->t.next;
        gen = j->t.gen;
        if (mpq__pool_live(p, idx, gen)) {   /* else cancelled meanwhile */
            pthread_mutex_unlock(&p->lock);
            rc = mpq__pool_send(p, idx, gen, j->fn, j + 1, j->len, 0, 0, 0, -1);
            pthread_mutex_lock(&p->lock);
            if (rc != 0) mpq__pool_unsent(p, idx, gen, rc);
        }
        mpq__pool_job_free(j);
        return 0;
    } else {
        mpq__pmap *m = j->t.map;
        size_t count = j->n - j->at < j->per ? j->n - j->at : j->per;
        const char *src = j->items + (j->at - j->first) * j->item_size;
        mpq__pentry *e;
        if ((rc = mpq__pool_entry(p, &idx)) != 0) {
            mpq__pool_push_fail(p, j, rc);   /* its remaining chunks fail */
            mpq__pool_wake(p);
            return 0;
        }
        e = &p->e[idx];
        e->map = m;
        e->id = m->id;
        e->start = j->at;
        e->count = (uint32_t)count;
        gen = e->gen;
        j->at += count;
        pthread_mutex_unlock(&p->lock);
        rc = mpq__pool_send(p, idx, gen, j->fn, src, count * j->item_size, (uint32_t)count,
                            (uint32_t)j->item_size, (uint32_t)j->result_size, -1);
        pthread_mutex_lock(&p->lock);
        if (rc != 0) mpq__pool_unsent(p, idx, gen, rc);
        if (j->at < j->n) return 1;
        mpq__pool_job_free(j);
        return 0;
    }
}

/* The feeder thread: moves what waits in this process onto the task
   queue, in order, waiting for room there - so that no submitting call
   ever does. An imap whose window is full is passed over until its reader
   makes room. */
static void *mpq__pool_feeder(void *arg)
{
    mpq_pool *p = (mpq_pool *)arg;
    pthread_mutex_lock(&p->lock);
    while (!p->fstop) {
        mpq__pjob *j = NULL, *prev = NULL;
        if (!p->halted && !p->fpipe)
            for (j = p->jobs; j && !mpq__pool_job_ready(j); prev = j, j = j->next) {}
        if (!j) {
            mpq__pool_close_tasks(p);
            p->fwait = 1;
            pthread_cond_wait(&p->fcond, &p->lock);
            p->fwait = 0;
            continue;
        }
        if (prev) prev->next = j->next;
        else p->jobs = j->next;
        if (p->jobs_tail == j) p->jobs_tail = prev;
        p->fbusy = 1;
        p->senders++;
        if (mpq__pool_feed(p, j)) {   /* back in front */
            j->next = p->jobs;
            p->jobs = j;
            if (!p->jobs_tail) p->jobs_tail = j;
        }
        p->fbusy = 0;
        p->senders--;
        if (p->halted) {
            pthread_cond_broadcast(&p->cond);   /* the result thread waits for this */
            if (p->jobs) mpq__pool_wake(p);
        }
        mpq__pool_close_tasks(p);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Has the server ended? Looked at through the result thread's own pidfd,
   or else without reaping. */
static int mpq__pool_server_gone(mpq_pool *p)
{
    siginfo_t si;
    if (mpq__load32(&p->joined, MPQ__ACQUIRE)) return 1;   /* its pid may be reused */
    if (p->server_fd >= 0) return mpq__readable(p->server_fd, 0);
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)p->server.pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return 1;
    return si.si_pid != 0;
}

/* Nothing more is sent (terminate, or the server is gone): waits until
   the feeder is out of its job, then fails everything waiting or out. */
static void mpq__pool_halt(mpq_pool *p, int error)
{
    pthread_mutex_lock(&p->lock);
    mpq__store32(&p->halted, 1, MPQ__RELEASE);
    if (!p->halt_error) p->halt_error = error;
    pthread_mutex_unlock(&p->lock);
    /* First what waits and what is out: an imap's input function that the
       feeder runs may be waiting for one of those tasks. */
    mpq__pool_drain(p);
    mpq__pool_fail_all(p, error);
    pthread_mutex_lock(&p->lock);
    while (p->fbusy) pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    /* Then what the feeder took out meanwhile. */
    mpq__pool_drain(p);
    mpq__pool_fail_all(p, error);
}

static void *mpq__pool_thread(void *arg)
{
    mpq_pool *p = (mpq_pool *)arg;
    size_t lens[MPQ__POOL_BATCH];
    int n, dead = 0;
    for (;;) {
        int drain;
        n = mpq_queue_get_batch(p->results, p->rbuf, p->rcap, lens, MPQ__POOL_BATCH, MPQ__POOL_SLICE_MS);
        if (n > 0) mpq__pool_results(p, p->rbuf, lens, n);
        if (mpq__load32(&p->cancel, MPQ__ACQUIRE)) {
            mpq__pool_halt(p, -ECANCELED);
            pthread_mutex_lock(&p->lock);
            mpq__store32(&p->cancel, 0, MPQ__RELEASE);
            pthread_cond_broadcast(&p->cond);
            pthread_mutex_unlock(&p->lock);
        }
        pthread_mutex_lock(&p->lock);
        drain = p->failq || (p->halted && p->jobs);
        pthread_mutex_unlock(&p->lock);
        if (drain) mpq__pool_drain(p);
        if (n == -EPIPE || mpq__load32(&p->stop, MPQ__ACQUIRE)) break;
        if (n == -ETIMEDOUT && !dead && mpq__pool_server_gone(p)) {
            /* The server and its workers are gone. Deliver what they sent -
               waiting long enough for a slot a dead worker held to be moved
               on - then whatever is still pending will never be answered:
               it fails with -ECANCELED after terminate, else with why the
               server gave up (-ECHILD if it was killed). */
            int e = (int)mpq__load32((uint32_t *)&p->sh->error, MPQ__SEQ_CST);
            if (e == 0) e = -ECHILD;
            pthread_mutex_lock(&p->lock);   /* submits say why from now on */
            if (!p->terminated && !p->closed && !p->broken) p->broken = e;
            pthread_mutex_unlock(&p->lock);
            mpq_queue_shutdown(p->tasks, 0);   /* the feeder, and a sender, give up */
            while ((n = mpq_queue_get_batch(p->results, p->rbuf, p->rcap, lens, MPQ__POOL_BATCH,
                                            3 * MPQ__STUCK_MS)) > 0)
                mpq__pool_results(p, p->rbuf, lens, n);
            pthread_mutex_lock(&p->lock);
            if (p->terminated) e = -ECANCELED;
            pthread_mutex_unlock(&p->lock);
            mpq__pool_halt(p, e);
            dead = 1;
        }
    }
    return NULL;
}

/* --- the parent: submitting ------------------------------------------------------ */

/* Why a task cannot be submitted now (lock held), or 0. */
static int mpq__pool_refuse(const mpq_pool *p)
{
    if (p->broken) return -ECHILD;   /* its tasks failed with why */
    return p->closed || p->terminated ? -EPIPE : 0;
}

/* Takes back entry idx, whose task was not queued (lock held). Returns
   `rc` to give the submitter, or 0 if the entry was resolved meanwhile
   (cancelled or failed: that outcome is its report). */
static int mpq__pool_unsend(mpq_pool *p, uint32_t idx, uint32_t gen, int rc)
{
    if (!mpq__pool_live(p, idx, gen)) return 0;
    mpq__pool_unentry(p, idx);
    mpq__pool_settled(p, 1);
    return p->broken ? -ECHILD : rc;   /* its queue was closed for that */
}

MPQDEF int mpq_pool_apply_async(mpq_pool *p, mpq_pool_fn fn, const void *arg, size_t len,
                                mpq_pool_callback callback, mpq_pool_callback error_callback,
                                void *user, mpq_future **future)
{
    mpq_future *f = NULL;
    mpq__pentry *e;
    mpq__pjob *j;
    uint32_t idx = 0, gen = 0;
    int rc, direct;
    if (!p || !fn || (!arg && len)) return -EINVAL;
    if (len > p->max_arg) return -EMSGSIZE;
    if (future && !(f = mpq__future_new())) return -ENOMEM;
    pthread_mutex_lock(&p->lock);
    if ((rc = mpq__pool_refuse(p)) != 0 || (rc = mpq__pool_entry(p, &idx)) != 0) {
        pthread_mutex_unlock(&p->lock);
        if (f) MPQ_FREE(f);
        return rc;
    }
    e = &p->e[idx];
    e->cb = callback;
    e->ecb = error_callback;
    e->user = user;
    e->fut = f;
    e->id = ++p->seq;
    gen = e->gen;
    if (f) {
        f->id = e->id;
        f->total = 1;
    }
    /* Straight onto the task queue if nothing waits before it and there
       is room; else it waits here, in order, for the feeder. */
    direct = !p->jobs && !p->fbusy;
    p->senders++;   /* until it is queued: close must not shut the task queue before */
    pthread_mutex_unlock(&p->lock);
    rc = direct ? mpq__pool_send(p, idx, gen, fn, arg, len, 0, 0, 0, 0) : -EAGAIN;
    if (rc == -EAGAIN) {
        j = (mpq__pjob *)MPQ_MALLOC(sizeof *j + len);
        if (j) {
            memset(j, 0, sizeof *j);
            j->kind = MPQ__JOB_APPLY;
            j->fn = fn;
            j->t.next = idx;
            j->t.gen = gen;
            j->len = len;
            if (len) memcpy(j + 1, arg, len);
        }
        rc = j ? 0 : -ENOMEM;
    } else {
        j = NULL;
    }
    pthread_mutex_lock(&p->lock);
    p->senders--;
    if (rc != 0) {
        rc = mpq__pool_unsend(p, idx, gen, rc);
    } else if (j) {
        if (mpq__pool_live(p, idx, gen)) {
            mpq__pool_push(p, j);
            if (p->halted) mpq__pool_wake(p);
        } else {
            mpq__pool_job_free(j);   /* cancelled meanwhile: reported */
        }
    }
    mpq__pool_close_tasks(p);
    pthread_mutex_unlock(&p->lock);
    if (rc != 0) {
        if (f) MPQ_FREE(f);   /* nobody else saw it */
        return rc;
    }
    if (future) *future = f;
    return 0;
}

MPQDEF int mpq_pool_submit(mpq_pool *p, mpq_pool_fn fn, const void *arg, size_t len, mpq_future **future)
{
    if (!future) return -EINVAL;
    return mpq_pool_apply_async(p, fn, arg, len, NULL, NULL, NULL, future);
}

MPQDEF int mpq_pool_apply(mpq_pool *p, mpq_pool_fn fn, const void *arg, size_t len,
                          void *result, size_t cap, size_t *result_len)
{
    mpq_future *f;
    int rc;
    if (!p || (!result && cap) || !result_len) return -EINVAL;
    if (mpq__pool_in_thread(p) || mpq__pool_in_feeder(p)) return -EDEADLK;
    if ((rc = mpq_pool_submit(p, fn, arg, len, &f)) != 0) return rc;
    rc = mpq_future_get(f, result, cap, result_len, -1);
    mpq_future_free(f);
    return rc;
}

/* map_async, and map with `borrow` set: the items stay valid until the
   map ends, so what waits here need not copy them. */
static int mpq__pool_map(mpq_pool *p, mpq_pool_fn fn, const void *items, size_t n, size_t item_size,
                         void *results, size_t result_size, size_t chunksize, mpq_pool_callback callback,
                         mpq_pool_callback error_callback, void *user, mpq_future **future, int borrow)
{
    mpq__pmap *m;
    mpq_future *f = NULL;
    mpq__pjob *j = NULL;
    size_t per, chunks, at = 0;
    int rc = 0, direct;

    if (!p || !fn) return -EINVAL;
    if (n && ((!items && item_size) || (!results && result_size))) return -EINVAL;
    if (item_size > p->max_arg || result_size > p->max_result) return -EMSGSIZE;
    if (n && (item_size > SIZE_MAX / n || result_size > SIZE_MAX / n)) return -EOVERFLOW;
    per = chunksize ? chunksize : (n + 4 * (size_t)p->workers - 1) / (4 * (size_t)p->workers);
    if (item_size && per > p->max_arg / item_size) per = p->max_arg / item_size;
    if (result_size && per > p->max_result / result_size) per = p->max_result / result_size;
    if (per > MPQ__POOL_MAX_SIZE) per = MPQ__POOL_MAX_SIZE;
    if (per == 0) per = 1;
    chunks = n ? (n - 1) / per + 1 : 0;
    if (!(m = (mpq__pmap *)MPQ_MALLOC(sizeof *m))) return -ENOMEM;
    if (future && !(f = mpq__future_new())) {
        MPQ_FREE(m);
        return -ENOMEM;
    }
    memset(m, 0, sizeof *m);
    m->results = (char *)results;
    m->result_size = result_size;
    m->n = n;
    m->total = n * result_size;
    m->left = chunks;
    m->cb = callback;
    m->ecb = error_callback;
    m->user = user;
    m->fut = f;
    if (f) f->total = n;
    pthread_mutex_lock(&p->lock);
    if ((rc = mpq__pool_refuse(p)) != 0) {
        pthread_mutex_unlock(&p->lock);
        MPQ_FREE(m);
        if (f) MPQ_FREE(f);
        return rc;
    }
    m->id = ++p->seq;
    if (f) f->id = m->id;
    p->pending++;                         /* the map's own report, see map_end */
    direct = !p->jobs && !p->fbusy;
    p->senders++;   /* until the rest is queued: close must not shut the task queue before */
    /* Chunks go straight onto the task queue while it has room and
       nothing waits before them; the rest waits here for the feeder. */
    while (direct && at < n) {
        size_t count = n - at < per ? n - at : per;
        uint32_t idx, gen;
        mpq__pentry *e;
        if (p->halted) break;   /* the rest fails on the result thread */
        if ((rc = mpq__pool_entry(p, &idx)) != 0) break;
        e = &p->e[idx];
        e->map = m;
        e->id = m->id;
        e->start = at;
        e->count = (uint32_t)count;
        gen = e->gen;
        pthread_mutex_unlock(&p->lock);
        rc = mpq__pool_send(p, idx, gen, fn, (const char *)items + at * item_size, count * item_size,
                            (uint32_t)count, (uint32_t)item_size, (uint32_t)result_size, 0);
        pthread_mutex_lock(&p->lock);
        if (rc != 0) {
            if (mpq__pool_live(p, idx, gen)) {   /* take it back: it waits, or fails */
                mpq__pool_unentry(p, idx);
                mpq__pool_settled(p, 1);
            } else {
                at += count;   /* cancelled meanwhile: that was its report */
            }
            break;
        }
        at += count;
    }
    if (rc == -EAGAIN) rc = 0;   /* full: the rest waits */
    if (rc != 0 && at == 0 && m->left == chunks) {
        /* Nothing went out: the call fails instead. */
        mpq__pool_settled(p, 1);
        p->senders--;
        mpq__pool_close_tasks(p);
        pthread_mutex_unlock(&p->lock);
        MPQ_FREE(m);
        if (f) MPQ_FREE(f);
        return rc;
    }
    pthread_mutex_unlock(&p->lock);
    if (at < n || n == 0) {
        /* The rest waits (or, failed or empty, goes to the result thread). */
        size_t bytes = (n - at) * item_size;
        j = (mpq__pjob *)MPQ_MALLOC(sizeof *j);
        if (j) {
            memset(j, 0, sizeof *j);
            j->kind = MPQ__JOB_MAP;
            j->fn = fn;
            j->t.map = m;
            j->items = (const char *)items + at * item_size;
            j->first = at;
            j->at = at;
            j->n = n;
            j->per = per;
            j->item_size = item_size;
            j->result_size = result_size;
            if (!borrow && rc == 0 && bytes) {
                if ((j->copy = (char *)MPQ_MALLOC(bytes)) != NULL) memcpy(j->copy, j->items, bytes);
                else rc = -ENOMEM;
                j->items = j->copy;
            }
        }
    }
    pthread_mutex_lock(&p->lock);
    if (j && rc == 0 && n > 0) {
        mpq__pool_push(p, j);
        if (p->halted) mpq__pool_wake(p);
    } else if (j) {
        mpq__pool_push_fail(p, j, rc);   /* reported on the result thread */
        mpq__pool_wake(p);
    } else if (at < n || n == 0) {
        /* No memory even for the job: the chunks not sent fail here. */
        size_t rest = at < n ? (n - at - 1) / per + 1 : 0;
        m->left -= rest;
        if (!m->error) {
            m->error = -ENOMEM;
            m->err_index = at;
        }
        if (m->left == 0) {   /* nothing out: report on this thread, the one exception */
            pthread_mutex_unlock(&p->lock);
            mpq__pool_map_end(p, m);
            pthread_mutex_lock(&p->lock);
        }
    }
    p->senders--;
    mpq__pool_close_tasks(p);
    pthread_mutex_unlock(&p->lock);
    if (future) *future = f;
    return 0;
}

MPQDEF int mpq_pool_map_async(mpq_pool *p, mpq_pool_fn fn, const void *items, size_t n,
                              size_t item_size, void *results, size_t result_size,
                              size_t chunksize, mpq_pool_callback callback,
                              mpq_pool_callback error_callback, void *user,
                              mpq_future **future)
{
    return mpq__pool_map(p, fn, items, n, item_size, results, result_size, chunksize, callback,
                         error_callback, user, future, 0);
}

MPQDEF int mpq_pool_map(mpq_pool *p, mpq_pool_fn fn, const void *items, size_t n,
                        size_t item_size, void *results, size_t result_size, size_t chunksize)
{
    mpq_future *f;
    int rc;
    if (!p) return -EINVAL;
    if (mpq__pool_in_thread(p) || mpq__pool_in_feeder(p)) return -EDEADLK;
    rc = mpq__pool_map(p, fn, items, n, item_size, results, result_size, chunksize,
                       NULL, NULL, NULL, &f, 1);
    if (rc != 0) return rc;
    rc = mpq_future_wait(f, -1);
    if (rc == 0) rc = f->error;
    mpq_future_free(f);
    return rc;
}

/* --- the parent: imap ---------------------------------------------------------------- */

MPQDEF int mpq_pool_imap(mpq_pool *p, mpq_pool_fn fn, const mpq_imap_config *cfg, mpq_imap **out)
{
    mpq_imap *it;
    mpq__pjob *j;
    pthread_condattr_t ca;
    size_t chunk, window;
    int rc;
    if (!p || !fn || !cfg || !out || !cfg->source == !cfg->items) return -EINVAL;
    if (cfg->items && cfg->n && !cfg->item_size) return -EINVAL;
    if (cfg->items && cfg->item_size > p->max_arg) return -EMSGSIZE;
    chunk = cfg->chunksize ? cfg->chunksize : 1;
    if (chunk > MPQ__POOL_MAX_SIZE) chunk = MPQ__POOL_MAX_SIZE;
    window = cfg->window ? cfg->window : 8 * (size_t)p->workers * chunk;
    if (window < chunk) window = chunk;
    if (window > MPQ__POOL_MAX_SIZE) window = MPQ__POOL_MAX_SIZE;
    if (!(it = (mpq_imap *)MPQ_MALLOC(sizeof *it))) return -ENOMEM;
    memset(it, 0, sizeof *it);
    it->ring = (mpq__pout **)MPQ_MALLOC(window * sizeof *it->ring);
    it->pend = (char *)MPQ_MALLOC(p->max_arg ? p->max_arg : 1);
    j = (mpq__pjob *)MPQ_MALLOC(sizeof *j);
    if (!it->ring || !it->pend || !j) {
        if (it->ring) MPQ_FREE(it->ring);
        if (it->pend) MPQ_FREE(it->pend);
        if (j) MPQ_FREE(j);
        MPQ_FREE(it);
        return -ENOMEM;
    }
    memset(it->ring, 0, window * sizeof *it->ring);
    it->pool = p;
    it->fn = fn;
    it->source = cfg->source;
    it->source_user = cfg->source_user;
    it->items = (const char *)cfg->items;
    it->n = cfg->items ? cfg->n : 0;
    it->item_size = cfg->item_size;
    it->chunksize = chunk;
    it->window = window;
    it->unordered = cfg->unordered != 0;
    it->refs = 2;   /* the caller's, the job's */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&it->cond, &ca);
    pthread_condattr_destroy(&ca);
    memset(j, 0, sizeof *j);
    j->kind = MPQ__JOB_IMAP;
    j->t.it = it;
    pthread_mutex_lock(&p->lock);
    if ((rc = mpq__pool_refuse(p)) != 0) {
        pthread_mutex_unlock(&p->lock);
        it->refs = 1;
        mpq__imap_unref(it);
        MPQ_FREE(j);
        return rc;
    }
    it->id = ++p->seq;
    if (it->items && it->n == 0) {   /* nothing to read */
        mpq__imap_end(it, 0);
        it->refs = 1;
        MPQ_FREE(j);
    } else {
        p->pending++;   /* the input, until it has been read to the end */
        mpq__pool_push(p, j);
    }
    it->next_it = p->imaps;
    if (p->imaps) p->imaps->prev = it;
    p->imaps = it;
    pthread_mutex_unlock(&p->lock);
    *out = it;
    return 0;
}

MPQDEF int mpq_imap_next(mpq_imap *it, mpq_pool_result *r, int timeout_ms)
{
    mpq_pool *p;
    int64_t deadline = mpq__deadline(timeout_ms);
    int rc = 0, expired = 0;
    if (!it || !r || !(p = it->pool)) return -EINVAL;
    pthread_mutex_lock(&p->lock);
    mpq__pout_free(it->last);
    it->last = NULL;
    for (;;) {
        mpq__pout *o = NULL;
        if (!it->unordered) {
            mpq__pout **at = &it->ring[it->read % it->window];
            if (*at) {
                o = *at;
                *at = NULL;
            }
        } else if (it->rcount) {
            o = it->ring[it->rhead];
            it->ring[it->rhead] = NULL;
            it->rhead = (it->rhead + 1) % it->window;
            it->rcount--;
        }
        if (o) {
            r->id = it->id;
            if (o == &mpq__pout_nomem) {
                r->index = it->unordered ? (size_t)-1 : (size_t)it->read;
                r->error = -ENOMEM;
                r->data = "";
                r->len = 0;
            } else {
                r->index = o->index;
                r->error = o->error;
                r->data = o + 1;
                r->len = o->len;
            }
            it->read++;
            it->last = o;
            if (p->fwait) pthread_cond_signal(&p->fcond);   /* the window has room */
            rc = 1;
            break;
        }
        if (mpq__load32(&it->ended, MPQ__ACQUIRE) && it->read == it->pulled) {
            if (it->src_error && !it->src_told) {   /* the input's own failure, last */
                it->src_told = 1;
                r->id = it->id;
                r->index = (size_t)it->pulled;
                r->error = it->src_error;
                r->data = "";
                r->len = 0;
                rc = 1;
            }
            break;   /* rc 0: the end */
        }
        if (timeout_ms == 0 || expired) {
            rc = timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
            break;
        }
        if (mpq__pool_in_thread(p) || mpq__pool_in_feeder(p)) {
            rc = -EDEADLK;
            break;
        }
        if (deadline < 0) {
            pthread_cond_wait(&it->cond, &p->lock);
        } else {
            struct timespec ts = mpq__timespec(deadline);
            if (pthread_cond_timedwait(&it->cond, &p->lock, &ts) == ETIMEDOUT) expired = 1;   /* one last look */
        }
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

MPQDEF int mpq_imap_progress(const mpq_imap *it, size_t *done, size_t *total)
{
    int ended;
    if (!it) return -EINVAL;
    ended = it->items ? 1 : (int)mpq__load32(&it->ended, MPQ__ACQUIRE);   /* first: then total is final */
    if (done) *done = (size_t)mpq__load64(&it->done, MPQ__RELAXED);
    if (total) *total = it->items ? it->n : (size_t)mpq__load64(&it->pulled, MPQ__RELAXED);
    return ended;
}

MPQDEF int mpq_imap_free(mpq_imap *it)
{
    mpq_pool *p;
    if (!it) return -EINVAL;
    if (!(p = it->pool)) {   /* the pool is gone: only this hold is left */
        mpq__imap_unref(it);
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    mpq__store32(&it->freed, 1, MPQ__RELEASE);
    if (it->prev) it->prev->next_it = it->next_it;
    else p->imaps = it->next_it;
    if (it->next_it) it->next_it->prev = it->prev;
    if (p->fwait) pthread_cond_signal(&p->fcond);   /* its job retires */
    /* Its input (source_user, items) may be freed once this returns: wait
       until the feeder has left it (at most one item's read). */
    while (p->fcur == it && !mpq__pool_in_feeder(p)) pthread_cond_wait(&p->cond, &p->lock);
    mpq__imap_unref(it);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* Waits until every outcome has been reported (pending == 0), until
   `deadline`: 0, -EAGAIN (timeout_ms == 0) or -ETIMEDOUT. */
static int mpq__pool_idle(mpq_pool *p, int64_t deadline, int timeout_ms)
{
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    while (p->pending && rc == 0) {
        if (timeout_ms == 0) {
            rc = -EAGAIN;
        } else if (deadline < 0) {
            pthread_cond_wait(&p->cond, &p->lock);
        } else {
            struct timespec ts = mpq__timespec(deadline);
            if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT && p->pending)
                rc = -ETIMEDOUT;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

MPQDEF int mpq_pool_wait(mpq_pool *p, int timeout_ms)
{
    if (!p) return -EINVAL;
    if (mpq__pool_in_thread(p) || mpq__pool_in_feeder(p)) return -EDEADLK;
    return mpq__pool_idle(p, mpq__deadline(timeout_ms), timeout_ms);
}

/* --- the parent: life cycle -------------------------------------------------------- */

static void mpq__pool_free(mpq_pool *p)
{
    if (p->cmd[0] >= 0) close(p->cmd[0]);
    if (p->cmd[1] >= 0) close(p->cmd[1]);
    if (p->server_fd >= 0) close(p->server_fd);
    if (p->server.pid > 0) mpq_process_destroy(&p->server);
    if (p->tasks) mpq_queue_close(p->tasks);
    if (p->results) mpq_queue_close(p->results);
    if (p->sh) munmap(p->sh, p->sh_len);
    if (p->e) MPQ_FREE(p->e);
    if (p->rbuf) MPQ_FREE(p->rbuf);
    if (p->fbuf) MPQ_FREE(p->fbuf);
    while (p->jobs) {   /* submitted while destroy ran: nobody may */
        mpq__pjob *j = p->jobs;
        p->jobs = j->next;
        mpq__pool_job_free(j);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->ctl);
    pthread_cond_destroy(&p->cond);
    pthread_cond_destroy(&p->fcond);
    MPQ_FREE(p);
}

/* Tells the server to kill its workers and end (a closed socket: it has). */
static void mpq__pool_kill_server(mpq_pool *p)
{
    char c = 'T';
    if (p->cmd[1] >= 0) while (send(p->cmd[1], &c, 1, MSG_NOSIGNAL) < 0 && errno == EINTR) {}
}

/* Waits until the server has ended, then reaps it (once). */
static int mpq__pool_wait_server(mpq_pool *p, int64_t deadline)
{
    for (;;) {
        int left;
        if (mpq__pool_server_gone(p)) break;
        left = mpq__remaining_ms(deadline);
        if (left == 0) return -ETIMEDOUT;
        if (left < 0 || left > MPQ__POOL_SLICE_MS) left = MPQ__POOL_SLICE_MS;
        if (p->server_fd >= 0) {
            mpq__readable(p->server_fd, left);
        } else {
            struct timespec ts;
            ts.tv_sec = 0;
            ts.tv_nsec = 2000000;
            nanosleep(&ts, NULL);
        }
    }
    pthread_mutex_lock(&p->ctl);
    if (!mpq__load32(&p->joined, MPQ__RELAXED)) {
        mpq__store32(&p->joined, 1, MPQ__RELEASE);   /* before the pid is freed */
        mpq_process_join(&p->server, -1);            /* it has ended: at once */
    }
    pthread_mutex_unlock(&p->ctl);
    return 0;
}

MPQDEF int mpq_pool_create(mpq_pool **out, const mpq_pool_config *cfg)
{
    static const mpq_pool_config defaults = { 0, NULL, NULL, 0, 0, 0, 0 };
    mpq_queue_config qc;
    pthread_condattr_t ca;
    sigset_t all, old;
    mpq_pool *p;
    int workers, rc;

    if (!out) return -EINVAL;
    if (!cfg) cfg = &defaults;
    workers = cfg->workers;
    if (workers == 0) {
        long n = mpq_cpu_count();
        workers = n < 1 ? 1 : n > MPQ__POOL_MAX_WORKERS ? MPQ__POOL_MAX_WORKERS : (int)n;
    }
    if (workers < 0 || workers > MPQ__POOL_MAX_WORKERS || cfg->max_arg > MPQ__POOL_MAX_SIZE ||
        cfg->max_result > MPQ__POOL_MAX_SIZE || cfg->backlog > MPQ__Q_MAX_CAP)
        return -EINVAL;
    if (!(p = (mpq_pool *)MPQ_MALLOC(sizeof *p))) return -ENOMEM;
    memset(p, 0, sizeof *p);
    p->workers = workers;
    p->max_tasks = cfg->max_tasks_per_child;
    p->max_arg = cfg->max_arg ? cfg->max_arg : 4096;
    p->max_result = cfg->max_result ? cfg->max_result : 4096;
    p->init = cfg->initializer;
    p->initarg = cfg->initarg;
    p->cmd[0] = p->cmd[1] = p->server_fd = -1;
    p->free_head = UINT32_MAX;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->ctl, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_cond_init(&p->fcond, &ca);
    pthread_condattr_destroy(&ca);
    /* Payload room: a result or a message (with its NUL and padding), an
       imap record; an argument or an imap record. */
    p->rpay = (uint32_t)(MPQ__ALIGN8(p->max_result > MPQ__POOL_MSG ? p->max_result : MPQ__POOL_MSG) + 16);
    p->tpay = (uint32_t)(MPQ__ALIGN8(p->max_arg) + 8);

    p->sh_len = sizeof(mpq__pshared) + (size_t)(workers - 1) * sizeof(mpq__pworker);
    p->sh = (mpq__pshared *)mmap(NULL, p->sh_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p->sh == MAP_FAILED) {
        p->sh = NULL;
        rc = mpq__err();
        goto fail;
    }
    memset(&qc, 0, sizeof qc);
    qc.capacity = cfg->backlog ? cfg->backlog : 1024;
    qc.max_msg = (uint32_t)sizeof(mpq__ptask) + p->tpay;
    if ((rc = mpq_queue_create(&p->tasks, &qc)) != 0) goto fail;
    p->tasks->supervised = 1;   /* dead workers' slots are the server's */
    if (qc.capacity < 64) qc.capacity = 64;
    qc.max_msg = (uint32_t)sizeof(mpq__presult) + p->rpay;
    if ((rc = mpq_queue_create(&p->results, &qc)) != 0) goto fail;
    p->rcap = (size_t)MPQ__POOL_BATCH * qc.max_msg;
    if (p->rcap > ((size_t)1 << 20)) p->rcap = (size_t)1 << 20;
    if (p->rcap < qc.max_msg) p->rcap = qc.max_msg;
    p->fbuf = (char *)MPQ_MALLOC(sizeof(mpq__ptask) + p->tpay);
    if (!(p->rbuf = (char *)MPQ_MALLOC(p->rcap)) || !p->fbuf) {
        rc = -ENOMEM;
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->cmd) != 0) {
        rc = mpq__err();
        goto fail;
    }
    p->parent = getpid();
    {
        mpq_process_config pc;
        memset(&pc, 0, sizeof pc);
        pc.name = "PoolServer";
        if ((rc = mpq_process_start_with(&p->server, mpq__pool_server, p, &pc)) != 0) goto fail;
    }
    close(p->cmd[0]);
    p->cmd[0] = -1;
    if (p->server.pidfd__ >= 0) p->server_fd = fcntl(p->server.pidfd__, F_DUPFD_CLOEXEC, 0);

    for (;;) {   /* until every worker has run its initializer */
        uint32_t r = mpq__load32(&p->sh->ready, MPQ__SEQ_CST);
        int e = (int)mpq__load32((uint32_t *)&p->sh->error, MPQ__SEQ_CST), i, ready = 1;
        for (i = 0; i < workers && ready; i++) {
            uint32_t st = mpq__load32(&p->sh->w[i].state, MPQ__SEQ_CST);
            ready = st != 0 && st != MPQ__W_INIT && st != MPQ__W_INITFAIL;
        }
        if (ready && e == 0) break;
        if (e == 0 && mpq__pool_server_gone(p)) {
            e = (int)mpq__load32((uint32_t *)&p->sh->error, MPQ__SEQ_CST);
            if (e == 0) e = -ECHILD;
        }
        if (e != 0) {
            rc = e;
            goto fail;
        }
        mpq__futex_wait(&p->sh->ready, r, mpq__now_ns() + (int64_t)MPQ__POOL_SLICE_MS * 1000000);
    }

    /* The result thread takes no signals: they stay the program's threads'. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&p->thread, NULL, mpq__pool_thread, p);
    if (rc == 0) {
        p->thread_up = 1;
        rc = -pthread_create(&p->feeder, NULL, mpq__pool_feeder, p);
        p->feeder_up = rc == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) goto fail;
    mpq__store32(&p->sh->started, 1, MPQ__SEQ_CST);
    *out = p;
    return 0;

fail:
    if (p->server.pid > 0) {
        mpq__pool_kill_server(p);
        mpq__pool_wait_server(p, -1);
    }
    if (p->thread_up) {   /* the feeder could not start */
        mpq__store32(&p->stop, 1, MPQ__RELEASE);
        mpq_queue_shutdown(p->results, 0);
        pthread_join(p->thread, NULL);
    }
    mpq__pool_free(p);
    return rc;
}

MPQDEF int mpq_pool_close(mpq_pool *p)
{
    if (!p) return -EINVAL;
    pthread_mutex_lock(&p->lock);
    p->closed = 1;
    mpq__pool_close_tasks(p);   /* or the feeder does, once it has sent all */
    pthread_mutex_unlock(&p->lock);
    return 0;
}

MPQDEF int mpq_pool_join(mpq_pool *p, int timeout_ms)
{
    int64_t deadline = mpq__deadline(timeout_ms);
    int rc = 0;
    if (!p) return -EINVAL;
    if (mpq__pool_in_thread(p) || mpq__pool_in_feeder(p)) return -EDEADLK;
    pthread_mutex_lock(&p->lock);
    rc = p->closed || p->terminated ? 0 : -EINVAL;
    pthread_mutex_unlock(&p->lock);
    if (rc != 0) return rc;
    if (timeout_ms == 0 && !mpq__pool_server_gone(p)) return -EAGAIN;
    if ((rc = mpq__pool_wait_server(p, deadline)) != 0) return rc;
    return mpq__pool_idle(p, deadline, timeout_ms);
}

MPQDEF int mpq_pool_terminate(mpq_pool *p)
{
    int first;
    if (!p) return -EINVAL;
    pthread_mutex_lock(&p->lock);
    first = !p->terminated;
    p->terminated = p->closed = 1;
    if (first) {
        /* Halted at once: the feeder reads no more input from here on. */
        mpq__store32(&p->halted, 1, MPQ__RELEASE);
        if (!p->halt_error) p->halt_error = -ECANCELED;
        mpq__store32(&p->cancel, 1, MPQ__RELEASE);
    }
    pthread_mutex_unlock(&p->lock);
    if (first) {
        mpq_queue_shutdown(p->tasks, 0);
        mpq__pool_kill_server(p);
    }
    /* The result thread fails what is pending with -ECANCELED (a second
       terminate waits for that too); in a callback, it is done here - but
       only the result thread's loop says it is done, once no report of an
       outer fail_all (this callback's caller, maybe) is left. */
    if (mpq__pool_in_thread(p)) {
        if (mpq__load32(&p->cancel, MPQ__ACQUIRE)) mpq__pool_halt(p, -ECANCELED);
    } else if (mpq__pool_in_feeder(p)) {
        /* In an imap's input function: the result thread finishes the
           cancelling once it returns. */
    } else {
        mpq__pool_wake(p);
        pthread_mutex_lock(&p->lock);
        while (mpq__load32(&p->cancel, MPQ__ACQUIRE)) pthread_cond_wait(&p->cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    return mpq__pool_wait_server(p, -1);
}

MPQDEF int mpq_pool_destroy(mpq_pool *p)
{
    if (!p) return -EINVAL;
    if (mpq__pool_in_thread(p) || mpq__pool_in_feeder(p)) return -EDEADLK;
    mpq_pool_terminate(p);
    pthread_mutex_lock(&p->lock);
    p->fstop = 1;
    pthread_cond_signal(&p->fcond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->feeder, NULL);
    mpq__store32(&p->stop, 1, MPQ__RELEASE);
    mpq_queue_shutdown(p->results, 0);
    pthread_join(p->thread, NULL);
    p->thread_up = 0;
    while (p->imaps) {   /* the caller's imaps outlive the pool: they only free */
        mpq_imap *it = p->imaps;
        p->imaps = it->next_it;
        it->pool = NULL;
    }
    mpq__pool_free(p);
    return 0;
}

MPQDEF int mpq_pool_workers(mpq_pool *p, pid_t *pids, size_t cap)
{
    int i, n = 0;
    if (!p || (!pids && cap)) return -EINVAL;
    for (i = 0; i < p->workers; i++) {
        uint32_t pid = mpq__load32(&p->sh->w[i].pid, MPQ__SEQ_CST);
        if (!pid) continue;
        if ((size_t)n < cap) pids[n] = (pid_t)pid;
        n++;
    }
    return n;
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
