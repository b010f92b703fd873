"""Resuming against a hostile server: cut connections, lying ranges, changed files, refusals."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from service.errors import DownloadError, DownloadRetryable
from tests.downloads.conftest import Runner, sha256, video_bytes
from tests.downloads.hostile import (
    Behaviour,
    Cut,
    Honest,
    HostileServer,
    Html,
    LyingRange,
    Replace,
    Served,
    Status,
)

DATA = video_bytes(700_000)


def range_starts(server: HostileServer, path: str = "/v.mp4") -> list[int | None]:
    starts: list[int | None] = []
    for request in server.requests_to(path):
        header = request.range
        starts.append(int(header.removeprefix("bytes=").split("-")[0]) if header else None)
    return starts


async def test_an_honest_server(server: HostileServer, run: Runner) -> None:
    result = await run(server.add("/v.mp4", DATA))
    assert (result.size, result.sha256) == (len(DATA), sha256(DATA))
    assert result.path == run.media_dir / "task-1" / "0.mp4"
    assert result.path.read_bytes() == DATA
    assert result.content_type == "video/mp4"
    assert result.duration is not None and 2.9 < result.duration < 3.2
    assert result.resumed_from == 0
    assert run.leftovers() == []
    assert run.progress[-1] == (len(DATA), len(DATA))
    assert all(total == len(DATA) for received, total in run.progress)
    assert server.requests_to("/v.mp4")[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("seed", range(5))
async def test_cuts_at_random_offsets_resume_to_the_right_file(
    server: HostileServer, run: Runner, seed: int
) -> None:
    cuts = sorted(random.Random(seed).sample(range(1, len(DATA)), 4))
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", *(Cut(at) for at in cuts))
    result = await run(url)
    assert result.sha256 == sha256(DATA)
    assert result.path.read_bytes() == DATA
    starts = range_starts(server)
    assert len(starts) == 5 and starts[0] is None
    resumed = [start for start in starts[1:] if start is not None]
    assert resumed == sorted(resumed) and all(
        0 < s <= cut for s, cut in zip(resumed, cuts, strict=False)
    )
    # Nothing was fetched twice: resuming asks only for what is missing.
    assert server.body_bytes_sent <= len(DATA) + len(cuts) * 256 * 1024
    assert run.leftovers() == []


async def test_a_later_attempt_resumes_from_the_kept_partial_file(
    server: HostileServer, run: Runner
) -> None:
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", Cut(300_000), Status(503, headers={"Retry-After": "7"}))
    with pytest.raises(DownloadRetryable) as caught:
        await run(url)
    assert caught.value.retry_after == 7.0
    assert sorted(run.leftovers()) == ["task-1%2F0.meta.json", "task-1%2F0.part"]
    kept = (run.partial_dir / "task-1%2F0.part").stat().st_size
    assert 0 < kept <= 300_000
    assert run.stored() == []  # never a partial file at the final path

    result = await run(url)  # the next attempt of the job
    assert result.resumed_from == kept
    assert result.sha256 == sha256(DATA)
    assert range_starts(server)[-1] == kept
    assert (
        server.requests_to("/v.mp4")[-1].headers["if-range"] == server.files["/v.mp4"].header_etag()
    )
    assert run.leftovers() == []


async def test_a_partial_file_that_seems_complete_is_checked_by_its_last_byte(
    server: HostileServer, run: Runner
) -> None:
    url = server.add("/v.mp4", DATA)
    run.partial_dir.mkdir(parents=True)
    (run.partial_dir / "task-1%2F0.part").write_bytes(DATA)  # killed just before the rename
    etag = server.files["/v.mp4"].header_etag()
    assert etag is not None
    meta = {"etag": etag, "total": len(DATA)}
    (run.partial_dir / "task-1%2F0.meta.json").write_text(json.dumps(meta))
    result = await run(url)
    assert result.resumed_from == len(DATA) - 1
    assert result.sha256 == sha256(DATA)
    assert range_starts(server) == [len(DATA) - 1]


@pytest.mark.parametrize("etag", ["", 'W/"weak"'], ids=["no etag", "weak etag"])
async def test_without_a_strong_etag_a_cut_download_starts_over(
    server: HostileServer, run: Runner, etag: str
) -> None:
    url = server.add("/v.mp4", DATA, etag=etag)
    server.script("/v.mp4", Cut(300_000))
    with pytest.raises(DownloadRetryable):
        await run(url)
    assert run.leftovers() == []  # nothing to resume from: nothing kept
    result = await run(url)
    assert result.sha256 == sha256(DATA)
    assert range_starts(server) == [None, None]


async def test_a_changed_etag_between_attempts_restarts_with_the_new_file(
    server: HostileServer, run: Runner
) -> None:
    url = server.add("/v.mp4", DATA)
    new = video_bytes(650_000, seed=9)
    server.script("/v.mp4", Cut(200_000), Status(500))
    with pytest.raises(DownloadRetryable):
        await run(url)
    server.script("/v.mp4", Replace(Served(new)))
    result = await run(url)
    # If-Range did not match: the server sent the whole new file, which replaced the old bytes.
    assert range_starts(server)[-1] is not None
    assert result.sha256 == sha256(new) and result.resumed_from > 0
    assert result.path.read_bytes() == new


@pytest.mark.parametrize(
    "lie",
    [
        LyingRange(start_shift=1000),
        LyingRange(start_shift=-1000),
        LyingRange(total=len(DATA) + 5),
        LyingRange(total=len(DATA) - 5),
    ],
    ids=["later start", "earlier start", "bigger total", "smaller total"],
)
async def test_a_lying_206_is_discarded_and_the_file_fetched_whole(
    server: HostileServer, run: Runner, lie: LyingRange
) -> None:
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", Cut(250_000), lie)
    result = await run(url)
    assert result.sha256 == sha256(DATA)
    starts = range_starts(server)
    assert starts[0] is None and starts[1] is not None and starts[2] is None


async def test_a_206_with_another_etag_is_discarded(server: HostileServer, run: Runner) -> None:
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", Cut(250_000), LyingRange(etag='"another-file"'))
    result = await run(url)
    assert result.sha256 == sha256(DATA)
    assert range_starts(server)[1:] == [range_starts(server)[1], None]


async def test_a_server_that_keeps_lying_ends_the_attempt_retryably(
    server: HostileServer, run: Runner
) -> None:
    url = server.add("/v.mp4", DATA)
    lies: list[Behaviour] = [Cut(250_000), LyingRange(start_shift=1)]
    server.script("/v.mp4", *lies * 3)
    with pytest.raises(DownloadRetryable, match="inconsistent"):
        await run(url)


async def test_416_on_resume_starts_over(server: HostileServer, run: Runner) -> None:
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", Cut(250_000), Status(416, headers={"Content-Range": "bytes */10"}))
    result = await run(url)
    assert result.sha256 == sha256(DATA)
    assert range_starts(server)[-1] is None


# --- refused URLs, pages instead of videos ------------------------------------------------------


async def test_html_served_as_200_is_never_stored(server: HostileServer, run: Runner) -> None:
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", Html())
    with pytest.raises(DownloadError, match="text/html page") as caught:
        await run(url)
    assert not isinstance(caught.value, DownloadRetryable)
    assert run.stored() == [] and run.leftovers() == []


async def test_html_labelled_as_video_is_caught_by_its_bytes(
    server: HostileServer, run: Runner
) -> None:
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", Html(content_type="video/mp4"))
    with pytest.raises(DownloadError, match="not a video"):
        await run(url)
    assert run.stored() == [] and run.leftovers() == []


@pytest.mark.parametrize("refusal", [Status(403), Status(404), Status(410), Html()])
async def test_a_refused_url_is_replaced_once_by_a_fresh_one(
    server: HostileServer, run: Runner, refusal: Status | Html
) -> None:
    old = server.add("/old.mp4", DATA)
    fresh = server.add("/fresh.mp4", DATA)
    server.script("/old.mp4", refusal)
    calls: list[int] = []

    async def refresh() -> str | None:
        calls.append(1)
        return fresh

    result = await run(old, refresh_url=refresh)
    assert result.sha256 == sha256(DATA)
    assert calls == [1]
    assert len(server.requests_to("/fresh.mp4")) == 1


async def test_still_refused_after_a_fresh_url_is_permanent(
    server: HostileServer, run: Runner
) -> None:
    old = server.add("/old.mp4", DATA)
    fresh = server.add("/fresh.mp4", DATA)
    server.script("/old.mp4", Status(403))
    server.script("/fresh.mp4", Status(410))
    calls: list[int] = []

    async def refresh() -> str | None:
        calls.append(1)
        return fresh

    with pytest.raises(DownloadError, match="HTTP 410") as caught:
        await run(old, refresh_url=refresh)
    assert not isinstance(caught.value, DownloadRetryable)
    assert calls == [1]  # at most once per attempt
    assert run.leftovers() == [] and run.stored() == []


async def test_no_fresh_url_is_permanent(server: HostileServer, run: Runner) -> None:
    old = server.add("/old.mp4", DATA)
    server.script("/old.mp4", Status(403))

    async def refresh() -> str | None:
        return None

    with pytest.raises(DownloadError, match="no other URL"):
        await run(old, refresh_url=refresh)


async def test_a_kept_partial_file_resumes_from_the_fresh_url(
    server: HostileServer, run: Runner
) -> None:
    old = server.add("/old.mp4", DATA)
    fresh = server.add("/fresh.mp4", DATA)  # the same file behind another signed URL
    server.script("/old.mp4", Cut(300_000), Status(503))
    with pytest.raises(DownloadRetryable):
        await run(old)
    server.script("/old.mp4", Status(403))

    async def refresh() -> str | None:
        return fresh

    result = await run(old, refresh_url=refresh)
    assert result.sha256 == sha256(DATA) and result.resumed_from > 0
    assert range_starts(server, "/fresh.mp4") == [result.resumed_from]


async def test_a_cancelled_download_keeps_what_it_can_resume(
    server: HostileServer, run: Runner
) -> None:
    """A worker stopping (SIGTERM) cancels its jobs: the next attempt continues the file."""
    url = server.add("/v.mp4", DATA)
    server.script("/v.mp4", Honest(rate=500_000))
    download = asyncio.create_task(run(url))
    for _ in range(300):
        if server.body_bytes_sent > 200_000:
            break
        await asyncio.sleep(0.01)
    download.cancel()
    with pytest.raises(asyncio.CancelledError):
        await download
    kept = (run.partial_dir / "task-1%2F0.part").stat().st_size
    assert kept > 0
    result = await run(url)
    assert result.resumed_from == kept and result.sha256 == sha256(DATA)
