"""``/v1/tasks/{id}/videos/{n}``: a stored output's file, and its watermarked copy.

An output is a video (MP4 or QuickTime) or an image (PNG, JPEG, WebP); each is served with the
content type of its stored extension. ``.../watermarked`` serves the watermarked copy a request
with ``watermark_info.enabled`` got (404 when the output has none).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from service.api.errors import error_response
from service.api.tasks import services_of
from service.downloads import media_type_for
from service.errors import NotFound
from storage.records import DownloadStatus


async def task_video(request: Request) -> Response:
    return await _serve(request, watermarked=False)


async def task_video_watermarked(request: Request) -> Response:
    return await _serve(request, watermarked=True)


async def _serve(request: Request, *, watermarked: bool) -> Response:
    services = services_of(request)
    task = await services.storage.get_task(request.path_params["task_id"])
    if task is None:
        raise NotFound(f"no task {request.path_params['task_id']!r}")
    index = request.path_params["index"]
    videos = await services.storage.list_videos(task.id)
    video = next((v for v in videos if v.index == index), None)
    if video is None:
        raise NotFound(f"task {task.id} has no video {index}")
    if watermarked and video.watermark_url is None:
        raise NotFound(f"video {index} of task {task.id} has no watermarked copy")
    stored = video.watermark_path if watermarked else video.path
    if video.download_status != DownloadStatus.DOWNLOADED or not stored:
        return error_response(
            409, "not_downloaded", f"video {index} is {video.download_status.value}, not stored yet"
        )
    path = services.settings.media_dir / stored
    if not path.is_file():
        raise NotFound(f"the file of video {index} is missing from the media directory")
    suffix = ".watermarked" if watermarked else ""
    # FileResponse answers Range requests (206/416) and sends ETag and Last-Modified.
    return FileResponse(
        path,
        media_type=media_type_for(path),  # a video or an image, by its stored extension
        filename=f"{task.id}-{index}{suffix}{path.suffix}",
        content_disposition_type="inline",
    )
