"""`masking models`: list, install (pull), verify and locate the models of the registry."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from masking.errors import MaskingError
from masking.models.cache import FileCheck, check_installed, install_hint, model_dir, model_path
from masking.models.pull import Mirror, Progress, pull_model
from masking.models.registry import ModelEntry, load_registry

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_FAILED = 2

_INSTALLED = {"ok": "yes", "missing": "no", "corrupt": "corrupt"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `masking models {list,pull,verify,path}`."""
    parser = sub.add_parser(
        "models",
        help="List, install and verify the detection models.",
        description=(
            "Models are listed in the package's registry.yaml (or $MASKING_REGISTRY) and installed into "
            "$MASKING_MODEL_DIR (default ~/.cache/masking/models). Every file is checked against the "
            "registry's size and sha256; nothing else is ever loaded."
        ),
    )
    msub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    p = msub.add_parser(
        "list",
        help="Each model, its licence, whether it is installed, and which commands use it by default.",
        description="DEFAULT_FOR names the commands that use a model without being told to (audit and rescan: "
        "YOLOX-Nano and the three scene models, all permissively licensed; AGPL models are opt-in).",
    )
    p.add_argument("--json", action="store_true", help="Machine-readable output (one JSON array).")
    p.set_defaults(handler=_cmd_list)

    p = msub.add_parser(
        "pull",
        help="Install models into the model cache.",
        description=(
            "Download models from their upstream URLs, or copy them from a mirror (--from) on air-gapped "
            "sites. Each file goes to a temporary name, is checked against the registry's size and sha256, "
            "and only then takes its final name: a bad or interrupted download never becomes a model."
        ),
    )
    p.add_argument(
        "names", nargs="*", metavar="NAME", help="Models to install (default: every model in the registry)."
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="DIR_OR_URL",
        help=(
            "Mirror to install from instead of upstream: a folder (looked up as DIR/mirror_path, DIR/file, "
            "DIR/<basename>), a file:// or http(s):// base URL, or one model file. Upstream is the default "
            "because it needs no set-up; air-gapped sites and CI use a mirror."
        ),
    )
    p.add_argument(
        "--force",
        action="store_true",
        help=(
            "Re-hash files already installed (the default only compares sizes, which is instant and catches "
            "truncated downloads) and replace any that do not match."
        ),
    )
    p.set_defaults(handler=_cmd_pull)

    p = msub.add_parser(
        "verify",
        help="Re-check the size and sha256 of installed model files (exit 1 if any is corrupt).",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="Models to check (default: every installed model).")
    p.set_defaults(handler=_cmd_verify)

    p = msub.add_parser("path", help="Print the installed file of a model (size-checked).")
    p.add_argument("name", metavar="NAME", help="Model name from the registry.")
    p.set_defaults(handler=_cmd_path)


def _entries(names: list[str]) -> list[ModelEntry]:
    """Registry entries for `names` (all when empty); unknown names fail before anything is done."""
    registry = load_registry()
    if not names:
        return list(registry.models)
    return [registry.get(n) for n in dict.fromkeys(names)]


def default_uses() -> dict[str, list[str]]:
    """Model name -> the commands that use it by default (`models list`: which defaults each command
    uses). Audits and rescans: the AuditSettings defaults (object detector + scene models, fused
    verdict); `detect`: its --model default; `filter --detect PRESET`: the presets' models."""
    from masking.audit import AuditSettings
    from masking.detect.dynamic import PRESETS

    st = AuditSettings()
    uses: dict[str, list[str]] = {}
    for name in [*st.models, *st.scene_models]:
        uses.setdefault(name, []).extend(["audit", "rescan"])
    uses.setdefault("yolox-nano", []).append("detect")
    for preset, spec in PRESETS.items():
        uses.setdefault(spec.model, []).append(f"filter --detect {preset}")
    return uses


def _row(check: FileCheck, uses: dict[str, list[str]] | None = None) -> dict[str, Any]:
    e = check.entry
    installed, problem = _INSTALLED[check.state], check.reason or None
    if e.head is not None and installed == "yes":  # a scene classifier needs its trained head as well
        from masking.audit.scenes import head_path

        if not head_path(e).is_file():
            installed = "no trained head"
            problem = f"backbone installed, head not trained yet: run `masking scenes train MANIFEST --model {e.name}`"
    return {
        "name": e.name,
        "family": e.family,
        "task": e.task,
        "license": e.license,
        "size": e.size,
        "installed": installed,
        "path": str(check.path) if check.path else None,
        "problem": problem,
        "source": f"package {e.package.name}" if e.package else ("upstream" if e.urls else "mirror only"),
        "default_for": ", ".join((uses or {}).get(e.name, [])) or None,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _cmd_list(args: argparse.Namespace) -> int:
    uses = default_uses()
    rows = [_row(check_installed(e, full=True), uses) for e in load_registry().models]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    _print_table(rows, ["name", "family", "task", "license", "size", "installed", "path", "default_for"])
    for r in rows:
        if r["problem"]:
            print(f"{r['name']}: {r['problem']}", file=sys.stderr)
    print(f"model cache: {model_dir()}", file=sys.stderr)
    return EXIT_OK


def _progress_bar(entry: ModelEntry) -> tuple[Progress | None, Callable[[], None]]:
    from masking.cli import show_progress

    if not show_progress():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=entry.size, unit="B", unit_scale=True, desc=entry.name, leave=False, file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def _cmd_pull(args: argparse.Namespace) -> int:
    entries = _entries(args.names)
    mirror = Mirror.parse(args.source) if args.source else None
    failed: list[str] = []
    for entry in entries:
        progress, close = _progress_bar(entry)
        try:
            result = pull_model(entry, mirror, force=args.force, progress=progress)
        except MaskingError as exc:
            failed.append(entry.name)
            print(f"masking models pull: {entry.name}: error: {exc}", file=sys.stderr)
            continue
        finally:
            close()
        if result.status == "package":
            print(f"{entry.name}: provided by {result.source} ({result.note}): {result.path}")
        elif result.status == "present":
            print(f"{entry.name}: already installed ({result.note}): {result.path}")
        else:
            print(f"{entry.name}: {result.status} from {result.source} (sha256 ok): {result.path}")
    if failed:
        summary = f"{len(failed)} of {len(entries)} models failed: {', '.join(failed)}"
        print(f"masking models pull: {summary}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    named = bool(args.names)
    status = EXIT_OK
    for entry in _entries(args.names):
        check = check_installed(entry, full=True, fresh=True)
        if check.state == "ok":
            print(f"ok       {entry.name}: {check.path}")
        elif check.state == "missing":
            print(f"missing  {entry.name}: not installed; run: {install_hint(entry)}")
            if named:
                status = EXIT_FINDINGS
        else:
            print(f"CORRUPT  {entry.name}: {check.path}: {check.reason}; run: {install_hint(entry, force=True)}")
            status = EXIT_FINDINGS
    return status


def _cmd_path(args: argparse.Namespace) -> int:
    path: Path = model_path(args.name)
    print(path)
    return EXIT_OK
