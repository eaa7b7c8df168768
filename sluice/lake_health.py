"""Is a table readable? A damaged Delta log named in one line, and the oldest version time travel can reach.

deltalake reports a damaged log as a kernel error with a Rust backtrace ("Json error: Truncated
record", "Expected contiguous commit files, but found gap", "Had a _last_checkpoint hint but didn't
find any checkpoints"). :func:`diagnose` reads the ``_delta_log`` folder itself to say which table,
which version and what to do; :meth:`sluice.lake.Lake.table` raises its finding as
:class:`LakeDamaged`, so ``tables``, ``sql``, ``history`` and every stage fail in one line.
:func:`sluice.lake_health.doctor` (``sluice lake doctor``) reports every table and changes nothing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sluice.errors import UserError

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet$")


class LakeDamaged(UserError):
    """A table's Delta log cannot be read: a commit file is truncated, missing, or not JSON."""


class VersionVacuumed(UserError):
    """Time travel to a version whose data files ``sluice lake maintain`` removed."""


@dataclass(frozen=True)
class Damage:
    table: str
    version: int
    problem: str
    advice: str

    def line(self) -> str:
        return f"table '{self.table}' has a damaged Delta log at version {self.version}: {self.problem}; {self.advice}"


def diagnose(table: str, table_dir: Path | str) -> Damage | None:
    """The first defect of a local table's ``_delta_log`` that stops deltalake reading HEAD, or None."""
    log = Path(table_dir) / "_delta_log"
    if not log.is_dir():
        return None
    commits, checkpoints = {}, set()
    for entry in os.scandir(log):
        if m := _COMMIT.match(entry.name):
            commits[int(m.group(1))] = Path(entry.path)
        elif m := _CHECKPOINT.match(entry.name):
            checkpoints.add(int(m.group(1)))
    hint = _last_checkpoint(log)
    if hint is not None and hint not in checkpoints:
        replayable = all(v in commits for v in range(hint + 1))
        advice = ("every commit up to it is still there: move _delta_log/_last_checkpoint aside and readers replay "
                  "the JSON commits" if replayable else "restore the checkpoint file from a backup of the lake")
        return Damage(table, hint, f"_last_checkpoint names checkpoint {hint} but its file is missing", advice)
    if not commits:
        return None
    start = max((c for c in checkpoints if c <= max(commits)), default=None)
    first = start + 1 if start is not None else 0
    for version in range(first, max(commits) + 1):
        if version not in commits:
            if version == 0:
                return Damage(table, 0, f"commit file {0:020d}.json, the table's first commit, is missing (later "
                              "versions exist)", "restore it from a backup of the lake; no version can be read without it")
            return Damage(table, version, f"commit file {version:020d}.json is missing (versions {version - 1} and "
                          f"{version + 1} exist)", "restore it from a backup of the lake; versions before it still read "
                                                   "with --at")
    for version in range(first, max(commits) + 1):
        problem = _bad_commit(commits[version])
        if problem:
            latest = version == max(commits)
            advice = (f"if a write died mid-commit, move {version:020d}.json out of _delta_log (the table returns to "
                      f"version {version - 1}) and rerun the stage" if latest else
                      "restore it from a backup of the lake; versions before it still read with --at")
            return Damage(table, version, f"{version:020d}.json {problem}", advice)
    return None


def _last_checkpoint(log: Path) -> int | None:
    try:
        return int(json.loads((log / "_last_checkpoint").read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _bad_commit(path: Path) -> str | None:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return "cannot be read as text"
    if not lines:
        return "is empty"
    for number, line in enumerate(lines, 1):
        try:
            if not isinstance(json.loads(line), dict):
                return f"line {number} is not a JSON object (overwritten?)"
        except ValueError:
            return f"line {number} is not valid JSON (truncated or overwritten)"
    return None


# ------------------------------------------------------------------------------------------------ readability
def readable(lake, name: str, version: int | None = None) -> bool:
    """Whether every data file of the version is still there (local: a stat per file; else open footers)."""
    try:
        table = lake.table(name, version)
    except UserError:
        return False
    if "://" not in lake.root:
        return all(os.path.exists(uri.removeprefix("file://")) for uri in table.file_uris())
    try:
        table.to_pyarrow_dataset().count_rows()
        return True
    except OSError:
        return False


def oldest_readable(lake, name: str) -> int | None:
    """The oldest version from which every version up to HEAD can be read (None: not even HEAD)."""
    head = lake.table(name).version()
    oldest = None
    for version in range(head, -1, -1):
        if not readable(lake, name, version):
            break
        oldest = version
    return oldest


def require_readable(lake, name: str, version: int) -> None:
    """Raise :class:`VersionVacuumed` in one line when time travel to ``version`` cannot be read; a version
    the table never had (past HEAD, or negative) is named as such, not as vacuumed."""
    head = lake.table(name).version()
    if version < 0 or version > head:
        raise UserError(f"{name} has no version {version} (latest is {head})")
    if not readable(lake, name, version):
        oldest = oldest_readable(lake, name)
        raise VersionVacuumed(f"{name}@{version}: its data files were vacuumed (`sluice lake maintain`, `sluice erase`); the oldest "
                              f"readable version is {oldest} (see `sluice history {name}`)")


# ------------------------------------------------------------------------------------------------ doctor
def recorded_versions(lake_id: str | None, manifest_dir: Path | str) -> dict[str, tuple[int, str]]:
    """The newest Delta version each table has in the stage manifests of ``manifest_dir`` written for the lake
    ``lake_id`` (:func:`sluice.runs.lake_identity`).

    ``{table: (version, manifest path)}``. A deleted newest commit file cannot be seen in ``_delta_log``
    (the table just reads as its previous version); a manifest that recorded a later version can see it.
    Manifests of another lake (or unreadable ones) are skipped.
    """
    here, newest = lake_id, {}
    for path in sorted(Path(manifest_dir).glob("*.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(body, dict) or not isinstance(body.get("versions"), dict):
            continue
        if (body.get("lake") or {}).get("id") != here or here is None:
            continue
        for table, version in body["versions"].items():
            if isinstance(version, int) and not isinstance(version, bool) and version > newest.get(table, (-1, ""))[0]:
                newest[table] = (version, str(path))
    return newest


def behind_manifest(name: str, head: int, recorded: dict[str, tuple[int, str]]) -> str | None:
    """One line when a manifest recorded a later version of ``name`` than its HEAD (a deleted newest commit?)."""
    if name not in recorded or recorded[name][0] <= head:
        return None
    version, path = recorded[name]
    return (f"table '{name}' is at version {head} but {path} recorded version {version}: its newest commit file(s) "
            f"{head + 1:020d}.json.. were probably deleted and the table reads as an older version; restore "
            f"_delta_log from a backup of the lake, or rerun the stage that wrote it")


def doctor(lake, names, recorded: dict[str, tuple[int, str]] | None = None) -> list[dict]:
    """One row per table: HEAD version, the oldest readable version, and damage if any. Changes nothing.

    With ``recorded`` (:func:`recorded_versions`), a table whose HEAD is older than a version a stage
    manifest recorded for this lake is reported as ``behind manifest``.
    """
    recorded = recorded or {}
    rows = []
    for name in names:
        if "://" not in lake.root and (damage := diagnose(name, lake.uri(name))):
            rows.append({"table": name, "status": "damaged", "version": damage.version, "oldest_readable": None,
                         "detail": damage.line()})
            continue
        try:
            head = lake.table(name).version()
        except UserError as err:
            rows.append({"table": name, "status": "damaged", "version": None, "oldest_readable": None, "detail": str(err)})
            continue
        oldest = oldest_readable(lake, name)
        status = "ok" if oldest is not None else "missing files"
        detail = "" if oldest is not None else f"files of HEAD (version {head}) are missing: restore them from a backup"
        if status == "ok" and (behind := behind_manifest(name, head, recorded)):
            status, detail = "behind manifest", behind
        rows.append({"table": name, "status": status, "version": head, "oldest_readable": oldest, "detail": detail})
    return rows
