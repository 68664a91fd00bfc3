from looplint.fix import SAFE, Fix, code_of, insert_before, optimizer_expression, tree_of
from looplint.model.describe import call_text
from looplint.rule import Finding, Rule


class ClipBeforeUnscale(Rule):
    """## What it does
    Checks for gradient clipping between a scaled backward (`scaler.scale(loss).backward()`) and
    `scaler.step(optimizer)` with no `scaler.unscale_(optimizer)` before the clip.

    ## Why is this bad?
    The gradients are still multiplied by the scale factor (65536 by default) when the clip measures
    them, so their norm is almost always above `max_norm` and they are cut to `max_norm` in *scaled*
    units. `scaler.step` then divides by the scale: the effective clipping threshold is
    `max_norm / scale`, and training crawls (or, as the scale changes, the threshold jumps around).

    ## Known problems
    Wrapper clip methods (`accelerator.clip_grad_norm_`, `fabric.clip_gradients`) unscale internally and
    are not reported; neither is clipping in a branch without a scaler.

    ## Example
    ```python
    scaler.scale(loss).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    ```

    ## Use instead
    ```python
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    ```

    ## Fix safety
    The fix inserts `scaler.unscale_(optimizer)` right before the clip, with the scaler and optimizer of
    the `scaler.step` that follows. It is safe: the clip then measures true gradients and `scaler.step`
    knows they are unscaled. No fix is offered when that step runs in another function.

    ## References
    - [Working with unscaled gradients](https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-clipping)
    """

    code = "LL405"
    name = "clip-before-unscale"

    def check(self, model):
        for clip, steps in model.precision.scaled_clips.items():
            step = sorted(steps, key=lambda s: model.source(s.node))[0]
            yield Finding(
                clip.node,
                f"`{call_text(clip)}` measures gradients still multiplied by the GradScaler's scale factor: "
                f"the effective threshold is divided by the scale; call `scaler.unscale_(optimizer)` before "
                f"clipping (`{call_text(step)}` follows)",
                _fix(model, clip, step),
            )


def _fix(model, clip, step):
    """``scaler.unscale_(opt)`` right before the clip."""
    tree = tree_of(model)
    fn = model.function_of(clip)
    anchor = tree.statement(clip.node)
    opt = optimizer_expression(model, step)
    if anchor is None or opt is None or fn is None or model.function_of(step) is not fn or step.target is None:
        return None
    text = f"{code_of(step.target)}.unscale_({code_of(opt)})"
    return Fix(f"Insert `{text}` before the clip", SAFE, (insert_before(anchor, text),))
