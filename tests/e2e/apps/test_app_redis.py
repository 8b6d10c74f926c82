"""redis-server under kiln run: RDB (BGSAVE in a forked child) and AOF
(appendfsync everysec, fsync from a background thread); restart and reload."""
import os
import pathlib
import socket
import subprocess
import time

import pytest

from kilnapps import SECRET, need


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, volume, *args, server=None, run_args=()):
        self.cli = need("redis-cli")
        self.port = free_port()
        cmd = [volume.kiln_bin, "run", *run_args, "--volume", f"{volume.dir}={volume.key}", "--",
               server or need("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", str(volume.dir), "--daemonize", "no", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        for _ in range(200):
            if self.proc.poll() is not None:
                raise AssertionError("redis exited:\n" + self.proc.stdout.read())
            if self.call("PING", check=False) == "PONG":
                return
            time.sleep(0.05)
        self.stop()
        raise AssertionError("redis did not answer PING")

    def call(self, *args, check=True):
        p = subprocess.run([self.cli, "-p", str(self.port), *args], capture_output=True,
                           text=True, timeout=30)
        if check:
            assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    def wait_bgsave(self):
        for _ in range(400):
            info = self.call("INFO", "persistence")
            if "rdb_bgsave_in_progress:0" in info:
                assert "rdb_last_bgsave_status:ok" in info, info
                return
            time.sleep(0.05)
        raise AssertionError("BGSAVE did not finish")

    def shutdown(self):
        self.call("SHUTDOWN", check=False)
        out, _ = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, out
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis_factory(volume):
    started = []

    def start(*args, server=None, run_args=()):
        r = Redis(volume, *args, server=server, run_args=run_args)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def rdb_and_aof(volume, redis_factory, server=None):
    r = redis_factory("--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                      server=server)
    for i in range(500):
        r.call("SET", f"key:{i}", f"{SECRET}:{i}")
    r.call("BGSAVE")
    r.wait_bgsave()
    r.call("SET", "after", "bgsave")
    r.shutdown()
    volume.assert_no_plaintext()
    # Reload from the AOF.
    r = redis_factory("--appendonly", "yes", "--save", "", server=server)
    assert r.call("GET", "key:499") == f"{SECRET}:499"
    assert r.call("GET", "after") == "bgsave"
    assert r.call("DBSIZE") == "501"
    r.shutdown()
    # Reload from the RDB written by the forked child (without the later key).
    r = redis_factory("--appendonly", "no", "--save", "", server=server)
    assert r.call("GET", "key:7") == f"{SECRET}:7"
    assert r.call("DBSIZE") == "500"
    r.shutdown()
    volume.assert_no_plaintext()


def test_redis_rdb_and_aof(volume, redis_factory):
    rdb_and_aof(volume, redis_factory)


REDIS_MUSL = pathlib.Path(os.environ.get("KILN_MUSL_REDIS", "/opt/kiln/musl-redis")) / "bin" / \
    "redis-server-musl"


@pytest.mark.stress
def test_musl_redis_rdb_and_aof_stress(volume, redis_factory):
    """The same with redis-server built with musl-gcc from Debian's redis
    source package (scripts/build-musl-redis.sh, which make stress runs
    first): libkiln-musl.so under it, its AOF and RDB on the volume."""
    if not os.access(REDIS_MUSL, os.X_OK):
        pytest.fail(f"{REDIS_MUSL} not built (scripts/build-musl-redis.sh, run by make stress)")
    rdb_and_aof(volume, redis_factory, server=str(REDIS_MUSL))


REDIS_MUSL_STATIC = REDIS_MUSL.parent / "redis-server-musl-static"


@pytest.mark.stress
def test_static_redis_aof_supervised_stress(volume, redis_factory):
    """redis-server linked statically against musl (scripts/build-musl-redis-static.sh,
    run by make stress) under the seccomp supervisor with its AOF on the
    volume: redis 7 opens appendonlydir to fsync it after each manifest
    rename (fsyncFileDir), which the supervisor refused (ENOTSUP), so the
    server could not start with appendonly yes. SET, restart, GET."""
    if not os.access(REDIS_MUSL_STATIC, os.X_OK):
        pytest.fail(f"{REDIS_MUSL_STATIC} not built (scripts/build-musl-redis-static.sh, run "
                    "by make stress)")
    run = dict(server=str(REDIS_MUSL_STATIC), run_args=("--static=supervise",))
    r = redis_factory("--appendonly", "yes", "--appendfsync", "always", "--save", "", **run)
    for i in range(100):
        r.call("SET", f"key:{i}", f"{SECRET}:{i}")
    r.call("BGREWRITEAOF")  # a new manifest: renamed, then its directory fsynced
    for _ in range(400):
        if "aof_rewrite_in_progress:0" in r.call("INFO", "persistence"):
            break
        time.sleep(0.05)
    r.call("SET", "after", "rewrite")
    out = r.shutdown()
    assert "not supported" not in out, out
    assert (f"kiln: {REDIS_MUSL_STATIC} is statically linked: running it supervised "
            "(seccomp), every file call traps") in out.splitlines(), out
    volume.assert_no_plaintext()
    r = redis_factory("--appendonly", "yes", "--save", "", **run)
    assert r.call("GET", "key:99") == f"{SECRET}:99"
    assert r.call("GET", "after") == "rewrite"
    assert r.call("DBSIZE") == "101"
    r.shutdown()


def test_redis_tampered_rdb(volume, redis_factory):
    r = redis_factory("--appendonly", "no", "--save", "")
    r.call("SET", "k", SECRET * 200)
    r.call("SAVE")
    r.shutdown()
    volume.tamper_largest()
    cmd = [volume.kiln_bin, "run", "--volume", f"{volume.dir}={volume.key}", "--",
           need("redis-server"), "--port", str(free_port()), "--dir", str(volume.dir),
           "--appendonly", "no", "--save", ""]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert f"kiln: {volume.dir}/dump.rdb: " in p.stderr + p.stdout
