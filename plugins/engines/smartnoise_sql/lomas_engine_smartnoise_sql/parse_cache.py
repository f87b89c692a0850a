"""SmartNoise-SQL's parses, done once per distinct text: SQL trees copied out, XPath shared.

On a small table most of a warm query's time in the engine was SmartNoise-SQL parsing with its
ANTLR grammars (profile in docs/performance.md): the SQL text twice per query (``PrivateReader``
parses it, its ``Rewriter`` parses the printed tree again) and, on every symbol lookup and check,
one of a handful of constant XPath expressions (``//AggFunction``, ``//Column``...) the library
parses each time it evaluates them. Both parses are pure functions of their text.

:func:`install` rebinds the names those library modules look up at call time (pinned to
smartnoise-sql 1.0.x; the tests compare both forms over a grid of queries):

* ``snsql.sql.private_reader.QueryParser`` and ``snsql.sql.private_rewriter.QueryParser``: a
  parser that keeps the ANTLR visitor's tree per SQL text (before any metadata is attached) and
  hands out a **deep copy** of it every time, then attaches the metadata's symbols to the copy
  exactly as the library does. The caller owns its copy: the library's rewrite and this
  engine's statement rewrites (``TRY``, per-person sampling order, dialects) change their own
  tree only, and the kept tree is never handed out. A text that fails to parse is not kept (it
  is parsed, and refused, again), nor is a tree too deep to copy (then parsed as usual).
* ``snsql._ast.tokens.XPath``: a parser that keeps the parsed XPath statement per text and
  returns the same object (XPath statements only read the trees they are evaluated on; the
  texts are the library's own constants).

Keys are the texts only (public: the researcher's SQL as printed by ``sql_check``); what is kept
holds no data, no privacy settings and no noise. Both maps are bounded (least recently used
first out) and thread-safe; they are process-wide, as the names they replace are.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["LruMap", "install", "installed", "sql_trees", "xpaths"]

#: XPath texts kept (the library uses fewer than ten distinct ones).
XPATH_SIZE = 64
#: Total length of the SQL texts whose trees are kept (~35 MB of trees at most).
SQL_CHARS = 100_000


class LruMap:
    """A bounded, thread-safe map from texts, least recently used first out; counts hits and
    misses. Bounded in entries (``size``; 0 keeps nothing) and in the total length of the texts
    kept (``max_chars``: what is kept grows with its text, ~350 bytes a character for SQL trees);
    a text longer than ``max_chars`` is not kept."""

    def __init__(self, size: int, max_chars: int = 1 << 62) -> None:
        self.size = size
        self.max_chars = max_chars
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: Any) -> None:
        if self.size <= 0 or len(key) > self.max_chars:
            return
        with self._lock:
            if key not in self._items:
                self._chars += len(key)
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size or self._chars > self.max_chars:
                old, _ = self._items.popitem(last=False)
                self._chars -= len(old)

    @property
    def chars(self) -> int:
        """The total length of the texts kept."""
        with self._lock:
            return self._chars

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._chars = 0
            self.hits = self.misses = 0


#: SQL text -> the ANTLR visitor's list of query trees, no metadata attached (never handed out).
sql_trees = LruMap(0, SQL_CHARS)
#: XPath text -> the parsed statement (shared: evaluation only reads it).
xpaths = LruMap(XPATH_SIZE)

_lock = threading.Lock()
_originals: dict[str, Any] = {}
_classes: dict[str, type] = {}


def _build_classes() -> dict[str, type]:
    from antlr4 import InputStream
    from snsql.metadata import Metadata
    from snsql.sql.parse import BatchVisitor, QueryParser
    from snsql.xpath.parse import XPath

    class CachedQueryParser(QueryParser):  # type: ignore[misc]
        """SmartNoise-SQL's parser; the visitor's trees kept per text, copies handed out."""

        def queries(self, query_string: str, metadata: Any = None) -> list[Any]:
            if metadata is None and self.metadata is not None:
                metadata = self.metadata
            elif metadata:
                metadata = Metadata.from_(metadata)
            kept = sql_trees.get(query_string) if isinstance(query_string, str) else None
            trees = None
            if kept is not None:
                try:
                    trees = copy.deepcopy(kept)
                except RecursionError:
                    trees = None
            if trees is None:
                parser = self.start_parser(InputStream(query_string))
                trees = list(BatchVisitor().visit(parser.batch()).queries)
                if kept is None and isinstance(query_string, str):
                    try:
                        sql_trees.put(query_string, copy.deepcopy(trees))
                    except RecursionError:
                        pass  # too deep to copy: parsed every time, as without the cache
            if metadata is not None:
                for query in trees:
                    query.load_symbols(metadata)
            return trees

    class CachedXPath(XPath):  # type: ignore[misc]
        """SmartNoise-SQL's XPath parser; each statement parsed once per text."""

        def parse(self, statement: str) -> Any:
            parsed = xpaths.get(statement)
            if parsed is None:
                parsed = super().parse(statement)
                xpaths.put(statement, parsed)
            return parsed

    return {"QueryParser": CachedQueryParser, "XPath": CachedXPath}


def _targets() -> list[tuple[Any, str]]:
    import snsql._ast.tokens as tokens
    import snsql.sql.private_reader as private_reader
    import snsql.sql.private_rewriter as private_rewriter

    return [(private_reader, "QueryParser"), (private_rewriter, "QueryParser"), (tokens, "XPath")]


def install(size: int) -> None:
    """Use the cached parsers in SmartNoise-SQL, keeping up to ``size`` SQL texts' trees;
    ``size`` 0 puts the library's own parsers back (every text parsed every time)."""
    with _lock:
        targets = _targets()
        if not _originals:
            for module, name in targets:
                _originals[f"{module.__name__}.{name}"] = getattr(module, name)
        if not _classes:
            _classes.update(_build_classes())
        sql_trees.size = size
        sql_trees.clear()
        xpaths.clear()
        for module, name in targets:
            original = _originals[f"{module.__name__}.{name}"]
            setattr(module, name, _classes[name] if size > 0 else original)


def installed() -> bool:
    """Whether SmartNoise-SQL currently uses the cached parsers."""
    import snsql.sql.private_reader as private_reader

    return bool(_classes) and private_reader.QueryParser is _classes["QueryParser"]
