"""``fap serve`` as deployed: a real process on a free port, spoken to over real HTTP."""

from __future__ import annotations

import hashlib
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
from tests.support.long_polls import FOREVER, WOKEN_WITHIN, held_forever
from tests.support.processes import ServerProcess, fap_argv, wait_until
from tests.support.uploads import chunk_url, report_chunk

from fap.api import (
    API_VERSION,
    CHUNK_URLS,
    CHUNKS,
    DEVICES,
    JOB_CHUNKS,
    JOB_COMPLETE,
    JOB_COMPLETIONS,
    JOB_FAIL,
    JOB_HEARTBEAT,
    JOB_RESULT_URL,
    LEASE,
    LEASES,
    ME,
    STATUS,
    UPLOAD,
    UPLOAD_RESULT,
    UPLOADS,
    UPLOADS_WAIT,
    ErrorBody,
    UploadCreate,
    UploadCreated,
)
from fap.crypto import DeviceIdentity
from fap.transfer import EncodedChunk

SOME_ID = "0" * 32
MALFORMED = [b"", b"{", b"[]", b'{"lease_token": 5, "seqs": "x", "ids": {}}', b"\xff"]

# Every API route with its method and the token kind it takes.
ROUTES = [
    ("GET", ME, "owner"),
    ("POST", DEVICES, "owner"),
    ("POST", UPLOADS, "owner"),
    ("GET", UPLOADS, "owner"),
    ("GET", UPLOAD, "owner"),
    ("POST", CHUNK_URLS, "owner"),
    ("POST", CHUNKS, "owner"),
    ("POST", UPLOADS_WAIT, "owner"),
    ("GET", UPLOAD_RESULT, "owner"),
    ("GET", STATUS, "owner"),
    ("POST", LEASE, "processor"),
    ("POST", LEASES, "processor"),
    ("POST", JOB_COMPLETIONS, "processor"),
    ("POST", JOB_HEARTBEAT, "processor"),
    ("POST", JOB_CHUNKS, "processor"),
    ("POST", JOB_RESULT_URL, "processor"),
    ("POST", JOB_COMPLETE, "processor"),
    ("POST", JOB_FAIL, "processor"),
]


def client(server: ServerProcess, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def test_it_answers_healthz_and_serves_its_openapi_schema(server: ServerProcess) -> None:
    with client(server, None) as http:
        health = http.get("/healthz")
        assert health.json() == {"status": "ok"}
        assert health.headers["fap-api-version"] == API_VERSION
        schema = http.get("/schema/openapi.json")
        assert schema.status_code == 200
        assert "/v1/lease" in schema.json()["paths"]


def test_the_first_start_writes_private_token_files(server: ServerProcess) -> None:
    for name in ("local-owner.token", "local-processor.token"):
        path = server.data_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert server.owner_token.startswith("fap_user_")
    assert server.processor_token.startswith("fap_processor_")
    with client(server, server.owner_token) as http:
        assert http.get(ME).json()["orgs"] == [{"org": "local", "role": "owner"}]


def test_a_malformed_request_to_any_route_is_4xx_json(server: ServerProcess) -> None:
    tokens = {"owner": server.owner_token, "processor": server.processor_token}
    for method, path, who in ROUTES:
        url = path.format(upload_id=SOME_ID, job_id=SOME_ID)
        with client(server, tokens[who]) as http:
            if method == "GET":
                answers = [http.get(url, params={"limit": "many"}), http.get(url + "/%ff")]
            else:
                answers = [http.post(url, content=body) for body in MALFORMED]
        for response in answers:
            if method == "GET" and response.status_code == 200:
                continue  # /v1/me and /v1/status take no parameters to get wrong
            assert 400 <= response.status_code < 500, (method, path, response.text)
            error = msgspec.json.decode(response.content, type=ErrorBody)
            assert error.status_code == response.status_code
    assert "Traceback" not in server.log()


def test_an_upload_round_trip_over_real_sockets(server: ServerProcess) -> None:
    data = b"hello, fap\n" * 10_000
    with client(server, server.owner_token) as http:
        http.post(
            DEVICES, json={"name": "ci", "recipient": DeviceIdentity.generate().recipient}
        ).raise_for_status()
        created = msgspec.json.decode(
            http.post(
                UPLOADS,
                content=msgspec.json.encode(
                    UploadCreate(
                        name="hello.txt",
                        size=len(data),
                        sha256=hashlib.sha256(data).hexdigest(),
                        chunk_size=64 * 1024,
                    )
                ),
            ).content,
            type=UploadCreated,
        )
        raw = data[64 * 1024 : 128 * 1024]
        chunk = EncodedChunk(1, len(raw), "raw", raw, hashlib.sha256(raw).hexdigest())
        url = chunk_url(http, created.upload.id, chunk)
        too_big = http.put(url.url, content=raw + b"!")
        assert too_big.status_code == 400
        assert http.put(url.url, content=raw, headers=url.headers).status_code == 200
        report = report_chunk(http, created.upload.id, chunk)
        assert report.json()["state"] == "queued"
    with client(server, server.processor_token) as http:
        lease = http.post(LEASE, json={"worker_id": "ci", "engines": ["size@1"], "timeout": 5})
        assert lease.json()["job_id"] == created.upload.id


def test_sigterm_ends_long_polls_and_stops_at_once(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # The poll may last FOREVER: one that is answered at all was ended by the shutdown.
    server = start_server(env=held_forever(tmp_path / "home"))
    answers: list[int] = []

    def long_poll() -> None:
        with client(server, server.processor_token) as http:
            lease = {"worker_id": "w", "engines": ["x@1"], "timeout": FOREVER}
            response = http.post(LEASE, json=lease, timeout=FOREVER + 10)
            answers.append(response.status_code)

    poller = threading.Thread(target=long_poll)
    poller.start()
    # Ready when the server has the long-poll: the lease call records the worker first.
    deadline = time.monotonic() + 10
    with client(server, server.owner_token) as http:
        while not http.get(STATUS).json()["workers"]:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.02)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(WOKEN_WITHIN) == 0
    poller.join(WOKEN_WITHIN)
    assert answers == [204]


def test_a_port_in_use_is_one_clear_sentence(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            fap_argv("serve", "--port", str(port), "--data-dir", str(tmp_path / "d")),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 3
    assert "Cannot listen on 127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_heartbeat_not_shorter_than_the_lease_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        fap_argv("serve", "--lease-seconds", "5", "--heartbeat-seconds", "5"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert "must be shorter" in done.stderr


def test_a_lease_long_poll_whose_worker_hung_up_takes_no_job(server: ServerProcess) -> None:
    # A worker killed while waiting for work leaves its long-poll behind: the server must notice
    # the hang-up rather than lease the next job to nobody (which could only come back by lapsing).
    body = msgspec.json.encode({"worker_id": "dead", "engines": ["size@1"], "timeout": 20})
    with socket.create_connection(("127.0.0.1", server.port)) as dead:
        dead.sendall(
            b"POST " + LEASE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + server.processor_token.encode() + b"\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        owner = {"Authorization": f"Bearer {server.owner_token}"}
        # The long-poll is waiting on the server once it has recorded the worker; then hang up.
        with httpx.Client(base_url=server.url, timeout=30, headers=owner) as http:
            wait_until(lambda: bool(http.get(STATUS).json()["workers"]), 10, "the long-poll")
    processor = {"Authorization": f"Bearer {server.processor_token}"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        recipient = DeviceIdentity.generate().recipient
        assert http.post(
            DEVICES, json={"name": "d", "recipient": recipient}, headers=owner
        ).is_success
        empty = UploadCreate(name="empty.txt", size=0, sha256=hashlib.sha256(b"").hexdigest())
        created = http.post(UPLOADS, content=msgspec.json.encode(empty), headers=owner)
        upload_id = msgspec.json.decode(created.content, type=UploadCreated).upload.id

        leased = http.post(
            LEASE,
            json={"worker_id": "alive", "engines": ["size@1"], "timeout": 10},
            headers=processor,
        )

    assert leased.status_code == 200, server.log()
    assert leased.json()["job_id"] == upload_id
    assert leased.json()["attempt"] == 1
