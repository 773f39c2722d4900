"""The chief's oracle over gRPC, answering only its own workers.

keras-tuner 1.4.8 serves the chief's oracle on an insecure port to anyone
who can reach it, loses a worker's failure message on the way, and its
`synchronized` lock stays held when an oracle call raises, so the chief
hangs. Here the chief serves it itself:

* **A shared secret.** With `FNAS_ORACLE_SECRET` set (the same value in
  every process), the chief refuses every call that does not carry it
  (`UNAUTHENTICATED`, logged with the caller's address; no oracle method
  runs), and workers send it with each call.
* **TLS, optionally.** With `FNAS_ORACLE_CERT` (a PEM certificate, in every
  process) and `FNAS_ORACLE_KEY` (its private key, on the chief), the
  channel is encrypted and workers check that they talk to the chief.
* **Failures told.** A worker's failed-trial message (its traceback) goes
  with `end_trial`, as call metadata: keras-tuner's Trial message has no
  field for it.
* **No stuck lock.** Every call runs under the oracle's lock, released even
  when the call raises. An error from `create_trial` or `end_trial` (such as
  too many failures in a row) ends the search, as in one process: every
  worker is refused with it at its next call, and the chief's `search`
  raises it once all have been told (or have gone silent).

This module holds every private keras-tuner access of distributed tuning.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import threading
from concurrent import futures
from typing import Any
from typing import Iterator

import grpc
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief
from keras_tuner.src.distribute import oracle_client
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import oracle as kt_oracle
from keras_tuner.src.engine import trial as trial_module

from fnas_keras import lease

SECRET_ENV = "FNAS_ORACLE_SECRET"
CERT_ENV = "FNAS_ORACLE_CERT"
KEY_ENV = "FNAS_ORACLE_KEY"
_SECRET_KEY = "fnas-oracle-secret"
_TUNER_KEY = "fnas-tuner-id"
_MESSAGE_KEY = "fnas-trial-message-bin"
# gRPC refuses metadata over 8 KiB; a traceback's end says the most.
MESSAGE_CHARS = 4000
_FATAL_METHODS = ("CreateTrial", "EndTrial")
_POLL_S = 1.0

logger = logging.getLogger(__name__)


def is_worker() -> bool:
    """Whether this process is a worker of a distributed search."""
    return dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()


def is_chief() -> bool:
    """Whether this process is the chief of a distributed search."""
    return dist_utils.is_chief_oracle()


def worker_client(oracle: Any) -> Any:
    """The worker's proxy of the chief's oracle, sending the secret.

    Args:
        oracle: keras-tuner's `OracleClient` (a worker tuner's `oracle`
            after keras-tuner's `__init__`), or any other oracle, which is
            returned as it is.
    """
    if not isinstance(oracle, oracle_client.OracleClient):
        return oracle
    return Client(oracle._oracle)


class Client(oracle_client.OracleClient):
    """keras-tuner's OracleClient over a channel that carries the secret.

    Args:
        oracle: The worker's local oracle (for its objective and flags).

    Example:
        >>> tuner.oracle = Client(local_oracle)  # FNAS does this itself
    """

    def __init__(self, oracle: Any):
        super().__init__(oracle)
        channel = grpc.intercept_channel(
            _channel(_address()), _Credentials(self.tuner_id)
        )
        self.stub = protos.get_service_grpc().OracleStub(channel)

    def end_trial(self, trial) -> None:
        """Ends a trial on the chief, with its message (e.g. a traceback)."""
        if not self.should_report:
            return
        text = (trial.message or "")[-MESSAGE_CHARS:]
        self.stub.EndTrial(
            protos.get_service().EndTrialRequest(trial=trial.to_proto()),
            metadata=[(_MESSAGE_KEY, text.encode("utf-8"))],
            wait_for_ready=True,
            timeout=oracle_client.TIMEOUT,
        )


class _Servicer(oracle_chief.OracleServicer):
    """keras-tuner's servicer; EndTrial keeps the worker's message."""

    def EndTrial(self, request, context):
        trial = trial_module.Trial.from_proto(request.trial)
        text = _metadata(context).get(_MESSAGE_KEY, b"")
        trial.message = text.decode("utf-8", errors="replace") or None
        self.oracle.end_trial(trial)
        return protos.get_service().EndTrialResponse()


def serve(oracle: Any, stop: threading.Event | None = None) -> None:
    """Serves `oracle` to the workers until the search ends.

    Returns once a worker has been told to stop and no trial runs and no
    worker remains (keras-tuner's condition), checked every second.

    Args:
        oracle: The chief's oracle.
        stop: Ends the service early when set (for tests and embedders).

    Raises:
        Exception: The error that ended the search, raised by the oracle's
            `create_trial` or `end_trial` (e.g. too many failures in a row).
    """
    address = _address()
    secret = shared_secret()
    guard = _Guard(oracle)
    interceptors = [guard] if secret is None else [_Gate(secret), guard]
    if secret is None and not _is_loopback(address):
        logger.warning(
            "The chief serves its oracle on %s to anyone who can reach it: "
            "set %s (the same secret in every process) so that only its "
            "workers may take trials and report scores", address, SECRET_ENV,
        )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=1), interceptors=interceptors
    )
    servicer = _Servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    _bind(server, address)
    server.start()
    stop_reaping = _start_reaper(oracle)
    try:
        stop = stop or threading.Event()
        while not (_finished(oracle, servicer, guard) or stop.is_set()):
            stop.wait(_POLL_S)
    finally:
        stop_reaping.set()
        server.stop(grace=1.0)
    if guard.error is not None:
        raise guard.error


@contextlib.contextmanager
def locked(oracle: Any) -> Iterator[None]:
    """Holds `oracle`'s keras-tuner lock, released even if the body raises.

    The oracle's own `synchronized` methods called inside see the lock held
    by this thread and do not take it again.
    """
    name = threading.current_thread().name
    if kt_oracle.THREADS[oracle] == name:
        yield
        return
    with kt_oracle.LOCKS[oracle]:
        kt_oracle.THREADS[oracle] = name
        try:
            yield
        finally:
            kt_oracle.THREADS[oracle] = None


def _finished(oracle: Any, servicer: _Servicer, guard: _Guard) -> bool:
    with locked(oracle):
        if guard.error is not None:
            return set(oracle.tuner_ids) <= guard.told
        return servicer.stop_triggered and not (
            oracle.ongoing_trials or oracle.tuner_ids
        )


def _start_reaper(oracle: Any) -> threading.Event:
    """Expires silent workers' leases every poll interval, until set.

    create_trial expires leases too, but a worker that dies between trials
    holds none, and once the others have stopped nobody calls it.
    """
    stop = threading.Event()
    expire = getattr(oracle, "expire_leases", None)
    if expire is None:
        return stop

    def reap() -> None:
        while not stop.wait(lease.poll_interval(oracle.trial_timeout_s)):
            with locked(oracle):
                expire()

    threading.Thread(target=reap, name="fnas-lease-reaper", daemon=True).start()
    return stop


class _Gate(grpc.ServerInterceptor):
    """Refuses, before any oracle method runs, calls without the secret."""

    def __init__(self, secret: str):
        self._secret = secret.encode("utf-8")

        def refuse(request, context):
            logger.warning("Refused a call from %s without the right %s",
                           context.peer(), SECRET_ENV)
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"the chief requires the secret set in {SECRET_ENV}; this "
                "call had none or another",
            )

        self._refuse = grpc.unary_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation, details):
        given = dict(details.invocation_metadata).get(_SECRET_KEY, "")
        if hmac.compare_digest(given.encode("utf-8"), self._secret):
            return continuation(details)
        return self._refuse


class _Guard(grpc.ServerInterceptor):
    """Runs each call under the oracle's lock; keeps what ends the search."""

    def __init__(self, oracle: Any):
        self.oracle = oracle
        self.error: Exception | None = None
        self.told: set[str] = set()

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary

        def guarded(request, context):
            tuner_id = _metadata(context).get(_TUNER_KEY, "?")
            if self.error is not None:
                self._tell(tuner_id, method, context)
            try:
                with locked(self.oracle):
                    return inner(request, context)
            except Exception as error:  # noqa: BLE001 - told to the caller.
                logger.exception("The oracle's %s from %s failed", method,
                                 tuner_id)
                if method not in _FATAL_METHODS:
                    raise
                self.error = error
                self._tell(tuner_id, method, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _tell(self, tuner_id: str, method: str, context) -> None:
        """Refuses a call with the error; from these methods, it ends the
        worker's search (keras-tuner calls them outside its try)."""
        if method in _FATAL_METHODS:
            self.told.add(tuner_id)
        context.abort(grpc.StatusCode.ABORTED,
                      f"the search stopped on the chief: {self.error}")


class _Credentials(grpc.UnaryUnaryClientInterceptor):
    """Adds the secret (when set) and the tuner's id to every call."""

    def __init__(self, tuner_id: str):
        self._metadata = [(_TUNER_KEY, tuner_id)]
        secret = shared_secret()
        if secret:
            self._metadata.append((_SECRET_KEY, secret))

    def intercept_unary_unary(self, continuation, details, request):
        metadata = [*(details.metadata or ()), *self._metadata]
        return continuation(_CallDetails(details, metadata), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details, metadata):
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


def shared_secret() -> str | None:
    """The secret in FNAS_ORACLE_SECRET, or None when unset or empty.

    Raises:
        ValueError: If it is not printable ASCII (gRPC metadata is not).
    """
    secret = os.environ.get(SECRET_ENV) or None
    if secret is not None and not (secret.isascii() and secret.isprintable()):
        raise ValueError(
            f"{SECRET_ENV} must be printable ASCII (e.g. a hex token from "
            "secrets.token_hex), not a value with other characters"
        )
    return secret


def _metadata(context) -> dict:
    return dict(context.invocation_metadata())


def _address() -> str:
    ip = os.environ["KERASTUNER_ORACLE_IP"]
    port = os.environ["KERASTUNER_ORACLE_PORT"]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # A host name: it may resolve to anything.
        return False


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise ValueError(
            f"cannot read the TLS {what} {path!r} ({CERT_ENV}, {KEY_ENV}): "
            f"{error}"
        ) from None


def _bind(server: grpc.Server, address: str) -> None:
    cert = os.environ.get(CERT_ENV)
    if not cert:
        server.add_insecure_port(address)
        return
    key = os.environ.get(KEY_ENV)
    if not key:
        raise ValueError(f"{CERT_ENV} is set but {KEY_ENV} is not: the chief "
                         "needs the certificate's private key to serve TLS")
    pair = (_read(key, "private key"), _read(cert, "certificate"))
    server.add_secure_port(address, grpc.ssl_server_credentials([pair]))


def _channel(address: str) -> grpc.Channel:
    cert = os.environ.get(CERT_ENV)
    if not cert:
        return grpc.insecure_channel(address)
    root = _read(cert, "certificate")
    return grpc.secure_channel(
        address, grpc.ssl_channel_credentials(root_certificates=root)
    )
