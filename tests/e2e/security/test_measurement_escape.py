"""Issue 16 item 1: code that escapes the workload measurement.

The attacker is a local user who starts the attested program (or something
pretending to be it) and wants the policy's secret in code the measurement
does not cover. Each test performs one way of getting code into the process
and asserts that the secret never reaches it: either the code never loads
(the launcher drops the variable, saying so) or the measurement is refused
with a reason naming the mapping -- by libkiln measuring itself, by kiln-las
measuring its peer and by `kiln measure`. Every test also checks that an
honest run of the same policy still gets its secret.
"""
import os
import shutil
import subprocess

import pytest

from kilnenv import BUILD
from secenv import EVIL_C, LIBKILN, MARK, VICTIM_C, measure, memfd_with

REFUSED = "cannot be measured: refused"
SUPERVISE = ("--static=supervise",)


def assert_honest(h):
    p = h.run()
    assert p.returncode == 0, p.stderr + h.cas.log()[-2000:]
    assert p.stdout == "victim ok secret=24 mark=1\n"
    assert "not passing" not in p.stderr
    return p


def assert_not_stolen(h):
    got = h.stolen()
    assert got is None or got == "loaded secret= mark=0\n", got


def test_honest_pinned_run(host_attest):
    h = host_attest
    h.apply_victim()
    assert_honest(h)
    assert "evidence issued" in h.las_log()


@pytest.fixture
def evil(cbuild):
    return cbuild("evil", EVIL_C, shared=True)


def test_memfd_preload_through_launcher(host_attest, evil):
    """The attack of the issue: LD_PRELOAD=/proc/self/fd/N (a memfd) before
    `kiln run --cas`. The launcher drops it: the library never loads."""
    h = host_attest
    h.apply_victim()
    fd = memfd_with(evil.read_bytes())
    try:
        p = h.run(env={"LD_PRELOAD": f"/proc/self/fd/{fd}"}, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "victim ok secret=24 mark=1\n"
    assert "kiln: attested run: not passing LD_PRELOAD from the environment" in p.stderr
    assert h.stolen() is None
    assert_honest(h)


def test_memfd_preload_without_launcher(host_attest, evil):
    """The same library, but the attacker starts libkiln without `kiln run`:
    the runtime's own measurement refuses the memfd mapping, names it, and the
    CAS is never asked."""
    h = host_attest
    h.apply_victim()
    fd = memfd_with(evil.read_bytes(), name="evil-lib")
    try:
        p = h.run_direct([f"/proc/self/fd/{fd}"], pass_fds=(fd,))
    finally:
        os.close(fd)
    assert p.returncode == 1
    assert p.stdout == ""
    assert "executable mapping" in p.stderr and "'/memfd:evil-lib (deleted)'" in p.stderr
    assert "memfd" in p.stderr and REFUSED in p.stderr
    assert_not_stolen(h)
    assert "evidence issued" not in h.las_log()
    assert_honest(h)


def test_ld_audit_through_launcher(host_attest, cbuild):
    """LD_AUDIT runs an audit library inside the loader, before everything."""
    h = host_attest
    h.apply_victim()
    marker = h.tmp / "audit-loaded"
    audit = cbuild("audit", r"""
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <unistd.h>
/* Note which program the loader ran us in (kiln itself loads it too). */
unsigned int la_version(unsigned int v)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    int fd = open("%s", O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0 && n > 0) { exe[n++] = '\n'; write(fd, exe, (size_t)n); }
    if (fd >= 0) close(fd);
    return v;
}
""".replace("%s", str(marker)), shared=True)
    fd = memfd_with(audit.read_bytes(), name="audit")
    try:
        p = h.run(env={"LD_AUDIT": f"/proc/self/fd/{fd}"}, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert p.returncode == 0, p.stderr
    assert "not passing LD_AUDIT" in p.stderr
    assert str(h.victim) not in (marker.read_text() if marker.exists() else "")
    # Without the launcher the audit library maps as a memfd: refused.
    fd = memfd_with(audit.read_bytes(), name="audit")
    try:
        r, w = os.pipe()
        os.write(w, h.config().encode())
        os.close(w)
        p = subprocess.run([str(h.victim)], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, LD_PRELOAD=str(LIBKILN), KILN_CONFIG_FD=str(r),
                                    LD_AUDIT=f"/proc/self/fd/{fd}"), pass_fds=(r, fd))
        os.close(r)
    finally:
        os.close(fd)
    assert p.returncode == 1 and "'/memfd:audit (deleted)'" in p.stderr and REFUSED in p.stderr
    assert_honest(h)


def test_ld_library_path_trojan_libc(host_attest, tmp_path):
    """A directory with another libc.so.6 in LD_LIBRARY_PATH: the launcher and
    `kiln measure` drop it, so the honest libc is loaded and measured."""
    h = host_attest
    meas = h.apply_victim()
    trojan = tmp_path / "trojan"
    trojan.mkdir()
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    (trojan / "libc.so.6").write_bytes(open(libc, "rb").read() + b"trojan")
    p = h.run(env={"LD_LIBRARY_PATH": str(trojan)})
    assert p.returncode == 0, p.stderr
    assert p.stdout == "victim ok secret=24 mark=1\n"
    assert "not passing LD_LIBRARY_PATH" in p.stderr
    m = measure(h.victim, env={"LD_LIBRARY_PATH": str(trojan)})
    assert m.returncode == 0 and m.stdout.strip() == meas
    assert "not passing LD_LIBRARY_PATH" in m.stderr
    # Loaded anyway (no launcher): it is a file, measured, and not the pinned value.
    p = subprocess.run([str(h.victim)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, LD_LIBRARY_PATH=str(trojan), LD_PRELOAD=str(LIBKILN),
                                KILN_MEASURE_ONLY="1"))
    assert p.returncode == 0 and p.stdout.strip() != meas


def test_deleted_library_without_launcher(host_attest, cbuild, tmp_path):
    """A library that deletes its own file before it is measured."""
    h = host_attest
    h.apply_victim()
    lib = cbuild("evil_unlink", EVIL_C, shared=True, flags=("-DEVIL_UNLINK",))
    p = h.run_direct([lib], env={"EVIL_SELF": str(lib)})
    assert not lib.exists()
    assert p.returncode == 1
    assert f"'{lib} (deleted)' (a deleted file" in p.stderr and REFUSED in p.stderr
    assert_not_stolen(h)
    assert_honest(h)


def test_anonymous_code_before_main(host_attest, cbuild):
    """Executable anonymous memory mapped before the runtime measures (here by
    a library the program links, whose constructor runs before libkiln's, as
    an injected library's would): refused by the runtime and by `kiln
    measure`, even for a policy that accepts any measurement."""
    h = host_attest
    lib = cbuild("libjit", EVIL_C, shared=True, flags=("-DEVIL_JIT",))
    jit = cbuild("victim_jit", VICTIM_C,
                 flags=("-Wl,--no-as-needed", str(lib), f"-Wl,-rpath,{lib.parent}"))
    h.apply({"app": (h.victim, measure(h.victim).stdout.strip()), "jit": (jit, "any")})
    p = h.run(jit, service="jit")
    assert p.returncode == 1
    assert p.stdout == ""
    assert "executable mapping" in p.stderr and "(anonymous memory" in p.stderr
    assert REFUSED in p.stderr
    assert_not_stolen(h)
    m = measure(jit)
    assert m.returncode == 1 and "anonymous memory" in m.stderr and REFUSED in m.stderr
    assert_honest(h)


def test_openssl_conf_provider(host_attest, cbuild, tmp_path):
    """OPENSSL_CONF naming a provider module: OpenSSL would load it into the
    process when the runtime opens its TLS connection, after the measurement.
    The launcher drops the variable and libkiln never reads a config file."""
    h = host_attest
    h.apply_victim()
    module = cbuild("evil_provider", EVIL_C, shared=True)
    conf = tmp_path / "openssl.cnf"
    conf.write_text(f"""openssl_conf = init
[init]
providers = provs
[provs]
evil = evil_sect
default = default_sect
[evil_sect]
module = {module}
activate = 1
[default_sect]
activate = 1
""")
    p = h.run(env={"OPENSSL_CONF": str(conf)})
    assert p.returncode == 0, p.stderr
    assert "not passing OPENSSL_CONF" in p.stderr
    assert h.stolen() is None
    p = h.run_direct([], env={"OPENSSL_CONF": str(conf)})
    assert p.returncode == 0, p.stderr
    assert p.stdout == "victim ok secret=24 mark=1\n"
    assert h.stolen() is None


def test_static_supervisor_preload(host_attest, cbuild, evil):
    """A statically linked program is run by `kiln run` itself (kiln-tool),
    which receives its secrets: a library preloaded into kiln would get them. kiln executes
    itself again without the variable; a library that hides itself from that
    (unsets LD_PRELOAD in its constructor) is seen by kiln-las, which refuses
    a supervisor mapping a library kiln-las does not map. (--static=supervise:
    the loader, the default, is test_static_loader_attest_attacks.py.)"""
    h = host_attest
    static = cbuild("victim_static", VICTIM_C, flags=("-static",))
    meas = measure(static)
    assert meas.returncode == 0, meas.stderr
    h.apply({"app": (h.victim, measure(h.victim).stdout.strip()),
             "static": (static, meas.stdout.strip())})
    fd = memfd_with(evil.read_bytes())
    try:
        p = h.run(static, service="static", extra=SUPERVISE,
                  env={"LD_PRELOAD": f"/proc/self/fd/{fd}"},
                  pass_fds=(fd,))
    finally:
        os.close(fd)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "victim ok secret=24 mark=1\n"
    assert "not passing LD_PRELOAD" in p.stderr
    assert_not_stolen(h)
    hide = cbuild("evil_hide", EVIL_C, shared=True, flags=("-DEVIL_UNSET_PRELOAD",))
    # Through the kiln front (docs/architecture.md "Binaries"): the library
    # runs in the front, which holds nothing of the program's, and its unset
    # variable leaves kiln-tool, the supervisor, without it: nothing to steal.
    p = h.run(static, service="static", extra=SUPERVISE, env={"LD_PRELOAD": str(hide)})
    assert p.returncode == 0 and p.stdout == "victim ok secret=24 mark=1\n", p.stderr
    assert_not_stolen(h)
    # kiln-tool run directly: the library hides in the supervisor itself.
    p = h.run(static, service="static", extra=SUPERVISE, env={"LD_PRELOAD": str(hide)},
              kiln=BUILD / "kiln-tool")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "victim ok" not in p.stdout
    assert "the supervisor maps a library that kiln-las does not" in p.stderr
    assert "the supervisor maps a library that kiln-las does not" in h.las_log()
    assert_not_stolen(h)
    p = h.run(static, service="static", extra=SUPERVISE)
    assert p.returncode == 0 and p.stdout == "victim ok secret=24 mark=1\n", p.stderr
    assert_honest(h)


TRACER_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

/* tracer steal MARK PROG... : stay attached; when PROG exits, look for MARK in
 *                              its writable memory with PTRACE_PEEKDATA
 * tracer patch EXE PROG...  : at the exec of EXE, rewrite one byte of its code
 *                              (with its own value) and detach */
static int scan(pid_t pid, const char *mark)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    size_t n = strlen(mark);
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f)) {
        unsigned long a, b; char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &a, &b, perms) != 3 || perms[1] != 'w') continue;
        if (b - a > (8ul << 20)) continue;
        char *buf = malloc(b - a);
        for (unsigned long p = a; p < b; p += sizeof(long)) {
            errno = 0;
            long v = ptrace(PTRACE_PEEKDATA, pid, (void *)p, NULL);
            if (errno) break;
            memcpy(buf + (p - a), &v, sizeof(v));
        }
        if (memmem(buf, b - a, mark, n)) found = 1;
        free(buf);
    }
    if (f) fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    int patch = strcmp(argv[1], "patch") == 0, status, found = 0;
    pid_t pid = fork();
    if (pid == 0) {
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        raise(SIGSTOP);
        execvp(argv[3], argv + 3);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    ptrace(PTRACE_SETOPTIONS, pid, NULL,
           (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL));
    ptrace(PTRACE_CONT, pid, NULL, NULL);
    for (;;) {
        if (waitpid(pid, &status, 0) < 0) break;
        if (WIFEXITED(status)) return found ? 42 : WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
        int sig = WSTOPSIG(status), event = status >> 16;
        if (event == PTRACE_EVENT_EXEC && patch) {
            char exe[4096], link[64];
            snprintf(link, sizeof(link), "/proc/%d/exe", pid);
            ssize_t n = readlink(link, exe, sizeof(exe) - 1);
            exe[n > 0 ? n : 0] = '\0';
            if (strcmp(exe, argv[2]) == 0) {
                struct user_regs_struct r;
                ptrace(PTRACE_GETREGS, pid, NULL, &r);   /* rip: ld.so's entry */
                long v = ptrace(PTRACE_PEEKTEXT, pid, (void *)r.rip, NULL);
                ptrace(PTRACE_POKETEXT, pid, (void *)r.rip, (void *)v);
                ptrace(PTRACE_DETACH, pid, NULL, NULL);
                printf("patched\n");
                fflush(stdout);
                waitpid(pid, &status, 0);
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
            }
        }
        if (event == PTRACE_EVENT_EXIT && !patch)
            found = scan(pid, argv[2]);
        ptrace(PTRACE_CONT, pid, NULL,
               (void *)(long)(event || sig == SIGTRAP || sig == SIGSTOP ? 0 : sig));
    }
    return found ? 42 : 0;
}
"""


@pytest.fixture
def tracer(cbuild):
    return cbuild("tracer", TRACER_C)


def test_traced_process_refused(host_attest, tracer):
    """A tracer attached before the runtime starts (PTRACE_TRACEME before
    exec) stays attached after the process becomes non-dumpable and could read
    the secret or change the code: the runtime refuses to attest."""
    h = host_attest
    h.apply_victim()
    p = h.run(prefix=(str(tracer), "steal", MARK))
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "victim ok" not in p.stdout
    assert "traced (ptrace) by pid" in p.stderr and "refused" in p.stderr
    assert "evidence issued" not in h.las_log()
    assert_honest(h)


def test_code_patched_before_main_refused(host_attest, tracer):
    """A tracer rewrites code at the exec and detaches before the runtime
    looks: no tracer is left, the mapping still names the clean file, but the
    page is a private copy. libkiln and kiln-las see it in the page map."""
    h = host_attest
    h.apply_victim()
    p = h.run(prefix=(str(tracer), "patch", str(h.victim)))
    assert p.stdout.startswith("patched\n"), (p.stdout, p.stderr)
    assert "victim ok" not in p.stdout
    assert "ld-linux-x86-64.so.2' (its page at" in p.stderr
    assert "was written after it was mapped) " + REFUSED in p.stderr
    assert_honest(h)


LAS_PEER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

/* las_peer SOCKET MODE: make code the measurement cannot cover, then ask
 * kiln-las for evidence and print its answer. */
int main(int argc, char **argv)
{
    const char *mode = argv[2];
    char tmpl[] = "/var/tmp/kiln-peer-XXXXXX", buf[65536];
    void *p = NULL;
    if (!strcmp(mode, "memfd")) {
        int fd = memfd_create("peer-code", 0);
        ftruncate(fd, 4096);
        p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    } else if (!strcmp(mode, "anon")) {
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
    } else if (!strcmp(mode, "named-vdso")) {
        p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, p, 4096, "vdso")) {
            printf("no-anon-names\n");
            return 0;
        }
    } else if (!strcmp(mode, "shared")) {
        p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    } else if (!strcmp(mode, "deleted")) {
        int fd = mkstemp(tmpl);
        ftruncate(fd, 4096);
        p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
        unlink(tmpl);
    } else if (!strcmp(mode, "cow") || !strcmp(mode, "vdso")) {
        /* one byte of libc's code (or of the vdso) rewritten with its own value */
        const char *what = !strcmp(mode, "cow") ? "libc.so.6" : "[vdso]";
        unsigned long v = 0;
        FILE *f = fopen("/proc/self/maps", "r");
        char line[512];
        while (!v && fgets(line, sizeof(line), f))
            if (strstr(line, what) && strstr(line, " r-xp ")) sscanf(line, "%lx", &v);
        int mem = open("/proc/self/mem", O_RDWR);
        unsigned char c;
        if (!v || pread(mem, &c, 1, (off_t)v + 64) != 1 || pwrite(mem, &c, 1, (off_t)v + 64) != 1)
            return 4;
    }
    if (p == MAP_FAILED) { perror("mmap"); return 2; }
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", argv[1]);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) return 3;
    dprintf(s, "{\"report_data\": \"%0128d\"}\n", 0);
    ssize_t n; size_t len = 0;
    while ((n = read(s, buf + len, sizeof(buf) - 1 - len)) > 0) len += (size_t)n;
    fwrite(buf, 1, len, stdout);
    return 0;
}
"""

PEER_CASES = {
    "memfd": "'/memfd:peer-code (deleted)' (a memfd",
    "anon": "(anonymous memory: code made or loaded at run time)",
    "named-vdso": "'[anon:vdso]' (anonymous memory named by the process)",
    "shared": "'/dev/zero (deleted)' (shared anonymous memory)",
    "deleted": "(deleted)' (a deleted file",
    "cow": "libc.so.6' (its page at",
    "vdso": "'[vdso]' (its page at",
}


@pytest.mark.parametrize("mode", sorted(PEER_CASES))
def test_las_refuses_unmeasurable_peer(las, cbuild, mode):
    """kiln-las measures its peer from /proc: the same refusals, with the
    reason in its answer and in its log; an honest peer is still served."""
    peer = cbuild("las_peer", LAS_PEER_C)
    p = subprocess.run([str(peer), str(las.sock), mode], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    if p.stdout == "no-anon-names\n":
        pytest.skip("kernel without CONFIG_ANON_VMA_NAME: names cannot be set at all")
    assert p.stdout.startswith('{"error":'), p.stdout
    assert PEER_CASES[mode] in p.stdout and REFUSED in p.stdout
    log = las.log_path.read_text()
    assert "request refused" in log and PEER_CASES[mode].replace('"', '\\"') in log
    assert "evidence issued" not in log
    p = subprocess.run([str(peer), str(las.sock), "none"], capture_output=True, text=True,
                       timeout=60)
    assert p.stdout.startswith('{"format":"kiln-las-v1","payload":'), p.stdout[:200]
    assert "evidence issued" in las.log_path.read_text()


def test_kiln_measure_pid_refuses(cbuild, tmp_path):
    """`kiln measure --pid` applies the same rules to a running process."""
    prog = cbuild("holder", r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void)
{
    int fd = memfd_create("held", 0);
    ftruncate(fd, 4096);
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
""")
    proc = subprocess.Popen([str(prog)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        m = subprocess.run([str(BUILD / "kiln"), "measure", "--pid", str(proc.pid)],
                           capture_output=True, text=True)
    finally:
        proc.kill()
        proc.wait()
    assert m.returncode == 1
    assert "'/memfd:held (deleted)'" in m.stderr and REFUSED in m.stderr
