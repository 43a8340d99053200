"""Re-executes research notebooks in place, at full size unless REGJAX_QUICK=1 is set.

Usage: ``python notebooks/execute.py [NAME.ipynb ...]`` (all notebooks when none given).
The stored outputs are replaced, so a reader sees what this library version measures.
Figures are stored as PNG images whatever ``MPLBACKEND`` says in the calling shell: the
kernel runs with matplotlib's inline backend (a non-interactive backend such as Agg would
store the text ``<Figure size ...>`` instead).
"""

import os
import pathlib
import sys
import time

import nbclient
import nbformat

HERE = pathlib.Path(__file__).parent
INLINE = "module://matplotlib_inline.backend_inline"


def main(argv: list[str]) -> None:
  paths = [pathlib.Path(a) for a in argv] or sorted(HERE.glob("*.ipynb"))
  os.environ["MPLBACKEND"] = INLINE  # the kernel inherits this process's environment
  for index, path in enumerate(paths, 1):
    print(f"[{index}/{len(paths)}] {path.name} ...", flush=True)
    start = time.perf_counter()
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=1800, kernel_name="python3", record_timing=True,
        resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, path)
    print(f"[{index}/{len(paths)}] {path.name} done in {time.perf_counter() - start:.0f} s",
          flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])
