"""Model registry (masking/models/registry.yaml) and the verified model cache."""

from masking.models.registry import EvidenceRule, ModelEntry, Registry, load_registry

__all__ = ["EvidenceRule", "ModelEntry", "Registry", "load_registry"]
