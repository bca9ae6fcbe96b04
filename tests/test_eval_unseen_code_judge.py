"""The unseen suite's BigCodeBench-Hard, HREF and IFEval-OOD, end to end on tiny local copies in
their hub schemas (no network, no model): scripted generators and judges, exact scores."""

import dataclasses
import functools
import json
import math
import random

import pytest

from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import suite
from tulu_lib.evals.tasks import bigcodebench as bcb
from tulu_lib.evals.tasks import href
from tulu_lib.evals.tasks.bigcodebench import BIGCODEBENCH_HARD
from tulu_lib.evals.tasks.href import HREF
from tulu_lib.evals.tasks.ifeval_ood import IFEVAL_OOD
from tulu_lib.generation.types import Completion


class Scripted:
    """A generator (or judge) that answers from a function of the prompt, keeping the prompts."""

    def __init__(self, answer):
        self.answer, self.prompts = answer, []

    def generate(self, prompts, sampling):
        self.prompts += prompts
        return [[Completion(self.answer(p), True, 3)] * sampling.n for p in prompts]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# --- BigCodeBench-Hard ------------------------------------------------------------------------

_TESTS = '''import unittest
class TestCases(unittest.TestCase):
    def test_sorted(self):
        self.assertEqual(task_func([3, 1, 2]), [1, 2, 3])
    def test_empty(self):
        self.assertEqual(task_func([]), [])
    def test_type(self):
        with self.assertRaises(TypeError):
            task_func(5)
'''
_REMOVE_TESTS = '''import os
import unittest
class TestCases(unittest.TestCase):
    def test_removes(self):
        with open("x.txt", "w") as f:
            f.write("x")
        self.assertTrue(task_func("x.txt"))
        self.assertFalse(os.path.exists("x.txt"))
'''


def _bcb_task(n, instruct, code_prompt, test, libs):
    return {"task_id": f"BigCodeBench/{n}", "complete_prompt": code_prompt + '    """Doc."""\n',
            "instruct_prompt": instruct + "\nYou should write self-contained code starting with:\n"
                               f"```\n{code_prompt}```",
            "canonical_solution": "    pass\n", "code_prompt": code_prompt, "test": test,
            "entry_point": "task_func", "doc_struct": "{}", "libs": libs}


_BCB_ROWS = [
    _bcb_task(1, "Sort a list (task one).", "import random\ndef task_func(xs):\n", _TESTS, "['random']"),
    _bcb_task(2, "Sort a list (task two).", "import random\ndef task_func(xs):\n", _TESTS, "['random']"),
    _bcb_task(3, "Plot it (task three).", "import tulu_repro_no_such_module\ndef task_func(xs):\n", _TESTS,
              "['tulu_repro_no_such_module']"),
    _bcb_task(4, "Delete a file (task four).", "import os\ndef task_func(path):\n", _REMOVE_TESTS, "['os']"),
]
_REPLIES = {
    "one": "Here is the solution:\n```python\nimport random\ndef _order(xs):\n    return sorted(xs)\n\n"
           "def task_func(xs):\n    return _order(xs)\n\nprint(task_func([2, 1]))\n```\nIt sorts.",
    "two": "```python\ndef task_func(xs):\n    return list(xs)\n```",
    "three": "```python\ndef task_func(xs):\n    return xs\n```",
    "four": "```python\nimport os\ndef task_func(path):\n    os.remove(path)\n    return True\n```",
}


def _bcb_reply(messages):
    content = messages[-1]["content"]
    return next(reply for key, reply in _REPLIES.items() if f"(task {key})" in content)


def test_bigcodebench_hard_end_to_end_pass_fail_unscorable_and_sandbox_limit(tmp_path):
    data = _jsonl(tmp_path / "bcb.jsonl", _BCB_ROWS)
    generator = Scripted(_bcb_reply)
    result = suite.run_benchmark(generator, "bigcodebench_hard", BenchmarkParams(data=data), tmp_path,
                                 task=BIGCODEBENCH_HARD)
    items = {i["id"]: i for i in map(json.loads, (tmp_path / "bigcodebench_hard" / "items.jsonl").open())}
    assert items["BigCodeBench/1"]["score"] == 1.0
    assert items["BigCodeBench/2"]["score"] == 0.0 and items["BigCodeBench/2"]["exec_status"] == "failed"
    # os.remove is denied by the sandbox's guard: a counted scorer error, not the model's 0
    assert items["BigCodeBench/4"]["scorer_status"] == "error"
    assert "SandboxLimit" in items["BigCodeBench/4"]["scorer_error"]
    assert "BigCodeBench/3" not in items and result["skipped"] == 1
    assert "tulu_repro_no_such_module" in result["metric"]
    assert result["n"] == 3 and result["score"] == pytest.approx(100 / 3) and result["scorer_errors"] == 1
    # OLMES doc_to_text (instruct variant) as the user turn; OLMES's max_gen_toks
    first = next(p for p in generator.prompts if "(task one)" in p[-1]["content"])
    row = BIGCODEBENCH_HARD.convert(_BCB_ROWS[0], 0)
    # OLMES codex_bigcodebench.py doc_to_text: BigCodeBench's instruction prefix, "\n", the prompt, "\n"
    prefix = ("Please provide a self-contained Python script that solves the following problem in a "
              "markdown code block:")
    assert first == [{"role": "user", "content": prefix + "\n" + row["instruct_prompt"].strip() + "\n"}]
    assert BIGCODEBENCH_HARD.max_new_tokens == 1280 and BIGCODEBENCH_HARD.hub_split == "v0.1.2"


def test_bigcodebench_sanitize_and_calibrate_as_bigcodebench_does():
    row = BIGCODEBENCH_HARD.convert(_BCB_ROWS[0], 0)
    assert row["required"] == ["random", "unittest"]
    # the fenced block, its imports and the definitions task_func reaches; the top-level call dropped
    assert bcb.solution(row, _REPLIES["one"]) == (
        "import random\ndef task_func(xs):\n\n    pass\n"
        "import random\ndef _order(xs):\n    return sorted(xs)\ndef task_func(xs):\n    return _order(xs)")
    # unreachable helpers, decorated and duplicate definitions go, as with BigCodeBench's tree-sitter pass
    code = ("import os\nX = 1\ndef unused():\n    return 0\n@cache\ndef deco():\n    return 1\n"
            "def task_func(a):\n    return X + a\ndef task_func(a):\n    return 0\nresult = task_func(1)\n")
    assert bcb.sanitize(code, "task_func") == "import os\nX = 1\ndef task_func(a):\n    return X + a"
    assert bcb.sanitize("no code here at all", "task_func") == "no code here at all"


def _code_extract_reference(text):
    """BigCodeBench's sanitize.code_extract, its double loop as written."""
    lines = text.split("\n")
    longest_line_pair, longest_so_far = (0, 0), 0
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            current = "\n".join(lines[i:j + 1])
            if bcb.syntax_check(current):
                length = sum(1 for line in lines[i:j + 1] if line.strip())
                if length > longest_so_far:
                    longest_so_far, longest_line_pair = length, (i, j)
    return "\n".join(lines[longest_line_pair[0]:longest_line_pair[1] + 1])


@pytest.mark.parametrize("text", [
    "Sure! Here:\ndef f(x):\n    return x\n\nThis returns x.", "x = 1\n\n", "\n\nx = 1\ny = 2\n\n",
    "just prose", "", "a b c\nx = (1,\n2)\nnot code )\ny = 3", "x = 1", "def f(:\n  pass\nz = 2\nw = 3\n"])
def test_code_extract_matches_bigcodebench(text):
    assert bcb.code_extract(text) == _code_extract_reference(text)


# --- HREF -------------------------------------------------------------------------------------

# HREF's judge prompt files, quoted from source. allenai/href's annotator suite ``href``
# (href/evaluation/evaluators.py) judges with llama3.1-70b_basic_w_reference / _basic_no_reference.
# href/llm_as_a_judge/prompt_templates/basic_w_reference.txt (github.com/Alrope123/href, commit
# b19cba63c29de11e51d9c4dc1afb38fa699e4628):
BASIC_W_REFERENCE_TXT = (
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
    "similarly good or bad. Your answer should ONLY contain: A or B or tie.{example_begin} "
    "Here are two examples:\n"
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
    "B{example_end}\n"
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
# NAMME/annotators/configs/llama3.1-70b_basic_no_reference/prompt.txt (github.com/Alrope123/humanIF,
# commit 338849eeb464d3a66bf798c757e95109be906989), the prompt create_config.py generated:
BASIC_NO_REFERENCE_PROMPT_TXT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "You are a helpful assistant that helps us rate an AI model's responses to "
    "instructions.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
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
    "## Which is best, A, B, or tie?<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
)


def test_href_templates_are_hrefs():
    # create_config.py keeps the demonstrations unless --no_example: it drops the two markers
    assert href.TEMPLATES["basic_w_reference"] == BASIC_W_REFERENCE_TXT.replace(
        "{example_begin}", "").replace("{example_end}", "")
    system, user = BASIC_NO_REFERENCE_PROMPT_TXT.split("<|eot_id|>")[:2]
    assert href.SYSTEM_MESSAGE == system.split("<|end_header_id|>\n", 1)[1]
    assert href.TEMPLATES["basic_no_reference"] == user.split("<|end_header_id|>\n", 1)[1]


@pytest.mark.parametrize("reply, preference", [
    ("A", 1.0), ("B", 2.0), ("tie", 0.0), ("Tie", 0.0), ("TIE", 0.0), ("a", 1.0), ("b", 2.0), ("A.", 1.0),
    ("Response B", 2.0), ("I think A is better.\nB", 2.0), ("  tie  \n", 0.0),
    # the fork's order: case is fixed before the dot is dropped, so these stay unparsed (NaN)
    ("b.", math.nan), ("Tie.", math.nan), ("**A**", math.nan), ("A because it is shorter", math.nan),
    ("", math.nan), ("   ", math.nan)])
def test_href_match_parser_golden_cases(reply, preference):
    """HREF's AlpacaEval fork (github.com/Alrope123/alpaca_eval, src/alpaca_eval/completion_parsers.py
    match_parser, matcher {A: 1, B: 2, tie: 0} from the llama3.1-70b_basic_* configs.yaml)."""
    got = href.match_parser(reply)
    assert (math.isnan(got) and math.isnan(preference)) or got == preference


_HREF_ROWS = [
    {"category": "Generation", "instruction": "Write a haiku about rain.", "output": "BASELINE haiku",
     "reference": "HUMAN haiku", "generator": "Meta-Llama-3.1-70B-Instruct"},
    {"category": "Brainstorm", "instruction": "List three uses for a brick.", "output": "BASELINE list",
     "reference": "HUMAN list", "generator": "Meta-Llama-3.1-70B-Instruct"},
    {"category": "Open QA", "instruction": "Who wrote Hamlet?", "output": "BASELINE answer",
     "reference": "Shakespeare.", "generator": "Meta-Llama-3.1-70B-Instruct"},
    {"category": "Rewrite", "instruction": "Rewrite: the cat sat.", "output": "The cat was sitting.",
     "reference": "The cat sat down.", "generator": "Meta-Llama-3.1-70B-Instruct"},
]


def _ours(messages):
    """Ours: a fixed reply, except on the Rewrite row, where it equals the baseline's output."""
    return "The cat was sitting." if messages[-1]["content"].startswith("Rewrite") else "OURS"


def _picks_ours(messages):
    """A judge that prefers whichever response is ours."""
    user = messages[-1]["content"].rsplit("# Task:", 1)[1]
    return "A" if user.split("## Response A:\n", 1)[1].startswith("OURS\n") else "B"


def _href(tmp_path, judge, name):
    task = dataclasses.replace(HREF, score=functools.partial(HREF.judge_score, judge))
    data = _jsonl(tmp_path / "href.jsonl", _HREF_ROWS)
    return suite.run_benchmark(Scripted(_ours), name, BenchmarkParams(data=data), tmp_path, task=task)


def test_href_win_rate_against_the_baseline_with_the_human_reference(tmp_path):
    judge = Scripted(_picks_ours)
    won = _href(tmp_path, judge, "won")
    # Open QA is BERTScore in HREF: skipped and counted; the identical Rewrite output is not judged (1.5)
    assert won["n"] == 3 and won["skipped"] == 1 and "BERTScore" in won["metric"]
    assert won["score"] == pytest.approx(200 / 3) and won["tie"] == 0.0 and won["unparsed"] == 0.0
    assert len(judge.prompts) == 2
    by_instruction = {m[-1]["content"].split("## Instruction:\n")[-1].split("\n")[0]: m
                      for m in judge.prompts}
    for row in _HREF_ROWS[:2]:
        swap = random.Random("is_switched_outputs" + row["instruction"] + "42").choices([False, True])[0]
        first, second = ("OURS", row["output"]) if swap else (row["output"], "OURS")
        annotator = href.ANNOTATORS[row["category"]]
        expected = (href.TEMPLATES[annotator].replace("{instruction}", row["instruction"])
                    .replace("{output_1}", first).replace("{output_2}", second)
                    .replace("{output_human}", row["reference"]))
        assert by_instruction[row["instruction"]] == [{"role": "system", "content": href.SYSTEM_MESSAGE},
                                                     {"role": "user", "content": expected}]
        assert ("## Human Response:\n" + row["reference"] in expected) == (annotator == "basic_w_reference")
    items = {i["id"]: i for i in map(json.loads, (tmp_path / "won" / "items.jsonl").open())}
    assert items["href/3"]["preference"] == 1.5 and items["href/3"]["score"] == 0.0
    assert {items["href/0"]["preference"], items["href/1"]["preference"]} == {2.0}


def test_href_ties_losses_and_unparsed_replies(tmp_path):
    tie = _href(tmp_path, Scripted(lambda m: "tie"), "tie")
    assert tie["score"] == pytest.approx(100 / 3) and tie["tie"] == pytest.approx(200 / 3)
    lost = _href(tmp_path, Scripted(lambda m: "B" if _picks_ours(m) == "A" else "A"), "lost")
    assert lost["score"] == 0.0
    unparsed = _href(tmp_path, Scripted(lambda m: "Neither."), "unparsed")
    assert unparsed["score"] == 0.0 and unparsed["unparsed"] == pytest.approx(200 / 3)
    assert suite.run_benchmark(Scripted(_ours), "x", BenchmarkParams(data=str(tmp_path / "href.jsonl")),
                               tmp_path, task=HREF)["scorer_errors"] == 3  # no judge: score() refuses


# --- IFEval-OOD -------------------------------------------------------------------------------

def test_ifeval_ood_scores_with_ifbench_checkers_and_counts_foreign_constraints(tmp_path):
    rows = [{"key": 1, "prompt": "Name two prime numbers.", "instruction_id_list": ["count:numbers"],
             "kwargs": [{"N": 2}]},
            {"key": 2, "prompt": "Say hello with no whitespace.",
             "instruction_id_list": ["format:no_whitespace"], "kwargs": [{}]},
            {"key": 3, "prompt": "Write in iambs.", "instruction_id_list": ["custom:tulu_not_an_ifbench_id"],
             "kwargs": [{}]}]
    data = _jsonl(tmp_path / "ood.jsonl", rows)
    result = suite.run_benchmark(Scripted(lambda m: "3 and 7"), "ifeval_ood", BenchmarkParams(data=data),
                                 tmp_path, task=IFEVAL_OOD)
    assert result["n"] == 2 and result["skipped"] == 1 and result["score"] == 50.0
    assert "custom:tulu_not_an_ifbench_id" in result["metric"] and IFEVAL_OOD.max_new_tokens == 2048
