"""`masking vault {init,hold,purge,verify}`: create a vault, keep footage, delete expired footage, check files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from masking.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "vault", help="Create and maintain a vault for sealed originals (lawful access, retention).",
        description="A vault holds the keys that seal the original pixels under dynamic masks, the custodians "
        "who must unlock them together, and the access register. See docs/lawful-access.md.")
    vsub = parser.add_subparsers(dest="vault_command", metavar="ACTION", required=True)

    p = vsub.add_parser("init", help="Create a vault folder: keys, custodian credentials, register.",
                        description="Creates VAULT with a public vault.yaml (all a recorder needs), the private keys "
                        "locked for every set of THRESHOLD custodians, one passphrase-protected credential per "
                        "custodian (asked on the terminal, or MASKING_PASSPHRASE_<NAME> for scripts) and the register.")
    p.add_argument("vault", metavar="VAULT", help="Folder to create (must not exist, or be empty).")
    p.add_argument("--custodians", required=True, metavar="NAME,NAME,...", help="Custodian names (letters, digits, _).")
    p.add_argument("--threshold", required=True, type=int, metavar="K", help="Custodians needed together to unmask (>= 2).")
    p.set_defaults(handler=_init)

    p = vsub.add_parser("hold", help="Mark a recorded segment important: kept at least 730 days from recording.")
    p.add_argument("segment", metavar="SEGMENT", help="A masked video recorded with --vault.")
    p.add_argument("--reason", required=True, help="Why it is kept (case number, incident).")
    p.add_argument("--vault", default=os.environ.get("MASKING_VAULT"), help="Vault folder (default: $MASKING_VAULT).")
    p.set_defaults(handler=_hold)

    p = vsub.add_parser("purge", help="Delete segments older than DAYS with their sidecars; held ones are refused (exit 4).")
    p.add_argument("--vault", required=True, help="Vault folder.")
    p.add_argument("--older-than", required=True, type=float, metavar="DAYS", help="Delete segments recorded more than DAYS ago.")
    p.set_defaults(handler=_purge)

    p = vsub.add_parser("verify", help="Check the register and that every recorded file still has its registered hashes "
                        "(exit 1 on any finding).")
    p.add_argument("--vault", required=True, help="Vault folder.")
    p.set_defaults(handler=_verify)


def _init(args: argparse.Namespace) -> int:
    from masking.vault.keys import parse_custodians
    from masking.vault.vault import init_vault

    names = parse_custodians(args.custodians)
    vault = init_vault(Path(args.vault), names, args.threshold)
    print(f"masking vault init: {vault.path}: {len(names)} custodians ({', '.join(names)}), threshold {args.threshold}; "
          f"vault id {vault.config.vault_id}")
    print(f"  give each custodian their file under {vault.path / 'custodians'}; recorders need vault.yaml, "
          "recorder.key and register.db only")
    return 0


def _hold(args: argparse.Namespace) -> int:
    from masking.vault.retention import hold
    from masking.vault.vault import Vault

    if not args.vault:
        raise ConfigError("--vault: give the vault folder (or set MASKING_VAULT)")
    e = hold(Vault(args.vault), Path(args.segment), args.reason)
    print(f"masking vault hold: {e.body['file']} kept until {e.body['until']} (register entry {e.seq})")
    return 0


def _purge(args: argparse.Namespace) -> int:
    from masking.cli import EXIT_REFUSED
    from masking.vault.retention import purge
    from masking.vault.vault import Vault

    result = purge(Vault(args.vault), args.older_than)
    for seg in result.deleted:
        print(f"deleted {seg.body['path']} and its sidecar (tombstone registered)")
    for seg in result.refused:
        print(f"masking vault purge: refused: {seg.body['path']} is held until {seg.held_until}")
    print(f"masking vault purge: {len(result.deleted)} deleted, {len(result.refused)} refused (held)")
    return EXIT_REFUSED if result.refused else 0


def _verify(args: argparse.Namespace) -> int:
    from masking.cli import EXIT_FINDINGS
    from masking.vault.retention import verify_files
    from masking.vault.vault import Vault

    vault = Vault(args.vault)
    problems = vault.register.verify() + verify_files(vault)
    for p in problems:
        print(f"FAIL {p}")
    n = len([s for s in vault.segments() if not s.purged])
    print(f"masking vault verify: {vault.path}: {'OK' if not problems else f'{len(problems)} problem(s)'}; "
          f"{n} recorded segments checked")
    return EXIT_FINDINGS if problems else 0
