"""Evidence for the research notebooks: intervals, verdicts, and one source of truth.

A notebook measures a quantity per seed (or per fold), turns the samples into a 95 %
interval, and reads a verdict from where the interval lies against a tolerance:

- ``"holds"``: the whole interval is on the claim's side of the tolerance;
- ``"fails"``: the whole interval is on the other side;
- ``"inconclusive"``: the interval straddles it.

Every verdict is also recomputed over a range of tolerances; a verdict that changes
inside that range is flagged ``fragile``. :class:`Findings` collects the verdicts of
one notebook and writes them to ``notebooks/results/<notebook>.json``: the README's
verdict table and the numbers quoted in conclusions are generated from those files
(``python notebooks/evidence.py`` rewrites the table), and ``tests/test_notebooks.py``
checks that nothing drifted. Quick runs (``REGJAX_QUICK=1``) write beside the notebook's
working directory instead, so a test never overwrites the stored full-size results.

Kinds of rows: ``"finding"`` (a claim tested by an experiment) and
``"implementation check"`` (true by construction, e.g. a slope fixed by the algebra, or
a Monte Carlo expectation): they are shown apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import sys
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats

HERE = pathlib.Path(__file__).resolve().parent
# Full-size results go here; REGJAX_RESULTS points a scratch re-run elsewhere.
RESULTS = pathlib.Path(os.environ.get("REGJAX_RESULTS", HERE / "results"))
QUICK = os.environ.get("REGJAX_QUICK") == "1"
SIDES = ("above", "below")


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean with a two-sided confidence interval from ``n`` samples."""

  mean: float
  low: float
  high: float
  n: int
  level: float = 0.95

  def __str__(self) -> str:
    return f"{self.mean:.4g} [{self.low:.4g}, {self.high:.4g}]"


def t_interval(samples: Iterable[float], level: float = 0.95) -> Interval:
  """Student-t interval for the mean of independent samples (seeds or folds)."""
  values = np.asarray(list(samples), dtype=np.float64)
  if values.ndim != 1 or values.size < 2:
    raise ValueError(f"`samples` needs at least 2 values, got shape {values.shape}.")
  if not np.all(np.isfinite(values)):
    raise ValueError("`samples` holds NaN or Inf; drop failed runs explicitly first.")
  mean = float(values.mean())
  half = float(stats.t.ppf(0.5 + level / 2, values.size - 1)
               * values.std(ddof=1) / math.sqrt(values.size))
  return Interval(mean, mean - half, mean + half, int(values.size), level)


def exact(value: float) -> Interval:
  """A computed quantity with no sampling noise (a worked example, a count): n = 1."""
  value = float(value)
  return Interval(value, value, value, 1)


def paired_interval(a: Iterable[float], b: Iterable[float], level: float = 0.95) -> Interval:
  """t interval for the mean of ``a - b`` over the same seeds/splits (a paired design)."""
  a, b = np.asarray(list(a), np.float64), np.asarray(list(b), np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired samples need equal shapes, got {a.shape} and {b.shape}.")
  return t_interval(a - b, level)


def bootstrap_interval(samples: Iterable[float], statistic=np.mean, level: float = 0.95,
                       resamples: int = 10_000, seed: int = 0) -> Interval:
  """Percentile bootstrap interval of ``statistic`` (for medians, ratios, shares)."""
  values = np.asarray(list(samples), dtype=np.float64)
  if values.size < 2:
    raise ValueError("`samples` needs at least 2 values.")
  rng = np.random.default_rng(seed)
  draws = statistic(values[rng.integers(0, values.size, (resamples, values.size))], axis=1)
  low, high = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2])
  return Interval(float(statistic(values)), float(low), float(high), int(values.size), level)


def verdict(interval: Interval, tolerance: float, side: str = "above") -> str:
  """``holds``/``fails``/``inconclusive`` from where ``interval`` lies against ``tolerance``.

  Args:
    interval: the measured quantity's interval.
    tolerance: the threshold the claim is read against.
    side: ``"above"`` when the claim says the quantity exceeds ``tolerance``,
      ``"below"`` when it says it stays under it.
  """
  if side not in SIDES:
    raise ValueError(f"`side` must be one of {SIDES}, got {side!r}.")
  low, high = interval.low, interval.high
  if side == "below":
    low, high, tolerance = -high, -low, -tolerance
  if low > tolerance:
    return "holds"
  if high < tolerance:
    return "fails"
  return "inconclusive"


def verdicts_over(interval: Interval, tolerances: Sequence[float], side: str = "above"
                  ) -> dict[float, str]:
  """The verdict at each tolerance of a range, to see whether it depends on the cut."""
  return {float(t): verdict(interval, t, side) for t in tolerances}


@dataclasses.dataclass
class Finding:
  key: str
  claim: str
  interval: Interval
  tolerance: float
  side: str
  verdict: str
  tolerances: dict[float, str]
  fragile: bool
  kind: str
  unit: str = ""
  note: str = ""


class Findings:
  """The verdicts of one notebook, printed as a table and saved as its results file."""

  def __init__(self, notebook: str):
    self.notebook = notebook
    self.rows: list[Finding] = []
    self.values: dict[str, object] = {}
    self.papers: list[dict[str, str]] = []

  def add(self, key: str, claim: str, interval: Interval, tolerance: float, *,
          side: str = "above", tolerances: Sequence[float] | None = None,
          kind: str = "finding", unit: str = "", note: str = "") -> Finding:
    """Record one verdict; ``tolerances`` defaults to ``tolerance`` × {0.5, 1, 2}."""
    if kind not in ("finding", "implementation check"):
      raise ValueError(f"`kind` must be 'finding' or 'implementation check', got {kind!r}.")
    if tolerances is None:
      tolerances = sorted({tolerance * 0.5, tolerance, tolerance * 2}) if tolerance else [0.0]
    over = verdicts_over(interval, tolerances, side)
    row = Finding(key, claim, interval, float(tolerance), side,
                  verdict(interval, tolerance, side), over, len(set(over.values())) > 1,
                  kind, unit, note)
    self.rows = [r for r in self.rows if r.key != key] + [row]
    return row

  def value(self, key: str, value: object) -> object:
    """Record a number that prose quotes, so the prose is generated from it."""
    self.values[key] = _plain(value)
    return value

  def paper(self, what: str, paper: str, theirs: str, ours: str, setting: str) -> None:
    """One row of the 'papers side by side' table."""
    self.papers.append(dict(what=what, paper=paper, theirs=theirs, ours=ours,
                            setting=setting))

  def __getitem__(self, key: str) -> Finding:
    return next(r for r in self.rows if r.key == key)

  def table(self) -> str:
    """The verdict lines, findings first, then implementation checks."""
    return "\n".join(verdict_lines(_plain([dataclasses.asdict(r) for r in self.rows])))

  def save(self, directory: str | os.PathLike | None = None) -> pathlib.Path:
    """Write ``<notebook>.json``: to ``notebooks/results`` at full size, else ``directory``."""
    if directory is None:
      directory = pathlib.Path.cwd() / "quick-results" if QUICK else RESULTS
    path = pathlib.Path(directory) / f"{self.notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(notebook=self.notebook, quick=QUICK,
                   findings=[_plain(dataclasses.asdict(r)) for r in self.rows],
                   values=self.values, papers=self.papers)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def _plain(value):
  if isinstance(value, dict):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, (np.generic, np.ndarray)):
    return _plain(value.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # "inf", "-inf" or "nan": JSON has no such numbers
  return value


def verdict_line(row: dict) -> str:
  """One printed verdict line of a finding, from its saved (JSON) form.

  Numbers go through ``float``: a non-finite one is saved as the string "nan"/"inf".
  """
  i = row["interval"]
  interval = f"{float(i['mean']):.4g} [{float(i['low']):.4g}, {float(i['high']):.4g}]"
  flag = "  (fragile: changes within tolerances " + ", ".join(
      f"{float(t):g}→{v}" for t, v in sorted(row["tolerances"].items(),
                                             key=lambda item: float(item[0]))) + ")" \
      if row["fragile"] else ""
  cmp = ">" if row["side"] == "above" else "<"
  return (f"  [{row['verdict'].upper():>12}] {row['claim']}: {interval}{row['unit']} "
          f"(n={i['n']}), claim {cmp} {float(row['tolerance']):g}{flag}")


def verdict_lines(rows: Sequence[dict]) -> list[str]:
  """Headed verdict lines (findings, then implementation checks) of saved findings."""
  lines = []
  for kind in ("finding", "implementation check"):
    chosen = [r for r in rows if r["kind"] == kind]
    if chosen:
      lines.append(f"{kind.capitalize()}s:")
      lines += [verdict_line(r) for r in chosen]
  return lines


def by_seed(result, metric: str, **conditions) -> np.ndarray:
  """``metric`` of the rows of a sweep result meeting ``conditions``, ordered by seed.

  Two calls with the same seeds give arrays that pair run by run (a paired design).
  """
  rows = result.filter(**conditions) if conditions else result
  order = np.argsort(np.asarray(rows["seed"]), kind="stable")
  return np.asarray(rows[metric], dtype=np.float64)[order]


def load(notebook: str, directory: str | os.PathLike = RESULTS) -> dict:
  return json.loads((pathlib.Path(directory) / f"{notebook}.json").read_text())


def _cell(text: str) -> str:
  """Text for one Markdown table cell: a literal ``|`` (as in ``|w|``) is escaped."""
  return text.replace("|", "\\|")


def readme_table(directory: str | os.PathLike = RESULTS) -> str:
  """The verdict lines and the papers table of ``notebooks/README.md``, from the results."""
  lines = ["| notebook | kind | claim | 95 % interval (n) | tolerance | verdict |",
           "|---|---|---|---|---|---|"]
  papers = ["| notebook | what | paper | theirs | ours | setting |", "|---|---|---|---|---|---|"]
  for path in sorted(pathlib.Path(directory).glob("*.json")):
    data = json.loads(path.read_text())
    for r in data["findings"]:
      i = r["interval"]
      cmp = ">" if r["side"] == "above" else "<"
      flag = " (fragile)" if r["fragile"] else ""
      lines.append(f"| {data['notebook']} | {r['kind']} | {_cell(r['claim'])} | "
                   f"{float(i['mean']):.4g} [{float(i['low']):.4g}, "
                   f"{float(i['high']):.4g}]{r['unit']} ({i['n']}) | "
                   f"{cmp} {float(r['tolerance']):g} | {r['verdict']}{flag} |")
    for p in data.get("papers", []):
      papers.append("| " + " | ".join(_cell(str(v)) for v in (
          data["notebook"], p["what"], p["paper"], p["theirs"], p["ours"], p["setting"])) + " |")
  return ("<!-- verdicts:begin (generated by `python notebooks/evidence.py`) -->\n"
          + "\n".join(lines) + "\n\n### Papers side by side\n\n" + "\n".join(papers)
          + "\n<!-- verdicts:end -->")


def update_readme(readme: pathlib.Path = HERE / "README.md") -> bool:
  """Replace the generated block of the README; returns whether it changed."""
  text = readme.read_text()
  begin, end = "<!-- verdicts:begin", "<!-- verdicts:end -->"
  if begin not in text or end not in text:
    raise ValueError(f"{readme} has no generated block ({begin} ... {end}).")
  head, rest = text.split(begin, 1)
  tail = rest.split(end, 1)[1]
  new = head + readme_table() + tail
  if new != text:
    readme.write_text(new)
  return new != text


if __name__ == "__main__":
  changed = update_readme()
  print("notebooks/README.md", "updated" if changed else "already up to date", file=sys.stderr)
