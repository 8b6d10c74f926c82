"""A server and a client that exercise what programs do with sockets, run under
the network shield on both ends (tests/e2e/apps/test_app_net_semantics.py).

server PORT [MODE]: an edge-triggered epoll loop (non-blocking sockets,
    reads until EAGAIN). MODE prefork: forks two children after listen()
    that accept on the shared socket (nginx's workers); MODE forkeach: the
    parent accepts and a forked child serves each connection (the classic
    pre-fork-free Unix server). Each connection starts with one command line:
      echo            echo until EOF, then close
      sha             read until EOF (the client's shutdown), answer the hex
                      SHA-256 of what came, then close (half-close)
      late            wait 0.3 s, say "late\\n", then echo
      big N           send N bytes (a pattern), then close
      pid             answer the serving process's pid
client PORT [REFUSED_PORT]: runs every check against the server and prints
    "ok NAME" for each; any failure raises."""
import errno
import hashlib
import os
import select
import socket
import sys
import time


def pattern(n):
    block = bytes(range(256)) * 64
    return (block * (n // len(block) + 1))[:n]


# ---- server -------------------------------------------------------------------
class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.inbuf = b""
        self.cmd = None
        self.out = b""
        self.close_after = False
        self.sha = hashlib.sha256()
        self.late_at = None


def serve(lsock, oneshot=None):
    ep = select.epoll()
    conns = {}
    if lsock is not None:
        lsock.setblocking(False)
        ep.register(lsock.fileno(), select.EPOLLIN)
    if oneshot is not None:
        oneshot.setblocking(False)
        conns[oneshot.fileno()] = Conn(oneshot)
        ep.register(oneshot.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLET)

    def flush(c):
        while c.out:
            try:
                n = c.sock.send(c.out)
            except BlockingIOError:
                return
            except OSError:
                c.out = b""
                c.close_after = True
                return
            c.out = c.out[n:]

    def finish(fd):
        c = conns.pop(fd)
        ep.unregister(fd)
        c.sock.close()

    def handle(fd):
        c = conns[fd]
        eof = False
        while True:  # edge-triggered: until EAGAIN
            try:
                data = c.sock.recv(1000)
            except BlockingIOError:
                break
            except OSError:
                eof = True
                break
            if not data:
                eof = True
                break
            if c.cmd is None:
                c.inbuf += data
                if b"\n" not in c.inbuf:
                    continue
                line, rest = c.inbuf.split(b"\n", 1)
                c.cmd = line.decode().split()
                data = rest
                if c.cmd[0] == "big":
                    c.out += pattern(int(c.cmd[1]))
                    c.close_after = True
                elif c.cmd[0] == "pid":
                    c.out += b"%d\n" % os.getpid()
                    c.close_after = True
                elif c.cmd[0] == "late":
                    c.late_at = time.time() + 0.3
            if c.cmd[0] in ("echo", "late"):
                if c.late_at is None:
                    c.out += data
                else:
                    c.inbuf = data
            elif c.cmd[0] == "sha":
                c.sha.update(data)
        if eof and c.cmd and c.cmd[0] == "sha":
            c.out += c.sha.hexdigest().encode() + b"\n"
            c.close_after = True
        elif eof:
            c.close_after = True
        flush(c)
        if c.close_after and not c.out:
            finish(fd)

    while True:
        timeout = 0.05 if any(c.late_at for c in conns.values()) else -1
        for fd, ev in ep.poll(timeout):
            if lsock is not None and fd == lsock.fileno():
                while True:
                    try:
                        s, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    s.setblocking(False)
                    conns[s.fileno()] = Conn(s)
                    ep.register(s.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLET |
                                select.EPOLLRDHUP)
                continue
            if fd not in conns:
                continue
            if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLRDHUP | select.EPOLLERR):
                handle(fd)
            elif fd in conns and ev & select.EPOLLOUT:
                c = conns[fd]
                flush(c)
                if c.close_after and not c.out:
                    finish(fd)
        for fd, c in list(conns.items()):
            if c.late_at and time.time() >= c.late_at:
                c.late_at = None
                c.out += b"late\n" + c.inbuf
                c.inbuf = b""
                flush(c)
        if oneshot is not None and not conns:
            return


def server(port, mode="single"):
    family = socket.AF_INET6 if ":" in os.environ.get("PROBE_ADDR", "") else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    lsock.bind(("::" if family == socket.AF_INET6 else "127.0.0.1", port))
    lsock.listen(4096)
    print("listening", flush=True)
    if mode == "prefork":
        kids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                serve(lsock)
                os._exit(0)
            kids.append(pid)
        for pid in kids:
            os.waitpid(pid, 0)
    elif mode == "forkeach":
        while True:
            s, _ = lsock.accept()
            pid = os.fork()
            if pid == 0:
                lsock.close()
                serve(None, oneshot=s)
                os._exit(0)
            s.close()
            while True:  # reap
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
    else:
        serve(lsock)


# ---- client ---------------------------------------------------------------------
def conn(port, cmd=None, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=30)
    if cmd:
        s.sendall(cmd.encode() + b"\n")
    return s


def recv_all(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print("ok", name, flush=True)


def client(port, refused_port=None):
    # Blocking echo of sizes around one record, then EOF.
    for n in (1, 16383, 16384, 16385, 1 << 20):
        s = conn(port, "sha")
        data = pattern(n)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # half-close: the answer still comes
        got = recv_all(s).strip().decode()
        s.close()
        check(f"sha-{n}", got == hashlib.sha256(data).hexdigest(), got)

    # A big download read with a small buffer.
    s = conn(port, "big 3000000")
    got = b""
    while True:
        d = s.recv(777)
        if not d:
            break
        got += d
    s.close()
    check("big-small-reads", got == pattern(3000000), len(got))

    # MSG_PEEK looks without consuming; MSG_WAITALL waits for all.
    s = conn(port, "echo")
    s.sendall(b"abcdefgh" * 1000)
    peek = s.recv(4, socket.MSG_PEEK)
    whole = s.recv(8000, socket.MSG_WAITALL)
    check("peek", peek == b"abcd", peek)
    check("waitall", whole == b"abcdefgh" * 1000, len(whole))

    # writev / readv (sendmsg with several buffers, recvmsg_into).
    s.sendmsg([b"one,", b"two,", b"three"])
    b1, b2 = bytearray(5), bytearray(8)
    n = s.recvmsg_into([b1, b2], 0, socket.MSG_WAITALL)[0]
    check("vectors", n == 13 and bytes(b1) + bytes(b2) == b"one,two,three", bytes(b1 + b2))

    # poll: nothing readable yet, then the late answer.
    s2 = conn(port, "late")
    p = select.poll()
    p.register(s2.fileno(), select.POLLIN)
    early = p.poll(50)
    late = p.poll(5000)
    check("poll-none-then-in", early == [] and late and late[0][1] & select.POLLIN,
          (early, late))
    check("poll-data", s2.recv(100) == b"late\n")

    # select, and an edge-triggered epoll on the client side, 1-byte reads
    # until EAGAIN: the plaintext held inside the runtime must be readable.
    s2.setblocking(False)
    s2.sendall(b"x" * 50000)
    r, _, _ = select.select([s2], [], [], 10)
    check("select-in", r == [s2])
    ep = select.epoll()
    ep.register(s2.fileno(), select.EPOLLIN | select.EPOLLET)
    got = 0
    deadline = time.time() + 20
    while got < 50000 and time.time() < deadline:
        ev = ep.poll(1)
        while True:
            try:
                d = s2.recv(1)
            except BlockingIOError:
                break
            if not d:
                break
            got += 1
    check("epoll-et-1-byte-reads", got == 50000, got)
    ep.close()
    s2.close()
    s.close()

    # Non-blocking connect: EINPROGRESS, writable once the handshake is done.
    s = socket.socket()
    s.setblocking(False)
    e = s.connect_ex(("127.0.0.1", port))
    check("nb-connect", e in (0, errno.EINPROGRESS), e)
    _, w, _ = select.select([], [s], [], 10)
    check("nb-connect-writable", w == [s] and
          s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
    s.setblocking(True)
    s.sendall(b"pid\n")
    check("nb-connect-use", recv_all(s).strip().isdigit())
    s.close()

    # A refused non-blocking connect: SO_ERROR says so.
    if refused_port:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", refused_port))
        select.select([], [s], [], 10)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        check("so-error-refused", err == errno.ECONNREFUSED, err)
        s.close()

    # sendfile from a file, splice from the socket into a pipe.
    path = "/tmp/net_probe_%d" % os.getpid()
    data = pattern(200000)
    with open(path, "wb") as f:
        f.write(data)
    s = conn(port, "sha")
    with open(path, "rb") as f:
        s.sendfile(f)
    s.shutdown(socket.SHUT_WR)
    check("sendfile", recv_all(s).strip().decode() == hashlib.sha256(data).hexdigest())
    s.close()
    os.unlink(path)
    s = conn(port, "big 100000")
    s.settimeout(None)  # blocking (a timeout makes Python's sockets non-blocking)
    rd, wr = os.pipe()
    got = b""
    while len(got) < 100000:
        n = os.splice(s.fileno(), wr, 65536)
        if n == 0:
            break
        got += os.read(rd, n)
    check("splice-out", got == pattern(100000), len(got))
    s.close()
    s = conn(port, "sha")
    os.write(wr, b"through a pipe")
    check("splice-in", os.splice(rd, s.fileno(), 14) == 14)
    s.shutdown(socket.SHUT_WR)
    check("splice-in-data", recv_all(s).strip().decode() ==
          hashlib.sha256(b"through a pipe").hexdigest())
    s.close()
    os.close(rd)
    os.close(wr)

    # Many connections open at once.
    many = [conn(port, "echo") for _ in range(int(os.environ.get("PROBE_MANY", "1000")))]
    for i, s in enumerate(many):
        s.sendall(b"%d\n" % i)
    ok = all(s.recv(100) == b"%d\n" % i for i, s in enumerate(many))
    for s in many:
        s.close()
    check("many-connections", ok)

    # IPv6 when the server listens on it.
    if os.environ.get("PROBE_V6"):
        s = conn(port, "pid", host="::1")
        check("ipv6", recv_all(s).strip().isdigit())
        s.close()
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "single")
    else:
        client(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
