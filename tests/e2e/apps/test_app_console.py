"""The console shield: a service with `console: protected` writes its stdout
and stderr as encrypted, numbered records. The captured stream holds no
plaintext; `kiln console read` by a reader the policy lists shows it; a
modified, dropped or replayed record is reported by number; an identity that is
not a reader gets 403."""
import subprocess

from netenv import PYTHON, q

MARK = "console-secret-line"

APP = f"""
import sys
for i in range(50):
    print("{MARK}", i, flush=True)
print("{MARK} on stderr", file=sys.stderr, flush=True)
"""


def policy(reader=None):
    readers = f"[owner, {q(reader)}]" if reader else "[owner]"
    return f"""\
name: t/console
services:
  - name: app
    command: [{q(PYTHON)}, -c, {q(APP)}]
    measurement: [any]
    console: {{mode: protected, readers: {readers}}}
security: {{tee: [sim], allow_insecure_sim: true}}
"""


def read(net, data, identity=None):
    env = net.env()
    if identity:
        env["KILN_IDENTITY"] = str(identity)
    return subprocess.run([net.kiln_bin, "console", "read", "--session", "t/console",
                           "--service", "app"], input=data, capture_output=True,
                          env=env, timeout=60)


def test_console_shield(net, cas_identity):
    reader, reader_id = cas_identity("reader")
    stranger, _ = cas_identity("stranger")
    net.apply(policy(reader_id))
    p = net.run("t/console", "app", text=False)
    assert p.returncode == 0, p.stderr
    raw_out, raw_err = p.stdout, p.stderr
    assert MARK.encode() not in raw_out and MARK.encode() not in raw_err
    assert raw_out.startswith(b"KCR1")
    # The owner and the listed reader see the plaintext, in order, complete.
    for who in (None, reader):
        r = read(net, raw_out, who)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().splitlines() == [f"{MARK} {i}" for i in range(50)]
    # stderr: the program's line; before the records, kiln's own INSECURE line
    # (sim) in plaintext, which the reader skips and names, not a problem.
    r = read(net, raw_err)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert f"{MARK} on stderr" in err
    assert raw_err.startswith(b"kiln: WARNING: INSECURE simulation backend")
    assert "before the first record are not console records" in err, err
    # Not a reader: 403, nothing shown.
    r = read(net, raw_out, stranger)
    assert r.returncode == 1 and MARK.encode() not in r.stdout
    assert b"403" in r.stderr
    # Tampering: a modified byte inside record 3's payload, a dropped record, a
    # replayed one: each reported by number, exit 1.
    recs = split(raw_out)
    bad = bytearray(raw_out)
    off = sum(len(x) for x in recs[:3]) + 40
    bad[off] ^= 1
    r = read(net, bytes(bad))
    assert r.returncode == 1
    assert b"stdout: record 3 (byte %d) does not authenticate" % (off - 40) in r.stderr, r.stderr
    lines = r.stdout.decode().splitlines()  # record 3 held line 2 (record 0: the header)
    assert f"{MARK} 2" not in lines and f"{MARK} 3" in lines
    r = read(net, b"".join(recs[:5] + recs[6:]))
    assert r.returncode == 1 and b"stdout: record 5 missing" in r.stderr, r.stderr
    r = read(net, b"".join(recs[:6] + [recs[5]] + recs[6:]))
    assert r.returncode == 1 and b"stdout: record 5 came again (replayed)" in r.stderr, r.stderr
    r = read(net, b"".join(recs[:6] + [recs[7], recs[6]] + recs[8:]))
    assert r.returncode == 1 and b"record 6 came after later ones (reordered)" in r.stderr, r.stderr


def split(stream):
    """The records of a stream (header: 'KCR1', type, channel, size (2 bytes),
    id (16), seq (8); then payload and a 16-byte tag)."""
    out, i = [], 0
    while i < len(stream):
        assert stream[i:i + 4] == b"KCR1", i
        n = int.from_bytes(stream[i + 6:i + 8], "big")
        out.append(stream[i:i + 32 + n + 16])
        i += 32 + n + 16
    return out


ECHO = """
import sys
line = sys.stdin.readline()
print("got", line.strip(), flush=True)
"""


def test_console_attach(net):
    net.apply(f"""\
name: t/attach
services:
  - name: app
    command: [{q(PYTHON)}, -c, {q(ECHO)}]
    measurement: [any]
    console: protected
security: {{tee: [sim], allow_insecure_sim: true}}
""")
    argv = net.argv("t/attach", "app", PYTHON)
    p = subprocess.run([net.kiln_bin, "console", "attach", "--session", "t/attach",
                        "--service", "app", "--", *argv], input=b"typed-secret\n",
                       capture_output=True, env=net.env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"got typed-secret\n", p.stdout + p.stderr
    # Plaintext typed into the program's stdin without attach is refused: the
    # program's read fails with EIO and the runtime says why (in plaintext on
    # stderr: kiln's own line, which names no data).
    q_run = subprocess.run(argv, input=b"typed-secret\n", capture_output=True,
                           env=net.env(), timeout=60)
    r = subprocess.run([net.kiln_bin, "console", "read", "--session", "t/attach",
                        "--service", "app"], input=q_run.stdout, capture_output=True,
                       env=net.env(), timeout=60)
    e = subprocess.run([net.kiln_bin, "console", "read", "--session", "t/attach",
                        "--service", "app"], input=q_run.stderr, capture_output=True,
                       env=net.env(), timeout=60)
    assert b"typed-secret" not in r.stdout + e.stdout + e.stderr
    assert b"Input/output error" in e.stderr, e.stderr  # the program's read: EIO
    assert b"kiln: console: stdin: not a console record" in q_run.stderr, q_run.stderr
