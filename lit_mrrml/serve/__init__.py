"""The reward server: ``python -m lit_mrrml serve --model DIR``.

An aiohttp application (``app``) answers per-dimension rewards and the scenario total of a batch
of (messages, response) rows, in three request shapes: its own (``POST /score``), OpenRLHF's remote
reward model (``POST /get_reward``, ``openrlhf``) and a JSON endpoint for verl's reward functions
(``POST /verl/score``, ``verl_api``; ``verl`` is the client a verl run points at). Requests from
many clients are scored together by a micro-batcher (``batcher``) in a worker thread. Only the
model scorer (``scorer``) imports torch; the protocol, batcher, app and verl client do not.
"""
