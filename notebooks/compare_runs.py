"""Compares the verdicts of two sets of results files (two full-size runs).

Usage: ``python notebooks/compare_runs.py FIRST_DIR SECOND_DIR`` prints, per notebook, the
verdicts that differ between the runs (and how many agree) as Markdown, for the
"Re-run stability" section of ``notebooks/README.md``.
"""

import json
import pathlib
import sys


def load_dir(directory: pathlib.Path) -> dict[str, dict[str, dict]]:
  """``{notebook: {key: finding}}`` of every results file in ``directory``."""
  runs = {}
  for path in sorted(directory.glob("*.json")):
    data = json.loads(path.read_text())
    runs[data["notebook"]] = {row["key"]: row for row in data["findings"]}
  return runs


def compare(first: dict, second: dict) -> tuple[list[str], int, int, int]:
  """Markdown rows of the verdicts that differ; the numbers compared, agreeing, identical."""
  rows, compared, same, identical = [], 0, 0, 0
  for notebook in sorted(set(first) & set(second)):
    a, b = first[notebook], second[notebook]
    for key in sorted(set(a) & set(b)):
      compared += 1
      identical += a[key]["interval"] == b[key]["interval"]
      if a[key]["verdict"] == b[key]["verdict"]:
        same += 1
        continue
      ia, ib = a[key]["interval"], b[key]["interval"]
      rows.append(f"| {notebook} | {a[key]['claim']} | {a[key]['verdict']} "
                  f"({ia['mean']:.4g} [{ia['low']:.4g}, {ia['high']:.4g}]) | "
                  f"{b[key]['verdict']} ({ib['mean']:.4g} [{ib['low']:.4g}, {ib['high']:.4g}]) "
                  f"| {'yes' if a[key]['fragile'] or b[key]['fragile'] else 'no'} |")
  return rows, compared, same, identical


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise SystemExit("usage: python notebooks/compare_runs.py FIRST_DIR SECOND_DIR")
  first, second = (load_dir(pathlib.Path(a)) for a in argv)
  rows, compared, same, identical = compare(first, second)
  print(f"{same} of {compared} verdicts agree between the two runs "
        f"({', '.join(sorted(set(first) & set(second)))}); {identical} of {compared} "
        "intervals are bit-identical.")
  if rows:
    print("\n| notebook | claim | first run | second run | flagged fragile |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
  main(sys.argv[1:])
