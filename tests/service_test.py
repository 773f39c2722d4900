"""The chief's gRPC service, in one process: a real server on loopback in a
thread, the worker's real client, and a stranger's raw stub."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading

import grpc
import keras_tuner as kt
import pytest
from keras_tuner.src import protos
from keras_tuner.src.engine import oracle as kt_oracle

from fnas_keras import service
from tests import oracle_test

SECRET = "correct horse battery staple"
WAIT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Chief:
    """`service.serve` in a thread; keeps what it raised."""

    def __init__(self, oracle):
        self.oracle = oracle
        self.error = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            service.serve(self.oracle, self.stop)
        except Exception as error:  # noqa: BLE001 - the test reads it.
            self.error = error

    def join(self):
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "the chief did not stop"


@pytest.fixture
def chief(tmp_path, monkeypatch):
    """Starts a chief on a free loopback port; env as a worker's."""
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(free_port()))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.delenv(service.SECRET_ENV, raising=False)
    monkeypatch.delenv(service.CERT_ENV, raising=False)
    started = []

    def start(secret=None, **options):
        if secret:
            monkeypatch.setenv(service.SECRET_ENV, secret)
        oracle = oracle_test.make_oracle(tmp_path, **options)
        started.append(Chief(oracle))
        return started[-1]

    yield start
    for c in started:  # Those a failed test left running.
        c.stop.set()
        c.thread.join(WAIT_S)


def worker(oracle, secret=None, tuner_id="tuner0"):
    """The worker's client, with `secret` in its environment.

    The chief fixture has registered these variables with monkeypatch,
    which restores them after the test.
    """
    if secret is None:
        os.environ.pop(service.SECRET_ENV, None)
    else:
        os.environ[service.SECRET_ENV] = secret
    os.environ["KERASTUNER_TUNER_ID"] = tuner_id
    return service.Client(oracle)


def stranger_stub():
    """A raw keras-tuner stub that sends no secret."""
    address = (f"{os.environ['KERASTUNER_ORACLE_IP']}:"
               f"{os.environ['KERASTUNER_ORACLE_PORT']}")
    channel = grpc.insecure_channel(address)
    return protos.get_service_grpc().OracleStub(channel)


def run_one(client, score=0.5, status="COMPLETED", message=None):
    trial = client.create_trial(client.tuner_id)
    assert trial.status == "RUNNING"
    client.update_trial(trial.trial_id, {"score": score})
    trial.status = status
    trial.message = message
    client.end_trial(trial)
    return trial


def test_worker_with_the_secret_completes_a_search(chief):
    c = chief(SECRET, max_trials=2)
    client = worker(c.oracle, SECRET)
    done = [run_one(client, score=0.5 + i / 10) for i in range(2)]
    assert client.create_trial("tuner0").status == "STOPPED"
    c.join()
    assert c.error is None
    scores = {t.trial_id: t.score for t in c.oracle.trials.values()}
    assert scores == {done[0].trial_id: 0.5, done[1].trial_id: 0.6}


def service_calls(trial_id):
    pb = protos.get_service()
    made_up = kt.engine.trial.Trial(
        kt.HyperParameters(), trial_id=trial_id, status="COMPLETED"
    )
    return {
        "GetSpace": pb.GetSpaceRequest(),
        "CreateTrial": pb.CreateTrialRequest(tuner_id="stranger"),
        "GetTrial": pb.GetTrialRequest(trial_id=trial_id),
        "UpdateTrial": pb.UpdateTrialRequest(
            trial_id=trial_id, metrics={"score": 0.999}
        ),
        "EndTrial": pb.EndTrialRequest(trial=made_up.to_proto()),
        "GetBestTrials": pb.GetBestTrialsRequest(num_trials=1),
    }


def test_a_stranger_is_refused_and_changes_nothing(chief, caplog):
    c = chief(SECRET, max_trials=2)
    client = worker(c.oracle, SECRET)
    running = client.create_trial("tuner0")
    oracle_file = c.oracle._get_oracle_fname()
    with open(oracle_file, "rb") as f:
        state = f.read()
    stub = stranger_stub()
    wrong = worker(c.oracle, "guessed").stub
    caplog.set_level(logging.WARNING, logger="fnas_keras.service")
    for who in (stub, wrong):
        for method, request in service_calls(running.trial_id).items():
            with pytest.raises(grpc.RpcError) as error:
                getattr(who, method)(request, timeout=WAIT_S,
                                     wait_for_ready=True)
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert service.SECRET_ENV in error.value.details()
    assert caplog.text.count("Refused a call from") == 12
    with open(oracle_file, "rb") as f:
        assert f.read() == state
    trial = c.oracle.trials[running.trial_id]
    assert trial.status == "RUNNING" and trial.score is None
    assert "stranger" not in c.oracle.tuner_ids
    # The worker that holds the secret still finishes the search.
    client = worker(c.oracle, SECRET)
    client.update_trial(running.trial_id, {"score": 0.3})
    running.status = "COMPLETED"
    client.end_trial(running)
    run_one(client, score=0.4)
    assert client.create_trial("tuner0").status == "STOPPED"
    c.join()
    assert sorted(t.score for t in c.oracle.trials.values()) == [0.3, 0.4]


def test_a_worker_without_the_secret_is_told_what_is_missing(chief):
    c = chief(SECRET)
    client = worker(c.oracle, None)
    with pytest.raises(grpc.RpcError, match=service.SECRET_ENV):
        client.create_trial("tuner0")
    assert c.oracle.trials == {}


def test_failure_message_of_a_worker_reaches_the_chief(chief):
    c = chief(None, max_trials=3)
    client = worker(c.oracle)
    text = "Traceback (most recent call last):\n  ...\nloss is NaN"
    trial = run_one(client, status="FAILED", message=text)
    assert c.oracle.trials[trial.trial_id].message == text
    long = "x" * 20000 + "ResourceExhaustedError: OOM"
    trial = run_one(client, status="FAILED", message=long)
    kept = c.oracle.trials[trial.trial_id].message
    assert kept.endswith("OOM") and len(kept) == service.MESSAGE_CHARS


def test_error_in_end_trial_ends_the_search_and_frees_the_lock(chief):
    c = chief(None, max_trials=5, max_consecutive_failed_trials=1)
    client = worker(c.oracle)
    second = worker(c.oracle, tuner_id="tuner1")
    other = second.create_trial("tuner1")
    with pytest.raises(grpc.RpcError) as error:
        run_one(client, status="FAILED", message="build exploded")
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert "consecutive failures" in error.value.details()
    assert "build exploded" in error.value.details()
    # The lock is free: the chief answers, with the same error.
    lock = kt_oracle.LOCKS[c.oracle]
    assert lock.acquire(timeout=WAIT_S)
    lock.release()
    assert c.thread.is_alive(), "tuner1 has not been told yet"
    other.status = "COMPLETED"
    with pytest.raises(grpc.RpcError, match="search stopped on the chief"):
        second.end_trial(other)
    c.join()
    assert isinstance(c.error, RuntimeError)
    assert "consecutive failures" in str(c.error)


def test_no_secret_on_a_public_address_warns(chief, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="fnas_keras.service")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "0.0.0.0")
    c = chief(None, max_trials=1)
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    client = worker(c.oracle)
    run_one(client)
    assert client.create_trial("tuner0").status == "STOPPED"
    c.join()
    assert service.SECRET_ENV in caplog.text
    assert "0.0.0.0" in caplog.text


def test_no_warning_on_loopback(chief, caplog):
    caplog.set_level(logging.WARNING, logger="fnas_keras.service")
    c = chief(None, max_trials=1)
    client = worker(c.oracle)
    run_one(client)
    client.create_trial("tuner0")
    c.join()
    assert caplog.text == ""


def make_certificate(directory) -> tuple[str, str]:
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
         "-out", cert, "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_tls_with_the_secret(chief, tmp_path, monkeypatch):
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv(service.CERT_ENV, cert)
    monkeypatch.setenv(service.KEY_ENV, key)
    c = chief(SECRET, max_trials=1)
    client = worker(c.oracle, SECRET)
    run_one(client, score=0.7)
    # A plaintext stranger cannot even talk to it.
    with pytest.raises(grpc.RpcError):
        stranger_stub().GetSpace(protos.get_service().GetSpaceRequest(),
                                 timeout=5)
    assert client.create_trial("tuner0").status == "STOPPED"
    c.join()
    assert [t.score for t in c.oracle.trials.values()] == [0.7]


def test_a_certificate_without_its_key_is_a_clear_error(monkeypatch,
                                                         tmp_path):
    monkeypatch.setenv(service.CERT_ENV, str(tmp_path / "cert.pem"))
    monkeypatch.delenv(service.KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=service.KEY_ENV):
        service._bind(grpc.server(None), "127.0.0.1:1")


@pytest.mark.parametrize("secret", ["caf\u00e9", "two\nlines"])
def test_a_secret_gRPC_cannot_carry_is_a_clear_error(monkeypatch, secret):
    monkeypatch.setenv(service.SECRET_ENV, secret)
    with pytest.raises(ValueError, match="printable ASCII"):
        service.shared_secret()
