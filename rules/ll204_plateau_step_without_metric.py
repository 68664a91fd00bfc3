from looplint.model.describe import call_text
from looplint.model.schedulers import PLATEAU, has_metric, scheduler_steps
from looplint.rule import Finding, Rule


class PlateauStepWithoutMetric(Rule):
    """## What it does
    Checks for `ReduceLROnPlateau.step()` called without the metric it watches.

    ## Why is this bad?
    `ReduceLROnPlateau.step(metrics)` requires the monitored value (usually the validation loss); called
    with no argument it raises `TypeError` at the end of the first epoch, after a full epoch of training
    has been spent. Copying `scheduler.step()` from code that used an epoch-based scheduler is the usual
    cause.

    ## Example
    ```python
    scheduler = ReduceLROnPlateau(optimizer, patience=3)
    for epoch in range(epochs):
        train_one_epoch(model, loader, optimizer)
        val_loss = evaluate(model, val_loader)
        scheduler.step()
    ```

    ## Use instead
    ```python
    scheduler = ReduceLROnPlateau(optimizer, patience=3)
    for epoch in range(epochs):
        train_one_epoch(model, loader, optimizer)
        val_loss = evaluate(model, val_loader)
        scheduler.step(val_loss)
    ```

    ## References
    - [PyTorch: `ReduceLROnPlateau`](https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ReduceLROnPlateau.html)
    """

    code = "LL204"
    name = "plateau-step-without-metric"

    def check(self, model):
        for event, role, kind in scheduler_steps(model):
            if kind.unit == PLATEAU and kind.known and event.call is not None and not has_metric(event.call):
                if any(a.star for a in event.call.args):
                    continue
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` steps ReduceLROnPlateau `{role.label}` without the metric it "
                    f"watches: `step()` raises TypeError (missing 'metrics') when it first runs",
                )
