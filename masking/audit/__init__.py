"""Art. 7 view audits: is a camera's (masked) view of a prohibited place? Evidence, verdict, fix.

Public surface (used by `masking audit` and by fleet rescans):
`AuditSettings`, `Auditor` (`audit_frames`, `audit_path`), `AuditFrame`, `AuditResult`,
`Evidence`, `ProposedMask`, `SCHEMA_VERSION`, `audit_json_document`.
"""

from masking.art7 import ARTICLE_7, article_for
from masking.audit.auditor import Auditor, sample_video, tile_grid
from masking.audit.result import (
    SCHEMA_VERSION,
    AuditFrame,
    AuditResult,
    Evidence,
    ProposedMask,
    audit_json_document,
)
from masking.audit.settings import AuditSettings, settings_from

__all__ = [
    "ARTICLE_7",
    "SCHEMA_VERSION",
    "AuditFrame",
    "AuditResult",
    "AuditSettings",
    "Auditor",
    "Evidence",
    "ProposedMask",
    "article_for",
    "audit_json_document",
    "sample_video",
    "settings_from",
    "tile_grid",
]
