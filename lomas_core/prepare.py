"""What every engine sees: a loaded table made to honour its public metadata.

The metadata makes promises that privacy proofs rely on; engines must not each re-implement
them, so the core enforces them once, when a dataset version is loaded (before the cache keeps
it, so every engine and every query sees the same prepared table):

1. **Columns and types** (:func:`lomas_core.io.check_schema`): only the declared columns, in their
   declared types.
2. **Categories**: a value of a column with declared ``categories`` that is not one of them
   becomes null. No engine can then release a key outside the declared set, and a domain built
   from the categories holds for the data. (A non-nullable column may therefore hold nulls;
   engines drop or ignore such rows, a row-wise step that changes no contribution bound.)
3. **Contribution bound**: with a ``private_id`` column, each individual keeps at most
   ``max_ids`` rows: their first ``max_ids`` rows in the source's order. Rows with no id are
   dropped (nobody could be charged for them). The rule looks at one individual's rows only, so
   adding or removing a person never changes which rows another person keeps; ``max_ids`` is the
   ``d_in`` of every privacy map. Without a ``private_id`` every row is its own individual.
4. **Row bound**: ``rows``, when declared, is a public upper bound that engines build domains
   from (OpenDP's margins). A larger table is a metadata mistake; it is refused, for every
   engine alike, rather than answered under a false promise.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lomas_core.errors import DatasetUnavailable
from lomas_core.io import check_schema, target_type

if TYPE_CHECKING:
    import pyarrow as pa

    from lomas_core.metadata import Metadata

__all__ = ["bound_contributions", "prepare_table", "restrict_categories"]

log = logging.getLogger("lomas.data")


def restrict_categories(dataset: str, table: pa.Table, metadata: Metadata) -> pa.Table:
    """Null every value of a column with ``categories`` that is not among them.

    Raises:
        DatasetUnavailable(touched=True): a column's categories cannot be read as its type (a
        metadata mistake; the message names the column, never a value).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for name, col in metadata.columns.items():
        if not col.categories or col.type == "datetime" or name not in table.column_names:
            continue
        index = table.column_names.index(name)
        column = table.column(index)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        try:
            allowed = pa.array(col.categories).cast(target_type(col.type), safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise DatasetUnavailable(
                f"dataset '{dataset}': the categories of column {name} are not all {col.type} values",
                touched=True) from None
        inside = pc.is_in(column, value_set=allowed)
        # A null is not a value outside the categories: it stays null, and is not copied.
        outside = int(pc.sum(pc.and_(pc.is_valid(column), pc.invert(inside))).as_py() or 0)
        if outside:
            log.info("dataset '%s': %d value(s) of column %s are not among its categories; "
                     "they are read as null", dataset, outside, name)
            column = pc.if_else(pc.fill_null(inside, False), column, pa.scalar(None, column.type))
        table = table.set_column(index, name, column)
    return table


def bound_contributions(dataset: str, table: pa.Table, metadata: Metadata) -> pa.Table:
    """Keep each individual's first ``max_ids`` rows (by ``private_id``); drop rows with no id."""
    import numpy as np
    import pyarrow.compute as pc

    pid = metadata.private_id
    if pid is None or pid not in table.column_names or table.num_rows == 0:
        return table
    codes = pc.dictionary_encode(table.column(pid)).combine_chunks().indices
    ids = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(ids, kind="stable")  # stable: each person's rows stay in source order
    ranked = ids[order]
    positions = np.arange(len(ids))
    first = np.r_[True, ranked[1:] != ranked[:-1]]
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = positions - np.maximum.accumulate(np.where(first, positions, 0))
    keep = (rank < metadata.max_ids) & (ids >= 0)
    dropped = int(len(ids) - keep.sum())
    if dropped == 0:
        return table
    log.info("dataset '%s': %d row(s) dropped to keep at most max_ids=%d row(s) per %s "
             "(rows without an id included)", dataset, dropped, metadata.max_ids, pid)
    return table.filter(keep)


def prepare_table(dataset: str, table: pa.Table, metadata: Metadata) -> pa.Table:
    """The table engines see: schema-checked, categories enforced, contributions bounded.

    Raises:
        DatasetUnavailable(touched=True): the table does not match its metadata.
    """
    table = check_schema(dataset, table, metadata)
    table = restrict_categories(dataset, table, metadata)
    table = bound_contributions(dataset, table, metadata)
    if metadata.rows is not None and table.num_rows > metadata.rows:
        log.warning("dataset '%s' has %d rows, more than its metadata's rows: %d", dataset,
                    table.num_rows, metadata.rows)
        raise DatasetUnavailable(
            f"dataset '{dataset}' has more rows than its public metadata declares; the data "
            "owner must correct 'rows'", touched=True)
    return table
