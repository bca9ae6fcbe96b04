"""Verifiable rewards of Tülu 3's RLVR stage (GSM8K, MATH, IF constraints).

``verify`` decides whether a response is correct for one row of
``allenai/RLVR-GSM-MATH-IF-Mixed-Constraints``; ``reward`` turns that into the paper's scalar
(alpha = 10 when verified, 0 otherwise, a penalty when generation stopped before EOS). The rules
follow the paper (Lambert et al. 2024, §6): GSM8K takes the last number of the reply; MATH takes
the answer "flexibly" (last ``\\boxed{}``, else Minerva's "final answer is", else the last ``$...$``)
and compares Minerva-normalized strings; IF rows name a checker in
:mod:`tulu_lib.evals.ifeval_checks`. A malformed row raises :class:`VerificationError`, never a silent 0.

Bounded and total: a reply is verified on its last :data:`~tulu_lib.evals.bounded.MAX_SCORED_CHARS`
characters, in a worker process under a per-reply time budget (``timeout_s``, default
:data:`~tulu_lib.evals.bounded.DEFAULT_TIMEOUT_S`; :mod:`tulu_lib.evals.bounded`). A reply that
times out or makes a checker raise is not verified (False), logged and counted
(:func:`verify_outcome` says which; :func:`tulu_lib.evals.bounded.counts` totals them), so it
never stops an RLVR step or a scoring run.

Usage::

    reward("gsm8k", "... so she has 1,234 apples.", "1234")       # -> 10.0
    verify("MATH", r"Thus $x = \\boxed{\\dfrac{1}{2}}$.", r"\\frac{1}{2}")  # -> True
"""

from __future__ import annotations

import json
import re
import threading
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from tulu_lib.evals import bounded, ifeval_checks

__all__ = [
    "DATASETS",
    "RULES",
    "VerificationError",
    "disagreements",
    "extract_gsm8k_answer",
    "extract_math_answer",
    "math_verify_equivalent",
    "normalize_final_answer",
    "reward",
    "verify",
    "verify_outcome",
]

DATASETS = ("gsm8k", "MATH", "ifeval")
"""Canonical ``dataset`` values of the RLVR mix; :func:`verify` accepts them in any case."""


class VerificationError(ValueError):
    """A row cannot be verified: unknown dataset or malformed ground truth."""


# --- GSM8K ------------------------------------------------------------------------------------

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_GSM_NUMBER = re.compile(r"(?:(?<![\w.)])-)?(?:\d+(?:\.\d+)?|\.\d+)")


def extract_gsm8k_answer(text: str) -> str | None:
    """The last number in ``text`` with thousands separators removed, or None.

    ``1,234`` -> ``1234``; a minus sign counts unless it joins two numbers (``10-15`` -> ``15``);
    ``$`` signs, units and a trailing period are ignored. Open-instruct's GSM8K verifier also takes
    the last number but drops the sign of negative integers and joins any ``digit,digit``.
    """
    text = _THOUSANDS.sub("", text.replace("\u2212", "-"))
    numbers = _GSM_NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _gsm8k_equal(response: str, ground_truth: str) -> bool:
    try:
        target = Decimal(ground_truth.strip().replace(",", ""))
    except InvalidOperation:
        raise VerificationError(f"{ground_truth!r} is not a number") from None
    answer = extract_gsm8k_answer(response)
    return answer is not None and Decimal(answer) == target


# --- MATH -------------------------------------------------------------------------------------

def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces), or None.

    Minerva's ``last_boxed_only_string`` + ``remove_boxed``, including the ``\\boxed 5`` form.
    """
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    rest = text[start:].removeprefix("\\boxed").removeprefix("\\fbox")
    if rest.startswith(" "):
        token = rest.strip().split("$")[0].split()
        return token[0] if token else None
    if not rest.startswith("{"):
        return None
    depth = 0
    for i, ch in enumerate(rest):
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return rest[1:i]
    return None  # unbalanced: the response was cut off inside the box


_FINAL_ANSWER = re.compile(
    r"final answer is:?\s*(.+?)(?:\.?\s*I hope it is correct|\.?\s*$)", re.IGNORECASE | re.MULTILINE)
_MATH_SEGMENT = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$(.+?)(?<!\\)\$", re.DOTALL)


def extract_math_answer(text: str) -> str | None:
    """The "flex" answer: last ``\\boxed{}``, else "final answer is X", else the last ``$...$``.

    The second rule is Minerva's "Final Answer: The final answer is X. I hope it is correct.",
    relaxed to any "final answer is X" line. Open-instruct falls back to the whole response when
    nothing matches, and so do we (it only verifies a bare answer); blank text gives None.
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    finals = _FINAL_ANSWER.findall(text)
    if finals:
        return finals[-1].strip()
    segments = _MATH_SEGMENT.findall(text)
    if segments:
        display, inline = segments[-1]
        return (display or inline).strip()
    return text.strip() or None


_UNIT_WORDS = re.compile(
    r"(?<![\\A-Za-z])(?:square|ways|integers|dollars|mph|inches|ft|hours|km|units|sue|points|feet|"
    r"minutes|digits|cents|degrees|cm|gm|pounds|meters|meals|edges|students|childrentickets|"
    r"multiples)(?![A-Za-z])")
_ARTICLE = re.compile(r"(?<![\\A-Za-z])an? +(?=[A-Za-z]{2})")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_SPACING = re.compile(r"\\[!,;: ]|\\q?quad(?![A-Za-z])|\\displaystyle")
_REMOVED = (
    "\\ldots", "\\dots", "\\text{s}", "\\text{.}", "\\text{}^2", "\\text{}^3", "\\text{}",
    "\\mathrm{th}", "^\\circ", "^{\\circ}", '"', "\\%", "%",
)
_NUMBER = re.compile(r"(-?)(\d+(?:\.\d*)?|\.\d+)")
_FRACTION = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}|(-?)(\d+)/(\d+)")


def _canonical_number(s: str) -> str:
    """A plain rational number written one way: ``18.00`` -> ``18``, ``0.5``, ``1/2`` -> ``\\frac{1}{2}``."""
    if m := _NUMBER.fullmatch(s):
        value = Fraction(m[2]) * (-1 if m[1] else 1)
    elif (m := _FRACTION.fullmatch(s)) and int(m[3] or m[6]) != 0:
        sign = -1 if (m[1] or m[4]) else 1
        value = sign * Fraction(int(m[2] or m[5]), int(m[3] or m[6]))
    else:
        return s
    if value.denominator == 1:
        return str(value.numerator)
    return f"{'-' if value < 0 else ''}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def normalize_final_answer(answer: str) -> str:
    """Minerva's answer normalization (Lewkowycz et al. 2022, app. D; lm-eval ``minerva_math``).

    Keeps the part after the last ``=`` ("x = 5" -> "5"); drops unit words, articles, ``\\text{}``
    wrappers, ``\\$``, degrees, spaces and the ``$`` delimiters; expands ``\\frac12`` / ``\\sqrt2``;
    removes thousands separators. Beyond Minerva (as in Hendrycks' ``strip_string``):
    ``\\dfrac``/``\\tfrac`` -> ``\\frac``, no ``\\left``/``\\right``, LaTeX spacing (``\\!``, ``\\,``,
    ``\\;``, ``\\quad``) and ``%`` dropped, a trailing period dropped, and a plain rational number
    written canonically (:func:`_canonical_number`). Unit words and articles are removed only as
    whole words, so ``\\left`` or ``\\sigma`` are never cut up as in the original.
    """
    s = answer.split("=")[-1].replace("mbox", "text")
    s = _LEFT_RIGHT.sub("", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = s.replace(",\\!", "").replace("{,}", "")
    s = _SPACING.sub("", s)
    s = _UNIT_WORDS.sub("", s)
    s = _ARTICLE.sub("", s)
    s = s.replace(".$", "$").replace("\\$", "")
    s = re.sub(r"\s+", "", s)
    s = s.replace(",\\text{and}", ",").replace("\\text{and}", ",").replace("\\text{m}", "\\text{}")
    for expr in _REMOVED:
        s = s.replace(expr, "")
    if s.count("$") >= 2:  # Minerva's re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", s) in linear time
        s = "$" + s.split("$", 2)[1] + "$"
    for wrapper in ("text", "textbf", "overline"):
        s = re.sub(rf"(\\{wrapper}\{{)(.*?)(\}})", r"\2", s)
    s = re.sub(r"(\\boxed\{)(.*)(\})", r"\2", s)
    s = re.sub(r"(frac)([^{])(.)", r"frac{\2}{\3}", s)
    s = re.sub(r"(sqrt)(?!\[)([^{])", r"sqrt{\2}", s)
    s = s.replace("$", "").rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    return _canonical_number(s)


def _math_equal(response: str, ground_truth: str) -> bool:
    if not ground_truth.strip():
        raise VerificationError("it is empty")
    answer = extract_math_answer(response)
    return answer is not None and normalize_final_answer(answer) == normalize_final_answer(ground_truth)


def math_verify_equivalent(response: str, ground_truth: str) -> bool | None:
    """Second opinion from HF ``math_verify`` (``parse`` + ``verify``), for the record only.

    None when the package is missing, the gold answer does not parse, or it raises or times out
    (5 s via SIGALRM in the main thread, as in a scoring worker; elsewhere only the caller's
    budget bounds it). math-verify's ``TimeoutException`` is a ``BaseException``: caught too.
    """
    try:
        from math_verify import parse
        from math_verify import verify as mv_verify
    except ImportError:
        return None
    limit = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(f"${ground_truth}$", parsing_timeout=limit, raise_on_error=True)
        if not gold:
            return None
        target = parse(response, parsing_timeout=limit, raise_on_error=True)
        return bool(mv_verify(gold, target, timeout_seconds=limit, raise_on_error=True))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - any failure of the second opinion (a timeout too) is "no opinion"
        return None


def warm_up() -> None:
    """Load what the first verification would (math-verify's grammar, langdetect's profiles), so a
    scoring worker does it before an item's budget starts (:mod:`tulu_lib.evals.bounded`)."""
    import langdetect

    math_verify_equivalent("$1$", "1")
    langdetect.detect("warm up the language profiles")


# --- IF ---------------------------------------------------------------------------------------

def _ifeval_ok(response: str, ground_truth: str) -> bool:
    try:
        spec = json.loads(ground_truth)
    except json.JSONDecodeError as e:
        raise VerificationError(f"not valid JSON ({e}): {ground_truth!r:.200}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("func_name"), str):
        raise VerificationError(
            f"expected a JSON object with a string 'func_name', got {ground_truth!r:.200}")
    kwargs = {k: v for k, v in spec.items() if k != "func_name"}
    try:
        return ifeval_checks.check_constraint(spec["func_name"], response, kwargs)
    except ifeval_checks.ConstraintError as e:
        raise VerificationError(str(e)) from None


# --- open-instruct's rules (9b39f557), quirks included ------------------------------------------
# ``rules="open_instruct"``: what ``open_instruct/ground_truth_utils.py`` (verify_gsm8k_sample,
# verify_math_sample, verify_ifeval_sample) and ``open_instruct/math_utils.py`` decide.

_OI_REPLY_START = "<|assistant|>\n"


def _oi_reply(model_output: str) -> str:
    """ground_truth_utils.py (every verify_*): the text after the last ``<|assistant|>\\n``, stripped."""
    return model_output.split(_OI_REPLY_START)[-1].strip()


def _oi_gsm8k(response: str, ground_truth: str) -> bool:
    r"""ground_truth_utils.py:verify_gsm8k_sample.

    ``digit,digit`` joined (non-overlapping: ``1,2,3`` -> ``12,3``), the last match of
    ``[-+]?\d*\.\d+|\d+`` (an integer loses its sign: ``-18`` -> ``18``; ``-1.5`` keeps it), else
    the whole reply; compared as lower-cased strings, not stripped and not as numbers, so
    ``18.00`` != ``18``.
    """
    text = re.sub(r"(\d),(\d)", r"\1\2", _oi_reply(response))
    numbers = re.findall(r"[-+]?\d*\.\d+|\d+", text)
    prediction = numbers[-1] if numbers else text
    return str(prediction).lower() == str(ground_truth).lower()


def _oi_last_boxed(string: str) -> str | None:
    """math_utils.py:last_boxed_only_string + remove_boxed (None where remove_boxed asserts).

    A ``\\boxed `` (with a space) anywhere wins: the text after the last one up to a ``$``.
    Otherwise the brace-balanced span from the last ``\\boxed`` (else ``\\fbox``); only a
    ``\\boxed{...}`` span survives remove_boxed, so ``\\fbox{5}`` gives None.
    """
    if "\\boxed " in string:
        return string.split("\\boxed ")[-1].split("$")[0]
    idx = string.rfind("\\boxed")
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return None
    depth = 0
    for i in range(idx, len(string)):
        depth += (string[i] == "{") - (string[i] == "}")
        if string[i] == "}" and depth == 0:
            span = string[idx:i + 1]
            return span[len("\\boxed{"):-1] if span.startswith("\\boxed{") else None
    return None


def _oi_minerva_answer(text: str) -> str:
    """math_utils.py:get_unnormalized_answer — "Final Answer: The final answer is X. I hope it is
    correct." (``.`` unescaped; the hope phrase appended first), else ``[invalidanswer]``."""
    match = re.search(r"Final Answer: The final answer is(.*?). I hope it is correct.",
                      text + "I hope it is correct.")
    return match.group(1).strip() if match else "[invalidanswer]"


_OI_SUBSTITUTIONS = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)
_OI_REMOVED = (
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units",
    "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm",
    "pounds", "meters", "meals", "edges", "students", "childrentickets", "multiples", "\\text{s}",
    "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}",
    "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots",
)


def oi_normalize_final_answer(final_answer: str) -> str:
    """math_utils.py:normalize_final_answer — Minerva's normalization as the release has it.

    Plain substring edits, so words are cut inside others ("ft" out of ``\\left`` gives
    ``\\le``, "a " out of "pizza " ...); ``18.00`` stays ``18.00``.
    """
    s = final_answer.split("=")[-1]
    for before, after in _OI_SUBSTITUTIONS:
        s = s.replace(before, after)
    for expr in _OI_REMOVED:
        s = s.replace(expr, "")
    s = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", s)
    for wrapper in ("text", "textbf", "overline"):
        s = re.sub(rf"(\\{wrapper}\{{)(.*?)(\}})", "\\2", s)
    s = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", s)
    s = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", s)
    s = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", s)
    s = s.replace("$", "")
    if s.replace(",", "").isdigit():
        s = s.replace(",", "")
    return s


def _oi_parse_latex(text: str):
    """sympy's ANTLR LaTeX parser (``sympy.parsing.latex.parse_latex``, strict=False).

    The release pins sympy 1.12 with antlr4-python3-runtime 4.11; this venv has a newer runtime,
    which sympy's ``parse_latex`` refuses by version number alone. The generated 4.11 parser runs
    on it, so we drive sympy's own lexer/parser/converter directly (the runtime's version-mismatch
    notice, printed to stdout, is swallowed).
    """
    import contextlib
    import io

    import antlr4
    from sympy.parsing.latex import _parse_latex_antlr as antlr_latex

    text = text.strip()
    listener = antlr_latex.MathErrorListener(text)
    with contextlib.redirect_stdout(io.StringIO()):
        lexer = antlr_latex.LaTeXLexer(antlr4.InputStream(text))
        lexer.removeErrorListeners()
        lexer.addErrorListener(listener)
        parser = antlr_latex.LaTeXParser(antlr4.CommonTokenStream(lexer))
        parser.removeErrorListeners()
        parser.addErrorListener(listener)
        return antlr_latex.convert_relation(parser.math().relation())


class _Timeout(Exception):
    pass


def oi_is_equiv(x1: str, x2: str, seconds: int = 5) -> bool:
    """math_utils.py:is_equiv — parse both with sympy's LaTeX parser, equal when
    ``sympy.simplify(a - b) == 0``; any failure (parse, subtraction, timeout) is False.

    The release's 5 s SIGALRM limit applies in the main thread only (signals need it).
    """
    import signal

    import sympy

    def on_alarm(signum, frame):
        raise _Timeout

    use_alarm = threading.current_thread() is threading.main_thread()
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(seconds)
    try:
        diff = _oi_parse_latex(x1) - _oi_parse_latex(x2)
        return bool(sympy.simplify(diff) == 0)
    except Exception:  # noqa: BLE001 - the release maps every failure to "not equivalent"
        return False
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


def _oi_fix_fracs(string: str) -> str:
    """math_utils.py:fix_fracs — ``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{2}`` -> ``\\frac{1}{2}``;
    IndexError on ``\\frac`` at the very end (as in the release)."""
    head, *rest = string.split("\\frac")
    out = head
    for sub in rest:
        out += "\\frac"
        if sub[0] == "{":
            out += sub
        elif len(sub) < 2:
            return string
        elif sub[1] != "{":
            out += "{" + sub[0] + "}{" + sub[1] + "}" + sub[2:]
        else:
            out += "{" + sub[0] + "}" + sub[1:]
    return out


def _oi_fix_a_slash_b(string: str) -> str:
    """math_utils.py:fix_a_slash_b — ``3/4`` -> ``\\frac{3}{4}``; a non-integer side raises
    ValueError (the release only catches AssertionError), so hendrycks_is_equiv then compares
    the raw strings."""
    parts = string.split("/")
    if len(parts) != 2:
        return string
    a, b = int(parts[0]), int(parts[1])
    return f"\\frac{{{a}}}{{{b}}}" if string == f"{a}/{b}" else string


def _oi_fix_sqrt(string: str) -> str:
    """math_utils.py:fix_sqrt — ``\\sqrt3`` -> ``\\sqrt{3}``; IndexError on a trailing ``\\sqrt``."""
    head, *rest = string.split("\\sqrt")
    return head + "".join("\\sqrt" + s if s[0] == "{" else "\\sqrt{" + s[0] + "}" + s[1:] for s in rest)


def oi_strip_string(string: str) -> str:
    """math_utils.py:strip_string — Hendrycks' MATH normalization (may raise, as the release's)."""
    for before, after in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"),
                          ("dfrac", "frac"), ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""),
                          ("^\\circ", ""), ("\\$", "")):
        string = string.replace(before, after)
    if "\\text{ " in string:  # remove_right_units
        splits = string.split("\\text{ ")
        if len(splits) != 2:
            raise AssertionError("remove_right_units")
        string = splits[0]
    string = string.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2 and len(string.split("=")[0]) <= 2:
        string = string.split("=")[1]
    string = _oi_fix_fracs(_oi_fix_sqrt(string).replace(" ", ""))
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _oi_fix_a_slash_b(string)


def oi_hendrycks_is_equiv(str1: str, str2: str) -> bool:
    """math_utils.py:hendrycks_is_equiv — strip_string on both and compare; if either raises,
    the raw strings are compared."""
    try:
        return oi_strip_string(str1) == oi_strip_string(str2)
    except Exception:  # noqa: BLE001 - the release's bare fallback
        return str1 == str2


def oi_math_candidates(response: str) -> list[str]:
    """ground_truth_utils.py:verify_math_sample's answers, in its order.

    The last ``\\boxed{}`` content (NOT normalized) and the Minerva "final answer is" answer
    (normalized); only if neither exists, the normalized text between the last two ``$``; and
    only if that is missing too, the whole normalized reply.
    """
    reply = _oi_reply(response)
    answers = []
    boxed = _oi_last_boxed(reply)
    if boxed is not None:
        answers.append(boxed)
    minerva = oi_normalize_final_answer(_oi_minerva_answer(reply))
    if minerva != "[invalidanswer]":
        answers.append(minerva)
    if not answers:
        dollars = [m.start() for m in re.finditer(r"\$", reply)]
        if len(dollars) > 1:
            answers.append(oi_normalize_final_answer(reply[dollars[-2] + 1:dollars[-1]]))
    if not answers:
        answers.append(oi_normalize_final_answer(reply))
    return answers


def _oi_math(response: str, ground_truth: str) -> bool:
    """ground_truth_utils.py:verify_math_sample — correct when ANY candidate is ``is_equiv`` or
    ``hendrycks_is_equiv`` to the (un-normalized) ground truth."""
    return any(oi_is_equiv(a, ground_truth) or oi_hendrycks_is_equiv(a, ground_truth)
               for a in oi_math_candidates(response))


def _oi_ifeval(response: str, ground_truth: str) -> bool:
    """ground_truth_utils.py:verify_ifeval_sample — the release's function by ``func_name``,
    None kwargs dropped, its return value taken as truthy (a tuple always is).

    A JSON object without ``func_name`` is False (the release warns and returns False). Where the
    release would raise while checking the reply (langdetect on a reply without letters, a
    ``letter`` of two characters, ``i`` past the last paragraph) and crash the step, we score 0.
    """
    try:
        spec = json.loads(ground_truth)
    except json.JSONDecodeError as e:
        raise VerificationError(f"not valid JSON ({e}): {ground_truth!r:.200}") from None
    if not isinstance(spec, dict):
        raise VerificationError(f"expected a JSON object, got {ground_truth!r:.200}")
    if "func_name" not in spec:
        return False
    kwargs = {k: v for k, v in spec.items() if k != "func_name"}
    try:
        return bool(ifeval_checks.check_constraint_release(spec["func_name"], _oi_reply(response), kwargs))
    except ifeval_checks.ConstraintError as e:
        raise VerificationError(str(e)) from None
    except Exception:  # noqa: BLE001 - the release would raise here; see the docstring
        return False


# --- entry points -----------------------------------------------------------------------------

RULES = ("open_instruct", "corrected")
"""``verify(rules=...)``: the release's verifiers as they are, or this repo's corrected ones."""

_VERIFIERS = {
    "corrected": {"gsm8k": _gsm8k_equal, "MATH": _math_equal, "ifeval": _ifeval_ok},
    "open_instruct": {"gsm8k": _oi_gsm8k, "MATH": _oi_math, "ifeval": _oi_ifeval},
}
_ALIASES = {name.lower(): name for name in DATASETS}


def verify(dataset: str, response: str, ground_truth: str, *, row_id: object = None,
           rules: str = "corrected", timeout_s: float | None = bounded.DEFAULT_TIMEOUT_S) -> bool:
    """Whether ``response`` is correct for a row with this ``dataset`` and ``ground_truth``.

    ``rules="corrected"`` (default): this repo's verifiers. ``rules="open_instruct"``: the
    release's (open-instruct 9b39f557 ``ground_truth_utils.py``), quirks included — GSM8K drops an
    integer's sign and compares strings, MATH accepts any flex candidate that sympy or Hendrycks
    judges equal, IF constraints use the release functions (``validate_placeholders`` always
    passes, ``validate_choice`` looks for the reply inside an option).

    Raises :class:`VerificationError` (naming dataset, row and problem) for an unknown dataset or
    a malformed ground truth; ``row_id`` only labels the message. A reply that overruns
    ``timeout_s`` (None: no budget) or makes the checker raise is False, logged and counted
    (see the module docstring; :func:`verify_outcome` tells these apart).
    """
    return verify_outcome(dataset, response, ground_truth, row_id=row_id, rules=rules,
                          timeout_s=timeout_s).value is True


def verify_outcome(dataset: str, response: str, ground_truth: str, *, row_id: object = None,
                   rules: str = "corrected", timeout_s: float | None = bounded.DEFAULT_TIMEOUT_S,
                   ) -> bounded.Outcome:
    """:func:`verify` as a :class:`~tulu_lib.evals.bounded.Outcome`: ``status`` ok (``value``:
    the verdict), timeout or error (``error``: what the checker raised), for callers that count.

    Usage: ``outcome = verify_outcome("MATH", reply, "4"); outcome.status, outcome.value``.
    """
    if rules not in _VERIFIERS:
        raise ValueError(f"rules must be one of {RULES}, got {rules!r}")
    where = f"row {row_id!r} " if row_id is not None else ""
    name = _ALIASES.get(str(dataset).strip().lower())
    if name is None:
        raise VerificationError(f"{where}has unknown dataset {dataset!r}; expected one of {DATASETS}")
    if not isinstance(ground_truth, str):
        raise VerificationError(
            f"{name} {where}ground truth must be a string, got {type(ground_truth).__name__}")
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, got {type(response).__name__}")
    return bounded.run(_verified, rules, name, where, bounded.tail(response), ground_truth,
                       timeout_s=timeout_s, label=f"{name} {where}".strip(), reraise=(VerificationError,))


def _verified(rules: str, name: str, where: str, response: str, ground_truth: str) -> bool:
    """The verdict of the ``rules`` verifier of dataset ``name`` (what :func:`verify_outcome` bounds)."""
    try:
        return bool(_VERIFIERS[rules][name](response, ground_truth))
    except VerificationError as e:
        raise VerificationError(f"{name} {where}has a malformed ground truth: {e}") from None


def reward(
    dataset: str,
    response: str,
    ground_truth: str,
    *,
    finished: bool = True,
    alpha: float = 10.0,
    non_eos_penalty: float = -10.0,
    row_id: object = None,
    rules: str = "corrected",
    timeout_s: float | None = bounded.DEFAULT_TIMEOUT_S,
) -> float:
    """The RLVR reward: ``alpha`` if verified else 0.0; ``non_eos_penalty`` if not ``finished``.

    The row is verified (under ``rules`` within ``timeout_s``, see :func:`verify`) even when
    unfinished, so a malformed row raises either way; a reply that times out or crashes the
    checker earns 0 (counted, never an abort).
    """
    correct = verify(dataset, response, ground_truth, row_id=row_id, rules=rules, timeout_s=timeout_s)
    if not finished:
        return non_eos_penalty
    return alpha if correct else 0.0


def disagreements(rows) -> list[dict]:
    """Rows where ``rules="open_instruct"`` and ``rules="corrected"`` decide differently.

    ``rows``: ``(dataset, response, ground_truth)`` tuples or mappings with those keys. Returns one
    dict per disagreeing row — ``index``, ``dataset``, ``response``, ``ground_truth``,
    ``open_instruct``, ``corrected`` (True / False, or the error text when that rule set raised
    :class:`VerificationError`) — in input order, ready for ``pandas.DataFrame``.
    """
    out = []
    for index, row in enumerate(rows):
        if isinstance(row, dict):
            row = (row["dataset"], row["response"], row["ground_truth"])
        dataset, response, ground_truth = row
        verdicts = {}
        for rules in RULES:
            try:
                verdicts[rules] = verify(dataset, response, ground_truth, rules=rules)
            except VerificationError as e:
                verdicts[rules] = f"error: {e}"
        if verdicts["open_instruct"] != verdicts["corrected"]:
            out.append({"index": index, "dataset": dataset, "response": response,
                        "ground_truth": ground_truth, **verdicts})
    return out
