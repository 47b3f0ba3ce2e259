"""A deterministic PyTorch trainer for the tests: a small MLP on synthetic data, CPU, one
thread. A step is four shuffled mini-batches (shuffling and dropout draw from torch's global
generator, which the saved state carries), so a staged run equals a straight one only if the
whole state, generators included, survives the checkpoints."""

import torch

import hippo.worker

torch.set_num_threads(1)


def make_data():
    generator = torch.Generator().manual_seed(1234)
    inputs = torch.randn(256, 8, generator=generator)
    targets = (inputs[:, :4].sum(dim=1, keepdim=True) > 0).float()
    return inputs, targets


DATA = make_data()


def build(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer


def train_step(model, optimizer, lr):
    """One step at learning rate `lr`; returns its metrics."""
    inputs, targets = DATA
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    order = torch.randperm(len(inputs))
    losses = []
    for batch in order.split(64):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs[batch]),
                                                                    targets[batch])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        val = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs), targets)
    return {"loss": sum(losses) / len(losses), "val_loss": val.item()}


def train_stage(stage):
    """The SDK trainer: the same steps, staged through hippo.worker's state helper."""
    model, optimizer = build(stage.seed)
    if stage.parent_state is not None:
        hippo.worker.load_state(stage.parent_state, model, optimizer)
    for step in stage.steps():
        stage.report(step, train_step(model, optimizer, stage.hparams["lr"](step)))
        if stage.checkpoint_due(step + 1):
            stage.checkpoint(step + 1,
                             lambda path: hippo.worker.save_state(path, model, optimizer))
