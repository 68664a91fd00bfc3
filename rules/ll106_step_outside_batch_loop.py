from looplint.model import BATCH, FRESH
from looplint.model.describe import call_text
from looplint.model.events import STEP
from looplint.rule import Finding, Rule


class StepOutsideBatchLoop(Rule):
    """## What it does
    Checks for an optimizer step placed after the data loop while `backward()` runs once per batch
    inside it, so one update per epoch consumes the gradients summed over every batch.

    ## Why is this bad?
    Each `backward()` adds into `.grad`; a single step after the loop applies the sum of all batches'
    gradients. The model makes one (very large) update per epoch instead of one per batch, which is
    almost always an indentation mistake.

    ## Known problems
    Full-batch gradient descent computed over mini-batches is a deliberate version of this shape. Mark
    it with `# noqa: LL106` on the step. When `zero_grad()` runs inside the data loop the finding is
    LL108 instead.

    ## Example
    ```python
    optimizer.zero_grad()
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
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
    No fix is offered: full-batch descent may be deliberate (say so with `# noqa: LL106`); otherwise the step and the
    zeroing must move together into the batch loop, which is the author's call.
    """

    code = "LL106"
    name = "step-outside-batch-loop"

    def check(self, model):
        for event, role, states in model.optimizer_events(STEP):
            enclosing = {l for stack in model.loop_stacks(event) for l in stack}
            # a data loop that steps (this optimizer, or the one built before it over the same parameters)
            # is accumulating or training: a step after it flushes the last partial window
            stepping = {l for s in model.steps_of(None) for stack in model.loop_stacks(s) for l in stack}
            summed = {l for s in states if s.gs == FRESH for l in s.carried
                      if l.kind == BATCH and l not in enclosing and l not in stepping and not s.doubt}
            if summed:
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` runs once after the data loop on gradients summed over every batch: "
                    f"the model gets one update per pass over the data instead of one per batch",
                )
