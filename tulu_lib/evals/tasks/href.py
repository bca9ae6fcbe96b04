"""HREF (Human Reference guided Evaluation of instruction Following; the Tülu 3 unseen suite's
chat benchmark): 0-shot in chat format, judged against a baseline model's outputs with the
human-written reference in the judge's prompt; the headline is the win rate.

Data: ``allenai/href``, split ``dev`` (``href/evaluation/evaluate.py`` defaults), one row per
instruction with ``category``, ``instruction``, the baseline's ``output`` (Llama-3.1-70B-Instruct:
``evaluate.py`` labels these outputs ``"generator": "Meta-Llama-3.1-70B-Instruct"``) and the human
``reference``. The baseline outputs are in the hub rows (a local copy carries them in ``output``).

Scorer (HREF's default annotator suite ``href``, ``href/evaluation/evaluators.py``
``ANNOTATOR_SUITE_DICT``, on HREF's default categories, ``evaluate.py --nr_category``): an LLM
judge (HREF's: ``meta-llama/Llama-3.1-70B-Instruct``, greedy, 100 new tokens) with HREF's
``basic_w_reference`` prompt (the human reference shown) for Closed QA, Extract, Generation,
Rewrite and Classify, ``basic_no_reference`` for Brainstorm and Summarize, and the system message
of ``href/llm_as_a_judge/model_settings.json``. As HREF's AlpacaEval fork does: the template is
filled by ``alpaca_eval.utils.make_prompts`` (installed, 0.6.6), the two outputs are swapped when
``random_seeded_choice("is_switched_outputs" + instruction + "42")`` says so (HREF's seed 42), the
reply is read by the fork's ``match_parser`` (ported: the last token of the last line, ``A`` = 1,
``B`` = 2, ``tie`` = 0, anything else unparsed) and mapped back with ``(3 - x) % 3``; an output
identical to the baseline's is not judged (preference 1.5). The per-item score is HREF's: 1 for
a win (preference 2), 0.5 for a tie (0), 0 otherwise (a loss, unparsed, identical), and the win
rate is their mean over all items (``evaluate.py``'s "Average": wins + ties / 2). HREF scores
Open QA by BERTScore against the reference (``bertscore``, roberta-large), not by a judge: not
run here, skipped and counted, as are rows of categories outside the defaults. The judge is
``eval.judge``; without one the benchmark is not run.

Usage::

    evaluate(generator, {"href": BenchmarkParams(data="allenai/href")}, out, judge=OpenAIGenerator(...))
"""

from __future__ import annotations

import math

from tulu_lib.evals.bounded import in_process
from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.generation.types import Generator, SamplingParams

BASELINE = "Meta-Llama-3.1-70B-Instruct"  # href/evaluation/evaluate.py: the baseline rows' generator
SEED = 42  # evaluate.py --seed, passed to AlpacaEval's annotator (its output-order switch)
JUDGE_MAX_NEW_TOKENS = 100  # model_settings.json completions_kwargs.max_new_tokens (temperature 0)
# href/evaluation/evaluate.py --nr_category (default)
CATEGORIES = ("Generation", "Open QA", "Brainstorm", "Rewrite", "Summarize", "Classify", "Closed QA",
              "Extract")
# href/evaluation/evaluators.py ANNOTATOR_SUITE_DICT["href"]: the judge prompt of each category
ANNOTATORS = {
    "Brainstorm": "basic_no_reference", "Open QA": "bertscore", "Closed QA": "basic_w_reference",
    "Extract": "basic_w_reference", "Generation": "basic_w_reference", "Rewrite": "basic_w_reference",
    "Summarize": "basic_no_reference", "Classify": "basic_w_reference",
    "Fact Checking or Attributed QA": "bertscore", "Multi-Document Synthesis": "basic_w_reference",
    "Reasoning Over Numerical Data": "basic_w_reference",
}
# href/llm_as_a_judge/model_settings.json ("llama3.1-70b": system_message)
SYSTEM_MESSAGE = "You are a helpful assistant that helps us rate an AI model's responses to instructions."

# HREF's user-turn judge templates, verbatim, with their demonstrations (the suite's configs are not
# ``_no_ex``). ``basic_w_reference``: href/llm_as_a_judge/prompt_templates/basic_w_reference.txt
# (Alrope123/href, commit b19cba63), {example_begin}/{example_end} removed as create_config.py removes
# them. ``basic_no_reference`` (its template file is not in the index read): the user turn of the
# generated llama3.1-70b_basic_no_reference/prompt.txt (Alrope123/humanIF, commit 338849ee,
# NAMME/annotators/configs), whose with-reference sibling there equals the template above word for word.
_BASIC_W_REFERENCE = (
    "Decide which response from the AI system following the instruction is better, "
    "considering the following questions:\n"
    "\n"
    "1. Does the response precisely follow the instruction? For example, a response that "
    "includes unrelated information or does not fulfill the task is not precisely following "
    "the instruction. Compare each response with the provided human response to decide if a "
    "response faithfully follows the instruction, especially when the instruction asks for "
    "expected word count or format. \n"
    "2. Is the response helpful? For example, if the instruction asks for a recipe for "
    "healthy food, and the response is a useful recipe, then you can consider it helpful.\n"
    "3. Is the response language natural? For example, AI responses are often verbose or "
    "repetitive, which is not natural. Compare with the provided human response to decide "
    "whether a response is natural.\n"
    "4. Is the response factual/accurate? AI responses often make up new information. For "
    "example, if the response claims that Donald Trump is the current U.S. president, then "
    "you should consider it inaccurate. Compare with the provided human response to verify "
    "whether a response is factual and accurate, especially with numbers.\n"
    "5. Based on your aesthetics, which one do you prefer? For example, you might prefer one "
    "poem over another poem.\n"
    "\n"
    "Select the response A or B that you prefer, or select tie if the two responses are "
    "similarly good or bad. Your answer should ONLY contain: A or B or tie. Here are two examples:\n"
    "\n"
    "# Example:\n"
    "## Instruction:\n"
    "What type of Rifle is an AK47? \n"
    "\n"
    "## Response A:\n"
    "An AK47 is a type of assault rifle.\n"
    "\n"
    "## Response B:\n"
    "The AK47 is a type of rifle that is commonly associated with Soviet and Russian "
    "military forces. It is a semi-automatic assault rifle that is chambered in 7.62x39mm "
    "and is considered to be one of the most popular and widely used firearms in the world. "
    "The AK47 is known for its durability, reliability, and accuracy, and it is able to fire "
    "up to 45 rounds per minute. It is also popular among civilians due to its low cost and "
    "ease of use. The AK47 is an iconic weapon that has been featured in numerous movies, "
    "video games, and other pop culture references.\n"
    "\n"
    "## Human Response:\n"
    "The AK-47 is a gas-operated assault rifle.\n"
    "\n"
    "Here A directly and concisely answers the type of AK47 as asked by the instruction. In "
    "contrast, B is too verbose and talks about AK47’s background, advantages, and "
    "influence, which are unrelated to the instruction. Human Response also only talks about "
    "the type of rifle for AK-47 like A.\n"
    "## Which is best, A, B, or tie?\n"
    "A\n"
    "\n"
    "# Example:\n"
    "## Instruction:\n"
    "Given a table of data, compute the average\n"
    "Table of data: \n"
    "1, 3, 5, 6, 9\n"
    "\n"
    "## Response A:\n"
    "The average is 5.\n"
    "\n"
    "## Response B:\n"
    "4.75\n"
    "\n"
    "## Human Response:\n"
    "The average is 4.8.\n"
    "\n"
    "From Human Response, the correct answer for this math problem is 4.8. Here B is more "
    "accurate than A because 4.75 from B is closer to 4.8 than 5 from A.\n"
    "## Which is best, A, B, or tie?\n"
    "B\n"
    "\n"
    "\n"
    "Now is the real task, just select among: A, B, or tie.\n"
    "# Task:\n"
    "## Instruction:\n"
    "{instruction}\n"
    "\n"
    "## Response A:\n"
    "{output_1}\n"
    "\n"
    "## Response B:\n"
    "{output_2}\n"
    "\n"
    "## Human Response:\n"
    "{output_human}\n"
    "\n"
    "## Which is best, A, B, or tie?"
)

_BASIC_NO_REFERENCE = (
    "Decide which response from the AI system following the instruction is better, "
    "considering the following questions:\n"
    "\n"
    "1. Does the response precisely follow the instruction? For example, a response that "
    "includes unrelated information or does not fulfill the task is not precisely following "
    "the instruction. \n"
    "2. Is the response helpful? For example, if the instruction asks for a recipe for "
    "healthy food, and the response is a useful recipe, then you can consider it helpful.\n"
    "3. Is the response language natural? For example, AI responses are often verbose or "
    "repetitive, which is not natural.\n"
    "4. Is the response factual/accurate? AI responses often make up new information. For "
    "example, if the response claims that Donald Trump is the current U.S. president, then "
    "you should consider it inaccurate.\n"
    "5. Based on your aesthetics, which one do you prefer? For example, you might prefer one "
    "poem over another poem.\n"
    "\n"
    "Select the response A or B that you prefer, or select tie if the two responses are "
    "similarly good or bad. Your answer should ONLY contain: A or B or tie. Here are two examples:\n"
    "\n"
    "# Example:\n"
    "## Instruction:\n"
    "What type of Rifle is an AK47? \n"
    "\n"
    "## Response A:\n"
    "An AK47 is a type of assault rifle.\n"
    "\n"
    "## Response B:\n"
    "The AK47 is a type of rifle that is commonly associated with Soviet and Russian "
    "military forces. It is a semi-automatic assault rifle that is chambered in 7.62x39mm "
    "and is considered to be one of the most popular and widely used firearms in the world. "
    "The AK47 is known for its durability, reliability, and accuracy, and it is able to fire "
    "up to 45 rounds per minute. It is also popular among civilians due to its low cost and "
    "ease of use. The AK47 is an iconic weapon that has been featured in numerous movies, "
    "video games, and other pop culture references.\n"
    "\n"
    "Here A directly and concisely answers the type of AK47 as asked by the instruction. In "
    "contrast, B is too verbose and talks about AK47’s background, advantages, and "
    "influence, which are unrelated to the instruction.\n"
    "## Which is best, A, B, or tie?\n"
    "A\n"
    "\n"
    "# Example:\n"
    "## Instruction:\n"
    "Given a table of data, compute the average\n"
    "Table of data: \n"
    "1, 3, 5, 6, 9\n"
    "\n"
    "## Response A:\n"
    "The average is 5.\n"
    "\n"
    "## Response B:\n"
    "4.75\n"
    "\n"
    "Here B is more accurate than A because 4.75 from B is closer to the correct average 4.8 "
    "than 5 from A.\n"
    "## Which is best, A, B, or tie?\n"
    "B\n"
    "\n"
    "\n"
    "Now is the real task, just select among: A, B, or tie.\n"
    "# Task:\n"
    "## Instruction:\n"
    "{instruction}\n"
    "\n"
    "## Response A:\n"
    "{output_1}\n"
    "\n"
    "## Response B:\n"
    "{output_2}\n"
    "\n"
    "## Which is best, A, B, or tie?"
)

TEMPLATES = {"basic_w_reference": _BASIC_W_REFERENCE, "basic_no_reference": _BASIC_NO_REFERENCE}


def convert(row: dict, i: int) -> dict:
    return {"id": str(row.get("id") or f"href/{i}"), "prompt": row["instruction"],
            "instruction": row["instruction"], "category": row["category"],
            "baseline_output": row["output"], "reference": row["reference"],
            "baseline_generator": row.get("generator") or BASELINE}


def prompt(row: dict, shots: int) -> list[dict]:
    """HREF's generation prompt: the instruction as the only user turn (``format: default``)."""
    return [{"role": "user", "content": row["instruction"]}]


def judge_messages(annotator: str, instruction: str, output_1: str, output_2: str,
                   output_human: str) -> list[dict]:
    """HREF's judge prompt for ``annotator`` (``basic_w_reference`` / ``basic_no_reference``),
    filled by AlpacaEval's ``make_prompts`` (each placeholder's first occurrence), as messages."""
    import pandas as pd
    from alpaca_eval.utils import make_prompts

    frame = pd.DataFrame([{"instruction": instruction, "output_1": output_1, "output_2": output_2,
                           "output_human": output_human}])
    ((text,), _) = make_prompts(frame, TEMPLATES[annotator])
    return [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": text}]


MATCHER = {"A": 1.0, "B": 2.0, "tie": 0.0}  # configs.yaml completion_parser_kwargs.matcher


def match_parser(completion: str) -> float:
    """The preference HREF's AlpacaEval fork reads from a judge reply (``completion_parsers.py``
    ``match_parser``): the last whitespace token of the last line; ``Tie``/``TIE`` lower-cased,
    ``a``/``b`` upper-cased, then one trailing ``.`` dropped; NaN when it is not A, B or tie (an
    empty reply too, on which the fork raises and AlpacaEval records no preference)."""
    try:
        token = completion.strip().split("\n")[-1].split()[-1]
    except IndexError:
        return math.nan
    if token in ("Tie", "TIE"):
        token = token.lower()
    elif token in ("a", "b"):
        token = token.upper()
    token = token.removesuffix(".")
    return MATCHER.get(token, math.nan)


def switched(instruction: str) -> bool:
    """Whether AlpacaEval's ``RandomSwitchTwoColumnsProcessor`` shows the model's output first
    (seeded on ``"is_switched_outputs"`` + the instruction + HREF's seed)."""
    from alpaca_eval.utils import random_seeded_choice

    seed = "is_switched_outputs" + instruction + str(SEED)
    return bool(random_seeded_choice(seed=seed, choices=[False, True]))


@in_process  # the judge endpoint bounds itself (timeouts, retries) and keeps its cache here
def judge_score(judge: Generator, row: dict, output: str) -> dict:
    """One HREF verdict. ``preference`` is HREF's: 2 = ours better, 1 = the baseline's, 0 = tie,
    NaN unparsed (stored as None), 1.5 = identical outputs (not judged)."""
    annotator = ANNOTATORS[row["category"]]
    if output == row["baseline_output"]:
        return {"score": 0.0, "preference": 1.5, "tie": 0.0, "unparsed": 0.0, "identical": 1.0}
    swap = switched(row["instruction"])
    first, second = (output, row["baseline_output"]) if swap else (row["baseline_output"], output)
    messages = judge_messages(annotator, row["instruction"], first, second, row["reference"])
    ((verdict,),) = judge.generate([messages], SamplingParams(max_new_tokens=JUDGE_MAX_NEW_TOKENS))
    preference = match_parser(verdict.text)
    if swap:
        preference = (3 - preference) % 3
    unparsed = math.isnan(preference)
    return {"score": {2.0: 1.0, 0.0: 0.5}.get(preference, 0.0),
            "preference": None if unparsed else preference,
            "tie": float(preference == 0.0), "unparsed": float(unparsed), "switched": swap,
            "annotator": annotator, "judge_reply": verdict.text[:40]}


def needs_judge(row: dict, output: str) -> dict:
    raise RuntimeError("href is scored by a judge: configure eval.judge {base_url, model}")


def unscorable(row: dict) -> str | None:
    category = row["category"]
    if category not in CATEGORIES:
        return f"category {category!r} is not among HREF's default categories (evaluate.py --nr_category)"
    if ANNOTATORS.get(category) == "bertscore":
        return (f"HREF scores {category} by BERTScore against the human reference (bert-score, "
                "roberta-large), not by a judge; not run here")
    return None


HREF = Benchmark(
    name="href", paper_name="HREF (unseen suite)",
    settings=Settings(shots=0, cot=False, kind="chat",
                      metric=f"win rate against {BASELINE} (wins + ties / 2)",
                      source="allenai/href evaluate.py (annotator suite href, dev split); generation greedy "
                             "(href/generation/configs: temperature 0, max_new_tokens 8192)"),
    packaged=None, packaged_from="none: no installed package ships HREF",
    hub_id="allenai/href", hub_split="dev", convert=convert,
    prompt=prompt, score=needs_judge, judge_score=judge_score, judge_role="judge",
    secondary=("tie", "unparsed"), unscorable=unscorable, spread_by="category",
    headline=f"win rate against {BASELINE}'s outputs (HREF's judge prompts with the human reference; "
             "the judge is eval.judge, HREF's is Llama-3.1-70B-Instruct)",
    scorer="ours, following allenai/href (evaluators.py suite href, llm_as_a_judge prompts) and its "
           "AlpacaEval fork (match_parser, output-order switch); alpaca_eval 0.6.6's make_prompts and "
           "random_seeded_choice",
    offline="the model's outputs only: the score needs a judge endpoint (eval.judge); Open QA (BERTScore in "
            "HREF) is skipped and counted")
