"""The just-in-time builder: cache by source hash, one build across concurrent processes, recovery from a
killed build, a timeout that names the lock, and failures that name their log. Uses a tiny C extension
(no torch headers), so each build takes a second or two."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cuda_ops import _build
from tests.conftest import REPO

TINY = textwrap.dedent("""\
    #include <Python.h>
    #define CAT2(a, b) a##b
    #define CAT(a, b) CAT2(a, b)
    #define STR2(a) #a
    #define STR(a) STR2(a)
    static PyObject* answer(PyObject*, PyObject*) { return PyLong_FromLong(ANSWER); }
    static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, "the answer"}, {nullptr, nullptr, 0, nullptr}};
    static PyModuleDef mod = {PyModuleDef_HEAD_INIT, STR(TORCH_EXTENSION_NAME), nullptr, -1, methods};
    PyMODINIT_FUNC CAT(PyInit_, TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&mod); }
""")


def tiny_spec(folder: Path, name: str, answer: int = 42, broken: bool = False) -> _build.ExtensionSpec:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{name}.cpp"
    src.write_text(TINY.replace("ANSWER", str(answer)) + ("this is not C++;\n" if broken else ""))
    return _build.ExtensionSpec(name=name, sources=(src,))


# Runs in a child process: loads the spec, reports whether this process compiled, prints the answer.
# The child only reads the source the test wrote: children rewriting it while another compiles it
# made the concurrent-build test fail now and then (a compiler reading a truncated file).
CHILD = textwrap.dedent("""\
    import sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from cuda_ops import _build
    compiled = []
    real = _build._compile
    _build._compile = lambda *a: (compiled.append(1), real(*a))[1]
    spec = _build.ExtensionSpec(name={name!r}, sources=(Path({src!r}) / "{name}.cpp",))
    m = _build.load_extension(spec)
    print("compiled" if compiled else "cached", m.answer())
""")


def run_child(src: Path, name: str, cache: Path, **popen) -> subprocess.Popen:
    env = dict(os.environ, LEAKGUARD_OPS_CACHE=str(cache))
    code = CHILD.format(repo=str(REPO), src=str(src), name=name)
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("LEAKGUARD_OPS_CACHE", str(root))
    return root


def test_builds_once_then_loads_from_the_cache(tmp_path, cache):
    spec = tiny_spec(tmp_path / "src", "lg_tiny_cache")
    assert _build.load_extension(spec).answer() == 42
    [folder] = [p for p in cache.iterdir() if p.is_dir()]
    assert folder.name == f"lg_tiny_cache-{_build.build_key(spec)}" and (folder / "BUILT").is_file()
    # A new process finds the finished build and does not compile.
    out, err = run_child(tmp_path / "src", "lg_tiny_cache", cache).communicate(timeout=120)
    assert out.split() == ["cached", "42"], err


def test_the_key_follows_sources_and_flags(tmp_path):
    a = tiny_spec(tmp_path / "a", "lg_tiny_key", answer=1)
    b = tiny_spec(tmp_path / "b", "lg_tiny_key", answer=2)
    assert _build.build_key(a) != _build.build_key(b)
    assert _build.build_key(a) == _build.build_key(tiny_spec(tmp_path / "c", "lg_tiny_key", answer=1))
    flagged = _build.ExtensionSpec(name=a.name, sources=a.sources, cflags=("-O1",))
    assert _build.build_key(flagged) != _build.build_key(a)


def test_concurrent_processes_build_once(tmp_path, cache):
    tiny_spec(tmp_path / "src", "lg_tiny_race")
    children = [run_child(tmp_path / "src", "lg_tiny_race", cache) for _ in range(3)]
    results = [c.communicate(timeout=300) for c in children]
    words = [out.split() for out, _ in results]
    assert all(w[1:] == ["42"] for w in words), results
    assert sorted(w[0] for w in words) == ["cached", "cached", "compiled"], results
    assert not list(cache.glob(".*tmp-*"))  # no temporary build folder left behind


def test_a_killed_build_does_not_block_the_next(tmp_path, cache, monkeypatch):
    spec = tiny_spec(tmp_path / "src", "lg_tiny_stale")
    key = _build.build_key(spec)
    lock = cache / f"lg_tiny_stale-{key}.lock"
    # A process takes the lock, starts a build folder, and dies without cleaning up.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from cuda_ops._build import BuildLock
        with BuildLock(Path({str(lock)!r}), 10):
            Path({str(cache)!r}, ".lg_tiny_stale-{key}.tmp-1").mkdir()
            print("locked", flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock.exists() and "pid" in lock.read_text()
    monkeypatch.setenv("LEAKGUARD_OPS_BUILD_TIMEOUT", "20")
    assert _build.load_extension(spec).answer() == 42
    assert not list(cache.glob(".*tmp-*"))


def test_a_live_lock_holder_times_out_with_its_name(tmp_path, cache, monkeypatch):
    spec = tiny_spec(tmp_path / "src", "lg_tiny_busy")
    lock = cache / f"lg_tiny_busy-{_build.build_key(spec)}.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from cuda_ops._build import BuildLock
        with BuildLock(Path({str(lock)!r}), 10):
            print("locked", flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("LEAKGUARD_OPS_BUILD_TIMEOUT", "1")
        t0 = time.monotonic()
        with pytest.raises(_build.BuildError, match=rf"build lock .*{lock.name}.*pid {holder.pid}"):
            _build.load_extension(spec)
        assert time.monotonic() - t0 < 30
    finally:
        holder.kill()
        holder.wait()


def test_a_failed_build_names_its_log(tmp_path, cache):
    spec = tiny_spec(tmp_path / "src", "lg_tiny_broken", broken=True)
    with pytest.raises(_build.BuildError, match=r"build of lg_tiny_broken failed .*full log: .*\.log") as e:
        _build.load_extension(spec)
    log = Path(str(e.value).rsplit("full log: ", 1)[1])
    assert log.is_file() and "this is not C++" in log.read_text()
    assert not [p for p in cache.iterdir() if p.is_dir()]  # nothing half-built is left to load


def test_missing_tools_are_named(tmp_path, monkeypatch):
    spec = tiny_spec(tmp_path / "src", "lg_tiny_tools")
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    with pytest.raises(_build.BuildError, match="no C\\+\\+ compiler.*no-such-compiler-xyz"):
        _build.load_extension(spec)
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(_build, "ninja_path", lambda: None)
    with pytest.raises(_build.BuildError, match="ninja is not installed"):
        _build.load_extension(spec)


def test_bad_timeout_setting_is_named(monkeypatch):
    monkeypatch.setenv("LEAKGUARD_OPS_BUILD_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="LEAKGUARD_OPS_BUILD_TIMEOUT.*'soon'"):
        _build.build_timeout()


def test_importing_the_packages_builds_nothing(tmp_path):
    env = dict(os.environ, LEAKGUARD_OPS_CACHE=str(tmp_path / "cache"))
    code = "import cuda_ops.bias_act, cuda_ops.upfirdn2d, training.networks, training.cli"
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True, timeout=120)
    assert not (tmp_path / "cache").exists()
