"""The Python package against the CLI: the same rows in every built-in table, typed errors that
name file and line, rejects counted and never dropped."""

import datetime as dt
import decimal
import json
import os
import sqlite3

import pyarrow as pa
import pytest

import claimline

BUILTIN_TABLES = [
    "cclf1", "cclf2", "cclf3", "cclf4", "cclf5", "cclf6", "cclf7", "cclf8", "cclf9", "cclfa",
    "cclfb", "bene_xref", "_claimline_claims", "_claimline_counts",
]


def sqlite_text(value, arrow_type):
    """A value of an Arrow column as SQLite stores it (ARCHITECTURE.md, Types)."""
    if value is None:
        return None
    if pa.types.is_decimal(arrow_type):
        return float(value)
    if pa.types.is_boolean(arrow_type):
        return int(value)
    if pa.types.is_timestamp(arrow_type):
        value = value.astimezone(dt.timezone.utc)
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        if value.microsecond:
            text += ("." + f"{value.microsecond:06d}").rstrip("0")
        return text + "Z"
    if pa.types.is_date32(arrow_type):
        return value.isoformat()
    return value


def arrow_rows(table: pa.Table):
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    types = [f.type for f in table.schema]
    rows = [tuple(sqlite_text(columns[c][r], types[c]) for c in range(len(columns)))
            for r in range(table.num_rows)]
    return sorted(rows, key=repr)


def sqlite_rows(db, table):
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
    return sorted(rows, key=repr)


@pytest.mark.parametrize("sample", ["sample-data/real/r4", "sample-data/real/stu3",
                                    "sample-data/real/v3", "sample-data/generated/v2",
                                    "seven-year"])
def test_read_gives_the_rows_of_the_cli_in_every_table(sample, repo, run_cli, tmp_path,
                                                       seven_year_export):
    source = seven_year_export if sample == "seven-year" else repo / sample
    out = tmp_path / "out"
    run_cli("load", source, "--out", out, "--format", "sqlite", "--run-id", "r1",
            "--all-versions")
    tables = claimline.read(source, run_id="r1", all_versions=True)
    db = out / "claimline.sqlite"
    compared = 0
    for name in BUILTIN_TABLES:
        if name not in tables:
            continue
        assert arrow_rows(tables[name]) == sqlite_rows(db, name), name
        compared += 1
    assert compared >= 10, sorted(tables)
    assert tables["_rejects"].num_rows == 0


def test_read_keeps_the_parquet_types(repo):
    t = claimline.read(repo / "sample-data/real/r4", all_versions=True)["cclf1"]
    assert t.schema.field("CLM_PMT_AMT").type == pa.decimal128(15, 2)
    assert t.schema.field("CLM_FROM_DT").type == pa.date32()
    assert t.schema.field("_last_updated").type == pa.timestamp("us", tz="UTC")
    assert isinstance(t.column("CLM_PMT_AMT").to_pylist()[0], decimal.Decimal)


def test_load_is_the_cli_load(repo, run_cli, tmp_path):
    source = repo / "sample-data/generated/v3"
    py = claimline.load(source, tmp_path / "py", run_id="r1")
    cli = json.loads(run_cli("load", source, "--out", tmp_path / "cli", "--run-id", "r1",
                             "--json").stdout)
    for key in ("tables", "resources", "rejects", "row_errors", "history", "committed"):
        if key == "rejects":
            assert py[key]["count"] == cli[key]["count"]
        elif key == "row_errors":
            assert py[key]["count"] == cli[key]["count"]
            assert py[key]["by_column"] == cli[key]["by_column"]
        else:
            assert py[key] == cli[key], key
    for table in BUILTIN_TABLES:
        assert sqlite_rows(tmp_path / "py" / "claimline.sqlite", table) == \
            sqlite_rows(tmp_path / "cli" / "claimline.sqlite", table), table


def test_errors_are_typed_and_name_file_and_line(tmp_path):
    with pytest.raises(claimline.InputError) as missing:
        claimline.load(tmp_path / "missing.ndjson", tmp_path / "out")
    assert missing.value.code == 3
    assert missing.value.file == str(tmp_path / "missing.ndjson")
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"resourceType":"Patient","id":"p1"}\n{"resourceType" "Patient"}\n')
    with pytest.raises(claimline.RejectsError) as strict:
        claimline.load(bad, tmp_path / "out", strict=True)
    assert strict.value.code == 4
    assert strict.value.file == str(bad)
    assert strict.value.line == 2
    assert "expected `:`" in strict.value.message
    with pytest.raises(claimline.UsageError):
        claimline.load(bad, tmp_path / "out", views="no-such-views")


def test_bad_lines_are_rejects_not_dropped(repo, tmp_path):
    lines = (repo / "sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson").read_bytes()
    n = len(lines.splitlines())
    data = tmp_path / "eob.ndjson"
    data.write_bytes(lines + b'{"resourceType":"ExplanationOfBenefit",\n[1]\n')
    tables, report = claimline.read(data, all_versions=True, with_report=True)
    assert report["rejects"]["count"] == 2
    rejects = tables["_rejects"].to_pylist()
    assert [(r["line"], r["kind"]) for r in rejects] == [(n + 1, "invalid_json"),
                                                         (n + 2, "not_an_object")]
    assert all(r["file"] == str(data) for r in rejects)
    batch, rejected = claimline.evaluate(pa.array(data.read_bytes().splitlines(), pa.binary()),
                                         file=str(data))
    assert rejected.num_rows == 2
    assert batch["cclf5"].num_rows == tables["cclf5"].num_rows


def test_a_damaged_input_is_a_rejects_error_unless_accepted(repo, tmp_path):
    """Found by a review: `load` returned normally with nothing committed, and `read` returned
    no table but `_rejects` (the CLI exits 4)."""
    import gzip
    d = tmp_path / "in"
    d.mkdir()
    text = (repo / "sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson").read_bytes() * 50
    whole = gzip.compress(text)
    cut = d / "ExplanationOfBenefit.ndjson.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    with pytest.raises(claimline.RejectsError) as err:
        claimline.load(d, out, format="sqlite")
    assert err.value.code == 4
    assert err.value.file == str(cut)
    assert "nothing committed" in err.value.message
    assert err.value.report["committed"] is False
    assert not (out / "claimline.sqlite").exists()
    with pytest.raises(claimline.RejectsError):
        claimline.read(d, all_versions=True)
    tables = claimline.read(d, all_versions=True, accept_rejects=True)
    assert tables["cclf5"].num_rows > 0
    report = claimline.load(d, out, format="sqlite", accept_rejects=True)
    assert report["committed"] is True


def test_run_against_the_local_sandbox(repo, tmp_path):
    report = claimline.run(tmp_path / "out", local_sandbox=repo / "sample-data/real/r4")
    assert report["committed"] is True
    assert report["load"]["tables"]["cclf1"] >= 1
    again = claimline.run(tmp_path / "out", local_sandbox=repo / "sample-data/real/r4")
    assert again["since"] == report["transaction_time"]


def numbered_lines(folder):
    """(file, line, text) of every non-blank line of the NDJSON files under ``folder``."""
    import gzip
    out = []
    for path in sorted(folder.rglob("*.ndjson*")):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        for number, text in enumerate(data.split(b"\n"), start=1):
            if text.strip():
                out.append((str(path), number, text))
    return out


@pytest.mark.parametrize("sample", ["sample-data/real/r4", "seven-year"])
def test_read_lines_in_any_order_gives_the_rows_of_read(sample, repo, seven_year_export):
    import random
    source = seven_year_export if sample == "seven-year" else repo / sample
    expected = claimline.read(source, run_id="r1", all_versions=True)
    lines = numbered_lines(source)
    random.Random(7).shuffle(lines)
    files, numbers, texts = zip(*lines)
    got = claimline.read_lines(list(files), list(numbers), list(texts), run_id="r1",
                               all_versions=True)
    for name in BUILTIN_TABLES:
        if name in expected:
            assert got[name].schema == expected[name].schema, name
            assert arrow_rows(got[name]) == arrow_rows(expected[name]), name
    assert got["_rejects"].num_rows == 0


def test_read_lines_rejects_carry_the_original_file_and_line():
    tables = claimline.read_lines(
        ["/exports/a/Patient.000.ndjson", "/exports/a/Patient.000.ndjson"], [12, 40],
        [b'{"resourceType":"Patient","id":"p1"}', b"{not json"])
    rejects = tables["_rejects"].to_pylist()
    assert [(r["file"], r["line"], r["kind"]) for r in rejects] == [
        ("/exports/a/Patient.000.ndjson", 40, "invalid_json")]
    with pytest.raises(claimline.UsageError, match="line 3 is given twice"):
        claimline.read_lines(["f.ndjson", "f.ndjson"], [3, 3], [b"{}", b"{}"])


@pytest.fixture()
def bcda(cli, repo):
    """`claimline sandbox` serving the r4 samples, with the given faults: yields its URL."""
    import subprocess
    procs = []

    def start(*flags):
        p = subprocess.Popen([str(cli), "sandbox", "--data", str(repo / "sample-data/real/r4"),
                              "--polls", "1", *flags],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(p)
        return p.stdout.readline().strip()

    yield start
    for p in procs:
        p.kill()
        p.wait()


def credentials(tmp_path, secret):
    path = tmp_path / "bcda.env"
    path.write_text(f"BCDA_CLIENT_ID=sandbox-client\nBCDA_CLIENT_SECRET={secret}\n")
    path.chmod(0o600)
    return path


def test_read_lines_takes_far_line_numbers_and_refuses_impossible_ones(repo):
    """Found by a review: a line number of 2^62 aborted the interpreter (the lines before it are
    held as empty lines); now past 2^31 it is a UsageError."""
    line = (repo / "sample-data/real/r4/Patient.ndjson").read_bytes().splitlines()[0]
    tables = claimline.read_lines(["f.ndjson"], [10**7], [line])
    assert tables["bene_xref"].column("_line").to_pylist()[0] == 10**7
    with pytest.raises(claimline.UsageError) as err:
        claimline.read_lines(["f.ndjson"], [2**62], [line])
    assert err.value.code == 2
    assert "is past the" in err.value.message


def test_evaluate_and_read_lines_refuse_bad_versions_run_ids_and_times(repo):
    """Found by a review: `evaluate` took api_version "v9" and run_id "", `read_lines` took
    transaction_time "not a time"."""
    line = (repo / "sample-data/real/r4/Patient.ndjson").read_bytes().splitlines()[0]
    for kwargs in ({"api_version": "v9"}, {"run_id": ""}, {"first_line": -1},
                   {"first_line": 2**40}):
        with pytest.raises(claimline.UsageError):
            claimline.evaluate([line], file="f.ndjson", **kwargs)
    with pytest.raises(claimline.UsageError):
        claimline.read_lines(["f.ndjson"], [1], [line], transaction_time="not a time")


def test_threads_past_the_limit_or_negative_are_usage_errors(repo):
    """Found by a review: 100000 threads hung for minutes, -1 raised a bare OverflowError."""
    for bad in (-1, claimline._native.MAX_THREADS + 1, 100000):
        with pytest.raises(claimline.UsageError):
            claimline.read(repo / "sample-data/real/r4", threads=bad)


def test_rayon_num_threads_past_the_limit_is_a_usage_error(repo, monkeypatch):
    """rayon's own RAYON_NUM_THREADS sizes the pools of the default threads: held to the same
    bound, before a pool starts."""
    monkeypatch.setenv("RAYON_NUM_THREADS", "100000")
    with pytest.raises(claimline.UsageError, match="RAYON_NUM_THREADS is 100000"):
        claimline.read(repo / "sample-data/real/r4")
    monkeypatch.setenv("RAYON_NUM_THREADS", "2")
    assert claimline.read(repo / "sample-data/real/r4")["cclf1"].num_rows > 0


def test_bcda_refusals_and_try_later_are_typed(bcda, tmp_path):
    url = bcda()
    with pytest.raises(claimline.BcdaRefusedError) as refused:
        claimline.run(tmp_path / "out1", base_url=url,
                      credentials=credentials(tmp_path, "wrong-secret"))
    assert refused.value.code == 6
    assert "wrong-secret" not in str(refused.value)
    blackout = bcda("--blackout")
    with pytest.raises(claimline.BcdaTryLaterError) as later:
        claimline.run(tmp_path / "out2", base_url=blackout,
                      credentials=credentials(tmp_path, "sandbox-secret"))
    assert later.value.code == 7


def test_evaluate_numbers_lines_from_first_line(repo):
    data = (repo / "sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson").read_bytes()
    lines = [x for x in data.split(b"\n") if x.strip()]
    batches, rejected = claimline.evaluate(lines + [b"{broken"], file="eob.ndjson",
                                           first_line=41)
    assert batches["cclf5"].column("_line").to_pylist()[0] == 41
    assert set(batches["cclf5"].column("_source_file").to_pylist()) == {"eob.ndjson"}
    assert rejected.to_pylist()[0]["line"] == 41 + len(lines)


def test_evaluate_gives_bene_age_as_of_the_transaction_time_else_today(repo):
    """Found by a review: `evaluate` computed BENE_AGE as of 1970-01-01 (NULL for anyone born
    after it, the age then for anyone before). A load computes it as of the export's
    transactionTime, else its own start."""
    patient = json.loads((repo / "sample-data/real/r4/Patient.ndjson").read_bytes().splitlines()[0])
    # CMS's sample Patient died the day it was born (age 0 whenever): alive here.
    patient.pop("deceasedDateTime", None)
    patient.pop("deceasedBoolean", None)
    line = json.dumps(patient).encode()
    dob = dt.date.fromisoformat(patient["birthDate"])

    def age(day):
        return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))

    def bene_age(**kwargs):
        batches, _ = claimline.evaluate([line], file="p.ndjson", **kwargs)
        return batches["cclf8"].column("BENE_AGE").to_pylist()

    assert bene_age(transaction_time="2020-06-15T10:00:00Z") == [
        f"{age(dt.date(2020, 6, 15)):03}"]
    before = dt.datetime.now(dt.timezone.utc).date()
    today = bene_age()
    after = dt.datetime.now(dt.timezone.utc).date()
    assert today in ([f"{age(before):03}"], [f"{age(after):03}"])
    with pytest.raises(claimline.UsageError):
        claimline.evaluate([line], file="p.ndjson", transaction_time="2020-06-15")


def postgres_url():
    """The throwaway server `tests/run` starts, or a skip (a failure under CI)."""
    url = os.environ.get("CLAIMLINE_TEST_POSTGRES_URL")
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: tests/run starts a server")
        pytest.skip("no CLAIMLINE_TEST_POSTGRES_URL (tests/run starts a PostgreSQL server)")
    return url


def test_load_into_postgres_is_the_cli_load(repo, run_cli, tmp_path):
    url = postgres_url()
    source = repo / "sample-data/real/r4"
    py = claimline.load(source, tmp_path / "py", format="parquet,postgres", postgres=url,
                        postgres_schema="py_load", run_id="r1")
    assert py["committed"]
    cli = json.loads(run_cli("load", source, "--out", tmp_path / "cli", "--format", "sqlite",
                             "--run-id", "r1", "--json").stdout)
    assert py["tables"] == cli["tables"]
    assert any("schema py_load" in o for o in py["outputs"])
    assert not any("claimline-test" in o for o in py["outputs"])
    # The same load again: the run replaces its own rows, nothing is doubled.
    again = claimline.load(source, tmp_path / "py", format="parquet,postgres", postgres=url,
                           postgres_schema="py_load", run_id="r1")
    assert again["tables"] == py["tables"]


def test_postgres_refusals_are_typed_without_the_password(repo, tmp_path):
    url = postgres_url()
    wrong = url.replace("claimline-test", "not-the-password")
    with pytest.raises(claimline.RefusedError) as err:
        claimline.load(repo / "sample-data/real/r4", tmp_path / "o", format="postgres",
                       postgres=wrong, postgres_schema="py_refused")
    assert err.value.code == 6
    assert "not-the-password" not in str(err.value)
    with pytest.raises(claimline.UsageError):
        claimline.load(repo / "sample-data/real/r4", tmp_path / "o", format="sqlite,postgres",
                       postgres=url)


def test_beneficiary_keys_are_the_engines_reading_of_each_line():
    """What Spark partitions by: a Patient's id, the Patient a Coverage or an EOB references
    (the first of a duplicated member, as the engine reads it; a byte-order mark skipped),
    None for a line that is no such resource."""
    lines = pa.array([
        b'\xef\xbb\xbf{"resourceType":"Patient","id":"p1"}',
        b'{"resourceType":"Coverage","beneficiary":{"reference":"Patient/p2"}}',
        b'{"resourceType":"ExplanationOfBenefit","patient":{"reference":"Patient/p3"},'
        b'"patient":{"reference":"Patient/p4"}}',
        b'{"resourceType":"ExplanationOfBenefit","patient":{"reference":"https://x/Patient/p5/_history/2"}}',
        b'not json',
        None,
        b'',
        b'{"resourceType":"Claim","patient":{"reference":"Patient/p6"}}',
    ], pa.binary())
    assert claimline._native.beneficiary_keys(lines) == [
        "p1", "p2", "p3", "p5", None, None, None, None]
