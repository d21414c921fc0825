"""Live outputs of a camera: one H.264 encoder, its packets fanned out to live subscribers.

    MaskedFrame --> LiveEncoder (libx264, zero latency, keyframe every `keyframe_s`)
                      |--> TsClients      MPEG-TS over HTTP, one muxer and bounded queue per client
                      |--> HlsSegments    rolling MPEG-TS segments + an m3u8 playlist, in memory
                      |--> RtspPublisher  RTSP ANNOUNCE/RECORD over TCP, reconnecting with back-off

The encoder runs once per camera whatever the number of subscribers and clients. Every subscriber
starts at a keyframe (with SPS/PPS in band: a recorder can start decoding at once), never blocks
the encoder (a full client queue drops that client; a down RTSP server drops packets until it is
back, counted), and sees only packets made from `MaskedFrame`s: there is no way in for anything
else. Timestamps are the source PTS, rescaled to the encoder's time base.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
import cv2
import numpy as np

from masking.errors import OutputError
from masking.stream.frames import MaskedFrame, require_masked
from masking.stream.queues import BoundedQueue, Closed
from masking.stream.sources import SourceInfo

log = logging.getLogger(__name__)

_NAL_START = b"\x00\x00\x01"


@dataclass(frozen=True)
class LivePacket:
    """One encoded access unit (Annex B), with timestamps in `time_base` and its frame's arrival."""

    data: bytes
    pts: int
    dts: int
    time_base: Fraction
    keyframe: bool
    arrival: float

    def to_av(self, stream: av.video.stream.VideoStream) -> av.Packet:
        """A fresh PyAV packet for one muxer (muxing consumes a packet, so each muxer gets its own)."""
        p = av.Packet(self.data)
        p.pts, p.dts, p.time_base, p.is_keyframe = self.pts, self.dts, self.time_base, self.keyframe
        p.stream = stream
        return p


def parameter_sets(data: bytes) -> bytes:
    """The SPS and PPS NAL units of an Annex B access unit, with 4-byte start codes (SDP extradata)."""
    out = []
    for nal in data.split(_NAL_START):
        nal = nal.rstrip(b"\x00")
        if nal and (nal[0] & 0x1F) in (7, 8):
            out.append(b"\x00\x00\x00\x01" + nal)
    return b"".join(out)


class LatencyWindow:
    """Frame-in to bytes-out latencies (ms) of one output, last 2048 samples."""

    def __init__(self) -> None:
        self._ms: deque[float] = deque(maxlen=2048)
        self._lock = threading.Lock()

    def add(self, arrival: float) -> None:
        with self._lock:
            self._ms.append((time.monotonic() - arrival) * 1000.0)

    def percentiles(self) -> tuple[float, float] | None:
        with self._lock:
            if not self._ms:
                return None
            a = np.fromiter(self._ms, float)
        return float(np.percentile(a, 50)), float(np.percentile(a, 99))


class Subscriber:
    """Receives the camera's packets; must never block (called on the encoder's thread)."""

    name = "subscriber"

    def packet(self, pkt: LivePacket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class LiveEncoder:
    """Encodes one camera's masked frames once and hands the packets to every subscriber."""

    def __init__(self, camera: str, info: SourceInfo, subscribers: list[Subscriber], keyframe_s: float = 2.0,
                 preset: str = "veryfast", crf: int = 23) -> None:
        if info.width % 2 or info.height % 2:
            raise OutputError(f"camera {camera}: live H.264 needs an even frame size, got {info.width}x{info.height}")
        self.camera = camera
        self.info = info
        self.subscribers = subscribers
        fps = info.fps if info.fps and info.fps > 0 else Fraction(25)
        self.time_base = Fraction(1, 90000)
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = info.width, info.height, "yuv420p"
        ctx.time_base = self.time_base
        ctx.framerate = fps
        ctx.gop_size = max(1, round(float(fps) * keyframe_s))
        # zerolatency: no lookahead or B-frames, so a frame's packet leaves with the frame itself
        ctx.options = {"preset": preset, "tune": "zerolatency", "crf": str(crf),
                       "x264-params": f"keyint={ctx.gop_size}:min-keyint={ctx.gop_size}:scenecut=0"}
        ctx.open()
        self._ctx = ctx
        self._last_pts: int | None = None
        self.frames = 0
        self.packets = 0

    def _pts(self, frame: MaskedFrame) -> int:
        pts = round(frame.pts * frame.time_base / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # the encoder needs strictly increasing timestamps
        self._last_pts = pts
        return pts

    def write(self, frame: MaskedFrame) -> None:
        frame = require_masked(frame)
        planes = frame.image if frame.layout == "yuv420p" else cv2.cvtColor(frame.image, cv2.COLOR_BGR2YUV_I420)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes, dtype=np.uint8), format="yuv420p")
        vf.pts = self._pts(frame)
        vf.time_base = self.time_base
        self.frames += 1
        self._emit(self._ctx.encode(vf), frame.arrival)

    def _emit(self, packets: list[av.Packet], arrival: float) -> None:
        for p in packets:
            if p.pts is None:
                continue  # nothing a muxer could place (x264 always stamps its packets)
            dts = p.dts if p.dts is not None else p.pts
            pkt = LivePacket(bytes(p), int(p.pts), int(dts), self.time_base, bool(p.is_keyframe), arrival)
            self.packets += 1
            for s in self.subscribers:
                try:
                    s.packet(pkt)
                except Exception:
                    log.exception("camera %s: live output %s failed on a packet", self.camera, s.name)

    def close(self) -> None:
        try:
            self._emit(self._ctx.encode(None), time.monotonic())
        except av.error.FFmpegError as exc:
            log.warning("camera %s: flushing the live encoder: %s", self.camera, exc)
        for s in self.subscribers:
            try:
                s.close()
            except Exception:
                log.exception("camera %s: closing live output %s", self.camera, s.name)


class _ByteSink:
    """File-like object PyAV muxes into; collects bytes."""

    def __init__(self, on_bytes: Callable[[bytes], None]) -> None:
        self._on = on_bytes

    def write(self, b: bytes | memoryview) -> int:
        self._on(bytes(b))
        return len(b)


def _ts_muxer(out: _ByteSink, info: SourceInfo) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream]:
    c = av.open(out, "w", format="mpegts")
    st = c.add_stream("h264", rate=info.fps if info.fps and info.fps > 0 else 25)
    st.width, st.height, st.pix_fmt = info.width, info.height, "yuv420p"
    st.time_base = Fraction(1, 90000)
    return c, st


class TsClient:
    """One HTTP client of the MPEG-TS stream: its own muxer and a bounded queue of byte chunks."""

    def __init__(self, info: SourceInfo, max_chunks: int) -> None:
        self.queue: BoundedQueue[bytes] = BoundedQueue(max_chunks)
        self.dropped = False
        self._started = False
        self._mux, self._stream = _ts_muxer(_ByteSink(self._put), info)

    def _put(self, b: bytes) -> None:
        if not self.dropped:
            self.queue.put_force(b)  # never blocks the encoder; `feed` checks the room first

    def feed(self, pkt: LivePacket) -> bool:
        """Mux a packet; False when the client cannot keep up (its queue is full) and must go."""
        if not self._started:
            if not pkt.keyframe:
                return True
            self._started = True
        if len(self.queue) >= self.queue.maxsize - 1:
            self.dropped = True
            self.queue.close()
            return False
        self._mux.mux(pkt.to_av(self._stream))
        return True

    def close(self) -> None:
        self.queue.close()


class TsClients(Subscriber):
    """The live MPEG-TS stream of one camera: any number of HTTP clients; a slow one is dropped."""

    name = "http-ts"

    def __init__(self, camera: str, info: SourceInfo, max_chunks: int = 512) -> None:
        self.camera = camera
        self.info = info
        self.max_chunks = max_chunks
        self._clients: list[TsClient] = []
        self._lock = threading.Lock()
        self.latency = LatencyWindow()
        self.clients_dropped = 0
        self.closed = False

    def connect(self) -> TsClient:
        if self.closed:
            raise OutputError(f"camera {self.camera}: the stream has ended")
        c = TsClient(self.info, self.max_chunks)
        with self._lock:
            self._clients.append(c)
        log.info("camera %s: HTTP TS client connected (%d now)", self.camera, len(self._clients))
        return c

    def disconnect(self, client: TsClient) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
        client.close()

    def packet(self, pkt: LivePacket) -> None:
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            if not c.feed(pkt):
                self.clients_dropped += 1
                log.warning("camera %s: dropped a slow HTTP client (its queue was full)", self.camera)
                self.disconnect(c)
        if clients:
            self.latency.add(pkt.arrival)

    def close(self) -> None:
        self.closed = True
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            c.close()


@dataclass
class _Segment:
    seq: int
    duration: float
    data: bytes


@dataclass
class HlsSegments(Subscriber):
    """HLS: MPEG-TS segments cut at keyframes (about `target_s` long); the playlist lists the last
    `window`, and a segment stays available for another `window` after it leaves the playlist
    (RFC 8216, 6.2.2: a player that loaded the previous playlist may still ask for it)."""

    camera: str
    info: SourceInfo
    target_s: float = 2.0
    window: int = 6
    name: str = "hls"
    segments: deque[_Segment] = field(default_factory=deque)
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    ended: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._buf: list[bytes] = []
        self._mux: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._start_t: float | None = None
        self._last_t = 0.0
        self._seq = 0

    def _cut(self, end_t: float) -> None:
        if self._mux is None:
            return
        self._mux.close()
        seg = _Segment(self._seq, max(end_t - (self._start_t or 0.0), 0.001), b"".join(self._buf))
        self._seq += 1
        with self._lock:
            self.segments.append(seg)
            while len(self.segments) > 2 * self.window:
                self.segments.popleft()
        self._mux, self._buf = None, []

    def packet(self, pkt: LivePacket) -> None:
        t = float(pkt.pts * pkt.time_base)
        # keyframes come every `target_s`: cut at each one (half a target guards against timestamp jitter)
        if pkt.keyframe and (self._mux is None or t - (self._start_t or 0.0) >= 0.5 * self.target_s):
            self._cut(t)
            self._mux, self._stream = _ts_muxer(_ByteSink(self._buf.append), self.info)
            self._start_t = t
        if self._mux is None or self._stream is None:
            return  # before the first keyframe
        self._mux.mux(pkt.to_av(self._stream))
        self._last_t = t
        self.latency.add(pkt.arrival)

    def close(self) -> None:
        fps = float(self.info.fps) if self.info.fps else 25.0
        self._cut(self._last_t + 1.0 / fps)
        self.ended = True

    def _target_duration(self, segs: list[_Segment]) -> int:
        # HLS: every EXTINF rounded to the nearest integer is at most the target duration
        return max(1, round(max([s.duration for s in segs] + [self.target_s])))

    def _listed(self) -> list[_Segment]:
        with self._lock:
            return list(self.segments)[-self.window:]

    def ready(self, min_target_durations: float = 4.0) -> bool:
        """Whether the playlist holds enough for a player to start, or the stream has ended. Players
        begin three target durations from the live edge; Chromium fails now and then with exactly
        three, so one more segment is asked for."""
        segs = self._listed()
        if self.ended:
            return True
        return bool(segs) and sum(s.duration for s in segs) >= min_target_durations * self._target_duration(segs) - 0.05

    def playlist(self) -> str:
        segs = self._listed()
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{self._target_duration(segs)}",
                 f"#EXT-X-MEDIA-SEQUENCE:{segs[0].seq if segs else 0}"]
        for s in segs:
            lines += [f"#EXTINF:{s.duration:.3f},", f"seg_{s.seq}.ts"]
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def segment(self, seq: int) -> bytes | None:
        with self._lock:
            for s in self.segments:
                if s.seq == seq:
                    return s.data
        return None


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnection attempts: initial, doubling, capped."""

    initial_s: float = 0.5
    max_s: float = 10.0


class RtspPublisher(Subscriber):
    """Pushes the camera's stream to an RTSP server (ANNOUNCE/RECORD over TCP), reconnecting.

    Packets go through a bounded queue to a thread of its own, so a slow or absent server never
    slows the encoder: while it is down, packets are dropped and counted, and publishing resumes at
    the next keyframe after reconnecting. Each loss and each reconnection is logged.
    """

    name = "rtsp-publish"

    def __init__(self, camera: str, url: str, info: SourceInfo, backoff: Backoff = Backoff(),
                 queue_packets: int = 256, timeout_s: float = 5.0) -> None:
        self.camera = camera
        self.url = url
        self.info = info
        self.backoff = backoff
        self.timeout_s = timeout_s
        self.queue: BoundedQueue[LivePacket] = BoundedQueue(queue_packets)
        self.latency = LatencyWindow()
        self.sent = 0
        self.dropped = 0
        self.losses = 0
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtsp-pub[{camera}]", daemon=True)
        self._thread.start()

    @property
    def safe_url(self) -> str:
        """The URL without credentials, for logs."""
        from urllib.parse import urlsplit, urlunsplit

        u = urlsplit(self.url)
        host = u.hostname or ""
        return urlunsplit((u.scheme, host + (f":{u.port}" if u.port else ""), u.path, u.query, ""))

    def packet(self, pkt: LivePacket) -> None:
        if self.queue.put(pkt, drop_oldest=True) is not None:
            self.dropped += 1

    def close(self) -> None:
        self.queue.close()
        self._thread.join(timeout=self.timeout_s + 2)
        self._stop.set()

    def _open(self, first: LivePacket) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream]:
        opts = {"rtsp_transport": "tcp", "timeout": str(int(self.timeout_s * 1e6))}
        c = av.open(self.url, "w", format="rtsp", options=opts, timeout=self.timeout_s)
        st = c.add_stream("h264", rate=self.info.fps if self.info.fps and self.info.fps > 0 else 25)
        st.width, st.height, st.pix_fmt = self.info.width, self.info.height, "yuv420p"
        st.codec_context.extradata = parameter_sets(first.data)  # SPS/PPS for the SDP
        return c, st

    def _run(self) -> None:
        wait = self.backoff.initial_s
        out: av.container.OutputContainer | None = None
        st: av.video.stream.VideoStream | None = None
        down_since: float | None = None
        while True:
            try:
                pkt = self.queue.get()
            except Closed:
                break
            if out is None:
                if not pkt.keyframe:
                    self.dropped += 1
                    continue
                if down_since is not None and time.monotonic() - down_since < wait:
                    self.dropped += 1
                    continue
                try:
                    out, st = self._open(pkt)
                    self.connects += 1
                    if down_since is not None:
                        log.info("camera %s: publishing to %s again after %.1f s", self.camera, self.safe_url,
                                 time.monotonic() - down_since)
                    else:
                        log.info("camera %s: publishing to %s", self.camera, self.safe_url)
                    down_since, wait = None, self.backoff.initial_s
                except (av.error.FFmpegError, OSError) as exc:
                    self.dropped += 1
                    if down_since is None:
                        log.warning("camera %s: cannot publish to %s: %s", self.camera, self.safe_url, exc)
                    else:
                        wait = min(wait * 2, self.backoff.max_s)
                    down_since = time.monotonic()
                    continue
            assert st is not None
            try:
                out.mux(pkt.to_av(st))
                self.sent += 1
                self.latency.add(pkt.arrival)
            except (av.error.FFmpegError, OSError) as exc:
                self.losses += 1
                self.dropped += 1
                log.warning("camera %s: lost the RTSP server %s (%s); reconnecting with back-off",
                            self.camera, self.safe_url, exc)
                self._discard(out)
                out, st, down_since = None, None, time.monotonic()
        if out is not None:
            try:
                out.close()
            except (av.error.FFmpegError, OSError) as exc:
                log.warning("camera %s: closing the RTSP session: %s", self.camera, exc)

    @staticmethod
    def _discard(out: av.container.OutputContainer) -> None:
        try:
            out.close()
        except (av.error.FFmpegError, OSError):
            pass


class LiveHub:
    """Where the HTTP server finds each camera's live stream.

    Cameras are declared when the config is loaded (so an unknown name is a 404 and a camera that
    has not produced a frame yet is a 503) and published when their encoder opens.
    """

    def __init__(self, names: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._declared = set(names or [])
        self._streams: dict[str, tuple[TsClients, HlsSegments]] = {}

    def declare(self, name: str) -> None:
        with self._lock:
            self._declared.add(name)

    def declared(self, name: str) -> bool:
        with self._lock:
            return name in self._declared

    def publish(self, name: str, ts: TsClients, hls: HlsSegments) -> None:
        with self._lock:
            self._declared.add(name)
            self._streams[name] = (ts, hls)

    def get(self, name: str) -> tuple[TsClients, HlsSegments] | None:
        with self._lock:
            return self._streams.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._declared)


class LiveSink:
    """A camera's live outputs as one engine sink: one encoder, HTTP (TS + HLS) and RTSP publishing."""

    def __init__(self, camera: str, info: SourceInfo, hub: LiveHub | None, publish_urls: list[str],
                 keyframe_s: float = 2.0, hls_window: int = 6) -> None:
        subs: list[Subscriber] = []
        self.ts: TsClients | None = None
        self.hls: HlsSegments | None = None
        if hub is not None:
            self.ts = TsClients(camera, info)
            self.hls = HlsSegments(camera, info, target_s=keyframe_s, window=hls_window)
            subs += [self.ts, self.hls]
        self.publishers = [RtspPublisher(camera, url, info) for url in publish_urls]
        subs += self.publishers
        self.encoder = LiveEncoder(camera, info, subs, keyframe_s=keyframe_s)
        if hub is not None and self.ts is not None and self.hls is not None:
            hub.publish(camera, self.ts, self.hls)
        self.files: list[str] = []
        self._closed = False

    def write(self, frame: MaskedFrame) -> None:
        self.encoder.write(frame)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.encoder.close()
            for sub in self.encoder.subscribers:
                lat = getattr(sub, "latency", None)
                pct = lat.percentiles() if isinstance(lat, LatencyWindow) else None
                extra = ""
                if isinstance(sub, RtspPublisher):
                    extra = f" sent={sub.sent} dropped={sub.dropped} losses={sub.losses} connects={sub.connects}"
                elif isinstance(sub, TsClients):
                    extra = f" clients_dropped={sub.clients_dropped}"
                log.info("camera %s: live %s: frame-in to bytes-out p50/p99=%s ms%s", self.encoder.camera, sub.name,
                         "/".join(f"{v:.0f}" for v in pct) if pct else "-", extra)

    def abort(self) -> None:
        self.close()  # a live stream has nothing to discard: what was sent was masked
