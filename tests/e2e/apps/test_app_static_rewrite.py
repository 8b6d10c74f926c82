"""A supervised program's writes do not trap, so the volume server takes every
chunk of a file it holds for writing as changed at each commit. Chunks whose
plaintext has the digest of what the volume stores are not sealed and stored
again (docs/runtime.md, "Statically linked programs", Cost): rewriting one
block of a 1 MiB file rewrites about one block of its ciphertext."""
import os
import subprocess
from pathlib import Path

import pytest

BUSYBOX = Path(os.environ.get("KILN_BUSYBOX_STATIC", "/opt/kiln/busybox-static/bin/busybox"))
BLOCK = 4096
BLOCKS = 256  # 1 MiB


@pytest.fixture
def busybox():
    if not BUSYBOX.exists():
        pytest.fail(f"{BUSYBOX} missing: run scripts/install-deps.sh (busybox-static)")
    return str(BUSYBOX)


def dd(volume, busybox, *args):
    # --static=supervise: the supervisor, whatever the default for static
    # programs becomes.
    return volume.run(busybox, "dd", *args, extra=["--static=supervise"], check=True)


def windows_changed(a, b):
    n = min(len(a), len(b))
    return sum(a[i:i + BLOCK] != b[i:i + BLOCK] for i in range(0, n, BLOCK)) + \
        (max(len(a), len(b)) - n + BLOCK - 1) // BLOCK


def test_supervised_rewrite_stores_only_what_changed(volume, busybox, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(BLOCKS * BLOCK))
    blk = tmp_path / "blk"
    blk.write_bytes(os.urandom(BLOCK))
    dd(volume, busybox, f"if={src}", f"of={volume.dir}/f", f"bs={BLOCK}")
    data = max(volume.backing_files(), key=lambda p: p.stat().st_size)
    before = data.read_bytes()
    # One block in the middle, the file kept (conv=notrunc).
    dd(volume, busybox, f"if={blk}", f"of={volume.dir}/f", f"bs={BLOCK}", "count=1",
       "seek=100", "conv=notrunc")
    after = data.read_bytes()
    changed = windows_changed(before, after)
    assert changed <= BLOCKS // 10, f"{changed} of {len(after) // BLOCK} blocks rewritten"
    want = bytearray(src.read_bytes())
    want[100 * BLOCK:101 * BLOCK] = blk.read_bytes()
    p = subprocess.run([volume.kiln_bin, "fs", "cat", str(volume.dir), "f", "--key-file",
                        str(volume.key)], capture_output=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == bytes(want)
    # Grown, truncated and grown again to the same bytes: stored again, not
    # taken for unchanged (the truncate forgot the digests).
    dd(volume, busybox, f"if={src}", f"of={volume.dir}/f", f"bs={BLOCK}", "count=10")
    dd(volume, busybox, f"if={src}", f"of={volume.dir}/f", f"bs={BLOCK}")
    p = subprocess.run([volume.kiln_bin, "fs", "cat", str(volume.dir), "f", "--key-file",
                        str(volume.key)], capture_output=True)
    assert p.stdout == src.read_bytes()
    v = subprocess.run([volume.kiln_bin, "fs", "verify", str(volume.dir), "--key-file",
                        str(volume.key)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
