"""Fixtures: real `hippo server` processes on loopback ports with SQLite files in tmp_path.

The binary comes from $HIPPO_BINARY (set by ctest), else build/cli/hippo of the repository.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest

import hippo

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))


def hippo_binary():
    path = os.environ.get("HIPPO_BINARY") or os.path.join(REPO, "build", "cli", "hippo")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no hippo binary at {path}: build it (cmake --build build --target hippo) "
                    f"or set HIPPO_BINARY")
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A `hippo server` process; restart() starts a new one on the same port and database.

    Without `token` the server makes its token file beside the database (`token_file`); with
    one, the token goes to a 0600 file passed as --token-file. With `tls` (a (cert, key) pair of
    PEM files) it speaks TLS, and `tls_ca` is what clients trust."""

    def __init__(self, directory, token=None, extra_args=(), tls=None):
        self.directory = str(directory)
        self.db = os.path.join(self.directory, "hippo.db")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.token = token
        self.token_file = self.db + ".token"
        self.tls = tls
        self.explicit_token_file = token is not None
        if token is not None:
            self.token_file = os.path.join(self.directory, "token")
            with open(os.open(self.token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as file:
                file.write(token + "\n")
        self.extra_args = list(extra_args)
        self.process = None
        self.log_path = os.path.join(self.directory, "server.log")

    def start(self):
        args = [hippo_binary(), "server", "--listen", self.address, "--db", self.db,
                *self.extra_args]
        # No dashboard unless a test asks: tests at once would collide on its default port.
        if "--http" not in self.extra_args:
            args += ["--http", "off"]
        if self.explicit_token_file:
            args += ["--token-file", self.token_file]
        if self.tls:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        log = open(self.log_path, "a")
        env = {k: v for k, v in os.environ.items() if k != "HIPPO_TOKEN"}
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hippo server exited: {self.log()}")
            if self.tls:
                with open(self.tls[0], "rb") as file:
                    credentials = grpc.ssl_channel_credentials(root_certificates=file.read())
                channel = grpc.secure_channel(self.address, credentials)
            else:
                channel = grpc.insecure_channel(self.address)
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                pass
            finally:
                channel.close()
        raise RuntimeError(f"hippo server not ready on {self.address}: {self.log()}")

    def client(self, **kwargs):
        if "token" not in kwargs and "token_file" not in kwargs:
            kwargs["token_file"] = self.token_file
        if self.tls and "tls" not in kwargs:
            kwargs["tls"] = self.tls[0]
        return hippo.connect(self.address, **kwargs)

    def kill(self):
        """SIGKILL: no shutdown, as a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def restart(self):
        self.kill()
        return self.start()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self):
        with open(self.log_path) as file:
            return file.read()[-3000:]


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A server with its own token file, which this test's clients and child processes find
    through $HIPPO_TOKEN_FILE (as a user's shell would)."""
    started = Server(tmp_path).start()
    monkeypatch.delenv("HIPPO_TOKEN", raising=False)
    monkeypatch.setenv("HIPPO_TOKEN_FILE", started.token_file)
    yield started
    started.stop()


@pytest.fixture
def make_server(tmp_path):
    servers = []

    def make(**kwargs):
        directory = tmp_path / f"server{len(servers)}"
        directory.mkdir()
        started = Server(directory, **kwargs).start()
        servers.append(started)
        return started

    yield make
    for started in servers:
        started.stop()


class Processes:
    """Child processes (SDK workers, straight runs) that are ended after the test."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.children = []

    def python(self, script, *args, log_name=None):
        log_path = os.path.join(self.directory, log_name or f"{os.path.basename(script)}-"
                                                          f"{len(self.children)}.log")
        log = open(log_path, "w")
        child = subprocess.Popen([sys.executable, os.path.join(HERE, script), *map(str, args)],
                                 stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        log.close()
        child.log_path = log_path
        self.children.append(child)
        return child

    def end(self):
        for child in self.children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


@pytest.fixture
def processes(tmp_path):
    children = Processes(tmp_path)
    yield children
    children.end()
