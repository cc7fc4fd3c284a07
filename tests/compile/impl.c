/* Compile check: mpq.h with its implementation, as C (c99, c11) and as C++
   (the same file built with -x c++). Every public function is referenced. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

static int compile_task(const void *arg, size_t len, void *res, size_t *res_len)
{
    (void)arg;
    (void)len;
    (void)res;
    *res_len = 0;
    return 0;
}
static void compile_cb(void *user, const mpq_pool_result *r) { (void)user; (void)r; }
static void compile_ecb(void *user, const mpq_pool_result *r) { (void)user; (void)r->error; }
static int compile_source(void *user, size_t index, void *item, size_t cap, size_t *len)
{
    (void)user; (void)item; (void)cap;
    *len = 0;
    return index < 2;
}

int main(void)
{
    mpq_shm shm;
    mpq_mutex *m = NULL;
    mpq_process p;
    mpq_shm_config sc;
    memset(&sc, 0, sizeof sc);
    memset(&p, 0, sizeof p);
    sc.size = 64;
    if (mpq_shm_create(&shm, &sc) == 0) mpq_shm_close(&shm);
    (void)mpq_shm_open(&shm, "/mpq-compile-check-none");
    (void)mpq_shm_from_fd(&shm, -1);
    (void)mpq_shm_unlink("/mpq-compile-check-none");
    if (mpq_mutex_create(&m, NULL) == 0) {
        (void)mpq_mutex_lock(m);
        (void)mpq_mutex_unlock(m);
        (void)mpq_mutex_trylock(m);
        (void)mpq_mutex_unlock(m);
        (void)mpq_mutex_timedlock(m, 0);
        (void)mpq_mutex_unlock(m);
        mpq_mutex_close(m);
    }
    (void)mpq_mutex_open(&m, "/mpq-compile-check-none");
    (void)mpq_mutex_init(NULL);
    (void)mpq_mutex_init_recursive(NULL);
    (void)mpq_mutex_locked(NULL);
    (void)mpq_mutex_destroy(NULL);
    {
        mpq_event *e = NULL;
        mpq_sem *s = NULL;
        mpq_cond *c = NULL;
        mpq_barrier *b = NULL;
        if (mpq_event_create(&e, NULL) == 0) {
            (void)mpq_event_set(e);
            (void)mpq_event_clear(e);
            (void)mpq_event_is_set(e);
            (void)mpq_event_wait(e, 0);
            (void)mpq_event_close(e);
        }
        (void)mpq_event_open(&e, "/mpq-compile-check-none");
        if (mpq_sem_create(&s, 1, NULL) == 0) {
            (void)mpq_sem_acquire(s, 0);
            (void)mpq_sem_release(s);
            (void)mpq_sem_value(s);
            (void)mpq_sem_close(s);
        }
        (void)mpq_sem_open(&s, "/mpq-compile-check-none");
        if (mpq_cond_create(&c, NULL) == 0) {
            (void)mpq_cond_wait(c, m, 0);
            (void)mpq_cond_wait_for(c, m, NULL, NULL, 0);
            (void)mpq_cond_notify(c, 1);
            (void)mpq_cond_notify_all(c);
            (void)mpq_cond_close(c);
        }
        (void)mpq_cond_open(&c, "/mpq-compile-check-none");
        if (mpq_barrier_create(&b, 1, NULL) == 0) {
            (void)mpq_barrier_wait(b, 0);
            (void)mpq_barrier_abort(b);
            (void)mpq_barrier_reset(b);
            (void)mpq_barrier_parties(b);
            (void)mpq_barrier_n_waiting(b);
            (void)mpq_barrier_broken(b);
            (void)mpq_barrier_close(b);
        }
        (void)mpq_barrier_open(&b, "/mpq-compile-check-none");
    }
    {
        mpq_dict *d = NULL;
        mpq_list *l = NULL;
        char buf[8];
        size_t len = 0, pos = 0;
        int64_t n = 0;
        if (mpq_dict_create(&d, NULL) == 0) {
            (void)mpq_dict_set(d, "k", 1, "v", 1);
            (void)mpq_dict_get(d, "k", 1, buf, sizeof buf, &len);
            (void)mpq_dict_contains(d, "k", 1);
            (void)mpq_dict_add(d, "n", 1, 1, &n);
            (void)mpq_dict_cas(d, "k", 1, "v", 1, "w", 1);
            (void)mpq_dict_len(d);
            (void)mpq_dict_next(d, &pos, buf, sizeof buf, &len, NULL, 0, NULL);
            (void)mpq_dict_delete(d, "k", 1);
            (void)mpq_dict_clear(d);
            (void)mpq_dict_close(d);
        }
        (void)mpq_dict_open(&d, "/mpq-compile-check-none");
        if (mpq_list_create(&l, NULL) == 0) {
            (void)mpq_list_append(l, "x", 1);
            (void)mpq_list_insert(l, 0, "y", 1);
            (void)mpq_list_get(l, 0, buf, sizeof buf, &len);
            (void)mpq_list_set(l, 0, "z", 1);
            (void)mpq_list_pop(l, -1, buf, sizeof buf, &len);
            (void)mpq_list_len(l);
            (void)mpq_list_clear(l);
            (void)mpq_list_close(l);
        }
        (void)mpq_list_open(&l, "/mpq-compile-check-none");
    }
    {
        mpq_queue *q = NULL;
        const void *msgs[1] = { "x" };
        size_t lens[1] = { 1 }, len = 0;
        char buf[8];
        void *slot = NULL;
        const void *peeked = NULL;
        if (mpq_queue_create(&q, NULL) == 0) {
            (void)mpq_queue_put(q, "x", 1, 0);
            (void)mpq_queue_get(q, buf, sizeof buf, &len, 0);
            (void)mpq_queue_put_batch(q, msgs, lens, 1, 0);
            (void)mpq_queue_get_batch(q, buf, sizeof buf, lens, 1, 0);
            if (mpq_queue_reserve(q, &slot, 0) == 0) (void)mpq_queue_commit(q, slot, 1);
            if (mpq_queue_reserve(q, &slot, 0) == 0) (void)mpq_queue_cancel(q, slot);
            if (mpq_queue_peek(q, &peeked, &len, 0) == 0) (void)mpq_queue_release(q, peeked);
            (void)mpq_queue_count(q);
            (void)mpq_queue_capacity(q);
            (void)mpq_queue_max_msg(q);
            (void)mpq_queue_fileno(q);
            (void)mpq_queue_task_done(q);
            (void)mpq_queue_join(q, 0);
            (void)mpq_queue_unfinished(q);
            (void)mpq_queue_shutdown(q, 0);
            (void)mpq_queue_close(q);
        }
        (void)mpq_queue_open(&q, "/mpq-compile-check-none");
    }
    {
        mpq_conn *a = NULL, *b = NULL;
        mpq_listener *l = NULL;
        char buf[8];
        size_t len = 0;
        void *got_msg = NULL;
        int fd = -1, ready = 0;
        if (mpq_pipe(&a, &b, 1) == 0) {
            (void)mpq_conn_send(a, "x", 1);
            (void)mpq_conn_recv(b, buf, sizeof buf, &len, 0);
            (void)mpq_conn_recv_alloc(b, &got_msg, &len, 0);
            (void)mpq_conn_set_max(b, 0);
            (void)mpq_conn_poll(b, 0);
            (void)mpq_conn_fileno(b);
            (void)mpq_conn_wait(&b, 1, &ready, 0);
            {   /* the initialisers as C and C++ take them */
                mpq_process none = MPQ_PROCESS_INIT;
                mpq_queue *wq = NULL;
                mpq_waitable w[5] = { MPQ_WAIT_CONN(b), MPQ_WAIT_LISTENER(l), MPQ_WAIT_QUEUE(wq),
                                      MPQ_WAIT_PROCESS(&none), MPQ_WAIT_FD(0) };
                (void)mpq_wait(w, 1, 0);
            }
            (void)mpq_conn_send_fd(a, 0);
            (void)mpq_conn_recv_fd(b, &fd, 0);
            {
                mpq_conn *got = NULL;
                pid_t pid;
                uid_t uid;
                gid_t gid;
                (void)mpq_conn_peer(a, &pid, &uid, &gid);
                (void)mpq_conn_send_conn(a, b);
                if (mpq_conn_recv_conn(b, &got, 0) == 0) mpq_conn_close(got);
            }
            mpq_conn_close(a);
            mpq_conn_close(b);
        }
        (void)mpq_conn_from_fd(&a, -1);
        if (mpq_listener_open(&l, "/tmp/mpq-compile-check-sock") == 0) {
            (void)mpq_listener_accept(l, &a, 0);
            mpq_listener_close(l);
        }
        (void)mpq_client(&a, "/tmp/mpq-compile-check-none");
    }
    {
        mpq_pool *pool = NULL;
        mpq_future *f = NULL;
        mpq_pool_config pc;
        pid_t pids[4];
        int x = 0, r = 0;
        size_t len = 0;
        memset(&pc, 0, sizeof pc);
        pc.workers = 1;
        if (mpq_pool_create(&pool, &pc) == 0) {
            (void)mpq_pool_apply(pool, compile_task, &x, sizeof x, &r, sizeof r, &len);
            (void)mpq_pool_apply_async(pool, compile_task, &x, sizeof x, compile_cb, compile_ecb, NULL, NULL);
            if (mpq_pool_submit(pool, compile_task, &x, sizeof x, &f) == 0) {
                (void)mpq_future_wait(f, 0);
                (void)mpq_future_ready(f);
                (void)mpq_future_successful(f);
                (void)mpq_future_get(f, &r, sizeof r, &len, -1);
                (void)mpq_future_id(f);
                (void)mpq_future_progress(f, &len, &len);
                (void)mpq_future_free(f);
            }
            {
                mpq_imap *it;
                mpq_imap_config ic;
                mpq_pool_result res;
                memset(&ic, 0, sizeof ic);
                ic.source = compile_source;
                if (mpq_pool_imap(pool, compile_task, &ic, &it) == 0) {
                    while (mpq_imap_next(it, &res, -1) == 1) (void)res.index;
                    (void)mpq_imap_progress(it, &len, &len);
                    (void)mpq_imap_free(it);
                }
            }
            (void)mpq_pool_wait(pool, -1);
            (void)mpq_pool_fail(-EINVAL, "x %d", x);
            (void)mpq_strerror(MPQ_POOL_KILLED(9));
            (void)mpq_pool_map(pool, compile_task, &x, 1, sizeof x, &r, sizeof r, 0);
            (void)mpq_pool_map_async(pool, compile_task, &x, 1, sizeof x, &r, sizeof r, 0,
                                     compile_cb, compile_ecb, NULL, NULL);
            (void)mpq_pool_workers(pool, pids, 4);
            (void)mpq_pool_close(pool);
            (void)mpq_pool_join(pool, -1);
            (void)mpq_pool_terminate(pool);
            (void)mpq_pool_destroy(pool);
        }
        r = MPQ_POOL_DIED(x) + MPQ_POOL_SIGNAL(x) + MPQ_POOL_STATUS(x) + MPQ_POOL_KILLED(9) + MPQ_POOL_EXITED(1);
        (void)r;
    }
    (void)mpq_process_start(NULL, NULL, NULL);
    (void)mpq_process_join(&p, 0);
    (void)mpq_process_kill(&p, 0);
    (void)mpq_process_alive(&p);
    (void)mpq_process_exitcode(&p);
    (void)mpq_process_destroy(&p);
    {
        mpq_process q = MPQ_PROCESS_INIT;
        mpq_process_config pc = { 1, "compile" };
        pid_t pids[2];
        (void)mpq_process_start_with(NULL, NULL, NULL, &pc);
        (void)mpq_process_sentinel(&q);
        (void)mpq_active_children(pids, 2);
        (void)mpq_current_process_name();
        (void)mpq_parent_process(pids);
        (void)mpq_cpu_count();
    }
    return mpq_version()[0] == MPQ_VERSION_STRING[0] ? 0 : 1;
}
