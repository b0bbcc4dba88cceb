"""The live camera for the installer page: MJPEG preview, one JPEG, face box and quality hints.

The preview reads the camera's one-frame slot (`latest_frame`) like the door does, never its own
capture, so it cannot take frames away from the door; it only spends CPU on JPEG encoding, which is
why its rate and its number of viewers are bounded by `[api]`.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from edge.api.context import ApiContext
from edge.api.deps import ContextDep, current_installer
from edge.api.errors import ApiError
from edge.api.faces import jpeg

router = APIRouter(prefix="/api/v1/camera", tags=["camera"], dependencies=[Depends(current_installer)])

BOUNDARY = "yizhanframe"


class _PreviewResponse(StreamingResponse):
    """Gives the viewer slot back however the stream ends (finished, client gone, shutdown)."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _frames(ctx: ApiContext, max_frames: int | None) -> AsyncIterator[bytes]:
    interval = 1.0 / ctx.settings.preview_fps
    encode = functools.partial(jpeg, max_side=ctx.settings.preview_max_side, quality=70)
    sent, last_seq = 0, -1
    while not ctx.stopping.is_set():
        frame = ctx.services.latest_frame()
        if frame is not None and frame.seq != last_seq:
            last_seq = frame.seq
            data = await anyio.to_thread.run_sync(encode, frame.image)
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            yield head.encode("ascii") + data + b"\r\n"
            sent += 1
            if max_frames is not None and sent >= max_frames:
                return
        await anyio.sleep(interval)


@router.get(
    "/preview.mjpg",
    response_class=StreamingResponse,
    responses={200: {"content": {"multipart/x-mixed-replace": {}}}, 503: {"description": "Too many viewers"}},
)
def preview(
    ctx: ContextDep,
    max_frames: Annotated[
        int | None, Query(ge=1, le=100_000, description="Stop after this many frames")
    ] = None,
) -> StreamingResponse:
    """Live MJPEG preview (for an <img>), at [api] preview_fps, scaled to preview_max_side."""
    if ctx.services.camera is None:
        raise ApiError(503, "the camera is not running", "no_camera")
    if not ctx.try_open_preview():
        raise ApiError(
            503,
            f"{ctx.settings.max_preview_clients} live previews are open already: close one",
            "too_many_previews",
            headers={"Retry-After": "5"},
        )
    return _PreviewResponse(
        _frames(ctx, max_frames),
        ctx.close_preview,
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/frame.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 503: {"description": "No frame"}},
)
def frame_jpeg(ctx: ContextDep) -> Response:
    """The newest camera frame as one JPEG (full size)."""
    frame = ctx.services.latest_frame()
    if frame is None:
        raise ApiError(503, "no camera frame yet: is the camera connected?", "no_camera")
    return Response(jpeg(frame.image, max_side=4096, quality=85), media_type="image/jpeg")


@router.get("/analysis")
def analysis(ctx: ContextDep) -> dict[str, Any]:
    """Face boxes (frame pixels) and one hint for the person at the camera: ok, move_closer,
    too_dark, too_bright, hold_still, head_straight, face_camera, one_person, no_face, no_camera.

    Asked for by the enrolment screen only: while it is open, the door's refusals of the person
    being enrolled do not count toward lockouts."""
    ctx.services.note_enrolment()
    return ctx.faces.analyse_live()
