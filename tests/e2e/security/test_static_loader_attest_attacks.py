"""The attested static loader (`kiln run --static=loader --cas`, docs/runtime.md
"The static loader") against a local user who controls how it starts: the
measurement covers the program's file only, so the runtime around it
(kiln-sload, ld.so, libc, libkiln) is checked before any secret is asked for;
the program is one descriptor, opened once, measured, compared with the
policy's command and mapped, so a file swapped on disk after that cannot run
with the grant. Every test also runs the honest case of the same policy."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from cas_proxy import CasProxy
from kilnenv import BUILD
from secenv import EVIL_C, LIBKILN, VICTIM_C

SLOAD = BUILD / "src" / "runtime" / "kiln-sload"
REFUSED_SELF = "kiln: attestation: the static loader (kiln-sload) itself: "


def pin(h, prog):
    """The policy's service runs prog, its exe-only measurement pinned."""
    m = subprocess.run([str(BUILD / "kiln"), "measure", "--", str(prog)], capture_output=True,
                       text=True)
    assert m.returncode == 0, m.stderr
    h.apply({"app": (prog, m.stdout.strip())})
    return prog


@pytest.fixture
def victim(host_attest):
    """The victim of secenv linked statically, pinned."""
    return pin(host_attest, host_attest.cbuild("victim_static", VICTIM_C, flags=["-static"]))


def loader_run(h, prog, env=None, cas_url=None):
    args = h.cas_args()
    if cas_url:
        args[args.index(h.cas.url)] = cas_url
    return subprocess.run([h.cas.kiln_bin, "run", "--static=loader", *args, "--", str(prog)],
                          capture_output=True, text=True, timeout=120, env=h.env(**(env or {})))


def assert_honest(h, prog):
    p = loader_run(h, prog)
    assert p.returncode == 0, p.stderr + h.cas.log()[-2000:]
    assert p.stdout == "victim ok secret=24 mark=1\n"
    assert "running it in-process under the static loader" in p.stderr


def assert_not_stolen(h):
    got = h.stolen()
    assert got is None or got == "loaded secret= mark=0\n", got


def sload_direct(h, prog, preload):
    """The attacker skips `kiln run`: kiln-sload with libkiln and their own
    library preloaded and a configuration they wrote."""
    r, w = os.pipe()
    os.write(w, h.config().encode())
    os.close(w)
    try:
        e = h.env(LD_PRELOAD=":".join([str(LIBKILN), *map(str, preload)]),
                  KILN_CONFIG_FD=str(r))
        return subprocess.run([str(SLOAD), str(prog), str(prog)], capture_output=True,
                              text=True, timeout=120, env=e, pass_fds=(r,))
    finally:
        os.close(r)


def test_loader_preload_through_launcher(host_attest, victim):
    """LD_PRELOAD before `kiln run`: dropped, said, never loaded."""
    h = host_attest
    evil = h.cbuild("evil", EVIL_C, shared=True)
    p = loader_run(h, victim, env={"LD_PRELOAD": str(evil)})
    assert p.returncode == 0, p.stderr
    assert p.stdout == "victim ok secret=24 mark=1\n"
    assert "kiln: attested run: not passing LD_PRELOAD from the environment" in p.stderr
    assert h.stolen() is None


@pytest.mark.parametrize("hide", [False, True])
def test_loader_preload_without_launcher(host_attest, victim, hide):
    """kiln-sload started by hand with an extra library beside libkiln: one
    line, exit 1, before the CAS or kiln-las is asked. With hide, the library
    removes LD_PRELOAD from the environment in its constructor (which runs
    before libkiln's): the loaded objects still name it."""
    h = host_attest
    name = "evil_hide" if hide else "evil"
    evil = h.cbuild(name, EVIL_C, shared=True,
                    flags=["-DEVIL_UNSET_PRELOAD"] if hide else [])
    p = sload_direct(h, victim, [evil])
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(REFUSED_SELF), p.stderr
    if hide:
        assert f"{evil} is loaded, which neither kiln-sload nor libkiln needs" in lines[0]
    else:
        assert "kiln-sload was started with LD_PRELOAD in its environment" in lines[0]
    assert_not_stolen(h)
    assert "evidence issued" not in h.las_log()
    assert_honest(h, victim)


def test_loader_policy_names_another_program(host_attest, victim, tmp_path):
    """The policy's command is a copy of the program (same bytes, so the same
    measurement): the file started is not the policy's, refused."""
    h = host_attest
    other = tmp_path / "copy"
    shutil.copy(victim, other)
    p = loader_run(h, other)
    assert p.returncode == 1 and p.stdout == "", p.stdout + p.stderr
    assert (f"kiln: attestation: the policy's command {victim} is not the program that was "
            "started") in p.stderr.splitlines(), p.stderr
    assert_honest(h, victim)


def test_loader_program_swapped_after_launch(host_attest, tmp_path):
    """Another static program renamed over the program's path when the first
    CAS connection comes in (libkiln has opened and measured the program, and
    asks for a nonce next): the CAS accepts the measurement, which is the
    original's, and the command check sees that the path now names another
    file than the descriptor: refused, the replacement never runs.
    (test_app_static_loader_attest swaps later, after the command check.)"""
    h = host_attest
    built = h.cbuild("victim_static", VICTIM_C, flags=["-static"])
    prog = tmp_path / "victim_static"
    shutil.copy(built, prog)
    pin(h, prog)
    repl = h.cbuild("replacement", r"""
#include <stdio.h>
int main(void) { puts("replacement ran"); return 0; }
""", flags=["-static"])
    original_ino = os.stat(prog).st_ino
    proxy = CasProxy(h.cas.port, lambda n: n == 1 and os.replace(repl, prog))
    try:
        p = loader_run(h, prog, cas_url=proxy.url)
    finally:
        proxy.close()
    assert os.stat(prog).st_ino != original_ino
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout == ""
    assert (f"kiln: attestation: the policy's command {prog} is not the program that was "
            "started") in p.stderr.splitlines(), p.stderr
    # Accepted by the CAS: the measurement was the original file's, from the
    # descriptor opened before the swap.
    assert "attestation ok" in h.cas.log()
    # Put back, the same launch runs.
    shutil.copy(built, prog)
    assert_honest(h, prog)


# A library inside kiln-sload that asks kiln-las itself, as kiln-sload's
# libkiln would, for evidence about a program and a report_data of its choice.
LAS_ASKER_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
__attribute__((constructor)) static void ask(void)
{
    const char *sock = getenv("ASK_LAS"), *prog = getenv("ASK_PROG"), *out = getenv("ASK_OUT");
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    char line[256], ans[4096], cbuf[CMSG_SPACE(sizeof(int))];
    int s = socket(AF_UNIX, SOCK_STREAM, 0), fd = open(prog, O_RDONLY), o;
    struct iovec iov;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    ssize_t n, got = 0;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    if (s < 0 || fd < 0 || connect(s, (struct sockaddr *)&a, sizeof(a))) return;
    snprintf(line, sizeof(line), "{\"report_data\": \"%0128d\", \"static_exe\": true}\n", 0);
    iov.iov_base = line;
    iov.iov_len = strlen(line);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    if (sendmsg(s, &m, 0) < 0) return;
    while ((n = read(s, ans + got, sizeof(ans) - 1 - (size_t)got)) > 0) got += n;
    o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o >= 0) { write(o, ans, (size_t)got); close(o); }
}
"""


@pytest.mark.parametrize("with_libkiln", [True, False])
def test_las_refuses_kiln_sload_with_a_foreign_library(host_attest, victim, tmp_path,
                                                      with_libkiln):
    """kiln-las vouches for kiln-sload only when everything it maps is libkiln
    or a library kiln-las maps itself: a library in kiln-sload that asks for
    static_exe evidence (a program and a key of its choice) is refused."""
    h = host_attest
    asker = h.cbuild("las_asker", LAS_ASKER_C, shared=True)
    out = tmp_path / "answer.json"
    preload = [str(LIBKILN), str(asker)] if with_libkiln else [str(asker)]
    p = subprocess.run([str(SLOAD), str(victim), str(victim)], capture_output=True, text=True,
                       timeout=60, env=dict(h.env(), LD_PRELOAD=":".join(preload),
                                            ASK_LAS=str(h.las.sock), ASK_PROG=str(victim),
                                            ASK_OUT=str(out)))
    assert p.returncode != 0
    answer = json.loads(out.read_text())
    sha = hashlib.sha256(asker.read_bytes()).hexdigest()
    assert answer == {"error": "static_exe: the static loader (kiln-sload) maps a library "
                               f"that kiln-las does not (sha256 {sha}): refused"}, answer
    assert "evidence issued" not in h.las_log()
    assert_honest(h, victim)
