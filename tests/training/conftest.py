"""Training tests run torch on one thread: on the shared 2-core machines, two OpenMP threads per process
spin against other processes and made a tiny training step 30x slower (measured: 2.1 s vs 0.08 s)."""

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one process-wide state (as accelerate's own tests do, reset it between runs)."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(params=["pixart", "sd3", "flux"])
def arch(request) -> str:
    """Each architecture group attention supports."""
    return request.param
