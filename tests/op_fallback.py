"""The shared part of the custom operators' fallback tests: a compiler that fails, on an empty op
cache, and the one warning that says so."""
import contextlib
import logging

from paddle.utils import cpp_extension


@contextlib.contextmanager
def failing_build(monkeypatch, tmp_path, op_module, switch: str):
    """Inside the block ``op_module``'s operator cannot be built (switched on, nothing cached,
    the compiler raises); afterwards its load attempt is forgotten, so the next use loads the
    cached library again."""
    monkeypatch.setenv(switch, "1")
    monkeypatch.setenv("PADDLEPALM_OPS_DIR", str(tmp_path))

    def broken_compiler(*args, **kwargs):
        raise RuntimeError("g++: command not found\nmore lines")
    monkeypatch.setattr(cpp_extension, "load", broken_compiler)
    op_module.reset()
    try:
        yield
    finally:
        op_module.reset()


def assert_one_build_warning(caplog, op_module) -> None:
    """One warning naming the op and the compiler's first line; the status records the failure."""
    warnings = [r for r in caplog.records if op_module.OP_NAME in r.getMessage()]
    assert len(warnings) == 1 and "g++: command not found" in warnings[0].getMessage()
    status = op_module.status()
    assert status["loaded"] is False and "g++" in status["error"]


def capture_op_warnings(caplog):
    return caplog.at_level(logging.WARNING, logger="paddlepalm.utils.custom_ops")


@contextlib.contextmanager
def switched_on(monkeypatch, op_module, switch: str):
    """``op_module``'s operator switched on and loaded (the test is skipped where it cannot be
    built: the fallback tests cover that); its load attempt forgotten afterwards."""
    import pytest

    monkeypatch.setenv(switch, "1")
    op_module.reset()
    if op_module.load_op() is None:
        pytest.skip(f"{op_module.OP_NAME} unavailable here: {op_module.status()['error']}")
    try:
        yield op_module
    finally:
        op_module.reset()
