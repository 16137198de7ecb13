"""A result is bound to the SHA-256 the server recorded: a swapped one is refused, never opened."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.unit.client.real_app import App

from fap.client import Runtime, download_sealed, upload_files
from fap.crypto import open_sealed, seal
from fap.errors import EXIT_SERVER, IntegrityError
from fap.server.blobs import result_key
from fap.server.blobs.local import LocalBlobStore


async def test_a_result_swapped_after_completion_is_refused_before_decrypting(
    app: App, runtime: Runtime, tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")

    async with asyncio.timeout(30):
        (outcome,) = await upload_files(runtime, [report], results_dir=tmp_path / "results")
        assert outcome.status == "done" and outcome.upload_id is not None
        identity = await runtime.identity()
        sealed = await download_sealed(runtime.session, runtime.blobs, outcome.upload_id)
        genuine = open_sealed(sealed, identity)
        assert json.loads(genuine)["name"] == "report.csv"

        # Someone with the store's access puts another result in its place, sealed to this
        # very device so that it would open, and of the same size.
        blobs = app.server.services.blobs
        assert isinstance(blobs, LocalBlobStore)
        stored = blobs.path(result_key(outcome.upload_id))
        forged = genuine.replace(b"report.csv", b"forged.csv")
        size = stored.stat().st_size
        # age adds a "grease" stanza of random length to each header: seal until one fits.
        fitting = (seal(forged, [identity.recipient]) for _ in range(50_000))
        substitute = next(sealed for sealed in fitting if len(sealed) == size)
        stored.write_bytes(substitute)

        with pytest.raises(IntegrityError) as refused:
            await download_sealed(runtime.session, runtime.blobs, outcome.upload_id)

    message = str(refused.value)
    assert refused.value.exit_code == EXIT_SERVER
    assert outcome.upload_id in message and "SHA-256" in message
    assert "forged" not in message
