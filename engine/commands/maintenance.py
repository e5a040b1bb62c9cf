"""``promptbank library check|rebuild``: verify the library's files, recreate a lost catalogue."""

from __future__ import annotations

import argparse

from engine.commands._common import emit


def register(sub: argparse._SubParsersAction) -> None:
    library = sub.add_parser("library", help="check the library's files or rebuild its catalogue")
    lsub = library.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    check = lsub.add_parser("check", help="verify every file against the catalogue (missing, "
                            "changed, not catalogued)")
    check.set_defaults(func=cmd_check)
    rebuild = lsub.add_parser(
        "rebuild", help="recreate a lost catalogue from the prompt files and dataset snapshots "
        "(close the app and other promptbank commands first)")
    rebuild.add_argument("--force", action="store_true",
                         help="replace a catalogue that still lists tasks (it is kept beside "
                         "the new one)")
    rebuild.set_defaults(func=cmd_rebuild)


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when every file matches the catalogue, 1 when something is wrong."""
    from engine.library import Library
    from engine.library.check import check_library

    report = check_library(Library(args.library))
    lines = [f"Checked {report.checked} file(s) in {report.root} against the catalogue."]
    lines += [f"missing: {rel}" for rel in report.missing]
    lines += [f"changed since it was saved: {rel}" for rel in report.changed]
    lines += [f"not in the catalogue: {rel}" for rel in report.extra]
    lines += [f"disagrees with the catalogue: {why}" for why in report.mismatched]
    lines += [f"left by a write that never finished (safe to delete): {rel}"
              for rel in report.temporary]
    if report.integrity != "ok":
        lines.append(f"catalogue damaged: {report.integrity}")
    lines += [f"put aside (a killed write never recorded it; yours to keep or delete): {rel}"
              for rel in report.recovered]
    if report.ok:
        lines.append("Every file is present and matches its checksum.")
    else:
        lines.append("Restore missing or changed files from a backup; files not in the "
                     "catalogue can be removed, or recovered with `promptbank library rebuild "
                     "--force` if the catalogue lost them.")
    emit(args, report.to_dict(), "\n".join(lines))
    return 0 if report.ok else 1


def cmd_rebuild(args: argparse.Namespace) -> int:
    from engine.library.rebuild import rebuild_catalogue

    report = rebuild_catalogue(args.library, force=args.force)
    lines = [f"Rebuilt the catalogue of {report.root}: {len(report.tasks)} task(s), "
             f"{report.versions} prompt version(s), {report.datasets} dataset(s)."]
    lines += [f"task: {name}" for name in report.tasks]
    lines += [f"skipped {item}" for item in report.skipped]
    lines += [f"note: {note}" for note in report.notes]
    emit(args, report.to_dict(), "\n".join(lines))
    return 0
