"""A strict, stateful oVirt engine simulator backed by the real ovirt-imageio daemon.

Use it in tests (`with EngineSimulator(tmpdir) as sim: ...`) or run it for manual checks with
`python -m imagepipe.testing.ovirt_engine`. See docs/ovirt.md.
"""

from imagepipe.testing.ovirt_engine.sim import EngineSimulator
from imagepipe.testing.ovirt_engine.simulated import Engine

__all__ = ["Engine", "EngineSimulator"]
