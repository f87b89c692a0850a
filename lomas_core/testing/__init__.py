"""Test helpers shipped with lomas: contract suites for plugins and the server harness.

- :mod:`lomas_core.testing.store_contract`: tests every budget store must pass.
- :mod:`lomas_core.testing.engine_contract`, :mod:`lomas_core.testing.adapter_contract`: the same for
  engines and data adapters.
- :mod:`lomas_core.testing.harness`: a real lomas server for integration tests.

Submodules are imported explicitly; importing this package imports nothing heavy.
"""

__all__: list[str] = []
