from looplint.model.describe import call_text
from looplint.model.schedulers import PLATEAU, presence_test, scheduler_steps
from looplint.rule import Finding, Rule


class SchedulerStepBeforeOptimizerStep(Rule):
    """## What it does
    Checks for a learning-rate scheduler stepped before its optimizer has ever stepped, in the same loop
    iteration that then steps the optimizer: `scheduler.step()` at the top of the epoch loop (the pre-1.1
    PyTorch idiom), or before `optimizer.step()` in the batch loop. A same-module helper that steps the
    optimizer after the scheduler counts too.

    ## Why is this bad?
    Since PyTorch 1.1 a scheduler's `step()` moves to the *next* learning rate. Called before the first
    `optimizer.step()` it skips the schedule's first value: every epoch (or batch) trains with the rate
    meant for the following one, milestones arrive one epoch early, and warmup starts past its first
    step. PyTorch warns about it once at run time; the training itself gives no sign.

    ## Known problems
    Calls that pass the epoch explicitly (`scheduler.step(epoch)`) set the rate in closed form and are not
    reported, nor are steps under a condition on the loop (`if epoch > 0:`), `ReduceLROnPlateau`, or
    schedulers of unknown kind (built from configuration or in another module).

    ## Example
    ```python
    for epoch in range(epochs):
        scheduler.step()
        for x, y in loader:
            ...
            optimizer.step()
    ```

    ## Use instead
    ```python
    for epoch in range(epochs):
        for x, y in loader:
            ...
            optimizer.step()
        scheduler.step()
    ```

    ## References
    - [PyTorch: How to adjust learning rate](https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate)
    """

    code = "LL203"
    name = "scheduler-step-before-optimizer-step"

    def check(self, model):
        facts = model.facts
        for event, role, kind in scheduler_steps(model):
            if event not in facts.sched_before_step or not kind.known or kind.unit == PLATEAU:
                continue
            if event.call is None or event.call.args:
                continue
            # within the loop iteration that runs it, the step is unconditional, or its conditions also
            # guard the optimizer step it precedes (``if phase == "train":`` around both)
            contexts = facts.contexts.get(event, ())
            if not contexts or not all(_same_guards(facts, conds, len(stack), facts.sched_before_step[event])
                                       for stack, conds in contexts if stack):
                continue
            first = sorted(call_text(e) for e in facts.sched_before_step[event])[0]
            yield Finding(
                event.node,
                f"`{call_text(event)}` runs before the first `{first}`: the schedule skips its first "
                f"learning rate and every later value is applied one step early",
            )


def _same_guards(facts, conds, depth, optimizer_steps) -> bool:
    """Whether every condition guarding the scheduler step inside its loop also guards one of the optimizer
    steps it precedes, in every context of that step (so it cannot skip the first iteration alone)."""
    gates = {(c[0], c[1]) for c in conds if c[2] >= depth and not presence_test(c[0], c[1])}
    if not gates:
        return True
    if any(key is None for key, _ in gates):
        return False
    for step in optimizer_steps:
        contexts = facts.contexts.get(step, ())
        if contexts and all(gates <= {(c[0], c[1]) for c in step_conds} for _stack, step_conds in contexts):
            return True
    return False

