"""IF-short (not a paper benchmark): the cpu default's targeted domain, held out — short writing
tasks with one verifiable constraint each, scored by IFEval's checkers.

A small-scale design (#38, docs/design.md "Data"): RLVR's stand-in source ``if_short`` pairs one of
:data:`TASKS` about one of :data:`TOPICS` with one of the six :data:`CONSTRAINTS` (480 of the 1,440
combinations, drawn with :data:`SEED`); this benchmark is 20 further combinations per constraint
drawn from the other 960, so no prompt it scores is a training prompt (the tasks, topics and
constraint sentences are shared: it tests the targeted skill on unseen prompts, not transfer).
IFEval's own prompts ask for essays that a 135M model's 128-token budget cuts off, which hides
end-of-reply constraints; these replies fit. Rows are in IFEval's schema, prompted and scored as
:mod:`~tulu_lib.evals.tasks.ifeval` (lm-eval's checkers, prompt-level loose), never by the
training verifier (:mod:`tulu_lib.evals.ifeval_checks`). Decontamination never reads it
(``decontaminate=False``): it shares the training source's templates by design.

Usage::

    IF_SHORT.load()            # 120 held-out prompts, 20 per constraint
    training_combinations()    # the 480 (task, topic, constraint) the stand-in trains on
"""

from __future__ import annotations

import random

from tulu_lib.evals.spec import Benchmark, Settings
from tulu_lib.evals.tasks.ifeval import IFEVAL_SCORER, convert, prompt, score, warm_up

__all__ = ["CONSTRAINTS", "IF_SHORT", "SEED", "TASKS", "TOPICS", "combinations", "held_out_rows",
           "training_combinations", "warm_up"]

SEED = 20241125  # fixed: the stand-in's (standins.SEED + 3); the split is data, not a run parameter
TRAINING_N = 480  # combinations the RLVR stand-in draws
TEST_PER_CONSTRAINT = 20

# (the sentence appended to the task, open-instruct's verifier function, its kwargs, IFEval's id)
CONSTRAINTS: tuple[tuple[str, str, dict, str], ...] = (
    ("Your entire response should be in English, and in all lowercase letters. "
     "No capital letters are allowed.", "validate_lowercase", {}, "change_case:english_lowercase"),
    ("Your entire response should be in English, and in all capital letters.",
     "validate_uppercase", {}, "change_case:english_capital"),
    ("In your entire response, refrain from the use of any commas.", "validate_no_commas", {},
     "punctuation:no_comma"),
    ("Finish your response with this exact phrase {end_phrase}. "
     "No other words should follow this phrase.", "validate_end",
     {"end_phrase": "Is there anything else I can help with?"}, "startend:end_checker"),
    ("Wrap your entire response with double quotation marks.", "validate_quotation", {},
     "startend:quotation"),
    ("At the end of your response, please explicitly add a postscript starting with "
     "{postscript_marker}", "verify_postscript", {"postscript_marker": "P.S."},
     "detectable_content:postscript"),
)
TASKS = ("Write a short note to a friend about {t}.", "Describe {t} in two sentences.",
         "Give one practical tip about {t}.", "Write a haiku about {t}.",
         "Explain {t} to a child in one or two sentences.", "Write a one-line slogan about {t}.",
         "Write a short thank-you message that mentions {t}.", "Name three facts about {t}.")
TOPICS = ("rainy days", "the ocean", "gardening", "a city park", "trains", "coffee", "the moon",
          "bicycles", "libraries", "winter", "bread", "mountains", "music lessons", "owls",
          "recycling", "a birthday", "the desert", "museums", "bees", "kites", "tea", "rivers",
          "chess", "volcanoes", "a picnic", "lighthouses", "snow", "robots", "maps", "autumn")


def combinations() -> list[tuple[str, str, int]]:
    """Every (task, topic, constraint index), in a fixed order."""
    return [(task, topic, c) for task in TASKS for topic in TOPICS for c in range(len(CONSTRAINTS))]


def training_combinations() -> list[tuple[str, str, int]]:
    """The :data:`TRAINING_N` combinations the RLVR stand-in ``if_short`` trains on, in its order."""
    return random.Random(SEED).sample(combinations(), TRAINING_N)


def text(task: str, topic: str, c: int) -> str:
    """The prompt: the task about the topic, then the constraint's sentence."""
    template, _, kwargs, _ = CONSTRAINTS[c]
    return f"{task.format(t=topic)}\n\n{template.format(**kwargs)}"


def held_out_rows() -> list[dict]:
    """:data:`TEST_PER_CONSTRAINT` held-out prompts per constraint (none a training combination),
    in IFEval's raw schema (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``)."""
    used = set(training_combinations())
    rng = random.Random(SEED + 1)
    rows = []
    for c, (_, _, kwargs, instruction_id) in enumerate(CONSTRAINTS):
        pool = [combo for combo in combinations() if combo[2] == c and combo not in used]
        for task, topic, _ in rng.sample(pool, TEST_PER_CONSTRAINT):
            rows.append({"key": f"if_short_test/{len(rows)}", "prompt": text(task, topic, c),
                         "instruction_id_list": [instruction_id], "kwargs": [dict(kwargs)]})
    return rows


IF_SHORT = Benchmark(
    name="if_short", paper_name="IF-short (small-scale targeted held-out; not a paper benchmark)",
    settings=Settings(shots=0, cot=False, kind="chat", metric="prompt-level loose accuracy",
                      source="ours: IFEval's prompting and checkers on held-out short constrained tasks"),
    packaged=held_out_rows, packaged_from="generated here: 120 held-out short tasks (20 per constraint)",
    hub_id="", hub_split="", convert=convert,
    prompt=prompt, score=score, secondary=("prompt_strict", "inst_loose", "inst_strict"),
    headline=f"prompt-level loose accuracy ({IFEVAL_SCORER})",
    scorer="lm-eval 0.4.13's tasks/ifeval/utils.py test_instruction_following_strict/_loose, unmodified",
    offline="everything: generated here, scored on CPU", decontaminate=False)
