"""git and tar on a protected volume: hard links, symlinks, O_TMPFILE-free
atomic renames, many small files (issue 10: git init/add/commit/gc/fsck
--strict with links; tar of a tree with links)."""
from kilnapps import SECRET, need

def runtime_lines(stderr):
    """The runtime's own lines (the CLI's development-mode notice aside)."""
    return [ln for ln in stderr.splitlines()
            if ln.startswith("kiln") and "development mode" not in ln]


GIT_ENV = {"GIT_AUTHOR_NAME": "k", "GIT_AUTHOR_EMAIL": "k@example.org",
           "GIT_COMMITTER_NAME": "k", "GIT_COMMITTER_EMAIL": "k@example.org",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def test_git_with_links(volume):
    need("git")
    v = volume.dir
    script = f"""set -e
cd {v}
git -c init.defaultBranch=main init -q repo
cd repo
echo {SECRET} > secret.txt
mkdir -p src/sub
for i in $(seq 1 40); do echo "line $i" > src/sub/f$i.txt; done
ln -s secret.txt link-to-secret
ln -s src/sub dirlink
git add -A
git commit -q -m one
echo more >> secret.txt
git commit -q -am two
git gc -q
git fsck --strict
echo "commits $(git log --oneline | wc -l)"
echo "link $(git cat-file -p HEAD:link-to-secret) $(git ls-files -s link-to-secret | cut -c1-6)"
echo "dirty $(git status --porcelain | wc -l)"
cd {v}
git clone -q repo clone
cd clone
git fsck --strict
echo "clone $(cat link-to-secret | head -c 8) $(ls dirlink/ | wc -l)"
echo "hardlinked $(find {v}/clone/.git/objects -type f -links +1 | head -n 1 | wc -l)"
"""
    p = volume.run("sh", "-c", script, env=GIT_ENV, check=True)
    assert p.stdout.splitlines() == [
        "commits 2", "link secret.txt 120000", "dirty 0",
        f"clone {SECRET[:8]} 40", "hardlinked 1"], p.stdout + p.stderr
    # The runtime is quiet: git's ENOENTs and EEXISTs are the program's business.
    assert runtime_lines(p.stderr) == [], p.stderr
    volume.assert_no_plaintext()
    # A fresh process on the same volume sees the same repository.
    p = volume.run("git", "-C", v / "repo", "fsck", "--strict", env=GIT_ENV, check=True)


def test_tar_tree_with_links(volume, tmp_path):
    need("tar")
    v = volume.dir
    script = f"""set -e
cd {v}
mkdir -p t/d
echo {SECRET} > t/a
ln t/a t/hard
ln -s a t/sym
ln -s ../a t/d/up
tar cf t.tar t
mkdir x
tar xf t.tar -C x
cd x/t
stat -c '%h %F' a hard
echo "$(readlink sym) $(readlink d/up) $(cat d/up | head -c 8)"
[ "$(stat -c %i a)" = "$(stat -c %i hard)" ] && echo same-inode
tar cf {tmp_path}/out.tar -C {v}/x t
"""
    p = volume.run("sh", "-c", script, check=True)
    assert p.stdout.splitlines() == [
        "2 regular file", "2 regular file", f"a ../a {SECRET[:8]}", "same-inode"], p.stderr
    assert runtime_lines(p.stderr) == [], p.stderr
    volume.assert_no_plaintext()
    # The archive made from the volume, listed outside: the link and the symlinks kept.
    listing = __import__("subprocess").run(["tar", "tvf", tmp_path / "out.tar"],
                                           capture_output=True, text=True, check=True).stdout
    assert "t/hard link to t/a" in listing or "t/a link to t/hard" in listing, listing
    assert "t/sym -> a" in listing and "t/d/up -> ../a" in listing, listing
