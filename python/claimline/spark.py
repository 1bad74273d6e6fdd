"""claimline on Apache Spark: the same Rust engine in every task, Spark doing the reading,
the shuffle and the writing.

    from claimline import spark as cls
    spark = cls.session()                       # or your cluster's SparkSession
    result = cls.load(spark, "exports/2026-11-30", "out")
    cls.current(spark, "out", "cclf1").groupBy("CLM_TYPE_CD").count().show()

The job (:func:`load`):

1. **Files as a load finds them.** :func:`claimline.discover` on the driver: the same files in
   the same order as ``claimline load``, each with what its manifest says (API version,
   resource type), the version its resources agree on, and the export's ``transactionTime``.
2. **Lines, numbered exactly.** ``spark.read.text`` with ``lineSep="\\n"`` (bytes kept as they
   are: no UTF-8 decoding, ``\\r`` kept, blank lines kept), with
   ``spark.sql.files.openCostInBytes`` = ``maxPartitionBytes`` so that every scan partition
   holds exactly one split of one file (checked on the physical plan: :func:`line_layout`).
   A line's number is ``base(split) + (monotonically_increasing_id() & (2**33 - 1)) + 1``: the
   low 33 bits of the id count rows within the task, i.e. within the split. ``base`` is 0 for
   the first split of a file (every ``.gz`` file is one split) and, for later splits of a plain
   file larger than ``maxPartitionBytes``, the lines of the splits before (counted on the
   driver, the default, or by a Spark job). Each row asserts at run time that the split Spark
   read is the one the plan named, so a changed layout fails loudly instead of misnumbering.
3. **Beneficiary key.** The engine parses each line in a task (``mapInArrow`` over
   :func:`claimline._native.beneficiary_keys`): a Patient's ``id``, the Patient a Coverage's
   ``beneficiary`` or an EOB's ``patient`` references (``getReferenceKey(Patient)``); any other
   line keys on its own ``(file, line)``. ``repartition(n, key)`` puts all of a beneficiary's
   lines in one task, ``sortWithinPartitions(file, line)`` restores input order there. This is
   the design choice that gives the CLI's rows: everything the link stage does per beneficiary
   (MBI resolution, CCLF8 from Patient and Coverage, the claim-history rule within the run) runs
   in one task, on all of that beneficiary's resources, with the same Rust code.
4. **The engine, once per job.** ``mapInArrow`` hands each partition's lines to
   :func:`claimline.read_lines` (the ``Loader`` of ``claimline load``, with an in-memory Arrow
   sink; each resource is parsed once there, besides the key's parse) and emits each table's
   batch as Arrow IPC bytes (lz4). That DataFrame is persisted, so the engine runs once per
   partition; each table is then decoded to its Spark schema (Decimal128 -> DECIMAL(p,s), Date32
   -> DATE, Timestamp(us, UTC) -> TIMESTAMP) and written by Spark as Parquet
   (``TIMESTAMP_MICROS``) into a staging folder. ``_claimline_counts`` (counts per claim type
   and month) is summed across tasks.
5. **Commit.** With every table written into the CLI's staging folder
   (``out/.claimline-staging/<run_id>/<table>/``), the run is committed as a CLI load commits
   its own (``sink::commit_staged_run``): ``READY.json``, then each table's folder renamed into
   ``out/parquet/<table>/run=<run_id>`` and the run recorded in ``out/parquet/_claimline_runs.json``
   (a failure after ``READY.json`` is finished by the next command), under the output
   folder's lock (a ``claimline load``/``run``/``reload`` of the same folder
   meanwhile exits 5): the layout, schema and lineage columns of ``claimline load --format
   parquet``, and the README's queries (and :func:`current`) read both alike. The current rows
   of the claim tables are then refreshed in ``out/current/`` as after a CLI load.

Rejected lines come back as a DataFrame (file, line, kind, error: never the line), counted in
the result and the run record; nothing is dropped in silence.

Requirements: pyspark >= 3.5 (tested 4.x and 3.5 on Java 17), pyarrow, pandas (``mapInArrow``
refuses to run without it). Workers must run a Python with ``claimline`` installed (a cluster:
install the wheel on every node; locally :func:`session` sets ``PYSPARK_PYTHON``).
``out`` must be a local or mounted (POSIX) path: the commit is a rename.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import pyarrow as pa

import claimline
from claimline import _native

__all__ = [
    "InputFile",
    "LoadResult",
    "Engine",
    "current",
    "discover",
    "line_layout",
    "load",
    "numbered_lines",
    "keyed_lines",
    "with_keys",
    "session",
    "SQL_CONF",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Rows per index: the low bits of ``monotonically_increasing_id`` (Spark's own layout).
_ROW_BITS = 33
_ROW_MASK = (1 << _ROW_BITS) - 1

#: Session settings the job relies on (runtime SQL settings; :func:`load` sets and restores
#: them). ``openCostInBytes`` equal to ``maxPartitionBytes`` makes every scan partition one split
#: of one file, and the split size independent of the input's total size.
SQL_CONF: Dict[str, str] = {
    "spark.sql.files.maxPartitionBytes": str(128 * 1024 * 1024),
    "spark.sql.files.openCostInBytes": str(128 * 1024 * 1024),
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "2000",
    # `run=20261127T183605.733188Z` stays a string, and so does `run=1`.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}


def session(master: str = "local[2]", app: str = "claimline", driver_memory: str = "4g",
            extra: Optional[Dict[str, str]] = None):
    """A SparkSession set up for :func:`load` (local runs and tests).

    Sets ``PYSPARK_PYTHON`` to this interpreter unless set (workers otherwise start whatever
    ``python3`` is on PATH, without pyarrow/claimline), no UI, no ``_SUCCESS`` files, and
    :data:`SQL_CONF`. ``spark.driver.memory`` only takes effect when this call starts the JVM.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    b = (SparkSession.builder.master(master).appName(app)
         .config("spark.ui.enabled", "false")
         .config("spark.driver.memory", driver_memory)
         .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false"))
    for k, v in {**SQL_CONF, **(extra or {})}.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark

# --------------------------------------------------------------------------------------------
# Inputs: the files `claimline load` reads, as its `discover` finds them


@dataclass(frozen=True)
class InputFile:
    """One input file, as a load finds it."""

    index: int                  #: position in discovery order (the load's file index)
    path: str                   #: as the load names it in `_source_file`
    abspath: str                #: absolute, for Spark
    size: int
    gzip: bool
    api_version: Optional[str]  #: from the folder's manifest
    expected_type: Optional[str]  #: from the folder's manifest
    agreed_version: Optional[str]  #: the version the file's (or folder's) resources agree on


def discover(inputs: Union[PathLike, Iterable[PathLike]]) -> Tuple[List[InputFile],
                                                                     Optional[str], bool]:
    """The input files (:func:`claimline.discover`), the export's ``transactionTime`` and
    whether it is incremental (:func:`claimline.export_facts`).

    Raises :class:`claimline.UsageError` for a file Spark's reader cannot read as the CLI does
    (a name starting with ``_`` or ``.``, which Spark takes for a hidden file and skips, or a
    path holding ``:``), and :class:`claimline.RejectsError` (code 4) for an empty ``.gz``,
    which the CLI refuses as cut and Spark would read as no lines (found by a review: both
    committed runs without those files' resources)."""
    found, transaction_time, incremental = claimline._discover(inputs)
    out: List[InputFile] = []
    seen = set()
    for path, (api, kind, agreed) in found.items():
        ap = os.path.abspath(path)
        if ap in seen:  # a load would read it twice; Spark's file index lists it once
            raise claimline.UsageError(f"{path}: given twice", 2, path)
        seen.add(ap)
        name = os.path.basename(ap)
        if name.startswith(("_", ".")):
            raise claimline.UsageError(
                f"{path}: Spark skips a file whose name starts with '_' or '.' (a hidden file to"
                " it); rename it, or load it with the CLI", 2, path)
        if ":" in ap:
            raise claimline.UsageError(
                f"{path}: Spark cannot read a path holding ':'; rename it, or load it with the"
                " CLI", 2, path)
        size = os.path.getsize(ap)
        gz = path.lower().endswith(".gz")
        if gz and size == 0:
            damaged = claimline.RejectsError(
                f"{path}: damaged (truncated_gzip: an empty gzip file); nothing committed",
                4, path)
            damaged.report = None  # type: ignore[attr-defined]   # as _raise_damaged's
            raise damaged
        out.append(InputFile(len(out), path, ap, size, gz, api, kind, agreed))
    return out, transaction_time, incremental


# --------------------------------------------------------------------------------------------
# Lines with (file, line)


_GLOB = re.compile(r"([\\*?\[\]{}])")


def _spark_path(p: str) -> str:
    """Spark expands globs in load paths; escape the glob characters of a real file name."""
    return _GLOB.sub(r"\\\1", p)


def _text_scan(spark, files: Sequence[InputFile]):
    return (spark.read.format("text").option("lineSep", "\n")
            .load([_spark_path(f.abspath) for f in files]))


def _uri_path(uri: str) -> str:
    from urllib.parse import unquote, urlparse
    return os.path.abspath(unquote(urlparse(uri).path))


@dataclass
class Split:
    partition: int
    file: InputFile
    start: int
    length: int
    uri: str        #: the path as Spark names it (``_metadata.file_path``, ``file:/`` form)


def line_layout(df, files: Sequence[InputFile]) -> List[Split]:
    """The splits of a text scan, by partition index, read off the physical plan; raises
    unless every partition holds exactly one split of one of ``files``."""
    by_path = {f.abspath: f for f in files}
    plan = df._jdf.queryExecution().executedPlan()
    leaves = plan.collectLeaves()
    scans = [leaves.apply(i) for i in range(leaves.size())
             if leaves.apply(i).getClass().getSimpleName() == "FileSourceScanExec"]
    if len(scans) != 1:
        raise RuntimeError(f"expected one file scan in the plan, found {len(scans)}")
    splits: List[Split] = []
    parts = scans[0].inputRDD().partitions()
    for i in range(len(parts)):
        p = parts[i]
        pf = p.files()
        if len(pf) != 1:
            raise RuntimeError(f"scan partition {p.index()} holds {len(pf)} splits; line numbers "
                               "need one (is spark.sql.files.openCostInBytes >= "
                               "maxPartitionBytes, and maxPartitionNum unset?)")
        f = pf[0]
        ap = _uri_path(f.filePath().toString())
        if ap not in by_path:
            raise RuntimeError(f"scan partition {p.index()} reads {ap}, not an input")
        uri = re.sub(r"^file:///", "file:/", f.filePath().toString())
        splits.append(Split(p.index(), by_path[ap], f.start(), f.length(), uri))
    # Every input with bytes is read: a file the scan left out would lose its lines with no word.
    read = {s.file.abspath for s in splits}
    for f in files:
        if f.size > 0 and f.abspath not in read:
            raise RuntimeError(f"Spark's scan does not read {f.path}")
    return splits


def _newlines_before(path: str, offsets: Sequence[int], bufsize: int = 16 << 20
                     ) -> Dict[int, int]:
    """How many ``\\n`` bytes precede each offset of a plain file (one sequential read)."""
    want = sorted(set(offsets))
    out: Dict[int, int] = {}
    n = pos = 0
    with open(path, "rb", buffering=0) as f:
        for off in want:
            while pos < off:
                chunk = f.read(min(bufsize, off - pos))
                if not chunk:
                    break
                n += chunk.count(b"\n")
                pos += len(chunk)
            out[off] = n
    return out


def numbered_lines(spark, files: Sequence[InputFile], count: str = "spark"):
    """DataFrame ``(file_idx int, line long, text binary)``: every line of every file (blank
    lines too), numbered from 1 within its file, bytes exactly as in the file.

    ``count`` says how the first line number of a later split of a plain file is found:
    ``"spark"`` counts the lines of the splits before with a Spark job over those files;
    ``"driver"`` counts newlines in the bytes before the split on the driver (local files
    only): Hadoop's reader gives split ``[s, e)`` the lines that start at an offset in
    ``(s, e]`` (the first split: ``[0, e]``), so ``1 + count(b"\\n" in bytes[0:s])`` lines
    start before it.

    Returns ``(df, info)``; ``info`` says how many splits, and how many needed counting."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    raw = _text_scan(spark, files)
    splits = line_layout(raw, files)
    # The later splits of a split file start at the line count of the splits before.
    by_file: Dict[int, List[Split]] = {}
    for s in splits:
        by_file.setdefault(s.file.index, []).append(s)
    multi = [f for f in files if len(by_file.get(f.index, [])) > 1]
    counts: Dict[Tuple[int, int], int] = {}
    starts: Dict[Tuple[int, int], int] = {}     # (file, split start) -> lines before it
    if multi and count == "driver":
        for f in multi:
            nl = _newlines_before(f.abspath, [s.start for s in by_file[f.index] if s.start])
            for s in by_file[f.index]:
                starts[(f.index, s.start)] = 0 if s.start == 0 else 1 + nl[s.start]
    elif multi:
        craw = _text_scan(spark, multi)
        csplits = {s.partition: s for s in line_layout(craw, multi)}
        for row in craw.groupBy(F.spark_partition_id().alias("p")).count().collect():
            s = csplits[row["p"]]
            counts[(s.file.index, s.start)] = row["count"]
        for s in csplits.values():
            counts.setdefault((s.file.index, s.start), 0)
    meta = []
    for fidx, ss in by_file.items():
        base = 0
        for s in sorted(ss, key=lambda s: s.start):
            if starts:
                base = starts.get((fidx, s.start), 0)
            meta.append((s.partition, fidx, base, s.start, s.uri))
            if len(ss) > 1 and not starts:
                if (fidx, s.start) not in counts:
                    raise RuntimeError("split layout changed between the scans")
                base += counts[(fidx, s.start)]
    mschema = T.StructType([T.StructField("p", T.IntegerType(), False),
                            T.StructField("file_idx", T.IntegerType(), False),
                            T.StructField("base", T.LongType(), False),
                            T.StructField("block_start", T.LongType(), False),
                            T.StructField("uri", T.StringType(), False)])
    mdf = spark.createDataFrame(meta, mschema)
    scanned = raw.select(
        F.col("value").cast("binary").alias("text"),
        F.spark_partition_id().alias("p"),
        F.monotonically_increasing_id().alias("mid"),
        F.col("_metadata.file_block_start").alias("got_start"),
        F.regexp_replace(F.col("_metadata.file_path"), "^file:///", "file:/").alias("got_uri"))
    j = scanned.join(F.broadcast(mdf), "p")
    ok = (F.col("got_start") == F.col("block_start")) & (F.col("got_uri") == F.col("uri"))
    line = F.col("base") + (F.col("mid").bitwiseAND(F.lit(_ROW_MASK))) + F.lit(1)
    out = j.select(
        F.col("file_idx"),
        F.when(ok, line).otherwise(F.raise_error(F.concat(
            F.lit("claimline.spark: partition "), F.col("p").cast("string"),
            F.lit(" read a split the plan did not name")))).cast("long").alias("line"),
        F.col("text"))
    return out, {"splits": len(splits), "split_files": len(multi),
                 "counted_splits": len(counts) or len(starts), "count": count}


def with_keys(lines_df):
    """``lines_df`` (``file_idx``, ``line``, ``text``) with each line's beneficiary key,
    ``key``: ``b:`` and the beneficiary as the engine reads the line
    (:func:`claimline._native.beneficiary_keys`: a Patient's id, the Patient a Coverage or an
    EOB references), else the line's own ``l:<file>:<line>``.

    The line is parsed by the engine itself, in a task, so a line keys as the engine reads it:
    duplicate members (the first counts), nesting, a byte-order mark, a reference with
    ``/_history`` alike (found by reviews: Spark's own JSON reader took the last of a duplicated
    member and stopped at 1,000 levels, and such a claim went to another task than its Patient,
    its MBI NULL)."""
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType(list(lines_df.schema.fields) + [StructField("key", StringType(), False)])
    return lines_df.mapInArrow(_keys_udf, schema)


def _keys_udf(batches):
    for b in batches:
        keys = _native.beneficiary_keys(b.column("text"))
        files = b.column("file_idx").to_pylist()
        lines = b.column("line").to_pylist()
        key = pa.array([f"b:{k}" if k is not None else f"l:{f}:{n}"
                        for k, f, n in zip(keys, files, lines)], pa.string())
        yield pa.RecordBatch.from_arrays(list(b.columns) + [key],
                                         names=list(b.schema.names) + ["key"])


def keyed_lines(lines_df, partitions: int):
    """Lines repartitioned by beneficiary (:func:`with_keys`) and sorted by (file, line) within
    each partition."""
    return (with_keys(lines_df)
            .repartition(partitions, "key")
            .sortWithinPartitions("file_idx", "line")
            .select("file_idx", "line", "text"))

# --------------------------------------------------------------------------------------------
# The engine


REJECTS_SCHEMA = pa.schema([("file", pa.string()), ("line", pa.int64()), ("kind", pa.string()),
                            ("error", pa.string())])

_COUNTS = "_claimline_counts"
_CLAIMS = "_claimline_claims"
_REPORT = "_report"


class Engine:
    """The per-partition engine: :func:`claimline.read_lines` over a task's lines.

    Called with the task's ``(files, lines, texts)`` arrays, it returns one record batch per
    table (the tables of the views, the link stage's, and ``_rejects``) and the load report of
    the task as JSON (rows, resources, rejects and row errors per column, API versions), from
    which the driver builds the run record.
    """

    def __init__(self, views: Union[str, Sequence[str], None] = "cclf", run_id: str = "spark",
                 files: Sequence[InputFile] = (), transaction_time: Optional[str] = None,
                 all_versions: bool = False, include_partial: bool = False,
                 earlier_output: Optional[str] = None, incremental: bool = False) -> None:
        self.views = views
        self.run_id = run_id
        self.files_info = {f.path: (f.api_version, f.expected_type, f.agreed_version)
                           for f in files}
        self.transaction_time = transaction_time
        self.all_versions = all_versions
        self.include_partial = include_partial
        self.earlier_output = earlier_output
        self.incremental = incremental

    def schemas(self) -> Dict[str, pa.Schema]:
        """Every table's Arrow schema (``_rejects`` too), known before any data is read."""
        out, _ = claimline.schemas(self.views, include_partial=self.include_partial)
        out = dict(out)
        out["_rejects"] = REJECTS_SCHEMA
        return out

    def __call__(self, files: pa.Array, lines: pa.Array, texts: pa.Array
                 ) -> Tuple[Dict[str, pa.RecordBatch], str]:
        tables, report = claimline.read_lines(
            files, lines, texts, views=self.views, all_versions=self.all_versions,
            include_partial=self.include_partial, threads=1, run_id=self.run_id,
            files_info=self.files_info, transaction_time=self.transaction_time,
            incremental=self.incremental, earlier_output=self.earlier_output, with_report=True)
        report.pop("rejected", None)
        out: Dict[str, pa.RecordBatch] = {}
        for name, t in tables.items():
            if name == "_rejects":
                t = t.select(REJECTS_SCHEMA.names).cast(REJECTS_SCHEMA)
            t = t.combine_chunks()
            batches = t.to_batches()
            out[name] = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=t.schema)
        return out, json.dumps(report)


# --------------------------------------------------------------------------------------------
# Engine plumbing: mapInArrow -> (table, seq, rows, ipc) -> persisted -> per-table decode

_OUT_DDL = "table string, seq int, rows long, ipc binary"


def _ipc_bytes(batch: pa.RecordBatch, compression: Optional[str]) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    opts = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, batch.schema, options=opts) as w:
        w.write_batch(batch)
    return sink.getvalue()


def _out_row(table: str, seq: int, rows: int, buf: pa.Buffer) -> pa.RecordBatch:
    offsets = pa.array([0, buf.size], pa.int32()).buffers()[1]
    ipc = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, buf])
    return pa.RecordBatch.from_arrays(
        [pa.array([table]), pa.array([seq], pa.int32()), pa.array([rows], pa.int64()), ipc],
        names=["table", "seq", "rows", "ipc"])


def _engine_udf(engine, paths: List[str], counter, max_rows: int, compression: Optional[str]):
    path_arr = pa.array(paths, pa.string())

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        bs = [b for b in batches if b.num_rows]
        if not bs:
            return
        counter.add(1)
        t = pa.Table.from_batches(bs).combine_chunks()
        files = path_arr.take(t.column("file_idx").chunk(0))
        tables, report = engine(files, t.column("line").chunk(0), t.column("text").chunk(0))
        del t, bs
        for name, b in tables.items():
            for seq, start in enumerate(range(0, b.num_rows, max_rows)):
                part = b.slice(start, max_rows)
                yield _out_row(name, seq, part.num_rows, _ipc_bytes(part, compression))
        yield _out_row(_REPORT, 0, 0, pa.py_buffer(report.encode()))

    return run


def _decode_udf(arrow_schema: pa.Schema):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            col = b.column(0)
            for i in range(len(col)):
                buf = col[i].as_buffer()
                for rb in pa.ipc.open_stream(buf):
                    yield pa.RecordBatch.from_arrays(
                        [rb.column(f.name).cast(f.type) for f in arrow_schema],
                        schema=arrow_schema)

    return run


def spark_schema(schema: pa.Schema):
    """The Spark schema of an engine table, and the Arrow schema Spark expects back for it
    (field metadata dropped; timestamps tagged UTC)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from pyspark.sql.types import StructField, StructType

    st = from_arrow_schema(pa.schema([f.remove_metadata() for f in schema]))
    # Column descriptions travel as Spark column comments (Spark readers and catalogs see
    # them; pyarrow does not: Spark keeps them in its own row-metadata JSON).
    st = StructType([StructField(sf.name, sf.dataType, sf.nullable,
                                 {"comment": f.metadata[b"description"].decode()}
                                 if f.metadata and b"description" in f.metadata else {})
                     for sf, f in zip(st.fields, schema)])
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_timestamp(t):
            t = pa.timestamp("us", tz="UTC")
        fields.append(pa.field(f.name, t, nullable=f.nullable))
    return st, pa.schema(fields)


@dataclass
class LoadResult:
    """What :func:`load` did."""

    run_id: str
    tables: Dict[str, int]            #: rows per table
    written: Dict[str, str]           #: table -> its run folder
    rejects: Any                      #: DataFrame (file, line, kind, error)
    reject_count: int
    row_errors: Dict[str, int]        #: per ``table.column``
    resources: Dict[str, int]         #: resources read per type
    engine_calls: int                 #: engine invocations (== non-empty partitions)
    partitions: int
    lines: Dict[str, Any] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    rejects_file: Optional[str] = None  #: ``out/rejects/<run_id>.ndjson``, when any line was
    row_errors_file: Optional[str] = None  #: ``out/rejects/<run_id>-row-errors.ndjson``, if any
    #: The CLI report's ``beneficiaries`` counts that add up across tasks (each beneficiary is in
    #: one): ``with_mbi``, ``coverage_without_patient``, ``patient_without_coverage``,
    #: ``coverage_carried``, ``unresolved_claims``; None, as the CLI's ``null``, when the views
    #: give no beneficiary index. (``known`` counts earlier runs' beneficiaries in every task, so
    #: it has no Spark total.)
    beneficiaries: Optional[Dict[str, int]] = None
    #: v3 EOBs left out of the CCLF tables (``partial``, ``prior_auth``), as the CLI reports them.
    excluded: Dict[str, int] = field(default_factory=dict)


def _set_conf(spark, conf: Dict[str, str]) -> Dict[str, Optional[str]]:
    prev = {}
    for k, v in conf.items():
        prev[k] = spark.conf.get(k, None)
        spark.conf.set(k, v)
    return prev


def _restore_conf(spark, prev: Dict[str, Optional[str]]) -> None:
    for k, v in prev.items():
        if v is None:
            spark.conf.unset(k)
        else:
            spark.conf.set(k, v)


def _summed_counts(tdf):
    """``_claimline_counts`` summed over the tasks (each task counts its beneficiaries).

    A payment sum its column cannot hold is NULL, as a CLI load makes it (never the load's
    failure, whose message would quote the sum): a task's sum past it is NULL already, and then
    so is the total (not the sum of the other tasks'), and so is a total past it of tasks' sums
    each within it."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DecimalType

    keys = ["_run_id", "_api_version", "CLAIM_TYPE", "SERVICE_MONTH"]
    types = dict((f.name, f.dataType) for f in tdf.schema.fields)
    sums = []
    for c in (c for c in tdf.columns if c not in keys):
        t = types[c]
        total = F.sum(c)
        if isinstance(t, DecimalType):
            limit = F.lit(10 ** (t.precision - t.scale)).cast(DecimalType(38, 0))
            fits = (F.count(F.when(F.col(c).isNull(), 1)) == 0) & (F.abs(total) < limit)
            # `when` casts only the totals that fit (no overflow, ANSI mode or not).
            sums.append(F.when(fits, total.cast(t)).alias(c))
        else:
            sums.append(total.cast(t).alias(c))
    return tdf.groupBy(*keys).agg(*sums).select(*tdf.columns)


def _warn_unsummed_payments(rows) -> None:
    """Says each ``_claimline_counts`` row whose payment sum is NULL for being past its column,
    in a CLI load's words (API version, claim type and month: never an amount)."""
    import warnings

    for r in rows:
        warnings.warn(
            f"{_COUNTS}: the payments of {r['_api_version'] or 'unversioned'} "
            f"{r['CLAIM_TYPE']} claims of {r['SERVICE_MONTH']} sum past PAYMENT_SUM's 18 "
            "digits; it is NULL",
            stacklevel=3)


def _utc_now() -> str:
    import datetime as dt
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}Z"


def load(spark, inputs, out: PathLike, *, views: Union[str, Sequence[str], None] = "cclf",
         run_id: Optional[str] = None, all_versions: bool = False,
         include_partial: bool = False, partitions: Optional[int] = None,
         max_rows: int = 65536, ipc_compression: Optional[str] = "lz4",
         target_file_bytes: int = 128 * 1024 * 1024,
         conf: Optional[Dict[str, str]] = None, count: str = "driver",
         engine: Optional[Engine] = None) -> LoadResult:
    """Load NDJSON files or export folders into ``out/parquet/<table>/run=<run_id>/`` on Spark.

    The tables, columns, types and lineage of ``claimline load --format parquet`` (see the
    module's description for how), written by Spark, committed by renames under the output
    folder's lock, and recorded in ``out/parquet/_claimline_runs.json``.

    Args:
        spark: a SparkSession (:func:`session` makes a local one).
        inputs: files (``.ndjson``, ``.ndjson.gz``) or folders, readable by the driver and by
            Spark under the same paths.
        out: the output folder: a local or mounted path (the commit is a rename).
        views, run_id, all_versions, include_partial: as for :func:`claimline.load`.
        partitions: beneficiary partitions (default: one per ~128 MB of NDJSON, gzip counted
            x20, at least the default parallelism). Each task holds its partition's lines and
            rows in memory (about 9x its NDJSON): raise it for large exports.
        count: how later splits of large plain files learn their first line number
            (:func:`numbered_lines`): ``"driver"`` or ``"spark"``.
        conf: session settings over :data:`SQL_CONF` for this load.
        engine: the per-partition engine (default :class:`Engine` over ``views``).

    Returns:
        :class:`LoadResult`: rows per table, the rejects DataFrame, row errors, engine calls.

    Raises:
        claimline.OutputError: another command holds ``out`` (code 5), or the run id is
            already there.
        claimline.ClaimlineError: an input or view error, with ``file`` and ``line``.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    t0 = time.time()
    started = _utc_now()
    out = os.fspath(out)
    run_id = run_id or _native.new_run_id()
    # Checked before anything is touched: it names the staging folder and the partitions (found
    # by a review: an absolute run id made the staging folder that path, which was removed).
    try:
        _native.check_run_id(run_id)
        # The driver's rayon thread count from the environment, as the CLI checks it (the
        # tasks check their own): the refresh of current/ after the commit runs on its pool.
        _native.check_rayon_threads()
    except _native.NativeError as err:
        claimline._raise(err)
    if claimline._native_database_present(out):
        raise claimline.UsageError(
            f"{out} holds claimline.sqlite, which a Spark load does not write: the CLI's next load"
            " would read the MBIs and runs of the database, without this run's (load this export"
            " with the CLI, or give Spark an output of Parquet alone)", 2, out)
    files, transaction_time, incremental = discover(inputs)
    paths = [f.path for f in files]
    # Tasks resolve the MBIs of beneficiaries without a Patient in this export from the
    # bene_xref earlier runs wrote into `out`, and an incremental export's Coverage columns
    # from their cclf8 (as a load into `out` does).
    engine = engine or Engine(views, run_id, files, transaction_time, all_versions,
                              include_partial, os.path.abspath(out), incremental)
    schemas = engine.schemas()
    _, views_hash = claimline.schemas(views, include_partial=include_partial)
    try:
        lock = _native.lock_output(out)
    except _native.NativeError as err:
        claimline._raise(err)
    try:
        # Run ids sort in load order, as `claimline load --run-id` requires (found by a review:
        # an earlier-sorting id was committed, and lost the claim-history rule's ties).
        _native.check_run_order(run_id, _recorded_runs(out), out)
    except _native.NativeError as err:
        lock.release()
        claimline._raise(err)
    final = {t: os.path.join(out, "parquet", t, f"run={run_id}") for t in schemas
             if t != "_rejects"}
    clash = [p for p in final.values() if os.path.exists(p)]
    if clash:
        lock.release()
        raise claimline.OutputError(f"run {run_id} is already in {out}: {clash[0]}", 5,
                                    clash[0])
    # The CLI's staging folder: a run staged there with its READY.json is finished by the
    # next command's recovery, whatever stops this one after it (lock_output recovered any).
    staging = os.path.join(out, ".claimline-staging", run_id)
    if os.path.exists(staging):
        shutil.rmtree(staging)
    # Owner-only from the start: what Spark writes under it is PHI.
    _private_dirs(staging)
    prev = _set_conf(spark, {**SQL_CONF, **(conf or {})})
    sc = spark.sparkContext
    counter = sc.accumulator(0)
    res = None
    try:
        if partitions is None:
            est = sum(f.size * (20 if f.gzip else 1) for f in files)
            partitions = max(sc.defaultParallelism, math.ceil(est / (128 * 1024 * 1024)))
        lines_df, info = numbered_lines(spark, files, count=count)
        keyed = keyed_lines(lines_df, partitions)
        res = keyed.mapInArrow(_engine_udf(engine, paths, counter, max_rows, ipc_compression),
                               _OUT_DDL)
        res = res.persist(StorageLevel.MEMORY_AND_DISK)
        t1 = time.time()
        stats = {r["table"]: (r["rows"], r["bytes"]) for r in
                 res.groupBy("table").agg(F.sum("rows").alias("rows"),
                                          F.sum(F.length("ipc")).alias("bytes")).collect()}
        reports = [json.loads(bytes(r["ipc"]).decode()) for r in
                   res.where(F.col("table") == _REPORT).select("ipc").collect()]
        t2 = time.time()
        written: Dict[str, str] = {}
        rows: Dict[str, int] = {}
        for t, schema in schemas.items():
            if t == "_rejects":
                continue
            st, arrow = spark_schema(schema)
            _, nbytes = stats.get(t, (0, 0))
            df = res.where(F.col("table") == t).select("ipc")
            df = df.coalesce(max(1, math.ceil(nbytes * 4 / target_file_bytes)))
            tdf = df.mapInArrow(_decode_udf(arrow), st)
            if t == _COUNTS:
                tdf = _summed_counts(tdf).coalesce(1)
            dest = os.path.join(staging, t)
            tdf.write.mode("errorifexists").option("compression", "zstd").parquet(dest)
            written[t] = dest
            if t == _COUNTS:
                # Read back once (a row per API version, claim type and month: small). PDE's
                # payments are 0, not NULL: a NULL sum is one past the column.
                counted = spark.read.parquet(dest).collect()
                rows[t] = len(counted)
                _warn_unsummed_payments(r for r in counted if r["PAYMENT_SUM"] is None)
            else:
                rows[t] = int(stats.get(t, (0, 0))[0])
        _refuse_split_claims(spark, written.get(_CLAIMS), all_versions)
        st, arrow = spark_schema(REJECTS_SCHEMA)
        rdf = res.where(F.col("table") == "_rejects").select("ipc").mapInArrow(
            _decode_udf(arrow), st)
        rejects_tbl = (rdf.toArrow() if hasattr(rdf, "toArrow")          # pyspark >= 4.0
                       else pa.Table.from_batches(rdf._collect_as_arrow(), schema=arrow))
        rejects_tbl = _cut_last_lines(files, rejects_tbl)
        t3 = time.time()
        # Every table written: only Parquet parts in each table's folder, owner-only as every
        # output of claimline (found by a review: Spark wrote 0644 parts in 0755 folders).
        for t, dest in written.items():
            for name in os.listdir(dest):
                if name.startswith(".") or name.startswith("_"):   # .crc, _SUCCESS
                    os.remove(os.path.join(dest, name))
            _private_tree(dest)
        # The rejected lines, kept where the CLI keeps them (they were only in the returned
        # DataFrame, gone with the session): file, line, kind and reason, never the line.
        rejects_file = _write_rejects(out, run_id, rejects_tbl)
        # And the row errors, which the tasks' reports carry (found by a review: only their
        # counts per column were kept).
        error_lines = [e for r in reports for e in r.get("row_error_lines", [])]
        row_errors_file = _write_lines(out, f"{run_id}-row-errors.ndjson", error_lines, None)
        resources: Dict[str, int] = {}
        row_errors: Dict[str, int] = {}
        beneficiaries: Optional[Dict[str, int]] = None
        excluded: Dict[str, int] = {}
        versions = set()
        for r in reports:
            for k, v in r.get("resources", {}).items():
                resources[k] = resources.get(k, 0) + v
            for k, v in r.get("row_errors", {}).get("by_column", {}).items():
                row_errors[k] = row_errors.get(k, 0) + v
            if r.get("beneficiaries") is not None:
                beneficiaries = beneficiaries if beneficiaries is not None else {}
                for k, v in r["beneficiaries"].items():
                    if k != "known":
                        beneficiaries[k] = beneficiaries.get(k, 0) + v
            for k, v in (r.get("excluded") or {}).items():
                excluded[k] = excluded.get(k, 0) + v
            versions.update(r.get("api_versions", []))
        record = {
            "run_id": run_id, "started": started, "finished": _utc_now(),
            "inputs": paths, "api_versions": sorted(versions), "views_hash": views_hash,
            "resources": resources, "tables": rows, "rejects": rejects_tbl.num_rows,
            "row_errors": sum(row_errors.values()), "transaction_time": transaction_time,
            "all_versions": all_versions,
        }
        try:
            _native.commit_staged_run(out, json.dumps(record))
            written = dict(final)
            # The materialised current rows (out/current/), as a CLI load refreshes them.
            claim_tables = [t for t, sch in schemas.items()
                            if "_claim_key" in sch.names and not t.startswith("_")]
            _native.refresh_current(out, claim_tables)
        except _native.NativeError as err:
            claimline._raise(err)
        t4 = time.time()
        rejects_df = spark.createDataFrame(rejects_tbl.to_pylist(), st)
        return LoadResult(run_id=run_id, tables=rows, written=written, rejects=rejects_df,
                          rejects_file=rejects_file, row_errors_file=row_errors_file,
                          reject_count=rejects_tbl.num_rows, row_errors=row_errors,
                          resources=resources, beneficiaries=beneficiaries,
                          excluded=excluded, engine_calls=counter.value,
                          partitions=partitions, lines=info,
                          seconds={"plan": t1 - t0, "engine": t2 - t1, "write": t3 - t2,
                                   "commit": t4 - t3, "total": t4 - t0})
    except Exception as err:  # Spark's reader errors come as Py4JJavaError
        _raise_damaged(err)
        raise
    finally:
        if res is not None:
            res.unpersist()
        _restore_conf(spark, prev)
        # A run staged with its READY.json is committed: the next command finishes it.
        if not os.path.exists(os.path.join(staging, "READY.json")):
            shutil.rmtree(staging, ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(staging))   # only when no other run is staged
            except OSError:
                pass
        lock.release()


def _private_dirs(path: str) -> None:
    """Makes ``path`` and its missing parents owner-only folders (0700)."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.exists(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        os.mkdir(d, 0o700)
        os.chmod(d, 0o700)


def _private_tree(path: str) -> None:
    """Folders 0700 and files 0600 under ``path`` (and ``path`` itself)."""
    os.chmod(path, 0o700)
    for root, dirs, names in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for n in names:
            os.chmod(os.path.join(root, n), 0o600)


def _cut_last_lines(files: Sequence[InputFile], rejects: pa.Table) -> pa.Table:
    """``rejects`` with the last line of a file that ends mid-line (no final newline) and does
    not parse told as the CLI tells it: ``truncated_line``, "the file ends mid-line", not
    ``invalid_json``. A task sees such a line as any other (found by a review: the kinds of the
    CLI's and Spark's rejects files differed). Only a file holding an ``invalid_json`` reject
    is read again, to find its last line."""
    rows = rejects.to_pylist()
    by_path = {f.path: f for f in files}
    last: Dict[str, Optional[int]] = {}
    changed = False
    for r in rows:
        f = by_path.get(r["file"])
        if r["kind"] != "invalid_json" or f is None:
            continue
        if f.path not in last:
            last[f.path] = _unterminated_last_line(f)
        if last[f.path] == r["line"]:
            r["kind"] = "truncated_line"
            r["error"] = "the file ends mid-line (no final newline): " + r["error"]
            changed = True
    return pa.Table.from_pylist(rows, schema=rejects.schema) if changed else rejects


def _unterminated_last_line(f: InputFile) -> Optional[int]:
    """The number of a file's last line when its (decompressed) content does not end with a
    newline; ``None`` when it does, or is empty."""
    import gzip

    newlines, tail = 0, b""
    with (gzip.open(f.abspath, "rb") if f.gzip else open(f.abspath, "rb")) as fh:
        while True:
            block = fh.read(1 << 20)
            if not block:
                break
            newlines += block.count(b"\n")
            tail = block[-1:]
    return None if tail in (b"", b"\n") else newlines + 1


def _write_rejects(out: str, run_id: str, rejects: pa.Table) -> Optional[str]:
    """``out/rejects/<run_id>.ndjson`` (owner-only) with one line per rejected line, as the
    CLI's rejects name them; ``None`` (and no file) when there are none."""
    return _write_lines(out, f"{run_id}.ndjson", rejects.to_pylist(),
                        ("file", "line", "kind", "error"))


def _write_lines(out: str, name: str, rows: List[Dict[str, Any]],
                 keys: Optional[Sequence[str]]) -> Optional[str]:
    """``out/rejects/<name>`` (owner-only): one JSON line per row (its ``keys``, else all), in
    file and line order; ``None`` (and no file) when there are none."""
    if not rows:
        return None
    folder = os.path.join(out, "rejects")
    _private_dirs(folder)
    path = os.path.join(folder, name)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    rows = sorted(rows, key=lambda r: (r.get("file") or "", r.get("line") or 0))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: r.get(k) for k in keys} if keys else r) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return path


_DAMAGE = re.compile(r"EOFException|ZipException|Unexpected end of (?:ZLIB )?input stream|"
                     r"Not in GZIP format|invalid (?:stored )?block|incorrect header check|"
                     r"Compressed file ended before the end-of-stream marker|"
                     r"gzip stream CRC failure|not a gzip file|invalid (?:distance|code)")
_READ_FILE = re.compile(r"reading file (\S+?)\.?(?:\s|$)")


def _refuse_split_claims(spark, claims_dir: Optional[str], all_versions: bool) -> None:
    """Refuses a load whose claim groups have versions in more than one task: the versions of
    a claim name different beneficiaries (a beneficiary's claims moved to another id), and each
    task, holding whole beneficiaries, applied the claim-history rule to its own versions only,
    so both heads would be kept (found by a review: the rows then depended on the partition
    count, and ``current/`` could keep a superseded version). A task records one head per group,
    so a group recorded twice in ``_claimline_claims`` is such a group."""
    if claims_dir is None:
        return
    from pyspark.sql import functions as F

    keys = ["_api_version", "_claim_key"] + (["_resource_id"] if all_versions else [])
    split = (spark.read.parquet(claims_dir).where(F.col("_action") == "version")
             .groupBy(*keys).count().where(F.col("count") > 1).count())
    if split:
        raise claimline.UsageError(
            f"{split} claim group(s) have versions naming different beneficiaries, which Spark's"
            " tasks (one per set of beneficiaries) cannot rank against each other; nothing"
            " committed: load this export with the CLI (claimline load), or with partitions=1",
            2, None)


def _raise_damaged(err: Exception) -> None:
    """A Spark job that stopped on a damaged gzip input, as the CLI's exit 4: a
    :class:`claimline.RejectsError` naming the file when Spark's message does (found by a
    review: the caller got ten kilobytes of JVM stack). Nothing was committed."""
    text = str(err)
    if not _DAMAGE.search(text):
        return
    found = _READ_FILE.search(text)
    file = _uri_path(found.group(1)) if found else None
    kind = _DAMAGE.search(text).group(0)
    damaged = claimline.RejectsError(
        f"{file or 'a gzip input'}: damaged (Spark's reader stopped: {kind}); nothing committed",
        4, file)
    damaged.report = None  # type: ignore[attr-defined]   # as claimline.load's: none here
    raise damaged from None


# --------------------------------------------------------------------------------------------
# Current rows (README: "Query the result", the Parquet current-rows query)


def _read_table(spark, out: str, table: str):
    base = os.path.join(out, "parquet", table)
    return (spark.read.option("basePath", base)
            .option("pathGlobFilter", "part-*.parquet")
            .parquet(os.path.join(_spark_path(base), "run=*")))


def _recorded_runs(out: str) -> List[str]:
    """The run ids ``out/parquet/_claimline_runs.json`` records (none when it is absent)."""
    path = os.path.join(out, "parquet", "_claimline_runs.json")
    try:
        with open(path, "rb") as f:
            runs = json.load(f)
        return [r["run_id"] for r in runs]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path}: not a claimline run list ({type(e).__name__})") from None


def current(spark, out: PathLike, table: str, all_versions: bool = False):
    """The current rows of ``table`` across the runs in ``out/parquet`` (the README's query).

    Only the runs ``out/parquet/_claimline_runs.json`` records count: a run is recorded once all
    its partitions are in place. Claim tables (with ``_claim_key``): per ``(_api_version, _claim_key)`` the head is the
    ``version`` event of ``_claimline_claims`` with the latest ``_last_updated`` (NULLs last),
    then the latest ``_run_id``; no rows when a ``cancel`` event names that very version.
    ``all_versions`` partitions the heads by ``_resource_id`` too. Other tables (a row set per
    resource: ``bene_xref``, ``cclf8``, ``cclf9``, …): a resource's current version is, per
    ``(_api_version, _resource_id)``, its latest across all of them (``_last_updated``, then
    ``_run_id``: ``rank() = 1``), and the table's rows of that version (none when it gave the
    table no row). The result has the table's columns and the ``run`` partition column (DuckDB's
    ``t.*`` with ``hive_partitioning``)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    prev = _set_conf(spark, {"spark.sql.sources.partitionColumnTypeInference.enabled": "false"})
    try:
        out = os.fspath(out)
        t = _read_table(spark, out, table)
        if "_claim_key" not in t.columns:
            lineage = ["_api_version", "_resource_id", "_last_updated", "_run_id"]
            versions = None
            root = os.path.join(out, "parquet")
            for name in sorted(os.listdir(root)):
                if name.startswith(("_", ".")) or not os.path.isdir(os.path.join(root, name)):
                    continue
                other = _read_table(spark, out, name)
                if "_claim_key" in other.columns:
                    continue
                other = other.select(*lineage)
                versions = other if versions is None else versions.unionByName(other)
            # Only the runs the run list records: a run is recorded once all its partitions
            # are in place (a process killed between two tables' renames leaves the previous
            # runs current until the next command finishes the run).
            versions = versions.where(F.col("_run_id").isin(_recorded_runs(out)))
            w = Window.partitionBy("_api_version", "_resource_id").orderBy(
                F.col("_last_updated").desc_nulls_last(), F.col("_run_id").desc())
            heads = (versions.withColumn("_rk", F.rank().over(w)).where("_rk = 1")
                     .select("_api_version", "_resource_id", "_run_id").distinct().alias("h"))
            r = t.alias("r")
            on = (F.col("r._api_version").eqNullSafe(F.col("h._api_version"))
                  & (F.col("r._resource_id") == F.col("h._resource_id"))
                  & (F.col("r._run_id") == F.col("h._run_id")))
            return r.join(heads, on, "left_semi").select(*t.columns)
        events = _read_table(spark, out, _CLAIMS)
        # The recorded runs only, as for the other tables.
        events = events.where(F.col("_run_id").isin(_recorded_runs(out)))
        part = ["_api_version", "_claim_key"] + (["_resource_id"] if all_versions else [])
        w = Window.partitionBy(*part).orderBy(F.col("_last_updated").desc_nulls_last(),
                                              F.col("_run_id").desc())
        heads = (events.where(F.col("_action") == "version")
                 .select("_api_version", "_claim_key", "_resource_id", "_run_id",
                         F.row_number().over(w).alias("_rn"))
                 .where("_rn = 1").drop("_rn"))
        c = events.where(F.col("_action") == "cancel").alias("c")
        h = heads.alias("h")
        cur = h.join(c, (F.col("c._api_version") == F.col("h._api_version"))
                     & (F.col("c._claim_key") == F.col("h._claim_key"))
                     & (F.col("c._resource_id") == F.col("h._resource_id")), "left_anti")
        keys = ["_api_version", "_claim_key", "_resource_id", "_run_id"]
        # JOIN ... USING: SQL equality, so a NULL key matches nothing (as in DuckDB).
        return t.join(cur.select(*keys), keys, "inner").select(*t.columns)
    finally:
        _restore_conf(spark, prev)

