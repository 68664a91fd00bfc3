"""How fast looplint lints a corpus, beside the parse floors and (optionally) its peers.

    python bench/run.py [PATH...] [--synthetic N] [--runs 3] [--jobs N] [--peers] [--json OUT]

For the files looplint would lint under the PATHs (and/or ``N`` files of the deterministic synthetic corpus,
``bench/synthetic.py``) it measures, ``--runs`` times each, the median of:

* ``looplint cold``: ``python -m looplint --isolated`` with an empty cache folder (when this looplint has a
  cache; every run is cold otherwise), and ``looplint warm``: the same command again over the cache the
  cold run left;
* the floors, on the same files with the same number of processes: ``libcst.parse_module`` of every file
  and ``ast.parse`` of every file (read and decode included, as looplint does);
* ``--peers``: TorchFix (``torchfix PATH...``) and Fixit (``fixit lint PATH...``), each from the executable
  given by ``--torchfix`` / ``--fixit`` (or ``$LOOPLINT_BENCH_TORCHFIX`` / ``$LOOPLINT_BENCH_FIXIT``, or
  ``PATH``); a peer that is not installed is skipped with a message.

Every measurement is a separate process started from here: wall time, files/s, MB/s and the peak resident
memory of the whole process tree (summed over the process and its descendants, sampled every 50 ms from
``/proc``: RSS, and PSS, which counts the pages forked workers share with their parent once), and
looplint's ratio to each floor. The OS file cache is warm for every run (the corpus is read
once before measuring). looplint's findings must be the same cold and warm; a difference is reported and
the exit status is 1.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))

SAMPLE_SECONDS = 0.05


# ---------------------------------------------------------------------------------------------- memory


def _children_map() -> Dict[int, List[int]]:
    children: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(name))
    return children


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _pss(pid: int) -> int:
    """The proportional set size: resident memory with pages shared among n processes counted 1/n."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _rss(pid)


def _tree(root: int) -> List[int]:
    children = _children_map()
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def tree_rss(root: int) -> int:
    """The resident memory of ``root`` and all its descendants, now (shared pages counted in each)."""
    return sum(_rss(pid) for pid in _tree(root))


def tree_memory(root: int):
    """(summed RSS, summed PSS) of ``root`` and its descendants: PSS counts a page that forked workers
    share with their parent once, RSS once per process."""
    pids = _tree(root)
    return sum(_rss(p) for p in pids), sum(_pss(p) for p in pids)


class Measured:
    def __init__(self, seconds: float, peak_rss: int, peak_pss: int, returncode: int, stdout: str, stderr: str) -> None:
        self.seconds, self.peak_rss, self.peak_pss, self.returncode = seconds, peak_rss, peak_pss, returncode
        self.stdout, self.stderr = stdout, stderr


def measure(command: Sequence[str], env: Optional[dict] = None) -> Measured:
    """Runs ``command``; its wall time and the peak resident memory of its process tree."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), stdout=out, stderr=err, env=env)
        peak = [0, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss, pss = tree_memory(process.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        if os.path.isdir("/proc"):
            sampler.start()
        code = process.wait()
        seconds = time.perf_counter() - started
        done.set()
        if sampler.is_alive():
            sampler.join()
        out.seek(0)
        err.seek(0)
        return Measured(seconds, peak[0], peak[1], code, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


# ---------------------------------------------------------------------------------------------- floors


def _floor_one(args) -> int:
    kind, path = args
    from looplint.engine import decode

    try:
        with open(path, "rb") as f:
            source = decode(f.read())
        if kind == "ast":
            import ast
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ast.parse(source)
        else:
            import libcst

            libcst.parse_module(source)
        return 1
    except Exception:  # noqa: BLE001 - a file the parser refuses costs what it cost
        return 0


def floor_main(kind: str, list_file: str, jobs: int) -> int:
    """``--floor KIND``: parse every file named in ``list_file`` with ``jobs`` processes."""
    if kind == "libcst":
        import libcst  # noqa: F401 - imported before the fork, as looplint's workers have it
    with open(list_file, encoding="utf-8") as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    tasks = [(kind, p) for p in paths]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            parsed = sum(pool.imap_unordered(_floor_one, tasks, chunksize=4))
    else:
        parsed = sum(map(_floor_one, tasks))
    print(f"{parsed} of {len(tasks)} parsed")
    return 0


# ---------------------------------------------------------------------------------------------- corpus


def default_jobs() -> int:
    """looplint's default ``--jobs``."""
    try:
        from looplint.cli import default_jobs as jobs
    except ImportError:  # a looplint from before the default was the CPUs this process may use
        return os.cpu_count() or 1
    return jobs()


def corpus_files(paths: Sequence[str]) -> List[str]:
    """The Python files looplint lints under ``paths`` with the default settings."""
    from looplint.config import Resolver
    from looplint.files import discover

    resolver = Resolver(isolated=True)
    return [p for p in discover(paths, resolver.for_path).files if p.endswith((".py", ".pyi"))]


def _read_all(files: Sequence[str]) -> int:
    total = 0
    for path in files:
        try:
            total += os.path.getsize(path)
            with open(path, "rb") as f:
                f.read()
        except OSError:
            pass
    return total


# ---------------------------------------------------------------------------------------------- looplint


def looplint_has_cache() -> bool:
    from looplint.cli import _check_parser

    return "--cache-dir" in _check_parser("looplint").format_help()


def looplint_command(paths: Sequence[str], jobs: Optional[int], cache_dir: Optional[str]) -> List[str]:
    command = [sys.executable, "-m", "looplint", "--isolated", "--output-format", "json", "--exit-zero"]
    if jobs:
        command += ["--jobs", str(jobs)]
    if cache_dir:
        command += ["--cache-dir", cache_dir]
    return command + list(paths)


def findings(m: Measured) -> List[tuple]:
    try:
        items = json.loads(m.stdout)
    except ValueError:
        return [("unreadable output", m.stdout[-500:], m.stderr[-500:])]
    return sorted((d["filename"], d["location"]["row"], d["location"]["column"], d["code"]) for d in items)


def peer_command(name: str, executable: str, paths: Sequence[str]) -> List[str]:
    return [executable] + (["lint"] if name == "fixit" else []) + list(paths)


def find_peer(name: str, given: Optional[str]) -> Optional[str]:
    candidate = given or os.environ.get(f"LOOPLINT_BENCH_{name.upper()}") or shutil.which(name)
    if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return None


# ---------------------------------------------------------------------------------------------- report


class Row:
    def __init__(self, name: str, runs: List[Measured], command: Sequence[str]) -> None:
        self.name, self.runs, self.command = name, runs, list(command)
        self.seconds = statistics.median(m.seconds for m in runs)
        self.peak_rss = statistics.median(m.peak_rss for m in runs)
        self.peak_pss = statistics.median(m.peak_pss for m in runs)

    def as_dict(self, files: int, size: int, floors: Dict[str, float]) -> dict:
        return {
            "name": self.name,
            "command": self.command,
            "seconds_median": round(self.seconds, 3),
            "seconds_runs": [round(m.seconds, 3) for m in self.runs],
            "files_per_second": round(files / self.seconds, 1),
            "mb_per_second": round(size / 1e6 / self.seconds, 2),
            "peak_rss_mb": round(self.peak_rss / 1e6, 1),
            "peak_pss_mb": round(self.peak_pss / 1e6, 1),
            **{f"ratio_to_{k}": round(self.seconds / v, 3) for k, v in floors.items()},
        }


def print_table(rows: List[dict]) -> None:
    header = ["", "median s", "runs s", "files/s", "MB/s", "peak RSS MB", "peak PSS MB", "x libcst floor", "x ast floor"]
    table = [header] + [
        [r["name"], f"{r['seconds_median']:.2f}", " ".join(f"{s:.2f}" for s in r["seconds_runs"]),
         f"{r['files_per_second']:.0f}", f"{r['mb_per_second']:.2f}", f"{r['peak_rss_mb']:.0f}", f"{r['peak_pss_mb']:.0f}",
         f"{r.get('ratio_to_libcst', 0):.3f}", f"{r.get('ratio_to_ast', 0):.3f}"]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", metavar="PATH", help="folders or files to lint")
    parser.add_argument("--synthetic", type=int, metavar="N", help="add N files of the synthetic corpus")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus (default 0)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; the median is shown (default 3)")
    parser.add_argument("--jobs", type=int, help="looplint --jobs and the floors' processes (default: looplint's default)")
    parser.add_argument("--peers", action="store_true", help="also run TorchFix and Fixit (once each, see --peer-runs)")
    parser.add_argument("--peer-runs", type=int, default=1, help="runs of each peer (default 1: they are slow)")
    parser.add_argument("--torchfix", metavar="EXE", help="the torchfix executable (in its own virtualenv)")
    parser.add_argument("--fixit", metavar="EXE", help="the fixit executable (in its own virtualenv)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    parser.add_argument("--floor", choices=("ast", "libcst"), help=argparse.SUPPRESS)
    parser.add_argument("--files-from", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    sys.path[:0] = [HERE, os.path.dirname(HERE)]  # bench/synthetic.py; this checkout's looplint
    if ns.floor:
        return floor_main(ns.floor, ns.files_from, ns.jobs or 1)
    if not ns.paths and not ns.synthetic:
        parser.error("give a PATH to lint or --synthetic N")
    if ns.runs < 1 or ns.peer_runs < 1:
        parser.error("--runs and --peer-runs must be at least 1")
    print("$ python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv), flush=True)

    with tempfile.TemporaryDirectory(prefix="looplint-bench-") as scratch:
        paths = list(ns.paths)
        if ns.synthetic:
            from synthetic import write_corpus

            synthetic = os.path.join(scratch, "synthetic")
            write_corpus(synthetic, ns.synthetic, ns.seed)
            paths.append(synthetic)
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            parser.error(f"no such path: {', '.join(missing)}")
        files = corpus_files(paths)
        if not files:
            parser.error("no Python files under the given paths")
        size = _read_all(files)
        jobs = ns.jobs or default_jobs()
        list_file = os.path.join(scratch, "files.txt")
        with open(list_file, "w", encoding="utf-8") as f:
            f.write("".join(p + "\n" for p in files))
        print(f"corpus: {len(files)} files, {size / 1e6:.1f} MB; {jobs} processes; "
              f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs", flush=True)

        rows: List[Row] = []
        floors: Dict[str, float] = {}
        for kind in ("libcst", "ast"):
            command = [sys.executable, os.path.abspath(__file__), "--floor", kind, "--jobs", str(jobs), "--files-from", list_file]
            row = Row(f"{kind} parse floor", [measure(command) for _ in range(ns.runs)], command)
            floors[kind] = row.seconds
            rows.append(row)

        cached = looplint_has_cache()
        env = {k: v for k, v in os.environ.items() if k != "LOOPLINT_NO_CACHE"}
        cold_runs, warm_runs, mismatch = [], [], []
        for run in range(ns.runs):
            cache = os.path.join(scratch, f"cache{run}") if cached else None
            cold = measure(looplint_command(paths, ns.jobs, cache), env)
            warm = measure(looplint_command(paths, ns.jobs, cache), env)
            for m in (cold, warm):
                if m.returncode != 0:
                    print(f"looplint exited with status {m.returncode}: {m.stderr[-2000:]}", file=sys.stderr)
            if findings(cold) != findings(warm):
                mismatch.append(run)
            cold_runs.append(cold)
            warm_runs.append(warm)
        shown = looplint_command(paths, ns.jobs, os.path.join(scratch, "cache") if cached else None)
        rows.append(Row("looplint cold", cold_runs, shown))
        rows.append(Row("looplint warm" if cached else "looplint again (no cache)", warm_runs, shown))
        found = findings(cold_runs[0])

        if ns.peers:
            for name in ("torchfix", "fixit"):
                executable = find_peer(name, getattr(ns, name))
                if executable is None:
                    print(f"{name}: not installed (give --{name} EXE, in its own virtualenv); skipped")
                    continue
                command = peer_command(name, executable, paths)
                rows.append(Row(name, [measure(command) for _ in range(ns.peer_runs)], command))

        results = [r.as_dict(len(files), size, floors) for r in rows]
        print_table(results)
        print(f"looplint findings: {len(found)} in {len({f[0] for f in found})} files")
        for r in rows:
            print(f"  {r.name}: {' '.join(r.command).replace(scratch, '<tmp>')}")
        if ns.json:
            with open(ns.json, "w", encoding="utf-8") as f:
                json.dump({"command": sys.argv, "files": len(files), "bytes": size, "jobs": jobs,
                           "findings": len(found), "rows": results}, f, indent=2)
        if mismatch:
            print(f"FINDINGS DIFFER between the cold and warm runs (runs {mismatch})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
