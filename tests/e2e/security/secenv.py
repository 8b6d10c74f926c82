"""Helpers of the attack suite (tests/e2e/security/), re-exported as fixtures by
conftest.py. Each attack test performs the attack as an attacker would, with
real programs, and asserts the refusal, the reason the operator sees, and that
an honest run of the same policy still works.

- `cbuild`: compile a C program or shared library written in the test.
- `host_attest`: a kiln-cas trusting a kiln-las (both started by the test), a
  policy whose service runs a small victim program with a pinned measurement
  and a secret in its environment, and the two ways to start it: through
  `kiln run` (`run`), and as an attacker who does not use the launcher at all
  and starts libkiln with a configuration of their own (`run_direct`).
"""
import json
import os
import secrets
import subprocess
import time

import pytest

from kilnenv import BUILD

LIBKILN = BUILD / "src" / "runtime" / "libkiln.so"
# A policy value only an attested process may see. Unique per test run: the
# watchers of test_exec_env read every process's environ and cmdline on the
# machine, and another checkout's run of the same tests holds its own marker.
MARK = "kiln-sec-marker-" + secrets.token_hex(8)

# The victim: a dynamically linked program that shows it received its secret.
VICTIM_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
    const char *s = getenv("SECRET"), *m = getenv("MARK");
    printf("victim ok secret=%zu mark=%d\n", s ? strlen(s) : 0, m && strstr(m, "kiln-sec"));
    return 0;
}
"""

# The attacker's library: at exit it looks for the policy's secret and marker in
# its process (environment and every readable private mapping) and writes what
# it found to $EVIL_OUT, read by its constructor from the launcher's environment.
EVIL_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static char out[4096], mark[128];
#ifdef EVIL_UNSET_PRELOAD
#define HIDE() unsetenv("LD_PRELOAD")
#else
#define HIDE() ((void)0)
#endif
__attribute__((constructor)) static void evil_init(void)
{
    const char *o = getenv("EVIL_OUT"), *m = getenv("EVIL_MARK");
    if (o) snprintf(out, sizeof(out), "%s", o);
    /* reversed in the environment, so that only the policy's copy matches */
    for (size_t i = 0, n = m ? strlen(m) : 0; i < n && i + 1 < sizeof(mark); i++)
        mark[i] = m[n - 1 - i];
#ifdef EVIL_UNLINK
    if (getenv("EVIL_SELF")) unlink(getenv("EVIL_SELF"));
#endif
#ifdef EVIL_JIT
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p != MAP_FAILED) memset(p, 0xc3, 16);
#endif
    HIDE();
}
static int scan(const char *what)
{
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "r");
    int mem = open("/proc/self/mem", O_RDONLY), found = 0;
    if (!maps || mem < 0) return 0;
    while (!found && fgets(line, sizeof(line), maps)) {
        unsigned long a, b; char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &a, &b, perms) != 3 || perms[0] != 'r') continue;
        if (b - a > (64ul << 20)) continue;
        char *buf = malloc(b - a);
        if (!buf) continue;
        ssize_t n = pread(mem, buf, b - a, (off_t)a);
        /* every copy but our own (mark[] itself) */
        for (char *p = buf; n > 0 && !found &&
             (p = memmem(p, (size_t)(buf + n - p), what, strlen(what))); p++)
            found = a + (unsigned long)(p - buf) != (unsigned long)what;
        free(buf);
    }
    fclose(maps);
    close(mem);
    return found;
}
__attribute__((destructor)) static void evil_fini(void)
{
    const char *s = getenv("SECRET");
    char msg[256];
    if (!out[0]) return;
    snprintf(msg, sizeof(msg), "loaded secret=%s mark=%d\n", s ? s : "",
             mark[0] ? scan(mark) : 0);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) { write(fd, msg, strlen(msg)); close(fd); }
}
"""


class CBuild:
    def __init__(self, d):
        self.dir = d
        self.dir.mkdir(exist_ok=True)

    def __call__(self, name, source, shared=False, flags=()):
        src = self.dir / f"{name}.c"
        src.write_text(source)
        out = self.dir / (f"{name}.so" if shared else name)
        args = ["cc", "-O1", "-o", str(out), str(src), *flags]
        if shared:
            args[1:1] = ["-shared", "-fPIC"]
        subprocess.run(args, check=True, capture_output=True)
        return out


@pytest.fixture
def cbuild(tmp_path):
    return CBuild(tmp_path / "cbuild")


def measure(prog, env=None):
    """`kiln measure` with libkiln as the measuring library: the value the
    runtime measures before main under `kiln run`."""
    m = subprocess.run([str(BUILD / "kiln"), "measure", "--", str(prog)], capture_output=True,
                       text=True, env=dict(os.environ, KILN_MEASURE_LIB=str(LIBKILN),
                                           **(env or {})))
    return m


class HostAttest:
    SESSION = "sec/app"

    def __init__(self, kiln, cas, las, owner, cbuild, tmp_path):
        self.kiln, self.cas, self.las, self.owner = kiln, cas, las, owner
        self.tmp = tmp_path
        self.cbuild = cbuild
        self.victim = cbuild("victim", VICTIM_C)
        self.secret_out = tmp_path / "stolen.txt"

    def apply(self, services):
        """services: {name: (program or command list, measurement)}; every
        service gets the secret and the marker in its environment."""
        doc = {"name": self.SESSION, "predecessor": None,
               "access": {"read": ["owner"], "update": ["owner"]},
               "secrets": [{"name": "pw", "kind": "ascii", "size": 24}],
               "services": [{"name": n,
                             "command": [str(p)] if isinstance(p, (str, os.PathLike))
                             else [str(x) for x in p],
                             "environment": {"SECRET": "{{secret.pw}}", "MARK": MARK},
                             "measurement": [m]} for n, (p, m) in services.items()],
               "security": {"tee": ["host"]}}
        path = self.tmp / "sec-policy.yaml"
        path.write_text(json.dumps(doc))
        self.kiln("policy", "apply", path, env=self.cas.env(self.owner), check=True)

    def apply_victim(self):
        m = measure(self.victim)
        assert m.returncode == 0, m.stderr
        self.apply({"app": (self.victim, m.stdout.strip())})
        return m.stdout.strip()

    def cas_args(self, service="app"):
        return ["--cas", self.cas.url, "--cas-ca", self.cas.ca_file, "--session", self.SESSION,
                "--service", service, "--tee", "host", "--las-socket", str(self.las.sock)]

    def env(self, **extra):
        e = dict(os.environ, EVIL_OUT=str(self.secret_out), EVIL_MARK=MARK[::-1])
        # A sanitized kiln (make check) must tolerate the attacker's LD_PRELOAD.
        e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
        e.update(extra)
        return e

    def run(self, prog=None, service="app", env=None, pass_fds=(), prefix=(), timeout=120,
            extra=(), kiln=None):
        """`kiln run EXTRA --cas ... --tee host -- prog` with the attacker's environment
        (kiln: another binary than the kiln front, e.g. kiln-tool run directly)."""
        return subprocess.run([*prefix, str(kiln or self.cas.kiln_bin), "run", *extra,
                               *self.cas_args(service), "--", str(prog or self.victim)],
                              capture_output=True, text=True, timeout=timeout,
                              env=self.env(**(env or {})), pass_fds=pass_fds)

    def config(self, service="app"):
        return ("kiln-runtime-config-v1\nsud on\nfreshness every-fsync\n"
                f"cas {self.cas.url}\nsession {self.SESSION}\nservice {service}\ntee host\n"
                f"cas-ca {self.cas.ca_file}\nlas-socket {self.las.sock}\nend\n")

    def run_direct(self, preload, prog=None, service="app", env=None, pass_fds=()):
        """The attacker skips `kiln run`: libkiln plus their own libraries in
        LD_PRELOAD and a configuration pipe they wrote themselves."""
        r, w = os.pipe()
        os.write(w, self.config(service).encode())
        os.close(w)
        try:
            e = self.env(**(env or {}))
            e.update(LD_PRELOAD=":".join([str(LIBKILN), *map(str, preload)]),
                     KILN_CONFIG_FD=str(r))
            return subprocess.run([str(prog or self.victim)], capture_output=True, text=True,
                                  timeout=120, env=e, pass_fds=(r, *pass_fds))
        finally:
            os.close(r)

    def stolen(self):
        return self.secret_out.read_text() if self.secret_out.exists() else None

    def las_log(self):
        return self.las.log_path.read_text(errors="replace")

    def las_lines(self, *needles, want=1, timeout=5.0):
        """The kiln-las log lines holding every needle, once there are want of them
        (or timeout passed): kiln-las writes "evidence issued" after it sent the
        evidence, so the line can come after the program has already ended."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.las_log().splitlines()
                     if all(n in line for n in needles)]
            if len(lines) >= want or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


@pytest.fixture
def host_attest(kiln, cas, las, cas_identity, cbuild, tmp_path):
    """kiln-cas + kiln-las (trusted by the CAS) and the victim's policy helpers."""
    kiln("cas", "trust-las", las.cert, "--data", cas.data, check=True)
    owner, _ = cas_identity("owner")
    return HostAttest(kiln, cas, las, owner, cbuild, tmp_path)


def memfd_with(data, name="evil"):
    """An inheritable memfd holding data (the attacker's library)."""
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    return fd
