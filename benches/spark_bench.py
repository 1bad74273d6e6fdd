"""One measured job of benches/spark.sh, in a process of its own:

    python spark_bench.py MODE EXPORT OUT

Modes:
  cli         `claimline load EXPORT --out OUT --format parquet` (every CCLF table)
  read        `claimline.read(EXPORT)`: every table in memory as pyarrow (every CCLF table)
  spark_load  `claimline.spark.load` on local[2] (every CCLF table, Parquet)
  spark_json  Spark's own `spark.read.json` with an explicit minimal schema, a CCLF1-like header
              projection of the EOBs (8 columns) to Parquet, on local[2]

Prints one JSON line: the job's wall time (a Spark session's start-up excluded and reported
apart), the NDJSON MB read and MB/s, and peak memory: the largest total RSS of the process tree
(this process, the JVM, Spark's Python workers, the CLI) sampled every 50 ms.
"""
import glob
import json
import os
import subprocess
import sys
import threading
import time

from peak_anon import status_kib  # benches/, this script's folder


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(x) for x in f.read().split()]
            except OSError:
                pass
    return out


def main():
    mode, export, out = sys.argv[1], sys.argv[2], sys.argv[3]
    files = glob.glob(os.path.join(export, "**", "*.ndjson"), recursive=True)
    eob_files = [f for f in files if "ExplanationOfBenefit" in os.path.basename(f)]
    peak = [0]
    stop = [False]

    def sample():
        me = os.getpid()
        while not stop[0]:
            peak[0] = max(peak[0], sum(status_kib(p, "VmRSS") for p in tree(me)))
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    extra = {}
    session_s = 0.0
    if mode.startswith("spark"):
        t = time.time()
        from claimline import spark as cs
        s = cs.session(extra={"spark.ui.showConsoleProgress": "false"})
        s.range(1).count()
        session_s = time.time() - t
    mb = sum(os.path.getsize(f) for f in (eob_files if mode == "spark_json" else files)) / 1e6
    t = time.time()
    if mode == "cli":
        r = subprocess.run([os.environ.get("CLAIMLINE", "claimline"), "load", export, "--out", out,
                            "--format", "parquet", "--json"], capture_output=True, text=True,
                           check=True)
        extra["cclf1"] = json.loads(r.stdout)["tables"]["cclf1"]
    elif mode == "read":
        import claimline
        tables = claimline.read(export)
        extra["cclf1"] = tables["cclf1"].num_rows
    elif mode == "spark_load":
        r = cs.load(s, [export], out)
        extra.update(cclf1=r.tables["cclf1"], partitions=r.partitions,
                     engine_calls=r.engine_calls,
                     phases_s={k: round(v, 2) for k, v in r.seconds.items()})
    elif mode == "spark_json":
        from pyspark.sql import functions as F
        schema = ("resourceType string, id string, status string, "
                  "patient struct<reference: string>, "
                  "type struct<coding: array<struct<system: string, code: string>>>, "
                  "billablePeriod struct<start: string, end: string>, "
                  "payment struct<amount: struct<value: decimal(15,2)>>")
        j = s.read.schema(schema).option("lineSep", "\n").json(eob_files)
        (j.where(F.col("resourceType") == "ExplanationOfBenefit")
         .select(F.col("id").alias("CUR_CLM_UNIQ_ID"),
                 F.regexp_replace("patient.reference", "^Patient/", "").alias("BENE_ID"),
                 F.col("type.coding")[0]["code"].alias("CLM_TYPE_CD"),
                 F.to_date("billablePeriod.start").alias("CLM_FROM_DT"),
                 F.to_date("billablePeriod.end").alias("CLM_THRU_DT"),
                 F.col("payment.amount.value").alias("CLM_PMT_AMT"),
                 F.col("status").alias("_status"))
         .write.mode("overwrite").option("compression", "zstd").parquet(out + "/cclf1"))
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.time() - t
    stop[0] = True
    time.sleep(0.1)
    print(json.dumps({"mode": mode, "seconds": round(seconds, 2),
                      "spark_session_s": round(session_s, 2), "input_mb": round(mb, 1),
                      "mb_per_s": round(mb / seconds, 1),
                      "peak_rss_mib": round(peak[0] / 1024), **extra}))


if __name__ == "__main__":
    main()
