from looplint.model.describe import call_text
from looplint.model.scaler_calls import analyse
from looplint.model.events import UNSCALE
from looplint.rule import Finding, Rule


class ScalerUpdateMissing(Rule):
    """## What it does
    Checks for `scaler.step(optimizer)` that can be followed by another `scaler.unscale_(optimizer)` or
    `scaler.step(optimizer)` with no `scaler.update()` in between: `update()` is never called, or it is
    skipped on some path (behind a logging interval, or only when the gradients were finite).

    ## Why is this bad?
    After `scaler.step(optimizer)` the scaler refuses to touch that optimizer again until `update()`: the
    next `step` raises `RuntimeError: step() has already been called since the last update()` and the next
    `unscale_` raises `unscale_() is being called after step()`. Until then the loss scale never adapts:
    it neither backs off after an overflow nor grows, so skipped steps repeat.

    ## Known problems
    An `update()` hidden in a helper looplint cannot see, or a scaler handed to such code, keeps the rule
    silent.

    ## Example
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        scaler.scale(loss_fn(model(x), y)).backward()
        scaler.step(optimizer)
        if step % log_every == 0:
            scaler.update()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        scaler.scale(loss_fn(model(x), y)).backward()
        scaler.step(optimizer)
        scaler.update()
    ```

    ## References
    - [GradScaler.update](https://pytorch.org/docs/stable/amp.html#torch.amp.GradScaler.update)
    """

    code = "LL407"
    name = "scaler-update-missing"

    def check(self, model):
        for step, then in analyse(model).steps_without_update.items():
            nxt = sorted(then, key=lambda e: (e.kind != UNSCALE, model.source(e.node)))[0]
            what = "unscale_() is being called after step()" if nxt.kind == UNSCALE else \
                "step() has already been called since the last update()"
            order = f"`{call_text(step)}` can run again" if nxt is step else \
                f"`{call_text(nxt)}` can follow `{call_text(step)}`"
            yield Finding(
                step.node,
                f"{order} with no `scaler.update()` in between: RuntimeError \"{what}\", and the loss scale "
                f"never adapts; call `scaler.update()` after every `scaler.step`",
            )
