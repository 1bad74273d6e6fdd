#!/usr/bin/env python3
"""Writes an export of N beneficiaries' Patient and Coverage resources (no claims) from a
synthetic export's: each of its beneficiaries copied with a new beneficiary id and new MBIs (its
current one and its historic ones, each copy's its own) and MBI hash, as many times as N asks,
so a load's memory can be measured by beneficiaries, not by claims (benches/benes.sh). The
copies are the synthetic resources byte for byte but for those values.

    python3 benches/bene_copies.py SOURCE_EXPORT N OUT_EXPORT

SOURCE_EXPORT is a `claimline synth` v2 export (`Patient.*.ndjson`, `Coverage.*.ndjson`);
OUT_EXPORT must not exist. Its manifest lists one Patient and one Coverage file.
"""
import glob
import hashlib
import json
import os
import sys

# MBI characters by position (CMS's MBI format: no S, L, O, I, B, Z).
ALPHA = "ACDEFGHJKMNPQRTUVWXY"
DIGIT = "0123456789"
ALNUM = DIGIT + ALPHA
MBI_POSITIONS = [DIGIT[1:], ALPHA, ALNUM, DIGIT, ALPHA, ALNUM, DIGIT, ALPHA, ALPHA, DIGIT, DIGIT]
# MBIs a beneficiary may have (current and historic): each copy takes this many numbers.
MBIS_PER_BENE = 4


def mbi(n):
    """The n-th MBI (a mixed-radix number over MBI_POSITIONS, last position fastest)."""
    out = []
    for chars in reversed(MBI_POSITIONS):
        n, r = divmod(n, len(chars))
        out.append(chars[r])
    if n:
        raise ValueError("too many beneficiaries for the MBI space")
    return "".join(reversed(out))


def lines(export, kind):
    out = []
    for path in sorted(glob.glob(os.path.join(export, f"{kind}.*.ndjson"))):
        with open(path, encoding="utf-8") as f:
            out.extend(line.rstrip("\n") for line in f if line.strip())
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    patients = lines(source, "Patient")
    coverage = lines(source, "Coverage")
    # Each source beneficiary: its id, its MBIs, its MBI hashes, its Patient line and its
    # Coverage lines.
    benes = []
    for p in patients:
        d = json.loads(p)
        bene = d["id"]
        ids = d.get("identifier", [])
        # Current first, then historic (synth writes up to three).
        mbis = [i["value"] for i in ids if i.get("system") == "http://hl7.org/fhir/sid/us-mbi"]
        if len(mbis) > MBIS_PER_BENE:
            sys.exit(f"{source}: Patient {bene} has more than {MBIS_PER_BENE} MBIs")
        hashes = [i["value"] for i in ids if str(i.get("system", "")).endswith("/mbi-hash")]
        own = [c for c in coverage if f'"Patient/{bene}"' in c]
        benes.append((bene, mbis, hashes, p, own))
    if not benes:
        sys.exit(f"{source}: no Patient resources")
    os.makedirs(out, mode=0o700)
    paths = {k: os.path.join(out, f"{k}.000.ndjson") for k in ("Patient", "Coverage")}
    # Owner-only, as every claimline output: the copies are synthetic, but shaped like PHI.
    files = {k: os.fdopen(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                          encoding="utf-8") for k, p in paths.items()}
    for i in range(n):
        bene, mbis, hashes, p, own = benes[i % len(benes)]
        # A new id of the source's length: `-1`, the copy, the source beneficiary.
        new = f"-1{i // len(benes):07d}{i % len(benes):06d}"
        swaps = [(bene, new)]
        swaps += [(old, mbi(i * MBIS_PER_BENE + k)) for k, old in enumerate(mbis)]
        swaps += [(old, hashlib.sha256(new.encode()).hexdigest()) for old in hashes]

        def copy(line):
            for old, value in swaps:
                line = line.replace(old, value)
            return line

        files["Patient"].write(copy(p) + "\n")
        for c in own:
            files["Coverage"].write(copy(c) + "\n")
    for f in files.values():
        f.close()
    with open(os.path.join(source, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    base = manifest["output"][0]["url"].rsplit("/", 1)[0]
    manifest["output"] = [{"type": k, "url": f"{base}/{k}.000.ndjson"} for k in paths]
    manifest["request"] = manifest["request"].replace(
        "_type=ExplanationOfBenefit,Patient,Coverage", "_type=Patient,Coverage")
    manifest_path = os.path.join(out, "manifest.json")
    with os.fdopen(os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                   encoding="utf-8") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    main()
