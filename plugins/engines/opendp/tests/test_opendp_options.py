"""Engine options: validation, and the honest-but-curious switch (off unless the admin says so)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lomas_core.errors import ConfigError
from lomas_core.testing.plugins import build


def test_unknown_option_is_a_config_error() -> None:
    from lomas_engine_opendp.engine import OpenDPEngine

    with pytest.raises(ConfigError, match="engines.opendp"):
        build(OpenDPEngine, {"honest-but-curious": True})


def test_honest_but_curious_off_by_default_and_warned_when_on() -> None:
    # In a subprocess: OpenDP features are process-wide.
    code = (
        "import logging, io\n"
        "from opendp.mod import GLOBAL_FEATURES\n"
        "from lomas_engine_opendp.engine import OpenDPEngine\n"
        "from lomas_core.testing.plugins import build\n"
        "build(OpenDPEngine, {})\n"
        "assert 'honest-but-curious' not in GLOBAL_FEATURES, GLOBAL_FEATURES\n"
        "assert 'contrib' in GLOBAL_FEATURES\n"
        "stream = io.StringIO()\n"
        "logging.getLogger('lomas').addHandler(logging.StreamHandler(stream))\n"
        "build(OpenDPEngine, {'honest_but_curious': True})\n"
        "assert 'honest-but-curious' in GLOBAL_FEATURES\n"
        "assert 'honest_but_curious is on' in stream.getvalue()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
