"""Real-time ingest: the streaming engine behind `masking filter` (with detection or streaming
options) and `masking serve`.

Modules: `frames` (SourceFrame, the sealed MaskedFrame), `sources` (files, streams with reconnect,
watched folders, raw pipes, the corrupt-frame test seam), `sinks` (H.264 with segments, raw, JPEG
folders), `masker` (which mask each frame gets; fail closed), `detect_stage` (batched detection shared
by cameras), `engine` (threads and bounded queues), `stats` (counters and the accounting invariant),
`config`/`build` (the `masking serve` config). The filter's streaming options live in masking/cli/_filter_stream.py.
"""
