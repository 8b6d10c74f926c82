/* kiln runtime: the data calls on protected fds (read and write families,
 * sendfile, splice, copy_file_range, lseek, ftruncate, fallocate, syncfs) and
 * the mapping calls (mmap, munmap, mremap, msync). A protected fd is an open
 * of the volume server's plaintext memfd: the calls stay native, the file
 * shield keeps the chunk state around them (shield/data.c, shield/mmap.c). */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "runtime/sys/sys.h"

long rt__sys_data(long nr, const long a[6])
{
	return rt__shield_data(nr, a);
}

long rt__sys_transfer(long nr, const long a[6])
{
	return rt__shield_transfer(nr, a);
}

/* Directory fds: the position in the listing the runtime makes. SEEK_DATA and
 * SEEK_HOLE: the memfd's holes are chunks the server evicted, not holes of the
 * file: the shield answers from the volume's. */
long rt__sys_lseek(long nr, const long a[6])
{
	if (rt_fd_kind((int)a[0]) == RT_FD_DIR)
		return rt__shield_seekdir(a[0], (int64_t)a[1], (int)a[2]);
	if ((a[2] != SEEK_DATA && a[2] != SEEK_HOLE) || rt_fd_kind((int)a[0]) != RT_FD_FILE)
		return rt__raw6(nr, a);
	return rt__shield_seek(a[0], (int)a[2], a[1]);
}

long rt__sys_ftruncate(long nr, const long a[6])
{
	if (a[1] < 0)
		return -EINVAL;
	return rt__shield_ftruncate(a[0], (uint64_t)a[1]);
}

long rt__sys_fallocate(long nr, const long a[6])
{
	if (a[2] < 0 || a[3] <= 0)
		return -EINVAL;
	return rt__shield_fallocate(a[0], (int)a[1], (uint64_t)a[2], (uint64_t)a[3]);
}

long rt__sys_syncfs(long nr, const long a[6])
{
	return rt__shield_syncfs(a[0]);
}

long rt__sys_mmap(long nr, const long a[6])
{
	return rt__shield_mmap(a);
}

/* munmap, mremap and msync name no fd: the shield looks at its mappings only
 * when this process has some. */
long rt__sys_maps(long nr, const long a[6])
{
	return rt__shield_maps(nr, a);
}
