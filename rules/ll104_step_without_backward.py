from looplint.model import NONE
from looplint.model.describe import call_text
from looplint.model.events import STEP
from looplint.rule import Finding, Rule


class StepWithoutBackward(Rule):
    """## What it does
    Checks for a training loop that steps an optimizer but never calls `backward()`, so no gradient
    ever reaches the optimizer.

    ## Why is this bad?
    `optimizer.step()` skips parameters whose `.grad` is `None` (or applies zeros): the loop runs, the
    loss is computed and logged, but the parameters never move.

    ## Known problems
    A backward pass hidden in a function of another module is invisible; looplint stays silent when a
    call it cannot resolve receives the optimizer or the loss.

    ## Example
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        optimizer.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Fix safety
    No fix is offered: which loss the step should follow is for the author to say.
    """

    code = "LL104"
    name = "step-without-backward"

    def check(self, model):
        facts = model.facts
        for event, role, states in model.optimizer_events(STEP):
            if not states or any(s.gs != NONE or s.zeroed_by is not None or s.doubt or s.maybe for s in states):
                continue  # a call we cannot see that may run backward leaves ``maybe``
            if event in facts.noop_then_backward or role in facts.tainted or not model.in_real_loop(event):
                continue
            if event.closure is not None or event.closure_unknown:
                continue
            if not model.forward_around(event, role):
                continue  # nothing is computed from the modules: an LR-schedule trace, not training
            yield Finding(
                event.node,
                f"`{call_text(event)}` runs in a training loop that never calls `backward()`: the optimizer "
                f"receives no gradients and the parameters never change",
            )

