#!/usr/bin/env python3
"""RustSec advisory facts for offline dependency audits.

Two subcommands:

  snapshot --git-dir DIR [--rev REV] --out FILE
      Reads a clone (bare or not) of the RustSec advisory database and writes a compact
      tab-separated table of the facts that `cargo deny check advisories` and `cargo audit`
      match on: id, package, collection, date, withdrawn, informational kind, patched and
      unaffected version ranges, aliases, os, arch. No titles or descriptions are kept.

  build-db --snapshot FILE --out DIR
      Writes a minimal advisory database from such a table, in the layout both tools read
      (`crates/<package>/<id>.md` with TOML front matter), the title and description of each
      advisory replaced by a pointer to https://rustsec.org/advisories/<id>.html, and commits it
      into a fresh git repository (both tools open the database as a git repository).

Standard library only (Python >= 3.11 for tomllib).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

COLUMNS = [
    "id",
    "package",
    "collection",
    "date",
    "withdrawn",
    "informational",
    "patched",
    "unaffected",
    "aliases",
    "os",
    "arch",
]
# Several version ranges or aliases in one cell are joined with this (ranges contain commas).
LIST_SEP = ";"
SOURCE_URL = "https://github.com/rustsec/advisory-db"


def git(git_dir: str, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", git_dir, *args], input=data, check=True, capture_output=True
    ).stdout


def front_matter(path: str, text: str) -> dict:
    """The TOML between the leading ```toml fence and the next ``` fence."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "```toml":
        raise SystemExit(f"{path}: no ```toml front matter on the first line")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "```")
    except StopIteration:
        raise SystemExit(f"{path}: front matter is not closed by ```") from None
    try:
        return tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as e:
        raise SystemExit(f"{path}: front matter is not TOML: {e}") from None


def cell(values: list[str] | str | None) -> str:
    if values is None:
        return ""
    if isinstance(values, str):
        values = [values]
    for v in values:
        if "\t" in v or "\n" in v or LIST_SEP in v:
            raise SystemExit(f"value {v!r} cannot be stored in a cell")
    return LIST_SEP.join(values)


def snapshot(args: argparse.Namespace) -> None:
    git_dir = args.git_dir
    if (Path(git_dir) / ".git").exists():
        git_dir = str(Path(git_dir) / ".git")
    rev = git(git_dir, "rev-parse", "--verify", f"{args.rev}^{{commit}}").decode().strip()
    commit_date = git(git_dir, "show", "-s", "--format=%cI", rev).decode().strip()
    names = git(git_dir, "ls-tree", "-r", "--name-only", rev, "--", "crates", "rust").decode().split("\n")
    names = sorted(n for n in names if n.endswith(".md"))
    if not names:
        raise SystemExit(f"{args.git_dir}: no advisories under crates/ or rust/ at {rev}")
    # One `git cat-file --batch` for all files.
    batch = git(git_dir, "cat-file", "--batch", data="".join(f"{rev}:{n}\n" for n in names).encode())
    rows = []
    pos = 0
    for name in names:
        header_end = batch.index(b"\n", pos)
        _oid, kind, size = batch[pos:header_end].split()
        if kind != b"blob":
            raise SystemExit(f"{name}: not a file")
        body = batch[header_end + 1 : header_end + 1 + int(size)].decode()
        pos = header_end + 1 + int(size) + 1
        meta = front_matter(name, body)
        adv = meta.get("advisory", {})
        versions = meta.get("versions", {})
        affected = meta.get("affected", {})
        collection = name.split("/", 1)[0]
        for field in ("id", "package", "date"):
            if not isinstance(adv.get(field), str):
                raise SystemExit(f"{name}: advisory.{field} is missing")
        if f"{collection}/{adv['package']}/{adv['id']}.md" != name:
            raise SystemExit(f"{name}: path does not match advisory id and package")
        rows.append(
            [
                adv["id"],
                adv["package"],
                collection,
                str(adv["date"]),
                str(adv.get("withdrawn", "")),
                adv.get("informational", ""),
                cell(versions.get("patched", [])),
                cell(versions.get("unaffected", [])),
                cell(adv.get("aliases", [])),
                cell(affected.get("os")),
                cell(affected.get("arch")),
            ]
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w") as f:
        f.write("# RustSec advisory facts (no titles or descriptions), for offline audits.\n")
        f.write(f"# source: {SOURCE_URL} (CC0-1.0)\n")
        f.write(f"# commit: {rev}\n")
        f.write(f"# date: {commit_date}\n")
        f.write("# generated by: scripts/tools/advisories.py snapshot\n")
        f.write(f"# lists within a cell are separated by '{LIST_SEP}'\n")
        f.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    tmp.replace(out)
    print(f"{out}: {len(rows)} advisories from {rev} ({commit_date})")


def read_snapshot(path: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    header: dict[str, str] = {}
    rows: list[dict[str, str]] = []
    columns: list[str] | None = None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                key, _, value = line[1:].strip().partition(":")
                header[key.strip()] = value.strip()
                continue
            fields = line.split("\t")
            if columns is None:
                columns = fields
                missing = set(COLUMNS) - set(columns)
                if missing:
                    raise SystemExit(f"{path}:{n}: header lacks columns {sorted(missing)}")
                continue
            if len(fields) != len(columns):
                raise SystemExit(f"{path}:{n}: {len(fields)} fields, header has {len(columns)}")
            rows.append(dict(zip(columns, fields)))
    if not rows or "commit" not in header or "date" not in header:
        raise SystemExit(f"{path}: not a snapshot (needs '# commit:', '# date:' and rows)")
    return header, rows


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_list(cellvalue: str) -> str:
    items = [v for v in cellvalue.split(LIST_SEP) if v]
    return "[" + ", ".join(toml_str(v) for v in items) + "]"


def advisory_file(row: dict[str, str]) -> str:
    pointer = f"https://rustsec.org/advisories/{row['id']}.html"
    lines = ["```toml", "[advisory]"]
    lines.append(f"id = {toml_str(row['id'])}")
    lines.append(f"package = {toml_str(row['package'])}")
    lines.append(f"date = {toml_str(row['date'])}")
    lines.append(f"url = {toml_str(pointer)}")
    if row["withdrawn"]:
        lines.append(f"withdrawn = {toml_str(row['withdrawn'])}")
    if row["informational"]:
        lines.append(f"informational = {toml_str(row['informational'])}")
    if row["aliases"]:
        lines.append(f"aliases = {toml_list(row['aliases'])}")
    if row["os"] or row["arch"]:
        lines.append("")
        lines.append("[affected]")
        if row["os"]:
            lines.append(f"os = {toml_list(row['os'])}")
        if row["arch"]:
            lines.append(f"arch = {toml_list(row['arch'])}")
    lines.append("")
    lines.append("[versions]")
    lines.append(f"patched = {toml_list(row['patched'])}")
    if row["unaffected"]:
        lines.append(f"unaffected = {toml_list(row['unaffected'])}")
    lines.append("```")
    lines.append("")
    lines.append(f"# {row['id']} in {row['package']}")
    lines.append("")
    lines.append(f"See {pointer} for the description.")
    lines.append("")
    return "\n".join(lines)


def build_db(args: argparse.Namespace) -> None:
    header, rows = read_snapshot(args.snapshot)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: exists and is not empty; give a new directory")
    for row in rows:
        path = out / row["collection"] / row["package"] / f"{row['id']}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(advisory_file(row))
    # A git repository with one commit dated like the snapshot: the tools read the database's
    # HEAD commit and its time (and would refuse a database that is not a repository).
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="azure-wi",
        GIT_AUTHOR_EMAIL="azure-wi@localhost",
        GIT_COMMITTER_NAME="azure-wi",
        GIT_COMMITTER_EMAIL="azure-wi@localhost",
        GIT_AUTHOR_DATE=header["date"],
        GIT_COMMITTER_DATE=header["date"],
    )
    for cmd in (
        ["git", "init", "-q", "-b", "main", str(out)],
        ["git", "-C", str(out), "add", "-A"],
        ["git", "-C", str(out), "commit", "-q", "-m", f"RustSec advisory facts at {header['commit']}"],
    ):
        subprocess.run(cmd, check=True, env=env)
    print(f"{out}: {len(rows)} advisories (snapshot of {header['commit']}, {header['date']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("snapshot", help="advisory-db git clone -> compact table")
    s.add_argument("--git-dir", required=True, help="a clone of the advisory database (bare or not)")
    s.add_argument("--rev", default="HEAD", help="commit to read (default HEAD)")
    s.add_argument("--out", required=True, help="table to write")
    s.set_defaults(run=snapshot)
    b = sub.add_parser("build-db", help="compact table -> minimal advisory database (git repository)")
    b.add_argument("--snapshot", required=True, help="table written by `snapshot`")
    b.add_argument("--out", required=True, help="new directory for the database")
    b.set_defaults(run=build_db)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
