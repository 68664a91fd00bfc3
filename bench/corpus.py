"""Builds a large corpus of real repositories for ``bench/run.py``, the same bytes for the same mirrors.

    python bench/corpus.py --from-mirrors /work/.mirror --add /tmp/speed-corpus --out /tmp/large-corpus

Every repository under ``--from-mirrors`` (a folder ``owner+name`` holding a git directory: ``repo/`` in
it, or the folder itself) is written at its ``HEAD`` commit with ``git archive`` into ``OUT/owner+name``; a
folder that holds no readable git directory is skipped with a message. Each ``--add DIR`` contributes its
sub-folders, copied as they are, under the same names unless a mirror already gave that name (the same
repository twice would only weigh it double). ``OUT`` must not exist yet, or be a corpus this script built
(it holds ``MANIFEST.txt``, and is then rebuilt). ``MANIFEST.txt`` lists each repository with its commit (or
``copy of DIR``; the blobs a mirror lacks, left out) and its count of ``.py`` / ``.ipynb`` files; the last line counts files and megabytes of
the whole corpus. Nothing of the repositories' code belongs in this project: only this script does.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import List, Optional, Tuple

MANIFEST = "MANIFEST.txt"


def git_dir(folder: str) -> Optional[str]:
    """The git directory of a mirror folder, or None."""
    for candidate in (os.path.join(folder, "repo"), folder):
        if os.path.isfile(os.path.join(candidate, "HEAD")) and os.path.isdir(os.path.join(candidate, "objects")):
            return candidate
    return None


def head(git: str) -> Optional[str]:
    done = subprocess.run(["git", "--git-dir", git, "rev-parse", "--verify", "-q", "HEAD^{tree}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None
    commit = subprocess.run(["git", "--git-dir", git, "rev-parse", "HEAD"], capture_output=True, text=True)
    return commit.stdout.strip() or None


def extract(git: str, into: str) -> int:
    """The regular files of ``HEAD`` of ``git`` written into ``into`` (``git ls-tree`` + ``git cat-file
    --batch``: a mirror may lack the blobs of its largest files, which are left out); how many were left out.
    Links and submodules are not written."""
    listing = subprocess.run(["git", "--git-dir", git, "ls-tree", "-r", "-z", "HEAD"], capture_output=True, check=True).stdout
    entries = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, sha = meta.split()
        path = os.fsdecode(name)
        if kind == b"blob" and mode in (b"100644", b"100755") and _inside(path):
            entries.append((sha, path))
    missing = 0
    batch = subprocess.Popen(["git", "--git-dir", git, "cat-file", "--batch"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        for sha, path in entries:
            batch.stdin.write(sha + b"\n")
            batch.stdin.flush()
            header = batch.stdout.readline().split()
            if len(header) != 3:  # "<sha> missing"
                missing += 1
                continue
            data = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)  # the newline after the content
            target = os.path.join(into, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
    finally:
        batch.stdin.close()
        batch.wait()
    return missing


def _inside(name: str) -> bool:
    parts = name.split("/")
    return not name.startswith("/") and ".." not in parts and "" not in parts


def sources(folder: str) -> Tuple[int, int]:
    """(count, bytes) of the ``.py`` and ``.ipynb`` files below ``folder``."""
    count = size = 0
    for directory, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            if name.endswith((".py", ".ipynb")):
                path = os.path.join(directory, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    count += 1
                    size += os.path.getsize(path)
    return count, size


def build(mirrors: Optional[str], additions: List[str], out: str) -> List[str]:
    if os.path.exists(out):
        if not os.path.isfile(os.path.join(out, MANIFEST)):
            raise SystemExit(f"{out} exists and is not a corpus built by bench/corpus.py (no {MANIFEST}); not touched")
        shutil.rmtree(out)
    os.makedirs(out)
    rows = []
    if mirrors:
        for name in sorted(os.listdir(mirrors)):
            folder = os.path.join(mirrors, name)
            git = git_dir(folder) if os.path.isdir(folder) else None
            commit = head(git) if git else None
            if commit is None:
                if os.path.isdir(folder) and not name.startswith("."):
                    print(f"skipped {name}: no readable git HEAD", file=sys.stderr)
                continue
            missing = extract(git, os.path.join(out, name))
            rows.append((name, commit + (f" ({missing} blobs absent from the mirror, left out)" if missing else "")))
    for addition in additions:
        for name in sorted(os.listdir(addition)):
            source = os.path.join(addition, name)
            if not os.path.isdir(source):
                continue
            if os.path.exists(os.path.join(out, name)):
                print(f"skipped {addition}/{name}: a mirror gave {name}", file=sys.stderr)
                continue
            shutil.copytree(source, os.path.join(out, name), symlinks=True)
            rows.append((name, f"copy of {source}"))
    lines, total_files, total_bytes = [], 0, 0
    for name, origin in rows:
        count, size = sources(os.path.join(out, name))
        total_files += count
        total_bytes += size
        lines.append(f"{name}\t{origin}\t{count} files\t{size / 1e6:.1f} MB")
    lines.append(f"total\t{len(rows)} repositories\t{total_files} files\t{total_bytes / 1e6:.1f} MB")
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-mirrors", metavar="DIR", help="a folder of git mirrors (owner+name/repo)")
    parser.add_argument("--add", metavar="DIR", action="append", default=[], help="a folder of repositories to copy as well")
    parser.add_argument("--out", metavar="DIR", required=True, help="where the corpus is written")
    ns = parser.parse_args(argv)
    print("\n".join(build(ns.from_mirrors, ns.add, ns.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
