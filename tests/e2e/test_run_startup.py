"""kiln run's start-up: what the launcher maps before the program's exec
(docs/runtime.md, "Start-up cost of kiln run"). Never timings: what is
loaded, and that the fast paths stay correct."""
import os
import subprocess


def loaded_objects(path):
    """The shared objects the dynamic loader maps for path, as ldd lists them
    (without running it)."""
    env = dict(os.environ, LD_TRACE_LOADED_OBJECTS="1")
    p = subprocess.run([path], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def test_launcher_does_not_map_the_store_libraries(kiln_bin):
    """libpq (with Kerberos, LDAP, GnuTLS and their constructors) and
    libsqlite3 are loaded by the CAS store when it opens, not by every kiln
    command: `kiln run` pays for none of them."""
    libs = loaded_objects(kiln_bin)
    for lib in ("libpq.so", "libsqlite3.so", "libgnutls.so", "libkrb5.so", "libldap"):
        assert not [x for x in libs if x.startswith(lib)], (lib, libs)
