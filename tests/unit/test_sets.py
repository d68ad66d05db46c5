"""``strongroom.sets`` gives NumPy's answers (values and dtype) by sorting, and the product
calls NumPy's hash-based forms nowhere: ``np.unique(values)`` with values only, and
``union1d``, ``intersect1d`` and ``setdiff1d``, which call it, are about a hundred times slower
than a sort for arrays of many distinct integers (participant IDs) on NumPy 2.4."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import strongroom
from strongroom import sets

RNG = np.random.default_rng(7)
I64 = np.iinfo(np.int64)
FLOATS_WITH_NAN = np.array([2.5, np.nan, -1.0, 2.5, np.nan, 0.0, -0.0, np.inf, -np.inf])
ARRAYS: dict[str, npt.ArrayLike] = {
    "int64 repeats": RNG.integers(0, 50, 2000),
    "int64 distinct": RNG.permutation(np.arange(-5000, 5000, dtype=np.int64) * 7919),
    "int64 extremes": np.array([I64.max, I64.min, 0, I64.max, -1, I64.min], dtype=np.int64),
    "int64 sorted": np.arange(1000, dtype=np.int64),
    "int32": RNG.integers(-100, 100, 500).astype(np.int32),
    "uint32": RNG.integers(0, 2**32, 500, dtype=np.uint32),
    "uint64": RNG.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64) * np.uint64(2),
    "int8": RNG.integers(-128, 128, 400).astype(np.int8),
    "bool": RNG.random(50) < 0.5,
    "bool one value": np.ones(5, dtype=np.bool_),
    "float64 with NaNs": FLOATS_WITH_NAN,
    "float64 random": np.where(RNG.random(500) < 0.1, np.nan, RNG.random(500).round(2)),
    "float32": RNG.random(200).round(1).astype(np.float32),
    "strings": np.array(["b", "a", "", "ab", "b", "é", "a"]),
    "bytes": np.array([b"x", b"y", b"x"]),
    "empty int64": np.array([], dtype=np.int64),
    "empty float64": np.array([], dtype=np.float64),
    "empty list": [],
    "one int64": np.array([42], dtype=np.int64),
    "one NaN": np.array([np.nan]),
    "scalar": 5,
    "list of ints": [3, 1, 3, 2],
    "2-D int64": RNG.integers(0, 9, (20, 5)),
    "2-D float64": np.array([[1.0, np.nan], [np.nan, 1.0]]),
}
# pairs for the two-argument helpers: same dtypes, mixed widths, overlapping and not
PAIRS: dict[str, tuple[npt.ArrayLike, npt.ArrayLike]] = {
    **{f"{name} with itself": (a, a) for name, a in ARRAYS.items()},
    "int64 overlapping": (RNG.integers(0, 3000, 2000), RNG.integers(1000, 4000, 2000)),
    "int64 disjoint": (np.arange(0, 100, 2, dtype=np.int64), np.arange(1, 100, 2, dtype=np.int64)),
    "int64 with empty": (RNG.integers(0, 10, 20), np.array([], dtype=np.int64)),
    "empty with int64": (np.array([], dtype=np.int64), RNG.integers(0, 10, 20)),
    "int32 with int64": (RNG.integers(0, 50, 100).astype(np.int32), RNG.integers(0, 50, 100)),
    "int64 with int8": (RNG.integers(0, 50, 100), RNG.integers(0, 50, 100).astype(np.int8)),
    "uint32 with int64": (RNG.integers(0, 60, 100).astype(np.uint32), RNG.integers(-9, 50, 90)),
    "floats with NaNs": (FLOATS_WITH_NAN, np.array([np.nan, 2.5, 7.0])),
    "int64 with floats": (RNG.integers(0, 20, 50), np.array([1.0, 2.5, np.nan, 3.0])),
    "strings": (np.array(["a", "b", "c", "a"]), np.array(["c", "d", "a", "d"])),
    "2-D with 1-D": (RNG.integers(0, 9, (6, 4)), RNG.integers(5, 15, 10)),
    "lists": ([5, 1, 5, 3], [3, 4]),
}


def _same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # NaNs in the same places count as equal


@pytest.mark.parametrize("name", list(ARRAYS))
def test_distinct_is_np_unique(name: str) -> None:
    values = ARRAYS[name]
    before = np.array(values, copy=True)
    _same(sets.distinct(values), np.unique(values))
    np.testing.assert_array_equal(np.asarray(values), before)  # the input is left alone


@pytest.mark.parametrize(("helper", "numpy"), [
    (sets.union, np.union1d),
    (sets.intersection, np.intersect1d),
    (sets.difference, np.setdiff1d),
    (sets.within, np.isin),
], ids=["union", "intersection", "difference", "within"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_set_operations_are_numpys(name: str, helper: Callable[..., np.ndarray],
                                   numpy: Callable[..., np.ndarray]) -> None:
    a, b = PAIRS[name]
    _same(helper(a, b), numpy(a, b))
    _same(helper(b, a), numpy(b, a))


def test_random_integer_sets_are_numpys() -> None:
    """Many small random draws, with repeats and without, of the product's dtypes."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        dtype = (np.int64, np.int32, np.uint32, np.int8)[int(rng.integers(4))]
        n, m = rng.integers(0, 60, 2)
        span = int(rng.integers(1, 100))
        repeats = rng.random() < 0.5
        if repeats:
            a, b = rng.integers(0, span, n), rng.integers(0, span, m)
        else:
            a = rng.permutation(max(n, span))[:n]
            b = rng.permutation(max(m, span))[:m]
        a, b = a.astype(dtype), b.astype(dtype)
        _same(sets.distinct(a), np.unique(a))
        _same(sets.union(a, b), np.union1d(a, b))
        _same(sets.intersection(a, b), np.intersect1d(a, b))
        _same(sets.within(a, b), np.isin(a, b))
        _same(sets.difference(a, b), np.setdiff1d(a, b))


# --- the guard: no product code calls NumPy's hash-based forms ------------------------------

ROOT = Path(strongroom.__file__).parent
EXEMPT = {ROOT / "sets.py"}  # the helpers themselves
SLOW = ("unique", "unique_values", "union1d", "intersect1d", "setdiff1d")
SORTING_KEYWORDS = {  # a keyword that makes the call take NumPy's sort path
    "unique": {"return_index", "return_inverse", "return_counts", "axis"},
    "intersect1d": {"assume_unique"},
    "setdiff1d": {"assume_unique"},
}
WHY = ("NumPy 2.4's hash-based np.unique(values) (values only) is ~100x slower than sorting "
       "for integers such as participant IDs (1,000,000 int64: 0.65 s against 0.006 s), and "
       "np.union1d, np.intersect1d and np.setdiff1d (without assume_unique=True) call it; "
       "use strongroom.sets instead: sets.distinct (np.unique), sets.union (np.union1d), "
       "sets.intersection (np.intersect1d), sets.difference (np.setdiff1d), which give the "
       "same answers by sorting. np.unique with return_index/return_inverse/return_counts/"
       "axis, and intersect1d/setdiff1d with assume_unique=True, are fine as they are.")


def _sorts(call: ast.Call, function: str) -> bool:
    """Whether the call passes a keyword that sends NumPy down its sort path (given as a
    literal other than False/None, or as any expression: only literals are judged)."""
    for keyword in call.keywords:
        if keyword.arg not in SORTING_KEYWORDS.get(function, set()):
            continue
        off = isinstance(keyword.value, ast.Constant) and (keyword.value.value is False
                                                           or keyword.value.value is None)
        if not off:
            return True
    return False


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def slow_calls(source: str, filename: str = "<source>", lines: set[int] | None = None
               ) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of each use of a hash-based NumPy set function in ``source``: calls
    without a keyword that makes them sort, and any other reference (``map(np.unique, …)``).
    Given ``lines``, only the imports and the top-level statements spanning one of them are
    read (walking every node of a large module is most of the time)."""
    tree = ast.parse(source, filename)
    read = [s for s in tree.body if lines is None or isinstance(s, (ast.Import, ast.ImportFrom))
            or any(s.lineno <= line <= (s.end_lineno or s.lineno) for line in lines)]
    nodes = [node for statement in read for node in ast.walk(statement)]
    modules = {"np", "numpy"}  # names bound to numpy, and names imported from it
    imported: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "numpy"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "numpy":
            imported |= {a.asname or a.name: a.name for a in node.names if a.name in SLOW}
            imported |= {name: name for a in node.names if a.name == "*" for name in SLOW}

    def function(node: ast.expr) -> str | None:
        if isinstance(node, ast.Attribute) and node.attr in SLOW and _root(node) in modules:
            return node.attr
        if isinstance(node, ast.Name) and node.id in imported:
            return imported[node.id]
        return None

    allowed: set[int] = set()  # the ids of function references in calls that sort
    for node in nodes:
        if isinstance(node, ast.Call) and (name := function(node.func)) and _sorts(node, name):
            allowed.add(id(node.func))
    slow = [node for node in nodes if isinstance(node, (ast.Attribute, ast.Name))
            and id(node) not in allowed and function(node)]
    for node in sorted(slow, key=lambda n: (n.lineno, n.col_offset)):
        yield node.lineno, "".join((ast.get_source_segment(source, node) or "").split())


def _may_use(source: str) -> set[int]:
    """The lines where ``source`` may use a slow function: where it names one through numpy
    (``np.unique``, ``np.lib.arraysetops.unique``), or every line if it imports one from numpy
    (``from numpy import unique as u``, ``*``). Only these are parsed (a parse of every file
    takes seconds)."""
    slow = rf"\b(?:{'|'.join(SLOW)})\b|\*"
    for names in re.findall(r"from\s+numpy[\w.]*\s+import\s+(\([^)]*\)|[^\n]*)", source):
        if re.search(slow, names):
            return set(range(1, source.count("\n") + 2))
    modules = {"np", "numpy", *re.findall(r"\bimport\s+numpy\s+as\s+(\w+)", source)}
    pattern = (rf"(?<![\w.])(?:{'|'.join(modules)})(?:\s*\.\s*\w+)*?\s*\.\s*"
               rf"(?:{'|'.join(SLOW)})\b")
    return {source.count("\n", 0, m.start()) + 1 for m in re.finditer(pattern, source)}


def _product_violations() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path in EXEMPT:
            continue
        source = path.read_text()
        lines = _may_use(source)
        if not lines:  # most files: no parse needed
            continue
        where = path.relative_to(ROOT.parent.parent) if ROOT.parent.name == "src" else path
        found += [f"{where}:{line}: {text}"
                  for line, text in slow_calls(source, str(path), lines)]
    return found


def test_the_product_uses_no_hash_based_numpy_set_function() -> None:
    found = _product_violations()
    assert not found, WHY + "\n" + "\n".join(found)


def test_the_guard_sees_each_slow_form_and_lets_the_sorting_ones_be() -> None:
    source = '''
import numpy as xp
import numpy
from numpy import unique as u, setdiff1d
a = xp.unique(x)                                  # 5
b = numpy.unique(x).size                          # 6
c = xp.union1d(x, y)                              # 7
d = xp.intersect1d(x, y)                          # 8
e = xp.setdiff1d(x, y, assume_unique=False)       # 9
f = u(x)                                          # 10
g = setdiff1d(x, y)                               # 11
h = list(map(xp.unique, rows))                    # 12
i = xp.unique(x, return_counts=False)             # 13
j = xp.unique(x, axis=None)                       # 14
k = xp.unique_values(x)                           # 15
l = xp.intersect1d(x, y, **options)               # 16
m = xp.lib.arraysetops.unique(x)                  # 17
fine = (xp.unique(x, return_counts=True), xp.unique(x, return_inverse=True),
        xp.unique(x, return_index=True), xp.unique(x, axis=0), u(x, return_counts=flag),
        xp.intersect1d(x, y, assume_unique=True, return_indices=True),
        setdiff1d(x, y, assume_unique=True), frame.unique(), series.unique(x), unique(x),
        sets.distinct(x), sets.union(x, y))
'''
    assert [line for line, _ in slow_calls(source)] == list(range(5, 18))
    assert [line for line, _ in slow_calls(source, lines=_may_use(source))] == list(range(5, 18))
    assert {*range(5, 18)} <= _may_use(source)
    plain = "import numpy as xp\nfrom numpy import sort\nx = xp.lib.arraysetops.unique(y)\n"
    assert _may_use(plain) == {3}
    assert _may_use(plain.replace("from numpy import sort", "import numpy as np")) == {3}
    assert not _may_use("import numpy as np\nx = frame.unique()\ny = np.sort(x)\n")
    star = "from numpy import *\nx = unique(y)\n"
    assert _may_use(star) == {1, 2, 3}
    assert [line for line, _ in slow_calls(star, lines=_may_use(star))] == [2]
    parenthesised = "from numpy import (\n    sort,\n    setdiff1d as minus,\n)\n"
    assert _may_use(parenthesised) == {1, 2, 3, 4, 5}
