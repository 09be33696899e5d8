"""Every data source a row reader takes, as ``(location, row)`` pairs: the one place that parses
TSV, CSV and JSON lines for the readers.

Sources:

* a TSV file with a header (PALM's format, ``file_format='tsv'``, the default);
* a CSV file with a header (``'csv'``; RFC 4180 quoting, so a field may hold commas, quotes and
  line breaks);
* a JSON-lines file, one object per line (``'jsonl'``);
* in memory: a list (or any iterable) of dicts, or a ``datasets.Dataset`` (imported by its user,
  never here: ``datasets`` is not a dependency).

``file_format='auto'`` picks the format from the file name: ``.csv`` is CSV, ``.jsonl``,
``.ndjson`` and ``.json`` are JSON lines, anything else TSV. In-memory data has no format.

A reader names its *fields* (``text_a``, ``label``, ...) and what each holds (:data:`TEXT`,
:data:`LABEL`, :data:`TOKENS`, :data:`ID`); ``columns={"text_a": "review"}`` reads a field from a
column of another name. Rows come back keyed by field name, their values checked: text is a
string, a label a string or an integer, tokens a list of strings (JSON lists and in-memory data
only). Every problem is a :class:`DataFormatError` naming ``file:line`` (in-memory data: ``row N``,
its index). A JSON ``null`` counts as a missing value.
"""
import csv
import io
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from paddlepalm.reader.errors import DataFormatError
from paddlepalm.reader.tsv import read_tsv
from paddlepalm.utils.fileio import FileFormatError, decode_utf8, json_lines, strip_bom

FILE_FORMATS = ("tsv", "csv", "jsonl")
TEXT, LABEL, TOKENS, ID = "text", "label", "tokens", "id"
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".tsv": "tsv"}

Fields = Mapping[str, str]  # field name -> TEXT, LABEL, TOKENS or ID
Required = Sequence[Tuple[str, ...]]  # each: one of these fields must be present
Source = Union[str, "os.PathLike[str]", Iterable[Mapping[str, Any]], Any]


class Location(NamedTuple):
    """Where a row came from: ``path`` and ``line`` (from 1) of a file, or ``row`` (from 0) of
    in-memory data."""

    path: str
    line: Optional[int] = None
    row: Optional[int] = None

    def __str__(self) -> str:
        if self.row is not None:
            return f"row {self.row}"
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def error(self, problem: str) -> DataFormatError:
        return DataFormatError(self.path, self.line, problem, row=self.row)


# ------------------------------------------------------------------ what a source is
def is_file(source: Source) -> bool:
    return isinstance(source, (str, os.PathLike))


def describe(source: Source) -> str:
    """A name for messages: the path of a file, else what the in-memory data is."""
    if is_file(source):
        return os.fspath(source)
    size = f" of {len(source)} rows" if hasattr(source, "__len__") else ""
    kind = "datasets.Dataset" if _is_dataset(source) else type(source).__name__
    return f"in-memory data (a {kind}{size})"


def resolve_format(path: str, file_format: Optional[str]) -> str:
    """``file_format`` checked; ``'auto'`` (or None) from the file name's extension."""
    if file_format in (None, "auto"):
        return _EXTENSIONS.get(os.path.splitext(path)[1].lower(), "tsv")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS} or 'auto', got {file_format!r}")
    return file_format


def check_columns(columns: Optional[Mapping[str, str]], fields: Fields) -> Dict[str, str]:
    """``field -> column name`` for every field (a field's own name unless ``columns`` renames it)."""
    columns = dict(columns or {})
    for field, column in columns.items():
        if field not in fields:
            raise ValueError(f"columns: unknown field {field!r}; this reader reads {', '.join(fields)} "
                             "(columns maps a field to the name of the column holding it)")
        if not isinstance(column, str) or not column:
            raise ValueError(f"columns: the column of {field!r} must be a non-empty string, got {column!r}")
    return {field: columns.get(field, field) for field in fields}


def _is_dataset(source: Any) -> bool:
    """A ``datasets.Dataset`` (checked by its module: importing ``datasets`` here would make it a
    dependency and cost seconds)."""
    return type(source).__module__.split(".")[0] == "datasets" and hasattr(source, "column_names")


# ------------------------------------------------------------------ rows
def read_rows(source: Source, fields: Fields, required: Required, file_format: Optional[str] = "tsv",
              columns: Optional[Mapping[str, str]] = None) -> Iterator[Tuple[Location, Dict[str, Any]]]:
    """``(location, row)`` for each row of ``source``; ``row`` maps each field present to its
    checked value. ``required``: groups of fields of which one must be present (``("tokens",
    "text_a")``: either). ``file_format`` applies to files only."""
    names = check_columns(columns, fields)
    if is_file(source):
        path = os.fspath(source)
        raw = _file_rows(path, resolve_format(path, file_format), fields, required, names)
    elif _is_dataset(source):
        if isinstance(source, Mapping):
            raise TypeError(f"a datasets.DatasetDict of splits {list(source)}: give one split, e.g. data['train']")
        raw = _dataset_rows(source, fields, names)
    elif isinstance(source, (bytes, Mapping)) or not isinstance(source, Iterable):
        raise TypeError(f"expected a file path, a list of dicts or a datasets.Dataset, got {type(source).__name__}")
    else:
        raw = ((Location(describe(source), row=index), record) for index, record in enumerate(source))
    for location, record in raw:
        if not isinstance(record, Mapping):
            raise location.error(f"expected an object of named columns, got {type(record).__name__}: {record!r:.80}")
        yield location, pick(location, record, fields, required, names)


def pick(location: Location, record: Mapping[str, Any], fields: Fields, required: Required,
         names: Mapping[str, str]) -> Dict[str, Any]:
    """The fields of one record, renamed and checked."""
    row: Dict[str, Any] = {}
    for field, kind in fields.items():
        value = record.get(names[field])
        if value is not None:
            row[field] = _checked(location, names[field], kind, value)
    for group in required:
        if not any(field in row for field in group):
            wanted = " or ".join(_shown(field, names) for field in group)
            raise location.error(f"missing column {wanted} (the row has {sorted(record)})")
    return row


def _shown(field: str, names: Mapping[str, str]) -> str:
    return repr(names[field]) + (f" (the {field} column)" if names[field] != field else "")


def _checked(location: Location, column: str, kind: str, value: Any) -> Any:
    if kind == TEXT:
        if not isinstance(value, str):
            raise location.error(f"column {column!r} must be a string, got {type(value).__name__}: {value!r:.80}")
        _no_nul(location, value)
        return value
    if kind == LABEL:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise location.error(f"column {column!r} (a label) must be a string or an integer, "
                                 f"got {type(value).__name__}: {value!r:.80}")
        return value
    if kind == ID:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise location.error(f"column {column!r} must be a string or an integer, got {type(value).__name__}")
        return str(value)
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise location.error(f"column {column!r} must be a list of strings (JSON [\"a\", \"b\"]), "
                             f"got {type(value).__name__}: {value!r:.80}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise location.error(f"item {index} of column {column!r} must be a string, "
                                 f"got {type(item).__name__}: {item!r:.80}")
        _no_nul(location, item)
    return list(value)


def _no_nul(location: Location, text: str) -> None:
    if "\x00" in text:
        raise location.error(f"NUL byte in the text (at character {text.index(chr(0))})")


# ------------------------------------------------------------------ files
def _file_rows(path: str, file_format: str, fields: Fields, required: Required,
               names: Mapping[str, str]) -> Iterator[Tuple[Location, Mapping[str, Any]]]:
    if file_format == "jsonl":
        return _jsonl_rows(path)
    table = [(f, names[f]) for f, kind in fields.items() if kind != TOKENS]  # a table cell holds no list
    needed = [group for group in ([f for f in g if fields[f] != TOKENS] for g in required) if group]
    if file_format == "csv":
        return _csv_rows(path, table, needed, names)
    columns = [names[g[0]] for g in needed if len(g) == 1]
    optional = [column for _, column in table if column not in columns]
    return ((Location(path, number), row) for number, row in read_tsv(path, columns, optional))


def _jsonl_rows(path: str) -> Iterator[Tuple[Location, Any]]:
    try:
        for number, value in json_lines(path):
            yield Location(path, number), value
    except FileFormatError as err:
        raise DataFormatError(err.path, err.line, err.problem) from None


def _csv_rows(path: str, table: Sequence[Tuple[str, str]], needed: Required,
              names: Mapping[str, str]) -> Iterator[Tuple[Location, Mapping[str, Any]]]:
    """Records of a CSV file with a header; a record's location is the line it starts on."""
    with open(path, "rb") as f:
        try:
            text = strip_bom(decode_utf8(path, f.read()))
        except FileFormatError as err:
            raise DataFormatError(err.path, err.line, err.problem) from None
    records = csv.reader(io.StringIO(text, newline=""))
    header, start = _csv_record(path, records, 1)
    if header is None:
        raise DataFormatError(path, None, "file is empty")
    absent = [names[g[0]] for g in needed if not any(names[f] in header for f in g)]
    if absent:
        raise DataFormatError(path, 1, f"header lacks column(s) {absent}; header is {header}")
    while True:
        number = records.line_num + 1
        fields, _ = _csv_record(path, records, number)
        if fields is None:
            return
        if fields == [] or fields == [""]:
            continue
        if len(fields) != len(header):
            raise DataFormatError(path, number, f"expected {len(header)} comma-separated columns "
                                                f"({', '.join(header)}), found {len(fields)}")
        yield Location(path, number), dict(zip(header, fields))


def _csv_record(path: str, records, number: int) -> Tuple[Optional[List[str]], int]:
    try:
        return next(records), number
    except StopIteration:
        return None, number
    except csv.Error as err:
        raise DataFormatError(path, number, f"not valid CSV: {err}") from None


# ------------------------------------------------------------------ datasets
def _dataset_rows(dataset, fields: Fields, names: Mapping[str, str]) -> Iterator[Tuple[Location, Dict[str, Any]]]:
    """Rows of a ``datasets.Dataset``; a tokens column of class ids (``Sequence(ClassLabel)``,
    e.g. ``ner_tags``) comes back as the class names."""
    decoders = {}
    for field, kind in fields.items():
        feature = getattr(dataset, "features", {}).get(names[field]) if kind == TOKENS else None
        class_names = getattr(getattr(feature, "feature", None), "names", None)
        if class_names:
            decoders[names[field]] = class_names
    where = describe(dataset)
    for index, record in enumerate(dataset):
        for column, class_names in decoders.items():
            if isinstance(record.get(column), list):
                record[column] = [class_names[i] if isinstance(i, int) and 0 <= i < len(class_names) else i
                                  for i in record[column]]
        yield Location(where, row=index), record
