//! ViewDefinition evaluation on the simd-json tape, next to plain tape parsing of the same input.
//!
//! Input: the real R4 ExplanationOfBenefit lines in `sample-data/real/r4/` cycled to ~50 MB.
//! Views: a CCLF1-like header view (~30 identifier / extension / coding lookups) and a line view
//! (`forEach: item`, ~20 columns); and the built-in CCLF v2 views (`mappings/cclf/v2`, the real
//! `claimline load` workload on R4). Criterion reports MB/s per benchmark; with `--bench`, a summary
//! of resources/s, rows/s and MB/s follows (one thread).

use std::hint::black_box;
use std::time::Instant;

use claimline_ndjson::LineParser;
use claimline_view::{Rows, ViewDefinition, ViewSet};
use criterion::{Criterion, Throughput};

const TARGET_BYTES: usize = 50 * 1024 * 1024;
/// Input size when run as a test (`cargo test --benches`): each benchmark runs once.
const TEST_BYTES: usize = 2 * 1024 * 1024;

const BB: &str = "https://bluebutton.cms.gov/resources/variables/";

fn header_view() -> String {
    let ext_code = |name: &str| {
        format!(
            r#"{{"name":"{name}","path":"extension('{BB}{name}').value.ofType(Coding).code.first()","type":"string"}}"#
        )
    };
    let ext_ident = |name: &str| {
        format!(
            r#"{{"name":"{name}","path":"extension('{BB}{name}').value.ofType(Identifier).value.first()","type":"string"}}"#
        )
    };
    let mut cols = vec![
        r#"{"name":"resource_id","path":"getResourceKey()","type":"id"}"#.to_owned(),
        format!(r#"{{"name":"cur_clm_uniq_id","path":"identifier.where(system = '{BB}clm_id').value.first()","type":"string"}}"#),
        r#"{"name":"clm_grp","path":"identifier.where(system = 'https://bluebutton.cms.gov/resources/identifier/claim-group').value.first()","type":"string"}"#.to_owned(),
        r#"{"name":"eob_type","path":"type.coding.where(system = 'https://bluebutton.cms.gov/resources/codesystem/eob-type').code.first()","type":"code"}"#.to_owned(),
        format!(r#"{{"name":"clm_type_cd","path":"type.coding.where(system = '{BB}nch_clm_type_cd').code.first()","type":"code"}}"#),
        r#"{"name":"bene_key","path":"patient.getReferenceKey(Patient)","type":"string"}"#.to_owned(),
        r#"{"name":"clm_from_dt","path":"billablePeriod.start","type":"date"}"#.to_owned(),
        r#"{"name":"clm_thru_dt","path":"billablePeriod.end","type":"date"}"#.to_owned(),
        r#"{"name":"created","path":"created","type":"string"}"#.to_owned(),
        r#"{"name":"status","path":"status","type":"code"}"#.to_owned(),
        r#"{"name":"outcome","path":"outcome","type":"code"}"#.to_owned(),
        r#"{"name":"clm_pmt_amt","path":"payment.amount.value","type":"decimal","tag":[{"name":"ansi/type","value":"DECIMAL(13,2)"}]}"#.to_owned(),
        r#"{"name":"submitted","path":"total.where(category.coding.exists(code = 'submitted')).amount.value.first()","type":"decimal"}"#.to_owned(),
        r#"{"name":"rfr_npi","path":"careTeam.where(role.coding.code = 'referring').provider.identifier.value.first()","type":"string"}"#.to_owned(),
        r#"{"name":"prf_npi","path":"careTeam.where(role.coding.code = 'performing').provider.identifier.value.first()","type":"string"}"#.to_owned(),
        r#"{"name":"prncpl_dgns_cd","path":"diagnosis.where(sequence = 1).diagnosis.ofType(CodeableConcept).coding.code.first()","type":"string"}"#.to_owned(),
        r#"{"name":"dgns_count","path":"diagnosis.count()","type":"integer"}"#.to_owned(),
        r#"{"name":"insurance_ref","path":"insurance.coverage.reference.first()","type":"string"}"#.to_owned(),
        r#"{"name":"provider_id","path":"provider.identifier.value.first()","type":"string"}"#.to_owned(),
        r#"{"name":"wkly_proc_dt","path":"supportingInfo.where(category.coding.code = 'clmrecvddate').timing.ofType(date).first()","type":"date"}"#.to_owned(),
        r#"{"name":"last_updated","path":"meta.lastUpdated","type":"string"}"#.to_owned(),
    ];
    for name in [
        "nch_near_line_rec_ident_cd",
        "carr_clm_pmt_dnl_cd",
        "asgmntcd",
        "carr_clm_entry_cd",
        "clm_mdcr_non_pmt_rsn_cd",
        "clm_srvc_clsfctn_type_cd",
        "fi_clm_actn_cd",
    ] {
        cols.push(ext_code(name));
    }
    for name in [
        "carr_num",
        "carr_clm_cntl_num",
        "clm_clncl_tril_num",
        "fi_doc_clm_cntl_num",
    ] {
        cols.push(ext_ident(name));
    }
    format!(
        r#"{{"resourceType":"ViewDefinition","name":"cclf1_like","resource":"ExplanationOfBenefit","select":[{{"column":[{}]}}]}}"#,
        cols.join(",")
    )
}

fn line_view() -> String {
    let adj = |name: &str, code: &str| {
        format!(
            r#"{{"name":"{name}","path":"adjudication.where(category.coding.exists(code = '{BB}{code}')).amount.value.first()","type":"decimal"}}"#
        )
    };
    let item_ext = |name: &str| {
        format!(
            r#"{{"name":"{name}","path":"extension('{BB}{name}').value.ofType(Coding).code.first()","type":"string"}}"#
        )
    };
    let mut cols = vec![
        r#"{"name":"line_num","path":"sequence","type":"positiveInt"}"#.to_owned(),
        r#"{"name":"hcpcs_cd","path":"productOrService.coding.where(system = 'https://bluebutton.cms.gov/resources/codesystem/hcpcs').code.first()","type":"string"}"#.to_owned(),
        r#"{"name":"hcpcs_mdfr_1","path":"modifier[0].coding.code.first()","type":"string"}"#.to_owned(),
        r#"{"name":"line_from_dt","path":"serviced.ofType(Period).start","type":"date"}"#.to_owned(),
        r#"{"name":"line_thru_dt","path":"serviced.ofType(Period).end","type":"date"}"#.to_owned(),
        r#"{"name":"srvc_cnt","path":"quantity.value","type":"decimal","tag":[{"name":"ansi/type","value":"DECIMAL(18,3)"}]}"#.to_owned(),
        r#"{"name":"pos_cd","path":"location.ofType(CodeableConcept).coding.code.first()","type":"string"}"#.to_owned(),
        r#"{"name":"cms_type_srvc_cd","path":"category.coding.code.first()","type":"string"}"#.to_owned(),
        r#"{"name":"first_dgns_seq","path":"diagnosisSequence.first()","type":"integer"}"#.to_owned(),
        r#"{"name":"rndrg_npi","path":"%resource.careTeam.where(role.coding.code = 'performing').provider.identifier.value.first()","type":"string"}"#.to_owned(),
    ];
    for (name, code) in [
        ("line_nch_pmt_amt", "line_nch_pmt_amt"),
        ("line_alowd_chrg_amt", "line_alowd_chrg_amt"),
        ("line_sbmtd_chrg_amt", "line_sbmtd_chrg_amt"),
        ("line_coinsrnc_amt", "line_coinsrnc_amt"),
        ("line_bene_pmt_amt", "line_bene_pmt_amt"),
    ] {
        cols.push(adj(name, code));
    }
    for name in [
        "betos_cd",
        "line_prcsg_ind_cd",
        "line_service_deductible",
        "carr_line_mtus_cd",
    ] {
        cols.push(item_ext(name));
    }
    format!(
        r#"{{"resourceType":"ViewDefinition","name":"cclf5_like","resource":"ExplanationOfBenefit","select":[
            {{"column":[{{"name":"cur_clm_uniq_id","path":"identifier.where(system = '{BB}clm_id').value.first()","type":"string"}}]}},
            {{"forEach":"item","column":[{}]}}]}}"#,
        cols.join(",")
    )
}

fn input(target: usize) -> (Vec<u8>, usize) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sample-data/real/r4");
    let mut lines = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("sample folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ExplanationOfBenefit-"))
        })
        .collect();
    entries.sort();
    for p in entries {
        let text = std::fs::read_to_string(&p).expect("sample file");
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
    }
    let mut data = Vec::with_capacity(target + 100_000);
    let mut n = 0;
    while data.len() < target {
        let line = &lines[n % lines.len()];
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        n += 1;
    }
    (data, n)
}

/// The built-in CCLF views for BCDA v2 (R4), `mappings/cclf/v2/*.json`: the real workload.
fn cclf_v2_views() -> Vec<ViewDefinition> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../mappings/cclf/v2");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("CCLF mappings folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("CCLF view file");
            ViewDefinition::from_json(&text, &p.display().to_string()).expect("CCLF view is valid")
        })
        .collect()
}

fn views(which: &[&str]) -> ViewSet {
    let mut vs = Vec::new();
    for w in which {
        if *w == "cclf" {
            vs.extend(cclf_v2_views());
            continue;
        }
        let text = if *w == "header" {
            header_view()
        } else {
            line_view()
        };
        vs.push(
            ViewDefinition::from_json(&text, &format!("{w}.json")).expect("bench view is valid"),
        );
    }
    ViewSet::new(vs).expect("bench views feed distinct tables")
}

/// Parses every line (and runs `set`'s views on it); returns (resources, rows, row errors).
fn pass(
    data: &[u8],
    parser: &mut LineParser,
    set: Option<&ViewSet>,
    outs: &mut [Rows],
) -> (usize, usize, usize) {
    let (mut resources, mut rows, mut errors) = (0, 0, 0);
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        parser
            .parse(line, |doc| match set {
                Some(set) => {
                    for o in outs.iter_mut() {
                        o.clear();
                    }
                    set.evaluate(doc.root(), outs)
                        .expect("bench views evaluate");
                    for o in outs.iter() {
                        rows += o.rows.len();
                        errors += o.errors.len();
                    }
                }
                None => {
                    black_box(doc.root().kind());
                }
            })
            .expect("sample lines are JSON");
        resources += 1;
    }
    (resources, rows, errors)
}

fn benches(c: &mut Criterion, data: &[u8]) {
    let mut g = c.benchmark_group("r4_eob");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    let mut parser = LineParser::new();
    g.bench_function("tape_parse", |b| {
        b.iter(|| pass(data, &mut parser, None, &mut []))
    });
    for (name, which) in [
        ("header_view", &["header"][..]),
        ("line_view", &["line"][..]),
        ("header_and_line_views", &["header", "line"][..]),
        ("cclf_v2_views", &["cclf"][..]),
    ] {
        let set = views(which);
        let mut outs = set.outputs();
        g.bench_function(name, |b| {
            b.iter(|| pass(data, &mut parser, Some(&set), &mut outs))
        });
    }
    g.finish();
}

fn summary(data: &[u8]) {
    let mb = data.len() as f64 / 1e6;
    let mut parser = LineParser::new();
    eprintln!("\nsummary: {mb:.1} MB of R4 EOBs, one thread, best of 3 passes");
    for (name, which) in [
        ("tape parse only", None),
        ("header view (31 cols)", Some(&["header"][..])),
        ("line view (20 cols)", Some(&["line"][..])),
        ("header + line views", Some(&["header", "line"][..])),
        ("CCLF v2 views (9)", Some(&["cclf"][..])),
    ] {
        let set = which.map(views);
        let mut outs = set.as_ref().map(ViewSet::outputs).unwrap_or_default();
        let mut best = f64::MAX;
        let mut counts = (0, 0, 0);
        for _ in 0..3 {
            let t = Instant::now();
            counts = pass(data, &mut parser, set.as_ref(), &mut outs);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let (resources, rows, errors) = counts;
        eprintln!(
            "  {name:<24} {:>8.1} MB/s {:>10.0} resources/s {:>10.0} rows/s  ({resources} resources, {rows} rows, {errors} row errors per pass)",
            mb / best,
            resources as f64 / best,
            rows as f64 / best,
        );
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (data, _) = input(if bench { TARGET_BYTES } else { TEST_BYTES });
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &data);
    c.final_summary();
    if bench {
        summary(&data);
    }
}
