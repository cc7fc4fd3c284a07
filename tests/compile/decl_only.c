/* Compile check: the declarations alone, with no implementation, in a file
   that includes system headers first (as any user file may). */
#include <stdio.h>
#include "../../mpq.h"

int decl_only_uses(void);
int decl_only_uses(void)
{
    mpq_shm_config c = { 0, NULL, 0, 0 };
    mpq_process p;
    (void)c;
    (void)p;
    return MPQ_VERSION_MAJOR;
}
