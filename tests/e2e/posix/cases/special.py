"""Special files inside a volume: FIFOs (mkfifo, a writer and a reader in two
processes) and AF_UNIX sockets (bind, lstat, connect, unlink)."""
import os
import socket
import stat

from caselib import base_dir, check, out, read_all, res

base_dir("special")
out("mkfifo", res(os.mkfifo, "fifo", 0o600))
out("fifo_is_fifo", res(lambda: stat.S_ISFIFO(os.lstat("fifo").st_mode)))
out("fifo_listed", "fifo" in os.listdir("."))
check("mkfifo_existing", os.mkfifo, "fifo")
if os.path.exists("fifo"):
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open("fifo", os.O_WRONLY)
            os.write(fd, b"through the fifo")
            os.close(fd)
        finally:
            os._exit(0)
    data = read_all(os.open("fifo", os.O_RDONLY))
    os.waitpid(pid, 0)
    out("fifo_data", data)
    out("fifo_size", os.stat("fifo").st_size)
    check("unlink_fifo", os.unlink, "fifo")

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
out("bind", res(s.bind, "sock"))
out("sock_is_socket", res(lambda: stat.S_ISSOCK(os.lstat("sock").st_mode)))
out("sock_listed", "sock" in os.listdir("."))
s2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
check("bind_existing", s2.bind, "sock")
s2.close()
s.settimeout(10)
if os.path.exists("sock"):
    s.listen(1)
    pid = os.fork()
    if pid == 0:
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect("sock")
            c.sendall(b"through the socket")
            c.close()
        finally:
            os._exit(0)
    conn, _ = s.accept()
    data = b""
    while True:
        chunk = conn.recv(100)
        if not chunk:
            break
        data += chunk
    conn.close()
    os.waitpid(pid, 0)
    out("sock_data", data)
    out("getsockname_tail", res(lambda: s.getsockname().endswith("sock")))
s.close()
check("connect_after_close", lambda: socket.socket(socket.AF_UNIX).connect("sock"))
check("unlink_sock", os.unlink, "sock")
out("sock_gone", not os.path.lexists("sock"))
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
d.settimeout(10)
out("bind_dgram", res(d.bind, "dgram"))
out("sendto_dgram", res(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                        .sendto(b"hi", "dgram")))
out("recv_dgram", res(lambda: d.recv(10)) if os.path.exists("dgram") else "no socket")
d.close()
# splice from a pipe into a file, at the file position and at an offset
# (test_os test_splice_offset_out); a pipe offset is ESPIPE.
r, w = os.pipe()
os.write(w, b"0123456789")
fd = os.open("spliced", os.O_RDWR | os.O_CREAT, 0o644)
out("splice_offset_out", res(os.splice, r, fd, 6, offset_dst=3))
out("splice_position", res(os.splice, r, fd, 10))
out("spliced_data", res(lambda: os.pread(fd, 32, 0)))
out("splice_position_after", os.lseek(fd, 0, os.SEEK_CUR))
check("splice_pipe_offset", os.splice, r, fd, 1, offset_src=0)
out("splice_nonblock_empty", res(os.splice, r, fd, 4, flags=os.SPLICE_F_NONBLOCK))
os.close(fd)
os.close(r)
os.close(w)
os.unlink("spliced")
out("leftovers", sorted(os.listdir(".")))
check("mknod_chr", os.mknod, "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
if os.path.lexists("null"):
    os.unlink("null")
