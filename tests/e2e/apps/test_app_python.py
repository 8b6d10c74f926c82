"""python3 under kiln run: a secret from the environment, open() and sqlite3."""
from kilnapps import SECRET, need

SCRIPT = r"""
import os, sqlite3, sys
d = sys.argv[1]
secret = os.environ["APP_SECRET"]
with open(os.path.join(d, "notes.txt"), "w") as f:
    f.write(secret + "\n" * 3)
os.makedirs(os.path.join(d, "sub"), exist_ok=True)
with open(os.path.join(d, "sub", "big.bin"), "wb") as f:
    for i in range(256):
        f.write((secret + str(i)).encode() * 64)
con = sqlite3.connect(os.path.join(d, "py.db"))
con.execute("CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v TEXT)")
with con:
    con.executemany("INSERT OR REPLACE INTO kv VALUES(?, ?)",
                    [(f"k{i}", secret + str(i)) for i in range(2000)])
con.close()
print("written", sorted(os.listdir(d)))
"""

CHECK = r"""
import os, sqlite3, sys
d = sys.argv[1]
print(open(os.path.join(d, "notes.txt")).read().strip())
print(os.path.getsize(os.path.join(d, "sub", "big.bin")))
con = sqlite3.connect(os.path.join(d, "py.db"))
print(con.execute("SELECT count(*), max(v) FROM kv").fetchone())
"""


def test_python_open_and_sqlite(volume):
    py = need("python3")
    p = volume.run(py, "-c", SCRIPT, volume.dir, env={"APP_SECRET": SECRET}, check=True)
    assert "written ['notes.txt', 'py.db', 'sub']" in p.stdout
    p = volume.run(py, "-c", CHECK, volume.dir, check=True)
    lines = p.stdout.splitlines()
    assert lines[0] == SECRET
    assert int(lines[1]) == sum(len((SECRET + str(i)).encode()) * 64 for i in range(256))
    assert lines[2] == f"(2000, '{SECRET}999')"
    volume.assert_no_plaintext()


def test_python_mount_elsewhere(volume, tmp_path):
    """MOUNT=DIR:KEY shows the plaintext at a path that does not exist on disk."""
    py = need("python3")
    mnt = tmp_path / "plain"
    code = ("import sys,os; p=sys.argv[1]+'/f.txt'; open(p,'w').write(sys.argv[2]);"
            "print(open(p).read(), os.listdir(sys.argv[1]))")
    p = volume.run(py, "-c", code, mnt, SECRET, mount=mnt, check=True)
    assert p.stdout.strip() == f"{SECRET} ['f.txt']"
    assert not mnt.exists()
    volume.assert_no_plaintext()
