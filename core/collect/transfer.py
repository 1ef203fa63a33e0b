"""Import: JSONL, CSV and the user's old scraper database in (core.collect.export writes JSONL and CSV out).

File format (both JSONL and CSV, one post or one label per row; `export_file` writes exactly this):
  board (default biz), thread_no, post_no (or `id`), is_op, time (unix seconds or ISO 8601), subject,
  text, html, post_source (default import), image_url (fetched later by the image pipeline),
  image_path (a local file, cached at once; relative paths are relative to the import file),
  label (bearish/neutral/bullish or 1/2/3), source (default human), labeler, split (human labels default
  to the `split` argument, others to unassigned), confidence (0..1), sarcastic, unsure (1/0), rationale,
  sampling (human labels: how the post was chosen, core.labels.RANDOM_SAMPLING or another order; blank keeps
  what the store recorded).
  API labels have source api and a labeler that starts with its provider ("openai:gpt-5-mini@p3"); files from
  before providers were data (source openai, gemini, ...) are read the same way.
A bad row (no text, unknown label, a number that is not one or too large for SQLite, text that is a list, a CSV
row with more cells than the header) is reported by line and left out; good rows are still imported. A file
where no row is good, or a CSV whose quote is never closed, is refused in one line.

An existing human test label (core.label.human.changes_test_label) changes only when the caller confirms: the
`confirm` callback sees every such change first; without a yes those labels stay and the rest imports.

An import checks every row first and writes nothing if the file is refused; local images are read and cached
next (slow, so with no transaction open), then posts, labels, notes, skips and image records go in, a chunk of
rows per transaction (core.store.chunks): one transaction for a 300,000-row file would hold the write lock for
tens of seconds, and a labeling job's heartbeat and claims would wait behind it (the job would look dead).
Every row is written as it would be on its own, so an import stopped midway is completed by running it again.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils
from bizsent.core.collect.fields import blank, parse_bool, parse_float, parse_int, parse_str, parse_time
from bizsent.core.collect.html_text import clean_text
from bizsent.core.collect.images import Cached, cache_image, record
from bizsent.core.collect.scraperdb import read_scraper_db
from bizsent.core.errors import BizsentError, ImportFormatError
from bizsent.core.label import providers
from bizsent.core.label.human import changes_test_label
from bizsent.core.labels import API_SOURCE, SOURCES, SPLITS, origin, parse_label
from bizsent.core.store import chunks, db_path, transaction
from bizsent.core.store.history import LabelValue
from bizsent.core.store.posts import add_note, add_skip, post_id, set_label, write_posts
from bizsent.core.store.records import ImageRef, ImportRow, NewLabel, NewPost

SQLITE_MAGIC = b"SQLite format 3\x00"
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
POST_FIELDS = ["board", "thread_no", "post_no", "is_op", "time", "subject", "text", "html", "post_source",
               "image_url", "image_path"]
LABEL_FIELDS = ["label", "source", "labeler", "split", "confidence", "sarcastic", "unsure", "rationale", "sampling"]
LOCAL_SCHEME = "file://"


@dataclass
class ImportReport:
    path: str
    format: str = ""
    posts_new: int = 0
    posts_updated: int = 0
    labels: dict[str, int] = field(default_factory=dict)  # by who they are from (core.labels.origin)
    skips: int = 0
    notes: int = 0
    rows_skipped: int = 0  # bad rows left out
    images_cached: int = 0
    images_queued: int = 0
    test_changes: list[HumanTestChange] = field(default_factory=list)  # human test labels the file would change
    test_changed: bool = False  # they were confirmed and written
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        labels = ", ".join(f"{source} {n}" for source, n in sorted(self.labels.items())) or "none"
        line = (
            f"imported {self.path} ({self.format}): {self.posts_new} new posts, {self.posts_updated} updated; "
            f"labels: {labels}; {self.skips} skips, {self.notes} notes; images: {self.images_cached} cached, "
            f"{self.images_queued} queued for download"
        )
        if self.rows_skipped:
            line += f"; {self.rows_skipped} bad rows left out (listed above)"
        if self.test_changes:
            n = len(self.test_changes)
            line += (f"; {n} human test label(s) changed" if self.test_changed else
                     f"; {n} human test label(s) left as they were (import again with --yes to change them)")
        return line


@dataclass(frozen=True, slots=True)
class HumanTestChange:
    """A row that would change an existing human test label."""

    where: str
    post: str  # board/post_no
    before: LabelValue
    after: NewLabel

    def describe(self) -> str:
        b, a = self.before, self.after
        return (f"post {self.post} ({self.where}): {b.label}/{b.split} -> {a.label}/{a.split}"
                + (f", sarcastic {b.sarcastic} -> {a.sarcastic}" if b.sarcastic != a.sarcastic else "")
                + (f", unsure {b.unsure} -> {a.unsure}" if b.unsure != a.unsure else ""))


def detect_format(path: Path) -> str:
    if not path.exists():
        raise ImportFormatError(f"file {path} not found; check the path")
    if not path.is_file():
        raise ImportFormatError(f"{path} is not a file; pass a .jsonl, .csv or SQLite file")
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith("{"):
        return "jsonl"
    first = text.splitlines()[0] if text else ""
    if "," in first and {"text", "post_no", "id", "label"} & {c.strip().lower() for c in first.split(",")}:
        return "csv"
    raise ImportFormatError(f"cannot tell the format of {path}; expected .jsonl, .csv or the old scraper's SQLite")


def import_file(db: sqlite_utils.Database, path: Path, *, split: str = "test", scale: str = "auto",
                image_dir: Path | None = None,
                confirm: Callable[[list[HumanTestChange]], bool] | None = None) -> ImportReport:
    """Import posts, labels, notes and skips from `path` (format detected); return what happened.

    `confirm` is asked (once, before anything is written) whether to change the existing human test labels the
    file disagrees with; without it, or on no, they stay as they are."""
    path = Path(path)
    if split not in SPLITS:
        raise BizsentError(f"--split {split} is not a split; use one of {', '.join(SPLITS)}")
    report = ImportReport(path=str(path), format=detect_format(path))
    if report.format == "sqlite":
        rows, problems, bad = read_scraper_db(path, split=split, scale=scale)
    else:
        known = _known_posts(db)
        records = _jsonl_records(path) if report.format == "jsonl" else _csv_records(path)
        rows, problems, bad = _parse_records(records, path, split, known)
    report.problems.extend(problems)
    report.rows_skipped = bad
    if bad and not rows:
        raise ImportFormatError(f"nothing imported from {path}: all {bad} rows are bad; the first: {problems[0]}")
    report.test_changes = _test_changes(db, rows)
    report.test_changed = bool(report.test_changes) and confirm is not None and confirm(report.test_changes)
    cached = _cache_local_images(db, rows, image_dir or Path(db_path(db)).parent / "images")
    queued: set[int] = set()
    for chunk in chunks(rows):
        with transaction(db):
            _write(db, chunk, report, cached, queued)
    report.images_queued = len(queued)
    return report


def _test_changes(db: sqlite_utils.Database, rows: list[ImportRow]) -> list[HumanTestChange]:
    out = []
    for row in rows:
        pid = post_id(db, row.post.board, row.post.post_no)
        if row.label and pid is not None and (before := changes_test_label(db, pid, row.label)) is not None:
            out.append(HumanTestChange(row.where, f"{row.post.board}/{row.post.post_no}", before, row.label))
    return out


def _known_posts(db: sqlite_utils.Database) -> Callable[[str, int], bool]:
    return lambda board, no: post_id(db, board, no) is not None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(line number, record or the reason it is not one)."""
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        yield number, value if isinstance(value, dict) else "not a JSON object"


def _csv_records(path: Path) -> Iterator[tuple[int, dict | str]]:
    # strict: a quote that is never closed is an error, not a cell that silently swallows the rows after it.
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""), strict=True)
    try:
        fields = reader.fieldnames
    except csv.Error as exc:
        raise ImportFormatError(f"{path.name} line 1: the header is not valid CSV ({exc}); fix it") from None
    if not fields or not {"text", "html", "post_no", "id"} & set(fields):
        raise ImportFormatError(f"{path} has no text, html, post_no or id column; the first line must be a header")
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFormatError(
                f"{path.name} line {start}: not valid CSV ({exc}); a quote opened on this line is probably never "
                "closed; fix it and import again (nothing was imported)") from None
        extra = row.pop(None, None)  # DictReader's bucket for cells beyond the header
        yield start, f"{len(fields) + len(extra)} cells, the header has {len(fields)}" if extra else row
        start = reader.line_num + 1


def _parse_records(records: Iterator[tuple[int, dict | str]], path: Path, split: str,
                   known: Callable[[str, int], bool]) -> tuple[list[ImportRow], list[str], int]:
    rows: list[ImportRow] = []
    problems: list[str] = []
    bad = 0
    for number, record_ in records:
        where = f"{path.name} line {number}"
        try:
            if isinstance(record_, str):
                raise ValueError(record_)
            rows.append(_parse_row(record_, where, path.parent, split, known))
        except ValueError as exc:
            problems.append(f"{where}: {exc}; row left out")
            bad += 1
    return rows, problems, bad


def _parse_row(row: dict, where: str, base: Path, split: str, known: Callable[[str, int], bool]) -> ImportRow:
    board = parse_str(row.get("board"), "board").strip().strip("/") or "biz"
    post_no = parse_int(row.get("post_no"), "post_no")
    if post_no is None:
        post_no = parse_int(row.get("id"), "id")
    if post_no is None:
        raise ValueError("no post_no or id")
    thread_no = parse_int(row.get("thread_no"), "thread_no") or post_no
    is_op = parse_bool(row["is_op"], "is_op") if not blank(row.get("is_op")) else thread_no == post_no
    markup = parse_str(row.get("html"), "html")
    text = parse_str(row.get("text"), "text") or clean_text(markup)
    image = _image_ref(row, base)
    if not text.strip() and image is None and not known(board, post_no):
        raise ValueError("missing text (and no html or image)")
    post = NewPost(
        board=board, thread_no=thread_no, post_no=post_no, text=text, html=markup,
        subject=parse_str(row.get("subject"), "subject"), time=parse_time(row.get("time")), is_op=is_op,
        source=parse_str(row.get("post_source"), "post_source") or "import", image=image,
    )
    return ImportRow(where=where, post=post, label=_label(row, split))


def _image_ref(row: dict, base: Path) -> ImageRef | None:
    url = parse_str(row.get("image_url"), "image_url").strip()
    local = parse_str(row.get("image_path"), "image_path").strip()
    if url.startswith(LOCAL_SCHEME) and not local:
        local = url.removeprefix(LOCAL_SCHEME)
    if local:
        file = (base / local).resolve()
        return ImageRef(url=url or f"{LOCAL_SCHEME}{file}", local_path=str(file))
    return ImageRef(url=url) if url else None


def _label(row: dict, split: str) -> NewLabel | None:
    if blank(row.get("label")):
        return None
    label = parse_label(row["label"])
    source = parse_str(row.get("source"), "source").strip().lower() or "human"
    labeler = parse_str(row.get("labeler"), "labeler") or f"{source}:import"
    if source in providers.names():  # an older file: the provider was the source
        source, labeler = API_SOURCE, labeler if labeler.startswith(f"{source}:") else f"{source}:{labeler}"
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {', '.join(providers.origins())} or {API_SOURCE}")
    if source == API_SOURCE and ":" not in labeler.strip(":"):
        raise ValueError(f"an {API_SOURCE} label's labeler must name its provider (e.g. openai:gpt-5-mini@p3),"
                         f" not {labeler!r}")
    row_split = parse_str(row.get("split"), "split").strip().lower() or (split if source == "human" else "unassigned")
    if row_split not in SPLITS:
        raise ValueError(f"split {row_split!r} is not one of {', '.join(SPLITS)}")
    return NewLabel(
        label=label, source=source, split=row_split,
        labeler=labeler,
        confidence=parse_float(row.get("confidence"), "confidence", 0.0, 1.0),
        sarcastic=parse_bool(row.get("sarcastic"), "sarcastic"),
        unsure=parse_bool(row.get("unsure"), "unsure"),
        rationale=None if blank(row.get("rationale")) else parse_str(row["rationale"], "rationale"),
        sampling=_sampling(row, source),
    )


def _sampling(row: dict, source: str) -> str | None:
    sampling = parse_str(row.get("sampling"), "sampling").strip() or None
    if sampling is not None and source != "human":
        raise ValueError(f"sampling {sampling!r} is recorded for human labels only, not {source}")
    return sampling


def _cache_local_images(db: sqlite_utils.Database, rows: list[ImportRow], image_dir: Path) -> dict[str, Cached]:
    """Read and cache every local image not cached yet: {local path: outcome}. Runs with no transaction open.

    Decoding a large image takes tens of milliseconds, and every other writer waits while a transaction is
    open. The cache is content-addressed, so files left by an import that fails later are reused by a rerun.
    A cache folder that cannot be written stops the import here, before anything is written to the database.
    """
    out: dict[str, Cached] = {}
    for row in rows:
        ref = row.post.image
        if ref is None or not ref.local_path or ref.local_path in out:
            continue
        found = db.execute("SELECT status FROM images WHERE url = ?", [ref.url]).fetchone()
        if found and found[0] == "ok":
            continue
        try:
            data = Path(ref.local_path).read_bytes()
        except OSError as exc:
            out[ref.local_path] = Cached(status="missing",
                                         reason=f"local file {ref.local_path} unreadable ({exc.strerror or exc})")
            continue
        try:
            out[ref.local_path] = cache_image(image_dir, data)
        except OSError as exc:
            raise BizsentError(
                f"cannot write the image cache {exc.filename or image_dir} ({exc.strerror or exc}); make "
                f"{image_dir} a writable folder and import again (nothing was imported)") from None
    return out


def _write(db: sqlite_utils.Database, rows: list[ImportRow], report: ImportReport,
           cached: dict[str, Cached], queued: set[int]) -> None:
    """Write checked rows inside the caller's transaction: fast statements only."""
    # An existing post is only refreshed by a row that carries its HTML, so a labels-only row
    # never blanks a scraped post's body.
    posts = [r.post for r in rows if r.post.html or post_id(db, r.post.board, r.post.post_no) is None]
    counts = write_posts(db, posts)
    report.posts_new += counts.new
    report.posts_updated += counts.updated
    for row in rows:
        pid = post_id(db, row.post.board, row.post.post_no)
        if pid is None:
            continue
        # Checked again here, in the transaction: only what the user confirmed (or nothing) changes the test set.
        if row.label and (report.test_changed or changes_test_label(db, pid, row.label) is None):
            set_label(db, pid, row.label)
            who = origin(row.label.source, row.label.labeler)
            report.labels[who] = report.labels.get(who, 0) + 1
        if row.note and not db.execute(
            "SELECT 1 FROM notes WHERE post_id = ? AND text = ?", [pid, row.note]
        ).fetchone():
            add_note(db, pid, row.note)
            report.notes += 1
        if row.skip_reason is not None:
            add_skip(db, pid, row.skip_reason)
            report.skips += 1
        if row.post.image:
            _settle_image(db, row, report, cached, queued)


def _settle_image(db: sqlite_utils.Database, row: ImportRow, report: ImportReport, cached: dict[str, Cached],
                  queued: set[int]) -> None:
    ref = row.post.image
    found = db.execute("SELECT id, status FROM images WHERE url = ?", [ref.url]).fetchone()
    if found is None:  # the post was already known and this row did not refresh it
        return
    image_id, status = found
    if not ref.local_path:
        if status == "pending":
            queued.add(image_id)
        return
    result = cached.get(ref.local_path)
    if status == "ok" or result is None:
        return
    record(db, image_id, result)
    if result.status == "ok":
        report.images_cached += 1
    elif result.status == "missing":
        report.problems.append(f"{row.where}: {result.reason}; post imported without its image")
    else:
        report.problems.append(f"{row.where}: image {ref.local_path} is {result.status} ({result.reason})")
