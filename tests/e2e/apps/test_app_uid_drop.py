"""A process of the workload that drops its privileges before it first uses
the volume (fork, then setuid: nginx's workers, a privilege-separated
daemon) reaches the volume server like any other: the server's socket name is
found once, by the first connection, since the volume's backing directory
(0700, root) is no longer visible to the new uid. The volume's own
permissions then decide, as for any other caller. Was: EIO and 'volume DIR:
Permission denied' for every call of such a process."""
from kilnapps import SECRET

DROP = r"""
import os, sys
vol = sys.argv[1]
pid = os.fork()
if pid == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    for name in ("open.txt", "private.txt"):
        try:
            print(name, "read:", open(os.path.join(vol, name)).read())
        except OSError as e:
            print(name, "errno:", e.errno)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


def test_child_that_drops_uid_before_first_use(volume):
    prep = ("import os, sys\n"
            "v = sys.argv[1]\n"
            "open(os.path.join(v, 'open.txt'), 'w').write(sys.argv[2])\n"
            "os.chmod(os.path.join(v, 'open.txt'), 0o644)\n"
            "open(os.path.join(v, 'private.txt'), 'w').write('no')\n"
            "os.chmod(os.path.join(v, 'private.txt'), 0o600)\n")
    volume.run("python3", "-c", prep, volume.dir, SECRET, check=True)
    p = volume.run("python3", "-c", DROP, volume.dir, check=True)
    assert p.stdout.splitlines() == [f"open.txt read: {SECRET}", "private.txt errno: 13",
                                     "child exit 0"], p.stdout + p.stderr
    assert "Permission denied" not in p.stderr, p.stderr
    volume.assert_no_plaintext()
