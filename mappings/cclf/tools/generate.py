#!/usr/bin/env python3
"""Writes the CCLF ViewDefinitions (mappings/cclf/<v1|v2|v3>/<table>.json): the claim tables, and
the two views CCLF8 is joined from (cclf8_patient.json, cclf8_coverage.json; written by
beneficiary_views(), their paths by hand from bfd-shapes.md and the real samples, the crosswalk's
path kept in a `source/path` tag).

Source of truth: the crosswalk CSVs in mappings/cclf/reference/ (see SOURCES.md there) plus the
corrections in OVERRIDES below, each with the reason it departs from the CSV (kept in the column's
description and a `claimline/deviation` tag). After changing either, regenerate, then review the
golden diffs and the dictionary:

    python3 mappings/cclf/tools/generate.py
    BLESS=1 cargo test -p claimline --test cli cclf      # re-bless tests/golden/cclf/ on purpose
    cargo run -p claimline -- views doc --out mappings/cclf/DICTIONARY.md

Column types follow the CCLF picture: YYYY-MM-DD -> date; -9(n).9(s) -> decimal with an
`ansi/type` DECIMAL(n+s,s) tag; X(n) and 9(n) -> text (leading zeros kept; `code` when n <= 4).

Path rewriting (the CSV paths are written from the resource root, with %item / %procedure /
%diagnosis naming the flattened element):
- in a `forEach` over X, `ExplanationOfBenefit.X.` and `%X.` become relative to the element;
  every other `ExplanationOfBenefit.` becomes `%resource.`;
- `%item.` inside a `where(...)` (where the focus is another element) becomes
  `%resource.item[%rowIndex].`, the current line;
- `%root.` / `%context.` become `%resource.`;
- `Patient.` paths (BENE_MBI_ID) are not evaluated by the view: the column holds the
  beneficiary reference and the link stage replaces it with the current MBI.
"""

import csv
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "reference")

TABLES = ["CCLF1", "CCLF2", "CCLF3", "CCLF4", "CCLF5", "CCLF6", "CCLF7", "CCLFA", "CCLFB"]
VERSIONS = {"v1": "fhir_stu3_path", "v2": "fhir_r4_path", "v3": "bcda_v3_fhirpath"}

TITLES = {
    "CCLF1": "Part A claim header: one row per institutional claim (inpatient, outpatient, SNF, HHA, hospice)",
    "CCLF2": "Part A revenue center lines: one row per institutional claim line",
    "CCLF3": "Part A procedure codes: one row per institutional claim procedure",
    "CCLF4": "Part A diagnosis codes: one row per institutional claim diagnosis",
    "CCLF5": "Part B physician (carrier) lines: one row per carrier claim line",
    "CCLF6": "Part B DME lines: one row per DME claim line",
    "CCLF7": "Part D: one row per prescription drug event",
    "CCLFA": "Part A benefit enhancements: one row per institutional claim",
    "CCLFB": "Part B benefit enhancements: one row per carrier claim line",
}

# forEach of the table: None = one row per claim.
FOR_EACH = {
    "CCLF2": "item", "CCLF3": "procedure", "CCLF4": "diagnosis", "CCLF5": "item",
    "CCLF6": "item", "CCLF7": "item", "CCLFB": "item",
}

# The forEach a version's view walks, where it is not FOR_EACH's: STU3 puts the DRG in a
# diagnosis entry of its own that holds only `packageCode` (the crosswalk's note on
# CCLF4.CLM_DGNS_CD: skip it); it gave a CCLF4 row with no diagnosis code.
FOR_EACH_WHERE = {
    ("CCLF4", "v1"): "diagnosis.where(diagnosisCodeableConcept.exists() or diagnosisReference.exists())",
}

INSTITUTIONAL = ["INPATIENT", "OUTPATIENT", "SNF", "HHA", "HOSPICE"]
CLAIM_TYPES = {
    "CCLF1": INSTITUTIONAL, "CCLF2": INSTITUTIONAL, "CCLF3": INSTITUTIONAL,
    "CCLF4": INSTITUTIONAL, "CCLFA": INSTITUTIONAL, "CCLF5": ["CARRIER"], "CCLF6": ["DME"],
    # CCLFB is the physicians' (carrier) file: CARRIER → CCLF5 and CCLFB, DME → CCLF6 only
    # (cclf-crosswalk.md, section 4; every CCLFB crosswalk row names CARRIER). Changed in the
    # thirty-first round: DME lines were CCLFB rows too.
    "CCLF7": ["PDE"], "CCLFB": ["CARRIER"],
}

EOB_TYPE_V12 = "https://bluebutton.cms.gov/resources/codesystem/eob-type"
EOB_TYPE_V3 = "https://bluebutton.cms.gov/fhir/CodeSystem/EOB-TYPE"
CLM_TYPE_CD_V3 = "https://bluebutton.cms.gov/fhir/CodeSystem/CLM-TYPE-CD"
# BFD's CLM-TYPE-CD -> EOB-TYPE table (bfd-v3-shapes.md section 3) for builds without EOB-TYPE.
NON_INSTITUTIONAL_CODES = {
    "CARRIER": ["71", "72", "1700", "2700"],
    "DME": ["81", "82", "1800", "2800"],
    "PDE": ["1", "2", "3", "4"],
}

ICD_COLUMNS = re.compile(r"^(PRNCPL_DGNS_CD|ADMTG_DGNS_CD|CLM_DGNS_CD|CLM_DGNS_\d+_CD|CLM_LINE_DGNS_CD|CLM_PRCDR_CD)$")

V3_UC = ("identifier.where(type.coding.where(system = 'http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType'"
         " and code = 'uc').exists()).value")
V12_CLM_ID = ("identifier.where(system = 'https://bluebutton.cms.gov/resources/variables/clm_id'"
              " or system = 'https://bluebutton.cms.gov/resources/variables/pde_id').value")


def sup_info_v3(code):
    return ("supportingInfo.where(category.coding.where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/Supporting-Information'"
            f" and code = '{code}').exists())")


def v3_dgns(role):
    return ("diagnosis.where(type.coding.where(code = '" + role + "').exists())"
            ".diagnosisCodeableConcept.coding.code")


V3_ICD_IND = ("iif({x}.where(system = 'http://hl7.org/fhir/sid/icd-9-cm' or system = 'http://www.cms.gov/Medicare/Coding/ICD9').exists(), '9',"
              " iif({x}.where(system = 'http://hl7.org/fhir/sid/icd-10-cm' or system = 'http://www.cms.gov/Medicare/Coding/ICD10').exists(), '0',"
              " iif({x}.exists(), 'U', {{}})))")

# (table or '*', field, version) -> (path, why). The path is written in the view's own context
# (relative to the claim, or to the forEach element); `None` means NULL with `why` as the reason.
OVERRIDES = {}


def over(tables, field, versions, path, why):
    for t in tables:
        for v in versions:
            OVERRIDES[(t, field, v)] = (path, why)


ALL = TABLES
LINE_TABLES = ["CCLF2", "CCLF5", "CCLF6", "CCLF7", "CCLFB"]

over(ALL, "CUR_CLM_UNIQ_ID", ["v1", "v2"], V12_CLM_ID,
     "Surrogate: v1/v2 carry no CCLF claim key; this is BFD's CCW claim id (clm_id, pde_id for Part D),"
     " stable across a claim's versions within BFD but not the CCLF CUR_CLM_UNIQ_ID value.")
over(ALL, "CUR_CLM_UNIQ_ID", ["v3"], V3_UC,
     "The identifier typed C4BB 'uc' (= IDR CLM_UNIQ_ID, the EOB id). BCDA's path compares two"
     " collections with '='; written with where(...).exists().")
over(["CCLF1", "CCLF5", "CCLF6", "CCLF7"], "CLM_ADJSMT_TYPE_CD", ["v1", "v2"],
     "iif(%resource.status = 'cancelled', '1', '0')",
     "Surrogate: v1/v2 keep only the current version of a claim group, so an active EOB is '0'"
     " (original or current) and a cancelled one '1' (cancellation); CCLF's '2' (adjustment) is not"
     " told apart.")
over(["CCLF1", "CCLF5", "CCLF6", "CCLF7"], "CLM_ADJSMT_TYPE_CD", ["v3"],
     sup_info_v3("CLM_ADJSTMT_TYPE_CD") + ".code.coding.code", "")
for t in ["CCLF1"]:
    over([t], "PRNCPL_DGNS_CD", ["v3"], v3_dgns("principal"),
         "BCDA's path returns every diagnosis of the claim; filtered on the 'principal' type.")
    over([t], "ADMTG_DGNS_CD", ["v3"], v3_dgns("admitting"),
         "BCDA's path returns every diagnosis of the claim; filtered on the 'admitting' type.")
    over([t], "DGNS_PRCDR_ICD_IND", ["v3"],
         V3_ICD_IND.format(x="diagnosis.where(type.coding.where(code = 'principal').exists()).diagnosisCodeableConcept.coding"),
         "CCLF code from the principal diagnosis's coding system: 9 = ICD-9, 0 = ICD-10, U = other"
         " (BCDA's path returns the system URL).")
over(["CCLF1"], "OPRTG_PRVDR_NPI_NUM", ["v3"],
     "careTeam.where(role.coding.where(code = 'operating').exists()).provider.identifier.value",
     "BCDA's path selects 'otheroperating'; BFD writes the operating physician with role 'operating'"
     " (bfd-v3-shapes.md section 8).")
over(["CCLF1"], "CLM_OPRTG_PRVDR_NPI_NUM", ["v3"],
     "careTeam.where(role.coding.where(code = 'operating').exists()).provider.identifier.value",
     "BCDA's path selects 'otheroperating'; BFD writes the operating physician with role 'operating'.")
for f in ["OTHR_PRVDR_NPI_NUM", "CLM_OTHR_PRVDR_NPI_NUM"]:
    over(["CCLF1"], f, ["v3"],
         "careTeam.where(role.coding.where(code = 'otheroperating' or code = 'supervisor').exists()).provider.identifier.value.first()",
         "BCDA's path joins two NPIs with 'or' (not a boolean); written as the first NPI of the"
         " 'otheroperating' or 'supervisor' care-team entries.")
for f, code in [("CLM_BILL_FAC_TYPE_CD", "CLM-BILL-FAC-TYPE-CD"),
                ("CLM_BILL_CLSFCTN_CD", "CLM-BILL-CLSFCTN-CD"),
                ("CLM_BILL_FREQ_CD", "CLM-BILL-FREQ-CD")]:
    over(["CCLF1"], f, ["v3"],
         "supportingInfo.where(category.coding.where(code = 'typeofbill').exists()).code.coding"
         f".where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/{code}').code.select(substring(length() - 1))",
         "BFD writes the type-of-bill codings as cumulative prefixes (3, 33, 33X); CCLF's"
         " one-character value is the last character.")
over(["CCLF1"], "PRVDR_FAC_FIPS_ST_CD", ["v3"], sup_info_v3("PRVDR_FAC_FIPS_ST_CD") + ".code.coding.code",
     "BCDA's path ends at the CodeableConcept; the code is one level down.")
over(["CCLF1"], "PRVDR_FAC_FIPS_ST_CD", ["v1", "v2"], "item.locationAddress.state.first()",
     "Every line carries the facility state; the first line's is the claim's.")
over(["CCLF1"], "CLM_NCH_PRMRY_PYR_CD", ["v3"],
     sup_info_v3("CLM_NCH_PRMRY_PYR_CD") + ".code.coding.where("
     "system = 'https://bluebutton.cms.gov/fhir/CodeSystem/CLM-NCH-PRMRY-PYR-CD'"
     " or system = 'https://bluebutton.cms.gov/fhir/CodeSystem/CLM-PRMRY-PYR-CD').code.first()",
     "CMS's v3 responses (inpatient, SNF, HHA) code it in CLM-NCH-PRMRY-PYR-CD; the data"
     " dictionary's CLM-PRMRY-PYR-CD is only in BFD's hospice sample: both are read.")
over(["CCLF1"], "CLM_IDR_LD_DT", ["v3"], sup_info_v3("CLM_IDR_LD_DT") + ".timing", "")
over(["CCLF5"], "RNDRG_PRVDR_FIPS_ST_CD", ["v3"], "%resource." + sup_info_v3("RNDRG_PRVDR_FIPS_ST_CD") + ".code.coding.code",
     "BCDA's path ends at the CodeableConcept; the code is one level down (a claim-level value in v3).")

# Lines: dates, amounts, diagnoses, rendering provider.
for t in ["CCLF2", "CCLF5", "CCLF6"]:
    over([t], "CLM_LINE_FROM_DT", ["v3"], "iif(servicedPeriod.exists(), servicedPeriod.start, servicedDate)",
         "BCDA's path reads only servicedPeriod; a line with servicedDate (the hospice sample) has its date there.")
    over([t], "CLM_LINE_THRU_DT", ["v3"], "iif(servicedPeriod.exists(), servicedPeriod.end, servicedDate)",
         "BCDA's path reads only servicedPeriod; a line with servicedDate has its date there.")
    over([t], "CLM_LINE_HCPCS_CD", ["v3"],
         "productOrService.coding.where(system = 'http://www.ama-assn.org/go/cpt' or system = 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets').code.first()",
         "BCDA's path also returns data-absent-reason codes; only CPT/HCPCS codings are read.")
    for f, code in [("CLM_LINE_CVRD_PD_AMT", "CLM_LINE_CVRD_PD_AMT"), ("CLM_LINE_ALOWD_CHRG_AMT", "CLM_LINE_ALOWD_CHRG_AMT")]:
        over([t], f, ["v3"],
             "adjudication.where(category.coding.where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/Adjudication'"
             f" and code = '{code}').exists()).amount.value",
             "BCDA's where() combines two Coding collections with 'and'; written with exists().")
    for n in range(1, 6):
        over([t], f"HCPCS_{n}_MDFR_CD", ["v3"],
             f"iif(modifier.count() > 1, modifier[{n - 1}].coding.code.first(),"
             f" modifier.coding.code[{n - 1}])",
             "BCDA v3 puts a line's modifiers in one CodeableConcept, one coding each in order"
             " (CMS's v3 samples: 23, PC, 22, US, 28; a code twice, 23, 23, 1P), not one"
             " CodeableConcept per modifier as its data dictionary says: the nth coding is the nth"
             " modifier; with several CodeableConcepts, the nth one's first coding.")
over(["CCLF2"], "CLM_LINE_INSTNL_REV_CTR_DT", ["v3"], "servicedDate", "")
over(["CCLF2"], "CLM_REV_APC_HIPPS_CD", ["v3"],
     "productOrService.coding.where(system = 'https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/ProspMedicareFeeSvcPmtGen/HIPPSCodes').code", "")
over(["CCLF5"], "CLM_LINE_DGNS_CD", ["v3"],
     "%resource.diagnosis.where(sequence in %resource.item[%rowIndex].diagnosisSequence).diagnosisCodeableConcept.coding.code.first()",
     "BCDA indexes diagnosis[] by position; resolved here by diagnosis.sequence, as v2 does.")
over(["CCLF5"], "RNDRG_PRVDR_NPI_NUM", ["v3"],
     "(%resource.careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence and role.coding.where(code = 'rendering').exists()).provider.identifier.value"
     " | %resource.careTeam.where(role.coding.where(code = 'rendering').exists()).provider.identifier.value).first()",
     "Resolved through the line's careTeamSequence when the line has one; the v3 samples' lines carry"
     " none, so the claim's rendering provider (BCDA's path) is the fallback.")
over(["CCLF5"], "RNDRG_PRVDR_TYPE_CD", ["v3"],
     "extension.where(url = 'https://bluebutton.cms.gov/fhir/StructureDefinition/CLM-PRVDR-TYPE-CD').value.code.first()",
     "Not in BCDA's v3 sheet; the v3 samples carry it as the line extension CLM-PRVDR-TYPE-CD.")
over(["CCLF5"], "CLM_RNDRG_PRVDR_NPI_NUM", ["v3"],
     "(%resource.careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence and role.coding.where(code = 'rendering').exists()).provider.identifier.value"
     " | %resource.careTeam.where(role.coding.where(code = 'rendering').exists()).provider.identifier.value).first()",
     "Resolved through the line's careTeamSequence, falling back to the claim's rendering provider.")
over(["CCLF5", "CCLF6"], "CLM_RFRG_PRVDR_NPI_NUM", ["v3"],
     "%resource.careTeam.where(role.coding.where(code = 'referring').exists()).provider.identifier.value.first()", "")
over(["CCLF5"], "CLM_PRVDR_SPCLTY_CD", ["v3"],
     "(extension.where(url = 'https://bluebutton.cms.gov/fhir/StructureDefinition/CLM-PRVDR-SPCLTY-CD').value.code"
     " | %resource.careTeam.where(sequence in %resource.item[%rowIndex].careTeamSequence).qualification.coding"
     ".where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/CLM-PRVDR-SPCLTY-CD').code).first()",
     "The samples carry the specialty on the line's care-team qualification, not as an item extension;"
     " both are read.")
for n in range(1, 13):
    over(["CCLF5"], f"CLM_DGNS_{n}_CD", ["v3"],
         f"%resource.diagnosis.where(sequence = {n}).diagnosisCodeableConcept.coding.code",
         "BCDA's path returns every diagnosis of the claim; picked by diagnosis.sequence as in v2.")
over(["CCLF5"], "DGNS_PRCDR_ICD_IND", ["v3"],
     V3_ICD_IND.format(x="%resource.diagnosis.where(sequence = 1).diagnosisCodeableConcept.coding"),
     "CCLF code from the first diagnosis's coding system (BCDA's path returns the system URL).")
over(["CCLF6"], "PAYTO_PRVDR_NPI_NUM", ["v3"],
     "%resource.contained.where(id = %resource.provider.reference.substring(1)).identifier.where(system = 'http://hl7.org/fhir/sid/us-npi').value", "")
over(["CCLF6"], "ORDRG_PRVDR_NPI_NUM", ["v3"],
     "%resource.careTeam.where(role.coding.where(code = 'referring').exists()).provider.identifier.value.first()", "")
over(["CCLF6"], "CLM_BLG_PRVDR_NPI_NUM", ["v3"],
     "%resource.contained.where(id = %resource.provider.reference.substring(1)).identifier.where(system = 'http://hl7.org/fhir/sid/us-npi').value", "")

# CCLF7 CLM_TYPE_CD is 9(02): IDR's Part D claim types are 1–4, CCLF writes them 01–04.
over(["CCLF7"], "CLM_TYPE_CD", ["v3"],
     "(%resource.type.coding.where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/CLM-TYPE-CD').code).first()"
     ".select(iif(length() = 1, '0' & $this, $this))",
     "CCLF's two-digit form (01–04) of IDR's Part D claim type (1–4).")

# CCLF3 / CCLF4 (forEach procedure / diagnosis).
over(["CCLF3"], "CLM_VAL_SQNC_NUM", ["v3"], "sequence",
     "Not in BCDA's v3 sheet; procedure.sequence is there as in v2.")
over(["CCLF3"], "CLM_PRCDR_CD", ["v3"], "procedureCodeableConcept.coding.code.first()", "")
over(["CCLF3"], "CLM_PRCDR_PRFRM_DT", ["v3"], "date", "")
over(["CCLF3"], "DGNS_PRCDR_ICD_IND", ["v3"], V3_ICD_IND.format(x="procedureCodeableConcept.coding"),
     "CCLF code from the procedure's coding system (BCDA's path returns the system URL).")
over(["CCLF4"], "CLM_VAL_SQNC_NUM", ["v3"], "sequence", "Not in BCDA's v3 sheet; diagnosis.sequence is there as in v2.")
over(["CCLF4"], "CLM_DGNS_CD", ["v3"], "diagnosisCodeableConcept.coding.code.first()", "")
# CCLF's diagnosis-role codes are IDR's CLM_PROD_TYPE_CD (the values BFD translates to FHIR roles
# in gov.cms.bfd.server.ng.claim.model.ClaimDiagnosisType: P principal, A admitting, D other,
# 1 first external cause, E external cause, R reason for visit). A role without a CCLF code
# stays as FHIR names it, so `export cclf` reports it (too long for X(01)) instead of losing it.
PROD_TYPE = ("iif({c} = 'principal', 'P', iif({c} = 'admitting', 'A',"
             " iif({c} = 'other' or {c} = 'secondary', 'D', iif({c} = 'external-first', '1',"
             " iif({c} = 'external' or {c} = 'externalcauseofinjury', 'E',"
             " iif({c} = 'reason-for-visit' or {c} = 'patientreasonforvisit', 'R', {c}))))))")
PROD_TYPE_WHY = ("CCLF's code (P principal, A admitting, D other, 1 first external cause, E external"
                 " cause, R reason for visit: IDR's CLM_PROD_TYPE_CD as BFD maps it to FHIR roles)"
                 " from the diagnosis role FHIR names; an unknown role is kept as named.")
over(["CCLF4"], "CLM_PROD_TYPE_CD", ["v1"], PROD_TYPE.format(
    c="(type.coding.where(system='https://bluebutton.cms.gov/resources/codesystem/diagnosis-type').code).first()"),
    PROD_TYPE_WHY)
over(["CCLF4"], "CLM_PROD_TYPE_CD", ["v2"], PROD_TYPE.format(
    c="(type.coding.where(system='http://terminology.hl7.org/CodeSystem/ex-diagnosistype' or system='http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimDiagnosisType').code).first()"),
    PROD_TYPE_WHY)
over(["CCLF4"], "CLM_PROD_TYPE_CD", ["v3"], PROD_TYPE.format(c="type.coding.code.first()"), PROD_TYPE_WHY)
over(["CCLF4"], "CLM_POA_IND", ["v3"], "onAdmission.coding.code.first()",
     "BCDA's path ends at the Coding; the code is one level down.")
over(["CCLF4"], "DGNS_PRCDR_ICD_IND", ["v3"], V3_ICD_IND.format(x="diagnosisCodeableConcept.coding"),
     "CCLF code from the diagnosis's coding system (BCDA's path returns the system URL).")

# CCLF7 (Part D).
over(["CCLF7"], "CLM_LINE_FROM_DT", ["v3"], "servicedDate", "")
over(["CCLF7"], "CLM_LINE_NDC_CD", ["v3"],
     "(productOrService.coding | detail.productOrService.coding).where(system = 'http://hl7.org/fhir/sid/ndc').code.first()", "")
over(["CCLF2"], "CLM_LINE_SRVC_UNIT_QTY", ["v2"],
     "iif(extension('https://bluebutton.cms.gov/resources/variables/rev_cntr_unit_cnt').exists(),"
     " extension('https://bluebutton.cms.gov/resources/variables/rev_cntr_unit_cnt').valueQuantity.value.first(),"
     " 0)",
     "BFD omits the unit-count extension when the count is 0 (the crosswalk's discrepancy note):"
     " no extension is 0, as v1's item.quantity says for the same line.")
over(["CCLF7"], "CLM_LINE_SRVC_UNIT_QTY", ["v3"], "(quantity | detail.quantity).value.first()", "")
over(["CCLF7"], "PRVDR_SRVC_ID_QLFYR_CD", ["v3"],
     "%resource.contained.where(id = %resource.provider.reference.substring(1)).identifier.type.coding"
     ".where(system = 'http://bluebutton.cms.gov/fhir/CodeSystem/PRVDR-ID-QLFYR-CD').code.first()",
     "BCDA's path tests `system` on a CodeableConcept (identifier.type); the coding is one level down.")
over(["CCLF7"], "CLM_PRSBNG_PRVDR_GNRC_ID_NUM", ["v3"],
     "%resource.careTeam.where(role.coding.where(code = 'prescribing').exists()).provider.identifier.value.first()",
     "The samples' prescriber carries only its NPI (typed with PRVDR-ID-QLFYR-CD 01), no GenericIdNum"
     " identifier; the identifier present is read.")
over(["CCLF7"], "CLM_LINE_BENE_PMT_AMT", ["v3"],
     "(adjudication.where(category.coding.where(code = 'CLM_LINE_BENE_PMT_AMT').exists()).amount.value"
     " | %resource.total.where(category.coding.where(code = 'CLM_BENE_PMT_AMT').exists()).amount.value).first()",
     "The current server writes the patient-paid amount in total (CLM_BENE_PMT_AMT), not in"
     " item.adjudication as BCDA's path expects; both are read.")
over(["CCLF7"], "CLM_LINE_RX_SRVC_RFRNC_NUM", ["v3"],
     "%resource.supportingInfo.where(category.coding.where(code = 'CLM_LINE_RX_NUM').exists()).value.first()", "")
over(["CCLF7"], "CLM_EFCTV_DT", ["v3"], "%resource.created", "")

# Benefit enhancement switches (CCLFA, CCLFB) and demo codes.
for t in ["CCLFA", "CCLFB"]:
    pre = "" if t == "CCLFA" else "%resource."
    for n, nth in enumerate(["1ST", "2ND", "3RD", "4TH", "5TH"]):
        over([t], f"CLM_DEMO_{nth}_NUM", ["v3"],
             "(" + pre + sup_info_v3("CLM_BNFT_ENHNCMT_CD") + f".code.coding.code)[{n}]",
             "BCDA's path ends in .value; v3 puts the benefit enhancement codes in supportingInfo.code"
             " (bfd-v3-shapes.md section 8); the n-th code fills CLM_DEMO_n.")
over(["CCLFA"], "CLM_1_REV_CNTR_ANSI_RSN_CD", ["v3"],
     "item.adjudication.reason.coding.where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/ANSI-RSN-CD').code.first()",
     "Of the first revenue center that has one, as CCLF's field name says.")
over(["CCLFA"], "CLM_1_REV_CNTR_ANSI_GRP_CD", ["v3"],
     "item.adjudication.reason.coding.where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/ANSI-GRP-CD').code.first()",
     "Of the first revenue center that has one.")
over(["CCLFA"], "CLM_RLT_COND_CD", ["v3"],
     "supportingInfo.code.coding.where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/CLM-RLT-COND-CD').code.first()",
     "CCLF has one related-condition code per record; the first is taken.")
over(["CCLF7"], "CLM_DSPNSNG_STUS_CD", ["v3"],
     "%resource.supportingInfo.code.coding.where(system = 'https://bluebutton.cms.gov/fhir/CodeSystem/CLM-DSPNSNG-STUS-CD').code.first()", "")
over(["CCLF7"], "CLM_DAW_PROD_SLCTN_CD", ["v3"],
     "%resource.supportingInfo.code.coding.where(system = 'http://terminology.hl7.org/CodeSystem/NCPDPDispensedAsWrittenOrProductSelectionCode').code.first()", "")


def read(name):
    with open(os.path.join(REF, name), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sql_type(picture):
    """(view type, ansi/type tag or None) from a CCLF picture."""
    p = picture.upper().replace(" ", "")
    if p == "YYYY-MM-DD":
        return "date", None
    m = re.fullmatch(r"-?9\((\d+)\)\.(9+)", p)
    if m:
        scale = len(m.group(2))
        return "decimal", f"DECIMAL({int(m.group(1)) + scale},{scale})"
    return "string", None


# CCLF5 amounts the packet pictures as text (cclf-crosswalk.md section 2).
TEXT_PICTURED_AMOUNTS = {("CCLF5", "CLM_LINE_CVRD_PD_AMT"): "DECIMAL(15,2)",
                         ("CCLF5", "CLM_LINE_ALOWD_CHRG_AMT"): "DECIMAL(17,2)"}


def in_where(path, pos):
    """True when `pos` sits inside the argument list of a where(...) call."""
    depth_stack = []
    i = 0
    while i < pos:
        if path.startswith("where(", i):
            depth_stack.append("where")
            i += len("where(")
            continue
        c = path[i]
        if c == "(":
            depth_stack.append("(")
        elif c == ")" and depth_stack:
            depth_stack.pop()
        i += 1
    return "where" in depth_stack


def rewrite(path, for_each):
    p = path.strip()
    p = p.replace("%root.", "%resource.").replace("%context.", "%resource.")
    if for_each:
        p = p.replace(f"ExplanationOfBenefit.{for_each}.", f"%{for_each}.")
        # %item inside where(): the current line through %rowIndex; elsewhere: relative.
        out = ""
        i = 0
        tok = f"%{for_each}."
        while i < len(p):
            if p.startswith(tok, i):
                out += f"%resource.{for_each}[%rowIndex]." if in_where(p, i) else ""
                i += len(tok)
            else:
                out += p[i]
                i += 1
        p = out
        p = p.replace("ExplanationOfBenefit.", "%resource.")
    else:
        if p.startswith("ExplanationOfBenefit."):
            p = p[len("ExplanationOfBenefit."):]
        p = p.replace("ExplanationOfBenefit.", "%resource.")
    return p


def type_filter(table, version):
    types = CLAIM_TYPES[table]
    codes = " or ".join(f"code = '{t}'" for t in types)
    if version in ("v1", "v2"):
        return f"type.coding.where(system = '{EOB_TYPE_V12}' and ({codes})).exists()"
    eob = f"type.coding.where(system = '{EOB_TYPE_V3}' and ({codes})).exists()"
    if types == INSTITUTIONAL:
        other = [c for v in NON_INSTITUTIONAL_CODES.values() for c in v]
        fallback = " and ".join(f"code != '{c}'" for c in other)
    else:
        fallback = " or ".join(f"code = '{c}'" for t in types for c in NON_INSTITUTIONAL_CODES[t])
    return (f"{eob} or (type.coding.where(system = '{EOB_TYPE_V3}').empty()"
            f" and type.coding.where(system = '{CLM_TYPE_CD_V3}' and ({fallback})).exists())")


def main():
    xw = read("cclf_crosswalk.csv")
    v3 = {(r["cclf_file"], r["field_name"]): r for r in read("cclf_crosswalk_bcda_v3.csv")}
    notes = {}
    for r in read("cclf_crosswalk_notes.csv"):
        notes.setdefault((r["cclf_file"], r["field_name"]), []).append(r)
    layout = {}
    for r in read("cclf_layouts.csv"):
        layout.setdefault(r["cclf_file"], []).append(r)

    for table in TABLES:
        fields = [r for r in xw if r["cclf_file"] == table]
        for version, col in VERSIONS.items():
            for_each = FOR_EACH.get(table)
            columns = []
            for r in fields:
                field = r["field_name"]
                desc = r["description"]
                csv_path = (v3[(table, field)][col] if version == "v3" else r[col]).strip()
                ty, ansi = sql_type(r["cclf_type"])
                if (table, field) in TEXT_PICTURED_AMOUNTS:
                    ty, ansi = "decimal", TEXT_PICTURED_AMOUNTS[(table, field)]
                tags = [{"name": "cclf/field", "value": f"{table}.{field}"},
                        {"name": "cclf/picture", "value": r["cclf_type"]}]
                if ansi:
                    tags.append({"name": "ansi/type", "value": ansi})
                if csv_path:
                    tags.append({"name": "source/path", "value": csv_path})
                notes_text = []
                key = (table, field, version)
                if field == "BENE_MBI_ID":
                    path = "patient.getReferenceKey(Patient)" if not for_each else "%resource.patient.getReferenceKey(Patient)"
                    tags.append({"name": "claimline/link", "value": "bene-mbi"})
                    notes_text.append("Filled by the link stage: the beneficiary's current MBI from the"
                                      " Patient resources of the same load (ExplanationOfBenefit.patient ->"
                                      " Patient.id); NULL and counted when no Patient resolves it.")
                elif key in OVERRIDES:
                    path, why = OVERRIDES[key]
                    if path is not None and for_each and field in HEADER_FIELDS_IN_LINES and not path.startswith(("%resource.", "iif(")):
                        path = "%resource." + path
                    if why:
                        notes_text.append(why)
                        if csv_path:
                            tags.append({"name": "claimline/deviation", "value": why})
                elif csv_path and not csv_path.startswith("Patient."):
                    path = rewrite(csv_path, for_each)
                    if version == "v3" and "Supporting-Information" in path and path.endswith(").value"):
                        path = path[: -len(".value")] + ".code.coding.code"
                        why = ("BCDA's path ends in .value; v3 writes these codes in supportingInfo.code"
                               " (bfd-v3-shapes.md section 8).")
                        notes_text.append(why)
                        tags.append({"name": "claimline/deviation", "value": why})
                    if not (path.endswith(".first()") or path.endswith("]")):
                        path = f"({path}).first()"
                        notes_text.append("The first value when the path returns several.")
                else:
                    path = None
                if path is None:
                    reason = unmapped_reason(table, field, version, notes.get((table, field), []))
                    tags.append({"name": "claimline/unmapped", "value": reason})
                    notes_text.append("Not supplied: " + reason)
                    path = "{}"
                elif ICD_COLUMNS.match(field):
                    path = f"({path}).replace('.', '')"
                    notes_text.append("ICD code without the dot, as CCLF writes it.")
                if version == "v3" and path != "{}":
                    path, why = v3_older_builds(field, path, bool(for_each))
                    if why:
                        notes_text.append(why)
                view_type = ty
                if ty == "string" and int(r["cclf_length"] or 0) <= 4:
                    view_type = "code"
                c = {"name": field, "path": path, "type": view_type,
                     "description": desc + (". " + " ".join(notes_text) if notes_text else ""),
                     "tag": tags}
                columns.append(c)
            select = [{"column": columns}]
            if for_each:
                walked = FOR_EACH_WHERE.get((table, version), for_each)
                select = [{"forEach": walked, "column": columns}]
            view = {
                "resourceType": "ViewDefinition",
                "name": table.lower(),
                "title": TITLES[table],
                "description": f"{table} from BCDA {version} ({ {'v1': 'FHIR STU3', 'v2': 'FHIR R4', 'v3': 'FHIR R4 from CMS IDR'}[version] })."
                               " Generated by mappings/cclf/tools/generate.py from mappings/cclf/reference/.",
                "status": "active",
                "resource": "ExplanationOfBenefit",
                "where": [{"path": type_filter(table, version),
                           "description": "Claim types of " + table + ": " + ", ".join(CLAIM_TYPES[table])}],
                "select": select,
            }
            out = os.path.join(ROOT, version, table.lower() + ".json")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "w", encoding="utf-8") as f:
                json.dump(view, f, indent=2, ensure_ascii=False)
                f.write("\n")


SD = "https://bluebutton.cms.gov/fhir/StructureDefinition/"
NPI = "http://hl7.org/fhir/sid/us-npi"
# Claim-header codes that BFD v3 builds of 2025-06 to 2026-01 (releases up to 2.231.0) wrote as
# header extensions (`extension[url = SD + name]`, `valueCoding`) before moving them to
# supportingInfo (BFD commit f2ac76bda23e, 2026-01-16): CCLF field -> extension name.
V3_HEADER_EXTENSIONS = {
    "CLM_CNTRCTR_NUM": "CLM-CNTRCTR-NUM",
    "CLM_CARR_PMT_DNL_CD": "CLM-CARR-PMT-DNL-CD",
    "CLM_DISP_CD": "CLM-DISP-CD",
    "CLM_MDCR_NPMT_RSN_CD": "CLM-MDCR-NPMT-RSN-CD",
    "CLM_FI_ACTN_CD": "CLM-FI-ACTN-CD",
}


def v3_older_builds(field, path, in_lines):
    """(path, why): the v3 path made to read the shapes of BFD v3 builds of 2025-06 to 2026-03
    too (tests/fixtures/bfd-v3-builds/SOURCES.md): care-team providers as references to
    contained Practitioners (`#careteam-provider-N`, NPI in the contained resource; up to
    release 2.240.1), claim-header codes as header extensions (up to release 2.231.0)."""
    why = []
    root = "%resource." if in_lines else ""
    if "provider.identifier.value" in path:
        path = path.replace(
            "provider.identifier.value",
            f"provider.select(identifier.value | resolve().identifier.where(system = '{NPI}').value)")
        why.append("Builds up to 2.240.1 (2026-03) give the care-team provider as a reference to a"
                   " contained Practitioner: resolve() reads its NPI.")
    ext = V3_HEADER_EXTENSIONS.get(field)
    if ext and "Supporting-Information" in path:
        path = f"({path} | {root}extension.where(url = '{SD}{ext}').value.code).first()"
        why.append(f"Builds up to 2.231.0 (2026-01) carry it as the header extension {ext}.")
    if field == "CLM_QUERY_CD" and "Supporting-Information" in path:
        path = f"({path} | {root}billablePeriod.extension.where(url = '{SD}CLM-QUERY-CD').value.code).first()"
        why.append("Builds up to 2.231.0 (2026-01) carry it as billablePeriod's extension CLM-QUERY-CD.")
    if field == "RNDRG_PRVDR_TYPE_CD" and "CLM-PRVDR-TYPE-CD" in path:
        path = (f"({path} | %resource.careTeam.where(role.coding.where(code = 'rendering').exists())"
                f".provider.resolve().extension.where(url = '{SD}CLM-PRVDR-TYPE-CD').value.code).first()")
        why.append("Builds up to 2.240.1 (2026-03) put it on the contained rendering Practitioner.")
    return path, " ".join(why)


# Claim-level fields that overrides write relative to the claim but which sit in line tables.
HEADER_FIELDS_IN_LINES = {"CUR_CLM_UNIQ_ID", "CLM_ADJSMT_TYPE_CD"}


def unmapped_reason(table, field, version, notes):
    if field in ("BENE_HIC_NUM", "BENE_EQTBL_BIC_HICN_NUM"):
        return "HICN is not supplied by BCDA (CCLF leaves it blank since January 2020)."
    for n in notes:
        if n["note_type"] in ("caveat",) and version in ("v1", "v2"):
            return n["note"].split(". ")[0].rstrip(".") + "."
    if version == "v3":
        return "No path in BCDA's v3 crosswalk (CCLF-BCDA v3 Mapping) and none found in the v3 samples."
    return "No path in BCDA's v1/v2 crosswalk; the field is CCLF-only or was added after BCDA's mapping."


BB = "https://bluebutton.cms.gov/resources/variables/"
BB3 = "https://bluebutton.cms.gov/fhir/StructureDefinition/"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
PLAN = {"v1": "grouping.subPlan",
        "v2": "class.where(type.coding.code = 'plan').value.first()",
        "v3": "class.where(type.coding.code = 'plan').value.first()"}
OMB_RACE = ("iif($this = '2106-3', '1', iif($this = '2054-5', '2', iif($this = '2028-9', '4',"
            " iif($this = '1002-5', '6', iif($this = 'UNK' or $this = 'ASKU', '0', '3')))))")


# (version, CCLF8 field) -> the crosswalk's path, set by beneficiary_views().
CCLF8_PATHS = {}
# CCLF8 field -> its position in the CCLF layout (the cclf8 table's column order).
CCLF8_POSITIONS = {}
VERSION = None


def col(name, path, ty, desc, field=True, tags=()):
    tags = list(tags)
    if field:
        tags.insert(0, {"name": "cclf/field", "value": f"CCLF8.{name}"})
        tags.insert(1, {"name": "cclf/position", "value": CCLF8_POSITIONS[name]})
        source = CCLF8_PATHS.get((VERSION, name))
        if source:
            tags.append({"name": "source/path", "value": source})
    return {"name": name, "path": path, "type": ty, "description": desc, "tag": tags}


def key_col(path, desc):
    return col("BENE_ID", path, "id", desc, field=False,
               tags=[{"name": "claimline/link", "value": "bene-id"}])


def patient_view(version):
    """Patient -> one row of CCLF8 demographics (joined with Coverage by the link stage)."""
    if version == "v3":
        race = {"forEachOrNull": f"extension('{US_CORE}us-core-race').extension('ombCategory').valueCoding.code.first()",
                "column": [col("BENE_RACE_CD", OMB_RACE, "code",
                               "Beneficiary Race Code: the us-core-race OMB category as CCLF's code"
                               " (1 White, 2 Black, 4 Asian, 6 American Indian or Alaska Native,"
                               " 0 unknown, 3 other)")]}
    else:
        race = {"column": [col("BENE_RACE_CD", f"extension('{BB}race').valueCoding.code", "code",
                               "Beneficiary Race Code: BFD's race extension")]}
    sex = (f"iif(extension('{US_CORE}us-core-sex').value = '248153007', '1',"
           f" iif(extension('{US_CORE}us-core-sex').value = '248152002', '2',"
           " iif(gender = 'male', '1', iif(gender = 'female', '2', '0'))))")
    zip9 = "postalCode.replace('-', '')"
    # A US ZIP code: 5 digits, or 9 with at most a dash after the fifth. Only such a code is cut to
    # its first 5 (its last 4 are GEO_ZIP4_CD); any other postalCode is kept whole, never cut
    # with no word (a CCLF file refuses it as too long, naming the field).
    zip_ok = (f"(({zip9}.length() = 5 and postalCode.length() = 5)"
              f" or ({zip9}.length() = 9 and (postalCode.length() = 9"
              f" or (postalCode.length() = 10 and postalCode.indexOf('-') = 5))))"
              f" and {zip9}.convertsToInteger() and {zip9}.startsWith('+').not()")
    zip5 = f"iif({zip_ok}, postalCode.substring(0, 5), postalCode)"
    lines = [col(f"BENE_LINE_{i + 1}_ADR", f"line[{i}]", "string",
                 f"Beneficiary mailing address line {i + 1}: address.line[{i}]") for i in range(6)]
    return {
        "resourceType": "ViewDefinition",
        "name": "cclf8_patient",
        "title": "CCLF8 input: a beneficiary's demographics from Patient",
        "description": f"The Patient half of CCLF8 for BCDA {version}. The link stage joins it with"
                       " cclf8_coverage by BENE_ID, fills BENE_MBI_ID from bene_xref and computes"
                       " BENE_AGE and BENE_FIPS_STATE_CD. Generated by mappings/cclf/tools/generate.py.",
        "status": "active",
        "resource": "Patient",
        # A merged beneficiary's Patient (BFD returns only `id` and a `replaced-by` link) is no
        # beneficiary of its own: no CCLF8 row.
        "where": [{"path": "link.where(type = 'replaced-by').empty()",
                   "description": "Not a merged beneficiary's Patient (link replaced-by)"}],
        "select": [
            {"column": [
                key_col("getResourceKey()", "The beneficiary id (Patient.id): the join key with cclf8_coverage"),
                col("BENE_MBI_ID", "getResourceKey()", "string",
                    "Medicare Beneficiary Identifier: filled by the link stage with the current MBI"
                    " (bene_xref)", tags=[{"name": "claimline/link", "value": "bene-mbi"}]),
                col("BENE_DOB", "birthDate", "date", "Beneficiary Date of Birth: Patient.birthDate"),
                col("BENE_SEX_CD", sex, "code",
                    "Beneficiary Sex Code: 1 male, 2 female, 0 unknown (us-core-sex SNOMED code, else gender)"),
                col("BENE_DEATH_DT", "deceased.ofType(dateTime)", "date",
                    "Beneficiary Death Date: Patient.deceasedDateTime, its date"),
                col("BENE_AGE", "{}", "code",
                    "Beneficiary Age. Filled by the link stage: whole years from BENE_DOB to the"
                    " export's transactionTime (or to BENE_DEATH_DT when earlier)", tags=[COMPUTED]),
                col("BENE_FIPS_STATE_CD", "{}", "code",
                    "Beneficiary FIPS State Code. Filled by the link stage from GEO_USPS_STATE_CD"
                    " (USPS to FIPS)", tags=[COMPUTED]),
                *[col(name, "{}", ty, f"{label}. Not supplied: {why}",
                      tags=[{"name": "claimline/unmapped", "value": why}])
                  for name, ty, label, why in UNMAPPED_CCLF8],
            ]},
            race,
            {"forEachOrNull": "address.first()", "column": [
                col("GEO_USPS_STATE_CD", "state", "string",
                    "Beneficiary State: address.state; an SSA state code (CCW's, as BFD gives it) is made"
                    " its USPS abbreviation by the link stage, which derives BENE_FIPS_STATE_CD from it"),
                col("BENE_ZIP_CD", zip5, "string",
                    "Beneficiary ZIP Code: address.postalCode, first 5 of a ZIP+4 (any other code whole)"),
                *lines,
                col("GEO_ZIP_PLC_NAME", "city", "string", "Beneficiary City: address.city"),
                col("GEO_ZIP5_CD", zip5, "string",
                    "Beneficiary Zip Code: address.postalCode, first 5 of a ZIP+4 (any other code whole)"),
                col("GEO_ZIP4_CD", f"iif({zip_ok} and {zip9}.length() = 9, {zip9}.substring(5, 4))",
                    "string",
                    "Beneficiary Zip Code Ext.: the 4 digits after a ZIP+4 postalCode"),
            ]},
            {"forEachOrNull": "name.first()", "column": [
                col("BENE_1ST_NAME", "given[0]", "string", "Beneficiary First Name: name.given[0]"),
                col("BENE_MIDL_NAME", "given[1]", "string", "Beneficiary Middle Name: name.given[1]"),
                col("BENE_LAST_NAME", "family", "string", "Beneficiary Last Name: name.family"),
            ]},
        ],
    }


def coverage_view(version):
    """Coverage -> one row per Part A/B/C/D (v3 also dual) Coverage, joined by the link stage."""
    v3 = version == "v3"

    def code(bb, bb3):
        return f"extension('{BB3}{bb3}').valueCoding.code" if v3 else f"extension('{BB}{bb}').valueCoding.code"

    def monthly(name, prefix, what):
        return [col(f"{name}_{m:02}", "{}" if v3 else f"extension('{BB}{prefix}{m:02}').valueCoding.code",
                    "code", f"{what}, month {m} of the reference year" + (": v3 has no monthly values" if v3 else ""),
                    field=False) for m in range(1, 13)]

    plan = PLAN[version]
    return {
        "resourceType": "ViewDefinition",
        "name": "cclf8_coverage",
        "title": "CCLF8 input: a beneficiary's entitlement from one Coverage",
        "description": f"The Coverage half of CCLF8 for BCDA {version}: one row per Coverage. The link"
                       " stage joins the rows with cclf8_patient by BENE_ID; per field it takes the first"
                       " value in the order Part A, B, D, C, other (dual), active before cancelled, latest"
                       " RFRNC_YR first, and for monthly fields the most recent month present."
                       " Generated by mappings/cclf/tools/generate.py.",
        "status": "active",
        "resource": "Coverage",
        "select": [{"column": [
            key_col("beneficiary.getReferenceKey(Patient)", "The beneficiary id: the join key with cclf8_patient"),
            col("COVERAGE_PLAN", plan, "string",
                "The Coverage's plan: Part A, Part B, Part C, Part D or Dual Medicare/Medicaid (precedence)",
                field=False),
            col("COVERAGE_STATUS", "status", "code", "active or cancelled (precedence)", field=False),
            col("RFRNC_YR", "{}" if v3 else f"extension('{BB}rfrnc_yr').value.ofType(date).toString()",
                "string", "Reference year of the monthly values (precedence: the latest first)", field=False),
            col("BENE_MDCR_STUS_CD", code("ms_cd", "BENE-MDCR-STUS-CD"), "code",
                "Beneficiary Medicare Status Code"),
            col("BENE_DUAL_STUS_CD", code("", "BENE-DUAL-STUS-CD") if v3 else "{}", "code",
                "Beneficiary Dual Status Code" + ("" if v3 else ". Filled by the link stage: the most"
                                                  " recent of BENE_DUAL_STUS_CD_01 … _12 present"),
                tags=[] if v3 else [MONTHLY]),
            *monthly("BENE_DUAL_STUS_CD", "dual_", "Dual status"),
            col("BENE_ORGNL_ENTLMT_RSN_CD", code("orec", "BENE-MDCR-ENTLMT-RSN-CD"), "code",
                "Beneficiary Original Entitlement Reason Code"),
            col("BENE_ENTLMT_BUYIN_IND", code("", "BENE-BUYIN-CD") if v3 else "{}", "code",
                "Beneficiary Entitlement Buy-in Indicator" + ("" if v3 else ". Filled by the link stage:"
                                                              " the most recent of"
                                                              " BENE_ENTLMT_BUYIN_IND_01 … _12 present"),
                tags=[] if v3 else [MONTHLY]),
            *monthly("BENE_ENTLMT_BUYIN_IND", "buyin", "Buy-in indicator"),
            col("BENE_PART_A_ENRLMT_BGN_DT", f"iif({plan} = 'Part A', period.start)", "date",
                "Part A begin: the Part A Coverage's period.start"),
            col("BENE_PART_B_ENRLMT_BGN_DT", f"iif({plan} = 'Part B', period.start)", "date",
                "Part B begin: the Part B Coverage's period.start"),
        ]}],
    }


MONTHLY = {"name": "claimline/link", "value": "monthly"}
COMPUTED = {"name": "claimline/link", "value": "computed"}
UNMAPPED_CCLF8 = [
    ("BENE_HIC_NUM", "string", "Beneficiary HIC Number",
     "HICN is not supplied by BCDA (CCLF leaves it blank since January 2020)."),
    ("BENE_FIPS_CNTY_CD", "code", "Beneficiary FIPS County Code",
     "BCDA's Patient carries no county."),
    ("BENE_RNG_BGN_DT", "date", "Hospice enrollment start",
     "BCDA's crosswalk takes it from hospice claims (ExplanationOfBenefit.hospitalization.start),"
     " not from Patient or Coverage; CCLF8 is joined from those two, and the hospice claims are in"
     " cclf1 (CLM_FROM_DT, CLM_THRU_DT)."),
    ("BENE_RNG_END_DT", "date", "Hospice enrollment end",
     "BCDA's crosswalk takes it from hospice claims (ExplanationOfBenefit.hospitalization.end),"
     " not from Patient or Coverage; CCLF8 is joined from those two, and the hospice claims are in"
     " cclf1 (CLM_FROM_DT, CLM_THRU_DT)."),
]


def beneficiary_views():
    global VERSION
    for r in read("cclf_layouts.csv"):
        if r["cclf_file"] == "CCLF8":
            CCLF8_POSITIONS[r["field_name"]] = r["position"]
    for r in read("cclf_crosswalk.csv"):
        if r["cclf_file"] == "CCLF8":
            for version in ("v1", "v2"):
                if r[VERSIONS[version]].strip():
                    CCLF8_PATHS[(version, r["field_name"])] = r[VERSIONS[version]].strip()
    for r in read("cclf_crosswalk_bcda_v3.csv"):
        if r["cclf_file"] == "CCLF8" and r[VERSIONS["v3"]].strip():
            CCLF8_PATHS[("v3", r["field_name"])] = r[VERSIONS["v3"]].strip()
    for version in VERSIONS:
        VERSION = version
        for view in (patient_view(version), coverage_view(version)):
            out = os.path.join(ROOT, version, view["name"] + ".json")
            with open(out, "w", encoding="utf-8") as f:
                json.dump(view, f, indent=2, ensure_ascii=False)
                f.write("\n")


if __name__ == "__main__":
    main()
    beneficiary_views()
