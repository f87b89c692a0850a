"""Test infrastructure of this repository (not shipped: no distribution installs it).

Importable in this repository's test runs (its ``conftest.py`` puts the repository root on
``sys.path``) and by the benchmark scripts. Plugin authors use :mod:`lomas_core.testing` instead.

- :mod:`lomas_testsupport.mongo`: a MongoDB for tests (``$MONGODB_URI`` or a throw-away nx-27017).
"""

__all__: list[str] = []
