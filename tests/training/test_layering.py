"""training/ stands alone: it never imports the curation stages, the classifier or captioning."""

import ast
from pathlib import Path

FORBIDDEN = ("pipeline", "classifier", "captioning")


def test_training_imports_no_curation_package():
    offenders = []
    for path in Path("training").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}: {name}" for name in names if name.split(".")[0] in FORBIDDEN]
    assert not offenders
