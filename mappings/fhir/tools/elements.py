#!/usr/bin/env python3
"""Writes mappings/fhir/elements-<release>.json: every FHIR type's elements and their types, for
claimline's check of ViewDefinition paths (a misspelt element is refused before a load).

Source: the type definitions of the npm package @types/fhir (MIT; see ../SOURCES.md), whose
r3.d.ts (STU3) and r4.d.ts (R4) declare one interface per resource, backbone element and data
type. Run once per package version:

    npm pack @types/fhir@0.0.44 && tar xzf types-fhir-0.0.44.tgz
    python3 mappings/fhir/tools/elements.py fhir/r3.d.ts fhir/r4.d.ts

Output: {"TypeName": {"base": "Parent" | null, "elements": {"name": "Type"}}}, where a primitive
is "string", "number" or "boolean" and a code list (a union of literals) is "string".
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERFACE = re.compile(r"^export interface (\w+)(?: extends (\w+))? \{")
FIELD = re.compile(r"^  (readonly )?([A-Za-z][A-Za-z0-9]*)\??: (.+?)( \| undefined)?;$")


def element_type(ts: str) -> str:
    ts = ts.strip()
    if ts.endswith("[]"):
        ts = ts[:-2]
    if ts.startswith("("):
        return "string"
    return ts


def parse(path):
    types = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = INTERFACE.match(line)
            if m:
                current = {"base": m.group(2), "elements": {}}
                types[m.group(1)] = current
                continue
            if line.startswith("}"):
                current = None
                continue
            if current is None:
                continue
            m = FIELD.match(line.rstrip("\n"))
            if m:
                current["elements"][m.group(2)] = element_type(m.group(3))
    return types


def main():
    for path, release in zip(sys.argv[1:3], ("stu3", "r4")):
        types = parse(path)
        out = os.path.join(HERE, f"elements-{release}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(types, f, sort_keys=True, separators=(",", ":"))
            f.write("\n")
        print(f"{out}: {len(types)} types")


if __name__ == "__main__":
    main()
