"""`masking unmask`: restore the originals under the dynamic masks, with K custodians and a registered request."""

from __future__ import annotations

import argparse
from pathlib import Path

from masking.cli._access_options import add_access_options, request_from
from masking.errors import ConfigError, MaskingError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "unmask",
        help="Restore the original pixels under the dynamic masks of a sealed recording (lawful access).",
        description="Restore the faces and persons masked in MASKED (static zones stay masked) into a new file, "
        "from the sealed sidecar MASKED.sealed. Needs the vault's threshold of distinct custodians, a requester, "
        "two staff, a purpose and an approval; the request is written to the access register first. Any missing "
        "item, wrong passphrase or tampered byte is refused with exit status 4 and registered too.",
    )
    p.add_argument("input", metavar="MASKED", help="A masked video recorded with --vault (its sidecar beside it).")
    p.add_argument("-o", "--output", required=True, metavar="CLEAR", help="The restored video to write (new file).")
    p.add_argument("--vault", required=True, help="The vault folder the video was sealed for.")
    add_access_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from masking.unmask import Selection, restore_video
    from masking.vault._codec import sha256_file
    from masking.vault.access import authorize
    from masking.vault.vault import Vault

    masked, out = Path(args.input), Path(args.output)
    if out.exists():
        raise ConfigError(f"{out}: exists; unmask never overwrites a file")
    vault = Vault(args.vault)
    selection = Selection.parse(args.frames, args.start, args.end)
    grant = authorize(vault, request_from(args, str(out.resolve()), selection.describe()), [masked])
    seg, sidecar = grant.footage[0]
    try:
        stats = restore_video(masked, out, sidecar, selection)
    except MaskingError as exc:
        vault.register.append("unmask_failed", {"request_seq": grant.entry.seq, "error": str(exc)}, seg.entry.camera,
                              signer=grant.unlocked.signer)
        raise
    vault.register.append("unmask_output", {
        "request_seq": grant.entry.seq, "file": out.name, "path": str(out.resolve()), "sha256": sha256_file(out),
        "frames": stats.frames, "frames_restored": stats.frames_restored, "regions": stats.regions,
    }, seg.entry.camera, signer=grant.unlocked.signer)
    print(f"masking unmask: {masked} -> {out}: {stats.regions} regions restored in {stats.frames_restored} of "
          f"{stats.frames} frames (register entry {grant.entry.seq})")
    return 0
