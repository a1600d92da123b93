"""Wirings are structure only, serialise exactly, and reject nonsense."""

import numpy as np
import pytest

from ctnn.models import WIRINGS, FullyConnected, Wiring, wiring_from_config


def test_fully_connected():
    w = FullyConnected(20, output_dim=3, erev_init_seed=5)
    assert not w.is_built()
    w.build(7)
    assert w.synapse_count == 400 and w.sensory_synapse_count == 140
    assert set(np.unique(w.adjacency_matrix)) == {-1, 1}
    # excitatory with probability 2/3, as in ncps
    assert 0.55 < (w.adjacency_matrix == 1).mean() < 0.78
    w.build(7)  # idempotent
    with pytest.raises(ValueError, match="built for 7 inputs"):
        w.build(8)


def test_no_self_connections():
    w = FullyConnected(5, self_connections=False)
    assert (np.diag(w.adjacency_matrix) == 0).all() and w.synapse_count == 20


def test_config_round_trip():
    w = FullyConnected(6, output_dim=2, erev_init_seed=3)
    w.build(4)
    w2 = wiring_from_config(w.get_config())
    assert isinstance(w2, FullyConnected)
    assert np.array_equal(w2.adjacency_matrix, w.adjacency_matrix)
    assert np.array_equal(w2.sensory_adjacency_matrix, w.sensory_adjacency_matrix)
    assert (w2.units, w2.output_dim, w2.input_dim) == (6, 2, 4)
    # the explicit base form holds the matrices and round-trips any wiring
    base = Wiring.from_config(Wiring.get_config(w))
    assert np.array_equal(base.sensory_adjacency_matrix, w.sensory_adjacency_matrix)
    assert set(WIRINGS) >= {"wiring", "fully_connected"}


def test_explicit_wiring_and_errors():
    w = Wiring(3, output_dim=1)
    w.add_synapse(0, 2, -1)
    with pytest.raises(ValueError, match="before adding sensory"):
        w.add_sensory_synapse(0, 0, 1)
    w.build(2)
    w.add_sensory_synapse(1, 0, 1)
    assert w.synapse_count == 1 and w.sensory_synapse_count == 1
    with pytest.raises(ValueError, match="polarity"):
        w.add_synapse(0, 1, 2)
    with pytest.raises(ValueError, match="out of range"):
        w.add_synapse(3, 0, 1)
    with pytest.raises(ValueError, match="output_dim"):
        Wiring(3, output_dim=4)
    with pytest.raises(ValueError, match="unknown wiring kind"):
        wiring_from_config({"kind": "ncp?", "units": 3})


def test_ncp_structure_and_round_trip():
    from ctnn.models import NCP, AutoNCP, wiring_from_config

    w = NCP(8, 6, 4, sensory_fanout=4, inter_fanout=3, recurrent_command_synapses=5, motor_fanin=3, seed=7)
    w.build(5)
    motor, command, inter = range(0, 4), range(4, 10), range(10, 18)
    A, S = w.adjacency_matrix, w.sensory_adjacency_matrix
    assert not S[:, list(motor) + list(command)].any() and S[:, list(inter)].any(axis=0).all()
    for src, dst in zip(*np.nonzero(A), strict=True):  # inter → command → {command, motor} only
        assert (src in inter and dst in command) or (src in command and (dst in command or dst in motor))
    assert A[:, list(motor)].any(axis=0).all()  # every motor neuron is driven
    assert w.neuron_type(0) == "motor" and w.neuron_type(17) == "inter"
    w2 = wiring_from_config(w.get_config())
    assert (w2.adjacency_matrix == A).all() and (w2.sensory_adjacency_matrix == S).all()
    auto = AutoNCP(20, 5, sparsity_level=0.6, seed=3)
    auto.build(4)
    a2 = wiring_from_config(auto.get_config())
    assert a2.units == 20 and a2.output_dim == 5 and (a2.adjacency_matrix == auto.adjacency_matrix).all()
    with pytest.raises(ValueError, match="output_size must be less"):
        AutoNCP(5, 4)
    with pytest.raises(ValueError, match="motor_fanin"):
        NCP(4, 2, 2, 1, 1, 1, motor_fanin=3)
