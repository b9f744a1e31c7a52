"""The conformance kit: pytest base classes that check what every clgym component must honour.

A plugin's test module subclasses one class per component, naming only the
class under test and its params::

    from clgym_core.testing import AlgorithmConformance

    class TestMyMethod(AlgorithmConformance):
        component = MyMethod
        params = {"strength": 10.0}

The bases carry no ``Test`` prefix and set ``__test__ = False``, so pytest
collects only the subclasses. Every check is small: runs use the tiny
:class:`~clgym_core.testing.SyntheticBlobs` benchmark and finish in well under a
second. Importing this module needs pytest.
"""

from clgym_core.testing.conformance._kit import ComponentConformance, KitFailing, KitFailure, KitFinetune
from clgym_core.testing.conformance.algorithm import AlgorithmConformance
from clgym_core.testing.conformance.backbone import BackboneConformance
from clgym_core.testing.conformance.benchmark import BenchmarkConformance
from clgym_core.testing.conformance.callback import CallbackConformance

__all__ = [
    "AlgorithmConformance",
    "BackboneConformance",
    "BenchmarkConformance",
    "CallbackConformance",
    "ComponentConformance",
    "KitFailing",
    "KitFailure",
    "KitFinetune",
]
