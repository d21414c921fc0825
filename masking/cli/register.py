"""`masking register {verify,show,export}`: the access register, as inspectors read it (Art. 17)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from masking.errors import ConfigError

COLUMNS = ("seq", "time", "event", "camera", "recorded_by", "retrieved_by", "staff", "purpose", "approval",
           "destination", "outcome", "detail")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("register", help="Verify, show or export the vault's access register.",
                            description="Every recorded segment, unmask request (granted or refused), hold, export "
                            "and deletion, hash-chained and signed into checkpoints.")
    rsub = parser.add_subparsers(dest="register_command", metavar="ACTION", required=True)
    p = rsub.add_parser("verify", help="Detect edited, deleted, inserted, reordered or cut entries (exit 1 if any).")
    p.add_argument("--vault", required=True)
    p.add_argument("--export", action="append", default=[], metavar="EXPORT_DIR",
                   help="Also check the register still holds the history this export certified (catches a rollback).")
    p.set_defaults(handler=_verify)
    for name, text in (("show", "Print the register (recorded by, retrieved by, time, purpose, destination)."),
                       ("export", "Write the register as JSON lines (or CSV) for an inspector.")):
        p = rsub.add_parser(name, help=text)
        p.add_argument("--vault", required=True)
        p.add_argument("--camera", help="Only entries of this camera id.")
        p.add_argument("--since", metavar="DATE", help="Only entries at or after DATE (YYYY-MM-DD or ISO time, UTC).")
        p.add_argument("--csv", action="store_true", help="CSV with the columns of `show`.")
        if name == "export":
            p.add_argument("-o", "--output", help="File to write (default: stdout).")
        p.set_defaults(handler=_show if name == "show" else _export)


def _verify(args: argparse.Namespace) -> int:
    from masking.cli import EXIT_FINDINGS
    from masking.vault.register import Checkpoint
    from masking.vault.vault import Vault

    vault = Vault(args.vault)
    problems = vault.register.verify()
    for d in args.export:
        manifest = json.loads((Path(d) / "manifest.json").read_text(encoding="utf-8"))
        problems += [f"{d}: {p}" for p in vault.register.verify_against(Checkpoint.from_dict(manifest["checkpoint"], d))]
    for p in problems:
        print(f"FAIL {p}")
    n = len(vault.register.entries())
    print(f"masking register verify: {'OK' if not problems else f'{len(problems)} problem(s)'}; {n} entries, "
          f"{len(vault.register.checkpoints())} checkpoints")
    return EXIT_FINDINGS if problems else 0


def _selected(args: argparse.Namespace) -> list[Any]:
    from masking.vault.vault import Vault

    since = args.since or ""
    if since and len(since) == 10:
        since += "T00:00:00Z"
    if since and len(since) != 20:
        raise ConfigError(f"--since: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, got {args.since!r}")
    return [e for e in Vault(args.vault).register.entries()
            if (not args.camera or e.camera == args.camera) and e.at >= since]


def art17_row(e: Any) -> dict[str, str]:
    """One register entry in the inspector's columns."""
    b: dict[str, Any] = e.body
    detail = ""
    if e.kind == "segment":
        detail = f"{b.get('file')} {b.get('start_s', 0):.1f}-{b.get('end_s', 0):.1f} s, {b.get('regions')} regions sealed, sha256 {str(b.get('sha256'))[:16]}"
    elif e.kind in ("hold", "purge_refused"):
        detail = f"{b.get('file')} held until {b.get('until') or b.get('held_until')}" + (f": {b['reason']}" if b.get("reason") else "")
    elif e.kind == "tombstone":
        detail = f"deleted {b.get('file')} + {b.get('sidecar')} ({b.get('reason')}), sha256 {str(b.get('sha256'))[:16]}"
    elif e.kind in ("unmask", "export"):
        detail = ", ".join(s.get("file", "") for s in b.get("segments", [])) or ", ".join(b.get("targets", []))
        if b.get("reason"):
            detail += f" (refused: {b['reason']})"
    elif e.kind == "unmask_output":
        detail = f"{b.get('file')} sha256 {str(b.get('sha256'))[:16]}, {b.get('regions')} regions restored"
    return {
        "seq": str(e.seq), "time": e.at, "event": e.kind, "camera": e.camera or "",
        "recorded_by": str(b.get("configured_by", "")), "retrieved_by": str(b.get("requester", "")),
        "staff": "; ".join(b.get("staff", [])), "purpose": str(b.get("purpose", "")),
        "approval": str(b.get("approval", "")), "destination": str(b.get("destination", b.get("path", ""))),
        "outcome": str(b.get("outcome", "")), "detail": detail,
    }


def _write_csv(rows: list[dict[str, str]], out: Any) -> None:
    w = csv.DictWriter(out, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(rows)


def _show(args: argparse.Namespace) -> int:
    rows = [art17_row(e) for e in _selected(args)]
    if args.csv:
        _write_csv(rows, sys.stdout)
        return 0
    for r in rows:
        who = r["recorded_by"] or r["retrieved_by"]
        line = f"{r['seq']:>5}  {r['time']}  {r['event']:<14} {r['camera'] or '-':<12} {who}"
        extra = [f"{k}: {r[k]}" for k in ("staff", "purpose", "approval", "destination", "outcome", "detail") if r[k]]
        print(line + "".join(f"\n         {x}" for x in extra))
    print(f"{len(rows)} entries")
    return 0


def _export(args: argparse.Namespace) -> int:
    entries = _selected(args)
    out = Path(args.output).open("w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.csv:
            _write_csv([art17_row(e) for e in entries], out)
        else:
            for e in entries:
                out.write(json.dumps({**e.content(), "hash": e.hash}, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
