from __future__ import annotations

from conveyor.cli.supervisor import Autoscaler, _child_argv


def test_grows_on_depth_or_wait_up_to_max() -> None:
    scaler = Autoscaler(1, 3)
    assert scaler.next_size(1, depth=500, oldest_wait=0) == 2
    assert scaler.next_size(2, depth=0, oldest_wait=30) == 3
    assert scaler.next_size(3, depth=10_000, oldest_wait=60) == 3


def test_shrinks_only_after_calm_readings() -> None:
    scaler = Autoscaler(1, 4)
    assert [scaler.next_size(3, 0, 0) for _ in range(3)] == [3, 3, 2]
    assert scaler.next_size(2, 0, 0) == 2  # the count starts again
    assert scaler.next_size(2, 500, 0) == 3  # a burst resets the calm
    assert [scaler.next_size(1, 0, 0) for _ in range(5)] == [1] * 5


def test_children_run_the_same_command_without_supervision() -> None:
    argv = [
        "conveyor",
        "--database-url",
        "sqlite:///x.db",
        "worker",
        "--processes",
        "4",
        "--autoscale=1:4",
        "--burst",
    ]
    assert _child_argv(argv)[1:] == [
        "-m",
        "conveyor",
        "--database-url",
        "sqlite:///x.db",
        "worker",
        "--burst",
    ]
