"""Attack: a volume version used twice (the fix of 68ed31b, end to end).

The host holds the volume's files and sits between the workload and the CAS
that keeps the volume's trusted version. It cuts the workload off from the CAS
while a commit is under way: pf has already written the new metadata, sealed
with the next version X, to .kiln/meta.tmp (written while X's prepare is on its
way, so the rename only waits for it), the prepare fails, the commit does not
complete. The host copies the volume directory. The CAS comes back and the
program commits other content, acknowledged. Had that commit used X again, the
host could put its copy back with meta.tmp renamed to meta: a metadata of
version X, the version the CAS holds as committed, so the rollback check would
accept the volume as the program last left it, which it is not. A version is
never used twice (docs/fs.md, "Rollback protection"): the acknowledged commit
went above X, and both `kiln run` and `kiln fs cat` (with the version the CAS
holds) refuse the copy as rolled back.

The pf-level test is tests/unit/test_pf.c test_version_never_reused, the CAS's
prepare rule is in tests/e2e/test_cas.py."""
import errno
import json
import os
import re
import select
import subprocess
import time

from cas_fixtures import Workload
from cas_proxy import CasProxy
from kilnenv import wait_server_gone

# The program: with ROLE "attack" it takes the test's steps over two FIFOs
# (a line each way per step); with "show" it prints what the volume holds.
APP = r"""
import os, sys
d = os.environ["DATA"]
role = open(os.environ["ROLE"]).read().strip()
if role == "show":
    for name in sorted(os.listdir(d)):
        print(name, open(os.path.join(d, name)).read())
    sys.exit(0)
to_test = open(os.environ["TO_TEST"], "w", buffering=1)
to_app = open(os.environ["TO_APP"])
fd = os.open(os.path.join(d, "base.txt"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

def put(name, data):
    f = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(f, data)
        os.fsync(f)
    finally:
        os.close(f)

def outcome(call):
    try:
        call()
        return "ok"
    except OSError as e:
        return "errno %d" % e.errno

# base: a file written and synced. cut: a chmod and a new file (its fsync
# commits a new metadata: the commit the host cuts; a new file alone would be a
# commit log record, written only after its prepare, and a chmod is not one).
# ack: the first file rewritten and synced on the descriptor kept open (one
# commit). end: exit.
steps = {
    "base": lambda: (os.write(fd, b"BASE"), os.fsync(fd)),
    "cut": lambda: (os.fchmod(fd, 0o640), put("cut.txt", b"CUT")),
    "ack": lambda: (os.pwrite(fd, b"ACK!", 0), os.fsync(fd)),
}
for step in ("base", "cut", "ack"):
    if step != "base":
        assert to_app.readline().strip() == step
    to_test.write(step + " " + outcome(steps[step]) + "\n")
assert to_app.readline().strip() == "end"
"""

POLICY = """\
name: acme/reuse
predecessor: null
access: {{read: [owner], update: [owner]}}
volumes:
  - {{name: data}}
services:
  - name: app
    command: [{python}, -c, {app}]
    environment: {{DATA: {data}, ROLE: {role}, TO_TEST: {to_test}, TO_APP: {to_app}}}
    mounts:
      - {{volume: data, path: {data}}}
    measurement: [any]
security:
  tee: [sim]
  allow_insecure_sim: true
"""


class Host:
    """The host: the volume directory, the program's launch through a proxy it
    controls in front of the CAS, and the two FIFOs of the attack's steps."""

    def __init__(self, kiln, cas, owner, tmp_path):
        self.cas, self.tmp = cas, tmp_path
        self.data = tmp_path / "data"
        self.store = self.data / ".kiln"
        self.role = tmp_path / "role"
        self.to_test, self.to_app = tmp_path / "to_test", tmp_path / "to_app"
        for f in (self.to_test, self.to_app):
            os.mkfifo(f)
        self.python = python = os.path.realpath("/usr/bin/python3")
        (tmp_path / "p.yaml").write_text(POLICY.format(
            python=python, app=json.dumps(APP), data=self.data, role=self.role,
            to_test=self.to_test, to_app=self.to_app))
        kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)
        self.proxy = CasProxy(cas.port)

    def launch(self, role):
        self.role.write_text(role)
        return subprocess.Popen([self.cas.kiln_bin, "run", "--cas", self.proxy.url,
                                 "--cas-ca", self.cas.ca_file, "--session", "acme/reuse",
                                 "--service", "app", "--tee", "sim", "--", self.python],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def show(self):
        p = self.launch("show")
        out, err = p.communicate(timeout=120)
        return p.returncode, out, err

    def copy_store(self):
        """The volume's files (not the running volume server's .kiln/server
        and server.log)."""
        return {f.name: f.read_bytes() for f in self.store.iterdir()
                if f.is_file() and not f.name.startswith("server")}

    def put_back(self, files):
        wait_server_gone(self.data)
        for f in self.store.iterdir():
            f.unlink()
        for name, data in files.items():
            (self.store / name).write_bytes(data)


class Steps:
    """The test's ends of the FIFOs (opened read-write: never blocks, and a
    program that died is seen as a timeout with its exit status)."""

    def __init__(self, host, proc):
        self.proc = proc
        self.rd = os.open(host.to_test, os.O_RDWR)
        self.wr = os.open(host.to_app, os.O_RDWR)
        self.buf = b""

    def said(self, timeout=60):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            r, _, _ = select.select([self.rd], [], [], 0.2)
            if not r and (self.proc.poll() is not None or time.monotonic() > deadline):
                self.proc.kill()
                out, err = self.proc.communicate()
                raise AssertionError(f"no answer from the program (exit "
                                     f"{self.proc.returncode}):\n{out}\n{err}")
            if r:
                self.buf += os.read(self.rd, 4096)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def go(self, step):
        os.write(self.wr, (step + "\n").encode())

    def close(self):
        os.close(self.rd)
        os.close(self.wr)


def workload_view(cas, tmp_path):
    """What a holder of the volume's key and of the CAS's word sees: attest
    (sim) for the service, which gives the volume key and its tags."""
    w = Workload(cas, tmp_path)
    status, r = w.attest("acme/reuse", "app")
    assert status == 200, r
    (vol,) = r["volumes"]
    key = tmp_path / "vol.key"
    key.write_text(vol["key"])
    status, tag = w.get(f"/v1/volumes/{vol['id']}/tag")
    assert status == 200, tag
    return key, tag


def fs_cat(kiln, host, key, tag, path):
    """kiln fs cat trusting the versions the CAS holds (its version file)."""
    vf = host.tmp / "cas.version"
    vf.write_text(f"{tag['committed']} {tag['prepared'] or tag['committed']}\n")
    return kiln("fs", "cat", host.data, path, "--key-file", key, "--version-file", vf)


ROLLED_BACK = re.compile(r"volume rolled back: found version (\d+), expected (\d+)$")


def rolled_back(stderr):
    """The "found version X, expected Y" of the one refusal line, X < Y."""
    m = [ROLLED_BACK.search(line) for line in stderr.splitlines()]
    m = [x for x in m if x]
    assert len(m) == 1, stderr
    found, expected = map(int, m[0].groups())
    assert found < expected, stderr
    return found, expected


def test_cut_commit_put_back_is_rolled_back(kiln, cas, cas_identity, tmp_path):
    owner, _ = cas_identity("owner")
    host = Host(kiln, cas, owner, tmp_path)
    try:
        proc = host.launch("attack")
        steps = Steps(host, proc)
        try:
            assert steps.said() == "base ok"
            # Cut off from the CAS: the new file's commit (meta.tmp written,
            # its prepare refused on the way) does not complete.
            host.proxy.refusing = True
            steps.go("cut")
            assert steps.said() == f"cut errno {errno.EIO}"
            assert host.proxy.refused == 1
            host.proxy.refusing = False
            cut = host.copy_store()
            assert "meta.tmp" in cut  # sealed with the cut commit's version
            # The program's next commit is acknowledged: the CAS holds it.
            steps.go("ack")
            assert steps.said() == "ack ok"
            # Cut off again: whatever the program's exit might commit does
            # not move the CAS above the acknowledged version.
            host.proxy.refusing = True
            steps.go("end")
        finally:
            steps.close()
        out, err = proc.communicate(timeout=120)
        host.proxy.refusing = False
        assert proc.returncode == 0, err
        assert f"kiln: {host.data}/cut.txt: cannot reach the CAS at {host.proxy.url}" in err
        wait_server_gone(host.data)

        # The honest volume, as the CAS's versions say: what the program was
        # told is there (a kiln run would commit: the CAS would move on).
        key, tag = workload_view(cas, tmp_path)
        c = fs_cat(kiln, host, key, tag, "base.txt")
        assert (c.returncode, c.stdout, c.stderr) == (0, "ACK!", "")
        honest = host.copy_store()

        # The host puts the cut commit's volume back, meta.tmp in place of
        # meta: it would show "BASE", which the program rewrote, and was told
        # so, after the cut commit.
        host.put_back(cut)
        os.replace(host.store / "meta.tmp", host.store / "meta")
        c = fs_cat(kiln, host, key, tag, "base.txt")
        assert (c.returncode, c.stdout) == (1, ""), c.stderr
        found, expected = rolled_back(c.stderr)
        assert expected == tag["committed"]
        assert c.stderr.startswith("kiln: volume rolled back"), c.stderr
        rc, out, err = host.show()
        assert (rc, out) == (1, ""), err
        assert rolled_back(err) == (found, expected)
        assert f"kiln: file shield: volume {host.data}: volume rolled back" in err
        # The volume server that refused it left nothing behind.
        assert not (host.store / "server").exists()

        # The honest volume back: the program sees it.
        host.put_back(honest)
        rc, out, err = host.show()
        assert (rc, out) == (0, "base.txt ACK!\ncut.txt CUT\n"), err
    finally:
        host.proxy.close()
