#!/usr/bin/env python3
"""Which tables and indexes the SQLite store's commits write: samples the live WAL of a store
while the server writes to it, then names the b-tree of every page it saw in a committed frame.

    python3 scripts/wal-pages.py DATA_DIR/store.sqlite --secs 240 [--stop-file F] [--json OUT]

Every frame of the WAL is one whole page written at a commit (16 KiB on a store the server
created), and the checkpoint copies it into the database file later, so the frames per b-tree
are where the writer's bytes go. The WAL restarts after each checkpoint: the file is re-read
every 0.3 s and each frame is counted once per (salt, index), so a frame written and
overwritten within 0.3 s is missed (compare the total with the server's `write_bytes` in
/proc/PID/io). Pages are named with SQLite's `dbstat` table at the end of the run, so a page
freed and reused for another b-tree during the run is counted under its last owner.
Sampling stops after --secs or when --stop-file exists, whichever comes first.
"""
import argparse
import collections
import json
import os
import sqlite3
import struct
import sys
import time

WAL_HEADER = 32
FRAME_HEADER = 24


def sample(wal_path, seen):
    """Adds every frame of the WAL's current generation to `seen`."""
    try:
        f = open(wal_path, "rb")
    except FileNotFoundError:
        return
    with f:
        header = f.read(WAL_HEADER)
        if len(header) < WAL_HEADER:
            return
        _magic, _version, page_size, _seq, salt1, salt2, _c1, _c2 = struct.unpack(">8I", header)
        frame_size = FRAME_HEADER + page_size
        index = 0
        while True:
            f.seek(WAL_HEADER + index * frame_size)
            frame = f.read(FRAME_HEADER)
            if len(frame) < FRAME_HEADER:
                return
            page, commit_size, s1, s2 = struct.unpack(">4I", frame[:16])
            if (s1, s2) != (salt1, salt2):
                return  # a frame of an older generation: the current one ends here
            seen[(salt1, salt2, index)] = (page, commit_size)
            index += 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("db", help="the store, e.g. data/store.sqlite")
    p.add_argument("--secs", type=float, default=60.0, help="how long to sample (default 60)")
    p.add_argument("--stop-file", help="stop early once this file exists")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()

    if not os.path.isfile(args.db):
        sys.exit(f"{args.db}: no such file (the store is <data dir>/store.sqlite)")
    wal = args.db + "-wal"
    seen = {}
    deadline = time.monotonic() + args.secs
    while time.monotonic() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        sample(wal, seen)
        time.sleep(0.3)
    sample(wal, seen)

    # A generation's frames after its last commit frame belong to a transaction not committed
    # when it was read: left out.
    generations = collections.defaultdict(list)
    for (s1, s2, index), (page, commit_size) in seen.items():
        generations[(s1, s2)].append((index, page, commit_size))
    pages, commits = [], 0
    for frames in generations.values():
        frames.sort()
        last_commit = max((i for i, _, c in frames if c), default=-1)
        pages += [pg for i, pg, _ in frames if i <= last_commit]
        commits += sum(1 for i, _, c in frames if c and i <= last_commit)

    try:
        con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
        owner = dict(con.execute("SELECT pageno, name FROM dbstat"))
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
    except sqlite3.Error as e:
        sys.exit(f"cannot read {args.db} with dbstat: {e}")
    by = collections.Counter(owner.get(pg, "(freed since)") for pg in pages)
    result = {
        "frames": len(pages),
        "commits": commits,
        "wal_generations": len(generations),
        "page_size": page_size,
        "by_btree": by.most_common(),
    }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    print(f"{len(pages)} frames of {page_size} bytes in {commits} commits "
          f"({len(generations)} WAL generations)")
    print("| b-tree | frames | share | frames per commit |")
    print("|---|---|---|---|")
    for name, n in by.most_common():
        if n * 1000 < len(pages):
            continue
        print(f"| `{name}` | {n} | {100 * n / len(pages):.1f} % | {n / max(commits, 1):.0f} |")


if __name__ == "__main__":
    main()
