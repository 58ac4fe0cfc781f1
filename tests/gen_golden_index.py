#!/usr/bin/env python3
"""Turns tests/data/golden/manifest.json into a C table the golden tests iterate over.

Usage: gen_golden_index.py MANIFEST OUT_HEADER
Every number here is read from the manifest; the tests never retype one."""
import json
import sys


def cstr(s):
    return '"%s"' % s if s is not None else "NULL"


def main():
    m = json.load(open(sys.argv[1]))
    rows = []
    for name, t in m["types"].items():
        for variant in ("no_imatrix", "imatrix"):
            v = t["variants"].get(variant)
            check = t["quantize_check"].get(variant)
            if v is None and check is None:
                continue
            if v is None:  # imatrix ignored: the no-imatrix file is the answer for both
                v = t["variants"]["no_imatrix"]
            metric = 0
            if check and check.startswith("error_le_ggml"):
                metric = 2 if "weighted" in check else 1
            bound = v["weighted_rmse"] if metric == 2 else v["rmse"]
            rows.append("{%s, %d, %d, %s, %s, %s, %d, %.9g}" % (
                cstr(name), t["ggml_type_id"], variant == "imatrix", cstr(v["file"]),
                cstr(v["dequant_file"]), cstr(v["dequant_sha256"]), metric, bound))
        r = t["random_blocks"]
        rows.append("{%s, %d, -1, %s, %s, %s, 0, 0}" % (
            cstr(name), t["ggml_type_id"], cstr(r["file"]), cstr(r["dequant_file"]),
            cstr(r["dequant_sha256"])))
    shape = m["shape"]
    out = [
        "/* Generated from the golden manifest by tests/gen_golden_index.py; do not edit. */",
        "#include <stddef.h>",
        "#define GOLDEN_ROWS %d" % shape["rows"],
        "#define GOLDEN_COLS %d" % shape["cols"],
        "typedef struct golden_case {",
        "    const char *type_name;",
        "    int type_id;",
        "    int imatrix;          /* 1: quantized with imatrix.f32; 0: without; -1: random blocks */",
        "    const char *q_file;",
        "    const char *deq_file; /* NULL where only the sha256 is shipped */",
        "    const char *deq_sha256;",
        "    int metric;           /* 0: bytes must equal q_file; 1: rmse <= bound; 2: weighted rmse <= bound */",
        "    double bound;",
        "} golden_case;",
        "static const golden_case golden_cases[] = {",
        ",\n".join("    " + r for r in rows),
        "};",
        "/* Every shipped file with its manifest sha256: the copy in the repository is checked",
        " * against the manifest before any of it is believed. */",
        "typedef struct golden_file { const char *name; size_t bytes; const char *sha256; } golden_file;",
        "static const golden_file golden_files[] = {",
        ",\n".join('    {%s, %d, %s}' % (cstr(f["file"]), f["bytes"], cstr(f["sha256"])) for f in m["files"]),
        "};",
    ]
    open(sys.argv[2], "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
