from looplint.model import NONE
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
                )
