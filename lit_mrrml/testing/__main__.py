"""``python -m lit_mrrml.testing``: serve the rule-based chat-completions server (see chat_server)."""

from lit_mrrml.testing.chat_server import main

main()
