"""Item keys: how the item names of a vote export (or a gold / ground-truth file) map onto landed images.

Shared by the vote connectors (``ingest.votes``), which resolve what they can when votes land, and the
labels stage, which re-resolves every vote against ``raw_images`` on every run (``crowd_votes.image_id``
is never rewritten: a vote that arrived before its image counts as soon as the image lands).

A name is first *normalised*: trimmed, ``file://`` removed, and Label Studio's three usual image
references reduced to the file they point at — ``/data/local-files/?d=<path>`` (URL-decoded path),
``/data/upload/<project>/<8 hex>-<name>`` (the uploaded file's name) and either of those behind
``http(s)://host:port``. An optional user rewrite follows (``item_pattern``: a regex; with
``item_replace`` a substitution, else the named group ``item`` or the first group is kept; a name the
pattern does not match stays as it is). Then ``item_key`` says what the name is:

- ``auto`` (default): ``image_id``, ``source_uri`` (or its absolute path), ``item_id`` where the
  connector recorded one, the name a packed image had as a file where the connector kept it (``extra``'s
  ``path``: a Parquet image's path, a CIFAR image's original file name; or its last component), else a
  path suffix that names exactly one landed file (``cat/001.png``, ``001.png``); a name longer than any
  landed path resolves by its longest such tail (an MTurk URL ``https://bucket/.../cat/001.png``, a
  Windows path ``D:\\labels\\cat\\001.png``), then ignoring case, then without the file's extension (or
  with another image extension: ``cat/001.png`` for a landed ``cat/001.jpg``, where that stem names one file),
  each tried again percent-decoded (``my%20cat.jpg``);
- ``source_uri`` / ``path`` (unique path suffix) / ``file_name`` / ``stem`` (file name without extension) /
  ``image_id``;
- ``column:<name>``: a ``raw_images`` column (e.g. ``column:item_id``) or a field of its ``extra`` JSON.

A name that several images share under the chosen key (two folders with ``001.png``) resolves to none
of them: it stays pending rather than guessed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import unquote, unquote_plus

import polars as pl

KEYS = ("auto", "source_uri", "path", "file_name", "stem", "image_id")
_LS_HOST = r"^https?://[^/]+(/data/(?:local-files|upload)/)"
_LS_LOCAL = r"^/data/local-files/?\?d="
_LS_UPLOAD = r"^/data/upload/[^/]+/(?:[0-9a-f]{8}-)?"
# an image file's extension, taken off a vote's item name for auto's last step (cat/001.png matching cat/001.jpg)
_IMAGE_EXTENSION = r"(?i)\.(jpe?g|jfif|png|gif|bmp|webp|tiff?|heic|heif|avif|dcm|ppm|pgm)$"
_SUFFIX_DEPTH = 4  # path components considered for suffix matches (longer names match the full path)


def check_key(key: str) -> str:
    """``key`` if it is a valid item_key, else a ValueError naming the valid ones."""
    if key in KEYS or (key.startswith("column:") and key[len("column:"):].strip()):
        return key
    raise ValueError(f"item_key must be one of {', '.join(KEYS)} or column:<name>")


def check_pattern(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"item_pattern is not a valid regular expression ({err})") from None
    return pattern


def normalize(names: pl.Series, pattern: str | None = None, replace: str | None = None) -> pl.Series:
    """Item names as keys: trimmed, ``file://`` and Label Studio references reduced, then the user rewrite."""
    s = names.cast(pl.String).str.strip_chars().str.strip_prefix("file://").str.replace(_LS_HOST, "$1")
    windows = s.str.contains(r"^[A-Za-z]:\\|^\\\\") | (s.str.contains("\\", literal=True) & ~s.str.contains("/", literal=True))
    if windows.any():  # C:\data\cat\001.jpg, as a tool on Windows writes it
        s = pl.select(pl.when(windows).then(s.str.replace_all("\\", "/", literal=True)).otherwise(s)).to_series()
    local = s.str.contains(_LS_LOCAL)
    if local.any():
        decoded = s.str.replace(_LS_LOCAL, "").map_elements(unquote, return_dtype=pl.String)
        s = pl.select(pl.when(local).then(decoded).otherwise(s)).to_series()
    s = s.str.replace(_LS_UPLOAD, "")
    if pattern:
        rx = re.compile(pattern)
        group = "item" if "item" in rx.groupindex else (1 if rx.groups else 0)

        def rewrite(name: str) -> str:
            if replace is not None:
                return rx.sub(replace, name)
            m = rx.search(name)
            return m.group(group) if m else name

        s = s.map_elements(rewrite, return_dtype=pl.String)
    return s.rename(names.name)


class ItemIndex:
    """``name -> image_id`` tables over ``raw_images``, one per item key, built on first use."""

    def __init__(self, raw: pl.DataFrame | Callable[[], pl.DataFrame], extra_reader=None):
        self._raw = raw  # image_id, source_uri, fetched_at[, item_id], or how to read them
        self._extra_reader = extra_reader  # () -> DataFrame(image_id, extra) for column:<extra field>
        self._extra: pl.DataFrame | None = None  # what it read, rows with an extra only
        self._tables: dict[str, pl.DataFrame] = {}
        self._folded: dict[str, pl.DataFrame] = {}  # the same, names case-folded

    @classmethod
    def from_lake(cls, lake) -> ItemIndex:
        """The index over the lake's ``raw_images``, read when the first name is resolved: a run with no
        votes to resolve does not hold the table's names (~200 MB at a million images)."""
        if not lake.exists("raw_images"):
            return cls(pl.DataFrame(schema={"image_id": pl.String, "source_uri": pl.String,
                                            "fetched_at": pl.Datetime("us", "UTC")}))

        def read() -> pl.DataFrame:
            names = set(lake.table("raw_images").schema().to_arrow().names)
            cols = ["image_id", "source_uri", "fetched_at"] + (["item_id"] if "item_id" in names else [])
            return pl.from_arrow(lake.read("raw_images", columns=cols))

        def read_extra() -> pl.DataFrame:
            import pyarrow.dataset as ds

            return pl.from_arrow(lake.read("raw_images", columns=["image_id", "extra"], filter=ds.field("extra").is_valid()))

        return cls(read, read_extra)

    @property
    def raw(self) -> pl.DataFrame:
        if callable(self._raw):
            self._raw = self._raw()
        return self._raw

    def table(self, key: str) -> pl.DataFrame:
        if key not in self._tables:
            self._tables[key] = self._build(key)
        return self._tables[key]

    def resolve(self, names: pl.Series, keys: pl.Series | str = "auto") -> pl.Series:
        """The image_id each (already normalised) name resolves to under its key; null where none or several."""
        frame = pl.DataFrame({"ref": names.cast(pl.String),
                              "key": keys if isinstance(keys, pl.Series) else pl.Series([keys] * len(names), dtype=pl.String)})
        frame = frame.with_row_index("__i")
        parts = []
        for key in frame["key"].unique().drop_nulls().to_list():
            part = frame.filter(pl.col("key") == key).join(self.table(key), on="ref", how="left")
            if key in ("auto", "path") and part["image_id"].null_count():
                part = part.with_columns(pl.col("image_id").fill_null(self._by_tail(part["ref"], key)))
            parts.append(part.select("__i", "image_id"))
        out = frame.select("__i").join(pl.concat(parts) if parts else pl.DataFrame(
            schema={"__i": pl.UInt32, "image_id": pl.String}), on="__i", how="left", maintain_order="left")
        return out["image_id"].rename("image_id")

    def _by_tail(self, refs: pl.Series, key: str) -> pl.Series:
        """Names longer than any landed path, or spelled in another case: the image the longest tail of the
        name's path names (``https://bucket.s3.amazonaws.com/photos/cat/001.jpg``, ``D:/labelling/cat/001.jpg``
        -> ``cat/001.jpg``), then the same ignoring case (``CAT/001.JPG``), then (``auto``) without the file's
        extension (``cat/001``). A tail several images share names none of them, as everywhere. A name still
        unresolved is tried again decoded as a URL carries a file's name (``my%20cat.jpg``, ``caf%C3%A9.jpg``),
        then with ``+`` as a space (``my+cat.jpg``, as S3's console links a key): web, S3 and MTurk links encode
        spaces and letters past ASCII."""
        found = self._tails(refs, key)
        for decode in (unquote, unquote_plus):
            if not found.null_count() or not refs.str.contains(r"[%+]").any():
                break
            decoded = refs.map_elements(decode, return_dtype=pl.String)
            found = found.fill_null(self._tails(pl.select(pl.when(found.is_null() & (decoded != refs)).then(decoded))
                                                .to_series(), key))
        return found

    def _tails(self, refs: pl.Series, key: str) -> pl.Series:
        parts = (refs.str.replace(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "").str.replace(r"[?#].*$", "")
                 .str.strip_prefix("/").str.split("/"))
        if key not in self._folded:
            table = self.table(key)
            self._folded[key] = _unique(table.select(pl.col("ref").str.to_lowercase(), "image_id"))
        tables = [(self.table(key), False), (self._folded[key], True)]
        stems_from = len(tables)
        if key == "auto":  # last, a name without (or with another) extension: Kaggle-style ids (cat/001 -> cat/001.jpg)
            tables += [(self._stems(), False), (self._stems(folded=True), True)]
        found = pl.Series("image_id", [None] * len(refs), dtype=pl.String)
        for i, (table, fold) in enumerate(tables):
            for n in range(_SUFFIX_DEPTH, 0, -1):
                tail = pl.select(pl.when(parts.list.len() >= n).then(parts.list.slice(-n).list.join("/"))).to_series()
                tail = tail.str.to_lowercase() if fold else tail
                if i >= stems_from:  # cat/001.png where cat/001.jpg landed: the stems match
                    tail = tail.str.replace(_IMAGE_EXTENSION, "")
                hit = pl.DataFrame({"ref": tail}).join(table, on="ref", how="left", maintain_order="left")["image_id"]
                found = found.fill_null(hit)
        return found

    def _stems(self, folded: bool = False) -> pl.DataFrame:
        """Every landed path suffix without its file's extension (``folded``: in lower case) that names exactly one
        image (``cat/001`` for ``cat/001.jpg``; ``001`` names none where ``dog/001.jpg`` landed too, nor
        ``cat/001`` beside a ``cat/001.png``)."""
        name = "stems folded" if folded else "stems"
        if name not in self._folded:
            self._folded[name] = _unique(self._stem_pairs(folded))
        return self._folded[name]

    def _stem_pairs(self, folded: bool = False) -> pl.DataFrame:
        pairs = self._suffix_pairs(1).with_columns(pl.col("ref").str.replace(r"\.[^./]*$", ""))
        return pairs.with_columns(pl.col("ref").str.to_lowercase()) if folded else pairs

    def shared(self, names: pl.Series, key: str = "auto") -> pl.Series:
        """True where a name that resolves to nothing names several landed files under ``key`` (two
        folders with ``001.png``; under ``auto`` also by its stem, as resolve's last step tries it: ``001`` or
        ``001.png`` beside ``cats/001.jpg`` and ``dogs/001.jpg``): it will not resolve by waiting, only by a
        longer name or another key."""
        names = names.cast(pl.String)
        if key in ("auto", "path"):
            many = _many(self._suffix_pairs(1))
            if key == "auto":
                stems = names.str.replace(_IMAGE_EXTENSION, "")
                by_stem = stems.is_in(_many(self._stem_pairs()).implode()) | \
                    stems.str.to_lowercase().is_in(_many(self._stem_pairs(folded=True)).implode())
                return ((names.is_in(many.implode()) | by_stem) & self.resolve(names, key).is_null()).rename("shared")
        elif key in ("file_name", "stem"):
            pairs = self._paths().select(pl.col("path").str.split("/").list.last().alias("ref"), "image_id")
            if key == "stem":
                pairs = pairs.with_columns(pl.col("ref").str.replace(r"\.[^.]*$", ""))
            many = _many(pairs)
        else:
            return pl.Series("shared", [False] * len(names), dtype=pl.Boolean)
        return (names.is_in(many.implode()) & self.resolve(names, key).is_null()).rename("shared")

    # ------------------------------------------------------------------ building
    def _build(self, key: str) -> pl.DataFrame:
        if key == "auto":
            exact = [self._exact("image_id"), self._uris()]
            if "item_id" in self.raw.columns:
                exact.append(self._exact("item_id"))
            packed = self._extra_field("path")
            exact += [_unique(packed), _unique(packed.with_columns(pl.col("ref").str.split("/").list.last()))]
            return _first_wins(exact + [self._suffixes(1)])
        if key == "image_id":
            return self._exact("image_id")
        if key == "source_uri":
            return self._uris()
        if key == "path":
            return _first_wins([self._uris(), self._suffixes(1)])
        if key == "file_name":
            return _unique(self._paths().select(pl.col("path").str.split("/").list.last().alias("ref"), "image_id"))
        if key == "stem":
            names = self._paths().select(pl.col("path").str.split("/").list.last().alias("ref"), "image_id")
            return _unique(names.with_columns(pl.col("ref").str.replace(r"\.[^.]*$", "")))
        column = key[len("column:"):].strip()
        if column in self.raw.columns:
            return self._exact(column)
        return _unique(self._extra_field(column))

    def _extra_field(self, name: str) -> pl.DataFrame:
        """``ref, image_id`` for every image whose ``extra`` JSON has the field ``name`` (a name several
        images share appears once per image)."""
        if self._extra_reader is None:
            return _empty()
        if self._extra is None:  # read once, for every field asked
            self._extra = self._extra_reader().filter(pl.col("extra").is_not_null())
        extra = self._extra
        field = extra["extra"].str.json_path_match(f"$.{name}") if extra.height else pl.Series([], dtype=pl.String)
        return pl.DataFrame({"ref": field, "image_id": extra["image_id"]}).drop_nulls("ref")

    def _exact(self, column: str) -> pl.DataFrame:
        return _unique(self.raw.select(pl.col(column).cast(pl.String).alias("ref"), "image_id"))

    def _uris(self) -> pl.DataFrame:
        """source_uri and the absolute path of local ones; a URI landed twice resolves to its latest fetch."""
        raw = self.raw
        local = raw.filter(~pl.col("source_uri").str.contains("://", literal=True))
        absolute = local.with_columns(pl.Series("source_uri", [os.path.abspath(u) for u in local["source_uri"]], pl.String))
        return (pl.concat([raw.select("source_uri", "image_id", "fetched_at"),
                           absolute.select("source_uri", "image_id", "fetched_at")])
                .sort("fetched_at", descending=True).unique("source_uri", keep="first", maintain_order=True)
                .select(pl.col("source_uri").alias("ref"), "image_id"))

    def _paths(self) -> pl.DataFrame:
        """The path part of every source_uri (a URL's path without query), as ``path, image_id``."""
        path = (pl.col("source_uri").str.replace(r"^[a-z][a-z0-9+.-]*://[^/]*", "").str.replace(r"[?#].*$", "")
                .str.strip_prefix("/"))
        plain = pl.col("source_uri").str.contains("://", literal=True)
        return self.raw.select(pl.when(plain).then(path).otherwise(pl.col("source_uri").str.strip_prefix("/"))
                               .alias("path"), "image_id").unique()

    def _suffixes(self, shortest: int) -> pl.DataFrame:
        """Every path suffix of ``shortest`` or more components that names exactly one image."""
        return _unique(self._suffix_pairs(shortest))

    def _suffix_pairs(self, shortest: int) -> pl.DataFrame:
        """Every path suffix of ``shortest`` or more components with the image it names (a suffix
        several files end with appears once per file)."""
        parts = self._paths().with_columns(pl.col("path").str.split("/").alias("parts"))
        frames = [parts.filter(pl.col("parts").list.len() >= n)
                  .select(pl.col("parts").list.slice(-n).list.join("/").alias("ref"), "image_id")
                  for n in range(shortest, _SUFFIX_DEPTH + 1)]
        return pl.concat(frames) if frames else _empty()


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"ref": pl.String, "image_id": pl.String})


def _many(pairs: pl.DataFrame) -> pl.Series:
    """The names that point at more than one image."""
    return pairs.unique().group_by("ref").len().filter(pl.col("len") > 1)["ref"]


def _unique(pairs: pl.DataFrame) -> pl.DataFrame:
    """Names that point at exactly one image_id (a shared name resolves to none)."""
    pairs = pairs.filter(pl.col("ref").is_not_null() & (pl.col("ref") != "")).unique()
    return pairs.filter(pl.col("ref").is_unique()).select("ref", "image_id")


def _first_wins(tables: list[pl.DataFrame]) -> pl.DataFrame:
    """Union of name tables; a name in an earlier table shadows the later ones."""
    ranked = [t.with_columns(pl.lit(i).alias("__rank")) for i, t in enumerate(tables)]
    return (pl.concat(ranked).sort("__rank", maintain_order=True)
            .unique("ref", keep="first", maintain_order=True).select("ref", "image_id"))
