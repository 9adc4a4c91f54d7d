"""The tracker command as a whole (each command has its own tests beside its feature)."""

from __future__ import annotations


def test_a_command_imports_only_its_own_module() -> None:
    """``tracker token`` runs without importing the demo, the relay or the rewriter
    (each short command used to pay a third of a second for all of them)."""
    import subprocess
    import sys

    probe = ("import sys\n"
             "from tracker.cli import main\n"
             "try:\n"
             "    main(['token', '--help'])\n"
             "except SystemExit as exit:\n"
             "    assert exit.code == 0, exit.code\n"
             "loaded = sorted(m for m in sys.modules if m.startswith(('tracker.demo',"
             " 'tracker.smtp', 'tracker.cli.rewrite', 'tracker.cli.serve')))\n"
             "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True)
