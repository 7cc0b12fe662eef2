"""The README's "Python API" example stays true to the code: it compiles, every name it imports
from zicht exists, and every call of an imported function binds to that function's signature.
Pure Python: nothing runs, no Spark session starts."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Python API\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert section, "README has no '## Python API' section"
    blocks = re.findall(r"^```python\n(.*?)^```", section.group(1), flags=re.M | re.S)
    assert len(blocks) == 1, "the Python API section holds one ```python block"
    return str(blocks[0])


def zicht_imports(tree: ast.Module) -> dict[str, Any]:
    """Local name -> object for every ``from zicht... import X`` (and ``import zicht...``)."""
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zicht"):
            module = importlib.import_module(str(node.module))
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("zicht"):
                    importlib.import_module(alias.name)
    return names


def test_the_example_compiles_and_its_imports_resolve() -> None:
    code = api_example()
    compile(code, "README.md#python-api", "exec")
    names = zicht_imports(ast.parse(code))
    assert {"load_settings", "build_spark", "run", "fit_area_models"} <= set(names)


def test_the_example_calls_bind_to_the_signatures() -> None:
    tree = ast.parse(api_example())
    names = zicht_imports(tree)
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
    ]
    assert calls
    for call in calls:
        fn = names[call.func.id]  # type: ignore[union-attr]
        args = [None] * len(call.args)
        kwargs = {k.arg: None for k in call.keywords if k.arg is not None}
        try:
            inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise AssertionError(
                f"README line {call.lineno}: {ast.unparse(call)} does not fit "
                f"{fn.__module__}.{fn.__qualname__}{inspect.signature(fn)}: {exc}"
            ) from exc


def test_the_example_reads_attributes_that_exist() -> None:
    """``settings.spark``, ``settings.model`` ... and ``result.chosen`` ... are real fields."""
    from zicht.features.settings import Settings
    from zicht.models.typology import AreaModelResult

    code = api_example()
    fields = {
        "settings": set(Settings.__dataclass_fields__),
        "result": set(AreaModelResult.__dataclass_fields__),
    }
    for var, known in fields.items():
        used = set(re.findall(rf"\b{var}\.(\w+)", code))
        assert used <= known, f"{var}.{sorted(used - known)} do not exist"
