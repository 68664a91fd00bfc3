from looplint.model import BATCH, EPOCH, STEP
from looplint.fix import SAFE, Fix, code_of, contains, move_after, tree_of
from looplint.model.describe import call_text
from looplint.model.schedulers import PER_STEP, counts_steps, describe, optimizer_of, optimizer_steps, scheduler_steps
from looplint.rule import Finding, Rule


class BatchSchedulerSteppedPerEpoch(Rule):
    """## What it does
    Checks for a learning-rate scheduler that counts iterations (`OneCycleLR`, `CyclicLR`, the
    `transformers` `get_*_schedule_with_warmup` family, or any scheduler sized by `len(loader)`,
    `max_steps`, `num_training_steps`, ...) that is stepped once per epoch, outside the loop that steps
    the optimizer on every batch.

    ## Why is this bad?
    The schedule is laid out over the total number of optimizer steps. Stepped once per epoch it advances
    by one step per epoch: a warmup of 500 steps lasts 500 epochs, a one-cycle schedule never leaves its
    first few percent, so training runs at the warmup learning rate from beginning to end.

    ## Known problems
    Schedulers built from configuration or in another module have no known unit and are not reported; nor
    are per-step factories sized plainly in epochs (`num_training_steps=args.epochs`), where stepping per
    epoch is what the code means.

    ## Example
    ```python
    scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=epochs * len(loader))
    for epoch in range(epochs):
        for x, y in loader:
            ...
            optimizer.step()
        scheduler.step()
    ```

    ## Use instead
    ```python
    scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=epochs * len(loader))
    for epoch in range(epochs):
        for x, y in loader:
            ...
            optimizer.step()
            scheduler.step()
    ```

    ## Fix safety
    The fix moves `scheduler.step()` into the batch loop, right after the optimizer step it follows (inside
    the same gate, for an accumulation loop). It is safe: the scheduler then counts optimizer steps, as its
    size says. No fix is offered when the optimizer steps in another function.

    ## References
    - [PyTorch: `OneCycleLR`](https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html)
    """

    code = "LL202"
    name = "batch-scheduler-stepped-per-epoch"

    def check(self, model):
        facts = model.facts
        for event, role, kind in scheduler_steps(model):
            if kind.unit != PER_STEP or event.call is None or len(event.call.args) > 1:
                continue
            if event in facts.sched_twice or event in facts.sched_after_window:
                continue  # also stepped per batch: this extra step is LL205's finding
            steps = optimizer_steps(model, optimizer_of(role, model.roles))
            for stack, _conds in facts.contexts.get(event, ()):
                if not stack or stack[-1].kind != EPOCH or counts_steps(stack[-1], model.values):
                    continue
                epoch = stack[-1]
                if not any(_inside_batches(s_stack, epoch) for s in steps for s_stack in model.loop_stacks(s)):
                    continue
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` runs once per epoch, but {describe(role, kind)} counts optimizer "
                    f"steps: the schedule advances one step per epoch and stays near its start",
                    _fix(model, event, epoch, steps),
                )
                break


def _inside_batches(stack, epoch) -> bool:
    """Whether a stack runs inside ``epoch`` in a batch or step loop nested in it."""
    if epoch not in stack:
        return False
    return any(l.kind in (BATCH, STEP) for l in stack[stack.index(epoch) + 1:])


def _fix(model, event, epoch, steps):
    """Moves the scheduler step after the optimizer step of the batch loop before it."""
    tree = tree_of(model)
    stmt = tree.sole_call_statement(event.call)
    if stmt is None:
        return None
    before = [s for s in steps if model.function_of(s) is model.function_of(event) and contains(tree, epoch.node, s.node)
              and tree.precedes(s.node, event.node) and tree.sole_call_statement(s.call) is not None]
    if not before:
        return None
    anchor = tree.sole_call_statement(before[-1].call)
    return Fix(f"Move `{code_of(event.call)}` after `{code_of(before[-1].call)}`", SAFE, move_after(stmt, anchor))
