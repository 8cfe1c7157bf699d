"""``python -m cairn``: cat, ls, stat and its error line."""

import subprocess
import sys


def run(gateway, *args):
    return subprocess.run([sys.executable, "-m", "cairn", "--gateway", gateway.url, *args], capture_output=True)


def test_cat_ls_stat(tiny_sha256, gateway):
    ds = tiny_sha256.serve(gateway)
    r = run(gateway, "cat", f"{ds.root}/files/deep.bin")
    assert r.returncode == 0 and r.stdout == ds.files["files/deep.bin"]
    r = run(gateway, "--fetch", "raw", "cat", f"{ds.root}/files/deep.bin", "--start", "10", "--end", "20")
    assert r.stdout == ds.files["files/deep.bin"][10:20]
    r = run(gateway, "ls", f"{ds.root}/nested")
    assert r.returncode == 0 and r.stdout.decode().split("\t")[1:] == ["directory", "0", "a\n"]
    r = run(gateway, "stat", f"{ds.root}/dataset.json")
    assert r.stdout.decode().split("\t")[1:] == ["file", str(len(ds.files["dataset.json"])), "dataset.json\n"]


def test_errors_are_one_line_and_exit_1(tiny_sha256, gateway):
    ds = tiny_sha256.serve(gateway)
    r = run(gateway, "cat", f"{ds.root}/nope")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode().startswith("error: no entry 'nope'") and r.stderr.count(b"\n") == 1
    gateway.corrupt.add(ds.root.multihash)
    r = run(gateway, "cat", f"{ds.root}/dataset.json")
    assert r.returncode == 1 and b"do not match" in r.stderr
