"""The errors a user fixes in their own input: files, configs, checkpoints and exports.

Every such error is an ``InputError`` (a ValueError, so that older ``except ValueError`` still
catch it) whose message names the file and line, or the key path, and the fix. The command line
prints it as one message without a traceback (``--debug`` or ``LIT_MRRML_DEBUG=1`` shows the
traceback) and exits with ``INPUT_ERROR``. Light on purpose: no torch, no Lightning.
"""

from __future__ import annotations

INPUT_ERROR = 2  # the exit status of every command for bad input (argparse uses 2 for usage errors too)
DEBUG_ENV = "LIT_MRRML_DEBUG"


class InputError(ValueError):
    """Bad input: the message says where (file:line or key path) and what to do."""
