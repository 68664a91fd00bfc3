import libcst as cst

from looplint.fix import SAFE, Fix, code_of, function_events, insert_after, replace, tree_of
from looplint.model.describe import call_text
from looplint.model.events import SCALER_UPDATE
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

    ## Fix safety
    The fix replaces `optimizer.step()` with `scaler.step(optimizer)` and, unless the function already
    calls `scaler.update()`, adds `scaler.update()` after it, using the scaler of the scaled backward. It
    is safe: only the scale handling changes. No fix is offered when the scaled backward runs in another
    function, or when the step's result is used or it receives a closure.

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
                _fix(model, step, scaled),
            )


def _fix(model, step, backward):
    """``scaler.step(opt)`` (and ``scaler.update()``) in place of ``opt.step()``."""
    tree = tree_of(model)
    fn = model.function_of(step)
    line = tree.sole_call_statement(step.call) if step.call is not None else None
    if line is None or step.call.args or fn is None or model.function_of(backward) is not fn:
        return None
    scaled = model.values.scaled_by(backward.target, fn)
    if scaled is None or scaled[1] is not fn:
        return None
    scaler, opt = code_of(scaled[0]), code_of(step.target)
    edits = [replace(step.call, cst.parse_expression(f"{scaler}.step({opt})"))]
    if not any(code_of(u.target) == scaler for u in function_events(model, fn, (SCALER_UPDATE,))):
        edits.append(insert_after(line, f"{scaler}.update()"))
    return Fix(f"Use `{scaler}.step({opt})` and `{scaler}.update()`", SAFE, tuple(edits))
