"""A verl reward function that asks a running ``python -m lit_mrrml serve`` for the rewards.

Point verl at this file (it imports nothing but the standard library, so it also works copied
into a verl environment without lit_mrrml)::

    custom_reward_function.path=/path/to/lit_mrrml/serve/verl.py custom_reward_function.name=compute_score
    # or, with reward_model.reward_manager=batch: custom_reward_function.name=compute_score_batch

and set ``LIT_MRRML_REWARD_URL`` to the server (``http://host:8000``) in the environment of verl's
reward workers. Each rollout's ``extra_info`` must hold ``messages`` (the prompt's chat messages)
and may hold ``scenario`` (the rubric scenario whose weights give the total; absent: uniform).
The result is ``{"score": total, "reward/<dimension>": reward, ...}``: verl trains on ``score``
and logs the rest. ``LIT_MRRML_REWARD_TIMEOUT`` (seconds, default 300) bounds one request; a busy
server (503) or a refused connection is retried up to ``LIT_MRRML_REWARD_RETRIES`` times (default
5); a request the server refuses (400) raises ValueError with its reason.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

URL_ENV = "LIT_MRRML_REWARD_URL"
TIMEOUT_ENV = "LIT_MRRML_REWARD_TIMEOUT"
RETRIES_ENV = "LIT_MRRML_REWARD_RETRIES"
PATH = "/verl/score"


def server_url() -> str:
    """The ``/verl/score`` URL of the server named by ``LIT_MRRML_REWARD_URL``."""
    base = os.environ.get(URL_ENV, "").strip()
    if not base:
        raise RuntimeError(f"{URL_ENV} is not set: export {URL_ENV}=http://<host>:<port> (the lit_mrrml reward server)")
    base = base.rstrip("/")
    return base if base.endswith(PATH) else base + PATH


def rollout(solution_str: str, extra_info: Mapping[str, Any] | None, data_source: Any = None) -> dict[str, Any]:
    """The JSON of one rollout: only what the server reads (verl's extra_info may hold arrays and
    other values JSON cannot carry)."""
    extra = dict(extra_info or {})
    messages = extra.get("messages")
    if messages is None:
        raise ValueError("extra_info has no 'messages': put the prompt's chat messages in each row's extra_info")
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]  # numpy arrays of dicts too
    info: dict[str, Any] = {"messages": plain}
    if extra.get("scenario") is not None:
        info["scenario"] = str(extra["scenario"])
    source = data_source if isinstance(data_source, str) else None
    return {"data_source": source, "solution_str": str(solution_str), "extra_info": info}


def post(body: dict[str, Any]) -> Any:
    """POST ``body`` to the server; retries a busy server or a refused connection."""
    url, data = server_url(), json.dumps(body).encode("utf-8")
    timeout = float(os.environ.get(TIMEOUT_ENV, "300"))
    attempts = max(1, int(os.environ.get(RETRIES_ENV, "5")))
    for attempt in range(attempts):
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            reason = _reason(err)
            if err.code == 400:
                raise ValueError(f"{url}: the server refused the request: {reason}") from None
            if err.code != 503 or attempt == attempts - 1:
                raise RuntimeError(f"{url}: HTTP {err.code}: {reason}") from None
            delay = float(err.headers.get("Retry-After") or 1)
        except urllib.error.URLError as err:
            if attempt == attempts - 1:
                raise RuntimeError(f"{url}: cannot reach the reward server: {err.reason}") from None
            delay = 1.0
        time.sleep(delay)
    raise AssertionError("unreachable")


def _reason(err: urllib.error.HTTPError) -> str:
    """The server's ``error`` text, or the raw body."""
    text = err.read().decode("utf-8", "replace")
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text[:500]


def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's reward function for one rollout: ``{"score": total, "reward/<dimension>": ...}``."""
    return dict(post(rollout(solution_str, extra_info, data_source)))


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None],
    **kwargs: Any,
) -> list[dict[str, float]]:
    """verl's batch reward function (``reward_manager=batch``): one request for all rollouts."""
    batch = [rollout(s, e, d) for d, s, e in zip(data_sources, solution_strs, extra_infos, strict=True)]
    return [dict(result) for result in post({"batch": batch})["results"]]
