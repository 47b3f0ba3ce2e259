"""The worker SDK: serve stages of a study with your own Python (PyTorch) training code.

    import hippo.worker

    def train_stage(stage):
        model, optimizer = build(seed=stage.seed)
        if stage.parent_state:
            hippo.worker.load_state(stage.parent_state, model, optimizer)
        for step in stage.steps():
            lr = stage.hparams["lr"](step)
            loss = train_one_epoch(model, optimizer, lr)
            stage.report(step, loss=loss)
            if stage.checkpoint_due(step + 1):
                stage.checkpoint(step + 1,
                                 lambda path: hippo.worker.save_state(path, model, optimizer))

    hippo.worker.serve(train_stage, coordinator="127.0.0.1:50051")

The study's spec names ``trainer: {kind: external}``.
"""

from hippo.worker.session import Worker, serve
from hippo.worker.stage import Cancelled, Stage
from hippo.worker.torch_state import load_state, save_state

__all__ = ["Cancelled", "Stage", "Worker", "load_state", "save_state", "serve"]
