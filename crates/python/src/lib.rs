//! The native module of the `claimline` Python package (`claimline._native`): the load, run
//! and read jobs of the Rust pipeline, and the view engine over a batch of NDJSON lines, with
//! zero-copy Arrow results for pyarrow. The Python layer (`python/claimline/`) wraps these
//! functions with keyword arguments, docstrings, type stubs and typed exceptions; this module
//! stays a thin layer over `claimline-load` and `claimline-run`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, BinaryArray, LargeBinaryArray, LargeStringArray, StringArray};
use arrow_pyarrow::{FromPyArrow, ToPyArrow};
use claimline_link::{BeneIndex, Plan, Scratch, patient_mbi};
use claimline_load::{ArrowOutput, Format, InputFile, Loader, NoProgress, views};
use claimline_ndjson::ApiVersion;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

create_exception!(
    _native,
    NativeError,
    PyException,
    "A failure of the pipeline: args are (code, message, file, line); the Python layer raises \
     the typed exception of its code."
);

/// The error as `NativeError(code, message, file, line)`: the code is the CLI's exit code for
/// the same failure (ARCHITECTURE.md), the file and line where it is (or None).
fn native_error(err: &(dyn std::error::Error + 'static)) -> PyErr {
    NativeError::new_err((
        claimline_run::failure::exit_code(err),
        claimline_run::failure::message(err),
        claimline_run::failure::file(err).map(|p| p.display().to_string()),
        claimline_run::failure::line(err),
    ))
}

fn usage(message: String) -> PyErr {
    NativeError::new_err((2u8, message, None::<String>, None::<u64>))
}

/// `check_rayon_threads()`: rayon's thread count from the environment within
/// [`claimline_ndjson::MAX_THREADS`], as the CLI checks it (a usage error), for a driver
/// (Spark's) to check before it starts anything.
#[pyfunction]
fn check_rayon_threads() -> PyResult<()> {
    rayon_threads()
}

/// rayon's thread count from the environment within [`claimline_ndjson::MAX_THREADS`]
/// ([`claimline_ndjson::rayon_threads_refused`]), before an engine call starts a pool.
fn rayon_threads() -> PyResult<()> {
    match claimline_ndjson::rayon_threads_refused() {
        Some(why) => Err(usage(why)),
        None => Ok(()),
    }
}

fn format_of(name: &str) -> PyResult<Format> {
    name.parse().map_err(usage)
}

/// `load(inputs, out, views, format, strict, run_id, threads, include_partial, all_versions,
/// accept_rejects, postgres, postgres_schema) -> str`: the `claimline load --json` report.
#[pyfunction]
#[pyo3(signature = (inputs, out, views, format, strict, run_id, threads, include_partial, all_versions, accept_rejects, postgres, postgres_schema))]
#[allow(
    clippy::too_many_arguments,
    reason = "keyword arguments of the Python function"
)]
fn load(
    py: Python<'_>,
    inputs: Vec<PathBuf>,
    out: PathBuf,
    views: Vec<String>,
    format: &str,
    strict: bool,
    run_id: Option<String>,
    threads: usize,
    include_partial: bool,
    all_versions: bool,
    accept_rejects: bool,
    postgres: Option<String>,
    postgres_schema: &str,
) -> PyResult<String> {
    rayon_threads()?;
    let format = format_of(format)?;
    let target =
        claimline_run::config::postgres_target(format, postgres, None, Some(postgres_schema))
            .map_err(|e| native_error(&e))?;
    let loader = Loader::new(out)
        .views(views)
        .format(format)
        .postgres(target)
        .strict(strict)
        .run_id(run_id)
        .threads(threads)
        .include_partial(include_partial)
        .all_versions(all_versions)
        .accept_damaged(accept_rejects);
    let report = py
        .detach(|| loader.load(&inputs, &NoProgress))
        .map_err(|e| native_error(&e))?;
    serde_json::to_string(&report).map_err(|e| usage(e.to_string()))
}

/// `run(out, source, api, endpoint, types, since, views, keep, accept_rejects, credentials)
/// -> str`: the `claimline run --json` report. `source` is `local:<folder>` (the embedded
/// sandbox on those samples) or a BCDA base URL.
#[pyfunction]
#[pyo3(signature = (out, source, api, endpoint, types, since, views, keep, accept_rejects, credentials))]
#[allow(
    clippy::too_many_arguments,
    reason = "keyword arguments of the Python function"
)]
fn run(
    py: Python<'_>,
    out: PathBuf,
    source: String,
    api: &str,
    endpoint: &str,
    types: Vec<String>,
    since: Option<String>,
    views: Vec<String>,
    keep: Option<usize>,
    accept_rejects: bool,
    credentials: Option<PathBuf>,
) -> PyResult<String> {
    use claimline_run::{RunLog, RunSettings, Since, Source};
    rayon_threads()?;
    let source = match source.strip_prefix("local:") {
        Some(folder) => Source::Local(PathBuf::from(folder)),
        None => Source::Url(source),
    };
    let mut settings = RunSettings::new(source, out);
    settings.api = ApiVersion::parse(api)
        .ok_or_else(|| usage(format!("api {api:?}: expected v1, v2 or v3")))?;
    settings.endpoint = endpoint.parse().map_err(usage)?;
    settings.types = types;
    settings.since = match since {
        Some(text) => text.parse().map_err(usage)?,
        None => Since::Auto,
    };
    settings.views = views;
    settings.keep = keep;
    settings.accept_rejects |= accept_rejects;
    settings.credentials = credentials;
    let outcome = py
        .detach(|| {
            let mut log = RunLog::open(None)?;
            claimline_run::run(
                &settings,
                &mut log,
                &claimline_fetch::NoProgress,
                &NoProgress,
            )
        })
        .map_err(|e| native_error(&e))?;
    serde_json::to_string(&outcome.report).map_err(|e| usage(e.to_string()))
}

/// The rejected lines a load wrote to `DIR/rejects/<run>.ndjson`, without their content.
fn rejects_of(path: &std::path::Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("raw");
                o.remove("raw_base64");
            }
            v
        })
        .collect()
}

/// Where a read's NDJSON comes from.
enum Inputs {
    /// Files and folders on disk.
    Paths(Vec<PathBuf>),
    /// Lines held in memory, grouped into their files, and what the export's manifest says.
    Memory(Vec<InputFile>, claimline_load::ExportFacts),
}

/// The options of a read (see `read`).
struct ReadOptions {
    views: Vec<String>,
    all_versions: bool,
    include_partial: bool,
    threads: usize,
    run_id: Option<String>,
    earlier: Option<PathBuf>,
    /// Keep what could be read of a damaged input file (else nothing is kept).
    accept_rejects: bool,
}

/// Loads `inputs` through the views into Arrow tables held in memory (the same `Loader` as
/// `load`, with the Arrow sink): the tables as pyarrow batches, and the report with its
/// `rejected` lines (file, line, kind, error).
fn read_into_arrow<'py>(
    py: Python<'py>,
    inputs: Inputs,
    o: ReadOptions,
) -> PyResult<(Bound<'py, PyDict>, String)> {
    rayon_threads()?;
    let store = claimline_sink::ArrowTables::default();
    let (report, rejected) = py
        .detach(|| -> Result<_, claimline_load::LoadError> {
            // Rejects and the lock live in a scratch folder; the tables do not touch the disk.
            let scratch = tempfile::tempdir().map_err(|e| claimline_load::LoadError::Io {
                path: std::env::temp_dir(),
                source: e,
            })?;
            let loader = Loader::new(scratch.path())
                .views(o.views)
                .sinks(vec![Box::new(ArrowOutput(store.clone()))])
                .all_versions(o.all_versions)
                .include_partial(o.include_partial)
                .threads(o.threads)
                .run_id(o.run_id)
                .earlier_parquet(o.earlier)
                .accept_damaged(o.accept_rejects);
            let report = match inputs {
                Inputs::Paths(paths) => loader.load(&paths, &NoProgress)?,
                Inputs::Memory(files, facts) => loader.load_files(files, facts, &NoProgress)?,
            };
            let rejected = report
                .rejects
                .file
                .as_deref()
                .map(rejects_of)
                .unwrap_or_default();
            // The row errors (file, line, resource id, table, column, reason; never a value),
            // which the scratch folder takes with it: a Spark task hands them to its driver.
            let row_errors = report
                .row_errors
                .file
                .as_deref()
                .map(rejects_of)
                .unwrap_or_default();
            Ok((report, (rejected, row_errors)))
        })
        .map_err(|e| native_error(&e))?;
    let (rejected, row_errors) = rejected;
    let tables = PyDict::new(py);
    let store = store.lock().unwrap_or_else(|e| e.into_inner());
    for (name, (schema, batches)) in store.iter() {
        let list = PyList::empty(py);
        for b in batches {
            list.append(b.to_pyarrow(py)?)?;
        }
        if batches.is_empty() {
            // A table with no rows keeps its columns and types.
            list.append(arrow_array::RecordBatch::new_empty(schema.clone()).to_pyarrow(py)?)?;
        }
        tables.set_item(name, list)?;
    }
    let mut doc = serde_json::to_value(&report).map_err(|e| usage(e.to_string()))?;
    if let Some(o) = doc.as_object_mut() {
        o.insert("rejected".into(), serde_json::Value::Array(rejected));
        o.insert(
            "row_error_lines".into(),
            serde_json::Value::Array(row_errors),
        );
    }
    Ok((tables, doc.to_string()))
}

/// `read(inputs, views, all_versions, include_partial, threads, run_id, accept_rejects=False)
/// -> (dict[str, list[RecordBatch]], str)`: every table in memory as Arrow batches of the
/// Parquet files' types, and the load report (its `rejected` key lists the rejected lines:
/// file, line, kind, error). With a damaged input file and not `accept_rejects`, no table is
/// kept (the report's `committed` is false).
#[pyfunction]
#[pyo3(signature = (inputs, views, all_versions, include_partial, threads, run_id, accept_rejects=false))]
#[allow(
    clippy::too_many_arguments,
    reason = "keyword arguments of the Python function"
)]
fn read<'py>(
    py: Python<'py>,
    inputs: Vec<PathBuf>,
    views: Vec<String>,
    all_versions: bool,
    include_partial: bool,
    threads: usize,
    run_id: Option<String>,
    accept_rejects: bool,
) -> PyResult<(Bound<'py, PyDict>, String)> {
    let o = ReadOptions {
        views,
        all_versions,
        include_partial,
        threads,
        run_id,
        earlier: None,
        accept_rejects,
    };
    read_into_arrow(py, Inputs::Paths(inputs), o)
}

/// `read_lines(files, lines, texts, views, all_versions, include_partial, threads, run_id,
/// known, transaction_time, incremental, earlier)`: [`read`] over NDJSON lines held in memory: `texts[i]` is line
/// `lines[i]` (1-based) of the file named `files[i]` (pyarrow arrays of equal length: string,
/// int64, string or binary). The lines of one file are loaded as that file, each at its line
/// number, so rows and rejects carry the original `_source_file` and `_line`: a Spark task
/// hands over all the lines of its beneficiaries and gets the tables `claimline load` would
/// write for them. `known` gives, per file name, what [`discover`] found on the driver (its
/// manifest's API version and resource type, the version its resources agree on);
/// `transaction_time` and `incremental` what [`discover`] found in the export's manifest;
/// `earlier` an output folder whose Parquet `bene_xref` resolves the MBIs of beneficiaries
/// whose Patient is not among the lines and whose `cclf8` rows give the Coverage an incremental
/// export leaves out (as a load into that folder would).
#[pyfunction]
#[pyo3(signature = (files, lines, texts, views, all_versions, include_partial, threads, run_id, known, transaction_time, incremental, earlier))]
#[allow(
    clippy::too_many_arguments,
    reason = "keyword arguments of the Python function"
)]
fn read_lines<'py>(
    py: Python<'py>,
    files: Bound<'py, PyAny>,
    lines: Bound<'py, PyAny>,
    texts: Bound<'py, PyAny>,
    views: Vec<String>,
    all_versions: bool,
    include_partial: bool,
    threads: usize,
    run_id: Option<String>,
    known: std::collections::HashMap<String, FileInfo>,
    transaction_time: Option<String>,
    incremental: bool,
    earlier: Option<PathBuf>,
) -> PyResult<(Bound<'py, PyDict>, String)> {
    let array = |a: &Bound<'py, PyAny>| -> PyResult<Arc<dyn Array>> {
        Ok(arrow_array::make_array(
            arrow_data::ArrayData::from_pyarrow_bound(a)?,
        ))
    };
    let (files, numbers, texts) = (array(&files)?, array(&lines)?, array(&texts)?);
    let names: Vec<Option<String>> = match files.as_any().downcast_ref::<StringArray>() {
        Some(a) => a.iter().map(|v| v.map(str::to_owned)).collect(),
        None => match files.as_any().downcast_ref::<LargeStringArray>() {
            Some(a) => a.iter().map(|v| v.map(str::to_owned)).collect(),
            None => return Err(usage("files: expected a string array".to_owned())),
        },
    };
    let numbers: Vec<Option<i64>> = numbers
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .ok_or_else(|| usage("lines: expected an int64 array".to_owned()))?
        .iter()
        .collect();
    let texts = lines_of(&texts)?;
    if names.len() != numbers.len() || names.len() != texts.len() {
        return Err(usage(format!(
            "files, lines and texts differ in length ({}, {}, {})",
            names.len(),
            numbers.len(),
            texts.len()
        )));
    }
    check_transaction_time(transaction_time.as_deref())?;
    let mut files = in_memory_files(names, numbers, texts)?;
    for f in &mut files {
        if let Some(info) = known.get(&*f.path.to_string_lossy()) {
            apply_info(info, f)?;
        }
    }
    let o = ReadOptions {
        views,
        all_versions,
        include_partial,
        threads,
        run_id,
        earlier,
        accept_rejects: false,
    };
    let facts = claimline_load::ExportFacts {
        transaction_time,
        incremental,
    };
    read_into_arrow(py, Inputs::Memory(files, facts), o)
}

/// What the driver's [`discover`] found about a file: `(api_version, expected_type,
/// agreed_version)`.
type FileInfo = (Option<String>, Option<String>, Option<String>);

/// Gives `f` what the driver found about its file.
fn apply_info(info: &FileInfo, f: &mut InputFile) -> PyResult<()> {
    let version = |v: &Option<String>| -> PyResult<Option<ApiVersion>> {
        v.as_deref()
            .map(|t| {
                ApiVersion::parse(t)
                    .ok_or_else(|| usage(format!("api version {t:?}: expected v1, v2 or v3")))
            })
            .transpose()
    };
    f.api_version = version(&info.0)?;
    f.expected_type = info.1.clone();
    f.agreed_version = version(&info.2)?;
    Ok(())
}

/// `discover(inputs) -> (list[(path, api_version, expected_type, agreed_version)],
/// transaction_time, incremental)`: the NDJSON files under `inputs` as a load finds them
/// (manifests applied, versions agreed), and what their manifest says of the export, for an
/// engine that reads the files itself and hands the lines back to [`read_lines`].
#[pyfunction]
#[allow(clippy::type_complexity, reason = "the tuple Python receives")]
fn discover(
    inputs: Vec<PathBuf>,
) -> PyResult<(
    Vec<(String, Option<String>, Option<String>, Option<String>)>,
    Option<String>,
    bool,
)> {
    let files = claimline_ndjson::discover(&inputs).map_err(|e| native_error(&e))?;
    let facts = claimline_load::export_facts(&files).map_err(|e| native_error(&e))?;
    let name = |v: Option<ApiVersion>| v.map(|v| v.as_str().to_owned());
    Ok((
        files
            .into_iter()
            .map(|f| {
                (
                    f.path.display().to_string(),
                    name(f.api_version),
                    f.expected_type,
                    name(f.agreed_version),
                )
            })
            .collect(),
        facts.transaction_time,
        facts.incremental,
    ))
}

/// The highest line number [`in_memory_files`] takes (2^31: a file of two billion lines).
const MAX_IN_MEMORY_LINE: u64 = 1 << 31;

/// Groups numbered lines into in-memory files (in the order the files first appear), each line
/// at its number: the lines between are blank, which the scanner skips (a run of them at once).
fn in_memory_files(
    names: Vec<Option<String>>,
    numbers: Vec<Option<i64>>,
    texts: Vec<Option<Vec<u8>>>,
) -> PyResult<Vec<InputFile>> {
    let mut order: Vec<String> = Vec::new();
    let mut by_file: std::collections::HashMap<String, Vec<(u64, Vec<u8>)>> =
        std::collections::HashMap::new();
    for ((name, number), text) in names.into_iter().zip(numbers).zip(texts) {
        let (Some(name), Some(number), Some(text)) = (name, number, text) else {
            return Err(usage(
                "files, lines and texts may not hold nulls".to_owned(),
            ));
        };
        let number = u64::try_from(number)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| usage(format!("{name}: line {number} is not a line number")))?;
        // The lines before it are held as empty lines: a number past any file's length would
        // ask for more memory than there is (found by a review: 2^62 aborted the interpreter).
        if number > MAX_IN_MEMORY_LINE {
            return Err(usage(format!(
                "{name}: line {number} is past the {MAX_IN_MEMORY_LINE} lines of a file read in memory"
            )));
        }
        if text.contains(&b'\n') {
            return Err(usage(format!(
                "{name}: line {number} holds a line break; give one line per element"
            )));
        }
        by_file
            .entry(name.clone())
            .or_insert_with(|| {
                order.push(name);
                Vec::new()
            })
            .push((number, text));
    }
    order
        .into_iter()
        .map(|name| {
            let mut lines = by_file.remove(&name).unwrap_or_default();
            lines.sort_by_key(|(n, _)| *n);
            let mut data = Vec::with_capacity(lines.iter().map(|(_, t)| t.len() + 1).sum());
            let mut at = 1u64;
            for (n, text) in lines {
                if n < at {
                    return Err(usage(format!("{name}: line {n} is given twice")));
                }
                data.resize(data.len() + (n - at) as usize, b'\n');
                data.extend_from_slice(&text);
                data.push(b'\n');
                at = n + 1;
            }
            Ok(InputFile::in_memory(name, data))
        })
        .collect()
}

/// A usage error unless `t` (an export's `transactionTime`, when given) is an instant with an
/// offset.
fn check_transaction_time(t: Option<&str>) -> PyResult<()> {
    match t {
        Some(t) if claimline_link::parse_instant(t).is_none() => Err(usage(
            "transaction_time is an instant with an offset (as 2024-01-02T03:04:05.678Z)"
                .to_owned(),
        )),
        _ => Ok(()),
    }
}

/// The lines of a pyarrow string or binary array (nulls skipped).
fn lines_of(array: &Arc<dyn Array>) -> PyResult<Vec<Option<Vec<u8>>>> {
    let any = array.as_any();
    let out: Vec<Option<Vec<u8>>> = if let Some(a) = any.downcast_ref::<StringArray>() {
        a.iter().map(|v| v.map(|s| s.as_bytes().to_vec())).collect()
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        a.iter().map(|v| v.map(|s| s.as_bytes().to_vec())).collect()
    } else if let Some(a) = any.downcast_ref::<BinaryArray>() {
        a.iter().map(|v| v.map(<[u8]>::to_vec)).collect()
    } else if let Some(a) = any.downcast_ref::<LargeBinaryArray>() {
        a.iter().map(|v| v.map(<[u8]>::to_vec)).collect()
    } else {
        return Err(usage(format!(
            "lines: expected a string or binary array, got {}",
            array.data_type()
        )));
    };
    Ok(out)
}

/// `evaluate(lines, file, first_line, views, run_id, api_version, transaction_time) ->
/// (dict[str, RecordBatch], list[dict])`: the views over a batch of NDJSON lines that came from
/// `file` starting at line `first_line` (a pyarrow string or binary array, or a list of bytes),
/// with MBIs resolved and CCLF8 joined from the Patients and Coverage of the same batch
/// (`BENE_AGE` as of `transaction_time`, the export's, else as of the call, as a load computes
/// it). Every claim version's rows are returned (the claim-history rule needs every batch:
/// `_claim_key`, `_last_updated` and `_status` carry what it reads). The second value lists
/// rejected lines (file, line, kind, error).
#[pyfunction]
#[pyo3(signature = (lines, file, first_line, views, run_id, api_version, transaction_time))]
#[allow(clippy::too_many_arguments)]
fn evaluate<'py>(
    py: Python<'py>,
    lines: Bound<'py, PyAny>,
    file: String,
    first_line: u64,
    views: Vec<String>,
    run_id: String,
    api_version: Option<String>,
    transaction_time: Option<String>,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyList>)> {
    rayon_threads()?;
    let owned = owned_lines(&lines)?;
    claimline_load::output::check_run_id(&run_id).map_err(|e| native_error(&e))?;
    check_transaction_time(transaction_time.as_deref())?;
    let as_of = claimline_link::bene_age_day(
        transaction_time.as_deref(),
        claimline_load::output::now_micros(),
    );
    let mut input = InputFile::new(&file);
    input.api_version = match api_version.as_deref() {
        None => None,
        Some(v) => Some(
            ApiVersion::parse(v)
                .ok_or_else(|| usage("api_version is v1, v2 or v3 (or None)".to_owned()))?,
        ),
    };
    let (batches, rejects) = py
        .detach(|| -> Result<_, String> {
            let sources = views::sources(&views).map_err(|e| e.to_string())?;
            let mut plan = Plan::new(views::load(&sources).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            plan.add_link_tables();
            let numbered = || {
                owned
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| l.as_deref().map(|l| (first_line + i as u64, l)))
            };
            let mut index = BeneIndex::default();
            let _ = claimline_ndjson::parse_lines(&input, numbered(), |r| {
                if let Some((v, bene, mbi)) = patient_mbi(r) {
                    index.insert(v, bene, mbi);
                }
            });
            plan.set_bene_index(index);
            let tables = plan.tables().to_vec();
            let mut rows: Vec<Vec<Vec<claimline_model::Cell>>> = vec![Vec::new(); tables.len()];
            let mut cclf8 = plan.cclf8_builder();
            let mut scratch = Scratch::default();
            let rejects = claimline_ndjson::parse_lines(&input, numbered(), |r| {
                let out = plan.evaluate(r, &run_id, &mut scratch);
                for row in out.rows {
                    rows[row.table].push(row.cells);
                }
                if let Some(part) = out.bene_part {
                    cclf8.add(part);
                }
            });
            if let Some(t) = plan.cclf8_table() {
                rows[t] = cclf8.rows(as_of);
            }
            let mut batches = BTreeMap::new();
            for (schema, rows) in tables.iter().zip(rows) {
                let arrow = claimline_sink::arrow_schema(schema);
                let batch = claimline_sink::record_batch(schema, &arrow, rows)
                    .map_err(|e| e.to_string())?;
                batches.insert(schema.name.clone(), batch);
            }
            Ok((batches, rejects))
        })
        .map_err(usage)?;
    let out = PyDict::new(py);
    for (name, batch) in batches {
        out.set_item(name, batch.to_pyarrow(py)?)?;
    }
    let rejected = PyList::empty(py);
    for r in rejects {
        let d = PyDict::new(py);
        d.set_item("file", &file)?;
        d.set_item("line", r.line)?;
        d.set_item("kind", r.kind.as_str())?;
        d.set_item("error", r.message)?;
        rejected.append(d)?;
    }
    Ok((out, rejected))
}

/// Lines handed over as a pyarrow string or binary array, or a list of bytes.
fn owned_lines(lines: &Bound<'_, PyAny>) -> PyResult<Vec<Option<Vec<u8>>>> {
    match lines.extract::<Vec<Vec<u8>>>() {
        Ok(v) => Ok(v.into_iter().map(Some).collect()),
        Err(_) => {
            let data = arrow_data::ArrayData::from_pyarrow_bound(lines)?;
            lines_of(&arrow_array::make_array(data))
        }
    }
}

/// `beneficiary_keys(lines) -> list[str | None]`: each line's beneficiary as the engine reads
/// it ([`claimline_link::beneficiary_key`]: a Patient's id, the Patient a Coverage or an EOB
/// references), `None` for a line that is not such a resource (not JSON, another type, no
/// reference). `lines` as `evaluate` takes them. What Spark partitions lines by.
#[pyfunction]
fn beneficiary_keys(py: Python<'_>, lines: Bound<'_, PyAny>) -> PyResult<Vec<Option<String>>> {
    let owned = owned_lines(&lines)?;
    Ok(py.detach(|| {
        let input = InputFile::new("lines");
        let mut keys: Vec<Option<String>> = vec![None; owned.len()];
        // A byte-order mark before a line is skipped, as the engine skips one before a file's
        // first line (wherever the caller's reader left it).
        let numbered = owned.iter().enumerate().filter_map(|(i, l)| {
            l.as_deref().map(|l| {
                (
                    i as u64,
                    l.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(l),
                )
            })
        });
        // A line that is no resource has no key (its reject is the engine's, in its task).
        let _ = claimline_ndjson::parse_lines(&input, numbered, |r| {
            if let Some(slot) = keys.get_mut(r.line as usize) {
                *slot = claimline_link::beneficiary_key(r).map(str::to_owned);
            }
        });
        keys
    }))
}

/// `tables(views, include_partial) -> (dict[str, pyarrow.Schema], str)`: the tables a load
/// through `views` writes (with the link stage's: `bene_xref`, `cclf9`, `_claimline_claims`,
/// `_claimline_counts` when the views call for them), each with the Arrow schema of its Parquet
/// files, in plan order; and the views' hash (recorded with each run).
#[pyfunction]
#[pyo3(signature = (views, include_partial))]
fn tables<'py>(
    py: Python<'py>,
    views: Vec<String>,
    include_partial: bool,
) -> PyResult<(Bound<'py, PyDict>, String)> {
    let (schemas, hash) = (|| -> Result<_, claimline_load::LoadError> {
        let sources = views::sources(&views)?;
        let mut plan = Plan::new(views::load(&sources)?)?;
        plan.set_include_partial(include_partial);
        plan.add_link_tables();
        let schemas: Vec<_> = plan
            .tables()
            .iter()
            .map(|t| (t.name.clone(), claimline_sink::arrow_schema(t)))
            .collect();
        Ok((schemas, views::hash(&sources)))
    })()
    .map_err(|e| native_error(&e))?;
    let out = PyDict::new(py);
    for (name, schema) in schemas {
        out.set_item(name, schema.as_ref().to_pyarrow(py)?)?;
    }
    Ok((out, hash))
}

/// The output folder's lock, held while an engine writes into the folder (`claimline.spark`): a
/// `claimline load`, `run` or `reload` of the same folder meanwhile exits 5, and this one
/// waits for none of them. Released by `release()` or when collected.
#[pyclass(unsendable)]
struct OutputLock(Option<claimline_load::output::OutputLock>);

#[pymethods]
impl OutputLock {
    /// Releases the lock (idempotent).
    fn release(&mut self) {
        self.0 = None;
    }
}

/// `lock_output(out) -> OutputLock`: takes the output folder's lock (made owner-only when it
/// does not exist); code 5 when another command holds it. A load or run that died in the
/// folder is recovered first, as every command does.
#[pyfunction]
fn lock_output(out: PathBuf) -> PyResult<OutputLock> {
    let lock = claimline_load::output::lock_or_busy(&out).map_err(|e| native_error(&e))?;
    claimline_load::output::recover(&out).map_err(|e| native_error(&e))?;
    Ok(OutputLock(Some(lock)))
}

/// `check_run_id(run_id)`: code 2 unless `run_id` is one `claimline load --run-id` takes (1 to
/// 100 ASCII letters, digits, `.`, `-`, `_`, starting with a letter or digit): it names a
/// partition and a staging folder.
#[pyfunction]
fn check_run_id(run_id: &str) -> PyResult<()> {
    claimline_load::output::check_run_id(run_id).map_err(|e| native_error(&e))
}

/// `check_run_order(run_id, runs, out)`: code 2 when `run_id` sorts before a run of `runs` (the
/// run ids `out` holds) and is none of them, as `claimline load --run-id` refuses it: the
/// claim-history rule breaks ties by the latest run id.
#[pyfunction]
fn check_run_order(run_id: &str, runs: Vec<String>, out: PathBuf) -> PyResult<()> {
    claimline_load::output::check_run_order(run_id, runs.iter().map(String::as_str), &out)
        .map_err(|e| native_error(&e))
}

/// `new_run_id() -> str`: a run id as the CLI makes it (the start time, UTC).
#[pyfunction]
fn new_run_id() -> String {
    claimline_load::output::new_run_id()
}

/// `commit_staged_run(out, record)`: commits the run (the JSON of a `RunRecord`) whose tables
/// an engine wrote under `out/.claimline-staging/<run_id>/<table>/`, as a load commits its own:
/// `READY.json`, then the partitions moved into place and the run recorded; a failure after
/// `READY.json` leaves the run for the next command to finish.
#[pyfunction]
fn commit_staged_run(out: PathBuf, record: &str) -> PyResult<()> {
    let run: claimline_model::RunRecord =
        serde_json::from_str(record).map_err(|e| usage(format!("not a run record: {e}")))?;
    claimline_sink::commit_staged_run(&out.join("parquet"), &run).map_err(|e| native_error(&e))
}

/// `refresh_current(out, claim_tables) -> str`: refreshes `out/current/` (the current
/// rows of the claim tables, and `views.sql`) after the last run recorded in
/// `_claimline_runs.json`, as a load does; returns the refresh's report as JSON.
#[pyfunction]
fn refresh_current(out: PathBuf, claim_tables: Vec<String>) -> PyResult<String> {
    rayon_threads()?;
    let report = claimline_sink::read_parquet_runs(&out.join("parquet"))
        .and_then(|runs| claimline_sink::refresh_current(&out, &claim_tables, &runs, None))
        .map_err(|e| native_error(&e))?;
    serde_json::to_string(&report).map_err(|e| usage(e.to_string()))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(read_lines, m)?)?;
    m.add_function(wrap_pyfunction!(tables, m)?)?;
    m.add_function(wrap_pyfunction!(discover, m)?)?;
    m.add_function(wrap_pyfunction!(lock_output, m)?)?;
    m.add_function(wrap_pyfunction!(new_run_id, m)?)?;
    m.add_function(wrap_pyfunction!(check_run_order, m)?)?;
    m.add_function(wrap_pyfunction!(check_run_id, m)?)?;
    m.add_function(wrap_pyfunction!(check_rayon_threads, m)?)?;
    m.add("MAX_THREADS", claimline_ndjson::MAX_THREADS)?;
    m.add("MAX_LINE", MAX_IN_MEMORY_LINE)?;
    m.add_function(wrap_pyfunction!(commit_staged_run, m)?)?;
    m.add_function(wrap_pyfunction!(refresh_current, m)?)?;
    m.add_class::<OutputLock>()?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(beneficiary_keys, m)?)?;
    Ok(())
}
