"""Model-side tests run torch single-threaded: many small ops on a shared 2-core machine are faster so."""

import importlib.util

if importlib.util.find_spec("torch") is not None:
    import torch

    torch.set_num_threads(1)
