"""hippo.worker.save_state / load_state and Stage.checkpoint's checksum: save_state returns the
written file's size and CRC-32, which the stage reports without reading the file again; a save
function that returns a size other than the file's is not believed."""

import threading
import zlib

import torch

import hippo.worker
from hippo.v1 import hippo_pb2
from hippo.worker.stage import Stage


class _Control:
    def __init__(self):
        self.cancelled = threading.Event()
        self.requested = set()
        self.states = {}


def _stage(tmp_path, sent):
    assign = hippo_pb2.Assign(attempt_id=1, stage_id=5, parent_stage_id=4, parent_state_step=2,
                              start_step=2, end_step=4)
    assign.trainer.kind = "external"
    return Stage(assign, None, str(tmp_path), sent.append, _Control())


def _file_crc(path):
    data = open(path, "rb").read()
    return len(data), f"crc32:{zlib.crc32(data):08x}"


def test_save_state_returns_the_files_size_and_crc_and_load_restores_it(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Linear(20, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 20)).sum().backward()
    optimizer.step()
    path = str(tmp_path / "state")
    assert hippo.worker.save_state(path, model, optimizer, extra={"k": 1}) == _file_crc(path)

    torch.manual_seed(2)
    other = torch.nn.Linear(20, 3)
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    assert hippo.worker.load_state(path, other, other_optimizer) == {"k": 1}
    assert torch.equal(other.weight, model.weight) and torch.equal(other.bias, model.bias)
    assert torch.equal(other_optimizer.state_dict()["state"][0]["momentum_buffer"],
                       optimizer.state_dict()["state"][0]["momentum_buffer"])


def test_stage_reports_the_checksum_save_state_returned_and_checks_a_wrong_size(tmp_path):
    sent = []
    stage = _stage(tmp_path, sent)
    assert (stage.parent_stage_id, stage.parent_state_step) == (4, 2)
    model = torch.nn.Linear(20, 3)
    path = stage.checkpoint(3, lambda p: hippo.worker.save_state(p, model))
    reported = sent[-1].checkpoint
    assert (reported.size_bytes, reported.checksum) == _file_crc(path)

    def lying_save(p):
        with open(p, "wb") as file:
            file.write(b"twelve bytes")
        return 99, "crc32:00000000"

    path = stage.checkpoint(4, lying_save)  # the end: reported with StageFinished
    _, size, checksum = stage._written[4]
    assert (size, checksum) == _file_crc(path) == (12, f"crc32:{zlib.crc32(b'twelve bytes'):08x}")
