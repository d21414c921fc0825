"""The masking pipeline behind every `masking filter` run and every `masking serve` camera.

Modules: `frames` (SourceFrame, the sealed MaskedFrame), `sources` (files, streams with reconnect,
watched folders, raw pipes, images, the corrupt-frame test seam), `sinks` (H.264 with segments,
raw, JPEG folders, images; each holds its output's lock), `masker` (which mask each frame gets;
fail closed), `detect_stage` (batched detection shared by cameras), `engine` (`MaskingPipeline`:
threads and bounded queues), `stats` (counters and the accounting invariant), `config` (the
`masking serve` config) and `build` (the one place sources, sinks and jobs are made, for both
commands). The filter's command-line options live in masking/cli/_filter_stream.py.
"""
