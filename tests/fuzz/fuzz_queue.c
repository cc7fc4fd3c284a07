/* fuzz_queue - libFuzzer target: a queue whose shared memory another
   process scribbles on while this one uses it. The input is a program:
   each step a byte picks put, get, peek/release, put_batch, get_batch,
   reserve/commit or cancel, or a write of a byte anywhere in the segment
   (header, cursors, slots, an arena's words and bytes). Every call has timeout 0. However the memory
   was changed, calls must return (an error is fine), never crash, never
   hand out more bytes than the caller's buffer or max_msg. */
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpq_queue *q;
    mpq_queue_config cfg;
    const uint8_t *p = data, *end = data + size;
    const void *held[4];
    int nheld = 0, i;
    static const char text[64] = "the quick brown fox jumps over the lazy dog, 0123456789 ABCDEF";
    if (size < 1 || size > 4096) return 0;
    memset(&cfg, 0, sizeof cfg);
    cfg.capacity = 4u << (p[0] & 1);
    cfg.max_msg = 64;
    cfg.joinable = (p[0] >> 1) & 1;
    if (p[0] & 4) {   /* 16 bytes in a slot, the rest in an arena of 4 chunks */
        cfg.inline_max = 16;
        cfg.arena = 1024;
    }
    p++;
    if (mpq_queue_create(&q, &cfg) != 0) return 0;
    while (p < end) {
        uint8_t op = *p++, arg = p < end ? *p++ : 0;
        char buf[64];
        size_t len = 0, lens[8];
        switch (op % 10) {
        case 0: (void)mpq_queue_put(q, text, arg % 65, 0); break;
        case 1:
            if (mpq_queue_get(q, buf, arg % 65, &len, 0) == 0 && len > arg % 65u) __builtin_trap();
            break;
        case 2:
            if (nheld < 4 && mpq_queue_peek(q, &held[nheld], &len, 0) == 0) {
                if (len > 64) __builtin_trap();
                if (len) (void)((volatile const char *)held[nheld])[len - 1];
                nheld++;
            }
            break;
        case 3:
            if (nheld) (void)mpq_queue_release(q, held[--nheld]);
            break;
        case 4: {
            const void *msgs[8];
            for (i = 0; i < 8; i++) { msgs[i] = text + i; lens[i] = (size_t)((arg + i) % 9); }
            (void)mpq_queue_put_batch(q, msgs, lens, (size_t)(arg % 8) + 1, 0);
            break;
        }
        case 5: {
            int n = mpq_queue_get_batch(q, buf, arg % 65, lens, 8, 0);
            size_t total = 0;
            for (i = 0; i < n; i++) total += lens[i];
            if (n > 8 || total > arg % 65u) __builtin_trap();
            break;
        }
        case 6: {
            void *slot;
            if (mpq_queue_reserve(q, &slot, 0) == 0) {
                memcpy(slot, text, arg % 65);
                if (arg & 0x80) (void)mpq_queue_cancel(q, slot);
                else (void)mpq_queue_commit(q, slot, arg % 65);
            }
            break;
        }
        case 7: {   /* the scribbler: a byte at an offset, in the segment */
            size_t off = ((size_t)arg << 8 | (p < end ? *p++ : 0)) % q->length;
            ((volatile uint8_t *)q->base)[off] = p < end ? *p++ : 0xff;
            break;
        }
        case 8:
            (void)mpq_queue_count(q);
            if (cfg.joinable) { (void)mpq_queue_task_done(q); (void)mpq_queue_join(q, 0); }
            break;
        default:
            if (arg == 0x5a) (void)mpq_queue_shutdown(q, 0);
        }
    }
    while (nheld) (void)mpq_queue_release(q, held[--nheld]);
    mpq_queue_close(q);
    return 0;
}
