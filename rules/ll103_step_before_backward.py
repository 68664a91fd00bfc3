from looplint.fix import code_of, move_past_next
from looplint.model import FRESH, NONE
from looplint.model.describe import call_text
from looplint.model.events import BACKWARD, STEP, ZERO
from looplint.rule import Finding, Rule


class StepBeforeBackward(Rule):
    """## What it does
    Checks for an optimizer step that runs before the iteration's `backward()`: the step meets cleared
    gradients and the backward pass comes after it.

    ## Why is this bad?
    The first step applies no gradient at all, and when `zero_grad()` sits at the top of the iteration
    every later step applies nothing either, since the gradients computed at the end of one iteration
    are cleared before the next step sees them. Without a `zero_grad()` in between, each step applies the
    previous batch's gradients: updates lag one batch behind.

    ## Example
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        optimizer.step()
        loss = criterion(model(x), y)
        loss.backward()
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
    The fix moves the step after the backward pass that follows it in its block. It is safe unless it
    moves the step past a `zero_grad()` or another step (then unsafe: the order of the other calls may
    need a look too). No fix is offered when the backward is not in the same block.
    """

    code = "LL103"
    name = "step-before-backward"

    def check(self, model):
        for event, role, states in model.optimizer_events(STEP):
            if event not in model.facts.noop_then_backward or event.closure is not None or not states:
                continue
            enclosing = {l for stack in model.loop_stacks(event) for l in stack}
            # every time it runs, the step meets either no gradients (the first iteration, or a zeroing
            # before it) or only gradients left by a previous iteration: never this iteration's
            if any(s.zeroed_by is not None for s in states):
                continue  # a zero_grad cleared this iteration's gradients before the step: LL102's finding
            if all(not s.doubt and not s.maybe and (s.gs == NONE or (s.gs == FRESH and s.carried & enclosing)) for s in states):
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` runs before this iteration's `backward()`: it finds no fresh "
                    f"gradients, so the update it makes is empty or one batch late",
                    _fix(model, event),
                )


def _fix(model, step):
    """Moves the step after the backward pass that follows it."""
    return move_past_next(model, step, (BACKWARD,), f"Move `{code_of(step.call)}` after the backward pass", risky=(STEP, ZERO))
