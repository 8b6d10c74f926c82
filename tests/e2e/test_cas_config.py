"""kiln cas serve --config FILE (docs/cas.md, "Configuration file"): every
long option is a key; the command line wins; SIGHUP re-reads the file and
applies its log-level, names other changes, and keeps the running settings
when the file has become invalid; a bad file is refused before anything
starts, naming FILE:LINE and what is wrong; SIGHUP without --config is logged
and ignored (it used to end the process)."""
import os
import signal
import ssl
import subprocess
import time

from cryptography import x509

from cas_fixtures import CasServer


def wait_log(cas, text, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in cas.log():
            return True
        time.sleep(0.1)
    return False


def test_config_file_settings_and_sighup(kiln_bin, tmp_path):
    conf = tmp_path / "cas.conf"
    conf.write_text("# kiln-cas\n"
                    "listen = 127.0.0.1:1   # the command line's --listen wins\n"
                    "san = cas.example.org\n"
                    "san = \"10.0.0.7\"\n"
                    "log-level = warn\n"
                    "verbose = false\n")
    cas = CasServer(kiln_bin, tmp_path, ["--config", str(conf)]).start()
    try:
        # The file's SANs are in the server certificate (repeatable: both).
        pem = ssl.get_server_certificate(("127.0.0.1", cas.port))
        san = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        assert "cas.example.org" in san.get_values_for_type(x509.DNSName)
        assert "10.0.0.7" in [str(a) for a in san.get_values_for_type(x509.IPAddress)]
        # SIGHUP: log-level info from now on; a change of another key is named.
        conf.write_text(conf.read_text().replace("log-level = warn", "log-level = info")
                        .replace("san = cas.example.org", "san = other.example.org"))
        cas.proc.send_signal(signal.SIGHUP)
        assert wait_log(cas, 'msg="configuration reloaded"')
        assert "log_level=info" in cas.log()
        assert "take effect at the next start" in cas.log()
        # A file that no longer reads: said, and nothing changes.
        conf.write_text(conf.read_text() + "log-level = loud\n")
        cas.proc.send_signal(signal.SIGHUP)
        assert wait_log(cas, "configuration not reloaded")
        assert "already set on line" in cas.log()
        assert cas.proc.poll() is None
        pem2 = ssl.get_server_certificate(("127.0.0.1", cas.port))
        assert pem2 == pem
    finally:
        rc = cas.stop()
    assert rc == 0, cas.log()
    # At level info the shutdown line is written (it is not at warn).
    assert 'msg="shutting down"' in cas.log()


def test_config_file_alone_and_warn_level(kiln_bin, tmp_path):
    data = tmp_path / "data"
    conf = tmp_path / "cas.conf"
    conf.write_text(f"data = \"{data}\"  # quoted\nlisten = 127.0.0.1:0 # any port\n"
                    "log-level = warn\n")
    p = subprocess.Popen([kiln_bin, "cas", "serve", "--config", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("ca-fingerprint ")
        assert p.stdout.readline().startswith("listening https://127.0.0.1:")
        assert (data / "ca.pem").exists()
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "shutting down" not in err  # an info line, below warn


def test_sighup_without_config_is_not_fatal(kiln_bin, tmp_path):
    cas = CasServer(kiln_bin, tmp_path).start()
    cas.proc.send_signal(signal.SIGHUP)
    assert wait_log(cas, "nothing to reload (started without --config)")
    assert cas.proc.poll() is None
    assert cas.stop() == 0


def test_bad_config_files(kiln, tmp_path):
    def serve(text, mode=0o640):
        conf = tmp_path / "bad.conf"
        if conf.exists() or conf.is_symlink():
            conf.unlink()
        conf.write_bytes(text if isinstance(text, bytes) else text.encode())
        os.chmod(conf, mode)
        return kiln("cas", "serve", "--config", conf, "--data", tmp_path / "d", timeout=30)

    cases = [
        ("listen 127.0.0.1:1\n", "bad.conf:1: expected 'KEY = VALUE'"),
        ("# ok\nlissten = 127.0.0.1:1\n", "bad.conf:2: unknown key 'lissten'"),
        ("config = /etc/x\n", "bad.conf:1: unknown key 'config'"),
        ("threads = 2\nthreads = 3\n", "bad.conf:2: 'threads' is already set on line 1"),
        ("verbose = maybe\n", "bad.conf:1: 'verbose' is a switch: expected true or false"),
        ("listen =\n", "bad.conf:1: 'listen' needs a value"),
        ("listen = # none\n", "bad.conf:1: 'listen' needs a value"),
        ("data = \"/x\n", "bad.conf:1: 'data': the quote is not closed"),
        ("data = \"/x\" /y\n", "bad.conf:1: 'data': text after the quoted value"),
        ("threads = 999\n", "--threads '999': expected a number from 1 to 64"),
        ("log-level = loud\n", "--log-level 'loud': expected debug, info, warn or error"),
        (b"listen = 1\x00\n", "a NUL byte: not a text file"),
    ]
    for text, msg in cases:
        p = serve(text)
        assert p.returncode == 2, (text, p.returncode, p.stderr)
        assert msg in p.stderr, (text, p.stderr)
        assert not (tmp_path / "d").exists()
    p = serve("threads = 2\n", 0o666)
    assert p.returncode == 2 and "writable by every user: refusing it" in p.stderr
    p = kiln("cas", "serve", "--config", tmp_path / "none.conf", "--data", tmp_path / "d")
    assert p.returncode == 2 and "none.conf: No such file or directory" in p.stderr
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)
    p = kiln("cas", "serve", "--config", fifo, "--data", tmp_path / "d", timeout=30)
    assert p.returncode == 2 and "not a regular file" in p.stderr
