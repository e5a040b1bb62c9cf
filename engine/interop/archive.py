"""Untrusted files and zip archives read safely: names, sizes, counts and compression checked
before anything is read."""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from engine.errors import PromptbankError
from engine.support import safe_json

MAX_MEMBER_BYTES = 256 << 20
MAX_MEMBERS = 10000
MAX_META_BYTES = 1 << 20
#: All members of an archive together, uncompressed (a pack of a large library stays far below).
MAX_ARCHIVE_BYTES = 1 << 30


def read_capped(path: Path) -> bytes:
    """A file's bytes, refused when larger than a prompt file can be."""
    try:
        size = path.stat().st_size
        if size > MAX_MEMBER_BYTES:
            raise PromptbankError(f"{path} is larger than a prompt file can be.",
                                  hint="Check that this is the right file.")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise PromptbankError(f"{path} does not exist.", hint="Check the path.") from exc
    except IsADirectoryError as exc:
        raise PromptbankError(f"{path} is a folder.", hint="Give a file.") from exc


def json_file(path: Path) -> dict:
    """A small JSON object read from a file (an adapter config or a meta file)."""
    with path.open("rb") as fh:
        return _json_object(fh.read(MAX_META_BYTES + 1), str(path))


def _json_object(data: bytes, what: str) -> dict:
    """A small JSON object (manifest, meta or adapter config), bounded in size and depth."""
    try:
        value = safe_json.loads(data, max_bytes=MAX_META_BYTES)
    except safe_json.JsonRefused as exc:
        raise PromptbankError(f"{what} is not valid JSON: {exc}.") from exc
    if not isinstance(value, dict):
        raise PromptbankError(f"{what} is not a JSON object.")
    return value


def open_zip(path: Path) -> zipfile.ZipFile:
    """The zip at ``path``, or a clear error when it is none."""
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise PromptbankError(f"{path} does not exist.", hint="Check the path.") from exc
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        # A damaged directory can claim a zip version Python does not read (NotImplementedError).
        raise PromptbankError(f"{path} is not a valid zip archive.",
                              hint="Check that the file was copied completely.") from exc


def checked_members(zf: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's files by name, refusing escaping paths, links, oversized members and
    archives too large in all (a member never yields more than its listed size)."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise PromptbankError(f"{path} holds too many files ({len(infos)}).")
    total = sum(info.file_size for info in infos)
    if total > MAX_ARCHIVE_BYTES:
        raise PromptbankError(
            f"{path} unpacks to {total / 2**20:,.0f} MiB, more than the "
            f"{MAX_ARCHIVE_BYTES / 2**20:,.0f} MiB an import may hold; it was refused.",
            hint="Export fewer tasks or versions per pack.")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        pure = PurePosixPath(name)
        if (pure.is_absolute() or ".." in pure.parts or "\\" in name or ":" in name
                or "\x00" in name):
            raise PromptbankError(f"{path} holds a file '{name}' whose path escapes the "
                                  "archive's folder; it was refused.",
                                  hint="Only import archives from people you trust.")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PromptbankError(f"{path} holds a symbolic link '{name}'; it was refused.",
                                  hint="Only import archives from people you trust.")
        if info.file_size > MAX_MEMBER_BYTES:
            raise PromptbankError(f"{path} holds an oversized file '{name}' "
                                  f"({info.file_size} bytes); it was refused.")
        if name in members:
            raise PromptbankError(f"{path} holds '{name}' twice; it was refused.")
        if not info.is_dir():
            members[name] = info
    return members


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, read at most to the size cap (a lying header cannot inflate it)."""
    try:
        with zf.open(info) as fh:
            data = fh.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, RuntimeError,
            NotImplementedError) as exc:
        raise PromptbankError(f"The archive member '{info.filename}' is damaged ({exc}).",
                              hint="Check that the file was copied completely.") from exc
    if len(data) > MAX_MEMBER_BYTES:
        raise PromptbankError(f"The archive member '{info.filename}' is oversized.")
    return data


def json_member(zf: zipfile.ZipFile, name: str, path: Path) -> dict:
    """A small JSON object read from an archive member."""
    info = zf.getinfo(name)
    if info.file_size > MAX_META_BYTES:
        raise PromptbankError(f"The {name} in {path} is oversized.")
    return _json_object(read_member(zf, info), f"The {name} in {path}")
