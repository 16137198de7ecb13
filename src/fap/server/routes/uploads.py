"""Client routes for uploads: create, list, read, wait for, and fetch the result of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from fap.api import (
    MAX_BATCH,
    MAX_CHUNK_SIZE,
    MAX_INLINE_ANSWER,
    MAX_LIST_LIMIT,
    MAX_PACK_SIZE,
    MAX_WAIT_IDS,
    MIN_CHUNK_SIZE,
    TERMINAL_STATES,
    UPLOAD,
    UPLOAD_RESULT,
    UPLOADS,
    UPLOADS_BATCH,
    UPLOADS_WAIT,
    JobState,
    PackSpec,
    PackUrl,
    ResultUrl,
    SealedResult,
    UploadBatch,
    UploadBatchCreated,
    UploadCreate,
    UploadCreated,
    UploadInfo,
    UploadList,
    UploadWait,
)
from fap.server.auth import Caller, Permission, needs
from fap.server.blobs import pack_key, result_key
from fap.server.cleanup import check_result_kept
from fap.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    Sealed,
    TooLarge,
    shown_id,
)
from fap.server.queue import long_poll, upload_topic
from fap.server.routes.chunk_checks import check_specs, sign_chunk_puts
from fap.server.routes.deps import CallerDep, ServicesDep, route
from fap.server.routes.request import FapRequest, while_connected
from fap.server.routes.validation import (
    check_engine,
    check_sha256,
    check_text,
    check_timeout,
    check_upload_name,
)
from fap.server.routes.views import upload_info
from fap.server.services import Services
from fap.server.store import NewUpload, Upload, org_quotas
from fap.server.store.uploads import recipients_digest

__all__ = (
    "create_upload",
    "create_uploads",
    "get_upload",
    "list_uploads",
    "load_upload",
    "upload_result",
    "wait_uploads",
)


@post(UPLOADS, opt=needs(Permission.UPLOAD), status_code=201)
async def create_upload(
    data: JSONBody[UploadCreate], caller: CallerDep, services: ServicesDep
) -> UploadCreated:
    """Authorise an upload, with the presigned PUTs of the chunks the request names (encoded
    already: a small file's one chunk); the others' come later, one batch of encoded chunks at a
    time (POST chunk-urls). A presigned PUT is signed for the exact size and checksum of its
    bytes. A file the caller had analysed already is answered with that upload, done (dedup)."""
    made, _ = await _create(services, caller, [data], batch=False)
    return made[0]


@post(UPLOADS_BATCH, opt=needs(Permission.UPLOAD), status_code=201)
async def create_uploads(
    data: JSONBody[UploadBatch], caller: CallerDep, services: ServicesDep
) -> UploadBatchCreated:
    """Many uploads in one transaction, each as ``POST /v1/uploads`` would make it: all of them,
    or (a 4xx naming the first that cannot be) none."""
    if not 1 <= len(data.uploads) <= MAX_BATCH:
        raise BadRequest(f"A batch makes 1 to {MAX_BATCH} uploads, not {len(data.uploads)}.")
    if data.pack is not None:
        _check_pack(data.pack, data.uploads)
    made, pack = await _create(services, caller, data.uploads, batch=True, pack=data.pack)
    return UploadBatchCreated(uploads=made, pack=pack)


def _check_pack(pack: PackSpec, uploads: list[UploadCreate]) -> None:
    """A pack holds the one chunk each upload of its batch names, end to end: BadRequest if not."""
    for index, upload in enumerate(uploads):
        if len(upload.chunks) != 1:
            raise BadRequest(
                f"uploads[{index}] names {len(upload.chunks)} chunks; in a batch with a pack, "
                "each upload names its one chunk."
            )
    check_sha256(pack.sha256, "sha256 of the pack")
    if not 0 < pack.size <= MAX_PACK_SIZE:
        raise BadRequest(f"A pack holds 1 to {MAX_PACK_SIZE} bytes, not {pack.size}.")
    if pack.size != (named := sum(upload.chunks[0].size for upload in uploads)):
        raise BadRequest(
            f"The pack holds {pack.size} bytes, but the chunks of the batch hold {named}: a "
            "pack is those chunks end to end."
        )


async def _sign_pack(services: Services, caller: Caller, spec: PackSpec) -> PackUrl:
    pack = await services.store.packs.create(
        caller.org.id, caller.user.id, spec.size, spec.sha256, services.clock()
    )
    signed = await services.blobs.presign_put(
        pack_key(pack.id), pack.size, services.settings.url_ttl_seconds, sha256=pack.sha256
    )
    return PackUrl(pack_id=pack.id, url=signed.url, size=pack.size, headers=dict(signed.headers))


async def _create(
    services: Services,
    caller: Caller,
    asked: list[UploadCreate],
    *,
    batch: bool,
    pack: PackSpec | None = None,
) -> tuple[list[UploadCreated], PackUrl | None]:
    """Make (or find, or answer from earlier analyses) the uploads ``asked``, in one
    transaction; a batch's refusal names the upload refused. With the answers, the ``pack``'s
    PUT if it was signed instead of the chunks'."""
    news = []
    for index, data in enumerate(asked):
        try:
            news.append(_new_upload(data, caller))
        except (BadRequest, TooLarge) as error:
            if not batch:
                raise
            raise type(error)(f"uploads[{index}] ({data.name[:100]!r}): {error}") from None
    sealed_to = await _sealed_to(services, caller)
    now = services.clock()
    made = await services.store.uploads.create_or_reuse(
        news,
        now,
        org_quotas(caller.org),
        sealed_to=sealed_to,
        reusable_after=_reusable_after(services, now),
    )
    if reused := sum(answer.deduplicated for answer in made):
        services.metrics.uploads_deduplicated(reused)
    return await _created(
        services,
        caller,
        [
            (data, new, answer.upload, answer.deduplicated)
            for data, new, answer in zip(asked, news, made, strict=True)
        ],
        pack,
    )


def _reusable_after(services: Services, now: float) -> float | None:
    """Done uploads that finished before this are not answers for dedup: their results expire
    before a client told of one could fetch it (its result URL lives ``url_ttl_seconds``)."""
    keep = services.settings.keep_results
    if keep <= 0:  # results are kept for ever
        return None
    return now - keep + services.settings.url_ttl_seconds


def _new_upload(data: UploadCreate, caller: Caller) -> NewUpload:
    """The upload ``data`` asks for, checked: BadRequest or TooLarge say why it cannot be."""
    name = check_upload_name(data.name)
    sha256 = check_sha256(data.sha256, "sha256 of the file")
    request_id = None if data.request_id is None else check_text(data.request_id, "request_id", 64)
    engine = check_engine(data.engine) if data.engine is not None else caller.org.default_engine
    if data.size < 0:
        raise BadRequest("The file size must be 0 or more bytes.")
    if data.size > caller.org.max_file_size:
        raise TooLarge(
            f"The file is {data.size} bytes, over the {caller.org.max_file_size}-byte limit "
            f"of {caller.org.name}'s plan."
        )
    if not MIN_CHUNK_SIZE <= data.chunk_size <= MAX_CHUNK_SIZE:
        raise BadRequest(
            f"The chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes."
        )
    chunk_count = -(-data.size // data.chunk_size)
    if data.chunks:  # checked before anything is made
        check_specs(_Announced(data.size, data.chunk_size, chunk_count), data.chunks)
    return NewUpload(
        org_id=caller.org.id,
        user_id=caller.user.id,
        name=name,
        size=data.size,
        sha256=sha256,
        engine=engine,
        chunk_size=data.chunk_size,
        chunk_count=chunk_count,
        request_id=request_id,
        dedup=data.dedup,
    )


async def _sealed_to(services: Services, caller: Caller) -> str:
    """The digest of the caller's active devices, which a result must have been sealed to for
    dedup to answer with it; BadRequest if they have none (a result could be sealed to none)."""
    recipients = await services.store.devices.recipients(caller.user.id)
    if not recipients:
        raise BadRequest(
            "Register a device key first (POST /v1/devices): results are sealed to your devices."
        )
    return recipients_digest(recipients)


async def _created(
    services: Services,
    caller: Caller,
    made: list[tuple[UploadCreate, NewUpload, Upload, bool]],
    pack: PackSpec | None,
) -> tuple[list[UploadCreated], PackUrl | None]:
    """The answers for uploads just made (or found again by their request ids, or analysed
    before): each queued if it has no chunks, with the presigned PUTs of the chunks its request
    named — or, where a ``pack`` holds them and every upload still needs its chunk, none of
    those but the pack's PUT."""
    for _, new, upload, deduplicated in made:
        # An earlier analysis of the file may have been sent in chunks of another size.
        asked = (new.name, new.size, new.sha256, new.engine, new.chunk_size)
        found = (upload.name, upload.size, upload.sha256, upload.engine, upload.chunk_size)
        if not deduplicated and found != asked:
            raise Conflict(
                "This request_id was used for another upload already; send a new one for each file."
            )
    signing = {
        upload.id
        for data, _, upload, _ in made
        if data.chunks and upload.state not in TERMINAL_STATES
    }
    # A request sent again may find some of its chunks stored: those need no URL.
    stored = await services.store.uploads.stored_seqs(signing)
    # A pack is all or nothing: one upload answered otherwise (analysed before, its chunk stored
    # by the request this one repeats) and each chunk is PUT alone, so none is sent for nothing.
    packed = pack is not None and all(
        upload.id in signing and upload.state == JobState.PENDING and not stored.get(upload.id)
        for _, _, upload, _ in made
    )
    answers = []
    for data, _, upload, _ in made:
        if upload.state == JobState.QUEUED:
            await services.queue.queued(upload)
        urls = []
        if upload.id in signing and not packed:
            urls = await sign_chunk_puts(
                services, upload, data.chunks, stored=stored.get(upload.id, [])
            )
        answers.append(UploadCreated(upload=upload_info(upload, []), chunk_urls=urls))
    signed = await _sign_pack(services, caller, pack) if packed and pack is not None else None
    return answers, signed


@get(UPLOADS, opt=needs(Permission.READ))
async def list_uploads(
    caller: CallerDep,
    services: ServicesDep,
    limit: Annotated[int, QueryParameter(description="How many uploads, newest first.")] = 100,
) -> UploadList:
    """The caller's uploads, newest first."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadRequest(f"The limit must be between 1 and {MAX_LIST_LIMIT}.")
    uploads = await services.store.uploads.list_for_user(caller.user.id, limit)
    return await _upload_list(services, uploads)


@get(route(UPLOAD), opt=needs(Permission.READ))
async def get_upload(
    upload_id: FromPath[str], caller: CallerDep, services: ServicesDep
) -> UploadInfo:
    """One upload with the chunks stored so far (what a client resumes from)."""
    upload = await load_upload(services, caller, upload_id)
    stored = await services.store.uploads.stored_seqs([upload.id])
    return upload_info(upload, stored.get(upload.id, []))


@post(UPLOADS_WAIT, opt=needs(Permission.READ), status_code=200)
async def wait_uploads(
    request: FapRequest, data: JSONBody[UploadWait], caller: CallerDep, services: ServicesDep
) -> UploadList:
    """Long-poll: answer once one of the uploads is done or failed, or after the timeout."""
    ids = list(dict.fromkeys(data.ids))
    if not ids:
        raise BadRequest("Name at least one upload id to wait for.")
    if len(ids) > MAX_WAIT_IDS:
        raise BadRequest(f"Wait for at most {MAX_WAIT_IDS} uploads at once.")
    timeout = check_timeout(data.timeout, services.settings.long_poll_seconds)
    uploads_store = services.store.uploads
    known = await uploads_store.existing(caller.org.id, ids)
    missing = [upload_id for upload_id in ids if upload_id not in known]
    if missing:
        raise NotFound(f"There is no upload {shown_id(missing[0])} in your organisation.")

    async def named(finished_only: bool) -> list[Upload]:
        """The uploads named, in the order named: all of them, or the finished ones alone."""
        if finished_only:
            found = await uploads_store.finished_among(caller.org.id, ids)
        else:
            found = await uploads_store.get_many(caller.org.id, ids)
        return [found[upload_id] for upload_id in ids if upload_id in found]

    async def finished() -> list[Upload] | None:
        # Asked at every lease and completion of any of the uploads: the rows are loaded only
        # once one of them is finished.
        if data.finished_only:
            return await named(finished_only=True) or None
        if not await uploads_store.any_finished(caller.org.id, ids):
            return None
        return await named(finished_only=False)

    topics = [upload_topic(upload_id) for upload_id in ids]
    uploads = await while_connected(
        request,
        long_poll(services.notifier, topics, finished, timeout, abandoned=request.abandoned),
    )
    if uploads is None:
        uploads = await named(data.finished_only)
    return await _upload_list(
        services,
        uploads,
        results_for=caller.user.id,
        inline=data.inline_results,
        # Those past the answer's bound are finished all the same: the next wait answers them.
        trim=data.finished_only,
    )


@get(route(UPLOAD_RESULT), opt=needs(Permission.READ))
async def upload_result(
    upload_id: FromPath[str], caller: CallerDep, services: ServicesDep
) -> ResultUrl:
    """A presigned GET of the sealed result, for the uploader only; 409 until it is done."""
    upload = await load_upload(services, caller, upload_id)
    if upload.user_id != caller.user.id:
        raise Forbidden(
            f"Only the user who uploaded {upload.id} can fetch its result: it is sealed to "
            "their devices."
        )
    if upload.state == JobState.FAILED:
        raise Conflict(f"Upload {upload.id} failed, so it has no result: {upload.error}")
    if upload.state != JobState.DONE or upload.result_size is None:
        raise Conflict(f"Upload {upload.id} is not done yet; it is {upload.state}.")
    check_result_kept(upload, services.settings, services.clock())
    kept = await services.store.uploads.sealed_results([upload.id])
    return await _result_url(services, upload, upload.result_size, kept.get(upload.id))


async def _result_url(
    services: Services, upload: Upload, size: int, kept: bytes | None
) -> ResultUrl:
    """A presigned GET of the upload's sealed result. One the server keeps itself (``kept``) is
    copied to the result key first, where a GET can find it."""
    if kept is not None:
        await _store_kept(services, upload, kept)
    url = await services.blobs.presign_get(result_key(upload.id), services.settings.url_ttl_seconds)
    return ResultUrl(upload_id=upload.id, url=url, size=size, sha256=upload.result_sha256)


async def _store_kept(services: Services, upload: Upload, kept: bytes) -> None:
    """Put a result the server keeps to the blob store, for a client that fetches it by URL (an
    older one, or one that asks for one result alone). Sealed there as a stored result is; a
    key sealed already holds these bytes (this copy, made earlier or by another replica)."""
    assert upload.result_sha256 is not None
    key = result_key(upload.id)
    try:
        await services.blobs.put(key, kept, upload.result_sha256)
    except Sealed:
        return
    await services.blobs.seal(key)


async def load_upload(services: Services, caller: Caller, upload_id: str) -> Upload:
    upload = await services.store.uploads.get(caller.org.id, upload_id)
    if upload is None:
        raise NotFound(f"There is no upload {shown_id(upload_id)} in your organisation.")
    return upload


async def _upload_list(
    services: Services,
    uploads: list[Upload],
    *,
    results_for: str | None = None,
    inline: bool = False,
    trim: bool = False,
) -> UploadList:
    """The uploads as listed; with ``results_for`` (a user id), each done upload of that user's
    carries its result, as long as the result is kept: with ``inline``, the sealed bytes of one
    the server keeps (MAX_INLINE_ANSWER in all), else a presigned GET. With ``trim``, the list
    ends where the sealed bytes would pass that bound, rather than hand the rest as URLs."""
    handed = {
        upload.id
        for upload in uploads
        if results_for is not None and _result_to_hand(upload, results_for, services)
    }
    kept = await services.store.uploads.sealed_results(handed)
    stored = await services.store.uploads.stored_seqs(upload.id for upload in uploads)
    listed = []
    inline_bytes = 0
    for upload in uploads:
        info = upload_info(upload, stored.get(upload.id, []))
        sealed = kept.get(upload.id)
        if upload.id in handed:
            assert upload.result_size is not None and upload.result_sha256 is not None
            if inline and sealed is not None and inline_bytes + len(sealed) <= MAX_INLINE_ANSWER:
                inline_bytes += len(sealed)
                info.sealed_result = SealedResult(sha256=upload.result_sha256, sealed=sealed)
            elif inline and sealed is not None and trim:
                break
            else:
                info.result = await _result_url(services, upload, upload.result_size, sealed)
        listed.append(info)
    return UploadList(uploads=listed)


def _result_to_hand(upload: Upload, user_id: str, services: Services) -> bool:
    """Whether ``upload`` has a result ``user_id`` may fetch now (its uploader; done; kept)."""
    if upload.user_id != user_id or upload.state != JobState.DONE or upload.result_size is None:
        return False
    try:
        check_result_kept(upload, services.settings, services.clock())
    except Gone:
        return False  # asked for on its own, the result says why it is gone
    return True


@dataclass(frozen=True, slots=True)
class _Announced:
    """The chunks of an upload about to be created, for checking those a request names."""

    size: int
    chunk_size: int
    chunk_count: int
    id: str = ""
