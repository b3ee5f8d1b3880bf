"""geokv from Python: a mapping-like DB with prefix iteration and typed errors."""
import sys

import geokv

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/geokv-example-py"
with geokv.open(path, durability="sync") as db:
    print(f"[py] opened {path} (geokv {geokv.version()})")
    db[b"lang/c"] = b"1972"
    db["lang/python"] = "1991"
    db[b"lang/rust"] = b"2015"
    print(f"[py] get lang/python -> {db['lang/python']!r}")
    print(f"[py] b'lang/cobol' in db -> {b'lang/cobol' in db}")
    for key, value in db.items(b"lang/"):
        print(f"[py] scan {key.decode()} = {value.decode()}")
    try:
        db[b"k" * 5000] = b"v"
    except geokv.KeyTooLargeError as e:
        print(f"[py] oversize key -> {type(e).__name__}: {e}")
