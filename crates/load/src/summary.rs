//! The human summary of a [`LoadReport`].

use std::io::Write;

use claimline_model::human_bytes;

use crate::LoadReport;

impl LoadReport {
    /// Writes the human summary of the load (what `claimline load` prints): rows per table,
    /// rejects and row errors, MBI resolution, the claim-history rule, warnings and the rate.
    /// Counts and names only, never a value of a record.
    ///
    /// # Errors
    /// Writing to `out` failed.
    pub fn write_summary(&self, out: &mut impl Write) -> std::io::Result<()> {
        let this = self;
        let n: u64 = this.resources.values().sum();
        writeln!(out, "run {}", this.run_id)?;
        writeln!(
            out,
            "read {} ({} of NDJSON): {n} resources ({})",
            human_bytes(this.bytes),
            human_bytes(this.ndjson_bytes),
            this.resources
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(out, "rows:")?;
        for (t, n) in &this.tables {
            writeln!(out, "  {t:<24} {n:>10}")?;
        }
        match &this.rejects.file {
            Some(p) => writeln!(out, "rejects: {} (in {})", this.rejects.count, p.display())?,
            None => writeln!(out, "rejects: 0")?,
        }
        match &this.row_errors.file {
            Some(p) => {
                writeln!(
                    out,
                    "row errors: {} (in {})",
                    this.row_errors.count,
                    p.display()
                )?;
                for (c, n) in &this.row_errors.by_column {
                    writeln!(out, "  {c:<40} {n:>8}")?;
                }
            }
            None => writeln!(out, "row errors: 0")?,
        }
        if let Some(b) = &this.beneficiaries {
            writeln!(
                out,
                "beneficiaries: {} with an MBI; claims with no MBI resolved: {}",
                b.with_mbi, b.unresolved_claims
            )?;
        }
        let h = &this.history;
        if h.superseded + h.stale_groups + h.removed_groups + h.cancels > 0 {
            writeln!(
                out,
                "claim versions: {} left out (earlier or cancelled versions, duplicates), {} older than what the output holds, {} claims removed by a cancel",
                h.superseded, h.stale_groups, h.removed_groups
            )?;
        }
        // The v2/v3 overlap is a warning on stderr when it is found (and in `--json`), as every
        // other warning: not printed a second time here.
        // Views of the user's: a column NULL in every row is most often a path typo.
        for (table, columns) in this.null_columns.iter().filter(|_| this.custom_views) {
            writeln!(
                out,
                "note: {table}: NULL in every row: {} (check their paths)",
                columns.join(", ")
            )?;
        }
        if this.excluded.partial + this.excluded.prior_auth > 0 {
            writeln!(
                out,
                "left out of CCLF tables (v3): {} partially adjudicated, {} prior authorizations (--include-partial keeps them)",
                this.excluded.partial, this.excluded.prior_auth
            )?;
        }
        writeln!(
            out,
            "time: {:.2} s, {:.1} MB/s",
            this.seconds, this.mb_per_s
        )?;
        let p = &this.phases;
        writeln!(
            out,
            "  setup {:.2} s, scan {:.2} s, claim history {:.2} s, commit {:.2} s, current tables {:.2} s",
            p.setup, p.scan, p.history, p.commit, p.current
        )?;
        if this.committed {
            for o in &this.outputs {
                writeln!(out, "wrote {}", o.display())?;
            }
        }
        Ok(())
    }
}
