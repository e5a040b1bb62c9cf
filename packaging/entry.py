"""The bundle's one program: the ``promptbank`` CLI, the engine worker and the desktop app.

Promptbank starts its own processes as ``python -m desktop ...`` and ``python -m engine.cli
...`` (``engine/launch.py``). In the bundle ``sys.executable`` is this program, so it accepts
those two forms as well as the plain ``promptbank ...`` command line.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Run the desktop for ``-m desktop``, else the CLI (``-m engine.cli`` or plain)."""
    if argv[:2] == ["-m", "desktop"]:
        from desktop.app import main as desktop_main

        return desktop_main(argv[2:])
    if argv[:2] == ["-m", "engine.cli"]:
        argv = argv[2:]
    from engine.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
