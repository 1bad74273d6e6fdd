//! The report as one HTML page: inline styles, inline SVG charts, no script.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::{Count, Report};

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1000px;color:#222;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.sub{color:#666;margin-top:0}.tiles{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.tile{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;min-width:8rem}.tile b{display:block;font-size:1.3rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:right}
th{background:#f5f5f5}td.l,th.l{text-align:left}.up{color:#2a7d2a}.down{color:#b22}.muted{color:#888}
svg{display:block;margin:.5rem 0}svg text{font-size:11px;fill:#444}details{margin:.5rem 0}";

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Cents as money text: `-123456` → `-1,234.56`.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", thousands(c / 100), c % 100)
}

/// Every month from the first to the last of `months` (`YYYY-MM`), so gaps show as gaps; the
/// months themselves when they span more than 30 years or are not `YYYY-MM`.
fn month_axis<'a>(months: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: BTreeSet<&str> = months.collect();
    let parse = |m: &str| -> Option<i32> {
        let (y, mo) = m.split_once('-')?;
        Some(y.parse::<i32>().ok()? * 12 + mo.parse::<i32>().ok()? - 1)
    };
    let (Some(first), Some(last)) = (
        set.first().and_then(|m| parse(m)),
        set.last().and_then(|m| parse(m)),
    ) else {
        return set.into_iter().map(str::to_owned).collect();
    };
    if last - first > 360 || set.iter().any(|m| parse(m).is_none()) {
        return set.into_iter().map(str::to_owned).collect();
    }
    (first..=last)
        .map(|n| format!("{:04}-{:02}", n / 12, n % 12 + 1))
        .collect()
}

/// What a `CLM_TYPE_CD` is.
fn type_name(code: &str) -> String {
    let name = match code {
        "10" => "HHA",
        "20" | "30" => "SNF",
        "40" => "Outpatient",
        "50" => "Hospice",
        "60" | "61" | "62" | "63" | "64" => "Inpatient",
        "71" | "72" => "Carrier",
        "81" | "82" => "DME",
        "01" | "02" | "03" | "04" | "" => "Part D",
        _ => "",
    };
    match (code, name) {
        ("", _) => "Part D (v1/v2)".to_owned(),
        (_, "") => code.to_owned(),
        (c, n) => format!("{c} {n}"),
    }
}

/// A stacked bar chart: one bar per `x` label, one colour per series.
fn stacked_bars(
    title: &str,
    xs: &[String],
    series: &[(String, Vec<f64>)],
    fmt: fn(f64) -> String,
) -> String {
    let (w, h, left, bottom, top) = (960.0, 260.0, 70.0, 40.0, 24.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - top;
    let totals: Vec<f64> = (0..xs.len())
        .map(|i| series.iter().map(|(_, v)| v[i].max(0.0)).sum())
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(1.0);
    let band = plot_w / xs.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(
        svg,
        r#"<text x="{left}" y="14" style="font-weight:600">{}</text>"#,
        esc(title)
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let y = top + plot_h - plot_h * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            w - 10.0,
            left - 4.0,
            y + 4.0,
            esc(&fmt(v))
        );
    }
    for (i, x) in xs.iter().enumerate() {
        let mut y = top + plot_h;
        for (s, (name, values)) in series.iter().enumerate() {
            let v = values[i].max(0.0);
            if v <= 0.0 {
                continue;
            }
            let bh = plot_h * v / max;
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                left + band * i as f64 + band * 0.1,
                (band * 0.8).max(1.0),
                PALETTE[s % PALETTE.len()],
                esc(x),
                esc(name),
                esc(&fmt(values[i]))
            );
        }
        // A label every year (January), or every bar when there are few.
        let early = x.get(5..7).is_some_and(|m| m <= "06");
        let label = xs.len() <= 16 || x.ends_with("-01") || (i == 0 && early);
        if label {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                left + band * (i as f64 + 0.5),
                h - bottom + 14.0,
                esc(if xs.len() > 16 {
                    &x[..4.min(x.len())]
                } else {
                    x
                })
            );
        }
    }
    let mut lx = left;
    for (s, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{}">{}</text>"#,
            h - 14.0,
            PALETTE[s % PALETTE.len()],
            lx + 14.0,
            h - 5.0,
            esc(name)
        );
        lx += 24.0 + 7.0 * name.len() as f64;
    }
    svg.push_str("</svg>");
    svg
}

fn counts_table(rows: &[Count], what: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"muted\">No {what}.</p>");
    }
    let mut t = format!(
        "<table><tr><th class=\"l\">{}</th><th class=\"l\">file</th><th>count</th></tr>",
        esc(what)
    );
    for r in rows {
        let _ = write!(
            t,
            "<tr data-what=\"{}\" data-count=\"{}\"><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
            esc(&r.what),
            r.count,
            esc(&r.what),
            esc(&r.file),
            thousands(r.count)
        );
    }
    t.push_str("</table>");
    t
}

fn detail<'a>(report: &'a Report, section: &str) -> Option<&'a serde_json::Value> {
    let d = report.details.as_ref()?;
    d.get("load")
        .and_then(|l| l.get(section))
        .or_else(|| d.get(section))
        .filter(|v| !v.is_null())
}

fn num(v: Option<&serde_json::Value>, key: &str) -> String {
    v.and_then(|v| v.get(key))
        .and_then(serde_json::Value::as_u64)
        .map_or_else(|| "—".to_owned(), thousands)
}

/// The report as one self-contained HTML page.
pub fn render(report: &Report) -> String {
    let run = &report.run;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>claimline run {}</title><style>{STYLE}</style></head><body>",
        esc(&run.run_id)
    );
    let _ = write!(
        h,
        "<h1>claimline run <span data-run=\"{0}\">{0}</span></h1><p class=\"sub\">{1} · started {2} · finished {3} · API {4} · {5} input(s){6}</p>",
        esc(&run.run_id),
        esc(&report.out.display().to_string()),
        esc(&run.started),
        esc(&run.finished),
        esc(&run.api_versions.join(", ")),
        run.inputs.len(),
        run.transaction_time
            .as_deref()
            .map(|t| format!(" · BCDA transactionTime {}", esc(t)))
            .unwrap_or_default()
    );
    let claim_rows: u64 = run
        .tables
        .iter()
        .filter(|(t, _)| t.starts_with("cclf"))
        .map(|(_, n)| n)
        .sum();
    let _ = write!(
        h,
        "<div class=\"tiles\"><div class=\"tile\">rows in CCLF tables<b data-tile=\"cclf-rows\">{}</b></div><div class=\"tile\">rejected lines<b data-tile=\"rejects\">{}</b></div><div class=\"tile\">row errors<b data-tile=\"row-errors\">{}</b></div><div class=\"tile\">beneficiaries known<b data-tile=\"beneficiaries\">{}</b></div><div class=\"tile\">claims this run<b data-tile=\"claims\">{}</b></div></div>",
        thousands(claim_rows),
        thousands(run.rejects),
        thousands(run.row_errors),
        thousands(report.beneficiaries),
        thousands(report.movement.iter().map(|m| m.claims).sum()),
    );

    // Claims and payments per month.
    h.push_str("<h2>Claims per month of service</h2>");
    if report.months.is_empty() {
        h.push_str("<p class=\"muted\">No CCLF claim tables in this output.</p>");
    } else {
        let months = month_axis(report.months.iter().map(|r| r.month.as_str()));
        let types: Vec<String> = report
            .months
            .iter()
            .map(|r| type_name(&r.claim_type))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut claims: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut paid: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for t in &types {
            claims.insert(t, vec![0.0; months.len()]);
            paid.insert(t, vec![0.0; months.len()]);
        }
        for r in &report.months {
            let name = type_name(&r.claim_type);
            let i = months.binary_search(&r.month).unwrap_or(0);
            if let Some(v) = claims.get_mut(name.as_str()) {
                v[i] += r.claims as f64;
            }
            if let Some(v) = paid.get_mut(name.as_str()) {
                v[i] += r.paid_cents as f64 / 100.0;
            }
        }
        let series = |m: BTreeMap<&str, Vec<f64>>| -> Vec<(String, Vec<f64>)> {
            m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        h.push_str("<p>Current claims (every run's, the claim-history rule applied) by month of <code>CLM_FROM_DT</code> and claim type.</p>");
        h.push_str(&stacked_bars(
            "claims per month by claim type",
            &months,
            &series(claims),
            |v| thousands(v.round() as u64),
        ));
        h.push_str(&stacked_bars(
            "paid per month by claim type (USD)",
            &months,
            &series(paid),
            |v| money((v * 100.0).round() as i64),
        ));
        h.push_str("<details><summary>the numbers</summary><table><tr><th class=\"l\">claim type</th><th>month</th><th>claims</th><th>paid</th></tr>");
        for r in &report.months {
            let _ = write!(
                h,
                "<tr data-type=\"{}\" data-month=\"{}\" data-claims=\"{}\" data-paid-cents=\"{}\"><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.claim_type),
                esc(&r.month),
                r.claims,
                r.paid_cents,
                esc(&type_name(&r.claim_type)),
                esc(&r.month),
                thousands(r.claims),
                money(r.paid_cents)
            );
        }
        h.push_str("</table></details>");
    }

    // Rows per table over runs.
    h.push_str("<h2>Rows per table, this run and the runs before</h2>");
    let run_ids: Vec<String> = report.runs.iter().map(|r| r.run_id.clone()).collect();
    let totals = vec![(
        "rows in CCLF tables".to_owned(),
        report
            .runs
            .iter()
            .map(|r| {
                r.tables
                    .iter()
                    .filter(|(t, _)| t.starts_with("cclf"))
                    .map(|(_, n)| *n as f64)
                    .sum()
            })
            .collect(),
    )];
    let short: Vec<String> = run_ids
        .iter()
        .map(|r| r.chars().take(15).collect())
        .collect();
    h.push_str(&stacked_bars(
        "rows written to CCLF tables per run",
        &short,
        &totals,
        |v| thousands(v.round() as u64),
    ));
    let shown = &report.runs[report.runs.len().saturating_sub(6)..];
    let names: BTreeSet<&String> = shown.iter().flat_map(|r| r.tables.keys()).collect();
    h.push_str("<table><tr><th class=\"l\">table</th>");
    for r in shown {
        let _ = write!(h, "<th>{}</th>", esc(&r.run_id));
    }
    h.push_str("</tr>");
    for t in names {
        let _ = write!(h, "<tr><td class=\"l\">{}</td>", esc(t));
        for r in shown {
            let n = r.tables.get(t).copied();
            let _ = write!(
                h,
                "<td data-table=\"{}\" data-run=\"{}\">{}</td>",
                esc(t),
                esc(&r.run_id),
                n.map_or_else(|| "—".to_owned(), thousands)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");

    // Rejects and row errors.
    h.push_str("<h2>Rejects and row errors</h2>");
    h.push_str(&counts_table(&report.rejects, "rejected lines"));
    h.push_str(&counts_table(&report.row_errors, "row errors"));

    // Claim history.
    h.push_str("<h2>Claim history</h2>");
    if let Some(e) = &report.events {
        let _ = write!(
            h,
            "<table><tr><th class=\"l\">claims new to the output</th><td data-events=\"new-claims\" data-n=\"{}\">{}</td></tr><tr><th class=\"l\">new versions of claims it held</th><td data-events=\"new-versions\" data-n=\"{}\">{}</td></tr><tr><th class=\"l\">cancels recorded</th><td data-events=\"cancels\" data-n=\"{}\">{}</td></tr></table>",
            e.new_claims,
            thousands(e.new_claims),
            e.new_versions,
            thousands(e.new_versions),
            e.cancels,
            thousands(e.cancels)
        );
    }
    match detail(report, "history") {
        Some(hist) => {
            let _ = write!(
                h,
                "<table><tr><th class=\"l\">claims this run made current</th><td data-history=\"claims\">{}</td></tr><tr><th class=\"l\">versions left out (earlier or cancelled versions, duplicates)</th><td data-history=\"superseded\">{}</td></tr><tr><th class=\"l\">versions older than the output's (ignored)</th><td data-history=\"stale\">{}</td></tr><tr><th class=\"l\">claims removed by a cancel</th><td data-history=\"removed\">{}</td></tr><tr><th class=\"l\">cancels</th><td data-history=\"cancels\">{}</td></tr></table>",
                thousands(report.movement.iter().map(|m| m.claims).sum()),
                num(Some(hist), "superseded"),
                num(Some(hist), "stale_groups"),
                num(Some(hist), "removed_groups"),
                num(Some(hist), "cancels"),
            );
        }
        None => h.push_str("<p class=\"muted\">Not recorded for this run (its command's report was not saved).</p>"),
    }

    // Beneficiaries.
    h.push_str("<h2>Beneficiaries and MBIs</h2>");
    let benes = detail(report, "beneficiaries");
    let _ = write!(
        h,
        "<table><tr><th class=\"l\">Patients with an MBI in this run</th><td>{}</td></tr><tr><th class=\"l\">beneficiaries the output knows</th><td>{}</td></tr><tr><th class=\"l\">claims whose MBI could not be resolved</th><td>{}</td></tr><tr><th class=\"l\">Coverage without its Patient</th><td>{}</td></tr><tr><th class=\"l\">Patients without their Coverage</th><td>{}</td></tr><tr><th class=\"l\">of them, CCLF8's Coverage columns from the earlier row (the others NULL)</th><td>{}</td></tr>",
        num(benes, "with_mbi"),
        thousands(report.beneficiaries),
        num(benes, "unresolved_claims"),
        num(benes, "coverage_without_patient"),
        num(benes, "patient_without_coverage"),
        num(benes, "coverage_carried"),
    );
    if let Some(added) = report.beneficiaries_added {
        let _ = write!(
            h,
            "<tr><th class=\"l\">beneficiaries new to the output since the previous run</th><td data-benes=\"added\">{added}</td></tr>"
        );
    }
    if let Some(changed) = report
        .details
        .as_ref()
        .and_then(|d| d.get("attribution_changed"))
        .and_then(serde_json::Value::as_bool)
    {
        let _ = write!(
            h,
            "<tr><th class=\"l\">attribution changed since the last run</th><td>{}</td></tr>",
            if changed { "yes" } else { "no" }
        );
    }
    h.push_str("</table>");

    // Coverage.
    h.push_str("<h2>The crosswalk's coverage</h2><p>Per CCLF table: its CCLF columns, those the views map, and the share of non-NULL values in the mapped columns over the current rows.</p>");
    h.push_str("<table><tr><th class=\"l\">table</th><th>rows</th><th>columns</th><th>mapped</th><th>filled</th><th class=\"l\">mapped but NULL in every row</th></tr>");
    for c in &report.coverage {
        let _ = write!(
            h,
            "<tr data-table=\"{}\" data-rows=\"{}\"><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}%</td><td class=\"l\">{}</td></tr>",
            esc(&c.table),
            c.rows,
            esc(&c.table),
            thousands(c.rows),
            c.columns,
            c.mapped,
            c.filled * 100.0,
            esc(&c.empty.join(", "))
        );
    }
    h.push_str("</table>");

    // Movement against the previous run.
    h.push_str("<h2>Against the previous run</h2>");
    match &report.previous {
        None => h.push_str("<p class=\"muted\">This is the output's first run.</p>"),
        Some(p) => {
            let _ = write!(
                h,
                "<p>Claims and <code>payment.amount</code> each run loaded, per claim type: this run against run {}.</p>",
                esc(&p.run_id)
            );
            h.push_str("<table><tr><th class=\"l\">claim type</th><th>claims before</th><th>claims now</th><th>change</th><th>paid before</th><th>paid now</th><th>change</th></tr>");
            for m in &report.movement {
                let dc = m.claims as i64 - m.previous_claims as i64;
                let dp = m.paid_cents - m.previous_paid_cents;
                let class = |d: i64| match d.signum() {
                    1 => "up",
                    -1 => "down",
                    _ => "muted",
                };
                let _ = write!(
                    h,
                    "<tr data-movement=\"{}\"><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"{}\">{:+}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                    esc(&m.claim_type),
                    esc(&m.claim_type),
                    thousands(m.previous_claims),
                    thousands(m.claims),
                    class(dc),
                    dc,
                    money(m.previous_paid_cents),
                    money(m.paid_cents),
                    class(dp),
                    money(dp)
                );
            }
            h.push_str("</table>");
        }
    }
    h.push_str("<p class=\"muted\">Aggregates only: no MBI, resource id or value of a claim is in this page.</p></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_text_are_formatted_and_escaped() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(money(-123_456), "-1,234.56");
        assert_eq!(money(5), "0.05");
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(type_name("71"), "71 Carrier");
        assert_eq!(type_name(""), "Part D (v1/v2)");
    }

    #[test]
    fn the_month_axis_is_contiguous() {
        let axis = month_axis(["2024-11", "2025-02"].into_iter());
        assert_eq!(axis, ["2024-11", "2024-12", "2025-01", "2025-02"]);
        assert_eq!(month_axis(["", "2025-02"].into_iter()), ["", "2025-02"]);
    }

    #[test]
    fn a_chart_is_svg_with_a_bar_per_value() {
        let svg = stacked_bars(
            "t",
            &["2025-01".to_owned(), "2025-02".to_owned()],
            &[
                ("a".to_owned(), vec![1.0, 2.0]),
                ("b".to_owned(), vec![0.0, 3.0]),
            ],
            |v| v.to_string(),
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect").count(),
            3 + 2,
            "3 bars and 2 legend keys"
        );
    }
}
