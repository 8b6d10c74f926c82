"""coreutils on protected files: cp, cat, sort, tar, gzip (shell pipelines, exec)."""
from kilnapps import SECRET, need


def test_coreutils(volume, tmp_path):
    for prog in ("sh", "cp", "cat", "sort", "tar", "gzip"):
        need(prog)
    src = tmp_path / "input.txt"
    lines = [f"{SECRET}-{i:05d}" for i in range(3000)]
    src.write_text("\n".join(reversed(lines)) + "\n")
    v = volume.dir
    script = f"""set -e
cp {src} {v}/in.txt
sort {v}/in.txt > {v}/sorted.txt
mkdir {v}/arch
cp {v}/sorted.txt {v}/arch/a.txt
cat {v}/in.txt > {v}/arch/b.txt
cd {v}
tar cf {v}/all.tar arch
gzip -k {v}/all.tar
mkdir {v}/out
tar xzf {v}/all.tar.gz -C {v}/out
cmp {v}/out/arch/a.txt {v}/sorted.txt
head -n 2 {v}/out/arch/a.txt
ls {v}
"""
    p = volume.run("sh", "-c", script, check=True)
    out = p.stdout.splitlines()
    assert out[:2] == lines[:2]
    assert out[2:] == ["all.tar", "all.tar.gz", "arch", "in.txt", "out", "sorted.txt"]
    volume.assert_no_plaintext()
    # Reading back in a fresh process.
    p = volume.run("cat", v / "sorted.txt", check=True)
    assert p.stdout.splitlines() == lines


def test_coreutils_tamper(volume, tmp_path):
    need("cat")
    p = volume.run("sh", "-c", f"echo {SECRET} > {volume.dir}/f.txt", check=True)
    volume.tamper_largest()
    p = volume.run("cat", volume.dir / "f.txt")
    assert p.returncode == 1
    assert "Input/output error" in p.stderr
    assert f"{volume.dir}/f.txt: " in p.stderr


def test_working_directory_inside_volume(volume):
    """mkdir -p (fchdir), cd into a volume sub-directory, relative paths in the
    shell and in programs it starts (the virtual cwd travels across exec)."""
    script = f"""set -e
cd {volume.dir}
mkdir -p deep/er/est
cd deep/er
echo {SECRET} > rel.txt
cat rel.txt
/bin/pwd
mv rel.txt moved.txt
ls
python3 -c "import os; print(os.getcwd()); print(open('moved.txt').read().strip())"
cd /
cat {volume.dir}/deep/er/moved.txt
"""
    p = volume.run("sh", "-c", script, check=True)
    d = f"{volume.dir}/deep/er"
    assert p.stdout.splitlines() == [SECRET, d, "est", "moved.txt", d, SECRET, SECRET]
    volume.assert_no_plaintext()
