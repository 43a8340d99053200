"""`make dist-check`: the wheel works away from the repository.

1. ``python -m build`` makes an sdist and a wheel of the checkout (in a temporary folder);
2. the sdist must hold LICENSE, README.md and pyproject.toml; the wheel must hold
   ``regjax/py.typed``, the embedded digits, the license, the PEP 639 license
   expression, and no tests, notebooks, benchmarks or docs;
3. the wheel (with the ``plots`` extra) goes into a fresh venv in a temporary folder
   outside the checkout, and ``regjax sweep`` runs there with few steps; the table,
   the CSV files and the plots must be written.

It prints where it ran and what it found, and exits non-zero on the first failure.
It needs PyPI (the build backend and the dependencies; pip's cache serves most).
"""

from __future__ import annotations

import argparse
import email
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["sweep", "--steps", "40", "--segments", "2", "--seeds", "1", "--grid", "-4:-2:3",
         "--width", "16", "--depth", "1", "--no-progress", "--out", "out"]
OUTPUTS = ["sweep.csv", "rows.csv", "sweep.png", "curves.png"]


def run(command: list[str], cwd: Path) -> str:
  print(f"$ {' '.join(map(str, command))}    (in {cwd})", flush=True)
  done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
  if done.returncode:
    print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
    raise SystemExit(f"dist-check: failed ({done.returncode}): {' '.join(map(str, command))}")
  return done.stdout


def check(condition: bool, message: str) -> None:
  print(f"  {'ok  ' if condition else 'FAIL'} {message}")
  if not condition:
    raise SystemExit(f"dist-check: {message}: not so")


def check_sdist(sdist: Path) -> None:
  with tarfile.open(sdist) as archive:
    names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
  for required in ("LICENSE", "README.md", "pyproject.toml", "regjax/py.typed"):
    check(required in names, f"the sdist holds {required}")


def check_wheel(wheel: Path) -> None:
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    metadata = email.message_from_bytes(archive.read(metadata_name))
  check("regjax/py.typed" in names, "the wheel holds regjax/py.typed")
  check(any(n.startswith("regjax/experiment/_data/") and n.endswith(".npz") for n in names),
        "the wheel holds the embedded digits (regjax/experiment/_data/*.npz)")
  check(any(n.endswith(".dist-info/licenses/LICENSE") for n in names),
        "the wheel holds LICENSE (.dist-info/licenses/)")
  check(metadata["License-Expression"] == "Apache-2.0",
        f"METADATA License-Expression is Apache-2.0 (got {metadata['License-Expression']!r})")
  stray = [n for n in names if n.split("/")[0] in ("tests", "notebooks", "benchmarks",
                                                   "docs", "examples", "tools")]
  check(not stray, f"no tests, notebooks, benchmarks or docs in the wheel {stray[:3]}")
  print(f"  (wheel: {len(names)} files, version {metadata['Version']})")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
  args = parser.parse_args()
  start = time.perf_counter()
  work = Path(tempfile.mkdtemp(prefix="regjax-dist-check-"))
  check(ROOT not in work.parents, f"working outside the checkout, in {work}")
  dist = work / "dist"
  run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT)],
      cwd=work)
  sdist = next(dist.glob("regjax-*.tar.gz"))
  wheel = next(dist.glob("regjax-*.whl"))
  print(f"built {sdist.name} ({sdist.stat().st_size // 1024} KiB) and {wheel.name} "
        f"({wheel.stat().st_size // 1024} KiB) in {time.perf_counter() - start:.0f} s")
  check_sdist(sdist)
  check_wheel(wheel)

  venv = work / "venv"
  run([sys.executable, "-m", "venv", str(venv)], cwd=work)
  python = venv / "bin" / "python"
  run([str(python), "-m", "pip", "install", "--quiet", f"regjax[plots] @ {wheel.as_uri()}"],
      cwd=work)
  job = work / "job"
  job.mkdir()
  where = run([str(python), "-c", "import regjax; print(regjax.__file__, regjax.__version__)"],
              cwd=job)
  check(str(venv) in where and str(ROOT) not in where,
        f"regjax imports from the venv, not the checkout: {where.strip()}")
  output = run([str(venv / "bin" / "regjax"), *SWEEP], cwd=job)
  print("\n".join("  | " + line for line in output.strip().splitlines()[-16:]))
  for name in OUTPUTS:
    path = job / "out" / name
    check(path.exists() and path.stat().st_size > 0, f"{path} was written")
  check(any((job / "out" / "checkpoints").rglob("segment_*")), "checkpoints were written")
  print(f"dist-check: passed in {time.perf_counter() - start:.0f} s (in {work})")
  if not args.keep:
    subprocess.run(["rm", "-rf", str(work)], check=False)
  return 0


if __name__ == "__main__":
  sys.exit(main())
