"""scripts/check-deps.py, the module dependency check of `make check`: it passes
on this tree and fails, naming the file, line and edge, on small trees with one
forbidden include, one forbidden meson edge or one forbidden library each."""
import shutil
import subprocess
import sys

import pytest

from kilnenv import ROOT

SCRIPT = ROOT / "scripts" / "check-deps.py"


def check(root):
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True,
                          text=True, timeout=60)


def tree(tmp_path, files):
    """A project with the given files (path -> text) plus an empty top meson.build."""
    for path, text in {"meson.build": "project('t', 'c')\n"
                       "yaml = dependency('yaml-0.1')\n"
                       "jansson = dependency('jansson')\n", **files}.items():
        p = tmp_path / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


CLEAN = {
    "src/common/common.h": "#include <stdio.h>\n",
    "src/common/meson.build": "common_lib = static_library('c', 'err.c')\n"
                              "common_dep = declare_dependency(link_with : common_lib)\n",
    "src/casclient/conn.c": '#include "casclient/internal.h"\n#include "common/common.h"\n',
    "src/casclient/internal.h": '#include "casclient/casclient.h"\n',
    "src/casclient/casclient.h": '#include "common/common.h"\n',
    "src/casclient/meson.build": "casclient_src = files('conn.c')\n"
                                 "casclient_dep = declare_dependency(dependencies : [common_dep])\n",
    "src/cas/cas.h": "#include <jansson.h>\n",
    "src/cas/meson.build": "cas_dep = declare_dependency(dependencies : [common_dep, jansson])\n"
                           "cli_deps += [cas_dep, casclient_dep]\n",
    "src/policy/policy.h": "#include <yaml.h>\n",
    "src/policy/meson.build": "policy_dep = declare_dependency(dependencies : [yaml])\n",
    "src/evidence/evidence.h": '#include "common/common.h"\nstruct json_t;\n',
    "src/evidence/sim_produce.c": '#include "evidence/evidence.h"\n#include <stdio.h>\n',
    "src/evidence/sim_verify.c": '#include "evidence/evidence.h"\n#include <jansson.h>\n',
    "src/evidence/meson.build": "evidence_produce_src = files('sim_produce.c')\n"
                                "evidence_src = evidence_produce_src + files('sim_verify.c')\n"
                                "evidence_dep = declare_dependency(dependencies : [jansson])\n",
    "src/runtime/attest.c": '#include "casclient/casclient.h"\n#include "evidence/evidence.h"\n',
    "src/runtime/meson.build": "rt_src = files('attest.c') + casclient_src\n"
                               "rt_src += evidence_produce_src\n"
                               "sv = static_library('sv', 'attest.c',\n"
                               "  dependencies : [common_dep, casclient_dep])\n",
    "src/cli/main.c": '#include "cas/cas.h"\n#include "policy/policy.h"\n',
}


def test_this_tree_passes():
    p = check(ROOT)
    assert p.returncode == 0, p.stderr
    assert "every include and meson edge allowed" in p.stdout


def test_clean_fixture_passes(tmp_path):
    p = check(tree(tmp_path, CLEAN))
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("path,text,expect", [
    # The runtime includes the service's header (the edge this check was made for).
    ("src/runtime/attest.c", '#include "cas/cas.h"\n',
     'src/runtime/attest.c:1: runtime includes cas (#include "cas/cas.h")'),
    # Deeper in a module, on a later line.
    ("src/runtime/sys/open.c", '#include <stdio.h>\n\n#include "policy/policy.h"\n',
     'src/runtime/sys/open.c:3: runtime includes policy (#include "policy/policy.h")'),
    # The client reaches above common/crypto.
    ("src/casclient/conn.c", '#include "runtime/runtime.h"\n',
     "src/casclient/conn.c:1: casclient includes runtime"),
    # common reaches a module above it.
    ("src/common/common.h", '#include "crypto/crypto.h"\n',
     "src/common/common.h:1: common includes crypto"),
    # Another module's internal header, even where the module edge is allowed.
    ("src/runtime/attest.c", '#include "casclient/internal.h"\n',
     'runtime includes "casclient/internal.h", an internal header of casclient'),
    # A relative include that leaves the module.
    ("src/runtime/attest.c", '#include "../cas/cas.h"\n',
     '#include "../cas/cas.h" leaves the module'),
    # The service's libraries, seen through another module's header.
    ("src/runtime/attest.c", '#include "policy/policy.h"\n', "runtime includes policy"),
    ("src/casclient/casclient.h", '#include "common/common.h"\n#include <jansson.h>\n',
     "src/casclient/casclient.h: casclient compiles against <jansson.h>"),
])
def test_forbidden_include_fails(tmp_path, path, text, expect):
    p = check(tree(tmp_path, {**CLEAN, path: text}))
    assert p.returncode == 1, p.stdout + p.stderr
    assert expect in p.stderr, p.stderr
    assert "forbidden dependencies" in p.stderr


def test_forbidden_header_through_an_allowed_header(tmp_path):
    # casclient.h is allowed for the runtime, but it now drags in the event loop.
    p = check(tree(tmp_path, {**CLEAN, "src/casclient/casclient.h":
                              '#include "common/common.h"\n#include <event2/event.h>\n'}))
    assert p.returncode == 1
    assert ("src/runtime/attest.c: runtime compiles against <event2/event.h> through "
            "src/casclient/casclient.h") in p.stderr


@pytest.mark.parametrize("text,expect", [
    # The supervisor library takes the service (the edge of issue 14).
    ("sv = static_library('sv', 'attest.c',\n  dependencies : [common_dep, cas_dep])\n",
     "src/runtime/meson.build:1: runtime uses cas (cas_dep)"),
    # Compiling another module's file into libkiln.
    ("rt_src = files('attest.c', '../cas/client.c')\n",
     "src/runtime/meson.build:1: runtime builds cas (compiles '../cas/...')"),
    # Through a list variable, on a continued line.
    ("sv_deps = [common_dep,\n  policy_dep]\nsv = static_library('sv', dependencies : sv_deps)\n",
     "src/runtime/meson.build:1: runtime uses policy (policy_dep)"),
    # A library the runtime must not link.
    ("sv = static_library('sv', 'attest.c', dependencies : [yaml])\n",
     "src/runtime/meson.build:1: runtime uses yaml-0.1 (yaml)"),
])
def test_forbidden_meson_edge_fails(tmp_path, text, expect):
    p = check(tree(tmp_path, {**CLEAN, "src/runtime/meson.build": text}))
    assert p.returncode == 1, p.stdout + p.stderr
    assert expect in p.stderr, p.stderr


@pytest.mark.parametrize("files,expect", [
    # evidence.h drags jansson into every runtime file that includes it (issue 14 §3).
    ({"src/evidence/evidence.h": '#include "common/common.h"\n#include <jansson.h>\n'},
     "src/runtime/attest.c: runtime compiles against <jansson.h> through "
     "src/evidence/evidence.h"),
    # A producer libkiln compiles (through evidence_produce_src) includes jansson.
    ({"src/evidence/sim_produce.c": '#include "evidence/evidence.h"\n#include <jansson.h>\n'},
     "src/runtime/meson.build:2: runtime builds src/evidence/sim_produce.c: it compiles "
     "against <jansson.h>"),
    # The same by path, and a verifier libkiln must not compile.
    ({"src/runtime/meson.build": "rt_src = files('attest.c', '../evidence/sim_verify.c')\n"},
     "src/runtime/meson.build:1: runtime builds src/evidence/sim_verify.c: it compiles "
     "against <jansson.h>"),
])
def test_foreign_file_held_to_module_rules(tmp_path, files, expect):
    p = check(tree(tmp_path, {**CLEAN, **files}))
    assert p.returncode == 1, p.stdout + p.stderr
    assert expect in p.stderr, p.stderr


def test_cli_statements_are_the_clis(tmp_path):
    # `cli_deps += [...]` in a module's meson.build is the CLI's edge, not the module's.
    p = check(tree(tmp_path, {**CLEAN, "src/casclient/meson.build":
                              CLEAN["src/casclient/meson.build"] +
                              "cli_deps += [casclient_dep, policy_dep]\n"}))
    assert p.returncode == 0, p.stderr


def test_module_without_rules(tmp_path):
    p = check(tree(tmp_path, {**CLEAN, "src/net/net.c": '#include "common/common.h"\n'}))
    assert p.returncode == 2
    assert "src/net/ is a module without rules" in p.stderr


def test_copy_of_this_tree_with_one_bad_include(tmp_path):
    # The real tree, copied, with the include issue 14 found: the check names it.
    shutil.copytree(ROOT / "src", tmp_path / "src")
    shutil.copy(ROOT / "meson.build", tmp_path / "meson.build")
    f = tmp_path / "src" / "runtime" / "attest_proto.c"
    f.write_text('#include "cas/cas.h"\n' + f.read_text())
    p = check(tmp_path)
    assert p.returncode == 1
    assert 'src/runtime/attest_proto.c:1: runtime includes cas (#include "cas/cas.h")' in p.stderr
    assert p.stderr.count("check-deps: src/") == 1, p.stderr
