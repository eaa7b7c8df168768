"""Params sections of the data side: lake, compute, sources, crawl, clean, dedup, dataset, quality, export, privacy, paths."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from sluice.connectors import entry_type
from sluice import paths as _paths

from sluice.params_base import Section

Side = Annotated[int, Field(ge=8, le=2048)]
Channel = Annotated[int, Field(ge=0, le=255)]


class LakeParams(Section):
    root: str = "lake"
    storage_options: dict[str, str] = Field(default_factory=dict)
    commit_retries: Annotated[int, Field(ge=0, le=100)] = 10
    # merge-insert compacts a table's batch files once this many pile up; 0 = never (then let one process,
    # e.g. a scheduled `sluice lake maintain`, compact: object storage has no lock for it, sluice/compaction_lock.py)
    auto_compact_files: Annotated[int, Field(ge=0)] = 64
    # On s3://: server-side encryption of every object written (sluice/storage.py). AES256 = SSE-S3,
    # aws:kms = SSE-KMS with sse_kms_key_id (or $SLUICE_SSE_KMS_KEY_ID; none: the account's aws/s3 key).
    sse: Literal["AES256", "aws:kms", "none"] = "AES256"
    sse_kms_key_id: str | None = None
    allow_http: bool = False  # a plain http:// endpoint is refused unless set (e.g. a test server on loopback)


class ComputeParams(Section):
    """Where Dask work runs: a LocalCluster sized to the machine, or an existing scheduler."""

    scheduler_address: str | None = None
    n_workers: Annotated[int, Field(ge=1)] | None = None
    threads_per_worker: Annotated[int, Field(ge=1)] = 1
    memory_limit: str = "auto"


class DemoParams(Section):
    out_dir: str = "data/demo"
    seed: int = 0
    rare_class: Annotated[int, Field(ge=0, le=9)] = 7
    rare_keep: Annotated[int, Field(ge=1)] = 25
    label_noise: Annotated[float, Field(ge=0, le=0.2)] = 0.03  # share of train labels flipped (CIFAR + Parquet)


SourceEntry = entry_type("source")  # one ``ingest.sources`` entry, validated by its kind's connector


class IngestParams(Section):
    batch_rows: Annotated[int, Field(ge=1)] = 2000
    batch_bytes: Annotated[int, Field(ge=1)] = 64 << 20  # ... or fewer rows once their images hold this much
    max_file_bytes: Annotated[int, Field(ge=1)] = 50_000_000
    sources: list[SourceEntry] = Field(default_factory=list)  # models in ingest/sources/, docs/connectors.md


class CleanParams(Section):
    """Decode, verify and normalize raw images into silver `images` (transform/clean.py)."""

    size: Side | tuple[Side, Side] = 32  # N (square) or [H, W]
    resize: Literal["squash", "center_crop", "pad"] = "center_crop"  # keep aspect and cut the centre
    batch_images: Annotated[int, Field(ge=1)] = 256
    batch_bytes: Annotated[int, Field(ge=1)] = 64 << 20  # ... or fewer images once their files hold this much
    write_rows: Annotated[int, Field(ge=1)] = 5000
    max_pixels: Annotated[int, Field(ge=1)] = 50_000_000
    min_side: Annotated[int, Field(ge=1)] = 8
    animated: Literal["quarantine", "first_frame"] = "quarantine"
    min_std: Annotated[float, Field(ge=0)] = 2.0
    outlier_z: Annotated[float, Field(ge=0)] = 8.0
    outlier_max_share: Annotated[float, Field(ge=0, le=1)] = 0.05  # more beyond outlier_z on a statistic: no outliers
    max_aspect: Annotated[float, Field(ge=1)] = 8.0
    background: tuple[Channel, Channel, Channel] = (255, 255, 255)  # alpha and `pad` borders
    task_retries: Annotated[int, Field(ge=0)] = 2

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the normalized images."""
        return (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)


class DedupParams(Section):
    """Exact (pixel hash) and near duplicate groups (transform/dedup.py); defaults calibrated on the
    labelled benchmark in benchmarks/dedup.py (docs/transform.md)."""

    near_threshold: Annotated[int, Field(ge=0, le=16)] = 10  # max bits between window hashes (candidates)
    min_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.8  # aligned equalised-grey correlation (verification)
    moved_margin: Annotated[float, Field(ge=0, le=1)] = 0.05  # shifted/cropped alignments need this much more
    # ... and their band-pass detail must correlate this much (a pair short of it scores its detail
    # correlation): photos sharing only a layout (a ship on a horizon) are not copies; every edit of the
    # labelled benchmark is kept (docs/transform.md)
    min_detail_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.5
    # also find copies flipped left to right (each image probed by its mirror image's windows too: the
    # window-hash search and its checks cost about twice as much; docs/transform.md)
    mirrored: bool = True
    # an image whose window hashes meet more candidates than this (a heavy bucket: near-uniform scans, icons)
    # keeps its closest ones; the rest are counted and reported, not verified (bounds time and memory)
    max_candidates_per_image: Annotated[int, Field(ge=1)] = 256
    # build on the stored image_groups: search only the pairs with a new image (transform/dedup_state.py)
    incremental: bool = True


class DatasetParams(Section):
    """Split, balance and normalize into gold `dataset` (transform/dataset.py)."""

    seed: int = 0
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    keep_source_test: bool = True
    leak_policy: Literal["to_train", "drop"] = "to_train"
    group_conflict: Literal["majority", "canonical", "quarantine"] = "majority"
    label_issues: Literal["keep", "drop", "relabel"] = "keep"  # act on the OOF stage's label_issues (docs/insight.md)
    balance: Literal["none", "class_weights", "undersample", "oversample"] = "class_weights"
    balance_target: Annotated[int, Field(ge=1)] | None = None


def _valid_selector(value: str) -> str:
    """A CSS or XPath selector (``xpath:``/``css:`` prefix, or XPath when it starts with ``/ ./ (``)."""
    from sluice.selectors import compile_selector

    compile_selector(value)  # raises ValueError naming what is wrong
    return value


def _valid_regex(value: str) -> str:
    import re

    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"not a valid regular expression ({err})") from None
    return value


CrawlSelector = Annotated[str, AfterValidator(_valid_selector)]
CrawlRegex = Annotated[str, AfterValidator(_valid_regex)]


class CrawlFollowParams(Section):
    allow: list[CrawlRegex] = Field(default_factory=list)
    deny: list[CrawlRegex] = Field(default_factory=list)
    restrict: CrawlSelector | None = None
    pagination: CrawlSelector | None = None


class CrawlLabelParams(Section):
    # none = the source is declared unlabelled (no label expected, no unlabelled-share check)
    # column: the url_list's label_column (crawl.url_list)
    source: Literal["selector", "breadcrumb", "url_regex", "alt", "attr", "link_text", "column", "none"] = "breadcrumb"
    on: Literal["page", "image"] = "page"  # what selector / url_regex read: the page, or each image (element, URL)
    selector: CrawlSelector | None = None
    position: int = -1
    pattern: CrawlRegex | None = None
    attr: str | None = Field(default=None, min_length=1)  # source attr: this attribute of the image element
    max_unlabelled_share: Annotated[float, Field(ge=0, le=1)] = 0.0  # above it the crawl stage fails

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data):
        """YAML 1.1 (PyYAML) reads an unquoted ``on:`` key as the boolean true: take it as ``on``."""
        if isinstance(data, dict) and True in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _needs(self):
        if self.source in ("selector", "breadcrumb") and not self.selector:
            raise ValueError(f"label.source '{self.source}' needs label.selector")
        if self.source == "url_regex" and not self.pattern:
            raise ValueError("label.source 'url_regex' needs label.pattern")
        if self.source == "attr" and not self.attr:
            raise ValueError("label.source 'attr' needs label.attr")
        if self.source == "breadcrumb" and self.on == "image":
            raise ValueError("label.source 'breadcrumb' reads the page: use label.on 'page'")
        return self


# the names a url_list's label column is found by, compared without case, spaces, dashes or underscores
URL_LIST_LABEL_NAMES = ("label", "labels", "class", "classname", "category", "target", "landmarkid", "labelname", "tag",
                        "species", "breed")


class CrawlUrlList(Section):
    """A file listing the image URLs to land instead of pages to crawl (ingest/crawl/url_list.py)."""

    path: str = Field(min_length=1)  # CSV / TSV with a header, Parquet, or a text file of one URL a line
    url_column: str | None = None  # null: the column whose values are http(s) URLs
    label_column: str | None = None  # with label.source: column; null: found by name (URL_LIST_LABEL_NAMES)
    id_column: str | None = None  # null: found by name (id, ImageID, ...) where there is one: raw_images.item_id
    split_column: str | None = None  # null: found by name (split, subset, ...): train / val / test as the list says
    delimiter: str | None = None


class CrawlParams(Section):
    """The web crawl connector (ingest/crawl); see docs/crawl.md."""

    source: str = Field(default="demo-site", min_length=1)
    start_urls: list[str] = Field(default_factory=lambda: ["{demo_site}/"])  # none with a url_list
    url_list: CrawlUrlList | None = None  # land the images a file lists (with their labels) rather than crawl pages
    demo_site_dir: str = "data/demo/site"
    allowed_domains: list[str] = Field(default_factory=list)
    follow: CrawlFollowParams = CrawlFollowParams()
    images: CrawlSelector = "img"
    image_attr: str = Field(default="auto", min_length=1)  # auto: lazy-loading attributes, src, srcset (catalogue.py)
    label: CrawlLabelParams = Field(default_factory=lambda: CrawlLabelParams(selector="nav.breadcrumb a"))
    license: str | None = None
    user_agent: str = Field(default="SluiceBot/0.1 (+https://github.com/sluice-lake/sluice; data-team@example.org)",
                            min_length=1)
    obey_robots: bool = True
    concurrency: Annotated[int, Field(ge=1)] = 16
    concurrency_per_domain: Annotated[int, Field(ge=1)] = 4
    download_delay: Annotated[float, Field(ge=0)] = 0.0
    autothrottle: bool = True
    autothrottle_target: Annotated[float, Field(gt=0)] = 4.0
    retries: Annotated[int, Field(ge=0)] = 2
    backoff_base: Annotated[float, Field(ge=0)] = 0.5
    retry_after_max: Annotated[float, Field(ge=0)] = 120.0
    timeout: Annotated[float, Field(gt=0)] = 30.0
    max_bytes: Annotated[int, Field(ge=1)] = 20_000_000
    max_pixels: Annotated[int, Field(ge=1)] = 50_000_000
    max_pages: Annotated[int, Field(ge=0)] = 10_000
    max_depth: Annotated[int, Field(ge=0)] = 10
    max_redirects: Annotated[int, Field(ge=0)] = 5
    http_cache: bool = False
    http_cache_dir: str = "runs/crawl/httpcache"
    incremental: bool = True  # conditional GETs for images already landed (validators from crawl_log)
    recrawl_after: Annotated[float, Field(ge=0)] | None = None  # seconds; null = always revalidate
    sitemap: bool = False  # also crawl the pages listed in each start host's /sitemap.xml
    job_dir: str | None = None
    batch_rows: Annotated[int, Field(ge=1)] = 500
    batch_bytes: Annotated[int, Field(ge=1)] = 64 << 20  # ... or fewer images once they hold this much
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @model_validator(mode="after")
    def _pages_or_list(self):
        if not self.start_urls and self.url_list is None:
            raise ValueError("crawl needs start_urls (pages to crawl) or url_list (a file of image URLs)")
        if self.label.source == "column" and self.url_list is None:
            raise ValueError("label.source: column reads the labels of a url_list (a file of image URLs): set url_list")
        if self.url_list is not None and self.label.source not in ("column", "none"):
            raise ValueError("a url_list has no pages to read labels from: label.source is column (its labels "
                             "column) or none")
        return self


class QualityParams(Section):
    """Great Expectations gates per layer, quarantine, reports (quality/); see docs/quality.md."""

    classes: list[str] | None = None  # null = labels.classes, else the resolved labels found
    # every class's least share of train; null = a tenth of a balanced share (0.1 / classes: 1% of train with 10
    # classes, 0.1% with 100), so that Food-101 or ImageNet are not stopped for having many classes
    min_class_share: Annotated[float, Field(ge=0, le=1)] | None = None
    min_label_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    min_annotator_accuracy: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_flagged_annotator_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_unresolved_vote_share: Annotated[float, Field(ge=0, le=1)] = 0.1
    max_image_side: Annotated[int, Field(ge=1)] = 20_000
    severity: dict[str, Literal["critical", "warning", "off"]] = Field(default_factory=dict)
    batch_rows: Annotated[int, Field(ge=1)] = 100_000
    max_quarantine_per_check: Annotated[int, Field(ge=0)] = 100_000
    reports_dir: str = "reports/quality"
    manifests_dir: str = "data/manifests"
    snapshot_dir: str = "data/dataset"
    page_samples_per_class: Annotated[int, Field(ge=0, le=64)] = 8
    page_max_dup_groups: Annotated[int, Field(ge=0)] = 12
    max_test_leakage: Annotated[float, Field(ge=0, le=1)] = 0.005  # share of test images with a near-copy in train
    page_max_quarantined: Annotated[int, Field(ge=0)] = 60

    def class_share_floor(self, classes: int) -> float:
        """The least share of train each of ``classes`` classes must keep: ``min_class_share``, else 0.1 / classes."""
        return self.min_class_share if self.min_class_share is not None else 0.1 / max(classes, 1)


class ExportParams(Section):
    """The frozen training snapshot written by the export stage (transform/export.py); docs/versioning.md."""

    out_dir: str = "data/dataset"
    shard_rows: Annotated[int, Field(ge=1)] = 8192


class MaintainParams(Section):
    """`sluice lake maintain`: compaction, vacuum and orphan cleanup (sluice/maintenance.py)."""

    retention_hours: Annotated[int, Field(ge=0)] = 168
    target_file_mb: Annotated[int, Field(ge=1)] = 128
    tables: list[str] = Field(default_factory=list)


class PrivacyParams(Section):
    """Personal data in the lake (sluice/privacy.py)."""

    pseudonymize_workers: bool = True  # worker IDs -> HMAC-SHA256 pseudonyms keyed by $SLUICE_PSEUDONYM_KEY
    # raw_images.subject (a DICOM PatientID, a labels file's patient column): pseudonyms with the same key; auto:
    # when the key is set (else stored as given, said in the log); true: refuse a subject without the key
    pseudonymize_subjects: Literal["auto"] | bool = "auto"
    # Faces at clean time (transform/faces.py, docs/privacy.md): keep (no detector runs), blur the face boxes in
    # the silver pixels, or drop images with a face (quarantined with check privacy:face).
    faces: Literal["keep", "blur", "drop"] = "keep"
    # a built-in detector (haar: OpenCV's frontal + profile cascades; haar_frontal) or "module:function" of your own
    face_detector: str = Field(default="haar", pattern=r"^(haar|haar_frontal|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")
    face_min_neighbors: Annotated[int, Field(ge=1, le=50)] = 4  # higher: fewer false positives, lower recall
    face_min_px: Annotated[float, Field(ge=1, le=512)] = 4  # smallest face looked for, in silver pixels
    face_detect_max_side: Annotated[int, Field(ge=64, le=8192)] = 640  # longest side of the image the detector sees
    face_margin: Annotated[float, Field(ge=0, le=1)] = 0.2  # boxes grow by this share of their size per side


class PathsParams(Section):
    """Where the project keeps its state (relative to the project folder, where DVC runs the stages).

    ``dataset`` and ``manifests`` are the defaults of the per-stage keys that used to repeat them
    (train.snapshot, export.out_dir, compress.snapshot, quality.snapshot_dir, quality.manifests_dir),
    which remain accepted as explicit overrides. ``python`` is the interpreter the generated
    ``dvc.yaml`` runs every stage with (``${paths.python} -m ...``).
    """

    python: str = Field(default=_paths.PYTHON, min_length=1)
    manifests: str = Field(default=_paths.MANIFESTS, min_length=1)
    dataset: str = Field(default=_paths.DATASET, min_length=1)


# (section, key) <- paths key: filled from `paths` unless the section sets the key itself.
