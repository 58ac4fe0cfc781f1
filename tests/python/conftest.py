"""Shared fixtures of the Python package's tests: a seeded generator (the run's seed is in the
report header and beside every failure; QK_TEST_SEED replays one)."""

import os
import random
import zlib

import numpy as np
import pytest

import qkern

SEED = int(os.environ.get("QK_TEST_SEED", random.randrange(1 << 31)))


@pytest.fixture
def rng(request):
    # one stream per test, derived from the run's seed and the test's name
    yield np.random.default_rng([SEED, zlib.crc32(request.node.name.encode())])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        report.sections.append(("seed", f"QK_TEST_SEED={SEED} replays this run"))


def pytest_report_header(config):
    return f"qkern {qkern.version()}; QK_TEST_SEED={SEED}; devices: {', '.join(d.id for d in qkern.devices())}"

