"""The lawful-access options shared by `masking unmask` and `masking export --unmask`."""

from __future__ import annotations

import argparse
from typing import Any

from masking.vault.access import AccessRequest


def add_access_options(p: argparse.ArgumentParser) -> None:
    """Custodians, requester, staff, purpose, approval, and the frames to restore."""
    g = p.add_argument_group(
        "lawful access (Art. 21-22): all required to unmask; a missing one is refused (exit 4) and registered")
    g.add_argument("--custodian", action="append", default=[], metavar="NAME",
                   help="A custodian who unlocks their credential (repeat: the vault's threshold of distinct "
                        "custodians is needed). Passphrase from MASKING_PASSPHRASE_<NAME> or the terminal.")
    g.add_argument("--requester", default="", metavar="TEXT", help='Who asks: "name, unit, ID no."')
    g.add_argument("--staff", action="append", default=[], metavar="TEXT",
                   help='A staff member present: "name, ID no." (repeat: at least two).')
    g.add_argument("--purpose", default="", metavar="TEXT", help="Why the footage is needed (case, incident).")
    g.add_argument("--approval", default="", metavar="TEXT",
                   help='The approval document: "document reference, approving officer".')
    s = p.add_argument_group("what is restored (default: every frame)")
    s.add_argument("--frames", metavar="A-B", help="Only frames A..B (0-based, inclusive) of the masked file; or one frame N.")
    s.add_argument("--start", type=float, metavar="S", help="Only frames at or after S seconds.")
    s.add_argument("--end", type=float, metavar="S", help="Only frames at or before S seconds.")


def request_from(args: argparse.Namespace, destination: str, scope: dict[str, Any]) -> AccessRequest:
    return AccessRequest(args.requester, tuple(args.staff), args.purpose, args.approval, tuple(args.custodian),
                         destination, scope)
