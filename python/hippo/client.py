"""The connection to a Hippo coordinator: hippo.connect() and Client.

Defaults follow the `hippo` CLI: the address from $HIPPO_COORDINATOR, else 127.0.0.1:50051; the
token from `token`, a token file, $HIPPO_TOKEN, the file $HIPPO_TOKEN_FILE, or ./hippo.db.token
(the file `hippo server` writes beside its default database), sent as gRPC metadata
``x-hippo-token``. Token files that other users may read are refused, as by the CLI.
"""

import json
import os
import stat

import grpc

from hippo import errors
from hippo import spec as spec_module
from hippo.v1 import hippo_pb2
from hippo.v1 import hippo_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
TOKEN_HEADER = "x-hippo-token"


def default_address():
    """$HIPPO_COORDINATOR, else 127.0.0.1:50051 (as the CLI)."""
    return os.environ.get("HIPPO_COORDINATOR") or DEFAULT_ADDRESS


# The file `hippo server` writes beside its default database (`--db hippo.db`).
DEFAULT_TOKEN_FILE = "hippo.db.token"


def _checked(text, where):
    """`text` stripped of surrounding whitespace, as the CLI does; a HippoError if it is no
    token (empty, or not printable ASCII without spaces)."""
    token = text.strip()
    if not token:
        raise errors.HippoError(f"{where}: holds no token")
    if len(token) > 4096 or any(not 0x21 <= ord(c) <= 0x7E for c in token):
        raise errors.HippoError(f"{where}: the token may hold only printable ASCII characters "
                                f"without spaces, at most 4096")
    return token


def read_token_file(path, where="token file"):
    """The token in `path`; a HippoError when it cannot be read or other users may read it."""
    label = f"{where} {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise errors.HippoError(f"{label}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise errors.HippoError(f"{label}: not a regular file")
        if info.st_mode & 0o077:
            raise errors.HippoError(f"{label}: its mode is {stat.S_IMODE(info.st_mode):04o}, so "
                                    f"other users may read the token: run chmod 600 {path}")
        text = file.read(8192).decode("ascii", errors="replace")
    return _checked(text, label)


def read_token(token=None, token_file=None):
    """The token to send: `token`, else `token_file`'s, else $HIPPO_TOKEN, else the file
    $HIPPO_TOKEN_FILE's, else ./hippo.db.token's if it exists, else None."""
    if token:
        return _checked(token, "token")
    if token_file:
        return read_token_file(token_file)
    if os.environ.get("HIPPO_TOKEN"):
        return _checked(os.environ["HIPPO_TOKEN"], "$HIPPO_TOKEN")
    if os.environ.get("HIPPO_TOKEN_FILE"):
        return read_token_file(os.environ["HIPPO_TOKEN_FILE"], "$HIPPO_TOKEN_FILE")
    if os.path.exists(DEFAULT_TOKEN_FILE):
        return read_token_file(DEFAULT_TOKEN_FILE)
    return None


# A StudyService call that fails UNAVAILABLE is tried again, up to 4 times within about a second
# and a half: a connection or TLS handshake that failed once, or a database busy for a moment,
# then costs the caller nothing. The coordinator answers UNAVAILABLE only for a call it did not
# carry out (not connected, shutting down, SQLite busy before its commit), so a retried
# CreateStudy or Tell is not applied twice. A coordinator that stays unreachable still raises
# hippo.Unavailable, about a second and a half later. (The worker's stream is not retried: the
# worker reconnects on its own.)
RETRY_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "hippo.v1.StudyService"}],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.2s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


def make_channel(address, tls=False):
    """A gRPC channel to `address`: plaintext when tls is False; with TLS when tls is True
    (system roots), a path to a PEM file of root certificates, or grpc.ChannelCredentials."""
    # Reconnect within 2 s of a coordinator coming back (gRPC's default backoff grows to 120 s).
    options = [("grpc.max_receive_message_length", 256 << 20),
               ("grpc.max_send_message_length", 64 << 20),
               ("grpc.initial_reconnect_backoff_ms", 100),
               ("grpc.min_reconnect_backoff_ms", 100),
               ("grpc.max_reconnect_backoff_ms", 2000),
               ("grpc.enable_retries", 1),
               ("grpc.service_config", RETRY_SERVICE_CONFIG)]
    if tls is False or tls is None:
        return grpc.insecure_channel(address, options=options)
    if tls is True:
        credentials = grpc.ssl_channel_credentials()
    elif isinstance(tls, (str, os.PathLike)):
        with open(tls, "rb") as file:
            credentials = grpc.ssl_channel_credentials(root_certificates=file.read())
    else:
        credentials = tls
    return grpc.secure_channel(address, credentials, options=options)


class Client:
    """A connection to one coordinator's StudyService. Make one with hippo.connect().

    Every method raises a HippoError subclass on failure (see hippo.errors).
    """

    def __init__(self, address=None, token=None, tls=False, token_file=None, timeout=30.0):
        self.address = address or default_address()
        self._token = read_token(token, token_file)
        self._metadata = ((TOKEN_HEADER, self._token),) if self._token else ()
        self.timeout = timeout
        self.channel = make_channel(self.address, tls)
        self.stub = hippo_pb2_grpc.StudyServiceStub(self.channel)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the channel."""
        self.channel.close()

    @property
    def metadata(self):
        """The call metadata (the token), for callers that use the raw stub."""
        return self._metadata

    def call(self, method, request, invalid=errors.InvalidArgument, timeout=None):
        """Calls StudyService `method` (e.g. "GetStudy") with the token; raises HippoError."""
        try:
            return getattr(self.stub, method)(request, metadata=self._metadata,
                                              timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise errors.from_grpc(error, invalid) from None

    def stream(self, method, request):
        """Opens a server stream (e.g. "WatchStudy") with the token; the caller iterates it."""
        return getattr(self.stub, method)(request, metadata=self._metadata)

    # -- studies -------------------------------------------------------------------------------

    def create_study(self, spec, no_merge=False, pruner=None):
        """Submits a study and returns its Study handle.

        `spec` is a dict with the fields of a YAML spec, a path to a YAML/JSON file, a
        hippo.StudySpec builder or a hippo.v1.StudySpec. `no_merge` runs it trial by trial
        (the baseline). `pruner` is used by ask/tell trials' should_prune() (default: a
        MedianPruner, as in Optuna). Raises InvalidSpec naming the field of a bad spec.
        """
        from hippo.study import Study

        request = hippo_pb2.CreateStudyRequest(spec=spec_module.to_proto(spec), no_merge=no_merge)
        return Study(self, self.call("CreateStudy", request, invalid=errors.InvalidSpec),
                     pruner=pruner)

    def get_study(self, study_id, pruner=None):
        """The Study with this id; NotFound if there is none."""
        from hippo.study import Study

        return Study(self, self.call("GetStudy", hippo_pb2.GetStudyRequest(study_id=study_id)),
                     pruner=pruner)

    def list_studies(self, page_size=0):
        """Every study on the coordinator (following page tokens when the server pages)."""
        from hippo.study import Study

        studies, token = [], ""
        while True:
            request = hippo_pb2.ListStudiesRequest(page_size=page_size, page_token=token)
            response = self.call("ListStudies", request)
            studies.extend(Study(self, study) for study in response.studies)
            token = response.next_page_token
            if not token:
                return studies

    def stop_study(self, study_id, reason=""):
        """Stops a study; returns its Study handle."""
        from hippo.study import Study

        request = hippo_pb2.StopStudyRequest(study_id=study_id, reason=reason)
        return Study(self, self.call("StopStudy", request))

    def pages(self, method, request):
        """Yields every page of a paged list RPC (`method`, e.g. "ListTrials"), following
        next_page_token from `request` (a request message with page_token) to the last page."""
        while True:
            response = self.call(method, request)
            yield response
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def workers(self):
        """The workers the coordinator knows (hippo.v1.WorkerInfo messages), every page."""
        return [worker for page in self.pages("ListWorkers", hippo_pb2.ListWorkersRequest())
                for worker in page.workers]


def connect(address=None, token=None, tls=False, token_file=None, timeout=30.0):
    """Connects to a coordinator and returns a Client.

    Args:
        address: host:port; default $HIPPO_COORDINATOR, else 127.0.0.1:50051.
        token: the coordinator's shared secret; default the token in `token_file`, else
            $HIPPO_TOKEN, else the token in the file $HIPPO_TOKEN_FILE, else in
            ./hippo.db.token (what `hippo server` makes beside its default database), else none.
        tls: False for plaintext; True for TLS with the system's roots; a PEM path of root
            certificates; or grpc.ChannelCredentials.
        token_file: a file holding the token (as the CLI's --token-file; whitespace around it is
            ignored; refused if other users may read it).
        timeout: seconds each unary call may take.

    Nothing is sent until the first call, so a wrong address surfaces as Unavailable then.
    """
    return Client(address, token=token, tls=tls, token_file=token_file, timeout=timeout)
