/* Links the two private copies of static_a.c and static_b.c. */
#include <string.h>

const char *static_a_version(void);
const char *static_b_version(void);

int main(void) { return strcmp(static_a_version(), static_b_version()) != 0; }
