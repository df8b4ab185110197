"""MPI hostfiles for both flavours, and the names they refuse."""

from __future__ import annotations

import pytest

from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.spec import MpiFlavour
from hpcbox.core.errors import InvalidInputError


def test_openmpi_lines_name_slots() -> None:
    text = render_hostfile(["worker1", "worker2"], slots=4, flavour=MpiFlavour.OPENMPI)
    assert text == "worker1 slots=4\nworker2 slots=4\n"


def test_mpich_lines_use_a_colon() -> None:
    text = render_hostfile(["worker1", "worker2"], slots=4, flavour=MpiFlavour.MPICH)
    assert text == "worker1:4\nworker2:4\n"


def test_order_is_kept_and_dotted_names_work() -> None:
    hosts = ["worker-1.worker", "worker-0.worker"]
    assert render_hostfile(hosts, slots=1, flavour=MpiFlavour.MPICH).splitlines() == [
        "worker-1.worker:1",
        "worker-0.worker:1",
    ]


@pytest.mark.parametrize("flavour", list(MpiFlavour))
def test_no_workers_gives_an_empty_file(flavour: MpiFlavour) -> None:
    assert render_hostfile([], slots=2, flavour=flavour) == ""


@pytest.mark.parametrize(
    "host",
    ["", "two words", "a;rm -rf /", "-oProxyCommand=x", "host\nother", "host:2", "$(id)", "x" * 64],
)
def test_names_that_are_not_hosts_are_refused(host: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        render_hostfile(["worker1", host], slots=1, flavour=MpiFlavour.OPENMPI)
    assert info.value.field == "workers"


def test_slots_must_be_positive() -> None:
    with pytest.raises(InvalidInputError) as info:
        render_hostfile(["worker1"], slots=0, flavour=MpiFlavour.OPENMPI)
    assert info.value.field == "slots"
