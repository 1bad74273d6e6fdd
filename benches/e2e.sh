#!/usr/bin/env bash
# End-to-end benchmark on a synthetic seven-year BCDA export (API v2):
#   1. `claimline synth` writes the export (default about 5 GB of EOB NDJSON);
#   2. each round, alternating: `claimline scan`; `claimline load` with the built-in views (all
#      CCLF tables) to SQLite and to Parquet; `claimline load` of CCLF1 alone and of CCLF5 alone
#      to Parquet, each next to DuckDB doing the same projection (the columns of
#      mappings/cclf/v2/cclf1.json and cclf5.json) of the same files to Parquet;
#   3. prints medians (seconds, MB/s, EOBs/s, peak RSS from GNU time) and the claimline/DuckDB
#      speed ratio per table, and writes benches/results/<date>-e2e.md with the machine described.
#      claimline's time is its whole process; DuckDB's runs from its connection to the end of its
#      COPY, timed by its script (Python's start and `import duckdb` are not the engine's work).
#
#   benches/e2e.sh                    # ~5 GB of EOB NDJSON, 3 rounds
#   SIZE_MB=400 ROUNDS=3 benches/e2e.sh
#   BENES=60 YEARS=7 benches/e2e.sh   # size by beneficiaries instead
#   RESULT=benches/results/x.md ...  # where the report goes (default <date>-e2e.md)
#
# Needs: cargo, python3 (DuckDB comes from PyPI into a virtualenv this script makes), GNU time.
# Big data goes under $WORK (default target/bench-e2e), never into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-5000}
YEARS=${YEARS:-7}
# A seven-year v2 beneficiary is about 9.6 MB of EOB NDJSON.
BENES=${BENES:-$(( (SIZE_MB * 10 + 95) / 96 ))}
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-42}
THREADS=${THREADS:-0}
WORK=${WORK:-target/bench-e2e}
VENV=${VENV:-$WORK/venv}
BIN=${BIN:-target/release/claimline}
mkdir -p "$WORK"
# Every timed run writes a new output; they go once the timed runs are over
# (benches/fresh_out.sh).
. benches/fresh_out.sh
fresh_out_clear

if [ -z "${SKIP_BUILD:-}" ]; then
  flock /tmp/claimline-cargo.lock cargo build --release -q -p claimline --bin claimline
fi

EXPORT="$WORK/export-v2-$BENES-$YEARS-$SEED"
if [ ! -f "$EXPORT/manifest.json" ]; then
  rm -rf "$EXPORT"
  /usr/bin/time -f "%e %M" -o "$WORK/time.synth" "$BIN" synth --benes "$BENES" --years "$YEARS" \
    --seed "$SEED" --out "$EXPORT" --json > "$WORK/synth.json"
fi
# The export read once from disk, whatever wrote it: every tool meets the same page cache (see
# benches/page_cache.py).
python3 benches/page_cache.py "$EXPORT"
SYNTH_JSON=$(cat "$WORK/synth.json" 2>/dev/null || echo '{}')
EOB_BYTES=$(cat "$EXPORT"/ExplanationOfBenefit.*.ndjson | wc -c)
EOBS=$(cat "$EXPORT"/ExplanationOfBenefit.*.ndjson | wc -l)
ALL_BYTES=$(cat "$EXPORT"/*.ndjson | wc -c)

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "duckdb>=1.3"
fi

cat > "$WORK/duckdb_cclf.py" <<'PY'
"""DuckDB doing what mappings/cclf/v2/cclf1.json (one row per institutional claim) and
cclf5.json (one row per carrier claim line) do, column for column, NDJSON to zstd Parquet."""
import sys, time, duckdb
table, src, patients, dst, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
# DuckDB's time runs from its connection to the end of the COPY: the interpreter's start and
# `import duckdb` (0.2-0.3 s here) are Python's, not the engine's, and the count after is a check.
started = time.perf_counter()
con = duckdb.connect()
if threads:
    con.execute(f"SET threads = {threads}")
CODING = 'STRUCT(system VARCHAR, code VARCHAR)[]'
EXT = 'STRUCT(url VARCHAR, valueCoding STRUCT(code VARCHAR), valueMoney STRUCT("value" DECIMAL(18,2)), valueIdentifier STRUCT("value" VARCHAR))[]'
COLUMNS = {
    'identifier': 'STRUCT(system VARCHAR, "value" VARCHAR)[]',
    'contained': f'STRUCT(resourceType VARCHAR, identifier STRUCT(system VARCHAR, "value" VARCHAR, type STRUCT(coding {CODING}))[])[]',
    'patient': 'STRUCT(reference VARCHAR)',
    'type': f'STRUCT(coding {CODING})',
    'status': 'VARCHAR',
    'disposition': 'VARCHAR',
    'billablePeriod': f'STRUCT("start" DATE, "end" DATE, extension {EXT})',
    'facility': f'STRUCT(extension {EXT})',
    'extension': EXT,
    'diagnosis': f'STRUCT(sequence INTEGER, type STRUCT(coding {CODING})[], diagnosisCodeableConcept STRUCT(coding {CODING}))[]',
    'payment': 'STRUCT(amount STRUCT("value" DECIMAL(18,2)))',
    'supportingInfo': f'STRUCT(category STRUCT(coding {CODING}), code STRUCT(coding {CODING}), timingDate DATE)[]',
    'careTeam': f'STRUCT(sequence INTEGER, role STRUCT(coding {CODING}), provider STRUCT(identifier STRUCT("value" VARCHAR)), extension {EXT}, qualification STRUCT(coding {CODING}))[]',
    'total': f'STRUCT(category STRUCT(coding {CODING}), amount STRUCT("value" DECIMAL(18,2)))[]',
    'benefitBalance': f'STRUCT(financial STRUCT(type STRUCT(coding {CODING}), usedMoney STRUCT("value" DECIMAL(18,2)))[])[]',
    'item': (f'STRUCT(sequence INTEGER, careTeamSequence INTEGER[], diagnosisSequence INTEGER[], '
             f'locationAddress STRUCT(state VARCHAR), locationCodeableConcept STRUCT(extension {EXT}, coding {CODING}), '
             f'category STRUCT(coding {CODING}), servicedPeriod STRUCT("start" DATE, "end" DATE), servicedDate DATE, '
             f'productOrService STRUCT(coding {CODING}), adjudication STRUCT(category STRUCT(coding {CODING}), amount STRUCT("value" DECIMAL(18,2)))[], '
             f'extension {EXT}, quantity STRUCT("value" DECIMAL(18,4)), modifier STRUCT(coding {CODING})[])[]'),
}
columns = "{" + ", ".join(f"{k}: '{v}'" for k, v in COLUMNS.items()) + "}"
B = 'https://bluebutton.cms.gov/resources/variables/'
ICD = "('http://hl7.org/fhir/sid/icd-10-cm', 'http://hl7.org/fhir/sid/icd-9-cm')"
con.execute(f"""
CREATE MACRO code_of(codings, sys) AS list_filter(codings, lambda c: c.system = sys)[1].code;
CREATE MACRO has_code(codings, cd) AS len(list_filter(codings, lambda c: c.code = cd)) > 0;
CREATE MACRO has_sys_code(codings, sys, cd) AS len(list_filter(codings, lambda c: c.system = sys AND c.code = cd)) > 0;
CREATE MACRO has_sys(codings, sys) AS len(list_filter(codings, lambda c: c.system = sys)) > 0;
CREATE MACRO ext_code(exts, u) AS list_filter(exts, lambda e: e.url = u)[1].valueCoding.code;
CREATE MACRO ext_money(exts, u) AS list_filter(exts, lambda e: e.url = u)[1].valueMoney."value";
CREATE MACRO icd_of(codings) AS replace(list_filter(codings, lambda c: c.system IN {ICD})[1].code, '.', '');
CREATE MACRO si_by_code_system(si, sys) AS list_filter(si, lambda s: has_sys(s.code.coding, sys))[1].code.coding[1].code;
CREATE MACRO si_by_category(si, cd) AS list_filter(si, lambda s: has_code(s.category.coding, cd))[1];
CREATE MACRO dx_by_type(dx, cd) AS icd_of(list_filter(dx, lambda d: len(list_filter(d.type, lambda t: has_sys_code(t.coding, 'http://terminology.hl7.org/CodeSystem/ex-diagnosistype', cd))) > 0)[1].diagnosisCodeableConcept.coding);
CREATE MACRO dx_seq(dx, n) AS icd_of(list_filter(dx, lambda d: d.sequence = n)[1].diagnosisCodeableConcept.coding);
CREATE MACRO team_by_role(team, role) AS list_filter(team, lambda t: has_sys_code(t.role.coding, 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole', role))[1].provider.identifier."value";
CREATE MACRO adj_amt(adjs, cd) AS list_filter(adjs, lambda a: has_code(a.category.coding, cd))[1].amount."value";
CREATE MACRO eob_type(t) AS code_of(t.coding, 'https://bluebutton.cms.gov/resources/codesystem/eob-type');
""")
clm_id = f"list_filter(identifier, lambda x: x.system IN ('{B}clm_id', '{B}pde_id'))[1].\"value\""
# BENE_MBI_ID: the current MBI of the referenced Patient, as claimline resolves it.
bene = "xref.mbi"
if table == 'cclf1':
    select = f"""
    SELECT
      {clm_id} AS CUR_CLM_UNIQ_ID,
      list_filter(flatten(list_transform(list_filter(contained, lambda o: o.resourceType = 'Organization'), lambda o: o.identifier)),
                  lambda i: has_sys_code(i.type.coding, 'http://terminology.hl7.org/CodeSystem/v2-0203', 'PRN'))[1]."value" AS PRVDR_OSCAR_NUM,
      {bene} AS BENE_MBI_ID,
      NULL::VARCHAR AS BENE_HIC_NUM,
      code_of(type.coding, '{B}nch_clm_type_cd') AS CLM_TYPE_CD,
      billablePeriod."start" AS CLM_FROM_DT,
      billablePeriod."end" AS CLM_THRU_DT,
      ext_code(facility.extension, '{B}clm_fac_type_cd') AS CLM_BILL_FAC_TYPE_CD,
      ext_code(extension, '{B}clm_srvc_clsfctn_type_cd') AS CLM_BILL_CLSFCTN_CD,
      dx_by_type(diagnosis, 'principal') AS PRNCPL_DGNS_CD,
      dx_by_type(diagnosis, 'admitting') AS ADMTG_DGNS_CD,
      ext_code(extension, '{B}clm_mdcr_non_pmt_rsn_cd') AS CLM_MDCR_NPMT_RSN_CD,
      payment.amount."value" AS CLM_PMT_AMT,
      si_by_code_system(supportingInfo, '{B}nch_prmry_pyr_cd') AS CLM_NCH_PRMRY_PYR_CD,
      list_filter(list_transform(item, lambda i: i.locationAddress.state), lambda s: s IS NOT NULL)[1] AS PRVDR_FAC_FIPS_ST_CD,
      si_by_code_system(supportingInfo, '{B}ptnt_dschrg_stus_cd') AS BENE_PTNT_STUS_CD,
      si_by_code_system(supportingInfo, '{B}clm_drg_cd') AS DGNS_DRG_CD,
      NULL::VARCHAR AS CLM_OP_SRVC_TYPE_CD,
      list_filter(flatten(list_transform(list_filter(contained, lambda o: o.resourceType = 'Organization'), lambda o: o.identifier)),
                  lambda i: i.system = 'http://hl7.org/fhir/sid/us-npi')[1]."value" AS FAC_PRVDR_NPI_NUM,
      team_by_role(careTeam, 'operating') AS OPRTG_PRVDR_NPI_NUM,
      team_by_role(careTeam, 'attending') AS ATNDG_PRVDR_NPI_NUM,
      team_by_role(careTeam, 'otheroperating') AS OTHR_PRVDR_NPI_NUM,
      CASE WHEN status = 'cancelled' THEN '1' ELSE '0' END AS CLM_ADJSMT_TYPE_CD,
      si_by_category(supportingInfo, '{B}nch_wkly_proc_dt').timingDate AS CLM_EFCTV_DT,
      NULL::DATE AS CLM_IDR_LD_DT,
      NULL::VARCHAR AS BENE_EQTBL_BIC_HICN_NUM,
      si_by_category(supportingInfo, '{B}clm_ip_admsn_type_cd').code.coding[1].code AS CLM_ADMSN_TYPE_CD,
      si_by_code_system(supportingInfo, '{B}clm_src_ip_admsn_cd') AS CLM_ADMSN_SRC_CD,
      si_by_code_system(supportingInfo, '{B}clm_freq_cd') AS CLM_BILL_FREQ_CD,
      ext_code(billablePeriod.extension, '{B}claim_query_cd') AS CLM_QUERY_CD,
      CASE WHEN has_sys(list_filter(diagnosis, lambda d: len(list_filter(d.type, lambda t: has_code(t.coding, 'principal'))) > 0)[1].diagnosisCodeableConcept.coding, 'http://hl7.org/fhir/sid/icd-9-cm') THEN '9'
           WHEN has_sys(list_filter(diagnosis, lambda d: len(list_filter(d.type, lambda t: has_code(t.coding, 'principal'))) > 0)[1].diagnosisCodeableConcept.coding, 'http://hl7.org/fhir/sid/icd-10-cm') THEN '0'
           ELSE 'U' END AS DGNS_PRCDR_ICD_IND,
      list_filter(total, lambda t: has_code(t.category.coding, '{B}clm_tot_chrg_amt'))[1].amount."value" AS CLM_MDCR_INSTNL_TOT_CHRG_AMT,
      list_filter(flatten(list_transform(benefitBalance, lambda b: b.financial)), lambda f: has_code(f.type.coding, '{B}clm_pps_cptl_ime_amt'))[1].usedMoney."value" AS CLM_MDCR_IP_PPS_CPTL_IME_AMT,
      ext_money(extension, '{B}ime_op_clm_val_amt') AS CLM_OPRTNL_IME_AMT,
      list_filter(flatten(list_transform(benefitBalance, lambda b: b.financial)), lambda f: has_code(f.type.coding, '{B}clm_pps_cptl_dsprprtnt_shr_amt'))[1].usedMoney."value" AS CLM_MDCR_IP_PPS_DSPRPRTNT_AMT,
      ext_money(extension, '{B}clm_uncompd_care_pmt_amt') AS CLM_HIPPS_UNCOMPD_CARE_AMT,
      ext_money(extension, '{B}dsh_op_clm_val_amt') AS CLM_OPRTNL_DSPRPRTNT_AMT,
      NULL::VARCHAR AS CLM_BLG_PRVDR_OSCAR_NUM, NULL::VARCHAR AS CLM_BLG_PRVDR_NPI_NUM,
      NULL::VARCHAR AS CLM_OPRTG_PRVDR_NPI_NUM, NULL::VARCHAR AS CLM_ATNDG_PRVDR_NPI_NUM,
      NULL::VARCHAR AS CLM_OTHR_PRVDR_NPI_NUM, NULL::VARCHAR AS CLM_CNTL_NUM,
      NULL::VARCHAR AS CLM_ORG_CNTL_NUM, NULL::VARCHAR AS CLM_CNTRCTR_NUM
    FROM eob LEFT JOIN xref ON xref.ref = eob.patient.reference
    WHERE eob_type(type) IN ('INPATIENT', 'OUTPATIENT', 'SNF', 'HHA', 'HOSPICE')"""
else:
    dgns = ",\n      ".join(f"dx_seq(diagnosis, {n}) AS CLM_DGNS_{n}_CD" for n in range(1, 9))
    dgns2 = ",\n      ".join(f"dx_seq(diagnosis, {n}) AS CLM_DGNS_{n}_CD" for n in range(9, 13))
    team = "list_filter(careTeam, lambda c: list_contains(it.careTeamSequence, c.sequence))"
    select = f"""
    SELECT
      {clm_id} AS CUR_CLM_UNIQ_ID,
      CAST(it.sequence AS VARCHAR) AS CLM_LINE_NUM,
      {bene} AS BENE_MBI_ID,
      NULL::VARCHAR AS BENE_HIC_NUM,
      code_of(type.coding, '{B}nch_clm_type_cd') AS CLM_TYPE_CD,
      billablePeriod."start" AS CLM_FROM_DT,
      billablePeriod."end" AS CLM_THRU_DT,
      ext_code({team}[1].extension, '{B}carr_line_prvdr_type_cd') AS RNDRG_PRVDR_TYPE_CD,
      ext_code(it.locationCodeableConcept.extension, '{B}prvdr_state_cd') AS RNDRG_PRVDR_FIPS_ST_CD,
      code_of({team}[1].qualification.coding, '{B}prvdr_spclty') AS CLM_PRVDR_SPCLTY_CD,
      code_of(it.category.coding, '{B}line_cms_type_srvc_cd') AS CLM_FED_TYPE_SRVC_CD,
      code_of(it.locationCodeableConcept.coding, '{B}line_place_of_srvc_cd') AS CLM_POS_CD,
      coalesce(it.servicedPeriod."start", it.servicedDate) AS CLM_LINE_FROM_DT,
      coalesce(it.servicedPeriod."end", it.servicedDate) AS CLM_LINE_THRU_DT,
      code_of(it.productOrService.coding, 'https://bluebutton.cms.gov/resources/codesystem/hcpcs') AS CLM_LINE_HCPCS_CD,
      adj_amt(it.adjudication, '{B}line_nch_pmt_amt') AS CLM_LINE_CVRD_PD_AMT,
      ext_code(it.extension, '{B}line_bene_prmry_pyr_cd') AS CLM_LINE_PRMRY_PYR_CD,
      icd_of(list_filter(diagnosis, lambda d: list_contains(it.diagnosisSequence, d.sequence))[1].diagnosisCodeableConcept.coding) AS CLM_LINE_DGNS_CD,
      ext_code(it.extension, '{B}tax_num') AS CLM_RNDRG_PRVDR_TAX_NUM,
      list_filter(careTeam, lambda c: list_contains(it.careTeamSequence, c.sequence)
                  AND has_sys_code(c.role.coding, 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole', 'performing'))[1].provider.identifier."value" AS RNDRG_PRVDR_NPI_NUM,
      ext_code(extension, '{B}carr_clm_pmt_dnl_cd') AS CLM_CARR_PMT_DNL_CD,
      ext_code(it.extension, '{B}line_prcsg_ind_cd') AS CLM_PRCSG_IND_CD,
      CASE WHEN status = 'cancelled' THEN '1' ELSE '0' END AS CLM_ADJSMT_TYPE_CD,
      si_by_category(supportingInfo, '{B}nch_wkly_proc_dt').timingDate AS CLM_EFCTV_DT,
      NULL::DATE AS CLM_IDR_LD_DT,
      list_filter(extension, lambda e: e.url = '{B}carr_clm_cntl_num')[1].valueIdentifier."value" AS CLM_CNTL_NUM,
      NULL::VARCHAR AS BENE_EQTBL_BIC_HICN_NUM,
      adj_amt(it.adjudication, '{B}line_alowd_chrg_amt') AS CLM_LINE_ALOWD_CHRG_AMT,
      it.quantity."value" AS CLM_LINE_SRVC_UNIT_QTY,
      list_filter(flatten(list_transform(it.modifier, lambda m: m.coding)), lambda c: c.system = 'https://bluebutton.cms.gov/resources/codesystem/hcpcs')[1].code AS HCPCS_1_MDFR_CD,
      list_filter(flatten(list_transform(it.modifier, lambda m: m.coding)), lambda c: c.system = 'https://bluebutton.cms.gov/resources/codesystem/hcpcs')[2].code AS HCPCS_2_MDFR_CD,
      NULL::VARCHAR AS HCPCS_3_MDFR_CD, NULL::VARCHAR AS HCPCS_4_MDFR_CD, NULL::VARCHAR AS HCPCS_5_MDFR_CD,
      disposition AS CLM_DISP_CD,
      {dgns},
      CASE WHEN has_sys(list_filter(diagnosis, lambda d: d.sequence = 1)[1].diagnosisCodeableConcept.coding, 'http://hl7.org/fhir/sid/icd-9-cm') THEN '9'
           WHEN has_sys(list_filter(diagnosis, lambda d: d.sequence = 1)[1].diagnosisCodeableConcept.coding, 'http://hl7.org/fhir/sid/icd-10-cm') THEN '0'
           ELSE 'U' END AS DGNS_PRCDR_ICD_IND,
      {dgns2},
      ext_code(it.extension, '{B}betos_cd') AS HCPCS_BETOS_CD,
      NULL::VARCHAR AS CLM_RNDRG_PRVDR_NPI_NUM, NULL::VARCHAR AS CLM_RFRG_PRVDR_NPI_NUM,
      NULL::VARCHAR AS CLM_CNTRCTR_NUM
    FROM eob LEFT JOIN xref ON xref.ref = eob.patient.reference, unnest(item) AS u(it)
    WHERE eob_type(type) = 'CARRIER'"""
con.execute(f"""
CREATE VIEW eob AS SELECT * FROM read_json({src!r}, format = 'newline_delimited', columns = {columns},
  maximum_object_size = 268435456)""")
con.execute(f"""
CREATE VIEW xref AS SELECT 'Patient/' || id AS ref,
  list_filter(identifier, lambda i: i.system = 'http://hl7.org/fhir/sid/us-mbi'
    AND len(list_filter(flatten(list_transform(i.type.coding, lambda c: c.extension)), lambda e: e.valueCoding.code = 'current')) > 0)[1]."value" AS mbi
FROM read_json({patients!r}, format = 'newline_delimited', columns = {{id: 'VARCHAR',
  identifier: 'STRUCT(system VARCHAR, "value" VARCHAR, type STRUCT(coding STRUCT(extension STRUCT(valueCoding STRUCT(code VARCHAR))[])[]))[]'}})""")
con.execute(f"COPY ({select}) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
seconds = time.perf_counter() - started
print(con.execute(f"SELECT count(*) FROM read_parquet('{dst}')").fetchone()[0])
print(f"{seconds:.4f}")
PY

measure() { # name, command...: prints "seconds peak_rss_kb"
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.$name" "$@" > "$WORK/out.$name" 2> "$WORK/err.$name" \
    || { cat "$WORK/err.$name" >&2; exit 1; }
  cat "$WORK/time.$name"
}

EOB_GLOB="$EXPORT/ExplanationOfBenefit.*.ndjson"
PATIENT_GLOB="$EXPORT/Patient.*.ndjson"
RUNS="scan load_sqlite load_parquet cl_cclf1 dk_cclf1 cl_cclf5 dk_cclf5"
declare -A T M P
for r in $(seq 1 "$ROUNDS"); do
  for run in $RUNS; do
    out=$(fresh_out "$run")
    case $run in
      scan) cmd=("$BIN" scan "$EXPORT" --json --rejects "$out.rejects") ;;
      load_sqlite) cmd=("$BIN" load "$EXPORT" --format sqlite --out "$out" --json --threads "$THREADS") ;;
      load_parquet) cmd=("$BIN" load "$EXPORT" --format parquet --out "$out" --json --threads "$THREADS") ;;
      cl_cclf1) cmd=("$BIN" load "$EXPORT" --views mappings/cclf/v2/cclf1.json --format parquet --out "$out" --json --threads "$THREADS") ;;
      cl_cclf5) cmd=("$BIN" load "$EXPORT" --views mappings/cclf/v2/cclf5.json --format parquet --out "$out" --json --threads "$THREADS") ;;
      dk_cclf1) cmd=("$VENV/bin/python" "$WORK/duckdb_cclf.py" cclf1 "$EOB_GLOB" "$PATIENT_GLOB" "$out.parquet" "$THREADS") ;;
      dk_cclf5) cmd=("$VENV/bin/python" "$WORK/duckdb_cclf.py" cclf5 "$EOB_GLOB" "$PATIENT_GLOB" "$out.parquet" "$THREADS") ;;
    esac
    read -r t m < <(measure "$run" "${cmd[@]}")
    # DuckDB's own time is what its script measured (its output's second line); its process's
    # time (with Python's start and `import duckdb`) is kept in P, for the report.
    if [[ $run == dk_* ]]; then
      P[$run]="${P[$run]:-} $t"
      t=$(sed -n 2p "$WORK/out.$run")
    fi
    T[$run]="${T[$run]:-} $t"; M[$run]="${M[$run]:-} $m"
    cp "$WORK/out.$run" "$WORK/last.$run"
  done
  echo "round $r: $(for run in $RUNS; do printf '%s %ss  ' "$run" "$(echo "${T[$run]}" | awk '{print $NF}')"; done)"
done
fresh_out_clear

RESULT=${RESULT:-benches/results/$(date -u +%Y-%m-%d)-e2e.md}
python3 - "$RESULT" "$EOB_BYTES" "$ALL_BYTES" "$EOBS" "$BENES" "$YEARS" "$SEED" "$ROUNDS" "$THREADS" \
  "$("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)')" "$SYNTH_JSON" "$WORK" \
  "$(for run in $RUNS; do printf '%s=%s;%s|' "$run" "${T[$run]}" "${M[$run]}"; done)" \
  "$(for run in dk_cclf1 dk_cclf5; do printf '%s=%s|' "$run" "${P[$run]}"; done)" <<'PY'
import sys, json, statistics as st, platform, os, subprocess, datetime
(result, eob_b, all_b, eobs, benes, years, seed, rounds, threads, duck_v, synth_json, work, runs, procs) = sys.argv[1:15]
process = {name: st.median(float(x) for x in t.split()) for name, t in (p.split('=') for p in procs.strip('|').split('|'))}
eob_b, all_b, eobs = int(eob_b), int(all_b), int(eobs)
data = {}
for part in runs.strip('|').split('|'):
    name, rest = part.split('=', 1)
    t, m = rest.split(';')
    data[name] = ([float(x) for x in t.split()], [int(x) for x in m.split()])
def rows(run):
    try:
        text = open(f"{work}/last.{run}").read()
        if run.startswith('dk_'):
            return int(text.split()[0])
        tables = json.loads(text).get('tables')
        if not tables:
            return None
        # The CCLF tables only (not bene_xref, _claimline_claims and the other link tables);
        # a single-table run counts its table.
        only = {'cl_cclf1': 'cclf1', 'cl_cclf5': 'cclf5'}.get(run)
        return tables.get(only, 0) if only else sum(v for k, v in tables.items() if k.startswith('cclf'))
    except Exception:
        return None
def cpu():
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'):
            return line.split(':', 1)[1].strip()
    return platform.processor()
mem = next((int(l.split()[1]) for l in open('/proc/meminfo') if l.startswith('MemTotal')), 0)
synth = json.loads(synth_json) if synth_json.strip() else {}
labels = {
    'scan': 'claimline scan (all files)',
    'load_sqlite': 'claimline load, all CCLF tables → SQLite',
    'load_parquet': 'claimline load, all CCLF tables → Parquet',
    'cl_cclf1': 'claimline load, CCLF1 only → Parquet',
    'dk_cclf1': 'DuckDB, CCLF1 projection → Parquet',
    'cl_cclf5': 'claimline load, CCLF5 only → Parquet',
    'dk_cclf5': 'DuckDB, CCLF5 projection → Parquet',
}
lines = []
lines.append(f"| run | median s | MB/s (EOB NDJSON) | EOBs/s | rows out | peak RSS MiB | all times s |")
lines.append("|---|---|---|---|---|---|---|")
med = {}
for run, (t, m) in data.items():
    med[run] = st.median(t)
    lines.append(f"| {labels[run]} | {med[run]:.2f} | {eob_b/1e6/med[run]:,.0f} | {eobs/med[run]:,.0f} | "
                 f"{rows(run) if rows(run) is not None else ''} | {st.median(m)/1024:,.0f} | {' '.join(f'{x:.2f}' for x in t)} |")
ratio1 = med['dk_cclf1'] / med['cl_cclf1']
ratio5 = med['dk_cclf5'] / med['cl_cclf5']
lines.append("")
lines.append(f"claimline / DuckDB speed: CCLF1 {ratio1:.2f}x, CCLF5 {ratio5:.2f}x (DuckDB time / claimline time, same files, same run).")
lines.append("")
lines.append("claimline's time is its whole process; DuckDB's runs from its connection to the end of its COPY, timed"
             " by its script. Its whole process (Python's start, `import duckdb`, the COPY, a count of the rows"
             f" written) took a median {process['dk_cclf1']:.2f} s (CCLF1) and {process['dk_cclf5']:.2f} s (CCLF5):"
             f" against those, {process['dk_cclf1'] / med['cl_cclf1']:.2f}x and {process['dk_cclf5'] / med['cl_cclf5']:.2f}x,"
             " as rounds 1-25 measured.")
lines.append("")
lines.append("Rows out: claimline keeps the current version of each claim group (the claim-history rule; a"
             " load drops the rows of superseded versions before it commits), DuckDB's projection"
             " keeps every version, so its counts are higher by the superseded versions.")
table = "\n".join(lines)
print(table)
gen = ""
if synth:
    gen = (f"Generation: `claimline synth` wrote {synth.get('ndjson_bytes', 0)/1e6:,.0f} MB of NDJSON in "
           f"{synth.get('seconds', 0):.1f} s: {synth.get('mb_per_s', 0):,.0f} MB/s, "
           f"{synth.get('resources_per_s', 0):,.0f} resources/s.\n")
try:
    rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
    if rev and subprocess.run(['git', 'status', '--porcelain'], capture_output=True, text=True).stdout.strip():
        rev += ' with uncommitted changes'
except Exception:
    rev = ''
doc = f"""# End-to-end benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC

Command: `benches/e2e.sh` ({'release build' if os.environ.get('BIN', 'target/release/claimline') == 'target/release/claimline' else 'binary ' + os.environ['BIN'] + ', as given; the script'}{', at ' + rev if rev else ''}), {rounds} rounds, runs alternating within each round;
medians. `--threads {threads}` (0 = all cores) for claimline and DuckDB alike.
Machine: {cpu()}, {os.cpu_count()} cores, {mem/1024/1024:.0f} GiB, {platform.system()} {platform.machine()}
({platform.release()}). DuckDB {duck_v} (PyPI). Peak RSS from GNU time (includes the pages of the
memory-mapped input being parsed; a chunk's pages leave once it is done). Load average when the runs ended: {' '.join(open('/proc/loadavg').read().split()[:3])}
(other work on the machine shows here; the per-round times show the spread).

Input: `claimline synth --benes {benes} --years {years} --seed {seed}` (API v2): {eobs:,} EOBs,
{eob_b/1e6:,.0f} MB of EOB NDJSON ({eob_b/max(eobs,1)/1e3:.1f} KB a line), {all_b/1e6:,.0f} MB with
Patient and Coverage. MB/s and EOBs/s are over the EOB NDJSON for every run.
{gen}
{table}
"""
os.makedirs(os.path.dirname(result), exist_ok=True)
with open(result, 'w') as f:
    f.write(doc)
print(f"wrote {result}")
PY
