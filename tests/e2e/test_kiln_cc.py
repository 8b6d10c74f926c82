"""kiln-cc: programs linked against the kiln runtime (docs/runtime.md, "Linking
the runtime: kiln-cc"). A C program using SQLite is built with kiln-cc, its
measurement printed at link time is pinned in a policy, and it runs attested
(INSECURE sim backend, opted in by the policy) with its database on a
protected volume, with nothing preloaded. Refusals and pass-through cases of
the driver."""
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time

import pytest

from kilnenv import BUILD, wait_server_gone

KILN_CC = BUILD / "kiln-cc"

# Inserts rows carrying the secret it got from the CAS into a database in DATA,
# then checks the database; prints what the test compares.
APP = r"""
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

static int one(void *out, int n, char **v, char **names)
{
	(void)n; (void)names;
	snprintf(out, 64, "%s", v[0] ? v[0] : "NULL");
	return 0;
}

int main(int argc, char **argv)
{
	const char *pw = getenv("APP_PW"), *preload = getenv("LD_PRELOAD");
	char path[4096], count[64] = "", check[64] = "", *err = NULL;
	sqlite3 *db;

	printf("argv %s\n", argc > 1 ? argv[1] : "(none)");
	printf("preload %s\n", preload ? preload : "(none)");
	if (!pw || !getenv("DATA"))
		return 3;
	snprintf(path, sizeof(path), "%s/app.db", getenv("DATA"));
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return 4;
	sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT);"
			 "BEGIN", NULL, NULL, &err) != SQLITE_OK)
		goto fail;
	for (int i = 0; i < 500; i++) {
		char *q = sqlite3_mprintf("INSERT INTO t(v) VALUES('%q-%d')", pw, i);
		int r = sqlite3_exec(db, q, NULL, NULL, &err);

		sqlite3_free(q);
		if (r != SQLITE_OK)
			goto fail;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, &err) != SQLITE_OK ||
	    sqlite3_exec(db, "SELECT count(*) FROM t", one, count, &err) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA integrity_check", one, check, &err) != SQLITE_OK)
		goto fail;
	printf("rows %s\nintegrity %s\n", count, check);
	return sqlite3_close(db) == SQLITE_OK ? 0 : 5;
fail:
	fprintf(stderr, "sqlite: %s\n", err ? err : "?");
	return 6;
}
"""

POLICY = """\
name: acme/cc
access: {{read: [owner], update: [owner]}}
secrets:
  - {{name: pw, kind: ascii, size: 24}}
volumes:
  - {{name: data}}
services:
  - name: app
    command: [{app}, policy-arg]
    environment:
      APP_PW: "{{{{secret.pw}}}}"
      DATA: {data}
    mounts:
      - {{volume: data, path: {data}}}
    measurement: [{meas}]
security:
  tee: [sim]
  allow_insecure_sim: true
"""


def build(tmp_path, name="app", source=APP, args=("-lsqlite3",), env=None):
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    p = subprocess.run([str(KILN_CC), "-O1", "-o", str(out), str(src), *args],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, **(env or {})))
    return out, p


def needed(path):
    p = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True,
                       check=True)
    return (re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout),
            re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[([^\]]+)\]",
                       p.stdout))


def run_attested(cas, prog):
    return subprocess.run([cas.kiln_bin, "run", "--cas", cas.url, "--cas-ca", cas.ca_file,
                           "--session", "acme/cc", "--service", "app", "--tee", "sim",
                           "--", str(prog), "launcher-arg"],
                          capture_output=True, text=True, timeout=120)


def test_kiln_cc_links_and_measures(kiln, tmp_path):
    app, p = build(tmp_path)
    assert p.returncode == 0, p.stderr
    libs, rpath = needed(app)
    # The runtime first (ahead of libsqlite3 and libc), found by an absolute path.
    assert libs[0] == "libkiln.so" and "libc.so.6" in libs and "libsqlite3.so.0" in libs
    assert rpath and os.path.isabs(rpath[0])
    assert os.path.exists(os.path.join(rpath[0], "libkiln.so"))
    m = re.search(r"kiln-cc: .*app: measurement ([0-9a-f]{96}) ", p.stderr)
    assert m, p.stderr
    # kiln measure agrees, and says it preloads nothing.
    q = kiln("measure", "--", app)
    assert q.returncode == 0, q.stderr
    assert q.stdout.strip() == m.group(1)
    assert "with the kiln runtime linked in (kiln-cc)" in q.stderr
    # Outside kiln run the linked runtime is inert: the program runs as itself.
    r = subprocess.run([str(app)], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert r.returncode == 3 and r.stdout.splitlines()[1] == "preload (none)"


def test_kiln_cc_attested_with_volume(kiln, cas, cas_identity, tmp_path):
    owner, _ = cas_identity("owner")
    app, p = build(tmp_path)
    assert p.returncode == 0, p.stderr
    meas = re.search(r"measurement ([0-9a-f]{96})", p.stderr).group(1)
    data = tmp_path / "data"
    (tmp_path / "p.yaml").write_text(POLICY.format(app=app, data=data, meas=meas))
    kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)

    for rows in (500, 1000):
        r = run_attested(cas, app)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["argv policy-arg", "preload (none)",
                                         f"rows {rows}", "integrity ok"], r.stdout + r.stderr
        assert "INSECURE" in r.stderr
        wait_server_gone(data)
    # Ciphertext only on disk: no row's text, no SQLite header.
    raw = b"".join(f.read_bytes() for f in data.rglob("*") if f.is_file())
    assert raw and b"SQLite format 3" not in raw and b"-499" not in raw
    # Another build (one constant changed) is another measurement: refused.
    other, p = build(tmp_path, "other", APP.replace("i < 500", "i < 501"))
    assert p.returncode == 0, p.stderr
    os.replace(other, app)
    r = run_attested(cas, app)
    assert r.returncode == 1 and "attestation refused" in r.stderr, r.stderr
    assert "rows" not in r.stdout


# The musl case: no SQLite for musl here, so plain files; the secret goes into
# a file on the volume and is read back.
MUSL_APP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *pw = getenv("APP_PW"), *preload = getenv("LD_PRELOAD");
	char path[4096], back[128] = "";
	FILE *f;

	printf("argv %s\n", argc > 1 ? argv[1] : "(none)");
	printf("preload %s\n", preload ? preload : "(none)");
	if (!pw || !getenv("DATA"))
		return 3;
	snprintf(path, sizeof(path), "%s/note.txt", getenv("DATA"));
	if (!(f = fopen(path, "a+")) || fprintf(f, "note-%s\n", pw) < 0 || fflush(f) ||
	    fseek(f, 0, SEEK_SET) || !fgets(back, sizeof(back), f))
		return 4;
	printf("first %s", strncmp(back, "note-", 5) == 0 && strstr(back, pw) ? "ok\n" : back);
	return fclose(f) ? 5 : 0;
}
"""


def test_kiln_cc_musl_attested_with_volume(kiln, cas, cas_identity, tmp_path):
    if not shutil.which("musl-gcc"):
        pytest.fail("musl-gcc not installed (scripts/install-deps.sh installs musl-tools)")
    owner, _ = cas_identity("owner")
    app, p = build(tmp_path, "app", MUSL_APP, args=(), env={"KILN_CC": "musl-gcc"})
    assert p.returncode == 0, p.stderr
    libs, rpath = needed(app)
    # The runtime built for musl, first; musl's libc, not glibc's.
    assert libs[0] == "libkiln-musl.so" and "libc.so" in libs and "libc.so.6" not in libs
    assert os.path.exists(os.path.join(rpath[0], "libkiln-musl.so"))
    meas = re.search(r"measurement ([0-9a-f]{96})", p.stderr).group(1)
    q = kiln("measure", "--", app)
    assert q.returncode == 0 and q.stdout.strip() == meas, q.stderr
    assert "musl dynamic with the kiln runtime linked in (kiln-cc)" in q.stderr
    data = tmp_path / "data"
    (tmp_path / "p.yaml").write_text(POLICY.format(app=app, data=data, meas=meas))
    kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)
    r = run_attested(cas, app)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["argv policy-arg", "preload (none)", "first ok"], \
        r.stdout + r.stderr
    wait_server_gone(data)
    raw = b"".join(f.read_bytes() for f in data.rglob("*") if f.is_file())
    assert raw and b"note-" not in raw


def test_kiln_cc_refusals_and_pass_through(tmp_path):
    src = tmp_path / "x.c"
    src.write_text("int main(void) { return 0; }\n")
    p = subprocess.run([str(KILN_CC), "-static", "-o", str(tmp_path / "x"), str(src)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "kiln-cc: -static: a statically linked program cannot load the kiln runtime" \
        in p.stderr
    assert not (tmp_path / "x").exists()
    p = subprocess.run([str(KILN_CC), "-o", str(tmp_path / "x"), str(src)],
                       capture_output=True, text=True, env=dict(os.environ, KILN_CC="no-such-cc"))
    assert p.returncode != 0 and "kiln-cc: cannot run no-such-cc" in p.stderr
    # Compile-only and shared libraries: the compiler's own result, no runtime.
    p = subprocess.run([str(KILN_CC), "-c", "-o", str(tmp_path / "x.o"), str(src)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "" and (tmp_path / "x.o").exists()
    p = subprocess.run([str(KILN_CC), "-shared", "-fPIC", "-o", str(tmp_path / "x.so"),
                        str(src)], capture_output=True, text=True)
    assert p.returncode == 0 and "libkiln.so" not in needed(tmp_path / "x.so")[0]
    # A compiler error is the compiler's: its status, nothing linked.
    src.write_text("int main(void) { return }\n")
    p = subprocess.run([str(KILN_CC), "-o", str(tmp_path / "y"), str(src)],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "error" in p.stderr and "measurement" not in p.stderr
    # The driver's own help, and `kiln cc` is the same driver.
    p = subprocess.run([str(KILN_CC), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("Usage: kiln-cc")
    p = subprocess.run([str(BUILD / "kiln"), "cc", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "KILN_RUNTIME_LIB" in p.stdout
    # A "compiler" that names no dynamic linker: which runtime is unknown.
    p = subprocess.run([str(KILN_CC), "-o", str(tmp_path / "z"), str(src)],
                       capture_output=True, text=True, env=dict(os.environ, KILN_CC="true"))
    assert p.returncode == 1 and "cannot tell which C library it links" in p.stderr


def test_kiln_cc_runtime_missing(tmp_path):
    src = tmp_path / "x.c"
    src.write_text("int main(void) { return 0; }\n")
    p = subprocess.run([str(KILN_CC), "-o", str(tmp_path / "x"), str(src)],
                       capture_output=True, text=True,
                       env=dict(os.environ, KILN_RUNTIME_LIB=str(tmp_path / "nope.so")))
    assert p.returncode == 1 and "KILN_RUNTIME_LIB" in p.stderr
    assert not (tmp_path / "x").exists()


SQLITE_SRC = pathlib.Path(os.environ.get("KILN_MUSL_SQLITE3", "/opt/kiln/musl-sqlite3")) / "src"

# One policy for the stress tests below: a service per build, one volume.
STRESS_POLICY = """\
name: acme/{name}
access: {{read: [owner], update: [owner]}}
volumes:
  - {{name: data}}
services:
{services}
security:
  tee: [sim]
  allow_insecure_sim: true
"""

SQLITE_SERVICE = """\
  - name: {name}
    command: [{prog}, {data}/{name}.db]
    mounts:
      - {{volume: data, path: {data}}}
    measurement: [{meas}]
"""


@pytest.mark.stress
def test_kiln_cc_sqlite3_from_debian_source_stress(kiln, cas, cas_identity, tmp_path):
    """sqlite3's shell from the amalgamation of Debian's sqlite3 source package
    (scripts/build-musl-sqlite3.sh keeps it; make stress runs that first),
    built with kiln-cc for glibc and for musl (KILN_CC=musl-gcc), each run
    attested with its database on a protected volume, twice."""
    if not (SQLITE_SRC / "sqlite3.c").exists():
        pytest.fail(f"{SQLITE_SRC} missing (scripts/build-musl-sqlite3.sh, run by make stress)")
    if not shutil.which("musl-gcc"):
        pytest.fail("musl-gcc not installed (scripts/install-deps.sh installs musl-tools)")
    owner, _ = cas_identity("owner")
    data = tmp_path / "data"
    services = []
    progs = {}
    for name, cc, libs in (("glibc", "cc", ["-lpthread", "-lm"]),
                           ("musl", "musl-gcc", ["-lpthread"])):
        out = tmp_path / f"sqlite3-{name}"
        p = subprocess.run([str(KILN_CC), "-O1", "-DSQLITE_THREADSAFE=1",
                            "-DSQLITE_OMIT_LOAD_EXTENSION", "-o", str(out),
                            str(SQLITE_SRC / "shell.c"), str(SQLITE_SRC / "sqlite3.c"), *libs],
                           capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, KILN_CC=cc))
        assert p.returncode == 0, p.stderr
        assert needed(out)[0][0] == ("libkiln-musl.so" if name == "musl" else "libkiln.so")
        meas = re.search(r"measurement ([0-9a-f]{96})", p.stderr).group(1)
        services.append(SQLITE_SERVICE.format(name=name, prog=out, data=data, meas=meas))
        progs[name] = out
    (tmp_path / "p.yaml").write_text(STRESS_POLICY.format(name="cc-sqlite",
                                                          services="".join(services)))
    kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)

    def run(name, sql):
        r = subprocess.run([cas.kiln_bin, "run", "--cas", cas.url, "--cas-ca", cas.ca_file,
                            "--session", "acme/cc-sqlite", "--service", name, "--tee", "sim",
                            "--", str(progs[name])], input=sql, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        wait_server_gone(data)
        return r.stdout.splitlines()

    for name in progs:
        fill = ("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t(v TEXT); BEGIN;"
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<5000)"
                f" INSERT INTO t SELECT 'row-{name}-' || x FROM c; COMMIT;"
                "CREATE INDEX IF NOT EXISTS tv ON t(v); SELECT count(*) FROM t;")
        assert run(name, fill)[-1] == "5000"
        assert run(name, fill)[-1] == "10000"
        assert run(name, "PRAGMA integrity_check;") == ["ok"]
    raw = b"".join(f.read_bytes() for f in data.rglob("*") if f.is_file())
    assert raw and b"SQLite format 3" not in raw and b"row-glibc-" not in raw


REDIS_SRC = pathlib.Path(os.environ.get("KILN_MUSL_REDIS", "/opt/kiln/musl-redis")) / "src"

REDIS_SERVICE = """\
  - name: {name}
    command: [{prog}, --port, "{port}", --bind, 127.0.0.1, --dir, {data},
              --appendonly, "yes", --appendfsync, always, --appenddirname, {name}-aof,
              --dbfilename, {name}.rdb, --save, ""]
    mounts:
      - {{volume: data, path: {data}}}
    measurement: [{meas}]
"""


@pytest.mark.stress
def test_kiln_cc_redis_from_debian_source_stress(kiln, cas, cas_identity, tmp_path):
    """redis-server from Debian's redis source package (kept by
    scripts/build-musl-redis.sh, which make stress runs first), built with
    kiln-cc for glibc and for musl, each run attested with its AOF on a
    protected volume; restarted, the data is back; the volume holds no
    plaintext."""
    if not (REDIS_SRC / "Makefile").exists():
        pytest.fail(f"{REDIS_SRC} missing (scripts/build-musl-redis.sh, run by make stress)")
    if not shutil.which("musl-gcc"):
        pytest.fail("musl-gcc not installed (scripts/install-deps.sh installs musl-tools)")
    owner, _ = cas_identity("owner")
    data = tmp_path / "data"
    services, progs, ports = [], {}, {}
    for name, cc in (("glibc", "cc"), ("musl", "musl-gcc")):
        tree = tmp_path / f"redis-{name}"
        shutil.copytree(REDIS_SRC, tree)
        p = subprocess.run(["make", "-C", str(tree), f"-j{os.cpu_count()}", "MALLOC=libc",
                            "BUILD_TLS=no", "USE_SYSTEMD=no", f"CC={KILN_CC}", "redis-server"],
                           capture_output=True, text=True, timeout=1800,
                           env=dict(os.environ, KILN_CC=cc))
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        prog = tree / "src" / "redis-server"
        assert needed(prog)[0][0] == ("libkiln-musl.so" if name == "musl" else "libkiln.so")
        meas = re.search(r"kiln-cc: redis-server: measurement ([0-9a-f]{96})",
                         p.stdout + p.stderr).group(1)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports[name] = s.getsockname()[1]
        services.append(REDIS_SERVICE.format(name=name, prog=prog, port=ports[name], data=data,
                                             meas=meas))
        progs[name] = prog
    (tmp_path / "p.yaml").write_text(STRESS_POLICY.format(name="cc-redis",
                                                          services="".join(services)))
    kiln("policy", "apply", tmp_path / "p.yaml", env=cas.env(owner), check=True)

    def cli(name, *args):
        return subprocess.run(["redis-cli", "-p", str(ports[name]), *args],
                              capture_output=True, text=True, timeout=30).stdout.strip()

    def start(name):
        proc = subprocess.Popen([cas.kiln_bin, "run", "--cas", cas.url, "--cas-ca",
                                 cas.ca_file, "--session", "acme/cc-redis", "--service", name,
                                 "--tee", "sim", "--", str(progs[name])],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(600):
            if proc.poll() is not None:
                raise AssertionError("redis exited:\n" + proc.stdout.read())
            if cli(name, "PING") == "PONG":
                return proc
            time.sleep(0.1)
        proc.kill()
        raise AssertionError("redis did not answer PING")

    def stop(name, proc):
        cli(name, "SHUTDOWN")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        wait_server_gone(data)
        return out

    for name in progs:
        proc = start(name)
        try:
            for i in range(300):
                assert cli(name, "SET", f"key:{i}", f"val-{name}-{i}") == "OK"
            out = stop(name, proc)
            assert "INSECURE" in out
            proc = start(name)
            assert cli(name, "GET", "key:299") == f"val-{name}-299"
            assert cli(name, "DBSIZE") == "300"
            stop(name, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    raw = b"".join(f.read_bytes() for f in data.rglob("*") if f.is_file())
    assert raw and b"val-glibc-" not in raw and b"val-musl-" not in raw
