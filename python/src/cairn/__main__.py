"""``python -m cairn cat|ls|stat PATH``: verified reads from the command line.

``cat`` writes a file's bytes to stdout (``--start``/``--end`` for a range), so WebDataset's
``pipe:python -m cairn cat CID/train/shard-000000.tar`` form works without registering the
``cairn://`` scheme. Errors print one ``error: ...`` line and exit 1.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import List, Optional

from .client import Client
from .errors import CairnError


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cairn", description="Verified reads through an IPFS trustless gateway.")
    p.add_argument("--gateway", help="gateway URL (default $CAIRN_GATEWAY or http://127.0.0.1:8080)")
    p.add_argument("--fetch", choices=("auto", "car", "raw"), default="auto")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cat", help="write a file's bytes to stdout")
    c.add_argument("path")
    c.add_argument("--start", type=int)
    c.add_argument("--end", type=int)
    sub.add_parser("ls", help="list a directory").add_argument("path")
    sub.add_parser("stat", help="type, size and CID").add_argument("path")
    args = p.parse_args(argv)
    try:
        client = Client(args.gateway, fetch=args.fetch)
        if args.cmd == "cat":
            out = sys.stdout.buffer
            if args.start is None and args.end is None:
                with client.open(args.path) as f:
                    shutil.copyfileobj(f, out, 1 << 20)
            else:
                out.write(client.cat(args.path, args.start, args.end))
            out.flush()
        elif args.cmd == "ls":
            for st in client.ls(args.path):
                print(f"{st.cid}\t{st.type}\t{st.size}\t{st.name}")
        else:
            st = client.stat(args.path)
            print(f"{st.cid}\t{st.type}\t{st.size}\t{st.name}")
    except BrokenPipeError:  # the reader went away (e.g. WebDataset stopped early)
        return 0
    except (CairnError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
