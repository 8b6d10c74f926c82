/* Statically linked test program: LD_PRELOAD cannot reach it, so `kiln run`
 * must refuse to run it with a volume mounted. */
#include <stdio.h>

int main(void)
{
	puts("static hello");
	return 0;
}
