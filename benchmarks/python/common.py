"""Shared by the Python benchmarks: a `hippo server` on a free loopback port and a fresh
SQLite file, stopped on exit."""

import os
import shutil
import socket
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_hippo(given=None):
    for candidate in (given, os.path.join(REPO, "build", "cli", "hippo"), shutil.which("hippo")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("no hippo binary: build it (cmake --build build --target hippo) or pass "
                     "--hippo")


class LocalServer:
    """`hippo server` in `directory`; a context manager."""

    def __init__(self, directory, binary=None):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{sock.getsockname()[1]}"
        self.db = os.path.join(directory, "hippo.db")
        self.log = open(os.path.join(directory, "server.log"), "w")
        self.process = subprocess.Popen(
            # No dashboard: its default port would make a second server at once fail to start.
            [find_hippo(binary), "server", "--listen", self.address, "--db", self.db,
             "--http", "off"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self):
        import hippo

        # The server makes its token beside the database before it listens; this process and
        # its children (the benchmarks' clients and workers) find it through $HIPPO_TOKEN_FILE.
        token_file = self.db + ".token"
        os.environ["HIPPO_TOKEN_FILE"] = token_file
        for _ in range(600):  # 60 s, as the tests' harness waits on a loaded machine
            try:
                if os.path.exists(token_file):
                    hippo.connect(self.address).list_studies()
                    return self
            except hippo.HippoError:  # not listening yet, or its token file not written yet
                pass
            time.sleep(0.1)
        raise SystemExit(f"hippo server did not start on {self.address}")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait()
        self.log.close()
