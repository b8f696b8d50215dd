"""``python -m lit_mrrml.testing``: serve the rule-based chat-completions server (see ``cli``)."""

from lit_mrrml.testing.cli import main

main()
