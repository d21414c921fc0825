"""Batch rescans of camera fleets: manifests, resumable work items, engines, store and reports.

Public surface: `load_fleet` (manifest file or folder), `RescanOptions`, `run_rescan`, `Store`,
`write_outputs`, `combine_results`. Each item is audited by `masking.audit.Auditor`, the same code
as `masking audit`.
"""

from masking.rescan.combine import combine_results
from masking.rescan.manifest import Fleet, FleetCamera, folder_fleet, load_fleet, load_manifest
from masking.rescan.report import write_outputs
from masking.rescan.runner import RescanOptions, RescanResult, run_rescan
from masking.rescan.store import SCHEMA_VERSION, Store

__all__ = [
    "SCHEMA_VERSION",
    "Fleet",
    "FleetCamera",
    "RescanOptions",
    "RescanResult",
    "Store",
    "combine_results",
    "folder_fleet",
    "load_fleet",
    "load_manifest",
    "run_rescan",
    "write_outputs",
]
