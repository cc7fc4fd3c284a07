/* Compile check that must FAIL under strict -std=c99 on glibc: a system
   header comes before the implementation, so the feature macros it needs
   are off. mpq.h must stop with its own clear #error, not with a pile of
   implicit declarations. (With -D_GNU_SOURCE it compiles.) */
#include <stdio.h>
#define MPQ_IMPLEMENTATION
#include "../../mpq.h"

int main(void) { return 0; }
