"""The framework integrations are optional extras: `import vectro` imports none of them,
and importing one without its packages names the extra to install."""

import importlib
import importlib.util
import subprocess
import sys

import pytest

EXTRAS = [
    ("vectro.langchain", "langchain_core", "pip install vectro[langchain]"),
    ("vectro.llama_index", "llama_index", "pip install vectro[llama-index]"),
    ("vectro.ray", "ray", "pip install vectro[ray]"),
]


def test_import_vectro_imports_no_framework():
    code = (
        "import sys, vectro\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'llama_index', 'ray', 'vectro.langchain', 'vectro.llama_index', 'vectro.ray')"
        " or m in ('vectro.langchain', 'vectro.llama_index', 'vectro.ray', 'vectro._store')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module,package,hint", EXTRAS)
def test_missing_extra_names_it(module, package, hint):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    with pytest.raises(ImportError, match=hint.replace("[", r"\[").replace("]", r"\]")):
        importlib.import_module(module)
