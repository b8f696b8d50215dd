"""Run one command in this process, then print which heavy packages it imported (JSON on the last line).

    python tests/import_probe.py matrix configs/matrix/medical_dsd.yaml
    python tests/import_probe.py --server healthbench healthbench --config ... (a loopback judge first)

With ``--server RULES`` a rule-based chat server runs on loopback in this process and ``{url}`` in the
arguments becomes its address: the command then talks to a remote backend, as a user's would.
"""

from __future__ import annotations

import json
import sys

HEAVY = ("torch", "lightning", "transformers", "peft", "bitsandbytes")


def main(argv: list[str]) -> int:
    server = None
    if argv[0] == "--server":
        from lit_mrrml.testing.chat_server import ChatServer
        from lit_mrrml.testing.judge_rules import RubricJudgeRules
        from lit_mrrml.testing.rules import GenerationRules

        rules = {"healthbench": RubricJudgeRules, "generate": GenerationRules}[argv[1]]
        server = ChatServer(rules())
        server.__enter__()
        argv = [a.replace("{url}", server.url) for a in argv[2:]]
    from lit_mrrml.cli import main as cli_main

    try:
        code = cli_main(argv)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    print(json.dumps({"rc": code, "imported": [name for name in HEAVY if name in sys.modules]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
