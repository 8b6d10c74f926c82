/* kiln runtime: the functions libkiln lends the code it keeps out of itself
 * (lent.h): libkiln-net.so and kiln-sload's loader. */
#include "runtime/lent.h"

static void say_line(const char *line)
{
	rt__say("%s", line);
}

const struct rt_lent rt__lent = {
	.raw_syscall = rt__raw_syscall,
	.copy_in = rt__copy_in,
	.copy_out = rt__copy_out,
	.own_fd = rt__own_fd,
	.own_close = rt__own_close,
	.say = say_line,
};
