"""SmartNoise-SQL's noise scales, calibrated once per distinct set of public inputs.

Every SmartNoise-SQL mechanism (``Laplace``, ``Gaussian``) searches its noise scale when it is
built, with OpenDP's ``binary_search_param`` over 70-80 measurement builds: about 50 ms per
mechanism, on every query, for a number that depends only on public inputs. The library's own
search (``_compute_noise_scale``) is deterministic in exactly these attributes of the mechanism:

* ``Laplace``: ``lower``, ``upper``, ``max_contrib``, ``epsilon``;
* ``Gaussian``: the same, ``delta`` and ``bit_depth``.

:class:`ScaleCache` gives the mechanism classes the engine uses: subclasses whose
``_compute_noise_scale`` looks the scale up by those inputs (each keyed with its type and exact
``repr``, so ``1`` and ``1.0``, ``0.0`` and ``-0.0`` are different keys) and otherwise runs the
library's own search and stores its result. A cached scale is therefore the library's scale for
the same inputs, bit for bit. Only successful searches are stored (a refusal is recomputed and
raised again). Nothing else is cached: the threshold is still computed by the library from the
mechanism's attributes, and ``release`` draws fresh noise for every value.

The cache is bounded (least recently used first out) and thread-safe; one per engine instance,
shared by the requests its worker serves. Two threads missing the same key both search and store
the same value.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["ScaleCache", "scale_key"]

Key = tuple[Any, ...]


def _exact(value: Any) -> tuple[str, str]:
    return type(value).__qualname__, repr(value)


def scale_key(kind: str, mech: Any) -> Key:
    """The public inputs ``mech``'s library search depends on (``kind``: laplace or gaussian)."""
    inputs = [mech.lower, mech.upper, mech.max_contrib, mech.epsilon]
    if kind == "gaussian":
        inputs += [mech.delta, mech.bit_depth]
    return (kind, *(_exact(v) for v in inputs))


class ScaleCache:
    """A bounded, thread-safe map from public inputs to the library's calibrated noise scale.

    Args:
        size: scales kept; 0 disables the cache (every mechanism searches, as the library does).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._scales: OrderedDict[Key, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._classes: dict[type, type] | None = None

    def get(self, key: Key) -> float | None:
        with self._lock:
            scale = self._scales.get(key)
            if scale is None:
                self.misses += 1
                return None
            self._scales.move_to_end(key)
            self.hits += 1
            return scale

    def put(self, key: Key, scale: float) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._scales[key] = scale
            self._scales.move_to_end(key)
            while len(self._scales) > self.size:
                self._scales.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._scales)

    def clear(self) -> None:
        with self._lock:
            self._scales.clear()

    def classes(self) -> dict[type, type]:
        """SmartNoise-SQL mechanism class -> its subclass that uses this cache."""
        if self._classes is None:
            self._classes = _cached_classes(self)
        return self._classes

    def install(self, mechanisms: Any) -> Any:
        """Make a ``snsql.sql.privacy.Mechanisms`` build this cache's mechanism classes."""
        classes = self.classes()
        mechanisms.classes = {mech: classes.get(cls, cls)
                              for mech, cls in mechanisms.classes.items()}
        return mechanisms


def _calibrate(cache: ScaleCache, kind: str, mech: Any, search: Callable[[], None],
               side_effects: Callable[[], None]) -> None:
    """Set ``mech.scale``: from the cache, else by the library's own ``search`` (then stored)."""
    if mech.scale is not None:
        return
    key = scale_key(kind, mech)
    scale = cache.get(key)
    if scale is None:
        search()
        found: Any = mech.scale  # the library's own value, stored as it is
        cache.put(key, found)
        return
    side_effects()  # the library's search sets global OpenDP options; so does a cache hit
    mech.scale = scale


def _cached_classes(cache: ScaleCache) -> dict[type, type]:
    from opendp.mod import enable_features
    from opendp.typing import set_default_int_type
    from snsql.sql._mechanisms.gaussian import Gaussian
    from snsql.sql._mechanisms.laplace import Laplace

    class CachedLaplace(Laplace):  # type: ignore[misc]
        """SmartNoise-SQL's Laplace mechanism; its scale searched once per public inputs."""

        def _compute_noise_scale(self) -> None:
            _calibrate(cache, "laplace", self, super()._compute_noise_scale,
                       lambda: enable_features("floating-point", "contrib"))

    class CachedGaussian(Gaussian):  # type: ignore[misc]
        """SmartNoise-SQL's Gaussian mechanism; its scale searched once per public inputs."""

        def _compute_noise_scale(self) -> None:
            def side_effects() -> None:
                set_default_int_type(f"i{self.bit_depth}")
                enable_features("floating-point", "contrib")

            _calibrate(cache, "gaussian", self, super()._compute_noise_scale, side_effects)

    return {Laplace: CachedLaplace, Gaussian: CachedGaussian}
