"""A TCP proxy in front of kiln-cas that calls on_accept(n) when its n-th
connection comes in, before forwarding a byte of it: a test can act at a known
step of a client's conversation with the CAS (TLS passes through untouched).
While `refusing` is set, a connection is closed as it comes in (the client's
request never reaches the CAS: a CAS cut off from its clients)."""
import socket
import threading


class CasProxy:
    def __init__(self, port, on_accept=lambda n: None):
        self.port, self.on_accept = port, on_accept
        self.accepted = 0
        self.refusing, self.refused = False, 0
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.lsock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.accepted += 1
            self.on_accept(self.accepted)
            if self.refusing:
                self.refused += 1
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.port))
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while (data := a.recv(65536)):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.lsock.close()
