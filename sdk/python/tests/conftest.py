"""Starts the built iotplatform binary on free loopback ports for the tests."""

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ADMIN_PASSWORD = "sdk-test-password"
REPO = pathlib.Path(__file__).resolve().parents[3]


def _free_ports(n: int) -> list:
    """n distinct free ports; the sockets stay bound until all are chosen."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Platform:
    """A running platform: target is host:port of its API."""

    def __init__(self, target: str):
        self.target = target
        self.admin_password = ADMIN_PASSWORD


def _serve(extra_args=()):
    """Runs the binary (with extra_args) until the generator is closed."""
    binary = os.environ.get("IOT_BIN") or str(REPO / "bin" / "iotplatform")
    if not os.path.exists(binary):
        pytest.fail(f"{binary} not found: run go build -o bin/iotplatform ./cmd/iotplatform")
    data_dir = tempfile.mkdtemp(prefix="iot-sdk-py-")
    ports = _free_ports(4)
    api = f"127.0.0.1:{ports[0]}"
    args = [binary, "serve", "--data-dir", data_dir, "--api-addr", api]
    for flag, port in zip(("--http-addr", "--ws-addr", "--mqtt-addr"), ports[1:]):
        args += [flag, f"127.0.0.1:{port}"]
    args += list(extra_args)
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        args,
        env={**os.environ, "IOT_ADMIN_PASSWORD": ADMIN_PASSWORD},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"iotplatform did not become ready:\n{log.read().decode(errors='replace')}")
            try:
                with urllib.request.urlopen(f"http://{api}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        yield Platform(api)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def platform():
    yield from _serve()


@pytest.fixture(scope="session")
def short_token_platform():
    """A platform whose user tokens live 2 s (the SDKs renew them)."""
    yield from _serve(["--user-token-ttl", "2s"])
