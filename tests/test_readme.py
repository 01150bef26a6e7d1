import re
import shlex
from pathlib import Path

from tests.conftest import ROOT, run_python

README = (ROOT / "README.md").read_text()


def python_block(after_heading):
    """The first ```python block after the given Markdown heading."""
    section = README.split(after_heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_first_lines_are_the_two_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert block[0].startswith("python3 -m venv .venv") and 'pip install -e ".[dev]"' in block[0]
    assert "python train.py --model dense --reg l1" in block[0]
    assert block[1].endswith("python -m pytest")
    assert README.index("```bash") < 30


def test_first_command_leaves_the_shipped_zoo_alone():
    # Its exports must not replace the shipped zoo, which the test command checks.
    import train

    first = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()[0]
    args = train.parse_args(shlex.split(first.split("python train.py", 1)[1]))
    assert (ROOT / args.out).resolve() != (ROOT / "saved_models").resolve()


def test_usage_example_runs_as_written(tmp_path):
    code = python_block("## Use a model in your own code").replace("/tmp/my_sparse_ae.keras", str(tmp_path / "m.keras"))
    code += "\nassert codes.shape == (64, 4, 4, 32)\nnp.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))\n"
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(tmp_path / "m.keras").is_file()


def test_readme_is_short_and_every_doc_it_links_exists():
    assert len(README.splitlines()) <= 250
    assert "this session" not in README.lower()
    for link in re.findall(r"\]\(((?:docs|saved_models)/[^)]+)\)", README):
        assert (ROOT / link).is_file(), link
