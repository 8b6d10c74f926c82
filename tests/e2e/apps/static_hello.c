/* Statically linked test program: LD_PRELOAD cannot reach it, so `kiln run`
 * runs it natively (no volume, no CAS) or supervised (docs/runtime.md). */
#include <stdio.h>

int main(void)
{
	puts("static hello");
	return 0;
}
