/* kiln runtime: the st_dev of a volume's files, the same under libkiln and
 * under the supervisor of static programs.
 *
 * With the backing file system's device, pf's small inode numbers collide
 * with real files and between volumes, and everything that tells files apart
 * by (st_dev, st_ino) goes wrong: two PostgreSQL clusters on two volumes
 * derive one SysV shared-memory key and the second refuses to start; tar and
 * cp link detection, find -samefile, du. The major is above the kernel's 12
 * bits, so no real device has it; the minor is a hash of where the volume's
 * store lives (its .kiln directory), the same in every process and every run. */
#include <sys/sysmacros.h>

#include "runtime/runtime.h"

dev_t rt_vol_dev(dev_t store_dev, ino_t store_ino)
{
	uint64_t h = (uint64_t)store_ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)store_dev;

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return makedev(RT_VOL_DEV_MAJOR, (uint32_t)h);
}
