"""`masking serve CONFIG.yaml`: run a set of cameras (sources, sinks, zones, detection) until stopped."""

from __future__ import annotations

import argparse
import logging

from masking.cli import EXIT_OK, EXIT_USAGE
from masking.paths import refuse_overwrite

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `serve` sub-command."""
    p = sub.add_parser(
        "serve",
        help="Mask a set of cameras (files, folders, RTSP/HTTP streams) from one config until stopped.",
        description=(
            "Run every camera of CONFIG.yaml concurrently: decode, detect, mask, encode. Live streams "
            "reconnect with back-off; cameras with the same detectors share batched detector calls. "
            "Fail closed: a failed, late or missing detector masks more (policy full or zones), never less. "
            "SIGINT/SIGTERM stop cleanly: queued frames are written and every file is closed and renamed. "
            "Per-camera counters are logged every stats_interval_s and at exit."
        ),
    )
    p.add_argument("config", help="Serve config YAML (see README, 'masking serve').")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from masking.stream.build import live_hub, pipeline_for, stop_on_signals
    from masking.stream.config import load_serve_config

    cfg = load_serve_config(args.config)
    refuse_overwrite([o.path for c in cfg.cameras for o in c.file_outputs],
                     [args.config, *(c.source for c in cfg.cameras), *(c.zones for c in cfg.cameras)])
    hub = live_hub(cfg)
    pipeline = pipeline_for(cfg, args.config, hub)
    server = None
    if hub is not None:
        from masking.web.live import LiveServer

        server = LiveServer(hub, cfg.http.host, cfg.http.port, cfg.http.token)
        server.start()
        for name in hub.names():
            log.info("camera %s live: %s and %s", name, server.url(name), server.url(name, "index.m3u8"))
    try:
        with stop_on_signals(pipeline) as stopped:
            results = pipeline.run()
    finally:
        if server is not None:
            server.stop()
    if stopped.is_set():
        log.info("stopped by %s; all outputs closed", stopped.name)
    failed = [r for r in results if r.error]
    for r in failed:
        log.error("camera %s ended with an error: %s", r.name, r.error)
    return EXIT_USAGE if failed else EXIT_OK
