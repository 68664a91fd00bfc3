from typing import Optional

import libcst as cst

from looplint.fix import UNSAFE, Fix, code_of, replace, tree_of
from looplint.model.describe import call_text, target_text
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

    ## Fix safety
    When a statement of the same block (or of a `with` block in it), before the step, assigns a name
    from a call of a function of this module (`val_loss = evaluate(model, val_loader)`) or from `.item()`
    (`val_loss = criterion(model(x), y).item()`), the fix passes the nearest such name:
    `scheduler.step(val_loss)`. It is unsafe: looplint cannot tell that the value is the metric the
    scheduler should watch. Otherwise no fix is offered.

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
                    f"`{call_text(event)}` steps ReduceLROnPlateau `{target_text(event, role.label)}` without the metric it "
                    f"watches: `step()` raises TypeError (missing 'metrics') when it first runs",
                    _fix(model, event),
                )


def _fix(model, event):
    """``scheduler.step(metric)`` with the nearest metric assigned before the step in its block (inside a
    ``with`` block too): a name bound to what a same-module function returns, or to a number read from a
    tensor (``.item()``)."""
    tree = tree_of(model)
    fn = model.function_of(event)
    stmt = tree.statement(event.node)
    if fn is None or stmt is None or event.call.args:
        return None
    siblings = list(tree.siblings(stmt))
    for st in reversed(siblings[: siblings.index(stmt)]):
        lines = [st] if isinstance(st, cst.SimpleStatementLine) else []
        if isinstance(st, cst.With) and isinstance(st.body, cst.IndentedBlock):
            lines = [b for b in reversed(st.body.body) if isinstance(b, cst.SimpleStatementLine)]
        for line in lines:
            for small in reversed(line.body):
                metric = _metric(model, fn, small)
                if metric is not None:
                    new = event.call.with_changes(args=[cst.Arg(cst.Name(metric))])
                    return Fix(f"Pass `{metric}` to `{code_of(event.call.func)}`", UNSAFE, (replace(event.call, new),))
    return None


def _metric(model, fn, small) -> Optional[str]:
    if not (isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name)
            and isinstance(small.value, cst.Call)):
        return None
    call = small.value
    if isinstance(call.func, cst.Attribute) and call.func.attr.value == "item" and not call.args:
        return small.targets[0].target.value  # a number read from a tensor
    target = model.values.callable_of(call.func, fn)
    node = getattr(target.target, "node", None) if target is not None else None
    if isinstance(node, cst.FunctionDef) and node.name.value != "__init__":
        return small.targets[0].target.value  # what a function of this module returns
    return None
