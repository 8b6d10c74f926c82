"""What a program writes to a shielded socket in consecutive calls goes out as
one TLS record when it can (net/hold.c), never held while the peer may be
waiting for it. A shielded Python server answers the way nginx does (the
header with a vectored send, the body with sendfile, then a blocking read for
the next request); a client outside kiln counts the records of each answer.
MSG_MORE and TCP_CORK, a server that sends and then computes without a system
call (the engine's bound), and a non-blocking flood through EAGAIN and
edge-triggered epoll."""
import os
import time

from netenv import PYTHON, TlsRecords, free_port, listen_policy, wait_port

SERVER = r"""
import mmap, os, select, socket, sys
port, body = int(sys.argv[1]), sys.argv[2]
HDR = b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n"
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(8)
bf = os.open(body, os.O_RDONLY)
while True:
    s, _ = ls.accept()
    buf = b""
    while True:
        while b"\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        if b"\n" not in buf:
            break
        line, buf = buf.split(b"\n", 1)
        cmd = line.decode().split()
        if cmd[0] == "resp":  # nginx: writev, sendfile, then wait in read
            s.sendmsg([HDR[:17], HDR[17:]])
            os.sendfile(s.fileno(), bf, 0, 4096)
        elif cmd[0] == "more":
            s.send(b"m" * 100, socket.MSG_MORE)
            s.send(b"n" * 100)
        elif cmd[0] == "cork":
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            s.send(b"c" * 100)
            s.send(b"k" * 100)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        elif cmd[0] == "spin":  # send, then compute without a system call
            fd = os.open(cmd[1], os.O_RDONLY)
            mm = mmap.mmap(fd, 1, mmap.MAP_SHARED, mmap.PROT_READ)
            s.send(b"ping\n")
            while mm[0] == 0:
                pass
            s.send(b"done\n")
        elif cmd[0] == "flood":  # non-blocking: EAGAIN, then EPOLLOUT (edge)
            n, i, pending, eagain, stalls = int(cmd[1]), 0, b"", 0, 0
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            s.setblocking(False)
            ep = select.epoll()
            ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLET)
            while i < n or pending:
                if not pending:
                    pending = b"%08d" % i + b"." * 91 + b"\n"
                    i += 1
                try:
                    pending = pending[s.send(pending):]
                except BlockingIOError:
                    eagain += 1
                    if not ep.poll(30):
                        stalls += 1
            ep.close()
            s.setblocking(True)
            s.send(b"eagain %d stalls %d\n" % (eagain, stalls))
    s.close()
"""


def test_consecutive_writes_share_a_record(net, tmp_path):
    port = free_port()
    body = tmp_path / "body.bin"
    body.write_bytes(os.urandom(4096))
    flag = tmp_path / "flag"
    flag.write_bytes(b"\0")
    net.apply(listen_policy("t/coalesce", "server", [PYTHON, "-c", SERVER, port, body], port))
    server = net.start("t/coalesce", "server")
    wait_port(port, server)
    hdr = b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n"
    c = TlsRecords(port, net.cert("t/coalesce:ca"))
    try:
        # Header and body, written by two calls, are one record; the server
        # then waits in read: the answer must not wait with it. The held
        # header is sealed alone when the body comes more than the hold bound
        # (0.25-1 ms) after it, which a loaded machine does now and then
        # (CI at load 8 saw one such split): so some of the answers, not all,
        # must be one record, and a split one is exactly the two writes. The
        # runtime before holding never makes one record.
        all_sizes = []
        for _ in range(8):
            c.send(b"resp\n")
            got, sizes = c.recv_exactly(len(hdr) + 4096)
            assert got == hdr + body.read_bytes()
            assert sizes in ([len(hdr) + 4096], [len(hdr), 4096]), sizes
            all_sizes.append(sizes)
        assert [len(hdr) + 4096] in all_sizes, all_sizes
        # A MSG_MORE pair and a corked pair: one record each (with the same
        # allowance for a split under load).
        for cmd, want in ((b"more\n", b"m" * 100 + b"n" * 100),
                          (b"cork\n", b"c" * 100 + b"k" * 100)):
            all_sizes = []
            for _ in range(4):
                c.send(cmd)
                got, sizes = c.recv_exactly(200)
                assert got == want and sizes in ([200], [100, 100]), (cmd, sizes)
                all_sizes.append(sizes)
            assert [200] in all_sizes, (cmd, all_sizes)
        # Sent, then no system call until the client answered through
        # shared memory: only the engine's bound gets "ping" out (without
        # it, the client's read times out).
        c.send(f"spin {flag}\n".encode())
        assert c.recv_exactly(5)[0] == b"ping\n"
        with open(flag, "r+b") as f:
            f.write(b"\1")
        assert c.recv_exactly(5)[0] == b"done\n"
        # 20000 small writes (2 MB) into a socket (SO_SNDBUF 4 KiB) the client
        # does not read yet: the server meets EAGAIN, waits for EPOLLOUT (edge-triggered),
        # goes on; the stream arrives whole and in order.
        c.send(b"flood 20000\n")
        time.sleep(1)
        got, _ = c.recv_exactly(20000 * 100)
        assert got == b"".join(b"%08d" % i + b"." * 91 + b"\n" for i in range(20000))
        line = b""
        while not line.endswith(b"\n"):
            line += c.recv_exactly(1)[0]
        words = line.split()
        assert words[0] == b"eagain" and int(words[1]) > 0, line
        assert words[2:] == [b"stalls", b"0"], line
    finally:
        c.close()
    assert server.alive(), server.err()
