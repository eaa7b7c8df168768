"""Evaluate suites with Great Expectations without loading a table into one frame.

Row checks: the suite's projection (only the columns its checks read; binary columns as byte lengths)
is streamed by DuckDB straight off the Delta table's Parquet files in Arrow batches of
``quality.batch_rows`` rows; GX validates each batch as a pandas frame and the per-batch results are
merged (counts summed, samples and failing keys concatenated). Memory is bounded by one batch.
Aggregate checks: one DuckDB query each over the whole table, results validated by GX as a one-row
frame. Both merged results are stored in the GX context, so Data Docs render them like any run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import duckdb

from quality.checks import Check, Env, Suite
from quality.gxcontext import batch_definition

KEY = "__key"
SAMPLE = 20


@dataclass
class CheckResult:
    name: str
    suite: str
    table: str | None
    severity: str
    description: str
    success: bool | None  # None = not evaluated (see ``skipped``)
    observed: object = None
    unexpected: int = 0
    elements: int = 0
    sample: list = field(default_factory=list)
    detail: str | None = None
    skipped: str | None = None
    keys: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        body = asdict(self)
        body.pop("keys")
        body["quarantined"] = len(self.keys)
        body["sample"] = [_plain(v) for v in self.sample]
        body["observed"] = _plain(self.observed)
        return body


def _plain(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value else None  # NaN -> null
    if hasattr(value, "item"):
        return _plain(value.item())
    return str(value)


def _expectation(check: Check, name: str, severity: str, column: str):
    exp = check.expectation(column)
    exp.meta = {"check": name, "severity": severity}
    exp.description = f"[{severity}] {name}: {check.description}"
    return exp


def run_suite(ctx, env: Env, suite: Suite, severity: dict[str, str], batch_rows: int, run_id: str,
              max_keys: int) -> list[CheckResult]:
    """Evaluate one suite; store its GX validation results; return one result per check."""
    active = [(c, severity.get(suite.check_name(c), c.severity)) for c in suite.checks]
    active = [(c, s) for c, s in active if s != "off"]
    if env.classes is None:
        skipped = [_skipped(suite, c, s, "no class list (set quality.classes or labels.classes)")
                   for c, s in active if c.needs_classes]
        active = [(c, s) for c, s in active if not c.needs_classes]
    else:
        skipped = []
    if suite.table and suite.table not in env.columns:
        if not suite.required:
            return [_skipped(suite, c, s, f"table '{suite.table}' does not exist yet") for c, s in active] + skipped
        return [CheckResult(f"{suite.name}.table_exists", suite.name, suite.table, "critical",
                            f"table {suite.table} exists", False,
                            detail=f"table '{suite.table}' does not exist (run the stage that writes it)")]
    results = skipped
    rows = [(c, s) for c, s in active if c.kind == "row"]
    aggregates = [(c, s) for c, s in active if c.kind == "aggregate"]
    if aggregates:  # first: the schema check explains every later failure of a malformed table
        results += _run_aggregates(ctx, env, suite, aggregates, run_id, max_keys)
    if rows:
        results += _run_rows(ctx, env, suite, rows, batch_rows, run_id, max_keys)
    return results


def _skipped(suite: Suite, check: Check, severity: str, why: str) -> CheckResult:
    return CheckResult(suite.check_name(check), suite.name, suite.table, severity, check.description, None, skipped=why)


# ---------------------------------------------------------------------------- row checks
def _row_batches(env: Env, suite: Suite, columns: list[str], batch_rows: int):
    if suite.rows is not None:
        for frame in suite.rows(env):
            frame = frame.copy()
            frame[KEY] = frame[suite.key.sql].astype(str) if suite.key else ""
            yield frame
        return
    key_sql = f"CAST({suite.key.sql} AS VARCHAR)" if suite.key else "NULL"
    select = ", ".join([f"{key_sql} AS {KEY}"] + [f"{suite.frame[c].sql} AS {c}" for c in columns])
    reader = env.con.execute(f"SELECT {select} FROM {suite.table}").fetch_record_batch(batch_rows)
    empty = True
    for batch in reader:
        empty = False
        yield batch.to_pandas()
    if empty:
        yield reader.schema.empty_table().to_pandas()


def _run_rows(ctx, env, suite, checks, batch_rows, run_id, max_keys) -> list[CheckResult]:
    import great_expectations as gx
    from great_expectations.validator.v1_validator import Validator

    results, runnable = [], []
    for check, sev in checks:
        frame_col = suite.frame.get(check.column) if suite.rows is None else None
        missing = [n for n in (frame_col.needs if frame_col else ()) if n not in env.columns[suite.table]]
        if missing:
            results.append(_skipped(suite, check, sev, f"column '{suite.table}.{missing[0]}' is missing"))
        else:
            runnable.append((check, sev))
    if not runnable:
        return results
    columns = sorted({c.column for c, _ in runnable}) if suite.rows is None else []
    gx_suite = gx.ExpectationSuite(name=suite.name, expectations=[
        _expectation(c, suite.check_name(c), s, c.column) for c, s in runnable])
    gx_suite = ctx.suites.add_or_update(gx_suite)
    definition = batch_definition(suite.name)
    fmt = {"result_format": "COMPLETE", "unexpected_index_column_names": [KEY], "partial_unexpected_count": SAMPLE}
    merged, suite_result = None, None
    for frame in _row_batches(env, suite, columns, batch_rows):
        validator = Validator(batch_definition=definition, batch_parameters={"dataframe": frame}, result_format=fmt)
        suite_result = validator.validate_expectation_suite(gx_suite)
        merged = _merge(merged, suite_result.results, max_keys)
    for (check, sev), (res, keys) in zip(runnable, merged):
        info = res.exception_info or {}
        error = info.get("exception_message") if info.get("raised_exception") else None
        r = res.result or {}
        results.append(CheckResult(
            suite.check_name(check), suite.name, suite.table, sev, check.description, bool(res.success),
            observed=r.get("observed_value"), unexpected=int(r.get("unexpected_count") or 0),
            elements=int(r.get("element_count") or 0), sample=list(r.get("partial_unexpected_list") or [])[:SAMPLE],
            detail=f"could not evaluate: {error}" if error else None,
            keys=keys if suite.table and suite.quarantines and not res.success else []))
    _store(ctx, suite.name, suite_result, [res for res, _ in merged], run_id)
    return results


def _merge(merged, batch_results, max_keys):
    """Fold one batch's expectation results into the running totals: [(result, failing keys)]."""
    out = []
    for i, res in enumerate(batch_results):
        r = dict(res.result or {})
        keys = [str(row.get(KEY)) for row in (r.pop("unexpected_index_list", None) or []) if isinstance(row, dict)]
        r.pop("unexpected_list", None)
        r.pop("unexpected_index_query", None)
        res.result = r
        if merged is None:
            out.append((res, keys[:max_keys]))
            continue
        prev, prev_keys = merged[i]
        p = prev.result
        for k in ("element_count", "unexpected_count", "missing_count"):
            if k in r:
                p[k] = int(p.get(k) or 0) + int(r[k] or 0)
        nonmissing = p.get("element_count", 0) - p.get("missing_count", 0)
        if "unexpected_count" in p:
            p["unexpected_percent"] = 100.0 * p["unexpected_count"] / nonmissing if nonmissing else 0.0
            p["unexpected_percent_nonmissing"] = p["unexpected_percent"]
            p["unexpected_percent_total"] = 100.0 * p["unexpected_count"] / p["element_count"] if p.get("element_count") else 0.0
        if "partial_unexpected_list" in r:
            p["partial_unexpected_list"] = (list(p.get("partial_unexpected_list") or []) + list(r["partial_unexpected_list"]))[:SAMPLE]
        if not res.success:
            prev.success = False
            if res.exception_info and (res.exception_info or {}).get("raised_exception"):
                prev.exception_info = res.exception_info
        if "mostly" in (prev.expectation_config.kwargs or {}) and "unexpected_count" in p and nonmissing:
            prev.success = (1 - p["unexpected_count"] / nonmissing) >= prev.expectation_config.kwargs["mostly"]
        out.append((prev, (prev_keys + keys)[:max_keys]))
    return out


# ---------------------------------------------------------------------------- aggregate checks
def _run_aggregates(ctx, env, suite, checks, run_id, max_keys) -> list[CheckResult]:
    import great_expectations as gx
    import pandas as pd
    from great_expectations.validator.v1_validator import Validator

    results, values, evaluated = [], {}, []
    for check, sev in checks:
        why = env.has(*check.needs)
        if why:
            results.append(_skipped(suite, check, sev, why))
            continue
        try:
            value = check.value(env)
        except duckdb.Error as err:
            results.append(CheckResult(suite.check_name(check), suite.name, suite.table, sev, check.description, False,
                                       detail=f"could not evaluate: {str(err).splitlines()[0]}"))
            continue
        if isinstance(value, dict):
            values[f"{check.short}_expected"], values[f"{check.short}_actual"] = value["expected"], value["actual"]
        else:
            values[check.short] = value
        evaluated.append((check, sev, value))
    if not evaluated:
        return results
    name = f"{suite.name}.aggregates"
    gx_suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=[
        _expectation(c, suite.check_name(c), s, c.short) for c, s, _ in evaluated]))
    validator = Validator(batch_definition=batch_definition(name),
                          batch_parameters={"dataframe": pd.DataFrame([values])}, result_format="SUMMARY")
    suite_result = validator.validate_expectation_suite(gx_suite)
    for (check, sev, value), res in zip(evaluated, suite_result.results):
        failed = not res.success
        detail, keys = None, []
        if failed:
            try:
                detail = check.detail(env) if check.detail else None
                keys = check.keys(env)[:max_keys] if check.keys and suite.table and suite.quarantines else []
            except duckdb.Error as err:
                detail = f"details unavailable: {str(err).splitlines()[0]}"
        results.append(CheckResult(suite.check_name(check), suite.name, suite.table, sev, check.description,
                                   not failed, observed=value, elements=1, unexpected=int(failed),
                                   detail=detail, keys=keys))
    _store(ctx, name, suite_result, suite_result.results, run_id)
    return results


def _store(ctx, suite_name: str, suite_result, expectation_results, run_id: str) -> None:
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    stats = calc_validation_statistics(list(expectation_results))
    suite_result.results = list(expectation_results)
    suite_result.success = stats.success
    suite_result.statistics = {"evaluated_expectations": stats.evaluated_expectations,
                               "successful_expectations": stats.successful_expectations,
                               "unsuccessful_expectations": stats.unsuccessful_expectations,
                               "success_percent": stats.success_percent}
    run = RunIdentifier(run_name=run_id, run_time=dt.datetime.now(dt.timezone.utc))
    suite_result.meta["run_id"] = run
    suite_result.meta["validation_time"] = run.run_time
    suite_id = ExpectationSuiteIdentifier(name=suite_name)
    ctx.validation_results_store.store_validation_results(
        suite_validation_result=suite_result,
        suite_validation_result_identifier=ValidationResultIdentifier(
            expectation_suite_identifier=suite_id, run_id=run, batch_identifier=suite_result.batch_id or suite_name),
        expectation_suite_identifier=suite_id)
