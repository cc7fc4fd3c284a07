/* Compile check: two MPQ_STATIC copies (static_a.c, static_b.c) linked into
   one program without clashing symbols. */
#define MPQ_STATIC
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

const char *static_a_version(void);
const char *static_a_version(void) { return mpq_version(); }
