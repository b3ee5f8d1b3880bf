"""Put and get from Python through the geokv package, against the same calls made straight
to the C ABI with ctypes on the very libgeokv.so the package ships, in the same process.
The ratio is what the package (pybind11 module, C++ wrapper, GIL release) costs per call.

    .venv/bin/python bench/python/bench_python.py [--ops 100000]
"""
import argparse
import ctypes
import glob
import os
import tempfile
import time

import geokv

GEOKV_DURABILITY_NONE = 3


class Options(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("durability", ctypes.c_uint32),
                ("key_bytes_max", ctypes.c_uint64), ("value_bytes_max", ctypes.c_uint64),
                ("commit_timeout_ms", ctypes.c_uint32), ("config_path", ctypes.c_char_p)]


def load_library():
    pkg = os.path.dirname(geokv.__file__)
    candidates = sorted(glob.glob(os.path.join(pkg, "libgeokv.so*")))
    if not candidates:
        raise SystemExit(f"libgeokv.so not found next to {pkg}")
    lib = ctypes.CDLL(candidates[0])
    lib.geokv_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.POINTER(Options)]
    lib.geokv_put.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    lib.geokv_get.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t),
                              ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.geokv_free.argtypes = [ctypes.c_void_p]
    lib.geokv_close.argtypes = [ctypes.c_void_p]
    return lib


def rate(fn, ops):
    start = time.perf_counter()
    fn(ops)
    return ops / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000)
    args = parser.parse_args()
    keys = [b"key%012d" % i for i in range(args.ops)]
    value = b"v" * 100
    lib = load_library()

    with tempfile.TemporaryDirectory() as tmp:
        raw = ctypes.c_void_p()
        opts = Options(1, GEOKV_DURABILITY_NONE, 0, 0, 0, None)
        if lib.geokv_open(ctypes.byref(raw), os.path.join(tmp, "raw").encode(), ctypes.byref(opts)) != 0:
            raise SystemExit("geokv_open failed")

        def raw_put(n):
            for k in keys[:n]:
                lib.geokv_put(raw, k, len(k), value, len(value))

        def raw_get(n):
            out, out_len = ctypes.c_void_p(), ctypes.c_size_t()
            for k in keys[:n]:
                lib.geokv_get(ctypes.byref(out), ctypes.byref(out_len), raw, k, len(k))
                ctypes.string_at(out, out_len.value)
                lib.geokv_free(out)

        db = geokv.open(os.path.join(tmp, "pkg"), durability="none")

        def pkg_put(n):
            for k in keys[:n]:
                db[k] = value

        def pkg_get(n):
            for k in keys[:n]:
                db[k]

        results = {}
        for name, fn in [("ctypes put", raw_put), ("geokv put", pkg_put),
                         ("ctypes get", raw_get), ("geokv get", pkg_get)]:
            results[name] = rate(fn, args.ops)
            print(f"{name:12s} {results[name]:12,.0f} ops/s")
        print(f"ratio geokv put / ctypes put: {results['geokv put'] / results['ctypes put']:.3f}x")
        print(f"ratio geokv get / ctypes get: {results['geokv get'] / results['ctypes get']:.3f}x")
        db.close()
        lib.geokv_close(raw)


if __name__ == "__main__":
    main()
