"""`masking verify`: check an export folder offline; names every file modified, added or removed."""

from __future__ import annotations

import argparse
from pathlib import Path

from masking.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verify", help="Verify a signed export folder offline (exit 1 if anything differs).",
        description="Checks the manifest's Ed25519 signature, every file's SHA-256, the register excerpt against its "
        "signed checkpoint, and each segment against the hashes registered when it was recorded. Needs nothing but "
        "the folder; --public-key pins the vault, so an export re-signed by anyone else is refused.")
    p.add_argument("export", metavar="EXPORT_DIR")
    p.add_argument("--public-key", metavar="KEY",
                   help="The vault's signing public key: base64, or a vault.yaml / vault.json file holding it.")
    p.set_defaults(handler=run)


def pinned_key(text: str) -> bytes:
    """A signing public key from base64 text or from a vault.yaml / vault.json file."""
    from masking.config.yamlio import load_yaml
    from masking.vault._codec import unb64

    path = Path(text)
    value: object = text
    if path.is_file():
        data = load_yaml(path)
        value = data.get("signing_public_key") if isinstance(data, dict) else str(data)
    try:
        key = unb64(value, "--public-key")
    except Exception as exc:
        raise ConfigError(f"--public-key: expected a base64 Ed25519 key or a vault.yaml/vault.json file: {exc}") from exc
    if len(key) != 32:
        raise ConfigError(f"--public-key: an Ed25519 public key has 32 bytes, got {len(key)}")
    return key


def run(args: argparse.Namespace) -> int:
    from masking.cli import EXIT_FINDINGS
    from masking.vault.export import verify_export

    verdict = verify_export(Path(args.export), pinned_key(args.public_key) if args.public_key else None)
    for p in verdict.problems:
        print(f"FAIL {p}")
    if verdict.ok:
        m = verdict.manifest
        print(f"masking verify: {args.export}: OK: {len(m['files'])} files, signed by the {m['signer']} key of vault "
              f"{m['vault_id']}, register checkpoint over {m['checkpoint']['n']} entries")
        return 0
    print(f"masking verify: {args.export}: FAILED ({len(verdict.problems)} problem(s))")
    return EXIT_FINDINGS
