"""The ``http`` data adapter for lomas: CSV and Parquet files downloaded over HTTP(S).

The adapter class lives in :mod:`lomas_adapter_http.adapter`; importing this package stays cheap.
"""

__all__: list[str] = []
