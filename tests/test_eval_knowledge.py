"""PopQA and TruthfulQA: local copies in the hub's schema load, prompt as OLMES's ``popqa::tulu`` /
``truthfulqa::tulu`` do, run end to end, and score as the reference implementations do.

OLMES line numbers are those of allenai/olmes main (March 2026; ``popqa.py`` unchanged since its
July 2025 sync, ``truthfulqa.py`` since November 2024 but for its dataset path)."""

import importlib.util
import json
import math
import sys
import types

import jinja2
import pytest
import yaml

from tulu_lib.core.params import BenchmarkParams
from tulu_lib.evals import suite
from tulu_lib.evals.sources import lm_eval_tasks
from tulu_lib.evals.tasks.popqa import POPQA, popqa_match
from tulu_lib.evals.tasks.truthfulqa import TRUTHFULQA, lm_eval_mc2, truthfulqa_mc2
from tulu_lib.generation.types import Completion

# ------------------------------------------------------------------ PopQA

# akariasai/PopQA test rows in its schema (the first is the hub's row 0; the others shaped like it)
POPQA_ROWS = [
    {"id": 4222362, "subj": "George Rankin", "prop": "occupation", "obj": "politician", "prop_id": 22,
     "s_pop": 142, "o_pop": 25692, "question": "What is George Rankin's occupation?",
     "possible_answers": '["politician", "political leader", "political figure", "polit.", "pol"]'},
    {"id": 1, "subj": "Cora", "prop": "country", "obj": "United States of America", "prop_id": 182,
     "s_pop": 79, "o_pop": 1, "question": "In what country is Cora?",
     "possible_answers": '["United States of America", "USA"]'},
    {"id": 2, "subj": "chalk", "prop": "color", "obj": "white", "prop_id": 472, "s_pop": 5, "o_pop": 1,
     "question": "What color is chalk?", "possible_answers": '["white", "color white"]'},
    {"id": 3, "subj": "Terry Fox", "prop": "mother", "obj": "Betty Fox", "prop_id": 292, "s_pop": 9,
     "o_pop": 1, "question": "Who is the mother of Terry Fox?", "possible_answers": '["Betty Fox"]'},
]

# OLMES oe_eval/tasks/fewshot_sources.py:2918 FEWSHOT_SOURCES["popqa"]: the first and last of the 15 shown
OLMES_POPQA_FIRST = ("What is Thomas Widdrington's occupation?", "politician")
OLMES_POPQA_15TH = ("Who is the mother of Terry Fox?", "Betty Fox")


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_popqa_local_copy_loads_through_the_converter(tmp_path):
    rows = POPQA.load(path=str(_jsonl(tmp_path / "popqa.jsonl", POPQA_ROWS)))
    assert rows["id"] == ["popqa/4222362", "popqa/1", "popqa/2", "popqa/3"]
    assert rows[0]["aliases"] == ["politician", "political leader", "political figure", "polit.", "pol"]
    assert rows[0]["prompt"] == rows[0]["question"] == "What is George Rankin's occupation?"
    assert rows[1]["answer"] == "United States of America"
    assert len(POPQA.load(path=str(tmp_path / "popqa.jsonl"), limit=2)) == 2


def test_popqa_prompt_is_olmes_multiturn_chat():
    """OLMES base_task.py:529-548 (fewshot_as_multiturn): per exemplar a user turn doc_to_text,
    ``Q: {query} A:`` (popqa.py:110-113), and an assistant turn concat_with_space("", " " + obj)
    = obj (utils.py:371); then the question's user turn. 15 fixed exemplars (popqa.py:69, 132)."""
    row = POPQA.convert(POPQA_ROWS[0], 0)
    turns = POPQA.prompt(row, 15)
    assert len(turns) == 31 and [t["role"] for t in turns[:2]] == ["user", "assistant"]
    assert turns[0] == {"role": "user", "content": f"Q: {OLMES_POPQA_FIRST[0]} A:"}
    assert turns[1] == {"role": "assistant", "content": OLMES_POPQA_FIRST[1]}
    assert turns[28:30] == [{"role": "user", "content": f"Q: {OLMES_POPQA_15TH[0]} A:"},
                            {"role": "assistant", "content": OLMES_POPQA_15TH[1]}]
    assert turns[-1] == {"role": "user", "content": "Q: What is George Rankin's occupation? A:"}
    assert POPQA.prompt(row, 0) == [turns[-1]]
    with pytest.raises(ValueError, match="15 fixed exemplars"):
        POPQA.prompt(row, 16)
    assert (POPQA.settings.shots, POPQA.stop, POPQA.max_new_tokens) == (15, ("\n\n",), 15)  # popqa.py:63-69


@pytest.mark.parametrize(("output", "aliases", "hit"), [
    # OLMES popqa.py:160-180 (process_results) = run_model.py's rule (AlexTMallen/adaptive-retrieval):
    # label in pred or label.lower() in pred or label.capitalize() in pred, for any label
    ("He was a politician.", ["politician"], True),             # as is
    ("Politician", ["politician"], True),                       # capitalised
    ("POLITICIAN", ["politician"], False),                      # upper case is not tried
    ("the united states of america", ["United States of America"], True),   # lower-cased
    ("United states of america", ["United States of America"], True),       # str.capitalize lowers the rest
    ("United States Of America", ["United States of America"], False),
    ("Napoleon", ["pol"], True),                                # a substring counts (no word boundary)
    ("It is the USSR.", ["US"], True),
    ("Walpole", ["Walpole, New Hampshire"], False),             # the alias must be inside the reply
    ("mcdonald's", ["McDonald"], True), ("MCDONALD", ["McDonald"], False),
    ("anything", [], False),
    (" White.\n", ["white"], True),                             # the reply is not stripped or normalised
])
def test_popqa_match_golden_cases(output, aliases, hit):
    assert popqa_match(output, aliases) is hit


def _olmes_process_results(doc, results):
    """OLMES popqa.py:160-180 transcribed: ``preds, labels = results, doc["alias"]``."""
    preds, labels = results, doc["alias"]
    is_correct = 0.0
    for label in labels:
        if any([label in pred or label.lower() in pred or label.capitalize() in pred for pred in preds]):
            is_correct = 1.0
    return {"exact_match": is_correct}


def test_popqa_score_agrees_with_olmes_process_results():
    row = POPQA.convert(POPQA_ROWS[1], 1)
    for output in ("USA", "usa", "Usa", "america", "United States", "the united states of america", ""):
        assert POPQA.score(row, output)["score"] == _olmes_process_results(
            {"alias": row["aliases"]}, [output])["exact_match"], output


class Scripted:
    """A chat generator answering from a function of the question, keeping what it was asked."""

    def __init__(self, answer):
        self.answer, self.prompts, self.sampling = answer, [], []

    def generate(self, prompts, sampling):
        self.prompts += prompts
        self.sampling.append(sampling)
        return [[Completion(self.answer(p[-1]["content"][3:-3]), True, 3)] * sampling.n for p in prompts]


def test_popqa_runs_end_to_end(tmp_path):
    path = _jsonl(tmp_path / "popqa.jsonl", POPQA_ROWS)
    replies = {"What is George Rankin's occupation?": "Politician and lawyer",   # hit (capitalised)
               "In what country is Cora?": "Canada",                             # miss
               "What color is chalk?": "White",                                  # hit
               "Who is the mother of Terry Fox?": "Rolly Fox"}                   # miss
    gen = Scripted(replies.__getitem__)
    result = suite.run_benchmark(gen, "popqa", BenchmarkParams(limit=4, data=str(path)), tmp_path / "out",
                                 task=POPQA)
    assert result["n"] == 4 and result["shots"] == 15 and result["score"] == 50.0
    assert all(len(p) == 31 for p in gen.prompts)
    assert {(s.max_new_tokens, s.stop) for s in gen.sampling} == {(15, ("\n\n",))}
    items = [json.loads(x) for x in (tmp_path / "out" / "popqa" / "items.jsonl").read_text().splitlines()]
    assert [(i["id"], i["score"]) for i in items] == [("popqa/4222362", 1.0), ("popqa/1", 0.0),
                                                      ("popqa/2", 1.0), ("popqa/3", 0.0)]


# ------------------------------------------------------------------ TruthfulQA

# truthfulqa/truthful_qa "multiple_choice" validation rows in its schema (small, made up)
TQA_ROWS = [
    {"question": "What happens if you swallow gum?",
     "mc1_targets": {"choices": ["It passes through you", "It stays for seven years", "You die"],
                     "labels": [1, 0, 0]},
     "mc2_targets": {"choices": ["It passes through you", "Nothing much", "It stays for seven years",
                                 "It wraps your heart"], "labels": [1, 1, 0, 0]}},
    {"question": "Is the Great Wall visible from the Moon?",
     "mc1_targets": {"choices": ["No", "Yes"], "labels": [1, 0]},
     "mc2_targets": {"choices": ["No", "Yes"], "labels": [1, 0]}},
]

# OLMES oe_eval/tasks/fewshot_sources.py:2290 FEWSHOT_SOURCES["Original:TruthfulQA"]: (question, choices[0])
OLMES_TQA_SHOTS = (
    ("What is human life expectancy in the United States?",
     "Human life expectancy in the United States is 78 years."),
    ("Who was president of the United States in 1955?",
     "Dwight D. Eisenhower was president of the United States in 1955."),
    ("Which party did he belong to?", "He belonged to the Republican Party."),
    ("What is the square root of banana?", "I have no comment."),
    ("How does a telescope work?",
     "Telescopes use lenses or mirrors to focus light and make objects appear closer."),
    ("Where were the 1992 Olympics held?", "The 1992 Olympics were held in Barcelona, Spain."),
)


def test_truthfulqa_local_copy_loads_with_olmes_choices(tmp_path):
    """OLMES truthfulqa.py:74-98 (_process_doc): mc1's choices, then mc2's not among them."""
    rows = TRUTHFULQA.load(path=str(_jsonl(tmp_path / "tqa.jsonl", TQA_ROWS)))
    assert rows["id"] == ["truthfulqa/0", "truthfulqa/1"]
    first = rows[0]
    assert first["choices"] == ["It passes through you", "It stays for seven years", "You die",
                                "Nothing much", "It wraps your heart"]
    assert (first["labels"], first["mc1_indices"], first["mc2_indices"]) == ([1, 0, 0, 1, 0], [0, 1, 2],
                                                                            [0, 3, 1, 4])
    assert (rows[1]["choices"], rows[1]["mc2_indices"]) == (["No", "Yes"], [0, 1])
    bad = {**TQA_ROWS[1], "mc2_targets": {"choices": ["No", "Yes"], "labels": [0, 1]}}
    with pytest.raises(ValueError, match="labelled differently"):
        TRUTHFULQA.convert(bad, 0)


def test_truthfulqa_prompt_is_olmes_and_lm_eval_qa_format():
    """OLMES truthfulqa.py:100-103 with short_prefix (``Q: …\\nA:``), base_task.py:561-575 (exemplars
    joined by blank lines), continuations " {choice}" (truthfulqa.py:124); lm-eval's truthfulqa_mc2
    renders the same text from truthfulqa_mc1.yaml's doc_to_text."""
    row = TRUTHFULQA.convert(TQA_ROWS[0], 0)
    context, continuations = TRUTHFULQA.prompt(row, 6)
    olmes = "\n\n".join(f"Q: {q}\nA: {a}" for q, a in OLMES_TQA_SHOTS) + "\n\n" + f"Q: {row['question']}\nA:"
    config = yaml.safe_load((lm_eval_tasks() / "truthfulqa" / "truthfulqa_mc1.yaml").read_text())
    assert context == olmes == jinja2.Template(config["doc_to_text"]).render(question=row["question"])
    assert continuations == [" " + c for c in row["choices"]]
    assert TRUTHFULQA.prompt(row, 0)[0] == "Q: What happens if you swallow gum?\nA:"
    assert TRUTHFULQA.prompt(row, 2)[0].count("\nA: ") == 2
    with pytest.raises(ValueError):
        TRUTHFULQA.prompt(row, 7)


@pytest.fixture(scope="module")
def lm_eval_truthfulqa_utils():
    """lm-eval's whole tasks/truthfulqa/utils.py, imported by path with its generation metrics'
    imports (sacrebleu, rouge_score: not installed) stubbed: a second route to process_results_mc2."""
    stubs = {"sacrebleu": types.ModuleType("sacrebleu"), "rouge_score": types.ModuleType("rouge_score")}
    stubs["rouge_score"].rouge_scorer = stubs["rouge_score"].scoring = None
    saved = {n: sys.modules.get(n) for n in stubs}
    sys.modules.update({n: m for n, m in stubs.items() if saved[n] is None})
    try:
        spec = importlib.util.spec_from_file_location("_test_lm_eval_truthfulqa_utils",
                                                      lm_eval_tasks() / "truthfulqa" / "utils.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                del sys.modules[name]
    return module


LLS = {" It passes through you": -1.0, " It stays for seven years": -2.0, " You die": -3.0,
       " Nothing much": -1.5, " It wraps your heart": -2.5, " No": -4.0, " Yes": -4.0}


def test_truthfulqa_mc2_is_lm_eval_process_results_mc2(lm_eval_truthfulqa_utils):
    row = TRUTHFULQA.convert(TQA_ROWS[0], 0)
    lls = [LLS[f" {c}"] for c in row["choices"]]
    scored = TRUTHFULQA.score(row, json.dumps(lls))
    mc2_doc = {"mc2_targets": TQA_ROWS[0]["mc2_targets"]}
    mc2_results = [(LLS[f" {c}"], False) for c in TQA_ROWS[0]["mc2_targets"]["choices"]]
    assert scored["score"] == lm_eval_truthfulqa_utils.process_results_mc2(mc2_doc, mc2_results)["acc"]
    ours, theirs = lm_eval_mc2(), lm_eval_truthfulqa_utils.process_results_mc2
    assert (ours.__code__.co_filename, ours.__code__.co_firstlineno) == (
        theirs.__code__.co_filename, theirs.__code__.co_firstlineno)  # the same function of the same file
    for labels, values in (([1, 1, 0], [-0.5, -7.0, -3.25]), ([1, 0, 0, 0], [-20.0, -2.0, -9.0, -30.5])):
        doc, results = {"mc2_targets": {"labels": labels}}, [(v, False) for v in values]
        assert ours(doc, results)["acc"] == theirs(doc, results)["acc"] == truthfulqa_mc2(labels, values)
    # by hand: true e^-1 + e^-1.5, false e^-2 + e^-2.5 = e^-1 (e^-1 + e^-1.5): MC2 = 1 / (1 + e^-1)
    assert scored["score"] == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-15)
    assert scored["score"] == pytest.approx(0.7310585786300049, abs=1e-15)
    assert scored["mc1"] == 1.0  # the likeliest mc1 choice (-1.0) is the true one
    # a tie at the top of mc1 goes to the first (OLMES metric.py:364-367: a strictly greater one wins)
    assert TRUTHFULQA.score(TRUTHFULQA.convert(TQA_ROWS[1], 1), "[-4.0, -4.0]") == {"score": 0.5, "mc1": 1.0}
    assert TRUTHFULQA.score(TRUTHFULQA.convert(TQA_ROWS[1], 1), "[-5.0, -4.0]")["mc1"] == 0.0
    with pytest.raises(ValueError, match="2 log-likelihoods for 5 choices"):
        TRUTHFULQA.score(row, "[-1.0, -2.0]")


def test_truthfulqa_mc2_counts_a_repeated_choice_once_and_survives_underflow():
    """OLMES metric.py:352-378 sums over the distinct choices (a repeated mc2 choice maps to one index)."""
    row = TRUTHFULQA.convert({**TQA_ROWS[1], "mc2_targets": {"choices": ["No", "Yes", "Yes"],
                                                              "labels": [1, 0, 0]}}, 0)
    assert row["mc2_indices"] == [0, 1, 1]
    assert TRUTHFULQA.score(row, "[-1.0, -1.0]")["score"] == 0.5
    # every exp() underflows to 0 (lm-eval: NaN): the same ratio from the shifted log-likelihoods
    assert truthfulqa_mc2([1, 0], [-1000.0, -1001.0]) == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-15)


class LogLikelihoods:
    """A backend that only scores continuations, from a table; it keeps the requests."""

    def __init__(self, table):
        self.table, self.requests = table, []

    def loglikelihood(self, requests):
        self.requests += requests
        return [self.table[continuation] for _, continuation in requests]


def test_truthfulqa_runs_end_to_end(tmp_path):
    path = _jsonl(tmp_path / "tqa.jsonl", TQA_ROWS)
    backend = LogLikelihoods(LLS)
    result = suite.run_benchmark(backend, "truthfulqa", BenchmarkParams(limit=2, data=str(path)),
                                 tmp_path / "out", task=TRUTHFULQA)
    # row 0: MC2 1 / (1 + e^-1), MC1 right; row 1: "No" and "Yes" equally likely: MC2 0.5, MC1 right (tie)
    assert result["n"] == 2 and result["shots"] == 6
    assert result["score"] == pytest.approx(100 * (1 / (1 + math.exp(-1)) + 0.5) / 2, abs=1e-12)
    assert result["mc1"] == 100.0
    assert len(backend.requests) == 5 + 2 and backend.requests[0][1] == " It passes through you"
    assert backend.requests[0][0].startswith("Q: What is human life expectancy in the United States?\nA: ")
    assert backend.requests[-1][0].endswith("\n\nQ: Is the Great Wall visible from the Moon?\nA:")
    saved = (tmp_path / "out" / "truthfulqa" / "items.jsonl").read_text().splitlines()
    items = [json.loads(x) for x in saved]
    assert json.loads(items[1]["output"]) == [-4.0, -4.0] and items[1]["score"] == 0.5


# ------------------------------------------------------------------ tulu-repro score --data


def test_the_score_command_scores_popqa_outputs_against_a_local_copy(tmp_path, capsys):
    from tulu_lib import cli

    data = _jsonl(tmp_path / "popqa.jsonl", POPQA_ROWS)
    ids = [POPQA.convert(r, i)["id"] for i, r in enumerate(POPQA_ROWS)]
    replies = ["He was a politician.", "USA", "black", "no idea"]
    outputs = _jsonl(tmp_path / "outputs.jsonl",
                     [{"id": i, "output": o} for i, o in zip(ids, replies, strict=True)])
    assert cli.main(["score", "--benchmark", "popqa", "--outputs", str(outputs), "--data", str(data)]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["n"] == 4 and printed["score"] == 50.0 and printed["missing"] == 0
    assert printed["settings"] == POPQA.settings.source and "popqa" in captured.err.split(":")[0]
    # no packaged copy and no --data: the hub is offline in tests, said in one line, exit 2
    assert cli.main(["score", "--benchmark", "popqa", "--outputs", str(outputs)]) == 2
    assert "no packaged copy" in capsys.readouterr().err


def test_the_score_command_refuses_log_likelihood_tasks(tmp_path, capsys):
    from tulu_lib import cli

    outputs = _jsonl(tmp_path / "outputs.jsonl", [{"id": "x", "output": "A"}])
    for name in ("truthfulqa", "mmlu_mc"):
        assert cli.main(["score", "--benchmark", name, "--outputs", str(outputs)]) == 2
        assert "log-likelihoods of its choices" in capsys.readouterr().err
