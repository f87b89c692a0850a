"""The ``s3`` data adapter for lomas: CSV and Parquet objects in S3 or S3-compatible stores.

The adapter class lives in :mod:`lomas_adapter_s3.adapter`; importing this package stays cheap.
"""

__all__: list[str] = []
