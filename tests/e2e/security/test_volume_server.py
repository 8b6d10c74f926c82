"""Attacks on the file shield's volume server (src/runtime/shield/, docs/runtime.md
"The volume server"): its socket is an abstract Unix name anyone on the host can
reach. A squatter that takes the name first, a peer that sends garbage, and a peer
that does not hold the volume key must learn nothing, be refused with one log
line, and never stop the workload."""
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "apps"))
from kilnapps import SECRET, Volume, need  # noqa: E402


def hkdf(key, salt, info):
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def volume_key(volume):
    """As cli_volume_key_read: 32 raw bytes as they are (a raw key may begin or
    end with a whitespace byte, so never strip it), else 64 hex digits."""
    raw = volume.key.read_bytes()
    return raw if len(raw) == 32 else bytes.fromhex(raw.decode())


def sock_name(volume):
    """The abstract name libkiln derives from the key and DIR/.kiln (auth.c)."""
    k = hkdf(volume_key(volume), b"kiln-shield", b"kiln-shield-name-v1")
    st = os.stat(volume.dir / ".kiln")
    mac = hmac.new(k, struct.pack("<QQ", st.st_dev, st.st_ino), hashlib.sha256).digest()
    return "\0kiln-shield-" + mac[:16].hex()


def msg(op, flags=0, pid=0, tail=b""):
    body = struct.pack("<IIIIQQQ", flags, 0, pid, 0, 0, 0, 0) + tail
    return struct.pack("<II", op, len(body)) + body


@pytest.fixture
def volume(kiln_bin, tmp_path):
    return Volume(kiln_bin, tmp_path)


# Raw keys whose first or last byte is whitespace once made this test squat the
# wrong name (the key was strip()ped) and see the workload start its own server.
KEYS = {
    "generated": None,
    "raw-whitespace-ends": b"\n" + bytes(range(1, 31)) + b" ",
    "hex": (bytes(range(100, 132)).hex() + "\n").encode(),
}


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_squatter_on_the_name_is_refused(kiln_bin, tmp_path, key):
    """An impostor that binds the volume's name before any server: the workload
    refuses to start (one line), and the impostor never sees a key-derived byte
    from which it could learn anything (it only gets a MAC over its own nonce)."""
    if key is not None:
        (tmp_path / "vol.key").write_bytes(key)
    volume = Volume(kiln_bin, tmp_path)
    name = sock_name(volume)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(name)
    srv.listen(4)
    seen = []

    def impostor():
        try:
            while True:
                c, _ = srv.accept()
                c.send(msg(1, 1, tail=os.urandom(32)))  # HELLO with its nonce
                seen.append(c.recv(65536))
                c.send(struct.pack("<iI", 0, 32) + os.urandom(32))  # a made-up proof
                c.close()
        except OSError:
            pass

    t = threading.Thread(target=impostor, daemon=True)
    t.start()
    p = volume.run("sh", "-c", f"echo {SECRET} > {volume.dir}/f")
    srv.close()
    assert seen, f"the workload never came to the squatted name:\n{p.stderr}"
    assert p.returncode == 1, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "failed authentication" in ln]
    assert len(lines) == 1, p.stderr
    assert "impostor" in lines[0]
    # What the impostor got: an AUTH message (nonce, pid, MAC); no plaintext.
    assert seen and all(SECRET.encode() not in s for s in seen)
    # Nothing was written.
    assert volume.run("cat", f"{volume.dir}/f").returncode != 0


def start_holder(volume, setup=""):
    """A workload that holds the volume (and so its server) until told to stop;
    setup: Python lines it runs first (p is the volume's path)."""
    py = need("python3")
    prog = ("import os, sys; p = sys.argv[1]\n"
            "open(p + '/a', 'w').write('one')\n"
            + setup +
            "print('ready', flush=True)\n"
            "for line in sys.stdin:\n"
            "    open(p + '/a', 'a').write(line.strip())\n"
            "    print(open(p + '/a').read(), flush=True)\n")
    proc = subprocess.Popen([volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}",
                             "--", py, "-c", prog, str(volume.dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def server_log(volume):
    path = volume.dir / ".kiln" / "server.log"
    return path.read_text() if path.exists() else ""


def test_garbage_and_keyless_peers_are_cut_off(volume):
    holder = start_holder(volume)
    try:
        name = sock_name(volume)
        # 1. Garbage instead of the handshake.
        for payload in (b"garbage", b"\0" * 1000, msg(3, tail=b"x\0")):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(name)
            hello = s.recv(65536)
            assert len(hello) == 8 + 40 + 32 and struct.unpack("<I", hello[:4])[0] == 1
            try:
                s.send(payload)
            except OSError:
                pass
            s.settimeout(10)
            assert s.recv(65536) == b""  # closed
            s.close()
        # 2. A peer without the key: a proper AUTH with a MAC under another key.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(name)
        ns = s.recv(65536)[-32:]
        nc = os.urandom(32)
        wrong = hkdf(b"\x01" * 32, b"kiln-shield", b"kiln-shield-auth-v1")
        mac = hmac.new(wrong, b"client" + ns + nc + struct.pack("<I", os.getpid()),
                       hashlib.sha256).digest()
        s.send(msg(2, 1, os.getpid(), nc + mac))
        s.settimeout(10)
        assert s.recv(65536) == b""  # no proof back, no volume segment
        s.close()
        # 3. Silence: a peer that never proves anything is cut off too (after
        # 10 s); meanwhile the workload is served.
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        idle.connect(name)
        holder.stdin.write("two\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "onetwo"
        idle.settimeout(30)
        idle.recv(65536)  # HELLO
        assert idle.recv(65536) == b""
        idle.close()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    log = server_log(volume)
    # One line per distinct reason, no volume path, no data.
    for reason in ("malformed handshake", "does not hold the volume key",
                   "no proof of the key in time"):
        assert log.count(reason) == 1, log
    assert str(volume.dir) not in log and SECRET not in log
    assert volume.run("cat", f"{volume.dir}/a", check=True).stdout == "onetwo"
