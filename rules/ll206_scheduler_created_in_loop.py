import libcst as cst

from looplint.fix import UNSAFE, Fix, code_of, depends_on, move_before, tree_of, writes
from looplint.model.describe import call_text
from looplint.model.restarts import analyse
from looplint.rule import Finding, Rule


class SchedulerCreatedInLoop(Rule):
    """## What it does
    Checks for a learning-rate scheduler constructed on every pass of the epoch or batch loop over an
    optimizer built outside that loop, when the schedule is longer than one pass: stepped once per
    construction, or sized for the whole run (`T_max=epochs * len(loader)`, `num_training_steps`).

    ## Why is this bad?
    A scheduler counts from its construction and starts from the optimizer's initial learning rate. A new
    one every epoch restarts the schedule every epoch: a `StepLR` never decays, a cosine or warmup
    schedule replays its first part forever, and training runs at the wrong learning rate with no error.

    Building a scheduler together with a fresh optimizer (one per fold or per hyper-parameter setting), or
    rebuilding it on purpose every few epochs behind a test, is fine and not reported; so is rebuilding a
    schedule without a horizon (`ExponentialLR`, a `MultiplicativeLR` with a constant factor): each step
    multiplies the current learning rate, so a new one continues the decay where the last one left it.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(epochs):
        scheduler = StepLR(optimizer, step_size=10, gamma=0.1)
        train_one_epoch(model, loader, optimizer)
        scheduler.step()
    ```

    ## Use instead
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = StepLR(optimizer, step_size=10, gamma=0.1)
    for epoch in range(epochs):
        train_one_epoch(model, loader, optimizer)
        scheduler.step()
    ```

    ## Fix safety
    The fix moves the constructor's statement from the loop's body to just before the loop. It is offered
    when the statement is in the body of the loop itself (not under an `if` or an inner block of it) and
    its arguments read nothing the loop assigns (its target, the epoch counter, a loader rebuilt per
    epoch); it is unsafe, because a schedule rebuilt per epoch may have been meant (a cycle per epoch
    whose horizon looplint reads as longer), and code in the loop that reads the scheduler before the
    constructor now sees the hoisted one.

    ## References
    - [How to adjust learning rate](https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate)
    """

    code = "LL206"
    name = "scheduler-created-in-loop"

    def check(self, model):
        for r in analyse(model):
            yield Finding(
                r.construct.node,
                f"`{call_text(r.construct)}` builds a new scheduler over `{r.optimizer_label}` on every pass "
                f"of the loop, so the schedule restarts each time and never reaches its end ({r.why}); build "
                f"it once, before the loop",
                _fix(model, r),
            )


def _fix(model, restart):
    """Hoists ``scheduler = Ctor(...)`` out of the loop that rebuilds it, when it is a statement of the
    loop's own body and its value reads nothing the loop assigns."""
    tree = tree_of(model)
    stmt = tree.statement(restart.construct.node)
    loop = restart.loop.node
    if stmt is None or not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1 \
            or not isinstance(stmt.body[0], cst.Assign) or tree.block_of(loop) is None:
        return None
    block = tree.block_of(stmt)
    if block is None or tree.parent(block) is not loop:
        return None
    if depends_on(stmt.body[0].value, writes([loop]) - writes([stmt])):
        return None
    return Fix(f"Build `{code_of(stmt.body[0].targets[0].target)}` once, before the loop", UNSAFE,
               move_before(stmt, loop))
