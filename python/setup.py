"""Build hook: generates the gRPC stubs (hippo/v1/hippo_pb2*.py) from ../proto at build time.

The stubs are never committed. They are written into the build directory only, by protoc with
Debian's grpc_tools (python3-grpc-tools) or, without it, `protoc` with `grpc_python_plugin`
(protobuf-compiler-grpc). HIPPO_PROTO_DIR overrides where hippo/v1/hippo.proto is found.
"""

import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_FILE = os.path.join("hippo", "v1", "hippo.proto")


def _proto_dir():
    candidates = [os.environ.get("HIPPO_PROTO_DIR", ""), os.path.join(HERE, "..", "proto")]
    for candidate in candidates:
        if candidate and os.path.isfile(os.path.join(candidate, PROTO_FILE)):
            return os.path.abspath(candidate)
    raise SystemExit(
        "hippo: cannot find proto/hippo/v1/hippo.proto next to python/; "
        "build from a checkout of the repository or set HIPPO_PROTO_DIR"
    )


def _protoc_command(proto_dir, out_dir):
    includes = ["-I", proto_dir]
    try:
        import grpc_tools  # noqa: F401  (python3-grpc-tools)

        well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        if os.path.isdir(well_known):
            includes += ["-I", well_known]
        elif os.path.isdir("/usr/include/google/protobuf"):
            includes += ["-I", "/usr/include"]
        return [sys.executable, "-m", "grpc_tools.protoc", *includes,
                f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", PROTO_FILE]
    except ImportError:
        pass
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if not protoc or not plugin:
        raise SystemExit("hippo: generating the gRPC stubs needs python3-grpc-tools, or "
                         "protobuf-compiler with protobuf-compiler-grpc")
    return [protoc, *includes, "-I", "/usr/include", f"--plugin=protoc-gen-grpc_python={plugin}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", PROTO_FILE]


class BuildWithStubs(build_py):
    """build_py that also writes hippo/v1/hippo_pb2.py and hippo_pb2_grpc.py."""

    def run(self):
        super().run()
        proto_dir = _proto_dir()
        out_dir = os.path.abspath(self.build_lib)
        os.makedirs(os.path.join(out_dir, "hippo", "v1"), exist_ok=True)
        subprocess.run(_protoc_command(proto_dir, out_dir), cwd=proto_dir, check=True)


setup(cmdclass={"build_py": BuildWithStubs})
