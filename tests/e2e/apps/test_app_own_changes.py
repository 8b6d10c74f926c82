"""The lookup cache and a process's own namespace changes (docs/runtime.md,
"The lookup cache and a process's own changes"): a process that creates or
unlinks a name, or changes its open file's owner, keeps its other cached
stat answers when the volume server vouches that the namespace generation
moved by that change alone (no symlinks in the volume). sqlite's DELETE
mode: its -journal's create, fchown and unlink no longer make it ask the
server again about -wal and the database. What the change does alter --
the name itself, names below it, its directory, its inode's other links,
anything reached through a symlink, and every change of another process --
is asked again."""
import re
import time

from test_app_file_cache import App, write


def op_counts(volume):
    """The volume server's requests by operation (KILN_SHIELD_STATS=1)."""
    volume.wait_server_gone()
    line = [ln for ln in (volume.dir / ".kiln" / "server.log").read_text().splitlines()
            if "requests by operation:" in ln][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.split(":", 3)[-1])}


def test_own_changes_keep_other_lookups(volume):
    """sqlite's transaction shape, 50 times: create, fchown and unlink of a
    journal between stats of the database and of an absent -wal. Before,
    each change made the next stats ask the server (4 STATs a round); now
    only the journal's stat after its fchown does (its inode's answer goes),
    and the journal's own answers are right."""
    write(volume, "db", "x")
    app = App(volume, env={"KILN_SHIELD_STATS": "1"})
    try:
        d, j, wal = (str(volume.dir / n) for n in ("db", "db-journal", "db-wal"))
        for _ in range(50):
            assert app.ask("stat", d).startswith("ok ")
            assert app.ask("stat", wal) == "err 2"
            assert app.ask("create", j) == "ok"
            assert app.ask("stat", j).startswith("ok ")
            assert app.ask("create", j) == "err 17"
            assert app.ask("unlink", j) == "ok"
            assert app.ask("stat", j) == "err 2"
    finally:
        app.stop()
    ops = op_counts(volume)
    assert ops.get("STAT", 0) <= 60, ops


def test_other_process_change_seen_at_once(volume):
    """Two processes on one volume: whatever one changes, the other's next
    lookup sees, also when its own change comes right after (the server's
    account of that change starts at a generation its cached answers do
    not have: they go)."""
    write(volume, "q", "q")
    a, b = App(volume), App(volume)
    try:
        p, q = str(volume.dir / "p"), str(volume.dir / "q")
        assert a.ask("stat", p) == "err 2"
        assert a.ask("stat", q).startswith("ok ")
        assert a.ask("create", str(volume.dir / "mine")) == "ok"  # kept: own change
        assert b.ask("create", p) == "ok"
        assert a.ask("stat", p).startswith("ok ")
        assert b.ask("unlink", q) == "ok"
        assert a.ask("unlink", str(volume.dir / "mine")) == "ok"  # own, after b's
        assert a.ask("stat", q) == "err 2"
        assert a.ask("stat", p).startswith("ok ")
        assert b.ask("unlink", p) == "ok"
        assert a.ask("create", str(volume.dir / "mine")) == "ok"
        assert a.ask("stat", p) == "err 2"
    finally:
        a.stop()
        b.stop()


def test_own_change_through_symlink(volume):
    """With a symlink in the volume a node may have two paths: l/x is d/x.
    The server does not vouch, and the cached ENOENT of l/x goes."""
    volume.run("sh", "-c", f"mkdir {volume.dir}/d && ln -s d {volume.dir}/l", check=True)
    app = App(volume)
    try:
        assert app.ask("stat", str(volume.dir / "l" / "x")) == "err 2"
        assert app.ask("create", str(volume.dir / "d" / "x")) == "ok"
        assert app.ask("stat", str(volume.dir / "l" / "x")).startswith("ok ")
        assert app.ask("unlink", str(volume.dir / "d" / "x")) == "ok"
        assert app.ask("stat", str(volume.dir / "l" / "x")) == "err 2"
    finally:
        app.stop()


def test_own_change_other_link_directory_and_below(volume):
    """Unlinking one of two hard links changes the other's link count; a
    create changes its directory's mtime and turns ENOENT below the new
    file's name into ENOTDIR."""
    write(volume, "a", "a")
    volume.run("sh", "-c", f"mkdir {volume.dir}/d && ln {volume.dir}/a {volume.dir}/b",
               check=True)
    app = App(volume)
    try:
        b, d = str(volume.dir / "b"), str(volume.dir / "d")
        assert app.ask("stat", b).split()[2] == "2"
        assert app.ask("unlink", str(volume.dir / "a")) == "ok"
        assert app.ask("stat", b).split()[2] == "1"
        mtime = app.ask("stat", d).split()[3]
        assert app.ask("stat", d + "/f/x") == "err 2"
        time.sleep(0.01)
        assert app.ask("create", d + "/f") == "ok"
        assert app.ask("stat", d).split()[3] != mtime
        assert app.ask("stat", d + "/f/x") == "err 20"
    finally:
        app.stop()
