"""The README's quick start: log a run, then read every value back through the SDK's read API."""

import math

import track

run = track.init(project="quickstart", config={"lr": 0.01, "optimizer": "adam"}, tags=["demo"])
for step in range(100):
    run.log({"train/loss": math.exp(-step / 30), "train/acc": 1 - math.exp(-step / 20)})
run.summary["best_acc"] = 0.99
run.finish()

logged = track.Api().run(run.id)
print(logged.state, logged.config, logged.summary["best_acc"], len(logged.history()), "steps")
