"""kiln-cc: programs linked against the kiln runtime (docs/runtime.md, "Linking
the runtime: kiln-cc"). A C program using SQLite is built with kiln-cc, its
measurement printed at link time is pinned in a policy, and it runs attested
(INSECURE sim backend, opted in by the policy) with its database on a
protected volume, with nothing preloaded. Refusals and pass-through cases of
the driver."""
import os
import re
import shutil
import subprocess

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
