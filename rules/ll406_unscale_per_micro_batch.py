from looplint.model.describe import call_text
from looplint.model.scaler_calls import analyse
from looplint.rule import Finding, Rule


class UnscalePerMicroBatch(Rule):
    """## What it does
    Checks for `scaler.unscale_(optimizer)` that can run a second time before `scaler.update()`: typically
    unscaling (and clipping) on every micro-batch while `scaler.step(optimizer)` and `scaler.update()` run
    only when the accumulation window is complete.

    ## Why is this bad?
    A `GradScaler` unscales each optimizer's gradients at most once between two `update()` calls; the
    second `unscale_` raises `RuntimeError: unscale_() has already been called on this optimizer since the
    last update()`, so training crashes at the second micro-batch. Where the error is caught, the clip that
    follows measures a partial sum of the window's gradients, not the update that is applied.

    ## Known problems
    A scaler handed to code looplint cannot see, or a step/update hidden in such code, keeps the rule
    silent.

    ## Example
    ```python
    for i, (x, y) in enumerate(loader):
        scaler.scale(loss_fn(model(x), y) / accum).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if (i + 1) % accum == 0:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
    ```

    ## Use instead
    ```python
    for i, (x, y) in enumerate(loader):
        scaler.scale(loss_fn(model(x), y) / accum).backward()
        if (i + 1) % accum == 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
    ```

    ## References
    - [Gradient accumulation with AMP](https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-accumulation)
    """

    code = "LL406"
    name = "unscale-per-micro-batch"

    def check(self, model):
        for unscale, earlier in analyse(model).repeated_unscales.items():
            # by text; among calls written alike, the call itself (set order must not choose the message)
            first = sorted(earlier, key=lambda e: (model.source(e.node), e is not unscale))[0]
            again = "runs again" if first is unscale else f"runs after `{call_text(first)}`"
            yield Finding(
                unscale.node,
                f"`{call_text(unscale)}` {again} with no `scaler.update()` in between (on micro-batches whose "
                f"step is skipped): RuntimeError \"unscale_() has already been called on this optimizer since "
                f"the last update()\"; unscale and clip only when `scaler.step` runs",
            )
