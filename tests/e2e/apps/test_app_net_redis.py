"""redis-server behind a shielded listen port, checked with redis-cli --tls and
redis-benchmark --tls (the policy's CA from kiln policy certificate): the
program itself speaks plaintext RESP and knows nothing of TLS."""
import subprocess

from kilnapps import need
from netenv import free_port, listen_policy, wait_port


def test_redis_behind_the_shield(net, tmp_path):
    server, cli, bench = need("redis-server"), need("redis-cli"), need("redis-benchmark")
    port = free_port()
    net.apply(listen_policy("t/redis", "redis", [
        server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", tmp_path, "--daemonize", "no"], port))
    srv = net.start("t/redis", "redis", program=server)
    wait_port(port, srv)
    ca = net.cert("t/redis:ca")

    def rcli(*args, tls=True):
        opts = ["--tls", "--cacert", str(ca)] if tls else []
        return subprocess.run([cli, "-h", "127.0.0.1", "-p", str(port), *opts, *args],
                              capture_output=True, text=True, timeout=60)

    assert rcli("SET", "k", "v" * 100000).stdout.strip() == "OK"
    assert rcli("GET", "k").stdout.strip() == "v" * 100000
    assert rcli("PING").stdout.strip() == "PONG"
    # Plaintext RESP never reaches the program.
    p = rcli("PING", tls=False)
    assert "PONG" not in p.stdout
    b = subprocess.run([bench, "-h", "127.0.0.1", "-p", str(port), "--tls", "--cacert", str(ca),
                        "-n", "2000", "-c", "8", "-t", "set,get", "-q"],
                       capture_output=True, text=True, timeout=120)
    assert b.returncode == 0, b.stderr
    assert "SET:" in b.stdout and "GET:" in b.stdout, b.stdout + b.stderr
    assert rcli("DBSIZE").stdout.strip() != "0"
    assert srv.alive(), srv.err()
