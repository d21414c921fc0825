"""The report layer: one palette, Jinja2 templates, pictures that are safe to show, paging.

- `masking.report.palette`: every colour any drawing or page uses (annotations, CSS).
- `masking.report.pictures`: the picture a report or a rescan store holds: zones masked as recorded,
  faces blurred (fail closed), downscaled, annotated, JPEG.
- `masking.report.render`: the Jinja2 environment (autoescape on, gettext in Chinese and English),
  anchors, pages, and writing the page files.

Audit (`masking.audit.report`) and rescan (`masking.rescan.report`) reports both render through it.
This package imports nothing heavy at import time (`masking.annotate` imports the palette).
"""
