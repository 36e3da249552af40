"""Every public entry point has a numpydoc docstring whose Examples run (doctest), and every
public method a docstring."""
import doctest
import importlib
import inspect

import pytest

import gomaml

MODULES = ["gomaml.objective", "gomaml._core", "gomaml.train", "gomaml.bounds",
           "gomaml.minimizer", "gomaml.tasks", "gomaml.losses", "gomaml.features",
           "gomaml.kernels", "gomaml.kernel_tasks", "gomaml.synthetic", "gomaml.estimators",
           "gomaml._buildinfo", "gomaml.distributed"]

FUNCTIONS = ["gomaml.meta_loss_grad", "gomaml.meta_loss", "gomaml.adapt", "gomaml.task_losses",
             "gomaml.predict", "gomaml.fit", "gomaml.global_minimizer",
             "gomaml.optimality_bound", "gomaml.corollary1_bound",
             "gomaml.functional_derivative", "gomaml.features.make_feature_map",
             "gomaml.synthetic.linear_regression", "gomaml.synthetic.sinusoid",
             "gomaml.synthetic.logistic_classification"]
CLASSES = ["gomaml.Tasks", "gomaml.KernelTasks", "gomaml.MAMLRegressor",
           "gomaml.MAMLClassifier", "gomaml.FitResult", "gomaml.BoundReport",
           "gomaml.features.FeatureMap", "gomaml.kernels.Kernel", "gomaml.Loss",
           "gomaml.synthetic.SyntheticTasks", "gomaml.DivergenceError",
           "gomaml.NumericalOverflowError", "gomaml.distributed.ShardedTasks"]


def resolve(dotted):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    if name == "gomaml.distributed":
        pytest.importorskip("distributed")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_have_numpydoc_sections(name):
    doc = inspect.getdoc(resolve(name))
    for section in ("Parameters", "Returns", "Raises", "Examples"):
        assert f"\n{section}\n{'-' * len(section)}\n" in doc, (name, section)


@pytest.mark.parametrize("name", CLASSES)
def test_classes_are_documented_with_examples(name):
    if name.startswith("gomaml.distributed"):
        pytest.importorskip("distributed")
    cls = resolve(name)
    doc = inspect.getdoc(cls)
    assert "\nExamples\n--------\n" in doc, name
    assert any(f"\n{s}\n{'-' * len(s)}\n" in doc for s in ("Parameters", "Attributes")) \
        or issubclass(cls, gomaml.Loss), name
    for attr, member in inspect.getmembers(cls):
        if attr.startswith("_") or not (callable(member) or isinstance(member, property)):
            continue
        assert inspect.getdoc(getattr(cls, attr)), f"{name}.{attr} has no docstring"


def test_build_info_is_documented():
    doc = inspect.getdoc(gomaml.build_info)
    assert "\nReturns\n-------\n" in doc and "\nExamples\n--------\n" in doc
