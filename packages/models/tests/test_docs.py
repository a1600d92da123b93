"""The examples in the docstrings run and print what they claim."""

import doctest
import importlib
import pkgutil

import pytest

import ctnn.models

MODULES = ["ctnn.models"] + [f"ctnn.models.{m.name}" for m in pkgutil.iter_modules(ctnn.models.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
