"""claimline.spark on Spark (local[2], pyspark from PyPI on the machine's Java): exact line
numbers, a beneficiary's lines in one task, and Parquet equal to the CLI's for every table."""

import collections
import glob
import gzip
import json
import os
import random
import re
import shutil
import subprocess

import pytest

JAVA = (os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME")
        else shutil.which("java"))
if JAVA is None or not os.access(JAVA, os.X_OK):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Java for the Spark tests (openjdk-17-jre-headless)")
    pytest.skip("Java is missing (Spark needs a JVM: install openjdk-17-jre-headless)",
                allow_module_level=True)
pytest.importorskip("pyspark", reason="pyspark is not installed (tests/run installs it)")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import claimline  # noqa: E402
from claimline import spark as cs  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    s = cs.session(extra={"spark.ui.showConsoleProgress": "false",
                          "spark.sql.shuffle.partitions": "4"})
    yield s
    s.stop()


def cli_load(cli, inputs, out, run_id):
    r = subprocess.run([str(cli), "load", *map(str, inputs), "--out", str(out), "--format",
                        "parquet", "--run-id", run_id, "--json"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


# ------------------------------------------------------------------------------------------
# Comparing two outputs' Parquet tables


def files(out, t, run):
    return sorted(glob.glob(os.path.join(out, "parquet", t, f"run={run}", "part-*.parquet")))


def logical(f):
    s = pq.ParquetFile(f).schema
    return [(s.column(i).name, s.column(i).physical_type, str(s.column(i).logical_type))
            for i in range(len(s))]


def read(fs):
    return pa.concat_tables([pq.read_table(f) for f in fs]) if fs else None


def key(row):
    return tuple((k, "" if v is None else str(v)) for k, v in row.items())


def compare(a_out, b_out, run, quiet=False):
    tables = sorted(os.listdir(os.path.join(a_out, "parquet")))
    tables = [t for t in tables if os.path.isdir(os.path.join(a_out, "parquet", t))
              and t != "current"]
    report = {}
    for t in tables:
        fa, fb = files(a_out, t, run), files(b_out, t, run)
        r = {"files": (len(fa), len(fb))}
        if not fb:
            r["missing"] = True
            report[t] = r
            continue
        A, B = read(fa), read(fb)
        r["rows"] = (A.num_rows, B.num_rows)
        r["arrow_schema_equal"] = A.schema.remove_metadata() == B.schema.remove_metadata() and \
            [f.type for f in A.schema] == [f.type for f in B.schema]
        r["column_order_equal"] = A.schema.names == B.schema.names
        la, lb = logical(fa[0]), logical(fb[0])
        r["parquet_types_equal"] = la == lb
        if la != lb:
            r["parquet_type_diffs"] = [(x, y) for x, y in zip(la, lb) if x != y][:5]
        ra = collections.Counter(key(x) for x in A.to_pylist())
        rb = collections.Counter(key(x) for x in B.select(A.schema.names).to_pylist()) \
            if set(A.schema.names) <= set(B.schema.names) else collections.Counter()
        only_a, only_b = ra - rb, rb - ra
        r["rows_equal"] = not only_a and not only_b
        if only_a or only_b:
            r["only_cli"] = sum(only_a.values())
            r["only_spark"] = sum(only_b.values())
            # Which columns differ, pairing rows by (_source_file, _line) where possible.
            if "_line" in A.schema.names and "_source_file" in A.schema.names:
                def by_pos(rows):
                    d = collections.defaultdict(list)
                    for k in rows.elements():
                        dk = dict(k)
                        d[(dk["_source_file"], dk["_line"])].append(dk)
                    return d
                pa_, pb_ = by_pos(only_a), by_pos(only_b)
                cols = collections.Counter()
                for p in set(pa_) & set(pb_):
                    for x, y in zip(pa_[p], pb_[p]):
                        cols.update(c for c in x if x[c] != y[c])
                r["differing_columns"] = dict(cols.most_common(8))
                r["unpaired_positions"] = (len(set(pa_) - set(pb_)), len(set(pb_) - set(pa_)))
        report[t] = r
    return report



# ------------------------------------------------------------------------------------------
# Line numbers


def reference_lines(data: bytes):
    """Lines as the CLI numbers them: split on \\n only; a final \\n ends the last line."""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


def tricky_files(d):
    rnd = random.Random(7)

    def random_lines(n):
        out = []
        for _ in range(n):
            k = rnd.choice([0, 0, 1, 5, 17, 40, 90])  # many blank lines
            out.append(bytes(rnd.choice(b'{}"ab \t\r\xff\xc3\xa9x:,') for _ in range(k)))
        return out

    files = {}
    body = b"\n".join(random_lines(300))
    files["plain [1] {x}.ndjson"] = body + b"\n"                 # glob characters, space
    files["no-final-newline.ndjson"] = b"\n".join(random_lines(50))
    files["odd + %41 \u00e9.ndjson"] = b"\n".join(random_lines(30)) + b"\n"  # URI-escaped names
    files["trailing-blank.ndjson"] = b'{"a":1}\n\n\n'
    # Every split (37 bytes in the test) starts exactly at a line start, or right after one.
    files["aligned.ndjson"] = b"".join(bytes([97 + i % 26]) * 36 + b"\n" for i in range(20))
    files["aligned-1.ndjson"] = b"".join(bytes([97 + i % 26]) * 35 + b"\n" for i in range(20))
    files["crlf.ndjson"] = b'{"a":1}\r\n{"b":2}\r{"c":3}\r\n\r\n'
    files["empty.ndjson"] = b""
    files["one.ndjson.gz"] = gzip.compress(b"\n".join(random_lines(200)) + b"\n")
    # Two gzip members, as `cat a.gz b.gz` makes (BCDA writes one, but readers must cope).
    files["members.ndjson.gz"] = gzip.compress(b"x\n\ny\n") + gzip.compress(b"\nz\n")
    raw = {}
    for name, content in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(content)
        raw[name] = gzip.decompress(content) if name.endswith(".gz") else content
    return raw


@pytest.mark.parametrize("count", ["spark", "driver"])
def test_line_numbers_are_exact_across_splits_gzip_and_blank_lines(spark, tmp_path, count):
    raw = tricky_files(str(tmp_path))
    files, _, _ = cs.discover([str(tmp_path)])
    assert [os.path.basename(f.path) for f in files] == sorted(raw)
    # Tiny splits: plain files break into many splits, some holding no line start at all.
    prev = cs._set_conf(spark, {**cs.SQL_CONF, "spark.sql.files.maxPartitionBytes": "37",
                                "spark.sql.files.openCostInBytes": "37"})
    try:
        df, info = cs.numbered_lines(spark, files, count=count)
        got = df.collect()
    finally:
        cs._restore_conf(spark, prev)
    assert info["split_files"] >= 2 and info["counted_splits"] > info["split_files"]
    by_file = collections.defaultdict(dict)
    for r in got:
        assert r["line"] not in by_file[r["file_idx"]], "a line number came twice"
        by_file[r["file_idx"]][r["line"]] = bytes(r["text"])
    for f in files:
        want = reference_lines(raw[os.path.basename(f.path)])
        have = by_file.get(f.index, {})
        assert sorted(have) == list(range(1, len(want) + 1)), f.path
        assert [have[i + 1] for i in range(len(want))] == want, f.path


def test_default_line_separator_would_misnumber(spark, tmp_path):
    """Why lineSep="\\n": Spark's default also splits on a lone \\r and drops \\r of \\r\\n."""
    p = tmp_path / "cr.ndjson"
    p.write_bytes(b'{"a":1}\r{"b":2}\r\n{"c":3}\n')
    default = spark.read.text(str(p)).count()
    files, _, _ = cs.discover([str(p)])
    df, _ = cs.numbered_lines(spark, files)
    assert df.count() == 2 and default == 3
    assert sorted(bytes(r["text"]) for r in df.collect()) == [b'{"a":1}\r{"b":2}\r', b'{"c":3}']


# ------------------------------------------------------------------------------------------
# Keys and partitioning


def test_a_beneficiary_is_in_one_partition_in_file_order(spark, tmp_path):
    from pyspark.sql import functions as F
    rnd = random.Random(3)
    benes = [f"-1000{i}" for i in range(40)]
    pat, cov, eob = [], [], []
    for b in benes:
        pat.append(json.dumps({"resourceType": "Patient", "id": b}))
        for _ in range(rnd.randint(1, 3)):
            cov.append(json.dumps({"resourceType": "Coverage", "id": "c",
                                   "beneficiary": {"reference": f"Patient/{b}"}}))
        for _ in range(rnd.randint(0, 6)):
            eob.append(json.dumps({"resourceType": "ExplanationOfBenefit", "id": "e",
                                   "patient": {"reference": f"Patient/{b}"}}))
    rnd.shuffle(cov)
    rnd.shuffle(eob)
    eob[5:5] = ["not json", "", '{"resourceType":"OperationOutcome"}']
    (tmp_path / "Coverage.ndjson").write_text("\n".join(cov) + "\n")
    (tmp_path / "ExplanationOfBenefit.ndjson").write_text("\n".join(eob) + "\n")
    (tmp_path / "Patient.ndjson").write_text("\n".join(pat) + "\n")
    files, _, _ = cs.discover([str(tmp_path)])
    lines, _ = cs.numbered_lines(spark, files)
    keys = {(r["file_idx"], r["line"]): r["key"] for r in
            cs.with_keys(lines).select("file_idx", "line", "key").collect()}
    eob_idx = [f.index for f in files if "Explanation" in f.path][0]
    assert keys[(eob_idx, 6)] == f"l:{eob_idx}:6"          # unparseable: its own key
    assert keys[(eob_idx, 8)] == f"l:{eob_idx}:8"          # other resource type
    assert sum(1 for k in keys.values() if k.startswith("b:")) == len(pat) + len(cov) + len(eob) - 3
    rows = (cs.keyed_lines(lines, 5).withColumn("p", F.spark_partition_id())
            .select("p", "file_idx", "line").collect())
    part_of = collections.defaultdict(set)
    seq = collections.defaultdict(list)
    for r in rows:
        part_of[keys[(r["file_idx"], r["line"])]].add(r["p"])
        seq[r["p"]].append((r["file_idx"], r["line"]))
    assert all(len(p) == 1 for p in part_of.values())
    assert all(s == sorted(s) for s in seq.values())
    assert len(seq) > 1



# ------------------------------------------------------------------------------------------
# The whole load, against the CLI


def parquet_files_only(run_dir):
    names = os.listdir(run_dir)
    assert names and all(n.startswith("part-") and n.endswith(".parquet") for n in names), names


@pytest.mark.parametrize("sample", ["sample-data/real", "seven-year"])
def test_load_writes_the_rows_and_types_of_the_cli_in_every_table(spark, cli, repo, tmp_path,
                                                                   sample, seven_year_export):
    source = seven_year_export if sample == "seven-year" else repo / sample
    cli_out, sp_out = tmp_path / "cli", tmp_path / "spark"
    cli_report = cli_load(cli, [source], cli_out, "R1")
    r = cs.load(spark, [source], sp_out, run_id="R1", partitions=3)
    # Once per job: one engine call per non-empty partition, though every table write reads
    # the engine's output.
    assert 1 <= r.engine_calls <= 3
    rep = compare(cli_out, sp_out, "R1")
    assert len(rep) >= 14, sorted(rep)
    for t, x in rep.items():
        assert not x.get("missing"), t
        assert x["arrow_schema_equal"] and x["column_order_equal"], t
        assert x["parquet_types_equal"], (t, x.get("parquet_type_diffs"))
        assert x["rows_equal"], (t, x)
        parquet_files_only(sp_out / "parquet" / t / "run=R1")
    assert r.tables == cli_report["tables"]
    assert r.reject_count == cli_report["rejects"]["count"]
    assert r.row_errors == cli_report["row_errors"]["by_column"]
    assert r.resources == cli_report["resources"]
    assert r.beneficiaries == {k: v for k, v in cli_report["beneficiaries"].items()
                               if k != "known"}
    assert r.excluded == cli_report["excluded"]
    # The run is recorded as the CLI records it, so CLI commands and queries see it.
    (cli_run,) = json.loads((cli_out / "parquet" / "_claimline_runs.json").read_text())
    (sp_run,) = json.loads((sp_out / "parquet" / "_claimline_runs.json").read_text())
    for k in ("run_id", "inputs", "api_versions", "views_hash", "resources", "tables",
              "rejects", "row_errors", "transaction_time", "all_versions"):
        assert sp_run[k] == cli_run[k], k
    assert not (sp_out / ".claimline-staging").exists()
    # Parquet as the README promises: logical types, not INT96.
    f = glob.glob(str(sp_out / "parquet" / "cclf1" / "run=R1" / "part-*.parquet"))[0]
    s = pq.ParquetFile(f).schema
    col = {s.column(i).name: s.column(i) for i in range(len(s))}
    ts = json.loads(col["_last_updated"].logical_type.to_json())
    assert ts["isAdjustedToUTC"] is True and ts["timeUnit"] == "microseconds"
    assert col["_last_updated"].physical_type == "INT64"
    # The same run id again is refused (code 5), the run already there stays.
    with pytest.raises(claimline.OutputError):
        cs.load(spark, [source], sp_out, run_id="R1")
    assert compare(cli_out, sp_out, "R1")["cclf1"]["rows_equal"]


def test_a_held_output_is_refused_with_code_5(spark, repo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # The CLI's lock is the output folder's: hold it as a running load would.
    lock = claimline._native.lock_output(str(out))
    try:
        with pytest.raises(claimline.OutputError) as err:
            cs.load(spark, [repo / "sample-data/real/r4"], out, run_id="B1")
        assert err.value.code == 5
    finally:
        lock.release()
    assert not (out / "parquet").exists()


def test_rejects_carry_file_and_line(spark, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    good = '{"resourceType":"Patient","id":"-1","meta":{"lastUpdated":"2024-01-01T00:00:00Z"}}'
    (d / "Patient.ndjson").write_text(f"{good}\n\n{{not json\n{good}\n")
    with gzip.open(d / "Coverage.ndjson.gz", "wt") as f:
        f.write('\n\n{"resourceType": "Coverage", "beneficiary": \n')
    r = cs.load(spark, [d], tmp_path / "out", run_id="X1")
    rej = sorted((x["file"], x["line"], x["kind"]) for x in r.rejects.collect())
    assert rej == [(str(d / "Coverage.ndjson.gz"), 3, "invalid_json"),
                   (str(d / "Patient.ndjson"), 3, "invalid_json")]
    assert r.reject_count == 2
    assert all("not json" not in x["error"] for x in r.rejects.collect())


def test_rejected_lines_are_kept_in_the_output_and_every_file_is_owner_only(spark, tmp_path):
    """Found by a review: Spark kept its rejects only in the returned DataFrame, and wrote its
    PHI with 0644 files in 0755 folders."""
    d = tmp_path / "in"
    d.mkdir()
    good = '{"resourceType":"Patient","id":"-1","meta":{"lastUpdated":"2024-01-01T00:00:00Z"}}'
    (d / "Patient.ndjson").write_text(f"{good}\n{{not json\n")
    out = tmp_path / "out"
    r = cs.load(spark, [d], out, run_id="X1")
    assert r.rejects_file == str(out / "rejects" / "X1.ndjson")
    kept = [json.loads(x) for x in (out / "rejects" / "X1.ndjson").read_text().splitlines()]
    assert kept == [{"file": str(d / "Patient.ndjson"), "line": 2, "kind": "invalid_json",
                     "error": kept[0]["error"]}]
    open_to_others = []
    for root, dirs, names in os.walk(out):
        for n in dirs + names:
            p = os.path.join(root, n)
            if os.stat(p).st_mode & 0o077:
                open_to_others.append(p)
    assert open_to_others == []


def test_a_driver_with_too_many_rayon_threads_is_refused_before_anything_is_touched(
        spark, repo, tmp_path, monkeypatch):
    """As the CLI refuses it: the refresh of current/ after the commit would start that many
    threads on the driver (found by a review: only the tasks checked)."""
    out = tmp_path / "out"
    monkeypatch.setenv("RAYON_NUM_THREADS", "100000")
    with pytest.raises(claimline.UsageError, match="RAYON_NUM_THREADS is 100000"):
        cs.load(spark, [repo / "sample-data/real/r4"], out, run_id="R1")
    assert not out.exists()


def test_a_run_id_that_is_no_run_id_is_refused_before_anything_is_touched(spark, repo,
                                                                         tmp_path):
    """Found by a review: an absolute run id made the staging folder that path, removed."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep")
    for bad in (str(victim), "../x", "r 1/x", ".hidden"):
        with pytest.raises(claimline.UsageError) as err:
            cs.load(spark, [repo / "sample-data/real/r4"], tmp_path / "out", run_id=bad)
        assert err.value.code == 2
    assert (victim / "precious.txt").read_text() == "keep"
    assert not (tmp_path / "out").exists()


def test_an_output_with_a_database_is_refused(spark, cli, repo, tmp_path):
    """Found by a review: Spark runs are Parquet's alone, and the CLI's next load read the MBIs
    and runs of the database, which lacked them."""
    out = tmp_path / "out"
    subprocess.run([str(cli), "load", str(repo / "sample-data/real/r4"), "--out", str(out),
                    "--format", "both", "--run-id", "r1"], check=True, capture_output=True)
    with pytest.raises(claimline.UsageError) as err:
        cs.load(spark, [repo / "sample-data/real/r4"], out, run_id="r2")
    assert "claimline.sqlite" in err.value.message


def test_row_errors_are_kept_in_the_output(spark, tmp_path):
    """Found by a review: only their counts per column were kept."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "Patient.ndjson").write_text(
        '{"resourceType":"Patient","id":"-1","meta":{"lastUpdated":"IGNORED_FIELD"}}\n')
    out = tmp_path / "out"
    r = cs.load(spark, [d], out, run_id="E1")
    assert sum(r.row_errors.values()) >= 1, r.row_errors
    assert r.row_errors_file == str(out / "rejects" / "E1-row-errors.ndjson")
    lines = [json.loads(x) for x in (out / "rejects" / "E1-row-errors.ndjson").read_text()
             .splitlines()]
    assert len(lines) == sum(r.row_errors.values())
    assert all(x["file"] == str(d / "Patient.ndjson") and x["line"] == 1 for x in lines)
    assert not os.stat(out / "rejects" / "E1-row-errors.ndjson").st_mode & 0o077


def test_a_run_id_sorting_before_the_outputs_runs_is_refused(spark, repo, tmp_path):
    out = tmp_path / "out"
    cs.load(spark, [repo / "sample-data/real/r4"], out, run_id="r5")
    with pytest.raises(claimline.UsageError) as err:
        cs.load(spark, [repo / "sample-data/real/r4"], out, run_id="r1")
    assert err.value.code == 2
    assert "sorts before run r5" in err.value.message
    runs = json.loads((out / "parquet" / "_claimline_runs.json").read_text())
    assert [r["run_id"] for r in runs] == ["r5"]


def test_a_cut_gzip_input_is_a_rejects_error_naming_nothing_committed(spark, repo, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    text = (repo / "sample-data/real/r4/Patient.ndjson").read_bytes() * 200
    whole = gzip.compress(text)
    (d / "Patient.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    with pytest.raises(claimline.RejectsError) as err:
        cs.load(spark, [d], out, run_id="G1")
    assert err.value.code == 4
    assert "nothing committed" in err.value.message
    assert not (out / "parquet" / "_claimline_runs.json").exists()
    # A checksum that fails, and a file named .gz that is not gzip: the same (found by a review:
    # Hadoop's words for them were not known, and a file name kept Spark's full stop).
    bad_crc = bytearray(whole)
    bad_crc[-8] ^= 0xFF
    for name, data in (("crc", bytes(bad_crc)), ("plain", text)):
        e = tmp_path / name
        e.mkdir()
        (e / "Patient.ndjson.gz").write_bytes(data)
        with pytest.raises(claimline.RejectsError) as err:
            cs.load(spark, [e], tmp_path / f"out-{name}", run_id="G2")
        assert err.value.code == 4, name
        assert err.value.file in (None, str(e / "Patient.ndjson.gz")), err.value.file


def test_references_in_any_form_of_a_patient_join_its_partition(spark, cli, repo, tmp_path,
                                                                 seven_year_export):
    """Found by a review: only a leading `Patient/` was cut from references, so an absolute
    URL, a `_history` version or a fragment put a claim in another task than its Patient, and
    its MBI came out NULL (the CLI resolves it)."""
    d = tmp_path / "in"
    shutil.copytree(seven_year_export, d)
    forms = ["https://bluebutton.cms.gov/v2/fhir/Patient/{}", "Patient/{}/_history/2",
             "Patient/{}#x"]
    for f in glob.glob(str(d / "ExplanationOfBenefit*.ndjson*")):
        opener = gzip.open if f.endswith(".gz") else open
        with opener(f, "rt") as src:
            lines = src.read().splitlines()
        out_lines = []
        for i, line in enumerate(lines):
            if line.strip():
                r = json.loads(line)
                ref = r["patient"]["reference"]
                r["patient"]["reference"] = forms[i % 3].format(ref.split("/")[-1])
                line = json.dumps(r)
            out_lines.append(line)
        with opener(f, "wt") as dst:
            dst.write("\n".join(out_lines) + "\n")
    cli_out, sp_out = tmp_path / "cli", tmp_path / "spark"
    cli_load(cli, [d], cli_out, "R1")
    cs.load(spark, [d], sp_out, run_id="R1", partitions=8)
    rep = compare(cli_out, sp_out, "R1")
    for t in ("cclf5", "cclf7", "cclfb"):
        assert rep[t]["rows_equal"], (t, rep[t])


def test_a_spark_load_killed_among_its_renames_is_finished_by_the_next_command(cli, repo,
                                                                                 tmp_path):
    """Found by a review: Spark renamed its partitions itself, and a failure among them left
    unrecorded partitions no command finished or removed. It now commits as a CLI load does:
    killed after its READY.json, between two tables' renames (`parquet.publish@3`), its run is
    published by the next command."""
    import sys
    out = tmp_path / "out"
    script = ("import sys\nfrom claimline import spark as cs\n"
              "s = cs.session(extra={'spark.ui.showConsoleProgress': 'false',"
              " 'spark.sql.shuffle.partitions': '2'})\n"
              "cs.load(s, [sys.argv[1]], sys.argv[2], run_id='K1', partitions=2)\n")
    env = {**os.environ, "CLAIMLINE_FAULT": "parquet.publish@3"}
    killed = subprocess.run([sys.executable, "-c", script, str(repo / "sample-data/real/r4"),
                             str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode != 0
    assert "fault point parquet.publish reached" in killed.stderr, killed.stderr[-2000:]
    assert (out / ".claimline-staging" / "K1" / "READY.json").is_file()
    assert not (out / "parquet" / "_claimline_runs.json").exists()
    cli_load(cli, [repo / "sample-data/real/r4"], out, "K2")
    runs = json.loads((out / "parquet" / "_claimline_runs.json").read_text())
    assert [r["run_id"] for r in runs] == ["K1", "K2"]
    tables = [t for t in os.listdir(out / "parquet") if t.startswith(("cclf", "bene", "_claimline_c"))]
    assert len(tables) >= 14
    for t in tables:
        assert (out / "parquet" / t / "run=K1").is_dir(), t
    assert not (out / ".claimline-staging").exists()


# ------------------------------------------------------------------------------------------
# current(): the README's Parquet query


def readme_current(repo, out, table):
    """The README's current-rows query for ``table`` of ``out``, run by DuckDB as written."""
    import duckdb
    text = (repo / "README.md").read_text()
    queries = re.findall(r"```sql\n(WITH runs AS .*?)```", text, re.S)
    claim_sql = next(q for q in queries if "_claimline_claims" in q)
    other_sql = next(q for q in queries if "bene_xref" in q)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if table.startswith("cclf") and table not in ("cclf8", "cclf9"):
        sql = claim_sql.replace("claimline-out", str(out)).replace("/cclf5/", f"/{table}/")
    else:
        last = "parquet/cclf9/*/part-*.parquet', hive_partitioning = true) t"
        assert last in other_sql
        sql = (other_sql.replace(last, f"parquet/{table}/*/part-*.parquet', "
                                       "hive_partitioning = true) t")
               .replace("claimline-out", str(out)))
    return con.sql(sql).to_arrow_table()


def to_arrow(df):
    if hasattr(df, "toArrow"):   # pyspark >= 4.0
        return df.toArrow()
    return pa.Table.from_batches(df._collect_as_arrow())


def _rows(t):
    return collections.Counter(tuple(str(v) for v in r.values()) for r in t.to_pylist())


def test_current_is_the_readme_query(spark, cli, repo, tmp_path):
    pytest.importorskip("duckdb", reason="duckdb runs the README's SQL as reference")
    src = repo / "sample-data" / "generated" / "v2"
    runs = {k: tmp_path / k for k in "abcd"}
    for p in runs.values():
        p.mkdir()
    eob = gzip.open(src / "ExplanationOfBenefit.000.ndjson.gz").read().split(b"\n")
    eob = [x for x in eob if x.strip()]
    pat = gzip.open(src / "Patient.000.ndjson.gz").read()
    h = len(eob) // 2
    (runs["a"] / "ExplanationOfBenefit.ndjson").write_bytes(b"\n".join(eob[h:]) + b"\n")
    (runs["a"] / "Patient.ndjson").write_bytes(pat)
    (runs["b"] / "ExplanationOfBenefit.ndjson").write_bytes(b"\n".join(eob[:h]) + b"\n")
    # Run c cancels three versions that run a made current (then run d loads run a again).
    active = [x for x in eob[h:] if b'"status":"active"' in x][:3]
    (runs["c"] / "ExplanationOfBenefit.ndjson").write_bytes(
        b"\n".join(x.replace(b'"status":"active"', b'"status":"cancelled"') for x in active)
        + b"\n")
    (runs["c"] / "Patient.ndjson").write_bytes(pat)
    shutil.copytree(runs["a"], runs["d"], dirs_exist_ok=True)
    out = tmp_path / "cli"
    for i, k in enumerate("abcd"):
        cli_load(cli, [runs[k]], out, f"2026010{i + 1}T000000Z")
    for t in ("cclf1", "cclf5", "bene_xref", "cclf8"):
        want = readme_current(repo, out, t)
        got = to_arrow(cs.current(spark, out, t))
        assert want.schema.names == got.schema.names, t
        assert _rows(want) == _rows(got), t
    # The materialised current tables (current/, refreshed after every run) through
    # the DuckDB views claimline writes, equal the README's query on every table.
    check_views(repo, out)
    # The cancels took effect: loaded (runs a and d) but no current rows in any claim table.
    cancelled = {json.loads(x)["id"] for x in active}
    seen = current_seen = 0
    for t in ("cclf1", "cclf5", "cclf6", "cclf7"):
        loaded = pq.read_table(out / "parquet" / t).column("_resource_id")
        seen += len(cancelled & set(loaded.to_pylist()))
        cur = to_arrow(cs.current(spark, out, t).select("_resource_id")).column(0)
        current_seen += len(cancelled & set(cur.to_pylist()))
    assert seen == 3 and current_seen == 0
    # And on Spark's own output: two runs, the second loading the first again.
    sp = tmp_path / "spark"
    cs.load(spark, [runs["a"]], sp, run_id="20260101T000000Z")
    cs.load(spark, [runs["d"], runs["c"]], sp, run_id="20260102T000000Z")
    for t in ("cclf1", "cclf5"):
        assert _rows(readme_current(repo, sp, t)) == _rows(to_arrow(cs.current(spark, sp, t)))
    check_views(repo, sp)


def check_views(repo, out):
    """Every view of ``out/current/views.sql`` holds the README query's rows."""
    import duckdb
    sql = (out / "current" / "views.sql").read_text()
    tables = re.findall(r'CREATE OR REPLACE VIEW "([^"]+)"', sql)
    assert {"cclf1", "cclf5", "cclfb", "bene_xref", "cclf8", "cclf9"} <= set(tables), tables
    cwd = os.getcwd()
    os.chdir(out)
    try:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(sql)
        for t in tables:
            view = con.sql(f'SELECT * FROM "{t}"').to_arrow_table()
            want = readme_current(repo, out, t)
            want = want.select([c for c in want.schema.names if c != "run"])
            assert view.schema.names == want.schema.names, t
            assert _rows(view) == _rows(want), t
    finally:
        os.chdir(cwd)


def test_views_take_a_resources_version_across_its_tables(cli, repo, tmp_path):
    """A newer Patient without MBI history gives no cclf9 row: its earlier cclf9 rows are not
    current, in views.sql and in the README's query alike (a resource's latest version is
    taken across bene_xref, cclf8 and cclf9, not table by table)."""
    pytest.importorskip("duckdb", reason="duckdb runs the views")
    patient = json.loads((repo / "sample-data/real/r4/Patient.ndjson").read_text().splitlines()[0])
    first, later, out = tmp_path / "first", tmp_path / "later", tmp_path / "out"
    first.mkdir()
    later.mkdir()
    patient["meta"]["lastUpdated"] = "2026-01-01T00:00:00Z"
    (first / "Patient.ndjson").write_text(json.dumps(patient) + "\n")
    patient["meta"]["lastUpdated"] = "2026-02-01T00:00:00Z"
    patient["identifier"] = [i for i in patient["identifier"] if '"historic"' not in json.dumps(i)]
    (later / "Patient.ndjson").write_text(json.dumps(patient) + "\n")
    cli_load(cli, [first], out, "20260101T000000Z")
    assert readme_current(repo, out, "cclf9").num_rows > 0
    cli_load(cli, [later], out, "20260102T000000Z")
    assert readme_current(repo, out, "cclf9").num_rows == 0
    xref = readme_current(repo, out, "bene_xref")
    assert xref.num_rows > 0 and set(xref.column("_run_id").to_pylist()) == {"20260102T000000Z"}
    check_views(repo, out)


def test_a_run_killed_between_per_resource_tables_is_not_current(spark, cli, repo, tmp_path):
    """A load killed once ``bene_xref``'s partition of its run is in place, ``cclf8``'s and
    ``cclf9``'s not yet: the run is not in ``_claimline_runs.json``, so the README's query,
    ``views.sql`` and Spark's ``current`` keep the previous run's rows of every per-resource
    table, whole (ranked with the killed run, a resource's head was its ``bene_xref`` version
    and ``cclf8`` had no row of it); the next command finishes the run."""
    pytest.importorskip("duckdb", reason="duckdb runs the README's SQL as reference")
    export, out = repo / "sample-data/generated/v2", tmp_path / "out"
    tables = ("bene_xref", "cclf8", "cclf9")
    cli_load(cli, [export], out, "r1")
    before = {t: _rows(readme_current(repo, out, t)) for t in tables}
    assert all(before.values()), before
    env = dict(os.environ, CLAIMLINE_FAULT="parquet.publish@2")
    killed = subprocess.run([str(cli), "load", str(export), "--out", str(out), "--format",
                             "parquet", "--run-id", "r2"], capture_output=True, text=True,
                            env=env)
    assert killed.returncode != 0 and "fault point parquet.publish reached" in killed.stderr
    # The window: `_claimline_counts` and `bene_xref` hold r2, the later tables not yet.
    assert (out / "parquet/bene_xref/run=r2").is_dir()
    assert not (out / "parquet/cclf8/run=r2").exists()
    for t in tables:
        assert _rows(readme_current(repo, out, t)) == before[t], t
        assert _rows(to_arrow(cs.current(spark, out, t))) == before[t], t
    check_views(repo, out)
    # The next command publishes r2 first: its rows are current (the same export, a later run).
    cli_load(cli, [export], out, "r3")
    runs = [r["run_id"] for r in json.loads((out / "parquet/_claimline_runs.json").read_text())]
    assert runs == ["r1", "r2", "r3"], runs
    for t in tables:
        now = readme_current(repo, out, t)
        assert set(now.column("_run_id").to_pylist()) == {"r3"}, t
        assert now.num_rows == sum(before[t].values()), t


def test_a_run_killed_after_its_last_table_is_not_current_until_recorded(spark, cli, repo,
                                                                          tmp_path):
    """A load killed after its last table (``_claimline_claims``) is in place, before the run
    list records it: the README's claim query and Spark's ``current`` keep the previous run's
    rows (they read the new versions while the per-resource tables' rule kept the old run)."""
    pytest.importorskip("duckdb", reason="duckdb runs the README's SQL as reference")
    export, out = repo / "sample-data/generated/v2", tmp_path / "out"
    cli_load(cli, [export], out, "r1")
    tables = ("cclf1", "cclf5", "bene_xref")
    before = {t: _rows(readme_current(repo, out, t)) for t in tables}
    steps = sum(1 for p in (out / "parquet").iterdir() if p.is_dir())
    env = dict(os.environ, CLAIMLINE_FAULT=f"parquet.publish@{steps}")
    killed = subprocess.run([str(cli), "load", str(export), "--out", str(out), "--format",
                             "parquet", "--run-id", "r2"], capture_output=True, text=True,
                            env=env)
    assert killed.returncode != 0 and "fault point parquet.publish reached" in killed.stderr
    assert (out / "parquet/_claimline_claims/run=r2").is_dir()
    for t in tables:
        assert _rows(readme_current(repo, out, t)) == before[t], t
        assert _rows(to_arrow(cs.current(spark, out, t))) == before[t], t


def test_an_export_without_patients_takes_mbis_from_earlier_runs(spark, cli, repo, tmp_path):
    """As a CLI load does: a beneficiary whose Patient is not in this export gets its MBI from
    the bene_xref that earlier runs wrote into the same output folder."""
    src = repo / "sample-data" / "real" / "r4"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(src / "Patient.ndjson", first)
    for f in src.glob("ExplanationOfBenefit*.ndjson"):
        shutil.copy(f, second)
    cli_out, sp_out = tmp_path / "cli", tmp_path / "spark"
    cli_load(cli, [first], cli_out, "20260101T000000Z")
    cli_load(cli, [second], cli_out, "20260102T000000Z")
    cs.load(spark, [first], sp_out, run_id="20260101T000000Z")
    cs.load(spark, [second], sp_out, run_id="20260102T000000Z")
    rep = compare(cli_out, sp_out, "20260102T000000Z")
    assert all(x["rows_equal"] for x in rep.values()), rep
    mbis = [m for t in ("cclf1", "cclf4", "cclf5", "cclf7") for m in pq.read_table(
        sp_out / "parquet" / t / "run=20260102T000000Z").column("BENE_MBI_ID").to_pylist()]
    assert mbis and all(m for m in mbis)


def test_views_hold_tables_without_current_rows(cli, repo, tmp_path):
    """The bundled r4 samples leave cclf5, cclf6, cclf7 and cclfb without a current row (their
    EOBs share one placeholder claim group): each view is there, empty, with its columns."""
    pytest.importorskip("duckdb", reason="duckdb runs the views")
    out = tmp_path / "out"
    cli_load(cli, [repo / "sample-data/real/r4"], out, "20260101T000000Z")
    check_views(repo, out)
    import duckdb
    cwd = os.getcwd()
    os.chdir(out)
    try:
        con = duckdb.connect()
        con.execute((out / "current" / "views.sql").read_text())
        empty = con.sql('SELECT * FROM "cclf5"').to_arrow_table()
        assert empty.num_rows == 0 and "CLM_LINE_HCPCS_CD" in empty.schema.names
    finally:
        os.chdir(cwd)


def test_an_incremental_export_keeps_earlier_coverage_as_the_cli_does(spark, cli,
                                                                      seven_year_export,
                                                                      tmp_path):
    """An incremental export (its request asks ``_since``) that brings a Patient with only its
    Part A Coverage: the cclf8 columns it leaves empty (Part B's) keep the earlier row's values
    in Spark as in a CLI load (found by a review: Spark's tasks took every export as full and
    blanked them)."""
    assert claimline.export_facts([seven_year_export]) == (
        json.loads((seven_year_export / "manifest.json").read_text())["transactionTime"], False)
    patients = (seven_year_export / "Patient.000.ndjson").read_text().splitlines()
    bene = json.loads(patients[0])["id"]
    part_a = [l for l in (seven_year_export / "Coverage.000.ndjson").read_text().splitlines()
              if '"part-a-' in l and f'"Patient/{bene}"' in l]
    assert part_a
    inc = tmp_path / "incremental"
    inc.mkdir()
    (inc / "Patient.000.ndjson").write_text(patients[0] + "\n")
    (inc / "Coverage.000.ndjson").write_text("\n".join(part_a) + "\n")
    (inc / "manifest.json").write_text(json.dumps({
        "transactionTime": "2030-06-01T00:00:00.000Z", "requiresAccessToken": True, "error": [],
        "request": "https://b/api/v2/Group/all/$export?_since=2030-01-01T00:00:00Z",
        "output": [{"type": "Patient", "url": "https://b/data/9/Patient.000.ndjson"},
                   {"type": "Coverage", "url": "https://b/data/9/Coverage.000.ndjson"}]}))
    assert claimline.export_facts([inc]) == ("2030-06-01T00:00:00.000Z", True)
    cli_out, sp_out = tmp_path / "cli", tmp_path / "spark"
    cli_load(cli, [seven_year_export], cli_out, "20300101T000000Z")
    cs.load(spark, [seven_year_export], sp_out, run_id="20300101T000000Z")
    report = cli_load(cli, [inc], cli_out, "20300601T000000Z")
    assert report["beneficiaries"]["coverage_carried"] == 1
    r = cs.load(spark, [inc], sp_out, run_id="20300601T000000Z")
    assert r.beneficiaries["coverage_carried"] == 1
    rep = compare(cli_out, sp_out, "20300601T000000Z")
    assert rep["cclf8"]["rows_equal"], rep["cclf8"]

    def part_b(out, run):
        t = pq.read_table(out / "parquet" / "cclf8" / f"run={run}")
        rows = [r for r in t.to_pylist() if r["_resource_id"] == bene]
        assert len(rows) == 1, rows
        return rows[0]["BENE_PART_B_ENRLMT_BGN_DT"]

    assert part_b(sp_out, "20300601T000000Z") is not None
    assert part_b(sp_out, "20300601T000000Z") == part_b(sp_out, "20300101T000000Z")


def test_beneficiary_counts_are_none_as_the_clis_null_without_a_beneficiary_index(spark, cli,
                                                                                   repo,
                                                                                   tmp_path):
    """Views that give no beneficiary index: the CLI reports ``beneficiaries`` null, Spark None
    (found by a review: an empty dict)."""
    src = repo / "sample-data/real/r4"
    r = subprocess.run([str(cli), "load", str(src), "--out", str(tmp_path / "cli"), "--views",
                        "basic", "--format", "parquet", "--json"],
                       capture_output=True, text=True, check=True)
    assert json.loads(r.stdout)["beneficiaries"] is None
    assert cs.load(spark, [src], tmp_path / "spark", views="basic").beneficiaries is None


def test_files_spark_would_skip_or_misread_are_refused_before_anything_is_touched(spark, repo,
                                                                                  tmp_path):
    """Found by a review: Spark's reader skips names starting with '_' or '.' (hidden files to
    it) and reads an empty .gz as no lines, so the run was committed without their resources,
    where the CLI reads them or refuses the cut gzip; a ':' in a path failed with a JVM error."""
    patients = (repo / "sample-data/real/r4/Patient.ndjson").read_bytes()

    def folder(name, data):
        d = tmp_path / f"in{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        (d / "Patient.ndjson").write_bytes(patients)
        (d / name).write_bytes(data)
        return d

    eobs = (repo / "sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson").read_bytes()
    for name in ("_ExplanationOfBenefit.ndjson", "Explanation:OfBenefit.ndjson"):
        d = folder(name, eobs)
        out = tmp_path / "out"
        with pytest.raises(claimline.UsageError, match="rename it") as err:
            cs.load(spark, [d], out, run_id="R1")
        assert err.value.code == 2 and name in str(err.value)
        assert not out.exists()
    d = folder(".Coverage.ndjson", b"")
    with pytest.raises(claimline.UsageError, match="rename it"):
        cs.load(spark, [d / "Patient.ndjson", d / ".Coverage.ndjson"], tmp_path / "out",
                run_id="R1")
    d = folder("Coverage.ndjson.gz", b"")
    with pytest.raises(claimline.RejectsError, match="truncated_gzip") as err:
        cs.load(spark, [d], tmp_path / "out", run_id="R1")
    assert err.value.code == 4
    assert not (tmp_path / "out").exists()


def synth_export(cli, tmp_path, years, seed):
    """A synthetic v2 export of six beneficiaries in ``tmp_path/export``: its folder, the
    Patients' ids, its EOB file and that file's lines (for a test to change and write back)."""
    src = tmp_path / "export"
    subprocess.run([str(cli), "synth", "--benes", "6", "--years", str(years), "--seed",
                    str(seed), "--out", str(src)], check=True, capture_output=True)
    patients = [json.loads(x)["id"] for x in
                (src / "Patient.000.ndjson").read_text().splitlines() if x]
    eob_file = src / "ExplanationOfBenefit.000.ndjson"
    return src, patients, eob_file, eob_file.read_text().splitlines()


def test_claim_versions_naming_different_beneficiaries_are_refused_not_split(spark, cli,
                                                                             tmp_path):
    """A claim whose newer version names another beneficiary (claims moved to a merged id):
    Spark's tasks hold whole beneficiaries and rank a claim's versions within a task, so both
    heads were kept and the rows depended on the partition count (found by a review). Spark
    refuses such a load, nothing committed; one task (partitions=1) ranks them as the CLI."""
    src, patients, eob_file, lines = synth_export(cli, tmp_path, years=2, seed=5)
    moved = []
    for i, p in enumerate(patients[:-1]):
        line = next(x for x in lines if f'"Patient/{p}"' in x and '"active"' in x)
        eob = json.loads(line)
        eob["id"] += "-moved"
        eob["patient"]["reference"] = f"Patient/{patients[i + 1]}"
        eob["meta"]["lastUpdated"] = "2030-01-01T00:00:00.000+00:00"
        moved.append(json.dumps(eob))
    eob_file.write_text("\n".join(lines + moved) + "\n")
    out = tmp_path / "spark7"
    with pytest.raises(claimline.UsageError, match="naming different beneficiaries"):
        cs.load(spark, [src], out, run_id="R1", partitions=7)
    assert not (out / "parquet" / "_claimline_runs.json").exists()
    assert not os.listdir(out / ".claimline-staging") if (out / ".claimline-staging").exists() \
        else True
    cli_out, one = tmp_path / "cli", tmp_path / "spark1"
    cli_load(cli, [src], cli_out, "R1")
    cs.load(spark, [src], one, run_id="R1", partitions=1)
    rep = compare(cli_out, one, "R1")
    assert all(x["rows_equal"] for x in rep.values()), rep


def claims_join_their_patient(spark, cli, repo, tmp_path, claim, prefix=""):
    """Eight claims made by `claim(eob, k)` (a real carrier EOB to a line of text) beside
    their one Patient, after `prefix`, loaded by the CLI and by Spark in seven tasks (some
    land away from their Patient's if keyed wrong): the same rows, and every MBI resolved."""
    src = repo / "sample-data/real/r4"
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(src / "Patient.ndjson", d)
    eob = json.loads((src / "ExplanationOfBenefit-carrier.ndjson").read_text().splitlines()[0])
    lines = [claim(eob, k) for k in range(8)]
    (d / "ExplanationOfBenefit.ndjson").write_text(prefix + "\n".join(lines) + "\n")
    cli_out, sp_out = tmp_path / "cli", tmp_path / "spark"
    report = cli_load(cli, [d], cli_out, "R1")
    assert report["resources"] == {"ExplanationOfBenefit": 8, "Patient": 1}, report
    cs.load(spark, [d], sp_out, run_id="R1", partitions=7)
    rep = compare(cli_out, sp_out, "R1")
    assert all(x["rows_equal"] for x in rep.values()), rep
    mbis = pq.read_table(sp_out / "parquet" / "cclf5" / "run=R1").column("BENE_MBI_ID")
    assert mbis.to_pylist() and all(mbis.to_pylist())


def test_a_line_nested_past_jacksons_limit_joins_its_patient(spark, cli, repo, tmp_path):
    """A claim nested 1,010 levels deep (under the engine's 1,024, over Jackson's default 1,000):
    Spark's key read it as no JSON, so it went to a task of its own and its MBI came out NULL
    (found by a review). It joins its Patient's task, as the CLI's load joins them."""
    def deep(eob, k):
        eob["id"] = f"deep-{k}"
        return json.dumps(eob)[:-1] + ',"deep":' + '{"a":' * 1010 + "1" + "}" * 1010 + "}"

    claims_join_their_patient(spark, cli, repo, tmp_path, deep)


def test_a_duplicated_patient_member_keys_as_the_engine_reads_it(spark, cli, repo, tmp_path):
    """A claim whose `patient` member is there twice: the engine reads the first, Spark's own
    JSON reader took the last, so the claim went to another task than its Patient and its MBI
    came out NULL (reported by a review). The key is now the engine's own parse of the line."""
    def twice(eob, k):
        eob["id"] = f"twice-{k}"
        # Eight claims of their own (each its own claim group).
        for ident in eob["identifier"]:
            ident["value"] = f"{k}{ident['value']}"
        return json.dumps(eob)[:-1] + f',"patient":{{"reference":"Patient/elsewhere-{k}"}}}}'

    # A byte-order mark before the first line is whitespace to the engine.
    claims_join_their_patient(spark, cli, repo, tmp_path, twice, prefix="\ufeff")


def test_a_file_ending_mid_line_is_rejected_as_the_cli_rejects_it(spark, cli, tmp_path):
    """The last line of a file without a final newline that does not parse is `truncated_line`
    ("the file ends mid-line") in the CLI's rejects; Spark's tasks saw it as any line and said
    `invalid_json` (reported by a review). Plain and gzip alike; a line that does parse, and a
    bad line before the last, keep their kinds."""
    d = tmp_path / "in"
    d.mkdir()
    good = '{"resourceType":"Patient","id":"-1","meta":{"lastUpdated":"2024-01-01T00:00:00Z"}}'
    (d / "Patient.ndjson").write_text(f"{good}\n{{not json\n{good}\n" + '{"resourceType":"Pat')
    with gzip.open(d / "Patient-2.ndjson.gz", "wt") as f:
        f.write(f"{good}\n" + '{"resourceType":"Pat')
    (d / "Patient-3.ndjson").write_text(good)  # no final newline, and whole
    cli_out, sp_out = tmp_path / "cli", tmp_path / "spark"
    cli_load(cli, [d], cli_out, "R1")
    cs.load(spark, [d], sp_out, run_id="R1")

    def kinds(out):
        with open(out / "rejects" / "R1.ndjson") as f:
            rows = [json.loads(line) for line in f]
        return sorted((os.path.basename(r["file"]), r["line"], r["kind"],
                       "ends mid-line" in r.get("message", r.get("error", "")))
                      for r in rows)

    want = [("Patient-2.ndjson.gz", 2, "truncated_line", True),
            ("Patient.ndjson", 2, "invalid_json", False),
            ("Patient.ndjson", 4, "truncated_line", True)]
    assert kinds(cli_out) == want
    assert kinds(sp_out) == want


def test_a_payment_sum_past_its_column_is_null_as_the_clis_never_a_failure(spark, cli,
                                                                           tmp_path):
    """A month's payment sum past PAYMENT_SUM's 18 digits: the CLI makes it NULL and says so;
    Spark's cast of the tasks' total failed the load, its message quoting the sum (found by a
    review), and a task's own NULL sum left the total to the other tasks'. In January six
    beneficiaries' claims (each task's sum within the column) add up past it; in February one
    beneficiary's claims alone do, beside another's one claim."""
    src, patients, eob_file, lines = synth_export(cli, tmp_path, years=1, seed=3)
    template = json.loads(next(x for x in lines if '"payment":' in x))

    def copy(bene, n, month, payment):
        eob = json.loads(json.dumps(template))
        eob["id"] = f"{eob['id']}-{month}-{bene}-{n}"
        eob["patient"]["reference"] = f"Patient/{patients[bene]}"
        for ident in eob.get("identifier", []):
            ident["value"] = f"{ident['value']}{month}{bene:02d}{n:05d}"
        eob["billablePeriod"]["start"] = f"2024-{month}-15"
        eob["payment"]["amount"]["value"] = payment
        return json.dumps(eob)

    big = 9999999999999.99  # the largest CLM_PMT_AMT, under 10^15 cents
    extra = [copy(b, n, "01", big) for b in range(6) for n in range(200)]
    extra += [copy(0, n, "02", big) for n in range(1001)] + [copy(1, 0, "02", 12.5)]
    eob_file.write_text("\n".join(lines + extra) + "\n")
    cli_out, sp_out = tmp_path / "cli", tmp_path / "spark"
    r = subprocess.run([str(cli), "load", str(src), "--out", str(cli_out), "--format", "parquet",
                        "--run-id", "R1"], capture_output=True, text=True, check=True)
    assert r.stderr.count("sum past PAYMENT_SUM's 18 digits") == 2, r.stderr
    with pytest.warns(UserWarning, match="sum past PAYMENT_SUM's 18 digits") as said:
        cs.load(spark, [src], sp_out, run_id="R1", partitions=7)
    texts = sorted(str(w.message) for w in said if "PAYMENT_SUM" in str(w.message))
    # In the CLI's words.
    assert [f"warning: {t}" for t in texts] == sorted(
        x.removeprefix("claimline: ") for x in r.stderr.splitlines() if "PAYMENT_SUM" in x), texts
    assert "2024-01" in texts[0] and "2024-02" in texts[1], texts
    assert not any("9999" in t for t in texts), texts
    rep = compare(cli_out, sp_out, "R1")
    assert rep["_claimline_counts"]["rows_equal"], rep["_claimline_counts"]
    counts = read(files(sp_out, "_claimline_counts", "R1")).to_pylist()
    nulls = sorted((c["SERVICE_MONTH"], c["CLAIMS"]) for c in counts if c["PAYMENT_SUM"] is None)
    assert [m for m, _ in nulls] == ["2024-01", "2024-02"], nulls
    assert nulls[0][1] >= 1200 and nulls[1][1] >= 1002, nulls
