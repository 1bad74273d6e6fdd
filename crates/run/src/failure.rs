//! What a failure means to whoever started the job (a scheduler, a notebook): one
//! classification of every typed error of the pipeline into the codes ARCHITECTURE.md documents
//! (the CLI's exit codes, the Python exceptions' `code`), and the file it is about. One place,
//! used by every front end.

use std::error::Error;
use std::path::PathBuf;

use claimline_fetch::FetchError;
use claimline_load::LoadError;

use crate::RunError;

/// The documented code of one error (not its causes): 2 usage or invalid view, 3 input
/// unreadable, 4 rejects under `--strict` or damaged input, 5 output not written or a damaged
/// state file, 6 BCDA refused, 7 BCDA says try later; `None` when the error is none of the
/// pipeline's (look at its source).
pub fn code_of(err: &(dyn Error + 'static)) -> Option<u8> {
    if let Some(e) = err.downcast_ref::<RunError>() {
        return Some(run_code(e));
    }
    if let Some(e) = err.downcast_ref::<LoadError>() {
        return Some(load_code(e));
    }
    if let Some(e) = err.downcast_ref::<claimline_ndjson::Error>() {
        return Some(scan_code(e));
    }
    if let Some(e) = err.downcast_ref::<FetchError>() {
        return Some(e.exit_code());
    }
    if let Some(e) = err.downcast_ref::<claimline_sink::Error>() {
        return Some(sink_code(e));
    }
    if err.downcast_ref::<std::io::Error>().is_some() {
        return Some(5);
    }
    None
}

/// The code of `err` or of the first of its sources that has one; 1 (a bug) when none does.
pub fn exit_code(err: &(dyn Error + 'static)) -> u8 {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(code) = code_of(e) {
            return code;
        }
        cause = e.source();
    }
    1
}

/// 5 (output not written), except a PostgreSQL connection string or schema that cannot be used
/// (2) and credentials the server refused (6, as a refusal by BCDA).
fn sink_code(e: &claimline_sink::Error) -> u8 {
    use claimline_sink::PgFailure;
    match e {
        claimline_sink::Error::Postgres { failure, .. } => match failure {
            PgFailure::Usage => 2,
            PgFailure::Auth => 6,
            _ => 5,
        },
        _ => 5,
    }
}

fn scan_code(e: &claimline_ndjson::Error) -> u8 {
    use claimline_ndjson::Error as E;
    match e {
        E::Read { .. } | E::NoInput { .. } | E::Manifest { .. } | E::Disagrees { .. } => 3,
        E::Strict { .. } => 4,
        E::WriteRejects { .. } | E::Consumer(_) => 5,
        _ => 1,
    }
}

fn load_code(e: &LoadError) -> u8 {
    match e {
        LoadError::Usage(_) | LoadError::Plan(_) => 2,
        LoadError::Input(e) => scan_code(e),
        LoadError::Sink(e) => sink_code(e),
        _ => 5,
    }
}

fn run_code(e: &RunError) -> u8 {
    match e {
        RunError::Usage(_) | RunError::ViewsChanged(_) => 2,
        RunError::Damaged { .. } => 4,
        RunError::Fetch(e) => e.exit_code(),
        RunError::Load(e) => load_code(e),
        RunError::Reload { source, .. } => load_code(source),
        RunError::Io { .. } => 5,
        _ => 1,
    }
}

/// The error in one line: `err` and each of its sources once (a cause whose words the line
/// already holds, as in `x: cannot read: No such file (os error 2)` and its source, is not
/// repeated); line breaks become spaces.
pub fn message(err: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string().replace('\n', " ");
        if !line.contains(text.as_str()) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

/// The file the error is about, from `err` or the first of its sources that names one.
pub fn file(err: &(dyn Error + 'static)) -> Option<PathBuf> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let found = if let Some(e) = e.downcast_ref::<claimline_sink::Error>() {
            e.path().map(PathBuf::from)
        } else if let Some(e) = e.downcast_ref::<claimline_ndjson::Error>() {
            e.path().map(PathBuf::from)
        } else if let Some(e) = e.downcast_ref::<FetchError>() {
            e.path().map(PathBuf::from)
        } else if let Some(e) = e.downcast_ref::<LoadError>() {
            e.path().map(PathBuf::from)
        } else if let Some(e) = e.downcast_ref::<RunError>() {
            match e {
                RunError::Load(e) => e.path().map(PathBuf::from),
                RunError::Fetch(e) => e.path().map(PathBuf::from),
                RunError::Io { path, .. } => Some(path.clone()),
                RunError::Reload { export, .. } => Some(export.clone()),
                _ => None,
            }
        } else {
            None
        };
        if found.is_some() {
            return found;
        }
        cause = e.source();
    }
    None
}

/// The line of the input the error is about (a rejected line under `--strict`).
pub fn line(err: &(dyn Error + 'static)) -> Option<u64> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let scan = e.downcast_ref::<claimline_ndjson::Error>().or_else(|| {
            match e.downcast_ref::<LoadError>() {
                Some(LoadError::Input(s)) => Some(s),
                _ => None,
            }
        });
        if let Some(claimline_ndjson::Error::Strict { line, .. }) = scan {
            return Some(*line);
        }
        cause = e.source();
    }
    None
}
