"""HealthBenchEval: answer HealthBench rows with a policy, grade them with a judge, write a report.

``python -m lit_mrrml healthbench --config FILE`` builds one from a config. A run:
1. loads and validates the rows (and selects them: limit, themes);
2. answers them with the policy (mode ``policy``), or takes the physicians' ideal completions
   (mode ``ideal``, rows that have one); answers are cached by (policy id, prompt id);
3. prints the judge calls it is about to make and the prompt tokens they carry (refusing, before
   any call, a run over ``max_judge_calls``), then grades every criterion of every answered row
   with the judge; verdicts are cached by (judge, grader, conversation hash, criterion); criteria
   still ungraded after the judge's bounded attempts exclude their row from the scores, and the
   report lists those rows;
4. optionally scores each answer with a trained reward model (the internalised-reward check);
5. writes ``results.json`` (with the scores also in simple-evals' shape), ``summary.md``,
   ``chart.png`` and ``graded.jsonl``.
ctrl-C at any point leaves whole records in the caches; the same command resumes from them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from lit_mrrml.backends.base import ChatBackend, ChatReply, Usage
from lit_mrrml.healthbench.answers import IDEAL_POLICY, Answer, PolicyAnswers, ideal_answers
from lit_mrrml.healthbench.budget import JudgePlan, check_budget, plan_calls
from lit_mrrml.healthbench.grader import Grader
from lit_mrrml.healthbench.grading import GradedRow, RubricGrading
from lit_mrrml.healthbench.options import AnswerOptions, GraderOptions, Mode, RewardCheckOptions, RowOptions
from lit_mrrml.healthbench.progress import StageProgress
from lit_mrrml.healthbench.report import write_report
from lit_mrrml.healthbench.rows import load_rows
from lit_mrrml.healthbench.scoring import score_rows
from lit_mrrml.healthbench.simple_evals import simple_evals_block
from lit_mrrml.healthbench.store import RunStore
from lit_mrrml.paths import resolve_path

log = logging.getLogger(__name__)
FORMAT = "lit_mrrml.healthbench/1"


@dataclass
class RunOutcome:
    """What a run produced: the results (as written to results.json) and the rows left out."""

    results: dict[str, Any]
    report_dir: Path
    unanswered: int = 0
    ungraded: int = 0

    @property
    def complete(self) -> bool:
        return self.unanswered == 0 and self.ungraded == 0


class HealthBenchEval:
    """Answers and grades HealthBench rows and reports the scores exactly as the reference does."""

    def __init__(
        self,
        output_dir: str,
        judge: ChatBackend,
        policy: ChatBackend | None = None,
        mode: Mode = "policy",
        rows: RowOptions = RowOptions(),
        answers: AnswerOptions = AnswerOptions(),
        grader: GraderOptions = GraderOptions(),
        reward_check: RewardCheckOptions = RewardCheckOptions(),
        bootstrap_samples: int = 1000,
        bootstrap_seed: int = 0,
        max_judge_calls: int | None = None,
        cache_dir: str | None = None,
        progress: bool = True,
    ) -> None:
        """
        Args:
            output_dir: Folder of the report (results.json, summary.md, chart.png, graded.jsonl).
            judge: The LLM that grades each criterion (its identity is printed with every score).
            policy: The model that answers: a local model (HFLocalBackend) or an endpoint
                (OpenAIChatBackend); not used in mode ``ideal``.
            mode: ``policy`` grades the policy's answers; ``ideal`` grades the physicians' ideal
                completions of the rows that have them.
            rows: Which rows: the file, a limit, themes.
            answers: How the policy is asked.
            grader: How the judge is asked.
            reward_check: Score the answers with a trained reward model too, and correlate.
            bootstrap_samples: Resamples for each score's bootstrap standard deviation.
            bootstrap_seed: Seed of the resamples.
            max_judge_calls: Refuse (exit status 2, before any call, the policy's included) a run that
                would make more judge calls than this; verdicts already in the cache do not count.
                None: no limit. The command prints the calls and their prompt tokens before grading.
            cache_dir: Folder of the answer, verdict and reward caches (default:
                ``<output_dir>/cache``); runs may share one.
            progress: Show a progress bar.
        """
        if mode == "policy" and policy is None:
            raise ValueError("mode 'policy' needs a `policy` backend (or set mode: ideal to grade the physicians)")
        if mode == "ideal" and policy is not None:
            log.warning("mode 'ideal' grades the physicians' completions: the policy %s is not used", policy.id)
        if bootstrap_samples < 1:
            raise ValueError("bootstrap_samples must be at least 1")
        if max_judge_calls is not None and max_judge_calls < 0:
            raise ValueError(f"max_judge_calls must be at least 0 (or null for no limit), got {max_judge_calls}")
        if reward_check.model is not None and not Path(reward_check.model).exists():
            raise FileNotFoundError(f"reward_check.model: {reward_check.model} does not exist")
        self.output_dir, self.judge, self.policy, self.mode = Path(output_dir), judge, policy, mode
        self.row_options, self.answer_options, self.reward_options = rows, answers, reward_check
        self.grader = Grader(grader)
        self.bootstrap_samples, self.bootstrap_seed = bootstrap_samples, bootstrap_seed
        self.max_judge_calls = max_judge_calls
        self.plan: JudgePlan | None = None  # the judge calls of the last run, set before it grades
        self.cache_dir = Path(cache_dir) if cache_dir else self.output_dir / "cache"
        self.progress = progress
        self.rows = load_rows(rows.path, rows.limit, rows.themes, rows.sample_seed)
        self.config: dict[str, Any] | None = None  # the resolved config, for the report (the command sets it)

    def run(self) -> RunOutcome:
        return asyncio.run(self.arun())

    async def arun(self) -> RunOutcome:
        started = _now()
        store = RunStore(self.cache_dir)
        usage = {"policy": Usage(), "judge": Usage()}
        try:
            with StageProgress(self.progress, Console(stderr=True)) as progress:
                progress.note(self.grader.text.line())
                grading = RubricGrading(self.judge, self.grader, store.verdicts)
                answers, unanswered, policy_id = await self._answer(store, grading, progress, usage["policy"])
                graded = await self._grade(grading, answers, progress, usage["judge"])
                complete = [g for g in graded if g.complete]
                reward = self._reward_check(store, complete, progress) if self.reward_options.model else None
        finally:
            store.close()
            for backend in (self.policy, self.judge):
                if backend is not None:
                    await backend.aclose()
        results = self._results(graded, unanswered, policy_id, reward, usage)
        results |= {"started": started, "finished": _now()}
        write_report(results, graded, self.output_dir)
        ungraded = sum(not g.complete for g in graded)
        return RunOutcome(results, self.output_dir, len(unanswered), ungraded)

    async def _answer(
        self, store: RunStore, grading: RubricGrading, progress: StageProgress, usage: Usage
    ) -> tuple[dict[str, Answer], dict[str, str], str]:
        if self.mode == "ideal" or self.policy is None:
            return ideal_answers(self.rows), {}, IDEAL_POLICY
        policy = PolicyAnswers(self.policy, self.answer_options, store.answers)
        cached = {r.prompt_id: a for r in self.rows if (a := policy.cached(r)) is not None}
        self._check_budget_before_answers(grading, cached)
        progress.stage("answers", len(self.rows) - len(cached))

        def done(reply: ChatReply) -> None:
            usage.add(reply.usage)
            progress.reply("answers", reply)

        answers, errors = await policy.answer(self.rows, done)
        return answers, errors, policy.id

    def _check_budget_before_answers(self, grading: RubricGrading, cached: dict[str, Answer]) -> None:
        """Refuse before the policy is asked when the judge calls could exceed the budget: a cached
        answer counts its criteria without a cached verdict, a row still to answer every criterion
        (a new answer has no cached verdicts)."""
        todo = [r for r in self.rows if r.prompt_id not in cached]
        if self.max_judge_calls is None or not todo:
            return  # the exact count is checked before grading
        at_most = grading.pending(self.rows, cached) + sum(len(r.rubrics) for r in todo)
        detail = f" at most, counting every criterion of the {len(todo):,} row(s) the policy has yet to answer"
        check_budget(at_most, self.max_judge_calls, detail)

    async def _grade(
        self, grading: RubricGrading, answers: dict[str, Answer], progress: StageProgress, usage: Usage
    ) -> list[GradedRow]:
        graded, work = grading.prepare(self.rows, answers)
        cached = sum(len(g.row.rubrics) for g in graded) - len(work)
        self.plan = plan_calls([request for *_, request in work], cached, self.judge)
        progress.note(self.plan.line())
        check_budget(self.plan.calls, self.max_judge_calls)
        progress.stage("verdicts", len(work))

        def done(reply: ChatReply) -> None:
            usage.add(reply.usage)
            progress.reply("verdicts", reply)

        await grading.run(work, done)
        return graded

    def _reward_check(self, store: RunStore, graded: list[GradedRow], progress: StageProgress) -> dict[str, Any]:
        from lit_mrrml.healthbench.reward_check import RewardScorer  # imports Lightning and the model code

        scorer = RewardScorer(self.reward_options, store.rewards)
        progress.stage("rewards", scorer.pending(graded))
        return scorer.check(graded, lambda n: progress.advance("rewards", n))

    def _results(
        self,
        graded: list[GradedRow],
        unanswered: dict[str, str],
        policy_id: str,
        reward: dict[str, Any] | None,
        usage: dict[str, Usage],
    ) -> dict[str, Any]:
        complete = [g for g in graded if g.complete]
        scores = (
            score_rows(
                [g.row for g in complete], [g.met for g in complete], self.bootstrap_samples, self.bootstrap_seed
            )
            if complete
            else {}
        )
        answered = {g.row.prompt_id for g in graded}
        without_ideal = [r.prompt_id for r in self.rows if self.mode == "ideal" and r.prompt_id not in answered]
        return {
            "format": FORMAT,
            "mode": self.mode,
            "policy": self._policy_info(policy_id),
            "judge": {"id": self.judge.id, "model_id": self.judge.model_id, "grader": self.grader.describe()},
            "rows": self._row_counts(graded, complete, unanswered, without_ideal),
            "scores": scores,
            "simple_evals": simple_evals_block(scores),
            "ungraded_rows": [
                {"prompt_id": g.row.prompt_id, "criteria": g.ungraded()} for g in graded if not g.complete
            ],
            "unanswered_rows": [{"prompt_id": k, "error": v} for k, v in unanswered.items()],
            "rows_without_ideal_completion": without_ideal,
            "reward_check": reward,
            "bootstrap": {"samples": self.bootstrap_samples, "seed": self.bootstrap_seed},
            "judge_calls": self.plan.as_dict() if self.plan is not None else None,
            "tokens_this_run": {k: v.as_dict() for k, v in usage.items()},
            "requests_this_run": {
                name: {"replies": b.stats.replies, "attempts": b.stats.attempts, "retries": b.stats.retries}
                for name, b in (("policy", self.policy), ("judge", self.judge))
                if b is not None and (name == "judge" or self.mode == "policy")
            },
            "config": self.config,
        }

    def _policy_info(self, policy_id: str) -> dict[str, Any]:
        if self.mode == "ideal" or self.policy is None:
            return {"id": IDEAL_POLICY, "cache_id": None, "answers": None}
        return {"id": self.policy.id, "cache_id": policy_id, "answers": asdict(self.answer_options)}

    def _row_counts(
        self, graded: list[GradedRow], complete: list[GradedRow], unanswered: dict[str, str], without_ideal: list[str]
    ) -> dict[str, Any]:
        path = Path(resolve_path(self.row_options.path))
        return {
            "file": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "selection": asdict(self.row_options),
            "selected": len(self.rows),
            "graded": len(complete),
            "ungraded": len(graded) - len(complete),
            "unanswered": len(unanswered),
            "without_ideal_completion": len(without_ideal),
            "truncated_answers": sum(g.answer.finish_reason == "length" for g in graded),
            "criteria_graded": sum(len(g.row.rubrics) for g in complete),
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
