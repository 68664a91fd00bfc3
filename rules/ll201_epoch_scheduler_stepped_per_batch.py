from looplint.model import BATCH, EPOCH
from looplint.fix import SAFE, Fix, code_of, contains, move_after, tree_of
from looplint.model.describe import call_text
from looplint.model.schedulers import (
    PER_EPOCH, counts_steps, describe, epoch_count, optimizer_of, optimizer_steps,
    scheduler_steps, varying_gate,
)
from looplint.rule import Finding, Rule


class EpochSchedulerSteppedPerBatch(Rule):
    """## What it does
    Checks for a learning-rate scheduler sized in epochs (a `StepLR`, `MultiStepLR`, `CosineAnnealingLR`
    or `ExponentialLR` whose horizon counts epochs) that is stepped inside the batch loop, once per batch.

    ## Why is this bad?
    Each `scheduler.step()` advances the schedule by one unit. A cosine schedule over `num_epochs` that is
    stepped on every batch completes its whole cycle within the first `num_epochs` batches and then
    restarts, a `StepLR(step_size=30)` decays every 30 batches instead of every 30 epochs: the learning
    rate collapses (or oscillates) early and the model trains far worse, without any error.

    The unit is read from the constructor's arguments (`T_max=num_epochs`, `step_size=args.epochs // 3`,
    a literal no larger than the epoch loop's length), not from the class: schedulers sized in iterations
    (`T_max=epochs * len(loader)`, `max_steps`), per-step schedules (`OneCycleLR`, warmup factories) and
    steps guarded by an update condition (`if (i + 1) % accum == 0:`) are not reported.

    ## Known problems
    `ExponentialLR` has no horizon; it counts as per-epoch when its `gamma` is below 0.99 (per batch it
    would decay the learning rate a hundredfold within a few hundred batches). Schedulers built from
    configuration, in another module, or from a `LambdaLR` whose lambda cannot be read are never reported.

    ## Example
    ```python
    scheduler = CosineAnnealingLR(optimizer, T_max=num_epochs)
    for epoch in range(num_epochs):
        for x, y in loader:
            ...
            optimizer.step()
            scheduler.step()
    ```

    ## Use instead
    ```python
    scheduler = CosineAnnealingLR(optimizer, T_max=num_epochs)
    for epoch in range(num_epochs):
        for x, y in loader:
            ...
            optimizer.step()
        scheduler.step()
    ```

    ## Fix safety
    The fix moves `scheduler.step()` out of the batch loop to the statement right after it, in the epoch
    loop (in a helper that trains one epoch, after its batch loop). It is safe: the scheduler then counts
    epochs, as its size says. No fix is offered when the step does not stand alone on its line in the
    batch loop's function.

    ## References
    - [PyTorch: How to adjust learning rate](https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate)
    """

    code = "LL201"
    name = "epoch-scheduler-stepped-per-batch"

    def check(self, model):
        facts = model.facts
        for event, role, kind in scheduler_steps(model):
            if event.call is None or event.call.args or not kind.known:
                continue  # ``step(epoch)`` / ``step(epoch + i / n)`` set the epoch explicitly
            opt_loops = {l for s in optimizer_steps(model, optimizer_of(role, model.roles))
                         for stack in model.loop_stacks(s) for l in stack}
            for stack, conds in facts.contexts.get(event, ()):
                batch = _per_batch(stack)
                if batch is None or stack[batch] not in opt_loops or varying_gate(model, event, stack, conds, batch + 1):
                    continue
                epoch_loop = next(l for l in stack[:batch] if l.kind == EPOCH)
                if counts_steps(epoch_loop, model.values):
                    continue
                if kind.unit_for(epoch_count(epoch_loop, model.values)) != PER_EPOCH:
                    continue
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` runs on every batch, but {describe(role, kind)} is sized in "
                    f"epochs: its schedule is used up within the first batches and the learning rate is wrong "
                    f"for the rest of training",
                    _fix(model, event, stack[batch]),
                )
                break


def _per_batch(stack):
    """Index of the batch loop an event runs in under an epoch loop (None when it does not)."""
    seen_epoch = False
    for i, loop in enumerate(stack):
        if loop.kind == EPOCH:
            seen_epoch = True
        elif loop.kind == BATCH and seen_epoch:
            return i
    return None


def _fix(model, event, batch_loop):
    """Moves the scheduler step after the batch loop."""
    tree = tree_of(model)
    stmt = tree.sole_call_statement(event.call)
    if stmt is None or not contains(tree, batch_loop.node, stmt) or tree.block_of(batch_loop.node) is None:
        return None
    return Fix(f"Move `{code_of(event.call)}` after the batch loop", SAFE, move_after(stmt, batch_loop.node))
