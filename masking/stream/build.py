"""Sources, sinks and jobs for `masking filter` and `masking serve`: the one place that turns an
input name and an output description into a `MaskingPipeline` job.

Inputs (`input_kind`): a video file, a live URL, a watched folder of video segments (`serve`), an
image, a folder of images (`filter`), raw bgr24 frames from a file or stdin. Outputs (`OutputSpec`):
H.264 (optionally segmented), a JPEG folder, raw bgr24 frames (file or stdout), images under their
own names. Images and image folders are sources and sinks like any other: every output frame is a
`MaskedFrame` from the masking stage.
"""

from __future__ import annotations

import enum
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from masking.config.zones import Camera, MaskStyle
from masking.errors import ConfigError, InputError, MaskingError
from masking.stream.config import (
    RtspPublishSpec,
    ServeCamera,
    ServeConfig,
    SinkSpec,
    resolve_camera,
)
from masking.stream.engine import CameraJob, CameraResult, MaskingPipeline, PipelineOptions, SinkFactory
from masking.stream.live import LiveHub, LiveSink
from masking.stream.outputs import FanOut
from masking.stream.sinks import H264Sink, ImageSink, JpegDirSink, RawSink, Sink
from masking.stream.sources import (
    LIVE_SCHEMES,
    FileSource,
    FolderSource,
    ImageSource,
    RawSource,
    ReconnectPolicy,
    Source,
    SourceInfo,
    StreamSource,
    check_input_file,
)
from masking.stream.stats import CameraStats
from masking.video.encoding import DEFAULT_PRESET
from masking.video.images import IMAGE_SUFFIXES, is_image_path, list_images
from masking.video.layout import PixelLayout

if TYPE_CHECKING:  # vault (issue 12)
    from masking.vault.recorder import VaultSealer


class InputKind(str, enum.Enum):
    """What an input name refers to."""

    video = "video"  # a video file
    stream = "stream"  # a live URL (rtsp://, http://, ...)
    segments = "segments"  # a folder watched for video segments (serve)
    image = "image"
    images = "folder"  # a folder of images (filter); the value is what `masking filter` prints
    raw = "raw"  # raw bgr24 frames from a file or stdin (`-`)


@dataclass(frozen=True)
class RawInput:
    """Geometry and rate of raw bgr24 input frames."""

    width: int
    height: int
    fps: Fraction = Fraction(25)


def input_kind(source: str, folders: InputKind = InputKind.images, raw: bool = False) -> InputKind:
    """The kind of input `source` names; a folder is `folders` (images for filter, segments for serve)."""
    if raw:
        return InputKind.raw
    if source.startswith(LIVE_SCHEMES):
        return InputKind.stream
    if source == "-":
        raise ConfigError("reading stdin needs --input-format rawvideo --size WxH --pix-fmt bgr24")
    p = Path(source)
    if p.is_dir():
        return folders
    check_input_file(p, "file or folder")
    return InputKind.image if is_image_path(p) else InputKind.video


def make_source(source: str, kind: InputKind, *, name: str | None = None, raw: RawInput | None = None,
                transport: str = "tcp", reconnect: ReconnectPolicy = ReconnectPolicy(),
                folder_idle_s: float | None = None, realtime: bool = False) -> Source:
    """The source for an input of `kind` (see `input_kind`)."""
    if kind is InputKind.raw:
        if raw is None:
            raise ConfigError("raw input needs --size WxH and --pix-fmt bgr24")
        if source == "-":
            return RawSource(sys.stdin.buffer, raw.width, raw.height, raw.fps, name=name or "stdin")
        path = Path(source)
        check_input_file(path, "raw video file")
        RawSource(sys.stdin.buffer, raw.width, raw.height, raw.fps, name=source)  # checks the size before opening
        try:
            stream = path.open("rb")
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        return RawSource(stream, raw.width, raw.height, raw.fps, name=name or source, owns_stream=True)
    if kind is InputKind.stream:
        return StreamSource(source, name=name, transport=transport, reconnect=reconnect)
    if kind is InputKind.segments:
        return FolderSource(Path(source), name=name, idle_timeout_s=folder_idle_s)
    if kind in (InputKind.image, InputKind.images):
        return ImageSource(image_inputs(Path(source), kind), name=name)
    return FileSource(Path(source), name=name, realtime=realtime)


def image_inputs(source: Path, kind: InputKind) -> list[Path]:
    """The image(s) an image or image-folder input holds, in name order."""
    if kind is InputKind.image:
        return [source]
    items = list_images(source)
    if not items:
        raise InputError(f"{source}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return items


@dataclass(frozen=True)
class OutputSpec:
    """Where a camera's masked frames go.

    `format`: h264 (a video file, or segments of `segment_seconds`), jpeg-dir, rawvideo (a file,
    or `-` for stdout), image (one image) or images (a folder; `targets` are the file names).
    """

    format: str
    path: str
    segment_seconds: float | None = None
    crf: int = 20
    preset: str = DEFAULT_PRESET
    targets: tuple[Path, ...] = ()

    @classmethod
    def from_sink_spec(cls, spec: SinkSpec) -> OutputSpec:
        return cls(spec.format, str(spec.path), spec.segment_seconds, spec.crf, spec.preset)

    @property
    def layouts(self) -> tuple[PixelLayout, ...]:
        """Frame layouts this output takes (H.264 also takes yuv420p planes: no conversion)."""
        return sink_layouts(self.format)


def sink_layouts(fmt: str) -> tuple[PixelLayout, ...]:
    """Frame layouts a sink format accepts (H.264 files and live streams also take yuv420p planes:
    no conversion)."""
    planar = fmt in ("h264", "http", "rtsp-publish")
    return (PixelLayout.bgr24, PixelLayout.yuv420p) if planar else (PixelLayout.bgr24,)


def sink_factory(spec: OutputSpec, sealer: VaultSealer | None = None) -> SinkFactory:
    """A factory making the sink once the source's size and timing are known."""

    def make(info: SourceInfo) -> Sink:
        if spec.format == "jpeg-dir":
            return JpegDirSink(spec.path)
        if spec.format == "rawvideo":
            return RawSink(sys.stdout.buffer, "stdout") if spec.path == "-" else RawSink.to_file(spec.path)
        if spec.format in ("image", "images"):
            return ImageSink(spec.path, list(spec.targets))
        return H264Sink(spec.path, info, segment_seconds=spec.segment_seconds, crf=spec.crf, preset=spec.preset,
                        sealer=sealer)

    return make


def camera_job(name: str, camera: Camera, source: Source, output: OutputSpec, *, hold_motion: float = 0.02,
               style_override: MaskStyle | None = None, sealer: VaultSealer | None = None,
               live: LiveOutputs | None = None) -> CameraJob:
    """One camera's job: a file, folder or pipe that fails loses its incomplete output; a live
    source keeps what it wrote. With a vault `sealer`, the originals under dynamic masks are sealed
    into a sidecar beside each H.264 segment."""
    if sealer is not None and output.format != "h264":
        raise ConfigError("--vault needs h264 output: the sealed sidecar sits next to each output segment")
    sink = with_live(name, [(output.format, sink_factory(output, sealer))], live)
    return CameraJob(name, camera, source, sink, hold_motion=hold_motion,
                     style_override=style_override, sink_layouts=output.layouts, abort_on_error=not source.live,
                     sealer=sealer)


def filter_job(source: str, output: str, camera: Camera, *, raw: RawInput | None = None,
               output_format: str | None = None, segment_seconds: float | None = None, crf: int = 20,
               preset: str = DEFAULT_PRESET, hold_motion: float = 0.02,
               style_override: MaskStyle | None = None,
               sealer: Callable[[], VaultSealer] | None = None, live: LiveOutputs | None = None,
               realtime: bool = False) -> tuple[CameraJob, InputKind, OutputSpec]:
    """The job of one `masking filter` run: `source` (video, URL, image, image folder, raw) into
    `output` of a matching kind; `ConfigError`/`InputError` name what does not fit. `sealer` makes
    the vault's sealer once the output is known to be H.264."""
    kind = input_kind(source, raw=raw is not None)
    src = make_source(source, kind, raw=raw, reconnect=ReconnectPolicy(give_up_after_s=30.0), realtime=realtime)
    out = Path(output)
    if live is not None and kind in (InputKind.image, InputKind.images):
        raise ConfigError("--http and --publish stream video: they need a video, stream or raw input")
    if kind in (InputKind.image, InputKind.images):
        if output_format or segment_seconds is not None or output == "-":
            raise ConfigError("--segment-seconds, --output-format and raw output apply to video input only")
        assert isinstance(src, ImageSource)
        if kind is InputKind.image:
            if not is_image_path(out):
                raise InputError(f"{out}: an image input needs an image output ({', '.join(sorted(IMAGE_SUFFIXES))})")
            spec = OutputSpec("image", output, targets=(out,))
        else:
            if out.exists() and not out.is_dir():
                raise InputError(f"{out}: a folder input needs a folder output")
            spec = OutputSpec("images", output, targets=tuple(out / p.name for p in src.paths))
    else:
        fmt = output_format or ("rawvideo" if output == "-" else "h264")
        if fmt == "h264" and is_image_path(out):
            raise InputError(f"{out}: a video input needs a video output (e.g. .mp4), not an image")
        if output == "-" and fmt != "rawvideo":
            raise ConfigError("writing stdout needs --output-format rawvideo")
        if fmt == "rawvideo":
            if segment_seconds is not None:
                raise ConfigError("--segment-seconds applies to h264 output only")
            spec = OutputSpec("rawvideo", output)
        else:
            try:  # the same rules as a `masking serve` sink
                checked = SinkSpec(format=fmt, path=out, segment_seconds=segment_seconds, crf=crf, preset=preset)
            except ValidationError as exc:
                problems = "; ".join(f"--{'-'.join(str(x) for x in e['loc']).replace('_', '-')}: {e['msg']}"
                                     if e["loc"] else str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
                raise ConfigError(f"invalid output options: {problems}") from exc
            spec = OutputSpec.from_sink_spec(checked)
    if sealer is not None and spec.format != "h264":
        raise ConfigError("--vault needs h264 output: the sealed sidecar sits next to each output segment")
    job = camera_job(camera.camera_id, camera, src, spec, hold_motion=hold_motion, style_override=style_override,
                     sealer=sealer() if sealer is not None else None, live=live)
    return job, kind, spec


def run_job(job: CameraJob, discard_on_signal: bool = True, options: PipelineOptions = PipelineOptions(),
            watch: Callable[[CameraStats], AbstractContextManager[object]] | None = None,
            ) -> tuple[CameraResult, StopSignal, MaskingPipeline]:
    """Run one job to its end (or a signal); the result, the signal that stopped it (if any) and
    the pipeline (its detection groups say whether the detectors were available). `watch` gets
    the camera's live counters for the duration of the run (the CLI's progress bar)."""
    pipeline = MaskingPipeline([job], options)
    with stop_on_signals(pipeline, discard=discard_on_signal) as stopped, \
            watch(pipeline.cameras[0].stats) if watch is not None else nullcontext():
        (result,) = pipeline.run()
    return result, stopped, pipeline


def mask_file(source: str | Path, output: str | Path, camera: Camera,
              style_override: MaskStyle | None = None) -> CameraResult:
    """Mask a video, image or image folder into `output` of the same kind (library use: the demo
    and the benchmarks); `MaskingError` when the run fails."""
    job, _, _ = filter_job(str(source), str(output), camera, style_override=style_override)
    result, _, _ = run_job(job, discard_on_signal=False)
    if result.error:
        raise MaskingError(f"{source}: {result.error}")
    return result


def source_from_spec(spec: ServeCamera, folder_idle_s: float | None = None) -> Source:
    """A live stream, a watched folder of segments, or a file."""
    exists = spec.source.startswith(LIVE_SCHEMES) or Path(spec.source).exists()
    kind = input_kind(spec.source, folders=InputKind.segments) if exists else InputKind.video
    return make_source(spec.source, kind, name=spec.name, transport=spec.transport,
                       reconnect=ReconnectPolicy(max_s=spec.reconnect_max_s), folder_idle_s=folder_idle_s,
                       realtime=spec.pace == "realtime")


def jobs_from_config(cfg: ServeConfig, where: str, hub: LiveHub | None = None) -> list[CameraJob]:
    """One job per camera entry (zones loaded and detection overrides applied)."""
    return [_job(c, resolve_camera(c, where), hub) for c in cfg.cameras]


def _job(c: ServeCamera, camera: Camera, hub: LiveHub | None) -> CameraJob:
    sealer = None
    if c.vault is not None:  # vault (issue 12)
        from masking.vault.recorder import VaultSealer, configured_by

        sealer = VaultSealer(c.vault, camera.camera_id, configured_by(c.zones))
    return CameraJob(c.name, camera, source_from_spec(c), camera_sink_factory(c, hub, sealer),
                     sink_layouts=camera_layouts(c), sealer=sealer)


_LIVE_QUEUE_FRAMES = 25  # per output: one second at 25 fps before a live output drops its oldest frame


@dataclass(frozen=True)
class LiveOutputs:
    """A camera's live outputs: the HTTP stream (published in `hub`) and RTSP servers to push to."""

    hub: LiveHub | None = None
    publish: tuple[str, ...] = ()
    keyframe_s: float = 2.0


def with_live(name: str, recording: list[tuple[str, SinkFactory]], live: LiveOutputs | None) -> SinkFactory:
    """One sink for a camera's outputs: the recording outputs (lossless) and, when `live` asks for
    any, the live lane (one encoder shared by HTTP and RTSP publishing; lossy) in a `FanOut`."""
    if len(recording) == 1 and (live is None or (live.hub is None and not live.publish)):
        return recording[0][1]

    def make(info: SourceInfo) -> Sink:
        lanes: list[tuple[str, Sink, bool]] = []
        try:
            for label, factory in recording:
                lanes.append((label, factory(info), False))
            if live is not None and (live.hub is not None or live.publish):
                lanes.append(("live", LiveSink(name, info, live.hub, list(live.publish), keyframe_s=live.keyframe_s),
                              True))
        except Exception:
            for _, sink, _ in lanes:
                sink.abort()
            raise
        return FanOut(name, lanes, queue_size=_LIVE_QUEUE_FRAMES)

    return make


def camera_sink_factory(spec: ServeCamera, hub: LiveHub | None, sealer: VaultSealer | None = None) -> SinkFactory:
    """The camera's sink: its one output, or a `FanOut` over every output (the live ones share one
    encoder). With a vault, every h264 output seals the originals into its sidecars."""
    outputs = spec.all_outputs
    files = [OutputSpec.from_sink_spec(o) for o in spec.file_outputs]
    http = spec.serves_http
    publish = tuple(o.url for o in outputs if isinstance(o, RtspPublishSpec))
    recording = [(f"{f.format}:{f.path}", sink_factory(f, sealer if f.format == "h264" else None)) for f in files]
    return with_live(spec.name, recording, LiveOutputs(hub if http else None, publish, spec.keyframe_seconds))


def camera_layouts(spec: ServeCamera) -> tuple[PixelLayout, ...]:
    """The layouts every output of the camera takes."""
    allowed = set(PixelLayout)
    for o in spec.all_outputs:
        allowed &= set(sink_layouts(o.format))
    return tuple(sorted(allowed, key=lambda x: x.value))


def live_hub(cfg: ServeConfig) -> LiveHub | None:
    """The hub of the cameras with an `http` output, or None when there is none."""
    names = [c.name for c in cfg.cameras if c.serves_http]
    return LiveHub(names) if names else None


def pipeline_for(cfg: ServeConfig, where: str, hub: LiveHub | None = None) -> MaskingPipeline:
    """The pipeline of a `masking serve` config (`hub`: where its `http` outputs are published)."""
    return MaskingPipeline(jobs_from_config(cfg, where, hub), PipelineOptions(
        queue_size=cfg.queue_size, stats_interval_s=cfg.stats_interval_s, detector_threads=cfg.detector_threads,
        detector_workers=cfg.detector_workers,
    ))


class StopSignal:
    """Which signal stopped a pipeline, if any."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_status(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM (what shells report)."""
        return 128 + (self.signum or 0)


@contextmanager
def stop_on_signals(pipeline: MaskingPipeline, discard: bool = False) -> Iterator[StopSignal]:
    """SIGINT/SIGTERM ask the pipeline to stop: sources end, queued frames are written, and the
    outputs are closed (`serve`) or, with `discard`, aborted (an interrupted `filter`)."""
    got = StopSignal()

    def handler(signum: int, _frame: FrameType | None) -> None:
        got.set(signum)
        pipeline.stop(discard=discard)

    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)
