"""Hippo's Python package: a client for studies over gRPC and a worker SDK.

    import hippo
    client = hippo.connect()                      # $HIPPO_COORDINATOR, $HIPPO_TOKEN
    study = client.create_study("examples/sim_demo.yaml")
    study.wait(progress=True)
    print(study.best_trial.value, study.best_trial.params)

See hippo.worker for serving stages with your own training code.
"""

from hippo.ask_tell import AskedTrial, MedianPruner, NopPruner
from hippo.client import Client, connect
from hippo.errors import (HippoError, InvalidArgument, InvalidSpec, InvalidState, NotFound,
                          Unauthenticated, Unavailable)
from hippo.schedule import Schedule
from hippo.spec import StudySpec
from hippo.study import Event, StageTree, Study, TreeStage, Trial

__version__ = "0.1.0"

__all__ = [
    "AskedTrial", "Client", "Event", "HippoError", "InvalidArgument", "InvalidSpec",
    "InvalidState", "MedianPruner", "NopPruner", "NotFound", "Schedule", "StageTree", "TreeStage",
    "Study", "StudySpec", "Trial", "Unauthenticated", "Unavailable", "connect",
]
