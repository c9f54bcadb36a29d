#!/usr/bin/env python3
"""A fake Redis for the TAP tests: speaks RESP on 127.0.0.1:PORT and answers
SCAN with a cursor that never comes back to 0 ("1" forever) or that is not a
number ("abc"), according to MODE; other commands get a harmless reply.

    python3 120_fake_redis.py PORT cursor1|abc
"""
import socketserver
import sys

PORT = int(sys.argv[1])
MODE = sys.argv[2]
CURSOR = {"cursor1": b"1", "abc": b"abc"}[MODE]


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


class Handler(socketserver.StreamRequestHandler):
    def read_command(self):
        line = self.rfile.readline()
        if not line:
            return None
        if not line.startswith(b"*"):
            return line.strip().split()  # inline command
        n = int(line[1:].strip())
        args = []
        for _ in range(n):
            hdr = self.rfile.readline()
            size = int(hdr[1:].strip())
            data = self.rfile.read(size + 2)
            args.append(data[:-2])
        return args

    def handle(self):
        while True:
            try:
                cmd = self.read_command()
            except (ConnectionError, ValueError):
                return
            if cmd is None:
                return
            if not cmd:
                continue
            name = cmd[0].upper()
            if name == b"SCAN":
                reply = b"*2\r\n" + bulk(CURSOR) + b"*0\r\n"
            elif name == b"PING":
                reply = b"+PONG\r\n"
            elif name == b"GET":
                reply = b"$-1\r\n"
            elif name == b"MGET":
                reply = b"*%d\r\n" % (len(cmd) - 1) + b"$-1\r\n" * (len(cmd) - 1)
            elif name in (b"UNLINK", b"DEL", b"EXISTS", b"PUBLISH"):
                reply = b":0\r\n"
            elif name in (b"TTL", b"PTTL"):
                reply = b":-2\r\n"
            elif name == b"INFO":
                reply = bulk(b"# fake\r\n")
            elif name == b"DBSIZE":
                reply = b":0\r\n"
            else:
                reply = b"+OK\r\n"
            try:
                self.wfile.write(reply)
                self.wfile.flush()
            except ConnectionError:
                return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with Server(("127.0.0.1", PORT), Handler) as srv:
    srv.serve_forever()
