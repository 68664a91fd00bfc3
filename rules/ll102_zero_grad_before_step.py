from looplint.model import NONE
from looplint.fix import code_of, move_past_next
from looplint.model.describe import call_text
from looplint.model.events import STEP
from looplint.rule import Finding, Rule


class ZeroGradBeforeStep(Rule):
    """## What it does
    Checks for `zero_grad()` between `backward()` and the optimizer step that should consume its
    gradients.

    ## Why is this bad?
    `zero_grad()` clears (or sets to `None`) the gradients that `backward()` just computed, so the step
    that follows finds nothing to apply: the parameters never change and the model does not train,
    silently.

    ## Example
    ```python
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    ```

    ## Use instead
    ```python
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ```

    ## Fix safety
    The fix moves `zero_grad()` after the optimizer step that follows it in its block (the step then
    applies the gradients and the next iteration starts clean). It is safe when the two are adjacent,
    unsafe when statements in between may read the gradients (a gradient norm for logging). No fix is
    offered when the step is not in the same block.
    """

    code = "LL102"
    name = "zero-grad-before-step"

    def check(self, model):
        for event, role, states in model.optimizer_events(STEP):
            if not states or any(s.gs != NONE or s.maybe for s in states):
                continue
            for zero in {s.zeroed_by for s in states if s.zeroed_by is not None}:
                yield Finding(
                    zero.node,
                    f"`{call_text(zero)}` clears the gradients that `backward()` just computed: the following "
                    f"`{call_text(event)}` has nothing to apply and the parameters do not change",
                    _fix(model, zero),
                )


def _fix(model, zero):
    """Moves the ``zero_grad()`` after the step that follows it."""
    return move_past_next(model, zero, (STEP,), f"Move `{code_of(zero.call)}` after the optimizer step", risky=None)
