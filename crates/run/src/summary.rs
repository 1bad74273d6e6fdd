//! The human summary of a [`RunReport`].

use std::io::Write;

use crate::RunReport;

impl RunReport {
    /// Writes the human summary of the run (what `claimline run` prints): what was fetched,
    /// the load's summary, BCDA's error files, pruned exports and the `_since` committed.
    ///
    /// # Errors
    /// Writing to `stdout` failed.
    pub fn write_summary(&self, stdout: &mut impl Write) -> std::io::Result<()> {
        let r = self;
        let profile = r
            .profile
            .as_deref()
            .map(|p| format!(" (profile {p})"))
            .unwrap_or_default();
        writeln!(
            stdout,
            "fetched{profile} {} {} {} since {}: {} files ({} downloaded now) into {}",
            r.base_url,
            r.scope.api,
            r.scope.endpoint,
            r.since.as_deref().unwrap_or("the beginning"),
            r.fetch.files,
            r.fetch.downloaded,
            r.export.display()
        )?;
        if let Some(at) = &r.attribution {
            let changed = if r.attribution_changed {
                " (changed since the last run)"
            } else {
                ""
            };
            writeln!(stdout, "BCDA attribution last updated {at}{changed}")?;
        }
        match &r.load {
            Some(l) => l.write_summary(stdout)?,
            None if r.already_loaded => writeln!(
                stdout,
                "run {}: already loaded by an earlier attempt",
                r.run_id
            )?,
            None => writeln!(stdout, "run {}: nothing new to load", r.run_id)?,
        }
        if !r.error_files.is_empty() {
            writeln!(
                stdout,
                "BCDA error files (kept in {}/errors):",
                r.export.display()
            )?;
            for i in &r.error_files {
                writeln!(
                    stdout,
                    "  {:<8} {:<14} {:<22} {:>8}",
                    i.severity, i.code, i.resource_type, i.count
                )?;
            }
        }
        for p in &r.pruned {
            writeln!(stdout, "removed the export of run {p} (--keep)")?;
        }
        match &r.not_committed {
            None => writeln!(
                stdout,
                "next _since: {} (committed)",
                r.next_since.as_deref().unwrap_or("-")
            )?,
            Some(why) => writeln!(stdout, "transactionTime not committed: {why}")?,
        }
        Ok(())
    }
}
