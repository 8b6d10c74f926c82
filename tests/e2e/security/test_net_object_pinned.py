"""The network shield's code, libkiln-net.so, is loaded only by a process whose
grant configures a network (or console) shield, and only as the bytes libkiln.so
was built with (docs/runtime.md, "Where the network shield's code lives"): the
host owns the disk, so a changed file is refused before the program runs, naming
the file and both digests. A program without a network shield never opens it
and maps nothing of it."""
import os
import shutil

from netenv import PYTHON, q

SHOW_MAPS = r"""
import sys
maps = open("/proc/self/maps").read().splitlines()
print("ran")
names = {" ".join(l.split()[5:]) for l in maps if "kiln-net" in l}
print("\n".join(sorted(names)) or "no kiln-net")
"""


def policy():
    return f"""\
name: t/pinned
services:
  - name: shielded
    command: [{q(PYTHON)}, -c, {q(SHOW_MAPS)}]
    measurement: [any]
    network:
      default: deny
  - name: plain
    command: [{q(PYTHON)}, -c, {q(SHOW_MAPS)}]
    measurement: [any]
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def runtime_copy(tmp_path, name, tamper=False, net=True):
    """libkiln.so (and libkiln-net.so) copied into a directory of their own:
    libkiln looks for libkiln-net.so next to itself."""
    build = os.path.join(os.environ["KILN_BUILD"], "src", "runtime")
    d = tmp_path / name
    d.mkdir()
    shutil.copy(os.path.join(build, "libkiln.so"), d / "libkiln.so")
    if net:
        shutil.copy(os.path.join(build, "libkiln-net.so"), d / "libkiln-net.so")
    if tamper:
        data = bytearray((d / "libkiln-net.so").read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit of one byte, in the middle
        (d / "libkiln-net.so").write_bytes(bytes(data))
    return {"KILN_RUNTIME_LIB": str(d / "libkiln.so")}


def test_tampered_net_object_is_refused_before_main(net, tmp_path):
    net.apply(policy())
    env = runtime_copy(tmp_path, "tampered", tamper=True)
    p = net.run("t/pinned", "shielded", env=env)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "ran" not in p.stdout
    lines = [l for l in p.stderr.splitlines() if "libkiln-net.so: SHA-256" in l]
    assert len(lines) == 1, p.stderr
    assert str(tmp_path / "tampered" / "libkiln-net.so") in lines[0]
    assert "refusing to load it" in lines[0]
    # Both digests, the file's and the one libkiln was built with.
    digests = [w for w in lines[0].replace(",", " ").split() if len(w) == 64]
    assert len(digests) == 2 and digests[0] != digests[1], lines[0]
    # The same tampered file, a service without a network shield: never read.
    p = net.run("t/pinned", "plain", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["ran", "no kiln-net"], p.stderr


def test_net_object_mapped_only_when_shielded(net, tmp_path):
    net.apply(policy())
    p = net.run("t/pinned", "shielded", env=runtime_copy(tmp_path, "rt"))
    assert p.returncode == 0, p.stdout + p.stderr
    # Mapped from the sealed copy, never by its path on the host's disk.
    assert p.stdout.splitlines() == ["ran", "/memfd:libkiln-net.so (deleted)"], p.stderr
    # Without a network shield, no libkiln-net.so needs to exist at all.
    env = runtime_copy(tmp_path, "missing", net=False)
    p = net.run("t/pinned", "plain", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["ran", "no kiln-net"], p.stderr
    # With one, its absence is a refusal before main, not a program unshielded.
    p = net.run("t/pinned", "shielded", env=env)
    assert p.returncode != 0 and "ran" not in p.stdout, p.stdout + p.stderr
    assert "libkiln-net.so: No such file" in p.stderr, p.stderr
