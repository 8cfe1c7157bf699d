#!/usr/bin/env python3
"""Convert an ARC-paper .lis trace (Megiddo & Modha, FAST'03) to libCacheSim oracleGeneral.

.lis line: `start_block num_blocks ignore request_no`; a request for blocks
start .. start+num-1. Each request is expanded into one request per 512-byte block.

oracleGeneral record (24 bytes, little endian):
  u32 clock_time        expanded request index // 1000 (ARC traces have no timestamps)
  u64 obj_id            block number
  u32 obj_size          512
  i64 next_access_vtime 1-based index of the next request for the same obj_id
                        (0-based index + 1), -1 if never again

Usage:
  convert_arc.py INPUT.lis[.zst] OUTPUT.bin [--max-requests N]

--max-requests N keeps the longest prefix of whole .lis lines whose expansion has at most
N requests (no original request is split); next_access_vtime is computed within that prefix.
Prints a JSON summary on stdout.
"""
import argparse
import json
import subprocess
import sys
from array import array
import struct

BLOCK = 512


def open_lines(path):
    if path.endswith(".zst"):
        p = subprocess.Popen(["zstd", "-dc", path], stdout=subprocess.PIPE)
        return p, p.stdout
    return None, open(path, "rb")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--max-requests", type=int, default=0)
    a = ap.parse_args()

    ids = array("Q")
    lines_used = 0
    lines_total_seen = 0
    truncated = False
    proc, fh = open_lines(a.input)
    for raw in fh:
        parts = raw.split()
        if not parts:
            continue
        lines_total_seen += 1
        start = int(parts[0])
        num = int(parts[1])
        if num < 1:
            raise SystemExit(f"line {lines_total_seen}: num_blocks={num} < 1")
        if a.max_requests and len(ids) + num > a.max_requests:
            truncated = True
            break
        ids.extend(range(start, start + num))
        lines_used += 1
    if proc is not None:
        fh.close()
        proc.wait()
        if not truncated and proc.returncode != 0:
            raise SystemExit(f"zstd failed with {proc.returncode}")

    n = len(ids)
    nxt = array("q", bytes(8 * n))
    last = {}
    for i in range(n - 1, -1, -1):
        o = ids[i]
        nxt[i] = last.get(o, -1)
        last[o] = i + 1  # 1-based index
    distinct = len(last)
    del last

    pack = struct.Struct("<IQIq").pack
    with open(a.output, "wb") as out:
        buf = []
        for i in range(n):
            buf.append(pack(i // 1000, ids[i], BLOCK, nxt[i]))
            if len(buf) >= 65536:
                out.write(b"".join(buf))
                buf = []
        out.write(b"".join(buf))

    json.dump({
        "input": a.input,
        "output": a.output,
        "lis_lines_used": lines_used,
        "truncated": truncated,
        "requests": n,
        "distinct_objects": distinct,
        "bytes": n * 24,
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
