"""`masking export`: recorded segments (optionally unmasked) into a signed folder for an authority."""

from __future__ import annotations

import argparse
from pathlib import Path

from masking.cli._access_options import add_access_options, request_from
from masking.errors import AccessRefused, VaultError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export", help="Export recorded segments into a signed, self-verifying folder.",
        description="Copies the segments and their sidecars into DIR with the register entries that cover them, a "
        "checkpoint, a manifest of every file's SHA-256 and an Ed25519 signature; `masking verify DIR` checks it "
        "offline. With --unmask the restored videos are added, under the same rules as `masking unmask`.")
    p.add_argument("segments", nargs="+", metavar="SEGMENT", help="Masked videos recorded with --vault.")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="Export folder to create.")
    p.add_argument("--vault", required=True, help="The vault the segments were recorded into.")
    p.add_argument("--unmask", action="store_true", help="Also restore the originals (custodians and approval needed).")
    add_access_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from masking.unmask import Selection, restore_video
    from masking.vault.access import authorize, check_sidecar, registered_segment
    from masking.vault.export import ExportBuilder
    from masking.vault.seal import sidecar_path
    from masking.vault.vault import Vault

    vault = Vault(args.vault)
    out = Path(args.output)
    videos = [Path(s) for s in args.segments]
    selection = Selection.parse(args.frames, args.start, args.end)
    request = request_from(args, str(out.resolve()), selection.describe())
    builder = ExportBuilder(out)
    try:
        if args.unmask:
            grant = authorize(vault, request, videos)
            signer = grant.unlocked.signer
            segments = [seg for seg, _ in grant.footage]
            builder.related.append(grant.entry.seq)
        else:
            if vault.recorder is None:
                raise VaultError(f"{vault.path}: no recorder key here to sign the export; use --unmask with custodians")
            signer = vault.recorder
            try:
                segments = [registered_segment(vault, v) for v in videos]
                for seg, v in zip(segments, videos):
                    check_sidecar(seg, sidecar_path(v))
            except AccessRefused as exc:
                vault.register.append("export", {**request.fields(), "outcome": "refused", "reason": str(exc),
                                                 "targets": [str(v) for v in videos]})
                raise
        for i, (seg, video) in enumerate(zip(segments, videos)):
            builder.add_segment(seg, video, sidecar_path(video))
            if args.unmask:
                restore_video(video, builder.clear_path(video), grant.footage[i][1], selection)
        fields = {**request.fields(), "outcome": "granted", "unmasked": bool(args.unmask)}
        manifest = builder.finish(vault, signer, fields)
    except BaseException:
        builder.abort()
        raise
    print(f"masking export: {len(videos)} segment(s) -> {out}: {len(manifest['files'])} files, signed by the "
          f"{manifest['signer']} key (register entry {manifest['export_entry']}); check with `masking verify {out}`")
    return 0
