"""The claim map: every testable claim of the seed notes, and the verdicts that test it.

``notebooks/claims.json`` lists each claim of the four seed notes (``shared/seeds/``) that an
experiment here can test: a short phrase quoted from the note, how the verdicts read it, and
the verdict keys (a notebook and a key of ``notebooks/results/<notebook>.json``) that test it.
Statements judged not testable here are listed apart, each with the reason.

``python notebooks/claims.py`` rewrites the generated claim-map block of
``notebooks/README.md`` from that file and the results; ``tests/test_claims.py`` checks that
every claim maps to at least one existing verdict, that the block is up to date, and (where
the seed notes are on disk) that every quoted phrase is in its note.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent


def _load_evidence() -> Any:
  """``evidence.py`` beside this file (imported once; ``sys.path`` is left as it is)."""
  if "evidence" in sys.modules:
    return sys.modules["evidence"]
  spec = importlib.util.spec_from_file_location("evidence", HERE / "evidence.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules["evidence"] = module
  spec.loader.exec_module(module)
  return module


evidence = _load_evidence()

CLAIMS = HERE / "claims.json"
BEGIN, END = "<!-- claims:begin", "<!-- claims:end -->"


def load(path: str | os.PathLike = CLAIMS) -> dict[str, Any]:
  """The claim map as saved: ``{"note", "claims", "not_tested"}``."""
  return json.loads(pathlib.Path(path).read_text())


def verdict_index(directory: str | os.PathLike = evidence.RESULTS
                  ) -> dict[tuple[str, str], dict[str, Any]]:
  """Every saved verdict row, by ``(notebook, key)``."""
  index = {}
  for path in sorted(pathlib.Path(directory).glob("*.json")):
    data = json.loads(path.read_text())
    for row in data["findings"]:
      index[(data["notebook"], row["key"])] = row
  return index


def unresolved(claims: Sequence[Mapping[str, Any]],
               index: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[str]:
  """Problems of the map: a claim without verdicts, naming a verdict that does not exist, or
  resting on implementation checks alone (a value fixed by construction is no verdict on a
  claim) unless the claim itself says why it is settled by construction
  (``"settled_by_construction": "why"``: the claim states what the arithmetic of the
  method already decides, and the check measures it)."""
  problems = []
  for claim in claims:
    if not claim["verdicts"]:
      problems.append(f"{claim['id']}: no verdict")
      continue
    found = [index.get((v["notebook"], v["key"])) for v in claim["verdicts"]]
    for v, row in zip(claim["verdicts"], found, strict=True):
      if row is None:
        problems.append(f"{claim['id']}: {v['notebook']} has no verdict {v['key']!r}")
    if all(row is not None for row in found) and not claim.get(
        "settled_by_construction") and not any(row["kind"] == "finding" for row in found):
      problems.append(f"{claim['id']}: only implementation checks, no finding")
  return problems


def normalise(text: str) -> str:
  """Text for matching a quote: Markdown emphasis dropped, whitespace collapsed, lower case."""
  return re.sub(r"\s+", " ", text.replace("*", "")).strip().lower()


def seeds_directory() -> pathlib.Path | None:
  """``$REGJAX_SEEDS``, else the first ``shared/seeds`` above this folder; None if absent."""
  if os.environ.get("REGJAX_SEEDS"):
    return pathlib.Path(os.environ["REGJAX_SEEDS"])
  for parent in HERE.parents:
    if (parent / "shared" / "seeds").is_dir():
      return parent / "shared" / "seeds"
  return None


def _cell(text: str) -> str:
  return text.replace("|", "\\|").replace("\n", " ")


def _short_notebook(name: str) -> str:
  return name.split("_", 1)[0]


def _verdict_text(row: Mapping[str, Any] | None) -> str:
  if row is None:
    return "**missing**"
  return row["verdict"] + (" (*check*)" if row["kind"] != "finding" else "")


def claims_table(path: str | os.PathLike = CLAIMS,
                 directory: str | os.PathLike = evidence.RESULTS) -> str:
  """The generated claim-map block of ``notebooks/README.md``."""
  data, index = load(path), verdict_index(directory)
  claims = data["claims"]
  covered = sum(1 for c in claims
                if c["verdicts"] and all((v["notebook"], v["key"]) in index
                                         for v in c["verdicts"]))
  lines = [f"{len(claims)} testable claims in the four seed notes; {covered} of them map to "
           "verdicts that exist in `results/`. Verdict words are read from the results files "
           "(`notebook key: verdict`; *check* marks an implementation check, a value fixed by "
           "construction, listed for context).", "",
           "| seed | claim (quoted) | how it is read | verdicts |", "|---|---|---|---|"]
  for claim in claims:
    verdicts = "; ".join(
        f"{_short_notebook(v['notebook'])} `{v['key']}`: "
        + _verdict_text(index.get((v["notebook"], v["key"]))) for v in claim["verdicts"]
    ) or "**none**"
    if claim.get("settled_by_construction"):
      verdicts += f" (settled by construction: {claim['settled_by_construction']})"
    lines.append(f"| {claim['seed'][:3]} | “{_cell(claim['quote'])}” | {_cell(claim['reading'])}"
                 f" | {_cell(verdicts)} |")
  lines += ["", "Not tested here:", ""]
  lines += [f"- {item['seed'][:3]}: “{item['quote']}”: {item['why']}."
            for item in data["not_tested"]]
  return (f"{BEGIN} (generated by `python notebooks/claims.py` from `claims.json`) -->\n"
          + "\n".join(lines) + f"\n{END}")


def update_readme(readme: pathlib.Path = HERE / "README.md") -> bool:
  """Replace the claim-map block of the README; returns whether it changed."""
  text = readme.read_text()
  if BEGIN not in text or END not in text:
    raise ValueError(f"{readme} has no claim-map block ({BEGIN} ... {END}).")
  head, rest = text.split(BEGIN, 1)
  new = head + claims_table() + rest.split(END, 1)[1]
  if new != text:
    readme.write_text(new)
  return new != text


if __name__ == "__main__":
  changed = update_readme()
  print("notebooks/README.md claim map", "updated" if changed else "already up to date",
        file=sys.stderr)
