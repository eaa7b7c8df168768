"""The building blocks of the suites: expectation shapes, frame columns and shared aggregate checks.

``quality.suites`` composes them into one suite per table.
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from quality.checks import Check, Env, FrameColumn

HEX64 = r"^[0-9a-f]{64}$"
SPLITS = ["train", "val", "test"]
OK = "ok"


# ---------------------------------------------------------------------------- expectation shapes
def regex(pattern: str):
    return lambda col: gxe.ExpectColumnValuesToMatchRegex(column=col, regex=pattern)


def not_null(mostly: float = 1.0):
    return lambda col: gxe.ExpectColumnValuesToNotBeNull(column=col, mostly=mostly)


def between(lo=None, hi=None):
    return lambda col: gxe.ExpectColumnValuesToBeBetween(column=col, min_value=lo, max_value=hi)


def in_set(values):
    return lambda col: gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(values))


def is_ok():
    """Aggregate checks that explain themselves: the value is "ok" or the problem in words."""
    return in_set([OK])


def pair_equal():
    return lambda col: gxe.ExpectColumnPairValuesToBeEqual(column_A=f"{col}_expected", column_B=f"{col}_actual")


def col(name: str) -> FrameColumn:
    return FrameColumn(name, (name,))


def nbytes(name: str) -> FrameColumn:
    return FrameColumn(f"octet_length({name})", (name,))


# ---------------------------------------------------------------------------- shared aggregates
def schema_check(table: str) -> Check:
    """Columns and types of the Delta table against the catalog (critical; runs first)."""
    from sluice.catalog import spec

    def problems(env: Env) -> str:
        actual = env.columns[table]
        out = []
        for f in spec(table).schema:
            if f.name not in actual:
                out.append(f"missing column '{f.name}' ({f.type})")
            elif actual[f.name] != _canonical(str(f.type)):
                out.append(f"column '{f.name}' is {actual[f.name]}, expected {f.type}")
        out += [f"unexpected column '{c}'" for c in actual if c not in spec(table).schema.names]
        return "; ".join(out) or OK

    return Check.aggregate("columns_and_types", "critical", f"{table} has the catalog's columns and types",
                           is_ok(), problems, needs=(table,))


def _canonical(arrow_type: str) -> str:
    return {"large_string": "string", "string_view": "string", "large_binary": "binary",
            "binary_view": "binary"}.get(arrow_type, arrow_type)


def unique_key(table: str, columns: tuple[str, ...], key_sql: str) -> Check:
    group = ", ".join(f'"{c}"' for c in columns)
    dups = f"SELECT {group} FROM {table} GROUP BY {group} HAVING count(*) > 1"
    return Check.aggregate(
        "key_unique", "critical", f"({group}) is unique in {table}", between(0, 0),
        lambda env: env.scalar(f"SELECT count(*) FROM ({dups})"),
        needs=tuple(f"{table}.{c}" for c in columns),
        keys=lambda env: env.values(f"SELECT DISTINCT {key_sql} FROM {table} WHERE ({group}) IN ({dups}) ORDER BY 1"),
        detail=lambda env: "duplicated keys: " + ", ".join(
            str(r) for r in env.rows(f"{dups} ORDER BY 1 LIMIT 5")),
    )


def classes_or_empty(env: Env) -> list[str]:
    return env.classes or []


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def vote_label(params) -> FrameColumn:
    """A vote's label as the labels stage reads it (transform/labels/vocabulary.py): trimmed, case-folded, through
    ``labels.synonyms``; judged against :func:`folded_classes`."""
    key = "lower(trim(label))"
    synonyms = {k.strip().casefold(): v.strip().casefold() for k, v in (params.labels.synonyms or {}).items()}
    if not synonyms:
        return FrameColumn(key, ("label",))
    cases = " ".join(f"WHEN {_quoted(k)} THEN {_quoted(v)}" for k, v in synonyms.items())
    return FrameColumn(f"CASE {key} {cases} ELSE {key} END", ("label",))


def folded_classes(env: Env) -> list[str]:
    return [c.casefold() for c in classes_or_empty(env)]


def source_label(params) -> FrameColumn:
    """``source_label``, with the rows of sources that land their images unlabelled by design (``label_from: none``:
    images waiting for crowd votes) counted as labelled: their missing labels are not a defect."""
    unlabelled = [s.name for s in params.ingest.sources if getattr(s, "label_from", None) == "none"]
    if not unlabelled:
        return FrameColumn("source_label", ("source_label",))
    names = ", ".join(_quoted(n) for n in unlabelled)
    return FrameColumn(f"CASE WHEN source IN ({names}) THEN coalesce(source_label, '(unlabelled source)') "
                       "ELSE source_label END", ("source", "source_label"))
