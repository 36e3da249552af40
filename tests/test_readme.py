"""The README's Python examples run as written (a reader goes from pip install to a plotted
few-shot regression with the README alone)."""
import os
import re
import warnings

import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def blocks():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.parametrize("index", range(len(blocks())))
def test_readme_python_blocks_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = blocks()[index]
    if "dask.distributed" in code or "Client(" in code:
        pytest.skip("needs a cluster address")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, f"README block {index}", "exec"), {"__name__": "readme"})


def test_the_readme_has_examples():
    assert len(blocks()) >= 2
