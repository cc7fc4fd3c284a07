/* Compile check: two MPQ_STATIC copies (this is the second) linked into
   one program without clashing symbols. */
#define MPQ_STATIC
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

const char *static_b_version(void);
const char *static_b_version(void) { return mpq_version(); }
