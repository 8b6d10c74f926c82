/* Statically linked test program: LD_PRELOAD cannot reach it, so `kiln run`
 * refuses it with --cas (attestation needs libkiln inside the process). */
#include <stdio.h>

int main(void)
{
	puts("static hello");
	return 0;
}
