#!/usr/bin/env python3
"""chfront: a ClickHouse HTTP interface in front of chDB (the embedded ClickHouse engine).

It answers the subset of the ClickHouse HTTP protocol that the official Rust `clickhouse`
crate (0.15, feature `lz4`) and curl use, and runs every statement on ONE persistent chDB
session, so the SQL, the types, the table engines and the error messages are ClickHouse's own.

    python chfront.py --port 8123 [--host 127.0.0.1] [--data-dir DIR]

Once the socket is bound it prints one line `LISTENING <port>` to stdout. SIGTERM / SIGINT
stop it cleanly (the chDB session is closed, so the data dir can be reopened). See README.md.

Implemented:
  * GET /ping, GET / (without a query) -> "Ok.\\n"; GET and POST /?query=...
  * query text from the `query` URL parameter and/or the POST body (the two are joined with a
    newline like ClickHouse does), or from a multipart/form-data body (`query`, `param_*`).
  * `INSERT ... FORMAT <fmt>` / `INSERT ... VALUES` with the data after the query: the data is
    written to a temp file and run as `INSERT ... FROM INFILE '<file>' FORMAT <fmt>`.
  * `decompress=1` request bodies and `compress=1` responses with ClickHouse's native block
    framing (CityHash128 checksum, method byte, sizes, LZ4 / none); `Content-Encoding` of
    request bodies (lz4 frame, gzip, deflate) and `Accept-Encoding` of responses (lz4 frame, as
    the Rust crate asks for; gzip; deflate), unless `enable_http_compression=0`.
  * URL settings are applied with `SET` around the statement and reverted afterwards;
    `param_<name>` URL parameters / form fields are passed as query parameters; `database`
    selects the current database; HTTP-only parameters are ignored.
  * errors: the body is ClickHouse's `Code: N. DB::Exception: ... (NAME) (version ...)`, the
    header `X-ClickHouse-Exception-Code: N`, the HTTP status as ClickHouse maps the error.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import gzip
import json
import os
import re
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import lz4.block
import lz4.frame
from clickhouse_cityhash.cityhash import CityHash128

import chdb  # noqa: F401  (imported first so an installation problem is reported clearly)
from chdb import session as chdb_session

# --------------------------------------------------------------------------------------------
# Errors

# Error codes used for errors raised by the front itself (same numbers as ClickHouse).
CODES = {
    "CHECKSUM_DOESNT_MATCH": 40,
    "NOT_IMPLEMENTED": 48,
    "SYNTAX_ERROR": 62,
    "UNKNOWN_COMPRESSION_METHOD": 89,
    "TOO_LARGE_SIZE_COMPRESSED": 270,
    "CANNOT_DECOMPRESS": 271,
    "UNKNOWN_EXCEPTION": 1002,
}

# How ClickHouse's HTTP handler maps error names to HTTP status codes
# (src/Server/HTTPHandler.cpp, exceptionCodeToHTTPStatus).
STATUS_BY_NAME = {
    400: {
        "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH", "ILLEGAL_COLUMN", "DUPLICATE_COLUMN",
        "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE", "TOO_DEEP_AST", "TOO_BIG_AST",
        "UNEXPECTED_AST_STRUCTURE", "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    },
    404: {
        "UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE",
        "UNKNOWN_STORAGE", "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
        "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE",
        "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE",
    },
    413: {"QUERY_IS_TOO_LARGE"},
    501: {"NOT_IMPLEMENTED"},
    503: {"SOCKET_TIMEOUT", "CANNOT_OPEN_FILE"},
}

CODE_RE = re.compile(r"Code:\s*(\d+)\.")
NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


class ChError(Exception):
    """An error reported to the client the way ClickHouse reports it."""

    def __init__(self, code: int, name: str | None, message: str):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message  # "Code: N. DB::Exception: ... (NAME)"

    @classmethod
    def own(cls, name: str, text: str) -> "ChError":
        code = CODES[name]
        return cls(code, name, f"Code: {code}. DB::Exception: {text}. ({name})")

    @classmethod
    def from_chdb(cls, exc: BaseException) -> "ChError":
        text = str(exc).strip()
        # chDB sometimes wraps the server message; keep ClickHouse's part.
        start = text.find("Code: ")
        if start > 0:
            text = text[start:]
        m = CODE_RE.match(text)
        if not m:
            name = "UNKNOWN_EXCEPTION"
            return cls(CODES[name], name, f"Code: {CODES[name]}. DB::Exception: {text}. ({name})")
        first_line = text.splitlines()[0] if text else text
        n = NAME_RE.search(first_line) or NAME_RE.search(text)
        return cls(int(m.group(1)), n.group(1) if n else None, text)

    def http_status(self) -> int:
        name = self.name or ""
        for status, names in STATUS_BY_NAME.items():
            if name in names:
                return status
        if name.startswith("CANNOT_PARSE"):
            return 400
        return 500


# --------------------------------------------------------------------------------------------
# ClickHouse native compression framing (compress=1 / decompress=1)

METHOD_NONE = 0x02
METHOD_LZ4 = 0x82
METHOD_ZSTD = 0x90
HEADER_SIZE = 9
CHECKSUM_SIZE = 16
MAX_BLOCK = 1 << 20  # ClickHouse's DBMS_DEFAULT_BUFFER_SIZE
MAX_COMPRESSED = 1 << 30


def cityhash128_bytes(data: bytes) -> bytes:
    """The 16 checksum bytes as ClickHouse writes them: `first` then `second` as u64 LE.

    CityHash128 yields the pair (first, second) (ClickHouse's `UInt128{low64 = first,
    high64 = second}`); the Python binding packs it into an int as (first << 64) | second,
    so the halves are swapped relative to that int's little-endian bytes. (The Rust crate does
    `cityhash_102_128(..).rotate_right(64)` then `put_u128_le`, which gives the same bytes.)
    """
    h = CityHash128(data)
    return struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF)


def native_decompress(body: bytes) -> bytes:
    """Decodes a sequence of ClickHouse compressed blocks."""
    out = []
    pos = 0
    n = len(body)
    while pos < n:
        if n - pos < CHECKSUM_SIZE + HEADER_SIZE:
            raise ChError.own("CANNOT_DECOMPRESS", f"Truncated compressed block header at offset {pos}")
        checksum = body[pos:pos + CHECKSUM_SIZE]
        hdr = pos + CHECKSUM_SIZE
        method = body[hdr]
        size_compressed, size_raw = struct.unpack_from("<II", body, hdr + 1)
        if size_compressed < HEADER_SIZE or size_compressed > MAX_COMPRESSED:
            raise ChError.own("TOO_LARGE_SIZE_COMPRESSED",
                              f"Too large size_compressed_without_checksum: {size_compressed}")
        end = hdr + size_compressed
        if end > n:
            raise ChError.own("CANNOT_DECOMPRESS",
                              f"Truncated compressed block: need {end - pos} bytes, have {n - pos}")
        block = body[hdr:end]
        if cityhash128_bytes(block) != checksum:
            raise ChError.own("CHECKSUM_DOESNT_MATCH",
                              "Checksum doesn't match: corrupted data. Reference: "
                              f"{checksum.hex()}. Actual: {cityhash128_bytes(block).hex()}")
        payload = block[HEADER_SIZE:]
        if method == METHOD_LZ4:
            try:
                raw = lz4.block.decompress(payload, uncompressed_size=size_raw)
            except Exception as exc:  # lz4.block.LZ4BlockError
                raise ChError.own("CANNOT_DECOMPRESS", f"Cannot decompress LZ4-encoded data: {exc}")
        elif method == METHOD_NONE:
            raw = payload
        else:
            raise ChError.own("UNKNOWN_COMPRESSION_METHOD",
                              f"Unknown compression method: {method:#x} (the front supports LZ4 and NONE)")
        if len(raw) != size_raw:
            raise ChError.own("CANNOT_DECOMPRESS",
                              f"Decompressed size {len(raw)} does not match the header ({size_raw})")
        out.append(raw)
        pos = end
    return b"".join(out)


def native_compress(data: bytes) -> bytes:
    """Encodes data as ClickHouse LZ4 compressed blocks of at most 1 MiB of raw data each."""
    out = []
    for off in range(0, max(len(data), 1), MAX_BLOCK):
        raw = data[off:off + MAX_BLOCK]
        comp = lz4.block.compress(raw, store_size=False)
        header = struct.pack("<BII", METHOD_LZ4, HEADER_SIZE + len(comp), len(raw))
        block = header + comp
        out.append(cityhash128_bytes(block))
        out.append(block)
        if not data:
            break
    return b"".join(out)


# --------------------------------------------------------------------------------------------
# HTTP content encodings

def decode_content_encoding(body: bytes, encoding: str) -> bytes:
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return body
    try:
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if enc == "deflate":
            return zlib.decompress(body)
        if enc == "lz4":
            return lz4.frame.decompress(body)
    except ChError:
        raise
    except Exception as exc:
        raise ChError.own("CANNOT_DECOMPRESS", f"Cannot decode {enc} request body: {exc}")
    raise ChError.own("UNKNOWN_COMPRESSION_METHOD", f"Unknown HTTP compression method: {enc}")


def choose_accept_encoding(header: str | None) -> str | None:
    if not header:
        return None
    for token in header.split(","):
        name = token.split(";")[0].strip().lower()
        if name in ("lz4", "gzip", "deflate"):
            return name
    return None


def encode_content(data: bytes, enc: str) -> bytes:
    if enc == "lz4":
        return lz4.frame.compress(data)
    if enc == "gzip":
        return gzip.compress(data, compresslevel=3)
    if enc == "deflate":
        return zlib.compress(data, 3)
    raise ValueError(enc)


# --------------------------------------------------------------------------------------------
# SQL scanning: just enough to split `INSERT ... FORMAT X <data>` into the statement and its data

WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _skip_quoted(text: str, i: int) -> int:
    quote = text[i]
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_space_and_comments(text: str, i: int) -> int:
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("--", i) or c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            break
    return i


def scan_insert(text: str):
    """Parses the head of an INSERT that carries inline data.

    `text` is the request text decoded as latin-1 (so indexes are byte offsets). Returns None
    when this is not an INSERT with inline data (e.g. INSERT ... SELECT, FROM INFILE, other
    statements); otherwise a dict with `before_settings` (statement text up to a top-level
    SETTINGS clause, or up to FORMAT/VALUES), `settings` (the SETTINGS clause text or ''),
    `format` and `data_offset` (where the data starts).
    """
    i = _skip_space_and_comments(text, 0)
    m = WORD_RE.match(text, i)
    if not m or m.group(0).upper() != "INSERT":
        return None
    i = m.end()
    depth = 0
    settings_pos = None
    prev_word = None
    n = len(text)
    while i < n:
        i = _skip_space_and_comments(text, i)
        if i >= n:
            break
        c = text[i]
        if c in "'\"`":
            i = _skip_quoted(text, i)
            prev_word = None
            continue
        if c == "(":
            depth += 1
            i += 1
            continue
        if c == ")":
            depth -= 1
            i += 1
            continue
        m = WORD_RE.match(text, i)
        if not m:
            i += 1
            prev_word = None
            continue
        word = m.group(0).upper()
        start, i = m.start(), m.end()
        if depth != 0:
            continue
        if word in ("SELECT", "WITH") or (word == "INFILE" and prev_word == "FROM"):
            return None
        if word == "SETTINGS" and settings_pos is None:
            settings_pos = start
        elif word == "VALUES":
            head_end = start
            data = i
            return _insert_parts(text, settings_pos, head_end, "Values", data)
        elif word == "FORMAT":
            j = _skip_space_and_comments(text, i)
            fm = WORD_RE.match(text, j)
            if not fm:
                return None
            data = fm.end()
            # Like ClickHouse: skip blanks up to and including the first newline.
            while data < n and text[data] in " \t\f":
                data += 1
            if data < n and text[data] == "\r":
                data += 1
            if data < n and text[data] == "\n":
                data += 1
            return _insert_parts(text, settings_pos, start, fm.group(0), data)
        prev_word = word
    return None


def first_keyword(text: str) -> str:
    m = WORD_RE.match(text, _skip_space_and_comments(text, 0))
    return m.group(0).upper() if m else ""


def multi_statement_offset(text: str):
    """Offset of a top-level `;` that is followed by another statement, else None."""
    i, n = 0, len(text)
    while i < n:
        i = _skip_space_and_comments(text, i)
        if i >= n:
            return None
        c = text[i]
        if c in "'\"`":
            i = _skip_quoted(text, i)
        elif c == ";":
            if _skip_space_and_comments(text, i + 1) < n:
                return i
            return None
        else:
            i += 1
    return None


def _insert_parts(text, settings_pos, head_end, fmt, data_offset):
    if settings_pos is not None and settings_pos < head_end:
        before, settings = text[:settings_pos], text[settings_pos:head_end]
    else:
        before, settings = text[:head_end], ""
    return {
        "before_settings": before.rstrip(),
        "settings": settings.strip(),
        "format": fmt,
        "data_offset": data_offset,
    }


FORMAT_CLAUSE_RE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)


def output_format(sql: str, default: str) -> str:
    m = FORMAT_CLAUSE_RE.search(sql)
    return m.group(1) if m else default


def content_type_for(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith("json"):
        return "application/json; charset=UTF-8"
    if f.startswith("tabseparated") or f.startswith("tsv"):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if f.startswith("pretty") or f in ("values", "vertical", "markdown", "template", "rawblob"):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


# --------------------------------------------------------------------------------------------
# The engine: one chDB session, serialized

# URL parameters of the HTTP interface that are not settings.
HTTP_ONLY_PARAMS = {
    "query", "database", "default_format", "compress", "decompress", "user", "password",
    "quota_key", "query_id", "session_id", "session_timeout", "session_check", "buffer_size",
    "wait_end_of_query", "role", "stacktrace", "client_protocol_version",
    "default_database", "http_native_compression_disable_checksumming_on_decompress",
    # `readonly` would lock the shared session; the front does not emulate users or profiles.
    "readonly",
}


class Engine:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.lock = threading.Lock()
        self.session = chdb_session.Session(data_dir)
        self.tmp_dir = os.path.join(data_dir, "chfront-tmp")
        os.makedirs(self.tmp_dir, exist_ok=True)
        self.version = self._scalar("SELECT version()")
        self.timezone = self._scalar("SELECT timezone()")
        self.current_db = self._scalar("SELECT currentDatabase()")

    def _scalar(self, sql: str) -> str:
        return self.session.query(sql, "TabSeparatedRaw").bytes().decode().strip()

    def _run(self, sql: str, fmt: str, params=None):
        try:
            return self.session.query(sql, fmt, params=params or None)
        except Exception as exc:  # chdb raises ChdbError / RuntimeError with the CH message
            raise ChError.from_chdb(exc) from None

    def close(self):
        with self.lock:
            try:
                self.session.close()
            except Exception as exc:  # pragma: no cover
                log(f"closing the chDB session failed: {exc}")

    def execute(self, sql_bytes: bytes, fmt: str, database: str | None, settings, params):
        """Runs one request's statement; returns (result bytes, summary dict, inserted?)."""
        text = sql_bytes.decode("latin-1")
        insert = scan_insert(text)
        tmp_path = None
        if insert is not None:
            head = insert["before_settings"].encode("latin-1").decode("utf-8", "replace")
            clause = insert["settings"].encode("latin-1").decode("utf-8", "replace")
            data = sql_bytes[insert["data_offset"]:]
            fd, tmp_path = tempfile.mkstemp(prefix="insert-", suffix=".rows", dir=self.tmp_dir)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            quoted = tmp_path.replace("\\", "\\\\").replace("'", "\\'")
            sql = f"{head} FROM INFILE '{quoted}'"
            if clause:
                sql += f" {clause}"
            sql += f" FORMAT {insert['format']}"
        else:
            sql = sql_bytes.decode("utf-8", "replace")
            if not sql.strip():
                raise ChError.own("SYNTAX_ERROR", "Empty query")
            # chDB runs `a; b` but the ClickHouse HTTP interface refuses it.
            pos = multi_statement_offset(sql)
            if pos is not None:
                raise ChError.own("SYNTAX_ERROR",
                                  "Syntax error (Multi-statements are not allowed): failed at position "
                                  f"{pos + 1} (end of query): {one_line(sql[pos:], 60)}")
            if first_keyword(sql) == "SET":
                # Without HTTP sessions a SET only affects its own request: nothing to do.
                # (Running it would change the one shared chDB session for every later request.)
                return (b"", {}), False
        try:
            with self.lock:
                return self._execute_locked(sql, fmt, database, settings, params), insert is not None
        finally:
            if tmp_path:
                try:
                    os.unlink(tmp_path)
                except OSError:
                    pass

    def _execute_locked(self, sql, fmt, database, settings, params):
        db = database or "default"
        if db != self.current_db:
            self.current_db = None
            self._run(f"USE {quote_ident(db)}", "TabSeparated")
            self.current_db = db
        applied = []
        try:
            for name, value in settings:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ChError(115, "UNKNOWN_SETTING",
                                  f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
                self._run(f"SET {name} = {quote_string(value)}", "TabSeparated")
                applied.append(name)
            started = time.monotonic_ns()
            res = self._run(sql, fmt, params)
            if first_keyword(sql) == "USE":
                self.current_db = None  # stateless HTTP: the next request selects its database again
            elapsed = time.monotonic_ns() - started
            data = res.bytes() or b""
            summary = {
                "read_rows": str(_call(res, "rows_read")),
                "read_bytes": str(_call(res, "bytes_read")),
                "written_rows": str(_call(res, "rows_written")),
                "written_bytes": str(_call(res, "bytes_written")),
                "total_rows_to_read": str(_call(res, "rows_read")),
                "result_rows": "0",
                "result_bytes": str(len(data)),
                "elapsed_ns": str(elapsed),
            }
            return data, summary
        finally:
            for name in reversed(applied):
                try:
                    self.session.query(f"SET {name} = DEFAULT", "TabSeparated")
                except Exception as exc:  # pragma: no cover
                    log(f"could not reset setting {name}: {exc}")


def _call(res, name):
    try:
        return int(getattr(res, name)())
    except Exception:
        return 0


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------------------------
# HTTP

def log(msg: str):
    sys.stderr.write(f"[chfront {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def one_line(sql: bytes | str, limit: int = 160) -> str:
    if isinstance(sql, bytes):
        sql = sql[:limit * 2].decode("utf-8", "replace")
    s = " ".join(sql.split())
    return s if len(s) <= limit else s[:limit] + "…"


def parse_multipart(body: bytes, content_type: str):
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields = {}
    if not msg.is_multipart():
        raise ChError.own("SYNTAX_ERROR", "Malformed multipart/form-data body")
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        if part.get_filename():
            raise ChError.own("NOT_IMPLEMENTED",
                              "External tables (file fields in multipart requests) are not supported by chfront")
        fields[name] = part.get_payload(decode=True) or b""
    return fields


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chfront"
    engine: Engine = None  # set in main()

    # Quiet the default access log; we log our own line per request.
    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_HEAD(self):
        self._send(200, b"", {"Content-Type": "text/plain; charset=UTF-8"}, head=True)

    # ---- request plumbing

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until an empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, headers: dict, head: bool = False):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _handle(self):
        started = time.monotonic()
        url = urlsplit(self.path)
        params = parse_qsl(url.query, keep_blank_values=True)
        pdict = {}
        for k, v in params:
            pdict[k] = v  # the last one wins, like ClickHouse
        query_id = pdict.get("query_id") or str(uuid.uuid4())
        sql_for_log = pdict.get("query", "")
        status, nbytes_in, nbytes_out = 500, 0, 0
        try:
            body = self._read_body() if self.command == "POST" else b""
            nbytes_in = len(body)
            path = url.path.rstrip("/") or "/"
            if path in ("/ping", "/replicas_status") or (path == "/" and "query" not in pdict and not body):
                status = 200
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                nbytes_out = 4
                sql_for_log = path
                return
            if path != "/":
                status = 404
                msg = f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n".encode()
                self._send(404, msg, {"Content-Type": "text/plain; charset=UTF-8"})
                nbytes_out = len(msg)
                return

            if self.headers.get("Content-Encoding"):
                body = decode_content_encoding(body, self.headers["Content-Encoding"])

            ctype = self.headers.get("Content-Type") or ""
            query_params = {k[len("param_"):]: v for k, v in pdict.items() if k.startswith("param_")}
            url_query = pdict.get("query", "").encode("utf-8")
            if ctype.lower().startswith("multipart/form-data"):
                fields = parse_multipart(body, ctype)
                body = b""
                for name, value in fields.items():
                    if name == "query":
                        url_query = url_query + value if url_query else value
                    elif name.startswith("param_"):
                        query_params[name[len("param_"):]] = value.decode("utf-8")
            elif pdict.get("decompress") in ("1", "true") and body:
                body = native_decompress(body)

            if url_query and body:
                sql = url_query + b"\n" + body
            else:
                sql = url_query or body
            # For inserts the data follows the statement: log the statement only.
            sql_for_log = url_query or body[:512]

            settings = [(k, v) for k, v in pdict.items()
                        if k not in HTTP_ONLY_PARAMS and not k.startswith("param_")]
            fmt = pdict.get("default_format") or "TabSeparated"
            (data, summary), _inserted = self.engine.execute(
                sql, fmt, pdict.get("database"), settings, query_params)

            resp_fmt = output_format(sql[:4096].decode("utf-8", "replace"), fmt)
            headers = {
                "Content-Type": content_type_for(resp_fmt),
                "X-ClickHouse-Server-Display-Name": "chfront",
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Format": resp_fmt,
                "X-ClickHouse-Timezone": self.engine.timezone,
                "X-ClickHouse-Summary": json.dumps(summary or {}, separators=(",", ":")),
            }
            if pdict.get("compress") in ("1", "true"):
                data = native_compress(data)
                headers["Content-Type"] = "application/octet-stream"
            enc = None
            if pdict.get("enable_http_compression", "1") not in ("0", "false"):
                enc = choose_accept_encoding(self.headers.get("Accept-Encoding"))
            if enc and data:
                data = encode_content(data, enc)
                headers["Content-Encoding"] = enc
            status = 200
            nbytes_out = len(data)
            self._send(200, data, headers)
        except ChError as err:
            status = err.http_status()
            body = f"{err.message} (version {self.engine.version} (chDB))\n".encode("utf-8")
            nbytes_out = len(body)
            headers = {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Server-Display-Name": "chfront",
                "X-ClickHouse-Exception-Code": str(err.code),
            }
            self._send(status, body, headers)
            log(f"  error: {one_line(err.message, 300)}")
        except (BrokenPipeError, ConnectionResetError):
            status = 499
        except Exception as exc:  # a bug in the front: still answer like ClickHouse would
            status = 500
            msg = f"Code: 1001. DB::Exception: chfront internal error: {type(exc).__name__}: {exc}. (STD_EXCEPTION)"
            body = f"{msg} (version {self.engine.version} (chDB))\n".encode("utf-8")
            try:
                self._send(500, body, {"Content-Type": "text/plain; charset=UTF-8",
                                       "X-ClickHouse-Exception-Code": "1001"})
            except OSError:
                pass
            log(f"  internal error: {exc!r}")
        finally:
            ms = (time.monotonic() - started) * 1000
            log(f"{self.command} {status} {ms:.1f}ms in={nbytes_in}B out={nbytes_out}B "
                f"{one_line(sql_for_log) if sql_for_log else url.path}")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="ClickHouse HTTP interface in front of chDB")
    ap.add_argument("--port", type=int, default=8123, help="TCP port (0 = pick a free one)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--data-dir", default=None,
                    help="chDB data directory (default: a fresh temp dir removed at exit)")
    args = ap.parse_args(argv)

    own_tmp = args.data_dir is None
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="chfront-")
    os.makedirs(data_dir, exist_ok=True)

    engine = Engine(data_dir)
    Handler.engine = engine
    server = Server((args.host, args.port), Handler)
    port = server.server_address[1]

    def stop(signum, _frame):
        log(f"signal {signum}: shutting down")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    log(f"chDB {engine.version} on {data_dir}; listening on {args.host}:{port}")
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
        if own_tmp:
            shutil.rmtree(data_dir, ignore_errors=True)
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
