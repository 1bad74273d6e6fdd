"""claimline from Python: the same Rust engine as the ``claimline`` command.

- :func:`load` loads NDJSON files (BCDA exports, plain or gzip) into an output folder's SQLite
  and Parquet tables, exactly as ``claimline load`` does, and returns its report.
- :func:`run` is the scheduled job (``claimline run``): fetch from BCDA (or the local sandbox),
  load, commit ``_since``.
- :func:`read` returns every table in memory as ``pyarrow.Table`` (the Parquet files' types:
  Decimal128, Date32, Timestamp UTC); pandas and polars users call ``.to_pandas()`` or
  ``polars.from_arrow``.
- :func:`evaluate` runs the views over a batch of NDJSON lines (the building block engines use,
  as :mod:`claimline.spark` does).

Failures raise :class:`ClaimlineError` subclasses carrying ``code`` (the CLI's exit code for the
same failure), ``file`` and ``line`` where the failure is.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import pyarrow as pa

from . import _native

__all__ = [
    "ClaimlineError",
    "UsageError",
    "InputError",
    "RejectsError",
    "OutputError",
    "BcdaRefusedError",
    "BcdaTryLaterError",
    "load",
    "run",
    "read",
    "read_lines",
    "discover",
    "export_facts",
    "schemas",
    "evaluate",
]

PathLike = Union[str, "os.PathLike[str]"]


class ClaimlineError(Exception):
    """A failure of the pipeline.

    Attributes:
        code: the exit code ``claimline`` gives the same failure (ARCHITECTURE.md).
        message: what happened, in one line (never a resource, an MBI or a secret).
        file: the file it is about, or None.
        line: the input line it is about, or None.
    """

    code = 1

    def __init__(self, message: str, code: int = 1, file: Optional[str] = None,
                 line: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.file = file
        self.line = line


class UsageError(ClaimlineError):
    """The call cannot be done as asked: an invalid view, a bad argument (code 2)."""


class InputError(ClaimlineError):
    """An input cannot be read (code 3)."""


class RejectsError(ClaimlineError):
    """Rejected lines under ``strict``, or a damaged input file (code 4)."""


class OutputError(ClaimlineError):
    """The output could not be written, is in use, or a state file of it is damaged (code 5)."""


class BcdaRefusedError(ClaimlineError):
    """A server refused the credentials or access: BCDA, or a PostgreSQL output (code 6)."""


#: The same class under a name that fits a PostgreSQL refusal too.
RefusedError = BcdaRefusedError


class BcdaTryLaterError(ClaimlineError):
    """BCDA says try later: blackout, attribution not ready, job failed or expired (code 7)."""


_BY_CODE = {
    2: UsageError,
    3: InputError,
    4: RejectsError,
    5: OutputError,
    6: BcdaRefusedError,
    7: BcdaTryLaterError,
}


def _raise(err: "_native.NativeError") -> None:
    code, message, file, line = err.args
    raise _BY_CODE.get(code, ClaimlineError)(message, code, file, line) from None


def _threads(threads: int) -> int:
    """``threads`` checked as ``--threads`` is: 0 (one per core) to ``MAX_THREADS``."""
    most = _native.MAX_THREADS
    if not isinstance(threads, int) or not 0 <= threads <= most:
        raise UsageError(f"threads must be 0 (one per core) to {most}, not {threads!r}", 2)
    return threads


def _paths(inputs: Union[PathLike, Iterable[PathLike]]) -> List[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(p) for p in inputs]


def _native_database_present(out: PathLike) -> bool:
    """``out`` holds a SQLite database (``claimline.sqlite``), a link or file of any kind."""
    return os.path.lexists(os.path.join(os.fspath(out), "claimline.sqlite"))


def _views(views: Union[str, Sequence[str], None]) -> List[str]:
    if views is None:
        return []
    if isinstance(views, (str, os.PathLike)):
        return [os.fspath(views)]
    return [os.fspath(v) for v in views]


def load(inputs: Union[PathLike, Iterable[PathLike]], out: PathLike, *,
         views: Union[str, Sequence[str], None] = "cclf", format: str = "both",
         strict: bool = False, run_id: Optional[str] = None, threads: int = 0,
         include_partial: bool = False, all_versions: bool = False,
         accept_rejects: bool = False, postgres: Optional[str] = None,
         postgres_schema: str = "claimline") -> Dict[str, Any]:
    """Load NDJSON files or export folders into the output folder ``out``.

    The same job as ``claimline load``: one pass through the views (``"cclf"``, ``"basic"``, or
    ViewDefinition files and folders), MBIs resolved, the claim-history rule applied, and one
    atomic commit to SQLite (``out/claimline.sqlite``) and/or Parquet (``out/parquet/``).

    Args:
        inputs: files (``.ndjson``, ``.ndjson.gz``) or folders.
        out: the output folder.
        views: a built-in set or view files and folders.
        format: ``"sqlite"``, ``"parquet"``, ``"postgres"``, ``"both"`` (SQLite and Parquet) or
            a list such as ``"parquet,postgres"``.
        strict: commit nothing if any line is rejected or any value does not fit its column.
        run_id: the run id (default: the start time).
        threads: worker threads (0: one per core, and one scan worker more when ``format`` writes
            SQLite or PostgreSQL).
        include_partial: keep v3 partially adjudicated and prior-authorization EOBs.
        all_versions: keep every version of a v1/v2 claim.
        accept_rejects: commit what could be read of a damaged input file.
        postgres: the PostgreSQL URL of the ``postgres`` format (default: the environment's
            ``CLAIMLINE_POSTGRES_URL``); never shown with its password.
        postgres_schema: the PostgreSQL schema of the tables.

    Returns:
        The report ``claimline load --json`` prints (a dict): ``tables``, ``rejects``,
        ``row_errors``, ``committed``, ``damaged``, …

    Raises:
        ClaimlineError: a subclass by the failure's code, with ``file`` and ``line``.
    """
    try:
        text = _native.load(_paths(inputs), os.fspath(out), _views(views), format, strict,
                            run_id, _threads(threads), include_partial, all_versions, accept_rejects,
                            postgres, postgres_schema)
    except _native.NativeError as err:
        _raise(err)
    report = json.loads(text)
    _check_committed(report)
    return report


def _check_committed(report: Dict[str, Any], done: str = "committed") -> None:
    """A load that committed nothing, as ``claimline load`` exits 4: :class:`RejectsError`,
    naming the first damaged file (its ``report`` attribute holds the whole report)."""
    if report.get("committed", True):
        return
    damaged = report.get("damaged") or []
    if damaged:
        first = damaged[0]
        # A corrupt stream's lines are never kept; accept_rejects keeps what a cut file gave.
        hint = ("" if any(not d.get("read_is_trusted", True) for d in damaged)
                else " (accept_rejects=True keeps what could be read)")
        err = RejectsError(f"{first.get('message', 'a damaged input file')}; nothing {done}"
                           f"{hint}", 4, first.get("file"))
    else:
        err = RejectsError(f"nothing {done}: rejected lines or row errors under strict", 4)
    err.report = report  # type: ignore[attr-defined]
    raise err


def run(out: PathLike, *, local_sandbox: Optional[PathLike] = None,
        base_url: Optional[str] = None, api: str = "v2", endpoint: str = "group/all",
        types: Sequence[str] = (), since: Optional[str] = None,
        views: Union[str, Sequence[str], None] = None, keep: Optional[int] = None,
        accept_rejects: bool = False, credentials: Optional[PathLike] = None) -> Dict[str, Any]:
    """Run the scheduled job into the output folder ``out`` (``claimline run``).

    Fetches a BCDA export (resuming one a failed attempt left), loads it, and commits its
    ``transactionTime`` as the next ``_since`` of the scope. Give ``local_sandbox`` (a folder of
    NDJSON, e.g. ``sample-data/real/r4``) to run against the embedded BCDA sandbox, or
    ``base_url`` with credentials in ``BCDA_CLIENT_ID``/``BCDA_CLIENT_SECRET`` or the file
    ``credentials``.

    Returns:
        The report ``claimline run --json`` prints (a dict); ``committed`` says whether the
        ``_since`` advanced and ``not_committed`` why not.
    """
    if (local_sandbox is None) == (base_url is None):
        raise UsageError("give exactly one of local_sandbox and base_url", 2)
    source = ("local:" + os.fspath(local_sandbox)) if local_sandbox is not None else base_url
    try:
        text = _native.run(os.fspath(out), source, api, endpoint, list(types), since,
                           _views(views), keep, accept_rejects,
                           os.fspath(credentials) if credentials is not None else None)
    except _native.NativeError as err:
        _raise(err)
    return json.loads(text)


def read(inputs: Union[PathLike, Iterable[PathLike]], *,
         views: Union[str, Sequence[str], None] = "cclf", all_versions: bool = False,
         include_partial: bool = False, threads: int = 0, run_id: Optional[str] = None,
         with_report: bool = False, accept_rejects: bool = False
         ) -> Union[Dict[str, pa.Table],
                                             Tuple[Dict[str, pa.Table], Dict[str, Any]]]:
    """Every table of the views over ``inputs``, in memory, as ``pyarrow.Table``.

    The same rows and types as the Parquet files ``load`` writes (Decimal128, Date32,
    Timestamp UTC, the lineage columns), with nothing written to disk but a scratch folder for
    the load's bookkeeping. Rejected lines are never dropped silently: the table
    ``"_rejects"`` lists them (file, line, offset, kind, error; not their content).

    Args:
        views, all_versions, include_partial, threads, run_id: as for :func:`load`.
        with_report: also return the load report (a dict, as :func:`load` returns).
        accept_rejects: keep what could be read of a damaged input file.

    Raises:
        RejectsError: a damaged input file (code 4; ``accept_rejects`` keeps what was read).
    """
    try:
        batches, report_text = _native.read(_paths(inputs), _views(views), all_versions,
                                            include_partial, _threads(threads), run_id, accept_rejects)
    except _native.NativeError as err:
        _raise(err)
    _check_committed(json.loads(report_text), "kept")
    return _tables(batches, report_text, with_report)


def read_lines(files: Union[pa.Array, Sequence[str]], lines: Union[pa.Array, Sequence[int]],
               texts: Union[pa.Array, Sequence[bytes]], *,
               views: Union[str, Sequence[str], None] = "cclf", all_versions: bool = False,
               include_partial: bool = False, threads: int = 1, run_id: Optional[str] = None,
               files_info: Optional[Dict[str, Tuple[Optional[str], Optional[str],
                                                    Optional[str]]]] = None,
               transaction_time: Optional[str] = None, incremental: bool = False,
               earlier_output: Optional[PathLike] = None,
               with_report: bool = False) -> Union[Dict[str, pa.Table],
                                                   Tuple[Dict[str, pa.Table], Dict[str, Any]]]:
    """:func:`read` over NDJSON lines held in memory instead of files.

    ``texts[i]`` is line ``lines[i]`` (1-based) of the file named ``files[i]`` (equal-length
    sequences or pyarrow arrays: string, int64, and string or binary). The lines of each file
    are loaded as that file, each at its own line number, so rows and rejects carry the
    original ``_source_file`` and ``_line``: given every line of some beneficiaries (their
    Patient, Coverage and claims, from any files), the tables are the rows ``claimline load``
    writes for those beneficiaries. This is what :mod:`claimline.spark` runs in each task.

    Args:
        views, all_versions, include_partial, run_id, with_report: as for :func:`read`.
        threads: worker threads (default 1: an engine's task holds one core).
        files_info: per file name, what :func:`discover` found on the driver: (API version
            from the manifest, resource type from the manifest, version the file agrees on).
        transaction_time: the export's ``transactionTime`` (``BENE_AGE`` is computed at it).
        incremental: the export is incremental (its manifest's request asks ``_since``;
            :func:`export_facts` tells): a Patient's ``cclf8`` row keeps the earlier row's
            value of each Coverage column its lines leave empty, as a load does.
        earlier_output: an output folder whose Parquet ``bene_xref`` resolves the MBIs of
            beneficiaries whose Patient is not among the lines, and whose ``cclf8`` gives the
            earlier rows (as a load into it would).
    """
    def array(values: Any, type_: pa.DataType) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            return values.combine_chunks()
        return values if isinstance(values, pa.Array) else pa.array(values, type_)

    try:
        batches, report_text = _native.read_lines(
            array(files, pa.string()), array(lines, pa.int64()), array(texts, pa.binary()),
            _views(views), all_versions, include_partial, _threads(threads), run_id,
            dict(files_info or {}), transaction_time, bool(incremental),
            os.fspath(earlier_output) if earlier_output is not None else None)
    except _native.NativeError as err:
        _raise(err)
    return _tables(batches, report_text, with_report)


def discover(inputs: Union[PathLike, Iterable[PathLike]]) -> Tuple[
        Dict[str, Tuple[Optional[str], Optional[str], Optional[str]]], Optional[str]]:
    """The NDJSON files under ``inputs`` as a load finds them, for an engine that reads them.

    Returns:
        Per file path (in load order): (API version its manifest gives, resource type its
        manifest gives, version its resources agree on), to pass to :func:`read_lines` as
        ``files_info``; and the manifest's ``transactionTime`` (or None).
    """
    files, transaction_time, _ = _discover(inputs)
    return files, transaction_time


def export_facts(inputs: Union[PathLike, Iterable[PathLike]]) -> Tuple[Optional[str], bool]:
    """What the manifest beside ``inputs`` says of the export, as a load reads it: its
    ``transactionTime`` (or None) and whether the export is incremental (its request asks
    ``_since``), to pass to :func:`read_lines` as ``transaction_time`` and ``incremental``."""
    _, transaction_time, incremental = _discover(inputs)
    return transaction_time, incremental


def _discover(inputs: Union[PathLike, Iterable[PathLike]]) -> Tuple[
        Dict[str, Tuple[Optional[str], Optional[str], Optional[str]]], Optional[str], bool]:
    try:
        files, transaction_time, incremental = _native.discover(_paths(inputs))
    except _native.NativeError as err:
        _raise(err)
    return ({path: (api, kind, agreed) for path, api, kind, agreed in files}, transaction_time,
            incremental)


def schemas(views: Union[str, Sequence[str], None] = "cclf", *,
            include_partial: bool = False) -> Tuple[Dict[str, pa.Schema], str]:
    """Every table a load through ``views`` writes, with the Arrow schema of its Parquet files
    (the link stage's tables included), before any data is read; and the views' hash."""
    try:
        return _native.tables(_views(views), include_partial)
    except _native.NativeError as err:
        _raise(err)


def _tables(batches: Dict[str, List[pa.RecordBatch]], report_text: str, with_report: bool
            ) -> Union[Dict[str, pa.Table], Tuple[Dict[str, pa.Table], Dict[str, Any]]]:
    """The native read's batches as tables, with ``_rejects`` from its report."""
    tables: Dict[str, pa.Table] = {}
    for name, parts in batches.items():
        tables[name] = pa.Table.from_batches(parts) if parts else pa.table({})
    report = json.loads(report_text)
    tables["_rejects"] = _rejects_table(report.get("rejected", []))
    return (tables, report) if with_report else tables


_REJECTS_SCHEMA = pa.schema([
    ("file", pa.string()),
    ("line", pa.int64()),
    ("offset", pa.int64()),
    ("kind", pa.string()),
    ("error", pa.string()),
])


def _rejects_table(rows: List[Dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{k: r.get(k) for k in _REJECTS_SCHEMA.names} for r in rows], schema=_REJECTS_SCHEMA)


def evaluate(lines: Union[pa.Array, pa.ChunkedArray, Sequence[bytes]], *, file: str,
             first_line: int = 1, views: Union[str, Sequence[str], None] = "cclf",
             run_id: str = "batch", api_version: Optional[str] = None,
             transaction_time: Optional[str] = None
             ) -> Tuple[Dict[str, pa.RecordBatch], pa.Table]:
    """Evaluate the views over a batch of NDJSON lines held in memory.

    ``lines`` (a pyarrow string or binary array, or a list of bytes) came from ``file``, the
    first at line ``first_line``: rows carry them as ``_source_file`` and ``_line``. MBIs are
    resolved and CCLF8 joined from the Patients and Coverage of the same batch; every claim
    version's rows are returned (``_claim_key``, ``_last_updated``, ``_status`` carry what the
    claim-history rule reads). ``BENE_AGE`` is computed as of ``transaction_time`` (the
    export's ``transactionTime``, an instant with an offset: the date it gives), else as of the
    call's UTC date, as a load computes it.

    Returns:
        One record batch per table, and a table of the rejected lines (file, line, kind, error).
    """
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    try:
        if not isinstance(first_line, int) or not 1 <= first_line <= _native.MAX_LINE:
            raise UsageError(f"first_line is a line number (1 to {_native.MAX_LINE}), not "
                             f"{first_line!r}", 2)
        batches, rejected = _native.evaluate(lines, file, first_line, _views(views), run_id,
                                             api_version, transaction_time)
    except _native.NativeError as err:
        _raise(err)
    rejects = pa.Table.from_pylist(rejected, schema=pa.schema([
        ("file", pa.string()), ("line", pa.int64()), ("kind", pa.string()),
        ("error", pa.string())]))
    return batches, rejects
