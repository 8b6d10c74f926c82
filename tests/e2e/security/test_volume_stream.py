"""Attacks on the volume server's cold-read hand-over, RT_OP_STREAM (docs/runtime.md
"What each process holds", docs/fs.md "Cold reads in the program's process"): the
server hands a file's data key, its id and a read-only O_DIRECT descriptor of its
backing file, plus the tags of chunks, to a process that opened that file for
reading — to nobody else. A peer here holds the volume key (it passed the
handshake: any process of the workload can), and tries to get more than that:
the key of a file it opened only for writing, of a file it does not hold, of a
file it inherited (ATTACH), or tags outside the file, or a flood of chunks. Each
is refused with an errno, the server keeps serving the workload, and nothing it
hands out can write the store."""
import fcntl
import hashlib
import hmac
import os
import re
import socket
import struct
import sys

import pytest

from kilnenv import ROOT
import test_volume_server as volume_server
from test_volume_server import hkdf, msg, sock_name, volume_key

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))
from kilnapps import Volume  # noqa: E402


def proto_consts():
    """Op numbers and limits from proto.h itself, so a reordered enum cannot make
    this test speak another op than it means."""
    text = (ROOT / "src" / "runtime" / "shield" / "proto.h").read_text()
    body = text[text.index("RT_OP_HELLO = 1"):text.index("RT_OP_MAX_")]
    names = re.findall(r"\b(RT_OP_[A-Z]+)\b\s*[,=]", body)
    ops = {name: i + 1 for i, name in enumerate(names)}
    assert ops["RT_OP_HELLO"] == 1 and ops["RT_OP_AUTH"] == 2, names
    key_flag = int(re.search(r"#define RT_STREAM_KEY (0x[0-9a-f]+)u", text).group(1), 16)
    smax = int(re.search(r"#define RT_STREAM_MAX (\d+)u", text).group(1))
    return ops, key_flag, smax


OPS, STREAM_KEY, STREAM_MAX = proto_consts()
EACCES, EBADF, EINVAL = 13, 9, 22
CHUNKS = 300  # the big file: 300 chunks of 4 KiB or more


class Peer:
    """A client of the volume server that proves the key, as libkiln does."""

    def __init__(self, volume):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(30)
        self.s.connect(sock_name(volume))
        ns = self.s.recv(65536)[-32:]
        nc = os.urandom(32)
        km = hkdf(volume_key(volume), b"kiln-shield", b"kiln-shield-auth-v1")
        mac = hmac.new(km, b"client" + ns + nc + struct.pack("<I", os.getpid()),
                       hashlib.sha256).digest()
        self.s.send(msg(OPS["RT_OP_AUTH"], 1, os.getpid(), nc + mac))
        status, body, fds = self.reply()
        assert status == 0 and len(body) == 32, (status, body)
        assert hmac.compare_digest(body, hmac.new(km, b"server" + nc + ns,
                                                  hashlib.sha256).digest())
        for fd in fds:
            os.close(fd)

    def reply(self):
        data, fds, _, _ = socket.recv_fds(self.s, 1 << 17, 4)
        assert data, "the server closed the connection"
        status, size = struct.unpack("<iI", data[:8])
        assert size == len(data) - 8
        return status, data[8:], fds

    def call(self, op, flags=0, mode=0, id=0, a=0, b=0, path=None):
        body = struct.pack("<IIIIQQQ", flags, mode, os.getpid(), 0, id, a, b)
        if path is not None:
            # A path, then the caller's credentials: uid, gid, no groups.
            body += path.encode() + b"\0" + struct.pack("<III", os.getuid(), os.getgid(), 0)
        self.s.send(struct.pack("<II", OPS[op], len(body)) + body)
        return self.reply()

    def open(self, path, flags):
        status, body, fds = self.call("RT_OP_OPEN", flags=flags, mode=0o600, path=path)
        assert status == 0, (path, status, body)
        for fd in fds:
            os.close(fd)
        return struct.unpack("<Q", body[:8])[0]

    def stream(self, fid, first, count, flags=0):
        return self.call("RT_OP_STREAM", flags=flags, id=fid, a=first, b=count)

    def close(self):
        self.s.close()


def start_holder(volume):
    """The workload of test_volume_server with a large file `big` too, fsynced
    (so the server's pf holds its chunks)."""
    return volume_server.start_holder(volume, setup=(
        "with open(p + '/big', 'wb') as f:\n"
        f"    f.write(bytes(range(256)) * {CHUNKS * 16}); f.flush(); os.fsync(f.fileno())\n"))


def still_serves(holder, word):
    holder.stdin.write(word + "\n")
    holder.stdin.flush()
    return holder.stdout.readline().strip()


@pytest.fixture
def volume(kiln_bin, tmp_path):
    return Volume(kiln_bin, tmp_path)


def in_child(fn):
    """Run fn in a forked process: the server tells processes apart by their
    peer credentials (SO_PEERCRED), and a hold belongs to a process, so each
    attacker must be a process of its own. Returns fn's result (a repr'd
    literal) or raises with the child's error."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            out = "ok " + repr(fn())
        except BaseException as e:  # report anything, never return into pytest
            out = "error " + repr(e)
        os.write(wfd, out.encode())
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    assert out.startswith("ok "), out
    return eval(out[3:])  # noqa: S307 - our own child's repr of ints and tuples


def writer_only(volume):
    """Opened `big` write-only: no key, no tags, no descriptor; nor after
    ATTACH, which an inherited descriptor uses (such a process reads through
    fills)."""
    w = Peer(volume)
    fid = w.open("big", os.O_WRONLY)
    got = [w.stream(fid, 0, 1, flags) for flags in (STREAM_KEY, 0)]
    status, _, fds = w.call("RT_OP_ATTACH", id=fid)
    for fd in fds:
        os.close(fd)
    got.append((status, b"", []))
    got += [w.stream(fid, 0, 1, flags) for flags in (STREAM_KEY, 0)]
    w.close()
    return [(s, len(b), len(f)) for s, b, f in got]


def attach_only(volume, fid):
    """Never opened the file: guessed ids get EBADF; held through ATTACH only
    (an inherited descriptor), still no hand-over."""
    p = Peer(volume)
    got = [p.stream(g, 0, 1, STREAM_KEY) for g in (fid, fid + 1, fid - 1, 0, 2**64 - 1)]
    status, _, fds = p.call("RT_OP_ATTACH", id=fid)
    for fd in fds:
        os.close(fd)
    got.append((status, b"", []))
    got.append(p.stream(fid, 0, 1, STREAM_KEY))
    p.close()
    return [(s, len(b), len(f)) for s, b, f in got]


def test_stream_hand_over_only_to_readers(volume):
    holder = start_holder(volume)
    r = None
    try:
        r = Peer(volume)
        rid = r.open("big", os.O_RDONLY)

        # 1. A process that opened the file write-only.
        assert in_child(lambda: writer_only(volume)) == \
            [(-EACCES, 0, 0)] * 2 + [(0, 0, 0)] + [(-EACCES, 0, 0)] * 2

        # 2. and 3. A process that does not hold it, then holds it by ATTACH.
        got = in_child(lambda: attach_only(volume, rid))
        assert got == [(-EBADF, 0, 0)] * 5 + [(0, 0, 0), (-EACCES, 0, 0)], got

        # 4. The reader, out of the file's bounds and flooding: refused, never
        # answered with bytes past the file's tags.
        for first, count in ((0, STREAM_MAX + 1), (0, 2**32 + 1), (0, 2**64 - 1),
                             (CHUNKS * 64, 1), (2**64 - 1, 1), (2**64 - 2, 2**63),
                             (1, 2**64 - 1), (CHUNKS - 1, 2), (0, 0)):
            status, body, fds = r.stream(rid, first, count, STREAM_KEY)
            assert status in (-EACCES, -EINVAL) and body == b"" and fds == [], \
                (first, count, status, len(body))

        # 5. The reader's own hand-over, and what it can do with it.
        status, body, fds = r.stream(rid, 0, 8, STREAM_KEY)
        assert status == 0 and len(fds) == 1, (status, len(body), fds)
        dfd = fds[0]
        try:
            fl = fcntl.fcntl(dfd, fcntl.F_GETFL)
            # Read-only: the descriptor reads slots, it cannot write the store.
            assert fl & os.O_ACCMODE == os.O_RDONLY, oct(fl)
            assert fl & os.O_DIRECT, oct(fl)
            with pytest.raises(OSError):
                os.pwrite(dfd, b"\0" * 4096, 0)
            where = os.readlink(f"/proc/self/fd/{dfd}")
            assert os.path.dirname(where) == str(volume.dir / ".kiln"), where
            assert os.fstat(dfd).st_size > CHUNKS * 4096
        finally:
            os.close(dfd)
        # Tags alone (no KEY flag) cover exactly the chunks asked for, to the
        # file's last chunk.
        status, body, fds = r.stream(rid, 3, 5)
        assert status == 0 and len(body) == 5 * 16 and fds == [], (status, len(body))
        status, body, fds = r.stream(rid, CHUNKS - 1, 1)
        assert status == 0 and len(body) == 16, (status, len(body))

        # 6. After RELEASE the process holds nothing: EBADF again.
        status, _, _ = r.call("RT_OP_RELEASE", id=rid)
        assert status == 0
        status, body, fds = r.stream(rid, 0, 1, STREAM_KEY)
        assert (status, body, fds) == (-EBADF, b"", []), status

        # The workload was served throughout.
        assert still_serves(holder, "two") == "onetwo"
    finally:
        if r:
            r.close()
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0, holder.stderr.read()
    # Expected refusals are results, not incidents: the server does not log them.
    log = volume.dir / ".kiln" / "server.log"
    text = log.read_text() if log.exists() else ""
    assert "stream" not in text.lower(), text
    assert volume.run("cat", f"{volume.dir}/a", check=True).stdout == "onetwo"


WSTREAM_DONE, WSTREAM_CANCEL = 0x2, 0x4


def test_sealed_write_only_for_a_writer(volume):
    """RT_OP_WSTREAM (a program sealing and writing slots of a file itself:
    docs/runtime.md "What each process holds") is refused to a process that did
    not open the file for writing; tags without a reservation are refused; a
    writer that reserves, writes into the slot and goes away has its
    reservation cancelled: the workload's commits go on, the file stays empty,
    the volume verifies."""
    import subprocess
    text = (ROOT / "src" / "runtime" / "shield" / "proto.h").read_text()
    assert f"#define RT_WSTREAM_DONE {WSTREAM_DONE:#x}u" in text
    assert f"#define RT_WSTREAM_CANCEL {WSTREAM_CANCEL:#x}u" in text
    holder = start_holder(volume)
    try:
        p = Peer(volume)
        ro = p.open("a", os.O_RDONLY)
        status, body, fds = p.call("RT_OP_WSTREAM", flags=STREAM_KEY, id=ro, a=0, b=1)
        assert status == -EACCES and body == b"" and fds == [], status
        # Tags for chunks nobody reserved: refused, nothing recorded.
        rw = p.open("b", os.O_RDWR | os.O_CREAT)
        body = struct.pack("<IIIIQQQ", WSTREAM_DONE, 0, os.getpid(), 0, rw, 0, 1) + b"\1" * 16
        p.s.send(struct.pack("<II", OPS["RT_OP_WSTREAM"], len(body)) + body)
        status, _, _ = p.reply()
        assert status == -EINVAL, status
        # A real reservation, then the connection goes: cancelled.
        status, body, fds = p.call("RT_OP_WSTREAM", flags=STREAM_KEY, id=rw, a=0, b=1)
        assert status == 0 and len(fds) == 1, status
        os.pwrite(fds[0], b"debris" * 1000, 64)  # slot 0 of b: a dying writer's
        os.close(fds[0])
        p.close()
        assert still_serves(holder, "two") == "onetwo"  # an append and its commit
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert volume.run("cat", f"{volume.dir}/b", check=True).stdout == ""
    v = subprocess.run([volume.kiln_bin, "fs", "verify", str(volume.dir), "--key-file",
                        str(volume.key)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
