"""Summarize `py-spy record --format raw` output: where the samples went.

    .venv/bin/python bench/profile_top.py PROFILE.txt [--top N]

Each raw line is `frame;frame;...;leaf COUNT` with frames like `name (path/file.py:LINE)`.
With `--subprocesses` (as bench/run.py records) each stack starts with `process PID:"cmd"`
frames, one per level of the process tree: they are taken off the stack and counted as the
share by process (the supervisor, or one of its workers). Prints the share of samples by
thread (event loop vs. worker threads such as aiosqlite's), by the package of the leaf frame
(self time), the top functions by self time, and the top functions by inclusive time (each
counted once per stack), with the service's own frames listed separately.
"""

from __future__ import annotations

import functools
import linecache
import os
import re
import sys
from collections import Counter

PROCESS = re.compile(r'^process (?P<pid>\d+):"(?P<cmd>.*)"$')
FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")


# A leaf frame blocked on one of these is waiting, not working: py-spy's own idle detection
# does not work in every container, so samples ending here are counted as idle.
IDLE_CALLS = re.compile(r"\.(select|poll|get|wait|acquire|join|sleep|accept)\(")


@functools.cache
def _source_line(path: str, line: int) -> str:
    for root in sys.path:
        candidate = os.path.join(root, path)
        if os.path.exists(candidate):
            return linecache.getline(candidate, line)
    return ""


def _idle(name: str, path: str, line: str | None) -> bool:
    if name.endswith(".select") and path == "selectors.py":
        return True
    return bool(line) and bool(IDLE_CALLS.search(_source_line(path, int(line or 0))))


Parsed = list[tuple[list[tuple[str, str]], int, bool, str]]


def _process(raws: list[str]) -> tuple[str, list[str]]:
    """The process a stack was sampled in, and the stack without its `process` frames: the
    root process is "supervisor" when it has sampled children, else "process"."""
    depth = 0
    while depth < len(raws) and PROCESS.match(raws[depth]):
        depth += 1
    if depth == 0:
        return "process", raws
    m = PROCESS.match(raws[depth - 1])
    assert m is not None
    return ("root" if depth == 1 else f"worker {m.group('pid')}"), raws[depth:]


def _parse(text: str) -> Parsed:
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        process, raws = _process(stack.split(";"))
        if not raws:
            continue
        frames = []
        idle = False
        for raw in raws:
            m = FRAME.match(raw)
            frames.append((m.group("name"), m.group("file")) if m else (raw, ""))
            if m:
                idle = _idle(m.group("name"), m.group("file"), m.group("line"))
        stacks.append((frames, int(count), idle, process))
    return stacks


def _package(path: str) -> str:
    if not path:
        return "?"
    parts = path.split("/")
    if parts[0] in ("service", "tests", "bench"):
        return "/".join(parts[:2]) if parts[0] == "service" and len(parts) > 1 else parts[0]
    return parts[0].removesuffix(".py")


def _tally(
    stacks: list[tuple[list[tuple[str, str]], int]],
) -> tuple[Counter[str], Counter[str], Counter[str], Counter[str]]:
    """Samples by thread, by the leaf frame's package, by function (self, inclusive)."""
    threads: Counter[str] = Counter()
    leaf_pkg: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    for frames, n in stacks:
        root = frames[0][1]
        thread = "worker thread" if "threading" in root else "event loop (main thread)"
        if thread == "worker thread" and any("transactions.py" in f for _, f in frames):
            thread = "database thread (a transaction)"
        threads[thread] += n
        name, path = frames[-1]
        leaf_pkg[_package(path)] += n
        self_fn[f"{name} ({path})"] += n
        for key in {f"{nm} ({p})" for nm, p in frames}:
            incl_fn[key] += n
    return threads, leaf_pkg, self_fn, incl_fn


def summarize(text: str, top: int = 20) -> str:
    parsed = _parse(text)
    idle_samples = sum(n for _, n, idle, _ in parsed if idle)
    stacks = [(frames, n) for frames, n, idle, _ in parsed if not idle]
    total = sum(n for _, n in stacks)
    if not total:
        return "no samples\n"
    threads, leaf_pkg, self_fn, incl_fn = _tally(stacks)
    processes: Counter[str] = Counter()
    for _, n, idle, process in parsed:
        if not idle:
            processes[process] += n
    workers = any(k.startswith("worker") for k in processes)
    if workers and "root" in processes:  # a supervisor with its workers
        processes["supervisor"] = processes.pop("root")

    def block(title: str, counter: Counter[str], limit: int, keep: object = None) -> list[str]:
        lines = [title]
        items = [(k, v) for k, v in counter.most_common() if keep is None or keep(k)]  # type: ignore[operator]
        for key, n in items[:limit]:
            lines.append(f"  {100 * n / total:5.1f}%  {key}")
        return [*lines, ""]

    out = [
        f"{total} busy samples (percentages below are of these); {idle_samples} idle "
        f"samples (blocked in select/queue get/wait) left out",
        "",
    ]
    if workers:
        out += block("by process:", processes, 20)
    out += block("by thread:", threads, 10)
    out += block("self time by package of the leaf frame:", leaf_pkg, 15)
    out += block("top functions by self time:", self_fn, top)
    out += block("service/ functions by inclusive time:", incl_fn, top, lambda k: "(service/" in k)
    out += block("all functions by inclusive time:", incl_fn, top)
    return "\n".join(out)


def main(argv: list[str]) -> None:
    top = 20
    if "--top" in argv:
        i = argv.index("--top")
        top = int(argv[i + 1])
        del argv[i : i + 2]
    for path in argv:
        print(f"== {path}")
        with open(path) as handle:
            print(summarize(handle.read(), top))


if __name__ == "__main__":
    main(sys.argv[1:])
