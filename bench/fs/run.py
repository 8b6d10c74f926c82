#!/usr/bin/env python3
"""bench/fs: protected-file throughput, measured side by side in one run.

Targets: a plain directory, gocryptfs (FUSE), `kiln fs mount` (FUSE) and the pf
library directly (bench_pf). Workloads: sequential write+fsync, cold sequential
read, 4 KiB random read and write, and creating many small files. Every number is
reported next to the plain directory's from the same run, as a ratio, because
absolute numbers on shared machines move from run to run.

Usage: bench/fs/run.py --kiln build/kiln --bench-pf build/bench/fs/bench_pf
                       [--size-mib 512] [--files 10000] [--out bench/results/fs.json]
                       [--kiln-base OTHER/kiln]

--kiln-base adds the target kiln-mount-base: `kiln fs mount` of another build (e.g.
main's, to show a change to the mount does not regress), in the same run.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


# -- workloads on a directory (plain, or a FUSE mount) --------------------------

def seq_write(d, size):
    buf = os.urandom(MIB)
    t = time.perf_counter()
    fd = os.open(os.path.join(d, "seq"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for _ in range(size // MIB):
        os.write(fd, buf)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t


def seq_read(d, size):
    t = time.perf_counter()
    fd = os.open(os.path.join(d, "seq"), os.O_RDONLY)
    total = 0
    while True:
        b = os.read(fd, MIB)
        if not b:
            break
        total += len(b)
    os.close(fd)
    if total != size:
        raise RuntimeError(f"read {total} bytes, expected {size}")
    return time.perf_counter() - t


def rand_io(d, size, ops, write):
    rng = random.Random(42)
    path = os.path.join(d, "seq")
    blocks = size // 4096
    buf = os.urandom(4096)
    fd = os.open(path, os.O_RDWR)
    t = time.perf_counter()
    for _ in range(ops):
        off = rng.randrange(blocks) * 4096
        if write:
            os.pwrite(fd, buf, off)
        else:
            if len(os.pread(fd, 4096, off)) != 4096:
                raise RuntimeError("short read")
    if write:
        os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t


def create_files(d, count):
    sub = os.path.join(d, "many")
    os.mkdir(sub)
    buf = os.urandom(4096)
    t = time.perf_counter()
    for i in range(count):
        fd = os.open(os.path.join(sub, f"f{i:05d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, buf)
        os.close(fd)
    dfd = os.open(sub, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    return time.perf_counter() - t


# -- targets ---------------------------------------------------------------------

class Plain:
    name = "plain"

    def __init__(self, root):
        self.dir = os.path.join(root, "plain")
        os.mkdir(self.dir)

    def remount(self):
        pass

    def close(self):
        pass


class Fuse:
    """A FUSE file system started by a command; remount() = unmount + drop caches + mount."""

    def __init__(self, root, name):
        self.name = name
        self.store = os.path.join(root, name + "-store")
        self.dir = os.path.join(root, name + "-mnt")
        os.mkdir(self.store)
        os.mkdir(self.dir)
        self.proc = None

    def remount(self):
        self.unmount()
        drop_caches()
        self.mount()

    def unmount(self):
        if not os.path.ismount(self.dir):
            return
        subprocess.run(["fusermount3", "-u", self.dir], check=True)
        if self.proc:
            self.proc.wait(timeout=30)
            self.proc = None

    def close(self):
        try:
            self.unmount()
        except subprocess.CalledProcessError:
            subprocess.run(["fusermount3", "-uz", self.dir])

    def wait_mounted(self):
        for _ in range(200):
            if os.path.ismount(self.dir):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: mount did not appear at {self.dir}")


class Gocryptfs(Fuse):
    def __init__(self, root):
        super().__init__(root, "gocryptfs")
        self.pw = os.path.join(root, "gocryptfs.pw")
        with open(self.pw, "w") as f:
            f.write("benchmark-password\n")
        subprocess.run(["gocryptfs", "-q", "-init", "-passfile", self.pw, self.store], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.mount()

    def mount(self):
        subprocess.run(["gocryptfs", "-q", "-passfile", self.pw, self.store, self.dir],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_mounted()


class KilnMount(Fuse):
    def __init__(self, root, kiln, name="kiln-mount"):
        super().__init__(root, name)
        self.kiln = kiln
        self.key = os.path.join(root, name + ".key")
        subprocess.run([kiln, "fs", "init", self.store, "--key-file", self.key], check=True,
                       stdout=subprocess.DEVNULL)
        self.mount()

    def mount(self):
        self.proc = subprocess.Popen([self.kiln, "fs", "mount", self.store, self.dir,
                                      "--key-file", self.key, "-f"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_mounted()


def run_dir_target(t, size, ops, files):
    r = {}
    r["seq_write_MBps"] = size / MIB / seq_write(t.dir, size)
    t.remount()
    if t.name == "plain":
        drop_caches()
    r["seq_read_cold_MBps"] = size / MIB / seq_read(t.dir, size)
    r["rand_read_4k_iops"] = ops / rand_io(t.dir, size, ops, write=False)
    r["rand_write_4k_iops"] = ops / rand_io(t.dir, size, ops, write=True)
    r["create_files_per_s"] = files / create_files(t.dir, files)
    return r


def run_pf_lib(bench_pf, root, size, ops, files):
    vol = os.path.join(root, "pf-lib")
    out = subprocess.run([bench_pf, vol, str(size // MIB), str(ops), str(files)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def openssl_ceiling():
    out = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", "8192", "-evp",
                          "aes-256-gcm"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("AES-256-GCM") or line.startswith("aes-256-gcm"):
            kbps = float(line.split()[-1].rstrip("k"))
            return kbps * 1000 / MIB
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--bench-pf")
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--dir", help="where to put the test data (default: a temp dir in /var/tmp)")
    ap.add_argument("--targets", default="plain,gocryptfs,kiln-mount",
                    help="directory targets to run, comma-separated (plain is always run)")
    ap.add_argument("--kiln-base", help="another build's kiln: adds the target kiln-mount-base")
    ap.add_argument("--out", default="bench/results/fs.json")
    a = ap.parse_args()
    if a.kiln_base and "kiln-mount-base" not in a.targets.split(","):
        a.targets += ",kiln-mount-base"
    size = a.size_mib * MIB
    root = tempfile.mkdtemp(prefix="kiln-bench-fs-", dir=a.dir or "/var/tmp")
    results = {"size_mib": a.size_mib, "ops": a.ops, "files": a.files,
               "cold_cache": drop_caches(), "targets": {}}
    targets = []
    try:
        makers = {"plain": lambda: Plain(root), "gocryptfs": lambda: Gocryptfs(root),
                  "kiln-mount": lambda: KilnMount(root, a.kiln),
                  "kiln-mount-base": lambda: KilnMount(root, a.kiln_base, "kiln-mount-base")}
        wanted = ["plain"] + [n for n in a.targets.split(",") if n and n != "plain"]
        for name in wanted:
            t = makers[name]()
            targets.append(t)
            print(f"bench/fs: {t.name} ...", file=sys.stderr, flush=True)
            results["targets"][t.name] = run_dir_target(t, size, a.ops, a.files)
            t.close()
        if a.bench_pf:
            print("bench/fs: pf library ...", file=sys.stderr, flush=True)
            results["targets"]["pf-lib"] = run_pf_lib(a.bench_pf, root, size, a.ops, a.files)
        results["openssl_aes256gcm_8k_MBps"] = openssl_ceiling()
    finally:
        for t in targets:
            try:
                t.close()
            except Exception:
                pass
        shutil.rmtree(root, ignore_errors=True)

    tg = results["targets"]
    ratios = {}
    for metric in tg["plain"]:
        for num, den in (("pf-lib", "plain"), ("pf-lib", "gocryptfs"),
                         ("kiln-mount", "gocryptfs"), ("kiln-mount", "plain"),
                         ("kiln-mount-base", "gocryptfs"), ("kiln-mount", "kiln-mount-base")):
            if num in tg and den in tg and metric in tg[num]:
                ratios[f"{num}/{den}:{metric}"] = round(tg[num][metric] / tg[den][metric], 3)
    results["ratios"] = ratios
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)

    metrics = list(tg["plain"])
    names = list(tg)
    keys = ["pf-lib/plain", "pf-lib/gocryptfs", "kiln-mount/gocryptfs"]
    heads = ["pf-lib/plain", "pf-lib/gocryptfs", "mount/gocryptfs"]
    if "kiln-mount-base" in tg:
        keys += ["kiln-mount-base/gocryptfs", "kiln-mount/kiln-mount-base"]
        heads += ["base/gocryptfs", "mount/base"]
    lines = ["| metric | " + " | ".join(names + heads) + " |",
             "|---" * (len(names) + len(heads) + 1) + "|"]
    for m in metrics:
        row = [m] + [f"{tg[n].get(m, float('nan')):.0f}" for n in names]
        for key in keys:
            row.append(f"{ratios.get(key + ':' + m, float('nan')):.2f}")
        lines.append("| " + " | ".join(row) + " |")
    ceiling = results["openssl_aes256gcm_8k_MBps"]
    lines.append("")
    lines.append(f"Crypto ceiling (openssl speed -evp aes-256-gcm, 8 KiB): {ceiling:.0f} MiB/s"
                 if ceiling else "Crypto ceiling: openssl speed not available")
    table = "\n".join(lines)
    with open(os.path.splitext(a.out)[0] + ".md", "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
