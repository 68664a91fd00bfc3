from looplint.model import BATCH, FRESH, IMPLICIT, MICRO, STEP
from looplint.model.describe import call_text
from looplint.model.events import STEP, ZERO
from looplint.rule import Finding, Rule


class ZeroGradDiscardsAccumulation(Rule):
    """## What it does
    Checks for `zero_grad()` that runs on iterations whose gradients no optimizer step has consumed:
    typically zeroing on every micro-batch while the step only runs every `k` batches, or zeroing
    inside the data loop while the step sits after it. A zeroing that replaces a step skipped on a
    gradient check (`if torch.isfinite(norm): optimizer.step() else: optimizer.zero_grad()`) drops one
    bad update on purpose and is not reported, nor is a zeroing on the first iteration only (`if i == 0:`,
    with the step every `k` iterations of `i`): like a zeroing before the loop, it drops at most the
    incomplete window of the previous run.

    ## Why is this bad?
    Gradient accumulation relies on `.grad` adding up across the micro-batches of one update. Zeroing
    on every micro-batch throws away all of them but the last, so each update sees one micro-batch: the
    effective batch size silently shrinks by the accumulation factor.

    ## Example
    ```python
    for i, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        loss = criterion(model(x), y) / accum_steps
        loss.backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
    ```

    ## Use instead
    ```python
    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y) / accum_steps
        loss.backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()
    ```

    ## Fix safety
    No fix is offered: whether the step should run more often or the zeroing less often is the author's choice.
    """

    code = "LL108"
    name = "zero-grad-discards-accumulation"

    def check(self, model):
        facts = model.facts
        # zero_grad calls whose clearing some step then met with nothing to apply are LL102/LL103, not this
        feeds_step = set()
        for event, role, states in model.optimizer_events(STEP):
            feeds_step.update(s.zeroed_by for s in states if s.zeroed_by is not None)
        for event, role, states in model.optimizer_events(ZERO):
            if event in feeds_step:
                continue
            innermost = {stack[-1] for stack in model.loop_stacks(event) if stack}
            # the loop whose iterations should accumulate: a data, step or micro-step loop (or a per-step
            # function); an epoch loop's zeroing drops at most a partial window, and other loops are no
            # accumulation at all
            inner = {l for l in innermost if l.kind in (BATCH, STEP, MICRO, IMPLICIT)}
            # discarded gradients of a backward whose gradients this optimizer steps on other iterations
            fed = facts.fed.get(role, set())
            if any(s.gs == FRESH and not s.doubt and not s.skipped and s.carried & inner and s.sources & fed
                   for s in states) and not model.runs_at_counter_start(event):
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` discards gradients of earlier iterations that no step has applied: "
                    f"the step runs less often than the zeroing, so gradients never accumulate",
                )

