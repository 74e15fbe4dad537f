"""`python -m imagepipe.testing.ovirt_engine [--dir D] [--port P]`: run until killed."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from imagepipe.testing.ovirt_engine.sim import EngineSimulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagepipe.testing.ovirt_engine",
                                     description=__doc__)
    parser.add_argument("--dir", type=Path, help="state directory (default: a temp dir)")
    parser.add_argument("--port", type=int, default=0, help="HTTPS port (default: any free)")
    parser.add_argument("--delay", type=float, default=0.3, help="engine step delay, seconds")
    parser.add_argument("--virt-sysprep", action="store_true",
                        help="seal=true runs virt-sysprep on template disks (as the engine does)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="ovirt-sim-") as tmp:
        base = (args.dir or Path(tmp)).resolve()  # qemu-nbd needs absolute socket paths
        try:
            sim_obj = EngineSimulator(base, port=args.port, delay=args.delay,
                                      virt_sysprep=args.virt_sysprep)
        except ValueError as exc:
            parser.error(str(exc))  # exit 2 before anything starts
        with sim_obj as sim:
            print(f"url: {sim.url}", flush=True)
            print(f"ca_file: {sim.ca_file}", flush=True)
            print(f"username: {sim.username}", flush=True)
            print(f"password_file: {sim.password_file}", flush=True)
            print(f"storage_domain: data1 ({sim.engine.sds[sim.engine.sd_id]['_path']})",
                  flush=True)
            print(f"faults: POST {sim.url}/sim/faults  state: GET {sim.url}/sim/state",
                  flush=True)
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
