"""Sends BATCHES batches of DEPTH pipelined `GET /plaintext` on CONNS connections to
127.0.0.1:PORT and reads every answer (benches/server_instructions.sh's load: a fixed count,
so two runs differ only by how many requests they served)."""

import socket
import sys
import time

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BODY = b"Hello, World!"


def connect(port, wait_s=60.0):
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the server (under valgrind) is still starting


def main():
    port, batches, depth, conns = (int(a) for a in sys.argv[1:5])
    socks = [connect(port) for _ in range(conns)]
    for s in socks:
        s.settimeout(60)
    batch = REQUEST * depth
    answered = 0
    for _ in range(batches):
        for s in socks:
            s.sendall(batch)
        for s in socks:
            buf = b""
            while buf.count(BODY) < depth:
                chunk = s.recv(65536)
                if not chunk:
                    sys.exit("the server closed a connection")
                buf += chunk
            answered += depth
    print(answered)


if __name__ == "__main__":
    main()
