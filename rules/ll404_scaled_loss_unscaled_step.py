from looplint.model.describe import call_text
from looplint.rule import Finding, Rule


class ScaledLossUnscaledStep(Rule):
    """## What it does
    Checks for `optimizer.step()` called directly on gradients of a loss scaled by a `GradScaler`
    (`scaler.scale(loss).backward()`), instead of `scaler.step(optimizer)`.

    ## Why is this bad?
    `scaler.scale(loss)` multiplies the loss by the scale factor (65536 by default), so every gradient is
    that many times too large. Only `scaler.step(optimizer)` divides them back, skips steps whose gradients
    overflowed, and lets `scaler.update()` adapt the scale. A raw `optimizer.step()` applies the scaled
    gradients: plain SGD takes steps thousands of times too large, adaptive optimizers see a wrong `eps`
    balance and weight decay, and inf/NaN gradients are applied instead of skipped.

    ## Known problems
    An optimizer wrapper that calls the scaler itself (a framework's optimizer, an engine, a loss-scaler
    callable) is fine; looplint stays silent when the optimizer comes from such a wrapper or when the
    scaled and the plain path cannot be told apart.

    ## Example
    ```python
    scaler.scale(loss).backward()
    optimizer.step()
    ```

    ## Use instead
    ```python
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    ```

    ## References
    - [Automatic Mixed Precision examples](https://pytorch.org/docs/stable/notes/amp_examples.html)
    """

    code = "LL404"
    name = "scaled-loss-unscaled-step"

    def check(self, model):
        for step, backwards in model.precision.raw_steps.items():
            scaled = sorted(backwards, key=lambda b: model.source(b.node))[0]
            yield Finding(
                step.node,
                f"`{call_text(step)}` applies the gradients of `{call_text(scaled)}` still multiplied by the "
                f"GradScaler's scale factor: use `scaler.step(optimizer)` and `scaler.update()`",
            )
