"""The kiln CLI itself: help, version, unknown commands."""


def test_help_lists_commands(kiln):
    p = kiln("--help")
    assert p.returncode == 0
    assert "Usage: kiln COMMAND" in p.stdout


def test_version(kiln):
    p = kiln("--version")
    assert p.returncode == 0
    assert p.stdout.startswith("kiln ")


def test_unknown_command_is_usage_error(kiln):
    p = kiln("frobnicate")
    assert p.returncode == 2
    assert "unknown command 'frobnicate'" in p.stderr


def test_no_args_is_usage_error(kiln):
    p = kiln()
    assert p.returncode == 2
    assert "Usage" in p.stderr
