//! How a failed command ends: one exit code per typed error (ARCHITECTURE.md), one line on
//! stderr without repeated causes, an error document on stdout under `--json`, and a quiet
//! exit when the reader of stdout went away (`claimline views list | head`).

use std::path::PathBuf;
use std::process::ExitCode;

/// An error in what the user asked for (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code ARCHITECTURE.md gives `err`: 2 usage or invalid view, 3 input unreadable,
/// 4 rejects under `--strict` or damaged input, 5 output not written (or an output's state
/// file damaged), 6 BCDA refused, 7 BCDA says try later; anything unexpected is 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<claimline_report::ReportError>() {
            return match e {
                claimline_report::ReportError::Usage(_) => 2,
                claimline_report::ReportError::Load(e) => {
                    claimline_run::failure::code_of(e).unwrap_or(5)
                }
                _ => 5,
            };
        }
        if let Some(code) = claimline_run::failure::code_of(cause) {
            return code;
        }
    }
    1
}

/// The file the error names, from the first typed error in its chain that names one.
pub fn file(err: &anyhow::Error) -> Option<PathBuf> {
    err.chain().find_map(
        |cause| match cause.downcast_ref::<claimline_report::ReportError>() {
            Some(e) => e.path().map(std::path::Path::to_path_buf),
            None => claimline_run::failure::file(cause),
        },
    )
}

/// The error in one line, each cause once ([`claimline_run::failure::message`]).
pub fn message(err: &anyhow::Error) -> String {
    claimline_run::failure::message(err.as_ref())
}

/// The reader of stdout closed it (EPIPE): not a failure of the command.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Ends a failed command: the line on stderr, under `--json` an error document on stdout
/// (`{"error": {"code", "message", "file"}}`), and the exit code.
pub fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let code = exit_code(err);
    let message = message(err);
    eprintln!("claimline: {message}");
    if json {
        let doc = serde_json::json!({
            "error": {
                "code": code,
                "message": message,
                "file": file(err),
            }
        });
        // Nothing more can be done if stdout is gone too.
        let _ = serde_json::to_writer_pretty(std::io::stdout().lock(), &doc);
        #[allow(
            clippy::print_stdout,
            reason = "the error document ends with a newline"
        )]
        {
            println!();
        }
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_line_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file (os error 2)");
        let err = anyhow::Error::new(claimline_ndjson::Error::Read {
            path: "x.ndjson".into(),
            source: io,
        })
        .context("loading x");
        assert_eq!(
            message(&err),
            "loading x: x.ndjson: cannot read: No such file (os error 2)"
        );
        assert_eq!(exit_code(&err), 3);
        assert_eq!(file(&err), Some(PathBuf::from("x.ndjson")));
    }

    #[test]
    fn a_closed_stdout_is_not_a_failure() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&err));
        assert_eq!(report(&err, false), ExitCode::SUCCESS);
    }
}
