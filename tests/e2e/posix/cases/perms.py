"""Permissions decided by mode bits, ownership and the caller's credentials (the
program starts as root; children drop to uid 1000 (owner) and 65534 (other))."""
import os
import stat

from caselib import as_user, base_dir, check, out, res, write_file

OWNER, OTHER = 1000, 65534

base_dir("perms")
write_file("f", b"x" * 10, 0o644)
check("chown_root", os.chown, "f", OWNER, OWNER)
st = os.stat("f")
out("chown_stored", f"{st.st_uid}:{st.st_gid}")

out("chmod_by_other", as_user(OTHER, OTHER, os.chmod, "f", 0o666))
out("chmod_by_owner", as_user(OWNER, OWNER, os.chmod, "f", 0o640))
out("mode_after", oct(stat.S_IMODE(os.stat("f").st_mode)))
out("chown_by_owner_to_other", as_user(OWNER, OWNER, os.chown, "f", OTHER, OTHER))
out("chgrp_by_owner_not_member", as_user(OWNER, OWNER, os.chown, "f", -1, OTHER))
out("utime_set_by_other", as_user(OTHER, OTHER, os.utime, "f", (1, 1)))
out("utime_now_by_other_no_write", as_user(OTHER, OTHER, os.utime, "f", None))
out("truncate_by_other", as_user(OTHER, OTHER, os.truncate, "f", 0))

write_file("secret", b"s", 0o600)
res(os.chown, "secret", OWNER, OWNER)
out("open_unreadable", as_user(OTHER, OTHER, lambda: os.close(os.open("secret", os.O_RDONLY))))
out("open_unwritable", as_user(OTHER, OTHER, lambda: os.close(os.open("f", os.O_WRONLY))))
out("access_w_other", as_user(OTHER, OTHER, os.access, "f", os.W_OK))
out("access_r_owner", as_user(OWNER, OWNER, os.access, "secret", os.R_OK))
out("size_unchanged", os.stat("f").st_size)

os.mkdir("private", 0o700)
write_file("private/inner", b"i")
res(os.chown, "private", OWNER, OWNER)
out("list_private_dir", as_user(OTHER, OTHER, lambda: len(os.listdir("private"))))
out("open_in_private_dir",
    as_user(OTHER, OTHER, lambda: os.close(os.open("private/inner", os.O_RDONLY))))
out("stat_in_private_dir", as_user(OTHER, OTHER, lambda: os.stat("private/inner").st_size))
out("list_private_dir_owner", as_user(OWNER, OWNER, lambda: len(os.listdir("private"))))

os.mkdir("ro", 0o755)
write_file("ro/victim", b"v")
res(os.chown, "ro", OWNER, OWNER)
out("create_in_ro_dir", as_user(OTHER, OTHER, lambda: write_file("ro/new")))
out("mkdir_in_ro_dir", as_user(OTHER, OTHER, os.mkdir, "ro/sub"))
out("rename_in_ro_dir", as_user(OTHER, OTHER, os.rename, "ro/victim", "ro/moved"))
out("unlink_in_ro_dir", as_user(OTHER, OTHER, os.unlink, "ro/victim"))
out("victim_still_there", os.path.exists("ro/victim") and not os.path.exists("ro/moved"))
out("rename_out_of_ro_dir", as_user(OTHER, OTHER, os.rename, "ro/victim", "stolen"))
out("create_in_ro_dir_owner", as_user(OWNER, OWNER, lambda: write_file("ro/new")))

os.mkdir("sticky")
os.chmod("sticky", 0o1777)
out("create_in_sticky_owner", as_user(OWNER, OWNER, lambda: write_file("sticky/mine")))
out("unlink_in_sticky_by_other", as_user(OTHER, OTHER, os.unlink, "sticky/mine"))
out("rename_in_sticky_by_other", as_user(OTHER, OTHER, os.rename, "sticky/mine",
                                         "sticky/theirs"))
out("mine_still_there", os.path.exists("sticky/mine"))
out("unlink_in_sticky_by_owner", as_user(OWNER, OWNER, os.unlink, "sticky/mine"))
out("sticky_mode", oct(stat.S_IMODE(os.stat("sticky").st_mode)))
out("setgid_dir_inherit", res(lambda: (os.mkdir("sg"), res(os.chown, "sg", 0, OWNER),
                                       os.chmod("sg", 0o2775), write_file("sg/x"),
                                       os.stat("sg/x").st_gid)[-1]))
